/* SPDX-License-Identifier: MIT */
/*
 * text.h - the text rule of the protocol: keys, message ids, header names
 * and values (and the other free-text fields) are valid UTF-8 without
 * control characters (U+0000-U+001F, U+007F-U+009F), so that every client
 * can decode them as strings and print them without surprises; and the
 * escaping the CLI uses to print what does not follow it (stored before the
 * rule, or a payload). Pure functions.
 */
#ifndef FY_TEXT_H
#define FY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "bytes.h"

/** True if @p s is valid UTF-8 (shortest forms, no surrogates, at most
 *  U+10FFFF) without control characters. */
bool fy_text_valid(fy_bytes_t s);

/**
 * Writes @p s to @p out for a terminal: valid UTF-8 without control
 * characters as it is, a control character or an invalid byte as \\xNN, a
 * backslash as \\\\. Always NUL-terminates (when @p cap > 0); cuts at a whole
 * character. @return the length it needs (as snprintf).
 */
size_t fy_text_escape(fy_bytes_t s, char *out, size_t cap);

#endif /* FY_TEXT_H */
