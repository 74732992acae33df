/* SPDX-License-Identifier: MIT */
/*
 * test_sizes.c - the data path at every size and batch (issue 14): payloads
 * of 0, 1, 1000, 1023, 1024, 4095, 4096, 4097 bytes, 64 KiB, 1 MiB and the
 * largest message the broker takes; fetch batches of 1, 250 and 1000 (the
 * most) and push prefetch of 1, 250, 1000 and 65536 (the most); a queue and
 * a topic with a subscription. Each combination delivers every message
 * once, in order, with intact bytes, through the public API alone, to a
 * real ferryd. (Before the broker cut replies by bytes, 1-4 KiB payloads
 * with a batch of 1000 built frames the client refused: nothing arrived.)
 * The same sizes go through request/reply (an echo responder in a thread)
 * and through ferry-relay (a SQLite outbox).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

#include "clock.h"
#include "harness.h"

#define S_MAX_MSG  (2u << 20)  /* ferryd --max-msg-bytes 2M */
#define S_ID_BYTES 16          /* "m-" + index, NUL-padded to a fixed length below */
#define S_VOLUME   (12u << 20) /* bytes per combination: past a consumer's 8 MiB */

static const size_t s_sizes[] = {
    0, 1, 1000, 1023, 1024, 4095, 4096, 4097, 65536, 1u << 20, S_MAX_MSG - S_ID_BYTES};

/* The byte j of message i: any corruption or mix-up shows. */
static uint8_t
s_byte(size_t i, size_t j)
{
    return (uint8_t)(i * 31u + j * 7u + (j >> 8));
}

static size_t
s_count(size_t size, uint32_t batch)
{
    /* Under valgrind (FERRY_TEST_QUICK) a lighter load: the checks are the
     * same, the volume smaller. */
    size_t volume = getenv("FERRY_TEST_QUICK") ? S_VOLUME / 8 : S_VOLUME;
    size_t n = volume / (size ? size : 1);
    if (n > 2000)
        n = 2000;
    if (n < 3)
        n = 3;
    if (batch == 1 && n > 300) /* one round trip per message: enough to see order */
        n = 300;
    return n;
}

static void
s_id(char *out, size_t i)
{
    snprintf(out, 32, "m-%011zu", i % 100000000000u); /* 13 characters, < S_ID_BYTES */
}

/* Publishes @p n messages of @p size bytes through the async window. */
static void
s_publish(ferry_client_t *c, const char *topic, size_t size, size_t n, uint8_t *buf)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < size; j++)
            buf[j] = s_byte(i, j);
        char id[32];
        s_id(id, i);
        ferry_message_t m = {.data = buf, .len = size, .id = id};
        ferry_status_t st = ferry_client_publish_async(c, topic, &m, NULL, NULL);
        if (st != FERRY_OK)
            fail_msg("publish %zu of %zu bytes to %s: %s (%s)", i, size, topic, ferry_errname(st),
                     ferry_client_last_error(c));
    }
    ferry_status_t st = ferry_client_flush(c, 60000);
    if (st != FERRY_OK || ferry_client_in_flight(c) != 0)
        fail_msg("flush %s: %s", topic, ferry_errname(st));
}

typedef struct {
    const char *what; /* for failure messages */
    size_t size, n, next;
    bool bad;
    char why[200];
} s_check_t;

/* Message number check->next must be @p m: id, length and every byte. */
static void
s_take(s_check_t *k, const ferry_stored_message_t *m)
{
    if (k->bad)
        return;
    char id[32];
    s_id(id, k->next);
    if (k->next >= k->n || !m->id || strcmp(m->id, id) != 0) {
        snprintf(k->why, sizeof k->why, "%s: message %zu came as %s", k->what, k->next,
                 m->id ? m->id : "(no id)");
        k->bad = true;
        return;
    }
    if (m->len != k->size) {
        snprintf(k->why, sizeof k->why, "%s: message %zu has %zu bytes", k->what, k->next, m->len);
        k->bad = true;
        return;
    }
    const uint8_t *p = m->data;
    for (size_t j = 0; j < m->len; j++)
        if (p[j] != s_byte(k->next, j)) {
            snprintf(k->why, sizeof k->why, "%s: message %zu byte %zu differs", k->what, k->next,
                     j);
            k->bad = true;
            return;
        }
    k->next++;
}

static void
s_pull(ferry_client_t *c, const char *topic, const char *sub, uint32_t batch, s_check_t *k)
{
    long long until = fy_now_ms() + 60000;
    uint64_t *seqs = malloc(1000 * sizeof *seqs);
    assert_non_null(seqs);
    while (k->next < k->n && !k->bad && fy_now_ms() < until) {
        const ferry_stored_message_t *m;
        size_t got;
        ferry_status_t st = ferry_client_fetch(c, topic, sub, batch, 1000, &m, &got);
        if (st == FERRY_ETIMEOUT)
            continue;
        if (st != FERRY_OK)
            fail_msg("%s: fetch: %s (%s)", k->what, ferry_errname(st), ferry_client_last_error(c));
        if (got > batch)
            fail_msg("%s: fetch of %u returned %zu", k->what, batch, got);
        for (size_t i = 0; i < got; i++) {
            s_take(k, &m[i]);
            seqs[i] = m[i].seq;
        }
        if (got && (st = ferry_client_ack(c, topic, sub, seqs, got)) != FERRY_OK)
            fail_msg("%s: ack: %s", k->what, ferry_errname(st));
    }
    free(seqs);
}

static ferry_msg_action_t
s_on_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_take(user, m);
    return FERRY_MSG_ACK;
}

static void
s_push(ferry_client_t *c, const char *topic, const char *sub, uint32_t prefetch, s_check_t *k)
{
    uint64_t consumer;
    ferry_status_t st = ferry_client_subscribe(c, topic, sub, prefetch, s_on_msg, k, &consumer);
    if (st != FERRY_OK)
        fail_msg("%s: subscribe: %s", k->what, ferry_errname(st));
    long long until = fy_now_ms() + 60000;
    while (k->next < k->n && !k->bad && fy_now_ms() < until)
        ferry_client_poll(c, 100);
    assert_int_equal(ferry_client_unsubscribe(c, consumer), FERRY_OK);
    ferry_client_flush(c, 5000); /* the last acks */
}

/* One combination: a fresh destination, n messages in, all out. */
static void
s_one(ferry_client_t *c, size_t size, bool queue, bool push, uint32_t batch, uint8_t *buf)
{
    char topic[96], what[160];
    snprintf(topic, sizeof topic, "sz.%s.%s.b%u.s%zu", queue ? "q" : "t", push ? "push" : "pull",
             batch, size);
    snprintf(what, sizeof what, "%s of %zu bytes, %s %u", queue ? "queue" : "topic", size,
             push ? "prefetch" : "fetch", batch);
    const char *sub = queue ? NULL : "s";
    ferry_status_t st = ferry_client_declare(c, queue ? FERRY_KIND_QUEUE : FERRY_KIND_TOPIC, topic,
                                             NULL, NULL, NULL);
    assert_int_equal(st, FERRY_OK);
    if (!queue)
        assert_int_equal(ferry_client_sub_declare(c, topic, sub, NULL, NULL), FERRY_OK);
    size_t n = s_count(size, batch);
    s_publish(c, topic, size, n, buf);
    s_check_t k = {.what = what, .size = size, .n = n};
    if (push)
        s_push(c, topic, sub, batch, &k);
    else
        s_pull(c, topic, sub, batch, &k);
    if (k.bad)
        fail_msg("%s", k.why);
    if (k.next != n)
        fail_msg("%s: %zu of %zu messages arrived", what, k.next, n);
    /* Nothing left behind: acked everywhere, nothing dead-lettered. */
    if (queue) {
        ferry_topic_info_t info;
        assert_int_equal(ferry_client_info(c, topic, &info), FERRY_OK);
        if (info.messages != 0)
            fail_msg("%s: %llu messages left in the queue", what,
                     (unsigned long long)info.messages);
    } else {
        ferry_sub_info_t si;
        assert_int_equal(ferry_client_sub_info(c, topic, sub, &si), FERRY_OK);
        if (si.ack_floor != n)
            fail_msg("%s: ack floor %llu of %zu", what, (unsigned long long)si.ack_floor, n);
    }
    char dlq[128];
    snprintf(dlq, sizeof dlq, "%s.dlq", topic);
    ferry_topic_info_t dinfo;
    assert_int_equal(ferry_client_info(c, dlq, &dinfo), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_delete(c, topic), FERRY_OK);
    assert_int_equal(ferry_client_bad_replies(c), 0);
}

static int
s_setup(void **state)
{
    static const char *const extra[] = {"--max-msg-bytes", "2M", NULL};
    return fy_fx_setup_with(state, extra);
}

static void
s_matrix(void **state, bool push)
{
    fy_fx_t *fx = *state;
    static const uint32_t pulls[] = {1, 250, 1000};
    static const uint32_t pushes[] = {1, 250, 1000, 65536};
    const uint32_t *batches = push ? pushes : pulls;
    size_t nb = push ? 4 : 3;
    uint8_t *buf = malloc(S_MAX_MSG);
    assert_non_null(buf);
    for (size_t s = 0; s < sizeof s_sizes / sizeof s_sizes[0]; s++)
        for (size_t b = 0; b < nb; b++)
            for (int queue = 0; queue < 2; queue++)
                s_one(fx->c, s_sizes[s], queue, push, batches[b], buf);
    free(buf);
}

static void
test_pull_every_size_and_batch(void **state)
{
    s_matrix(state, false);
}

static void
test_push_every_size_and_prefetch(void **state)
{
    s_matrix(state, true);
}

/* The report's case, exactly: 2,000 x 4 KiB, prefetch 1000 and fetch 1000,
 * with libferry's defaults otherwise. */
static void
test_report_4k_prefetch_1000(void **state)
{
    fy_fx_t *fx = *state;
    uint8_t *buf = malloc(4096);
    assert_non_null(buf);
    for (int push = 0; push < 2; push++) {
        char q[32];
        snprintf(q, sizeof q, "report.%s", push ? "push" : "pull");
        assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, q, NULL, NULL, NULL),
                         FERRY_OK);
        s_publish(fx->c, q, 4096, 2000, buf);
        s_check_t k = {.what = q, .size = 4096, .n = 2000};
        if (push)
            s_push(fx->c, q, NULL, 1000, &k);
        else
            s_pull(fx->c, q, NULL, 1000, &k);
        if (k.bad)
            fail_msg("%s", k.why);
        assert_int_equal(k.next, 2000);
    }
    free(buf);
}

/* ---- request/reply ------------------------------------------------------- */

typedef struct {
    const char *endpoint;
    atomic_bool stop;
    atomic_int ready;
} s_echo_t;

static ferry_msg_action_t
s_echo(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply, void *user)
{
    (void)c, (void)user;
    reply->data = req->data; /* borrowed until the handler returns: sent by then */
    reply->len = req->len;
    return FERRY_MSG_ACK;
}

static void *
s_echo_thread(void *arg)
{
    s_echo_t *e = arg;
    ferry_client_t *c = fy_connect(e->endpoint, 5000, 1000);
    if (!c || ferry_client_serve(c, "rpc.echo", NULL, 64, s_echo, e, NULL) != FERRY_OK) {
        atomic_store(&e->ready, -1);
        ferry_client_destroy(&c);
        return NULL;
    }
    atomic_store(&e->ready, 1);
    while (!atomic_load(&e->stop))
        ferry_client_poll(c, 20);
    ferry_client_flush(c, 5000);
    ferry_client_destroy(&c);
    return NULL;
}

/* Every size as a request, echoed back byte for byte. */
static void
test_request_reply_every_size(void **state)
{
    fy_fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "rpc.echo", NULL, NULL, NULL),
                     FERRY_OK);
    s_echo_t e = {.endpoint = fx->d.endpoint};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_echo_thread, &e), 0);
    long long until = fy_now_ms() + 10000;
    while (atomic_load(&e.ready) == 0 && fy_now_ms() < until)
        fy_sleep_ms(5);
    assert_int_equal(atomic_load(&e.ready), 1);
    uint8_t *buf = malloc(S_MAX_MSG);
    assert_non_null(buf);
    /* The request and the reply carry correlation headers and the inbox
     * topic besides the payload: the largest is a little under the limit. */
    for (size_t s = 0; s < sizeof s_sizes / sizeof s_sizes[0]; s++) {
        size_t size = s_sizes[s] == S_MAX_MSG - S_ID_BYTES ? S_MAX_MSG - 512 : s_sizes[s];
        for (int round = 0; round < 3; round++) {
            for (size_t j = 0; j < size; j++)
                buf[j] = s_byte((size_t)round, j);
            ferry_message_t m = {.data = buf, .len = size};
            const ferry_stored_message_t *reply;
            ferry_status_t st = ferry_client_request(fx->c, "rpc.echo", &m, 10000, &reply);
            if (st != FERRY_OK)
                fail_msg("request of %zu bytes: %s (%s)", size, ferry_errname(st),
                         ferry_client_last_error(fx->c));
            assert_int_equal(reply->len, size);
            if (size && memcmp(reply->data, buf, size) != 0)
                fail_msg("the reply to a request of %zu bytes differs", size);
        }
    }
    free(buf);
    atomic_store(&e.stop, true);
    pthread_join(th, NULL);
}

/* ---- ferry-relay ---------------------------------------------------------- */

/* Every size as an outbox row, published by ferry-relay, read back intact. */
static void
test_relay_every_size(void **state)
{
    fy_fx_t *fx = *state;
    char db[400], log[400], cmd[800], out[256];
    snprintf(db, sizeof db, "%s/app.db", fx->d.dir);
    snprintf(log, sizeof log, "%s/relay.log", fx->d.dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null", db,
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *ins;
    assert_int_equal(sqlite3_prepare_v2(h,
                                        "INSERT INTO outbox(aggregate_type, aggregate_id, "
                                        "event_type, payload) VALUES('sized', ?1, 'e', ?2)",
                                        -1, &ins, NULL),
                     SQLITE_OK);
    const size_t n = sizeof s_sizes / sizeof s_sizes[0];
    uint8_t *buf = malloc(S_MAX_MSG);
    assert_non_null(buf);
    size_t sizes[sizeof s_sizes / sizeof s_sizes[0]];
    for (size_t i = 0; i < n; i++) {
        /* The row becomes key, id and headers too: the largest fits under the limit. */
        sizes[i] = s_sizes[i] == S_MAX_MSG - S_ID_BYTES ? S_MAX_MSG - 1024 : s_sizes[i];
        for (size_t j = 0; j < sizes[i]; j++)
            buf[j] = s_byte(i, j);
        char agg[32];
        snprintf(agg, sizeof agg, "agg-%zu", i);
        sqlite3_bind_text(ins, 1, agg, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(ins, 2, sizes[i] ? buf : (const void *)"", (int)sizes[i],
                          SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
    }
    sqlite3_finalize(ins);
    sqlite3_close(h);

    char source[450];
    snprintf(source, sizeof source, "sqlite:%s", db);
    const char *argv[] = {getenv("FERRY_RELAY"), "--source", source,   "--broker", fx->d.endpoint,
                          "--poll-ms",           "5",        "--name", "sizes",    NULL};
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    ferry_topic_info_t info = {0};
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until &&
           (ferry_client_info(fx->c, "sized", &info) != FERRY_OK || info.messages < n))
        fy_sleep_ms(10);
    fy_kill_wait(pid, SIGTERM);
    assert_int_equal(info.messages, n);
    uint64_t from = 1;
    for (size_t i = 0; i < n;) {
        const ferry_stored_message_t *m;
        size_t got;
        assert_int_equal(ferry_client_get(fx->c, "sized", from, 1000, &m, &got), FERRY_OK);
        assert_true(got > 0);
        for (size_t k = 0; k < got; k++, i++) {
            char id[32];
            snprintf(id, sizeof id, "sizes:%zu", i + 1);
            assert_string_equal(m[k].id, id);
            if (m[k].len != sizes[i])
                fail_msg("row %zu: %zu bytes arrived of %zu", i + 1, m[k].len, sizes[i]);
            for (size_t j = 0; j < sizes[i]; j++)
                if (((const uint8_t *)m[k].data)[j] != s_byte(i, j))
                    fail_msg("row %zu: byte %zu differs", i + 1, j);
            from = m[k].seq + 1;
        }
    }
    ferry_topic_info_t dlq;
    assert_int_equal(ferry_client_info(fx->c, "ferry-relay.dlq", &dlq), FERRY_ENOTFOUND);
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_4k_prefetch_1000, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_pull_every_size_and_batch, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_every_size_and_prefetch, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_reply_every_size, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_relay_every_size, s_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("sizes", tests, NULL, NULL);
}
