/* SPDX-License-Identifier: MIT */
/*
 * cluster_cmd.c - `ferry cluster status` (cluster_cmd.h).
 */
#include "cluster_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_print_json(const ferry_cluster_t *cl)
{
    printf("{\"leader\":%llu,\"term\":%llu,\"commit_index\":%llu,\"applied_index\":%llu,"
           "\"last_index\":%llu,\"elections\":%llu,\"snapshots\":%llu,\"nodes\":[",
           (unsigned long long)cl->leader_id, (unsigned long long)cl->term,
           (unsigned long long)cl->commit_index, (unsigned long long)cl->applied_index,
           (unsigned long long)cl->last_index, (unsigned long long)cl->elections,
           (unsigned long long)cl->snapshots);
    for (size_t i = 0; i < cl->nnodes; i++) {
        const ferry_cluster_node_t *n = &cl->nodes[i];
        /* Addresses are HOST:PORT (ferryd checks --peers): nothing to escape. */
        printf("%s{\"id\":%llu,\"address\":\"%s\",\"role\":\"%s\",\"match_index\":%llu,"
               "\"lag\":%llu,\"up\":%s,\"voter\":%s}",
               i ? "," : "", (unsigned long long)n->id, n->address,
               n->id == cl->leader_id ? "leader"
               : n->voter             ? "follower"
                                      : "joining",
               (unsigned long long)n->match_index, (unsigned long long)n->lag,
               n->up ? "true" : "false", n->voter ? "true" : "false");
    }
    printf("]}\n");
}

/* ferry cluster add ID HOST:PORT | remove ID */
static int
s_change(ferry_client_t *c, int npos, char **pos)
{
    bool add = strcmp(pos[0], "add") == 0;
    char *end = NULL;
    unsigned long long id = npos >= 2 ? strtoull(pos[1], &end, 10) : 0;
    if (npos != (add ? 3 : 2) || !id || *end) {
        fprintf(stderr, "ferry: usage: ferry cluster add ID HOST:PORT | ferry cluster remove ID\n");
        return 2;
    }
    ferry_status_t st =
        add ? ferry_client_cluster_add(c, id, pos[2]) : ferry_client_cluster_remove(c, id);
    if (st) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st), ferry_client_last_error(c));
        return st == FERRY_EINVAL || st == FERRY_EFORBIDDEN ? 1 : 3;
    }
    printf(add ? "node %llu added: it catches up, then votes (ferry cluster status)\n"
               : "node %llu removed: stop it now\n",
           id);
    return 0;
}

int
fy_cli_cluster(ferry_client_t *c, int npos, char **pos, bool json)
{
    const char *sub = pos[0];
    if (strcmp(sub, "add") == 0 || strcmp(sub, "remove") == 0)
        return s_change(c, npos, pos);
    if (strcmp(sub, "status") != 0 || npos != 1) {
        fprintf(stderr, "ferry: cluster: status, add ID HOST:PORT or remove ID\n");
        return 2;
    }
    ferry_cluster_t cl;
    ferry_status_t st = ferry_client_cluster(c, &cl);
    if (st) {
        fprintf(stderr, "ferry: %s: %s\n", ferry_errname(st), ferry_client_last_error(c));
        return 3;
    }
    if (!cl.leader_id) {
        fprintf(stderr, "ferry: this ferryd is a single node, not a cluster (docs/cluster.md)\n");
        return 1;
    }
    bool all_up = true;
    for (size_t i = 0; i < cl.nnodes; i++)
        all_up = all_up && cl.nodes[i].up;
    if (json) {
        s_print_json(&cl);
        return all_up ? 0 : 1;
    }
    printf("term %llu, leader %llu: commit %llu, applied %llu, last %llu; %llu elections and "
           "%llu snapshots seen by the leader since it started\n",
           (unsigned long long)cl.term, (unsigned long long)cl.leader_id,
           (unsigned long long)cl.commit_index, (unsigned long long)cl.applied_index,
           (unsigned long long)cl.last_index, (unsigned long long)cl.elections,
           (unsigned long long)cl.snapshots);
    printf("%-4s  %-22s  %-8s  %12s  %8s  %s\n", "NODE", "ADDRESS", "ROLE", "MATCH", "LAG", "UP");
    for (size_t i = 0; i < cl.nnodes; i++) {
        const ferry_cluster_node_t *n = &cl.nodes[i];
        printf("%-4llu  %-22s  %-8s  %12llu  %8llu  %s\n", (unsigned long long)n->id, n->address,
               n->id == cl.leader_id ? "leader"
               : n->voter            ? "follower"
                                     : "joining",
               (unsigned long long)n->match_index, (unsigned long long)n->lag,
               n->up ? "yes" : "NO");
    }
    return all_up ? 0 : 1;
}
