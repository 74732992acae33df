/* SPDX-License-Identifier: MIT */
/*
 * proxy.h - a TCP proxy on the loopback for fault tests: clients connect to
 * the proxy, the proxy to the real server, and the test cuts the network
 * between them and puts it back. One thread of its own; bytes are relayed
 * as they come, in both directions.
 *
 *   fy_proxy_t *p = fy_proxy_start("127.0.0.1", broker_port);
 *   ... clients connect to fy_proxy_endpoint(p) ...
 *   fy_proxy_set(p, FY_PROXY_RESET);      // every connection reset, new ones refused
 *   fy_proxy_set(p, FY_PROXY_BLACKHOLE);  // connections stay up, nothing passes
 *   fy_proxy_set(p, FY_PROXY_PASS);       // the network is back
 *   fy_proxy_stop(&p);
 */
#ifndef FY_PROXY_H
#define FY_PROXY_H

#include <stddef.h>

typedef enum {
    FY_PROXY_PASS,      /* relay everything */
    FY_PROXY_RESET,     /* close every connection (RST), refuse new ones */
    FY_PROXY_BLACKHOLE, /* keep connections, accept new ones, drop every byte */
} fy_proxy_mode_t;

typedef struct fy_proxy fy_proxy_t;

/** Listens on a free loopback port and relays to @p host:@p port.
 *  @return the proxy, or NULL (with a message on stderr). */
fy_proxy_t *fy_proxy_start(const char *host, int port);
/** "tcp://127.0.0.1:PORT" of the proxy, for clients. */
const char *fy_proxy_endpoint(const fy_proxy_t *p);
/** Changes what the network does; returns once the proxy applied it. */
void fy_proxy_set(fy_proxy_t *p, fy_proxy_mode_t mode);
/** Connections relayed so far (accepted while passing). */
size_t fy_proxy_connections(fy_proxy_t *p);
/** Looks for @p len (1..64) bytes of @p bytes in everything that passes
 *  from now on (a marker in a payload: is the traffic clear text?). */
void fy_proxy_watch(fy_proxy_t *p, const void *bytes, size_t len);
/** Reads so far that held the watched bytes. */
size_t fy_proxy_seen(fy_proxy_t *p);
/** Stops the thread, closes everything and frees @p *p (NULL accepted). */
void fy_proxy_stop(fy_proxy_t **p);

#endif
