/* SPDX-License-Identifier: MIT */
/*
 * sql_int.h - what the files of libferry-sql share (ferry_sql.h): the DDL
 * (generated at build time from outbox-relay/sql/sqlite.sql and
 * postgres.sql, so that the relay's
 * documented tables and the library's are one text), the JSON of an
 * event's headers, and the inbox's message key.
 */
#ifndef FY_SQL_INT_H
#define FY_SQL_INT_H

#include <stddef.h>

#include "ferry_sql.h"

/** outbox-relay/sql/sqlite.sql and postgres.sql, whole. */
extern const char fy_sql_ddl_sqlite[];
extern const char fy_sql_ddl_pg[];

/**
 * The headers as a JSON object of strings in a new string (free() it), or
 * NULL with *st: FERRY_OK (no headers), FERRY_EINVAL (a name twice, or not
 * UTF-8), FERRY_ENOMEM.
 */
char *fy_sql_headers_json(const ferry_header_t *headers, size_t count, ferry_status_t *st);

/** A saga's results (ferry_saga_record_t.results) as a JSON object of
 *  strings, step -> result, in a new string (free() it; "{}" for none), or
 *  NULL (out of memory). */
char *fy_sql_results_json(const char *results, size_t len);

/** The JSON object @p json (NULL: none) back into *@p results /
 *  *@p len (malloc'ed; NULL / 0 for none). @return FERRY_OK, FERRY_EFORMAT
 *  (not an object of strings), FERRY_ENOMEM */
ferry_status_t fy_sql_results_parse(const char *json, char **results, size_t *len);

/** The inbox's key of @p msg: its id, or "#<seq>" without one, in @p buf
 *  (at least 32 bytes). @return the key, or NULL if @p msg has neither a
 *  topic nor a usable id. */
const char *fy_sql_inbox_key(const ferry_stored_message_t *msg, char *buf, size_t cap);

/** Copies @p msg into @p err (when not NULL) and returns @p st. */
ferry_status_t fy_sql_fail(ferry_status_t st, char *err, size_t cap, const char *msg);

#endif /* FY_SQL_INT_H */
