/* SPDX-License-Identifier: MIT */
/*
 * test_cluster.c - three ferryd nodes replicating through libraft
 * (docs/cluster.md), as real processes on loopback.
 *
 * - The leader is killed with SIGKILL while a client publishes with ids
 *   through its window to all three nodes: every publish is confirmed once,
 *   the topic holds each message once, in order, with the sequence it was
 *   confirmed with, and the three nodes' stores are the same, database by
 *   database, key by key (read from their LMDB files).
 * - A follower whose data directory is wiped comes back from a snapshot.
 * - A client that knows only a follower is sent to the leader; a node
 *   without a quorum confirms nothing.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <lmdb.h>

#include "clock.h"
#include "ferry.h"
#include "clusterfx.h"
#include "fixture.h"
#include "harness.h"

#define S_NODES 3

static int
s_setup(void **state)
{
    fy_cluster_fx_t *cl = calloc(1, sizeof *cl);
    *state = cl;
    return cl && fy_cluster_init(cl, S_NODES) == 0 ? 0 : -1;
}

static int
s_teardown(void **state)
{
    fy_cluster_fx_t *cl = *state;
    if (cl)
        fy_cluster_cleanup(cl);
    free(cl);
    return 0;
}

static void
s_start(fy_cluster_fx_t *cl, int i)
{
    if (fy_cluster_start(cl, i) != 0)
        fail_msg("node %d did not start", i + 1);
}

static int
s_leader(fy_cluster_fx_t *cl, int ms)
{
    return fy_cluster_leader(cl, ms);
}

static ferry_client_t *
s_client(fy_cluster_fx_t *cl, int only, int timeout_ms, size_t window)
{
    ferry_client_t *c = fy_cluster_client(cl, only, timeout_ms, window);
    if (!c)
        fail_msg("cannot connect to the cluster");
    return c;
}

/* ---- the nodes' stores, read from their files ------------------------------ */

static const char *const s_dbs[] = {"meta",   "topics",  "messages", "dedupe", "dedupe_exp",
                                    "subs",   "deleted", "sub_ids",  "acks",   "pend",
                                    "timers", "due",     "keyidx"};

typedef struct {
    uint64_t index;  /* the last entry applied */
    uint64_t digest; /* of every database's keys and values, in order */
    uint64_t records;
} s_state_t;

static uint64_t
s_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static bool
s_read_state(const fy_ferryd_t *d, s_state_t *out)
{
    char dir[320];
    snprintf(dir, sizeof dir, "%s/data", d->dir);
    MDB_env *env;
    MDB_txn *txn;
    *out = (s_state_t){0};
    if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 16) ||
        mdb_env_set_mapsize(env, 8ull << 30) || mdb_env_open(env, dir, MDB_RDONLY, 0600)) {
        mdb_env_close(env);
        return false;
    }
    bool ok = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; ok && i < sizeof s_dbs / sizeof s_dbs[0]; i++) {
        MDB_dbi dbi;
        MDB_cursor *cur;
        if (mdb_dbi_open(txn, s_dbs[i], 0, &dbi) || mdb_cursor_open(txn, dbi, &cur)) {
            ok = false;
            break;
        }
        h = s_fnv(h, s_dbs[i], strlen(s_dbs[i]));
        MDB_val k, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            if (i == 0 && k.mv_size == 10 && memcmp(k.mv_data, "raft_index", 10) == 0 &&
                v.mv_size == 8) {
                for (int b = 0; b < 8; b++)
                    out->index = out->index << 8 | ((const uint8_t *)v.mv_data)[b];
            }
            h = s_fnv(s_fnv(h, &k.mv_size, sizeof k.mv_size), k.mv_data, k.mv_size);
            h = s_fnv(s_fnv(h, &v.mv_size, sizeof v.mv_size), v.mv_data, v.mv_size);
            out->records++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    if (ok)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    out->digest = h;
    return ok;
}

/* Waits until every live node applied the same last entry, then says
 * whether their stores are the same. */
static void
s_assert_same_state(fy_cluster_fx_t *cl)
{
    s_state_t st[FY_CLUSTER_FX_MAX] = {0};
    int live[FY_CLUSTER_FX_MAX], nlive = 0;
    for (int i = 0; i < cl->n; i++)
        if (cl->node[i].pid)
            live[nlive++] = i;
    assert_true(nlive >= 2);
    long long until = fy_now_ms() + 20000;
    for (;;) {
        bool same = true;
        for (int k = 0; k < nlive; k++) {
            assert_true(s_read_state(&cl->node[live[k]], &st[k]));
            same = same && st[k].index == st[0].index;
        }
        if (same)
            break;
        if (fy_now_ms() > until) {
            for (int k = 0; k < nlive; k++)
                fprintf(stderr, "node %d applied %llu\n", live[k] + 1,
                        (unsigned long long)st[k].index);
            fail_msg("the nodes did not catch up");
        }
        fy_sleep_ms(20);
    }
    for (int k = 1; k < nlive; k++)
        if (st[k].digest != st[0].digest || st[k].records != st[0].records)
            fail_msg("node %d's store differs from node %d's at entry %llu (%llu and %llu records)",
                     live[k] + 1, live[0] + 1, (unsigned long long)st[0].index,
                     (unsigned long long)st[k].records, (unsigned long long)st[0].records);
    printf("the %d stores agree at entry %llu: %llu records\n", nlive,
           (unsigned long long)st[0].index, (unsigned long long)st[0].records);
}

/* ---- publishes across failover ------------------------------------------- */

typedef struct {
    uint64_t *seq;    /* confirmed sequence per index; 0 = not yet */
    size_t confirmed; /* distinct indexes confirmed */
    size_t failures;  /* confirms with an error */
    size_t again;     /* confirms for an index confirmed before */
    size_t dups;      /* confirms flagged duplicate */
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
    if (cf->status != FERRY_OK) {
        b->failures++;
        return;
    }
    b->dups += cf->duplicate;
    if (b->seq[ref->index]) {
        b->again++;
        return;
    }
    b->seq[ref->index] = cf->seq;
    b->confirmed++;
}

/* The topic holds message 0..n-1 once each, in order, each with the
 * sequence it was confirmed with. */
static void
s_verify(fy_cluster_fx_t *cl, const s_book_t *b, size_t n)
{
    ferry_client_t *c = s_client(cl, -1, 10000, 100);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(c, "cl", &all, &count), FERRY_OK);
    ferry_client_destroy(&c);
    assert_int_equal(count, n);
    for (size_t i = 0; i < count; i++) {
        char id[32], payload[32];
        snprintf(id, sizeof id, "m-%zu", i);
        snprintf(payload, sizeof payload, "payload-%zu", i);
        assert_string_equal(all[i].id, id);
        assert_string_equal(all[i].payload, payload);
        assert_int_equal(all[i].seq, i + 1);
        assert_int_equal(b->seq[i], i + 1);
    }
    free(all);
}

static void
test_leader_killed_loses_no_confirmed_publish(void **state)
{
    fy_cluster_fx_t *cl = *state;
    const bool quick = getenv("FERRY_TEST_QUICK") != NULL;
    const size_t n = quick ? 20000 : 100000;
    const int kills = quick ? 3 : 5;
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    assert_true(s_leader(cl, 20000) >= 0);
    ferry_client_t *c = s_client(cl, -1, 10000, 1000);
    ferry_topic_config_t tc = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "cl", &tc, NULL, NULL), FERRY_OK);

    s_book_t book = {.seq = calloc(n, sizeof(uint64_t))};
    s_ref_t *refs = calloc(n, sizeof *refs);
    assert_non_null(book.seq);
    assert_non_null(refs);
    size_t kill_at[8];
    for (int k = 0; k < kills; k++) /* spread over the run, each at a random point of its part */
        kill_at[k] = n * (size_t)k / (size_t)kills + 1 + (size_t)rand() % (n / (size_t)kills / 2);
    int killed = 0;
    long long t0 = fy_now_ms();
    char id[32], payload[32];
    long long until = fy_now_ms() + 600000;
    for (size_t i = 0; i < n; i++) {
        if (killed < kills && book.confirmed >= kill_at[killed]) {
            int lead = s_leader(cl, 20000);
            assert_true(lead >= 0);
            printf("kill %d at %.1f s: node %d (leader) at %zu confirmed, %zu sent\n", killed + 1,
                   (double)(fy_now_ms() - t0) / 1000.0, lead + 1, book.confirmed, i);
            fy_ferryd_signal(&cl->node[lead], SIGKILL);
            s_start(cl, lead); /* back at once: the next kill needs a quorum of the others */
            killed++;
        }
        refs[i] = (s_ref_t){&book, i};
        snprintf(id, sizeof id, "m-%zu", i);
        int len = snprintf(payload, sizeof payload, "payload-%zu", i);
        ferry_message_t m = {.data = payload, .len = (size_t)len, .id = id};
        ferry_status_t st;
        /* A full window waits, connected or not (between leaders). */
        while ((st = ferry_client_publish_async(c, "cl", &m, s_on_confirm, &refs[i])) ==
                   FERRY_EWOULD_BLOCK ||
               st == FERRY_EDISCONNECTED) {
            assert_true(fy_now_ms() < until);
            ferry_client_poll(c, 10);
        }
        if (st != FERRY_OK)
            fail_msg("publish %zu: %s (%s)", i, ferry_errname(st), ferry_client_last_error(c));
    }
    assert_int_equal(ferry_client_flush(c, 120000), FERRY_OK);
    ferry_client_destroy(&c);
    printf("%zu publishes, %d leaders killed: %zu confirmed, %zu failed, %zu duplicates "
           "(resent after a failover), seed %u\n",
           n, killed, book.confirmed, book.failures, book.dups, seed);
    assert_int_equal(killed, kills);
    assert_int_equal(book.failures, 0);
    assert_int_equal(book.again, 0);
    assert_int_equal(book.confirmed, n);
    s_verify(cl, &book, n);
    s_assert_same_state(cl);
    free(book.seq);
    free(refs);
}

/* ---- catching up -------------------------------------------------------------- */

/* Publishes m-FROM .. m-(TO-1) with those ids through the window (waiting
 * while it is full or between leaders), a flush every @p flush_every (0:
 * at the end only). */
static void
s_publish_n(ferry_client_t *c, const char *topic, size_t from, size_t to, size_t flush_every)
{
    char id[32];
    for (size_t i = from; i < to; i++) {
        snprintf(id, sizeof id, "m-%zu", i);
        ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
        ferry_status_t st;
        while ((st = ferry_client_publish_async(c, topic, &m, NULL, NULL)) == FERRY_EWOULD_BLOCK ||
               st == FERRY_EDISCONNECTED)
            ferry_client_poll(c, 10);
        assert_int_equal(st, FERRY_OK);
        if (flush_every && i % flush_every == flush_every - 1)
            assert_int_equal(ferry_client_flush(c, 30000), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 60000), FERRY_OK);
}

static void
test_wiped_node_rejoins_from_a_snapshot(void **state)
{
    fy_cluster_fx_t *cl = *state;
    snprintf(cl->snapshot_every, sizeof cl->snapshot_every, "32");
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    int lead = s_leader(cl, 20000);
    assert_true(lead >= 0);
    ferry_client_t *c = s_client(cl, -1, 10000, 100);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "wiped", NULL, NULL, NULL),
                     FERRY_OK);
    s_publish_n(c, "wiped", 0, 2000, 50); /* many small entries: several snapshots */
    /* A follower loses its disk: killed, its directory emptied. */
    int gone = (lead + 1) % S_NODES;
    fy_ferryd_signal(&cl->node[gone], SIGKILL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/data'", cl->node[gone].dir);
    assert_int_equal(system(cmd), 0);
    s_publish_n(c, "wiped", 2000, 4000, 50); /* the log moves past what it kept for it */
    s_start(cl, gone);
    s_assert_same_state(cl);
    assert_true(fy_ferryd_log_count(&cl->node[gone], "restored a snapshot") >= 1);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(c, "wiped", &all, &count), FERRY_OK);
    assert_int_equal(count, 4000);
    free(all);
    ferry_client_destroy(&c);
}

/* ---- consumers across failover ------------------------------------------------ */

static void
test_acks_survive_leader_kills(void **state)
{
    fy_cluster_fx_t *cl = *state;
    const size_t n = getenv("FERRY_TEST_QUICK") ? 6000 : 20000;
    const size_t batch = 200;
    const int kills = 3;
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    assert_true(s_leader(cl, 20000) >= 0);
    ferry_client_t *c = s_client(cl, -1, 10000, 1000);
    ferry_topic_config_t tc = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "work", &tc, NULL, NULL), FERRY_OK);
    ferry_sub_config_t sc = {.ack_wait_ms = 1000, .max_deliver = 100};
    assert_int_equal(ferry_client_sub_declare(c, "work", "w", &sc, NULL), FERRY_OK);
    s_publish_n(c, "work", 0, n, 0);

    bool *acked = calloc(n + 1, sizeof *acked);
    uint32_t *seen = calloc(n + 1, sizeof *seen);
    assert_non_null(acked);
    assert_non_null(seen);
    size_t nacked = 0, again = 0, after_ack = 0, failed_calls = 0;
    int killed = 0;
    uint64_t seqs[200];
    long long until = fy_now_ms() + 180000;
    while (nacked < n) {
        assert_true(fy_now_ms() < until);
        const ferry_stored_message_t *msgs;
        size_t count = 0;
        ferry_status_t st = ferry_client_fetch(c, "work", "w", (uint32_t)batch, 500, &msgs, &count);
        if (st != FERRY_OK) { /* between leaders: what it took comes back after its ack wait */
            failed_calls++;
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            uint64_t seq = msgs[i].seq;
            assert_true(seq >= 1 && seq <= n);
            after_ack += acked[seq];
            again += seen[seq]++ > 0;
            seqs[i] = seq;
        }
        if (count == 0)
            continue;
        if (killed < kills && nacked >= n * (size_t)(killed + 1) / (kills + 1)) {
            /* The leader dies with this batch delivered and not acked. */
            int lead = s_leader(cl, 20000);
            assert_true(lead >= 0);
            fy_ferryd_signal(&cl->node[lead], SIGKILL);
            s_start(cl, lead);
            killed++;
        }
        if ((st = ferry_client_ack(c, "work", "w", seqs, count)) != FERRY_OK) {
            failed_calls++; /* not known to be acked: may come again */
            continue;
        }
        for (size_t i = 0; i < count; i++)
            if (!acked[seqs[i]]) {
                acked[seqs[i]] = true;
                nacked++;
            }
    }
    printf("%zu messages acked across %d leader kills: %zu delivered again (%zu failed calls), "
           "%zu after their ack was confirmed\n",
           n, killed, again, failed_calls, after_ack);
    assert_int_equal(killed, kills);
    /* A confirmed ack holds on the next leader: nothing acked comes again. */
    assert_int_equal(after_ack, 0);
    /* At least once: what was in flight at a kill or a failed call, no more. */
    assert_true(again <= (size_t)(kills + failed_calls) * batch);
    ferry_sub_info_t info;
    assert_int_equal(ferry_client_sub_info(c, "work", "w", &info), FERRY_OK);
    assert_int_equal(info.ack_floor, n);
    ferry_client_destroy(&c);
    s_assert_same_state(cl);
    free(acked);
    free(seen);
}

/* ---- membership ---------------------------------------------------------------- */

/* Waits until the leader's status shows node @p id as a caught-up voter
 * (@p present) or not at all (!@p present). */
static void
s_wait_member(ferry_client_t *c, uint64_t id, bool present)
{
    long long until = fy_now_ms() + 20000;
    for (;;) {
        ferry_cluster_t cs;
        assert_int_equal(ferry_client_cluster(c, &cs), FERRY_OK);
        bool found = false, ready = false;
        for (size_t i = 0; i < cs.nnodes; i++)
            if (cs.nodes[i].id == id) {
                found = true;
                ready = cs.nodes[i].voter && cs.nodes[i].up && cs.nodes[i].lag == 0;
            }
        if (present ? ready : !found)
            return;
        if (fy_now_ms() > until)
            fail_msg("node %llu %s", (unsigned long long)id,
                     present ? "did not become a caught-up voter" : "is still a member");
        fy_sleep_ms(50);
    }
}

/* @p topic holds m-0 .. m-(n-1) (s_publish_n), once each, at sequences 1..n. */
static void
s_assert_topic(ferry_client_t *c, const char *topic, size_t n)
{
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(c, topic, &all, &count), FERRY_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < count; i++) {
        char id[32];
        snprintf(id, sizeof id, "m-%zu", i);
        assert_string_equal(all[i].id, id);
        assert_int_equal(all[i].seq, i + 1);
    }
    free(all);
}

static void
test_nodes_added_and_removed_while_serving(void **state)
{
    fy_cluster_fx_t *cl = *state;
    fy_cluster_cleanup(cl);
    assert_int_equal(fy_cluster_init_voters(cl, 4, 3), 0);
    for (int i = 0; i < 3; i++)
        s_start(cl, i);
    int lead = s_leader(cl, 20000);
    assert_true(lead >= 0);
    ferry_client_t *c = s_client(cl, lead, 10000, 500);
    ferry_topic_config_t tc = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "members", &tc, NULL, NULL),
                     FERRY_OK);
    s_publish_n(c, "members", 0, 1000, 0);

    /* A fourth node, started with --join, added while publishes go on. */
    s_start(cl, 3);
    assert_int_equal(ferry_client_cluster_add(c, 4, fy_cluster_address(cl, 3)), FERRY_OK);
    s_publish_n(c, "members", 1000, 2000, 0);
    s_wait_member(c, 4, true);
    /* Refusals say why, and change nothing. */
    assert_int_equal(ferry_client_cluster_add(c, 4, "127.0.0.1:1"), FERRY_EINVAL);
    assert_non_null(strstr(ferry_client_last_error(c), "id is in the cluster already"));
    assert_int_equal(ferry_client_cluster_remove(c, 9), FERRY_EINVAL);
    assert_non_null(strstr(ferry_client_last_error(c), "no such node"));
    assert_int_equal(ferry_client_cluster_remove(c, (uint64_t)lead + 1), FERRY_EINVAL);
    assert_non_null(strstr(ferry_client_last_error(c), "cannot remove itself"));

    /* A follower removed, then stopped: three voters again (2, 3 or 4 of them). */
    int gone = (lead + 1) % 3;
    assert_int_equal(ferry_client_cluster_remove(c, (uint64_t)gone + 1), FERRY_OK);
    s_wait_member(c, (uint64_t)gone + 1, false);
    fy_ferryd_signal(&cl->node[gone], SIGTERM);
    s_publish_n(c, "members", 2000, 3000, 0);
    ferry_client_destroy(&c);

    /* The new configuration has a quorum of its own: the leader killed, the
     * other two (one of them the new node) elect one and go on. */
    fy_ferryd_signal(&cl->node[lead], SIGKILL);
    c = s_client(cl, -1, 10000, 500);
    s_publish_n(c, "members", 3000, 4000, 0);
    s_start(cl, lead);
    s_assert_topic(c, "members", 4000);
    ferry_client_destroy(&c);
    s_assert_same_state(cl);
}

/* ---- partitions -------------------------------------------------------------------- */

static void
test_partition_minority_confirms_nothing(void **state)
{
    fy_cluster_fx_t *cl = *state;
    fy_cluster_cleanup(cl);
    assert_int_equal(fy_cluster_init_links(cl, S_NODES), 0);
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    int lead = s_leader(cl, 20000);
    assert_true(lead >= 0);
    ferry_client_t *c = s_client(cl, -1, 10000, 500);
    ferry_topic_config_t tc = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "split", &tc, NULL, NULL), FERRY_OK);
    s_publish_n(c, "split", 0, 500, 0);

    /* The leader cut off from both others: it is the minority. */
    fy_links_isolate(cl->links, lead + 1, true);
    ferry_client_t *lonely = s_client(cl, lead, 3000, 100);
    ferry_message_t m = {.data = "lost", .len = 4, .id = "minority-1"};
    ferry_confirm_t cf;
    ferry_status_t st = ferry_client_publish(lonely, "split", &m, &cf);
    printf("publish to the cut-off leader: %s\n", ferry_errname(st));
    assert_true(st != FERRY_OK);
    ferry_client_destroy(&lonely); /* its publish is not sent again after the healing */

    /* The majority elects a leader of its own and goes on. */
    long long until = fy_now_ms() + 20000;
    int next = -1;
    while (next < 0 || next == lead) {
        assert_true(fy_now_ms() < until);
        next = s_leader(cl, 1000);
        if (next == lead)
            fy_sleep_ms(50);
    }
    s_publish_n(c, "split", 500, 1000, 0);
    assert_true(fy_links_refused(cl->links) > 0);

    /* Healed: the old leader steps down and catches up; what it took
     * without a quorum is gone, everything confirmed is there once. */
    fy_links_isolate(cl->links, lead + 1, false);
    s_publish_n(c, "split", 1000, 1500, 0);
    s_assert_topic(c, "split", 1500);
    ferry_client_destroy(&c);
    s_assert_same_state(cl);
}

/* ---- bad input: a corrupt log ------------------------------------------------------ */

/* Writes four 0xff bytes into the middle of node @p i's log segment
 * number @p k (0: the first) of those named FIRST-LAST (closed). */
static void
s_corrupt_segment(fy_cluster_fx_t *cl, int i, int k, char *path, size_t cap)
{
    char cmd[600], name[128];
    snprintf(cmd, sizeof cmd, "ls '%s/data/raft' | grep -E '^[0-9]{16}-[0-9]{16}$' | sed -n %dp",
             cl->node[i].dir, k + 1);
    assert_int_equal(fy_run(cmd, name, sizeof name), 0);
    name[strcspn(name, "\n")] = '\0';
    assert_true(name[0] != '\0');
    snprintf(path, cap, "%s/data/raft/%s", cl->node[i].dir, name);
    snprintf(cmd, sizeof cmd,
             "cp '%s' '%s.good' && size=$(stat -c %%s '%s') && "
             "printf '\\377\\377\\377\\377' | dd of='%s' bs=1 seek=$((size / 2)) conv=notrunc "
             "2>/dev/null",
             path, path, path, path);
    assert_int_equal(system(cmd), 0);
}

static void
test_corrupt_log_segments(void **state)
{
    fy_cluster_fx_t *cl = *state;
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    int lead = s_leader(cl, 20000);
    assert_true(lead >= 0);
    ferry_client_t *c = s_client(cl, -1, 10000, 100);
    ferry_topic_config_t tc = {.dedupe_window_ms = 3600 * 1000};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "logs", &tc, NULL, NULL), FERRY_OK);
    s_publish_n(c, "logs", 0, 500, 50);
    int f = (lead + 1) % S_NODES;
    assert_true(WIFEXITED(fy_ferryd_signal(&cl->node[f], SIGTERM))); /* its segments closed */

    /* A corrupt segment before the last: the node refuses to start, says
     * which, and changes nothing (its store stays marked clean). */
    char path[512], cmd[1200], out[64];
    s_corrupt_segment(cl, f, 0, path, sizeof path);
    snprintf(cmd, sizeof cmd, "cd '%s/data' && md5sum data.mdb raft/* | md5sum", cl->node[f].dir);
    char before[64];
    assert_int_equal(fy_run(cmd, before, sizeof before), 0);
    assert_int_equal(fy_cluster_start(cl, f), -1);
    assert_int_equal(fy_ferryd_log_count(&cl->node[f], "persisted data is corrupted"), 2);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, before);
    snprintf(cmd, sizeof cmd, "test -f '%s/data/cluster.clean'", cl->node[f].dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "mv '%s.good' '%s'", path, path);
    assert_int_equal(system(cmd), 0);

    /* A corrupt last segment (a torn tail): set aside and said; its entries
     * come from the leader again. */
    s_corrupt_segment(cl, f, 1, path, sizeof path);
    s_publish_n(c, "logs", 500, 1000, 50);
    s_start(cl, f);
    assert_true(fy_ferryd_log_count(&cl->node[f], "corrupt log segment set aside") >= 1);
    s_publish_n(c, "logs", 1000, 1100, 0);
    s_assert_topic(c, "logs", 1100);
    ferry_client_destroy(&c);
    s_assert_same_state(cl);
}

/* ---- bad input: whose data, which cluster ------------------------------------------ */

static void
test_wrong_node_and_disagreeing_peers_are_refused(void **state)
{
    fy_cluster_fx_t *cl = *state;
    /* Node 3 is first started with a --peers list of its own (a fourth
     * voter the others do not have). */
    char theirs[sizeof cl->peers];
    memcpy(theirs, cl->peers, sizeof theirs);
    for (int i = 0; i < 2; i++)
        s_start(cl, i);
    snprintf(cl->peers + strlen(cl->peers), sizeof cl->peers - strlen(cl->peers), ",4=127.0.0.1:1");
    s_start(cl, 2);
    memcpy(cl->peers, theirs, sizeof theirs);
    /* The first leader records the voters it was started with; a node that
     * finds its own list disagrees says so and stops (exit 1): whichever
     * side leads first, the misconfiguration stops the cluster before any
     * request is taken. */
    long long until = fy_now_ms() + 30000;
    int said = -1;
    while (said < 0 && fy_now_ms() < until) {
        for (int i = 0; i < S_NODES && said < 0; i++)
            if (fy_ferryd_log_count(&cl->node[i], "peers disagree") > 0)
                said = i;
        fy_sleep_ms(50);
    }
    assert_true(said >= 0);
    int status = -1;
    until = fy_now_ms() + 10000;
    while (fy_now_ms() < until && waitpid(cl->node[said].pid, &status, WNOHANG) == 0)
        fy_sleep_ms(20);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    cl->node[said].pid = 0;
    printf("node %d said the peers disagree and stopped (exit %d)\n", said + 1,
           WEXITSTATUS(status));
    for (int i = 0; i < S_NODES; i++)
        if (cl->node[i].pid)
            fy_ferryd_signal(&cl->node[i], SIGKILL);

    /* Node 2's data directory started as node 3: refused before anything in
     * it changes. */
    char cmd[600], before[64], after[64];
    snprintf(cmd, sizeof cmd, "cd '%s/data' && md5sum data.mdb cluster.node raft/* | md5sum",
             cl->node[1].dir);
    assert_int_equal(fy_run(cmd, before, sizeof before), 0);
    snprintf(cl->ids[1], sizeof cl->ids[1], "3");
    assert_int_equal(fy_cluster_start(cl, 1), -1);
    snprintf(cl->ids[1], sizeof cl->ids[1], "2");
    assert_int_equal(fy_ferryd_log_count(&cl->node[1], "belongs to node 2 of its cluster"), 1);
    assert_int_equal(fy_run(cmd, after, sizeof after), 0);
    assert_string_equal(after, before);
}

/* ---- clients and quorums -------------------------------------------------------- */

/* Whether node @p i's /metrics has a match of the regular expression @p line
 * within 5 s (it is refreshed twice a second). */
static bool
s_metrics_show(fy_cluster_fx_t *cl, int i, const char *line)
{
    static char body[65536];
    int port = fy_cluster_metrics_port(cl, i);
    assert_true(port > 0);
    regex_t re;
    assert_int_equal(regcomp(&re, line, REG_NOSUB), 0);
    long long until = fy_now_ms() + 5000;
    do {
        assert_int_equal(fy_http(port, "GET", "/metrics", body, sizeof body), 0);
        if (regexec(&re, body, 0, NULL, 0) == 0) {
            regfree(&re);
            return true;
        }
        fy_sleep_ms(50);
    } while (fy_now_ms() < until);
    regfree(&re);
    return false;
}

static void
test_follower_sends_clients_to_the_leader(void **state)
{
    fy_cluster_fx_t *cl = *state;
    for (int i = 0; i < S_NODES; i++)
        s_start(cl, i);
    int lead = s_leader(cl, 20000);
    assert_true(lead >= 0);
    int follower = (lead + 1) % S_NODES;
    /* A client that knows only a follower: its calls reach the leader. */
    ferry_client_t *c = s_client(cl, follower, 5000, 100);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL), FERRY_OK);
    ferry_message_t m = {.data = "job-1", .len = 5, .id = "j1"};
    ferry_confirm_t cf = {0};
    assert_int_equal(ferry_client_publish(c, "jobs", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    ferry_client_destroy(&c);
    /* The ferry CLI too. */
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' pub jobs job-2 --id j2 2>&1", getenv("FERRY_CLI"),
             cl->node[follower].endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "seq: 2"));

    /* ferry cluster status, from the leader: three voters, all heard from
     * and caught up; then one of them gone. */
    c = s_client(cl, follower, 5000, 100);
    ferry_cluster_t cs;
    long long until = fy_now_ms() + 10000;
    bool settled = false;
    while (!settled && fy_now_ms() < until) {
        assert_int_equal(ferry_client_cluster(c, &cs), FERRY_OK);
        assert_int_equal(cs.leader_id, lead + 1);
        assert_int_equal(cs.nnodes, 3);
        settled = cs.applied_index == cs.last_index;
        for (size_t i = 0; i < cs.nnodes; i++)
            settled = settled && cs.nodes[i].up && cs.nodes[i].lag == 0;
        if (!settled)
            fy_sleep_ms(50);
    }
    assert_true(settled);
    /* A cluster's node makes no backup (docs/operations.md, Backups). */
    assert_int_equal(ferry_client_backup(c, "/nonexistent/ferry-backup"), FERRY_EINVAL);
    assert_non_null(strstr(ferry_client_last_error(c), "cluster"));
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' cluster status --json", getenv("FERRY_CLI"),
             cl->node[follower].endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    /* /metrics: the leader leads and sees each voter caught up; a follower
     * follows and counts the requests it sent on. */
    char want[64];
    assert_true(s_metrics_show(cl, lead, "ferry_cluster_role 3\n"));
    assert_true(s_metrics_show(cl, lead, "ferry_cluster_leader 1\n"));
    snprintf(want, sizeof want, "ferry_cluster_lag_entries{node=\"%d\"} 0\n", follower + 1);
    assert_true(s_metrics_show(cl, lead, want));
    snprintf(want, sizeof want, "ferry_cluster_node_up{node=\"%d\"} 1\n", follower + 1);
    assert_true(s_metrics_show(cl, lead, want));
    assert_true(s_metrics_show(cl, follower, "ferry_cluster_role 1\n"));
    assert_true(s_metrics_show(cl, follower, "ferry_cluster_leader 0\n"));
    /* Every request a follower answers ENOTLEADER is counted. */
    assert_true(s_metrics_show(cl, follower, "ferry_cluster_not_leader_total [1-9]"));
    snprintf(want, sizeof want, "{\"leader\":%d,", lead + 1);
    assert_non_null(strstr(out, want));
    int third = (lead + 2) % S_NODES;
    fy_ferryd_signal(&cl->node[third], SIGKILL);
    until = fy_now_ms() + 10000;
    bool seen_down = false;
    while (!seen_down && fy_now_ms() < until) {
        assert_int_equal(ferry_client_cluster(c, &cs), FERRY_OK);
        for (size_t i = 0; i < cs.nnodes; i++)
            seen_down = seen_down || (cs.nodes[i].id == (uint64_t)third + 1 && !cs.nodes[i].up);
        if (!seen_down)
            fy_sleep_ms(50);
    }
    assert_true(seen_down);
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' cluster status", getenv("FERRY_CLI"),
             cl->node[follower].endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1); /* a voter is not heard from */
    ferry_client_destroy(&c);
    s_start(cl, third);

    /* Two nodes down: the last one has no quorum and confirms nothing. */
    for (int i = 0; i < S_NODES; i++)
        if (i != follower)
            fy_ferryd_signal(&cl->node[i], SIGKILL);
    c = s_client(cl, follower, 3000, 100);
    m = (ferry_message_t){.data = "job-3", .len = 5, .id = "j3"};
    ferry_status_t st = ferry_client_publish(c, "jobs", &m, &cf);
    printf("publish without a quorum: %s\n", ferry_errname(st));
    assert_true(st == FERRY_ETIMEOUT || st == FERRY_ENOTLEADER || st == FERRY_EDISCONNECTED);
    ferry_client_destroy(&c);
    /* The others back: the cluster has a leader again, and the queue its two jobs. */
    for (int i = 0; i < S_NODES; i++)
        if (i != follower)
            s_start(cl, i);
    c = s_client(cl, -1, 10000, 100);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(c, "jobs", &all, &count), FERRY_OK);
    assert_int_equal(count, 2);
    assert_string_equal(all[0].payload, "job-1");
    assert_string_equal(all[1].payload, "job-2");
    free(all);
    ferry_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_follower_sends_clients_to_the_leader, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_wiped_node_rejoins_from_a_snapshot, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_leader_killed_loses_no_confirmed_publish, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_acks_survive_leader_kills, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nodes_added_and_removed_while_serving, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_partition_minority_confirms_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_log_segments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_node_and_disagreeing_peers_are_refused, s_setup,
                                        s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
