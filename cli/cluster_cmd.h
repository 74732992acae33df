/* SPDX-License-Identifier: MIT */
/*
 * cluster_cmd.h - `ferry cluster status [--json]`: where a cluster stands,
 * from its leader (docs/cluster.md): the term, the leader's commit, apply
 * and last index, and each voter with its address, the last entry it has,
 * its lag and whether the leader hears from it; `ferry cluster add ID
 * HOST:PORT` and `ferry cluster remove ID` change who votes.
 */
#ifndef FY_CLI_CLUSTER_CMD_H
#define FY_CLI_CLUSTER_CMD_H

#include <stdbool.h>

#include "ferry.h"

/** Runs `ferry cluster` with its @p npos words (subcommand first) on @p c;
 *  @p json: status as one JSON object.
 *  @return the process exit code: 0, 1 (a single ferryd, or a voter down),
 *  2 usage, 3 the broker's refusal. */
int fy_cli_cluster(ferry_client_t *c, int npos, char **pos, bool json);

#endif
