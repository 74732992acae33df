/* SPDX-License-Identifier: MIT */
/*
 * seeds.c - writes the seed corpus of every fuzz target (fuzz.h) into
 * tests/fuzz/corpus/<target>/: well-formed inputs made with the real
 * encoders, so that fuzzing starts from the protocol rather than from
 * nothing. `make fuzz-seeds` runs it; the files are in the repository.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "envelope.h"

static const char *s_top;

static void
s_write(const char *target, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", s_top, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s/seed-%s", s_top, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The encoder's bytes, after a frame-count byte (request seeds). */
static void
s_req(fy_encoder_t *e, const char *name, uint8_t frames)
{
    size_t n = fy_encoder_len(e);
    uint8_t *b = malloc(n + 1);
    b[0] = frames;
    memcpy(b + 1, fy_encoder_data(e), n);
    s_write("request", name, b, n + 1);
    free(b);
    fy_encoder_reset(e);
}

static void
s_rep(fy_encoder_t *e, const char *name)
{
    s_write("reply", name, fy_encoder_data(e), fy_encoder_len(e));
    fy_encoder_reset(e);
}

static void
s_requests(fy_encoder_t *e)
{
    fy_encode_hello(e, 1, "seed");
    s_req(e, "hello", 0);
    fy_encode_declare(e, 2, FY_KIND_TOPIC, "orders.eu", NULL);
    s_req(e, "declare", 0);
    fy_header_t h[] = {{"traceparent", "00-abc"}, {"type", "placed"}};
    fy_outmsg_t m = {
        .data = "hello", .len = 5, .key = "o-1", .id = "m-1", .headers = h, .header_count = 2};
    fy_encode_publish(e, 3, "orders.eu", &m, true, 0);
    s_req(e, "publish-inline", 0);
    fy_encode_publish(e, 4, "orders.eu", &m, false, 7);
    s_req(e, "publish-frame", 1);
    fy_outmsg_t batch[2] = {m, {.data = "x", .len = 1, .id = "m-2"}};
    fy_encode_publish_batch(e, 5, "orders.eu", batch, 2, 0);
    s_req(e, "publish-batch", 2);
    fy_encode_get(e, 6, "orders.eu", 1, 100);
    s_req(e, "get", 0);
    fy_encode_read(e, 7, "orders.eu", "o-1", 1, 10);
    s_req(e, "read", 0);
    fy_sub_request_t sr = {.filter = "orders.*", .ack_wait_ms = 1000, .max_deliver = 3};
    fy_encode_sub_declare(e, 8, "orders.eu", "billing", &sr);
    s_req(e, "sub-declare", 0);
    fy_encode_fetch(e, 9, "orders.eu", "billing", 100, 65536, 500);
    s_req(e, "fetch", 0);
    uint64_t seqs[] = {1, 2, 3};
    fy_encode_ack(e, 10, "orders.eu", "billing", seqs, 3, true);
    s_req(e, "ack", 0);
    fy_encode_nack(e, 11, "orders.eu", "billing", 4, 250, false);
    s_req(e, "nack", 0);
    fy_encode_term(e, 12, "orders.eu", "billing", 5, "bad input");
    s_req(e, "term", 0);
    fy_encode_subscribe(e, 13, "orders.eu", "billing", 1000, 5000);
    s_req(e, "subscribe", 0);
    fy_encode_consumer_op(e, 14, FY_OP_CREDIT, 77, 500);
    s_req(e, "credit", 0);
    fy_encode_simple(e, 15, FY_OP_PING, NULL);
    s_req(e, "ping", 0);
}

static void
s_replies(fy_encoder_t *e, fy_encoder_t *items)
{
    fy_encode_ok(e, 1);
    s_rep(e, "ok");
    fy_encode_error(e, 2, FERRY_ENOTFOUND, "no such topic or queue");
    s_rep(e, "error");
    fy_encode_hello_ok(e, 3, "ferryd 0.3", 1 << 20);
    s_rep(e, "hello");
    fy_encode_confirm(e, 4, 42, false, 3);
    s_rep(e, "confirm");
    uint64_t seqs[] = {5, 6, 7}, kvers[] = {1, 2, 0};
    bool dups[] = {false, true, false};
    fy_encode_confirm_run(e, 5, seqs, dups, kvers, 3);
    s_rep(e, "confirm-run");
    fy_encode_confirm_batch(e, 6, seqs, dups, kvers, 3);
    s_rep(e, "confirm-batch");
    fy_encode_conflict(e, 7, "expected 3", 9, 4);
    s_rep(e, "conflict");
    fy_topic_info_t info = {.messages = 3, .first_seq = 1, .last_seq = 3};
    fy_encode_info_reply(e, 8, &info, 1);
    s_rep(e, "info");
    fy_stats_t st = {.topics = 2, .messages = 9};
    fy_encode_stats_reply(e, 9, &st);
    s_rep(e, "stats");
    fy_encode_subscribed(e, 10, 77, false);
    s_rep(e, "subscribed");
    fy_encode_sub_reply(e, 11, 5, 3, 30000, 5, 9, true);
    s_rep(e, "sub");
    /* A get reply with two entries: one inline payload, one in a frame. */
    fy_bytes_t data = {(const uint8_t *)"inline", 6};
    fy_entry_t en[2] = {{.seq = 1,
                         .ts_ms = 1700000000000ull,
                         .kver = 1,
                         .key = {(const uint8_t *)"o-1", 3},
                         .id = {(const uint8_t *)"m-1", 3},
                         .inline_data = &data},
                        {.seq = 2, .ts_ms = 1700000000001ull, .dc = 2}};
    fy_encode_get_begin(e, 12, 2);
    for (int i = 0; i < 2; i++) {
        fy_encoder_reset(items);
        fy_encode_entry(items, &en[i]);
        fy_encoder_append(e, items);
    }
    s_rep(e, "get");
    fy_encode_delivery_begin(e, 77, 1);
    fy_encoder_reset(items);
    fy_encode_entry(items, &en[1]);
    fy_encoder_append(e, items);
    s_rep(e, "delivery");
}

static void
s_subjects(void)
{
    static const char *const pairs[] = {
        "orders.*.eu\0orders.7.eu",  "orders.>\0orders.eu.7", "a.b\0a.b", "*\0x", "a.>\0a",
        "orders.eu\0orders.\xc3\xa9"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "%zu", i);
        size_t len = strlen(pairs[i]) + 1 + strlen(pairs[i] + strlen(pairs[i]) + 1);
        s_write("subject", name, pairs[i], len);
    }
}

static void
s_configs(void)
{
    static const char *const ini[] = {
        "[relay]\nbroker = tcp://127.0.0.1:5555\nstats-ms = 10000\n\n[source billing]\n"
        "source = sqlite:/srv/billing/app.db\non-publish = delete\n\n[source shipping]\n"
        "source = lmdb:/srv/shipping/env\ntopic-template = shipping.{aggregate_type}\n",
        "[source wal]\nsource = pg-logical:host=db dbname=app\nslot = s1\npublication = p\n"
        "rename-from = old\n",
        "; comment\n[source a]\nsource = pg:dbname=app\nbatch = 250\npoll-ms = 5\n"};
    for (size_t i = 0; i < sizeof ini / sizeof ini[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "%zu", i);
        s_write("relay_config", name, ini[i], strlen(ini[i]));
    }
}

/* pgoutput: 'w' XLogData header (start, end, time) around one message. */
static size_t
s_xlog(uint8_t *out, const uint8_t *msg, size_t len)
{
    out[0] = (uint8_t)(len + 25) >> 0;
    size_t n = 0;
    uint8_t *p = out + 2;
    p[n++] = 'w';
    fy_be64_put(p + n, 0x1000), n += 8;
    fy_be64_put(p + n, 0x2000), n += 8;
    fy_be64_put(p + n, 0), n += 8;
    memcpy(p + n, msg, len), n += len;
    out[0] = (uint8_t)(n >> 8);
    out[1] = (uint8_t)n;
    return n + 2;
}

static void
s_pgoutput(void)
{
    uint8_t stream[4096], msg[1024];
    size_t at = 0, n = 0;
    /* Relation 16384 public.outbox with the seven outbox columns. */
    static const struct {
        const char *name;
        uint32_t type;
    } cols[] = {{"id", 20},      {"aggregate_type", 25}, {"aggregate_id", 25}, {"event_type", 25},
                {"payload", 17}, {"headers", 3802},      {"created_at", 1184}};
    msg[n++] = 'R';
    fy_be32_put(msg + n, 16384), n += 4;
    memcpy(msg + n, "public", 7), n += 7;
    memcpy(msg + n, "outbox", 7), n += 7;
    msg[n++] = 'd';
    msg[n++] = 0, msg[n++] = 7;
    for (int i = 0; i < 7; i++) {
        msg[n++] = 0;
        size_t l = strlen(cols[i].name) + 1;
        memcpy(msg + n, cols[i].name, l), n += l;
        fy_be32_put(msg + n, cols[i].type), n += 4;
        fy_be32_put(msg + n, 0xffffffffu), n += 4;
    }
    at += s_xlog(stream + at, msg, n);
    /* Begin. */
    n = 0;
    msg[n++] = 'B';
    fy_be64_put(msg + n, 0x3000), n += 8;
    fy_be64_put(msg + n, 700000000000000ull), n += 8;
    fy_be32_put(msg + n, 1234), n += 4;
    at += s_xlog(stream + at, msg, n);
    /* Insert, binary values. */
    n = 0;
    msg[n++] = 'I';
    fy_be32_put(msg + n, 16384), n += 4;
    msg[n++] = 'N';
    msg[n++] = 0, msg[n++] = 7;
    uint8_t id[8];
    fy_be64_put(id, 1);
    const struct {
        const void *v;
        uint32_t len;
    } vals[] = {{id, 8},       {"order", 5}, {"o-1", 3},
                {"Placed", 6}, {"{}", 2},    {"\x01{\"traceparent\": \"00-abc\", \"n\": 7}", 33},
                {id, 8}};
    for (int i = 0; i < 7; i++) {
        msg[n++] = 'b';
        fy_be32_put(msg + n, vals[i].len), n += 4;
        memcpy(msg + n, vals[i].v, vals[i].len), n += vals[i].len;
    }
    at += s_xlog(stream + at, msg, n);
    /* Commit. */
    n = 0;
    msg[n++] = 'C';
    msg[n++] = 0;
    fy_be64_put(msg + n, 0x3000), n += 8;
    fy_be64_put(msg + n, 0x3100), n += 8;
    fy_be64_put(msg + n, 700000000000000ull), n += 8;
    at += s_xlog(stream + at, msg, n);
    /* Keepalive, no reply asked. */
    uint8_t k[18] = {'k'};
    fy_be64_put(k + 1, 0x4000);
    fy_be64_put(k + 9, 0);
    stream[at++] = 0;
    stream[at++] = 18;
    memcpy(stream + at, k, 17);
    stream[at + 17] = 0;
    at += 18;
    s_write("pgoutput", "outbox-insert", stream, at);
}

int
main(int argc, char **argv)
{
    s_top = argc > 1 ? argv[1] : ".";
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus", s_top);
    mkdir(path, 0755);
    fy_encoder_t *e = fy_encoder_new(), *items = fy_encoder_new();
    s_requests(e);
    s_replies(e, items);
    s_subjects();
    s_configs();
    s_pgoutput();
    fy_encoder_destroy(&e);
    fy_encoder_destroy(&items);
    return 0;
}
