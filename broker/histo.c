/* SPDX-License-Identifier: MIT */
/*
 * histo.c - see histo.h.
 */
#include "histo.h"

#include <stdio.h>
#include <string.h>

void
fy_histo_init(fy_histo_t *h, const uint64_t *bounds, size_t nbounds)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->nbounds = nbounds < FY_HISTO_MAX ? nbounds : FY_HISTO_MAX;
}

void
fy_histo_add(fy_histo_t *h, uint64_t v)
{
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->count[i]++;
    h->n++;
    h->sum += v;
}

/* Advances *n by what snprintf wrote at buf + *n, never past cap - 1. */
static void
s_advance(size_t *n, size_t cap, int k)
{
    if (k > 0)
        *n += (size_t)k < cap - *n ? (size_t)k : cap - *n - 1;
}

size_t
fy_histo_format(const fy_histo_t *h, const char *name, const char *help, double scale, char *buf,
                size_t cap)
{
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    size_t n = 0;
    s_advance(&n, cap, snprintf(buf, cap, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name));
    uint64_t cum = 0;
    for (size_t i = 0; i < h->nbounds && n + 1 < cap; i++) {
        cum += h->count[i];
        s_advance(&n, cap,
                  snprintf(buf + n, cap - n, "%s_bucket{le=\"%g\"} %llu\n", name,
                           (double)h->bounds[i] / scale, (unsigned long long)cum));
    }
    if (n + 1 < cap)
        s_advance(&n, cap,
                  snprintf(buf + n, cap - n,
                           "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %g\n%s_count %llu\n", name,
                           (unsigned long long)h->n, name, (double)h->sum / scale, name,
                           (unsigned long long)h->n));
    return n;
}
