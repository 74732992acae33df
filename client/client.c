/*
 * client.c - libferry: a connection to ferryd over a ZeroMQ DEALER socket.
 *
 * Blocking calls send a request and read replies until theirs arrives;
 * replies to async publishes that arrive meanwhile fire their callbacks.
 * The broker answers one connection's requests in order, so async publishes
 * wait in a FIFO and are matched by correlation id. One thread per client.
 */
#include "ferry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "client_int.h"
#include "clock.h"
#include "conn.h"
#include "envelope.h"

#define S_MAX_REPLY_FRAMES (FY_BATCH_MAX + 1)
#define S_SUBS_MAX         64   /* push subscriptions per client */
#define S_HEARTBEAT_MS     5000 /* default: an idle client says something this often */
#define S_SERVERS_MAX      16
#define S_STALL_MARGIN_DIV 15 /* resubscribe a fifteenth before the broker may drop us */

typedef struct s_pushsub {
    uint64_t consumer;
    uint64_t resub_cid; /* the subscribe sent after a reconnect, until answered */
    char topic[FERRY_NAME_MAX + 1], sub[FERRY_NAME_MAX + 1];
    uint32_t prefetch, consumed; /* consumed: processed since the last credit top-up */
    bool ephemeral;              /* live messages only: nothing to ack */
    ferry_msg_fn fn;
    void *user;
} s_pushsub_t;

struct ferry_options {
    char *servers[S_SERVERS_MAX];
    size_t nservers;
    char *name;
    int timeout_ms;
    int heartbeat_ms;
    size_t window;
    int reconnect_initial_ms, reconnect_max_ms, reconnect_jitter_pct;
    bool block_on_full;
    bool retry_connect; /* ferry_client_new succeeds without a broker and keeps trying */
    ferry_state_fn state_cb;
    void *state_user;
    ferry_log_fn log_cb;
    void *log_user;
    char *user, *password;
};

/* An async publish not yet confirmed, with its request as sent, so that it
 * can be sent again on a new connection (same cid, same message id). */
typedef struct s_pending {
    uint64_t cid;
    ferry_confirm_fn cb;
    void *user;
    bool done;
    uint8_t *req;   /* envelope bytes, then the payload frame's bytes if any */
    size_t req_cap; /* the slot's buffer, kept for the slot's next publish */
    size_t env_len; /* bytes of the envelope */
    size_t data_len;
    bool frame; /* a payload frame follows the envelope */
} s_pending_t;

struct ferry_client {
    void *ctx;
    fy_conn_t conn;
    bool connected;      /* the current socket's hello was answered */
    uint64_t hello_cid;  /* the hello in flight on a new socket (0: none) */
    long long hello_at;  /* when it was sent */
    unsigned losses;     /* connections lost so far */
    bool ever_connected; /* a connection worked once (ferry_client_new) */
    struct ferry_options opts;
    uint64_t next_cid;
    uint64_t max_msg_bytes;
    fy_encoder_t *enc;
    fy_encoder_t *stash;                /* a request waiting for a connection */
    char got_topic[FERRY_NAME_MAX + 1]; /* topic of the messages in got */
    fy_decoder_t *dec;
    s_pending_t *fifo; /* ring of opts.window entries */
    size_t head, count;
    zmq_msg_t rframes[S_MAX_REPLY_FRAMES]; /* frames of the last reply read */
    size_t nrframes;
    size_t rep_index;            /* place of the awaited cid in a cumulative confirm */
    ferry_stored_message_t *got; /* results of the last get */
    ferry_header_t *got_hdrs;
    char *got_text;
    char last_error[256];
    s_pushsub_t subs[S_SUBS_MAX];
    size_t nsubs;
    bool in_handler;
    long long last_send_ms;
    bool ping_out;         /* a heartbeat ping was sent and nothing came back since */
    long long ping_out_ms; /* when that ping was sent */
    struct fy_rpc *rpc;    /* request/reply state (rpc.c), NULL until used */
};

static char *
s_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

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

/* ---- options ------------------------------------------------------------- */

ferry_options_t *
ferry_options_new(void)
{
    ferry_options_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->servers[0] = s_strdup("tcp://127.0.0.1:5555");
    o->nservers = 1;
    o->name = s_strdup("libferry");
    if (!o->servers[0] || !o->name) {
        ferry_options_destroy(&o);
        return NULL;
    }
    o->timeout_ms = 5000;
    o->heartbeat_ms = S_HEARTBEAT_MS;
    o->window = 1000;
    o->reconnect_initial_ms = 100;
    o->reconnect_max_ms = 5000;
    o->reconnect_jitter_pct = 20;
    o->block_on_full = true;
    return o;
}

static void
s_free_servers(ferry_options_t *o)
{
    for (size_t i = 0; i < o->nservers; i++)
        free(o->servers[i]);
    o->nservers = 0;
}

void
ferry_options_destroy(ferry_options_t **opts_p)
{
    if (!opts_p || !*opts_p)
        return;
    ferry_options_t *o = *opts_p;
    s_free_servers(o);
    free(o->name);
    free(o->user);
    free(o->password);
    free(o);
    *opts_p = NULL;
}

static ferry_status_t
s_set_str(char **field, const char *value, size_t max)
{
    if (!value || !*value || strlen(value) > max)
        return FERRY_EINVAL;
    char *copy = s_strdup(value);
    if (!copy)
        return FERRY_ENOMEM;
    free(*field);
    *field = copy;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_server(ferry_options_t *opts, const char *endpoint)
{
    if (!opts || !endpoint || !*endpoint || strlen(endpoint) > 1024)
        return FERRY_EINVAL;
    char *copy = s_strdup(endpoint);
    if (!copy)
        return FERRY_ENOMEM;
    s_free_servers(opts);
    opts->servers[opts->nservers++] = copy;
    return FERRY_OK;
}

ferry_status_t
ferry_options_add_server(ferry_options_t *opts, const char *endpoint)
{
    if (!opts || opts->nservers == S_SERVERS_MAX)
        return FERRY_EINVAL;
    opts->servers[opts->nservers] = NULL;
    ferry_status_t st = s_set_str(&opts->servers[opts->nservers], endpoint, 1024);
    if (st == FERRY_OK)
        opts->nservers++;
    return st;
}

ferry_status_t
ferry_options_set_name(ferry_options_t *opts, const char *name)
{
    return opts ? s_set_str(&opts->name, name, FERRY_NAME_MAX) : FERRY_EINVAL;
}

ferry_status_t
ferry_options_set_heartbeat_ms(ferry_options_t *opts, int heartbeat_ms)
{
    if (!opts || heartbeat_ms < 100 || heartbeat_ms > S_HEARTBEAT_MS)
        return FERRY_EINVAL;
    opts->heartbeat_ms = heartbeat_ms;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_timeout_ms(ferry_options_t *opts, int timeout_ms)
{
    if (!opts || timeout_ms <= 0)
        return FERRY_EINVAL;
    opts->timeout_ms = timeout_ms;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_window(ferry_options_t *opts, size_t window)
{
    if (!opts || window == 0 || window > 65536)
        return FERRY_EINVAL;
    opts->window = window;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_reconnect(ferry_options_t *opts, int initial_ms, int max_ms, int jitter_pct)
{
    if (!opts || initial_ms < 1 || max_ms < initial_ms || max_ms > 600000 || jitter_pct < 0 ||
        jitter_pct > 100)
        return FERRY_EINVAL;
    opts->reconnect_initial_ms = initial_ms;
    opts->reconnect_max_ms = max_ms;
    opts->reconnect_jitter_pct = jitter_pct;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_retry_connect(ferry_options_t *opts, bool retry)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->retry_connect = retry;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_block_on_full(ferry_options_t *opts, bool block)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->block_on_full = block;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_state_cb(ferry_options_t *opts, ferry_state_fn fn, void *user)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->state_cb = fn;
    opts->state_user = user;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_log_cb(ferry_options_t *opts, ferry_log_fn fn, void *user)
{
    if (!opts)
        return FERRY_EINVAL;
    opts->log_cb = fn;
    opts->log_user = user;
    return FERRY_OK;
}

ferry_status_t
ferry_options_set_credentials(ferry_options_t *opts, const char *user, const char *password)
{
    if (!opts || !user || !password)
        return FERRY_EINVAL;
    ferry_status_t st = s_set_str(&opts->user, user, FERRY_NAME_MAX);
    if (st == FERRY_OK && *password)
        st = s_set_str(&opts->password, password, 1024);
    return st;
}

/* ---- replies --------------------------------------------------------------- */

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
        if (self->nrframes < S_MAX_REPLY_FRAMES)
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

static s_pending_t *
s_fifo_at(ferry_client_t *self, size_t i)
{
    return &self->fifo[(self->head + i) % self->opts.window];
}

/* Completes the async publish with this cid, if it is one. Replies come in
 * request order, so it is almost always the head of the FIFO. */
static bool
s_complete_async(ferry_client_t *self, uint64_t cid, const ferry_confirm_t *cf)
{
    for (size_t i = 0; i < self->count; i++) {
        s_pending_t *p = s_fifo_at(self, i);
        if (p->cid != cid || p->done)
            continue;
        p->done = true;
        if (p->cb)
            p->cb(self, cf, p->user);
        while (self->count > 0 && s_fifo_at(self, 0)->done) {
            self->head = (self->head + 1) % self->opts.window;
            self->count--;
        }
        return true;
    }
    return false;
}

static void
s_confirm_from(const fy_reply_t *rep, size_t index, ferry_confirm_t *cf)
{
    memset(cf, 0, sizeof *cf);
    cf->status = rep->code;
    if (rep->code == FERRY_ECONFLICT) {
        /* The values the writer should know now; an old broker may not send them. */
        if (fy_reply_conflict(rep, &cf->seq, &cf->key_version) != FERRY_OK)
            cf->seq = cf->key_version = 0;
        return;
    }
    if (rep->code != FERRY_OK)
        return;
    fy_status_t st =
        fy_reply_run(rep) > 1
            ? fy_reply_confirm_at(rep, index, &cf->seq, &cf->duplicate, &cf->key_version)
            : fy_reply_confirm(rep, &cf->seq, &cf->duplicate, &cf->key_version);
    if (st != FERRY_OK)
        cf->status = FERRY_EPROTO;
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

static void s_log(ferry_client_t *self, ferry_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_log(ferry_client_t *self, ferry_log_level_t level, const char *fmt, ...)
{
    if (!self->opts.log_cb)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    self->opts.log_cb(level, line, self->opts.log_user);
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
 * @return 0, or the errno of a socket that could not be opened. */
static int
s_attempt(ferry_client_t *self)
{
    if (fy_conn_open(&self->conn) != 0) {
        int e = errno;
        s_log(self, FERRY_LOG_WARN, "cannot open a connection to %s: %s",
              fy_conn_server(&self->conn), zmq_strerror(e));
        fy_conn_lost(&self->conn, fy_mono_ms());
        return e;
    }
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    if (fy_encode_hello(self->enc, cid, self->opts.name) != FERRY_OK ||
        zmq_send(self->conn.sock, fy_encoder_data(self->enc), fy_encoder_len(self->enc),
                 ZMQ_DONTWAIT) < 0) {
        fy_conn_lost(&self->conn, fy_mono_ms());
        return EIO;
    }
    self->hello_cid = cid;
    self->hello_at = fy_mono_ms();
    s_log(self, FERRY_LOG_INFO, "connecting to %s", fy_conn_server(&self->conn));
    return 0;
}

/* The connection is gone: close it and schedule the next attempt. */
static void
s_lose(ferry_client_t *self, const char *reason)
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
        s_log(self, FERRY_LOG_WARN, "connection to %s lost: %s; %zu publishes to resend", server,
              reason, self->count);
        s_state(self, FERRY_CONN_DISCONNECTED, server, reason);
    } else {
        s_log(self, FERRY_LOG_INFO, "no connection to %s: %s", server, reason);
    }
}

static ferry_status_t s_send(ferry_client_t *self, const void *const *payloads, const size_t *lens,
                             size_t n);

/* Sends an async publish's stored request. */
static ferry_status_t
s_send_pending(ferry_client_t *self, const s_pending_t *p)
{
    self->last_send_ms = fy_mono_ms();
    int more = p->frame ? ZMQ_SNDMORE : 0;
    if (zmq_send(self->conn.sock, p->req, p->env_len, more) < 0 ||
        (p->frame && zmq_send(self->conn.sock, p->req + p->env_len, p->data_len, 0) < 0))
        return fy_client_fail(self, FERRY_ECLOSED, "cannot send: %s", zmq_strerror(errno));
    return FERRY_OK;
}

/* Makes every push subscription again. If the broker still has the old
 * consumer (it did not restart), it would keep handing it messages for a
 * peer that is gone, or it has expired it: release it first, which also
 * makes what it held due again at once. The answer (ok, or ENOTFOUND) matches
 * nothing; the new subscribe's answer carries the new consumer id. */
static void
s_resubscribe(ferry_client_t *self)
{
    for (size_t i = 0; i < self->nsubs; i++) {
        s_pushsub_t *ps = &self->subs[i];
        fy_encoder_reset(self->enc);
        if (fy_encode_consumer_op(self->enc, self->next_cid++, FY_OP_UNSUBSCRIBE, ps->consumer,
                                  0) == FERRY_OK)
            (void)s_send(self, NULL, NULL, 0);
        ps->resub_cid = self->next_cid++;
        ps->consumed = 0;
        fy_encoder_reset(self->enc);
        if (fy_encode_subscribe(self->enc, ps->resub_cid, ps->topic, ps->sub, ps->prefetch,
                                (uint32_t)self->opts.heartbeat_ms) == FERRY_OK)
            (void)s_send(self, NULL, NULL, 0);
    }
}

/* The hello was answered: connected. Push subscriptions are made again and
 * unconfirmed publishes sent again, in order. */
static void
s_on_hello(ferry_client_t *self, const fy_reply_t *r)
{
    self->hello_cid = 0;
    if (r->code != FERRY_OK || fy_reply_hello(r, &self->max_msg_bytes) != FERRY_OK) {
        fy_client_fail(self, r->code ? r->code : FERRY_EPROTO, "hello refused: %.*s",
                       (int)r->msg.len, (const char *)r->msg.ptr);
        s_lose(self, "hello refused");
        return;
    }
    self->connected = true;
    self->ping_out = false;
    self->last_send_ms = fy_mono_ms();
    fy_conn_ok(&self->conn);
    bool again = self->ever_connected;
    self->ever_connected = true;
    s_resubscribe(self);
    size_t resent = 0;
    for (size_t i = 0; i < self->count && self->connected; i++) {
        s_pending_t *p = s_fifo_at(self, i);
        if (!p->done && p->req) {
            if (s_send_pending(self, p) != FERRY_OK) {
                s_lose(self, "send failed");
                return;
            }
            resent++;
        }
    }
    s_log(self, FERRY_LOG_INFO, "connected to %s%s; %zu publishes resent, %zu subscriptions",
          fy_conn_server(&self->conn), again ? " again" : "", resent, self->nsubs);
    s_state(self, FERRY_CONN_CONNECTED, fy_conn_server(&self->conn), NULL);
}

/* The answer to a subscribe sent after a reconnect: the consumer's new id. */
static bool
s_on_resubscribed(ferry_client_t *self, const fy_reply_t *r)
{
    for (size_t i = 0; i < self->nsubs; i++) {
        s_pushsub_t *ps = &self->subs[i];
        if (!ps->resub_cid || ps->resub_cid != r->cid)
            continue;
        ps->resub_cid = 0;
        uint64_t id;
        if (r->code == FERRY_OK && fy_reply_consumer(r, &id) == FERRY_OK) {
            ps->consumer = id;
        } else {
            s_log(self, FERRY_LOG_WARN, "subscription %s/%s not restored: %s", ps->topic, ps->sub,
                  ferry_errname(r->code));
            *ps = self->subs[--self->nsubs];
        }
        return true;
    }
    return false;
}

/* Connection housekeeping, once per turn of the reply loop. */
static void
s_tick(ferry_client_t *self)
{
    long long now = fy_mono_ms();
    if (self->conn.sock && fy_conn_dropped(&self->conn))
        s_lose(self, "connection dropped");
    if (!self->conn.sock && now >= self->conn.retry_at)
        s_attempt(self);
    if (self->conn.sock && !self->connected && self->hello_cid &&
        now - self->hello_at >= self->opts.timeout_ms)
        s_lose(self, "no answer to hello");
    /* The application did not call in for so long that the broker, which
     * heard nothing from us, may have dropped our push consumers: make them
     * again, or they would stay silent on a live connection. */
    long long expiry = fy_consumer_timeout_ms((uint32_t)self->opts.heartbeat_ms);
    if (self->connected && self->nsubs > 0 &&
        now - self->last_send_ms >= expiry - expiry / S_STALL_MARGIN_DIV) {
        s_log(self, FERRY_LOG_WARN,
              "no word to the broker for %lld ms (the application did not call in): push "
              "subscriptions made again",
              now - self->last_send_ms);
        s_resubscribe(self);
    }
}

/* What s_wait waits for. */
typedef enum {
    S_WAIT_CID,      /* the reply to one request */
    S_WAIT_EMPTY,    /* no async publish left unconfirmed */
    S_WAIT_SLOT,     /* room in the publish window */
    S_WAIT_ANY,      /* whatever has arrived (at least one reply, or the deadline) */
    S_WAIT_CONNECTED /* a connection */
} s_goal_t;

static bool
s_goal_met(const ferry_client_t *self, s_goal_t goal)
{
    switch (goal) {
    case S_WAIT_EMPTY:
        return self->count == 0;
    case S_WAIT_SLOT:
        return self->count < self->opts.window;
    case S_WAIT_CONNECTED:
        return self->connected;
    case S_WAIT_ANY:
    case S_WAIT_CID:
        break;
    }
    return false;
}

static void s_dispatch(ferry_client_t *self, const fy_reply_t *rep);
static void s_heartbeat(ferry_client_t *self);

/* Reads replies until the goal is met or the deadline passes; async confirms
 * that arrive meanwhile fire their callbacks, deliveries their handlers, and
 * a lost connection is made again. S_WAIT_CID fails with ECLOSED when the
 * connection its request went out on is lost. */
static ferry_status_t
s_wait(ferry_client_t *self, s_goal_t goal, uint64_t cid, long long deadline, fy_reply_t *rep)
{
    size_t handled = 0;
    unsigned gen = self->conn.gen;
    for (;;) {
        s_tick(self);
        if (goal == S_WAIT_CID && (!self->connected || self->conn.gen != gen))
            return fy_client_fail(self, FERRY_ECLOSED,
                                  "connection lost with the request unanswered; it may or may "
                                  "not have been applied");
        if (s_goal_met(self, goal)) {
            if (goal != S_WAIT_SLOT)
                return FERRY_OK;
            /* A slot is free: take every confirm already queued as well, so
             * the next publishes do not each stop to read one. */
            goal = S_WAIT_ANY;
            handled++;
        }
        long long now = fy_mono_ms(), left = deadline - now;
        if (left < 0 || (goal == S_WAIT_ANY && handled > 0))
            left = 0; /* S_WAIT_ANY: once something arrived, take only what waits */
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
            s_lose(self, zmq_strerror(errno));
            continue;
        }
        if (got > 0)
            self->ping_out = false;
        if (got == 0) {
            /* The broker answers every ping: two heartbeats without a word
             * back means it is gone or hung. */
            if (self->connected && self->ping_out && fy_mono_ms() - self->ping_out_ms >= 2LL * hb) {
                char why[96];
                snprintf(why, sizeof why, "broker silent for %lld ms (no answer to a heartbeat)",
                         fy_mono_ms() - self->ping_out_ms);
                fy_client_fail(self, FERRY_ETIMEOUT, "%s", why);
                s_lose(self, why);
                continue;
            }
            if (goal == S_WAIT_ANY && (handled > 0 || fy_mono_ms() >= deadline))
                return FERRY_OK;
            if (fy_mono_ms() >= deadline)
                return goal == S_WAIT_CONNECTED || !self->connected
                           ? fy_client_fail(self, FERRY_EDISCONNECTED,
                                            "not connected to a broker (reconnecting)")
                           : fy_client_fail(self, FERRY_ETIMEOUT, "no reply in time");
            continue;
        }
        handled++;
        fy_reply_t r;
        fy_err_t err;
        if (fy_reply_decode(self->dec, zmq_msg_data(&self->rframes[0]),
                            zmq_msg_size(&self->rframes[0]), &r, &err) != FERRY_OK)
            continue; /* not a reply we can read: nothing to match it to */
        if (self->hello_cid && r.cid == self->hello_cid) {
            s_on_hello(self, &r);
            continue;
        }
        if (r.delivery) {
            s_dispatch(self, &r);
            continue;
        }
        if (s_on_resubscribed(self, &r))
            continue;
        /* A cumulative confirm answers cids r.cid .. r.cid + n - 1, in order. */
        size_t n = fy_reply_run(&r);
        for (size_t i = 0; i < n; i++) {
            if (goal == S_WAIT_CID && r.cid + i == cid) {
                *rep = r;
                self->rep_index = i;
                return FERRY_OK;
            }
            ferry_confirm_t cf;
            s_confirm_from(&r, i, &cf);
            s_complete_async(self, r.cid + i, &cf);
        }
    }
}

/* Sends the encoded envelope plus payload frames on the current connection. */
static ferry_status_t
s_send(ferry_client_t *self, const void *const *payloads, const size_t *lens, size_t n)
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

/* Sends a request and waits for its reply: the client timeout, plus `extra_ms`
 * for requests the broker may hold (a fetch with a wait). While reconnecting,
 * it first waits (within the same time) for the connection. */
static ferry_status_t
s_call_wait(ferry_client_t *self, uint64_t cid, const void *const *payloads, const size_t *lens,
            size_t n, int extra_ms, fy_reply_t *rep)
{
    if (self->in_handler)
        return fy_client_fail(self, FERRY_EINVAL, "a message handler must not call its client");
    long long deadline = fy_mono_ms() + self->opts.timeout_ms + extra_ms;
    ferry_status_t st;
    if (!self->connected) {
        /* The wait may encode (resubscribe, resend, acks): keep the request. */
        fy_encoder_reset(self->stash);
        if ((st = fy_encoder_append(self->stash, self->enc)))
            return st;
        if ((st = s_wait(self, S_WAIT_CONNECTED, 0, deadline, rep)))
            return st;
        fy_encoder_reset(self->enc);
        if ((st = fy_encoder_append(self->enc, self->stash)))
            return st;
    }
    if ((st = s_send(self, payloads, lens, n)))
        return st;
    st = s_wait(self, S_WAIT_CID, cid, deadline, rep);
    if (st)
        return st;
    if (rep->code)
        return fy_client_fail(self, rep->code, "%.*s", (int)rep->msg.len,
                              (const char *)rep->msg.ptr);
    self->last_error[0] = '\0';
    return FERRY_OK;
}

static ferry_status_t
s_call(ferry_client_t *self, uint64_t cid, const void *const *payloads, const size_t *lens,
       size_t n, fy_reply_t *rep)
{
    return s_call_wait(self, cid, payloads, lens, n, 0, rep);
}

static bool
s_name_ok(const char *name)
{
    return name && fy_name_valid(fy_bytes_str(name));
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
    ferry_client_t *self = calloc(1, sizeof *self);
    ferry_status_t st = FERRY_ENOMEM;
    if (!self)
        goto done;
    self->opts = *opts; /* the scalars and callbacks; strings are copied below */
    self->opts.nservers = 0;
    memset(self->opts.servers, 0, sizeof self->opts.servers);
    self->opts.name = s_strdup(opts->name);
    self->opts.user = opts->user ? s_strdup(opts->user) : NULL;
    self->opts.password = opts->password ? s_strdup(opts->password) : NULL;
    self->fifo = calloc(opts->window, sizeof *self->fifo);
    self->enc = fy_encoder_new();
    self->stash = fy_encoder_new();
    self->dec = fy_decoder_new();
    self->next_cid = 1;
    self->ctx = zmq_ctx_new();
    if (!self->opts.name || !self->fifo || !self->enc || !self->stash || !self->dec || !self->ctx ||
        fy_conn_init(&self->conn, self->ctx, opts->servers, opts->nservers,
                     opts->reconnect_initial_ms, opts->reconnect_max_ms, opts->reconnect_jitter_pct,
                     opts->timeout_ms) != 0)
        goto done;
    /* Every server once: the first that answers the hello (with
     * retry_connect only a moment: the client goes on trying by itself). */
    long long deadline =
        fy_mono_ms() + (opts->retry_connect
                            ? (opts->timeout_ms < 200 ? opts->timeout_ms : 200)
                            : (long long)opts->timeout_ms * (long long)opts->nservers);
    if (s_attempt(self) == EINVAL) {
        st = fy_client_fail(self, FERRY_EINVAL, "bad server endpoint '%s'",
                            opts->servers[0] ? opts->servers[0] : "");
        goto done;
    }
    fy_reply_t rep;
    while (!self->connected && fy_mono_ms() < deadline && !self->last_error[0])
        s_wait(self, S_WAIT_CONNECTED, 0, deadline, &rep);
    if (self->connected) {
        st = FERRY_OK;
    } else if (self->last_error[0] && strncmp(self->last_error, "hello refused", 13) == 0) {
        st = FERRY_EVERSION;
    } else if (opts->retry_connect) {
        st = FERRY_OK; /* not connected yet: calls wait for it, publishes are buffered */
        self->last_error[0] = '\0';
        s_log(self, FERRY_LOG_INFO, "no broker yet; connecting in the background");
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
        s_pending_t *p = s_fifo_at(self, 0);
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
    long long idle = fy_mono_ms() - self->last_send_ms, hb = self->opts.heartbeat_ms;
    long long t = hb - idle;
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
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_declare(ferry_client_t *self, ferry_kind_t kind, const char *name,
                     const ferry_topic_config_t *config, ferry_topic_info_t *info, bool *created)
{
    if (!self || (kind != FERRY_KIND_TOPIC && kind != FERRY_KIND_QUEUE))
        return FERRY_EINVAL;
    if (!s_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_declare(self->enc, cid, kind, name, config);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    ferry_topic_info_t tmp;
    bool c;
    if (fy_reply_info(&rep, info ? info : &tmp, &c) != FERRY_OK)
        return fy_client_fail(self, FERRY_EPROTO, "malformed declare reply");
    if (created)
        *created = c;
    return FERRY_OK;
}

ferry_status_t
ferry_client_delete(ferry_client_t *self, const char *name)
{
    if (!self)
        return FERRY_EINVAL;
    if (!s_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_DELETE, name);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_info(ferry_client_t *self, const char *name, ferry_topic_info_t *info)
{
    if (!self || !info)
        return FERRY_EINVAL;
    if (!s_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_INFO, name);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    return fy_reply_info(&rep, info, NULL)
               ? fy_client_fail(self, FERRY_EPROTO, "malformed info reply")
               : FERRY_OK;
}

ferry_status_t
ferry_client_stats(ferry_client_t *self, ferry_stats_t *stats)
{
    if (!self || !stats)
        return FERRY_EINVAL;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_STATS, NULL);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    return fy_reply_stats(&rep, stats) ? fy_client_fail(self, FERRY_EPROTO, "malformed stats reply")
                                       : FERRY_OK;
}

/* Checks what the broker would refuse anyway, so misuse fails fast and locally. */
static ferry_status_t
s_check_message(ferry_client_t *self, const char *topic, const ferry_message_t *msg)
{
    if (!msg || (!msg->data && msg->len) || (msg->header_count && !msg->headers))
        return fy_client_fail(self, FERRY_EINVAL, "invalid message");
    if (!s_name_ok(topic))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic name");
    size_t klen = msg->key ? strlen(msg->key) : 0, ilen = msg->id ? strlen(msg->id) : 0;
    if ((msg->key && (klen == 0 || klen > FERRY_ID_MAX)) ||
        (msg->id && (ilen == 0 || ilen > FERRY_ID_MAX)))
        return fy_client_fail(self, FERRY_EINVAL, "key and id must be 1-%d bytes", FERRY_ID_MAX);
    if (msg->header_count > FY_HEADERS_MAX)
        return fy_client_fail(self, FERRY_EINVAL, "at most %d headers", FY_HEADERS_MAX);
    if ((msg->expect & FERRY_EXPECT_KEY_VERSION) && !msg->key)
        return fy_client_fail(self, FERRY_EINVAL, "an expected key version needs a key");
    if (msg->expect & ~(FERRY_EXPECT_LAST_SEQ | FERRY_EXPECT_KEY_VERSION))
        return fy_client_fail(self, FERRY_EINVAL, "unknown FERRY_EXPECT_ bits");
    if (msg->not_before_ms && msg->delay_ms)
        return fy_client_fail(self, FERRY_EINVAL, "give not_before_ms or delay_ms, not both");
    if (msg->delay_ms > FY_DELAY_MAX)
        return fy_client_fail(self, FERRY_EINVAL, "delay_ms is at most ten years");
    for (size_t i = 0; i < msg->header_count; i++)
        if (!msg->headers[i].name || !msg->headers[i].value || !msg->headers[i].name[0])
            return fy_client_fail(self, FERRY_EINVAL, "header %zu has no name or value", i);
    if (self->max_msg_bytes && msg->len + klen + ilen > self->max_msg_bytes)
        return fy_client_fail(self, FERRY_ETOO_LARGE,
                              "message of %zu bytes exceeds the limit of %llu",
                              msg->len + klen + ilen, (unsigned long long)self->max_msg_bytes);
    return FERRY_OK;
}

ferry_status_t
ferry_client_publish(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
                     ferry_confirm_t *confirm)
{
    if (!self)
        return FERRY_EINVAL;
    ferry_status_t st = s_check_message(self, topic, msg);
    if (st)
        return st;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    bool inl = msg->len <= FY_INLINE_MAX;
    if ((st = fy_encode_publish(self->enc, cid, topic, msg, inl)))
        return st;
    const void *data = msg->data ? msg->data : "";
    fy_reply_t rep;
    st = s_call(self, cid, &data, &msg->len, inl ? 0 : 1, &rep);
    ferry_confirm_t cf = {.status = st};
    if (st == FERRY_OK || st == FERRY_ECONFLICT)
        s_confirm_from(&rep, self->rep_index, &cf);
    if (confirm)
        *confirm = cf;
    return cf.status;
}

ferry_status_t
ferry_client_publish_batch(ferry_client_t *self, const char *topic, const ferry_message_t *msgs,
                           size_t n, ferry_confirm_t *confirms)
{
    if (!self || !msgs || n == 0)
        return FERRY_EINVAL;
    if (n > FERRY_BATCH_MAX)
        return fy_client_fail(self, FERRY_ETOO_MANY, "at most %d messages per batch",
                              FERRY_BATCH_MAX);
    ferry_status_t st = FERRY_OK;
    for (size_t i = 0; i < n && st == FERRY_OK; i++)
        st = s_check_message(self, topic, &msgs[i]);
    if (st) {
        for (size_t i = 0; confirms && i < n; i++)
            confirms[i] = (ferry_confirm_t){.status = st};
        return st;
    }
    const void **datas = malloc(n * sizeof *datas);
    size_t *lens = malloc(n * sizeof *lens);
    if (!datas || !lens) {
        free(datas);
        free(lens);
        return fy_client_fail(self, FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        datas[i] = msgs[i].data ? msgs[i].data : "";
        lens[i] = msgs[i].len;
    }
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    fy_reply_t rep;
    st = fy_encode_publish_batch(self->enc, cid, topic, msgs, n);
    if (st == FERRY_OK)
        st = s_call(self, cid, (const void *const *)datas, lens, n, &rep);
    free(datas);
    free(lens);
    size_t got = 0;
    if (st == FERRY_OK && (fy_reply_confirm_count(&rep, &got) || got != n))
        st = fy_client_fail(self, FERRY_EPROTO, "malformed batch confirm");
    for (size_t i = 0; confirms && i < n; i++) {
        confirms[i] = (ferry_confirm_t){.status = st};
        if (st == FERRY_ECONFLICT)
            s_confirm_from(&rep, 0, &confirms[i]);
        if (st == FERRY_OK && fy_reply_confirm_at(&rep, i, &confirms[i].seq, &confirms[i].duplicate,
                                                  &confirms[i].key_version) != FERRY_OK)
            st = confirms[i].status = FERRY_EPROTO;
    }
    return st;
}

/* Encodes a checked publish and keeps its request in the window (so that a
 * new connection can carry it again), then sends it if connected. Without
 * room in the window (a responder's reply from inside a handler) it is sent
 * untracked if connected: its confirm is simply not matched to anything. */
static ferry_status_t
s_publish_send(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
               ferry_confirm_fn cb, void *user)
{
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    /* A small payload rides in the envelope: one frame per publish. */
    bool inl = msg->len <= FY_INLINE_MAX;
    ferry_status_t st = fy_encode_publish(self->enc, cid, topic, msg, inl);
    if (st)
        return st;
    const void *data = msg->data ? msg->data : "";
    if (self->count == self->opts.window)
        return s_send(self, &data, &msg->len, inl ? 0 : 1);
    size_t env = fy_encoder_len(self->enc), extra = inl ? 0 : msg->len;
    /* Each window slot keeps its buffer: no allocation per publish once warm. */
    s_pending_t *p = s_fifo_at(self, self->count);
    if (env + extra > p->req_cap) {
        uint8_t *req = realloc(p->req, env + extra);
        if (!req)
            return fy_client_fail(self, FERRY_ENOMEM, "out of memory");
        p->req = req;
        p->req_cap = env + extra;
    }
    memcpy(p->req, fy_encoder_data(self->enc), env);
    if (extra)
        memcpy(p->req + env, data, extra);
    self->count++;
    p->cid = cid;
    p->cb = cb;
    p->user = user;
    p->done = false;
    p->env_len = env;
    p->data_len = extra;
    p->frame = !inl;
    /* Not connected: it waits in the window and goes out after the hello. */
    if (self->connected && s_send_pending(self, p) != FERRY_OK)
        s_lose(self, "send failed");
    return FERRY_OK;
}

static ferry_status_t s_take_messages(ferry_client_t *self, const fy_reply_t *rep,
                                      const char *topic, const ferry_stored_message_t **msgs,
                                      size_t *count);

ferry_status_t
ferry_client_publish_async(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
                           ferry_confirm_fn cb, void *user)
{
    if (!self)
        return FERRY_EINVAL;
    ferry_status_t st = s_check_message(self, topic, msg);
    if (st)
        return st;
    if (self->count == self->opts.window) {
        if (!self->opts.block_on_full)
            return self->connected
                       ? fy_client_fail(self, FERRY_EWOULD_BLOCK, "publish window full")
                       : fy_client_fail(self, FERRY_EDISCONNECTED,
                                        "not connected and %zu publishes wait: buffer full",
                                        self->count);
        /* Window full: process confirms until a slot frees. */
        fy_reply_t unused;
        st = s_wait(self, S_WAIT_SLOT, 0, fy_mono_ms() + self->opts.timeout_ms, &unused);
        if (st == FERRY_ETIMEOUT || st == FERRY_EDISCONNECTED)
            return self->connected
                       ? fy_client_fail(self, FERRY_ETIMEOUT, "publish window stayed full")
                       : fy_client_fail(self, FERRY_EDISCONNECTED,
                                        "not connected and %zu publishes wait: buffer full",
                                        self->count);
        if (st)
            return st;
    }
    return s_publish_send(self, topic, msg, cb, user);
}

ferry_status_t
fy_client_publish_nowait(ferry_client_t *c, const char *topic, const ferry_message_t *m)
{
    ferry_status_t st = s_check_message(c, topic, m);
    return st ? st : s_publish_send(c, topic, m, NULL, NULL);
}

void
fy_client_delete_nowait(ferry_client_t *c, const char *name)
{
    fy_encoder_reset(c->enc);
    if (fy_encode_simple(c->enc, c->next_cid++, FY_OP_DELETE, name) == FERRY_OK)
        (void)s_send(c, NULL, NULL, 0);
}

ferry_status_t
fy_client_read_page(ferry_client_t *c, const char *topic, const char *key, uint64_t from,
                    uint32_t limit, const ferry_stored_message_t **msgs, size_t *n, uint64_t *next)
{
    uint64_t cid = c->next_cid++;
    fy_encoder_reset(c->enc);
    ferry_status_t st = fy_encode_read(c->enc, cid, topic, key, from, limit);
    fy_reply_t rep;
    if (st || (st = s_call(c, cid, NULL, NULL, 0, &rep)))
        return st;
    if (fy_reply_next(&rep, next))
        return fy_client_fail(c, FERRY_EPROTO, "malformed read reply");
    return s_take_messages(c, &rep, topic, msgs, n);
}

ferry_status_t
ferry_client_poll(ferry_client_t *self, int timeout_ms)
{
    if (!self || timeout_ms < 0)
        return FERRY_EINVAL;
    fy_reply_t unused;
    ferry_status_t st = s_wait(self, S_WAIT_ANY, 0, fy_mono_ms() + timeout_ms, &unused);
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
    ferry_status_t st = s_wait(self, S_WAIT_EMPTY, 0, fy_mono_ms() + timeout_ms, &unused);
    if (self->rpc)
        fy_rpc_expire(self);
    return st;
}

size_t
ferry_client_in_flight(const ferry_client_t *self)
{
    return self ? self->count : 0;
}

/* Copies the messages of a get or fetch reply (in self->rframes) into
 * self->got: one allocation for the entries, one for headers, one for the
 * strings (NUL-terminated copies); payloads point into the kept frames. */
static ferry_status_t
s_take_messages(ferry_client_t *self, const fy_reply_t *rep, const char *topic,
                const ferry_stored_message_t **msgs, size_t *count)
{
    size_t n;
    if (fy_reply_get_count(rep, &n))
        return fy_client_fail(self, FERRY_EPROTO, "malformed message reply");
    snprintf(self->got_topic, sizeof self->got_topic, "%s", topic ? topic : "");
    size_t nhdrs = 0, text = 0, frames = 1;
    for (size_t i = 0; i < n; i++) {
        fy_getmsg_t g;
        if (fy_reply_get_msg(rep, i, &g))
            return fy_client_fail(self, FERRY_EPROTO, "malformed message reply");
        frames += !g.has_data; /* an entry without inline data has the next frame */
        nhdrs += g.header_count;
        text += g.key.len + g.id.len + 2;
        for (size_t j = 0; j < g.header_count; j++) {
            fy_bytes_t hn, hv;
            if (fy_reply_get_header(rep, i, j, &hn, &hv))
                return fy_client_fail(self, FERRY_EPROTO, "malformed message reply");
            text += hn.len + hv.len + 2;
        }
    }
    free(self->got);
    free(self->got_hdrs);
    free(self->got_text);
    self->got = calloc(n ? n : 1, sizeof *self->got);
    self->got_hdrs = calloc(nhdrs ? nhdrs : 1, sizeof *self->got_hdrs);
    self->got_text = malloc(text ? text : 1);
    if (!self->got || !self->got_hdrs || !self->got_text)
        return fy_client_fail(self, FERRY_ENOMEM, "out of memory");
    if (frames != self->nrframes)
        return fy_client_fail(self, FERRY_EPROTO, "malformed message reply");
    size_t next_frame = 1;
    char *t = self->got_text;
    ferry_header_t *h = self->got_hdrs;
#define S_COPY(dst, b)               \
    do {                             \
        memcpy(t, (b).ptr, (b).len); \
        t[(b).len] = '\0';           \
        (dst) = t;                   \
        t += (b).len + 1;            \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        fy_getmsg_t g;
        fy_reply_get_msg(rep, i, &g);
        ferry_stored_message_t *m = &self->got[i];
        m->seq = g.seq;
        m->timestamp_ms = g.ts_ms;
        m->delivery_count = g.dc;
        m->key_version = g.kver;
        m->topic = self->got_topic;
        if (g.key.len)
            S_COPY(m->key, g.key);
        if (g.id.len)
            S_COPY(m->id, g.id);
        m->headers = h;
        m->header_count = g.header_count;
        for (size_t j = 0; j < g.header_count; j++, h++) {
            fy_bytes_t hn, hv;
            fy_reply_get_header(rep, i, j, &hn, &hv);
            S_COPY(h->name, hn);
            S_COPY(h->value, hv);
        }
        if (g.has_data) {
            m->data = g.data.ptr ? (const void *)g.data.ptr : "";
            m->len = g.data.len;
        } else {
            m->data = zmq_msg_data(&self->rframes[next_frame]);
            m->len = zmq_msg_size(&self->rframes[next_frame]);
            next_frame++;
        }
    }
#undef S_COPY
    *msgs = self->got;
    *count = n;
    return FERRY_OK;
}

ferry_status_t
ferry_client_get(ferry_client_t *self, const char *topic, uint64_t from_seq, uint32_t limit,
                 const ferry_stored_message_t **msgs, size_t *count)
{
    if (!self || !msgs || !count || limit == 0 || limit > FY_BATCH_MAX)
        return FERRY_EINVAL;
    *msgs = NULL;
    *count = 0;
    if (!s_name_ok(topic))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_get(self->enc, cid, topic, from_seq, limit);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    return s_take_messages(self, &rep, topic, msgs, count);
}

/* A subscription name: NULL or "" (a queue's), or a valid name. */
static bool
s_sub_ok(const char *sub)
{
    return !sub || !*sub || fy_name_valid(fy_bytes_str(sub));
}

/* Starts a request on (topic, sub): checks both names, resets the encoder
 * and hands out the request's cid. */
static ferry_status_t
s_sub_request(ferry_client_t *self, const char *topic, const char *sub, uint64_t *cid)
{
    if (!s_name_ok(topic) || !s_sub_ok(sub))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic or subscription name");
    *cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    return FERRY_OK;
}

ferry_status_t
ferry_client_sub_declare(ferry_client_t *self, const char *topic, const char *sub,
                         const ferry_sub_config_t *config, bool *created)
{
    if (!self)
        return FERRY_EINVAL;
    if (!s_name_ok(topic) || !s_sub_ok(sub))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic or subscription name");
    fy_sub_request_t sr = {0};
    if (config) {
        if (config->start && strcmp(config->start, "first") != 0 &&
            strcmp(config->start, "new") != 0)
            return fy_client_fail(self, FERRY_EINVAL, "start is \"first\" or \"new\"");
        sr.start = config->start_seq ? 2 : config->start && !strcmp(config->start, "new") ? 1 : 0;
        sr.start_seq = config->start_seq;
        sr.start_time_ms = config->start_time_ms;
        sr.filter = config->filter;
        sr.ack_wait_ms = config->ack_wait_ms;
        sr.max_deliver = config->max_deliver;
    }
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_sub_declare(self->enc, cid, topic, sub, &sr);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    ferry_sub_info_t info;
    bool c;
    if (fy_reply_sub(&rep, &info, &c))
        return fy_client_fail(self, FERRY_EPROTO, "malformed sub_declare reply");
    if (created)
        *created = c;
    return FERRY_OK;
}

ferry_status_t
ferry_client_fetch(ferry_client_t *self, const char *topic, const char *sub, uint32_t max,
                   int wait_ms, const ferry_stored_message_t **msgs, size_t *count)
{
    if (!self || !msgs || !count || max == 0 || max > FY_BATCH_MAX || wait_ms < 0 ||
        wait_ms > FY_FETCH_WAIT_MAX)
        return FERRY_EINVAL;
    *msgs = NULL;
    *count = 0;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_fetch(self->enc, cid, topic, sub, max, (uint64_t)wait_ms);
    fy_reply_t rep;
    if (st || (st = s_call_wait(self, cid, NULL, NULL, 0, wait_ms, &rep)))
        return st;
    return s_take_messages(self, &rep, topic, msgs, count);
}

ferry_status_t
ferry_client_ack(ferry_client_t *self, const char *topic, const char *sub, const uint64_t *seqs,
                 size_t n)
{
    if (!self || !seqs || n == 0 || n > FY_BATCH_MAX)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_ack(self->enc, cid, topic, sub, seqs, n, false);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_nack(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq,
                  uint64_t delay_ms)
{
    if (!self || seq == 0)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_nack(self->enc, cid, topic, sub, seq, delay_ms, false);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_term(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq,
                  const char *error)
{
    if (!self || seq == 0 || (error && strlen(error) > FY_ERROR_TEXT_MAX))
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_term(self->enc, cid, topic, sub, seq, error);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_progress(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq)
{
    if (!self || seq == 0)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_progress(self->enc, cid, topic, sub, seq);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_sub_info(ferry_client_t *self, const char *topic, const char *sub,
                      ferry_sub_info_t *info)
{
    if (!self || !info)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_sub_info(self->enc, cid, topic, sub);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    bool created;
    return fy_reply_sub(&rep, info, &created)
               ? fy_client_fail(self, FERRY_EPROTO, "malformed reply")
               : FERRY_OK;
}

/* ---- push subscriptions ------------------------------------------------- */

static s_pushsub_t *
s_pushsub(ferry_client_t *self, uint64_t consumer)
{
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs[i].consumer == consumer)
            return &self->subs[i];
    return NULL;
}

/* Sends the encoded request without waiting for a reply (acks, credit, pings
 * from inside the reply loop). A failure leaves the broker to redeliver. */
static void
s_send_nowait(ferry_client_t *self)
{
    (void)s_send(self, NULL, NULL, 0); /* on failure last_error says why */
}

static void
s_heartbeat(ferry_client_t *self)
{
    long long now = fy_mono_ms();
    if (now - self->last_send_ms < self->opts.heartbeat_ms)
        return;
    fy_encoder_reset(self->enc);
    if (fy_encode_simple(self->enc, self->next_cid++, FY_OP_PING, NULL) == FERRY_OK)
        s_send_nowait(self);
    if (!self->ping_out) {
        self->ping_out = true;
        self->ping_out_ms = now;
    }
}

/* Runs the handler on each pushed message, then acks (one request) and tops
 * up the credit once half the prefetch was processed. */
static void
s_dispatch(ferry_client_t *self, const fy_reply_t *rep)
{
    uint64_t consumer;
    s_pushsub_t *ps =
        fy_reply_consumer(rep, &consumer) == FERRY_OK ? s_pushsub(self, consumer) : NULL;
    const ferry_stored_message_t *msgs;
    size_t n;
    if (!ps || s_take_messages(self, rep, ps->topic, &msgs, &n) != FERRY_OK)
        return; /* unknown consumer: the messages come back after their ack wait */
    uint64_t acks[FY_BATCH_MAX];
    size_t nacks = 0;
    self->in_handler = true;
    for (size_t i = 0; i < n; i++) {
        ferry_msg_action_t act = ps->fn(self, &msgs[i], ps->user);
        if (ps->ephemeral)
            continue;
        if (act == FERRY_MSG_ACK) {
            acks[nacks++] = msgs[i].seq;
        } else if (act == FERRY_MSG_NACK) {
            fy_encoder_reset(self->enc);
            if (fy_encode_nack(self->enc, self->next_cid++, ps->topic, ps->sub, msgs[i].seq, 0,
                               true) == FERRY_OK)
                s_send_nowait(self);
        }
    }
    self->in_handler = false;
    if (nacks) {
        fy_encoder_reset(self->enc);
        if (fy_encode_ack(self->enc, self->next_cid++, ps->topic, ps->sub, acks, nacks, true) ==
            FERRY_OK)
            s_send_nowait(self);
    }
    ps->consumed += (uint32_t)n;
    if (ps->consumed >= (ps->prefetch + 1) / 2) {
        fy_encoder_reset(self->enc);
        if (fy_encode_consumer_op(self->enc, self->next_cid++, FY_OP_CREDIT, ps->consumer,
                                  ps->consumed) == FERRY_OK)
            s_send_nowait(self);
        ps->consumed = 0;
    }
}

ferry_status_t
ferry_client_subscribe(ferry_client_t *self, const char *topic, const char *sub, uint32_t prefetch,
                       ferry_msg_fn fn, void *user, uint64_t *consumer)
{
    if (!self || !fn || prefetch == 0 || prefetch > FY_CREDIT_MAX)
        return FERRY_EINVAL;
    if (!s_name_ok(topic) || !s_sub_ok(sub))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic or subscription name");
    if (self->nsubs == S_SUBS_MAX)
        return fy_client_fail(self, FERRY_ETOO_MANY, "at most %d subscriptions per client",
                              S_SUBS_MAX);
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_subscribe(self->enc, cid, topic, sub, prefetch,
                                            (uint32_t)self->opts.heartbeat_ms);
    fy_reply_t rep;
    if (st || (st = s_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    uint64_t id;
    if (fy_reply_consumer(&rep, &id))
        return fy_client_fail(self, FERRY_EPROTO, "malformed subscribe reply");
    s_pushsub_t *ps = &self->subs[self->nsubs++];
    memset(ps, 0, sizeof *ps);
    ps->consumer = id;
    ps->ephemeral = fy_reply_ephemeral(&rep);
    snprintf(ps->topic, sizeof ps->topic, "%s", topic);
    snprintf(ps->sub, sizeof ps->sub, "%s", sub ? sub : "");
    ps->prefetch = prefetch;
    ps->fn = fn;
    ps->user = user;
    if (consumer)
        *consumer = id;
    return FERRY_OK;
}

ferry_status_t
ferry_client_unsubscribe(ferry_client_t *self, uint64_t consumer)
{
    if (!self)
        return FERRY_EINVAL;
    s_pushsub_t *ps = s_pushsub(self, consumer);
    if (!ps)
        return fy_client_fail(self, FERRY_ENOTFOUND, "no such consumer on this client");
    *ps = self->subs[--self->nsubs]; /* deliveries still in the pipe are dropped */
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_consumer_op(self->enc, cid, FY_OP_UNSUBSCRIBE, consumer, 0);
    fy_reply_t rep;
    return st ? st : s_call(self, cid, NULL, NULL, 0, &rep);
}
