/* SPDX-License-Identifier: MIT */
/*
 * test_connections.c - 1,000 clients at once (issue 15): four child
 * processes (this program started again with "conn-child") open 250
 * libferry clients each, every one its own connection. Once all 1,000 are
 * connected - the broker holds 1,000 sockets more than before - every
 * client publishes 10 messages with ids into one work queue, then the
 * clients fetch and ack until the queue is empty. The checker: 10,000
 * confirms, every message fetched and acked exactly once across all
 * clients, the queue empty; the broker's memory is measured with all of
 * them connected and after they left (bounded, printed), and it serves a
 * new client afterwards.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"

#define S_CHILDREN  4
#define S_PER_CHILD 250
#define S_MSGS      10 /* per client */

/* Raises the open-files limit to its hard limit (each client holds a few
 * descriptors). @return the limit now. */
static long
s_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

static bool
s_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---- a child: 250 clients ------------------------------------------------------ */

static int
s_child(const char *endpoint, int k, const char *dir)
{
    char ready[400], go[400], out[400];
    snprintf(ready, sizeof ready, "%s/ready.%d", dir, k);
    snprintf(go, sizeof go, "%s/go", dir);
    snprintf(out, sizeof out, "%s/fetched.%d", dir, k);
    if (s_raise_nofile() < 4096) {
        fprintf(stderr, "child %d: the open-files limit is below 4096\n", k);
        return 2;
    }
    static ferry_client_t *cs[S_PER_CHILD];
    for (int i = 0; i < S_PER_CHILD; i++) {
        cs[i] = fy_connect(endpoint, 30000, 64);
        if (!cs[i] || ferry_client_ping(cs[i]) != FERRY_OK) {
            fprintf(stderr, "child %d: client %d could not connect\n", k, i);
            return 1;
        }
    }
    FILE *f = fopen(ready, "w");
    if (f)
        fclose(f);
    long long until = fy_now_ms() + 120000;
    while (!s_exists(go) && fy_now_ms() < until)
        fy_sleep_ms(10);
    /* Every client publishes its 10, pipelined, then waits for the confirms. */
    for (int i = 0; i < S_PER_CHILD; i++)
        for (int j = 0; j < S_MSGS; j++) {
            char id[32];
            snprintf(id, sizeof id, "c%d-%d-%d", k, i, j);
            ferry_message_t m = {.data = id, .len = strlen(id), .id = id};
            if (ferry_client_publish_async(cs[i], "jobs", &m, NULL, NULL) != FERRY_OK)
                return 1;
        }
    for (int i = 0; i < S_PER_CHILD; i++)
        if (ferry_client_flush(cs[i], 60000) != FERRY_OK) {
            fprintf(stderr, "child %d: client %d: %s\n", k, i, ferry_client_last_error(cs[i]));
            return 1;
        }
    /* Then they take work until the queue is empty (acked messages leave it). */
    FILE *o = fopen(out, "w");
    if (!o)
        return 1;
    for (;;) {
        size_t round = 0;
        for (int i = 0; i < S_PER_CHILD; i++) {
            const ferry_stored_message_t *msgs;
            size_t n = 0;
            if (ferry_client_fetch(cs[i], "jobs", NULL, 10, 0, &msgs, &n) != FERRY_OK)
                return 1;
            uint64_t seqs[10];
            for (size_t m = 0; m < n; m++) {
                fprintf(o, "%s\n", msgs[m].id);
                seqs[m] = msgs[m].seq;
            }
            if (n && ferry_client_ack(cs[i], "jobs", NULL, seqs, n) != FERRY_OK)
                return 1;
            round += n;
        }
        ferry_topic_info_t info;
        if (round == 0 && ferry_client_info(cs[0], "jobs", &info) == FERRY_OK && info.messages == 0)
            break;
        if (round == 0)
            fy_sleep_ms(5);
    }
    fclose(o);
    for (int i = 0; i < S_PER_CHILD; i++)
        ferry_client_destroy(&cs[i]);
    return 0;
}

/* ---- the test ------------------------------------------------------------------- */

/* Sockets ferryd @p pid holds now. */
static int
s_sockets(int pid)
{
    char path[64], link[400], target[128];
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len > 0 && strncmp(target, "socket:", 7) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static void
test_thousand_clients(void **state)
{
    fy_fx_t *fx = *state;
    assert_true(s_raise_nofile() >= 4096);
    assert_int_equal(ferry_client_declare(fx->c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL),
                     FERRY_OK);
    char dir[256];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    int sockets_before = s_sockets(fx->d.pid);
    long rss_before = fy_proc_kib(fx->d.pid, "VmRSS");
    int pids[S_CHILDREN];
    char self[400] = "", log[400];
    assert_true(readlink("/proc/self/exe", self, sizeof self - 1) > 0);
    for (int k = 0; k < S_CHILDREN; k++) {
        char num[8];
        snprintf(num, sizeof num, "%d", k);
        snprintf(log, sizeof log, "%s/child.%d.log", dir, k);
        const char *argv[] = {self, "conn-child", fx->d.endpoint, num, dir, NULL};
        pids[k] = fy_spawn(log, argv);
        assert_true(pids[k] > 0);
    }
    /* All connected at once. */
    long long until = fy_now_ms() + 120000;
    for (int k = 0; k < S_CHILDREN; k++) {
        char ready[400];
        snprintf(ready, sizeof ready, "%s/ready.%d", dir, k);
        while (!s_exists(ready) && fy_now_ms() < until) {
            int st;
            if (waitpid(pids[k], &st, WNOHANG) == pids[k])
                fail_msg("child %d ended early (status 0x%x; %s/child.%d.log)", k, st, dir, k);
            fy_sleep_ms(20);
        }
        assert_true(s_exists(ready));
    }
    int sockets = s_sockets(fx->d.pid);
    long rss_peak = fy_proc_kib(fx->d.pid, "VmRSS");
    assert_true(sockets - sockets_before >= S_CHILDREN * S_PER_CHILD);
    char go[400];
    snprintf(go, sizeof go, "%s/go", dir);
    FILE *f = fopen(go, "w");
    assert_non_null(f);
    fclose(f);
    for (int k = 0; k < S_CHILDREN; k++) {
        int st;
        waitpid(pids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("child %d: status 0x%x (%s/child.%d.log)", k, st, dir, k);
    }
    /* Every message fetched and acked once, the queue empty. */
    enum { TOTAL = S_CHILDREN * S_PER_CHILD * S_MSGS };
    uint8_t *seen = calloc(TOTAL, 1);
    size_t fetched = 0;
    for (int k = 0; k < S_CHILDREN; k++) {
        char path[400], line[64];
        snprintf(path, sizeof path, "%s/fetched.%d", dir, k);
        FILE *in = fopen(path, "r");
        assert_non_null(in);
        while (fgets(line, sizeof line, in)) {
            int ck, ci, cj;
            assert_int_equal(sscanf(line, "c%d-%d-%d", &ck, &ci, &cj), 3);
            size_t slot = ((size_t)ck * S_PER_CHILD + (size_t)ci) * S_MSGS + (size_t)cj;
            assert_true(slot < TOTAL);
            assert_int_equal(seen[slot]++, 0);
            fetched++;
        }
        fclose(in);
    }
    free(seen);
    assert_int_equal(fetched, TOTAL);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(fx->c, "jobs", &info), FERRY_OK);
    assert_int_equal(info.messages, 0);
    assert_int_equal(info.last_seq, TOTAL);
    /* They left; the broker serves on. */
    until = fy_now_ms() + 10000;
    while (s_sockets(fx->d.pid) > sockets_before + 8 && fy_now_ms() < until)
        fy_sleep_ms(20);
    long rss_after = fy_proc_kib(fx->d.pid, "VmRSS");
    ferry_client_t *late = fy_connect(fx->d.endpoint, 5000, 10);
    assert_non_null(late);
    assert_int_equal(ferry_client_ping(late), FERRY_OK);
    ferry_client_destroy(&late);
    printf("1,000 clients: broker sockets %d -> %d; RSS %ld KiB before, %ld with all connected, "
           "%ld after; %d messages each once\n",
           sockets_before, sockets, rss_before, rss_peak, rss_after, TOTAL);
    /* About 100 KiB per connection at most (libzmq's pipes and buffers). */
    bool sanitized = getenv("FERRY_SAN") && *getenv("FERRY_SAN");
    if (!sanitized)
        assert_true(rss_peak - rss_before < S_CHILDREN * S_PER_CHILD * 100);
    fy_rmtree(dir);
}

int
main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "conn-child") == 0)
        return s_child(argv[2], atoi(argv[3]), argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_thousand_clients, fy_fx_setup, fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("connections", tests, NULL, NULL);
}
