/* SPDX-License-Identifier: MIT */
/*
 * powercut.c - the power-cut preload library (powercut.h).
 *
 * Every wrapped call finds the real one with dlsym(RTLD_NEXT). A write to a
 * tracked file runs under one mutex together with its record, so the cut
 * (which takes the mutex) sees every file between two writes. Records are
 * kept per inode: {offset, old bytes within the old size, old size, new
 * bytes}; a sync of the inode drops them. The cut applies the records of
 * each inode backwards (old bytes back, then the size), then in random mode
 * writes again the ones it keeps, forwards.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "powercut.h"

#define S_FDS 4096 /* fds classified; higher ones are looked up each time */

typedef struct {
    off_t off;
    size_t len;     /* bytes written */
    off_t old_size; /* the file's size before */
    uint8_t *old;   /* the bytes overwritten: min(len, old_size - off) of them */
    size_t old_len;
    uint8_t *new;  /* the bytes written */
    bool truncate; /* a size change (ftruncate): new size in off */
} s_rec_t;

typedef struct {
    dev_t dev;
    ino_t ino;
    int fd; /* our own dup of it, for the revert */
    s_rec_t *recs;
    size_t n, cap;
} s_file_t;

static struct {
    bool on;
    char dir[PATH_MAX];
    size_t dir_len;
    pthread_mutex_t mu;
    s_file_t *files;
    size_t nfiles, cap;
    signed char fdclass[S_FDS]; /* 0 unknown, 1 tracked, -1 not */
    long long syncs, at_sync;
    bool count_fsync_only; /* POWERCUT_COUNT=fsync: O_DSYNC writes do not count */
    bool random_mode;
    unsigned seed;
    int report_fd; /* POWERCUT_REPORT, opened at start (O_APPEND) */
    int pipe[2];
    int signo;
    int sync_delay_ms; /* POWERCUT_SYNC_DELAY_MS: a slow disk */
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .report_fd = -1, .pipe = {-1, -1}};

#define REAL(name, ret, ...)                \
    static ret (*real_##name)(__VA_ARGS__); \
    if (!real_##name)                       \
        real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);

/* ---- which fds are tracked ------------------------------------------------ */

static bool
s_tracked_path(int fd)
{
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0)
        return false;
    path[n] = '\0';
    return (size_t)n > S.dir_len && strncmp(path, S.dir, S.dir_len) == 0 && path[S.dir_len] == '/';
}

static bool
s_tracked(int fd)
{
    if (!S.on || fd < 0)
        return false;
    if (fd < S_FDS) {
        signed char c = __atomic_load_n(&S.fdclass[fd], __ATOMIC_RELAXED);
        if (c)
            return c > 0;
        c = s_tracked_path(fd) ? 1 : -1;
        __atomic_store_n(&S.fdclass[fd], c, __ATOMIC_RELAXED);
        return c > 0;
    }
    return s_tracked_path(fd);
}

static void
s_forget_fd(int fd)
{
    if (fd >= 0 && fd < S_FDS)
        __atomic_store_n(&S.fdclass[fd], 0, __ATOMIC_RELAXED);
}

/* ---- records ------------------------------------------------------------- */

static s_file_t *
s_file(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    for (size_t i = 0; i < S.nfiles; i++)
        if (S.files[i].dev == st.st_dev && S.files[i].ino == st.st_ino)
            return &S.files[i];
    if (S.nfiles == S.cap) {
        size_t cap = S.cap ? S.cap * 2 : 16;
        s_file_t *f = realloc(S.files, cap * sizeof *f);
        if (!f)
            return NULL;
        S.files = f;
        S.cap = cap;
    }
    s_file_t *f = &S.files[S.nfiles++];
    memset(f, 0, sizeof *f);
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return f;
}

static void
s_drop_recs(s_file_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->recs[i].old);
        free(f->recs[i].new);
    }
    f->n = 0;
}

static off_t
s_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_size : 0;
}

/* Records a write of @p iov at @p off (before it is made). */
static void
s_record(int fd, off_t off, const struct iovec *iov, int iovcnt)
{
    s_file_t *f = s_file(fd);
    if (!f)
        abort(); /* a test tool that cannot record must not pretend */
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        s_rec_t *r = realloc(f->recs, cap * sizeof *r);
        if (!r)
            abort();
        f->recs = r;
        f->cap = cap;
    }
    s_rec_t *r = &f->recs[f->n++];
    memset(r, 0, sizeof *r);
    r->off = off;
    r->len = len;
    r->old_size = s_size(fd);
    r->new = malloc(len ? len : 1);
    if (!r->new)
        abort();
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(r->new + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    if (off < r->old_size) {
        r->old_len = (size_t)(r->old_size - off) < len ? (size_t)(r->old_size - off) : len;
        r->old = malloc(r->old_len);
        if (!r->old || pread(fd, r->old, r->old_len, off) != (ssize_t)r->old_len)
            abort();
    }
}

static void
s_record_truncate(int fd, off_t size)
{
    s_file_t *f = s_file(fd);
    if (!f)
        abort();
    off_t old = s_size(fd);
    struct iovec none = {NULL, 0};
    if (size >= old) { /* growing: reverting shrinks it back */
        s_record(fd, size, &none, 0);
        f->recs[f->n - 1].truncate = true;
        f->recs[f->n - 1].old_size = old;
        return;
    }
    /* Shrinking: keep the tail it cuts off, as a write of those bytes. */
    size_t tail = (size_t)(old - size);
    uint8_t *buf = malloc(tail);
    if (!buf || pread(fd, buf, tail, size) != (ssize_t)tail)
        abort();
    s_record(fd, size, &none, 0);
    s_rec_t *r = &f->recs[f->n - 1];
    r->truncate = true;
    r->old_size = old;
    free(r->old);
    r->old = buf;
    r->old_len = tail;
}

/* ---- the cut ------------------------------------------------------------- */

static unsigned
s_rand(void)
{
    S.seed = S.seed * 1103515245u + 12345u;
    return (S.seed >> 16) & 0x7fff;
}

/* The power goes: the process dies at once, then every tracked file is put
 * back as of its last sync. The process cannot revert its own files while
 * its other threads run (one reading LMDB's map past a size put back would
 * fault), so a child forked here does it once the process is gone, writes
 * the report line when done (tests wait for it), and exits. Called with
 * the mutex held: no tracked write is half done. */
static void
s_cut(void)
{
    pid_t parent = getpid();
    pid_t child = fork();
    if (child != 0) {
        kill(parent, SIGKILL);
        for (;;)
            pause();
    }
    while (getppid() == parent)
        usleep(1000);
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t)
    REAL(ftruncate, int, int, off_t)
    size_t reverted = 0, kept = 0, files = 0;
    for (size_t i = 0; i < S.nfiles; i++) {
        s_file_t *f = &S.files[i];
        if (!f->n)
            continue;
        files++;
        for (size_t k = f->n; k-- > 0;) { /* backwards: to the synced state */
            s_rec_t *r = &f->recs[k];
            if (r->truncate) {
                if (real_ftruncate(f->fd, r->old_size) != 0 ||
                    (r->old_len &&
                     real_pwrite(f->fd, r->old, r->old_len, r->off) != (ssize_t)r->old_len))
                    _exit(3);
                continue;
            }
            if (r->old_len && real_pwrite(f->fd, r->old, r->old_len, r->off) != (ssize_t)r->old_len)
                _exit(3);
            if (r->off + (off_t)r->len > r->old_size && real_ftruncate(f->fd, r->old_size) != 0)
                _exit(3);
        }
        for (size_t k = 0; k < f->n; k++) { /* random mode: some survive */
            s_rec_t *r = &f->recs[k];
            if (!S.random_mode || (s_rand() & 1)) {
                reverted++;
                continue;
            }
            kept++;
            if (r->truncate ? real_ftruncate(f->fd, r->off) != 0
                            : real_pwrite(f->fd, r->new, r->len, r->off) != (ssize_t)r->len)
                _exit(3);
        }
    }
    /* Every descriptor closed first: the dead process's locks go with them. */
    for (int fd = 3; fd < 65536; fd++)
        if (fd != S.report_fd)
            syscall(SYS_close, fd);
    if (S.report_fd >= 0) {
        char line[160];
        int n = snprintf(line, sizeof line, "cut files=%zu reverted=%zu kept=%zu syncs=%lld\n",
                         files, reverted, kept, S.syncs);
        if (syscall(SYS_write, S.report_fd, line, (size_t)n) < 0)
            _exit(4);
    }
    _exit(0);
}

static void
s_on_signal(int sig)
{
    (void)sig;
    char b = 1;
    int saved = errno;
    /* The raw system call: async-signal-safe, and not our write(). */
    if (syscall(SYS_write, S.pipe[1], &b, 1) < 0) { /* the watcher is there */
    }
    errno = saved;
}

static void *
s_watch(void *arg)
{
    (void)arg;
    char b;
    while (read(S.pipe[0], &b, 1) != 1)
        ;
    pthread_mutex_lock(&S.mu); /* no tracked write half done */
    s_cut();
    return NULL;
}

/* A sync point of @p fd: the Nth cuts before it takes effect; else the
 * file's records are dropped (its writes are durable now). Mutex held. */
static void
s_sync_point(int fd)
{
    if (++S.syncs == S.at_sync)
        s_cut();
    s_file_t *f = s_file(fd);
    if (f)
        s_drop_recs(f);
}

static bool
s_dsync(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & (O_DSYNC | O_SYNC));
}

__attribute__((constructor)) static void
s_init(void)
{
    const char *dir = getenv("POWERCUT_DIR");
    if (!dir || *dir != '/')
        return;
    if (!realpath(dir, S.dir)) /* not made yet: the program makes it */
        snprintf(S.dir, sizeof S.dir, "%s", dir);
    S.dir_len = strlen(S.dir);
    const char *v = getenv("POWERCUT_AT_SYNC");
    S.at_sync = v ? atoll(v) : 0;
    v = getenv("POWERCUT_COUNT");
    S.count_fsync_only = v && !strcmp(v, "fsync");
    v = getenv("POWERCUT_MODE");
    S.random_mode = v && !strcmp(v, "random");
    v = getenv("POWERCUT_SEED");
    S.seed = v ? (unsigned)strtoul(v, NULL, 10) : (unsigned)getpid();
    v = getenv("POWERCUT_REPORT");
    if (v && (S.report_fd = (int)syscall(SYS_openat, AT_FDCWD, v,
                                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
        abort();
    v = getenv("POWERCUT_SIGNAL");
    S.signo = v ? atoi(v) : SIGUSR2;
    v = getenv("POWERCUT_SYNC_DELAY_MS");
    S.sync_delay_ms = v ? atoi(v) : 0;
    if (pipe2(S.pipe, O_CLOEXEC) != 0)
        abort();
    struct sigaction sa = {.sa_handler = s_on_signal, .sa_flags = SA_RESTART};
    sigaction(S.signo, &sa, NULL);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, s_watch, NULL) != 0)
        abort();
    S.on = true;
}

/* ---- the wrapped calls --------------------------------------------------- */

static ssize_t
s_write_at(int fd, const struct iovec *iov, int iovcnt, off_t off, bool at_pos)
{
    REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t)
    REAL(writev, ssize_t, int, const struct iovec *, int)
    pthread_mutex_lock(&S.mu);
    if (!at_pos) {
        int fl = fcntl(fd, F_GETFL);
        off = fl >= 0 && (fl & O_APPEND) ? s_size(fd) : lseek(fd, 0, SEEK_CUR);
    }
    bool dsync = s_dsync(fd);
    if (dsync) { /* synced when it returns: a sync point, nothing to revert */
        if (!S.count_fsync_only && ++S.syncs == S.at_sync)
            s_cut();
    } else {
        s_record(fd, off, iov, iovcnt);
    }
    ssize_t n = at_pos ? real_pwritev(fd, iov, iovcnt, off) : real_writev(fd, iov, iovcnt);
    int e = errno;
    pthread_mutex_unlock(&S.mu);
    errno = e;
    return n;
}

ssize_t
write(int fd, const void *buf, size_t len)
{
    REAL(write, ssize_t, int, const void *, size_t)
    if (!s_tracked(fd))
        return real_write(fd, buf, len);
    struct iovec v = {(void *)buf, len};
    return s_write_at(fd, &v, 1, 0, false);
}

ssize_t
writev(int fd, const struct iovec *iov, int iovcnt)
{
    REAL(writev, ssize_t, int, const struct iovec *, int)
    if (!s_tracked(fd))
        return real_writev(fd, iov, iovcnt);
    return s_write_at(fd, iov, iovcnt, 0, false);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
    REAL(pwrite, ssize_t, int, const void *, size_t, off_t)
    if (!s_tracked(fd))
        return real_pwrite(fd, buf, len, off);
    struct iovec v = {(void *)buf, len};
    return s_write_at(fd, &v, 1, off, true);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    return pwrite(fd, buf, len, off);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    REAL(pwritev, ssize_t, int, const struct iovec *, int, off_t)
    if (!s_tracked(fd))
        return real_pwritev(fd, iov, iovcnt, off);
    return s_write_at(fd, iov, iovcnt, off, true);
}

static int
s_sync(int fd, int (*real)(int))
{
    if (!s_tracked(fd))
        return real(fd);
    pthread_mutex_lock(&S.mu);
    s_sync_point(fd); /* may cut here, before the sync */
    int rc = real(fd);
    int e = errno;
    if (S.sync_delay_ms > 0) { /* a slow disk: each flush takes this much longer */
        struct timespec ts = {S.sync_delay_ms / 1000, (S.sync_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_unlock(&S.mu);
    errno = e;
    return rc;
}

int
fsync(int fd)
{
    REAL(fsync, int, int)
    return s_sync(fd, real_fsync);
}

int
fdatasync(int fd)
{
    REAL(fdatasync, int, int)
    return s_sync(fd, real_fdatasync);
}

void
sync(void)
{
    REAL(sync, void, void)
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.nfiles; i++)
        s_drop_recs(&S.files[i]);
    real_sync();
    pthread_mutex_unlock(&S.mu);
}

int
syncfs(int fd)
{
    REAL(syncfs, int, int)
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.nfiles; i++)
        s_drop_recs(&S.files[i]);
    int rc = real_syncfs(fd);
    pthread_mutex_unlock(&S.mu);
    return rc;
}

int
ftruncate(int fd, off_t size)
{
    REAL(ftruncate, int, int, off_t)
    if (!s_tracked(fd))
        return real_ftruncate(fd, size);
    pthread_mutex_lock(&S.mu);
    s_record_truncate(fd, size);
    int rc = real_ftruncate(fd, size);
    int e = errno;
    pthread_mutex_unlock(&S.mu);
    errno = e;
    return rc;
}

int
ftruncate64(int fd, off_t size)
{
    return ftruncate(fd, size);
}

int
posix_fallocate(int fd, off_t off, off_t len)
{
    REAL(posix_fallocate, int, int, off_t, off_t)
    if (!s_tracked(fd))
        return real_posix_fallocate(fd, off, len);
    pthread_mutex_lock(&S.mu);
    if (off + len > s_size(fd))
        s_record_truncate(fd, off + len); /* the new blocks read as zeros */
    int rc = real_posix_fallocate(fd, off, len);
    pthread_mutex_unlock(&S.mu);
    return rc;
}

int
posix_fallocate64(int fd, off_t off, off_t len)
{
    return posix_fallocate(fd, off, len);
}

/* An fd number changes hands: forget what it was. */
int
close(int fd)
{
    REAL(close, int, int)
    s_forget_fd(fd);
    return real_close(fd);
}

int
dup2(int fd, int to)
{
    REAL(dup2, int, int, int)
    s_forget_fd(to);
    return real_dup2(fd, to);
}

int
dup3(int fd, int to, int flags)
{
    REAL(dup3, int, int, int, int)
    s_forget_fd(to);
    return real_dup3(fd, to, flags);
}

/* The mode argument of an open call, present with O_CREAT or O_TMPFILE. */
#define S_MODE(flags)                      \
    mode_t mode = 0;                       \
    if ((flags) & (O_CREAT | O_TMPFILE)) { \
        va_list ap;                        \
        va_start(ap, flags);               \
        mode = (mode_t)va_arg(ap, int);    \
        va_end(ap);                        \
    }

/* An fd number handed out by open may have been closed where close() is
 * not seen (fclose inside libc): forget what it was. */
static int
s_opened(int fd)
{
    s_forget_fd(fd);
    return fd;
}

int
open(const char *path, int flags, ...)
{
    REAL(open, int, const char *, int, ...)
    S_MODE(flags)
    return s_opened(real_open(path, flags, mode));
}

int
open64(const char *path, int flags, ...)
{
    REAL(open64, int, const char *, int, ...)
    S_MODE(flags)
    return s_opened(real_open64(path, flags, mode));
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    REAL(openat, int, int, const char *, int, ...)
    S_MODE(flags)
    return s_opened(real_openat(dirfd, path, flags, mode));
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
    REAL(openat64, int, int, const char *, int, ...)
    S_MODE(flags)
    return s_opened(real_openat64(dirfd, path, flags, mode));
}
