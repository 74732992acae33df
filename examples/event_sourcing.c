/* SPDX-License-Identifier: MIT */
/*
 * event_sourcing.c - bank accounts as event-sourced aggregates on one Ferry
 * topic (docs/event-sourcing.md).
 *
 * Several writer threads handle random commands (deposit, withdraw) for a
 * few accounts at once. Each rebuilds the account from its events (read by
 * key, from where its cache stopped), decides, and appends the new event
 * with the version it read as the expected version: when another writer got
 * there first the broker answers ECONFLICT and the writer reads again and
 * retries. A withdrawal never overdraws, because a decision is only stored
 * if nothing happened to the account since it was made. A projection (a
 * durable subscription from the first event) keeps balances on the side,
 * skipping events it has seen (by key version).
 *
 *   event_sourcing [BROKER] [ACCOUNTS] [WRITERS] [COMMANDS_PER_WRITER]
 *
 * Prints the balances' check and how many appends conflicted; exits 1 if a
 * balance went negative or the projection disagrees with the events.
 */
#define _POSIX_C_SOURCE 200809L /* rand_r: built outside the tree too */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry.h"

#define TOPIC        "accounts"
#define MAX_ACCOUNTS 1000

typedef struct {
    const char *broker;
    int accounts, commands, seed;
    atomic_long *conflicts, *refused;
    int failed;
} writer_t;

typedef struct {
    uint64_t version;
    long balance;
} account_t;

static ferry_client_t *
connect_to(const char *broker)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    if (broker)
        ferry_options_set_server(o, broker);
    if (ferry_client_new(o, &c) != FERRY_OK)
        c = NULL;
    ferry_options_destroy(&o);
    return c;
}

/* An event's effect: "+N" deposit, "-N" withdrawal. */
static long
effect(const ferry_stored_message_t *ev)
{
    char buf[32];
    size_t n = ev->len < sizeof buf - 1 ? ev->len : sizeof buf - 1;
    memcpy(buf, ev->data, n);
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* Brings @p a up to date with the account's events after its version. */
static ferry_status_t
catch_up(ferry_client_t *c, const char *key, account_t *a)
{
    ferry_key_iter_t *it;
    ferry_status_t st = ferry_client_read_key(c, TOPIC, key, a->version + 1, 0, &it);
    if (st != FERRY_OK)
        return st;
    const ferry_stored_message_t *ev;
    while ((st = ferry_key_iter_next(it, &ev)) == FERRY_OK && ev) {
        a->balance += effect(ev);
        a->version = ev->key_version;
    }
    ferry_key_iter_destroy(&it);
    return st;
}

static void *
write_commands(void *arg)
{
    writer_t *w = arg;
    ferry_client_t *c = connect_to(w->broker);
    account_t *cache = calloc((size_t)w->accounts, sizeof *cache);
    unsigned seed = (unsigned)w->seed;
    if (!c || !cache) {
        w->failed = 1;
        goto out;
    }
    for (int i = 0; i < w->commands && !w->failed; i++) {
        int acc = (int)(rand_r(&seed) % (unsigned)w->accounts);
        long amount = 1 + rand_r(&seed) % 100;
        bool deposit = rand_r(&seed) % 2 == 0;
        char key[32], data[32];
        snprintf(key, sizeof key, "account-%d", acc);
        for (;;) { /* decide on the latest state; on a conflict, again */
            account_t *a = &cache[acc];
            if (catch_up(c, key, a) != FERRY_OK) {
                w->failed = 1;
                break;
            }
            if (!deposit && a->balance < amount) {
                atomic_fetch_add(w->refused, 1); /* no event: nothing happened */
                break;
            }
            int len = snprintf(data, sizeof data, "%c%ld", deposit ? '+' : '-', amount);
            ferry_message_t ev = {.data = data,
                                  .len = (size_t)len,
                                  .key = key,
                                  .expect = FERRY_EXPECT_KEY_VERSION,
                                  .expect_key_version = a->version};
            ferry_confirm_t cf;
            ferry_status_t st = ferry_client_publish(c, TOPIC, &ev, &cf);
            if (st == FERRY_OK)
                break; /* the next catch_up reads it back */
            if (st != FERRY_ECONFLICT) {
                w->failed = 1;
                break;
            }
            atomic_fetch_add(w->conflicts, 1);
        }
    }
out:
    free(cache);
    ferry_client_destroy(&c);
    return NULL;
}

/* The projection: balances from the event stream, each event once. */
typedef struct {
    account_t acc[MAX_ACCOUNTS];
    uint64_t applied;
} projection_t;

static ferry_msg_action_t
project(ferry_client_t *c, const ferry_stored_message_t *ev, void *user)
{
    (void)c;
    projection_t *p = user;
    int i = ev->key ? atoi(ev->key + strlen("account-")) : -1;
    if (i < 0 || i >= MAX_ACCOUNTS)
        return FERRY_MSG_ACK;
    if (ev->key_version > p->acc[i].version) { /* a redelivery is skipped */
        p->acc[i].balance += effect(ev);
        p->acc[i].version = ev->key_version;
        p->applied++;
    }
    return FERRY_MSG_ACK;
}

int
main(int argc, char **argv)
{
    const char *broker = argc > 1 ? argv[1] : NULL;
    int accounts = argc > 2 ? atoi(argv[2]) : 20, writers = argc > 3 ? atoi(argv[3]) : 4;
    int commands = argc > 4 ? atoi(argv[4]) : 500;
    if (accounts < 1 || accounts > MAX_ACCOUNTS || writers < 1 || writers > 64 || commands < 0) {
        fprintf(stderr, "usage: event_sourcing [BROKER] [ACCOUNTS] [WRITERS] [COMMANDS]\n");
        return 2;
    }
    ferry_client_t *c = connect_to(broker);
    if (!c || ferry_client_declare(c, FERRY_KIND_TOPIC, TOPIC, NULL, NULL, NULL) != FERRY_OK) {
        fprintf(stderr, "event_sourcing: cannot reach the broker\n");
        return 1;
    }
    atomic_long conflicts = 0, refused = 0;
    writer_t w[64];
    pthread_t th[64];
    for (int i = 0; i < writers; i++) {
        w[i] = (writer_t){broker, accounts, commands, i * 7919 + 1, &conflicts, &refused, 0};
        pthread_create(&th[i], NULL, write_commands, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < writers; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
    }
    /* Every account from its events: never below zero. */
    long total = 0, negative = 0;
    uint64_t events = 0;
    account_t *truth = calloc((size_t)accounts, sizeof *truth);
    for (int i = 0; i < accounts && truth; i++) {
        char key[32];
        snprintf(key, sizeof key, "account-%d", i);
        if (catch_up(c, key, &truth[i]) != FERRY_OK)
            failed = 1;
        total += truth[i].balance;
        negative += truth[i].balance < 0;
        events += truth[i].version;
    }
    /* The projection, built from the first event (a new subscription per
     * run, so a second run rebuilds it too), must agree. */
    static projection_t proj;
    ferry_sub_config_t sc = {.start = "first"};
    char sub[64];
    snprintf(sub, sizeof sub, "balances-%ld", (long)getpid());
    if (ferry_client_sub_declare(c, TOPIC, sub, &sc, NULL) != FERRY_OK ||
        ferry_client_subscribe(c, TOPIC, sub, 1000, project, &proj, NULL) != FERRY_OK)
        failed = 1;
    for (int turns = 0; !failed && proj.applied < events && turns < 600; turns++)
        ferry_client_poll(c, 50);
    long mismatched = 0;
    for (int i = 0; i < accounts && truth; i++)
        mismatched += proj.acc[i].balance != truth[i].balance;
    printf("%" PRIu64 " events over %d accounts, total %ld; %ld negative balances, %ld "
           "projection mismatches; %ld appends conflicted and were retried, %ld withdrawals "
           "refused\n",
           events, accounts, total, negative, mismatched, (long)conflicts, (long)refused);
    free(truth);
    ferry_client_destroy(&c);
    return failed || negative || mismatched || proj.applied != events ? 1 : 0;
}
