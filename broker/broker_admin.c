/* SPDX-License-Identifier: MIT */
/*
 * broker_admin.c - operations for operators (docs/protocol.md): `seek`, `topics`,
 * the topics and queues that exist, a page at a time, in name order (with
 * users, only those the connection's user may publish, consume or
 * administer); `subs`, a topic's subscriptions with where each stands and
 * how many push consumers it has now.
 */
#include "broker_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* subs: a page of the topic's subscriptions. */
static fy_status_t
s_subs(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    size_t n = 0;
    bool more = false;
    fy_sub_entry_t *found = malloc(req->limit * sizeof *found);
    fy_sub_listing_t *out = malloc(req->limit * sizeof *out);
    fy_status_t st =
        found && out ? fy_store_subs(self->store, req->name, req->sub, req->limit, found, &n, &more)
                     : FERRY_ENOMEM;
    for (size_t i = 0; st == FERRY_OK && i < n; i++) {
        const fy_sub_info_t *in = &found[i].info;
        fy_sub_listing_t *o = &out[i];
        memset(o, 0, sizeof *o);
        snprintf(o->name, sizeof o->name, "%s", found[i].name);
        snprintf(o->filter, sizeof o->filter, "%s", found[i].filter);
        snprintf(o->owner, sizeof o->owner, "%s", in->owner);
        o->cursor = in->cursor;
        o->ack_floor = in->ack_floor;
        o->last_seq = in->last_seq;
        o->ack_wait_ms = in->ack_wait_ms;
        o->max_deliver = in->max_deliver;
        o->created_ms = in->created_ms;
        for (size_t c = 0; c < self->cons.nlive; c++)
            o->consumers += !self->cons.live[c].ephemeral && self->cons.live[c].sub_id == in->id;
    }
    if (st == FERRY_OK) {
        fy_brk_reply_t *r;
        fy_brk_reply_begin(self, ri, &r);
        st = fy_brk_reply_finish(self, r, fy_encode_subs_reply(self->enc, req->cid, out, n, more));
    }
    free(found);
    free(out);
    return st;
}

/* sub_delete: a topic's named subscription goes, with its acks and pending
 * messages; its push consumers are dropped at their next delivery. Its
 * owner or admin on the topic. */
static fy_status_t
s_sub_delete(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    if (req->sub.len == 0)
        return fy_err_set(err, FERRY_EFIELD,
                          "a queue's subscription goes with the queue (delete the queue)");
    fy_sub_info_t info;
    bool created;
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created);
    if (st == FERRY_EFIELD)
        return fy_err_set(err, st, "a queue's subscription goes with the queue (delete the queue)");
    if (st == FERRY_OK)
        st = fy_brk_auth_sub(self, ri, req, info.owner, err);
    if (st == FERRY_OK)
        st = fy_store_sub_delete(self->store, req->name, req->sub);
    if (st)
        return st;
    fy_log(self->log, FY_LOG_INFO, "broker", "subscription deleted", "topic=%.*s sub=%.*s",
           (int)req->name.len, (const char *)req->name.ptr, (int)req->sub.len,
           (const char *)req->sub.ptr);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r, fy_encode_ok(self->enc, req->cid));
}

/* seek: a topic's named subscription starts again from a sequence or a
 * time. Its owner or admin on the topic, as sub_delete. */
static fy_status_t
s_seek(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    const char *queue = "a queue's acked messages are deleted: there is nothing to seek to";
    if (req->sub.len == 0)
        return fy_err_set(err, FERRY_EFIELD, "%s", queue);
    fy_sub_info_t info;
    bool created;
    fy_status_t st = fy_store_sub_open(self->store, req->name, req->sub, NULL, &info, &created);
    if (st == FERRY_EFIELD)
        return fy_err_set(err, st, "%s", queue);
    if (st == FERRY_OK)
        st = fy_brk_auth_sub(self, ri, req, info.owner, err);
    if (st == FERRY_OK)
        st = fy_store_sub_seek(self->store, req->name, req->sub, req->seq, req->delay_ms, &info);
    if (st)
        return st;
    fy_log(self->log, FY_LOG_INFO, "broker", "subscription moved",
           "topic=%.*s sub=%.*s seq=%llu time_ms=%llu next=%llu", (int)req->name.len,
           (const char *)req->name.ptr, (int)req->sub.len, (const char *)req->sub.ptr,
           (unsigned long long)req->seq, (unsigned long long)req->delay_ms,
           (unsigned long long)info.cursor);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r,
                               fy_encode_sub_reply(self->enc, req->cid, info.cursor, info.ack_floor,
                                                   info.ack_wait_ms, info.max_deliver,
                                                   info.last_seq, false));
}

/* purge: a bounded slice per request (the client asks again while more
 * are left), in the batch's transaction. */
#define S_PURGE_SLICE 10000

static fy_status_t
s_purge(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    uint64_t removed = 0;
    bool more = false;
    fy_status_t st = fy_store_purge(self->store, req->name, req->keep, req->below, S_PURGE_SLICE,
                                    &removed, &more);
    if (st)
        return st;
    if (removed)
        fy_log(self->log, FY_LOG_INFO, "broker", "purged",
               "topic=%.*s removed=%llu keep=%llu below=%llu more=%d", (int)req->name.len,
               (const char *)req->name.ptr, (unsigned long long)removed,
               (unsigned long long)req->keep, (unsigned long long)req->below, more);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r, fy_encode_purge_reply(self->enc, req->cid, removed, more));
}

/* edit: the settings that may change, then a slice of what is over the new
 * limits (the client sends it again while more are). */
static fy_status_t
s_edit(fy_broker_t *self, size_t ri, const fy_request_t *req)
{
    fy_topic_info_t info;
    bool more = false;
    fy_status_t st = fy_store_edit(self->store, req->name, req->edit, &req->topic_cfg,
                                   S_PURGE_SLICE, &info, &more);
    if (st)
        return st;
    fy_log(self->log, FY_LOG_INFO, "broker", "edited",
           "topic=%.*s max_msgs=%llu max_bytes=%llu max_age_ms=%llu discard=%s dedupe_ms=%llu "
           "more=%d",
           (int)req->name.len, (const char *)req->name.ptr, (unsigned long long)info.max_msgs,
           (unsigned long long)info.max_bytes, (unsigned long long)info.max_age_ms,
           info.discard_new ? "new" : "old", (unsigned long long)info.dedupe_window_ms, more);
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r, fy_encode_edit_reply(self->enc, req->cid, &info, more));
}

/* A copy of the store into a new directory, on the broker's thread: the
 * broker pauses for it (LMDB's compacting copy and the log's records). */
static fy_status_t
s_backup(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    char path[1001];
    memcpy(path, req->key.ptr, req->key.len);
    path[req->key.len] = '\0';
    int64_t t0 = fy_mono_us();
    fy_status_t st = fy_store_backup(self->store, path, err);
    if (st) {
        fy_log(self->log, FY_LOG_WARN, "broker", "backup failed", "path=%s code=%d error=\"%s\"",
               path, st, err->msg);
        return st;
    }
    fy_log(self->log, FY_LOG_INFO, "broker", "backup made", "path=%s ms=%lld", path,
           (long long)((fy_mono_us() - t0) / 1000));
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r, fy_encode_ok(self->enc, req->cid));
}

fy_status_t
fy_brk_handle_admin(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    if (req->op == FY_OP_PURGE)
        return s_purge(self, ri, req);
    if (req->op == FY_OP_EDIT)
        return s_edit(self, ri, req);
    if (req->op == FY_OP_SUBS)
        return s_subs(self, ri, req);
    if (req->op == FY_OP_SUB_DELETE)
        return s_sub_delete(self, ri, req, err);
    if (req->op == FY_OP_SEEK)
        return s_seek(self, ri, req, err);
    if (req->op == FY_OP_BACKUP)
        return s_backup(self, ri, req, err);
    size_t want = req->limit, n = 0;
    fy_topic_info_t *out = malloc(want * sizeof *out), *chunk = malloc(want * sizeof *chunk);
    fy_status_t st = out && chunk ? FERRY_OK : FERRY_ENOMEM;
    char after[FY_NAME_MAX + 1];
    memcpy(after, req->name.ptr, req->name.len);
    after[req->name.len] = '\0';
    bool more = false;
    /* Pages of the store until `want` topics this user sees, or the end. */
    while (st == FERRY_OK) {
        size_t got = 0;
        bool left = false;
        st = fy_store_topics(self->store, (fy_bytes_t){(const uint8_t *)after, strlen(after)}, want,
                             chunk, &got, &left);
        for (size_t i = 0; st == FERRY_OK && i < got; i++) {
            snprintf(after, sizeof after, "%s", chunk[i].name);
            if (!fy_brk_auth_sees(self, ri, fy_bytes_str(chunk[i].name)))
                continue;
            if (n == want) { /* one more than the page: there is more */
                more = true;
                break;
            }
            out[n++] = chunk[i];
        }
        if (more || !left || st)
            break;
    }
    if (st == FERRY_OK) {
        fy_brk_reply_t *r;
        fy_brk_reply_begin(self, ri, &r);
        st =
            fy_brk_reply_finish(self, r, fy_encode_topics_reply(self->enc, req->cid, out, n, more));
    }
    free(out);
    free(chunk);
    return st;
}
