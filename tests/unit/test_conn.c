/* SPDX-License-Identifier: MIT */
/*
 * test_conn.c - libferry's reconnect state machine (client/conn.c): which
 * server each attempt goes to, how the backoff grows, stays within its
 * jitter and its maximum, and starts over once a connection worked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

#include "conn.h"

static void
test_servers_in_turn(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char *servers[] = {"tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"};
    fy_conn_t c;
    assert_int_equal(fy_conn_init(&c, ctx, servers, 3, 100, 1000, 0, 1000), FERRY_OK);
    assert_string_equal(fy_conn_server(&c), servers[0]);
    const char *want[] = {servers[1], servers[2], servers[0], servers[1]};
    for (size_t i = 0; i < 4; i++) {
        fy_conn_lost(&c, 0);
        assert_string_equal(fy_conn_server(&c), want[i]);
    }
    fy_conn_free(&c);
    zmq_ctx_term(ctx);
}

static void
test_backoff_doubles_to_max_and_resets(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char *servers[] = {"tcp://127.0.0.1:1"};
    fy_conn_t c;
    assert_int_equal(fy_conn_init(&c, ctx, servers, 1, 100, 1000, 0, 1000), FERRY_OK);
    const long long want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    long long now = 5000;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        fy_conn_lost(&c, now);
        assert_int_equal(c.retry_at - now, want[i]);
        now += 10000;
    }
    fy_conn_ok(&c); /* a working connection: the next loss waits the first backoff */
    fy_conn_lost(&c, now);
    assert_int_equal(c.retry_at - now, 100);
    fy_conn_free(&c);
    zmq_ctx_term(ctx);
}

static void
test_jitter_stays_within_its_span(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char *servers[] = {"tcp://127.0.0.1:1"};
    fy_conn_t c;
    assert_int_equal(fy_conn_init(&c, ctx, servers, 1, 1000, 1000, 20, 1000), FERRY_OK);
    long long lo = 1000000, hi = 0;
    for (int i = 0; i < 2000; i++) {
        fy_conn_lost(&c, 0);
        long long w = c.retry_at;
        assert_in_range(w, 800, 1200); /* 1000 ms +- 20 % */
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    /* It is spread, not constant: clients that lost one broker do not all
     * come back at the same moment. */
    assert_true(hi - lo >= 200);
    fy_conn_free(&c);
    zmq_ctx_term(ctx);
}

static void
test_no_socket_until_opened(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char *servers[] = {"tcp://127.0.0.1:1"};
    fy_conn_t c;
    assert_int_equal(fy_conn_init(&c, ctx, servers, 1, 10, 100, 0, 1000), FERRY_OK);
    assert_null(c.sock);
    assert_int_equal(fy_conn_open(&c, NULL), FERRY_OK);
    assert_non_null(c.sock);
    assert_false(fy_conn_dropped(&c)); /* nothing connected yet, nothing dropped */
    fy_conn_lost(&c, 0);
    assert_null(c.sock); /* a lost socket is closed, never reused */
    fy_conn_free(&c);
    zmq_ctx_term(ctx);
}

static void
test_bad_endpoint(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    char *servers[] = {"not-an-endpoint"};
    fy_conn_t c;
    assert_int_equal(fy_conn_init(&c, ctx, servers, 1, 10, 100, 0, 1000), FERRY_OK);
    fy_err_t err = {0};
    assert_int_equal(fy_conn_open(&c, &err), FERRY_EINVAL);
    assert_int_equal(err.code, FERRY_EINVAL);
    assert_non_null(strstr(err.msg, "not-an-endpoint"));
    assert_null(c.sock);
    fy_conn_free(&c);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_servers_in_turn),
        cmocka_unit_test(test_backoff_doubles_to_max_and_resets),
        cmocka_unit_test(test_jitter_stays_within_its_span),
        cmocka_unit_test(test_no_socket_until_opened),
        cmocka_unit_test(test_bad_endpoint),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
