/* SPDX-License-Identifier: MIT */
/*
 * cluster.c - where a cluster stands (ferry_client_cluster), from its
 * leader: the protocol's record (proto/records.h) mapped to ferry.h's; and
 * its membership (ferry_client_cluster_add, _remove); and a backup of the
 * broker's store (ferry_client_backup).
 */
#include "client_int.h"

ferry_status_t
ferry_client_cluster(ferry_client_t *self, ferry_cluster_t *out)
{
    if (!self || !out)
        return FERRY_EINVAL;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_simple(self->enc, cid, FY_OP_CLUSTER, NULL);
    fy_reply_t rep;
    if (st || (st = fy_cli_call_read(self, cid, &rep)))
        return st;
    fy_cluster_info_t ci;
    if (fy_reply_cluster(&rep, &ci))
        return fy_client_fail(self, FERRY_EPROTO, "malformed cluster reply");
    memset(out, 0, sizeof *out);
    *out = (ferry_cluster_t){.leader_id = ci.id,
                             .term = ci.term,
                             .commit_index = ci.commit,
                             .applied_index = ci.applied,
                             .last_index = ci.last,
                             .elections = ci.elections,
                             .snapshots = ci.snapshots,
                             .nnodes = ci.nnodes};
    for (size_t i = 0; i < ci.nnodes && i < sizeof out->nodes / sizeof out->nodes[0]; i++) {
        ferry_cluster_node_t *n = &out->nodes[i];
        n->id = ci.nodes[i].id;
        memcpy(n->address, ci.nodes[i].address, sizeof n->address);
        n->match_index = ci.nodes[i].match;
        n->lag = ci.last > ci.nodes[i].match ? ci.last - ci.nodes[i].match : 0;
        n->up = ci.nodes[i].up;
        n->voter = ci.nodes[i].voter;
    }
    return FERRY_OK;
}

static ferry_status_t
s_change(ferry_client_t *self, uint64_t id, const char *address)
{
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_node(self->enc, cid, id, address);
    fy_reply_t rep;
    return st ? st : fy_cli_call(self, cid, NULL, NULL, 0, &rep);
}

ferry_status_t
ferry_client_cluster_add(ferry_client_t *self, uint64_t id, const char *address)
{
    if (!self || !id || !address || !*address || strlen(address) > 63)
        return FERRY_EINVAL;
    return s_change(self, id, address);
}

ferry_status_t
ferry_client_cluster_remove(ferry_client_t *self, uint64_t id)
{
    if (!self || !id)
        return FERRY_EINVAL;
    return s_change(self, id, NULL);
}

ferry_status_t
ferry_client_backup(ferry_client_t *self, const char *dir)
{
    if (!self || !dir || dir[0] != '/' || strlen(dir) > 1000)
        return FERRY_EINVAL;
    uint64_t cid = self->next_cid++;
    fy_encoder_reset(self->enc);
    ferry_status_t st = fy_encode_backup(self->enc, cid, dir);
    fy_reply_t rep;
    return st ? st : fy_cli_call(self, cid, NULL, NULL, 0, &rep);
}
