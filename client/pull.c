/* SPDX-License-Identifier: MIT */
/*
 * pull.c - pull consumption and reads: get, subscriptions (declare, info),
 * fetch, ack, nack, term, progress, and the copy of a reply's messages into
 * the client (shared with push deliveries and key reads).
 */
#include <stdio.h>

#include "client_int.h"

/* Copies the messages of a get or fetch reply (in self->rframes) into
 * self->got: one allocation for the entries, one for headers, one for the
 * strings (NUL-terminated copies); payloads point into the kept frames. */
ferry_status_t
fy_cli_take_messages(ferry_client_t *self, const fy_reply_t *rep, const char *topic,
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
    if (!fy_cli_name_ok(topic))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_get(self->enc, cid, topic, from_seq, limit);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    return fy_cli_take_messages(self, &rep, topic, msgs, count);
}

/* Starts a request on (topic, sub): checks both names, resets the encoder
 * and hands out the request's cid. */
static ferry_status_t
s_sub_request(ferry_client_t *self, const char *topic, const char *sub, uint64_t *cid)
{
    if (!fy_cli_name_ok(topic) || !fy_cli_sub_ok(sub))
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
    if (!fy_cli_name_ok(topic) || !fy_cli_sub_ok(sub))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic or subscription name");
    fy_sub_request_t sr = {0};
    if (config) {
        if (config->start && strcmp(config->start, "first") != 0 &&
            strcmp(config->start, "new") != 0)
            return fy_client_fail(self, FERRY_EINVAL, "start is \"first\" or \"new\"");
        sr.start = config->start_seq                                ? FY_START_SEQ
                   : config->start && !strcmp(config->start, "new") ? FY_START_NEW
                                                                    : FY_START_FIRST;
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
    if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    fy_sub_state_t info;
    bool c;
    if (fy_reply_sub(&rep, &info, &c))
        return fy_client_fail(self, FERRY_EPROTO, "malformed sub_declare reply");
    if (created)
        *created = c;
    return FERRY_OK;
}

ferry_status_t
ferry_client_fetch_with(ferry_client_t *self, const char *topic, const char *sub,
                        const ferry_fetch_opts_t *opts, const ferry_stored_message_t **msgs,
                        size_t *count)
{
    if (!self || !opts || !msgs || !count || opts->max == 0 || opts->max > FY_FETCH_MAX ||
        opts->max_bytes > FY_REPLY_BYTES_MAX || opts->wait_ms < 0 ||
        opts->wait_ms > FY_FETCH_WAIT_MAX)
        return FERRY_EINVAL;
    *msgs = NULL;
    *count = 0;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_fetch(self->enc, cid, topic, sub, opts->max, opts->max_bytes,
                         (uint64_t)opts->wait_ms);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_wait(self, cid, NULL, NULL, 0, opts->wait_ms, &rep)))
        return st;
    return fy_cli_take_messages(self, &rep, topic, msgs, count);
}

ferry_status_t
ferry_client_fetch(ferry_client_t *self, const char *topic, const char *sub, uint32_t max,
                   int wait_ms, const ferry_stored_message_t **msgs, size_t *count)
{
    ferry_fetch_opts_t o = {.max = max, .wait_ms = wait_ms};
    return ferry_client_fetch_with(self, topic, sub, &o, msgs, count);
}

/* Waits for the "ok" of a subscription request encoded with @p encoded. */
static ferry_status_t
s_sub_call(ferry_client_t *self, uint64_t cid, ferry_status_t encoded)
{
    fy_reply_t rep;
    return encoded ? encoded : fy_cli_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_ack(ferry_client_t *self, const char *topic, const char *sub, const uint64_t *seqs,
                 size_t n)
{
    if (!self || !seqs || n == 0 || n > FY_FETCH_MAX)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    return st ? st
              : s_sub_call(self, cid, fy_encode_ack(self->enc, cid, topic, sub, seqs, n, false));
}

ferry_status_t
ferry_client_ack_async(ferry_client_t *self, const char *topic, const char *sub,
                       const uint64_t *seqs, size_t n, ferry_confirm_fn cb, void *user)
{
    if (!self || !seqs || n == 0 || n > FY_FETCH_MAX)
        return FERRY_EINVAL;
    if (fy_client_in_handler(self))
        return fy_client_fail(self, FERRY_EINVAL, "a message handler must not call its client");
    ferry_status_t st = fy_cli_window_room(self, "ack");
    uint64_t cid;
    if (st || (st = s_sub_request(self, topic, sub, &cid)) ||
        (st = fy_encode_ack(self->enc, cid, topic, sub, seqs, n, false)))
        return st;
    return fy_cli_window_put(self, cid, NULL, 0, false, cb, user, true);
}

ferry_status_t
ferry_client_nack(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq,
                  uint64_t delay_ms)
{
    if (!self || seq == 0)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    return st ? st
              : s_sub_call(self, cid,
                           fy_encode_nack(self->enc, cid, topic, sub, seq, delay_ms, false));
}

ferry_status_t
ferry_client_term(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq,
                  const char *error)
{
    if (!self || seq == 0 || (error && strlen(error) > FY_ERROR_TEXT_MAX))
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    return st ? st : s_sub_call(self, cid, fy_encode_term(self->enc, cid, topic, sub, seq, error));
}

ferry_status_t
ferry_client_progress(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq)
{
    if (!self || seq == 0)
        return FERRY_EINVAL;
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    return st ? st : s_sub_call(self, cid, fy_encode_progress(self->enc, cid, topic, sub, seq));
}

/* Where a subscription stands, from a sub_declare-shaped reply. */
static ferry_status_t
s_sub_state(ferry_client_t *self, const fy_reply_t *rep, ferry_sub_info_t *info)
{
    bool created;
    fy_sub_state_t ss;
    if (fy_reply_sub(rep, &ss, &created))
        return fy_client_fail(self, FERRY_EPROTO, "malformed reply");
    *info = (ferry_sub_info_t){.cursor = ss.cursor,
                               .ack_floor = ss.ack_floor,
                               .last_seq = ss.last_seq,
                               .ack_wait_ms = ss.ack_wait_ms,
                               .max_deliver = (uint32_t)ss.max_deliver};
    return FERRY_OK;
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
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    return s_sub_state(self, &rep, info);
}

ferry_status_t
fy_client_read_page(ferry_client_t *c, const char *topic, const char *key, uint64_t from,
                    uint32_t limit, const ferry_stored_message_t **msgs, size_t *n, uint64_t *next)
{
    uint64_t cid = c->next_cid++;
    fy_encoder_reset(c->enc);
    ferry_status_t st = fy_encode_read(c->enc, cid, topic, key, from, limit);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(c, cid, &rep)))
        return st;
    if (fy_reply_next(&rep, next))
        return fy_client_fail(c, FERRY_EPROTO, "malformed read reply");
    return fy_cli_take_messages(c, &rep, topic, msgs, n);
}

ferry_status_t
ferry_client_sub_seek(ferry_client_t *self, const char *topic, const char *sub, uint64_t seq,
                      uint64_t time_ms, ferry_sub_info_t *info)
{
    if (!self)
        return FERRY_EINVAL;
    if (!sub || !*sub)
        return fy_client_fail(self, FERRY_EFIELD, "a queue has nothing to seek to");
    if (!seq == !time_ms)
        return fy_client_fail(self, FERRY_EINVAL, "a sequence or a time, one of them");
    uint64_t cid;
    ferry_status_t st = s_sub_request(self, topic, sub, &cid);
    if (st)
        return st;
    st = fy_encode_seek(self->enc, cid, topic, sub, seq, time_ms);
    fy_reply_t rep;
    if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    ferry_sub_info_t ignored;
    return s_sub_state(self, &rep, info ? info : &ignored);
}
