/* SPDX-License-Identifier: MIT */
/*
 * wal.h - the write-ahead log: one preallocated, zero-filled file
 * (DATA/ferry.wal) of checksummed records, each appended with one write and
 * made durable with one fdatasync. It knows nothing of what a record says;
 * the store (store_wal.c) puts a batch's writes in each.
 *
 * A record: a 24-byte header (magic "FWL1", payload length, lsn, then an
 * XXH3-64 of the payload seeded with lsn and length), then the payload.
 * Records follow each other from offset 0; LSNs rise by one. After a
 * checkpoint the log starts again at offset 0 with the next LSN, so a
 * record left over from before is told apart by its smaller LSN, and a torn
 * one by its checksum: a scan stops at the first record that is not the
 * next one.
 *
 * Because the file's size never changes and its blocks are written (zeros)
 * when it is created, an fdatasync after an append flushes the record only,
 * no file-system metadata: one device flush.
 *
 * One thread uses a fy_wal_t.
 */
#ifndef FY_WAL_H
#define FY_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "status.h"

/** Bytes of a record's header: a caller leaves this much room before its
 *  payload so that the record goes out in one write. */
#define FY_WAL_HDR 24
/** The smallest log: a batch that does not fit is checkpointed instead. */
#define FY_WAL_MIN_BYTES (1u << 20)

typedef struct fy_wal fy_wal_t;

/**
 * Opens @p path, creating it with @p size bytes of zeros (written and
 * synced, with the directory) if it is missing. An existing log keeps its
 * size until fy_wal_recreate. @p sync false: appends are not synced (only
 * for the test build ferryd-nosync).
 * @return FERRY_OK, FERRY_EIO (with err), FERRY_ENOMEM
 */
fy_status_t fy_wal_open(const char *path, uint64_t size, bool sync, const fy_log_t *log,
                        fy_wal_t **out, fy_err_t *err);
/** Closes the file and frees; sets *self_p = NULL. */
void fy_wal_destroy(fy_wal_t **self_p);

/** Called by fy_wal_scan for each record in order; the payload is valid
 *  during the call only. Returns 0 to go on, anything else to stop (the
 *  scan returns it). */
typedef int (*fy_wal_record_fn)(void *ctx, uint64_t lsn, const uint8_t *payload, size_t len);

/**
 * Reads the records from offset 0 that follow @p after_lsn without a gap
 * (after_lsn + 1, + 2, ...), stopping at the first that is not the next one
 * or whose checksum fails, and leaves the append position after the last
 * good one. *last_lsn: the last good LSN (after_lsn if none).
 * @return 0, or the callback's non-zero result, or -1 on a read error.
 */
int fy_wal_scan(fy_wal_t *self, uint64_t after_lsn, fy_wal_record_fn fn, void *ctx,
                uint64_t *last_lsn);

/** Bytes a record of @p payload_len needs (header included). */
static inline uint64_t
fy_wal_need(size_t payload_len)
{
    return FY_WAL_HDR + (uint64_t)payload_len;
}
/** True if a record of @p payload_len fits after the last one. */
bool fy_wal_fits(const fy_wal_t *self, size_t payload_len);
/** Bytes appended since the start (offset 0). */
uint64_t fy_wal_used(const fy_wal_t *self);
/** The file's size. */
uint64_t fy_wal_size(const fy_wal_t *self);

/**
 * Appends a record and syncs it: @p buf holds FY_WAL_HDR bytes of room, then
 * @p payload_len bytes of payload; the header is written into the room.
 * Durable when it returns FERRY_OK. On failure nothing may be assumed of the
 * record (the next append overwrites it).
 * @return FERRY_OK, FERRY_ELIMIT (does not fit), FERRY_EIO (errno logged)
 */
fy_status_t fy_wal_append(fy_wal_t *self, uint8_t *buf, size_t payload_len, uint64_t lsn);

/** Syncs directory @p dir (a file made, renamed or removed in it is then
 *  durable). @return 0 or -1 (errno). */
int fy_wal_sync_dir(const char *dir);

/** Writes a copy of the log's records so far into @p path (a new file of
 *  the log's size, synced): a backup's log, applied when it is opened.
 *  @return FERRY_OK, FERRY_EIO (with err) */
fy_status_t fy_wal_copy(const fy_wal_t *self, const char *path, fy_err_t *err);

/** The log starts again at offset 0 (everything in it is checkpointed). */
void fy_wal_rewind(fy_wal_t *self);

/** Replaces the file with a new one of @p size bytes of zeros (after a
 *  checkpoint, when the configured size differs). @return FERRY_OK, FERRY_EIO */
fy_status_t fy_wal_recreate(fy_wal_t *self, uint64_t size, fy_err_t *err);

#endif /* FY_WAL_H */
