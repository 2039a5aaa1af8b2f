/* Unit tests for http_parse + http_msg: every message split at every byte,
 * strictness and smuggling cases. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/http_parse.h"
#include "check_run.h"

struct body_acc {
    char buf[4096];
    size_t len;
};

static int acc_body(void *arg, const char *d, size_t n)
{
    struct body_acc *b = arg;
    ck_assert_uint_le(b->len + n, sizeof(b->buf));
    memcpy(b->buf + b->len, d, n);
    b->len += n;
    return 0;
}

/* Feed msg in two pieces split at `split`; returns status and fills m, body. */
static int parse_split(int is_req, int req_method, const char *raw, size_t rawlen, size_t split,
                       pd_http_msg *m, struct body_acc *body, int *err_status)
{
    pd_http_parser *p = pd_http_parser_new(is_req, 8192);
    pd_http_parser_next(p, m, req_method);
    const char *pieces[2] = { raw, raw + split };
    size_t lens[2] = { split, rawlen - split };
    int head_done = 0, result = PD_PARSE_AGAIN;
    /* bytes are accumulated as a real connection buffer would keep them */
    char pending[8192];
    size_t plen = 0;
    body->len = 0;
    for (int i = 0; i < 2; i++) {
        memcpy(pending + plen, pieces[i], lens[i]);
        plen += lens[i];
        size_t used;
        if (!head_done) {
            result = pd_http_parse_head(p, pending, plen, &used);
            if (result == PD_PARSE_ERROR)
                break;
            memmove(pending, pending + used, plen - used);
            plen -= used;
            if (result == PD_PARSE_DONE) {
                head_done = 1;
                result = PD_PARSE_AGAIN;
            }
        }
        if (head_done) {
            if (m->body == PD_BODY_CHUNKED) {
                result = pd_http_parse_body(p, pending, plen, &used, acc_body, body);
                memmove(pending, pending + used, plen - used);
                plen -= used;
                if (result != PD_PARSE_AGAIN)
                    break;
            } else {
                memcpy(body->buf + body->len, pending, plen);
                body->len += plen;
                plen = 0;
                result = PD_PARSE_DONE;
            }
        }
    }
    if (result == PD_PARSE_ERROR)
        *err_status = pd_http_parser_error(p, NULL);
    pd_http_parser_free(p);
    return result;
}

static const char *get_header(pd_http_msg *m, const char *name)
{
    static char buf[256];
    const pd_header *h = pd_http_msg_find(m, name);
    if (!h)
        return NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)h->value.len, h->value.p);
    return buf;
}

START_TEST(test_request_every_split)
{
    const char *raw = "POST http://example.com:8080/a/b?c=d HTTP/1.1\r\n"
                      "Host: example.com:8080\r\n"
                      "X-Empty:\r\n"
                      "Content-Type:  text/plain  \r\n"
                      "Transfer-Encoding: chunked\r\n"
                      "\r\n"
                      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-X: y\r\n\r\n";
    size_t n = strlen(raw);
    for (size_t split = 0; split <= n; split++) {
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(1, 0, raw, n, split, &m, &body, &err);
        ck_assert_msg(r == PD_PARSE_DONE, "split %zu: result %d err %d", split, r, err);
        ck_assert_int_eq(m.method_id, PD_M_POST);
        ck_assert_uint_eq(m.target.len, strlen("http://example.com:8080/a/b?c=d"));
        ck_assert(memcmp(m.target.p, "http://example.com:8080/a/b?c=d", m.target.len) == 0);
        ck_assert_uint_eq(m.n_headers, 4);
        ck_assert_str_eq(get_header(&m, "host"), "example.com:8080");
        ck_assert_str_eq(get_header(&m, "x-empty"), "");
        ck_assert_str_eq(get_header(&m, "CONTENT-TYPE"), "text/plain");
        ck_assert_int_eq(m.body, PD_BODY_CHUNKED);
        ck_assert_uint_eq(body.len, 11);
        ck_assert(memcmp(body.buf, "hello world", 11) == 0);
        ck_assert_int_eq(m.keep_alive, 1);
        pd_http_msg_free(&m);
    }
}
END_TEST

/* squidclient's cache_object:// target, which llhttp alone refuses for its '_',
 * whatever the split and the case; other targets beginning alike are llhttp's */
START_TEST(test_cache_object_every_split)
{
    static const char *const targets[] = { "cache_object://127.0.0.1/info",
                                            "CACHE_Object://h/counters", "cache://x/", "c" };
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        char raw[256];
        snprintf(raw, sizeof raw, "GET %s HTTP/1.0\r\nHost: h\r\nAccept: */*\r\n\r\n",
                 targets[t]);
        size_t n = strlen(raw);
        for (size_t split = 0; split <= n; split++) {
            pd_http_msg m;
            pd_http_msg_init(&m);
            struct body_acc body;
            int err = 0;
            int r = parse_split(1, 0, raw, n, split, &m, &body, &err);
            if (t == 3) { /* "c": not a URL at all */
                ck_assert_msg(r == PD_PARSE_ERROR && err == 400, "split %zu: %d %d", split, r, err);
                pd_http_msg_free(&m);
                continue;
            }
            ck_assert_msg(r == PD_PARSE_DONE, "%s split %zu: result %d err %d", targets[t], split,
                          r, err);
            ck_assert_uint_eq(m.target.len, strlen(targets[t]));
            ck_assert(memcmp(m.target.p, targets[t], m.target.len) == 0);
            ck_assert_uint_eq(m.n_headers, 2);
            ck_assert_str_eq(get_header(&m, "accept"), "*/*");
            pd_http_msg_free(&m);
        }
    }
    /* a near miss is given to llhttp as received, and refused like any bad scheme */
    const char *bad = "GET cache_objecx://h/info HTTP/1.0\r\n\r\n";
    pd_http_msg m;
    pd_http_msg_init(&m);
    struct body_acc body;
    int err = 0;
    ck_assert_int_eq(parse_split(1, 0, bad, strlen(bad), 7, &m, &body, &err), PD_PARSE_ERROR);
    ck_assert_int_eq(err, 400);
    pd_http_msg_free(&m);
}
END_TEST

START_TEST(test_response_every_split)
{
    const char *raw = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nETag: \"x\"\r\n\r\nbody";
    size_t n = strlen(raw);
    for (size_t split = 0; split <= n; split++) {
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(0, PD_M_GET, raw, n, split, &m, &body, &err);
        ck_assert_int_eq(r, PD_PARSE_DONE);
        ck_assert_int_eq(m.status, 200);
        ck_assert_int_eq(m.body, PD_BODY_LENGTH);
        ck_assert_uint_eq(m.content_length, 4);
        ck_assert_str_eq(get_header(&m, "etag"), "\"x\"");
        ck_assert_uint_eq(body.len, 4);
        pd_http_msg_free(&m);
    }
}
END_TEST

/* Response framing per RFC 9112 6.3 */
static const struct {
    const char *raw;
    int req_method;
    int body;
    unsigned long long cl;
} framing[] = {
    { "HTTP/1.1 200 OK\r\n\r\n", PD_M_GET, PD_BODY_EOF, 0 },
    { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", PD_M_HEAD, PD_BODY_NONE, 0 },
    { "HTTP/1.1 204 No Content\r\n\r\n", PD_M_GET, PD_BODY_NONE, 0 },
    { "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", PD_M_GET, PD_BODY_NONE, 0 },
    { "HTTP/1.1 100 Continue\r\n\r\n", PD_M_POST, PD_BODY_NONE, 0 },
    { "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", PD_M_GET, PD_BODY_NONE, 0 },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", PD_M_GET, PD_BODY_CHUNKED, 0 },
    { "HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\n", PD_M_GET, PD_BODY_LENGTH, 7 },
    { "HTTP/1.1 200 Connection established\r\n\r\n", PD_M_CONNECT, PD_BODY_NONE, 0 },
};

START_TEST(test_response_framing)
{
    pd_http_msg m;
    pd_http_msg_init(&m);
    struct body_acc body;
    int err = 0;
    const char *raw = framing[_i].raw;
    size_t n = strlen(raw);
    int r = parse_split(0, framing[_i].req_method, raw, n, n, &m, &body, &err);
    ck_assert_msg(r == PD_PARSE_DONE || (r == PD_PARSE_AGAIN && framing[_i].body == PD_BODY_CHUNKED),
                  "case %d: r=%d", _i, r);
    ck_assert_int_eq(m.body, framing[_i].body);
    if (m.body == PD_BODY_LENGTH)
        ck_assert_uint_eq(m.content_length, framing[_i].cl);
    pd_http_msg_free(&m);
}
END_TEST

/* Requests that must be refused, with the status to answer. */
static const struct {
    const char *raw;
    int status;
    const char *what;
} bad_requests[] = {
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
      400, "CL+TE" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      400, "TE+CL" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
      400, "two Content-Lengths" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
      400, "duplicate Content-Length" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "negative CL" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400, "bad CL" },
    { "GET http://a/ HTTP/1.1\r\nHost: a\r\nX-Fold: a\r\n b\r\n\r\n", 400, "obs-fold" },
    { "GET http://a/ HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF in request line" },
    { "GET http://a/ HTTP/1.1\r\nHost: a\n\r\n", 400, "bare LF in header" },
    { "GET http://a/ HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, "bare CR" },
    { "GET http://a/ HTTP/1.1\r\nX: a\x01b\r\nHost: a\r\n\r\n", 400, "control byte" },
    { "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n", 400, "space before colon" },
    { "GET http://a/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\nHost: a\r\n\r\n", 400,
      "TE without chunked" },
    { "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\nHost: a\r\n\r\n", 400,
      "chunked not last" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
      "bad chunk size" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffff\r\n", 400, "chunk size overflow" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
      400, "chunk data longer than size" },
    { "GET http://a/ HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/2 over 1.1 framing" },
    { "GET http://a/ HTTP/3.0\r\nHost: a\r\n\r\n", 505, "an unsupported major version" },
    { "GET http://a/ HTTP/0.1\r\nHost: a\r\n\r\n", 505, "HTTP/0.1" },
    { "GET http://a/ HTTP/1.10\r\nHost: a\r\n\r\n", 400, "two-digit minor version" },
    { "GET http://a/ HTTP/11.1\r\nHost: a\r\n\r\n", 400, "two-digit major version" },
    { "GET http://a/ HTTP/1.x\r\nHost: a\r\n\r\n", 400, "non-digit minor version" },
    { "GET http://a/ HTTP/1.2\r\n\r\n", 400, "HTTP/1.2 without Host (processed as 1.1)" },
    { "GET http://a/ HTTP/1.1 x\r\n\r\n", 400, "junk after version" },
    { "GET  http://a/ HTTP/1.1\r\n\r\n", 400, "double space" },
    { "G@T http://a/ HTTP/1.1\r\n\r\n", 400, "malformed method" },
    { "GET\thttp://a/ HTTP/1.1\r\n\r\n", 400, "tab after method" },
    { "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLM http://a/ HTTP/1.1\r\n"
      "Host: a\r\n\r\n", 501, "method token over 64 bytes" },
    { "\r\n GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "space after an empty line" },
    { "PROPFIND\r\n\r\n", 400, "method alone" },
    { "FOO\x01 http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "control byte in an extension method" },
    { "FOO http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\nHost: a\r\n\r\n",
      400, "CL + TE with an extension method" },
    { "FOO http://a/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\nHost: a\r\n\r\n", 400,
      "two Content-Lengths with an extension method" },
    /* issue 8 (smuggling suite) */
    { "GET http://a/ HTTP/1.1\r\nX: y\r\n\r\n", 400, "HTTP/1.1 without Host" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding:\r\n\r\n", 400, "empty Transfer-Encoding line" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400,
      "empty transfer coding" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n", 400, "chunked twice" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;=x\r\nhello\r\n0\r\n\r\n", 400, "empty chunk extension name" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400, "unterminated quoted chunk extension" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;a=b\"c\r\nhello\r\n0\r\n\r\n", 400, "quote inside a token extension value" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold in trailer" },
    { "POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX: a\x01b\r\n\r\n", 400, "control byte in trailer" },
    { "GET http://a/\x7f HTTP/1.1\r\n\r\n", 400, "DEL in target" },
    { "\x00GET http://a/ HTTP/1.1\r\n\r\n", 400, "leading NUL" },
};

START_TEST(test_bad_requests)
{
    const char *raw = bad_requests[_i].raw;
    size_t n = strlen(raw);
    if (_i == (int)(sizeof(bad_requests) / sizeof(bad_requests[0])) - 1)
        n = 1 + strlen(raw + 1); /* the NUL case: strlen stops at it */
    for (size_t split = 0; split <= n; split++) {
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(1, 0, raw, n, split, &m, &body, &err);
        ck_assert_msg(r == PD_PARSE_ERROR, "%s (split %zu): accepted, r=%d", bad_requests[_i].what,
                      split, r);
        ck_assert_msg(err == bad_requests[_i].status, "%s: status %d, want %d",
                      bad_requests[_i].what, err, bad_requests[_i].status);
        pd_http_msg_free(&m);
    }
}
END_TEST

/* Responses that must be refused: always 502 towards the client. */
static const struct {
    const char *raw;
    int req_method;
    const char *what;
} bad_responses[] = {
    { "HTTP/1.1 200 OK\r\n: x\r\n\r\n", PD_M_GET, "empty header name (fuzz_response)" },
    { "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", PD_M_GET, "obs-fold" },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n",
      PD_M_GET, "unterminated quoted chunk extension" },
    { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n\tb\r\n\r\n",
      PD_M_GET, "obs-fold in trailer" },
    { "HTTP/1.1 2000 OK\r\n\r\n", PD_M_GET, "four-digit status" },
};

START_TEST(test_bad_responses)
{
    const char *raw = bad_responses[_i].raw;
    size_t n = strlen(raw);
    for (size_t split = 0; split <= n; split++) {
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(0, bad_responses[_i].req_method, raw, n, split, &m, &body, &err);
        ck_assert_msg(r == PD_PARSE_ERROR, "%s (split %zu): accepted, r=%d", bad_responses[_i].what,
                      split, r);
        ck_assert_msg(err == 502, "%s: status %d, want 502", bad_responses[_i].what, err);
        pd_http_msg_free(&m);
    }
}
END_TEST

/* A 1 KB chunk extension is refused; a short one passes (and is dropped). */
START_TEST(test_chunk_extension_limit)
{
    char raw[4096];
    for (int len = 10; len <= 2000; len += 1990) {
        int n = snprintf(raw, sizeof raw, "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n5;x=%0*d\r\nhello\r\n0\r\n\r\n", len, 0);
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(1, 0, raw, (size_t)n, (size_t)n, &m, &body, &err);
        if (len < 100) {
            ck_assert_int_eq(r, PD_PARSE_DONE);
            ck_assert_uint_eq(body.len, 5);
        } else {
            ck_assert_int_eq(r, PD_PARSE_ERROR);
            ck_assert_int_eq(err, 400);
        }
        pd_http_msg_free(&m);
    }
}
END_TEST

/* Well-formed extensions pass (and are dropped): tokens, quoted strings. llhttp 8.1
 * strict itself refuses quoted-pairs and whitespace around ';' and '='. */
START_TEST(test_chunk_extension_valid)
{
    static const char *const exts[] = { ";a", ";a=b", ";a=\"b c\";b=1",
                                         ";a=\"\";b", ";!#$%&'*+-.^_`|~=~" };
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        char raw[512];
        int n = snprintf(raw, sizeof raw, "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n5%s\r\nhello\r\n0\r\n\r\n", exts[i]);
        for (int split = 0; split <= n; split++) {
            pd_http_msg m;
            pd_http_msg_init(&m);
            struct body_acc body;
            int err = 0;
            int r = parse_split(1, 0, raw, (size_t)n, (size_t)split, &m, &body, &err);
            ck_assert_msg(r == PD_PARSE_DONE, "extension %s (split %d): r=%d err=%d", exts[i], split, r,
                          err);
            ck_assert_uint_eq(body.len, 5);
            pd_http_msg_free(&m);
        }
    }
}
END_TEST

/* No reason phrase and no field: nothing stored (UB on a NULL buffer, fuzz_response). */
START_TEST(test_response_without_reason_or_fields)
{
    pd_http_msg m;
    pd_http_msg_init(&m);
    struct body_acc body;
    int err = 0;
    const char *raw = "HTTP/1.1 204\r\n\r\n";
    int r = parse_split(0, PD_M_GET, raw, strlen(raw), strlen(raw), &m, &body, &err);
    ck_assert_int_eq(r, PD_PARSE_DONE);
    ck_assert_int_eq(m.status, 204);
    ck_assert_uint_eq(m.reason.len, 0);
    ck_assert_ptr_nonnull(m.reason.p);
    pd_http_msg_free(&m);
}
END_TEST

/*
 * Methods llhttp knows and methods it does not (RFC 9110 16.1 extension
 * methods, case-sensitive) parse alike, with or without a body, at every
 * split; the method is the one received.
 */
static const struct {
    const char *method;
    int id;
    const char *rest;
    enum pd_body_kind body;
} methods[] = {
    { "PROPFIND", PD_M_OTHER, "Host: a\r\nDepth: 1\r\nContent-Length: 5\r\n\r\n<a/>\n", PD_BODY_LENGTH },
    { "MKCOL", PD_M_OTHER, "Host: a\r\n\r\n", PD_BODY_NONE },
    { "REPORT", PD_M_OTHER, "Host: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      PD_BODY_CHUNKED },
    { "LINK", PD_M_OTHER, "Host: a\r\n\r\n", PD_BODY_NONE },
    { "BREW", PD_M_OTHER, "Host: a\r\nContent-Length: 5\r\n\r\nhello", PD_BODY_LENGTH },
    { "X-MADE-UP.1~", PD_M_OTHER, "Host: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      PD_BODY_CHUNKED },
    { "get", PD_M_OTHER, "Host: a\r\n\r\n", PD_BODY_NONE },
    { "PURGE", PD_M_PURGE, "Host: a\r\n\r\n", PD_BODY_NONE },
    { "DESCRIBE", PD_M_OTHER, "Host: a\r\n\r\n", PD_BODY_NONE },
    { "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKL", PD_M_OTHER,
      "Host: a\r\n\r\n", PD_BODY_NONE },
};

START_TEST(test_extension_methods_every_split)
{
    char raw[512];
    int n = snprintf(raw, sizeof raw, "%s%s http://a/x HTTP/1.1\r\n%s", _i % 2 ? "\r\n" : "",
                     methods[_i].method, methods[_i].rest);
    for (size_t split = 0; split <= (size_t)n; split++) {
        pd_http_msg m;
        pd_http_msg_init(&m);
        struct body_acc body;
        int err = 0;
        int r = parse_split(1, 0, raw, (size_t)n, split, &m, &body, &err);
        ck_assert_msg(r == PD_PARSE_DONE, "%s split %zu: result %d err %d", methods[_i].method, split, r, err);
        ck_assert_uint_eq(m.method.len, strlen(methods[_i].method));
        ck_assert(memcmp(m.method.p, methods[_i].method, m.method.len) == 0);
        ck_assert_int_eq(m.method_id, methods[_i].id);
        ck_assert_uint_eq(m.target.len, 10);
        ck_assert(memcmp(m.target.p, "http://a/x", 10) == 0);
        ck_assert_int_eq(m.body, methods[_i].body);
        ck_assert_str_eq(get_header(&m, "host"), "a");
        if (methods[_i].body != PD_BODY_NONE)
            ck_assert_uint_eq(body.len, 5);
        pd_http_msg_free(&m);
    }
}
END_TEST

/*
 * Over request_header_max_size: 414 when the request line does not end
 * within it (the target is what is long), 431 when the fields are; the same
 * at every split of the bytes.
 */
START_TEST(test_head_limit_414_or_431)
{
    char long_target[400], long_field[400];
    snprintf(long_target, sizeof long_target, "GET http://a/%0150d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    snprintf(long_field, sizeof long_field, "GET http://a/ HTTP/1.1\r\nHost: a\r\nX: %0150d\r\n\r\n", 0);
    /* the target ends at byte 163 of the first: a limit of 170 lets it end, 160 does not */
    const struct { const char *raw; size_t max; int status; } cases[] = {
        { long_target, 100, 414 }, { long_target, 160, 414 }, { long_target, 170, 431 },
        { long_field, 100, 431 }, { long_field, 10, 414 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = strlen(cases[c].raw);
        for (size_t split = 0; split <= n; split++) {
            pd_http_parser *p = pd_http_parser_new(1, cases[c].max);
            pd_http_msg m;
            pd_http_msg_init(&m);
            pd_http_parser_next(p, &m, 0);
            size_t used = 0;
            enum pd_parse_status st = pd_http_parse_head(p, cases[c].raw, split, &used);
            if (st == PD_PARSE_AGAIN)
                st = pd_http_parse_head(p, cases[c].raw + split, n - split, &used);
            ck_assert_msg(st == PD_PARSE_ERROR, "case %zu split %zu: accepted", c, split);
            ck_assert_msg(pd_http_parser_error(p, NULL) == cases[c].status, "case %zu split %zu: %d", c,
                          split, pd_http_parser_error(p, NULL));
            pd_http_parser_free(p);
            pd_http_msg_free(&m);
        }
    }
}
END_TEST

START_TEST(test_head_too_large)
{
    pd_http_parser *p = pd_http_parser_new(1, 100);
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    char raw[300];
    snprintf(raw, sizeof raw, "GET http://a/ HTTP/1.1\r\nX-Long: %0200d\r\n\r\n", 0);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_ERROR);
    ck_assert_int_eq(pd_http_parser_error(p, NULL), 431);
    pd_http_parser_free(p);
    pd_http_msg_free(&m);
}
END_TEST

START_TEST(test_pipelined_requests)
{
    const char *raw = "GET http://a/1 HTTP/1.1\r\nHost: a\r\n\r\n"
                      "HEAD http://a/2 HTTP/1.0\r\n\r\n";
    pd_http_parser *p = pd_http_parser_new(1, 8192);
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_DONE);
    ck_assert_uint_eq(used, strlen("GET http://a/1 HTTP/1.1\r\nHost: a\r\n\r\n"));
    ck_assert_int_eq(m.keep_alive, 1);
    pd_http_parser_next(p, &m, 0);
    size_t used2;
    ck_assert_int_eq(pd_http_parse_head(p, raw + used, strlen(raw) - used, &used2), PD_PARSE_DONE);
    ck_assert_int_eq(m.method_id, PD_M_HEAD);
    ck_assert_int_eq(m.version_minor, 0);
    ck_assert_int_eq(m.keep_alive, 0);
    pd_http_parser_free(p);
    pd_http_msg_free(&m);
}
END_TEST

/* RFC 9110 2.5: a higher HTTP/1 minor version is processed as HTTP/1.1. */
START_TEST(test_request_higher_minor_version)
{
    const char *raw = "GET http://a/ HTTP/1.2\r\nHost: a\r\n\r\n";
    pd_http_parser *p = pd_http_parser_new(1, 8192);
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_DONE);
    ck_assert_uint_eq(used, strlen(raw));
    ck_assert_int_eq(m.version_major, 1);
    ck_assert_int_eq(m.version_minor, 2);
    ck_assert_int_eq(m.keep_alive, 1);
    pd_http_parser_free(p);
    pd_http_msg_free(&m);
}
END_TEST

START_TEST(test_msg_headers)
{
    pd_http_msg m;
    pd_http_msg_init(&m);
    for (int i = 0; i < 100; i++) {
        char v[32];
        snprintf(v, sizeof v, "value-%d", i);
        ck_assert_int_eq(pd_http_msg_add(&m, i % 2 ? "Connection" : "X-Other", v, strlen(v)), 0);
    }
    ck_assert_uint_eq(m.n_headers, 100);
    /* views survive the buffer moving */
    ck_assert(pd_str_eq_ci(m.headers[0].value, "value-0"));
    ck_assert(pd_str_eq_ci(m.headers[99].value, "value-99"));
    ck_assert(pd_http_msg_has_token(&m, "connection", "VALUE-7"));
    ck_assert(!pd_http_msg_has_token(&m, "connection", "value-8"));
    ck_assert_int_eq(pd_http_msg_remove(&m, "CONNECTION"), 50);
    ck_assert_uint_eq(m.n_headers, 50);
    ck_assert_ptr_null(pd_http_msg_find(&m, "connection"));
    pd_http_msg_free(&m);

    pd_http_msg_init(&m);
    const char *v = "close, Keep-Alive ,  x-custom;q=1";
    pd_http_msg_add(&m, "Connection", v, strlen(v));
    ck_assert(pd_http_msg_has_token(&m, "Connection", "keep-alive"));
    ck_assert(pd_http_msg_has_token(&m, "Connection", "x-custom"));
    ck_assert(pd_http_msg_has_token(&m, "Connection", "close"));
    ck_assert(!pd_http_msg_has_token(&m, "Connection", "keep"));
    pd_http_msg_free(&m);
}
END_TEST

/* pd_http_msg_copy: the copy owns its bytes; the original can go and be reused. */
START_TEST(test_msg_copy)
{
    const char *raw = "GET http://a/x?y HTTP/1.1\r\nHost: a\r\nAccept: text/*\r\nIf-None-Match: \"e\"\r\n\r\n";
    pd_http_parser *p = pd_http_parser_new(1, 8192);
    pd_http_msg m, c;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_DONE);
    ck_assert_int_eq(pd_http_msg_copy(&c, &m), 0);
    pd_http_parser_free(p);
    memset(m.buf, 'Z', m.buf_len); /* the original's bytes change under it... */
    pd_http_msg_free(&m);          /* ...and go */
    ck_assert(pd_str_eq_ci(c.method, "GET"));
    ck_assert_int_eq(c.method_id, PD_M_GET);
    ck_assert(pd_str_eq_ci(c.target, "http://a/x?y"));
    ck_assert_uint_eq(c.n_headers, 3);
    ck_assert(pd_str_eq_ci(pd_http_msg_find(&c, "accept")->value, "text/*"));
    ck_assert_int_eq(pd_http_msg_remove(&c, "If-None-Match"), 1);
    c.method = PD_STR("HEAD"); /* a literal view stays as it is through later copies */
    for (int i = 0; i < 40; i++) /* the copy grows on its own */
        ck_assert_int_eq(pd_http_msg_add(&c, "X-Pad", "0123456789abcdef", 16), 0);
    pd_http_msg d;
    ck_assert_int_eq(pd_http_msg_copy(&d, &c), 0);
    pd_http_msg_free(&c);
    ck_assert(pd_str_eq_ci(d.method, "HEAD"));
    ck_assert(pd_str_eq_ci(d.target, "http://a/x?y"));
    ck_assert(pd_str_eq_ci(pd_http_msg_find(&d, "host")->value, "a"));
    ck_assert_uint_eq(d.n_headers, 42);
    pd_http_msg_free(&d);
}
END_TEST

START_TEST(test_methods)
{
    ck_assert_int_eq(pd_method_id(PD_STR("GET")), PD_M_GET);
    ck_assert_int_eq(pd_method_id(PD_STR("get")), PD_M_OTHER);
    ck_assert_int_eq(pd_method_id(PD_STR("CONNECT")), PD_M_CONNECT);
    ck_assert(pd_method_is_idempotent(PD_M_PUT));
    ck_assert(!pd_method_is_idempotent(PD_M_POST));
    ck_assert(pd_method_is_safe(PD_M_HEAD));
    ck_assert(!pd_method_is_safe(PD_M_DELETE));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http_parse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_request_every_split);
    tcase_add_test(tc, test_cache_object_every_split);
    tcase_add_test(tc, test_response_every_split);
    tcase_add_loop_test(tc, test_response_framing, 0, sizeof(framing) / sizeof(framing[0]));
    tcase_add_loop_test(tc, test_bad_requests, 0, sizeof(bad_requests) / sizeof(bad_requests[0]));
    tcase_add_loop_test(tc, test_bad_responses, 0, sizeof(bad_responses) / sizeof(bad_responses[0]));
    tcase_add_test(tc, test_request_higher_minor_version);
    tcase_add_test(tc, test_chunk_extension_limit);
    tcase_add_test(tc, test_chunk_extension_valid);
    tcase_add_test(tc, test_response_without_reason_or_fields);
    tcase_add_test(tc, test_head_too_large);
    tcase_add_test(tc, test_pipelined_requests);
    tcase_add_test(tc, test_msg_headers);
    tcase_add_test(tc, test_methods);
    tcase_add_test(tc, test_msg_copy);
    tcase_add_loop_test(tc, test_extension_methods_every_split, 0, sizeof methods / sizeof methods[0]);
    tcase_add_test(tc, test_head_limit_414_or_431);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
