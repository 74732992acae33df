/* SPDX-License-Identifier: MIT */
/*
 * saga_cmd.h - `ferry saga`: a person's view of and hand on sagas, through
 * the broker (docs/sagas.md):
 *
 *   ferry saga list DEF [STATE]        where each saga of DEF stands (its
 *                                      newest transition), newest first
 *   ferry saga show DEF ID             every transition of saga ID of
 *                                      definition DEF, from _saga.DEF
 *   ferry saga cancel ORCH ID [REASON] ask orchestrator ORCH to compensate
 *                                      running saga ID now
 *   ferry saga retry ORCH ID           ask it to resume FAILED saga ID
 *
 * cancel and retry publish a control message to the orchestrator's reply
 * topic (saga.ORCH.replies); the orchestrator applies it in its next poll
 * and publishes the transition, which `show` then lists.
 */
#ifndef FY_CLI_SAGA_CMD_H
#define FY_CLI_SAGA_CMD_H

#include "ferry.h"

/** Runs `ferry saga` with its @p npos words (subcommand first) on @p c.
 *  @return the process exit code: 0, 1 refused (or no such saga), 2 usage. */
int fy_cli_saga(ferry_client_t *c, int npos, char **pos);

#endif
