/* SPDX-License-Identifier: MIT */
/*
 * raftlinks.c - the links between a cluster's nodes, cut at will
 * (raftlinks.h). One poll loop: the listeners, then each connection's two
 * sockets; a connection's first 16 bytes (libraft's handshake: protocol,
 * server id) say which node it comes from.
 */
#include "raftlinks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_CONNS_MAX 64
#define S_HELLO     16 /* protocol and server id, 8 bytes each */

typedef struct {
    int in, out; /* from the connecting node; to the node it reaches */
    int to;      /* node id it reaches */
    int from;    /* node id it comes from: 0 until its handshake came */
    uint8_t hello[S_HELLO];
    size_t got;
} s_conn_t;

struct fy_links {
    int n;
    int ports[FY_LINKS_MAX];  /* the nodes' real ports */
    int listen[FY_LINKS_MAX]; /* our listeners */
    int lport[FY_LINKS_MAX];
    s_conn_t conns[S_CONNS_MAX];
    size_t nconns;
    pthread_t thread;
    pthread_mutex_t mu;
    bool cut[FY_LINKS_MAX + 1][FY_LINKS_MAX + 1]; /* [from][to] */
    unsigned gen, applied;                        /* changes asked / applied */
    bool stop;
    size_t refused;
    int wake[2]; /* a pipe: a change was made */
};

static int
s_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    socklen_t len = sizeof sin;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sin.sin_port);
    return fd;
}

static int
s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Closes a connection with a reset, as a cut network would look to both. */
static void
s_drop(fy_links_t *l, size_t i)
{
    s_conn_t *c = &l->conns[i];
    struct linger lg = {1, 0};
    if (c->in >= 0) {
        setsockopt(c->in, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->in);
    }
    if (c->out >= 0) {
        setsockopt(c->out, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(c->out);
    }
    l->conns[i] = l->conns[--l->nconns];
}

static bool
s_is_cut(fy_links_t *l, int from, int to)
{
    pthread_mutex_lock(&l->mu);
    bool cut = l->cut[from][to];
    pthread_mutex_unlock(&l->mu);
    return cut;
}

/* Moves what @p from has to @p to. @return false when the connection ends. */
static bool
s_relay(int from, int to)
{
    uint8_t buf[65536];
    ssize_t r = read(from, buf, sizeof buf);
    if (r <= 0)
        return false;
    for (ssize_t off = 0; off < r;) {
        ssize_t w = send(to, buf + off, (size_t)(r - off), MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

/* The handshake's bytes so far; once whole, the link is known. */
static bool
s_hello(fy_links_t *l, s_conn_t *c)
{
    ssize_t r = read(c->in, c->hello + c->got, S_HELLO - c->got);
    if (r <= 0)
        return false;
    c->got += (size_t)r;
    if (c->got < S_HELLO)
        return true;
    uint64_t id = 0;
    for (int b = 7; b >= 0; b--)
        id = id << 8 | c->hello[8 + b];
    if (id < 1 || id > (uint64_t)l->n)
        return false;
    c->from = (int)id;
    if (s_is_cut(l, c->from, c->to)) {
        __atomic_add_fetch(&l->refused, 1, __ATOMIC_RELAXED);
        return false;
    }
    return send(c->out, c->hello, S_HELLO, MSG_NOSIGNAL) == S_HELLO;
}

static void *
s_run(void *arg)
{
    fy_links_t *l = arg;
    for (;;) {
        struct pollfd fds[1 + FY_LINKS_MAX + 2 * S_CONNS_MAX];
        size_t nf = 0;
        fds[nf++] = (struct pollfd){l->wake[0], POLLIN, 0};
        for (int i = 0; i < l->n; i++)
            fds[nf++] = (struct pollfd){l->listen[i], POLLIN, 0};
        size_t first = nf;
        for (size_t i = 0; i < l->nconns; i++) {
            fds[nf++] = (struct pollfd){l->conns[i].in, POLLIN, 0};
            fds[nf++] = (struct pollfd){l->conns[i].out, POLLIN, 0};
        }
        if (poll(fds, nf, 100) < 0 && errno != EINTR)
            break;
        pthread_mutex_lock(&l->mu);
        bool stop = l->stop;
        unsigned gen = l->gen;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        if (fds[0].revents & POLLIN) {
            char b[64];
            (void)!read(l->wake[0], b, sizeof b);
        }
        /* Connections first (their slots move when one is dropped). */
        for (size_t k = l->nconns; k-- > 0;) {
            s_conn_t *c = &l->conns[k];
            short rin = fds[first + 2 * k].revents, rout = fds[first + 2 * k + 1].revents;
            bool ok = true;
            if (c->from && s_is_cut(l, c->from, c->to)) {
                __atomic_add_fetch(&l->refused, 1, __ATOMIC_RELAXED);
                ok = false;
            } else if (rin & (POLLIN | POLLHUP | POLLERR)) {
                ok = c->from ? s_relay(c->in, c->out) : s_hello(l, c);
            }
            if (ok && (rout & (POLLIN | POLLHUP | POLLERR)))
                ok = s_relay(c->out, c->in);
            if (!ok)
                s_drop(l, k);
        }
        for (int i = 0; i < l->n; i++) {
            if (!(fds[1 + i].revents & POLLIN))
                continue;
            int in = accept(l->listen[i], NULL, NULL);
            if (in < 0)
                continue;
            int out = l->nconns < S_CONNS_MAX ? s_connect(l->ports[i]) : -1;
            if (out < 0) { /* the node is down: so is the link */
                close(in);
                continue;
            }
            l->conns[l->nconns++] = (s_conn_t){.in = in, .out = out, .to = i + 1};
        }
        pthread_mutex_lock(&l->mu);
        l->applied = gen;
        pthread_mutex_unlock(&l->mu);
    }
    while (l->nconns)
        s_drop(l, l->nconns - 1);
    return NULL;
}

fy_links_t *
fy_links_start(int n, const int *ports)
{
    fy_links_t *l = calloc(1, sizeof *l);
    if (!l || n < 1 || n > FY_LINKS_MAX) {
        free(l);
        return NULL;
    }
    l->n = n;
    pthread_mutex_init(&l->mu, NULL);
    bool ok = pipe(l->wake) == 0;
    for (int i = 0; i < n; i++) {
        l->ports[i] = ports[i];
        l->listen[i] = ok ? s_listen(&l->lport[i]) : -1;
        ok = ok && l->listen[i] >= 0;
    }
    if (!ok || pthread_create(&l->thread, NULL, s_run, l) != 0) {
        fprintf(stderr, "raftlinks: cannot start: %s\n", strerror(errno));
        for (int i = 0; i < n; i++)
            if (l->listen[i] > 0)
                close(l->listen[i]);
        free(l);
        return NULL;
    }
    return l;
}

int
fy_links_port(const fy_links_t *l, int i)
{
    return l->lport[i];
}

void
fy_links_cut(fy_links_t *l, int from, int to, bool cut)
{
    pthread_mutex_lock(&l->mu);
    l->cut[from][to] = cut;
    unsigned want = ++l->gen;
    pthread_mutex_unlock(&l->mu);
    (void)!write(l->wake[1], "x", 1);
    /* Applied once a turn of the loop began after the change. */
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool done = (int)(l->applied - want) >= 0;
        pthread_mutex_unlock(&l->mu);
        if (done)
            return;
        usleep(1000);
    }
}

void
fy_links_isolate(fy_links_t *l, int id, bool cut)
{
    for (int other = 1; other <= l->n; other++)
        if (other != id) {
            fy_links_cut(l, id, other, cut);
            fy_links_cut(l, other, id, cut);
        }
}

size_t
fy_links_refused(fy_links_t *l)
{
    return __atomic_load_n(&l->refused, __ATOMIC_RELAXED);
}

void
fy_links_stop(fy_links_t **lp)
{
    fy_links_t *l = *lp;
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    (void)!write(l->wake[1], "x", 1);
    pthread_join(l->thread, NULL);
    for (int i = 0; i < l->n; i++)
        close(l->listen[i]);
    close(l->wake[0]);
    close(l->wake[1]);
    pthread_mutex_destroy(&l->mu);
    free(l);
    *lp = NULL;
}
