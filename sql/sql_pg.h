/* SPDX-License-Identifier: MIT */
/*
 * sql_pg.h - what libferry-sql's PostgreSQL files share (pg_store.c
 * implements it): running a statement and the transaction calls of the
 * saga stores. A store's struct starts with its connection (PGconn *), so
 * that fy_sql_pg_begin can take the store itself.
 */
#ifndef FY_SQL_PG_H
#define FY_SQL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "sql_int.h"

/** Runs @p sql with @p n parameters (text, or binary where @p formats
 *  says; @p lengths and @p formats may be NULL); *out (may be NULL) keeps
 *  the result: PQclear it. @return FERRY_OK, FERRY_ESTORAGE_FULL (disk
 *  full), FERRY_EEXISTS (a unique key taken), FERRY_EIO */
ferry_status_t fy_sql_pg_run(PGconn *conn, const char *sql, int n, const char *const *params,
                             const int *lengths, const int *formats, PGresult **out);

/** A store's own connection: the statements it prepared there (a bit
 *  each: prepared once, then parsed and planned no more), and its
 *  transaction in pipeline mode (fy_sql_pg_pipe_begin): statements whose
 *  result nobody reads are sent without waiting, and their answers read
 *  with the next statement that returns rows, or at the commit - one round
 *  trip for a transition's writes instead of one each. */
typedef struct {
    PGconn *conn;
    unsigned prepared;
    bool piped;            /* a transaction runs in pipeline mode */
    int pending;           /* statements sent whose results are not read */
    ferry_status_t failed; /* the first of them that failed */
} fy_sql_pg_named_t;

/** BEGIN in pipeline mode on @p named's connection (*tx: the connection). */
ferry_status_t fy_sql_pg_pipe_begin(fy_sql_pg_named_t *named, void **tx);
/** COMMIT: every statement's answer read; the first failure rolls back. */
ferry_status_t fy_sql_pg_pipe_commit(fy_sql_pg_named_t *named);
/** ROLLBACK (the prepared statements forgotten: one may not have run). */
void fy_sql_pg_pipe_rollback(fy_sql_pg_named_t *named);

/** The statements of libferry-sql that may be prepared (0..31). */
enum {
    FY_SQL_PG_OUTBOX_PUT,
    FY_SQL_PG_SAGA_GET,
    FY_SQL_PG_SAGA_GET_LOCKED,
    FY_SQL_PG_SAGA_INSERT,
    FY_SQL_PG_SAGA_UPDATE,
    FY_SQL_PG_SAGA_DUE,
    FY_SQL_PG_SAGA_NEXT,
};

/** fy_sql_pg_run() as prepared statement @p which ("ferry_<which>") of
 *  @p named, prepared on first use; with @p named NULL (a connection that
 *  is not the store's own: the caller's) simply run. In a pipelined
 *  transaction a statement without @p out is only sent (its failure comes
 *  out of a later call, or of the commit). */
ferry_status_t fy_sql_pg_run_named(PGconn *conn, fy_sql_pg_named_t *named, unsigned which,
                                   const char *sql, int n, const char *const *params,
                                   const int *lengths, const int *formats, PGresult **out);

/** ferry_outbox_pg_put() through @p named (may be NULL). */
ferry_status_t fy_sql_pg_outbox_put(PGconn *conn, fy_sql_pg_named_t *named,
                                    const ferry_outbox_event_t *ev, int64_t *id);

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
