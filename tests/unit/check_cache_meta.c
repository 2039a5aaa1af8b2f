/* Unit tests for cache_meta: the stored head survives a round trip without
 * its hop-by-hop and framing fields, with its times and kind. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/cache_meta.h"
#include "proxyd/http_parse.h"
#include "check_run.h"

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

/* The reader of proxyd's own heads gives what the strict parser gives. */
static const char *const heads[] = {
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=60\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n",
    "HTTP/1.0 404 \r\nX-Empty:\r\nX-Tab: a\tb\r\nX-Utf8: \xc3\xa9t\xc3\xa9\r\n\r\n",
    "HTTP/1.1 203 Non-Authoritative Information\r\n\r\n",
    ("HTTP/1.1 599 Odd\r\nA: 1\r\nA: 2\r\nVary: Accept-Encoding, Accept-Language\r\n"
     "Set-Cookie: x=\"y; z\"\r\n\r\n"),
};

START_TEST(own_reader_matches_strict)
{
    pd_http_msg resp;
    parse_response(heads[_i], &resp);
    size_t len;
    void *blob = pd_cache_meta_build(PD_META_RESPONSE, &resp, 7, 8, &len);
    ck_assert_ptr_nonnull(blob);
    pd_cache_meta a, b;
    ck_assert_int_eq(pd_cache_meta_parse_how(blob, len, &a, 0), 0);
    ck_assert_int_eq(pd_cache_meta_parse_how(blob, len, &b, 1), 0);
    /* the fast reader ran: it sizes its buffers exactly (and NUL-terminates the
     * text, as pd_http_msg_store does: regexec and friends may read to it) */
    ck_assert_uint_eq(a.head.buf_len + 1, a.head.buf_cap);
    ck_assert_int_eq(a.head.buf[a.head.buf_len], '\0');
    ck_assert_uint_eq(a.head.n_headers, a.head.cap_headers);
    ck_assert_int_eq(a.head.status, b.head.status);
    ck_assert_int_eq(a.head.version_major, b.head.version_major);
    ck_assert_int_eq(a.head.version_minor, b.head.version_minor);
    ck_assert_int_eq(a.head.body, b.head.body);
    ck_assert_int_eq(a.head.keep_alive, b.head.keep_alive);
    ck_assert_uint_eq(a.head.reason.len, b.head.reason.len);
    ck_assert(!memcmp(a.head.reason.p, b.head.reason.p, a.head.reason.len));
    ck_assert_uint_eq(a.head.n_headers, b.head.n_headers);
    for (size_t i = 0; i < a.head.n_headers; i++) {
        pd_header *x = &a.head.headers[i], *y = &b.head.headers[i];
        ck_assert_uint_eq(x->name.len, y->name.len);
        ck_assert(!memcmp(x->name.p, y->name.p, x->name.len));
        ck_assert_uint_eq(x->value.len, y->value.len);
        ck_assert(!memcmp(x->value.p, y->value.p, x->value.len));
    }
    pd_cache_meta_free(&a);
    pd_cache_meta_free(&b);
    free(blob);
    pd_http_msg_free(&resp);
}
END_TEST

/* What the fast reader refuses, the strict parser judges: a damaged blob is
 * never read more leniently than any response. */
START_TEST(damaged_head_goes_to_the_strict_parser)
{
    pd_http_msg resp;
    parse_response("HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\n\r\n", &resp);
    size_t len;
    char *blob = pd_cache_meta_build(PD_META_RESPONSE, &resp, 1, 2, &len);
    pd_cache_meta m;
    char *x = memmem(blob, len, "X-B", 3);
    ck_assert_ptr_nonnull(x);
    x[1] = ' ';                                  /* "X B: 2": not a field name */
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), -1);
    x[1] = '-';
    x[4] = '\x01';                               /* a control byte in a value */
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), -1);
    x[4] = ' ';
    ck_assert_int_eq(pd_cache_meta_parse(blob, len, &m), 0);
    ck_assert(has(&m.head, "X-B", "2"));
    pd_cache_meta_free(&m);
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
    tcase_add_loop_test(tc, own_reader_matches_strict, 0, (int)(sizeof heads / sizeof heads[0]));
    tcase_add_test(tc, damaged_head_goes_to_the_strict_parser);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
