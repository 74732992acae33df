/* SPDX-License-Identifier: MIT */
/*
 * identity.c - outbox identities and default source names (identity.h).
 */
#include "identity.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void
fr_identity_new(char out[FR_IDENTITY_LEN + 1])
{
    uint32_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        /* No entropy source (a very old kernel): time and pid still differ
         * between two databases set up by two processes. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = (uint32_t)ts.tv_nsec ^ (uint32_t)ts.tv_sec * 2654435761u ^ (uint32_t)getpid();
    }
    snprintf(out, FR_IDENTITY_LEN + 1, "%08x", (unsigned)v);
}

bool
fr_identity_ok(const char *s)
{
    if (!s || strlen(s) != FR_IDENTITY_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

void
fr_default_name(const char *kind, const char *identity, bool legacy_position, char *out, size_t cap)
{
    if (legacy_position)
        snprintf(out, cap, "%s", kind);
    else
        snprintf(out, cap, "%s-%s", kind, identity);
}

fy_status_t
fr_rename_check(const char *from, const char *to, bool has_from, bool has_to, fy_err_t *err)
{
    if (!strcmp(from, to))
        return fy_err_set(err, FERRY_EINVAL, "--rename-from names the source itself ('%s')", to);
    if (has_from && has_to) {
        return fy_err_set(err, FERRY_EINVAL,
                          "both '%s' and '%s' have a recorded position: the new name was "
                          "relayed already; keep one of them",
                          from, to);
    }
    if (!has_from && !has_to) {
        return fy_err_set(err, FERRY_EINVAL,
                          "no position is recorded under '%s' in this outbox (a misspelt "
                          "name would publish every row again under '%s')",
                          from, to);
    }
    return FERRY_OK;
}
