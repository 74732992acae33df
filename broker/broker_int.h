/* SPDX-License-Identifier: MIT */
/*
 * broker_int.h - what the broker's files share: the broker struct, its
 * per-batch request and reply tables, and the calls between the loop
 * (broker.c), its start (broker_start.c), users and permissions
 * (broker_auth.c), the replies (broker_reply.c) and the handlers of
 * messages, consumers and subscriptions (broker_deliver.c). Nothing outside
 * those files includes it. Everything runs on the broker's one thread (the
 * ZAP handler's thread shares only what zap.h says).
 */
#ifndef FY_BROKER_INT_H
#define FY_BROKER_INT_H

#include <zmq.h>

#include "broker.h"
#include "clock.h"
#include "consumers.h"
#include "grow.h"
#include "fence.h"
#include "histo.h"
#include "metrics.h"
#include "peerq.h"
#include "ratelog.h"
#include "store.h"
#include "topicstats.h"
#include "peernames.h"

#define FY_BRK_MAX_FRAMES           (FY_BATCH_MAX + 2) /* identity + envelope + payloads */
#define FY_BRK_BATCH_BYTES          (64u << 20)        /* stop draining past this many bytes... */
#define FY_BRK_FRAME_COST           64                 /* ...counting each frame as at least this */
#define FY_BRK_SWEEP_BUDGET         1024               /* dedupe/delete work items per turn */
#define FY_BRK_IDLE_MS              100                /* sweeps and ack-wait timers, when idle */
#define FY_BRK_METRICS_MS           500                /* snapshots for the metrics endpoint */
#define FY_BRK_WAITERS_MAX          4096               /* fetches waiting for messages at once */
#define FY_BRK_WAITERS_TURN         256                /* waiting fetches tried per loop turn */
#define FY_BRK_RESTART_REDELIVER_MS 3000 /* at start: deliveries in flight come back within */
#define FY_BRK_DRAIN_MS             2000 /* stopping: requests answered ESHUTDOWN for at most this... */
#define FY_BRK_DRAIN_QUIET_MS       200 /* ...and until none came for this long */

typedef struct fy_brk_req {
    size_t first;   /* index of the identity frame in frames[] */
    size_t nframes; /* frames kept (identity, envelope, payloads) */
    bool overflow;  /* more frames arrived than FY_BRK_MAX_FRAMES: refused */
} fy_brk_req_t;

typedef struct fy_brk_reply {
    size_t req;       /* index into reqs[] (for the identity) */
    size_t off, len;  /* envelope bytes in the encoder */
    size_t out_first; /* payload frames in outs[] */
    size_t out_count;
    fy_status_t code; /* for counters and logs */
    size_t stored;    /* messages stored by this request */
    size_t dups;      /* duplicates answered */
    bool confirm;     /* a single publish confirm, encoded at send time (cid, seq, dup, kver) */
    uint64_t cid, seq, kver;
    const uint8_t *peer; /* set: the reply goes there instead of to request `req`'s peer */
    size_t peer_len;
    fy_bytes_t topic; /* publishes and conflicts: their topic, for its counters */
} fy_brk_reply_t;

/* A fetch that found nothing and waits (until `deadline_ms`, monotonic) for
 * messages. Kept in memory only: a client whose broker restarted asks again. */
typedef struct fy_brk_waiter {
    uint8_t peer[256];
    size_t peer_len;
    uint64_t cid;
    uint8_t topic[FY_NAME_MAX], sub[FY_NAME_MAX];
    size_t topic_len, sub_len;
    uint32_t max, max_bytes;
    long long deadline_ms;
    bool served; /* answered in the batch being applied */
} fy_brk_waiter_t;

/* A reply's place when replies are grouped by peer for sending. */
typedef struct fy_brk_order {
    const uint8_t *peer;
    size_t peer_len;
    size_t index;
} fy_brk_order_t;

struct fy_users;
struct fy_zap;

/* A user's publish budget (max-publish-rate): a token bucket of bytes that
 * fills at the rate, up to one second's worth. */
typedef struct fy_brk_rate {
    char user[65];
    double tokens;
    long long at_us; /* fy_mono_us of the last refill */
} fy_brk_rate_t;

struct fy_broker {
    fy_config_t cfg;
    struct fy_users *users;         /* --users: who may do what (users.h), or NULL: anyone */
    struct fy_zap *zap;             /* the ZAP handler letting their keys in, or NULL */
    uint64_t forbidden;             /* requests refused EFORBIDDEN since start */
    uint64_t rate_limited;          /* publishes refused ERATE since start */
    uint64_t over_connections;      /* requests refused: the user's max-connections */
    struct fy_userconns *userconns; /* --users: connections per user, or NULL */
    fy_brk_rate_t *rates;           /* per user with a max-publish-rate */
    size_t nrates, rates_cap;
    fy_ratelog_t forbid_log;
    fy_metrics_t *metrics; /* the HTTP endpoint, or NULL */
    long long metrics_at;  /* when it was last given a snapshot */
    const fy_log_t *log;
    void *ctx, *sock;
    char endpoint[256];
    char advertise[256]; /* cluster mode: this node's client endpoint, named by followers */
    fy_store_t *store;
    fy_decoder_t *dec;
    fy_encoder_t *enc;
    fy_encoder_t *items;       /* message entries of a get/fetch reply before its count is known */
    uint64_t last_item_seq;    /* sequence of the last entry encoded into items */
    fy_consumer_t *delivering; /* the consumer s_item records sent sequences for, or NULL */
    zmq_msg_t *frames;
    size_t nframes, frames_cap;
    fy_brk_req_t *reqs;
    size_t nreqs;
    fy_brk_reply_t *replies;
    size_t nreplies;
    fy_brk_order_t *order; /* batch_max + FY_BRK_WAITERS_TURN */
    /* Waiting fetches: `waiters` is what the last committed batch left; a
     * batch adds to `new_waiters` and marks served ones, and only after its
     * commit are those changes made (a replayed batch starts again clean). */
    fy_brk_waiter_t *waiters, *new_waiters;
    size_t nwaiters, nnew_waiters, waiter_rr;
    /* Push consumers, journaled the same way: a batch records credit added,
     * messages sent and removals per consumer, and new consumers apart; the
     * commit applies them, a replay forgets them. */
    fy_consumers_t cons;
    bool deliver_soon; /* consumers or credit were added: run a turn at once */
    bool full_logged;  /* "storage full" already logged for this batch */
    zmq_msg_t *outs;
    size_t nouts, outs_cap;
    fy_bytes_t *payloads; /* FY_BATCH_MAX */
    uint64_t *seqs;       /* FY_BATCH_MAX */
    bool *dups;           /* FY_BATCH_MAX */
    uint64_t *kvers;      /* FY_BATCH_MAX */
    size_t nitems;        /* entries encoded into items */
    uint64_t item_bytes;  /* their fy_stored_cost, for a consumer's held bytes */
    bool sweep_more;
    long long background_retry_ms;  /* cleanup failed: not before then */
    long long background_logged_ms; /* its last log line */
    bool background_failing;
    long long next_sweep_ms;
    long long started_ms;
    uint64_t now_wall_ms;        /* the batch's time, as the store has it */
    fy_stats_t stats;            /* counters since start */
    uint64_t ids_reused;         /* publishes refused with EIDREUSED since start */
    fy_ratelog_t bad_log;        /* "bad request" lines: once per peer per 10 s */
    fy_ratelog_t drop_log;       /* "reply dropped" lines: the same */
    fy_fence_t fences;           /* peers whose ordered publishes were refused */
    uint64_t replies_dropped;    /* replies that could not be queued to their peer */
    fy_peerq_t *peerq;           /* replies held for and requests parked from slow peers */
    int flush_wait_ms;           /* poll timeout while replies are held (backs off) */
    uint64_t replies_held;       /* replies held since start (a peer's pipe was full) */
    uint64_t requests_parked;    /* requests parked since start */
    uint64_t requests_refused;   /* requests refused: FY_PEERQ_PARK_MAX parked already */
    fy_ratelog_t park_log;       /* "peer not reading" lines: once per peer per 10 s */
    size_t trim_live;            /* consumers at the last look (s_trim) */
    uint64_t trim_peers;         /* slow peers at the last look */
    bool trim_due;               /* some went away: give memory back */
    long long trim_at;           /* when memory was last given back */
    fy_histo_t commit_us;        /* durable commits: time from batch start to on disk */
    fy_histo_t checkpoint_us;    /* checkpoints: LMDB's commit behind the write-ahead log */
    fy_histo_t batch_reqs;       /* requests per group commit */
    uint64_t slow_batches;       /* batches slower than --slow-batch-ms since start */
    uint64_t slow_held;          /* of those, not logged since the last line */
    long long slow_logged_ms;    /* when the last "slow batch" line went out */
    bool leading;                /* cluster mode: this node leads (a single node always does) */
    uint64_t not_leader_refused; /* requests answered ENOTLEADER / ELEADER_LOST */
    fy_topicstats_t topicstats;  /* counters per topic since start (/metrics) */
    fy_substats_t substats;      /* and per subscription */
    uint64_t item_redeliveries;  /* items of this fetch with a delivery count above 1 */
    fy_peernames_t peernames;    /* client names by routing id, for log lines */
    char *topic_metrics;         /* the per-topic lines of the last metrics snapshot */
};

/* ---- metrics_topics.c ----------------------------------------------------- */

/** The per-topic and per-subscription lines of /metrics into @p buf (inside
 *  a batch). @return the bytes written. */
size_t fy_brk_topic_metrics(fy_broker_t *self, char *buf, size_t cap);

/* ---- broker_cluster.c --------------------------------------------------- */

/** The store's cluster settings from ferryd's (@p peers: FY_CLUSTER_MAX,
 *  @p advertise: its buffer). @return FERRY_OK, FERRY_EINVAL */
fy_status_t fy_brk_cluster_opts(const fy_config_t *cfg, fy_store_cluster_t *out,
                                fy_raftlog_peer_t *peers, char *advertise, size_t cap,
                                fy_err_t *err);
/** Once per turn: whether this node may write now; on becoming the leader,
 *  the deliveries in flight under the last one are brought back. */
bool fy_brk_cluster_turn(fy_broker_t *self);
/** At start: a cluster's node says so, and warns when its peers are on
 *  other hosts (libraft's transport is neither encrypted nor authenticated). */
void fy_brk_cluster_say(fy_broker_t *self);
/** Answers the drained batch with @p code (ENOTLEADER or ELEADER_LOST),
 *  naming the leader's client endpoint if known ("leader=tcp://..."). */
void fy_brk_refuse_not_leader(fy_broker_t *self, fy_status_t code);
/** Answers every request of the drained batch with @p code and @p msg:
 *  nothing of it was applied (a failed commit, a broker stopping). */
void fy_brk_refuse_batch(fy_broker_t *self, fy_status_t code, const char *msg);
/** The cluster op: this node's view of its cluster (id 0: a single node). */
/** cluster: this node's view; node_add, node_remove: membership changes. */
fy_status_t fy_brk_handle_cluster(fy_broker_t *self, size_t ri, const fy_request_t *req,
                                  fy_err_t *err);

/* ---- broker_start.c ---------------------------------------------------- */

/** CURVE on the broker's socket with the secret key in @p secret_file
 *  (curvekey.h); logs the public key. @return FERRY_OK, or FERRY_EINVAL /
 *  FERRY_EIO with a sentence in err. */
fy_status_t fy_brk_curve(fy_broker_t *self, const char *secret_file, fy_err_t *err);
/** The metrics endpoint (--metrics), with its bearer token if
 *  --metrics-token names a file only its owner may read. */
fy_status_t fy_brk_metrics(fy_broker_t *self, fy_err_t *err);
/** Deliveries in flight at the last stop come back within
 *  FY_BRK_RESTART_REDELIVER_MS (store.h fy_store_pull_deadlines). */
fy_status_t fy_brk_after_restart(fy_broker_t *self, fy_err_t *err);

/* ---- broker_auth.c ------------------------------------------------------ */

/** --users: loads the users file and starts the ZAP handler (before the
 *  socket binds). @return FERRY_OK, or a status with a sentence in err. */
fy_status_t fy_brk_auth_start(fy_broker_t *self, fy_err_t *err);
/** SIGHUP: reads the users file again; on an error the old one stays. */
void fy_brk_auth_reload(fy_broker_t *self);
/** Whether request @p ri may run for its connection's user; if not it is
 *  answered EFORBIDDEN (logged at most once per peer per 10 s, counted). */
bool fy_brk_auth_allows(fy_broker_t *self, size_t ri, const fy_request_t *req);
/** The user name of request @p ri's connection; NULL without --users. */
const char *fy_brk_auth_user(fy_broker_t *self, size_t ri);
/** True if the user of request @p ri may publish, consume or administer
 *  @p topic (without users: always), for listings. */
bool fy_brk_auth_sees(fy_broker_t *self, size_t ri, fy_bytes_t topic);
/** Whether request @p ri's user may use a subscription @p owner declared:
 *  its owner, or a user with admin on the topic; anyone when @p owner is ""
 *  (declared without --users) or without --users. If not: FERRY_EFORBIDDEN
 *  with the reason in @p err, counted and logged. */
fy_status_t fy_brk_auth_sub(fy_broker_t *self, size_t ri, const fy_request_t *req,
                            const char *owner, fy_err_t *err);
/** subscribe: whether request @p ri's user may have one more push
 *  consumer; its name goes to @p user (65 bytes; "" without --users).
 *  @return FERRY_OK, or FERRY_ETOO_MANY with a sentence in err. */
fy_status_t fy_brk_auth_consumer(fy_broker_t *self, size_t ri, char *user, fy_err_t *err);
/** Handshakes let in and refused by the ZAP handler since start. */
void fy_brk_auth_stats(fy_broker_t *self, uint64_t *accepted, uint64_t *refused);
/** Stops the ZAP handler (before the context ends) and frees the users. */
void fy_brk_auth_stop(fy_broker_t *self);

/* ---- broker_reply.c ---------------------------------------------------- */

/** Begins the reply to request @p req_index; its envelope is encoded next. */
fy_status_t fy_brk_reply_begin(fy_broker_t *self, size_t req_index, fy_brk_reply_t **out);
/** Ends reply @p r: what was encoded since it began is its envelope. */
void fy_brk_reply_end(fy_broker_t *self, fy_brk_reply_t *r);
/** Ends reply @p r, the last one begun, if encoding it went well (@p st);
 *  otherwise takes it back so that no half-encoded reply is sent. */
fy_status_t fy_brk_reply_finish(fy_broker_t *self, fy_brk_reply_t *r, fy_status_t st);
/** fy_peerq_flush's report of a peer gone with @p replies held for it
 *  (user: the broker): counted and logged as dropped. */
void fy_brk_peer_gone(void *user, const void *peer, size_t peer_len, size_t replies);
/** An error reply to request @p ri. */
void fy_brk_error(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code,
                  const char *msg);
/** An error reply for bad input, logged once as a warning with the peer. */
void fy_brk_refuse(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_status_t code,
                   const char *msg);
/** ECONFLICT with what the writer should know now (logged at debug only). */
void fy_brk_conflict(fy_broker_t *self, size_t ri, const fy_request_t *req,
                     const fy_conflict_t *cf);
/** Sends the batch's replies after its commit, grouped by peer; never blocks. */
void fy_brk_send_replies(fy_broker_t *self);
/** Forgets the batch's replies (after sending, or before a replay). */
void fy_brk_reset_replies(fy_broker_t *self);

/* ---- broker_deliver.c -------------------------------------------------- */

/** get, fetch and read: a fetch with a wait that finds nothing becomes a waiter. */
fy_status_t fy_brk_handle_messages(fy_broker_t *self, size_t ri, const fy_request_t *req,
                                   fy_err_t *err);
/** Tries waiting fetches (a bounded number per turn, round robin). */
void fy_brk_serve_waiters(fy_broker_t *self);
/** After a commit: drop the waiters served, keep the rest, add the new ones. */
void fy_brk_commit_waiters(fy_broker_t *self);
/** subscribe, credit, unsubscribe. */
fy_status_t fy_brk_handle_consumer(fy_broker_t *self, size_t ri, const fy_request_t *req,
                                   fy_err_t *err);
/** Sends push consumers what their credit allows. */
void fy_brk_deliver(fy_broker_t *self);
/** sub_declare and sub_info. */
fy_status_t fy_brk_handle_sub(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err);
/** ack, nack, term, progress, in the batch's transaction. */
fy_status_t fy_brk_handle_ack(fy_broker_t *self, size_t ri, const fy_request_t *req, fy_err_t *err);

/* ---- broker_admin.c ---------------------------------------------------- */

/** topics and subs: a page of the topics the connection's user sees, or of a topic's subscriptions.
 */
fy_status_t fy_brk_handle_admin(fy_broker_t *self, size_t ri, const fy_request_t *req,
                                fy_err_t *err);

#endif /* FY_BROKER_INT_H */
