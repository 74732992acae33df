/* SPDX-License-Identifier: MIT */
/*
 * bench_relay.c - ferry-relay end to end, fsync on everywhere: a real
 * ferryd, a real ferry-relay process, real SQLite and LMDB outboxes.
 *
 *   1. throughput: N rows (default 200,000 x 128 B) already in the outbox;
 *      rows/s from the relay's start until its recorded position reaches
 *      the last row
 *      (SQLite, LMDB, PostgreSQL polling, PostgreSQL log tailing - for the
 *      last, rows/s until the topic holds them all);
 *   2. lag, for each source: a writer inserts 10,000 rows/s (100 per
 *      transaction every 10 ms, absolute deadlines) for S seconds (default
 *      10); a consumer on the topic measures insert-to-receive time (the
 *      payload carries the insert time): p50, p99, max.
 *
 *   bench_relay [-n ROWS] [--secs S]        (needs FERRYD and FERRY_RELAY)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libpq-fe.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ferry.h"
#include "ferry_outbox.h"
#include "fixture.h"
#include "harness.h"
#include "pgserver.h"

static pid_t
s_relay(const char *source, const char *endpoint, const char *log)
{
    /* Named, so that the position is found under a known key. */
    const char *argv[] = {
        getenv("FERRY_RELAY"), "--source", source,       "--broker", endpoint, "--name", "bench",
        "--poll-ms",           "2",        "--stats-ms", "60000",    NULL};
    return fy_spawn(log, argv);
}

static uint64_t
s_sqlite_pos(sqlite3 *db)
{
    sqlite3_stmt *st;
    uint64_t v = 0;
    if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(last_id), 0) FROM ferry_relay_position", -1,
                           &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            v = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return v;
}

static uint64_t
s_lmdb_pos(MDB_env *env)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t v = 0;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    MDB_val k = {5, "bench"}, val; /* the name s_relay gives */
    if (mdb_dbi_open(txn, FERRY_OUTBOX_POS_DB, 0, &dbi) == 0 && mdb_get(txn, dbi, &k, &val) == 0)
        for (int i = 0; i < 8; i++)
            v = v << 8 | ((const uint8_t *)val.mv_data)[i];
    mdb_txn_abort(txn);
    return v;
}

static void
s_insert(sqlite3 *db, sqlite3_stmt *ins, size_t n, size_t *seq)
{
    char body[128];
    memset(body, 'r', sizeof body);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t now = fy_wall_ms();
        memcpy(body, &now, 8);
        char agg[24];
        snprintf(agg, sizeof agg, "agg-%zu", (*seq)++ % 500);
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, agg, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, body, sizeof body, SQLITE_TRANSIENT);
        sqlite3_step(ins);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

typedef struct {
    uint64_t *lat;
    size_t n, cap;
} s_lat_t;

static ferry_msg_action_t
s_on_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_lat_t *l = user;
    uint64_t sent;
    if (m->len >= 8 && l->n < l->cap) {
        memcpy(&sent, m->data, 8);
        l->lat[l->n++] = fy_wall_ms() - sent;
    }
    return FERRY_MSG_ACK;
}

static int
s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Inserts @p rows in one transaction; each payload starts with the wall ms. */
typedef int (*s_write_fn)(void *ctx, size_t rows);

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *ins;
    size_t seq;
} s_sqlite_w_t;

static int
s_sqlite_write(void *ctx, size_t rows)
{
    s_sqlite_w_t *w = ctx;
    s_insert(w->db, w->ins, rows, &w->seq);
    return 0;
}

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    size_t seq;
} s_lmdb_w_t;

static int
s_lmdb_write(void *ctx, size_t rows)
{
    s_lmdb_w_t *w = ctx;
    MDB_txn *txn;
    if (mdb_txn_begin(w->env, NULL, 0, &txn) != 0)
        return -1;
    char body[128] = {0}, agg[24];
    for (size_t i = 0; i < rows; i++) {
        uint64_t now = fy_wall_ms();
        memcpy(body, &now, 8);
        snprintf(agg, sizeof agg, "agg-%zu", w->seq++ % 500);
        ferry_outbox_event_t ev = {.aggregate_type = "lorder",
                                   .aggregate_id = agg,
                                   .event_type = "E",
                                   .payload = body,
                                   .len = sizeof body};
        if (ferry_outbox_put(txn, w->dbi, &ev, NULL) != FERRY_OK) {
            mdb_txn_abort(txn);
            return -1;
        }
    }
    return mdb_txn_commit(txn) == 0 ? 0 : -1;
}

typedef struct {
    PGconn *db;
    const char *aggregate_type;
} s_pg_w_t;

static int
s_pg_write(void *ctx, size_t rows)
{
    s_pg_w_t *w = ctx;
    char body[128], n[16];
    memset(body, 'r', sizeof body);
    uint64_t now = fy_wall_ms();
    memcpy(body, &now, 8);
    snprintf(n, sizeof n, "%zu", rows);
    const char *params[3] = {w->aggregate_type, body, n};
    int lens[3] = {0, (int)sizeof body, 0}, fmts[3] = {0, 1, 0};
    PGresult *r = PQexecParams(w->db,
                               "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, "
                               "payload) SELECT $1, 'agg-' || (i % 500), 'E', $2::bytea "
                               "FROM generate_series(1, $3::int) i",
                               3, NULL, params, lens, fmts, 0);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

/* The consumer of a lag run: its own thread and client, so that messages
 * are taken when they arrive, not between the writer's ticks. */
typedef struct {
    ferry_client_t *c;
    s_lat_t *l;
    atomic_int writing; /* 1 while the writer runs */
} s_consumer_t;

static void *
s_consume(void *arg)
{
    s_consumer_t *k = arg;
    double until = 0;
    while (k->l->n < k->l->cap) {
        ferry_client_poll(k->c, 20);
        if (!atomic_load(&k->writing) && until == 0)
            until = fy_now_s() + 30;
        if (until > 0 && fy_now_s() > until)
            break;
    }
    return NULL;
}

/* Lag at a steady 10,000 rows/s into one source; @return 0 if every row came. */
static int
s_lag(const char *endpoint, const char *topic, size_t secs, s_write_fn write, void *ctx,
      const char *label)
{
    s_lat_t l = {.lat = calloc(secs * 10000 + 1, sizeof(uint64_t)), .cap = secs * 10000};
    s_consumer_t k = {.c = fy_connect(endpoint, 10000, 100), .l = &l, .writing = 1};
    pthread_t th;
    if (!k.c || !l.lat ||
        ferry_client_subscribe(k.c, topic, NULL, 1000, s_on_msg, &l, NULL) != FERRY_OK ||
        pthread_create(&th, NULL, s_consume, &k) != 0) {
        fprintf(stderr, "bench_relay: cannot subscribe to %s\n", topic);
        ferry_client_destroy(&k.c);
        free(l.lat);
        return 1;
    }
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    int rc = 0;
    for (size_t tick = 0; tick < secs * 100 && rc == 0; tick++) {
        rc = write(ctx, 100);
        next.tv_nsec += 10 * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    atomic_store(&k.writing, 0);
    pthread_join(th, NULL);
    qsort(l.lat, l.n, sizeof l.lat[0], s_cmp);
    if (l.n)
        printf("%s lag at 10,000 rows/s for %zu s: %zu received, insert-to-receive p50 %llu "
               "ms, p99 %llu ms, max %llu ms\n",
               label, secs, l.n, (unsigned long long)l.lat[l.n / 2],
               (unsigned long long)l.lat[l.n * 99 / 100], (unsigned long long)l.lat[l.n - 1]);
    if (rc != 0 || l.n != l.cap)
        fprintf(stderr, "bench_relay: %s lag: %zu of %zu rows received\n", label, l.n, l.cap);
    rc = rc != 0 || l.n != l.cap;
    ferry_client_destroy(&k.c);
    free(l.lat);
    return rc;
}

static void
s_relay_stop(pid_t relay)
{
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
}

/* One value of a query, through psql (0 when it fails). */
static uint64_t
s_psql_u64(const char *conninfo, const char *sql)
{
    char q[1000], line[64] = "0";
    snprintf(q, sizeof q, "psql -At '%s' -c \"%s\" 2>/dev/null", conninfo, sql);
    FILE *f = popen(q, "r");
    if (f && !fgets(line, sizeof line, f))
        line[0] = '\0';
    if (f)
        pclose(f);
    return strtoull(line, NULL, 10);
}

/* PostgreSQL, polling then log tailing (each on a fresh server). */
static int
s_postgres(const char *endpoint, const char *log, size_t n, size_t secs, bool logical)
{
    fy_pg_t pg;
    if (fy_pg_start(&pg) != 0) {
        fprintf(stderr, "bench_relay: cannot start PostgreSQL\n");
        return 1;
    }
    const char *label = logical ? "postgresql (log tailing)" : "postgresql (polling)";
    const char *agg = logical ? "gorder" : "porder";
    char src[600], sql[1000];
    snprintf(src, sizeof src, "%s:%s", logical ? "pg-logical" : "pg", pg.conninfo);
    int rc = fy_pg_sql(&pg, "\\i outbox-relay/sql/postgres.sql\n");
    pid_t relay;
    if (rc == 0 && logical) { /* the slot first: rows before it are not in it */
        relay = s_relay(src, endpoint, log);
        double until = fy_now_s() + 20;
        while (s_psql_u64(pg.conninfo, "SELECT count(*) FROM pg_replication_slots") == 0 &&
               fy_now_s() < until)
            usleep(20000);
        s_relay_stop(relay);
    }
    /* n rows in transactions of 100, as services write them. */
    snprintf(sql, sizeof sql,
             "DO $$ BEGIN FOR t IN 1..%zu LOOP "
             "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
             "SELECT '%s', 'agg-' || (i %% 500), 'E', decode(repeat('72', 128), 'hex') "
             "FROM generate_series(1, 100) i; COMMIT; END LOOP; END $$;\n",
             n / 100, agg);
    if (rc == 0)
        rc = fy_pg_sql(&pg, sql);
    ferry_client_t *c = rc == 0 ? fy_connect(endpoint, 10000, 100) : NULL;
    if (c) {
        double t0 = fy_now_s();
        relay = s_relay(src, endpoint, log);
        ferry_topic_info_t info = {0};
        while ((ferry_client_info(c, agg, &info) != FERRY_OK || info.messages < n / 100 * 100) &&
               fy_now_s() - t0 < 120)
            usleep(5000);
        double t = fy_now_s() - t0;
        printf("%s: %zu rows relayed in %.2f s: %.0f rows/s\n", label, (size_t)info.messages, t,
               (double)info.messages / t);
        PGconn *db = PQconnectdb(pg.conninfo);
        s_pg_w_t w = {db, agg};
        rc = PQstatus(db) == CONNECTION_OK ? s_lag(endpoint, agg, secs, s_pg_write, &w, label) : 1;
        PQfinish(db);
        s_relay_stop(relay);
        ferry_client_destroy(&c);
    }
    fy_pg_stop(&pg);
    return rc != 0;
}

int
main(int argc, char **argv)
{
    size_t n = 200000, secs = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--secs"))
            secs = strtoul(argv[i + 1], NULL, 10);
    }
    if (!getenv("FERRY_RELAY") || n < 100 || secs == 0) {
        fprintf(stderr, "usage: FERRYD=... FERRY_RELAY=... bench_relay [-n ROWS >= 100] "
                        "[--secs S]\n");
        return 2;
    }
    fy_ferryd_t d = {0};
    if (fy_ferryd_start(&d) != 0)
        return 1;
    char path[400], log[400], cmd[1000], src[500];
    snprintf(path, sizeof path, "%s/app.db", d.dir);
    snprintf(log, sizeof log, "%s/relay.log", d.dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < outbox-relay/sql/sqlite.sql > /dev/null", path);
    s_sqlite_w_t sw = {0};
    if (system(cmd) != 0 || sqlite3_open(path, &sw.db) != SQLITE_OK ||
        sqlite3_prepare_v2(sw.db,
                           "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                           "VALUES('order', ?1, 'E', ?2)",
                           -1, &sw.ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_relay: cannot create the SQLite outbox (run from the repository)\n");
        return 1;
    }
    sqlite3_busy_timeout(sw.db, 10000);
    s_insert(sw.db, sw.ins, n, &sw.seq);
    snprintf(src, sizeof src, "sqlite:%s", path);
    double t0 = fy_now_s();
    pid_t relay = s_relay(src, d.endpoint, log);
    while (s_sqlite_pos(sw.db) < n && fy_now_s() - t0 < 120)
        usleep(2000);
    double sq = fy_now_s() - t0;
    printf("sqlite: %zu rows relayed in %.2f s: %.0f rows/s\n", n, sq, (double)n / sq);
    int rc = s_lag(d.endpoint, "order", secs, s_sqlite_write, &sw, "sqlite");
    s_relay_stop(relay);
    sqlite3_finalize(sw.ins);
    sqlite3_close(sw.db);

    /* LMDB: the same rows through ferry_outbox_put. */
    char envdir[400];
    snprintf(envdir, sizeof envdir, "%s/app-env", d.dir);
    mkdir(envdir, 0755);
    s_lmdb_w_t lw = {0};
    MDB_txn *txn;
    if (mdb_env_create(&lw.env) || mdb_env_set_maxdbs(lw.env, 8) ||
        mdb_env_set_mapsize(lw.env, 4ull << 30) || mdb_env_open(lw.env, envdir, 0, 0644) ||
        mdb_txn_begin(lw.env, NULL, 0, &txn) || ferry_outbox_open(txn, &lw.dbi) != FERRY_OK ||
        mdb_txn_commit(txn))
        return 1;
    for (size_t done = 0; done < n; done += 10000)
        if (s_lmdb_write(&lw, n - done < 10000 ? n - done : 10000) != 0)
            return 1;
    snprintf(src, sizeof src, "lmdb:%s", envdir);
    t0 = fy_now_s();
    relay = s_relay(src, d.endpoint, log);
    while (s_lmdb_pos(lw.env) < n && fy_now_s() - t0 < 120)
        usleep(2000);
    double lm = fy_now_s() - t0;
    printf("lmdb: %zu rows relayed in %.2f s: %.0f rows/s\n", n, lm, (double)n / lm);
    rc |= s_lag(d.endpoint, "lorder", secs, s_lmdb_write, &lw, "lmdb");
    s_relay_stop(relay);
    mdb_env_close(lw.env);

    rc |= s_postgres(d.endpoint, log, n, secs, false);
    rc |= s_postgres(d.endpoint, log, n, secs, true);
    fy_ferryd_signal(&d, SIGTERM);
    fy_ferryd_cleanup(&d);
    return rc;
}
