/* SPDX-License-Identifier: MIT */
/*
 * relay_metrics.c - ferry-relay's /metrics and /health (relay_metrics.h).
 */
#include "relay_metrics.h"
#include "textout.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    fr_metrics_t *m;
    char name[256], kind[16], state[16];
    fr_relay_report_t rep; /* its strings point at the fields above */
    bool seen;
} s_slot_t;

struct fr_metrics {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t mu;
    size_t n;
    s_slot_t *slots;
};

void *
fr_metrics_slot(fr_metrics_t *m, size_t i)
{
    return i < m->n ? &m->slots[i] : NULL;
}

void
fr_metrics_report(void *slot, const fr_relay_report_t *rep)
{
    s_slot_t *s = slot;
    if (!s)
        return;
    pthread_mutex_lock(&s->m->mu);
    s->rep = *rep;
    snprintf(s->name, sizeof s->name, "%s", rep->name ? rep->name : "");
    snprintf(s->kind, sizeof s->kind, "%s", rep->kind ? rep->kind : "");
    snprintf(s->state, sizeof s->state, "%s", rep->state ? rep->state : "");
    s->seen = true;
    pthread_mutex_unlock(&s->m->mu);
}

/* Under mu. */
static void
s_render(fr_metrics_t *m, fy_textout_t *o)
{
    static const struct {
        const char *name, *type, *help;
    } f[] = {
        {"ferry_relay_published_total", "counter", "Rows published (confirmed) since start."},
        {"ferry_relay_duplicates_total", "counter",
         "Rows the broker already had (confirmed as duplicates: sent again after a restart)."},
        {"ferry_relay_dead_lettered_total", "counter",
         "Rows the broker refused for good, published to the dead-letter topic."},
        {"ferry_relay_retries_total", "counter",
         "Times rows could not reach the broker and were sent again."},
        {"ferry_relay_lag_rows", "gauge",
         "Rows not yet published (pg-logical: 0, see ferry_relay_lag_bytes)."},
        {"ferry_relay_lag_bytes", "gauge",
         "pg-logical: bytes of the database's log its slot has not confirmed."},
        {"ferry_relay_lag_seconds", "gauge",
         "Since the oldest row not yet published was written (0: none waits)."},
        {"ferry_relay_reports_failed_total", "counter",
         "Reports to the broker's _ferry.relay topic refused or unanswered since start."},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        fy_textout(o, "# HELP %s %s\n# TYPE %s %s\n", f[k].name, f[k].help, f[k].name, f[k].type);
        for (size_t i = 0; i < m->n; i++) {
            const s_slot_t *s = &m->slots[i];
            if (!s->seen)
                continue;
            const fr_relay_report_t *r = &s->rep;
            if (k == 6)
                fy_textout(o, "%s{source=\"%s\"} %.3f\n", f[k].name, s->name, r->lag_s);
            else
                fy_textout(o, "%s{source=\"%s\"} %llu\n", f[k].name, s->name,
                           (unsigned long long)(k == 0   ? r->published
                                                : k == 1 ? r->duplicates
                                                : k == 2 ? r->dead_lettered
                                                : k == 3 ? r->retries
                                                : k == 4 ? r->lag_rows
                                                : k == 5 ? r->lag_bytes
                                                         : r->reports_failed));
        }
    }
    fy_textout(
        o, "# HELP ferry_relay_state 1 for the state each source is in: opening, waiting (another "
           "relay of its name runs), running, stuck (rows cannot reach the broker), stopped, "
           "failed.\n# TYPE ferry_relay_state gauge\n");
    for (size_t i = 0; i < m->n; i++)
        if (m->slots[i].seen)
            fy_textout(o, "ferry_relay_state{source=\"%s\",kind=\"%s\",state=\"%s\"} 1\n",
                       m->slots[i].name, m->slots[i].kind, m->slots[i].state);
}

static enum MHD_Result
s_reply(struct MHD_Connection *conn, unsigned status, const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    fr_metrics_t *m = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n", 9);
    if (strcmp(url, "/metrics") == 0) {
        fy_textout_t o = {malloc(65536), 65536, 0};
        if (!o.buf)
            return MHD_NO;
        pthread_mutex_lock(&m->mu);
        s_render(m, &o);
        pthread_mutex_unlock(&m->mu);
        enum MHD_Result ok = s_reply(conn, MHD_HTTP_OK, o.buf, o.n);
        free(o.buf);
        return ok;
    }
    if (strcmp(url, "/health") == 0) {
        /* 200 while every source's thread runs (relaying, waiting its turn,
         * or stuck behind a broker away: ferry_relay_lag_seconds says how
         * long); 503 once one is not open yet, failed or stopped. */
        char why[400] = "";
        pthread_mutex_lock(&m->mu);
        for (size_t i = 0; i < m->n && !why[0]; i++) {
            const s_slot_t *s = &m->slots[i];
            if (!s->seen || (strcmp(s->state, "running") && strcmp(s->state, "waiting") &&
                             strcmp(s->state, "stuck")))
                snprintf(why, sizeof why, "source %s: %s\n", s->seen ? s->name : "?",
                         s->seen ? s->state : "opening");
        }
        pthread_mutex_unlock(&m->mu);
        return why[0] ? s_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, why, strlen(why))
                      : s_reply(conn, MHD_HTTP_OK, "ok\n", 3);
    }
    return s_reply(conn, MHD_HTTP_NOT_FOUND, "/metrics or /health\n", 20);
}

fy_status_t
fr_metrics_start(const char *addr, size_t nsources, fr_metrics_t **out, fy_err_t *err)
{
    *out = NULL;
    char host[64];
    unsigned port;
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    if (!colon || (size_t)(colon - addr) >= sizeof host || sscanf(colon + 1, "%u", &port) != 1 ||
        port > 65535)
        return fy_err_set(err, FERRY_EINVAL, "--metrics %s: not host:port", addr ? addr : "");
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return fy_err_set(err, FERRY_EINVAL, "--metrics %s: an IPv4 address and a port", addr);
    sin.sin_port = htons((uint16_t)port);
    fr_metrics_t *m = calloc(1, sizeof *m);
    if (!m || !(m->slots = calloc(nsources ? nsources : 1, sizeof *m->slots))) {
        free(m);
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    }
    m->n = nsources;
    for (size_t i = 0; i < nsources; i++)
        m->slots[i].m = m;
    pthread_mutex_init(&m->mu, NULL);
    m->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_handle, m,
                            MHD_OPTION_SOCK_ADDR, &sin, MHD_OPTION_END);
    if (!m->d) {
        pthread_mutex_destroy(&m->mu);
        free(m->slots);
        free(m);
        return fy_err_set(err, FERRY_EIO, "cannot serve metrics on %s (address in use?)", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : port;
    *out = m;
    return FERRY_OK;
}

unsigned
fr_metrics_port(const fr_metrics_t *m)
{
    return m->port;
}

void
fr_metrics_stop(fr_metrics_t **mp)
{
    if (!mp || !*mp)
        return;
    fr_metrics_t *m = *mp;
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->mu);
    free(m->slots);
    free(m);
    *mp = NULL;
}
