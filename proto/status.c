/*
 * status.c - text of the status codes listed once in ferry.h.
 * Linked into libferry and ferryd; tables are static const.
 */
#include "ferry.h"

#define S_CASE_TEXT(name, num, sname, text) \
    case num:                               \
        return text;
#define S_CASE_NAME(name, num, sname, text) \
    case num:                               \
        return sname;

const char *
ferry_strerror(int status)
{
    switch (status) {
        FERRY_STATUS_LIST(S_CASE_TEXT)
    default:
        return "unknown status";
    }
}

const char *
ferry_errname(int status)
{
    switch (status) {
        FERRY_STATUS_LIST(S_CASE_NAME)
    default:
        return "EUNKNOWN";
    }
}
