/* SPDX-License-Identifier: MIT */
/*
 * cutctl.h - driving the power-cut library (powercut.h) from a test: the
 * environment that puts the next program started under it, and the count
 * of cuts it reported.
 */
#ifndef FY_CUTCTL_H
#define FY_CUTCTL_H

#include <stdbool.h>

/**
 * Sets the environment of the next program this process starts: loaded
 * with $FERRY_POWERCUT, the files below @p dir tracked, @p mode "all" or
 * "random", a cut at sync point @p at_sync (0: only on SIGUSR2; @p
 * fsync_only: only fsync/fdatasync count), @p seed for random mode, the
 * report appended to @p report. @p dir NULL clears it all (do so once the
 * program started, or every later child runs under the library too).
 */
void fy_powercut_env(const char *dir, const char *mode, int at_sync, bool fsync_only, unsigned seed,
                     const char *report);

/** Counts the "cut" lines of @p report now; *reverted: the unsynced writes
 *  they lost in all. */
int fy_powercut_cuts_now(const char *report, long long *reverted);

/** The same, waiting up to 10 s for @p want cuts (a cut's line is written
 *  once the files are put back, after the process died). */
int fy_powercut_cuts(const char *report, int want, long long *reverted);

#endif
