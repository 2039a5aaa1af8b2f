/*
 * client_cache: the client's transaction and the shared cache. Lookup
 * (variants, freshness, collapsed forwarding across workers), serving a
 * stored or in-progress object without copying (evbuffer_add_reference on the
 * store's pages), Range and HEAD, revalidation with a 304 merge, and storing
 * what the origin sends. client.c calls in here; see client_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_int.h"
#include "proxyd/acl.h"
#include "proxyd/errors.h"
#include "proxyd/stats.h"

/* ---- cache: lookup and serving ------------------------------------------ */

static void hitref_release(struct hitref *h)
{
    pd_cache_store_release(h->store, h->ref);
    free(h);
}

/* evbuffer_add_reference cleanup: an extent of a stored object left the buffer */
static void hit_cleanup(const void *data, size_t len, void *arg)
{
    struct hitref *h = arg;
    if (--h->outstanding == 0 && h->owner_done)
        hitref_release(h);
}

/* Let go of everything the transaction holds in the cache. */
void client_cache_drop(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    if (c->cw) {
        pd_cache_store_abort(st, c->cw);
        c->cw = NULL;
    }
    if (c->hr) {
        c->hr->owner_done = 1;
        if (c->hr->outstanding == 0)
            hitref_release(c->hr);
        c->hr = NULL;
        c->cref = NULL;
    } else if (c->cref) {
        pd_cache_store_release(st, c->cref);
        c->cref = NULL;
    }
    if (c->have_cm) {
        pd_cache_meta_free(&c->cm);
        c->have_cm = 0;
    }
    if (c->cwaiting) {
        c->cwaiting = 0;
        c->w->n_cache_waiters--;
    }
    if (c->have_stale) {
        pd_cache_store_release(st, c->stale_ref);
        pd_cache_meta_free(&c->stale_cm);
        c->stale_ref = NULL;
        c->have_stale = 0;
    }
    free(c->ckey);
    c->ckey = NULL;
    c->collapsed = c->revalidating = c->cf_hold = c->stale_ok = 0;
}

static void set_ckey(struct pd_client *c, const char *k, size_t len)
{
    free(c->ckey);
    c->ckey = malloc(len + 1);
    if (c->ckey) {
        memcpy(c->ckey, k, len);
        c->ckey[len] = '\0';
    }
    c->ckey_len = c->ckey ? len : 0;
}

/*
 * Switch c->ckey from the URL's key to a variant's: URL \n marker generation
 * \n Vary values. The generation ties variants to one marker: once the URL
 * is invalidated (or its marker replaced), the old variants are unreachable
 * and age out of the LRU. Returns 0, or -1 (out of memory, ckey dropped).
 */
static int to_variant_key(struct pd_client *c, uint64_t gen, const char *vk, size_t vl)
{
    char g[17];
    snprintf(g, sizeof g, "%016llx", (unsigned long long)gen);
    size_t plen = c->ckey_len, n = plen + 1 + 16 + 1 + vl;
    char *k = malloc(n);
    if (!k)
        return -1;
    memcpy(k, c->ckey, plen);
    k[plen] = '\n';
    memcpy(k + plen + 1, g, 16);
    k[plen + 17] = '\n';
    memcpy(k + plen + 18, vk, vl);
    set_ckey(c, k, n);
    free(k);
    return c->ckey ? 0 : -1;
}

/* GET or HEAD, allowed by the cache rules, a URL that fits a key. */
int client_cache_usable(struct pd_client *c)
{
    pd_engine *w = c->w;
    int mid = c->req.method_id;
    if (!w->store || (mid != PD_M_GET && mid != PD_M_HEAD))
        return 0;
    if (w->acl) {
        pd_acl_req ar;
        client_acl_req(c, &ar, NULL);
        if (pd_acl_check_cache(w->acl, &ar) != PD_ACL_ALLOW)
            return 0;
    }
    char url[PD_CP_URL_MAX];
    size_t n = pd_url_format(&c->url, url, sizeof url);
    if (n >= sizeof url)
        return 0;
    /* store_id_program's answer is the key; refresh_pattern still matches the URL */
    if (c->store_id)
        set_ckey(c, c->store_id, strlen(c->store_id));
    else
        set_ckey(c, url, n);
    if (!c->ckey)
        return 0;
    c->rule = pd_cache_policy_refresh_match(w->refresh, url);
    c->use_cache = 1;
    return 1;
}

int client_cache_load_meta(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    ssize_t n = pd_cache_store_meta(st, c->cref, NULL, 0);
    if (n < 0)
        return -1;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return -1;
    ssize_t m = pd_cache_store_meta(st, c->cref, buf, (size_t)n);
    int rc = m == n ? pd_cache_meta_parse(buf, (size_t)n, &c->cm) : -1;
    free(buf);
    if (rc == 0)
        c->have_cm = 1;
    return rc;
}

static void serve_cached(struct pd_client *c, enum pd_result result);

/* Wait for a wakeup from the store (another worker is writing the object). */
static void cache_wait(struct pd_client *c)
{
    if (!c->cwaiting) {
        c->cwaiting = 1;
        c->w->n_cache_waiters++;
    }
}

/*
 * Collapsed forwarding: another fetch writes the object; serve it as it
 * arrives. If that fetch fails before its head is known, fetch ourselves.
 */
static void start_collapsed(struct pd_client *c, pd_cache_ref *pending)
{
    if (c->stale_ok && c->cref && c->have_cm && !c->have_stale) {
        /* collapsing onto a refresh of our stale copy: keep it to fall back on */
        c->stale_ref = c->cref;
        c->stale_cm = c->cm;
        c->have_stale = 1;
        c->cref = NULL;
        c->have_cm = 0;
    }
    if (c->cref)
        pd_cache_store_release(c->w->store, c->cref);
    if (c->have_cm) {
        pd_cache_meta_free(&c->cm);
        c->have_cm = 0;
    }
    c->cref = pending;
    c->collapsed = 1;
    c->revalidating = 0;
    c->state = C_CACHE;
    pd_cache_store_iter_init(c->w->store, c->cref, &c->it, 0, UINT64_MAX);
    client_on_cache(c); /* what is there already */
}

/*
 * The shared fetch this client collapsed onto failed (or brought no usable
 * response) before anything was sent: fetch it ourselves; with a stale copy
 * kept aside, as a revalidation of it that may still answer. May free c.
 */
static void collapsed_failed(struct pd_client *c)
{
    if (!c->have_stale) {
        client_cache_drop(c);
        c->use_cache = 0;
        client_go_upstream(c);
        return;
    }
    pd_cache_store_release(c->w->store, c->cref);
    if (c->have_cm)
        pd_cache_meta_free(&c->cm);
    c->cref = c->stale_ref;
    c->cm = c->stale_cm;
    c->have_cm = 1;
    c->stale_ref = NULL;
    c->have_stale = 0;
    if (c->cwaiting) {
        c->cwaiting = 0;
        c->w->n_cache_waiters--;
    }
    c->collapsed = c->cf_hold = 0;
    c->revalidating = c->stale_ok = 1;
    client_go_upstream(c);
}

/*
 * stale-while-revalidate (RFC 5861 3): answer with the stale object now when
 * it allows that and a revalidation of it is under way: the one this request
 * starts (it won the writer on the key), or one another request started, in
 * any worker (begin_write says BUSY). Returns 1 when c is being answered (c may
 * be freed), 0 to revalidate in the foreground (not allowed, or no background
 * transaction could be started).
 */
static int serve_while_revalidating(struct pd_client *c, int64_t lifetime, int64_t age)
{
    pd_engine *w = c->w;
    /* acl_need_dst: http_access decides after DNS, on the foreground way only */
    if (c->req.body != PD_BODY_NONE || c->acl_need_dst ||
        !pd_cache_policy_stale_while_revalidate(&c->req, &c->cm.head, lifetime, age))
        return 0;
    pd_cache_writer *cw = NULL;
    int r = pd_cache_store_begin_write(w->store, c->ckey, c->ckey_len, &cw, NULL);
    if (r == PD_CACHE_OK) {
        if (w->n_bg >= CLIENT_BG_MAX) {
            pd_cache_store_abort(w->store, cw); /* too many already: this one waits */
            return 0;
        }
        if (client_bg_revalidate(c, cw) < 0)
            return 0;
    } else if (r != PD_CACHE_BUSY) {
        return 0; /* no handle or no room: the foreground path copes with that */
    }
    serve_cached(c, PD_R_TCP_STALE_HIT);
    return 1;
}

/* Returns 1 when the cache took the request over (c may be freed), 0 to fetch it. */
int client_cache_lookup(struct pd_client *c)
{
    pd_engine *w = c->w;
    pd_cache_store *st = w->store;
    int only_if_cached = pd_cache_policy_cc(&c->req, "only-if-cached", NULL);
    for (int depth = 0; depth < 2; depth++) {
        pd_cache_ref *ref = NULL;
        int r = pd_cache_store_lookup(st, c->ckey, c->ckey_len, &ref);
        if (r == PD_CACHE_PENDING) {
            if (!w->conf->collapsed_forwarding) {
                pd_cache_store_release(st, ref);
                break;
            }
            start_collapsed(c, ref);
            return 1;
        }
        if (r != PD_CACHE_HIT)
            break;
        c->cref = ref;
        if (client_cache_load_meta(c) < 0) {
            pd_cache_store_release(st, ref);
            c->cref = NULL;
            break;
        }
        if (c->cm.kind == PD_META_VARY) {
            /* a Vary marker: the variant lives at the secondary key */
            char vk[4096];
            ssize_t vl = pd_cache_policy_vary_key(&c->cm.head, &c->req, vk, sizeof vk);
            uint64_t gen = c->cm.vary_gen;
            pd_cache_meta_free(&c->cm);
            c->have_cm = 0;
            pd_cache_store_release(st, c->cref);
            c->cref = NULL;
            if (vl <= 0 || depth > 0)
                return 0; /* Vary: * or unusable: fetch, do not store */
            if (to_variant_key(c, gen, vk, (size_t)vl) < 0)
                return 0;
            continue;
        }
        time_t now = time(NULL);
        int64_t lifetime = pd_cache_policy_lifetime(&c->cm.head, c->rule, c->cm.response_time, NULL);
        int64_t age = pd_cache_policy_age(&c->cm.head, c->cm.request_time, c->cm.response_time, now);
        switch (pd_cache_policy_decide(&c->req, &c->cm.head, lifetime, age)) {
        case PD_CP_FRESH:
            serve_cached(c, PD_R_TCP_MEM_HIT);
            return 1;
        case PD_CP_ONLY_IF_CACHED_FAIL:
            /* stale, but inside its stale-while-revalidate window: RFC 5861 lets
             * the cache answer with it (the client's request still never
             * reaches the origin; the cache refreshes the object on its own) */
            if (serve_while_revalidating(c, lifetime, age))
                return 1;
            c->result = PD_R_TCP_MISS;
            client_fail_request(c, 504, "ERR_ONLY_IF_CACHED_MISS", "the object is not fresh in the cache", 1);
            return 1;
        case PD_CP_STALE_REVALIDATE: {
            if (serve_while_revalidating(c, lifetime, age))
                return 1;
            int64_t ms = c->rule && c->rule->max_stale >= 0 ? c->rule->max_stale : w->conf->max_stale;
            c->stale_ok = c->req.body == PD_BODY_NONE &&
                          pd_cache_policy_stale_on_error(&c->req, &c->cm.head, lifetime, age, ms);
            /* kept while the origin is asked: to merge a 304 into, or to
             * answer with if the origin fails and staleness is allowed (no
             * validators: the request goes unconditional) */
            if (pd_http_msg_find(&c->cm.head, "ETag") || pd_http_msg_find(&c->cm.head, "Last-Modified") ||
                c->stale_ok) {
                c->revalidating = 1;
                break;
            }
            /* nothing to validate with: fetch it again */
        }
            __attribute__((fallthrough));
        case PD_CP_MISS:
            pd_cache_meta_free(&c->cm);
            c->have_cm = 0;
            pd_cache_store_release(st, c->cref);
            c->cref = NULL;
            break;
        }
        break;
    }
    if (only_if_cached && !c->revalidating) {
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, 504, "ERR_ONLY_IF_CACHED_MISS", "the object is not in the cache", 1);
        return 1;
    }
    if (only_if_cached) {
        /* a stale object under only-if-cached: never contact the origin */
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, 504, "ERR_ONLY_IF_CACHED_MISS", "the object is stale in the cache", 1);
        return 1;
    }
    if (c->req.method_id != PD_M_GET || pd_cache_policy_cc(&c->req, "no-store", NULL))
        return 0;
    pd_cache_ref *pending = NULL;
    int r = pd_cache_store_begin_write(st, c->ckey, c->ckey_len, &c->cw,
                                       w->conf->collapsed_forwarding ? &pending : NULL);
    if (r == PD_CACHE_BUSY && pending) {
        start_collapsed(c, pending);
        return 1;
    }
    if (r != PD_CACHE_OK)
        c->cw = NULL;
    return 0;
}

/*
 * cf_hold: skip c->it ahead over what the writer published until the object
 * is complete. Returns 1 when it is (cf_hold cleared, nothing sent yet), 0 when
 * waiting for a wakeup, -1 when the writer aborted and c went upstream itself
 * (c may be freed).
 */
static int hold_until_complete(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    for (;;) {
        const void *p;
        size_t len;
        int r = pd_cache_store_iter_next(st, c->cref, &c->it, &p, &len);
        if (r == PD_CACHE_ITER_DATA)
            continue;
        if (r == PD_CACHE_ITER_END) {
            c->cf_hold = 0;
            return 1;
        }
        if (r == PD_CACHE_ITER_AGAIN) {
            if (pd_cache_store_wait(st, c->cref, &c->it) == 1)
                continue;
            cache_wait(c);
            return 0;
        }
        collapsed_failed(c);
        return -1;
    }
}

/* The store signalled progress on the object this client waits for. May free c. */
void client_on_cache(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    if (c->have_cm && !c->cf_hold) {
        client_pump_cached(c);
        return;
    }
    if (c->cf_hold) {
        if (hold_until_complete(c) == 1)
            serve_cached(c, PD_R_TCP_CF_MISS);
        return;
    }
    for (;;) {
        if (client_cache_load_meta(c) == 0)
            break;
        if (errno == EAGAIN) {
            if (pd_cache_store_wait(st, c->cref, &c->it) == 1)
                continue;
            cache_wait(c);
            return;
        }
        /* the shared fetch failed (or the object is no response): fetch it ourselves */
        collapsed_failed(c);
        return;
    }
    if (c->cm.kind != PD_META_RESPONSE) {
        collapsed_failed(c);
        return;
    }
    /*
     * The origin did not announce the length: the writer may still give up
     * storing it (it passes maximum_object_size). Had we started answering,
     * our client would be cut short, so wait until the object is complete
     * and fetch it ourselves if it is aborted. Known lengths above the limit
     * are never published (client_store_start), so those stream as they arrive.
     */
    if (c->cm.body_len < 0) {
        int state = 0;
        pd_cache_store_body_len(st, c->cref, &state);
        if (state != 1) {
            c->cf_hold = 1;
            if (hold_until_complete(c) != 1)
                return;
        }
    }
    serve_cached(c, PD_R_TCP_CF_MISS);
}

void pd_client_cache_wakeup(pd_engine *w)
{
    struct pd_client *c, *next;
    if (!w->n_cache_waiters)
        return;
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (!c->cwaiting)
            continue;
        c->cwaiting = 0;
        w->n_cache_waiters--;
        client_post(c, CEV_CACHE);
    }
}

/*
 * The one response-head writer's frame, for forwarded responses and answers
 * from the cache: begin writes the status line into h (on the client's
 * output); end adds the Connection field the keep-alive decision needs and
 * the blank line, adds the head to the output in one piece and accounts its
 * bytes and the time to first byte.
 */
void client_begin_response_head(struct pd_client *c, pd_head *h, int status, pd_str reason)
{
    pd_head_begin(h, cout(c));
    pd_head_add(h, "HTTP/1.1 ", 9);
    pd_head_uint(h, (uint64_t)status);
    pd_head_add(h, " ", 1);
    pd_head_add(h, reason.p, reason.len);
    pd_head_add(h, "\r\n", 2);
}

void client_end_response_head(struct pd_client *c, pd_head *h, int status)
{
    if (!c->keep_alive)
        pd_head_add(h, "Connection: close\r\n", 19);
    else if (c->req.version_minor < 1)
        pd_head_add(h, "Connection: keep-alive\r\n", 24);
    pd_head_add(h, "\r\n", 2);
    c->out_bytes += pd_head_end(h);
    client_head_queued(c);
    c->status = status;
}

/* Write the stored head with the status we answer with. */
static void write_cached_head(struct pd_client *c, int status, uint64_t content_length,
                              int has_body, const char *content_range, const char *ctype)
{
    pd_engine *w = c->w;
    const pd_http_msg *hm = &c->cm.head;
    int client11 = c->req.version_minor >= 1;
    pd_head hb, *h = &hb;
    if (status == hm->status) {
        client_begin_response_head(c, h, status, hm->reason);
    } else {
        client_begin_response_head(c, h, status, pd_str_z(pd_status_reason(status)));
    }
    /* the store keeps the origin's head: reply_header_access applies per hit */
    int rules = pd_hdr_active(w->hdr, PD_HDR_REPLY);
    pd_acl_req ar;
    if (rules)
        client_acl_req(c, &ar, hm);
    for (size_t i = 0; i < hm->n_headers; i++) {
        const pd_header *hd = &hm->headers[i];
        if (!pd_cache_meta_keeps(hm, hd->name) || pd_str_eq_ci(hd->name, "Age"))
            continue; /* the stored Age is the origin's; ours is computed below */
        if (ctype && pd_str_eq_ci(hd->name, "Content-Type"))
            continue;
        /* a 304 carries the validators and cache fields, not the representation's */
        if (status == 304 && (pd_str_eq_ci(hd->name, "Content-Type") ||
                              pd_str_eq_ci(hd->name, "Content-Encoding") ||
                              pd_str_eq_ci(hd->name, "Content-Range")))
            continue;
        pd_str rv;
        switch (rules ? pd_hdr_field(w->hdr, PD_HDR_REPLY, hd->name, &ar, &rv) : PD_HDR_KEEP) {
        case PD_HDR_KEEP:
            pd_head_field(h, hd->name, hd->value);
            break;
        case PD_HDR_REPLACE:
            pd_head_field(h, hd->name, rv);
            break;
        case PD_HDR_DROP:
            break;
        }
    }
    if (rules) {
        char lip[INET6_ADDRSTRLEN];
        pd_hdr_vars hv;
        client_hdr_vars(c, PD_HDR_REPLY, &hv, lip, sizeof lip);
        pd_hdr_add_fields(w->hdr, PD_HDR_REPLY, &ar, &hv, h);
    }
    int64_t age = pd_cache_policy_age(hm, c->cm.request_time, c->cm.response_time, time(NULL));
    pd_head_add(h, "Age: ", 5);
    pd_head_int(h, age > 0 ? age : 0);
    pd_head_add(h, "\r\n", 2);
    if (ctype)
        pd_head_field(h, PD_STR("Content-Type"), pd_str_z(ctype));
    if (content_range)
        pd_head_field(h, PD_STR("Content-Range"), pd_str_z(content_range));
    if (w->conf->via) {
        pd_head_str(h, "Via: 1.1 ");
        pd_head_str(h, w->via);
        pd_head_add(h, "\r\n", 2);
    }
    if (w->conf->x_cache_header) {
        pd_head_str(h, "X-Cache: HIT from ");
        pd_head_str(h, w->hostname);
        pd_head_add(h, "\r\n", 2);
    }
    c->hit_chunked = 0;
    if (has_body && content_length == UINT64_MAX) {
        if (client11) {
            pd_head_add(h, "Transfer-Encoding: chunked\r\n", 28);
            c->hit_chunked = 1;
        } else {
            c->keep_alive = 0;
        }
    } else if (status != 304) {
        pd_head_str(h, "Content-Length: ");
        pd_head_uint(h, content_length);
        pd_head_add(h, "\r\n", 2);
    }
    client_end_response_head(c, h, status);
}

static void part_header(struct pd_client *c, const pd_range *r)
{
    struct evbuffer *out = cout(c);
    size_t before = evbuffer_get_length(out);
    const pd_header *ct = pd_http_msg_find(&c->cm.head, "Content-Type");
    evbuffer_add_printf(out, "\r\n--%s\r\n", "PROXYD_BYTERANGES_7d1b");
    if (ct)
        evbuffer_add_printf(out, "Content-Type: %.*s\r\n", (int)ct->value.len, ct->value.p);
    evbuffer_add_printf(out, "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                        (unsigned long long)r->first, (unsigned long long)r->last,
                        (unsigned long long)c->blen);
    c->out_bytes += evbuffer_get_length(out) - before;
}

static size_t part_header_len(struct pd_client *c, const pd_range *r)
{
    char tmp[512];
    const pd_header *ct = pd_http_msg_find(&c->cm.head, "Content-Type");
    int n = snprintf(tmp, sizeof tmp, "\r\n--%s\r\n", "PROXYD_BYTERANGES_7d1b");
    if (ct)
        n += snprintf(tmp, sizeof tmp, "Content-Type: %.*s\r\n", (int)ct->value.len, ct->value.p);
    n += snprintf(tmp, sizeof tmp, "Content-Range: bytes %llu-%llu/%llu\r\n\r\n",
                  (unsigned long long)r->first, (unsigned long long)r->last,
                  (unsigned long long)c->blen);
    return (size_t)n;
}

static void finish_cached(struct pd_client *c)
{
    if (c->hit_chunked)
        c->out_bytes += pd_http_chunk_last(cout(c));
    client_txn_done(c);
}

/* Answer from c->cref / c->cm. May free c. */
static void serve_cached(struct pd_client *c, enum pd_result result)
{
    pd_engine *w = c->w;
    pd_cache_store *st = w->store;
    c->state = C_CACHE;
    c->result = result;
    int state = 0;
    c->blen = pd_cache_store_body_len(st, c->cref, &state);
    int complete = state == 1;
    int head_only = c->req.method_id == PD_M_HEAD;
    int status = c->cm.head.status;
    /* http_reply_access and reply_body_max_size hold for hits too */
    if (client_reply_check(c, &c->cm.head, complete ? c->blen : UINT64_MAX) < 0)
        return;
    c->nranges = 0;
    c->multipart = 0;
    /* the stored pages go to the client by reference: the holder owns the ref now */
    c->hr = calloc(1, sizeof *c->hr);
    if (!c->hr) {
        client_fail_request(c, 500, "ERR_INVALID_RESP", "out of memory", 0);
        return;
    }
    c->hr->store = st;
    c->hr->ref = c->cref;

    if (status == 200 && pd_cache_policy_client_cond(&c->req, &c->cm.head, c->cm.response_time) == 304) {
        if (result == PD_R_TCP_MEM_HIT)
            c->result = pd_http_msg_find(&c->req, "If-Modified-Since") ? PD_R_TCP_IMS_HIT
                                                                       : PD_R_TCP_INM_HIT;
        write_cached_head(c, 304, 0, 0, NULL, NULL);
        finish_cached(c);
        return;
    }
    if (status == 200 && complete && pd_http_msg_find(&c->req, "Range") &&
        pd_cache_policy_if_range(&c->req, &c->cm.head)) {
        size_t n = 0;
        enum pd_range_result rr = pd_cache_policy_range(&c->req, c->blen, c->ranges, MAX_RANGES, &n);
        if (rr == PD_RANGE_UNSATISFIABLE) {
            char cr[64];
            snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)c->blen);
            write_cached_head(c, 416, 0, 0, cr, NULL);
            finish_cached(c);
            return;
        }
        if (rr == PD_RANGE_OK && n >= 1) {
            c->nranges = n;
            c->range_i = 0;
            if (n == 1) {
                char cr[96];
                snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)c->ranges[0].first,
                         (unsigned long long)c->ranges[0].last, (unsigned long long)c->blen);
                write_cached_head(c, 206, c->ranges[0].last - c->ranges[0].first + 1, !head_only, cr, NULL);
            } else {
                c->multipart = 1;
                uint64_t total = strlen("\r\n--PROXYD_BYTERANGES_7d1b--\r\n");
                for (size_t i = 0; i < n; i++)
                    total += part_header_len(c, &c->ranges[i]) + c->ranges[i].last - c->ranges[i].first + 1;
                write_cached_head(c, 206, total, !head_only, NULL,
                                  "multipart/byteranges; boundary=PROXYD_BYTERANGES_7d1b");
            }
            if (head_only) {
                finish_cached(c);
                return;
            }
            if (c->multipart)
                part_header(c, &c->ranges[0]);
            pd_cache_store_iter_init(st, c->cref, &c->it, c->ranges[0].first, c->ranges[0].last + 1);
            client_pump_cached(c);
            return;
        }
    }
    int has_body = !head_only && status != 204 && status != 304;
    /* an object still being written is framed by the length its origin announced */
    uint64_t clen = complete ? c->blen : c->cm.body_len >= 0 ? (uint64_t)c->cm.body_len : UINT64_MAX;
    write_cached_head(c, status, clen, has_body, NULL, NULL);
    if (!has_body) {
        finish_cached(c);
        return;
    }
    pd_cache_store_iter_init(st, c->cref, &c->it, 0, UINT64_MAX);
    client_pump_cached(c);
}

/* hit_cleanup for the pages of an extent sent with sendfile */
static void hit_file_cleanup(const struct evbuffer_file_segment *seg, int flags, void *arg)
{
    (void)seg;
    (void)flags;
    hit_cleanup(NULL, 0, arg);
}

static int add_stored(struct pd_client *c, struct evbuffer *out, const uint8_t *p, size_t len)
{
    if (!len)
        return 0;
    c->hr->outstanding++;
    if (evbuffer_add_reference(out, p, len, hit_cleanup, c->hr) < 0) {
        c->hr->outstanding--;
        return -1;
    }
    return 0;
}

/*
 * Queue len stored bytes from p (memory-adjacent extents merged) for the
 * client: by reference into its buffer, and the whole memory pages in the
 * middle of a long run lent to the kernel (sendfile from the store's memfd:
 * no copy into the socket; the store punches lent pages out before reuse).
 */
static int emit_stored(struct pd_client *c, struct evbuffer *out, const uint8_t *p, size_t len)
{
    pd_cache_store *st = c->w->store;
    if (!len)
        return 0;
    if (c->hit_chunked)
        c->out_bytes += pd_http_chunk_head(out, len);
    size_t a = len, b = len;
    int fd = -1;
    int64_t off = 0;
    if (len >= LEND_MIN && c->bev && c->w->conf->hit_sendfile) {
        uintptr_t pg = pd_cache_store_page_size(st), s0 = (uintptr_t)p;
        a = (size_t)((s0 + pg - 1) / pg * pg - s0);
        b = (size_t)((s0 + len) / pg * pg - s0);
        if (b > a && b - a >= LEND_MIN)
            fd = pd_cache_store_file(st, p + a, &off);
        if (fd < 0)
            a = b = len;
    }
    if (add_stored(c, out, p, a) < 0)
        return -1;
    if (fd >= 0) {
        pd_cache_store_lend(st, c->cref);
        c->hr->outstanding++;
        if (pd_conn_add_file(c->bev, fd, off, b - a, hit_file_cleanup, c->hr) < 0)
            return -1;
        pd_stats_add(c->w->stats, PD_STAT_HIT_SENDFILE_BYTES, (int64_t)(b - a));
        if (add_stored(c, out, p + b, len - b) < 0)
            return -1;
    }
    c->out_bytes += len;
    if (c->hit_chunked)
        c->out_bytes += pd_http_chunk_tail(out);
    return 0;
}

/* Hand stored extents to the client while its buffer has room. May free c. */
void client_pump_cached(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    struct evbuffer *out = cout(c);
    const uint8_t *run = NULL; /* extents not queued yet, adjacent in memory */
    size_t run_len = 0;
    size_t cap = c->w->conf->hit_sendfile ? HIGH_WM : HIT_QUEUE_MAX;
    for (;;) {
        const void *p = NULL;
        size_t len = 0;
        int full = evbuffer_get_length(out) + run_len >= cap;
        int r = full ? PD_CACHE_ITER_AGAIN : pd_cache_store_iter_next(st, c->cref, &c->it, &p, &len);
        if (r == PD_CACHE_ITER_DATA && run_len && (const uint8_t *)p == run + run_len) {
            run_len += len;
            continue;
        }
        /* anything but the next adjacent extent: the run so far goes out */
        if (emit_stored(c, out, run, run_len) < 0) {
            client_close_after_flush(c);
            return;
        }
        run = p;
        run_len = len;
        if (r == PD_CACHE_ITER_DATA)
            continue;
        if (full)
            return; /* client_write_cb calls again when the buffer drained */
        if (r == PD_CACHE_ITER_END) {
            if (c->multipart) {
                if (++c->range_i < c->nranges) {
                    part_header(c, &c->ranges[c->range_i]);
                    pd_cache_store_iter_init(st, c->cref, &c->it, c->ranges[c->range_i].first,
                                             c->ranges[c->range_i].last + 1);
                    continue;
                }
                static const char end[] = "\r\n--PROXYD_BYTERANGES_7d1b--\r\n";
                evbuffer_add(out, end, sizeof end - 1);
                c->out_bytes += sizeof end - 1;
            }
            finish_cached(c);
            return;
        }
        if (r == PD_CACHE_ITER_AGAIN) {
            if (pd_cache_store_wait(st, c->cref, &c->it) == 1)
                continue;
            cache_wait(c);
            return;
        }
        /* the shared fetch failed mid-body: the client must see a truncated response */
        c->result = PD_R_TCP_CF_MISS_ABORTED;
        c->hit_chunked = 0;
        client_close_after_flush(c);
        return;
    }
}

/* ---- cache: storing what the origin sends ------------------------------ */

static void store_abort(struct pd_client *c)
{
    if (c->cw) {
        pd_cache_store_abort(c->w->store, c->cw);
        c->cw = NULL;
    }
}

void client_store_bytes(struct pd_client *c, const void *data, size_t len)
{
    if (c->cw && len && pd_cache_store_append(c->w->store, c->cw, data, len) < 0)
        store_abort(c); /* too large or no room: the client still gets everything */
}

/* Copy the first n bytes of in into the object being written. */
void client_store_evbuffer(struct pd_client *c, struct evbuffer *in, size_t n)
{
    if (!c->cw || !n)
        return;
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, 0, EVBUFFER_PTR_SET);
    while (n && c->cw) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, (ev_ssize_t)n, &pos, &v, 1) < 1)
            break;
        size_t take = v.iov_len < n ? v.iov_len : n;
        client_store_bytes(c, v.iov_base, take);
        n -= take;
        if (evbuffer_ptr_set(in, &pos, take, EVBUFFER_PTR_ADD) < 0)
            break;
    }
}

/* The final response head arrived for a request we may store. */
void client_store_start(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    const char *why;
    if (!c->cw)
        return;
    if (!pd_cache_policy_storable(&c->req, &c->resp, c->rule, &why)) {
        store_abort(c);
        return;
    }
    if (c->via_peer && pd_peer_proxy_only(c->w->peers, c->via_peer - 1)) {
        store_abort(c); /* cache_peer ... proxy-only: what comes from it is not kept */
        return;
    }
    /* announced above the limit: give up before readers collapsed on us see a head,
     * so that they fetch it themselves instead of being cut at the limit */
    if (c->resp.body == PD_BODY_LENGTH && c->resp.content_length > pd_cache_store_max_object(st)) {
        store_abort(c);
        return;
    }
    char vk[4096];
    ssize_t vl = pd_cache_policy_vary_key(&c->resp, &c->req, vk, sizeof vk);
    int on_variant = memchr(c->ckey, '\n', c->ckey_len) != NULL;
    if (vl < 0 || (vl == 0 && on_variant)) {
        store_abort(c);
        return;
    }
    if (vl > 0 && !on_variant) {
        /* publish a Vary marker at the URL's key, write the variant beside it */
        size_t ml;
        void *marker = pd_cache_meta_build(PD_META_VARY, &c->resp, c->t0.tv_sec, time(NULL), &ml);
        if (!marker || pd_cache_store_set_meta(st, c->cw, marker, ml) < 0) {
            free(marker);
            store_abort(c);
            return;
        }
        pd_cache_meta mm;
        int parsed = pd_cache_meta_parse(marker, ml, &mm);
        free(marker);
        if (parsed < 0) {
            store_abort(c);
            return;
        }
        uint64_t gen = mm.vary_gen;
        pd_cache_meta_free(&mm);
        pd_cache_store_commit(st, c->cw);
        c->cw = NULL;
        if (to_variant_key(c, gen, vk, (size_t)vl) < 0 ||
            pd_cache_store_begin_write(st, c->ckey, c->ckey_len, &c->cw, NULL) != PD_CACHE_OK) {
            c->cw = NULL;
            return;
        }
    } else if (vl > 0) {
        /* the variant key: URL \n generation \n values (to_variant_key) */
        const char *nl = memchr(c->ckey, '\n', c->ckey_len);
        const char *vals = nl + 1 + 16 + 1;
        size_t have = c->ckey_len - (size_t)(vals - c->ckey);
        if (have != (size_t)vl || memcmp(vals, vk, have) != 0) {
            /*
             * The response varies on other fields than the marker says (the
             * origin changed its Vary): replace the marker, or this URL would
             * never be stored again while the old marker lives.
             */
            store_abort(c);
            size_t ulen = (size_t)(nl - c->ckey);
            char *url = malloc(ulen);
            if (!url)
                return;
            memcpy(url, c->ckey, ulen);
            set_ckey(c, url, ulen);
            free(url);
            if (!c->ckey || pd_cache_store_begin_write(st, c->ckey, c->ckey_len, &c->cw, NULL) != PD_CACHE_OK) {
                c->cw = NULL;
                return;
            }
            client_store_start(c); /* at the URL's key now: publishes a new marker, once */
            return;
        }
    }
    size_t ml;
    void *meta = pd_cache_meta_build(PD_META_RESPONSE, &c->resp, c->t0.tv_sec, time(NULL), &ml);
    if (!meta || pd_cache_store_set_meta(st, c->cw, meta, ml) < 0)
        store_abort(c);
    free(meta);
}

/*
 * A 304 answered our revalidation of cref: merge its fields into the stored
 * head, store the refreshed object, and serve it. Returns 1 when handled.
 */
int client_revalidated(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    if (c->resp.status != 304 || !pd_cache_policy_304_selects(&c->cm.head, &c->resp))
        return 0;
    /* the refreshed response's age starts from the 304's Age (if any), not the old one */
    pd_http_msg_remove(&c->cm.head, "Age");
    if (pd_cache_policy_merge_304(&c->cm.head, &c->resp) < 0)
        return 0;
    c->cm.request_time = c->t0.tv_sec;
    c->cm.response_time = time(NULL);
    if (c->cw) {
        size_t ml;
        void *meta = pd_cache_meta_build(PD_META_RESPONSE, &c->cm.head, c->cm.request_time,
                                         c->cm.response_time, &ml);
        if (!meta || pd_cache_store_set_meta(st, c->cw, meta, ml) < 0) {
            store_abort(c);
        } else {
            pd_cache_iter it;
            pd_cache_store_iter_init(st, c->cref, &it, 0, UINT64_MAX);
            const void *p;
            size_t len;
            while (c->cw && pd_cache_store_iter_next(st, c->cref, &it, &p, &len) == PD_CACHE_ITER_DATA)
                client_store_bytes(c, p, len);
            if (c->cw && pd_cache_store_commit(st, c->cw) == 0 && c->bg)
                c->bg_outcome = BG_REFRESHED;
            c->cw = NULL;
        }
        free(meta);
    }
    client_up_release(c, c->resp.keep_alive && c->rb_done);
    c->revalidating = 0;
    if (c->bg) {
        c->status = 304; /* the refreshed object is the answer: nobody to serve it to */
        client_txn_done(c);
        return 1;
    }
    serve_cached(c, PD_R_TCP_REFRESH_UNMODIFIED);
    return 1;
}

int client_cache_serve_stale(struct pd_client *c)
{
    if (!c->stale_ok || !c->revalidating || !c->cref || !c->have_cm || c->head_sent || c->closing)
        return 0;
    c->stale_ok = 0;
    c->revalidating = 0;
    if (c->dnsq) {
        pd_dns_cancel(c->dnsq);
        c->dnsq = NULL;
    }
    client_up_release(c, 0);
    if (c->cw)
        store_abort(c);
    serve_cached(c, PD_R_TCP_REFRESH_FAIL_OLD);
    return 1;
}

void client_purge(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    int n = 0;
    char url[PD_CP_URL_MAX];
    size_t len = pd_url_format(&c->url, url, sizeof url);
    if (st && len < sizeof url)
        n = pd_cache_store_invalidate(st, url, len); /* the key client_cache_usable sets */
    int status = n > 0 ? 200 : 404;
    c->result = PD_R_NONE_NONE;
    if (!c->rb_done || c->w->draining)
        c->keep_alive = 0;
    char date[PD_HTTP_DATE_SIZE];
    pd_http_date(time(NULL), date);
    pd_head hb, *h = &hb;
    client_begin_response_head(c, h, status, pd_str_z(pd_status_reason(status)));
    pd_head_field(h, PD_STR("Date"), pd_str_z(date));
    pd_head_str(h, "Content-Length: 0\r\n");
    client_end_response_head(c, h, status);
    client_txn_done(c);
}

/* After an unsafe method succeeded, stored responses for its URLs are invalid (RFC 9111 4.4). */
void client_invalidate_after(struct pd_client *c)
{
    pd_cache_store *st = c->w->store;
    if (!st || pd_method_is_safe(c->req.method_id) || c->req.method_id == PD_M_CONNECT ||
        c->resp.status < 200 || c->resp.status >= 400 || !c->have_url ||
        (c->intercepted && !c->host_verified)) /* a forged Host invalidates nothing */
        return;
    char url[PD_CP_URL_MAX];
    size_t n = pd_url_format(&c->url, url, sizeof url);
    if (n >= sizeof url)
        return;
    pd_cp_invalidation inv;
    pd_cache_policy_invalidations(&c->req, &c->resp, url, &inv);
    for (int i = 0; i < inv.n; i++)
        pd_cache_store_invalidate(st, inv.url[i], strlen(inv.url[i]));
}
