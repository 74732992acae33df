/*
 * test_relay_ids.c - message ids that would collide are never dropped in
 * silence (issue 14): two services' SQLite outboxes with the same row ids,
 * both relayed under ferry-relay's default source name, publish "sqlite:1"
 * ... for different events. The broker keeps a content hash with each
 * dedupe entry and refuses the second event (EIDREUSED) instead of
 * confirming it as a duplicate; the second relay stops with an error that
 * says what to do, its outbox position untouched; given its own name it
 * publishes every event. Also: a resent event (same id, same content) is
 * still a duplicate.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "clock.h"
#include "harness.h"

/* An outbox at @p path with @p n events whose payloads are "<tag>-<i>". */
static void
s_outbox(const char *path, const char *tag, int n)
{
    char cmd[700], out[256];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null", path,
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    for (int i = 1; i <= n; i++) {
        char sql[300];
        snprintf(sql, sizeof sql,
                 "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                 "VALUES('orders', 'o-%d', 'placed', CAST('%s-%d' AS BLOB))",
                 i, tag, i);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    sqlite3_close(db);
}

static int
s_relay(fy_fx_t *fx, const char *db, const char *name, const char *log)
{
    char source[400];
    snprintf(source, sizeof source, "sqlite:%s", db);
    const char *argv[12] = {getenv("FERRY_RELAY"), "--source",  source, "--broker",
                            fx->d.endpoint,        "--poll-ms", "5",    NULL};
    if (name) {
        argv[7] = "--name";
        argv[8] = name;
        argv[9] = NULL;
    }
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    return pid;
}

static uint64_t
s_count(fy_fx_t *fx)
{
    ferry_topic_info_t info;
    return ferry_client_info(fx->c, "orders", &info) == FERRY_OK ? info.messages : 0;
}

static void
s_wait_count(fy_fx_t *fx, uint64_t want)
{
    long long until = fy_now_ms() + 20000;
    while (s_count(fx) < want && fy_now_ms() < until)
        fy_sleep_ms(10);
    assert_int_equal(s_count(fx), want);
}

static uint64_t
s_position(const char *db, const char *name)
{
    sqlite3 *h;
    uint64_t v = 0;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT last_id FROM ferry_relay_position WHERE source = ?1", -1, &st,
                           NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            v = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static void
test_two_outboxes_one_name(void **state)
{
    fy_fx_t *fx = *state;
    char a[400], b[400], loga[400], logb[400], logb2[400];
    snprintf(a, sizeof a, "%s/a.db", fx->d.dir);
    snprintf(b, sizeof b, "%s/b.db", fx->d.dir);
    snprintf(loga, sizeof loga, "%s/relay-a.log", fx->d.dir);
    snprintf(logb, sizeof logb, "%s/relay-b.log", fx->d.dir);
    snprintf(logb2, sizeof logb2, "%s/relay-b2.log", fx->d.dir);
    s_outbox(a, "a", 5);
    s_outbox(b, "b", 5);

    int pa = s_relay(fx, a, NULL, loga); /* source name: "sqlite" */
    s_wait_count(fx, 5);
    assert_int_equal(s_position(a, "sqlite"), 5);
    fy_kill_wait(pa, SIGTERM);

    /* b's rows have the same ids under the same name: refused, and b stops. */
    int pb = s_relay(fx, b, NULL, logb);
    int status = -1;
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until && waitpid(pb, &status, WNOHANG) == 0)
        fy_sleep_ms(10);
    if (!WIFEXITED(status))
        fy_kill_wait(pb, SIGKILL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    char cmd[600], out[512];
    snprintf(cmd, sizeof cmd,
             "grep -c 'level=error mod=relay msg=\"message id held by a different event, "
             "stopping\" id=sqlite:1 .*give each source its own name' '%s'",
             logb);
    fy_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 1);
    assert_int_equal(s_count(fx), 5);             /* nothing of b stored under a's ids */
    assert_int_equal(s_position(b, "sqlite"), 0); /* and nothing of b passed over */
    assert_true(
        fy_ferryd_log_count(&fx->d, "msg=\"message id reused\" topic=orders id=\"sqlite:1\"") >= 1);

    /* Given its own name, b publishes every event; a's stay as they were. */
    int pb2 = s_relay(fx, b, "billing", logb2);
    s_wait_count(fx, 10);
    fy_kill_wait(pb2, SIGTERM);
    assert_int_equal(s_position(b, "billing"), 5);
    const ferry_stored_message_t *m;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "orders", 1, 100, &m, &n), FERRY_OK);
    assert_int_equal(n, 10);
    for (size_t i = 0; i < 10; i++) {
        char id[32], payload[32];
        snprintf(id, sizeof id, "%s:%zu", i < 5 ? "sqlite" : "billing", i % 5 + 1);
        snprintf(payload, sizeof payload, "%s-%zu", i < 5 ? "a" : "b", i % 5 + 1);
        assert_string_equal(m[i].id, id);
        assert_int_equal(m[i].len, strlen(payload));
        assert_memory_equal(m[i].data, payload, m[i].len);
    }
}

/* The broker side alone: a resend is a duplicate, other content is refused
 * (single publish and batch), and nothing is stored by a refused batch. */
static void
test_same_id_other_content(void **state)
{
    fy_fx_t *fx = *state;
    ferry_client_t *c = fx->c;
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL), FERRY_OK);
    ferry_header_t h[] = {{"type", "placed"}};
    ferry_message_t m1 = {
        .data = "one", .len = 3, .key = "k", .id = "x-1", .headers = h, .header_count = 1};
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(c, "t", &m1, &cf), FERRY_OK);
    assert_false(cf.duplicate);
    assert_int_equal(ferry_client_publish(c, "t", &m1, &cf), FERRY_OK); /* a resend */
    assert_true(cf.duplicate);
    assert_int_equal(cf.seq, 1);

    ferry_message_t other[] = {m1, m1, m1};
    other[0].data = "two";     /* payload differs */
    other[1].key = "k2";       /* key differs */
    other[2].header_count = 0; /* headers differ */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ferry_client_publish(c, "t", &other[i], &cf), FERRY_EIDREUSED);
        assert_int_equal(cf.status, FERRY_EIDREUSED);
        assert_non_null(
            strstr(ferry_client_last_error(c), "id 'x-1' is held by a different message (seq 1)"));
    }
    /* A batch: the whole call is refused, nothing of it stored. */
    ferry_message_t batch[] = {{.data = "b1", .len = 2, .id = "x-2"},
                               {.data = "other", .len = 5, .id = "x-1"}};
    ferry_confirm_t cfs[2];
    assert_int_equal(ferry_client_publish_batch(c, "t", batch, 2, cfs), FERRY_EIDREUSED);
    ferry_message_t twice[] = {{.data = "b1", .len = 2, .id = "x-3"},
                               {.data = "b2", .len = 2, .id = "x-3"}};
    assert_int_equal(ferry_client_publish_batch(c, "t", twice, 2, cfs), FERRY_EIDREUSED);
    assert_non_null(strstr(ferry_client_last_error(c), "earlier in the batch"));
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "t", &info), FERRY_OK);
    assert_int_equal(info.messages, 1);
    /* A batch that resends x-1 as it was is fine: a duplicate and a new one. */
    ferry_message_t same[] = {m1, {.data = "b1", .len = 2, .id = "x-2"}};
    assert_int_equal(ferry_client_publish_batch(c, "t", same, 2, cfs), FERRY_OK);
    assert_true(cfs[0].duplicate);
    assert_false(cfs[1].duplicate);
    assert_int_equal(ferry_client_info(c, "t", &info), FERRY_OK);
    assert_int_equal(info.messages, 2);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"message id reused\""), 5);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_id_other_content, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_outboxes_one_name, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay_ids", tests, NULL, NULL);
}
