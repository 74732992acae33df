/*
 * sql_common.c - the headers' JSON (jansson) and the inbox's key, shared by
 * the SQLite and PostgreSQL stores (sql_int.h).
 */
#include "sql_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

char *
fy_sql_headers_json(const ferry_header_t *headers, size_t count, ferry_status_t *st)
{
    *st = FERRY_OK;
    if (!count)
        return NULL;
    json_t *obj = json_object();
    if (!obj) {
        *st = FERRY_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *v = json_string(headers[i].value); /* NULL: not UTF-8 */
        if (!v || json_object_get(obj, headers[i].name) ||
            json_object_set_new(obj, headers[i].name, v) != 0) {
            json_decref(v);
            json_decref(obj);
            *st = FERRY_EINVAL;
            return NULL;
        }
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text)
        *st = FERRY_ENOMEM;
    return text;
}

const char *
fy_sql_inbox_key(const ferry_stored_message_t *msg, char *buf, size_t cap)
{
    if (!msg || !msg->topic || !*msg->topic)
        return NULL;
    if (msg->id && *msg->id)
        return strlen(msg->id) <= FERRY_ID_MAX ? msg->id : NULL;
    snprintf(buf, cap, "#%llu", (unsigned long long)msg->seq);
    return buf;
}

ferry_status_t
fy_sql_fail(ferry_status_t st, char *err, size_t cap, const char *msg)
{
    if (err && cap)
        snprintf(err, cap, "%s", msg);
    return st;
}
