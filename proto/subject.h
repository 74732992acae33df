/* SPDX-License-Identifier: MIT */
/*
 * subject.h - subjects and subject patterns (subscription filters).
 *
 * A subject is a message key read as dot-separated tokens ("orders.eu.7").
 * A pattern matches it token by token: "*" matches exactly one token, ">"
 * (last token only) matches one or more remaining tokens. Pure functions.
 */
#ifndef FY_SUBJECT_H
#define FY_SUBJECT_H

#include <stdbool.h>

#include "bytes.h"

/** True if @p pattern is 1-255 bytes of non-empty tokens, each "*", ">" (last
 *  only) or made of A-Z a-z 0-9 _ -. */
bool fy_subject_pattern_valid(fy_bytes_t pattern);

/** True if @p subject matches @p pattern (a valid pattern). */
bool fy_subject_match(fy_bytes_t pattern, fy_bytes_t subject);

#endif
