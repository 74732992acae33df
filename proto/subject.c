/* SPDX-License-Identifier: MIT */
/*
 * subject.c - token-wise matching of subjects against filter patterns.
 */
#include "subject.h"

#include <string.h>

/* Length of the token starting at p[i] (up to the next '.' or the end). */
static size_t
s_token(fy_bytes_t b, size_t i)
{
    const uint8_t *dot = memchr(b.ptr + i, '.', b.len - i);
    return dot ? (size_t)(dot - (b.ptr + i)) : b.len - i;
}

bool
fy_subject_pattern_valid(fy_bytes_t p)
{
    if (p.len == 0 || p.len > 255)
        return false;
    for (size_t i = 0; i <= p.len;) {
        size_t n = s_token(p, i);
        if (n == 0)
            return false;
        const uint8_t *t = p.ptr + i;
        bool last = i + n == p.len;
        if (n == 1 && (t[0] == '*' || t[0] == '>')) {
            if (t[0] == '>' && !last)
                return false;
        } else {
            for (size_t j = 0; j < n; j++) {
                uint8_t c = t[j];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-'))
                    return false;
            }
        }
        if (last)
            return true;
        i += n + 1;
    }
    return false;
}

bool
fy_subject_match(fy_bytes_t p, fy_bytes_t s)
{
    size_t i = 0, j = 0;
    while (i < p.len) {
        if (j > s.len || (j == s.len && s.len > 0))
            return false;
        size_t pn = s_token(p, i);
        if (pn == 1 && p.ptr[i] == '>')
            return j < s.len; /* one or more tokens left */
        if (s.len == 0)
            return false;
        size_t sn = s_token(s, j);
        if (!(pn == 1 && p.ptr[i] == '*') && (pn != sn || memcmp(p.ptr + i, s.ptr + j, pn) != 0))
            return false;
        i += pn + 1;
        j += sn + 1;
    }
    return j > s.len; /* both ran out together */
}
