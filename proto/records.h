/* SPDX-License-Identifier: MIT */
/*
 * records.h - the records the codec and the broker exchange: what a topic
 * is, how it is configured, the broker's counters, a message to encode.
 * They belong to the protocol, not to libferry's ABI: libferry maps them to
 * its public structs (client/records_map.c), so the broker can change
 * neither by accident. Plain data; no state.
 */
#ifndef FY_RECORDS_H
#define FY_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire_limits.h"

/** Kinds of destination; the numbers match fy_kind_t. */
typedef enum fy_kind { FY_KIND_TOPIC = 1, FY_KIND_QUEUE = 2 } fy_kind_t;

/** Where a new subscription begins (sub_declare's `start`). */
typedef enum fy_start { FY_START_FIRST, FY_START_NEW, FY_START_SEQ, FY_START_TIME } fy_start_t;

/** A header: two NUL-terminated strings, borrowed. */
typedef struct fy_header {
    const char *name;
    const char *value;
} fy_header_t;

/** A topic's settings (declare); zero: the broker's default / no limit. */
typedef struct fy_topic_config {
    uint64_t dedupe_window_ms;
    uint64_t max_msgs, max_bytes, max_age_ms;
    bool discard_new; /**< at a limit refuse new messages instead of dropping old ones */
    bool interest;    /**< delete a message once every subscription acked it */
} fy_topic_config_t;

/** The settings an edit changes (bits of fy_topic_edit_t.set). */
enum {
    FY_EDIT_DEDUPE = 1,
    FY_EDIT_MAX_MSGS = 2,
    FY_EDIT_MAX_BYTES = 4,
    FY_EDIT_MAX_AGE = 8,
    FY_EDIT_DISCARD = 16
};

/** What the broker knows about a topic or queue (info and declare replies). */
typedef struct fy_topic_info {
    char name[FY_NAME_MAX + 1];
    fy_kind_t kind;
    uint64_t first_seq, last_seq, messages, bytes;
    uint64_t dedupe_window_ms, created_ms;
    uint64_t max_msgs, max_bytes, max_age_ms;
    bool discard_new, interest;
} fy_topic_info_t;

/** A cluster's voter as its leader sees it (cluster reply). */
typedef struct fy_cluster_node {
    uint64_t id;
    char address[64];
    uint64_t match; /* the last entry it has */
    bool up;        /* the leader heard from it within an election timeout */
    bool voter;     /* a voter; else a spare catching up */
} fy_cluster_node_t;

#define FY_CLUSTER_NODES_MAX 9
/* The pseudo-topic whose admin permission membership changes need. */
#define FY_CLUSTER_TOPIC "_cluster"
/* The pseudo-topic whose admin permission a backup needs. */
#define FY_BACKUP_TOPIC "_backup"

/** Where a cluster stands, as its leader sees it (cluster reply). */
typedef struct fy_cluster_info {
    uint64_t id; /* the node that answers; 0: a single ferryd */
    uint64_t term, commit, applied, last, elections, snapshots;
    size_t nnodes;
    fy_cluster_node_t nodes[FY_CLUSTER_NODES_MAX];
} fy_cluster_info_t;

/** Broker-wide counters (stats reply). */
typedef struct fy_stats {
    uint64_t topics, messages, bytes;
    uint64_t publishes, duplicates, commits, requests, errors;
    uint64_t uptime_ms, map_size, map_used;
} fy_stats_t;

/** Where a subscription stands (sub_declare / sub_info reply). */
typedef struct fy_sub_state {
    uint64_t cursor, ack_floor, last_seq, ack_wait_ms, max_deliver;
} fy_sub_state_t;

/** fy_outmsg_t.expect bits. */
#define FY_EXPECT_LAST_SEQ    0x1u
#define FY_EXPECT_KEY_VERSION 0x2u

/** A message a client publishes (encoding side); every pointer borrowed. */
typedef struct fy_outmsg {
    const void *data;
    size_t len;
    const char *key; /**< NULL: none */
    const char *id;  /**< NULL: none */
    const fy_header_t *headers;
    size_t header_count;
    unsigned expect; /**< FY_EXPECT_* bits */
    uint64_t expect_last_seq, expect_key_version;
    uint64_t not_before_ms, delay_ms;
} fy_outmsg_t;

#endif /* FY_RECORDS_H */
