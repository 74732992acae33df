/* SPDX-License-Identifier: MIT */
/*
 * endpoint.c - endpoints as people write them (endpoint.h).
 */
#include "endpoint.h"

#include <stdio.h>
#include <string.h>

/* HOST:PORT with a non-empty host (a name, an IPv4 address, "*" or a
 * bracketed IPv6 one) and a port of digits or "*". */
static bool
s_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return false;
    const char *port = colon + 1;
    if (strcmp(port, "*") != 0 && strspn(port, "0123456789") != strlen(port))
        return false;
    if (strlen(port) > 5)
        return false;
    if (s[0] == '[') /* [v6]:port */
        return colon[-1] == ']' && colon - s > 2;
    return memchr(s, ':', (size_t)(colon - s)) == NULL; /* a bare v6 needs brackets */
}

bool
fy_endpoint_normalize(const char *in, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!in || !*in || strpbrk(in, " \t\r\n"))
        return false;
    int n;
    if (!strncmp(in, "ipc://", 6) || !strncmp(in, "inproc://", 9)) {
        if (!in[strcspn(in, "/") + 2]) /* nothing after the scheme */
            return false;
        n = snprintf(out, cap, "%s", in);
    } else if (!strncmp(in, "tcp://", 6)) {
        if (!s_host_port(in + 6))
            return false;
        n = snprintf(out, cap, "%s", in);
    } else if (strstr(in, "://") || !s_host_port(in)) {
        return false;
    } else {
        n = snprintf(out, cap, "tcp://%s", in);
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return false;
    }
    return true;
}
