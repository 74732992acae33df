/* SPDX-License-Identifier: MIT */
/*
 * bench_compare.c - Ferry against Redis Streams, same workloads, same run,
 * same machine (bench/README.md). Redis runs from Debian's redis-server on a
 * temporary directory and a free loopback port, with AOF and
 * appendfsync=always (the setting with Ferry's guarantee: a reply only after
 * fsync) and then everysec.
 *
 *   W1  work queue: 1 producer (window 1000) + 1 consumer (prefetch/COUNT
 *       1000, acks); msg/s from first publish to last ack, and confirmed/s.
 *   W2  latency: 5,000 msg/s for 10 s on absolute deadlines; the payload
 *       carries its send time; publish-to-receive p50/p99/p99.9/max from a
 *       log-linear histogram (error < 1%).
 *   W3  fan-out: 4 durable subscriptions (consumer groups) on one stream;
 *       deliveries/s.
 *   W4  synchronous publishes (window 1: each waits for its confirm, which
 *       waits for the disk); publishes/s.
 *   Backlog (Ferry): the confirmed publish rate of 1M more messages (window
 *       1000) with 0, 1M and 10M already stored, its ratio to the empty case,
 *       and the broker's RSS.
 *
 * Every workload counts lost and duplicated messages and fails if either is
 * not zero. Broker CPU seconds per workload come from /proc/<pid>/stat.
 * Results go to stdout as a table and to a TSV file (--out).
 *
 *   bench_compare [-n W1_MSGS] [-s BYTES] [--fanout-msgs N] [--rate R] [--secs S]
 *                 [--backlog 0,1000000,10000000] [--backlog-msgs N] [--only ferry]
 *                 [--workloads w1,w2,w3,w4,backlog] [--sync-msgs N]
 *                 [--out FILE] [--profile DIR]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends.h"
#include "clusterfx.h"
#include "fixture.h"

#define S_SYSTEMS 3

/* ---- a log-linear histogram of nanoseconds --------------------------------- */

#define S_SUB     128 /* linear steps per power of two: error < 1/128 */
#define S_BUCKETS (S_SUB + 57 * S_SUB)

typedef struct {
    uint64_t count[S_BUCKETS];
    uint64_t n, max;
} s_hist_t;

static size_t
s_bucket(uint64_t v)
{
    if (v < S_SUB)
        return (size_t)v;
    int e = 63 - __builtin_clzll(v); /* >= 7 */
    uint64_t sub = (v >> (e - 7)) - S_SUB;
    return S_SUB + (size_t)(e - 7) * S_SUB + (size_t)sub;
}

static uint64_t
s_bucket_mid(size_t i)
{
    if (i < S_SUB)
        return i;
    size_t e = (i - S_SUB) / S_SUB + 7, sub = (i - S_SUB) % S_SUB;
    uint64_t lo = (uint64_t)(S_SUB + sub) << (e - 7), width = (uint64_t)1 << (e - 7);
    return lo + width / 2;
}

static void
s_hist_add(s_hist_t *h, uint64_t v)
{
    size_t b = s_bucket(v);
    h->count[b < S_BUCKETS ? b : S_BUCKETS - 1]++;
    h->n++;
    h->max = v > h->max ? v : h->max;
}

static uint64_t
s_hist_pct(const s_hist_t *h, double pct)
{
    uint64_t want = (uint64_t)(pct / 100.0 * (double)h->n + 0.5), seen = 0;
    for (size_t i = 0; i < S_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want && h->count[i])
            return s_bucket_mid(i);
    }
    return h->max;
}

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t
s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CPU seconds (user + system) a process has used so far. */
static double
s_proc_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
s_proc_rss_mib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %lf", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024.0;
}

/* The payload: sequence number and send time, then padding. */
static void
s_stamp(char *buf, size_t size, uint64_t seq)
{
    uint64_t t = s_now_ns();
    memcpy(buf, &seq, 8);
    if (size >= 16)
        memcpy(buf + 8, &t, 8);
}

/* ---- a consumer thread ---------------------------------------------------------- */

typedef struct {
    const bk_ops_t *ops;
    const char *endpoint, *stream;
    int sub;
    size_t n;
    uint8_t *seen;
    size_t distinct, dups;
    s_hist_t *hist; /* W2 only */
    uint64_t end_ns;
    int failed;
    atomic_int ready;
} s_consumer_t;

static void
s_on_msg(void *user, const void *data, size_t len)
{
    s_consumer_t *k = user;
    uint64_t seq = UINT64_MAX, sent;
    if (len >= 8)
        memcpy(&seq, data, 8);
    if (seq >= k->n || k->seen[seq]) {
        k->dups++;
    } else {
        k->seen[seq] = 1;
        k->distinct++;
    }
    if (k->hist && len >= 16) {
        memcpy(&sent, (const char *)data + 8, 8);
        s_hist_add(k->hist, s_now_ns() - sent);
    }
}

static void *
s_consume(void *arg)
{
    s_consumer_t *k = arg;
    bk_conn_t *c = k->ops->connect(k->endpoint, 1000);
    k->seen = calloc(k->n ? k->n : 1, 1);
    if (!c || !k->seen) {
        k->failed = 1;
        atomic_store(&k->ready, 1);
        goto out;
    }
    /* Subscribe (Ferry) before the producer starts: a short first call. */
    if (k->ops->consume(c, k->stream, k->sub, 1000, 1, s_on_msg, k) < 0)
        k->failed = 1;
    atomic_store(&k->ready, 1);
    uint64_t deadline = s_now_ns() + 180ull * 1000000000ull;
    while (!k->failed && k->distinct < k->n && s_now_ns() < deadline)
        if (k->ops->consume(c, k->stream, k->sub, 1000, 100, s_on_msg, k) < 0)
            k->failed = 1;
    if (!k->failed && k->ops->settle(c) != 0)
        k->failed = 1;
    k->end_ns = s_now_ns();
out:
    if (c)
        k->ops->close(c);
    return NULL;
}

static int
s_check(const char *what, const s_consumer_t *k)
{
    if (k->failed || k->distinct != k->n || k->dups) {
        fprintf(stderr, "bench: %s: LOST %zu, DUPLICATED %zu%s\n", what, k->n - k->distinct,
                k->dups, k->failed ? " (a call failed)" : "");
        return -1;
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------ */

typedef struct {
    const char *system;
    double w1_e2e, w1_confirmed, w1_cpu;
    double w2_p50, w2_p99, w2_p999, w2_max, w2_cpu; /* microseconds */
    double w3_rate, w3_cpu;
    double w4_rate, w4_cpu;
    bool ran;
} s_result_t;

typedef struct {
    size_t n, size, fan_n, rate, secs, backlog_n, sync_n;
    bool w1, w2, w3, w4, backlog;
    const char *profile;
    FILE *tsv;
    char date[32];
} s_cfg_t;

/* One result row; a message size other than the default 128 B is named
 * with the workload ("W1@1024B"). */
static void
s_tsv(const s_cfg_t *cfg, const char *system, const char *workload, const char *metric, double v)
{
    if (!cfg->tsv)
        return;
    char w[64];
    if (cfg->size != 128)
        snprintf(w, sizeof w, "%s@%zuB", workload, cfg->size);
    else
        snprintf(w, sizeof w, "%s", workload);
    fprintf(cfg->tsv, "%s\t%s\t%s\t%s\t%.2f\n", cfg->date, system, w, metric, v);
}

/* ---- workloads ------------------------------------------------------------------ */

static pid_t
s_spawn_perf(const char *dir, pid_t target)
{
    char data[512], pidstr[16];
    snprintf(data, sizeof data, "%s/perf.data", dir);
    snprintf(pidstr, sizeof pidstr, "%d", (int)target);
    pid_t p = fork();
    if (p == 0) {
        execlp("perf", "perf", "record", "-g", "-F", "999", "-o", data, "-p", pidstr, (char *)NULL);
        _exit(127);
    }
    struct timespec ts = {0, 300 * 1000000L}; /* let it attach */
    nanosleep(&ts, NULL);
    return p;
}

static int
s_w1(const s_cfg_t *cfg, const bk_ops_t *ops, const char *ep, pid_t broker, s_result_t *res)
{
    bk_conn_t *p = ops->connect(ep, 1000);
    if (!p || ops->setup(p, "w1", 0) != 0)
        return -1;
    s_consumer_t k = {.ops = ops, .endpoint = ep, .stream = "w1", .sub = -1, .n = cfg->n};
    pthread_t th;
    pthread_create(&th, NULL, s_consume, &k);
    while (!atomic_load(&k.ready))
        ;
    pid_t perf = cfg->profile ? s_spawn_perf(cfg->profile, broker) : 0;
    char *buf = calloc(1, cfg->size);
    double cpu0 = s_proc_cpu(broker);
    uint64_t t0 = s_now_ns();
    int rc = 0;
    for (size_t i = 0; i < cfg->n && rc == 0; i++) {
        s_stamp(buf, cfg->size, i);
        rc = ops->send(p, "w1", buf, cfg->size);
    }
    if (rc == 0)
        rc = ops->flush(p);
    uint64_t t_conf = s_now_ns();
    pthread_join(th, NULL);
    if (perf > 0) {
        kill(perf, SIGINT);
        waitpid(perf, NULL, 0);
    }
    res->w1_cpu = s_proc_cpu(broker) - cpu0;
    res->w1_confirmed = (double)cfg->n / ((double)(t_conf - t0) / 1e9);
    res->w1_e2e = (double)cfg->n / ((double)(k.end_ns - t0) / 1e9);
    if (rc == 0 && ops->confirmed(p) != cfg->n) {
        fprintf(stderr, "bench: W1 %s: %zu of %zu confirmed\n", res->system, ops->confirmed(p),
                cfg->n);
        rc = -1;
    }
    if (rc == 0)
        rc = s_check("W1", &k);
    free(k.seen);
    free(buf);
    ops->close(p);
    return rc;
}

static int
s_w2(const s_cfg_t *cfg, const bk_ops_t *ops, const char *ep, pid_t broker, s_result_t *res)
{
    bk_conn_t *p = ops->connect(ep, 1000);
    if (!p || ops->setup(p, "w2", 0) != 0)
        return -1;
    size_t n = cfg->rate * cfg->secs;
    s_hist_t *h = calloc(1, sizeof *h);
    s_consumer_t k = {.ops = ops, .endpoint = ep, .stream = "w2", .sub = -1, .n = n, .hist = h};
    pthread_t th;
    pthread_create(&th, NULL, s_consume, &k);
    while (!atomic_load(&k.ready))
        ;
    char *buf = calloc(1, cfg->size < 16 ? 16 : cfg->size);
    double cpu0 = s_proc_cpu(broker);
    uint64_t t0 = s_now_ns(), step = 1000000000ull / cfg->rate;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t due = t0 + i * step;
        struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        s_stamp(buf, cfg->size < 16 ? 16 : cfg->size, i);
        rc = ops->send(p, "w2", buf, cfg->size < 16 ? 16 : cfg->size);
        if (rc == 0)
            rc = ops->pump(p);
    }
    if (rc == 0)
        rc = ops->flush(p);
    pthread_join(th, NULL);
    res->w2_cpu = s_proc_cpu(broker) - cpu0;
    res->w2_p50 = (double)s_hist_pct(h, 50) / 1e3;
    res->w2_p99 = (double)s_hist_pct(h, 99) / 1e3;
    res->w2_p999 = (double)s_hist_pct(h, 99.9) / 1e3;
    res->w2_max = (double)h->max / 1e3;
    if (rc == 0)
        rc = s_check("W2", &k);
    free(k.seen);
    free(h);
    free(buf);
    ops->close(p);
    return rc;
}

static int
s_w3(const s_cfg_t *cfg, const bk_ops_t *ops, const char *ep, pid_t broker, s_result_t *res)
{
    enum { SUBS = 4 };
    bk_conn_t *p = ops->connect(ep, 1000);
    if (!p || ops->setup(p, "w3", SUBS) != 0)
        return -1;
    s_consumer_t k[SUBS];
    pthread_t th[SUBS];
    for (int j = 0; j < SUBS; j++) {
        k[j] =
            (s_consumer_t){.ops = ops, .endpoint = ep, .stream = "w3", .sub = j, .n = cfg->fan_n};
        pthread_create(&th[j], NULL, s_consume, &k[j]);
    }
    for (int j = 0; j < SUBS; j++)
        while (!atomic_load(&k[j].ready))
            ;
    char *buf = calloc(1, cfg->size);
    double cpu0 = s_proc_cpu(broker);
    uint64_t t0 = s_now_ns(), end = 0;
    int rc = 0;
    for (size_t i = 0; i < cfg->fan_n && rc == 0; i++) {
        s_stamp(buf, cfg->size, i);
        rc = ops->send(p, "w3", buf, cfg->size);
    }
    if (rc == 0)
        rc = ops->flush(p);
    for (int j = 0; j < SUBS; j++) {
        pthread_join(th[j], NULL);
        end = k[j].end_ns > end ? k[j].end_ns : end;
        if (rc == 0)
            rc = s_check("W3", &k[j]);
        free(k[j].seen);
    }
    res->w3_cpu = s_proc_cpu(broker) - cpu0;
    res->w3_rate = (double)(cfg->fan_n * SUBS) / ((double)(end - t0) / 1e9);
    free(buf);
    ops->close(p);
    return rc;
}

/* Publish rate with a backlog already stored (Ferry, one topic). */
static int
s_backlog(const s_cfg_t *cfg, const char *ep, pid_t broker, const size_t *levels, size_t nlevels)
{
    bk_conn_t *p = bk_ferry.connect(ep, 1000);
    if (!p || bk_ferry.setup(p, "backlog", 1) != 0)
        return -1;
    char *buf = calloc(1, cfg->size);
    size_t stored = 0, seq = 0;
    double base = 0;
    printf("\nBacklog (Ferry): W1 publish rate with messages already stored\n");
    printf("%-12s %14s %8s %12s\n", "stored", "confirmed/s", "ratio", "broker RSS");
    for (size_t l = 0; l < nlevels; l++) {
        while (stored < levels[l]) { /* fill, untimed */
            s_stamp(buf, cfg->size, seq++);
            if (bk_ferry.send(p, "backlog", buf, cfg->size) != 0)
                return -1;
            stored++;
        }
        if (bk_ferry.flush(p) != 0)
            return -1;
        /* Let the file system finish with the fill before measuring. */
        struct timespec pause = {2, 0};
        nanosleep(&pause, NULL);
        size_t before = bk_ferry.confirmed(p);
        uint64_t t0 = s_now_ns();
        for (size_t i = 0; i < cfg->backlog_n; i++) {
            s_stamp(buf, cfg->size, seq++);
            if (bk_ferry.send(p, "backlog", buf, cfg->size) != 0)
                return -1;
        }
        if (bk_ferry.flush(p) != 0 || bk_ferry.confirmed(p) - before != cfg->backlog_n) {
            fprintf(stderr, "bench: backlog: LOST confirms\n");
            return -1;
        }
        stored += cfg->backlog_n;
        double rate = (double)cfg->backlog_n / ((double)(s_now_ns() - t0) / 1e9);
        if (l == 0)
            base = rate;
        double rss = s_proc_rss_mib(broker);
        printf("%-12zu %14.0f %8.2f %9.0f MiB\n", levels[l], rate, base ? rate / base : 0, rss);
        char metric[64];
        snprintf(metric, sizeof metric, "publish_per_s@%zu", levels[l]);
        s_tsv(cfg, "ferry", "backlog", metric, rate);
        snprintf(metric, sizeof metric, "ratio@%zu", levels[l]);
        s_tsv(cfg, "ferry", "backlog", metric, base ? rate / base : 0);
        snprintf(metric, sizeof metric, "rss_mib@%zu", levels[l]);
        s_tsv(cfg, "ferry", "backlog", metric, rss);
    }
    free(buf);
    bk_ferry.close(p);
    return 0;
}

/* W4: one publish at a time, each waiting for its confirm. */
static int
s_w4(const s_cfg_t *cfg, const bk_ops_t *ops, const char *ep, pid_t broker, s_result_t *res)
{
    bk_conn_t *p = ops->connect(ep, 1);
    if (!p || ops->setup(p, "w4", 0) != 0)
        return -1;
    char *buf = calloc(1, cfg->size);
    double cpu0 = s_proc_cpu(broker);
    uint64_t t0 = s_now_ns();
    int rc = 0;
    for (size_t i = 0; i < cfg->sync_n && rc == 0; i++) {
        s_stamp(buf, cfg->size, i);
        rc = ops->send(p, "w4", buf, cfg->size);
        if (rc == 0)
            rc = ops->flush(p);
    }
    res->w4_rate = (double)cfg->sync_n / ((double)(s_now_ns() - t0) / 1e9);
    res->w4_cpu = s_proc_cpu(broker) - cpu0;
    if (rc == 0 && ops->confirmed(p) != cfg->sync_n) {
        fprintf(stderr, "bench: W4 %s: %zu of %zu confirmed\n", res->system, ops->confirmed(p),
                cfg->sync_n);
        rc = -1;
    }
    free(buf);
    ops->close(p);
    return rc;
}

static int
s_run_system(const s_cfg_t *cfg, const bk_ops_t *ops, const char *ep, pid_t broker, s_result_t *res)
{
    res->ran = true;
    if (cfg->w1 && s_w1(cfg, ops, ep, broker, res) != 0)
        return -1;
    if (cfg->w2 && s_w2(cfg, ops, ep, broker, res) != 0)
        return -1;
    if (cfg->w3 && s_w3(cfg, ops, ep, broker, res) != 0)
        return -1;
    if (cfg->w4 && s_w4(cfg, ops, ep, broker, res) != 0)
        return -1;
    fprintf(stderr, "bench: %s done\n", res->system);
    return 0;
}

static void
s_row(const char *name, const s_result_t *r, size_t off, bool higher_better)
{
    double v[S_SYSTEMS];
    printf("%-28s", name);
    for (int i = 0; i < S_SYSTEMS; i++) {
        v[i] = *(const double *)((const char *)&r[i] + off);
        if (r[i].ran)
            printf(" %14.0f", v[i]);
        else
            printf(" %14s", "-");
    }
    for (int i = 1; i < S_SYSTEMS; i++) {
        if (r[0].ran && r[i].ran && v[0] > 0 && v[i] > 0)
            printf(" %11.2fx", higher_better ? v[0] / v[i] : v[i] / v[0]);
        else
            printf(" %12s", "-");
    }
    printf("\n");
}

int
main(int argc, char **argv)
{
    int nodes = 0; /* --cluster N: N ferryd nodes instead of one */
    s_cfg_t cfg = {.n = 200000,
                   .size = 128,
                   .fan_n = 100000,
                   .rate = 5000,
                   .secs = 10,
                   .backlog_n = 1000000,
                   .sync_n = 3000,
                   .w1 = true,
                   .w2 = true,
                   .w3 = true,
                   .w4 = true,
                   .backlog = true};
    const char *out = NULL, *only = NULL, *backlog = "0,1000000,10000000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "-h") != 0)
            goto usage;
        if (strcmp(a, "-n") == 0)
            cfg.n = strtoul(v, NULL, 10);
        else if (strcmp(a, "-s") == 0)
            cfg.size = strtoul(v, NULL, 10);
        else if (strcmp(a, "--fanout-msgs") == 0)
            cfg.fan_n = strtoul(v, NULL, 10);
        else if (strcmp(a, "--rate") == 0)
            cfg.rate = strtoul(v, NULL, 10);
        else if (strcmp(a, "--secs") == 0)
            cfg.secs = strtoul(v, NULL, 10);
        else if (strcmp(a, "--backlog") == 0)
            backlog = v;
        else if (strcmp(a, "--sync-msgs") == 0)
            cfg.sync_n = strtoul(v, NULL, 10);
        else if (strcmp(a, "--backlog-msgs") == 0)
            cfg.backlog_n = strtoul(v, NULL, 10);
        else if (strcmp(a, "--only") == 0)
            only = v;
        else if (strcmp(a, "--cluster") == 0)
            nodes = atoi(v);
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--profile") == 0)
            cfg.profile = v;
        else if (strcmp(a, "--workloads") == 0) {
            cfg.w1 = strstr(v, "w1") != NULL;
            cfg.w2 = strstr(v, "w2") != NULL;
            cfg.w3 = strstr(v, "w3") != NULL;
            cfg.w4 = strstr(v, "w4") != NULL;
            cfg.backlog = strstr(v, "backlog") != NULL;
        } else
            goto usage;
        i++;
    }
    if (cfg.n == 0 || cfg.size < 16 || cfg.fan_n == 0 || cfg.rate == 0 || cfg.secs == 0 ||
        cfg.sync_n == 0)
        goto usage;
    size_t levels[8], nlevels = 0;
    for (const char *p = backlog; *p && nlevels < 8;) {
        levels[nlevels++] = strtoul(p, NULL, 10);
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    time_t now = time(NULL);
    strftime(cfg.date, sizeof cfg.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (out && !(cfg.tsv = fopen(out, "a"))) {
        perror(out);
        return 1;
    }
    s_result_t res[S_SYSTEMS] = {
        {.system = "ferry"}, {.system = "redis-always"}, {.system = "redis-everysec"}};
    int rc = 0;
    fy_ferryd_t d = {0};
    fy_cluster_fx_t cl = {0};
    if (nodes) { /* a cluster on this machine: the clients talk to its leader */
        bool up = fy_cluster_init(&cl, nodes) == 0;
        for (int i = 0; up && i < nodes; i++)
            up = fy_cluster_start(&cl, i) == 0;
        int lead = up ? fy_cluster_leader(&cl, 20000) : -1;
        if (lead < 0) {
            fy_cluster_cleanup(&cl);
            return 1;
        }
        d = cl.node[lead];
        res[0].system = nodes == 3 ? "ferry-cluster3" : "ferry-cluster";
    } else if (fy_ferryd_start(&d) != 0) {
        return 1;
    }
    rc = s_run_system(&cfg, &bk_ferry, d.endpoint, d.pid, &res[0]);
    if (rc == 0 && cfg.backlog && nlevels)
        rc = s_backlog(&cfg, d.endpoint, d.pid, levels, nlevels);
    int slow = fy_ferryd_log_count(&d, "slow batch");
    if (slow > 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "grep 'slow batch' '%s' | tail -5 >&2", d.log_path);
        fprintf(stderr, "bench: ferryd logged %d slow batches; the last ones:\n", slow);
        if (system(cmd) != 0)
            fprintf(stderr, "bench: cannot read %s\n", d.log_path);
    }
    if (nodes) {
        fy_cluster_cleanup(&cl);
    } else {
        fy_ferryd_signal(&d, SIGTERM);
        fy_ferryd_cleanup(&d);
    }
    const char *fsync_modes[] = {NULL, "always", "everysec"};
    for (int i = 1; rc == 0 && i < S_SYSTEMS && !(only && strcmp(only, "ferry") == 0); i++) {
        bk_redis_server_t rs;
        if (bk_redis_start(&rs, fsync_modes[i]) != 0) {
            fprintf(stderr, "bench: cannot start redis-server (appendfsync %s)\n", fsync_modes[i]);
            rc = 1;
            break;
        }
        rc = s_run_system(&cfg, &bk_redis, rs.endpoint, rs.pid, &res[i]);
        bk_redis_stop(&rs);
    }
    if (rc) {
        fprintf(stderr, "bench_compare: FAILED\n");
        return 1;
    }
    printf("\n%zu B messages, fsync on for Ferry and redis-always; same machine, same run\n",
           cfg.size);
    printf("%-28s %14s %14s %14s %12s %12s\n", "", "ferry", "redis-always", "redis-everysec",
           "vs always", "vs everysec");
#define OFF(f) offsetof(s_result_t, f)
    if (cfg.w1) {
        s_row("W1 msg/s publish->ack", res, OFF(w1_e2e), true);
        s_row("W1 confirmed/s", res, OFF(w1_confirmed), true);
    }
    if (cfg.w2) {
        s_row("W2 p50 latency (us)", res, OFF(w2_p50), false);
        s_row("W2 p99 latency (us)", res, OFF(w2_p99), false);
        s_row("W2 p99.9 latency (us)", res, OFF(w2_p999), false);
        s_row("W2 max latency (us)", res, OFF(w2_max), false);
    }
    if (cfg.w3)
        s_row("W3 deliveries/s (4 subs)", res, OFF(w3_rate), true);
    if (cfg.w4)
        s_row("W4 sync publishes/s", res, OFF(w4_rate), true);
    printf("%-28s", "broker CPU s (W1/W2/W3/W4)");
    for (int i = 0; i < S_SYSTEMS; i++)
        if (res[i].ran)
            printf("  %4.1f/%4.1f/%4.1f/%4.1f", res[i].w1_cpu, res[i].w2_cpu, res[i].w3_cpu,
                   res[i].w4_cpu);
    printf("\n(ratios: Ferry's throughput over the other's; for latency, the other's over "
           "Ferry's: > 1 means Ferry is better)\n");
    for (int i = 0; i < S_SYSTEMS; i++) {
        if (!res[i].ran)
            continue;
        const s_result_t *r = &res[i];
        struct {
            const char *w, *m;
            double v;
            bool on;
        } rows[] = {{"W1", "msg_per_s", r->w1_e2e, cfg.w1},
                    {"W1", "confirmed_per_s", r->w1_confirmed, cfg.w1},
                    {"W1", "broker_cpu_s", r->w1_cpu, cfg.w1},
                    {"W2", "p50_us", r->w2_p50, cfg.w2},
                    {"W2", "p99_us", r->w2_p99, cfg.w2},
                    {"W2", "p999_us", r->w2_p999, cfg.w2},
                    {"W2", "max_us", r->w2_max, cfg.w2},
                    {"W2", "broker_cpu_s", r->w2_cpu, cfg.w2},
                    {"W3", "deliveries_per_s", r->w3_rate, cfg.w3},
                    {"W3", "broker_cpu_s", r->w3_cpu, cfg.w3},
                    {"W4", "sync_publish_per_s", r->w4_rate, cfg.w4},
                    {"W4", "broker_cpu_s", r->w4_cpu, cfg.w4}};
        for (size_t j = 0; j < sizeof rows / sizeof rows[0]; j++)
            if (rows[j].on)
                s_tsv(&cfg, r->system, rows[j].w, rows[j].m, rows[j].v);
    }
    if (cfg.tsv)
        fclose(cfg.tsv);
    if (cfg.profile) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "perf report -i '%s/perf.data' --no-children -g none --stdio --percent-limit 0.5 "
                 "2>/dev/null | grep -E '^ +[0-9]' | head -40 > '%s/profile.txt'",
                 cfg.profile, cfg.profile);
        if (system(cmd) == 0)
            printf("\nprofile of ferryd during W1: %s/profile.txt\n", cfg.profile);
    }
    return 0;
usage:
    fprintf(stderr, "usage: bench_compare [--cluster N] [-n W1_MSGS] [-s BYTES] [--fanout-msgs N] [--rate R] "
                    "[--secs S] [--backlog LIST] [--only ferry] [--workloads LIST] [--sync-msgs N] "
                    "[--out FILE] "
                    "[--profile DIR]\n");
    return 2;
}
