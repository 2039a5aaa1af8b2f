/*
 * client_rewrite.c: url_rewrite_program for a request http_access allowed,
 * and store_id_program for the cache key.
 *
 * The request line is Squid's (its default url_rewrite_extras): `URL
 * client_ip/- user method myip=IP myport=PORT`, which squidGuard and
 * ufdbGuard read. The answer rewrites the URL (`OK rewrite-url=`), redirects
 * the client (`OK url=` with `status=30x`; old helpers: `3xx:URL`), or leaves
 * the request as it is (`OK`, `ERR`, an empty old-style line). While the
 * rewriter thinks, the transaction waits in C_ACCESS like an access check.
 * A rewriter that fails refuses the request (503) unless url_rewrite_bypass
 * is on: a filter that could not look must not let the request through.
 *
 * store_id_program is asked the same line for a request the cache may answer
 * (after the rewriter): `OK store-id=KEY` makes KEY the cache key; anything
 * else, a failure included, keeps the URL as the key (less sharing, never a
 * wrong answer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "proxyd/acl.h"
#include "proxyd/engine.h"
#include "proxyd/errors.h"
#include "proxyd/helper.h"
#include "proxyd/log.h"

#include "client_int.h"

static void failed(struct pd_client *c, const char *detail)
{
    c->result = PD_R_NONE_NONE;
    client_fail_request(c, 503, "ERR_CANNOT_FORWARD", detail, 1);
}

/* 30x with Location: the client asks again itself. May free c. */
static void redirect(struct pd_client *c, int status, const char *loc)
{
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        status = 302;
    if (strpbrk(loc, "\r\n") || !*loc) {
        failed(c, "the URL rewriter answered an invalid redirect");
        return;
    }
    c->result = PD_R_TCP_REDIRECT;
    client_redirect(c, status, loc, NULL);
}

/* Fetch url instead. 0, or -1 when it is not a URL proxyd can fetch. */
static int rewrite_to(struct pd_client *c, const char *url)
{
    int is_connect = c->req.method_id == PD_M_CONNECT;
    pd_url nu;
    const char *why = NULL;
    if (pd_url_parse(url, strlen(url), is_connect ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE, &nu,
                     &why) < 0)
        return -1;
    pd_url_free(&c->url);
    c->url = nu;
    return 0;
}

/* Apply the answer; 1 when the request goes on (c->url perhaps changed). */
static int apply(struct pd_client *c, const pd_helper_reply *r)
{
    const char *u;
    switch (r->result) {
    case PD_HELPER_OK:
        if ((u = pd_helper_reply_get(r, "url"))) {
            const char *st = pd_helper_reply_get(r, "status");
            redirect(c, st ? atoi(st) : 302, u);
            return 0;
        }
        if ((u = pd_helper_reply_get(r, "rewrite-url")) && rewrite_to(c, u) < 0) {
            failed(c, "the URL rewriter answered an invalid URL");
            return 0;
        }
        return 1;
    case PD_HELPER_ERR:
        return 1;
    case PD_HELPER_UNKNOWN: {
        /* the old protocol: an empty line, a URL, or 3xx:URL (then other words) */
        char first[8192];
        size_t n = strcspn(r->text, " ");
        if (n == 0)
            return 1;
        if (n >= sizeof first) {
            failed(c, "the URL rewriter answered an invalid URL");
            return 0;
        }
        memcpy(first, r->text, n);
        first[n] = '\0';
        if (n > 4 && first[0] == '3' && first[3] == ':') {
            redirect(c, atoi(first), first + 4);
            return 0;
        }
        if (rewrite_to(c, first) < 0) {
            failed(c, "the URL rewriter answered an invalid URL");
            return 0;
        }
        return 1;
    }
    default:
        break;
    }
    /* BH, or the pool failed (crash, timeout) */
    pd_log_warn("url_rewrite: %s for %s", r->why ? r->why : "BH", c->url.host);
    if (c->w->conf->url_rewrite_bypass)
        return 1;
    failed(c, "the URL rewriter failed");
    return 0;
}

static void answer(void *arg, const pd_helper_reply *r)
{
    struct pd_client *c = arg;
    c->rwq = NULL;
    if (!client_enter(c))
        return;
    client_access_resume(c);
    if (apply(c, r))
        c->access_next(c);
    client_leave(c);
}

/*
 * Squid's default url_rewrite_extras / store_id_extras after the URL: `URL
 * client_ip/- user method myip=IP myport=PORT`. Its length, or -1 when the
 * request does not fit a line.
 */
static int helper_line(struct pd_client *c, char *line, size_t size)
{
    char url[PD_URL_HOST_MAX + 8192];
    size_t ulen = pd_url_format(&c->url, url, sizeof url);
    if (ulen >= sizeof url)
        return -1;
    char myip[INET6_ADDRSTRLEN] = "-";
    struct sockaddr_storage me;
    socklen_t ml = sizeof me;
    if (getsockname(pd_conn_fd(c->bev), (struct sockaddr *)&me, &ml) == 0)
        client_peer_ip((struct sockaddr *)&me, myip, sizeof myip);
    char user[3 * PD_AUTH_USER_MAX + 1] = "-";
    if (c->auth_state == PD_AUTH_OK) {
        size_t o = 0;
        for (const char *p = c->user; *p && o + 4 < sizeof user; p++) {
            unsigned char ch = (unsigned char)*p;
            if (ch <= 0x20 || ch >= 0x7f || ch == '%')
                o += (size_t)snprintf(user + o, sizeof user - o, "%%%02X", ch);
            else
                user[o++] = (char)ch;
        }
        user[o] = '\0';
    }
    int n = snprintf(line, size, "%s %s/- %s %.*s myip=%s myport=%u", url, c->peer_ip, user,
                     (int)c->req.method.len, c->req.method.p, myip, (unsigned)c->local_port);
    if (n < 0 || (size_t)n >= size || strpbrk(line, "\r\n"))
        return -1;
    return n;
}

int client_rewrite(struct pd_client *c, void (*next)(struct pd_client *c))
{
    pd_engine *w = c->w;
    c->rewritten = 1;
    if (!w->rewrite)
        return 1;
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    if (w->acl && pd_acl_check_rewrite(w->acl, &ar) != PD_ACL_ALLOW)
        return 1;
    char line[PD_URL_HOST_MAX + 8192 + 512];
    int n = helper_line(c, line, sizeof line);
    if (n < 0) {
        failed(c, "request not fit for the URL rewriter");
        return 0;
    }
    c->rwq = pd_helper_submit(w->rewrite, line, (size_t)n, answer, c);
    if (!c->rwq) {
        if (w->conf->url_rewrite_bypass)
            return 1;
        failed(c, "the URL rewriter is overloaded");
        return 0;
    }
    client_access_wait(c, next);
    return 0;
}

/* ---- store_id_program ---------------------------------------------------- */

/* The longest Store ID kept; a longer one is not a key (the URL stays). */
#define STORE_ID_MAX 8192

static void store_id_answer(void *arg, const pd_helper_reply *r)
{
    struct pd_client *c = arg;
    c->sidq = NULL;
    if (!client_enter(c))
        return;
    client_access_resume(c);
    const char *key = r->result == PD_HELPER_OK ? pd_helper_reply_get(r, "store-id") : NULL;
    if (key && *key && strlen(key) <= STORE_ID_MAX && !strpbrk(key, "\r\n")) {
        c->store_id = strdup(key); /* out of memory: the URL stays the key */
    } else if (r->result == PD_HELPER_BH || r->result == PD_HELPER_UNKNOWN ||
               (r->result == PD_HELPER_OK && key)) {
        pd_log_warn("store_id: %s for %s: the URL stays the cache key",
                    r->why                         ? r->why
                    : r->result == PD_HELPER_BH    ? "BH"
                    : r->result == PD_HELPER_OK    ? "an unusable store-id"
                                                   : "a reply without a result code",
                    c->url.host);
    }
    c->access_next(c);
    client_leave(c);
}

int client_store_id(struct pd_client *c, void (*next)(struct pd_client *c))
{
    pd_engine *w = c->w;
    c->store_id_done = 1;
    if (!w->store_id)
        return 1;
    pd_acl_req ar;
    client_acl_req(c, &ar, NULL);
    if (w->acl && pd_acl_check_store_id(w->acl, &ar) != PD_ACL_ALLOW)
        return 1;
    char line[PD_URL_HOST_MAX + 8192 + 512];
    int n = helper_line(c, line, sizeof line);
    if (n < 0)
        return 1; /* the URL stays the key */
    c->sidq = pd_helper_submit(w->store_id, line, (size_t)n, store_id_answer, c);
    if (!c->sidq) {
        if (w->conf->store_id_bypass)
            return 1;
        failed(c, "the Store-ID helper is overloaded");
        return 0;
    }
    client_access_wait(c, next);
    return 0;
}
