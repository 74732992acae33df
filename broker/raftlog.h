/* SPDX-License-Identifier: MIT */
/*
 * raftlog.h - a replicated log on Debian's libraft (the C Raft library
 * under dqlite): leader election, replication to a quorum, each entry on
 * the disk of every voter that has it (libraft's libuv I/O syncs its
 * segments), then applied in the same order on every node.
 *
 * The first brick of ferryd's cluster (docs/cluster.md, to come): the
 * broker's write-ahead log records (a batch's physical writes, store_wal.c)
 * become entries, so every node's LMDB receives the same writes in the same
 * order, decided once by the leader (time, sequences, key versions are in
 * the writes themselves).
 *
 * libraft and libuv run in a thread of their own; the calls below are
 * made from any other thread. The apply callback runs on that thread, in
 * log order, once for each committed entry (also those replayed from the
 * node's own log when it starts again: the state machine starts from its
 * last snapshot, restore, or from nothing).
 */
#ifndef FY_RAFTLOG_H
#define FY_RAFTLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "status.h"

/** A voter: its id (1, 2, 3, ...) and the address its peers reach it on
 *  ("127.0.0.1:7001": IPv4 and a port). */
typedef struct fy_raftlog_peer {
    uint64_t id;
    const char *address;
} fy_raftlog_peer_t;

/** The state machine: what a committed entry does, and its snapshots. */
typedef struct fy_raftlog_fsm {
    void *user;
    /** Entry @p index (1, 2, ... with gaps where libraft keeps entries of
     *  its own) with @p len bytes; 0 on success. */
    int (*apply)(void *user, uint64_t index, const uint8_t *data, size_t len);
    /** The whole state in one malloc'ed buffer (NULL: no snapshots). */
    int (*snapshot)(void *user, uint8_t **data, size_t *len);
    /** Replaces the state with a snapshot's. */
    int (*restore)(void *user, const uint8_t *data, size_t len);
    /** true: snapshot runs on a worker thread while entries go on being
     *  applied (the log is not held up by a large state), so it may capture
     *  entries past the snapshot's index; restore and apply must cope (the
     *  store's do: its entries are physical writes, replayed idempotently,
     *  and the copy names its own last index). */
    bool snapshot_async;
} fy_raftlog_fsm_t;

typedef struct fy_raftlog_config {
    uint64_t id;      /**< this node, one of peers */
    const char *dir;  /**< its log and snapshots (made if missing) */
    bool join;        /**< a new node: no bootstrap; it waits to be added (fy_raftlog_change) */
    const char *bind; /**< the address it listens on for its peers; NULL: its
                           own address in peers (differs behind a NAT or proxy) */
    const fy_raftlog_peer_t *peers; /**< the voters, this node among them */
    size_t npeers;                  /**< 1..9 */
    unsigned election_ms;           /**< 0: 1000 */
    unsigned heartbeat_ms;          /**< 0: 100 */
    unsigned snapshot_every;        /**< entries between snapshots; 0: 1024 */
    unsigned snapshot_trailing;     /**< entries kept in the log behind a snapshot (a
                                         follower further behind gets the snapshot);
                                         0: libraft's 8192 */
    fy_raftlog_fsm_t fsm;
} fy_raftlog_config_t;

typedef struct fy_raftlog fy_raftlog_t;

/** Where the node stands. */
typedef enum {
    FY_RAFTLOG_UNAVAILABLE = 0,
    FY_RAFTLOG_FOLLOWER,
    FY_RAFTLOG_CANDIDATE,
    FY_RAFTLOG_LEADER
} fy_raftlog_role_t;

/** A voter as the leader sees it. */
typedef struct fy_raftlog_node {
    uint64_t id;
    char address[64];
    uint64_t match_index; /**< the last entry it has (the leader's: its last) */
    bool voter;           /**< a voter (else a spare still catching up) */
    bool recent;          /**< heard from within an election timeout */
} fy_raftlog_node_t;

typedef struct fy_raftlog_state {
    fy_raftlog_role_t role;
    uint64_t term;
    uint64_t leader_id; /**< 0: none known */
    char leader_address[64];
    uint64_t commit_index, applied_index, last_index;
    /** Leads, and every entry of the terms before its own is applied here:
     *  what it appends now is decided on the whole state. */
    bool ready;
    uint64_t elections; /**< terms this node saw begin since it started */
    size_t nnodes;      /**< the configuration's voters (their progress: leader only) */
    fy_raftlog_node_t nodes[9];
} fy_raftlog_state_t;

/** What an append came to. */
typedef enum {
    FY_RAFTLOG_COMMITTED = 0, /**< on a quorum's disks and applied here */
    FY_RAFTLOG_NOT_LEADER,    /**< refused: this node does not lead (nothing appended) */
    FY_RAFTLOG_LOST,          /**< leadership was lost before the commit: the entry may
                                   still commit under the next leader, or vanish */
    FY_RAFTLOG_FAILED         /**< an error of the node (disk, memory, stopping) */
} fy_raftlog_result_t;

/**
 * Starts node cfg->id: bootstraps the configuration in a new directory (all
 * voters bootstrap the same one), starts libraft and its thread.
 * @return FERRY_OK, FERRY_EINVAL (configuration), FERRY_EIO (with err)
 */
fy_status_t fy_raftlog_start(const fy_raftlog_config_t *cfg, const fy_log_t *log,
                             fy_raftlog_t **out, fy_err_t *err);

/**
 * Appends one entry (copied) and waits until it is committed and applied
 * on this node, or refused. Any thread but the log's own.
 * @param[out] index may be NULL; the entry's index when committed.
 */
fy_raftlog_result_t fy_raftlog_append(fy_raftlog_t *self, const void *data, size_t len,
                                      uint64_t *index);

/**
 * On the leader: adds node @p id at @p address (it joins as a spare, catches
 * up, and is made a voter once it has: see fy_raftlog_state's nodes), or
 * removes node @p id (@p address NULL). Waits until the new configuration
 * is committed (for an add: the spare's). Any thread but the log's own.
 * @return FERRY_OK; FERRY_ENOTLEADER; FERRY_EINVAL with a sentence in
 *         @p why (an id or address in use, not a member, the leader itself,
 *         another change under way)
 */
fy_status_t fy_raftlog_change(fy_raftlog_t *self, uint64_t id, const char *address, char *why,
                              size_t cap);

/** Where the node stands now (refreshed by the log's thread). */
void fy_raftlog_state(fy_raftlog_t *self, fy_raftlog_state_t *out);

/** Stops the node (appends waiting get FY_RAFTLOG_FAILED), joins its thread
 *  and frees; sets *self_p = NULL. */
void fy_raftlog_stop(fy_raftlog_t **self_p);

#endif /* FY_RAFTLOG_H */
