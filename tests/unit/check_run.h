/*
 * check_run.h: how every unit suite's main runs its Check suite: each test in
 * its own process (Check's default fork mode), the summary on stdout, and the
 * exit status CTest reads (EXIT_FAILURE when any test failed).
 */
#ifndef PROXYD_CHECK_RUN_H
#define PROXYD_CHECK_RUN_H

#include <check.h>
#include <stdlib.h>

/* Run s (the runner frees it); EXIT_SUCCESS when every test passed. */
static inline int pd_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
