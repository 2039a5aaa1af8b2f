/*
 * client_access.c: http_access for a transaction, including the acls that
 * need a helper's answer (proxy_auth, proxy_auth_regex).
 *
 * The acl module is synchronous: an acl it cannot decide makes the check
 * return NEED_DST or NEED_AUTH. For NEED_AUTH the credentials are looked at
 * here: none or malformed ones decide at once (the acl fails, 407); a pair in
 * the worker's credentials cache too; otherwise the helper is asked, the
 * transaction waits in C_ACCESS (its request body is still read, nothing is
 * blocked), and the helper's answer resumes it (an ACCESS event, client_on_access):
 * the check runs again from the top with the credentials' state known, and
 * the continuation the caller named runs when it allows the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxyd/acl.h"
#include "proxyd/auth.h"
#include "proxyd/engine.h"
#include "proxyd/errors.h"
#include "proxyd/ext_acl.h"

#include "client_int.h"

/* 407 with a Basic challenge: Squid's ERR_CACHE_ACCESS_DENIED. May free c. */
static void challenge(struct pd_client *c)
{
    c->result = PD_R_TCP_DENIED;
    const char *realm = c->w->auth ? pd_auth_realm(c->w->auth) : "proxy";
    char hdr[512];
    snprintf(hdr, sizeof hdr, "Proxy-Authenticate: Basic realm=\"%s\"\r\n", realm);
    client_fail_request_hdrs(c, 407, "ERR_CACHE_ACCESS_DENIED",
                             "proxy authentication is required: valid credentials were not "
                             "given",
                             1, hdr);
}

static void auth_answer(void *arg, int ok, const char *notes);
static void ext_answer(void *arg, int answer, const char *notes);

/* Add the annotations of a helper's answer to the transaction's (each once;
 * what does not fit is left out). */
static void add_notes(struct pd_client *c, const char *notes)
{
    size_t have = strlen(c->notes);
    for (const char *p = notes; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) + 1 : strlen(p);
        int dup = 0;
        for (const char *q = c->notes; *q && !dup;) {
            const char *qe = strchr(q, '\n');
            size_t ql = qe ? (size_t)(qe - q) + 1 : strlen(q);
            dup = ql == len && !memcmp(q, p, len);
            q += ql;
        }
        if (!dup && end && have + len < sizeof c->notes) {
            memcpy(c->notes + have, p, len);
            have += len;
            c->notes[have] = '\0';
        }
        p += len;
    }
}

static uint64_t memo_hash(size_t type, const char *line)
{
    uint64_t h = 1469598103934665603ull ^ type;
    for (; *line; line++)
        h = (h ^ (unsigned char)*line) * 1099511628211ull;
    return h;
}

int client_ext_lookup(void *ctx, size_t type, const char *line)
{
    struct pd_client *c = ctx;
    uint64_t h = memo_hash(type, line);
    for (int i = 0; i < c->n_ext_memo; i++)
        if (c->ext_memo[i].type == type && c->ext_memo[i].hash == h)
            return c->ext_memo[i].answer;
    const char *notes;
    int answer = pd_ext_cached(c->w->ext, type, line, time(NULL), &notes);
    add_notes(c, notes);
    return answer;
}

/* Ask an external acl's helper: 1 when c now waits in C_ACCESS, 0 when it
 * could not be asked (then the request is refused). */
static int start_ext(struct pd_client *c, const pd_acl_ext_query *q,
                     void (*next)(struct pd_client *c))
{
    if (c->n_ext_memo >= (int)(sizeof c->ext_memo / sizeof c->ext_memo[0]))
        return 0;
    c->ext_memo[c->n_ext_memo].type = q->type;
    c->ext_memo[c->n_ext_memo].hash = memo_hash(q->type, q->line);
    c->extq = pd_ext_start(c->w->ext, q->type, q->line, time(NULL), ext_answer, c);
    if (!c->extq)
        return 0;
    client_access_wait(c, next);
    return 1;
}

/* A helper answered (ext_answer, auth_answer recorded it): the access check
 * goes on from where it waited, then the step after it. */
void client_on_access(struct pd_client *c)
{
    client_access_resume(c);
    if (client_access(c, c->access_next))
        c->access_next(c);
}

static void ext_answer(void *arg, int answer, const char *notes)
{
    struct pd_client *c = arg;
    c->extq = NULL;
    add_notes(c, notes);
    /* kept for this request even when the cache keeps nothing (ttl 0) */
    c->ext_memo[c->n_ext_memo++].answer = answer;
    client_post(c, CEV_ACCESS);
}

/*
 * The credentials for a proxy_auth acl: 1 when the helper was asked (c now
 * waits in C_ACCESS), 0 when auth_state was decided here.
 */
static int start_auth(struct pd_client *c, void (*next)(struct pd_client *c))
{
    pd_auth *a = c->w->auth;
    const pd_header *h = pd_http_msg_find(&c->req, "Proxy-Authorization");
    char pass[PD_AUTH_PASS_MAX];
    c->auth_state = PD_AUTH_FAILED;
    if (!a || !h || pd_http_msg_find_next(&c->req, h) ||
        pd_auth_decode_basic(a, h->value.p, h->value.len, c->user, pass) != 0) {
        c->user[0] = '\0';
        return 0;
    }
    const char *notes;
    enum pd_auth_verdict v = pd_auth_check_start(a, c->user, pass, time(NULL), auth_answer, c,
                                                 &c->authq, &notes);
    explicit_bzero(pass, sizeof pass);
    if (v == PD_AUTH_V_OK) {
        c->auth_state = PD_AUTH_OK;
        add_notes(c, notes);
        return 0;
    }
    if (v == PD_AUTH_V_FAILED)
        return 0;   /* the helpers cannot take it (queue full): refused, never allowed */
    c->auth_state = PD_AUTH_NONE;
    client_access_wait(c, next);
    return 1;
}

static void auth_answer(void *arg, int ok, const char *notes)
{
    struct pd_client *c = arg;
    c->authq = NULL;
    c->auth_state = ok ? PD_AUTH_OK : PD_AUTH_FAILED;
    if (!ok)
        c->user[0] = '\0';
    else
        add_notes(c, notes);
    client_post(c, CEV_ACCESS);
}

int client_access(struct pd_client *c, void (*next)(struct pd_client *c))
{
    /* each round decides the credentials or waits: two rounds at most (the
     * external acls' answers come back through a new call) */
    pd_acl_ext_query *q = c->w->ext ? malloc(sizeof *q) : NULL;
    int rc = 0;
    for (int round = 0; round < 3; round++) {
        const char *deny_acl = NULL;
        switch (client_acl_check_ext(c, &deny_acl, q)) {
        case PD_ACL_ALLOW:
            rc = 1;
            goto out;
        case PD_ACL_NEED_DST:
            if (c->addrs.n) {   /* asked with the destination known: cannot decide */
                client_deny(c, deny_acl);
                goto out;
            }
            c->acl_need_dst = 1;
            rc = 1;
            goto out;
        case PD_ACL_AUTH_REQUIRED:
            challenge(c);
            goto out;
        case PD_ACL_NEED_AUTH:
            if (c->auth_state != PD_AUTH_NONE) {   /* acl.c decides these: never */
                client_deny(c, NULL);
                goto out;
            }
            if (start_auth(c, next))
                goto out;
            continue;
        case PD_ACL_NEED_EXT:
            if (!q || !start_ext(c, q, next))
                client_deny(c, NULL);   /* the helper cannot be asked: never allowed */
            goto out;
        case PD_ACL_DENY:
        default:
            client_deny(c, deny_acl);
            goto out;
        }
    }
    client_deny(c, NULL);
out:
    free(q);
    return rc;
}

void client_access_wait(struct pd_client *c, void (*next)(struct pd_client *c))
{
    c->state = C_ACCESS;
    c->access_next = next;
    client_arm_timer(c, c->w->conf->request_timeout);
}

void client_access_resume(struct pd_client *c)
{
    c->state = C_RESOLVE;
    evtimer_del(c->timer);
}

void client_access_timeout(struct pd_client *c)
{
    client_access_drop(c);
    c->state = C_RESOLVE;
    c->result = PD_R_NONE_NONE;
    client_fail_request(c, 503, "ERR_CANNOT_FORWARD", "no answer from a helper in time", 1);
}

void client_access_drop(struct pd_client *c)
{
    if (c->rwq) {
        pd_helper_cancel(c->rwq);
        c->rwq = NULL;
        free(c->rw_wait);
        c->rw_wait = NULL;
    }
    if (c->sidq) {
        pd_helper_cancel(c->sidq);
        c->sidq = NULL;
    }
    if (c->extq) {
        pd_ext_cancel(c->extq);
        c->extq = NULL;
    }
    if (c->authq) {
        pd_auth_cancel(c->authq);
        c->authq = NULL;
    }
}
