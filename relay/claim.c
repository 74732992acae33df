/* SPDX-License-Identifier: MIT */
/*
 * claim.c - one relay per source name (claim.h).
 */
#include "claim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

void
fr_claim_path(const char *location, int in_dir, const char *name, char *out, size_t cap)
{
    char safe[256];
    snprintf(safe, sizeof safe, "%s", name);
    for (char *p = safe; *p; p++)
        if (*p == '/')
            *p = '_';
    snprintf(out, cap, in_dir ? "%s/ferry-relay-%s.lock" : "%s.ferry-relay-%s.lock", location,
             safe);
}

fy_status_t
fr_claim(const char *path, int *fd, fy_err_t *err)
{
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*fd < 0)
        return fy_err_set(err, FERRY_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[128] = "";
        ssize_t n = pread(*fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        close(*fd);
        *fd = -1;
        if (e != EWOULDBLOCK)
            return fy_err_set(err, FERRY_EIO, "cannot lock %s: %s", path, strerror(e));
        return fy_err_set(err, FERRY_EWOULD_BLOCK, "%s is held by another relay (%s)", path,
                          holder[0] ? holder : "unknown");
    }
    char host[64] = "?", text[160];
    gethostname(host, sizeof host - 1);
    int len = snprintf(text, sizeof text, "pid %d on %s\n", (int)getpid(), host);
    if (ftruncate(*fd, 0) != 0 || pwrite(*fd, text, (size_t)len, 0) != len) {
        /* The lock holds; only the note of who holds it is missing. */
    }
    return FERRY_OK;
}
