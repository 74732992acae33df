/* SPDX-License-Identifier: MIT */
/*
 * test_crash.c - confirmed publishes survive kill -9.
 *
 * A publisher sends messages with ids m-0..m-(N-1) through the async window.
 * Five times, at a random point, ferryd is killed with SIGKILL while
 * publishes are in flight, then restarted on the same data. After every
 * restart: each confirmed message is stored exactly once, with its confirmed
 * sequence, in publish order. The publisher then resends from the first
 * unconfirmed message with the same ids: those the broker had stored before
 * the kill come back as duplicates with their original sequence. At the end
 * the topic holds every message exactly once, in order.
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

typedef struct {
    uint64_t *seq;    /* confirmed sequence per message index; 0 = not confirmed */
    uint32_t *calls;  /* confirm callbacks per index in the current round */
    size_t confirmed; /* distinct indexes confirmed */
    size_t dups;      /* confirms flagged duplicate */
    size_t failures;  /* confirms with an error status (e.g. ECLOSED) */
    bool mismatch;    /* a duplicate confirm disagreed with an earlier sequence */
} s_book_t;

typedef struct {
    s_book_t *book;
    size_t index;
} s_ref_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_ref_t *ref = user;
    s_book_t *b = ref->book;
    b->calls[ref->index]++;
    if (cf->status != FERRY_OK) {
        b->failures++;
        return;
    }
    if (cf->duplicate)
        b->dups++;
    if (b->seq[ref->index] == 0) {
        b->seq[ref->index] = cf->seq;
        b->confirmed++;
    } else if (b->seq[ref->index] != cf->seq) {
        b->mismatch = true;
    }
}

/* Checks the stored topic against what was confirmed; returns stored count. */
static size_t
s_verify(const char *endpoint, const s_book_t *b, size_t n)
{
    ferry_client_t *c = fy_connect(endpoint, 10000, 100);
    assert_non_null(c);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(c, "crash", &all, &count), FERRY_OK);
    ferry_client_destroy(&c);
    /* Stored messages: ids unique, in index order, sequences dense from 1. */
    long last_index = -1;
    for (size_t i = 0; i < count; i++) {
        long idx;
        assert_int_equal(sscanf(all[i].id, "m-%ld", &idx), 1);
        assert_true(idx > last_index); /* in order, and no id twice */
        assert_true((size_t)idx < n);
        last_index = idx;
        assert_int_equal(all[i].seq, i + 1);
        char expect[32];
        snprintf(expect, sizeof expect, "payload-%ld", idx);
        assert_string_equal(all[i].payload, expect);
        /* A confirmed message is stored with the sequence it was confirmed with. */
        if (b->seq[idx])
            assert_int_equal(b->seq[idx], all[i].seq);
    }
    /* Every confirmed message is present (its sequence points at its id). */
    for (size_t idx = 0; idx < n; idx++) {
        if (!b->seq[idx])
            continue;
        assert_true(b->seq[idx] <= count);
        long got;
        assert_int_equal(sscanf(all[b->seq[idx] - 1].id, "m-%ld", &got), 1);
        assert_int_equal((size_t)got, idx);
    }
    free(all);
    return count;
}

static void
test_kill9_loses_no_confirmed_message(void **state)
{
    fy_ferryd_t *d = *state;
    const bool quick = getenv("FERRY_TEST_QUICK") != NULL;
    const size_t n = quick ? 10000 : 120000;
    const int kills = 5;
    unsigned seed = (unsigned)time(NULL);
    if (getenv("FERRY_TEST_SEED"))
        seed = (unsigned)strtoul(getenv("FERRY_TEST_SEED"), NULL, 10);
    printf("crash test: %zu messages, %d kills, seed %u\n", n, kills, seed);
    srand(seed);

    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 1000);
    assert_non_null(c);
    /* A dedupe window much longer than the test. */
    ferry_topic_config_t cfg = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "crash", &cfg, NULL, NULL),
                     FERRY_OK);
    ferry_client_destroy(&c);

    s_book_t book = {.seq = calloc(n, sizeof(uint64_t)), .calls = calloc(n, sizeof(uint32_t))};
    s_ref_t *refs = calloc(n, sizeof *refs);
    for (size_t i = 0; i < n; i++)
        refs[i] = (s_ref_t){&book, i};

    size_t next = 0; /* first index not yet confirmed */
    for (int round = 0; round <= kills; round++) {
        bool kill_this_round = round < kills;
        size_t remaining = n - next;
        /* Kill somewhere in the first part of what is left, so every round has work. */
        size_t kill_at = kill_this_round
                             ? next + 1 + (size_t)rand() % (remaining / (kills - round + 1))
                             : SIZE_MAX;
        c = fy_connect(d->endpoint, 10000, 1000);
        assert_non_null(c);
        memset(book.calls, 0, n * sizeof(uint32_t));
        size_t sent_from = next, sent_to = next;
        char id[32], payload[32];
        for (size_t i = next; i < n; i++) {
            if (i == kill_at) {
                /* Publishes are in flight (window up to 1000): kill now. */
                kill(d->pid, SIGKILL);
            }
            snprintf(id, sizeof id, "m-%zu", i);
            int len = snprintf(payload, sizeof payload, "payload-%zu", i);
            ferry_message_t m = {.data = payload, .len = (size_t)len, .id = id};
            ferry_status_t st = ferry_client_publish_async(c, "crash", &m, s_on_confirm, &refs[i]);
            if (st != FERRY_OK) {
                assert_true(i >= kill_at); /* only a dead broker stops us */
                break;
            }
            sent_to = i + 1;
            if (i >= kill_at && ferry_client_in_flight(c) >= 1000)
                break; /* the window is full and nobody will answer */
        }
        if (kill_this_round) {
            fy_ferryd_signal(d, SIGKILL); /* reap it */
            ferry_client_poll(c, 50);
        } else {
            assert_int_equal(ferry_client_flush(c, 60000), FERRY_OK);
        }
        ferry_client_destroy(&c); /* unconfirmed ones get ECLOSED */
        /* Every publish sent in this round got exactly one callback. */
        for (size_t i = sent_from; i < sent_to; i++)
            assert_int_equal(book.calls[i], 1);
        assert_false(book.mismatch);

        if (kill_this_round)
            assert_int_equal(fy_ferryd_start(d), 0);
        size_t stored = s_verify(d->endpoint, &book, n);
        while (next < n && book.seq[next])
            next++;
        printf("round %d: sent %zu..%zu, confirmed %zu, stored %zu, duplicates %zu\n", round,
               sent_from, sent_to, book.confirmed, stored, book.dups);
        /* Nothing after the first unconfirmed message was confirmed. */
        for (size_t i = next; i < n; i++)
            assert_int_equal(book.seq[i], 0);
    }
    assert_int_equal(book.confirmed, n);
    assert_int_equal(next, n);
    assert_int_equal(s_verify(d->endpoint, &book, n), n);
    free(book.seq);
    free(book.calls);
    free(refs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_loses_no_confirmed_message, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
