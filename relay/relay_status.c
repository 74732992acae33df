/* SPDX-License-Identifier: MIT */
/*
 * relay_status.c - a relay's reports to `_ferry.relay` (relay_status.h).
 */
#include "relay_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WINDOW 4 /* reports without an answer before one is skipped */

struct fr_status {
    const fr_config_t *cfg;
    char name[256];
    ferry_client_t *c;
    bool declared;
    uint64_t failed;
    ferry_status_t last;   /* the last outcome: FERRY_OK or why it failed */
    ferry_status_t told;   /* the outcome last returned as a change */
    char last_detail[200]; /* the broker's sentence for `last` */
};

fr_status_t *
fr_status_new(const fr_config_t *cfg, const char *name)
{
    fr_status_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cfg = cfg;
    snprintf(self->name, sizeof self->name, "%s", name);
    return self;
}

static void
s_outcome(fr_status_t *self, ferry_status_t st)
{
    if (st != FERRY_OK) {
        self->failed++;
        if (self->c)
            snprintf(self->last_detail, sizeof self->last_detail, "%s",
                     ferry_client_last_error(self->c));
    }
    self->last = st;
}

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    s_outcome(user, cf->status);
}

/* Its connection: the relay's broker and credentials, retrying in the
 * background (a broker away now is one later). */
static ferry_status_t
s_connect(fr_status_t *self)
{
    ferry_options_t *o = ferry_options_new();
    char cname[300];
    snprintf(cname, sizeof cname, "ferry-relay-status:%s", self->name);
    ferry_status_t st = FERRY_ENOMEM;
    if (o && ferry_options_set_server(o, self->cfg->broker) == FERRY_OK &&
        ferry_options_set_name(o, cname) == FERRY_OK &&
        ferry_options_set_timeout_ms(o, 2000) == FERRY_OK &&
        ferry_options_set_window(o, S_WINDOW) == FERRY_OK &&
        ferry_options_set_block_on_full(o, false) == FERRY_OK &&
        ferry_options_set_retry_connect(o, true) == FERRY_OK && !fr_relay_security(self->cfg, o))
        st = ferry_client_new(o, &self->c);
    ferry_options_destroy(&o);
    return st;
}

/* Declares the topic once: an hour of reports, old ones go first. */
static ferry_status_t
s_declare(fr_status_t *self)
{
    ferry_topic_config_t tc = {.max_age_ms = 3600 * 1000};
    ferry_status_t st =
        ferry_client_declare(self->c, FERRY_KIND_TOPIC, FR_STATUS_TOPIC, &tc, NULL, NULL);
    self->declared = st == FERRY_OK || st == FERRY_EEXISTS;
    return self->declared ? FERRY_OK : st;
}

static ferry_status_t
s_publish(fr_status_t *self, const fr_relay_report_t *rep)
{
    char v[9][32], line[512];
    snprintf(v[0], sizeof v[0], "%s", rep->kind);
    snprintf(v[1], sizeof v[1], "%s", rep->state);
    snprintf(v[2], sizeof v[2], "%llu", (unsigned long long)rep->lag_rows);
    snprintf(v[3], sizeof v[3], "%llu", (unsigned long long)rep->lag_bytes);
    snprintf(v[4], sizeof v[4], "%.1f", rep->lag_s);
    snprintf(v[5], sizeof v[5], "%llu", (unsigned long long)rep->published);
    snprintf(v[6], sizeof v[6], "%llu", (unsigned long long)rep->duplicates);
    snprintf(v[7], sizeof v[7], "%llu", (unsigned long long)rep->dead_lettered);
    snprintf(v[8], sizeof v[8], "%llu", (unsigned long long)rep->retries);
    static const char *const names[9] = {"kind",       "state",         "lag_rows",
                                         "lag_bytes",  "lag_s",         "published",
                                         "duplicates", "dead_lettered", "retries"};
    ferry_header_t h[9];
    int n = snprintf(line, sizeof line, "source=%s", self->name);
    for (size_t i = 0; i < 9; i++) {
        h[i] = (ferry_header_t){names[i], v[i]};
        if (n > 0 && (size_t)n < sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, " %s=%s", names[i], v[i]);
    }
    ferry_message_t m = {.data = line,
                         .len = n > 0 && (size_t)n < sizeof line ? (size_t)n : strlen(line),
                         .key = self->name,
                         .headers = h,
                         .header_count = 9};
    return ferry_client_publish_async(self->c, FR_STATUS_TOPIC, &m, s_on_confirm, self);
}

bool
fr_status_send(fr_status_t *self, const fr_relay_report_t *rep, char *note, size_t cap,
               bool *failing)
{
    ferry_status_t st = FERRY_OK;
    if (!self->c && (st = s_connect(self)) != FERRY_OK) {
        snprintf(self->last_detail, sizeof self->last_detail, "cannot make a connection");
    } else {
        ferry_client_poll(self->c, 0); /* the answers to earlier reports */
        if (!self->declared)
            st = s_declare(self);
        if (st == FERRY_OK && ferry_client_in_flight(self->c) >= S_WINDOW)
            st = FERRY_ETIMEOUT; /* the earlier ones are still unanswered */
        if (st == FERRY_OK)
            st = s_publish(self, rep);
        if (st == FERRY_ENOTFOUND) /* deleted: made again next time */
            self->declared = false;
    }
    if (st != FERRY_OK)
        s_outcome(self, st);
    if (self->last == self->told)
        return false;
    self->told = self->last;
    *failing = self->last != FERRY_OK;
    if (*failing)
        snprintf(note, cap, "topic=%s code=%s detail=\"%s\"", FR_STATUS_TOPIC,
                 ferry_errname(self->last), self->last_detail);
    else
        snprintf(note, cap, "topic=%s", FR_STATUS_TOPIC);
    return true;
}

uint64_t
fr_status_failed(const fr_status_t *self)
{
    return self ? self->failed : 0;
}

void
fr_status_free(fr_status_t **self)
{
    if (!self || !*self)
        return;
    if ((*self)->c) {
        ferry_client_flush((*self)->c, 500);
        ferry_client_destroy(&(*self)->c);
    }
    free(*self);
    *self = NULL;
}
