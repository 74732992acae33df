/* SPDX-License-Identifier: MIT */
/*
 * transition.h - the saga state machine, without storage or time: given
 * where a saga stands and what happened (its step answered, failed, failed
 * for now, timed out; its wait to send again ended; a person cancelled or
 * resumed it), where it goes next and which command that sends. saga.c
 * applies the result in the store's transaction (record, outbox command)
 * and sets the deadlines. Pure functions; any thread.
 *
 * The rules: a step that succeeds moves to the next (the last one: DONE).
 * A step that times out, or fails for now (the participant says it may
 * pass), is tried again - after a wait, attempt + 1 - while it has attempts
 * left (max_attempts). A step that fails did nothing, so the compensations
 * of the compensable steps before it run, newest first; one that timed out
 * for the last time may have done its work, so its own compensation runs
 * too. When no compensable step is left the saga is COMPENSATED. A
 * compensation that fails or times out is sent again after a wait; one
 * that has had max_undo_attempts (0: no limit) leaves the saga FAILED, for
 * a person: resumed, it compensates that step again from attempt 1.
 */
#ifndef FY_SAGA_TRANSITION_H
#define FY_SAGA_TRANSITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_saga.h"

typedef enum fy_saga_event {
    FY_SAGA_EV_OK,      /**< the step (or compensation) in progress answered "done" */
    FY_SAGA_EV_FAIL,    /**< it answered "failed" */
    FY_SAGA_EV_TIMEOUT, /**< its deadline passed without an answer */
    FY_SAGA_EV_RETRY,   /**< it answered "failed for now": it may pass later */
    FY_SAGA_EV_DUE,     /**< a saga waiting to send again: the wait is over */
    FY_SAGA_EV_CANCEL,  /**< a person: stop and compensate what may have been done */
    FY_SAGA_EV_RESUME   /**< a person: a FAILED saga compensates again */
} fy_saga_event_t;

/** What a transition sends. */
typedef enum fy_saga_send {
    FY_SAGA_SEND_NONE, /**< nothing: the saga ended, waits, or the event changes nothing */
    FY_SAGA_SEND_DO,   /**< the command of step `step` */
    FY_SAGA_SEND_UNDO  /**< the compensation of step `step` */
} fy_saga_send_t;

/** How a step is retried. */
typedef struct fy_saga_policy {
    bool compensable;
    uint32_t max_attempts;      /**< of its command, the first included (>= 1) */
    uint32_t max_undo_attempts; /**< of its compensation; 0: no limit */
} fy_saga_policy_t;

/** Where a saga stands: state, step, the attempt at it (1, 2, ...), and
 *  whether that attempt waits to be sent. */
typedef struct fy_saga_at {
    ferry_saga_state_t state;
    uint32_t step, attempt;
    bool waiting;
} fy_saga_at_t;

typedef struct fy_saga_next {
    fy_saga_at_t at;     /**< where it goes (at.waiting: send at.attempt after a wait) */
    fy_saga_send_t send; /**< the command to send for at.step now */
    bool changed;        /**< false: the event does not apply (nothing to write) */
    bool ended;          /**< at.state is DONE, COMPENSATED or FAILED */
} fy_saga_next_t;

/**
 * The transition of a saga of @p nsteps steps with policies @p steps,
 * standing at @p at, on event @p ev.
 */
fy_saga_next_t fy_saga_transition(const fy_saga_policy_t *steps, size_t nsteps, fy_saga_at_t at,
                                  fy_saga_event_t ev);

/**
 * How long a saga waits before sending attempt @p attempt (2, 3, ...) when
 * the first wait is @p base_ms: doubled per attempt, at most 60 s, with
 * +-20 % jitter from @p seed (the saga id's hash, say), so that sagas that
 * failed together do not come back together.
 */
uint64_t fy_saga_backoff_ms(uint64_t base_ms, uint32_t attempt, uint64_t seed);

#endif /* FY_SAGA_TRANSITION_H */
