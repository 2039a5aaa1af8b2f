/* Unit tests for cache_meta: the stored head survives a round trip without
 * its hop-by-hop and framing fields, with its times and kind. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/cache_meta.h"
#include "proxyd/http_parse.h"

static void parse_response(const char *raw, pd_http_msg *m)
{
    pd_http_parser *p = pd_http_parser_new(0, 65536);
    pd_http_msg_init(m);
    pd_http_parser_next(p, m, PD_M_GET);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_DONE);
    pd_http_parser_free(p);
}

static int has(const pd_http_msg *m, const char *name, const char *value)
{
    const pd_header *h = pd_http_msg_find(m, name);
    return h && h->value.len == strlen(value) && memcmp(h->value.p, value, h->value.len) == 0;
}

START_TEST(round_trip)
{
    pd_http_msg resp;
    parse_response("HTTP/1.1 200 Fine Thanks\r\n"
                   "Content-Type: text/plain\r\n"
                   "Content-Length: 5\r\n"
                   "Connection: X-Private, keep-alive\r\n"
                   "X-Private: secret\r\n"
                   "Keep-Alive: timeout=5\r\n"
                   "ETag: \"v1\"\r\n"
                   "Age: 30\r\n"
                   "Cache-Control: max-age=60\r\n"
                   "Set-Cookie: a=1\r\n"
                   "Set-Cookie: b=2\r\n\r\n",
                   &resp);
    size_t len;
    void *blob = pd_cache_meta_build(PD_META_RESPONSE, &resp, 1000, 1002, &len);
    ck_assert_ptr_nonnull(blob);
    pd_cache_meta m;
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), 0);
    ck_assert_int_eq(m.kind, PD_META_RESPONSE);
    ck_assert_int_eq((int)m.request_time, 1000);
    ck_assert_int_eq((int)m.response_time, 1002);
    ck_assert_int_eq(m.head.status, 200);
    ck_assert(pd_str_eq_ci(m.head.reason, "Fine Thanks"));
    ck_assert(has(&m.head, "Content-Type", "text/plain"));
    ck_assert(has(&m.head, "ETag", "\"v1\""));
    ck_assert(has(&m.head, "Cache-Control", "max-age=60"));
    /* hop-by-hop and framing fields are not stored (RFC 9111 3.1); Age is, for 4.2.3 */
    ck_assert(has(&m.head, "Age", "30"));
    ck_assert_ptr_null(pd_http_msg_find(&m.head, "Connection"));
    ck_assert_ptr_null(pd_http_msg_find(&m.head, "X-Private"));
    ck_assert_ptr_null(pd_http_msg_find(&m.head, "Keep-Alive"));
    ck_assert_ptr_null(pd_http_msg_find(&m.head, "Content-Length"));
    /* repeated fields keep their order */
    const pd_header *c1 = pd_http_msg_find(&m.head, "Set-Cookie");
    ck_assert_ptr_nonnull(c1);
    const pd_header *c2 = pd_http_msg_find_next(&m.head, c1);
    ck_assert_ptr_nonnull(c2);
    ck_assert(pd_str_eq_ci(c1->value, "a=1") && pd_str_eq_ci(c2->value, "b=2"));
    pd_cache_meta_free(&m);
    free(blob);
    pd_http_msg_free(&resp);
}
END_TEST

START_TEST(vary_marker)
{
    pd_http_msg resp;
    parse_response("HTTP/1.1 200 OK\r\nVary: Accept-Encoding\r\n\r\n", &resp);
    size_t len;
    void *blob = pd_cache_meta_build(PD_META_VARY, &resp, 5, 6, &len);
    pd_cache_meta m;
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), 0);
    ck_assert_int_eq(m.kind, PD_META_VARY);
    ck_assert(has(&m.head, "Vary", "Accept-Encoding"));
    pd_cache_meta_free(&m);
    free(blob);
    pd_http_msg_free(&resp);
}
END_TEST

START_TEST(bad_blobs)
{
    pd_http_msg resp;
    parse_response("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", &resp);
    size_t len;
    char *blob = pd_cache_meta_build(PD_META_RESPONSE, &resp, 1, 2, &len);
    pd_cache_meta m;
    /* every truncation is refused, never read past */
    for (size_t n = 0; n < len; n++) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, blob, n);
        ck_assert_int_eq(pd_cache_meta_parse(copy, n, &m), -1);
        free(copy);
    }
    blob[0] ^= 0x55; /* bad magic */
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), -1);
    free(blob);
    pd_http_msg_free(&resp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cache_meta");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, vary_marker);
    tcase_add_test(tc, bad_blobs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
