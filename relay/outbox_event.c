/* SPDX-License-Identifier: MIT */
/*
 * outbox_event.c - the validity of an outbox event (outbox_event.h).
 */
#include "outbox_event.h"

#include <stdint.h>
#include <string.h>

static bool
s_len_ok(const char *s, size_t max)
{
    return s && *s && strlen(s) <= max;
}

bool
fy_outbox_event_valid(const ferry_outbox_event_t *ev)
{
    if (!ev || !s_len_ok(ev->aggregate_type, FERRY_NAME_MAX) ||
        !s_len_ok(ev->aggregate_id, FERRY_ID_MAX) || !s_len_ok(ev->event_type, 65535) ||
        (ev->len && !ev->payload) || ev->len > UINT32_MAX ||
        ev->header_count > FY_OUTBOX_HEADERS_MAX || (ev->header_count && !ev->headers))
        return false;
    for (size_t i = 0; i < ev->header_count; i++) {
        const ferry_header_t *h = &ev->headers[i];
        if (!s_len_ok(h->name, 255) || !h->value || strlen(h->value) > FY_OUTBOX_HEADER_VALUE_MAX)
            return false;
    }
    return true;
}
