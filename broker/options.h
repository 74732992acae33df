/* SPDX-License-Identifier: MIT */
/*
 * options.h - ferryd's configuration: one fy_config_t, defaults in one
 * table, overridden by a configuration file (--config FILE, INI: the
 * flags' names as keys), then by FERRY_* environment variables, then by
 * flags (docs/config.md lists every key). Parsing only; no side effects
 * but --help, --version and --check-config printing.
 */
#ifndef FY_OPTIONS_H
#define FY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "log.h"

#define FY_CLUSTER_MAX 9 /* voters of a cluster */

typedef struct fy_config {
    char data_dir[1024];
    char bind[256];
    fy_level_t log_level;
    uint64_t map_size;         /* bytes; the storage limit */
    uint64_t max_msg_bytes;    /* payload + key + id + headers */
    uint64_t batch_max;        /* requests per group commit */
    uint64_t dedupe_window_ms; /* default for new topics */
    uint64_t disk_reserve;     /* bytes held back on the disk for acks and deletes when full */
    uint64_t max_consumers;    /* push consumers at once */
    uint64_t peer_queue_bytes; /* replies held per slow client before its requests wait */
    uint64_t slow_batch_ms;
    uint64_t metrics_topics;
    /* topics (and their counters) with labels of their own in /metrics */ /* a group commit
                                                                              slower than this
                                                                              is logged (rate
                                                                              limited) */
    char metrics[64];         /* host:port of the HTTP metrics endpoint; "" off */
    char curve_secret[1024];  /* --curve-secret: the server's CURVE secret key file; "" off */
    char users[1024];         /* --users: the users file (users.h); "" none */
    char metrics_token[1024]; /* --metrics-token: file holding /metrics' bearer token; "" none */
    bool insecure;            /* --insecure: listening beyond loopback without authentication */
    /* Cluster mode (docs/cluster.md): --cluster-id N --peers 1=HOST:PORT,2=... */
    uint64_t cluster_id;     /* this node; 0: a single node */
    char peers[1024];        /* --peers as given */
    uint64_t election_ms;    /* a follower's wait for the leader before an election */
    uint64_t snapshot_every; /* entries between snapshots, and kept behind one */
    char join[64];           /* --join HOST:PORT: a new node's cluster address; "": --peers */
    char cluster_bind[64];   /* --cluster-bind: HOST:PORT to listen on for peers; "": --peers' */
    char advertise[256];     /* --advertise: the client endpoint followers name; "": --bind */
    size_t npeers;           /* parsed from peers: */
    uint64_t peer_ids[FY_CLUSTER_MAX];
    char peer_addrs[FY_CLUSTER_MAX][64];
} fy_config_t;

typedef enum fy_options_result {
    FY_OPTIONS_RUN,     /* start the broker */
    FY_OPTIONS_HELP,    /* --help: usage printed */
    FY_OPTIONS_VERSION, /* --version: version printed */
    FY_OPTIONS_CHECKED, /* --check-config: valid, the effective settings printed */
    FY_OPTIONS_ERROR    /* bad value: err names the key */
} fy_options_result_t;

/** Fills @p cfg from defaults, @p envp-style lookups via getenv, and argv. */
fy_options_result_t fy_options_parse(int argc, char **argv, fy_config_t *cfg, fy_err_t *err);

/** Whether @p endpoint can only be reached from this host: ipc://, inproc://,
 *  or tcp:// on 127.x.x.x, localhost or [::1]. */
bool fy_options_local_endpoint(const char *endpoint);

/** Parses "123", "64K", "512M", "8G" (binary units). @return false if invalid. */
bool fy_options_parse_size(const char *text, uint64_t *out);

#endif
