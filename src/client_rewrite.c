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
#include "proxyd/anscache.h"
#include "proxyd/clock.h"
#include "proxyd/conf.h"
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

/* What an answer says, in the form url_rewrite_cache_ttl keeps. */
enum verdict {
    V_GO = 0,           /* the URL stays */
    V_REWRITE = 1,      /* fetch url instead */
    V_REDIRECT = 2,     /* 30x (status) to url; the client asks again */
    V_BAD_URL = 3,      /* an answer that is not a usable URL: refused */
    V_FAILED = 4,       /* BH or the pool failed: never kept */
    V_TIMED_OUT = 5     /* no answer in time, on_timeout=fail: never kept */
};

/* The verdict of r; *url points into r (or into buf, size >= 8192). */
static enum verdict judge(const pd_helper_reply *r, int *status, const char **url, char *buf,
                          size_t size)
{
    const char *u;
    *status = 0;
    *url = NULL;
    switch (r->result) {
    case PD_HELPER_OK:
        if ((u = pd_helper_reply_get(r, "url"))) {
            const char *st = pd_helper_reply_get(r, "status");
            *status = st ? atoi(st) : 302;
            *url = u;
            return V_REDIRECT;
        }
        if ((u = pd_helper_reply_get(r, "rewrite-url"))) {
            *url = u;
            return V_REWRITE;
        }
        return V_GO;
    case PD_HELPER_ERR:
        return V_GO;
    case PD_HELPER_UNKNOWN: {
        /* the old protocol: an empty line, a URL, or 3xx:URL (then other words) */
        size_t n = strcspn(r->text, " ");
        if (n == 0)
            return V_GO;
        if (n >= size)
            return V_BAD_URL;
        memcpy(buf, r->text, n);
        buf[n] = '\0';
        if (n > 4 && buf[0] == '3' && buf[3] == ':') {
            *status = atoi(buf);
            *url = buf + 4;
            return V_REDIRECT;
        }
        *url = buf;
        return V_REWRITE;
    }
    default:
        return V_FAILED;
    }
}

/* Act on a verdict; 1 when the request goes on (c->url perhaps changed).
 * May free c when it returns 0. */
static int apply(struct pd_client *c, enum verdict v, int status, const char *url,
                 const char *why)
{
    switch (v) {
    case V_GO:
        return 1;
    case V_REWRITE:
        if (rewrite_to(c, url) == 0)
            return 1;
        /* fall through */
    case V_BAD_URL:
        failed(c, "the URL rewriter answered an invalid URL");
        return 0;
    case V_REDIRECT:
        redirect(c, status, url);
        return 0;
    case V_TIMED_OUT:
        pd_log_warn("url_rewrite: no answer in time for %s", c->url.host);
        c->result = PD_R_NONE_NONE;
        client_fail_request(c, 500, "ERR_GATEWAY_FAILURE", "the URL rewriter did not answer "
                            "in time", 1);
        return 0;
    case V_FAILED:
        break;
    }
    pd_log_warn("url_rewrite: %s for %s", why ? why : "BH", c->url.host);
    if (c->w->conf->url_rewrite_bypass)
        return 1;
    failed(c, "the URL rewriter failed");
    return 0;
}

/* A rewriter's answer: kept for url_rewrite_cache_ttl (failures never), then
 * applied. */
struct rw_wait {
    struct pd_client *c;
    int tries;          /* url_rewrite_timeout on_timeout=retry: asked again so far */
    size_t len;
    char line[];        /* what the rewriter was asked: the cache's key */
};

/* url_rewrite_timeout's retry: asked again at most this many times. */
#define RW_RETRIES 2

static void answer(void *arg, const pd_helper_reply *r);

/* A timed-out question under on_timeout=; 1 when it was asked again (the
 * transaction keeps waiting), else 0 with *v set to what to do. */
static int timed_out(struct rw_wait *rw, enum verdict *v)
{
    struct pd_client *c = rw->c;
    const pd_conf *conf = c->w->conf;
    switch ((enum pd_rw_timeout_action)conf->url_rewrite_on_timeout) {
    case PD_RW_BYPASS:
        *v = V_GO;
        return 0;
    case PD_RW_RETRY:
        if (rw->tries < RW_RETRIES) {
            rw->tries++;
            c->rwq = pd_helper_submit(c->w->rewrite, rw->line, rw->len, answer, rw);
            if (c->rwq) {
                c->rw_wait = rw;
                return 1;
            }
        }
        *v = V_FAILED;
        return 0;
    case PD_RW_FAIL:
    case PD_RW_RESPONSE:
        break;
    }
    *v = V_FAILED;
    return 0;
}

static void answer(void *arg, const pd_helper_reply *r)
{
    struct rw_wait *rw = arg;
    struct pd_client *c = rw->c;
    c->rwq = NULL;
    c->rw_wait = NULL;
    char buf[8192];
    int status;
    const char *url;
    enum verdict v;
    pd_helper_reply configured;
    char reply[1024];
    const pd_conf *conf = c->w->conf;
    int timeout = r->why && !strcmp(r->why, "helper timeout");
    if (timeout && conf->url_rewrite_on_timeout == PD_RW_RESPONSE &&
        strlen(conf->url_rewrite_timeout_response) < sizeof reply) {
        /* Squid's use_configured_response: as if the helper had said it */
        strcpy(reply, conf->url_rewrite_timeout_response);
        pd_helper_parse_reply(reply, &configured);
        r = &configured;
        timeout = 0;
    }
    if (timeout) {
        if (timed_out(rw, &v))
            return;
        status = 0;
        url = NULL;
        if (v == V_FAILED)
            v = V_TIMED_OUT;
    } else {
        v = judge(r, &status, &url, buf, sizeof buf);
    }
    pd_anscache *t = c->w->rewrite_answers;
    if (t && v != V_FAILED && !timeout && r != &configured)
        pd_anscache_put(t, rw->line, (int)v | status << 4, url,
                        (time_t)(pd_clock_ms() / 1000) + c->w->conf->url_rewrite_cache_ttl);
    free(rw);
    if (c->closing)
        return;
    /* recorded for client_on_rewrite */
    c->ev_rw_verdict = (int)v;
    c->ev_rw_status = status;
    free(c->ev_rw_url);
    c->ev_rw_url = url ? strdup(url) : NULL;
    if (url && !c->ev_rw_url)
        c->ev_rw_verdict = V_FAILED; /* out of memory */
    snprintf(c->ev_rw_why, sizeof c->ev_rw_why, "%s", r->why ? r->why : "BH");
    client_post(c, CEV_REWRITE);
}

void client_on_rewrite(struct pd_client *c)
{
    client_access_resume(c);
    char *url = c->ev_rw_url;
    c->ev_rw_url = NULL;
    int go = apply(c, (enum verdict)c->ev_rw_verdict, c->ev_rw_status, url, c->ev_rw_why);
    free(url);
    if (go)
        c->access_next(c);
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
    int iv;
    const char *url;
    if (w->rewrite_answers && pd_anscache_get(w->rewrite_answers, line, (time_t)(pd_clock_ms() / 1000), &iv,
                                              &url)) {
        pd_helper_count_cached(w->rewrite, 1);
        return apply(c, (enum verdict)(iv & 15), iv >> 4, url, NULL);
    }
    struct rw_wait *rw = malloc(sizeof *rw + (size_t)n + 1);
    if (!rw) {
        failed(c, "out of memory");
        return 0;
    }
    rw->c = c;
    rw->tries = 0;
    rw->len = (size_t)n;
    memcpy(rw->line, line, (size_t)n + 1);
    c->rwq = pd_helper_submit(w->rewrite, line, (size_t)n, answer, rw);
    if (!c->rwq) {
        free(rw);
        if (w->conf->url_rewrite_bypass)
            return 1;
        failed(c, "the URL rewriter is overloaded");
        return 0;
    }
    c->rw_wait = rw;
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
    if (c->closing)
        return;
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
    client_post(c, CEV_STORE_ID);
}

void client_on_store_id(struct pd_client *c)
{
    client_access_resume(c);
    c->access_next(c);
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
