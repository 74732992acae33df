/* SPDX-License-Identifier: MIT */
/*
 * test_backup.c - `ferry backup` (ferry_client_backup): the broker copies its
 * store into a new directory while publishes stream in; the original is
 * killed with SIGKILL, and a ferryd started on the copy has exactly a prefix
 * of the stream (everything confirmed before the backup was asked for, in
 * order, nothing after its reply), the subscriptions' acks, and the queue's
 * remaining work. A backup into a directory that exists is refused EEXISTS.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "harness.h"

enum { S_N = 20000, S_AT = 12000 };

typedef struct s_book {
    size_t confirmed;
    uint64_t seq[S_N];
} s_book_t;

typedef struct s_ref {
    s_book_t *book;
    size_t i;
} s_ref_t;

static void
s_on_confirm(ferry_client_t *c, const ferry_confirm_t *conf, void *user)
{
    (void)c;
    s_ref_t *r = user;
    if (conf->status == FERRY_OK) {
        r->book->seq[r->i] = conf->seq;
        r->book->confirmed++;
    }
}

static void
test_backup_is_a_consistent_copy(void **state)
{
    fy_fx_t *fx = *state;
    ferry_client_t *c = fx->c;
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_TOPIC, "orders", NULL, NULL, NULL),
                     FERRY_OK);
    assert_int_equal(ferry_client_declare(c, FERRY_KIND_QUEUE, "jobs", NULL, NULL, NULL), FERRY_OK);
    assert_int_equal(ferry_client_sub_declare(c, "orders", "billing", NULL, NULL), FERRY_OK);
    char payload[64];
    for (int i = 0; i < 5; i++) {
        int len = snprintf(payload, sizeof payload, "job-%d", i);
        ferry_message_t m = {.data = payload, .len = (size_t)len};
        assert_int_equal(ferry_client_publish(c, "jobs", &m, NULL), FERRY_OK);
    }
    /* Two jobs done; the rest must be in the copy, waiting. */
    const ferry_stored_message_t *got;
    size_t n = 0;
    assert_int_equal(ferry_client_fetch(c, "jobs", NULL, 2, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 2);
    uint64_t done[2] = {got[0].seq, got[1].seq};
    assert_int_equal(ferry_client_ack(c, "jobs", NULL, done, 2), FERRY_OK);

    /* The stream: the backup is asked for in the middle of it, with
     * publishes in flight (the window is 1000). */
    s_book_t *book = calloc(1, sizeof *book);
    s_ref_t *refs = calloc(S_N, sizeof *refs);
    assert_non_null(book);
    assert_non_null(refs);
    char dir[200], copy[240];
    assert_int_equal(fy_tmpdir(dir, sizeof dir), 0);
    snprintf(copy, sizeof copy, "%s/data", dir); /* where the fixture keeps a ferryd's data */
    size_t confirmed_before = 0, sent_before = 0;
    for (size_t i = 0; i < S_N; i++) {
        if (i == S_AT) {
            confirmed_before = book->confirmed;
            sent_before = i;
            assert_int_equal(ferry_client_backup(c, copy), FERRY_OK);
        }
        refs[i] = (s_ref_t){book, i};
        int len = snprintf(payload, sizeof payload, "order-%zu", i);
        ferry_message_t m = {.data = payload, .len = (size_t)len};
        assert_int_equal(ferry_client_publish_async(c, "orders", &m, s_on_confirm, &refs[i]),
                         FERRY_OK);
    }
    assert_int_equal(ferry_client_flush(c, 30000), FERRY_OK);
    assert_int_equal(book->confirmed, S_N);
    /* A second backup into the same directory is refused, and says why. */
    assert_int_equal(ferry_client_backup(c, copy), FERRY_EEXISTS);
    assert_non_null(strstr(ferry_client_last_error(c), "File exists"));
    assert_int_equal(ferry_client_backup(c, "relative/dir"), FERRY_EINVAL);
    /* The CLI: a relative DIR is taken from where it runs. */
    char cmd[900], out[600], want_line[400];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' --server '%s' backup cli-copy 2>&1", dir,
             getenv("FERRY_CLI"), fx->d.endpoint);
    assert_int_equal(fy_run(cmd, out, sizeof out), 0);
    snprintf(want_line, sizeof want_line, "backup in %s/cli-copy\n", dir);
    assert_string_equal(out, want_line);
    assert_int_equal(fy_run(cmd, out, sizeof out), 1); /* refused by the broker */
    assert_non_null(strstr(out, "ferry: EEXISTS: cannot make the backup's directory"));
    struct stat sb;
    assert_int_equal(stat(copy, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    printf("backup asked for after %zu sent, %zu confirmed\n", sent_before, confirmed_before);

    /* The original dies; the copy is all there is. */
    assert_true(fy_ferryd_signal(&fx->d, SIGKILL) >= 0);
    ferry_client_destroy(&fx->c);
    fy_ferryd_t b = {0};
    snprintf(b.dir, sizeof b.dir, "%s", dir);
    assert_int_equal(fy_ferryd_start(&b), 0);
    printf("the copy's ferryd replayed its log: %s\n",
           fy_ferryd_log_count(&b, "recovered from the write-ahead log") ? "yes"
                                                                         : "no (all in LMDB)");
    ferry_client_t *bc = fy_connect(b.endpoint, 5000, 1000);
    assert_non_null(bc);
    fy_copied_t *all = NULL;
    size_t stored = 0;
    assert_int_equal(fy_read_all(bc, "orders", &all, &stored), FERRY_OK);
    /* A prefix of the stream: all confirmed before the ask, none sent after. */
    assert_true(stored >= confirmed_before);
    assert_true(stored <= sent_before);
    for (size_t i = 0; i < stored; i++) {
        char want[64];
        snprintf(want, sizeof want, "order-%zu", i);
        assert_int_equal(all[i].seq, book->seq[i]);
        assert_string_equal(all[i].payload, want);
    }
    free(all);
    /* billing starts at the first order; the queue has its three jobs left. */
    assert_int_equal(ferry_client_fetch(bc, "orders", "billing", 1, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].seq, book->seq[0]);
    assert_int_equal(ferry_client_fetch(bc, "jobs", NULL, 10, 1000, &got, &n), FERRY_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "job-%zu", i + 2);
        assert_int_equal(got[i].len, strlen(want));
        assert_memory_equal(got[i].data, want, got[i].len);
    }
    /* The copy goes on as a broker: the next publish follows the prefix. */
    ferry_message_t m = {.data = "after", .len = 5};
    ferry_confirm_t conf;
    assert_int_equal(ferry_client_publish(bc, "orders", &m, &conf), FERRY_OK);
    assert_int_equal(conf.seq, stored ? book->seq[stored - 1] + 1 : 1);
    ferry_client_destroy(&bc);
    fy_ferryd_cleanup(&b); /* and dir */
    free(book);
    free(refs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backup_is_a_consistent_copy, fy_fx_setup,
                                        fy_fx_teardown),
    };
    if (getenv("FERRY_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FERRY_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
