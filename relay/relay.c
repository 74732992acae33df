/* SPDX-License-Identifier: MIT */
/*
 * relay.c - the relay loop (relay.h).
 */
#include "redact.h"
#include "relay.h"
#include "relay_status.h"

#include "clock.h"
#include "endpoint.h"
#include "wire_limits.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_HEADERS_MAX FY_HEADERS_MAX
#define S_BATCH_MAX   1000
#define S_TOPICS_MAX  512 /* topics remembered as declared */

/* A row sent and not yet retired: its confirm lands here. */
typedef struct {
    uint64_t hi, id;
    ferry_status_t status;
    bool done, duplicate;
    int topic; /* index into the declared topics, -1: none */
} s_flight_t;

/* A declared topic: whether this relay created it (then it declares it
 * again if it is deleted; a topic someone else made is theirs to make). */
typedef struct {
    char name[FERRY_NAME_MAX + 1];
    bool created, gone;
} s_topic_t;

/* What keeps rows from the broker: first seen, last logged, and why. */
typedef struct {
    long long since, logged; /* monotonic ms; since 0: no trouble */
    ferry_status_t code;
    uint64_t id;
    int topic;
    uint64_t retries;
} s_stuck_t;

#define S_RING 4096 /* rows in flight or waiting to retire; > the client window */

typedef struct {
    const fr_config_t *cfg;
    char name[256];   /* the source's name (cfg's, or its default), copied: it
                       * outlives the source in the last log lines */
    char shown[1024]; /* the location as logged: passwords hidden (redact.h) */
    ferry_client_t *c;
    /* Rows in publish order; retired from the head once confirmed. */
    s_flight_t ring[S_RING];
    size_t head, count;
    fr_pos_t sent_pos;    /* the last row handed to the broker */
    fr_pos_t done_pos;    /* every row up to here is in the broker (or dead-lettered) */
    bool trouble;         /* a transient failure: drain, record, read again */
    time_t created_sec;   /* the second created_day is formatted for */
    char created_day[24]; /* "YYYY-MM-DDTHH:MM:SS" of created_sec */
    uint64_t retired;     /* rows retired since the position was last recorded */
    long long recorded_at;
    fr_source_t *src;
    s_topic_t topics[S_TOPICS_MAX]; /* declared already */
    size_t ntopics;
    s_stuck_t stuck;
    fr_pos_t pos;
    /* stats */
    uint64_t published, duplicates, dead, batches, retries;
    long long last_stats, last_measure;
    uint64_t lag_rows, lag_bytes, oldest_ms; /* the last measure */
    const char *state;                       /* fr_relay_report_t.state */
    fr_status_t *status;                     /* reports to _ferry.relay (relay_status.h) */
    long long last_status;
} s_relay_t;

const char *
fr_default_broker(void)
{
    const char *env = getenv("FERRY_SERVER");
    return env && *env ? env : FY_DEFAULT_ENDPOINT;
}

void
fr_config_init(fr_config_t *cfg)
{
    *cfg = (fr_config_t){.broker = fr_default_broker(),
                         .server_key = "",
                         .client_key = "",
                         .user = "",
                         .password_file = "",
                         .table = FR_DEFAULT_TABLE,
                         .topic_template = FR_DEFAULT_TOPIC_TEMPLATE,
                         .dlq_topic = FR_DEFAULT_DLQ_TOPIC,
                         .slot = "",
                         .publication = "",
                         .on_poison = FR_POISON_DLQ,
                         .poll_ms = FR_DEFAULT_POLL_MS,
                         .batch = FR_DEFAULT_BATCH,
                         .dedupe_window_ms = FR_DEFAULT_DEDUPE_MS,
                         .stats_ms = FR_DEFAULT_STATS_MS,
                         .stuck_error_ms = FR_DEFAULT_STUCK_ERROR_MS};
}

const char *
fr_relay_security(const fr_config_t *cfg, ferry_options_t *o)
{
    if (cfg->server_key && cfg->server_key[0] &&
        ferry_options_set_server_key(o, cfg->server_key) != FERRY_OK)
        return "server-key: not a key (40 z85 characters) nor @FILE of one";
    if (cfg->client_key && cfg->client_key[0] &&
        ferry_options_set_client_key(o, cfg->client_key) != FERRY_OK)
        return "client-key: not a secret key file only its owner may read";
    if (cfg->user && cfg->user[0]) {
        char pw[1025] = "";
        struct stat sb;
        FILE *f = cfg->password_file ? fopen(cfg->password_file, "r") : NULL;
        bool ok = f && fstat(fileno(f), &sb) == 0 && !(sb.st_mode & 077) &&
                  fgets(pw, sizeof pw, f) != NULL;
        if (f)
            fclose(f);
        pw[strcspn(pw, "\r\n")] = '\0';
        ok = ok && pw[0] && ferry_options_set_credentials(o, cfg->user, pw) == FERRY_OK;
        memset(pw, 0, sizeof pw);
        if (!ok)
            return "password-file: missing, empty, or readable by others (chmod 600)";
    }
    return NULL;
}

static const char *
s_level_name(ferry_log_level_t level)
{
    return level == FERRY_LOG_ERROR ? "error" : level == FERRY_LOG_WARN ? "warn" : "info";
}

/* logfmt lines, like ferryd's: to the configured callback, else stderr. */
static void
s_log(const fr_config_t *cfg, ferry_log_level_t level, const char *msg, const char *fmt, ...)
{
    char day[24], line[1024];
    uint64_t ms = fy_wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", gmtime_r(&t, &tm));
    /* Milliseconds, as ferryd's lines have them. */
    int n = snprintf(line, sizeof line, "ts=%s.%03uZ level=%s mod=relay msg=\"%s\"", day,
                     (unsigned)(ms % 1000), s_level_name(level), msg);
    if (fmt && n > 0 && (size_t)n + 1 < sizeof line) {
        va_list ap;
        va_start(ap, fmt);
        line[n++] = ' ';
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    if (cfg->log)
        cfg->log(level, line, cfg->log_user);
    else
        fprintf(stderr, "%s\n", line);
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

/* Declares a topic once per run (idempotent at the broker); *index is its
 * entry (-1 when the table is full: declared every time). */
static ferry_status_t
s_ensure_topic(s_relay_t *r, const char *topic, int *index)
{
    *index = -1;
    for (size_t i = 0; i < r->ntopics; i++)
        if (strcmp(r->topics[i].name, topic) == 0) {
            *index = (int)i;
            if (!r->topics[i].gone)
                return FERRY_OK;
            if (!r->topics[i].created) {
                /* Not ours to make again: the rows wait until its owner does. */
                ferry_topic_info_t info;
                ferry_status_t st = ferry_client_info(r->c, topic, &info);
                if (st == FERRY_OK)
                    r->topics[i].gone = false;
                return st;
            }
            break;
        }
    ferry_topic_config_t tc = {.dedupe_window_ms = r->cfg->dedupe_window_ms};
    bool created = false;
    ferry_status_t st = ferry_client_declare(r->c, FERRY_KIND_TOPIC, topic, &tc, NULL, &created);
    if (st == FERRY_EEXISTS)
        st = FERRY_OK; /* a queue of that name takes the events as well */
    if (st != FERRY_OK)
        return st;
    if (*index >= 0) {
        s_topic_t *t = &r->topics[*index];
        t->gone = false;
        s_log(r->cfg, FERRY_LOG_WARN, "topic was deleted, declared it again", "topic=%s source=%s",
              topic, r->name);
    } else if (r->ntopics < S_TOPICS_MAX) {
        *index = (int)r->ntopics;
        s_topic_t *t = &r->topics[r->ntopics++];
        snprintf(t->name, sizeof t->name, "%s", topic);
        t->created = created;
        t->gone = false;
    }
    return FERRY_OK;
}

/* Rows cannot reach the broker (a refusal that may clear, or no broker):
 * the first time and every minute after, a line with the reason; past
 * stuck_error_ms the lines are errors. Nothing is ever stuck in silence. */
static void
s_stuck(s_relay_t *r, ferry_status_t code, uint64_t id, int topic)
{
    long long now = fy_mono_ms();
    s_stuck_t *k = &r->stuck;
    k->retries++;
    r->retries++;
    if (!k->since) {
        *k = (s_stuck_t){.since = now, .code = code, .id = id, .topic = topic, .retries = 1};
    } else {
        k->code = code, k->id = id, k->topic = topic;
        if (now - k->logged < 60000)
            return;
    }
    k->logged = now;
    bool error = now - k->since >= r->cfg->stuck_error_ms;
    const char *tname = topic >= 0 ? r->topics[topic].name : "";
    s_log(r->cfg, error ? FERRY_LOG_ERROR : FERRY_LOG_WARN, "rows refused, retrying",
          "source=%s code=%s id=%llu topic=%s since_s=%.1f retries=%llu detail=\"%s\"", r->name,
          ferry_errname(code), (unsigned long long)id, tname, (double)(now - k->since) / 1000.0,
          (unsigned long long)k->retries,
          code == FERRY_ENOTFOUND && topic >= 0 && !r->topics[topic].created
              ? "the topic was deleted and the relay did not create it: declare it again"
              : ferry_strerror(code));
}

/* Rows go through again after trouble. */
static void
s_unstuck(s_relay_t *r)
{
    if (!r->stuck.since)
        return;
    s_log(r->cfg, FERRY_LOG_INFO, "publishing again", "source=%s after_s=%.1f retries=%llu",
          r->name, (double)(fy_mono_ms() - r->stuck.since) / 1000.0,
          (unsigned long long)r->stuck.retries);
    r->stuck = (s_stuck_t){0};
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
    s_flight_t *f = user;
    f->status = cf->status;
    f->duplicate = cf->duplicate;
    f->done = true;
}

/* Moves a row the broker refuses for good to the dead-letter topic, with the
 * reason; the payload goes along when it can. */
static int
s_dead_letter(s_relay_t *r, const fr_row_t *row, const char *topic, ferry_status_t why)
{
    if (r->cfg->on_poison == FR_POISON_STOP) {
        s_log(r->cfg, FERRY_LOG_ERROR, "poison row, stopping (--on-poison stop)",
              "id=%llu topic=%s code=%s", (unsigned long long)row->id, topic, ferry_errname(why));
        return -1;
    }
    char idtext[24], reason[96];
    snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)row->id);
    snprintf(reason, sizeof reason, "%s: %s", ferry_errname(why), ferry_strerror(why));
    ferry_header_t h[] = {{"ferry-relay-reason", reason},  {"ferry-relay-source", r->name},
                          {"ferry-relay-id", idtext},      {"ferry-relay-topic", topic},
                          {"event_type", row->event_type}, {"aggregate_type", row->aggregate_type}};
    char mid[300];
    snprintf(mid, sizeof mid, "%s:%llu", r->name, (unsigned long long)row->id);
    ferry_message_t m = {.data = row->payload,
                         .len = why == FERRY_ETOO_LARGE ? 0 : row->payload_len,
                         .id = mid,
                         .headers = h,
                         .header_count = sizeof h / sizeof h[0]};
    int dlq_index;
    ferry_status_t st = s_ensure_topic(r, r->cfg->dlq_topic, &dlq_index);
    if (st == FERRY_OK)
        st = ferry_client_publish(r->c, r->cfg->dlq_topic, &m, NULL);
    if (st == FERRY_ETOO_LARGE || st == FERRY_EINVAL || st == FERRY_EFIELD) {
        /* The row's own fields cannot travel (too big, not UTF-8, control
         * characters): the reason and the payload, without them. */
        if (st == FERRY_ETOO_LARGE)
            m.len = 0;
        m.header_count = 3;
        st = ferry_client_publish(r->c, r->cfg->dlq_topic, &m, NULL);
    }
    if (st != FERRY_OK)
        return 1; /* try again later */
    r->dead++;
    s_log(r->cfg, FERRY_LOG_WARN, "poison row dead-lettered", "id=%llu topic=%s code=%s dlq=%s",
          (unsigned long long)row->id, topic, ferry_errname(why), r->cfg->dlq_topic);
    return 0;
}

/* Where the relay stands. */
static void
s_fill(const s_relay_t *r, fr_relay_report_t *rep)
{
    uint64_t wall = fy_wall_ms();
    *rep = (fr_relay_report_t){
        .name = r->name,
        .kind = r->cfg->ops->kind,
        .state = r->state ? r->state : "opening",
        .published = r->published,
        .duplicates = r->duplicates,
        .dead_lettered = r->dead,
        .retries = r->retries,
        .lag_rows = r->lag_rows,
        .lag_bytes = r->lag_bytes,
        .lag_s = r->oldest_ms && wall > r->oldest_ms ? (double)(wall - r->oldest_ms) / 1000.0 : 0,
        .reports_failed = fr_status_failed(r->status)};
}

/* Says where the relay stands to cfg->report (if any). */
static void
s_report(s_relay_t *r)
{
    if (!r->cfg->report)
        return;
    fr_relay_report_t rep;
    s_fill(r, &rep);
    r->cfg->report(r->cfg->report_user, &rep);
}

/* Tells the broker where the relay stands (_ferry.relay), every
 * FR_STATUS_MS; a failure to, and its end, are logged once each. */
static void
s_tell_broker(s_relay_t *r, long long now)
{
    if (!r->status || now - r->last_status < FR_STATUS_MS)
        return;
    r->last_status = now;
    fr_relay_report_t rep;
    s_fill(r, &rep);
    char note[400];
    bool failing = false;
    if (fr_status_send(r->status, &rep, note, sizeof note, &failing))
        s_log(r->cfg, failing ? FERRY_LOG_WARN : FERRY_LOG_INFO,
              failing ? "cannot report to the broker, rows go on" : "reporting to the broker",
              "source=%s %s", r->name, note);
}

static void
s_set_state(s_relay_t *r, const char *state)
{
    if (r->state != state) {
        r->state = state;
        s_report(r);
    }
}

/* How far behind the relay is: measured every second when something reports
 * it, and for the stats line every stats_ms (logged then). */
static void
s_stats(s_relay_t *r, bool force)
{
    long long now = fy_mono_ms();
    bool log = force || now - r->last_stats >= r->cfg->stats_ms;
    bool tell = r->status && now - r->last_status >= FR_STATUS_MS;
    if (!log && !tell && !(r->cfg->report && now - r->last_measure >= 1000))
        return;
    r->last_measure = now;
    fy_err_t err = {0};
    uint64_t rows, bytes, oldest;
    if (r->src && r->cfg->ops->lag(r->src, r->pos, &rows, &bytes, &oldest, &err) == 0) {
        r->lag_rows = rows;
        r->lag_bytes = bytes;
        r->oldest_ms = oldest;
    }
    s_set_state(r, r->stuck.since ? "stuck" : "running");
    s_report(r);
    s_tell_broker(r, now);
    if (!log)
        return;
    r->last_stats = now;
    uint64_t wall = fy_wall_ms();
    double lag_s = r->oldest_ms && wall > r->oldest_ms ? (double)(wall - r->oldest_ms) / 1000.0 : 0;
    s_log(r->cfg, FERRY_LOG_INFO, "relay stats",
          "source=%s position=%llu lag_rows=%llu lag_bytes=%llu lag_s=%.1f published=%llu "
          "duplicates=%llu dead_lettered=%llu retries=%llu",
          r->name, (unsigned long long)r->pos.id, (unsigned long long)r->lag_rows,
          (unsigned long long)r->lag_bytes, lag_s, (unsigned long long)r->published,
          (unsigned long long)r->duplicates, (unsigned long long)r->dead,
          (unsigned long long)r->retries);
}

/* Retires confirmed rows from the head of the ring, moving done_pos. A row
 * refused for good is dead-lettered (read again by id) when @p may_reread
 * (the source's rows of the current read are not in use), else retiring
 * stops there for now. A transient refusal sets trouble. */
static int
s_retire(s_relay_t *r, bool may_reread)
{
    while (r->count > 0) {
        s_flight_t *f = &r->ring[r->head];
        if (!f->done)
            return 0;
        if (f->status == FERRY_EIDREUSED) {
            /* Another outbox publishes under this source's name: its row
             * with this id is in the broker, ours would be lost as a
             * "duplicate". Stop before anything more is confused. */
            s_log(r->cfg, FERRY_LOG_ERROR, "message id held by a different event, stopping",
                  "id=%s:%llu source=%s detail=\"another outbox publishes under the name '%s'; "
                  "give each source its own name (--name or [source NAME])\"",
                  r->name, (unsigned long long)f->id, r->name, r->name);
            return -1;
        }
        if (f->status != FERRY_OK) {
            if (!s_permanent(f->status)) {
                r->trouble = true; /* e.g. storage full: read again from done_pos */
                if (f->status == FERRY_ENOTFOUND && f->topic >= 0)
                    r->topics[f->topic].gone = true; /* deleted under us */
                s_stuck(r, f->status, f->id, f->topic);
                return 0;
            }
            if (!may_reread)
                return 0;
            const fr_row_t *rows;
            size_t n;
            fy_err_t err = {0};
            char topic[FERRY_NAME_MAX + 1];
            fr_pos_t before = {f->hi, f->id - 1};
            if (r->cfg->ops->read(r->src, before, 1, &rows, &n, &err) != 0 || n != 1 ||
                rows[0].id != f->id) {
                r->trouble = true;
                return 0;
            }
            if (!s_topic(r->cfg->topic_template, rows[0].aggregate_type, topic, sizeof topic))
                snprintf(topic, sizeof topic, "?");
            int d = s_dead_letter(r, &rows[0], topic, f->status);
            if (d < 0)
                return -1;
            if (d > 0) {
                r->trouble = true;
                return 0;
            }
        } else {
            r->published++;
            r->duplicates += f->duplicate;
        }
        r->done_pos = (fr_pos_t){f->hi, f->id};
        r->retired++;
        s_unstuck(r);
        r->head = (r->head + 1) % S_RING;
        r->count--;
    }
    return 0;
}

/* Records done_pos in the source when enough time or rows passed (or when
 * @p now). @return 0, or 1 if the source could not record it. */
static int
s_record(s_relay_t *r, bool now)
{
    long long t = fy_mono_ms();
    if (fr_pos_cmp(r->done_pos, r->pos) <= 0 ||
        (!now && r->retired < 10000 && t - r->recorded_at < 50))
        return 0;
    fy_err_t err = {0};
    if (r->cfg->ops->advance(r->src, r->done_pos, r->cfg->delete_published, &err) != 0) {
        s_log(r->cfg, FERRY_LOG_WARN, "cannot record the position", "code=%s detail=\"%s\"",
              ferry_errname(err.code), err.msg);
        return 1; /* the rows go again, as duplicates */
    }
    r->pos = r->done_pos;
    r->retired = 0;
    r->recorded_at = t;
    r->batches++;
    return 0;
}

/* Sends one row; a refusal before the wire is either permanent (recorded
 * in its ring entry, dead-lettered when retired) or transient (trouble). */
static int
s_send_row(s_relay_t *r, const fr_row_t *row)
{
    const fr_config_t *cfg = r->cfg;
    while (r->count == S_RING) { /* every slot waits for a confirm */
        ferry_client_poll(r->c, 10);
        if (s_retire(r, false) < 0)
            return -1;
        if (r->trouble)
            return 0;
    }
    s_flight_t *f = &r->ring[(r->head + r->count) % S_RING];
    *f = (s_flight_t){.hi = row->hi, .id = row->id, .status = FERRY_OK, .topic = -1};
    char topic[FERRY_NAME_MAX + 1];
    ferry_status_t st = FERRY_OK;
    if (!s_topic(cfg->topic_template, row->aggregate_type, topic, sizeof topic))
        st = FERRY_EINVALID_NAME;
    else
        st = s_ensure_topic(r, topic, &f->topic);
    if (st == FERRY_OK && row->header_count > S_HEADERS_MAX - 2) {
        /* Written past the outbox calls (which refuse it): not cut silently. */
        s_log(r->cfg, FERRY_LOG_WARN, "row has too many headers", "id=%llu headers=%zu max=%d",
              (unsigned long long)row->id, row->header_count, S_HEADERS_MAX - 2);
        st = FERRY_EINVAL; /* for good: dead-lettered (or --on-poison stop) */
    }
    if (st == FERRY_OK) {
        ferry_header_t h[S_HEADERS_MAX];
        size_t nh = 0;
        /* Rows come in bursts from one second: format the date once per second. */
        time_t secs = (time_t)(row->created_ms / 1000);
        if (secs != r->created_sec || !r->created_day[0]) {
            struct tm tm;
            gmtime_r(&secs, &tm);
            strftime(r->created_day, sizeof r->created_day, "%Y-%m-%dT%H:%M:%S", &tm);
            r->created_sec = secs;
        }
        char created[40];
        snprintf(created, sizeof created, "%s.%03uZ", r->created_day,
                 (unsigned)(row->created_ms % 1000));
        h[nh++] = (ferry_header_t){"event_type", row->event_type};
        h[nh++] = (ferry_header_t){"created_at", created};
        for (size_t j = 0; j < row->header_count && nh < S_HEADERS_MAX; j++)
            h[nh++] = row->headers[j];
        char mid[300];
        snprintf(mid, sizeof mid, "%s:%llu", r->name, (unsigned long long)row->id);
        ferry_message_t m = {.data = row->payload,
                             .len = row->payload_len,
                             .key = row->aggregate_id,
                             .id = mid,
                             .headers = h,
                             .header_count = nh};
        st = ferry_client_publish_async(r->c, topic, &m, s_on_confirm, f);
    }
    if (st != FERRY_OK && !s_permanent(st)) {
        r->trouble = true; /* disconnected, timed out, topic gone: the rest waits */
        s_stuck(r, st, row->id, f->topic);
        return 0;
    }
    if (st != FERRY_OK)
        *f = (s_flight_t){
            .hi = row->hi, .id = row->id, .status = st, .done = true, .topic = f->topic};
    r->count++;
    r->sent_pos = (fr_pos_t){row->hi, row->id};
    return 0;
}

/* One turn: read the rows after what was sent, send them without waiting
 * for their confirms (the window bounds what is in flight), retire what was
 * confirmed, record the position now and then. After a transient failure:
 * wait for what is in flight, record, and read again after it.
 * @return 0 progress or idle, 1 transient trouble (back off), -1 fatal. */
static int
s_turn(s_relay_t *r)
{
    const fr_config_t *cfg = r->cfg;
    fy_err_t err = {0};
    if (r->trouble) {
        /* Every sent row must have its answer before the ring is reused:
         * libferry resends what a lost connection left unconfirmed. */
        ferry_client_flush(r->c, 1000);
        if (ferry_client_in_flight(r->c) > 0) {
            /* No answer for what is in flight: the broker is away or stuck. */
            s_stuck(r, ferry_client_connected(r->c) ? FERRY_ETIMEOUT : FERRY_EDISCONNECTED,
                    r->done_pos.id + 1, -1);
            return 1;
        }
        /* Nothing in flight: what goes out from here (dead letters, then the
         * rows from done_pos again, in order) is not fenced by the refusal. */
        ferry_client_publish_resume(r->c);
        if (s_retire(r, true) < 0)
            return -1;
        s_record(r, true);
        /* What was not retired goes again (dedupe answers the duplicates). */
        r->count = 0;
        r->head = 0;
        r->sent_pos = r->done_pos;
        r->trouble = false;
        return 1;
    }
    const fr_row_t *rows;
    size_t n;
    if (cfg->ops->read(r->src, r->sent_pos, cfg->batch, &rows, &n, &err) != 0) {
        s_log(r->cfg, FERRY_LOG_WARN, "cannot read the outbox", "code=%s detail=\"%s\"",
              ferry_errname(err.code), err.msg);
        return 1;
    }
    for (size_t i = 0; i < n && !r->trouble; i++)
        if (s_send_row(r, &rows[i]) < 0)
            return -1;
    /* The rows of this read are no longer needed: poison rows may be read again. */
    ferry_client_poll(r->c, n ? 0 : (r->count ? 5 : cfg->poll_ms));
    if (s_retire(r, true) < 0)
        return -1;
    if (s_record(r, n == 0) != 0)
        return 1;
    return r->trouble ? 1 : 0;
}

/* Opens the source; while its disk is full (it cannot make what it needs
 * there), waits for space and tries again - every second at first, then
 * every 30 s - saying so at warn at once and every minute, at error once it
 * lasts stuck_error_ms. Any other failure is returned as it is. */
static fy_status_t
s_open_waiting(s_relay_t *r, const fr_source_args_t *args, atomic_int *stop, fy_err_t *err)
{
    const fr_config_t *cfg = r->cfg;
    long long since = fy_mono_ms(), logged = 0;
    int wait = 1000;
    for (;;) {
        fy_status_t st = cfg->ops->open(args, &r->src, err);
        if (st != FERRY_ESTORAGE_FULL || atomic_load(stop))
            return st;
        long long now = fy_mono_ms();
        if (!logged || now - logged >= 60000) {
            bool overdue = now - since >= cfg->stuck_error_ms;
            s_log(cfg, overdue ? FERRY_LOG_ERROR : FERRY_LOG_WARN,
                  "cannot open the source, waiting",
                  "source=%s location=%s code=%s for_s=%.1f detail=\"%s\"", cfg->ops->kind,
                  r->shown, ferry_errname(st), (double)(now - since) / 1000.0, err->msg);
            logged = now;
        }
        for (int t = 0; t < wait && !atomic_load(stop); t += 50)
            fy_sleep_ms(50);
        wait = wait * 2 > 30000 ? 30000 : wait * 2;
    }
}

/* Takes the source name's lock; while another relay of that name holds
 * it, waits (checking every second) and says so at warn, at once and every
 * minute. FERRY_ESHUTDOWN when stopped meanwhile. */
static fy_status_t
s_claim_waiting(s_relay_t *r, atomic_int *stop, fy_err_t *err)
{
    const fr_config_t *cfg = r->cfg;
    long long since = fy_mono_ms(), logged = 0;
    for (;;) {
        fy_status_t st = cfg->ops->claim ? cfg->ops->claim(r->src, err) : FERRY_OK;
        if (st != FERRY_EWOULD_BLOCK)
            return st;
        s_set_state(r, "waiting");
        long long now = fy_mono_ms();
        if (!logged || now - logged >= 60000) {
            s_log(cfg, FERRY_LOG_WARN, "another relay of this name runs, waiting",
                  "source=%s name=%s for_s=%.1f detail=\"%s; this one takes over when it "
                  "stops\"",
                  cfg->ops->kind, r->name, (double)(now - since) / 1000.0, err->msg);
            logged = now;
        }
        for (int t = 0; t < 1000; t += 50) {
            if (atomic_load(stop))
                return FERRY_ESHUTDOWN;
            fy_sleep_ms(50);
        }
    }
}

int
fr_relay_run(const fr_config_t *cfg, atomic_int *stop)
{
    s_relay_t *r = calloc(1, sizeof *r);
    if (!r)
        return 1;
    r->cfg = cfg;
    fr_redact(cfg->location, r->shown, sizeof r->shown);
    fy_err_t err = {0};
    int rc = 1;
    fr_source_args_t args = {.location = cfg->location,
                             .table = cfg->table,
                             .name = cfg->name,
                             .slot = cfg->slot,
                             .publication = cfg->publication,
                             .delete_rows = cfg->delete_published,
                             .env = cfg->env};
    bool moved = false;
    fy_status_t opened = s_open_waiting(r, &args, stop, &err);
    if (opened == FERRY_OK) {
        snprintf(r->name, sizeof r->name, "%s", cfg->ops->name(r->src));
        opened = s_claim_waiting(r, stop, &err);
        if (opened == FERRY_ESHUTDOWN) {
            rc = 0;
            goto out;
        }
    }
    if (opened == FERRY_OK) {
        if (cfg->rename_from && *cfg->rename_from)
            opened = cfg->ops->rename(r->src, cfg->rename_from, &moved, &err);
    }
    if (opened == FERRY_OK)
        opened = cfg->ops->position(r->src, &r->pos, &err);
    if (opened != FERRY_OK) {
        s_log(r->cfg, FERRY_LOG_ERROR, "cannot open the source",
              "source=%s location=%s code=%s detail=\"%s\"", cfg->ops->kind, r->shown,
              ferry_errname(err.code), err.msg);
        goto out;
    }
    if (moved) {
        s_log(r->cfg, FERRY_LOG_INFO, "position moved to the new name", "from=%s name=%s",
              cfg->rename_from, r->name);
    }
    ferry_options_t *o = ferry_options_new();
    char cname[300];
    snprintf(cname, sizeof cname, "ferry-relay:%s", r->name);
    /* Ordered: a row refused for a while must not be overtaken by the rows
     * sent after it (fence.h): they are refused too and sent again after it. */
    if (!o || ferry_options_set_server(o, cfg->broker) || ferry_options_set_name(o, cname) ||
        ferry_options_set_timeout_ms(o, 10000) || ferry_options_set_ordered(o, true)) {
        s_log(r->cfg, FERRY_LOG_ERROR, "invalid broker endpoint", "broker=%s wants=\"%s\"",
              cfg->broker, FY_ENDPOINT_FORMS);
        ferry_options_destroy(&o);
        goto out;
    }
    const char *bad = fr_relay_security(cfg, o);
    if (bad) {
        s_log(r->cfg, FERRY_LOG_ERROR, "invalid security setting", "setting=%s", bad);
        ferry_options_destroy(&o);
        goto out;
    }
    /* The broker may be away at start: keep trying, rows are safe meanwhile. */
    int backoff = 100;
    ferry_status_t st;
    while (!atomic_load(stop) && (st = ferry_client_new(o, &r->c)) != FERRY_OK) {
        if (st == FERRY_EINVAL) {
            s_log(r->cfg, FERRY_LOG_ERROR, "invalid broker endpoint", "broker=%s wants=\"%s\"",
                  cfg->broker, FY_ENDPOINT_FORMS);
            ferry_options_destroy(&o);
            goto out;
        }
        if (st == FERRY_EAUTH)
            s_log(r->cfg, FERRY_LOG_ERROR, "broker refused this relay's key, retrying",
                  "broker=%s retry_ms=%d detail=\"not in ferryd's users file (a wrong "
                  "password-file, another server key?)\"",
                  cfg->broker, backoff);
        else
            s_log(r->cfg, FERRY_LOG_WARN, "broker unreachable, retrying", "broker=%s retry_ms=%d",
                  cfg->broker, backoff);
        fy_sleep_ms(backoff);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    ferry_options_destroy(&o);
    if (!r->c) {
        rc = 0;
        goto out;
    }
    s_log(r->cfg, FERRY_LOG_INFO, "relay started",
          "source=%s location=%s name=%s position=%llu broker=%s pid=%d", cfg->ops->kind, r->shown,
          r->name, (unsigned long long)r->pos.id, cfg->broker, (int)getpid());
    r->sent_pos = r->done_pos = r->pos;
    r->recorded_at = fy_mono_ms();
    r->status = fr_status_new(cfg, r->name);
    backoff = 50;
    while (!atomic_load(stop)) {
        int b = s_turn(r);
        if (b < 0)
            goto out;
        if (b > 0) {
            ferry_client_poll(r->c, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
        } else {
            backoff = 50;
        }
        s_stats(r, false);
    }
    /* Stopping: what is in flight is confirmed and recorded first. */
    ferry_client_flush(r->c, 10000);
    if (s_retire(r, true) == 0)
        s_record(r, true);
    rc = 0;
out:
    if (r->src) {
        s_stats(r, true);
        cfg->ops->close(&r->src);
    }
    s_set_state(r, rc == 0 ? "stopped" : "failed");
    if (r->status) { /* the last word: stopped or failed */
        r->last_status = 0;
        s_tell_broker(r, fy_mono_ms());
        fr_status_free(&r->status);
    }
    ferry_client_destroy(&r->c);
    if (rc == 0)
        s_log(r->cfg, FERRY_LOG_INFO, "relay stopped", "source=%s name=%s pid=%d", cfg->ops->kind,
              r->name, (int)getpid());
    free(r);
    return rc;
}
