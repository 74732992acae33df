/* SPDX-License-Identifier: MIT */
/*
 * claim.h - one relay per source name on an outbox (docs/outbox.md): a
 * lock file beside the outbox (SQLite: next to its database file; LMDB: in
 * its environment's folder), held with flock() while the relay runs, so a
 * second relay started with the same name waits, and says who holds it,
 * instead of racing the first (both would publish every row and move the
 * same position). The kernel drops the lock when the holder dies.
 */
#ifndef FR_CLAIM_H
#define FR_CLAIM_H

#include <stddef.h>

#include "status.h"

/**
 * Takes the lock file @p path (made if missing) and writes the holder
 * (pid, host) into it; *@p fd stays open while held (close it to release).
 * @return FERRY_OK; FERRY_EWOULD_BLOCK when another process holds it (err
 *         names that holder); FERRY_EIO
 */
fy_status_t fr_claim(const char *path, int *fd, fy_err_t *err);

/** The lock file's path for @p name beside @p location (a file, or with
 *  @p in_dir a folder): NAME's '/' become '_'. */
void fr_claim_path(const char *location, int in_dir, const char *name, char *out, size_t cap);

#endif
