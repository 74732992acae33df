/* SPDX-License-Identifier: MIT */
/*
 * textout.h - text appended into a fixed buffer, printf-style, that stops
 * quietly at its end (the /metrics pages of ferryd and ferry-relay).
 */
#ifndef FY_TEXTOUT_H
#define FY_TEXTOUT_H

#include <stddef.h>

typedef struct fy_textout {
    char *buf;
    size_t cap, n; /* n == cap once full */
} fy_textout_t;

/** Appends; past the end nothing more is written. */
void fy_textout(fy_textout_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
