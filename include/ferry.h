/* SPDX-License-Identifier: MIT */
/*
 * ferry.h - the public C API of libferry, the Ferry client library.
 *
 * One of the installed headers in include/ (with ferry_status.h, the status
 * list it includes, ferry_outbox.h and ferry_saga.h). It uses standard headers
 * only; every object is opaque. A ferry_client_t is used by one thread at a time: give
 * each thread its own client, or serialise calls yourself. Callbacks run
 * inside calls on their client and must not call it. What you pass in is
 * borrowed for the call; what the library hands out it owns (each function
 * says how long it stays valid). docs/client.md is the guide.
 *
 * Every fallible call returns a ferry_status_t (FERRY_OK = 0). The status
 * numbers are part of the wire protocol: they are appended to, never
 * renumbered. ferry_strerror() and ferry_errname() give their text.
 */
#ifndef FERRY_H
#define FERRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FERRY_VERSION_STRING "0.1.0"
/** Version of the wire protocol this library speaks. */
#define FERRY_PROTOCOL_VERSION 1

/** Kinds of destination. A queue is a topic with one implicit subscription. */
typedef enum ferry_kind { FERRY_KIND_TOPIC = 1, FERRY_KIND_QUEUE = 2 } ferry_kind_t;

/** Longest topic or queue name, in bytes. */
#define FERRY_NAME_MAX 255
/** Longest key or message id, in bytes. */
#define FERRY_ID_MAX 255

/** A header of a message: both strings are borrowed by the call they are passed to. */
typedef struct ferry_header {
    const char *name;
    const char *value;
} ferry_header_t;

/** ferry_message_t.expect: which expectations the broker checks before storing. */
#define FERRY_EXPECT_LAST_SEQ    0x1u /**< the topic's last sequence is expect_last_seq */
#define FERRY_EXPECT_KEY_VERSION 0x2u /**< the key's version is expect_key_version */

/**
 * A message to publish. Every pointer is borrowed for the duration of the call.
 * `key` and `id` are optional (NULL): `id` enables the broker's dedupe window.
 * A zeroed struct plus data/len is a plain message; the other fields are options.
 *
 * Optimistic concurrency (event sourcing): with FERRY_EXPECT_* bits in `expect`
 * the broker stores the message only if the topic's last sequence and/or the
 * key's version (how many messages with this key the topic holds, 0 = none yet)
 * are what the writer saw; otherwise it refuses with FERRY_ECONFLICT and the
 * current values in the confirm. A resend of a stored message with the same id
 * is answered as a duplicate first, whatever its expectations.
 *
 * Delayed delivery: a message with `not_before_ms` (ms since the Unix epoch) or
 * `delay_ms` (from when the broker stores it) is stored and confirmed at once
 * but delivered to subscriptions only from that time on.
 */
typedef struct ferry_message {
    const void *data;
    size_t len;
    const char *key;
    const char *id;
    const ferry_header_t *headers;
    size_t header_count;
    unsigned expect;          /**< FERRY_EXPECT_* bits; 0: no checks */
    uint64_t expect_last_seq; /**< with FERRY_EXPECT_LAST_SEQ (0: the topic is empty) */
    uint64_t
        expect_key_version; /**< with FERRY_EXPECT_KEY_VERSION (0: the key is new); needs key */
    uint64_t not_before_ms; /**< deliver from this wall-clock time on; 0: at once */
    uint64_t delay_ms;      /**< deliver this long after it is stored; 0: at once */
} ferry_message_t;

/** The broker's answer to one publish. */
typedef struct ferry_confirm {
    ferry_status_t status; /**< FERRY_OK once stored durably, else the refusal */
    uint64_t seq;          /**< sequence of the message in its topic; with FERRY_ECONFLICT
                                the topic's current last sequence */
    bool duplicate;        /**< true: the id was seen within the dedupe window */
    uint64_t key_version;  /**< the message's version within its key (1 = the key's first
                                message; 0 without key); with FERRY_ECONFLICT the key's
                                current version */
} ferry_confirm_t;

/** Options for ferry_client_declare(); zero means "broker default" / "no limit".
 *  The retention limits are kept by dropping the oldest messages, or with
 *  discard_new by refusing publishes past a limit (FERRY_ELIMIT). */
typedef struct ferry_topic_config {
    uint64_t dedupe_window_ms;
    uint64_t max_msgs;   /**< most messages kept */
    uint64_t max_bytes;  /**< most bytes kept (payload, key, id, headers) */
    uint64_t max_age_ms; /**< messages older than this are removed */
    bool discard_new;    /**< at max_msgs/max_bytes refuse new ones instead of dropping old */
    bool interest;       /**< delete a message once every subscription acked it */
} ferry_topic_config_t;

/** What the broker knows about a topic or queue. */
typedef struct ferry_topic_info {
    char name[FERRY_NAME_MAX + 1];
    ferry_kind_t kind;
    uint64_t first_seq;                       /**< lowest stored sequence (0 if empty) */
    uint64_t last_seq;                        /**< highest sequence ever assigned (0 if none) */
    uint64_t messages;                        /**< messages stored */
    uint64_t bytes;                           /**< bytes stored (payload, key, id, headers) */
    uint64_t dedupe_window_ms;                /**< dedupe window of this topic */
    uint64_t created_ms;                      /**< creation time, ms since the Unix epoch */
    uint64_t max_msgs, max_bytes, max_age_ms; /**< retention limits, 0 = none */
    bool discard_new;                         /**< at a limit: refuse, not drop */
    bool interest;                            /**< interest retention */
} ferry_topic_info_t;

/** Broker-wide counters returned by ferry_client_stats(). */
typedef struct ferry_stats {
    uint64_t topics;
    uint64_t messages;
    uint64_t bytes;
    uint64_t publishes;  /**< messages stored since start */
    uint64_t duplicates; /**< publishes answered from the dedupe window since start */
    uint64_t commits;    /**< durable write transactions since start */
    uint64_t requests;   /**< requests handled since start */
    uint64_t errors;     /**< error replies sent since start */
    uint64_t uptime_ms;
    uint64_t map_size; /**< storage map size in bytes */
    uint64_t map_used; /**< bytes of the map in use */
} ferry_stats_t;

/** A message read back from a topic (ferry_client_get). Owned by the client. */
typedef struct ferry_stored_message {
    const char *topic; /**< the topic (or queue) it is stored in */
    uint64_t seq;
    uint64_t timestamp_ms;
    uint32_t delivery_count; /**< fetch: 1 on first delivery; get: 0 */
    uint64_t key_version;    /**< its version within its key (1, 2, ...); 0 without key */
    const char *key;         /**< NULL if none */
    const char *id;          /**< NULL if none */
    const ferry_header_t *headers;
    size_t header_count;
    const void *data;
    size_t len;
} ferry_stored_message_t;

/** One event for a transactional outbox (ferry_outbox.h for LMDB,
 *  ferry_sql.h for SQLite and PostgreSQL). Every pointer is borrowed for
 *  the call. */
typedef struct ferry_outbox_event {
    const char *aggregate_type; /**< becomes the topic (required) */
    const char *aggregate_id;   /**< becomes the message key (required, 1-255 bytes) */
    const char *event_type;     /**< header event_type (required) */
    const void *payload;
    size_t len;
    const ferry_header_t *headers; /**< more headers, e.g. traceparent */
    size_t header_count;
    uint64_t created_ms; /**< 0: now */
} ferry_outbox_event_t;

/** @brief The value of header @p name of @p msg (borrowed, like the message),
 *  or NULL if it has none. */
FERRY_EXPORT const char *ferry_msg_header(const ferry_stored_message_t *msg, const char *name);

typedef struct ferry_options ferry_options_t;
typedef struct ferry_client ferry_client_t;

/** @brief Options with defaults: server tcp://127.0.0.1:5555, timeout 5000 ms, window 1000.
 *  @return NULL if out of memory. Free with ferry_options_destroy(). */
FERRY_EXPORT ferry_options_t *ferry_options_new(void);
/** @brief Frees @p *opts_p (NULL accepted) and sets it to NULL. */
FERRY_EXPORT void ferry_options_destroy(ferry_options_t **opts_p);
/** @brief The broker's address: a ZeroMQ endpoint ("tcp://127.0.0.1:5555",
 *  "ipc://PATH") or HOST:PORT, meaning tcp ("localhost:5555"); replaces the
 *  server list with this one. Copied.
 *  @return FERRY_OK, FERRY_EINVAL (none of those forms), FERRY_ENOMEM */
FERRY_EXPORT ferry_status_t ferry_options_set_server(ferry_options_t *opts, const char *endpoint);
/** @brief Adds a broker to the list (at most 16). The client connects to the
 *  first that answers and, after losing a connection, tries the next in turn.
 *  @return FERRY_OK, FERRY_EINVAL, FERRY_ENOMEM */
FERRY_EXPORT ferry_status_t ferry_options_add_server(ferry_options_t *opts, const char *endpoint);
/** @brief Backoff between reconnect attempts: starts at @p initial_ms (1..),
 *  doubles up to @p max_ms (..600000), each wait randomised by +-@p jitter_pct
 *  percent (0..100). Default 100, 5000, 20. @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_reconnect(ferry_options_t *opts, int initial_ms,
                                                        int max_ms, int jitter_pct);
/** @brief true: ferry_client_new succeeds even when no broker answers yet
 *  (after at most 200 ms); the client connects in the background, blocking
 *  calls wait for it within their timeout and async publishes are buffered in
 *  the window. Default false: ferry_client_new fails with FERRY_ECONNECT.
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_retry_connect(ferry_options_t *opts, bool retry);
/** @brief When the publish window is full: true (default) waits up to the
 *  timeout for a slot; false returns FERRY_EWOULD_BLOCK at once.
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_block_on_full(ferry_options_t *opts, bool block);
/** @brief Ordered publishing (default false). Async publishes are pipelined:
 *  when one is refused (a queue at its limit, a full disk, a deleted topic)
 *  a later one may still be stored, ahead of it. With @p ordered, once a
 *  publish is refused the broker refuses every later publish of this client
 *  (FERRY_EFENCED, nothing stored) until it calls
 *  ferry_client_publish_resume(); send the refused message and those after
 *  it again from there, and they keep their order. ferry-relay and the
 *  in-process relay publish this way. docs/protocol.md.
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_ordered(ferry_options_t *opts, bool ordered);
/** @brief Ordered publishing: starts a new run of publishes that earlier
 *  refusals do not fence. Call it when the publishes in flight are all
 *  answered, before sending the refused message again.
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_client_publish_resume(ferry_client_t *self);

/** Connection states reported to a ferry_state_fn. */
typedef enum ferry_conn_state {
    FERRY_CONN_CONNECTED = 1,   /**< a broker answered hello (first time, or again) */
    FERRY_CONN_DISCONNECTED = 2 /**< the connection was lost; reconnecting */
} ferry_conn_state_t;
/** Called from inside calls on the client when its connection state changes;
 *  @p server is the endpoint, @p reason a sentence (lost connections). */
typedef void (*ferry_state_fn)(ferry_client_t *client, ferry_conn_state_t state, const char *server,
                               const char *reason, void *user);
/** @brief Connection state callback (NULL: none). @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_state_cb(ferry_options_t *opts, ferry_state_fn fn,
                                                       void *user);
/** Log levels of a ferry_log_fn. */
typedef enum ferry_log_level {
    FERRY_LOG_ERROR = 0, /**< something stopped: a relay that gives up, ... */
    FERRY_LOG_WARN = 1,
    FERRY_LOG_INFO = 2
} ferry_log_level_t;
/** Receives the library's log lines (NUL-terminated, no newline). Every log
 *  callback of libferry (client options, the in-process relay, sagas) has
 *  this type: the level, the line, then the callback's own user pointer. */
typedef void (*ferry_log_fn)(ferry_log_level_t level, const char *line, void *user);
/** @brief Log callback (NULL, the default: the library logs nothing).
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_log_cb(ferry_options_t *opts, ferry_log_fn fn,
                                                     void *user);
/** @brief Writes one line to @p client's log callback (nothing without one):
 *  for code built on libferry (the saga participant, a framework) to speak
 *  through the application's log. printf-style; a handler may call it. */
FERRY_EXPORT void ferry_client_log(ferry_client_t *client, ferry_log_level_t level, const char *fmt,
                                   ...) __attribute__((format(printf, 3, 4)));
/** @brief Logs in as @p user with @p password (copied) on a broker started
 *  with --users: ferry_client_new derives this client's CURVE key pair from
 *  them and the server's key (ferry_password_key), so the password never
 *  leaves the process and never travels, not even encrypted. Needs the
 *  server's key (ferry_options_set_server_key): without it ferry_client_new
 *  fails with FERRY_EINVAL. ferry_options_new() reads $FERRY_USER and
 *  $FERRY_PASSWORD the same way. Deriving takes about 0.1 s and 64 MiB
 *  (Argon2id, libsodium's interactive limits), once per client.
 *  @return FERRY_OK, FERRY_EINVAL, FERRY_ENOMEM */
FERRY_EXPORT ferry_status_t ferry_options_set_credentials(ferry_options_t *opts, const char *user,
                                                          const char *password);
/** @brief The CURVE public key (z85, 40 characters and a NUL) that @p user
 *  logging in with @p password to the broker whose public key is
 *  @p server_key (z85 or "@FILE") gets: what the users file holds for a
 *  password user (`ferry passwd`). The secret half is derived with Argon2id
 *  (libsodium crypto_pwhash) from the password, salted with the user name
 *  and the server's key. @return FERRY_OK, FERRY_EINVAL, FERRY_EIO, FERRY_ENOMEM */
FERRY_EXPORT ferry_status_t ferry_password_key(const char *user, const char *password,
                                               const char *server_key, char public_key[41]);
/** @brief Encrypts the connection with ZeroMQ CURVE and checks the broker's
 *  identity: @p key is the broker's public key (40 z85 characters, as ferryd
 *  logs it at start and `ferry keygen` writes it) or "@FILE" naming a file
 *  that holds it. Without client keys (ferry_options_set_client_keys) each
 *  client makes a pair of its own. ferry_options_new() reads
 *  $FERRY_SERVER_KEY the same way (ferry_client_new then fails with
 *  FERRY_EINVAL if it is not a key). @return FERRY_OK, FERRY_EINVAL, FERRY_EIO */
FERRY_EXPORT ferry_status_t ferry_options_set_server_key(ferry_options_t *opts, const char *key);
/** @brief Makes a new CURVE key pair (z85, 40 characters and a NUL each),
 *  for ferryd (--curve-secret) or a client. @return FERRY_OK, or
 *  FERRY_EINVAL when libzmq was built without CURVE. */
FERRY_EXPORT ferry_status_t ferry_curve_keypair(char public_key[41], char secret_key[41]);
/** @brief This client's CURVE key pair (z85; @p secret_key may be "@FILE" or
 *  a file path, a file only its owner may read). Copied.
 *  @return FERRY_OK, FERRY_EINVAL, FERRY_EIO */
FERRY_EXPORT ferry_status_t ferry_options_set_client_keys(ferry_options_t *opts,
                                                          const char *public_key,
                                                          const char *secret_key);
/** @brief This client's CURVE key pair from its secret half (z85, or "@FILE"
 *  / a path of a file only its owner may read, as `ferry keygen` writes
 *  it); the public half is computed. ferry_options_new() reads
 *  $FERRY_CLIENT_KEY the same way. @return FERRY_OK, FERRY_EINVAL, FERRY_EIO */
FERRY_EXPORT ferry_status_t ferry_options_set_client_key(ferry_options_t *opts,
                                                         const char *secret_key);
/** @brief Client name sent in hello (for the broker's logs). Copied.
 *  @return FERRY_OK, FERRY_EINVAL, FERRY_ENOMEM */
FERRY_EXPORT ferry_status_t ferry_options_set_name(ferry_options_t *opts, const char *name);
/** @brief Timeout of each blocking call, in ms (> 0). @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_timeout_ms(ferry_options_t *opts, int timeout_ms);
/** @brief How often a client with push subscriptions pings the broker when it
 *  has nothing else to send, in ms (100..5000, default 5000). The broker
 *  drops this client's push consumers when it is silent for three intervals
 *  (at least 1 s; 15 s with the default), and what they held is delivered
 *  again: a shorter interval brings back what a crashed consumer held sooner.
 *  An application that does not call into its client that long finds its
 *  push subscriptions made again. The client gives up (FERRY_ETIMEOUT from
 *  the call it is in) when two intervals pass without an answer to a ping.
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_heartbeat_ms(ferry_options_t *opts, int heartbeat_ms);
/** @brief Most unconfirmed async publishes in flight (1..65536). @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_options_set_window(ferry_options_t *opts, size_t window);

/**
 * @brief Connects to the broker and says hello (protocol version check).
 * @param[in] opts copied; NULL means defaults.
 * @param[out] out the client; free with ferry_client_destroy().
 * @return FERRY_OK, FERRY_EINVAL, FERRY_ENOMEM, FERRY_ECONNECT, FERRY_ETIMEOUT,
 *         FERRY_EVERSION
 */
FERRY_EXPORT ferry_status_t ferry_client_new(const ferry_options_t *opts, ferry_client_t **out);
/**
 * @brief Closes the connection. Async publishes still unconfirmed get their
 * callback with FERRY_ECLOSED. Frees @p *self_p (NULL accepted), sets it NULL.
 */
FERRY_EXPORT void ferry_client_destroy(ferry_client_t **self_p);
/** @brief Text of the last failure on this client (borrowed, valid until the next call). */
FERRY_EXPORT const char *ferry_client_last_error(const ferry_client_t *self);
/** @brief True while connected to a broker (false while reconnecting). */
FERRY_EXPORT bool ferry_client_connected(const ferry_client_t *self);
/** @brief Connections lost since the client was created. */
FERRY_EXPORT unsigned ferry_client_reconnects(const ferry_client_t *self);
/** @brief Replies and deliveries this client received but could not decode
 *  (each logged at warn with its size and reason; the blocking call waiting
 *  then fails with FERRY_EPROTO, a delivery comes again after its ack wait).
 *  0 unless a broker or the network misbehaves. */
FERRY_EXPORT uint64_t ferry_client_bad_replies(const ferry_client_t *self);

/**
 * @brief For embedding in an event loop (poll, epoll, libuv): a file
 * descriptor that becomes readable when the client may have something to do.
 * It is edge-triggered (ZMQ_FD): when it fires, or after your loop's timeout,
 * call ferry_client_poll(client, 0), which does everything waiting. Call it
 * at least every ferry_client_next_timeout_ms() ms as well (heartbeats,
 * reconnects, request timeouts). The descriptor changes after a reconnect:
 * ask again after each ferry_client_poll().
 * @return FERRY_OK, FERRY_ECLOSED (no connection right now: use the timeout), FERRY_EINVAL
 */
FERRY_EXPORT ferry_status_t ferry_client_fd(ferry_client_t *self, int *fd);
/** @brief How long an event loop may wait before calling ferry_client_poll(). */
FERRY_EXPORT int ferry_client_next_timeout_ms(const ferry_client_t *self);

/** @brief Round trip to the broker. @return FERRY_OK, FERRY_ETIMEOUT, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_client_ping(ferry_client_t *self);

/**
 * @brief Creates a topic or queue, or checks that it exists with the same kind.
 * @param[in] config NULL for broker defaults.
 * @param[out] info may be NULL; filled with the topic's state.
 * @param[out] created may be NULL; true if this call created it.
 * @return FERRY_OK, FERRY_EEXISTS (other kind), FERRY_EINVALID_NAME, FERRY_ETIMEOUT, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_declare(ferry_client_t *self, ferry_kind_t kind,
                                                 const char *name,
                                                 const ferry_topic_config_t *config,
                                                 ferry_topic_info_t *info, bool *created);
/** @brief Deletes a topic or queue and all its messages.
 *  @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EINVALID_NAME, FERRY_ETIMEOUT, ... */
FERRY_EXPORT ferry_status_t ferry_client_delete(ferry_client_t *self, const char *name);
/**
 * @brief Removes the oldest messages of @p name: all but the newest @p keep
 * (0: every one), or (with @p below_seq, @p keep 0) those below that
 * sequence. Subscriptions skip what is gone, as with retention. Works in
 * slices (one request each, durable each) until done.
 * @param[out] removed may be NULL; how many went.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EINVAL (both @p keep and
 *         @p below_seq), FERRY_EFORBIDDEN (admin needed), ...
 */
FERRY_EXPORT ferry_status_t ferry_client_purge(ferry_client_t *self, const char *name,
                                               uint64_t keep, uint64_t below_seq,
                                               uint64_t *removed);
/** Which settings ferry_client_edit() changes (ferry_topic_edit_t.set). */
#define FERRY_EDIT_DEDUPE_WINDOW 0x1u
#define FERRY_EDIT_MAX_MSGS      0x2u
#define FERRY_EDIT_MAX_BYTES     0x4u
#define FERRY_EDIT_MAX_AGE       0x8u
#define FERRY_EDIT_DISCARD       0x10u

/** New settings of a topic; only those named in `set` change. Its kind and
 *  interest retention cannot (declare another topic). */
typedef struct ferry_topic_edit {
    unsigned set;                             /**< FERRY_EDIT_* bits */
    uint64_t dedupe_window_ms;                /**< 0: the broker's default */
    uint64_t max_msgs, max_bytes, max_age_ms; /**< 0: no limit */
    bool discard_new;
} ferry_topic_edit_t;

/**
 * @brief Changes settings of @p name: lower limits with "discard old" remove
 * the oldest messages over them (in slices, each durable, until none is
 * over); with "discard new" the messages stay and publishes are refused
 * until the topic is under its limits; the age limit applies at the next
 * sweep. @param[out] info may be NULL; the topic as it now stands.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EINVAL (nothing to change),
 *         FERRY_EFORBIDDEN (admin needed), ...
 */
FERRY_EXPORT ferry_status_t ferry_client_edit(ferry_client_t *self, const char *name,
                                              const ferry_topic_edit_t *edit,
                                              ferry_topic_info_t *info);
/** @brief State of one topic or queue. @return FERRY_OK, FERRY_ENOTFOUND, ... */
FERRY_EXPORT ferry_status_t ferry_client_info(ferry_client_t *self, const char *name,
                                              ferry_topic_info_t *info);
/**
 * @brief The topics and queues that exist, in name order: up to @p max
 * (1..1000) of those named after @p after (NULL or "": from the first) into
 * @p out. With users on the broker, only those the user may publish, consume
 * or administer.
 * @param[out] n how many; @param[out] more others follow: ask again with
 * the last name as @p after.
 * @return FERRY_OK, FERRY_EINVAL, FERRY_EINVALID_NAME, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_topics(ferry_client_t *self, const char *after,
                                                ferry_topic_info_t *out, size_t max, size_t *n,
                                                bool *more);
/** @brief Broker-wide counters. @return FERRY_OK, FERRY_ETIMEOUT, ... */
FERRY_EXPORT ferry_status_t ferry_client_stats(ferry_client_t *self, ferry_stats_t *stats);

/** A voter of a cluster as its leader sees it (docs/cluster.md). */
typedef struct ferry_cluster_node {
    uint64_t id;          /**< its --cluster-id */
    char address[64];     /**< where the nodes reach it (--peers) */
    uint64_t match_index; /**< the last log entry it has */
    uint64_t lag;         /**< entries of the leader's log it does not have yet */
    bool up;              /**< the leader heard from it within an election timeout */
    bool voter;           /**< a voter; false: a node being added, catching up before it votes */
} ferry_cluster_node_t;

/** Where a cluster stands (ferry_client_cluster). */
typedef struct ferry_cluster {
    uint64_t leader_id;     /**< the node that answered, which leads; 0: a single ferryd */
    uint64_t term;          /**< the Raft term */
    uint64_t commit_index;  /**< the last entry on a quorum's disks */
    uint64_t applied_index; /**< the last entry applied to the leader's store */
    uint64_t last_index;    /**< the last entry of the leader's log */
    uint64_t elections;     /**< terms the leader saw begin since it started */
    uint64_t snapshots;     /**< snapshots the leader took since it started */
    size_t nnodes;          /**< the voters, the leader among them */
    ferry_cluster_node_t nodes[9];
} ferry_cluster_t;

/** @brief Where the cluster stands, from its leader (a client is always
 *  connected to the leader: the other nodes send it there). Against a single
 *  ferryd, leader_id is 0 and there are no nodes.
 *  @return FERRY_OK, FERRY_ETIMEOUT, ... */
FERRY_EXPORT ferry_status_t ferry_client_cluster(ferry_client_t *self, ferry_cluster_t *out);
/** @brief Adds node @p id, listening for its peers at @p address (HOST:PORT),
 *  to the cluster: it was started with `ferryd --cluster-id ID --join
 *  HOST:PORT`. It catches up as a spare, then becomes a voter (watch
 *  ferry_client_cluster: voter). Needs admin on `_cluster` with users.
 *  @return FERRY_OK once the leader committed the change; FERRY_EINVAL (an id
 *  or address in use, another change under way, a single ferryd: see
 *  ferry_client_last_error), FERRY_EFORBIDDEN, ... */
FERRY_EXPORT ferry_status_t ferry_client_cluster_add(ferry_client_t *self, uint64_t id,
                                                     const char *address);
/** @brief Removes node @p id from the cluster (not the leader itself: stop it
 *  first, then remove it through the next leader). Stop the node afterwards.
 *  @return as ferry_client_cluster_add. */
FERRY_EXPORT ferry_status_t ferry_client_cluster_remove(ferry_client_t *self, uint64_t id);

/** @brief The broker copies its store into the new directory @p dir (an
 *  absolute path on the broker's host; made 0700, it must not exist):
 *  everything confirmed before the call, consistent, which `ferryd --data
 *  DIR` opens as it was. The broker pauses while it copies (about a second
 *  per GiB on SSD): give the client a timeout to match. Needs admin on
 *  `_backup` with users. docs/operations.md, Backups.
 *  @return FERRY_OK once the copy is on disk; FERRY_EEXISTS (@p dir exists),
 *  FERRY_EIO (see ferry_client_last_error), FERRY_EFORBIDDEN, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_client_backup(ferry_client_t *self, const char *dir);

/**
 * @brief Publishes one message and waits until the broker stored it durably.
 * @param[out] confirm may be NULL; sequence and duplicate flag.
 * @return FERRY_OK, or the broker's refusal (FERRY_ENOTFOUND, FERRY_ETOO_LARGE,
 *         FERRY_ESTORAGE_FULL, ...), FERRY_ETIMEOUT, FERRY_EINVAL
 */
FERRY_EXPORT ferry_status_t ferry_client_publish(ferry_client_t *self, const char *topic,
                                                 const ferry_message_t *msg,
                                                 ferry_confirm_t *confirm);

/** Most messages in one ferry_client_publish_batch() call. */
#define FERRY_BATCH_MAX 1000

/**
 * @brief Publishes @p n messages (1..FERRY_BATCH_MAX) to one topic in one request
 * and waits until the broker stored them durably. The batch is atomic: every
 * message is stored (or answered as a duplicate of its id) in order, or none is.
 * @param[out] confirms NULL, or an array of @p n entries receiving each message's
 *             sequence and duplicate flag.
 * @return FERRY_OK, or the refusal of the whole batch (FERRY_ENOTFOUND,
 *         FERRY_ETOO_LARGE, FERRY_ESTORAGE_FULL, ...), FERRY_ETIMEOUT, FERRY_EINVAL
 */
FERRY_EXPORT ferry_status_t ferry_client_publish_batch(ferry_client_t *self, const char *topic,
                                                       const ferry_message_t *msgs, size_t n,
                                                       ferry_confirm_t *confirms);

/** Called once per async publish with its outcome; `user` is the pointer given to publish. */
typedef void (*ferry_confirm_fn)(ferry_client_t *client, const ferry_confirm_t *confirm,
                                 void *user);

/**
 * @brief Sends a publish without waiting. When the window of unconfirmed
 * publishes is full, first processes confirms until a slot frees, up to the
 * client timeout. Confirms are delivered to @p cb from inside calls on this
 * client (publish_async, flush, poll and the blocking calls), in publish order.
 * A callback must not call functions of the same client.
 * @return FERRY_OK (sent), FERRY_ETIMEOUT (window stayed full), FERRY_EINVAL, FERRY_ENOMEM
 */
FERRY_EXPORT ferry_status_t ferry_client_publish_async(ferry_client_t *self, const char *topic,
                                                       const ferry_message_t *msg,
                                                       ferry_confirm_fn cb, void *user);
/** @brief Processes replies for up to @p timeout_ms (0: only what is waiting).
 *  @return FERRY_OK, FERRY_EINVAL */
FERRY_EXPORT ferry_status_t ferry_client_poll(ferry_client_t *self, int timeout_ms);
/** @brief Waits until every async publish is confirmed, up to @p timeout_ms.
 *  @return FERRY_OK, FERRY_ETIMEOUT */
FERRY_EXPORT ferry_status_t ferry_client_flush(ferry_client_t *self, int timeout_ms);
/** @brief Number of async publishes sent and not yet confirmed. */
FERRY_EXPORT size_t ferry_client_in_flight(const ferry_client_t *self);

/**
 * @brief Reads up to @p limit stored messages of @p topic from sequence @p from_seq on.
 * @param[out] msgs an array owned by the client, valid until the next call on it.
 * @param[out] count number of messages in @p msgs (0 at the end of the topic).
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ETIMEOUT, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_get(ferry_client_t *self, const char *topic,
                                             uint64_t from_seq, uint32_t limit,
                                             const ferry_stored_message_t **msgs, size_t *count);

/* ---- consuming: durable subscriptions, fetch, ack ------------------------
 *
 * A subscription is a durable cursor on a topic; each subscription gets every
 * message (fan-out), and consumers fetching from the same subscription share
 * its messages (each goes to one of them). A queue has one subscription,
 * named "" (or NULL). A fetched message stays pending until acked; if it is
 * not acked within the ack wait, or is nacked, a later fetch delivers it again
 * with a higher delivery count; after max_deliver deliveries it moves to the
 * topic `<topic>.dlq` with headers ferry-dlq-topic, ferry-dlq-seq,
 * ferry-dlq-deliveries and ferry-dlq-reason.
 */

/** Options of a new subscription; zero fields mean broker defaults. */
typedef struct ferry_sub_config {
    const char *start;      /**< "first" (default) or "new"; ignored if start_seq != 0 */
    uint64_t start_seq;     /**< start at this sequence */
    uint64_t start_time_ms; /**< start at the first message stored at or after this time
                                 (ms since the Unix epoch); wins over the others */
    uint64_t ack_wait_ms;   /**< default 30000 */
    uint32_t max_deliver;   /**< default 5 */
    const char *filter;     /**< NULL, or a subject pattern over message keys: dot-separated
                                 tokens, "*" one token, ">" (last) the rest. Messages whose
                                 key does not match are skipped (acked for this subscription) */
} ferry_sub_config_t;

/** Where a subscription stands (ferry_client_sub_info). */
typedef struct ferry_sub_info {
    uint64_t cursor;    /**< next sequence to deliver for the first time */
    uint64_t ack_floor; /**< every sequence up to here is acked */
    uint64_t last_seq;  /**< the topic's last sequence: last_seq - cursor + 1 wait */
    uint64_t ack_wait_ms;
    uint32_t max_deliver;
} ferry_sub_info_t;

/** @brief Where the subscription stands. @return FERRY_OK, FERRY_ENOTFOUND, ... */
FERRY_EXPORT ferry_status_t ferry_client_sub_info(ferry_client_t *self, const char *topic,
                                                  const char *sub, ferry_sub_info_t *info);

/**
 * @brief Deletes the named subscription @p sub of @p topic with its acks and
 * pending messages (an abandoned one on an interest topic would keep every
 * message); its push consumers stop getting messages. Its owner or a user
 * with admin on the topic.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EINVALID_NAME (a queue's own: it
 *         goes with the queue), FERRY_EFORBIDDEN, ...
 */
/**
 * @brief Moves subscription @p sub of @p topic: the next message it delivers
 * is @p seq (clamped to the topic's first and last + 1), or, with @p time_ms
 * above 0, the first stored at or after that time (ms since the epoch).
 * Everything before counts as acked, everything from there on comes again
 * (acked or not); deliveries in flight are forgotten (their acks are
 * answered FERRY_ESEQ). Its owner or admin on the topic (users).
 * @param[out] info may be NULL; where it stands now.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_EFIELD (a queue), FERRY_EFORBIDDEN, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_sub_seek(ferry_client_t *self, const char *topic,
                                                  const char *sub, uint64_t seq, uint64_t time_ms,
                                                  ferry_sub_info_t *info);
FERRY_EXPORT ferry_status_t ferry_client_sub_delete(ferry_client_t *self, const char *topic,
                                                    const char *sub);

/** A subscription as ferry_client_subs() lists it. */
typedef struct ferry_sub_listing {
    char name[FERRY_NAME_MAX + 1];   /**< "" for a queue's own */
    char filter[FERRY_NAME_MAX + 1]; /**< subject pattern over keys; "": every key */
    char owner[FERRY_NAME_MAX + 1];  /**< the user who declared it (users); "" */
    uint64_t cursor;                 /**< next sequence to deliver for the first time */
    uint64_t ack_floor;              /**< every sequence up to here is acked */
    uint64_t last_seq;               /**< the topic's: last_seq - cursor + 1 wait */
    uint64_t ack_wait_ms, created_ms;
    uint32_t max_deliver;
    uint32_t consumers; /**< push consumers attached to it now */
} ferry_sub_listing_t;

/**
 * @brief The subscriptions of @p topic in name order: up to @p max (1..1000)
 * of those named after @p after (NULL or "": from the first) into @p out.
 * @param[out] n how many; @param[out] more others follow.
 * @return FERRY_OK, FERRY_ENOTFOUND (no such topic), FERRY_EINVAL,
 *         FERRY_EFORBIDDEN (the user may neither consume nor administer it), ...
 */
FERRY_EXPORT ferry_status_t ferry_client_subs(ferry_client_t *self, const char *topic,
                                              const char *after, ferry_sub_listing_t *out,
                                              size_t max, size_t *n, bool *more);

/**
 * @brief Creates the subscription @p sub on @p topic, or finds it (its options
 * then stay as they were).
 * @param[out] created may be NULL.
 * @return FERRY_OK, FERRY_ENOTFOUND (topic), FERRY_EFIELD (a queue's is "",
 *         a topic's needs a name), FERRY_EINVALID_NAME, FERRY_ETIMEOUT, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_sub_declare(ferry_client_t *self, const char *topic,
                                                     const char *sub,
                                                     const ferry_sub_config_t *config,
                                                     bool *created);
/** Most messages in one fetch, and sequences in one ack. */
#define FERRY_FETCH_MAX 10000
/** Most bytes of messages in one fetch reply (each message counts 64 bytes
 *  plus its key, id, headers and payload); the broker cuts a reply there. */
#define FERRY_FETCH_BYTES_MAX (512u << 10)

/**
 * @brief Takes up to @p max (1..FERRY_FETCH_MAX) messages of the subscription,
 * up to FERRY_FETCH_BYTES_MAX bytes of them: those due for redelivery first,
 * then new ones. When none is ready, waits up to @p wait_ms (0..300000) for
 * one, and returns with 0 messages if none came. A reply cut by bytes holds
 * fewer than @p max while more are ready; the next fetch gets them.
 * @param[out] msgs an array owned by the client, valid until the next call on it.
 * @return FERRY_OK, FERRY_ENOTFOUND, FERRY_ETIMEOUT, FERRY_EINVAL, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_fetch(ferry_client_t *self, const char *topic,
                                               const char *sub, uint32_t max, int wait_ms,
                                               const ferry_stored_message_t **msgs, size_t *count);

/** What one fetch may take (ferry_client_fetch_with). */
typedef struct ferry_fetch_opts {
    uint32_t max;       /**< most messages, 1..FERRY_FETCH_MAX */
    uint32_t max_bytes; /**< most bytes (as FERRY_FETCH_BYTES_MAX counts them), at most
                             FERRY_FETCH_BYTES_MAX; 0: that. The first message always comes,
                             whatever its size */
    int wait_ms;        /**< 0..300000: how long to wait when nothing is ready */
} ferry_fetch_opts_t;

/**
 * @brief ferry_client_fetch with a bound in bytes as well as in messages: a
 * consumer that holds its batch in memory (or hands it to a worker pool)
 * says how much it takes at once.
 * @return as ferry_client_fetch; FERRY_EINVAL for a bad option.
 */
FERRY_EXPORT ferry_status_t ferry_client_fetch_with(ferry_client_t *self, const char *topic,
                                                    const char *sub, const ferry_fetch_opts_t *opts,
                                                    const ferry_stored_message_t **msgs,
                                                    size_t *count);
/**
 * @brief Acks @p n (1..FERRY_FETCH_MAX) fetched messages; returns once the acks
 * are on disk.
 * On a queue, acked messages are deleted. Acking twice is fine.
 * @return FERRY_OK, FERRY_ESEQ (a sequence never delivered), FERRY_ENOTFOUND, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_ack(ferry_client_t *self, const char *topic,
                                             const char *sub, const uint64_t *seqs, size_t n);
/**
 * @brief Acks @p n (1..FERRY_FETCH_MAX) fetched messages without waiting: the acks go
 * out at once and take a place in the client's window (shared with async
 * publishes, sent again on a new connection); @p cb (may be NULL) gets
 * their status once they are on disk (confirm.seq is 0), from inside a
 * later call on this client. ferry_client_flush() waits for them. A
 * consumer that fetches the next batch while the last one's acks are in
 * flight is as fast as a push consumer.
 * @return FERRY_OK (sent or waiting for a connection), FERRY_EINVAL,
 *         FERRY_EWOULD_BLOCK / FERRY_ETIMEOUT (the window stayed full), ...
 */
FERRY_EXPORT ferry_status_t ferry_client_ack_async(ferry_client_t *self, const char *topic,
                                                   const char *sub, const uint64_t *seqs, size_t n,
                                                   ferry_confirm_fn cb, void *user);
/**
 * @brief Gives a fetched message back: it is delivered again after @p delay_ms.
 * @return FERRY_OK, FERRY_ESEQ, FERRY_ENOTFOUND, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_nack(ferry_client_t *self, const char *topic,
                                              const char *sub, uint64_t seq, uint64_t delay_ms);

/**
 * @brief Gives up on a fetched message: it moves to `<topic>.dlq` now, with
 * ferry-dlq-reason "terminated" and @p error (may be NULL, at most 1024 bytes)
 * in ferry-dlq-error, and is acked.
 * @return FERRY_OK, FERRY_ESEQ, FERRY_ENOTFOUND, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_term(ferry_client_t *self, const char *topic,
                                              const char *sub, uint64_t seq, const char *error);
/**
 * @brief Still working on a fetched message: its ack wait starts again.
 * @return FERRY_OK, FERRY_ESEQ, FERRY_ENOTFOUND, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_progress(ferry_client_t *self, const char *topic,
                                                  const char *sub, uint64_t seq);

/* ---- push subscriptions ---------------------------------------------------
 *
 * ferry_client_subscribe() asks the broker to push the subscription's
 * messages (due redeliveries first) while the client has credit: at most
 * @p prefetch messages handed out and not yet processed. The handler runs
 * inside calls on this client (ferry_client_poll and the others) and says what
 * to do with each message; the client sends the acks and tops up the credit
 * in batches, without waiting. A handler must not call functions of its client.
 */

/** What a handler wants done with a message. */
typedef enum ferry_msg_action {
    FERRY_MSG_ACK = 0,  /**< done: ack it */
    FERRY_MSG_NACK = 1, /**< failed: deliver it again (counts toward max_deliver) */
    FERRY_MSG_KEEP = 2, /**< leave it pending: the application acks it later */
    /** failed for now (the handler's own store is full, something it needs
     *  is down): deliver it again later, counting toward max_deliver - after
     *  FERRY_NACK_LATER_MS on its first delivery, doubling with each
     *  delivery up to 32 times that - instead of at once */
    FERRY_MSG_NACK_LATER = 3
} ferry_msg_action_t;

/** How long a message given back with FERRY_MSG_NACK_LATER first waits. */
#define FERRY_NACK_LATER_MS 1000

typedef ferry_msg_action_t (*ferry_msg_fn)(ferry_client_t *client,
                                           const ferry_stored_message_t *msg, void *user);

/**
 * @brief Starts push delivery of @p sub of @p topic. On a queue @p sub is NULL or "".
 * On a topic, NULL or "" makes an ephemeral consumer: plain live pub/sub of
 * what is published from now on, no acks, nothing kept for it (delivery_count 0).
 * @param prefetch 1..65536 messages in flight to this consumer.
 * @param[out] consumer may be NULL; the id for ferry_client_unsubscribe(), valid
 *             across reconnects (the client makes the subscription again).
 * @return FERRY_OK, FERRY_ENOTFOUND (topic or subscription), FERRY_ETOO_MANY, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_subscribe(ferry_client_t *self, const char *topic,
                                                   const char *sub, uint32_t prefetch,
                                                   ferry_msg_fn fn, void *user, uint64_t *consumer);
/** Called once the handler has seen every message of one delivery (up to
 *  the prefetch), before their acks go: a consumer that works in
 *  transactions commits the batch here, one commit for many messages.
 *  Return FERRY_MSG_ACK to let the acks go; FERRY_MSG_NACK or
 *  FERRY_MSG_NACK_LATER gives back every message the handler said ACK to
 *  (as if it had said that). Must not call functions of its client. */
typedef ferry_msg_action_t (*ferry_batch_end_fn)(ferry_client_t *client, void *user);

/**
 * @brief ferry_client_subscribe() with @p end called after each delivery's
 * messages (@p user for both).
 * @return as ferry_client_subscribe()
 */
FERRY_EXPORT ferry_status_t ferry_client_subscribe_batched(ferry_client_t *self, const char *topic,
                                                           const char *sub, uint32_t prefetch,
                                                           ferry_msg_fn fn, ferry_batch_end_fn end,
                                                           void *user, uint64_t *consumer);

/** @brief Stops a push consumer; messages it kept unacked come back after their ack wait.
 *  @return FERRY_OK, FERRY_ENOTFOUND, ... */
FERRY_EXPORT ferry_status_t ferry_client_unsubscribe(ferry_client_t *self, uint64_t consumer);

/* ---- event sourcing: reading one key --------------------------------------
 *
 * Every message with a key gets the next version of its key (1, 2, ...),
 * returned in its confirm; the broker indexes (topic, key, version), so the
 * history of one aggregate is read without scanning the topic.
 */

typedef struct ferry_key_iter ferry_key_iter_t;

/**
 * @brief Starts reading the messages of @p key in @p topic, in version order,
 * from version @p from_version (0 or 1: from the first) on. The first page is
 * read at once (so a missing topic fails here); later pages as the iterator
 * reaches them.
 * @param page_size messages per round trip, 0 for 256, at most 1000.
 * @param[out] out the iterator; free with ferry_key_iter_destroy(). It uses
 *             @p self, which must outlive it.
 * @return FERRY_OK, FERRY_ENOTFOUND (topic), FERRY_EINVAL, FERRY_ETIMEOUT, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_read_key(ferry_client_t *self, const char *topic,
                                                  const char *key, uint64_t from_version,
                                                  uint32_t page_size, ferry_key_iter_t **out);
/**
 * @brief The next message of the key: *msg points to it (owned by the
 * iterator, valid until the next call on it), or is NULL at the end.
 * @return FERRY_OK, or the failure of reading the next page (the iterator can
 *         be asked again).
 */
FERRY_EXPORT ferry_status_t ferry_key_iter_next(ferry_key_iter_t *it,
                                                const ferry_stored_message_t **msg);
/** @brief Frees @p *it_p (NULL accepted) and sets it to NULL. */
FERRY_EXPORT void ferry_key_iter_destroy(ferry_key_iter_t **it_p);

/* ---- request/reply ----------------------------------------------------------
 *
 * A request is a message with two headers: `reply_to` (the topic where the
 * reply goes) and `correlation_id`. libferry keeps one temporary inbox topic
 * per client, `_inbox.<random>` (messages kept 60 s, deleted when the client is
 * destroyed), with a live subscription on it, and matches replies to requests
 * by correlation id. Requests and replies are stored durably like any message.
 */

/** Called once per request: FERRY_OK with the reply (valid during the call
 *  only), FERRY_ENOREPLY when the timeout passed, or the publish's refusal. */
typedef void (*ferry_reply_fn)(ferry_client_t *client, ferry_status_t status,
                               const ferry_stored_message_t *reply, void *user);

/**
 * @brief Publishes a request and returns at once; @p cb runs with the reply
 * from inside calls on this client (ferry_client_poll and the others). A
 * timeout is reported from ferry_client_poll, ferry_client_flush or
 * ferry_client_request. The message's own headers travel along; `reply_to`
 * and `correlation_id` are set by the library.
 * @return FERRY_OK (sent), FERRY_EINVAL, FERRY_EINVALID_NAME, FERRY_ETIMEOUT, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_request_async(ferry_client_t *self, const char *topic,
                                                       const ferry_message_t *msg, int timeout_ms,
                                                       ferry_reply_fn cb, void *user);
/**
 * @brief Publishes a request and waits up to @p timeout_ms for its reply.
 * @param[out] reply owned by the client, valid until the next request.
 * @return FERRY_OK, FERRY_ENOREPLY (no reply in time: no responder?),
 *         FERRY_ENOTFOUND (no such topic), FERRY_EINVAL, ...
 */
FERRY_EXPORT ferry_status_t ferry_client_request(ferry_client_t *self, const char *topic,
                                                 const ferry_message_t *msg, int timeout_ms,
                                                 const ferry_stored_message_t **reply);

/** A responder: fill @p reply (data, len, headers; borrowed until the handler
 *  returns) and return FERRY_MSG_ACK to send it and ack the request, or NACK /
 *  KEEP as for a message handler (no reply is sent then). A request without
 *  `reply_to` is acked with no reply. Must not call functions of its client. */
typedef ferry_msg_action_t (*ferry_serve_fn)(ferry_client_t *client,
                                             const ferry_stored_message_t *request,
                                             ferry_message_t *reply, void *user);

/**
 * @brief Serves requests of @p topic (through subscription @p sub; a queue's
 * own with NULL): a push subscription whose handler's replies are published
 * to each request's `reply_to`, with its `correlation_id`, before the request
 * is acked. Several responders on one subscription share the requests.
 * @return as ferry_client_subscribe()
 */
FERRY_EXPORT ferry_status_t ferry_client_serve(ferry_client_t *self, const char *topic,
                                               const char *sub, uint32_t prefetch,
                                               ferry_serve_fn fn, void *user, uint64_t *consumer);

/**
 * @brief ferry_client_serve() for a responder that commits per batch: the
 * replies of one delivery's requests are held (copied) until @p end
 * returns FERRY_MSG_ACK - the responder's transaction of the batch is
 * committed - and only then published, before the requests are acked. When
 * @p end says NACK or NACK_LATER the replies are dropped and the requests
 * given back; a reply that cannot be published gives back the whole batch
 * (answer them again from what was committed).
 * @return as ferry_client_subscribe()
 */
FERRY_EXPORT ferry_status_t ferry_client_serve_batched(ferry_client_t *self, const char *topic,
                                                       const char *sub, uint32_t prefetch,
                                                       ferry_serve_fn fn, ferry_batch_end_fn end,
                                                       void *user, uint64_t *consumer);

#ifdef __cplusplus
}
#endif
#endif /* FERRY_H */
