/* SPDX-License-Identifier: MIT */
/*
 * sub_cmd.h - `ferry seek TOPIC SUB --seq N | --time T`: a subscription
 * starts again from a sequence or a time (ferry_client_sub_seek).
 */
#ifndef FY_CLI_SUB_CMD_H
#define FY_CLI_SUB_CMD_H

#include "args.h"
#include "ferry.h"

/** @return the process exit code: 0, 1 refused (no such subscription, a
 *  queue), 2 usage, 3 other failures. */
int fy_cli_seek(ferry_client_t *c, const char *topic, const char *sub, const fy_cli_opts_t *o);

#endif
