/* SPDX-License-Identifier: MIT */
/*
 * test_delay.c - delayed delivery against a real ferryd: messages published
 * with delays of 0.5-2 s are confirmed at once, not delivered early, and
 * delivered after their time, also when ferryd is killed with -9 in between
 * (both for a subscription that had passed them and for one that had not).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef fy_fx_t fx_t;

#define S_N 24

static uint64_t
s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Publishes S_N messages "d<i>" with delays 500 + i * 1500 / (S_N - 1) ms,
 * plus "now" without delay; returns when each is confirmed. */
static uint64_t
s_publish_delayed(ferry_client_t *c, const char *topic, uint64_t *delays)
{
    uint64_t t0 = s_wall_ms();
    for (int i = 0; i < S_N; i++) {
        char body[16];
        int len = snprintf(body, sizeof body, "d%d", i);
        delays[i] = 500 + (uint64_t)i * 1500 / (S_N - 1);
        ferry_message_t m = {.data = body, .len = (size_t)len, .delay_ms = delays[i]};
        assert_int_equal(ferry_client_publish(c, topic, &m, NULL), FERRY_OK);
    }
    ferry_message_t now = {.data = "now", .len = 3};
    assert_int_equal(ferry_client_publish(c, topic, &now, NULL), FERRY_OK);
    return t0;
}

/* Fetches until every delayed message came (or 10 s), checking none came
 * before its time; acks as it goes. */
static void
s_collect(ferry_client_t *c, const char *topic, const char *sub, uint64_t t0,
          const uint64_t *delays, bool expect_now)
{
    int seen[S_N] = {0}, seen_now = 0, got = 0;
    long long deadline = fy_now_ms() + 10000;
    while (got < S_N && fy_now_ms() < deadline) {
        const ferry_stored_message_t *msgs;
        size_t n;
        assert_int_equal(ferry_client_fetch(c, topic, sub, 100, 200, &msgs, &n), FERRY_OK);
        uint64_t now = s_wall_ms();
        uint64_t seqs[100];
        for (size_t i = 0; i < n; i++) {
            seqs[i] = msgs[i].seq;
            if (msgs[i].len == 3 && memcmp(msgs[i].data, "now", 3) == 0) {
                seen_now++;
                continue;
            }
            char num[16] = {0}; /* the payload "d<k>" is not NUL-terminated */
            memcpy(num, (const char *)msgs[i].data + 1,
                   msgs[i].len - 1 < sizeof num - 1 ? msgs[i].len - 1 : sizeof num - 1);
            int k = atoi(num);
            assert_true(k >= 0 && k < S_N);
            assert_true(now >= t0 + delays[k]); /* never early */
            assert_int_equal(msgs[i].delivery_count, 1);
            seen[k]++;
            got++;
        }
        if (n)
            assert_int_equal(ferry_client_ack(c, topic, sub, seqs, n), FERRY_OK);
    }
    for (int k = 0; k < S_N; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(seen_now, expect_now ? 1 : 0);
}

static void
test_delays_are_kept(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "later", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "later", "s", NULL, NULL), FERRY_OK);
    uint64_t delays[S_N];
    uint64_t t0 = s_publish_delayed(fx->c, "later", delays);
    /* The undelayed one comes at once, alone. */
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "later", "s", 100, 0, &msgs, &n), FERRY_OK);
    if (s_wall_ms() < t0 + 500) {
        assert_int_equal(n, 1);
        assert_memory_equal(msgs[0].data, "now", 3);
        assert_int_equal(ferry_client_ack(fx->c, "later", "s", &msgs[0].seq, 1), FERRY_OK);
    }
    s_collect(fx->c, "later", "s", t0, delays, n == 0);
    /* get shows the log as stored, delayed messages included. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "later", &info), FERRY_OK);
    assert_int_equal(info.messages, S_N + 1);
}

static void
test_delays_survive_kill9(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "later", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "later", "passed", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "later", "idle", NULL, NULL), FERRY_OK);
    uint64_t delays[S_N];
    uint64_t t0 = s_publish_delayed(fx->c, "later", delays);
    /* "passed" moves its cursor over the delayed messages (their waits are
     * now entries of their own); "idle" has not looked yet. */
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "later", "passed", 100, 0, &msgs, &n), FERRY_OK);
    assert_true(n <= 1);
    bool passed_now = n == 1;
    if (n)
        assert_int_equal(ferry_client_ack(fx->c, "later", "passed", &msgs[0].seq, 1), FERRY_OK);
    ferry_client_destroy(&fx->c);
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    assert_non_null(fx->c);
    s_collect(fx->c, "later", "passed", t0, delays, !passed_now);
    s_collect(fx->c, "later", "idle", t0, delays, true);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delays_are_kept, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delays_survive_kill9, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("delay", tests, NULL, NULL);
}
