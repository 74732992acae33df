/* SPDX-License-Identifier: MIT */
/*
 * broker_cluster.c - the broker on a node of a cluster (docs/cluster.md):
 * the store's cluster settings from ferryd's, what a node does when it
 * starts or stops leading, and the answer of a node that does not lead.
 */
#include "broker_int.h"

#include "clock.h"

#include <stdio.h>
#include <string.h>

fy_status_t
fy_brk_cluster_opts(const fy_config_t *cfg, fy_store_cluster_t *out, fy_raftlog_peer_t *peers,
                    char *advertise, size_t cap, fy_err_t *err)
{
    memset(out, 0, sizeof *out);
    const char *me = NULL;
    for (size_t i = 0; i < cfg->npeers; i++) {
        peers[i] = (fy_raftlog_peer_t){cfg->peer_ids[i], cfg->peer_addrs[i]};
        if (cfg->peer_ids[i] == cfg->cluster_id)
            me = cfg->peer_addrs[i];
    }
    /* Followers name the leader's client endpoint: --advertise, or --bind
     * with a wildcard host made this node's cluster host. */
    const char *bind = cfg->advertise[0] ? cfg->advertise : cfg->bind;
    const char *host = strncmp(bind, "tcp://", 6) == 0 ? bind + 6 : NULL;
    const char *port = host ? strrchr(host, ':') : NULL;
    if (!host || !port)
        return fy_err_set(err, FERRY_EINVAL,
                          "a cluster's nodes serve clients on tcp://HOST:PORT (--bind, "
                          "--advertise): %s",
                          bind);
    if (strcmp(port + 1, "*") == 0)
        return fy_err_set(err, FERRY_EINVAL,
                          "a cluster node needs a fixed client port (--bind %s): the others "
                          "name it to clients",
                          bind);
    if ((size_t)(port - host) == 1 && host[0] == '*')
        snprintf(advertise, cap, "tcp://%.*s%s", (int)(strrchr(me, ':') - me), me, port);
    else if (strncmp(host, "0.0.0.0:", 8) == 0)
        snprintf(advertise, cap, "tcp://%.*s%s", (int)(strrchr(me, ':') - me), me, port);
    else
        snprintf(advertise, cap, "%s", bind);
    *out = (fy_store_cluster_t){.id = cfg->cluster_id,
                                .peers = peers,
                                .npeers = cfg->npeers,
                                .advertise = advertise,
                                .bind = cfg->cluster_bind[0] ? cfg->cluster_bind : NULL,
                                .join = cfg->join[0] != '\0',
                                .snapshot_every = (unsigned)cfg->snapshot_every,
                                .election_ms = (unsigned)cfg->election_ms,
                                .heartbeat_ms = (unsigned)(cfg->election_ms / 10)};
    return FERRY_OK;
}

void
fy_brk_cluster_say(fy_broker_t *self)
{
    const fy_config_t *cfg = &self->cfg;
    if (!cfg->cluster_id)
        return;
    bool remote = false;
    for (size_t i = 0; i < cfg->npeers; i++)
        remote = remote || strncmp(cfg->peer_addrs[i], "127.", 4) != 0;
    fy_log(self->log, FY_LOG_INFO, "cluster", "a node of a cluster",
           "id=%llu voters=%zu advertise=%s detail=\"it takes requests while it leads\"",
           (unsigned long long)cfg->cluster_id, cfg->npeers, self->advertise);
    if (remote)
        fy_log(self->log, FY_LOG_WARN, "cluster", "peers on other hosts",
               "detail=\"the nodes' own traffic (--peers) is neither encrypted nor authenticated: "
               "keep it on a private network or behind a firewall (docs/cluster.md)\"");
}

bool
fy_brk_cluster_turn(fy_broker_t *self)
{
    bool leads = fy_store_leads(self->store);
    if (leads == self->leading)
        return leads;
    self->leading = leads;
    if (!leads) {
        fy_log(self->log, FY_LOG_INFO, "cluster", "following",
               "detail=\"requests are answered ENOTLEADER, naming the leader\"");
        return false;
    }
    /* Leading from now on: deliveries in flight under the last leader have
     * no consumer here, so they come back soon (as after a restart). */
    fy_err_t err = {0};
    if (fy_brk_after_restart(self, &err) != FERRY_OK) {
        fy_log(self->log, FY_LOG_WARN, "cluster", "cannot bring back deliveries in flight",
               "code=%s detail=\"%s; they come back when their ack wait ends\"",
               fy_status_name(err.code), err.msg);
        self->leading = fy_store_leads(self->store) && err.code != FERRY_ENOTLEADER;
    }
    return self->leading;
}

void
fy_brk_refuse_not_leader(fy_broker_t *self, fy_status_t code)
{
    char leader[256], msg[400];
    fy_store_leader(self->store, leader, sizeof leader);
    if (code == FERRY_ELEADER_LOST)
        snprintf(msg, sizeof msg,
                 "this node lost its lead before a quorum had the request: it may be stored or "
                 "not; send it again (with its id)%s%s",
                 leader[0] ? "; leader=" : "", leader);
    else if (leader[0])
        snprintf(msg, sizeof msg, "this node does not lead the cluster; leader=%s", leader);
    else
        snprintf(msg, sizeof msg,
                 "this node does not lead the cluster and knows no leader yet (an election); "
                 "try another node");
    self->not_leader_refused += self->nreqs;
    fy_brk_refuse_batch(self, code, msg);
}

fy_status_t
fy_brk_handle_cluster(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err)
{
    if (req->op != FY_OP_CLUSTER) {
        char address[64] = "", why[160] = "";
        if (req->key.len) /* node_remove has none */
            memcpy(address, req->key.ptr, req->key.len < 63 ? req->key.len : 63);
        fy_status_t st = fy_store_cluster_change(
            self->store, req->seq, req->op == FY_OP_NODE_ADD ? address : NULL, why, sizeof why);
        if (st)
            return fy_err_set(err, st, "%s", why);
        fy_brk_reply_t *r;
        fy_brk_reply_begin(self, ri, &r);
        return fy_brk_reply_finish(self, r, fy_encode_ok(self->enc, req->cid));
    }
    fy_cluster_info_t ci = {0};
    fy_store_cluster_stats_t cs;
    if (fy_store_cluster_state(self->store, &cs)) {
        const fy_raftlog_state_t *r = &cs.raft;
        ci = (fy_cluster_info_t){.id = self->cfg.cluster_id,
                                 .term = r->term,
                                 .commit = r->commit_index,
                                 .applied = r->applied_index,
                                 .last = r->last_index,
                                 .elections = r->elections,
                                 .snapshots = cs.snapshots};
        for (size_t i = 0; i < r->nnodes && i < FY_CLUSTER_NODES_MAX; i++) {
            fy_cluster_node_t *n = &ci.nodes[ci.nnodes++];
            n->id = r->nodes[i].id;
            snprintf(n->address, sizeof n->address, "%s", r->nodes[i].address);
            n->match = r->nodes[i].match_index;
            n->up = r->nodes[i].recent;
            n->voter = r->nodes[i].voter;
        }
    }
    fy_brk_reply_t *r;
    fy_brk_reply_begin(self, ri, &r);
    return fy_brk_reply_finish(self, r, fy_encode_cluster_reply(self->enc, req->cid, &ci));
}
