/*
 * clock: the milliseconds that timeouts, deadlines and idle times are
 * counted in (monotonic, at the coarse clock's resolution: a few ms), and the
 * struct timeval that libevent's timers take.
 */
#ifndef PROXYD_CLOCK_H
#define PROXYD_CLOCK_H

#include <stdint.h>
#include <sys/time.h>

/* Monotonic milliseconds (unrelated to the wall clock). */
int64_t pd_clock_ms(void);
/* ms as a timeval for evtimer_add; a negative ms is 0. */
struct timeval pd_clock_tv(int64_t ms);

#endif
