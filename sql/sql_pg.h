/*
 * sql_pg.h - what libferry-sql's PostgreSQL files share (pg_store.c
 * implements it): running a statement and the transaction calls of the
 * saga stores. A store's struct starts with its connection (PGconn *), so
 * that fy_sql_pg_begin can take the store itself.
 */
#ifndef FY_SQL_PG_H
#define FY_SQL_PG_H

#include <libpq-fe.h>

#include "sql_int.h"

/** Runs @p sql with @p n parameters (text, or binary where @p formats
 *  says; @p lengths and @p formats may be NULL); *out (may be NULL) keeps
 *  the result: PQclear it. @return FERRY_OK, FERRY_ESTORAGE_FULL (disk
 *  full), FERRY_EEXISTS (a unique key taken), FERRY_EIO */
ferry_status_t fy_sql_pg_run(PGconn *conn, const char *sql, int n, const char *const *params,
                             const int *lengths, const int *formats, PGresult **out);

/** Opens the store connection of an orchestrator or participant to
 *  @p conninfo, the tables set up. @return FERRY_OK, FERRY_EIO,
 *  FERRY_EFORMAT, ... (*conn NULL then) */
ferry_status_t fy_sql_pg_open(const char *conninfo, PGconn **conn);

/** The saga stores' transaction calls (ferry_saga.h): BEGIN on the store's
 *  connection (its struct's first member), COMMIT (an aborted transaction,
 *  which COMMIT turns into a rollback, is FERRY_EIO), ROLLBACK. */
ferry_status_t fy_sql_pg_begin(void *self, void **tx);
ferry_status_t fy_sql_pg_commit(void *self, void *tx);
void fy_sql_pg_rollback(void *self, void *tx);

#endif /* FY_SQL_PG_H */
