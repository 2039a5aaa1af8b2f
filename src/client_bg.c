/*
 * client_bg: the background revalidation of stale-while-revalidate (RFC 5861
 * 3). A request that finds a stored response stale but inside its
 * stale-while-revalidate allowance is answered with it at once
 * (TCP_STALE_HIT, client_cache.c); if it also won the store's writer on the
 * object's key, it starts one transaction here that revalidates the object
 * with the origin while nobody waits for it. The writer is the collapsing
 * lock: one per key in the whole shared store, so one revalidation per object
 * runs at a time across all workers, and every other request meanwhile just
 * gets the stale answer.
 *
 * The background transaction is a struct pd_client like any other, driven by
 * the same code (upstream.c for DNS, peers, the pool, the request and the
 * response; client_cache.c for the 304 merge and storing a new response),
 * with no client connection: bev is NULL, cout() is a sink emptied as it
 * fills, detached is set (as for a client that left while its response was
 * being stored). Where a client transaction would answer, it ends instead:
 * a 304 refreshes the object (client_revalidated), a new response replaces
 * it (finish_response), and anything else (the origin unreachable, a 5xx, a
 * timeout, an answer that may not be stored) leaves the stale object as it
 * was; stale-if-error and max_stale then decide for the requests after the
 * allowance runs out.
 *
 * Memory: one owner each. The background transaction owns everything it
 * holds: its copy of the request (made from the triggering request, which
 * may end at once), its own store reference and head of the stale object,
 * the writer (handed over by the caller), the origin connection and the sink;
 * txn_free (client.c) frees them, as for every transaction. It lives on the
 * engine's bg list (not the clients list: no connection, not in n_clients),
 * is driven by its events like every transaction (client_drive.c), and ends
 * by client_free like the others. The triggering client keeps nothing of it and
 * it keeps nothing of the client, so either can go first. A worker that exits
 * frees the ones still running (pd_client_close_all): their writers are
 * aborted and the stale object stays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "client_int.h"
#include "proxyd/stats.h"

/* The client's conditions and range are its own; the background request
 * validates the stored object (write_request_head adds its validators). */
static const char *const dropped[] = {
    "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range",
    "Content-Length", "Transfer-Encoding", "Expect",
};

/* The origin request: the client's head as a bodiless GET, its conditions dropped. */
static int copy_request(struct pd_client *b, const struct pd_client *c)
{
    if (pd_http_msg_copy(&b->req, &c->req) < 0)
        return -1;
    for (size_t i = 0; i < sizeof dropped / sizeof dropped[0]; i++)
        pd_http_msg_remove(&b->req, dropped[i]);
    b->req.method = PD_STR("GET"); /* a HEAD's stale answer is revalidated with a GET */
    b->req.method_id = PD_M_GET;
    b->req.body = PD_BODY_NONE;
    b->req.content_length = 0;
    b->req.expect_continue = 0;
    char url[PD_CP_URL_MAX];
    size_t n = pd_url_format(&c->url, url, sizeof url);
    const char *why;
    if (n >= sizeof url || pd_url_parse(url, n, PD_URL_ABSOLUTE, &b->url, &why) < 0)
        return -1;
    b->have_url = 1;
    return 0;
}

/* Who asked, as the acls, the header rules and the log see it. */
static void copy_client(struct pd_client *b, const struct pd_client *c)
{
    b->peer = c->peer;
    memcpy(b->peer_ip, c->peer_ip, sizeof b->peer_ip);
    b->src = c->src;
    memcpy(b->src_ip, c->src_ip, sizeof b->src_ip);
    b->local_port = c->local_port;
    b->auth_state = c->auth_state;
    memcpy(b->user, c->user, sizeof b->user);
    memcpy(b->ext_memo, c->ext_memo, sizeof b->ext_memo);
    b->n_ext_memo = c->n_ext_memo;
    memcpy(b->notes, c->notes, sizeof b->notes);
    b->intercepted = c->intercepted;
    b->host_verified = c->host_verified;
    b->orig_dst = c->orig_dst;
    b->orig_dst_len = c->orig_dst_len;
    memcpy(b->key, c->key, sizeof b->key);
}

/* Its own reference to the stale object (the one c->ckey names now) and its head. */
static int take_object(struct pd_client *b)
{
    pd_cache_ref *ref = NULL;
    if (pd_cache_store_lookup(b->w->store, b->ckey, b->ckey_len, &ref) != PD_CACHE_HIT) {
        if (ref)
            pd_cache_store_release(b->w->store, ref);
        return -1; /* gone meanwhile (invalidated, evicted): nothing to revalidate */
    }
    b->cref = ref;
    return client_cache_load_meta(b) < 0 || b->cm.kind != PD_META_RESPONSE ? -1 : 0;
}

int client_bg_revalidate(struct pd_client *c, pd_cache_writer *cw)
{
    pd_engine *w = c->w;
    struct pd_client *b = calloc(1, sizeof *b);
    if (!b) {
        pd_cache_store_abort(w->store, cw);
        return -1;
    }
    b->magic = CLIENT_MAGIC;
    b->w = w;
    b->bg = 1;
    b->detached = 1;
    b->cw = cw; /* from here on txn_free aborts it if need be */
    TAILQ_INSERT_TAIL(&w->bg, b, link);
    w->n_bg++;
    pd_http_msg_init(&b->req);
    pd_http_msg_init(&b->resp);
    gettimeofday(&b->t0, NULL);
    b->ttfb_us = -1;
    b->state = C_RESOLVE;
    b->rb_done = 1;
    b->keep_alive = 0;
    b->use_cache = 1;
    b->rule = c->rule;
    b->miss_result = PD_R_TCP_ASYNC_MISS;
    b->ckey = malloc(c->ckey_len + 1);
    b->sink = evbuffer_new();
    if (b->ckey) {
        memcpy(b->ckey, c->ckey, c->ckey_len + 1);
        b->ckey_len = c->ckey_len;
    }
    if (c->store_id)
        b->store_id = strdup(c->store_id);
    copy_client(b, c);
    if (!b->ckey || !b->sink || (c->store_id && !b->store_id) || copy_request(b, c) < 0 ||
        take_object(b) < 0) {
        client_free(b); /* not started: not counted, not logged */
        return -1;
    }
    b->revalidating = 1;
    b->result = PD_R_TCP_ASYNC_MISS; /* logged whatever ends it (client_log_transaction) */
    pd_stats_add(w->stats, PD_STAT_CACHE_BG_STARTED, 1);
    client_post(b, CEV_BG_START); /* may end b */
    return 0;
}

void client_bg_account(struct pd_client *b)
{
    pd_stats_slot *s = b->w->stats;
    pd_stats_add(s, pd_stats_result_id(b->result), 1);
    pd_stats_add(s, b->bg_outcome == BG_REFRESHED  ? PD_STAT_CACHE_BG_REFRESHED
                    : b->bg_outcome == BG_REPLACED ? PD_STAT_CACHE_BG_REPLACED
                                                   : PD_STAT_CACHE_BG_FAILED,
                 1);
    pd_stats_add(s, PD_STAT_ORIGIN_BYTES_IN, (int64_t)b->resp_bytes_in);
    pd_stats_add(s, PD_STAT_ORIGIN_BYTES_OUT, (int64_t)b->up_out_bytes);
}
