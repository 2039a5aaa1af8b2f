/*
 * Unit tests for errors: the HTTP-date of proxyd's own answers is an
 * IMF-fixdate whatever the locale, and every error page carries one.
 */
#include "proxyd/errors.h"

#include <check.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include "check_run.h"

static const struct {
    time_t t;
    const char *want;
} dates[] = {
    { 784111777, "Sun, 06 Nov 1994 08:49:37 GMT" }, /* RFC 9110 5.6.7's example */
    { 0, "Thu, 01 Jan 1970 00:00:00 GMT" },
    { 951782400, "Tue, 29 Feb 2000 00:00:00 GMT" },
    { 1796456800, "Sat, 05 Dec 2026 07:46:40 GMT" },
    { 4102444799, "Thu, 31 Dec 2099 23:59:59 GMT" },
};

START_TEST(http_date)
{
    char out[PD_HTTP_DATE_SIZE];
    setlocale(LC_TIME, _i % 2 ? "C" : ""); /* the day and month names are not the locale's */
    pd_http_date(dates[_i].t, out);
    ck_assert_str_eq(out, dates[_i].want);
    ck_assert_uint_eq(strlen(out), 29);
}
END_TEST

START_TEST(error_page_has_date)
{
    for (int head_only = 0; head_only <= 1; head_only++) {
        struct evbuffer *b = evbuffer_new();
        pd_error_page(b, 503, "ERR_DNS_FAIL", "no", "http://x/", "host", 1, head_only);
        size_t n = evbuffer_get_length(b);
        char *s = calloc(1, n + 1);
        evbuffer_remove(b, s, n);
        ck_assert_ptr_nonnull(strstr(s, "HTTP/1.1 503 Service Unavailable\r\n"));
        const char *d = strstr(s, "\r\nDate: ");
        ck_assert_ptr_nonnull(d);
        ck_assert(d < strstr(s, "\r\n\r\n"));
        ck_assert_ptr_nonnull(strstr(d + 8, " GMT\r\n"));
        ck_assert_ptr_eq(strstr(d + 1, "\r\nDate: "), NULL);
        ck_assert_ptr_nonnull(strstr(s, "X-Squid-Error: ERR_DNS_FAIL 0\r\n"));
        free(s);
        evbuffer_free(b);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, http_date, 0, sizeof dates / sizeof dates[0]);
    tcase_add_test(tc, error_page_has_date);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
