/* SPDX-License-Identifier: MIT */
/*
 * peerq.c - held replies and parked requests per peer (peerq.h). Few peers
 * are ever in here at once (those that stopped reading), so they are a
 * plain array searched by identity.
 */
#include "peerq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"

/* One reply or request: its frames. */
typedef struct {
    zmq_msg_t *frames;
    size_t n;
    uint64_t bytes;
} s_entry_t;

/* Entries in order: taken from head, added at the end. */
typedef struct {
    s_entry_t *e;
    size_t head, count, cap;
} s_fifo_t;

typedef struct {
    uint8_t id[256];
    size_t id_len;
    s_fifo_t held, parked;
    uint64_t held_bytes; /* what the held replies cost; the bound applies to it */
} s_peer_t;

struct fy_peerq {
    uint64_t hold_max;
    s_peer_t *peers;
    size_t npeers, cap;
};

fy_peerq_t *
fy_peerq_new(uint64_t hold_max)
{
    fy_peerq_t *q = calloc(1, sizeof *q);
    if (q)
        q->hold_max = hold_max;
    return q;
}

static void
s_entry_free(s_entry_t *e)
{
    for (size_t i = 0; i < e->n; i++)
        zmq_msg_close(&e->frames[i]);
    free(e->frames);
    e->frames = NULL;
}

static void
s_fifo_free(s_fifo_t *f)
{
    for (size_t i = f->head; i < f->head + f->count; i++)
        s_entry_free(&f->e[i]);
    free(f->e);
    memset(f, 0, sizeof *f);
}

void
fy_peerq_destroy(fy_peerq_t **qp)
{
    if (!qp || !*qp)
        return;
    fy_peerq_t *q = *qp;
    for (size_t i = 0; i < q->npeers; i++) {
        s_fifo_free(&q->peers[i].held);
        s_fifo_free(&q->peers[i].parked);
    }
    free(q->peers);
    free(q);
    *qp = NULL;
}

bool
fy_peerq_active(const fy_peerq_t *q)
{
    return q->npeers > 0;
}

static s_peer_t *
s_find(const fy_peerq_t *q, const void *id, size_t id_len)
{
    for (size_t i = 0; i < q->npeers; i++)
        if (q->peers[i].id_len == id_len && memcmp(q->peers[i].id, id, id_len) == 0)
            return &q->peers[i];
    return NULL;
}

static s_peer_t *
s_find_or_add(fy_peerq_t *q, const void *id, size_t id_len)
{
    s_peer_t *p = s_find(q, id, id_len);
    if (p || id_len > sizeof p->id)
        return p;
    if (!fy_grow(&q->peers, &q->cap, q->npeers + 1, sizeof *q->peers, 8))
        return NULL;
    p = &q->peers[q->npeers++];
    memset(p, 0, sizeof *p);
    memcpy(p->id, id, id_len);
    p->id_len = id_len;
    return p;
}

/* Drops peer @p i once it has nothing held or parked. */
static void
s_maybe_remove(fy_peerq_t *q, size_t i)
{
    s_peer_t *p = &q->peers[i];
    if (p->held.count || p->parked.count)
        return;
    free(p->held.e);
    free(p->parked.e);
    q->peers[i] = q->peers[--q->npeers];
}

bool
fy_peerq_holding(const fy_peerq_t *q, const void *id, size_t id_len)
{
    if (!q->npeers)
        return false;
    const s_peer_t *p = s_find(q, id, id_len);
    return p && p->held.count > 0;
}

bool
fy_peerq_blocked(const fy_peerq_t *q, const void *id, size_t id_len)
{
    if (!q->npeers)
        return false;
    const s_peer_t *p = s_find(q, id, id_len);
    return p && (p->parked.count > 0 || p->held_bytes >= q->hold_max);
}

/* Appends an entry of @p n frames moved from @p frames.
 * @return what it costs in bytes, 0 when out of memory. */
static uint64_t
s_push(s_fifo_t *f, zmq_msg_t *frames, size_t n)
{
    if (f->head > 0 && f->head + f->count == f->cap) { /* slide to the front */
        memmove(f->e, f->e + f->head, f->count * sizeof *f->e);
        f->head = 0;
    }
    if (!fy_grow(&f->e, &f->cap, f->head + f->count + 1, sizeof *f->e, 64))
        return 0;
    s_entry_t *e = &f->e[f->head + f->count];
    e->frames = malloc(n * sizeof *e->frames);
    if (!e->frames)
        return 0;
    e->n = n;
    e->bytes = 64; /* the entry itself */
    for (size_t i = 0; i < n; i++) {
        zmq_msg_init(&e->frames[i]);
        zmq_msg_move(&e->frames[i], &frames[i]);
        e->bytes += zmq_msg_size(&e->frames[i]) + 64;
    }
    f->count++;
    return e->bytes;
}

int
fy_peerq_hold(fy_peerq_t *q, const void *id, size_t id_len, zmq_msg_t *frames, size_t n)
{
    s_peer_t *p = s_find_or_add(q, id, id_len);
    if (!p)
        return -1;
    uint64_t bytes = s_push(&p->held, frames, n);
    p->held_bytes += bytes;
    s_maybe_remove(q, (size_t)(p - q->peers));
    return bytes ? 0 : -1;
}

int
fy_peerq_park(fy_peerq_t *q, const void *id, size_t id_len, zmq_msg_t *frames, size_t n)
{
    s_peer_t *p = s_find_or_add(q, id, id_len);
    if (!p)
        return -1;
    if (p->parked.count >= FY_PEERQ_PARK_MAX)
        return 1;
    uint64_t bytes = s_push(&p->parked, frames, n);
    s_maybe_remove(q, (size_t)(p - q->peers));
    return bytes ? 0 : -1;
}

/* Sends one held reply; 1 sent, 0 the pipe is full, -1 the peer is gone. */
static int
s_send(void *sock, const s_peer_t *p, s_entry_t *e)
{
    /* ROUTER takes or refuses a message at its first frame: once the
     * identity is accepted, the rest goes into the pipe. */
    if (zmq_send(sock, p->id, p->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    for (size_t i = 0; i < e->n; i++)
        if (zmq_msg_send(&e->frames[i], sock, ZMQ_DONTWAIT | (i + 1 < e->n ? ZMQ_SNDMORE : 0)) < 0)
            return -1;
    return 1;
}

size_t
fy_peerq_flush(fy_peerq_t *q, void *sock,
               void (*gone)(void *user, const void *id, size_t id_len, size_t replies), void *user)
{
    size_t sent = 0;
    for (size_t i = q->npeers; i-- > 0;) {
        s_peer_t *p = &q->peers[i];
        while (p->held.count) {
            s_entry_t *e = &p->held.e[p->held.head];
            int rc = s_send(sock, p, e);
            if (rc == 0)
                break;
            if (rc < 0) {
                size_t lost = p->held.count;
                gone(user, p->id, p->id_len, lost);
                s_fifo_free(&p->held);
                p->held_bytes = 0;
                break;
            }
            p->held_bytes -= e->bytes;
            s_entry_free(e);
            p->held.head++;
            p->held.count--;
            sent++;
        }
        if (!p->held.count)
            p->held.head = 0;
        s_maybe_remove(q, i);
    }
    return sent;
}

size_t
fy_peerq_unpark(fy_peerq_t *q, size_t max, int (*take)(void *user, zmq_msg_t *frames, size_t n),
                void *user)
{
    size_t taken = 0;
    for (size_t i = q->npeers; i-- > 0 && taken < max;) {
        s_peer_t *p = &q->peers[i];
        if (p->held_bytes >= q->hold_max / 2)
            continue;
        while (p->parked.count && taken < max) {
            s_entry_t *e = &p->parked.e[p->parked.head];
            if (take(user, e->frames, e->n) != 0)
                return taken;
            s_entry_free(e);
            p->parked.head++;
            p->parked.count--;
            taken++;
        }
        if (!p->parked.count)
            p->parked.head = 0;
        s_maybe_remove(q, i);
    }
    return taken;
}

void
fy_peerq_stats(const fy_peerq_t *q, fy_peerq_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->peers = q->npeers;
    for (size_t i = 0; i < q->npeers; i++) {
        const s_peer_t *p = &q->peers[i];
        out->held_replies += p->held.count;
        out->held_bytes += p->held_bytes;
        out->parked_requests += p->parked.count;
    }
}
