/* SPDX-License-Identifier: MIT */
/*
 * broker_start.c - what ferryd does once at start, before it serves: CURVE
 * on its socket, and the deliveries the last process left in flight.
 */
#include "broker_int.h"
#include "curvekey.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

/* CURVE on the socket: every connection encrypted, and clients check the
 * server's identity with its public key (logged, for them to copy). */
fy_status_t
fy_brk_curve(fy_broker_t *self, const char *secret_file, fy_err_t *err)
{
    if (!zmq_has("curve"))
        return fy_err_set(err, FERRY_EINVAL,
                          "--curve-secret: this libzmq was built without CURVE (libsodium)");
    char secret[FY_CURVE_KEY_LEN + 1], public[FY_CURVE_KEY_LEN + 1];
    fy_status_t st = fy_curvekey_read(secret_file, true, secret, err);
    if (st)
        return st;
    int one = 1;
    if (zmq_curve_public(public, secret) != 0 ||
        zmq_setsockopt(self->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, secret, sizeof secret) != 0) {
        memset(secret, 0, sizeof secret);
        return fy_err_set(err, FERRY_EINVAL, "--curve-secret %s: not a usable key: %s", secret_file,
                          zmq_strerror(errno));
    }
    memset(secret, 0, sizeof secret);
    fy_log(self->log, FY_LOG_INFO, "broker", "curve on",
           "public_key=%s detail=\"every connection is encrypted; clients need this key\"", public);
    return FERRY_OK;
}

fy_status_t
fy_brk_metrics(fy_broker_t *self, fy_err_t *err)
{
    char token[130] = "";
    const char *path = self->cfg.metrics_token;
    if (path[0]) {
        struct stat sb;
        FILE *f = fopen(path, "r");
        if (!f || fstat(fileno(f), &sb) != 0) {
            if (f)
                fclose(f);
            return fy_err_set(err, FERRY_EIO, "--metrics-token %s: %s", path, strerror(errno));
        }
        bool got = fgets(token, sizeof token, f) != NULL;
        fclose(f);
        token[strcspn(token, "\r\n")] = '\0';
        if (sb.st_mode & 077)
            return fy_err_set(err, FERRY_EINVAL,
                              "--metrics-token %s: others may read it: chmod 600 it", path);
        if (!got || strlen(token) < 16 || strlen(token) > 128 || strpbrk(token, " \t"))
            return fy_err_set(err, FERRY_EINVAL,
                              "--metrics-token %s: the first line must be a token of 16-128 "
                              "characters without spaces",
                              path);
    }
    fy_status_t st = fy_metrics_start(self->cfg.metrics, token, &self->metrics, err);
    memset(token, 0, sizeof token);
    if (st == FERRY_OK && !path[0] && strncmp(self->cfg.metrics, "127.", 4) != 0)
        fy_log(self->log, FY_LOG_WARN, "broker", "metrics open to other hosts",
               "addr=%s detail=\"no --metrics-token: anyone who reaches it reads the counters\"",
               self->cfg.metrics);
    return st;
}

/* What push consumers held when the last process ended comes back within
 * FY_BRK_RESTART_REDELIVER_MS instead of its whole ack wait: those
 * consumers lived in that process's memory. The grace lets a client that
 * processed a message ack it once it is connected again. */
fy_status_t
fy_brk_after_restart(fy_broker_t *self, fy_err_t *err)
{
    size_t moved = 0;
    fy_status_t st = fy_store_begin(self->store, fy_wall_ms());
    if (st == FERRY_OK &&
        (st = fy_store_pull_deadlines(self->store, fy_wall_ms() + FY_BRK_RESTART_REDELIVER_MS,
                                      &moved)) == FERRY_OK)
        st = fy_store_commit(self->store);
    else if (st == FERRY_OK)
        fy_store_abort(self->store);
    if (st)
        return fy_err_set(err, st, "cannot bring back the deliveries in flight at the last stop");
    if (moved)
        fy_log(self->log, FY_LOG_INFO, "broker", "deliveries in flight come back soon",
               "timers=%zu within_ms=%d detail=\"unacked at the last stop; their consumers "
               "are gone\"",
               moved, FY_BRK_RESTART_REDELIVER_MS);
    return FERRY_OK;
}
