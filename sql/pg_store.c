/* SPDX-License-Identifier: MIT */
/*
 * pg_store.c - the outbox and the inbox in a service's PostgreSQL database,
 * inside the caller's transactions (ferry_sql.h), through libpq.
 */
#include "sql_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "outbox_event.h"

/* A failed result as a Ferry status (SQLSTATE class 53: out of resources). */
static ferry_status_t
s_status(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "53100") == 0) /* disk_full */
        return FERRY_ESTORAGE_FULL;
    if (state && strcmp(state, "53200") == 0) /* out_of_memory */
        return FERRY_ENOMEM;
    return FERRY_EIO;
}

/* The result of a statement as a status; kept in *out (when asked and it
 * succeeded), else cleared. */
static ferry_status_t
s_result(PGresult *res, PGresult **out)
{
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        ferry_status_t st = state && strcmp(state, "23505") == 0 ? FERRY_EEXISTS : s_status(res);
        PQclear(res);
        return st;
    }
    if (out)
        *out = res;
    else
        PQclear(res);
    return FERRY_OK;
}

ferry_status_t
fy_sql_pg_run(PGconn *conn, const char *sql, int n, const char *const *params, const int *lengths,
              const int *formats, PGresult **out)
{
    return s_result(PQexecParams(conn, sql, n, NULL, params, lengths, formats, 0), out);
}

/* ---- pipeline mode ------------------------------------------------------------ */

/* Reads the answers of the statements sent and not read, keeping the first
 * failure. */
static void
s_drain(fy_sql_pg_named_t *p)
{
    while (p->pending > 0) {
        PGresult *res = PQgetResult(p->conn);
        if (!res) { /* the end of one statement's results */
            p->pending--;
            continue;
        }
        ferry_status_t st = PQresultStatus(res) == PGRES_PIPELINE_ABORTED ? FERRY_EIO : FERRY_OK;
        if (st)
            PQclear(res);
        else
            st = s_result(res, NULL);
        if (st && !p->failed)
            p->failed = st;
    }
}

/* Sends prepared statement @p name (its text @p sql, prepared first when it
 * is not yet) without waiting. */
static ferry_status_t
s_pipe_send(fy_sql_pg_named_t *p, unsigned which, const char *name, const char *sql, int n,
            const char *const *params, const int *lengths, const int *formats)
{
    if (!(p->prepared & (1u << which))) {
        if (!PQsendPrepare(p->conn, name, sql, n, NULL))
            return FERRY_EIO;
        p->pending++;
        p->prepared |= 1u << which;
    }
    if (!PQsendQueryPrepared(p->conn, name, n, params, lengths, formats, 0))
        return FERRY_EIO;
    p->pending++;
    return FERRY_OK;
}

/* Ends the pipeline: a sync, every answer read, back to normal mode. */
static void
s_pipe_end(fy_sql_pg_named_t *p)
{
    if (!PQpipelineSync(p->conn) && !p->failed)
        p->failed = FERRY_EIO;
    s_drain(p);
    PGresult *res = PQgetResult(p->conn); /* the sync's */
    if (PQresultStatus(res) != PGRES_PIPELINE_SYNC && !p->failed)
        p->failed = FERRY_EIO;
    PQclear(res);
    PQexitPipelineMode(p->conn);
    p->piped = false;
}

ferry_status_t
fy_sql_pg_pipe_begin(fy_sql_pg_named_t *p, void **tx)
{
    *tx = p->conn;
    p->failed = FERRY_OK;
    p->pending = 0;
    if (!PQenterPipelineMode(p->conn))
        return fy_sql_pg_run(p->conn, "BEGIN", 0, NULL, NULL, NULL, NULL);
    p->piped = true;
    if (!PQsendQueryParams(p->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
        PQexitPipelineMode(p->conn);
        p->piped = false;
        return FERRY_EIO;
    }
    p->pending = 1;
    return FERRY_OK;
}

void
fy_sql_pg_pipe_rollback(fy_sql_pg_named_t *p)
{
    if (p->piped)
        s_pipe_end(p);
    PQclear(PQexec(p->conn, "ROLLBACK"));
    /* A PREPARE of the aborted pipeline may not have run: prepare again. */
    PQclear(PQexec(p->conn, "DEALLOCATE ALL"));
    p->prepared = 0;
}

ferry_status_t
fy_sql_pg_pipe_commit(fy_sql_pg_named_t *p)
{
    if (!p->piped)
        return fy_sql_pg_commit(NULL, p->conn);
    if (!PQsendQueryParams(p->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && !p->failed)
        p->failed = FERRY_EIO;
    else
        p->pending++;
    s_pipe_end(p);
    ferry_status_t st = p->failed;
    if (st) /* the server's transaction waits, aborted: end it */
        fy_sql_pg_pipe_rollback(p);
    return st;
}

ferry_status_t
fy_sql_pg_run_named(PGconn *conn, fy_sql_pg_named_t *named, unsigned which, const char *sql, int n,
                    const char *const *params, const int *lengths, const int *formats,
                    PGresult **out)
{
    if (!named || which >= 32)
        return fy_sql_pg_run(conn, sql, n, params, lengths, formats, out);
    char name[32];
    snprintf(name, sizeof name, "ferry_%u", which);
    if (named->piped) {
        ferry_status_t st = named->failed
                                ? named->failed
                                : s_pipe_send(named, which, name, sql, n, params, lengths, formats);
        if (st || !out)
            return st;
        /* Rows wanted: the server flushes what it has, the answers before
         * this one are read, then this one. */
        if (!PQsendFlushRequest(conn) || PQflush(conn) != 0)
            return named->failed = FERRY_EIO;
        named->pending--;
        s_drain(named);
        PGresult *res = PQgetResult(conn);
        PQclear(PQgetResult(conn)); /* the NULL after it */
        if (named->failed) {
            PQclear(res);
            return named->failed;
        }
        st = s_result(res, out);
        if (st)
            named->failed = st;
        return st;
    }
    if (!(named->prepared & (1u << which))) {
        ferry_status_t st = s_result(PQprepare(conn, name, sql, n, NULL), NULL);
        if (st)
            return st;
        named->prepared |= 1u << which;
    }
    return s_result(PQexecPrepared(conn, name, n, params, lengths, formats, 0), out);
}

ferry_status_t
fy_sql_pg_open(const char *conninfo, PGconn **conn)
{
    *conn = PQconnectdb(conninfo);
    ferry_status_t st = PQstatus(*conn) == CONNECTION_OK ? FERRY_OK : FERRY_EIO;
    if (st == FERRY_OK)
        st = ferry_sql_setup_pg(*conn, NULL, 0);
    if (st) {
        PQfinish(*conn);
        *conn = NULL;
    }
    return st;
}

ferry_status_t
fy_sql_pg_begin(void *self, void **tx)
{
    *tx = *(PGconn **)self;
    return fy_sql_pg_run(*tx, "BEGIN", 0, NULL, NULL, NULL, NULL);
}

ferry_status_t
fy_sql_pg_commit(void *self, void *tx)
{
    (void)self;
    PGresult *res = PQexec(tx, "COMMIT");
    ferry_status_t st = PQresultStatus(res) == PGRES_COMMAND_OK ? FERRY_OK : s_status(res);
    /* An aborted transaction's COMMIT answers ROLLBACK. */
    if (st == FERRY_OK && strcmp(PQcmdStatus(res), "COMMIT") != 0)
        st = FERRY_EIO;
    PQclear(res);
    return st;
}

void
fy_sql_pg_rollback(void *self, void *tx)
{
    (void)self;
    PQclear(PQexec(tx, "ROLLBACK"));
}

/* Runs @p sql with text parameters; *rows (may be NULL) gets the rows it
 * changed, or the first column of the first row returned when @p first is
 * not NULL (cap bytes). */
static ferry_status_t
s_exec(PGconn *conn, const char *sql, const char *const *params, int nparams, long long *rows,
       char *first, size_t cap)
{
    PGresult *res = NULL;
    ferry_status_t st = fy_sql_pg_run(conn, sql, nparams, params, NULL, NULL, &res);
    if (st)
        return st;
    if (rows)
        *rows = atoll(PQcmdTuples(res));
    if (first && cap)
        snprintf(first, cap, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return FERRY_OK;
}

ferry_status_t
ferry_sql_setup_pg(PGconn *conn, char *err, size_t err_cap)
{
    if (!conn)
        return fy_sql_fail(FERRY_EINVAL, err, err_cap, "no connection");
    char exists[8], version[32] = "0";
    ferry_status_t st = s_exec(conn, "SELECT to_regclass('ferry_schema') IS NOT NULL", NULL, 0,
                               NULL, exists, sizeof exists);
    if (st == FERRY_OK && exists[0] == 't')
        st = s_exec(conn,
                    "SELECT coalesce(max(version), 0) FROM ferry_schema WHERE component = 'ferry'",
                    NULL, 0, NULL, version, sizeof version);
    if (st)
        return fy_sql_fail(st, err, err_cap, PQerrorMessage(conn));
    if (atoll(version) > FERRY_SQL_SCHEMA_VERSION) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the database's ferry tables are version %s; this libferry-sql "
                 "writes version %d (upgrade it)",
                 version, FERRY_SQL_SCHEMA_VERSION);
        return fy_sql_fail(FERRY_EFORMAT, err, err_cap, msg);
    }
    /* One transaction; its notices ("already exists, skipping") are not
     * news: SET LOCAL keeps them from the client until it ends. */
    st = s_exec(conn, "BEGIN", NULL, 0, NULL, NULL, 0);
    if (st == FERRY_OK)
        st = s_exec(conn, "SET LOCAL client_min_messages = warning", NULL, 0, NULL, NULL, 0);
    if (st == FERRY_OK) {
        PGresult *res = PQexec(conn, fy_sql_ddl_pg);
        st = PQresultStatus(res) == PGRES_COMMAND_OK ? FERRY_OK : s_status(res);
        PQclear(res);
    }
    if (st) {
        fy_sql_fail(st, err, err_cap, PQerrorMessage(conn));
        PQclear(PQexec(conn, "ROLLBACK"));
        return st;
    }
    return s_exec(conn, "COMMIT", NULL, 0, NULL, NULL, 0);
}

ferry_status_t
ferry_outbox_pg_put(PGconn *conn, const ferry_outbox_event_t *ev, int64_t *id)
{
    return fy_sql_pg_outbox_put(conn, NULL, ev, id);
}

ferry_status_t
fy_sql_pg_outbox_put(PGconn *conn, fy_sql_pg_named_t *named, const ferry_outbox_event_t *ev,
                     int64_t *id)
{
    if (!conn || !fy_outbox_event_valid(ev))
        return FERRY_EINVAL;
    ferry_status_t st;
    char *headers = fy_sql_headers_json(ev->headers, ev->header_count, &st);
    if (st)
        return st;
    char created[24];
    snprintf(created, sizeof created, "%llu",
             (unsigned long long)(ev->created_ms ? ev->created_ms : fy_wall_ms()));
    /* The payload goes in binary (format 1): no escaping, any bytes. */
    const char *params[] = {ev->aggregate_type,
                            ev->aggregate_id,
                            ev->event_type,
                            ev->len ? (const char *)ev->payload : "",
                            headers,
                            created};
    int lengths[] = {0, 0, 0, (int)ev->len, 0, 0};
    int formats[] = {0, 0, 0, 1, 0, 0};
    PGresult *res = NULL;
    st = fy_sql_pg_run_named(conn, named, FY_SQL_PG_OUTBOX_PUT,
                             "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, "
                             "payload, headers, created_at) VALUES ($1, $2, $3, $4::bytea, "
                             "$5::jsonb, to_timestamp($6::bigint / 1000.0)) RETURNING id",
                             6, params, lengths, formats, id ? &res : NULL);
    free(headers);
    if (st || !id) /* pipelined without an id wanted: not waited for */
        return st;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return FERRY_EIO;
    }
    if (id)
        *id = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return FERRY_OK;
}

ferry_status_t
ferry_inbox_pg_record(PGconn *conn, const char *consumer, const ferry_stored_message_t *msg)
{
    char buf[32], when[24];
    const char *key = fy_sql_inbox_key(msg, buf, sizeof buf);
    if (!conn || !key || !consumer || !*consumer || strlen(consumer) > FERRY_NAME_MAX)
        return FERRY_EINVAL;
    snprintf(when, sizeof when, "%llu", (unsigned long long)fy_wall_ms());
    const char *params[] = {consumer, msg->topic, key, when};
    long long rows = 0;
    /* A concurrent transaction holding the same key: this waits for it, then
     * inserts nothing if it committed. */
    ferry_status_t st = s_exec(conn,
                               "INSERT INTO ferry_inbox (consumer, topic, message, handled_at) "
                               "VALUES ($1, $2, $3, $4::bigint) ON CONFLICT DO NOTHING",
                               params, 4, &rows, NULL, 0);
    return st ? st : rows ? FERRY_OK : FERRY_EEXISTS;
}

ferry_status_t
ferry_inbox_pg_handle(PGconn *conn, const char *consumer, const ferry_stored_message_t *msg,
                      ferry_inbox_pg_fn fn, void *user, int *fn_rc)
{
    if (fn_rc)
        *fn_rc = 0;
    if (!conn || !fn || !consumer || !msg)
        return FERRY_EINVAL;
    ferry_status_t st = s_exec(conn, "BEGIN", NULL, 0, NULL, NULL, 0);
    if (st)
        return st;
    st = ferry_inbox_pg_record(conn, consumer, msg);
    if (st == FERRY_OK) {
        int r = fn(conn, msg, user);
        if (fn_rc)
            *fn_rc = r;
        /* COMMIT ends the transaction either way; only one that ends
         * committed counts (fn may have left it aborted). */
        if (r == 0)
            return fy_sql_pg_commit(NULL, conn);
        st = FERRY_ECANCELLED;
    }
    s_exec(conn, "ROLLBACK", NULL, 0, NULL, NULL, 0);
    return st;
}

ferry_status_t
ferry_inbox_pg_prune(PGconn *conn, uint64_t before_ms, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!conn)
        return FERRY_EINVAL;
    char before[24];
    snprintf(before, sizeof before, "%llu", (unsigned long long)before_ms);
    const char *params[] = {before};
    long long rows = 0;
    ferry_status_t st = s_exec(conn, "DELETE FROM ferry_inbox WHERE handled_at < $1::bigint",
                               params, 1, &rows, NULL, 0);
    if (st == FERRY_OK && removed)
        *removed = (size_t)rows;
    return st;
}
