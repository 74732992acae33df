/* SPDX-License-Identifier: MIT */
/*
 * consumers.c - the broker's table of push consumers (see consumers.h).
 */
#include "consumers.h"

#include <stdlib.h>
#include <string.h>

int
fy_consumers_init(fy_consumers_t *self, size_t max)
{
    self->max = max ? max : FY_CONSUMERS_MAX;
    self->live = calloc(self->max, sizeof *self->live);
    self->added = calloc(self->max, sizeof *self->added);
    self->next_id = 1;
    return self->live && self->added ? 0 : -1;
}

void
fy_consumers_free(fy_consumers_t *self)
{
    free(self->live);
    free(self->added);
    self->live = self->added = NULL;
    self->nlive = self->nadded = 0;
}

fy_consumer_t *
fy_consumers_add(fy_consumers_t *self)
{
    if (self->nlive + self->nadded >= self->max)
        return NULL;
    fy_consumer_t *c = &self->added[self->nadded];
    memset(c, 0, sizeof *c);
    c->id = self->next_id + self->nadded;
    self->nadded++;
    return c;
}

fy_consumer_t *
fy_consumers_find(fy_consumers_t *self, uint64_t id)
{
    for (size_t i = 0; i < self->nlive; i++)
        if (self->live[i].id == id && !self->live[i].removed)
            return &self->live[i];
    for (size_t i = 0; i < self->nadded; i++)
        if (self->added[i].id == id && !self->added[i].removed)
            return &self->added[i];
    return NULL;
}

/* Liveness counts in seconds, so a peer touched in this same millisecond is
 * skipped: a stream of requests from one client costs one comparison each,
 * not a walk. */
void
fy_consumers_touch(fy_consumers_t *self, const void *peer, size_t len, long long now)
{
    if (now == self->touched_ms && len == self->touched_len &&
        memcmp(self->touched, peer, len) == 0)
        return;
    self->touched_ms = now;
    self->touched_len = len < sizeof self->touched ? len : 0;
    memcpy(self->touched, peer, self->touched_len);
    for (size_t i = 0; i < self->nlive; i++) {
        fy_consumer_t *c = &self->live[i];
        if (c->peer_len == len && memcmp(c->peer, peer, len) == 0)
            c->last_seen_ms = now;
    }
}

void
fy_consumer_sent(fy_consumer_t *c, uint64_t seq)
{
    c->sent[c->sent_head] = seq;
    c->sent_head = (c->sent_head + 1) % FY_CONSUMER_SENT_MAX;
    if (c->sent_count < FY_CONSUMER_SENT_MAX)
        c->sent_count++;
}

uint64_t
fy_consumer_sent_at(const fy_consumer_t *c, size_t k)
{
    return c->sent[(c->sent_head + FY_CONSUMER_SENT_MAX - 1 - k) % FY_CONSUMER_SENT_MAX];
}

/* The batch's changes to one consumer become its committed state. */
static void
s_settle(fy_consumer_t *c)
{
    c->credit = c->credit + c->added - c->used;
    /* Credit given back means messages consumed: their bytes are no longer
     * held (an average over what is held; exact once all came back). */
    c->held_msgs += c->used;
    c->held_bytes += c->used_bytes;
    uint64_t back = c->added < c->held_msgs ? c->added : c->held_msgs;
    if (back) {
        c->held_bytes -= c->held_bytes / c->held_msgs * back;
        c->held_msgs -= back;
        if (c->held_msgs == 0)
            c->held_bytes = 0;
    }
    c->added = c->used = 0;
    c->used_bytes = 0;
    c->next_seq = c->next_batch;
    c->sent_mark = c->sent_head;
    c->sent_count_mark = c->sent_count;
}

bool
fy_consumers_commit(fy_consumers_t *self)
{
    bool soon = self->nadded > 0;
    size_t kept = 0;
    for (size_t i = 0; i < self->nlive; i++) {
        fy_consumer_t *c = &self->live[i];
        if (c->removed)
            continue;
        soon = soon || c->added > 0;
        s_settle(c);
        self->live[kept++] = *c;
    }
    for (size_t i = 0; i < self->nadded; i++) {
        fy_consumer_t *c = &self->added[i];
        if (c->removed)
            continue;
        s_settle(c);
        self->live[kept++] = *c;
    }
    self->nlive = kept;
    self->next_id += self->nadded;
    self->nadded = 0;
    self->rr = kept ? (self->rr + 1) % kept : 0;
    return soon;
}

void
fy_consumers_rollback(fy_consumers_t *self)
{
    self->nadded = 0;
    for (size_t i = 0; i < self->nlive; i++) {
        fy_consumer_t *c = &self->live[i];
        c->added = c->used = 0;
        c->used_bytes = 0;
        c->removed = false;
        c->next_batch = c->next_seq;
        c->sent_head = c->sent_mark;
        c->sent_count = c->sent_count_mark;
    }
}
