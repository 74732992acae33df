/* SPDX-License-Identifier: MIT */
/*
 * fixture.h - helpers for tests and benchmarks: temporary directories and a
 * real ferryd child process (started from $FERRYD, logging to a file in its
 * data directory, ready once it logs its bound endpoint).
 */
#ifndef FY_FIXTURE_H
#define FY_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

/** Creates a fresh directory under $TMPDIR (or /tmp). @return 0 or -1. */
int fy_tmpdir(char *out, size_t cap);
/** Removes a directory tree. @return 0 or -1. */
int fy_rmtree(const char *dir);

typedef struct fy_ferryd {
    pid_t pid;            /* 0 when not running */
    char dir[256];        /* data directory */
    char log_path[320];   /* ferryd's stderr, appended across restarts */
    char endpoint[128];   /* bound endpoint, kept across restarts */
    const char *extra[8]; /* further flags, NULL-terminated; borrowed */
} fy_ferryd_t;

/**
 * Starts ferryd on @p self->dir (made fresh if empty) and waits up to 10 s
 * for its ready line. The first start binds tcp://127.0.0.1:* ; restarts
 * bind the same endpoint again. @return 0, or -1 with a message on stderr.
 */
int fy_ferryd_start(fy_ferryd_t *self);
/** Sends @p sig and reaps the process. @return its wait status, or -1. */
int fy_ferryd_signal(fy_ferryd_t *self, int sig);
/** Counts lines of the log that contain @p needle. */
int fy_ferryd_log_count(const fy_ferryd_t *self, const char *needle);
/** Stops a running ferryd (SIGKILL) and removes its directory. */
void fy_ferryd_cleanup(fy_ferryd_t *self);
/** Test setup/teardown pair (cmocka signature): *state becomes a zeroed
 *  fy_ferryd_t, stopped and removed by the teardown even if a test failed. */
int fy_ferryd_state_new(void **state);
int fy_ferryd_state_free(void **state);
/** A TCP port on 127.0.0.1 that was free a moment ago; -1 if none. */
int fy_free_port(void);
/** Milliseconds on CLOCK_MONOTONIC. */
long long fy_now_ms(void);
/** Seconds on CLOCK_MONOTONIC, to the nanosecond (for benchmarks). */
double fy_now_s(void);

#endif
