/* SPDX-License-Identifier: MIT */
/*
 * relayfx.c - ferry-relay and its outboxes for integration tests (see
 * relayfx.h).
 */
#include "relayfx.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <lmdb.h>
#include <sqlite3.h>

#include "clock.h"
#include "ferry_outbox.h"
#include "fixture.h"
#include "harness.h"

int
fy_outbox_sqlite_create(const char *path)
{
    char cmd[800], out[256];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null", path,
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    return fy_run(cmd, out, sizeof out) == 0 ? 0 : -1;
}

/* ---- writers ------------------------------------------------------------------ */

static void
s_fail(fy_outbox_writer_t *wr, const char *fmt, ...)
{
    if (!wr->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(wr->error, sizeof wr->error, fmt, ap);
        va_end(ap);
    }
    wr->failed = 1;
}

/* The next event of this writer: one of its aggregates at random. */
static int
s_next(fy_outbox_writer_t *wr, unsigned *seed, size_t *seq, char *agg, size_t acap, char *body,
       size_t bcap)
{
    size_t a = (size_t)rand_r(seed) % (FY_OUTBOX_AGGREGATES / FY_OUTBOX_WRITERS);
    snprintf(agg, acap, "agg-%zu", a * FY_OUTBOX_WRITERS + (size_t)wr->w);
    return snprintf(body, bcap, "%s:%zu", agg, ++seq[a]);
}

static void
s_write_sqlite(fy_outbox_writer_t *wr)
{
    sqlite3 *db;
    sqlite3_stmt *ins = NULL;
    if (sqlite3_open(wr->sqlite, &db) != SQLITE_OK) {
        s_fail(wr, "open: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return;
    }
    sqlite3_busy_timeout(db, 30000);
    sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload, "
                           "headers) VALUES('order', ?1, 'OrderChanged', ?2, ?3)",
                           -1, &ins, NULL) != SQLITE_OK) {
        s_fail(wr, "prepare: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return;
    }
    size_t seq[FY_OUTBOX_AGGREGATES / FY_OUTBOX_WRITERS + 1] = {0};
    unsigned seed = (unsigned)wr->w * 7919u + 1;
    size_t done = 0;
    while (done < wr->events && !wr->failed) {
        size_t tx = 1 + (size_t)rand_r(&seed) % 20, k = 0;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            s_fail(wr, "begin: %s", sqlite3_errmsg(db));
            break;
        }
        for (; k < tx && done + k < wr->events; k++) {
            char agg[32], body[64];
            int len = s_next(wr, &seed, seq, agg, sizeof agg, body, sizeof body);
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, agg, -1, SQLITE_TRANSIENT);
            sqlite3_bind_blob(ins, 2, body, len, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 3, "{\"traceparent\":\"00-test\"}", -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                s_fail(wr, "insert: %s", sqlite3_errmsg(db));
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            s_fail(wr, "commit: %s", sqlite3_errmsg(db));
        done += k;
        atomic_fetch_add(wr->written, k);
        fy_sleep_ms(wr->pause_ms ? wr->pause_ms : 1); /* spread the writes over the test */
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
}

static bool
s_pg_ok(fy_outbox_writer_t *wr, PGconn *db, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return true;
    s_fail(wr, "%s: %s", what, PQerrorMessage(db));
    return false;
}

static void
s_write_pg(fy_outbox_writer_t *wr)
{
    PGconn *db = PQconnectdb(wr->conninfo);
    if (PQstatus(db) != CONNECTION_OK ||
        !s_pg_ok(wr, db, PQexec(db, "SET synchronous_commit = off"), "set")) {
        s_fail(wr, "connect: %s", PQerrorMessage(db));
        PQfinish(db);
        return;
    }
    size_t seq[FY_OUTBOX_AGGREGATES / FY_OUTBOX_WRITERS + 1] = {0};
    unsigned seed = (unsigned)wr->w * 15485863u + 5;
    size_t done = 0;
    while (done < wr->events && !wr->failed) {
        size_t tx = 1 + (size_t)rand_r(&seed) % 20, k = 0;
        if (!s_pg_ok(wr, db, PQexec(db, "BEGIN"), "begin"))
            break;
        for (; k < tx && done + k < wr->events; k++) {
            char agg[32], body[64];
            s_next(wr, &seed, seq, agg, sizeof agg, body, sizeof body);
            const char *params[2] = {agg, body};
            s_pg_ok(wr, db,
                    PQexecParams(db,
                                 "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, "
                                 "payload, headers) VALUES ('order', $1, 'OrderChanged', "
                                 "convert_to($2, 'UTF8'), '{\"traceparent\": \"00-test\"}')",
                                 2, NULL, params, NULL, NULL, 0),
                    "insert");
        }
        s_pg_ok(wr, db, PQexec(db, "COMMIT"), "commit");
        done += k;
        atomic_fetch_add(wr->written, k);
        if (wr->pause_ms)
            fy_sleep_ms(wr->pause_ms);
    }
    PQfinish(db);
}

void *
fy_outbox_write(void *arg)
{
    fy_outbox_writer_t *wr = arg;
    if (wr->sqlite)
        s_write_sqlite(wr);
    else
        s_write_pg(wr);
    return NULL;
}

/* ---- the relay process -------------------------------------------------------- */

int
fy_relay_spawn_with(const char *source, const char *endpoint, const char *log,
                    const char *const *extra)
{
    const char *bin = getenv("FERRY_RELAY");
    if (!bin)
        return -1;
    const char *argv[20] = {bin,         "--source", source,       "--server", endpoint,
                            "--poll-ms", "5",        "--stats-ms", "1000"};
    int argc = 9;
    for (int i = 0; extra && extra[i] && i < 8; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    return fy_spawn(log, argv);
}

int
fy_relay_spawn(const char *source, const char *endpoint, const char *log, const char *on_publish)
{
    const char *const extra[] = {"--on-publish", on_publish, NULL};
    return fy_relay_spawn_with(source, endpoint, log, on_publish ? extra : NULL);
}

int
fy_relay_wait_started(const char *log, int pid)
{
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "grep -c 'relay started.* pid=%d$' '%s' 2>/dev/null", pid, log);
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until) {
        fy_run(cmd, out, sizeof out);
        if (atoi(out) >= 1)
            return 0;
        fy_sleep_ms(10);
    }
    fprintf(stderr, "relay %d did not start (%s)\n", pid, log);
    return -1;
}

bool
fy_relay_default_id(const char *id, const char *kind, unsigned long row)
{
    size_t k = strlen(kind);
    if (strncmp(id, kind, k) != 0 || id[k] != '-')
        return false;
    for (size_t i = k + 1; i < k + 9; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return false;
    char *end;
    return id[k + 9] == ':' && strtoul(id + k + 10, &end, 10) == row && !*end;
}

/* ---- the checker -------------------------------------------------------------- */

/* One message against the history; @p first: the source name seen first. */
static int
s_check_one(const fy_copied_t *m, size_t events, const char *source, char *first, uint8_t *seen,
            size_t *next, char *why, size_t cap)
{
    const char *colon = strrchr(m->id, ':');
    if (!colon)
        return fy_why(why, cap, "seq %llu: id '%s' has no row", (unsigned long long)m->seq, m->id);
    unsigned long row = strtoul(colon + 1, NULL, 10);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%.*s", (int)(colon - m->id), m->id);
    size_t sl = strlen(source);
    if (source[sl - 1] == '-') {
        char kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)sl - 1, source);
        if (!fy_relay_default_id(m->id, kind, row))
            return fy_why(why, cap, "id '%s' is not a default %s id", m->id, kind);
    } else if (strcmp(prefix, source) != 0) {
        return fy_why(why, cap, "id '%s' is not from source %s", m->id, source);
    }
    if (!first[0])
        snprintf(first, 64, "%s", prefix);
    if (strcmp(prefix, first) != 0)
        return fy_why(why, cap, "two source names: %s and %s", first, prefix);
    if (row < 1 || row > events)
        return fy_why(why, cap, "row %lu was never written", row);
    if (seen[row]++)
        return fy_why(why, cap, "row %lu stored twice (seq %llu)", row, (unsigned long long)m->seq);
    size_t a, s;
    if (sscanf(m->payload, "agg-%zu:%zu", &a, &s) != 2 || a >= FY_OUTBOX_AGGREGATES)
        return fy_why(why, cap, "row %lu: payload '%s'", row, m->payload);
    if (s != ++next[a])
        return fy_why(why, cap, "agg-%zu: event %zu where %zu was due (row %lu)", a, s, next[a],
                      row);
    char key[32];
    snprintf(key, sizeof key, "agg-%zu", a);
    if (strcmp(m->key, key) != 0)
        return fy_why(why, cap, "row %lu keyed '%s', not %s", row, m->key, key);
    return 0;
}

/* Reads @p topic whole into *all (*n messages): -1 if it cannot, or if it
 * does not hold @p want (then *all is still to be freed). */
static int
s_read(ferry_client_t *c, const char *topic, size_t want, fy_copied_t **all, size_t *n, char *why,
       size_t cap)
{
    ferry_status_t st = fy_read_all(c, topic, all, n);
    if (st != FERRY_OK) {
        *all = NULL;
        *n = 0;
        return fy_why(why, cap, "reading %s: %s", topic, ferry_strerror(st));
    }
    return *n == want ? 0 : fy_why(why, cap, "%s holds %zu messages, not %zu", topic, *n, want);
}

int
fy_outbox_verify(ferry_client_t *c, const char *topic, size_t events, const char *source, char *why,
                 size_t cap)
{
    fy_copied_t *all;
    size_t n;
    int rc = s_read(c, topic, events, &all, &n, why, cap);
    size_t *next = calloc(FY_OUTBOX_AGGREGATES, sizeof *next);
    uint8_t *seen = calloc(events + 1, 1);
    char first[64] = "";
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_check_one(&all[i], events, source, first, seen, next, why, cap);
    free(next);
    free(seen);
    free(all);
    return rc;
}

/* ---- numbered rows ------------------------------------------------------------- */

int
fy_outbox_lmdb_rows(const char *dir, int from, int to, size_t map_size)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_env_create(&env) != 0)
        return -1;
    int rc = mdb_env_set_maxdbs(env, 8) || mdb_env_set_mapsize(env, map_size) ||
                     mdb_env_open(env, dir, 0, 0644) || mdb_txn_begin(env, NULL, 0, &txn)
                 ? -1
                 : 0;
    if (rc == 0 && ferry_outbox_open(txn, &dbi) != FERRY_OK)
        rc = -1, mdb_txn_abort(txn);
    for (int i = from; rc == 0 && i <= to; i++) {
        char agg[16], body[32];
        snprintf(agg, sizeof agg, "o-%d", i % 10);
        int len = snprintf(body, sizeof body, "row-%d", i);
        ferry_outbox_event_t ev = {.aggregate_type = "orders",
                                   .aggregate_id = agg,
                                   .event_type = "placed",
                                   .payload = body,
                                   .len = (size_t)len};
        uint64_t id = 0;
        if (ferry_outbox_put(txn, dbi, &ev, &id) != FERRY_OK || id != (uint64_t)i)
            rc = -1, mdb_txn_abort(txn);
    }
    if (rc == 0 && mdb_txn_commit(txn) != 0)
        rc = -1;
    mdb_env_close(env);
    return rc;
}

int
fy_relay_rows_once(ferry_client_t *c, const char *topic, const char *name, size_t rows, char *why,
                   size_t cap)
{
    fy_copied_t *all;
    size_t n;
    int rc = s_read(c, topic, rows, &all, &n, why, cap);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char id[96], payload[32];
        snprintf(id, sizeof id, "%s:%zu", name, i + 1);
        snprintf(payload, sizeof payload, "row-%zu", i + 1);
        if (strcmp(all[i].id, id) != 0 || strcmp(all[i].payload, payload) != 0)
            rc = fy_why(why, cap, "message %zu is %s '%s', not %s '%s'", i + 1, all[i].id,
                        all[i].payload, id, payload);
    }
    free(all);
    return rc;
}

double
fy_relay_metric(int port, const char *name)
{
    static char body[65536];
    if (fy_http(port, "GET", "/metrics", body, sizeof body) != 0)
        return -1;
    char key[128];
    snprintf(key, sizeof key, "\n%s{source=\"", name);
    const char *p = strstr(body, key);
    p = p ? strstr(p, "} ") : NULL;
    return p ? atof(p + 2) : -1;
}

bool
fy_relay_metric_is(int port, const char *name, double want)
{
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until) {
        if (fy_relay_metric(port, name) == want)
            return true;
        fy_sleep_ms(50);
    }
    fprintf(stderr, "%s is %.1f, not %.1f\n", name, fy_relay_metric(port, name), want);
    return false;
}
