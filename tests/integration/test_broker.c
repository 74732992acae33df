/* SPDX-License-Identifier: MIT */
/*
 * test_broker.c - a real ferryd on a temporary directory and a free port,
 * driven through libferry and the ferry CLI: declare, publish with confirms,
 * dedupe, async window, read back, limits, restart and graceful shutdown.
 */
#include <setjmp.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "clock.h"
#include "ferry.h"
#include "fixture.h"
#include "envelope.h"
#include "harness.h"

typedef fy_fx_t fx_t;

/* Every broker here runs with a 64 KiB message limit. */
static int
s_setup(void **state)
{
    static const char *const extra[] = {"--max-msg-bytes", "64K", NULL};
    return fy_fx_setup_with(state, extra);
}

/* A broker serving metrics on a free port (remembered for the test). */
static int s_metrics_port;

static int
s_setup_metrics(void **state)
{
    static char addr[64];
    s_metrics_port = fy_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s_metrics_port);
    const char *extra[] = {"--metrics", addr, NULL};
    return fy_fx_setup_with(state, extra);
}

/* One HTTP/1.0 exchange with the metrics endpoint; the whole answer. */
static void
s_http(const char *method, const char *path, char *out, size_t cap)
{
    assert_int_equal(fy_http(s_metrics_port, method, path, out, cap), 0);
}

/* GET /metrics speaks Prometheus text with what the broker did; /health
 * says ok; other paths and methods get 404 and 405. */
static void
test_metrics_endpoint(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "m", NULL, NULL, NULL),
                     FERRY_OK);
    for (int i = 0; i < 3; i++) {
        ferry_message_t m = {.data = "abcd", .len = 4};
        assert_int_equal(ferry_client_publish(fx->c, "m", &m, NULL), FERRY_OK);
    }
    /* Per topic: a duplicate, a conflict, a subscription with a backlog. */
    ferry_message_t dup = {.data = "abcd", .len = 4, .id = "d1"};
    assert_int_equal(ferry_client_publish(fx->c, "m", &dup, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(fx->c, "m", &dup, NULL), FERRY_OK);
    ferry_message_t late = {
        .data = "x", .len = 1, .expect = FERRY_EXPECT_LAST_SEQ, .expect_last_seq = 1};
    assert_int_equal(ferry_client_publish(fx->c, "m", &late, NULL), FERRY_ECONFLICT);
    assert_int_equal(ferry_client_sub_declare(fx->c, "m", "watch", NULL, NULL), FERRY_OK);
    static char body[65536];
    long long until = fy_now_ms() + 5000;
    do { /* snapshots are taken twice a second */
        fy_sleep_ms(100);
        s_http("GET", "/metrics", body, sizeof body);
    } while (
        !strstr(body, "\nferry_subscription_backlog{topic=\"m\",subscription=\"watch\"} 4\n") &&
        fy_now_ms() < until);
    assert_non_null(strstr(body, "HTTP/1.0 200") ? body : strstr(body, "HTTP/1.1 200"));
    assert_non_null(strstr(body, "\nferry_publishes_total 4\n"));
    assert_non_null(strstr(body, "\nferry_topics 1\n"));
    assert_non_null(strstr(body, "\nferry_messages 4\n"));
    /* The topic's own lines (docs/operations.md). */
    assert_non_null(strstr(body, "\nferry_topic_messages{topic=\"m\"} 4\n"));
    assert_non_null(strstr(body, "\nferry_topic_last_seq{topic=\"m\"} 4\n"));
    assert_non_null(strstr(body, "\nferry_topic_publishes_total{topic=\"m\"} 4\n"));
    assert_non_null(strstr(body, "\nferry_topic_duplicates_total{topic=\"m\"} 1\n"));
    assert_non_null(strstr(body, "\nferry_topic_conflicts_total{topic=\"m\"} 1\n"));
    assert_non_null(
        strstr(body, "\nferry_subscription_backlog{topic=\"m\",subscription=\"watch\"} 4\n"));
    assert_non_null(
        strstr(body, "\nferry_subscription_consumers{topic=\"m\",subscription=\"watch\"} 0\n"));
    assert_non_null(strstr(body, "# TYPE ferry_topic_publishes_total counter\n"));
    assert_non_null(strstr(body, "\nferry_metrics_topics_omitted 0\n"));
    assert_non_null(strstr(body, "# TYPE ferry_publishes_total counter"));
    assert_non_null(strstr(body, "\nferry_map_size_bytes "));
    /* Histograms of commit time and batch size: the declare and the three
     * publishes were four commits of one request each. */
    assert_non_null(strstr(body, "# TYPE ferry_commit_seconds histogram\n"));
    assert_non_null(strstr(body, "\nferry_commit_seconds_bucket{le=\"0.001\"} "));
    const char *cnt = strstr(body, "\nferry_commit_seconds_count ");
    assert_non_null(cnt);
    assert_true(atol(cnt + strlen("\nferry_commit_seconds_count ")) >= 4);
    const char *inf = strstr(body, "\nferry_commit_seconds_bucket{le=\"+Inf\"} ");
    assert_non_null(inf);
    assert_int_equal(atol(inf + strlen("\nferry_commit_seconds_bucket{le=\"+Inf\"} ")),
                     atol(cnt + strlen("\nferry_commit_seconds_count ")));
    const char *one = strstr(body, "\nferry_batch_requests_bucket{le=\"1\"} ");
    assert_non_null(one);
    assert_true(atol(one + strlen("\nferry_batch_requests_bucket{le=\"1\"} ")) >= 4);
    assert_non_null(strstr(body, "\nferry_slow_batches_total "));
    /* The write-ahead log took the four batches; once quiet, a checkpoint
     * put them in LMDB and the log is empty again (docs/storage.md). */
    const char *lsn = strstr(body, "\nferry_wal_lsn ");
    assert_non_null(lsn);
    assert_true(atol(lsn + strlen("\nferry_wal_lsn ")) >= 4);
    const char *wsz = strstr(body, "\nferry_wal_size_bytes ");
    assert_non_null(wsz); /* 64 MiB, or an eighth of a small file system */
    assert_true(atol(wsz + strlen("\nferry_wal_size_bytes ")) >= 1 << 20);
    assert_non_null(strstr(body, "\nferry_checkpoints_forced_total 0\n"));
    until = fy_now_ms() + 5000;
    while (!strstr(body, "\nferry_wal_bytes 0\n") && fy_now_ms() < until) {
        fy_sleep_ms(100);
        s_http("GET", "/metrics", body, sizeof body);
    }
    assert_non_null(strstr(body, "\nferry_wal_bytes 0\n"));
    const char *cps = strstr(body, "\nferry_checkpoint_seconds_count ");
    assert_non_null(cps);
    assert_true(atol(cps + strlen("\nferry_checkpoint_seconds_count ")) >= 1);
    /* What the subscription's consumers did: three delivered, one acked,
     * one nacked, one terminated; the nacked one comes again with the
     * fourth. */
    const ferry_stored_message_t *got;
    size_t n = 0;
    assert_int_equal(ferry_client_fetch(fx->c, "m", "watch", 3, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 3);
    uint64_t s1 = got[0].seq, s2 = got[1].seq, s3 = got[2].seq;
    assert_int_equal(ferry_client_ack(fx->c, "m", "watch", &s1, 1), FERRY_OK);
    assert_int_equal(ferry_client_nack(fx->c, "m", "watch", s2, 0), FERRY_OK);
    assert_int_equal(ferry_client_term(fx->c, "m", "watch", s3, "bad"), FERRY_OK);
    assert_int_equal(ferry_client_fetch(fx->c, "m", "watch", 10, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(got[0].seq, s2);
    assert_int_equal(got[0].delivery_count, 2);
    /* "once" gives up on a message after one delivery: dead-lettered. */
    ferry_sub_config_t once = {.max_deliver = 1};
    assert_int_equal(ferry_client_sub_declare(fx->c, "m", "once", &once, NULL), FERRY_OK);
    assert_int_equal(ferry_client_fetch(fx->c, "m", "once", 1, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ferry_client_nack(fx->c, "m", "once", got[0].seq, 0), FERRY_OK);
    assert_int_equal(ferry_client_fetch(fx->c, "m", "once", 1, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_not_equal(got[0].delivery_count, 2); /* the next one: the first went aside */
    until = fy_now_ms() + 5000;
    do {
        fy_sleep_ms(100);
        s_http("GET", "/metrics", body, sizeof body);
    } while (!strstr(body, "\nferry_subscription_deliveries_total{topic=\"m\",subscription="
                           "\"watch\"} 5\n") &&
             fy_now_ms() < until);
    assert_non_null(strstr(
        body, "\nferry_subscription_deliveries_total{topic=\"m\",subscription=\"watch\"} 5\n"));
    assert_non_null(strstr(
        body, "\nferry_subscription_redeliveries_total{topic=\"m\",subscription=\"watch\"} 1\n"));
    assert_non_null(
        strstr(body, "\nferry_subscription_acks_total{topic=\"m\",subscription=\"watch\"} 1\n"));
    assert_non_null(
        strstr(body, "\nferry_subscription_nacks_total{topic=\"m\",subscription=\"watch\"} 1\n"));
    assert_non_null(
        strstr(body, "\nferry_subscription_terms_total{topic=\"m\",subscription=\"watch\"} 1\n"));
    assert_non_null(strstr(
        body, "\nferry_subscription_dead_letters_total{topic=\"m\",subscription=\"watch\"} 1\n"));
    assert_non_null(strstr(
        body, "\nferry_subscription_dead_letters_total{topic=\"m\",subscription=\"once\"} 1\n"));
    assert_non_null(strstr(body, "# TYPE ferry_subscription_acks_total counter\n"));
    /* watch's oldest unacked is the nacked one, published a while ago. */
    const char *old = strstr(
        body, "\nferry_subscription_oldest_unacked_seconds{topic=\"m\",subscription=\"watch\"} ");
    assert_non_null(old);
    double age = atof(strchr(old, '}') + 2);
    assert_true(age > 0.05 && age < 600);
    assert_non_null(strstr(
        body, "\nferry_subscription_acks_total{topic=\"_others\",subscription=\"_others\"} 0\n"));
    s_http("GET", "/health", body, sizeof body);
    assert_non_null(strstr(body, " 200 "));
    assert_non_null(strstr(body, "\r\n\r\nok\n"));
    s_http("GET", "/nope", body, sizeof body);
    assert_non_null(strstr(body, " 404 "));
    s_http("POST", "/metrics", body, sizeof body);
    assert_non_null(strstr(body, " 405 "));
    /* A bad address, and a port already taken: ferryd says so and stops. */
    char cmd[1200], out[1024];
    snprintf(cmd, sizeof cmd, "'%s' --data '%s/x' --bind 'tcp://127.0.0.1:*' --metrics nohost 2>&1",
             getenv("FERRYD"), fx->d.dir);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "not host:port"));
    snprintf(cmd, sizeof cmd,
             "'%s' --data '%s/y' --bind 'tcp://127.0.0.1:*' --metrics 127.0.0.1:%d 2>&1",
             getenv("FERRYD"), fx->d.dir, s_metrics_port);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "cannot serve metrics"));
}

/* --metrics-topics bounds the labels: the topics beyond it are counted
 * together and the page says some were left out. */
static void
test_metrics_topics_bounded(void **state)
{
    (void)state;
    fy_ferryd_t d = {0};
    char addr[64];
    int port = fy_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    const char *extra[] = {"--metrics", addr, "--metrics-topics", "2", NULL};
    memcpy(d.extra, extra, sizeof extra);
    assert_int_equal(fy_ferryd_start(&d), 0);
    ferry_client_t *c = fy_connect(d.endpoint, 5000, 100);
    assert_non_null(c);
    const char *names[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, names[i], NULL, NULL, NULL),
                         FERRY_OK);
        ferry_message_t m = {.data = "x", .len = 1};
        for (int k = 0; k <= i; k++)
            assert_int_equal(ferry_client_publish(c, names[i], &m, NULL), FERRY_OK);
    }
    static char body[65536];
    long long until = fy_now_ms() + 5000;
    do {
        fy_sleep_ms(100);
        assert_int_equal(fy_http(port, "GET", "/metrics", body, sizeof body), 0);
    } while (!strstr(body, "\nferry_metrics_topics_omitted 1\n") && fy_now_ms() < until);
    assert_non_null(strstr(body, "\nferry_metrics_topics_omitted 1\n"));
    assert_non_null(strstr(body, "\nferry_topic_messages{topic=\"a\"} 1\n"));
    assert_non_null(strstr(body, "\nferry_topic_messages{topic=\"b\"} 2\n"));
    assert_null(strstr(body, "{topic=\"c\"}"));
    assert_non_null(strstr(body, "\nferry_topic_publishes_total{topic=\"_others\"} 3\n"));
    ferry_client_destroy(&c);
    fy_ferryd_cleanup(&d);
}

/* ferry top: one frame as text (--once), and the live view in a terminal
 * (a pseudo-terminal from script(1)): it draws, sorts on 's', quits on 'q'. */
/* Waits up to 10 s for the tmux pane of `ferry top` to show @p topic's
 * row with its largest backlog @p want. @return 0, or -1 (the screen said). */
static int
s_top_backlog(const char *tmux, const char *topic, unsigned long long want)
{
    char cmd[600], screen[16384];
    snprintf(cmd, sizeof cmd, "%s capture-pane -p", tmux);
    long long until = fy_now_ms() + 10000;
    do {
        if (fy_run(cmd, screen, sizeof screen) == 0) {
            for (const char *l = screen; l && *l;
                 l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                char name[64], kind[16], bytes[16], rate[16];
                unsigned long long msgs, backlog;
                int subs;
                if (sscanf(l, "%63s %15s %llu %15s %15s %d %llu", name, kind, &msgs, bytes, rate,
                           &subs, &backlog) == 7 &&
                    strcmp(name, topic) == 0 && backlog == want)
                    return 0;
            }
        }
        fy_sleep_ms(100);
    } while (fy_now_ms() < until);
    fprintf(stderr, "ferry top never showed %s with backlog %llu; its screen:\n%s\n", topic, want,
            screen);
    return -1;
}

static void
test_top(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders.dlq", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1};
    for (int i = 0; i < 3; i++)
        assert_int_equal(ferry_client_publish(fx->c, "orders", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(fx->c, "orders.dlq", &m, NULL), FERRY_OK);
    ferry_sub_config_t sc = {.start = "first"};
    assert_int_equal(ferry_client_sub_declare(fx->c, "orders", "billing", &sc, NULL), FERRY_OK);
    char cmd[1200], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' top --once", getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "ferry top - up "));
    assert_non_null(strstr(out, ", 3 topics, 4 messages"));
    /* orders: a topic, 3 messages, 1 subscription with 3 waiting, 1 dead letter. */
    const char *row = strstr(out, "\norders ");
    assert_non_null(row);
    char name[64], kind[16], bytes[16], rate[16];
    unsigned long long msgs, backlog, dlq;
    int subs;
    assert_int_equal(sscanf(row, " %63s %15s %llu %15s %15s %d %llu %llu", name, kind, &msgs, bytes,
                            rate, &subs, &backlog, &dlq),
                     8);
    assert_string_equal(kind, "topic");
    assert_int_equal(msgs, 3);
    assert_int_equal(subs, 1);
    assert_int_equal(backlog, 3);
    assert_int_equal(dlq, 1);
    assert_non_null(strstr(out, "\njobs "));
    /* Live: drawn in a terminal, 's' sorts, 'q' quits with 0. */
    snprintf(cmd, sizeof cmd,
             "(sleep 1; printf s; sleep 0.5; printf q) | TERM=xterm timeout 20 script -qec "
             "\"'%s' --server '%s' top --interval-ms 200\" /dev/null",
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "ferry top - up "));
    assert_non_null(strstr(out, "s: sort, q: quit"));

    /* In a real terminal (tmux, its screen read back): the backlog of
     * orders falls from 3 to 0 while a consumer drains it. */
    char tmux[400];
    snprintf(tmux, sizeof tmux, "TMUX_TMPDIR='%s' tmux -L top", fx->d.dir);
    snprintf(cmd, sizeof cmd,
             "%s new-session -d -x 160 -y 40 \"'%s' --server '%s' top --interval-ms 200\"", tmux,
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_int_equal(s_top_backlog(tmux, "orders", 3), 0);
    const ferry_stored_message_t *got;
    size_t n = 0;
    assert_int_equal(ferry_client_fetch(fx->c, "orders", "billing", 10, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 3);
    uint64_t seqs[3] = {got[0].seq, got[1].seq, got[2].seq};
    assert_int_equal(ferry_client_ack(fx->c, "orders", "billing", seqs, 3), FERRY_OK);
    assert_int_equal(s_top_backlog(tmux, "orders", 0), 0);
    /* q ends it: the session goes with it. */
    snprintf(cmd, sizeof cmd, "%s send-keys q", tmux);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    long long until = fy_now_ms() + 5000;
    int alive;
    snprintf(cmd, sizeof cmd, "%s has-session 2>/dev/null", tmux);
    while ((alive = fy_run(cmd, out, sizeof out) == 0) && fy_now_ms() < until)
        fy_sleep_ms(50);
    assert_false(alive);
}

/* What get, fetch, sub, read and dlq list print: times in ISO 8601 UTC;
 * --json one object per message, a payload that is not UTF-8 in base64. */
static void
test_cli_json_and_times(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "j", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_header_t h = {"type", "Placed"};
    ferry_message_t text = {
        .data = "{\"a\":1}", .len = 7, .key = "k1", .id = "i1", .headers = &h, .header_count = 1};
    ferry_message_t bin = {.data = "\xff\x00"
                                   "bin",
                           .len = 5};
    assert_int_equal(ferry_client_publish(fx->c, "j", &text, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(fx->c, "j", &bin, NULL), FERRY_OK);
    char cmd[800], out[4096];
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' get j", getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    int y, mo, d, hh, mi, ss, ms;
    const char *t = strstr(out, "seq=1 time=");
    assert_non_null(t);
    assert_int_equal(sscanf(t,
                            "seq=1 time=%4d-%2d-%2dT%2d:%2d:%2d.%3dZ key=k1 version=1 id=i1 "
                            "type=Placed len=7",
                            &y, &mo, &d, &hh, &mi, &ss, &ms),
                     7);
    assert_true(y >= 2026);
    assert_non_null(strstr(out, "\\xff\\x00bin")); /* escaped for the terminal */
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' get j --from 2 --hex", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, " len=5\n00000000  ff 00 62 69 6e"
                                "                                    |..bin|\n"));
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' get j --json", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "{\"seq\":1,\"time\":\""));
    assert_non_null(strstr(out, "\"key\":\"k1\",\"version\":1,\"id\":\"i1\","
                                "\"headers\":{\"type\":\"Placed\"},\"data\":\"{\\\"a\\\":1}\"}\n"));
    assert_non_null(strstr(out, "\"data_base64\":\"/wBiaW4=\"}\n"));
    /* fetch and read take it too. */
    snprintf(cmd, sizeof cmd, "'%s' --server '%s' read j k1 --json", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"seq\":1,"));
    assert_null(strstr(out, "\"seq\":2,"));
}

static void
test_declare_and_info(void **state)
{
    fx_t *fx = *state;
    ferry_topic_info_t info;
    bool created = false;
    assert_int_equal(ferry_client_ping(fx->c), FERRY_OK);
    ferry_topic_config_t cfg = {.dedupe_window_ms = 30000};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders", &cfg, &info, &created),
                     FERRY_OK);
    assert_true(created);
    assert_string_equal(info.name, "orders");
    assert_int_equal(info.dedupe_window_ms, 30000);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "orders", NULL, &info, &created),
                     FERRY_OK);
    assert_false(created);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "orders", NULL, &info, &created),
                     FERRY_EEXISTS);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobs", NULL, &info, &created),
                     FERRY_OK);
    assert_int_equal(info.kind, FERRY_KIND_QUEUE);
    assert_int_equal(info.dedupe_window_ms, 120000);
    assert_int_equal(ferry_client_info(fx->c, "jobs", &info), FERRY_OK);
    assert_int_equal(info.messages, 0);
    assert_int_equal(ferry_client_info(fx->c, "missing", &info), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_info(fx->c, "bad name", &info), FERRY_EINVALID_NAME);
    ferry_stats_t st;
    assert_int_equal(ferry_client_stats(fx->c, &st), FERRY_OK);
    assert_int_equal(st.topics, 2);
}

static void
test_publish_confirm_dedupe_and_get(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "t", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_header_t hdrs[] = {{"trace-id", "t-1"}, {"type", "Created"}};
    ferry_message_t m = {.data = "first",
                         .len = 5,
                         .key = "agg-1",
                         .id = "id-1",
                         .headers = hdrs,
                         .header_count = 2};
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(fx->c, "t", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    assert_false(cf.duplicate);
    ferry_message_t m2 = {.data = "second", .len = 6, .key = "agg-1"};
    assert_int_equal(ferry_client_publish(fx->c, "t", &m2, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 2);
    /* Same message again: confirmed with the original sequence, not stored. */
    assert_int_equal(ferry_client_publish(fx->c, "t", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    assert_true(cf.duplicate);
    /* The same id for other bytes: refused (EIDREUSED), not a silent duplicate. */
    ferry_message_t again = {.data = "other bytes", .len = 11, .id = "id-1"};
    assert_int_equal(ferry_client_publish(fx->c, "t", &again, &cf), FERRY_EIDREUSED);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "t", &info), FERRY_OK);
    assert_int_equal(info.messages, 2);
    assert_int_equal(info.last_seq, 2);
    /* payload + key + id + headers (27 bytes of msgpack), then payload + key. */
    assert_int_equal(info.bytes, (5 + 5 + 4 + 27) + (6 + 5));

    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "t", 1, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(msgs[0].seq, 1);
    assert_string_equal(msgs[0].key, "agg-1");
    assert_string_equal(msgs[0].id, "id-1");
    assert_int_equal(msgs[0].len, 5);
    assert_memory_equal(msgs[0].data, "first", 5);
    assert_int_equal(msgs[0].header_count, 2);
    assert_string_equal(msgs[0].headers[0].name, "trace-id");
    assert_string_equal(msgs[0].headers[0].value, "t-1");
    assert_string_equal(msgs[0].headers[1].value, "Created");
    assert_null(msgs[1].id);
    assert_memory_equal(msgs[1].data, "second", 6);
    assert_true(msgs[1].timestamp_ms >= msgs[0].timestamp_ms);
    /* From the middle, and past the end. */
    assert_int_equal(ferry_client_get(fx->c, "t", 2, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(msgs[0].seq, 2);
    assert_int_equal(ferry_client_get(fx->c, "t", 3, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ferry_client_get(fx->c, "nope", 1, 10, &msgs, &n), FERRY_ENOTFOUND);
}

static void
test_publish_errors(void **state)
{
    fx_t *fx = *state;
    ferry_message_t m = {.data = "x", .len = 1};
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(fx->c, "unknown", &m, &cf), FERRY_ENOTFOUND);
    assert_int_equal(cf.status, FERRY_ENOTFOUND);
    assert_non_null(strstr(ferry_client_last_error(fx->c), "no such topic"));
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "big", NULL, NULL, NULL),
                     FERRY_OK);
    /* The broker runs with --max-msg-bytes 64K. */
    size_t len = 64 * 1024 + 1;
    char *big = calloc(1, len);
    ferry_message_t mb = {.data = big, .len = len};
    assert_int_equal(ferry_client_publish(fx->c, "big", &mb, &cf), FERRY_ETOO_LARGE);
    mb.len = 64 * 1024;
    assert_int_equal(ferry_client_publish(fx->c, "big", &mb, &cf), FERRY_OK);
    /* Up to 4096 bytes the payload rides inside the envelope, above in its own
     * frame: both come back byte for byte, sync and async. */
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 26);
    size_t sizes[] = {4096, 4097, 0};
    for (size_t k = 0; k < 3; k++) {
        ferry_message_t ms = {.data = big + k, .len = sizes[k]};
        assert_int_equal(ferry_client_publish(fx->c, "big", &ms, &cf), FERRY_OK);
        assert_int_equal(ferry_client_publish_async(fx->c, "big", &ms, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(fx->c, 5000), FERRY_OK);
    const ferry_stored_message_t *got;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "big", 2, 10, &got, &n), FERRY_OK);
    assert_int_equal(n, 6);
    for (size_t j = 0; j < 6; j++) {
        assert_int_equal(got[j].len, sizes[j / 2]);
        assert_memory_equal(got[j].data, big + j / 2, sizes[j / 2]);
    }
    free(big);
    /* Misuse is refused locally. */
    assert_int_equal(ferry_client_publish(fx->c, "big", NULL, &cf), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish(fx->c, "bad topic", &m, &cf), FERRY_EINVALID_NAME);
    assert_int_equal(ferry_client_publish(NULL, "big", &m, &cf), FERRY_EINVAL);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "big", &info), FERRY_OK);
    assert_int_equal(info.messages, 7);
}

typedef struct {
    size_t confirmed, failed, dups;
    uint64_t last_seq;
    bool in_order;
} s_tally_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_tally_t *t = user;
    if (cf->status != FERRY_OK) {
        t->failed++;
        return;
    }
    if (cf->duplicate) {
        t->dups++;
        return;
    }
    if (cf->seq != t->last_seq + 1)
        t->in_order = false;
    t->last_seq = cf->seq;
    t->confirmed++;
}

static void
test_async_window_and_group_commit(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "fast", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_stats_t before, after;
    assert_int_equal(ferry_client_stats(fx->c, &before), FERRY_OK);
    s_tally_t t = {.in_order = true};
    const size_t n = getenv("FERRY_TEST_QUICK") ? 2000 : 20000;
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "msg-%zu", i);
        ferry_message_t m = {.data = buf, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(fx->c, "fast", &m, s_on_confirm, &t), FERRY_OK);
        assert_true(ferry_client_in_flight(fx->c) <= 1000);
    }
    assert_int_equal(ferry_client_flush(fx->c, 30000), FERRY_OK);
    assert_int_equal(ferry_client_in_flight(fx->c), 0);
    assert_int_equal(t.confirmed, n);
    assert_int_equal(t.failed, 0);
    assert_true(t.in_order);
    assert_int_equal(t.last_seq, n);
    assert_int_equal(ferry_client_stats(fx->c, &after), FERRY_OK);
    assert_int_equal(after.publishes - before.publishes, n);
    /* Group commit: many publishes share one durable commit. */
    assert_true(after.commits - before.commits < n / 2);
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(fx->c, "fast", &all, &count), FERRY_OK);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i += 997) {
        snprintf(buf, sizeof buf, "msg-%zu", i);
        assert_string_equal(all[i].payload, buf);
        assert_int_equal(all[i].seq, i + 1);
    }
    free(all);
}

typedef struct {
    uint64_t *seqs; /* per message index */
    size_t next, confirmed, failed;
    bool in_order;
} s_log_t;

static void
s_on_logged(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_log_t *l = user;
    if (cf->status != FERRY_OK || cf->duplicate) {
        l->failed++;
        return;
    }
    if (l->confirmed > 0 && cf->seq <= l->seqs[l->confirmed - 1])
        l->in_order = false;
    l->seqs[l->confirmed++] = cf->seq;
}

static void
test_two_async_publishers(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "shared", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_client_t *other = fy_connect(fx->d.endpoint, 5000, 500);
    assert_non_null(other);
    const size_t n = 5000;
    s_log_t la = {.seqs = calloc(n, sizeof(uint64_t)), .in_order = true};
    s_log_t lb = {.seqs = calloc(n, sizeof(uint64_t)), .in_order = true};
    char buf[32];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "a-%zu", i);
        ferry_message_t ma = {.data = buf, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(fx->c, "shared", &ma, s_on_logged, &la),
                         FERRY_OK);
        len = snprintf(buf, sizeof buf, "b-%zu", i);
        ferry_message_t mb = {.data = buf, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(other, "shared", &mb, s_on_logged, &lb),
                         FERRY_OK);
        /* A blocking call in the middle of the stream is answered too. */
        if (i == n / 2) {
            ferry_confirm_t cf;
            ferry_message_t mid = {.data = "mid", .len = 3};
            assert_int_equal(ferry_client_publish(fx->c, "shared", &mid, &cf), FERRY_OK);
            assert_int_equal(la.confirmed, n / 2 + 1); /* all earlier confirms came first */
        }
    }
    assert_int_equal(ferry_client_flush(fx->c, 30000), FERRY_OK);
    assert_int_equal(ferry_client_flush(other, 30000), FERRY_OK);
    assert_int_equal(la.confirmed, n);
    assert_int_equal(lb.confirmed, n);
    assert_int_equal(la.failed + lb.failed, 0);
    assert_true(la.in_order && lb.in_order);
    /* Each confirmed sequence holds that client's message. */
    fy_copied_t *all;
    size_t count;
    assert_int_equal(fy_read_all(fx->c, "shared", &all, &count), FERRY_OK);
    assert_int_equal(count, 2 * n + 1);
    for (size_t i = 0; i < n; i += 7) {
        snprintf(buf, sizeof buf, "a-%zu", i);
        assert_string_equal(all[la.seqs[i] - 1].payload, buf);
        snprintf(buf, sizeof buf, "b-%zu", i);
        assert_string_equal(all[lb.seqs[i] - 1].payload, buf);
    }
    free(all);
    free(la.seqs);
    free(lb.seqs);
    ferry_client_destroy(&other);
}

static void
test_publish_batch(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "batch", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t one = {.data = "solo", .len = 4, .id = "b-1"};
    assert_int_equal(ferry_client_publish(fx->c, "batch", &one, NULL), FERRY_OK);
    ferry_header_t h[] = {{"k", "v"}};
    ferry_message_t msgs[4] = {
        {.data = "a", .len = 1, .key = "x"},
        {.data = "solo", .len = 4, .id = "b-1"}, /* seen before: a duplicate of seq 1 */
        {.data = "c", .len = 1, .id = "b-2", .headers = h, .header_count = 1},
        {.data = "c", .len = 1, .id = "b-2", .headers = h, .header_count = 1}, /* twice */
    };
    ferry_confirm_t cf[4];
    assert_int_equal(ferry_client_publish_batch(fx->c, "batch", msgs, 4, cf), FERRY_OK);
    assert_int_equal(cf[0].seq, 2);
    assert_false(cf[0].duplicate);
    assert_int_equal(cf[1].seq, 1);
    assert_true(cf[1].duplicate);
    assert_int_equal(cf[2].seq, 3);
    assert_int_equal(cf[3].seq, 3);
    assert_true(cf[3].duplicate);
    fy_copied_t *all;
    size_t n;
    assert_int_equal(fy_read_all(fx->c, "batch", &all, &n), FERRY_OK);
    assert_int_equal(n, 3);
    assert_string_equal(all[0].payload, "solo");
    assert_string_equal(all[1].payload, "a");
    assert_string_equal(all[1].key, "x");
    assert_string_equal(all[2].payload, "c");
    free(all);
    /* One oversized message refuses the whole batch: nothing stored. */
    char *big = calloc(1, 70 * 1024);
    ferry_message_t mixed[2] = {{.data = "ok", .len = 2}, {.data = big, .len = 70 * 1024}};
    assert_int_equal(ferry_client_publish_batch(fx->c, "batch", mixed, 2, cf), FERRY_ETOO_LARGE);
    assert_int_equal(cf[0].status, FERRY_ETOO_LARGE);
    free(big);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "batch", &info), FERRY_OK);
    assert_int_equal(info.messages, 3);
    assert_int_equal(ferry_client_publish_batch(fx->c, "batch", msgs, 0, cf), FERRY_EINVAL);
    assert_int_equal(ferry_client_publish_batch(fx->c, "nope", msgs, 1, cf), FERRY_ENOTFOUND);
}

static void
test_dedupe_window_expires(void **state)
{
    fx_t *fx = *state;
    ferry_topic_config_t cfg = {.dedupe_window_ms = 200};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "short", &cfg, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1, .id = "same"};
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(fx->c, "short", &m, &cf), FERRY_OK);
    assert_int_equal(cf.seq, 1);
    assert_int_equal(ferry_client_publish(fx->c, "short", &m, &cf), FERRY_OK);
    assert_true(cf.duplicate);
    /* Within the window it stays a duplicate; after it, the id is new again. */
    long long start = fy_now_ms(), deadline = start + 5000;
    while (cf.duplicate && fy_now_ms() < deadline) {
        assert_int_equal(ferry_client_publish(fx->c, "short", &m, &cf), FERRY_OK);
        if (cf.duplicate)
            assert_int_equal(cf.seq, 1);
    }
    assert_false(cf.duplicate);
    assert_int_equal(cf.seq, 2);
    assert_true(fy_now_ms() - start >= 150);
}

static void
test_restart_keeps_data_and_dedupe(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "keep", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_confirm_t cf;
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "k-%d", i);
        ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
        assert_int_equal(ferry_client_publish(fx->c, "keep", &m, &cf), FERRY_OK);
    }
    ferry_client_destroy(&fx->c);
    /* Graceful stop: SIGTERM, exit status 0. */
    int status = fy_ferryd_signal(&fx->d, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"stopped\" code=OK"), 1);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    assert_non_null(fx->c);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "keep", &info), FERRY_OK);
    assert_int_equal(info.messages, 10);
    ferry_message_t m = {.data = "k-3", .len = 3, .id = "k-3"};
    assert_int_equal(ferry_client_publish(fx->c, "keep", &m, &cf), FERRY_OK);
    assert_true(cf.duplicate);
    assert_int_equal(cf.seq, 4);
    ferry_message_t m2 = {.data = "y", .len = 1, .id = "k-10"};
    assert_int_equal(ferry_client_publish(fx->c, "keep", &m2, &cf), FERRY_OK);
    assert_false(cf.duplicate);
    assert_int_equal(cf.seq, 11);
}

static void
test_delete(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "tmp", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1};
    assert_int_equal(ferry_client_publish(fx->c, "tmp", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_delete(fx->c, "tmp"), FERRY_OK);
    assert_int_equal(ferry_client_delete(fx->c, "tmp"), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_publish(fx->c, "tmp", &m, NULL), FERRY_ENOTFOUND);
    ferry_topic_info_t info;
    bool created;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "tmp", NULL, &info, &created),
                     FERRY_OK);
    assert_true(created);
    assert_int_equal(info.messages, 0);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "tmp", 1, 10, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 0);
}

static void
test_retention(void **state)
{
    fx_t *fx = *state;
    ferry_topic_config_t keep = {.max_msgs = 100};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "recent", &keep, NULL, NULL),
                     FERRY_OK);
    char buf[32];
    for (int i = 1; i <= 250; i++) {
        int len = snprintf(buf, sizeof buf, "r-%d", i);
        ferry_message_t m = {.data = buf, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(fx->c, "recent", &m, NULL, NULL), FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(fx->c, 10000), FERRY_OK);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "recent", &info), FERRY_OK);
    assert_int_equal(info.messages, 100);
    assert_int_equal(info.first_seq, 151);
    assert_int_equal(info.max_msgs, 100);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_get(fx->c, "recent", 1, 5, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 5);
    assert_int_equal(msgs[0].seq, 151);
    assert_memory_equal(msgs[0].data, "r-151", 5);

    ferry_topic_config_t cap = {.max_msgs = 10, .discard_new = true};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "capped", &cap, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1};
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_client_publish(fx->c, "capped", &m, NULL), FERRY_OK);
    assert_int_equal(ferry_client_publish(fx->c, "capped", &m, NULL), FERRY_ELIMIT);
    ferry_message_t two[2] = {m, m};
    assert_int_equal(ferry_client_publish_batch(fx->c, "capped", two, 2, NULL), FERRY_ELIMIT);
    assert_int_equal(ferry_client_info(fx->c, "capped", &info), FERRY_OK);
    assert_int_equal(info.messages, 10);
    assert_true(info.discard_new);

    ferry_topic_config_t young = {.max_age_ms = 200};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "young", &young, NULL, NULL),
                     FERRY_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(ferry_client_publish(fx->c, "young", &m, NULL), FERRY_OK);
    long long deadline = fy_now_ms() + 5000;
    do {
        assert_int_equal(ferry_client_info(fx->c, "young", &info), FERRY_OK);
    } while (info.messages > 0 && fy_now_ms() < deadline);
    assert_int_equal(info.messages, 0);
    assert_int_equal(info.last_seq, 20);

    /* Interest: gone once both subscriptions acked. */
    ferry_topic_config_t interest = {.interest = true};
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "fan", &interest, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "fan", "a", NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "fan", "b", NULL, NULL), FERRY_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ferry_client_publish(fx->c, "fan", &m, NULL), FERRY_OK);
    const char *subs[2] = {"a", "b"};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(ferry_client_fetch(fx->c, "fan", subs[k], 10, 0, &msgs, &n), FERRY_OK);
        assert_int_equal(n, 4);
        uint64_t seqs[4] = {1, 2, 3, 4};
        assert_int_equal(ferry_client_ack(fx->c, "fan", subs[k], seqs, k == 0 ? 4 : 2), FERRY_OK);
    }
    do {
        assert_int_equal(ferry_client_info(fx->c, "fan", &info), FERRY_OK);
    } while (info.messages > 2 && fy_now_ms() < deadline + 5000);
    assert_int_equal(info.messages, 2);
    assert_int_equal(info.first_seq, 3);
    assert_true(info.interest);
}

/* topics: every topic and queue in name order, a page at a time; the CLI
 * lists them as columns or JSON lines. */
static void
test_topics_listed(void **state)
{
    fx_t *fx = *state;
    char name[32];
    for (int i = 24; i >= 0; i--) { /* declared out of order */
        snprintf(name, sizeof name, "t%02d", i);
        assert_int_equal(ferry_client_declare(fx->c, i % 5 ? FERRY_KIND_TOPIC : FERRY_KIND_QUEUE,
                                              name, NULL, NULL, NULL),
                         FERRY_OK);
    }
    ferry_message_t m = {.data = "abc", .len = 3};
    assert_int_equal(ferry_client_publish(fx->c, "t07", &m, NULL), FERRY_OK);
    ferry_topic_info_t page[10];
    size_t n, seen = 0;
    bool more = true;
    char after[FERRY_NAME_MAX + 1] = "";
    int pages = 0;
    while (more) {
        assert_int_equal(ferry_client_topics(fx->c, after, page, 10, &n, &more), FERRY_OK);
        pages++;
        for (size_t i = 0; i < n; i++, seen++) {
            snprintf(name, sizeof name, "t%02zu", seen);
            assert_string_equal(page[i].name, name);
            assert_int_equal(page[i].kind, seen % 5 ? FERRY_KIND_TOPIC : FERRY_KIND_QUEUE);
            assert_int_equal(page[i].messages, seen == 7 ? 1 : 0);
        }
        snprintf(after, sizeof after, "%s", page[n - 1].name);
    }
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3); /* 10, 10, 5 */
    /* After a name that does not exist: from the next one. */
    assert_int_equal(ferry_client_topics(fx->c, "t115", page, 10, &n, &more), FERRY_OK);
    assert_int_equal(n, 10); /* t12 .. t21 of the 13 left */
    assert_string_equal(page[0].name, "t12");
    assert_true(more);
    assert_int_equal(ferry_client_topics(fx->c, "zzz", page, 10, &n, &more), FERRY_OK);
    assert_int_equal(n, 0);
    /* Bad input. */
    assert_int_equal(ferry_client_topics(fx->c, NULL, page, 0, &n, &more), FERRY_EINVAL);
    assert_int_equal(ferry_client_topics(fx->c, NULL, page, 1001, &n, &more), FERRY_EINVAL);
    assert_int_equal(ferry_client_topics(fx->c, "bad name", page, 10, &n, &more),
                     FERRY_EINVALID_NAME);
    /* The CLI: all of them, columns or JSON lines. */
    const char *cli = getenv("FERRY_CLI");
    char cmd[600], out[8192];
    snprintf(cmd, sizeof cmd, "%s --server %s topics", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "t00                               queue"));
    assert_non_null(strstr(out, "t07                               topic             1"));
    assert_non_null(strstr(out, "\n25 topics and queues\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s topics --json | grep -c '^{\"name\":\"t'", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "25\n");
    snprintf(cmd, sizeof cmd, "%s --server %s topics --json | grep '\"t07\"'", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"kind\":\"topic\",\"messages\":1,\"bytes\":3,"));
}

static ferry_msg_action_t
s_keep(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c, (void)m, (void)user;
    return FERRY_MSG_KEEP;
}

/* subs: a topic's subscriptions in name order, where each stands, how many
 * push consumers each has now; a queue's own; bad input; sub-delete. */
static void
test_subs_listed(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "ev", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1, .key = "eu.1"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(ferry_client_publish(fx->c, "ev", &m, NULL), FERRY_OK);
    ferry_sub_config_t eu = {.filter = "eu.>", .max_deliver = 9};
    assert_int_equal(ferry_client_sub_declare(fx->c, "ev", "c-eu", &eu, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "ev", "a-all", NULL, NULL), FERRY_OK);
    assert_int_equal(
        ferry_client_sub_declare(fx->c, "ev", "b-new", &(ferry_sub_config_t){.start = "new"}, NULL),
        FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "ev", "a-all", 2, 0, &msgs, &n), FERRY_OK);
    uint64_t seqs[2] = {msgs[0].seq, msgs[1].seq};
    assert_int_equal(ferry_client_ack(fx->c, "ev", "a-all", seqs, 2), FERRY_OK);
    ferry_client_t *c2 = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(c2);
    assert_int_equal(ferry_client_subscribe(c2, "ev", "c-eu", 1, s_keep, NULL, NULL), FERRY_OK);
    ferry_sub_listing_t page[2];
    bool more;
    assert_int_equal(ferry_client_subs(fx->c, "ev", NULL, page, 2, &n, &more), FERRY_OK);
    assert_int_equal(n, 2);
    assert_true(more);
    assert_string_equal(page[0].name, "a-all");
    assert_int_equal(page[0].cursor, 3);
    assert_int_equal(page[0].ack_floor, 2);
    assert_int_equal(page[0].last_seq, 5);
    assert_int_equal(page[0].consumers, 0);
    assert_string_equal(page[1].name, "b-new");
    assert_int_equal(page[1].cursor, 6);
    assert_int_equal(ferry_client_subs(fx->c, "ev", "b-new", page, 2, &n, &more), FERRY_OK);
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(page[0].name, "c-eu");
    assert_string_equal(page[0].filter, "eu.>");
    assert_int_equal(page[0].max_deliver, 9);
    assert_int_equal(page[0].consumers, 1);
    /* A queue's own subscription; no such topic; bad input. */
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "q", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_subs(fx->c, "q", NULL, page, 2, &n, &more), FERRY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].name, "");
    assert_int_equal(ferry_client_subs(fx->c, "nope", NULL, page, 2, &n, &more), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_subs(fx->c, "ev", NULL, page, 0, &n, &more), FERRY_EINVAL);
    assert_int_equal(ferry_client_subs(fx->c, "bad name", NULL, page, 2, &n, &more),
                     FERRY_EINVALID_NAME);
    /* The CLI. */
    const char *cli = getenv("FERRY_CLI");
    char cmd[600], out[4096];
    snprintf(cmd, sizeof cmd, "%s --server %s subs ev", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "SUBSCRIPTION"));
    assert_non_null(
        strstr(out, "a-all                                3             2             3"));
    assert_non_null(strstr(out, "c-eu "));
    assert_non_null(strstr(out, "eu.>"));
    assert_non_null(strstr(out, "\n3 subscriptions\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s subs ev --json | grep c-eu", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"filter\":\"eu.>\""));
    assert_non_null(strstr(out, "\"consumers\":1,"));
    snprintf(cmd, sizeof cmd, "%s --server %s subs nope 2>&1", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "ENOTFOUND"));
    /* sub-delete: gone from the listing, with its consumer's deliveries;
     * twice is ENOTFOUND; a queue's own goes with the queue. */
    assert_int_equal(ferry_client_sub_delete(fx->c, "ev", "b-new"), FERRY_OK);
    assert_int_equal(ferry_client_sub_delete(fx->c, "ev", "b-new"), FERRY_ENOTFOUND);
    assert_int_equal(ferry_client_sub_delete(fx->c, "q", ""), FERRY_EINVALID_NAME);
    assert_int_equal(ferry_client_sub_delete(fx->c, "nope", "x"), FERRY_ENOTFOUND);
    snprintf(cmd, sizeof cmd, "%s --server %s sub-delete ev c-eu", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "deleted subscription c-eu of ev\n");
    assert_int_equal(ferry_client_subs(fx->c, "ev", NULL, page, 2, &n, &more), FERRY_OK);
    assert_int_equal(n, 1);
    assert_string_equal(page[0].name, "a-all");
    assert_int_equal(ferry_client_sub_info(fx->c, "ev", "c-eu", &(ferry_sub_info_t){0}),
                     FERRY_ENOTFOUND);
    ferry_client_destroy(&c2);
}

/* purge: all but the newest N, those below a sequence, or all; the key
 * index and subscriptions go on from what is left; more than one slice. */
static void
test_purge(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "p", NULL, NULL, NULL),
                     FERRY_OK);
    char keys[5][4];
    ferry_message_t batch[25];
    for (int i = 0; i < 25; i++) {
        snprintf(keys[i % 5], sizeof keys[0], "k%d", i % 5);
        batch[i] = (ferry_message_t){.data = "m", .len = 1, .key = keys[i % 5]};
    }
    assert_int_equal(ferry_client_publish_batch(fx->c, "p", batch, 25, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(fx->c, "p", "s", NULL, NULL), FERRY_OK);
    const ferry_stored_message_t *msgs;
    size_t n;
    assert_int_equal(ferry_client_fetch(fx->c, "p", "s", 3, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 3); /* 1-3 pending for s, then purged */
    uint64_t removed = 0;
    assert_int_equal(ferry_client_purge(fx->c, "p", 20, 0, &removed), FERRY_OK);
    assert_int_equal(removed, 5);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "p", &info), FERRY_OK);
    assert_int_equal(info.messages, 20);
    assert_int_equal(info.first_seq, 6);
    assert_int_equal(ferry_client_purge(fx->c, "p", 0, 10, &removed), FERRY_OK);
    assert_int_equal(removed, 4);
    assert_int_equal(ferry_client_purge(fx->c, "p", 0, 5, &removed), FERRY_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(ferry_client_info(fx->c, "p", &info), FERRY_OK);
    assert_int_equal(info.first_seq, 10);
    /* The key index: k0's versions left are those of 11, 16, 21. */
    ferry_key_iter_t *it = NULL;
    assert_int_equal(ferry_client_read_key(fx->c, "p", "k0", 0, 0, &it), FERRY_OK);
    const ferry_stored_message_t *km;
    char got[64] = "";
    while (ferry_key_iter_next(it, &km) == FERRY_OK && km)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%llu ", (unsigned long long)km->seq);
    ferry_key_iter_destroy(&it);
    assert_string_equal(got, "11 16 21 ");
    /* The subscription goes on from what is left. */
    assert_int_equal(ferry_client_fetch(fx->c, "p", "s", 100, 0, &msgs, &n), FERRY_OK);
    assert_int_equal(n, 16);
    assert_int_equal(msgs[0].seq, 10);
    /* Bad input. */
    assert_int_equal(ferry_client_purge(fx->c, "p", 1, 10, &removed), FERRY_EINVAL);
    assert_int_equal(ferry_client_purge(fx->c, "nope", 0, 0, &removed), FERRY_ENOTFOUND);
    /* More than one slice (10,000 a request): all of them. */
    ferry_message_t big[FERRY_BATCH_MAX];
    for (int i = 0; i < FERRY_BATCH_MAX; i++)
        big[i] = (ferry_message_t){.data = "b", .len = 1};
    for (int r = 0; r < 12; r++)
        assert_int_equal(ferry_client_publish_batch(fx->c, "p", big, FERRY_BATCH_MAX, NULL),
                         FERRY_OK);
    assert_int_equal(ferry_client_purge(fx->c, "p", 0, 0, &removed), FERRY_OK);
    assert_int_equal(removed, 12016);
    assert_int_equal(ferry_client_info(fx->c, "p", &info), FERRY_OK);
    assert_int_equal(info.messages, 0);
    assert_int_equal(info.bytes, 0);
    ferry_confirm_t cf;
    assert_int_equal(ferry_client_publish(fx->c, "p", &batch[0], &cf), FERRY_OK);
    assert_int_equal(cf.seq, 12026); /* sequences go on */
    /* The CLI. */
    char cmd[600], out[512];
    snprintf(cmd, sizeof cmd, "%s --server %s purge p --keep 0", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "purged 1 message from p\n");
    snprintf(cmd, sizeof cmd, "%s --server %s purge p --keep 1 --seq-below 3 2>&1",
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--keep or --seq-below, not both"));
}

/* edit: limits and the dedupe window change; lower limits with discard old
 * trim the oldest (in slices), with discard new keep them and refuse
 * publishes; what cannot change is an error. */
static void
test_edit(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "e", NULL, NULL, NULL),
                     FERRY_OK);
    ferry_message_t m = {.data = "x", .len = 1};
    for (int i = 0; i < 10; i++)
        assert_int_equal(ferry_client_publish(fx->c, "e", &m, NULL), FERRY_OK);
    ferry_topic_info_t info;
    ferry_topic_edit_t e = {.set = FERRY_EDIT_MAX_MSGS, .max_msgs = 4};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.max_msgs, 4);
    assert_int_equal(info.messages, 4);
    assert_int_equal(info.first_seq, 7);
    e = (ferry_topic_edit_t){
        .set = FERRY_EDIT_MAX_MSGS | FERRY_EDIT_DISCARD, .max_msgs = 2, .discard_new = true};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.messages, 4); /* discard new: kept, publishes refused */
    assert_true(info.discard_new);
    assert_int_equal(ferry_client_publish(fx->c, "e", &m, NULL), FERRY_ELIMIT);
    e = (ferry_topic_edit_t){.set = FERRY_EDIT_DISCARD, .discard_new = false};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.messages, 2); /* discard old now: the oldest went */
    e = (ferry_topic_edit_t){.set = FERRY_EDIT_MAX_MSGS | FERRY_EDIT_DEDUPE_WINDOW,
                             .max_msgs = 0,
                             .dedupe_window_ms = 5000};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.max_msgs, 0);
    assert_int_equal(info.dedupe_window_ms, 5000);
    assert_int_equal(ferry_client_publish(fx->c, "e", &m, NULL), FERRY_OK);
    e = (ferry_topic_edit_t){.set = FERRY_EDIT_DEDUPE_WINDOW, .dedupe_window_ms = 0};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.dedupe_window_ms, 120000); /* 0: the broker's default */
    /* More than one slice. */
    ferry_message_t big[FERRY_BATCH_MAX];
    for (int i = 0; i < FERRY_BATCH_MAX; i++)
        big[i] = m;
    for (int r = 0; r < 12; r++)
        assert_int_equal(ferry_client_publish_batch(fx->c, "e", big, FERRY_BATCH_MAX, NULL),
                         FERRY_OK);
    e = (ferry_topic_edit_t){.set = FERRY_EDIT_MAX_MSGS, .max_msgs = 10};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_OK);
    assert_int_equal(info.messages, 10);
    assert_int_equal(info.last_seq, 12011);
    /* Bad input. */
    e = (ferry_topic_edit_t){0};
    assert_int_equal(ferry_client_edit(fx->c, "e", &e, &info), FERRY_EINVAL);
    e.set = FERRY_EDIT_MAX_MSGS;
    assert_int_equal(ferry_client_edit(fx->c, "nope", &e, &info), FERRY_ENOTFOUND);
    /* The CLI. */
    char cmd[600], out[1024];
    snprintf(cmd, sizeof cmd, "%s --server %s edit e --max-msgs 3 --max-age-ms 60000",
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "messages: 3\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s edit e --interest 2>&1", getenv("FERRY_CLI"),
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "interest retention cannot change"));
    assert_int_equal(ferry_client_info(fx->c, "e", &info), FERRY_OK);
    assert_int_equal(info.max_msgs, 3);
    assert_int_equal(info.max_age_ms, 60000);
}

static void
test_cli(void **state)
{
    fx_t *fx = *state;
    const char *cli = getenv("FERRY_CLI");
    assert_non_null(cli);
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s --server %s declare queue work", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "created queue work"));
    snprintf(cmd, sizeof cmd,
             "%s --server %s pub work 'hello world' --key k1 --id one --header a=b", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "seq: 1\nkey_version: 1\n");
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "seq: 1 (duplicate)\nkey_version: 1\n");
    snprintf(cmd, sizeof cmd, "printf 'from\\nstdin' | %s --server %s pub work -", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_string_equal(out, "seq: 2\n");
    snprintf(cmd, sizeof cmd, "%s --server %s get work --count 1 2>&1", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0); /* at its limit, with more: said */
    assert_non_null(strstr(out, "ferry: stopped at --count 1; more from --from 2\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s get work 2>&1", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_null(strstr(out, "stopped at"));
    assert_non_null(strstr(out, "seq=1 "));
    assert_non_null(strstr(out, "key=k1 version=1 id=one a=b len=11\nhello world\n"));
    assert_non_null(strstr(out, "len=10\nfrom\nstdin\n"));
    /* What reaches the terminal is escaped: a payload with ESC and a byte
     * that is not UTF-8 prints as \x1b and \xff (newlines stay); --raw
     * prints the bytes. */
    snprintf(cmd, sizeof cmd,
             "%s --server %s declare topic esc >/dev/null && "
             "printf 'red\\033[31m\\377\\nend' | %s --server %s pub esc -",
             cli, fx->d.endpoint, cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s --server %s get esc", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "len=13\nred\\x1b[31m\\xff\nend\n"));
    assert_null(strchr(out, 0x1b));
    snprintf(cmd, sizeof cmd, "%s --server %s get esc --raw", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "len=13\nred\033[31m\377\nend\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s info work", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "kind: queue\nmessages: 2\n"));
    snprintf(cmd, sizeof cmd, "%s --server %s declare topic lim --max-msgs 3 --discard new", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    /* Declared again the same: "exists"; with other settings: each
     * difference named, exit 1, the topic unchanged. */
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "exists topic lim"));
    snprintf(cmd, sizeof cmd,
             "%s --server %s declare topic lim --max-msgs 5 --discard old --interest 2>&1", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "EEXISTS: lim exists with other settings (unchanged)"));
    assert_non_null(strstr(out, "--max-msgs: it has 3, not 5"));
    assert_non_null(strstr(out, "--discard: it has new, not old"));
    assert_non_null(strstr(out, "--interest: it has no interest retention"));
    snprintf(cmd, sizeof cmd, "%s --server %s declare topic lim --max-age-ms 0 2>&1", cli,
             fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0); /* the same as it has */
    snprintf(cmd, sizeof cmd, "%s --server %s info lim", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "max_msgs: 3\n"));
    assert_non_null(strstr(out, "discard: new\nretention: limits\n"));
    /* Exit codes: refused 1, usage 2, unreachable 3. */
    snprintf(cmd, sizeof cmd, "%s --server %s pub nowhere x 2>/dev/null", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd, "%s --server %s declare stream x 2>/dev/null", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s --server %s frobnicate 2>/dev/null", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s --server tcp://127.0.0.1:1 --timeout 300 ping 2>/dev/null", cli);
    assert_int_equal(fy_run(cmd, out, sizeof out), 3);
    snprintf(cmd, sizeof cmd, "%s --server %s stats", cli, fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "topics: 3\nmessages: 3\n"));
}

/* A broker with metrics, a small queue for clients that do not read, and
 * small batches: the bound on held replies is small enough to check. */
static int
s_setup_slow_peer(void **state)
{
    static char addr[64];
    s_metrics_port = fy_free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s_metrics_port);
    const char *extra[] = {"--metrics", addr, "--peer-queue-bytes", "64K", "--batch-max",
                           "64",        NULL};
    return fy_fx_setup_with(state, extra);
}

/* One value from /metrics (-1 when missing). */
static long long
s_metric(const char *name)
{
    static char body[16384];
    s_http("GET", "/metrics", body, sizeof body);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *r = strstr(body, key);
    return r ? atoll(r + strlen(key)) : -1;
}

/* Waits (up to 20 s, snapshots come twice a second) until @p name is at
 * least (@p at_least) or at most @p want. */
static long long
s_metric_wait(const char *name, long long want, bool at_least)
{
    long long until = fy_now_ms() + 20000, v;
    while ((v = s_metric(name)), (at_least ? v < want : v > want) && fy_now_ms() < until)
        fy_sleep_ms(50);
    return v;
}

enum { S_BIG = 16384 };

/* A raw client (a DEALER that buffers little) sending @p n gets of the one
 * 16 KiB message of topic "big" (made here, its bytes into @p payload)
 * without reading a reply. */
static void *
s_flood_gets(fx_t *fx, void *ctx, int n, char *payload)
{
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_TOPIC, "big", NULL, NULL, NULL),
                     FERRY_OK);
    for (size_t i = 0; i < S_BIG; i++)
        payload[i] = (char)('a' + i % 26);
    ferry_message_t m = {.data = payload, .len = S_BIG};
    assert_int_equal(ferry_client_publish(fx->c, "big", &m, NULL), FERRY_OK);
    void *sock = fy_raw_socket(ctx, ZMQ_DEALER);
    int linger = 0, hwm = 0, rcvhwm = 10;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    assert_int_equal(zmq_connect(sock, fx->d.endpoint), 0);
    fy_encoder_t *enc = fy_encoder_new();
    for (int i = 0; i < n; i++) {
        fy_encoder_reset(enc);
        assert_int_equal(fy_encode_get(enc, (uint64_t)i + 1, "big", 1, 1), FERRY_OK);
        assert_true(zmq_send(sock, fy_encoder_data(enc), fy_encoder_len(enc), 0) >= 0);
    }
    fy_encoder_destroy(&enc);
    return sock;
}

/* A peer that pipelines requests and does not read its replies loses none
 * (issue 14): once libzmq's queue to it is full its replies are held in
 * order, bounded in bytes, and then its requests wait unhandled
 * (back-pressure) while other clients are served; when it reads, every
 * reply arrives, in order, intact, and nothing was dropped or refused. */
static void
test_replies_to_a_peer_that_does_not_read(void **state)
{
    fx_t *fx = *state;
    enum { N = 20000 }; /* 20,000 gets of a 16 KiB message: 320 MB of replies */
    static char payload[S_BIG];
    void *ctx = zmq_ctx_new();
    void *sock = s_flood_gets(fx, ctx, N, payload);
    /* Back-pressure: its requests wait, what is held stays bounded (the
     * setting plus one batch of replies: 64 x ~16.5 KiB). */
    assert_true(s_metric_wait("ferry_requests_parked", 1, true) >= 1);
    long long held = s_metric("ferry_replies_held_bytes");
    assert_true(held > 0);
    assert_true(held <= 64 * 1024 + 64 * (S_BIG + 1024));
    long long handled = s_metric("ferry_requests_total");
    assert_true(handled < N); /* not all of them: the rest wait */
    printf("held %lld bytes, %lld requests handled of %d while it did not read\n", held, handled,
           N);
    /* Others are served meanwhile. */
    assert_int_equal(ferry_client_ping(fx->c), FERRY_OK);

    /* It reads: every reply, in order, intact. */
    fy_decoder_t *dec = fy_decoder_new();
    int timeout = 20000;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    for (int i = 0; i < N; i++) {
        zmq_msg_t env, data;
        zmq_msg_init(&env);
        zmq_msg_init(&data);
        if (zmq_msg_recv(&env, sock, 0) < 0)
            fail_msg("reply %d of %d did not arrive", i + 1, N);
        fy_reply_t rep;
        fy_err_t err;
        assert_int_equal(fy_reply_decode(dec, zmq_msg_data(&env), zmq_msg_size(&env), &rep, &err),
                         FERRY_OK);
        assert_int_equal(rep.cid, (uint64_t)i + 1);
        assert_int_equal(rep.code, FERRY_OK);
        assert_true(zmq_msg_more(&env));
        assert_true(zmq_msg_recv(&data, sock, 0) == S_BIG);
        assert_memory_equal(zmq_msg_data(&data), payload, S_BIG);
        assert_false(zmq_msg_more(&data));
        zmq_msg_close(&env);
        zmq_msg_close(&data);
    }
    assert_int_equal(s_metric_wait("ferry_requests_parked", 0, false), 0);
    assert_int_equal(s_metric_wait("ferry_replies_held", 0, false), 0);
    assert_int_equal(s_metric("ferry_replies_dropped_total"), 0);
    assert_int_equal(s_metric("ferry_requests_refused_total"), 0);
    assert_true(s_metric("ferry_replies_held_total") > 0);
    /* Said once per peer per 10 s, not a line per request. */
    assert_true(fy_ferryd_log_count(&fx->d, "msg=\"peer not reading\"") >= 1);
    assert_true(fy_ferryd_log_count(&fx->d, "msg=\"peer not reading\"") <= 3);
    fy_decoder_destroy(&dec);
    zmq_close(sock);
    zmq_ctx_term(ctx);
}

/* A peer that goes away with replies held for it: they are counted as
 * dropped; nothing stays held or parked; the broker goes on. */
static void
test_replies_held_for_a_peer_that_leaves(void **state)
{
    fx_t *fx = *state;
    static char payload[S_BIG];
    void *ctx = zmq_ctx_new();
    void *sock = s_flood_gets(fx, ctx, 4000, payload);
    assert_true(s_metric_wait("ferry_replies_held", 1, true) >= 1);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    assert_int_equal(s_metric_wait("ferry_slow_peers", 0, false), 0);
    assert_true(s_metric("ferry_replies_dropped_total") > 0);
    assert_int_equal(s_metric("ferry_replies_held"), 0);
    assert_int_equal(s_metric("ferry_requests_parked"), 0);
    assert_int_equal(ferry_client_ping(fx->c), FERRY_OK);
}

static void
test_ferryd_refuses_bad_flags(void **state)
{
    (void)state;
    const char *bin = getenv("FERRYD");
    char cmd[1024], out[512];
    snprintf(cmd, sizeof cmd, "%s --map-size lots 2>&1", bin);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "map-size"));
    snprintf(cmd, sizeof cmd, "%s --no-such-flag 2>&1", bin);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "%s --version", bin);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    assert_non_null(strstr(out, "ferryd " FERRY_VERSION_STRING));
    /* Beyond this host only on purpose: no authentication yet. */
    char dir[256];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(cmd, sizeof cmd, "%s --data '%s/d' --bind 'tcp://0.0.0.0:*' 2>&1", bin, dir);
    assert_int_equal(fy_run(cmd, out, sizeof out), 2);
    assert_non_null(strstr(out, "--insecure"));
    snprintf(cmd, sizeof cmd,
             "timeout -s TERM 1 %s --data '%s/d' --bind 'tcp://0.0.0.0:*' --insecure 2>&1", bin,
             dir);
    fy_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "level=warn mod=broker msg=\"open to other hosts\""));
    snprintf(cmd, sizeof cmd,
             "FERRY_INSECURE=1 timeout -s TERM 1 %s --data '%s/d' --bind 'tcp://0.0.0.0:*' 2>&1",
             bin, dir);
    fy_run(cmd, out, sizeof out);
    assert_non_null(strstr(out, "msg=\"open to other hosts\""));
    fy_rmtree(dir);
}

/* The data directory is its user's only: made 0700, its files 0600; one
 * that others may read is said at warn. */
static void
test_data_directory_is_private(void **state)
{
    fx_t *fx = *state;
    char path[600];
    struct stat sb;
    snprintf(path, sizeof path, "%s/data", fx->d.dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    static const char *const files[] = {"data.mdb", "lock.mdb", "ferryd.lock", "ferryd.reserve"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/data/%s", fx->d.dir, files[i]);
        assert_int_equal(stat(path, &sb), 0);
        if ((sb.st_mode & 0777) != 0600)
            fail_msg("%s is %04o, not 0600", files[i], (unsigned)(sb.st_mode & 0777));
    }
    ferry_client_destroy(&fx->c);
    assert_true(fy_ferryd_signal(&fx->d, SIGTERM) >= 0);
    snprintf(path, sizeof path, "%s/data", fx->d.dir);
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "msg=\"data directory open to others\""), 1);
    fx->c = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(fx->c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_declare_and_info, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_top, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli_json_and_times, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_confirm_dedupe_and_get, s_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_errors, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_window_and_group_commit, s_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_async_publishers, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_batch, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_dedupe_window_expires, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_data_and_dedupe, s_setup,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_retention, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_topics_listed, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_subs_listed, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_edit, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_cli, s_setup, fy_fx_teardown),
        cmocka_unit_test(test_ferryd_refuses_bad_flags),
        cmocka_unit_test_setup_teardown(test_data_directory_is_private, s_setup, fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_endpoint, s_setup_metrics, fy_fx_teardown),
        cmocka_unit_test(test_metrics_topics_bounded),
        cmocka_unit_test_setup_teardown(test_replies_held_for_a_peer_that_leaves, s_setup_slow_peer,
                                        fy_fx_teardown),
        cmocka_unit_test_setup_teardown(test_replies_to_a_peer_that_does_not_read,
                                        s_setup_slow_peer, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER")) /* e.g. FERRY_TEST_FILTER='test_pg*' */
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("broker", tests, NULL, NULL);
}
