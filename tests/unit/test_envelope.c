/* SPDX-License-Identifier: MIT */
/*
 * test_envelope.c - the wire codec: request and reply round trips, and every
 * way a peer can send a bad envelope (each must give its documented status).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "curvekey.h"
#include "envelope.h"
#include "text.h"

typedef struct {
    fy_decoder_t *dec;
    fy_encoder_t *enc;
    msgpack_sbuffer raw;
    msgpack_packer pk;
} fx_t;

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->dec = fy_decoder_new();
    fx->enc = fy_encoder_new();
    msgpack_sbuffer_init(&fx->raw);
    msgpack_packer_init(&fx->pk, &fx->raw, msgpack_sbuffer_write);
    *state = fx;
    return fx->dec && fx->enc ? 0 : -1;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    fy_decoder_destroy(&fx->dec);
    fy_encoder_destroy(&fx->enc);
    assert_null(fx->dec);
    msgpack_sbuffer_destroy(&fx->raw);
    free(fx);
    return 0;
}

static void
s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Starts a raw request map with v, op, cid and `extra` more fields. */
static void
s_raw_head(fx_t *fx, const char *op, uint64_t cid, size_t extra)
{
    fx->raw.size = 0;
    msgpack_pack_map(&fx->pk, 3 + extra);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, op);
    s_str(&fx->pk, "cid");
    msgpack_pack_uint64(&fx->pk, cid);
}

static fy_status_t
s_decode_raw(fx_t *fx, size_t frames, fy_request_t *req, fy_err_t *err)
{
    return fy_request_decode(fx->dec, fx->raw.data, fx->raw.size, frames, req, err);
}

static fy_status_t
s_decode_enc(fx_t *fx, size_t frames, fy_request_t *req)
{
    fy_err_t err;
    return fy_request_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), frames,
                             req, &err);
}

static void
test_publish_round_trip(void **state)
{
    fx_t *fx = *state;
    fy_header_t hdrs[] = {{"trace", "abc"}, {"type", "OrderCreated"}};
    fy_outmsg_t m = {.data = "x",
                     .len = 1,
                     .key = "order-7",
                     .id = "svc:42",
                     .headers = hdrs,
                     .header_count = 2};
    assert_int_equal(fy_encode_publish(fx->enc, 99, "orders.created", &m, false, 0), FERRY_OK);
    fy_request_t req;
    assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_PUBLISH);
    assert_int_equal(req.cid, 99);
    assert_true(fy_bytes_eq(req.name, fy_bytes_str("orders.created")));
    assert_int_equal(req.msg_count, 1);
    assert_true(fy_bytes_eq(req.msgs[0].key, fy_bytes_str("order-7")));
    assert_true(fy_bytes_eq(req.msgs[0].id, fy_bytes_str("svc:42")));
    assert_true(req.msgs[0].hdrs.len > 0);
    assert_false(req.msgs[0].has_data); /* the payload travels as a frame */

    /* The same message with its payload inline: no frame, the bytes in 'data'. */
    fy_encoder_reset(fx->enc);
    fy_outmsg_t big = m;
    big.data = "payload bytes";
    big.len = 13;
    assert_int_equal(fy_encode_publish(fx->enc, 100, "orders.created", &big, true, 0), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_EFRAMES);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.cid, 100);
    assert_true(req.msgs[0].has_data);
    assert_true(fy_bytes_eq(req.msgs[0].data, fy_bytes_str("payload bytes")));
    assert_true(fy_bytes_eq(req.msgs[0].id, fy_bytes_str("svc:42")));
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_publish(fx->enc, 99, "orders.created", &m, false, 0), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_OK);
    assert_false(req.msgs[0].has_expect_kver);
    assert_false(req.msgs[0].has_expect_last);
    assert_int_equal(req.msgs[0].not_before_ms, 0);

    /* Expectations and a delay travel with the message. */
    fy_outmsg_t es = m;
    es.expect = FY_EXPECT_KEY_VERSION | FY_EXPECT_LAST_SEQ;
    es.expect_key_version = 0;
    es.expect_last_seq = 41;
    es.delay_ms = 1500;
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_publish(fx->enc, 98, "orders.created", &es, false, 0), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_OK);
    assert_true(req.msgs[0].has_expect_kver);
    assert_int_equal(req.msgs[0].expect_kver, 0);
    assert_true(req.msgs[0].has_expect_last);
    assert_int_equal(req.msgs[0].expect_last, 41);
    assert_int_equal(req.msgs[0].delay_ms, 1500);
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_read(fx->enc, 97, "orders", "order-7", 3, 50), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_READ);
    assert_true(fy_bytes_eq(req.key, fy_bytes_str("order-7")));
    assert_int_equal(req.seq, 3);
    assert_int_equal(req.limit, 50);
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_publish(fx->enc, 99, "orders.created", &m, false, 0), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_OK);

    /* The canonical headers come back intact in a get reply. */
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_get_begin(fx->enc, 5, 1), FERRY_OK);
    fy_entry_t e = {.seq = 12,
                    .ts_ms = 1700,
                    .key = req.msgs[0].key,
                    .id = req.msgs[0].id,
                    .hdrs = req.msgs[0].hdrs};
    assert_int_equal(fy_encode_entry(fx->enc, &e), FERRY_OK);
    /* The request borrowed from the decoder: copy the encoded reply first. */
    size_t len = fy_encoder_len(fx->enc);
    uint8_t *copy = malloc(len);
    memcpy(copy, fy_encoder_data(fx->enc), len);
    fy_reply_t rep;
    assert_int_equal(fy_reply_decode(fx->dec, copy, len, &rep, NULL), FERRY_OK);
    assert_int_equal(rep.cid, 5);
    size_t n;
    assert_int_equal(fy_reply_get_count(&rep, &n), FERRY_OK);
    assert_int_equal(n, 1);
    fy_getmsg_t g;
    assert_int_equal(fy_reply_get_msg(&rep, 0, &g), FERRY_OK);
    assert_int_equal(g.seq, 12);
    assert_int_equal(g.ts_ms, 1700);
    assert_true(fy_bytes_eq(g.key, fy_bytes_str("order-7")));
    assert_int_equal(g.header_count, 2);
    fy_bytes_t hn, hv;
    assert_int_equal(fy_reply_get_header(&rep, 0, 1, &hn, &hv), FERRY_OK);
    assert_true(fy_bytes_eq(hn, fy_bytes_str("type")));
    assert_true(fy_bytes_eq(hv, fy_bytes_str("OrderCreated")));
    assert_int_equal(fy_reply_get_header(&rep, 0, 2, &hn, &hv), FERRY_EFIELD);
    assert_false(g.has_data); /* its payload is the next frame */
    free(copy);

    /* A fetch reply whose second entry carries its payload inline. */
    fy_encoder_reset(fx->enc);
    fy_bytes_t small = fy_bytes_str("tiny");
    assert_int_equal(fy_encode_get_begin(fx->enc, 6, 2), FERRY_OK);
    fy_entry_t e1 = {.seq = 1, .ts_ms = 10, .dc = 1},
               e2 = {.seq = 2, .ts_ms = 11, .dc = 3, .kver = 9, .inline_data = &small};
    assert_int_equal(fy_encode_entry(fx->enc, &e1), FERRY_OK);
    assert_int_equal(fy_encode_entry(fx->enc, &e2), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(fy_reply_get_msg(&rep, 0, &g), FERRY_OK);
    assert_false(g.has_data);
    assert_int_equal(g.dc, 1);
    assert_int_equal(g.kver, 0);
    assert_int_equal(fy_reply_get_msg(&rep, 1, &g), FERRY_OK);
    assert_true(g.has_data);
    assert_int_equal(g.dc, 3);
    assert_int_equal(g.kver, 9);
    assert_true(fy_bytes_eq(g.data, small));
}

static void
test_publish_batch_round_trip(void **state)
{
    fx_t *fx = *state;
    fy_outmsg_t msgs[3] = {{.data = "a", .len = 1, .id = "1"},
                           {.data = "b", .len = 1, .key = "k"},
                           {.data = "c", .len = 1}};
    assert_int_equal(fy_encode_publish_batch(fx->enc, 7, "t", msgs, 3, 0), FERRY_OK);
    fy_request_t req;
    assert_int_equal(s_decode_enc(fx, 3, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_PUBLISH_BATCH);
    assert_int_equal(req.msg_count, 3);
    assert_true(fy_bytes_eq(req.msgs[0].id, fy_bytes_str("1")));
    assert_int_equal(req.msgs[1].id.len, 0);
    assert_true(fy_bytes_eq(req.msgs[1].key, fy_bytes_str("k")));
    assert_int_equal(req.msgs[2].key.len, 0);
    /* Frame count must match the message count. */
    assert_int_equal(s_decode_enc(fx, 2, &req), FERRY_EFRAMES);
    assert_int_equal(req.cid, 7);
}

static void
test_control_round_trips(void **state)
{
    fx_t *fx = *state;
    fy_request_t req;
    fy_topic_config_t cfg = {
        .dedupe_window_ms = 5000, .max_msgs = 10, .max_age_ms = 60000, .discard_new = true};
    assert_int_equal(fy_encode_declare(fx->enc, 1, FY_KIND_QUEUE, "jobs", &cfg), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_DECLARE);
    assert_int_equal(req.kind, FY_KIND_QUEUE);
    assert_int_equal(req.topic_cfg.dedupe_window_ms, 5000);
    assert_int_equal(req.topic_cfg.max_msgs, 10);
    assert_int_equal(req.topic_cfg.max_bytes, 0);
    assert_int_equal(req.topic_cfg.max_age_ms, 60000);
    assert_true(req.topic_cfg.discard_new);

    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_hello(fx->enc, 2, "me"), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_HELLO);
    assert_true(fy_bytes_eq(req.client, fy_bytes_str("me")));

    const fy_op_t simple[] = {FY_OP_PING, FY_OP_STATS};
    for (size_t i = 0; i < 2; i++) {
        fy_encoder_reset(fx->enc);
        assert_int_equal(fy_encode_simple(fx->enc, 3, simple[i], NULL), FERRY_OK);
        assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
        assert_int_equal(req.op, simple[i]);
        /* Control operations take no payload frames. */
        assert_int_equal(s_decode_enc(fx, 1, &req), FERRY_EFRAMES);
    }
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_simple(fx->enc, 4, FY_OP_INFO, "a.b"), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_true(fy_bytes_eq(req.name, fy_bytes_str("a.b")));

    fy_sub_request_t sr = {
        .start = FY_START_NEW, .start_time_ms = 1795400000000ull, .max_deliver = 7};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_sub_declare(fx->enc, 6, "a", "s", &sr), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_SUB_DECLARE);
    assert_int_equal(req.start, FY_START_TIME); /* a start time wins over "new" */
    assert_int_equal(req.seq, 1795400000000ull);
    assert_int_equal(req.max_deliver, 7);
    assert_true(fy_bytes_eq(req.sub, fy_bytes_str("s")));

    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_get(fx->enc, 5, "a", 10, 20), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.seq, 10);
    assert_int_equal(req.limit, 20);

    /* topics: after a name (or from the first), a page of 1-1000. */
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_topics(fx->enc, 7, "orders", 50), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_TOPICS);
    assert_true(fy_bytes_eq(req.name, fy_bytes_str("orders")));
    assert_int_equal(req.limit, 50);
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_topics(fx->enc, 8, NULL, 1000), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.name.len, 0);
    assert_int_equal(req.limit, 1000);
    fy_err_t err;
    const uint32_t bad_limits[] = {0, 1001};
    for (size_t i = 0; i < 2; i++) {
        fy_encoder_reset(fx->enc);
        assert_int_equal(fy_encode_topics(fx->enc, 9, "", bad_limits[i]), FERRY_OK);
        assert_int_equal(fy_request_decode(fx->dec, fy_encoder_data(fx->enc),
                                           fy_encoder_len(fx->enc), 0, &req, &err),
                         FERRY_EFIELD);
        assert_non_null(strstr(err.msg, "limit"));
    }
    fx->raw.size = 0; /* 'after' that is not a string */
    msgpack_pack_map(&fx->pk, 4);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, "topics");
    s_str(&fx->pk, "cid");
    msgpack_pack_uint64(&fx->pk, 10);
    s_str(&fx->pk, "after");
    msgpack_pack_uint64(&fx->pk, 3);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "after"));
    /* edit: only the settings named; kind and interest never; something. */
    fy_topic_config_t ec = {.max_msgs = 7, .discard_new = true};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_edit(fx->enc, 12, "orders", FY_EDIT_MAX_MSGS | FY_EDIT_DISCARD, &ec),
                     FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_EDIT);
    assert_int_equal(req.edit, FY_EDIT_MAX_MSGS | FY_EDIT_DISCARD);
    assert_int_equal(req.topic_cfg.max_msgs, 7);
    assert_true(req.topic_cfg.discard_new);
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_edit(fx->enc, 13, "orders", 0, &ec), FERRY_OK);
    assert_int_equal(fy_request_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc),
                                       0, &req, &err),
                     FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "nothing to change"));
    fx->raw.size = 0;
    msgpack_pack_map(&fx->pk, 5);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, "edit");
    s_str(&fx->pk, "cid");
    msgpack_pack_uint64(&fx->pk, 14);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "orders");
    s_str(&fx->pk, "interest");
    msgpack_pack_true(&fx->pk);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "interest and kind cannot change"));

    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_subs(fx->enc, 11, "orders", "b", 5), FERRY_OK);
    assert_int_equal(s_decode_enc(fx, 0, &req), FERRY_OK);
    assert_int_equal(req.op, FY_OP_SUBS);
    assert_true(fy_bytes_eq(req.name, fy_bytes_str("orders")));
    assert_true(fy_bytes_eq(req.sub, fy_bytes_str("b")));
    assert_int_equal(req.limit, 5);
}

static void
test_replies_round_trip(void **state)
{
    fx_t *fx = *state;
    fy_reply_t rep;
    uint64_t seq, kver;
    bool dup;
    assert_int_equal(fy_encode_confirm(fx->enc, 11, 42, true, 0), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(rep.cid, 11);
    assert_int_equal(rep.code, FERRY_OK);
    assert_int_equal(fy_reply_confirm(&rep, &seq, &dup, &kver), FERRY_OK);
    assert_int_equal(seq, 42);
    assert_true(dup);
    assert_int_equal(kver, 0);
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_confirm(fx->enc, 11, 43, false, 5), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(fy_reply_confirm(&rep, &seq, &dup, &kver), FERRY_OK);
    assert_int_equal(kver, 5);

    /* A conflict carries the values the writer should know now. */
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_conflict(fx->enc, 14, "expected 3", 77, 4), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(rep.code, FERRY_ECONFLICT);
    uint64_t last;
    assert_int_equal(fy_reply_conflict(&rep, &last, &kver), FERRY_OK);
    assert_int_equal(last, 77);
    assert_int_equal(kver, 4);

    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_error(fx->enc, 12, FERRY_ENOTFOUND, "no such topic"), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(rep.code, FERRY_ENOTFOUND);
    assert_true(fy_bytes_eq(rep.msg, fy_bytes_str("no such topic")));

    /* A cumulative confirm of cids 20..22. */
    uint64_t rseqs[] = {40, 41, 7};
    bool rdups[] = {false, false, true};
    fy_encoder_reset(fx->enc);
    uint64_t rkvers[] = {0, 2, 1};
    assert_int_equal(fy_encode_confirm_run(fx->enc, 20, rseqs, rdups, rkvers, 3), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(rep.cid, 20);
    assert_int_equal(fy_reply_run(&rep), 3);
    assert_int_equal(fy_reply_confirm_at(&rep, 1, &seq, &dup, &kver), FERRY_OK);
    assert_int_equal(seq, 41);
    assert_false(dup);
    assert_int_equal(kver, 2);
    assert_int_equal(fy_reply_confirm_at(&rep, 2, &seq, &dup, &kver), FERRY_OK);
    assert_true(dup);
    assert_int_equal(kver, 1);
    /* Anything else answers one request. */
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_confirm(fx->enc, 21, 9, false, 0), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(fy_reply_run(&rep), 1);

    uint64_t seqs[] = {5, 6, 3};
    bool dups[] = {false, false, true};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_confirm_batch(fx->enc, 13, seqs, dups, NULL, 3), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    size_t n;
    assert_int_equal(fy_reply_confirm_count(&rep, &n), FERRY_OK);
    assert_int_equal(n, 3);
    assert_int_equal(fy_reply_confirm_at(&rep, 2, &seq, &dup, &kver), FERRY_OK);
    assert_int_equal(seq, 3);
    assert_true(dup);
    assert_int_equal(kver, 0);
    assert_int_equal(fy_reply_confirm_at(&rep, 3, &seq, &dup, &kver), FERRY_EFIELD);

    fy_topic_info_t in = {.kind = FY_KIND_QUEUE,
                          .first_seq = 1,
                          .last_seq = 9,
                          .messages = 9,
                          .bytes = 900,
                          .dedupe_window_ms = 120000,
                          .created_ms = 77,
                          .max_msgs = 1000,
                          .max_age_ms = 3600000,
                          .discard_new = true};
    strcpy(in.name, "jobs");
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_info_reply(fx->enc, 14, &in, 1), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    fy_topic_info_t out;
    bool created = false;
    assert_int_equal(fy_reply_info(&rep, &out, &created), FERRY_OK);
    assert_true(created);
    assert_string_equal(out.name, "jobs");
    assert_int_equal(out.kind, FY_KIND_QUEUE);
    assert_int_equal(out.last_seq, 9);
    assert_int_equal(out.bytes, 900);
    assert_int_equal(out.dedupe_window_ms, 120000);
    assert_int_equal(out.max_msgs, 1000);
    assert_int_equal(out.max_bytes, 0);
    assert_int_equal(out.max_age_ms, 3600000);
    assert_true(out.discard_new);

    fy_stats_t st = {.topics = 2, .publishes = 10, .map_used = 4096, .errors = 1};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_stats_reply(fx->enc, 15, &st), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    fy_stats_t st2;
    assert_int_equal(fy_reply_stats(&rep, &st2), FERRY_OK);
    assert_memory_equal(&st, &st2, sizeof st);
    /* topics: the page and whether more follow. */
    fy_topic_info_t two[2] = {{.name = "a", .kind = FY_KIND_QUEUE, .messages = 3, .max_msgs = 9},
                              {.name = "b", .last_seq = 7, .interest = true, .discard_new = true}};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_topics_reply(fx->enc, 12, two, 2, true), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    size_t nt = 0;
    bool more = false;
    assert_int_equal(fy_reply_topics(&rep, &nt, &more), FERRY_OK);
    assert_int_equal(nt, 2);
    assert_true(more);
    fy_topic_info_t got;
    assert_int_equal(fy_reply_topic_at(&rep, 0, &got), FERRY_OK);
    assert_string_equal(got.name, "a");
    assert_int_equal(got.kind, FY_KIND_QUEUE);
    assert_int_equal(got.messages, 3);
    assert_int_equal(got.max_msgs, 9);
    assert_int_equal(fy_reply_topic_at(&rep, 1, &got), FERRY_OK);
    assert_string_equal(got.name, "b");
    assert_int_equal(got.last_seq, 7);
    assert_true(got.interest);
    assert_true(got.discard_new);
    assert_int_equal(fy_reply_topic_at(&rep, 2, &got), FERRY_EFIELD);
    /* subs: each subscription, and whether more follow. */
    fy_sub_listing_t one = {.name = "billing",
                            .filter = "eu.>",
                            .owner = "alice",
                            .cursor = 4,
                            .ack_floor = 2,
                            .last_seq = 9,
                            .ack_wait_ms = 30000,
                            .max_deliver = 5,
                            .created_ms = 77,
                            .consumers = 2};
    fy_encoder_reset(fx->enc);
    assert_int_equal(fy_encode_subs_reply(fx->enc, 13, &one, 1, false), FERRY_OK);
    assert_int_equal(
        fy_reply_decode(fx->dec, fy_encoder_data(fx->enc), fy_encoder_len(fx->enc), &rep, NULL),
        FERRY_OK);
    assert_int_equal(fy_reply_subs(&rep, &nt, &more), FERRY_OK);
    assert_int_equal(nt, 1);
    assert_false(more);
    fy_sub_listing_t sl;
    assert_int_equal(fy_reply_sub_at(&rep, 0, &sl), FERRY_OK);
    assert_string_equal(sl.name, "billing");
    assert_string_equal(sl.filter, "eu.>");
    assert_string_equal(sl.owner, "alice");
    assert_int_equal(sl.cursor, 4);
    assert_int_equal(sl.ack_floor, 2);
    assert_int_equal(sl.last_seq, 9);
    assert_int_equal(sl.consumers, 2);
    assert_int_equal(fy_reply_sub_at(&rep, 1, &sl), FERRY_EFIELD);
}

static void
test_malformed_msgpack(void **state)
{
    fx_t *fx = *state;
    fy_request_t req;
    fy_err_t err;
    /* Each of these is not one complete, well-formed msgpack value. */
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},
        {"\x83\xa1v\x01", 4},        /* map of 3, one entry */
        {"\xdf\x7f\xff\xff\xff", 5}, /* map32 claiming 2^31-1 entries */
        {"\xdd\xff\xff\xff\xff", 5}, /* array32 claiming 2^32-1 */
        {"\xdb\xff\xff\xff\xf0"
         "abc",
         8},                 /* str32 longer than the frame */
        {"\xc1", 1},         /* reserved byte */
        {"\x80\x80", 2},     /* trailing bytes */
        {"\xc6\x00\x00", 3}, /* truncated length */
        {"\xcb\x00\x00", 3}, /* truncated float64 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(fy_request_decode(fx->dec, bad[i].bytes, bad[i].len, 0, &req, &err),
                         FERRY_EPROTO);
        assert_int_equal(err.code, FERRY_EPROTO);
        assert_int_equal(req.cid, 0);
    }
    /* Not a map at the top. */
    fx->raw.size = 0;
    msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_uint64(&fx->pk, 1);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EPROTO);
    /* Nesting deeper than the decoder allows. */
    fx->raw.size = 0;
    for (int i = 0; i < 40; i++)
        msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_nil(&fx->pk);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EPROTO);
}

static void
test_envelope_field_errors(void **state)
{
    fx_t *fx = *state;
    fy_request_t req;
    fy_err_t err;

    /* Missing cid. */
    fx->raw.size = 0;
    msgpack_pack_map(&fx->pk, 2);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, "ping");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* cid of the wrong type. */
    fx->raw.size = 0;
    msgpack_pack_map(&fx->pk, 3);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, "ping");
    s_str(&fx->pk, "cid");
    s_str(&fx->pk, "seven");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* Wrong version: cid still reported. */
    fx->raw.size = 0;
    msgpack_pack_map(&fx->pk, 3);
    s_str(&fx->pk, "v");
    msgpack_pack_uint64(&fx->pk, 9);
    s_str(&fx->pk, "op");
    s_str(&fx->pk, "ping");
    s_str(&fx->pk, "cid");
    msgpack_pack_uint64(&fx->pk, 31);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EVERSION);
    assert_int_equal(req.cid, 31);

    s_raw_head(fx, "frobnicate", 32, 0);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EUNKNOWN_OP);
    assert_int_equal(req.cid, 32);

    /* declare: missing kind, bad kind, bad dedupe type. */
    s_raw_head(fx, "declare", 33, 1);
    s_str(&fx->pk, "name");
    s_str(&fx->pk, "a");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);
    s_raw_head(fx, "declare", 33, 2);
    s_str(&fx->pk, "name");
    s_str(&fx->pk, "a");
    s_str(&fx->pk, "kind");
    s_str(&fx->pk, "stream");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);
    s_raw_head(fx, "declare", 33, 3);
    s_str(&fx->pk, "name");
    s_str(&fx->pk, "a");
    s_str(&fx->pk, "kind");
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "dedupe_ms");
    msgpack_pack_int64(&fx->pk, -5);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* publish: topic of wrong type, key too long, headers not strings. */
    s_raw_head(fx, "publish", 34, 1);
    s_str(&fx->pk, "topic");
    msgpack_pack_uint64(&fx->pk, 5);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "key");
    s_str(&fx->pk, longkey);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "hdrs");
    msgpack_pack_map(&fx->pk, 1);
    s_str(&fx->pk, "n");
    msgpack_pack_uint64(&fx->pk, 1);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    /* Event sourcing and delays: wrong types, a negative delay, both times,
     * an expected version without key, a reply_to that names no topic. */
    s_raw_head(fx, "publish", 34, 3);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "key");
    s_str(&fx->pk, "k");
    s_str(&fx->pk, "expect_kver");
    s_str(&fx->pk, "3");
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "expect_kver"));
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "expect_kver");
    msgpack_pack_uint64(&fx->pk, 0);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "needs a 'key'"));
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "delay_ms");
    msgpack_pack_int64(&fx->pk, -1000);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    assert_non_null(strstr(err.msg, "delay_ms"));
    s_raw_head(fx, "publish", 34, 3);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "delay_ms");
    msgpack_pack_uint64(&fx->pk, 10);
    s_str(&fx->pk, "not_before");
    msgpack_pack_uint64(&fx->pk, 10);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFIELD);
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "hdrs");
    msgpack_pack_map(&fx->pk, 1);
    s_str(&fx->pk, "reply_to");
    s_str(&fx->pk, "no spaces allowed");
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EINVALID_NAME);
    assert_non_null(strstr(err.msg, "reply_to"));
    /* read: a key is required. */
    s_raw_head(fx, "read", 35, 1);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* publish without or with two payload frames. */
    s_raw_head(fx, "publish", 34, 1);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFRAMES);
    assert_int_equal(s_decode_raw(fx, 2, &req, &err), FERRY_EFRAMES);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_OK);
    assert_false(req.msgs[0].has_data);
    /* Inline data takes the place of the frame: none may follow; it must be bin. */
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "data");
    msgpack_pack_bin(&fx->pk, 2);
    msgpack_pack_bin_body(&fx->pk, "hi", 2);
    assert_int_equal(s_decode_raw(fx, 1, &req, &err), FERRY_EFRAMES);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_OK);
    assert_true(req.msgs[0].has_data);
    assert_true(fy_bytes_eq(req.msgs[0].data, fy_bytes_str("hi")));
    s_raw_head(fx, "publish", 34, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "data");
    s_str(&fx->pk, "hi");
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* publish_batch: too many messages. */
    s_raw_head(fx, "publish_batch", 35, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "msgs");
    msgpack_pack_array(&fx->pk, FY_BATCH_MAX + 1);
    for (int i = 0; i <= FY_BATCH_MAX; i++)
        msgpack_pack_map(&fx->pk, 0);
    assert_int_equal(s_decode_raw(fx, FY_BATCH_MAX + 1, &req, &err), FERRY_ETOO_MANY);

    /* get: limit out of range. */
    s_raw_head(fx, "get", 36, 2);
    s_str(&fx->pk, "topic");
    s_str(&fx->pk, "t");
    s_str(&fx->pk, "limit");
    msgpack_pack_uint64(&fx->pk, 0);
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EFIELD);

    /* ack: FY_FETCH_MAX sequences are fine (every one kept), one more is
     * too many. */
    for (int extra = 0; extra <= 1; extra++) {
        s_raw_head(fx, "ack", 37, 3);
        s_str(&fx->pk, "topic");
        s_str(&fx->pk, "t");
        s_str(&fx->pk, "sub");
        s_str(&fx->pk, "s");
        s_str(&fx->pk, "seqs");
        msgpack_pack_array(&fx->pk, FY_FETCH_MAX + extra);
        for (int i = 1; i <= FY_FETCH_MAX + extra; i++)
            msgpack_pack_uint64(&fx->pk, (uint64_t)i);
        if (extra) {
            assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_ETOO_MANY);
        } else {
            assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_OK);
            assert_int_equal(req.seq_count, FY_FETCH_MAX);
            assert_int_equal(req.seqs[FY_FETCH_MAX - 1], FY_FETCH_MAX);
        }
    }

    /* fetch: max and max_bytes in range, and out of it. */
    const uint64_t fetch_cases[][3] = {{FY_FETCH_MAX, FY_REPLY_BYTES_MAX, FERRY_OK},
                                       {FY_FETCH_MAX + 1, 1, FERRY_EFIELD},
                                       {1, 0, FERRY_EFIELD},
                                       {1, FY_REPLY_BYTES_MAX + 1, FERRY_EFIELD}};
    for (size_t i = 0; i < sizeof fetch_cases / sizeof fetch_cases[0]; i++) {
        s_raw_head(fx, "fetch", 38, 4);
        s_str(&fx->pk, "topic");
        s_str(&fx->pk, "t");
        s_str(&fx->pk, "sub");
        s_str(&fx->pk, "s");
        s_str(&fx->pk, "max");
        msgpack_pack_uint64(&fx->pk, fetch_cases[i][0]);
        s_str(&fx->pk, "max_bytes");
        msgpack_pack_uint64(&fx->pk, fetch_cases[i][1]);
        assert_int_equal(s_decode_raw(fx, 0, &req, &err), (fy_status_t)fetch_cases[i][2]);
        if (fetch_cases[i][2] == FERRY_OK) {
            assert_int_equal(req.limit, FY_FETCH_MAX);
            assert_int_equal(req.max_bytes, FY_REPLY_BYTES_MAX);
        }
    }
}

static void
test_names(void **state)
{
    (void)state;
    assert_true(fy_name_valid(fy_bytes_str("orders")));
    assert_true(fy_name_valid(fy_bytes_str("orders.created-v2_x")));
    assert_false(fy_name_valid(fy_bytes_str("")));
    assert_false(fy_name_valid(fy_bytes_str(".orders")));
    assert_false(fy_name_valid(fy_bytes_str("orders.")));
    assert_false(fy_name_valid(fy_bytes_str("a..b")));
    assert_false(fy_name_valid(fy_bytes_str("a b")));
    assert_false(fy_name_valid(fy_bytes_str("orders.*")));
    assert_false(fy_name_valid(fy_bytes_str("caf\xc3\xa9")));
    assert_false(fy_name_valid(fy_bytes_str("\xff\xfe")));
    char big[FY_NAME_MAX + 2];
    memset(big, 'a', sizeof big);
    fy_bytes_t b = {(const uint8_t *)big, FY_NAME_MAX};
    assert_true(fy_name_valid(b));
    b.len = FY_NAME_MAX + 1;
    assert_false(fy_name_valid(b));

    /* An invalid name inside a request gives EINVALID_NAME. */
    fx_t *fx = NULL;
    assert_int_equal(s_setup((void **)&fx), 0);
    s_raw_head(fx, "info", 1, 1);
    s_str(&fx->pk, "name");
    s_str(&fx->pk, "bad name");
    fy_request_t req;
    fy_err_t err;
    assert_int_equal(s_decode_raw(fx, 0, &req, &err), FERRY_EINVALID_NAME);
    assert_int_equal(err.code, FERRY_EINVALID_NAME);
    s_teardown((void **)&fx);
}

/* Random corruption of valid envelopes: decoding must return a documented
 * status (never crash or read out of bounds; run under ASan in check-asan),
 * and whatever it accepts must satisfy the decoder's promises. */
static void
test_mutations(void **state)
{
    fx_t *fx = *state;
    fy_header_t hdrs[] = {{"trace", "abc"}, {"type", "OrderCreated"}};
    fy_outmsg_t m = {.data = "x",
                     .len = 1,
                     .key = "order-7",
                     .id = "svc:42",
                     .headers = hdrs,
                     .header_count = 2};
    fy_outmsg_t batch[3] = {m, {.data = "y", .len = 1}, {.data = "z", .len = 1, .id = "q"}};
    fy_topic_config_t cfg = {.dedupe_window_ms = 500, .max_bytes = 1 << 20};
    size_t offs[6], lens[6], frames[6] = {1, 3, 0, 0, 0, 0};
    size_t k = 0;
#define S_ADD(call)                                  \
    do {                                             \
        offs[k] = fy_encoder_len(fx->enc);           \
        assert_int_equal(call, FERRY_OK);            \
        lens[k] = fy_encoder_len(fx->enc) - offs[k]; \
        k++;                                         \
    } while (0)
    S_ADD(fy_encode_publish(fx->enc, 1, "orders.created", &m, false, 0));
    S_ADD(fy_encode_publish_batch(fx->enc, 2, "orders", batch, 3, 0));
    S_ADD(fy_encode_declare(fx->enc, 3, FY_KIND_QUEUE, "jobs", &cfg));
    S_ADD(fy_encode_get(fx->enc, 4, "orders", 7, 10));
    S_ADD(fy_encode_hello(fx->enc, 5, "client"));
    S_ADD(fy_encode_simple(fx->enc, 6, FY_OP_INFO, "x.y"));
#undef S_ADD
    const uint8_t *all = fy_encoder_data(fx->enc);
    uint8_t buf[512];
    unsigned seed = 12345;
    size_t accepted = 0;
    for (int iter = 0; iter < 50000; iter++) {
        size_t which = (size_t)rand_r(&seed) % k, len = lens[which];
        assert_true(len <= sizeof buf);
        memcpy(buf, all + offs[which], len);
        int edits = 1 + rand_r(&seed) % 4;
        for (int e = 0; e < edits; e++)
            buf[(size_t)rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
        if (rand_r(&seed) % 8 == 0)
            len = (size_t)rand_r(&seed) % len; /* truncate */
        size_t nframes = rand_r(&seed) % 4 == 0 ? (size_t)rand_r(&seed) % 4 : frames[which];
        fy_request_t req;
        fy_err_t err;
        fy_status_t st = fy_request_decode(fx->dec, buf, len, nframes, &req, &err);
        switch (st) {
        case FERRY_OK:
            accepted++;
            assert_true(req.op < FY_OP_COUNT_);
            assert_true(req.msg_count <= FY_BATCH_MAX);
            if (req.op == FY_OP_PUBLISH || req.op == FY_OP_PUBLISH_BATCH) {
                assert_int_equal(req.msg_count, nframes);
                assert_true(fy_name_valid(req.name));
                for (size_t i = 0; i < req.msg_count; i++)
                    assert_true(req.msgs[i].key.len <= FY_ID_MAX &&
                                req.msgs[i].id.len <= FY_ID_MAX);
            }
            break;
        default:
            /* Every refusal is the peer's fault, with its own message. */
            if (!fy_status_bad_input(st))
                fail_msg("unexpected status %d", st);
            assert_int_equal(err.code, st);
            assert_true(strlen(err.msg) > 0);
        }
    }
    /* Some mutations hit only payload-ish bytes and still decode. */
    assert_true(accepted > 0);
}

static void
test_status_text(void **state)
{
    (void)state;
    assert_string_equal(fy_status_name(FERRY_ESTORAGE_FULL), "ESTORAGE_FULL");
    assert_string_equal(fy_status_text(FERRY_OK), "success");
    assert_string_equal(fy_status_name(9999), "EUNKNOWN");
    assert_string_equal(fy_status_text(-1), "unknown status");
    assert_string_equal(fy_op_name(FY_OP_PUBLISH_BATCH), "publish_batch");
    assert_true(fy_status_bad_input(FERRY_EFRAMES));
    assert_false(fy_status_bad_input(FERRY_ENOTFOUND));
    assert_false(fy_status_bad_input(FERRY_ESTORAGE_FULL));
}

/* The text rule (proto/text.c): UTF-8, shortest forms, no surrogates, no
 * control characters; and its escaping for terminals. */
static void
test_text_rule(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"plain-ascii.123", 15, true},
        {"\xc3\xa4", 2, true},          /* U+00E4 */
        {"\xe2\x82\xac", 3, true},      /* U+20AC */
        {"\xf0\x9f\x9a\xa2", 4, true},  /* U+1F6A2 */
        {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF, the last */
        {"\xc2\xa0", 2, true},          /* U+00A0, just past C1 */
        {"\x1f", 1, false},             /* C0 */
        {"\x7f", 1, false},             /* DEL */
        {"\xc2\x80", 2, false},         /* U+0080, C1 */
        {"\xc2\x9f", 2, false},         /* U+009F, C1 */
        {"\xc0\x80", 2, false},         /* overlong NUL */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, false}, /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
        {"\xf5\x80\x80\x80", 4, false}, /* no such lead */
        {"\x80", 1, false},             /* a continuation alone */
        {"\xe2\x82", 2, false},         /* cut short */
        {"ok\x00", 3, false},           /* NUL */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fy_bytes_t b = {(const uint8_t *)cases[i].s, cases[i].len};
        if (fy_text_valid(b) != cases[i].ok)
            fail_msg("case %zu: expected %s", i, cases[i].ok ? "valid" : "invalid");
    }
    char out[64];
    fy_bytes_t b = {(const uint8_t *)"a\x1b[1m\\\xc3\xa4\xff", 9};
    assert_int_equal(fy_text_escape(b, out, sizeof out), 16);
    assert_string_equal(out, "a\\x1b[1m\\\\\xc3\xa4\\xff");
    /* Cut at a whole character, always terminated; the length it needs. */
    assert_int_equal(fy_text_escape(b, out, 4), 16);
    assert_string_equal(out, "a");
    assert_int_equal(fy_text_escape(b, NULL, 0), 16);
}

/* A key is 40 z85 characters, even one that begins with '@' (a z85
 * character: one public key in 85 does); "@PATH" names a file. Before, such
 * a key in FERRY_SERVER_KEY was taken for a file name and refused. */
static void
test_curve_key_spec(void **state)
{
    (void)state;
    const char *key = "@Bdo1kL}9Gw7nH6d-Qx1b2F[zK&c8Hr<3]Q1S(qA";
    assert_int_equal(strlen(key), 40);
    char out[41];
    fy_err_t err;
    assert_true(fy_curvekey_valid(key));
    assert_int_equal(fy_curvekey_read(key, false, out, &err), FERRY_OK);
    assert_string_equal(out, key);
    assert_int_equal(fy_curvekey_read("@/nonexistent/ferry.pub", false, out, &err), FERRY_EIO);
    assert_int_equal(fy_curvekey_read("not-a-key", false, out, &err), FERRY_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_rule),
        cmocka_unit_test_setup_teardown(test_publish_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_publish_batch_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_control_round_trips, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replies_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_msgpack, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_envelope_field_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_mutations, s_setup, s_teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_curve_key_spec),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
