/* SPDX-License-Identifier: MIT */
/*
 * clusterfx.c - a ferryd cluster on loopback (clusterfx.h).
 */
#include "clusterfx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"

int
fy_cluster_init(fy_cluster_fx_t *cl, int n)
{
    return fy_cluster_init_voters(cl, n, n);
}

int
fy_cluster_init_links(fy_cluster_fx_t *cl, int n)
{
    if (fy_cluster_init(cl, n) != 0 || !(cl->links = fy_links_start(n, cl->raft_port)))
        return -1;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        off += (size_t)snprintf(cl->peers + off, sizeof cl->peers - off, "%s%d=127.0.0.1:%d",
                                i ? "," : "", i + 1, fy_links_port(cl->links, i));
        snprintf(cl->bind[i], sizeof cl->bind[i], "--cluster-bind=127.0.0.1:%d", cl->raft_port[i]);
    }
    return 0;
}

const char *
fy_cluster_address(const fy_cluster_fx_t *cl, int i)
{
    return cl->join[i];
}

int
fy_cluster_init_voters(fy_cluster_fx_t *cl, int n, int voters)
{
    memset(cl, 0, sizeof *cl);
    if (n < 1 || n > FY_CLUSTER_FX_MAX || voters < 1 || voters > n)
        return -1;
    cl->n = n;
    cl->voters = voters;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        int raft = fy_free_port(), client = fy_free_port();
        if (raft < 0 || client < 0 || raft == client)
            return -1;
        cl->raft_port[i] = raft;
        snprintf(cl->join[i], sizeof cl->join[i], "127.0.0.1:%d", raft);
        if (i < voters)
            off += (size_t)snprintf(cl->peers + off, sizeof cl->peers - off, "%s%d=127.0.0.1:%d",
                                    i ? "," : "", i + 1, raft);
        snprintf(cl->node[i].endpoint, sizeof cl->node[i].endpoint, "tcp://127.0.0.1:%d", client);
        snprintf(cl->ids[i], sizeof cl->ids[i], "%d", i + 1);
    }
    snprintf(cl->snapshot_every, sizeof cl->snapshot_every, "%s",
             getenv("FERRY_TEST_SNAPSHOT_EVERY") ? getenv("FERRY_TEST_SNAPSHOT_EVERY") : "8192");
    return 0;
}

int
fy_cluster_start(fy_cluster_fx_t *cl, int i)
{
    fy_ferryd_t *d = &cl->node[i];
    const char *extra[] = {"--cluster-id",
                           cl->ids[i],
                           i < cl->voters ? "--peers" : "--join",
                           i < cl->voters ? cl->peers : cl->join[i],
                           "--snapshot-every",
                           cl->snapshot_every,
                           "--metrics=127.0.0.1:0",
                           cl->bind[i][0] ? cl->bind[i] : NULL};
    /* All eight of the fixture's flags: it stops at the eighth or a NULL. */
    _Static_assert(sizeof extra == sizeof d->extra, "the fixture's flags");
    memcpy(d->extra, extra, sizeof extra);
    if (fy_ferryd_start(d) != 0) {
        fprintf(stderr, "clusterfx: node %d did not start (log %s)\n", i + 1, d->log_path);
        return -1;
    }
    return 0;
}

int
fy_cluster_leader(fy_cluster_fx_t *cl, int ms)
{
    long long until = fy_now_ms() + ms;
    do {
        int best = -1;
        unsigned long long best_term = 0;
        for (int i = 0; i < cl->n; i++) {
            if (!cl->node[i].pid)
                continue;
            char cmd[600], out[64];
            snprintf(cmd, sizeof cmd,
                     "grep 'msg=\"leading\"' '%s' | sed 's/.*term=\\([0-9]*\\).*/\\1/' | sort -n "
                     "| tail -1",
                     cl->node[i].log_path);
            fy_run(cmd, out, sizeof out);
            unsigned long long term = strtoull(out, NULL, 10);
            if (term > best_term) {
                best_term = term;
                best = i;
            }
        }
        if (best >= 0)
            return best;
        fy_sleep_ms(50);
    } while (fy_now_ms() < until);
    return -1;
}

ferry_client_t *
fy_cluster_client(fy_cluster_fx_t *cl, int only, int timeout_ms, size_t window)
{
    ferry_options_t *o = ferry_options_new();
    bool ok = o != NULL;
    for (int i = 0; ok && i < cl->n; i++)
        if (only < 0 || only == i)
            ok = ferry_options_add_server(o, cl->node[i].endpoint) == FERRY_OK;
    ok = ok && ferry_options_set_timeout_ms(o, timeout_ms) == FERRY_OK &&
         ferry_options_set_window(o, window) == FERRY_OK &&
         ferry_options_set_reconnect(o, 20, 500, 20) == FERRY_OK &&
         ferry_options_set_retry_connect(o, true) == FERRY_OK;
    ferry_client_t *c = NULL;
    ferry_status_t st = ok ? ferry_client_new(o, &c) : FERRY_EINVAL;
    ferry_options_destroy(&o);
    if (st != FERRY_OK)
        fprintf(stderr, "clusterfx: cannot make a client: %s\n", ferry_errname(st));
    return c;
}

int
fy_cluster_metrics_port(const fy_cluster_fx_t *cl, int i)
{
    char cmd[600], out[32];
    snprintf(cmd, sizeof cmd,
             "grep -o 'url=http://127.0.0.1:[0-9]*/metrics' '%s' | tail -1 | sed "
             "'s/.*:\\([0-9]*\\)\\/.*/\\1/'",
             cl->node[i].log_path);
    if (fy_run(cmd, out, sizeof out) != 0)
        return -1;
    int port = atoi(out);
    return port > 0 ? port : -1;
}

void
fy_cluster_cleanup(fy_cluster_fx_t *cl)
{
    for (int i = 0; i < cl->n; i++)
        fy_ferryd_cleanup(&cl->node[i]);
    fy_links_stop(&cl->links);
}
