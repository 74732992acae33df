/* SPDX-License-Identifier: MIT */
/*
 * ratelog.h - log lines about one peer at most once per interval: a client
 * that sends a malformed request in a loop gets one line every interval,
 * with how many were held back, instead of a line each (79 MB of log in
 * four minutes, in a probe). The table is small and fixed: a new peer takes
 * the place of the one heard from longest ago. Owned by the broker; one
 * thread.
 */
#ifndef FY_RATELOG_H
#define FY_RATELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FY_RATELOG_PEERS 64

typedef struct fy_ratelog {
    struct {
        uint64_t key;  /* hash of the peer's identity; 0: free */
        long long at;  /* monotonic ms of its last line */
        uint64_t held; /* lines held back since */
    } e[FY_RATELOG_PEERS];
    long long interval_ms;
} fy_ratelog_t;

/** An empty table: one line per peer per @p interval_ms. */
void fy_ratelog_init(fy_ratelog_t *r, long long interval_ms);

/**
 * Whether to log a line about peer @p id (its routing identity) at @p now.
 * @return true with *held the lines held back since its last one, or false
 *         (the line is counted as held).
 */
bool fy_ratelog_allow(fy_ratelog_t *r, const void *id, size_t id_len, long long now,
                      uint64_t *held);

#endif /* FY_RATELOG_H */
