/* SPDX-License-Identifier: MIT */
/*
 * test_powercut.c - ferryd's promises against a power cut, not only kill -9
 * (issue 15): ferryd runs under the power-cut library (tests/lib/powercut.h),
 * which loses every write not yet synced when the power goes. A client
 * publishes with ids and acks what it fetches, recording every confirm it
 * got; the power goes at a random moment (a signal) or at a random sync
 * point, with every unsynced write lost or a random subset of them kept (a
 * disk that reorders its cache). ferryd then starts on what is left, and
 * every confirmed publish is there, in its sequence, with its bytes; every
 * confirmed ack holds; the sequences have no hole; and a resend of a
 * confirmed id is answered as a duplicate.
 *
 * And the test can fail: ferryd-nosync (a test build whose store never
 * syncs) loses confirmed publishes under the same cut, and the same checker
 * says so.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "cutctl.h"
#include "harness.h"
#include "relayfx.h"

#define S_MAX_MSGS 200000

/* What the client was told, across every power cut. */
typedef struct {
    uint64_t *seq_of;   /* message k (1-based): its confirmed sequence, 0: none */
    uint64_t next;      /* the next message number to publish */
    uint8_t *acked_seq; /* sequence s: its ack was confirmed on disk */
    uint64_t acked;     /* every sequence up to here was acked, confirmed */
    uint64_t acks;      /* acks confirmed while the power was on */
    size_t confirms;    /* confirms received in this round */
} s_history_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_history_t *h = *(s_history_t **)user;
    uint64_t k = (uint64_t)(uintptr_t)((void **)user)[1];
    if (cf->status == FERRY_OK) {
        h->seq_of[k] = cf->seq;
        h->confirms++;
    }
}

/* Starts ferryd (@p bin, NULL: $FERRYD) on d's directory, under the
 * power-cut library with the given settings (@p mode NULL: a plain start). */
static void
s_start(fy_ferryd_t *d, const char *bin, const char *mode, int at_sync, bool fsync_only,
        unsigned seed)
{
    if (!d->dir[0])
        assert_int_equal(fy_tmpdir(d->dir, sizeof d->dir), 0);
    const char *saved = getenv("FERRYD");
    char saved_bin[512];
    snprintf(saved_bin, sizeof saved_bin, "%s", saved ? saved : "");
    if (bin)
        setenv("FERRYD", bin, 1);
    if (mode) {
        char report[400], data[300];
        snprintf(report, sizeof report, "%s.powercut", d->dir);
        snprintf(data, sizeof data, "%s/data", d->dir); /* not the log beside it */
        fy_powercut_env(data, mode, at_sync, fsync_only, seed, report);
    }
    int rc = fy_ferryd_start(d);
    fy_powercut_env(NULL, NULL, 0, false, 0, NULL);
    setenv("FERRYD", saved_bin, 1);
    assert_int_equal(rc, 0);
}

/* The report file of ferryd's cuts. */
static const char *
s_report(const fy_ferryd_t *d)
{
    static char path[400];
    snprintf(path, sizeof path, "%s.powercut", d->dir);
    return path;
}

/* Publishes and acks until the power goes: by signal once @p cut_after
 * confirms came in (0: the library cuts at its sync point by itself). */
static void
s_run_until_cut(fy_ferryd_t *d, s_history_t *h, size_t cut_after)
{
    ferry_client_t *c = fy_connect(d->endpoint, 1000, 500);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL), FERRY_OK);
    /* Unacked ones come back soon, and are never dead-lettered here. */
    ferry_sub_config_t sc = {.ack_wait_ms = 200, .max_deliver = 1000};
    assert_int_equal(ferry_client_sub_declare(c, "t", "s", &sc, NULL), FERRY_OK);
    ferry_client_t *acker = fy_connect(d->endpoint, 2000, 10);
    assert_non_null(acker);
    static void *users[S_MAX_MSGS][2];
    h->confirms = 0;
    bool signalled = false;
    long long until = fy_now_ms() + 30000;
    int status = 0;
    while (fy_now_ms() < until) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) { /* the cut came */
            d->pid = 0;
            break;
        }
        if (!signalled && cut_after && h->confirms >= cut_after) {
            kill(d->pid, SIGUSR2);
            signalled = true;
        }
        for (int i = 0; i < 50 && h->next < S_MAX_MSGS; i++) {
            uint64_t k = h->next;
            char id[32], payload[48];
            snprintf(id, sizeof id, "m%llu", (unsigned long long)k);
            snprintf(payload, sizeof payload, "p%llu-%llu", (unsigned long long)k,
                     (unsigned long long)(k * 2654435761u));
            ferry_message_t m = {.data = payload, .len = strlen(payload), .id = id, .key = "k"};
            users[k][0] = h;
            users[k][1] = (void *)(uintptr_t)k;
            if (ferry_client_publish_async(c, "t", &m, s_on_confirm, users[k]) != FERRY_OK)
                break;
            h->next++;
        }
        ferry_client_poll(c, 1);
        /* Acks, each confirmed on disk before it counts. */
        const ferry_stored_message_t *msgs;
        size_t n = 0;
        if (ferry_client_fetch(acker, "t", "s", 100, 0, &msgs, &n) == FERRY_OK && n > 0) {
            uint64_t seqs[100];
            for (size_t i = 0; i < n; i++) {
                seqs[i] = msgs[i].seq;
            }
            if (ferry_client_ack(acker, "t", "s", seqs, n) == FERRY_OK) {
                h->acks += n;
                for (size_t i = 0; i < n; i++)
                    if (seqs[i] < S_MAX_MSGS)
                        h->acked_seq[seqs[i]] = 1;
                while (h->acked + 1 < S_MAX_MSGS && h->acked_seq[h->acked + 1])
                    h->acked++; /* every ack up to here confirmed: the floor */
            }
        }
    }
    if (d->pid) { /* the cut never came: fail loudly, not later */
        fy_ferryd_signal(d, SIGKILL);
        fail_msg("no power cut within 30 s");
    }
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("ferryd ended with status 0x%x, not by the cut (log: %s)", status, d->log_path);
    ferry_client_destroy(&acker);
    ferry_client_destroy(&c);
}

/* Checks the history against what ferryd has now, then acks whatever is
 * left unacked (so the next round starts clean). @return how many promises
 * broke (0: none), each said on stdout. */
static int
s_check(fy_ferryd_t *d, s_history_t *h)
{
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    fy_copied_t *all = NULL;
    size_t n = 0;
    int broken = 0;
    if (fy_read_all(c, "t", &all, &n) != FERRY_OK) {
        n = 0; /* the topic itself is gone */
        printf("topic t is gone\n");
        broken++;
    }
    /* No hole, no foreign message, no id twice. */
    uint8_t *seen = calloc(S_MAX_MSGS, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned long long k = 0;
        char want[48];
        if (all[i].seq != i + 1 || sscanf(all[i].id, "m%llu", &k) != 1 || k >= S_MAX_MSGS ||
            seen[k]++) {
            printf("message %zu: seq %llu id %s out of place\n", i, (unsigned long long)all[i].seq,
                   all[i].id);
            broken++;
            continue;
        }
        snprintf(want, sizeof want, "p%llu-%llu", k, (unsigned long long)(k * 2654435761u));
        if (strcmp(all[i].payload, want) != 0) {
            printf("message m%llu: payload %s, want %s\n", k, all[i].payload, want);
            broken++;
        }
    }
    /* Every confirmed publish at its confirmed sequence. */
    size_t lost = 0;
    for (uint64_t k = 0; k < h->next; k++) {
        uint64_t s = h->seq_of[k];
        if (!s)
            continue;
        char id[32];
        snprintf(id, sizeof id, "m%llu", (unsigned long long)k);
        if (s > n || strcmp(all[s - 1].id, id) != 0)
            lost++;
    }
    if (lost) {
        printf("%zu confirmed publishes lost\n", lost);
        broken += (int)lost;
    }
    /* Every confirmed ack: the floor covers the prefix, and no message whose
     * ack was confirmed is delivered again. Drain the subscription: what
     * was delivered and not acked comes back after the ack wait (200 ms),
     * and is acked now; then every message is acked. */
    ferry_sub_info_t si = {0};
    if (n && ferry_client_sub_info(c, "t", "s", &si) == FERRY_OK && si.ack_floor < h->acked) {
        printf("ack floor %llu, but acks up to %llu were confirmed\n",
               (unsigned long long)si.ack_floor, (unsigned long long)h->acked);
        broken++;
    }
    long long until = fy_now_ms() + 20000;
    while (n && si.ack_floor < si.last_seq && fy_now_ms() < until) {
        const ferry_stored_message_t *msgs;
        size_t got = 0;
        assert_int_equal(ferry_client_fetch(c, "t", "s", 100, 300, &msgs, &got), FERRY_OK);
        uint64_t seqs[100];
        for (size_t i = 0; i < got; i++) {
            seqs[i] = msgs[i].seq;
            if (seqs[i] < S_MAX_MSGS && h->acked_seq[seqs[i]]) {
                printf("seq %llu delivered again after its ack was confirmed\n",
                       (unsigned long long)seqs[i]);
                broken++;
            }
        }
        if (got) {
            assert_int_equal(ferry_client_ack(c, "t", "s", seqs, got), FERRY_OK);
            for (size_t i = 0; i < got; i++)
                if (seqs[i] < S_MAX_MSGS)
                    h->acked_seq[seqs[i]] = 1;
        }
        assert_int_equal(ferry_client_sub_info(c, "t", "s", &si), FERRY_OK);
    }
    if (n && si.ack_floor < si.last_seq) {
        printf("subscription not drained: floor %llu, last %llu\n",
               (unsigned long long)si.ack_floor, (unsigned long long)si.last_seq);
        broken++;
    }
    while (h->acked + 1 < S_MAX_MSGS && h->acked_seq[h->acked + 1])
        h->acked++;
    /* A resend of a confirmed id is a duplicate, not a second copy. */
    for (uint64_t k = h->next; k-- > 0 && !broken;) {
        if (!h->seq_of[k])
            continue;
        char id[32], payload[48];
        snprintf(id, sizeof id, "m%llu", (unsigned long long)k);
        snprintf(payload, sizeof payload, "p%llu-%llu", (unsigned long long)k,
                 (unsigned long long)(k * 2654435761u));
        ferry_message_t m = {.data = payload, .len = strlen(payload), .id = id, .key = "k"};
        ferry_confirm_t cf;
        if (ferry_client_publish(c, "t", &m, &cf) != FERRY_OK || !cf.duplicate ||
            cf.seq != h->seq_of[k]) {
            printf("resent m%llu was not answered as a duplicate at seq %llu\n",
                   (unsigned long long)k, (unsigned long long)h->seq_of[k]);
            broken++;
        }
        break; /* the newest confirmed one */
    }
    printf("after the cut: %zu messages stored, %zu of them acked; %d promises broken\n", n,
           (size_t)si.ack_floor, broken);
    free(seen);
    free(all);
    ferry_client_destroy(&c);
    return broken;
}

/* Power cuts at random moments and random sync points, all unsynced writes
 * lost or a random subset kept; after each, every promise holds. */
static void
test_confirms_survive_power_cuts(void **state)
{
    fy_ferryd_t *d = *state;
    s_history_t h = {.seq_of = calloc(S_MAX_MSGS, sizeof(uint64_t)),
                     .acked_seq = calloc(S_MAX_MSGS, 1)};
    const int rounds = getenv("FERRY_TEST_QUICK") ? 3 : 8;
    srand((unsigned)getpid());
    long long reverted_total = 0;
    for (int r = 0; r < rounds; r++) {
        /* By signal at any moment, or at a sync point: the Nth fsync (the
         * writes it was to make durable are lost) or the Nth of any kind
         * (LMDB's meta page write, O_DSYNC, counts too). */
        const char *mode = r / 2 % 2 ? "random" : "all";
        bool by_sync = r % 2 == 1, fsync_only = r % 4 == 1;
        int at_sync = by_sync ? 20 + rand() % 100 : 0;
        s_start(d, NULL, mode, at_sync, fsync_only, (unsigned)rand());
        size_t cut_after = by_sync ? 0 : 500 + (size_t)(rand() % 3000);
        s_run_until_cut(d, &h, cut_after);
        long long before = reverted_total;
        assert_int_equal(fy_powercut_cuts(s_report(d), r + 1, &reverted_total), r + 1);
        if (fsync_only) /* cut before an fsync, all lost: what it was to sync is gone */
            assert_true(reverted_total > before);
        s_start(d, NULL, NULL, 0, false, 0); /* the broker opens on what is left */
        printf("cut %d (%s, %s): %llu published so far, %lld unsynced writes lost\n", r + 1, mode,
               !by_sync     ? "by signal"
               : fsync_only ? "at an fsync"
                            : "at a sync point",
               (unsigned long long)h.next, reverted_total - before);
        assert_int_equal(s_check(d, &h), 0);
        fy_ferryd_signal(d, SIGTERM);
    }
    printf("%d power cuts, %lld unsynced writes lost in all\n", rounds, reverted_total);
    /* Confirms came from the write-ahead log: after a cut, batches that
     * only the log held were applied again (docs/storage.md). */
    char cmd[600], out[64] = "";
    snprintf(cmd, sizeof cmd, "grep -c 'msg=\"recovered from the write-ahead log\"' '%s'",
             d->log_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, sizeof out, p))
        out[0] = '\0';
    pclose(p);
    printf("%d of %d starts after a cut applied the write-ahead log\n", atoi(out), rounds);
    assert_true(atoi(out) >= 1);
    /* The cuts did lose writes, and acks were checked, not only publishes. */
    assert_true(reverted_total > 0);
    assert_true(h.acks > h.next / 4);
    free(h.seq_of);
    free(h.acked_seq);
}

/* The same cut on a ferryd that never syncs: the checker finds confirmed
 * publishes lost. A test that cannot fail proves nothing. */
static void
test_a_missing_sync_is_caught(void **state)
{
    fy_ferryd_t *d = *state;
    s_history_t h = {.seq_of = calloc(S_MAX_MSGS, sizeof(uint64_t)),
                     .acked_seq = calloc(S_MAX_MSGS, 1)};
    s_start(d, getenv("FERRYD_NOSYNC"), "all", 0, false, 1);
    s_run_until_cut(d, &h, 2000);
    long long reverted;
    assert_int_equal(fy_powercut_cuts(s_report(d), 1, &reverted), 1);
    assert_true(reverted > 0);
    s_start(d, NULL, NULL, 0, false, 0);
    assert_true(s_check(d, &h) > 0);
    fy_ferryd_signal(d, SIGTERM);
    free(h.seq_of);
    free(h.acked_seq);
}

static int
s_relay(const fy_ferryd_t *d, const char *where, const char *log)
{
    char source[400];
    snprintf(source, sizeof source, "sqlite:%s", where);
    const char *const extra[] = {"--name", "pc", "--batch", "50", NULL};
    int pid = fy_relay_spawn_with(source, d->endpoint, log, extra);
    assert_true(pid > 0);
    return pid;
}

/* ferry-relay's SQLite position under power cuts (the relay's process loses
 * its unsynced writes at a random sync point, all of them or a random
 * subset): the database stays sound, and once the relay has run to the
 * end every row is in the broker exactly once - a position that went back
 * replays rows the dedupe window answers as duplicates, and no position
 * ever passed a row the broker did not have. */
static void
test_relay_position_survives_power_cuts(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    srand((unsigned)getpid());
    enum { PER_ROUND = 30000 };
    char dir[256], db[300], report[300], log[300], cmd[1200], out[256];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/app.db", dir);
    snprintf(report, sizeof report, "%s.powercut", dir);
    snprintf(log, sizeof log, "%s.relay.log", dir);
    /* The outbox, and what the relay makes at its first open (position and
     * identity tables), with the power on: the cuts then come at positions. */
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null && '%s' --setup "
             "--source 'sqlite:%s' --name pc >/dev/null",
             db, getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".", getenv("FERRY_RELAY"), db);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    const int rounds = getenv("FERRY_TEST_QUICK") ? 2 : 4;
    int rows = 0;
    for (int r = 0; r < rounds; r++) {
        /* The service writes (with the power on), then the relay runs and
         * the power goes at one of its position records (every 50 ms while
         * it publishes). */
        snprintf(cmd, sizeof cmd,
                 "sqlite3 '%s' \"WITH RECURSIVE n(i) AS (SELECT %d UNION ALL SELECT i + 1 FROM n "
                 "WHERE i < %d) INSERT INTO outbox(aggregate_type, aggregate_id, event_type, "
                 "payload) SELECT 'orders', 'o-' || (i %% 10), 'placed', CAST('row-' || i AS "
                 "BLOB) FROM n\"",
                 db, rows + 1, rows + PER_ROUND);
        assert_int_equal(fy_run(cmd, out, sizeof out), 0);
        rows += PER_ROUND;
        fy_powercut_env(dir, r % 2 ? "random" : "all", 1 + rand() % 3, false, (unsigned)rand(),
                        report);
        int pid = s_relay(d, db, log);
        fy_powercut_env(NULL, NULL, 0, false, 0, NULL);
        int status = 0;
        long long until = fy_now_ms() + 30000;
        while (waitpid(pid, &status, WNOHANG) == 0 && fy_now_ms() < until)
            fy_sleep_ms(5);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            fy_kill_wait(pid, SIGKILL);
            fail_msg("relay round %d: no power cut (status 0x%x, log %s)", r, status, log);
        }
        long long reverted;
        assert_int_equal(fy_powercut_cuts(report, r + 1, &reverted), r + 1);
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA integrity_check'", db);
        assert_int_equal(fy_run(cmd, out, sizeof out), 0);
        assert_string_equal(out, "ok\n");
    }
    const int ROWS = rows;
    /* The cuts came while the relay published: it started from a position
     * each round (and the last run replayed what a cut took back). */
    snprintf(cmd, sizeof cmd, "grep -c 'msg=\"relay started\"' '%s'", log);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_int_equal(atoi(out), rounds);
    /* To the end, with the power on. */
    int pid = s_relay(d, db, log);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 100);
    assert_non_null(c);
    ferry_topic_info_t info = {0};
    long long until = fy_now_ms() + 30000;
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s' \"SELECT last_id FROM ferry_relay_position WHERE "
             "source = 'pc'\"",
             db);
    while (fy_now_ms() < until) {
        if (fy_run(cmd, out, sizeof out) == 0 && atoi(out) == ROWS)
            break;
        fy_sleep_ms(20);
    }
    assert_int_equal(atoi(out), ROWS);
    fy_kill_wait(pid, SIGTERM);
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_int_equal(info.messages, ROWS); /* each row once: replays were duplicates */
    char why[256];
    if (fy_relay_rows_once(c, "orders", "pc", (size_t)ROWS, why, sizeof why) != 0)
        fail_msg("%s", why);
    long long reverted = 0;
    int cuts = fy_powercut_cuts_now(report, &reverted);
    printf("relay: %d power cuts, %lld unsynced writes lost, every row once\n", cuts, reverted);
    ferry_client_destroy(&c);
    fy_rmtree(dir);
}

/* A slow disk (every flush 25 ms longer, POWERCUT_SYNC_DELAY_MS): each
 * group commit is slower than --slow-batch-ms 10, and ferryd says so with
 * where the time went (commit_ms), at most once a second with how many it
 * held back; /metrics counts every one and its commit-time histogram has
 * nothing under 10 ms. */
static void
test_slow_commits_are_said(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_tmpdir(d->dir, sizeof d->dir), 0);
    int port = fy_free_port();
    char addr[64], data[300], report[300];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    snprintf(data, sizeof data, "%s/data", d->dir);
    snprintf(report, sizeof report, "%s.powercut", d->dir);
    d->extra[0] = "--slow-batch-ms";
    d->extra[1] = "10";
    d->extra[2] = "--metrics";
    d->extra[3] = addr;
    fy_powercut_env(data, "all", 0, false, 1, report);
    setenv("POWERCUT_SYNC_DELAY_MS", "25", 1);
    int rc = fy_ferryd_start(d);
    fy_powercut_env(NULL, NULL, 0, false, 0, NULL);
    assert_int_equal(rc, 0);
    ferry_client_t *c = fy_connect(d->endpoint, 5000, 10);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "slow", NULL, NULL, NULL), FERRY_OK);
    enum { N = 60 };
    long long t0 = fy_now_ms();
    for (int i = 0; i < N; i++) {
        ferry_message_t m = {.data = "x", .len = 1};
        assert_int_equal(ferry_client_publish(c, "slow", &m, NULL), FERRY_OK);
    }
    long long secs = (fy_now_ms() - t0) / 1000;
    assert_true(secs >= 1); /* 60 commits of 25 ms and more */
    /* Said, with the commit's share, and not once per batch. */
    int lines = fy_ferryd_log_count(d, "msg=\"slow batch\"");
    assert_true(lines >= 1 && lines <= secs + 2);
    char cmd[600], out[512];
    snprintf(cmd, sizeof cmd, "grep 'msg=\"slow batch\"' '%s' | tail -1", d->log_path);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    const char *cm = strstr(out, "commit_ms=");
    assert_non_null(cm);
    assert_true(atof(cm + 10) >= 20.0);
    assert_non_null(strstr(out, "threshold_ms=10"));
    const char *more = strstr(out, "more_since_last=");
    assert_non_null(more);
    assert_true(atol(more + 16) >= 1); /* the ones held back are counted */
    /* Every one counted; the histogram has none under 10 ms. */
    static char body[32768];
    long long until = fy_now_ms() + 5000;
    const char *tot = NULL;
    do {
        fy_sleep_ms(100);
        assert_int_equal(fy_http(port, "GET", "/metrics", body, sizeof body), 0);
        tot = strstr(body, "\nferry_slow_batches_total ");
    } while ((!tot || atol(tot + 26) < N) && fy_now_ms() < until);
    assert_non_null(tot);
    assert_true(atol(tot + 26) >= N);
    const char *b10 = strstr(body, "\nferry_commit_seconds_bucket{le=\"0.01\"} ");
    assert_non_null(b10);
    assert_int_equal(atol(b10 + strlen("\nferry_commit_seconds_bucket{le=\"0.01\"} ")), 0);
    printf("slow disk: %d publishes in %lld s, %d slow-batch lines\n", N, secs, lines);
    ferry_client_destroy(&c);
    fy_ferryd_signal(d, SIGTERM);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_confirms_survive_power_cuts, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_a_missing_sync_is_caught, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_relay_position_survives_power_cuts,
                                        fy_ferryd_state_new, fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_slow_commits_are_said, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("powercut", tests, NULL, NULL);
}
