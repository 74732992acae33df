/* SPDX-License-Identifier: MIT */
/*
 * raft_tcp.h - libraft's TCP transport (raft_uv_tcp) with Nagle's
 * algorithm off on every connection. libraft leaves it on, and its
 * messages are small: a follower's answer to an append waited for the
 * leader's delayed ACK, which put ~20 ms on a confirm at a low rate
 * (bench_compare --cluster 3, W2). This transport delegates everything to
 * raft_uv_tcp and sets TCP_NODELAY on each stream it hands over.
 */
#ifndef FY_RAFT_TCP_H
#define FY_RAFT_TCP_H

#include <raft.h>
#include <raft/uv.h>

typedef struct fy_raft_tcp {
    struct raft_uv_transport outer; /* what libraft uses */
    struct raft_uv_transport inner; /* raft_uv_tcp */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb close_cb;
} fy_raft_tcp_t;

/** Sets up @p t on @p loop (raft_uv_tcp_init inside); libraft gets &t->outer.
 *  @return 0 or a libraft error. */
int fy_raft_tcp_init(fy_raft_tcp_t *t, struct uv_loop_s *loop);
/** Releases it once libraft's I/O is closed (raft_uv_tcp_close inside). */
void fy_raft_tcp_close(fy_raft_tcp_t *t);

#endif
