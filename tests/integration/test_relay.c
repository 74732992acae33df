/*
 * test_relay.c - ferry-relay with a real SQLite file and a real ferryd:
 *
 * - 8 writer threads insert 50,000 events over 500 aggregates while the
 *   relay is killed with -9 at random moments (at least 5 times) and
 *   restarted: afterwards the broker holds every event exactly once, and
 *   the events of each aggregate in insert order;
 * - a poison row (its topic name is invalid) goes to the dead-letter topic
 *   with the reason, and the relay goes on;
 * - the broker away at start, then back: rows wait, then arrive (in order);
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
#include <libpq-fe.h>
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
#include "pgserver.h"

typedef fy_fx_t fx_t;

#define S_WRITERS    8
#define S_AGGREGATES 500

static void
s_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("sqlite: %s: %s", sql, msg ? msg : "?");
}

/* A fresh database with the outbox DDL of outbox-relay/sql/sqlite.sql. */
static void
s_make_db(const char *path)
{
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null", path,
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
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

static pid_t
s_relay_start(const char *db, const char *endpoint, const char *log, const char *extra)
{
    const char *bin = getenv("FERRY_RELAY");
    assert_non_null(bin);
    char source[512];
    /* "pg:..." and "pg-logical:..." as they are; a directory is an LMDB
     * environment; else a SQLite file. */
    if (!strncmp(db, "pg", 2))
        snprintf(source, sizeof source, "%s", db);
    else
        snprintf(source, sizeof source, "%s:%s", strstr(db, "-env") ? "lmdb" : "sqlite", db);
    const char *argv[16] = {bin,         "--source", source,       "--broker", endpoint,
                            "--poll-ms", "5",        "--stats-ms", "1000"};
    int argc = 9;
    if (extra) {
        argv[argc++] = "--on-publish";
        argv[argc++] = extra;
    }
    argv[argc] = NULL;
    pid_t pid = fy_spawn(log, argv); /* dies with the test */
    assert_true(pid > 0);
    return pid;
}

/* Waits until relay @p pid logged that it started (its signal handlers are set). */
static void
s_wait_started(const char *log, pid_t pid)
{
    char cmd[600], out[64];
    snprintf(cmd, sizeof cmd, "grep -c 'relay started.* pid=%d$' '%s' 2>/dev/null", (int)pid, log);
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until) {
        fy_run(cmd, out, sizeof out);
        if (atoi(out) >= 1)
            return;
        fy_sleep_ms(10);
    }
    fail_msg("relay %d did not start (%s)", (int)pid, log);
}

static int
s_relay_stop(pid_t pid, int sig)
{
    return fy_kill_wait(pid, sig);
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

/* ---- writers ------------------------------------------------------------------ */

typedef struct {
    const char *db;
    int w;
    size_t events;
    atomic_size_t *written;
    int failed;
} s_writer_t;

static void *
s_write(void *arg)
{
    s_writer_t *wr = arg;
    sqlite3 *db;
    if (sqlite3_open(wr->db, &db) != SQLITE_OK) {
        wr->failed = 1;
        return NULL;
    }
    sqlite3_busy_timeout(db, 30000);
    sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    sqlite3_stmt *ins;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload, "
                           "headers) VALUES('order', ?1, 'OrderChanged', ?2, ?3)",
                           -1, &ins, NULL) != SQLITE_OK) {
        wr->failed = 1;
        sqlite3_close(db);
        return NULL;
    }
    /* This writer owns aggregates w, w + 8, ...: their order is its order. */
    size_t mine = S_AGGREGATES / S_WRITERS, seq[S_AGGREGATES / S_WRITERS + 1] = {0};
    unsigned seed = (unsigned)wr->w * 7919u + 1;
    size_t done = 0;
    while (done < wr->events && !wr->failed) {
        size_t tx = 1 + (size_t)rand_r(&seed) % 20;
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            wr->failed = 1;
            break;
        }
        for (size_t k = 0; k < tx && done < wr->events; k++, done++) {
            size_t a = (size_t)rand_r(&seed) % mine;
            char agg[32], body[64];
            snprintf(agg, sizeof agg, "agg-%zu", a * S_WRITERS + (size_t)wr->w);
            int len = snprintf(body, sizeof body, "%s:%zu", agg, ++seq[a]);
            sqlite3_reset(ins);
            sqlite3_bind_text(ins, 1, agg, -1, SQLITE_TRANSIENT);
            sqlite3_bind_blob(ins, 2, body, len, SQLITE_TRANSIENT);
            sqlite3_bind_text(ins, 3, "{\"traceparent\":\"00-test\"}", -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                wr->failed = 1;
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            wr->failed = 1;
        atomic_fetch_add(wr->written, tx);
        fy_sleep_ms(1); /* spread the writes over the kills */
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return NULL;
}

/* Every event once, each aggregate's in order: agg-A:1, agg-A:2, ... */
/* True when @p id is "<kind>-<8 hex digits>:<row>": the message id of a
 * source relayed under its default name (relay/identity.h). */
static bool
s_default_id(const char *id, const char *kind, unsigned long row)
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

/* Every event once, in order per aggregate, each id "<source>:<row>" with
 * one source name; @p source ending in '-' (a kind, "sqlite-"): the
 * default name, "<kind>-<identity>". */
static void
s_verify(ferry_client_t *c, size_t events, const char *source)
{
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(c, "order", &all, &n), FERRY_OK);
    assert_int_equal(n, events);
    size_t *next = calloc(S_AGGREGATES, sizeof *next);
    uint8_t *seen = calloc(events + 1, 1);
    char first[64] = "";
    for (size_t i = 0; i < n; i++) {
        const char *colon = strrchr(all[i].id, ':');
        assert_non_null(colon);
        unsigned long id = strtoul(colon + 1, NULL, 10);
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%.*s", (int)(colon - all[i].id), all[i].id);
        size_t sl = strlen(source);
        if (source[sl - 1] == '-') {
            char kind[32];
            snprintf(kind, sizeof kind, "%.*s", (int)sl - 1, source);
            assert_true(s_default_id(all[i].id, kind, id));
        } else {
            assert_string_equal(prefix, source);
        }
        if (!first[0])
            snprintf(first, sizeof first, "%s", prefix);
        assert_string_equal(prefix, first); /* one name for the whole run */
        assert_true(id >= 1 && id <= events);
        assert_int_equal(seen[id]++, 0); /* exactly once */
        size_t a, s;
        assert_int_equal(sscanf(all[i].payload, "agg-%zu:%zu", &a, &s), 2);
        assert_true(a < S_AGGREGATES);
        assert_int_equal(s, ++next[a]); /* in insert order, no gap */
        char key[32];
        snprintf(key, sizeof key, "agg-%zu", a);
        assert_string_equal(all[i].key, key);
    }
    free(next);
    free(seen);
    free(all);
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
    s_writer_t w[S_WRITERS];
    pthread_t th[S_WRITERS];
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (s_writer_t){.db = db, .w = i, .events = events / S_WRITERS, .written = &written};
        assert_int_equal(pthread_create(&th[i], NULL, s_write, &w[i]), 0);
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
        assert_int_equal(w[i].failed, 0);
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

static void
test_poison_row_and_delete(void **state)
{
    fx_t *fx = *state;
    char db[400], log[400];
    sqlite3 *h = s_fresh_outbox(fx, db, log);
    s_exec(h, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) VALUES"
              "('order', 'o-1', 'Placed', 'one'),"
              "('not a topic', 'o-1', 'Placed', 'poison'),"
              "('order', 'o-1', 'Paid', 'two')");
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
    assert_int_equal(got, 1);
    const char *reason = ferry_msg_header(&dl[0], "ferry-relay-reason");
    assert_non_null(reason);
    assert_non_null(strstr(reason, "EINVALID_NAME"));
    assert_string_equal(ferry_msg_header(&dl[0], "ferry-relay-id"), "2");
    /* --on-publish delete: the published rows are gone, the position kept. */
    assert_int_equal(s_query_u64(db, "SELECT COUNT(*) FROM outbox"), 0);
    assert_int_equal(s_query_u64(db, "SELECT last_id FROM ferry_relay_position"), 3);
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
    /* A bad file: the line and what is wrong. */
    f = fopen(ini, "w");
    fprintf(f, "[source x]\nsource = sqlite:%s\nbatchsize = 5\n", a);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' --config '%s' 2>&1", getenv("FERRY_RELAY"), ini);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "relay.ini:3:"));
    assert_non_null(strstr(out, "batchsize"));
}

/* ---- PostgreSQL, polling ------------------------------------------------------ */

typedef struct {
    const char *conninfo;
    int w;
    size_t events;
    atomic_size_t *written;
    int failed;
} s_pgwriter_t;

static bool
s_pg_ok(PGconn *db, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    (void)db;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static void *
s_pgwrite(void *arg)
{
    s_pgwriter_t *wr = arg;
    PGconn *db = PQconnectdb(wr->conninfo);
    if (PQstatus(db) != CONNECTION_OK || !s_pg_ok(db, PQexec(db, "SET synchronous_commit = off"))) {
        wr->failed = 1;
        PQfinish(db);
        return NULL;
    }
    size_t mine = S_AGGREGATES / S_WRITERS, seq[S_AGGREGATES / S_WRITERS + 1] = {0};
    unsigned seed = (unsigned)wr->w * 15485863u + 5;
    size_t done = 0;
    while (done < wr->events && !wr->failed) {
        size_t tx = 1 + (size_t)rand_r(&seed) % 20, k = 0;
        if (!s_pg_ok(db, PQexec(db, "BEGIN"))) {
            wr->failed = 1;
            break;
        }
        for (; k < tx && done + k < wr->events; k++) {
            size_t a = (size_t)rand_r(&seed) % mine;
            char agg[32], body[64];
            snprintf(agg, sizeof agg, "agg-%zu", a * S_WRITERS + (size_t)wr->w);
            snprintf(body, sizeof body, "%s:%zu", agg, ++seq[a]);
            const char *params[2] = {agg, body};
            if (!s_pg_ok(db, PQexecParams(db,
                                          "INSERT INTO outbox(aggregate_type, aggregate_id, "
                                          "event_type, payload, headers) VALUES ('order', $1, "
                                          "'OrderChanged', convert_to($2, 'UTF8'), "
                                          "'{\"traceparent\": \"00-test\"}')",
                                          2, NULL, params, NULL, NULL, 0)))
                wr->failed = 1;
        }
        if (!s_pg_ok(db, PQexec(db, "COMMIT")))
            wr->failed = 1;
        done += k;
        atomic_fetch_add(wr->written, k);
    }
    PQfinish(db);
    return NULL;
}

static uint64_t
s_pg_u64(const char *conninfo, const char *sql)
{
    PGconn *db = PQconnectdb(conninfo);
    uint64_t v = 0;
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(db);
    return v;
}

/* A PostgreSQL server with the outbox DDL loaded, and the relay log path. */
static void
s_pg_outbox(fx_t *fx, fy_pg_t *pg, char *log)
{
    assert_int_equal(fy_pg_start(pg), 0);
    char ddl[600];
    snprintf(ddl, sizeof ddl, "\\i %s/outbox-relay/sql/postgres.sql\n",
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_pg_sql(pg, ddl), 0);
    snprintf(log, 400, "%s/relay.log", fx->d.dir);
}

static const char *
s_pg_source(const fy_pg_t *pg, char *src, size_t cap)
{
    snprintf(src, cap, "pg:%s", pg->conninfo);
    return src;
}

static const char *
s_pglog_source(const fy_pg_t *pg, char *src, size_t cap)
{
    snprintf(src, cap, "pg-logical:%s", pg->conninfo);
    return src;
}

/* Waits until @p topic holds @p n messages. */
static void
s_wait_topic(ferry_client_t *c, const char *topic, uint64_t n, int timeout_ms)
{
    ferry_topic_info_t info = {0};
    long long until = fy_now_ms() + timeout_ms;
    ferry_status_t st;
    while (((st = ferry_client_info(c, topic, &info)) != FERRY_OK || info.messages < n) &&
           fy_now_ms() < until)
        fy_sleep_ms(20);
    assert_int_equal(info.messages, n);
}

static void
s_wait_messages(ferry_client_t *c, uint64_t n, int timeout_ms)
{
    s_wait_topic(c, "order", n, timeout_ms);
}

/* 8 writers, 50,000 events, the relay kill -9-ed at random moments at least
 * five times; then every event is in the broker once and in order. */
static void
s_pg_kill_run(fx_t *fx, bool logical)
{
    fy_pg_t pg;
    char log[400], src[400];
    s_pg_outbox(fx, &pg, log);
    const size_t events = getenv("FERRY_TEST_QUICK") ? 8000 : 50000;
    const char *kind = logical ? "pg-logical-" : "pg-";
    if (logical)
        s_pglog_source(&pg, src, sizeof src);
    else
        s_pg_source(&pg, src, sizeof src);
    /* The log-tailing source's slot holds only what comes after it: made
     * first with --setup, it keeps the rows written before the relay runs. */
    pid_t relay = -1;
    if (logical) {
        char cmd[1200], out[512];
        snprintf(cmd, sizeof cmd, "'%s' --setup --source '%s'", getenv("FERRY_RELAY"), src);
        assert_int_equal(fy_run(cmd, out, sizeof out), 0);
        assert_non_null(strstr(out, "ready"));
    } else {
        relay = s_relay_start(src, fx->d.endpoint, log, NULL);
        s_wait_started(log, relay);
    }
    atomic_size_t written = 0;
    s_pgwriter_t w[S_WRITERS];
    pthread_t th[S_WRITERS];
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (s_pgwriter_t){
            .conninfo = pg.conninfo, .w = i, .events = events / S_WRITERS, .written = &written};
        assert_int_equal(pthread_create(&th[i], NULL, s_pgwrite, &w[i]), 0);
    }
    if (logical) { /* rows are being written before the relay starts */
        long long until = fy_now_ms() + 30000;
        while (atomic_load(&written) < 500 && fy_now_ms() < until)
            fy_sleep_ms(5);
        relay = s_relay_start(src, fx->d.endpoint, log, NULL);
    }
    unsigned seed = (unsigned)time(NULL) ^ 0x3c3c;
    int kills = 0;
    while (atomic_load(&written) < events || kills < 5) {
        fy_sleep_ms(100 + (int)(rand_r(&seed) % 400));
        assert_true(WIFSIGNALED(s_relay_stop(relay, SIGKILL)));
        kills++;
        relay = s_relay_start(src, fx->d.endpoint, log, NULL);
        if (kills > 60)
            break;
    }
    for (int i = 0; i < S_WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    uint64_t head = s_pg_u64(pg.conninfo, "SELECT MAX(id) FROM outbox");
    assert_int_equal(s_pg_u64(pg.conninfo, "SELECT COUNT(*) FROM outbox"), events);
    if (logical) {
        /* Caught up: every event in the broker, and the slot past the last
         * write once the relay is idle. */
        uint64_t end = s_pg_u64(pg.conninfo, "SELECT pg_current_wal_lsn() - '0/0'");
        s_wait_messages(fx->c, events, 60000);
        long long until = fy_now_ms() + 20000;
        while (fy_now_ms() < until &&
               s_pg_u64(pg.conninfo, "SELECT confirmed_flush_lsn - '0/0' FROM "
                                     "pg_replication_slots") < end)
            fy_sleep_ms(20);
        assert_true(
            s_pg_u64(pg.conninfo, "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots") >=
            end);
        s_wait_started(log, relay);
        int status = s_relay_stop(relay, SIGTERM);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        printf("pg-logical relay killed %d times while %zu events were written\n", kills, events);
        s_verify(fx->c, events, kind);
        fy_pg_stop(&pg);
        return;
    }
    long long until = fy_now_ms() + 60000;
    /* Caught up: the last row in (xid, id) order is recorded. */
    while (fy_now_ms() < until &&
           s_pg_u64(pg.conninfo, "SELECT COUNT(*) FROM outbox o, ferry_relay_position p "
                                 "WHERE (o.xid, o.id) > (p.last_xid, p.last_id)") > 0)
        fy_sleep_ms(20);
    assert_int_equal(s_pg_u64(pg.conninfo, "SELECT COUNT(*) FROM outbox o, ferry_relay_position p "
                                           "WHERE (o.xid, o.id) > (p.last_xid, p.last_id)"),
                     0);
    s_wait_started(log, relay);
    int status = s_relay_stop(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("pg relay killed %d times while %zu events (ids up to %llu) were written\n", kills,
           events, (unsigned long long)head);
    s_verify(fx->c, events, kind);
    fy_pg_stop(&pg);
}

static void
test_pg_relay_survives_kills(void **state)
{
    s_pg_kill_run(*state, false);
}

static void
test_pglog_relay_survives_kills(void **state)
{
    s_pg_kill_run(*state, true);
}

static uint64_t
s_slot_lsn(const fy_pg_t *pg)
{
    return s_pg_u64(pg->conninfo, "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots");
}

/* pg-logical: a poison row is dead-lettered between its neighbours, the
 * headers and created_at come through, and an idle relay moves its slot past
 * unrelated WAL traffic (else the server would keep that WAL forever). */
static void
test_pglog_poison_and_idle_slot(void **state)
{
    fx_t *fx = *state;
    fy_pg_t pg;
    char log[400], src[400];
    s_pg_outbox(fx, &pg, log);
    pid_t relay = s_relay_start(s_pglog_source(&pg, src, sizeof src), fx->d.endpoint, log, NULL);
    s_wait_started(log, relay);
    assert_int_equal(
        fy_pg_sql(&pg, "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload, "
                       "headers, created_at) VALUES "
                       "('order', 'o-1', 'Placed', 'one', '{\"traceparent\": \"00-abc\", "
                       "\"n\": 7}', '2026-01-02T03:04:05.678Z'), "
                       "('not a topic', 'o-1', 'Placed', 'poison', NULL, now()), "
                       "('order', 'o-1', 'Paid', 'two', NULL, now());"),
        0);
    s_wait_messages(fx->c, 2, 20000);
    const ferry_stored_message_t *m;
    size_t got;
    assert_int_equal(ferry_client_get(fx->c, "order", 1, 10, &m, &got), FERRY_OK);
    assert_int_equal(got, 2);
    assert_int_equal(m[0].len, 3);
    assert_memory_equal(m[0].data, "one", 3);
    assert_string_equal(ferry_msg_header(&m[0], "traceparent"), "00-abc");
    assert_string_equal(ferry_msg_header(&m[0], "n"), "7"); /* as jsonb_each_text */
    assert_string_equal(ferry_msg_header(&m[0], "event_type"), "Placed");
    assert_string_equal(ferry_msg_header(&m[0], "created_at"), "2026-01-02T03:04:05.678Z");
    assert_string_equal(m[0].key, "o-1");
    assert_true(s_default_id(m[0].id, "pg-logical", 1));
    assert_memory_equal(m[1].data, "two", 3);
    assert_true(s_default_id(m[1].id, "pg-logical", 3));
    const ferry_stored_message_t *dl;
    s_wait_topic(fx->c, "ferry-relay.dlq", 1, 20000); /* after "two" maybe: it went first */
    assert_int_equal(ferry_client_get(fx->c, "ferry-relay.dlq", 1, 10, &dl, &got), FERRY_OK);
    assert_int_equal(got, 1);
    assert_non_null(strstr(ferry_msg_header(&dl[0], "ferry-relay-reason"), "EINVALID_NAME"));
    assert_string_equal(ferry_msg_header(&dl[0], "ferry-relay-id"), "2");
    /* Idle, with other tables written: the slot follows the end of WAL. */
    uint64_t before = s_slot_lsn(&pg);
    assert_int_equal(fy_pg_sql(&pg, "CREATE TABLE other(x int); "
                                    "INSERT INTO other SELECT generate_series(1, 50000);"),
                     0);
    uint64_t end = s_pg_u64(pg.conninfo, "SELECT pg_current_wal_lsn() - '0/0'");
    assert_true(end > before + 1000000); /* a megabyte and more of unrelated WAL */
    long long until = fy_now_ms() + 20000;
    while (s_slot_lsn(&pg) < end && fy_now_ms() < until)
        fy_sleep_ms(50);
    assert_true(s_slot_lsn(&pg) >= end);
    int status = s_relay_stop(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Nothing new after a restart: the slot skips what was confirmed. */
    relay = s_relay_start(src, fx->d.endpoint, log, NULL);
    s_wait_started(log, relay);
    fy_sleep_ms(500);
    s_wait_messages(fx->c, 2, 1000);
    assert_true(WIFEXITED(s_relay_stop(relay, SIGTERM)));
    /* Misuse: --on-publish delete, a publication without the table. */
    char cmd[1200], out[2048];
    snprintf(cmd, sizeof cmd, "'%s' --source '%s' --on-publish delete 2>&1", getenv("FERRY_RELAY"),
             src);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "polling sources"));
    snprintf(cmd, sizeof cmd, "'%s' --source '%s' --publication other_pub --slot s2 2>&1",
             getenv("FERRY_RELAY"), src);
    assert_int_equal(fy_pg_sql(&pg, "CREATE PUBLICATION other_pub FOR TABLE other;"), 0);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "does not publish table outbox"));
    /* An unreachable server; a database without the table. */
    snprintf(cmd, sizeof cmd,
             "'%s' --source 'pg-logical:host=127.0.0.1 port=1 user=ferry dbname=app "
             "connect_timeout=2' 2>&1",
             getenv("FERRY_RELAY"));
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot connect"));
    assert_int_equal(fy_pg_sql(&pg, "DROP TABLE outbox;"), 0);
    snprintf(cmd, sizeof cmd, "'%s' --source '%s' 2>&1", getenv("FERRY_RELAY"), src);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "outbox table"));
    fy_pg_stop(&pg);
}

/* @p topic holds @p n messages with ids "<source>:<id>", each once, every
 * id at most @p max (a crash makes a sequence skip values: not 1..n). */
static void
s_ids_once(ferry_client_t *c, const char *topic, const char *source, size_t n, size_t max)
{
    fy_copied_t *all;
    size_t got;
    assert_int_equal(fy_read_all(c, topic, &all, &got), FERRY_OK);
    assert_int_equal(got, n);
    uint8_t *seen = calloc(max + 1, 1);
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s:%%lu", source);
    for (size_t i = 0; i < got; i++) {
        unsigned long id = 0;
        assert_int_equal(sscanf(all[i].id, fmt, &id), 1);
        assert_true(id >= 1 && id <= max);
        assert_int_equal(seen[id]++, 0);
    }
    free(seen);
    free(all);
}

/* Both PostgreSQL sources in one relay process (an INI file) while the
 * server crashes (pg_ctl restart -m immediate) between two batches of rows:
 * the relay reconnects by itself and each row is published once. */
static void
test_pg_server_crash(void **state)
{
    fx_t *fx = *state;
    fy_pg_t pg;
    char log[400], ini[400], text[1200];
    s_pg_outbox(fx, &pg, log);
    snprintf(ini, sizeof ini, "%s/pg.ini", fx->d.dir);
    snprintf(text, sizeof text,
             "[relay]\nbroker = %s\npoll-ms = 5\nstats-ms = 1000\n"
             "[source poll]\nsource = pg:%s\ntopic-template = poll.{aggregate_type}\n"
             "[source wal]\nsource = pg-logical:%s\ntopic-template = wal.{aggregate_type}\n",
             fx->d.endpoint, pg.conninfo, pg.conninfo);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    const char *argv[] = {getenv("FERRY_RELAY"), "--config", ini, NULL};
    pid_t pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    long long until = fy_now_ms() + 20000; /* the slot exists: rows from now on are in it */
    while (s_pg_u64(pg.conninfo, "SELECT count(*) FROM pg_replication_slots") == 0 &&
           fy_now_ms() < until)
        fy_sleep_ms(20);
    const char *batch = "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                        "SELECT 'order', 'agg-' || (i % 50), 'E', 'x' "
                        "FROM generate_series(1, 1000) i;";
    assert_int_equal(fy_pg_sql(&pg, batch), 0);
    s_wait_topic(fx->c, "poll.order", 1000, 20000);
    s_wait_topic(fx->c, "wal.order", 1000, 20000);
    assert_int_equal(fy_pg_crash_restart(&pg), 0);
    assert_int_equal(fy_pg_sql(&pg, batch), 0);
    s_wait_topic(fx->c, "poll.order", 2000, 30000);
    s_wait_topic(fx->c, "wal.order", 2000, 30000);
    s_wait_started(log, pid);
    int status = s_relay_stop(pid, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    size_t max = (size_t)s_pg_u64(pg.conninfo, "SELECT max(id) FROM outbox");
    s_ids_once(fx->c, "poll.order", "poll", 2000, max);
    s_ids_once(fx->c, "wal.order", "wal", 2000, max);
    /* The relay said why it could not read, on one logfmt line. */
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "grep -c 'cannot read the outbox.*detail=\"postgresql: ' '%s'", log);
    fy_run(cmd, out, sizeof out);
    assert_true(atoi(out) >= 1);
    fy_pg_stop(&pg);
}

/* A transaction with a lower id commits after one with a higher id: the
 * relay publishes both, the lower one first (its transaction began first). */
static void
test_pg_late_commit_is_not_skipped(void **state)
{
    fx_t *fx = *state;
    fy_pg_t pg;
    char log[400], src[400];
    s_pg_outbox(fx, &pg, log);
    PGconn *a = PQconnectdb(pg.conninfo), *b = PQconnectdb(pg.conninfo);
    assert_true(PQstatus(a) == CONNECTION_OK && PQstatus(b) == CONNECTION_OK);
    const char *ins = "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                      "VALUES ('order', '%s', 'E', convert_to('%s', 'UTF8'))";
    char sql[300];
    assert_true(s_pg_ok(a, PQexec(a, "BEGIN")));
    snprintf(sql, sizeof sql, ins, "slow", "slow");
    assert_true(s_pg_ok(a, PQexec(a, sql))); /* id 1, transaction still open */
    snprintf(sql, sizeof sql, ins, "fast", "fast");
    assert_true(s_pg_ok(b, PQexec(b, sql))); /* id 2, committed */
    pid_t relay = s_relay_start(s_pg_source(&pg, src, sizeof src), fx->d.endpoint, log, NULL);
    fy_sleep_ms(800);
    ferry_topic_info_t info;
    ferry_status_t st = ferry_client_info(fx->c, "order", &info);
    /* Nothing yet: the committed row waits behind the open transaction. */
    assert_true(st == FERRY_ENOTFOUND || (st == FERRY_OK && info.messages == 0));
    assert_true(s_pg_ok(a, PQexec(a, "COMMIT")));
    long long until = fy_now_ms() + 20000;
    do {
        fy_sleep_ms(20);
        st = ferry_client_info(fx->c, "order", &info);
    } while ((st != FERRY_OK || info.messages < 2) && fy_now_ms() < until);
    assert_int_equal(info.messages, 2);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "order", &all, &n), FERRY_OK);
    assert_string_equal(all[0].payload, "slow");
    assert_string_equal(all[1].payload, "fast");
    free(all);
    s_wait_started(log, relay);
    assert_true(WIFEXITED(s_relay_stop(relay, SIGTERM)));
    PQfinish(a);
    PQfinish(b);
    /* An unreachable database, and a database without the table. */
    char cmd[1200], out[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' --source 'pg:host=127.0.0.1 port=1 user=ferry dbname=app "
             "connect_timeout=2' 2>&1",
             getenv("FERRY_RELAY"));
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot connect"));
    assert_int_equal(fy_pg_sql(&pg, "DROP TABLE outbox;"), 0);
    snprintf(cmd, sizeof cmd, "'%s' --source 'pg:%s' 2>&1", getenv("FERRY_RELAY"), pg.conninfo);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "outbox table"));
    fy_pg_stop(&pg);
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
        cmocka_unit_test_setup_teardown(test_broker_away_then_back, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_lmdb_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_inprocess_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_keeps_ids_growing, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_config_file_two_sources, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pg_relay_survives_kills, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pglog_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pglog_poison_and_idle_slot, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pg_server_crash, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pg_late_commit_is_not_skipped, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_configuration, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay", tests, NULL, NULL);
}
