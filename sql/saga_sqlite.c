/* SPDX-License-Identifier: MIT */
/*
 * saga_sqlite.c - the saga store on SQLite (ferry_sql.h): table ferry_saga,
 * the commands into table outbox, on the orchestrator's own connection or,
 * for a start, on the caller's inside its transaction.
 *
 * SQLite has one writer at a time: a transition's transaction is BEGIN
 * IMMEDIATE, so a saga read in it cannot change under it; the own
 * connection waits up to 10 s for the write lock (the service and the
 * relay write the same file).
 */
#include "sql_lite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sqlite3 *db; /* the orchestrator's own */
} s_lite_t;

static ferry_status_t
s_get(void *self, void *tx, const char *id, ferry_saga_record_t *r)
{
    s_lite_t *s = self;
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(tx ? tx : s->db,
                                "SELECT def, state, step, attempt, deadline_ms, reason, data, "
                                "waiting, results FROM ferry_saga WHERE id = ?1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    ferry_status_t fs = rc == SQLITE_DONE ? FERRY_ENOTFOUND : fy_sql_lite_status(rc);
    if (rc == SQLITE_ROW) {
        const unsigned char *def = sqlite3_column_text(st, 0), *why = sqlite3_column_text(st, 5);
        snprintf(r->def, sizeof r->def, "%s", def ? (const char *)def : "");
        r->state = (ferry_saga_state_t)sqlite3_column_int(st, 1);
        r->step = (uint32_t)sqlite3_column_int64(st, 2);
        r->attempt = (uint32_t)sqlite3_column_int64(st, 3);
        r->deadline_ms = (uint64_t)sqlite3_column_int64(st, 4);
        r->waiting = sqlite3_column_int(st, 7) != 0;
        snprintf(r->reason, sizeof r->reason, "%s", why ? (const char *)why : "");
        const void *data = sqlite3_column_blob(st, 6);
        r->len = (size_t)sqlite3_column_bytes(st, 6);
        r->data = malloc(r->len ? r->len : 1);
        if (!r->data)
            fs = FERRY_ENOMEM;
        else if (r->len)
            memcpy(r->data, data, r->len);
        if (fs == FERRY_OK)
            fs = fy_sql_results_parse((const char *)sqlite3_column_text(st, 8), &r->results,
                                      &r->results_len);
        if (fs) {
            free(r->data);
            r->data = NULL;
        }
    }
    sqlite3_finalize(st);
    return fs;
}

static ferry_status_t
s_put(void *self, void *tx, const char *id, const ferry_saga_record_t *r, bool created)
{
    (void)self;
    char *results = fy_sql_results_json(r->results, r->results_len);
    if (!results)
        return FERRY_ENOMEM;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        tx,
        created ? "INSERT INTO ferry_saga (id, def, state, step, attempt, deadline_ms, reason, "
                  "data, waiting, results) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                : "UPDATE ferry_saga SET def = ?2, state = ?3, step = ?4, attempt = ?5, "
                  "deadline_ms = ?6, reason = ?7, data = ?8, waiting = ?9, results = ?10 "
                  "WHERE id = ?1",
        -1, &st, NULL);
    if (rc != SQLITE_OK) {
        free(results);
        return fy_sql_lite_status(rc);
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->def, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, (int)r->state);
    sqlite3_bind_int64(st, 4, r->step);
    sqlite3_bind_int64(st, 5, r->attempt);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)r->deadline_ms);
    sqlite3_bind_text(st, 7, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 8, r->len ? r->data : "", r->len, SQLITE_STATIC);
    sqlite3_bind_int(st, 9, r->waiting ? 1 : 0);
    sqlite3_bind_text(st, 10, results, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    free(results);
    return rc == SQLITE_DONE ? FERRY_OK : fy_sql_lite_status(rc);
}

static ferry_status_t
s_send(void *self, void *tx, const ferry_outbox_event_t *ev)
{
    (void)self;
    return ferry_outbox_sqlite_put(tx, ev, NULL);
}

static ferry_status_t
s_due(void *self, void *tx, uint64_t now, size_t max, char (*ids)[201], size_t *n)
{
    (void)self;
    *n = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(tx,
                                "SELECT id FROM ferry_saga WHERE state IN (1, 2) AND deadline_ms "
                                "<= ?1 ORDER BY deadline_ms LIMIT ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        if (id && strlen((const char *)id) <= 200)
            snprintf(ids[(*n)++], 201, "%s", (const char *)id);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? FERRY_OK : fy_sql_lite_status(rc);
}

/* The one integer @p sql answers on the own connection. */
static ferry_status_t
s_number(s_lite_t *s, const char *sql, sqlite3_int64 *out)
{
    sqlite3_stmt *st;
    *out = 0;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FERRY_OK : fy_sql_lite_status(rc);
}

static ferry_status_t
s_next_deadline(void *self, uint64_t *at)
{
    sqlite3_int64 v;
    ferry_status_t st = s_number(
        self, "SELECT coalesce(min(deadline_ms), 0) FROM ferry_saga WHERE state IN (1, 2)", &v);
    *at = (uint64_t)v;
    return st;
}

static ferry_status_t
s_active(void *self, size_t *n)
{
    sqlite3_int64 v;
    ferry_status_t st = s_number(self, "SELECT count(*) FROM ferry_saga WHERE state IN (1, 2)", &v);
    *n = (size_t)v;
    return st;
}

static ferry_status_t
s_purge(void *self, uint64_t before_ms, size_t *removed)
{
    s_lite_t *s = self;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(
        s->db, "DELETE FROM ferry_saga WHERE state IN (3, 4) AND deadline_ms < ?1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)before_ms);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE && removed)
        *removed = (size_t)sqlite3_changes(s->db);
    return rc == SQLITE_DONE ? FERRY_OK : fy_sql_lite_status(rc);
}

static void
s_destroy(void *self)
{
    s_lite_t *s = self;
    sqlite3_close(s->db);
    free(s);
}

ferry_status_t
ferry_saga_sqlite_orchestrator_new(const char *path, const ferry_saga_def_t *defs, size_t def_count,
                                   const ferry_saga_config_t *cfg, ferry_saga_orchestrator_t **out)
{
    if (!path || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_lite_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    ferry_status_t st = fy_sql_lite_open(path, &s->db);
    if (st) {
        free(s);
        return st;
    }
    ferry_saga_store_t store = {.self = s,
                                .begin = fy_sql_lite_begin,
                                .commit = fy_sql_lite_commit,
                                .rollback = fy_sql_lite_rollback,
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
ferry_saga_sqlite_start(ferry_saga_orchestrator_t *o, sqlite3 *db, const char *def, const char *id,
                        const void *data, size_t len)
{
    const ferry_saga_store_t *store = ferry_saga_orchestrator_store(o);
    if (!store || store->begin != fy_sql_lite_begin || !db)
        return FERRY_EINVAL; /* not an orchestrator on SQLite */
    return ferry_saga_start_in(o, db, def, id, data, len);
}
