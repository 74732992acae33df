/* SPDX-License-Identifier: MIT */
/*
 * broker.h - ferryd's event loop: one thread, one ROUTER socket, one LMDB
 * write transaction per drained batch of requests.
 *
 * Each turn drains up to batch_max waiting requests, applies them in one
 * transaction, commits durably, and only then sends the replies: no confirm
 * leaves before the data it confirms is on disk. Everything lives in the
 * fy_broker_t; two brokers can run in one process.
 */
#ifndef FY_BROKER_H
#define FY_BROKER_H

#include <signal.h>

#include "envelope.h"
#include "log.h"
#include "options.h"

typedef struct fy_broker fy_broker_t;

/**
 * Opens the store and binds the socket.
 * @param cfg copied. @param log borrowed; must outlive the broker.
 * @return FERRY_OK, FERRY_EIO, FERRY_EFORMAT, FERRY_ECONNECT (bind failed), FERRY_ENOMEM
 */
fy_status_t fy_broker_new(const fy_config_t *cfg, const fy_log_t *log, fy_broker_t **out,
                          fy_err_t *err);
/** The endpoint actually bound (port resolved). Borrowed. */
const char *fy_broker_endpoint(const fy_broker_t *self);
/**
 * Runs until *stop becomes non-zero (set it from a signal handler): then the
 * batch in hand is finished, committed and confirmed, and run returns. When
 * *reload (may be NULL) becomes non-zero, the users file is read again and
 * *reload set back to 0.
 * @return FERRY_OK, or FERRY_EIO if the loop cannot go on.
 */
fy_status_t fy_broker_run(fy_broker_t *self, volatile sig_atomic_t *stop,
                          volatile sig_atomic_t *reload);
/** Closes the socket (lingering briefly for the last replies) and the store. */
void fy_broker_destroy(fy_broker_t **self_p);

#endif
