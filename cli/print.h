/* SPDX-License-Identifier: MIT */
/*
 * print.h - how the ferry command prints stored messages: a header line
 * (seq, time as ISO 8601 UTC with milliseconds, delivery count, key,
 * version, id, headers, length) and the payload escaped for the terminal,
 * or the payload as it is (--raw), or one JSON object per message (--json:
 * the payload as "data" when it is UTF-8 text, else "data_base64").
 */
#ifndef FY_CLI_PRINT_H
#define FY_CLI_PRINT_H

#include <stdbool.h>
#include <stddef.h>

#include "ferry.h"

/** Prints @p len bytes for a terminal (text.h): control characters and
 *  bytes that are not UTF-8 as \xNN; with @p lines, newlines and tabs stay. */
void fy_cli_print_text(const void *b, size_t len, bool lines);

/** Prints one message as the command's flags say. */
void fy_cli_print_msg(const ferry_stored_message_t *m, bool raw, bool json);

#endif
