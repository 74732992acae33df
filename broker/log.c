/* SPDX-License-Identifier: MIT */
/*
 * log.c - logfmt writer. Builds each line in a stack buffer and writes it
 * with one fwrite so that lines from concurrent processes do not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *const s_names[] = {"error", "warn", "info", "debug"};

bool
fy_log_level_parse(const char *text, fy_level_t *out)
{
    for (int i = 0; i <= FY_LOG_DEBUG; i++) {
        if (text && strcmp(text, s_names[i]) == 0) {
            *out = (fy_level_t)i;
            return true;
        }
    }
    return false;
}

void
fy_log(const fy_log_t *log, fy_level_t level, const char *mod, const char *msg, const char *kvfmt,
       ...)
{
    if (!fy_log_enabled(log, level))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s msg=\"%s\"",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, s_names[level], mod, msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (kvfmt && len < sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, kvfmt);
        n = vsnprintf(line + len, sizeof line - len, kvfmt, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    FILE *out = log->out ? log->out : stderr;
    fwrite(line, 1, len, out);
    fflush(out);
}
