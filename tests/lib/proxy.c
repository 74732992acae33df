/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - the loopback TCP proxy of fault tests (proxy.h). A blackhole is
 * a stall, as a real partition is: nothing is read or written, so TCP holds
 * the bytes and delivers them if the network comes back before either end
 * gives up; nothing is lost or garbled mid-stream.
 */
#define _GNU_SOURCE /* accept4 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_PAIRS 256
#define S_BUF   65536

typedef struct {
    int fd[2];          /* 0: the client's side, 1: the server's side; -1: none yet */
    char buf[2][S_BUF]; /* buf[i]: read from fd[i], to write to fd[1 - i] */
    size_t len[2], off[2];
} s_pair_t;

struct fy_proxy {
    pthread_t th;
    int lfd, wake[2];
    struct sockaddr_in up;
    char endpoint[64];
    atomic_int mode, stop;
    atomic_int gen, applied; /* fy_proxy_set waits until the thread applied its change */
    atomic_size_t accepted;
    s_pair_t *pairs[S_PAIRS];
    char watch[64];          /* bytes to look for in what passes (fy_proxy_watch) */
    atomic_size_t watch_len; /* 0: none */
    atomic_size_t seen;      /* reads that held them */
};

static void
s_close_fd(int fd, bool reset)
{
    if (fd < 0)
        return;
    if (reset) { /* RST, as a broken network path looks to the ends */
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static void
s_drop(fy_proxy_t *p, int i, bool reset)
{
    s_close_fd(p->pairs[i]->fd[0], reset);
    s_close_fd(p->pairs[i]->fd[1], reset);
    free(p->pairs[i]);
    p->pairs[i] = NULL;
}

/* Connects a pair waiting for the network to its server. */
static void
s_connect_up(fy_proxy_t *p, int i)
{
    s_pair_t *q = p->pairs[i];
    q->fd[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd[1] < 0 || connect(q->fd[1], (struct sockaddr *)&p->up, sizeof p->up) != 0)
        s_drop(p, i, true);
}

static void
s_accept(fy_proxy_t *p, int mode)
{
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    int i = 0;
    while (i < S_PAIRS && p->pairs[i])
        i++;
    if (mode == FY_PROXY_RESET || i == S_PAIRS) {
        s_close_fd(fd, true);
        return;
    }
    s_pair_t *q = calloc(1, sizeof *q);
    if (!q) {
        s_close_fd(fd, true);
        return;
    }
    q->fd[0] = fd;
    q->fd[1] = -1;
    p->pairs[i] = q;
    atomic_fetch_add(&p->accepted, 1);
    if (mode == FY_PROXY_PASS)
        s_connect_up(p, i);
}

/* Moves what is ready across pair @p i. @return false when it ended. */
static bool
s_relay(fy_proxy_t *p, s_pair_t *q, const struct pollfd *pf)
{
    size_t wl = atomic_load(&p->watch_len);
    for (int d = 0; d < 2; d++) {
        int from = q->fd[d], to = q->fd[1 - d];
        if (q->len[d] == 0 && (pf[d].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = read(from, q->buf[d], S_BUF);
            if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR)))
                return false;
            q->len[d] = n > 0 ? (size_t)n : 0;
            q->off[d] = 0;
            if (wl && n > 0 && memmem(q->buf[d], (size_t)n, p->watch, wl))
                atomic_fetch_add(&p->seen, 1);
        }
        if (q->len[d] > 0 && (pf[1 - d].revents & POLLOUT)) {
            /* MSG_NOSIGNAL: a peer that reset its end is a closed link
             * here, not a SIGPIPE that ends the test without a word. */
            ssize_t n = send(to, q->buf[d] + q->off[d], q->len[d], MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                return false;
            if (n > 0) {
                q->off[d] += (size_t)n;
                q->len[d] -= (size_t)n;
            }
        }
    }
    return true;
}

static void *
s_run(void *arg)
{
    fy_proxy_t *p = arg;
    struct pollfd pf[2 + 2 * S_PAIRS];
    while (!atomic_load(&p->stop)) {
        int gen = atomic_load(&p->gen);
        int mode = atomic_load(&p->mode);
        for (int i = 0; i < S_PAIRS; i++) {
            if (!p->pairs[i])
                continue;
            if (mode == FY_PROXY_RESET)
                s_drop(p, i, true);
            else if (mode == FY_PROXY_PASS && p->pairs[i]->fd[1] < 0)
                s_connect_up(p, i); /* held during a blackhole: the network is back */
        }
        atomic_store(&p->applied, gen);
        pf[0] = (struct pollfd){p->lfd, POLLIN, 0};
        pf[1] = (struct pollfd){p->wake[0], POLLIN, 0};
        int idx[S_PAIRS], n = 2;
        for (int i = 0; i < S_PAIRS; i++) {
            idx[i] = -1;
            s_pair_t *q = p->pairs[i];
            if (!q || mode != FY_PROXY_PASS)
                continue; /* a blackhole: nothing moves */
            idx[i] = n;
            for (int d = 0; d < 2; d++)
                pf[n + d] = (struct pollfd){
                    q->fd[d],
                    (short)((q->len[d] == 0 ? POLLIN : 0) | (q->len[1 - d] > 0 ? POLLOUT : 0)), 0};
            n += 2;
        }
        if (poll(pf, (nfds_t)n, 100) < 0 && errno != EINTR)
            break;
        if (pf[1].revents & POLLIN) {
            char b[64];
            if (read(p->wake[0], b, sizeof b) < 0) { /* a nudge: the mode changed */
            }
        }
        if (pf[0].revents & POLLIN)
            s_accept(p, atomic_load(&p->mode));
        for (int i = 0; i < S_PAIRS; i++)
            if (idx[i] >= 0 && p->pairs[i] && !s_relay(p, p->pairs[i], &pf[idx[i]]))
                s_drop(p, i, false); /* one end closed: close the other */
    }
    for (int i = 0; i < S_PAIRS; i++)
        if (p->pairs[i])
            s_drop(p, i, false);
    return NULL;
}

fy_proxy_t *
fy_proxy_start(const char *host, int port)
{
    fy_proxy_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->up.sin_family = AF_INET;
    p->up.sin_port = htons((uint16_t)port);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (inet_pton(AF_INET, host, &p->up.sin_addr) != 1 || p->lfd < 0 ||
        bind(p->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(p->lfd, 64) != 0 ||
        getsockname(p->lfd, (struct sockaddr *)&a, &alen) != 0 || pipe(p->wake) != 0) {
        fprintf(stderr, "proxy: cannot listen: %s\n", strerror(errno));
        if (p->lfd >= 0)
            close(p->lfd);
        free(p);
        return NULL;
    }
    snprintf(p->endpoint, sizeof p->endpoint, "tcp://127.0.0.1:%d", ntohs(a.sin_port));
    if (pthread_create(&p->th, NULL, s_run, p) != 0) {
        close(p->lfd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return NULL;
    }
    return p;
}

const char *
fy_proxy_endpoint(const fy_proxy_t *p)
{
    return p->endpoint;
}

void
fy_proxy_set(fy_proxy_t *p, fy_proxy_mode_t mode)
{
    atomic_store(&p->mode, (int)mode);
    int gen = atomic_fetch_add(&p->gen, 1) + 1;
    if (write(p->wake[1], "x", 1) < 0) { /* the thread looks again within 100 ms anyway */
    }
    /* Applied before returning: a reset is a reset even if PASS follows at once. */
    for (int i = 0; i < 2000 && atomic_load(&p->applied) < gen; i++)
        usleep(1000);
}

size_t
fy_proxy_connections(fy_proxy_t *p)
{
    return atomic_load(&p->accepted);
}

void
fy_proxy_stop(fy_proxy_t **pp)
{
    if (!pp || !*pp)
        return;
    fy_proxy_t *p = *pp;
    atomic_store(&p->stop, 1);
    fy_proxy_set(p, FY_PROXY_PASS);
    pthread_join(p->th, NULL);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p);
    *pp = NULL;
}

void
fy_proxy_watch(fy_proxy_t *p, const void *bytes, size_t len)
{
    if (len == 0 || len > sizeof p->watch)
        return;
    memcpy(p->watch, bytes, len);
    atomic_store(&p->seen, 0);
    atomic_store(&p->watch_len, len);
}

size_t
fy_proxy_seen(fy_proxy_t *p)
{
    return atomic_load(&p->seen);
}
