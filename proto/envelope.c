/* SPDX-License-Identifier: MIT */
/*
 * envelope.c - what every Ferry envelope shares: the op table, the
 * strict pre-walk of a frame, msgpack field helpers, and the decoder and
 * encoder objects. Requests are in request.c, replies in reply.c.
 *
 * Decoding goes through msgpack-c, but only after fy_envi_precheck has walked
 * the frame: msgpack-c allocates a container's element array from the count in
 * its header before reading the elements, so a 5-byte "map of 2^31 entries"
 * would make it try a huge allocation. The walk rejects any count larger
 * than the bytes left, truncated values and trailing bytes.
 */
#include "envelope.h"
#include "envelope_int.h"
#include "subject.h"
#include "text.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_OP_ROW(e, name, flags) [FY_OP_##e] = {name, flags},
static const struct {
    const char *name;
    unsigned flags;
} s_ops[FY_OP_COUNT_] = {FY_OP_LIST(S_OP_ROW)};
#undef S_OP_ROW

const char *
fy_op_name(fy_op_t op)
{
    return (unsigned)op < FY_OP_COUNT_ ? s_ops[op].name : "?";
}

unsigned
fy_op_flags(fy_op_t op)
{
    return (unsigned)op < FY_OP_COUNT_ ? s_ops[op].flags : 0;
}

bool
fy_op_lookup(fy_bytes_t name, fy_op_t *op)
{
    for (int i = 0; i < FY_OP_COUNT_; i++)
        if (fy_bytes_eq(name, fy_bytes_str(s_ops[i].name))) {
            *op = (fy_op_t)i;
            return true;
        }
    return false;
}

bool
fy_name_valid(fy_bytes_t name)
{
    if (name.len == 0 || name.len > FY_NAME_MAX)
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
bool
fy_envi_precheck(const uint8_t *p, size_t len)
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

const msgpack_object *
fy_envi_field(const msgpack_object *map, const char *key)
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

bool
fy_envi_as_uint(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

bool
fy_envi_as_bytes(const msgpack_object *o, fy_bytes_t *out)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    out->ptr = (const uint8_t *)o->via.str.ptr;
    out->len = o->via.str.size;
    return true;
}

/* Optional uint field; absent leaves *out unchanged. */
fy_status_t
fy_envi_opt_uint(const msgpack_object *map, const char *key, uint64_t max, uint64_t *out,
                 fy_err_t *err)
{
    const msgpack_object *o = fy_envi_field(map, key);
    if (!o)
        return FERRY_OK;
    uint64_t v;
    if (!fy_envi_as_uint(o, &v) || v > max)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be an unsigned integer <= %llu", key,
                          (unsigned long long)max);
    *out = v;
    return FERRY_OK;
}

fy_status_t
fy_envi_req_name(const msgpack_object *map, const char *key, fy_bytes_t *out, fy_err_t *err)
{
    const msgpack_object *o = fy_envi_field(map, key);
    if (!o)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' is required", key);
    if (!fy_envi_as_bytes(o, out))
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be a string", key);
    if (!fy_name_valid(*out))
        return fy_err_set(err, FERRY_EINVALID_NAME,
                          "field '%s': names are 1-255 characters of A-Z a-z 0-9 _ - in "
                          "dot-separated tokens",
                          key);
    return FERRY_OK;
}

/* Optional key or id: 1..FY_ID_MAX bytes of text (text.h). */
fy_status_t
fy_envi_opt_ident(const msgpack_object *map, const char *key, fy_bytes_t *out, fy_err_t *err)
{
    const msgpack_object *o = fy_envi_field(map, key);
    out->ptr = NULL;
    out->len = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return FERRY_OK;
    if (!fy_envi_as_bytes(o, out) || out->len == 0 || out->len > FY_ID_MAX)
        return fy_err_set(err, FERRY_EFIELD, "field '%s' must be a string of 1-%d bytes", key,
                          FY_ID_MAX);
    if (!fy_text_valid(*out))
        return fy_err_set(err, FERRY_EFIELD,
                          "field '%s' must be valid UTF-8 without control characters", key);
    return FERRY_OK;
}

/* Validates a header map and appends its canonical form to `out`. */
fy_status_t
fy_envi_pack_headers(const msgpack_object *o, msgpack_sbuffer *out, fy_err_t *err)
{
    if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > FY_HEADERS_MAX)
        return fy_err_set(err, FERRY_EFIELD, "field 'hdrs' must be a map of at most %d strings",
                          FY_HEADERS_MAX);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR ||
            kv->key.via.str.size == 0 || kv->key.via.str.size > FY_NAME_MAX ||
            kv->val.via.str.size > FY_HEADER_VALUE_MAX)
            return fy_err_set(err, FERRY_EFIELD,
                              "header names are 1-255 bytes and values at most %d bytes",
                              FY_HEADER_VALUE_MAX);
        fy_bytes_t name = {(const uint8_t *)kv->key.via.str.ptr, kv->key.via.str.size};
        fy_bytes_t value = {(const uint8_t *)kv->val.via.str.ptr, kv->val.via.str.size};
        if (!fy_text_valid(name) || !fy_text_valid(value))
            return fy_err_set(err, FERRY_EFIELD,
                              "header %u: %s must be valid UTF-8 without control characters", i,
                              fy_text_valid(name) ? "its value" : "its name");
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
    self->seqs = calloc(FY_FETCH_MAX, sizeof *self->seqs);
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
fy_status_t
fy_envi_unpack_map(fy_decoder_t *self, const void *buf, size_t len, const msgpack_object **map,
                   fy_err_t *err)
{
    if (!buf || len == 0)
        return fy_err_set(err, FERRY_EPROTO, "empty envelope frame");
    if (len > FY_ENVELOPE_MAX)
        return fy_err_set(err, FERRY_EPROTO, "envelope frame larger than %u bytes",
                          FY_ENVELOPE_MAX);
    if (!fy_envi_precheck(buf, len))
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

fy_status_t
fy_envi_check_version(const msgpack_object *map, fy_err_t *err)
{
    const msgpack_object *v = fy_envi_field(map, "v");
    uint64_t ver;
    if (!v || !fy_envi_as_uint(v, &ver))
        return fy_err_set(err, FERRY_EFIELD, "field 'v' (protocol version) is required");
    if (ver != FY_PROTOCOL_VERSION)
        return fy_err_set(err, FERRY_EVERSION, "protocol version %llu not supported (server: %d)",
                          (unsigned long long)ver, FY_PROTOCOL_VERSION);
    return FERRY_OK;
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
int
fy_envi_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

int
fy_envi_bytes(msgpack_packer *pk, fy_bytes_t b)
{
    return msgpack_pack_str(pk, b.len) | msgpack_pack_str_body(pk, b.ptr, b.len);
}

int
fy_envi_kv_uint(msgpack_packer *pk, const char *k, uint64_t v)
{
    return fy_envi_str(pk, k) | msgpack_pack_uint64(pk, v);
}

int
fy_envi_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    return fy_envi_str(pk, k) | fy_envi_str(pk, v);
}

int
fy_envi_head(msgpack_packer *pk, size_t nfields, const char *op, uint64_t cid)
{
    return msgpack_pack_map(pk, nfields + 3) | fy_envi_kv_uint(pk, "v", FY_PROTOCOL_VERSION) |
           fy_envi_kv_str(pk, "op", op) | fy_envi_kv_uint(pk, "cid", cid);
}

fy_status_t
fy_envi_done(fy_encoder_t *self, size_t start, int rc)
{
    if (rc != 0) {
        self->buf.size = start;
        return FERRY_ENOMEM;
    }
    return FERRY_OK;
}
