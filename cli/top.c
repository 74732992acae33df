/* SPDX-License-Identifier: MIT */
/*
 * top.c - `ferry top` (top.h): frames of text built from the broker's
 * listings and the relays' reports (`_ferry.relay`, relay/relay_status.h),
 * shown with ncurses or printed once.
 */
#include "top.h"

#include <curses.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_TOPICS_MAX 10000 /* topics in the view */
#define S_SUBS_FOR   200   /* topics (in name order) whose subscriptions are looked at */

typedef struct {
    ferry_topic_info_t t;
    double rate;      /* publishes per second since the last frame; < 0: unknown */
    int subs;         /* -1: not looked at */
    uint64_t backlog; /* the largest of its subscriptions' */
    uint64_t dlq;     /* messages in TOPIC.dlq */
    double key;       /* what the current sort orders by (descending) */
} s_row_t;

#define S_RELAYS_MAX  20 /* relays shown */
#define S_RELAY_TOPIC "_ferry.relay"
#define S_RELAY_READ  1000  /* reports read back, the newest */
#define S_RELAY_STALE 15000 /* ms without a report: shown as stale */

typedef struct {
    char name[FERRY_NAME_MAX + 1]; /* the source's (the report's key) */
    char kind[16], state[16], lag_rows[24], lag_s[24], published[24];
    uint64_t at_ms; /* the report's time */
} s_relay_t;

typedef struct {
    s_row_t *rows; /* the last look, in name order */
    size_t n;
    s_relay_t relays[S_RELAYS_MAX];
    size_t nrelays;
    double prev_at;
    int sort; /* 0 name, 1 rate, 2 messages, 3 backlog, 4 dead letters */
    char head[3][256];
} s_view_t;

static const char *const s_sorts[] = {"name", "rate", "messages", "backlog", "dead letters"};

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
s_by_name(const void *a, const void *b)
{
    return strcmp(((const s_row_t *)a)->t.name, ((const s_row_t *)b)->t.name);
}

static int
s_by_key(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    return x->key < y->key ? 1 : x->key > y->key ? -1 : strcmp(x->t.name, y->t.name);
}

static const s_row_t *
s_find(const s_row_t *rows, size_t n, const char *name)
{
    s_row_t key;
    snprintf(key.t.name, sizeof key.t.name, "%s", name);
    return n ? bsearch(&key, rows, n, sizeof *rows, s_by_name) : NULL;
}

static void
s_human(uint64_t v, char *out, size_t cap)
{
    const char *u[] = {"", "K", "M", "G", "T"};
    double d = (double)v;
    int i = 0;
    while (d >= 1024 && i < 4) {
        d /= 1024;
        i++;
    }
    snprintf(out, cap, i ? "%.1f%s" : "%.0f%s", d, u[i]);
}

/* One look at the broker. @return 0, or a status. */
static const char *
s_header(const ferry_stored_message_t *m, const char *name)
{
    for (size_t i = 0; i < m->header_count; i++)
        if (strcmp(m->headers[i].name, name) == 0)
            return m->headers[i].value;
    return "-";
}

/* The newest report of each relay, from the last S_RELAY_READ of the topic
 * (none there: no relay reports). */
static void
s_gather_relays(ferry_client_t *c, s_view_t *v)
{
    v->nrelays = 0;
    ferry_topic_info_t info;
    if (ferry_client_info(c, S_RELAY_TOPIC, &info) != FERRY_OK || info.messages == 0)
        return;
    uint64_t from = info.last_seq > S_RELAY_READ ? info.last_seq - S_RELAY_READ + 1 : 1;
    from = from < info.first_seq ? info.first_seq : from;
    while (from <= info.last_seq) {
        const ferry_stored_message_t *ms;
        size_t n = 0;
        if (ferry_client_get(c, S_RELAY_TOPIC, from, 500, &ms, &n) != FERRY_OK || n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            const ferry_stored_message_t *m = &ms[i];
            if (!m->key)
                continue;
            size_t k = 0;
            while (k < v->nrelays && strcmp(v->relays[k].name, m->key) != 0)
                k++;
            if (k == v->nrelays) {
                if (k == S_RELAYS_MAX)
                    continue;
                v->nrelays++;
            }
            s_relay_t *r = &v->relays[k];
            snprintf(r->name, sizeof r->name, "%s", m->key);
            snprintf(r->kind, sizeof r->kind, "%s", s_header(m, "kind"));
            snprintf(r->state, sizeof r->state, "%s", s_header(m, "state"));
            snprintf(r->lag_rows, sizeof r->lag_rows, "%s", s_header(m, "lag_rows"));
            snprintf(r->lag_s, sizeof r->lag_s, "%s", s_header(m, "lag_s"));
            snprintf(r->published, sizeof r->published, "%s", s_header(m, "published"));
            r->at_ms = m->timestamp_ms;
        }
        from = ms[n - 1].seq + 1;
    }
}

/* Relay line @p i into @p out; i == SIZE_MAX: the heading. */
static void
s_relay_line(const s_view_t *v, size_t i, char *out, size_t cap)
{
    if (i == SIZE_MAX) {
        snprintf(out, cap, "%-32s %-10s %-8s %10s %8s %12s %9s", "RELAY", "KIND", "STATE",
                 "LAG_ROWS", "LAG_S", "PUBLISHED", "REPORTED");
        return;
    }
    const s_relay_t *r = &v->relays[i];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    uint64_t ago = now > r->at_ms ? (now - r->at_ms) / 1000 : 0;
    char when[24];
    snprintf(when, sizeof when, "%llus ago", (unsigned long long)ago);
    snprintf(out, cap, "%-32.32s %-10s %-8s %10s %8s %12s %9s", r->name, r->kind,
             ago * 1000 > S_RELAY_STALE ? "stale" : r->state, r->lag_rows, r->lag_s, r->published,
             when);
}

static ferry_status_t
s_gather(ferry_client_t *c, s_view_t *v)
{
    ferry_stats_t st;
    ferry_status_t rc = ferry_client_stats(c, &st);
    if (rc)
        return rc;
    s_row_t *rows = calloc(S_TOPICS_MAX, sizeof *rows);
    ferry_topic_info_t *page = calloc(1000, sizeof *page);
    if (!rows || !page) {
        free(rows);
        free(page);
        return FERRY_ENOMEM;
    }
    size_t n = 0;
    char after[FERRY_NAME_MAX + 1] = "";
    bool more = true;
    while (more && n < S_TOPICS_MAX && rc == FERRY_OK) {
        size_t got = 0;
        rc = ferry_client_topics(c, after, page, 1000, &got, &more);
        for (size_t i = 0; rc == FERRY_OK && i < got && n < S_TOPICS_MAX; i++)
            rows[n++] = (s_row_t){.t = page[i], .rate = -1, .subs = -1};
        if (got)
            snprintf(after, sizeof after, "%s", page[got - 1].name);
        more = more && got > 0;
    }
    free(page);
    if (rc) {
        free(rows);
        return rc;
    }
    double now = s_now();
    ferry_sub_listing_t subs[100];
    for (size_t i = 0; i < n; i++) {
        const s_row_t *was = s_find(v->rows, v->n, rows[i].t.name);
        if (was && now > v->prev_at && rows[i].t.last_seq >= was->t.last_seq)
            rows[i].rate = (double)(rows[i].t.last_seq - was->t.last_seq) / (now - v->prev_at);
        char dlq[FERRY_NAME_MAX + 8];
        snprintf(dlq, sizeof dlq, "%s.dlq", rows[i].t.name);
        const s_row_t *d = s_find(rows, n, dlq); /* rows are in name order */
        rows[i].dlq = d ? d->t.messages : 0;
        size_t ns = 0;
        bool sm;
        if (i < S_SUBS_FOR &&
            ferry_client_subs(c, rows[i].t.name, NULL, subs, 100, &ns, &sm) == FERRY_OK) {
            rows[i].subs = (int)ns;
            for (size_t k = 0; k < ns; k++) {
                uint64_t b =
                    subs[k].last_seq >= subs[k].cursor ? subs[k].last_seq - subs[k].cursor + 1 : 0;
                rows[i].backlog = b > rows[i].backlog ? b : rows[i].backlog;
            }
        }
    }
    free(v->rows);
    v->rows = rows;
    v->n = n;
    v->prev_at = now;
    char bytes[16], map[16];
    s_human(st.bytes, bytes, sizeof bytes);
    s_human(st.map_size, map, sizeof map);
    snprintf(v->head[0], sizeof v->head[0],
             "ferry top - up %llus, %llu topics, %llu messages, %s of %s; %llu publishes, "
             "%llu duplicates, %llu errors since start",
             (unsigned long long)(st.uptime_ms / 1000), (unsigned long long)st.topics,
             (unsigned long long)st.messages, bytes, map, (unsigned long long)st.publishes,
             (unsigned long long)st.duplicates, (unsigned long long)st.errors);
    ferry_cluster_t cl;
    v->head[1][0] = '\0';
    if (ferry_client_cluster(c, &cl) == FERRY_OK && cl.leader_id) {
        size_t up = 0;
        for (size_t i = 0; i < cl.nnodes; i++)
            up += cl.nodes[i].up;
        snprintf(v->head[1], sizeof v->head[1],
                 "cluster: node %llu leads, term %llu, %zu of %zu voters heard from, commit %llu",
                 (unsigned long long)cl.leader_id, (unsigned long long)cl.term, up, cl.nnodes,
                 (unsigned long long)cl.commit_index);
    }
    s_gather_relays(c, v);
    snprintf(v->head[2], sizeof v->head[2], "%-32s %-5s %12s %9s %10s %5s %10s %8s", "TOPIC",
             "KIND", "MESSAGES", "BYTES", "PUB/S", "SUBS", "BACKLOG", "DLQ");
    return FERRY_OK;
}

/* The table's line @p i (in the current sort) into @p out. */
static void
s_line(const s_view_t *v, const s_row_t *rows, size_t i, char *out, size_t cap)
{
    const s_row_t *r = &rows[i];
    char bytes[16], rate[24], subs[16];
    s_human(r->t.bytes, bytes, sizeof bytes);
    if (r->rate < 0)
        snprintf(rate, sizeof rate, "-");
    else
        snprintf(rate, sizeof rate, "%.0f", r->rate);
    if (r->subs < 0)
        snprintf(subs, sizeof subs, "-");
    else
        snprintf(subs, sizeof subs, "%d", r->subs);
    (void)v;
    snprintf(out, cap, "%-32.32s %-5s %12llu %9s %10s %5s %10llu %8llu", r->t.name,
             r->t.kind == FERRY_KIND_QUEUE ? "queue" : "topic", (unsigned long long)r->t.messages,
             bytes, rate, subs, (unsigned long long)r->backlog, (unsigned long long)r->dlq);
}

static s_row_t *
s_sorted(const s_view_t *v)
{
    s_row_t *rows = malloc((v->n ? v->n : 1) * sizeof *rows);
    if (!rows)
        return NULL;
    memcpy(rows, v->rows, v->n * sizeof *rows);
    if (v->sort) {
        for (size_t i = 0; i < v->n; i++)
            rows[i].key = v->sort == 1   ? rows[i].rate
                          : v->sort == 2 ? (double)rows[i].t.messages
                          : v->sort == 3 ? (double)rows[i].backlog
                                         : (double)rows[i].dlq;
        qsort(rows, v->n, sizeof *rows, s_by_key);
    }
    return rows;
}

static int
s_print_once(ferry_client_t *c, s_view_t *v)
{
    ferry_status_t st = s_gather(c, v);
    if (st) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st), ferry_client_last_error(c));
        return 3;
    }
    printf("%s\n", v->head[0]);
    if (v->head[1][0])
        printf("%s\n", v->head[1]);
    char line[256];
    if (v->nrelays) {
        s_relay_line(v, SIZE_MAX, line, sizeof line);
        printf("%s\n", line);
        for (size_t i = 0; i < v->nrelays; i++) {
            s_relay_line(v, i, line, sizeof line);
            printf("%s\n", line);
        }
        printf("\n");
    }
    printf("%s\n", v->head[2]);
    for (size_t i = 0; i < v->n; i++) {
        s_line(v, v->rows, i, line, sizeof line);
        printf("%s\n", line);
    }
    return 0;
}

int
fy_cli_top(ferry_client_t *c, bool once, int interval_ms)
{
    s_view_t v = {0};
    if (once) {
        int rc = s_print_once(c, &v);
        free(v.rows);
        return rc;
    }
    if (!initscr()) {
        fprintf(stderr, "ferry: top needs a terminal (or --once)\n");
        return 1;
    }
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    timeout(interval_ms);
    int rc = 0;
    char err[300] = "";
    for (;;) {
        ferry_status_t st = s_gather(c, &v);
        if (st)
            snprintf(err, sizeof err, "%s: %s (retrying)", ferry_errname(st),
                     ferry_client_last_error(c));
        else
            err[0] = '\0';
        erase();
        int y = 0;
        mvprintw(y++, 0, "%.*s", COLS, v.head[0]);
        if (v.head[1][0])
            mvprintw(y++, 0, "%.*s", COLS, v.head[1]);
        mvprintw(y++, 0, "sorted by %s - s: sort, q: quit%s%s", s_sorts[v.sort],
                 err[0] ? " - " : "", err);
        char line[256];
        if (v.nrelays) {
            s_relay_line(&v, SIZE_MAX, line, sizeof line);
            attron(A_REVERSE);
            mvprintw(y++, 0, "%-*.*s", COLS, COLS, line);
            attroff(A_REVERSE);
            for (size_t i = 0; i < v.nrelays && y < LINES; i++) {
                s_relay_line(&v, i, line, sizeof line);
                mvprintw(y++, 0, "%.*s", COLS, line);
            }
            y++;
        }
        attron(A_REVERSE);
        mvprintw(y++, 0, "%-*.*s", COLS, COLS, v.head[2]);
        attroff(A_REVERSE);
        s_row_t *rows = s_sorted(&v);
        for (size_t i = 0; rows && i < v.n && y < LINES; i++, y++) {
            s_line(&v, rows, i, line, sizeof line);
            mvprintw(y, 0, "%.*s", COLS, line);
        }
        free(rows);
        refresh();
        int ch = getch();
        if (ch == 'q' || ch == 'Q' || ch == 27)
            break;
        if (ch == 's' || ch == 'S')
            v.sort = (v.sort + 1) % (int)(sizeof s_sorts / sizeof s_sorts[0]);
    }
    endwin();
    free(v.rows);
    return rc;
}
