/* SPDX-License-Identifier: MIT */
/*
 * curvekey.h - ZeroMQ CURVE keys as Ferry reads and writes them: the z85
 * text libzmq uses (40 characters for a 32-byte key), given either as the
 * key itself or as "@FILE" naming a file whose first line is the key (the
 * files `ferry keygen` writes). A secret key file must be its owner's
 * only: one that others may read is refused.
 */
#ifndef FY_CURVEKEY_H
#define FY_CURVEKEY_H

#include <stdbool.h>

#include "status.h"

#define FY_CURVE_KEY_LEN 40 /* z85 characters of a key (plus a NUL: 41 bytes) */

/**
 * Reads a key: @p spec is 40 z85 characters (the key itself, even when it
 * begins with '@', a z85 character), or "@PATH" (or, with @p secret, a
 * plain PATH) of a file whose first line is the key. With @p secret the
 * file must not be readable by group or others.
 * @return FERRY_OK with the key in @p out (41 bytes), or FERRY_EINVAL /
 *         FERRY_EIO with a sentence in @p err (never the key itself).
 */
fy_status_t fy_curvekey_read(const char *spec, bool secret, char out[FY_CURVE_KEY_LEN + 1],
                             fy_err_t *err);

/** Whether @p z85 is 40 characters of the z85 alphabet. */
bool fy_curvekey_valid(const char *z85);

#endif
