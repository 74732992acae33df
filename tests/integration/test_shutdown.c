/* SPDX-License-Identifier: MIT */
/*
 * test_shutdown.c - a broker stopped under load leaves no request without an
 * answer (issue 15): SIGTERM while ten clients have tens of thousands of
 * publishes in flight. The broker finishes the batch in hand, answers every
 * request still queued with ESHUTDOWN (nothing of it applied), and exits 0.
 * Every request gets exactly one answer, a confirm or ESHUTDOWN; what was
 * confirmed is stored, what was refused is not. And libferry clients take
 * ESHUTDOWN as "send again": across a stop and a restart every publish is
 * stored once, with no error reaching the application.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <zmq.h>

#include "clock.h"
#include "envelope.h"
#include "harness.h"

enum { S_CLIENTS = 10, S_EACH = 5000, S_LIB_EACH = 20000 };

/* A raw client: a DEALER that pipelines publishes without reading. */
typedef struct {
    void *sock;
    uint8_t *answer; /* per cid: 0 none, 1 confirmed, 2 ESHUTDOWN, 3 other */
    size_t confirmed, refused, other, twice;
} s_raw_t;

static void
s_raw_send(s_raw_t *c, int k, const char *endpoint, void *ctx)
{
    c->sock = fy_raw_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    assert_int_equal(zmq_connect(c->sock, endpoint), 0);
    c->answer = calloc(S_EACH + 1, 1);
    fy_encoder_t *enc = fy_encoder_new();
    for (int i = 1; i <= S_EACH; i++) {
        char id[32], payload[32];
        snprintf(id, sizeof id, "c%d-%d", k, i);
        snprintf(payload, sizeof payload, "p%d-%d", k, i);
        fy_outmsg_t m = {.data = payload, .len = strlen(payload), .id = id};
        fy_encoder_reset(enc);
        assert_int_equal(fy_encode_publish(enc, (uint64_t)i, "t", &m, true, 0), FERRY_OK);
        assert_true(zmq_send(c->sock, fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    }
    fy_encoder_destroy(&enc);
}

/* Reads answers until every cid has one or nothing came for 3 s. */
static void
s_raw_collect(s_raw_t *c)
{
    fy_decoder_t *dec = fy_decoder_new();
    int timeout = 3000;
    zmq_setsockopt(c->sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    while (c->confirmed + c->refused + c->other < S_EACH) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        fy_reply_t r;
        fy_err_t err;
        assert_int_equal(fy_reply_decode(dec, zmq_msg_data(&m), zmq_msg_size(&m), &r, &err),
                         FERRY_OK);
        size_t n = fy_reply_run(&r); /* a cumulative confirm answers n cids */
        for (size_t i = 0; i < n; i++) {
            uint64_t cid = r.cid + i;
            assert_true(cid >= 1 && cid <= S_EACH);
            if (c->answer[cid])
                c->twice++;
            c->answer[cid] = r.code == FERRY_OK ? 1 : r.code == FERRY_ESHUTDOWN ? 2 : 3;
            if (r.code == FERRY_OK)
                c->confirmed++;
            else if (r.code == FERRY_ESHUTDOWN)
                c->refused++;
            else
                c->other++;
        }
        zmq_msg_close(&m);
    }
    fy_decoder_destroy(&dec);
}

static void
test_every_request_answered_on_sigterm(void **state)
{
    fy_fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL),
                     FERRY_OK);
    void *ctx = zmq_ctx_new();
    static s_raw_t raw[S_CLIENTS];
    memset(raw, 0, sizeof raw);
    for (int k = 0; k < S_CLIENTS; k++)
        s_raw_send(&raw[k], k, fx->d.endpoint, ctx);
    /* 50,000 publishes sent (most still queued): stop the broker now. */
    int status = fy_ferryd_signal(&fx->d, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    size_t confirmed = 0, refused = 0;
    for (int k = 0; k < S_CLIENTS; k++) {
        s_raw_collect(&raw[k]);
        assert_int_equal(raw[k].twice, 0);
        assert_int_equal(raw[k].other, 0);
        /* Every request sent before the stop has its answer. */
        assert_int_equal(raw[k].confirmed + raw[k].refused, S_EACH);
        confirmed += raw[k].confirmed;
        refused += raw[k].refused;
        zmq_close(raw[k].sock);
    }
    zmq_ctx_term(ctx);
    printf("SIGTERM under %d publishes: %zu confirmed, %zu answered ESHUTDOWN\n",
           S_CLIENTS * S_EACH, confirmed, refused);
    assert_true(refused > 0); /* the stop came with requests queued */
    char line[80];
    snprintf(line, sizeof line, "msg=\"drained\" refused=%zu ", refused);
    assert_int_equal(fy_ferryd_log_count(&fx->d, line), 1);

    /* Stored: exactly what was confirmed. */
    ferry_client_destroy(&fx->c);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    assert_non_null(fx->c);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "t", &all, &n), FERRY_OK);
    assert_int_equal(n, confirmed);
    for (size_t i = 0; i < n; i++) {
        int k, j;
        assert_int_equal(sscanf(all[i].id, "c%d-%d", &k, &j), 2);
        assert_true(k >= 0 && k < S_CLIENTS && j >= 1 && j <= S_EACH);
        assert_int_equal(raw[k].answer[j], 1); /* confirmed, not refused */
        raw[k].answer[j] = 9;                  /* and only once */
    }
    free(all);
    for (int k = 0; k < S_CLIENTS; k++)
        free(raw[k].answer);
}

/* libferry publishers across a SIGTERM and a restart. */
typedef struct {
    const char *endpoint;
    int k;
    size_t ok, failed;
    int shutdowns_seen; /* libferry's "shutting down" log lines */
} s_pub_t;

static void
s_log(ferry_log_level_t level, const char *line, void *user)
{
    (void)level;
    if (strstr(line, "is shutting down; publishes it did not apply are sent again"))
        ((s_pub_t *)user)->shutdowns_seen++;
}

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_pub_t *p = user;
    if (cf->status == FERRY_OK)
        __atomic_add_fetch(&p->ok, 1, __ATOMIC_RELAXED);
    else
        p->failed++;
}

static void *
s_publisher(void *arg)
{
    s_pub_t *p = arg;
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    if (ferry_options_set_server(o, p->endpoint) == FERRY_OK &&
        ferry_options_set_timeout_ms(o, 20000) == FERRY_OK &&
        ferry_options_set_window(o, 500) == FERRY_OK &&
        ferry_options_set_log_cb(o, s_log, p) == FERRY_OK)
        ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    if (!c)
        return NULL;
    for (int i = 1; i <= S_LIB_EACH; i++) {
        char id[32], payload[32];
        snprintf(id, sizeof id, "l%d-%d", p->k, i);
        snprintf(payload, sizeof payload, "q%d-%d", p->k, i);
        ferry_message_t m = {.data = payload, .len = strlen(payload), .id = id};
        while (ferry_client_publish_async(c, "t", &m, s_on_confirm, p) != FERRY_OK)
            ; /* window full while the broker is away: wait on */
    }
    ferry_client_flush(c, 30000);
    ferry_client_destroy(&c);
    return NULL;
}

static void
test_libferry_resends_after_eshutdown(void **state)
{
    fy_fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_destroy(&fx->c);
    enum { N = 4 };
    s_pub_t pubs[N];
    pthread_t th[N];
    for (int k = 0; k < N; k++) {
        pubs[k] = (s_pub_t){.endpoint = fx->d.endpoint, .k = k};
        assert_int_equal(pthread_create(&th[k], NULL, s_publisher, &pubs[k]), 0);
    }
    /* In the middle of it: every publisher has 2,000 confirmed (of 20,000). */
    long long until = fy_now_ms() + 20000;
    for (int k = 0; k < N && fy_now_ms() < until; k++)
        while (__atomic_load_n(&pubs[k].ok, __ATOMIC_RELAXED) < 2000 && fy_now_ms() < until)
            fy_sleep_ms(1);
    int status = fy_ferryd_signal(&fx->d, SIGTERM);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fy_sleep_ms(300);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    for (int k = 0; k < N; k++)
        pthread_join(th[k], NULL);
    int shutdowns = 0;
    for (int k = 0; k < N; k++) {
        assert_int_equal(pubs[k].failed, 0); /* ESHUTDOWN never reached the application */
        assert_int_equal(pubs[k].ok, S_LIB_EACH);
        shutdowns += pubs[k].shutdowns_seen;
    }
    assert_true(shutdowns > 0); /* the stop came while publishes were in flight */
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    assert_non_null(fx->c);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "t", &all, &n), FERRY_OK);
    assert_int_equal(n, (size_t)N * S_LIB_EACH); /* each once */
    uint8_t *seen = calloc((size_t)N * S_LIB_EACH, 1);
    for (size_t i = 0; i < n; i++) {
        int k, j;
        assert_int_equal(sscanf(all[i].id, "l%d-%d", &k, &j), 2);
        assert_int_equal(seen[(size_t)k * S_LIB_EACH + (size_t)j - 1]++, 0);
    }
    free(seen);
    free(all);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_request_answered_on_sigterm, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_libferry_resends_after_eshutdown, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("shutdown", tests, NULL, NULL);
}
