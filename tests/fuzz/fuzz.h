/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - Ferry's fuzz targets (docs/reliability.md). Each target file
 * defines the libFuzzer entry point below, and nothing else that a driver
 * needs:
 *
 * - `make fuzz FUZZ_SECONDS=N` builds every target with clang's libFuzzer,
 *   AddressSanitizer and UndefinedBehaviorSanitizer, and runs each for N
 *   seconds on its corpus (tests/fuzz/corpus/<target>/, which it grows);
 *   a crash is written to build/fuzz/crash-<target>-*: copy it into
 *   tests/fuzz/crashes/<target>/ once fixed, as a regression.
 * - `make test` builds every target with replay.c as main (any compiler,
 *   and under check-asan with the sanitizers) and runs each input of its
 *   corpus and crashes folders once.
 *
 * A target must be deterministic, must not leak, and must treat any input
 * as possible: it returns 0 whatever the input is.
 */
#ifndef FY_FUZZ_H
#define FY_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
