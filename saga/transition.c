/* SPDX-License-Identifier: MIT */
/*
 * transition.c - the saga state machine (transition.h).
 */
#include "transition.h"

/* The newest compensable step at or below @p from, or -1. */
static int
s_compensable_at_or_below(const fy_saga_policy_t *steps, int from)
{
    for (int j = from; j >= 0; j--)
        if (steps[j].compensable)
            return j;
    return -1;
}

/* Compensating step @p j, or COMPENSATED when there is none (-1), staying
 * at @p at's step and attempt. */
static fy_saga_next_t
s_compensate(int j, fy_saga_at_t at)
{
    if (j < 0)
        return (fy_saga_next_t){.at = {FERRY_SAGA_COMPENSATED, at.step, at.attempt, false},
                                .changed = true,
                                .ended = true};
    return (fy_saga_next_t){.at = {FERRY_SAGA_COMPENSATING, (uint32_t)j, 1, false},
                            .send = FY_SAGA_SEND_UNDO,
                            .changed = true};
}

/* The same state, step and direction: attempt + 1, after a wait. */
static fy_saga_next_t
s_again(fy_saga_at_t at)
{
    return (fy_saga_next_t){.at = {at.state, at.step, at.attempt + 1, true}, .changed = true};
}

static fy_saga_next_t
s_running(const fy_saga_policy_t *steps, size_t nsteps, fy_saga_at_t at, fy_saga_event_t ev)
{
    const fy_saga_policy_t *p = &steps[at.step];
    bool left = at.attempt < p->max_attempts;
    if (at.waiting) {
        if (ev == FY_SAGA_EV_DUE)
            return (fy_saga_next_t){.at = {at.state, at.step, at.attempt, false},
                                    .send = FY_SAGA_SEND_DO,
                                    .changed = true};
        if (ev == FY_SAGA_EV_CANCEL) /* an earlier attempt may have run */
            return s_compensate(s_compensable_at_or_below(steps, (int)at.step), at);
        return (fy_saga_next_t){.at = at}; /* late answers of earlier attempts */
    }
    switch (ev) {
    case FY_SAGA_EV_OK:
        if (at.step + 1 < nsteps)
            return (fy_saga_next_t){.at = {FERRY_SAGA_RUNNING, at.step + 1, 1, false},
                                    .send = FY_SAGA_SEND_DO,
                                    .changed = true};
        return (fy_saga_next_t){.at = {FERRY_SAGA_DONE, (uint32_t)nsteps, at.attempt, false},
                                .changed = true,
                                .ended = true};
    case FY_SAGA_EV_RETRY: /* nothing was done: the steps before are undone */
        return left ? s_again(at)
                    : s_compensate(s_compensable_at_or_below(steps, (int)at.step - 1), at);
    case FY_SAGA_EV_FAIL:
        return s_compensate(s_compensable_at_or_below(steps, (int)at.step - 1), at);
    case FY_SAGA_EV_TIMEOUT: /* it may have run: its own undo too */
        if (left)
            return s_again(at);
        /* fall through */
    case FY_SAGA_EV_CANCEL:
        return s_compensate(s_compensable_at_or_below(steps, (int)at.step), at);
    default:
        return (fy_saga_next_t){.at = at};
    }
}

static fy_saga_next_t
s_compensating(const fy_saga_policy_t *steps, fy_saga_at_t at, fy_saga_event_t ev)
{
    const fy_saga_policy_t *p = &steps[at.step];
    if (at.waiting)
        return ev == FY_SAGA_EV_DUE ? (fy_saga_next_t){.at = {at.state, at.step, at.attempt, false},
                                                       .send = FY_SAGA_SEND_UNDO,
                                                       .changed = true}
                                    : (fy_saga_next_t){.at = at};
    switch (ev) {
    case FY_SAGA_EV_OK:
        return s_compensate(s_compensable_at_or_below(steps, (int)at.step - 1), at);
    case FY_SAGA_EV_FAIL:
    case FY_SAGA_EV_RETRY:
    case FY_SAGA_EV_TIMEOUT: /* a compensation must happen: again, while it may */
        if (p->max_undo_attempts == 0 || at.attempt < p->max_undo_attempts)
            return s_again(at);
        return (fy_saga_next_t){
            .at = {FERRY_SAGA_FAILED, at.step, at.attempt, false}, .changed = true, .ended = true};
    default:
        return (fy_saga_next_t){.at = at};
    }
}

fy_saga_next_t
fy_saga_transition(const fy_saga_policy_t *steps, size_t nsteps, fy_saga_at_t at,
                   fy_saga_event_t ev)
{
    fy_saga_next_t none = {.at = at};
    if (at.step >= nsteps && at.state != FERRY_SAGA_DONE)
        return none; /* a record this definition cannot have: leave it */
    switch (at.state) {
    case FERRY_SAGA_RUNNING:
        return s_running(steps, nsteps, at, ev);
    case FERRY_SAGA_COMPENSATING:
        return s_compensating(steps, at, ev);
    case FERRY_SAGA_FAILED:
        if (ev == FY_SAGA_EV_RESUME)
            return (fy_saga_next_t){.at = {FERRY_SAGA_COMPENSATING, at.step, 1, false},
                                    .send = FY_SAGA_SEND_UNDO,
                                    .changed = true};
        return none;
    default:
        return none; /* DONE and COMPENSATED take no events */
    }
}

uint64_t
fy_saga_backoff_ms(uint64_t base_ms, uint32_t attempt, uint64_t seed)
{
    uint64_t ms = base_ms ? base_ms : 1;
    for (uint32_t a = 2; a < attempt && ms < 60000; a++)
        ms *= 2;
    if (ms > 60000)
        ms = 60000;
    /* +-20 %: seed mixed with the attempt (splitmix64's finaliser). */
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * attempt;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return ms * (800 + z % 401) / 1000;
}
