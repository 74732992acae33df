/* SPDX-License-Identifier: MIT */
/*
 * saga_pg.c - the saga store on PostgreSQL (ferry_sql.h): table ferry_saga,
 * the commands into table outbox, on the orchestrator's own connection or,
 * for a start, on the caller's inside its transaction.
 *
 * The orchestrator's own transactions run in libpq's pipeline mode (its
 * statements prepared once): a reply's transition costs one round trip
 * (the saga's read), its writes ride along, their answers read before the
 * next read or at the commit; a write that failed fails the commit.
 *
 * Several orchestrator processes may share one database: get() locks the
 * saga's row (FOR UPDATE) for the transition, due() takes due sagas FOR
 * UPDATE SKIP LOCKED, so no step is sent twice; the core checks a locked
 * saga is still due.
 */
#include "sql_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    PGconn *conn;            /* the orchestrator's own */
    fy_sql_pg_named_t named; /* its prepared statements, its pipelined transaction */
} s_pg_t;

/* The orchestrator's own transactions run in pipeline mode: a transition's
 * writes go without waiting, their answers read with the next saga read or
 * at the commit. */
static ferry_status_t
s_begin(void *self, void **tx)
{
    s_pg_t *s = self;
    return fy_sql_pg_pipe_begin(&s->named, tx);
}

static ferry_status_t
s_commit(void *self, void *tx)
{
    (void)tx;
    s_pg_t *s = self;
    return fy_sql_pg_pipe_commit(&s->named);
}

static void
s_rollback(void *self, void *tx)
{
    (void)tx;
    s_pg_t *s = self;
    fy_sql_pg_pipe_rollback(&s->named);
}

/* The prepared statements on the own connection; NULL on the caller's. */
static fy_sql_pg_named_t *
s_named(s_pg_t *s, void *tx)
{
    return !tx || tx == s->conn ? &s->named : NULL;
}

static ferry_status_t
s_get(void *self, void *tx, const char *id, ferry_saga_record_t *r)
{
    s_pg_t *s = self;
    memset(r, 0, sizeof *r);
    const char *params[] = {id};
    PGresult *res = NULL;
    /* In a transaction: the row stays locked until it ends. */
    ferry_status_t st = fy_sql_pg_run_named(
        tx ? tx : s->conn, s_named(s, tx), tx ? FY_SQL_PG_SAGA_GET_LOCKED : FY_SQL_PG_SAGA_GET,
        tx ? "SELECT def, state, step, attempt, deadline_ms, reason, data, waiting, "
             "results::text FROM ferry_saga WHERE id = $1 FOR UPDATE"
           : "SELECT def, state, step, attempt, deadline_ms, reason, data, waiting, "
             "results::text FROM ferry_saga WHERE id = $1",
        1, params, NULL, NULL, &res);
    if (st)
        return st;
    if (PQntuples(res) != 1 || PQnfields(res) != 9) {
        ferry_status_t none = PQnfields(res) == 9 ? FERRY_ENOTFOUND : FERRY_EIO;
        PQclear(res);
        return none;
    }
    snprintf(r->def, sizeof r->def, "%s", PQgetvalue(res, 0, 0));
    r->state = (ferry_saga_state_t)atoi(PQgetvalue(res, 0, 1));
    r->step = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
    r->attempt = (uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10);
    r->deadline_ms = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
    snprintf(r->reason, sizeof r->reason, "%s", PQgetvalue(res, 0, 5));
    r->waiting = PQgetvalue(res, 0, 7)[0] == 't';
    size_t len = 0;
    unsigned char *data = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 6), &len);
    ferry_status_t fs = fy_sql_results_parse(PQgetvalue(res, 0, 8), &r->results, &r->results_len);
    PQclear(res);
    r->data = malloc(len ? len : 1);
    if (!data || !r->data || fs) {
        PQfreemem(data);
        free(r->data);
        free(r->results);
        memset(r, 0, sizeof *r);
        return fs ? fs : FERRY_ENOMEM;
    }
    memcpy(r->data, data, len);
    r->len = len;
    PQfreemem(data);
    return FERRY_OK;
}

static ferry_status_t
s_put(void *self, void *tx, const char *id, const ferry_saga_record_t *r, bool created)
{
    char state[8], step[16], attempt[16], deadline[24];
    char *results = fy_sql_results_json(r->results, r->results_len);
    if (!results)
        return FERRY_ENOMEM;
    snprintf(state, sizeof state, "%d", (int)r->state);
    snprintf(step, sizeof step, "%u", r->step);
    snprintf(attempt, sizeof attempt, "%u", r->attempt);
    snprintf(deadline, sizeof deadline, "%llu", (unsigned long long)r->deadline_ms);
    const char *params[] = {id,
                            r->def,
                            state,
                            step,
                            attempt,
                            deadline,
                            r->reason,
                            r->len ? (const char *)r->data : "",
                            r->waiting ? "true" : "false",
                            results};
    int lengths[] = {0, 0, 0, 0, 0, 0, 0, (int)r->len, 0, 0};
    int formats[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    ferry_status_t st = fy_sql_pg_run_named(
        tx, s_named(self, tx), created ? FY_SQL_PG_SAGA_INSERT : FY_SQL_PG_SAGA_UPDATE,
        created ? "INSERT INTO ferry_saga (id, def, state, step, attempt, deadline_ms, "
                  "reason, data, waiting, results) VALUES ($1, $2, $3::smallint, $4::integer, "
                  "$5::integer, $6::bigint, $7, $8::bytea, $9::boolean, $10::jsonb)"
                : "UPDATE ferry_saga SET def = $2, state = $3::smallint, step = "
                  "$4::integer, attempt = $5::integer, deadline_ms = $6::bigint, "
                  "reason = $7, data = $8::bytea, waiting = $9::boolean, results = $10::jsonb "
                  "WHERE id = $1",
        10, params, lengths, formats, NULL);
    free(results);
    return st;
}

static ferry_status_t
s_send(void *self, void *tx, const ferry_outbox_event_t *ev)
{
    return fy_sql_pg_outbox_put(tx, s_named(self, tx), ev, NULL);
}

static ferry_status_t
s_due(void *self, void *tx, uint64_t now, size_t max, char (*ids)[201], size_t *n)
{
    *n = 0;
    char at[24], lim[24];
    snprintf(at, sizeof at, "%llu", (unsigned long long)now);
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[] = {at, lim};
    PGresult *res = NULL;
    ferry_status_t st =
        fy_sql_pg_run_named(tx, s_named(self, tx), FY_SQL_PG_SAGA_DUE,
                            "SELECT id FROM ferry_saga WHERE state IN (1, 2) AND deadline_ms "
                            "<= $1::bigint ORDER BY deadline_ms LIMIT $2::integer "
                            "FOR UPDATE SKIP LOCKED",
                            2, params, NULL, NULL, &res);
    if (st)
        return st;
    for (int i = 0; i < PQntuples(res) && *n < max; i++)
        if (strlen(PQgetvalue(res, i, 0)) <= 200)
            snprintf(ids[(*n)++], 201, "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    return FERRY_OK;
}

/* The first column of the one row of @p sql on the own connection, as a number. */
static ferry_status_t
s_number(s_pg_t *s, const char *sql, int n, const char *const *params, unsigned long long *out)
{
    PGresult *res = NULL;
    ferry_status_t st = fy_sql_pg_run(s->conn, sql, n, params, NULL, NULL, &res);
    if (st)
        return st;
    *out = PQntuples(res) == 1 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return FERRY_OK;
}

static ferry_status_t
s_next_deadline(void *self, uint64_t *at)
{
    unsigned long long v = 0;
    ferry_status_t st =
        s_number(self, "SELECT coalesce(min(deadline_ms), 0) FROM ferry_saga WHERE state IN (1, 2)",
                 0, NULL, &v);
    *at = v;
    return st;
}

static ferry_status_t
s_active(void *self, size_t *n)
{
    unsigned long long v = 0;
    ferry_status_t st =
        s_number(self, "SELECT count(*) FROM ferry_saga WHERE state IN (1, 2)", 0, NULL, &v);
    *n = (size_t)v;
    return st;
}

static ferry_status_t
s_purge(void *self, uint64_t before_ms, size_t *removed)
{
    s_pg_t *s = self;
    char before[24];
    snprintf(before, sizeof before, "%llu", (unsigned long long)before_ms);
    const char *params[] = {before};
    PGresult *res = NULL;
    ferry_status_t st =
        fy_sql_pg_run(s->conn,
                      "DELETE FROM ferry_saga WHERE state IN (3, 4) AND deadline_ms < "
                      "$1::bigint",
                      1, params, NULL, NULL, &res);
    if (st)
        return st;
    if (removed)
        *removed = (size_t)strtoull(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return FERRY_OK;
}

static void
s_destroy(void *self)
{
    s_pg_t *s = self;
    PQfinish(s->conn);
    free(s);
}

ferry_status_t
ferry_saga_pg_orchestrator_new(const char *conninfo, const ferry_saga_def_t *defs, size_t def_count,
                               const ferry_saga_config_t *cfg, ferry_saga_orchestrator_t **out)
{
    if (!conninfo || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_pg_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    ferry_status_t st = fy_sql_pg_open(conninfo, &s->conn);
    if (st) {
        free(s);
        return st;
    }
    s->named.conn = s->conn;
    ferry_saga_store_t store = {.self = s,
                                .begin = s_begin,
                                .commit = s_commit,
                                .rollback = s_rollback,
                                .get = s_get,
                                .put = s_put,
                                .send = s_send,
                                .due = s_due,
                                .next_deadline = s_next_deadline,
                                .active = s_active,
                                .purge = s_purge,
                                .destroy = s_destroy};
    return ferry_saga_orchestrator_new_with_store(&store, defs, def_count, cfg, out);
}

ferry_status_t
ferry_saga_pg_start(ferry_saga_orchestrator_t *o, PGconn *conn, const char *def, const char *id,
                    const void *data, size_t len)
{
    const ferry_saga_store_t *store = ferry_saga_orchestrator_store(o);
    if (!store || store->begin != s_begin || !conn)
        return FERRY_EINVAL; /* not an orchestrator on PostgreSQL */
    return ferry_saga_start_in(o, conn, def, id, data, len);
}
