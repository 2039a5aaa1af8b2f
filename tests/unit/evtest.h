/*
 * evtest.h: for unit suites that run an event loop: RUN_UNTIL(cond) turns
 * the loop until cond holds, and fails the test after 5 s (a deadline, never
 * a sleep). The suite defines `static struct event_base *base;` before
 * including this.
 */
#ifndef PROXYD_EVTEST_H
#define PROXYD_EVTEST_H

#include <check.h>
#include <event2/event.h>

static int evtest_timed_out;

static void evtest_safety_cb(evutil_socket_t fd, short what, void *arg)
{
    evtest_timed_out = 1;
    event_base_loopbreak(arg);
}

#define RUN_UNTIL(cond)                                                       \
    do {                                                                      \
        struct event *safety_ = evtimer_new(base, evtest_safety_cb, base);    \
        struct timeval tv_ = { 5, 0 };                                        \
        evtimer_add(safety_, &tv_);                                           \
        evtest_timed_out = 0;                                                 \
        while (!(cond) && !evtest_timed_out)                                  \
            event_base_loop(base, EVLOOP_ONCE);                               \
        event_free(safety_);                                                  \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);             \
    } while (0)

#endif
