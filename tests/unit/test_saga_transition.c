/* SPDX-License-Identifier: MIT */
/*
 * test_saga_transition.c - the saga state machine (saga/transition.c): every
 * state and event, and whole runs of a four-step saga whose second step has
 * no compensation (like a notification), checked against the rules in
 * docs/sagas.md; retries of steps (max_attempts) and of compensations
 * (max_compensations, then FAILED), waits between attempts and their
 * backoff, a person's cancel and resume.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transition.h"

/* reserve (compensable), notify (not), charge (compensable), ship (compensable);
 * one attempt each, compensations without limit (the defaults). */
static const fy_saga_policy_t s_comp[] = {{true, 1, 0}, {false, 1, 0}, {true, 1, 0}, {true, 1, 0}};
/* The same with charge tried 3 times and its compensation twice. */
static const fy_saga_policy_t s_retry[] = {{true, 1, 0}, {false, 1, 0}, {true, 3, 2}, {true, 1, 0}};
#define N 4

static fy_saga_next_t
s_go(ferry_saga_state_t st, uint32_t step, uint32_t attempt, fy_saga_event_t ev)
{
    return fy_saga_transition(s_comp, N, (fy_saga_at_t){st, step, attempt, false}, ev);
}

static fy_saga_next_t
s_go_r(ferry_saga_state_t st, uint32_t step, uint32_t attempt, bool waiting, fy_saga_event_t ev)
{
    return fy_saga_transition(s_retry, N, (fy_saga_at_t){st, step, attempt, waiting}, ev);
}

static void
s_expect(fy_saga_next_t n, ferry_saga_state_t st, uint32_t step, uint32_t attempt,
         fy_saga_send_t send, bool ended)
{
    assert_true(n.changed);
    assert_int_equal(n.at.state, st);
    assert_int_equal(n.at.step, step);
    assert_int_equal(n.at.attempt, attempt);
    assert_int_equal(n.send, send);
    assert_int_equal(n.ended, ended);
    assert_false(n.at.waiting);
}

/* The saga waits (nothing sent now) to send attempt @p attempt. */
static void
s_expect_wait(fy_saga_next_t n, ferry_saga_state_t st, uint32_t step, uint32_t attempt)
{
    assert_true(n.changed);
    assert_int_equal(n.at.state, st);
    assert_int_equal(n.at.step, step);
    assert_int_equal(n.at.attempt, attempt);
    assert_true(n.at.waiting);
    assert_int_equal(n.send, FY_SAGA_SEND_NONE);
    assert_false(n.ended);
}

static void
test_steps_succeed_in_order(void **state)
{
    (void)state;
    for (uint32_t i = 0; i + 1 < N; i++)
        s_expect(s_go(FERRY_SAGA_RUNNING, i, 3, FY_SAGA_EV_OK), FERRY_SAGA_RUNNING, i + 1, 1,
                 FY_SAGA_SEND_DO, false);
    /* The last step done: DONE, its step past the last, nothing sent. */
    s_expect(s_go(FERRY_SAGA_RUNNING, N - 1, 1, FY_SAGA_EV_OK), FERRY_SAGA_DONE, N, 1,
             FY_SAGA_SEND_NONE, true);
}

static void
test_failed_step_compensates_the_ones_before(void **state)
{
    (void)state;
    /* charge (2) failed: it did nothing; notify (1) has no compensation, so
     * reserve (0) is undone. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 2, 1, FY_SAGA_EV_FAIL), FERRY_SAGA_COMPENSATING, 0, 1,
             FY_SAGA_SEND_UNDO, false);
    /* ship (3) failed: charge (2) is undone first. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 3, 1, FY_SAGA_EV_FAIL), FERRY_SAGA_COMPENSATING, 2, 1,
             FY_SAGA_SEND_UNDO, false);
    /* The first step failed: nothing to undo, COMPENSATED at once, at that step. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 0, 2, FY_SAGA_EV_FAIL), FERRY_SAGA_COMPENSATED, 0, 2,
             FY_SAGA_SEND_NONE, true);
}

static void
test_timed_out_step_is_compensated_itself(void **state)
{
    (void)state;
    /* charge (2) timed out: it may have charged, so its own undo runs first. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 2, 1, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_COMPENSATING, 2, 1,
             FY_SAGA_SEND_UNDO, false);
    /* notify (1) timed out: no compensation of its own; reserve (0) is undone. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 1, 1, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_COMPENSATING, 0, 1,
             FY_SAGA_SEND_UNDO, false);
}

static void
test_compensations_newest_first_then_compensated(void **state)
{
    (void)state;
    s_expect(s_go(FERRY_SAGA_COMPENSATING, 3, 1, FY_SAGA_EV_OK), FERRY_SAGA_COMPENSATING, 2, 1,
             FY_SAGA_SEND_UNDO, false);
    s_expect(s_go(FERRY_SAGA_COMPENSATING, 2, 4, FY_SAGA_EV_OK), FERRY_SAGA_COMPENSATING, 0, 1,
             FY_SAGA_SEND_UNDO, false); /* step 1 has none: skipped */
    s_expect(s_go(FERRY_SAGA_COMPENSATING, 0, 1, FY_SAGA_EV_OK), FERRY_SAGA_COMPENSATED, 0, 1,
             FY_SAGA_SEND_NONE, true);
}

static void
test_compensation_retried(void **state)
{
    (void)state;
    /* A compensation must happen: a timeout or a failure waits, then sends
     * it again, one attempt more (no limit by default). */
    s_expect_wait(s_go(FERRY_SAGA_COMPENSATING, 2, 1, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_COMPENSATING,
                  2, 2);
    s_expect_wait(s_go(FERRY_SAGA_COMPENSATING, 2, 7, FY_SAGA_EV_FAIL), FERRY_SAGA_COMPENSATING, 2,
                  8);
    fy_saga_next_t n = fy_saga_transition(
        s_comp, N, (fy_saga_at_t){FERRY_SAGA_COMPENSATING, 2, 2, true}, FY_SAGA_EV_DUE);
    s_expect(n, FERRY_SAGA_COMPENSATING, 2, 2, FY_SAGA_SEND_UNDO, false);
    /* While it waits, answers of earlier attempts change nothing. */
    n = fy_saga_transition(s_comp, N, (fy_saga_at_t){FERRY_SAGA_COMPENSATING, 2, 2, true},
                           FY_SAGA_EV_OK);
    assert_false(n.changed);
}

static void
test_step_retried_then_compensated(void **state)
{
    (void)state;
    /* charge (2) has 3 attempts: a timeout or a failure-for-now waits and
     * sends it again ... */
    s_expect_wait(s_go_r(FERRY_SAGA_RUNNING, 2, 1, false, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_RUNNING,
                  2, 2);
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 2, true, FY_SAGA_EV_DUE), FERRY_SAGA_RUNNING, 2, 2,
             FY_SAGA_SEND_DO, false);
    s_expect_wait(s_go_r(FERRY_SAGA_RUNNING, 2, 2, false, FY_SAGA_EV_RETRY), FERRY_SAGA_RUNNING, 2,
                  3);
    /* ... a success on a later attempt goes on ... */
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 3, false, FY_SAGA_EV_OK), FERRY_SAGA_RUNNING, 3, 1,
             FY_SAGA_SEND_DO, false);
    /* ... the last attempt timing out compensates charge itself, failing
     * for now on it compensates the steps before (it did nothing) ... */
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 3, false, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_COMPENSATING,
             2, 1, FY_SAGA_SEND_UNDO, false);
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 3, false, FY_SAGA_EV_RETRY), FERRY_SAGA_COMPENSATING, 0,
             1, FY_SAGA_SEND_UNDO, false);
    /* ... and a plain failure is never retried. */
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 1, false, FY_SAGA_EV_FAIL), FERRY_SAGA_COMPENSATING, 0,
             1, FY_SAGA_SEND_UNDO, false);
    /* One attempt (the default): a failure-for-now is a failure. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 2, 1, FY_SAGA_EV_RETRY), FERRY_SAGA_COMPENSATING, 0, 1,
             FY_SAGA_SEND_UNDO, false);
}

static void
test_compensation_gives_up_failed_then_resumed(void **state)
{
    (void)state;
    /* charge's compensation has 2 attempts: the second failing is FAILED. */
    s_expect_wait(s_go_r(FERRY_SAGA_COMPENSATING, 2, 1, false, FY_SAGA_EV_FAIL),
                  FERRY_SAGA_COMPENSATING, 2, 2);
    s_expect(s_go_r(FERRY_SAGA_COMPENSATING, 2, 2, false, FY_SAGA_EV_TIMEOUT), FERRY_SAGA_FAILED, 2,
             2, FY_SAGA_SEND_NONE, true);
    /* FAILED takes nothing but a person's resume: its compensation again. */
    const fy_saga_event_t evs[] = {FY_SAGA_EV_OK, FY_SAGA_EV_FAIL, FY_SAGA_EV_TIMEOUT,
                                   FY_SAGA_EV_DUE, FY_SAGA_EV_CANCEL};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        assert_false(s_go_r(FERRY_SAGA_FAILED, 2, 2, false, evs[i]).changed);
    s_expect(s_go_r(FERRY_SAGA_FAILED, 2, 2, false, FY_SAGA_EV_RESUME), FERRY_SAGA_COMPENSATING, 2,
             1, FY_SAGA_SEND_UNDO, false);
}

static void
test_cancelled_by_hand(void **state)
{
    (void)state;
    /* The running step may have run: its own compensation first. */
    s_expect(s_go(FERRY_SAGA_RUNNING, 2, 1, FY_SAGA_EV_CANCEL), FERRY_SAGA_COMPENSATING, 2, 1,
             FY_SAGA_SEND_UNDO, false);
    s_expect(s_go_r(FERRY_SAGA_RUNNING, 2, 2, true, FY_SAGA_EV_CANCEL), FERRY_SAGA_COMPENSATING, 2,
             1, FY_SAGA_SEND_UNDO, false);
    /* Compensating already, or ended: nothing to cancel. */
    assert_false(s_go(FERRY_SAGA_COMPENSATING, 2, 1, FY_SAGA_EV_CANCEL).changed);
    assert_false(s_go(FERRY_SAGA_DONE, N, 1, FY_SAGA_EV_CANCEL).changed);
}

static void
test_backoff(void **state)
{
    (void)state;
    for (uint64_t seed = 0; seed < 200; seed++) {
        uint64_t b2 = fy_saga_backoff_ms(1000, 2, seed), b3 = fy_saga_backoff_ms(1000, 3, seed),
                 b20 = fy_saga_backoff_ms(1000, 20, seed);
        assert_true(b2 >= 800 && b2 <= 1200);      /* the first wait: the base, +-20 % */
        assert_true(b3 >= 1600 && b3 <= 2400);     /* doubled */
        assert_true(b20 >= 48000 && b20 <= 72000); /* at most 60 s, +-20 % */
    }
    /* Not all alike: sagas that failed together do not come back together. */
    assert_true(fy_saga_backoff_ms(1000, 2, 1) != fy_saga_backoff_ms(1000, 2, 2) ||
                fy_saga_backoff_ms(1000, 2, 3) != fy_saga_backoff_ms(1000, 2, 4));
}

static void
test_ended_sagas_take_no_events(void **state)
{
    (void)state;
    const fy_saga_event_t evs[] = {FY_SAGA_EV_OK,  FY_SAGA_EV_FAIL,   FY_SAGA_EV_TIMEOUT,
                                   FY_SAGA_EV_DUE, FY_SAGA_EV_CANCEL, FY_SAGA_EV_RESUME};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        fy_saga_next_t d = s_go(FERRY_SAGA_DONE, N, 1, evs[i]);
        fy_saga_next_t c = s_go(FERRY_SAGA_COMPENSATED, 0, 1, evs[i]);
        assert_false(d.changed);
        assert_false(c.changed);
        assert_int_equal(d.at.state, FERRY_SAGA_DONE);
        assert_int_equal(c.at.state, FERRY_SAGA_COMPENSATED);
    }
    /* A record whose step the definition does not have is left alone. */
    assert_false(s_go(FERRY_SAGA_RUNNING, N + 3, 1, FY_SAGA_EV_OK).changed);
}

/* A whole run, event by event: which commands go out, in which order. */
static void
test_whole_run(void **state)
{
    (void)state;
    fy_saga_at_t at = {FERRY_SAGA_RUNNING, 0, 1, false};
    const fy_saga_event_t evs[] = {
        FY_SAGA_EV_OK,      FY_SAGA_EV_OK,  FY_SAGA_EV_OK, FY_SAGA_EV_FAIL, /* ship fails */
        FY_SAGA_EV_TIMEOUT, FY_SAGA_EV_DUE, FY_SAGA_EV_OK, FY_SAGA_EV_OK};
    const char *want = "D1 D2 D3 U2 w U2 U0 end";
    char got[64] = "";
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        fy_saga_next_t n = fy_saga_transition(s_comp, N, at, evs[i]);
        assert_true(n.changed);
        at = n.at;
        char w[8];
        snprintf(w, sizeof w, "%s%s", got[0] ? " " : "",
                 n.ended                     ? "end"
                 : at.waiting                ? "w"
                 : n.send == FY_SAGA_SEND_DO ? (char[]){'D', (char)('0' + at.step), 0}
                                             : (char[]){'U', (char)('0' + at.step), 0});
        strncat(got, w, sizeof got - strlen(got) - 1);
    }
    assert_string_equal(got, want);
    assert_int_equal(at.state, FERRY_SAGA_COMPENSATED);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_succeed_in_order),
        cmocka_unit_test(test_failed_step_compensates_the_ones_before),
        cmocka_unit_test(test_timed_out_step_is_compensated_itself),
        cmocka_unit_test(test_compensations_newest_first_then_compensated),
        cmocka_unit_test(test_compensation_retried),
        cmocka_unit_test(test_step_retried_then_compensated),
        cmocka_unit_test(test_compensation_gives_up_failed_then_resumed),
        cmocka_unit_test(test_cancelled_by_hand),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_ended_sagas_take_no_events),
        cmocka_unit_test(test_whole_run),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("saga_transition", tests, NULL, NULL);
}
