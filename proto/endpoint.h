/* SPDX-License-Identifier: MIT */
/*
 * endpoint.h - the broker's address as people write it: a ZeroMQ endpoint
 * (tcp://HOST:PORT, ipc://PATH, inproc://NAME), or HOST:PORT meaning tcp.
 * One rule for ferryd's --bind, libferry's server list and every tool's
 * --server. Pure functions.
 */
#ifndef FY_ENDPOINT_H
#define FY_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>

/** The form, for error messages. */
#define FY_ENDPOINT_FORMS "tcp://HOST:PORT, HOST:PORT, ipc://PATH or inproc://NAME"

/**
 * Writes @p in as a ZeroMQ endpoint to @p out: "tcp://", "ipc://" and
 * "inproc://" ones as they are (a tcp one must have HOST:PORT, the port a
 * number or "*"); "HOST:PORT" and "[V6]:PORT" get "tcp://" in front.
 * @return false (out holds "") for anything else: no port, an unknown
 * scheme, spaces, too long for @p cap.
 */
bool fy_endpoint_normalize(const char *in, char *out, size_t cap);

#endif /* FY_ENDPOINT_H */
