/* SPDX-License-Identifier: MIT */
/*
 * sql_lite.h - what libferry-sql's SQLite files share (sqlite_store.c
 * implements it): status codes, one-statement runs and the transaction
 * calls of the saga stores. A store's struct starts with its connection
 * (sqlite3 *), so that fy_sql_lite_begin can take the store itself.
 */
#ifndef FY_SQL_LITE_H
#define FY_SQL_LITE_H

#include <sqlite3.h>

#include "sql_int.h"

/** A SQLite result code as a Ferry status: FULL is FERRY_ESTORAGE_FULL,
 *  NOMEM FERRY_ENOMEM, CONSTRAINT FERRY_EEXISTS, other errors FERRY_EIO. */
ferry_status_t fy_sql_lite_status(int rc);
/** sqlite3_exec of @p sql (no parameters) as a status. */
ferry_status_t fy_sql_lite_exec(sqlite3 *db, const char *sql);

/** Opens the store connection of an orchestrator or participant: @p path,
 *  a 10 s busy timeout, synchronous FULL, the tables set up.
 *  @return FERRY_OK, FERRY_EIO, FERRY_EFORMAT, ... (*db NULL then) */
ferry_status_t fy_sql_lite_open(const char *path, sqlite3 **db);

/** The saga stores' transaction calls (ferry_saga.h): BEGIN IMMEDIATE on
 *  the store's connection (its struct's first member), COMMIT (rolled back
 *  when it fails), ROLLBACK. */
ferry_status_t fy_sql_lite_begin(void *self, void **tx);
ferry_status_t fy_sql_lite_commit(void *self, void *tx);
void fy_sql_lite_rollback(void *self, void *tx);

#endif /* FY_SQL_LITE_H */
