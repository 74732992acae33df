/* SPDX-License-Identifier: MIT */
/*
 * test_relay_pg.c - ferry-relay on a real PostgreSQL server (Debian's, on a
 * temporary directory) and a real ferryd, both PostgreSQL sources:
 *
 * - polling (pg) and log tailing (pg-logical): 8 writers insert 50,000
 *   events over 500 aggregates while the relay is killed with -9 at random
 *   moments (at least 5 times): every event in the broker once, each
 *   aggregate's in commit order;
 * - pg-logical: a poison row is dead-lettered between its neighbours,
 *   headers and created_at come through, an idle relay moves its slot past
 *   unrelated WAL; misuse gets a clear error;
 * - the server crashes (immediate restart) under a relay running both
 *   sources: it reconnects by itself, each row published once;
 * - a transaction with a lower id that commits late is not skipped.
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
#include <libpq-fe.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

typedef fy_fx_t fx_t;

#define S_WRITERS FY_OUTBOX_WRITERS

static pid_t
s_relay_start(const char *source, const char *endpoint, const char *log, const char *extra)
{
    pid_t pid = fy_relay_spawn(source, endpoint, log, extra);
    assert_true(pid > 0);
    return pid;
}

/* Every event once, in order per aggregate (relayfx.h). */
static void
s_verify(ferry_client_t *c, size_t events, const char *source)
{
    char why[256];
    if (fy_outbox_verify(c, "order", events, source, why, sizeof why) != 0)
        fail_msg("%s", why);
}

/* ---- PostgreSQL, polling ------------------------------------------------------ */

static bool
s_pg_ok(PGconn *db, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    (void)db;
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
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
        assert_int_equal(fy_relay_wait_started(log, relay), 0);
    }
    atomic_size_t written = 0;
    fy_outbox_writer_t w[S_WRITERS];
    pthread_t th[S_WRITERS];
    for (int i = 0; i < S_WRITERS; i++) {
        w[i] = (fy_outbox_writer_t){
            .conninfo = pg.conninfo, .w = i, .events = events / S_WRITERS, .written = &written};
        assert_int_equal(pthread_create(&th[i], NULL, fy_outbox_write, &w[i]), 0);
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
        assert_true(WIFSIGNALED(fy_kill_wait(relay, SIGKILL)));
        kills++;
        relay = s_relay_start(src, fx->d.endpoint, log, NULL);
        if (kills > 60)
            break;
    }
    for (int i = 0; i < S_WRITERS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].failed)
            fail_msg("writer %d: %s", i, w[i].error);
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
        assert_int_equal(fy_relay_wait_started(log, relay), 0);
        int status = fy_kill_wait(relay, SIGTERM);
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
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
    int status = fy_kill_wait(relay, SIGTERM);
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
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
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
    assert_true(fy_relay_default_id(m[0].id, "pg-logical", 1));
    assert_memory_equal(m[1].data, "two", 3);
    assert_true(fy_relay_default_id(m[1].id, "pg-logical", 3));
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
    int status = fy_kill_wait(relay, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Nothing new after a restart: the slot skips what was confirmed. */
    relay = s_relay_start(src, fx->d.endpoint, log, NULL);
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
    fy_sleep_ms(500);
    s_wait_messages(fx->c, 2, 1000);
    assert_true(WIFEXITED(fy_kill_wait(relay, SIGTERM)));
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
    assert_int_equal(fy_relay_wait_started(log, pid), 0);
    int status = fy_kill_wait(pid, SIGTERM);
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
    int port = fy_free_port();
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *extra[] = {"--metrics", addr, NULL};
    pid_t relay =
        fy_relay_spawn_with(s_pg_source(&pg, src, sizeof src), fx->d.endpoint, log, extra);
    assert_true(relay > 0);
    fy_sleep_ms(800);
    ferry_topic_info_t info;
    ferry_status_t st = ferry_client_info(fx->c, "order", &info);
    /* Nothing yet: the committed row waits behind the open transaction, and
     * the lag counts it (in (xid, id) order, not by the highest id). */
    assert_true(st == FERRY_ENOTFOUND || (st == FERRY_OK && info.messages == 0));
    assert_true(fy_relay_metric_is(port, "ferry_relay_lag_rows", 1));
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
    assert_true(fy_relay_metric_is(port, "ferry_relay_lag_rows", 0));
    assert_true(fy_relay_metric_is(port, "ferry_relay_published_total", 2));
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
    assert_true(WIFEXITED(fy_kill_wait(relay, SIGTERM)));
    /* Started again with nothing pending: 0 from the first reading. */
    relay = fy_relay_spawn_with(s_pg_source(&pg, src, sizeof src), fx->d.endpoint, log, extra);
    assert_true(relay > 0);
    long long wait = fy_now_ms() + 20000;
    double lag = -1;
    while (lag < 0 && fy_now_ms() < wait) {
        lag = fy_relay_metric(port, "ferry_relay_lag_rows");
        fy_sleep_ms(20);
    }
    assert_true(lag == 0);
    assert_true(WIFEXITED(fy_kill_wait(relay, SIGTERM)));
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

/* A password in the conninfo never reaches the log or the terminal: the
 * relay's lines show "password=***" (the server trusts the connection,
 * so the password is not needed to run; it must still be hidden). */
static void
test_password_not_logged(void **state)
{
    fx_t *fx = *state;
    fy_pg_t pg;
    char log[400], src[600], cmd[1600], out[2048];
    s_pg_outbox(fx, &pg, log);
    snprintf(src, sizeof src, "pg:%s password=s3cret", pg.conninfo);
    pid_t relay = s_relay_start(src, fx->d.endpoint, log, NULL);
    assert_int_equal(fy_relay_wait_started(log, relay), 0);
    assert_true(WIFEXITED(fy_kill_wait(relay, SIGTERM)));
    snprintf(cmd, sizeof cmd, "grep -c 's3cret' '%s'", log);
    fy_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 0);
    snprintf(cmd, sizeof cmd, "grep -c 'relay started.*password=\\*\\*\\*' '%s'", log);
    fy_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 1);
    /* Nor when the server cannot be reached, or with --setup. */
    snprintf(cmd, sizeof cmd,
             "'%s' --source 'pg:host=127.0.0.1 port=1 user=ferry dbname=app password=s3cret "
             "connect_timeout=2' 2>&1; '%s' --setup --source '%s' 2>&1",
             getenv("FERRY_RELAY"), getenv("FERRY_RELAY"), src);
    fy_run(cmd, out, sizeof out);
    assert_null(strstr(out, "s3cret"));
    assert_non_null(strstr(out, "password=***"));
    fy_pg_stop(&pg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pg_relay_survives_kills, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pglog_relay_survives_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pglog_poison_and_idle_slot, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pg_server_crash, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pg_late_commit_is_not_skipped, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_password_not_logged, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
