/*
 * client_intercept: requests on an `http_port ... intercept` port, which a NAT
 * rule (iptables REDIRECT or DNAT) turned towards proxyd. The client believes
 * it talks to the origin, so it sends origin-form requests ("GET /path" with
 * Host). As Squid does by default (client_dst_passthru on, host_verify_strict
 * off):
 *
 *   - the destination is always the connection's original destination
 *     (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST), never what Host says: a client
 *     cannot use the port to reach another server than the one it connected
 *     to, and proxyd's DNS is never what decides where intercepted traffic goes;
 *   - the URL is made from Host (or from the original destination when there is
 *     no Host), and Host is verified against the original destination: an IP
 *     literal equal to it, or a name whose addresses include it, with the same
 *     port. Only a verified request may be answered from the cache or stored:
 *     an unverified one (a forged Host) could otherwise poison the cache for
 *     every client with the response of another server.
 *
 * An absolute-form request on an intercept port is taken the same way (its
 * URL, the original destination). A connection that reached the port without
 * NAT (its original destination is proxyd itself) is refused, except for the
 * cache manager's origin-form pages.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "proxyd/dns.h"
#include "proxyd/log.h"
#include "proxyd/engine.h"
#include "proxyd/http_msg.h"

#include "client_int.h"

/* <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, without
 * their clashes with the libc headers */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* Port and address of a (v4 or v6) sockaddr; 0 port for another family. */
static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return 0;
}

static int wildcard(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return a->ss_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/*
 * Did the connection arrive on an intercept listener? Only the listeners of
 * its local port are asked; when they differ in mode the local address tells
 * which one took it (an exact address before a wildcard).
 */
static int on_intercept_port(struct pd_client *c)
{
    const pd_engine *w = c->w;
    int any = 0, all = 1;
    for (int i = 0; i < w->n_own; i++) {
        if (port_of(&w->own[i]) != c->local_port)
            continue;
        any |= w->own_intercept[i];
        all &= w->own_intercept[i];
    }
    if (!any || all)
        return any;
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    if (getsockname(pd_conn_fd(c->bev), (struct sockaddr *)&local, &len) < 0)
        return 0;
    int mode = 0;
    for (int i = 0; i < w->n_own; i++) {
        if (port_of(&w->own[i]) != c->local_port)
            continue;
        if (same_ip(&w->own[i], &local))
            return w->own_intercept[i];
        if (wildcard(&w->own[i]))
            mode = w->own_intercept[i];
    }
    return mode;
}

/* The connection's destination before NAT; its local address when there was none. */
static int original_dst(struct pd_client *c)
{
    int fd = pd_conn_fd(c->bev);
    socklen_t len = sizeof c->orig_dst;
    memset(&c->orig_dst, 0, sizeof c->orig_dst);
    if (getsockname(fd, (struct sockaddr *)&c->orig_dst, &len) < 0)
        return -1;
    struct sockaddr_storage nat;
    socklen_t nl = sizeof nat;
    memset(&nat, 0, sizeof nat);
    int rc = c->orig_dst.ss_family == AF_INET6
                 ? getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &nat, &nl)
                 : getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &nat, &nl);
    if (rc == 0 && (nat.ss_family == AF_INET || nat.ss_family == AF_INET6)) {
        c->orig_dst = nat;
        len = nl;
    }
    c->orig_dst_len = len;
    return 0;
}

int client_intercept_url(struct pd_client *c)
{
    pd_http_msg *m = &c->req;
    if (!on_intercept_port(c))
        return 0;
    if (original_dst(c) < 0) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 500, "ERR_INVALID_REQ", "no original destination", 0);
        return -1;
    }
    int origin_form = m->target.len && m->target.p[0] == '/';
    if (pd_engine_own_listener(c->w, &c->orig_dst)) {
        /* no NAT: a client that connected to the port itself */
        if (origin_form && client_is_mgr_path(m->target.p, m->target.len))
            return 0;
        c->result = PD_R_TCP_DENIED;
        client_fail_request(c, 403, "ERR_ACCESS_DENIED",
                            "an intercept port takes only NAT-redirected connections", 0);
        return -1;
    }
    if (m->method_id == PD_M_CONNECT) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_REQ", "CONNECT on an intercept port", 0);
        return -1;
    }
    c->intercepted = 1;
    char ip[INET6_ADDRSTRLEN];
    client_peer_ip((const struct sockaddr *)&c->orig_dst, ip, sizeof ip);
    uint16_t port = port_of(&c->orig_dst);
    const pd_header *h = pd_http_msg_find(m, "Host");
    char u[PD_URL_HOST_MAX + 64 + 8192];
    int n;
    if (!origin_form)
        n = snprintf(u, sizeof u, "%.*s", (int)m->target.len, m->target.p);
    else if (h && h->value.len && !memchr(h->value.p, '/', h->value.len) &&
             !memchr(h->value.p, '@', h->value.len))
        n = snprintf(u, sizeof u, "http://%.*s%.*s", (int)h->value.len, h->value.p,
                     (int)m->target.len, m->target.p);
    else
        n = snprintf(u, sizeof u, strchr(ip, ':') ? "http://[%s]:%u%.*s" : "http://%s:%u%.*s", ip,
                     (unsigned)port, (int)m->target.len, m->target.p);
    const char *why = "URL too long";
    if (n < 0 || (size_t)n >= sizeof u ||
        pd_url_parse(u, (size_t)n, PD_URL_ABSOLUTE, &c->url, &why) < 0) {
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 400, "ERR_INVALID_URL", why, 0);
        return -1;
    }
    c->have_url = 1;
    return 1;
}

/* Host verified when addrs (a lookup of the URL's host) hold the original destination. */
static int dst_among(const struct pd_client *c, const pd_dns_result *r)
{
    for (int i = 0; i < r->n; i++)
        if (same_ip(&r->addr[i], &c->orig_dst))
            return 1;
    return 0;
}

/*
 * Squid's "SECURITY ALERT: Host header forgery detected": at most one line a
 * second per worker, with the count of those left out, so that a client
 * cannot flood the log.
 */
static void forgery_warning(const struct pd_client *c)
{
    static time_t last;
    static unsigned skipped;
    time_t now = time(NULL);
    if (now == last) {
        skipped++;
        return;
    }
    last = now;
    char ip[INET6_ADDRSTRLEN];
    client_peer_ip((const struct sockaddr *)&c->orig_dst, ip, sizeof ip);
    pd_log_warn("intercepted request from %s: Host %s:%u does not name the original "
                "destination %s:%u; sent there, not cached (%u more not logged)",
                c->peer_ip, c->url.host, (unsigned)c->url.port, ip,
                (unsigned)port_of(&c->orig_dst), skipped);
    skipped = 0;
}

static void verified(struct pd_client *c, int ok)
{
    c->host_verified = ok;
    if (!ok)
        forgery_warning(c);
    client_route(c);
}

static void verify_cb(const pd_dns_result *r, void *arg)
{
    struct pd_client *c = arg;
    c->dnsq = NULL;
    c->ev_verified = !r->error && dst_among(c, r);
    client_post(c, CEV_VERIFY);
}

void client_on_verify(struct pd_client *c)
{
    verified(c, c->ev_verified);
}

void client_intercept_verify(struct pd_client *c)
{
    c->host_verified = 0;
    if (c->url.port != port_of(&c->orig_dst)) {
        verified(c, 0);
        return;
    }
    /* an IP literal needs no lookup: pd_dns_resolve answers it at once */
    pd_dns_req *q = pd_dns_resolve(c->w->dns, c->url.host, verify_cb, c);
    if (q)
        c->dnsq = q;
}

void client_intercept_dst(struct pd_client *c, pd_dns_result *r)
{
    memset(r, 0, sizeof *r);
    r->n = 1;
    r->addr[0] = c->orig_dst;
    r->addrlen[0] = c->orig_dst_len;
    char ip[INET6_ADDRSTRLEN];
    client_peer_ip((const struct sockaddr *)&c->orig_dst, ip, sizeof ip);
    snprintf(c->key, sizeof c->key, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip,
             (unsigned)port_of(&c->orig_dst));
}
