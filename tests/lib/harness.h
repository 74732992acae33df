/* SPDX-License-Identifier: MIT */
/*
 * harness.h - helpers for integration tests that talk to a real ferryd
 * through libferry (see fixture.h for starting the process).
 */
#ifndef FY_HARNESS_H
#define FY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "fixture.h"

/** A running ferryd and one client connected to it. */
typedef struct fy_fx {
    fy_ferryd_t d;
    ferry_client_t *c;
} fy_fx_t;

/** cmocka setup/teardown pair: *state becomes a fy_fx_t with a fresh ferryd
 *  (extra flags: none) and a client (timeout 5 s, window 1000). */
int fy_fx_setup(void **state);
int fy_fx_teardown(void **state);
/** Same, starting ferryd with @p extra flags (NULL-terminated, at most 7). */
int fy_fx_setup_with(void **state, const char *const *extra);

/** Connects a client to @p endpoint with @p timeout_ms and @p window. NULL on failure. */
ferry_client_t *fy_connect(const char *endpoint, int timeout_ms, size_t window);

/** One stored message as copied by fy_read_all. */
typedef struct fy_copied {
    uint64_t seq;
    char id[64];
    char key[64];
    char payload[64]; /* first 63 bytes, NUL-terminated */
    size_t len;
} fy_copied_t;

/** Reads every message of @p topic (via get). Caller frees *out.
 *  @return FERRY_OK or the failing status. */
ferry_status_t fy_read_all(ferry_client_t *c, const char *topic, fy_copied_t **out, size_t *n);

/** One HTTP/1.0 exchange with 127.0.0.1:@p port (the metrics endpoint):
 *  the whole answer, status line and headers included, NUL-terminated.
 *  @return 0, or -1 if the connection failed. */
/** A ZeroMQ socket of @p type in @p ctx, talking CURVE when
 *  FERRY_SERVER_KEY (a z85 key or @FILE) and FERRY_CLIENT_KEY (@FILE of a
 *  secret key) are set, as under FERRY_TEST_SECURE; else clear text.
 *  @return the socket, or NULL. */
void *fy_raw_socket(void *ctx, int type);

int fy_http(int port, const char *method, const char *path, char *out, size_t cap);
/** The same with one more request header line (no CRLF), e.g.
 *  "Authorization: Bearer x"; NULL: none. */
int fy_http_with(int port, const char *method, const char *path, const char *header, char *out,
                 size_t cap);

/** Writes a sentence (printf-style) into @p why for a checker's caller.
 *  @return -1, so that a checker can `return fy_why(...)`. */
int fy_why(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Runs a command line through /bin/sh; captures up to cap-1 bytes of stdout.
 *  @return the exit status (0-255), or -1. */
int fy_run(const char *cmdline, char *out, size_t cap);

/** A memory field of /proc/@p pid/status in KiB ("VmRSS", "RssAnon"), or -1. */
long fy_proc_kib(int pid, const char *field);

/** Mounts a tmpfs of @p size ("64m") on a fresh temporary directory (into
 *  @p dir): a real small file system to fill. Needs root (CI is); says why
 *  on stderr when it cannot. @return 0, or -1. */
int fy_tmpfs_mount(char *dir, size_t cap, const char *size);
/** Unmounts what fy_tmpfs_mount made and removes the directory. */
void fy_tmpfs_unmount(const char *dir);

/** A running ferryd with a client (fy_fx_t), and beside it a small real
 *  file system to fill (a tmpfs on mnt). */
typedef struct fy_fx_tmpfs {
    fy_fx_t *fx;
    char mnt[200];
    bool mounted;
} fy_fx_tmpfs_t;

/** cmocka setup with a tmpfs of @p size ("8m"); *state becomes a
 *  fy_fx_tmpfs_t. The teardown stops ferryd and unmounts. */
int fy_fx_tmpfs_setup(void **state, const char *size);
int fy_fx_tmpfs_teardown(void **state);

/** Starts @p argv (argv[0] the program's path; NULL-terminated) in the
 *  background with stdout and stderr appended to @p log; it is killed if the
 *  calling thread ends. @return its pid, or -1. */
int fy_spawn(const char *log, const char *const *argv);

/** Sends @p sig to @p pid and waits for it. @return its wait status. */
int fy_kill_wait(int pid, int sig);

/** Crash test driver: starts @p argv (as fy_spawn), kill -9s it after a
 *  random @p min_ms .. min_ms + spread_ms and starts it again, @p kills
 *  times, then lets the last run finish. *killed: how many kills landed (a
 *  run may end before its kill). @return the last run's wait status. */
int fy_run_killing(const char *log, const char *const *argv, int kills, int min_ms, int spread_ms,
                   int *killed);

#endif
