/* SPDX-License-Identifier: MIT */
/*
 * options.c - defaults < FERRY_* environment < command-line flags.
 * An unknown flag or a bad value stops start-up with a message naming it.
 */
#include "options.h"

#include "endpoint.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    S_STR_DATA,
    S_STR_BIND,
    S_STR_METRICS,
    S_STR_CURVE,
    S_STR_USERS,
    S_STR_TOKEN,
    S_STR_PEERS,
    S_STR_ADVERTISE,
    S_STR_CLUSTER_BIND,
    S_STR_JOIN,
    S_LEVEL,
    S_SIZE,
    S_UINT
} s_kind_t;

typedef struct {
    const char *flag; /* long option name */
    const char *env;  /* environment variable */
    s_kind_t kind;
    size_t offset;     /* into fy_config_t */
    const char *deflt; /* default, as text */
    uint64_t min, max; /* for numbers */
    const char *help;
} s_key_t;

#define S_OFF(f) offsetof(fy_config_t, f)

static const s_key_t s_keys[] = {
    {"data", "FERRY_DATA", S_STR_DATA, S_OFF(data_dir), "./data", 0, 0,
     "data directory (LMDB environment)"},
    {"bind", "FERRY_BIND", S_STR_BIND, S_OFF(bind), FY_DEFAULT_ENDPOINT, 0, 0,
     "endpoint to bind: HOST:PORT or tcp://HOST:PORT (port * picks a free one), ipc://PATH"},
    {"log-level", "FERRY_LOG_LEVEL", S_LEVEL, S_OFF(log_level), "info", 0, 0,
     "error, warn, info or debug"},
    {"map-size", "FERRY_MAP_SIZE", S_SIZE, S_OFF(map_size), "8G", 64 << 10, 1ull << 44,
     "storage limit (LMDB map size), e.g. 512M, 8G"},
    {"max-msg-bytes", "FERRY_MAX_MSG_BYTES", S_SIZE, S_OFF(max_msg_bytes), "1M", 1, 64 << 20,
     "largest message (payload + key + id + headers)"},
    {"batch-max", "FERRY_BATCH_MAX", S_UINT, S_OFF(batch_max), "4096", 1, 65536,
     "most requests applied in one group commit"},
    {"dedupe-window-ms", "FERRY_DEDUPE_WINDOW_MS", S_UINT, S_OFF(dedupe_window_ms), "120000", 0,
     365ull * 24 * 3600 * 1000, "default dedupe window of new topics"},
    {"disk-reserve", "FERRY_DISK_RESERVE", S_SIZE, S_OFF(disk_reserve), "8M", 0, 1ull << 30,
     "disk space held in DATA/ferryd.reserve, given back when the disk is full so that acks, "
     "deletes and cleanup go on (0: none)"},
    {"max-consumers", "FERRY_MAX_CONSUMERS", S_UINT, S_OFF(max_consumers), "1024", 1, 65536,
     "push consumers served at once; one more gets ETOO_MANY"},
    {"peer-queue-bytes", "FERRY_PEER_QUEUE_BYTES", S_SIZE, S_OFF(peer_queue_bytes), "8M", 4096,
     1ull << 32,
     "replies held for a client that does not read, before its requests wait unhandled "
     "(back-pressure; nothing is dropped)"},
    {"slow-batch-ms", "FERRY_SLOW_BATCH_MS", S_UINT, S_OFF(slow_batch_ms), "10", 1, 60000,
     "a group commit slower than this is logged at warn with where the time went (at most once "
     "a second, with how many more there were)"},
    {"metrics-topics", "FERRY_METRICS_TOPICS", S_UINT, S_OFF(metrics_topics), "100", 0, 10000,
     "topics (in name order) with /metrics lines of their own, each with up to 50 "
     "subscriptions; the rest are counted together (label cardinality stays bounded)"},
    {"curve-secret", "FERRY_CURVE_SECRET", S_STR_CURVE, S_OFF(curve_secret), "", 0, 0,
     "encrypt every connection with ZeroMQ CURVE: the server's secret key file (ferry keygen; "
     "mode 600); clients need its public key (docs/security.md)"},
    {"users", "FERRY_USERS", S_STR_USERS, S_OFF(users), "", 0, 0,
     "who may connect and what each may do: the users file (docs/security.md); needs "
     "--curve-secret; read again on SIGHUP"},
    {"metrics-token", "FERRY_METRICS_TOKEN", S_STR_TOKEN, S_OFF(metrics_token), "", 0, 0,
     "a file (mode 600) whose first line is a bearer token that GET /metrics must send "
     "(Authorization: Bearer ...); /health stays open"},
    {"metrics", "FERRY_METRICS", S_STR_METRICS, S_OFF(metrics), "", 0, 0,
     "serve /metrics (Prometheus) and /health over HTTP on host:port, e.g. 127.0.0.1:9464"},
    {"cluster-id", "FERRY_CLUSTER_ID", S_UINT, S_OFF(cluster_id), "0", 0, 1000000,
     "this node's id in a cluster (one of --peers); 0: a single node (docs/cluster.md)"},
    {"peers", "FERRY_PEERS", S_STR_PEERS, S_OFF(peers), "", 0, 0,
     "the cluster's voters, the same list on every node: ID=HOST:PORT,... (the address nodes "
     "replicate on, IPv4), e.g. 1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001"},
    {"election-ms", "FERRY_ELECTION_MS", S_UINT, S_OFF(election_ms), "500", 100, 60000,
     "cluster: a follower that hears nothing from the leader for this long (randomised up to "
     "twice) starts an election; heartbeats go out every tenth of it"},
    {"snapshot-every", "FERRY_SNAPSHOT_EVERY", S_UINT, S_OFF(snapshot_every), "8192", 16, 1u << 24,
     "cluster: entries applied between snapshots (a compacted copy of the store); the log keeps "
     "as many behind the last one, and a node further behind is sent the snapshot"},
    {"join", "FERRY_JOIN", S_STR_JOIN, S_OFF(join), "", 0, 0,
     "cluster: start a new node whose cluster address is HOST:PORT (instead of --peers); it "
     "serves once the leader adds it (ferry cluster add ID HOST:PORT)"},
    {"cluster-bind", "FERRY_CLUSTER_BIND", S_STR_CLUSTER_BIND, S_OFF(cluster_bind), "", 0, 0,
     "cluster: HOST:PORT this node listens on for its peers, if not its own --peers address "
     "(behind a NAT or a proxy)"},
    {"advertise", "FERRY_ADVERTISE", S_STR_ADVERTISE, S_OFF(advertise), "", 0, 0,
     "the client endpoint other nodes name to clients when this node leads; off: --bind, its "
     "wildcard host made this node's --peers host"},
};
#define S_NKEYS (sizeof s_keys / sizeof s_keys[0])

bool
fy_options_parse_size(const char *text, uint64_t *out)
{
    if (!text || !*text || *text == '-')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text)
        return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    else if (*end == 'T' || *end == 't')
        shift = 40;
    if (shift)
        end++;
    if (*end != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

static bool
s_set(fy_config_t *cfg, const s_key_t *k, const char *val, const char *source, fy_err_t *err)
{
    char *base = (char *)cfg + k->offset;
    uint64_t n;
    switch (k->kind) {
    case S_STR_DATA:
    case S_STR_BIND:
    case S_STR_METRICS:
    case S_STR_CURVE:
    case S_STR_USERS:
    case S_STR_TOKEN:
    case S_STR_PEERS:
    case S_STR_ADVERTISE:
    case S_STR_CLUSTER_BIND:
    case S_STR_JOIN: {
        size_t cap = k->kind == S_STR_DATA           ? sizeof cfg->data_dir
                     : k->kind == S_STR_BIND         ? sizeof cfg->bind
                     : k->kind == S_STR_METRICS      ? sizeof cfg->metrics
                     : k->kind == S_STR_CURVE        ? sizeof cfg->curve_secret
                     : k->kind == S_STR_USERS        ? sizeof cfg->users
                     : k->kind == S_STR_PEERS        ? sizeof cfg->peers
                     : k->kind == S_STR_ADVERTISE    ? sizeof cfg->advertise
                     : k->kind == S_STR_CLUSTER_BIND ? sizeof cfg->cluster_bind
                     : k->kind == S_STR_JOIN         ? sizeof cfg->join
                                                     : sizeof cfg->metrics_token;
        bool may_be_empty = k->kind != S_STR_DATA && k->kind != S_STR_BIND;
        if ((!*val && !may_be_empty) || strlen(val) >= cap) {
            fy_err_set(err, FERRY_EINVAL, "%s %s: empty or longer than %zu bytes", source, k->flag,
                       cap - 1);
            return false;
        }
        if ((k->kind == S_STR_BIND || k->kind == S_STR_ADVERTISE) && *val) { /* HOST:PORT: tcp */
            if (!fy_endpoint_normalize(val, base, cap)) {
                fy_err_set(err, FERRY_EINVAL, "%s %s %s: wants " FY_ENDPOINT_FORMS, source, k->flag,
                           val);
                return false;
            }
            return true;
        }
        memcpy(base, val, strlen(val) + 1);
        return true;
    }
    case S_LEVEL:
        if (!fy_log_level_parse(val, (fy_level_t *)(void *)base)) {
            fy_err_set(err, FERRY_EINVAL, "%s %s: expected error, warn, info or debug", source,
                       k->flag);
            return false;
        }
        return true;
    case S_SIZE:
    case S_UINT:
        if (!fy_options_parse_size(val, &n) ||
            (k->kind == S_UINT && strspn(val, "0123456789") != strlen(val))) {
            fy_err_set(err, FERRY_EINVAL, "%s %s: not a valid %s", source, k->flag,
                       k->kind == S_SIZE ? "size (e.g. 512M)" : "number");
            return false;
        }
        if (n < k->min || n > k->max) {
            fy_err_set(err, FERRY_EINVAL, "%s %s: must be between %llu and %llu", source, k->flag,
                       (unsigned long long)k->min, (unsigned long long)k->max);
            return false;
        }
        memcpy(base, &n, sizeof n);
        return true;
    }
    return false;
}

/* ---- the configuration file ------------------------------------------------ */

typedef struct {
    fy_config_t *cfg;
    const char **from; /* per key: where its value came from */
    const char *path;
    fy_err_t *err;
    char why[200]; /* the handler's refusal, said with its line */
} s_file_t;

static int
s_file_key(void *user, const char *section, const char *name, const char *value)
{
    s_file_t *f = user;
    if (section && *section && strcmp(section, "ferryd") != 0) {
        snprintf(f->why, sizeof f->why,
                 "unknown section [%s] (keys go before any section, or in "
                 "[ferryd])",
                 section);
        return 0;
    }
    if (strcmp(name, "insecure") == 0) {
        if (strcmp(value, "true") && strcmp(value, "false") && strcmp(value, "1") &&
            strcmp(value, "0")) {
            snprintf(f->why, sizeof f->why, "insecure: true or false");
            return 0;
        }
        f->cfg->insecure = value[0] == 't' || value[0] == '1';
        return 1;
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        if (strcmp(s_keys[i].flag, name) != 0)
            continue;
        fy_err_t e = {0};
        if (!s_set(f->cfg, &s_keys[i], value, "key", &e)) {
            snprintf(f->why, sizeof f->why, "%s", e.msg);
            return 0;
        }
        f->from[i] = "file";
        return 1;
    }
    snprintf(f->why, sizeof f->why, "unknown key '%s' (ferryd --help lists them)", name);
    return 0;
}

static bool
s_file(const char *path, fy_config_t *cfg, const char **from, fy_err_t *err)
{
    s_file_t f = {.cfg = cfg, .from = from, .path = path, .err = err};
    int line = ini_parse(path, s_file_key, &f);
    if (line == -1) {
        fy_err_set(err, FERRY_EINVAL, "--config %s: cannot open: %s", path, strerror(errno));
        return false;
    }
    if (line != 0) {
        fy_err_set(err, FERRY_EINVAL, "%s:%d: %s", path, line,
                   f.why[0] ? f.why : "not a key = value line");
        return false;
    }
    return true;
}

/* The value of key @p k in @p cfg as text, as a file would say it. */
static void
s_value_text(const fy_config_t *cfg, const s_key_t *k, char *out, size_t cap)
{
    const char *base = (const char *)cfg + k->offset;
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    switch (k->kind) {
    case S_LEVEL: {
        fy_level_t l;
        memcpy(&l, base, sizeof l);
        snprintf(out, cap, "%s", (unsigned)l < 4 ? levels[l] : "?");
        return;
    }
    case S_SIZE:
    case S_UINT: {
        uint64_t n;
        memcpy(&n, base, sizeof n);
        snprintf(out, cap, "%llu", (unsigned long long)n);
        return;
    }
    default:
        snprintf(out, cap, "%s", base);
    }
}

/* --check-config: every setting, with where it came from. */
static void
s_print_config(FILE *out, const fy_config_t *cfg, const char **from)
{
    for (size_t i = 0; i < S_NKEYS; i++) {
        char v[1100];
        s_value_text(cfg, &s_keys[i], v, sizeof v);
        fprintf(out, "%-18s = %-40s ; %s\n", s_keys[i].flag, v, from[i]);
    }
    fprintf(out, "%-18s = %-40s ; %s\n", "insecure", cfg->insecure ? "true" : "false",
            from[S_NKEYS]);
}

/* --peers parsed (ID=HOST:PORT,...), checked against --cluster-id. */
static bool
s_cluster(fy_config_t *cfg, fy_err_t *err)
{
    if (!cfg->cluster_id && !cfg->peers[0] && !cfg->join[0])
        return true;
    if (cfg->join[0] && cfg->peers[0]) {
        fy_err_set(err, FERRY_EINVAL,
                   "--join (a new node, added by the leader) or --peers (the first voters), not "
                   "both");
        return false;
    }
    if (cfg->join[0] && cfg->cluster_id) { /* its own address; the rest comes from the leader */
        const char *c = strrchr(cfg->join, ':');
        if (!c || c == cfg->join || !c[1] || strspn(c + 1, "0123456789") != strlen(c + 1) ||
            strlen(cfg->join) >= sizeof cfg->peer_addrs[0]) {
            fy_err_set(err, FERRY_EINVAL, "--join %s: wants HOST:PORT", cfg->join);
            return false;
        }
        cfg->npeers = 1;
        cfg->peer_ids[0] = cfg->cluster_id;
        snprintf(cfg->peer_addrs[0], sizeof cfg->peer_addrs[0], "%s", cfg->join);
        return true;
    }
    if (!cfg->cluster_id || (!cfg->peers[0] && !cfg->join[0])) {
        fy_err_set(err, FERRY_EINVAL, "a cluster needs both --cluster-id and --peers (or --join)");
        return false;
    }
    char list[sizeof cfg->peers];
    memcpy(list, cfg->peers, sizeof list);
    bool me = false;
    cfg->npeers = 0;
    for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(p, '='), *end;
        errno = 0;
        unsigned long long id = eq ? strtoull(p, &end, 10) : 0;
        const char *addr = eq ? eq + 1 : "";
        const char *colon = strrchr(addr, ':');
        if (!eq || end != eq || errno || id == 0 || !colon || colon == addr ||
            strspn(colon + 1, "0123456789") != strlen(colon + 1) || !colon[1] ||
            strlen(addr) >= sizeof cfg->peer_addrs[0]) {
            fy_err_set(err, FERRY_EINVAL,
                       "--peers: '%s' is not ID=HOST:PORT (e.g. 1=10.0.0.1:7001)", p);
            return false;
        }
        if (cfg->npeers == FY_CLUSTER_MAX) {
            fy_err_set(err, FERRY_EINVAL, "--peers: at most %d voters", FY_CLUSTER_MAX);
            return false;
        }
        for (size_t i = 0; i < cfg->npeers; i++)
            if (cfg->peer_ids[i] == id || strcmp(cfg->peer_addrs[i], addr) == 0) {
                fy_err_set(err, FERRY_EINVAL, "--peers: node %llu or address %s twice", id, addr);
                return false;
            }
        cfg->peer_ids[cfg->npeers] = id;
        snprintf(cfg->peer_addrs[cfg->npeers++], sizeof cfg->peer_addrs[0], "%s", addr);
        me = me || id == cfg->cluster_id;
    }
    if (!me) {
        fy_err_set(err, FERRY_EINVAL, "--cluster-id %llu is not among --peers",
                   (unsigned long long)cfg->cluster_id);
        return false;
    }
    const char *colon = strrchr(cfg->cluster_bind, ':');
    if (cfg->cluster_bind[0] && (!colon || colon == cfg->cluster_bind || !colon[1] ||
                                 strspn(colon + 1, "0123456789") != strlen(colon + 1))) {
        fy_err_set(err, FERRY_EINVAL, "--cluster-bind %s: wants HOST:PORT", cfg->cluster_bind);
        return false;
    }
    return true;
}

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: ferryd [options]\n\nOptions (environment variable in brackets):\n");
    for (size_t i = 0; i < S_NKEYS; i++)
        fprintf(out, "  --%-18s %s (default %s) [%s]\n", s_keys[i].flag, s_keys[i].help,
                *s_keys[i].deflt ? s_keys[i].deflt : "off", s_keys[i].env);
    fprintf(out, "  --%-18s %s [FERRY_INSECURE=1]\n", "insecure",
            "allow --bind beyond this host without authentication (docs/security.md)");
    fprintf(out, "  --%-18s %s [FERRY_CONFIG]\n", "config FILE",
            "read settings from FILE first (INI: these names as keys, e.g. map-size = 2G); the "
            "environment and flags override it");
    fprintf(out, "  --%-18s %s\n", "check-config",
            "check the settings, print each with where it came from, and exit");
    fprintf(out, "  --%-18s %s\n  --%-18s %s\n", "help", "show this help", "version",
            "show the version");
}

fy_options_result_t
fy_options_parse(int argc, char **argv, fy_config_t *cfg, fy_err_t *err)
{
    memset(cfg, 0, sizeof *cfg);
    const char *from[S_NKEYS + 1];
    for (size_t i = 0; i <= S_NKEYS; i++)
        from[i] = "default";
    for (size_t i = 0; i < S_NKEYS; i++)
        if (!s_set(cfg, &s_keys[i], s_keys[i].deflt, "default", err))
            return FY_OPTIONS_ERROR;
    /* Defaults < the file < the environment < flags: the file first. */
    const char *config = getenv("FERRY_CONFIG");
    bool check = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
        else if (strcmp(argv[i], "--check-config") == 0)
            check = true;
    }
    if (config && *config) {
        if (!s_file(config, cfg, from, err))
            return FY_OPTIONS_ERROR;
        if (cfg->insecure)
            from[S_NKEYS] = "file";
    }
    for (size_t i = 0; i < S_NKEYS; i++) {
        const char *v = getenv(s_keys[i].env);
        if (v && !s_set(cfg, &s_keys[i], v, s_keys[i].env, err))
            return FY_OPTIONS_ERROR;
        if (v)
            from[i] = s_keys[i].env;
    }
    const char *insecure = getenv("FERRY_INSECURE");
    if (insecure) {
        cfg->insecure = strcmp(insecure, "1") == 0;
        from[S_NKEYS] = "FERRY_INSECURE";
    }
    struct option longopts[S_NKEYS + 6];
    for (size_t i = 0; i < S_NKEYS; i++)
        longopts[i] = (struct option){s_keys[i].flag, required_argument, NULL, (int)i};
    longopts[S_NKEYS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[S_NKEYS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[S_NKEYS + 2] = (struct option){"insecure", no_argument, NULL, 'I'};
    longopts[S_NKEYS + 3] = (struct option){"config", required_argument, NULL, 'C'};
    longopts[S_NKEYS + 4] = (struct option){"check-config", no_argument, NULL, 'K'};
    longopts[S_NKEYS + 5] = (struct option){NULL, 0, NULL, 0};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'h') {
            s_usage(stdout);
            return FY_OPTIONS_HELP;
        }
        if (c == 'I') {
            cfg->insecure = true;
            from[S_NKEYS] = "flag";
            continue;
        }
        if (c == 'C' || c == 'K')
            continue; /* read before the environment */
        if (c == 'V') {
            printf("ferryd %s (protocol %d)\n", FY_VERSION_STRING, FY_PROTOCOL_VERSION);
            return FY_OPTIONS_VERSION;
        }
        if (c == '?' || c == ':' || c < 0 || (size_t)c >= S_NKEYS) {
            fy_err_set(err, FERRY_EINVAL, "unknown option or missing value: %s (see --help)",
                       argv[optind - 1]);
            return FY_OPTIONS_ERROR;
        }
        if (!s_set(cfg, &s_keys[c], optarg, "flag", err))
            return FY_OPTIONS_ERROR;
        from[c] = "flag";
    }
    if (optind < argc) {
        fy_err_set(err, FERRY_EINVAL, "unexpected argument: %s (see --help)", argv[optind]);
        return FY_OPTIONS_ERROR;
    }
    if (cfg->users[0] && !cfg->curve_secret[0]) {
        fy_err_set(err, FERRY_EINVAL,
                   "--users needs --curve-secret: users are known by their CURVE keys "
                   "(docs/security.md)");
        return FY_OPTIONS_ERROR;
    }
    /* Beyond this host only with users (CURVE keys checked by the ZAP
     * handler), or on purpose. */
    if (!fy_options_local_endpoint(cfg->bind) && !cfg->insecure && !cfg->users[0]) {
        fy_err_set(err, FERRY_EINVAL,
                   "--bind %s reaches beyond this host and no users are set: start with "
                   "--curve-secret and --users, bind 127.0.0.1, or pass --insecure "
                   "(docs/security.md)",
                   cfg->bind);
        return FY_OPTIONS_ERROR;
    }
    if (!s_cluster(cfg, err))
        return FY_OPTIONS_ERROR;
    if (check) {
        s_print_config(stdout, cfg, from);
        return FY_OPTIONS_CHECKED;
    }
    return FY_OPTIONS_RUN;
}

bool
fy_options_local_endpoint(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9))
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6;
    return !strncmp(host, "127.", 4) || !strncmp(host, "localhost:", 10) ||
           !strncmp(host, "[::1]:", 6);
}
