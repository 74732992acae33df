/* SPDX-License-Identifier: MIT */
/*
 * test_badinput.c - a raw ZeroMQ DEALER sends a corpus of malformed requests
 * to a real ferryd. Each must get its documented error code (with the
 * request's cid when it could be read), be logged, change no stored data,
 * and leave the connection working for a normal publish afterwards.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>
#include <zmq.h>

#include "clock.h"
#include "envelope.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef struct {
    fy_ferryd_t d;
    void *ctx, *sock;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    fy_decoder_t *dec;
} fx_t;

static int
s_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    fx->d.extra[0] = "--max-msg-bytes";
    fx->d.extra[1] = "1K";
    if (fy_ferryd_start(&fx->d) != 0)
        return -1;
    fx->ctx = zmq_ctx_new();
    fx->sock = fy_raw_socket(fx->ctx, ZMQ_DEALER);
    int linger = 0, timeo = 5000;
    zmq_setsockopt(fx->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(fx->sock, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
    if (zmq_connect(fx->sock, fx->d.endpoint) != 0)
        return -1;
    msgpack_sbuffer_init(&fx->buf);
    msgpack_packer_init(&fx->pk, &fx->buf, msgpack_sbuffer_write);
    fx->dec = fy_decoder_new();
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    zmq_close(fx->sock);
    zmq_ctx_term(fx->ctx);
    msgpack_sbuffer_destroy(&fx->buf);
    fy_decoder_destroy(&fx->dec);
    fy_ferryd_cleanup(&fx->d);
    free(fx);
    return 0;
}

static void
s_str(fx_t *fx, const char *s)
{
    msgpack_pack_str(&fx->pk, strlen(s));
    msgpack_pack_str_body(&fx->pk, s, strlen(s));
}

/* Starts an envelope map: v, op, cid and `extra` more entries. */
static void
s_head(fx_t *fx, const char *op, uint64_t cid, size_t extra)
{
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 3 + extra);
    s_str(fx, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(fx, "op");
    s_str(fx, op);
    s_str(fx, "cid");
    msgpack_pack_uint64(&fx->pk, cid);
}

/* Sends `nframes` frames: the envelope (fx->buf or `raw`) then payloads of `plen` bytes. */
static void
s_send(fx_t *fx, const void *raw, size_t rawlen, size_t payloads, size_t plen)
{
    const void *env = raw ? raw : fx->buf.data;
    size_t envlen = raw ? rawlen : fx->buf.size;
    assert_true(zmq_send(fx->sock, env, envlen, payloads ? ZMQ_SNDMORE : 0) >= 0);
    char *p = calloc(1, plen + 1);
    for (size_t i = 0; i < payloads; i++)
        assert_true(zmq_send(fx->sock, p, plen, i + 1 < payloads ? ZMQ_SNDMORE : 0) >= 0);
    free(p);
}

/* Receives one reply and checks its code and cid. */
static void
s_expect(fx_t *fx, fy_status_t code, uint64_t cid)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, fx->sock, 0) >= 0);
    assert_false(zmq_msg_more(&m));
    fy_reply_t rep;
    fy_err_t err;
    assert_int_equal(fy_reply_decode(fx->dec, zmq_msg_data(&m), zmq_msg_size(&m), &rep, &err),
                     FERRY_OK);
    if (rep.code != code)
        fail_msg("expected %s, got %s (%.*s)", ferry_errname(code), ferry_errname(rep.code),
                 (int)rep.msg.len, (const char *)rep.msg.ptr);
    assert_int_equal(rep.cid, cid);
    if (code != FERRY_OK)
        assert_true(rep.msg.len > 0);
    zmq_msg_close(&m);
}

static void
s_declare(fx_t *fx, const char *name, uint64_t cid)
{
    s_head(fx, "declare", cid, 2);
    s_str(fx, "name");
    s_str(fx, name);
    s_str(fx, "kind");
    s_str(fx, "topic");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_OK, cid);
}

static void
s_publish(fx_t *fx, const char *topic, uint64_t cid, fy_status_t expect)
{
    s_head(fx, "publish", cid, 1);
    s_str(fx, "topic");
    s_str(fx, topic);
    s_send(fx, NULL, 0, 1, 10);
    s_expect(fx, expect, cid);
}

static void
test_malformed_corpus(void **state)
{
    fx_t *fx = *state;
    s_declare(fx, "safe", 1);
    s_publish(fx, "safe", 2, FERRY_OK);

    /* Not msgpack at all, truncated, and lying about lengths: no cid readable. */
    static const struct {
        const char *bytes;
        size_t len;
    } garbage[] = {
        {"hello, broker", 13},
        {"\x83\xa1v\x01\xa2op", 7},      /* truncated map */
        {"\xdf\x7f\xff\xff\xff", 5},     /* map32 with 2^31-1 entries */
        {"\xdd\xff\xff\xff\xff\x01", 6}, /* array32 with 2^32-1 items */
        {"\xdb\xff\xff\xff\xff"
         "ab",
         7},                     /* str32 of 4 GiB */
        {"\xc1", 1},             /* reserved byte */
        {"", 0},                 /* empty envelope frame */
        {"\x93\x01\x02\x03", 4}, /* an array, not a map */
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        s_send(fx, garbage[i].bytes, garbage[i].len, 0, 0);
        s_expect(fx, FERRY_EPROTO, 0);
    }

    /* Wrong types. */
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 3);
    s_str(fx, "v");
    msgpack_pack_uint64(&fx->pk, 1);
    s_str(fx, "op");
    msgpack_pack_uint64(&fx->pk, 7);
    s_str(fx, "cid");
    msgpack_pack_uint64(&fx->pk, 10);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 10);

    s_head(fx, "publish", 11, 1);
    s_str(fx, "topic");
    msgpack_pack_array(&fx->pk, 0);
    s_send(fx, NULL, 0, 1, 1);
    s_expect(fx, FERRY_EFIELD, 11);

    s_head(fx, "get", 12, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "seq");
    msgpack_pack_double(&fx->pk, 1.5);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 12);

    /* Unknown operation and unsupported version. */
    s_head(fx, "teleport", 13, 0);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EUNKNOWN_OP, 13);
    fx->buf.size = 0;
    msgpack_pack_map(&fx->pk, 3);
    s_str(fx, "v");
    msgpack_pack_uint64(&fx->pk, 2);
    s_str(fx, "op");
    s_str(fx, "ping");
    s_str(fx, "cid");
    msgpack_pack_uint64(&fx->pk, 14);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EVERSION, 14);

    /* Frame counts: none, two, fifty, and more than any request may have. */
    s_head(fx, "publish", 15, 1);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFRAMES, 15);
    s_send(fx, NULL, 0, 2, 3);
    s_expect(fx, FERRY_EFRAMES, 15);
    s_send(fx, NULL, 0, 49, 3);
    s_expect(fx, FERRY_EFRAMES, 15);
    s_send(fx, NULL, 0, FY_BATCH_MAX + 5, 1);
    s_expect(fx, FERRY_EFRAMES, 0);
    /* Inline data: with a payload frame as well, or not bin. */
    s_head(fx, "publish", 17, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "data");
    msgpack_pack_bin(&fx->pk, 3);
    msgpack_pack_bin_body(&fx->pk, "abc", 3);
    s_send(fx, NULL, 0, 1, 3);
    s_expect(fx, FERRY_EFRAMES, 17);
    s_head(fx, "publish", 18, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "data");
    s_str(fx, "abc");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 18);
    s_head(fx, "ping", 16, 0);
    s_send(fx, NULL, 0, 1, 1);
    s_expect(fx, FERRY_EFRAMES, 16);

    /* Event sourcing and time: an expected version that is not a number, a
     * negative delay, a reply_to that names no topic, a read without key. */
    s_head(fx, "publish", 90, 3);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "key");
    s_str(fx, "k");
    s_str(fx, "expect_kver");
    s_str(fx, "seven");
    s_send(fx, NULL, 0, 1, 1);
    s_expect(fx, FERRY_EFIELD, 90);
    s_head(fx, "publish", 91, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "delay_ms");
    msgpack_pack_int64(&fx->pk, -500);
    s_send(fx, NULL, 0, 1, 1);
    s_expect(fx, FERRY_EFIELD, 91);
    s_head(fx, "publish", 92, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "hdrs");
    msgpack_pack_map(&fx->pk, 1);
    s_str(fx, "reply_to");
    s_str(fx, "inbox with spaces");
    s_send(fx, NULL, 0, 1, 1);
    s_expect(fx, FERRY_EINVALID_NAME, 92);
    s_head(fx, "read", 93, 1);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 93);

    /* Invalid names, including bytes that are not UTF-8. */
    const char *bad_names[] = {"has space", "\xff\xfe\xfd", "a..b", ".x", "orders.*", ""};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        s_publish(fx, bad_names[i], 20 + i, FERRY_EINVALID_NAME);
        s_head(fx, "declare", 40 + i, 2);
        s_str(fx, "name");
        s_str(fx, bad_names[i]);
        s_str(fx, "kind");
        s_str(fx, "topic");
        s_send(fx, NULL, 0, 0, 0);
        s_expect(fx, FERRY_EINVALID_NAME, 40 + i);
    }

    /* Unknown topic, oversized message (limit 1K), batch with frames missing. */
    s_publish(fx, "nowhere", 60, FERRY_ENOTFOUND);
    s_head(fx, "publish", 61, 1);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_send(fx, NULL, 0, 1, 1025);
    s_expect(fx, FERRY_ETOO_LARGE, 61);
    s_head(fx, "publish_batch", 62, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "msgs");
    msgpack_pack_array(&fx->pk, 3);
    for (int i = 0; i < 3; i++)
        msgpack_pack_map(&fx->pk, 0);
    s_send(fx, NULL, 0, 2, 5);
    s_expect(fx, FERRY_EFRAMES, 62);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFRAMES, 62);
    /* A batch with one oversized message is refused whole. */
    assert_true(zmq_send(fx->sock, fx->buf.data, fx->buf.size, ZMQ_SNDMORE) >= 0);
    char big[2048] = {0};
    assert_true(zmq_send(fx->sock, "a", 1, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(fx->sock, big, sizeof big, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(fx->sock, "c", 1, 0) >= 0);
    s_expect(fx, FERRY_ETOO_LARGE, 62);

    /* Consumption requests: no "sub" field means a queue's own subscription;
     * a named one on a queue, credit for no consumer, a bad filter: errors. */
    s_head(fx, "declare", 70, 2);
    s_str(fx, "name");
    s_str(fx, "q");
    s_str(fx, "kind");
    s_str(fx, "queue");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_OK, 70);
    s_head(fx, "fetch", 71, 2);
    s_str(fx, "topic");
    s_str(fx, "q");
    s_str(fx, "max");
    msgpack_pack_uint64(&fx->pk, 5);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_OK, 71);
    s_head(fx, "sub_declare", 72, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "filter");
    s_str(fx, "a.>.b");
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 72);
    s_head(fx, "credit", 73, 2);
    s_str(fx, "consumer");
    msgpack_pack_uint64(&fx->pk, 999);
    s_str(fx, "credit");
    msgpack_pack_uint64(&fx->pk, 10);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_ENOTFOUND, 73);
    s_head(fx, "ack", 74, 3);
    s_str(fx, "topic");
    s_str(fx, "q");
    s_str(fx, "sub");
    s_str(fx, "");
    s_str(fx, "seqs");
    msgpack_pack_array(&fx->pk, 1);
    msgpack_pack_uint64(&fx->pk, 12);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_ESEQ, 74);
    s_head(fx, "subscribe", 75, 3); /* a heartbeat below 100 ms */
    s_str(fx, "topic");
    s_str(fx, "q");
    s_str(fx, "credit");
    msgpack_pack_uint64(&fx->pk, 10);
    s_str(fx, "heartbeat_ms");
    msgpack_pack_uint64(&fx->pk, 5);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EFIELD, 75);

    /* The same connection still works, and nothing bad was stored. */
    s_publish(fx, "safe", 99, FERRY_OK);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "safe", &info), FERRY_OK);
    assert_int_equal(info.messages, 2);
    assert_int_equal(info.last_seq, 2);
    ferry_stats_t st;
    assert_int_equal(ferry_client_stats(c, &st), FERRY_OK);
    assert_int_equal(st.topics, 2); /* safe and q */
    assert_int_equal(st.messages, 2);
    assert_true(st.errors >= 30);
    ferry_client_destroy(&c);
    /* Logged as warnings, one line per peer per 10 s (the rest counted in
     * the next line's held_back): all came from one peer just now. */
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"bad request\""), 1);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "level=error"), 0);
}

/* A raw publish whose key / id / one header is @p bad: EFIELD naming it. */
static void
s_publish_text(fx_t *fx, uint64_t cid, const char *field, const char *bad, size_t badlen,
               const char *says)
{
    bool hdr = strcmp(field, "hdrs") == 0;
    s_head(fx, "publish", cid, 2);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, field);
    if (hdr) {
        msgpack_pack_map(&fx->pk, 1);
        s_str(fx, "trace");
    }
    msgpack_pack_str(&fx->pk, badlen);
    msgpack_pack_str_body(&fx->pk, bad, badlen);
    s_send(fx, NULL, 0, 1, 4);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, fx->sock, 0) >= 0);
    fy_reply_t rep;
    fy_err_t err;
    assert_int_equal(fy_reply_decode(fx->dec, zmq_msg_data(&m), zmq_msg_size(&m), &rep, &err),
                     FERRY_OK);
    assert_int_equal(rep.code, FERRY_EFIELD);
    assert_int_equal(rep.cid, cid);
    char msg[300];
    snprintf(msg, sizeof msg, "%.*s", (int)rep.msg.len, (const char *)rep.msg.ptr);
    if (!strstr(msg, says))
        fail_msg("%s '%s': the reply '%s' does not say '%s'", field, bad, msg, says);
    zmq_msg_close(&m);
}

/* Keys, ids, header names and values are UTF-8 without control characters:
 * anything else is refused (EFIELD naming the field), nothing is stored,
 * and the connection goes on. */
static void
test_text_fields_validated(void **state)
{
    fx_t *fx = *state;
    s_declare(fx, "safe", 1);
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"a\x1b[31m", 7},                                     /* ESC: would drive a terminal */
        {"line\nbreak", 10},                                  /* C0 control */
        {"tab\there", 8},    {"del\x7f", 4}, {"\xc2\x85", 2}, /* U+0085, a C1 control */
        {"\xff\xfe", 2},                                      /* not UTF-8 */
        {"\xc0\xaf", 2},                                      /* overlong '/' */
        {"\xed\xa0\x80", 3},                                  /* a surrogate */
        {"\xe2\x82", 2},                                      /* cut short */
        {"\x00x", 2},                                         /* NUL */
    };
    uint64_t cid = 10;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_publish_text(fx, cid++, "key", bad[i].bytes, bad[i].len,
                       "field 'key' must be valid UTF-8 without control characters");
        s_publish_text(fx, cid++, "id", bad[i].bytes, bad[i].len,
                       "field 'id' must be valid UTF-8 without control characters");
        s_publish_text(fx, cid++, "hdrs", bad[i].bytes, bad[i].len,
                       "header 0: its value must be valid UTF-8 without control characters");
    }
    /* Text that is fine, multi-byte and all: stored. */
    s_head(fx, "publish", 500, 3);
    s_str(fx, "topic");
    s_str(fx, "safe");
    s_str(fx, "key");
    s_str(fx, "kunde-\xc3\xa4\xe2\x82\xac\xf0\x9f\x9a\xa2"); /* ä € ship */
    s_str(fx, "id");
    s_str(fx, "id-\xe6\x97\xa5");
    s_send(fx, NULL, 0, 1, 4);
    s_expect(fx, FERRY_OK, 500);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "safe", &info), FERRY_OK);
    assert_int_equal(info.messages, 1);
    /* libferry refuses the same before sending (FERRY_EINVAL). */
    ferry_message_t m = {.data = "x", .len = 1, .key = "a\x1b[31m"};
    assert_int_equal(ferry_client_publish(c, "safe", &m, NULL), FERRY_EINVAL);
    ferry_header_t h[] = {{"trace", "\xff"}};
    ferry_message_t mh = {.data = "x", .len = 1, .headers = h, .header_count = 1};
    assert_int_equal(ferry_client_publish(c, "safe", &mh, NULL), FERRY_EINVAL);
    ferry_client_destroy(&c);
}

/* A refusal's log line names the client as its hello did (client="..."),
 * quotes and all. */
static void
test_log_names_the_client(void **state)
{
    fx_t *fx = *state;
    ferry_options_t *o = ferry_options_new();
    assert_int_equal(ferry_options_set_server(o, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_name(o, "order service \"eu\""), FERRY_OK);
    ferry_client_t *c = NULL;
    assert_int_equal(ferry_client_new(o, &c), FERRY_OK);
    ferry_options_destroy(&o);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "q1", NULL, NULL, NULL), FERRY_OK);
    /* A queue has nothing to seek to: EFIELD, bad input, logged. */
    assert_int_equal(ferry_client_sub_seek(c, "q1", "x", 1, 0, NULL), FERRY_EFIELD);
    ferry_client_destroy(&c);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"bad request\" code=EFIELD op=seek"), 1);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "client=\"order service _eu_\""), 1);
}

/* A peer that sends malformed requests in a loop gets one log line per
 * 10 s; another peer gets its own. */
static void
test_bad_requests_logged_per_peer(void **state)
{
    fx_t *fx = *state;
    for (uint64_t i = 0; i < 1000; i++) {
        s_head(fx, "no_such_op", i + 1, 0);
        s_send(fx, NULL, 0, 0, 0);
        s_expect(fx, FERRY_EUNKNOWN_OP, i + 1);
    }
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"bad request\""), 1);
    void *other = fy_raw_socket(fx->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(other, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(other, fx->d.endpoint), 0);
    void *mine = fx->sock;
    fx->sock = other;
    s_head(fx, "no_such_op", 7, 0);
    s_send(fx, NULL, 0, 0, 0);
    s_expect(fx, FERRY_EUNKNOWN_OP, 7);
    fx->sock = mine;
    zmq_close(other);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"bad request\""), 2);
    /* Every refusal is counted all the same. */
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c);
    ferry_stats_t st;
    assert_int_equal(ferry_client_stats(c, &st), FERRY_OK);
    assert_true(st.errors >= 1001);
    ferry_client_destroy(&c);
}

static void
test_too_big_frame_drops_only_that_peer(void **state)
{
    fx_t *fx = *state;
    s_declare(fx, "safe", 1);
    /* A frame far past --max-msg-bytes + 1 MiB: libzmq drops that connection. */
    void *rogue = fy_raw_socket(fx->ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(rogue, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(rogue, fx->d.endpoint), 0);
    size_t huge = 4u << 20;
    char *p = calloc(1, huge);
    s_head(fx, "publish", 5, 1);
    s_str(fx, "topic");
    s_str(fx, "safe");
    assert_true(zmq_send(rogue, fx->buf.data, fx->buf.size, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(rogue, p, huge, 0) >= 0);
    free(p);
    /* Other connections are not affected. */
    s_publish(fx, "safe", 6, FERRY_OK);
    zmq_close(rogue);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "safe", &info), FERRY_OK);
    assert_int_equal(info.messages, 1);
    ferry_client_destroy(&c);
}

/* A push consumer belongs to the connection that made it: another one can
 * neither release it nor give it credit (ENOTFOUND), and it goes on
 * receiving. (Consumer ids also never repeat across restarts: a client
 * coming back releases its old id, which must not be a new consumer.) */
static ferry_msg_action_t
s_count_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c, (void)m;
    (*(int *)user)++;
    return FERRY_MSG_ACK;
}

static void
test_consumer_of_another_connection(void **state)
{
    fx_t *fx = *state;
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "owned", NULL, NULL, NULL),
                     FERRY_OK);
    int got = 0;
    uint64_t id = 0;
    assert_int_equal(ferry_client_subscribe(c, "owned", NULL, 10, s_count_msg, &got, &id),
                     FERRY_OK);
    assert_true(id > 1000); /* not 1, 2, ... again after each start */
    fy_encoder_t *enc = fy_encoder_new();
    assert_int_equal(fy_encode_consumer_op(enc, 41, FY_OP_UNSUBSCRIBE, id, 0), FERRY_OK);
    assert_true(zmq_send(fx->sock, fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    s_expect(fx, FERRY_ENOTFOUND, 41);
    fy_encoder_reset(enc);
    assert_int_equal(fy_encode_consumer_op(enc, 42, FY_OP_CREDIT, id, 100), FERRY_OK);
    assert_true(zmq_send(fx->sock, fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    s_expect(fx, FERRY_ENOTFOUND, 42);
    fy_encoder_destroy(&enc);
    ferry_message_t m = {.data = "x", .len = 1};
    assert_int_equal(ferry_client_publish(c, "owned", &m, NULL), FERRY_OK);
    long long until = fy_now_ms() + 5000;
    while (got < 1 && fy_now_ms() < until)
        ferry_client_poll(c, 20);
    assert_int_equal(got, 1);
    ferry_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_malformed_corpus, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_text_fields_validated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_names_the_client, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_logged_per_peer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_too_big_frame_drops_only_that_peer, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_consumer_of_another_connection, s_setup, s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("badinput", tests, NULL, NULL);
}
