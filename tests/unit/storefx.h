/* SPDX-License-Identifier: MIT */
/*
 * storefx.h - the store's unit-test fixture: a fresh store in a temporary
 * directory, and the small steps the tests repeat (declare, append one
 * message, collect what a read gives). The steps assert with cmocka.
 */
#ifndef FY_STOREFX_H
#define FY_STOREFX_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "store.h"

typedef struct {
    char dir[256];
    fy_store_t *store;
    fy_log_t log;
} sfx_t;

/** Opens (again) the store on fx->dir with @p map_size and @p dedupe_ms. */
fy_status_t sfx_open(sfx_t *fx, uint64_t map_size, uint64_t dedupe_ms);
/** cmocka setup/teardown: *state becomes an sfx_t with a fresh store (64
 *  MiB map, two-minute dedupe window), removed by the teardown. */
int sfx_setup(void **state);
int sfx_teardown(void **state);

static inline fy_bytes_t
B(const char *s)
{
    return fy_bytes_str(s);
}

/** Declares a new topic @p name of @p kind in a transaction of its own. */
void sfx_declare(sfx_t *fx, const char *name, fy_kind_t kind);
/** Appends one message (@p id may be NULL) at time @p now in a transaction
 *  of its own. @return the append's or the commit's status. */
fy_status_t sfx_append1(sfx_t *fx, uint64_t now, const char *topic, const char *id,
                        const char *payload, uint64_t *seq, bool *dup);

/** What sfx_collect saw: sequences and payloads (first 31 bytes). */
typedef struct {
    uint64_t seqs[64];
    char payloads[64][32];
    size_t n;
} sfx_seen_t;
/** A read callback that copies into the sfx_seen_t @p user. */
fy_status_t sfx_collect(void *user, const fy_stored_t *m);

/** What sfx_on_deliver saw: sequences and delivery counts. */
typedef struct {
    uint64_t seqs[256];
    uint32_t dcs[256];
    size_t n;
} sfx_got_t;
/** A delivery callback that records into the sfx_got_t @p user. */
fy_status_t sfx_on_deliver(void *user, const fy_stored_t *m, uint32_t dc);
/** A read callback that records into the sfx_got_t @p user (count 0). */
fy_status_t sfx_get_any(void *user, const fy_stored_t *m);
/** Opens subscription @p name on @p topic at time @p now. @return its id. */
uint64_t sfx_sub(sfx_t *fx, uint64_t now, const char *topic, const char *name, fy_sub_opts_t o);
/** Appends @p n messages "m" to @p topic. */
void sfx_fill(sfx_t *fx, const char *topic, int n);
/** Acks @p seq of subscription @p sub. @return the ack's status. */
fy_status_t sfx_ack(sfx_t *fx, uint64_t sub, uint64_t seq);
/** Fires due timers at @p now, then fetches up to 10 into @p got.
 *  @return how many were fetched. */
size_t sfx_fetch(sfx_t *fx, uint64_t now, uint64_t sub, sfx_got_t *got);

#endif
