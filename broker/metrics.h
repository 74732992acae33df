/* SPDX-License-Identifier: MIT */
/*
 * metrics.h - ferryd's HTTP endpoint for monitoring (docs/operations.md):
 * GET /metrics in the Prometheus text format and GET /health, served by
 * libmicrohttpd (Debian libmicrohttpd-dev) in its own thread. The broker's
 * loop hands it a snapshot twice a second; the HTTP thread never touches
 * the broker's state.
 */
#ifndef FY_METRICS_H
#define FY_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "histo.h"
#include "peerq.h"
#include "store.h"

typedef struct fy_metrics fy_metrics_t;

/** What the broker reports. */
typedef struct fy_metrics_snapshot {
    fy_stats_t stats;
    uint64_t consumers;             /* push consumers connected */
    uint64_t ids_reused;            /* publishes refused: their id held a different message */
    uint64_t replies_dropped;       /* replies that could not be queued to their peer */
    uint64_t replies_held;          /* replies held since start: a peer's pipe was full */
    uint64_t requests_parked;       /* requests parked since start: their peer did not read */
    uint64_t requests_refused;      /* requests refused: too many parked for their peer */
    fy_peerq_stats_t peers;         /* held and parked now */
    uint64_t disk_total, disk_free; /* the data directory's file system, bytes */
    bool disk_full;                 /* writes that add data are refused */
    fy_histo_t commit_us;           /* batch start to durable commit, microseconds */
    fy_histo_t batch_reqs;          /* requests per group commit */
    uint64_t slow_batches;          /* batches slower than --slow-batch-ms since start */
    fy_histo_t checkpoint_us;       /* checkpoints (LMDB commits behind the log), microseconds */
    fy_store_wal_stats_t wal;       /* the write-ahead log */
    bool users;                     /* --users: the counters below mean something */
    uint64_t logins_ok, logins_refused; /* handshakes the ZAP handler let in / refused */
    uint64_t forbidden;                 /* requests refused EFORBIDDEN */
    uint64_t rate_limited;              /* publishes refused ERATE */
    uint64_t over_connections;          /* requests refused: the user's max-connections */
    bool storage_ok;                    /* the store is usable (not spoiled by an I/O error) */
    bool cluster;                       /* a node of a cluster: the fields below */
    fy_store_cluster_stats_t cl;        /* role, term, indexes, voters, snapshots */
    uint64_t not_leader;                /* requests answered ENOTLEADER / ELEADER_LOST */
    const char *topic_text;             /* per-topic lines (metrics_topics.c), copied */
    size_t topic_len;
} fy_metrics_snapshot_t;

/** Serves on @p addr ("host:port", an IPv4 address; port 0 picks one).
 *  With @p token (NULL or "": none) /metrics answers 401 unless the request
 *  says "Authorization: Bearer <token>"; /health stays open.
 *  @return FERRY_OK, or FERRY_EINVAL / FERRY_EIO with a sentence in err. */
fy_status_t fy_metrics_start(const char *addr, const char *token, fy_metrics_t **out,
                             fy_err_t *err);

/** The port it listens on. */
unsigned fy_metrics_port(const fy_metrics_t *m);

/** Publishes a new snapshot (called by the broker's loop). */
void fy_metrics_update(fy_metrics_t *m, const fy_metrics_snapshot_t *s);

/** Stops serving and frees @p *m (NULL accepted). */
void fy_metrics_stop(fy_metrics_t **m);

#endif
