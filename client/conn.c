/* SPDX-License-Identifier: MIT */
/*
 * conn.c - the DEALER socket, its monitor and the reconnect backoff (conn.h).
 */
#include "conn.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

fy_status_t
fy_conn_init(fy_conn_t *c, void *ctx, char *const *servers, size_t n, int initial_ms, int max_ms,
             int jitter_pct, int send_timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->ctx = ctx;
    c->servers = calloc(n ? n : 1, sizeof *c->servers);
    if (!c->servers)
        return FERRY_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(servers[i]) + 1;
        if (!(c->servers[i] = malloc(len))) {
            c->nservers = i;
            fy_conn_free(c);
            return FERRY_ENOMEM;
        }
        memcpy(c->servers[i], servers[i], len);
    }
    c->nservers = n;
    c->initial_ms = c->backoff_ms = initial_ms;
    c->max_ms = max_ms;
    c->jitter_pct = jitter_pct;
    c->send_timeout_ms = send_timeout_ms;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rand_state = (unsigned)ts.tv_nsec ^ (unsigned)(uintptr_t)c;
    return FERRY_OK;
}

void
fy_conn_free(fy_conn_t *c)
{
    fy_conn_close(c);
    for (size_t i = 0; i < c->nservers; i++)
        free(c->servers[i]);
    free(c->servers);
    c->servers = NULL;
    c->nservers = 0;
}

/* A zmq failure (errno) as a status with its sentence. */
static fy_status_t
s_fail(fy_err_t *err, const char *what, const char *server)
{
    int e = errno;
    fy_status_t st = e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO ? FERRY_EINVAL
                     : e == ETERM || e == EFAULT                                ? FERRY_ECLOSED
                     : e == ENOMEM || e == EMFILE                               ? FERRY_ENOMEM
                                                                                : FERRY_ECONNECT;
    return fy_err_set(err, st, "%s %s: %s", what, server, zmq_strerror(e));
}

fy_status_t
fy_conn_open(fy_conn_t *c, fy_err_t *err)
{
    fy_conn_close(c);
    void *s = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!s)
        return s_fail(err, "cannot make a socket for", fy_conn_server(c));
    int linger = 0, hwm = 0, ivl = c->initial_ms, ivl_max = c->max_ms;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    /* The publish window bounds what is in flight; the socket need not. */
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &c->send_timeout_ms, sizeof(int));
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /* CURVE: the server proves it holds the secret of server_key, and
     * everything on the connection is encrypted. */
    if (c->curve && (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, c->server_key, 41) != 0 ||
                     zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, c->public_key, 41) != 0 ||
                     zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, c->secret_key, 41) != 0)) {
        fy_status_t st = s_fail(err, "cannot set the CURVE keys for", fy_conn_server(c));
        zmq_close(s);
        return st;
    }
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://ferry-monitor-%p-%u", (void *)c, ++c->gen);
    void *mon = NULL;
    int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    /* With other servers to try (a list, or a cluster's leader named), a
     * refused connection moves on at once instead of waiting out the hello:
     * a dead node of a cluster would cost a whole timeout. */
    if (c->nservers > 1 || c->redirect[0])
        events |= ZMQ_EVENT_CONNECT_RETRIED;
    if (zmq_socket_monitor(s, ep, events) == 0 && (mon = zmq_socket(c->ctx, ZMQ_PAIR)) != NULL &&
        zmq_connect(mon, ep) != 0) {
        zmq_close(mon);
        mon = NULL;
    }
    if (zmq_connect(s, fy_conn_server(c)) != 0) {
        fy_status_t st = s_fail(err, "cannot connect to", fy_conn_server(c));
        if (mon)
            zmq_close(mon);
        zmq_close(s);
        return st;
    }
    c->sock = s;
    c->mon = mon;
    return FERRY_OK;
}

void
fy_conn_close(fy_conn_t *c)
{
    if (c->sock) {
        zmq_socket_monitor(c->sock, NULL, 0);
        zmq_close(c->sock);
        c->sock = NULL;
    }
    if (c->mon) {
        zmq_close(c->mon);
        c->mon = NULL;
    }
}

void
fy_conn_lost(fy_conn_t *c, long long now_ms)
{
    fy_conn_close(c);
    if (c->redirect[0])
        c->redirect[0] = '\0'; /* back to the list where it was */
    else
        c->cur = (c->cur + 1) % (c->nservers ? c->nservers : 1);
    int wait = c->backoff_ms;
    if (c->jitter_pct > 0 && wait > 0) {
        int span = wait * c->jitter_pct / 100;
        if (span > 0)
            wait += (int)(rand_r(&c->rand_state) % (unsigned)(2 * span + 1)) - span;
    }
    c->retry_at = now_ms + (wait > 0 ? wait : 0);
    c->backoff_ms = c->backoff_ms * 2 > c->max_ms ? c->max_ms : c->backoff_ms * 2;
}

void
fy_conn_ok(fy_conn_t *c)
{
    c->backoff_ms = c->initial_ms;
}

bool
fy_conn_dropped(fy_conn_t *c)
{
    bool dropped = false;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (!c->mon || zmq_msg_recv(&m, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return dropped;
        }
        /* Frame 1: event (u16) and value (u32); frame 2: the address. */
        if (zmq_msg_size(&m) >= 2) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&m), 2);
            dropped = dropped || ev == ZMQ_EVENT_DISCONNECTED || ev == ZMQ_EVENT_CONNECT_RETRIED;
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
                c->auth_refused = true;
        }
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                return dropped;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    }
}

const char *
fy_conn_server(const fy_conn_t *c)
{
    if (c->redirect[0])
        return c->redirect;
    return c->nservers ? c->servers[c->cur] : "";
}

void
fy_conn_redirect(fy_conn_t *c, const char *endpoint, long long now_ms)
{
    snprintf(c->redirect, sizeof c->redirect, "%s", endpoint);
    c->retry_at = now_ms;
}
