/* SPDX-License-Identifier: MIT */
/*
 * participant_sqlite.c - a saga participant whose answers and work are in
 * its SQLite database (ferry_sql.h): table ferry_saga_inbox, the work in a
 * savepoint of the BEGIN IMMEDIATE transaction that records the answer, on
 * the participant's own connection (one writer at a time: a command is
 * never run by two processes at once).
 */
#include "sql_lite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct {
    sqlite3 *db;
    ferry_saga_sqlite_handler_fn fn;
    void *user;
} s_part_t;

/* A statement on the command's key (saga_id, def, step, action = ?1-?4). */
static int
s_prepare(sqlite3 *db, const char *sql, char action, const char *def, const char *step,
          const char *saga_id, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    char act[2] = {action, '\0'};
    sqlite3_bind_text(*st, 1, saga_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 2, def, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 3, step, -1, SQLITE_STATIC);
    sqlite3_bind_text(*st, 4, act, 1, SQLITE_TRANSIENT);
    return SQLITE_OK;
}

static ferry_status_t
s_recorded(void *self, void *tx, char action, const char *def, const char *step,
           const char *saga_id, int *answer, char *reason, size_t cap)
{
    (void)self;
    *answer = -1;
    reason[0] = '\0';
    sqlite3_stmt *st;
    int rc = s_prepare(tx,
                       "SELECT ok, reason FROM ferry_saga_inbox WHERE saga_id = ?1 AND def = ?2 "
                       "AND step = ?3 AND action = ?4",
                       action, def, step, saga_id, &st);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *why = sqlite3_column_text(st, 1);
        *answer = sqlite3_column_int(st, 0) != 0;
        snprintf(reason, cap, "%s", why ? (const char *)why : "");
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FERRY_OK : fy_sql_lite_status(rc);
}

static ferry_status_t
s_record(void *self, void *tx, char action, const char *def, const char *step, const char *saga_id,
         bool ok, const char *reason)
{
    (void)self;
    sqlite3_stmt *st;
    int rc = s_prepare(tx,
                       "INSERT INTO ferry_saga_inbox (saga_id, def, step, action, ok, reason, "
                       "handled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (saga_id, "
                       "def, step, action) DO UPDATE SET ok = excluded.ok, reason = "
                       "excluded.reason, handled_at = excluded.handled_at",
                       action, def, step, saga_id, &st);
    if (rc != SQLITE_OK)
        return fy_sql_lite_status(rc);
    sqlite3_bind_int(st, 5, ok ? 1 : 0);
    sqlite3_bind_text(st, 6, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)fy_wall_ms());
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? FERRY_OK : fy_sql_lite_status(rc);
}

/* The work in a savepoint: released when it succeeds, rolled back when not. */
static ferry_status_t
s_work(void *self, void *tx, const ferry_saga_command_t *cmd, char *reason, size_t cap, bool *ok)
{
    s_part_t *s = self;
    *ok = false;
    ferry_status_t st = fy_sql_lite_exec(tx, "SAVEPOINT ferry_work");
    if (st)
        return st;
    *ok = s->fn(tx, cmd, reason, cap, s->user);
    if (!*ok)
        st = fy_sql_lite_exec(tx, "ROLLBACK TO SAVEPOINT ferry_work");
    return st ? st : fy_sql_lite_exec(tx, "RELEASE SAVEPOINT ferry_work");
}

static void
s_destroy(void *self)
{
    s_part_t *s = self;
    sqlite3_close(s->db);
    free(s);
}

ferry_status_t
ferry_saga_sqlite_participant_new(ferry_client_t *client, const char *path, const char *queue,
                                  ferry_saga_sqlite_handler_fn fn, void *user,
                                  ferry_saga_participant_t **out)
{
    if (!client || !path || !queue || !fn || !out)
        return FERRY_EINVAL;
    *out = NULL;
    s_part_t *s = calloc(1, sizeof *s);
    if (!s)
        return FERRY_ENOMEM;
    *s = (s_part_t){.fn = fn, .user = user};
    ferry_status_t st = fy_sql_lite_open(path, &s->db);
    if (st) {
        free(s);
        return st;
    }
    ferry_saga_inbox_store_t store = {.self = s,
                                      .begin = fy_sql_lite_begin,
                                      .commit = fy_sql_lite_commit,
                                      .rollback = fy_sql_lite_rollback,
                                      .recorded = s_recorded,
                                      .record = s_record,
                                      .run = s_work,
                                      .destroy = s_destroy};
    return ferry_saga_participant_new_with_store(client, &store, queue, out);
}
