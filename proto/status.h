/* SPDX-License-Identifier: MIT */
/*
 * status.h - the status type every internal module returns, and the detail
 * that travels with a failure. The codes themselves are listed once, in the
 * installed include/ferry_status.h (they are on the wire); this header is
 * the only door through which the broker, the codec and the relay see them.
 * No state; fy_err_t is filled by the callee and owned by the caller.
 */
#ifndef FY_STATUS_H
#define FY_STATUS_H

#include <stdbool.h>

#include "ferry_status.h"

typedef ferry_status_t fy_status_t;

/** Detail of a failure: a status and one sentence (no peer bytes echoed). */
typedef struct fy_err {
    fy_status_t code;
    char msg[160];
} fy_err_t;

/** Sets @p err (NULL accepted) and returns @p code. */
fy_status_t fy_err_set(fy_err_t *err, fy_status_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** The short name of @p code ("ENOTFOUND"); "EUNKNOWN" for unknown numbers. */
const char *fy_status_name(fy_status_t code);
/** One sentence describing @p code; never NULL. */
const char *fy_status_text(fy_status_t code);

/** True for the statuses that mean "the peer sent something invalid"
 *  (EPROTO, EVERSION, EUNKNOWN_OP, EFIELD, EFRAMES, EINVALID_NAME, ETOO_LARGE,
 *  ETOO_MANY), as opposed to a state of the broker. */
bool fy_status_bad_input(fy_status_t code);

#endif /* FY_STATUS_H */
