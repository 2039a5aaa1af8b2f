/*
 * cache_meta: the metadata blob of a cached object (see include/proxyd/cache_meta.h).
 * Layout: a fixed header (magic, kind, times), then the head as HTTP text,
 * read back by a reader of exactly what pd_cache_meta_build writes (every
 * hit does it), with the strict parser of any response as the fallback.
 */
#include "proxyd/cache_meta.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "proxyd/http_parse.h"

#define META_MAGIC 0x314d4450u /* "PDM1" */

struct meta_hdr {
    uint32_t magic;
    uint32_t kind;
    int64_t request_time;
    int64_t response_time;
    int64_t body_len;
    uint64_t vary_gen;
};

static uint64_t new_generation(void)
{
    uint64_t g;
    if (getrandom(&g, sizeof g, GRND_NONBLOCK) == (ssize_t)sizeof g)
        return g;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
}

/* Age is kept: the stored response's Age is its age_value when it arrived
 * (RFC 9111 4.2.3); serving replaces it with the current age. */
int pd_cache_meta_keeps(const pd_http_msg *m, pd_str name)
{
    return !pd_http_msg_is_hop_by_hop(m, name) && !pd_str_eq_ci(name, "Content-Length");
}

void *pd_cache_meta_build(enum pd_meta_kind kind, const pd_http_msg *resp, time_t request_time,
                          time_t response_time, size_t *len)
{
    size_t cap = sizeof(struct meta_hdr) + 64 + resp->reason.len;
    for (size_t i = 0; i < resp->n_headers; i++)
        cap += resp->headers[i].name.len + resp->headers[i].value.len + 4;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    struct meta_hdr h = { META_MAGIC, (uint32_t)kind, request_time, response_time,
                          resp->body == PD_BODY_LENGTH ? (int64_t)resp->content_length : -1,
                          kind == PD_META_VARY ? new_generation() : 0 };
    memcpy(buf, &h, sizeof h);
    size_t o = sizeof h;
    o += (size_t)snprintf(buf + o, cap - o, "HTTP/1.1 %03d ", resp->status);
    memcpy(buf + o, resp->reason.p, resp->reason.len);
    o += resp->reason.len;
    memcpy(buf + o, "\r\n", 2);
    o += 2;
    for (size_t i = 0; i < resp->n_headers; i++) {
        const pd_header *hd = &resp->headers[i];
        if (!pd_cache_meta_keeps(resp, hd->name))
            continue;
        memcpy(buf + o, hd->name.p, hd->name.len);
        o += hd->name.len;
        buf[o++] = ':';
        buf[o++] = ' ';
        memcpy(buf + o, hd->value.p, hd->value.len);
        o += hd->value.len;
        buf[o++] = '\r';
        buf[o++] = '\n';
    }
    buf[o++] = '\r';
    buf[o++] = '\n';
    *len = o;
    return buf;
}

/* Is c a tchar (RFC 9110 5.6.2)? */
static int tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr(extra, c));
}

/*
 * The head as pd_cache_meta_build writes it, read without the general parser
 * (it runs on every hit): "HTTP/1.1 NNN reason\r\n", then "Name: value\r\n"
 * lines, then "\r\n". The blob lives in the shared segment, so it is still
 * checked byte by byte (a field name of tchars, no control bytes in a value
 * but HTAB, nothing after the end); 0, or -1 for anything else, which then
 * goes to the strict parser.
 */
static int parse_own_head(const char *t, size_t n, pd_http_msg *h)
{
    if (n < 19 || memcmp(t, "HTTP/1.1 ", 9) != 0 || t[9] < '1' || t[9] > '5' ||
        t[10] < '0' || t[10] > '9' || t[11] < '0' || t[11] > '9' || t[12] != ' ' ||
        memcmp(t + n - 4, "\r\n\r\n", 4) != 0)
        return -1;
    size_t nlines = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '\r') {
            if (i + 1 >= n || t[i + 1] != '\n')
                return -1;
            nlines++;
            i++;
        } else if ((c < 0x20 && c != '\t') || c == 0x7f || c == '\n') {
            return -1;
        }
    }
    char *buf = malloc(n + 1); /* NUL-terminated, as pd_http_msg_store leaves its buffer */
    pd_header *hd = nlines > 2 ? malloc((nlines - 2) * sizeof *hd) : NULL;
    if (!buf || (nlines > 2 && !hd)) {
        free(buf);
        free(hd);
        return -1;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    h->buf = buf;
    h->buf_len = n;
    h->buf_cap = n + 1;
    h->headers = hd;
    h->cap_headers = nlines > 2 ? nlines - 2 : 0;
    h->version_major = h->version_minor = 1;
    h->status = (t[9] - '0') * 100 + (t[10] - '0') * 10 + (t[11] - '0');
    const char *eol = memchr(buf + 13, '\r', n - 13);
    h->reason = (pd_str){ buf + 13, (size_t)(eol - (buf + 13)) };
    const char *p = eol + 2, *end = buf + n - 2; /* the last line is the empty one */
    while (p < end) {
        const char *e = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon || colon == p)
            return -1;
        for (const char *q = p; q < colon; q++)
            if (!tchar((unsigned char)*q))
                return -1;
        const char *v = colon + 1, *ve = e;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        hd[h->n_headers].name = (pd_str){ p, (size_t)(colon - p) };
        hd[h->n_headers].value = (pd_str){ v, (size_t)(ve - v) };
        h->n_headers++;
        p = e + 2;
    }
    /* as the strict parser leaves it: read as the answer to a HEAD (the store
     * knows the body); without a length, llhttp calls only a response that
     * never has a body persistent */
    h->body = PD_BODY_NONE;
    h->keep_alive = h->status < 200 || h->status == 204 || h->status == 304;
    return 0;
}

int pd_cache_meta_parse(const void *blob, size_t len, pd_cache_meta *m)
{
    return pd_cache_meta_parse_how(blob, len, m, 0);
}

int pd_cache_meta_parse_how(const void *blob, size_t len, pd_cache_meta *m, int strict)
{
    memset(m, 0, sizeof *m);
    pd_http_msg_init(&m->head);
    struct meta_hdr h;
    if (len < sizeof h)
        return -1;
    memcpy(&h, blob, sizeof h);
    if (h.magic != META_MAGIC || h.kind > PD_META_VARY)
        return -1;
    m->kind = (enum pd_meta_kind)h.kind;
    m->request_time = (time_t)h.request_time;
    m->response_time = (time_t)h.response_time;
    m->body_len = h.body_len >= 0 ? h.body_len : -1;
    m->vary_gen = h.vary_gen;
    if (!strict && parse_own_head((const char *)blob + sizeof h, len - sizeof h, &m->head) == 0)
        return 0;
    pd_http_msg_free(&m->head);
    pd_http_msg_init(&m->head);
    pd_http_parser *p = pd_http_parser_new(0, len + 1);
    if (!p)
        return -1;
    pd_http_parser_next(p, &m->head, PD_M_HEAD);
    size_t used;
    enum pd_parse_status st =
        pd_http_parse_head(p, (const char *)blob + sizeof h, len - sizeof h, &used);
    pd_http_parser_free(p);
    if (st != PD_PARSE_DONE) {
        pd_http_msg_free(&m->head);
        return -1;
    }
    return 0;
}

void pd_cache_meta_free(pd_cache_meta *m)
{
    pd_http_msg_free(&m->head);
}
