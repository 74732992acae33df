/* SPDX-License-Identifier: MIT */
/*
 * bench_publish.c - confirmed publish throughput with fsync on.
 *
 * Starts a real ferryd on a temporary directory (through the test fixture),
 * publishes N messages of S bytes through libferry's async window, and
 * reports confirmed msg/s, the broker's commits per second and the average
 * number of publishes per commit. Every confirm arrives only after the
 * commit holding its message synced.
 *
 *   bench_publish [-n COUNT] [-s BYTES] [-w WINDOW] [-r RUNS] [--ids] [--keys K]
 *                 [--cluster N]
 *
 * --keys K gives message i the key "key-<i % K>": each publish then also
 * finds and writes its key's entry in the per-key index.
 * --cluster N runs N ferryd nodes on this machine (docs/cluster.md): a
 * confirm then waits for a quorum's disks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterfx.h"
#include "ferry.h"
#include "fixture.h"
#include "harness.h"

typedef struct {
    size_t ok, failed;
} s_count_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_count_t *n = user;
    if (cf->status == FERRY_OK)
        n->ok++;
    else
        n->failed++;
}

int
main(int argc, char **argv)
{
    size_t n = 200000, size = 128, window = 1000, runs = 3;
    bool ids = false;
    size_t keys = 0;
    int nodes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            size = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
            window = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            runs = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--ids") == 0)
            ids = true;
        else if (strcmp(argv[i], "--keys") == 0 && i + 1 < argc)
            keys = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--cluster") == 0 && i + 1 < argc)
            nodes = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: bench_publish [-n COUNT] [-s BYTES] [-w WINDOW] [-r RUNS] [--ids] "
                    "[--keys K] [--cluster N]\n");
            return 2;
        }
    }
    fy_ferryd_t d = {0};
    fy_cluster_fx_t cl = {0};
    ferry_client_t *c = NULL;
    if (nodes) {
        bool up = fy_cluster_init(&cl, nodes) == 0;
        for (int i = 0; up && i < nodes; i++)
            up = fy_cluster_start(&cl, i) == 0;
        if (up && fy_cluster_leader(&cl, 20000) >= 0)
            c = fy_cluster_client(&cl, -1, 30000, window);
    } else if (fy_ferryd_start(&d) == 0) {
        c = fy_connect(d.endpoint, 30000, window);
    }
    if (!c) {
        fprintf(stderr, "bench: cannot start or connect\n");
        fy_ferryd_cleanup(&d);
        fy_cluster_cleanup(&cl);
        return 1;
    }
    ferry_client_declare(c, FERRY_KIND_TOPIC, "bench", NULL, NULL, NULL);
    char *payload = malloc(size ? size : 1);
    memset(payload, 'x', size);
    printf("publish: %zu x %zu B, window %zu, ids %s, keys %zu, fsync on, %s\n", n, size, window,
           ids ? "yes" : "no", keys, nodes ? "a cluster" : "one node");
    printf("%-4s %12s %12s %12s %10s\n", "run", "msg/s", "commits/s", "msgs/commit", "seconds");
    int rc = 0;
    char id[48], key[32];
    for (size_t r = 0; r < runs; r++) {
        ferry_stats_t before, after;
        ferry_client_stats(c, &before);
        s_count_t count = {0};
        double t0 = fy_now_s();
        for (size_t i = 0; i < n; i++) {
            snprintf(id, sizeof id, "r%zu-%zu", r, i);
            if (keys)
                snprintf(key, sizeof key, "key-%zu", i % keys);
            ferry_message_t m = {
                .data = payload, .len = size, .id = ids ? id : NULL, .key = keys ? key : NULL};
            if (ferry_client_publish_async(c, "bench", &m, s_on_confirm, &count) != FERRY_OK) {
                fprintf(stderr, "bench: publish failed: %s\n", ferry_client_last_error(c));
                rc = 1;
                break;
            }
        }
        if (ferry_client_flush(c, 60000) != FERRY_OK)
            rc = 1;
        double secs = fy_now_s() - t0;
        ferry_client_stats(c, &after);
        uint64_t commits = after.commits - before.commits;
        if (count.ok != n || count.failed)
            rc = 1;
        printf("%-4zu %12.0f %12.0f %12.1f %10.2f\n", r + 1, count.ok / secs, commits / secs,
               commits ? (double)count.ok / commits : 0.0, secs);
    }
    free(payload);
    ferry_client_destroy(&c);
    if (nodes) {
        for (int i = 0; i < nodes; i++)
            fy_ferryd_signal(&cl.node[i], 15);
        fy_cluster_cleanup(&cl);
    } else {
        fy_ferryd_signal(&d, 15);
        fy_ferryd_cleanup(&d);
    }
    return rc;
}
