/* SPDX-License-Identifier: MIT */
/*
 * status.c - names and text of the status codes listed once in
 * include/ferry_status.h, and the error-detail helper. Linked into libferry
 * (which answers ferry_strerror/ferry_errname with it) and ferryd; tables
 * are static const.
 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

#define S_CASE_TEXT(name, num, sname, text) \
    case num:                               \
        return text;
#define S_CASE_NAME(name, num, sname, text) \
    case num:                               \
        return sname;

const char *
fy_status_text(fy_status_t code)
{
    switch ((int)code) {
        FERRY_STATUS_LIST(S_CASE_TEXT)
    default:
        return "unknown status";
    }
}

const char *
fy_status_name(fy_status_t code)
{
    switch ((int)code) {
        FERRY_STATUS_LIST(S_CASE_NAME)
    default:
        return "EUNKNOWN";
    }
}

bool
fy_status_bad_input(fy_status_t code)
{
    switch (code) {
    case FERRY_EPROTO:
    case FERRY_EVERSION:
    case FERRY_EUNKNOWN_OP:
    case FERRY_EFIELD:
    case FERRY_EFRAMES:
    case FERRY_EINVALID_NAME:
    case FERRY_ETOO_LARGE:
    case FERRY_ETOO_MANY:
        return true;
    default:
        return false;
    }
}

fy_status_t
fy_err_set(fy_err_t *err, fy_status_t code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            err->msg[0] = '\0';
        err->code = code;
    }
    return code;
}
