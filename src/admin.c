/*
 * admin: the master's HTTP listener for operators (see include/proxyd/admin.h).
 * Every page is rendered from a fresh snapshot of the shared counters, so the
 * answer is the same whichever worker served the counted requests, and it is
 * there even while no worker is.
 */
#include "proxyd/admin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "proxyd/http_msg.h"
#include "proxyd/log.h"
#include "proxyd/url.h"

#define MGR_PREFIX "/squid-internal-mgr/"

struct pd_admin {
    struct evhttp *http;
    const pd_conf *conf;
    const pd_acl_rules *acl;
    pd_stats *st;
    pd_listen_addr addrs[PD_CONF_MAX_PORTS]; /* as configured (port 0 kept as 0) */
    int n_addrs;
    struct sockaddr_storage bound[PD_CONF_MAX_PORTS]; /* as bound (the port 0 picked) */
    int n_bound;
};

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}

/* Does an http_access line name the `manager` acl (so that the operator decided)? */
static int rules_name_manager(const pd_conf *conf)
{
    for (size_t i = 0; i < conf->http_access.n; i++) {
        const pd_conf_line *l = &conf->http_access.v[i];
        for (int j = 1; j < l->argc; j++) {
            const char *w = l->argv[j][0] == '!' ? l->argv[j] + 1 : l->argv[j];
            if (!strcasecmp(w, "manager"))
                return 1;
        }
    }
    return 0;
}

int pd_admin_allowed(const pd_conf *conf, const pd_acl_rules *acl, const struct sockaddr *client,
                     uint16_t local_port, const pd_url *url)
{
    if (!client)
        return 0;
    if (!conf || !acl || !rules_name_manager(conf))
        return is_loopback(client);
    pd_http_msg m;
    pd_http_msg_init(&m);
    m.is_request = 1;
    m.method = PD_STR("GET");
    m.method_id = PD_M_GET;
    /* the manager URL names the proxy by address: that is its destination for `dst` acls */
    struct sockaddr_storage dst;
    memset(&dst, 0, sizeof dst);
    int n_dst = 0;
    if (url->host_ip == 4 &&
        inet_pton(AF_INET, url->host, &((struct sockaddr_in *)&dst)->sin_addr) == 1) {
        dst.ss_family = AF_INET;
        ((struct sockaddr_in *)&dst)->sin_port = htons(url->port);
        n_dst = 1;
    } else if (url->host_ip == 6 &&
               inet_pton(AF_INET6, url->host, &((struct sockaddr_in6 *)&dst)->sin6_addr) == 1) {
        dst.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&dst)->sin6_port = htons(url->port);
        n_dst = 1;
    }
    pd_acl_req q = {
        .client = client,
        .local_port = local_port,
        .msg = &m,
        .url = url,
        .dst = n_dst ? &dst : NULL,
        .n_dst = n_dst,
        .now = time(NULL),
    };
    enum pd_acl_verdict v = pd_acl_check_http(acl, &q, NULL);
    pd_http_msg_free(&m);
    return v == PD_ACL_ALLOW;
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
        snprintf(buf, size, "[%s]:%d", ip, port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
        snprintf(buf, size, "%s:%d", ip, port);
    }
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void text_reply(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add_printf(b, "%s\n", text);
    reply(req, code, reason, "text/plain; charset=utf-8", b);
    evbuffer_free(b);
}

/* May this request's client read `page`? Evaluated on http://LOCAL/squid-internal-mgr/PAGE. */
static int access_ok(pd_admin *a, struct evhttp_request *req, const char *page)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    const struct sockaddr *peer = conn ? evhttp_connection_get_addr(conn) : NULL;
    if (!bev || !peer)
        return 0;
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;
    if (getsockname(bufferevent_getfd(bev), (struct sockaddr *)&local, &ll) < 0)
        return 0;
    char at[80], target[256];
    addr_text((struct sockaddr *)&local, at, sizeof at);
    snprintf(target, sizeof target, "http://%s" MGR_PREFIX "%s", at, page);
    pd_url u;
    const char *why;
    if (pd_url_parse(target, strlen(target), PD_URL_ABSOLUTE, &u, &why) < 0)
        return 0;
    uint16_t lport = ntohs(local.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&local)->sin6_port
                               : ((struct sockaddr_in *)&local)->sin_port);
    int ok = pd_admin_allowed(a->conf, a->acl, peer, lport, &u);
    pd_url_free(&u);
    return ok;
}

static void serve(struct evhttp_request *req, void *arg)
{
    pd_admin *a = arg;
    const char *uri = evhttp_request_get_uri(req);
    if (!uri || uri[0] != '/') {
        text_reply(req, 400, "Bad Request", "bad request target");
        return;
    }
    size_t plen = strcspn(uri, "?#");
    char path[128];
    if (plen >= sizeof path) {
        text_reply(req, 404, "Not Found", "no such page");
        return;
    }
    memcpy(path, uri, plen);
    path[plen] = '\0';
    const char *page = !strncmp(path, MGR_PREFIX, strlen(MGR_PREFIX)) ? path + strlen(MGR_PREFIX)
                                                                       : path + 1;
    for (const char *p = page; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
            text_reply(req, 404, "Not Found", "no such page");
            return;
        }
    if (!access_ok(a, req, page)) {
        text_reply(req, 403, "Forbidden", "access denied by http_access (manager)");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    pd_stats_snapshot *snap = malloc(sizeof *snap);
    if (!b || !snap) {
        if (b)
            evbuffer_free(b);
        free(snap);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    pd_stats_take(a->st, snap);
    int code = 200;
    const char *ctype = "text/plain; charset=utf-8";
    if (page != path + 1) {
        /* under /squid-internal-mgr/ */
        if (pd_stats_mgr_page(page, strlen(page), b) < 0)
            code = 404;
    } else if (!strcmp(path, "/metrics")) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        pd_stats_render_prometheus(snap, b);
    } else if (!strcmp(path, "/stats")) {
        ctype = "application/json";
        pd_stats_render_json(snap, b);
    } else if (!strcmp(path, "/healthz")) {
        char why[160];
        if (!pd_stats_healthy(snap, why, sizeof why))
            code = 503;
        evbuffer_add_printf(b, "%s\n", why);
    } else if (!strcmp(path, "/")) {
        evbuffer_add_printf(b, "proxyd %s admin: /metrics /stats /healthz " MGR_PREFIX "info "
                               MGR_PREFIX "counters\n", PROXYD_VERSION);
    } else {
        code = 404;
    }
    if (code == 404) {
        evbuffer_drain(b, evbuffer_get_length(b));
        evbuffer_add_printf(b, "no such page\n");
    }
    reply(req, code, code == 200 ? "OK" : code == 503 ? "Service Unavailable" : "Not Found", ctype,
          b);
    evbuffer_free(b);
    free(snap);
}

static int listen_on(const pd_listen_addr *la, char *at, size_t atlen)
{
    int fd = socket(la->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (la->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&la->ss, la->len) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    struct sockaddr_storage b;
    socklen_t bl = sizeof b;
    getsockname(fd, (struct sockaddr *)&b, &bl);
    addr_text((struct sockaddr *)&b, at, atlen);
    return fd;
}

pd_admin *pd_admin_start(struct event_base *base, const pd_conf *conf, const pd_acl_rules *acl,
                         pd_stats *st)
{
    if (!conf->n_admin_port)
        return NULL;
    pd_admin *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->http = evhttp_new(base);
    if (!a->http) {
        free(a);
        return NULL;
    }
    a->conf = conf;
    a->acl = acl;
    a->st = st;
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(a->http, 30);
    evhttp_set_max_headers_size(a->http, 16384);
    evhttp_set_max_body_size(a->http, 0);
    evhttp_set_gencb(a->http, serve, a);
    int bound = 0;
    for (int i = 0; i < conf->n_admin_port; i++) {
        a->addrs[a->n_addrs++] = conf->admin_port[i];
        char at[80];
        int fd = listen_on(&conf->admin_port[i], at, sizeof at);
        if (fd < 0 || !evhttp_accept_socket_with_handle(a->http, fd)) {
            pd_log_warn("admin_port %s: cannot listen: %s; the admin listener is off there",
                        conf->admin_port[i].text, strerror(errno));
            if (fd >= 0)
                close(fd);
            continue;
        }
        socklen_t bl = sizeof a->bound[0];
        if (getsockname(fd, (struct sockaddr *)&a->bound[bound], &bl) == 0)
            bound++;
        else
            memset(&a->bound[bound], 0, sizeof a->bound[0]);
        /* the test harness and scripts wait for this exact line */
        fprintf(stderr, "proxyd: admin listening on %s\n", at);
    }
    fflush(stderr);
    a->n_bound = bound;
    if (!bound) {
        pd_admin_free(a);
        return NULL;
    }
    return a;
}

int pd_admin_bound(const pd_admin *a, struct sockaddr_storage *out, int max)
{
    int n = 0;
    for (int i = 0; a && i < a->n_bound && n < max; i++)
        out[n++] = a->bound[i];
    return n;
}

void pd_admin_set_conf(pd_admin *a, const pd_conf *conf, const pd_acl_rules *acl)
{
    if (!a)
        return;
    a->conf = conf;
    a->acl = acl;
}

int pd_admin_same_ports(const pd_admin *a, const pd_conf *conf)
{
    int n = a ? a->n_addrs : 0;
    if (n != conf->n_admin_port)
        return 0;
    for (int i = 0; i < n; i++)
        if (strcmp(a->addrs[i].text, conf->admin_port[i].text) != 0)
            return 0;
    return 1;
}

void pd_admin_free(pd_admin *a)
{
    if (!a)
        return;
    evhttp_free(a->http);
    free(a);
}
