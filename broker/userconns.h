/* SPDX-License-Identifier: MIT */
/*
 * userconns.h - connections per user, for the users file's
 * `max-connections` (docs/security.md).
 *
 * ZeroMQ hides connections behind its ROUTER socket, so they are followed
 * by their file descriptors: each request says the descriptor it came on
 * (ZMQ_SRCFD, TCP only) and the socket's monitor says when a descriptor was
 * accepted or disconnected. A connection is *admitted* the first time one
 * of its requests is seen if its user has fewer than its limit admitted;
 * otherwise its requests are refused until another of the user's
 * connections closes (the client sees ETOO_MANY and may go on trying).
 *
 *     fy_userconns_t *uc;
 *     fy_userconns_new(ctx, router, &uc, &err);  // before the router binds
 *     ... each turn, after receiving: fy_userconns_drain(uc);
 *     ... per request of a limited user:
 *     if (!fy_userconns_admit(uc, fd, "alice", 4, &have)) refuse
 *
 * Only users with a limit are followed. Owned by the broker's thread.
 */
#ifndef FY_USERCONNS_H
#define FY_USERCONNS_H

#include <stdbool.h>
#include <stdint.h>

#include "status.h"

typedef struct fy_userconns fy_userconns_t;

/**
 * Starts following @p router's connections through a socket monitor
 * (an inproc PAIR in @p ctx).
 * @return FERRY_OK, FERRY_EIO (monitor refused, with err), FERRY_ENOMEM
 */
fy_status_t fy_userconns_new(void *ctx, void *router, fy_userconns_t **out, fy_err_t *err);
/** Stops the monitor and frees; sets *self_p = NULL. */
void fy_userconns_destroy(fy_userconns_t **self_p);

/** Reads the monitor's events without waiting: descriptors accepted or
 *  closed are forgotten (a descriptor number is reused). */
void fy_userconns_drain(fy_userconns_t *self);

/**
 * Whether the connection on descriptor @p fd, of user @p user, is served
 * with at most @p max of the user's connections at once (0: no limit).
 * When it is not, *have gets how many of the user's connections are.
 * A descriptor below 0 (not TCP) is always served.
 */
bool fy_userconns_admit(fy_userconns_t *self, int fd, const char *user, uint32_t max,
                        uint32_t *have);

#endif /* FY_USERCONNS_H */
