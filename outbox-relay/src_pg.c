/* SPDX-License-Identifier: MIT */
/*
 * src_pg.c - the PostgreSQL outbox source, by polling (docs/outbox.md).
 *
 * Ids come from a sequence when a row is inserted, but transactions commit
 * in any order: a row with a lower id can become visible after a higher one,
 * so reading `WHERE id > position` would skip it. Instead every row carries
 * the id of its writing transaction (xid8, column default
 * pg_current_xact_id()), and the relay reads in (xid, id) order only the rows
 * whose transaction is older than every transaction still running
 * (xid < pg_snapshot_xmin(pg_current_snapshot())): those are final, and any
 * row that commits later has a larger xid. The position is the pair.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "identity.h"
#include "pgutil.h"
#include "source.h"

struct fr_source {
    PGconn *db;
    char name[256];
    char table[65];
    PGresult *last; /* the rows of the last read point into it */
    fr_row_t *rows;
    ferry_header_t *hdr;
    size_t cap_rows, cap_hdr;
};

static void
s_close(fr_source_t **sp)
{
    if (!sp || !*sp)
        return;
    fr_source_t *s = *sp;
    PQclear(s->last);
    PQfinish(s->db);
    free(s->rows);
    free(s->hdr);
    free(s);
    *sp = NULL;
}

/* Runs a command that returns no rows. */
static fy_status_t
s_exec(fr_source_t *s, const char *sql, fy_err_t *err)
{
    PGresult *r = PQexec(s->db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : fr_pg_fail(s->db, err, sql);
}

static fy_status_t
s_open(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err)
{
    const char *location = a->location, *table = a->table, *name = a->name;
    *out = NULL;
    if (!fr_pg_ident_ok(table)) {
        return fy_err_set(err, FERRY_EINVAL, "table name '%s' is not a plain lower-case identifier",
                          table);
    }
    fr_source_t *s = calloc(1, sizeof *s);
    if (!s)
        return fr_pg_fail(NULL, err, "open");
    snprintf(s->table, sizeof s->table, "%s", table);
    s->db = PQconnectdb(location);
    if (PQstatus(s->db) != CONNECTION_OK) {
        fr_pg_fail(s->db, err, "cannot connect");
        s_close(&s);
        return FERRY_EIO;
    }
    char sql[600];
    snprintf(sql, sizeof sql,
             "SELECT id, xid, aggregate_type, aggregate_id, event_type, payload, "
             "headers, created_at FROM %s LIMIT 0",
             table);
    PGresult *r = PQexec(s->db, sql);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) {
        fr_pg_fail(s->db, err, "the outbox table (see outbox-relay/sql/postgres.sql)");
        s_close(&s);
        return FERRY_EIO;
    }
    if (s_exec(s,
               "CREATE TABLE IF NOT EXISTS ferry_relay_position (source TEXT PRIMARY KEY, "
               "last_id BIGINT NOT NULL, last_xid XID8 NOT NULL DEFAULT '0')",
               err) != 0 ||
        s_exec(s,
               "ALTER TABLE ferry_relay_position ADD COLUMN IF NOT EXISTS last_xid XID8 NOT NULL "
               "DEFAULT '0'",
               err) != 0) {
        s_close(&s);
        return FERRY_EIO;
    }
    if (name && *name) {
        snprintf(s->name, sizeof s->name, "%s", name);
    } else if (fr_pg_default_name(s->db, "pg",
                                  "SELECT 1 FROM ferry_relay_position WHERE source = $1", "pg",
                                  s->name, sizeof s->name, err) != FERRY_OK) {
        s_close(&s);
        return FERRY_EIO;
    }
    *out = s;
    return FERRY_OK;
}

static const char *
s_name(const fr_source_t *s)
{
    return s->name;
}

static fy_status_t
s_rename(fr_source_t *s, const char *from, bool *moved, fy_err_t *err)
{
    fr_pg_revive(s->db);
    *moved = false;
    if (s_exec(s, "BEGIN", err) != 0)
        return FERRY_EIO;
    /* Both rows locked (or their absence seen) before deciding. */
    const char *params[2] = {from, s->name};
    PGresult *r = PQexecParams(s->db,
                               "SELECT bool_or(source = $1), bool_or(source = $2) FROM "
                               "(SELECT source FROM ferry_relay_position WHERE source IN ($1, $2) "
                               "FOR UPDATE) p",
                               2, NULL, params, NULL, NULL, 0);
    fy_status_t st = FERRY_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        st = fr_pg_fail(s->db, err, "the positions");
    } else {
        bool has_from = !strcmp(PQgetvalue(r, 0, 0), "t"),
             has_to = !strcmp(PQgetvalue(r, 0, 1), "t");
        st = fr_rename_check(from, s->name, has_from, has_to, err);
        *moved = st == FERRY_OK && has_from;
    }
    PQclear(r);
    if (st == FERRY_OK && *moved) {
        r = PQexecParams(s->db, "UPDATE ferry_relay_position SET source = $2 WHERE source = $1", 2,
                         NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            st = fr_pg_fail(s->db, err, "move the position");
        PQclear(r);
    }
    if (st != FERRY_OK || !*moved) {
        *moved = false;
        PQclear(PQexec(s->db, "ROLLBACK"));
        return st;
    }
    if (s_exec(s, "COMMIT", err) != 0) {
        *moved = false;
        return FERRY_EIO;
    }
    return FERRY_OK;
}

static fy_status_t
s_position(fr_source_t *s, fr_pos_t *pos, fy_err_t *err)
{
    fr_pg_revive(s->db); /* after a server restart */
    *pos = (fr_pos_t){0, 0};
    const char *params[1] = {s->name};
    PGresult *r = PQexecParams(s->db,
                               "SELECT last_xid::text, last_id FROM ferry_relay_position "
                               "WHERE source = $1",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return fr_pg_fail(s->db, err, "position");
    }
    if (PQntuples(r) == 1) {
        pos->hi = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        pos->id = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return FERRY_OK;
}

static fy_status_t
s_read(fr_source_t *s, fr_pos_t after, size_t max, const fr_row_t **rows, size_t *n, fy_err_t *err)
{
    fr_pg_revive(s->db); /* after a server restart */
    *n = 0;
    char sql[1200], hi[24], id[24], lim[16];
    snprintf(sql, sizeof sql,
             "SELECT o.id, o.xid, o.aggregate_type, o.aggregate_id, o.event_type, o.payload, "
             "(extract(epoch FROM o.created_at) * 1000)::int8, h.key, h.value "
             "FROM (SELECT * FROM %s WHERE (xid, id) > ($1::xid8, $2::int8) "
             "      AND xid < pg_snapshot_xmin(pg_current_snapshot()) "
             "      ORDER BY xid, id LIMIT $3::int8) o "
             "LEFT JOIN LATERAL jsonb_each_text(o.headers) h ON true ORDER BY o.xid, o.id",
             s->table);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)after.hi);
    snprintf(id, sizeof id, "%llu", (unsigned long long)after.id);
    snprintf(lim, sizeof lim, "%zu", max);
    const char *params[3] = {hi, id, lim};
    PQclear(s->last);
    s->last = PQexecParams(s->db, sql, 3, NULL, params, NULL, NULL, 1); /* binary results */
    PGresult *r = s->last;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fr_pg_fail(s->db, err, "read");
    size_t tuples = (size_t)PQntuples(r);
    if (tuples > s->cap_rows) {
        fr_row_t *nr = realloc(s->rows, tuples * sizeof *nr);
        ferry_header_t *nh = realloc(s->hdr, tuples * sizeof *nh);
        if (nr)
            s->rows = nr;
        if (nh)
            s->hdr = nh;
        if (!nr || !nh)
            return fr_pg_fail(NULL, err, "read");
        s->cap_rows = s->cap_hdr = tuples;
    }
    /* One tuple per header (or one without): consecutive tuples of one row.
     * Binary text values are not NUL-terminated, but libpq adds a NUL after
     * every value it returns. */
    size_t nh = 0;
    for (size_t t = 0; t < tuples; t++) {
        uint64_t rid = fy_be64_get((const uint8_t *)PQgetvalue(r, (int)t, 0));
        fr_row_t *row = *n ? &s->rows[*n - 1] : NULL;
        if (!row || row->id != rid) {
            row = &s->rows[(*n)++];
            memset(row, 0, sizeof *row);
            row->id = rid;
            row->hi = fy_be64_get((const uint8_t *)PQgetvalue(r, (int)t, 1));
            row->aggregate_type = PQgetvalue(r, (int)t, 2);
            row->aggregate_id = PQgetvalue(r, (int)t, 3);
            row->event_type = PQgetvalue(r, (int)t, 4);
            row->payload = PQgetvalue(r, (int)t, 5);
            row->payload_len = (size_t)PQgetlength(r, (int)t, 5);
            row->created_ms = fy_be64_get((const uint8_t *)PQgetvalue(r, (int)t, 6));
            row->headers = s->hdr + nh;
        }
        if (!PQgetisnull(r, (int)t, 7)) {
            s->hdr[nh].name = PQgetvalue(r, (int)t, 7);
            s->hdr[nh].value = PQgetisnull(r, (int)t, 8) ? "" : PQgetvalue(r, (int)t, 8);
            nh++;
            row->header_count++;
        }
    }
    *rows = s->rows;
    return FERRY_OK;
}

static fy_status_t
s_advance(fr_source_t *s, fr_pos_t at, bool delete_rows, fy_err_t *err)
{
    fr_pg_revive(s->db); /* after a server restart */
    char hi[24], id[24], sql[300];
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)at.hi);
    snprintf(id, sizeof id, "%llu", (unsigned long long)at.id);
    const char *params[3] = {s->name, hi, id};
    if (s_exec(s, "BEGIN", err) != 0)
        return FERRY_EIO;
    PGresult *r = PQexecParams(s->db,
                               "INSERT INTO ferry_relay_position(source, last_xid, last_id) "
                               "VALUES($1, $2::xid8, $3::int8) ON CONFLICT (source) DO UPDATE "
                               "SET last_xid = excluded.last_xid, last_id = excluded.last_id",
                               3, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (ok && delete_rows) {
        snprintf(sql, sizeof sql, "DELETE FROM %s WHERE (xid, id) <= ($1::xid8, $2::int8)",
                 s->table);
        r = PQexecParams(s->db, sql, 2, NULL, params + 1, NULL, NULL, 0);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok) {
        fr_pg_fail(s->db, err, "record the position");
        PQclear(PQexec(s->db, "ROLLBACK"));
        return FERRY_EIO;
    }
    /* synchronous_commit (on by default): durable when COMMIT returns. */
    return s_exec(s, "COMMIT", err);
}

/* In reading order, (xid, id): rows of transactions that committed after
 * the position, whatever their ids. */
static fy_status_t
s_lag(fr_source_t *s, fr_pos_t after, uint64_t *rows, uint64_t *bytes, uint64_t *oldest_ms,
      fy_err_t *err)
{
    fr_pg_revive(s->db); /* after a server restart */
    *rows = *bytes = *oldest_ms = 0;
    char sql[400], hi[24], id[24];
    snprintf(sql, sizeof sql,
             "SELECT count(*), (min(extract(epoch FROM created_at)) * 1000)::int8 FROM %s "
             "WHERE (xid, id) > ($1::xid8, $2::int8)",
             s->table);
    snprintf(hi, sizeof hi, "%llu", (unsigned long long)after.hi);
    snprintf(id, sizeof id, "%llu", (unsigned long long)after.id);
    const char *params[2] = {hi, id};
    PGresult *r = PQexecParams(s->db, sql, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        return fr_pg_fail(s->db, err, "lag");
    }
    *rows = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (!PQgetisnull(r, 0, 1))
        *oldest_ms = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return FERRY_OK;
}

const fr_source_ops_t fr_pg_source = {.kind = "pg",
                                      .open = s_open,
                                      .position = s_position,
                                      .read = s_read,
                                      .name = s_name,
                                      .rename = s_rename,
                                      .advance = s_advance,
                                      .lag = s_lag,
                                      .close = s_close};
