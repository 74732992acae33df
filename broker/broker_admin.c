/*
 * broker_admin.c - operations for operators (docs/protocol.md): `topics`,
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

fy_status_t
fy_brk_handle_admin(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    (void)err;
    if (req->op == FY_OP_SUBS)
        return s_subs(self, ri, req);
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
