/* SPDX-License-Identifier: MIT */
/*
 * log.h - logfmt lines on a stream (stderr by default), one line per event:
 *   ts=2026-01-09T10:00:00.123Z level=warn mod=store msg="map full" topic=orders
 * `msg` is a constant text; variables go in key=value pairs. A fy_log_t is a
 * plain value owned by its user (the broker struct); no global state.
 */
#ifndef FY_LOG_H
#define FY_LOG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum fy_level { FY_LOG_ERROR, FY_LOG_WARN, FY_LOG_INFO, FY_LOG_DEBUG } fy_level_t;

typedef struct fy_log {
    fy_level_t level; /**< lines above this level are dropped */
    FILE *out;        /**< NULL means stderr */
} fy_log_t;

/** Parses "error", "warn", "info" or "debug". @return false if unknown. */
bool fy_log_level_parse(const char *text, fy_level_t *out);

static inline bool
fy_log_enabled(const fy_log_t *log, fy_level_t level)
{
    return log && level <= log->level;
}

/**
 * Writes one line. @p kvfmt is a printf format of further ` key=value`
 * pairs (may be NULL); string values that may hold spaces must be quoted
 * by the format ("detail=\"%s\""). The line is written with one call.
 */
void fy_log(const fy_log_t *log, fy_level_t level, const char *mod, const char *msg,
            const char *kvfmt, ...) __attribute__((format(printf, 5, 6)));

#endif /* FY_LOG_H */
