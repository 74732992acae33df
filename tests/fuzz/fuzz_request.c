/* SPDX-License-Identifier: MIT */
/*
 * fuzz_request.c - the broker's request decoder (proto/envelope.h): any
 * bytes, with 0..3 payload frames (the first input byte), decode to a
 * request or to an error with a status; every field the decoder hands out
 * lies inside the input.
 */
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

static void
s_inside(fy_bytes_t b, const uint8_t *data, size_t size)
{
    if (b.len && (b.ptr < data || b.ptr + b.len > data + size))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t frames = data[0] & 3;
    data++, size--;
    fy_decoder_t *dec = fy_decoder_new();
    if (!dec)
        return 0;
    fy_request_t req;
    fy_err_t err = {0};
    /* The decoder reads from a copy the size of the input, so that a read
     * past the end is a sanitizer error, not a read of the next byte. */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy) {
        memcpy(copy, data, size);
        if (fy_request_decode(dec, copy, size, frames, &req, &err) == FERRY_OK) {
            s_inside(req.name, copy, size);
            s_inside(req.key, copy, size);
            s_inside(req.sub, copy, size);
            s_inside(req.filter, copy, size);
            for (size_t i = 0; i < req.msg_count; i++) {
                s_inside(req.msgs[i].key, copy, size);
                s_inside(req.msgs[i].id, copy, size);
                if (req.msgs[i].has_data)
                    s_inside(req.msgs[i].data, copy, size);
            }
        } else if (!err.msg[0]) {
            abort(); /* a refusal always says why */
        }
        free(copy);
    }
    fy_decoder_destroy(&dec);
    return 0;
}
