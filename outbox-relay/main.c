/* SPDX-License-Identifier: MIT */
/*
 * main.c - ferry-relay: publishes services' outbox rows to ferryd exactly
 * once, in order per aggregate (docs/outbox.md). One source from flags, or
 * several from an INI file (--config), each relayed by its own thread and
 * connection.
 *
 *   ferry-relay --source sqlite:PATH|lmdb:DIR [options]
 *   ferry-relay --config FILE [options that override the file]
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT, 1 a source failed (logged),
 * 2 usage or configuration error.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "redact.h"
#include "relay_metrics.h"
#include "wire_limits.h"

#define S_SOURCES_MAX 32

static void
s_usage(FILE *out)
{
    fprintf(out,
            "usage: ferry-relay --source sqlite:PATH|lmdb:DIR|pg:CONNINFO|pg-logical:CONNINFO\n"
            "                   [options]\n"
            "       ferry-relay --config FILE [options]\n"
            "       ferry-relay --help | --version\n"
            "  --source KIND:LOCATION   the outbox: sqlite:/path/to/app.db, or lmdb:/path/to/env\n"
            "                           (the service's LMDB environment, ferry_outbox.h), or\n"
            "                           pg:'host=... dbname=...' (PostgreSQL, polling), or\n"
            "                           pg-logical:'host=... dbname=...' (PostgreSQL, tailing\n"
            "                           the log through a logical replication slot)\n"
            "  --setup                  open every source, make what the relay needs there\n"
            "                           (position table, pg-logical publication and slot),\n"
            "                           then exit: run it before the services write\n"
            "  --config FILE            INI file: [relay] settings for all sources, then one\n"
            "                           [source NAME] section per source (docs/outbox.md);\n"
            "                           options given as well override the file\n"
            "  --table NAME             outbox table (default outbox)\n"
            "  --name NAME              source name: position key and message id prefix\n"
            "                           (default: KIND-<identity>, 8 hex digits kept in\n"
            "                           the outbox database; KIND alone where a position\n"
            "                           was recorded under it by an older ferry-relay)\n"
            "  --rename-from OLD        move the position recorded under OLD to --name:\n"
            "                           a renamed source goes on where it stopped (stop it\n"
            "                           with SIGTERM first; docs/outbox.md)\n"
            "  --server-key KEY|@FILE   ferryd's CURVE public key (default $FERRY_SERVER_KEY)\n"
            "  --client-key FILE        this relay's CURVE secret key file, a user of ferryd's\n"
            "                           users file (default $FERRY_CLIENT_KEY)\n"
            "  --user NAME              or a password user (default $FERRY_USER) ...\n"
            "  --password-file FILE     ... whose password is this file's first line (mode 600;\n"
            "                           default $FERRY_PASSWORD)\n"
            "  --server EP              ferryd: HOST:PORT or tcp://HOST:PORT (--broker, the\n"
            "                           old name, works too; default $FERRY_SERVER or\n"
            "                           " FY_DEFAULT_ENDPOINT ")\n"
            "  --topic-template T       topic per row, {aggregate_type} replaced\n"
            "                           (default {aggregate_type})\n"
            "  --on-publish keep|delete keep published rows (position only) or delete them\n"
            "  --slot NAME              pg-logical: replication slot, created when missing\n"
            "                           (default ferry_relay_<name>)\n"
            "  --publication NAME       pg-logical: publication of the outbox table, created\n"
            "                           when missing (default ferry_outbox)\n"
            "  --on-poison dlq|stop     a row the broker refuses for good: dead-letter it\n"
            "                           (default) or stop\n"
            "  --dlq-topic T            dead-letter topic (default ferry-relay.dlq)\n"
            "  --poll-ms N              idle wait between reads (default 20)\n"
            "  --batch N                rows per read, 1-1000 (default 1000)\n"
            "  --dedupe-window-ms N     dedupe window of topics the relay creates\n"
            "                           (default 86400000: a day of restarts)\n"
            "  --stats-ms N             stats log interval (default 10000)\n"
            "  --metrics HOST:PORT      serve /metrics (Prometheus: per source its lag in rows,\n"
            "                           bytes and seconds, published, duplicates, dead-lettered,\n"
            "                           retries, state) and /health over HTTP\n"
            "  --stuck-error-ms N       rows refused this long (a deleted topic, a full\n"
            "                           broker) are logged as errors, not warnings\n"
            "                           (default 300000; every refusal is logged at once\n"
            "                           and every minute after)\n");
}

static atomic_int s_stop; /* lock-free, so safe to set from a signal handler */

static void
s_on_signal(int sig)
{
    (void)sig;
    atomic_store(&s_stop, 1);
}

typedef struct {
    fr_source_cfg_t *c;
    int rc;
    pthread_t th;
} s_worker_t;

static void *
s_run(void *arg)
{
    s_worker_t *w = arg;
    w->rc = fr_relay_run(&w->c->cfg, &s_stop);
    /* A source that cannot go on stops the others: the process exits
     * non-zero and its supervisor starts it again, rather than it running
     * on half alive. */
    if (w->rc && !atomic_exchange(&s_stop, 1))
        fprintf(stderr,
                "ferry-relay: source %s failed (logged above): stopping the others, exit 1\n",
                w->c->name);
    return NULL;
}

int
main(int argc, char **argv)
{
    const char *config = NULL;
    bool setup = false;
    fr_source_cfg_t flags, *sources[S_SOURCES_MAX];
    fr_config_defaults(&flags);
    const char *overrides[64][2];
    size_t noverrides = 0;
    fy_err_t err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            s_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("ferry-relay %s\n", FY_VERSION_STRING);
            return 0;
        }
        if (!strcmp(a, "--setup")) {
            setup = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || !v) {
            fprintf(stderr, "ferry-relay: %s wants a value (see --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--config")) {
            config = v;
        } else if (fr_config_set(&flags, a + 2, v, &err) != 0) {
            fprintf(stderr, "ferry-relay: %s\n", err.msg);
            return 2;
        } else if (noverrides < 64) {
            overrides[noverrides][0] = a + 2;
            overrides[noverrides++][1] = v;
        }
    }
    int n;
    if (config) {
        if (flags.source[0] || flags.name[0] || flags.rename_from[0]) {
            fprintf(stderr, "ferry-relay: --source, --name and --rename-from go in the file's "
                            "[source NAME] sections with --config\n");
            return 2;
        }
        fr_source_cfg_t defaults;
        fr_config_defaults(&defaults);
        size_t loaded = 0;
        n = fr_config_load(config, &defaults, sources, S_SOURCES_MAX, &loaded, &err) == FERRY_OK
                ? (int)loaded
                : -1;
        /* Options on the command line win over the file. */
        for (int s = 0; s < n; s++)
            for (size_t k = 0; k < noverrides; k++)
                if (fr_config_set(sources[s], overrides[k][0], overrides[k][1], &err) != FERRY_OK ||
                    fr_config_finish(sources[s], &err) != FERRY_OK)
                    n = -1;
    } else {
        n = fr_config_finish(&flags, &err) == 0 ? 1 : -1;
        sources[0] = &flags;
    }
    if (n < 0) {
        fprintf(stderr, "ferry-relay: %s\n", err.msg);
        return 2;
    }
    if (setup) { /* open each source (which makes what it needs), and stop */
        int rc = 0;
        for (int s = 0; s < n; s++) {
            const fr_config_t *g = &sources[s]->cfg;
            fr_source_args_t args = {.location = g->location,
                                     .table = g->table,
                                     .name = g->name,
                                     .slot = g->slot,
                                     .publication = g->publication,
                                     .delete_rows = g->delete_published};
            fr_source_t *src = NULL;
            bool moved = false;
            if (g->ops->open(&args, &src, &err) != 0 ||
                (g->rename_from && *g->rename_from &&
                 g->ops->rename(src, g->rename_from, &moved, &err) != 0)) {
                char shown[1024];
                fprintf(stderr, "ferry-relay: source %s: %s (%s)\n",
                        src          ? g->ops->name(src)
                        : g->name[0] ? g->name
                                     : fr_redact(g->location, shown, sizeof shown),
                        err.msg, ferry_errname(err.code));
                g->ops->close(&src);
                rc = 1;
                continue;
            }
            if (moved)
                printf("source %s: position moved from %s\n", g->ops->name(src), g->rename_from);
            printf("source %s (%s): ready\n", g->ops->name(src), g->ops->kind);
            g->ops->close(&src);
        }
        if (config)
            for (int s = 0; s < n; s++)
                free(sources[s]);
        return rc;
    }
    fr_metrics_t *metrics = NULL;
    if (sources[0]->metrics[0]) {
        if (fr_metrics_start(sources[0]->metrics, (size_t)n, &metrics, &err) != FERRY_OK) {
            fprintf(stderr, "ferry-relay: %s\n", err.msg);
            return 1;
        }
        for (int s = 0; s < n; s++) {
            sources[s]->cfg.report = fr_metrics_report;
            sources[s]->cfg.report_user = fr_metrics_slot(metrics, (size_t)s);
        }
        fprintf(stderr, "ferry-relay: metrics on http://%.*s:%u/metrics\n",
                (int)(strrchr(sources[0]->metrics, ':') - sources[0]->metrics), sources[0]->metrics,
                fr_metrics_port(metrics));
    }
    struct sigaction sa = {.sa_handler = s_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = 0;
    if (n == 1) {
        rc = fr_relay_run(&sources[0]->cfg, &s_stop);
    } else {
        s_worker_t w[S_SOURCES_MAX];
        for (int s = 0; s < n; s++) {
            w[s] = (s_worker_t){.c = sources[s]};
            if (pthread_create(&w[s].th, NULL, s_run, &w[s]) != 0) {
                fprintf(stderr, "ferry-relay: cannot start a thread for %s\n", sources[s]->name);
                atomic_store(&s_stop, 1);
                n = s;
                rc = 1;
                break;
            }
        }
        for (int s = 0; s < n; s++) {
            pthread_join(w[s].th, NULL);
            rc = rc || w[s].rc;
        }
    }
    fr_metrics_stop(&metrics);
    if (config)
        for (int s = 0; s < n; s++)
            free(sources[s]);
    return rc;
}
