/*
 * client: the transaction, from the first byte of a request head to the end
 * of its response, on a client connection (one transaction at a time;
 * pipelined requests wait in the input buffer). Between transactions the
 * connection waits as a small pd_idle (client_idle.c).
 *
 *   C_HEAD     read and parse the request head (request_timeout)
 *   C_RESOLVE  validation, access control, cache lookup, then DNS (upstream.c)
 *   C_ACCESS   waiting for a helper: auth, external acl, URL rewriter, Store-ID
 *              (client_access.c, client_rewrite.c)
 *   C_CONNECT  pooled keep-alive connection, or a new one (upstream.c)
 *   C_FORWARD  request to the origin, response to the client (upstream.c)
 *   C_CACHE    answered from the cache, or waiting for an object being written
 *              (client_cache.c)
 *   C_TUNNEL   CONNECT (tunnel.c)
 *   C_CLOSING  flushing the last bytes before close
 *
 * Errors are short pages (errors.c); cache manager pages and deny_info live
 * in client_mgr.c. What the files share is in client_int.h.
 *
 * Memory: a pd_client owns its connections (pd_conn), parsers, messages and
 * URL; txn_free() is the only place that frees them. Every callback into a
 * transaction only records an event (client_post); the one driver
 * (client_drive.c) runs the handlers one at a time, and client_free / the
 * hand-over to pd_idle only mark it while a handler runs: the driver does it
 * after. A function marked "may free c" may thus leave c closing: its caller
 * returns at once.
 * A background revalidation (client_bg.c) is a transaction without a
 * connection (bev NULL, c->bg): the same rules, on the engine's bg list; it
 * ends where a client's transaction would answer or close.
 */
#include "proxyd/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxyd/access_log.h"
#include "proxyd/acl.h"
#include "proxyd/admin.h"
#include "proxyd/cache_meta.h"
#include "proxyd/cache_policy.h"
#include "proxyd/cache_store.h"
#include "proxyd/clock.h"
#include "proxyd/dns.h"
#include "proxyd/errors.h"
#include "proxyd/http_msg.h"
#include "proxyd/http_parse.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"
#include "proxyd/url.h"

#include "proxyd/icp.h"

#include "client_int.h"

static void read_head(struct pd_client *c);
static void client_read_cb(pd_conn *conn, void *arg);
static void client_event_cb(pd_conn *conn, short what, void *arg);

/* ---- access log and counters ------------------------------------------ */

static int64_t us_since(const struct timeval *t0)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000 + (now.tv_usec - t0->tv_usec);
}

/* The response head is queued: the transaction's time to first byte. */
void client_head_queued(struct pd_client *c)
{
    c->head_sent = 1;
    if (c->ttfb_us < 0)
        c->ttfb_us = us_since(&c->t0);
}

void client_log_transaction(struct pd_client *c)
{
    pd_engine *w = c->w;
    if (c->result == PD_R_UNSET)
        return;
    if (c->bg) /* no client's: its code says what it did to the object */
        c->result = c->bg_outcome == BG_REFRESHED ? PD_R_TCP_ASYNC_HIT : PD_R_TCP_ASYNC_MISS;
    struct timeval now;
    gettimeofday(&now, NULL);
    char url[PD_URL_HOST_MAX + 8192];
    const char *u = url;
    size_t ulen;
    if (c->have_url) {
        ulen = pd_url_format(&c->url, url, sizeof url);
        if (ulen >= sizeof url)
            ulen = sizeof url - 1;
    } else if (c->req.target.len) {
        u = c->req.target.p;
        ulen = c->req.target.len;
    } else {
        u = "error:invalid-request";
        ulen = strlen(u);
    }
    const pd_header *ct = !c->head_sent ? NULL
                          : c->have_cm ? pd_http_msg_find(&c->cm.head, "Content-Type")
                                       : pd_http_msg_find(&c->resp, "Content-Type");
    const pd_header *ref = pd_http_msg_find(&c->req, "Referer");
    const pd_header *ua = pd_http_msg_find(&c->req, "User-Agent");
    pd_log_entry e = {
        .start = c->t0,
        .elapsed_ms = (int64_t)(now.tv_sec - c->t0.tv_sec) * 1000 +
                      (now.tv_usec - c->t0.tv_usec) / 1000,
        .client_ip = c->src_ip[0] ? c->src_ip : c->peer_ip, /* log_uses_indirect_client */
        .result = pd_result_text(c->result),
        .status = c->status,
        .bytes = c->out_bytes,
        .method = c->req.method.len ? c->req.method.p : "NONE",
        .method_len = c->req.method.len ? c->req.method.len : 4,
        .url = u,
        .url_len = ulen,
        .hier = !c->origin_ip[0] ? "HIER_NONE"
                : c->via_peer || c->via_member ? c->hier
                : c->intercepted ? "ORIGINAL_DST"
                                 : "HIER_DIRECT",
        .peer_ip = c->origin_ip[0] ? c->origin_ip : "-",
        .content_type = ct ? ct->value.p : NULL,
        .content_type_len = ct ? ct->value.len : 0,
        .referer = ref ? ref->value.p : NULL,
        .referer_len = ref ? ref->value.len : 0,
        .user_agent = ua ? ua->value.p : NULL,
        .user_agent_len = ua ? ua->value.len : 0,
        .version_major = c->req.version_major ? c->req.version_major : 1,
        .version_minor = c->req.version_minor,
        .client_port = ntohs(c->peer.ss_family == AF_INET6
                                 ? ((struct sockaddr_in6 *)&c->peer)->sin6_port
                                 : ((struct sockaddr_in *)&c->peer)->sin_port),
        .local_port = c->local_port,
        .bytes_in = c->in_bytes,
        .origin_status = c->resp.status,
        .req = &c->req,
        .resp = &c->resp,
        .user = c->auth_state == PD_AUTH_OK ? c->user : NULL,
        .notes = c->notes[0] ? c->notes : NULL,
        .server_host = !c->origin_ip[0] ? NULL
                       : c->via_peer ? pd_peer_host(c->w->peers, c->via_peer - 1)
                       : c->via_member ? c->origin_ip
                       : c->have_url ? c->url.host : NULL,
        .err_code = c->err_code,
        .err_detail = c->err_code ? c->err_detail : NULL,
        .server_ms = !c->up_t0 ? -1 : (c->up_t1 ? c->up_t1 : pd_clock_ms()) - c->up_t0,
    };
    pd_access_log_write(w->alog, &e);
    if (c->bg) {
        client_bg_account(c);
        c->result = PD_R_UNSET;
        return;
    }
    pd_stats_txn st = {
        .method_id = c->req.method.len ? c->req.method_id : PD_M_OTHER,
        .result = c->result,
        .status = c->status,
        .client_in = c->in_bytes,
        .client_out = c->out_bytes,
        .origin_in = c->resp_bytes_in,
        .origin_out = c->up_out_bytes,
        .total_us = us_since(&c->t0),
        .ttfb_us = c->ttfb_us,
    };
    pd_stats_transaction(w->stats, &st);
    c->result = PD_R_UNSET;
}

/* ---- connections per client address (acl maxconn) ------------------------ */

static unsigned ip_bucket(const char *ip)
{
    unsigned h = 2166136261u;
    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % PD_IPCOUNT_BUCKETS;
}

/* Add delta to the count of ip's open connections; returns the new count. */
static int ipcount_add(pd_engine *w, const char *ip, int delta)
{
    struct pd_ipcount **pp = &w->ipc[ip_bucket(ip)];
    for (; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->ip, ip) != 0)
            continue;
        struct pd_ipcount *e = *pp;
        e->n += delta;
        int n = e->n;
        if (n <= 0) {
            *pp = e->next;
            free(e);
        }
        return n;
    }
    if (delta <= 0)
        return 0;
    struct pd_ipcount *e = calloc(1, sizeof *e);
    if (!e)
        return delta;
    snprintf(e->ip, sizeof e->ip, "%s", ip);
    e->n = delta;
    e->next = *pp;
    *pp = e;
    return delta;
}

/* ---- teardown -------------------------------------------------------- */

void client_up_release(struct pd_client *c, int reusable)
{
    if (!c->up)
        return;
    if (c->peer_held) { /* max-conn: this connection is no longer in use */
        pd_peer_conn_closed(c->w->peers, c->peer_held - 1);
        c->peer_held = 0;
    }
    if (c->up_t0)
        c->up_t1 = pd_clock_ms(); /* the last I/O with the origin */
    pd_conn *up = c->up;
    c->up = NULL;
    pd_conn_setcb(up, NULL, NULL, NULL, NULL);
    if (reusable && c->w->conf->server_persistent_connections && !c->w->draining &&
        evbuffer_get_length(pd_conn_input(up)) == 0 &&
        evbuffer_get_length(pd_conn_output(up)) == 0) {
        pd_conn_disable(up, EV_READ | EV_WRITE);
        pd_conn_set_timeouts(up, 0, 0);
        pd_upool_put(c->w->upool, c->key, up);
        return;
    }
    pd_conn_free(up);
}

/* A client connection is gone (busy or idle): the counters, then the engine's owner. */
void client_conn_closed(pd_engine *w, const char *peer_ip)
{
    w->n_clients--;
    pd_stats_add(w->stats, PD_STAT_CLIENT_CONNS_OPEN, -1);
    ipcount_add(w, peer_ip, -1);
    if (w->conn_closed)
        w->conn_closed(w->conn_closed_arg);
}

/* Free the transaction; the connection (c->bev, if still set) goes with it. */
static void txn_free(struct pd_client *c)
{
    pd_engine *w = c->w;
    client_log_transaction(c);
    client_cache_drop(c);
    client_access_drop(c);
    free(c->ev_rw_url);
    if (c->dnsq)
        pd_dns_cancel(c->dnsq);
    if (c->icpq)
        pd_icp_query_cancel(c->icpq);
    client_up_release(c, 0);
    if (c->timer)
        event_free(c->timer);
    if (c->life)
        event_free(c->life);
    if (c->bev)
        pd_conn_free(c->bev);
    if (c->rbuf)
        evbuffer_free(c->rbuf);
    pd_http_parser_free(c->reqp);
    pd_http_parser_free(c->respp);
    pd_http_msg_free(&c->req);
    pd_http_msg_free(&c->resp);
    if (c->have_url)
        pd_url_free(&c->url);
    free(c->store_id);
    if (c->sink)
        evbuffer_free(c->sink);
    if (c->bg) {
        TAILQ_REMOVE(&w->bg, c, link);
        w->n_bg--;
    } else {
        TAILQ_REMOVE(&w->clients, c, link);
    }
    c->magic = 0;
    free(c);
}

static void free_now(struct pd_client *c)
{
    pd_engine *w = c->w;
    if (c->bg) {
        txn_free(c); /* no connection to account for */
        return;
    }
    char ip[INET6_ADDRSTRLEN];
    memcpy(ip, c->peer_ip, sizeof ip);
    txn_free(c);
    client_conn_closed(w, ip);
}

/* The transaction is over, the connection waits for the next request. */
static void to_idle_now(struct pd_client *c)
{
    pd_engine *w = c->w;
    pd_conn *conn = c->bev;
    struct sockaddr_storage peer = c->peer;
    uint16_t port = c->local_port;
    unsigned nreq = c->nreq;
    int64_t life_at = c->life_at_ms;
    c->bev = NULL;
    txn_free(c);
    client_idle_wait(w, conn, &peer, port, nreq, life_at);
}

/*
 * End the transaction (CLOSE_FREE: and its connection; CLOSE_IDLE: the
 * connection waits for the next request). While the driver runs one of its
 * handlers this only marks it: the driver does it once the handler returned,
 * so no caller up the stack ever holds a freed transaction.
 */
void client_finish(struct pd_client *c)
{
    if (c->closing == CLOSE_FREE)
        free_now(c);
    else
        to_idle_now(c);
}

static void client_end(struct pd_client *c, enum client_closing how)
{
    if (c->closing == CLOSE_FREE)
        return;
    c->closing = how;
    if (!c->driving)
        client_finish(c);
}

void client_free(struct pd_client *c)
{
    client_end(c, CLOSE_FREE);
}

/* Flush what is queued for the client, then close. May free c. */
void client_close_after_flush(struct pd_client *c)
{
    if (c->closing)
        return;
    client_log_transaction(c);
    client_cache_drop(c);
    client_up_release(c, 0);
    if (c->dnsq) {
        pd_dns_cancel(c->dnsq);
        c->dnsq = NULL;
    }
    c->state = C_CLOSING;
    if (c->timer)
        event_del(c->timer);
    if (c->bg) {
        client_free(c); /* nobody to flush to */
        return;
    }
    pd_conn_disable(c->bev, EV_READ);
    if (c->detached)
        evbuffer_drain(cout(c), evbuffer_get_length(cout(c))); /* nobody to flush to */
    if (evbuffer_get_length(cout(c)) == 0) {
        client_free(c);
        return;
    }
    /* the write callback fires when the output is empty */
    pd_conn_set_write_low(c->bev, 0);
    pd_conn_enable(c->bev, EV_WRITE);
}

/* ---- error responses -------------------------------------------------- */

/*
 * Answer with an error page if no response head went out yet, then close
 * (or keep the connection when the request was read whole and keep is set).
 * Otherwise the response is cut short. May free c.
 */
void client_fail_request(struct pd_client *c, int status, const char *err, const char *detail,
                         int keep)
{
    client_fail_request_hdrs(c, status, err, detail, keep, "");
}

void client_fail_request_hdrs(struct pd_client *c, int status, const char *err,
                              const char *detail, int keep, const char *extra)
{
    if (c->closing)
        return;
    if (c->bg) {
        /* a background revalidation has nobody to answer: it ends, and the
         * stale object stays (stale-if-error rules hold for later requests) */
        c->err_code = err;
        snprintf(c->err_detail, sizeof c->err_detail, "%s", detail ? detail : "");
        if (!c->head_sent)
            c->status = status;
        client_close_after_flush(c);
        return;
    }
    if (c->head_sent) {
        client_close_after_flush(c);
        return;
    }
    if (c->revalidating && status >= 502 && status <= 504) {
        /* the origin failed while a stale copy waited: serve it if allowed */
        if (client_cache_serve_stale(c))
            return;
        c->result = PD_R_TCP_REFRESH_FAIL_ERR;
    }
    char url[PD_URL_HOST_MAX + 2048];
    url[0] = '\0';
    c->err_code = err;
    snprintf(c->err_detail, sizeof c->err_detail, "%s", detail ? detail : "");
    if (c->have_url)
        pd_url_format(&c->url, url, sizeof url);
    if (!keep || !c->rb_done || !c->keep_alive || c->w->draining)
        c->keep_alive = 0;
    size_t before = evbuffer_get_length(cout(c));
    pd_error_page_hdrs(cout(c), status, err, detail, url, c->w->hostname, extra, c->keep_alive,
                       c->req.method_id == PD_M_HEAD);
    c->out_bytes += evbuffer_get_length(cout(c)) - before;
    client_head_queued(c);
    pd_stats_add(c->w->stats, pd_stats_error_id(err), 1);
    c->status = status;
    if (c->result == PD_R_UNSET)
        c->result = PD_R_NONE_NONE;
    client_txn_done(c);
}

void client_redirect(struct pd_client *c, int status, const char *loc, const char *extra)
{
    if (!c->rb_done || !c->keep_alive || c->w->draining)
        c->keep_alive = 0;
    size_t before = evbuffer_get_length(cout(c));
    char date[PD_HTTP_DATE_SIZE];
    pd_http_date(time(NULL), date);
    evbuffer_add_printf(cout(c),
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nLocation: %s\r\nContent-Length: 0\r\n"
                        "Cache-Control: no-store\r\n%s%s\r\n",
                        status, pd_status_reason(status), date, loc, extra ? extra : "",
                        c->keep_alive ? "" : "Connection: close\r\n");
    c->out_bytes += evbuffer_get_length(cout(c)) - before;
    client_head_queued(c);
    c->status = status;
    client_txn_done(c);
}

/* ---- request head ----------------------------------------------------- */

void client_on_timer(struct pd_client *c)
{
    if (c->state == C_HEAD && !c->w->draining) {
        c->result = PD_R_NONE_NONE;
        c->keep_alive = 0;
        client_fail_request(c, 408, "ERR_LIFETIME_EXP", "request head not received in time", 0);
        return;
    }
    if (c->state == C_ACCESS) {
        client_access_timeout(c);
        return;
    }
    client_free(c);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    client_post(arg, CEV_TIMER);
}

/* client_lifetime: no connection stays longer, whatever it is doing */
void client_on_lifetime(struct pd_client *c)
{
    c->result = pd_result_aborted(c->result);
    client_free(c);
}

static void lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
    client_post(arg, CEV_LIFETIME);
}

void client_arm_timer(struct pd_client *c, int64_t ms)
{
    struct timeval tv = pd_clock_tv(ms);
    evtimer_add(c->timer, &tv);
}

/*
 * The transaction's response is queued: the connection waits for the next
 * request as a pd_idle, or is closed once flushed (no keep-alive, a request
 * body not read whole, draining). Every transaction ends here or in
 * client_free, and every one starts fresh in client_begin: there is no reset.
 * May free c.
 */
void client_txn_done(struct pd_client *c)
{
    if (c->closing)
        return;
    if (!c->keep_alive || !c->rb_done || c->w->draining) {
        client_close_after_flush(c);
        return;
    }
    client_end(c, CLOSE_IDLE);
}

/* A new transaction reads its head (its first bytes are in the input). May free c. */
void client_on_start(struct pd_client *c)
{
    c->state = C_HEAD;
    c->ttfb_us = -1;
    c->miss_result = PD_R_TCP_MISS;
    pd_http_parser_next(c->reqp, &c->req, 0);
    client_arm_timer(c, c->w->conf->request_timeout);
    pd_conn_set_read_high(c->bev, HIGH_WM);
    pd_conn_set_write_low(c->bev, LOW_WM);
    pd_conn_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    pd_conn_enable(c->bev, EV_READ | EV_WRITE);
    read_head(c);
}

static void begin_transaction(struct pd_client *c);

/* Parse as much of the head as is buffered. May free c. */
static void read_head(struct pd_client *c)
{
    struct evbuffer *in = pd_conn_input(c->bev);
    while (evbuffer_get_length(in)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        size_t used = 0;
        enum pd_parse_status st = pd_http_parse_head(c->reqp, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        c->in_bytes += used;
        if (st == PD_PARSE_ERROR) {
            const char *why;
            int status = pd_http_parser_error(c->reqp, &why);
            gettimeofday(&c->t0, NULL);
            c->result = PD_R_NONE_NONE;
            c->keep_alive = 0;
            const char *err = status == 431 || status == 414 ? "ERR_TOO_BIG" : "ERR_INVALID_REQ";
            client_fail_request(c, status, err, why, 0);
            return;
        }
        if (st == PD_PARSE_DONE) {
            begin_transaction(c);
            return;
        }
    }
}

/* ---- the transaction -------------------------------------------------- */

void client_acl_req(struct pd_client *c, pd_acl_req *ar, const pd_http_msg *reply)
{
    *ar = (pd_acl_req){
        /* acl_uses_indirect_client: src acls see what follow_x_forwarded_for believed */
        .client = (const struct sockaddr *)&c->src,
        .local_port = c->local_port,
        .msg = &c->req,
        .url = &c->url,
        .is_connect = c->req.method_id == PD_M_CONNECT,
        .dst = c->addrs.n ? c->addrs.addr : NULL,
        .n_dst = c->addrs.n,
        .client_conns = ipcount_add(c->w, c->peer_ip, 0),
        .now = time(NULL),
        .reply = reply,
        .auth_state = c->auth_state,
        .user = c->auth_state == PD_AUTH_OK ? c->user : NULL,
        .ext_lookup = client_ext_lookup,
        .ext_ctx = c,
        .notes = c->notes,
    };
}

int client_acl_check(struct pd_client *c, const char **deny_acl)
{
    return client_acl_check_ext(c, deny_acl, NULL);
}

int client_acl_check_ext(struct pd_client *c, const char **deny_acl, pd_acl_ext_query *pending)
{
    pd_engine *w = c->w;
    if (!w->acl)
        return PD_ACL_ALLOW;
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    ar.ext_pending = pending;
    return pd_acl_check_http(w->acl, &ar, deny_acl);
}

/* follow_x_forwarded_for: who the client is for the acls and the log. */
static void indirect_client(struct pd_client *c)
{
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    ar.client = (const struct sockaddr *)&c->peer;
    if (c->w->acl && pd_acl_indirect_client(c->w->acl, &ar, &c->src))
        client_peer_ip((const struct sockaddr *)&c->src, c->src_ip, sizeof c->src_ip);
}

/*
 * With an absolute URL the Host header is not forwarded: the origin gets one
 * made from the URL's authority (RFC 9112 3.2.2: a proxy ignores the
 * received Host), whatever it said (httperf sends its own). A request with
 * two Host lines, or one that is not an authority at all, is still refused
 * (RFC 9112 3.2: 400): parsers further along could read either.
 */
static int host_valid(struct pd_client *c)
{
    const pd_header *h = pd_http_msg_find(&c->req, "Host");
    if (!h)
        return 1;
    if (pd_http_msg_find_next(&c->req, h))
        return 0; /* two Host lines */
    char buf[PD_URL_HOST_MAX + 32];
    if (h->value.len + 8 >= sizeof buf || memchr(h->value.p, '@', h->value.len) ||
        memchr(h->value.p, '/', h->value.len))
        return 0;
    snprintf(buf, sizeof buf, "http://%.*s/", (int)h->value.len, h->value.p);
    pd_url hu;
    const char *why;
    if (pd_url_parse(buf, strlen(buf), PD_URL_ABSOLUTE, &hu, &why) < 0)
        return 0;
    pd_url_free(&hu);
    return 1;
}

static void after_access(struct pd_client *c);

/* A complete request head was parsed. May free c. */
static void begin_transaction(struct pd_client *c)
{
    pd_engine *w = c->w;
    pd_http_msg *m = &c->req;
    evtimer_del(c->timer);
    gettimeofday(&c->t0, NULL);
    c->nreq++;
    c->keep_alive = m->keep_alive && w->conf->client_persistent_connections && !w->draining;
    c->rb_done = m->body == PD_BODY_NONE;
    c->rb_left = m->body == PD_BODY_LENGTH ? m->content_length : 0;
    c->addrs.n = 0;
    c->state = C_RESOLVE;
    pd_conn_disable(c->bev, EV_READ);

    const char *why = NULL;
    int is_connect = m->method_id == PD_M_CONNECT;
    /*
     * Malformed requests close the connection, even when their framing was
     * clear: what a client that sends them means by its next bytes is not
     * worth guessing (Squid does the same).
     */
    int icpt = client_intercept_url(c);
    if (icpt < 0)
        return;
    if (!icpt && client_is_cache_object(m->target.p, m->target.len)) {
        client_serve_manager(c); /* squidclient mgr:PAGE; never forwarded */
        return;
    }
    if (!icpt && !is_connect && m->target.len && m->target.p[0] == '/') {
        if (client_is_mgr_path(m->target.p, m->target.len)) {
            client_serve_manager(c);
            return;
        }
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_URL",
                     "origin-form request to a proxy: use an absolute URL", 0);
        return;
    }
    if (!icpt && pd_url_parse(m->target.p, m->target.len,
                              is_connect ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE, &c->url, &why) < 0) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_URL", why, 0);
        return;
    }
    c->have_url = 1;
    if (!is_connect && !host_valid(c)) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_REQ", "a repeated or malformed Host header", 0);
        return;
    }
    if (!icpt && !is_connect && client_is_mgr_path(c->url.path, c->url.path_len) &&
        client_is_self(c)) {
        client_serve_manager(c);
        return;
    }
    if (w->conf->request_body_max_size && m->body != PD_BODY_NONE &&
        (m->body == PD_BODY_CHUNKED || m->content_length > w->conf->request_body_max_size)) {
        if (m->body == PD_BODY_LENGTH) {
            c->result = PD_R_NONE_NONE;
            client_fail_request(c, 413, "ERR_TOO_BIG", "request body larger than request_body_max_size",
                         0);
            return;
        }
    }
    if (is_connect && m->body != PD_BODY_NONE) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_REQ", "CONNECT with a body", 0);
        return;
    }
    if (c->intercepted) {
        client_intercept_verify(c); /* then client_route */
        return;
    }
    client_route(c);
}

void client_route(struct pd_client *c)
{
    pd_engine *w = c->w;
    pd_http_msg *m = &c->req;
    /* Squid: PURGE only where an acl names the method, then as http_access says */
    if (m->method_id == PD_M_PURGE && !pd_acl_names_method(w->acl, "PURGE")) {
        client_deny(c, NULL);
        return;
    }
    indirect_client(c);
    if (client_access(c, after_access))
        after_access(c);
}

/* http_access allowed the request (or waits for DNS to decide). May free c. */
static void after_access(struct pd_client *c)
{
    if (!c->rewritten && !client_rewrite(c, after_access))
        return; /* redirected, refused, or waiting for the rewriter */
    if (c->req.method_id == PD_M_PURGE && !c->acl_need_dst) {
        client_purge(c);
        return;
    }
    pd_url_authority(&c->url, c->key, sizeof c->key);
    /* intercepted: only a Host that names the original destination may share the cache */
    if ((!c->intercepted || c->host_verified) && client_cache_usable(c)) {
        if (!c->store_id_done && !client_store_id(c, after_access))
            return; /* waiting for the Store-ID helper, or refused */
        if (client_cluster_forward(c))
            return; /* another proxyd_cluster member owns the key */
        if (client_cache_lookup(c))
            return; /* answered (or being answered) from the cache */
    }
    client_go_upstream(c);
}

/* ---- client callbacks --------------------------------------------------- */

void client_on_read(struct pd_client *c)
{
    switch (c->state) {
    case C_HEAD:
        read_head(c);
        break;
    case C_RESOLVE:
    case C_ACCESS:
    case C_CONNECT:
    case C_FORWARD:
        if (!c->rb_done)
            client_forward_request_body(c);
        else
            pd_conn_disable(c->bev, EV_READ);
        break;
    case C_TUNNEL:
        client_tunnel_pump(c);
        break;
    default:
        pd_conn_disable(c->bev, EV_READ);
        break;
    }
}

static void client_read_cb(pd_conn *conn, void *arg)
{
    client_post(arg, CEV_CL_READ);
}

void client_on_write(struct pd_client *c)
{
    switch (c->state) {
    case C_CLOSING:
        if (evbuffer_get_length(cout(c)) == 0)
            client_free(c);
        break;
    case C_FORWARD:
        /* response backpressure: resume reading the origin */
        if (c->up && c->rstate != R_DONE)
            pd_conn_enable(c->up, EV_READ);
        break;
    case C_TUNNEL:
        client_tunnel_pump(c);
        break;
    case C_CACHE:
        if (c->hr && !c->cwaiting)
            client_pump_cached(c);
        break;
    default:
        break;
    }
}

void client_write_cb(pd_conn *conn, void *arg)
{
    client_post(arg, CEV_CL_WRITE);
}

void client_on_conn(struct pd_client *c)
{
    short what = c->ev_cl_what;
    /*
     * The client closed while not sending: gone while its request is fetched
     * or served, as Squid (half_closed_clients off) and nginx take it. While
     * flushing the last bytes, or reading (head, tunnel), its EOF comes as such.
     */
    if (what == PD_CONN_HUP && (c->state == C_CLOSING || c->state == C_HEAD || c->state == C_TUNNEL))
        return;
    if (c->state == C_TUNNEL && (what & PD_CONN_EOF) && !(what & PD_CONN_ERROR)) {
        c->cl_eof = 1;
        pd_conn_disable(c->bev, EV_READ);
        client_tunnel_pump(c);
        return;
    }
    if (c->state == C_FORWARD && c->rstate == R_BODY && c->cw && c->up && c->rb_done && !c->detached) {
        client_detach(c);
        return;
    }
    if (c->state == C_FORWARD || c->state == C_CACHE)
        c->result = pd_result_aborted(c->result); /* the client left before the end */
    if (c->state == C_HEAD && c->result == PD_R_UNSET) {
        gettimeofday(&c->t0, NULL);
        c->result = PD_R_NONE_NONE;
        c->status = 0;
    }
    client_free(c);
}

static void client_event_cb(pd_conn *conn, short what, void *arg)
{
    client_post_conn(arg, CEV_CL_CONN, what);
}

/* ---- accept, drain ------------------------------------------------------ */

int pd_client_accept(pd_engine *w, evutil_socket_t fd, const struct sockaddr *peer, int peerlen,
                     uint16_t local_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, peer, (size_t)peerlen < sizeof ss ? (size_t)peerlen : sizeof ss);
    char ip[INET6_ADDRSTRLEN];
    client_peer_ip((const struct sockaddr *)&ss, ip, sizeof ip);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pd_conn *conn = pd_conn_new(w->base, fd); /* closes fd on failure */
    w->n_clients++;
    pd_stats_add(w->stats, PD_STAT_CLIENT_CONNS_TOTAL, 1);
    pd_stats_add(w->stats, PD_STAT_CLIENT_CONNS_OPEN, 1);
    ipcount_add(w, ip, 1);
    if (!conn) {
        client_conn_closed(w, ip);
        return -1;
    }
    pd_conn_set_timeouts(conn, 0, w->conf->write_timeout);
    client_idle_wait(w, conn, &ss, local_port, 0, pd_clock_ms() + w->conf->client_lifetime);
    return 0;
}

/* The first bytes of a request arrived on a waiting connection. May free what it makes. */
void client_begin(pd_engine *w, pd_conn *conn, const struct sockaddr_storage *peer,
                  uint16_t local_port, unsigned nreq, int64_t life_at_ms)
{
    struct pd_client *c = calloc(1, sizeof(*c));
    if (c) {
        c->magic = CLIENT_MAGIC;
        c->w = w;
        c->peer = *peer;
        client_peer_ip((const struct sockaddr *)peer, c->peer_ip, sizeof c->peer_ip);
        c->src = c->peer;
        memcpy(c->src_ip, c->peer_ip, sizeof c->src_ip);
        c->local_port = local_port;
        c->nreq = nreq;
        c->life_at_ms = life_at_ms;
        c->bev = conn;
        c->reqp = pd_http_parser_new(1, w->conf->request_header_max_size);
        c->timer = evtimer_new(w->base, timer_cb, c);
        c->life = evtimer_new(w->base, lifetime_cb, c);
        pd_http_msg_init(&c->req);
        pd_http_msg_init(&c->resp);
        TAILQ_INSERT_TAIL(&w->clients, c, link);
    }
    if (!c || !c->reqp || !c->timer || !c->life) {
        char ip[INET6_ADDRSTRLEN];
        client_peer_ip((const struct sockaddr *)peer, ip, sizeof ip);
        if (c)
            txn_free(c); /* frees conn too */
        else
            pd_conn_free(conn);
        client_conn_closed(w, ip);
        return;
    }
    int64_t left = life_at_ms - pd_clock_ms();
    struct timeval lt = pd_clock_tv(left);
    evtimer_add(c->life, &lt);
    client_post(c, CEV_START);
}

void pd_client_drain_all(pd_engine *w)
{
    struct pd_client *c, *next;
    client_idle_drain(w);
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        c->keep_alive = 0; /* closes after its current response */
    }
}

void pd_client_close_all(pd_engine *w)
{
    struct pd_client *c;
    while ((c = TAILQ_FIRST(&w->clients)))
        client_free(c);
    while ((c = TAILQ_FIRST(&w->bg)))
        client_free(c); /* its writer is aborted: the stale object stays */
    client_idle_close_all(w);
}
