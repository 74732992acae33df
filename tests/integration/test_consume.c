/* SPDX-License-Identifier: MIT */
/*
 * test_consume.c - consuming from a real ferryd: competing consumers on a
 * queue, fan-out to several subscriptions, redelivery after the ack wait and
 * after a nack, dead letters after max_deliver, acks that survive kill -9,
 * and the errors a consumer can get.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef fy_fx_t fx_t;

static void
s_publish_n(ferry_client_t *c, const char *topic, size_t n)
{
    char buf[32];
    for (size_t i = 1; i <= n; i++) {
        int len = snprintf(buf, sizeof buf, "msg-%zu", i);
        ferry_message_t m = {.data = buf, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(c, topic, &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 30000), FERRY_OK);
}

/* Fetches until `want` messages arrived or the deadline passes. */
static size_t
s_fetch_until(ferry_client_t *c, const char *topic, const char *sub, size_t want, int ms,
              uint64_t *seqs, uint32_t *dcs)
{
    size_t got = 0;
    long long deadline = fy_now_ms() + ms;
    while (got < want && fy_now_ms() < deadline) {
        const ferry_stored_message_t *msgs;
        size_t n;
        assert_int_equal(ferry_client_fetch(c, topic, sub, 100, 0, &msgs, &n), FERRY_OK);
        for (size_t i = 0; i < n && got < want; i++) {
            seqs[got] = msgs[i].seq;
            if (dcs)
                dcs[got] = msgs[i].delivery_count;
            got++;
        }
        if (n == 0) {
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return got;
}

static void
test_competing_consumers_on_queue(void **state)
{
    fx_t *fx = *state;
    const size_t n = getenv("FERRY_TEST_QUICK") ? 600 : 30000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "jobs", n);
    ferry_client_t *cs[3] = {fx->c, fy_connect(fx->d.endpoint, 5000, 10),
                             fy_connect(fx->d.endpoint, 5000, 10)};
    assert_non_null(cs[1]);
    assert_non_null(cs[2]);
    uint8_t *seen = calloc(n + 1, 1);
    size_t per[3] = {0}, total = 0;
    for (int round = 0; total < n && round < 100000; round++) {
        ferry_client_t *c = cs[round % 3];
        const ferry_stored_message_t *msgs;
        size_t got;
        assert_int_equal(ferry_client_fetch(c, "jobs", NULL, 37, 0, &msgs, &got), FERRY_OK);
        uint64_t acks[37];
        for (size_t i = 0; i < got; i++) {
            assert_true(msgs[i].seq >= 1 && msgs[i].seq <= n);
            assert_int_equal(seen[msgs[i].seq], 0); /* each message to one consumer */
            seen[msgs[i].seq] = 1;
            assert_int_equal(msgs[i].delivery_count, 1);
            char expect[32];
            snprintf(expect, sizeof expect, "msg-%llu", (unsigned long long)msgs[i].seq);
            assert_int_equal(msgs[i].len, strlen(expect));
            assert_memory_equal(msgs[i].data, expect, msgs[i].len);
            acks[i] = msgs[i].seq;
        }
        if (got)
            assert_int_equal(ferry_client_ack(c, "jobs", "", acks, got), FERRY_OK);
        per[round % 3] += got;
        total += got;
    }
    assert_int_equal(total, n);
    for (int k = 0; k < 3; k++)
        assert_true(per[k] >= n / 5); /* roughly even */
    /* Acked messages of a queue are gone. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "jobs", &info), FERRY_OK);
    assert_int_equal(info.messages, 0);
    assert_int_equal(info.last_seq, n);
    const ferry_stored_message_t *msgs;
    size_t got;
    assert_int_equal(ferry_client_fetch(fx->c, "jobs", NULL, 10, 0, &msgs, &got), FERRY_OK);
    assert_int_equal(got, 0);
    free(seen);
    ferry_client_destroy(&cs[1]);
    ferry_client_destroy(&cs[2]);
}

static void
test_fan_out(void **state)
{
    fx_t *fx = *state;
    const size_t n = 1500;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "events", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "events", n / 2);
    const char *subs[4] = {"audit", "billing", "search", "mail"};
    for (int k = 0; k < 4; k++) {
        bool created = false;
        assert_int_equal(ferry_client_sub_declare(fx->c, "events", subs[k], NULL, &created),
                         FERRY_OK);
        assert_true(created);
    }
    /* A subscription starting at "new" sees only what comes after it. */
    ferry_sub_config_t late = {.start = "new"};
    assert_int_equal(ferry_client_sub_declare(fx->c, "events", "late", &late, NULL), FERRY_OK);
    s_publish_n(fx->c, "events", n / 2);
    uint64_t *seqs = calloc(n, sizeof *seqs);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(s_fetch_until(fx->c, "events", subs[k], n, 5000, seqs, NULL), n);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(seqs[i], i + 1); /* all of them, in order */
        for (size_t i = 0; i < n; i += 1000) {
            size_t m = n - i < 1000 ? n - i : 1000;
            assert_int_equal(ferry_client_ack(fx->c, "events", subs[k], seqs + i, m), FERRY_OK);
        }
    }
    assert_int_equal(s_fetch_until(fx->c, "events", "late", n, 2000, seqs, NULL), n / 2);
    assert_int_equal(seqs[0], n / 2 + 1);
    /* A topic keeps its messages for everyone. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "events", &info), FERRY_OK);
    assert_int_equal(info.messages, n);
    free(seqs);
}

/* seek: a subscription starts again from a sequence or a time; what comes
 * before counts as acked, what comes after is delivered again. */
static void
test_seek(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "seekable", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "seekable", 10);
    assert_int_equal(ferry_client_sub_declare(fx->c, "seekable", "s", NULL, NULL), FERRY_OK);
    uint64_t seqs[20];
    assert_int_equal(s_fetch_until(fx->c, "seekable", "s", 10, 5000, seqs, NULL), 10);
    assert_int_equal(ferry_client_ack(fx->c, "seekable", "s", seqs, 5), FERRY_OK); /* 1-5 */
    /* Back to 3: 3..10 again, acked or not; the unacked 6..10 in flight are
     * forgotten (an ack of one is ESEQ until it is delivered again). */
    ferry_sub_info_t info;
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 3, 0, &info), FERRY_OK);
    assert_int_equal(info.cursor, 3);
    assert_int_equal(info.ack_floor, 2);
    assert_int_equal(info.last_seq, 10);
    assert_int_equal(ferry_client_ack(fx->c, "seekable", "s", &seqs[7], 1), FERRY_ESEQ);
    assert_int_equal(s_fetch_until(fx->c, "seekable", "s", 8, 5000, seqs, NULL), 8);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(seqs[i], i + 3);
    /* Forward past what is in flight: skipped, counted as acked. */
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 9, 0, &info), FERRY_OK);
    assert_int_equal(info.ack_floor, 8);
    assert_int_equal(s_fetch_until(fx->c, "seekable", "s", 2, 5000, seqs, NULL), 2);
    assert_int_equal(seqs[0], 9);
    /* Past the end: only what comes next; before the start: the first. */
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 1000, 0, &info), FERRY_OK);
    assert_int_equal(info.cursor, 11);
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 1, 0, &info), FERRY_OK);
    assert_int_equal(info.cursor, 1);
    /* By time: the first message stored at or after it. */
    const ferry_stored_message_t *m = NULL;
    size_t got = 0;
    assert_int_equal(ferry_client_get(fx->c, "seekable", 7, 1, &m, &got), FERRY_OK);
    assert_int_equal(got, 1);
    uint64_t t7 = m[0].timestamp_ms;
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 0, t7, &info), FERRY_OK);
    assert_true(info.cursor <= 7); /* messages stored in the same ms as 7 come too */
    assert_int_equal(s_fetch_until(fx->c, "seekable", "s", 11 - info.cursor, 5000, seqs, NULL),
                     11 - info.cursor);
    assert_int_equal(seqs[0], info.cursor);
    /* Refusals. */
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "nobody", 1, 0, NULL),
                     FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_sub_seek(fx->c, "seekable", "s", 0, 0, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobsq", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_seek(fx->c, "jobsq", "", 1, 0, NULL), FERRY_EFIELD);
    /* The CLI. */
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' seek seekable s --seq 4 --json",
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"next\":4,\"ack_floor\":3,\"last\":10"));
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' seek seekable s 2>&1", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
}

static void
test_redelivery_after_ack_wait_and_nack(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "work", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t cfg = {.ack_wait_ms = 300};
    assert_int_equal(ferry_client_sub_declare(fx->c, "work", "w", &cfg, NULL), FERRY_OK);
    s_publish_n(fx->c, "work", 5);
    uint64_t seqs[16];
    uint32_t dcs[16];
    long long t0 = fy_now_ms();
    assert_int_equal(s_fetch_until(fx->c, "work", "w", 5, 2000, seqs, dcs), 5);
    uint64_t acked[] = {1, 3};
    assert_int_equal(ferry_client_ack(fx->c, "work", "w", acked, 2), FERRY_OK);
    /* Not before the ack wait; then 2, 4, 5 again with delivery count 2. */
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "work", "w", 10, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(s_fetch_until(fx->c, "work", "w", 3, 5000, seqs, dcs), 3);
    assert_true(fy_now_ms() - t0 >= 280);
    assert_int_equal(seqs[0], 2);
    assert_int_equal(seqs[1], 4);
    assert_int_equal(seqs[2], 5);
    assert_int_equal(dcs[0], 2);
    /* A nack with a delay: not back before it. */
    uint64_t done[] = {2, 5};
    assert_int_equal(ferry_client_ack(fx->c, "work", "w", done, 2), FERRY_OK);
    long long t1 = fy_now_ms();
    assert_int_equal(ferry_client_nack(fx->c, "work", "w", 4, 200), FERRY_OK);
    assert_int_equal(ferry_client_fetch(fx->c, "work", "w", 10, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(s_fetch_until(fx->c, "work", "w", 1, 5000, seqs, dcs), 1);
    assert_true(fy_now_ms() - t1 >= 180);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(dcs[0], 3);
    assert_int_equal(ferry_client_ack(fx->c, "work", "w", seqs, 1), FERRY_OK);
    /* Nothing left: no further redelivery after every ack. */
    struct timespec ts = {0, 400 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(ferry_client_fetch(fx->c, "work", "w", 10, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
}

static void
test_dead_letters(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "pay", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t cfg = {.ack_wait_ms = 5000, .max_deliver = 2};
    assert_int_equal(ferry_client_sub_declare(fx->c, "pay", "p", &cfg, NULL), FERRY_OK);
    ferry_header_t h[] = {{"trace", "t-9"}};
    ferry_message_t m = {
        .data = "poison", .len = 6, .key = "acct-1", .headers = h, .header_count = 1};
    assert_int_equal(ferry_client_publish(fx->c, "pay", &m, NULL), FERRY_OK);
    uint64_t seqs[4];
    uint32_t dcs[4];
    /* A handler that always fails: nack at once, twice. */
    for (uint32_t round = 1; round <= 2; round++) {
        assert_int_equal(s_fetch_until(fx->c, "pay", "p", 1, 2000, seqs, dcs), 1);
        assert_int_equal(dcs[0], round);
        assert_int_equal(ferry_client_nack(fx->c, "pay", "p", seqs[0], 0), FERRY_OK);
    }
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "pay", "p", 10, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0); /* a third delivery would pass max_deliver */
    assert_int_equal(ferry_client_get(fx->c, "pay.dlq", 1, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].len, 6);
    assert_memory_equal(msgs[0].data, "poison", 6);
    assert_string_equal(msgs[0].key, "acct-1");
    const char *want[][2] = {{"trace", "t-9"},
                             {"ferry-dlq-topic", "pay"},
                             {"ferry-dlq-seq", "1"},
                             {"ferry-dlq-deliveries", "2"},
                             {"ferry-dlq-reason", "max-deliver"}};
    assert_int_equal(msgs[0].header_count, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(msgs[0].headers[i].name, want[i][0]);
        assert_string_equal(msgs[0].headers[i].value, want[i][1]);
    }
    /* ferry dlq list shows it with the dead-letter headers; peek shows the original. */
    const char *cli = getenv("FERRY_CLI");
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof cmd, "%s --server %s dlq list pay", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq=1 "));
    assert_non_null(strstr(out,
                           " key=acct-1 version=1 trace=t-9 ferry-dlq-topic=pay ferry-dlq-seq=1 "
                           "ferry-dlq-deliveries=2 ferry-dlq-reason=max-deliver len=6\n"
                           "poison\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s peek pay --count 5", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq=1 "));
    assert_null(strstr(out, "seq=2 "));
    assert_null(strstr(out, "ferry-dlq"));
    snprintf(cmd, sizeof cmd, "%s --server %s dlq list nosuch", cli, fx->d.endpoint);
    assert_int_not_equal(fy_run(cmd, out, sizeof out), 0); /* nosuch.dlq does not exist */
    /* ferry dlq replay puts it back on its topic, without the dead-letter headers. */
    snprintf(cmd, sizeof cmd, "%s --server %s dlq replay pay", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "replayed 1\n");
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "replayed 0\n"); /* each dead letter once */
    assert_int_equal(s_fetch_until(fx->c, "pay", "p", 1, 2000, seqs, dcs), 1);
    assert_int_equal(seqs[0], 2);
    assert_int_equal(dcs[0], 1);
    assert_int_equal(ferry_client_get(fx->c, "pay", 2, 1, &msgs, &n), FERRY_OK);
    assert_int_equal(msgs[0].header_count, 1);
    assert_string_equal(msgs[0].headers[0].name, "trace");
    assert_string_equal(msgs[0].key, "acct-1");
    assert_memory_equal(msgs[0].data, "poison", 6);
    /* sub-info shows where it stands. */
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(fx->c, "pay", "p", &si), FERRY_OK);
    assert_int_equal(si.cursor, 3);
    assert_int_equal(si.ack_floor, 1);
    assert_int_equal(si.last_seq, 2);
    assert_int_equal(si.max_deliver, 2);
    assert_int_equal(ferry_client_sub_info(fx->c, "pay", "nobody", &si), FERRY_ENOTFOUND);
    snprintf(cmd, sizeof cmd, "%s --server %s sub-info pay p", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "cursor: 3\nack_floor: 1\nlast_seq: 2\nwaiting: 0\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s sub info pay p", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "cursor: 3\nack_floor: 1\nlast_seq: 2\nwaiting: 0\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s sub pay p 2>/dev/null", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2); /* sub takes one topic */
}

static void
test_term_and_progress(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "mail", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "mail", 2);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "mail", NULL, 1, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_client_term(fx->c, "mail", NULL, 1, "smtp 550: no such user"), FERRY_OK);
    assert_int_equal(ferry_client_term(fx->c, "mail", NULL, 1, NULL), FERRY_OK); /* acked now */
    assert_int_equal(ferry_client_get(fx->c, "mail.dlq", 1, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(msgs[0].data, "msg-1", 5);
    assert_int_equal(msgs[0].header_count, 5);
    assert_string_equal(msgs[0].headers[3].value, "terminated");
    assert_string_equal(msgs[0].headers[4].name, "ferry-dlq-error");
    assert_string_equal(msgs[0].headers[4].value, "smtp 550: no such user");
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "mail", &info), FERRY_OK);
    assert_int_equal(info.messages, 1); /* the terminated one left the queue */

    /* progress: the ack wait starts again, so no redelivery while working. */
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "slow", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t cfg = {.ack_wait_ms = 400};
    assert_int_equal(ferry_client_sub_declare(fx->c, "slow", "s", &cfg, NULL), FERRY_OK);
    s_publish_n(fx->c, "slow", 1);
    long long t0 = fy_now_ms();
    assert_int_equal(ferry_client_fetch(fx->c, "slow", "s", 1, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL);
    assert_int_equal(ferry_client_progress(fx->c, "slow", "s", 1), FERRY_OK);
    /* 300 ms later the first ack wait is over, the extended one is not. */
    assert_int_equal(ferry_client_fetch(fx->c, "slow", "s", 1, 250, &msgs, &n), FERRY_OK);
    if (fy_now_ms() - t0 < 650) /* only meaningful if the machine kept up */
        assert_int_equal(n, 0);
    /* Then it does come back. */
    assert_int_equal(ferry_client_fetch(fx->c, "slow", "s", 1, 3000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].delivery_count, 2);
    assert_int_equal(ferry_client_progress(fx->c, "slow", "s", 2), FERRY_ESEQ);
}

static void
test_acks_survive_kill9(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t cfg = {.ack_wait_ms = 300};
    assert_int_equal(ferry_client_sub_declare(fx->c, "orders", "ship", &cfg, NULL), FERRY_OK);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "tasks", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(fx->c, "orders", 1000);
    s_publish_n(fx->c, "tasks", 100);
    uint64_t *seqs = calloc(1000, sizeof *seqs);
    uint32_t *dcs = calloc(1000, sizeof *dcs);
    assert_int_equal(s_fetch_until(fx->c, "orders", "ship", 600, 5000, seqs, NULL), 600);
    assert_int_equal(ferry_client_ack(fx->c, "orders", "ship", seqs, 400), FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "tasks", NULL, 50, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 50);
    uint64_t tacks[30];
    for (size_t i = 0; i < 30; i++)
        tacks[i] = msgs[i].seq;
    assert_int_equal(ferry_client_ack(fx->c, "tasks", NULL, tacks, 30), FERRY_OK);
    ferry_client_destroy(&fx->c);

    fy_ferryd_signal(&fx->d, SIGKILL);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    assert_non_null(fx->c);

    /* Everything not acked comes (new ones at once, the fetched ones after the
     * ack wait); nothing acked comes back. */
    size_t got = s_fetch_until(fx->c, "orders", "ship", 600, 10000, seqs, dcs);
    assert_int_equal(got, 600);
    uint8_t seen[1001] = {0};
    for (size_t i = 0; i < got; i++) {
        assert_true(seqs[i] > 400 && seqs[i] <= 1000);
        assert_int_equal(seen[seqs[i]], 0);
        seen[seqs[i]] = 1;
        assert_int_equal(dcs[i], seqs[i] <= 600 ? 2 : 1);
    }
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "tasks", &info), FERRY_OK);
    assert_int_equal(info.messages, 70);
    free(seqs);
    free(dcs);
}

static void
test_subject_filters(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "ev", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t eu = {.filter = "*.eu.>"}, orders = {.filter = "orders.>"};
    assert_int_equal(ferry_client_sub_declare(fx->c, "ev", "eu", &eu, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "ev", "orders", &orders, NULL), FERRY_OK);
    const char *keys[] = {"orders.eu.1", "orders.us.2", "payments.eu.3", NULL, "orders.eu"};
    for (size_t i = 0; i < 5; i++) {
        ferry_message_t m = {.data = "x", .len = 1, .key = keys[i]};
        assert_int_equal(ferry_client_publish(fx->c, "ev", &m, NULL), FERRY_OK);
    }
    const uint64_t want_eu[] = {1, 3}, want_orders[] = {1, 2, 5};
    struct {
        const char *sub;
        const uint64_t *want;
        size_t n;
    } cases[] = {{"eu", want_eu, 2}, {"orders", want_orders, 3}};
    for (size_t c = 0; c < 2; c++) {
        const ferry_stored_message_t *msgs;
        size_t n;
        assert_int_equal(ferry_client_fetch(fx->c, "ev", cases[c].sub, 100, 0, &msgs, &n),
                         FERRY_OK);
        assert_int_equal(n, cases[c].n);
        uint64_t seqs[8];
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(msgs[i].seq, cases[c].want[i]);
            seqs[i] = msgs[i].seq;
        }
        assert_int_equal(ferry_client_ack(fx->c, "ev", cases[c].sub, seqs, n), FERRY_OK);
        /* Skipped messages count as acked: the floor passes all five. */
        ferry_sub_info_t si;
        assert_int_equal(ferry_client_sub_info(fx->c, "ev", cases[c].sub, &si), FERRY_OK);
        assert_int_equal(si.ack_floor, 5);
    }
    ferry_sub_config_t bad = {.filter = "orders.>.eu"};
    assert_int_equal(ferry_client_sub_declare(fx->c, "ev", "bad", &bad, NULL), FERRY_EFIELD);
}

static void
test_consume_errors(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "q", NULL, NULL, NULL),
                     FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "t", "nobody", 10, 0, &msgs, &n), FERRY_ENOTFOUND);
    assert_non_null(strstr(ferry_client_last_error(fx->c), "subscription"));
    assert_int_equal(ferry_client_fetch(fx->c, "missing", "x", 10, 0, &msgs, &n), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_sub_declare(fx->c, "q", "named", NULL, NULL), FERRY_EFIELD);
    assert_int_equal(ferry_client_sub_declare(fx->c, "t", "", NULL, NULL), FERRY_EFIELD);
    assert_int_equal(ferry_client_sub_declare(fx->c, "t", "bad name", NULL, NULL),
                     FERRY_EINVALID_NAME);
    assert_int_equal(ferry_client_sub_declare(fx->c, "t", "s", NULL, NULL), FERRY_OK);
    uint64_t never[] = {1};
    assert_int_equal(ferry_client_ack(fx->c, "t", "s", never, 1), FERRY_ESEQ);
    assert_int_equal(ferry_client_ack(fx->c, "q", NULL, never, 1), FERRY_ESEQ);
    assert_int_equal(ferry_client_nack(fx->c, "t", "s", 5, 0), FERRY_ESEQ);
    assert_int_equal(ferry_client_fetch(fx->c, "t", "s", 0, 0, &msgs, &n), FERRY_EINVAL);
    assert_int_equal(ferry_client_fetch(fx->c, "t", "s", FERRY_FETCH_MAX + 1, 0, &msgs, &n),
                     FERRY_EINVAL);
    /* The connection keeps working. */
    assert_int_equal(ferry_client_ping(fx->c), FERRY_OK);
}

typedef struct {
    const char *endpoint, *topic;
    int delay_ms;
    ferry_status_t st;
} s_late_pub_t;

static void *
s_publish_later(void *arg)
{
    s_late_pub_t *lp = arg;
    struct timespec ts = {lp->delay_ms / 1000, (lp->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ferry_client_t *c = fy_connect(lp->endpoint, 5000, 10);
    ferry_message_t m = {.data = "late", .len = 4};
    lp->st = c ? ferry_client_publish(c, lp->topic, &m, NULL) : FERRY_ECONNECT;
    ferry_client_destroy(&c);
    return NULL;
}

static void
test_fetch_waits(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "wq", NULL, NULL, NULL),
                     FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    /* Nothing comes: an empty answer once the wait is over. */
    long long t0 = fy_now_ms();
    assert_int_equal(ferry_client_fetch(fx->c, "wq", NULL, 10, 300, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
    assert_true(fy_now_ms() - t0 >= 280);
    /* A message published while the fetch waits is handed over at once. */
    s_late_pub_t lp = {fx->d.endpoint, "wq", 200, FERRY_EINTERNAL};
    pthread_t th;
    t0 = fy_now_ms();
    assert_int_equal(pthread_create(&th, NULL, s_publish_later, &lp), 0);
    assert_int_equal(ferry_client_fetch(fx->c, "wq", NULL, 10, 5000, &msgs, &n), FERRY_OK);
    long long waited = fy_now_ms() - t0;
    pthread_join(th, NULL);
    assert_int_equal(lp.st, FERRY_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(msgs[0].data, "late", 4);
    assert_true(waited >= 150 && waited < 4000);
    /* Not acked: after the ack wait a waiting fetch gets it again. */
    ferry_sub_config_t cfg = {.ack_wait_ms = 200};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "wt", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "wt", "s", &cfg, NULL), FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1};
    assert_int_equal(ferry_client_publish(fx->c, "wt", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_fetch(fx->c, "wt", "s", 10, 1000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    t0 = fy_now_ms();
    assert_int_equal(ferry_client_fetch(fx->c, "wt", "s", 10, 3000, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].delivery_count, 2);
    assert_true(fy_now_ms() - t0 >= 150);
    /* Out of range waits are refused. */
    assert_int_equal(ferry_client_fetch(fx->c, "wt", "s", 10, 300001, &msgs, &n), FERRY_EINVAL);
}

/* A fetch takes up to FERRY_FETCH_MAX messages and is bounded by bytes as
 * the consumer asks; one ack takes as many sequences (issue 21). */
static void
test_fetch_bounded_by_count_and_bytes(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "big", NULL, NULL, NULL),
                     FERRY_OK);
    static char small[16], large[1000];
    memset(small, 's', sizeof small);
    memset(large, 'L', sizeof large);
    ferry_message_t batch[1000];
    for (int b = 0; b < 5; b++) {
        for (int i = 0; i < 1000; i++)
            batch[i] = (ferry_message_t){.data = small, .len = sizeof small};
        assert_int_equal(ferry_client_publish_batch(fx->c, "big", batch, 1000, NULL), FERRY_OK);
    }
    /* 5,000 small messages (80 bytes each as counted): one fetch. */
    const ferry_stored_message_t *msgs;
    size_t n;
    ferry_fetch_opts_t o = {.max = 5000};
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 5000);
    static uint64_t seqs[5000];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].seq, i + 1);
        assert_int_equal(msgs[i].len, sizeof small);
        seqs[i] = msgs[i].seq;
    }
    assert_int_equal(ferry_client_ack(fx->c, "big", NULL, seqs, n), FERRY_OK);
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(fx->c, "big", NULL, &si), FERRY_OK);
    assert_int_equal(si.ack_floor, 5000);
    /* 1,000-byte messages count 1,064 bytes: a bound of 10 of them gives 10,
     * then the next 10; a bound below one message still gives one. */
    for (int i = 0; i < 100; i++)
        batch[i] = (ferry_message_t){.data = large, .len = sizeof large};
    assert_int_equal(ferry_client_publish_batch(fx->c, "big", batch, 100, NULL), FERRY_OK);
    o = (ferry_fetch_opts_t){.max = 100, .max_bytes = 10 * 1064};
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 10);
    assert_int_equal(msgs[0].seq, 5001);
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 10);
    assert_int_equal(msgs[0].seq, 5011);
    assert_memory_equal(msgs[9].data, large, sizeof large);
    o.max_bytes = 1;
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].seq, 5021);
    /* Without a bound of its own a fetch stops at FERRY_FETCH_BYTES_MAX. */
    o = (ferry_fetch_opts_t){.max = FERRY_FETCH_MAX};
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 79); /* the rest: 100 - 21 */
    /* Out of range. */
    o = (ferry_fetch_opts_t){.max = FERRY_FETCH_MAX + 1};
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_EINVAL);
    o = (ferry_fetch_opts_t){.max = 1, .max_bytes = FERRY_FETCH_BYTES_MAX + 1};
    assert_int_equal(ferry_client_fetch_with(fx->c, "big", NULL, &o, &msgs, &n), FERRY_EINVAL);
    assert_int_equal(ferry_client_fetch(fx->c, "big", NULL, 0, 0, &msgs, &n), FERRY_EINVAL);
    assert_int_equal(ferry_client_ack(fx->c, "big", NULL, seqs, FERRY_FETCH_MAX + 1), FERRY_EINVAL);
}

static void
test_cli_consume(void **state)
{
    fx_t *fx = *state;
    const char *cli = getenv("FERRY_CLI");
    assert_non_null(cli);
    char cmd[1024], out[4096];
    const char *ep = fx->d.endpoint;
    snprintf(cmd, sizeof cmd,
             "%s --server %s declare queue q && %s --server %s pub q one && "
             "%s --server %s pub q two",
             cli, ep, cli, ep, cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    /* fetch --no-ack leaves it pending; nack gives it back; fetch acks. */
    snprintf(cmd, sizeof cmd, "%s --server %s fetch q --count 1 --no-ack", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq=1 "));
    assert_non_null(strstr(out, " dc=1 len=3\none\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s nack q '' 1", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s fetch q", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, " dc=2 len=3\none\n"));
    assert_non_null(strstr(out, "seq=2 "));
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "q", &info), FERRY_OK);
    assert_int_equal(info.messages, 0);
    /* A topic subscription, and the errors' exit codes. */
    snprintf(cmd, sizeof cmd,
             "%s --server %s declare topic t && %s --server %s sub t --durable s "
             "--from new --max-deliver 3 --declare-only",
             cli, ep, cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "created subscription t s"));
    /* sub consumes by push: durable, live (ephemeral) and on a queue. */
    snprintf(cmd, sizeof cmd, "%s --server %s pub t one && %s --server %s pub t two", cli, ep, cli,
             ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s sub t --durable s --count 2", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq=1 "));
    assert_non_null(strstr(out, " dc=1 len=3\none\nseq=2 "));
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(fx->c, "t", "s", &si), FERRY_OK);
    assert_int_equal(si.ack_floor, 2); /* acked before sub exited */
    snprintf(cmd, sizeof cmd, "%s --server %s sub t --durable s --wait-ms 300", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, ""); /* nothing new, stops after the wait */
    snprintf(cmd, sizeof cmd, "%s --server %s pub q three && %s --server %s sub q --count 1", cli,
             ep, cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "len=5\nthree\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s sub t --declare-only 2>/dev/null", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s --server %s ack t s 9 2>/dev/null", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd, "%s --server %s fetch t nobody 2>/dev/null", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd, "%s --server %s ack t s notanumber 2>/dev/null", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
}

/* Acks that do not wait (ferry_client_ack_async): a pull consumer fetches
 * the next batch while the last one's acks are in flight; each ack's
 * callback fires once with its status, also for acks sent again after the
 * broker was killed with -9 under them (one in flight at least); at the
 * end every message of the queue was acked and is gone, nothing failed. */
typedef struct {
    int ok, failed;
} s_acks_t;

static void
s_on_ack(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_acks_t *a = user;
    if (cf->status == FERRY_OK && cf->seq == 0)
        a->ok++;
    else
        a->failed++;
}

static void
test_async_acks(void **state)
{
    fx_t *fx = *state;
    enum { N = 5000 };
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL),
                     FERRY_OK);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "j%d", i);
        ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
        assert_int_equal(ferry_client_publish_async(fx->c, "jobs", &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(fx->c, 30000), FERRY_OK);
    assert_int_equal(ferry_client_ack_async(fx->c, "jobs", NULL, NULL, 1, NULL, NULL),
                     FERRY_EINVAL);
    s_acks_t acks = {0};
    int calls = 0, rounds = 0;
    size_t fetched = 0;
    bool killed = false;
    long long until = fy_now_ms() + 60000;
    for (;;) {
        const ferry_stored_message_t *msgs;
        size_t n = 0;
        ferry_status_t st = ferry_client_fetch(fx->c, "jobs", NULL, 500, 0, &msgs, &n);
        /* A fetch the kill cut off says so (ECLOSED, ...): fetch again. */
        if (st != FERRY_OK && st != FERRY_ECLOSED && st != FERRY_EDISCONNECTED &&
            st != FERRY_ETIMEOUT)
            fail_msg("fetch: %s (%s)", ferry_errname(st), ferry_client_last_error(fx->c));
        uint64_t seqs[500];
        for (size_t i = 0; i < n; i++)
            seqs[i] = msgs[i].seq;
        if (n) {
            assert_int_equal(ferry_client_ack_async(fx->c, "jobs", NULL, seqs, n, s_on_ack, &acks),
                             FERRY_OK);
            calls++;
            fetched += n;
        }
        if (++rounds == 4 && !killed) { /* acks in flight: the broker dies under them */
            assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
            assert_int_equal(fy_ferryd_start(&fx->d), 0);
            killed = true;
        }
        ferry_topic_info_t info;
        if (n == 0 && ferry_client_flush(fx->c, 10000) == FERRY_OK &&
            ferry_client_info(fx->c, "jobs", &info) == FERRY_OK && info.messages == 0)
            break;
        assert_true(fy_now_ms() < until);
    }
    assert_int_equal(ferry_client_flush(fx->c, 10000), FERRY_OK);
    assert_int_equal(acks.ok, calls); /* each ack answered once, on disk */
    assert_int_equal(acks.failed, 0);
    assert_true(fetched >= N); /* what the kill cut off came again */
    printf("async acks: %d ack calls for %zu fetched messages of %d, broker killed once\n", calls,
           fetched, N);
}

/* The log file @p path holds @p needle within 15 s. */
static bool
s_log_has(const char *path, const char *needle)
{
    long long until = fy_now_ms() + 15000;
    char buf[16384];
    while (fy_now_ms() < until) {
        FILE *f = fopen(path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        if (strstr(buf, needle))
            return true;
        fy_sleep_ms(50);
    }
    return false;
}

/* ferry sub across a broker restart says it lost the broker and is back,
 * gets what was published after, and Ctrl-C unsubscribes it cleanly: exit
 * 0, every message it printed acked. */
static void
test_cli_sub_survives_restart_and_ctrl_c(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "live", NULL, NULL, NULL),
                     FERRY_OK);
    char log[400];
    snprintf(log, sizeof log, "%s/sub.log", fx->d.dir);
    const char *argv[] = {getenv("FERRY_CLI"), "--server", fx->d.endpoint, "sub",   "live",
                          "--durable",         "watch",    "--from",       "first", NULL};
    int pid = fy_spawn(log, argv);
    assert_true(pid > 0);
    ferry_message_t m = {.data = "m-one", .len = 5};
    assert_int_equal(ferry_client_publish(fx->c, "live", &m, NULL), FERRY_OK);
    assert_true(s_log_has(log, "m-one"));
    fy_ferryd_signal(&fx->d, SIGKILL);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    assert_true(s_log_has(log, "ferry: lost the broker at"));
    assert_true(s_log_has(log, "ferry: back at"));
    m = (ferry_message_t){.data = "m-two", .len = 5};
    ferry_status_t st;
    long long until = fy_now_ms() + 15000;
    while ((st = ferry_client_publish(fx->c, "live", &m, NULL)) != FERRY_OK && fy_now_ms() < until)
        fy_sleep_ms(100);
    assert_int_equal(st, FERRY_OK);
    assert_true(s_log_has(log, "m-two"));
    kill(pid, SIGINT);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(s_log_has(log, "ferry: interrupted: unsubscribed after 2 messages"));
    ferry_sub_info_t si;
    assert_int_equal(ferry_client_sub_info(fx->c, "live", "watch", &si), FERRY_OK);
    assert_int_equal(si.ack_floor, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_competing_consumers_on_queue, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fan_out, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_seek, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli_sub_survives_restart_and_ctrl_c, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_redelivery_after_ack_wait_and_nack, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_term_and_progress, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_acks_survive_kill9, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_subject_filters, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consume_errors, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fetch_waits, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_fetch_bounded_by_count_and_bytes, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli_consume, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_acks, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("consume", tests, NULL, NULL);
}
