/* SPDX-License-Identifier: MIT */
/*
 * raftlinks.h - the network between a cluster's nodes, for partition tests
 * (tests/integration/test_cluster.c): one loopback listener per node that
 * its peers connect to instead of the node (their --peers names the
 * listener, the node listens with --cluster-bind), relaying to the node.
 * libraft opens each connection with a handshake naming the node that
 * connects (protocol, server id: little-endian 64-bit numbers), so every
 * connection is known as a link FROM -> TO, and the test cuts links one
 * way or both: a cut link's connections are closed and new ones closed as
 * soon as their handshake says who they are.
 *
 *   fy_links_t *l = fy_links_start(3, real_ports);   // node i at real_ports[i]
 *   ... --peers 1=127.0.0.1:<fy_links_port(l, 0)>,... ...
 *   fy_links_isolate(l, 2, true);    // node 2 hears nobody, nobody hears it
 *   fy_links_isolate(l, 2, false);   // healed
 *   fy_links_stop(&l);
 *
 * One thread of its own; node ids are 1..n (node i of the arrays is i + 1).
 */
#ifndef FY_RAFTLINKS_H
#define FY_RAFTLINKS_H

#include <stdbool.h>
#include <stddef.h>

#define FY_LINKS_MAX 5

typedef struct fy_links fy_links_t;

/** Listens on a free loopback port per node and relays to 127.0.0.1:
 *  @p ports[i]. @return the links, or NULL (a message on stderr). */
fy_links_t *fy_links_start(int n, const int *ports);
/** The port node @p i (0-based) is reached at by its peers. */
int fy_links_port(const fy_links_t *l, int i);
/** Cuts (or heals) the link from node @p from to node @p to (ids 1..n);
 *  returns once the relay applied it. */
void fy_links_cut(fy_links_t *l, int from, int to, bool cut);
/** Cuts (or heals) every link to and from node @p id. */
void fy_links_isolate(fy_links_t *l, int id, bool cut);
/** Connections closed because their link was cut, so far. */
size_t fy_links_refused(fy_links_t *l);
/** Stops the thread, closes everything, frees @p *l (NULL accepted). */
void fy_links_stop(fy_links_t **l);

#endif
