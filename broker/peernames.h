/* SPDX-License-Identifier: MIT */
/*
 * peernames.h - the client name each connection gave in its hello, so that
 * the broker's log lines about a connection name the client (client="...")
 * and not only its routing id. A ring of the last FY_PEERNAMES_MAX hellos:
 * bounded memory, the oldest forgotten first. Broker thread only.
 */
#ifndef FY_PEERNAMES_H
#define FY_PEERNAMES_H

#include <stddef.h>
#include <stdint.h>

#include "bytes.h"

#define FY_PEERNAMES_MAX 4096
#define FY_PEER_ID_MAX   16 /* routing ids libzmq makes are 5 bytes */

typedef struct fy_peername {
    uint8_t id[FY_PEER_ID_MAX];
    uint8_t id_len; /* 0: unused */
    char name[64];  /* printable in a logfmt value: no quotes, backslashes or controls */
} fy_peername_t;

typedef struct fy_peernames {
    fy_peername_t *ring; /* FY_PEERNAMES_MAX, allocated at the first hello */
    size_t next;
} fy_peernames_t;

/** Remembers that routing id @p id said it is client @p name. */
void fy_peernames_set(fy_peernames_t *pn, const void *id, size_t len, fy_bytes_t name);
/** The name routing id @p id gave, or "" if none is known. */
const char *fy_peernames_get(const fy_peernames_t *pn, const void *id, size_t len);
void fy_peernames_free(fy_peernames_t *pn);

#endif
