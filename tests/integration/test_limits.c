/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - the broker at its limits (issue 15): a message of the
 * largest size ferryd accepts (--max-msg-bytes 64M) goes in and comes back
 * whole, through get, fetch and a push consumer, and one byte more is
 * refused with ETOO_LARGE; 100,000 topics are declared, counted and each
 * takes a publish, with the broker's memory bounded (measured, not timed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "clock.h"
#include "envelope.h"
#include "harness.h"

#define S_BIG (64u << 20)

static int
s_setup(void **state)
{
    static const char *const extra[] = {"--max-msg-bytes", "64M", NULL};
    return fy_fx_setup_with(state, extra);
}

/* True under make check-asan: memory figures there are ASan's allocator's,
 * not the ones the bounds are about (they are checked by make test). */
static bool
s_sanitized(void)
{
    return getenv("FERRY_SAN") && *getenv("FERRY_SAN");
}

static long
s_rss_kib(int pid)
{
    return fy_proc_kib(pid, "VmRSS");
}

static ferry_msg_action_t
s_on_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    const uint8_t *want = user;
    if (m->len == S_BIG && memcmp(m->data, want, S_BIG) == 0)
        *(int *)(uintptr_t)(want + S_BIG) = 1; /* the flag after the bytes */
    return FERRY_MSG_ACK;
}

static void
test_largest_message(void **state)
{
    fy_fx_t *fx = *state;
    ferry_client_t *c = fy_connect(fx->d.endpoint, 60000, 10);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "big", NULL, NULL, NULL), FERRY_OK);
    ferry_sub_config_t sc = {0};
    assert_int_equal(ferry_client_sub_declare(c, "big", "pull", &sc, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(c, "big", "push", &sc, NULL), FERRY_OK);
    /* The payload, then an int the push handler sets when it saw it whole. */
    uint8_t *data = malloc(S_BIG + sizeof(int));
    assert_non_null(data);
    for (size_t i = 0; i < S_BIG; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 13);
    memset(data + S_BIG, 0, sizeof(int));
    /* The limit counts payload, key, id and headers: the payload alone at
     * the limit goes in; one byte more is refused and the connection lives. */
    ferry_message_t m = {.data = data, .len = S_BIG};
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(c, "big", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    ferry_message_t over = {.data = data, .len = S_BIG, .key = "k"};
    assert_int_equal(ferry_client_publish(c, "big", &over, &cf), FERRY_ETOO_LARGE);
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    /* get */
    const ferry_stored_message_t *got;
    size_t n;
    assert_int_equal(ferry_client_get(c, "big", 1, 10, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].len, S_BIG);
    assert_memory_equal(got[0].data, data, S_BIG);
    /* fetch */
    assert_int_equal(ferry_client_fetch(c, "big", "pull", 1000, 5000, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].len, S_BIG);
    assert_memory_equal(got[0].data, data, S_BIG);
    uint64_t seq = 1;
    assert_int_equal(ferry_client_ack(c, "big", "pull", &seq, 1), FERRY_OK);
    /* push, with the largest prefetch */
    uint64_t consumer;
    assert_int_equal(ferry_client_subscribe(c, "big", "push", 65536, s_on_msg, data, &consumer),
                     FERRY_OK);
    long long until = fy_now_ms() + 30000;
    while (!*(int *)(uintptr_t)(data + S_BIG) && fy_now_ms() < until)
        ferry_client_poll(c, 100);
    assert_int_equal(*(int *)(uintptr_t)(data + S_BIG), 1);
    long rss = s_rss_kib(fx->d.pid);
    printf("a 64 MiB message through get, fetch and push; broker RSS %ld KiB\n", rss);
    /* The map holds it once; copies in flight are freed: well under 4x (on
     * the normal build; a sanitizer's allocator keeps freed memory). */
    if (!s_sanitized())
        assert_true(rss < 4 * (long)(S_BIG >> 10) + 64 * 1024);
    free(data);
    ferry_client_destroy(&c);
}

static void
test_hundred_thousand_topics(void **state)
{
    fy_fx_t *fx = *state;
    enum { N = 100000 };
    long before = s_rss_kib(fx->d.pid);
    /* Declared pipelined (as a client with many topics would at start), so
     * that they share commits; every one answered ok. */
    void *ctx = zmq_ctx_new();
    void *sock = fy_raw_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0, timeout = 30000;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_connect(sock, fx->d.endpoint), 0);
    fy_encoder_t *enc = fy_encoder_new();
    fy_decoder_t *dec = fy_decoder_new();
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "t.%d", i);
        fy_encoder_reset(enc);
        assert_int_equal(fy_encode_declare(enc, (uint64_t)i + 1, FY_KIND_TOPIC, name, NULL),
                         FERRY_OK);
        assert_true(zmq_send(sock, fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    }
    for (int i = 0; i < N; i++) {
        zmq_msg_t r;
        zmq_msg_init(&r);
        assert_true(zmq_msg_recv(&r, sock, 0) >= 0);
        fy_reply_t rep;
        fy_err_t err;
        assert_int_equal(fy_reply_decode(dec, zmq_msg_data(&r), zmq_msg_size(&r), &rep, &err),
                         FERRY_OK);
        assert_int_equal(rep.code, FERRY_OK);
        zmq_msg_close(&r);
    }
    fy_decoder_destroy(&dec);
    fy_encoder_destroy(&enc);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "t.%d", i);
        ferry_message_t m = {.data = name, .len = strlen(name)};
        assert_int_equal(ferry_client_publish_async(fx->c, name, &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(fx->c, 60000), FERRY_OK);
    ferry_stats_t st;
    assert_int_equal(ferry_client_stats(fx->c, &st), FERRY_OK);
    assert_int_equal(st.topics, N);
    assert_int_equal(st.messages, N);
    /* Any one of them reads back. */
    const ferry_stored_message_t *got;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "t.77777", 1, 10, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(got[0].data, "t.77777", 7);
    long after = s_rss_kib(fx->d.pid);
    printf("100,000 topics: broker RSS %ld KiB before, %ld after\n", before, after);
    /* Topics live in the map (file pages), not in the heap: bounded. */
    if (!s_sanitized())
        assert_true(after < before + 256 * 1024);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_largest_message, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_hundred_thousand_topics, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("limits", tests, NULL, NULL);
}
