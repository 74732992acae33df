/* SPDX-License-Identifier: MIT */
/*
 * start_queue.h - the starts of ferry_saga_start_async() waiting for their
 * commit: copied when asked for, committed together in one transaction of
 * the orchestrator's store (one fsync for many), each caller told after.
 */
#ifndef FY_SAGA_START_QUEUE_H
#define FY_SAGA_START_QUEUE_H

#include <stddef.h>

#include "ferry_saga.h"

typedef struct fy_saga_start fy_saga_start_t;

typedef struct fy_saga_startq {
    fy_saga_start_t *items;
    size_t n, cap;
} fy_saga_startq_t;

/** Queues a copy of the start. @return FERRY_OK, FERRY_ENOMEM */
ferry_status_t fy_saga_startq_push(fy_saga_startq_t *q, const char *def, const char *id,
                                   const void *data, size_t len, ferry_saga_started_fn cb,
                                   void *user);

/** Runs every queued start through ferry_saga_start_in() of @p o in one
 *  transaction of its store and commits it; then calls each start's
 *  callback with its outcome (FERRY_OK, FERRY_EEXISTS, FERRY_ENOTFOUND,
 *  FERRY_EINVAL: that start alone; a store failure: all of them, nothing
 *  recorded) and frees the queue's memory: it is empty again.
 *  @return the transaction's status */
ferry_status_t fy_saga_startq_commit(fy_saga_startq_t *q, ferry_saga_orchestrator_t *o);

#endif /* FY_SAGA_START_QUEUE_H */
