/* SPDX-License-Identifier: MIT */
/*
 * fence.h - publishes of one connection stored in the order they were sent.
 *
 * A client pipelines publishes: the next goes out before the previous is
 * answered. When one is refused (a queue at its limit, a full disk, a topic
 * deleted) and a later one is stored — space freed in between — the later
 * one lands first: a key's events out of order. A client that cares numbers
 * its pipeline (the publish field `fence`); once a publish with fence F from
 * a peer is refused, the peer's later publishes with a fence <= F are
 * refused too (FERRY_EFENCED), until one with a higher fence arrives: the
 * client raises its fence when it learns of the refusal, before it sends the
 * refused message again. The table holds only peers with a refusal, and a
 * fixed number of them. Owned by the broker; one thread.
 */
#ifndef FY_FENCE_H
#define FY_FENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FY_FENCE_PEERS 1024

typedef struct fy_fence {
    struct {
        uint64_t key;   /* hash of the peer's routing identity; 0: free */
        uint64_t fence; /* its highest refused fence */
        uint64_t used;  /* for replacing the longest unused */
    } e[FY_FENCE_PEERS];
    uint64_t clock;
    size_t active; /* entries in use: none, and a publish costs no lookup */
} fy_fence_t;

/** An empty table. */
void fy_fence_init(fy_fence_t *t);
/** Must a publish of peer @p id with fence @p fence (> 0) be refused? A
 *  higher fence than the refused one ends the fence. */
bool fy_fence_blocks(fy_fence_t *t, const void *id, size_t id_len, uint64_t fence);
/** A publish of peer @p id with fence @p fence (> 0) was refused. */
void fy_fence_refused(fy_fence_t *t, const void *id, size_t id_len, uint64_t fence);

#endif /* FY_FENCE_H */
