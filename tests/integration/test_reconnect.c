/* SPDX-License-Identifier: MIT */
/*
 * test_reconnect.c - libferry across broker crashes, against a real ferryd:
 *
 * - an async publisher sends 200,000 messages (with ids) while ferryd is
 *   killed with -9 and restarted three times: every confirm callback fires
 *   once, with success, and the topic holds every message exactly once, in
 *   order;
 * - a push consumer on a durable subscription keeps receiving across a
 *   kill -9, and nothing acked is lost;
 * - two connections driven from one external poll(2) loop through their
 *   file descriptors;
 * - misuse: NULL arguments, a connection whose broker is gone, acking twice,
 *   an oversized message: each returns its status, nothing crashes.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef fy_fx_t fx_t;

/* ---- publishing through three kills -------------------------------------- */

typedef struct {
    fy_ferryd_t *d;
    atomic_size_t sent;
    size_t kill_at[3];
    atomic_int kills;
    atomic_int failed;
    atomic_bool done; /* the test no longer needs the broker it started */
} s_killer_t;

static void *
s_killer(void *arg)
{
    s_killer_t *k = arg;
    for (int i = 0; i < 3; i++) {
        while (atomic_load(&k->sent) < k->kill_at[i])
            fy_sleep_ms(1);
        fy_ferryd_signal(k->d, SIGKILL);
        fy_sleep_ms(50 + 100 * i); /* down for a moment: the client buffers */
        if (fy_ferryd_start(k->d) != 0) {
            atomic_store(&k->failed, 1);
            return NULL;
        }
        atomic_fetch_add(&k->kills, 1);
    }
    /* The fixture's ferryd dies with the thread that started it
     * (PR_SET_PDEATHSIG): stay until the test is done with it. */
    while (!atomic_load(&k->done))
        fy_sleep_ms(5);
    return NULL;
}

typedef struct {
    uint8_t *calls;
    size_t ok, failed, dups;
} s_book_t;

typedef struct {
    s_book_t *book;
    size_t i;
} s_ref_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_ref_t *r = user;
    r->book->calls[r->i]++;
    if (cf->status == FERRY_OK) {
        r->book->ok++;
        r->book->dups += cf->duplicate;
    } else {
        r->book->failed++;
    }
}

static void
s_log_line(ferry_log_level_t level, const char *line, void *user)
{
    (void)user;
    printf("libferry %s: %s\n", level == FERRY_LOG_WARN ? "warn" : "info", line);
}

static void
test_publisher_survives_three_kills(void **state)
{
    fx_t *fx = *state;
    const size_t n = getenv("FERRY_TEST_QUICK") ? 30000 : 200000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "load", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_destroy(&fx->c);
    ferry_options_t *o = ferry_options_new();
    assert_int_equal(ferry_options_set_server(o, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_timeout_ms(o, 20000), FERRY_OK);
    assert_int_equal(ferry_options_set_reconnect(o, 20, 500, 20), FERRY_OK);
    assert_int_equal(ferry_options_set_log_cb(o, s_log_line, NULL), FERRY_OK);
    ferry_client_t *c;
    assert_int_equal(ferry_client_new(o, &c), FERRY_OK);
    ferry_options_destroy(&o);

    s_killer_t k = {.d = &fx->d, .kill_at = {n / 5, n / 2, n * 4 / 5}};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, s_killer, &k), 0);
    s_book_t book = {.calls = calloc(n, 1)};
    s_ref_t *refs = calloc(n, sizeof *refs);
    char id[32], body[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "m-%zu", i);
        int len = snprintf(body, sizeof body, "payload-%zu", i);
        refs[i] = (s_ref_t){&book, i};
        ferry_message_t m = {.data = body, .len = (size_t)len, .id = id};
        ferry_status_t st = ferry_client_publish_async(c, "load", &m, s_on_confirm, &refs[i]);
        if (st != FERRY_OK) {
            char cmd[512], out[4096];
            snprintf(cmd, sizeof cmd, "tail -5 %s", fx->d.log_path);
            fy_run(cmd, out, sizeof out);
            fail_msg("publish %zu: %s (%s); kills %d, killer failed %d; ferryd log:\n%s", i,
                     ferry_errname(st), ferry_client_last_error(c), atomic_load(&k.kills),
                     atomic_load(&k.failed), out);
        }
        atomic_store(&k.sent, i + 1);
    }
    assert_int_equal(ferry_client_flush(c, 60000), FERRY_OK);
    assert_int_equal(atomic_load(&k.failed), 0);
    assert_int_equal(atomic_load(&k.kills), 3);
    printf("reconnects %u, confirmed %zu, of them duplicates %zu\n", ferry_client_reconnects(c),
           book.ok, book.dups);
    assert_true(ferry_client_reconnects(c) >= 3);
    assert_int_equal(book.failed, 0);
    assert_int_equal(book.ok, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(book.calls[i], 1);
    ferry_client_destroy(&c);

    /* The topic: every message once, in publish order. */
    fx->c = fy_connect(fx->d.endpoint, 10000, 100);
    assert_non_null(fx->c);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(fx->c, "load", &all, &count), FERRY_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < count; i++) {
        char want[32];
        snprintf(want, sizeof want, "m-%zu", i);
        assert_string_equal(all[i].id, want);
        assert_int_equal(all[i].seq, i + 1);
    }
    free(all);
    atomic_store(&k.done, true);
    pthread_join(th, NULL);
    free(book.calls);
    free(refs);
}

/* ---- a consumer across a crash ----------------------------------------- */

typedef struct {
    uint8_t *seen;
    size_t n, calls, distinct;
} s_rec_t;

static ferry_msg_action_t
s_record(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_rec_t *r = user;
    r->calls++;
    /* The payload is not NUL-terminated: read exactly its bytes. */
    char num[24];
    size_t len = m->len < sizeof num - 1 ? m->len : sizeof num - 1;
    memcpy(num, m->data, len);
    num[len] = '\0';
    size_t i = (size_t)atol(num);
    if (i < r->n && r->seen[i]++ == 0)
        r->distinct++;
    return FERRY_MSG_ACK;
}

static void
s_publish_range(const char *endpoint, size_t from, size_t to)
{
    ferry_client_t *p = fy_connect(endpoint, 10000, 1000);
    assert_non_null(p);
    char body[32], id[32];
    for (size_t i = from; i < to; i++) {
        int len = snprintf(body, sizeof body, "%zu", i);
        snprintf(id, sizeof id, "c-%zu", i);
        ferry_message_t m = {.data = body, .len = (size_t)len, .id = id};
        assert_int_equal(ferry_client_publish_async(p, "feed", &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(p, 30000), FERRY_OK);
    ferry_client_destroy(&p);
}

static void
test_consumer_survives_kill(void **state)
{
    fx_t *fx = *state;
    const size_t n = 4000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "feed", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_sub_config_t quick = {.ack_wait_ms = 1000};
    assert_int_equal(ferry_client_sub_declare(fx->c, "feed", "reader", &quick, NULL), FERRY_OK);
    ferry_client_destroy(&fx->c);
    ferry_options_t *o = ferry_options_new();
    assert_int_equal(ferry_options_set_server(o, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_reconnect(o, 20, 200, 0), FERRY_OK);
    assert_int_equal(ferry_options_set_log_cb(o, s_log_line, NULL), FERRY_OK);
    ferry_client_t *c;
    assert_int_equal(ferry_client_new(o, &c), FERRY_OK);
    ferry_options_destroy(&o);
    s_rec_t r = {.seen = calloc(n, 1), .n = n};
    assert_int_equal(ferry_client_subscribe(c, "feed", "reader", 100, s_record, &r, NULL),
                     FERRY_OK);
    s_publish_range(fx->d.endpoint, 0, n / 2);
    long long until = fy_now_ms() + 20000;
    while (r.distinct < n / 4 && fy_now_ms() < until)
        assert_int_equal(ferry_client_poll(c, 10), FERRY_OK);
    /* Mid-stream: kill -9, then the second half goes to the new broker. */
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    s_publish_range(fx->d.endpoint, n / 2, n);
    until = fy_now_ms() + 30000;
    while (r.distinct < n && fy_now_ms() < until)
        assert_int_equal(ferry_client_poll(c, 10), FERRY_OK);
    printf("consumer: %zu deliveries for %zu messages, reconnects %u\n", r.calls, n,
           ferry_client_reconnects(c));
    if (r.distinct < n) {
        ferry_client_t *q = fy_connect(fx->d.endpoint, 5000, 10);
        ferry_sub_info_t qi = {0};
        ferry_client_sub_info(q, "feed", "reader", &qi);
        printf("DIAG cursor=%llu floor=%llu last=%llu connected=%d\n",
               (unsigned long long)qi.cursor, (unsigned long long)qi.ack_floor,
               (unsigned long long)qi.last_seq, ferry_client_connected(c));
        ferry_client_destroy(&q);
        size_t shown = 0;
        for (size_t i = 0; i < n && shown < 5; i++)
            if (!r.seen[i]) {
                printf("DIAG missing %zu\n", i);
                shown++;
            }
        char cmd[600], out[4096];
        snprintf(cmd, sizeof cmd, "grep -v 'level=info' '%s' | tail -5", fx->d.log_path);
        fy_run(cmd, out, sizeof out);
        printf("DIAG ferryd:\n%s\n", out);
    }
    assert_int_equal(r.distinct, n);
    assert_true(ferry_client_reconnects(c) >= 1);
    /* Everything acked (acks are sent without waiting: they land shortly). */
    fx->c = fy_connect(fx->d.endpoint, 10000, 100);
    assert_non_null(fx->c);
    ferry_sub_info_t si = {0};
    /* Acks lost in the crash come back after the ack wait (1 s) and are acked. */
    until = fy_now_ms() + 20000;
    do {
        ferry_client_poll(c, 10);
        assert_int_equal(ferry_client_sub_info(fx->c, "feed", "reader", &si), FERRY_OK);
    } while (si.ack_floor < n && fy_now_ms() < until);
    assert_int_equal(si.ack_floor, n);
    ferry_client_destroy(&c);
    free(r.seen);
}

/* ---- embedding in an external poll loop --------------------------------- */

static void
s_count_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    if (cf->status == FERRY_OK)
        (*(size_t *)user)++;
}

static void
test_external_poll_loop(void **state)
{
    fx_t *fx = *state;
    const size_t n = 5000;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "ext", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_options_t *lo = ferry_options_new();
    ferry_options_set_server(lo, fx->d.endpoint);
    ferry_options_set_window(lo, 500);
    ferry_options_set_log_cb(lo, s_log_line, NULL);
    ferry_client_t *pub = NULL, *sub = NULL;
    ferry_client_new(lo, &pub);
    ferry_options_set_window(lo, 100);
    ferry_client_new(lo, &sub);
    ferry_options_destroy(&lo);
    assert_non_null(pub);
    assert_non_null(sub);
    s_rec_t r = {.seen = calloc(n, 1), .n = n};
    assert_int_equal(ferry_client_subscribe(sub, "ext", NULL, 200, s_record, &r, NULL), FERRY_OK);
    size_t confirmed = 0, sent = 0, wakeups = 0;
    long long until = fy_now_ms() + 30000;
    while ((r.distinct < n || confirmed < n) && fy_now_ms() < until) {
        /* Publish what the window takes without blocking. */
        while (sent < n && ferry_client_in_flight(pub) < 500) {
            char body[24];
            int len = snprintf(body, sizeof body, "%zu", sent);
            ferry_message_t m = {.data = body, .len = (size_t)len};
            assert_int_equal(
                ferry_client_publish_async(pub, "ext", &m, s_count_confirm, &confirmed), FERRY_OK);
            sent++;
        }
        struct pollfd fds[2];
        assert_int_equal(ferry_client_fd(pub, &fds[0].fd), FERRY_OK);
        assert_int_equal(ferry_client_fd(sub, &fds[1].fd), FERRY_OK);
        fds[0].events = fds[1].events = POLLIN;
        int t1 = ferry_client_next_timeout_ms(pub), t2 = ferry_client_next_timeout_ms(sub);
        int rc = poll(fds, 2, t1 < t2 ? t1 : t2);
        assert_true(rc >= 0);
        wakeups += rc > 0;
        /* Edge-triggered: on any wakeup (or timeout) let both do their work. */
        assert_int_equal(ferry_client_poll(pub, 0), FERRY_OK);
        assert_int_equal(ferry_client_poll(sub, 0), FERRY_OK);
    }
    printf("external loop: %zu sent, %zu confirmed, %zu received, %zu fd wakeups\n", sent,
           confirmed, r.distinct, wakeups);
    if (confirmed < n || r.distinct < n) {
        char cmd[600], out[4096];
        snprintf(cmd, sizeof cmd, "grep -v 'level=info' '%s' | tail -5", fx->d.log_path);
        fy_run(cmd, out, sizeof out);
        printf("ferryd log:\n%s\n", out);
        for (size_t i = 0; i < n; i++)
            if (!r.seen[i])
                printf("missing message %zu\n", i);
    }
    assert_int_equal(confirmed, n);
    assert_int_equal(r.distinct, n);
    assert_true(wakeups > 0);
    ferry_client_destroy(&pub);
    ferry_client_destroy(&sub);
    free(r.seen);
}

/* ---- misuse ------------------------------------------------------------------ */

static void
test_misuse_returns_status(void **state)
{
    fx_t *fx = *state;
    ferry_client_t *c = fx->c;
    ferry_message_t m = {.data = "x", .len = 1};
    assert_int_equal(ferry_client_new(NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish(NULL, "t", &m, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish(c, NULL, &m, NULL), FERRY_EINVALID_NAME);
    assert_int_equal(ferry_client_publish(c, "t", NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish_async(c, "t", NULL, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish_batch(c, "t", NULL, 3, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_ack(c, "t", "s", NULL, 1), FERRY_EINVAL);
    assert_int_equal(ferry_client_fetch(c, "t", "s", 0, 0, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_subscribe(c, "t", "s", 10, NULL, NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_read_key(c, "t", NULL, 1, 0, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_request(c, "t", &m, 100, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_info(c, "t", NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_fd(NULL, NULL), FERRY_EINVAL);
    assert_int_equal(ferry_client_poll(NULL, 0), FERRY_EINVAL);
    assert_int_equal(ferry_client_poll(c, -1), FERRY_EINVAL);
    assert_int_equal(ferry_options_set_reconnect(NULL, 1, 2, 3), FERRY_EINVAL);
    ferry_options_t *o = ferry_options_new();
    assert_int_equal(ferry_options_set_reconnect(o, 100, 50, 0), FERRY_EINVAL);
    assert_int_equal(ferry_options_set_reconnect(o, 100, 200, 101), FERRY_EINVAL);
    assert_int_equal(ferry_options_add_server(o, ""), FERRY_EINVAL);
    ferry_options_destroy(&o);
    ferry_client_destroy(NULL);
    /* Oversized: refused before the wire (the broker's limit from hello). */
    size_t big = 2u << 20;
    char *blob = calloc(1, big);
    ferry_message_t huge = {.data = blob, .len = big};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "mq", NULL, NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(c, "mq", &huge, NULL), FERRY_ETOO_LARGE);
    free(blob);
    /* Acking twice is fine. */
    assert_int_equal(ferry_client_publish(c, "mq", &m, NULL), FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(c, "mq", NULL, 1, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    uint64_t seq = msgs[0].seq;
    assert_int_equal(ferry_client_ack(c, "mq", NULL, &seq, 1), FERRY_OK);
    assert_int_equal(ferry_client_ack(c, "mq", NULL, &seq, 1), FERRY_OK);
    /* The broker goes away for good: calls fail with a status, never hang
     * past their timeout, and the non-blocking publish refuses when full. */
    ferry_options_t *po = ferry_options_new();
    assert_int_equal(ferry_options_set_server(po, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_timeout_ms(po, 300), FERRY_OK);
    assert_int_equal(ferry_options_set_window(po, 4), FERRY_OK);
    assert_int_equal(ferry_options_set_block_on_full(po, false), FERRY_OK);
    ferry_client_t *lone;
    assert_int_equal(ferry_client_new(po, &lone), FERRY_OK);
    ferry_options_destroy(&po);
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    long long t0 = fy_now_ms();
    ferry_status_t st = ferry_client_ping(lone);
    assert_true(st == FERRY_ECLOSED || st == FERRY_EDISCONNECTED);
    assert_true(fy_now_ms() - t0 < 2000);
    size_t taken = 0;
    for (int i = 0; i < 10; i++)
        if (ferry_client_publish_async(lone, "mq", &m, NULL, NULL) == FERRY_OK)
            taken++;
    assert_int_equal(taken, 4); /* the window buffers 4, then: */
    assert_int_equal(ferry_client_publish_async(lone, "mq", &m, NULL, NULL), FERRY_EDISCONNECTED);
    assert_false(ferry_client_connected(lone));
    ferry_client_destroy(&lone); /* the 4 get ECLOSED */
    ferry_client_destroy(&fx->c);

    /* Starting before the broker: with retry_connect the client comes up at
     * once, buffers, and delivers once the broker is there. */
    ferry_options_t *ro = ferry_options_new();
    assert_int_equal(ferry_options_set_server(ro, fx->d.endpoint), FERRY_OK);
    assert_int_equal(ferry_options_set_retry_connect(ro, true), FERRY_OK);
    assert_int_equal(ferry_options_set_reconnect(ro, 20, 200, 0), FERRY_OK);
    ferry_client_t *early;
    t0 = fy_now_ms();
    assert_int_equal(ferry_client_new(ro, &early), FERRY_OK);
    assert_true(fy_now_ms() - t0 < 1000);
    assert_false(ferry_client_connected(early));
    ferry_options_destroy(&ro);
    ferry_message_t e = {.data = "early", .len = 5, .id = "early-1"};
    assert_int_equal(ferry_client_publish_async(early, "mq", &e, NULL, NULL), FERRY_OK);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    assert_int_equal(ferry_client_flush(early, 10000), FERRY_OK);
    assert_true(ferry_client_connected(early));
    ferry_client_destroy(&early);
    /* Without it, no broker is an error. */
    ferry_options_t *no = ferry_options_new();
    assert_int_equal(ferry_options_set_server(no, "tcp://127.0.0.1:1"), FERRY_OK);
    assert_int_equal(ferry_options_set_timeout_ms(no, 200), FERRY_OK);
    assert_int_equal(ferry_client_new(no, &early), FERRY_ECONNECT);
    assert_null(early);
    ferry_options_destroy(&no);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publisher_survives_three_kills, fy_fx_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_consumer_survives_kill, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_external_poll_loop, fy_fx_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_misuse_returns_status, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("reconnect", tests, NULL, NULL);
}
