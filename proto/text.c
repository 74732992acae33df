/* SPDX-License-Identifier: MIT */
/*
 * text.c - the text rule and its escaping (text.h).
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

/* The length of the valid, non-control UTF-8 character at p[0..n), or 0. */
static size_t
s_char(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    if (c < 0x20 || c == 0x7f)
        return 0;
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0; /* a continuation byte, an overlong lead (c0, c1) or past U+10FFFF */
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, a surrogate */
    if (cp >= 0x80 && cp <= 0x9f)
        return 0; /* C1 controls */
    return len;
}

bool
fy_text_valid(fy_bytes_t s)
{
    for (size_t i = 0; i < s.len;) {
        size_t l = s_char(s.ptr + i, s.len - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

size_t
fy_text_escape(fy_bytes_t s, char *out, size_t cap)
{
    size_t need = 0, written = 0;
    bool full = !out || cap == 0;
    for (size_t i = 0; i < s.len;) {
        size_t l = s_char(s.ptr + i, s.len - i);
        char esc[8];
        const char *piece = esc;
        size_t plen;
        if (l && s.ptr[i] != '\\') {
            piece = (const char *)s.ptr + i;
            plen = l;
        } else {
            if (s.ptr[i] == '\\')
                plen = (size_t)snprintf(esc, sizeof esc, "\\\\");
            else
                plen = (size_t)snprintf(esc, sizeof esc, "\\x%02x", s.ptr[i]);
            l = 1;
        }
        if (!full && written + plen < cap) {
            memcpy(out + written, piece, plen);
            written += plen;
        } else {
            full = true; /* cut here, at a whole character */
        }
        need += plen;
        i += l;
    }
    if (out && cap)
        out[written] = '\0';
    return need;
}
