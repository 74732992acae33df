/* SPDX-License-Identifier: MIT */
/*
 * envelope.h - the Ferry wire codec: the only code that encodes or decodes
 * the protocol (docs/protocol.md).
 *
 * A request or reply is a ZeroMQ multipart message: frame 1 is a msgpack map
 * (the envelope), further frames are raw payloads that this module never
 * touches. Decoding is strict: every field is type- and range-checked, and a
 * bad envelope yields a status and a one-sentence message, never a crash.
 *
 * Objects here are used by one thread at a time. Decoded requests and replies
 * borrow from the decoder and from the input buffer: both must outlive them.
 */
#ifndef FY_ENVELOPE_H
#define FY_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "wire_limits.h"
#include "ops.h"
#include "records.h"
#include "status.h"

/** How long a consumer of a client with heartbeat @p heartbeat_ms (0: not
 *  given) may be silent before the broker drops it. */
static inline long long
fy_consumer_timeout_ms(uint32_t heartbeat_ms)
{
    long long t = heartbeat_ms ? 3LL * heartbeat_ms : FY_CONSUMER_TIMEOUT_MS;
    return t < FY_CONSUMER_TIMEOUT_MIN_MS ? FY_CONSUMER_TIMEOUT_MIN_MS : t;
}
/** The header naming where a request's reply goes (a topic); checked by the broker. */
#define FY_HDR_REPLY_TO "reply_to"
/** The header that ties a reply to its request. */
#define FY_HDR_CORRELATION_ID "correlation_id"

/** Metadata of one published message. Borrowed from the decoder. */
typedef struct fy_pubmeta {
    fy_bytes_t key;  /**< len 0: no key */
    fy_bytes_t id;   /**< len 0: no message id */
    fy_bytes_t hdrs; /**< canonical msgpack map of str->str; len 0: no headers */
    bool has_data;   /**< publish: the payload came inline (field 'data'), not as a frame */
    fy_bytes_t data; /**< the inline payload when has_data */
    bool has_expect_last, has_expect_kver;
    uint64_t expect_last;   /**< 'expect_last': the topic's last sequence before this one */
    uint64_t expect_kver;   /**< 'expect_kver': the key's version before this one */
    uint64_t not_before_ms; /**< 'not_before': deliver from then on (ms since the epoch) */
    uint64_t delay_ms;      /**< 'delay_ms': deliver this long after storing */
} fy_pubmeta_t;

/** A decoded request. Fields not used by `op` are zero. */
typedef struct fy_request {
    fy_op_t op;
    uint64_t cid;                /**< correlation id, echoed in the reply */
    fy_bytes_t name;             /**< declare/delete/info: name; publish*, get: topic;
                                      topics: list those after it (may be empty) */
    fy_bytes_t client;           /**< hello: client name (may be empty) */
    fy_kind_t kind;              /**< declare */
    fy_topic_config_t topic_cfg; /**< declare: dedupe window (0 = default) and limits */
    uint64_t seq;                /**< get: first sequence; read: first key version */
    uint32_t limit;              /**< get, read: most messages; topics: most topics */
    fy_bytes_t key;              /**< read: the key */
    fy_bytes_t sub;              /**< sub_declare/fetch/ack/nack: subscription ("" for a queue);
                                      subs: list those named after it */
    fy_start_t start;            /**< sub_declare: where a new subscription begins */
    uint64_t ack_wait_ms;        /**< sub_declare: 0 = default */
    uint64_t max_deliver;        /**< sub_declare: 0 = default */
    const uint64_t *seqs;        /**< ack: sequences; nack: one */
    size_t seq_count;
    uint64_t delay_ms;        /**< nack: redeliver not before this; seek: time_ms */
    fy_bytes_t error;         /**< term: the consumer's error text (may be empty) */
    fy_bytes_t filter;        /**< sub_declare: subject pattern over keys (len 0: none) */
    uint64_t wait_ms;         /**< fetch: wait up to this long for a message */
    uint32_t max_bytes;       /**< fetch: most bytes of messages in the reply (fy_stored_cost) */
    bool noreply;             /**< ack/nack/credit: no "ok" reply wanted (errors still come) */
    uint32_t credit;          /**< subscribe/credit: messages the consumer may be sent */
    uint32_t heartbeat_ms;    /**< subscribe: the client's heartbeat (0: not given) */
    uint64_t consumer;        /**< credit/unsubscribe: id from subscribe */
    const fy_pubmeta_t *msgs; /**< publish: 1, publish_batch: msg_count */
    size_t msg_count;
    uint64_t fence; /**< publish*: the sender's pipeline number (0: none), see fence.h */
    unsigned edit;  /**< edit: FY_EDIT_* bits of topic_cfg to change */
    uint64_t keep;  /**< purge: keep the newest this many (0: none) */
    uint64_t below; /**< purge: remove those below this sequence (0: every one) */
} fy_request_t;

typedef struct fy_decoder fy_decoder_t;

/** @return a decoder, or NULL if out of memory. Free with fy_decoder_destroy(). */
fy_decoder_t *fy_decoder_new(void);
void fy_decoder_destroy(fy_decoder_t **self_p);

/**
 * Decodes a request envelope that arrived with @p payload_frames further frames.
 * On failure @p req still carries the cid (0 if unreadable) and op when known.
 * @return FERRY_OK, FERRY_EPROTO, FERRY_EVERSION, FERRY_EUNKNOWN_OP, FERRY_EFIELD,
 *         FERRY_EFRAMES, FERRY_EINVALID_NAME, FERRY_ETOO_MANY, FERRY_ENOMEM
 */
fy_status_t fy_request_decode(fy_decoder_t *self, const void *buf, size_t len,
                              size_t payload_frames, fy_request_t *req, fy_err_t *err);

/** True if @p name is a valid topic/queue name: 1..255 bytes of [A-Za-z0-9_-]
 *  in dot-separated non-empty tokens. */
bool fy_name_valid(fy_bytes_t name);

/* ---- encoding ------------------------------------------------------------ */

/** An append-only output buffer; encoders append one envelope each. */
typedef struct fy_encoder fy_encoder_t;

fy_encoder_t *fy_encoder_new(void);
void fy_encoder_destroy(fy_encoder_t **self_p);
void fy_encoder_reset(fy_encoder_t *self);
/** Bytes written so far; borrowed, valid until the next append or reset. */
const uint8_t *fy_encoder_data(const fy_encoder_t *self);
size_t fy_encoder_len(const fy_encoder_t *self);
/** Appends bytes another encoder produced (e.g. message entries encoded before
 *  their count was known). @return FERRY_OK, FERRY_ENOMEM */
fy_status_t fy_encoder_append(fy_encoder_t *self, const fy_encoder_t *other);

/* Every encoder returns FERRY_OK or FERRY_ENOMEM (buffer unchanged then). */
fy_status_t fy_encode_hello(fy_encoder_t *self, uint64_t cid, const char *client);
fy_status_t fy_encode_simple(fy_encoder_t *self, uint64_t cid, fy_op_t op, const char *name);
/** @p cfg may be NULL (broker defaults). */
fy_status_t fy_encode_declare(fy_encoder_t *self, uint64_t cid, fy_kind_t kind, const char *name,
                              const fy_topic_config_t *cfg);
/** With @p inline_data the payload is packed as field 'data' and no payload
 *  frame follows; otherwise the caller sends it as the next frame. A
 *  non-zero @p fence orders the connection's publishes (docs/protocol.md). */
fy_status_t fy_encode_publish(fy_encoder_t *self, uint64_t cid, const char *topic,
                              const fy_outmsg_t *msg, bool inline_data, uint64_t fence);
fy_status_t fy_encode_publish_batch(fy_encoder_t *self, uint64_t cid, const char *topic,
                                    const fy_outmsg_t *msgs, size_t n, uint64_t fence);
fy_status_t fy_encode_get(fy_encoder_t *self, uint64_t cid, const char *topic, uint64_t seq,
                          uint32_t limit);
/** topics: up to @p limit topics named after @p after ("" or NULL: from the first). */
fy_status_t fy_encode_topics(fy_encoder_t *self, uint64_t cid, const char *after, uint32_t limit);
/** purge: removes @p topic's oldest messages, keeping the newest @p keep, or
 *  those below sequence @p below (0: no bound); a bounded number per request. */
/** seek: subscription @p sub of @p topic to @p seq, or (time_ms > 0) to the
 *  first message stored at or after @p time_ms. */
fy_status_t fy_encode_seek(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                           uint64_t seq, uint64_t time_ms);
/** node_add (@p address HOST:PORT) or node_remove (@p address NULL). */
fy_status_t fy_encode_node(fy_encoder_t *self, uint64_t cid, uint64_t node, const char *address);
/** backup into the new directory @p path (absolute, on the broker's host). */
fy_status_t fy_encode_backup(fy_encoder_t *self, uint64_t cid, const char *path);
fy_status_t fy_encode_purge(fy_encoder_t *self, uint64_t cid, const char *topic, uint64_t keep,
                            uint64_t below);
/** edit: changes the settings of @p topic that @p set (FY_EDIT_*) names. */
fy_status_t fy_encode_edit(fy_encoder_t *self, uint64_t cid, const char *topic, unsigned set,
                           const fy_topic_config_t *cfg);
/** subs: up to @p limit subscriptions of @p topic named after @p after. */
fy_status_t fy_encode_subs(fy_encoder_t *self, uint64_t cid, const char *topic, const char *after,
                           uint32_t limit);

/** A subscription as the subs operation lists it. */
typedef struct fy_sub_listing {
    char name[FY_NAME_MAX + 1], filter[FY_NAME_MAX + 1], owner[FY_NAME_MAX + 1];
    uint64_t cursor, ack_floor, last_seq, ack_wait_ms, max_deliver, created_ms, consumers;
} fy_sub_listing_t;
/** read: the messages of one key from key version @p from on. */
fy_status_t fy_encode_read(fy_encoder_t *self, uint64_t cid, const char *topic, const char *key,
                           uint64_t from, uint32_t limit);

/** sub_declare options as sent by a client. */
typedef struct fy_sub_request {
    fy_start_t start;
    uint64_t start_seq;
    uint64_t start_time_ms; /**< non-zero: start at the first message stored at or after it */
    const char *filter;     /**< NULL, or a subject pattern over message keys */
    uint64_t ack_wait_ms;
    uint64_t max_deliver;
} fy_sub_request_t;

fy_status_t fy_encode_sub_declare(fy_encoder_t *self, uint64_t cid, const char *topic,
                                  const char *sub, const fy_sub_request_t *sr);
fy_status_t fy_encode_sub_info(fy_encoder_t *self, uint64_t cid, const char *topic,
                               const char *sub);
/** sub_info or sub_delete (@p op): topic and subscription. */
fy_status_t fy_encode_sub_op(fy_encoder_t *self, uint64_t cid, fy_op_t op, const char *topic,
                             const char *sub);
fy_status_t fy_encode_subscribe(fy_encoder_t *self, uint64_t cid, const char *topic,
                                const char *sub, uint32_t credit, uint32_t heartbeat_ms);
/** credit (no reply wanted) or unsubscribe for consumer @p consumer. */
fy_status_t fy_encode_consumer_op(fy_encoder_t *self, uint64_t cid, fy_op_t op, uint64_t consumer,
                                  uint32_t credit);
/** fetch; @p max_bytes 0: not sent (the broker's FY_REPLY_BYTES_MAX). */
fy_status_t fy_encode_fetch(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                            uint32_t max, uint32_t max_bytes, uint64_t wait_ms);
fy_status_t fy_encode_ack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                          const uint64_t *seqs, size_t n, bool noreply);
fy_status_t fy_encode_nack(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                           uint64_t seq, uint64_t delay_ms, bool noreply);
/** term (@p error may be NULL) and progress, for one sequence. */
fy_status_t fy_encode_term(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                           uint64_t seq, const char *error);
fy_status_t fy_encode_progress(fy_encoder_t *self, uint64_t cid, const char *topic, const char *sub,
                               uint64_t seq);

/* Replies (broker side). */
fy_status_t fy_encode_error(fy_encoder_t *self, uint64_t cid, fy_status_t code, const char *msg);
fy_status_t fy_encode_ok(fy_encoder_t *self, uint64_t cid);
fy_status_t fy_encode_hello_ok(fy_encoder_t *self, uint64_t cid, const char *server,
                               uint64_t max_msg_bytes);
/** @p kver: the message's key version, 0 without key (then left out). */
fy_status_t fy_encode_confirm(fy_encoder_t *self, uint64_t cid, uint64_t seq, bool dup,
                              uint64_t kver);
/** @p kvers: NULL or all zero when no message has a key (then left out). */
fy_status_t fy_encode_confirm_batch(fy_encoder_t *self, uint64_t cid, const uint64_t *seqs,
                                    const bool *dups, const uint64_t *kvers, size_t n);
/** Confirms @p n single publishes of one connection whose cids are
 *  @p first_cid .. first_cid + n - 1, in one reply (a cumulative confirm). */
fy_status_t fy_encode_confirm_run(fy_encoder_t *self, uint64_t first_cid, const uint64_t *seqs,
                                  const bool *dups, const uint64_t *kvers, size_t n);
/** An ECONFLICT error carrying the topic's last sequence and the key's version now. */
fy_status_t fy_encode_conflict(fy_encoder_t *self, uint64_t cid, const char *msg, uint64_t last,
                               uint64_t kver);
/** @p created: -1 to leave the field out (info), else 0/1 (declare). */
fy_status_t fy_encode_info_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *info,
                                 int created);
fy_status_t fy_encode_stats_reply(fy_encoder_t *self, uint64_t cid, const fy_stats_t *st);
/** Reply to cluster: the answering node's view (its voters' progress). */
fy_status_t fy_encode_cluster_reply(fy_encoder_t *self, uint64_t cid, const fy_cluster_info_t *ci);
/** Reply to topics: @p n topics (each as an info reply says one), and
 *  whether more follow the last. */
fy_status_t fy_encode_topics_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *infos,
                                   size_t n, bool more);
/** Reply to edit: the topic as it stands, and whether messages over its new
 *  limits are left to remove (send the edit again). */
fy_status_t fy_encode_edit_reply(fy_encoder_t *self, uint64_t cid, const fy_topic_info_t *info,
                                 bool more);
/** Reply to purge: how many were removed, and whether more are left to remove. */
fy_status_t fy_encode_purge_reply(fy_encoder_t *self, uint64_t cid, uint64_t removed, bool more);
/** Reply to subs: @p n subscriptions, and whether more follow the last. */
fy_status_t fy_encode_subs_reply(fy_encoder_t *self, uint64_t cid, const fy_sub_listing_t *subs,
                                 size_t n, bool more);
/** Reply to subscribe: the consumer id. */
fy_status_t fy_encode_subscribed(fy_encoder_t *self, uint64_t cid, uint64_t consumer,
                                 bool ephemeral);
/** A push delivery (op "msg", cid 0): then exactly @p n fy_encode_entry
 *  entries, appended with fy_encoder_append, and one payload frame each. */
fy_status_t fy_encode_delivery_begin(fy_encoder_t *self, uint64_t consumer, size_t n);
/** Reply to sub_declare: where the subscription stands. */
fy_status_t fy_encode_sub_reply(fy_encoder_t *self, uint64_t cid, uint64_t cursor,
                                uint64_t ack_floor, uint64_t ack_wait_ms, uint64_t max_deliver,
                                uint64_t last_seq, bool created);
/**
 * Appends to @p self a canonical header map: the entries of @p hdrs (a map
 * this codec wrote, or empty) followed by @p n extra name/value pairs, which
 * replace entries of the same name. Used to add dead-letter headers.
 * @return FERRY_OK, FERRY_ENOMEM, FERRY_EFIELD (hdrs is not such a map)
 */
fy_status_t fy_headers_merge(fy_encoder_t *self, fy_bytes_t hdrs, const fy_header_t *extra,
                             size_t n);
/** A get/fetch reply: begin with the count, then exactly @p n message entries. */
fy_status_t fy_encode_get_begin(fy_encoder_t *self, uint64_t cid, size_t n);
/** A read reply: as a get reply, plus the key version to go on from (0: no more). */
fy_status_t fy_encode_read_begin(fy_encoder_t *self, uint64_t cid, size_t n, uint64_t next);

/** One message entry of a get/fetch/read reply or a delivery. */
typedef struct fy_entry {
    uint64_t seq, ts_ms;
    uint64_t kver; /**< key version; 0: left out */
    uint32_t dc;   /**< delivery count; 0: left out (get, read) */
    fy_bytes_t key, id, hdrs;
    const fy_bytes_t *inline_data; /**< non-NULL: the payload rides in the entry ('data')
                                        instead of the next payload frame */
} fy_entry_t;
fy_status_t fy_encode_entry(fy_encoder_t *self, const fy_entry_t *e);

/* ---- reply decoding (client side) --------------------------------------- */

/** A decoded reply; borrows from the decoder and the input buffer. */
typedef struct fy_reply {
    uint64_t cid;
    fy_status_t code; /**< FERRY_OK for "ok" replies, else the error code */
    fy_bytes_t msg;   /**< error message (len 0 for ok) */
    bool delivery;    /**< op "msg": messages pushed to a consumer (read with fy_reply_get_*) */
    const void *obj_; /**< internal: the decoded envelope */
} fy_reply_t;

/** @return FERRY_OK, FERRY_EPROTO, FERRY_EFIELD, FERRY_EVERSION, FERRY_ENOMEM */
fy_status_t fy_reply_decode(fy_decoder_t *self, const void *buf, size_t len, fy_reply_t *rep,
                            fy_err_t *err);
fy_status_t fy_reply_hello(const fy_reply_t *rep, uint64_t *max_msg_bytes);
fy_status_t fy_reply_confirm(const fy_reply_t *rep, uint64_t *seq, bool *dup, uint64_t *kver);
fy_status_t fy_reply_confirm_count(const fy_reply_t *rep, size_t *n);
/** The current values an ECONFLICT error carries. */
fy_status_t fy_reply_conflict(const fy_reply_t *rep, uint64_t *last, uint64_t *kver);
/** The 'next' key version of a read reply (0: the key has no more). */
fy_status_t fy_reply_next(const fy_reply_t *rep, uint64_t *next);
/** Number of requests a reply answers: its `n` for a cumulative confirm
 *  (cids rep->cid .. rep->cid + n - 1, read with fy_reply_confirm_at), else 1. */
size_t fy_reply_run(const fy_reply_t *rep);
fy_status_t fy_reply_confirm_at(const fy_reply_t *rep, size_t i, uint64_t *seq, bool *dup,
                                uint64_t *kver);
fy_status_t fy_reply_info(const fy_reply_t *rep, fy_topic_info_t *info, bool *created);
fy_status_t fy_reply_stats(const fy_reply_t *rep, fy_stats_t *st);
fy_status_t fy_reply_cluster(const fy_reply_t *rep, fy_cluster_info_t *ci);
/** A topics reply: how many it lists and whether more follow; then each. */
fy_status_t fy_reply_topics(const fy_reply_t *rep, size_t *n, bool *more);
fy_status_t fy_reply_topic_at(const fy_reply_t *rep, size_t i, fy_topic_info_t *info);
/** An edit reply: fy_reply_info, and whether more are left to trim. */
fy_status_t fy_reply_edit(const fy_reply_t *rep, fy_topic_info_t *info, bool *more);
/** A purge reply: how many were removed, whether more are left. */
fy_status_t fy_reply_purge(const fy_reply_t *rep, uint64_t *removed, bool *more);
/** A subs reply: how many it lists and whether more follow; then each. */
fy_status_t fy_reply_subs(const fy_reply_t *rep, size_t *n, bool *more);
fy_status_t fy_reply_sub_at(const fy_reply_t *rep, size_t i, fy_sub_listing_t *sub);

/** One message of a get reply; byte strings borrow from the reply. */
typedef struct fy_getmsg {
    uint64_t seq;
    uint64_t ts_ms;
    fy_bytes_t key;
    fy_bytes_t id;
    size_t header_count;
    uint32_t dc;     /**< delivery count (fetch replies; 0 in get replies) */
    uint64_t kver;   /**< key version (0 without key) */
    bool has_data;   /**< the payload is inline (field 'data'), not the next frame */
    fy_bytes_t data; /**< the inline payload when has_data */
} fy_getmsg_t;

/** Fields of a sub_declare reply. */
/** The consumer id of a subscribe reply or of a delivery. */
fy_status_t fy_reply_consumer(const fy_reply_t *rep, uint64_t *consumer);
/** True if a subscribe reply says the consumer is ephemeral (no acks). */
bool fy_reply_ephemeral(const fy_reply_t *rep);
fy_status_t fy_reply_sub(const fy_reply_t *rep, fy_sub_state_t *info, bool *created);

fy_status_t fy_reply_get_count(const fy_reply_t *rep, size_t *n);
fy_status_t fy_reply_get_msg(const fy_reply_t *rep, size_t i, fy_getmsg_t *out);
fy_status_t fy_reply_get_header(const fy_reply_t *rep, size_t i, size_t j, fy_bytes_t *name,
                                fy_bytes_t *value);

#endif /* FY_ENVELOPE_H */
