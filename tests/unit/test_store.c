/* SPDX-License-Identifier: MIT */
/*
 * test_store.c - the LMDB store on real files in a fresh temporary directory
 * (subscriptions: test_store_subs.c; the fixture: storefx.h):
 * declare, append, dedupe window, read back, delete with sweeps, reopen,
 * format check, directory lock and a full map.
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
test_declare_is_idempotent_and_typed(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "orders", FY_KIND_TOPIC);
    fy_topic_info_t info;
    bool created = true;
    assert_int_equal(fy_store_begin(fx->store, 2000), FERRY_OK);
    assert_int_equal(fy_store_declare(fx->store, B("orders"), FY_KIND_TOPIC, NULL, &info, &created),
                     FERRY_OK);
    assert_false(created);
    assert_int_equal(info.created_ms, 1000);
    assert_int_equal(info.dedupe_window_ms, 120000);
    assert_int_equal(fy_store_declare(fx->store, B("orders"), FY_KIND_QUEUE, NULL, &info, &created),
                     FERRY_EEXISTS);
    assert_int_equal(fy_store_info(fx->store, B("nope"), &info), FERRY_ENOTFOUND);
    assert_int_equal(fy_store_declare(fx->store, B("jobs"), FY_KIND_QUEUE,
                                      &(fy_topic_config_t){.dedupe_window_ms = 5000}, &info,
                                      &created),
                     FERRY_OK);
    assert_true(created);
    assert_int_equal(info.kind, FY_KIND_QUEUE);
    assert_int_equal(info.dedupe_window_ms, 5000);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
}

static void
test_append_read_and_reopen(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "a", FY_KIND_TOPIC);
    sfx_declare(fx, "b", FY_KIND_TOPIC);
    uint64_t seq;
    bool dup;
    char buf[16];
    /* Interleave two topics so that appends to "a" cannot use MDB_APPEND. */
    for (int i = 1; i <= 20; i++) {
        snprintf(buf, sizeof buf, "a%d", i);
        assert_int_equal(sfx_append1(fx, 5000, "a", NULL, buf, &seq, &dup), FERRY_OK);
        assert_int_equal(seq, i);
        assert_false(dup);
        snprintf(buf, sizeof buf, "b%d", i);
        assert_int_equal(sfx_append1(fx, 5000, "b", NULL, buf, &seq, &dup), FERRY_OK);
        assert_int_equal(seq, i);
    }
    fy_store_destroy(&fx->store);
    assert_int_equal(sfx_open(fx, 64 << 20, 120000), FERRY_OK);

    sfx_seen_t seen = {0};
    size_t count;
    assert_int_equal(fy_store_begin(fx->store, 6000), FERRY_OK);
    assert_int_equal(fy_store_read(fx->store, B("a"), 5, 10, SIZE_MAX, sfx_collect, &seen, &count),
                     FERRY_OK);
    assert_int_equal(count, 10);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(seen.seqs[i], 5 + i);
        snprintf(buf, sizeof buf, "a%zu", 5 + i);
        assert_string_equal(seen.payloads[i], buf);
    }
    /* Reading past the end of "a" never runs into "b". */
    seen.n = 0;
    assert_int_equal(fy_store_read(fx->store, B("a"), 18, 10, SIZE_MAX, sfx_collect, &seen, &count),
                     FERRY_OK);
    assert_int_equal(count, 3);
    assert_string_equal(seen.payloads[2], "a20");
    fy_topic_info_t info;
    assert_int_equal(fy_store_info(fx->store, B("b"), &info), FERRY_OK);
    assert_int_equal(info.first_seq, 1);
    assert_int_equal(info.last_seq, 20);
    assert_int_equal(info.messages, 20);
    fy_stats_t st;
    assert_int_equal(fy_store_totals(fx->store, &st), FERRY_OK);
    assert_int_equal(st.topics, 2);
    assert_int_equal(st.messages, 40);
    fy_store_abort(fx->store);
}

static void
test_dedupe_window(void **state)
{
    sfx_t *fx = *state;
    fy_topic_info_t info;
    bool created;
    assert_int_equal(fy_store_begin(fx->store, 0), FERRY_OK);
    assert_int_equal(fy_store_declare(fx->store, B("t"), FY_KIND_TOPIC,
                                      &(fy_topic_config_t){.dedupe_window_ms = 1000}, &info,
                                      &created),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    uint64_t seq;
    bool dup;
    assert_int_equal(sfx_append1(fx, 10000, "t", "x", "one", &seq, &dup), FERRY_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(sfx_append1(fx, 10500, "t", "y", "two", &seq, &dup), FERRY_OK);
    assert_int_equal(seq, 2);
    /* Within the window: the original sequence, not stored again. */
    assert_int_equal(sfx_append1(fx, 10900, "t", "x", "one", &seq, &dup), FERRY_OK);
    assert_int_equal(seq, 1);
    assert_true(dup);
    /* The same id for a different message is refused, not a duplicate. */
    assert_int_equal(sfx_append1(fx, 10900, "t", "x", "again", &seq, &dup), FERRY_EIDREUSED);

    /* Two messages with one id in the same append: the second is a duplicate. */
    fy_pubmeta_t ms[2] = {{.id = B("z")}, {.id = B("z")}};
    fy_bytes_t ps[2] = {B("z1"), B("z1")};
    uint64_t seqs[2];
    bool dups[2];
    assert_int_equal(fy_store_begin(fx->store, 10900), FERRY_OK);
    uint64_t kvers[2];
    fy_conflict_t cf;
    assert_int_equal(fy_store_append(fx->store, B("t"), ms, ps, 2, seqs, dups, kvers, &cf),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(seqs[0], 3);
    assert_false(dups[0]);
    assert_int_equal(seqs[1], 3);
    assert_true(dups[1]);

    /* Sweep at 11200: x (expires 11000) goes, y (11500) and z (11900) stay. */
    bool more;
    assert_int_equal(fy_store_begin(fx->store, 11200), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_false(more);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 11200, "t", "y", "two", &seq, &dup), FERRY_OK);
    assert_true(dup);
    assert_int_equal(seq, 2);
    /* After the window the same id is a new message. */
    assert_int_equal(sfx_append1(fx, 11200, "t", "x", "new", &seq, &dup), FERRY_OK);
    assert_false(dup);
    assert_int_equal(seq, 4);
    /* y expired but not yet swept: still treated as new. */
    assert_int_equal(sfx_append1(fx, 11600, "t", "y", "new-y", &seq, &dup), FERRY_OK);
    assert_false(dup);
    assert_int_equal(seq, 5);
    /* The sweep must not delete the newer entry for y (it belongs to seq 5). */
    assert_int_equal(fy_store_begin(fx->store, 11600), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(sfx_append1(fx, 11700, "t", "y", "new-y", &seq, &dup), FERRY_OK);
    assert_true(dup);
    assert_int_equal(seq, 5);
    /* Once every window has passed, a sweep leaves no entry behind: the
     * index does not grow with every id ever seen (it did, for entries with
     * a content hash: the soak showed 9 million entries for 2.8 million
     * live ones). */
    assert_int_equal(fy_store_begin(fx->store, 1000000), FERRY_OK);
    assert_int_equal(fy_store_sweep(fx->store, 100, &more), FERRY_OK);
    assert_false(more);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    char cmd[800], out[256];
    snprintf(cmd, sizeof cmd,
             "mdb_stat -s dedupe '%s' | sed -n 's/ *Entries: //p'; mdb_stat -s dedupe_exp '%s' | "
             "sed -n 's/ *Entries: //p'",
             fx->dir, fx->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    pclose(p);
    assert_string_equal(out, "0\n0\n");
}

static void
test_delete_and_sweep(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "gone", FY_KIND_QUEUE);
    uint64_t seq;
    bool dup;
    for (int i = 0; i < 30; i++)
        assert_int_equal(sfx_append1(fx, 100, "gone", NULL, "p", &seq, &dup), FERRY_OK);
    assert_int_equal(fy_store_begin(fx->store, 200), FERRY_OK);
    assert_int_equal(fy_store_delete(fx->store, B("gone")), FERRY_OK);
    assert_int_equal(fy_store_delete(fx->store, B("gone")), FERRY_ENOTFOUND);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);

    /* Redeclared at once: a new, empty topic. */
    sfx_declare(fx, "gone", FY_KIND_TOPIC);
    assert_int_equal(sfx_append1(fx, 300, "gone", NULL, "fresh", &seq, &dup), FERRY_OK);
    assert_int_equal(seq, 1);

    /* The old messages go in bounded slices. */
    bool more = true;
    int rounds = 0;
    while (more) {
        assert_int_equal(fy_store_begin(fx->store, 400), FERRY_OK);
        assert_int_equal(fy_store_sweep(fx->store, 8, &more), FERRY_OK);
        assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
        rounds++;
        assert_true(rounds < 10);
    }
    assert_true(rounds >= 4);
    sfx_seen_t seen = {0};
    size_t count;
    assert_int_equal(fy_store_begin(fx->store, 500), FERRY_OK);
    assert_int_equal(
        fy_store_read(fx->store, B("gone"), 1, 50, SIZE_MAX, sfx_collect, &seen, &count), FERRY_OK);
    assert_int_equal(count, 1);
    assert_string_equal(seen.payloads[0], "fresh");
    fy_store_abort(fx->store);
}

static void
test_newer_format_refused(void **state)
{
    sfx_t *fx = *state;
    fy_store_destroy(&fx->store);
    /* Write a future format number with plain LMDB. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 8);
    assert_int_equal(mdb_env_open(env, fx->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t v8[8];
    fy_be64_put(v8, FY_STORE_FORMAT + 1);
    MDB_val k = {6, "format"}, v = {8, v8};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    fy_store_opts_t o = {.dir = fx->dir, .map_size = 64 << 20, .log = &fx->log};
    fy_err_t err;
    assert_int_equal(fy_store_open(&o, &fx->store, &err), FERRY_EFORMAT);
    assert_null(fx->store);
    char want[32];
    snprintf(want, sizeof want, "format %d", FY_STORE_FORMAT + 1);
    assert_non_null(strstr(err.msg, want));
}

static void
test_directory_lock(void **state)
{
    sfx_t *fx = *state;
    fy_store_t *second = NULL;
    fy_store_opts_t o = {.dir = fx->dir, .map_size = 64 << 20, .log = &fx->log};
    fy_err_t err;
    assert_int_equal(fy_store_open(&o, &second, &err), FERRY_EIO);
    assert_non_null(strstr(err.msg, "in use"));
    assert_null(second);
}

static void
test_map_full(void **state)
{
    sfx_t *fx = *state;
    fy_store_destroy(&fx->store);
    fy_rmtree(fx->dir);
    assert_int_equal(fy_tmpdir(fx->dir, sizeof fx->dir), 0);
    assert_int_equal(sfx_open(fx, 256 << 10, 1000), FERRY_OK);
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    char payload[2048];
    memset(payload, 'x', sizeof payload - 1);
    payload[sizeof payload - 1] = 0;
    uint64_t seq, stored = 0;
    bool dup;
    fy_status_t st = FERRY_OK;
    for (int i = 0; i < 1000 && st == FERRY_OK; i++) {
        st = sfx_append1(fx, 10, "t", NULL, payload, &seq, &dup);
        if (st == FERRY_OK)
            stored = seq;
    }
    assert_int_equal(st, FERRY_ESTORAGE_FULL);
    assert_true(stored > 10);
    /* Reads still work and nothing confirmed was lost. */
    fy_topic_info_t info;
    assert_int_equal(fy_store_begin(fx->store, 20), FERRY_OK);
    assert_int_equal(fy_store_info(fx->store, B("t"), &info), FERRY_OK);
    assert_int_equal(info.last_seq, stored);
    assert_int_equal(info.messages, stored);
    fy_store_abort(fx->store);
}

/* ---- per-key index, expectations, delays ---------------------------------- */

static fy_status_t
s_append_n(sfx_t *fx, uint64_t now, const char *topic, const fy_pubmeta_t *ms, size_t n,
           uint64_t *seqs, uint64_t *kvers, fy_conflict_t *cf)
{
    fy_bytes_t ps[16];
    bool dups[16];
    for (size_t i = 0; i < n; i++)
        ps[i] = B("p");
    assert_int_equal(fy_store_begin(fx->store, now), FERRY_OK);
    fy_status_t st = fy_store_append(fx->store, B(topic), ms, ps, n, seqs, dups, kvers, cf);
    if (st == FERRY_OK)
        assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    else
        fy_store_abort(fx->store);
    return st;
}

/* Appends one keyed message; returns its key version. */
static uint64_t
s_keyed(sfx_t *fx, const char *topic, const char *key)
{
    fy_pubmeta_t m = {.key = B(key)};
    uint64_t seq, kver;
    fy_conflict_t cf;
    assert_int_equal(s_append_n(fx, 2000, topic, &m, 1, &seq, &kver, &cf), FERRY_OK);
    return kver;
}

static size_t
s_read_key(sfx_t *fx, const char *topic, const char *key, uint64_t from, uint32_t limit,
           sfx_seen_t *seen, uint64_t *next)
{
    size_t count;
    seen->n = 0;
    assert_int_equal(fy_store_begin(fx->store, 3000), FERRY_OK);
    assert_int_equal(fy_store_read_key(fx->store, B(topic), B(key), from, limit, SIZE_MAX,
                                       sfx_collect, seen, &count, next),
                     FERRY_OK);
    fy_store_abort(fx->store);
    return count;
}

static void
test_key_versions_and_read_by_key(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    /* Keys interleaved with messages without key and with a key that has
     * "a" as a prefix: each key counts its own messages. */
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(s_keyed(fx, "t", "a"), (uint64_t)i);
        assert_int_equal(s_keyed(fx, "t", "ab"), (uint64_t)i);
        uint64_t seq;
        bool dup;
        assert_int_equal(sfx_append1(fx, 2000, "t", NULL, "x", &seq, &dup), FERRY_OK);
    }
    sfx_seen_t seen;
    uint64_t next;
    assert_int_equal(s_read_key(fx, "t", "a", 1, 100, &seen, &next), 20);
    assert_int_equal(next, 0);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(seen.seqs[i], 1 + 3 * i); /* a, ab, none, a, ... */
    /* Paging: each version once. */
    assert_int_equal(s_read_key(fx, "t", "ab", 1, 8, &seen, &next), 8);
    assert_int_equal(next, 9);
    assert_int_equal(seen.seqs[0], 2);
    assert_int_equal(s_read_key(fx, "t", "ab", next, 8, &seen, &next), 8);
    assert_int_equal(next, 17);
    assert_int_equal(seen.seqs[0], 2 + 3 * 8);
    assert_int_equal(s_read_key(fx, "t", "ab", next, 8, &seen, &next), 4);
    assert_int_equal(next, 0);
    assert_int_equal(s_read_key(fx, "t", "zz", 1, 8, &seen, &next), 0);
    assert_int_equal(next, 0);
}

static void
test_key_version_survives_removal(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "q", FY_KIND_QUEUE);
    assert_int_equal(s_keyed(fx, "q", "k"), 1);
    assert_int_equal(s_keyed(fx, "q", "k"), 2);
    fy_sub_info_t info;
    bool created;
    assert_int_equal(fy_store_begin(fx->store, 2100), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B("q"), B(""), NULL, &info, &created), FERRY_OK);
    sfx_got_t got = {0};
    size_t n;
    assert_int_equal(
        fy_store_deliver_new(fx->store, info.id, 10, SIZE_MAX, sfx_on_deliver, &got, &n), FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    /* Acking deletes both messages; the key's count goes on from 2. */
    assert_int_equal(sfx_ack(fx, info.id, 1), FERRY_OK);
    assert_int_equal(sfx_ack(fx, info.id, 2), FERRY_OK);
    sfx_seen_t seen;
    uint64_t next;
    assert_int_equal(s_read_key(fx, "q", "k", 1, 10, &seen, &next), 0);
    assert_int_equal(s_keyed(fx, "q", "k"), 3);
    assert_int_equal(s_read_key(fx, "q", "k", 1, 10, &seen, &next), 1);
    assert_int_equal(seen.seqs[0], 3);
}

static void
test_expectations(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "es", FY_KIND_TOPIC);
    uint64_t seqs[4], kvers[4];
    fy_conflict_t cf;
    /* A new key: expected version 0. */
    fy_pubmeta_t m = {.key = B("order-1"), .id = B("e1"), .has_expect_kver = true};
    assert_int_equal(s_append_n(fx, 2000, "es", &m, 1, seqs, kvers, &cf), FERRY_OK);
    assert_int_equal(kvers[0], 1);
    /* A second writer that saw the same version loses, and learns the truth. */
    m.id = B("e1-other");
    assert_int_equal(s_append_n(fx, 2000, "es", &m, 1, seqs, kvers, &cf), FERRY_ECONFLICT);
    assert_int_equal(cf.kver, 1);
    assert_int_equal(cf.last, 1);
    assert_true(cf.on_key);
    /* The first writer's resend of e1 is a duplicate, not a conflict. */
    m.id = B("e1");
    bool dups[1];
    fy_bytes_t p = B("p");
    assert_int_equal(fy_store_begin(fx->store, 2000), FERRY_OK);
    assert_int_equal(fy_store_append(fx->store, B("es"), &m, &p, 1, seqs, dups, kvers, &cf),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_true(dups[0]);
    assert_int_equal(seqs[0], 1);
    assert_int_equal(kvers[0], 1);
    /* A batch: versions 1 and 2 of the key follow each other inside it. */
    fy_pubmeta_t b[2] = {{.key = B("order-1"), .has_expect_kver = true, .expect_kver = 1},
                         {.key = B("order-1"), .has_expect_kver = true, .expect_kver = 2}};
    assert_int_equal(s_append_n(fx, 2000, "es", b, 2, seqs, kvers, &cf), FERRY_OK);
    assert_int_equal(kvers[0], 2);
    assert_int_equal(kvers[1], 3);
    /* All or nothing: the second expectation fails, the first is not stored. */
    b[0].expect_kver = 3;
    b[1].expect_kver = 3;
    assert_int_equal(s_append_n(fx, 2000, "es", b, 2, seqs, kvers, &cf), FERRY_ECONFLICT);
    assert_int_equal(cf.index, 1);
    assert_int_equal(cf.kver, 4);
    fy_topic_info_t info;
    assert_int_equal(fy_store_begin(fx->store, 2000), FERRY_OK);
    assert_int_equal(fy_store_info(fx->store, B("es"), &info), FERRY_OK);
    fy_store_abort(fx->store);
    assert_int_equal(info.last_seq, 3);
    /* The topic's last sequence. */
    fy_pubmeta_t l = {.has_expect_last = true, .expect_last = 2};
    assert_int_equal(s_append_n(fx, 2000, "es", &l, 1, seqs, kvers, &cf), FERRY_ECONFLICT);
    assert_false(cf.on_key);
    assert_int_equal(cf.last, 3);
    l.expect_last = 3;
    assert_int_equal(s_append_n(fx, 2000, "es", &l, 1, seqs, kvers, &cf), FERRY_OK);
    assert_int_equal(seqs[0], 4);
    assert_int_equal(kvers[0], 0);
}

static void
test_delayed_delivery(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "d", FY_KIND_TOPIC);
    fy_sub_opts_t o = {.start = FY_START_FIRST, .ack_wait_ms = 100000};
    uint64_t sub = sfx_sub(fx, 1000, "d", "s", o);
    /* At t=1000: a message for t=5000, one for now, one with a delay of 2 s. */
    fy_pubmeta_t ms[3] = {{.not_before_ms = 5000}, {.has_data = false}, {.delay_ms = 2000}};
    uint64_t seqs[3], kvers[3];
    fy_conflict_t cf;
    assert_int_equal(s_append_n(fx, 1000, "d", ms, 3, seqs, kvers, &cf), FERRY_OK);
    sfx_got_t got;
    assert_int_equal(sfx_fetch(fx, 1000, sub, &got), 1);
    assert_int_equal(got.seqs[0], 2);
    assert_int_equal(sfx_fetch(fx, 2999, sub, &got), 0); /* not early */
    assert_int_equal(sfx_fetch(fx, 3000, sub, &got), 1);
    assert_int_equal(got.seqs[0], 3);
    assert_int_equal(got.dcs[0], 1); /* its first delivery */
    /* A reopen changes nothing: the wait is on disk. */
    fy_store_destroy(&fx->store);
    assert_int_equal(sfx_open(fx, 64 << 20, 120000), FERRY_OK);
    assert_int_equal(sfx_fetch(fx, 4000, sub, &got), 0);
    assert_int_equal(sfx_fetch(fx, 5000, sub, &got), 1);
    assert_int_equal(got.seqs[0], 1);
    assert_int_equal(got.dcs[0], 1);
    /* A read sees every message at once: the log is not delivery. */
    sfx_seen_t seen = {0};
    size_t count;
    assert_int_equal(fy_store_begin(fx->store, 1000), FERRY_OK);
    assert_int_equal(fy_store_read(fx->store, B("d"), 1, 10, SIZE_MAX, sfx_collect, &seen, &count),
                     FERRY_OK);
    fy_store_abort(fx->store);
    assert_int_equal(count, 3);
}

static void
test_upgrade_from_format_1(void **state)
{
    sfx_t *fx = *state;
    sfx_declare(fx, "t", FY_KIND_TOPIC);
    for (int i = 0; i < 5; i++) {
        s_keyed(fx, "t", "a");
        s_keyed(fx, "t", "b");
    }
    fy_store_destroy(&fx->store);
    /* Make it look like format 1: no per-key index yet. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, kidx;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, fx->dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_dbi_open(txn, "keyidx", 0, &kidx), 0);
    assert_int_equal(mdb_drop(txn, kidx, 1), 0);
    uint8_t v8[8];
    fy_be64_put(v8, 1);
    MDB_val k = {6, "format"}, v = {8, v8};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    assert_int_equal(sfx_open(fx, 64 << 20, 120000), FERRY_OK);
    sfx_seen_t seen;
    uint64_t next;
    assert_int_equal(s_read_key(fx, "t", "b", 1, 100, &seen, &next), 5);
    assert_int_equal(seen.seqs[4], 10);
    assert_int_equal(s_keyed(fx, "t", "b"), 6);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_declare_is_idempotent_and_typed, sfx_setup,
                                        sfx_teardown),
        cmocka_unit_test_setup_teardown(test_append_read_and_reopen, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_window, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_sweep, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_newer_format_refused, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_directory_lock, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_map_full, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_key_versions_and_read_by_key, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_key_version_survives_removal, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_expectations, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_delayed_delivery, sfx_setup, sfx_teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_from_format_1, sfx_setup, sfx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
