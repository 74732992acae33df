/* SPDX-License-Identifier: MIT */
/*
 * metrics.c - see metrics.h.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define S_STALE_MS 5000 /* no snapshot for this long: the loop is stuck */

struct fy_metrics {
    struct MHD_Daemon *d;
    unsigned port;
    pthread_mutex_t mu;
    fy_metrics_snapshot_t snap; /* guarded by mu */
    long long snap_at;          /* fy_mono_ms of the last update; 0: none yet */
    char auth[160];             /* "Bearer <token>" that /metrics wants; "" open */
    char *topic_text;           /* per-topic lines of the last snapshot (guarded by mu) */
    size_t topic_len, topic_cap;
};

/* Compares without an early exit (the time says nothing of the token). */
static bool
s_same(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

/* The Prometheus text exposition of @p s into buf. */
/* A cluster's node: where it stands, and (on the leader) each voter's lag. */
static size_t
s_format_cluster(const fy_metrics_snapshot_t *s, char *buf, size_t cap)
{
    const fy_raftlog_state_t *r = &s->cl.raft;
    size_t n = (size_t)snprintf(
        buf, cap,
        "# HELP ferry_cluster_role This node's role: 0 unavailable, 1 follower, 2 candidate, "
        "3 leader.\n"
        "# TYPE ferry_cluster_role gauge\nferry_cluster_role %d\n"
        "# HELP ferry_cluster_leader 1 while this node leads and has applied every entry "
        "before its term (it takes requests).\n"
        "# TYPE ferry_cluster_leader gauge\nferry_cluster_leader %d\n"
        "# HELP ferry_cluster_term The current Raft term.\n"
        "# TYPE ferry_cluster_term gauge\nferry_cluster_term %llu\n"
        "# HELP ferry_cluster_elections_total Terms this node saw begin since it started.\n"
        "# TYPE ferry_cluster_elections_total counter\nferry_cluster_elections_total %llu\n"
        "# HELP ferry_cluster_commit_index The last entry known to be on a quorum's disks.\n"
        "# TYPE ferry_cluster_commit_index gauge\nferry_cluster_commit_index %llu\n"
        "# HELP ferry_cluster_applied_index The last entry applied to this node's store.\n"
        "# TYPE ferry_cluster_applied_index gauge\nferry_cluster_applied_index %llu\n"
        "# HELP ferry_cluster_last_index The last entry in this node's log.\n"
        "# TYPE ferry_cluster_last_index gauge\nferry_cluster_last_index %llu\n"
        "# HELP ferry_cluster_snapshots_total Snapshots this node took since start.\n"
        "# TYPE ferry_cluster_snapshots_total counter\nferry_cluster_snapshots_total %llu\n"
        "# HELP ferry_cluster_snapshot_seconds How long the last snapshot took.\n"
        "# TYPE ferry_cluster_snapshot_seconds gauge\nferry_cluster_snapshot_seconds %.6f\n"
        "# HELP ferry_cluster_not_leader_total Requests answered ENOTLEADER or ELEADER_LOST.\n"
        "# TYPE ferry_cluster_not_leader_total counter\nferry_cluster_not_leader_total %llu\n",
        (int)r->role, r->ready ? 1 : 0, (unsigned long long)r->term,
        (unsigned long long)r->elections, (unsigned long long)r->commit_index,
        (unsigned long long)r->applied_index, (unsigned long long)r->last_index,
        (unsigned long long)s->cl.snapshots, (double)s->cl.snapshot_us / 1e6,
        (unsigned long long)s->not_leader);
    if (n >= cap || r->role != FY_RAFTLOG_LEADER)
        return n;
    static const char *const names[2] = {"ferry_cluster_lag_entries", "ferry_cluster_node_up"};
    static const char *const helps[2] = {
        "Entries of the leader's log a voter does not have yet (on the leader).",
        "1 if the leader heard from the voter within an election timeout."};
    for (int m = 0; m < 2 && n < cap; m++) {
        n += (size_t)snprintf(buf + n, cap - n, "# HELP %s %s\n# TYPE %s gauge\n", names[m],
                              helps[m], names[m]);
        for (size_t i = 0; i < r->nnodes && n < cap; i++) {
            const fy_raftlog_node_t *v = &r->nodes[i];
            uint64_t val = m == 0 ? r->last_index - v->match_index : (uint64_t)v->recent;
            n += (size_t)snprintf(buf + n, cap - n, "%s{node=\"%llu\"} %llu\n", names[m],
                                  (unsigned long long)v->id, (unsigned long long)val);
        }
    }
    return n;
}

static size_t
s_format(const fy_metrics_snapshot_t *s, char *buf, size_t cap)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
#define S_ROW(n, t, h, f) {n, t, h, offsetof(fy_stats_t, f)}
        S_ROW("ferry_topics", "gauge", "Topics and queues stored.", topics),
        S_ROW("ferry_messages", "gauge", "Messages stored.", messages),
        S_ROW("ferry_stored_bytes", "gauge", "Bytes of messages stored.", bytes),
        S_ROW("ferry_publishes_total", "counter", "Messages stored since start.", publishes),
        S_ROW("ferry_duplicates_total", "counter",
              "Publishes answered from the dedupe window since start.", duplicates),
        S_ROW("ferry_commits_total", "counter", "Durable write transactions since start.", commits),
        S_ROW("ferry_requests_total", "counter", "Requests handled since start.", requests),
        S_ROW("ferry_errors_total", "counter", "Error replies sent since start.", errors),
        S_ROW("ferry_map_size_bytes", "gauge", "Storage limit (LMDB map size).", map_size),
        S_ROW("ferry_map_used_bytes", "gauge", "Storage in use.", map_used),
#undef S_ROW
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && n < cap; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&s->stats + rows[i].off, sizeof v);
        n += (size_t)snprintf(buf + n, cap - n, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n",
                              rows[i].name, rows[i].help, rows[i].name, rows[i].type, rows[i].name,
                              (unsigned long long)v);
    }
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n,
                              "# HELP ferry_consumers Push consumers connected.\n"
                              "# TYPE ferry_consumers gauge\nferry_consumers %llu\n"
                              "# HELP ferry_uptime_seconds Seconds since the broker started.\n"
                              "# TYPE ferry_uptime_seconds gauge\nferry_uptime_seconds %.3f\n"
                              "# HELP ferry_ids_reused_total Publishes refused since start: their "
                              "message id held a different message (EIDREUSED).\n"
                              "# TYPE ferry_ids_reused_total counter\nferry_ids_reused_total %llu\n"
                              "# HELP ferry_disk_total_bytes Size of the data directory's file "
                              "system.\n"
                              "# TYPE ferry_disk_total_bytes gauge\nferry_disk_total_bytes %llu\n"
                              "# HELP ferry_disk_free_bytes Free space of the data directory's "
                              "file system.\n"
                              "# TYPE ferry_disk_free_bytes gauge\nferry_disk_free_bytes %llu\n"
                              "# HELP ferry_storage_full 1 while the disk is full: publishes "
                              "refused, reads, acks and deletes go on.\n"
                              "# TYPE ferry_storage_full gauge\nferry_storage_full %d\n"
                              "# HELP ferry_replies_dropped_total Replies that could not be queued "
                              "to their peer (gone, or not reading).\n"
                              "# TYPE ferry_replies_dropped_total counter\n"
                              "ferry_replies_dropped_total %llu\n",
                              (unsigned long long)s->consumers, (double)s->stats.uptime_ms / 1000.0,
                              (unsigned long long)s->ids_reused, (unsigned long long)s->disk_total,
                              (unsigned long long)s->disk_free, (int)s->disk_full,
                              (unsigned long long)s->replies_dropped);
    if (n < cap)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ferry_replies_held_total Replies held since start because their client did "
            "not read (sent in order once it reads).\n"
            "# TYPE ferry_replies_held_total counter\nferry_replies_held_total %llu\n"
            "# HELP ferry_replies_held Replies held now for clients that do not read.\n"
            "# TYPE ferry_replies_held gauge\nferry_replies_held %llu\n"
            "# HELP ferry_replies_held_bytes Bytes of the replies held now.\n"
            "# TYPE ferry_replies_held_bytes gauge\nferry_replies_held_bytes %llu\n"
            "# HELP ferry_requests_parked_total Requests parked since start: their client did "
            "not read its replies (back-pressure).\n"
            "# TYPE ferry_requests_parked_total counter\nferry_requests_parked_total %llu\n"
            "# HELP ferry_requests_parked Requests waiting now for their client to read.\n"
            "# TYPE ferry_requests_parked gauge\nferry_requests_parked %llu\n"
            "# HELP ferry_requests_refused_total Requests refused since start: their client did "
            "not read and had too many waiting.\n"
            "# TYPE ferry_requests_refused_total counter\nferry_requests_refused_total %llu\n"
            "# HELP ferry_slow_peers Clients with replies held or requests parked now.\n"
            "# TYPE ferry_slow_peers gauge\nferry_slow_peers %llu\n",
            (unsigned long long)s->replies_held, (unsigned long long)s->peers.held_replies,
            (unsigned long long)s->peers.held_bytes, (unsigned long long)s->requests_parked,
            (unsigned long long)s->peers.parked_requests, (unsigned long long)s->requests_refused,
            (unsigned long long)s->peers.peers);
    if (n < cap)
        n += fy_histo_format(&s->commit_us, "ferry_commit_seconds",
                             "Group commits: from the start of the batch to on disk (every "
                             "confirm of the batch waited this long).",
                             1e6, buf + n, cap - n);
    if (n < cap)
        n += fy_histo_format(&s->batch_reqs, "ferry_batch_requests",
                             "Requests applied per group commit.", 1, buf + n, cap - n);
    if (n < cap)
        n += (size_t)snprintf(buf + n, cap - n,
                              "# HELP ferry_slow_batches_total Group commits slower than "
                              "--slow-batch-ms since start.\n"
                              "# TYPE ferry_slow_batches_total counter\n"
                              "ferry_slow_batches_total %llu\n",
                              (unsigned long long)s->slow_batches);
    if (n < cap)
        n += fy_histo_format(&s->checkpoint_us, "ferry_checkpoint_seconds",
                             "Checkpoints: LMDB commits of what the write-ahead log holds "
                             "(requests wait meanwhile).",
                             1e6, buf + n, cap - n);
    if (n < cap)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ferry_checkpoints_forced_total Checkpoints made at once: a batch did not fit "
            "the write-ahead log, or the map was nearly full.\n"
            "# TYPE ferry_checkpoints_forced_total counter\nferry_checkpoints_forced_total %llu\n"
            "# HELP ferry_wal_bytes Bytes of the write-ahead log holding batches not yet "
            "checkpointed.\n"
            "# TYPE ferry_wal_bytes gauge\nferry_wal_bytes %llu\n"
            "# HELP ferry_wal_size_bytes Size of the write-ahead log file.\n"
            "# TYPE ferry_wal_size_bytes gauge\nferry_wal_size_bytes %llu\n"
            "# HELP ferry_wal_lsn Sequence number of the newest log record.\n"
            "# TYPE ferry_wal_lsn counter\nferry_wal_lsn %llu\n",
            (unsigned long long)s->wal.checkpoints_full, (unsigned long long)s->wal.wal_used,
            (unsigned long long)s->wal.wal_size, (unsigned long long)s->wal.lsn);
    if (n < cap && s->users)
        n += (size_t)snprintf(
            buf + n, cap - n,
            "# HELP ferry_logins_total CURVE handshakes the users file let in (ok) or refused.\n"
            "# TYPE ferry_logins_total counter\n"
            "ferry_logins_total{result=\"ok\"} %llu\nferry_logins_total{result=\"refused\"} %llu\n"
            "# HELP ferry_forbidden_total Requests refused with EFORBIDDEN: the user may not.\n"
            "# TYPE ferry_forbidden_total counter\nferry_forbidden_total %llu\n"
            "# HELP ferry_rate_limited_total Publishes refused with ERATE: the user was over "
            "its max-publish-rate.\n"
            "# TYPE ferry_rate_limited_total counter\nferry_rate_limited_total %llu\n"
            "# HELP ferry_over_connections_total Requests refused with ETOO_MANY on a "
            "connection beyond its user's max-connections.\n"
            "# TYPE ferry_over_connections_total counter\nferry_over_connections_total %llu\n",
            (unsigned long long)s->logins_ok, (unsigned long long)s->logins_refused,
            (unsigned long long)s->forbidden, (unsigned long long)s->rate_limited,
            (unsigned long long)s->over_connections);
    if (n < cap && s->cluster)
        n += s_format_cluster(s, buf + n, cap - n);
    return n < cap ? n : cap;
}

static enum MHD_Result
s_reply(struct MHD_Connection *conn, unsigned status, const char *type, const char *body,
        size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result
s_handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
         const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)upload_size, (void)state;
    fy_metrics_t *m = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
    pthread_mutex_lock(&m->mu);
    fy_metrics_snapshot_t s = m->snap;
    long long at = m->snap_at;
    size_t tlen = strcmp(url, "/metrics") == 0 ? m->topic_len : 0;
    char *topics = tlen ? malloc(tlen) : NULL;
    if (topics)
        memcpy(topics, m->topic_text, tlen);
    else
        tlen = 0;
    pthread_mutex_unlock(&m->mu);
    if (strcmp(url, "/metrics") == 0) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (m->auth[0] && (!auth || !s_same(auth, m->auth))) {
            free(topics);
            struct MHD_Response *r = MHD_create_response_from_buffer(
                23, (void *)"bearer token required\n", MHD_RESPMEM_PERSISTENT);
            if (!r)
                return MHD_NO;
            MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
            enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_UNAUTHORIZED, r);
            MHD_destroy_response(r);
            return ok;
        }
        size_t cap = 16384 + tlen;
        char *buf = malloc(cap);
        if (!buf) {
            free(topics);
            return MHD_NO;
        }
        size_t n = s_format(&s, buf, 16384);
        if (tlen)
            memcpy(buf + n, topics, tlen);
        free(topics);
        enum MHD_Result ok = s_reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", buf, n + tlen);
        free(buf);
        return ok;
    }
    if (strcmp(url, "/health") == 0) {
        const char *why = at == 0                          ? "starting\n"
                          : fy_mono_ms() - at > S_STALE_MS ? "broker loop stalled\n"
                          : !s.storage_ok                  ? "storage failed\n"
                          : s.disk_full                    ? "storage full: publishes refused\n"
                                                           : NULL;
        return why ? s_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", why, strlen(why))
                   : s_reply(conn, MHD_HTTP_OK, "text/plain", "ok\n", 3);
    }
    return s_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", "/metrics or /health\n", 20);
}

fy_status_t
fy_metrics_start(const char *addr, const char *token, fy_metrics_t **out, fy_err_t *err)
{
    *out = NULL;
    char host[64];
    unsigned port;
    const char *colon = addr ? strrchr(addr, ':') : NULL;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    if (!colon || (size_t)(colon - addr) >= sizeof host || sscanf(colon + 1, "%u", &port) != 1 ||
        port > 65535)
        return fy_err_set(err, FERRY_EINVAL, "metrics address '%s' is not host:port",
                          addr ? addr : "");
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return fy_err_set(err, FERRY_EINVAL, "metrics host '%s' is not an IPv4 address", host);
    sin.sin_port = htons((uint16_t)port);
    fy_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    if (token && *token)
        snprintf(m->auth, sizeof m->auth, "Bearer %s", token);
    m->d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, s_handle, m,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_CONNECTION_LIMIT,
                         64u, MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->d) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return fy_err_set(err, FERRY_EIO, "cannot serve metrics on %s (port in use?)", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
    m->port = info ? info->port : port;
    *out = m;
    return FERRY_OK;
}

unsigned
fy_metrics_port(const fy_metrics_t *m)
{
    return m ? m->port : 0;
}

void
fy_metrics_update(fy_metrics_t *m, const fy_metrics_snapshot_t *s)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->snap = *s;
    m->snap_at = fy_mono_ms();
    /* The per-topic text is the broker's: copied while the lock is held. */
    if (s->topic_len > m->topic_cap) {
        char *grown = realloc(m->topic_text, s->topic_len);
        if (grown) {
            m->topic_text = grown;
            m->topic_cap = s->topic_len;
        }
    }
    m->topic_len = s->topic_len <= m->topic_cap ? s->topic_len : 0;
    if (m->topic_len)
        memcpy(m->topic_text, s->topic_text, m->topic_len);
    m->snap.topic_text = NULL;
    pthread_mutex_unlock(&m->mu);
}

void
fy_metrics_stop(fy_metrics_t **mp)
{
    if (!mp || !*mp)
        return;
    fy_metrics_t *m = *mp;
    MHD_stop_daemon(m->d);
    pthread_mutex_destroy(&m->mu);
    free(m->topic_text);
    free(m);
    *mp = NULL;
}
