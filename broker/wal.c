/* SPDX-License-Identifier: MIT */
/*
 * wal.c - the write-ahead log's file: creating it preallocated, appending
 * and syncing records, scanning them back (see wal.h).
 */
#include "wal.h"

#include "bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define S_MAGIC 0x46574c31u /* "FWL1" */

struct fy_wal {
    int fd;
    char path[PATH_MAX];
    uint64_t size; /* the file's size */
    uint64_t pos;  /* where the next record goes */
    bool sync;
    const fy_log_t *log;
    uint8_t *rbuf; /* scan: one record at a time */
    size_t rcap;
};

static uint64_t
s_sum(const uint8_t *payload, size_t len, uint64_t lsn)
{
    return XXH3_64bits_withSeed(payload, len, lsn * 0x9e3779b97f4a7c15ull ^ (uint64_t)len);
}

static int
s_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int
s_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 1; /* past the end */
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Syncs the directory holding @p path (a new file's name is durable). */
static int
s_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    return fy_wal_sync_dir(dir);
}

int
fy_wal_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes a new log of @p size zero bytes under a temporary name, syncs it
 * and renames it into place: a crash leaves either no log or a whole one. */
static int
s_create(const char *path, uint64_t size, bool sync)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    static const size_t chunk = 1u << 20;
    uint8_t *zero = calloc(1, chunk);
    int rc = zero ? 0 : -1;
    for (uint64_t off = 0; rc == 0 && off < size; off += chunk)
        rc = s_pwrite_all(fd, zero, size - off < chunk ? (size_t)(size - off) : chunk, off);
    free(zero);
    if (rc == 0 && sync && fsync(fd) != 0)
        rc = -1;
    int saved = errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc == 0 && sync && s_sync_dir(path) != 0)
        rc = -1;
    if (rc != 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
    }
    return rc;
}

fy_status_t
fy_wal_open(const char *path, uint64_t size, bool sync, const fy_log_t *log, fy_wal_t **out,
            fy_err_t *err)
{
    *out = NULL;
    if (strlen(path) >= PATH_MAX)
        return fy_err_set(err, FERRY_EINVAL, "write-ahead log path too long");
    fy_wal_t *self = calloc(1, sizeof *self);
    if (!self)
        return fy_err_set(err, FERRY_ENOMEM, "out of memory");
    snprintf(self->path, sizeof self->path, "%s", path);
    self->sync = sync;
    self->log = log;
    self->fd = open(path, O_RDWR | O_CLOEXEC);
    if (self->fd < 0 && errno == ENOENT) {
        if (s_create(path, size, sync) != 0) {
            int e = errno;
            free(self);
            return fy_err_set(err, e == ENOSPC || e == EDQUOT ? FERRY_ESTORAGE_FULL : FERRY_EIO,
                              "cannot create the write-ahead log %s (%llu bytes): %s", path,
                              (unsigned long long)size, strerror(e));
        }
        self->fd = open(path, O_RDWR | O_CLOEXEC);
    }
    struct stat sb;
    if (self->fd < 0 || fstat(self->fd, &sb) != 0) {
        int e = errno;
        if (self->fd >= 0)
            close(self->fd);
        free(self);
        return fy_err_set(err, FERRY_EIO, "cannot open the write-ahead log %s: %s", path,
                          strerror(e));
    }
    self->size = (uint64_t)sb.st_size;
    *out = self;
    return FERRY_OK;
}

void
fy_wal_destroy(fy_wal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    fy_wal_t *self = *self_p;
    if (self->fd >= 0)
        close(self->fd);
    free(self->rbuf);
    free(self);
    *self_p = NULL;
}

int
fy_wal_scan(fy_wal_t *self, uint64_t after_lsn, fy_wal_record_fn fn, void *ctx, uint64_t *last_lsn)
{
    uint64_t pos = 0, want = after_lsn + 1;
    int result = 0;
    *last_lsn = after_lsn;
    for (;;) {
        uint8_t hdr[FY_WAL_HDR];
        if (pos + FY_WAL_HDR > self->size)
            break;
        int rc = s_pread_all(self->fd, hdr, sizeof hdr, pos);
        if (rc < 0) {
            result = -1;
            break;
        }
        if (rc > 0 || fy_be32_get(hdr) != S_MAGIC || fy_be64_get(hdr + 8) != want)
            break;
        uint64_t len = fy_be32_get(hdr + 4);
        if (pos + FY_WAL_HDR + len > self->size)
            break;
        if (len > self->rcap) {
            uint8_t *p = realloc(self->rbuf, (size_t)len);
            if (!p) {
                result = -1;
                break;
            }
            self->rbuf = p;
            self->rcap = (size_t)len;
        }
        if ((rc = s_pread_all(self->fd, self->rbuf, (size_t)len, pos + FY_WAL_HDR)) != 0) {
            result = rc < 0 ? -1 : 0;
            break;
        }
        if (s_sum(self->rbuf, (size_t)len, want) != fy_be64_get(hdr + 16))
            break;
        if (fn && (result = fn(ctx, want, self->rbuf, (size_t)len)) != 0)
            break;
        *last_lsn = want++;
        pos += FY_WAL_HDR + len;
    }
    self->pos = pos;
    return result;
}

bool
fy_wal_fits(const fy_wal_t *self, size_t payload_len)
{
    return payload_len <= UINT32_MAX && self->pos + fy_wal_need(payload_len) <= self->size;
}

uint64_t
fy_wal_used(const fy_wal_t *self)
{
    return self->pos;
}

uint64_t
fy_wal_size(const fy_wal_t *self)
{
    return self->size;
}

fy_status_t
fy_wal_append(fy_wal_t *self, uint8_t *buf, size_t payload_len, uint64_t lsn)
{
    if (!fy_wal_fits(self, payload_len))
        return FERRY_ELIMIT;
    fy_be32_put(buf, S_MAGIC);
    fy_be32_put(buf + 4, (uint32_t)payload_len);
    fy_be64_put(buf + 8, lsn);
    fy_be64_put(buf + 16, s_sum(buf + FY_WAL_HDR, payload_len, lsn));
    size_t total = FY_WAL_HDR + payload_len;
    if (s_pwrite_all(self->fd, buf, total, self->pos) != 0 ||
        (self->sync && fdatasync(self->fd) != 0)) {
        fy_log(self->log, FY_LOG_ERROR, "wal", "append failed",
               "lsn=%llu bytes=%zu offset=%llu detail=\"%s\"", (unsigned long long)lsn, total,
               (unsigned long long)self->pos, strerror(errno));
        return FERRY_EIO;
    }
    self->pos += total;
    return FERRY_OK;
}

void
fy_wal_rewind(fy_wal_t *self)
{
    self->pos = 0;
}

fy_status_t
fy_wal_recreate(fy_wal_t *self, uint64_t size, fy_err_t *err)
{
    if (s_create(self->path, size, self->sync) != 0)
        return fy_err_set(err, FERRY_EIO, "cannot create the write-ahead log %s: %s", self->path,
                          strerror(errno));
    int fd = open(self->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return fy_err_set(err, FERRY_EIO, "cannot open the write-ahead log %s: %s", self->path,
                          strerror(errno));
    close(self->fd);
    self->fd = fd;
    self->size = size;
    self->pos = 0;
    return FERRY_OK;
}

fy_status_t
fy_wal_copy(const fy_wal_t *self, const char *path, fy_err_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fy_err_set(err, FERRY_EIO, "cannot make the log's copy: %s", strerror(errno));
    uint8_t buf[65536];
    bool ok = posix_fallocate(fd, 0, (off_t)self->size) == 0;
    for (uint64_t off = 0; ok && off < self->pos;) {
        size_t want = self->pos - off < sizeof buf ? (size_t)(self->pos - off) : sizeof buf;
        ssize_t n = pread(self->fd, buf, want, (off_t)off);
        ok = n > 0 && pwrite(fd, buf, (size_t)n, (off_t)off) == n;
        off += n > 0 ? (uint64_t)n : 0;
    }
    ok = ok && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok)
        return fy_err_set(err, FERRY_EIO, "cannot write the log's copy: %s", strerror(e));
    return FERRY_OK;
}
