/* SPDX-License-Identifier: MIT */
/*
 * replay.c - runs a fuzz target (fuzz.h) without libFuzzer: on each file
 * named on the command line, or each file in the folders named (default:
 * $FERRY_TOP/tests/fuzz/corpus/FUZZ_TARGET and .../crashes/FUZZ_TARGET),
 * once. `make test` runs it so that the corpus and every crash found so
 * far stay regression tests. Exit 0 when every input ran (a crash aborts).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_TARGET
#error "FUZZ_TARGET names the target (-DFUZZ_TARGET=\"request\")"
#endif

static int
s_run_file(const char *path, size_t *ran)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *b = realloc(buf, cap *= 2);
            if (!b) {
                free(buf);
                buf = NULL;
            }
            buf = b;
        }
    }
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    (*ran)++;
    return 0;
}

static int
s_run(const char *path, size_t *ran)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0; /* a folder not made yet (no crash found so far) */
    if (!S_ISDIR(st.st_mode))
        return s_run_file(path, ran);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (s_run(p, ran) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int
main(int argc, char **argv)
{
    size_t ran = 0;
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= s_run(argv[i], &ran);
    } else {
        const char *top = getenv("FERRY_TOP") ? getenv("FERRY_TOP") : ".";
        char p[4096];
        snprintf(p, sizeof p, "%s/tests/fuzz/corpus/%s", top, FUZZ_TARGET);
        rc |= s_run(p, &ran);
        size_t seeds = ran;
        snprintf(p, sizeof p, "%s/tests/fuzz/crashes/%s", top, FUZZ_TARGET);
        rc |= s_run(p, &ran);
        if (seeds == 0) {
            fprintf(stderr, "replay %s: no corpus in %s/tests/fuzz/corpus/%s\n", FUZZ_TARGET, top,
                    FUZZ_TARGET);
            return 1;
        }
    }
    printf("replay %s: %zu inputs ran, none crashed\n", FUZZ_TARGET, ran);
    return rc ? 1 : 0;
}
