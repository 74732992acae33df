/* SPDX-License-Identifier: MIT */
/*
 * soak.c - Ferry under mixed load for a long time, with every process killed
 * at random (issue 15; `make soak SOAK_MINUTES=N`, not part of make test).
 *
 * - a producer publishes 256-byte messages with ids into a work queue, 20,000
 *   a second, and records every confirm;
 * - a push consumer acks what it gets (acked messages leave the queue, so
 *   the store stays bounded) and records every delivery;
 * - a service writes 1,000 outbox rows a second into SQLite, and ferry-relay
 *   publishes them to topic "orders";
 * - every 20-40 s ferryd or ferry-relay is killed with kill -9 and started
 *   again.
 *
 * Every 10 s it prints a line: minute, publishes/s, deliveries/s, relay rows/s,
 * ferryd's anonymous memory (its heap and queues; the map's file pages are
 * not counted), the data file's allocated size, kills so far. At the end it stops the
 * load, lets everything drain, and checks the history: every confirmed
 * publish delivered (confirmed within delivered; more than once only as
 * at-least-once allows), every outbox row in the broker exactly once. Exit 0
 * when the verdict is clean.
 */
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "harness.h"

#define S_MAX  (200u * 1000 * 1000) /* messages at most (bitmaps) */
#define S_RATE 20000                /* publishes a second: a steady load, not a race */

static atomic_int s_stop_load, s_stop_consumer;
static atomic_ullong s_published, s_confirmed, s_delivered, s_dups, s_rows;
static uint8_t *s_confirmed_map, *s_delivered_map;
static const char *s_endpoint;

static ferry_client_t *
s_client(int timeout_ms)
{
    ferry_options_t *o = ferry_options_new();
    ferry_client_t *c = NULL;
    if (ferry_options_set_server(o, s_endpoint) == FERRY_OK &&
        ferry_options_set_timeout_ms(o, timeout_ms) == FERRY_OK &&
        ferry_options_set_heartbeat_ms(o, 1000) == FERRY_OK &&
        ferry_options_set_reconnect(o, 50, 1000, 20) == FERRY_OK)
        ferry_client_new(o, &c);
    ferry_options_destroy(&o);
    return c;
}

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *cf, void *user)
{
    (void)c;
    uint64_t k = (uint64_t)(uintptr_t)user;
    if (cf->status == FERRY_OK && k < S_MAX && !s_confirmed_map[k]) {
        s_confirmed_map[k] = 1;
        atomic_fetch_add(&s_confirmed, 1);
    }
}

static void *
s_producer(void *arg)
{
    (void)arg;
    ferry_client_t *c = s_client(5000);
    char payload[256];
    memset(payload, 'p', sizeof payload);
    long long start = fy_now_ms();
    for (uint64_t k = 0; k < S_MAX && !atomic_load(&s_stop_load);) {
        if (k % 100 == 0) { /* on schedule: S_RATE a second */
            long long due = start + (long long)(k / (S_RATE / 1000));
            if (due > fy_now_ms()) {
                ferry_client_poll(c, (int)(due - fy_now_ms()));
                continue;
            }
        }
        char id[24];
        snprintf(id, sizeof id, "m%llu", (unsigned long long)k);
        ferry_message_t m = {.data = payload, .len = sizeof payload, .id = id};
        if (ferry_client_publish_async(c, "soak", &m, s_on_confirm, (void *)(uintptr_t)k) !=
            FERRY_OK)
            continue; /* the broker is away: the window waits */
        atomic_store(&s_published, ++k);
    }
    ferry_client_flush(c, 60000);
    ferry_client_destroy(&c);
    return NULL;
}

static ferry_msg_action_t
s_on_msg(ferry_client_t *c, const ferry_stored_message_t *m, void *user)
{
    (void)c, (void)user;
    unsigned long long k = strtoull(m->id + 1, NULL, 10);
    if (k < S_MAX) {
        if (s_delivered_map[k])
            atomic_fetch_add(&s_dups, 1);
        else
            atomic_fetch_add(&s_delivered, 1);
        s_delivered_map[k] = 1;
    }
    return FERRY_MSG_ACK;
}

static void *
s_consumer(void *arg)
{
    (void)arg;
    ferry_client_t *c = s_client(5000);
    uint64_t consumer;
    while (ferry_client_subscribe(c, "soak", "", 1000, s_on_msg, NULL, &consumer) != FERRY_OK &&
           !atomic_load(&s_stop_consumer))
        ferry_client_poll(c, 200);
    while (!atomic_load(&s_stop_consumer))
        ferry_client_poll(c, 100);
    ferry_client_destroy(&c);
    return NULL;
}

/* The service: 1,000 outbox rows a second, ten per 10 ms. */
static void *
s_service(void *arg)
{
    sqlite3 *db;
    if (sqlite3_open((const char *)arg, &db) != SQLITE_OK)
        return NULL;
    sqlite3_busy_timeout(db, 10000);
    long long next = fy_now_ms();
    while (!atomic_load(&s_stop_load)) {
        char sql[256];
        sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        for (int i = 0; i < 10; i++) {
            snprintf(sql, sizeof sql,
                     "INSERT INTO outbox(aggregate_type, aggregate_id, event_type, payload) "
                     "VALUES('orders', 'o-%llu', 'placed', CAST('row' AS BLOB))",
                     (unsigned long long)(atomic_load(&s_rows) % 100));
            if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
                atomic_fetch_add(&s_rows, 1);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        next += 10;
        long long wait = next - fy_now_ms();
        if (wait > 0)
            fy_sleep_ms((int)wait);
    }
    sqlite3_close(db);
    return NULL;
}

static long
s_rss_kib(int pid)
{
    return fy_proc_kib(pid, "RssAnon");
}

static int
s_relay(const char *db, const char *log)
{
    char source[400];
    snprintf(source, sizeof source, "sqlite:%s", db);
    const char *argv[] = {
        getenv("FERRY_RELAY"), "--source", source, "--broker", s_endpoint, "--name", "soak",
        "--stats-ms",          "60000",    NULL};
    return fy_spawn(log, argv);
}

static uint64_t
s_topic_messages(ferry_client_t *c, const char *topic)
{
    ferry_topic_info_t info;
    return ferry_client_info(c, topic, &info) == FERRY_OK ? info.messages : 0;
}

int
main(void)
{
    int minutes = getenv("SOAK_MINUTES") ? atoi(getenv("SOAK_MINUTES")) : 5;
    s_confirmed_map = calloc(S_MAX, 1);
    s_delivered_map = calloc(S_MAX, 1);
    fy_ferryd_t d = {0};
    if (!s_confirmed_map || !s_delivered_map || fy_ferryd_start(&d) != 0)
        return 2;
    s_endpoint = d.endpoint;
    ferry_client_t *admin = s_client(10000);
    ferry_client_declare(admin, FERRY_KIND_QUEUE, "soak", NULL, NULL, NULL);
    char db[400], relay_log[400], cmd[1200], out[256];
    snprintf(db, sizeof db, "%s/outbox.db", d.dir);
    snprintf(relay_log, sizeof relay_log, "%s/relay.log", d.dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' < '%s/outbox-relay/sql/sqlite.sql' >/dev/null", db,
             getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".");
    if (fy_run(cmd, out, sizeof out) != 0)
        return 2;
    int relay = s_relay(db, relay_log);
    pthread_t tp, tc, ts;
    pthread_create(&tp, NULL, s_producer, NULL);
    pthread_create(&tc, NULL, s_consumer, NULL);
    pthread_create(&ts, NULL, s_service, db);
    printf("soak: %d minutes; ferryd %s, data %s\n", minutes, d.endpoint, d.dir);
    printf("%6s %10s %10s %10s %9s %10s %6s\n", "min", "publish/s", "deliver/s", "rows/s",
           "anon_kib", "data_kib", "kills");
    long long start = fy_now_ms(), end = start + minutes * 60000LL, next_kill = start + 20000,
              next_report = start + 10000;
    unsigned long long last_pub = 0, last_del = 0, last_rows = 0;
    int kills = 0;
    srand((unsigned)getpid());
    while (fy_now_ms() < end) {
        fy_sleep_ms(100);
        long long now = fy_now_ms();
        if (now >= next_kill) {
            if (rand() % 2) {
                fy_ferryd_signal(&d, SIGKILL);
                fy_ferryd_start(&d);
            } else {
                fy_kill_wait(relay, SIGKILL);
                relay = s_relay(db, relay_log);
            }
            kills++;
            next_kill = now + 20000 + rand() % 20000;
        }
        if (now >= next_report) {
            unsigned long long pub = atomic_load(&s_confirmed), del = atomic_load(&s_delivered),
                               rows = atomic_load(&s_rows);
            struct stat st;
            char data[400];
            snprintf(data, sizeof data, "%s/data/data.mdb", d.dir);
            long data_kib = stat(data, &st) == 0 ? (long)(st.st_blocks / 2) : -1;
            printf("%6.1f %10llu %10llu %10llu %9ld %10ld %6d\n", (double)(now - start) / 60000.0,
                   (pub - last_pub) / 10, (del - last_del) / 10, (rows - last_rows) / 10,
                   s_rss_kib(d.pid), data_kib, kills);
            fflush(stdout);
            last_pub = pub, last_del = del, last_rows = rows;
            next_report += 10000;
        }
    }
    /* Drain: no more load, everything confirmed is delivered, every row is
     * in the broker. */
    atomic_store(&s_stop_load, 1);
    pthread_join(tp, NULL);
    pthread_join(ts, NULL);
    unsigned long long rows = atomic_load(&s_rows);
    long long until = fy_now_ms() + 120000;
    while (fy_now_ms() < until && (atomic_load(&s_delivered) < atomic_load(&s_confirmed) ||
                                   s_topic_messages(admin, "orders") < rows))
        fy_sleep_ms(200);
    atomic_store(&s_stop_consumer, 1);
    pthread_join(tc, NULL);
    fy_kill_wait(relay, SIGTERM);
    unsigned long long lost = 0;
    for (uint64_t k = 0; k < S_MAX; k++)
        lost += s_confirmed_map[k] && !s_delivered_map[k];
    uint64_t stored_rows = s_topic_messages(admin, "orders");
    printf("verdict: %llu published, %llu confirmed, %llu delivered (%llu again: at-least-once), "
           "%llu confirmed never delivered; %llu outbox rows, %llu in the broker; %d kills\n",
           (unsigned long long)atomic_load(&s_published),
           (unsigned long long)atomic_load(&s_confirmed),
           (unsigned long long)atomic_load(&s_delivered), (unsigned long long)atomic_load(&s_dups),
           lost, rows, (unsigned long long)stored_rows, kills);
    bool ok = lost == 0 && stored_rows == rows;
    printf("%s\n", ok ? "soak: clean" : "soak: PROMISES BROKEN");
    ferry_client_destroy(&admin);
    fy_ferryd_signal(&d, SIGTERM);
    fy_ferryd_cleanup(&d);
    free(s_confirmed_map);
    free(s_delivered_map);
    return ok ? 0 : 1;
}
