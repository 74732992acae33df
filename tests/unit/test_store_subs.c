/* SPDX-License-Identifier: MIT */
/*
 * test_store_subs.c - the LMDB store's subscriptions on real files (the
 * fixture: storefx.h): delivery and the ack floor, start positions, reads
 * cut by bytes, redelivery and dead letters, queues deleting what is acked,
 * retention limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lmdb.h>

#include "fixture.h"
#include "storefx.h"

static void
test_sub_deliver_and_ack_floor(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    sfx_fill(fx, "t", 10);
    uint64_t sub = sfx_sub(fx, 200, "t", "s", (fy_sub_opts_t){.start = FY_START_FIRST});
    sfx_got_t got = {0};
    size_t n;
    assert_int_equal(fy_store_begin(fx->store, 300), FERRY_OK);
    assert_int_equal(fy_store_deliver_new(fx->store, sub, 4, SIZE_MAX, sfx_on_deliver, &got, &n),
                     FERRY_OK);
    assert_int_equal(n, 4);
    assert_int_equal(fy_store_deliver_new(fx->store, sub, 100, SIZE_MAX, sfx_on_deliver, &got, &n),
                     FERRY_OK);
    assert_int_equal(n, 6);
    assert_int_equal(fy_store_deliver_new(fx->store, sub, 100, SIZE_MAX, sfx_on_deliver, &got, &n),
                     FERRY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(got.seqs[i], i + 1);
        assert_int_equal(got.dcs[i], 1);
    }
    /* Out of order acks wait above the floor until the gap closes. */
    assert_int_equal(sfx_ack(fx, sub, 2), FERRY_OK);
    assert_int_equal(sfx_ack(fx, sub, 4), FERRY_OK);
    fy_sub_info_t info;
    assert_int_equal(fy_store_begin(fx->store, 600), FERRY_OK);
    assert_int_equal(fy_store_sub_info(fx->store, sub, &info), FERRY_OK);
    fy_store_abort(fx->store);
    assert_int_equal(info.ack_floor, 0);
    assert_int_equal(sfx_ack(fx, sub, 1), FERRY_OK);
    assert_int_equal(sfx_ack(fx, sub, 3), FERRY_OK);
    assert_int_equal(sfx_ack(fx, sub, 3), FERRY_OK); /* twice is fine */
    assert_int_equal(sfx_ack(fx, sub, 11), FERRY_ESEQ);
    assert_int_equal(sfx_ack(fx, 999, 1), FERRY_ENOTFOUND);
    /* Survives a reopen. */
    fy_store_destroy(&fx->store);
    assert_int_equal(sfx_open(fx, 64 << 20, 120000), FERRY_OK);
    assert_int_equal(fy_store_begin(fx->store, 700), FERRY_OK);
    assert_int_equal(fy_store_sub_info(fx->store, sub, &info), FERRY_OK);
    bool acked;
    assert_int_equal(fy_store_is_acked(fx->store, sub, 5, &acked), FERRY_OK);
    assert_false(acked);
    assert_int_equal(fy_store_is_acked(fx->store, sub, 4, &acked), FERRY_OK);
    assert_true(acked);
    fy_store_abort(fx->store);
    assert_int_equal(info.ack_floor, 4);
    assert_int_equal(info.cursor, 11);
    assert_int_equal(info.last_seq, 10);
    /* The topic keeps its messages: a plain topic is not a work queue. */
    fy_topic_info_t ti;
    assert_int_equal(fy_store_begin(fx->store, 700), FERRY_OK);
    assert_int_equal(fy_store_info(fx->store, B("t"), &ti), FERRY_OK);
    fy_store_abort(fx->store);
    assert_int_equal(ti.messages, 10);
}

static void
test_sub_start_at_time(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "tt", FY_KIND_TOPIC);
    uint64_t seq;
    bool dup;
    for (uint64_t ts = 1000; ts <= 5000; ts += 1000) /* seqs 1..5 stored at 1000..5000 */
        assert_int_equal(sfx_append1(fx, ts, "tt", NULL, "m", &seq, &dup), FERRY_OK);
    const uint64_t at[][2] = {{1, 1}, {1000, 1}, {1500, 2}, {3000, 3}, {4999, 5}, {5001, 6}};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%zu", i);
        fy_sub_opts_t o = {.start = FY_START_TIME, .start_seq = at[i][0]};
        fy_sub_info_t info;
        bool created;
        assert_int_equal(fy_store_begin(fx->store, 6000), FERRY_OK);
        assert_int_equal(fy_store_sub_open(fx->store, B("tt"), B(name), &o, &info, &created),
                         FERRY_OK);
        assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
        if (info.cursor != at[i][1])
            fail_msg("time %llu: cursor %llu, want %llu", (unsigned long long)at[i][0],
                     (unsigned long long)info.cursor, (unsigned long long)at[i][1]);
        assert_int_equal(info.ack_floor, at[i][1] - 1);
    }
}

static void
test_sub_start_positions(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    sfx_declare(fx, "q", FY_KIND_QUEUE);
    sfx_fill(fx, "t", 5);
    fy_sub_info_t info;
    bool created;
    fy_sub_opts_t o = {.start = FY_START_NEW};
    assert_int_equal(fy_store_begin(fx->store, 1), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B("t"), B("new"), &o, &info, &created), FERRY_OK);
    assert_true(created);
    assert_int_equal(info.cursor, 6);
    assert_int_equal(info.ack_wait_ms, 30000);
    assert_int_equal(info.max_deliver, 5);
    o = (fy_sub_opts_t){.start = FY_START_SEQ, .start_seq = 3, .ack_wait_ms = 50};
    assert_int_equal(fy_store_sub_open(fx->store, B("t"), B("mid"), &o, &info, &created), FERRY_OK);
    assert_int_equal(info.cursor, 3);
    assert_int_equal(info.ack_floor, 2);
    /* Opening again finds it; options of an existing subscription stay. */
    assert_int_equal(fy_store_sub_open(fx->store, B("t"), B("mid"), &o, &info, &created), FERRY_OK);
    assert_false(created);
    assert_int_equal(info.ack_wait_ms, 50);
    /* A queue's one subscription is "", created with the queue. */
    assert_int_equal(fy_store_sub_open(fx->store, B("q"), B(""), &o, &info, &created), FERRY_OK);
    assert_false(created);
    assert_int_equal(info.kind, FY_KIND_QUEUE);
    assert_int_equal(fy_store_sub_open(fx->store, B("q"), B("x"), &o, &info, &created),
                     FERRY_EFIELD);
    assert_int_equal(fy_store_sub_open(fx->store, B("t"), B(""), &o, &info, &created),
                     FERRY_EFIELD);
    assert_int_equal(fy_store_sub_open(fx->store, B("nope"), B("x"), &o, &info, &created),
                     FERRY_ENOTFOUND);
    assert_int_equal(fy_store_sub_delete(fx->store, B("t"), B("new")), FERRY_OK);
    assert_int_equal(fy_store_sub_delete(fx->store, B("t"), B("new")), FERRY_ENOTFOUND);
    assert_int_equal(fy_store_sub_delete(fx->store, B("q"), B("")), FERRY_EFIELD);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
}

/* A subscription keeps the user who declared it (format 5), with its
 * filter and topic intact beside it, across a restart; one declared
 * without an owner has none. */
static void
test_sub_owner(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "orders.eu", FY_KIND_TOPIC);
    fy_sub_info_t info;
    bool created;
    fy_sub_opts_t o = {.start = FY_START_FIRST, .filter = B("eu.*"), .owner = B("alice.b-1")};
    assert_int_equal(fy_store_begin(fx->store, 1), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B("orders.eu"), B("s"), &o, &info, &created),
                     FERRY_OK);
    assert_string_equal(info.owner, "alice.b-1");
    o.owner = B("");
    o.filter = B("");
    assert_int_equal(fy_store_sub_open(fx->store, B("orders.eu"), B("anyone"), &o, &info, &created),
                     FERRY_OK);
    assert_string_equal(info.owner, "");
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    fy_store_destroy(&fx->store);
    assert_int_equal(sfx_open(fx, 64 << 20, 120000), FERRY_OK);
    assert_int_equal(fy_store_begin(fx->store, 2), FERRY_OK);
    o.owner = B("mallory"); /* finding it does not change its owner */
    assert_int_equal(fy_store_sub_open(fx->store, B("orders.eu"), B("s"), &o, &info, &created),
                     FERRY_OK);
    assert_false(created);
    assert_string_equal(info.owner, "alice.b-1");
    assert_int_equal(
        fy_store_sub_open(fx->store, B("orders.eu"), B("anyone"), NULL, &info, &created), FERRY_OK);
    assert_string_equal(info.owner, "");
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    /* The filter still applies (sfx_fill's messages have no key: none
     * matches eu.*), and "anyone", without one, gets both. */
    uint64_t anyone = info.id;
    sfx_fill(fx, "orders.eu", 2);
    assert_int_equal(fy_store_begin(fx->store, 3), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B("orders.eu"), B("s"), NULL, &info, &created),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    sfx_got_t got = {0};
    assert_int_equal(sfx_fetch(fx, 4, info.id, &got), 0);
    assert_int_equal(sfx_fetch(fx, 4, anyone, &got), 2);
}

/* Reads stop at their byte budget (the rest comes with the next read, in
 * order, none lost); the first message always goes, whatever its size. */
static void
test_reads_cut_by_bytes(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "big", FY_KIND_TOPIC);
    static char payload[10001];
    memset(payload, 'p', 10000);
    uint64_t seq;
    bool dup;
    for (int i = 0; i < 40; i++)
        assert_int_equal(sfx_append1(fx, 100, "big", NULL, payload, &seq, &dup), FERRY_OK);
    const size_t cost = FY_STORED_OVERHEAD + 10000, budget = 6 * cost + cost / 2;
    size_t n;
    sfx_got_t got = {0};
    assert_int_equal(fy_store_begin(fx->store, 200), FERRY_OK);
    assert_int_equal(fy_store_read(fx->store, B("big"), 1, 100, budget, sfx_get_any, &got, &n),
                     FERRY_OK);
    assert_int_equal(n, 6);
    assert_int_equal(got.seqs[5], 6);
    got.n = 0;
    assert_int_equal(fy_store_read(fx->store, B("big"), 7, 100, 1, sfx_get_any, &got, &n),
                     FERRY_OK);
    assert_int_equal(n, 1); /* one message always goes */
    assert_int_equal(got.seqs[0], 7);
    fy_store_abort(fx->store);

    uint64_t sub =
        sfx_sub(fx, 300, "big", "s", (fy_sub_opts_t){.start = FY_START_FIRST, .ack_wait_ms = 100});
    /* New messages: six per reply, the cursor stays on the one left out. */
    got.n = 0;
    assert_int_equal(fy_store_begin(fx->store, 400), FERRY_OK);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(
            fy_store_deliver_new(fx->store, sub, 100, budget, sfx_on_deliver, &got, &n), FERRY_OK);
        assert_int_equal(n, 6);
    }
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    for (size_t i = 0; i < got.n; i++)
        assert_int_equal(got.seqs[i], i + 1);
    /* Their ack wait passes: fetches take the redeliveries six at a time
     * (those left out stay due), then the new messages, each once, in order. */
    size_t due;
    bool more;
    got.n = 0;
    assert_int_equal(fy_store_begin(fx->store, 1000), FERRY_OK);
    assert_int_equal(fy_store_timers_due(fx->store, 1000, &due, &more), FERRY_OK);
    size_t rounds = 0;
    do {
        assert_int_equal(fy_store_fetch(fx->store, sub, 1000, budget, sfx_on_deliver, &got, &n),
                         FERRY_OK);
        assert_true(n <= 6);
        rounds++;
    } while (n > 0 && rounds < 20);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(got.n, 40);
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(got.seqs[i], i + 1);
        assert_int_equal(got.dcs[i], i < 18 ? 2 : 1);
    }
}

static void
test_sub_redelivery_and_dead_letters(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    sfx_fill(fx, "t", 5);
    uint64_t sub =
        sfx_sub(fx, 1000, "t", "s",
                (fy_sub_opts_t){.start = FY_START_FIRST, .ack_wait_ms = 100, .max_deliver = 3});
    sfx_got_t got = {0};
    assert_int_equal(sfx_fetch(fx, 1000, sub, &got), 5);
    assert_int_equal(sfx_ack(fx, sub, 1), FERRY_OK);
    assert_int_equal(sfx_ack(fx, sub, 3), FERRY_OK);
    /* Before the ack wait passes nothing comes again. */
    assert_int_equal(sfx_fetch(fx, 1099, sub, &got), 0);
    /* Then the unacked 2, 4, 5, as second deliveries. */
    assert_int_equal(sfx_fetch(fx, 1100, sub, &got), 3);
    assert_int_equal(got.seqs[0], 2);
    assert_int_equal(got.seqs[1], 4);
    assert_int_equal(got.seqs[2], 5);
    assert_int_equal(got.dcs[0], 2);
    assert_int_equal(got.dcs[2], 2);
    /* A nack without delay is due at once. */
    assert_int_equal(fy_store_begin(fx->store, 1100), FERRY_OK);
    assert_int_equal(fy_store_nack(fx->store, sub, 4, 0), FERRY_OK);
    assert_int_equal(fy_store_nack(fx->store, sub, 9, 0), FERRY_ESEQ);
    assert_int_equal(fy_store_nack(fx->store, sub, 1, 0), FERRY_OK); /* acked: nothing */
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(sfx_fetch(fx, 1100, sub, &got), 1);
    assert_int_equal(got.seqs[0], 4);
    assert_int_equal(got.dcs[0], 3);
    /* At 1200 2 and 5 come a third time; 4 would be a fourth: dead-lettered. */
    assert_int_equal(sfx_fetch(fx, 1200, sub, &got), 2);
    assert_int_equal(got.seqs[0], 2);
    assert_int_equal(got.seqs[1], 5);
    assert_int_equal(got.dcs[1], 3);
    /* A nack with a delay waits for it. */
    assert_int_equal(fy_store_begin(fx->store, 1200), FERRY_OK);
    assert_int_equal(fy_store_nack(fx->store, sub, 5, 50), FERRY_OK);
    assert_int_equal(fy_store_ack(fx->store, sub, 2), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(sfx_fetch(fx, 1249, sub, &got), 0);
    assert_int_equal(sfx_fetch(fx, 1250, sub, &got), 0); /* 5 is exhausted too */
    /* The dead-letter topic holds 4 and 5 with the reason; the subscription has none left. */
    sfx_seen_t seen = {0};
    size_t n;
    fy_sub_info_t info;
    fy_topic_info_t ti;
    assert_int_equal(fy_store_begin(fx->store, 1300), FERRY_OK);
    assert_int_equal(fy_store_read(fx->store, B("t.dlq"), 1, 10, SIZE_MAX, sfx_collect, &seen, &n),
                     FERRY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(fy_store_sub_info(fx->store, sub, &info), FERRY_OK);
    assert_int_equal(info.ack_floor, 5);
    assert_int_equal(fy_store_info(fx->store, B("t"), &ti), FERRY_OK);
    assert_int_equal(ti.messages, 5); /* a topic keeps its messages */
    fy_store_abort(fx->store);
    assert_string_equal(seen.payloads[0], "m");
}

static void
test_queue_ack_deletes(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "q", FY_KIND_QUEUE);
    sfx_fill(fx, "q", 5);
    fy_sub_info_t info;
    bool created;
    fy_sub_opts_t o = {0};
    assert_int_equal(fy_store_begin(fx->store, 1), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B("q"), B(""), &o, &info, &created), FERRY_OK);
    sfx_got_t got = {0};
    size_t n;
    assert_int_equal(
        fy_store_deliver_new(fx->store, info.id, 10, SIZE_MAX, sfx_on_deliver, &got, &n), FERRY_OK);
    assert_int_equal(n, 5);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    fy_topic_info_t ti;
    uint64_t acks[] = {2, 1, 5};
    uint64_t left[] = {4, 3, 2}, first[] = {1, 3, 3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sfx_ack(fx, info.id, acks[i]), FERRY_OK);
        assert_int_equal(fy_store_begin(fx->store, 2), FERRY_OK);
        assert_int_equal(fy_store_info(fx->store, B("q"), &ti), FERRY_OK);
        fy_store_abort(fx->store);
        assert_int_equal(ti.messages, left[i]);
        assert_int_equal(ti.first_seq, first[i]);
    }
    assert_int_equal(sfx_ack(fx, info.id, 3), FERRY_OK);
    assert_int_equal(sfx_ack(fx, info.id, 4), FERRY_OK);
    assert_int_equal(fy_store_begin(fx->store, 2), FERRY_OK);
    assert_int_equal(fy_store_info(fx->store, B("q"), &ti), FERRY_OK);
    assert_int_equal(ti.messages, 0);
    assert_int_equal(ti.bytes, 0);
    assert_int_equal(ti.last_seq, 5);
    sfx_seen_t seen = {0};
    assert_int_equal(fy_store_read(fx->store, B("q"), 1, 10, SIZE_MAX, sfx_collect, &seen, &n),
                     FERRY_OK);
    assert_int_equal(n, 0);
    fy_store_abort(fx->store);
    /* Deleting the queue drops its subscription in the sweep. */
    assert_int_equal(fy_store_begin(fx->store, 3), FERRY_OK);
    assert_int_equal(fy_store_delete(fx->store, B("q")), FERRY_OK);
    bool more;
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(fy_store_begin(fx->store, 4), FERRY_OK);
    assert_int_equal(fy_store_sub_info(fx->store, info.id, &info), FERRY_ENOTFOUND);
    fy_store_abort(fx->store);
}

static void
s_declare_cfg(sfx_t *fx, const char *name, fy_topic_config_t cfg)
{
    fy_topic_info_t info;
    bool created;
    assert_int_equal(fy_store_begin(fx->store, 1000), FERRY_OK);
    assert_int_equal(fy_store_declare(fx->store, B(name), FY_KIND_TOPIC, &cfg, &info, &created),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
}

static fy_topic_info_t
s_info(sfx_t *fx, uint64_t now, const char *name)
{
    fy_topic_info_t info;
    assert_int_equal(fy_store_begin(fx->store, now), FERRY_OK);
    assert_int_equal(fy_store_info(fx->store, B(name), &info), FERRY_OK);
    fy_store_abort(fx->store);
    return info;
}

static void
test_retention_limits(void **state)
{
    sfx_t *fx = *state;
    uint64_t seq;
    bool dup;
    /* max_msgs, drop oldest. */
    s_declare_cfg(fx, "last5", (fy_topic_config_t){.max_msgs = 5});
    for (int i = 0; i < 12; i++)
        assert_int_equal(sfx_append1(fx, 100, "last5", NULL, "0123456789", &seq, &dup), FERRY_OK);
    fy_topic_info_t ti = s_info(fx, 100, "last5");
    assert_int_equal(ti.messages, 5);
    assert_int_equal(ti.first_seq, 8);
    assert_int_equal(ti.last_seq, 12);
    assert_int_equal(ti.bytes, 50);
    assert_int_equal(ti.max_msgs, 5);
    sfx_seen_t seen = {0};
    size_t n;
    assert_int_equal(fy_store_begin(fx->store, 100), FERRY_OK);
    assert_int_equal(fy_store_read(fx->store, B("last5"), 1, 100, SIZE_MAX, sfx_collect, &seen, &n),
                     FERRY_OK);
    fy_store_abort(fx->store);
    assert_int_equal(n, 5);
    assert_int_equal(seen.seqs[0], 8);
    /* max_bytes, refuse new: nothing of a refused publish is stored. */
    s_declare_cfg(fx, "cap", (fy_topic_config_t){.max_bytes = 25, .discard_new = true});
    assert_int_equal(sfx_append1(fx, 100, "cap", NULL, "0123456789", &seq, &dup), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 100, "cap", NULL, "0123456789", &seq, &dup), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 100, "cap", NULL, "0123456789", &seq, &dup), FERRY_ELIMIT);
    assert_int_equal(sfx_append1(fx, 100, "cap", NULL, "01234", &seq, &dup), FERRY_OK);
    ti = s_info(fx, 100, "cap");
    assert_int_equal(ti.messages, 3);
    assert_int_equal(ti.bytes, 25);
    assert_true(ti.discard_new);
    /* max_age: the sweep removes what is older, oldest first. */
    s_declare_cfg(fx, "fresh", (fy_topic_config_t){.max_age_ms = 1000});
    assert_int_equal(sfx_append1(fx, 1000, "fresh", NULL, "a", &seq, &dup), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 1500, "fresh", NULL, "b", &seq, &dup), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 2200, "fresh", NULL, "c", &seq, &dup), FERRY_OK);
    bool more;
    assert_int_equal(fy_store_begin(fx->store, 2600), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    ti = s_info(fx, 2600, "fresh");
    assert_int_equal(ti.messages, 1);
    assert_int_equal(ti.first_seq, 3);
    /* A subscription behind the trimmed front simply continues at the first kept. */
    uint64_t sub =
        sfx_sub(fx, 2600, "last5", "late", (fy_sub_opts_t){.start = FY_START_SEQ, .start_seq = 1});
    sfx_got_t got = {0};
    assert_int_equal(fy_store_begin(fx->store, 2700), FERRY_OK);
    assert_int_equal(fy_store_deliver_new(fx->store, sub, 100, SIZE_MAX, sfx_on_deliver, &got, &n),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(n, 5);
    assert_int_equal(got.seqs[0], 8);

    /* Interest: a message goes once every subscription acked it. */
    s_declare_cfg(fx, "fan", (fy_topic_config_t){.interest = true});
    for (int i = 0; i < 5; i++)
        assert_int_equal(sfx_append1(fx, 3000, "fan", NULL, "m", &seq, &dup), FERRY_OK);
    uint64_t a = sfx_sub(fx, 3000, "fan", "a", (fy_sub_opts_t){.start = FY_START_FIRST});
    uint64_t b = sfx_sub(fx, 3000, "fan", "b", (fy_sub_opts_t){.start = FY_START_FIRST});
    sfx_got_t ga = {0}, gb = {0};
    assert_int_equal(fy_store_begin(fx->store, 3000), FERRY_OK);
    assert_int_equal(fy_store_deliver_new(fx->store, a, 10, SIZE_MAX, sfx_on_deliver, &ga, &n),
                     FERRY_OK);
    assert_int_equal(fy_store_deliver_new(fx->store, b, 10, SIZE_MAX, sfx_on_deliver, &gb, &n),
                     FERRY_OK);
    for (uint64_t s2 = 1; s2 <= 3; s2++)
        assert_int_equal(fy_store_ack(fx->store, a, s2), FERRY_OK);
    for (uint64_t s2 = 1; s2 <= 2; s2++)
        assert_int_equal(fy_store_ack(fx->store, b, s2), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    ti = s_info(fx, 3000, "fan");
    assert_int_equal(ti.messages, 3); /* 1 and 2: acked by both */
    assert_int_equal(ti.first_seq, 3);
    assert_true(ti.interest);
    assert_int_equal(fy_store_begin(fx->store, 3000), FERRY_OK);
    assert_int_equal(fy_store_ack(fx->store, b, 3), FERRY_OK);
    assert_int_equal(fy_store_ack(fx->store, b, 4), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    ti = s_info(fx, 3000, "fan");
    assert_int_equal(ti.messages, 2); /* 4 is still wanted by a */
    assert_int_equal(ti.first_seq, 4);
}

/* After a restart the deliveries in flight come back at the given time,
 * not after their whole ack wait: first deliveries (a timer for their
 * range) and redeliveries (their own deadlines) alike; an earlier deadline
 * stays. */
static void
test_pull_deadlines_after_restart(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    sfx_fill(fx, "t", 6);
    uint64_t sub =
        sfx_sub(fx, 1000, "t", "s", (fy_sub_opts_t){.start = FY_START_FIRST, .ack_wait_ms = 30000});
    sfx_got_t got = {0};
    assert_int_equal(sfx_fetch(fx, 1000, sub, &got), 6);
    assert_int_equal(sfx_ack(fx, sub, 2), FERRY_OK);
    /* 1, 3-6 are held; they come back at 31000 ... */
    assert_int_equal(sfx_fetch(fx, 31000, sub, &got), 5);
    assert_int_equal(got.dcs[0], 2);
    /* ... and again at 61000, unless a restart pulls them in to 35000. */
    size_t moved = 0;
    assert_int_equal(fy_store_begin(fx->store, 32000), FERRY_OK);
    assert_int_equal(fy_store_pull_deadlines(fx->store, 35000, &moved), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_true(moved >= 1);
    assert_int_equal(sfx_fetch(fx, 34999, sub, &got), 0);
    assert_int_equal(sfx_fetch(fx, 35000, sub, &got), 5);
    assert_int_equal(got.seqs[0], 1);
    assert_int_equal(got.seqs[1], 3);
    assert_int_equal(got.dcs[0], 3);
    /* New deliveries: their timer (at 65000) is pulled in to 40000; a
     * deadline already earlier than the limit is left alone. */
    sfx_fill(fx, "t", 2);
    assert_int_equal(sfx_fetch(fx, 35000, sub, &got), 2);
    assert_int_equal(fy_store_begin(fx->store, 36000), FERRY_OK);
    assert_int_equal(fy_store_pull_deadlines(fx->store, 99000, &moved), FERRY_OK);
    assert_int_equal(moved, 0);
    assert_int_equal(fy_store_pull_deadlines(fx->store, 40000, &moved), FERRY_OK);
    assert_true(moved >= 1);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(sfx_fetch(fx, 40000, sub, &got), 7); /* 1, 3-8 */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sub_deliver_and_ack_floor, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_start_at_time, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_owner, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_start_positions, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_reads_cut_by_bytes, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_redelivery_and_dead_letters, sfx_setup,
                                        sfx_teardown),
        cmocka_unit_test_setup_teardown(test_queue_ack_deletes, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_retention_limits, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_pull_deadlines_after_restart, sfx_setup, sfx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("store_subs", tests, NULL, NULL);
}
