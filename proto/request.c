/* SPDX-License-Identifier: MIT */
/*
 * request.c - Ferry requests: strict decoding (the broker) and encoding
 * (libferry), plus the canonical header merge used for dead letters.
 */
#include "envelope_int.h"
#include "subject.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An optional unsigned field that is there or not: *has says which. */
static fy_status_t
s_opt_uint_has(const msgpack_object *map, const char *key, uint64_t max, bool *has, uint64_t *out,
               fy_err_t *err)
{
    *has = fy_envi_field(map, key) != NULL;
    return fy_envi_opt_uint(map, key, max, out, err);
}

/* A request's reply_to header must name a topic a reply can be published to. */
static fy_status_t
s_check_reply_to(const msgpack_object *h, fy_err_t *err)
{
    fy_bytes_t want = fy_bytes_str(FY_HDR_REPLY_TO);
    for (uint32_t i = 0; i < h->via.map.size; i++) {
        const msgpack_object_kv *kv = &h->via.map.ptr[i];
        fy_bytes_t name, value;
        if (fy_envi_as_bytes(&kv->key, &name) && fy_bytes_eq(name, want) &&
            (!fy_envi_as_bytes(&kv->val, &value) || !fy_name_valid(value)))
            return fy_err_set(err, FERRY_EINVALID_NAME,
                              "header '" FY_HDR_REPLY_TO "' must be a valid topic name");
    }
    return FERRY_OK;
}

static fy_status_t
s_decode_meta(fy_decoder_t *self, const msgpack_object *m, fy_pubmeta_t *meta, size_t *hdr_off,
              fy_err_t *err)
{
    fy_status_t st;
    memset(meta, 0, sizeof *meta);
    if ((st = fy_envi_opt_ident(m, "key", &meta->key, err)) ||
        (st = fy_envi_opt_ident(m, "id", &meta->id, err)) ||
        (st = s_opt_uint_has(m, "expect_last", UINT64_MAX, &meta->has_expect_last,
                             &meta->expect_last, err)) ||
        (st = s_opt_uint_has(m, "expect_kver", UINT64_MAX, &meta->has_expect_kver,
                             &meta->expect_kver, err)))
        return st;
    if (meta->has_expect_kver && meta->key.len == 0)
        return fy_err_set(err, FERRY_EFIELD, "field 'expect_kver' needs a 'key'");
    const msgpack_object *nb = fy_envi_field(m, "not_before"), *dl = fy_envi_field(m, "delay_ms");
    uint64_t v;
    if (nb && !fy_envi_as_uint(nb, &meta->not_before_ms))
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'not_before' must be a time in ms since the Unix epoch");
    if (dl && (!fy_envi_as_uint(dl, &v) || v > FY_DELAY_MAX))
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'delay_ms' must be a delay of 0 to %llu ms (ten years)",
                          FY_DELAY_MAX);
    if (dl)
        meta->delay_ms = v;
    if (nb && dl)
        return fy_err_set(err, FERRY_EFIELD, "give 'not_before' or 'delay_ms', not both");
    const msgpack_object *h = fy_envi_field(m, "hdrs");
    *hdr_off = self->hdrs.size;
    if (h && h->type != MSGPACK_OBJECT_NIL) {
        if ((st = fy_envi_pack_headers(h, &self->hdrs, err)) || (st = s_check_reply_to(h, err)))
            return st;
        meta->hdrs.len = self->hdrs.size - *hdr_off;
    }
    return FERRY_OK;
}

static fy_status_t
s_decode_publish(fy_decoder_t *self, const msgpack_object *map, fy_request_t *req,
                 size_t payload_frames, fy_err_t *err)
{
    fy_status_t st = fy_envi_req_name(map, "topic", &req->name, err);
    if (st == FERRY_OK)
        st = fy_envi_opt_uint(map, "fence", UINT64_MAX, &req->fence, err);
    if (st)
        return st;
    size_t offs[FY_BATCH_MAX];
    self->hdrs.size = 0;
    if (req->op == FY_OP_PUBLISH) {
        const msgpack_object *d = fy_envi_field(map, "data");
        fy_pubmeta_t *meta = &self->metas[0];
        if (d && d->type != MSGPACK_OBJECT_BIN)
            return fy_err_set(err, FERRY_EFIELD, "field 'data' must be bin");
        if (payload_frames != (d ? 0u : 1u))
            return fy_err_set(err, FERRY_EFRAMES,
                              "publish takes one payload frame, or none with field 'data'");
        if ((st = s_decode_meta(self, map, meta, &offs[0], err)))
            return st;
        meta->has_data = d != NULL;
        meta->data.ptr = d ? (const uint8_t *)d->via.bin.ptr : NULL;
        meta->data.len = d ? d->via.bin.size : 0;
        req->msg_count = 1;
    } else {
        const msgpack_object *arr = fy_envi_field(map, "msgs");
        if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size == 0)
            return fy_err_set(err, FERRY_EFIELD, "field 'msgs' must be a non-empty array");
        if (arr->via.array.size > FY_BATCH_MAX)
            return fy_err_set(err, FERRY_ETOO_MANY, "at most %d messages per batch", FY_BATCH_MAX);
        if (payload_frames != arr->via.array.size)
            return fy_err_set(err, FERRY_EFRAMES,
                              "publish_batch takes one payload frame per message");
        for (uint32_t i = 0; i < arr->via.array.size; i++) {
            const msgpack_object *m = &arr->via.array.ptr[i];
            if (m->type != MSGPACK_OBJECT_MAP)
                return fy_err_set(err, FERRY_EFIELD, "each entry of 'msgs' must be a map");
            if ((st = s_decode_meta(self, m, &self->metas[i], &offs[i], err)))
                return st;
            self->metas[i].has_data = false;
        }
        req->msg_count = arr->via.array.size;
    }
    /* The header buffer may have moved while growing: point into it now. */
    for (size_t i = 0; i < req->msg_count; i++)
        if (self->metas[i].hdrs.len)
            self->metas[i].hdrs.ptr = (const uint8_t *)self->hdrs.data + offs[i];
    req->msgs = self->metas;
    return FERRY_OK;
}

/* Optional subscription name: "" (a queue's) or a valid name. */
static fy_status_t
s_sub_name(const msgpack_object *map, fy_bytes_t *out, fy_err_t *err)
{
    const msgpack_object *o = fy_envi_field(map, "sub");
    out->ptr = NULL;
    out->len = 0;
    if (!o)
        return FERRY_OK;
    if (!fy_envi_as_bytes(o, out))
        return fy_err_set(err, FERRY_EFIELD, "field 'sub' must be a string");
    if (out->len && !fy_name_valid(*out))
        return fy_err_set(err, FERRY_EINVALID_NAME, "field 'sub' is not a valid name");
    return FERRY_OK;
}

static fy_status_t
s_opt_bool(const msgpack_object *map, const char *key, bool *out, fy_err_t *err)
{
    const msgpack_object *o = fy_envi_field(map, key);
    if (!o)
        return FERRY_OK;
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be a boolean", key);
    *out = o->via.boolean;
    return FERRY_OK;
}

static fy_status_t
s_req_uint(const msgpack_object *map, const char *key, uint64_t min, uint64_t max, uint64_t *out,
           fy_err_t *err)
{
    if (!fy_envi_field(map, key))
        return fy_err_set(err, FERRY_EFIELD, "field '%s' is required", key);
    uint64_t v = min;
    fy_status_t st = fy_envi_opt_uint(map, key, max, &v, err);
    if (st == FERRY_OK && v < min)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be %llu-%llu", key,
                          (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return st;
}

static fy_status_t
s_decode_sub_declare(const msgpack_object *map, fy_request_t *req, fy_err_t *err)
{
    fy_status_t st;
    if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
        (st = s_sub_name(map, &req->sub, err)) ||
        (st = fy_envi_opt_uint(map, "ack_wait_ms", 24ull * 3600 * 1000, &req->ack_wait_ms, err)) ||
        (st = fy_envi_opt_uint(map, "max_deliver", 1000, &req->max_deliver, err)))
        return st;
    const msgpack_object *start = fy_envi_field(map, "start");
    fy_bytes_t word;
    req->start = FY_START_FIRST;
    if (!start)
        return FERRY_OK;
    if (fy_envi_as_uint(start, &req->seq) && req->seq > 0)
        req->start = FY_START_SEQ;
    else if (fy_envi_as_bytes(start, &word) && fy_bytes_eq(word, fy_bytes_str("first")))
        req->start = FY_START_FIRST;
    else if (fy_envi_as_bytes(start, &word) && fy_bytes_eq(word, fy_bytes_str("new")))
        req->start = FY_START_NEW;
    else
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'start' must be \"first\", \"new\" or a sequence >= 1");
    return FERRY_OK;
}

/* start_time_ms, when given, overrides start: FY_START_TIME, the time in req->seq.
 * filter: a subject pattern over message keys. */
static fy_status_t
s_decode_start_time(const msgpack_object *map, fy_request_t *req, fy_err_t *err)
{
    uint64_t t = 0;
    fy_status_t st = fy_envi_opt_uint(map, "start_time_ms", UINT64_MAX, &t, err);
    if (st == FERRY_OK && t) {
        req->start = FY_START_TIME;
        req->seq = t;
    }
    const msgpack_object *f = fy_envi_field(map, "filter");
    if (st == FERRY_OK && f &&
        (!fy_envi_as_bytes(f, &req->filter) || !fy_subject_pattern_valid(req->filter)))
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'filter' must be a subject pattern: dot-separated tokens of "
                          "A-Z a-z 0-9 _ -, '*' for one token, '>' (last) for the rest");
    return st;
}

static fy_status_t
s_decode_ack(fy_decoder_t *self, const msgpack_object *map, fy_request_t *req, fy_err_t *err)
{
    fy_status_t st;
    if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
        (st = s_sub_name(map, &req->sub, err)) ||
        (st = s_opt_bool(map, "noreply", &req->noreply, err)))
        return st;
    if (req->op == FY_OP_NACK || req->op == FY_OP_TERM || req->op == FY_OP_PROGRESS) {
        if ((st = s_req_uint(map, "seq", 1, UINT64_MAX, &self->seqs[0], err)) ||
            (st = fy_envi_opt_uint(map, "delay_ms", 24ull * 3600 * 1000, &req->delay_ms, err)))
            return st;
        const msgpack_object *e = fy_envi_field(map, "error");
        if (e && (!fy_envi_as_bytes(e, &req->error) || req->error.len > FY_ERROR_TEXT_MAX ||
                  !fy_text_valid(req->error)))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'error' must be at most %d bytes of UTF-8 without control "
                              "characters",
                              FY_ERROR_TEXT_MAX);
        req->seqs = self->seqs;
        req->seq_count = 1;
        return FERRY_OK;
    }
    const msgpack_object *arr = fy_envi_field(map, "seqs");
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size == 0)
        return fy_err_set(err, FERRY_EFIELD, "field 'seqs' must be a non-empty array");
    if (arr->via.array.size > FY_FETCH_MAX)
        return fy_err_set(err, FERRY_ETOO_MANY, "at most %d sequences per ack", FY_FETCH_MAX);
    for (uint32_t i = 0; i < arr->via.array.size; i++)
        if (!fy_envi_as_uint(&arr->via.array.ptr[i], &self->seqs[i]) || self->seqs[i] == 0)
            return fy_err_set(err, FERRY_EFIELD, "field 'seqs' must hold sequences >= 1");
    req->seqs = self->seqs;
    req->seq_count = arr->via.array.size;
    return FERRY_OK;
}

fy_status_t
fy_request_decode(fy_decoder_t *self, const void *buf, size_t len, size_t payload_frames,
                  fy_request_t *req, fy_err_t *err)
{
    memset(req, 0, sizeof *req);
    req->op = FY_OP_COUNT_;
    const msgpack_object *map;
    fy_status_t st = fy_envi_unpack_map(self, buf, len, &map, err);
    if (st)
        return st;
    const msgpack_object *cid = fy_envi_field(map, "cid");
    if (!cid || !fy_envi_as_uint(cid, &req->cid))
        return fy_err_set(err, FERRY_EFIELD, "field 'cid' (unsigned integer) is required");
    if ((st = fy_envi_check_version(map, err)))
        return st;
    const msgpack_object *op = fy_envi_field(map, "op");
    fy_bytes_t opname;
    if (!op || !fy_envi_as_bytes(op, &opname))
        return fy_err_set(err, FERRY_EFIELD, "field 'op' (string) is required");
    if (!fy_op_lookup(opname, &req->op))
        return fy_err_set(err, FERRY_EUNKNOWN_OP, "unknown operation");
    if (!fy_op_is(req->op, FY_OPF_PAYLOADS) && payload_frames != 0)
        return fy_err_set(err, FERRY_EFRAMES, "%s takes no payload frames", fy_op_name(req->op));

    switch (req->op) {
    case FY_OP_HELLO: {
        const msgpack_object *c = fy_envi_field(map, "client");
        if (c && (!fy_envi_as_bytes(c, &req->client) || req->client.len > FY_NAME_MAX ||
                  !fy_text_valid(req->client)))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'client' must be at most %d bytes of UTF-8 without control "
                              "characters",
                              FY_NAME_MAX);
        return FERRY_OK;
    }
    case FY_OP_PING:
    case FY_OP_STATS:
    case FY_OP_CLUSTER:
        return FERRY_OK;
    case FY_OP_NODE_ADD:
    case FY_OP_NODE_REMOVE: {
        /* Checked as admin of the pseudo-topic _cluster (docs/cluster.md). */
        req->name = (fy_bytes_t){(const uint8_t *)FY_CLUSTER_TOPIC, sizeof FY_CLUSTER_TOPIC - 1};
        if ((st = fy_envi_opt_uint(map, "node", UINT64_MAX, &req->seq, err)))
            return st;
        if (req->seq == 0)
            return fy_err_set(err, FERRY_EFIELD, "field 'node' must be a node id above 0");
        if (req->op == FY_OP_NODE_REMOVE)
            return FERRY_OK;
        const msgpack_object *a = fy_envi_field(map, "address");
        if (!a || !fy_envi_as_bytes(a, &req->key) || req->key.len == 0 || req->key.len > 63)
            return fy_err_set(err, FERRY_EFIELD, "field 'address' must be HOST:PORT");
        return FERRY_OK;
    }
    case FY_OP_BACKUP: {
        /* Checked as admin of the pseudo-topic _backup (docs/operations.md). */
        req->name = (fy_bytes_t){(const uint8_t *)FY_BACKUP_TOPIC, sizeof FY_BACKUP_TOPIC - 1};
        const msgpack_object *p = fy_envi_field(map, "path");
        if (!p || !fy_envi_as_bytes(p, &req->key) || req->key.len < 2 || req->key.len > 1000 ||
            req->key.ptr[0] != '/' || memchr(req->key.ptr, '\0', req->key.len))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'path' must be an absolute path on the broker's host (at "
                              "most 1000 bytes)");
        return FERRY_OK;
    }
    case FY_OP_DECLARE: {
        if ((st = fy_envi_req_name(map, "name", &req->name, err)))
            return st;
        const msgpack_object *k = fy_envi_field(map, "kind");
        fy_bytes_t kind;
        if (!k || !fy_envi_as_bytes(k, &kind))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'kind' (\"topic\" or \"queue\") is required");
        if (fy_bytes_eq(kind, fy_bytes_str("topic")))
            req->kind = FY_KIND_TOPIC;
        else if (fy_bytes_eq(kind, fy_bytes_str("queue")))
            req->kind = FY_KIND_QUEUE;
        else
            return fy_err_set(err, FERRY_EFIELD, "field 'kind' must be \"topic\" or \"queue\"");
        /* One year at most: a window is a time, not a retention policy. */
        fy_topic_config_t *c = &req->topic_cfg;
        if ((st = fy_envi_opt_uint(map, "dedupe_ms", 365ull * 24 * 3600 * 1000,
                                   &c->dedupe_window_ms, err)) ||
            (st = fy_envi_opt_uint(map, "max_msgs", UINT64_MAX, &c->max_msgs, err)) ||
            (st = fy_envi_opt_uint(map, "max_bytes", UINT64_MAX, &c->max_bytes, err)) ||
            (st = fy_envi_opt_uint(map, "max_age_ms", UINT64_MAX, &c->max_age_ms, err)))
            return st;
        const msgpack_object *d = fy_envi_field(map, "discard");
        fy_bytes_t word = {0};
        if (d && !(fy_envi_as_bytes(d, &word) && (fy_bytes_eq(word, fy_bytes_str("old")) ||
                                                  fy_bytes_eq(word, fy_bytes_str("new")))))
            return fy_err_set(err, FERRY_EFIELD, "field 'discard' must be \"old\" or \"new\"");
        c->discard_new = d && fy_bytes_eq(word, fy_bytes_str("new"));
        return s_opt_bool(map, "interest", &c->interest, err);
    }
    case FY_OP_DELETE:
    case FY_OP_INFO:
        return fy_envi_req_name(map, "name", &req->name, err);
    case FY_OP_PUBLISH:
    case FY_OP_PUBLISH_BATCH:
        return s_decode_publish(self, map, req, payload_frames, err);
    case FY_OP_SUB_DECLARE:
        if ((st = s_decode_sub_declare(map, req, err)))
            return st;
        return s_decode_start_time(map, req, err);
    case FY_OP_EDIT: {
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)))
            return st;
        if (fy_envi_field(map, "interest") || fy_envi_field(map, "kind"))
            return fy_err_set(err, FERRY_EFIELD,
                              "interest and kind cannot change: declare another topic");
        static const struct {
            const char *field;
            unsigned bit;
        } fields[] = {{"dedupe_ms", FY_EDIT_DEDUPE},
                      {"max_msgs", FY_EDIT_MAX_MSGS},
                      {"max_bytes", FY_EDIT_MAX_BYTES},
                      {"max_age_ms", FY_EDIT_MAX_AGE}};
        fy_topic_config_t *c = &req->topic_cfg;
        uint64_t *dst[] = {&c->dedupe_window_ms, &c->max_msgs, &c->max_bytes, &c->max_age_ms};
        for (size_t i = 0; i < 4; i++) {
            if (!fy_envi_field(map, fields[i].field))
                continue;
            if ((st = fy_envi_opt_uint(map, fields[i].field,
                                       i == 0 ? 365ull * 24 * 3600 * 1000 : UINT64_MAX, dst[i],
                                       err)))
                return st;
            req->edit |= fields[i].bit;
        }
        const msgpack_object *d = fy_envi_field(map, "discard");
        fy_bytes_t word = {0};
        if (d && !(fy_envi_as_bytes(d, &word) && (fy_bytes_eq(word, fy_bytes_str("old")) ||
                                                  fy_bytes_eq(word, fy_bytes_str("new")))))
            return fy_err_set(err, FERRY_EFIELD, "field 'discard' must be \"old\" or \"new\"");
        if (d) {
            c->discard_new = fy_bytes_eq(word, fy_bytes_str("new"));
            req->edit |= FY_EDIT_DISCARD;
        }
        if (!req->edit)
            return fy_err_set(err, FERRY_EFIELD,
                              "nothing to change: dedupe_ms, max_msgs, max_bytes, max_age_ms or "
                              "discard");
        return FERRY_OK;
    }
    case FY_OP_PURGE:
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
            (st = fy_envi_opt_uint(map, "keep", UINT64_MAX, &req->keep, err)) ||
            (st = fy_envi_opt_uint(map, "below", UINT64_MAX, &req->below, err)))
            return st;
        if (req->keep && req->below)
            return fy_err_set(err, FERRY_EFIELD, "fields 'keep' and 'below': one or the other");
        return FERRY_OK;
    case FY_OP_SUB_INFO:
    case FY_OP_SUB_DELETE:
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)))
            return st;
        return s_sub_name(map, &req->sub, err);
    case FY_OP_SEEK:
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
            (st = s_sub_name(map, &req->sub, err)) ||
            (st = fy_envi_opt_uint(map, "seq", UINT64_MAX, &req->seq, err)) ||
            (st = fy_envi_opt_uint(map, "time_ms", UINT64_MAX, &req->delay_ms, err)))
            return st;
        if (!req->seq == !req->delay_ms)
            return fy_err_set(err, FERRY_EFIELD,
                              "fields 'seq' and 'time_ms': one of them, above 0");
        return FERRY_OK;
    case FY_OP_SUBSCRIBE: {
        uint64_t credit, hb = 0;
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
            (st = s_sub_name(map, &req->sub, err)) ||
            (st = s_req_uint(map, "credit", 1, FY_CREDIT_MAX, &credit, err)) ||
            (fy_envi_field(map, "heartbeat_ms") &&
             (st = s_req_uint(map, "heartbeat_ms", FY_HEARTBEAT_MIN_MS, FY_HEARTBEAT_MAX_MS, &hb,
                              err))))
            return st;
        req->credit = (uint32_t)credit;
        req->heartbeat_ms = (uint32_t)hb;
        return FERRY_OK;
    }
    case FY_OP_CREDIT:
    case FY_OP_UNSUBSCRIBE: {
        uint64_t credit = 0;
        if ((st = s_req_uint(map, "consumer", 1, UINT64_MAX, &req->consumer, err)) ||
            (st = s_opt_bool(map, "noreply", &req->noreply, err)))
            return st;
        if (req->op == FY_OP_CREDIT &&
            (st = s_req_uint(map, "credit", 1, FY_CREDIT_MAX, &credit, err)))
            return st;
        req->credit = (uint32_t)credit;
        return FERRY_OK;
    }
    case FY_OP_FETCH: {
        uint64_t max;
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)) ||
            (st = s_sub_name(map, &req->sub, err)) ||
            (st = s_req_uint(map, "max", 1, FY_FETCH_MAX, &max, err)) ||
            (st = fy_envi_opt_uint(map, "wait_ms", FY_FETCH_WAIT_MAX, &req->wait_ms, err)))
            return st;
        uint64_t max_bytes = FY_REPLY_BYTES_MAX;
        if (fy_envi_field(map, "max_bytes") &&
            (st = s_req_uint(map, "max_bytes", 1, FY_REPLY_BYTES_MAX, &max_bytes, err)))
            return st;
        req->limit = (uint32_t)max;
        req->max_bytes = (uint32_t)max_bytes;
        return FERRY_OK;
    }
    case FY_OP_ACK:
    case FY_OP_NACK:
    case FY_OP_TERM:
    case FY_OP_PROGRESS:
        return s_decode_ack(self, map, req, err);
    case FY_OP_GET:
    case FY_OP_READ: {
        if ((st = fy_envi_req_name(map, "topic", &req->name, err)))
            return st;
        if (req->op == FY_OP_READ) {
            const msgpack_object *k = fy_envi_field(map, "key");
            if (!k)
                return fy_err_set(err, FERRY_EFIELD, "field 'key' is required");
            if ((st = fy_envi_opt_ident(map, "key", &req->key, err)))
                return st;
            if (req->key.len == 0)
                return fy_err_set(err, FERRY_EFIELD, "field 'key' must not be empty");
        }
        req->seq = 1;
        uint64_t limit = 100;
        if ((st = fy_envi_opt_uint(map, req->op == FY_OP_READ ? "from" : "seq", UINT64_MAX,
                                   &req->seq, err)) ||
            (st = fy_envi_opt_uint(map, "limit", FY_BATCH_MAX, &limit, err)))
            return st;
        if (limit == 0)
            return fy_err_set(err, FERRY_EFIELD, "field 'limit' must be 1-%d", FY_BATCH_MAX);
        req->limit = (uint32_t)limit;
        return FERRY_OK;
    }
    case FY_OP_TOPICS:
    case FY_OP_SUBS: {
        if (req->op == FY_OP_SUBS && (st = fy_envi_req_name(map, "topic", &req->name, err)))
            return st;
        fy_bytes_t *after = req->op == FY_OP_SUBS ? &req->sub : &req->name;
        const msgpack_object *a = fy_envi_field(map, "after");
        if (a && (!fy_envi_as_bytes(a, after) || after->len > FY_NAME_MAX))
            return fy_err_set(err, FERRY_EFIELD, "field 'after' must be a name (or \"\")");
        uint64_t limit = 100;
        if ((st = fy_envi_opt_uint(map, "limit", FY_BATCH_MAX, &limit, err)))
            return st;
        if (limit == 0)
            return fy_err_set(err, FERRY_EFIELD, "field 'limit' must be 1-%d", FY_BATCH_MAX);
        req->limit = (uint32_t)limit;
        return FERRY_OK;
    }
    case FY_OP_COUNT_:
        break;
    }
    return fy_err_set(err, FERRY_EUNKNOWN_OP, "unknown operation");
}

fy_status_t
fy_encode_hello(fy_encoder_t *self, uint64_t cid, const char *client)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 1, "hello", cid) |
             fy_envi_kv_str(&self->pk, "client", client ? client : "");
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_simple(fy_encoder_t *self, uint64_t cid, fy_op_t op, const char *name)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, name ? 1 : 0, fy_op_name(op), cid);
    if (name)
        rc |= fy_envi_kv_str(&self->pk, "name", name);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_declare(fy_encoder_t *self, uint64_t cid, fy_kind_t kind, const char *name,
                  const fy_topic_config_t *cfg)
{
    static const fy_topic_config_t none;
    const fy_topic_config_t *c = cfg ? cfg : &none;
    size_t start = self->buf.size;
    size_t n = 4 + (c->dedupe_window_ms != 0) + (c->max_msgs != 0) + (c->max_bytes != 0) +
               (c->max_age_ms != 0);
    int rc = fy_envi_head(&self->pk, n, "declare", cid) | fy_envi_kv_str(&self->pk, "name", name) |
             fy_envi_kv_str(&self->pk, "kind", kind == FY_KIND_QUEUE ? "queue" : "topic") |
             fy_envi_kv_str(&self->pk, "discard", c->discard_new ? "new" : "old") |
             fy_envi_str(&self->pk, "interest") |
             (c->interest ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    if (c->dedupe_window_ms)
        rc |= fy_envi_kv_uint(&self->pk, "dedupe_ms", c->dedupe_window_ms);
    if (c->max_msgs)
        rc |= fy_envi_kv_uint(&self->pk, "max_msgs", c->max_msgs);
    if (c->max_bytes)
        rc |= fy_envi_kv_uint(&self->pk, "max_bytes", c->max_bytes);
    if (c->max_age_ms)
        rc |= fy_envi_kv_uint(&self->pk, "max_age_ms", c->max_age_ms);
    return fy_envi_done(self, start, rc);
}

static int
s_pack_meta_fields(msgpack_packer *pk, const fy_outmsg_t *m)
{
    int rc = 0;
    if (m->key)
        rc |= fy_envi_kv_str(pk, "key", m->key);
    if (m->id)
        rc |= fy_envi_kv_str(pk, "id", m->id);
    if (m->expect & FY_EXPECT_LAST_SEQ)
        rc |= fy_envi_kv_uint(pk, "expect_last", m->expect_last_seq);
    if (m->expect & FY_EXPECT_KEY_VERSION)
        rc |= fy_envi_kv_uint(pk, "expect_kver", m->expect_key_version);
    if (m->not_before_ms)
        rc |= fy_envi_kv_uint(pk, "not_before", m->not_before_ms);
    else if (m->delay_ms)
        rc |= fy_envi_kv_uint(pk, "delay_ms", m->delay_ms);
    if (m->header_count) {
        rc |= fy_envi_str(pk, "hdrs") | msgpack_pack_map(pk, m->header_count);
        for (size_t i = 0; i < m->header_count; i++)
            rc |= fy_envi_str(pk, m->headers[i].name ? m->headers[i].name : "") |
                  fy_envi_str(pk, m->headers[i].value ? m->headers[i].value : "");
    }
    return rc;
}

static size_t
s_meta_nfields(const fy_outmsg_t *m)
{
    return (m->key != NULL) + (m->id != NULL) + (m->header_count != 0) +
           ((m->expect & FY_EXPECT_LAST_SEQ) != 0) + ((m->expect & FY_EXPECT_KEY_VERSION) != 0) +
           (m->not_before_ms != 0 || m->delay_ms != 0);
}

fy_status_t
fy_encode_publish(fy_encoder_t *self, uint64_t cid, const char *topic, const fy_outmsg_t *msg,
                  bool inline_data, uint64_t fence)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 1 + s_meta_nfields(msg) + inline_data + (fence != 0),
                          "publish", cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) | s_pack_meta_fields(&self->pk, msg);
    if (fence)
        rc |= fy_envi_kv_uint(&self->pk, "fence", fence);
    if (inline_data)
        rc |= fy_envi_str(&self->pk, "data") | msgpack_pack_bin(&self->pk, msg->len) |
              msgpack_pack_bin_body(&self->pk, msg->data ? msg->data : "", msg->len);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_publish_batch(fy_encoder_t *self, uint64_t cid, const char *topic,
                        const fy_outmsg_t *msgs, size_t n, uint64_t fence)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2 + (fence != 0), "publish_batch", cid) |
             (fence ? fy_envi_kv_uint(&self->pk, "fence", fence) : 0) |
             fy_envi_kv_str(&self->pk, "topic", topic) | fy_envi_str(&self->pk, "msgs") |
             msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_map(&self->pk, s_meta_nfields(&msgs[i])) |
              s_pack_meta_fields(&self->pk, &msgs[i]);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_get(fy_encoder_t *self, uint64_t cid, const char *topic, uint64_t seq, uint32_t limit)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3, "get", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_uint(&self->pk, "seq", seq) | fy_envi_kv_uint(&self->pk, "limit", limit);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_topics(fy_encoder_t *self, uint64_t cid, const char *after, uint32_t limit)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, "topics", cid) |
             fy_envi_kv_str(&self->pk, "after", after ? after : "") |
             fy_envi_kv_uint(&self->pk, "limit", limit);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_edit(fy_encoder_t *self, uint64_t cid, const char *topic, unsigned set,
               const fy_topic_config_t *cfg)
{
    size_t start = self->buf.size;
    size_t n = 1 + !!(set & FY_EDIT_DEDUPE) + !!(set & FY_EDIT_MAX_MSGS) +
               !!(set & FY_EDIT_MAX_BYTES) + !!(set & FY_EDIT_MAX_AGE) + !!(set & FY_EDIT_DISCARD);
    int rc = fy_envi_head(&self->pk, n, "edit", cid) | fy_envi_kv_str(&self->pk, "topic", topic);
    if (set & FY_EDIT_DEDUPE)
        rc |= fy_envi_kv_uint(&self->pk, "dedupe_ms", cfg->dedupe_window_ms);
    if (set & FY_EDIT_MAX_MSGS)
        rc |= fy_envi_kv_uint(&self->pk, "max_msgs", cfg->max_msgs);
    if (set & FY_EDIT_MAX_BYTES)
        rc |= fy_envi_kv_uint(&self->pk, "max_bytes", cfg->max_bytes);
    if (set & FY_EDIT_MAX_AGE)
        rc |= fy_envi_kv_uint(&self->pk, "max_age_ms", cfg->max_age_ms);
    if (set & FY_EDIT_DISCARD)
        rc |= fy_envi_kv_str(&self->pk, "discard", cfg->discard_new ? "new" : "old");
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_purge(fy_encoder_t *self, uint64_t cid, const char *topic, uint64_t keep, uint64_t below)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3, "purge", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_uint(&self->pk, "keep", keep) | fy_envi_kv_uint(&self->pk, "below", below);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_subs(fy_encoder_t *self, uint64_t cid, const char *topic, const char *after,
               uint32_t limit)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3, "subs", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "after", after ? after : "") |
             fy_envi_kv_uint(&self->pk, "limit", limit);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_read(fy_encoder_t *self, uint64_t cid, const char *topic, const char *key, uint64_t from,
               uint32_t limit)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 4, "read", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "key", key) | fy_envi_kv_uint(&self->pk, "from", from) |
             fy_envi_kv_uint(&self->pk, "limit", limit);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_sub_declare(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                      const fy_sub_request_t *sr)
{
    size_t start = self->buf.size;
    size_t n = 3 + (sr->ack_wait_ms != 0) + (sr->max_deliver != 0) + (sr->start_time_ms != 0) +
               (sr->filter != NULL);
    int rc = fy_envi_head(&self->pk, n, "sub_declare", cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") | fy_envi_str(&self->pk, "start");
    if (sr->start == FY_START_SEQ)
        rc |= msgpack_pack_uint64(&self->pk, sr->start_seq);
    else
        rc |= fy_envi_str(&self->pk, sr->start == FY_START_NEW ? "new" : "first");
    if (sr->ack_wait_ms)
        rc |= fy_envi_kv_uint(&self->pk, "ack_wait_ms", sr->ack_wait_ms);
    if (sr->max_deliver)
        rc |= fy_envi_kv_uint(&self->pk, "max_deliver", sr->max_deliver);
    if (sr->start_time_ms)
        rc |= fy_envi_kv_uint(&self->pk, "start_time_ms", sr->start_time_ms);
    if (sr->filter)
        rc |= fy_envi_kv_str(&self->pk, "filter", sr->filter);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_sub_info(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub)
{
    return fy_encode_sub_op(self, cid, FY_OP_SUB_INFO, topic, sub);
}

fy_status_t
fy_encode_sub_op(fy_encoder_t *self, uint64_t cid, fy_op_t op, const char *topic, const char *sub)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 2, fy_op_name(op), cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "");
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_subscribe(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                    uint32_t credit, uint32_t heartbeat_ms)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, heartbeat_ms ? 4 : 3, "subscribe", cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") |
             fy_envi_kv_uint(&self->pk, "credit", credit);
    if (heartbeat_ms)
        rc |= fy_envi_kv_uint(&self->pk, "heartbeat_ms", heartbeat_ms);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_consumer_op(fy_encoder_t *self, uint64_t cid, fy_op_t op, uint64_t consumer,
                      uint32_t credit)
{
    size_t start = self->buf.size;
    bool is_credit = op == FY_OP_CREDIT;
    int rc = fy_envi_head(&self->pk, is_credit ? 3 : 1, fy_op_name(op), cid) |
             fy_envi_kv_uint(&self->pk, "consumer", consumer);
    if (is_credit)
        rc |= fy_envi_kv_uint(&self->pk, "credit", credit) | fy_envi_str(&self->pk, "noreply") |
              msgpack_pack_true(&self->pk);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_fetch(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint32_t max,
                uint32_t max_bytes, uint64_t wait_ms)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, max_bytes ? 5 : 4, "fetch", cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") |
             fy_envi_kv_uint(&self->pk, "max", max) |
             fy_envi_kv_uint(&self->pk, "wait_ms", wait_ms);
    if (max_bytes)
        rc |= fy_envi_kv_uint(&self->pk, "max_bytes", max_bytes);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_ack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
              const uint64_t *seqs, size_t n, bool noreply)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 4, "ack", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") | fy_envi_str(&self->pk, "noreply") |
             (noreply ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk)) |
             fy_envi_str(&self->pk, "seqs") | msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint64(&self->pk, seqs[i]);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_nack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint64_t seq,
               uint64_t delay_ms, bool noreply)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 5, "nack", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") |
             fy_envi_kv_uint(&self->pk, "seq", seq) |
             fy_envi_kv_uint(&self->pk, "delay_ms", delay_ms) | fy_envi_str(&self->pk, "noreply") |
             (noreply ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_term(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint64_t seq,
               const char *error)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, error ? 4 : 3, "term", cid) |
             fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") |
             fy_envi_kv_uint(&self->pk, "seq", seq);
    if (error)
        rc |= fy_envi_kv_str(&self->pk, "error", error);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_progress(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                   uint64_t seq)
{
    size_t start = self->buf.size;
    int rc =
        fy_envi_head(&self->pk, 3, "progress", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
        fy_envi_kv_str(&self->pk, "sub", sub ? sub : "") | fy_envi_kv_uint(&self->pk, "seq", seq);
    return fy_envi_done(self, start, rc);
}

/* Does header entry `kv` have one of the `n` extra names? */
static bool
s_replaced(const msgpack_object_kv *kv, const fy_header_t *extra, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(extra[j].name) &&
            memcmp(kv->key.via.str.ptr, extra[j].name, kv->key.via.str.size) == 0)
            return true;
    return false;
}

fy_status_t
fy_headers_merge(fy_encoder_t *self, fy_bytes_t hdrs, const fy_header_t *extra, size_t n)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object_kv *kv = NULL;
    size_t have = 0;
    if (hdrs.len) {
        size_t off = 0;
        if (!fy_envi_precheck(hdrs.ptr, hdrs.len) ||
            msgpack_unpack_next(&u, (const char *)hdrs.ptr, hdrs.len, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            u.data.type != MSGPACK_OBJECT_MAP) {
            msgpack_unpacked_destroy(&u);
            return FERRY_EFIELD;
        }
        kv = u.data.via.map.ptr;
        have = u.data.via.map.size;
    }
    size_t keep = 0;
    for (size_t i = 0; i < have; i++)
        keep += !s_replaced(&kv[i], extra, n);
    size_t start = self->buf.size;
    int rc = msgpack_pack_map(&self->pk, keep + n);
    for (size_t i = 0; i < have; i++)
        if (!s_replaced(&kv[i], extra, n))
            rc |= msgpack_pack_object(&self->pk, kv[i].key) |
                  msgpack_pack_object(&self->pk, kv[i].val);
    for (size_t j = 0; j < n; j++)
        rc |= fy_envi_str(&self->pk, extra[j].name) | fy_envi_str(&self->pk, extra[j].value);
    msgpack_unpacked_destroy(&u);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_node(fy_encoder_t *self, uint64_t cid, uint64_t node, const char *address)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, address ? 2 : 1, address ? "node_add" : "node_remove", cid) |
             fy_envi_kv_uint(&self->pk, "node", node);
    if (address)
        rc |= fy_envi_kv_str(&self->pk, "address", address);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_backup(fy_encoder_t *self, uint64_t cid, const char *path)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 1, "backup", cid) | fy_envi_kv_str(&self->pk, "path", path);
    return fy_envi_done(self, start, rc);
}

fy_status_t
fy_encode_seek(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint64_t seq,
               uint64_t time_ms)
{
    size_t start = self->buf.size;
    int rc = fy_envi_head(&self->pk, 3, "seek", cid) | fy_envi_kv_str(&self->pk, "topic", topic) |
             fy_envi_kv_str(&self->pk, "sub", sub) |
             (time_ms ? fy_envi_kv_uint(&self->pk, "time_ms", time_ms)
                      : fy_envi_kv_uint(&self->pk, "seq", seq));
    return fy_envi_done(self, start, rc);
}
