/* SPDX-License-Identifier: MIT */
/*
 * client_int.h - what libferry's files share beyond the public headers: the
 * client and options structs, and the calls by which the connection
 * (connection.c), the publish window (window.c), pull consumption (pull.c),
 * push consumption (push.c), topic administration (topics.c), the key
 * reader (keyread.c) and request/reply (rpc.c) reach each other. Not
 * installed. Everything here runs on the client's one thread.
 */
#ifndef FY_CLIENT_INT_H
#define FY_CLIENT_INT_H

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "conn.h"
#include "envelope.h"
#include "ferry.h"

#define FY_CLI_REPLY_FRAMES_MAX (FY_BATCH_MAX + 1)
#define FY_CLI_SUBS_MAX         64   /* push subscriptions per client */
#define FY_CLI_HEARTBEAT_MS     5000 /* default: an idle client says something this often */
#define FY_CLI_SERVERS_MAX      16
#define FY_CLI_STALL_MARGIN_DIV 15  /* resubscribe a fifteenth before the broker may drop us */
#define FY_CLI_RESUB_RETRY_MS   500 /* a resubscribe refused for now is tried again after this */

/* The public limits are the protocol's. */
_Static_assert(FERRY_NAME_MAX == FY_NAME_MAX, "FERRY_NAME_MAX");

/* passkey.c: a password user's CURVE key pair (z85), derived from the user
 * name, the password and the server's public key (z85).
 * @return FERRY_OK, FERRY_EINVAL, FERRY_ENOMEM */
ferry_status_t fy_cli_password_keypair(const char *user, const char *password,
                                       const char *server_z85, char public_key[41],
                                       char secret_key[41]);
_Static_assert(FERRY_ID_MAX == FY_ID_MAX, "FERRY_ID_MAX");
_Static_assert(FERRY_BATCH_MAX == FY_BATCH_MAX, "FERRY_BATCH_MAX");
_Static_assert(FERRY_FETCH_MAX == FY_FETCH_MAX, "FERRY_FETCH_MAX");
_Static_assert(FERRY_FETCH_BYTES_MAX == FY_REPLY_BYTES_MAX, "FERRY_FETCH_BYTES_MAX");
_Static_assert(FERRY_PROTOCOL_VERSION == FY_PROTOCOL_VERSION, "FERRY_PROTOCOL_VERSION");
_Static_assert((int)FERRY_KIND_TOPIC == (int)FY_KIND_TOPIC &&
                   (int)FERRY_KIND_QUEUE == (int)FY_KIND_QUEUE,
               "ferry_kind_t");

/* A push subscription of this client. */
typedef struct fy_cli_pushsub {
    uint64_t consumer;  /* the broker's id of it now (0: not restored yet) */
    uint64_t handle;    /* the application's: stays the same across resubscribes */
    uint64_t resub_cid; /* the subscribe sent after a reconnect, until answered */
    long long resub_at; /* a resubscribe refused for now: try again then (fy_mono_ms) */
    char topic[FERRY_NAME_MAX + 1], sub[FERRY_NAME_MAX + 1];
    uint32_t prefetch, consumed; /* consumed: processed since the last credit top-up */
    uint64_t consumed_bytes;     /* their bytes, roughly as the broker counts them */
    bool ephemeral;              /* live messages only: nothing to ack */
    ferry_msg_fn fn;
    ferry_batch_end_fn end; /* after each delivery's messages; may be NULL */
    void *user;
} fy_cli_pushsub_t;

struct ferry_options {
    char *servers[FY_CLI_SERVERS_MAX];
    size_t nservers;
    char *name;
    int timeout_ms;
    int heartbeat_ms;
    size_t window;
    int reconnect_initial_ms, reconnect_max_ms, reconnect_jitter_pct;
    bool block_on_full;
    bool ordered;       /* publishes carry a fence (ferry_options_set_ordered) */
    bool retry_connect; /* ferry_client_new succeeds without a broker and keeps trying */
    ferry_state_fn state_cb;
    void *state_user;
    ferry_log_fn log_cb;
    void *log_user;
    char *user, *password;
    char server_key[41];                 /* CURVE: the broker's public key, z85; "" off */
    char public_key[41], secret_key[41]; /* this client's pair; "": made per client */
    bool bad_env_key;                    /* FERRY_SERVER_KEY was set and is not a key */
};

/* An async publish not yet confirmed, with its request as sent, so that it
 * can be sent again on a new connection (same cid, same message id). */
typedef struct fy_cli_pending {
    uint64_t cid;
    ferry_confirm_fn cb;
    void *user;
    bool done;
    uint8_t *req;   /* envelope bytes, then the payload frame's bytes if any */
    size_t req_cap; /* the slot's buffer, kept for the slot's next publish */
    size_t env_len; /* bytes of the envelope */
    size_t data_len;
    bool frame;     /* a payload frame follows the envelope */
    uint64_t fence; /* the pipeline number it was sent with (ordered publishing) */
    bool ack;       /* an async ack: its answer is a status, not a publish confirm */
} fy_cli_pending_t;

struct ferry_client {
    void *ctx;
    fy_conn_t conn;
    bool connected;               /* the current socket's hello was answered */
    uint64_t hello_cid;           /* the hello in flight on a new socket (0: none) */
    long long hello_at;           /* when it was sent */
    ferry_status_t hello_refused; /* the broker refused our hello with this code (0: not) */
    uint64_t auth_refusals;       /* handshakes the broker refused (EAUTH) */
    unsigned losses;              /* connections lost so far */
    unsigned shutdown_gen;        /* the connection whose broker said ESHUTDOWN (logged once) */
    unsigned redirects;           /* leaders followed since the last hello answered */
    uint64_t not_leader;          /* answers ENOTLEADER / ELEADER_LOST seen (a cluster) */
    uint64_t bad_replies;         /* replies that could not be decoded */
    uint64_t fence;               /* ordered publishing: the pipeline number, raised on a refusal */
    bool ever_connected;          /* a connection worked once (ferry_client_new) */
    struct ferry_options opts;
    uint64_t next_cid;
    uint64_t max_msg_bytes;
    fy_encoder_t *enc;
    fy_encoder_t *stash;                /* a request waiting for a connection */
    char got_topic[FERRY_NAME_MAX + 1]; /* topic of the messages in got */
    fy_decoder_t *dec;
    fy_cli_pending_t *fifo; /* ring of opts.window entries */
    size_t head, count;
    zmq_msg_t rframes[FY_CLI_REPLY_FRAMES_MAX]; /* frames of the last reply read */
    size_t nrframes;
    size_t rep_index;            /* place of the awaited cid in a cumulative confirm */
    ferry_stored_message_t *got; /* results of the last get */
    ferry_header_t *got_hdrs;
    char *got_text;
    char last_error[256];
    fy_cli_pushsub_t subs[FY_CLI_SUBS_MAX];
    size_t nsubs;
    bool in_handler;
    long long last_send_ms;
    long long last_recv_ms; /* anything from the broker, on this connection */
    bool ping_out;          /* a heartbeat ping was sent and nothing came back since */
    long long ping_out_ms;  /* when that ping was sent */
    struct fy_rpc *rpc;     /* request/reply state (rpc.c), NULL until used */
};

/** A copy of @p s (NULL for NULL or out of memory); free(). */
static inline char *
fy_cli_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    return d ? memcpy(d, s, n) : NULL;
}

static inline bool
fy_cli_name_ok(const char *name)
{
    return name && fy_name_valid(fy_bytes_str(name));
}

/** A subscription name: NULL or "" (a queue's), or a valid name. */
static inline bool
fy_cli_sub_ok(const char *sub)
{
    return !sub || !*sub || fy_name_valid(fy_bytes_str(sub));
}

/* ---- connection.c: the connection, the wait loop, calls ------------------ */

/** Records why the last call failed (ferry_client_last_error) and returns @p st. */
ferry_status_t fy_client_fail(ferry_client_t *c, ferry_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** True while a handler or callback of @p c runs (no blocking calls then). */
bool fy_client_in_handler(const ferry_client_t *c);

/** A line to the application's log callback, if it set one. */
void fy_cli_log(ferry_client_t *self, ferry_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** The connection is gone: close it and schedule the next attempt. */
void fy_cli_lose(ferry_client_t *self, const char *reason);
/* The node does not lead its cluster (a reply with ENOTLEADER or
 * ELEADER_LOST): the connection goes, and the next one to the leader the
 * reply names, if any (else the next server of the list). */
void fy_cli_not_leader(ferry_client_t *self, const fy_reply_t *r);

/** What fy_cli_wait waits for. */
typedef enum {
    FY_CLI_WAIT_CID,      /* the reply to one request */
    FY_CLI_WAIT_EMPTY,    /* no async publish left unconfirmed */
    FY_CLI_WAIT_SLOT,     /* room in the publish window */
    FY_CLI_WAIT_ANY,      /* whatever has arrived (at least one reply, or the deadline) */
    FY_CLI_WAIT_CONNECTED /* a connection */
} fy_cli_goal_t;

/** Reads replies until the goal is met or the deadline passes; async
 *  confirms that arrive meanwhile fire their callbacks, deliveries their
 *  handlers, and a lost connection is made again. FY_CLI_WAIT_CID fails
 *  with ECLOSED when the connection its request went out on is lost. */
ferry_status_t fy_cli_wait(ferry_client_t *self, fy_cli_goal_t goal, uint64_t cid,
                           long long deadline, fy_reply_t *rep);
/** Sends the encoded envelope plus @p n payload frames on the current connection. */
ferry_status_t fy_cli_send(ferry_client_t *self, const void *const *payloads, const size_t *lens,
                           size_t n);
/** Sends the encoded request without waiting for a reply (acks, credit,
 *  pings from inside the reply loop). A failure leaves the broker to
 *  redeliver; last_error says why. */
void fy_cli_send_nowait(ferry_client_t *self);
/** Sends a request and waits for its reply: the client timeout plus
 *  @p extra_ms (a fetch's wait). While reconnecting it first waits, within
 *  the same time, for the connection. */
ferry_status_t fy_cli_call_wait(ferry_client_t *self, uint64_t cid, const void *const *payloads,
                                const size_t *lens, size_t n, int extra_ms, fy_reply_t *rep);
ferry_status_t fy_cli_call(ferry_client_t *self, uint64_t cid, const void *const *payloads,
                           const size_t *lens, size_t n, fy_reply_t *rep);
/** The same for a request that changes nothing (get, info, stats, lists):
 *  a connection lost before its reply does not fail it (ECLOSED); it is
 *  asked again on the next one, within the timeout. */
ferry_status_t fy_cli_call_read(ferry_client_t *self, uint64_t cid, fy_reply_t *rep);

/** The request/reply state of @p c (NULL until the first request); rpc.c owns it. */
struct fy_rpc **fy_client_rpc(ferry_client_t *c);

/* ---- window.c: the publish window ---------------------------------------- */

static inline fy_cli_pending_t *
fy_cli_fifo_at(ferry_client_t *self, size_t i)
{
    return &self->fifo[(self->head + i) % self->opts.window];
}

/** Completes the async request (publish or ack) answered by entry @p index
 *  of reply @p rep, if it is one of ours. */
bool fy_cli_complete_async(ferry_client_t *self, const fy_reply_t *rep, size_t index);
/** Room in the window for one more async request: waits for confirms when
 *  it is full and the client blocks (block_on_full), else says why not.
 *  @p what names the request in errors ("publish", "ack"). */
ferry_status_t fy_cli_window_room(ferry_client_t *self, const char *what);
/** Keeps the request just encoded (plus @p extra payload bytes of @p data
 *  as a second frame when @p frame) in the window under @p cid, so that a
 *  new connection carries it again, and sends it if connected. */
ferry_status_t fy_cli_window_put(ferry_client_t *self, uint64_t cid, const void *data, size_t extra,
                                 bool frame, ferry_confirm_fn cb, void *user, bool ack);
/** The confirm of request @p index of a (cumulative) confirm reply. */
void fy_cli_confirm_from(const fy_reply_t *rep, size_t index, ferry_confirm_t *cf);
/** Sends an async publish's stored request. */
ferry_status_t fy_cli_send_pending(ferry_client_t *self, const fy_cli_pending_t *p);

/** Sends a publish without ever waiting (callable from a handler): tracked in
 *  the window when there is room, so that flush waits for it. */
ferry_status_t fy_client_publish_nowait(ferry_client_t *c, const char *topic,
                                        const ferry_message_t *m);

/* ---- pull.c: messages of a reply ------------------------------------------ */

/** Copies the messages of a get, fetch, read or delivery reply (in
 *  self->rframes) into self->got. */
ferry_status_t fy_cli_take_messages(ferry_client_t *self, const fy_reply_t *rep, const char *topic,
                                    const ferry_stored_message_t **msgs, size_t *count);

/** One `read` round trip: up to @p limit messages of @p key from version @p from.
 *  @p msgs is owned by the client until its next call; @p next is 0 at the end. */
ferry_status_t fy_client_read_page(ferry_client_t *c, const char *topic, const char *key,
                                   uint64_t from, uint32_t limit,
                                   const ferry_stored_message_t **msgs, size_t *n, uint64_t *next);

/* ---- push.c: push subscriptions ------------------------------------------ */

/** Makes every push subscription again (after a reconnect or a stall). */
void fy_cli_resubscribe(ferry_client_t *self);
/** Makes again the push subscriptions whose resubscribe was refused for now
 *  and whose retry time (resub_at) came. */
void fy_cli_resubscribe_due(ferry_client_t *self, long long now);
/** The answer to a subscribe sent by fy_cli_resubscribe. @return true if it was one. */
bool fy_cli_on_resubscribed(ferry_client_t *self, const fy_reply_t *r);
/** Runs the handler on each pushed message, then acks and tops up the credit. */
void fy_cli_dispatch(ferry_client_t *self, const fy_reply_t *rep);

/* ---- topics.c ------------------------------------------------------------- */

/** Sends a delete of @p name without waiting for the answer. */
void fy_client_delete_nowait(ferry_client_t *c, const char *name);

/* ---- rpc.c, msgcopy.c ----------------------------------------------------- */

/* rpc.c: reports requests whose time is up (from ferry_client_poll and
 * flush), and frees the state and deletes the inbox (from destroy). */
void fy_rpc_expire(ferry_client_t *c);
void fy_rpc_destroy(ferry_client_t *c);

/** One block holding a deep copy of @p n messages (strings, headers and
 *  payloads); free() it. NULL if out of memory (or n == 0). */
ferry_stored_message_t *fy_msgs_clone(const ferry_stored_message_t *src, size_t n);

#endif
