/* SPDX-License-Identifier: MIT */
/*
 * fuzz_subject.c - subject patterns and matching (proto/subject.h) and
 * text validation and escaping (proto/text.h): the input is a pattern and
 * a subject split at the first NUL byte. Checks what must hold for any
 * input: a pattern without wildcards matches exactly itself, and an
 * escaped text fits its buffer and is valid text (what a terminal may get).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "subject.h"
#include "text.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    uint8_t *pat = malloc(plen ? plen : 1), *subj = malloc(size - plen + 1);
    if (!pat || !subj) {
        free(pat);
        free(subj);
        return 0;
    }
    memcpy(pat, data, plen);
    size_t slen = nul ? size - plen - 1 : 0;
    memcpy(subj, nul ? nul + 1 : data, slen);
    fy_bytes_t p = {pat, plen}, s = {subj, slen};
    if (fy_subject_pattern_valid(p)) {
        bool m = fy_subject_match(p, s);
        bool wild = memchr(pat, '*', plen) || memchr(pat, '>', plen);
        if (!wild && m != (plen == slen && memcmp(pat, subj, plen) == 0))
            abort();
        if (!wild && !fy_subject_match(p, p))
            abort();
    }
    (void)fy_text_valid(s);
    char out[512];
    size_t n = fy_text_escape(s, out, sizeof out);
    size_t len = strlen(out);
    if (len >= sizeof out || (n < sizeof out && len != n) ||
        !fy_text_valid((fy_bytes_t){(const uint8_t *)out, len}))
        abort();
    free(pat);
    free(subj);
    return 0;
}
