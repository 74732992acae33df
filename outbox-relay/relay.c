/*
 * relay.c - the relay loop (relay.h).
 */
#include "relay.h"

#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_HEADERS_MAX 64
#define S_BATCH_MAX   1000
#define S_TOPICS_MAX  512 /* topics remembered as declared */

typedef struct {
    ferry_status_t status;
    bool done, duplicate;
} s_result_t;

typedef struct {
    const fr_config_t *cfg;
    ferry_client_t *c;
    s_result_t res[S_BATCH_MAX];                    /* the batch's confirms */
    char row_topic[S_BATCH_MAX][FERRY_NAME_MAX + 1]; /* the batch's topics */
    fr_source_t *src;
    char topics[S_TOPICS_MAX][FERRY_NAME_MAX + 1]; /* declared already */
    size_t ntopics;
    uint64_t pos;
    /* stats */
    uint64_t published, duplicates, dead, batches;
    long long last_stats;
} s_relay_t;


static void
s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* logfmt lines on stderr, like ferryd's. */
static void
s_log(const char *level, const char *msg, const char *fmt, ...)
{
    char when[32];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    fprintf(stderr, "ts=%s level=%s mod=relay msg=\"%s\"", when, level, msg);
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        fputc(' ', stderr);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
}

/* The topic of a row: the template with {aggregate_type} replaced. */
static bool
s_topic(const char *tmpl, const char *aggregate_type, char *out, size_t cap)
{
    const char *at = strstr(tmpl, "{aggregate_type}");
    int n = at ? snprintf(out, cap, "%.*s%s%s", (int)(at - tmpl), tmpl, aggregate_type,
                          at + strlen("{aggregate_type}"))
               : snprintf(out, cap, "%s", tmpl);
    return n > 0 && (size_t)n < cap;
}

/* Declares a topic once per run (idempotent at the broker). */
static ferry_status_t
s_ensure_topic(s_relay_t *r, const char *topic)
{
    for (size_t i = 0; i < r->ntopics; i++)
        if (strcmp(r->topics[i], topic) == 0)
            return FERRY_OK;
    ferry_topic_config_t tc = {.dedupe_window_ms = r->cfg->dedupe_window_ms};
    ferry_status_t st = ferry_client_declare(r->c, FERRY_KIND_TOPIC, topic, &tc, NULL, NULL);
    if (st == FERRY_EEXISTS)
        st = FERRY_OK; /* a queue of that name takes the events as well */
    if (st == FERRY_OK && r->ntopics < S_TOPICS_MAX)
        snprintf(r->topics[r->ntopics++], FERRY_NAME_MAX + 1, "%s", topic);
    return st;
}

/* A refusal that a retry cannot cure. */
static bool
s_permanent(ferry_status_t st)
{
    return st == FERRY_ETOO_LARGE || st == FERRY_EINVALID_NAME || st == FERRY_EFIELD ||
           st == FERRY_EINVAL || st == FERRY_EEXISTS;
}

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_result_t *res = user;
    res->status = cf->status;
    res->duplicate = cf->duplicate;
    res->done = true;
}

/* Moves a row the broker refuses for good to the dead-letter topic, with the
 * reason; the payload goes along when it can. */
static int
s_dead_letter(s_relay_t *r, const fr_row_t *row, const char *topic, ferry_status_t why)
{
    if (r->cfg->on_poison == FR_POISON_STOP) {
        s_log("error", "poison row, stopping (--on-poison stop)", "id=%llu topic=%s code=%s",
              (unsigned long long)row->id, topic, ferry_errname(why));
        return -1;
    }
    char idtext[24], reason[96];
    snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)row->id);
    snprintf(reason, sizeof reason, "%s: %s", ferry_errname(why), ferry_strerror(why));
    ferry_header_t h[] = {{"ferry-relay-reason", reason},
                          {"ferry-relay-source", r->cfg->name},
                          {"ferry-relay-id", idtext},
                          {"ferry-relay-topic", topic},
                          {"event_type", row->event_type},
                          {"aggregate_type", row->aggregate_type}};
    char mid[300];
    snprintf(mid, sizeof mid, "%s:%llu", r->cfg->name, (unsigned long long)row->id);
    ferry_message_t m = {.data = row->payload,
                         .len = why == FERRY_ETOO_LARGE ? 0 : row->payload_len,
                         .id = mid,
                         .headers = h,
                         .header_count = sizeof h / sizeof h[0]};
    ferry_status_t st = s_ensure_topic(r, r->cfg->dlq_topic);
    if (st == FERRY_OK)
        st = ferry_client_publish(r->c, r->cfg->dlq_topic, &m, NULL);
    if (st == FERRY_ETOO_LARGE) { /* headers too big: the reason alone */
        m.len = 0;
        m.header_count = 3;
        st = ferry_client_publish(r->c, r->cfg->dlq_topic, &m, NULL);
    }
    if (st != FERRY_OK)
        return st == FERRY_OK ? 0 : 1; /* 1: try again later */
    r->dead++;
    s_log("warn", "poison row dead-lettered", "id=%llu topic=%s code=%s dlq=%s",
          (unsigned long long)row->id, topic, ferry_errname(why), r->cfg->dlq_topic);
    return 0;
}

static void
s_stats(s_relay_t *r, bool force)
{
    long long now = fy_mono_ms();
    if (!force && now - r->last_stats < r->cfg->stats_ms)
        return;
    r->last_stats = now;
    uint64_t head = 0, oldest = 0;
    char err[256];
    if (r->cfg->ops->head(r->src, &head, &oldest, r->pos, err, sizeof err) != 0)
        return;
    uint64_t wall = fy_wall_ms();
    double lag_s = oldest && wall > oldest ? (double)(wall - oldest) / 1000.0 : 0.0;
    s_log("info", "relay stats",
          "source=%s position=%llu head=%llu lag_rows=%llu lag_s=%.1f published=%llu "
          "duplicates=%llu dead_lettered=%llu",
          r->cfg->name, (unsigned long long)r->pos, (unsigned long long)head,
          (unsigned long long)(head > r->pos ? head - r->pos : 0), lag_s,
          (unsigned long long)r->published, (unsigned long long)r->duplicates,
          (unsigned long long)r->dead);
}

/* One batch: publish, wait for every confirm, record how far it got.
 * @return 0 progress or idle, 1 transient trouble (back off), -1 fatal. */
static int
s_batch(s_relay_t *r)
{
    const fr_config_t *cfg = r->cfg;
    char err[256];
    const fr_row_t *rows;
    size_t n;
    if (cfg->ops->read(r->src, r->pos, cfg->batch, &rows, &n, err, sizeof err) != 0) {
        s_log("warn", "cannot read the outbox", "detail=\"%s\"", err);
        return 1;
    }
    if (n == 0)
        return 0;
    s_result_t *res = r->res;
    char(*topics)[FERRY_NAME_MAX + 1] = r->row_topic;
    size_t sent = 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const fr_row_t *row = &rows[i];
        res[i] = (s_result_t){.status = FERRY_OK};
        ferry_status_t st = FERRY_OK;
        if (!s_topic(cfg->topic_template, row->aggregate_type, topics[i], sizeof topics[i]))
            st = FERRY_EINVALID_NAME;
        else if ((st = s_ensure_topic(r, topics[i])) != FERRY_OK && !s_permanent(st))
            break; /* the broker is away: later */
        if (st == FERRY_OK) {
            ferry_header_t h[S_HEADERS_MAX];
            size_t nh = 0;
            char created[40];
            time_t secs = (time_t)(row->created_ms / 1000);
            struct tm tm;
            gmtime_r(&secs, &tm);
            size_t cl = strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(created + cl, sizeof created - cl, ".%03uZ",
                     (unsigned)(row->created_ms % 1000));
            h[nh++] = (ferry_header_t){"event_type", row->event_type};
            h[nh++] = (ferry_header_t){"created_at", created};
            for (size_t j = 0; j < row->header_count && nh < S_HEADERS_MAX; j++)
                h[nh++] = row->headers[j];
            char mid[300];
            snprintf(mid, sizeof mid, "%s:%llu", cfg->name, (unsigned long long)row->id);
            ferry_message_t m = {.data = row->payload,
                                 .len = row->payload_len,
                                 .key = row->aggregate_id,
                                 .id = mid,
                                 .headers = h,
                                 .header_count = nh};
            st = ferry_client_publish_async(r->c, topics[i], &m, s_on_confirm, &res[i]);
        }
        if (st != FERRY_OK) {
            if (!s_permanent(st))
                break; /* disconnected or timed out: the rest waits */
            res[i] = (s_result_t){.status = st, .done = true}; /* refused before the wire */
        }
        sent = i + 1;
    }
    if (ferry_client_flush(r->c, 60000) != FERRY_OK)
        rc = 1;
    /* How far every row is in the broker (or dead-lettered): the new position. */
    uint64_t pos = r->pos;
    for (size_t i = 0; i < sent; i++) {
        if (!res[i].done) {
            rc = 1;
            break;
        }
        if (res[i].status != FERRY_OK) {
            if (!s_permanent(res[i].status)) {
                rc = 1; /* e.g. storage full: retry from here */
                break;
            }
            int d = s_dead_letter(r, &rows[i], topics[i], res[i].status);
            if (d < 0)
                return -1;
            if (d > 0) {
                rc = 1;
                break;
            }
        } else {
            r->published++;
            r->duplicates += res[i].duplicate;
        }
        pos = rows[i].id;
    }
    if (sent < n)
        rc = 1;
    if (pos > r->pos) {
        if (cfg->ops->advance(r->src, pos, cfg->delete_published, err, sizeof err) != 0) {
            s_log("warn", "cannot record the position", "detail=\"%s\"", err);
            return 1; /* the rows go again, as duplicates */
        }
        r->pos = pos;
        r->batches++;
    }
    return rc;
}

int
fr_relay_run(const fr_config_t *cfg, volatile sig_atomic_t *stop)
{
    s_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    r->cfg = cfg;
    char err[256];
    int rc = 1;
    if (cfg->ops->open(cfg->location, cfg->table, cfg->name, &r->src, err, sizeof err) != 0 ||
        cfg->ops->position(r->src, &r->pos, err, sizeof err) != 0) {
        s_log("error", "cannot open the source", "source=%s location=%s detail=\"%s\"",
              cfg->ops->kind, cfg->location, err);
        goto out;
    }
    ferry_options_t *o = ferry_options_new();
    char cname[300];
    snprintf(cname, sizeof cname, "ferry-relay:%s", cfg->name);
    if (!o || ferry_options_set_server(o, cfg->broker) || ferry_options_set_name(o, cname) ||
        ferry_options_set_timeout_ms(o, 10000)) {
        s_log("error", "invalid broker endpoint", "broker=%s", cfg->broker);
        ferry_options_destroy(&o);
        goto out;
    }
    /* The broker may be away at start: keep trying, rows are safe meanwhile. */
    int backoff = 100;
    ferry_status_t st;
    while (!*stop && (st = ferry_client_new(o, &r->c)) != FERRY_OK) {
        if (st == FERRY_EINVAL) {
            s_log("error", "invalid broker endpoint", "broker=%s", cfg->broker);
            ferry_options_destroy(&o);
            goto out;
        }
        s_log("warn", "broker unreachable, retrying", "broker=%s retry_ms=%d", cfg->broker,
              backoff);
        s_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    ferry_options_destroy(&o);
    if (!r->c) {
        rc = 0;
        goto out;
    }
    s_log("info", "relay started", "source=%s location=%s name=%s position=%llu broker=%s pid=%d",
          cfg->ops->kind, cfg->location, cfg->name, (unsigned long long)r->pos, cfg->broker,
          (int)getpid());
    backoff = 50;
    while (!*stop) {
        int b = s_batch(r);
        if (b < 0)
            goto out;
        if (b > 0) {
            ferry_client_poll(r->c, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else {
            backoff = 50;
        }
        s_stats(r, false);
        if (b == 0) {
            uint64_t head = 0, oldest = 0;
            if (cfg->ops->head(r->src, &head, &oldest, r->pos, err, sizeof err) == 0 &&
                head <= r->pos)
                ferry_client_poll(r->c, cfg->poll_ms); /* idle: keeps the connection alive */
        }
    }
    rc = 0;
out:
    if (r->src) {
        s_stats(r, true);
        cfg->ops->close(&r->src);
    }
    ferry_client_destroy(&r->c);
    if (rc == 0)
        s_log("info", "relay stopped", "source=%s", cfg->name);
    free(r);
    return rc;
}
