/* SPDX-License-Identifier: MIT */
/*
 * sqlite_store.c - the outbox and the inbox in a service's SQLite database,
 * inside the caller's transactions (ferry_sql.h).
 *
 * Statements are prepared per call (a few microseconds; the connection is
 * the caller's and this library keeps no state of its own).
 */
#include "sql_lite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "outbox_event.h"

ferry_status_t
fy_sql_lite_status(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return FERRY_OK;
    case SQLITE_FULL:
        return FERRY_ESTORAGE_FULL;
    case SQLITE_NOMEM:
        return FERRY_ENOMEM;
    case SQLITE_CONSTRAINT:
        return FERRY_EEXISTS;
    default:
        return FERRY_EIO;
    }
}

#define s_status fy_sql_lite_status

ferry_status_t
fy_sql_lite_exec(sqlite3 *db, const char *sql)
{
    return fy_sql_lite_status(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

ferry_status_t
fy_sql_lite_open(const char *path, sqlite3 **db)
{
    ferry_status_t st = sqlite3_open(path, db) == SQLITE_OK ? FERRY_OK : FERRY_EIO;
    if (st == FERRY_OK) {
        sqlite3_busy_timeout(*db, 10000);
        /* Durable: every commit synced (FULL is SQLite's default; say it). */
        st = fy_sql_lite_exec(*db, "PRAGMA synchronous = FULL");
    }
    if (st == FERRY_OK)
        st = ferry_sql_setup_sqlite(*db, NULL, 0);
    if (st) {
        sqlite3_close(*db);
        *db = NULL;
    }
    return st;
}

ferry_status_t
fy_sql_lite_begin(void *self, void **tx)
{
    *tx = *(sqlite3 **)self;
    return fy_sql_lite_exec(*tx, "BEGIN IMMEDIATE");
}

ferry_status_t
fy_sql_lite_commit(void *self, void *tx)
{
    (void)self;
    ferry_status_t st = fy_sql_lite_exec(tx, "COMMIT");
    if (st)
        fy_sql_lite_exec(tx, "ROLLBACK");
    return st;
}

void
fy_sql_lite_rollback(void *self, void *tx)
{
    (void)self;
    fy_sql_lite_exec(tx, "ROLLBACK");
}

/* Runs @p sql (one statement) with text parameters @p params; *changes
 * (may be NULL) gets the rows it changed. */
static ferry_status_t
s_exec(sqlite3 *db, const char *sql, const char *const *params, size_t nparams, int *changes)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return s_status(rc);
    for (size_t i = 0; i < nparams && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_text(st, (int)i + 1, params[i], -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_DONE && changes)
        *changes = sqlite3_changes(db);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? FERRY_OK : s_status(rc);
}

/* The stored schema version (0: none yet). */
static ferry_status_t
s_version(sqlite3 *db, long long *version)
{
    *version = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT version FROM ferry_schema WHERE component = 'ferry'",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) /* no such table: nothing set up */
        return FERRY_OK;
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        *version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? FERRY_OK : s_status(rc);
}

/* True if table @p table exists without column @p column. */
static bool
s_lacks(sqlite3 *db, const char *table, const char *column)
{
    char sql[160];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT 1 FROM %s LIMIT 0", table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false; /* no such table */
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "SELECT %s FROM %s LIMIT 0", column, table);
    bool lacks = sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK;
    sqlite3_finalize(st);
    return lacks;
}

ferry_status_t
ferry_sql_setup_sqlite(sqlite3 *db, char *err, size_t err_cap)
{
    if (!db)
        return fy_sql_fail(FERRY_EINVAL, err, err_cap, "no database");
    long long version;
    ferry_status_t st = s_version(db, &version);
    if (st)
        return fy_sql_fail(st, err, err_cap, sqlite3_errmsg(db));
    if (version > FERRY_SQL_SCHEMA_VERSION) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the database's ferry tables are version %lld; this libferry-sql "
                 "writes version %d (upgrade it)",
                 version, FERRY_SQL_SCHEMA_VERSION);
        return fy_sql_fail(FERRY_EFORMAT, err, err_cap, msg);
    }
    char *msg = NULL;
    int rc = SQLITE_OK;
    /* Version 1 -> 2: ferry_saga gets `results` (SQLite has no ADD COLUMN
     * IF NOT EXISTS, so sqlite.sql cannot say it). */
    if (s_lacks(db, "ferry_saga", "results"))
        rc =
            sqlite3_exec(db, "ALTER TABLE ferry_saga ADD COLUMN results TEXT NOT NULL DEFAULT '{}'",
                         NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, fy_sql_ddl_sqlite, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        st = fy_sql_fail(s_status(rc), err, err_cap, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return FERRY_OK;
}

ferry_status_t
ferry_outbox_sqlite_put(sqlite3 *db, const ferry_outbox_event_t *ev, int64_t *id)
{
    if (!db || !fy_outbox_event_valid(ev))
        return FERRY_EINVAL;
    ferry_status_t st;
    char *headers = fy_sql_headers_json(ev->headers, ev->header_count, &st);
    if (st)
        return st;
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, "
                                "payload, headers, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, ev->aggregate_type, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, ev->aggregate_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 3, ev->event_type, -1, SQLITE_STATIC);
        /* An empty payload is an empty BLOB, not NULL (the column is NOT NULL). */
        sqlite3_bind_blob64(stmt, 4, ev->len ? ev->payload : "", ev->len, SQLITE_STATIC);
        if (headers)
            sqlite3_bind_text(stmt, 5, headers, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(stmt, 5);
        sqlite3_bind_int64(stmt, 6,
                           (sqlite3_int64)(ev->created_ms ? ev->created_ms : fy_wall_ms()));
        rc = sqlite3_step(stmt);
        sqlite3_finalize(stmt);
    }
    free(headers);
    if (rc != SQLITE_DONE)
        return s_status(rc);
    if (id)
        *id = sqlite3_last_insert_rowid(db);
    return FERRY_OK;
}

ferry_status_t
ferry_inbox_sqlite_record(sqlite3 *db, const char *consumer, const ferry_stored_message_t *msg)
{
    char buf[32], when[24];
    const char *key = fy_sql_inbox_key(msg, buf, sizeof buf);
    if (!db || !key || !consumer || !*consumer || strlen(consumer) > FERRY_NAME_MAX)
        return FERRY_EINVAL;
    snprintf(when, sizeof when, "%llu", (unsigned long long)fy_wall_ms());
    const char *params[] = {consumer, msg->topic, key, when};
    int changes = 0;
    ferry_status_t st = s_exec(db,
                               "INSERT INTO ferry_inbox (consumer, topic, message, handled_at) "
                               "VALUES (?1, ?2, ?3, CAST(?4 AS INTEGER)) ON CONFLICT DO NOTHING",
                               params, 4, &changes);
    return st ? st : changes ? FERRY_OK : FERRY_EEXISTS;
}

ferry_status_t
ferry_inbox_sqlite_handle(sqlite3 *db, const char *consumer, const ferry_stored_message_t *msg,
                          ferry_inbox_sqlite_fn fn, void *user, int *fn_rc)
{
    if (fn_rc)
        *fn_rc = 0;
    if (!db || !fn || !consumer || !msg)
        return FERRY_EINVAL;
    /* IMMEDIATE: the write lock first, so two processes do not both read
     * "new" and then fail to upgrade. */
    ferry_status_t st = s_exec(db, "BEGIN IMMEDIATE", NULL, 0, NULL);
    if (st)
        return st;
    st = ferry_inbox_sqlite_record(db, consumer, msg);
    if (st == FERRY_OK) {
        int r = fn(db, msg, user);
        if (fn_rc)
            *fn_rc = r;
        st = r ? FERRY_ECANCELLED : s_exec(db, "COMMIT", NULL, 0, NULL);
    }
    if (st)
        s_exec(db, "ROLLBACK", NULL, 0, NULL); /* nothing of it stays */
    return st;
}

ferry_status_t
ferry_inbox_sqlite_prune(sqlite3 *db, uint64_t before_ms, size_t *removed)
{
    if (removed)
        *removed = 0;
    if (!db)
        return FERRY_EINVAL;
    char before[24];
    snprintf(before, sizeof before, "%llu", (unsigned long long)before_ms);
    const char *params[] = {before};
    int changes = 0;
    ferry_status_t st = s_exec(db, "DELETE FROM ferry_inbox WHERE handled_at < CAST(?1 AS INTEGER)",
                               params, 1, &changes);
    if (st == FERRY_OK && removed)
        *removed = (size_t)changes;
    return st;
}
