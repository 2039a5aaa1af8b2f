/*
 * client_mgr: answers the proxy writes itself instead of forwarding: Squid's
 * cache manager pages asked of the proxy (mgr:info, mgr:counters), and what
 * http_access's deny says through deny_info (an error page, a redirect, or a
 * TCP reset).
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
#include "proxyd/dns.h"
#include "proxyd/errors.h"
#include "proxyd/http_msg.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"
#include "proxyd/url.h"

#include "client_int.h"

#define MGR_PREFIX "/squid-internal-mgr/"

/*
 * 403, or what deny_info says for the acl that decided: a page name
 * (ERR_...), a redirect ("http://..." or "3xx:http://..."), or TCP_RESET.
 */
void client_deny(struct pd_client *c, const char *acl_name)
{
    pd_engine *w = c->w;
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
        char date[PD_HTTP_DATE_SIZE];
        pd_http_date(time(NULL), date);
        evbuffer_add_printf(cout(c),
                            "HTTP/1.1 %d %s\r\nDate: %s\r\nLocation: %s\r\nContent-Length: 0\r\n"
                            "Cache-Control: no-store\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n%s\r\n",
                            status, pd_status_reason(status), date, loc,
                            c->keep_alive ? "" : "Connection: close\r\n");
        c->out_bytes += evbuffer_get_length(cout(c)) - before;
        client_head_queued(c);
        c->status = status;
        client_txn_done(c);
        return;
    }
    client_fail_request(c, 403, di && strncmp(di, "ERR_", 4) == 0 ? di : "ERR_ACCESS_DENIED",
                 "access denied by http_access", 1);
}


/*
 * Squid's cache manager pages asked of the proxy itself: origin-form
 * "GET /squid-internal-mgr/info", or an absolute URL naming this proxy
 * (visible_hostname and the port the client connected to). May free c.
 */
void client_serve_manager(struct pd_client *c)
{
    pd_engine *w = c->w;
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
        client_deny(c, NULL);
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
    char date[PD_HTTP_DATE_SIZE];
    pd_http_date(time(NULL), date);
    evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             "Cache-Control: no-store\r\nContent-Length: %zu\r\n%s\r\n",
                        date, evbuffer_get_length(body), c->keep_alive ? "" : "Connection: close\r\n");
    if (c->req.method_id != PD_M_HEAD)
        evbuffer_add_buffer(out, body);
    evbuffer_free(body);
    c->out_bytes += evbuffer_get_length(out) - before;
    client_head_queued(c);
    c->status = 200;
    c->result = PD_R_TCP_MISS;
    client_txn_done(c);
}

int client_is_mgr_path(const char *p, size_t len)
{
    return len >= strlen(MGR_PREFIX) && !memcmp(p, MGR_PREFIX, strlen(MGR_PREFIX));
}

/* Does the request URL name this proxy (visible_hostname or the address the client reached)? */
int client_is_self(struct pd_client *c)
{
    if (c->url.port != c->local_port)
        return 0;
    if (!strcasecmp(c->url.host, c->w->hostname))
        return 1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char ip[INET6_ADDRSTRLEN];
    if (getsockname(pd_conn_fd(c->bev), (struct sockaddr *)&ss, &sl) < 0)
        return 0;
    client_peer_ip((const struct sockaddr *)&ss, ip, sizeof ip);
    return ip[0] && !strcmp(c->url.host, ip);
}
