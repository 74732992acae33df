/* SPDX-License-Identifier: MIT */
/*
 * rpc.c - request/reply over Ferry topics: one inbox topic per client with a
 * live subscription, requests matched to replies by correlation id, and
 * responders that publish their reply before acking the request.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "client_int.h"
#include "clock.h"
#include "grow.h"
#include "envelope.h"

#define S_INBOX_AGE_MS 60000 /* replies nobody collected are removed after this */
#define S_INBOX_CREDIT 4096  /* replies in flight to the inbox's live consumer */
#define S_SERVERS_MAX  64

typedef struct s_req {
    uint64_t corr;
    long long deadline_ms;
    ferry_reply_fn cb;
    void *user;
} s_req_t;

/* A reply held until its batch commits (ferry_client_serve_batched): the
 * message and its reply_to, all in one malloc'ed block. */
typedef struct {
    const char *to;
    ferry_message_t m;
} s_held_t;

typedef struct s_server {
    ferry_serve_fn fn;
    void *user;
    ferry_batch_end_fn end; /* NULL: replies go at once */
    s_held_t **held;        /* the current batch's replies */
    size_t nheld, cap_held;
} s_server_t;

struct fy_rpc {
    char inbox[32]; /* "_inbox.<16 hex digits>"; empty until the first request */
    uint64_t next_corr;
    s_req_t *reqs; /* outstanding requests, in no particular order */
    size_t nreqs, cap;
    s_server_t *servers[S_SERVERS_MAX];
    size_t nservers;
    /* The blocking ferry_client_request's result. */
    bool done;
    ferry_status_t status;
    ferry_stored_message_t *reply; /* fy_msgs_clone block */
};

static struct fy_rpc *
s_rpc(ferry_client_t *c)
{
    struct fy_rpc **p = fy_client_rpc(c);
    if (!*p)
        *p = calloc(1, sizeof **p);
    return *p;
}

/* Takes request `corr` out of the table; false if it is not there (answered
 * or timed out already: a late or duplicate reply). */
static bool
s_take(struct fy_rpc *rpc, uint64_t corr, s_req_t *out)
{
    for (size_t i = 0; i < rpc->nreqs; i++) {
        if (rpc->reqs[i].corr == corr) {
            *out = rpc->reqs[i];
            rpc->reqs[i] = rpc->reqs[--rpc->nreqs];
            return true;
        }
    }
    return false;
}

/* The inbox's handler: a reply, matched by correlation id. */
static ferry_msg_action_t
s_inbox_msg(ferry_client_t *c, const ferry_stored_message_t *msg, void *user)
{
    struct fy_rpc *rpc = user;
    const char *corr = ferry_msg_header(msg, FY_HDR_CORRELATION_ID);
    char *end;
    s_req_t r;
    if (corr && *corr) {
        unsigned long long id = strtoull(corr, &end, 10);
        if (*end == '\0' && s_take(rpc, id, &r) && r.cb)
            r.cb(c, FERRY_OK, msg, r.user);
    }
    return FERRY_MSG_ACK;
}

/* The request's publish was refused: that is its answer. */
static void
s_request_confirmed(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    struct fy_rpc *rpc = *fy_client_rpc(c);
    s_req_t r;
    if (cf->status != FERRY_OK && rpc && s_take(rpc, (uint64_t)(uintptr_t)user, &r) && r.cb)
        r.cb(c, cf->status, NULL, r.user);
}

/* Creates the inbox topic and its live subscription on first use. */
static ferry_status_t
s_inbox(ferry_client_t *c, struct fy_rpc *rpc)
{
    if (rpc->inbox[0])
        return FERRY_OK;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint64_t)fy_mono_ms() * 2654435761u ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)rpc;
    char name[32];
    snprintf(name, sizeof name, "_inbox.%016llx", (unsigned long long)r);
    ferry_topic_config_t cfg = {.max_age_ms = S_INBOX_AGE_MS};
    ferry_status_t st = ferry_client_declare(c, FERRY_KIND_TOPIC, name, &cfg, NULL, NULL);
    if (st == FERRY_OK)
        st = ferry_client_subscribe(c, name, NULL, S_INBOX_CREDIT, s_inbox_msg, rpc, NULL);
    if (st == FERRY_OK)
        memcpy(rpc->inbox, name, sizeof name);
    return st;
}

ferry_status_t
ferry_client_request_async(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
                           int timeout_ms, ferry_reply_fn cb, void *user)
{
    if (!self || !msg || !cb || timeout_ms <= 0 || (msg->header_count && !msg->headers) ||
        msg->header_count >= FY_HEADERS_MAX - 1)
        return FERRY_EINVAL;
    if (fy_client_in_handler(self))
        return fy_client_fail(self, FERRY_EINVAL, "a handler must not call its client");
    struct fy_rpc *rpc = s_rpc(self);
    if (!rpc)
        return FERRY_ENOMEM;
    ferry_status_t st = s_inbox(self, rpc);
    if (st)
        return st;
    if (!fy_grow(&rpc->reqs, &rpc->cap, rpc->nreqs + 1, sizeof *rpc->reqs, 64))
        return FERRY_ENOMEM;
    /* The caller's headers, less any reply_to/correlation_id, plus ours. */
    ferry_header_t hdrs[FY_HEADERS_MAX];
    size_t nh = 0;
    for (size_t i = 0; i < msg->header_count; i++) {
        const char *name = msg->headers[i].name;
        if (name && strcmp(name, FY_HDR_REPLY_TO) != 0 && strcmp(name, FY_HDR_CORRELATION_ID) != 0)
            hdrs[nh++] = msg->headers[i];
    }
    uint64_t corr = ++rpc->next_corr;
    char corr_text[24];
    snprintf(corr_text, sizeof corr_text, "%llu", (unsigned long long)corr);
    hdrs[nh++] = (ferry_header_t){FY_HDR_REPLY_TO, rpc->inbox};
    hdrs[nh++] = (ferry_header_t){FY_HDR_CORRELATION_ID, corr_text};
    ferry_message_t req = *msg;
    req.headers = hdrs;
    req.header_count = nh;
    rpc->reqs[rpc->nreqs++] =
        (s_req_t){.corr = corr, .deadline_ms = fy_mono_ms() + timeout_ms, .cb = cb, .user = user};
    st =
        ferry_client_publish_async(self, topic, &req, s_request_confirmed, (void *)(uintptr_t)corr);
    if (st) {
        s_req_t gone;
        s_take(rpc, corr, &gone);
    }
    return st;
}

static void
s_block_done(ferry_client_t *c, ferry_status_t status, const ferry_stored_message_t *reply,
             void *user)
{
    (void)c;
    struct fy_rpc *rpc = user;
    free(rpc->reply);
    rpc->reply = reply ? fy_msgs_clone(reply, 1) : NULL;
    rpc->status = reply && !rpc->reply ? FERRY_ENOMEM : status;
    rpc->done = true;
}

ferry_status_t
ferry_client_request(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
                     int timeout_ms, const ferry_stored_message_t **reply)
{
    if (!self || !reply)
        return FERRY_EINVAL;
    *reply = NULL;
    struct fy_rpc *rpc = s_rpc(self);
    if (!rpc)
        return FERRY_ENOMEM;
    rpc->done = false;
    uint64_t corr = rpc->next_corr + 1;
    ferry_status_t st = ferry_client_request_async(self, topic, msg, timeout_ms, s_block_done, rpc);
    if (st)
        return st;
    long long deadline = fy_mono_ms() + timeout_ms;
    while (!rpc->done) {
        long long left = deadline - fy_mono_ms();
        st = ferry_client_poll(self, left > 0 ? (int)left : 0);
        if (st && !rpc->done) {
            s_req_t gone;
            s_take(rpc, corr, &gone); /* the connection failed: nobody answers it now */
            return st;
        }
    }
    if (rpc->status == FERRY_OK) {
        *reply = rpc->reply;
        return FERRY_OK;
    }
    return rpc->status == FERRY_ENOREPLY
               ? fy_client_fail(self, FERRY_ENOREPLY, "no reply within %d ms", timeout_ms)
               : rpc->status;
}

void
fy_rpc_expire(ferry_client_t *c)
{
    struct fy_rpc *rpc = *fy_client_rpc(c);
    if (!rpc || rpc->nreqs == 0)
        return;
    long long now = fy_mono_ms();
    for (size_t i = 0; i < rpc->nreqs;) {
        if (rpc->reqs[i].deadline_ms > now) {
            i++;
            continue;
        }
        s_req_t r = rpc->reqs[i];
        rpc->reqs[i] = rpc->reqs[--rpc->nreqs];
        if (r.cb)
            r.cb(c, FERRY_ENOREPLY, NULL, r.user);
    }
}

/* A copy of reply @p m to @p to, in one block (free() it), or NULL. */
static s_held_t *
s_hold(const char *to, const ferry_message_t *m)
{
    size_t need = sizeof(s_held_t) + m->header_count * sizeof(ferry_header_t) + strlen(to) + 1 +
                  m->len + (m->key ? strlen(m->key) + 1 : 0) + (m->id ? strlen(m->id) + 1 : 0);
    for (size_t i = 0; i < m->header_count; i++)
        need += strlen(m->headers[i].name) + strlen(m->headers[i].value) + 2;
    s_held_t *h = malloc(need);
    if (!h)
        return NULL;
    ferry_header_t *hdrs = (ferry_header_t *)(h + 1);
    char *at = (char *)(hdrs + m->header_count);
#define S_COPY(dst, src, n) (memcpy(at, (src), (n)), (dst) = at, at += (n))
    h->m = *m;
    S_COPY(h->to, to, strlen(to) + 1);
    if (m->len)
        S_COPY(h->m.data, m->data, m->len);
    if (m->key)
        S_COPY(h->m.key, m->key, strlen(m->key) + 1);
    if (m->id)
        S_COPY(h->m.id, m->id, strlen(m->id) + 1);
    for (size_t i = 0; i < m->header_count; i++) {
        S_COPY(hdrs[i].name, m->headers[i].name, strlen(m->headers[i].name) + 1);
        S_COPY(hdrs[i].value, m->headers[i].value, strlen(m->headers[i].value) + 1);
    }
#undef S_COPY
    h->m.headers = hdrs;
    return h;
}

/* A batched responder's end: the application commits; then its replies go
 * (before the acks), or, when it did not commit, are dropped. */
static ferry_msg_action_t
s_serve_end(ferry_client_t *c, void *user)
{
    s_server_t *srv = user;
    ferry_msg_action_t act = srv->end(c, srv->user);
    for (size_t i = 0; i < srv->nheld; i++) {
        /* A reply that cannot go: the batch comes back and is answered again. */
        if (act == FERRY_MSG_ACK &&
            fy_client_publish_nowait(c, srv->held[i]->to, &srv->held[i]->m) != FERRY_OK)
            act = FERRY_MSG_NACK_LATER;
        free(srv->held[i]);
    }
    srv->nheld = 0;
    return act;
}

/* A responder's handler: the application's reply goes to the request's
 * reply_to, sent before the ack that the dispatch sends after the batch, so
 * the broker stores the reply no later than it records the ack; a batched
 * responder's reply is held until its batch's end. */
static ferry_msg_action_t
s_serve_msg(ferry_client_t *c, const ferry_stored_message_t *msg, void *user)
{
    s_server_t *srv = user;
    ferry_message_t reply = {0};
    ferry_msg_action_t act = srv->fn(c, msg, &reply, srv->user);
    const char *to = ferry_msg_header(msg, FY_HDR_REPLY_TO),
               *corr = ferry_msg_header(msg, FY_HDR_CORRELATION_ID);
    if (act != FERRY_MSG_ACK || !to)
        return act;
    ferry_header_t hdrs[FY_HEADERS_MAX];
    size_t nh = 0;
    for (size_t i = 0; i < reply.header_count && reply.headers && nh + 1 < FY_HEADERS_MAX; i++)
        if (reply.headers[i].name && strcmp(reply.headers[i].name, FY_HDR_CORRELATION_ID) != 0)
            hdrs[nh++] = reply.headers[i];
    if (corr)
        hdrs[nh++] = (ferry_header_t){FY_HDR_CORRELATION_ID, corr};
    reply.headers = hdrs;
    reply.header_count = nh;
    if (srv->end) {
        s_held_t *h = fy_grow(&srv->held, &srv->cap_held, srv->nheld + 1, sizeof *srv->held, 64)
                          ? s_hold(to, &reply)
                          : NULL;
        if (!h) /* the batch's end still runs: this request alone comes back */
            return FERRY_MSG_NACK_LATER;
        srv->held[srv->nheld++] = h;
        return FERRY_MSG_ACK;
    }
    /* A reply that cannot be sent: the request comes back, and after
     * max_deliver goes to the dead-letter topic. */
    return fy_client_publish_nowait(c, to, &reply) == FERRY_OK ? FERRY_MSG_ACK : FERRY_MSG_NACK;
}

ferry_status_t
ferry_client_serve(ferry_client_t *self, const char *topic, const char *sub, uint32_t prefetch,
                   ferry_serve_fn fn, void *user, uint64_t *consumer)
{
    return ferry_client_serve_batched(self, topic, sub, prefetch, fn, NULL, user, consumer);
}

ferry_status_t
ferry_client_serve_batched(ferry_client_t *self, const char *topic, const char *sub,
                           uint32_t prefetch, ferry_serve_fn fn, ferry_batch_end_fn end, void *user,
                           uint64_t *consumer)
{
    if (!self || !fn)
        return FERRY_EINVAL;
    struct fy_rpc *rpc = s_rpc(self);
    if (!rpc)
        return FERRY_ENOMEM;
    if (rpc->nservers == S_SERVERS_MAX)
        return fy_client_fail(self, FERRY_ETOO_MANY, "at most %d responders per client",
                              S_SERVERS_MAX);
    s_server_t *srv = malloc(sizeof *srv);
    if (!srv)
        return FERRY_ENOMEM;
    *srv = (s_server_t){.fn = fn, .user = user, .end = end};
    ferry_status_t st = ferry_client_subscribe_batched(self, topic, sub, prefetch, s_serve_msg,
                                                       end ? s_serve_end : NULL, srv, consumer);
    if (st) {
        free(srv);
        return st;
    }
    rpc->servers[rpc->nservers++] = srv;
    return FERRY_OK;
}

void
fy_rpc_destroy(ferry_client_t *c)
{
    struct fy_rpc **p = fy_client_rpc(c), *rpc = *p;
    if (!rpc)
        return;
    while (rpc->nreqs > 0) {
        s_req_t r = rpc->reqs[--rpc->nreqs];
        if (r.cb)
            r.cb(c, FERRY_ECLOSED, NULL, r.user);
    }
    if (rpc->inbox[0])
        fy_client_delete_nowait(c, rpc->inbox);
    for (size_t i = 0; i < rpc->nservers; i++) {
        free(rpc->servers[i]->held);
        free(rpc->servers[i]);
    }
    free(rpc->reqs);
    free(rpc->reply);
    free(rpc);
    *p = NULL;
}
