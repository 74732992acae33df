/* SPDX-License-Identifier: MIT */
/*
 * peernames.c - client names by routing id (peernames.h).
 */
#include "peernames.h"

#include <stdlib.h>
#include <string.h>

static fy_peername_t *
s_find(const fy_peernames_t *pn, const void *id, size_t len)
{
    for (size_t i = 0; pn->ring && i < FY_PEERNAMES_MAX; i++)
        if (pn->ring[i].id_len == len && memcmp(pn->ring[i].id, id, len) == 0)
            return &pn->ring[i];
    return NULL;
}

void
fy_peernames_set(fy_peernames_t *pn, const void *id, size_t len, fy_bytes_t name)
{
    if (len == 0 || len > FY_PEER_ID_MAX || name.len == 0)
        return;
    if (!pn->ring && !(pn->ring = calloc(FY_PEERNAMES_MAX, sizeof *pn->ring)))
        return;
    fy_peername_t *e = s_find(pn, id, len);
    if (!e) {
        e = &pn->ring[pn->next];
        pn->next = (pn->next + 1) % FY_PEERNAMES_MAX;
        memcpy(e->id, id, len);
        e->id_len = (uint8_t)len;
    }
    size_t n = name.len < sizeof e->name - 1 ? name.len : sizeof e->name - 1;
    for (size_t i = 0; i < n; i++) {
        char c = (char)name.ptr[i];
        e->name[i] = c == '"' || c == '\\' || (unsigned char)c < 0x20 ? '_' : c;
    }
    e->name[n] = '\0';
}

const char *
fy_peernames_get(const fy_peernames_t *pn, const void *id, size_t len)
{
    const fy_peername_t *e = len && len <= FY_PEER_ID_MAX ? s_find(pn, id, len) : NULL;
    return e ? e->name : "";
}

void
fy_peernames_free(fy_peernames_t *pn)
{
    free(pn->ring);
    pn->ring = NULL;
}
