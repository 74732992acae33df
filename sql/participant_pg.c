/* SPDX-License-Identifier: MIT */
/*
 * participant_pg.c - a saga participant whose answers and work are in its
 * PostgreSQL database (ferry_sql.h): table ferry_saga_inbox, the work in a
 * savepoint of the transaction that records the answer, on the
 * participant's own connection.
 *
 * Two participant processes may serve one queue: a command's transaction
 * first takes an advisory lock on (saga, definition, step), so a command
 * delivered to both at once runs once, the second finding the first's
 * answer.
 */
#include "sql_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct {
    PGconn *conn;
    ferry_saga_pg_handler_fn fn;
    void *user;
} s_part_t;

static ferry_status_t
s_recorded(void *self, void *tx, char action, const char *def, const char *step,
           const char *saga_id, int *answer, char *reason, size_t cap)
{
    (void)self;
    *answer = -1;
    reason[0] = '\0';
    char act[2] = {action, '\0'};
    const char *params[] = {saga_id, def, step, act};
    /* One command at a time, across processes (taken again: a no-op). */
    ferry_status_t st =
        fy_sql_pg_run(tx,
                      "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || "
                      "$2 || chr(31) || $3, 0))",
                      3, params, NULL, NULL, NULL);
    PGresult *res = NULL;
    if (st == FERRY_OK)
        st =
            fy_sql_pg_run(tx,
                          "SELECT ok, reason FROM ferry_saga_inbox WHERE saga_id = $1 AND def = $2 "
                          "AND step = $3 AND action = $4",
                          4, params, NULL, NULL, &res);
    if (st)
        return st;
    if (PQntuples(res) == 1) {
        *answer = PQgetvalue(res, 0, 0)[0] == 't';
        snprintf(reason, cap, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return FERRY_OK;
}

static ferry_status_t
s_record(void *self, void *tx, char action, const char *def, const char *step, const char *saga_id,
         bool ok, const char *reason)
{
    (void)self;
    char act[2] = {action, '\0'}, when[24];
    snprintf(when, sizeof when, "%llu", (unsigned long long)fy_wall_ms());
    const char *params[] = {saga_id, def, step, act, ok ? "true" : "false", reason, when};
    return fy_sql_pg_run(tx,
                         "INSERT INTO ferry_saga_inbox (saga_id, def, step, action, ok, reason, "
                         "handled_at) VALUES ($1, $2, $3, $4, $5::boolean, $6, $7::bigint) "
                         "ON CONFLICT (saga_id, def, step, action) DO UPDATE SET ok = excluded.ok, "
                         "reason = excluded.reason, handled_at = excluded.handled_at",
                         7, params, NULL, NULL, NULL);
}

/* The work in a savepoint: released when it succeeds, rolled back when not. */
static ferry_status_t
s_work(void *self, void *tx, const ferry_saga_command_t *cmd, char *reason, size_t cap, bool *ok)
{
    s_part_t *s = self;
    *ok = false;
    ferry_status_t st = fy_sql_pg_run(tx, "SAVEPOINT ferry_work", 0, NULL, NULL, NULL, NULL);
    if (st)
        return st;
    *ok = s->fn(tx, cmd, reason, cap, s->user);
    if (!*ok)
        st = fy_sql_pg_run(tx, "ROLLBACK TO SAVEPOINT ferry_work", 0, NULL, NULL, NULL, NULL);
    /* A work that left the transaction failed (a statement error) says so
     * here: the release fails and nothing is recorded. */
    return st ? st : fy_sql_pg_run(tx, "RELEASE SAVEPOINT ferry_work", 0, NULL, NULL, NULL, NULL);
}

static void
s_destroy(void *self)
{
    s_part_t *s = self;
    PQfinish(s->conn);
    free(s);
}

ferry_status_t
ferry_saga_pg_participant_new(ferry_client_t *client, const char *conninfo, const char *queue,
                              ferry_saga_pg_handler_fn fn, void *user,
                              ferry_saga_participant_t **out)
{
    if (!client || !conninfo || !queue || !fn || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_part_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    *s = (s_part_t){.fn = fn, .user = user};
    ferry_status_t st = fy_sql_pg_open(conninfo, &s->conn);
    if (st) {
        free(s);
        return st;
    }
    ferry_saga_inbox_store_t store = {.self = s,
                                      .begin = fy_sql_pg_begin,
                                      .commit = fy_sql_pg_commit,
                                      .rollback = fy_sql_pg_rollback,
                                      .recorded = s_recorded,
                                      .record = s_record,
                                      .run = s_work,
                                      .destroy = s_destroy};
    return ferry_saga_participant_new_with_store(client, &store, queue, out);
}
