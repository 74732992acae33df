/* SPDX-License-Identifier: MIT */
/*
 * test_relay_loop.c - the relay loop (relay/relay.c) against a source kept
 * in memory by this test and a real ferryd: every row published once, in
 * order, with its id; positions recorded only for rows the broker has, and
 * never going back; poison rows dead-lettered (or stopping the relay with
 * --on-poison stop); a source that fails now and then is retried, with the
 * reason logged.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ferry.h"
#include "fixture.h"
#include "relay.h"

#define S_ROWS_MAX 2000

/* The source: rows in id order, the positions the relay recorded. */
struct fr_source {
    fr_row_t rows[S_ROWS_MAX];
    char types[S_ROWS_MAX][32], aggs[S_ROWS_MAX][32], payloads[S_ROWS_MAX][32];
    size_t nrows;
    int fail_reads; /* the next reads that fail with EIO */
    pthread_mutex_t mu;
    fr_pos_t pos;          /* the last position recorded */
    uint64_t advances;     /* how often */
    bool went_back;        /* a position lower than the one before */
    bool ahead_of_broker;  /* a position past a row the broker did not have */
    ferry_client_t *check; /* the source's own view of the broker */
    const char *endpoint, *topic;
};

static struct fr_source *s_src; /* the one the next open hands out */

static fy_status_t
s_open(const fr_source_args_t *a, fr_source_t **out, fy_err_t *err)
{
    (void)a, (void)err;
    *out = s_src;
    return FERRY_OK;
}

static fy_status_t
s_position(fr_source_t *s, fr_pos_t *pos, fy_err_t *err)
{
    (void)err;
    pthread_mutex_lock(&s->mu);
    *pos = s->pos;
    pthread_mutex_unlock(&s->mu);
    return FERRY_OK;
}

static fy_status_t
s_read(fr_source_t *s, fr_pos_t after, size_t max, const fr_row_t **rows, size_t *n, fy_err_t *err)
{
    if (s->fail_reads > 0) {
        s->fail_reads--;
        return fy_err_set(err, FERRY_EIO, "the test's source is away");
    }
    pthread_mutex_lock(&s->mu);
    size_t nrows = s->nrows;
    pthread_mutex_unlock(&s->mu);
    size_t i = 0;
    while (i < nrows && s->rows[i].id <= after.id)
        i++;
    *rows = &s->rows[i];
    *n = nrows - i < max ? nrows - i : max;
    return FERRY_OK;
}

/* Rows up to @p upto the broker must have before the position may pass them:
 * the source asks the broker itself. */
static bool
s_broker_has(fr_source_t *s, uint64_t upto)
{
    if (!s->check) {
        ferry_options_t *o = ferry_options_new();
        ferry_options_set_server(o, s->endpoint);
        ferry_client_new(o, &s->check);
        ferry_options_destroy(&o);
    }
    uint64_t want = 0;
    for (size_t i = 0; i < s->nrows && s->rows[i].id <= upto; i++)
        want += strcmp(s->rows[i].aggregate_type, s->topic) == 0;
    ferry_topic_info_t info;
    if (ferry_client_info(s->check, s->topic, &info) != FERRY_OK)
        return want == 0;
    return info.last_seq >= want; /* sequences go only to stored messages */
}

static fy_status_t
s_advance(fr_source_t *s, fr_pos_t pos, bool del, fy_err_t *err)
{
    (void)del, (void)err;
    bool has = s_broker_has(s, pos.id);
    pthread_mutex_lock(&s->mu);
    if (fr_pos_cmp(pos, s->pos) < 0)
        s->went_back = true;
    if (!has)
        s->ahead_of_broker = true;
    s->pos = pos;
    s->advances++;
    pthread_mutex_unlock(&s->mu);
    return FERRY_OK;
}

static fy_status_t
s_lag(fr_source_t *s, fr_pos_t after, uint64_t *rows, uint64_t *bytes, uint64_t *oldest,
      fy_err_t *err)
{
    (void)err;
    *rows = *bytes = *oldest = 0;
    for (size_t i = 0; i < s->nrows; i++)
        *rows += s->rows[i].id > after.id;
    return FERRY_OK;
}

static void
s_close(fr_source_t **s)
{
    ferry_client_destroy(&(*s)->check);
    *s = NULL;
}

static const char *
s_name(const fr_source_t *s)
{
    (void)s;
    return "fake"; /* the name the tests configure */
}

static fy_status_t
s_rename(fr_source_t *s, const char *from, bool *moved, fy_err_t *err)
{
    (void)s, (void)from, (void)err;
    *moved = false;
    return FERRY_OK;
}

static const fr_source_ops_t s_ops = {.kind = "memory",
                                      .open = s_open,
                                      .position = s_position,
                                      .read = s_read,
                                      .name = s_name,
                                      .rename = s_rename,
                                      .advance = s_advance,
                                      .lag = s_lag,
                                      .close = s_close};

/* Row i+1 of aggregate type @p type. */
static void
s_add(struct fr_source *s, const char *type, const char *agg)
{
    size_t i = s->nrows; /* filled before it is counted: the relay reads nrows */
    snprintf(s->types[i], sizeof s->types[i], "%s", type);
    snprintf(s->aggs[i], sizeof s->aggs[i], "%s", agg);
    snprintf(s->payloads[i], sizeof s->payloads[i], "event-%zu", i + 1);
    s->rows[i] = (fr_row_t){.id = i + 1,
                            .aggregate_type = s->types[i],
                            .aggregate_id = s->aggs[i],
                            .event_type = "happened",
                            .payload = s->payloads[i],
                            .payload_len = strlen(s->payloads[i]),
                            .created_ms = 1790000000000ull + i};
    pthread_mutex_lock(&s->mu);
    s->nrows = i + 1;
    pthread_mutex_unlock(&s->mu);
}

/* Log lines of the relay, kept for the checks. */
typedef struct {
    pthread_mutex_t mu;
    char text[1 << 16];
} s_log_t;

static void
s_on_log(ferry_log_level_t level, const char *line, void *user)
{
    (void)level;
    s_log_t *l = user;
    pthread_mutex_lock(&l->mu);
    strncat(l->text, line, sizeof l->text - strlen(l->text) - 2);
    strcat(l->text, "\n");
    pthread_mutex_unlock(&l->mu);
}

typedef struct {
    fr_config_t cfg;
    atomic_int stop;
    int rc;
    pthread_t th;
} s_run_t;

static void *
s_thread(void *arg)
{
    s_run_t *r = arg;
    r->rc = fr_relay_run(&r->cfg, &r->stop);
    return NULL;
}

static void
s_start_with(s_run_t *r, fy_ferryd_t *d, struct fr_source *src, s_log_t *log, fr_poison_t poison,
             long long stuck_error_ms)
{
    s_src = src;
    src->endpoint = d->endpoint;
    fr_config_init(&r->cfg);
    r->cfg.broker = d->endpoint;
    r->cfg.ops = &s_ops;
    r->cfg.location = "memory";
    r->cfg.name = "fake";
    r->cfg.on_poison = poison;
    r->cfg.poll_ms = 5;
    r->cfg.batch = 100;
    r->cfg.stats_ms = 3600000;
    r->cfg.log = s_on_log;
    r->cfg.log_user = log;
    r->cfg.stuck_error_ms = stuck_error_ms;
    atomic_store(&r->stop, 0);
    assert_int_equal(pthread_create(&r->th, NULL, s_thread, r), 0);
}

static void
s_start(s_run_t *r, fy_ferryd_t *d, struct fr_source *src, s_log_t *log, fr_poison_t poison)
{
    s_start_with(r, d, src, log, poison, FR_DEFAULT_STUCK_ERROR_MS);
}

/* Waits (up to 20 s) for the recorded position to reach @p id, or for the
 * relay to end. */
static uint64_t
s_wait_pos(struct fr_source *s, uint64_t id)
{
    long long until = fy_now_ms() + 20000;
    uint64_t at = 0;
    while (fy_now_ms() < until) {
        pthread_mutex_lock(&s->mu);
        at = s->pos.id;
        pthread_mutex_unlock(&s->mu);
        if (at >= id)
            break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    return at;
}

static struct fr_source *
s_source_new(void)
{
    struct fr_source *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->mu, NULL);
    s->topic = "orders";
    return s;
}

static ferry_client_t *
s_client(const fy_ferryd_t *d)
{
    ferry_options_t *o = ferry_options_new();
    ferry_options_set_server(o, d->endpoint);
    ferry_client_t *c = NULL;
    assert_int_equal(ferry_client_new(o, &c), FERRY_OK);
    ferry_options_destroy(&o);
    return c;
}

/* The broker refuses part of the rows for a while (a queue at its limit,
 * ELIMIT): the position stops at the last row the broker has and never
 * passes a refused one; once a consumer drains the queue the relay retries
 * and the consumer gets every row once, in order. (The consumer drains only
 * once the relay is held up: rows refused while later rows of the same
 * window are accepted would be stored out of order; see docs/outbox.md.) */
static void
test_rows_in_order_and_positions(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = s_client(d);
    ferry_topic_config_t tc = {.max_msgs = 1000, .discard_new = true};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "orders", &tc, NULL, NULL),
                     FERRY_OK);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 1500; i++) {
        char agg[16];
        snprintf(agg, sizeof agg, "order-%d", i % 7);
        s_add(src, "orders", agg);
    }
    src->fail_reads = 3;
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start(&r, d, src, &log, FR_POISON_DLQ);
    assert_int_equal(s_wait_pos(src, 1000), 1000);
    assert_false(src->ahead_of_broker);

    /* Every row once, in order, with its id, key, payload and headers. */
    uint64_t next = 1;
    long long until = fy_now_ms() + 60000;
    while (next <= 1500 && fy_now_ms() < until) {
        const ferry_stored_message_t *m;
        size_t n;
        ferry_status_t st = ferry_client_fetch(c, "orders", NULL, 500, 200, &m, &n);
        if (st == FERRY_ETIMEOUT)
            continue;
        assert_int_equal(st, FERRY_OK);
        uint64_t seqs[500];
        for (size_t i = 0; i < n; i++, next++) {
            char id[32], payload[32], agg[16];
            snprintf(id, sizeof id, "fake:%llu", (unsigned long long)next);
            snprintf(payload, sizeof payload, "event-%llu", (unsigned long long)next);
            snprintf(agg, sizeof agg, "order-%llu", (unsigned long long)((next - 1) % 7));
            assert_string_equal(m[i].id, id);
            assert_string_equal(m[i].key, agg);
            assert_int_equal(m[i].len, strlen(payload));
            assert_memory_equal(m[i].data, payload, strlen(payload));
            assert_string_equal(ferry_msg_header(&m[i], "event_type"), "happened");
            assert_non_null(ferry_msg_header(&m[i], "created_at"));
            seqs[i] = m[i].seq;
        }
        if (n)
            assert_int_equal(ferry_client_ack(c, "orders", NULL, seqs, n), FERRY_OK);
    }
    assert_int_equal(next, 1501);
    assert_int_equal(s_wait_pos(src, 1500), 1500);
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_int_equal(r.rc, 0);
    assert_false(src->went_back);
    assert_false(src->ahead_of_broker);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_int_equal(info.last_seq, 1500); /* nothing stored twice */

    /* The failed reads were retried, each logged with its code and reason. */
    assert_non_null(strstr(log.text, "msg=\"cannot read the outbox\" code=EIO "
                                     "detail=\"the test's source is away\""));
    /* Stopped, said as it started: the kind, the name, the process. */
    const char *stopped = strstr(log.text, "msg=\"relay stopped\" source=");
    assert_non_null(stopped);
    assert_non_null(strstr(stopped, " name="));
    assert_non_null(strstr(stopped, " pid="));

    /* A second run starts from the recorded position: nothing new. */
    s_start(&r, d, src, &log, FR_POISON_DLQ);
    assert_int_equal(s_wait_pos(src, 1500), 1500);
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_int_equal(info.last_seq, 1500);
    ferry_client_destroy(&c);
    free(src);
}

static void
test_poison_row_dead_lettered(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 30; i++)
        s_add(src, i == 11 ? "bad topic!" : "orders", "order-1"); /* row 12: no valid topic */
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start(&r, d, src, &log, FR_POISON_DLQ);
    assert_int_equal(s_wait_pos(src, 30), 30);
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_int_equal(r.rc, 0);
    assert_false(src->went_back);

    ferry_client_t *c = s_client(d);
    const ferry_stored_message_t *m;
    size_t n;
    assert_int_equal(ferry_client_get(c, "orders", 1, 100, &m, &n), FERRY_OK);
    assert_int_equal(n, 29); /* its neighbours on both sides, in order */
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "fake:%zu", i < 11 ? i + 1 : i + 2);
        assert_string_equal(m[i].id, id);
    }
    assert_int_equal(ferry_client_get(c, "ferry-relay.dlq", 1, 10, &m, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(ferry_msg_header(&m[0], "ferry-relay-id"), "12");
    assert_string_equal(ferry_msg_header(&m[0], "ferry-relay-source"), "fake");
    assert_non_null(strstr(ferry_msg_header(&m[0], "ferry-relay-reason"), "EINVALID_NAME"));
    assert_memory_equal(m[0].data, "event-12", 8);
    assert_non_null(strstr(log.text, "msg=\"poison row dead-lettered\" id=12"));
    ferry_client_destroy(&c);
    free(src);
}

static void
test_poison_row_stops(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 30; i++)
        s_add(src, i == 11 ? "bad topic!" : "orders", "order-1");
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start(&r, d, src, &log, FR_POISON_STOP);
    pthread_join(r.th, NULL); /* it ends by itself */
    assert_int_equal(r.rc, 1);
    /* The position never passes the poison row; the rows before it are in. */
    assert_true(src->pos.id <= 11);
    assert_false(src->ahead_of_broker);
    assert_non_null(strstr(log.text, "level=error mod=relay msg=\"poison row, stopping"));
    ferry_client_t *c = s_client(d);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_true(info.messages >= src->pos.id);
    const ferry_stored_message_t *m;
    size_t n;
    assert_int_equal(ferry_client_get(c, "orders", 1, 100, &m, &n), FERRY_OK);
    /* Rows after it may have gone out before it was refused (the window);
     * they are in once, and the poison row is not. */
    for (size_t i = 0; i < n; i++) {
        assert_string_not_equal(m[i].id, "fake:12");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m[i].id, m[j].id);
    }
    ferry_client_destroy(&c);
    free(src);
}

/* Waits (up to 20 s) for a line of the relay's log holding @p needle. */
static void
s_wait_log(s_log_t *l, const char *needle)
{
    long long until = fy_now_ms() + 20000;
    while (fy_now_ms() < until) {
        pthread_mutex_lock(&l->mu);
        bool found = strstr(l->text, needle) != NULL;
        pthread_mutex_unlock(&l->mu);
        if (found)
            return;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    fail_msg("the relay never logged '%s'; it logged:\n%s", needle, l->text);
}

/* A topic the relay created is deleted under it: it says so, declares it
 * again, and the rows written since arrive. */
static void
test_deleted_topic_declared_again(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 10; i++)
        s_add(src, "orders", "order-1");
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start(&r, d, src, &log, FR_POISON_DLQ);
    assert_int_equal(s_wait_pos(src, 10), 10);
    ferry_client_t *c = s_client(d);
    assert_int_equal(ferry_client_delete(c, "orders"), FERRY_OK);
    for (int i = 0; i < 10; i++)
        s_add(src, "orders", "order-1");
    assert_int_equal(s_wait_pos(src, 20), 20);
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(log.text, "msg=\"topic was deleted, declared it again\" topic=orders"));
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_int_equal(info.messages, 10); /* the rows written after the delete */
    const ferry_stored_message_t *m;
    size_t n;
    assert_int_equal(ferry_client_get(c, "orders", 1, 100, &m, &n), FERRY_OK);
    assert_int_equal(n, 10);
    assert_string_equal(m[0].id, "fake:11");
    assert_string_equal(m[9].id, "fake:20");
    ferry_client_destroy(&c);
    free(src);
}

/* A topic someone else made is deleted: the relay does not make it again;
 * it logs why the rows wait, at once, then as errors past stuck_error_ms,
 * and goes on when the topic is back. */
static void
test_deleted_foreign_topic_reported(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = s_client(d);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 10; i++)
        s_add(src, "orders", "order-1");
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start_with(&r, d, src, &log, FR_POISON_DLQ, 0); /* every line about a refusal: an error */
    assert_int_equal(s_wait_pos(src, 10), 10);
    assert_int_equal(ferry_client_delete(c, "orders"), FERRY_OK);
    for (int i = 0; i < 10; i++)
        s_add(src, "orders", "order-1");
    s_wait_log(&log, "level=error mod=relay msg=\"rows refused, retrying\" source=fake "
                     "code=ENOTFOUND id=11 topic=orders");
    s_wait_log(&log, "the topic was deleted and the relay did not create it");
    assert_null(strstr(log.text, "declared it again"));
    pthread_mutex_lock(&src->mu);
    assert_int_equal(src->pos.id, 10); /* the rows wait; none is passed over */
    pthread_mutex_unlock(&src->mu);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_ENOTFOUND);
    /* Its owner makes it again: the rows go through. */
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(s_wait_pos(src, 20), 20);
    s_wait_log(&log, "msg=\"publishing again\" source=fake");
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_int_equal(ferry_client_info(c, "orders", &info), FERRY_OK);
    assert_int_equal(info.messages, 10);
    ferry_client_destroy(&c);
    free(src);
}

/* Rows refused for a while (a small queue at its limit) while a consumer
 * drains it at the same time: without ordered publishing, rows sent after a
 * refused one were stored ahead of it (seen: 1045 before 1001). The relay
 * publishes ordered, so every row arrives once and in order. */
static void
test_refusals_keep_order(void **state)
{
    fy_ferryd_t *d = *state;
    assert_int_equal(fy_ferryd_start(d), 0);
    ferry_client_t *c = s_client(d);
    ferry_topic_config_t tc = {.max_msgs = 150, .discard_new = true};
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "orders", &tc, NULL, NULL),
                     FERRY_OK);
    struct fr_source *src = s_source_new();
    for (int i = 0; i < 1500; i++)
        s_add(src, "orders", "order-1");
    static s_log_t log = {.mu = PTHREAD_MUTEX_INITIALIZER};
    s_run_t r;
    s_start(&r, d, src, &log, FR_POISON_DLQ);
    uint64_t next = 1, fenced_seen = 0;
    long long until = fy_now_ms() + 60000;
    while (next <= 1500 && fy_now_ms() < until) {
        const ferry_stored_message_t *m;
        size_t n;
        ferry_status_t st = ferry_client_fetch(c, "orders", NULL, 40, 100, &m, &n);
        if (st == FERRY_ETIMEOUT)
            continue;
        assert_int_equal(st, FERRY_OK);
        uint64_t seqs[40];
        for (size_t i = 0; i < n; i++, next++) {
            char id[32];
            snprintf(id, sizeof id, "fake:%llu", (unsigned long long)next);
            if (strcmp(m[i].id, id) != 0)
                fail_msg("expected %s, got %s", id, m[i].id);
            seqs[i] = m[i].seq;
        }
        if (n)
            assert_int_equal(ferry_client_ack(c, "orders", NULL, seqs, n), FERRY_OK);
    }
    assert_int_equal(next, 1501);
    assert_int_equal(s_wait_pos(src, 1500), 1500);
    atomic_store(&r.stop, 1);
    pthread_join(r.th, NULL);
    assert_false(src->went_back);
    assert_false(src->ahead_of_broker);
    /* The queue was full again and again: refusals happened, and were ordered. */
    pthread_mutex_lock(&log.mu);
    fenced_seen =
        strstr(log.text, "code=ELIMIT") != NULL || strstr(log.text, "code=EFENCED") != NULL;
    pthread_mutex_unlock(&log.mu);
    assert_true(fenced_seen);
    ferry_client_destroy(&c);
    free(src);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_in_order_and_positions, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_poison_row_dead_lettered, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_poison_row_stops, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_refusals_keep_order, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_deleted_topic_declared_again, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
        cmocka_unit_test_setup_teardown(test_deleted_foreign_topic_reported, fy_ferryd_state_new,
                                        fy_ferryd_state_free),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("relay_loop", tests, NULL, NULL);
}
