/* SPDX-License-Identifier: MIT */
/*
 * test_partition.c - the network between clients and ferryd cut and put
 * back (issue 15), with a history checker. A producer publishes 20,000
 * messages with ids over ten keys and a pull consumer fetches and acks,
 * both through a loopback proxy (tests/lib/proxy.h) that first resets every
 * connection for half a second, then stalls the network for two seconds (a
 * partition: nothing passes, the connections stay up) - longer than the
 * clients' heartbeats, so they give up on the connection and make a new one.
 * Every attempt, confirm, delivery and confirmed ack is recorded, and the
 * checker proves: every publish is confirmed; each id is stored once; each
 * key's messages are stored in publish order; every confirmed message is
 * delivered (confirmed within delivered); and no message is delivered again
 * after its ack was confirmed (the at-least-once rule).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"
#include "proxy.h"

enum { S_N = 200000, S_KEYS = 10 }; /* S_N: at most; the producer runs until told */

typedef struct {
    uint8_t confirmed[S_N]; /* 1: confirmed OK, 2: refused */
    uint32_t delivered[S_N];
    uint8_t acked[S_N]; /* its ack was confirmed */
    size_t after_ack;   /* deliveries of a message whose ack was confirmed */
    size_t confirms, refusals;
} s_hist_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    void **u = user;
    s_hist_t *h = u[0];
    size_t i = (size_t)(uintptr_t)u[1];
    h->confirmed[i] = cf->status == FERRY_OK ? 1 : 2;
    if (cf->status == FERRY_OK)
        h->confirms++;
    else
        h->refusals++;
}

/* Connections a client made (hellos answered), counted by its state callback. */
static void
s_on_state(ferry_client_t *c, ferry_conn_state_t st, const char *server, const char *reason,
           void *user)
{
    (void)c, (void)server, (void)reason;
    if (st == FERRY_CONN_CONNECTED)
        atomic_fetch_add((atomic_int *)user, 1);
}

static ferry_client_t *
s_client(const char *endpoint, atomic_int *connects)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    /* Heartbeats of 200 ms: a stalled network is noticed within a second. */
    if (ferry_options_set_server(o, endpoint) == FERRY_OK &&
        ferry_options_set_timeout_ms(o, 2000) == FERRY_OK &&
        ferry_options_set_window(o, 500) == FERRY_OK &&
        ferry_options_set_heartbeat_ms(o, 200) == FERRY_OK &&
        ferry_options_set_reconnect(o, 50, 500, 20) == FERRY_OK &&
        ferry_options_set_state_cb(o, s_on_state, connects) == FERRY_OK)
        ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    return c;
}

/* Fetches and acks what is there (wait @p wait_ms); errors while the
 * network is down are expected and retried by the caller. */
static void
s_consume(ferry_client_t *c, s_hist_t *h, int wait_ms)
{
    const ferry_stored_message_t *m;
    size_t n = 0;
    if (ferry_client_fetch(c, "t", "s", 200, wait_ms, &m, &n) != FERRY_OK || n == 0)
        return;
    uint64_t seqs[200];
    size_t idx[200];
    for (size_t i = 0; i < n; i++) {
        unsigned long k = strtoul(m[i].id + 1, NULL, 10);
        assert_true(k < S_N);
        if (h->acked[k])
            h->after_ack++;
        h->delivered[k]++;
        seqs[i] = m[i].seq;
        idx[i] = k;
    }
    if (ferry_client_ack(c, "t", "s", seqs, n) == FERRY_OK)
        for (size_t i = 0; i < n; i++)
            h->acked[idx[i]] = 1;
}

/* The producer: every message once with publish_async (retrying while the
 * network is down), then a flush; its own thread, so that its client runs
 * its heartbeats whatever the consumer does. */
typedef struct {
    ferry_client_t *c;
    s_hist_t *h;
    atomic_size_t next; /* published so far */
    atomic_int stop;    /* publish no more */
    ferry_status_t flushed;
} s_producer_t;

static void *
s_produce(void *arg)
{
    s_producer_t *p = arg;
    static void *users[S_N][2];
    long long until = fy_now_ms() + 120000;
    for (size_t i = 0; i < S_N && !atomic_load(&p->stop) && fy_now_ms() < until;) {
        char id[16], key[8], payload[16];
        snprintf(id, sizeof id, "m%zu", i);
        snprintf(key, sizeof key, "k%zu", i % S_KEYS);
        snprintf(payload, sizeof payload, "%zu", i);
        ferry_message_t m = {.data = payload, .len = strlen(payload), .id = id, .key = key};
        users[i][0] = p->h;
        users[i][1] = (void *)(uintptr_t)i;
        if (ferry_client_publish_async(p->c, "t", &m, s_on_confirm, users[i]) != FERRY_OK)
            continue; /* the window stayed full while the network was down: again */
        atomic_store(&p->next, ++i);
    }
    p->flushed = ferry_client_flush(p->c, 30000);
    return NULL;
}

/* The consumer: fetches and acks until every message is delivered and acked. */
typedef struct {
    ferry_client_t *c;
    s_hist_t *h;
    s_producer_t *prod;
    size_t missing;     /* messages never delivered */
    uint64_t ack_floor; /* the broker's, at the end */
} s_consumer_t;

static void *
s_consume_all(void *arg)
{
    s_consumer_t *k = arg;
    while (!atomic_load(&k->prod->stop)) /* the total is known once it stops */
        s_consume(k->c, k->h, 100);
    size_t total = atomic_load(&k->prod->next);
    long long until = fy_now_ms() + 120000;
    k->missing = S_N;
    ferry_sub_info_t si = {0};
    /* Until every message was delivered, and the broker has every one acked
     * (an ack whose answer a fault cut off may have been applied: the
     * broker, not the client, knows). */
    while ((k->missing || si.ack_floor < total) && fy_now_ms() < until) {
        s_consume(k->c, k->h, 100);
        total = atomic_load(&k->prod->next); /* the last few may still come */
        k->missing = 0;
        for (size_t i = 0; i < total; i++)
            k->missing += k->h->delivered[i] == 0;
        if (!k->missing && ferry_client_sub_info(k->c, "t", "s", &si) != FERRY_OK)
            si.ack_floor = 0;
    }
    k->ack_floor = si.ack_floor;
    return NULL;
}

/* Waits until the producer published @p n (up to 60 s). */
static void
s_wait_published(s_producer_t *p, size_t n)
{
    long long until = fy_now_ms() + 60000;
    while (atomic_load(&p->next) < n && fy_now_ms() < until)
        fy_sleep_ms(1);
    assert_true(atomic_load(&p->next) >= n);
}

static void
test_history_holds_across_partitions(void **state)
{
    fy_fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t sc = {.ack_wait_ms = 1000, .max_deliver = 100};
    assert_int_equal(ferry_client_sub_declare(fx->c, "t", "s", &sc, NULL), FERRY_OK);
    const char *colon = strrchr(fx->d.endpoint, ':');
    fy_proxy_t *px = fy_proxy_start("127.0.0.1", atoi(colon + 1));
    assert_non_null(px);
    static s_hist_t h;
    memset(&h, 0, sizeof h);
    static atomic_int connects[2];
    s_producer_t prod = {.c = s_client(fy_proxy_endpoint(px), &connects[0]), .h = &h};
    s_consumer_t cons = {
        .c = s_client(fy_proxy_endpoint(px), &connects[1]), .h = &h, .prod = &prod};
    assert_non_null(prod.c);
    assert_non_null(cons.c);
    pthread_t tp, tc;
    assert_int_equal(pthread_create(&tp, NULL, s_produce, &prod), 0);
    assert_int_equal(pthread_create(&tc, NULL, s_consume_all, &cons), 0);
    /* The faults: every connection reset at 5,000 published, for 500 ms;
     * once both clients are back, the network stalled for 2 s, while the
     * producer is in the middle of its stream; then 5,000 more. */
    s_wait_published(&prod, 5000);
    fy_proxy_set(px, FY_PROXY_RESET);
    fy_sleep_ms(500);
    fy_proxy_set(px, FY_PROXY_PASS);
    long long until = fy_now_ms() + 20000;
    while ((atomic_load(&connects[0]) < 2 || atomic_load(&connects[1]) < 2) && fy_now_ms() < until)
        fy_sleep_ms(1);
    /* Both connected again after the reset before the stall. */
    assert_true(atomic_load(&connects[0]) >= 2 && atomic_load(&connects[1]) >= 2);
    s_wait_published(&prod, atomic_load(&prod.next) + 2000);
    fy_proxy_set(px, FY_PROXY_BLACKHOLE);
    fy_sleep_ms(2000);
    fy_proxy_set(px, FY_PROXY_PASS);
    s_wait_published(&prod, atomic_load(&prod.next) + 5000);
    atomic_store(&prod.stop, 1);
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    const size_t total = atomic_load(&prod.next);
    /* Every publish confirmed: libferry resent what the faults cut off. */
    assert_int_equal(prod.flushed, FERRY_OK);
    assert_int_equal(h.refusals, 0);
    assert_int_equal(h.confirms, total);
    /* Every confirmed message delivered and acked; none delivered again
     * after its ack was confirmed. */
    assert_int_equal(cons.missing, 0);
    assert_int_equal(cons.ack_floor, total);
    assert_int_equal(h.after_ack, 0);
    /* Stored once each, and in publish order per key. */
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "t", &all, &n), FERRY_OK);
    assert_int_equal(n, total);
    long last[S_KEYS];
    for (int k = 0; k < S_KEYS; k++)
        last[k] = -1;
    for (size_t i = 0; i < n; i++) {
        long v = atol(all[i].payload);
        int k = atoi(all[i].key + 1);
        assert_true(v > last[k]);
        last[k] = v;
    }
    free(all);
    size_t redelivered = 0;
    for (size_t i = 0; i < total; i++)
        redelivered += h.delivered[i] > 1;
    printf("partitions: %zu connections through the proxy, %zu confirms, %zu messages "
           "delivered again (at-least-once), 0 after a confirmed ack\n",
           fy_proxy_connections(px), h.confirms, redelivered);
    /* Both clients noticed the stall (their heartbeats went unanswered) and
     * connected again after it. */
    assert_true(atomic_load(&connects[0]) >= 3 && atomic_load(&connects[1]) >= 3);
    assert_true(fy_proxy_connections(px) >= 6);
    ferry_client_destroy(&prod.c);
    ferry_client_destroy(&cons.c);
    fy_proxy_stop(&px);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_holds_across_partitions, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("partition", tests, NULL, NULL);
}
