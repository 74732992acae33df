/* SPDX-License-Identifier: MIT */
/*
 * msgcopy.c - received messages: header lookup, and deep copies for what must outlive the
 * client's next call (pages of a key iterator, a request's reply).
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"

static size_t
s_str(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static char *
s_put(char **at, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = memcpy(*at, s, n);
    *at += n;
    return p;
}

const char *
ferry_msg_header(const ferry_stored_message_t *msg, const char *name)
{
    for (size_t i = 0; msg && name && i < msg->header_count; i++)
        if (strcmp(msg->headers[i].name, name) == 0)
            return msg->headers[i].value;
    return NULL;
}

ferry_stored_message_t *
fy_msgs_clone(const ferry_stored_message_t *src, size_t n)
{
    if (n == 0)
        return NULL;
    size_t nhdrs = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        nhdrs += src[i].header_count;
        bytes += s_str(src[i].topic) + s_str(src[i].key) + s_str(src[i].id) + src[i].len;
        for (size_t j = 0; j < src[i].header_count; j++)
            bytes += s_str(src[i].headers[j].name) + s_str(src[i].headers[j].value);
    }
    /* Entries, then headers (both pointer-aligned), then the bytes. */
    size_t head = n * sizeof *src + nhdrs * sizeof(ferry_header_t);
    ferry_stored_message_t *out = malloc(head + bytes + 1);
    if (!out)
        return NULL;
    ferry_header_t *h = (ferry_header_t *)(void *)(out + n);
    char *at = (char *)out + head;
    for (size_t i = 0; i < n; i++) {
        out[i] = src[i];
        out[i].topic = s_put(&at, src[i].topic);
        out[i].key = s_put(&at, src[i].key);
        out[i].id = s_put(&at, src[i].id);
        out[i].headers = h;
        for (size_t j = 0; j < src[i].header_count; j++, h++) {
            h->name = s_put(&at, src[i].headers[j].name);
            h->value = s_put(&at, src[i].headers[j].value);
        }
        out[i].data = at;
        if (src[i].len)
            memcpy(at, src[i].data, src[i].len);
        at += src[i].len;
    }
    return out;
}
