/* SPDX-License-Identifier: MIT */
/*
 * envelope_int.h - what the codec's files share and nothing else sees: the
 * decoder and encoder structs and the msgpack helpers of envelope.c, used by
 * request.c (requests: decode in the broker, encode in libferry) and reply.c
 * (replies and deliveries: encode in the broker, decode in libferry).
 */
#ifndef FY_ENVELOPE_INT_H
#define FY_ENVELOPE_INT_H

#include "envelope.h"

#include <msgpack.h>

struct fy_decoder {
    msgpack_unpacked unpacked; /* zone reused across decodes */
    uint64_t *seqs;            /* ack sequences, FY_FETCH_MAX entries */
    fy_pubmeta_t *metas;       /* publish metadata, FY_BATCH_MAX entries */
    msgpack_sbuffer hdrs;      /* canonical headers of the decoded publish */
};

struct fy_encoder {
    msgpack_sbuffer buf;
    msgpack_packer pk;
};

/* True if [p, p+len) is exactly one well-formed msgpack value within limits. */
bool fy_envi_precheck(const uint8_t *p, size_t len);
const msgpack_object *fy_envi_field(const msgpack_object *map, const char *key);
bool fy_envi_as_uint(const msgpack_object *o, uint64_t *out);
bool fy_envi_as_bytes(const msgpack_object *o, fy_bytes_t *out);
fy_status_t fy_envi_opt_uint(const msgpack_object *map, const char *key, uint64_t max,
                             uint64_t *out, fy_err_t *err);
fy_status_t fy_envi_req_name(const msgpack_object *map, const char *key, fy_bytes_t *out,
                             fy_err_t *err);
fy_status_t fy_envi_opt_ident(const msgpack_object *map, const char *key, fy_bytes_t *out,
                              fy_err_t *err);
fy_status_t fy_envi_pack_headers(const msgpack_object *o, msgpack_sbuffer *out, fy_err_t *err);
fy_status_t fy_envi_unpack_map(fy_decoder_t *self, const void *buf, size_t len,
                               const msgpack_object **map, fy_err_t *err);
fy_status_t fy_envi_check_version(const msgpack_object *map, fy_err_t *err);
int fy_envi_str(msgpack_packer *pk, const char *s);
int fy_envi_bytes(msgpack_packer *pk, fy_bytes_t b);
int fy_envi_kv_uint(msgpack_packer *pk, const char *k, uint64_t v);
int fy_envi_kv_str(msgpack_packer *pk, const char *k, const char *v);
int fy_envi_head(msgpack_packer *pk, size_t nfields, const char *op, uint64_t cid);
fy_status_t fy_envi_done(fy_encoder_t *self, size_t start, int rc);

#endif
