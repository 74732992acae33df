/* SPDX-License-Identifier: MIT */
/*
 * fixture.c - temporary directories and a ferryd child process for tests.
 */
#define _GNU_SOURCE
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

int
fy_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    int n = snprintf(out, cap, "%s/ferry-test-XXXXXX", base && *base ? base : "/tmp");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

static int
s_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int
fy_rmtree(const char *dir)
{
    return nftw(dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

long long
fy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
fy_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
s_file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : 0;
}

/* Scans the log from `from` for this pid's ready line; copies the endpoint. */
static int
s_find_ready(fy_ferryd_t *self, long from)
{
    FILE *f = fopen(self->log_path, "r");
    if (!f)
        return 0;
    fseek(f, from, SEEK_SET);
    char line[2048], pidtag[32];
    snprintf(pidtag, sizeof pidtag, "pid=%d ", (int)self->pid);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "msg=\"ready\"") || !strstr(line, pidtag))
            continue;
        char *ep = strstr(line, "endpoint=");
        if (ep && sscanf(ep, "endpoint=%127s", self->endpoint) == 1)
            found = 1;
    }
    fclose(f);
    return found;
}

/* FERRY_TEST_SECURE=1 (make test-secure): made once per test process. */
static struct {
    char dir[256], key[300], users[300];
    pid_t owner; /* a forked child that exits must not remove them */
} s_secure;

static void
s_secure_cleanup(void)
{
    if (getpid() == s_secure.owner)
        fy_rmtree(s_secure.dir);
}

static int
s_write_file(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* With FERRY_TEST_SECURE=1 every ferryd runs with CURVE and a users file
 * whose one user may do everything, and this process (with what it starts:
 * ferry, ferry-relay, examples) takes its keys from FERRY_SERVER_KEY and
 * FERRY_CLIENT_KEY: the suites run once with security on.
 * @return the flags to add (4, or 0 when off), or -1. */
static int
s_secure_flags(const char **argv)
{
    const char *on = getenv("FERRY_TEST_SECURE");
    if (!on || strcmp(on, "1") != 0)
        return 0;
    if (!s_secure.dir[0]) {
        char pub[41], sec[41], cpub[41], csec[41], path[320], text[400];
        if (fy_tmpdir(s_secure.dir, sizeof s_secure.dir) != 0 || zmq_curve_keypair(pub, sec) != 0 ||
            zmq_curve_keypair(cpub, csec) != 0)
            return -1;
        s_secure.owner = getpid();
        atexit(s_secure_cleanup);
        snprintf(s_secure.key, sizeof s_secure.key, "%s/server.key", s_secure.dir);
        snprintf(s_secure.users, sizeof s_secure.users, "%s/users.ini", s_secure.dir);
        snprintf(path, sizeof path, "%s/client.key", s_secure.dir);
        snprintf(text, sizeof text, "%s\n", sec);
        if (s_write_file(s_secure.key, 0600, text) != 0)
            return -1;
        snprintf(text, sizeof text, "%s\n", csec);
        if (s_write_file(path, 0600, text) != 0)
            return -1;
        snprintf(text, sizeof text, "[test]\nkey = %s\npublish = >\nconsume = >\nadmin = >\n",
                 cpub);
        if (s_write_file(s_secure.users, 0600, text) != 0)
            return -1;
        setenv("FERRY_SERVER_KEY", pub, 1);
        char spec[330];
        snprintf(spec, sizeof spec, "@%s", path);
        setenv("FERRY_CLIENT_KEY", spec, 1);
    }
    argv[0] = "--curve-secret";
    argv[1] = s_secure.key;
    argv[2] = "--users";
    argv[3] = s_secure.users;
    return 4;
}

int
fy_ferryd_start(fy_ferryd_t *self)
{
    const char *bin = getenv("FERRYD");
    if (!bin) {
        fprintf(stderr, "fixture: FERRYD is not set (run through make test)\n");
        return -1;
    }
    if (self->dir[0] == '\0' && fy_tmpdir(self->dir, sizeof self->dir) != 0)
        return -1;
    snprintf(self->log_path, sizeof self->log_path, "%s/ferryd.log", self->dir);
    char datadir[300];
    snprintf(datadir, sizeof datadir, "%s/data", self->dir);
    const char *bind = self->endpoint[0] ? self->endpoint : "tcp://127.0.0.1:*";
    char bindcopy[128];
    snprintf(bindcopy, sizeof bindcopy, "%s", bind);
    long from = s_file_size(self->log_path);

    const char *argv[24] = {bin, "--data", datadir, "--bind", bindcopy, "--log-level", "info"};
    int argc = 7;
    for (int i = 0; i < 8 && self->extra[i]; i++)
        argv[argc++] = self->extra[i];
    int secure = s_secure_flags(argv + argc);
    if (secure < 0) {
        fprintf(stderr, "fixture: cannot make the keys of FERRY_TEST_SECURE\n");
        return -1;
    }
    argc += secure;
    argv[argc] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* Die with the test, and never hold the test's stdout open. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(self->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int null = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            close(null);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    self->pid = pid;
    long long deadline = fy_now_ms() + 10000;
    while (fy_now_ms() < deadline) {
        if (s_find_ready(self, from))
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            self->pid = 0;
            fprintf(stderr, "fixture: ferryd exited early (status %d), log %s:\n", status,
                    self->log_path);
            char cmd[400];
            snprintf(cmd, sizeof cmd, "tail -n 5 '%s' >&2", self->log_path);
            if (system(cmd) != 0)
                fprintf(stderr, "fixture: (cannot show the log)\n");
            return -1;
        }
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "fixture: ferryd not ready within 10 s, log %s\n", self->log_path);
    fy_ferryd_signal(self, SIGKILL);
    return -1;
}

int
fy_ferryd_signal(fy_ferryd_t *self, int sig)
{
    if (self->pid <= 0)
        return -1;
    kill(self->pid, sig);
    int status;
    pid_t r;
    do {
        r = waitpid(self->pid, &status, 0);
    } while (r < 0 && errno == EINTR);
    self->pid = 0;
    return r < 0 ? -1 : status;
}

int
fy_ferryd_log_count(const fy_ferryd_t *self, const char *needle)
{
    FILE *f = fopen(self->log_path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

void
fy_ferryd_cleanup(fy_ferryd_t *self)
{
    if (self->pid > 0)
        fy_ferryd_signal(self, SIGKILL);
    if (self->dir[0] && !getenv("FERRY_KEEP_TMP"))
        fy_rmtree(self->dir);
    self->dir[0] = '\0';
}

int
fy_ferryd_state_new(void **state)
{
    fy_ferryd_t *d = calloc(1, sizeof *d);
    *state = d;
    return d ? 0 : -1;
}

int
fy_ferryd_state_free(void **state)
{
    fy_ferryd_cleanup(*state);
    free(*state);
    *state = NULL;
    return 0;
}

int
fy_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}
