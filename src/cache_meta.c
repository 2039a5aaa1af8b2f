/*
 * cache_meta: the metadata blob of a cached object (see include/proxyd/cache_meta.h).
 * Layout: a fixed header (magic, kind, times), then the head as HTTP text,
 * parsed back with the same strict parser as any response.
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

int pd_cache_meta_parse(const void *blob, size_t len, pd_cache_meta *m)
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
