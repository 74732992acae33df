/*
 * main.c - ferry-relay: publishes a service's outbox rows to ferryd exactly
 * once, in order per aggregate (docs/outbox.md).
 *
 *   ferry-relay --source sqlite:PATH|lmdb:DIR [--table outbox] [--name NAME]
 *               [--broker EP] [--topic-template T] [--on-publish keep|delete]
 *               [--on-poison dlq|stop] [--dlq-topic T] [--poll-ms N] [--batch N]
 *               [--dedupe-window-ms N] [--stats-ms N]
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT, 1 fatal error (logged), 2 usage.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: ferry-relay --source sqlite:PATH|lmdb:DIR [options]\n"
            "  --source KIND:LOCATION   the outbox: sqlite:/path/to/app.db, or lmdb:/path/to/env\n"
            "                           (the service's LMDB environment, ferry_outbox.h)\n"
            "  --table NAME             outbox table (default outbox)\n"
            "  --name NAME              source name: position key and message id prefix\n"
            "                           (default: the source kind)\n"
            "  --broker EP              ferryd endpoint (default $FERRY_SERVER or\n"
            "                           tcp://127.0.0.1:5555)\n"
            "  --topic-template T       topic per row, {aggregate_type} replaced\n"
            "                           (default {aggregate_type})\n"
            "  --on-publish keep|delete keep published rows (position only) or delete them\n"
            "  --on-poison dlq|stop     a row the broker refuses for good: dead-letter it\n"
            "                           (default) or stop\n"
            "  --dlq-topic T            dead-letter topic (default ferry-relay.dlq)\n"
            "  --poll-ms N              idle wait between reads (default 20)\n"
            "  --batch N                rows per read, 1-1000 (default 1000)\n"
            "  --dedupe-window-ms N     dedupe window of topics the relay creates\n"
            "                           (default 86400000: a day of restarts)\n"
            "  --stats-ms N             stats log interval (default 10000)\n");
}

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static bool
s_num(const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

int
main(int argc, char **argv)
{
    const char *env = getenv("FERRY_SERVER");
    fr_config_t cfg = {.broker = env ? env : "tcp://127.0.0.1:5555",
                       .table = "outbox",
                       .topic_template = "{aggregate_type}",
                       .on_poison = FR_POISON_DLQ,
                       .dlq_topic = "ferry-relay.dlq",
                       .poll_ms = 20,
                       .batch = 1000,
                       .dedupe_window_ms = 86400000,
                       .stats_ms = 10000};
    const char *source = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "ferry-relay: %s wants a value (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--source"))
            source = v;
        else if (!strcmp(a, "--table"))
            cfg.table = v;
        else if (!strcmp(a, "--name"))
            cfg.name = v;
        else if (!strcmp(a, "--broker"))
            cfg.broker = v;
        else if (!strcmp(a, "--topic-template"))
            cfg.topic_template = v;
        else if (!strcmp(a, "--dlq-topic"))
            cfg.dlq_topic = v;
        else if (!strcmp(a, "--on-publish") && (!strcmp(v, "keep") || !strcmp(v, "delete")))
            cfg.delete_published = v[0] == 'd';
        else if (!strcmp(a, "--on-poison") && (!strcmp(v, "dlq") || !strcmp(v, "stop")))
            cfg.on_poison = v[0] == 's' ? FR_POISON_STOP : FR_POISON_DLQ;
        else if (!strcmp(a, "--poll-ms") && s_num(v, 1, 60000, &x))
            cfg.poll_ms = (int)x;
        else if (!strcmp(a, "--batch") && s_num(v, 1, 1000, &x))
            cfg.batch = (size_t)x;
        else if (!strcmp(a, "--dedupe-window-ms") && s_num(v, 1000, 365LL * 86400000, &x))
            cfg.dedupe_window_ms = (uint64_t)x;
        else if (!strcmp(a, "--stats-ms") && s_num(v, 100, 3600000, &x))
            cfg.stats_ms = (int)x;
        else {
            fprintf(stderr, "ferry-relay: bad option %s %s (see --help)\n", a, v);
            return 2;
        }
    }
    if (!source) {
        fprintf(stderr, "ferry-relay: --source is required (see --help)\n");
        return 2;
    }
    const char *colon = strchr(source, ':');
    if (colon && (size_t)(colon - source) == 6 && !strncmp(source, "sqlite", 6)) {
        cfg.ops = &fr_sqlite_source;
        cfg.location = colon + 1;
    } else if (colon && (size_t)(colon - source) == 4 && !strncmp(source, "lmdb", 4)) {
        cfg.ops = &fr_lmdb_source;
        cfg.location = colon + 1;
    } else {
        fprintf(stderr, "ferry-relay: unknown source '%s' (sqlite:PATH or lmdb:DIR)\n", source);
        return 2;
    }
    if (!cfg.name)
        cfg.name = cfg.ops->kind;
    if (!*cfg.location || strlen(cfg.name) > 200) {
        fprintf(stderr, "ferry-relay: empty source location or name too long\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return fr_relay_run(&cfg, &s_stop);
}
