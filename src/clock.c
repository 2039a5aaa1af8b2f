/*
 * clock: monotonic milliseconds and their timeval (include/proxyd/clock.h).
 */
#include "proxyd/clock.h"

#include <time.h>

int64_t pd_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct timeval pd_clock_tv(int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return tv;
}
