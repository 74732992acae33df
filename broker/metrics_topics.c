/* SPDX-License-Identifier: MIT */
/*
 * metrics_topics.c - the per-topic and per-subscription lines of /metrics
 * (docs/operations.md), built on the broker's thread inside a batch (the
 * store's view) and handed to the metrics thread as text. At most
 * --metrics-topics topics (in name order) and FY_BRK_METRICS_SUBS
 * subscriptions each get labels, so that a broker with 100,000 topics does
 * not emit millions of series; how many were left out is said.
 */
#include "broker_int.h"
#include "textout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FY_BRK_METRICS_SUBS 50 /* subscriptions per topic with labels of their own */

static void
s_family(fy_textout_t *o, const char *name, const char *type, const char *help)
{
    fy_textout(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct {
    fy_topic_info_t t;
    fy_sub_entry_t *subs;
    size_t nsubs;
} s_topic_t;

/* The counter of family @p f (3 on) of sf[] below. */
static uint64_t
s_sub_counter(const fy_sub_counts_t *c, size_t f)
{
    if (!c)
        return 0;
    return f == 3   ? c->deliveries
           : f == 4 ? c->redeliveries
           : f == 5 ? c->acks
           : f == 6 ? c->nacks
           : f == 7 ? c->terms
                    : c->dead_letters;
}

/* Family @p f of sf[] below for one subscription. */
static uint64_t
s_sub_value(const fy_broker_t *self, const fy_sub_info_t *in, size_t f)
{
    uint64_t v = 0;
    if (f == 0)
        return in->last_seq >= in->cursor ? in->last_seq - in->cursor + 1 : 0;
    if (f == 1)
        return in->cursor > in->ack_floor + 1 ? in->cursor - 1 - in->ack_floor : 0;
    if (f > 2)
        return s_sub_counter(fy_substats_get(&self->substats, in->id), f);
    for (size_t c = 0; c < self->cons.nlive; c++)
        v += !self->cons.live[c].removed && self->cons.live[c].sub_id == in->id;
    return v;
}

static fy_status_t
s_first(void *user, const fy_stored_t *m)
{
    uint64_t *seq_ts = user;
    seq_ts[0] = m->seq;
    seq_ts[1] = m->ts_ms;
    return FERRY_OK;
}

/* Seconds since the first message above @p in's ack floor was stored, if
 * it was delivered (below the cursor); 0 when nothing waits for an ack. */
static double
s_oldest_unacked(fy_broker_t *self, const char *topic, const fy_sub_info_t *in)
{
    if (in->cursor <= in->ack_floor + 1)
        return 0;
    uint64_t seq_ts[2] = {0, 0};
    size_t count = 0;
    /* Retention may have removed it: the next one stored, if delivered. */
    if (fy_store_read(self->store, fy_bytes_str(topic), in->ack_floor + 1, 1, FY_REPLY_BYTES_MAX,
                      s_first, seq_ts, &count) != FERRY_OK ||
        count == 0 || seq_ts[0] >= in->cursor || seq_ts[1] > self->now_wall_ms)
        return 0;
    return (double)(self->now_wall_ms - seq_ts[1]) / 1000.0;
}

size_t
fy_brk_topic_metrics(fy_broker_t *self, char *buf, size_t cap)
{
    fy_textout_t o = {buf, cap, 0};
    size_t max = self->cfg.metrics_topics, n = 0;
    bool more = false;
    s_topic_t *ts = max ? calloc(max, sizeof *ts) : NULL;
    fy_topic_info_t *infos = max ? calloc(max, sizeof *infos) : NULL;
    if (max && (!ts || !infos ||
                fy_store_topics(self->store, (fy_bytes_t){0}, max, infos, &n, &more) != FERRY_OK))
        n = 0;
    for (size_t i = 0; i < n; i++) {
        ts[i].t = infos[i];
        ts[i].subs = calloc(FY_BRK_METRICS_SUBS, sizeof *ts[i].subs);
        bool sub_more;
        if (!ts[i].subs ||
            fy_store_subs(self->store, fy_bytes_str(infos[i].name), (fy_bytes_t){0},
                          FY_BRK_METRICS_SUBS, ts[i].subs, &ts[i].nsubs, &sub_more) != FERRY_OK)
            ts[i].nsubs = 0;
    }
    static const struct {
        const char *name, *type, *help;
    } tf[] = {
        {"ferry_topic_messages", "gauge", "Messages stored in the topic."},
        {"ferry_topic_bytes", "gauge", "Bytes stored in the topic (payload, key, id, headers)."},
        {"ferry_topic_last_seq", "gauge", "The topic's last sequence."},
        {"ferry_topic_publishes_total", "counter",
         "Messages stored since the broker started (topic=\"_others\": the topics beyond "
         "--metrics-topics)."},
        {"ferry_topic_duplicates_total", "counter",
         "Publishes answered as duplicates (their id within the dedupe window) since start."},
        {"ferry_topic_conflicts_total", "counter",
         "Publishes refused ECONFLICT (expected sequence or key version) since start."},
    };
    for (size_t f = 0; f < sizeof tf / sizeof tf[0]; f++) {
        s_family(&o, tf[f].name, tf[f].type, tf[f].help);
        for (size_t i = 0; i < n; i++) {
            const fy_topic_counts_t *c = fy_topicstats_get(&self->topicstats, ts[i].t.name);
            uint64_t v = f == 0   ? ts[i].t.messages
                         : f == 1 ? ts[i].t.bytes
                         : f == 2 ? ts[i].t.last_seq
                         : !c     ? 0
                         : f == 3 ? c->publishes
                         : f == 4 ? c->duplicates
                                  : c->conflicts;
            fy_textout(&o, "%s{topic=\"%s\"} %llu\n", tf[f].name, ts[i].t.name,
                       (unsigned long long)v);
        }
        if (f >= 3) {
            const fy_topic_counts_t *c = &self->topicstats.others;
            uint64_t v = f == 3 ? c->publishes : f == 4 ? c->duplicates : c->conflicts;
            fy_textout(&o, "%s{topic=\"_others\"} %llu\n", tf[f].name, (unsigned long long)v);
        }
    }
    static const struct {
        const char *name, *type, *help;
    } sf[] = {
        {"ferry_subscription_backlog", "gauge", "Messages of the topic not yet delivered to it."},
        {"ferry_subscription_unacked", "gauge",
         "Messages delivered to it and not all acked (between its ack floor and its cursor)."},
        {"ferry_subscription_consumers", "gauge", "Push consumers attached to it now."},
        {"ferry_subscription_deliveries_total", "counter",
         "Messages delivered to it (fetch or push, first time or again) since start."},
        {"ferry_subscription_redeliveries_total", "counter",
         "Deliveries of a message it had been given before (nack, ack wait passed) since start."},
        {"ferry_subscription_acks_total", "counter", "Messages acked since start."},
        {"ferry_subscription_nacks_total", "counter", "Messages nacked since start."},
        {"ferry_subscription_terms_total", "counter",
         "Messages terminated by a consumer (to the dead letters) since start."},
        {"ferry_subscription_dead_letters_total", "counter",
         "Messages moved to TOPIC.dlq since start: max_deliver passed, or terminated."},
    };
    for (size_t f = 0; f < sizeof sf / sizeof sf[0]; f++) {
        s_family(&o, sf[f].name, sf[f].type, sf[f].help);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < ts[i].nsubs; k++) {
                const fy_sub_info_t *in = &ts[i].subs[k].info;
                fy_textout(&o, "%s{topic=\"%s\",subscription=\"%s\"} %llu\n", sf[f].name,
                           ts[i].t.name, ts[i].subs[k].name,
                           (unsigned long long)s_sub_value(self, in, f));
            }
        if (f >= 3) /* counters of subscriptions beyond the rows */
            fy_textout(&o, "%s{topic=\"_others\",subscription=\"_others\"} %llu\n", sf[f].name,
                       (unsigned long long)s_sub_counter(&self->substats.others, f));
    }
    s_family(&o, "ferry_subscription_oldest_unacked_seconds", "gauge",
             "Age of the first message above its ack floor, given to it and not acked (0: none).");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < ts[i].nsubs; k++)
            fy_textout(&o,
                       "ferry_subscription_oldest_unacked_seconds{topic=\"%s\",subscription=\"%s\"}"
                       " %.3f\n",
                       ts[i].t.name, ts[i].subs[k].name,
                       s_oldest_unacked(self, ts[i].t.name, &ts[i].subs[k].info));
    s_family(&o, "ferry_metrics_topics_omitted", "gauge",
             "1 if topics beyond --metrics-topics have no lines of their own here.");
    fy_textout(&o, "ferry_metrics_topics_omitted %d\n", more ? 1 : 0);
    for (size_t i = 0; i < n; i++)
        free(ts[i].subs);
    free(ts);
    free(infos);
    return o.n;
}
