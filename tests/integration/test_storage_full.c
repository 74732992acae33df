/* SPDX-License-Identifier: MIT */
/*
 * test_storage_full.c - a ferryd with a tiny LMDB map: publishes past the
 * limit get ESTORAGE_FULL (sync and async), everything confirmed before is
 * intact, reads, info, stats and ping keep working, and after a restart with
 * a larger map publishing resumes on the same data.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef struct {
    size_t ok, full, other;
    uint64_t last_seq;
} s_tally_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_tally_t *t = user;
    if (cf->status == FERRY_OK) {
        t->ok++;
        t->last_seq = cf->seq;
    } else if (cf->status == FERRY_ESTORAGE_FULL) {
        t->full++;
    } else {
        t->other++;
    }
}

static void
test_storage_full(void **state)
{
    fy_ferryd_t *d = *state;
    d->extra[0] = "--map-size";
    d->extra[1] = "1M";
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "fill", NULL, NULL, NULL), FERRY_OK);

    char payload[4000];
    memset(payload, 'p', sizeof payload);
    ferry_confirm_t cf;
    uint64_t last_ok = 0;
    ferry_status_t st = FERRY_OK;
    int i;
    for (i = 0; i < 1000 && st == FERRY_OK; i++) {
        int len = snprintf(payload, sizeof payload, "n-%d", i);
        payload[len] = 'p';
        ferry_message_t m = {.data = payload, .len = sizeof payload};
        st = ferry_client_publish(c, "fill", &m, &cf);
        if (st == FERRY_OK)
            last_ok = cf.seq;
    }
    assert_int_equal(st, FERRY_ESTORAGE_FULL);
    assert_true(last_ok > 50);
    assert_non_null(strstr(ferry_client_last_error(c), "storage is full"));

    /* Async publishes are refused too, each with its own callback. */
    s_tally_t t = {0};
    for (int k = 0; k < 50; k++) {
        ferry_message_t m = {.data = payload, .len = sizeof payload};
        assert_int_equal(ferry_client_publish_async(c, "fill", &m, s_on_confirm, &t), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 10000), FERRY_OK);
    assert_int_equal(t.full + t.ok, 50);
    assert_int_equal(t.other, 0);
    assert_true(t.full > 0);
    last_ok += t.ok;

    /* Reads, info, stats and ping go on. */
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "fill", &info), FERRY_OK);
    assert_int_equal(info.messages, last_ok);
    assert_int_equal(info.last_seq, last_ok);
    ferry_stats_t stats;
    assert_int_equal(ferry_client_stats(c, &stats), FERRY_OK);
    assert_int_equal(stats.map_size, 1 << 20);
    assert_true(stats.errors > 0);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_get(c, "fill", 1, 5, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 5);
    assert_int_equal(msgs[0].len, sizeof payload);
    assert_memory_equal(msgs[0].data, "n-0p", 4);
    assert_true(fy_ferryd_log_count(d, "msg=\"storage full\"") >= 1);
    ferry_client_destroy(&c);

    /* A larger map on restart: publishing resumes after the last message. */
    int status = fy_ferryd_signal(d, SIGTERM);
    assert_int_equal(status, 0);
    d->extra[1] = "16M";
    assert_int_equal(fy_ferryd_start(d), 0);
    c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    ferry_message_t m = {.data = payload, .len = sizeof payload};
    assert_int_equal(ferry_client_publish(c, "fill", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, last_ok + 1);
    fy_copied_t *all;
    assert_int_equal(fy_read_all(c, "fill", &all, &n), FERRY_OK);
    assert_int_equal(n, last_ok + 1);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(all[k].seq, k + 1);
    free(all);
    ferry_client_destroy(&c);
}

static void
test_full_queue_keeps_acking(void **state)
{
    fy_ferryd_t *d = *state;
    d->extra[0] = "--map-size";
    d->extra[1] = "1M";
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "work", NULL, NULL, NULL), FERRY_OK);
    char payload[4000];
    memset(payload, 'w', sizeof payload);
    ferry_message_t wm = {.data = payload, .len = sizeof payload};
    ferry_confirm_t cf = {0};
    ferry_status_t st = FERRY_OK;
    uint64_t queued = 0;
    for (int i = 0; i < 1000 && st == FERRY_OK; i++) {
        st = ferry_client_publish(c, "work", &wm, &cf);
        if (st == FERRY_OK)
            queued = cf.seq;
    }
    assert_int_equal(st, FERRY_ESTORAGE_FULL);
    assert_true(queued > 50);
    /* While full, consumers go on: fetch and ack succeed. */
    size_t acked = 0;
    const ferry_stored_message_t *msgs;
    size_t n;
    while (acked < queued / 2) {
        assert_int_equal(ferry_client_fetch(c, "work", NULL, 20, 0, &msgs, &n), FERRY_OK);
        assert_true(n > 0);
        uint64_t seqs[20];
        for (size_t k = 0; k < n; k++)
            seqs[k] = msgs[k].seq;
        assert_int_equal(ferry_client_ack(c, "work", NULL, seqs, n), FERRY_OK);
        acked += n;
    }
    /* Their acks freed space: publishing resumes without a restart. Freed
     * pages are reusable after the commits that freed them: a few tries. */
    st = FERRY_ESTORAGE_FULL;
    for (int tries = 0; tries < 20 && st == FERRY_ESTORAGE_FULL; tries++)
        st = ferry_client_publish(c, "work", &wm, &cf);
    assert_int_equal(st, FERRY_OK);
    assert_int_equal(cf.seq, queued + 1);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "work", &info), FERRY_OK);
    assert_int_equal(info.messages, queued - acked + 1);
    ferry_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_storage_full, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_full_queue_keeps_acking, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("storage_full", tests, NULL, NULL);
}
