/*
 * client: one client connection and the transaction it is serving.
 *
 * The way of a request (one transaction at a time per connection; pipelined
 * requests wait in the input buffer):
 *
 *   C_HEAD     read and parse the request head (request_timeout / idle timer)
 *   C_RESOLVE  access control, then asynchronous DNS for the origin
 *   C_CONNECT  pooled keep-alive connection, or a new one (next address on failure)
 *   C_FORWARD  request head + body to the origin, response head + body to the
 *              client, each direction streamed with backpressure
 *   C_TUNNEL   CONNECT: bytes relayed both ways, half-close passed on
 *   C_CLOSING  flushing the last bytes before close
 *
 * Bodies framed by Content-Length (or by EOF) are moved between evbuffers
 * without copying; chunked bodies go through the strict parser and are
 * re-chunked. A response that cannot be completed is never completed on the
 * client side: the connection is closed before the last byte (or the last
 * chunk) so that the client sees a truncated message.
 *
 * Answering from the cache and filling it live in client_cache.c; what the
 * two files share is in client_int.h.
 *
 * Memory ownership: a pd_client owns its connections (pd_conn), parsers, messages and
 * URL. client_free() is the only place that frees them; after calling it (or a
 * function that may call it, marked "may free c") the caller returns at once.
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
#include "proxyd/dns.h"
#include "proxyd/errors.h"
#include "proxyd/http_msg.h"
#include "proxyd/http_parse.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"
#include "proxyd/url.h"

#include "client_int.h"

static void client_free(struct pd_client *c);
static void read_head(struct pd_client *c);
static int forward_request_body(struct pd_client *c);
static void read_response(struct pd_client *c);
static void connect_next(struct pd_client *c);
static void up_event_cb(pd_conn *conn, short what, void *arg);
static void up_read_cb(pd_conn *conn, void *arg);
static void up_write_cb(pd_conn *conn, void *arg);
static void client_read_cb(pd_conn *conn, void *arg);
static void client_event_cb(pd_conn *conn, short what, void *arg);

static struct timeval ms_tv(int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return tv;
}

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
    pd_worker *w = c->w;
    if (c->result == PD_R_UNSET)
        return;
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
        .client_ip = c->peer_ip,
        .result = pd_result_text(c->result),
        .status = c->status,
        .bytes = c->out_bytes,
        .method = c->req.method.len ? c->req.method.p : "NONE",
        .method_len = c->req.method.len ? c->req.method.len : 4,
        .url = u,
        .url_len = ulen,
        .hier = c->origin_ip[0] ? "HIER_DIRECT" : "HIER_NONE",
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
    };
    pd_access_log_write(w->alog, &e);
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

struct pd_ipcount {
    struct pd_ipcount *next;
    int n;
    char ip[INET6_ADDRSTRLEN];
};

static unsigned ip_bucket(const char *ip)
{
    unsigned h = 2166136261u;
    for (; *ip; ip++)
        h = (h ^ (unsigned char)*ip) * 16777619u;
    return h % PD_IPCOUNT_BUCKETS;
}

/* Add delta to the count of ip's open connections; returns the new count. */
static int ipcount_add(pd_worker *w, const char *ip, int delta)
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


/* A client connection is gone (busy or idle): the worker's and the counters' side. */
void client_conn_closed(pd_worker *w, const char *peer_ip)
{
    pd_stats_add(w->stats, PD_STAT_CLIENT_CONNS_OPEN, -1);
    ipcount_add(w, peer_ip, -1);
    pd_worker_client_closed(w);
}

/* Free the transaction; the connection (c->bev, if still set) goes with it. */
static void txn_free(struct pd_client *c)
{
    pd_worker *w = c->w;
    client_log_transaction(c);
    client_cache_drop(c);
    if (c->dnsq)
        pd_dns_cancel(c->dnsq);
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
    TAILQ_REMOVE(&w->clients, c, link);
    c->magic = 0;
    free(c);
}

static void client_free(struct pd_client *c)
{
    pd_worker *w = c->w;
    char ip[INET6_ADDRSTRLEN];
    memcpy(ip, c->peer_ip, sizeof ip);
    txn_free(c);
    client_conn_closed(w, ip);
}

/* Flush what is queued for the client, then close. May free c. */
void client_close_after_flush(struct pd_client *c)
{
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
    if (c->head_sent) {
        client_close_after_flush(c);
        return;
    }
    char url[PD_URL_HOST_MAX + 2048];
    url[0] = '\0';
    if (c->have_url)
        pd_url_format(&c->url, url, sizeof url);
    if (!keep || !c->rb_done || !c->keep_alive || c->w->draining)
        c->keep_alive = 0;
    size_t before = evbuffer_get_length(cout(c));
    pd_error_page(cout(c), status, err, detail, url, c->w->hostname, c->keep_alive,
                  c->req.method_id == PD_M_HEAD);
    c->out_bytes += evbuffer_get_length(cout(c)) - before;
    client_head_queued(c);
    pd_stats_add(c->w->stats, pd_stats_error_id(err), 1);
    c->status = status;
    if (c->result == PD_R_UNSET)
        c->result = PD_R_NONE_NONE;
    if (!c->keep_alive) {
        client_close_after_flush(c);
        return;
    }
    /* keep-alive after an error: the transaction is over */
    client_log_transaction(c);
    client_cache_drop(c);
    client_up_release(c, 0);
    client_start_head(c);
}

/* ---- request head ----------------------------------------------------- */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pd_client *c = arg;
    if (c->state == C_HEAD && c->head_started && !c->w->draining) {
        c->result = PD_R_NONE_NONE;
        c->keep_alive = 0;
        client_fail_request(c, 408, "ERR_LIFETIME_EXP", "request head not received in time", 0);
        return;
    }
    client_free(c);
}

/* client_lifetime: no connection stays longer, whatever it is doing */
static void lifetime_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pd_client *c = arg;
    c->result = pd_result_aborted(c->result);
    client_free(c);
}

static void arm_timer(struct pd_client *c, int64_t ms)
{
    struct timeval tv = ms_tv(ms);
    evtimer_add(c->timer, &tv);
}

/*
 * Wait for the next request on this connection. Unless its bytes are here
 * already (pipelining), the connection waits as a small idle object and the
 * transaction is freed. May free c.
 */
void client_start_head(struct pd_client *c)
{
    pd_worker *w = c->w;
    if (w->draining) {
        client_close_after_flush(c);
        return;
    }
    if (c->nreq && evbuffer_get_length(pd_conn_input(c->bev)) == 0) {
        pd_conn *conn = c->bev;
        struct sockaddr_storage peer = c->peer;
        uint16_t port = c->local_port;
        unsigned nreq = c->nreq;
        int64_t life_at = c->life_at_ms;
        c->bev = NULL;
        txn_free(c);
        client_idle_wait(w, conn, &peer, port, nreq, life_at);
        return;
    }
    c->state = C_HEAD;
    if (c->have_url) {
        pd_url_free(&c->url);
        c->have_url = 0;
    }
    pd_http_parser_next(c->reqp, &c->req, 0);
    pd_http_msg_reset(&c->resp);
    c->head_started = 0;
    c->rb_left = 0;
    c->rb_done = 0;
    c->head_sent = 0;
    c->status = 0;
    c->result = PD_R_UNSET;
    c->out_bytes = 0;
    c->in_bytes = 0;
    c->up_out_bytes = 0;
    c->ttfb_us = -1;
    c->origin_ip[0] = '\0';
    c->retried = 0;
    c->resp_bytes_in = 0;
    c->up_from_pool = 0;
    c->up_connected = 0;
    client_cache_drop(c);
    c->use_cache = 0;
    c->miss_result = PD_R_TCP_MISS;
    arm_timer(c, c->nreq ? w->conf->client_idle_pconn_timeout : w->conf->request_timeout);
    pd_conn_set_write_low(c->bev, LOW_WM);
    pd_conn_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
    pd_conn_enable(c->bev, EV_READ | EV_WRITE);
    if (evbuffer_get_length(pd_conn_input(c->bev)))
        read_head(c);
}

static void begin_transaction(struct pd_client *c);

/* Parse as much of the head as is buffered. May free c. */
static void read_head(struct pd_client *c)
{
    struct evbuffer *in = pd_conn_input(c->bev);
    while (evbuffer_get_length(in)) {
        if (!c->head_started) {
            c->head_started = 1;
            if (c->nreq)
                arm_timer(c, c->w->conf->request_timeout);
        }
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
            client_fail_request(c, status, status == 431 ? "ERR_TOO_BIG" : "ERR_INVALID_REQ", why, 0);
            return;
        }
        if (st == PD_PARSE_DONE) {
            begin_transaction(c);
            return;
        }
    }
}

/* ---- the transaction -------------------------------------------------- */

static void dns_cb(const pd_dns_result *r, void *arg);
static int pool_try(struct pd_client *c);

static int acl_check(struct pd_client *c, const char **deny_acl)
{
    pd_worker *w = c->w;
    if (!w->acl)
        return PD_ACL_ALLOW;
    pd_acl_req ar = {
        .client = (const struct sockaddr *)&c->peer,
        .local_port = c->local_port,
        .msg = &c->req,
        .url = &c->url,
        .is_connect = c->req.method_id == PD_M_CONNECT,
        .dst = c->addrs.n ? c->addrs.addr : NULL,
        .n_dst = c->addrs.n,
        .client_conns = ipcount_add(w, c->peer_ip, 0),
        .now = time(NULL),
    };
    return pd_acl_check_http(w->acl, &ar, deny_acl);
}

/*
 * 403, or what deny_info says for the acl that decided: a page name
 * (ERR_...), a redirect ("http://..." or "3xx:http://..."), or TCP_RESET.
 */
static void deny(struct pd_client *c, const char *acl_name)
{
    pd_worker *w = c->w;
    c->result = PD_R_TCP_DENIED;
    const char *di = acl_name && w->acl ? pd_acl_deny_info(w->acl, acl_name) : NULL;
    if (di && strcmp(di, "TCP_RESET") == 0) {
        c->status = 0;
        struct linger lg = { 1, 0 };
        setsockopt(pd_conn_fd(c->bev), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        evbuffer_drain(cout(c), evbuffer_get_length(cout(c)));
        client_free(c);
        return;
    }
    int status = 302;
    const char *loc = NULL;
    if (di && di[0] == '3' && strlen(di) > 4 && di[3] == ':') {
        status = atoi(di);
        loc = di + 4;
    } else if (di && (strncmp(di, "http://", 7) == 0 || strncmp(di, "https://", 8) == 0)) {
        loc = di;
    }
    if (loc && status >= 300 && status < 400 && !strpbrk(loc, "\r\n")) {
        if (!c->rb_done || !c->keep_alive || w->draining)
            c->keep_alive = 0;
        size_t before = evbuffer_get_length(cout(c));
        evbuffer_add_printf(cout(c),
                            "HTTP/1.1 %d %s\r\nLocation: %s\r\nContent-Length: 0\r\n"
                            "Cache-Control: no-store\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n%s\r\n",
                            status, pd_status_reason(status), loc,
                            c->keep_alive ? "" : "Connection: close\r\n");
        c->out_bytes += evbuffer_get_length(cout(c)) - before;
        client_head_queued(c);
        c->status = status;
        if (!c->keep_alive) {
            client_close_after_flush(c);
            return;
        }
        client_log_transaction(c);
        client_start_head(c);
        return;
    }
    client_fail_request(c, 403, di && strncmp(di, "ERR_", 4) == 0 ? di : "ERR_ACCESS_DENIED",
                 "access denied by http_access", 1);
}

/*
 * With an absolute URL the Host header is replaced (RFC 9112 3.2.2), but a
 * request whose Host disagrees with its URL is refused: an agent behind or in
 * front of us that trusts Host would see another request than we checked.
 */
static int host_matches(struct pd_client *c)
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
    int same = strcmp(hu.host, c->url.host) == 0 && hu.port == c->url.port;
    pd_url_free(&hu);
    return same;
}

#define MGR_PREFIX "/squid-internal-mgr/"

/*
 * Squid's cache manager pages asked of the proxy itself: origin-form
 * "GET /squid-internal-mgr/info", or an absolute URL naming this proxy
 * (visible_hostname and the port the client connected to). May free c.
 */
static void serve_manager(struct pd_client *c)
{
    pd_worker *w = c->w;
    if (!c->have_url) {
        char u[PD_URL_HOST_MAX + 512];
        const char *why;
        int n = snprintf(u, sizeof u, "http://%s:%u%.*s", w->hostname, (unsigned)c->local_port,
                         (int)c->req.target.len, c->req.target.p);
        if (n < 0 || (size_t)n >= sizeof u ||
            pd_url_parse(u, (size_t)n, PD_URL_ABSOLUTE, &c->url, &why) < 0) {
            c->result = PD_R_NONE_NONE;
            client_fail_request(c, 400, "ERR_INVALID_URL", "bad cache manager URL", 1);
            return;
        }
        c->have_url = 1;
    }
    if (!pd_admin_allowed(w->conf, w->acl, (const struct sockaddr *)&c->peer, c->local_port,
                          &c->url)) {
        deny(c, NULL);
        return;
    }
    const char *page = c->url.path + strlen(MGR_PREFIX);
    struct evbuffer *body = evbuffer_new();
    if (!body || pd_stats_mgr_page(page, strcspn(page, "?"), body) < 0) {
        if (body)
            evbuffer_free(body);
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 404, "ERR_INVALID_URL", "no such cache manager page", 1);
        return;
    }
    if (!c->rb_done || w->draining)
        c->keep_alive = 0;
    struct evbuffer *out = cout(c);
    size_t before = evbuffer_get_length(out);
    evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Cache-Control: no-store\r\nContent-Length: %zu\r\n%s\r\n",
                        evbuffer_get_length(body), c->keep_alive ? "" : "Connection: close\r\n");
    if (c->req.method_id != PD_M_HEAD)
        evbuffer_add_buffer(out, body);
    evbuffer_free(body);
    c->out_bytes += evbuffer_get_length(out) - before;
    client_head_queued(c);
    c->status = 200;
    c->result = PD_R_TCP_MISS;
    client_log_transaction(c);
    if (!c->keep_alive)
        client_close_after_flush(c);
    else
        client_start_head(c);
}

static int is_mgr_path(const char *p, size_t len)
{
    return len >= strlen(MGR_PREFIX) && !memcmp(p, MGR_PREFIX, strlen(MGR_PREFIX));
}

/* Does the request URL name this proxy (visible_hostname or the address the client reached)? */
static int is_self(struct pd_client *c)
{
    if (c->url.port != c->local_port)
        return 0;
    if (!strcasecmp(c->url.host, c->w->hostname))
        return 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    if (getsockname(pd_conn_fd(c->bev), (struct sockaddr *)&ss, &sl) < 0 ||
        !inet_ntop(ss.ss_family,
                   ss.ss_family == AF_INET6 ? (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                            : (void *)&((struct sockaddr_in *)&ss)->sin_addr,
                   ip, sizeof ip))
        return 0;
    return !strcmp(c->url.host, ip);
}

/* A complete request head was parsed. May free c. */
static void begin_transaction(struct pd_client *c)
{
    pd_worker *w = c->w;
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
    if (!is_connect && m->target.len && m->target.p[0] == '/') {
        if (is_mgr_path(m->target.p, m->target.len)) {
            serve_manager(c);
            return;
        }
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_URL",
                     "origin-form request to a proxy: use an absolute URL", 0);
        return;
    }
    if (pd_url_parse(m->target.p, m->target.len, is_connect ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE,
                     &c->url, &why) < 0) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_URL", why, 0);
        return;
    }
    c->have_url = 1;
    if (!is_connect && !host_matches(c)) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_REQ",
                     "the Host header names another host than the request URL", 0);
        return;
    }
    if (!is_connect && is_mgr_path(c->url.path, c->url.path_len) && is_self(c)) {
        serve_manager(c);
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
    const char *deny_acl = NULL;
    int v = acl_check(c, &deny_acl);
    if (v == PD_ACL_DENY) {
        deny(c, deny_acl);
        return;
    }
    c->acl_need_dst = v == PD_ACL_NEED_DST;
    pd_url_authority(&c->url, c->key, sizeof c->key);
    if (client_cache_usable(c) && client_cache_lookup(c))
        return; /* answered (or being answered) from the cache */
    client_go_upstream(c);
}

/* Fetch from the origin: resolve, connect, forward. May free c. */
void client_go_upstream(struct pd_client *c)
{
    pd_worker *w = c->w;
    c->state = C_RESOLVE;
    if (!c->rb_done) {
        /*
         * Read and validate the body while the origin is resolved and
         * connected: a malformed chunked body found now is refused before
         * the origin sees a byte of the request.
         */
        if (!c->rbuf && !(c->rbuf = evbuffer_new())) {
            client_fail_request(c, 500, "ERR_INVALID_REQ", "out of memory", 0);
            return;
        }
        if (forward_request_body(c) < 0)
            return;
        if (!c->rb_done && evbuffer_get_length(c->rbuf) < HIGH_WM)
            pd_conn_enable(c->bev, EV_READ);
    }
    /* may call dns_cb (and free c) before it returns */
    pd_dns_req *q = pd_dns_resolve(w->dns, c->url.host, dns_cb, c);
    if (q)
        c->dnsq = q;
}

static void dns_cb(const pd_dns_result *r, void *arg)
{
    struct pd_client *c = arg;
    c->dnsq = NULL;
    if (r->error) {
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, r->error == PD_DNS_ETIMEOUT ? 504 : 502, "ERR_DNS_FAIL",
                     r->error == PD_DNS_ETIMEOUT ? "DNS lookup timed out"
                                                 : "the origin's name could not be resolved",
                     1);
        return;
    }
    c->addrs = *r;
    for (int i = 0; i < c->addrs.n; i++) {
        struct sockaddr_storage *ss = &c->addrs.addr[i];
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(c->url.port);
        else
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(c->url.port);
    }
    if (c->acl_need_dst) {
        const char *deny_acl = NULL;
        c->acl_need_dst = 0;
        if (acl_check(c, &deny_acl) != PD_ACL_ALLOW) {
            deny(c, deny_acl);
            return;
        }
    }
    c->addr_i = 0;
    c->state = C_CONNECT;
    if (c->req.method_id != PD_M_CONNECT && pool_try(c))
        return;
    connect_next(c);
}


/* ---- request to the origin -------------------------------------------- */

/* Not forwarded: hop-by-hop, and (old clients) what Proxy-Connection names. */
static int not_forwarded(const pd_http_msg *m, pd_str name)
{
    char nm[128];
    if (pd_http_msg_is_hop_by_hop(m, name))
        return 1;
    if (name.len >= sizeof nm)
        return 0;
    memcpy(nm, name.p, name.len);
    nm[name.len] = '\0';
    return pd_http_msg_has_token(m, "Proxy-Connection", nm);
}

void client_add_header(struct evbuffer *out, const pd_header *h)
{
    evbuffer_add(out, h->name.p, h->name.len);
    evbuffer_add(out, ": ", 2);
    evbuffer_add(out, h->value.p, h->value.len);
    evbuffer_add(out, "\r\n", 2);
}

/* The request head as the origin must see it. */
static void write_request_head(struct pd_client *c, struct evbuffer *out)
{
    pd_worker *w = c->w;
    const pd_http_msg *m = &c->req;
    const pd_conf *conf = w->conf;
    evbuffer_add(out, m->method.p, m->method.len);
    evbuffer_add(out, " ", 1);
    evbuffer_add(out, c->url.path, c->url.path_len);
    evbuffer_add(out, " HTTP/1.1\r\nHost: ", 17);
    char host[PD_URL_HOST_MAX + 16];
    if (c->url.port_explicit && c->url.port != 80)
        pd_url_authority(&c->url, host, sizeof host);
    else if (c->url.host_ip == 6)
        snprintf(host, sizeof host, "[%s]", c->url.host);
    else
        snprintf(host, sizeof host, "%s", c->url.host);
    evbuffer_add_printf(out, "%s\r\n", host);

    int xff_done = 0;
    for (size_t i = 0; i < m->n_headers; i++) {
        const pd_header *h = &m->headers[i];
        if (not_forwarded(m, h->name) || pd_str_eq_ci(h->name, "Host"))
            continue;
        if (pd_str_eq_ci(h->name, "Content-Length") && m->body != PD_BODY_LENGTH)
            continue;
        if (c->revalidating && (pd_str_eq_ci(h->name, "If-None-Match") ||
                                pd_str_eq_ci(h->name, "If-Modified-Since") ||
                                pd_str_eq_ci(h->name, "If-Range") || pd_str_eq_ci(h->name, "Range")))
            continue; /* we validate our stored copy; the client's conditions are ours to answer */
        if (pd_str_eq_ci(h->name, "X-Forwarded-For")) {
            if (conf->forwarded_for == PD_FWD_TRANSPARENT) {
                client_add_header(out, h);
            } else if ((conf->forwarded_for == PD_FWD_ON || conf->forwarded_for == PD_FWD_OFF) &&
                       !xff_done) {
                /* every X-Forwarded-For line, joined, then this hop */
                evbuffer_add_printf(out, "X-Forwarded-For: ");
                const pd_header *x = h;
                for (; x; x = pd_http_msg_find_next(m, x)) {
                    evbuffer_add(out, x->value.p, x->value.len);
                    evbuffer_add(out, ", ", 2);
                }
                evbuffer_add_printf(out, "%s\r\n",
                                    conf->forwarded_for == PD_FWD_ON ? c->peer_ip : "unknown");
                xff_done = 1;
            }
            continue;
        }
        client_add_header(out, h);
    }
    if (!xff_done && (conf->forwarded_for == PD_FWD_ON || conf->forwarded_for == PD_FWD_OFF ||
                      conf->forwarded_for == PD_FWD_TRUNCATE))
        evbuffer_add_printf(out, "X-Forwarded-For: %s\r\n",
                            conf->forwarded_for == PD_FWD_OFF ? "unknown" : c->peer_ip);
    if (conf->via)
        evbuffer_add_printf(out, "Via: %d.%d %s\r\n", m->version_major, m->version_minor,
                            w->via);
    if (c->revalidating) {
        const pd_header *etag = pd_http_msg_find(&c->cm.head, "ETag");
        const pd_header *lm = pd_http_msg_find(&c->cm.head, "Last-Modified");
        if (etag)
            evbuffer_add_printf(out, "If-None-Match: %.*s\r\n", (int)etag->value.len, etag->value.p);
        if (lm)
            evbuffer_add_printf(out, "If-Modified-Since: %.*s\r\n", (int)lm->value.len, lm->value.p);
    }
    if (m->body == PD_BODY_CHUNKED)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    if (!conf->server_persistent_connections)
        evbuffer_add(out, "Connection: close\r\n", 19);
    evbuffer_add(out, "\r\n", 2);
}

static void setup_upstream(struct pd_client *c)
{
    const pd_conf *conf = c->w->conf;
    pd_conn_setcb(c->up, up_read_cb, up_write_cb, up_event_cb, c);
    pd_conn_set_write_low(c->up, LOW_WM);
    pd_conn_set_read_high(c->up, HIGH_WM);
    if (c->up_connected)
        pd_conn_set_timeouts(c->up, conf->read_timeout, conf->write_timeout);
    else
        pd_conn_set_timeouts(c->up, conf->connect_timeout, conf->connect_timeout);
}

/* Queue the request head (and any buffered body) to c->up; start reading. May free c. */
static void send_request(struct pd_client *c)
{
    c->state = C_FORWARD;
    if (!c->respp)
        c->respp = pd_http_parser_new(0, c->w->conf->reply_header_max_size);
    pd_http_parser_next(c->respp, &c->resp, c->req.method_id);
    c->rstate = R_HEAD;
    c->resp_bytes_in = 0;
    struct evbuffer *uo = pd_conn_output(c->up);
    size_t before = evbuffer_get_length(uo);
    write_request_head(c, uo);
    c->up_out_bytes += evbuffer_get_length(uo) - before;
    if (c->rbuf)
        evbuffer_add_buffer(uo, c->rbuf); /* body read while resolving and connecting (counted then) */
    pd_conn_enable(c->up, EV_READ | EV_WRITE);
    if (!c->rb_done) {
        pd_conn_enable(c->bev, EV_READ);
        forward_request_body(c);
    }
}

static int pool_try(struct pd_client *c)
{
    /* a request that can_retry() on a new connection needs no liveness peek */
    pd_conn *up = pd_upool_take(c->w->upool, c->key, c->retried || c->req.body != PD_BODY_NONE);
    if (!up)
        return 0;
    c->up = up;
    pd_stats_add(c->w->stats, PD_STAT_ORIGIN_CONNS_REUSED, 1);
    c->up_from_pool = 1;
    c->up_connected = 1;
    const struct sockaddr *sa = pd_conn_peer(up);
    if (sa) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof ss);
        memcpy(&ss, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
        client_peer_ip(&ss, c->origin_ip, sizeof c->origin_ip);
    }
    setup_upstream(c);
    send_request(c);
    return 1;
}

/* Open a new connection to the next address of the origin. May free c. */
static void connect_next(struct pd_client *c)
{
    client_up_release(c, 0);
    if (c->addr_i >= c->addrs.n) {
        c->result = c->req.method_id == PD_M_CONNECT ? PD_R_TCP_TUNNEL : PD_R_TCP_MISS;
        client_fail_request(c, 502, "ERR_CONNECT_FAIL", "the origin refused or did not accept the connection", 1);
        return;
    }
    struct timeval now;
    gettimeofday(&now, NULL);
    int64_t spent = (int64_t)(now.tv_sec - c->t0.tv_sec) * 1000 + (now.tv_usec - c->t0.tv_usec) / 1000;
    if (c->addr_i > 0 && spent > c->w->conf->forward_timeout) {
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, 504, "ERR_CONNECT_FAIL", "no connection to the origin within forward_timeout", 1);
        return;
    }
    struct sockaddr_storage *ss = &c->addrs.addr[c->addr_i];
    socklen_t sl = c->addrs.addrlen[c->addr_i];
    c->addr_i++;
    c->up_from_pool = 0;
    c->up_connected = 0;
    c->up = pd_conn_new(c->w->base, -1);
    if (!c->up) {
        client_fail_request(c, 502, "ERR_CONNECT_FAIL", "out of resources", 1);
        return;
    }
    const void *a = ss->ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)ss)->sin_addr
                                             : (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr;
    inet_ntop(ss->ss_family, a, c->origin_ip, sizeof c->origin_ip);
    setup_upstream(c);
    pd_conn_enable(c->up, EV_READ | EV_WRITE);
    /* the request is sent once connected, so that a failed attempt loses no body bytes */
    if (pd_conn_connect(c->up, (struct sockaddr *)ss, sl) < 0)
        connect_next(c);
}

/* ---- request body --------------------------------------------------- */

static int chunk_out(void *arg, const char *data, size_t len)
{
    pd_http_chunk_add(arg, data, len);
    return 0;
}

/*
 * Move buffered request body bytes towards the origin (to c->rbuf until it
 * is connected). Returns -1 when the request was refused (c may be freed).
 */
static int forward_request_body(struct pd_client *c)
{
    struct evbuffer *in = pd_conn_input(c->bev);
    struct evbuffer *uo = c->up && c->state == C_FORWARD ? pd_conn_output(c->up) : c->rbuf;
    size_t in_before = evbuffer_get_length(in), uo_before = evbuffer_get_length(uo);
    if (c->req.body == PD_BODY_LENGTH) {
        size_t n = evbuffer_get_length(in);
        if (n > c->rb_left)
            n = (size_t)c->rb_left;
        evbuffer_remove_buffer(in, uo, n);
        c->rb_left -= n;
        if (c->rb_left == 0)
            c->rb_done = 1;
    } else if (c->req.body == PD_BODY_CHUNKED) {
        while (!c->rb_done && evbuffer_get_length(in)) {
            struct evbuffer_iovec v;
            evbuffer_peek(in, -1, NULL, &v, 1);
            size_t used = 0;
            enum pd_parse_status st =
                pd_http_parse_body(c->reqp, v.iov_base, v.iov_len, &used, chunk_out, uo);
            evbuffer_drain(in, used);
            if (st == PD_PARSE_ERROR) {
                const char *why;
                int status = pd_http_parser_error(c->reqp, &why);
                c->result = PD_R_NONE_NONE;
                c->keep_alive = 0;
                client_fail_request(c, status, "ERR_INVALID_REQ", why, 0);
                return -1;
            }
            if (st == PD_PARSE_DONE) {
                pd_http_chunk_last(uo);
                c->rb_done = 1;
            }
        }
    }
    c->in_bytes += in_before - evbuffer_get_length(in);
    c->up_out_bytes += evbuffer_get_length(uo) - uo_before;
    if (c->rb_done) {
        /* pipelined requests wait in the socket until this response is done */
        pd_conn_disable(c->bev, EV_READ);
    } else if (evbuffer_get_length(uo) > HIGH_WM) {
        pd_conn_disable(c->bev, EV_READ);
    }
    return 0;
}

/* ---- response to the client ------------------------------------------- */

static void write_response_head(struct pd_client *c)
{
    pd_worker *w = c->w;
    const pd_http_msg *r = &c->resp;
    struct evbuffer *out = cout(c);
    int client11 = c->req.version_major == 1 && c->req.version_minor >= 1;
    size_t before = evbuffer_get_length(out);

    switch (r->body) {
    case PD_BODY_NONE:
    case PD_BODY_LENGTH:
        c->out_kind = r->body;
        break;
    case PD_BODY_CHUNKED:
    case PD_BODY_EOF:
        c->out_kind = client11 ? PD_BODY_CHUNKED : PD_BODY_EOF;
        break;
    }
    if (c->out_kind == PD_BODY_EOF)
        c->keep_alive = 0;

    evbuffer_add_printf(out, "HTTP/1.1 %d ", r->status);
    evbuffer_add(out, r->reason.p, r->reason.len);
    evbuffer_add(out, "\r\n", 2);
    for (size_t i = 0; i < r->n_headers; i++) {
        const pd_header *h = &r->headers[i];
        if (not_forwarded(r, h->name))
            continue;
        if (pd_str_eq_ci(h->name, "Content-Length") &&
            (c->out_kind == PD_BODY_CHUNKED || c->out_kind == PD_BODY_EOF))
            continue;
        client_add_header(out, h);
    }
    if (w->conf->via)
        evbuffer_add_printf(out, "Via: %d.%d %s\r\n", r->version_major, r->version_minor, w->via);
    if (w->conf->x_cache_header)
        evbuffer_add_printf(out, "X-Cache: MISS from %s\r\n", w->hostname);
    if (c->out_kind == PD_BODY_CHUNKED)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    client_end_response_head(c, out, before, r->status);
}

/* The response reached its end. May free c. */
static void finish_response(struct pd_client *c)
{
    struct evbuffer *out = cout(c);
    if (c->out_kind == PD_BODY_CHUNKED)
        c->out_bytes += pd_http_chunk_last(out);
    c->rstate = R_DONE;
    if (c->cw) {
        pd_cache_store_commit(c->w->store, c->cw);
        c->cw = NULL;
    }
    client_invalidate_after(c);
    int reusable = c->resp.keep_alive && c->resp.body != PD_BODY_EOF && c->rb_done;
    client_log_transaction(c);
    client_up_release(c, reusable);
    if (!c->keep_alive || !c->rb_done) {
        client_close_after_flush(c);
        return;
    }
    client_start_head(c);
}

static void count_out(struct pd_client *c, size_t n)
{
    c->out_bytes += n;
}

static int chunk_out_client(void *arg, const char *data, size_t len)
{
    struct pd_client *c = arg;
    struct evbuffer *out = cout(c);
    client_store_bytes(c, data, len);
    if (c->out_kind == PD_BODY_CHUNKED) {
        count_out(c, pd_http_chunk_add(out, data, len));
    } else {
        evbuffer_add(out, data, len); /* HTTP/1.0 client: close-delimited */
        count_out(c, len);
    }
    return 0;
}

/* Move response bytes from the origin to the client. May free c. */
static void read_response(struct pd_client *c)
{
    struct evbuffer *in = pd_conn_input(c->up);
    struct evbuffer *out = cout(c);
    while (c->rstate == R_HEAD && evbuffer_get_length(in)) {
        struct evbuffer_iovec v;
        evbuffer_peek(in, -1, NULL, &v, 1);
        size_t used = 0;
        enum pd_parse_status st = pd_http_parse_head(c->respp, v.iov_base, v.iov_len, &used);
        evbuffer_drain(in, used);
        c->resp_bytes_in += used;
        if (st == PD_PARSE_ERROR) {
            const char *why;
            pd_http_parser_error(c->respp, &why);
            c->result = PD_R_TCP_MISS;
            client_fail_request(c, 502, "ERR_INVALID_RESP", why, 0);
            return;
        }
        if (st == PD_PARSE_AGAIN)
            return;
        if (c->resp.status < 200) {
            /* interim response: pass 100/103 on to HTTP/1.1 clients, then wait for the final one */
            if (c->resp.status == 101) {
                c->result = PD_R_TCP_MISS;
                client_fail_request(c, 502, "ERR_INVALID_RESP", "unexpected protocol switch", 0);
                return;
            }
            if (c->req.version_minor >= 1) {
                size_t before = evbuffer_get_length(out);
                evbuffer_add_printf(out, "HTTP/1.1 %d ", c->resp.status);
                evbuffer_add(out, c->resp.reason.p, c->resp.reason.len);
                evbuffer_add(out, "\r\n\r\n", 4);
                count_out(c, evbuffer_get_length(out) - before);
            }
            pd_http_parser_next(c->respp, &c->resp, c->req.method_id);
            continue;
        }
        if (c->revalidating) {
            if (client_revalidated(c))
                return;
            /* modified (or an error): the stored copy is replaced by what comes now */
            pd_cache_meta_free(&c->cm);
            c->have_cm = 0;
            pd_cache_store_release(c->w->store, c->cref);
            c->cref = NULL;
            c->revalidating = 0;
            c->miss_result = PD_R_TCP_REFRESH_MODIFIED;
            if (c->resp.status == 304 && c->req.body != PD_BODY_NONE) {
                /* the request body is gone: it cannot be sent again */
                client_up_release(c, 0);
                c->result = PD_R_TCP_MISS; /* as every other failed fetch */
                client_fail_request(c, 502, "ERR_INVALID_RESP", "the origin's 304 does not match the stored response", 0);
                return;
            }
            if (c->resp.status == 304) {
                /*
                 * A 304 that does not select our stored response (other
                 * validators, RFC 9111 4.3.4) answers our conditions, not the
                 * client's: ask again with the client's own request (no
                 * revalidation now, so at most once), on the same connection
                 * when it can be reused.
                 */
                client_up_release(c, c->resp.keep_alive && c->rb_done && evbuffer_get_length(in) == 0);
                c->addr_i = 0;
                if (!pool_try(c))
                    connect_next(c);
                return;
            }
        }
        if (c->cw)
            client_store_start(c);
        c->result = c->miss_result;
        write_response_head(c);
        c->rstate = R_BODY;
        c->in_left = c->resp.body == PD_BODY_LENGTH ? c->resp.content_length : 0;
        if (c->resp.body == PD_BODY_NONE) {
            finish_response(c);
            return;
        }
    }
    if (c->rstate != R_BODY)
        return;
    switch (c->resp.body) {
    case PD_BODY_LENGTH: {
        size_t n = evbuffer_get_length(in);
        if (n > c->in_left)
            n = (size_t)c->in_left;
        client_store_evbuffer(c, in, n);
        evbuffer_remove_buffer(in, out, n);
        count_out(c, n);
        c->resp_bytes_in += n;
        c->in_left -= n;
        if (c->in_left == 0) {
            if (evbuffer_get_length(in))
                c->resp.keep_alive = 0; /* the origin sent more than it announced */
            finish_response(c);
            return;
        }
        break;
    }
    case PD_BODY_EOF: {
        size_t n = evbuffer_get_length(in);
        if (n) {
            if (c->out_kind == PD_BODY_CHUNKED)
                count_out(c, pd_http_chunk_head(out, n));
            client_store_evbuffer(c, in, n);
            evbuffer_remove_buffer(in, out, n);
            count_out(c, n);
            if (c->out_kind == PD_BODY_CHUNKED)
                count_out(c, pd_http_chunk_tail(out));
            c->resp_bytes_in += n;
        }
        break;
    }
    case PD_BODY_CHUNKED:
        while (evbuffer_get_length(in)) {
            struct evbuffer_iovec v;
            evbuffer_peek(in, -1, NULL, &v, 1);
            size_t used = 0;
            enum pd_parse_status st =
                pd_http_parse_body(c->respp, v.iov_base, v.iov_len, &used, chunk_out_client, c);
            evbuffer_drain(in, used);
            c->resp_bytes_in += used;
            if (st == PD_PARSE_ERROR) {
                /* cut the response short: no last chunk */
                c->result = PD_R_TCP_MISS_ABORTED;
                c->out_kind = PD_BODY_NONE;
                client_close_after_flush(c);
                return;
            }
            if (st == PD_PARSE_DONE) {
                if (evbuffer_get_length(in))
                    c->resp.keep_alive = 0;
                finish_response(c);
                return;
            }
        }
        break;
    case PD_BODY_NONE:
        break;
    }
    if (c->detached) {
        evbuffer_drain(out, evbuffer_get_length(out));
        /* the store gave up on the object (too large, no room): nothing left to fill.
         * Deferred through the timer (timer_cb frees c): callers still use c. */
        if (!c->cw) {
            /* stop reading at once: a busy upstream must not starve the timer */
            pd_conn_disable(c->up, EV_READ);
            if (!evtimer_pending(c->timer, NULL))
                arm_timer(c, 0);
        }
        return;
    }
    if (evbuffer_get_length(out) > HIGH_WM)
        pd_conn_disable(c->up, EV_READ); /* resumed by client_write_cb */
}

/*
 * The client went away in the middle of a body we store. Clients collapsed
 * on this object (in any worker) read it as it arrives and would be cut
 * short if we aborted it, so keep reading the origin into the store with
 * nobody to send to. Bounded: the store gives up past maximum_object_size,
 * and then so do we (read_response); the origin's read timeout still applies.
 */
static void detach(struct pd_client *c)
{
    c->result = pd_result_aborted(c->result);
    client_log_transaction(c); /* the client's transaction ends now */
    c->detached = 1;
    c->keep_alive = 0;
    pd_conn_disable(c->bev, EV_READ | EV_WRITE);
    evbuffer_drain(cout(c), evbuffer_get_length(cout(c)));
    pd_conn_enable(c->up, EV_READ);
}

/* ---- CONNECT tunnel ---------------------------------------------------- */

static void tunnel_pump(struct pd_client *c);

static void tunnel_start(struct pd_client *c)
{
    struct evbuffer *out = cout(c);
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    evbuffer_add(out, ok, sizeof ok - 1);
    c->out_bytes += sizeof ok - 1;
    client_head_queued(c);
    c->status = 200;
    c->result = PD_R_TCP_TUNNEL;
    c->state = C_TUNNEL;
    const pd_conf *conf = c->w->conf;
    pd_conn_set_timeouts(c->up, conf->read_timeout, conf->write_timeout);
    pd_conn_set_timeouts(c->bev, conf->read_timeout, conf->write_timeout);
    pd_conn_set_read_high(c->up, HIGH_WM);
    pd_conn_set_read_high(c->bev, HIGH_WM);
    pd_conn_enable(c->bev, EV_READ | EV_WRITE);
    pd_conn_enable(c->up, EV_READ | EV_WRITE);
    tunnel_pump(c);
}

/*
 * Move what each side sent to the other, pass a half-close on once the
 * other side's output is flushed, and end when both directions are done.
 * May free c.
 */
static void tunnel_pump(struct pd_client *c)
{
    struct evbuffer *cin = pd_conn_input(c->bev), *cout_ = cout(c);
    struct evbuffer *uin = pd_conn_input(c->up), *uout = pd_conn_output(c->up);
    size_t n = evbuffer_get_length(uin);
    if (n) {
        evbuffer_remove_buffer(uin, cout_, n);
        c->out_bytes += n;
        c->resp_bytes_in += n;
    }
    n = evbuffer_get_length(cin);
    c->in_bytes += n;
    c->up_out_bytes += n;
    evbuffer_add_buffer(uout, cin);
    /* backpressure: a side reads only while the other side's output is small */
    if (!c->cl_eof) {
        if (evbuffer_get_length(uout) > HIGH_WM)
            pd_conn_disable(c->bev, EV_READ);
        else
            pd_conn_enable(c->bev, EV_READ);
    }
    if (!c->up_eof) {
        if (evbuffer_get_length(cout_) > HIGH_WM)
            pd_conn_disable(c->up, EV_READ);
        else
            pd_conn_enable(c->up, EV_READ);
    }
    if (c->cl_eof && evbuffer_get_length(uout) == 0)
        shutdown(pd_conn_fd(c->up), SHUT_WR);
    if (c->up_eof && evbuffer_get_length(cout_) == 0)
        shutdown(pd_conn_fd(c->bev), SHUT_WR);
    if (c->cl_eof && c->up_eof && evbuffer_get_length(uout) == 0 &&
        evbuffer_get_length(cout_) == 0)
        client_free(c);
}

/* ---- origin callbacks --------------------------------------------------- */

static void up_read_cb(pd_conn *conn, void *arg)
{
    struct pd_client *c = arg;
    if (c->state == C_TUNNEL)
        tunnel_pump(c);
    else if (c->state == C_FORWARD)
        read_response(c);
}

static void up_write_cb(pd_conn *conn, void *arg)
{
    struct pd_client *c = arg;
    if (c->state == C_TUNNEL) {
        tunnel_pump(c);
        return;
    }
    /* request body backpressure: resume reading the client */
    if (c->state == C_FORWARD && !c->rb_done)
        pd_conn_enable(c->bev, EV_READ);
}

/* Can this request be sent again on a new connection after a pooled one failed? */
static int can_retry(struct pd_client *c)
{
    return c->up_from_pool && !c->retried && c->resp_bytes_in == 0 && c->req.body == PD_BODY_NONE;
}

static void up_event_cb(pd_conn *conn, short what, void *arg)
{
    struct pd_client *c = arg;
    if (what & PD_CONN_CONNECTED) {
        c->up_connected = 1;
        pd_stats_add(c->w->stats, PD_STAT_ORIGIN_CONNS_OPENED, 1);
        setup_upstream(c);
        int one = 1;
        setsockopt(pd_conn_fd(conn), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (c->req.method_id == PD_M_CONNECT)
            tunnel_start(c);
        else
            send_request(c);
        return;
    }
    if (c->state == C_TUNNEL) {
        if ((what & PD_CONN_EOF) && !(what & PD_CONN_ERROR)) {
            c->up_eof = 1;
            pd_conn_disable(c->up, EV_READ);
            tunnel_pump(c);
        } else {
            client_free(c);
        }
        return;
    }
    if (!c->up_connected) {
        /* connect failed or timed out: try the next address */
        if ((what & PD_CONN_TIMEOUT) && c->addr_i >= c->addrs.n) {
            client_up_release(c, 0);
            c->result = PD_R_TCP_MISS;
            client_fail_request(c, 504, "ERR_CONNECT_FAIL", "connection to the origin timed out", 1);
            return;
        }
        connect_next(c);
        return;
    }
    if (what & PD_CONN_TIMEOUT) {
        c->result = PD_R_TCP_MISS;
        if (c->rstate == R_HEAD)
            client_fail_request(c, 504, "ERR_READ_TIMEOUT", "the origin did not answer in time", 1);
        else
            client_close_after_flush(c); /* truncated */
        return;
    }
    /* EOF or error */
    if (c->rstate == R_HEAD) {
        if (can_retry(c)) {
            /* the origin closed an idle pooled connection as we reused it */
            c->retried = 1;
            client_up_release(c, 0);
            c->addr_i = 0;
            connect_next(c);
            return;
        }
        /* an origin may end a close-delimited head early; anything else is an error */
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, 502, "ERR_ZERO_SIZE_OBJECT", "the origin closed the connection without a complete response", 1);
        return;
    }
    if (c->rstate == R_BODY) {
        if (c->resp.body == PD_BODY_EOF && !(what & PD_CONN_ERROR)) {
            read_response(c); /* never ends the transaction for an EOF-delimited body */
            finish_response(c);
            return;
        }
        /* cut the response short: the client must not see it complete */
        c->result = PD_R_TCP_MISS_ABORTED;
        c->out_kind = PD_BODY_NONE;
        client_close_after_flush(c);
    }
}

/* ---- client callbacks --------------------------------------------------- */

static void client_read_cb(pd_conn *conn, void *arg)
{
    struct pd_client *c = arg;
    switch (c->state) {
    case C_HEAD:
        read_head(c);
        break;
    case C_RESOLVE:
    case C_CONNECT:
    case C_FORWARD:
        if (!c->rb_done)
            forward_request_body(c);
        else
            pd_conn_disable(conn, EV_READ);
        break;
    case C_TUNNEL:
        tunnel_pump(c);
        break;
    default:
        pd_conn_disable(conn, EV_READ);
        break;
    }
}

void client_write_cb(pd_conn *conn, void *arg)
{
    struct pd_client *c = arg;
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
        tunnel_pump(c);
        break;
    case C_CACHE:
        if (c->hr && !c->cwaiting)
            client_pump_cached(c);
        break;
    default:
        break;
    }
}

static void client_event_cb(pd_conn *conn, short what, void *arg)
{
    struct pd_client *c = arg;
    if (c->state == C_TUNNEL && (what & PD_CONN_EOF) && !(what & PD_CONN_ERROR)) {
        c->cl_eof = 1;
        pd_conn_disable(c->bev, EV_READ);
        tunnel_pump(c);
        return;
    }
    if (c->state == C_FORWARD && c->rstate == R_BODY && c->cw && c->up && c->rb_done && !c->detached) {
        detach(c);
        return;
    }
    if (c->state == C_FORWARD || c->state == C_CACHE)
        c->result = pd_result_aborted(c->result); /* the client left before the end */
    if (c->state == C_HEAD && !c->head_started)
        c->result = PD_R_UNSET; /* an idle keep-alive connection closed: nothing to log */
    if (c->state == C_HEAD && c->head_started && c->result == PD_R_UNSET) {
        gettimeofday(&c->t0, NULL);
        c->result = PD_R_NONE_NONE;
        c->status = 0;
    }
    client_free(c);
}

/* ---- accept, drain ------------------------------------------------------ */

int pd_client_accept(pd_worker *w, evutil_socket_t fd, const struct sockaddr *peer, int peerlen,
                     uint16_t local_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, peer, (size_t)peerlen < sizeof ss ? (size_t)peerlen : sizeof ss);
    char ip[INET6_ADDRSTRLEN];
    client_peer_ip(&ss, ip, sizeof ip);
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
    client_idle_wait(w, conn, &ss, local_port, 0, client_now_ms() + w->conf->client_lifetime);
    return 0;
}

/* The first bytes of a request arrived on a waiting connection. May free what it makes. */
void client_begin(pd_worker *w, pd_conn *conn, const struct sockaddr_storage *peer,
                  uint16_t local_port, unsigned nreq, int64_t life_at_ms)
{
    struct pd_client *c = calloc(1, sizeof(*c));
    if (c) {
        c->magic = CLIENT_MAGIC;
        c->w = w;
        c->peer = *peer;
        client_peer_ip(peer, c->peer_ip, sizeof c->peer_ip);
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
        client_peer_ip(peer, ip, sizeof ip);
        if (c)
            txn_free(c); /* frees conn too */
        else
            pd_conn_free(conn);
        client_conn_closed(w, ip);
        return;
    }
    pd_conn_set_read_high(c->bev, HIGH_WM);
    int64_t left = life_at_ms - client_now_ms();
    struct timeval lt = ms_tv(left > 0 ? left : 0);
    evtimer_add(c->life, &lt);
    client_start_head(c);
}

void pd_client_drain_all(pd_worker *w)
{
    struct pd_client *c, *next;
    client_idle_drain(w);
    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == C_HEAD && !c->head_started && c->nreq == 0)
            arm_timer(c, 1000); /* just accepted: its request may be on the way, give it 1 s */
        else if (c->state == C_HEAD && !c->head_started)
            client_free(c); /* idle keep-alive connection */
        else
            c->keep_alive = 0; /* closes after its current response */
    }
}

void pd_client_close_all(pd_worker *w)
{
    struct pd_client *c;
    while ((c = TAILQ_FIRST(&w->clients)))
        client_free(c);
    client_idle_close_all(w);
}
