/*
 * http_msg: the message model shared by the parser, the request engine, the
 * cache policy and the ACLs. A message owns one growing byte buffer that holds
 * every string its views point to; when the buffer moves, the views are
 * rebased, so callers may keep pd_str values only until the next mutation.
 */
#include "proxyd/http_msg.h"

#include <stdio.h>

#include <event2/buffer.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void pd_http_msg_init(pd_http_msg *m)
{
    memset(m, 0, sizeof(*m));
}

void pd_http_msg_reset(pd_http_msg *m)
{
    char *buf = m->buf;
    size_t cap = m->buf_cap;
    pd_header *h = m->headers;
    size_t hcap = m->cap_headers;
    memset(m, 0, sizeof(*m));
    m->buf = buf;
    m->buf_cap = cap;
    m->headers = h;
    m->cap_headers = hcap;
}

void pd_http_msg_free(pd_http_msg *m)
{
    free(m->buf);
    free(m->headers);
    memset(m, 0, sizeof(*m));
}

static void rebase(pd_str *s, uintptr_t old, size_t oldlen, char *nbuf)
{
    uintptr_t p = (uintptr_t)s->p;
    if (s->p && p >= old && p <= old + oldlen)
        s->p = nbuf + (p - old);
}

int pd_http_msg_copy(pd_http_msg *dst, const pd_http_msg *src)
{
    *dst = *src;
    dst->buf = NULL;
    dst->headers = NULL;
    dst->buf_len = dst->buf_cap = 0;
    dst->n_headers = dst->cap_headers = 0;
    if (src->buf) {
        dst->buf = malloc(src->buf_len + 1);
        if (!dst->buf)
            goto fail;
        memcpy(dst->buf, src->buf, src->buf_len + 1); /* with its NUL */
        dst->buf_len = src->buf_len;
        dst->buf_cap = src->buf_len + 1;
    }
    if (src->n_headers) {
        dst->headers = malloc(src->n_headers * sizeof *dst->headers);
        if (!dst->headers)
            goto fail;
        memcpy(dst->headers, src->headers, src->n_headers * sizeof *dst->headers);
        dst->n_headers = dst->cap_headers = src->n_headers;
    }
    if (src->buf) {
        uintptr_t old = (uintptr_t)src->buf;
        rebase(&dst->method, old, src->buf_len, dst->buf);
        rebase(&dst->target, old, src->buf_len, dst->buf);
        rebase(&dst->reason, old, src->buf_len, dst->buf);
        for (size_t i = 0; i < dst->n_headers; i++) {
            rebase(&dst->headers[i].name, old, src->buf_len, dst->buf);
            rebase(&dst->headers[i].value, old, src->buf_len, dst->buf);
        }
    }
    return 0;
fail:
    pd_http_msg_free(dst);
    return -1;
}

ssize_t pd_http_msg_store(pd_http_msg *m, const char *p, size_t len)
{
    if (m->buf_len + len + 1 > m->buf_cap) {
        size_t ncap = m->buf_cap ? m->buf_cap : 512;
        while (ncap < m->buf_len + len + 1)
            ncap *= 2;
        uintptr_t old = (uintptr_t)m->buf;
        char *nbuf = realloc(m->buf, ncap);
        if (!nbuf)
            return -1;
        if ((uintptr_t)nbuf != old && old) {
            rebase(&m->method, old, m->buf_len, nbuf);
            rebase(&m->target, old, m->buf_len, nbuf);
            rebase(&m->reason, old, m->buf_len, nbuf);
            for (size_t i = 0; i < m->n_headers; i++) {
                rebase(&m->headers[i].name, old, m->buf_len, nbuf);
                rebase(&m->headers[i].value, old, m->buf_len, nbuf);
            }
        }
        m->buf = nbuf;
        m->buf_cap = ncap;
    }
    size_t off = m->buf_len;
    if (len)
        memcpy(m->buf + off, p, len);
    m->buf_len += len;
    m->buf[m->buf_len] = '\0';
    return (ssize_t)off;
}

int pd_str_eq_ci(pd_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

const pd_header *pd_http_msg_find(const pd_http_msg *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (pd_str_eq_ci(m->headers[i].name, name))
            return &m->headers[i];
    return NULL;
}

const pd_header *pd_http_msg_find_next(const pd_http_msg *m, const pd_header *prev)
{
    size_t i = (size_t)(prev - m->headers) + 1;
    for (; i < m->n_headers; i++)
        if (m->headers[i].name.len == prev->name.len &&
            strncasecmp(m->headers[i].name.p, prev->name.p, prev->name.len) == 0)
            return &m->headers[i];
    return NULL;
}

int pd_http_msg_add(pd_http_msg *m, const char *name, const char *value, size_t vlen)
{
    size_t nlen = strlen(name);
    if (m->n_headers == m->cap_headers) {
        size_t ncap = m->cap_headers ? m->cap_headers * 2 : 16;
        pd_header *nh = realloc(m->headers, ncap * sizeof(*nh));
        if (!nh)
            return -1;
        m->headers = nh;
        m->cap_headers = ncap;
    }
    ssize_t noff = pd_http_msg_store(m, name, nlen);
    if (noff < 0)
        return -1;
    ssize_t voff = pd_http_msg_store(m, value, vlen);
    if (voff < 0)
        return -1;
    pd_header *h = &m->headers[m->n_headers++];
    h->name = (pd_str){ m->buf + noff, nlen };
    h->value = (pd_str){ m->buf + voff, vlen };
    return 0;
}

int pd_http_msg_remove(pd_http_msg *m, const char *name)
{
    size_t j = 0;
    int removed = 0;
    for (size_t i = 0; i < m->n_headers; i++) {
        if (pd_str_eq_ci(m->headers[i].name, name)) {
            removed++;
            continue;
        }
        m->headers[j++] = m->headers[i];
    }
    m->n_headers = j;
    return removed;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Does the comma-separated list in v contain token (case-insensitive)? */
static int list_has_str(pd_str v, pd_str tok)
{
    const char *token = tok.p;
    size_t tlen = tok.len;
    const char *p = v.p, *end = v.p + v.len;
    while (p < end) {
        while (p < end && (is_ows(*p) || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && is_ows(e[-1]))
            e--;
        /* a parameter (";q=...") is not part of the token */
        const char *semi = memchr(s, ';', (size_t)(e - s));
        if (semi) {
            e = semi;
            while (e > s && is_ows(e[-1]))
                e--;
        }
        if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
            return 1;
    }
    return 0;
}

static int has_str(const pd_http_msg *m, const char *name, pd_str token)
{
    for (const pd_header *h = pd_http_msg_find(m, name); h; h = pd_http_msg_find_next(m, h))
        if (list_has_str(h->value, token))
            return 1;
    return 0;
}

int pd_http_msg_has_token(const pd_http_msg *m, const char *name, const char *token)
{
    return has_str(m, name, pd_str_z(token));
}

int pd_http_msg_is_hop_by_hop(const pd_http_msg *m, pd_str name)
{
    static const char *const hop[] = { "Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                       "Trailer", "Transfer-Encoding", "Upgrade",
                                       "Proxy-Authenticate", "Proxy-Authentication-Info",
                                       "Proxy-Authorization" };
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (pd_str_eq_ci(name, hop[i]))
            return 1;
    return has_str(m, "Connection", name);
}

static const struct {
    const char *name;
    int id;
} methods[] = {
    { "GET", PD_M_GET },         { "HEAD", PD_M_HEAD },     { "POST", PD_M_POST },
    { "PUT", PD_M_PUT },         { "DELETE", PD_M_DELETE }, { "OPTIONS", PD_M_OPTIONS },
    { "PATCH", PD_M_PATCH },     { "CONNECT", PD_M_CONNECT }, { "TRACE", PD_M_TRACE },
    { "PURGE", PD_M_PURGE },
};

int pd_method_id(pd_str method)
{
    /* methods are case-sensitive (RFC 9110 9.1) */
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (method.len == strlen(methods[i].name) &&
            memcmp(method.p, methods[i].name, method.len) == 0)
            return methods[i].id;
    return PD_M_OTHER;
}

int pd_method_is_safe(int id)
{
    return id == PD_M_GET || id == PD_M_HEAD || id == PD_M_OPTIONS || id == PD_M_TRACE;
}

int pd_method_is_idempotent(int id)
{
    return pd_method_is_safe(id) || id == PD_M_PUT || id == PD_M_DELETE;
}

size_t pd_http_chunk_head(struct evbuffer *out, size_t n)
{
    char line[24];
    int l = snprintf(line, sizeof line, "%zx\r\n", n);
    evbuffer_add(out, line, (size_t)l);
    return (size_t)l;
}

size_t pd_http_chunk_tail(struct evbuffer *out)
{
    evbuffer_add(out, "\r\n", 2);
    return 2;
}

size_t pd_http_chunk_add(struct evbuffer *out, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    size_t k = pd_http_chunk_head(out, n);
    evbuffer_add(out, data, n);
    return k + n + pd_http_chunk_tail(out);
}

size_t pd_http_chunk_last(struct evbuffer *out)
{
    evbuffer_add(out, "0\r\n\r\n", 5);
    return 5;
}

void pd_head_begin(pd_head *h, struct evbuffer *out)
{
    h->out = out;
    h->len = h->flushed = 0;
}

static void head_flush(pd_head *h)
{
    if (h->len) {
        evbuffer_add(h->out, h->buf, h->len);
        h->flushed += h->len;
        h->len = 0;
    }
}

void pd_head_add(pd_head *h, const void *p, size_t n)
{
    if (h->len + n > sizeof h->buf) {
        head_flush(h);
        if (n > sizeof h->buf) {
            evbuffer_add(h->out, p, n);
            h->flushed += n;
            return;
        }
    }
    memcpy(h->buf + h->len, p, n);
    h->len += n;
}

void pd_head_str(pd_head *h, const char *s)
{
    pd_head_add(h, s, strlen(s));
}

void pd_head_uint(pd_head *h, uint64_t v)
{
    char d[24];
    size_t i = sizeof d;
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    pd_head_add(h, d + i, sizeof d - i);
}

void pd_head_int(pd_head *h, int64_t v)
{
    if (v < 0) {
        pd_head_add(h, "-", 1);
        pd_head_uint(h, (uint64_t)0 - (uint64_t)v);
        return;
    }
    pd_head_uint(h, (uint64_t)v);
}

void pd_head_field(pd_head *h, pd_str name, pd_str value)
{
    if (h->len + name.len + value.len + 4 <= sizeof h->buf) {
        char *p = h->buf + h->len;
        memcpy(p, name.p, name.len);
        p += name.len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, value.p, value.len);
        p += value.len;
        *p++ = '\r';
        *p++ = '\n';
        h->len = (size_t)(p - h->buf);
        return;
    }
    pd_head_add(h, name.p, name.len);
    pd_head_add(h, ": ", 2);
    pd_head_add(h, value.p, value.len);
    pd_head_add(h, "\r\n", 2);
}

size_t pd_head_end(pd_head *h)
{
    head_flush(h);
    return h->flushed;
}
