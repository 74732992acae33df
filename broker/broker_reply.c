/* SPDX-License-Identifier: MIT */
/*
 * broker_reply.c - the replies of a batch: begun while a request is handled,
 * sent only after the commit, grouped by peer (one send per peer), error
 * replies with their log lines, and single publish confirms merged into
 * cumulative ones.
 */
#include <stdlib.h>

#include "broker_int.h"

fy_status_t
fy_brk_reply_begin(fy_broker_t *self, size_t req_index, fy_brk_reply_t **out)
{
    fy_brk_reply_t *r = &self->replies[self->nreplies++];
    memset(r, 0, sizeof *r);
    r->req = req_index;
    r->off = fy_encoder_len(self->enc);
    r->out_first = self->nouts;
    *out = r;
    return FERRY_OK;
}

void
fy_brk_reply_end(fy_broker_t *self, fy_brk_reply_t *r)
{
    r->len = fy_encoder_len(self->enc) - r->off;
    r->out_count = self->nouts - r->out_first;
}

/* Ends reply @p r, the last one begun, if encoding it went well (@p st);
 * otherwise takes it back so that no half-encoded reply is sent. */
fy_status_t
fy_brk_reply_finish(fy_broker_t *self, fy_brk_reply_t *r, fy_status_t st)
{
    if (st == FERRY_OK)
        fy_brk_reply_end(self, r);
    else
        self->nreplies--;
    return st;
}

static void
s_peer_hex(const void *peer, size_t n, char *out, size_t cap)
{
    const uint8_t *p = peer;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", p[i]);
    out[o] = '\0';
}

/* A refused publish of an ordered pipeline fences the peer's later ones. */
static void
s_fence(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    if (!req->fence || ri >= self->nreqs ||
        (req->op != FY_OP_PUBLISH && req->op != FY_OP_PUBLISH_BATCH))
        return;
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    fy_fence_refused(&self->fences, zmq_msg_data(ident), zmq_msg_size(ident), req->fence);
}

void
fy_brk_error(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code,
             const char *msg)
{
    s_fence(self, ri, req);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    /* If even the error does not fit in memory, the reply is left out and the
     * client times out; the broker goes on. */
    fy_encode_error(self->enc, req->cid, code, msg);
    r->code = code;
    fy_brk_reply_end(self, r);
}

/* Replies with an error for bad input, logged as a warning with the peer:
 * at most once per peer per 10 s, with how many were held back between. */
void
fy_brk_refuse(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code,
              const char *msg)
{
    zmq_msg_t *ident = &self->frames[self->reqs[ri].first];
    uint64_t held;
    if (fy_status_bad_input(code) && fy_log_enabled(self->log, FY_LOG_WARN) &&
        fy_ratelog_allow(&self->bad_log, zmq_msg_data(ident), zmq_msg_size(ident), fy_mono_ms(),
                         &held)) {
        char peer[64];
        s_peer_hex(zmq_msg_data(ident), zmq_msg_size(ident), peer, sizeof peer);
        fy_log(self->log, FY_LOG_WARN, "broker", "bad request",
               "code=%s op=%s cid=%llu peer=%s client=\"%s\" held_back=%llu detail=\"%s\"",
               fy_status_name(code), fy_op_name(req->op), (unsigned long long)req->cid, peer,
               fy_peernames_get(&self->peernames, zmq_msg_data(ident), zmq_msg_size(ident)),
               (unsigned long long)held, msg ? msg : fy_status_text(code));
    }
    fy_brk_error(self, ri, req, code, msg);
}

/* An expectation failed: ECONFLICT with what the writer should know now. Not
 * bad input (logged at debug only): it is how optimistic concurrency works. */
void
fy_brk_conflict(fy_broker_t *self, size_t ri, const fy_request_t *req, const fy_conflict_t *cf)
{
    s_fence(self, ri, req);
    char msg[160];
    if (cf->on_key)
        snprintf(msg, sizeof msg, "message %zu expected key version %llu; the key is at %llu",
                 cf->index, (unsigned long long)cf->expected, (unsigned long long)cf->kver);
    else
        snprintf(msg, sizeof msg, "message %zu expected last sequence %llu; the topic is at %llu",
                 cf->index, (unsigned long long)cf->expected, (unsigned long long)cf->last);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    r->code = FERRY_ECONFLICT;
    r->topic = req->name;
    if (fy_brk_reply_finish(self, r,
                            fy_encode_conflict(self->enc, req->cid, msg, cf->last, cf->kver)))
        fy_brk_error(self, ri, req, FERRY_ECONFLICT, msg);
    fy_log(self->log, FY_LOG_DEBUG, "broker", "conflict", "cid=%llu detail=\"%s\"",
           (unsigned long long)req->cid, msg);
}

static int
s_order_cmp(const void *a, const void *b)
{
    const fy_brk_order_t *x = a, *y = b;
    if (x->peer_len != y->peer_len)
        return x->peer_len < y->peer_len ? -1 : 1;
    int c = memcmp(x->peer, y->peer, x->peer_len);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Holds a reply for a peer that does not read (peerq.h): the envelope is
 * copied (the encoder is reused), the payload frames are moved. */
static int
s_hold(fy_broker_t *self, const fy_brk_order_t *o, const uint8_t *env, size_t len,
       const fy_brk_reply_t *r)
{
    size_t outs = r ? r->out_count : 0;
    zmq_msg_t *frames = malloc((1 + outs) * sizeof *frames);
    if (!frames)
        return -1;
    if (zmq_msg_init_size(&frames[0], len) != 0) {
        free(frames);
        return -1;
    }
    memcpy(zmq_msg_data(&frames[0]), env, len);
    for (size_t j = 0; j < outs; j++) {
        zmq_msg_init(&frames[1 + j]);
        zmq_msg_move(&frames[1 + j], &self->outs[r->out_first + j]);
    }
    int rc = fy_peerq_hold(self->peerq, o->peer, o->peer_len, frames, 1 + outs);
    for (size_t j = 0; j < 1 + outs; j++)
        zmq_msg_close(&frames[j]); /* empty when held */
    free(frames);
    if (rc == 0)
        self->replies_held++;
    return rc;
}

static void
s_dropped(fy_broker_t *self, const uint8_t *peer, size_t peer_len, int e, uint64_t n)
{
    uint64_t held;
    self->replies_dropped += n;
    if (fy_ratelog_allow(&self->drop_log, peer, peer_len, fy_mono_ms(), &held)) {
        char hex[64];
        s_peer_hex(peer, peer_len, hex, sizeof hex);
        fy_log(self->log, e == EHOSTUNREACH ? FY_LOG_DEBUG : FY_LOG_WARN, "broker", "reply dropped",
               "peer=%s client=\"%s\" replies=%llu held_back=%llu reason=\"%s\"", hex,
               fy_peernames_get(&self->peernames, peer, peer_len), (unsigned long long)n,
               (unsigned long long)held,
               e == EHOSTUNREACH ? "the peer is gone"
               : e == ENOMEM     ? "out of memory"
                                 : zmq_strerror(e));
    }
}

/* A peer that went away with replies held for it. */
void
fy_brk_peer_gone(void *user, const void *peer, size_t peer_len, size_t replies)
{
    s_dropped(user, peer, peer_len, EHOSTUNREACH, replies);
}

static int
s_send_one(fy_broker_t *self, const fy_brk_order_t *o, size_t off, size_t len,
           const fy_brk_reply_t *r)
{
    const uint8_t *env = fy_encoder_data(self->enc) + off;
    /* Behind replies already held for this peer: in order, never ahead. */
    if (fy_peerq_holding(self->peerq, o->peer, o->peer_len)) {
        if (s_hold(self, o, env, len, r) == 0)
            return 0;
        s_dropped(self, o->peer, o->peer_len, ENOMEM, 1);
        return -1;
    }
    size_t outs = r ? r->out_count : 0;
    int rc = zmq_send(self->sock, o->peer, o->peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc < 0 && errno == EAGAIN) {
        /* The peer's pipe is full (it does not read): held, not dropped. */
        if (s_hold(self, o, env, len, r) == 0)
            return 0;
        errno = ENOMEM;
    }
    if (rc >= 0)
        rc = zmq_send(self->sock, env, len, ZMQ_DONTWAIT | (outs ? ZMQ_SNDMORE : 0));
    for (size_t j = 0; rc >= 0 && j < outs; j++)
        rc = zmq_msg_send(&self->outs[r->out_first + j], self->sock,
                          ZMQ_DONTWAIT | (j + 1 < outs ? ZMQ_SNDMORE : 0));
    if (rc < 0) /* a peer gone (EHOSTUNREACH): counted, logged once per 10 s */
        s_dropped(self, o->peer, o->peer_len, errno, 1);
    return rc;
}

/* Sends every reply of the batch, grouped by peer and in request order within
 * a peer. Confirms of single publishes with consecutive cids from one peer go
 * out as one cumulative confirm: one send and one decode instead of hundreds.
 * Never blocks: replies to a peer that stopped reading are held in order
 * (peerq.h); a peer that went away loses its replies (counted, logged). */
void
fy_brk_send_replies(fy_broker_t *self)
{
    size_t n = self->nreplies;
    for (size_t i = 0; i < n; i++) {
        fy_brk_reply_t *r = &self->replies[i];
        if (r->peer) {
            self->order[i] = (fy_brk_order_t){r->peer, r->peer_len, i};
        } else {
            zmq_msg_t *ident = &self->frames[self->reqs[r->req].first];
            self->order[i] = (fy_brk_order_t){zmq_msg_data(ident), zmq_msg_size(ident), i};
        }
        self->stats.requests++;
        if (r->code)
            self->stats.errors++;
        self->stats.publishes += r->stored;
        self->stats.duplicates += r->dups;
        if (r->topic.len)
            fy_topicstats_add(&self->topicstats, r->topic, r->stored, r->dups,
                              r->code == FERRY_ECONFLICT);
    }
    qsort(self->order, n, sizeof *self->order, s_order_cmp);
    for (size_t i = 0; i < n;) {
        const fy_brk_order_t *o = &self->order[i];
        fy_brk_reply_t *r = &self->replies[o->index];
        if (!r->confirm) {
            s_send_one(self, o, r->off, r->len, r);
            i++;
            continue;
        }
        /* The longest run of confirms with consecutive cids to this peer. */
        size_t run = 0;
        uint64_t first_cid = r->cid;
        while (i + run < n && run < FY_BATCH_MAX) {
            const fy_brk_order_t *p = &self->order[i + run];
            const fy_brk_reply_t *q = &self->replies[p->index];
            if (!q->confirm || q->cid != first_cid + run || p->peer_len != o->peer_len ||
                memcmp(p->peer, o->peer, o->peer_len) != 0)
                break;
            self->seqs[run] = q->seq;
            self->dups[run] = q->dups > 0;
            self->kvers[run] = q->kver;
            run++;
        }
        size_t off = fy_encoder_len(self->enc);
        fy_status_t st = run == 1
                             ? fy_encode_confirm(self->enc, first_cid, r->seq, r->dups > 0, r->kver)
                             : fy_encode_confirm_run(self->enc, first_cid, self->seqs, self->dups,
                                                     self->kvers, run);
        if (st == FERRY_OK)
            s_send_one(self, o, off, fy_encoder_len(self->enc) - off, NULL);
        else
            fy_log(self->log, FY_LOG_WARN, "broker", "reply dropped", "reason=\"out of memory\"");
        i += run;
    }
}

void
fy_brk_reset_replies(fy_broker_t *self)
{
    self->full_logged = false;
    self->nnew_waiters = 0;
    for (size_t i = 0; i < self->nwaiters; i++)
        self->waiters[i].served = false;
    fy_consumers_rollback(&self->cons);
    fy_encoder_reset(self->enc);
    for (size_t i = 0; i < self->nouts; i++)
        zmq_msg_close(&self->outs[i]);
    self->nouts = 0;
    self->nreplies = 0;
}

/* Every request of the drained batch refused (broker_int.h). */
void
fy_brk_refuse_batch(fy_broker_t *self, fy_status_t code, const char *msg)
{
    fy_brk_reset_replies(self);
    for (size_t i = 0; i < self->nreqs; i++) {
        fy_request_t none = {0};
        const fy_brk_req_t *rq = &self->reqs[i];
        if (rq->nframes >= 2 && !rq->overflow) {
            zmq_msg_t *env = &self->frames[rq->first + 1];
            fy_err_t err;
            fy_request_decode(self->dec, zmq_msg_data(env), zmq_msg_size(env), rq->nframes - 2,
                              &none, &err);
        }
        fy_brk_error(self, i, &none, code, msg);
    }
    fy_brk_send_replies(self);
}
