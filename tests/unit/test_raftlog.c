/* SPDX-License-Identifier: MIT */
/*
 * test_raftlog.c - the replicated log (broker/raftlog.c) with three real
 * node processes on loopback, each with its own directory:
 *
 * - whichever node leads appends entries ("<node>-<n>", each value once)
 *   and records those committed; the leader is killed with -9 three times
 *   (started again at once, on its directory), one more time with its
 *   directory wiped (it comes back empty and catches up, from a snapshot:
 *   snapshots are taken every 64 entries);
 * - at the end every node has applied the same entries in the same order,
 *   and every entry an append called committed is among them exactly once;
 * - bad configurations are refused with a reason.
 *
 * The test program is its own node: `test_raftlog node ID DIR PORT1 PORT2
 * PORT3` (the nodes' state machine: the list of applied values, written to
 * DIR/applied at the end; DIR/state: role, term, applied, committed
 * appends, refreshed every 50 ms).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "raftlog.h"

#define S_NODES 3

/* ---- a node ------------------------------------------------------------------ */

typedef struct {
    char **values; /* applied, in order */
    size_t n, cap;
    unsigned restores; /* snapshots installed */
} s_fsm_t;

static int
s_push(s_fsm_t *f, const char *v, size_t len)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 1024;
        char **grown = realloc(f->values, cap * sizeof *grown);
        if (!grown)
            return -1;
        f->values = grown;
        f->cap = cap;
    }
    f->values[f->n] = strndup(v, len);
    return f->values[f->n++] ? 0 : -1;
}

static int
s_apply(void *user, uint64_t index, const uint8_t *data, size_t len)
{
    (void)index;
    return s_push(user, (const char *)data, len);
}

/* A snapshot: the values, one per line. */
static int
s_snapshot(void *user, uint8_t **data, size_t *len)
{
    s_fsm_t *f = user;
    size_t need = 1;
    for (size_t i = 0; i < f->n; i++)
        need += strlen(f->values[i]) + 1;
    char *buf = malloc(need), *at = buf;
    if (!buf)
        return -1;
    for (size_t i = 0; i < f->n; i++)
        at += sprintf(at, "%s\n", f->values[i]);
    *data = (uint8_t *)buf;
    *len = (size_t)(at - buf);
    return 0;
}

static int
s_restore(void *user, const uint8_t *data, size_t len)
{
    s_fsm_t *f = user;
    for (size_t i = 0; i < f->n; i++)
        free(f->values[i]);
    f->n = 0;
    f->restores++;
    const char *p = (const char *)data, *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl || s_push(f, p, (size_t)(nl - p)))
            return -1;
        p = nl + 1;
    }
    return 0;
}

static bool
s_exists(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%.600s/%.90s", dir, name);
    return access(path, F_OK) == 0;
}

static void
s_write(const char *dir, const char *name, const char *text)
{
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%.500s/%.90s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

/* A node: appends while it leads, until DIR/../stop appears; then waits
 * until it applied everything committed and writes DIR/applied. */
static int
s_node(int argc, char **argv)
{
    if (argc != 7)
        return 2;
    uint64_t id = strtoull(argv[2], NULL, 10);
    const char *dir = argv[3];
    char addr[S_NODES][32], raftdir[600], top[600];
    fy_raftlog_peer_t peers[S_NODES];
    for (int i = 0; i < S_NODES; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%s", argv[4 + i]);
        peers[i] = (fy_raftlog_peer_t){(uint64_t)i + 1, addr[i]};
    }
    snprintf(raftdir, sizeof raftdir, "%s/raft", dir);
    snprintf(top, sizeof top, "%s/..", dir);
    s_fsm_t fsm = {0};
    fy_raftlog_config_t cfg = {.id = id,
                               .dir = raftdir,
                               .peers = peers,
                               .npeers = S_NODES,
                               .election_ms = 300,
                               .heartbeat_ms = 50,
                               .snapshot_every = 64,
                               .snapshot_trailing = 16,
                               .fsm = {&fsm, s_apply, s_snapshot, s_restore}};
    fy_log_t log = {.level = FY_LOG_INFO};
    fy_raftlog_t *r = NULL;
    fy_err_t err = {0};
    if (fy_raftlog_start(&cfg, &log, &r, &err) != FERRY_OK) {
        fprintf(stderr, "node %llu: %s\n", (unsigned long long)id, err.msg);
        return 1;
    }
    char acked_path[600];
    snprintf(acked_path, sizeof acked_path, "%s/acked", dir);
    FILE *acked = fopen(acked_path, "a");
    unsigned long n = 0, committed = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long long last_state = 0;
    for (;;) {
        fy_raftlog_state_t st;
        fy_raftlog_state(r, &st);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ms = (now.tv_sec - t0.tv_sec) * 1000LL + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms - last_state >= 50) {
            char text[200];
            snprintf(text, sizeof text, "%d %llu %llu %lu\n", (int)st.role,
                     (unsigned long long)st.term, (unsigned long long)st.applied_index, committed);
            s_write(dir, "state", text);
            last_state = ms;
        }
        if (s_exists(top, "stop"))
            break;
        if (st.role != FY_RAFTLOG_LEADER) {
            usleep(10000);
            continue;
        }
        /* A value no other append ever had: node, start time, counter. */
        char v[64];
        int len = snprintf(v, sizeof v, "%llu-%lld.%09ld-%lu", (unsigned long long)id,
                           (long long)t0.tv_sec, t0.tv_nsec, n++);
        if (fy_raftlog_append(r, v, (size_t)len, NULL) == FY_RAFTLOG_COMMITTED) {
            fprintf(acked, "%s\n", v);
            fflush(acked); /* the process may die any moment: what is acked is written */
            committed++;
        }
    }
    /* Everything committed anywhere reaches this node: wait until its
     * applied index stops moving for a while. */
    uint64_t last = 0;
    int still = 0;
    while (still < 20) {
        fy_raftlog_state_t st;
        fy_raftlog_state(r, &st);
        still = st.applied_index == last && st.applied_index >= st.commit_index ? still + 1 : 0;
        last = st.applied_index;
        usleep(50000);
    }
    fy_raftlog_stop(&r);
    fclose(acked);
    char path[600];
    snprintf(path, sizeof path, "%s/applied", dir);
    FILE *out = fopen(path, "w");
    for (size_t i = 0; out && i < fsm.n; i++)
        fprintf(out, "%s\n", fsm.values[i]);
    if (out)
        fclose(out);
    char restores[32];
    snprintf(restores, sizeof restores, "%u\n", fsm.restores);
    s_write(dir, "restores", restores);
    for (size_t i = 0; i < fsm.n; i++)
        free(fsm.values[i]);
    free(fsm.values);
    return out ? 0 : 1;
}

/* ---- the test ------------------------------------------------------------------ */

/* This program, to run nodes with (not /proc/self/exe: under valgrind that
 * is valgrind). */
static char s_exe[4096];

typedef struct {
    char top[300], dir[S_NODES][400], port[S_NODES][16];
    pid_t pid[S_NODES];
} s_cluster_t;

static pid_t
s_spawn(s_cluster_t *c, int i)
{
    char log[500];
    snprintf(log, sizeof log, "%s/node.log", c->dir[i]);
    mkdir(c->dir[i], 0700);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        char id[16];
        snprintf(id, sizeof id, "%d", i + 1);
        execl(s_exe, "test_raftlog", "node", id, c->dir[i], c->port[0], c->port[1],
              c->port[2], (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The node's state file: role, term, applied index, committed appends. */
static bool
s_state(const s_cluster_t *c, int i, int *role, unsigned long *applied, unsigned long *committed)
{
    char path[500];
    snprintf(path, sizeof path, "%s/state", c->dir[i]);
    FILE *f = fopen(path, "r");
    unsigned long long term;
    bool ok = f && fscanf(f, "%d %llu %lu %lu", role, &term, applied, committed) == 4;
    if (f)
        fclose(f);
    return ok;
}

/* Waits until one node leads and has committed @p more appends since it
 * was seen first; returns its index. */
static int
s_leader_after(s_cluster_t *c, unsigned long more)
{
    long long until = fy_now_ms() + 30000;
    int leader = -1;
    unsigned long base = 0;
    while (fy_now_ms() < until) {
        for (int i = 0; i < S_NODES; i++) {
            int status;
            if (c->pid[i] > 0 && waitpid(c->pid[i], &status, WNOHANG) == c->pid[i])
                fail_msg("node %d ended by itself: %s %d (%s/node.log)", i + 1,
                         WIFSIGNALED(status) ? "signal" : "exit",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), c->dir[i]);
            int role;
            unsigned long applied, committed;
            if (c->pid[i] <= 0 || !s_state(c, i, &role, &applied, &committed) ||
                role != FY_RAFTLOG_LEADER)
                continue;
            if (leader != i) {
                leader = i;
                base = committed;
            } else if (committed >= base + more) {
                return i;
            }
        }
        usleep(20000);
    }
    return -1;
}

/* Lines of @p path, or -1. */
static long
s_lines(const char *path, char ***out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = 0, cap = 0;
    char **lines = NULL, buf[128];
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            lines = realloc(lines, cap * sizeof *lines);
        }
        lines[n++] = strdup(buf);
    }
    fclose(f);
    *out = lines;
    return (long)n;
}

static int
s_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
test_three_nodes_leader_killed(void **state)
{
    (void)state;
    s_cluster_t c = {0};
    assert_int_equal(fy_tmpdir(c.top, sizeof c.top), 0);
    for (int i = 0; i < S_NODES; i++) {
        snprintf(c.dir[i], sizeof c.dir[i], "%s/n%d", c.top, i + 1);
        snprintf(c.port[i], sizeof c.port[i], "%d", fy_free_port());
    }
    for (int i = 0; i < S_NODES; i++)
        assert_true((c.pid[i] = s_spawn(&c, i)) > 0);
    /* Three kills of the leader, then one with its directory wiped. */
    int wiped = -1;
    for (int k = 0; k < 4; k++) {
        int l = s_leader_after(&c, 300);
        assert_true(l >= 0);
        kill(c.pid[l], SIGKILL);
        waitpid(c.pid[l], NULL, 0);
        c.pid[l] = 0;
        if (k == 3) {
            char cmd[600];
            snprintf(cmd, sizeof cmd, "rm -rf '%s/raft'", c.dir[l]);
            assert_int_equal(system(cmd), 0);
            wiped = l;
        }
        usleep(200000);
        assert_true((c.pid[l] = s_spawn(&c, l)) > 0);
    }
    assert_true(s_leader_after(&c, 300) >= 0);
    s_write(c.top, "stop", "");
    for (int i = 0; i < S_NODES; i++) {
        int status;
        assert_int_equal(waitpid(c.pid[i], &status, 0), c.pid[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    /* The same entries in the same order on every node. */
    char **applied[S_NODES], path[500];
    long n[S_NODES];
    for (int i = 0; i < S_NODES; i++) {
        snprintf(path, sizeof path, "%s/applied", c.dir[i]);
        assert_true((n[i] = s_lines(path, &applied[i])) > 0);
    }
    for (int i = 1; i < S_NODES; i++) {
        assert_int_equal(n[i], n[0]);
        for (long j = 0; j < n[0]; j++)
            assert_string_equal(applied[i][j], applied[0][j]);
    }
    /* Each value once; every committed append among them. */
    char **sorted = malloc((size_t)n[0] * sizeof *sorted);
    memcpy(sorted, applied[0], (size_t)n[0] * sizeof *sorted);
    qsort(sorted, (size_t)n[0], sizeof *sorted, s_cmp);
    for (long j = 1; j < n[0]; j++)
        assert_string_not_equal(sorted[j], sorted[j - 1]);
    long acked_total = 0;
    for (int i = 0; i < S_NODES; i++) {
        char **acked;
        snprintf(path, sizeof path, "%s/acked", c.dir[i]);
        long na = s_lines(path, &acked);
        for (long j = 0; j < na; j++) {
            assert_non_null(bsearch(&acked[j], sorted, (size_t)n[0], sizeof *sorted, s_cmp));
            free(acked[j]);
        }
        acked_total += na > 0 ? na : 0;
        free(acked);
    }
    /* The wiped node had nothing: it caught up from a snapshot (the log
     * keeps only 16 entries behind one). */
    snprintf(path, sizeof path, "%s/restores", c.dir[wiped]);
    FILE *rf = fopen(path, "r");
    unsigned restores = 0;
    assert_non_null(rf);
    assert_int_equal(fscanf(rf, "%u", &restores), 1);
    fclose(rf);
    assert_true(restores >= 1);
    printf("3 nodes, leader killed 4 times (once wiped, then restored from %u snapshot%s): "
           "%ld entries applied on each, %ld appends committed\n",
           restores, restores == 1 ? "" : "s", n[0], acked_total);
    assert_true(acked_total >= 1500);
    free(sorted);
    for (int i = 0; i < S_NODES; i++) {
        for (long j = 0; j < n[i]; j++)
            free(applied[i][j]);
        free(applied[i]);
    }
    fy_rmtree(c.top);
}

static int
s_ignore(void *user, uint64_t index, const uint8_t *data, size_t len)
{
    (void)user, (void)index, (void)data, (void)len;
    return 0;
}

static void
test_bad_configurations(void **state)
{
    (void)state;
    char dir[300];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    fy_raftlog_peer_t two[] = {{1, "127.0.0.1:7001"}, {1, "127.0.0.1:7002"}};
    fy_raftlog_peer_t other[] = {{2, "127.0.0.1:7002"}};
    fy_raftlog_peer_t zero[] = {{0, "127.0.0.1:7002"}};
    struct {
        fy_raftlog_config_t cfg;
        const char *says;
    } bad[] = {
        {{.id = 1, .dir = dir, .peers = two, .npeers = 2, .fsm = {.apply = s_ignore}}, "twice"},
        {{.id = 1, .dir = dir, .peers = other, .npeers = 1, .fsm = {.apply = s_ignore}},
         "not among the peers"},
        {{.id = 1, .dir = dir, .peers = zero, .npeers = 1, .fsm = {.apply = s_ignore}},
         "an id above 0"},
        {{.id = 1, .dir = dir, .peers = other, .npeers = 1}, "an apply"},
        {{.id = 1, .dir = dir, .peers = other, .npeers = 0, .fsm = {.apply = s_ignore}},
         "1-9 peers"},
    };
    fy_log_t log = {.level = FY_LOG_ERROR};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fy_raftlog_t *r = (fy_raftlog_t *)1;
        fy_err_t err = {0};
        assert_int_equal(fy_raftlog_start(&bad[i].cfg, &log, &r, &err), FERRY_EINVAL);
        assert_null(r);
        assert_non_null(strstr(err.msg, bad[i].says));
    }
    fy_rmtree(dir);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "node") == 0)
        return s_node(argc, argv);
    if (!realpath(argv[0], s_exe))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configurations),
        cmocka_unit_test(test_three_nodes_leader_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
