/* SPDX-License-Identifier: MIT */
/*
 * bench_timers.c - what a large pending set costs, fsync on. Publishes N
 * messages (default 1,000,000) to a topic and fetches them all without
 * acking, so N messages are pending, each with an ack-wait deadline in the
 * timer index. It measures, with nothing pending and then with N pending:
 *
 *   - ping round trips (median and 99th percentile): the event loop's cost
 *     per turn, which checks the timer index every turn;
 *   - confirmed publishes per second to another topic.
 *
 * Then it lets the ack waits of a second subscription expire and fetches all
 * N again, reporting how fast timer-driven redeliveries come back (each must
 * carry delivery count 2). Fails on any lost, duplicated or early message.
 *
 *   bench_timers [-n COUNT] [-s BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

#define S_PINGS 2000
#define S_PUBS  100000

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int
s_publish(ferry_client_t *c, const char *topic, size_t n, const char *payload, size_t size)
{
    for (size_t i = 0; i < n; i++) {
        ferry_message_t m = {.data = payload, .len = size};
        if (ferry_client_publish_async(c, topic, &m, NULL, NULL) != FERRY_OK)
            return -1;
    }
    return ferry_client_flush(c, 120000) == FERRY_OK ? 0 : -1;
}

/* Loop latency and publish rate, printed under @p label. */
static int
s_probe(ferry_client_t *c, const char *label, const char *payload, size_t size)
{
    double rtt[S_PINGS];
    for (size_t i = 0; i < S_PINGS; i++) {
        double t = fy_now_s();
        if (ferry_client_ping(c) != FERRY_OK)
            return -1;
        rtt[i] = (fy_now_s() - t) * 1e6;
    }
    qsort(rtt, S_PINGS, sizeof rtt[0], s_cmp_double);
    double t0 = fy_now_s();
    if (s_publish(c, "other", S_PUBS, payload, size) != 0)
        return -1;
    double secs = fy_now_s() - t0;
    printf("%-22s ping p50 %6.0f us, p99 %6.0f us; publish %7.0f msg/s\n", label, rtt[S_PINGS / 2],
           rtt[S_PINGS * 99 / 100], S_PUBS / secs);
    return 0;
}

/* Fetches all @p n messages of @p sub, each expected with @p count deliveries. */
static int
s_fetch_all(ferry_client_t *c, const char *sub, size_t n, uint32_t count, uint8_t *seen)
{
    memset(seen, 0, n + 1);
    size_t got_all = 0;
    double deadline = fy_now_s() + 300;
    while (got_all < n && fy_now_s() < deadline) {
        const ferry_stored_message_t *msgs;
        size_t got;
        if (ferry_client_fetch(c, "pending", sub, 1000, 1000, &msgs, &got) != FERRY_OK)
            return -1;
        for (size_t i = 0; i < got; i++) {
            uint64_t s = msgs[i].seq;
            if (s == 0 || s > n || seen[s] || msgs[i].delivery_count != count) {
                fprintf(stderr, "bench: seq %llu delivered with count %u (wanted %u)%s\n",
                        (unsigned long long)s, msgs[i].delivery_count, count,
                        s && s <= n && seen[s] ? ", twice" : "");
                return -1;
            }
            seen[s] = 1;
        }
        got_all += got;
    }
    return got_all == n ? 0 : -1;
}

int
main(int argc, char **argv)
{
    size_t n = 1000000, size = 128;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            size = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_timers [-n COUNT] [-s BYTES]\n");
            return 2;
        }
    }
    if (n == 0)
        return 2;
    fy_ferryd_t d = {0};
    if (fy_ferryd_start(&d) != 0)
        return 1;
    int rc = 1;
    char *payload = calloc(1, size ? size : 1);
    uint8_t *seen = calloc(n + 1, 1);
    ferry_client_t *c = fy_connect(d.endpoint, 60000, 1000);
    ferry_sub_config_t hold = {.ack_wait_ms = 3600000};
    if (!payload || !seen || !c ||
        ferry_client_declare(c, FERRY_KIND_TOPIC, "pending", NULL, NULL, NULL) != FERRY_OK ||
        ferry_client_declare(c, FERRY_KIND_TOPIC, "other", NULL, NULL, NULL) != FERRY_OK ||
        ferry_client_sub_declare(c, "pending", "hold", &hold, NULL) != FERRY_OK)
        goto out;
    printf("pending set: %zu x %zu B, fsync on\n", n, size);
    if (s_probe(c, "0 pending:", payload, size) != 0 || s_publish(c, "pending", n, payload, size))
        goto out;

    double t0 = fy_now_s();
    if (s_fetch_all(c, "hold", n, 1, seen) != 0)
        goto out;
    double fetch_secs = fy_now_s() - t0;
    printf("fetched %zu without acking in %.2f s (%.0f msg/s)\n", n, fetch_secs, n / fetch_secs);
    char label[64];
    snprintf(label, sizeof label, "%zu pending:", n);
    if (s_probe(c, label, payload, size) != 0)
        goto out;

    /* Expiry: a second subscription whose ack wait outlasts one full fetch. */
    uint64_t wait_ms = (uint64_t)(fetch_secs * 2000) + 2000;
    ferry_sub_config_t expire = {.ack_wait_ms = wait_ms};
    if (ferry_client_sub_declare(c, "pending", "expire", &expire, NULL) != FERRY_OK ||
        s_fetch_all(c, "expire", n, 1, seen) != 0)
        goto out;
    snprintf(label, sizeof label, "%zu pending x 2:", n);
    if (s_probe(c, label, payload, size) != 0)
        goto out;
    struct timespec ts = {.tv_sec = (time_t)(wait_ms / 1000), .tv_nsec = 0};
    nanosleep(&ts, NULL);
    t0 = fy_now_s();
    if (s_fetch_all(c, "expire", n, 2, seen) != 0)
        goto out;
    double re_secs = fy_now_s() - t0;
    printf("ack wait %llu ms expired for %zu: redelivered in %.2f s (%.0f msg/s)\n",
           (unsigned long long)wait_ms, n, re_secs, n / re_secs);
    ferry_stats_t st;
    if (ferry_client_stats(c, &st) == FERRY_OK)
        printf("map used %.0f MiB\n", st.map_used / 1048576.0);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "bench_timers: failed\n");
    free(payload);
    free(seen);
    ferry_client_destroy(&c);
    fy_ferryd_signal(&d, 15);
    fy_ferryd_cleanup(&d);
    return rc;
}
