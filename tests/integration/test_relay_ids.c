/* SPDX-License-Identifier: MIT */
/*
 * test_relay_ids.c - relay message ids that cannot collide, and ids that
 * would are never dropped in silence (issue 14):
 *
 * - two SQLite outboxes and one PostgreSQL outbox with the same row ids,
 *   relayed with default names, one broker: every event stored once (each
 *   outbox's name comes from an identity kept in the database itself, so
 *   it stays the same across restarts and a move of the file);
 * - an outbox relayed by an older ferry-relay under the old default name
 *   ("sqlite") keeps that name; --rename-from moves its position to a new
 *   name, so nothing is published twice, and refuses a name with no
 *   position;
 * - two outboxes given one name publish "shared:1" ... for different
 *   events: the broker keeps a content hash with each dedupe entry and
 *   refuses the second event (EIDREUSED) instead of confirming it as a
 *   duplicate; the second relay stops with an error that says what to do,
 *   its position untouched; given its own name it publishes every event.
 *   A resent event (same id, same content) is still a duplicate.
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
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "clock.h"
#include "harness.h"
#include "pgserver.h"

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

/* Starts ferry-relay on @p source ("sqlite:PATH", "pg:..."; a bare path is
 * SQLite) with --name @p name unless NULL, its log to @p log. */
static int
s_relay(fy_fx_t *fx, const char *source, const char *name, const char *log)
{
    char src[700];
    snprintf(src, sizeof src, "%s%s", strchr(source, ':') ? "" : "sqlite:", source);
    const char *argv[12] = {getenv("FERRY_RELAY"), "--source",  src, "--broker",
                            fx->d.endpoint,        "--poll-ms", "5", NULL};
    if (name) {
        argv[7] = "--name";
        argv[8] = name;
        argv[9] = NULL;
    }
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    return pid;
}

/* The name a relay logged in its "relay started" line, into out (waits
 * up to 10 s for the line). */
static void
s_started_name(const char *log, char *out, size_t cap)
{
    out[0] = '\0';
    long long until = fy_now_ms() + 10000;
    while (!out[0] && fy_now_ms() < until) {
        FILE *f = fopen(log, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            const char *n = strstr(line, "msg=\"relay started\"");
            if (n && (n = strstr(n, " name="))) {
                snprintf(out, cap, "%.*s", (int)strcspn(n + 6, " \n"), n + 6);
                break;
            }
        }
        if (f)
            fclose(f);
        if (!out[0])
            fy_sleep_ms(20);
    }
    assert_true(out[0] != '\0');
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

    int pa = s_relay(fx, a, "shared", loga);
    s_wait_count(fx, 5);
    /* The position is recorded after the confirms, a moment later. */
    long long until_pos = fy_now_ms() + 10000;
    while (s_position(a, "shared") < 5 && fy_now_ms() < until_pos)
        fy_sleep_ms(10);
    assert_int_equal(s_position(a, "shared"), 5);
    fy_kill_wait(pa, SIGTERM);

    /* b's rows have the same ids under the same name: refused, and b stops. */
    int pb = s_relay(fx, b, "shared", logb);
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
             "stopping\" id=shared:1 .*give each source its own name' '%s'",
             logb);
    fy_run(cmd, out, sizeof out);
    assert_int_equal(atoi(out), 1);
    assert_int_equal(s_count(fx), 5);             /* nothing of b stored under a's ids */
    assert_int_equal(s_position(b, "shared"), 0); /* and nothing of b passed over */
    assert_true(
        fy_ferryd_log_count(&fx->d, "msg=\"message id reused\" topic=orders id=\"shared:1\"") >= 1);

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
        snprintf(id, sizeof id, "%s:%zu", i < 5 ? "shared" : "billing", i % 5 + 1);
        snprintf(payload, sizeof payload, "%s-%zu", i < 5 ? "a" : "b", i % 5 + 1);
        assert_string_equal(m[i].id, id);
        assert_int_equal(m[i].len, strlen(payload));
        assert_memory_equal(m[i].data, payload, m[i].len);
    }
}

/* Reads every message of "orders" into ids and payloads (each at most 63
 * bytes); returns how many. */
static size_t
s_all(fy_fx_t *fx, char ids[][64], char payloads[][64], size_t max)
{
    size_t n = 0;
    uint64_t from = 1;
    for (;;) {
        const ferry_stored_message_t *m;
        size_t got;
        assert_int_equal(ferry_client_get(fx->c, "orders", from, 100, &m, &got), FERRY_OK);
        if (got == 0)
            return n;
        for (size_t i = 0; i < got; i++, n++) {
            assert_true(n < max);
            snprintf(ids[n], 64, "%s", m[i].id);
            snprintf(payloads[n], 64, "%.*s", (int)m[i].len, (const char *)m[i].data);
        }
        from = m[got - 1].seq + 1;
    }
}

/* True when @p name is "<kind>-<8 hex digits>" (relay/identity.h). */
static bool
s_default_name(const char *name, const char *kind)
{
    size_t k = strlen(kind);
    if (strncmp(name, kind, k) != 0 || name[k] != '-' || strlen(name) != k + 9)
        return false;
    for (const char *p = name + k + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* The exact case of the issue, with default names: two SQLite outboxes and
 * one PostgreSQL outbox, row ids 1..5 in each, one broker, one topic. */
static void
test_default_names_never_collide(void **state)
{
    fy_fx_t *fx = *state;
    char a[400], b[400], moved[400], log[3][400], pgsrc[400];
    snprintf(a, sizeof a, "%s/a.db", fx->d.dir);
    snprintf(b, sizeof b, "%s/b.db", fx->d.dir);
    snprintf(moved, sizeof moved, "%s/moved.db", fx->d.dir);
    for (int i = 0; i < 3; i++)
        snprintf(log[i], sizeof log[i], "%s/relay-%d.log", fx->d.dir, i);
    s_outbox(a, "a", 5);
    s_outbox(b, "b", 5);
    fy_pg_t pg;
    assert_int_equal(fy_pg_start(&pg), 0);
    char sql[900];
    snprintf(sql, sizeof sql, "\\i %s/outbox-relay/sql/postgres.sql\n",
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_pg_sql(&pg, sql), 0);
    for (int i = 1; i <= 5; i++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO outbox(id, aggregate_type, aggregate_id, event_type, payload) "
                 "VALUES(%d, 'orders', 'o-%d', 'placed', 'p-%d');",
                 i, i, i);
        assert_int_equal(fy_pg_sql(&pg, sql), 0);
    }
    snprintf(pgsrc, sizeof pgsrc, "pg:%s", pg.conninfo);

    const char *sources[3] = {a, b, pgsrc};
    char names[3][64];
    for (int i = 0; i < 3; i++) {
        int pid = s_relay(fx, sources[i], NULL, log[i]);
        s_started_name(log[i], names[i], sizeof names[i]);
        s_wait_count(fx, 5 * (uint64_t)(i + 1));
        fy_kill_wait(pid, SIGTERM);
    }
    assert_true(s_default_name(names[0], "sqlite"));
    assert_true(s_default_name(names[1], "sqlite"));
    assert_true(s_default_name(names[2], "pg"));
    assert_string_not_equal(names[0], names[1]);
    printf("default names: %s %s %s\n", names[0], names[1], names[2]);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"message id reused\""), 0);

    char ids[32][64], payloads[32][64];
    assert_int_equal(s_all(fx, ids, payloads, 32), 15);
    const char *tags[3] = {"a-", "b-", "p-"};
    for (size_t i = 0; i < 15; i++) {
        char id[96], payload[16];
        snprintf(id, sizeof id, "%s:%zu", names[i / 5], i % 5 + 1);
        snprintf(payload, sizeof payload, "%s%zu", tags[i / 5], i % 5 + 1);
        assert_string_equal(ids[i], id);
        assert_string_equal(payloads[i], payload);
    }

    /* The name is the database's: after a move of the file and a restart,
     * the same name and position, nothing published again; new rows go on
     * under it. */
    assert_int_equal(rename(a, moved), 0);
    char shm[420];
    snprintf(shm, sizeof shm, "%s-wal", a);
    unlink(shm); /* the relay stopped cleanly: the WAL was checkpointed */
    snprintf(shm, sizeof shm, "%s-shm", a);
    unlink(shm);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(moved, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, "
                                  "payload) VALUES('orders', 'o-6', 'placed', CAST('a-6' AS BLOB))",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    char again[64], loga2[420];
    snprintf(loga2, sizeof loga2, "%s/relay-a2.log", fx->d.dir);
    int pid = s_relay(fx, moved, NULL, loga2);
    s_started_name(loga2, again, sizeof again);
    assert_string_equal(again, names[0]);
    s_wait_count(fx, 16);
    fy_kill_wait(pid, SIGTERM);
    assert_int_equal(s_all(fx, ids, payloads, 32), 16);
    char id6[96];
    snprintf(id6, sizeof id6, "%s:6", names[0]);
    assert_string_equal(ids[15], id6);
    assert_string_equal(payloads[15], "a-6");
    assert_int_equal(s_position(moved, names[0]), 6);
    fy_pg_stop(&pg);
}

/* ferry-relay --setup with the given extra arguments on SQLite file @p db;
 * its output into out. @return its exit status. */
static int
s_setup(const char *db, const char *args, char *out, size_t cap)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' --setup --source 'sqlite:%s' %s 2>&1", getenv("FERRY_RELAY"),
             db, args);
    return fy_run(cmd, out, cap);
}

/* An outbox an older ferry-relay relayed under its default name "sqlite"
 * keeps that name (and its ids); --rename-from moves the position to a new
 * name, once; a name with no position is refused. */
static void
test_legacy_name_and_rename(void **state)
{
    fy_fx_t *fx = *state;
    char a[400], log[400], name[64], out[1024];
    snprintf(a, sizeof a, "%s/a.db", fx->d.dir);
    s_outbox(a, "a", 3);
    /* What an older relay left: a position under "sqlite", no identity. */
    snprintf(log, sizeof log, "%s/relay-old.log", fx->d.dir);
    int pid = s_relay(fx, a, "sqlite", log);
    s_wait_count(fx, 3);
    fy_kill_wait(pid, SIGTERM);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(a, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "DROP TABLE ferry_relay_identity", NULL, NULL, NULL),
                     SQLITE_OK);
    const char *more = "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                       "VALUES('orders', 'o-x', 'placed', CAST('a-x' AS BLOB))";
    assert_int_equal(sqlite3_exec(h, more, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, more, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    /* The default name is the old one where a position is kept under it. */
    snprintf(log, sizeof log, "%s/relay-default.log", fx->d.dir);
    pid = s_relay(fx, a, NULL, log);
    s_started_name(log, name, sizeof name);
    assert_string_equal(name, "sqlite");
    s_wait_count(fx, 5);
    fy_kill_wait(pid, SIGTERM);
    assert_int_equal(s_position(a, "sqlite"), 5);

    /* Renamed: the position moves; done twice, the second is a no-op. */
    assert_int_equal(s_setup(a, "--name billing --rename-from sqlite", out, sizeof out), 0);
    assert_non_null(strstr(out, "source billing: position moved from sqlite"));
    assert_int_equal(s_position(a, "billing"), 5);
    assert_int_equal(s_position(a, "sqlite"), 0);
    assert_int_equal(s_setup(a, "--name billing --rename-from sqlite", out, sizeof out), 0);
    assert_null(strstr(out, "position moved"));
    assert_non_null(strstr(out, "source billing (sqlite): ready"));
    /* A misspelt old name would publish every row again: refused. */
    assert_int_equal(s_setup(a, "--name other --rename-from sqlit", out, sizeof out), 1);
    assert_non_null(strstr(out, "no position is recorded under 'sqlit'"));
    assert_int_equal(s_position(a, "other"), 0);

    assert_int_equal(sqlite3_open(a, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, more, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    snprintf(log, sizeof log, "%s/relay-billing.log", fx->d.dir);
    pid = s_relay(fx, a, "billing", log);
    s_wait_count(fx, 6);
    fy_kill_wait(pid, SIGTERM);
    char ids[16][64], payloads[16][64];
    assert_int_equal(s_all(fx, ids, payloads, 16), 6);
    const char *want[] = {"sqlite:1", "sqlite:2", "sqlite:3", "sqlite:4", "sqlite:5", "billing:6"};
    for (size_t i = 0; i < 6; i++)
        assert_string_equal(ids[i], want[i]);
    assert_int_equal(s_position(a, "billing"), 6);
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
        cmocka_unit_test_setup_teardown(test_default_names_never_collide, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_legacy_name_and_rename, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay_ids", tests, NULL, NULL);
}
