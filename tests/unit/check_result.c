/*
 * Unit tests for result: the result code table is consistent (texts unique
 * and Squid-shaped, aborted codes stay in their class, hit bytes only for
 * answers from the cache).
 */
#include "proxyd/result.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "check_run.h"

START_TEST(texts_are_unique_and_squid_shaped)
{
    for (int a = PD_R_UNSET + 1; a < PD_R__N; a++) {
        const char *t = pd_result_text((enum pd_result)a);
        ck_assert(!strncmp(t, "TCP_", 4) || !strcmp(t, "NONE_NONE"));
        for (int b = a + 1; b < PD_R__N; b++)
            ck_assert_str_ne(t, pd_result_text((enum pd_result)b));
    }
    ck_assert_str_eq(pd_result_text(PD_R_UNSET), "NONE_NONE");
    ck_assert_str_eq(pd_result_text((enum pd_result)1000), "NONE_NONE");
    ck_assert_str_eq(pd_result_text(PD_R_TCP_MEM_HIT), "TCP_MEM_HIT");
}
END_TEST

START_TEST(aborted_codes_keep_their_class)
{
    for (int a = PD_R_UNSET + 1; a < PD_R__N; a++) {
        enum pd_result r = (enum pd_result)a, ab = pd_result_aborted(r);
        ck_assert_int_eq(pd_result_class(ab), pd_result_class(r));
        ck_assert_int_eq(pd_result_aborted(ab), ab); /* aborting twice changes nothing */
        const char *t = pd_result_text(ab);
        if (ab != r)
            ck_assert_ptr_nonnull(strstr(t, "_ABORTED"));
    }
    ck_assert_int_eq(pd_result_aborted(PD_R_TCP_MISS), PD_R_TCP_MISS_ABORTED);
    ck_assert_int_eq(pd_result_aborted(PD_R_TCP_MEM_HIT), PD_R_TCP_MEM_HIT_ABORTED);
    ck_assert_int_eq(pd_result_aborted(PD_R_UNSET), PD_R_UNSET);
}
END_TEST

START_TEST(hit_bytes_only_from_the_cache)
{
    for (int a = PD_R_UNSET; a < PD_R__N; a++) {
        enum pd_result r = (enum pd_result)a;
        if (pd_result_hit_bytes(r))
            ck_assert(pd_result_class(r) == PD_RC_HIT || pd_result_class(r) == PD_RC_REVALIDATION);
        if (pd_result_class(r) == PD_RC_HIT)
            ck_assert(pd_result_hit_bytes(r));
    }
    ck_assert(pd_result_hit_bytes(PD_R_TCP_REFRESH_UNMODIFIED));
    ck_assert(!pd_result_hit_bytes(PD_R_TCP_REFRESH_MODIFIED));
    ck_assert(!pd_result_hit_bytes(PD_R_TCP_CF_MISS));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("result");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, texts_are_unique_and_squid_shaped);
    tcase_add_test(tc, aborted_codes_keep_their_class);
    tcase_add_test(tc, hit_bytes_only_from_the_cache);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
