/* SPDX-License-Identifier: MIT */
/*
 * conn.h - libferry's transport: one ZeroMQ DEALER socket to one of the
 * configured brokers, with a socket monitor that reports a dropped TCP
 * connection, and the backoff between attempts. It knows nothing of the
 * protocol: client.c says hello, resends and resubscribes.
 *
 * A lost connection is never reused: the socket is closed (so nothing sent
 * on it can surface later) and a fresh one is opened to the next server once
 * the backoff has passed.
 */
#ifndef FY_CONN_H
#define FY_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

typedef struct fy_conn {
    void *ctx;
    void *sock; /* NULL while there is none (between attempts) */
    void *mon;  /* PAIR socket receiving the monitor events of sock */
    char **servers;
    size_t nservers, cur;
    unsigned gen;        /* sockets opened so far: names the monitor endpoint */
    int initial_ms;      /* first backoff */
    int max_ms;          /* longest backoff */
    int jitter_pct;      /* each backoff is randomised by +- this percentage */
    int backoff_ms;      /* the next backoff */
    long long retry_at;  /* monotonic ms: open the next socket then */
    int send_timeout_ms; /* ZMQ_SNDTIMEO */
    bool curve;          /* encrypt with CURVE: the keys below, z85 */
    char server_key[41], public_key[41], secret_key[41];
    unsigned rand_state; /* for the jitter */
    bool auth_refused;   /* the monitor saw the broker refuse our key (ZAP); the caller clears */
    char redirect[256];  /* a cluster's leader named by a node that does not lead: the next
                            attempt goes there (not in the list); "" none */
} fy_conn_t;

/** Copies the server list; sets the backoff. @return FERRY_OK, FERRY_ENOMEM */
fy_status_t fy_conn_init(fy_conn_t *c, void *ctx, char *const *servers, size_t n, int initial_ms,
                         int max_ms, int jitter_pct, int send_timeout_ms);
void fy_conn_free(fy_conn_t *c);

/** Opens a socket to the current server (connecting in the background).
 *  @return FERRY_OK, FERRY_EINVAL (the endpoint is invalid), FERRY_ECLOSED
 *  (the context is gone), FERRY_ENOMEM, with a sentence in @p err. */
fy_status_t fy_conn_open(fy_conn_t *c, fy_err_t *err);
/** Closes the socket and its monitor; pending outgoing messages are dropped. */
void fy_conn_close(fy_conn_t *c);
/** After a loss: closes, moves to the next server, schedules the next attempt. */
void fy_conn_lost(fy_conn_t *c, long long now_ms);
/** The connection worked: the next loss waits the initial backoff again. */
void fy_conn_ok(fy_conn_t *c);
/** Reads the monitor without blocking; a handshake the broker refused sets
 *  c->auth_refused. @return true if the TCP connection dropped. */
bool fy_conn_dropped(fy_conn_t *c);
/** The server the current (or next) socket talks to. */
const char *fy_conn_server(const fy_conn_t *c);
/** After fy_conn_lost: the next attempt goes to @p endpoint, at once (a
 *  cluster's node named its leader). A connection lost there goes back to
 *  the list. */
void fy_conn_redirect(fy_conn_t *c, const char *endpoint, long long now_ms);

#endif
