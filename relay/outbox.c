/* SPDX-License-Identifier: MIT */
/*
 * outbox.c - ferry_outbox_put(): events into the service's LMDB outbox.
 *
 * Key: the id, u64 big-endian (so keys sort by id). Value, all integers
 * big-endian: u8 version (1), u64 created_ms, u16 aggregate_type length,
 * u16 aggregate_id length, u16 event_type length, u16 header count, u32
 * payload length, then the three strings, then per header u16 name length,
 * u16 value length, name, value, then the payload. outbox-relay/src_lmdb.c
 * reads it. Key 0 is not an event: outbox_int.h.
 */
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "clock.h"
#include "ferry_outbox.h"
#include "mdb_util.h"
#include "outbox_event.h"
#include "outbox_int.h"

int
fy_outbox_last_id(MDB_txn *txn, MDB_dbi dbi, uint64_t *last)
{
    *last = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8) {
        *last = fy_be64_get(k.mv_data);
        if (*last == 0) /* only the keeper is left */
            *last = v.mv_size == 8 ? fy_be64_get(v.mv_data) : 0;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
fy_outbox_keep_last_id(MDB_txn *txn, MDB_dbi dbi, uint64_t last)
{
    uint8_t key[8] = {0}, val[8];
    fy_be64_put(val, last);
    MDB_val k = {8, key}, v = {8, val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

ferry_status_t
ferry_outbox_open(MDB_txn *txn, MDB_dbi *dbi)
{
    if (!txn || !dbi)
        return FERRY_EINVAL;
    return fy_mdb_status(mdb_dbi_open(txn, FERRY_OUTBOX_DB, MDB_CREATE, dbi));
}

ferry_status_t
ferry_outbox_put(MDB_txn *txn, MDB_dbi dbi, const ferry_outbox_event_t *ev, uint64_t *id)
{
    if (!txn || !fy_outbox_event_valid(ev))
        return FERRY_EINVAL;
    size_t size = 1 + 8 + 2 + 2 + 2 + 2 + 4 + strlen(ev->aggregate_type) +
                  strlen(ev->aggregate_id) + strlen(ev->event_type) + ev->len;
    for (size_t i = 0; i < ev->header_count; i++)
        size += 4 + strlen(ev->headers[i].name) + strlen(ev->headers[i].value);
    /* The next id: one past the last key (one writer at a time). */
    uint64_t last;
    int rc = fy_outbox_last_id(txn, dbi, &last);
    if (rc)
        return fy_mdb_status(rc);
    uint64_t next = last + 1;
    uint8_t key[8];
    fy_be64_put(key, next);
    MDB_val k = {8, key}, v = {size, NULL};
    if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND | MDB_RESERVE)))
        return fy_mdb_status(rc);
    uint64_t created = ev->created_ms;
    if (!created)
        created = fy_wall_ms();
    uint8_t *p = v.mv_data;
    size_t lt = strlen(ev->aggregate_type), li = strlen(ev->aggregate_id),
           le = strlen(ev->event_type);
    *p++ = 1;
    fy_be64_put(p, created);
    fy_be16_put(p + 8, (uint16_t)lt);
    fy_be16_put(p + 10, (uint16_t)li);
    fy_be16_put(p + 12, (uint16_t)le);
    fy_be16_put(p + 14, (uint16_t)ev->header_count);
    fy_be32_put(p + 16, (uint32_t)ev->len);
    p += 20;
    memcpy(p, ev->aggregate_type, lt);
    p += lt;
    memcpy(p, ev->aggregate_id, li);
    p += li;
    memcpy(p, ev->event_type, le);
    p += le;
    for (size_t i = 0; i < ev->header_count; i++) {
        size_t ln = strlen(ev->headers[i].name), lv = strlen(ev->headers[i].value);
        fy_be16_put(p, (uint16_t)ln);
        fy_be16_put(p + 2, (uint16_t)lv);
        memcpy(p + 4, ev->headers[i].name, ln);
        memcpy(p + 4 + ln, ev->headers[i].value, lv);
        p += 4 + ln + lv;
    }
    if (ev->len)
        memcpy(p, ev->payload, ev->len);
    if (id)
        *id = next;
    return FERRY_OK;
}
