/* SPDX-License-Identifier: MIT */
/*
 * hash.h - FNV-1a, 64 bits: the one small non-cryptographic hash, for
 * tables keyed by peer identities (fence.c, ratelog.c) and the content
 * hash kept with dedupe entries. Header-only; no state.
 */
#ifndef FY_HASH_H
#define FY_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FY_FNV_OFFSET 14695981039346656037ull

/** Continues hash @p h (start with FY_FNV_OFFSET) over @p len bytes at @p p. */
static inline uint64_t
fy_fnv1a(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/** The hash of @p len bytes, never 0 (0 can then mean "none"). */
static inline uint64_t
fy_fnv1a_nz(const void *p, size_t len)
{
    uint64_t h = fy_fnv1a(FY_FNV_OFFSET, p, len);
    return h ? h : 1;
}

#endif /* FY_HASH_H */
