/* SPDX-License-Identifier: MIT */
/*
 * keyread.c - ferry_key_iter_t: the history of one key, page by page through
 * the broker's per-key index (op "read"). Each page is copied out of the
 * client, so the iterator survives other calls on it.
 */
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "envelope.h"

#define S_PAGE_DEFAULT 256

struct ferry_key_iter {
    ferry_client_t *client;
    char topic[FERRY_NAME_MAX + 1], key[FERRY_ID_MAX + 1];
    uint32_t page_size;
    uint64_t next;                /* version the next page starts at; 0: no more */
    ferry_stored_message_t *page; /* fy_msgs_clone block */
    size_t n, i;
};

static ferry_status_t
s_load(ferry_key_iter_t *it)
{
    const ferry_stored_message_t *msgs;
    size_t n;
    uint64_t next;
    ferry_status_t st = fy_client_read_page(it->client, it->topic, it->key, it->next, it->page_size,
                                            &msgs, &n, &next);
    if (st)
        return st;
    ferry_stored_message_t *copy = n ? fy_msgs_clone(msgs, n) : NULL;
    if (n && !copy)
        return fy_client_fail(it->client, FERRY_ENOMEM, "out of memory");
    free(it->page);
    it->page = copy;
    it->n = n;
    it->i = 0;
    it->next = next;
    return FERRY_OK;
}

ferry_status_t
ferry_client_read_key(ferry_client_t *self, const char *topic, const char *key,
                      uint64_t from_version, uint32_t page_size, ferry_key_iter_t **out)
{
    if (!self || !out || page_size > FERRY_BATCH_MAX)
        return FERRY_EINVAL;
    *out = NULL;
    if (!topic || !fy_name_valid(fy_bytes_str(topic)))
        return fy_client_fail(self, FERRY_EINVALID_NAME, "invalid topic name");
    if (!key || !*key || strlen(key) > FERRY_ID_MAX)
        return fy_client_fail(self, FERRY_EINVAL, "key must be 1-%d bytes", FERRY_ID_MAX);
    ferry_key_iter_t *it = calloc(1, sizeof *it);
    if (!it)
        return FERRY_ENOMEM;
    it->client = self;
    strcpy(it->topic, topic);
    strcpy(it->key, key);
    it->page_size = page_size ? page_size : S_PAGE_DEFAULT;
    it->next = from_version ? from_version : 1;
    ferry_status_t st = s_load(it);
    if (st) {
        ferry_key_iter_destroy(&it);
        return st;
    }
    *out = it;
    return FERRY_OK;
}

ferry_status_t
ferry_key_iter_next(ferry_key_iter_t *it, const ferry_stored_message_t **msg)
{
    if (!it || !msg)
        return FERRY_EINVAL;
    *msg = NULL;
    /* A page can come back empty when the versions it covered were removed. */
    while (it->i == it->n && it->next) {
        ferry_status_t st = s_load(it);
        if (st)
            return st;
    }
    if (it->i < it->n)
        *msg = &it->page[it->i++];
    return FERRY_OK;
}

void
ferry_key_iter_destroy(ferry_key_iter_t **it_p)
{
    if (!it_p || !*it_p)
        return;
    free((*it_p)->page);
    free(*it_p);
    *it_p = NULL;
}
