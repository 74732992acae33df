/* SPDX-License-Identifier: MIT */
/*
 * topicstats.h - counters per topic and per subscription since the broker
 * started, for /metrics (docs/operations.md): publishes stored, duplicates
 * answered, conflicts refused; deliveries, redeliveries, acks, nacks, terms. At most `cap` topics
 * get a row of their own (label cardinality stays bounded); the rest add to one row for all others.
 * Broker thread only; memory is `cap` rows, allocated once.
 */
#ifndef FY_TOPICSTATS_H
#define FY_TOPICSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "envelope.h"

typedef struct fy_topic_counts {
    char name[FY_NAME_MAX + 1]; /* "" for an unused row */
    uint64_t publishes, duplicates, conflicts;
} fy_topic_counts_t;

typedef struct fy_topicstats {
    fy_topic_counts_t *rows; /* open addressing by name hash */
    size_t cap, used;
    fy_topic_counts_t others; /* topics beyond cap */
} fy_topicstats_t;

/** @return 0, or -1 out of memory. @p cap 0: no rows (all in others). */
int fy_topicstats_init(fy_topicstats_t *ts, size_t cap);
void fy_topicstats_free(fy_topicstats_t *ts);
/** Adds to @p topic's row (made if there is room, else to others). */
void fy_topicstats_add(fy_topicstats_t *ts, fy_bytes_t topic, uint64_t publishes,
                       uint64_t duplicates, uint64_t conflicts);
/** @p topic's counters, or NULL if it has no row. */
const fy_topic_counts_t *fy_topicstats_get(const fy_topicstats_t *ts, const char *topic);

/* The same per subscription (by its id, never reused): deliveries (first
 * and again), redeliveries (a delivery count above 1), and what consumers
 * answered. A deleted subscription keeps its row until the broker restarts;
 * beyond `cap` rows, counts go to `others`. */
typedef struct fy_sub_counts {
    uint64_t sub_id; /* 0 for an unused row */
    uint64_t deliveries, redeliveries, acks, nacks, terms, dead_letters;
} fy_sub_counts_t;

typedef struct fy_substats {
    fy_sub_counts_t *rows;
    size_t cap, used;
    fy_sub_counts_t others;
} fy_substats_t;

/** @return 0, or -1 out of memory. */
int fy_substats_init(fy_substats_t *ss, size_t cap);
void fy_substats_free(fy_substats_t *ss);
/** The row to add to for @p sub_id (made if there is room; else others). */
fy_sub_counts_t *fy_substats_row(fy_substats_t *ss, uint64_t sub_id);
/** @p sub_id's counters, or NULL if it has no row. */
const fy_sub_counts_t *fy_substats_get(const fy_substats_t *ss, uint64_t sub_id);

#endif
