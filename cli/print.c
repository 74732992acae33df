/* SPDX-License-Identifier: MIT */
/*
 * print.c - stored messages as the ferry command prints them (print.h).
 * JSON through jansson, base64 through libsodium.
 */
#include "print.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bytes.h"
#include "text.h"

void
fy_cli_print_text(const void *b, size_t len, bool lines)
{
    const uint8_t *p = b;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        bool cut = i == len || (lines && (p[i] == '\n' || p[i] == '\t'));
        if (!cut)
            continue;
        fy_bytes_t seg = {p + start, i - start};
        size_t need = fy_text_escape(seg, NULL, 0);
        char small[512], *buf = need < sizeof small ? small : malloc(need + 1);
        if (buf) {
            fy_text_escape(seg, buf, need + 1);
            fwrite(buf, 1, need, stdout);
            if (buf != small)
                free(buf);
        }
        if (i < len)
            putchar(p[i]);
        start = i + 1;
    }
}

/* 2026-12-05T09:30:00.123Z */
static void
s_iso(uint64_t ms, char *out, size_t cap)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03uZ", day, (unsigned)(ms % 1000));
}

/* A JSON string for text that is UTF-8; NULL otherwise. */
static json_t *
s_text(const char *p, size_t len)
{
    return json_stringn(p, len);
}

static void
s_print_json(const ferry_stored_message_t *m)
{
    char when[40];
    s_iso(m->timestamp_ms, when, sizeof when);
    json_t *o = json_object();
    json_object_set_new(o, "seq", json_integer((json_int_t)m->seq));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "ts_ms", json_integer((json_int_t)m->timestamp_ms));
    if (m->delivery_count)
        json_object_set_new(o, "dc", json_integer(m->delivery_count));
    json_t *v;
    if (m->key && (v = s_text(m->key, strlen(m->key))))
        json_object_set_new(o, "key", v);
    if (m->key_version)
        json_object_set_new(o, "version", json_integer((json_int_t)m->key_version));
    if (m->id && (v = s_text(m->id, strlen(m->id))))
        json_object_set_new(o, "id", v);
    if (m->header_count) {
        json_t *h = json_object();
        for (size_t j = 0; j < m->header_count; j++)
            if ((v = s_text(m->headers[j].value, strlen(m->headers[j].value))))
                json_object_set_new(h, m->headers[j].name, v);
        json_object_set_new(o, "headers", h);
    }
    if ((v = s_text(m->data, m->len))) {
        json_object_set_new(o, "data", v);
    } else {
        size_t cap = sodium_base64_ENCODED_LEN(m->len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        if (b64) {
            sodium_bin2base64(b64, cap, m->data, m->len, sodium_base64_VARIANT_ORIGINAL);
            json_object_set_new(o, "data_base64", json_string(b64));
            free(b64);
        }
    }
    char *line = json_dumps(o, JSON_COMPACT);
    if (line)
        printf("%s\n", line);
    free(line);
    json_decref(o);
}

void
fy_cli_print_hex(const void *b, size_t len)
{
    const unsigned char *p = b;
    for (size_t off = 0; off < len; off += 16) {
        printf("%08zx ", off);
        for (size_t i = 0; i < 16; i++) {
            if (i == 8)
                putchar(' ');
            if (off + i < len)
                printf(" %02x", p[off + i]);
            else
                printf("   ");
        }
        printf("  |");
        for (size_t i = 0; i < 16 && off + i < len; i++)
            putchar(p[off + i] >= 0x20 && p[off + i] < 0x7f ? p[off + i] : '.');
        printf("|\n");
    }
}

void
fy_cli_print_msg(const ferry_stored_message_t *m, int payload, bool json)
{
    if (json) {
        s_print_json(m);
        return;
    }
    char when[40];
    s_iso(m->timestamp_ms, when, sizeof when);
    printf("seq=%" PRIu64 " time=%s", m->seq, when);
    if (m->delivery_count)
        printf(" dc=%u", m->delivery_count);
    if (m->key) {
        printf(" key=");
        fy_cli_print_text(m->key, strlen(m->key), false);
    }
    if (m->key_version)
        printf(" version=%" PRIu64, m->key_version);
    if (m->id) {
        printf(" id=");
        fy_cli_print_text(m->id, strlen(m->id), false);
    }
    for (size_t j = 0; j < m->header_count; j++) {
        putchar(' ');
        fy_cli_print_text(m->headers[j].name, strlen(m->headers[j].name), false);
        putchar('=');
        fy_cli_print_text(m->headers[j].value, strlen(m->headers[j].value), false);
    }
    printf(" len=%zu\n", m->len);
    if (payload == FY_CLI_PAYLOAD_HEX) {
        fy_cli_print_hex(m->data, m->len); /* ends its lines itself */
        return;
    }
    if (payload == FY_CLI_PAYLOAD_RAW)
        fwrite(m->data, 1, m->len, stdout);
    else
        fy_cli_print_text(m->data, m->len, true);
    printf("\n");
}
