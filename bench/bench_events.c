/* SPDX-License-Identifier: MIT */
/*
 * bench_events.c - event sourcing and request/reply, fsync on, against a
 * real ferryd:
 *
 *   1. expected-version appends: K keys (default 10,000), R rounds; round r
 *      appends version r + 1 to every key with expect_key_version = r,
 *      through the async window (one connection keeps order, so the
 *      expectations hold without waiting). Fails on any conflict or loss.
 *   2. read by key: a topic of N messages (default 10,000,000) with keys
 *      "bulk-<i % 100000>" and one key "hot" whose 1,000 events are spread
 *      through it; the latency of reading all of "hot" (p50, p99 over 200
 *      reads, pages of 1,000).
 *   3. request/reply: a responder thread on its own connection; round trips
 *      per second, one at a time (ferry_client_request) and pipelined
 *      (ferry_client_request_async, up to 1,000 in flight).
 *
 *   bench_events [-k KEYS] [-r ROUNDS] [-N TOPIC_MESSAGES] [-q REQUESTS]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    size_t ok, conflicts, other;
} s_tally_t;

static void
s_count(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_tally_t *t = user;
    if (cf->status == FERRY_OK)
        t->ok++;
    else if (cf->status == FERRY_ECONFLICT)
        t->conflicts++;
    else
        t->other++;
}

static int
s_appends(ferry_client_t *c, size_t keys, size_t rounds)
{
    if (ferry_client_declare(c, FERRY_KIND_TOPIC, "es", NULL, NULL, NULL) != FERRY_OK)
        return -1;
    s_tally_t t = {0};
    char key[32], body[160];
    double t0 = fy_now_s();
    for (size_t r = 0; r < rounds; r++) {
        for (size_t k = 0; k < keys; k++) {
            snprintf(key, sizeof key, "order-%zu", k);
            int len = snprintf(body, sizeof body,
                               "{\"order\":%zu,\"event\":%zu,\"pad\":"
                               "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                               k, r);
            ferry_message_t m = {.data = body,
                                 .len = (size_t)len,
                                 .key = key,
                                 .expect = FERRY_EXPECT_KEY_VERSION,
                                 .expect_key_version = r};
            if (ferry_client_publish_async(c, "es", &m, s_count, &t) != FERRY_OK)
                return -1;
        }
    }
    if (ferry_client_flush(c, 120000) != FERRY_OK)
        return -1;
    double secs = fy_now_s() - t0;
    size_t n = keys * rounds;
    printf("expected-version appends: %zu keys x %zu rounds = %zu in %.2f s: %.0f appends/s "
           "(conflicts %zu, other failures %zu)\n",
           keys, rounds, n, secs, (double)n / secs, t.conflicts, t.other);
    return t.ok == n ? 0 : -1;
}

static int
s_read_latency(ferry_client_t *c, size_t total)
{
    const size_t hot = 1000, batch = FERRY_BATCH_MAX;
    if (ferry_client_declare(c, FERRY_KIND_TOPIC, "big", NULL, NULL, NULL) != FERRY_OK)
        return -1;
    ferry_message_t *msgs = calloc(batch, sizeof *msgs);
    char(*keys)[24] = calloc(batch, 24);
    char payload[128];
    memset(payload, 'e', sizeof payload);
    if (!msgs || !keys)
        return -1;
    size_t every = total / hot, sent = 0, hot_sent = 0;
    double t0 = fy_now_s();
    while (sent < total) {
        size_t n = 0;
        for (; n < batch && sent < total; n++, sent++) {
            if (sent % every == every / 2 && hot_sent < hot) {
                snprintf(keys[n], 24, "hot");
                hot_sent++;
            } else {
                snprintf(keys[n], 24, "bulk-%zu", sent % 100000);
            }
            msgs[n] = (ferry_message_t){.data = payload, .len = sizeof payload, .key = keys[n]};
        }
        if (ferry_client_publish_batch(c, "big", msgs, n, NULL) != FERRY_OK)
            return -1;
    }
    double fill = fy_now_s() - t0;
    printf("filled 'big' with %zu messages of 128 B (100,000 keys + 'hot' x %zu) in %.1f s "
           "(%.0f msg/s)\n",
           total, hot_sent, fill, (double)total / fill);
    free(msgs);
    free(keys);
    enum { READS = 200 };
    double lat[READS];
    for (int i = 0; i < READS; i++) {
        double t = fy_now_s();
        ferry_key_iter_t *it;
        if (ferry_client_read_key(c, "big", "hot", 1, 1000, &it) != FERRY_OK)
            return -1;
        const ferry_stored_message_t *m;
        size_t got = 0;
        while (ferry_key_iter_next(it, &m) == FERRY_OK && m)
            got++;
        ferry_key_iter_destroy(&it);
        lat[i] = (fy_now_s() - t) * 1e3;
        if (got != hot_sent) {
            fprintf(stderr, "read %zu of %zu events\n", got, hot_sent);
            return -1;
        }
    }
    qsort(lat, READS, sizeof lat[0], s_cmp_double);
    printf("read by key: %zu events of one key in a %zu-message topic: p50 %.2f ms, p99 %.2f ms\n",
           hot_sent, total, lat[READS / 2], lat[READS * 99 / 100]);
    return 0;
}

typedef struct {
    const char *endpoint;
    atomic_bool stop;
    atomic_int ready;
} s_resp_t;

static ferry_msg_action_t
s_echo(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply, void *user)
{
    (void)c;
    (void)user;
    reply->data = req->data;
    reply->len = req->len;
    return FERRY_MSG_ACK;
}

static void *
s_responder(void *arg)
{
    s_resp_t *r = arg;
    ferry_client_t *c = fy_connect(r->endpoint, 60000, 1000);
    if (!c || ferry_client_serve(c, "rpc", NULL, 1000, s_echo, NULL, NULL) != FERRY_OK) {
        atomic_store(&r->ready, -1);
        ferry_client_destroy(&c);
        return NULL;
    }
    atomic_store(&r->ready, 1);
    while (!atomic_load(&r->stop))
        ferry_client_poll(c, 10);
    ferry_client_destroy(&c);
    return NULL;
}

static void
s_on_reply(ferry_client_t *c, ferry_status_t st, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    (void)m;
    s_tally_t *t = user;
    if (st == FERRY_OK)
        t->ok++;
    else
        t->other++;
}

static int
s_rpc(ferry_client_t *c, const char *endpoint, size_t n)
{
    if (ferry_client_declare(c, FERRY_KIND_QUEUE, "rpc", NULL, NULL, NULL) != FERRY_OK)
        return -1;
    s_resp_t r = {.endpoint = endpoint};
    pthread_t th;
    if (pthread_create(&th, NULL, s_responder, &r) != 0)
        return -1;
    while (atomic_load(&r.ready) == 0)
        ferry_client_poll(c, 5);
    int rc = atomic_load(&r.ready) == 1 ? 0 : -1;
    char body[128];
    memset(body, 'r', sizeof body);
    ferry_message_t m = {.data = body, .len = sizeof body};
    size_t serial = n / 10;
    double t0 = fy_now_s();
    for (size_t i = 0; rc == 0 && i < serial; i++) {
        const ferry_stored_message_t *reply;
        if (ferry_client_request(c, "rpc", &m, 10000, &reply) != FERRY_OK)
            rc = -1;
    }
    double secs = fy_now_s() - t0;
    if (rc == 0)
        printf("request/reply one at a time: %zu in %.2f s: %.0f round trips/s (%.2f ms each)\n",
               serial, secs, (double)serial / secs, secs * 1e3 / (double)serial);
    s_tally_t t = {0};
    t0 = fy_now_s();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        while (i - (t.ok + t.other) >= 1000)
            ferry_client_poll(c, 10);
        if (ferry_client_request_async(c, "rpc", &m, 60000, s_on_reply, &t) != FERRY_OK)
            rc = -1;
    }
    while (rc == 0 && t.ok + t.other < n)
        ferry_client_poll(c, 10);
    secs = fy_now_s() - t0;
    if (rc == 0)
        printf("request/reply pipelined (1000 in flight): %zu in %.2f s: %.0f round trips/s "
               "(failures %zu)\n",
               n, secs, (double)n / secs, t.other);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    return rc == 0 && t.other == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    size_t keys = 10000, rounds = 20, total = 10000000, requests = 100000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
            keys = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            rounds = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-N") == 0 && i + 1 < argc)
            total = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-q") == 0 && i + 1 < argc)
            requests = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_events [-k KEYS] [-r ROUNDS] [-N TOPIC_MESSAGES] "
                            "[-q REQUESTS]\n");
            return 2;
        }
    }
    if (keys == 0 || rounds == 0 || total < 1000 || requests < 10)
        return 2;
    fy_ferryd_t d = {0};
    if (fy_ferryd_start(&d) != 0)
        return 1;
    ferry_client_t *c = fy_connect(d.endpoint, 60000, 1000);
    int rc = c && s_appends(c, keys, rounds) == 0 && s_read_latency(c, total) == 0 &&
                     s_rpc(c, d.endpoint, requests) == 0
                 ? 0
                 : 1;
    if (rc)
        fprintf(stderr, "bench_events: failed\n");
    ferry_client_destroy(&c);
    fy_ferryd_signal(&d, 15);
    fy_ferryd_cleanup(&d);
    return rc;
}
