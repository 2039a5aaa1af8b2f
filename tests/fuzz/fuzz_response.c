/*
 * libFuzzer target for the response parser (src/http_parse.c): the answer to
 * a GET, HEAD or CONNECT (chosen by the first input byte, which also sets the
 * piece size), heads and chunked bodies of successive responses on one
 * connection, as client.c reads them from an origin. Errors must be 502 (or
 * 500 for memory); parsed heads must be consistent.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/http_msg.h"
#include "proxyd/http_parse.h"

static int body_sink(void *arg, const char *data, size_t len)
{
    size_t *total = arg;
    for (size_t i = 0; i < len; i++)
        *total += (unsigned char)data[i] == 0x7f;
    *total += len;
    /* the consumer failing must be handled too */
    return *total > 100000 ? -1 : 0;
}

static void check_msg(const pd_http_msg *m, int method)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        const pd_header *h = &m->headers[i];
        if (h->name.len == 0 || (h->name.p < m->buf) || h->name.p + h->name.len > m->buf + m->buf_len)
            abort();
        if (h->value.len && (h->value.p < m->buf || h->value.p + h->value.len > m->buf + m->buf_len))
            abort();
        for (size_t j = 0; j < h->value.len; j++)
            if (h->value.p[j] == '\r' || h->value.p[j] == '\n' || h->value.p[j] == 0)
                abort();
    }
    if (m->status < 100 || m->status > 999 || m->version_major != 1)
        abort();
    if (m->reason.len && (m->reason.p < m->buf || m->reason.p + m->reason.len > m->buf + m->buf_len))
        abort();
    if (method == PD_M_HEAD && m->body != PD_BODY_NONE)
        abort();
    if ((m->status == 204 || m->status == 304) && m->body != PD_BODY_NONE)
        abort();
    if (m->body == PD_BODY_CHUNKED && pd_http_msg_find(m, "Content-Length"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const int methods[4] = { PD_M_GET, PD_M_HEAD, PD_M_CONNECT, PD_M_POST };
    int method = methods[data[0] & 3];
    size_t piece = (data[0] >> 2) & 0x1f;
    size_t max_head = data[0] & 0x80 ? 200 : 65536;
    data++;
    size--;

    pd_http_parser *p = pd_http_parser_new(0, max_head);
    if (!p)
        return 0;
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, method);
    int in_body = 0, messages = 0;
    size_t total = 0, off = 0;
    while (off < size && messages < 64) {
        size_t n = piece ? piece : size - off;
        if (n > size - off)
            n = size - off;
        size_t used = 0;
        enum pd_parse_status st = in_body
            ? pd_http_parse_body(p, (const char *)data + off, n, &used, body_sink, &total)
            : pd_http_parse_head(p, (const char *)data + off, n, &used);
        if (used > n)
            abort();
        if (st == PD_PARSE_ERROR) {
            const char *reason = NULL;
            int status = pd_http_parser_error(p, &reason);
            if (!reason || !(status == 502 || status == 500))
                abort();
            break;
        }
        off += used;
        if (st == PD_PARSE_AGAIN)
            continue;
        if (!in_body) {
            check_msg(&m, method);
            if (m.body == PD_BODY_CHUNKED) {
                in_body = 1;
                continue;
            }
            if (m.body == PD_BODY_EOF)
                break; /* the rest of the connection is the body */
            if (m.body == PD_BODY_LENGTH)
                off += m.content_length < size - off ? (size_t)m.content_length : size - off;
        }
        in_body = 0;
        messages++;
        pd_http_parser_next(p, &m, method);
    }
    pd_http_msg_free(&m);
    pd_http_parser_free(p);
    return 0;
}
