/* SPDX-License-Identifier: MIT */
/*
 * window.c - publishing: blocking single and batch publishes, and the async
 * publish window, a ring of requests as sent that a new connection sends
 * again (same cid, same message id) until each is confirmed.
 */
#include <errno.h>

#include "client_int.h"
#include "text.h"
#include "clock.h"

/* Completes the async request with this reply's cid, if it is one. Replies
 * come in request order, so it is almost always the head of the FIFO. An
 * ack's answer is its status only. */
bool
fy_cli_complete_async(ferry_client_t *self, const fy_reply_t *rep, size_t index)
{
    uint64_t cid = rep->cid + index;
    for (size_t i = 0; i < self->count; i++) {
        fy_cli_pending_t *p = fy_cli_fifo_at(self, i);
        if (p->cid != cid || p->done)
            continue;
        p->done = true;
        ferry_confirm_t cf = {.status = rep->code};
        if (!p->ack)
            fy_cli_confirm_from(rep, index, &cf);
        if (p->cb)
            p->cb(self, &cf, p->user);
        while (self->count > 0 && fy_cli_fifo_at(self, 0)->done) {
            self->head = (self->head + 1) % self->opts.window;
            self->count--;
        }
        return true;
    }
    return false;
}

void
fy_cli_confirm_from(const fy_reply_t *rep, size_t index, ferry_confirm_t *cf)
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

/* Sends an async publish's stored request. */
ferry_status_t
fy_cli_send_pending(ferry_client_t *self, const fy_cli_pending_t *p)
{
    self->last_send_ms = fy_mono_ms();
    int more = p->frame ? ZMQ_SNDMORE : 0;
    if (zmq_send(self->conn.sock, p->req, p->env_len, more) < 0 ||
        (p->frame && zmq_send(self->conn.sock, p->req + p->env_len, p->data_len, 0) < 0))
        return fy_client_fail(self, FERRY_ECLOSED, "cannot send: %s", zmq_strerror(errno));
    return FERRY_OK;
}

/* Checks what the broker would refuse anyway, so misuse fails fast and locally. */
static ferry_status_t
s_check_message(ferry_client_t *self, const char *topic, const ferry_message_t *msg)
{
    if (!msg || (!msg->data && msg->len) || (msg->header_count && !msg->headers))
        return fy_client_fail(self, FERRY_EINVAL, "invalid message");
    if (!fy_cli_name_ok(topic))
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
    /* What the broker would refuse (EFIELD): text that is not UTF-8, or
     * holds control characters. */
    if ((msg->key && !fy_text_valid(fy_bytes_str(msg->key))) ||
        (msg->id && !fy_text_valid(fy_bytes_str(msg->id))))
        return fy_client_fail(self, FERRY_EINVAL,
                              "key and id must be valid UTF-8 without control characters");
    for (size_t i = 0; i < msg->header_count; i++)
        if (!fy_text_valid(fy_bytes_str(msg->headers[i].name)) ||
            !fy_text_valid(fy_bytes_str(msg->headers[i].value)))
            return fy_client_fail(self, FERRY_EINVAL,
                                  "header %zu: names and values must be valid UTF-8 without "
                                  "control characters",
                                  i);
    if (self->max_msg_bytes && msg->len + klen + ilen > self->max_msg_bytes)
        return fy_client_fail(self, FERRY_ETOO_LARGE,
                              "message of %zu bytes exceeds the limit of %llu",
                              msg->len + klen + ilen, (unsigned long long)self->max_msg_bytes);
    return FERRY_OK;
}

/* The codec's view of a public message (proto/records.h); the headers go to
 * @p hbuf, which has room for msg->header_count. */
static fy_outmsg_t
s_outmsg(const ferry_message_t *m, fy_header_t *hbuf)
{
    for (size_t i = 0; i < m->header_count; i++)
        hbuf[i] = (fy_header_t){m->headers[i].name, m->headers[i].value};
    return (fy_outmsg_t){.data = m->data,
                         .len = m->len,
                         .key = m->key,
                         .id = m->id,
                         .headers = hbuf,
                         .header_count = m->header_count,
                         .expect =
                             (m->expect & FERRY_EXPECT_LAST_SEQ ? FY_EXPECT_LAST_SEQ : 0) |
                             (m->expect & FERRY_EXPECT_KEY_VERSION ? FY_EXPECT_KEY_VERSION : 0),
                         .expect_last_seq = m->expect_last_seq,
                         .expect_key_version = m->expect_key_version,
                         .not_before_ms = m->not_before_ms,
                         .delay_ms = m->delay_ms};
}

/* Encodes one checked publish (at most FY_HEADERS_MAX headers). */
static ferry_status_t
s_encode_publish(ferry_client_t *self, uint64_t cid, const char *topic, const ferry_message_t *msg,
                 bool inl)
{
    fy_header_t hbuf[FY_HEADERS_MAX];
    fy_outmsg_t om = s_outmsg(msg, hbuf);
    return fy_encode_publish(self->enc, cid, topic, &om, inl, self->opts.ordered ? self->fence : 0);
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
    if ((st = s_encode_publish(self, cid, topic, msg, inl)))
        return st;
    const void *data = msg->data ? msg->data : "";
    fy_reply_t rep;
    st = fy_cli_call(self, cid, &data, &msg->len, inl ? 0 : 1, &rep);
    ferry_confirm_t cf = {.status = st};
    if (st == FERRY_OK || st == FERRY_ECONFLICT)
        fy_cli_confirm_from(&rep, self->rep_index, &cf);
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
    size_t nh = 0;
    for (size_t i = 0; i < n; i++)
        nh += msgs[i].header_count;
    const void **datas = malloc(n * sizeof *datas);
    size_t *lens = malloc(n * sizeof *lens);
    fy_outmsg_t *oms = malloc(n * sizeof *oms);
    fy_header_t *hbuf = malloc((nh ? nh : 1) * sizeof *hbuf);
    if (!datas || !lens || !oms || !hbuf) {
        free(datas);
        free(lens);
        free(oms);
        free(hbuf);
        return fy_client_fail(self, FERRY_ENOMEM, "out of memory");
    }
    for (size_t i = 0, h = 0; i < n; i++) {
        datas[i] = msgs[i].data ? msgs[i].data : "";
        lens[i] = msgs[i].len;
        oms[i] = s_outmsg(&msgs[i], hbuf + h);
        h += msgs[i].header_count;
    }
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    fy_reply_t rep;
    uint64_t fence = self->opts.ordered ? self->fence : 0;
    st = fy_encode_publish_batch(self->enc, cid, topic, oms, n, fence);
    if (st == FERRY_OK)
        st = fy_cli_call(self, cid, (const void *const *)datas, lens, n, &rep);
    free(datas);
    free(lens);
    free(oms);
    free(hbuf);
    size_t got = 0;
    if (st == FERRY_OK && (fy_reply_confirm_count(&rep, &got) || got != n))
        st = fy_client_fail(self, FERRY_EPROTO, "malformed batch confirm");
    for (size_t i = 0; confirms && i < n; i++) {
        confirms[i] = (ferry_confirm_t){.status = st};
        if (st == FERRY_ECONFLICT)
            fy_cli_confirm_from(&rep, 0, &confirms[i]);
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
    ferry_status_t st = s_encode_publish(self, cid, topic, msg, inl);
    if (st)
        return st;
    const void *data = msg->data ? msg->data : "";
    if (self->count == self->opts.window)
        return fy_cli_send(self, &data, &msg->len, inl ? 0 : 1);
    return fy_cli_window_put(self, cid, data, inl ? 0 : msg->len, !inl, cb, user, false);
}

ferry_status_t
fy_cli_window_put(ferry_client_t *self, uint64_t cid, const void *data, size_t extra, bool frame,
                  ferry_confirm_fn cb, void *user, bool ack)
{
    size_t env = fy_encoder_len(self->enc);
    /* Each window slot keeps its buffer: no allocation per publish once warm. */
    fy_cli_pending_t *p = fy_cli_fifo_at(self, self->count);
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
    p->frame = frame;
    p->ack = ack;
    p->fence = self->opts.ordered && !ack ? self->fence : 0;
    /* Not connected: it waits in the window and goes out after the hello. */
    if (self->connected && fy_cli_send_pending(self, p) != FERRY_OK)
        fy_cli_lose(self, "send failed");
    return FERRY_OK;
}

ferry_status_t
ferry_client_publish_async(ferry_client_t *self, const char *topic, const ferry_message_t *msg,
                           ferry_confirm_fn cb, void *user)
{
    if (!self)
        return FERRY_EINVAL;
    ferry_status_t st = s_check_message(self, topic, msg);
    if (st)
        return st;
    if ((st = fy_cli_window_room(self, "publish")))
        return st;
    return s_publish_send(self, topic, msg, cb, user);
}

ferry_status_t
fy_cli_window_room(ferry_client_t *self, const char *what)
{
    if (self->count < self->opts.window)
        return FERRY_OK;
    if (!self->opts.block_on_full)
        return self->connected ? fy_client_fail(self, FERRY_EWOULD_BLOCK, "window full (%s)", what)
                               : fy_client_fail(self, FERRY_EDISCONNECTED,
                                                "not connected and %zu requests wait: buffer full",
                                                self->count);
    /* Window full: process confirms until a slot frees. */
    fy_reply_t unused;
    ferry_status_t st =
        fy_cli_wait(self, FY_CLI_WAIT_SLOT, 0, fy_mono_ms() + self->opts.timeout_ms, &unused);
    if (st == FERRY_ETIMEOUT || st == FERRY_EDISCONNECTED)
        return self->connected
                   ? fy_client_fail(self, FERRY_ETIMEOUT, "window stayed full (%s)", what)
                   : fy_client_fail(self, FERRY_EDISCONNECTED,
                                    "not connected and %zu requests wait: buffer full",
                                    self->count);
    return st;
}

ferry_status_t
fy_client_publish_nowait(ferry_client_t *c, const char *topic, const ferry_message_t *m)
{
    ferry_status_t st = s_check_message(c, topic, m);
    return st ? st : s_publish_send(c, topic, m, NULL, NULL);
}

size_t
ferry_client_in_flight(const ferry_client_t *self)
{
    return self ? self->count : 0;
}

ferry_status_t
ferry_client_publish_resume(ferry_client_t *self)
{
    if (!self)
        return FERRY_EINVAL;
    self->fence++; /* what is sent from now on is not fenced by earlier refusals */
    return FERRY_OK;
}
