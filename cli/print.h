/* SPDX-License-Identifier: MIT */
/*
 * print.h - how the ferry command prints stored messages: a header line
 * (seq, time as ISO 8601 UTC with milliseconds, delivery count, key,
 * version, id, headers, length) and the payload escaped for the terminal,
 * or the payload as it is (--raw), or as a hex dump (--hex), or one JSON
 * object per message (--json:
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

/** How a payload is printed (--raw, --hex; by default escaped). */
enum { FY_CLI_PAYLOAD_TEXT, FY_CLI_PAYLOAD_RAW, FY_CLI_PAYLOAD_HEX };

/** Prints @p len bytes as `hexdump -C` does: offset, 16 bytes in hex, and
 *  the printable ASCII among them. */
void fy_cli_print_hex(const void *b, size_t len);

/** Prints one message as the command's flags say (@p payload:
 *  FY_CLI_PAYLOAD_*). */
void fy_cli_print_msg(const ferry_stored_message_t *m, int payload, bool json);

#endif
