/* SPDX-License-Identifier: MIT */
/*
 * users.h - who may connect to ferryd and what each may do: the users file
 * (`ferryd --users FILE`, docs/security.md), read with libinih.
 *
 *     [alice]                        ; the user's name: 1-64 of A-Z a-z 0-9 _ . -
 *     key = <40 z85 characters>      ; a CURVE public key; repeat for several
 *     publish = orders.>, billing.*  ; subject patterns (`*` one token, `>` the rest)
 *     consume = orders.>
 *     admin = orders.>               ; declare, delete (what exists)
 *     max-consumers = 8              ; push consumers at once (optional)
 *     max-connections = 4            ; connections served at once (optional)
 *     max-publish-rate = 10M         ; bytes per second published (optional)
 *
 * A user is known by a key: their own CURVE key pair's public key, or the one
 * `ferry passwd` derives from their password (libferry derives the same from
 * the user name, the password and the server's key, so the password never
 * leaves the client). Every user may also publish, consume and declare
 * `_inbox.*` (request/reply inboxes).
 *
 * A table is immutable once loaded; the broker swaps in a new one on SIGHUP.
 * Lookups may run in any thread that holds a reference the owner keeps
 * alive (zap.c locks around them).
 */
#ifndef FY_USERS_H
#define FY_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h"
#include "status.h"

#define FY_USER_NAME_MAX 64

typedef enum fy_perm {
    FY_PERM_PUBLISH = 1u << 0,
    FY_PERM_CONSUME = 1u << 1,
    FY_PERM_ADMIN = 1u << 2,
} fy_perm_t;

typedef struct fy_users fy_users_t;
typedef struct fy_user fy_user_t;

/**
 * Reads the users file at @p path. A line that is not understood (a key
 * that is not a valid z85 CURVE key, a bad pattern, an unknown setting, a
 * key given to two users) fails the load with its line number in @p err.
 * @return FERRY_OK, FERRY_EINVAL (with err), FERRY_EIO (cannot read), FERRY_ENOMEM
 */
fy_status_t fy_users_load(const char *path, fy_users_t **out, fy_err_t *err);
/** Frees; sets *self_p = NULL. */
void fy_users_destroy(fy_users_t **self_p);

/** Number of users. */
size_t fy_users_count(const fy_users_t *self);
/** The user holding CURVE public key @p key (32 bytes), or NULL. */
const fy_user_t *fy_users_by_key(const fy_users_t *self, const uint8_t *key);
/** The user named @p name, or NULL. */
const fy_user_t *fy_users_by_name(const fy_users_t *self, fy_bytes_t name);

/** The user's name (NUL-terminated; lives as long as the table). */
const char *fy_user_name(const fy_user_t *user);
/** True if @p user may do @p perm on @p topic. */
bool fy_user_may(const fy_user_t *user, fy_perm_t perm, fy_bytes_t topic);
/** The user's limits: push consumers at once, connections served at once,
 *  bytes published per second (0: none of its own). */
uint32_t fy_user_max_consumers(const fy_user_t *user);
uint32_t fy_user_max_connections(const fy_user_t *user);
uint64_t fy_user_max_publish_rate(const fy_user_t *user);
/** "publish", "consume" or "admin". */
const char *fy_perm_name(fy_perm_t perm);

#endif /* FY_USERS_H */
