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
#include <sys/time.h>
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
#include "proxyd/result.h"
#include "proxyd/url.h"

#include "client_int.h"

#define MGR_PREFIX "/squid-internal-mgr/"

/* Append v (n bytes) to out: percent-encoded but for RFC 3986 unreserved bytes when enc. */
static void put(struct evbuffer *out, const char *v, size_t n, int enc)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (!enc || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~')
            evbuffer_add(out, &v[i], 1);
        else
            evbuffer_add_printf(out, "%%%02X", ch);
    }
}

static void puts_(struct evbuffer *out, const char *v, int enc)
{
    put(out, v, strlen(v), enc);
}

/*
 * Squid's error page codes (errorpage.cc, "%u", "%H", ...) in tmpl, for the
 * transaction c denied with err, appended to out: each value percent-encoded
 * when enc (tmpl is a deny_info URL), as received otherwise. What proxyd
 * does not have (FTP, authentication, external acl messages, DNS error
 * texts) becomes what Squid writes when it has none; an unknown code stays.
 */
static void expand_codes(struct pd_client *c, const char *tmpl, const char *err,
                         const char *detail, struct evbuffer *out, int enc)
{
    pd_engine *w = c->w;
    char buf[PD_URL_HOST_MAX + 8192];
    for (const char *t = tmpl; *t; t++) {
        if (*t != '%' || !t[1]) {
            evbuffer_add(out, t, 1);
            continue;
        }
        t++;
        switch (*t) {
        case '%': evbuffer_add(out, "%", 1); break;
        case 'a': {                            /* the user: authenticated, or an external acl's */
            size_t n = 0;
            const char *u = c->auth_state == PD_AUTH_OK ? c->user : NULL;
            if (u)
                n = strlen(u);
            else
                u = pd_notes_find(c->notes, "user", &n);
            if (u && n)
                put(out, u, n, enc);
            else
                puts_(out, "-", enc);
            break;
        }
        case 'o': {                            /* an external acl helper's message= */
            size_t n = 0;
            const char *m = pd_notes_find(c->notes, "message", &n);
            if (m && n)
                put(out, m, n, enc);
            break;
        }
        case 'B': case 'f': case 'F': case 'g': case 'l': case 'L':
        case 'z': case 'Z': case 'D':
            break;                            /* FTP, templates, DNS texts: none */
        case 'c': case 'x': puts_(out, err, enc); break;
        case 'd': {
            struct timeval now;
            gettimeofday(&now, NULL);
            snprintf(buf, sizeof buf, "%ld", (long)(now.tv_sec - c->t0.tv_sec));
            puts_(out, buf, enc);
            break;
        }
        case 'e': puts_(out, "0", enc); break;
        case 'E': puts_(out, "[No Error]", enc); break;
        case 'h': puts_(out, w->hostname, enc); break;
        case 'H': puts_(out, c->have_url ? c->url.host : "[unknown host]", enc); break;
        case 'i': puts_(out, c->peer_ip, enc); break;
        case 'I': puts_(out, c->origin_ip[0] ? c->origin_ip : "[unknown]", enc); break;
        case 'm': puts_(out, detail ? detail : "", enc); break;
        case 'M': put(out, c->req.method.p, c->req.method.len, enc); break;
        case 'p':
            snprintf(buf, sizeof buf, "%u", c->have_url ? (unsigned)c->url.port : 0u);
            puts_(out, c->have_url ? buf : "[unknown port]", enc);
            break;
        case 'P': {
            const char *sch = c->have_url && c->url.scheme[0] ? c->url.scheme : "";
            size_t i = 0;
            for (; sch[i] && i < 15; i++)
                buf[i] = (char)(sch[i] >= 'a' && sch[i] <= 'z' ? sch[i] - 32 : sch[i]);
            buf[i] = '\0';
            puts_(out, i ? buf : (c->req.method_id == PD_M_CONNECT ? "CONNECT" : "[unknown]"), enc);
            break;
        }
        case 'R': {                           /* the request as received, head only */
            pd_http_msg *m = &c->req;
            put(out, m->method.p, m->method.len, enc);
            puts_(out, " ", enc);
            put(out, m->target.p, m->target.len, enc);
            snprintf(buf, sizeof buf, " HTTP/%d.%d\r\n", m->version_major, m->version_minor);
            puts_(out, buf, enc);
            for (size_t i = 0; i < m->n_headers; i++) {
                put(out, m->headers[i].name.p, m->headers[i].name.len, enc);
                puts_(out, ": ", enc);
                put(out, m->headers[i].value.p, m->headers[i].value.len, enc);
                puts_(out, "\r\n", enc);
            }
            break;
        }
        case 's': puts_(out, "proxyd/" PROXYD_VERSION, enc); break;
        case 'S':
            snprintf(buf, sizeof buf, "Generated by %s (proxyd/%s)", w->hostname, PROXYD_VERSION);
            puts_(out, buf, enc);
            break;
        case 't': case 'T': {
            time_t now = time(NULL);
            struct tm tm;
            if (*t == 't')
                localtime_r(&now, &tm);
            else
                gmtime_r(&now, &tm);
            strftime(buf, sizeof buf, *t == 't' ? "%a, %d %b %Y %H:%M:%S %Z"
                                                : "%a, %d %b %Y %H:%M:%S GMT", &tm);
            puts_(out, buf, enc);
            break;
        }
        case 'u': case 'U':
            /* proxyd drops userinfo when it parses a URL: %u and %U are the same */
            if (c->have_url && pd_url_format(&c->url, buf, sizeof buf) < sizeof buf)
                puts_(out, buf, enc);
            else
                put(out, c->req.target.p, c->req.target.len, enc);
            break;
        case 'w': puts_(out, "webmaster", enc); break; /* Squid's default cache_mgr */
        case 'W': puts_(out, "mailto:webmaster", enc); break;
        default:                              /* not a code: as written */
            evbuffer_add(out, t - 1, 2);
            break;
        }
    }
}

/*
 * 403, or what deny_info says for the acl that decided: a page name
 * (ERR_...), a redirect ("http://..." or "3xx:http://..."; Squid's %codes in
 * it are replaced, percent-encoded), or TCP_RESET.
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
    struct evbuffer *where = loc && status >= 300 && status < 400 ? evbuffer_new() : NULL;
    if (where) {
        expand_codes(c, loc, "ERR_ACCESS_DENIED", "access denied by http_access", where, 1);
        evbuffer_add(where, "", 1);
    }
    const char *eloc = where ? (const char *)evbuffer_pullup(where, -1) : NULL;
    if (eloc && !strpbrk(eloc, "\r\n")) {
        client_redirect(c, status, eloc, "X-Squid-Error: ERR_ACCESS_DENIED 0\r\n");
        evbuffer_free(where);
        return;
    }
    if (where)
        evbuffer_free(where);
    client_fail_request(c, 403, di && strncmp(di, "ERR_", 4) == 0 ? di : "ERR_ACCESS_DENIED",
                 "access denied by http_access", 1);
}


#define CACHE_OBJECT "cache_object://"

int client_is_cache_object(const char *p, size_t len)
{
    return len >= strlen(CACHE_OBJECT) && !strncasecmp(p, CACHE_OBJECT, strlen(CACHE_OBJECT));
}

/* ---- the pages only a worker can render: its own connections -------------- */

static void page_client_list(pd_engine *w, struct evbuffer *out)
{
    evbuffer_add_printf(out, "Cache Clients:\n"
                             "(the clients of the worker that answered, pid %d; each worker "
                             "lists its own)\n", (int)getpid());
    for (int b = 0; b < PD_IPCOUNT_BUCKETS; b++)
        for (const struct pd_ipcount *e = w->ipc[b]; e; e = e->next)
            evbuffer_add_printf(out, "Address: %s\nName:    %s\n"
                                     "Currently established connections: %d\n\n",
                                e->ip, e->ip, e->n);
}

static const char *state_name(enum cstate s)
{
    static const char *const names[] = { [C_HEAD] = "reading the request",
                                         [C_RESOLVE] = "resolving",
                                         [C_CONNECT] = "connecting to the origin",
                                         [C_FORWARD] = "forwarding",
                                         [C_TUNNEL] = "tunnel",
                                         [C_CACHE] = "serving from the cache",
                                         [C_CLOSING] = "closing" };
    return (unsigned)s < sizeof names / sizeof names[0] && names[s] ? names[s] : "?";
}

static void page_active_requests(pd_engine *w, struct pd_client *self, struct evbuffer *out)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    evbuffer_add_printf(out, "(the requests of the worker that answered, pid %d, this one "
                             "included; each worker lists its own)\n", (int)getpid());
    struct pd_client *c;
    TAILQ_FOREACH(c, &w->clients, link) {
        char url[PD_URL_HOST_MAX + 512] = "-";
        if (c == self)
            snprintf(url, sizeof url, "%.*s", (int)c->req.target.len, c->req.target.p);
        else if (c->have_url && pd_url_format(&c->url, url, sizeof url) >= sizeof url)
            strcpy(url + sizeof url - 4, "...");
        double start = (double)c->t0.tv_sec + (double)c->t0.tv_usec / 1e6;
        double ago = (double)(now.tv_sec - c->t0.tv_sec) + (double)(now.tv_usec - c->t0.tv_usec) / 1e6;
        evbuffer_add_printf(out,
                            "Connection: %p\n"
                            "\tFD %d, read %llu, wrote %llu\n"
                            "\tFD desc: %s\n"
                            "\tremote: %s\n"
                            "\tlocal port: %u\n"
                            "\tnrequests: %u\n"
                            "uri %s\n"
                            "logType %s\n"
                            "out.size %llu\n"
                            "start %.6f (%.6f seconds ago)\n"
                            "username -\n\n",
                            (void *)c, (int)pd_conn_fd(c->bev), (unsigned long long)c->in_bytes,
                            (unsigned long long)c->out_bytes, state_name(c->state), c->peer_ip,
                            (unsigned)c->local_port, c->nreq, url,
                            c->result == PD_R_UNSET ? "-" : pd_result_text(c->result),
                            (unsigned long long)c->out_bytes, start, ago);
    }
}

/*
 * Squid's cache manager pages asked of the proxy itself: origin-form
 * "GET /squid-internal-mgr/info", an absolute URL naming this proxy
 * (visible_hostname and the port the client connected to), or squidclient's
 * "GET cache_object://HOST/info" (whatever HOST: Squid never forwards that
 * scheme either). May free c.
 */
void client_serve_manager(struct pd_client *c)
{
    pd_engine *w = c->w;
    if (!c->have_url) {
        char u[PD_URL_HOST_MAX + 512];
        const char *why;
        const char *t = c->req.target.p;
        size_t tl = c->req.target.len;
        int n;
        if (client_is_cache_object(t, tl)) {
            t += strlen(CACHE_OBJECT);
            tl -= strlen(CACHE_OBJECT);
            const char *slash = memchr(t, '/', tl);
            size_t hl = slash ? (size_t)(slash - t) : tl;
            const char *page = slash ? slash + 1 : "";
            size_t pl = slash ? tl - hl - 1 : 0;
            /* the host as squidclient wrote it, or ours when it has none or a port */
            int own = !hl || memchr(t, ':', hl) || memchr(t, '@', hl);
            n = snprintf(u, sizeof u, "http://%.*s:%u" MGR_PREFIX "%.*s", (int)(own ? strlen(w->hostname) : hl),
                         own ? w->hostname : t, (unsigned)c->local_port, (int)pl, page);
        } else {
            n = snprintf(u, sizeof u, "http://%s:%u%.*s", w->hostname, (unsigned)c->local_port,
                         (int)tl, t);
        }
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
    size_t plen = strcspn(page, "?");
    if (!plen) { /* Squid: the index is the menu */
        page = "menu";
        plen = 4;
    }
    struct evbuffer *body = evbuffer_new();
    if (body && plen == strlen("client_list") && !memcmp(page, "client_list", plen))
        page_client_list(w, body);
    else if (body && plen == strlen("active_requests") && !memcmp(page, "active_requests", plen))
        page_active_requests(w, c, body);
    else if (!body || pd_stats_mgr_page(page, plen, body) < 0) {
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
