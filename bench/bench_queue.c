/* SPDX-License-Identifier: MIT */
/*
 * bench_queue.c - work-queue throughput with fsync on: one producer
 * publishing N messages through the async window while one consumer (its own
 * connection and thread) fetches up to F at a time and acks each fetched
 * batch (acks are durable before they are confirmed; acked messages are
 * deleted). Reports messages per second from the first publish to the last
 * ack, and fails if any message was lost or delivered twice.
 *
 * With -p the consumer is a push consumer (prefetch P, acking from its
 * handler) instead of fetching. With -k K (and -p) it is fan-out instead: a
 * topic with K durable subscriptions, each consumed by its own push consumer
 * (thread and connection); the rate counts deliveries (N x K).
 *
 * With -a the fetching consumer acks without waiting
 * (ferry_client_ack_async) and fetches the next batch while the acks are in
 * flight; it flushes them at the end.
 *
 *   bench_queue [-n COUNT] [-s BYTES] [-w WINDOW] [-f FETCH] [-a] [-p PREFETCH] [-k SUBS]
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef struct {
    const char *endpoint;
    const char *topic, *sub; /* "w1" and NULL for the queue */
    size_t n, fetch, prefetch;
    bool async_acks; /* -a: ferry_client_ack_async, flushed at the end */
    uint8_t *seen;
    size_t received, dups;
    double end;
    double cpu; /* seconds of CPU this consumer's thread used */
    int failed;
} s_consumer_t;

/* CPU seconds (user + system) of the calling thread, or of the process. */
static double
s_cpu(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static ferry_msg_action_t
s_on_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_consumer_t *k = user;
    if (m->seq == 0 || m->seq > k->n || k->seen[m->seq])
        k->dups++;
    else
        k->seen[m->seq] = 1;
    k->received++;
    return FERRY_MSG_ACK;
}

/* Push: the handler acks; the client sends acks and credit in batches. */
static void *
s_consume_push(void *arg)
{
    s_consumer_t *k = arg;
    ferry_client_t *c = fy_connect(k->endpoint, 30000, k->async_acks ? 1000 : 10);
    k->seen = calloc(k->n + 1, 1);
    if (!c || !k->seen ||
        ferry_client_subscribe(c, k->topic, k->sub, (uint32_t)k->prefetch, s_on_msg, k, NULL)) {
        k->failed = 1;
        goto done;
    }
    double deadline = fy_now_s() + 120;
    while (k->received < k->n && fy_now_s() < deadline)
        if (ferry_client_poll(c, 100) != FERRY_OK)
            break;
    /* The last acks go out without waiting: a round trip makes sure they landed. */
    ferry_client_ping(c);
    k->end = fy_now_s();
    k->cpu = s_cpu(RUSAGE_THREAD);
done:
    free(k->seen);
    ferry_client_destroy(&c);
    return NULL;
}

static void *
s_consume(void *arg)
{
    s_consumer_t *k = arg;
    ferry_client_t *c = fy_connect(k->endpoint, 30000, 10);
    uint8_t *seen = calloc(k->n + 1, 1);
    uint64_t *seqs = calloc(k->fetch, sizeof *seqs);
    if (!c || !seen || !seqs) {
        k->failed = 1;
        goto done;
    }
    double deadline = fy_now_s() + 120;
    while (k->received < k->n && fy_now_s() < deadline) {
        const ferry_stored_message_t *msgs;
        size_t got;
        if (ferry_client_fetch(c, "w1", NULL, (uint32_t)k->fetch, 100, &msgs, &got) != FERRY_OK) {
            k->failed = 1;
            break;
        }
        for (size_t i = 0; i < got; i++) {
            uint64_t s = msgs[i].seq;
            if (s == 0 || s > k->n || seen[s])
                k->dups++;
            else
                seen[s] = 1;
            seqs[i] = s;
        }
        ferry_status_t st = !got ? FERRY_OK
                            : k->async_acks
                                ? ferry_client_ack_async(c, "w1", NULL, seqs, got, NULL, NULL)
                                : ferry_client_ack(c, "w1", NULL, seqs, got);
        if (st != FERRY_OK) {
            k->failed = 1;
            break;
        }
        k->received += got;
    }
    if (k->async_acks && ferry_client_flush(c, 30000) != FERRY_OK)
        k->failed = 1;
    k->end = fy_now_s();
    k->cpu = s_cpu(RUSAGE_THREAD);
done:
    free(seen);
    free(seqs);
    ferry_client_destroy(&c);
    return NULL;
}

int
main(int argc, char **argv)
{
    size_t n = 200000, size = 128, window = 1000, fetch = 1000, prefetch = 0, subs = 0;
    bool async_acks = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            size = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
            window = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-f") == 0 && i + 1 < argc)
            fetch = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-a") == 0)
            async_acks = true;
        else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            prefetch = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc)
            subs = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_queue [-n COUNT] [-s BYTES] [-w WINDOW] [-f FETCH] "
                            "[-a] [-p PREFETCH] [-k SUBS]\n");
            return 2;
        }
    }
    if (fetch == 0 || fetch > FERRY_FETCH_MAX || n == 0 || subs > 16 || (subs && !prefetch))
        return 2;
    fy_ferryd_t d = {0};
    if (fy_ferryd_start(&d) != 0)
        return 1;
    ferry_client_t *p = fy_connect(d.endpoint, 30000, window);
    const char *topic = subs ? "w3" : "w1";
    if (!p || ferry_client_declare(p, subs ? FERRY_KIND_TOPIC : FERRY_KIND_QUEUE, topic, NULL, NULL,
                                   NULL) != FERRY_OK) {
        fy_ferryd_cleanup(&d);
        return 1;
    }
    size_t nk = subs ? subs : 1;
    char names[16][16];
    s_consumer_t ks[16];
    pthread_t th[16];
    for (size_t j = 0; j < nk; j++) {
        snprintf(names[j], sizeof names[j], "s%zu", j);
        if (subs && ferry_client_sub_declare(p, topic, names[j], NULL, NULL) != FERRY_OK) {
            fy_ferryd_cleanup(&d);
            return 1;
        }
        ks[j] = (s_consumer_t){.endpoint = d.endpoint,
                               .topic = topic,
                               .sub = subs ? names[j] : NULL,
                               .n = n,
                               .fetch = fetch,
                               .async_acks = async_acks,
                               .prefetch = prefetch};
    }
    char *payload = calloc(1, size ? size : 1);
    double cpu0 = s_cpu(RUSAGE_SELF), pub_cpu0 = s_cpu(RUSAGE_THREAD);
    double t0 = fy_now_s();
    for (size_t j = 0; j < nk; j++)
        pthread_create(&th[j], NULL, prefetch ? s_consume_push : s_consume, &ks[j]);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        ferry_message_t m = {.data = payload, .len = size};
        if (ferry_client_publish_async(p, topic, &m, NULL, NULL) != FERRY_OK) {
            rc = 1;
            break;
        }
    }
    if (ferry_client_flush(p, 60000) != FERRY_OK)
        rc = 1;
    double pub_cpu = s_cpu(RUSAGE_THREAD) - pub_cpu0;
    double published = fy_now_s() - t0, end = 0;
    size_t received = 0;
    for (size_t j = 0; j < nk; j++) {
        pthread_join(th[j], NULL);
        received += ks[j].received;
        end = ks[j].end > end ? ks[j].end : end;
        if (ks[j].failed || ks[j].received != n || ks[j].dups) {
            fprintf(stderr, "bench: consumer %zu received %zu of %zu, %zu duplicates%s\n", j,
                    ks[j].received, n, ks[j].dups, ks[j].failed ? ", a call failed" : "");
            rc = 1;
        }
    }
    double all_cpu = s_cpu(RUSAGE_SELF) - cpu0, cons_cpu = 0;
    for (size_t j = 0; j < nk; j++)
        cons_cpu += ks[j].cpu;
    ferry_stats_t st;
    ferry_client_stats(p, &st);
    double secs = end - t0;
    if (subs)
        printf("fan-out: %zu x %zu B to %zu subscriptions, window %zu, push prefetch %zu, "
               "fsync on\n",
               n, size, subs, window, prefetch);
    else if (prefetch)
        printf("work queue: %zu x %zu B, window %zu, push prefetch %zu, fsync on\n", n, size,
               window, prefetch);
    else
        printf("work queue: %zu x %zu B, window %zu, fetch %zu, fsync on\n", n, size, window,
               fetch);
    printf("published+confirmed in %.2f s (%.0f msg/s); all acked in %.2f s: %.0f msg/s "
           "delivered, %llu commits (%.0f/s)\n",
           published, n / published, secs, received / secs, (unsigned long long)st.commits,
           st.commits / secs);
    /* Client CPU per message: the producer's and consumers' own threads, and
     * the whole client process (with libzmq's I/O threads). */
    printf("client CPU: publish %.2f us/msg, consume %.2f us/msg (application threads); "
           "whole client process %.2f us/msg\n",
           pub_cpu * 1e6 / n, cons_cpu * 1e6 / (double)received, all_cpu * 1e6 / n);
    free(payload);
    ferry_client_destroy(&p);
    fy_ferryd_signal(&d, 15);
    fy_ferryd_cleanup(&d);
    return rc;
}
