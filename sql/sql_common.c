/* SPDX-License-Identifier: MIT */
/*
 * sql_common.c - the headers' and the saga results' JSON (jansson) and the
 * inbox's key, shared by
 * the SQLite and PostgreSQL stores (sql_int.h).
 */
#include "sql_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
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

char *
fy_sql_results_json(const char *results, size_t len)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    /* pairs of NUL-terminated strings (saga/results.h) */
    for (size_t at = 0; obj && at < len;) {
        const char *step = results + at, *text = memchr(step, '\0', len - at);
        const char *end = text ? memchr(text + 1, '\0', len - (size_t)(text + 1 - results)) : NULL;
        if (!end)
            break;
        text++;
        if (json_object_set_new(obj, step, json_string(text)) != 0) {
            json_decref(obj);
            obj = NULL;
        }
        at = (size_t)(end + 1 - results);
    }
    char *out = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return out;
}

ferry_status_t
fy_sql_results_parse(const char *json, char **results, size_t *len)
{
    *results = NULL;
    *len = 0;
    if (!json || !*json)
        return FERRY_OK;
    json_t *obj = json_loads(json, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return FERRY_EFORMAT;
    }
    size_t need = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (!json_is_string(v) || !*k) {
            json_decref(obj);
            return FERRY_EFORMAT;
        }
        need += strlen(k) + 1 + json_string_length(v) + 1;
    }
    char *buf = need ? malloc(need) : NULL;
    if (need && !buf) {
        json_decref(obj);
        return FERRY_ENOMEM;
    }
    size_t at = 0;
    json_object_foreach(obj, k, v)
    {
        size_t lk = strlen(k) + 1, lv = json_string_length(v);
        memcpy(buf + at, k, lk);
        memcpy(buf + at + lk, json_string_value(v), lv);
        buf[at + lk + lv] = '\0';
        at += lk + lv + 1;
    }
    json_decref(obj);
    *results = buf;
    *len = at;
    return FERRY_OK;
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
