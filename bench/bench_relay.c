/*
 * bench_relay.c - ferry-relay end to end, fsync on everywhere: a real
 * ferryd, a real ferry-relay process, real SQLite and LMDB outboxes.
 *
 *   1. throughput: N rows (default 200,000 x 128 B) already in the outbox;
 *      rows/s from the relay's start until its recorded position reaches
 *      the last row (SQLite, then LMDB);
 *   2. lag: a writer inserts 10,000 rows/s (100 every 10 ms, absolute
 *      deadlines) into SQLite for S seconds (default 10); a consumer on the
 *      topic measures insert-to-receive time (the payload carries the insert
 *      time): p50, p99, max.
 *
 *   bench_relay [-n ROWS] [--secs S]        (needs FERRYD and FERRY_RELAY)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"
#include "ferry_outbox.h"
#include "fixture.h"
#include "harness.h"
#include "pgserver.h"

static uint64_t
s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static pid_t
s_relay(const char *source, const char *endpoint, const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execl(getenv("FERRY_RELAY"), "ferry-relay", "--source", source, "--broker", endpoint,
              "--poll-ms", "2", "--stats-ms", "60000", (char *)NULL);
        _exit(127);
    }
    return pid;
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
    MDB_val k = {4, "lmdb"}, val; /* the default source name */
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
        uint64_t now = s_wall_ms();
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
        l->lat[l->n++] = s_wall_ms() - sent;
    }
    return FERRY_MSG_ACK;
}

static int
s_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
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
    if (!getenv("FERRY_RELAY") || n == 0 || secs == 0) {
        fprintf(stderr, "usage: FERRYD=... FERRY_RELAY=... bench_relay [-n ROWS] [--secs S]\n");
        return 2;
    }
    fy_ferryd_t d = {0};
    if (fy_ferryd_start(&d) != 0)
        return 1;
    char path[400], log[400], cmd[1000], src[500];
    snprintf(path, sizeof path, "%s/app.db", d.dir);
    snprintf(log, sizeof log, "%s/relay.log", d.dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < outbox-relay/sql/sqlite.sql > /dev/null", path);
    sqlite3 *db;
    sqlite3_stmt *ins;
    if (system(cmd) != 0 || sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                           "VALUES('order', ?1, 'E', ?2)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fprintf(stderr, "bench_relay: cannot create the SQLite outbox (run from the repository)\n");
        return 1;
    }
    sqlite3_busy_timeout(db, 10000);
    size_t seq = 0;
    s_insert(db, ins, n, &seq);
    snprintf(src, sizeof src, "sqlite:%s", path);
    double t0 = fy_now_s();
    pid_t relay = s_relay(src, d.endpoint, log);
    while (s_sqlite_pos(db) < n && fy_now_s() - t0 < 120)
        usleep(2000);
    double sq = fy_now_s() - t0;
    printf("sqlite: %zu rows relayed in %.2f s: %.0f rows/s\n", n, sq, (double)n / sq);

    /* Lag at a steady 10,000 rows/s. */
    ferry_client_t *c = fy_connect(d.endpoint, 10000, 100);
    s_lat_t l = {.lat = calloc(secs * 10000 + 1, sizeof(uint64_t)), .cap = secs * 10000};
    if (!c || ferry_client_subscribe(c, "order", NULL, 1000, s_on_msg, &l, NULL) != FERRY_OK)
        return 1;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (size_t tick = 0; tick < secs * 100; tick++) {
        s_insert(db, ins, 100, &seq);
        ferry_client_poll(c, 0);
        next.tv_nsec += 10 * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    double until = fy_now_s() + 30;
    while (l.n < l.cap && fy_now_s() < until)
        ferry_client_poll(c, 50);
    qsort(l.lat, l.n, sizeof l.lat[0], s_cmp);
    if (l.n)
        printf("sqlite lag at 10,000 rows/s for %zu s: %zu received, insert-to-receive p50 %llu "
               "ms, p99 %llu ms, max %llu ms\n",
               secs, l.n, (unsigned long long)l.lat[l.n / 2],
               (unsigned long long)l.lat[l.n * 99 / 100], (unsigned long long)l.lat[l.n - 1]);
    ferry_client_destroy(&c);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    int rc = l.n == l.cap ? 0 : 1;

    /* LMDB: the same rows through ferry_outbox_put. */
    char envdir[400];
    snprintf(envdir, sizeof envdir, "%s/app-env", d.dir);
    mkdir(envdir, 0755);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 8) ||
        mdb_env_set_mapsize(env, 4ull << 30) || mdb_env_open(env, envdir, 0, 0644) ||
        mdb_txn_begin(env, NULL, 0, &txn) || ferry_outbox_open(txn, &dbi) != FERRY_OK)
        return 1;
    char body[128] = {0}, agg[24];
    for (size_t i = 0; i < n; i++) {
        snprintf(agg, sizeof agg, "agg-%zu", i % 500);
        ferry_outbox_event_t ev = {.aggregate_type = "lorder",
                                   .aggregate_id = agg,
                                   .event_type = "E",
                                   .payload = body,
                                   .len = sizeof body};
        if (ferry_outbox_put(txn, dbi, &ev, NULL) != FERRY_OK)
            return 1;
    }
    if (mdb_txn_commit(txn))
        return 1;
    snprintf(src, sizeof src, "lmdb:%s", envdir);
    t0 = fy_now_s();
    relay = s_relay(src, d.endpoint, log);
    while (s_lmdb_pos(env) < n && fy_now_s() - t0 < 120)
        usleep(2000);
    double lm = fy_now_s() - t0;
    printf("lmdb: %zu rows relayed in %.2f s: %.0f rows/s\n", n, lm, (double)n / lm);
    kill(relay, SIGTERM);
    waitpid(relay, NULL, 0);
    mdb_env_close(env);

    /* PostgreSQL (polling): the same rows in one INSERT ... SELECT. */
    fy_pg_t pg;
    if (fy_pg_start(&pg) == 0) {
        char sql[600];
        snprintf(sql, sizeof sql,
                 "\\i outbox-relay/sql/postgres.sql\n"
                 "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                 "SELECT 'porder', 'agg-' || (i %% 500), 'E', decode(repeat('72', 128), 'hex') "
                 "FROM generate_series(1, %zu) i;\n",
                 n);
        if (fy_pg_sql(&pg, sql) == 0) {
            snprintf(src, sizeof src, "pg:%s", pg.conninfo);
            t0 = fy_now_s();
            relay = s_relay(src, d.endpoint, log);
            char q[400];
            snprintf(q, sizeof q,
                     "psql -At '%s' -c 'SELECT COALESCE(MAX(last_id), 0) FROM "
                     "ferry_relay_position' 2>/dev/null",
                     pg.conninfo);
            size_t pos = 0;
            while (pos < n && fy_now_s() - t0 < 120) {
                usleep(20000);
                FILE *f = popen(q, "r");
                char line[64] = "0";
                if (f && fgets(line, sizeof line, f))
                    pos = strtoul(line, NULL, 10);
                if (f)
                    pclose(f);
            }
            double pgs = fy_now_s() - t0;
            printf("postgresql (polling): %zu rows relayed in %.2f s: %.0f rows/s\n", n, pgs,
                   (double)n / pgs);
            kill(relay, SIGTERM);
            waitpid(relay, NULL, 0);
        }
        fy_pg_stop(&pg);
    }
    free(l.lat);
    fy_ferryd_signal(&d, SIGTERM);
    fy_ferryd_cleanup(&d);
    return rc;
}
