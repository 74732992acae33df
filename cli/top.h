/* SPDX-License-Identifier: MIT */
/*
 * top.h - `ferry top`: a live view of the broker in the terminal (ncurses),
 * refreshed every second: its counters and, per topic, messages, bytes,
 * publish rate, subscriptions, the largest backlog and the dead letters
 * waiting. Keys: q quits, s cycles the sort (name, rate, messages,
 * backlog, dead letters). `--once` prints one frame as plain text and
 * exits (for scripts, and where there is no terminal).
 */
#ifndef FY_CLI_TOP_H
#define FY_CLI_TOP_H

#include <stdbool.h>

#include "ferry.h"

/** @return the process exit code: 0, 1 the terminal could not be used,
 *  3 the broker failed. */
int fy_cli_top(ferry_client_t *c, bool once, int interval_ms);

#endif
