/* SPDX-License-Identifier: MIT */
/*
 * wire_limits.h - the protocol's fixed limits and versions, one set shared by the
 * broker, the codec and libferry. The public FERRY_*_MAX values in ferry.h
 * are checked against these at compile time (client/limits_check.c), so the
 * two can never disagree. Header-only.
 */
#ifndef FY_WIRE_LIMITS_H
#define FY_WIRE_LIMITS_H

#define FY_VERSION_STRING   "0.1.0" /**< of ferryd, libferry and the tools */
#define FY_PROTOCOL_VERSION 1       /**< the `v` of every envelope */

#define FY_NAME_MAX         255        /**< bytes in a topic, queue or subscription name */
#define FY_ID_MAX           255        /**< bytes in a key or message id */
#define FY_BATCH_MAX        1000       /**< messages in one publish_batch or get reply */
#define FY_FETCH_MAX        10000      /**< messages in one fetch reply, sequences in one ack */
#define FY_HEADERS_MAX      64         /**< headers on one message */
#define FY_HEADER_VALUE_MAX 4096       /**< bytes in one header value */
#define FY_ENVELOPE_MAX     (1u << 20) /**< bytes in one envelope frame */
#define FY_FETCH_WAIT_MAX   300000     /**< longest fetch wait, ms */
#define FY_ERROR_TEXT_MAX   1024       /**< bytes of a term's error text */
#define FY_CREDIT_MAX       65536      /**< credit of one push consumer */
/** Bytes of messages (entries and their payload frames, fy_stored_cost in
 *  the broker) in one get, fetch or read reply or push delivery: the broker
 *  cuts a reply there and the rest goes in the next one, so no envelope
 *  nears FY_ENVELOPE_MAX, whatever the batch size. One message always goes. */
#define FY_REPLY_BYTES_MAX (512u << 10)
/** Bytes of messages a push consumer may hold (sent, not yet given back
 *  as credit): the broker stops sending it past this, whatever its credit
 *  in messages, so a consumer that stops reading costs the broker this much
 *  memory at most (plus one delivery), not credit x message size. */
#define FY_CONSUMER_BYTES_MAX (8u << 20)
/** Payloads up to this size go inline in a publish envelope (one frame in all). */
#define FY_INLINE_MAX 4096
#define FY_DELAY_MAX  (3650ull * 24 * 3600 * 1000) /**< longest delay: ten years, ms */

/** A push consumer whose peer sent nothing for this long is dropped by the
 *  broker; a client silent that long subscribes again. A subscribe that
 *  gives the client's heartbeat interval gets three intervals instead (at
 *  least FY_CONSUMER_TIMEOUT_MIN_MS). */
#define FY_CONSUMER_TIMEOUT_MS     15000
#define FY_CONSUMER_TIMEOUT_MIN_MS 1000
#define FY_HEARTBEAT_MIN_MS        100
#define FY_HEARTBEAT_MAX_MS        60000

/** The endpoint a broker binds and a client connects to when told nothing. */
#define FY_DEFAULT_ENDPOINT "tcp://127.0.0.1:5555"

#endif /* FY_WIRE_LIMITS_H */
