/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pgoutput.c - ferry-relay's decoder of PostgreSQL's logical
 * replication stream (pgoutput, outbox-relay/src_pglog.c): Relation,
 * Insert, Begin/Commit and keepalive messages, and the JSON headers column
 * of an Insert (read with jansson). The input is a stream of messages,
 * each a 16-bit big-endian length and its bytes, fed in order to one
 * source (so a Relation can describe the outbox for the Inserts after it):
 * each is decoded or refused with a sentence, never read past its end.
 *
 * The decoder is private to src_pglog.c, so this file includes it.
 */
#include "../../outbox-relay/src_pglog.c"

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fr_source_t *s = calloc(1, sizeof *s);
    if (!s)
        return 0;
    snprintf(s->table, sizeof s->table, "outbox");
    fr_pos_t after = {0, 0};
    while (size >= 2) {
        size_t len = (size_t)(data[0] << 8 | data[1]);
        data += 2, size -= 2;
        if (len > size)
            len = size;
        /* A copy of exactly the message: a read past it is a sanitizer error. */
        uint8_t *m = malloc(len ? len : 1);
        if (!m)
            break;
        memcpy(m, data, len);
        fy_err_t err = {0};
        if (s_on_message(s, m, len, after, &err) != FERRY_OK && !err.msg[0])
            abort(); /* a refusal always says why */
        free(m);
        data += len, size -= len;
    }
    s_close(&s);
    return 0;
}
