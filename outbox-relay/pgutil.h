/* SPDX-License-Identifier: MIT */
/*
 * pgutil.h - what the two PostgreSQL sources (src_pg.c polling, src_pglog.c
 * log tailing) share: error sentences from libpq and the identifier check
 * for names they put into SQL text.
 */
#ifndef FR_PGUTIL_H
#define FR_PGUTIL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/** "postgresql: WHAT: <libpq's message>" into err (db NULL: out of memory),
 *  on one line and without double quotes (it goes into logfmt values).
 *  @return FERRY_EIO, for `return fr_pg_fail(...)`. */
fy_status_t fr_pg_fail(PGconn *db, fy_err_t *err, const char *what);

/** Reconnects @p db if it broke (the server restarted); the next command
 *  then works or fails with the reason. */
void fr_pg_revive(PGconn *db);

/** The same with the server's message @p msg (e.g. PQresultErrorMessage). */
fy_status_t fr_pg_fail_msg(const char *msg, fy_err_t *err, const char *what);

/** The name of a source given none (identity.h): "<kind>-<identity>", the
 *  identity made once in table ferry_relay_identity of the database; or
 *  @p kind alone when @p legacy_sql (one text parameter, @p legacy_arg)
 *  returns a row: a position kept under that old default.
 *  @return FERRY_OK, or FERRY_EIO with the sentence. */
fy_status_t fr_pg_default_name(PGconn *db, const char *kind, const char *legacy_sql,
                               const char *legacy_arg, char *out, size_t cap, fy_err_t *err);

/** True for a plain lower-case identifier (a-z, 0-9, _; 1-63 bytes): safe to
 *  put into SQL and replication commands without quoting. */
bool fr_pg_ident_ok(const char *name);

#endif
