/* SPDX-License-Identifier: MIT */
/*
 * test_relay.c - ferry-relay with a real SQLite file or LMDB environment and
 * a real ferryd (PostgreSQL sources: test_relay_pg.c; the broker failing
 * under the relay: test_relay_faults.c):
 *
 * - 8 writer threads insert 50,000 events over 500 aggregates while the
 *   relay is killed with -9 at random moments (at least 5 times) and
 *   restarted: afterwards the broker holds every event exactly once, and
 *   the events of each aggregate in insert order;
 * - a poison row (its topic name is invalid; 63 headers, more than a message
 *   carries with the relay's two) goes to the dead-letter topic
 *   with the reason, and the relay goes on;
 * - the broker away at start, then back: rows wait, then arrive (in order);
 * - the LMDB source, and the relay as a thread of the service, killed the
 *   same way: every event once, in order per aggregate;
 * - --on-publish delete keeps ids growing; two sources from one INI file;
 * - bad configuration: a missing database, a missing table, a bad option:
 *   a clear error and a non-zero exit.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <lmdb.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "ferry_outbox.h"
#include "fixture.h"
#include "harness.h"
#include "relayfx.h"

typedef fy_fx_t fx_t;

#define S_WRITERS    FY_OUTBOX_WRITERS
#define S_AGGREGATES FY_OUTBOX_AGGREGATES

static void
s_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s: %s", sql, msg ? msg : "?");
}

static void
s_make_db(const char *path)
{
    assert_int_equal(fy_outbox_sqlite_create(path), 0);
}

/* The test's database (a fresh outbox) and relay log paths, in its ferryd's
 * directory; returns an open handle on the database. */
static sqlite3 *
s_fresh_outbox(fx_t *fx, char *db, char *log)
{
    snprintf(db, 400, "%s/app.db", fx->d.dir);
    snprintf(log, 400, "%s/relay.log", fx->d.dir);
    s_make_db(db);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    return h;
}

/* ---- the relay process ------------------------------------------------------ */

/* ferry-relay on @p db: a directory ending in "-env" is an LMDB
 * environment, else a SQLite file. */
static pid_t
s_relay_start(const char *db, const char *endpoint, const char *log, const char *extra)
{
    char source[512];
    snprintf(source, sizeof source, "%s:%s", strstr(db, "-env") ? "lmdb" : "sqlite", db);
    pid_t pid = fy_relay_spawn(source, endpoint, log, extra);
    assert_true(pid > 0);
    return pid;
}

static void
s_wait_started(const char *log, pid_t pid)
{
    assert_int_equal(fy_relay_wait_started(log, (int)pid), 0);
}

static int
s_relay_stop(pid_t pid, int sig)
{
    return fy_kill_wait(pid, sig);
}

/* Every event once, in order per aggregate (relayfx.h). */
static void
s_verify(ferry_client_t *c, size_t events, const char *source)
{
    char why[256];
    if (fy_outbox_verify(c, "order", events, source, why, sizeof why) != 0)
        fail_msg("%s", why);
}

static uint64_t
s_query_u64(const char *db, const char *sql)
{
    sqlite3 *h;
    uint64_t v = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(h, 5000);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                v = (uint64_t)sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(h);
    return v;
}

/* Waits until the relay's position reaches the last id ever given (rows may
 * have been deleted by --on-publish delete). */
static bool
s_caught_up(const char *db, int timeout_ms)
{
    long long until = fy_now_ms() + timeout_ms;
    while (fy_now_ms() < until) {
        uint64_t head = s_query_u64(
            db, "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'");
        uint64_t pos =
            s_query_u64(db, "SELECT COALESCE(MAX(last_id), 0) FROM ferry_relay_position");
        if (head > 0 && pos >= head)
            return true;
        fy_sleep_ms(20);
    }
    return false;
}

static void
test_relay_survives_kills(void **state)
{
    fx_t *fx = *state;
    const size_t events = getenv("FERRY_TEST_QUICK") ? 8000 : 50000;
    char db[400], log[400];
    snprintf(db, sizeof db, "%s/app.db", fx->d.dir);
    snprintf(log, sizeof log, "%s/relay.log", fx->d.dir);
    s_make_db(db);
    atomic_size_t written = 0;
    fy_outbox_writer_t w[S_WRITERS];
    pthread_t th[S_WRITERS];
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (fy_outbox_writer_t){
            .sqlite = db, .w = i, .events = events / S_WRITERS, .written = &written};
        assert_int_equal(pthread_create(&th[i], NULL, fy_outbox_write, &w[i]), 0);
    }
    pid_t relay = s_relay_start(db, fx->d.endpoint, log, NULL);
    unsigned seed = (unsigned)time(NULL);
    int kills = 0;
    while (atomic_load(&written) < events || kills < 5) {
        fy_sleep_ms(100 + (int)(rand_r(&seed) % 400));
        assert_true(WIFSIGNALED(s_relay_stop(relay, SIGKILL)));
        kills++;
        relay = s_relay_start(db, fx->d.endpoint, log, NULL);
        if (kills > 40)
            break;
    }
    for (int i = 0; i < S_WRITERS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failed)
            fail_msg("writer %d: %s", i, w[i].error);
    }
    assert_true(s_caught_up(db, 60000));
    s_wait_started(log, relay); /* the last one is up: SIGTERM finds its handler */
    int status = s_relay_stop(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("relay killed %d times while %zu events were written\n", kills, events);
    s_verify(fx->c, events, "sqlite-");
    /* Restarted relays resumed from their recorded position. */
    char out[512];
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -c 'relay started' '%s'", log);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_true(atoi(out) >= 2);
}

/* Two relays with the same name on one outbox: the second waits for the
 * first's lock and says so, publishes nothing meanwhile, and takes over
 * when the first dies; every row once. */
static void
test_same_name_relays_take_turns(void **state)
{
    fx_t *fx = *state;
    const size_t events = 2000;
    char db[400], log[400], log2[420];
    sqlite3 *h = s_fresh_outbox(fx, db, log);
    sqlite3_close(h);
    snprintf(log2, sizeof log2, "%s/relay2.log", fx->d.dir);
    atomic_size_t written = 0;
    fy_outbox_writer_t w = {.sqlite = db, .w = 0, .events = events / 2, .written = &written};
    fy_outbox_write(&w);
    assert_int_equal(w.failed, 0);
    pid_t first = s_relay_start(db, fx->d.endpoint, log, NULL);
    s_wait_started(log, first);
    pid_t second = s_relay_start(db, fx->d.endpoint, log2, NULL);
    long long until = fy_now_ms() + 10000;
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "grep -c 'another relay of this name runs, waiting' '%s'", log2);
    while (fy_now_ms() < until && (fy_run(cmd, out, sizeof out) != 0 || atoi(out) < 1))
        fy_sleep_ms(50);
    assert_true(atoi(out) >= 1);
    assert_true(s_caught_up(db, 30000));
    snprintf(cmd, sizeof cmd, "grep -c 'relay started' '%s'", log2);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1); /* grep found none: exit 1 */
    /* The first dies; the second takes over and relays what comes next. */
    assert_true(WIFSIGNALED(s_relay_stop(first, SIGKILL)));
    s_wait_started(log2, second);
    fy_outbox_writer_t w2 = {.sqlite = db, .w = 1, .events = events / 2, .written = &written};
    fy_outbox_write(&w2);
    assert_int_equal(w2.failed, 0);
    assert_true(s_caught_up(db, 30000));
    assert_true(WIFEXITED(s_relay_stop(second, SIGTERM)));
    s_verify(fx->c, events, "sqlite-");
}

/* Waits up to 20 s for a report in _ferry.relay with @p state and
 * @p published; its key (the source's name) into @p name. */
static bool
s_relay_reported(ferry_client_t *c, const char *state, const char *published, char *name,
                 size_t cap)
{
    long long until = fy_now_ms() + 20000;
    uint64_t from = 1;
    do {
        const ferry_stored_message_t *ms;
        size_t n = 0;
        if (ferry_client_get(c, "_ferry.relay", from, 100, &ms, &n) == FERRY_OK) {
            for (size_t i = 0; i < n; i++) {
                const char *st = NULL, *pub = NULL;
                for (size_t h = 0; h < ms[i].header_count; h++) {
                    if (strcmp(ms[i].headers[h].name, "state") == 0)
                        st = ms[i].headers[h].value;
                    if (strcmp(ms[i].headers[h].name, "published") == 0)
                        pub = ms[i].headers[h].value;
                }
                if (st && pub && ms[i].key && strcmp(st, state) == 0 &&
                    strcmp(pub, published) == 0) {
                    snprintf(name, cap, "%s", ms[i].key);
                    return true;
                }
            }
            if (n)
                from = ms[n - 1].seq + 1;
        }
        fy_sleep_ms(100);
    } while (fy_now_ms() < until);
    return false;
}

/* --metrics: lag in rows and seconds, published, state; /health. */
static void
test_relay_metrics(void **state)
{
    fx_t *fx = *state;
    char db[400], log[400], addr[64], body[4096];
    sqlite3 *h = s_fresh_outbox(fx, db, log);
    for (int i = 0; i < 100; i++)
        s_exec(h, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) VALUES"
                  "('order', 'o-1', 'E', 'x')");
    int port = fy_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char source[420];
    snprintf(source, sizeof source, "sqlite:%s", db);
    const char *extra[] = {"--metrics", addr, NULL};
    pid_t relay = fy_relay_spawn_with(source, fx->d.endpoint, log, extra);
    assert_true(relay > 0);
    assert_true(fy_relay_metric_is(port, "ferry_relay_published_total", 100));
    assert_true(fy_relay_metric_is(port, "ferry_relay_lag_rows", 0));
    assert_int_equal(fy_http(port, "GET", "/health", body, sizeof body), 0);
    assert_non_null(strstr(body, " 200 "));
    /* It reports to the broker (_ferry.relay, every 5 s), and ferry top
     * shows it. */
    char name[256] = "";
    assert_true(s_relay_reported(fx->c, "running", "100", name, sizeof name));
    assert_int_equal(strncmp(name, "sqlite-", 7), 0);
    char cmd[1200], out[8192];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' top --once", getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\nRELAY "));
    const char *row = strstr(out, name);
    assert_non_null(row);
    char rname[256], kind[16], rstate[16], lag_rows[24], lag_s[24], published[24];
    assert_int_equal(sscanf(row, "%255s %15s %15s %23s %23s %23s", rname, kind, rstate, lag_rows,
                            lag_s, published),
                     6);
    assert_string_equal(kind, "sqlite");
    assert_string_equal(rstate, "running");
    assert_string_equal(lag_rows, "0");
    assert_string_equal(published, "100");
    assert_true(fy_relay_metric_is(port, "ferry_relay_reports_failed_total", 0));
    /* The broker goes away: rows wait, counted, and the source is stuck. */
    ferry_client_destroy(&fx->c);
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    for (int i = 0; i < 50; i++)
        s_exec(h, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) VALUES"
                  "('order', 'o-2', 'E', 'y')");
    assert_true(fy_relay_metric_is(port, "ferry_relay_lag_rows", 50));
    fy_sleep_ms(1100);
    assert_true(fy_relay_metric(port, "ferry_relay_lag_seconds") >= 1.0);
    assert_int_equal(fy_http(port, "GET", "/health", body, sizeof body), 0);
    assert_non_null(strstr(body, " 200 ")); /* alive: the lag says how it stands */
    /* Back: published, lag 0. */
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    assert_true(fy_relay_metric_is(port, "ferry_relay_published_total", 150));
    assert_true(fy_relay_metric_is(port, "ferry_relay_lag_rows", 0));
    assert_true(fy_relay_metric(port, "ferry_relay_retries_total") >= 0); /* libferry resent */
    assert_true(WIFEXITED(s_relay_stop(relay, SIGTERM)));
    /* Started again with nothing pending: lag 0 from the first reading. */
    relay = fy_relay_spawn_with(source, fx->d.endpoint, log, extra);
    assert_true(relay > 0);
    long long until = fy_now_ms() + 20000;
    double lag = -1;
    while (lag < 0 && fy_now_ms() < until) {
        lag = fy_relay_metric(port, "ferry_relay_lag_rows");
        fy_sleep_ms(20);
    }
    assert_true(lag == 0);
    assert_true(WIFEXITED(s_relay_stop(relay, SIGTERM)));
    /* A source that cannot open: /health says so until the process exits. */
    sqlite3_close(h);
    fx->c = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(fx->c);
    /* Its last word when stopped: stopped, with what it had published. */
    char last[256];
    assert_true(s_relay_reported(fx->c, "stopped", "150", last, sizeof last));
    assert_string_equal(last, name);
}

static void
test_poison_row_and_delete(void **state)
{
    fx_t *fx = *state;
    char db[400], log[400];
    sqlite3 *h = s_fresh_outbox(fx, db, log);
    /* Row 3 has 63 headers: with the relay's event_type and created_at
     * that is more than a message carries; never cut silently. */
    char many[2048] = "{", sql[2600];
    for (int i = 0; i < 63; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"h%d\":\"v\"", i ? "," : "",
                 i);
    strcat(many, "}");
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload, headers) "
             "VALUES ('order', 'o-1', 'Placed', 'one', NULL),"
             "('not a topic', 'o-1', 'Placed', 'poison', NULL),"
             "('order', 'o-1', 'Tagged', 'many', '%s'),"
             "('order', 'o-1', 'Paid', 'two', NULL)",
             many);
    s_exec(h, sql);
    sqlite3_close(h);
    pid_t relay = s_relay_start(db, fx->d.endpoint, log, "delete");
    assert_true(s_caught_up(db, 20000));
    s_wait_started(log, relay);
    int status = s_relay_stop(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "order", &all, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].payload, "one");
    assert_string_equal(all[1].payload, "two");
    free(all);
    const ferry_stored_message_t *dl;
    size_t got;
    assert_int_equal(ferry_client_get(fx->c, "ferry-relay.dlq", 1, 10, &dl, &got), FERRY_OK);
    assert_int_equal(got, 2);
    const char *reason = ferry_msg_header(&dl[0], "ferry-relay-reason");
    assert_non_null(reason);
    assert_non_null(strstr(reason, "EINVALID_NAME"));
    assert_string_equal(ferry_msg_header(&dl[0], "ferry-relay-id"), "2");
    reason = ferry_msg_header(&dl[1], "ferry-relay-reason");
    assert_non_null(reason);
    assert_non_null(strstr(reason, "EINVAL:"));
    assert_string_equal(ferry_msg_header(&dl[1], "ferry-relay-id"), "3");
    char grep[600], out[16];
    snprintf(grep, sizeof grep, "grep -c 'row has too many headers.*id=3' '%s'", log);
    assert_int_equal(fy_run(grep, out, sizeof out), 0);
    /* --on-publish delete: the published rows are gone, the position kept. */
    assert_int_equal(s_query_u64(db, "SELECT COUNT(*) FROM outbox"), 0);
    assert_int_equal(s_query_u64(db, "SELECT last_id FROM ferry_relay_position"), 4);
}

static void
test_broker_away_then_back(void **state)
{
    fx_t *fx = *state;
    char db[400], log[400];
    sqlite3 *h = s_fresh_outbox(fx, db, log);
    s_exec(h, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) VALUES"
              "('order', 'o-1', 'Placed', 'early')");
    ferry_client_destroy(&fx->c);
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    pid_t relay = s_relay_start(db, fx->d.endpoint, log, NULL);
    fy_sleep_ms(700);
    s_exec(h, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) VALUES"
              "('order', 'o-1', 'Paid', 'late')");
    sqlite3_close(h);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    assert_true(s_caught_up(db, 30000));
    s_wait_started(log, relay);
    assert_true(WIFEXITED(s_relay_stop(relay, SIGTERM)));
    fx->c = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(fx->c);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "order", &all, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].payload, "early");
    free(all);
}

/* ---- the LMDB source ------------------------------------------------------ */

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    int w;
    size_t events;
    atomic_size_t *written;
    int failed;
} s_lwriter_t;

static void *
s_lwrite(void *arg)
{
    s_lwriter_t *wr = arg;
    size_t mine = S_AGGREGATES / S_WRITERS, seq[S_AGGREGATES / S_WRITERS + 1] = {0};
    unsigned seed = (unsigned)wr->w * 104729u + 3;
    size_t done = 0;
    ferry_header_t trace = {"traceparent", "00-test"};
    while (done < wr->events && !wr->failed) {
        MDB_txn *txn;
        if (mdb_txn_begin(wr->env, NULL, 0, &txn) != 0) {
            wr->failed = 1;
            break;
        }
        size_t tx = 1 + (size_t)rand_r(&seed) % 20, k = 0;
        for (; k < tx && done + k < wr->events; k++) {
            size_t a = (size_t)rand_r(&seed) % mine;
            char agg[32], body[64];
            snprintf(agg, sizeof agg, "agg-%zu", a * S_WRITERS + (size_t)wr->w);
            int len = snprintf(body, sizeof body, "%s:%zu", agg, ++seq[a]);
            ferry_outbox_event_t ev = {.aggregate_type = "order",
                                       .aggregate_id = agg,
                                       .event_type = "OrderChanged",
                                       .payload = body,
                                       .len = (size_t)len,
                                       .headers = &trace,
                                       .header_count = 1};
            if (ferry_outbox_put(txn, wr->dbi, &ev, NULL) != FERRY_OK)
                wr->failed = 1;
        }
        if (mdb_txn_commit(txn) != 0)
            wr->failed = 1;
        done += k;
        atomic_fetch_add(wr->written, k);
        fy_sleep_ms(1);
    }
    return NULL;
}

static uint64_t
s_lmdb_u64(MDB_env *env, const char *db, int last_key)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    uint64_t v = 0;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_dbi_open(txn, db, 0, &dbi) == 0) {
        MDB_cursor *cur;
        MDB_val k, val;
        if (mdb_cursor_open(txn, dbi, &cur) == 0) {
            if (mdb_cursor_get(cur, &k, &val, MDB_LAST) == 0) {
                const uint8_t *p = last_key ? k.mv_data : val.mv_data;
                for (int i = 0; i < 8; i++)
                    v = v << 8 | p[i];
            }
            mdb_cursor_close(cur);
        }
    }
    mdb_txn_abort(txn);
    return v;
}

static void
test_lmdb_relay_survives_kills(void **state)
{
    fx_t *fx = *state;
    const size_t events = getenv("FERRY_TEST_QUICK") ? 8000 : 50000;
    char dir[400], log[400];
    snprintf(dir, sizeof dir, "%s/app-env", fx->d.dir);
    snprintf(log, sizeof log, "%s/relay.log", fx->d.dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 1ull << 30), 0);
    /* The service's own commits need not sync for this test (the relay's do). */
    assert_int_equal(mdb_env_open(env, dir, MDB_NOSYNC, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(ferry_outbox_open(txn, &dbi), FERRY_OK);
    assert_int_equal(mdb_txn_commit(txn), 0);
    atomic_size_t written = 0;
    s_lwriter_t w[S_WRITERS];
    pthread_t th[S_WRITERS];
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (s_lwriter_t){
            .env = env, .dbi = dbi, .w = i, .events = events / S_WRITERS, .written = &written};
        assert_int_equal(pthread_create(&th[i], NULL, s_lwrite, &w[i]), 0);
    }
    pid_t relay = s_relay_start(dir, fx->d.endpoint, log, NULL);
    unsigned seed = (unsigned)time(NULL) ^ 0x5a5a;
    int kills = 0;
    while (atomic_load(&written) < events || kills < 5) {
        fy_sleep_ms(100 + (int)(rand_r(&seed) % 400));
        assert_true(WIFSIGNALED(s_relay_stop(relay, SIGKILL)));
        kills++;
        relay = s_relay_start(dir, fx->d.endpoint, log, NULL);
        if (kills > 40)
            break;
    }
    for (int i = 0; i < S_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    /* Caught up: the relay's position reaches the last id. */
    uint64_t head = s_lmdb_u64(env, FERRY_OUTBOX_DB, 1);
    assert_int_equal(head, events);
    long long until = fy_now_ms() + 60000;
    while (s_lmdb_u64(env, FERRY_OUTBOX_POS_DB, 0) < head && fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(s_lmdb_u64(env, FERRY_OUTBOX_POS_DB, 0), head);
    s_wait_started(log, relay);
    int status = s_relay_stop(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    mdb_env_close(env);
    printf("lmdb relay killed %d times while %zu events were written\n", kills, events);
    s_verify(fx->c, events, "lmdb-");
}

/* The relay as a thread of the service (examples/outbox_service.c): the
 * whole service - writer and relay - is killed with kill -9 at random
 * moments and started again; every committed event is published once, in
 * order per aggregate. */
static void
test_inprocess_relay_survives_kills(void **state)
{
    fx_t *fx = *state;
    const size_t events = getenv("FERRY_TEST_QUICK") ? 8000 : 50000;
    char dir[400], log[400], bin[400], count[24];
    snprintf(dir, sizeof dir, "%s/svc-env", fx->d.dir);
    snprintf(log, sizeof log, "%s/svc.log", fx->d.dir);
    snprintf(bin, sizeof bin, "%s/%s/examples/outbox_service", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"));
    snprintf(count, sizeof count, "%zu", events);
    /* A millisecond between transactions: 50,000 events take seconds, so the
     * kills land while it writes. */
    const char *argv[] = {bin, dir, count, fx->d.endpoint, "1", NULL};
    int kills = 0;
    int status = fy_run_killing(log, argv, 5, 20, 60, &kills);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(kills >= 5);
    printf("service with its relay thread killed %d times while writing %zu events\n", kills,
           events);
    s_verify(fx->c, events, "svc");
}

/* --on-publish delete empties the outbox; ids must still never repeat (the
 * broker would drop a repeated id as a duplicate). In-process relay API. */
static void
test_delete_keeps_ids_growing(void **state)
{
    fx_t *fx = *state;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/del-env", fx->d.dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    ferry_outbox_relay_config_t cfg = {
        .broker = fx->d.endpoint, .name = "del", .delete_published = true, .poll_ms = 5};
    ferry_outbox_relay_t *relay;
    assert_int_equal(ferry_outbox_relay_start(NULL, &cfg, &relay), FERRY_EINVAL);
    assert_int_equal(ferry_outbox_relay_start(env, &cfg, &relay), FERRY_OK);
    uint64_t id = 0;
    for (int round = 0; round < 3; round++) {
        assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
        assert_int_equal(ferry_outbox_open(txn, &dbi), FERRY_OK);
        for (int i = 0; i < 2; i++) {
            char body[32];
            int len = snprintf(body, sizeof body, "agg-0:%d", round * 2 + i + 1);
            ferry_outbox_event_t ev = {.aggregate_type = "order",
                                       .aggregate_id = "agg-0",
                                       .event_type = "E",
                                       .payload = body,
                                       .len = (size_t)len};
            assert_int_equal(ferry_outbox_put(txn, dbi, &ev, &id), FERRY_OK);
            assert_int_equal(id, (uint64_t)(round * 2 + i + 1)); /* 1..6, never again 1 */
        }
        assert_int_equal(mdb_txn_commit(txn), 0);
        assert_int_equal(ferry_outbox_relay_wait(relay, 20000), FERRY_OK);
        /* Published and deleted: the outbox holds no event. */
        MDB_stat st;
        assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
        assert_int_equal(mdb_stat(txn, dbi, &st), 0);
        assert_true(st.ms_entries <= 1); /* at most the id keeper */
        mdb_txn_abort(txn);
    }
    assert_int_equal(ferry_outbox_relay_stop(&relay), FERRY_OK);
    assert_null(relay);
    assert_int_equal(ferry_outbox_relay_stop(&relay), FERRY_OK); /* NULL accepted */
    mdb_env_close(env);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "order", &all, &n), FERRY_OK);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "del:%zu", i + 1);
        assert_string_equal(all[i].id, want);
    }
    free(all);
}

/* Two sources from one INI file, one process. */
static void
test_config_file_two_sources(void **state)
{
    fx_t *fx = *state;
    char a[400], b[400], ini[400], log[400], cmd[4000], out[2048];
    snprintf(a, sizeof a, "%s/a.db", fx->d.dir);
    snprintf(b, sizeof b, "%s/b.db", fx->d.dir);
    snprintf(ini, sizeof ini, "%s/relay.ini", fx->d.dir);
    snprintf(log, sizeof log, "%s/relay.log", fx->d.dir);
    s_make_db(a);
    s_make_db(b);
    const char *rows = "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                       "VALUES ('order', 'o-1', 'E', 'x'), ('order', 'o-2', 'E', 'y')";
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\" && sqlite3 '%s' \"%s\"", a, rows, b, rows);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f,
            "; two services' outboxes\n[relay]\nbroker = %s\npoll-ms = 5\n\n"
            "[source billing]\nsource = sqlite:%s\n\n"
            "[source shipping]\nsource = sqlite:%s\ntopic-template = shipping.{aggregate_type}\n",
            fx->d.endpoint, a, b);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "'%s' --config '%s' --stats-ms 1000 2>>'%s' & pid=$!; "
             "for i in $(seq 1 200); do "
             "  [ \"$(sqlite3 '%s' 'select count(*) from ferry_relay_position')\" = 1 ] && "
             "  [ \"$(sqlite3 '%s' 'select count(*) from ferry_relay_position')\" = 1 ] && break; "
             "  sleep 0.05; done; sleep 0.2; kill -TERM $pid; wait $pid",
             getenv("FERRY_RELAY"), ini, log, a, b);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "order", &all, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].id, "billing:1");
    free(all);
    assert_int_equal(fy_read_all(fx->c, "shipping.order", &all, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_string_equal(all[1].id, "shipping:2");
    free(all);
    /* A source that fails stops the others: the process exits 1, not half
     * alive (its supervisor starts it again). */
    f = fopen(ini, "w");
    fprintf(f,
            "[relay]\nbroker = %s\npoll-ms = 5\n\n[source billing]\nsource = sqlite:%s\n\n"
            "[source gone]\nsource = sqlite:/nonexistent/gone.db\n",
            fx->d.endpoint, a);
    fclose(f);
    snprintf(cmd, sizeof cmd, "timeout 30 '%s' --config '%s' 2>&1", getenv("FERRY_RELAY"), ini);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "source gone failed (logged above): stopping the others, exit 1"));
    /* A bad file: the line and what is wrong. */
    f = fopen(ini, "w");
    fprintf(f, "[source x]\nsource = sqlite:%s\nbatchsize = 5\n", a);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' --config '%s' 2>&1", getenv("FERRY_RELAY"), ini);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "relay.ini:3:"));
    assert_non_null(strstr(out, "batchsize"));
}

static void
test_bad_configuration(void **state)
{
    fx_t *fx = *state;
    const char *bin = getenv("FERRY_RELAY");
    char cmd[1200], out[2048], db[400];
    snprintf(cmd, sizeof cmd, "'%s' --source sqlite:/nonexistent/app.db --broker %s 2>&1", bin,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot open the source"));
    snprintf(db, sizeof db, "%s/empty.db", fx->d.dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE t(x)' && '%s' --source sqlite:%s 2>&1",
             db, bin, db);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "outbox table"));
    snprintf(cmd, sizeof cmd, "'%s' --source sqlite:%s --batch 5000 2>&1", bin, db);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' --source kafka:x 2>&1", bin);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown source"));
    snprintf(cmd, sizeof cmd, "'%s' 2>&1", bin);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_survives_kills, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_poison_row_and_delete, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_same_name_relays_take_turns, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_relay_metrics, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_broker_away_then_back, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_lmdb_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_inprocess_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_keeps_ids_growing, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_file_two_sources, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_configuration, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
