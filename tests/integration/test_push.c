/* SPDX-License-Identifier: MIT */
/*
 * test_push.c - push subscriptions against a real ferryd: competing push
 * consumers on a queue, the broker never sending beyond a consumer's credit,
 * nack from a handler, redelivery of what a vanished consumer kept, and
 * unsubscribe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef fy_fx_t fx_t;

typedef struct {
    uint8_t *seen; /* per sequence: times handled */
    size_t n, calls;
    uint32_t last_dc;
    ferry_msg_action_t action;
    int nack_first; /* NACK when delivery_count == 1 */
} s_rec_t;

static ferry_msg_action_t
s_handler(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_rec_t *r = user;
    r->calls++;
    assert_non_null(m->topic);
    r->last_dc = m->delivery_count;
    if (r->seen && m->seq < r->n)
        r->seen[m->seq]++;
    if (r->nack_first && m->delivery_count == 1)
        return FERRY_MSG_NACK;
    return r->action;
}

static void
s_publish_n(ferry_client_t *c, const char *topic, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ferry_message_t m = {.data = "p", .len = 1};
        assert_int_equal(ferry_client_publish_async(c, topic, &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 30000), FERRY_OK);
}

static void
test_push_competing_consumers(void **state)
{
    fx_t *fx = *state;
    const size_t n = getenv("FERRY_TEST_QUICK") ? 500 : 3000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "pq", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_t *a = fy_connect(fx->d.endpoint, 5000, 10);
    ferry_client_t *b = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(a);
    assert_non_null(b);
    uint8_t *seen = calloc(n + 1, 1);
    s_rec_t ra = {.seen = seen, .n = n + 1, .action = FERRY_MSG_ACK};
    s_rec_t rb = ra;
    assert_int_equal(ferry_client_subscribe(a, "pq", NULL, 64, s_handler, &ra, NULL), FERRY_OK);
    assert_int_equal(ferry_client_subscribe(b, "pq", "", 64, s_handler, &rb, NULL), FERRY_OK);
    s_publish_n(fx->c, "pq", n);
    long long deadline = fy_now_ms() + 30000;
    while (ra.calls + rb.calls < n && fy_now_ms() < deadline) {
        assert_int_equal(ferry_client_poll(a, 20), FERRY_OK);
        assert_int_equal(ferry_client_poll(b, 20), FERRY_OK);
    }
    assert_int_equal(ra.calls + rb.calls, n);
    for (size_t s = 1; s <= n; s++)
        assert_int_equal(seen[s], 1); /* each message to exactly one consumer */
    assert_true(ra.calls >= n / 10 && rb.calls >= n / 10);
    /* The acks are sent without waiting; they land shortly. */
    ferry_topic_info_t info;
    do {
        ferry_client_poll(a, 10);
        ferry_client_poll(b, 10);
        assert_int_equal(ferry_client_info(fx->c, "pq", &info), FERRY_OK);
    } while (info.messages > 0 && fy_now_ms() < deadline);
    assert_int_equal(info.messages, 0);
    free(seen);
    ferry_client_destroy(&a);
    ferry_client_destroy(&b);
}

static void
test_push_respects_credit(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "pt", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "pt", "s", NULL, NULL), FERRY_OK);
    s_publish_n(fx->c, "pt", 100);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    s_rec_t r = {.action = FERRY_MSG_ACK};
    assert_int_equal(ferry_client_subscribe(c, "pt", "s", 10, s_handler, &r, NULL), FERRY_OK);
    /* Give the broker time to send everything it may: one delivery of 10. */
    fy_sleep_ms(300);
    assert_int_equal(ferry_client_poll(c, 0), FERRY_OK);
    assert_int_equal(r.calls, 10);
    /* Processing them tops the credit up: the rest follows. */
    long long deadline = fy_now_ms() + 10000;
    while (r.calls < 100 && fy_now_ms() < deadline)
        assert_int_equal(ferry_client_poll(c, 50), FERRY_OK);
    assert_int_equal(r.calls, 100);
    ferry_sub_info_t si;
    do {
        ferry_client_poll(c, 10);
        assert_int_equal(ferry_client_sub_info(fx->c, "pt", "s", &si), FERRY_OK);
    } while (si.ack_floor < 100 && fy_now_ms() < deadline);
    assert_int_equal(si.ack_floor, 100);
    ferry_client_destroy(&c);
}

static void
test_push_nack_and_unsubscribe(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "nq", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    s_rec_t r = {.action = FERRY_MSG_ACK, .nack_first = 1};
    uint64_t consumer;
    assert_int_equal(ferry_client_subscribe(c, "nq", NULL, 10, s_handler, &r, &consumer), FERRY_OK);
    s_publish_n(fx->c, "nq", 1);
    long long deadline = fy_now_ms() + 10000;
    while (r.calls < 2 && fy_now_ms() < deadline)
        assert_int_equal(ferry_client_poll(c, 50), FERRY_OK);
    assert_int_equal(r.calls, 2); /* nacked once, then acked */
    assert_int_equal(r.last_dc, 2);
    /* After unsubscribe nothing more is pushed. */
    assert_int_equal(ferry_client_unsubscribe(c, consumer), FERRY_OK);
    assert_int_equal(ferry_client_unsubscribe(c, consumer), FERRY_ENOTFOUND);
    s_publish_n(fx->c, "nq", 3);
    assert_int_equal(ferry_client_poll(c, 300), FERRY_OK);
    assert_int_equal(r.calls, 2);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "nq", &info), FERRY_OK);
    assert_int_equal(info.messages, 3);
    /* Misuse. */
    assert_int_equal(ferry_client_subscribe(c, "nq", NULL, 0, s_handler, &r, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_subscribe(c, "nq", NULL, 10, NULL, &r, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_subscribe(c, "nope", "x", 10, s_handler, &r, NULL),
                     FERRY_ENOTFOUND);
    ferry_client_destroy(&c);
}

static void
test_push_kept_messages_come_back(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "kt", NULL, NULL, NULL),
                     FERRY_OK);
    /* The default ack wait is 30 s: anything sooner proves the hand-back. */
    assert_int_equal(ferry_client_sub_declare(fx->c, "kt", "s", NULL, NULL), FERRY_OK);
    s_publish_n(fx->c, "kt", 5);
    ferry_client_t *a = fy_connect(fx->d.endpoint, 5000, 10);
    s_rec_t ra = {.action = FERRY_MSG_KEEP};
    assert_int_equal(ferry_client_subscribe(a, "kt", "s", 100, s_handler, &ra, NULL), FERRY_OK);
    long long deadline = fy_now_ms() + 10000;
    while (ra.calls < 5 && fy_now_ms() < deadline)
        assert_int_equal(ferry_client_poll(a, 50), FERRY_OK);
    assert_int_equal(ra.calls, 5);
    ferry_client_destroy(&a); /* gone without acking */
    long long gone = fy_now_ms();
    ferry_client_t *b = fy_connect(fx->d.endpoint, 5000, 10);
    uint8_t seen[8] = {0};
    s_rec_t rb = {.seen = seen, .n = 8, .action = FERRY_MSG_ACK};
    assert_int_equal(ferry_client_subscribe(b, "kt", "s", 100, s_handler, &rb, NULL), FERRY_OK);
    while (rb.calls < 5 && fy_now_ms() < deadline)
        assert_int_equal(ferry_client_poll(b, 50), FERRY_OK);
    assert_int_equal(rb.calls, 5);
    assert_true(fy_now_ms() - gone < 10000); /* well before the 30 s ack wait */
    assert_int_equal(rb.last_dc, 2);
    for (int s = 1; s <= 5; s++)
        assert_int_equal(seen[s], 1);
    ferry_client_destroy(&b);
}

static void
test_push_ephemeral(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "live", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "live", 3); /* before anyone listens: not delivered */
    ferry_client_t *a = fy_connect(fx->d.endpoint, 5000, 10);
    ferry_client_t *b = fy_connect(fx->d.endpoint, 5000, 10);
    uint8_t seen_a[16] = {0}, seen_b[16] = {0};
    s_rec_t ra = {.seen = seen_a, .n = 16, .action = FERRY_MSG_ACK};
    s_rec_t rb = {.seen = seen_b, .n = 16, .action = FERRY_MSG_KEEP};
    assert_int_equal(ferry_client_subscribe(a, "live", NULL, 4, s_handler, &ra, NULL), FERRY_OK);
    assert_int_equal(ferry_client_subscribe(b, "live", "", 4, s_handler, &rb, NULL), FERRY_OK);
    s_publish_n(fx->c, "live", 10);
    long long deadline = fy_now_ms() + 10000;
    while ((ra.calls < 10 || rb.calls < 10) && fy_now_ms() < deadline) {
        assert_int_equal(ferry_client_poll(a, 20), FERRY_OK);
        assert_int_equal(ferry_client_poll(b, 20), FERRY_OK);
    }
    /* Both get every new message once, in order of arrival, none of the old ones. */
    assert_int_equal(ra.calls, 10);
    assert_int_equal(rb.calls, 10);
    for (int s = 1; s <= 13; s++) {
        assert_int_equal(seen_a[s], s > 3 ? 1 : 0);
        assert_int_equal(seen_b[s], s > 3 ? 1 : 0);
    }
    assert_int_equal(ra.last_dc, 0); /* live: no delivery count, nothing to ack */
    /* Nothing was kept for them: the topic still has all 13, no subscription exists. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "live", &info), FERRY_OK);
    assert_int_equal(info.messages, 13);
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(fx->c, "live", "", &si), FERRY_EFIELD);
    ferry_client_destroy(&a);
    ferry_client_destroy(&b);
}

typedef struct {
    int connected, disconnected;
    char reason[128];
    long long lost_at;
} s_states_t;

static void
s_on_state(ferry_client_t *c, ferry_conn_state_t st, const char *server, const char *reason,
           void *user)
{
    (void)c;
    (void)server;
    s_states_t *s = user;
    if (st == FERRY_CONN_CONNECTED) {
        s->connected++;
    } else {
        s->disconnected++;
        s->lost_at = fy_now_ms();
        snprintf(s->reason, sizeof s->reason, "%s", reason ? reason : "");
    }
}

/* Heartbeats both ways: an idle client pings and the broker answers; a hung
 * broker (SIGSTOP) is detected within two heartbeats (the connection is
 * dropped and reported), while a live, idle broker never is; once it runs
 * again the client reconnects and its subscription delivers again. */
static void
test_push_detects_silent_broker(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "hb", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_options_t *o = ferry_options_new();
    assert_non_null(o);
    assert_int_equal(ferry_options_set_heartbeat_ms(o, 99), FERRY_EINVAL);
    assert_int_equal(ferry_options_set_heartbeat_ms(o, 5001), FERRY_EINVAL);
    assert_int_equal(ferry_options_set_heartbeat_ms(o, 200), FERRY_OK);
    assert_int_equal(ferry_options_set_server(o, fx->d.endpoint), FERRY_OK);
    s_states_t states = {0};
    assert_int_equal(ferry_options_set_state_cb(o, s_on_state, &states), FERRY_OK);
    ferry_client_t *c = NULL;
    assert_int_equal(ferry_client_new(o, &c), FERRY_OK);
    ferry_options_destroy(&o);
    assert_int_equal(states.connected, 1);
    s_rec_t r = {.action = FERRY_MSG_ACK};
    assert_int_equal(ferry_client_subscribe(c, "hb", NULL, 4, s_handler, &r, NULL), FERRY_OK);
    /* Idle but alive: ten heartbeats pass without a loss. */
    long long until = fy_now_ms() + 2000;
    while (fy_now_ms() < until)
        assert_int_equal(ferry_client_poll(c, 100), FERRY_OK);
    assert_int_equal(states.disconnected, 0);
    /* Hung: the connection is given up within two heartbeats and reported. */
    assert_int_equal(kill(fx->d.pid, SIGSTOP), 0);
    long long t0 = fy_now_ms();
    while (states.disconnected == 0 && fy_now_ms() - t0 < 5000)
        assert_int_equal(ferry_client_poll(c, 100), FERRY_OK);
    long long took = states.lost_at - t0;
    assert_int_equal(states.disconnected, 1);
    assert_non_null(strstr(states.reason, "broker silent"));
    assert_false(ferry_client_connected(c));
    /* Two heartbeats of 200 ms after a ping that may have left just before the stop. */
    assert_true(took >= 200 && took < 2000);
    /* Running again: the client reconnects and its subscription works again. */
    assert_int_equal(kill(fx->d.pid, SIGCONT), 0);
    until = fy_now_ms() + 10000;
    while (states.connected < 2 && fy_now_ms() < until)
        assert_int_equal(ferry_client_poll(c, 50), FERRY_OK);
    assert_int_equal(states.connected, 2);
    assert_int_equal(ferry_client_reconnects(c), 1);
    ferry_message_t m = {.data = "after", .len = 5};
    assert_int_equal(ferry_client_publish(fx->c, "hb", &m, NULL), FERRY_OK);
    until = fy_now_ms() + 10000;
    while (r.calls == 0 && fy_now_ms() < until)
        assert_int_equal(ferry_client_poll(c, 50), FERRY_OK);
    assert_int_equal(r.calls, 1);
    ferry_client_destroy(&c);
}

/* An application that does not call into its client for longer than the
 * broker keeps a silent consumer (15 s): the broker drops the consumer, and
 * the client, seeing how long it said nothing, subscribes again - messages
 * published afterwards still arrive (they used to stop for good). */
static void
test_push_survives_a_stalled_application(void **state)
{
    fx_t *fx = *state;
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "stall", NULL, NULL, NULL),
                     FERRY_OK);
    s_rec_t r = {.action = FERRY_MSG_ACK};
    assert_int_equal(ferry_client_subscribe(c, "stall", NULL, 10, s_handler, &r, NULL), FERRY_OK);
    s_publish_n(fx->c, "stall", 1);
    long long until = fy_now_ms() + 5000;
    while (r.calls < 1 && fy_now_ms() < until)
        ferry_client_poll(c, 50);
    assert_int_equal(r.calls, 1);
    fy_sleep_ms(16000); /* the application is busy: no call into c */
    assert_true(fy_ferryd_log_count(&fx->d, "consumer expired") >= 1);
    s_publish_n(fx->c, "stall", 5);
    until = fy_now_ms() + 10000;
    while (r.calls < 6 && fy_now_ms() < until)
        ferry_client_poll(c, 50);
    assert_int_equal(r.calls, 6);
    ferry_client_destroy(&c);
}

/* A client with a short heartbeat: when it goes silent, the broker drops
 * its consumer after three intervals and what it held goes to another
 * consumer - in about a second, not the default 15 s. */
static void
test_push_short_heartbeat_releases_soon(void **state)
{
    fx_t *fx = *state;
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *a = NULL, *b = fy_connect(fx->d.endpoint, 5000, 100);
    assert_int_equal(ferry_options_set_server(o, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_heartbeat_ms(o, 300), FERRY_OK);
    assert_int_equal(ferry_client_new(o, &a), FERRY_OK);
    ferry_options_destroy(&o);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "hb", NULL, NULL, NULL),
                     FERRY_OK);
    s_rec_t held = {.action = FERRY_MSG_KEEP}, got = {.action = FERRY_MSG_ACK};
    assert_int_equal(ferry_client_subscribe(a, "hb", NULL, 10, s_handler, &held, NULL), FERRY_OK);
    s_publish_n(fx->c, "hb", 5);
    long long until = fy_now_ms() + 5000;
    while (held.calls < 5 && fy_now_ms() < until)
        ferry_client_poll(a, 50);
    assert_int_equal(held.calls, 5); /* a holds all five, unacked */
    assert_int_equal(ferry_client_subscribe(b, "hb", NULL, 10, s_handler, &got, NULL), FERRY_OK);
    long long t0 = fy_now_ms(); /* a says nothing from here on */
    until = t0 + 10000;
    while (got.calls < 5 && fy_now_ms() < until)
        ferry_client_poll(b, 50);
    long long took = fy_now_ms() - t0;
    assert_int_equal(got.calls, 5);
    assert_true(took < 5000); /* three 300 ms intervals (at least 1 s), not 15 s */
    printf("held messages redelivered %lld ms after their consumer went silent\n", took);
    ferry_client_destroy(&a);
    ferry_client_destroy(&b);
}

static int
s_setup_two_consumers(void **state)
{
    static const char *const extra[] = {"--max-consumers", "2", NULL};
    return fy_fx_setup_with(state, extra);
}

/* --max-consumers: one more push consumer than allowed gets ETOO_MANY with
 * the reason; when one goes, there is room again. */
static void
test_push_consumer_limit(void **state)
{
    fy_fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "q", NULL, NULL, NULL),
                     FERRY_OK);
    uint64_t id[3];
    static s_rec_t rec; /* no message comes: the queue stays empty */
    assert_int_equal(ferry_client_subscribe(fx->c, "q", NULL, 10, s_handler, &rec, &id[0]),
                     FERRY_OK);
    assert_int_equal(ferry_client_subscribe(fx->c, "q", NULL, 10, s_handler, &rec, &id[1]),
                     FERRY_OK);
    assert_int_equal(ferry_client_subscribe(fx->c, "q", NULL, 10, s_handler, &rec, &id[2]),
                     FERRY_ETOO_MANY);
    assert_non_null(strstr(ferry_client_last_error(fx->c), "at most 2 push consumers"));
    assert_int_equal(ferry_client_unsubscribe(fx->c, id[0]), FERRY_OK);
    assert_int_equal(ferry_client_subscribe(fx->c, "q", NULL, 10, s_handler, &rec, &id[2]),
                     FERRY_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_competing_consumers, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_consumer_limit, s_setup_two_consumers,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_respects_credit, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_nack_and_unsubscribe, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_kept_messages_come_back, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_ephemeral, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_survives_a_stalled_application, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_short_heartbeat_releases_soon, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_push_detects_silent_broker, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("push", tests, NULL, NULL);
}
