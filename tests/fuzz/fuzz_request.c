/*
 * libFuzzer target for the request parser (src/http_parse.c): heads and
 * chunked bodies of pipelined requests, fed in pieces whose sizes come from
 * the first input byte, so every status path (AGAIN at any byte, DONE, ERROR
 * with each status) is reached. Whatever parses must be a consistent message
 * (views inside its buffer, framing consistent), and the URL code must accept
 * or refuse the target without crashing. Errors must map to the statuses
 * client.c knows how to answer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/http_msg.h"
#include "proxyd/http_parse.h"
#include "proxyd/url.h"

static int body_sink(void *arg, const char *data, size_t len)
{
    size_t *total = arg;
    /* touch every byte: ASan reports a view outside the input */
    for (size_t i = 0; i < len; i++)
        *total += (unsigned char)data[i] != 0;
    *total += len;
    return 0;
}

static void check_view(const pd_http_msg *m, pd_str s)
{
    if (s.len == 0)
        return;
    if (s.p < m->buf || s.p + s.len > m->buf + m->buf_len)
        abort();
}

static void check_msg(const pd_http_msg *m)
{
    check_view(m, m->method);
    check_view(m, m->target);
    for (size_t i = 0; i < m->n_headers; i++) {
        check_view(m, m->headers[i].name);
        check_view(m, m->headers[i].value);
        if (m->headers[i].name.len == 0)
            abort();
        for (size_t j = 0; j < m->headers[i].value.len; j++) {
            unsigned char c = (unsigned char)m->headers[i].value.p[j];
            if (c == '\r' || c == '\n' || c == 0)
                abort(); /* would be forwarded: header injection */
        }
    }
    if (m->version_major != 1)
        abort();
    if (m->body == PD_BODY_EOF)
        abort(); /* a request body is never delimited by close */
    if (m->body == PD_BODY_LENGTH && m->content_length == 0)
        abort();
    if (m->body == PD_BODY_CHUNKED && pd_http_msg_find(m, "Content-Length"))
        abort(); /* CL + TE must have been refused */
    /* what client.c does with a parsed head */
    pd_url u;
    const char *why = NULL;
    enum pd_url_form form = m->method_id == PD_M_CONNECT ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE;
    if (pd_url_parse(m->target.p, m->target.len, form, &u, &why) == 0) {
        char buf[8192];
        size_t n = pd_url_format(&u, buf, sizeof(buf));
        if (n < sizeof(buf) && strlen(buf) != n)
            abort();
        pd_url_authority(&u, buf, sizeof(buf));
        pd_url_free(&u);
    } else if (!why) {
        abort();
    }
    (void)pd_http_msg_has_token(m, "Connection", "close");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* first byte: piece size (1..64, 0 = all at once) and head limit */
    size_t piece = data[0] & 0x3f;
    size_t max_head = data[0] & 0x40 ? 256 : 65536;
    data++;
    size--;

    pd_http_parser *p = pd_http_parser_new(1, max_head);
    if (!p)
        return 0;
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    int in_body = 0;
    size_t total = 0, off = 0;
    int messages = 0;
    while (off < size && messages < 64) {
        size_t n = piece ? piece : size - off;
        if (n > size - off)
            n = size - off;
        size_t used = 0;
        enum pd_parse_status st;
        if (!in_body)
            st = pd_http_parse_head(p, (const char *)data + off, n, &used);
        else
            st = pd_http_parse_body(p, (const char *)data + off, n, &used, body_sink, &total);
        if (used > n)
            abort();
        if (st == PD_PARSE_ERROR) {
            const char *reason = NULL;
            int status = pd_http_parser_error(p, &reason);
            if (!reason || !(status == 400 || status == 431 || status == 501 || status == 505 ||
                             status == 500 || status == 414))
                abort();
            break;
        }
        off += used;
        if (st == PD_PARSE_AGAIN) {
            if (used != n)
                abort();
            continue;
        }
        /* DONE */
        if (!in_body) {
            check_msg(&m);
            if (m.body == PD_BODY_CHUNKED) {
                in_body = 1;
                continue;
            }
            if (m.body == PD_BODY_LENGTH) {
                /* client.c moves these bytes itself */
                uint64_t skip = m.content_length;
                off += skip < size - off ? (size_t)skip : size - off;
            }
        }
        in_body = 0;
        messages++;
        pd_http_parser_next(p, &m, 0);
    }
    pd_http_msg_free(&m);
    pd_http_parser_free(p);
    return 0;
}
