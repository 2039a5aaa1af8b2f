/*
 * libFuzzer target for the cache policy (src/cache_policy.c) on parsed
 * messages: the input is a request head followed by a response head (each
 * parsed by the real parser, as the request engine gets them), then every
 * decision is asked: storable, lifetime, age, decide, the client's
 * conditionals, Vary key, Range and If-Range, the validation request, 304
 * selection and merge, invalidations, and the metadata blob (cache_meta),
 * whose decoding must give back the stored fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/cache_meta.h"
#include "proxyd/cache_policy.h"
#include "proxyd/http_parse.h"

static int parse(int is_request, int method, const uint8_t *data, size_t size, pd_http_msg *m,
                 size_t *used)
{
    pd_http_parser *p = pd_http_parser_new(is_request, 65536);
    if (!p)
        return -1;
    pd_http_parser_next(p, m, method);
    int rc = pd_http_parse_head(p, (const char *)data, size, used) == PD_PARSE_DONE ? 0 : -1;
    pd_http_parser_free(p);
    return rc;
}

/*
 * The stored copy, through the metadata blob the store keeps: what comes
 * back must be the response less hop-by-hop and framing fields, in order.
 */
static int store_and_load(const pd_http_msg *resp, pd_cache_meta *out)
{
    size_t n = 0;
    void *blob = pd_cache_meta_build(PD_META_RESPONSE, resp, 1, 2, &n);
    if (!blob)
        return -1;
    if (pd_cache_meta_parse(blob, n, out) != 0)
        abort(); /* our own blob */
    /* the reader of proxyd's own heads and the strict parser agree on it */
    pd_cache_meta strict;
    if (pd_cache_meta_parse_how(blob, n, &strict, 1) == 0) {
        if (strict.head.status != out->head.status ||
            strict.head.n_headers != out->head.n_headers)
            abort();
        pd_cache_meta_free(&strict);
    }
    free(blob);
    if (out->request_time != 1 || out->response_time != 2 || out->head.status != resp->status)
        abort();
    size_t j = 0;
    for (size_t i = 0; i < resp->n_headers; i++) {
        const pd_header *h = &resp->headers[i];
        if (!pd_cache_meta_keeps(resp, h->name))
            continue;
        if (j >= out->head.n_headers)
            abort();
        const pd_header *g = &out->head.headers[j++];
        if (g->name.len != h->name.len || memcmp(g->name.p, h->name.p, h->name.len) != 0 ||
            g->value.len != h->value.len || memcmp(g->value.p, h->value.p, h->value.len) != 0)
            abort();
    }
    if (j != out->head.n_headers)
        abort();
    return 0;
}

/* A damaged blob (the store is shared memory): the fuzz input as the head
 * text after a valid blob header. Read both ways; nothing may be read past. */
static void damaged_blob(const uint8_t *data, size_t size)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n\r\n";
    pd_http_msg m;
    pd_http_msg_init(&m);
    m.is_request = 0;
    m.status = 200;
    m.reason = PD_STR("OK");
    size_t n = 0;
    char *blob = pd_cache_meta_build(PD_META_RESPONSE, &m, 1, 2, &n);
    if (!blob || n < sizeof head - 1)
        abort();
    size_t prefix = n - (sizeof head - 1);
    char *d = malloc(prefix + size + 1);
    if (!d)
        abort();
    memcpy(d, blob, prefix);
    memcpy(d + prefix, data, size);
    free(blob);
    pd_cache_meta out;
    for (int strict = 0; strict < 2; strict++)
        if (pd_cache_meta_parse_how(d, prefix + size, &out, strict) == 0) {
            for (size_t i = 0; i < out.head.n_headers; i++)
                if (!out.head.headers[i].name.len)
                    abort();
            pd_cache_meta_free(&out);
        }
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    damaged_blob(data, size);
    if (size < 8)
        return 0;
    time_t request_time = (time_t)1700000000 + data[0] * 1000;
    time_t response_time = request_time + data[1];
    time_t now = response_time + (time_t)data[2] * data[3] * 60;
    uint64_t length = (uint64_t)data[4] << 16 | (uint64_t)data[5] << 8 | data[6];
    int use_rule = data[7] & 1;
    data += 8;
    size -= 8;

    pd_http_msg req, resp, cond;
    pd_cache_meta sm;
    int have_sm = 0;
    pd_http_msg_init(&req);
    pd_http_msg_init(&resp);
    pd_http_msg_init(&cond);
    size_t used = 0;
    if (parse(1, 0, data, size, &req, &used) != 0)
        goto out;
    if (parse(0, req.method_id, data + used, size - used, &resp, &used) != 0)
        goto out;

    static pd_refresh_rule rule;
    static int rule_ready;
    if (!rule_ready) {
        rule = pd_refresh_default;
        rule.min = 60;
        rule.max = 86400;
        rule.override_expire = rule.override_lastmod = 1;
        rule.ignore_no_store = rule.ignore_private = 1;
        rule_ready = 1;
    }
    const pd_refresh_rule *r = use_rule ? &rule : NULL;
    const char *why = NULL;
    int storable = pd_cache_policy_storable(&req, &resp, r, &why);
    if (!storable && !why)
        abort();
    enum pd_cp_source src;
    int64_t life = pd_cache_policy_lifetime(&resp, r, response_time, &src);
    int64_t age = pd_cache_policy_age(&resp, request_time, response_time, now);
    if (life < 0 || life > PD_CP_DELTA_MAX || age < 0 || age > PD_CP_DELTA_MAX)
        abort();
    (void)pd_cache_policy_decide(&req, NULL, 0, 0);
    (void)pd_cache_policy_decide(&req, &resp, life, age);
    int cc = pd_cache_policy_client_cond(&req, &resp, 1700000000);
    if (cc != 200 && cc != 304)
        abort();

    char key[4096];
    ssize_t kn = pd_cache_policy_vary_key(&resp, &req, key, sizeof(key));
    if (kn > (ssize_t)sizeof(key) || (kn < 0 && kn != PD_CP_VARY_STAR && kn != PD_CP_VARY_NOSPACE))
        abort();

    pd_range ranges[16];
    size_t nr = 0;
    enum pd_range_result rr = pd_cache_policy_range(&req, length, ranges, 16, &nr);
    if (rr == PD_RANGE_OK) {
        if (nr < 1 || nr > 16)
            abort();
        for (size_t i = 0; i < nr; i++)
            if (ranges[i].first > ranges[i].last || ranges[i].last >= length)
                abort();
    }
    (void)pd_cache_policy_if_range(&req, &resp);

    if (store_and_load(&resp, &sm) != 0)
        goto out;
    have_sm = 1;
    pd_http_msg *stored = &sm.head;
    (void)pd_cache_policy_304_selects(stored, &resp);
    if (pd_cache_policy_merge_304(stored, &resp) < -1)
        abort();
    /* the validation request is built on a copy of the client's request */
    size_t u2;
    if (parse(1, 0, data, size, &cond, &u2) == 0)
        (void)pd_cache_policy_conditional(&cond, stored);

    pd_cp_invalidation inv;
    char target[8192];
    size_t tl = req.target.len < sizeof(target) - 1 ? req.target.len : sizeof(target) - 1;
    memcpy(target, req.target.p, tl);
    target[tl] = '\0';
    int ni = pd_cache_policy_invalidations(&req, &resp, target, &inv);
    if (ni < 0 || ni > 3 || ni != inv.n)
        abort();
    for (size_t i = 0; i < resp.n_headers; i++) {
        time_t t;
        (void)pd_cache_policy_parse_date(resp.headers[i].value, &t);
    }
    pd_str arg;
    (void)pd_cache_policy_cc(&req, "max-age", &arg);
out:
    pd_http_msg_free(&req);
    pd_http_msg_free(&resp);
    if (have_sm)
        pd_cache_meta_free(&sm);
    pd_http_msg_free(&cond);
    return 0;
}
