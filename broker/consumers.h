/* SPDX-License-Identifier: MIT */
/*
 * consumers.h - the broker's table of push consumers, journaled per batch.
 *
 * Consumers live in memory only. A batch records what it does to them
 * (credit added, messages sent, removals, new consumers kept apart);
 * fy_consumers_commit applies that once the batch's transaction is on disk,
 * and fy_consumers_rollback forgets it when the batch is replayed. The
 * broker's loop (broker.c) decides what to deliver; this module keeps the
 * books.
 */
#ifndef FY_CONSUMERS_H
#define FY_CONSUMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire_limits.h"

#define FY_CONSUMERS_MAX     1024 /**< push consumers at once, by default (--max-consumers) */
#define FY_CONSUMER_SENT_MAX 256  /**< sequences a consumer remembers having been sent */

/* A push consumer: the broker sends messages of its subscription to its peer
 * while it has credit. `credit` is what the last commit left; the other
 * counters belong to the batch being applied. */
typedef struct fy_consumer {
    uint64_t id, sub_id;
    char user[65]; /* its connection's user (--users); "" none */
    uint8_t peer[256];
    size_t peer_len;
    uint8_t topic[FY_NAME_MAX], sub[FY_NAME_MAX];
    size_t topic_len, sub_len;
    uint32_t credit;
    long long last_seen_ms;
    long long timeout_ms; /* silent this long: gone (fy_consumer_timeout_ms) */
    uint32_t added, used; /* this batch */
    uint64_t used_bytes;  /* this batch: bytes of the messages sent (fy_stored_cost) */
    uint64_t held_msgs;   /* sent and not yet given back as credit (committed) */
    uint64_t held_bytes;  /* their bytes: no more is sent past FY_CONSUMER_BYTES_MAX */
    bool removed;         /* this batch */
    bool ephemeral;       /* no subscription: live messages from next_seq, no acks */
    uint64_t next_seq;    /* ephemeral: committed position */
    uint64_t next_batch;  /* ephemeral: position after this batch's deliveries */
    /* The last FY_CONSUMER_SENT_MAX sequences sent, so that when the consumer goes away
     * what it still holds unacked is given back at once. A ring: `sent_head`
     * is the next slot; `sent_mark` is where the committed batches left it. */
    uint64_t sent[FY_CONSUMER_SENT_MAX];
    size_t sent_head, sent_count, sent_mark, sent_count_mark;
} fy_consumer_t;

/** The table. Zero it, then fy_consumers_init. */
typedef struct fy_consumers {
    fy_consumer_t *live;  /**< committed consumers, nlive of them */
    fy_consumer_t *added; /**< added by the batch being applied, nadded of them */
    size_t nlive, nadded;
    size_t max;           /**< push consumers at once (--max-consumers) */
    size_t rr;            /**< where the next delivery turn starts, for fairness */
    uint64_t next_id;     /**< id of the next committed new consumer */
    uint8_t touched[256]; /* the peer fy_consumers_touch saw last, at touched_ms */
    size_t touched_len;
    long long touched_ms;
} fy_consumers_t;

/** Room for @p max consumers at once (0: FY_CONSUMERS_MAX).
 *  @return 0, or -1 if out of memory. */
int fy_consumers_init(fy_consumers_t *self, size_t max);
void fy_consumers_free(fy_consumers_t *self);

/** A new consumer for this batch: zeroed but for its id. NULL when the table is full. */
fy_consumer_t *fy_consumers_add(fy_consumers_t *self);
/** The consumer @p id as this batch sees it (committed or added, not removed), or NULL. */
fy_consumer_t *fy_consumers_find(fy_consumers_t *self, uint64_t id);
/** Any request from @p peer shows its consumers are alive at @p now (ms). */
void fy_consumers_touch(fy_consumers_t *self, const void *peer, size_t len, long long now);

/** Records that @p seq was sent to @p c in this batch. */
void fy_consumer_sent(fy_consumer_t *c, uint64_t seq);
/** The @p k-th most recent sequence sent (k < c->sent_count). */
uint64_t fy_consumer_sent_at(const fy_consumer_t *c, size_t k);

/** After the batch's commit: credits, removals and new consumers take effect.
 *  @return true if credit or consumers were added (a delivery turn is due). */
bool fy_consumers_commit(fy_consumers_t *self);
/** The batch is replayed: forget what it did to the consumers. */
void fy_consumers_rollback(fy_consumers_t *self);

#endif
