/* SPDX-License-Identifier: MIT */
/*
 * test_events.c - event sourcing against a real ferryd: writers racing on
 * one key with the same expected version (exactly one wins, the loser learns
 * the current version, the history has no gap and no fork), read by key
 * among many other messages with paging, expected last sequence, and an
 * all-or-nothing batch.
 */
#include <setjmp.h>
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

typedef fy_fx_t fx_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    *(ferry_confirm_t *)user = *cf;
}

static void
test_racing_writers_one_wins(void **state)
{
    fx_t *fx = *state;
    const int races = getenv("FERRY_TEST_QUICK") ? 200 : 1000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_t *w[2] = {fy_connect(fx->d.endpoint, 5000, 100),
                            fy_connect(fx->d.endpoint, 5000, 100)};
    assert_non_null(w[0]);
    assert_non_null(w[1]);
    int wins[2] = {0, 0};
    for (int r = 0; r < races; r++) {
        /* Both saw version r; both append version r + 1 at the same time. */
        ferry_confirm_t cf[2];
        char body[2][32];
        for (int k = 0; k < 2; k++) {
            int i = (r & 1) ? 1 - k : k; /* who sends first alternates */
            int len = snprintf(body[i], sizeof body[i], "race-%d-writer-%d", r + 1, i);
            ferry_message_t m = {.data = body[i],
                                 .len = (size_t)len,
                                 .key = "order-1",
                                 .expect = FERRY_EXPECT_KEY_VERSION,
                                 .expect_key_version = (uint64_t)r};
            assert_int_equal(ferry_client_publish_async(w[i], "orders", &m, s_on_confirm, &cf[i]),
                             FERRY_OK);
        }
        assert_int_equal(ferry_client_flush(w[0], 10000), FERRY_OK);
        assert_int_equal(ferry_client_flush(w[1], 10000), FERRY_OK);
        int ok = (cf[0].status == FERRY_OK) + (cf[1].status == FERRY_OK);
        assert_int_equal(ok, 1);
        int winner = cf[0].status == FERRY_OK ? 0 : 1;
        wins[winner]++;
        assert_int_equal(cf[winner].key_version, (uint64_t)r + 1);
        /* The loser is told where the key stands now. */
        assert_int_equal(cf[1 - winner].status, FERRY_ECONFLICT);
        assert_int_equal(cf[1 - winner].key_version, (uint64_t)r + 1);
        assert_int_equal(cf[1 - winner].seq, (uint64_t)r + 1);
    }
    printf("races: %d, writer 0 won %d, writer 1 won %d\n", races, wins[0], wins[1]);
    /* The history: versions 1..races, once each, each the race's winner. */
    ferry_key_iter_t *it;
    assert_int_equal(ferry_client_read_key(fx->c, "orders", "order-1", 1, 0, &it), FERRY_OK);
    const ferry_stored_message_t *m;
    uint64_t want = 1;
    while (ferry_key_iter_next(it, &m) == FERRY_OK && m) {
        assert_int_equal(m->key_version, want);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "race-%llu-", (unsigned long long)want);
        assert_memory_equal(m->data, prefix, strlen(prefix));
        want++;
    }
    ferry_key_iter_destroy(&it);
    assert_int_equal(want - 1, (uint64_t)races);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "orders", &info), FERRY_OK);
    assert_int_equal(info.messages, (uint64_t)races); /* nothing stored for a loser */
    ferry_client_destroy(&w[0]);
    ferry_client_destroy(&w[1]);
}

static void
test_read_by_key_among_others(void **state)
{
    fx_t *fx = *state;
    const size_t others = getenv("FERRY_TEST_QUICK") ? 20000 : 100000;
    const size_t mine = 500;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "acct", NULL, NULL, NULL),
                     FERRY_OK);
    /* Batches of 1000: one event of "acct-7" every 200 other messages. */
    ferry_message_t batch[FERRY_BATCH_MAX];
    char keys[FERRY_BATCH_MAX][24], bodies[FERRY_BATCH_MAX][24];
    size_t sent_other = 0, sent_mine = 0, n = 0;
    while (sent_other < others || sent_mine < mine) {
        bool is_mine = sent_mine < mine && (sent_other % 200 == 0 || sent_other >= others);
        if (is_mine) {
            snprintf(keys[n], sizeof keys[n], "acct-7");
            snprintf(bodies[n], sizeof bodies[n], "event-%zu", ++sent_mine);
        } else {
            /* Keys that share a prefix with ours, and plenty of them. */
            snprintf(keys[n], sizeof keys[n], "acct-7%zu", sent_other % 977);
            snprintf(bodies[n], sizeof bodies[n], "other-%zu", sent_other++);
        }
        batch[n] = (ferry_message_t){.data = bodies[n], .len = strlen(bodies[n]), .key = keys[n]};
        if (++n == FERRY_BATCH_MAX || (sent_other >= others && sent_mine >= mine)) {
            assert_int_equal(ferry_client_publish_batch(fx->c, "acct", batch, n, NULL), FERRY_OK);
            n = 0;
        }
    }
    /* Pages of 64: every event once, in order. */
    ferry_key_iter_t *it;
    assert_int_equal(ferry_client_read_key(fx->c, "acct", "acct-7", 1, 64, &it), FERRY_OK);
    const ferry_stored_message_t *m;
    size_t got = 0;
    uint64_t last_seq = 0;
    while (ferry_key_iter_next(it, &m) == FERRY_OK && m) {
        got++;
        char want[24];
        snprintf(want, sizeof want, "event-%zu", got);
        assert_int_equal(m->len, strlen(want));
        assert_memory_equal(m->data, want, m->len);
        assert_string_equal(m->key, "acct-7");
        assert_string_equal(m->topic, "acct");
        assert_int_equal(m->key_version, got);
        assert_true(m->seq > last_seq);
        last_seq = m->seq;
    }
    ferry_key_iter_destroy(&it);
    assert_int_equal(got, mine);
    /* From a version on. */
    assert_int_equal(ferry_client_read_key(fx->c, "acct", "acct-7", 498, 0, &it), FERRY_OK);
    assert_int_equal(ferry_key_iter_next(it, &m), FERRY_OK);
    assert_non_null(m);
    assert_int_equal(m->key_version, 498);
    ferry_key_iter_destroy(&it);
    /* A key with no events, and a topic that does not exist. */
    assert_int_equal(ferry_client_read_key(fx->c, "acct", "acct-nobody", 1, 0, &it), FERRY_OK);
    assert_int_equal(ferry_key_iter_next(it, &m), FERRY_OK);
    assert_null(m);
    ferry_key_iter_destroy(&it);
    assert_int_equal(ferry_client_read_key(fx->c, "nope", "k", 1, 0, &it), FERRY_ENOTFOUND);
    assert_null(it);
}

static void
test_expected_last_seq_and_atomic_batch(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "ledger", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_confirm_t cf;
    ferry_message_t m = {.data = "a", .len = 1, .expect = FERRY_EXPECT_LAST_SEQ};
    assert_int_equal(ferry_client_publish(fx->c, "ledger", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    assert_int_equal(ferry_client_publish(fx->c, "ledger", &m, &cf), FERRY_ECONFLICT);
    assert_int_equal(cf.seq, 1); /* where the topic stands */
    assert_non_null(strstr(ferry_client_last_error(fx->c), "expected last sequence 0"));
    /* A batch whose third message expects the wrong version stores nothing. */
    ferry_message_t b[3] = {{.data = "x", .len = 1, .key = "k", .expect = FERRY_EXPECT_KEY_VERSION},
                            {.data = "y",
                             .len = 1,
                             .key = "k",
                             .expect = FERRY_EXPECT_KEY_VERSION,
                             .expect_key_version = 1},
                            {.data = "z",
                             .len = 1,
                             .key = "k",
                             .expect = FERRY_EXPECT_KEY_VERSION,
                             .expect_key_version = 1}};
    ferry_confirm_t cfs[3];
    assert_int_equal(ferry_client_publish_batch(fx->c, "ledger", b, 3, cfs), FERRY_ECONFLICT);
    assert_int_equal(cfs[2].status, FERRY_ECONFLICT);
    assert_int_equal(cfs[2].key_version, 2);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "ledger", &info), FERRY_OK);
    assert_int_equal(info.last_seq, 1);
    b[2].expect_key_version = 2;
    assert_int_equal(ferry_client_publish_batch(fx->c, "ledger", b, 3, cfs), FERRY_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cfs[i].key_version, (uint64_t)i + 1);
    /* Misuse caught before the wire. */
    ferry_message_t bad = {.data = "q", .len = 1, .expect = FERRY_EXPECT_KEY_VERSION};
    assert_int_equal(ferry_client_publish(fx->c, "ledger", &bad, NULL), FERRY_EINVAL);
}

static void
test_cli_events_and_requests(void **state)
{
    fx_t *fx = *state;
    const char *cli = getenv("FERRY_CLI");
    assert_non_null(cli);
    const char *ep = fx->d.endpoint;
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s --server %s declare topic cart", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s pub cart added --key c1 --expect-version 0", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "seq: 1\nkey_version: 1\n");
    /* The same expectation again: refused, exit 1, with the version now. */
    snprintf(cmd, sizeof cmd, "%s --server %s pub cart again --key c1 --expect-version 0 2>&1", cli,
             ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "ECONFLICT"));
    assert_non_null(strstr(out, "the key is at 1"));
    snprintf(cmd, sizeof cmd, "%s --server %s pub cart paid --key c1 --expect-version 1", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s pub cart other --key c2", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s read cart c1", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "key=c1 version=1 len=5\nadded\n"));
    assert_non_null(strstr(out, "key=c1 version=2 len=4\npaid\n"));
    assert_null(strstr(out, "other"));
    snprintf(cmd, sizeof cmd, "%s --server %s read cart c1 --from 2", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_null(strstr(out, "added"));
    /* HOST:PORT means tcp; what is no endpoint says which forms are. */
    assert_memory_equal(ep, "tcp://", 6);
    snprintf(cmd, sizeof cmd, "%s --server %s read cart c1 --from 2", cli, ep + 6);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "key=c1 version=2 len=4\npaid\n"));
    snprintf(cmd, sizeof cmd, "%s --server localhost ping 2>&1", cli);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--server localhost: wants tcp://HOST:PORT, HOST:PORT"));
    /* request/reply through two CLI processes. */
    snprintf(cmd, sizeof cmd, "%s --server %s declare queue upper", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd,
             "%s --server %s reply upper --exec 'tr a-z A-Z' --count 1 >/dev/null & "
             "%s --server %s request upper hello --timeout 10000; st=$?; wait; exit $st",
             cli, ep, cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "HELLO\n");
    snprintf(cmd, sizeof cmd, "%s --server %s request upper nobody --timeout 200 2>&1", cli, ep);
    assert_int_equal(fy_run(cmd, out, sizeof out), 3);
    assert_non_null(strstr(out, "ENOREPLY"));
}

/* examples/event_sourcing.c against this broker: 8 writers x 300 commands
 * on 5 accounts (much contention): no balance below zero, the projection
 * agrees with the events, and conflicts did happen (and were retried). */
static void
test_example_accounts(void **state)
{
    fx_t *fx = *state;
    char cmd[800], out[512];
    snprintf(cmd, sizeof cmd, "'%s/%s/examples/event_sourcing' '%s' 5 8 300", getenv("FERRY_TOP"),
             getenv("FERRY_BUILD"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    printf("%s", out);
    assert_non_null(strstr(out, "0 negative balances, 0 projection mismatches"));
    long conflicts = 0;
    const char *p = strstr(out, "mismatches; ");
    assert_non_null(p);
    conflicts = strtol(p + strlen("mismatches; "), NULL, 10);
    assert_true(conflicts > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_racing_writers_one_wins, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_by_key_among_others, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_expected_last_seq_and_atomic_batch, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli_events_and_requests, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_example_accounts, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
