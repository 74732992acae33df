/* SPDX-License-Identifier: MIT */
/*
 * harness.c - libferry helpers shared by the integration tests.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "clock.h"

ferry_client_t *
fy_connect(const char *endpoint, int timeout_ms, size_t window)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    ferry_status_t st = FERRY_EINVAL;
    if (o && ferry_options_set_server(o, endpoint) == FERRY_OK &&
        ferry_options_set_timeout_ms(o, timeout_ms) == FERRY_OK &&
        ferry_options_set_window(o, window) == FERRY_OK)
        st = ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    if (!c) /* say why: a test whose setup fails shows only that */
        fprintf(stderr, "harness: cannot connect to %s: %s (%s)\n", endpoint, ferry_errname(st),
                ferry_strerror(st));
    return c;
}

int
fy_fx_setup_with(void **state, const char *const *extra)
{
    fy_fx_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    if (!fx)
        return -1;
    for (int i = 0; extra && extra[i] && i < 7; i++)
        fx->d.extra[i] = extra[i];
    if (fy_ferryd_start(&fx->d) != 0) {
        fprintf(stderr, "harness: ferryd did not start (log %s)\n", fx->d.log_path);
        return -1;
    }
    fx->c = fy_connect(fx->d.endpoint, 5000, 1000);
    return fx->c ? 0 : -1;
}

int
fy_fx_setup(void **state)
{
    return fy_fx_setup_with(state, NULL);
}

int
fy_fx_teardown(void **state)
{
    fy_fx_t *fx = *state;
    if (fx) {
        ferry_client_destroy(&fx->c);
        fy_ferryd_cleanup(&fx->d);
        free(fx);
    }
    *state = NULL;
    return 0;
}

ferry_status_t
fy_read_all(ferry_client_t *c, const char *topic, fy_copied_t **out, size_t *n)
{
    size_t cap = 1024, len = 0;
    fy_copied_t *all = malloc(cap * sizeof *all);
    uint64_t from = 1;
    ferry_status_t st = all ? FERRY_OK : FERRY_ENOMEM;
    while (st == FERRY_OK) {
        const ferry_stored_message_t *msgs;
        size_t got;
        st = ferry_client_get(c, topic, from, 1000, &msgs, &got);
        if (st || got == 0)
            break;
        for (size_t i = 0; i < got; i++) {
            if (len == cap) {
                fy_copied_t *more = realloc(all, 2 * cap * sizeof *all);
                if (!more) {
                    st = FERRY_ENOMEM;
                    break;
                }
                all = more;
                cap *= 2;
            }
            fy_copied_t *m = &all[len++];
            memset(m, 0, sizeof *m);
            m->seq = msgs[i].seq;
            m->len = msgs[i].len;
            snprintf(m->id, sizeof m->id, "%s", msgs[i].id ? msgs[i].id : "");
            snprintf(m->key, sizeof m->key, "%s", msgs[i].key ? msgs[i].key : "");
            memcpy(m->payload, msgs[i].data, msgs[i].len < 63 ? msgs[i].len : 63);
        }
        from = msgs[got - 1].seq + 1;
    }
    if (st) {
        free(all);
        all = NULL;
        len = 0;
    }
    *out = all;
    *n = len;
    return st;
}

int
fy_run(const char *cmdline, char *out, size_t cap)
{
    FILE *p = popen(cmdline, "r");
    if (!p)
        return -1;
    size_t n = 0;
    if (out && cap) {
        n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
    }
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int
fy_spawn(const char *log, const char *const *argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int
fy_kill_wait(int pid, int sig)
{
    int status = -1;
    kill(pid, sig);
    waitpid(pid, &status, 0);
    return status;
}

int
fy_run_killing(const char *log, const char *const *argv, int kills, int min_ms, int spread_ms,
               int *killed)
{
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    int status = -1;
    *killed = 0;
    for (;;) {
        int pid = fy_spawn(log, argv);
        if (pid < 0)
            return -1;
        if (*killed >= kills) {
            waitpid(pid, &status, 0);
            return status;
        }
        fy_sleep_ms(min_ms + (int)(rand_r(&seed) % (unsigned)(spread_ms > 0 ? spread_ms : 1)));
        status = fy_kill_wait(pid, SIGKILL);
        if (!WIFSIGNALED(status))
            return status; /* it finished before the kill */
        (*killed)++;
    }
}

/* A key given as z85 or @FILE (its first line) into out (41 bytes). */
static bool
s_key(const char *spec, char *out)
{
    char line[128] = "";
    if (spec[0] == '@' && strlen(spec) != 40) { /* 40: a key that begins with '@' */
        FILE *f = fopen(spec + 1, "r");
        if (!f)
            return false;
        bool got = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (!got)
            return false;
        spec = line;
    }
    size_t n = strcspn(spec, "\r\n");
    if (n != 40)
        return false;
    memcpy(out, spec, 40);
    out[40] = '\0';
    return true;
}

void *
fy_raw_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    const char *sk = getenv("FERRY_SERVER_KEY"), *ck = getenv("FERRY_CLIENT_KEY");
    if (!s || !sk || !*sk || !ck || !*ck)
        return s;
    char server[41], secret[41], public[41];
    if (!s_key(sk, server) || !s_key(ck, secret) || zmq_curve_public(public, secret) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 41) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, public, 41) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, 41) != 0) {
        zmq_close(s);
        return NULL;
    }
    return s;
}

int
fy_http(int port, const char *method, const char *path, char *out, size_t cap)
{
    return fy_http_with(port, method, path, NULL, out, cap);
}

int
fy_http_with(int port, const char *method, const char *path, const char *header, char *out,
             size_t cap)
{
    out[0] = '\0';
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        return -1;
    }
    char req[600];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\n%s%s\r\n", method, path,
                     header ? header : "", header ? "\r\n" : "");
    if (n <= 0 || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fd, out + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    return 0;
}

int
fy_tmpfs_mount(char *dir, size_t cap, const char *size)
{
    if (geteuid() != 0) {
        fprintf(stderr, "mounting a tmpfs needs root (CI runs as root)\n");
        return -1;
    }
    if (fy_tmpdir(dir, cap) != 0)
        return -1;
    char cmd[400], out[256];
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=%s ferry-test '%s' 2>&1", size, dir);
    if (fy_run(cmd, out, sizeof out) != 0) {
        fprintf(stderr, "cannot mount a tmpfs on %s: %s\n", dir, out);
        fy_rmtree(dir);
        return -1;
    }
    return 0;
}

void
fy_tmpfs_unmount(const char *dir)
{
    char cmd[400], out[256];
    snprintf(cmd, sizeof cmd, "umount -l '%s' 2>&1", dir);
    fy_run(cmd, out, sizeof out);
    fy_rmtree(dir);
}

int
fy_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return -1;
}

int
fy_fx_tmpfs_setup(void **state, const char *size)
{
    fy_fx_tmpfs_t *fx = calloc(1, sizeof *fx);
    void *inner = NULL;
    *state = fx;
    if (!fx || fy_fx_setup(&inner) != 0)
        return -1;
    fx->fx = inner;
    if (fy_tmpfs_mount(fx->mnt, sizeof fx->mnt, size) != 0)
        return -1;
    fx->mounted = true;
    return 0;
}

int
fy_fx_tmpfs_teardown(void **state)
{
    fy_fx_tmpfs_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->mounted)
        fy_tmpfs_unmount(fx->mnt);
    void *inner = fx->fx;
    if (inner)
        fy_fx_teardown(&inner);
    free(fx);
    return 0;
}

long
fy_proc_kib(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = atol(line + n + 1);
            break;
        }
    if (f)
        fclose(f);
    return kib;
}
