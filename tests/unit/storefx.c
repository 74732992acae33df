/* SPDX-License-Identifier: MIT */
/*
 * storefx.c - the store's unit-test fixture (see storefx.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fixture.h"
#include "storefx.h"

fy_status_t
sfx_open(sfx_t *fx, uint64_t map_size, uint64_t dedupe_ms)
{
    fy_store_opts_t o = {
        .dir = fx->dir, .map_size = map_size, .dedupe_window_ms = dedupe_ms, .log = &fx->log};
    fy_err_t err;
    return fy_store_open(&o, &fx->store, &err);
}

int
sfx_setup(void **state)
{
    sfx_t *fx = calloc(1, sizeof *fx);
    fx->log.level = FY_LOG_WARN;
    if (fy_tmpdir(fx->dir, sizeof fx->dir) != 0)
        return -1;
    *state = fx;
    return sfx_open(fx, 64 << 20, 120000) == FERRY_OK ? 0 : -1;
}

int
sfx_teardown(void **state)
{
    sfx_t *fx = *state;
    fy_store_destroy(&fx->store);
    fy_rmtree(fx->dir);
    free(fx);
    return 0;
}

void
sfx_declare(sfx_t *fx, const char *name, fy_kind_t kind)
{
    fy_topic_info_t info;
    bool created;
    assert_int_equal(fy_store_begin(fx->store, 1000), FERRY_OK);
    assert_int_equal(fy_store_declare(fx->store, B(name), kind, NULL, &info, &created), FERRY_OK);
    assert_true(created);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
}

fy_status_t
sfx_append1(sfx_t *fx, uint64_t now, const char *topic, const char *id, const char *payload,
            uint64_t *seq, bool *dup)
{
    fy_pubmeta_t m = {.id = id ? B(id) : (fy_bytes_t){0}};
    fy_bytes_t p = B(payload);
    fy_status_t st = fy_store_begin(fx->store, now);
    if (st == FERRY_OK) {
        uint64_t kver;
        fy_conflict_t cf;
        st = fy_store_append(fx->store, B(topic), &m, &p, 1, seq, dup, &kver, &cf);
    }
    if (st == FERRY_OK)
        st = fy_store_commit(fx->store);
    else
        fy_store_abort(fx->store);
    return st;
}

fy_status_t
sfx_collect(void *user, const fy_stored_t *m)
{
    sfx_seen_t *seen = user;
    seen->seqs[seen->n] = m->seq;
    snprintf(seen->payloads[seen->n], 32, "%.*s", (int)m->payload.len,
             (const char *)m->payload.ptr);
    seen->n++;
    return FERRY_OK;
}

fy_status_t
sfx_on_deliver(void *user, const fy_stored_t *m, uint32_t dc)
{
    sfx_got_t *g = user;
    g->seqs[g->n] = m->seq;
    g->dcs[g->n] = dc;
    g->n++;
    return FERRY_OK;
}

fy_status_t
sfx_get_any(void *user, const fy_stored_t *m)
{
    return sfx_on_deliver(user, m, 0);
}

uint64_t
sfx_sub(sfx_t *fx, uint64_t now, const char *topic, const char *name, fy_sub_opts_t o)
{
    fy_sub_info_t info;
    bool created;
    assert_int_equal(fy_store_begin(fx->store, now), FERRY_OK);
    assert_int_equal(fy_store_sub_open(fx->store, B(topic), B(name), &o, &info, &created),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    return info.id;
}

void
sfx_fill(sfx_t *fx, const char *topic, int n)
{
    uint64_t seq;
    bool dup;
    for (int i = 0; i < n; i++)
        assert_int_equal(sfx_append1(fx, 100, topic, NULL, "m", &seq, &dup), FERRY_OK);
}

fy_status_t
sfx_ack(sfx_t *fx, uint64_t sub, uint64_t seq)
{
    assert_int_equal(fy_store_begin(fx->store, 500), FERRY_OK);
    fy_status_t st = fy_store_ack(fx->store, sub, seq);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    return st;
}

size_t
sfx_fetch(sfx_t *fx, uint64_t now, uint64_t sub, sfx_got_t *got)
{
    size_t n = 0, due = 0;
    bool more;
    got->n = 0;
    assert_int_equal(fy_store_begin(fx->store, now), FERRY_OK);
    assert_int_equal(fy_store_timers_due(fx->store, 1000, &due, &more), FERRY_OK);
    assert_int_equal(fy_store_fetch(fx->store, sub, 10, SIZE_MAX, sfx_on_deliver, got, &n),
                     FERRY_OK);
    assert_int_equal(fy_store_commit(fx->store), FERRY_OK);
    assert_int_equal(n, got->n);
    return n;
}
