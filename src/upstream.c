/*
 * upstream: a transaction's way to the origin and back. Resolve the origin
 * (dns.c), take a pooled keep-alive connection (upool.c) or open one (next
 * address on failure, connect_timeout each, forward_timeout in all), write
 * the rewritten request head and stream the body, read the response head,
 * write it to the client rewritten, and stream the body back, each direction
 * with backpressure; then give the connection back to the pool.
 *
 * Bodies framed by Content-Length (or by EOF) are moved between buffers
 * without copying; chunked bodies go through the strict parser and are
 * re-chunked (pd_http_chunk_*). A response that cannot be completed is never
 * completed on the client side: the connection is closed before the last
 * byte (or the last chunk) so that the client sees a truncated message.
 *
 * Memory: everything here belongs to the transaction (client_int.h); the
 * origin connection c->up is the transaction's until client_up_release gives
 * it to the pool or frees it.
 */
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
#include "proxyd/cache_store.h"
#include "proxyd/clock.h"
#include "proxyd/cluster.h"
#include "proxyd/dns.h"
#include "proxyd/errors.h"
#include "proxyd/headers.h"
#include "proxyd/http_msg.h"
#include "proxyd/icp.h"
#include "proxyd/log.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"
#include "proxyd/url.h"

#include "client_int.h"

static void read_response(struct pd_client *c);
static void connect_next(struct pd_client *c);
static void up_event_cb(pd_conn *conn, short what, void *arg);
static void up_read_cb(pd_conn *conn, void *arg);
static void up_write_cb(pd_conn *conn, void *arg);
static void dns_cb(const pd_dns_result *r, void *arg);
static void found(struct pd_client *c, int error);
static int pool_try(struct pd_client *c);
static void outgoing_source(struct pd_client *c, int family);
static void next_candidate(struct pd_client *c);

/* Squid's "hierarchical": a GET without Authorization */
static int hierarchical(const struct pd_client *c)
{
    return c->req.method_id == PD_M_GET && !pd_http_msg_find(&c->req, "Authorization");
}

/*
 * Peer selection (peer.c) for this miss: the candidates in c->cands, with
 * the peer ICP chose (pick >= 0, its code pick_hier) first, as Squid's
 * selectSomeNeighborReplies. Returns 0 when nothing is allowed (then the
 * request has been answered 503).
 */
static int select_candidates_icp(struct pd_client *c, int pick, const char *pick_hier)
{
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    int n = 0;
    if (pick >= 0)
        c->cands[n++] = (pd_peer_cand){ .peer = pick, .hier = pick_hier };
    pd_peer_cand rest[PD_PEER_MAX_CAND];
    int max = pd_peers_max_tries(c->w->peers);
    int nr = pd_peer_select(c->w->peers, &ar, hierarchical(c), pd_clock_ms() / 1000, rest,
                            PD_PEER_MAX_CAND);
    for (int i = 0; i < nr && n < PD_PEER_MAX_CAND && n < max; i++)
        if (rest[i].peer < 0 || rest[i].peer != pick)
            c->cands[n++] = rest[i];
    c->n_cands = n;
    c->cand_i = 0;
    if (c->n_cands == 0) {
        c->result = c->req.method_id == PD_M_CONNECT ? PD_R_TCP_TUNNEL : PD_R_TCP_MISS;
        client_fail_request(c, 503, "ERR_CANNOT_FORWARD",
                            "never_direct forbids going to the origin and no parent may be used",
                            1);
        return 0;
    }
    return 1;
}

static int select_candidates(struct pd_client *c)
{
    return select_candidates_icp(c, -1, NULL);
}

static int more_candidates(const struct pd_client *c)
{
    return c->cand_i < c->n_cands;
}

/* The next candidate: resolve the parent (or the origin). May free c. */
static void next_candidate(struct pd_client *c)
{
    client_up_release(c, 0);
    if (!more_candidates(c)) {
        c->origin_ip[0] = '\0'; /* nothing was reached: HIER_NONE/- as Squid logs it */
        c->hier = NULL;
        c->result = c->req.method_id == PD_M_CONNECT ? PD_R_TCP_TUNNEL : PD_R_TCP_MISS;
        client_fail_request(c, 503, "ERR_CANNOT_FORWARD",
                            "no parent (or origin) allowed for this request could be reached", 1);
        return;
    }
    const pd_peer_cand *k = &c->cands[c->cand_i++];
    if (k->peer >= 0 && pd_peer_full(c->w->peers, k->peer)) {
        /* filled up since it was selected (max-conn): not a failure, the next one */
        next_candidate(c);
        return;
    }
    c->via_peer = k->peer + 1;
    c->hier = k->hier;
    c->addr_i = 0;
    c->addrs.n = 0;
    c->origin_ip[0] = '\0';
    if (k->peer < 0 && c->intercepted) {
        /* direct for an intercepted request: its original destination */
        client_intercept_dst(c, &c->addrs);
        found(c, 0);
        return;
    }
    const char *host = k->peer >= 0 ? pd_peer_host(c->w->peers, k->peer) : c->url.host;
    pd_dns_req *q = pd_dns_resolve(c->w->dns, host, dns_cb, c); /* may call dns_cb, free c */
    if (q)
        c->dnsq = q;
}

/* The peers answered by ICP (icp.c), or the timeout came: choose and go. */
static void icp_done(void *arg, const pd_icp_outcome *o)
{
    struct pd_client *c = arg;
    c->icpq = NULL; /* the query is gone, whatever happens to c */
    c->ev_icp = *o;
    client_post(c, CEV_ICP);
}

void client_on_icp(struct pd_client *c)
{
    const pd_icp_outcome *o = &c->ev_icp;
    int pick = -1;
    const char *hier = NULL;
    if (o->hit >= 0) {
        pick = o->hit;
        hier = pd_peer_is_sibling(c->w->peers, pick) ? "SIBLING_HIT" : "PARENT_HIT";
    } else if (o->first_parent_miss >= 0) {
        pick = o->first_parent_miss;
        hier = "FIRST_PARENT_MISS";
    }
    if (select_candidates_icp(c, pick, hier))
        next_candidate(c);
}

/*
 * Where this miss goes: ask the ICP peers first when there are some for it
 * (Squid's peerSelectIcpPing), then select. May free c.
 */
static void route(struct pd_client *c)
{
    pd_engine *w = c->w;
    if (w->icp && !c->icp_asked) {
        c->icp_asked = 1;
        pd_acl_req ar;
        client_acl_req(c, &ar, NULL);
        /* a sibling is asked only for what it may answer from its cache:
         * not a reload (no-cache) nor our revalidation */
        int sibling_ok = !c->revalidating && !pd_cache_policy_cc(&c->req, "no-cache", NULL) &&
                         !pd_http_msg_has_token(&c->req, "Pragma", "no-cache");
        int peers[64];
        int n = pd_peer_icp_targets(w->peers, &ar, hierarchical(c), sibling_ok, peers, 64);
        char url[PD_URL_HOST_MAX + 8192];
        size_t ul = n ? pd_url_format(&c->url, url, sizeof url) : 0;
        if (n && ul < sizeof url &&
            (c->icpq = pd_icp_query_start(w->icp, url, ul, peers, n, icp_done, c)))
            return; /* icp_done goes on */
    }
    if (select_candidates(c))
        next_candidate(c);
}

/* The candidate being tried failed to connect: count it against the parent. */
static void candidate_failed(struct pd_client *c)
{
    if (c->via_peer)
        pd_peer_failed(c->w->peers, c->via_peer - 1, pd_clock_ms() / 1000);
}

/*
 * Did this request pass through us already? As Squid does, a Via member
 * carrying " <our hostname> (proxyd/VERSION)" (the leading space: no
 * super-domain matches) is a forwarding loop.
 */
static int via_loop(const struct pd_client *c)
{
    char me[sizeof c->w->via + 1];
    int n = snprintf(me, sizeof me, " %s", c->w->via);
    if (n <= 1 || (size_t)n >= sizeof me)
        return 0;
    for (const pd_header *f = pd_http_msg_find(&c->req, "Via"); f;
         f = pd_http_msg_find_next(&c->req, f))
        if (memmem(f->value.p, f->value.len, me, (size_t)n))
            return 1;
    return 0;
}

/* Fetch from the origin: resolve, connect, forward. May free c. */
void client_go_upstream(struct pd_client *c)
{
    pd_engine *w = c->w;
    /* a request a cluster member forwarded carries the member's Via, whose
     * name may be ours (one configuration for every pod): it is never sent
     * to a member again, so it cannot loop through the cluster */
    if (!c->from_cluster && via_loop(c)) {
        /* Squid's processMiss: a loop is refused rather than forwarded once more */
        c->result = PD_R_TCP_MISS;
        pd_log_warn("forwarding loop detected for %s (our Via is in the request)", c->url.host);
        client_fail_request(c, 403, "ERR_ACCESS_DENIED", "forwarding loop detected", 1);
        return;
    }
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
        if (client_forward_request_body(c) < 0)
            return;
        if (!c->rb_done && evbuffer_get_length(c->rbuf) < HIGH_WM)
            pd_conn_enable(c->bev, EV_READ);
    }
    /*
     * An intercepted request whose Host was verified against its original
     * destination goes by peer selection too (never_direct applies to it); one
     * that was not goes to the original destination only, as Squid's
     * ORIGINAL_DST rule (a forged Host must not steer it to a parent). When
     * http_access needs the destination, it is checked on the original one
     * first and the selection follows in dst_allowed.
     */
    if (c->via_member) {
        client_go_member(c); /* proxyd_cluster: the key's owner (client_cluster.c) */
        return;
    }
    if (c->intercepted &&
        (!c->host_verified || !pd_peers_active(w->peers) || c->acl_need_dst)) {
        /* the original destination, never what Host resolves to */
        client_intercept_dst(c, &c->addrs);
        found(c, 0);
        return;
    }
    if (pd_peers_active(w->peers) && !c->acl_need_dst) {
        route(c);
        return;
    }
    /* may call dns_cb (and free c) before it returns */
    pd_dns_req *q = pd_dns_resolve(w->dns, c->url.host, dns_cb, c);
    if (q)
        c->dnsq = q;
}

void client_go_member(struct pd_client *c)
{
    client_up_release(c, 0);
    c->state = C_CONNECT;
    c->via_member = 1;
    c->hier = "CARP";
    c->origin_ip[0] = '\0';
    c->addrs.n = 1;
    c->addrs.error = 0;
    c->addrs.addr[0] = c->member_addr;
    c->addrs.addrlen[0] = c->member_addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                : sizeof(struct sockaddr_in);
    c->addr_i = 0;
    outgoing_source(c, c->member_addr.ss_family);
    if (pool_try(c))
        return;
    connect_next(c);
}

/*
 * tcp_outgoing_address for an origin of this family: c->out_src, and the
 * pool key (connections from another source address are not this one's).
 */
static void outgoing_source(struct pd_client *c, int family)
{
    c->out_src = NULL;
    if (c->via_peer) /* one pool per parent: its connections carry any URL */
        snprintf(c->key, sizeof c->key, "peer %s", pd_peer_name(c->w->peers, c->via_peer - 1));
    else if (c->via_member) { /* one pool per cluster member, as per parent */
        char ip[INET6_ADDRSTRLEN];
        client_peer_ip((const struct sockaddr *)&c->member_addr, ip, sizeof ip);
        snprintf(c->key, sizeof c->key, "cluster %s:%u", ip,
                 ntohs(c->member_addr.ss_family == AF_INET6
                           ? ((const struct sockaddr_in6 *)&c->member_addr)->sin6_port
                           : ((const struct sockaddr_in *)&c->member_addr)->sin_port));
    } else
        pd_url_authority(&c->url, c->key, sizeof c->key);
    if (!pd_acl_has_outgoing_address(c->w->acl))
        return;
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    c->out_src = pd_acl_outgoing_address(c->w->acl, &ar, family);
    if (c->out_src) {
        char ip[INET6_ADDRSTRLEN];
        client_peer_ip((const struct sockaddr *)c->out_src, ip, sizeof ip);
        size_t n = strlen(c->key);
        snprintf(c->key + n, sizeof c->key - n, " from %s", ip);
    }
}
static void dst_allowed(struct pd_client *c);

/* The origin's (or the peer's) addresses are in c->addrs, or error says why
 * not. May free c. */
static void found(struct pd_client *c, int error)
{
    if (error && more_candidates(c)) {
        candidate_failed(c);
        next_candidate(c);
        return;
    }
    if (error && c->via_peer) {
        candidate_failed(c);
        c->result = PD_R_TCP_MISS;
        client_fail_request(c, 503, "ERR_CANNOT_FORWARD", "the parent's name could not be resolved",
                            1);
        return;
    }
    if (error) {
        c->result = PD_R_TCP_MISS;
        /* Squid answers every lookup failure 503 ERR_DNS_FAIL */
        client_fail_request(c, 503, "ERR_DNS_FAIL",
                            error == PD_DNS_ETIMEOUT ? "DNS lookup timed out"
                                                     : "the origin's name could not be resolved",
                            1);
        return;
    }
    uint16_t port = c->via_peer ? (uint16_t)pd_peer_port(c->w->peers, c->via_peer - 1) : c->url.port;
    for (int i = 0; i < c->addrs.n && (!c->intercepted || c->via_peer); i++) {
        struct sockaddr_storage *ss = &c->addrs.addr[i];
        if (ss->ss_family == AF_INET)
            ((struct sockaddr_in *)ss)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    }
    for (int i = 0; i < c->addrs.n; i++) {
        /* never proxyd's own listeners, whatever http_access says */
        if (pd_engine_own_listener(c->w, &c->addrs.addr[i])) {
            c->result = PD_R_TCP_DENIED;
            client_fail_request(c, 403, "ERR_ACCESS_DENIED",
                                "the destination is the proxy itself", 1);
            return;
        }
    }
    if (c->acl_need_dst) {
        c->acl_need_dst = 0;
        if (!client_access(c, dst_allowed))
            return; /* refused, or waiting for a helper (then dst_allowed) */
    }
    dst_allowed(c);
}

/* The destination is known and allowed: PURGE, or connect. May free c. */
static void dst_allowed(struct pd_client *c)
{
    if (c->req.method_id == PD_M_PURGE) {
        client_purge(c); /* allowed once dst was known: the cache's, never the origin's */
        return;
    }
    if (c->w->acl) {
        pd_acl_req ar;
        const char *deny_acl = NULL;
        client_acl_req(c, &ar, NULL);
        if (pd_acl_check_miss(c->w->acl, &ar, &deny_acl) != PD_ACL_ALLOW) {
            c->result = PD_R_TCP_MISS; /* as Squid logs a refused forward */
            client_fail_request(c, 403, "ERR_FORWARDING_DENIED",
                                "miss_access does not allow this request to the origin", 1);
            return;
        }
    }
    if (pd_peers_active(c->w->peers) && !c->n_cands && (!c->intercepted || c->host_verified)) {
        /* http_access needed the origin's address first; now choose where to go */
        route(c);
        return;
    }
    c->addr_i = 0;
    c->state = C_CONNECT;
    outgoing_source(c, c->addrs.n ? c->addrs.addr[0].ss_family : AF_INET);
    if (c->req.method_id != PD_M_CONNECT && pool_try(c))
        return;
    connect_next(c);
}

static void dns_cb(const pd_dns_result *r, void *arg)
{
    struct pd_client *c = arg;
    c->dnsq = NULL;
    c->ev_dns_error = r->error;
    if (!r->error)
        c->addrs = *r;
    client_post(c, CEV_DNS);
}

void client_on_dns(struct pd_client *c)
{
    found(c, c->ev_dns_error);
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

/* "Via: <the message's version> <this proxy>" (RFC 9110 7.6.3) */
static void head_via(pd_head *h, const pd_http_msg *m, const char *via)
{
    pd_head_str(h, "Via: ");
    pd_head_int(h, m->version_major);
    pd_head_add(h, ".", 1);
    pd_head_int(h, m->version_minor);
    pd_head_add(h, " ", 1);
    pd_head_str(h, via);
    pd_head_add(h, "\r\n", 2);
}

/*
 * A field on its way, as the *_header_access rules say (ar NULL: no rules).
 * Returns 0 when it was dropped.
 */
static int put_field(pd_head *h, const pd_hdr_rules *hr, enum pd_hdr_dir d,
                     const pd_acl_req *ar, pd_str name, pd_str value)
{
    pd_str rv;
    switch (ar ? pd_hdr_field(hr, d, name, ar, &rv) : PD_HDR_KEEP) {
    case PD_HDR_KEEP:
        pd_head_field(h, name, value);
        return 1;
    case PD_HDR_REPLACE:
        pd_head_field(h, name, rv);
        return 1;
    case PD_HDR_DROP:
        break;
    }
    return 0;
}

void client_hdr_vars(struct pd_client *c, enum pd_hdr_dir d, pd_hdr_vars *v, char *local_ip,
                     size_t n)
{
    struct sockaddr_storage la;
    socklen_t ll = sizeof la;
    local_ip[0] = '\0';
    int fd = c->bev ? pd_conn_fd(c->bev) : -1;
    if (pd_hdr_uses_local_ip(c->w->hdr, d) && fd >= 0 &&
        getsockname(fd, (struct sockaddr *)&la, &ll) == 0)
        client_peer_ip((const struct sockaddr *)&la, local_ip, n);
    const struct sockaddr *s = (const struct sockaddr *)&c->src;
    *v = (pd_hdr_vars){
        .client_ip = c->src_ip,
        .client_port = ntohs(s->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)s)->sin6_port
                                                      : ((const struct sockaddr_in *)s)->sin_port),
        .local_ip = local_ip[0] ? local_ip : NULL,
        .local_port = c->local_port,
        .url = c->have_url ? &c->url : NULL,
        .method = c->req.method,
    };
}

/* Via as the header rules say: our own line, their replacement, or none. */
static void via_field(pd_head *h, const pd_hdr_rules *hr, enum pd_hdr_dir d,
                      const pd_acl_req *ar, const pd_http_msg *m, const char *via)
{
    pd_str rv;
    switch (ar ? pd_hdr_field(hr, d, PD_STR("Via"), ar, &rv) : PD_HDR_KEEP) {
    case PD_HDR_KEEP:
        head_via(h, m, via);
        break;
    case PD_HDR_REPLACE:
        pd_head_field(h, PD_STR("Via"), rv);
        break;
    case PD_HDR_DROP:
        break;
    }
}

/* The request head as the origin must see it. */
static void write_request_head(struct pd_client *c, struct evbuffer *out)
{
    pd_engine *w = c->w;
    const pd_http_msg *m = &c->req;
    const pd_conf *conf = w->conf;
    pd_head hb, *h = &hb;
    /* request_header_access and _add: on the way to the origin only */
    pd_acl_req arb, *ar = NULL;
    if (pd_hdr_active(w->hdr, PD_HDR_REQUEST)) {
        client_acl_req(c, &arb, NULL);
        ar = &arb;
    }
    pd_str xff_rv = { NULL, 0 };
    enum pd_hdr_action xff_act =
        ar ? pd_hdr_field(w->hdr, PD_HDR_REQUEST, PD_STR("X-Forwarded-For"), ar, &xff_rv)
           : PD_HDR_KEEP;
    pd_head_begin(h, out);
    pd_head_add(h, m->method.p, m->method.len);
    pd_head_add(h, " ", 1);
    int origin_peer = c->via_peer && pd_peer_origin_server(w->peers, c->via_peer - 1);
    if ((c->via_peer && !origin_peer) || c->via_member) {
        /* to a parent as to any proxy: the absolute form (RFC 9112 3.2.2); to an
         * originserver peer, as to the origin, the origin-form with Host */
        char abs[PD_URL_HOST_MAX + 8192];
        size_t al = pd_url_format(&c->url, abs, sizeof abs);
        pd_head_add(h, abs, al < sizeof abs ? al : sizeof abs - 1);
    } else {
        pd_head_add(h, c->url.path, c->url.path_len);
    }
    pd_head_add(h, " HTTP/1.1\r\nHost: ", 17);
    char host[PD_URL_HOST_MAX + 16];
    if (c->url.port_explicit && c->url.port != 80)
        pd_url_authority(&c->url, host, sizeof host);
    else if (c->url.host_ip == 6)
        snprintf(host, sizeof host, "[%s]", c->url.host);
    else
        snprintf(host, sizeof host, "%s", c->url.host);
    pd_head_str(h, host);
    pd_head_add(h, "\r\n", 2);

    int xff_done = 0;
    for (size_t i = 0; i < m->n_headers; i++) {
        const pd_header *f = &m->headers[i];
        if (not_forwarded(m, f->name) || pd_str_eq_ci(f->name, "Host"))
            continue;
        if (pd_str_eq_ci(f->name, "Content-Length") && m->body != PD_BODY_LENGTH)
            continue;
        if (c->revalidating && (pd_str_eq_ci(f->name, "If-None-Match") ||
                                pd_str_eq_ci(f->name, "If-Modified-Since") ||
                                pd_str_eq_ci(f->name, "If-Range") || pd_str_eq_ci(f->name, "Range")))
            continue; /* we validate our stored copy; the client's conditions are ours to answer */
        if (pd_str_eq_ci(f->name, "X-Forwarded-For")) {
            if (xff_act == PD_HDR_DROP || (xff_act == PD_HDR_REPLACE && xff_done))
                continue;
            if (xff_act == PD_HDR_REPLACE) {
                pd_head_field(h, f->name, xff_rv);
                xff_done = 1;
            } else if (conf->forwarded_for == PD_FWD_TRANSPARENT) {
                pd_head_field(h, f->name, f->value);
            } else if ((conf->forwarded_for == PD_FWD_ON || conf->forwarded_for == PD_FWD_OFF) &&
                       !xff_done) {
                /* every X-Forwarded-For line, joined, then this hop */
                pd_head_str(h, "X-Forwarded-For: ");
                for (const pd_header *x = f; x; x = pd_http_msg_find_next(m, x)) {
                    pd_head_add(h, x->value.p, x->value.len);
                    pd_head_add(h, ", ", 2);
                }
                pd_head_str(h, conf->forwarded_for == PD_FWD_ON ? c->peer_ip : "unknown");
                pd_head_add(h, "\r\n", 2);
                xff_done = 1;
            }
            continue;
        }
        /* the framing is proxyd's to keep right whatever the rules say */
        put_field(h, w->hdr, PD_HDR_REQUEST,
                  pd_str_eq_ci(f->name, "Content-Length") ? NULL : ar, f->name, f->value);
    }
    if (!xff_done && (conf->forwarded_for == PD_FWD_ON || conf->forwarded_for == PD_FWD_OFF ||
                      conf->forwarded_for == PD_FWD_TRUNCATE))
        put_field(h, w->hdr, PD_HDR_REQUEST, ar, PD_STR("X-Forwarded-For"),
                  pd_str_z(conf->forwarded_for == PD_FWD_OFF ? "unknown" : c->peer_ip));
    if (conf->via)
        via_field(h, w->hdr, PD_HDR_REQUEST, ar, m, w->via);
    if (ar) {
        char lip[INET6_ADDRSTRLEN];
        pd_hdr_vars hv;
        client_hdr_vars(c, PD_HDR_REQUEST, &hv, lip, sizeof lip);
        pd_hdr_add_fields(w->hdr, PD_HDR_REQUEST, ar, &hv, h);
    }
    if (c->revalidating) {
        const pd_header *etag = pd_http_msg_find(&c->cm.head, "ETag");
        const pd_header *lm = pd_http_msg_find(&c->cm.head, "Last-Modified");
        if (etag)
            pd_head_field(h, PD_STR("If-None-Match"), etag->value);
        if (lm)
            pd_head_field(h, PD_STR("If-Modified-Since"), lm->value);
    }
    if (c->via_peer && pd_peer_is_sibling(w->peers, c->via_peer - 1) &&
        !pd_peer_allow_miss(w->peers, c->via_peer - 1))
        pd_head_add(h, "Cache-Control: only-if-cached\r\n", 31); /* a sibling never fetches */
    if (c->via_member) {
        /* proxyd_cluster: the owner serves it and never forwards it again; the
         * field is named in Connection, so the owner does not pass it on */
        pd_head_str(h, PD_CLUSTER_HEADER ": ");
        pd_head_str(h, pd_cluster_name(w->cluster));
        pd_head_str(h, "\r\nConnection: " PD_CLUSTER_HEADER "\r\n");
        /* the members share one configuration: the owner checks the client's
         * credentials as this proxy did (to a member only, as login=PASS would) */
        const pd_header *pa = pd_http_msg_find(m, "Proxy-Authorization");
        if (pa)
            pd_head_field(h, pa->name, pa->value);
    }
    if (c->via_peer && pd_peer_auth(w->peers, c->via_peer - 1) &&
        !(origin_peer && pd_http_msg_find(m, "Authorization")))
        /* login= to an origin server is its Authorization, unless the client's
         * own went on above (as Squid's httpFixupAuthentication) */
        pd_head_field(h, pd_str_z(origin_peer ? "Authorization" : "Proxy-Authorization"),
                      pd_str_z(pd_peer_auth(w->peers, c->via_peer - 1)));
    if (m->body == PD_BODY_CHUNKED)
        pd_head_add(h, "Transfer-Encoding: chunked\r\n", 28);
    if (!conf->server_persistent_connections)
        pd_head_add(h, "Connection: close\r\n", 19);
    pd_head_add(h, "\r\n", 2);
    pd_head_end(h);
}

static void setup_upstream(struct pd_client *c)
{
    const pd_conf *conf = c->w->conf;
    pd_conn_setcb(c->up, up_read_cb, up_write_cb, up_event_cb, c);
    pd_conn_set_write_low(c->up, LOW_WM);
    pd_conn_set_read_high(c->up, HIGH_WM);
    int64_t ct = c->via_peer     ? pd_peer_connect_timeout(c->w->peers, c->via_peer - 1)
                 : c->via_member ? pd_cluster_connect_timeout(c->w->cluster)
                                 : 0;
    if (!ct)
        ct = conf->connect_timeout;
    if (c->up_connected)
        pd_conn_set_timeouts(c->up, conf->read_timeout, conf->write_timeout);
    else
        pd_conn_set_timeouts(c->up, ct, ct);
}

/* Queue the request head (and any buffered body) to c->up; start reading. May free c. */
static void send_request(struct pd_client *c)
{
    c->state = C_FORWARD;
    pd_stats_add(c->w->stats, PD_STAT_ORIGIN_REQUESTS, 1);
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
        client_forward_request_body(c);
    }
}

/* Could the request go again on a new connection (no body to replay, not resent yet)? */
static int resendable(const struct pd_client *c)
{
    return !c->retried && c->req.body == PD_BODY_NONE;
}

/* max-conn: c->up is a connection to the peer tried now (released in client_up_release). */
static void hold_peer(struct pd_client *c)
{
    if (c->via_peer && !c->peer_held) {
        pd_peer_conn_opened(c->w->peers, c->via_peer - 1);
        c->peer_held = c->via_peer;
    }
}

static int pool_try(struct pd_client *c)
{
    if (!c->up_t0)
        c->up_t0 = pd_clock_ms(); /* %<tt starts with the first connection asked for */
    /* a request that can be sent again on a new connection needs no liveness peek */
    pd_conn *up = pd_upool_take(c->w->upool, c->key, !resendable(c));
    if (!up)
        return 0;
    c->up = up;
    hold_peer(c);
    pd_stats_add(c->w->stats, PD_STAT_ORIGIN_CONNS_REUSED, 1);
    c->up_from_pool = 1;
    c->up_connected = 1;
    const struct sockaddr *sa = pd_conn_peer(up);
    if (sa)
        client_peer_ip(sa, c->origin_ip, sizeof c->origin_ip);
    setup_upstream(c);
    send_request(c);
    return 1;
}

/* Open a new connection to the next address of the origin. May free c. */
static void connect_next(struct pd_client *c)
{
    client_up_release(c, 0);
    if (!c->up_t0)
        c->up_t0 = pd_clock_ms();
    if (c->addr_i >= c->addrs.n && c->via_member) {
        client_cluster_failed(c); /* the next owner, or served here */
        return;
    }
    if (c->addr_i >= c->addrs.n && (more_candidates(c) || c->via_peer)) {
        /* every address of this candidate failed: the next parent (or the origin) */
        candidate_failed(c);
        next_candidate(c);
        return;
    }
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
    hold_peer(c);
    client_peer_ip((const struct sockaddr *)ss, c->origin_ip, sizeof c->origin_ip);
    setup_upstream(c);
    pd_conn_enable(c->up, EV_READ | EV_WRITE);
    outgoing_source(c, ss->ss_family);
    /* the request is sent once connected, so that a failed attempt loses no body bytes */
    if (pd_conn_connect_from(c->up, (struct sockaddr *)ss, sl, c->out_src) < 0)
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
int client_forward_request_body(struct pd_client *c)
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
    pd_engine *w = c->w;
    const pd_http_msg *r = &c->resp;
    int client11 = c->req.version_major == 1 && c->req.version_minor >= 1;

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

    pd_head hb, *h = &hb;
    pd_acl_req arb, *ar = NULL;
    if (pd_hdr_active(w->hdr, PD_HDR_REPLY)) {
        client_acl_req(c, &arb, r);
        ar = &arb;
    }
    client_begin_response_head(c, h, r->status, r->reason);
    for (size_t i = 0; i < r->n_headers; i++) {
        const pd_header *f = &r->headers[i];
        if (not_forwarded(r, f->name))
            continue;
        if (pd_str_eq_ci(f->name, "Content-Length") &&
            (c->out_kind == PD_BODY_CHUNKED || c->out_kind == PD_BODY_EOF))
            continue;
        /* the framing is proxyd's to keep right whatever the rules say */
        if (pd_str_eq_ci(f->name, "Content-Length"))
            pd_head_field(h, f->name, f->value);
        else
            put_field(h, w->hdr, PD_HDR_REPLY, ar, f->name, f->value);
    }
    if (w->conf->via)
        via_field(h, w->hdr, PD_HDR_REPLY, ar, r, w->via);
    if (ar) {
        char lip[INET6_ADDRSTRLEN];
        pd_hdr_vars hv;
        client_hdr_vars(c, PD_HDR_REPLY, &hv, lip, sizeof lip);
        pd_hdr_add_fields(w->hdr, PD_HDR_REPLY, ar, &hv, h);
    }
    if (w->conf->x_cache_header) {
        pd_head_str(h, "X-Cache: MISS from ");
        pd_head_str(h, w->hostname);
        pd_head_add(h, "\r\n", 2);
    }
    if (c->out_kind == PD_BODY_CHUNKED)
        pd_head_add(h, "Transfer-Encoding: chunked\r\n", 28);
    client_end_response_head(c, h, r->status);
}

int client_reply_check(struct pd_client *c, const pd_http_msg *r, uint64_t length)
{
    c->body_max = UINT64_MAX;
    c->body_out = 0;
    /* as Squid, a 304 and a 416 always pass: they carry no representation */
    if (!c->w->acl || r->status == 304 || r->status == 416)
        return 0;
    pd_acl_req ar;
    const char *deny_acl = NULL;
    client_acl_req(c, &ar, r);
    if (pd_acl_check_reply(c->w->acl, &ar, &deny_acl) != PD_ACL_ALLOW) {
        client_up_release(c, 0);
        c->result = PD_R_TCP_DENIED_REPLY;
        client_fail_request(c, 403, "ERR_ACCESS_DENIED", "http_reply_access denies this reply",
                            1);
        return -1;
    }
    c->body_max = pd_acl_reply_body_max(c->w->acl, &ar);
    if (length == UINT64_MAX && r->body == PD_BODY_LENGTH)
        length = r->content_length;
    if (length != UINT64_MAX && length > c->body_max) {
        /* refused before a byte of it goes out (Squid: ERR_TOO_BIG, 403) */
        client_up_release(c, 0);
        c->result = PD_R_TCP_DENIED_REPLY;
        client_fail_request(c, 403, "ERR_TOO_BIG", "the reply is larger than reply_body_max_size",
                            1);
        return -1;
    }
    return 0;
}

/*
 * n more body bytes would pass reply_body_max_size: how many may still go
 * (all n when within it).
 */
static size_t body_room(struct pd_client *c, size_t n)
{
    if (c->body_max == UINT64_MAX)
        return n;
    uint64_t left = c->body_max > c->body_out ? c->body_max - c->body_out : 0;
    return n > left ? (size_t)left : n;
}

/* The body grew past reply_body_max_size: cut it, close the connection. May free c. */
static void body_too_big(struct pd_client *c)
{
    c->result = pd_result_aborted(c->result);
    c->out_kind = PD_BODY_NONE; /* no last chunk: the client sees a truncated reply */
    client_up_release(c, 0);
    client_close_after_flush(c);
}

/* The response reached its end. May free c. */
static void finish_response(struct pd_client *c)
{
    struct evbuffer *out = cout(c);
    if (c->out_kind == PD_BODY_CHUNKED)
        c->out_bytes += pd_http_chunk_last(out);
    c->rstate = R_DONE;
    if (c->cw) {
        if (pd_cache_store_commit(c->w->store, c->cw) == 0 && c->bg)
            c->bg_outcome = BG_REPLACED;
        c->cw = NULL;
    }
    client_invalidate_after(c);
    int reusable = c->resp.keep_alive && c->resp.body != PD_BODY_EOF && c->rb_done;
    client_up_release(c, reusable);
    client_txn_done(c);
}

static void count_out(struct pd_client *c, size_t n)
{
    c->out_bytes += n;
}

static int chunk_out_client(void *arg, const char *data, size_t len)
{
    struct pd_client *c = arg;
    struct evbuffer *out = cout(c);
    size_t room = body_room(c, len);
    c->body_out += len;
    if (room < len) {
        len = room; /* what is past reply_body_max_size never goes out */
        if (!len)
            return 0;
    }
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
                /* with its fields (the Link lines of a 103), less the
                 * hop-by-hop ones and a Content-Length a 1xx cannot have
                 * (RFC 9110 15.2, 7.6.1, 8.6); never stored */
                pd_head hb, *h = &hb;
                pd_head_begin(h, out);
                pd_head_add(h, "HTTP/1.1 ", 9);
                pd_head_uint(h, (uint64_t)c->resp.status);
                pd_head_add(h, " ", 1);
                pd_head_add(h, c->resp.reason.p, c->resp.reason.len);
                pd_head_add(h, "\r\n", 2);
                for (size_t i = 0; i < c->resp.n_headers; i++) {
                    const pd_header *f = &c->resp.headers[i];
                    if (!not_forwarded(&c->resp, f->name) && !pd_str_eq_ci(f->name, "Content-Length"))
                        pd_head_field(h, f->name, f->value);
                }
                pd_head_add(h, "\r\n", 2);
                count_out(c, pd_head_end(h));
            }
            pd_http_parser_next(c->respp, &c->resp, c->req.method_id);
            continue;
        }
        if (c->revalidating) {
            int s5 = c->resp.status;
            int validators = pd_http_msg_find(&c->cm.head, "ETag") || pd_http_msg_find(&c->cm.head, "Last-Modified");
            int failed = s5 == 500 || s5 == 502 || s5 == 503 || s5 == 504;
            if (failed && c->bg) {
                /* a background revalidation the origin failed: the stale
                 * object stays, as if it had not answered */
                c->status = s5;
                client_close_after_flush(c);
                return;
            }
            if (failed && client_cache_serve_stale(c))
                return;
            if (client_revalidated(c))
                return;
            /* modified (or an error): the stored copy is replaced by what comes now */
            pd_cache_meta_free(&c->cm);
            c->have_cm = 0;
            pd_cache_store_release(c->w->store, c->cref);
            c->cref = NULL;
            c->revalidating = 0;
            c->stale_ok = 0;
            /* a copy without validators was only kept to fall back on: a miss */
            c->miss_result = c->bg ? PD_R_TCP_ASYNC_MISS
                             : failed ? PD_R_TCP_REFRESH_FAIL_ERR
                             : validators ? PD_R_TCP_REFRESH_MODIFIED : PD_R_TCP_MISS;
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
        if (c->via_peer && pd_peer_is_sibling(c->w->peers, c->via_peer - 1) &&
            (c->resp.status == 504 || c->resp.status == 502) && more_candidates(c) &&
            c->req.body == PD_BODY_NONE) {
            /* the sibling no longer holds it (only-if-cached): the next candidate,
             * as Squid's FwdState reforwards a 502/504 */
            next_candidate(c);
            return;
        }
        c->result = c->miss_result;
        if (client_reply_check(c, &c->resp, UINT64_MAX) < 0)
            return;
        if (c->cw)
            client_store_start(c);
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
        size_t room = body_room(c, n);
        if (room < n) {
            /* pass what fits, then cut */
            if (room) {
                if (c->out_kind == PD_BODY_CHUNKED)
                    count_out(c, pd_http_chunk_head(out, room));
                evbuffer_remove_buffer(in, out, room);
                count_out(c, room);
                if (c->out_kind == PD_BODY_CHUNKED)
                    count_out(c, pd_http_chunk_tail(out));
            }
            c->body_out += n;
            body_too_big(c);
            return;
        }
        c->body_out += n;
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
            if (c->body_out > c->body_max) {
                body_too_big(c);
                return;
            }
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
        /* the store gave up on the object (too large, no room): nothing left to
         * fill. The free waits for the driver to return (client_drive.c). */
        if (!c->cw)
            client_free(c);
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
void client_detach(struct pd_client *c)
{
    c->result = pd_result_aborted(c->result);
    client_log_transaction(c); /* the client's transaction ends now */
    c->detached = 1;
    c->keep_alive = 0;
    pd_conn_disable(c->bev, EV_READ | EV_WRITE);
    evbuffer_drain(cout(c), evbuffer_get_length(cout(c)));
    pd_conn_enable(c->up, EV_READ);
}

/* ---- origin callbacks --------------------------------------------------- */

void client_on_up_read(struct pd_client *c)
{
    if (c->state == C_TUNNEL)
        client_tunnel_pump(c);
    else if (c->state == C_FORWARD)
        read_response(c);
}

static void up_read_cb(pd_conn *conn, void *arg)
{
    client_post_up(arg, conn, CEV_UP_READ, 0);
}

void client_on_up_write(struct pd_client *c)
{
    if (c->state == C_TUNNEL) {
        client_tunnel_pump(c);
        return;
    }
    /* request body backpressure: resume reading the client */
    if (c->state == C_FORWARD && !c->rb_done)
        pd_conn_enable(c->bev, EV_READ);
}

static void up_write_cb(pd_conn *conn, void *arg)
{
    client_post_up(arg, conn, CEV_UP_WRITE, 0);
}

/* Can this request be sent again on a new connection after a pooled one failed? */
static int can_retry(struct pd_client *c)
{
    return c->up_from_pool && c->resp_bytes_in == 0 && resendable(c);
}

void client_on_up_conn(struct pd_client *c)
{
    short what = c->ev_up_what;
    pd_conn *conn = c->up;
    if (what == PD_CONN_HUP)
        return; /* the origin's EOF is read when reading resumes (it may end the body) */
    if (what & PD_CONN_CONNECTED) {
        c->up_connected = 1;
        if (c->via_peer)
            pd_peer_connected(c->w->peers, c->via_peer - 1);
        if (c->via_member)
            pd_cluster_connected(c->w->cluster, &c->member_addr);
        pd_stats_add(c->w->stats, PD_STAT_ORIGIN_CONNS_OPENED, 1);
        setup_upstream(c);
        int one = 1;
        setsockopt(pd_conn_fd(conn), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* an originserver peer is the far end itself: the tunnel goes straight
         * to it, no CONNECT (as Squid's tunnel to such a peer) */
        if (c->req.method_id == PD_M_CONNECT && c->via_peer &&
            !pd_peer_origin_server(c->w->peers, c->via_peer - 1))
            client_tunnel_via_peer(c);
        else if (c->req.method_id == PD_M_CONNECT)
            client_tunnel_start(c);
        else
            send_request(c);
        return;
    }
    if (c->state == C_TUNNEL) {
        if ((what & PD_CONN_EOF) && !(what & PD_CONN_ERROR)) {
            c->up_eof = 1;
            pd_conn_disable(c->up, EV_READ);
            client_tunnel_pump(c);
        } else {
            client_free(c);
        }
        return;
    }
    if (!c->up_connected) {
        /* connect failed or timed out: try the next address */
        if ((what & PD_CONN_TIMEOUT) && c->addr_i >= c->addrs.n && !more_candidates(c) &&
            !c->via_member) {
            candidate_failed(c);
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
            if (!c->closing)
                finish_response(c);
            return;
        }
        /* cut the response short: the client must not see it complete */
        c->result = PD_R_TCP_MISS_ABORTED;
        c->out_kind = PD_BODY_NONE;
        client_close_after_flush(c);
    }
}

static void up_event_cb(pd_conn *conn, short what, void *arg)
{
    client_post_up(arg, conn, CEV_UP_CONN, what);
}
