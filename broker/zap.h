/* SPDX-License-Identifier: MIT */
/*
 * zap.h - ferryd's ZAP handler (ZeroMQ's authentication protocol, RFC 27):
 * a thread answering libzmq's questions on inproc://zeromq.zap.01 while
 * CURVE handshakes run. A client is let in when its CURVE public key belongs
 * to a user of the users file (users.h); the user's name then comes with
 * every message of the connection (ZMQ "User-Id" property), which the broker
 * checks each request against. Anything else is refused at the handshake and
 * logged with the peer's address and the reason (never a key or secret), at
 * most once a minute per address with the count held back.
 *
 * The handler borrows the users table: fy_zap_set_users swaps it under a
 * lock, after which the caller may free the old one.
 */
#ifndef FY_ZAP_H
#define FY_ZAP_H

#include <stdint.h>

#include "log.h"
#include "status.h"
#include "users.h"

typedef struct fy_zap fy_zap_t;

typedef struct fy_zap_stats {
    uint64_t accepted; /**< handshakes let in */
    uint64_t refused;  /**< handshakes refused (unknown key, other mechanism) */
} fy_zap_stats_t;

/**
 * Binds the handler in @p zmq_ctx and starts its thread; call before the
 * broker's socket binds. @p users is borrowed.
 * @return FERRY_OK, FERRY_EIO (with err), FERRY_ENOMEM
 */
fy_status_t fy_zap_start(void *zmq_ctx, const fy_users_t *users, const fy_log_t *log,
                         fy_zap_t **out, fy_err_t *err);
/** From now on, handshakes are checked against @p users (borrowed). */
void fy_zap_set_users(fy_zap_t *self, const fy_users_t *users);
/** Counters since start (any thread). */
void fy_zap_stats(fy_zap_t *self, fy_zap_stats_t *out);
/** Stops the thread and frees; sets *self_p = NULL. Before the context ends. */
void fy_zap_stop(fy_zap_t **self_p);

#endif /* FY_ZAP_H */
