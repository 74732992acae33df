/* SPDX-License-Identifier: MIT */
/*
 * src_pglog.c - the PostgreSQL outbox source that tails the write-ahead log
 * through a logical replication slot (pgoutput), docs/outbox.md.
 *
 * The relay holds two connections: a plain one (checks, the publication, the
 * slot, lag) and a replication=database one that streams the slot with
 * START_REPLICATION ... (proto_version '1', binary 'true'). pgoutput sends a
 * transaction only once it committed, whole and in commit order: Begin (with
 * the commit's LSN), Relation (once per table and session), one Insert per
 * row, Commit (with the LSN just past the commit record). A row's position is
 * (commit LSN, id); within a transaction ids grow (they come from the table's
 * sequence).
 *
 * The slot is the relay position. The standby status update tells the server
 * "flushed up to L": on a restart it skips every transaction whose commit
 * record lies before L. So L only moves to a transaction's end LSN once the
 * broker confirmed every row of it and of everything before it ("checkpoints"
 * below: an LSN and the row position it needs confirmed), and, when idle, to
 * the end of WAL the server reported in a keepalive after all rows before it
 * were confirmed - the slot then does not hold WAL of unrelated traffic.
 *
 * Reading again from an earlier position (after a broker refusal or a lost
 * connection) restarts the stream at the slot; rows up to the position asked
 * for are skipped, and whatever else comes twice is a duplicate the broker's
 * dedupe answers.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "pgutil.h"
#include "clock.h"
#include "source.h"

#define S_RELS_MAX       64
#define S_STATUS_MS      1000           /* feedback at least this often */
#define S_PG_EPOCH_MS    946684800000LL /* 2000-01-01T00:00:00Z in Unix ms */
#define S_IDENT_MAX      63
#define S_HEADERS_MAX    64
#define S_REREAD_WAIT_MS 5000 /* for the rows a restarted stream replays */
#define S_START_TRIES    50   /* x 100 ms: the slot's previous walsender exiting */

/* PostgreSQL type oids the decoder knows (pg_type.dat). */
enum {
    S_BYTEA = 17,
    S_NAME = 19,
    S_INT8 = 20,
    S_INT2 = 21,
    S_INT4 = 23,
    S_TEXT = 25,
    S_JSON = 114,
    S_BPCHAR = 1042,
    S_VARCHAR = 1043,
    S_TIMESTAMP = 1114,
    S_TIMESTAMPTZ = 1184,
    S_JSONB = 3802
};

enum { C_ID, C_AGG_TYPE, C_AGG_ID, C_EVENT, C_PAYLOAD, C_HEADERS, C_CREATED, C_N };
static const char *const s_col_names[C_N] = {
    "id", "aggregate_type", "aggregate_id", "event_type", "payload", "headers", "created_at"};

/* A table pgoutput described; ours when it is the outbox. */
typedef struct {
    uint32_t relid;
    bool ours;
    int col[C_N];       /* column number of each outbox column, -1 absent */
    uint32_t type[C_N]; /* its type oid */
} s_rel_t;

/* The slot may move to lsn once every row up to needs is confirmed. */
typedef struct {
    uint64_t lsn;
    fr_pos_t needs;
    uint64_t commit_ms; /* 0 for keepalives */
} s_ckpt_t;

/* A row of the last read, as offsets into the arena (which may move). */
typedef struct {
    uint64_t id, hi, created_ms;
    size_t agg_type, agg_id, event, payload, payload_len, hdr_first, hdr_count;
} s_rowoff_t;

struct fr_source {
    char *conninfo;
    char table[S_IDENT_MAX + 1], slot[S_IDENT_MAX + 1], pub[S_IDENT_MAX + 1];
    char name[256]; /* as given, or the default (identity.h) */
    PGconn *sql;    /* plain connection */
    PGconn *repl;   /* the stream; NULL when not streaming */
    s_rel_t rels[S_RELS_MAX];
    size_t nrels;
    bool in_txn;
    uint64_t txn_lsn, txn_ms;
    fr_pos_t stream_pos; /* the last row taken from the stream */
    fr_pos_t acked;      /* every row up to here is in the broker */
    uint64_t flushed;    /* the slot position told to the server */
    uint64_t told;       /* the flushed value last sent */
    uint64_t received;   /* the highest LSN seen on the stream */
    long long status_at;
    s_ckpt_t *ck;
    size_t ck_head, ck_count, ck_cap;
    /* the rows of the last read */
    char *arena;
    size_t arena_len, arena_cap;
    s_rowoff_t *off;
    fr_row_t *rows;
    size_t nrows, cap_rows;
    size_t (*hoff)[2];
    ferry_header_t *hdr;
    size_t nhdr, cap_hdr;
};

static void
s_stream_close(fr_source_t *s)
{
    PQfinish(s->repl);
    s->repl = NULL;
}

static void
s_close(fr_source_t **sp)
{
    if (!sp || !*sp)
        return;
    fr_source_t *s = *sp;
    s_stream_close(s);
    PQfinish(s->sql);
    free(s->conninfo);
    free(s->ck);
    free(s->arena);
    free(s->off);
    free(s->rows);
    free(s->hoff);
    free(s->hdr);
    free(s);
    *sp = NULL;
}

/* One value of a one-row query on the plain connection, copied to out;
 * *found false when it returned no row or NULL. */
static fy_status_t
s_query1(fr_source_t *s, const char *sql, int nparams, const char *const *params, char *out,
         size_t cap, bool *found, fy_err_t *err)
{
    fr_pg_revive(s->sql);
    PGresult *r = PQexecParams(s->sql, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fr_pg_fail(s->sql, err, sql);
        PQclear(r);
        return FERRY_EIO;
    }
    *found = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0);
    snprintf(out, cap, "%s", *found ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return FERRY_OK;
}

static fy_status_t
s_command(PGconn *db, const char *sql, fy_err_t *err)
{
    PGresult *r = PQexec(db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok ? 0 : fr_pg_fail(db, err, sql);
}

/* The replication connection: the user's connection string with
 * replication=database added (later keywords override the expanded ones). */
static fy_status_t
s_repl_connect(fr_source_t *s, fy_err_t *err)
{
    const char *keys[] = {"dbname", "replication", "application_name", NULL};
    char app[100];
    snprintf(app, sizeof app, "ferry-relay:%s", s->slot);
    const char *vals[] = {s->conninfo, "database", app, NULL};
    s->repl = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(s->repl) != CONNECTION_OK) {
        fr_pg_fail(s->repl, err, "replication connection");
        s_stream_close(s);
        return FERRY_EIO;
    }
    return FERRY_OK;
}

/* The slot of a source named @p name: ferry_relay_<name>, folded to a plain
 * lower-case identifier (S_IDENT_MAX + 1 bytes). */
static void
s_slot_for(char *slot, const char *name)
{
    int n = snprintf(slot, S_IDENT_MAX + 1, "ferry_relay_%s", name);
    for (int i = 12; i < n && i < S_IDENT_MAX; i++) {
        char ch = slot[i];
        if (ch >= 'A' && ch <= 'Z')
            slot[i] = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
            slot[i] = '_';
    }
}

static const char *
s_name(const fr_source_t *s)
{
    return s->name;
}

/* The position is the slot, not kept by name: renaming keeps the slot. */
static fy_status_t
s_rename(fr_source_t *s, const char *from, bool *moved, fy_err_t *err)
{
    char old[S_IDENT_MAX + 1];
    s_slot_for(old, from);
    *moved = false;
    if (!strcmp(old, s->slot))
        return FERRY_OK; /* given --slot of the old name: nothing to move */
    return fy_err_set(err, FERRY_EINVAL,
                      "a pg-logical source's position is its replication slot: to rename "
                      "'%s' to '%s', keep its slot with --slot %s (slot = %s in --config)",
                      from, s->name, old, old);
}

static fy_status_t
s_open(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err)
{
    *out = NULL;
    if (!fr_pg_ident_ok(a->table)) {
        return fy_err_set(err, FERRY_EINVAL, "table name '%s' is not a plain lower-case identifier",
                          a->table);
    }
    if (a->delete_rows) {
        fy_err_set(err, FERRY_EIO,
                   "pg-logical reads inserts from the log and leaves the table alone: "
                   "--on-publish delete is for the polling sources (delete outbox rows in the "
                   "inserting transaction, or prune them by created_at; docs/outbox.md)");
        return FERRY_EIO;
    }
    fr_source_t *s = calloc(1, sizeof *s);
    if (!s || !(s->conninfo = strdup(a->location))) {
        free(s);
        return fr_pg_fail(NULL, err, "open");
    }
    snprintf(s->table, sizeof s->table, "%s", a->table);
    snprintf(s->pub, sizeof s->pub, "%s",
             a->publication && *a->publication ? a->publication : "ferry_outbox");
    s->sql = PQconnectdb(s->conninfo);
    if (PQstatus(s->sql) != CONNECTION_OK) {
        fr_pg_fail(s->sql, err, "cannot connect");
        s_close(&s);
        return FERRY_EIO;
    }
    char legacy[S_IDENT_MAX + 1];
    s_slot_for(legacy, "pg-logical");
    if (a->name && *a->name) {
        snprintf(s->name, sizeof s->name, "%s", a->name);
    } else if (fr_pg_default_name(s->sql, "pg-logical",
                                  "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND "
                                  "database = current_database()",
                                  legacy, s->name, sizeof s->name, err) != FERRY_OK) {
        s_close(&s);
        return FERRY_EIO;
    }
    if (a->slot && *a->slot)
        snprintf(s->slot, sizeof s->slot, "%s", a->slot);
    else
        s_slot_for(s->slot, s->name);
    if (!fr_pg_ident_ok(s->slot) || !fr_pg_ident_ok(s->pub)) {
        fy_err_set(err, FERRY_EIO,
                   "slot '%s' and publication '%s' must be plain lower-case identifiers", s->slot,
                   s->pub);
        s_close(&s);
        return FERRY_EIO;
    }
    char val[200], sql[600];
    bool found;
    if (s_query1(s, "SHOW wal_level", 0, NULL, val, sizeof val, &found, err) != 0)
        goto fail;
    if (strcmp(val, "logical") != 0) {
        fy_err_set(err, FERRY_EIO,
                   "postgresql: wal_level is '%s'; the log-tailing source needs wal_level = "
                   "logical (ALTER SYSTEM SET wal_level = logical, then restart the server), "
                   "or use the polling source pg:",
                   val);
        goto fail;
    }
    snprintf(sql, sizeof sql,
             "SELECT id, aggregate_type, aggregate_id, event_type, payload, headers, created_at "
             "FROM %s LIMIT 0",
             s->table);
    if (s_command(s->sql, sql, err) != 0) {
        fr_pg_fail(s->sql, err, "the outbox table (see outbox-relay/sql/postgres.sql)");
        goto fail;
    }
    /* The publication: made when missing (inserts only). */
    const char *pp[2] = {s->pub, s->table};
    if (s_query1(s, "SELECT 1 FROM pg_publication WHERE pubname = $1", 1, pp, val, sizeof val,
                 &found, err) != 0)
        goto fail;
    if (!found) {
        snprintf(sql, sizeof sql, "CREATE PUBLICATION %s FOR TABLE %s WITH (publish = 'insert')",
                 s->pub, s->table);
        if (s_command(s->sql, sql, err) != 0)
            goto fail;
    }
    if (s_query1(s,
                 "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2 "
                 "AND schemaname = ANY (current_schemas(false))",
                 2, pp, val, sizeof val, &found, err) != 0)
        goto fail;
    if (!found) {
        fy_err_set(err, FERRY_EIO, "postgresql: publication %s does not publish table %s", s->pub,
                   s->table);
        goto fail;
    }
    /* The slot: made when missing; it must be a pgoutput slot of this database. */
    const char *sp[1] = {s->slot};
    if (s_query1(s,
                 "SELECT plugin || ' ' || (database = current_database()) FROM "
                 "pg_replication_slots WHERE slot_name = $1",
                 1, sp, val, sizeof val, &found, err) != 0)
        goto fail;
    if (found && strcmp(val, "pgoutput true") != 0) {
        fy_err_set(err, FERRY_EIO,
                   "postgresql: replication slot %s exists but is not a pgoutput slot of this "
                   "database (%s)",
                   s->slot, val);
        goto fail;
    }
    if (!found) {
        if (s_repl_connect(s, err) != 0)
            goto fail;
        snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput NOEXPORT_SNAPSHOT",
                 s->slot);
        if (s_command(s->repl, sql, err) != 0)
            goto fail;
        s_stream_close(s);
    }
    *out = s;
    return FERRY_OK;
fail:
    s_close(&s);
    return FERRY_EIO;
}

/* The slot's confirmed position: rows of transactions committed from there on. */
static fy_status_t
s_position(fr_source_t *s, fr_pos_t *pos, fy_err_t *err)
{
    char val[64];
    bool found;
    const char *sp[1] = {s->slot};
    if (s_query1(s,
                 "SELECT (confirmed_flush_lsn - '0/0')::text FROM pg_replication_slots "
                 "WHERE slot_name = $1",
                 1, sp, val, sizeof val, &found, err) != 0)
        return FERRY_EIO;
    if (!found) {
        return fy_err_set(err, FERRY_EIO, "postgresql: replication slot %s is gone", s->slot);
    }
    s->flushed = s->told = strtoull(val, NULL, 10);
    s->acked = *pos = (fr_pos_t){s->flushed, 0};
    return FERRY_OK;
}

/* Tells the server what is received and what may be dropped (flushed). */
static fy_status_t
s_status(fr_source_t *s, bool want_reply, fy_err_t *err)
{
    uint8_t m[34];
    long long now_us = (long long)fy_wall_ms() * 1000 - S_PG_EPOCH_MS * 1000;
    m[0] = 'r';
    fy_be64_put(m + 1, s->received > s->flushed ? s->received : s->flushed);
    fy_be64_put(m + 9, s->flushed);
    fy_be64_put(m + 17, s->flushed);
    fy_be64_put(m + 25, (uint64_t)now_us);
    m[33] = want_reply;
    if (PQputCopyData(s->repl, (const char *)m, sizeof m) != 1 || PQflush(s->repl) != 0)
        return fr_pg_fail(s->repl, err, "standby status update");
    s->told = s->flushed;
    s->status_at = fy_mono_ms();
    return FERRY_OK;
}

/* Starts streaming from the slot's position (the server never goes back
 * behind what it was told). */
static fy_status_t
s_stream_start(fr_source_t *s, fy_err_t *err)
{
    s_stream_close(s);
    if (s_repl_connect(s, err) != 0)
        return FERRY_EIO;
    char sql[400];
    snprintf(sql, sizeof sql,
             "START_REPLICATION SLOT %s LOGICAL %X/%X (proto_version '1', "
             "publication_names '%s', binary 'true')",
             s->slot, (unsigned)(s->flushed >> 32), (unsigned)s->flushed, s->pub);
    /* Right after we closed the previous stream, its walsender may still hold
     * the slot ("replication slot ... is active for PID ..."): a moment. */
    bool ok = false;
    for (int tries = 0; !ok && tries < S_START_TRIES; tries++) {
        PGresult *r = PQexec(s->repl, sql);
        ok = PQresultStatus(r) == PGRES_COPY_BOTH;
        const char *state = ok ? NULL : PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool busy = state && strcmp(state, "55006") == 0; /* object_in_use */
        if (!ok && (!busy || tries + 1 == S_START_TRIES))
            fr_pg_fail(s->repl, err, "START_REPLICATION");
        PQclear(r);
        if (!ok && !busy)
            break;
        if (!ok)
            fy_sleep_ms(100);
    }
    if (!ok) {
        s_stream_close(s);
        return FERRY_EIO;
    }
    s->nrels = 0; /* pgoutput describes tables again in a new session */
    s->in_txn = false;
    s->stream_pos = (fr_pos_t){0, 0};
    s->ck_head = s->ck_count = 0;
    s->status_at = fy_mono_ms();
    return FERRY_OK;
}

static int
s_ckpt_add(fr_source_t *s, uint64_t lsn, fr_pos_t needs, uint64_t commit_ms)
{
    if (s->ck_count) {
        s_ckpt_t *tail = &s->ck[(s->ck_head + s->ck_count - 1) % s->ck_cap];
        if (fr_pos_cmp(tail->needs, needs) == 0) {
            if (lsn > tail->lsn)
                tail->lsn = lsn;
            return 0;
        }
    }
    if (s->ck_count == s->ck_cap) {
        size_t cap = s->ck_cap ? s->ck_cap * 2 : 256;
        s_ckpt_t *n = malloc(cap * sizeof *n);
        if (!n)
            return -1;
        for (size_t i = 0; i < s->ck_count; i++)
            n[i] = s->ck[(s->ck_head + i) % s->ck_cap];
        free(s->ck);
        s->ck = n;
        s->ck_cap = cap;
        s->ck_head = 0;
    }
    s->ck[(s->ck_head + s->ck_count++) % s->ck_cap] = (s_ckpt_t){lsn, needs, commit_ms};
    return 0;
}

/* Moves flushed over every checkpoint whose rows are all confirmed. */
static void
s_ckpt_pop(fr_source_t *s)
{
    while (s->ck_count && fr_pos_cmp(s->ck[s->ck_head].needs, s->acked) <= 0) {
        if (s->ck[s->ck_head].lsn > s->flushed)
            s->flushed = s->ck[s->ck_head].lsn;
        s->ck_head = (s->ck_head + 1) % s->ck_cap;
        s->ck_count--;
    }
}

/* Bytes into the arena, NUL-terminated; @return its offset or SIZE_MAX. */
static size_t
s_put(fr_source_t *s, const void *p, size_t len)
{
    if (s->arena_len + len + 1 > s->arena_cap) {
        size_t cap = s->arena_cap ? s->arena_cap : 65536;
        while (cap < s->arena_len + len + 1)
            cap *= 2;
        char *n = realloc(s->arena, cap);
        if (!n)
            return SIZE_MAX;
        s->arena = n;
        s->arena_cap = cap;
    }
    size_t at = s->arena_len;
    if (len)
        memcpy(s->arena + at, p, len);
    s->arena[at + len] = '\0';
    s->arena_len += len + 1;
    return at;
}

/* A cursor over one pgoutput message. */
typedef struct {
    const uint8_t *p;
    size_t n;
    bool bad;
} s_cur_t;

static const uint8_t *
s_take(s_cur_t *c, size_t len)
{
    if (c->bad || c->n < len) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *at = c->p;
    c->p += len;
    c->n -= len;
    return at;
}

static uint64_t
s_u64(s_cur_t *c)
{
    const uint8_t *p = s_take(c, 8);
    return p ? fy_be64_get(p) : 0;
}

static uint32_t
s_u32(s_cur_t *c)
{
    const uint8_t *p = s_take(c, 4);
    return p ? fy_be32_get(p) : 0;
}

static unsigned
s_u16(s_cur_t *c)
{
    const uint8_t *p = s_take(c, 2);
    return p ? (unsigned)(p[0] << 8 | p[1]) : 0;
}

static unsigned
s_u8(s_cur_t *c)
{
    const uint8_t *p = s_take(c, 1);
    return p ? p[0] : 0;
}

static const char *
s_str(s_cur_t *c)
{
    const uint8_t *end = c->bad ? NULL : memchr(c->p, 0, c->n);
    if (!end) {
        c->bad = true;
        return "";
    }
    return (const char *)s_take(c, (size_t)(end - c->p) + 1);
}

static bool
s_stringish(uint32_t t)
{
    return t == S_TEXT || t == S_VARCHAR || t == S_BPCHAR || t == S_NAME;
}

/* Relation: remembers the table; for the outbox, where each column is. */
static fy_status_t
s_on_relation(fr_source_t *s, s_cur_t *c, fy_err_t *err)
{
    s_rel_t rel = {.relid = s_u32(c)};
    (void)s_str(c); /* schema: the publication chose the table */
    const char *name = s_str(c);
    (void)s_u8(c); /* replica identity */
    unsigned ncols = s_u16(c);
    rel.ours = !c->bad && strcmp(name, s->table) == 0;
    for (int k = 0; k < C_N; k++)
        rel.col[k] = -1;
    for (unsigned i = 0; i < ncols && !c->bad; i++) {
        (void)s_u8(c);
        const char *col = s_str(c);
        uint32_t type = s_u32(c);
        (void)s_u32(c);
        for (int k = 0; k < C_N; k++)
            if (strcmp(col, s_col_names[k]) == 0) {
                rel.col[k] = (int)i;
                rel.type[k] = type;
            }
    }
    if (c->bad) {
        return fy_err_set(err, FERRY_EIO, "postgresql: malformed Relation message");
    }
    if (rel.ours) {
        static const char *const want[C_N] = {"bigint or integer",
                                              "text",
                                              "text",
                                              "text",
                                              "bytea, text or json(b)",
                                              "jsonb or json",
                                              "timestamptz or timestamp"};
        for (int k = 0; k < C_N; k++) {
            uint32_t t = rel.type[k];
            bool ok = k == C_ID ? (t == S_INT8 || t == S_INT4 || t == S_INT2)
                      : k == C_PAYLOAD
                          ? (t == S_BYTEA || s_stringish(t) || t == S_JSON || t == S_JSONB)
                      : k == C_HEADERS ? (t == S_JSONB || t == S_JSON)
                      : k == C_CREATED ? (t == S_TIMESTAMPTZ || t == S_TIMESTAMP)
                                       : s_stringish(t);
            bool optional = k == C_HEADERS || k == C_CREATED;
            if (rel.col[k] < 0 ? !optional : !ok) {
                return fy_err_set(
                    err, FERRY_EIO, "postgresql: outbox column %s %s (want %s)", s_col_names[k],
                    rel.col[k] < 0 ? "is missing" : "has an unsupported type", want[k]);
            }
        }
    }
    for (size_t i = 0; i < s->nrels; i++)
        if (s->rels[i].relid == rel.relid) {
            s->rels[i] = rel;
            return FERRY_OK;
        }
    if (s->nrels == S_RELS_MAX) /* forget the oldest: pgoutput sends it again if needed */
        memmove(s->rels, s->rels + 1, --s->nrels * sizeof *s->rels);
    s->rels[s->nrels++] = rel;
    return FERRY_OK;
}

/* A column value of an Insert's tuple. */
typedef struct {
    const uint8_t *p;
    size_t len;
    char kind; /* 'n' null, 't' text, 'b' binary, 'u' unchanged */
} s_val_t;

static uint64_t
s_int_value(s_val_t v, uint32_t type)
{
    if (v.kind == 't') {
        char buf[24];
        size_t n = v.len < sizeof buf - 1 ? v.len : sizeof buf - 1;
        memcpy(buf, v.p, n);
        buf[n] = '\0';
        return strtoull(buf, NULL, 10);
    }
    if (v.kind != 'b')
        return 0;
    if (type == S_INT8 && v.len == 8)
        return fy_be64_get(v.p);
    if (type == S_INT4 && v.len == 4)
        return fy_be32_get(v.p);
    if (type == S_INT2 && v.len == 2)
        return (uint64_t)(v.p[0] << 8 | v.p[1]);
    return 0;
}

/* The bytes of a value: jsonb's binary form has a version byte first. */
static s_val_t
s_text_of(s_val_t v, uint32_t type)
{
    if (v.kind == 'b' && type == S_JSONB && v.len >= 1) {
        v.p++;
        v.len--;
    }
    if (v.kind != 't' && v.kind != 'b')
        v.len = 0;
    return v;
}

/* The headers column (a JSON object) into header offsets, like
 * jsonb_each_text: strings as they are, other values as JSON text. */
static int
s_headers(fr_source_t *s, s_val_t v, uint32_t type, s_rowoff_t *row)
{
    row->hdr_first = s->nhdr;
    row->hdr_count = 0;
    v = s_text_of(v, type);
    if (!v.len)
        return 0;
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)v.p, v.len, 0, &jerr);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return 0; /* not a map of strings: the row goes without */
    }
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach(obj, key, val)
    {
        if (row->hdr_count == S_HEADERS_MAX)
            break;
        char *dump = json_is_string(val) ? NULL : json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
        const char *text = json_is_string(val) ? json_string_value(val) : dump ? dump : "";
        if (s->nhdr == s->cap_hdr) {
            size_t cap = s->cap_hdr ? s->cap_hdr * 2 : 256;
            size_t(*n)[2] = realloc(s->hoff, cap * sizeof *n);
            if (n)
                s->hoff = n;
            ferry_header_t *h = n ? realloc(s->hdr, cap * sizeof *h) : NULL;
            if (h)
                s->hdr = h;
            if (!n || !h) {
                free(dump);
                rc = -1;
                break;
            }
            s->cap_hdr = cap; /* hoff and hdr grow together */
        }
        size_t k = s_put(s, key, strlen(key));
        size_t t = s_put(s, text, strlen(text));
        free(dump);
        if (k == SIZE_MAX || t == SIZE_MAX) {
            rc = -1;
            break;
        }
        s->hoff[s->nhdr][0] = k;
        s->hoff[s->nhdr][1] = t;
        s->nhdr++;
        row->hdr_count++;
    }
    json_decref(obj);
    return rc;
}

/* Insert: a row of the outbox, skipped when at or before @p after.
 * @return 0, or -1 with err. */
static fy_status_t
s_on_insert(fr_source_t *s, s_cur_t *c, fr_pos_t after, fy_err_t *err)
{
    uint32_t relid = s_u32(c);
    const s_rel_t *rel = NULL;
    for (size_t i = 0; i < s->nrels; i++)
        if (s->rels[i].relid == relid)
            rel = &s->rels[i];
    if (!rel) {
        return fy_err_set(err, FERRY_EIO, "postgresql: Insert for table %u before its Relation",
                          relid);
    }
    if (!rel->ours)
        return FERRY_OK;
    if (s_u8(c) != 'N') {
        return fy_err_set(err, FERRY_EIO, "postgresql: malformed Insert message");
    }
    s_val_t v[C_N] = {0};
    unsigned ncols = s_u16(c);
    for (unsigned i = 0; i < ncols && !c->bad; i++) {
        s_val_t x = {.kind = (char)s_u8(c)};
        if (x.kind == 't' || x.kind == 'b') {
            x.len = s_u32(c);
            x.p = s_take(c, x.len);
        }
        for (int k = 0; k < C_N; k++)
            if (rel->col[k] == (int)i)
                v[k] = x;
    }
    if (c->bad) {
        return fy_err_set(err, FERRY_EIO, "postgresql: malformed Insert message");
    }
    fr_pos_t pos = {s->txn_lsn, s_int_value(v[C_ID], rel->type[C_ID])};
    s->stream_pos = pos;
    if (fr_pos_cmp(pos, after) <= 0)
        return FERRY_OK; /* the relay has it already */
    if (s->nrows == s->cap_rows) {
        size_t cap = s->cap_rows ? s->cap_rows * 2 : 256;
        s_rowoff_t *n = realloc(s->off, cap * sizeof *n);
        if (n)
            s->off = n;
        fr_row_t *m = n ? realloc(s->rows, cap * sizeof *m) : NULL;
        if (m)
            s->rows = m;
        if (!n || !m)
            return fr_pg_fail(NULL, err, "read");
        s->cap_rows = cap;
    }
    s_rowoff_t *row = &s->off[s->nrows];
    *row = (s_rowoff_t){.id = pos.id, .hi = pos.hi, .created_ms = s->txn_ms};
    if (rel->col[C_CREATED] >= 0 && v[C_CREATED].kind == 'b' && v[C_CREATED].len == 8)
        row->created_ms = (uint64_t)((long long)fy_be64_get(v[C_CREATED].p) / 1000 + S_PG_EPOCH_MS);
    s_val_t at = s_text_of(v[C_AGG_TYPE], rel->type[C_AGG_TYPE]);
    s_val_t ai = s_text_of(v[C_AGG_ID], rel->type[C_AGG_ID]);
    s_val_t ev = s_text_of(v[C_EVENT], rel->type[C_EVENT]);
    s_val_t pl = s_text_of(v[C_PAYLOAD], rel->type[C_PAYLOAD]);
    row->agg_type = s_put(s, at.p, at.len);
    row->agg_id = s_put(s, ai.p, ai.len);
    row->event = s_put(s, ev.p, ev.len);
    row->payload = s_put(s, pl.p, pl.len);
    row->payload_len = pl.len;
    int hrc = rel->col[C_HEADERS] >= 0 ? s_headers(s, v[C_HEADERS], rel->type[C_HEADERS], row)
                                       : (row->hdr_first = s->nhdr, 0);
    if (hrc != 0 || row->agg_type == SIZE_MAX || row->agg_id == SIZE_MAX ||
        row->event == SIZE_MAX || row->payload == SIZE_MAX)
        return fr_pg_fail(NULL, err, "read");
    s->nrows++;
    return FERRY_OK;
}

/* One CopyData message of the stream. */
static fy_status_t
s_on_message(fr_source_t *s, const uint8_t *m, size_t len, fr_pos_t after, fy_err_t *err)
{
    s_cur_t c = {m, len, false};
    unsigned kind = s_u8(&c);
    if (kind == 'k') { /* keepalive: the server sent everything before walEnd */
        uint64_t wal_end = s_u64(&c);
        (void)s_u64(&c);
        bool reply = s_u8(&c) == 1;
        if (c.bad)
            goto bad;
        if (wal_end > s->received)
            s->received = wal_end;
        if (!s->in_txn && s_ckpt_add(s, wal_end, s->stream_pos, 0) != 0)
            return fr_pg_fail(NULL, err, "read");
        return reply ? s_status(s, false, err) : 0;
    }
    if (kind != 'w')
        goto bad;
    uint64_t start = s_u64(&c);
    (void)s_u64(&c);
    (void)s_u64(&c);
    if (c.bad)
        goto bad;
    if (start > s->received)
        s->received = start;
    switch (s_u8(&c)) {
    case 'B':
        s->txn_lsn = s_u64(&c);
        s->txn_ms = (uint64_t)((long long)s_u64(&c) / 1000 + S_PG_EPOCH_MS);
        s->in_txn = true;
        break;
    case 'C': {
        (void)s_u8(&c);
        (void)s_u64(&c);
        uint64_t end = s_u64(&c);
        if (c.bad)
            goto bad;
        s->in_txn = false;
        /* Rows of the transaction are all at or before stream_pos. */
        if (s_ckpt_add(s, end, s->stream_pos, s->txn_ms) != 0)
            return fr_pg_fail(NULL, err, "read");
        break;
    }
    case 'R':
        return s_on_relation(s, &c, err);
    case 'I':
        return s_on_insert(s, &c, after, err);
    default: /* Type, Origin, Update, Delete, Truncate, Message: not ours */
        break;
    }
    if (c.bad)
        goto bad;
    return FERRY_OK;
bad:
    return fy_err_set(err, FERRY_EIO,
                      "postgresql: malformed replication message (type %u, %zu bytes)", kind, len);
}

static fy_status_t
s_read(fr_source_t *s, fr_pos_t after, size_t max, const fr_row_t **rows, size_t *n, fy_err_t *err)
{
    *n = 0;
    s->nrows = s->nhdr = s->arena_len = 0;
    /* Going back (or not streaming): start again at the slot, skip to after.
     * The rows after it were read before, so they come again: wait for the
     * first of them (the server decodes from the slot's restart point first)
     * rather than answer "nothing" - a re-read must find its row. */
    long long wait_until = 0;
    if (!s->repl || fr_pos_cmp(after, s->stream_pos) < 0) {
        if (s_stream_start(s, err) != 0)
            return FERRY_EIO;
        wait_until = fy_mono_ms() + S_REREAD_WAIT_MS;
    }
    bool consumed = false;
    while (s->nrows < max) {
        char *buf = NULL;
        int len = PQgetCopyData(s->repl, &buf, 1);
        if (len == 0 && !consumed) { /* nothing buffered: take what the socket has */
            consumed = true;
            if (!PQconsumeInput(s->repl))
                goto lost;
            len = PQgetCopyData(s->repl, &buf, 1);
        }
        if (len == 0 && s->nrows == 0 && fy_mono_ms() < wait_until) {
            struct pollfd pfd = {.fd = PQsocket(s->repl), .events = POLLIN};
            poll(&pfd, 1, 20);
            consumed = false;
            continue;
        }
        if (len == 0)
            break;
        if (len < 0)
            goto lost;
        int rc = s_on_message(s, (const uint8_t *)buf, (size_t)len, after, err);
        PQfreemem(buf);
        if (rc != 0) {
            s_stream_close(s);
            return FERRY_EIO;
        }
    }
    s_ckpt_pop(s);
    bool idle = s->nrows == 0 && !s->in_txn && s->ck_count == 0;
    if ((s->flushed != s->told || fy_mono_ms() - s->status_at >= S_STATUS_MS) &&
        s_status(s, idle, err) != 0) {
        s_stream_close(s);
        return FERRY_EIO;
    }
    for (size_t i = 0; i < s->nrows; i++) {
        const s_rowoff_t *o = &s->off[i];
        s->rows[i] = (fr_row_t){.id = o->id,
                                .hi = o->hi,
                                .aggregate_type = s->arena + o->agg_type,
                                .aggregate_id = s->arena + o->agg_id,
                                .event_type = s->arena + o->event,
                                .payload = s->arena + o->payload,
                                .payload_len = o->payload_len,
                                .header_count = o->hdr_count,
                                .created_ms = o->created_ms};
    }
    for (size_t i = 0; i < s->nhdr; i++) /* the arena may have moved: pointers now */
        s->hdr[i] = (ferry_header_t){s->arena + s->hoff[i][0], s->arena + s->hoff[i][1]};
    for (size_t i = 0; i < s->nrows; i++)
        s->rows[i].headers = s->hdr ? s->hdr + s->off[i].hdr_first : NULL;
    *rows = s->rows;
    *n = s->nrows;
    return FERRY_OK;
lost:;
    /* The reason is in the result that ends the copy, if any. */
    PGresult *r = PQgetResult(s->repl);
    const char *why = r ? PQresultErrorMessage(r) : "";
    fr_pg_fail_msg(why && *why ? why : PQerrorMessage(s->repl), err, "replication stream");
    PQclear(r);
    s_stream_close(s);
    return FERRY_EIO;
}

/* The slot moves on the next status update, once whole transactions are
 * confirmed. The server keeps it in memory and writes it at its next
 * checkpoint: a relay restart resumes from it, a server crash from the
 * checkpoint before (what comes twice is deduplicated by the broker). */
static fy_status_t
s_advance(fr_source_t *s, fr_pos_t at, bool delete_rows, fy_err_t *err)
{
    (void)delete_rows; /* refused at open */
    if (fr_pos_cmp(at, s->acked) > 0)
        s->acked = at;
    s_ckpt_pop(s);
    if (s->repl && s->flushed != s->told && s_status(s, false, err) != 0) {
        s_stream_close(s);
        return FERRY_EIO;
    }
    return FERRY_OK;
}

/* Behind by the slot's distance to the end of the log (bytes; rows are
 * not known before they are decoded), and since the oldest transaction
 * read and not yet confirmed whole. */
static fy_status_t
s_lag(fr_source_t *s, fr_pos_t after, uint64_t *rows, uint64_t *bytes, uint64_t *oldest_ms,
      fy_err_t *err)
{
    (void)after;
    *rows = *bytes = *oldest_ms = 0;
    char val[32];
    bool found;
    const char *params[1] = {s->slot};
    if (s_query1(s,
                 "SELECT GREATEST(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), "
                 "0)::int8 FROM pg_replication_slots WHERE slot_name = $1",
                 1, params, val, sizeof val, &found, err) != 0)
        return FERRY_EIO;
    if (found)
        *bytes = strtoull(val, NULL, 10);
    for (size_t i = 0; i < s->ck_count; i++)
        if (s->ck[(s->ck_head + i) % s->ck_cap].commit_ms) {
            *oldest_ms = s->ck[(s->ck_head + i) % s->ck_cap].commit_ms;
            break;
        }
    return FERRY_OK;
}

const fr_source_ops_t fr_pglog_source = {.kind = "pg-logical",
                                         .open = s_open,
                                         .position = s_position,
                                         .read = s_read,
                                         .name = s_name,
                                         .rename = s_rename,
                                         .advance = s_advance,
                                         .lag = s_lag,
                                         .close = s_close};
