/* SPDX-License-Identifier: MIT */
/*
 * textout.c - text into a fixed buffer (textout.h).
 */
#include "textout.h"

#include <stdarg.h>
#include <stdio.h>

void
fy_textout(fy_textout_t *o, const char *fmt, ...)
{
    if (o->n >= o->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->buf + o->n, o->cap - o->n, fmt, ap);
    va_end(ap);
    o->n = w < 0 || o->n + (size_t)w > o->cap ? o->cap : o->n + (size_t)w;
}
