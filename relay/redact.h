/* SPDX-License-Identifier: MIT */
/*
 * redact.h - hides the secrets of a source location (a PostgreSQL conninfo
 * or URI, a path) before it is logged or printed: the value of every
 * `password=` (conninfo keyword, URI query parameter) and the password of
 * a URI's `user:password@` become "***". Everything else stays as written,
 * so that a log line still says which database is meant.
 */
#ifndef FR_REDACT_H
#define FR_REDACT_H

#include <stddef.h>

/** Writes @p in with its passwords hidden into @p out (at most @p cap
 *  bytes, NUL-terminated; cut if it does not fit). @return out. */
const char *fr_redact(const char *in, char *out, size_t cap);

#endif
