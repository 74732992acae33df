/* SPDX-License-Identifier: MIT */
/*
 * bench_failover.c - how long a cluster takes to confirm again after its
 * leader dies (docs/cluster.md).
 *
 * Starts 3 ferryd nodes on this machine; one client of all three publishes
 * with ids through a window of 100 without pause. K times: the leader is
 * killed with SIGKILL (and reaped: it is dead when the clock starts), and
 * the time to the first confirm after that is measured (it can only come
 * from the next leader: an election, libferry finding it, and the
 * publishes in flight sent again). The killed node is started again and
 * the next round waits until the leader sees all three voters caught up.
 *
 *   bench_failover [-k KILLS]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "clusterfx.h"
#include "ferry.h"
#include "harness.h"

typedef struct {
    size_t ok, failed;
    long long first_after_us; /* the first confirm after the kill; 0: none yet */
    bool armed;
} s_count_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_count_t *n = user;
    if (cf->status != FERRY_OK) {
        n->failed++;
        return;
    }
    n->ok++;
    if (n->armed && !n->first_after_us)
        n->first_after_us = fy_mono_us();
}

static int
s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Until the leader sees three caught-up voters, publishing meanwhile. */
static bool
s_settle(ferry_client_t *c)
{
    long long until = fy_mono_ms() + 30000;
    while (fy_mono_ms() < until) {
        ferry_cluster_t cs;
        if (ferry_client_cluster(c, &cs) == FERRY_OK && cs.nnodes == 3) {
            bool all = true;
            for (size_t i = 0; i < cs.nnodes; i++)
                all = all && cs.nodes[i].up && cs.nodes[i].lag == 0;
            if (all)
                return true;
        }
        ferry_client_poll(c, 50);
    }
    return false;
}

int
main(int argc, char **argv)
{
    int kills = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
            kills = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_failover [-k KILLS]\n");
            return 2;
        }
    }
    if (kills < 1 || kills > 100)
        return 2;
    fy_cluster_fx_t cl;
    bool up = fy_cluster_init(&cl, 3) == 0;
    for (int i = 0; up && i < 3; i++)
        up = fy_cluster_start(&cl, i) == 0;
    ferry_client_t *c = up && fy_cluster_leader(&cl, 20000) >= 0
                            ? fy_cluster_client(&cl, -1, 30000, 100)
                            : NULL;
    if (!c || ferry_client_declare(c, FERRY_KIND_TOPIC, "failover", NULL, NULL, NULL)) {
        fprintf(stderr, "bench_failover: cannot start the cluster\n");
        fy_cluster_cleanup(&cl);
        return 1;
    }
    s_count_t count = {0};
    double *ms = calloc((size_t)kills, sizeof *ms);
    size_t next = 0;
    char id[32];
    int rc = 0;
    printf("failover: 3 nodes on this machine, a client publishing through a window of 100\n");
    for (int k = 0; k < kills && rc == 0; k++) {
        if (!s_settle(c)) {
            fprintf(stderr, "bench_failover: the cluster did not settle\n");
            rc = 1;
            break;
        }
        /* Publishing for a moment, then the leader dies under it. */
        long long kill_at = fy_mono_ms() + 300, t0 = 0;
        int lead = -1;
        count.armed = false;
        count.first_after_us = 0;
        while (!count.first_after_us) {
            if (!t0 && fy_mono_ms() >= kill_at) {
                ferry_cluster_t cs;
                if (ferry_client_cluster(c, &cs) != FERRY_OK || !cs.leader_id) {
                    rc = 1;
                    break;
                }
                lead = (int)cs.leader_id - 1;
                fy_ferryd_signal(&cl.node[lead], SIGKILL); /* reaped: dead from here */
                t0 = fy_mono_us();
                count.armed = true;
            }
            snprintf(id, sizeof id, "f-%zu", next);
            ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
            ferry_status_t st = ferry_client_publish_async(c, "failover", &m, s_on_confirm, &count);
            if (st == FERRY_OK)
                next++;
            else
                ferry_client_poll(c, 1);
            if (t0 && fy_mono_us() - t0 > 60 * 1000000LL) {
                fprintf(stderr, "bench_failover: no confirm within 60 s of the kill\n");
                rc = 1;
                break;
            }
        }
        if (rc)
            break;
        ms[k] = (double)(count.first_after_us - t0) / 1000.0;
        printf("kill %2d: node %d, first confirm from the next leader after %.0f ms\n", k + 1,
               lead + 1, ms[k]);
        if (fy_cluster_start(&cl, lead) != 0)
            rc = 1;
    }
    if (rc == 0 && ferry_client_flush(c, 60000) != FERRY_OK)
        rc = 1;
    if (rc == 0) {
        qsort(ms, (size_t)kills, sizeof *ms, s_cmp);
        printf("failover over %d kills: p50 %.0f ms, min %.0f ms, max %.0f ms; %zu confirmed, "
               "%zu failed\n",
               kills, ms[kills / 2], ms[0], ms[kills - 1], count.ok, count.failed);
        if (count.failed)
            rc = 1;
    }
    free(ms);
    ferry_client_destroy(&c);
    fy_cluster_cleanup(&cl);
    return rc;
}
