/* SPDX-License-Identifier: MIT */
/*
 * reply.c - Ferry replies and deliveries: encoding (the broker) and decoding
 * (libferry).
 */
#include "envelope_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

fy_status_t
fy_encode_subscribed(fy_encoder_t *self, uint64_t cid, uint64_t consumer, bool ephemeral)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) |
             fy_envi_kv_uint(&self->pk, "consumer", consumer) |
             fy_envi_str(&self->pk, "ephemeral") |
             (ephemeral ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_delivery_begin(fy_encoder_t *self, uint64_t consumer, size_t n)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "msg", 0) |
             fy_envi_kv_uint(&self->pk, "consumer", consumer) | fy_envi_str(&self->pk, "msgs") |
             msgpack_pack_array(&self->pk, n);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_sub_reply(fy_encoder_t *self, uint64_t cid, uint64_t cursor, uint64_t ack_floor,
                    uint64_t ack_wait_ms, uint64_t max_deliver, uint64_t last_seq, bool created)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 6, "ok", cid) | fy_envi_kv_uint(&self->pk, "cursor", cursor) |
             fy_envi_kv_uint(&self->pk, "ack_floor", ack_floor) |
             fy_envi_kv_uint(&self->pk, "ack_wait_ms", ack_wait_ms) |
             fy_envi_kv_uint(&self->pk, "max_deliver", max_deliver) |
             fy_envi_kv_uint(&self->pk, "last", last_seq) | fy_envi_str(&self->pk, "created_now") |
             (created ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_error(fy_encoder_t *self, uint64_t cid, fy_status_t code, const char *msg)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3, "error", cid) |
             fy_envi_kv_uint(&self->pk, "code", (uint64_t)code) |
             fy_envi_kv_str(&self->pk, "name", fy_status_name(code)) |
             fy_envi_kv_str(&self->pk, "msg", msg ? msg : fy_status_text(code));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_ok(fy_encoder_t *self, uint64_t cid)
{
    size_t start = self->buf.size;
    return fy_envi_done(self, start, fy_envi_head(&self->pk, 0, "ok", cid));
}

fy_status_t
fy_encode_hello_ok(fy_encoder_t *self, uint64_t cid, const char *server, uint64_t max_msg_bytes)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) | fy_envi_kv_str(&self->pk, "server", server) |
             fy_envi_kv_uint(&self->pk, "max_msg", max_msg_bytes);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_confirm(fy_encoder_t *self, uint64_t cid, uint64_t seq, bool dup, uint64_t kver)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2 + (kver != 0), "ok", cid) |
             fy_envi_kv_uint(&self->pk, "seq", seq) | fy_envi_str(&self->pk, "dup") |
             (dup ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    if (kver)
        rc |= fy_envi_kv_uint(&self->pk, "kver", kver);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_conflict(fy_encoder_t *self, uint64_t cid, const char *msg, uint64_t last, uint64_t kver)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 5, "error", cid) |
             fy_envi_kv_uint(&self->pk, "code", (uint64_t)FERRY_ECONFLICT) |
             fy_envi_kv_str(&self->pk, "name", fy_status_name(FERRY_ECONFLICT)) |
             fy_envi_kv_str(&self->pk, "msg", msg ? msg : fy_status_text(FERRY_ECONFLICT)) |
             fy_envi_kv_uint(&self->pk, "last", last) | fy_envi_kv_uint(&self->pk, "kver", kver);
    return fy_envi_done(self, start, rc);
}

static bool
s_any(const uint64_t *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        if (v[i])
            return true;
    return false;
}

/* seqs, dups and (when any message has a key) kvers: 2 or 3 fields. */
static int
s_confirm_arrays(msgpack_packer *pk, const uint64_t *seqs, const bool *dups, const uint64_t *kvers,
                 size_t n)
{
    int rc = fy_envi_str(pk, "seqs") | msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint64(pk, seqs[i]);
    rc |= fy_envi_str(pk, "dups") | msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= dups[i] ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    if (s_any(kvers, n)) {
        rc |= fy_envi_str(pk, "kvers") | msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            rc |= msgpack_pack_uint64(pk, kvers[i]);
    }
    return rc;
}

fy_status_t
fy_encode_confirm_batch(fy_encoder_t *self, uint64_t cid, const uint64_t *seqs, const bool *dups,
                        const uint64_t *kvers, size_t n)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2 + s_any(kvers, n), "ok", cid) |
             s_confirm_arrays(&self->pk, seqs, dups, kvers, n);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_confirm_run(fy_encoder_t *self, uint64_t first_cid, const uint64_t *seqs,
                      const bool *dups, const uint64_t *kvers, size_t n)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3 + s_any(kvers, n), "ok", first_cid) |
             fy_envi_kv_uint(&self->pk, "n", n) | s_confirm_arrays(&self->pk, seqs, dups, kvers, n);
    return fy_envi_done(self, start, rc);
}

/* The 13 pairs that say where a topic stands (info, declare, topics). */
#define S_INFO_PAIRS 13
static int
s_pack_info(msgpack_packer *pk, const fy_topic_info_t *in)
{
    return fy_envi_kv_str(pk, "name", in->name) |
           fy_envi_kv_str(pk, "kind", in->kind == FY_KIND_QUEUE ? "queue" : "topic") |
           fy_envi_kv_uint(pk, "first", in->first_seq) | fy_envi_kv_uint(pk, "last", in->last_seq) |
           fy_envi_kv_uint(pk, "count", in->messages) | fy_envi_kv_uint(pk, "bytes", in->bytes) |
           fy_envi_kv_uint(pk, "dedupe_ms", in->dedupe_window_ms) |
           fy_envi_kv_uint(pk, "created", in->created_ms) |
           fy_envi_kv_uint(pk, "max_msgs", in->max_msgs) |
           fy_envi_kv_uint(pk, "max_bytes", in->max_bytes) |
           fy_envi_kv_uint(pk, "max_age_ms", in->max_age_ms) |
           fy_envi_kv_str(pk, "discard", in->discard_new ? "new" : "old") |
           fy_envi_str(pk, "interest") |
           (in->interest ? msgpack_pack_true(pk) : msgpack_pack_false(pk));
}

fy_status_t
fy_encode_topics_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *infos, size_t n,
                       bool more)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) | fy_envi_str(&self->pk, "topics") |
             msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_map(&self->pk, S_INFO_PAIRS) | s_pack_info(&self->pk, &infos[i]);
    rc |= fy_envi_str(&self->pk, "more") |
          (more ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_edit_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *info, bool more)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, S_INFO_PAIRS + 1, "ok", cid) | s_pack_info(&self->pk, info) |
             fy_envi_str(&self->pk, "more") |
             (more ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_purge_reply(fy_encoder_t *self, uint64_t cid, uint64_t removed, bool more)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) |
             fy_envi_kv_uint(&self->pk, "removed", removed) | fy_envi_str(&self->pk, "more") |
             (more ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_subs_reply(fy_encoder_t *self, uint64_t cid, const fy_sub_listing_t *subs, size_t n,
                     bool more)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) | fy_envi_str(&self->pk, "subs") |
             msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++) {
        const fy_sub_listing_t *s = &subs[i];
        rc |= msgpack_pack_map(&self->pk, 10) | fy_envi_kv_str(&self->pk, "name", s->name) |
              fy_envi_kv_str(&self->pk, "filter", s->filter) |
              fy_envi_kv_str(&self->pk, "owner", s->owner) |
              fy_envi_kv_uint(&self->pk, "cursor", s->cursor) |
              fy_envi_kv_uint(&self->pk, "ack_floor", s->ack_floor) |
              fy_envi_kv_uint(&self->pk, "last_seq", s->last_seq) |
              fy_envi_kv_uint(&self->pk, "ack_wait_ms", s->ack_wait_ms) |
              fy_envi_kv_uint(&self->pk, "max_deliver", s->max_deliver) |
              fy_envi_kv_uint(&self->pk, "created", s->created_ms) |
              fy_envi_kv_uint(&self->pk, "consumers", s->consumers);
    }
    rc |= fy_envi_str(&self->pk, "more") |
          (more ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_info_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *in, int created)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, S_INFO_PAIRS + (created >= 0), "ok", cid) |
             s_pack_info(&self->pk, in);
    if (created >= 0)
        rc |= fy_envi_str(&self->pk, "created_now") |
              (created ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

/* Stats fields, in one table for the encoder and the decoder. */
#define S_STATS_FIELDS(X) \
    X(topics)             \
    X(messages)           \
    X(bytes)              \
    X(publishes) X(duplicates) X(commits) X(requests) X(errors) X(uptime_ms) X(map_size) X(map_used)
#define S_COUNT_FIELD(f) +1
#define S_PACK_FIELD(f)  | fy_envi_kv_uint(&self->pk, #f, st->f)

fy_status_t
fy_encode_stats_reply(fy_encoder_t *self, uint64_t cid, const fy_stats_t *st)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 0 S_STATS_FIELDS(S_COUNT_FIELD), "ok", cid)
        S_STATS_FIELDS(S_PACK_FIELD);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_get_begin(fy_encoder_t *self, uint64_t cid, size_t n)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 1, "ok", cid) | fy_envi_str(&self->pk, "msgs") |
             msgpack_pack_array(&self->pk, n);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_read_begin(fy_encoder_t *self, uint64_t cid, size_t n, uint64_t next)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "ok", cid) | fy_envi_kv_uint(&self->pk, "next", next) |
             fy_envi_str(&self->pk, "msgs") | msgpack_pack_array(&self->pk, n);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_entry(fy_encoder_t *self, const fy_entry_t *e)
{
    size_t start = self->buf.size;
    const fy_bytes_t *inl = e->inline_data;
    int rc = msgpack_pack_map(&self->pk, 2 + (e->dc > 0) + (e->kver > 0) + (e->key.len > 0) +
                                             (e->id.len > 0) + (e->hdrs.len > 0) + (inl != NULL)) |
             fy_envi_kv_uint(&self->pk, "seq", e->seq) | fy_envi_kv_uint(&self->pk, "ts", e->ts_ms);
    if (e->dc)
        rc |= fy_envi_kv_uint(&self->pk, "dc", e->dc);
    if (e->kver)
        rc |= fy_envi_kv_uint(&self->pk, "kver", e->kver);
    if (e->key.len)
        rc |= fy_envi_str(&self->pk, "key") | fy_envi_bytes(&self->pk, e->key);
    if (e->id.len)
        rc |= fy_envi_str(&self->pk, "id") | fy_envi_bytes(&self->pk, e->id);
    if (e->hdrs.len) /* stored in canonical msgpack already: copied as is */
        rc |= fy_envi_str(&self->pk, "hdrs") |
              msgpack_sbuffer_write(&self->buf, (const char *)e->hdrs.ptr, e->hdrs.len);
    if (inl)
        rc |= fy_envi_str(&self->pk, "data") | msgpack_pack_bin(&self->pk, inl->len) |
              msgpack_pack_bin_body(&self->pk, inl->ptr ? (const void *)inl->ptr : "", inl->len);
    return fy_envi_done(self, start, rc);
}

/* ---- reply decoding ------------------------------------------------------ */

#define S_MAP(rep) ((const msgpack_object *)(rep)->obj_)

fy_status_t
fy_reply_decode(fy_decoder_t *self, const void *buf, size_t len, fy_reply_t *rep, fy_err_t *err)
{
    memset(rep, 0, sizeof *rep);
    const msgpack_object *map;
    fy_status_t st = fy_envi_unpack_map(self, buf, len, &map, err);
    if (st)
        return st;
    const msgpack_object *cid = fy_envi_field(map, "cid"), *op = fy_envi_field(map, "op");
    fy_bytes_t opname;
    if (!cid || !fy_envi_as_uint(cid, &rep->cid) || !op || !fy_envi_as_bytes(op, &opname))
        return fy_err_set(err, FERRY_EFIELD, "reply lacks 'cid' or 'op'");
    if ((st = fy_envi_check_version(map, err)))
        return st;
    rep->obj_ = map;
    if (fy_bytes_eq(opname, fy_bytes_str("ok")))
        return FERRY_OK;
    if (fy_bytes_eq(opname, fy_bytes_str("msg"))) {
        rep->delivery = true;
        return FERRY_OK;
    }

    if (!fy_bytes_eq(opname, fy_bytes_str("error")))
        return fy_err_set(err, FERRY_EUNKNOWN_OP, "unknown reply operation");
    const msgpack_object *code = fy_envi_field(map, "code"), *msg = fy_envi_field(map, "msg");
    uint64_t c;
    if (!code || !fy_envi_as_uint(code, &c) || c == 0 || c > INT32_MAX)
        return fy_err_set(err, FERRY_EFIELD, "error reply lacks a valid 'code'");
    rep->code = (fy_status_t)c;
    if (msg)
        fy_envi_as_bytes(msg, &rep->msg);
    return FERRY_OK;
}

static fy_status_t
s_get_uint(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = fy_envi_field(map, key);
    return o && fy_envi_as_uint(o, out) ? FERRY_OK : FERRY_EFIELD;
}

static fy_status_t
s_get_bool(const msgpack_object *map, const char *key, bool *out)
{
    const msgpack_object *o = fy_envi_field(map, key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN)
        return FERRY_EFIELD;
    *out = o->via.boolean;
    return FERRY_OK;
}

fy_status_t
fy_reply_hello(const fy_reply_t *rep, uint64_t *max_msg_bytes)
{
    return s_get_uint(S_MAP(rep), "max_msg", max_msg_bytes);
}

fy_status_t
fy_reply_confirm(const fy_reply_t *rep, uint64_t *seq, bool *dup, uint64_t *kver)
{
    *kver = 0;
    fy_status_t st = s_get_uint(S_MAP(rep), "seq", seq);
    if (st == FERRY_OK)
        st = fy_envi_opt_uint(S_MAP(rep), "kver", UINT64_MAX, kver, NULL);
    return st ? st : s_get_bool(S_MAP(rep), "dup", dup);
}

fy_status_t
fy_reply_conflict(const fy_reply_t *rep, uint64_t *last, uint64_t *kver)
{
    fy_status_t st = s_get_uint(S_MAP(rep), "last", last);
    return st ? st : s_get_uint(S_MAP(rep), "kver", kver);
}

fy_status_t
fy_reply_next(const fy_reply_t *rep, uint64_t *next)
{
    return s_get_uint(S_MAP(rep), "next", next);
}

static const msgpack_object *
s_array(const fy_reply_t *rep, const char *key)
{
    const msgpack_object *o = fy_envi_field(S_MAP(rep), key);
    return o && o->type == MSGPACK_OBJECT_ARRAY ? o : NULL;
}

fy_status_t
fy_reply_confirm_count(const fy_reply_t *rep, size_t *n)
{
    const msgpack_object *seqs = s_array(rep, "seqs"), *dups = s_array(rep, "dups");
    if (!seqs || !dups || seqs->via.array.size != dups->via.array.size)
        return FERRY_EFIELD;
    *n = seqs->via.array.size;
    return FERRY_OK;
}

size_t
fy_reply_run(const fy_reply_t *rep)
{
    uint64_t n;
    size_t count;
    if (rep->code != FERRY_OK || s_get_uint(S_MAP(rep), "n", &n) != FERRY_OK || n < 2 ||
        fy_reply_confirm_count(rep, &count) != FERRY_OK || count != n)
        return 1;
    return (size_t)n;
}

fy_status_t
fy_reply_confirm_at(const fy_reply_t *rep, size_t i, uint64_t *seq, bool *dup, uint64_t *kver)
{
    const msgpack_object *seqs = s_array(rep, "seqs"), *dups = s_array(rep, "dups"),
                         *kvers = s_array(rep, "kvers");
    *kver = 0;
    if (!seqs || !dups || i >= seqs->via.array.size || i >= dups->via.array.size)
        return FERRY_EFIELD;
    const msgpack_object *d = &dups->via.array.ptr[i];
    if (!fy_envi_as_uint(&seqs->via.array.ptr[i], seq) || d->type != MSGPACK_OBJECT_BOOLEAN)
        return FERRY_EFIELD;
    if (kvers && (i >= kvers->via.array.size || !fy_envi_as_uint(&kvers->via.array.ptr[i], kver)))
        return FERRY_EFIELD;
    *dup = d->via.boolean;
    return FERRY_OK;
}

/* Where a topic stands, from the 13 pairs of s_pack_info in @p map. */
static fy_status_t
s_info_from(const msgpack_object *map, fy_topic_info_t *info)
{
    memset(info, 0, sizeof *info);
    fy_bytes_t name, kind;
    const msgpack_object *n = fy_envi_field(map, "name"), *k = fy_envi_field(map, "kind");
    if (!n || !fy_envi_as_bytes(n, &name) || name.len > FY_NAME_MAX || !k ||
        !fy_envi_as_bytes(k, &kind))
        return FERRY_EFIELD;
    memcpy(info->name, name.ptr, name.len);
    info->kind = fy_bytes_eq(kind, fy_bytes_str("queue")) ? FY_KIND_QUEUE : FY_KIND_TOPIC;
    if (s_get_uint(map, "first", &info->first_seq) || s_get_uint(map, "last", &info->last_seq) ||
        s_get_uint(map, "count", &info->messages) || s_get_uint(map, "bytes", &info->bytes) ||
        s_get_uint(map, "dedupe_ms", &info->dedupe_window_ms) ||
        s_get_uint(map, "created", &info->created_ms) ||
        s_get_uint(map, "max_msgs", &info->max_msgs) ||
        s_get_uint(map, "max_bytes", &info->max_bytes) ||
        s_get_uint(map, "max_age_ms", &info->max_age_ms))
        return FERRY_EFIELD;
    const msgpack_object *d = fy_envi_field(map, "discard");
    fy_bytes_t word;
    info->discard_new = d && fy_envi_as_bytes(d, &word) && fy_bytes_eq(word, fy_bytes_str("new"));
    bool interest = false;
    info->interest = s_get_bool(map, "interest", &interest) == FERRY_OK && interest;
    return FERRY_OK;
}

fy_status_t
fy_reply_info(const fy_reply_t *rep, fy_topic_info_t *info, bool *created)
{
    fy_status_t st = s_info_from(S_MAP(rep), info);
    if (st == FERRY_OK && created && s_get_bool(S_MAP(rep), "created_now", created))
        *created = false;
    return st;
}

fy_status_t
fy_reply_topics(const fy_reply_t *rep, size_t *n, bool *more)
{
    const msgpack_object *topics = s_array(rep, "topics");
    if (!topics || s_get_bool(S_MAP(rep), "more", more))
        return FERRY_EFIELD;
    *n = topics->via.array.size;
    return FERRY_OK;
}

fy_status_t
fy_reply_edit(const fy_reply_t *rep, fy_topic_info_t *info, bool *more)
{
    fy_status_t st = s_info_from(S_MAP(rep), info);
    return st ? st : s_get_bool(S_MAP(rep), "more", more) ? FERRY_EFIELD : FERRY_OK;
}

fy_status_t
fy_reply_purge(const fy_reply_t *rep, uint64_t *removed, bool *more)
{
    return s_get_uint(S_MAP(rep), "removed", removed) || s_get_bool(S_MAP(rep), "more", more)
               ? FERRY_EFIELD
               : FERRY_OK;
}

fy_status_t
fy_reply_subs(const fy_reply_t *rep, size_t *n, bool *more)
{
    const msgpack_object *subs = s_array(rep, "subs");
    if (!subs || s_get_bool(S_MAP(rep), "more", more))
        return FERRY_EFIELD;
    *n = subs->via.array.size;
    return FERRY_OK;
}

/* A string field of @p map into @p out (cap bytes with the NUL). */
static bool
s_get_text(const msgpack_object *map, const char *key, char *out, size_t cap)
{
    fy_bytes_t b;
    const msgpack_object *o = fy_envi_field(map, key);
    if (!o || !fy_envi_as_bytes(o, &b) || b.len >= cap)
        return false;
    memcpy(out, b.ptr, b.len);
    out[b.len] = '\0';
    return true;
}

fy_status_t
fy_reply_sub_at(const fy_reply_t *rep, size_t i, fy_sub_listing_t *sub)
{
    const msgpack_object *subs = s_array(rep, "subs");
    memset(sub, 0, sizeof *sub);
    if (!subs || i >= subs->via.array.size || subs->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
        return FERRY_EFIELD;
    const msgpack_object *m = &subs->via.array.ptr[i];
    if (!s_get_text(m, "name", sub->name, sizeof sub->name) ||
        !s_get_text(m, "filter", sub->filter, sizeof sub->filter) ||
        !s_get_text(m, "owner", sub->owner, sizeof sub->owner) ||
        s_get_uint(m, "cursor", &sub->cursor) || s_get_uint(m, "ack_floor", &sub->ack_floor) ||
        s_get_uint(m, "last_seq", &sub->last_seq) ||
        s_get_uint(m, "ack_wait_ms", &sub->ack_wait_ms) ||
        s_get_uint(m, "max_deliver", &sub->max_deliver) ||
        s_get_uint(m, "created", &sub->created_ms) || s_get_uint(m, "consumers", &sub->consumers))
        return FERRY_EFIELD;
    return FERRY_OK;
}

fy_status_t
fy_reply_topic_at(const fy_reply_t *rep, size_t i, fy_topic_info_t *info)
{
    const msgpack_object *topics = s_array(rep, "topics");
    if (!topics || i >= topics->via.array.size ||
        topics->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
        return FERRY_EFIELD;
    return s_info_from(&topics->via.array.ptr[i], info);
}

#define S_GET_FIELD(f) || s_get_uint(S_MAP(rep), #f, &st->f)

fy_status_t
fy_reply_stats(const fy_reply_t *rep, fy_stats_t *st)
{
    memset(st, 0, sizeof *st);
    return (0 S_STATS_FIELDS(S_GET_FIELD)) ? FERRY_EFIELD : FERRY_OK;
}

fy_status_t
fy_reply_get_count(const fy_reply_t *rep, size_t *n)
{
    const msgpack_object *msgs = s_array(rep, "msgs");
    if (!msgs)
        return FERRY_EFIELD;
    *n = msgs->via.array.size;
    return FERRY_OK;
}

static const msgpack_object *
s_get_entry(const fy_reply_t *rep, size_t i)
{
    const msgpack_object *msgs = s_array(rep, "msgs");
    if (!msgs || i >= msgs->via.array.size || msgs->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
        return NULL;
    return &msgs->via.array.ptr[i];
}

fy_status_t
fy_reply_get_msg(const fy_reply_t *rep, size_t i, fy_getmsg_t *out)
{
    memset(out, 0, sizeof *out);
    const msgpack_object *m = s_get_entry(rep, i);
    if (!m || s_get_uint(m, "seq", &out->seq) || s_get_uint(m, "ts", &out->ts_ms))
        return FERRY_EFIELD;
    uint64_t dc = 0;
    if (fy_envi_opt_uint(m, "dc", UINT32_MAX, &dc, NULL))
        return FERRY_EFIELD;
    out->dc = (uint32_t)dc;
    if (fy_envi_opt_uint(m, "kver", UINT64_MAX, &out->kver, NULL))
        return FERRY_EFIELD;
    const msgpack_object *k = fy_envi_field(m, "key"), *id = fy_envi_field(m, "id"),
                         *h = fy_envi_field(m, "hdrs");
    if ((k && !fy_envi_as_bytes(k, &out->key)) || (id && !fy_envi_as_bytes(id, &out->id)))
        return FERRY_EFIELD;
    if (h) {
        if (h->type != MSGPACK_OBJECT_MAP)
            return FERRY_EFIELD;
        out->header_count = h->via.map.size;
    }
    const msgpack_object *d = fy_envi_field(m, "data");
    if (d) {
        if (d->type != MSGPACK_OBJECT_BIN)
            return FERRY_EFIELD;
        out->has_data = true;
        out->data.ptr = (const uint8_t *)d->via.bin.ptr;
        out->data.len = d->via.bin.size;
    }
    return FERRY_OK;
}

fy_status_t
fy_reply_get_header(const fy_reply_t *rep, size_t i, size_t j, fy_bytes_t *name, fy_bytes_t *value)
{
    const msgpack_object *m = s_get_entry(rep, i);
    const msgpack_object *h = m ? fy_envi_field(m, "hdrs") : NULL;
    if (!h || h->type != MSGPACK_OBJECT_MAP || j >= h->via.map.size)
        return FERRY_EFIELD;
    const msgpack_object_kv *kv = &h->via.map.ptr[j];
    return fy_envi_as_bytes(&kv->key, name) && fy_envi_as_bytes(&kv->val, value) ? FERRY_OK
                                                                                 : FERRY_EFIELD;
}

fy_status_t
fy_reply_consumer(const fy_reply_t *rep, uint64_t *consumer)
{
    return s_get_uint(S_MAP(rep), "consumer", consumer);
}

bool
fy_reply_ephemeral(const fy_reply_t *rep)
{
    bool e = false;
    return s_get_bool(S_MAP(rep), "ephemeral", &e) == FERRY_OK && e;
}

fy_status_t
fy_reply_sub(const fy_reply_t *rep, fy_sub_state_t *info, bool *created)
{
    const msgpack_object *map = S_MAP(rep);
    memset(info, 0, sizeof *info);
    uint64_t md;
    if (s_get_uint(map, "cursor", &info->cursor) ||
        s_get_uint(map, "ack_floor", &info->ack_floor) ||
        s_get_uint(map, "ack_wait_ms", &info->ack_wait_ms) || s_get_uint(map, "max_deliver", &md) ||
        md > UINT32_MAX || s_get_uint(map, "last", &info->last_seq) ||
        s_get_bool(map, "created_now", created))
        return FERRY_EFIELD;
    info->max_deliver = (uint32_t)md;
    return FERRY_OK;
}

/* ---- cluster ---------------------------------------------------------------- */

#define S_CLUSTER_FIELDS(X) X(id) X(term) X(commit) X(applied) X(last) X(elections) X(snapshots)
#define S_CLUSTER_PACK(f)   | fy_envi_kv_uint(&self->pk, #f, ci->f)

fy_status_t
fy_encode_cluster_reply(fy_encoder_t *self, uint64_t cid, const fy_cluster_info_t *ci)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 1 S_CLUSTER_FIELDS(S_COUNT_FIELD), "ok", cid)
                 S_CLUSTER_FIELDS(S_CLUSTER_PACK) |
             fy_envi_str(&self->pk, "nodes") | msgpack_pack_array(&self->pk, ci->nnodes);
    for (size_t i = 0; i < ci->nnodes; i++) {
        const fy_cluster_node_t *n = &ci->nodes[i];
        rc |= msgpack_pack_map(&self->pk, 5) | fy_envi_kv_uint(&self->pk, "id", n->id) |
              fy_envi_str(&self->pk, "voter") |
              (n->voter ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk)) |
              fy_envi_kv_str(&self->pk, "address", n->address) |
              fy_envi_kv_uint(&self->pk, "match", n->match) | fy_envi_str(&self->pk, "up") |
              (n->up ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    }
    return fy_envi_done(self, start, rc);
}

#define S_CLUSTER_GET(f) || s_get_uint(S_MAP(rep), #f, &ci->f)

fy_status_t
fy_reply_cluster(const fy_reply_t *rep, fy_cluster_info_t *ci)
{
    memset(ci, 0, sizeof *ci);
    if (0 S_CLUSTER_FIELDS(S_CLUSTER_GET))
        return FERRY_EFIELD;
    const msgpack_object *nodes = s_array(rep, "nodes");
    if (!nodes || nodes->via.array.size > FY_CLUSTER_NODES_MAX)
        return FERRY_EFIELD;
    for (size_t i = 0; i < nodes->via.array.size; i++) {
        const msgpack_object *m = &nodes->via.array.ptr[i];
        fy_cluster_node_t *n = &ci->nodes[i];
        fy_bytes_t addr;
        const msgpack_object *a =
            m->type == MSGPACK_OBJECT_MAP ? fy_envi_field(m, "address") : NULL;
        if (!a || !fy_envi_as_bytes(a, &addr) || addr.len >= sizeof n->address ||
            s_get_uint(m, "id", &n->id) || s_get_uint(m, "match", &n->match) ||
            s_get_bool(m, "up", &n->up) || s_get_bool(m, "voter", &n->voter))
            return FERRY_EFIELD;
        memcpy(n->address, addr.ptr, addr.len);
        n->address[addr.len] = '\0';
    }
    ci->nnodes = nodes->via.array.size;
    return FERRY_OK;
}
