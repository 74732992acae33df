/* SPDX-License-Identifier: MIT */
/*
 * test_disk_full.c - a full file system is an error, never an outage (issue
 * 14). ferryd runs on a real 64 MiB tmpfs with its default 8 GiB map (far
 * larger than the disk), in the exact sequence that used to fail:
 *
 * - publishing until the disk is full gets ESTORAGE_FULL naming the free
 *   space (it was EINTERNAL "storage write failed"); /health turns 503 and
 *   /metrics says so (ferry_storage_full, ferry_disk_free_bytes);
 * - reads, ping, fetch and ack go on while publishes are refused;
 * - restarted with kill -9 on that data past the dedupe window, the broker
 *   answers ping and reads, refuses publishes with ESTORAGE_FULL, and does
 *   not spin writing log lines (it wrote ~4,700 a second);
 * - deleting the queue frees the space (the removal runs in a transaction
 *   of its own, with the reserve the broker gave back), /health is 200
 *   again and publishes are stored.
 *
 * It mounts the tmpfs, so it runs as root (CI does).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"

typedef struct {
    char mnt[200];
    bool mounted;
    fy_ferryd_t d;
    int port;
    char addr[64];
} s_fx_t;

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    if (!fx || fy_tmpfs_mount(fx->mnt, sizeof fx->mnt, "64m") != 0) {
        free(fx);
        return -1;
    }
    fx->mounted = true;
    snprintf(fx->d.dir, sizeof fx->d.dir, "%s/ferryd", fx->mnt);
    if (mkdir(fx->d.dir, 0755) != 0)
        return -1;
    fx->port = fy_free_port();
    snprintf(fx->addr, sizeof fx->addr, "127.0.0.1:%d", fx->port);
    fx->d.extra[0] = "--metrics";
    fx->d.extra[1] = fx->addr;
    fx->d.extra[2] = "--dedupe-window-ms";
    fx->d.extra[3] = "1000";
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->d.pid)
        fy_ferryd_signal(&fx->d, SIGKILL);
    if (fx->mounted)
        fy_tmpfs_unmount(fx->mnt);
    free(fx);
    return 0;
}

/* Waits (up to 10 s) for /health to answer @p code. */
static void
s_wait_health(s_fx_t *fx, const char *code)
{
    char body[512];
    long long until = fy_now_ms() + 10000;
    while (fy_now_ms() < until) {
        if (fy_http(fx->port, "GET", "/health", body, sizeof body) == 0 && strstr(body, code))
            return;
        fy_sleep_ms(20);
    }
    fail_msg("/health never answered %s; last: %s", code, body);
}

static ferry_status_t
s_publish(ferry_client_t *c, int i, const char *payload, size_t len)
{
    char id[32];
    snprintf(id, sizeof id, "m-%d", i);
    ferry_message_t m = {.data = payload, .len = len, .id = id};
    return ferry_client_publish(c, "q", &m, NULL);
}

static void
test_full_disk_is_an_error_not_an_outage(void **state)
{
    s_fx_t *fx = *state;
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    ferry_client_t *c = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(c);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "q", NULL, NULL, NULL), FERRY_OK);
    static char payload[60000];
    memset(payload, 'p', sizeof payload);

    /* Fill the disk: every refusal is ESTORAGE_FULL with the free space. */
    int stored = 0;
    ferry_status_t st = FERRY_OK;
    while (stored < 5000 && (st = s_publish(c, stored, payload, sizeof payload)) == FERRY_OK)
        stored++;
    if (st != FERRY_ESTORAGE_FULL)
        fail_msg("publish %d: %s (%s), expected ESTORAGE_FULL", stored, ferry_errname(st),
                 ferry_client_last_error(c));
    assert_true(stored > 500 && stored < 1100); /* about 60 MiB of 64 */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_publish(c, stored + i, payload, sizeof payload), FERRY_ESTORAGE_FULL);
        assert_non_null(strstr(ferry_client_last_error(c), "the disk is full ("));
        assert_non_null(strstr(ferry_client_last_error(c), "bytes free)"));
    }
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "new", NULL, NULL, NULL),
                     FERRY_ESTORAGE_FULL);
    s_wait_health(fx, "503");
    char body[8192];
    assert_int_equal(fy_http(fx->port, "GET", "/health", body, sizeof body), 0);
    assert_non_null(strstr(body, "storage full: publishes refused"));
    assert_int_equal(fy_http(fx->port, "GET", "/metrics", body, sizeof body), 0);
    assert_non_null(strstr(body, "\nferry_storage_full 1\n"));
    assert_non_null(strstr(body, "\nferry_disk_total_bytes 67108864\n"));
    assert_non_null(strstr(body, "\nferry_disk_free_bytes "));

    /* Reads, ping, fetch and ack go on. */
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    const ferry_stored_message_t *m;
    size_t n;
    assert_int_equal(ferry_client_get(c, "q", 1, 2, &m, &n), FERRY_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ferry_client_fetch(c, "q", NULL, 3, 0, &m, &n), FERRY_OK);
    assert_true(n >= 1);
    uint64_t seqs[3] = {m[0].seq, n > 1 ? m[1].seq : m[0].seq, n > 2 ? m[2].seq : m[0].seq};
    assert_int_equal(ferry_client_ack(c, "q", NULL, seqs, n), FERRY_OK);
    ferry_client_destroy(&c);

    /* kill -9, past the dedupe window, and back on the full disk. */
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    fy_sleep_ms(1500);
    assert_int_equal(fy_ferryd_start(&fx->d), 0);
    c = fy_connect(fx->d.endpoint, 5000, 100);
    assert_non_null(c);
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    assert_int_equal(ferry_client_get(c, "q", 1, 1, &m, &n), FERRY_OK);
    ferry_topic_info_t info;
    assert_int_equal(ferry_client_info(c, "q", &info), FERRY_OK);
    uint64_t left = info.messages;
    assert_true(left >= (uint64_t)stored - 3);
    /* It may store one or two in what the acks freed, then refuses. */
    int more = 0;
    while (more < 50 && (st = s_publish(c, 10000 + more, payload, sizeof payload)) == FERRY_OK)
        more++;
    assert_int_equal(st, FERRY_ESTORAGE_FULL);
    assert_true(more < 50);
    assert_int_equal(ferry_client_ping(c), FERRY_OK);
    /* No spinning: the broker writes a handful of lines, not thousands. */
    int lines = fy_ferryd_log_count(&fx->d, "level=");
    fy_sleep_ms(2000);
    int later = fy_ferryd_log_count(&fx->d, "level=");
    if (later - lines > 10)
        fail_msg("the broker wrote %d log lines in 2 s on a full disk", later - lines);
    assert_int_equal(fy_ferryd_log_count(&fx->d, "code=EINTERNAL"), 0);

    /* Deleting frees the space: healthy again, publishes stored. */
    assert_int_equal(ferry_client_delete(c, "q"), FERRY_OK);
    s_wait_health(fx, "200");
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "q", NULL, NULL, NULL), FERRY_OK);
    for (int i = 0; i < 100; i++)
        assert_int_equal(s_publish(c, 20000 + i, payload, sizeof payload), FERRY_OK);
    assert_int_equal(fy_http(fx->port, "GET", "/metrics", body, sizeof body), 0);
    assert_non_null(strstr(body, "\nferry_storage_full 0\n"));
    assert_true(fy_ferryd_log_count(&fx->d, "msg=\"disk has room again\"") >= 1);
    ferry_client_destroy(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_disk_is_an_error_not_an_outage, s_setup,
                                        s_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests_name("disk_full", tests, NULL, NULL);
}
