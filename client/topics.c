/* SPDX-License-Identifier: MIT */
/*
 * topics.c - topics and queues: declare, delete, info, and the broker's
 * stats; the protocol's records (proto/records.h) are mapped to the public
 * structs of ferry.h here.
 */
#include "client_int.h"

/* The protocol's records and the public structs hold the same fields; the
 * broker and the codec never see the public ones. */
static void
s_info_from(const fy_topic_info_t *in, ferry_topic_info_t *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->name, in->name, sizeof out->name);
    out->kind = in->kind == FY_KIND_QUEUE ? FERRY_KIND_QUEUE : FERRY_KIND_TOPIC;
    out->first_seq = in->first_seq;
    out->last_seq = in->last_seq;
    out->messages = in->messages;
    out->bytes = in->bytes;
    out->dedupe_window_ms = in->dedupe_window_ms;
    out->created_ms = in->created_ms;
    out->max_msgs = in->max_msgs;
    out->max_bytes = in->max_bytes;
    out->max_age_ms = in->max_age_ms;
    out->discard_new = in->discard_new;
    out->interest = in->interest;
}

static void
s_stats_from(const fy_stats_t *in, ferry_stats_t *out)
{
    *out = (ferry_stats_t){.topics = in->topics,
                           .messages = in->messages,
                           .bytes = in->bytes,
                           .publishes = in->publishes,
                           .duplicates = in->duplicates,
                           .commits = in->commits,
                           .requests = in->requests,
                           .errors = in->errors,
                           .uptime_ms = in->uptime_ms,
                           .map_size = in->map_size,
                           .map_used = in->map_used};
}

ferry_status_t
ferry_client_declare(ferry_client_t *self, ferry_kind_t kind, const char *name,
                     const ferry_topic_config_t *config, ferry_topic_info_t *info, bool *created)
{
    if (!self || (kind != FERRY_KIND_TOPIC && kind != FERRY_KIND_QUEUE))
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    fy_topic_config_t cfg = {0};
    if (config)
        cfg = (fy_topic_config_t){.dedupe_window_ms = config->dedupe_window_ms,
                                  .max_msgs = config->max_msgs,
                                  .max_bytes = config->max_bytes,
                                  .max_age_ms = config->max_age_ms,
                                  .discard_new = config->discard_new,
                                  .interest = config->interest};
    ferry_status_t st = fy_encode_declare(
        self->enc, cid, kind == FERRY_KIND_QUEUE ? FY_KIND_QUEUE : FY_KIND_TOPIC, name, &cfg);
    fy_reply_t rep;
    if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
        return st;
    fy_topic_info_t ti;
    bool c;
    if (fy_reply_info(&rep, &ti, &c) != FERRY_OK)
        return fy_client_fail(self, FERRY_EPROTO, "malformed declare reply");
    if (info)
        s_info_from(&ti, info);
    if (created)
        *created = c;
    return FERRY_OK;
}

ferry_status_t
ferry_client_delete(ferry_client_t *self, const char *name)
{
    if (!self)
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_DELETE, name);
    fy_reply_t rep;
    return st ? st : fy_cli_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_edit(ferry_client_t *self, const char *name, const ferry_topic_edit_t *edit,
                  ferry_topic_info_t *info)
{
    unsigned known = FERRY_EDIT_DEDUPE_WINDOW | FERRY_EDIT_MAX_MSGS | FERRY_EDIT_MAX_BYTES |
                     FERRY_EDIT_MAX_AGE | FERRY_EDIT_DISCARD;
    if (!self || !edit || !edit->set || (edit->set & ~known))
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    fy_topic_config_t cfg = {.dedupe_window_ms = edit->dedupe_window_ms,
                             .max_msgs = edit->max_msgs,
                             .max_bytes = edit->max_bytes,
                             .max_age_ms = edit->max_age_ms,
                             .discard_new = edit->discard_new};
    unsigned set = (edit->set & FERRY_EDIT_DEDUPE_WINDOW ? FY_EDIT_DEDUPE : 0) |
                   (edit->set & FERRY_EDIT_MAX_MSGS ? FY_EDIT_MAX_MSGS : 0) |
                   (edit->set & FERRY_EDIT_MAX_BYTES ? FY_EDIT_MAX_BYTES : 0) |
                   (edit->set & FERRY_EDIT_MAX_AGE ? FY_EDIT_MAX_AGE : 0) |
                   (edit->set & FERRY_EDIT_DISCARD ? FY_EDIT_DISCARD : 0);
    bool more = true;
    while (more) { /* again while messages over the new limits are left */
        uint64_t cid = self->next_cid++;
        fy_encoder_reset(self->enc);
        ferry_status_t st = fy_encode_edit(self->enc, cid, name, set, &cfg);
        fy_reply_t rep;
        if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
            return st;
        fy_topic_info_t ti;
        if (fy_reply_edit(&rep, &ti, &more))
            return fy_client_fail(self, FERRY_EPROTO, "malformed edit reply");
        if (info)
            s_info_from(&ti, info);
    }
    return FERRY_OK;
}

ferry_status_t
ferry_client_purge(ferry_client_t *self, const char *name, uint64_t keep, uint64_t below_seq,
                   uint64_t *removed)
{
    if (removed)
        *removed = 0;
    if (!self || (keep && below_seq))
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    bool more = true;
    while (more) {
        uint64_t cid = self->next_cid++, n = 0;
        fy_encoder_reset(self->enc);
        ferry_status_t st = fy_encode_purge(self->enc, cid, name, keep, below_seq);
        fy_reply_t rep;
        if (st || (st = fy_cli_call(self, cid, NULL, NULL, 0, &rep)))
            return st;
        if (fy_reply_purge(&rep, &n, &more))
            return fy_client_fail(self, FERRY_EPROTO, "malformed purge reply");
        if (removed)
            *removed += n;
    }
    return FERRY_OK;
}

ferry_status_t
ferry_client_sub_delete(ferry_client_t *self, const char *topic, const char *sub)
{
    if (!self)
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(topic) || !fy_cli_sub_ok(sub) || !sub || !*sub)
        return fy_client_fail(self, FERRY_EINVALID_NAME,
                              "invalid name (a queue's subscription goes with the queue)");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_sub_op(self->enc, cid, FY_OP_SUB_DELETE, topic, sub);
    fy_reply_t rep;
    return st ? st : fy_cli_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_info(ferry_client_t *self, const char *name, ferry_topic_info_t *info)
{
    if (!self || !info)
        return FERRY_EINVAL;
    if (!fy_cli_name_ok(name))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_INFO, name);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    fy_topic_info_t ti;
    if (fy_reply_info(&rep, &ti, NULL))
        return fy_client_fail(self, FERRY_EPROTO, "malformed info reply");
    s_info_from(&ti, info);
    return FERRY_OK;
}

ferry_status_t
ferry_client_topics(ferry_client_t *self, const char *after, ferry_topic_info_t *out, size_t max,
                    size_t *n, bool *more)
{
    if (!self || !out || !n || !more || max == 0 || max > FY_BATCH_MAX)
        return FERRY_EINVAL;
    *n = 0;
    *more = false;
    if (after && *after && !fy_cli_name_ok(after))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_topics(self->enc, cid, after, (uint32_t)max);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    size_t got;
    if (fy_reply_topics(&rep, &got, more) || got > max)
        return fy_client_fail(self, FERRY_EPROTO, "malformed topics reply");
    for (size_t i = 0; i < got; i++) {
        fy_topic_info_t ti;
        if (fy_reply_topic_at(&rep, i, &ti))
            return fy_client_fail(self, FERRY_EPROTO, "malformed topics reply");
        s_info_from(&ti, &out[i]);
    }
    *n = got;
    return FERRY_OK;
}

ferry_status_t
ferry_client_subs(ferry_client_t *self, const char *topic, const char *after,
                  ferry_sub_listing_t *out, size_t max, size_t *n, bool *more)
{
    if (!self || !out || !n || !more || max == 0 || max > FY_BATCH_MAX)
        return FERRY_EINVAL;
    *n = 0;
    *more = false;
    if (!fy_cli_name_ok(topic) || (after && *after && strlen(after) > FERRY_NAME_MAX))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid name");
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_subs(self->enc, cid, topic, after, (uint32_t)max);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    size_t got;
    if (fy_reply_subs(&rep, &got, more) || got > max)
        return fy_client_fail(self, FERRY_EPROTO, "malformed subs reply");
    for (size_t i = 0; i < got; i++) {
        fy_sub_listing_t s;
        if (fy_reply_sub_at(&rep, i, &s))
            return fy_client_fail(self, FERRY_EPROTO, "malformed subs reply");
        ferry_sub_listing_t *o = &out[i];
        memset(o, 0, sizeof *o);
        memcpy(o->name, s.name, sizeof o->name);
        memcpy(o->filter, s.filter, sizeof o->filter);
        memcpy(o->owner, s.owner, sizeof o->owner);
        o->cursor = s.cursor;
        o->ack_floor = s.ack_floor;
        o->last_seq = s.last_seq;
        o->ack_wait_ms = s.ack_wait_ms;
        o->created_ms = s.created_ms;
        o->max_deliver = (uint32_t)s.max_deliver;
        o->consumers = (uint32_t)s.consumers;
    }
    *n = got;
    return FERRY_OK;
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
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    fy_stats_t fs;
    if (fy_reply_stats(&rep, &fs))
        return fy_client_fail(self, FERRY_EPROTO, "malformed stats reply");
    s_stats_from(&fs, stats);
    return FERRY_OK;
}

void
fy_client_delete_nowait(ferry_client_t *c, const char *name)
{
    fy_encoder_reset(c->enc);
    if (fy_encode_simple(c->enc, c->next_cid++, FY_OP_DELETE, name) == FERRY_OK)
        (void)fy_cli_send(c, NULL, NULL, 0);
}
