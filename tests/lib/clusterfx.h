/* SPDX-License-Identifier: MIT */
/*
 * clusterfx.h - a ferryd cluster for tests and benchmarks (docs/cluster.md):
 * N real ferryd processes on loopback, each with its own data directory,
 * a fixed client port and a cluster port, started with --cluster-id and
 * the same --peers.
 */
#ifndef FY_CLUSTERFX_H
#define FY_CLUSTERFX_H

#include <stdbool.h>

#include "ferry.h"
#include "fixture.h"
#include "raftlinks.h"

#define FY_CLUSTER_FX_MAX 5

typedef struct fy_cluster_fx {
    int n;
    int voters; /* the first this many are in --peers; the others --join */
    int raft_port[FY_CLUSTER_FX_MAX];
    char join[FY_CLUSTER_FX_MAX][32];
    fy_ferryd_t node[FY_CLUSTER_FX_MAX];
    char peers[512];
    char ids[FY_CLUSTER_FX_MAX][12];
    char snapshot_every[16]; /* --snapshot-every; default 8192 */
    fy_links_t *links;       /* the nodes reach each other through it (fy_cluster_init_links) */
    char bind[FY_CLUSTER_FX_MAX][48]; /* --cluster-bind=... when links are in between */
} fy_cluster_fx_t;

/** Picks the ports of @p n nodes (nothing starts), all of them voters.
 *  @return 0 or -1. */
int fy_cluster_init(fy_cluster_fx_t *cl, int n);
/** The same, with only the first @p voters in --peers: the others start
 *  with --join (their cluster address), to be added (ferry cluster add). */
int fy_cluster_init_voters(fy_cluster_fx_t *cl, int n, int voters);
/** fy_cluster_init with the nodes' own traffic through links that a test
 *  cuts (raftlinks.h): --peers names the links, each node listens with
 *  --cluster-bind. @return 0 or -1. */
int fy_cluster_init_links(fy_cluster_fx_t *cl, int n);
/** Node @p i's cluster address, HOST:PORT. */
const char *fy_cluster_address(const fy_cluster_fx_t *cl, int i);
/** Starts node @p i (0-based; again on its data after a stop) and waits for
 *  its ready line. @return 0 or -1 (a message on stderr). */
int fy_cluster_start(fy_cluster_fx_t *cl, int i);
/** The node that leads now (0-based): the live node whose log has the
 *  highest term in a "leading" line, waited for up to @p ms; -1 if none. */
int fy_cluster_leader(fy_cluster_fx_t *cl, int ms);
/** A client of every node (@p only < 0) or of node @p only alone, connected
 *  in the background (a node may be between leaders). NULL on failure. */
ferry_client_t *fy_cluster_client(fy_cluster_fx_t *cl, int only, int timeout_ms, size_t window);
/** The port of node @p i's /metrics (each node serves it on a free port of
 *  127.0.0.1), read from its log; -1 if not found. */
int fy_cluster_metrics_port(const fy_cluster_fx_t *cl, int i);
/** Kills every node and removes their directories. */
void fy_cluster_cleanup(fy_cluster_fx_t *cl);

#endif
