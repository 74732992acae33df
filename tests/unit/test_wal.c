/* SPDX-License-Identifier: MIT */
/*
 * test_wal.c - the write-ahead log's file (broker/wal.h) on a real file:
 * records come back in order with their bytes; a scan stops at a torn
 * record, at a record with a flipped bit and at a record left from before a
 * rewind; the file is preallocated and never changes size; a record that
 * does not fit is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "wal.h"

typedef struct {
    char dir[256], path[300];
    fy_wal_t *wal;
} s_fx_t;

static int
s_setup(void **state)
{
    s_fx_t *fx = calloc(1, sizeof *fx);
    if (!fx || fy_tmpdir(fx->dir, sizeof fx->dir) != 0)
        return -1;
    snprintf(fx->path, sizeof fx->path, "%s/ferry.wal", fx->dir);
    fy_err_t err;
    if (fy_wal_open(fx->path, FY_WAL_MIN_BYTES, true, NULL, &fx->wal, &err) != FERRY_OK)
        return -1;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fx_t *fx = *state;
    fy_wal_destroy(&fx->wal);
    fy_rmtree(fx->dir);
    free(fx);
    return 0;
}

/* Appends a record whose payload is @p len bytes of (lsn + i). */
static fy_status_t
s_append(fy_wal_t *w, uint64_t lsn, size_t len)
{
    uint8_t *buf = malloc(FY_WAL_HDR + len);
    for (size_t i = 0; i < len; i++)
        buf[FY_WAL_HDR + i] = (uint8_t)(lsn + i);
    fy_status_t st = fy_wal_append(w, buf, len, lsn);
    free(buf);
    return st;
}

typedef struct {
    uint64_t lsns[64];
    size_t n;
    int bad;
} s_seen_t;

static int
s_collect(void *ctx, uint64_t lsn, const uint8_t *p, size_t len)
{
    s_seen_t *s = ctx;
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(lsn + i))
            s->bad++;
    if (s->n < 64)
        s->lsns[s->n++] = lsn;
    return 0;
}

static size_t
s_scan(fy_wal_t *w, uint64_t after, uint64_t *last)
{
    s_seen_t seen = {0};
    assert_int_equal(fy_wal_scan(w, after, s_collect, &seen, last), 0);
    assert_int_equal(seen.bad, 0);
    for (size_t i = 0; i < seen.n; i++)
        assert_int_equal(seen.lsns[i], after + 1 + i);
    return seen.n;
}

static void
test_records_come_back_in_order(void **state)
{
    s_fx_t *fx = *state;
    struct stat sb;
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_size, FY_WAL_MIN_BYTES);
    assert_true(sb.st_blocks * 512 >= FY_WAL_MIN_BYTES); /* written, not sparse */
    for (uint64_t lsn = 1; lsn <= 10; lsn++)
        assert_int_equal(s_append(fx->wal, lsn, 100 * lsn), FERRY_OK);
    assert_int_equal(fy_wal_used(fx->wal), 10 * FY_WAL_HDR + 5500);
    uint64_t last;
    assert_int_equal(s_scan(fx->wal, 0, &last), 10);
    assert_int_equal(last, 10);
    /* A scan from a later checkpoint finds none: the first is not the next. */
    assert_int_equal(s_scan(fx->wal, 3, &last), 0);
    assert_int_equal(last, 3);
    assert_int_equal(fy_wal_used(fx->wal), 0);
    /* Reopened, the same. */
    fy_wal_destroy(&fx->wal);
    fy_err_t err;
    assert_int_equal(fy_wal_open(fx->path, 4u << 20, true, NULL, &fx->wal, &err), FERRY_OK);
    assert_int_equal(fy_wal_size(fx->wal), FY_WAL_MIN_BYTES); /* an existing log keeps its size */
    assert_int_equal(s_scan(fx->wal, 0, &last), 10);
    assert_int_equal(stat(fx->path, &sb), 0);
    assert_int_equal(sb.st_size, FY_WAL_MIN_BYTES);
}

static void
test_scan_stops_at_torn_flipped_and_old_records(void **state)
{
    s_fx_t *fx = *state;
    for (uint64_t lsn = 1; lsn <= 6; lsn++)
        assert_int_equal(s_append(fx->wal, lsn, 1000), FERRY_OK);
    /* A checkpoint at 6; the log starts over with 7 and 8: 3..6 stay
     * behind them, older. */
    fy_wal_rewind(fx->wal);
    assert_int_equal(s_append(fx->wal, 7, 1000), FERRY_OK);
    assert_int_equal(s_append(fx->wal, 8, 1000), FERRY_OK);
    uint64_t last;
    assert_int_equal(s_scan(fx->wal, 6, &last), 2);
    assert_int_equal(last, 8);
    /* A bit flipped in record 8's payload: the scan ends after 7. */
    int fd = open(fx->path, O_RDWR);
    assert_true(fd >= 0);
    uint64_t off8 = FY_WAL_HDR + 1000 + FY_WAL_HDR + 500;
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)off8), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)off8), 1);
    assert_int_equal(s_scan(fx->wal, 6, &last), 1);
    assert_int_equal(last, 7);
    /* The next append goes where the bad record was; then a torn one
     * (its second half never written) ends the log too. */
    assert_int_equal(s_append(fx->wal, 8, 1000), FERRY_OK);
    uint64_t off9 = fy_wal_used(fx->wal);
    assert_int_equal(s_append(fx->wal, 9, 3000), FERRY_OK);
    static uint8_t zero[1500];
    assert_int_equal(pwrite(fd, zero, sizeof zero, (off_t)(off9 + FY_WAL_HDR + 1500)), 1500);
    close(fd);
    assert_int_equal(s_scan(fx->wal, 6, &last), 2);
    assert_int_equal(last, 8);
}

static void
test_a_record_that_does_not_fit_is_refused(void **state)
{
    s_fx_t *fx = *state;
    size_t room = FY_WAL_MIN_BYTES - FY_WAL_HDR;
    assert_false(fy_wal_fits(fx->wal, room + 1));
    assert_true(fy_wal_fits(fx->wal, room));
    assert_int_equal(s_append(fx->wal, 1, room + 1), FERRY_ELIMIT);
    assert_int_equal(s_append(fx->wal, 1, room), FERRY_OK);
    assert_false(fy_wal_fits(fx->wal, 0));
    uint64_t last;
    assert_int_equal(s_scan(fx->wal, 0, &last), 1);
    /* A new size replaces the file with an empty one. */
    fy_err_t err;
    assert_int_equal(fy_wal_recreate(fx->wal, 2u << 20, &err), FERRY_OK);
    assert_int_equal(fy_wal_size(fx->wal), 2u << 20);
    assert_int_equal(s_scan(fx->wal, 0, &last), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_come_back_in_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_scan_stops_at_torn_flipped_and_old_records, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_a_record_that_does_not_fit_is_refused, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
