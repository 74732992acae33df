/* SPDX-License-Identifier: MIT */
/*
 * test_request.c - request/reply against a real ferryd: a responder thread
 * with its own connection serves 10,000 async requests (every reply matched
 * to its request, once), blocking requests, a request nobody answers
 * (ENOREPLY after the timeout), a request to a missing topic, and the
 * inbox being removed when the client goes; a batched responder
 * (ferry_client_serve_batched) whose first commits fail: no reply of a
 * failed batch goes out, its requests are answered once when they come
 * again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef fy_fx_t fx_t;

typedef struct {
    const char *endpoint;
    atomic_bool stop;
    atomic_int ready;
    size_t served;
    char buf[128];
    /* ferry_client_serve_batched: the first `fail` batches do not commit */
    bool batched;
    int fail, batches, given_back;
    size_t in_batch;
} s_responder_t;

/* Replies "re:<request>", echoing an application header. */
static ferry_msg_action_t
s_echo(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply, void *user)
{
    (void)c;
    s_responder_t *r = user;
    int len = snprintf(r->buf, sizeof r->buf, "re:%.*s", (int)req->len, (const char *)req->data);
    reply->data = r->buf;
    reply->len = (size_t)len;
    r->served++;
    r->in_batch++;
    return FERRY_MSG_ACK;
}

/* A batched responder's commit: r->fail batches after the first fail
 * (their replies must never be seen, their requests come again). */
static ferry_msg_action_t
s_commit(ferry_client_t *c, void *user)
{
    (void)c;
    s_responder_t *r = user;
    size_t n = r->in_batch;
    r->in_batch = 0;
    int k = r->batches++;
    if (k >= 1 && k <= r->fail) { /* not the first: the blocking request's */
        r->given_back += (int)n;
        return FERRY_MSG_NACK_LATER;
    }
    return FERRY_MSG_ACK;
}

static void *
s_responder(void *arg)
{
    s_responder_t *r = arg;
    ferry_client_t *c = fy_connect(r->endpoint, 5000, 1000);
    if (!c || (r->batched
                   ? ferry_client_serve_batched(c, "rpc.echo", NULL, 512, s_echo, s_commit, r, NULL)
                   : ferry_client_serve(c, "rpc.echo", NULL, 512, s_echo, r, NULL)) != FERRY_OK) {
        atomic_store(&r->ready, -1);
        ferry_client_destroy(&c);
        return NULL;
    }
    atomic_store(&r->ready, 1);
    while (!atomic_load(&r->stop))
        ferry_client_poll(c, 20);
    ferry_client_flush(c, 5000);
    ferry_client_destroy(&c);
    return NULL;
}

typedef struct {
    size_t n;
    uint8_t *calls;
    size_t ok, mismatched, failed;
} s_book_t;

typedef struct {
    s_book_t *book;
    size_t i;
} s_ref_t;

static void
s_on_reply(ferry_client_t *c, ferry_status_t st, const ferry_stored_message_t *reply, void *user)
{
    (void)c;
    s_ref_t *ref = user;
    s_book_t *b = ref->book;
    b->calls[ref->i]++;
    if (st != FERRY_OK) {
        b->failed++;
        return;
    }
    char want[48];
    int len = snprintf(want, sizeof want, "re:req-%zu", ref->i);
    if (reply->len == (size_t)len && memcmp(reply->data, want, reply->len) == 0)
        b->ok++;
    else
        b->mismatched++;
}

static void
s_requests(fx_t *fx, bool batched)
{
    const size_t n = getenv("FERRY_TEST_QUICK") ? 2000 : 10000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "rpc.echo", NULL, NULL, NULL),
                     FERRY_OK);
    s_responder_t r = {.endpoint = fx->d.endpoint, .batched = batched, .fail = batched ? 4 : 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_responder, &r), 0);
    while (atomic_load(&r.ready) == 0)
        ferry_client_poll(fx->c, 5);
    assert_int_equal(atomic_load(&r.ready), 1);

    /* A blocking request first. */
    const ferry_stored_message_t *reply;
    ferry_message_t m = {.data = "ping", .len = 4};
    assert_int_equal(ferry_client_request(fx->c, "rpc.echo", &m, 5000, &reply), FERRY_OK);
    assert_int_equal(reply->len, 7);
    assert_memory_equal(reply->data, "re:ping", 7);
    assert_non_null(ferry_msg_header(reply, "correlation_id"));
    assert_null(ferry_msg_header(reply, "reply_to"));
    assert_memory_equal(reply->topic, "_inbox.", 7);

    s_book_t book = {.n = n, .calls = calloc(n, 1)};
    s_ref_t *refs = calloc(n, sizeof *refs);
    long long t0 = fy_now_ms();
    for (size_t i = 0; i < n; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "req-%zu", i);
        refs[i] = (s_ref_t){&book, i};
        ferry_message_t q = {.data = body, .len = (size_t)len};
        assert_int_equal(
            ferry_client_request_async(fx->c, "rpc.echo", &q, 60000, s_on_reply, &refs[i]),
            FERRY_OK);
        if (i % 256 == 255)
            ferry_client_poll(fx->c, 0);
    }
    long long deadline = fy_now_ms() + 60000;
    while (book.ok + book.mismatched + book.failed < n && fy_now_ms() < deadline)
        assert_int_equal(ferry_client_poll(fx->c, 50), FERRY_OK);
    double secs = (double)(fy_now_ms() - t0) / 1000.0;
    printf("request/reply: %zu round trips in %.2f s (%.0f/s)\n", n, secs, (double)n / secs);
    assert_int_equal(book.ok, n);
    assert_int_equal(book.mismatched, 0);
    assert_int_equal(book.failed, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(book.calls[i], 1);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    /* Batched: what the failed commits gave back was served again, and
     * only the committed batches' replies went out (one each, above). */
    assert_int_equal(r.served, n + 1 + (size_t)r.given_back);
    if (batched) {
        assert_true(r.given_back >= 4);
        assert_true(r.batches > 4);
        printf("batched responder: %d batches, %d requests given back by failed commits\n",
               r.batches, r.given_back);
    }
    /* The responder acked every request: the queue is empty. */
    ferry_topic_info_t info;
    long long until = fy_now_ms() + 5000;
    do
        assert_int_equal(ferry_client_info(fx->c, "rpc.echo", &info), FERRY_OK);
    while (info.messages > 0 && fy_now_ms() < until);
    assert_int_equal(info.messages, 0);
    free(book.calls);
    free(refs);
}

static void
test_requests_with_responder(void **state)
{
    s_requests(*state, false);
}

/* ferry_client_serve_batched: replies are held until the batch's end says
 * it committed; a batch that did not commit sends no reply and its requests
 * come again, so each request gets exactly one reply. */
static void
test_requests_with_batched_responder(void **state)
{
    s_requests(*state, true);
}

static void
test_request_without_responder_times_out(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "rpc.void", NULL, NULL, NULL),
                     FERRY_OK);
    const ferry_stored_message_t *reply = (const void *)1;
    ferry_message_t m = {.data = "x", .len = 1};
    long long t0 = fy_now_ms();
    assert_int_equal(ferry_client_request(fx->c, "rpc.void", &m, 300, &reply), FERRY_ENOREPLY);
    long long took = fy_now_ms() - t0;
    assert_true(took >= 300 && took < 3000);
    assert_null(reply);
    assert_non_null(strstr(ferry_client_last_error(fx->c), "no reply within 300 ms"));
    /* The request itself was stored: a responder that comes later finds it. */
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "rpc.void", &info), FERRY_OK);
    assert_int_equal(info.messages, 1);
    /* No such topic: the publish's refusal is the answer. */
    assert_int_equal(ferry_client_request(fx->c, "rpc.nowhere", &m, 2000, &reply), FERRY_ENOTFOUND);
    /* The inbox goes away with its client. */
    ferry_stats_t before, during, after;
    ferry_client_t *c2 = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(c2);
    assert_int_equal(ferry_client_stats(fx->c, &before), FERRY_OK);
    assert_int_equal(ferry_client_request(c2, "rpc.void", &m, 50, &reply), FERRY_ENOREPLY);
    assert_int_equal(ferry_client_stats(fx->c, &during), FERRY_OK);
    assert_int_equal(during.topics, before.topics + 1);
    ferry_client_destroy(&c2);
    long long until = fy_now_ms() + 5000;
    do
        assert_int_equal(ferry_client_stats(fx->c, &after), FERRY_OK);
    while (after.topics != before.topics && fy_now_ms() < until);
    assert_int_equal(after.topics, before.topics);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_requests_with_responder, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_requests_with_batched_responder, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_request_without_responder_times_out, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
