/*
 * client_int.h - what libferry's files share beyond ferry.h: a few calls of
 * the connection (client.c) for the key reader (keyread.c) and request/reply
 * (rpc.c), and the hooks client.c calls back. Not installed.
 */
#ifndef FY_CLIENT_INT_H
#define FY_CLIENT_INT_H

#include <stdarg.h>

#include "ferry.h"

/** Records why the last call failed (ferry_client_last_error) and returns @p st. */
ferry_status_t fy_client_fail(ferry_client_t *c, ferry_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** True while a handler or callback of @p c runs (no blocking calls then). */
bool fy_client_in_handler(const ferry_client_t *c);

/** One `read` round trip: up to @p limit messages of @p key from version @p from.
 *  @p msgs is owned by the client until its next call; @p next is 0 at the end. */
ferry_status_t fy_client_read_page(ferry_client_t *c, const char *topic, const char *key,
                                   uint64_t from, uint32_t limit,
                                   const ferry_stored_message_t **msgs, size_t *n, uint64_t *next);

/** Sends a publish without ever waiting (callable from a handler): tracked in
 *  the window when there is room, so that flush waits for it. */
ferry_status_t fy_client_publish_nowait(ferry_client_t *c, const char *topic,
                                        const ferry_message_t *m);

/** Sends a delete of @p name without waiting for the answer. */
void fy_client_delete_nowait(ferry_client_t *c, const char *name);

/** The request/reply state of @p c (NULL until the first request); rpc.c owns it. */
struct fy_rpc **fy_client_rpc(ferry_client_t *c);

/* rpc.c: reports requests whose time is up (from ferry_client_poll and
 * flush), and frees the state and deletes the inbox (from destroy). */
void fy_rpc_expire(ferry_client_t *c);
void fy_rpc_destroy(ferry_client_t *c);

/** One block holding a deep copy of @p n messages (strings, headers and
 *  payloads); free() it. NULL if out of memory (or n == 0). */
ferry_stored_message_t *fy_msgs_clone(const ferry_stored_message_t *src, size_t n);

#endif
