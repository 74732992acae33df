/*
 * transition.h - the saga state machine, without storage or time: given
 * where a saga stands and what happened (its step answered, failed or timed
 * out), where it goes next and which command that sends. saga.c applies the
 * result in the service's transaction (record, timer, outbox command).
 * Pure functions; any thread.
 *
 * The rules: a step that succeeds moves to the next (the last one: DONE). A
 * step that fails did nothing, so the compensations of the compensable steps
 * before it run, newest first; one that timed out may have done its work, so
 * its own compensation runs too. When no compensable step is left the saga
 * is COMPENSATED. A compensation that times out is sent again (it must
 * happen); a failed one waits for its deadline and is sent again then.
 */
#ifndef FY_SAGA_TRANSITION_H
#define FY_SAGA_TRANSITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_saga.h"

typedef enum fy_saga_event {
    FY_SAGA_EV_OK,     /**< the step (or compensation) in progress answered "done" */
    FY_SAGA_EV_FAIL,   /**< it answered "failed" */
    FY_SAGA_EV_TIMEOUT /**< its deadline passed without an answer */
} fy_saga_event_t;

/** What a transition sends. */
typedef enum fy_saga_send {
    FY_SAGA_SEND_NONE, /**< nothing: the saga ended or the event changes nothing */
    FY_SAGA_SEND_DO,   /**< the command of step `step` */
    FY_SAGA_SEND_UNDO  /**< the compensation of step `step` */
} fy_saga_send_t;

/** Where a saga stands: state, step and the attempt at it (1, 2, ...). */
typedef struct fy_saga_at {
    ferry_saga_state_t state;
    uint32_t step, attempt;
} fy_saga_at_t;

typedef struct fy_saga_next {
    fy_saga_at_t at;     /**< where it goes */
    fy_saga_send_t send; /**< the command to send for at.step */
    bool changed;        /**< false: the event does not apply (nothing to write) */
    bool ended;          /**< at.state is DONE or COMPENSATED */
} fy_saga_next_t;

/**
 * The transition of a saga of @p nsteps steps (step i compensable when
 * @p compensable[i]) standing at @p at on event @p ev.
 */
fy_saga_next_t fy_saga_transition(const bool *compensable, size_t nsteps, fy_saga_at_t at,
                                  fy_saga_event_t ev);

#endif /* FY_SAGA_TRANSITION_H */
