/* SPDX-License-Identifier: MIT */
/*
 * redact.c - see redact.h.
 */
#include "redact.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Appends @p n bytes of @p s to out (keeping room for the NUL). */
static void
s_put(char *out, size_t cap, size_t *at, const char *s, size_t n)
{
    while (n-- && *at + 1 < cap)
        out[(*at)++] = *s++;
}

/* Where the value of a conninfo/query keyword that starts at @p v ends. */
static const char *
s_value_end(const char *v)
{
    if (*v == '\'') { /* quoted: up to the closing quote, \' escaped */
        for (v++; *v && *v != '\''; v++)
            if (*v == '\\' && v[1])
                v++;
        return *v ? v + 1 : v;
    }
    while (*v && *v != ' ' && *v != '\t' && *v != '&')
        v++;
    return v;
}

const char *
fr_redact(const char *in, char *out, size_t cap)
{
    if (!cap)
        return out;
    size_t at = 0;
    const char *p = in ? in : "";
    /* A URI's user:password@ (before the first '/' after "://"). */
    const char *scheme = strstr(p, "://");
    const char *pw = NULL, *pw_end = NULL;
    if (scheme) {
        const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#");
        const char *atsign = memchr(auth, '@', (size_t)(end - auth));
        const char *colon = atsign ? memchr(auth, ':', (size_t)(atsign - auth)) : NULL;
        if (colon) {
            pw = colon + 1;
            pw_end = atsign;
        }
    }
    while (*p && at + 1 < cap) {
        if (p == pw) {
            s_put(out, cap, &at, "***", 3);
            p = pw_end;
            continue;
        }
        bool boundary = p == in || p[-1] == ' ' || p[-1] == '\t' || p[-1] == '?' || p[-1] == '&';
        if (boundary && strncasecmp(p, "password", 8) == 0) {
            const char *q = p + 8;
            while (*q == ' ')
                q++;
            if (*q == '=') {
                q++;
                while (*q == ' ')
                    q++;
                s_put(out, cap, &at, p, (size_t)(q - p));
                s_put(out, cap, &at, "***", 3);
                p = s_value_end(q);
                continue;
            }
        }
        out[at++] = *p++;
    }
    out[at] = '\0';
    return out;
}
