/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - the broker's memory is bounded by bytes, not by credit x
 * message size (issue 14): eight push consumers with the largest credit
 * (65536) that never read, on a topic of 1000 messages of 32 KiB each. The
 * broker sends each at most FY_CONSUMER_BYTES_MAX (8 MiB) that it has not
 * given back as credit, so its anonymous memory stays under a stated bound
 * (it took 5.46 GB in a probe); and once they are gone (closed, then
 * dropped after three silent heartbeats) the memory is given back to the
 * system (it stayed at the high-water mark: 4.3 GB in the probe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include <cmocka.h>

#include "clock.h"
#include "envelope.h"
#include "harness.h"

#define S_CONSUMERS 8
#define S_MESSAGES  1000
#define S_SIZE      (32u << 10)

static long
s_anon_kib(int pid)
{
    return fy_proc_kib(pid, "RssAnon");
}

/* Waits until the broker's memory settles (two readings 300 ms apart
 * within 1 MiB), at most 20 s. @return the highest reading (@p highest: what
 * it held at most), or the settled one (what it keeps). */
static long
s_settled_kib(int pid, bool highest)
{
    long top = s_anon_kib(pid), last = top;
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until) {
        fy_sleep_ms(300);
        long now = s_anon_kib(pid);
        top = now > top ? now : top;
        bool still = labs(now - last) < 1024;
        last = now;
        if (still)
            break;
    }
    return highest ? top : last;
}

static int s_metrics_port;

/* A broker serving metrics (to see when the consumers are gone). */
static int
s_setup(void **state)
{
    static char addr[64];
    s_metrics_port = fy_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s_metrics_port);
    const char *extra[] = {"--metrics", addr, NULL};
    return fy_fx_setup_with(state, extra);
}

static void
test_consumers_that_never_read(void **state)
{
    fy_fx_t *fx = *state;
    ferry_client_t *c = fx->c;
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "big", NULL, NULL, NULL), FERRY_OK);
    for (int i = 0; i < S_CONSUMERS; i++) {
        char sub[8];
        snprintf(sub, sizeof sub, "s%d", i);
        assert_int_equal(ferry_client_sub_declare(c, "big", sub, NULL, NULL), FERRY_OK);
    }
    static char payload[S_SIZE];
    memset(payload, 'x', sizeof payload);
    for (int i = 0; i < S_MESSAGES; i++) {
        ferry_message_t m = {.data = payload, .len = sizeof payload};
        assert_int_equal(ferry_client_publish_async(c, "big", &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 30000), FERRY_OK);
    long base = s_settled_kib(fx->d.pid, true);
    assert_true(base > 0);

    /* Eight consumers subscribe with the largest credit and never read. */
    void *ctx = zmq_ctx_new();
    void *socks[S_CONSUMERS];
    fy_encoder_t *enc = fy_encoder_new();
    for (int i = 0; i < S_CONSUMERS; i++) {
        socks[i] = fy_raw_socket(ctx, ZMQ_DEALER);
        /* Buffering little on their side: what they do not read stays in
         * the broker's queues. */
        int linger = 0, rcvhwm = 1, rcvbuf = 4096;
        zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(socks[i], ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
        zmq_setsockopt(socks[i], ZMQ_RCVBUF, &rcvbuf, sizeof rcvbuf);
        assert_int_equal(zmq_connect(socks[i], fx->d.endpoint), 0);
        char sub[8];
        snprintf(sub, sizeof sub, "s%d", i);
        fy_encoder_reset(enc);
        assert_int_equal(fy_encode_subscribe(enc, 1, "big", sub, FY_CREDIT_MAX, 1000), FERRY_OK);
        assert_true(zmq_send(socks[i], fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    }
    long held = s_settled_kib(fx->d.pid, true);
    /* Unbounded, it would hold 8 x 1000 x 32 KiB = 250 MiB; bounded, at most
     * 8 x (8 MiB + one delivery of 512 KiB) beyond what it had. */
    long bound = base + S_CONSUMERS * (8 * 1024 + 512) + 16 * 1024;
    /* A sanitizer build's allocator (ASan's quarantine, its own arenas) is
     * not the one these bounds are about: there the numbers are printed,
     * and the promises are checked on the normal build (make test). */
    bool sanitized = getenv("FERRY_SAN") && *getenv("FERRY_SAN");
    if (!sanitized && held > bound)
        fail_msg("broker memory %ld KiB with 8 consumers that do not read; bound %ld KiB (base "
                 "%ld)",
                 held, bound, base);
    /* They go away: nothing more is held. */
    for (int i = 0; i < S_CONSUMERS; i++)
        zmq_close(socks[i]);
    zmq_ctx_term(ctx);
    fy_encoder_destroy(&enc);
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    /* The broker drops them after three silent heartbeats (1 s each here). */
    char body[8192];
    long long until = fy_now_ms() + 15000;
    while (fy_now_ms() < until) {
        if (fy_http(s_metrics_port, "GET", "/metrics", body, sizeof body) == 0 &&
            strstr(body, "\nferry_consumers 0\n"))
            break;
        fy_sleep_ms(100);
    }
    assert_non_null(strstr(body, "\nferry_consumers 0\n"));
    /* What they held is given back: at most one consumer's bound (8 MiB)
     * above the rest state is left (allocator slack, libzmq's own), never
     * the 64 MiB that eight of them may hold. */
    long after = s_settled_kib(fx->d.pid, false);
    if (!sanitized && after > base + 8 * 1024)
        fail_msg("broker memory %ld KiB after the consumers closed (%ld at rest, %ld while they "
                 "were there)",
                 after, base, held);
    fprintf(stderr,
            "broker anon memory: %ld KiB at rest, %ld with 8 stalled consumers, %ld "
            "after they closed (bound %ld)\n",
            base, held, after, bound);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consumers_that_never_read, s_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
