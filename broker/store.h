/* SPDX-License-Identifier: MIT */
/*
 * store.h - Ferry's storage: one LMDB environment in the data directory
 * (layout in docs/storage.md).
 *
 * Every operation runs inside a batch: fy_store_begin() opens the batch's
 * write transaction, requests read and write through it (reads see the
 * batch's own writes), and fy_store_commit() makes the whole batch durable:
 * its writes go to the write-ahead log (DATA/ferry.wal) with one fdatasync,
 * and into one long LMDB transaction that a checkpoint commits later
 * (fy_store_checkpoint; store_wal.c). Nothing written in a batch may be
 * confirmed to anyone before fy_store_commit() returned FERRY_OK. At open,
 * what the log holds past LMDB's last checkpoint is applied again.
 *
 * One thread uses a fy_store_t. Byte strings handed to callbacks point into
 * the LMDB map and are valid only during the callback.
 */
#ifndef FY_STORE_H
#define FY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"
#include "log.h"
#include "raftlog.h"

/** Version of the on-disk layout; a newer one is refused at open. Format 4:
 *  batches may be in the write-ahead log and not yet in LMDB (an older
 *  ferryd would miss them). */
#define FY_STORE_FORMAT 5

typedef struct fy_store fy_store_t;

/** Cluster mode (docs/cluster.md): the store's writes go through a log
 *  replicated by libraft instead of DATA/ferry.wal. */
typedef struct fy_store_cluster {
    uint64_t id;                    /**< this node, one of peers */
    const fy_raftlog_peer_t *peers; /**< the voters and their cluster addresses */
    size_t npeers;
    const char *advertise;   /**< this node's client endpoint, which followers name to clients */
    const char *bind;        /**< where it listens for its peers; NULL: its address in peers */
    bool join;               /**< a new node: it waits for the leader to add it */
    unsigned election_ms;    /**< 0: 1000 */
    unsigned heartbeat_ms;   /**< 0: 100 */
    unsigned snapshot_every; /**< applied entries between snapshots, and kept in the log behind
                                  one (a node further behind is sent the snapshot); 0: 1024 */
} fy_store_cluster_t;

typedef struct fy_store_opts {
    const char *dir;           /**< data directory; created if missing */
    uint64_t map_size;         /**< LMDB map size in bytes (the storage limit) */
    uint64_t dedupe_window_ms; /**< default dedupe window for new topics */
    uint64_t reserve_bytes;    /**< disk space held in DIR/ferryd.reserve and given back when
                                    the file system is full, so that acks, deletes and cleanup
                                    can still write; 0: none */
    uint64_t wal_bytes;        /**< size of the write-ahead log; 0: 64 MiB, at most an eighth
                                    of the file system */
    const fy_log_t *log;       /**< borrowed; may be NULL */
    const fy_store_cluster_t *cluster; /**< NULL: one node, behind its write-ahead log */
    /** Called in a batch for each message a subscription dead-letters
     *  (max_deliver passed, or a term), for counters; NULL: none. */
    void (*on_dead_letter)(void *user, uint64_t sub_id);
    void *dead_letter_user;
} fy_store_opts_t;

/**
 * Opens (or creates) the store in opts->dir. Takes an exclusive lock on the
 * directory so that two brokers never share it.
 * @return FERRY_OK, FERRY_EFORMAT (newer format), FERRY_EIO (with err), FERRY_ENOMEM
 */
fy_status_t fy_store_open(const fy_store_opts_t *opts, fy_store_t **out, fy_err_t *err);
/** Aborts an open batch, closes the environment, frees, sets *self_p = NULL. */
void fy_store_destroy(fy_store_t **self_p);

/** Starts the batch's write transaction. @return FERRY_OK, FERRY_EIO */
fy_status_t fy_store_begin(fy_store_t *self, uint64_t now_ms);
/**
 * Writes back the topics the batch changed and commits durably.
 * On failure the batch is gone (aborted) and nothing of it is stored.
 * @return FERRY_OK, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_commit(fy_store_t *self);
/** Drops the batch. */
void fy_store_abort(fy_store_t *self);
/**
 * A consistent copy of the store into the new directory @p dir (made; it
 * must not exist): LMDB as its last checkpoint left it (compacted, through
 * a read transaction) and the write-ahead
 * log's records since, which a ferryd opening @p dir applies - everything
 * confirmed before this call. The caller waits for the copy. A cluster's
 * node refuses (FERRY_EINVAL). @return FERRY_OK, FERRY_EEXISTS (@p dir
 * exists), FERRY_EIO, FERRY_EINVAL
 */
fy_status_t fy_store_backup(fy_store_t *self, const char *dir, fy_err_t *err);
/** True between fy_store_begin and its commit or abort. */
bool fy_store_in_batch(const fy_store_t *self);

/**
 * Commits what the batches since the last checkpoint wrote into LMDB (which
 * syncs it) and starts the write-ahead log over. Outside a batch. Costs two
 * device flushes; the broker calls it when fy_store_checkpoint_in() says so,
 * and closing the store does. On failure nothing is lost: the log still
 * holds every batch (a full disk is noted as by a failed commit).
 * @return FERRY_OK, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_checkpoint(fy_store_t *self);
/** Milliseconds until a checkpoint is due (0: now), or -1 if nothing waits
 *  for one. @p now_ms: fy_mono_ms(). */
long long fy_store_checkpoint_in(const fy_store_t *self, long long now_ms);
/** True once the store cannot go on (the long transaction could not be
 *  rebuilt from the log): the broker stops, and a restart recovers. */
bool fy_store_broken(const fy_store_t *self);

/** Cluster mode: true if this node may write now (it leads, and has
 *  applied every entry of the terms before its own). A single node: true. */
bool fy_store_leads(fy_store_t *self);
/** Cluster mode: the leader's client endpoint as far as this node knows
 *  (written by each leader in its first batch), or "" if it does not know. */
void fy_store_leader(fy_store_t *self, char *out, size_t cap);
typedef struct fy_store_cluster_stats {
    fy_raftlog_state_t raft; /**< role, term, indexes, the voters' progress */
    uint64_t snapshots;      /**< snapshots taken since start */
    uint64_t snapshot_us;    /**< how long the last one took */
} fy_store_cluster_stats_t;
/** Cluster mode, on the leader: adds node @p id at @p address (NULL:
 *  removes it); raftlog.h fy_raftlog_change. A single node: FERRY_EINVAL. */
fy_status_t fy_store_cluster_change(fy_store_t *self, uint64_t id, const char *address, char *why,
                                    size_t cap);
/** Cluster mode: where the node stands; false for a single node. */
bool fy_store_cluster_state(fy_store_t *self, fy_store_cluster_stats_t *out);

typedef struct fy_store_wal_stats {
    uint64_t checkpoints;        /**< checkpoints since open */
    uint64_t checkpoints_full;   /**< of them, for a batch that did not fit the log or a map
                                      nearly full */
    uint64_t last_checkpoint_us; /**< how long the last one took */
    uint64_t wal_used, wal_size; /**< bytes of the log in use, and its size */
    uint64_t lsn;                /**< the newest batch's log sequence number */
} fy_store_wal_stats_t;
/** The write-ahead log's counters. */
void fy_store_wal_stats(const fy_store_t *self, fy_store_wal_stats_t *out);
/** True once an operation failed in a way that spoils the transaction
 *  (LMDB's MDB_MAP_FULL): the batch must be aborted and may be replayed. */
bool fy_store_spoiled(const fy_store_t *self);
/** True if the batch changed anything (a commit will sync). */
bool fy_store_dirty(const fy_store_t *self);

/**
 * Creates a topic or queue, or finds it with the same kind.
 * @param cfg NULL or zero fields: store defaults (dedupe window) and no limits.
 *            Ignored for an existing topic. With limits, appends drop the oldest
 *            messages, or refuse (FERRY_ELIMIT) when cfg->discard_new; the
 *            sweep removes messages older than max_age_ms.
 * @return FERRY_OK, FERRY_EEXISTS (other kind), FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_declare(fy_store_t *self, fy_bytes_t name, fy_kind_t kind,
                             const fy_topic_config_t *cfg, fy_topic_info_t *info, bool *created);
/** Deletes a topic; its messages are removed in later sweeps.
 *  @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESTORAGE_FULL, FERRY_EIO */
fy_status_t fy_store_delete(fy_store_t *self, fy_bytes_t name);
/** @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EIO */
fy_status_t fy_store_info(fy_store_t *self, fy_bytes_t name, fy_topic_info_t *info);
/** Up to @p max topics in name order, after @p after (empty: from the
 *  first), into @p out; *more: others follow. @return FERRY_OK, FERRY_EIO */
fy_status_t fy_store_topics(fy_store_t *self, fy_bytes_t after, size_t max, fy_topic_info_t *out,
                            size_t *n, bool *more);

/** Why an append with expectations (or a reused id) was refused. */
typedef struct fy_conflict {
    size_t index;      /**< the message whose expectation failed (or whose id was reused) */
    uint64_t last;     /**< the topic's last sequence at that message */
    uint64_t kver;     /**< its key's version at that message (0: no key or a new one) */
    bool on_key;       /**< the key version failed (else the last sequence) */
    uint64_t expected; /**< what the message expected */
} fy_conflict_t;

/**
 * Appends @p n messages to a topic, all or nothing as far as the caller's
 * batch goes. A message whose id is in the topic's dedupe window is not
 * stored: its entry in @p seqs is the original sequence and @p dups is true.
 * A keyed message gets the next version of its key (in @p kvers; 0 without
 * key, and for duplicates) and an entry in the per-key index.
 * Expectations (expect_last, expect_kver) are checked for every message
 * before anything is written, counting the messages before it in the call;
 * one that fails refuses the whole call with FERRY_ECONFLICT (@p conflict
 * says which and the values now). A duplicate is not checked.
 * Ids: the dedupe entry keeps a hash of the message's key, headers and
 * payload; a message whose id is in the window with different content is
 * no duplicate but a reused id: the whole call is refused with
 * FERRY_EIDREUSED (@p conflict: which message, and in `last` the sequence
 * that holds the id), never answered "duplicate" and dropped.
 * Delays: a message with metas[i].not_before_ms later than the batch's
 * time is delivered to subscriptions from then on.
 * @param payloads  one payload per message, copied into the map.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ELIMIT (nothing stored),
 *         FERRY_ECONFLICT, FERRY_EIDREUSED (nothing stored), FERRY_ESTORAGE_FULL (batch
 *         spoiled), FERRY_EIO
 */
fy_status_t fy_store_append(fy_store_t *self, fy_bytes_t topic, const fy_pubmeta_t *metas,
                            const fy_bytes_t *payloads, size_t n, uint64_t *seqs, bool *dups,
                            uint64_t *kvers, fy_conflict_t *conflict);

/** A stored message as handed to a read callback (borrowed from the map). */
typedef struct fy_stored {
    uint64_t seq;
    uint64_t ts_ms;
    uint64_t kver;          /**< version within its key; 0 without key */
    uint64_t not_before_ms; /**< delayed: delivered to subscriptions from then; 0: not */
    fy_bytes_t key, id, hdrs, payload;
} fy_stored_t;

typedef fy_status_t (*fy_store_read_fn)(void *user, const fy_stored_t *msg);

/** What a message costs a reply, roughly its bytes on the wire: a fixed
 *  entry overhead, key, id, headers and payload. Every read below takes a
 *  byte budget besides its count: it stops before a message that would take
 *  the reply past @p max_bytes (the first message always goes, whatever its
 *  size), so no reply outgrows what a client accepts (FY_REPLY_BYTES_MAX). */
#define FY_STORED_OVERHEAD 64
static inline size_t
fy_stored_cost(const fy_stored_t *m)
{
    return FY_STORED_OVERHEAD + m->key.len + m->id.len + m->hdrs.len + m->payload.len;
}

/** Calls @p fn for up to @p limit messages of @p topic from @p from_seq on, in order.
 *  @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EIO, or what @p fn returned */
fy_status_t fy_store_read(fy_store_t *self, fy_bytes_t topic, uint64_t from_seq, uint32_t limit,
                          size_t max_bytes, fy_store_read_fn fn, void *user, size_t *count);

/**
 * Calls @p fn for up to @p limit messages with key @p key in @p topic, in key
 * version order from version @p from on, through the per-key index (no topic
 * scan). Versions whose message was removed are skipped.
 * @param[out] next the version to go on from, 0 when the key has no more.
 * @return FERRY_OK, FERRY_ENOTFOUND (topic), FERRY_EIO, or what @p fn returned
 */
fy_status_t fy_store_read_key(fy_store_t *self, fy_bytes_t topic, fy_bytes_t key, uint64_t from,
                              uint32_t limit, size_t max_bytes, fy_store_read_fn fn, void *user,
                              size_t *count, uint64_t *next);

/**
 * Does up to @p budget units of background work in the batch: expires dedupe
 * entries older than their window and removes messages of deleted topics.
 * @param[out] more true if work is left.
 * @return FERRY_OK, FERRY_ESTORAGE_FULL (batch spoiled), FERRY_EIO
 */
fy_status_t fy_store_sweep(fy_store_t *self, size_t budget, bool *more);

/* ---- subscriptions ------------------------------------------------------
 *
 * A durable subscription is a cursor on a topic: messages below `cursor` have
 * been delivered at least once, and every message up to `ack_floor` is acked.
 * Acks above the floor are kept one by one until the floor reaches them.
 * A delivery of new messages writes one timer for the whole range (deadline
 * = now + ack wait); when it fires, the messages of the range still unacked
 * are marked due, and the next fetch delivers them again. A message delivered
 * twice or more has its own entry (delivery count, deadline). So the normal
 * path - deliver in order, ack in order - writes nothing per message but the
 * work-queue delete.
 */

/** Bytes of a subscription owner's name (a user name of the users file). */
#define FY_SUB_OWNER_MAX 64

typedef struct fy_sub_opts {
    fy_start_t start;     /**< where a new subscription begins */
    uint64_t start_seq;   /**< FY_START_SEQ: first sequence delivered; FY_START_TIME: ms
                               since the epoch - the first message stored at or after it */
    uint64_t ack_wait_ms; /**< 0: 30000 */
    uint64_t max_deliver; /**< 0: 5 */
    fy_bytes_t filter;    /**< subject pattern over message keys; len 0: every message */
    fy_bytes_t owner;     /**< the user declaring it (--users; at most FY_SUB_OWNER_MAX
                               bytes); len 0: nobody's, anyone may use it */
} fy_sub_opts_t;

typedef struct fy_sub_info {
    uint64_t id;        /**< stable id of the subscription */
    uint64_t cursor;    /**< next sequence to deliver for the first time */
    uint64_t ack_floor; /**< every sequence up to here is acked */
    uint64_t last_seq;  /**< the topic's last sequence */
    uint64_t ack_wait_ms;
    uint64_t max_deliver;
    uint64_t created_ms;
    fy_kind_t kind;                   /**< of the topic: a queue deletes acked messages */
    char owner[FY_SUB_OWNER_MAX + 1]; /**< the user who declared it; "": nobody */
} fy_sub_info_t;

/** Removes @p topic's oldest messages while it has more than @p keep and
 *  (with @p below) the oldest is below @p below, at most @p max of them;
 *  *more: others are left to remove. Subscriptions skip what is gone, as
 *  with retention. @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EIO */
fy_status_t fy_store_purge(fy_store_t *self, fy_bytes_t topic, uint64_t keep, uint64_t below,
                           uint64_t max, uint64_t *removed, bool *more);

/** Changes the settings of @p topic that @p set names (FY_EDIT_*: dedupe
 *  window - 0: the broker's default -, limits - 0: none -, discard), then,
 *  discarding old ones, removes at most @p max of the oldest messages over
 *  the new limits; *more: others are over them still. *info: the topic now.
 *  @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EIO */
fy_status_t fy_store_edit(fy_store_t *self, fy_bytes_t topic, unsigned set,
                          const fy_topic_config_t *cfg, uint64_t max, fy_topic_info_t *info,
                          bool *more);

/** A subscription as a listing shows it. */
typedef struct fy_sub_entry {
    fy_sub_info_t info;
    char name[FY_NAME_MAX + 1];
    char filter[FY_NAME_MAX + 1]; /**< "": every key */
} fy_sub_entry_t;

/** Up to @p max subscriptions of @p topic in name order, after @p after
 *  (empty: from the first), into @p out; *more: others follow.
 *  @return FERRY_OK, FERRY_ENOTFOUND (topic), FERRY_EIO */
fy_status_t fy_store_subs(fy_store_t *self, fy_bytes_t topic, fy_bytes_t after, size_t max,
                          fy_sub_entry_t *out, size_t *n, bool *more);

/**
 * Opens the subscription @p name on @p topic, creating it (with @p opts) if
 * missing; with @p opts NULL a missing one is FERRY_ENOTFOUND. A queue has exactly one
 * subscription, named "" (created with the queue); a topic's subscriptions need a name.
 * @return FERRY_OK, FERRY_ENOTFOUND (topic), FERRY_EFIELD (name does not fit
 *         the kind), FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_sub_open(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name,
                              const fy_sub_opts_t *opts, fy_sub_info_t *info, bool *created);
/** State of a subscription by id. @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EIO */
fy_status_t fy_store_sub_info(fy_store_t *self, uint64_t sub_id, fy_sub_info_t *info);
/**
 * Moves a topic's named subscription: the next message it delivers is
 * @p seq (clamped to the topic's first and last + 1), or, with @p time_ms,
 * the first stored at or after that time. Everything before counts as
 * acked; everything from there on is delivered again, acked or not; its
 * pending deliveries are forgotten (their acks are answered ESEQ).
 * @return FERRY_OK (@p info: where it stands now), FERRY_ENOTFOUND,
 *         FERRY_EFIELD (a queue: its acked messages are deleted), FERRY_EIO
 */
fy_status_t fy_store_sub_seek(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name, uint64_t seq,
                              uint64_t time_ms, fy_sub_info_t *info);
/** Deletes a topic's named subscription and its ack state.
 *  @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EFIELD (a queue's own), ... */
fy_status_t fy_store_sub_delete(fy_store_t *self, fy_bytes_t topic, fy_bytes_t name);

/** Called for each delivered message; `dc` is its delivery count (1 = first). */
typedef fy_status_t (*fy_store_deliver_fn)(void *user, const fy_stored_t *msg, uint32_t dc);

/**
 * Delivers up to @p max messages from the cursor on, advancing it, and arms
 * one ack-wait timer for the range. @p count is 0 when nothing is new.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESTORAGE_FULL, FERRY_EIO, or fn's status
 */
fy_status_t fy_store_deliver_new(fy_store_t *self, uint64_t sub_id, uint32_t max, size_t max_bytes,
                                 fy_store_deliver_fn fn, void *user, size_t *count);
/**
 * Fetches up to @p max messages for a consumer of the subscription: first
 * those due for redelivery (ack wait passed, or nacked), oldest first, then
 * new ones from the cursor. Each redelivery counts; a message that would pass
 * max_deliver goes to the dead-letter topic `<topic>.dlq` instead (headers
 * ferry-dlq-topic, -seq, -deliveries, -reason) and is acked.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESTORAGE_FULL, FERRY_EIO, or fn's status
 */
fy_status_t fy_store_fetch(fy_store_t *self, uint64_t sub_id, uint32_t max, size_t max_bytes,
                           fy_store_deliver_fn fn, void *user, size_t *count);
/**
 * Gives @p seq back for redelivery after @p delay_ms (0: at once). Nacking an
 * acked message does nothing.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESEQ, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_nack(fy_store_t *self, uint64_t sub_id, uint64_t seq, uint64_t delay_ms);
/**
 * Dead-letters @p seq now (reason "terminated", the consumer's @p error text
 * in header ferry-dlq-error when not empty) and acks it.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESEQ, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_term(fy_store_t *self, uint64_t sub_id, uint64_t seq, fy_bytes_t error);
/**
 * The consumer is still working on @p seq: its ack wait starts again.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ESEQ, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_progress(fy_store_t *self, uint64_t sub_id, uint64_t seq);
/**
 * Acks @p seq. Acking twice is fine. On a queue the message is deleted.
 * @return FERRY_OK, FERRY_ENOTFOUND (subscription), FERRY_ESEQ (never delivered),
 *         FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_ack(fy_store_t *self, uint64_t sub_id, uint64_t seq);
/** True if @p seq is acked (or its subscription is gone). */
fy_status_t fy_store_is_acked(fy_store_t *self, uint64_t sub_id, uint64_t seq, bool *acked);

/**
 * Fires the timers whose deadline passed, stopping once @p budget sequences
 * were looked at (a timer's range, at most one delivery of FY_BATCH_MAX
 * messages, is always finished, so a call looks at no more than budget +
 * FY_BATCH_MAX): each one still unacked and not re-timed is marked due (a durable
 * entry that the next fetch of its subscription delivers).
 * @param[out] due how many were marked. @param[out] more true if timers are left.
 * @return FERRY_OK, FERRY_ESTORAGE_FULL, FERRY_EIO
 */
fy_status_t fy_store_timers_due(fy_store_t *self, size_t budget, size_t *due, bool *more);

/**
 * After a restart: every delivery in flight is due again at @p latest at
 * the latest (ms since the epoch). The push consumers that held messages
 * lived in the old process's memory and are gone; their messages would
 * otherwise wait out their whole ack wait (30 s by default) before anybody
 * gets them again. Ack-wait timers and per-message deadlines later than
 * @p latest move to it; earlier ones stay. Inside a batch.
 * @param[out] moved how many timers moved (each covers a range of messages).
 */
fy_status_t fy_store_pull_deadlines(fy_store_t *self, uint64_t latest, size_t *moved);

/* ---- the file system ----------------------------------------------------
 *
 * A commit that fails because the file system is full (ENOSPC, EDQUOT) is
 * FERRY_ESTORAGE_FULL, not an I/O error: the store gives its reserve back to
 * the file system and says it is full until free space is back (at least
 * twice the reserve, checked by fy_store_disk_recheck), when it takes the
 * reserve again. Meanwhile the broker refuses what adds data and lets acks
 * and deletes free space. */

/** The data directory's file system. */
typedef struct fy_store_disk {
    uint64_t total, free; /**< bytes (statvfs; 0 when it cannot be read) */
    bool full;            /**< writes that add data are refused */
} fy_store_disk_t;

void fy_store_disk(const fy_store_t *self, fy_store_disk_t *out);
/** True while the file system is full. */
bool fy_store_disk_full(const fy_store_t *self);
/** While full: is there room again? Then it takes its reserve back and is
 *  no longer full. @return true if it changed. */
bool fy_store_disk_recheck(fy_store_t *self);

/** Fills the store's part of @p st: topics, messages, bytes, map_size, map_used. */
fy_status_t fy_store_totals(fy_store_t *self, fy_stats_t *st);

#endif /* FY_STORE_H */
