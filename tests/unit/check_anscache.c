/*
 * check_anscache: the table of helper answers: hits before expiry only,
 * exact line match, a newer line evicting an older one in its slot, values
 * owned by the table.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/anscache.h"
#include "check_run.h"

START_TEST(test_put_get_expire)
{
    pd_anscache *t = pd_anscache_new(64);
    ck_assert_ptr_nonnull(t);
    int iv = -1;
    const char *v = "x";
    ck_assert_int_eq(pd_anscache_get(t, "http://a/ 1.2.3.4/- - GET", 100, &iv, &v), 0);
    char value[] = "http://b/";
    pd_anscache_put(t, "http://a/ 1.2.3.4/- - GET", 2, value, 110);
    value[0] = 'X'; /* the table keeps its own copy */
    ck_assert_int_eq(pd_anscache_get(t, "http://a/ 1.2.3.4/- - GET", 109, &iv, &v), 1);
    ck_assert_int_eq(iv, 2);
    ck_assert_str_eq(v, "http://b/");
    /* not the same line: no answer, whatever the slot */
    ck_assert_int_eq(pd_anscache_get(t, "http://a/ 1.2.3.5/- - GET", 109, &iv, &v), 0);
    ck_assert_int_eq(pd_anscache_get(t, "http://a/ 1.2.3.4/- - GET ", 109, &iv, &v), 0);
    /* expired at its expiry */
    ck_assert_int_eq(pd_anscache_get(t, "http://a/ 1.2.3.4/- - GET", 110, &iv, &v), 0);
    /* a NULL value is an answer too */
    pd_anscache_put(t, "k", 0, NULL, 200);
    v = "x";
    ck_assert_int_eq(pd_anscache_get(t, "k", 150, &iv, &v), 1);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(iv, 0);
    uint64_t hits, lookups;
    pd_anscache_counts(t, &hits, &lookups);
    ck_assert_uint_eq(hits, 2);
    ck_assert_uint_eq(lookups, 6);
    pd_anscache_free(t);
}
END_TEST

/* One slot: every line shares it, the newest wins, the older is gone. */
START_TEST(test_one_slot_evicts)
{
    pd_anscache *t = pd_anscache_new(1);
    int iv;
    const char *v;
    pd_anscache_put(t, "a", 1, "A", 100);
    pd_anscache_put(t, "b", 2, "B", 100);
    ck_assert_int_eq(pd_anscache_get(t, "a", 0, &iv, &v), 0);
    ck_assert_int_eq(pd_anscache_get(t, "b", 0, &iv, &v), 1);
    ck_assert_str_eq(v, "B");
    pd_anscache_free(t);
}
END_TEST

/* Many lines in a bigger table: most stay (a direct-mapped table loses some
 * to collisions), every answer found is the right one. */
START_TEST(test_many)
{
    pd_anscache *t = pd_anscache_new(4096);
    char line[64], val[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof line, "http://h%d.test/ 10.0.0.1/- - GET", i);
        snprintf(val, sizeof val, "v%d", i);
        pd_anscache_put(t, line, i, val, 10);
    }
    int found = 0;
    for (int i = 0; i < 1000; i++) {
        int iv;
        const char *v;
        snprintf(line, sizeof line, "http://h%d.test/ 10.0.0.1/- - GET", i);
        snprintf(val, sizeof val, "v%d", i);
        if (pd_anscache_get(t, line, 5, &iv, &v)) {
            found++;
            ck_assert_int_eq(iv, i);
            ck_assert_str_eq(v, val);
        }
    }
    ck_assert_int_gt(found, 800);
    pd_anscache_free(t);
    ck_assert_ptr_null(pd_anscache_new(0));
}
END_TEST

static Suite *anscache_suite(void)
{
    Suite *s = suite_create("anscache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_put_get_expire);
    tcase_add_test(tc, test_one_slot_evicts);
    tcase_add_test(tc, test_many);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(anscache_suite());
}
