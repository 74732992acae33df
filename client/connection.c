/* SPDX-License-Identifier: MIT */
/*
 * connection.c - libferry's connection to ferryd: hello, heartbeat,
 * reconnect, and the wait loop every blocking call runs in (replies to
 * async publishes that arrive meanwhile fire their callbacks, deliveries
 * their handlers). The broker answers one connection's requests in order,
 * so replies are matched by correlation id. One thread per client.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "client_int.h"
#include "clock.h"

ferry_status_t
fy_client_fail(ferry_client_t *c, ferry_status_t st, const char *fmt, ...)
{
    if (!c)
        return st;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
    if (n < 0)
        c->last_error[0] = '\0';
    return st;
}

bool
fy_client_in_handler(const ferry_client_t *c)
{
    return c->in_handler;
}

struct fy_rpc **
fy_client_rpc(ferry_client_t *c)
{
    return &c->rpc;
}

static void
s_drop_reply(ferry_client_t *self)
{
    for (size_t i = 0; i < self->nrframes; i++)
        zmq_msg_close(&self->rframes[i]);
    self->nrframes = 0;
}

/* Reads one whole reply if one arrives within timeout_ms. Wakes early for a
 * monitor event (a dropped connection), which the caller then handles.
 * @return 1 read, 0 nothing in time, -1 socket error. */
static int
s_read_reply(ferry_client_t *self, long timeout_ms)
{
    s_drop_reply(self);
    void *sock = self->conn.sock;
    if (!sock) {
        /* No socket between attempts: wait out the time given. */
        if (timeout_ms > 0) {
            struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    /* Try without a system call first: under load a reply is usually queued. */
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
    if (rc < 0) {
        if (errno != EAGAIN && errno != EINTR) {
            zmq_msg_close(&m);
            return -1;
        }
        if (timeout_ms == 0) {
            zmq_msg_close(&m);
            return 0;
        }
        zmq_pollitem_t items[2] = {{sock, 0, ZMQ_POLLIN, 0}, {self->conn.mon, 0, ZMQ_POLLIN, 0}};
        rc = zmq_poll(items, self->conn.mon ? 2 : 1, timeout_ms);
        if (rc <= 0 || !(items[0].revents & ZMQ_POLLIN)) {
            zmq_msg_close(&m);
            return rc < 0 && errno != EINTR ? -1 : 0;
        }
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
    }
    for (;;) {
        bool more = zmq_msg_more(&m);
        if (self->nrframes < FY_CLI_REPLY_FRAMES_MAX)
            self->rframes[self->nrframes++] = m;
        else
            zmq_msg_close(&m);
        if (!more)
            return 1;
        /* The remaining parts of a message arrive together with the first. */
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, sock, 0) < 0) {
            if (errno != EINTR) {
                zmq_msg_close(&m);
                return -1;
            }
        }
    }
}

/* ---- the connection ------------------------------------------------------
 *
 * A client is connected once the broker answered the hello sent on its
 * current socket. A dropped TCP connection (socket monitor), a broker silent
 * for two heartbeats, or a hello left unanswered for the timeout loses the
 * connection: the socket is closed, and after the backoff a new one goes to
 * the next server and says hello. When that is answered, push subscriptions
 * are made again and every unconfirmed async publish is sent again, in
 * order, with its cid and message id: the broker's dedupe window answers
 * those it had stored as duplicates, so with ids nothing is stored twice.
 */

static void
s_vlog(ferry_client_t *self, ferry_log_level_t level, const char *fmt, va_list ap)
{
    if (!self || !self->opts.log_cb)
        return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    self->opts.log_cb(level, line, self->opts.log_user);
}

void
fy_cli_log(ferry_client_t *self, ferry_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog(self, level, fmt, ap);
    va_end(ap);
}

void
ferry_client_log(ferry_client_t *client, ferry_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog(client, level, fmt, ap);
    va_end(ap);
}

static void
s_state(ferry_client_t *self, ferry_conn_state_t state, const char *server, const char *reason)
{
    if (self->opts.state_cb) {
        bool was = self->in_handler;
        self->in_handler = true; /* a callback must not call its client */
        self->opts.state_cb(self, state, server, reason, self->opts.state_user);
        self->in_handler = was;
    }
}

/* Sends the hello on a new socket; its answer makes the client connected.
 * @return FERRY_OK, or why no socket could be opened or the hello not sent. */
static ferry_status_t
s_attempt(ferry_client_t *self)
{
    fy_err_t err = {0};
    ferry_status_t st = fy_conn_open(&self->conn, &err);
    if (st != FERRY_OK) {
        fy_cli_log(self, FERRY_LOG_WARN, "%s (%s)", err.msg, ferry_errname(st));
        fy_conn_lost(&self->conn, fy_mono_ms());
        return st;
    }
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    if (fy_encode_hello(self->enc, cid, self->opts.name) != FERRY_OK ||
        zmq_send(self->conn.sock, fy_encoder_data(self->enc), fy_encoder_len(self->enc),
                 ZMQ_DONTWAIT) < 0) {
        fy_conn_lost(&self->conn, fy_mono_ms());
        return FERRY_ECLOSED;
    }
    self->hello_cid = cid;
    self->hello_at = fy_mono_ms();
    fy_cli_log(self, FERRY_LOG_INFO, "connecting to %s", fy_conn_server(&self->conn));
    return FERRY_OK;
}

/* The connection is gone: close it and schedule the next attempt. */
void
fy_cli_lose(ferry_client_t *self, const char *reason)
{
    char server[1100];
    snprintf(server, sizeof server, "%s", fy_conn_server(&self->conn));
    bool was = self->connected;
    self->connected = false;
    self->hello_cid = 0;
    self->ping_out = false;
    fy_conn_lost(&self->conn, fy_mono_ms());
    if (was) {
        self->losses++;
        fy_cli_log(self, FERRY_LOG_WARN, "connection to %s lost: %s; %zu publishes to resend",
                   server, reason, self->count);
        s_state(self, FERRY_CONN_DISCONNECTED, server, reason);
    } else {
        fy_cli_log(self, FERRY_LOG_INFO, "no connection to %s: %s", server, reason);
    }
}

void
fy_cli_not_leader(ferry_client_t *self, const fy_reply_t *r)
{
    self->not_leader++;
    char leader[256] = "";
    const char *msg = (const char *)r->msg.ptr;
    for (size_t i = 0; i + 7 <= r->msg.len; i++) {
        if (memcmp(msg + i, "leader=", 7) != 0)
            continue;
        size_t n = 0;
        for (i += 7; i < r->msg.len && msg[i] != ' ' && msg[i] != ';' && n + 1 < sizeof leader; i++)
            leader[n++] = msg[i];
        leader[n] = '\0';
        break;
    }
    char server[256];
    snprintf(server, sizeof server, "%s", fy_conn_server(&self->conn));
    fy_cli_log(self, FERRY_LOG_INFO, "%s does not lead its cluster (%s)%s%s", server,
               ferry_errname(r->code), leader[0] ? "; going to the leader " : "", leader);
    fy_cli_lose(self, "the node does not lead its cluster");
    /* A few hops at once; past that (claims that go round while an election
     * settles) the list. The node answered: the network is fine and an
     * election takes a second or so, so the next node is tried after the
     * first backoff step, not a growing one. */
    if (leader[0] && strcmp(leader, server) != 0 && self->redirects++ < 4) {
        fy_conn_redirect(&self->conn, leader, fy_mono_ms());
    } else {
        self->conn.backoff_ms = self->conn.initial_ms;
        self->conn.retry_at = fy_mono_ms() + self->conn.initial_ms;
    }
}

/* The hello was answered: connected. Push subscriptions are made again and
 * unconfirmed publishes sent again, in order. */
static void
s_on_hello(ferry_client_t *self, const fy_reply_t *r)
{
    self->hello_cid = 0;
    if (r->code == FERRY_ENOTLEADER || r->code == FERRY_ELEADER_LOST) {
        fy_cli_not_leader(self, r);
        return;
    }
    if (r->code != FERRY_OK || fy_reply_hello(r, &self->max_msg_bytes) != FERRY_OK) {
        self->hello_refused = r->code ? r->code : FERRY_EPROTO;
        fy_client_fail(self, self->hello_refused, "hello refused: %.*s", (int)r->msg.len,
                       (const char *)r->msg.ptr);
        fy_cli_lose(self, "hello refused");
        return;
    }
    self->connected = true;
    self->ping_out = false;
    self->redirects = 0;
    self->last_send_ms = self->last_recv_ms = fy_mono_ms();
    fy_conn_ok(&self->conn);
    bool again = self->ever_connected;
    self->ever_connected = true;
    fy_cli_resubscribe(self);
    size_t resent = 0;
    for (size_t i = 0; i < self->count && self->connected; i++) {
        fy_cli_pending_t *p = fy_cli_fifo_at(self, i);
        if (!p->done && p->req) {
            if (fy_cli_send_pending(self, p) != FERRY_OK) {
                fy_cli_lose(self, "send failed");
                return;
            }
            resent++;
        }
    }
    fy_cli_log(self, FERRY_LOG_INFO, "connected to %s%s; %zu publishes resent, %zu subscriptions",
               fy_conn_server(&self->conn), again ? " again" : "", resent, self->nsubs);
    s_state(self, FERRY_CONN_CONNECTED, fy_conn_server(&self->conn), NULL);
}

/* Connection housekeeping, once per turn of the reply loop. */
static void
s_tick(ferry_client_t *self)
{
    long long now = fy_mono_ms();
    if (self->conn.sock && fy_conn_dropped(&self->conn))
        fy_cli_lose(self, "connection dropped");
    if (self->conn.auth_refused) {
        /* libzmq tries again by itself: say it once per refusal seen. */
        self->conn.auth_refused = false;
        self->auth_refusals++;
        if (!self->ever_connected && !self->hello_refused)
            self->hello_refused = FERRY_EAUTH; /* ferry_client_new fails with it */
        fy_client_fail(self, FERRY_EAUTH,
                       "%s refused this client's key at the handshake: it is not in the "
                       "broker's users file (a wrong password, another server key?)",
                       fy_conn_server(&self->conn));
    }
    if (!self->conn.sock && now >= self->conn.retry_at)
        s_attempt(self);
    if (self->conn.sock && !self->connected && self->hello_cid &&
        now - self->hello_at >= self->opts.timeout_ms)
        fy_cli_lose(self, "no answer to hello");
    /* The application did not call in for so long that the broker, which
     * heard nothing from us, may have dropped our push consumers: make them
     * again, or they would stay silent on a live connection. */
    if (self->connected)
        fy_cli_resubscribe_due(self, now);
    long long expiry = fy_consumer_timeout_ms((uint32_t)self->opts.heartbeat_ms);
    if (self->connected && self->nsubs > 0 &&
        now - self->last_send_ms >= expiry - expiry / FY_CLI_STALL_MARGIN_DIV) {
        fy_cli_log(self, FERRY_LOG_WARN,
                   "no word to the broker for %lld ms (the application did not call in): push "
                   "subscriptions made again",
                   now - self->last_send_ms);
        fy_cli_resubscribe(self);
    }
}

static void
s_heartbeat(ferry_client_t *self)
{
    long long now = fy_mono_ms();
    /* A ping when we sent nothing for an interval (the broker keeps our
     * consumers while it hears from us), and when we heard nothing for one
     * (a client that keeps sending to a broker that died without a word, or
     * behind a stalled network, would otherwise never notice). */
    bool quiet = now - self->last_send_ms >= self->opts.heartbeat_ms;
    bool deaf = now - self->last_recv_ms >= self->opts.heartbeat_ms && !self->ping_out;
    if (!quiet && !deaf)
        return;
    fy_encoder_reset(self->enc);
    if (fy_encode_simple(self->enc, self->next_cid++, FY_OP_PING, NULL) == FERRY_OK)
        fy_cli_send_nowait(self);
    if (!self->ping_out) {
        self->ping_out = true;
        self->ping_out_ms = now;
    }
}

static bool
s_goal_met(const ferry_client_t *self, fy_cli_goal_t goal)
{
    switch (goal) {
    case FY_CLI_WAIT_EMPTY:
        return self->count == 0;
    case FY_CLI_WAIT_SLOT:
        return self->count < self->opts.window;
    case FY_CLI_WAIT_CONNECTED:
        return self->connected;
    case FY_CLI_WAIT_ANY:
    case FY_CLI_WAIT_CID:
        break;
    }
    return false;
}

/* Reads replies until the goal is met or the deadline passes; async confirms
 * that arrive meanwhile fire their callbacks, deliveries their handlers, and
 * a lost connection is made again. FY_CLI_WAIT_CID fails with ECLOSED when the
 * connection its request went out on is lost. */
ferry_status_t
fy_cli_wait(ferry_client_t *self, fy_cli_goal_t goal, uint64_t cid, long long deadline,
            fy_reply_t *rep)
{
    size_t handled = 0;
    unsigned gen = self->conn.gen;
    for (;;) {
        s_tick(self);
        if (goal == FY_CLI_WAIT_CONNECTED && !self->connected && self->hello_refused)
            return self->hello_refused; /* refused (EAUTH, a hello error): no use waiting */
        if (goal == FY_CLI_WAIT_CID && (!self->connected || self->conn.gen != gen))
            return fy_client_fail(self, FERRY_ECLOSED,
                                  "connection lost with the request unanswered; it may or may "
                                  "not have been applied");
        if (s_goal_met(self, goal)) {
            if (goal != FY_CLI_WAIT_SLOT)
                return FERRY_OK;
            /* A slot is free: take every confirm already queued as well, so
             * the next publishes do not each stop to read one. */
            goal = FY_CLI_WAIT_ANY;
            handled++;
        }
        long long now = fy_mono_ms(), left = deadline - now;
        if (left < 0 || (goal == FY_CLI_WAIT_ANY && handled > 0))
            left = 0; /* FY_CLI_WAIT_ANY: once something arrived, take only what waits */
        int hb = self->opts.heartbeat_ms;
        if (self->connected) {
            s_heartbeat(self);
            if (left > hb)
                left = hb;
        } else if (left > 50) {
            left = 50; /* reconnecting: look again soon */
        }
        int got = s_read_reply(self, (long)left);
        if (got < 0) {
            fy_cli_lose(self, zmq_strerror(errno));
            continue;
        }
        if (got > 0) {
            self->ping_out = false;
            self->last_recv_ms = fy_mono_ms();
        }
        if (got == 0) {
            /* The broker answers every ping: two heartbeats without a word
             * back means it is gone or hung. */
            if (self->connected && self->ping_out && fy_mono_ms() - self->ping_out_ms >= 2LL * hb) {
                char why[96];
                snprintf(why, sizeof why, "broker silent for %lld ms (no answer to a heartbeat)",
                         fy_mono_ms() - self->ping_out_ms);
                fy_client_fail(self, FERRY_ETIMEOUT, "%s", why);
                fy_cli_lose(self, why);
                continue;
            }
            if (goal == FY_CLI_WAIT_ANY && (handled > 0 || fy_mono_ms() >= deadline))
                return FERRY_OK;
            if (fy_mono_ms() >= deadline)
                return goal == FY_CLI_WAIT_CONNECTED || !self->connected
                           ? fy_client_fail(self, FERRY_EDISCONNECTED,
                                            "not connected to a broker (reconnecting)")
                           : fy_client_fail(self, FERRY_ETIMEOUT, "no reply in time");
            continue;
        }
        handled++;
        fy_reply_t r;
        fy_err_t err;
        if (fy_reply_decode(self->dec, zmq_msg_data(&self->rframes[0]),
                            zmq_msg_size(&self->rframes[0]), &r, &err) != FERRY_OK) {
            /* Nothing to match it to: say so, count it, and fail the call
             * waiting (its reply may have been this one). A delivery lost
             * this way comes again after its ack wait. */
            self->bad_replies++;
            fy_cli_log(self, FERRY_LOG_WARN,
                       "a reply of %zu bytes in %zu frames could not be decoded (%s: %s); "
                       "%llu so far",
                       zmq_msg_size(&self->rframes[0]), self->nrframes, ferry_errname(err.code),
                       err.msg, (unsigned long long)self->bad_replies);
            if (goal == FY_CLI_WAIT_CID)
                return fy_client_fail(self, FERRY_EPROTO,
                                      "a reply of %zu bytes could not be decoded: %s",
                                      zmq_msg_size(&self->rframes[0]), err.msg);
            continue;
        }
        if (self->hello_cid && r.cid == self->hello_cid) {
            s_on_hello(self, &r);
            continue;
        }
        if (r.delivery) {
            fy_cli_dispatch(self, &r);
            continue;
        }
        if (fy_cli_on_resubscribed(self, &r))
            continue;
        /* A cumulative confirm answers cids r.cid .. r.cid + n - 1, in order. */
        size_t n = fy_reply_run(&r);
        bool not_leader = false;
        for (size_t i = 0; i < n; i++) {
            if (goal == FY_CLI_WAIT_CID && r.cid + i == cid) {
                *rep = r;
                self->rep_index = i;
                return FERRY_OK;
            }
            if (r.code == FERRY_ESHUTDOWN) {
                /* The broker is stopping and applied nothing of it: the
                 * publish stays in the window and goes again, with its cid
                 * and id, on the next connection (the broker closes this
                 * one once it has answered what it had). */
                if (self->shutdown_gen != self->conn.gen) {
                    self->shutdown_gen = self->conn.gen;
                    fy_cli_log(self, FERRY_LOG_WARN,
                               "%s is shutting down; publishes it did not apply are sent again "
                               "on the next connection",
                               fy_conn_server(&self->conn));
                }
                continue;
            }
            if (r.code == FERRY_ENOTLEADER || r.code == FERRY_ELEADER_LOST) {
                /* A cluster's node that does not lead (any more): the
                 * publish stays in the window and goes again, with its id,
                 * to the leader (dedupe makes a second copy a duplicate). */
                not_leader = true;
                continue;
            }
            fy_cli_complete_async(self, &r, i);
        }
        if (not_leader && self->connected)
            fy_cli_not_leader(self, &r);
    }
}

/* Sends the encoded envelope plus payload frames on the current connection. */
ferry_status_t
fy_cli_send(ferry_client_t *self, const void *const *payloads, const size_t *lens, size_t n)
{
    if (!self->connected || !self->conn.sock)
        return fy_client_fail(self, FERRY_EDISCONNECTED, "not connected to a broker");
    self->last_send_ms = fy_mono_ms();
    int more = n ? ZMQ_SNDMORE : 0;
    if (zmq_send(self->conn.sock, fy_encoder_data(self->enc), fy_encoder_len(self->enc), more) < 0)
        return fy_client_fail(self, errno == EAGAIN ? FERRY_ETIMEOUT : FERRY_ECLOSED,
                              "cannot send: %s", zmq_strerror(errno));
    for (size_t i = 0; i < n; i++) {
        if (zmq_send(self->conn.sock, payloads[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return fy_client_fail(self, FERRY_ECLOSED, "cannot send: %s", zmq_strerror(errno));
    }
    return FERRY_OK;
}

void
fy_cli_send_nowait(ferry_client_t *self)
{
    (void)fy_cli_send(self, NULL, NULL, 0); /* on failure last_error says why */
}

/* Sends a request and waits for its reply: the client timeout, plus `extra_ms`
 * for requests the broker may hold (a fetch with a wait). While reconnecting,
 * it first waits (within the same time) for the connection. */
static ferry_status_t
s_call(ferry_client_t *self, uint64_t cid, const void *const *payloads, const size_t *lens,
       size_t n, int extra_ms, bool reads_only, fy_reply_t *rep)
{
    if (self->in_handler)
        return fy_client_fail(self, FERRY_EINVAL, "a message handler must not call its client");
    long long deadline = fy_mono_ms() + self->opts.timeout_ms + extra_ms;
    ferry_status_t st;
    /* The wait may encode (resubscribe, resend, acks): keep the request. */
    fy_encoder_reset(self->stash);
    if ((st = fy_encoder_append(self->stash, self->enc)))
        return st;
    for (int hops = 0;; hops++) {
        if (!self->connected || hops > 0) {
            if (!self->connected &&
                (st = fy_cli_wait(self, FY_CLI_WAIT_CONNECTED, 0, deadline, rep)))
                return st;
            fy_encoder_reset(self->enc);
            if ((st = fy_encoder_append(self->enc, self->stash)))
                return st;
        }
        if ((st = fy_cli_send(self, payloads, lens, n)))
            return st;
        st = fy_cli_wait(self, FY_CLI_WAIT_CID, cid, deadline, rep);
        /* A request that changes nothing is asked again on the next
         * connection, within the same time. */
        if (st == FERRY_ECLOSED && reads_only && hops < 8 && fy_mono_ms() < deadline)
            continue;
        if (st)
            return st;
        /* Nothing applied on a node that does not lead: to the leader, within
         * the same time (ELEADER_LOST may have been applied: the caller's). */
        if (rep->code != FERRY_ENOTLEADER || hops >= 8 || fy_mono_ms() >= deadline)
            break;
        fy_cli_not_leader(self, rep);
    }
    if (rep->code)
        return fy_client_fail(self, rep->code, "%.*s", (int)rep->msg.len,
                              (const char *)rep->msg.ptr);
    self->last_error[0] = '\0';
    return FERRY_OK;
}

ferry_status_t
fy_cli_call_wait(ferry_client_t *self, uint64_t cid, const void *const *payloads,
                 const size_t *lens, size_t n, int extra_ms, fy_reply_t *rep)
{
    return s_call(self, cid, payloads, lens, n, extra_ms, false, rep);
}

ferry_status_t
fy_cli_call(ferry_client_t *self, uint64_t cid, const void *const *payloads, const size_t *lens,
            size_t n, fy_reply_t *rep)
{
    return s_call(self, cid, payloads, lens, n, 0, false, rep);
}

ferry_status_t
fy_cli_call_read(ferry_client_t *self, uint64_t cid, fy_reply_t *rep)
{
    return s_call(self, cid, NULL, NULL, 0, 0, true, rep);
}

/* ---- connection ------------------------------------------------------------ */

ferry_status_t
ferry_client_new(const ferry_options_t *opts, ferry_client_t **out)
{
    if (!out)
        return FERRY_EINVAL;
    *out = NULL;
    ferry_options_t *defaults = NULL;
    if (!opts) {
        defaults = ferry_options_new();
        if (!defaults)
            return FERRY_ENOMEM;
        opts = defaults;
    }
    if (opts->bad_env_key) { /* FERRY_SERVER_KEY is not a key nor @FILE of one */
        ferry_options_destroy(&defaults);
        return FERRY_EINVAL;
    }
    ferry_client_t *self = calloc(1, sizeof *self);
    ferry_status_t st = FERRY_ENOMEM;
    if (!self)
        goto done;
    self->opts = *opts; /* the scalars and callbacks; strings are copied below */
    self->opts.nservers = 0;
    memset(self->opts.servers, 0, sizeof self->opts.servers);
    self->opts.name = fy_cli_strdup(opts->name);
    self->opts.user = opts->user ? fy_cli_strdup(opts->user) : NULL;
    self->opts.password = opts->password ? fy_cli_strdup(opts->password) : NULL;
    self->fifo = calloc(opts->window, sizeof *self->fifo);
    self->enc = fy_encoder_new();
    self->stash = fy_encoder_new();
    self->dec = fy_decoder_new();
    self->next_cid = 1;
    self->fence = 1;
    self->ctx = zmq_ctx_new();
    if (!self->opts.name || !self->fifo || !self->enc || !self->stash || !self->dec || !self->ctx ||
        fy_conn_init(&self->conn, self->ctx, opts->servers, opts->nservers,
                     opts->reconnect_initial_ms, opts->reconnect_max_ms, opts->reconnect_jitter_pct,
                     opts->timeout_ms) != FERRY_OK)
        goto done;
    if (opts->user && !opts->server_key[0]) {
        /* A password is never sent in clear, nor at all: it needs CURVE. */
        st = fy_client_fail(self, FERRY_EINVAL,
                            "credentials need the server's key (ferry_options_set_server_key, "
                            "FERRY_SERVER_KEY)");
        goto done;
    }
    if (opts->server_key[0]) { /* CURVE, with this client's pair or a new one */
        self->conn.curve = true;
        memcpy(self->conn.server_key, opts->server_key, sizeof self->conn.server_key);
        if (opts->user) { /* a password user: the pair comes from the password */
            if ((st = fy_cli_password_keypair(opts->user, opts->password, opts->server_key,
                                              self->conn.public_key, self->conn.secret_key))) {
                fy_client_fail(self, st, "cannot derive the key pair of user %s", opts->user);
                goto done;
            }
        } else if (opts->public_key[0]) {
            memcpy(self->conn.public_key, opts->public_key, sizeof self->conn.public_key);
            memcpy(self->conn.secret_key, opts->secret_key, sizeof self->conn.secret_key);
        } else if (zmq_curve_keypair(self->conn.public_key, self->conn.secret_key) != 0) {
            st = FERRY_EINVAL; /* libzmq without CURVE */
            goto done;
        }
    }
    /* Every server once: the first that answers the hello (with
     * retry_connect only a moment: the client goes on trying by itself). */
    long long deadline =
        fy_mono_ms() + (opts->retry_connect
                            ? (opts->timeout_ms < 200 ? opts->timeout_ms : 200)
                            : (long long)opts->timeout_ms * (long long)opts->nservers);
    if (s_attempt(self) == FERRY_EINVAL) {
        st = fy_client_fail(self, FERRY_EINVAL, "bad server endpoint '%s'",
                            opts->servers[0] ? opts->servers[0] : "");
        goto done;
    }
    fy_reply_t rep;
    while (!self->connected && fy_mono_ms() < deadline && !self->last_error[0])
        fy_cli_wait(self, FY_CLI_WAIT_CONNECTED, 0, deadline, &rep);
    if (self->connected) {
        st = FERRY_OK;
    } else if (self->hello_refused) {
        st = self->hello_refused;
    } else if (opts->retry_connect) {
        st = FERRY_OK; /* not connected yet: calls wait for it, publishes are buffered */
        self->last_error[0] = '\0';
        fy_cli_log(self, FERRY_LOG_INFO, "no broker yet; connecting in the background");
    } else {
        st =
            fy_client_fail(self, FERRY_ECONNECT, "no answer from %s within %d ms",
                           opts->nservers == 1 ? opts->servers[0] : "any server", opts->timeout_ms);
    }
done:
    ferry_options_destroy(&defaults);
    if (st != FERRY_OK) {
        ferry_client_destroy(&self);
        return st;
    }
    *out = self;
    return FERRY_OK;
}

void
ferry_client_destroy(ferry_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ferry_client_t *self = *self_p;
    ferry_confirm_t cf = {.status = FERRY_ECLOSED};
    while (self->fifo && self->count > 0) {
        fy_cli_pending_t *p = fy_cli_fifo_at(self, 0);
        self->head = (self->head + 1) % self->opts.window;
        self->count--;
        if (!p->done && p->cb)
            p->cb(self, &cf, p->user);
    }
    for (size_t i = 0; self->fifo && i < self->opts.window; i++)
        free(self->fifo[i].req);
    fy_rpc_destroy(self);
    s_drop_reply(self);
    if (self->connected && self->nsubs) {
        /* Tell the broker our push consumers are gone, so that what they kept
         * unacked is delivered again at once; give the sends a moment. */
        for (size_t i = 0; i < self->nsubs; i++) {
            fy_encoder_reset(self->enc);
            if (fy_encode_consumer_op(self->enc, self->next_cid++, FY_OP_UNSUBSCRIBE,
                                      self->subs[i].consumer, 0) == FERRY_OK)
                zmq_send(self->conn.sock, fy_encoder_data(self->enc), fy_encoder_len(self->enc),
                         ZMQ_DONTWAIT);
        }
        int linger = 500;
        zmq_setsockopt(self->conn.sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    fy_conn_free(&self->conn);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    fy_encoder_destroy(&self->enc);
    fy_encoder_destroy(&self->stash);
    fy_decoder_destroy(&self->dec);
    free(self->fifo);
    free(self->got);
    free(self->got_hdrs);
    free(self->got_text);
    free(self->opts.name);
    free(self->opts.user);
    free(self->opts.password);
    free(self);
    *self_p = NULL;
}

bool
ferry_client_connected(const ferry_client_t *self)
{
    return self && self->connected;
}

unsigned
ferry_client_reconnects(const ferry_client_t *self)
{
    return self ? self->losses : 0;
}

uint64_t
ferry_client_bad_replies(const ferry_client_t *self)
{
    return self ? self->bad_replies : 0;
}

ferry_status_t
ferry_client_fd(ferry_client_t *self, int *fd)
{
    if (!self || !fd)
        return FERRY_EINVAL;
    size_t len = sizeof *fd;
    if (!self->conn.sock || zmq_getsockopt(self->conn.sock, ZMQ_FD, fd, &len) != 0)
        return fy_client_fail(self, FERRY_ECLOSED, "no connection right now");
    return FERRY_OK;
}

int
ferry_client_next_timeout_ms(const ferry_client_t *self)
{
    if (!self)
        return 0;
    if (!self->connected)
        return 50;
    long long now = fy_mono_ms(), hb = self->opts.heartbeat_ms;
    long long t = hb - (now - self->last_send_ms);
    if (!self->ping_out && hb - (now - self->last_recv_ms) < t)
        t = hb - (now - self->last_recv_ms); /* a deaf interval ends sooner: ping then */
    return t < 10 ? 10 : t > hb ? (int)hb : (int)t;
}

const char *
ferry_client_last_error(const ferry_client_t *self)
{
    return self ? self->last_error : "no client";
}

/* ---- operations -------------------------------------------------------------- */

ferry_status_t
ferry_client_ping(ferry_client_t *self)
{
    if (!self)
        return FERRY_EINVAL;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_PING, NULL);
    fy_reply_t rep;
    return st ? st : fy_cli_call_read(self, cid, &rep);
}

ferry_status_t
ferry_client_poll(ferry_client_t *self, int timeout_ms)
{
    if (!self || timeout_ms < 0)
        return FERRY_EINVAL;
    fy_reply_t unused;
    ferry_status_t st = fy_cli_wait(self, FY_CLI_WAIT_ANY, 0, fy_mono_ms() + timeout_ms, &unused);
    if (self->rpc)
        fy_rpc_expire(self);
    return st;
}

ferry_status_t
ferry_client_flush(ferry_client_t *self, int timeout_ms)
{
    if (!self || timeout_ms < 0)
        return FERRY_EINVAL;
    fy_reply_t unused;
    ferry_status_t st = fy_cli_wait(self, FY_CLI_WAIT_EMPTY, 0, fy_mono_ms() + timeout_ms, &unused);
    if (self->rpc)
        fy_rpc_expire(self);
    return st;
}
