/* SPDX-License-Identifier: MIT */
/*
 * fuzz_reply.c - the client's reply decoder (proto/envelope.h) and every
 * accessor libferry calls on a decoded reply: any bytes decode or fail
 * with a status, and no accessor reads outside the input.
 */
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fy_decoder_t *dec = fy_decoder_new();
    uint8_t *copy = malloc(size ? size : 1);
    if (!dec || !copy) {
        fy_decoder_destroy(&dec);
        free(copy);
        return 0;
    }
    memcpy(copy, data, size);
    fy_reply_t r;
    fy_err_t err = {0};
    if (fy_reply_decode(dec, copy, size, &r, &err) == FERRY_OK) {
        uint64_t a, b, c;
        bool dup, created;
        size_t n = fy_reply_run(&r);
        for (size_t i = 0; i < n && i < 5000; i++)
            (void)fy_reply_confirm_at(&r, i, &a, &dup, &b);
        (void)fy_reply_confirm(&r, &a, &dup, &b);
        (void)fy_reply_confirm_count(&r, &n);
        (void)fy_reply_hello(&r, &a);
        (void)fy_reply_conflict(&r, &a, &b);
        (void)fy_reply_next(&r, &c);
        (void)fy_reply_consumer(&r, &a);
        (void)fy_reply_ephemeral(&r);
        fy_topic_info_t info;
        (void)fy_reply_info(&r, &info, &created);
        fy_stats_t st;
        (void)fy_reply_stats(&r, &st);
        fy_sub_state_t ss;
        (void)fy_reply_sub(&r, &ss, &created);
        size_t count = 0;
        if (fy_reply_get_count(&r, &count) == FERRY_OK) {
            for (size_t i = 0; i < count && i < 5000; i++) {
                fy_getmsg_t m;
                if (fy_reply_get_msg(&r, i, &m) != FERRY_OK)
                    continue;
                for (size_t j = 0; j < m.header_count && j < 300; j++) {
                    fy_bytes_t hn, hv;
                    (void)fy_reply_get_header(&r, i, j, &hn, &hv);
                }
            }
        }
    }
    free(copy);
    fy_decoder_destroy(&dec);
    return 0;
}
