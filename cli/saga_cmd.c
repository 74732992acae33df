/* SPDX-License-Identifier: MIT */
/*
 * saga_cmd.c - `ferry saga show|cancel|retry` (saga_cmd.h).
 */
#include "saga_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_EXIT_REFUSED 1
#define S_EXIT_USAGE   2

/* One transition per line: when, what happened, where the saga went. */
static int
s_show(ferry_client_t *c, const char *def, const char *id)
{
    char topic[FERRY_NAME_MAX + 1];
    if ((size_t)snprintf(topic, sizeof topic, "_saga.%s", def) >= sizeof topic)
        return S_EXIT_USAGE;
    ferry_key_iter_t *it = NULL;
    ferry_status_t st = ferry_client_read_key(c, topic, id, 0, 0, &it);
    const ferry_stored_message_t *m;
    int n = 0;
    while (st == FERRY_OK && (st = ferry_key_iter_next(it, &m)) == FERRY_OK && m) {
        if (n++ == 0)
            printf("%-24s  %-11s  %-12s  %-16s  %-7s  %s\n", "TIME", "EVENT", "STATE", "STEP",
                   "ATTEMPT", "RESULT OR REASON");
        time_t secs = (time_t)(m->timestamp_ms / 1000);
        struct tm tm;
        char when[32] = "";
        if (gmtime_r(&secs, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        /* what a step gave on its "ok", else why it compensates */
        const char *reason = ferry_msg_header(m, "ferry-saga-result");
        if (!reason || !*reason)
            reason = ferry_msg_header(m, "ferry-saga-reason");
        printf(
            "%s.%03uZ  %-11s  %-12s  %-16s  %-7s  %s\n", when, (unsigned)(m->timestamp_ms % 1000),
            ferry_msg_header(m, "event_type") ? ferry_msg_header(m, "event_type") : "?",
            ferry_msg_header(m, "ferry-saga-state") ? ferry_msg_header(m, "ferry-saga-state") : "?",
            ferry_msg_header(m, "ferry-saga-step") ? ferry_msg_header(m, "ferry-saga-step") : "?",
            ferry_msg_header(m, "ferry-saga-attempt") ? ferry_msg_header(m, "ferry-saga-attempt")
                                                      : "?",
            reason ? reason : "");
    }
    ferry_key_iter_destroy(&it);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
                st == FERRY_ENOTFOUND ? "no saga of that definition was published"
                                      : ferry_client_last_error(c));
        return S_EXIT_REFUSED;
    }
    if (n == 0) {
        fprintf(stderr, "ferry: no transition of saga %s in %s\n", id, topic);
        return S_EXIT_REFUSED;
    }
    return 0;
}

/* The newest transition of one saga, as `list` keeps it. */
typedef struct {
    char id[201], state[16], step[64], reason[96];
    uint64_t seq, ts_ms;
} s_last_t;

static int
s_by_id(const void *a, const void *b)
{
    return strcmp(((const s_last_t *)a)->id, ((const s_last_t *)b)->id);
}

static int
s_newest_first(const void *a, const void *b)
{
    const s_last_t *x = a, *y = b;
    return x->ts_ms < y->ts_ms ? 1 : x->ts_ms > y->ts_ms ? -1 : strcmp(x->id, y->id);
}

/* A duration "90s", "10m", "2h", "1d" or "500ms" in ms; -1 if it is none. */
static long long
s_duration(const char *text)
{
    char *end;
    long long n = strtoll(text, &end, 10);
    if (end == text || n < 0)
        return -1;
    static const struct {
        const char *unit;
        long long ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0)
            return n * units[i].ms;
    return -1;
}

/* Where each saga of @p def stands, from its newest transition on _saga.DEF
 * (a scan of the topic: fine for an operator, not a hot path); with
 * @p state, only those in it; with @p older_ms > 0, only those whose newest
 * transition is at least that old (stuck ones). */
static int
s_list(ferry_client_t *c, const char *def, const char *state, long long older_ms)
{
    char topic[FERRY_NAME_MAX + 1];
    if ((size_t)snprintf(topic, sizeof topic, "_saga.%s", def) >= sizeof topic)
        return S_EXIT_USAGE;
    s_last_t *all = NULL;
    size_t n = 0, cap = 0;
    uint64_t from = 1;
    ferry_status_t st;
    for (;;) {
        const ferry_stored_message_t *msgs;
        size_t got = 0;
        if ((st = ferry_client_get(c, topic, from, 1000, &msgs, &got)) != FERRY_OK || got == 0)
            break;
        for (size_t i = 0; i < got; i++) {
            const ferry_stored_message_t *m = &msgs[i];
            from = m->seq + 1;
            if (!m->key)
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 1024;
                s_last_t *grown = realloc(all, ncap * sizeof *all);
                if (!grown) {
                    free(all);
                    fprintf(stderr, "ferry: out of memory\n");
                    return S_EXIT_REFUSED;
                }
                all = grown;
                cap = ncap;
            }
            s_last_t *e = &all[n++];
            const char *sv = ferry_msg_header(m, "ferry-saga-state"),
                       *sp = ferry_msg_header(m, "ferry-saga-step"),
                       *rv = ferry_msg_header(m, "ferry-saga-reason");
            snprintf(e->id, sizeof e->id, "%s", m->key);
            snprintf(e->state, sizeof e->state, "%s", sv ? sv : "?");
            snprintf(e->step, sizeof e->step, "%s", sp ? sp : "?");
            snprintf(e->reason, sizeof e->reason, "%s", rv ? rv : "");
            e->seq = m->seq;
            e->ts_ms = m->timestamp_ms;
        }
    }
    if (st != FERRY_OK) {
        free(all);
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
                st == FERRY_ENOTFOUND ? "no saga of that definition was published"
                                      : ferry_client_last_error(c));
        return S_EXIT_REFUSED;
    }
    /* The newest per saga: grouped by id, the highest sequence kept. */
    qsort(all, n, sizeof *all, s_by_id);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(all[k - 1].id, all[i].id) == 0) {
            if (all[i].seq > all[k - 1].seq)
                all[k - 1] = all[i];
        } else {
            all[k++] = all[i];
        }
    }
    qsort(all, k, sizeof *all, s_newest_first);
    size_t shown = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    for (size_t i = 0; i < k; i++) {
        if (state && strcmp(all[i].state, state) != 0)
            continue;
        if (older_ms > 0 && all[i].ts_ms + (uint64_t)older_ms > now_ms)
            continue;
        if (shown++ == 0)
            printf("%-24s  %-12s  %-16s  %-24s  %s\n", "SAGA", "STATE", "STEP", "SINCE", "REASON");
        time_t secs = (time_t)(all[i].ts_ms / 1000);
        struct tm tm;
        char when[32] = "";
        if (gmtime_r(&secs, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-24s  %-12s  %-16s  %-24s  %s\n", all[i].id, all[i].state, all[i].step, when,
               all[i].reason);
    }
    printf("%zu saga%s%s%s\n", shown, shown == 1 ? "" : "s", state ? " " : "", state ? state : "");
    free(all);
    return 0;
}

/* Publishes a person's control message to orchestrator @p orch. */
static int
s_control(ferry_client_t *c, const char *what, const char *orch, const char *id, const char *reason)
{
    char topic[FERRY_NAME_MAX + 1];
    if ((size_t)snprintf(topic, sizeof topic, "saga.%s.replies", orch) >= sizeof topic)
        return S_EXIT_USAGE;
    ferry_header_t h[] = {{"ferry-saga-control", what}, {"ferry-saga-id", id}};
    ferry_message_t m = {
        .data = reason, .len = reason ? strlen(reason) : 0, .headers = h, .header_count = 2};
    ferry_status_t st = ferry_client_publish(c, topic, &m, NULL);
    if (st != FERRY_OK) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st),
                st == FERRY_ENOTFOUND ? "no such orchestrator (its reply topic is missing)"
                                      : ferry_client_last_error(c));
        return S_EXIT_REFUSED;
    }
    printf("asked orchestrator %s to %s saga %s (ferry saga show DEF %s follows it)\n", orch, what,
           id, id);
    return 0;
}

int
fy_cli_saga(ferry_client_t *c, int npos, char **pos)
{
    if (npos >= 3 && strcmp(pos[0], "show") == 0 && npos == 3)
        return s_show(c, pos[1], pos[2]);
    if (npos >= 2 && npos <= 4 && strcmp(pos[0], "list") == 0) {
        /* list DEF [STATE|any] [OLDER_THAN] */
        const char *state = npos >= 3 && strcmp(pos[2], "any") != 0 ? pos[2] : NULL;
        long long older = npos == 4 ? s_duration(pos[3]) : 0;
        if (older >= 0)
            return s_list(c, pos[1], state, older);
        fprintf(stderr, "ferry: %s is not a duration (90s, 10m, 2h, 1d)\n", pos[3]);
        return S_EXIT_USAGE;
    }
    if (npos >= 3 && strcmp(pos[0], "cancel") == 0 && npos <= 4)
        return s_control(c, "cancel", pos[1], pos[2], npos == 4 ? pos[3] : NULL);
    if (npos == 3 && strcmp(pos[0], "retry") == 0)
        return s_control(c, "resume", pos[1], pos[2], NULL);
    fprintf(stderr, "ferry: usage: ferry saga list DEF [STATE|any] [OLDER_THAN] | show DEF ID | "
                    "cancel ORCH ID [REASON] | retry ORCH ID\n");
    return S_EXIT_USAGE;
}
