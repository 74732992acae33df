/* SPDX-License-Identifier: MIT */
/*
 * src_sqlite.c - the SQLite outbox source: polls `SELECT ... WHERE id > ?
 * ORDER BY id` (SQLite serialises writers, so ids become visible in order)
 * and keeps the relay position in table ferry_relay_position of the same
 * file, updated in one transaction with the deletes of --on-publish delete.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity.h"
#include "claim.h"
#include "source.h"

struct fr_source {
    sqlite3 *db;
    sqlite3_stmt *select, *hdrs, *pos_get, *pos_set, *pos_move, *del, *head, *oldest;
    char name[256];
    /* The rows of the last read, and everything they point to. */
    fr_row_t *rows;
    ferry_header_t *hdr;
    char *text;
    size_t cap_rows, cap_hdr, cap_text, used_text, nhdr;
    bool oom;       /* the text arena could not grow during this read */
    char dir[512];  /* the database's folder: its file system's free space */
    char path[512]; /* the database file: the name's lock file goes beside it */
    int lock_fd;    /* claim.h; -1 none */
};

static fy_status_t
s_fail(sqlite3 *db, fy_err_t *err, const char *what)
{
    return fy_err_set(err, FERRY_EIO, "sqlite: %s: %s", what,
                      db ? sqlite3_errmsg(db) : "out of memory");
}

/* A failure that may be a full disk: SQLITE_FULL, or an I/O error on a file
 * system with less than a MiB free (SQLite reports a shared-memory file it
 * cannot grow as an I/O error). ESTORAGE_FULL with the free space, so that
 * the relay waits for space instead of giving up; else as s_fail. */
static fy_status_t
s_fail_full(fr_source_t *s, int rc, fy_err_t *err, const char *what)
{
    struct statvfs v;
    unsigned long long avail = 0;
    bool known = s->dir[0] && statvfs(s->dir, &v) == 0;
    if (known)
        avail = (unsigned long long)v.f_bavail * v.f_frsize;
    if ((rc & 0xff) == SQLITE_FULL ||
        ((rc & 0xff) == SQLITE_IOERR && known && avail < (1u << 20))) {
        return fy_err_set(err, FERRY_ESTORAGE_FULL,
                          "sqlite: %s: the disk is full (%llu bytes free in %s): %s", what, avail,
                          s->dir, s->db ? sqlite3_errmsg(s->db) : "");
    }
    return s_fail(s->db, err, what);
}

static void
s_close(fr_source_t **sp)
{
    if (!sp || !*sp)
        return;
    fr_source_t *s = *sp;
    sqlite3_stmt *st[] = {s->select,   s->hdrs, s->pos_get, s->pos_set,
                          s->pos_move, s->del,  s->head,    s->oldest};
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++)
        sqlite3_finalize(st[i]);
    sqlite3_close(s->db);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->rows);
    free(s->hdr);
    free(s->text);
    free(s);
    *sp = NULL;
}

static bool
s_ident_ok(const char *t)
{
    if (!t || !*t || strlen(t) > 64)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return false;
    return true;
}

/* No name given: <kind>-<identity>, or "sqlite" where a position is
 * recorded under that old default (identity.h). */
static fy_status_t
s_default_name(fr_source_t *s, fy_err_t *err)
{
    sqlite3_stmt *st = NULL;
    const char *sql = "SELECT (SELECT id FROM ferry_relay_identity WHERE one = 1), "
                      "EXISTS (SELECT 1 FROM ferry_relay_position WHERE source = 'sqlite')";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return s_fail(s->db, err, "the outbox identity");
    fy_status_t rc = FERRY_OK;
    const char *ident = NULL;
    if (sqlite3_step(st) != SQLITE_ROW ||
        !fr_identity_ok(ident = (const char *)sqlite3_column_text(st, 0))) {
        rc = fy_err_set(err, FERRY_EIO,
                        "sqlite: table ferry_relay_identity holds no valid identity ('%s')",
                        ident ? ident : "");
    } else {
        fr_default_name("sqlite", ident, sqlite3_column_int(st, 1) != 0, s->name, sizeof s->name);
    }
    sqlite3_finalize(st);
    return rc;
}

static fy_status_t
s_open(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err)
{
    const char *location = a->location, *table = a->table, *name = a->name;
    *out = NULL;
    if (!s_ident_ok(table)) {
        return fy_err_set(err, FERRY_EINVAL, "table name '%s' is not a plain identifier",
                          table ? table : "");
    }
    fr_source_t *s = calloc(1, sizeof *s);
    if (!s)
        return s_fail(NULL, err, "open");
    s->lock_fd = -1;
    snprintf(s->path, sizeof s->path, "%s", location);
    const char *slash = strrchr(location, '/');
    if (slash)
        snprintf(s->dir, sizeof s->dir, "%.*s", (int)(slash - location + (slash == location)),
                 location);
    else
        snprintf(s->dir, sizeof s->dir, ".");
    if (sqlite3_open_v2(location, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        s_fail(s->db, err, location);
        s_close(&s);
        return FERRY_EIO;
    }
    sqlite3_busy_timeout(s->db, 10000);
    char sql[512];
    char *msg = NULL;
    /* Our position writes are durable when their commit returns. The
     * identity is made once (identity.h); a second relay racing to make it
     * keeps the first one's. */
    char ident[FR_IDENTITY_LEN + 1];
    fr_identity_new(ident);
    snprintf(sql, sizeof sql,
             "PRAGMA synchronous = FULL;"
             "CREATE TABLE IF NOT EXISTS ferry_relay_position ("
             " source TEXT PRIMARY KEY, last_id INTEGER NOT NULL);"
             "CREATE TABLE IF NOT EXISTS ferry_relay_identity ("
             " one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL);"
             "INSERT INTO ferry_relay_identity(one, id) VALUES (1, '%s') ON CONFLICT DO NOTHING",
             ident);
    int erc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (erc != SQLITE_OK) {
        fy_status_t st = s_fail_full(s, sqlite3_extended_errcode(s->db), err,
                                     "the position and identity tables");
        if (st != FERRY_ESTORAGE_FULL)
            fy_err_set(err, FERRY_EIO, "sqlite: %s",
                       msg ? msg : "cannot prepare the position table");
        sqlite3_free(msg);
        s_close(&s);
        return st;
    }
    struct {
        sqlite3_stmt **st;
        const char *fmt;
    } stmts[] = {
        {&s->select, "SELECT id, aggregate_type, aggregate_id, event_type, payload, headers, "
                     "created_at FROM %s WHERE id > ?1 ORDER BY id LIMIT ?2"},
        {&s->hdrs, "SELECT key, value FROM json_each(?1) WHERE type = 'text'"},
        {&s->pos_get, "SELECT last_id FROM ferry_relay_position WHERE source = ?1"},
        {&s->pos_set, "INSERT INTO ferry_relay_position(source, last_id) VALUES(?1, ?2) "
                      "ON CONFLICT(source) DO UPDATE SET last_id = excluded.last_id"},
        {&s->pos_move, "UPDATE ferry_relay_position SET source = ?2 WHERE source = ?1"},
        {&s->del, "DELETE FROM %s WHERE id <= ?1"},
        {&s->head, "SELECT count(*) FROM %s WHERE id > ?1"},
        {&s->oldest, "SELECT created_at FROM %s WHERE id > ?1 ORDER BY id LIMIT 1"},
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        snprintf(sql, sizeof sql, stmts[i].fmt, table);
        if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st, NULL) !=
            SQLITE_OK) {
            s_fail(s->db, err, "the outbox table (see outbox-relay/sql/sqlite.sql)");
            s_close(&s);
            return FERRY_EIO;
        }
    }
    if (name && *name) {
        snprintf(s->name, sizeof s->name, "%s", name);
    } else if (s_default_name(s, err) != FERRY_OK) {
        s_close(&s);
        return FERRY_EIO;
    }
    *out = s;
    return FERRY_OK;
}

/* The position recorded under @p name, *has false when there is none. */
static fy_status_t
s_position_of(fr_source_t *s, const char *name, fr_pos_t *pos, bool *has, fy_err_t *err)
{
    *pos = (fr_pos_t){0, 0};
    sqlite3_reset(s->pos_get);
    sqlite3_bind_text(s->pos_get, 1, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(s->pos_get);
    *has = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW)
        pos->id = (uint64_t)sqlite3_column_int64(s->pos_get, 0);
    sqlite3_reset(s->pos_get);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : s_fail(s->db, err, "position");
}

static fy_status_t
s_position(fr_source_t *s, fr_pos_t *pos, fy_err_t *err)
{
    bool has;
    return s_position_of(s, s->name, pos, &has, err);
}

static const char *
s_name(const fr_source_t *s)
{
    return s->name;
}

static fy_status_t
s_rename(fr_source_t *s, const char *from, bool *moved, fy_err_t *err)
{
    *moved = false;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return s_fail(s->db, err, "begin");
    fr_pos_t p;
    bool has_from = false, has_to = false;
    fy_status_t st = s_position_of(s, from, &p, &has_from, err);
    if (st == FERRY_OK)
        st = s_position_of(s, s->name, &p, &has_to, err);
    if (st == FERRY_OK)
        st = fr_rename_check(from, s->name, has_from, has_to, err);
    if (st == FERRY_OK && has_from) {
        sqlite3_reset(s->pos_move);
        sqlite3_bind_text(s->pos_move, 1, from, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s->pos_move, 2, s->name, -1, SQLITE_STATIC);
        if (sqlite3_step(s->pos_move) != SQLITE_DONE)
            st = s_fail(s->db, err, "move the position");
        sqlite3_reset(s->pos_move);
    }
    if (st != FERRY_OK || !has_from) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return s_fail(s->db, err, "commit the move");
    *moved = true;
    return FERRY_OK;
}

/* Copies a string into the text arena; returns its offset (+1), 0 if NULL. */
static size_t
s_keep(fr_source_t *s, const void *p, size_t len, bool nul)
{
    if (!p)
        return 0;
    size_t need = s->used_text + len + 1;
    if (need > s->cap_text) {
        size_t cap = s->cap_text ? s->cap_text : 65536;
        while (cap < need)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            s->oom = true;
            return 0;
        }
        s->text = t;
        s->cap_text = cap;
    }
    size_t off = s->used_text;
    memcpy(s->text + off, p, len);
    if (nul)
        s->text[off + len] = '\0';
    s->used_text += len + (nul ? 1 : 0);
    return off + 1;
}

/* Offsets are fixed up into pointers once the arena stops moving. */
#define S_PTR(s, off) ((off) ? (const char *)(s)->text + (off)-1 : NULL)

static fy_status_t
s_read(fr_source_t *s, fr_pos_t after_pos, size_t max, const fr_row_t **rows, size_t *n,
       fy_err_t *err)
{
    *n = 0;
    if (max > s->cap_rows) {
        fr_row_t *r = realloc(s->rows, max * sizeof *r);
        if (!r)
            return s_fail(NULL, err, "read");
        s->rows = r;
        s->cap_rows = max;
    }
    s->used_text = 0;
    s->nhdr = 0;
    s->oom = false;
    /* Offsets first (the arena may move while it grows). */
    size_t offs[1000][6];
    size_t hoff[1000][2];
    if (max > 1000)
        max = 1000;
    sqlite3_reset(s->select);
    sqlite3_bind_int64(s->select, 1, (sqlite3_int64)after_pos.id);
    sqlite3_bind_int64(s->select, 2, (sqlite3_int64)max);
    int rc;
    while ((rc = sqlite3_step(s->select)) == SQLITE_ROW) {
        size_t i = *n;
        fr_row_t *r = &s->rows[i];
        memset(r, 0, sizeof *r);
        r->id = (uint64_t)sqlite3_column_int64(s->select, 0);
        for (int c = 1; c <= 3; c++)
            offs[i][c - 1] = s_keep(s, sqlite3_column_text(s->select, c),
                                    (size_t)sqlite3_column_bytes(s->select, c), true);
        const void *pl = sqlite3_column_blob(s->select, 4);
        r->payload_len = (size_t)sqlite3_column_bytes(s->select, 4);
        offs[i][3] = s_keep(s, pl ? pl : "", r->payload_len, false);
        r->created_ms = (uint64_t)sqlite3_column_int64(s->select, 6);
        hoff[i][0] = s->nhdr;
        const unsigned char *json = sqlite3_column_text(s->select, 5);
        if (json && *json) {
            sqlite3_reset(s->hdrs);
            sqlite3_bind_text(s->hdrs, 1, (const char *)json, -1, SQLITE_TRANSIENT);
            while (sqlite3_step(s->hdrs) == SQLITE_ROW) {
                if (s->nhdr == s->cap_hdr) {
                    size_t cap = s->cap_hdr ? s->cap_hdr * 2 : 1024;
                    ferry_header_t *h = realloc(s->hdr, cap * sizeof *h);
                    if (!h)
                        return s_fail(NULL, err, "read");
                    s->hdr = h;
                    s->cap_hdr = cap;
                }
                /* name and value offsets, stored in the pointer slots for now */
                size_t kn = s_keep(s, sqlite3_column_text(s->hdrs, 0),
                                   (size_t)sqlite3_column_bytes(s->hdrs, 0), true);
                size_t kv = s_keep(s, sqlite3_column_text(s->hdrs, 1),
                                   (size_t)sqlite3_column_bytes(s->hdrs, 1), true);
                s->hdr[s->nhdr].name = (const char *)(uintptr_t)kn;
                s->hdr[s->nhdr].value = (const char *)(uintptr_t)kv;
                s->nhdr++;
            }
            sqlite3_reset(s->hdrs);
        }
        hoff[i][1] = s->nhdr - hoff[i][0];
        (*n)++;
    }
    sqlite3_reset(s->select);
    if (rc != SQLITE_DONE)
        return s_fail(s->db, err, "read");
    if (s->oom)
        return s_fail(NULL, err, "read");
    for (size_t i = 0; i < *n; i++) {
        fr_row_t *r = &s->rows[i];
        r->aggregate_type = S_PTR(s, offs[i][0]);
        r->aggregate_id = S_PTR(s, offs[i][1]);
        r->event_type = S_PTR(s, offs[i][2]);
        r->payload = S_PTR(s, offs[i][3]);
        r->headers = s->hdr + hoff[i][0];
        r->header_count = hoff[i][1];
        if (!r->aggregate_type || !r->aggregate_id || !r->event_type) {
            return fy_err_set(err, FERRY_EIO, "row %llu has a NULL column",
                              (unsigned long long)r->id);
        }
    }
    for (size_t j = 0; j < s->nhdr; j++) {
        s->hdr[j].name = S_PTR(s, (size_t)(uintptr_t)s->hdr[j].name);
        s->hdr[j].value = S_PTR(s, (size_t)(uintptr_t)s->hdr[j].value);
    }
    *rows = s->rows;
    return FERRY_OK;
}

static fy_status_t
s_advance(fr_source_t *s, fr_pos_t at, bool delete_rows, fy_err_t *err)
{
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return s_fail_full(s, sqlite3_extended_errcode(s->db), err, "begin");
    sqlite3_reset(s->pos_set);
    sqlite3_bind_text(s->pos_set, 1, s->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->pos_set, 2, (sqlite3_int64)at.id);
    int rc = sqlite3_step(s->pos_set);
    sqlite3_reset(s->pos_set);
    if (rc == SQLITE_DONE && delete_rows) {
        sqlite3_reset(s->del);
        sqlite3_bind_int64(s->del, 1, (sqlite3_int64)at.id);
        rc = sqlite3_step(s->del);
        sqlite3_reset(s->del);
    }
    if (rc != SQLITE_DONE) {
        fy_status_t st =
            s_fail_full(s, sqlite3_extended_errcode(s->db), err, "record the position");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return st;
    }
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return FERRY_OK;
    fy_status_t st = s_fail_full(s, sqlite3_extended_errcode(s->db), err, "commit the position");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* a failed COMMIT leaves it open */
    return st;
}

static fy_status_t
s_lag(fr_source_t *s, fr_pos_t after, uint64_t *rows, uint64_t *bytes, uint64_t *oldest_ms,
      fy_err_t *err)
{
    *rows = *bytes = *oldest_ms = 0;
    sqlite3_reset(s->head);
    sqlite3_bind_int64(s->head, 1, (sqlite3_int64)after.id);
    int rc = sqlite3_step(s->head);
    if (rc == SQLITE_ROW)
        *rows = (uint64_t)sqlite3_column_int64(s->head, 0);
    sqlite3_reset(s->head);
    if (rc != SQLITE_ROW)
        return s_fail(s->db, err, "lag");
    sqlite3_reset(s->oldest);
    sqlite3_bind_int64(s->oldest, 1, (sqlite3_int64)after.id);
    if (sqlite3_step(s->oldest) == SQLITE_ROW)
        *oldest_ms = (uint64_t)sqlite3_column_int64(s->oldest, 0);
    sqlite3_reset(s->oldest);
    return FERRY_OK;
}

static fy_status_t
s_claim(fr_source_t *s, fy_err_t *err)
{
    char path[900];
    fr_claim_path(s->path, 0, s->name, path, sizeof path);
    return s->lock_fd >= 0 ? FERRY_OK : fr_claim(path, &s->lock_fd, err);
}

const fr_source_ops_t fr_sqlite_source = {.kind = "sqlite",
                                          .open = s_open,
                                          .position = s_position,
                                          .read = s_read,
                                          .name = s_name,
                                          .rename = s_rename,
                                          .advance = s_advance,
                                          .lag = s_lag,
                                          .claim = s_claim,
                                          .close = s_close};
