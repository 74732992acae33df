/*
 * cluster_cmd.c - `ferry cluster status` (cluster_cmd.h).
 */
#include "cluster_cmd.h"

#include <stdio.h>
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
               "\"lag\":%llu,\"up\":%s}",
               i ? "," : "", (unsigned long long)n->id, n->address,
               n->id == cl->leader_id ? "leader" : "follower", (unsigned long long)n->match_index,
               (unsigned long long)n->lag, n->up ? "true" : "false");
    }
    printf("]}\n");
}

int
fy_cli_cluster(ferry_client_t *c, const char *sub, bool json)
{
    if (strcmp(sub, "status") != 0) {
        fprintf(stderr, "ferry: cluster: unknown subcommand '%s' (status)\n", sub);
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
               n->id == cl.leader_id ? "leader" : "follower", (unsigned long long)n->match_index,
               (unsigned long long)n->lag, n->up ? "yes" : "NO");
    }
    return all_up ? 0 : 1;
}
