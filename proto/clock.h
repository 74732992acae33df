/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the two clocks Ferry's programs read: monotonic milliseconds for
 * timeouts and intervals (microseconds for short durations), wall-clock milliseconds since the Unix
 * epoch for what is stored or shown; and a sleep in milliseconds.
 */
#ifndef FY_CLOCK_H
#define FY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline long long
fy_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Monotonic microseconds, for durations measured finer than a millisecond. */
static inline long long
fy_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline uint64_t
fy_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void
fy_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
