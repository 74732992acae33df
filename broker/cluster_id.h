/* SPDX-License-Identifier: MIT */
/*
 * cluster_id.h - which node of which cluster a data directory belongs to
 * (docs/cluster.md): DATA/cluster.node, written at a node's first start,
 * holds its id and the voters it was first started with (canonical: in id
 * order, "ID=HOST:PORT,..."; empty for a node started with --join). A
 * directory started again under another --cluster-id is refused; the
 * voters are what each leader records in the store, so that a node first
 * started with a --peers list that disagrees is found out (store_raft.c).
 */
#ifndef FY_CLUSTER_ID_H
#define FY_CLUSTER_ID_H

#include <stddef.h>
#include <stdint.h>

#include "raftlog.h"
#include "status.h"

/** The canonical list of @p peers (sorted by id) into @p out. */
void fy_cluster_peers_text(const fy_raftlog_peer_t *peers, size_t n, char *out, size_t cap);

/**
 * Reads DIR/cluster.node, or writes it (synced) at a first start with @p id
 * and @p boot (the canonical voters; "" for a joining node). *@p out gets
 * the voters the directory was first started with.
 * @return FERRY_OK; FERRY_EINVAL (the directory is another node's: err says
 *         whose); FERRY_EIO
 */
fy_status_t fy_cluster_identity(const char *dir, uint64_t id, const char *boot, char *out,
                                size_t cap, fy_err_t *err);

#endif
