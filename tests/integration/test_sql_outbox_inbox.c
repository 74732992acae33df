/* SPDX-License-Identifier: MIT */
/*
 * test_sql_outbox_inbox.c - libferry-sql (ferry_sql.h) on a real SQLite file
 * and a real PostgreSQL server, with a real ferryd and ferry-relay:
 *
 * - setup creates the tables, twice is harmless, a newer schema is EFORMAT,
 *   tables of version 1 are brought to the library's version;
 * - an outbox row commits or rolls back with the caller's transaction, its
 *   headers are JSON the relay reads back: the event reaches the broker
 *   with its key, type and headers; bad events are EINVAL, nothing written;
 * - the inbox records a message once per consumer in the caller's
 *   transaction; handle runs the work once, a refused work leaves nothing;
 *   prune forgets old records;
 * - PostgreSQL: two connections handling one message at once run the work
 *   once;
 * - a consumer of ferryd whose messages all come twice (nack, redelivery)
 *   does each message's work once.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry_sql.h"
#include "harness.h"
#include "pgserver.h"
#include "relayfx.h"

/* One database of either kind, and the calls of ferry_sql.h for it. */
typedef struct {
    sqlite3 *lite;
    PGconn *pg;
} s_db_t;

static void
s_sql(s_db_t *db, const char *sql)
{
    if (db->lite) {
        char *msg = NULL;
        if (sqlite3_exec(db->lite, sql, NULL, NULL, &msg) != SQLITE_OK)
            fail_msg("%s: %s", sql, msg);
        return;
    }
    PGresult *res = PQexec(db->pg, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(db->pg));
    PQclear(res);
}

/* The first column of the first row of @p sql, as text ("" if none). */
static const char *
s_value(s_db_t *db, const char *sql, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (db->lite) {
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db->lite, sql, -1, &st, NULL), SQLITE_OK);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            snprintf(buf, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        return buf;
    }
    PGresult *res = PQexec(db->pg, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(db->pg));
    if (PQntuples(res) > 0)
        snprintf(buf, cap, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return buf;
}

static long
s_count(s_db_t *db, const char *sql)
{
    char buf[64];
    return atol(s_value(db, sql, buf, sizeof buf));
}

static ferry_status_t
s_setup(s_db_t *db, char *err, size_t cap)
{
    return db->lite ? ferry_sql_setup_sqlite(db->lite, err, cap)
                    : ferry_sql_setup_pg(db->pg, err, cap);
}

static ferry_status_t
s_put(s_db_t *db, const ferry_outbox_event_t *ev, int64_t *id)
{
    return db->lite ? ferry_outbox_sqlite_put(db->lite, ev, id)
                    : ferry_outbox_pg_put(db->pg, ev, id);
}

static ferry_status_t
s_record(s_db_t *db, const char *consumer, const ferry_stored_message_t *m)
{
    return db->lite ? ferry_inbox_sqlite_record(db->lite, consumer, m)
                    : ferry_inbox_pg_record(db->pg, consumer, m);
}

/* The work: a row in `work` naming the message, then the answer in *user. */
static int
s_lite_work(sqlite3 *db, const ferry_stored_message_t *m, void *user)
{
    char sql[300];
    snprintf(sql, sizeof sql, "INSERT INTO work (msg) VALUES ('%s:%llu')", m->topic,
             (unsigned long long)m->seq);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    return *(int *)user;
}

static int
s_pg_work(PGconn *conn, const ferry_stored_message_t *m, void *user)
{
    char sql[300];
    snprintf(sql, sizeof sql, "INSERT INTO work (msg) VALUES ('%s:%llu')", m->topic,
             (unsigned long long)m->seq);
    PGresult *res = PQexec(conn, sql);
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    return *(int *)user;
}

static ferry_status_t
s_handle(s_db_t *db, const char *consumer, const ferry_stored_message_t *m, int answer, int *fn_rc)
{
    return db->lite ? ferry_inbox_sqlite_handle(db->lite, consumer, m, s_lite_work, &answer, fn_rc)
                    : ferry_inbox_pg_handle(db->pg, consumer, m, s_pg_work, &answer, fn_rc);
}

static ferry_status_t
s_prune(s_db_t *db, uint64_t before, size_t *removed)
{
    return db->lite ? ferry_inbox_sqlite_prune(db->lite, before, removed)
                    : ferry_inbox_pg_prune(db->pg, before, removed);
}

/* What both databases must do, without the broker. */
static void
s_outbox_and_inbox(s_db_t *db)
{
    char err[300] = "", buf[300];
    if (s_setup(db, err, sizeof err) != FERRY_OK)
        fail_msg("setup: %s", err);
    assert_int_equal(s_setup(db, err, sizeof err), FERRY_OK); /* again: nothing changes */
    assert_int_equal(s_count(db, "SELECT version FROM ferry_schema WHERE component = 'ferry'"),
                     FERRY_SQL_SCHEMA_VERSION);
    s_sql(db, "CREATE TABLE orders (id TEXT PRIMARY KEY)");
    s_sql(db, "CREATE TABLE work (msg TEXT NOT NULL)");

    /* The outbox row goes with the caller's transaction. */
    ferry_header_t hdrs[] = {{"traceparent", "00-4bf92f3577b34da6-00f067aa0ba902b7-01"},
                             {"tenant", "\"eu\" \\ west"}};
    ferry_outbox_event_t ev = {.aggregate_type = "orders",
                               .aggregate_id = "o-1",
                               .event_type = "OrderPlaced",
                               .payload = "{\"total\":42}",
                               .len = 12,
                               .headers = hdrs,
                               .header_count = 2};
    int64_t id = 0;
    s_sql(db, "BEGIN");
    s_sql(db, "INSERT INTO orders (id) VALUES ('o-1')");
    assert_int_equal(s_put(db, &ev, &id), FERRY_OK);
    assert_true(id > 0);
    s_sql(db, "ROLLBACK");
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox"), 0);
    assert_int_equal(s_count(db, "SELECT count(*) FROM orders"), 0);
    s_sql(db, "BEGIN");
    s_sql(db, "INSERT INTO orders (id) VALUES ('o-1')");
    assert_int_equal(s_put(db, &ev, &id), FERRY_OK);
    s_sql(db, "COMMIT");
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox"), 1);
    snprintf(buf, sizeof buf, "SELECT count(*) FROM outbox WHERE id = %lld", (long long)id);
    assert_int_equal(s_count(db, buf), 1);
    assert_string_equal(s_value(db,
                                db->lite ? "SELECT json_extract(headers, '$.tenant') FROM outbox"
                                         : "SELECT headers->>'tenant' FROM outbox",
                                buf, sizeof buf),
                        "\"eu\" \\ west");
    /* Bad events: refused before the database sees them. */
    ferry_outbox_event_t bad = ev;
    bad.aggregate_id = "";
    assert_int_equal(s_put(db, &bad, NULL), FERRY_EINVAL);
    ferry_header_t twice[] = {{"a", "1"}, {"a", "2"}}, binary[] = {{"a", "\xff\xfe"}};
    bad = ev;
    bad.headers = twice;
    assert_int_equal(s_put(db, &bad, NULL), FERRY_EINVAL);
    bad.headers = binary;
    bad.header_count = 1;
    assert_int_equal(s_put(db, &bad, NULL), FERRY_EINVAL);
    assert_int_equal(s_put(db, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(s_count(db, "SELECT count(*) FROM outbox"), 1);

    /* The inbox in the caller's transaction: once per consumer. */
    ferry_stored_message_t m1 = {.topic = "payments", .seq = 3, .id = "pay-1"};
    s_sql(db, "BEGIN");
    assert_int_equal(s_record(db, "billing", &m1), FERRY_OK);
    assert_int_equal(s_record(db, "billing", &m1), FERRY_EEXISTS);
    s_sql(db, "ROLLBACK");
    s_sql(db, "BEGIN");
    assert_int_equal(s_record(db, "billing", &m1), FERRY_OK); /* the rollback took it back */
    s_sql(db, "COMMIT");
    assert_int_equal(s_record(db, "billing", &m1), FERRY_EEXISTS);
    assert_int_equal(s_record(db, "shipping", &m1), FERRY_OK);
    assert_int_equal(s_record(db, "", &m1), FERRY_EINVAL);
    ferry_stored_message_t nothing = {.seq = 1};
    assert_int_equal(s_record(db, "billing", &nothing), FERRY_EINVAL);

    /* handle: the work once; a refused work leaves nothing, not even its rows. */
    ferry_stored_message_t m2 = {.topic = "payments", .seq = 7}; /* no id: by sequence */
    int fn_rc = -1;
    assert_int_equal(s_handle(db, "billing", &m2, 0, &fn_rc), FERRY_OK);
    assert_int_equal(fn_rc, 0);
    assert_int_equal(s_handle(db, "billing", &m2, 0, &fn_rc), FERRY_EEXISTS);
    assert_int_equal(s_count(db, "SELECT count(*) FROM work"), 1);
    assert_int_equal(
        s_count(db, "SELECT count(*) FROM ferry_inbox WHERE message = '#7' AND topic = 'payments'"),
        1);
    ferry_stored_message_t m3 = {.topic = "payments", .seq = 8, .id = "pay-3"};
    assert_int_equal(s_handle(db, "billing", &m3, 5, &fn_rc), FERRY_ECANCELLED);
    assert_int_equal(fn_rc, 5);
    assert_int_equal(s_count(db, "SELECT count(*) FROM work"), 1);
    assert_int_equal(s_count(db, "SELECT count(*) FROM ferry_inbox WHERE message = 'pay-3'"), 0);
    assert_int_equal(s_handle(db, "billing", &m3, 0, &fn_rc), FERRY_OK);
    assert_int_equal(s_count(db, "SELECT count(*) FROM work"), 2);

    /* prune: only what was handled before the time given. */
    size_t removed = 99;
    assert_int_equal(s_prune(db, 1000, &removed), FERRY_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(s_prune(db, fy_wall_ms() + 1000, &removed), FERRY_OK);
    assert_int_equal(removed, 4);
    assert_int_equal(s_count(db, "SELECT count(*) FROM ferry_inbox"), 0);

    /* Tables of a newer library: refused, named. */
    s_sql(db, "UPDATE ferry_schema SET version = 99");
    assert_int_equal(s_setup(db, err, sizeof err), FERRY_EFORMAT);
    assert_non_null(strstr(err, "version 99"));
    /* Tables of version 1 (ferry_saga without `results`, a saga in it):
     * setup brings them to the library's version, the row kept. */
    s_sql(db, "ALTER TABLE ferry_saga DROP COLUMN results");
    s_sql(db, "INSERT INTO ferry_saga (id, def, state, step, attempt, deadline_ms, data) VALUES "
              "('v1', 'order', 3, 3, 1, 0, '')");
    s_sql(db, "UPDATE ferry_schema SET version = 1");
    if (s_setup(db, err, sizeof err) != FERRY_OK)
        fail_msg("setup over version 1: %s", err);
    assert_int_equal(s_count(db, "SELECT version FROM ferry_schema WHERE component = 'ferry'"),
                     FERRY_SQL_SCHEMA_VERSION);
    assert_int_equal(s_count(db, "SELECT count(*) FROM ferry_saga WHERE id = 'v1' AND results = "
                                 "'{}' AND def = 'order'"),
                     1);
    s_sql(db, "DELETE FROM ferry_saga");
}

/* The event of s_outbox_and_inbox reaches ferryd through ferry-relay on
 * @p source, with its key, type and headers. */
static void
s_relayed(fy_ferryd_t *d, const char *source, const char *dir)
{
    char log[300];
    snprintf(log, sizeof log, "%s/relay.log", dir);
    int pid = fy_relay_spawn(source, d->endpoint, log, NULL);
    assert_true(pid > 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    const ferry_stored_message_t *msgs = NULL;
    size_t n = 0;
    long long until = fy_now_ms() + 20000;
    while (n == 0 && fy_now_ms() < until) {
        if (ferry_client_get(c, "orders", 1, 10, &msgs, &n) != FERRY_OK)
            n = 0;
        if (n == 0)
            fy_sleep_ms(20);
    }
    assert_int_equal(n, 1);
    assert_string_equal(msgs[0].key, "o-1");
    assert_int_equal(msgs[0].len, 12);
    assert_memory_equal(msgs[0].data, "{\"total\":42}", 12);
    assert_string_equal(ferry_msg_header(&msgs[0], "event_type"), "OrderPlaced");
    assert_string_equal(ferry_msg_header(&msgs[0], "traceparent"),
                        "00-4bf92f3577b34da6-00f067aa0ba902b7-01");
    assert_string_equal(ferry_msg_header(&msgs[0], "tenant"), "\"eu\" \\ west");
    ferry_client_destroy(&c);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void
test_sqlite(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], path[300], source[320];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/app.db", dir);
    s_db_t db = {0};
    assert_int_equal(sqlite3_open(path, &db.lite), SQLITE_OK);
    s_outbox_and_inbox(&db);
    char mode[16];
    assert_string_equal(s_value(&db, "PRAGMA journal_mode", mode, sizeof mode), "wal");
    assert_int_equal(fy_ferryd_start(d), 0);
    snprintf(source, sizeof source, "sqlite:%s", path);
    s_relayed(d, source, dir);
    sqlite3_close(db.lite);
    fy_rmtree(dir);
}

typedef struct {
    const char *conninfo;
    ferry_status_t st;
} s_racer_t;

/* Handles one message with work that takes 300 ms, on a connection of its own. */
static int
s_slow_work(PGconn *conn, const ferry_stored_message_t *m, void *user)
{
    (void)user;
    int answer = 0;
    s_pg_work(conn, m, &answer);
    fy_sleep_ms(300);
    return 0;
}

static void *
s_race(void *arg)
{
    s_racer_t *r = arg;
    PGconn *conn = PQconnectdb(r->conninfo);
    ferry_stored_message_t m = {.topic = "payments", .seq = 50, .id = "raced"};
    r->st = PQstatus(conn) == CONNECTION_OK
                ? ferry_inbox_pg_handle(conn, "billing", &m, s_slow_work, NULL, NULL)
                : FERRY_EIO;
    PQfinish(conn);
    return NULL;
}

static void
test_postgres(void **state)
{
    fy_ferryd_t *d = *state;
    fy_pg_t pg = {0};
    assert_int_equal(fy_pg_start(&pg), 0);
    s_db_t db = {0};
    db.pg = PQconnectdb(pg.conninfo);
    assert_int_equal(PQstatus(db.pg), CONNECTION_OK);
    s_outbox_and_inbox(&db);
    /* Two connections at once with one message: the work runs once; the
     * second waits for the first's row, then finds it. */
    s_racer_t r[2] = {{pg.conninfo, -1}, {pg.conninfo, -1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, s_race, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_true((r[0].st == FERRY_OK && r[1].st == FERRY_EEXISTS) ||
                (r[0].st == FERRY_EEXISTS && r[1].st == FERRY_OK));
    assert_int_equal(s_count(&db, "SELECT count(*) FROM work WHERE msg = 'payments:50'"), 1);
    assert_int_equal(fy_ferryd_start(d), 0);
    char source[400];
    snprintf(source, sizeof source, "pg:%s", pg.conninfo);
    s_relayed(d, source, pg.dir);
    PQfinish(db.pg);
    fy_pg_stop(&pg);
}

/* A consumer whose every message comes twice (it nacks the first delivery,
 * as a crash before the ack would) does each message's work once. */
static void
test_inbox_under_redelivery(void **state)
{
    fy_ferryd_t *d = *state;
    char dir[256], path[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/svc.db", dir);
    s_db_t db = {0};
    assert_int_equal(sqlite3_open(path, &db.lite), SQLITE_OK);
    assert_int_equal(ferry_sql_setup_sqlite(db.lite, NULL, 0), FERRY_OK);
    s_sql(&db, "CREATE TABLE work (msg TEXT NOT NULL)");
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 1000);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "payments", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(c, "payments", "billing", NULL, NULL), FERRY_OK);
    for (int i = 0; i < 100; i++) {
        char id[32];
        snprintf(id, sizeof id, "pay-%d", i);
        ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
        assert_int_equal(ferry_client_publish(c, "payments", &m, NULL), FERRY_OK);
    }
    size_t handled = 0, again = 0;
    for (int round = 0; round < 2; round++) {
        size_t got = 0;
        while (got < 100) {
            const ferry_stored_message_t *msgs;
            size_t n;
            assert_int_equal(ferry_client_fetch(c, "payments", "billing", 100, 2000, &msgs, &n),
                             FERRY_OK);
            assert_true(n > 0);
            for (size_t i = 0; i < n; i++) {
                int zero = 0;
                ferry_status_t st = ferry_inbox_sqlite_handle(db.lite, "billing", &msgs[i],
                                                              s_lite_work, &zero, NULL);
                assert_true(st == FERRY_OK || st == FERRY_EEXISTS);
                handled += st == FERRY_OK;
                again += st == FERRY_EEXISTS;
                assert_int_equal(msgs[i].delivery_count, (uint32_t)round + 1);
                if (round == 0)
                    assert_int_equal(ferry_client_nack(c, "payments", "billing", msgs[i].seq, 0),
                                     FERRY_OK);
                else
                    assert_int_equal(ferry_client_ack(c, "payments", "billing", &msgs[i].seq, 1),
                                     FERRY_OK);
            }
            got += n;
        }
    }
    assert_int_equal(handled, 100);
    assert_int_equal(again, 100);
    assert_int_equal(s_count(&db, "SELECT count(*) FROM work"), 100);
    assert_int_equal(s_count(&db, "SELECT count(DISTINCT msg) FROM work"), 100);
    ferry_client_destroy(&c);
    sqlite3_close(db.lite);
    fy_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sqlite, fy_ferryd_state_new, fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_postgres, fy_ferryd_state_new, fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_inbox_under_redelivery, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("sql_outbox_inbox", tests, NULL, NULL);
}
