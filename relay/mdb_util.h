/* SPDX-License-Identifier: MIT */
/*
 * mdb_util.h - LMDB helpers shared by libferry's modules that work in a
 * service's environment (outbox, inbox, sagas).
 */
#ifndef FY_MDB_UTIL_H
#define FY_MDB_UTIL_H

#include <lmdb.h>
#include <stdbool.h>
#include <errno.h>
#include <stddef.h>

#include "ferry.h"

/** An LMDB result as a ferry status: MDB_MAP_FULL (the map) and ENOSPC or
 *  EDQUOT (the file system) are ESTORAGE_FULL, any other failure EIO. */
static inline ferry_status_t
fy_mdb_status(int rc)
{
    return rc == MDB_SUCCESS                                    ? FERRY_OK
           : rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT ? FERRY_ESTORAGE_FULL
                                                                : FERRY_EIO;
}

/** The same for a failed write of @p env: LMDB reports a write cut short by
 *  a full file system as EIO, so EIO with less than 1 MiB free on the
 *  environment's file system is ESTORAGE_FULL too. */
ferry_status_t fy_mdb_write_status(MDB_env *env, int rc);

/** Deletes, in one write transaction of @p env, every entry of @p dbi for
 *  which @p pred says so. @param[out] removed may be NULL. */
ferry_status_t fy_mdb_delete_if(MDB_env *env, MDB_dbi dbi,
                                bool (*pred)(const MDB_val *k, const MDB_val *v, void *ctx),
                                void *ctx, size_t *removed);

#endif
