/* SPDX-License-Identifier: MIT */
/*
 * results.c - the steps' results as a saga keeps them (results.h).
 */
#include "results.h"

#include <stdlib.h>
#include <string.h>

#include "text.h"

bool
fy_saga_results_next(const char *buf, size_t len, size_t *at, const char **step, const char **text)
{
    if (!buf || *at >= len)
        return false;
    const char *s = buf + *at, *end = buf + len;
    const char *z = memchr(s, '\0', (size_t)(end - s));
    if (!z || z + 1 >= end)
        return false;
    const char *t = z + 1, *zt = memchr(t, '\0', (size_t)(end - t));
    if (!zt)
        return false;
    *step = s;
    *text = t;
    *at = (size_t)(zt + 1 - buf);
    return true;
}

bool
fy_saga_results_valid(const char *buf, size_t len)
{
    if (!buf || len == 0)
        return len == 0;
    size_t at = 0;
    const char *s, *t;
    while (fy_saga_results_next(buf, len, &at, &s, &t))
        if (!*s)
            return false;
    return at == len;
}

const char *
fy_saga_results_get(const char *buf, size_t len, const char *step)
{
    size_t at = 0;
    const char *s, *t;
    while (fy_saga_results_next(buf, len, &at, &s, &t))
        if (strcmp(s, step) == 0)
            return t;
    return NULL;
}

bool
fy_saga_results_set(char **buf, size_t *len, const char *step, const char *text)
{
    size_t ls = strlen(step) + 1, lt = strlen(text) + 1, keep = 0;
    char *out = malloc(*len + ls + lt);
    if (!out)
        return false;
    size_t at = 0;
    const char *s, *t;
    while (fy_saga_results_next(*buf, *len, &at, &s, &t)) {
        if (strcmp(s, step) == 0)
            continue;
        size_t n = (size_t)(t - s) + strlen(t) + 1;
        memcpy(out + keep, s, n);
        keep += n;
    }
    memcpy(out + keep, step, ls);
    memcpy(out + keep + ls, text, lt);
    free(*buf);
    *buf = out;
    *len = keep + ls + lt;
    return true;
}

bool
fy_saga_text(const void *in, size_t len, char *out, size_t cap)
{
    fy_bytes_t b = {(const uint8_t *)in, len};
    if (len < cap && fy_text_valid(b)) { /* the common case: kept as it is */
        if (len)
            memcpy(out, in, len);
        out[len] = '\0';
        return true;
    }
    fy_text_escape(b, out, cap);
    return false;
}
