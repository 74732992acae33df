/*
 * transition.c - the saga state machine (transition.h).
 */
#include "transition.h"

/* The newest compensable step at or below @p from, or -1. */
static int
s_compensable_at_or_below(const bool *compensable, int from)
{
    for (int j = from; j >= 0; j--)
        if (compensable[j])
            return j;
    return -1;
}

/* Compensating step @p j, or COMPENSATED when there is none (-1). */
static fy_saga_next_t
s_compensate(int j)
{
    if (j < 0)
        return (fy_saga_next_t){
            .at = {FERRY_SAGA_COMPENSATED, 0, 0}, .changed = true, .ended = true};
    return (fy_saga_next_t){.at = {FERRY_SAGA_COMPENSATING, (uint32_t)j, 1},
                            .send = FY_SAGA_SEND_UNDO,
                            .changed = true};
}

fy_saga_next_t
fy_saga_transition(const bool *compensable, size_t nsteps, fy_saga_at_t at, fy_saga_event_t ev)
{
    fy_saga_next_t none = {.at = at};
    if (at.step >= nsteps && at.state != FERRY_SAGA_DONE)
        return none; /* a record this definition cannot have: leave it */
    if (at.state == FERRY_SAGA_RUNNING) {
        if (ev == FY_SAGA_EV_OK && at.step + 1 < nsteps)
            return (fy_saga_next_t){.at = {FERRY_SAGA_RUNNING, at.step + 1, 1},
                                    .send = FY_SAGA_SEND_DO,
                                    .changed = true};
        if (ev == FY_SAGA_EV_OK)
            return (fy_saga_next_t){.at = {FERRY_SAGA_DONE, (uint32_t)nsteps, at.attempt},
                                    .changed = true,
                                    .ended = true};
        /* A failed step did nothing; one that timed out may have. */
        int from = (int)at.step - (ev == FY_SAGA_EV_FAIL ? 1 : 0);
        fy_saga_next_t n = s_compensate(s_compensable_at_or_below(compensable, from));
        if (n.ended) /* nothing to undo: it stays at the step that failed */
            n.at.step = at.step, n.at.attempt = at.attempt;
        return n;
    }
    if (at.state == FERRY_SAGA_COMPENSATING) {
        if (ev == FY_SAGA_EV_OK) {
            fy_saga_next_t n =
                s_compensate(s_compensable_at_or_below(compensable, (int)at.step - 1));
            if (n.ended)
                n.at.step = at.step, n.at.attempt = at.attempt;
            return n;
        }
        if (ev == FY_SAGA_EV_TIMEOUT) /* a compensation must happen: again */
            return (fy_saga_next_t){.at = {FERRY_SAGA_COMPENSATING, at.step, at.attempt + 1},
                                    .send = FY_SAGA_SEND_UNDO,
                                    .changed = true};
        return none; /* a failed compensation is sent again at its deadline */
    }
    return none; /* ended sagas take no events */
}
