/* SPDX-License-Identifier: MIT */
/*
 * histo.h - a fixed-bucket histogram for /metrics (Prometheus' histogram
 * type): counts per upper bound, the total and the sum. The broker's loop
 * adds to it; the metrics thread gets a copy in each snapshot. No
 * allocation; one writer.
 */
#ifndef FY_HISTO_H
#define FY_HISTO_H

#include <stddef.h>
#include <stdint.h>

#define FY_HISTO_MAX 16 /* upper bounds at most (+Inf is implied) */

typedef struct fy_histo {
    const uint64_t *bounds;           /* ascending upper bounds, in the unit added */
    size_t nbounds;                   /* <= FY_HISTO_MAX */
    uint64_t count[FY_HISTO_MAX + 1]; /* per bucket (not cumulative); last: above all */
    uint64_t n, sum;
} fy_histo_t;

/** An empty histogram over @p bounds (borrowed; static storage). */
void fy_histo_init(fy_histo_t *h, const uint64_t *bounds, size_t nbounds);

/** Counts one value. */
void fy_histo_add(fy_histo_t *h, uint64_t v);

/**
 * Appends @p h as Prometheus text: # HELP/# TYPE, NAME_bucket{le="..."}
 * (cumulative, bounds divided by @p scale, e.g. 1e6 for microseconds
 * shown as seconds), NAME_sum and NAME_count. @return bytes written (at
 * most cap - 1; the output is cut if it does not fit).
 */
size_t fy_histo_format(const fy_histo_t *h, const char *name, const char *help, double scale,
                       char *buf, size_t cap);

#endif
