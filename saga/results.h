/* SPDX-License-Identifier: MIT */
/*
 * results.h - the results steps give (ferry_saga_command_t.result), as a
 * saga record keeps them (ferry_saga_record_t.results): for each step, its
 * name and its text, each NUL-terminated, in the order they came; and the
 * headers that carry them on the commands after.
 */
#ifndef FY_SAGA_RESULTS_H
#define FY_SAGA_RESULTS_H

#include <stdbool.h>
#include <stddef.h>

/** Name of the header carrying step @p step's result:
 *  "ferry-saga-result-<step>". */
#define FY_SAGA_RESULT_HEADER "ferry-saga-result-"

/** True if @p buf / @p len is a results list (pairs of NUL-terminated
 *  strings, names not empty; NULL / 0 is the empty one). */
bool fy_saga_results_valid(const char *buf, size_t len);

/** Step @p step's text in the list, or NULL. */
const char *fy_saga_results_get(const char *buf, size_t len, const char *step);

/** Sets step @p step's text (replacing one it had) in the malloc'ed list
 *  *@p buf / *@p len. @return false when out of memory (the list is as
 *  it was). */
bool fy_saga_results_set(char **buf, size_t *len, const char *step, const char *text);

/** The pairs in order: call with *@p at = 0; returns false after the last. */
bool fy_saga_results_next(const char *buf, size_t len, size_t *at, const char **step,
                          const char **text);

/** Writes @p len bytes of @p in to @p out (cap > 0) as the protocol's text
 *  (header values): valid UTF-8 without control characters that fits, as
 *  it is; anything else escaped by fy_text_escape (an invalid byte or a
 *  control character as \\xNN, a backslash doubled) and cut at a whole
 *  character. @return true if it was kept as it is. */
bool fy_saga_text(const void *in, size_t len, char *out, size_t cap);

#endif /* FY_SAGA_RESULTS_H */
