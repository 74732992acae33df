/* SPDX-License-Identifier: MIT */
/*
 * grow.h - the one growable-array helper: doubles an array's capacity until
 * it holds what is needed, checking the size for overflow. Header-only; the
 * array and its capacity belong to the caller.
 */
#ifndef FY_GROW_H
#define FY_GROW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/**
 * Makes @p *arr (of @p *cap elements of @p elem bytes) hold at least @p need
 * elements; a first allocation takes @p first elements (or @p need if more).
 * @return true, or false if out of memory or the size overflows (then the
 *         array and its capacity are unchanged).
 */
static inline bool
fy_grow(void *arr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : (first ? first : 1);
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return false;
        n *= 2;
    }
    if (elem && n > SIZE_MAX / elem)
        return false;
    void **p = (void **)arr;
    void *q = realloc(*p, n * elem);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

#endif /* FY_GROW_H */
