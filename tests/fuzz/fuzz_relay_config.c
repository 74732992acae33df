/* SPDX-License-Identifier: MIT */
/*
 * fuzz_relay_config.c - ferry-relay's INI configuration (outbox-relay/
 * config.h, read with inih): any file loads or is refused with a sentence,
 * and every source it loads names a kind it knows.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("relay.ini", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fr_source_cfg_t defaults, *sources[8];
    fr_config_defaults(&defaults);
    size_t n = 0;
    fy_err_t err = {0};
    fy_status_t st = fr_config_load(path, &defaults, sources, 8, &n, &err);
    if (st != FERRY_OK && !err.msg[0])
        abort(); /* a refusal always says why */
    for (size_t i = 0; st == FERRY_OK && i < n; i++) {
        if (!sources[i]->cfg.ops || !sources[i]->cfg.location)
            abort();
        free(sources[i]);
    }
    close(fd);
    return 0;
}
