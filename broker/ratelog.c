/* SPDX-License-Identifier: MIT */
/*
 * ratelog.c - once per peer per interval (ratelog.h).
 */
#include "ratelog.h"

#include <string.h>

#include "hash.h"

void
fy_ratelog_init(fy_ratelog_t *r, long long interval_ms)
{
    memset(r, 0, sizeof *r);
    r->interval_ms = interval_ms;
}

bool
fy_ratelog_allow(fy_ratelog_t *r, const void *id, size_t id_len, long long now, uint64_t *held)
{
    uint64_t key = fy_fnv1a_nz(id, id_len);
    size_t oldest = 0;
    for (size_t i = 0; i < FY_RATELOG_PEERS; i++) {
        if (r->e[i].key == key) {
            if (now - r->e[i].at < r->interval_ms) {
                r->e[i].held++;
                return false;
            }
            *held = r->e[i].held;
            r->e[i].at = now;
            r->e[i].held = 0;
            return true;
        }
        if (!r->e[i].key || r->e[i].at < r->e[oldest].at)
            oldest = i;
        if (!r->e[i].key)
            break;
    }
    r->e[oldest].key = key;
    r->e[oldest].at = now;
    r->e[oldest].held = 0;
    *held = 0;
    return true;
}
