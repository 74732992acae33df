/* SPDX-License-Identifier: MIT */
/*
 * outbox_event.h - what makes a ferry_outbox_event_t (ferry.h) valid for
 * every outbox: LMDB (relay/outbox.c), SQLite and PostgreSQL (sql/).
 */
#ifndef FY_OUTBOX_EVENT_H
#define FY_OUTBOX_EVENT_H

#include <stdbool.h>

#include "ferry.h"
#include "wire_limits.h"

/** Most headers an event may carry (the relay adds event_type and
 *  created_at to the message's 64), and the longest header value. */
#define FY_OUTBOX_HEADERS_MAX      (FY_HEADERS_MAX - 2)
#define FY_OUTBOX_HEADER_VALUE_MAX 4096

/** True if @p ev has an aggregate type (1-255 bytes), an aggregate id
 *  (1-255), an event type (1-65535), a payload when len > 0 (up to 4 GiB),
 *  and at most 62 headers, each named (1-255 bytes) with a value (0-4096). */
bool fy_outbox_event_valid(const ferry_outbox_event_t *ev);

#endif /* FY_OUTBOX_EVENT_H */
