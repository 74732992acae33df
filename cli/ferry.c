/* SPDX-License-Identifier: MIT */
/*
 * ferry.c - the `ferry` command: talks to ferryd through libferry.
 *
 *   ferry [--server EP] [--timeout MS] COMMAND ...
 *
 * Exit codes: 0 done, 1 the broker refused (code and message printed),
 * 2 usage error, 3 broker unreachable or no answer in time.
 */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <signal.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ferry.h"
#include "endpoint.h"
#include "args.h"
#include "help.h"
#include "keys.h"
#include "saga_cmd.h"
#include "cluster_cmd.h"
#include "sub_cmd.h"
#include "top.h"
#include "print.h"
#include "text.h"
#include "wire_limits.h"

#define S_EXIT_REFUSED     1
#define S_EXIT_USAGE       2
#define S_EXIT_UNREACHABLE 3
#define S_STDIN_MAX        (64u << 20)

static int
s_exit_for(ferry_status_t st)
{
    switch (st) {
    case FERRY_OK:
        return 0;
    case FERRY_ECONNECT:
    case FERRY_ETIMEOUT:
    case FERRY_ECLOSED:
    case FERRY_ENOREPLY:
        return S_EXIT_UNREACHABLE;
    case FERRY_EINVAL:
    case FERRY_EINVALID_NAME:
        return S_EXIT_USAGE;
    default:
        return S_EXIT_REFUSED;
    }
}

static int
s_report(ferry_client_t *c, ferry_status_t st)
{
    if (st == FERRY_OK)
        return 0;
    const char *detail = c ? ferry_client_last_error(c) : "";
    fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
            detail && *detail ? detail : ferry_strerror(st));
    return s_exit_for(st);
}

static void
s_print_info(const ferry_topic_info_t *in)
{
    printf("name: %s\nkind: %s\nmessages: %" PRIu64 "\nbytes: %" PRIu64 "\nfirst_seq: %" PRIu64
           "\nlast_seq: %" PRIu64 "\ndedupe_window_ms: %" PRIu64 "\ncreated_ms: %" PRIu64
           "\nmax_msgs: %" PRIu64 "\nmax_bytes: %" PRIu64 "\nmax_age_ms: %" PRIu64
           "\ndiscard: %s\nretention: %s\n",
           in->name, in->kind == FERRY_KIND_QUEUE ? "queue" : "topic", in->messages, in->bytes,
           in->first_seq, in->last_seq, in->dedupe_window_ms, in->created_ms, in->max_msgs,
           in->max_bytes, in->max_age_ms, in->discard_new ? "new" : "old",
           in->interest ? "interest" : "limits");
}

static char *
s_read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= S_STDIN_MAX) {
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                free(buf);
            buf = nb;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

/* The payload: the argument, or standard input when it is "-" or missing
 * (then *owned holds it). @return 0, or -1 (reported). */
static int
s_payload(int argc, char **argv, ferry_message_t *m, char **owned)
{
    *owned = NULL;
    if (argc > 0 && strcmp(argv[0], "-") != 0) {
        m->data = argv[0];
        m->len = strlen(argv[0]);
        return 0;
    }
    if (!(*owned = s_read_stdin(&m->len))) {
        fprintf(stderr, "ferry: cannot read standard input (at most %u bytes)\n", S_STDIN_MAX);
        return -1;
    }
    m->data = *owned;
    return 0;
}

static int
s_cmd_pub(ferry_client_t *c, const char *topic, int argc, char **argv, const fy_cli_opts_t *o)
{
    char *owned = NULL;
    ferry_message_t m = {.key = o->key,
                         .id = o->id,
                         .headers = o->headers,
                         .header_count = o->nheaders,
                         .expect = o->expect,
                         .expect_key_version = o->expect_version,
                         .expect_last_seq = o->expect_last,
                         .delay_ms = o->delay_ms,
                         .not_before_ms = o->not_before_ms};
    if (s_payload(argc, argv, &m, &owned) != 0)
        return S_EXIT_USAGE;
    ferry_confirm_t cf;
    ferry_status_t st = ferry_client_publish(c, topic, &m, &cf);
    free(owned);
    if (st)
        return s_report(c, st);
    printf("seq: %" PRIu64 "%s\n", cf.seq, cf.duplicate ? " (duplicate)" : "");
    if (cf.key_version)
        printf("key_version: %" PRIu64 "\n", cf.key_version);
    return 0;
}

/* fetch: print up to --count messages of a subscription and ack them
 * (unless --no-ack), one fetch and one ack per 1000. */
static int
s_cmd_fetch(ferry_client_t *c, const char *topic, const char *sub, const fy_cli_opts_t *o)
{
    uint64_t left = o->count ? o->count : 10;
    uint64_t seqs[1000];
    while (left > 0) {
        const ferry_stored_message_t *msgs;
        size_t n;
        uint32_t max = left > 1000 ? 1000 : (uint32_t)left;
        /* Wait only for the first batch: then print what is there and stop. */
        int wait = left == (o->count ? o->count : 10) && o->wait_ms <= 300000 ? (int)o->wait_ms : 0;
        ferry_status_t st = ferry_client_fetch(c, topic, sub, max, wait, &msgs, &n);
        if (st)
            return s_report(c, st);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            fy_cli_print_msg(&msgs[i], o->payload, o->json);
            seqs[i] = msgs[i].seq;
        }
        if (!o->no_ack && (st = ferry_client_ack(c, topic, sub, seqs, n)))
            return s_report(c, st);
        left -= n;
    }
    return 0;
}

/* The dead-letter topic of @p topic: "<topic>.dlq". */
static int
s_dlq_name(const char *topic, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s.dlq", topic);
    if (n < 0 || n > FERRY_NAME_MAX) {
        fprintf(stderr, "ferry: no dead-letter topic name fits for %s\n", topic);
        return -1;
    }
    return 0;
}

/* dlq replay TOPIC: publishes what TOPIC.dlq holds back to the topic each
 * message came from (header ferry-dlq-topic), without the ferry-dlq-*
 * headers, through a durable subscription "ferry-replay" on the dead-letter
 * topic: each one is acked only after its publish was confirmed, so a replay
 * cut short resumes where it stopped. */
static int
s_cmd_dlq_replay(ferry_client_t *c, const char *topic, const fy_cli_opts_t *o)
{
    char dlq[FERRY_NAME_MAX + 8];
    if (s_dlq_name(topic, dlq, sizeof dlq) != 0)
        return S_EXIT_USAGE;
    ferry_status_t st = ferry_client_sub_declare(c, dlq, "ferry-replay", NULL, NULL);
    if (st)
        return s_report(c, st);
    uint64_t left = o->count ? o->count : UINT64_MAX, done = 0;
    while (left > 0) {
        const ferry_stored_message_t *msgs;
        size_t got;
        if ((st = ferry_client_fetch(c, dlq, "ferry-replay", 1, 0, &msgs, &got)))
            return s_report(c, st);
        if (got == 0)
            break;
        /* One at a time: a fetched message's payload lives in the client's
         * last reply, which the publish below replaces. */
        for (size_t i = 0; i < got && left > 0; i++, left--) {
            const ferry_stored_message_t *m = &msgs[i];
            ferry_header_t hdrs[64];
            size_t nh = 0;
            const char *target = topic;
            for (size_t j = 0; j < m->header_count && nh < 64; j++) {
                if (strcmp(m->headers[j].name, "ferry-dlq-topic") == 0)
                    target = m->headers[j].value;
                else if (strncmp(m->headers[j].name, "ferry-dlq-", 10) != 0)
                    hdrs[nh++] = m->headers[j];
            }
            ferry_message_t out = {
                .data = m->data, .len = m->len, .key = m->key, .headers = hdrs, .header_count = nh};
            uint64_t seq = m->seq;
            if ((st = ferry_client_publish(c, target, &out, NULL)) ||
                (st = ferry_client_ack(c, dlq, "ferry-replay", &seq, 1)))
                return s_report(c, st);
            done++;
        }
    }
    printf("replayed %llu\n", (unsigned long long)done);
    return 0;
}

typedef struct {
    uint64_t seen, want;
    bool ack, json;
    int payload;
} s_subctx_t;

static ferry_msg_action_t
s_print_pushed(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c;
    s_subctx_t *x = user;
    if (x->want && x->seen >= x->want)
        return FERRY_MSG_NACK; /* past --count: give it back untouched */
    x->seen++;
    fy_cli_print_msg(m, x->payload, x->json);
    fflush(stdout);
    return x->ack ? FERRY_MSG_ACK : FERRY_MSG_KEEP;
}

/* sub: consume by push and print. --durable NAME makes (or reuses) a durable
 * subscription; without it a topic is consumed live (ephemeral) and a queue
 * through its own subscription. Stops after --count messages, after
 * --wait-ms without one, or never. */
/* Set by SIGINT or SIGTERM during sub and reply: they stop, unsubscribe
 * (what the broker holds for them goes back at once) and exit 0. The one
 * flag a signal handler may set; nothing else is global. */
static volatile sig_atomic_t s_interrupted;

static void
s_on_interrupt(int sig)
{
    (void)sig;
    s_interrupted = 1;
}

/* Long-running commands say on stderr when they lose the broker and when
 * they are back (the first connection is not news). */
static void
s_on_state(ferry_client_t *c, ferry_conn_state_t state, const char *server, const char *reason,
           void *user)
{
    (void)c;
    int *connects = user;
    if (state == FERRY_CONN_DISCONNECTED)
        fprintf(stderr, "ferry: lost the broker at %s (%s); reconnecting\n", server,
                reason ? reason : "");
    else if ((*connects)++ > 0)
        fprintf(stderr, "ferry: back at %s\n", server);
}

static int
s_cmd_sub(ferry_client_t *c, const char *topic, const fy_cli_opts_t *o)
{
    ferry_status_t st;
    if (o->durable) {
        ferry_sub_config_t cfg = {.start = o->from_word,
                                  .start_seq = o->from,
                                  .start_time_ms = o->from_time_ms,
                                  .filter = o->filter,
                                  .ack_wait_ms = o->ack_wait_ms,
                                  .max_deliver = (uint32_t)o->max_deliver};
        bool created;
        if ((st = ferry_client_sub_declare(c, topic, o->durable, &cfg, &created)))
            return s_report(c, st);
        if (o->declare_only) {
            printf("%s subscription %s %s\n", created ? "created" : "exists", topic, o->durable);
            return 0;
        }
    } else if (o->declare_only) {
        fprintf(stderr, "ferry: --declare-only needs --durable NAME\n");
        return S_EXIT_USAGE;
    }
    s_subctx_t x = {.want = o->count, .ack = !o->no_ack, .payload = o->payload, .json = o->json};
    uint32_t prefetch = o->count && o->count < 100 ? (uint32_t)o->count : 100;
    uint64_t consumer;
    if ((st =
             ferry_client_subscribe(c, topic, o->durable, prefetch, s_print_pushed, &x, &consumer)))
        return s_report(c, st);
    long long quiet_since = 0;
    struct sigaction sa = {.sa_handler = s_on_interrupt}; /* no SA_RESTART: poll returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!s_interrupted) {
        uint64_t before = x.seen;
        if ((st = ferry_client_poll(c, 100)))
            return s_report(c, st);
        if (x.want && x.seen >= x.want)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (x.seen != before || !quiet_since)
            quiet_since = now;
        if (o->wait_ms && now - quiet_since >= (long long)o->wait_ms)
            break;
    }
    /* Unsubscribe waits for its reply, so the acks sent before it have landed. */
    if ((st = ferry_client_unsubscribe(c, consumer)))
        return s_report(c, st);
    if (s_interrupted)
        fprintf(stderr, "ferry: interrupted: unsubscribed after %llu message%s\n",
                (unsigned long long)x.seen, x.seen == 1 ? "" : "s");
    return 0;
}

/* read TOPIC KEY: the key's messages in version order. */
static int
s_cmd_read(ferry_client_t *c, const char *topic, const char *key, const fy_cli_opts_t *o)
{
    ferry_key_iter_t *it;
    ferry_status_t st = ferry_client_read_key(c, topic, key, o->from, 0, &it);
    if (st)
        return s_report(c, st);
    const ferry_stored_message_t *m;
    uint64_t shown = 0;
    while ((!o->count || shown < o->count) && (st = ferry_key_iter_next(it, &m)) == FERRY_OK && m) {
        fy_cli_print_msg(m, o->payload, o->json);
        shown++;
    }
    ferry_key_iter_destroy(&it);
    return s_report(c, st);
}

/* request TOPIC DATA: one request, its reply's payload on stdout. */
static int
s_cmd_request(ferry_client_t *c, const char *topic, int argc, char **argv, const fy_cli_opts_t *o)
{
    char *owned = NULL;
    ferry_message_t m = {.key = o->key, .headers = o->headers, .header_count = o->nheaders};
    if (s_payload(argc, argv, &m, &owned) != 0)
        return S_EXIT_USAGE;
    const ferry_stored_message_t *reply;
    int timeout = o->timeout_ms ? (int)o->timeout_ms : 5000;
    ferry_status_t st = ferry_client_request(c, topic, &m, timeout, &reply);
    free(owned);
    if (st)
        return s_report(c, st);
    if (o->payload == FY_CLI_PAYLOAD_HEX) {
        fy_cli_print_hex(reply->data, reply->len);
        return 0;
    }
    if (o->payload == FY_CLI_PAYLOAD_RAW)
        fwrite(reply->data, 1, reply->len, stdout);
    else
        fy_cli_print_text(reply->data, reply->len, true);
    if (reply->len && ((const char *)reply->data)[reply->len - 1] != '\n')
        printf("\n");
    return 0;
}

typedef struct {
    const char *cmd;
    uint64_t served, want;
    char *out;
    size_t out_len;
} s_replyctx_t;

/* Runs the --exec command with the request on its standard input (a
 * temporary file) and takes its standard output as the reply. */
static ferry_msg_action_t
s_exec_reply(ferry_client_t *c, const ferry_stored_message_t *req, ferry_message_t *reply,
             void *user)
{
    (void)c;
    s_replyctx_t *x = user;
    if (x->want && x->served >= x->want)
        return FERRY_MSG_NACK; /* past --count: leave it for another responder */
    const char *tmpdir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char path[4096];
    snprintf(path, sizeof path, "%s/ferry-request-XXXXXX", tmpdir);
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, req->data, req->len) != (ssize_t)req->len) {
        if (fd >= 0)
            close(fd);
        fprintf(stderr, "ferry: cannot write the request to %s: %s\n", path, strerror(errno));
        return FERRY_MSG_NACK;
    }
    close(fd);
    char *line = NULL;
    FILE *p = NULL;
    if (asprintf(&line, "(%s) < '%s'", x->cmd, path) >= 0)
        p = popen(line, "r");
    free(line);
    free(x->out);
    x->out = NULL;
    x->out_len = 0;
    size_t cap = 0;
    for (int ch; p && (ch = fgetc(p)) != EOF;) {
        if (x->out_len + 1 >= cap) {
            cap = cap ? cap * 2 : 4096;
            char *nb = realloc(x->out, cap);
            if (!nb)
                break;
            x->out = nb;
        }
        x->out[x->out_len++] = (char)ch;
    }
    int status = p ? pclose(p) : -1;
    unlink(path);
    if (status != 0) {
        fprintf(stderr, "ferry: '%s' failed (status %d): the request goes back\n", x->cmd, status);
        return FERRY_MSG_NACK;
    }
    reply->data = x->out ? x->out : "";
    reply->len = x->out_len;
    x->served++;
    return FERRY_MSG_ACK;
}

/* reply TOPIC --exec CMD: serve requests until --count are answered. */
static int
s_cmd_reply(ferry_client_t *c, const char *topic, const fy_cli_opts_t *o)
{
    if (!o->exec) {
        fprintf(stderr, "ferry: reply needs --exec CMD\n");
        return S_EXIT_USAGE;
    }
    ferry_status_t st;
    if (o->durable && (st = ferry_client_sub_declare(c, topic, o->durable, NULL, NULL)))
        return s_report(c, st);
    s_replyctx_t x = {.cmd = o->exec, .want = o->count};
    if ((st = ferry_client_serve(c, topic, o->durable, 1, s_exec_reply, &x, NULL)))
        return s_report(c, st);
    while (!x.want || x.served < x.want)
        if ((st = ferry_client_poll(c, 100)))
            break;
    if (st == FERRY_OK)
        st = ferry_client_flush(c, 5000); /* the last reply is confirmed */
    free(x.out);
    return s_report(c, st);
}

static int
s_cmd_get(ferry_client_t *c, const char *topic, const fy_cli_opts_t *o)
{
    uint64_t from = o->from ? o->from : 1, left = o->count ? o->count : 100;
    while (left > 0) {
        const ferry_stored_message_t *msgs;
        size_t n;
        uint32_t limit = left > 1000 ? 1000 : (uint32_t)left;
        ferry_status_t st = ferry_client_get(c, topic, from, limit, &msgs, &n);
        if (st)
            return s_report(c, st);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            fy_cli_print_msg(&msgs[i], o->payload, o->json);
        from = msgs[n - 1].seq + 1;
        left -= n;
    }
    /* Stopped at the limit: say so (on stderr) when more are stored. */
    const ferry_stored_message_t *next;
    size_t more = 0;
    if (left == 0 && ferry_client_get(c, topic, from, 1, &next, &more) == FERRY_OK && more)
        fprintf(stderr, "ferry: stopped at --count %llu; more from --from %llu\n",
                (unsigned long long)(o->count ? o->count : 100), (unsigned long long)next->seq);
    return 0;
}

/* backup DIR: relative to here, for a broker on this host. */
static int
s_cmd_backup(ferry_client_t *c, const char *dir)
{
    char abs[1100], cwd[1024];
    if (dir[0] != '/' && !getcwd(cwd, sizeof cwd))
        return s_report(c, FERRY_EINVAL);
    snprintf(abs, sizeof abs, "%s%s%s", dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/", dir);
    ferry_status_t st = ferry_client_backup(c, abs);
    if (st)
        return s_report(c, st);
    printf("backup in %s\n", abs);
    return 0;
}

/* topics: every topic and queue, a page of 1000 at a time, as columns or
 * one JSON object per line. */
static int
s_cmd_topics(ferry_client_t *c, const fy_cli_opts_t *o)
{
    ferry_topic_info_t *page = malloc(1000 * sizeof *page);
    if (!page)
        return s_report(c, FERRY_ENOMEM);
    char after[FERRY_NAME_MAX + 1] = "";
    size_t total = 0;
    bool more = true;
    while (more) {
        size_t n = 0;
        ferry_status_t st = ferry_client_topics(c, after, page, 1000, &n, &more);
        if (st) {
            free(page);
            return s_report(c, st);
        }
        for (size_t i = 0; i < n; i++, total++) {
            const ferry_topic_info_t *t = &page[i];
            const char *kind = t->kind == FERRY_KIND_QUEUE ? "queue" : "topic";
            if (o->json) { /* names are UTF-8 without control characters; quotes escaped */
                printf("{\"name\":\"");
                for (const char *p = t->name; *p; p++)
                    printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
                printf("\",\"kind\":\"%s\",\"messages\":%llu,\"bytes\":%llu,\"first_seq\":%llu,"
                       "\"last_seq\":%llu,\"dedupe_window_ms\":%llu,\"max_msgs\":%llu,"
                       "\"max_bytes\":%llu,\"max_age_ms\":%llu,\"discard\":\"%s\","
                       "\"interest\":%s,\"created_ms\":%llu}\n",
                       kind, (unsigned long long)t->messages, (unsigned long long)t->bytes,
                       (unsigned long long)t->first_seq, (unsigned long long)t->last_seq,
                       (unsigned long long)t->dedupe_window_ms, (unsigned long long)t->max_msgs,
                       (unsigned long long)t->max_bytes, (unsigned long long)t->max_age_ms,
                       t->discard_new ? "new" : "old", t->interest ? "true" : "false",
                       (unsigned long long)t->created_ms);
                continue;
            }
            if (total == 0)
                printf("%-32s  %-5s  %12s  %14s  %12s  %12s  %s\n", "NAME", "KIND", "MESSAGES",
                       "BYTES", "FIRST", "LAST", "LIMITS");
            char limits[160] = "";
            if (t->max_msgs)
                snprintf(limits + strlen(limits), sizeof limits - strlen(limits), "max-msgs=%llu ",
                         (unsigned long long)t->max_msgs);
            if (t->max_bytes)
                snprintf(limits + strlen(limits), sizeof limits - strlen(limits), "max-bytes=%llu ",
                         (unsigned long long)t->max_bytes);
            if (t->max_age_ms)
                snprintf(limits + strlen(limits), sizeof limits - strlen(limits),
                         "max-age-ms=%llu ", (unsigned long long)t->max_age_ms);
            if (t->max_msgs || t->max_bytes || t->max_age_ms)
                snprintf(limits + strlen(limits), sizeof limits - strlen(limits), "discard=%s ",
                         t->discard_new ? "new" : "old");
            if (t->interest)
                snprintf(limits + strlen(limits), sizeof limits - strlen(limits), "interest");
            printf("%-32s  %-5s  %12llu  %14llu  %12llu  %12llu  %s\n", t->name, kind,
                   (unsigned long long)t->messages, (unsigned long long)t->bytes,
                   (unsigned long long)t->first_seq, (unsigned long long)t->last_seq,
                   limits[0] ? limits : "-");
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", page[n - 1].name);
        else
            more = false;
    }
    if (!o->json)
        printf("%zu topic%s and queue%s\n", total, total == 1 ? "" : "s", total == 1 ? "" : "s");
    free(page);
    return 0;
}

/* subs TOPIC: its subscriptions, a page of 1000 at a time. */
static int
s_cmd_subs(ferry_client_t *c, const char *topic, const fy_cli_opts_t *o)
{
    ferry_sub_listing_t *page = malloc(1000 * sizeof *page);
    if (!page)
        return s_report(c, FERRY_ENOMEM);
    char after[FERRY_NAME_MAX + 1] = "";
    size_t total = 0;
    bool more = true;
    while (more) {
        size_t n = 0;
        ferry_status_t st = ferry_client_subs(c, topic, after, page, 1000, &n, &more);
        if (st) {
            free(page);
            return s_report(c, st);
        }
        for (size_t i = 0; i < n; i++, total++) {
            const ferry_sub_listing_t *s = &page[i];
            unsigned long long waiting =
                s->last_seq + 1 > s->cursor ? s->last_seq + 1 - s->cursor : 0;
            if (o->json) { /* names and filters are UTF-8 without control characters or quotes */
                printf("{\"name\":\"%s\",\"filter\":\"%s\",\"owner\":\"%s\",\"cursor\":%llu,"
                       "\"ack_floor\":%llu,\"waiting\":%llu,\"consumers\":%u,"
                       "\"ack_wait_ms\":%llu,\"max_deliver\":%u,\"created_ms\":%llu}\n",
                       s->name, s->filter, s->owner, (unsigned long long)s->cursor,
                       (unsigned long long)s->ack_floor, waiting, s->consumers,
                       (unsigned long long)s->ack_wait_ms, s->max_deliver,
                       (unsigned long long)s->created_ms);
                continue;
            }
            if (total == 0)
                printf("%-24s  %12s  %12s  %12s  %9s  %-16s  %s\n", "SUBSCRIPTION", "CURSOR",
                       "ACK_FLOOR", "WAITING", "CONSUMERS", "OWNER", "FILTER");
            printf("%-24s  %12llu  %12llu  %12llu  %9u  %-16s  %s\n",
                   s->name[0] ? s->name : "(queue)", (unsigned long long)s->cursor,
                   (unsigned long long)s->ack_floor, waiting, s->consumers,
                   s->owner[0] ? s->owner : "-", s->filter[0] ? s->filter : "-");
        }
        if (n > 0)
            snprintf(after, sizeof after, "%s", page[n - 1].name);
        else
            more = false;
    }
    if (!o->json)
        printf("%zu subscription%s\n", total, total == 1 ? "" : "s");
    free(page);
    return 0;
}

int
main(int argc, char **argv)
{
    int connects = 0; /* s_on_state's */
    const char *server = getenv("FERRY_SERVER"), *server_key = NULL;
    int timeout_ms = 5000;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fy_cli_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ferry %s (protocol %d)\n", FERRY_VERSION_STRING, FERRY_PROTOCOL_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else if (strcmp(argv[i], "--server-key") == 0 && i + 1 < argc) {
            server_key = argv[++i];
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            uint64_t t;
            if (!fy_cli_parse_u64(argv[++i], &t) || t == 0 || t > 3600000) {
                fprintf(stderr, "ferry: --timeout wants milliseconds (1-3600000)\n");
                return S_EXIT_USAGE;
            }
            timeout_ms = (int)t;
        } else {
            fprintf(stderr, "ferry: unknown option %s (see ferry --help)\n", argv[i]);
            return S_EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fy_cli_usage(stderr);
        return S_EXIT_USAGE;
    }
    const char *cmd = argv[i];
    /* ferry help [CMD]; ferry CMD --help (anywhere after the command). */
    if (strcmp(cmd, "help") == 0) {
        const fy_cli_help_t *h = i + 1 < argc ? fy_cli_help_find(argv[i + 1]) : NULL;
        if (i + 1 < argc && !h) {
            fprintf(stderr, "ferry: help: no command '%s' (ferry --help lists them)\n",
                    argv[i + 1]);
            return S_EXIT_USAGE;
        }
        if (h)
            fy_cli_help_print(stdout, h);
        else
            fy_cli_usage(stdout);
        return 0;
    }
    const fy_cli_help_t *help = fy_cli_help_find(cmd);
    if (!help) {
        fprintf(stderr, "ferry: unknown command '%s' (ferry --help lists them)\n", cmd);
        return S_EXIT_USAGE;
    }
    for (int k = i + 1; k < argc; k++)
        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            fy_cli_help_print(stdout, help);
            return 0;
        }
    if (strcmp(cmd, "keygen") == 0) {
        if (argc - i != 2) {
            fprintf(stderr, "ferry: usage: ferry keygen PREFIX\n");
            return S_EXIT_USAGE;
        }
        return fy_cli_keygen(argv[i + 1]);
    }
    if (strcmp(cmd, "passwd") == 0) {
        if (argc - i != 2) {
            fprintf(stderr, "ferry: usage: ferry [--server-key KEY|@FILE] passwd USER\n");
            return S_EXIT_USAGE;
        }
        return fy_cli_passwd(argv[i + 1], server_key);
    }
    /* Command arguments: options may come anywhere after the command word. */
    int cargc = argc - i;
    char **cargv = argv + i;
    fy_cli_opts_t o = {0};
    int rc = S_EXIT_USAGE;
    ferry_client_t *c = NULL;
    ferry_options_t *opts = NULL;
    char *pos[8];
    int npos = 0;
    if (fy_cli_parse_args(help, cargc - 1, cargv + 1, &o, pos, &npos, 8) != 0)
        goto done;

    static const struct {
        const char *name;
        int min, max;
    } cmds[] = {{"declare", 2, 2},    {"delete", 1, 1}, {"info", 1, 1},   {"pub", 1, 2},
                {"get", 1, 1},        {"stats", 0, 0},  {"ping", 0, 0},   {"sub", 1, 3},
                {"fetch", 1, 2},      {"ack", 3, 8},    {"nack", 3, 3},   {"sub-info", 1, 2},
                {"dlq", 2, 2},        {"peek", 1, 1},   {"read", 2, 2},   {"request", 1, 2},
                {"reply", 1, 1},      {"saga", 2, 4},   {"topics", 0, 0}, {"subs", 1, 1},
                {"sub-delete", 2, 2}, {"purge", 1, 1},  {"edit", 1, 1},   {"cluster", 1, 3},
                {"seek", 2, 2},       {"top", 0, 0},    {"backup", 1, 1}};
    int which = -1;
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
        if (strcmp(cmd, cmds[k].name) == 0)
            which = (int)k;
    if (which < 0) { /* in help.c's table but not here: a bug of ours */
        fprintf(stderr, "ferry: command '%s' is not handled\n", cmd);
        goto done;
    }
    if (npos < cmds[which].min || npos > cmds[which].max)
        goto usage;

    opts = ferry_options_new();
    if (opts && server_key && ferry_options_set_server_key(opts, server_key) != FERRY_OK) {
        fprintf(stderr, "ferry: --server-key: not a key (40 z85 characters) or @FILE of one\n");
        goto done;
    }
    if (!opts || (server && ferry_options_set_server(opts, server)) ||
        ferry_options_set_timeout_ms(opts, timeout_ms) ||
        ferry_options_set_name(opts, "ferry-cli") ||
        ((strcmp(cmd, "sub") == 0 || strcmp(cmd, "reply") == 0) &&
         ferry_options_set_state_cb(opts, s_on_state, &connects))) {
        fprintf(stderr, "ferry: --server %s: wants " FY_ENDPOINT_FORMS "\n", server ? server : "");
        goto done;
    }
    ferry_status_t st = ferry_client_new(opts, &c);
    if (st) {
        if (st == FERRY_ECONNECT || st == FERRY_ETIMEOUT)
            fprintf(stderr, "ferry: %s: cannot reach ferryd at %s\n", ferry_errname(st),
                    server ? server : FY_DEFAULT_ENDPOINT);
        else /* EAUTH: refused at the handshake; EINVAL: a password without the key, ... */
            fprintf(stderr, "ferry: %s: %s (%s)\n", ferry_errname(st), ferry_strerror(st),
                    server ? server : FY_DEFAULT_ENDPOINT);
        rc = st == FERRY_EAUTH                ? S_EXIT_REFUSED
             : s_exit_for(st) == S_EXIT_USAGE ? S_EXIT_USAGE
                                              : S_EXIT_UNREACHABLE;
        goto done;
    }
    if (strcmp(cmd, "declare") == 0) {
        ferry_kind_t kind;
        if (strcmp(pos[0], "topic") == 0)
            kind = FERRY_KIND_TOPIC;
        else if (strcmp(pos[0], "queue") == 0)
            kind = FERRY_KIND_QUEUE;
        else
            goto usage;
        ferry_topic_config_t cfg = {.dedupe_window_ms = o.dedupe_ms,
                                    .max_msgs = o.max_msgs,
                                    .max_bytes = o.max_bytes,
                                    .max_age_ms = o.max_age_ms,
                                    .discard_new = o.discard_new,
                                    .interest = o.interest};
        ferry_topic_info_t info;
        bool created;
        st = ferry_client_declare(c, kind, pos[1], &cfg, &info, &created);
        rc = s_report(c, st);
        if (st == FERRY_OK && !created && fy_cli_declare_differs(&o, &info))
            rc = S_EXIT_REFUSED;
        else if (st == FERRY_OK)
            printf("%s %s %s\n", created ? "created" : "exists", pos[0], info.name);
    } else if (strcmp(cmd, "delete") == 0) {
        st = ferry_client_delete(c, pos[0]);
        if ((rc = s_report(c, st)) == 0)
            printf("deleted %s\n", pos[0]);
    } else if (strcmp(cmd, "info") == 0) {
        ferry_topic_info_t info;
        st = ferry_client_info(c, pos[0], &info);
        if ((rc = s_report(c, st)) == 0)
            s_print_info(&info);
    } else if (strcmp(cmd, "pub") == 0) {
        rc = s_cmd_pub(c, pos[0], npos - 1, pos + 1, &o);
    } else if (strcmp(cmd, "get") == 0 || strcmp(cmd, "peek") == 0) {
        rc = s_cmd_get(c, pos[0], &o);
    } else if (strcmp(cmd, "stats") == 0) {
        ferry_stats_t s;
        st = ferry_client_stats(c, &s);
        if ((rc = s_report(c, st)) == 0)
            printf("topics: %" PRIu64 "\nmessages: %" PRIu64 "\nbytes: %" PRIu64
                   "\npublishes: %" PRIu64 "\nduplicates: %" PRIu64 "\ncommits: %" PRIu64
                   "\nrequests: %" PRIu64 "\nerrors: %" PRIu64 "\nuptime_ms: %" PRIu64
                   "\nmap_size: %" PRIu64 "\nmap_used: %" PRIu64 "\n",
                   s.topics, s.messages, s.bytes, s.publishes, s.duplicates, s.commits, s.requests,
                   s.errors, s.uptime_ms, s.map_size, s.map_used);
    } else if (strcmp(cmd, "ping") == 0) {
        st = ferry_client_ping(c);
        if ((rc = s_report(c, st)) == 0)
            printf("pong\n");
    } else if (strcmp(cmd, "sub") == 0 && !(npos > 1 && strcmp(pos[0], "info") == 0)) {
        if (npos != 1)
            goto usage;
        rc = s_cmd_sub(c, pos[0], &o);
    } else if (strcmp(cmd, "sub-info") == 0 || strcmp(cmd, "sub") == 0) {
        /* "sub-info TOPIC [NAME]", or the same spelled "sub info TOPIC [NAME]". */
        int at = strcmp(cmd, "sub") == 0;
        if (npos - at > 2)
            goto usage;
        ferry_sub_info_t si;
        st = ferry_client_sub_info(c, pos[at], npos > at + 1 ? pos[at + 1] : "", &si);
        if ((rc = s_report(c, st)) == 0)
            printf(
                "cursor: %llu\nack_floor: %llu\nlast_seq: %llu\nwaiting: %llu\n"
                "ack_wait_ms: %llu\nmax_deliver: %u\n",
                (unsigned long long)si.cursor, (unsigned long long)si.ack_floor,
                (unsigned long long)si.last_seq,
                (unsigned long long)(si.last_seq + 1 > si.cursor ? si.last_seq + 1 - si.cursor : 0),
                (unsigned long long)si.ack_wait_ms, si.max_deliver);
    } else if (strcmp(cmd, "dlq") == 0) {
        char dlq[FERRY_NAME_MAX + 8];
        ferry_topic_info_t ti;
        if (strcmp(pos[0], "replay") != 0 && strcmp(pos[0], "list") != 0)
            goto usage;
        if (s_dlq_name(pos[1], dlq, sizeof dlq)) {
            rc = S_EXIT_USAGE;
        } else if (ferry_client_info(c, dlq, &ti) == FERRY_ENOTFOUND &&
                   ferry_client_info(c, pos[1], &ti) == FERRY_OK) {
            /* Nothing was ever dead-lettered: an empty list, not an error. */
            fprintf(stderr, "ferry: no dead letters (%s does not exist yet)\n", dlq);
            rc = 0;
        } else {
            rc = strcmp(pos[0], "replay") == 0 ? s_cmd_dlq_replay(c, pos[1], &o)
                                               : s_cmd_get(c, dlq, &o);
        }
    } else if (strcmp(cmd, "fetch") == 0) {
        rc = s_cmd_fetch(c, pos[0], npos > 1 ? pos[1] : "", &o);
    } else if (strcmp(cmd, "read") == 0) {
        rc = s_cmd_read(c, pos[0], pos[1], &o);
    } else if (strcmp(cmd, "request") == 0) {
        rc = s_cmd_request(c, pos[0], npos - 1, pos + 1, &o);
    } else if (strcmp(cmd, "reply") == 0) {
        rc = s_cmd_reply(c, pos[0], &o);
    } else if (strcmp(cmd, "saga") == 0) {
        rc = fy_cli_saga(c, npos, pos);
    } else if (strcmp(cmd, "top") == 0) {
        rc = fy_cli_top(
            c, o.once, o.interval_ms ? (int)(o.interval_ms > 60000 ? 60000 : o.interval_ms) : 1000);
    } else if (strcmp(cmd, "seek") == 0) {
        rc = fy_cli_seek(c, pos[0], pos[1], &o);
    } else if (strcmp(cmd, "backup") == 0) {
        rc = s_cmd_backup(c, pos[0]);
    } else if (strcmp(cmd, "cluster") == 0) {
        rc = fy_cli_cluster(c, npos, pos, o.json);
    } else if (strcmp(cmd, "topics") == 0) {
        rc = s_cmd_topics(c, &o);
    } else if (strcmp(cmd, "subs") == 0) {
        rc = s_cmd_subs(c, pos[0], &o);
    } else if (strcmp(cmd, "edit") == 0) {
        ferry_topic_edit_t e = {.dedupe_window_ms = o.dedupe_ms,
                                .max_msgs = o.max_msgs,
                                .max_bytes = o.max_bytes,
                                .max_age_ms = o.max_age_ms,
                                .discard_new = o.discard_new};
        e.set = (o.given & FY_CLI_GIVEN_DEDUPE ? FERRY_EDIT_DEDUPE_WINDOW : 0) |
                (o.given & FY_CLI_GIVEN_MAX_MSGS ? FERRY_EDIT_MAX_MSGS : 0) |
                (o.given & FY_CLI_GIVEN_MAX_BYTES ? FERRY_EDIT_MAX_BYTES : 0) |
                (o.given & FY_CLI_GIVEN_MAX_AGE ? FERRY_EDIT_MAX_AGE : 0) |
                (o.given & FY_CLI_GIVEN_DISCARD ? FERRY_EDIT_DISCARD : 0);
        if (o.given & FY_CLI_GIVEN_INTEREST) {
            fprintf(stderr, "ferry: edit: interest retention cannot change: declare another "
                            "topic\n");
            goto done;
        }
        if (!e.set) {
            fprintf(stderr, "ferry: edit: nothing to change (ferry edit --help)\n");
            goto done;
        }
        ferry_topic_info_t info;
        st = ferry_client_edit(c, pos[0], &e, &info);
        if ((rc = s_report(c, st)) == 0)
            s_print_info(&info);
    } else if (strcmp(cmd, "purge") == 0) {
        uint64_t removed = 0;
        if (o.keep && o.seq_below) {
            fprintf(stderr, "ferry: purge: --keep or --seq-below, not both\n");
            goto done;
        }
        st = ferry_client_purge(c, pos[0], o.keep, o.seq_below, &removed);
        if ((rc = s_report(c, st)) == 0)
            printf("purged %llu message%s from %s\n", (unsigned long long)removed,
                   removed == 1 ? "" : "s", pos[0]);
    } else if (strcmp(cmd, "sub-delete") == 0) {
        st = ferry_client_sub_delete(c, pos[0], pos[1]);
        if ((rc = s_report(c, st)) == 0)
            printf("deleted subscription %s of %s\n", pos[1], pos[0]);
    } else if (strcmp(cmd, "ack") == 0 || strcmp(cmd, "nack") == 0) {
        uint64_t seqs[6];
        for (int k = 2; k < npos; k++)
            if (!fy_cli_parse_u64(pos[k], &seqs[k - 2]) || seqs[k - 2] == 0)
                goto usage;
        st = cmd[0] == 'a' ? ferry_client_ack(c, pos[0], pos[1], seqs, (size_t)(npos - 2))
                           : ferry_client_nack(c, pos[0], pos[1], seqs[0], o.delay_ms);
        if ((rc = s_report(c, st)) == 0)
            printf("%sed %d\n", cmd, npos - 2);
    }
    goto done;
usage:
    fprintf(stderr, "ferry: wrong arguments for %s; usage: ferry %s (ferry %s --help)\n", cmd,
            help->synopsis, cmd);
    rc = S_EXIT_USAGE;
done:
    fy_cli_opts_free(&o);
    ferry_client_destroy(&c);
    ferry_options_destroy(&opts);
    return rc;
}
