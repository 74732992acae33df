/* SPDX-License-Identifier: MIT */
/*
 * outbox_int.h - what the outbox writer (outbox.c) and its readers (the
 * relay's LMDB source, the in-process relay) share beyond ferry_outbox.h.
 *
 * Ids must never be given twice: they are the message ids' tails, and the
 * broker drops a repeated id as a duplicate. The next id is one past the
 * newest key; when --on-publish delete removes every event, the key 0
 * (never an event's id) keeps the newest id given so far.
 */
#ifndef FY_OUTBOX_INT_H
#define FY_OUTBOX_INT_H

#include <lmdb.h>
#include <stdint.h>

/** The highest id ever given in outbox @p dbi (0: none), into *last.
 *  @return 0 or an LMDB error. */
int fy_outbox_last_id(MDB_txn *txn, MDB_dbi dbi, uint64_t *last);

/** Records @p last as the highest id given, in key 0 (before the events
 *  up to it are deleted). @return 0 or an LMDB error. */
int fy_outbox_keep_last_id(MDB_txn *txn, MDB_dbi dbi, uint64_t last);

#endif
