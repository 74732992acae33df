/* SPDX-License-Identifier: MIT */
/*
 * push.c - push subscriptions: subscribe with credit, run the handler on
 * each delivery, ack and top up the credit, and make the subscriptions again
 * on a new connection.
 */
#include <stdio.h>

#include "client_int.h"
#include "clock.h"

/* ---- push subscriptions ------------------------------------------------- */

static fy_cli_pushsub_t *
s_pushsub(ferry_client_t *self, uint64_t consumer)
{
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs[i].consumer == consumer)
            return &self->subs[i];
    return NULL;
}

/* Makes push subscription @p ps again. If the broker still has the old
 * consumer (it did not restart), it would keep handing it messages for a
 * peer that is gone, or it has expired it: release it first, which also
 * makes what it held due again at once. The answer (ok, or ENOTFOUND) matches
 * nothing; the new subscribe's answer carries the new consumer id. */
static void
s_resubscribe(ferry_client_t *self, fy_cli_pushsub_t *ps)
{
    fy_encoder_reset(self->enc);
    if (ps->consumer && fy_encode_consumer_op(self->enc, self->next_cid++, FY_OP_UNSUBSCRIBE,
                                              ps->consumer, 0) == FERRY_OK)
        (void)fy_cli_send(self, NULL, NULL, 0);
    ps->resub_cid = self->next_cid++;
    ps->resub_at = 0;
    ps->consumed = 0;
    ps->consumed_bytes = 0;
    fy_encoder_reset(self->enc);
    if (fy_encode_subscribe(self->enc, ps->resub_cid, ps->topic, ps->sub, ps->prefetch,
                            (uint32_t)self->opts.heartbeat_ms) == FERRY_OK)
        (void)fy_cli_send(self, NULL, NULL, 0);
}

void
fy_cli_resubscribe(ferry_client_t *self)
{
    for (size_t i = 0; i < self->nsubs; i++)
        s_resubscribe(self, &self->subs[i]);
}

void
fy_cli_resubscribe_due(ferry_client_t *self, long long now)
{
    for (size_t i = 0; i < self->nsubs; i++)
        if (self->subs[i].resub_at && now >= self->subs[i].resub_at)
            s_resubscribe(self, &self->subs[i]);
}

/* A refusal of a subscribe that no retry can cure: the subscription or its
 * topic is gone, or the request is wrong. Anything else (the broker
 * stopping, its disk full, ...) passes. */
static bool
s_resub_permanent(ferry_status_t st)
{
    return st == FERRY_ENOTFOUND || st == FERRY_EINVALID_NAME || st == FERRY_EINVAL ||
           st == FERRY_EFIELD || st == FERRY_EPROTO;
}

/* The answer to a subscribe sent after a reconnect: the consumer's new id.
 * A refusal that may pass (ESHUTDOWN from a broker that is stopping, a
 * full disk) is tried again after FY_CLI_RESUB_RETRY_MS, never given up:
 * a push subscription dropped for a transient refusal would leave its
 * messages waiting forever while the application hears nothing. */
bool
fy_cli_on_resubscribed(ferry_client_t *self, const fy_reply_t *r)
{
    for (size_t i = 0; i < self->nsubs; i++) {
        fy_cli_pushsub_t *ps = &self->subs[i];
        if (!ps->resub_cid || ps->resub_cid != r->cid)
            continue;
        ps->resub_cid = 0;
        uint64_t id;
        if (r->code == FERRY_OK && fy_reply_consumer(r, &id) == FERRY_OK) {
            ps->consumer = id;
        } else if (s_resub_permanent(r->code)) {
            fy_cli_log(self, FERRY_LOG_ERROR, "subscription %s/%s not restored: %s", ps->topic,
                       ps->sub, ferry_errname(r->code));
            fy_client_fail(self, r->code, "subscription %s/%s not restored", ps->topic, ps->sub);
            *ps = self->subs[--self->nsubs];
        } else {
            fy_cli_log(self, FERRY_LOG_WARN,
                       "subscription %s/%s not restored yet: %s; trying again in %d ms", ps->topic,
                       ps->sub, ferry_errname(r->code), FY_CLI_RESUB_RETRY_MS);
            ps->consumer = 0;
            ps->resub_at = fy_mono_ms() + FY_CLI_RESUB_RETRY_MS;
        }
        return true;
    }
    return false;
}

/* Gives @p m back (@p act NACK: at once; NACK_LATER: after a wait). */
static void
s_nack(ferry_client_t *self, const fy_cli_pushsub_t *ps, const ferry_stored_message_t *m,
       ferry_msg_action_t act)
{
    fy_encoder_reset(self->enc);
    uint64_t delay = 0;
    if (act == FERRY_MSG_NACK_LATER) { /* 1 s, 2 s, 4 s, ... up to 32 s */
        uint32_t dc = m->delivery_count ? m->delivery_count : 1;
        delay = (uint64_t)FERRY_NACK_LATER_MS << (dc - 1 < 5 ? dc - 1 : 5);
    }
    if (fy_encode_nack(self->enc, self->next_cid++, ps->topic, ps->sub, m->seq, delay, true) ==
        FERRY_OK)
        fy_cli_send_nowait(self);
}

/* Runs the handler on each pushed message, then the batch's end (when the
 * consumer has one), then acks (one request) and tops up the credit once
 * half the prefetch was processed. */
void
fy_cli_dispatch(ferry_client_t *self, const fy_reply_t *rep)
{
    uint64_t consumer;
    fy_cli_pushsub_t *ps =
        fy_reply_consumer(rep, &consumer) == FERRY_OK ? s_pushsub(self, consumer) : NULL;
    const ferry_stored_message_t *msgs;
    size_t n;
    if (!ps || fy_cli_take_messages(self, rep, ps->topic, &msgs, &n) != FERRY_OK)
        return; /* unknown consumer: the messages come back after their ack wait */
    uint64_t acks[FY_BATCH_MAX];
    size_t acked[FY_BATCH_MAX], nacks = 0;
    self->in_handler = true;
    for (size_t i = 0; i < n; i++) {
        ferry_msg_action_t act = ps->fn(self, &msgs[i], ps->user);
        if (ps->ephemeral)
            continue;
        if (act == FERRY_MSG_ACK) {
            acked[nacks] = i;
            acks[nacks++] = msgs[i].seq;
        } else if (act == FERRY_MSG_NACK || act == FERRY_MSG_NACK_LATER) {
            s_nack(self, ps, &msgs[i], act);
        }
    }
    /* The batch's end: the consumer commits, or gives back what it took. */
    ferry_msg_action_t end = ps->end ? ps->end(self, ps->user) : FERRY_MSG_ACK;
    if (end == FERRY_MSG_NACK || end == FERRY_MSG_NACK_LATER) {
        for (size_t i = 0; i < nacks && !ps->ephemeral; i++)
            s_nack(self, ps, &msgs[acked[i]], end);
        nacks = 0;
    }
    self->in_handler = false;
    if (nacks) {
        fy_encoder_reset(self->enc);
        if (fy_encode_ack(self->enc, self->next_cid++, ps->topic, ps->sub, acks, nacks, true) ==
            FERRY_OK)
            fy_cli_send_nowait(self);
    }
    ps->consumed += (uint32_t)n;
    for (size_t i = 0; i < n; i++) /* as the broker counts them (fy_stored_cost) */
        ps->consumed_bytes += 64 + msgs[i].len + (msgs[i].key ? strlen(msgs[i].key) : 0) +
                              (msgs[i].id ? strlen(msgs[i].id) : 0);
    /* Credit back after half the prefetch, or half of what the broker lets a
     * consumer hold in bytes (FY_CONSUMER_BYTES_MAX): with large messages and
     * a large prefetch the bytes run out first, and the broker would wait. */
    if (ps->consumed >= (ps->prefetch + 1) / 2 || ps->consumed_bytes >= FY_CONSUMER_BYTES_MAX / 2) {
        fy_encoder_reset(self->enc);
        if (fy_encode_consumer_op(self->enc, self->next_cid++, FY_OP_CREDIT, ps->consumer,
                                  ps->consumed) == FERRY_OK)
            fy_cli_send_nowait(self);
        ps->consumed = 0;
        ps->consumed_bytes = 0;
    }
}

ferry_status_t
ferry_client_subscribe(ferry_client_t *self, const char *topic, const char *sub, uint32_t prefetch,
                       ferry_msg_fn fn, void *user, uint64_t *consumer)
{
    return ferry_client_subscribe_batched(self, topic, sub, prefetch, fn, NULL, user, consumer);
}

ferry_status_t
ferry_client_subscribe_batched(ferry_client_t *self, const char *topic, const char *sub,
                               uint32_t prefetch, ferry_msg_fn fn, ferry_batch_end_fn end,
                               void *user, uint64_t *consumer)
{
    if (!self || !fn || prefetch == 0 || prefetch > FY_CREDIT_MAX)
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(topic) || !fy_cli_sub_ok(sub))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic or subscription name");
    if (self->nsubs == FY_CLI_SUBS_MAX)
        return fy_client_fail(self, FERRY_ETOO_MANY, "at most %d subscriptions per client",
                              FY_CLI_SUBS_MAX);
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_subscribe(self->enc, cid, topic, sub, prefetch,
                                            (uint32_t)self->opts.heartbeat_ms);
    fy_reply_t rep;
    if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    uint64_t id;
    if (fy_reply_consumer(&rep, &id))
        return fy_client_fail(self, FERRY_EPROTO, "malformed subscribe reply");
    fy_cli_pushsub_t *ps = &self->subs[self->nsubs++];
    memset(ps, 0, sizeof *ps);
    ps->consumer = id;
    /* The application's id: the broker's first one (unique among this
     * client's subscriptions), kept when the broker's changes. */
    ps->handle = id;
    for (size_t i = 0; i + 1 < self->nsubs; i++)
        if (self->subs[i].handle == ps->handle) {
            ps->handle++;
            i = (size_t)-1; /* look again from the first */
        }
    ps->ephemeral = fy_reply_ephemeral(&rep);
    snprintf(ps->topic, sizeof ps->topic, "%s", topic);
    snprintf(ps->sub, sizeof ps->sub, "%s", sub ? sub : "");
    ps->prefetch = prefetch;
    ps->fn = fn;
    ps->end = end;
    ps->user = user;
    if (consumer)
        *consumer = ps->handle;
    return FERRY_OK;
}

ferry_status_t
ferry_client_unsubscribe(ferry_client_t *self, uint64_t consumer)
{
    if (!self)
        return FERRY_EINVAL;
    /* The application's handle, which outlives resubscribes (the broker's
     * id of a subscription changes when the client makes it again). */
    fy_cli_pushsub_t *ps = NULL;
    for (size_t i = 0; i < self->nsubs && !ps; i++)
        if (self->subs[i].handle == consumer)
            ps = &self->subs[i];
    if (!ps)
        return fy_client_fail(self, FERRY_ENOTFOUND, "no such consumer on this client");
    uint64_t id = ps->consumer;
    *ps = self->subs[--self->nsubs]; /* deliveries still in the pipe are dropped */
    if (id == 0) /* not restored since the connection came back: nothing to release */
        return FERRY_OK;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_consumer_op(self->enc, cid, FY_OP_UNSUBSCRIBE, id, 0);
    fy_reply_t rep;
    if (st == FERRY_OK)
        st = fy_cli_call(self, cid, NULL, NULL, 0, &rep);
    return st == FERRY_ENOTFOUND ? FERRY_OK : st; /* the broker dropped it already */
}
