/* SPDX-License-Identifier: MIT */
/*
 * cluster_id.c - DATA/cluster.node (cluster_id.h).
 */
#include "cluster_id.h"

#include "wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
fy_cluster_peers_text(const fy_raftlog_peer_t *peers, size_t n, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    uint64_t last = 0;
    for (size_t k = 0; k < n; k++) { /* the next id above the last one, n times */
        const fy_raftlog_peer_t *next = NULL;
        for (size_t i = 0; i < n; i++)
            if (peers[i].id > last && (!next || peers[i].id < next->id))
                next = &peers[i];
        if (!next)
            break;
        int w = snprintf(out + off, cap - off, "%s%llu=%s", off ? "," : "",
                         (unsigned long long)next->id, next->address);
        if (w < 0 || (size_t)w >= cap - off)
            break;
        off += (size_t)w;
        last = next->id;
    }
}

fy_status_t
fy_cluster_identity(const char *dir, uint64_t id, const char *boot, char *out, size_t cap,
                    fy_err_t *err)
{
    char path[1100], text[1400];
    snprintf(path, sizeof path, "%s/cluster.node", dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned long long was = 0;
        char line[1200];
        out[0] = '\0';
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            if (strncmp(line, "id=", 3) == 0)
                was = strtoull(line + 3, NULL, 10);
            else if (strncmp(line, "voters=", 7) == 0)
                snprintf(out, cap, "%s", line + 7);
        }
        fclose(f);
        if (was == 0)
            return fy_err_set(err, FERRY_EIO, "%s: no id in it", path);
        if (was != id)
            return fy_err_set(err, FERRY_EINVAL,
                              "data directory %s belongs to node %llu of its cluster, not to "
                              "--cluster-id %llu (%s)",
                              dir, was, (unsigned long long)id, path);
        return FERRY_OK;
    }
    if (errno != ENOENT)
        return fy_err_set(err, FERRY_EIO, "cannot read %s: %s", path, strerror(errno));
    int n = snprintf(text, sizeof text, "id=%llu\nvoters=%s\n", (unsigned long long)id, boot);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    bool ok = fd >= 0 && n > 0 && (size_t)n < sizeof text && write(fd, text, (size_t)n) == n &&
              fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || fy_wal_sync_dir(dir) != 0)
        return fy_err_set(err, FERRY_EIO, "cannot write %s: %s", path, strerror(errno));
    snprintf(out, cap, "%s", boot);
    return FERRY_OK;
}
