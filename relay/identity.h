/* SPDX-License-Identifier: MIT */
/*
 * identity.h - which outbox a relay reads: every outbox database gets an
 * identity once (8 random hex digits, kept in that database: table
 * ferry_relay_identity in SQL, a key of the position database in LMDB), so
 * that it moves with the file and differs between two databases. A source
 * given no name is called <kind>-<identity> ("sqlite-3f9a0c12"): two
 * outboxes relayed with default names never publish under the same message
 * ids. Where a position is already recorded under the old default, the
 * source kind alone ("sqlite"), that name stays, so that an outbox relayed
 * before keeps its ids.
 */
#ifndef FR_IDENTITY_H
#define FR_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

#define FR_IDENTITY_LEN 8

/** A new identity: FR_IDENTITY_LEN lower-case hex digits from the kernel's
 *  random source, NUL-terminated. */
void fr_identity_new(char out[FR_IDENTITY_LEN + 1]);

/** True when @p s is an identity as fr_identity_new makes them. */
bool fr_identity_ok(const char *s);

/** The name of a source that was given none: @p kind when a position is
 *  recorded under it (@p legacy_position), else "<kind>-<identity>". */
void fr_default_name(const char *kind, const char *identity, bool legacy_position, char *out,
                     size_t cap);

/** Whether the position under @p from may move to @p to, given which of
 *  the two have one (source.h, rename): FERRY_OK when it may or when it
 *  moved already (only @p to has one), else FERRY_EINVAL with the sentence. */
fy_status_t fr_rename_check(const char *from, const char *to, bool has_from, bool has_to,
                            fy_err_t *err);

#endif
