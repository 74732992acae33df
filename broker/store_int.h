/* SPDX-License-Identifier: MIT */
/*
 * store_int.h - what the files of the store module share: store.c (topics,
 * messages, batches), store_open.c, store_keyidx.c, store_dedupe.c,
 * store_retention.c, store_restart.c, store_wal.c (the write-ahead log
 * behind the batches), sub_records.c (subscription records) and subs.c
 * (deliveries, acks, timers): the store struct, its records and a few helpers. Nothing outside
 * them includes it.
 */
#ifndef FY_STORE_INT_H
#define FY_STORE_INT_H

#include <lmdb.h>

#include "reccache.h"
#include "store.h"
#include "wal.h"

/* Checkpoints (store_wal.c): the root is committed when nothing was written
 * for FY_STORE_CP_QUIET_MS, when its oldest write waited FY_STORE_CP_MAX_MS
 * (250 ms: measured in W2, 100 ms raised p99, 1 s and 5 s raised p99.9),
 * or when the log is half full; after a failure, not again for
 * FY_STORE_CP_RETRY_MS. */
#define FY_STORE_CP_QUIET_MS 50
#define FY_STORE_CP_MAX_MS   250
#define FY_STORE_CP_RETRY_MS 1000
#define FY_STORE_WAL_DEFAULT (64ull << 20)

#define S_TOPIC_REC_V1 64  /* bytes of a topic record without limits */
#define S_TOPIC_REC    96  /* bytes of a topic record */
#define S_MSG_HDR      18  /* bytes of a message value's fixed header */
#define S_MSG_KVER     0x1 /* flag: an 8-byte key version follows the header */
#define S_MSG_DELAYED  0x2 /* flag: then an 8-byte not-before time (ms) */
/* Key of the per-key index: topic id, key length, key, key version. */
#define S_KIDX_KEY_MAX (8 + 1 + FY_ID_MAX + 8)

typedef struct fy_topic_rec {
    uint8_t name[FY_NAME_MAX];
    size_t name_len;
    uint64_t id, created_ms, dedupe_ms, first, last, count, bytes;
    uint64_t max_msgs, max_bytes, max_age_ms; /* retention limits, 0 = none */
    bool discard_new;
    bool interest; /* delete what every subscription acked */
    fy_kind_t kind;
    bool dirty;
} fy_topic_rec_t;

#define S_SUB_REC 64 /* bytes of a subscription record before the topic name */

/* A subscription record as cached for one batch. */
typedef struct fy_sub_rec {
    uint64_t id, topic_id, cursor, floor, ack_wait_ms, max_deliver, created_ms;
    uint8_t key[8 + FY_NAME_MAX]; /* its key in `subs`: topic id + name */
    size_t key_len;
    uint8_t topic[FY_NAME_MAX]; /* the topic's name */
    size_t topic_len;
    uint8_t filter[FY_NAME_MAX]; /* subject pattern over keys; empty: all */
    size_t filter_len;
    char owner[FY_SUB_OWNER_MAX + 1]; /* the user who declared it; "": anyone's */
    bool dirty;
} fy_sub_rec_t;

struct fy_store {
    MDB_env *env;
    MDB_dbi meta, topics, messages, dedupe, dedupe_exp, subs, deleted;
    MDB_dbi sub_ids, acks, pend, timers, due, keyidx;
    MDB_txn *root; /* the long write transaction batches nest in (store_wal.c) */
    MDB_txn *txn;  /* the batch's: a child of root */
    MDB_cursor *msg_cur, *key_cur;
    fy_wal_t *wal;
    uint8_t *redo; /* the batch's writes: FY_WAL_HDR bytes of room, then ops */
    size_t redo_len, redo_cap;
    bool recording;          /* a batch is open: writes are recorded */
    bool redo_failed;        /* out of memory recording: the batch fails */
    bool broken;             /* the root could not be rebuilt: ferryd must restart */
    uint64_t lsn_last;       /* the newest batch in the root */
    uint64_t lsn_cp;         /* the newest batch LMDB has on disk */
    long long cp_first_ms;   /* when the oldest batch not checkpointed was written; 0 none */
    long long last_write_ms; /* when the newest was */
    long long cp_failed_ms;  /* when a checkpoint last failed */
    bool map_tight;          /* the map is nearly full: every batch is checkpointed */
    uint64_t checkpoints, cp_full, checkpoint_us;
    bool spoiled, dirty;
    uint64_t now_ms;
    uint64_t default_dedupe_ms;
    const fy_log_t *log;
    void (*on_dead_letter)(void *user, uint64_t sub_id); /* fy_store_opts_t */
    void *dead_letter_user;
    int lock_fd;
    fy_reccache_t topics_cache; /* fy_topic_rec_t: topics touched by this batch */
    fy_reccache_t subs_cache;   /* fy_sub_rec_t: subscriptions touched by this batch */
    fy_encoder_t *scratch;      /* dead-letter headers */
    uint64_t *hashes;           /* FY_BATCH_MAX: content hashes of the messages of one append */
    uint64_t map_size;          /* the storage limit */
    uint64_t batch_added;       /* bytes appended by the batch (for the soft limit) */
    uint64_t map_in_use;        /* at the batch's start */
    int map_state;              /* per batch: 0 not checked, 1 room, 2 over the soft limit */
    bool use_reserve;           /* dead-lettering: moving data may use the reserve */
    char dir[1024];             /* the data directory */
    uint64_t reserve_bytes;     /* ferryd.reserve's size; 0: none */
    bool reserve_held;          /* ferryd.reserve exists with its size */
    bool disk_full;             /* a commit failed with ENOSPC/EDQUOT, room not back yet */
    long long reserve_tried_ms; /* last attempt to take the reserve back */
    /* Cluster mode (store_raft.c): the replicated log instead of `wal`. */
    fy_raftlog_t *raft;
    uint64_t raft_id;       /* this node */
    bool raft_failed;       /* an entry could not be applied (atomic: set by the log's thread) */
    char boot_voters[1024]; /* the voters this node was first started with (cluster_id.h) */
    bool voters_checked;    /* the cluster's agreed with them */
    bool clean_mark;        /* DATA/cluster.clean is there: removed before LMDB's first write */
    uint64_t raft_applied;  /* the last entry in LMDB (the log's thread's after start) */
    uint64_t snapshots, snapshot_us; /* taken, and the last one's time (the log's thread's) */
    uint64_t leader_term;            /* the term whose leader record this node wrote */
    uint64_t leader_term_seen;       /* cluster state as last read by the broker's thread */
    char advertise[256];             /* this node's client endpoint */
};

#define FY_STORE_DBS 13 /* the databases, in the order store_open.c opens them */
/* The store's databases in handle order (store_open.c). */
void fy_storei_dbs(fy_store_t *self, MDB_dbi *out, const char **names);

/* Bytes of the pages on LMDB's freelist: room inside the data file that
 * writes reuse before the file grows. Reads FREE_DBI in a read transaction
 * of its own (not inside a write transaction). */
uint64_t fy_storei_freelist_bytes(fy_store_t *self);

/* store_open.c: takes the reserve (true if it now holds it) and gives it
 * back to the file system. */
bool fy_storei_reserve_take(fy_store_t *self);
void fy_storei_reserve_give(fy_store_t *self);

/* store_wal.c: every write of a batch goes through these, so that the
 * batch's record in the write-ahead log holds what LMDB got. Same results
 * as the LMDB calls they wrap. A value put with MDB_RESERVE is recorded by
 * fy_storei_logged once it is filled. */
int fy_storei_put(fy_store_t *self, MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v,
                  unsigned flags);
int fy_storei_del(fy_store_t *self, MDB_txn *txn, MDB_dbi dbi, MDB_val *k);
int fy_storei_cursor_put(fy_store_t *self, MDB_cursor *cur, MDB_val *k, MDB_val *v, unsigned flags);
int fy_storei_cursor_del(fy_store_t *self, MDB_cursor *cur);
int fy_storei_logged(fy_store_t *self, MDB_dbi dbi, const MDB_val *k, const MDB_val *v);
/* fy_storei_put into the batch's transaction, its result translated
 * (fy_storei_mdb, @p what naming the write in a log line). */
fy_status_t fy_storei_set(fy_store_t *self, MDB_dbi dbi, MDB_val *k, MDB_val *v, const char *what);
/* The root transaction, begun if there is none. */
fy_status_t fy_storei_root(fy_store_t *self);
/* After the batch's transaction merged into the root: its record to the
 * log (durable when FERRY_OK), or a checkpoint if it does not fit. */
fy_status_t fy_storei_wal_commit(fy_store_t *self);
/* A commit that failed with LMDB/errno @p rc, translated (and a full disk
 * noted, its reserve given back). */
fy_status_t fy_storei_commit_failed(fy_store_t *self, int rc, const char *what);
/* Opens the log (DATA/ferry.wal) and applies what it holds past LMDB's
 * checkpoint; closing checkpoints. */
fy_status_t fy_storei_wal_open(fy_store_t *self, uint64_t want_bytes, bool sync, fy_err_t *err);
void fy_storei_wal_close(fy_store_t *self);
/* Applies a batch's redo operations (@p len bytes) to @p txn; *ops counts
 * them. @return 0 or an LMDB code (EINVAL: malformed). */
int fy_storei_redo_apply(fy_store_t *self, MDB_txn *txn, const uint8_t *p, size_t len,
                         uint64_t *ops);

/* store_raft.c: cluster mode. Open starts the node (LMDB trusted only after
 * a clean stop, else emptied and rebuilt from the snapshot and the log);
 * close stops it and marks LMDB clean. The commit replicates the batch's
 * redo record; a batch begins only while the node may write (it leads). */
fy_status_t fy_storei_raft_open(fy_store_t *self, const fy_store_cluster_t *cl, fy_err_t *err);
void fy_storei_raft_close(fy_store_t *self);
fy_status_t fy_storei_raft_commit(fy_store_t *self);
fy_status_t fy_storei_raft_may_write(fy_store_t *self);
/* The batch began: a leader's first batch of its term says who leads. */
fy_status_t fy_storei_raft_begun(fy_store_t *self);

/* Translates an LMDB result at the boundary; any failure spoils the txn. */
fy_status_t fy_storei_mdb(fy_store_t *self, int rc, const char *what);
/* Finds a topic in the batch cache or loads it; *out NULL if there is none. */
fy_status_t fy_storei_topic_get(fy_store_t *self, fy_bytes_t name, fy_topic_rec_t **out);
/* The same, but a topic that does not exist is FERRY_ENOTFOUND. */
fy_status_t fy_storei_topic_need(fy_store_t *self, fy_bytes_t name, fy_topic_rec_t **out);
fy_status_t fy_storei_meta_get(fy_store_t *self, MDB_txn *txn, const char *key, uint64_t *out,
                               bool *found);
fy_status_t fy_storei_meta_put(fy_store_t *self, MDB_txn *txn, const char *key, uint64_t val);
/* Key of message `seq` of topic `topic_id` in `messages` (16 bytes). */
void fy_storei_msg_key(uint8_t *key, uint64_t topic_id, uint64_t seq);
/* Parses a message record; false if it is malformed. Borrows from the map. */
bool fy_storei_parse_message(const MDB_val *k, const MDB_val *v, fy_stored_t *out);

/* The version of `key` in topic `topic_id`: its newest index entry (0: none).
 * *tomb: that entry is a tombstone (its message was removed). The key cursor
 * is left on the entry. */
fy_status_t fy_storei_key_head(fy_store_t *self, uint64_t topic_id, fy_bytes_t key, uint64_t *ver,
                               bool *tomb);

/* Deletes the keys of `dbi` that start with the 8-byte `prefix`: all, or up
 * to *budget of them (counted down); *done (may be NULL) when none is left. */
fy_status_t fy_storei_del_prefix(fy_store_t *self, MDB_dbi dbi, uint64_t prefix, size_t *budget,
                                 bool *done);

/* Deletes message `seq` of topic `t`, keeping its counters and first sequence. */
fy_status_t fy_storei_remove_message(fy_store_t *self, fy_topic_rec_t *t, uint64_t seq);

/* The key and stored value of a topic or subscription record (the record
 * caches' encode functions). */
size_t fy_storei_topic_kv(const void *rec, MDB_val *key, uint8_t *buf);
size_t fy_storei_sub_kv(const void *rec, MDB_val *key, uint8_t *buf);

/* Decodes a topic record; false if it is malformed. */
bool fy_storei_topic_decode(const MDB_val *v, fy_topic_rec_t *t);

/* store_keyidx.c: gives `key` of `topic_id` its next version (*ver), pointing
 * at `seq`; and drops the entry of (key, ver) whose message was removed, or
 * makes it the key's tombstone if it is the newest. */
fy_status_t fy_storei_kidx_add(fy_store_t *self, uint64_t topic_id, fy_bytes_t key, uint64_t seq,
                               uint64_t *ver);
fy_status_t fy_storei_kidx_remove(fy_store_t *self, uint64_t topic_id, fy_bytes_t key,
                                  uint64_t ver);

/* store_dedupe.c: looks `id` up in the topic's window (*seq 0: not seen;
 * *hash the content hash kept with it, 0 for an older entry; `key` receives
 * the index key, 8 + FY_ID_MAX bytes), records it, and expires entries
 * whose window passed (bounded by *budget). */
fy_status_t fy_storei_dedupe_find(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t id,
                                  uint8_t *key, uint64_t *seq, uint64_t *hash);
fy_status_t fy_storei_dedupe_put(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t id,
                                 const uint8_t *key, uint64_t seq, uint64_t hash);
/* The content hash kept with a dedupe entry: key, headers and payload
 * (FNV-1a, 64 bits, never 0: 0 means an entry written before hashes). */
uint64_t fy_storei_content_hash(const fy_pubmeta_t *m, fy_bytes_t payload);
fy_status_t fy_storei_sweep_dedupe(fy_store_t *self, size_t *budget, bool *more);

/* store_retention.c: drops the oldest messages while `t` is over max_msgs or
 * max_bytes (discard old). */
fy_status_t fy_storei_trim_to_limits(fy_store_t *self, fy_topic_rec_t *t);

/* Implemented in sub_records.c. */
/* The lowest ack floor of the topic's subscriptions; *any false if it has none. */
fy_status_t fy_storei_min_floor(fy_store_t *self, uint64_t topic_id, uint64_t *floor, bool *any);
fy_status_t fy_storei_sub_create(fy_store_t *self, const fy_topic_rec_t *t, fy_bytes_t name,
                                 const fy_sub_opts_t *o, fy_sub_rec_t **out);
fy_status_t fy_storei_flush_subs(fy_store_t *self);
fy_status_t fy_storei_drop_subs_of(fy_store_t *self, uint64_t topic_id);
/* The subscription with id @p id (from the batch's cache or the store), or
 * *out NULL if there is none. */
fy_status_t fy_storei_sub_by_id(fy_store_t *self, uint64_t id, fy_sub_rec_t **out);
/* As fy_storei_sub_by_id, but a subscription that does not exist is FERRY_ENOTFOUND. */
fy_status_t fy_storei_sub_need(fy_store_t *self, uint64_t sub_id, fy_sub_rec_t **out);
/* The topic a subscription reads; *out NULL if it was deleted (or redeclared). */
fy_status_t fy_storei_sub_topic(fy_store_t *self, const fy_sub_rec_t *sub, fy_topic_rec_t **out);

#endif
