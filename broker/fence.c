/* SPDX-License-Identifier: MIT */
/*
 * fence.c - ordered publishes per connection (fence.h).
 */
#include "fence.h"

#include <string.h>

#include "hash.h"

void
fy_fence_init(fy_fence_t *t)
{
    memset(t, 0, sizeof *t);
}

static size_t
s_find(const fy_fence_t *t, uint64_t key)
{
    for (size_t i = 0; i < FY_FENCE_PEERS; i++)
        if (t->e[i].key == key)
            return i;
    return FY_FENCE_PEERS;
}

bool
fy_fence_blocks(fy_fence_t *t, const void *id, size_t id_len, uint64_t fence)
{
    if (!t->active)
        return false; /* the usual case: no refusal to honour */
    size_t i = s_find(t, fy_fnv1a_nz(id, id_len));
    if (i == FY_FENCE_PEERS)
        return false;
    if (fence <= t->e[i].fence) {
        t->e[i].used = ++t->clock;
        return true;
    }
    t->e[i].key = 0; /* the client moved past the refusal */
    t->active--;
    return false;
}

void
fy_fence_refused(fy_fence_t *t, const void *id, size_t id_len, uint64_t fence)
{
    uint64_t key = fy_fnv1a_nz(id, id_len);
    size_t i = s_find(t, key);
    if (i == FY_FENCE_PEERS) {
        size_t victim = 0;
        for (size_t j = 0; j < FY_FENCE_PEERS; j++) {
            if (!t->e[j].key) {
                victim = j;
                break;
            }
            if (t->e[j].used < t->e[victim].used)
                victim = j;
        }
        i = victim;
        if (!t->e[i].key)
            t->active++;
        t->e[i].key = key;
        t->e[i].fence = 0;
    }
    if (fence > t->e[i].fence)
        t->e[i].fence = fence;
    t->e[i].used = ++t->clock;
}
