/* SPDX-License-Identifier: MIT */
/*
 * cutctl.c - driving the power-cut library from a test (see cutctl.h).
 */
#include "cutctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fixture.h"

void
fy_powercut_env(const char *dir, const char *mode, int at_sync, bool fsync_only, unsigned seed,
                const char *report)
{
    static const char *const vars[] = {
        "LD_PRELOAD",     "POWERCUT_DIR",    "POWERCUT_MODE",
        "POWERCUT_SEED",  "POWERCUT_REPORT", "POWERCUT_AT_SYNC",
        "POWERCUT_COUNT", "ASAN_OPTIONS",    "POWERCUT_SYNC_DELAY_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    if (!dir)
        return;
    char num[32];
    setenv("LD_PRELOAD", getenv("FERRY_POWERCUT") ? getenv("FERRY_POWERCUT") : "", 1);
    setenv("POWERCUT_DIR", dir, 1);
    setenv("POWERCUT_MODE", mode, 1);
    snprintf(num, sizeof num, "%u", seed);
    setenv("POWERCUT_SEED", num, 1);
    setenv("POWERCUT_REPORT", report, 1);
    if (at_sync) {
        snprintf(num, sizeof num, "%d", at_sync);
        setenv("POWERCUT_AT_SYNC", num, 1);
    }
    if (fsync_only)
        setenv("POWERCUT_COUNT", "fsync", 1);
    /* A sanitized program accepts a library loaded before its runtime. */
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
}

int
fy_powercut_cuts_now(const char *report, long long *reverted)
{
    char line[256];
    FILE *f = fopen(report, "r");
    int n = 0;
    *reverted = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *r = strstr(line, "reverted=");
        if (strncmp(line, "cut ", 4) == 0 && r) {
            n++;
            *reverted += atoll(r + 9);
        }
    }
    if (f)
        fclose(f);
    return n;
}

int
fy_powercut_cuts(const char *report, int want, long long *reverted)
{
    int n;
    long long until = fy_now_ms() + 10000;
    while ((n = fy_powercut_cuts_now(report, reverted)) < want && fy_now_ms() < until)
        fy_sleep_ms(10);
    return n;
}
