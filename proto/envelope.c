/*
 * envelope.c - msgpack encoding and strict decoding of Ferry envelopes.
 *
 * Decoding goes through msgpack-c, but only after s_precheck has walked the
 * frame: msgpack-c allocates a container's element array from the count in
 * its header before reading the elements, so a 5-byte "map of 2^31 entries"
 * would make it try a huge allocation. The walk rejects any count larger
 * than the bytes left, truncated values and trailing bytes.
 */
#include "envelope.h"
#include "subject.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fy_decoder {
    msgpack_unpacked unpacked; /* zone reused across decodes */
    uint64_t *seqs;            /* ack sequences, FY_BATCH_MAX entries */
    fy_pubmeta_t *metas;       /* publish metadata, FY_BATCH_MAX entries */
    msgpack_sbuffer hdrs;      /* canonical headers of the decoded publish */
};

struct fy_encoder {
    msgpack_sbuffer buf;
    msgpack_packer pk;
};

static const char *const s_op_names[FY_OP_COUNT_] = {
    [FY_OP_HELLO] = "hello",
    [FY_OP_PING] = "ping",
    [FY_OP_DECLARE] = "declare",
    [FY_OP_DELETE] = "delete",
    [FY_OP_INFO] = "info",
    [FY_OP_PUBLISH] = "publish",
    [FY_OP_PUBLISH_BATCH] = "publish_batch",
    [FY_OP_GET] = "get",
    [FY_OP_STATS] = "stats",
    [FY_OP_SUB_DECLARE] = "sub_declare",
    [FY_OP_FETCH] = "fetch",
    [FY_OP_ACK] = "ack",
    [FY_OP_NACK] = "nack",
    [FY_OP_TERM] = "term",
    [FY_OP_PROGRESS] = "progress",
    [FY_OP_SUB_INFO] = "sub_info",
    [FY_OP_SUBSCRIBE] = "subscribe",
    [FY_OP_CREDIT] = "credit",
    [FY_OP_UNSUBSCRIBE] = "unsubscribe",
};

const char *
fy_op_name(fy_op_t op)
{
    return (unsigned)op < FY_OP_COUNT_ ? s_op_names[op] : "?";
}

bool
fy_status_bad_input(fy_status_t code)
{
    switch (code) {
    case FERRY_EPROTO:
    case FERRY_EVERSION:
    case FERRY_EUNKNOWN_OP:
    case FERRY_EFIELD:
    case FERRY_EFRAMES:
    case FERRY_EINVALID_NAME:
    case FERRY_ETOO_LARGE:
    case FERRY_ETOO_MANY:
        return true;
    default:
        return false;
    }
}

fy_status_t
fy_err_set(fy_err_t *err, fy_status_t code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            err->msg[0] = '\0';
        err->code = code;
    }
    return code;
}

bool
fy_name_valid(fy_bytes_t name)
{
    if (name.len == 0 || name.len > FERRY_NAME_MAX)
        return false;
    size_t token = 0;
    for (size_t i = 0; i < name.len; i++) {
        uint8_t c = name.ptr[i];
        if (c == '.') {
            if (token == 0)
                return false;
            token = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
        token++;
    }
    return token > 0;
}

/* ---- structural pre-check ------------------------------------------------ */

static bool
s_need(size_t off, size_t n, size_t len)
{
    return n <= len && off <= len - n;
}

static uint64_t
s_uint_at(const uint8_t *p, size_t width)
{
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Deepest nesting accepted; below msgpack-c's own stack of 32, so that any
 * MSGPACK_UNPACK_NOMEM_ERROR after this check is really out of memory. */
#define S_MAX_DEPTH 16

/* How the header byte 0xc0 + i (0xc0..0xdf) continues: with `n` fixed bytes
 * (S_FIXED), a length of `n` bytes then that many bytes (S_LEN), the same plus
 * a type byte (S_EXT), or a count of `n` bytes of array items or map pairs. */
enum { S_BAD, S_FIXED, S_LEN, S_EXT, S_ARRAY, S_MAP };
/* clang-format off */
static const struct {
    uint8_t kind, n;
} s_types[32] = {
    [0x00] = {S_FIXED, 0}, /* nil */
    [0x01] = {S_BAD, 0},   /* never used */
    [0x02] = {S_FIXED, 0}, [0x03] = {S_FIXED, 0},                        /* false, true */
    [0x04] = {S_LEN, 1},   [0x05] = {S_LEN, 2},   [0x06] = {S_LEN, 4},   /* bin */
    [0x07] = {S_EXT, 1},   [0x08] = {S_EXT, 2},   [0x09] = {S_EXT, 4},   /* ext */
    [0x0a] = {S_FIXED, 4}, [0x0b] = {S_FIXED, 8},                        /* float */
    [0x0c] = {S_FIXED, 1}, [0x0d] = {S_FIXED, 2}, [0x0e] = {S_FIXED, 4}, /* uint */
    [0x0f] = {S_FIXED, 8},
    [0x10] = {S_FIXED, 1}, [0x11] = {S_FIXED, 2}, [0x12] = {S_FIXED, 4}, /* int */
    [0x13] = {S_FIXED, 8},
    [0x14] = {S_FIXED, 2}, [0x15] = {S_FIXED, 3}, [0x16] = {S_FIXED, 5}, /* fixext */
    [0x17] = {S_FIXED, 9}, [0x18] = {S_FIXED, 17},
    [0x19] = {S_LEN, 1},   [0x1a] = {S_LEN, 2},   [0x1b] = {S_LEN, 4},   /* str */
    [0x1c] = {S_ARRAY, 2}, [0x1d] = {S_ARRAY, 4},
    [0x1e] = {S_MAP, 2},   [0x1f] = {S_MAP, 4},
};
/* clang-format on */

/* Walks one complete msgpack value filling [0,len) exactly. Every container
 * count is checked against the bytes that remain, since each element needs
 * at least one byte. */
static bool
s_precheck(const uint8_t *p, size_t len)
{
    size_t off = 0;
    uint64_t left[S_MAX_DEPTH + 1]; /* values still to read at each level */
    uint64_t pending = 1;           /* values still to read in all levels */
    int depth = 0;
    left[0] = 1;
    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        if (off >= len)
            return false;
        left[depth]--;
        pending--;
        uint8_t b = p[off++];
        uint64_t skip = 0, elems = 0;
        if (b <= 0x7f || b >= 0xe0) {
            /* positive or negative fixint */
        } else if (b <= 0x8f) {
            elems = 2u * (b & 0x0f); /* fixmap */
        } else if (b <= 0x9f) {
            elems = b & 0x0f; /* fixarray */
        } else if (b <= 0xbf) {
            skip = b & 0x1f; /* fixstr */
        } else {
            unsigned kind = s_types[b - 0xc0].kind, n = s_types[b - 0xc0].n;
            if (kind == S_BAD)
                return false;
            if (kind == S_FIXED) {
                skip = n;
            } else {
                if (!s_need(off, n, len))
                    return false;
                uint64_t v = s_uint_at(p + off, n);
                off += n;
                if (kind == S_LEN)
                    skip = v;
                else if (kind == S_EXT)
                    skip = v + 1;
                else
                    elems = kind == S_MAP ? 2 * v : v;
            }
        }
        if (skip > len - off)
            return false;
        off += (size_t)skip;
        if (elems > 0) {
            if (depth == S_MAX_DEPTH)
                return false;
            left[++depth] = elems;
            pending += elems;
        }
        if (pending > len - off)
            return false;
    }
    return off == len;
}

/* ---- object helpers ------------------------------------------------------ */

static const msgpack_object *
s_field(const msgpack_object *map, const char *key)
{
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool
s_as_uint(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

static bool
s_as_bytes(const msgpack_object *o, fy_bytes_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    out->ptr = (const uint8_t *)o->via.str.ptr;
    out->len = o->via.str.size;
    return true;
}

/* Optional uint field; absent leaves *out unchanged. */
static fy_status_t
s_opt_uint(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out, fy_err_t *err)
{
    const msgpack_object *o = s_field(map, key);
    if (!o)
        return FERRY_OK;
    uint64_t v;
    if (!s_as_uint(o, &v) || v > max)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be an unsigned integer <= %llu", key,
                          (unsigned long long)max);
    *out = v;
    return FERRY_OK;
}

static fy_status_t
s_req_name(const msgpack_object *map, const char *key, fy_bytes_t *out, fy_err_t *err)
{
    const msgpack_object *o = s_field(map, key);
    if (!o)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' is required", key);
    if (!s_as_bytes(o, out))
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be a string", key);
    if (!fy_name_valid(*out))
        return fy_err_set(err, FERRY_EINVALID_NAME,
                          "field '%s': names are 1-255 characters of A-Z a-z 0-9 _ - in "
                          "dot-separated tokens",
                          key);
    return FERRY_OK;
}

/* Optional key or id: a string of 1..FERRY_ID_MAX bytes without NUL. */
static fy_status_t
s_opt_ident(const msgpack_object *map, const char *key, fy_bytes_t *out, fy_err_t *err)
{
    const msgpack_object *o = s_field(map, key);
    out->ptr = NULL;
    out->len = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return FERRY_OK;
    if (!s_as_bytes(o, out) || out->len == 0 || out->len > FERRY_ID_MAX ||
        memchr(out->ptr, 0, out->len))
        return fy_err_set(err, FERRY_EFIELD,
                          "field '%s' must be a string of 1-%d bytes without NUL", key,
                          FERRY_ID_MAX);
    return FERRY_OK;
}

/* Validates a header map and appends its canonical form to `out`. */
static fy_status_t
s_pack_headers(const msgpack_object *o, msgpack_sbuffer *out, fy_err_t *err)
{
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > FY_HEADERS_MAX)
        return fy_err_set(err, FERRY_EFIELD, "field 'hdrs' must be a map of at most %d strings",
                          FY_HEADERS_MAX);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR ||
            kv->key.via.str.size == 0 || kv->key.via.str.size > FERRY_NAME_MAX ||
            kv->val.via.str.size > FY_HEADER_VALUE_MAX ||
            memchr(kv->key.via.str.ptr, 0, kv->key.via.str.size) ||
            memchr(kv->val.via.str.ptr, 0, kv->val.via.str.size))
            return fy_err_set(err, FERRY_EFIELD,
                              "header names are 1-255 bytes and values at most %d bytes, "
                              "strings without NUL",
                              FY_HEADER_VALUE_MAX);
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) != 0)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    return FERRY_OK;
}

fy_decoder_t *
fy_decoder_new(void)
{
    fy_decoder_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->metas = calloc(FY_BATCH_MAX, sizeof *self->metas);
    self->seqs = calloc(FY_BATCH_MAX, sizeof *self->seqs);
    if (!self->metas || !self->seqs) {
        free(self->metas);
        free(self->seqs);
        free(self);
        return NULL;
    }
    msgpack_unpacked_init(&self->unpacked);
    msgpack_sbuffer_init(&self->hdrs);
    return self;
}

void
fy_decoder_destroy(fy_decoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_decoder_t *self = *self_p;
    msgpack_unpacked_destroy(&self->unpacked);
    msgpack_sbuffer_destroy(&self->hdrs);
    free(self->metas);
    free(self->seqs);
    free(self);
    *self_p = NULL;
}

/* Parses `buf` into the decoder's zone and returns the top-level map. */
static fy_status_t
s_unpack_map(fy_decoder_t *self, const void *buf, size_t len, const msgpack_object **map,
             fy_err_t *err)
{
    if (!buf || len == 0)
        return fy_err_set(err, FERRY_EPROTO, "empty envelope frame");
    if (len > FY_ENVELOPE_MAX)
        return fy_err_set(err, FERRY_EPROTO, "envelope frame larger than %u bytes",
                          FY_ENVELOPE_MAX);
    if (!s_precheck(buf, len))
        return fy_err_set(err, FERRY_EPROTO,
                          "envelope is not one complete msgpack value of depth <= 16");
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&self->unpacked, buf, len, &off);
    if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    if (r != MSGPACK_UNPACK_SUCCESS || off != len)
        return fy_err_set(err, FERRY_EPROTO, "envelope is not valid msgpack");
    const msgpack_object *o = &self->unpacked.data;
    if (o->type != MSGPACK_OBJECT_MAP)
        return fy_err_set(err, FERRY_EPROTO, "envelope must be a msgpack map");
    *map = o;
    return FERRY_OK;
}

static fy_status_t
s_check_version(const msgpack_object *map, fy_err_t *err)
{
    const msgpack_object *v = s_field(map, "v");
    uint64_t ver;
    if (!v || !s_as_uint(v, &ver))
        return fy_err_set(err, FERRY_EFIELD, "field 'v' (protocol version) is required");
    if (ver != FERRY_PROTOCOL_VERSION)
        return fy_err_set(err, FERRY_EVERSION, "protocol version %llu not supported (server: %d)",
                          (unsigned long long)ver, FERRY_PROTOCOL_VERSION);
    return FERRY_OK;
}

static fy_status_t
s_decode_meta(fy_decoder_t *self, const msgpack_object *m, fy_pubmeta_t *meta, size_t *hdr_off,
              fy_err_t *err)
{
    fy_status_t st;
    if ((st = s_opt_ident(m, "key", &meta->key, err)) ||
        (st = s_opt_ident(m, "id", &meta->id, err)))
        return st;
    const msgpack_object *h = s_field(m, "hdrs");
    *hdr_off = self->hdrs.size;
    meta->hdrs.ptr = NULL;
    meta->hdrs.len = 0;
    if (h && h->type != MSGPACK_OBJECT_NIL) {
        if ((st = s_pack_headers(h, &self->hdrs, err)))
            return st;
        meta->hdrs.len = self->hdrs.size - *hdr_off;
    }
    return FERRY_OK;
}

static fy_status_t
s_decode_publish(fy_decoder_t *self, const msgpack_object *map, fy_request_t *req,
                 size_t payload_frames, fy_err_t *err)
{
    fy_status_t st = s_req_name(map, "topic", &req->name, err);
    if (st)
        return st;
    size_t offs[FY_BATCH_MAX];
    self->hdrs.size = 0;
    if (req->op == FY_OP_PUBLISH) {
        if (payload_frames != 1)
            return fy_err_set(err, FERRY_EFRAMES, "publish takes exactly one payload frame");
        if ((st = s_decode_meta(self, map, &self->metas[0], &offs[0], err)))
            return st;
        req->msg_count = 1;
    } else {
        const msgpack_object *arr = s_field(map, "msgs");
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
    const msgpack_object *o = s_field(map, "sub");
    out->ptr = NULL;
    out->len = 0;
    if (!o)
        return FERRY_OK;
    if (!s_as_bytes(o, out))
        return fy_err_set(err, FERRY_EFIELD, "field 'sub' must be a string");
    if (out->len && !fy_name_valid(*out))
        return fy_err_set(err, FERRY_EINVALID_NAME, "field 'sub' is not a valid name");
    return FERRY_OK;
}

static fy_status_t
s_opt_bool(const msgpack_object *map, const char *key, bool *out, fy_err_t *err)
{
    const msgpack_object *o = s_field(map, key);
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
    if (!s_field(map, key))
        return fy_err_set(err, FERRY_EFIELD, "field '%s' is required", key);
    uint64_t v = min;
    fy_status_t st = s_opt_uint(map, key, max, &v, err);
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
    if ((st = s_req_name(map, "topic", &req->name, err)) ||
        (st = s_sub_name(map, &req->sub, err)) ||
        (st = s_opt_uint(map, "ack_wait_ms", 24ull * 3600 * 1000, &req->ack_wait_ms, err)) ||
        (st = s_opt_uint(map, "max_deliver", 1000, &req->max_deliver, err)))
        return st;
    const msgpack_object *start = s_field(map, "start");
    fy_bytes_t word;
    req->start = 0;
    if (!start)
        return FERRY_OK;
    if (s_as_uint(start, &req->seq) && req->seq > 0)
        req->start = 2;
    else if (s_as_bytes(start, &word) && fy_bytes_eq(word, fy_bytes_str("first")))
        req->start = 0;
    else if (s_as_bytes(start, &word) && fy_bytes_eq(word, fy_bytes_str("new")))
        req->start = 1;
    else
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'start' must be \"first\", \"new\" or a sequence >= 1");
    return FERRY_OK;
}

/* start_time_ms, when given, overrides start: 3 = from a time (in req->seq).
 * filter: a subject pattern over message keys. */
static fy_status_t
s_decode_start_time(const msgpack_object *map, fy_request_t *req, fy_err_t *err)
{
    uint64_t t = 0;
    fy_status_t st = s_opt_uint(map, "start_time_ms", UINT64_MAX, &t, err);
    if (st == FERRY_OK && t) {
        req->start = 3;
        req->seq = t;
    }
    const msgpack_object *f = s_field(map, "filter");
    if (st == FERRY_OK && f &&
        (!s_as_bytes(f, &req->filter) || !fy_subject_pattern_valid(req->filter)))
        return fy_err_set(err, FERRY_EFIELD,
                          "field 'filter' must be a subject pattern: dot-separated tokens of "
                          "A-Z a-z 0-9 _ -, '*' for one token, '>' (last) for the rest");
    return st;
}

static fy_status_t
s_decode_ack(fy_decoder_t *self, const msgpack_object *map, fy_request_t *req, fy_err_t *err)
{
    fy_status_t st;
    if ((st = s_req_name(map, "topic", &req->name, err)) ||
        (st = s_sub_name(map, &req->sub, err)) ||
        (st = s_opt_bool(map, "noreply", &req->noreply, err)))
        return st;
    if (req->op == FY_OP_NACK || req->op == FY_OP_TERM || req->op == FY_OP_PROGRESS) {
        if ((st = s_req_uint(map, "seq", 1, UINT64_MAX, &self->seqs[0], err)) ||
            (st = s_opt_uint(map, "delay_ms", 24ull * 3600 * 1000, &req->delay_ms, err)))
            return st;
        const msgpack_object *e = s_field(map, "error");
        if (e && (!s_as_bytes(e, &req->error) || req->error.len > FY_ERROR_TEXT_MAX ||
                  memchr(req->error.ptr, 0, req->error.len)))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'error' must be a string of at most %d bytes without NUL",
                              FY_ERROR_TEXT_MAX);
        req->seqs = self->seqs;
        req->seq_count = 1;
        return FERRY_OK;
    }
    const msgpack_object *arr = s_field(map, "seqs");
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY || arr->via.array.size == 0)
        return fy_err_set(err, FERRY_EFIELD, "field 'seqs' must be a non-empty array");
    if (arr->via.array.size > FY_BATCH_MAX)
        return fy_err_set(err, FERRY_ETOO_MANY, "at most %d sequences per ack", FY_BATCH_MAX);
    for (uint32_t i = 0; i < arr->via.array.size; i++)
        if (!s_as_uint(&arr->via.array.ptr[i], &self->seqs[i]) || self->seqs[i] == 0)
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
    fy_status_t st = s_unpack_map(self, buf, len, &map, err);
    if (st)
        return st;
    const msgpack_object *cid = s_field(map, "cid");
    if (!cid || !s_as_uint(cid, &req->cid))
        return fy_err_set(err, FERRY_EFIELD, "field 'cid' (unsigned integer) is required");
    if ((st = s_check_version(map, err)))
        return st;
    const msgpack_object *op = s_field(map, "op");
    fy_bytes_t opname;
    if (!op || !s_as_bytes(op, &opname))
        return fy_err_set(err, FERRY_EFIELD, "field 'op' (string) is required");
    for (int i = 0; i < FY_OP_COUNT_; i++) {
        if (fy_bytes_eq(opname, fy_bytes_str(s_op_names[i]))) {
            req->op = (fy_op_t)i;
            break;
        }
    }
    if (req->op == FY_OP_COUNT_)
        return fy_err_set(err, FERRY_EUNKNOWN_OP, "unknown operation");
    if (req->op != FY_OP_PUBLISH && req->op != FY_OP_PUBLISH_BATCH && payload_frames != 0)
        return fy_err_set(err, FERRY_EFRAMES, "%s takes no payload frames", fy_op_name(req->op));

    switch (req->op) {
    case FY_OP_HELLO: {
        const msgpack_object *c = s_field(map, "client");
        if (c && (!s_as_bytes(c, &req->client) || req->client.len > FERRY_NAME_MAX))
            return fy_err_set(err, FERRY_EFIELD, "field 'client' must be a string of <= %d bytes",
                              FERRY_NAME_MAX);
        return FERRY_OK;
    }
    case FY_OP_PING:
    case FY_OP_STATS:
        return FERRY_OK;
    case FY_OP_DECLARE: {
        if ((st = s_req_name(map, "name", &req->name, err)))
            return st;
        const msgpack_object *k = s_field(map, "kind");
        fy_bytes_t kind;
        if (!k || !s_as_bytes(k, &kind))
            return fy_err_set(err, FERRY_EFIELD,
                              "field 'kind' (\"topic\" or \"queue\") is required");
        if (fy_bytes_eq(kind, fy_bytes_str("topic")))
            req->kind = FERRY_KIND_TOPIC;
        else if (fy_bytes_eq(kind, fy_bytes_str("queue")))
            req->kind = FERRY_KIND_QUEUE;
        else
            return fy_err_set(err, FERRY_EFIELD, "field 'kind' must be \"topic\" or \"queue\"");
        /* One year at most: a window is a time, not a retention policy. */
        ferry_topic_config_t *c = &req->topic_cfg;
        if ((st = s_opt_uint(map, "dedupe_ms", 365ull * 24 * 3600 * 1000, &c->dedupe_window_ms,
                             err)) ||
            (st = s_opt_uint(map, "max_msgs", UINT64_MAX, &c->max_msgs, err)) ||
            (st = s_opt_uint(map, "max_bytes", UINT64_MAX, &c->max_bytes, err)) ||
            (st = s_opt_uint(map, "max_age_ms", UINT64_MAX, &c->max_age_ms, err)))
            return st;
        const msgpack_object *d = s_field(map, "discard");
        fy_bytes_t word = {0};
        if (d && !(s_as_bytes(d, &word) && (fy_bytes_eq(word, fy_bytes_str("old")) ||
                                            fy_bytes_eq(word, fy_bytes_str("new")))))
            return fy_err_set(err, FERRY_EFIELD, "field 'discard' must be \"old\" or \"new\"");
        c->discard_new = d && fy_bytes_eq(word, fy_bytes_str("new"));
        return s_opt_bool(map, "interest", &c->interest, err);
    }
    case FY_OP_DELETE:
    case FY_OP_INFO:
        return s_req_name(map, "name", &req->name, err);
    case FY_OP_PUBLISH:
    case FY_OP_PUBLISH_BATCH:
        return s_decode_publish(self, map, req, payload_frames, err);
    case FY_OP_SUB_DECLARE:
        if ((st = s_decode_sub_declare(map, req, err)))
            return st;
        return s_decode_start_time(map, req, err);
    case FY_OP_SUB_INFO:
        if ((st = s_req_name(map, "topic", &req->name, err)))
            return st;
        return s_sub_name(map, &req->sub, err);
    case FY_OP_SUBSCRIBE: {
        uint64_t credit;
        if ((st = s_req_name(map, "topic", &req->name, err)) ||
            (st = s_sub_name(map, &req->sub, err)) ||
            (st = s_req_uint(map, "credit", 1, FY_CREDIT_MAX, &credit, err)))
            return st;
        req->credit = (uint32_t)credit;
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
        if ((st = s_req_name(map, "topic", &req->name, err)) ||
            (st = s_sub_name(map, &req->sub, err)) ||
            (st = s_req_uint(map, "max", 1, FY_BATCH_MAX, &max, err)) ||
            (st = s_opt_uint(map, "wait_ms", FY_FETCH_WAIT_MAX, &req->wait_ms, err)))
            return st;
        req->limit = (uint32_t)max;
        return FERRY_OK;
    }
    case FY_OP_ACK:
    case FY_OP_NACK:
    case FY_OP_TERM:
    case FY_OP_PROGRESS:
        return s_decode_ack(self, map, req, err);
    case FY_OP_GET: {
        if ((st = s_req_name(map, "topic", &req->name, err)))
            return st;
        req->seq = 1;
        uint64_t limit = 100;
        if ((st = s_opt_uint(map, "seq", UINT64_MAX, &req->seq, err)) ||
            (st = s_opt_uint(map, "limit", FY_BATCH_MAX, &limit, err)))
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

/* ---- encoding ------------------------------------------------------------ */

fy_encoder_t *
fy_encoder_new(void)
{
    fy_encoder_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    msgpack_sbuffer_init(&self->buf);
    msgpack_packer_init(&self->pk, &self->buf, msgpack_sbuffer_write);
    return self;
}

void
fy_encoder_destroy(fy_encoder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    msgpack_sbuffer_destroy(&(*self_p)->buf);
    free(*self_p);
    *self_p = NULL;
}

void
fy_encoder_reset(fy_encoder_t *self)
{
    self->buf.size = 0;
}

const uint8_t *
fy_encoder_data(const fy_encoder_t *self)
{
    return (const uint8_t *)self->buf.data;
}

size_t
fy_encoder_len(const fy_encoder_t *self)
{
    return self->buf.size;
}

fy_status_t
fy_encoder_append(fy_encoder_t *self, const fy_encoder_t *other)
{
    if (other->buf.size == 0)
        return FERRY_OK;
    return msgpack_sbuffer_write(&self->buf, other->buf.data, other->buf.size) ? FERRY_ENOMEM
                                                                               : FERRY_OK;
}

/* The packer reports allocation failure through a non-zero return; we OR all
 * of them and roll the buffer back to its start so nothing half-written stays. */
static int
s_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static int
s_bytes(msgpack_packer *pk, fy_bytes_t b)
{
    return msgpack_pack_str(pk, b.len) | msgpack_pack_str_body(pk, b.ptr, b.len);
}

static int
s_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    return s_str(pk, k) | msgpack_pack_uint64(pk, v);
}

static int
s_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    return s_str(pk, k) | s_str(pk, v);
}

static int
s_head(msgpack_packer *pk, size_t nfields, const char *op, uint64_t cid)
{
    return msgpack_pack_map(pk, nfields + 3) | s_kv_uint(pk, "v", FERRY_PROTOCOL_VERSION) |
           s_kv_str(pk, "op", op) | s_kv_uint(pk, "cid", cid);
}

static fy_status_t
s_done(fy_encoder_t *self, size_t start, int rc)
{
    if (rc != 0) {
        self->buf.size = start;
        return FERRY_ENOMEM;
    }
    return FERRY_OK;
}

fy_status_t
fy_encode_hello(fy_encoder_t *self, uint64_t cid, const char *client)
{
    size_t start = self->buf.size;
    int rc =
        s_head(&self->pk, 1, "hello", cid) | s_kv_str(&self->pk, "client", client ? client : "");
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_simple(fy_encoder_t *self, uint64_t cid, fy_op_t op, const char *name)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, name ? 1 : 0, fy_op_name(op), cid);
    if (name)
        rc |= s_kv_str(&self->pk, "name", name);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_declare(fy_encoder_t *self, uint64_t cid, ferry_kind_t kind, const char *name,
                  const ferry_topic_config_t *cfg)
{
    static const ferry_topic_config_t none;
    const ferry_topic_config_t *c = cfg ? cfg : &none;
    size_t start = self->buf.size;
    size_t n = 4 + (c->dedupe_window_ms != 0) + (c->max_msgs != 0) + (c->max_bytes != 0) +
               (c->max_age_ms != 0);
    int rc = s_head(&self->pk, n, "declare", cid) | s_kv_str(&self->pk, "name", name) |
             s_kv_str(&self->pk, "kind", kind == FERRY_KIND_QUEUE ? "queue" : "topic") |
             s_kv_str(&self->pk, "discard", c->discard_new ? "new" : "old") |
             s_str(&self->pk, "interest") |
             (c->interest ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    if (c->dedupe_window_ms)
        rc |= s_kv_uint(&self->pk, "dedupe_ms", c->dedupe_window_ms);
    if (c->max_msgs)
        rc |= s_kv_uint(&self->pk, "max_msgs", c->max_msgs);
    if (c->max_bytes)
        rc |= s_kv_uint(&self->pk, "max_bytes", c->max_bytes);
    if (c->max_age_ms)
        rc |= s_kv_uint(&self->pk, "max_age_ms", c->max_age_ms);
    return s_done(self, start, rc);
}

static int
s_pack_meta_fields(msgpack_packer *pk, const ferry_message_t *m)
{
    int rc = 0;
    if (m->key)
        rc |= s_kv_str(pk, "key", m->key);
    if (m->id)
        rc |= s_kv_str(pk, "id", m->id);
    if (m->header_count) {
        rc |= s_str(pk, "hdrs") | msgpack_pack_map(pk, m->header_count);
        for (size_t i = 0; i < m->header_count; i++)
            rc |= s_str(pk, m->headers[i].name ? m->headers[i].name : "") |
                  s_str(pk, m->headers[i].value ? m->headers[i].value : "");
    }
    return rc;
}

static size_t
s_meta_nfields(const ferry_message_t *m)
{
    return (m->key != NULL) + (m->id != NULL) + (m->header_count != 0);
}

fy_status_t
fy_encode_publish(fy_encoder_t *self, uint64_t cid, const char *topic, const ferry_message_t *msg)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 1 + s_meta_nfields(msg), "publish", cid) |
             s_kv_str(&self->pk, "topic", topic) | s_pack_meta_fields(&self->pk, msg);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_publish_batch(fy_encoder_t *self, uint64_t cid, const char *topic,
                        const ferry_message_t *msgs, size_t n)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "publish_batch", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_str(&self->pk, "msgs") | msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_map(&self->pk, s_meta_nfields(&msgs[i])) |
              s_pack_meta_fields(&self->pk, &msgs[i]);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_get(fy_encoder_t *self, uint64_t cid, const char *topic, uint64_t seq, uint32_t limit)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 3, "get", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_uint(&self->pk, "seq", seq) | s_kv_uint(&self->pk, "limit", limit);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_sub_declare(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                      const fy_sub_request_t *sr)
{
    size_t start = self->buf.size;
    size_t n = 3 + (sr->ack_wait_ms != 0) + (sr->max_deliver != 0) + (sr->start_time_ms != 0) +
               (sr->filter != NULL);
    int rc = s_head(&self->pk, n, "sub_declare", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_str(&self->pk, "start");
    if (sr->start == 2)
        rc |= msgpack_pack_uint64(&self->pk, sr->start_seq);
    else
        rc |= s_str(&self->pk, sr->start == 1 ? "new" : "first");
    if (sr->ack_wait_ms)
        rc |= s_kv_uint(&self->pk, "ack_wait_ms", sr->ack_wait_ms);
    if (sr->max_deliver)
        rc |= s_kv_uint(&self->pk, "max_deliver", sr->max_deliver);
    if (sr->start_time_ms)
        rc |= s_kv_uint(&self->pk, "start_time_ms", sr->start_time_ms);
    if (sr->filter)
        rc |= s_kv_str(&self->pk, "filter", sr->filter);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_sub_info(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "sub_info", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "");
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_subscribe(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                    uint32_t credit)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 3, "subscribe", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_kv_uint(&self->pk, "credit", credit);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_consumer_op(fy_encoder_t *self, uint64_t cid, fy_op_t op, uint64_t consumer,
                      uint32_t credit)
{
    size_t start = self->buf.size;
    bool is_credit = op == FY_OP_CREDIT;
    int rc = s_head(&self->pk, is_credit ? 3 : 1, fy_op_name(op), cid) |
             s_kv_uint(&self->pk, "consumer", consumer);
    if (is_credit)
        rc |= s_kv_uint(&self->pk, "credit", credit) | s_str(&self->pk, "noreply") |
              msgpack_pack_true(&self->pk);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_subscribed(fy_encoder_t *self, uint64_t cid, uint64_t consumer, bool ephemeral)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "ok", cid) | s_kv_uint(&self->pk, "consumer", consumer) |
             s_str(&self->pk, "ephemeral") |
             (ephemeral ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_delivery_begin(fy_encoder_t *self, uint64_t consumer, size_t n)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "msg", 0) | s_kv_uint(&self->pk, "consumer", consumer) |
             s_str(&self->pk, "msgs") | msgpack_pack_array(&self->pk, n);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_fetch(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint32_t max,
                uint64_t wait_ms)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 4, "fetch", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_kv_uint(&self->pk, "max", max) |
             s_kv_uint(&self->pk, "wait_ms", wait_ms);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_ack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
              const uint64_t *seqs, size_t n, bool noreply)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 4, "ack", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_str(&self->pk, "noreply") |
             (noreply ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk)) |
             s_str(&self->pk, "seqs") | msgpack_pack_array(&self->pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint64(&self->pk, seqs[i]);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_nack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint64_t seq,
               uint64_t delay_ms, bool noreply)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 5, "nack", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_kv_uint(&self->pk, "seq", seq) |
             s_kv_uint(&self->pk, "delay_ms", delay_ms) | s_str(&self->pk, "noreply") |
             (noreply ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_term(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub, uint64_t seq,
               const char *error)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, error ? 4 : 3, "term", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_kv_uint(&self->pk, "seq", seq);
    if (error)
        rc |= s_kv_str(&self->pk, "error", error);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_progress(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                   uint64_t seq)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 3, "progress", cid) | s_kv_str(&self->pk, "topic", topic) |
             s_kv_str(&self->pk, "sub", sub ? sub : "") | s_kv_uint(&self->pk, "seq", seq);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_sub_reply(fy_encoder_t *self, uint64_t cid, uint64_t cursor, uint64_t ack_floor,
                    uint64_t ack_wait_ms, uint64_t max_deliver, uint64_t last_seq, bool created)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 6, "ok", cid) | s_kv_uint(&self->pk, "cursor", cursor) |
             s_kv_uint(&self->pk, "ack_floor", ack_floor) |
             s_kv_uint(&self->pk, "ack_wait_ms", ack_wait_ms) |
             s_kv_uint(&self->pk, "max_deliver", max_deliver) |
             s_kv_uint(&self->pk, "last", last_seq) | s_str(&self->pk, "created_now") |
             (created ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return s_done(self, start, rc);
}

/* Does header entry `kv` have one of the `n` extra names? */
static bool
s_replaced(const msgpack_object_kv *kv, const ferry_header_t *extra, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(extra[j].name) &&
            memcmp(kv->key.via.str.ptr, extra[j].name, kv->key.via.str.size) == 0)
            return true;
    return false;
}

fy_status_t
fy_headers_merge(fy_encoder_t *self, fy_bytes_t hdrs, const ferry_header_t *extra, size_t n)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    const msgpack_object_kv *kv = NULL;
    size_t have = 0;
    if (hdrs.len) {
        size_t off = 0;
        if (!s_precheck(hdrs.ptr, hdrs.len) ||
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
        rc |= s_str(&self->pk, extra[j].name) | s_str(&self->pk, extra[j].value);
    msgpack_unpacked_destroy(&u);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_error(fy_encoder_t *self, uint64_t cid, fy_status_t code, const char *msg)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 3, "error", cid) | s_kv_uint(&self->pk, "code", (uint64_t)code) |
             s_kv_str(&self->pk, "name", ferry_errname(code)) |
             s_kv_str(&self->pk, "msg", msg ? msg : ferry_strerror(code));
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_ok(fy_encoder_t *self, uint64_t cid)
{
    size_t start = self->buf.size;
    return s_done(self, start, s_head(&self->pk, 0, "ok", cid));
}

fy_status_t
fy_encode_hello_ok(fy_encoder_t *self, uint64_t cid, const char *server, uint64_t max_msg_bytes)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "ok", cid) | s_kv_str(&self->pk, "server", server) |
             s_kv_uint(&self->pk, "max_msg", max_msg_bytes);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_confirm(fy_encoder_t *self, uint64_t cid, uint64_t seq, bool dup)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "ok", cid) | s_kv_uint(&self->pk, "seq", seq) |
             s_str(&self->pk, "dup") |
             (dup ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return s_done(self, start, rc);
}

static int
s_confirm_arrays(msgpack_packer *pk, const uint64_t *seqs, const bool *dups, size_t n)
{
    int rc = s_str(pk, "seqs") | msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint64(pk, seqs[i]);
    rc |= s_str(pk, "dups") | msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= dups[i] ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    return rc;
}

fy_status_t
fy_encode_confirm_batch(fy_encoder_t *self, uint64_t cid, const uint64_t *seqs, const bool *dups,
                        size_t n)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 2, "ok", cid) | s_confirm_arrays(&self->pk, seqs, dups, n);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_confirm_run(fy_encoder_t *self, uint64_t first_cid, const uint64_t *seqs,
                      const bool *dups, size_t n)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 3, "ok", first_cid) | s_kv_uint(&self->pk, "n", n) |
             s_confirm_arrays(&self->pk, seqs, dups, n);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_info_reply(fy_encoder_t *self, uint64_t cid, const ferry_topic_info_t *in, int created)
{
    size_t start = self->buf.size;
    int rc =
        s_head(&self->pk, created >= 0 ? 14 : 13, "ok", cid) |
        s_kv_str(&self->pk, "name", in->name) |
        s_kv_str(&self->pk, "kind", in->kind == FERRY_KIND_QUEUE ? "queue" : "topic") |
        s_kv_uint(&self->pk, "first", in->first_seq) | s_kv_uint(&self->pk, "last", in->last_seq) |
        s_kv_uint(&self->pk, "count", in->messages) | s_kv_uint(&self->pk, "bytes", in->bytes) |
        s_kv_uint(&self->pk, "dedupe_ms", in->dedupe_window_ms) |
        s_kv_uint(&self->pk, "created", in->created_ms) |
        s_kv_uint(&self->pk, "max_msgs", in->max_msgs) |
        s_kv_uint(&self->pk, "max_bytes", in->max_bytes) |
        s_kv_uint(&self->pk, "max_age_ms", in->max_age_ms) |
        s_kv_str(&self->pk, "discard", in->discard_new ? "new" : "old") |
        s_str(&self->pk, "interest") |
        (in->interest ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    if (created >= 0)
        rc |= s_str(&self->pk, "created_now") |
              (created ? msgpack_pack_true(&self->pk) : msgpack_pack_false(&self->pk));
    return s_done(self, start, rc);
}

/* Stats fields, in one table for the encoder and the decoder. */
#define S_STATS_FIELDS(X) \
    X(topics)             \
    X(messages)           \
    X(bytes)              \
    X(publishes) X(duplicates) X(commits) X(requests) X(errors) X(uptime_ms) X(map_size) X(map_used)
#define S_COUNT_FIELD(f) +1
#define S_PACK_FIELD(f)  | s_kv_uint(&self->pk, #f, st->f)

fy_status_t
fy_encode_stats_reply(fy_encoder_t *self, uint64_t cid, const ferry_stats_t *st)
{
    size_t start = self->buf.size;
    int rc =
        s_head(&self->pk, 0 S_STATS_FIELDS(S_COUNT_FIELD), "ok", cid) S_STATS_FIELDS(S_PACK_FIELD);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_get_begin(fy_encoder_t *self, uint64_t cid, size_t n)
{
    size_t start = self->buf.size;
    int rc = s_head(&self->pk, 1, "ok", cid) | s_str(&self->pk, "msgs") |
             msgpack_pack_array(&self->pk, n);
    return s_done(self, start, rc);
}

fy_status_t
fy_encode_get_msg(fy_encoder_t *self, uint64_t seq, uint64_t ts_ms, fy_bytes_t key, fy_bytes_t id,
                  fy_bytes_t hdrs)
{
    return fy_encode_delivery_msg(self, seq, ts_ms, 0, key, id, hdrs);
}

fy_status_t
fy_encode_delivery_msg(fy_encoder_t *self, uint64_t seq, uint64_t ts_ms, uint32_t dc,
                       fy_bytes_t key, fy_bytes_t id, fy_bytes_t hdrs)
{
    size_t start = self->buf.size;
    int rc =
        msgpack_pack_map(&self->pk, 2 + (dc > 0) + (key.len > 0) + (id.len > 0) + (hdrs.len > 0)) |
        s_kv_uint(&self->pk, "seq", seq) | s_kv_uint(&self->pk, "ts", ts_ms);
    if (dc)
        rc |= s_kv_uint(&self->pk, "dc", dc);
    if (key.len)
        rc |= s_str(&self->pk, "key") | s_bytes(&self->pk, key);
    if (id.len)
        rc |= s_str(&self->pk, "id") | s_bytes(&self->pk, id);
    if (hdrs.len) /* stored in canonical msgpack already: copied as is */
        rc |= s_str(&self->pk, "hdrs") |
              msgpack_sbuffer_write(&self->buf, (const char *)hdrs.ptr, hdrs.len);
    return s_done(self, start, rc);
}

/* ---- reply decoding ------------------------------------------------------ */

#define S_MAP(rep) ((const msgpack_object *)(rep)->obj_)

fy_status_t
fy_reply_decode(fy_decoder_t *self, const void *buf, size_t len, fy_reply_t *rep, fy_err_t *err)
{
    memset(rep, 0, sizeof *rep);
    const msgpack_object *map;
    fy_status_t st = s_unpack_map(self, buf, len, &map, err);
    if (st)
        return st;
    const msgpack_object *cid = s_field(map, "cid"), *op = s_field(map, "op");
    fy_bytes_t opname;
    if (!cid || !s_as_uint(cid, &rep->cid) || !op || !s_as_bytes(op, &opname))
        return fy_err_set(err, FERRY_EFIELD, "reply lacks 'cid' or 'op'");
    if ((st = s_check_version(map, err)))
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
    const msgpack_object *code = s_field(map, "code"), *msg = s_field(map, "msg");
    uint64_t c;
    if (!code || !s_as_uint(code, &c) || c == 0 || c > INT32_MAX)
        return fy_err_set(err, FERRY_EFIELD, "error reply lacks a valid 'code'");
    rep->code = (fy_status_t)c;
    if (msg)
        s_as_bytes(msg, &rep->msg);
    return FERRY_OK;
}

static fy_status_t
s_get_uint(const msgpack_object *map, const char *key, uint64_t *out)
{
    const msgpack_object *o = s_field(map, key);
    return o && s_as_uint(o, out) ? FERRY_OK : FERRY_EFIELD;
}

static fy_status_t
s_get_bool(const msgpack_object *map, const char *key, bool *out)
{
    const msgpack_object *o = s_field(map, key);
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
fy_reply_confirm(const fy_reply_t *rep, uint64_t *seq, bool *dup)
{
    fy_status_t st = s_get_uint(S_MAP(rep), "seq", seq);
    return st ? st : s_get_bool(S_MAP(rep), "dup", dup);
}

static const msgpack_object *
s_array(const fy_reply_t *rep, const char *key)
{
    const msgpack_object *o = s_field(S_MAP(rep), key);
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
fy_reply_confirm_at(const fy_reply_t *rep, size_t i, uint64_t *seq, bool *dup)
{
    const msgpack_object *seqs = s_array(rep, "seqs"), *dups = s_array(rep, "dups");
    if (!seqs || !dups || i >= seqs->via.array.size || i >= dups->via.array.size)
        return FERRY_EFIELD;
    const msgpack_object *d = &dups->via.array.ptr[i];
    if (!s_as_uint(&seqs->via.array.ptr[i], seq) || d->type != MSGPACK_OBJECT_BOOLEAN)
        return FERRY_EFIELD;
    *dup = d->via.boolean;
    return FERRY_OK;
}

fy_status_t
fy_reply_info(const fy_reply_t *rep, ferry_topic_info_t *info, bool *created)
{
    const msgpack_object *map = S_MAP(rep);
    memset(info, 0, sizeof *info);
    fy_bytes_t name, kind;
    const msgpack_object *n = s_field(map, "name"), *k = s_field(map, "kind");
    if (!n || !s_as_bytes(n, &name) || name.len > FERRY_NAME_MAX || !k || !s_as_bytes(k, &kind))
        return FERRY_EFIELD;
    memcpy(info->name, name.ptr, name.len);
    info->kind = fy_bytes_eq(kind, fy_bytes_str("queue")) ? FERRY_KIND_QUEUE : FERRY_KIND_TOPIC;
    if (s_get_uint(map, "first", &info->first_seq) || s_get_uint(map, "last", &info->last_seq) ||
        s_get_uint(map, "count", &info->messages) || s_get_uint(map, "bytes", &info->bytes) ||
        s_get_uint(map, "dedupe_ms", &info->dedupe_window_ms) ||
        s_get_uint(map, "created", &info->created_ms) ||
        s_get_uint(map, "max_msgs", &info->max_msgs) ||
        s_get_uint(map, "max_bytes", &info->max_bytes) ||
        s_get_uint(map, "max_age_ms", &info->max_age_ms))
        return FERRY_EFIELD;
    const msgpack_object *d = s_field(map, "discard");
    fy_bytes_t word;
    info->discard_new = d && s_as_bytes(d, &word) && fy_bytes_eq(word, fy_bytes_str("new"));
    bool interest = false;
    info->interest = s_get_bool(map, "interest", &interest) == FERRY_OK && interest;
    if (created && s_get_bool(map, "created_now", created))
        *created = false;
    return FERRY_OK;
}

#define S_GET_FIELD(f) || s_get_uint(S_MAP(rep), #f, &st->f)

fy_status_t
fy_reply_stats(const fy_reply_t *rep, ferry_stats_t *st)
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
    if (s_opt_uint(m, "dc", UINT32_MAX, &dc, NULL))
        return FERRY_EFIELD;
    out->dc = (uint32_t)dc;
    const msgpack_object *k = s_field(m, "key"), *id = s_field(m, "id"), *h = s_field(m, "hdrs");
    if ((k && !s_as_bytes(k, &out->key)) || (id && !s_as_bytes(id, &out->id)))
        return FERRY_EFIELD;
    if (h) {
        if (h->type != MSGPACK_OBJECT_MAP)
            return FERRY_EFIELD;
        out->header_count = h->via.map.size;
    }
    return FERRY_OK;
}

fy_status_t
fy_reply_get_header(const fy_reply_t *rep, size_t i, size_t j, fy_bytes_t *name, fy_bytes_t *value)
{
    const msgpack_object *m = s_get_entry(rep, i);
    const msgpack_object *h = m ? s_field(m, "hdrs") : NULL;
    if (!h || h->type != MSGPACK_OBJECT_MAP || j >= h->via.map.size)
        return FERRY_EFIELD;
    const msgpack_object_kv *kv = &h->via.map.ptr[j];
    return s_as_bytes(&kv->key, name) && s_as_bytes(&kv->val, value) ? FERRY_OK : FERRY_EFIELD;
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
fy_reply_sub(const fy_reply_t *rep, ferry_sub_info_t *info, bool *created)
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
