/* SPDX-License-Identifier: MIT */
/*
 * bytes.h - byte strings with their length, and the big-endian integer
 * helpers used for every on-disk and on-wire fixed-width integer.
 * Header-only; no state.
 */
#ifndef FY_BYTES_H
#define FY_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** A borrowed byte string; the owner is whoever handed it out. */
typedef struct fy_bytes {
    const uint8_t *ptr;
    size_t len;
} fy_bytes_t;

static inline fy_bytes_t
fy_bytes_str(const char *s)
{
    fy_bytes_t b = {(const uint8_t *)s, s ? strlen(s) : 0};
    return b;
}

static inline int
fy_bytes_eq(fy_bytes_t a, fy_bytes_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline void
fy_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t
fy_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void
fy_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t
fy_be32_get(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void
fy_be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t
fy_be16_get(const uint8_t *p)
{
    return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

#endif /* FY_BYTES_H */
