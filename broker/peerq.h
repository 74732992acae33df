/* SPDX-License-Identifier: MIT */
/*
 * peerq.h - back-pressure per peer, on the broker's one ROUTER socket.
 *
 * libzmq queues up to the socket's send high-water mark of replies to each
 * peer; past that (the peer does not read), a send fails with EAGAIN. The
 * reply is then held here, in order, and every later reply to that peer
 * queues behind it, so nothing is dropped and nothing overtakes. Held
 * replies are bounded in bytes per peer (--peer-queue-bytes): once a peer
 * holds that many, the broker stops handling its requests - they are
 * parked here, in order, unread by the handlers - until the peer has read
 * half of what is held. A peer that stops reading thus stops being served,
 * costs a bounded amount of memory, and loses nothing; the others are served
 * all along. A peer that is gone (EHOSTUNREACH) loses its held replies: they
 * are counted and logged by the caller.
 *
 * One ROUTER socket cannot stop reading one peer, so parked requests are
 * read and kept: libferry never has more than its window in flight. A peer
 * that keeps sending past FY_PEERQ_PARK_MAX parked requests has the rest
 * refused by the caller (counted, logged).
 *
 * Owned by the broker; one thread. Frames are zmq_msg_t, moved in and out.
 */
#ifndef FY_PEERQ_H
#define FY_PEERQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define FY_PEERQ_PARK_MAX 100000 /* parked requests per peer */

typedef struct fy_peerq fy_peerq_t;

typedef struct fy_peerq_stats {
    uint64_t held_replies, held_bytes; /* waiting to be sent */
    uint64_t parked_requests;          /* waiting to be handled */
    uint64_t peers;                    /* peers with either */
} fy_peerq_stats_t;

/** A queue holding up to @p hold_max bytes of replies per peer before the
 *  peer's requests are parked. NULL when out of memory. */
fy_peerq_t *fy_peerq_new(uint64_t hold_max);
/** Frees @p *q and every frame in it (NULL accepted). */
void fy_peerq_destroy(fy_peerq_t **q);

/** True when some peer has held replies or parked requests (a fast test for
 *  the loop: false, and nothing else here needs calling). */
bool fy_peerq_active(const fy_peerq_t *q);

/** True when peer @p id has held replies: a new reply to it must be held
 *  too (fy_peerq_hold), never sent ahead of them. */
bool fy_peerq_holding(const fy_peerq_t *q, const void *id, size_t id_len);

/** True when a request just read from peer @p id must be parked: the peer
 *  holds hold_max bytes of replies, or has requests parked already. */
bool fy_peerq_blocked(const fy_peerq_t *q, const void *id, size_t id_len);

/** Holds a reply of @p n frames (without the identity) for peer @p id,
 *  moving them in (the caller's messages are left empty).
 *  @return 0, or -1 when out of memory (the frames stay the caller's). */
int fy_peerq_hold(fy_peerq_t *q, const void *id, size_t id_len, zmq_msg_t *frames, size_t n);

/** Parks a request of @p n frames (identity first), moving them in.
 *  @return 0; 1 when the peer has FY_PEERQ_PARK_MAX parked already; -1
 *  when out of memory (in both cases the frames stay the caller's). */
int fy_peerq_park(fy_peerq_t *q, const void *id, size_t id_len, zmq_msg_t *frames, size_t n);

/** Sends held replies on @p sock without blocking, oldest first per peer,
 *  until each peer's pipe is full. A peer that is gone loses its held
 *  replies: each such peer is reported through @p gone with the count.
 *  @return how many replies were sent. */
size_t fy_peerq_flush(fy_peerq_t *q, void *sock,
                      void (*gone)(void *user, const void *id, size_t id_len, size_t replies),
                      void *user);

/** Hands back parked requests of peers that hold less than half of
 *  hold_max, oldest first per peer, at most @p max of them: @p take gets
 *  each request's frames (identity first) to move out, and returns 0, or -1
 *  to stop (no room). @return how many were taken. */
size_t fy_peerq_unpark(fy_peerq_t *q, size_t max,
                       int (*take)(void *user, zmq_msg_t *frames, size_t n), void *user);

/** What is held and parked now. */
void fy_peerq_stats(const fy_peerq_t *q, fy_peerq_stats_t *out);

#endif
