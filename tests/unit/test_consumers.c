/* SPDX-License-Identifier: MIT */
/*
 * test_consumers.c - the broker's consumer table: ids, the per-batch journal
 * (commit applies, rollback forgets), liveness, the sent ring, and the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "consumers.h"

static int
s_setup(void **state)
{
    fy_consumers_t *t = calloc(1, sizeof *t);
    if (!t || fy_consumers_init(t, 0) != 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int
s_teardown(void **state)
{
    fy_consumers_free(*state);
    free(*state);
    return 0;
}

static void
test_commit_and_rollback(void **state)
{
    fy_consumers_t *t = *state;
    fy_consumer_t *a = fy_consumers_add(t);
    assert_non_null(a);
    assert_int_equal(a->id, 1);
    a->credit = 10;
    /* Seen by the batch that added it, not yet committed. */
    assert_ptr_equal(fy_consumers_find(t, 1), a);
    assert_int_equal(t->nlive, 0);
    /* A replayed batch forgets it; the id is handed out again. */
    fy_consumers_rollback(t);
    assert_null(fy_consumers_find(t, 1));
    a = fy_consumers_add(t);
    assert_int_equal(a->id, 1);
    a->credit = 10;
    a->added = 5;
    a->used = 3;
    assert_true(fy_consumers_commit(t)); /* a new consumer: deliver soon */
    assert_int_equal(t->nlive, 1);
    fy_consumer_t *c = fy_consumers_find(t, 1);
    assert_non_null(c);
    assert_int_equal(c->credit, 12);
    assert_int_equal(c->added + c->used, 0);
    assert_false(fy_consumers_commit(t)); /* nothing happened */
    /* Credit added in a batch that is rolled back is gone; committed, it counts. */
    c->added = 4;
    fy_consumers_rollback(t);
    assert_int_equal(c->credit, 12);
    assert_int_equal(c->added, 0);
    c->added = 4;
    assert_true(fy_consumers_commit(t));
    assert_int_equal(fy_consumers_find(t, 1)->credit, 16);
    /* A removal takes effect at commit and the next id is new. */
    c = fy_consumers_find(t, 1);
    c->removed = true;
    assert_null(fy_consumers_find(t, 1));
    fy_consumers_rollback(t);
    assert_non_null(fy_consumers_find(t, 1));
    fy_consumers_find(t, 1)->removed = true;
    fy_consumers_commit(t);
    assert_int_equal(t->nlive, 0);
    assert_int_equal(fy_consumers_add(t)->id, 2);
}

static void
test_sent_ring(void **state)
{
    fy_consumers_t *t = *state;
    fy_consumer_t *c = fy_consumers_add(t);
    for (uint64_t s = 1; s <= 10; s++)
        fy_consumer_sent(c, s);
    fy_consumers_commit(t);
    c = fy_consumers_find(t, 1);
    assert_int_equal(c->sent_count, 10);
    assert_int_equal(fy_consumer_sent_at(c, 0), 10);
    assert_int_equal(fy_consumer_sent_at(c, 9), 1);
    /* Sends of a rolled-back batch are forgotten. */
    fy_consumer_sent(c, 11);
    fy_consumers_rollback(t);
    assert_int_equal(c->sent_count, 10);
    assert_int_equal(fy_consumer_sent_at(c, 0), 10);
    /* The ring keeps the last FY_CONSUMER_SENT_MAX. */
    for (uint64_t s = 11; s <= 1000; s++)
        fy_consumer_sent(c, s);
    assert_int_equal(c->sent_count, FY_CONSUMER_SENT_MAX);
    assert_int_equal(fy_consumer_sent_at(c, 0), 1000);
    assert_int_equal(fy_consumer_sent_at(c, FY_CONSUMER_SENT_MAX - 1),
                     1000 - FY_CONSUMER_SENT_MAX + 1);
}

static void
test_touch(void **state)
{
    fy_consumers_t *t = *state;
    fy_consumer_t *a = fy_consumers_add(t);
    memcpy(a->peer, "peer-a", 6);
    a->peer_len = 6;
    a->last_seen_ms = 100;
    fy_consumer_t *b = fy_consumers_add(t);
    memcpy(b->peer, "peer-b", 6);
    b->peer_len = 6;
    b->last_seen_ms = 100;
    fy_consumers_commit(t);
    fy_consumers_touch(t, "peer-a", 6, 5000);
    assert_int_equal(fy_consumers_find(t, 1)->last_seen_ms, 5000);
    assert_int_equal(fy_consumers_find(t, 2)->last_seen_ms, 100);
    fy_consumers_touch(t, "peer-b", 6, 5000); /* another peer, same ms */
    assert_int_equal(fy_consumers_find(t, 2)->last_seen_ms, 5000);
    fy_consumers_touch(t, "peer", 4, 6000); /* a prefix is another peer */
    assert_int_equal(fy_consumers_find(t, 1)->last_seen_ms, 5000);
}

static void
test_limit(void **state)
{
    fy_consumers_t *t = *state;
    for (size_t i = 0; i < FY_CONSUMERS_MAX; i++)
        assert_non_null(fy_consumers_add(t));
    assert_null(fy_consumers_add(t));
    fy_consumers_commit(t);
    assert_int_equal(t->nlive, FY_CONSUMERS_MAX);
    assert_null(fy_consumers_add(t));
    fy_consumers_find(t, 7)->removed = true;
    assert_null(fy_consumers_add(t)); /* room comes back at commit */
    fy_consumers_commit(t);
    fy_consumer_t *c = fy_consumers_add(t);
    assert_non_null(c);
    assert_int_equal(c->id, FY_CONSUMERS_MAX + 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_and_rollback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sent_ring, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_touch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limit, s_setup, s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
