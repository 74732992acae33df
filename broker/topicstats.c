/* SPDX-License-Identifier: MIT */
/*
 * topicstats.c - counters per topic and per subscription (topicstats.h).
 */
#include "topicstats.h"

#include <stdlib.h>
#include <string.h>

static size_t
s_hash(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)h;
}

int
fy_topicstats_init(fy_topicstats_t *ts, size_t cap)
{
    memset(ts, 0, sizeof *ts);
    ts->cap = cap;
    /* Twice the rows as slots: probes stay short when it is full. */
    if (cap && !(ts->rows = calloc(2 * cap, sizeof *ts->rows)))
        return -1;
    return 0;
}

void
fy_topicstats_free(fy_topicstats_t *ts)
{
    free(ts->rows);
    ts->rows = NULL;
}

/* The slot of @p name, or of the empty slot where it would go; NULL if
 * neither (no rows). */
static fy_topic_counts_t *
s_slot(const fy_topicstats_t *ts, const uint8_t *name, size_t len)
{
    size_t slots = 2 * ts->cap;
    if (!slots || len > FY_NAME_MAX)
        return NULL;
    for (size_t i = s_hash(name, len) % slots, k = 0; k < slots; k++, i = (i + 1) % slots) {
        fy_topic_counts_t *r = &ts->rows[i];
        if (!r->name[0] || (strlen(r->name) == len && memcmp(r->name, name, len) == 0))
            return r;
    }
    return NULL;
}

void
fy_topicstats_add(fy_topicstats_t *ts, fy_bytes_t topic, uint64_t publishes, uint64_t duplicates,
                  uint64_t conflicts)
{
    fy_topic_counts_t *r = s_slot(ts, topic.ptr, topic.len);
    if (r && !r->name[0]) {
        if (ts->used < ts->cap && topic.len) {
            memcpy(r->name, topic.ptr, topic.len);
            r->name[topic.len] = '\0';
            ts->used++;
        } else {
            r = NULL;
        }
    }
    if (!r)
        r = &ts->others;
    r->publishes += publishes;
    r->duplicates += duplicates;
    r->conflicts += conflicts;
}

const fy_topic_counts_t *
fy_topicstats_get(const fy_topicstats_t *ts, const char *topic)
{
    const fy_topic_counts_t *r = s_slot(ts, (const uint8_t *)topic, strlen(topic));
    return r && r->name[0] ? r : NULL;
}

int
fy_substats_init(fy_substats_t *ss, size_t cap)
{
    memset(ss, 0, sizeof *ss);
    ss->cap = cap;
    if (cap && !(ss->rows = calloc(2 * cap, sizeof *ss->rows)))
        return -1;
    return 0;
}

void
fy_substats_free(fy_substats_t *ss)
{
    free(ss->rows);
    ss->rows = NULL;
}

static fy_sub_counts_t *
s_sub_slot(const fy_substats_t *ss, uint64_t id)
{
    size_t slots = 2 * ss->cap;
    if (!slots || !id)
        return NULL;
    for (size_t i = s_hash((const uint8_t *)&id, sizeof id) % slots, k = 0; k < slots;
         k++, i = (i + 1) % slots)
        if (!ss->rows[i].sub_id || ss->rows[i].sub_id == id)
            return &ss->rows[i];
    return NULL;
}

fy_sub_counts_t *
fy_substats_row(fy_substats_t *ss, uint64_t sub_id)
{
    fy_sub_counts_t *r = s_sub_slot(ss, sub_id);
    if (r && !r->sub_id) {
        if (ss->used < ss->cap) {
            r->sub_id = sub_id;
            ss->used++;
        } else {
            r = NULL;
        }
    }
    return r ? r : &ss->others;
}

const fy_sub_counts_t *
fy_substats_get(const fy_substats_t *ss, uint64_t sub_id)
{
    const fy_sub_counts_t *r = s_sub_slot(ss, sub_id);
    return r && r->sub_id ? r : NULL;
}
