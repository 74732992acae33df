/* SPDX-License-Identifier: MIT */
/*
 * backends.h - what bench_compare's workloads need from a message system,
 * implemented for Ferry (libferry) and Redis Streams (hiredis), so that the
 * same workload code measures both (bench/README.md).
 *
 * A backend connection is used by one thread. Messages are opaque payloads;
 * the workloads put a sequence number and a send time in them.
 */
#ifndef BENCH_BACKENDS_H
#define BENCH_BACKENDS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct bk_conn bk_conn_t;

/** Called for each message a consumer receives (before it is acked). */
typedef void (*bk_msg_fn)(void *user, const void *data, size_t len);

typedef struct bk_ops {
    const char *name;
    /** Connects; NULL on failure (a message on stderr). */
    bk_conn_t *(*connect)(const char *endpoint, size_t window);
    /** Makes `stream` fresh: a work queue (nsubs 0) or a topic with `nsubs`
     *  durable subscriptions / consumer groups named "g0".."g<nsubs-1>". */
    int (*setup)(bk_conn_t *c, const char *stream, int nsubs);
    /** Publishes durably-confirmed-later: returns once it is sent and the
     *  window of unconfirmed messages has room. */
    int (*send)(bk_conn_t *c, const char *stream, const void *data, size_t len);
    /** Takes confirms that arrived, without waiting. */
    int (*pump)(bk_conn_t *c);
    /** Waits until every sent message is confirmed. */
    int (*flush)(bk_conn_t *c);
    size_t (*confirmed)(bk_conn_t *c);
    /** Receives up to `max` messages of subscription `sub` (-1: the queue),
     *  waiting up to `wait_ms` for the first, calls fn for each and acks them.
     *  @return messages received, or -1 on failure. */
    long (*consume)(bk_conn_t *c, const char *stream, int sub, size_t max, int wait_ms,
                    bk_msg_fn fn, void *user);
    /** Makes sure the acks sent so far have landed. */
    int (*settle)(bk_conn_t *c);
    void (*close)(bk_conn_t *c);
} bk_ops_t;

extern const bk_ops_t bk_ferry;
extern const bk_ops_t bk_redis;

/** A redis-server child on a fresh directory and a free loopback port. */
typedef struct bk_redis_server {
    pid_t pid;
    char dir[256];
    char endpoint[64]; /* "127.0.0.1:PORT" */
} bk_redis_server_t;

/** Starts redis-server with `appendfsync` = "always" or "everysec" (AOF on,
 *  no RDB snapshots). @return 0, or -1 with a message (redis-server missing). */
int bk_redis_start(bk_redis_server_t *s, const char *appendfsync);
void bk_redis_stop(bk_redis_server_t *s);

#endif
