/*
 * client_access.c: http_access for a transaction, including the acls that
 * need a helper's answer (proxy_auth, proxy_auth_regex).
 *
 * The acl module is synchronous: an acl it cannot decide makes the check
 * return NEED_DST or NEED_AUTH. For NEED_AUTH the credentials are looked at
 * here: none or malformed ones decide at once (the acl fails, 407); a pair in
 * the worker's credentials cache too; otherwise the helper is asked, the
 * transaction waits in C_ACCESS (its request body is still read, nothing is
 * blocked), and the helper's answer resumes it through client_enter/leave:
 * the check runs again from the top with the credentials' state known, and
 * the continuation the caller named runs when it allows the request.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxyd/acl.h"
#include "proxyd/auth.h"
#include "proxyd/engine.h"
#include "proxyd/errors.h"

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

static void auth_answer(void *arg, int ok);

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
    enum pd_auth_verdict v = pd_auth_check_start(a, c->user, pass, time(NULL), auth_answer, c,
                                                 &c->authq);
    explicit_bzero(pass, sizeof pass);
    if (v == PD_AUTH_V_OK) {
        c->auth_state = PD_AUTH_OK;
        return 0;
    }
    if (v == PD_AUTH_V_FAILED)
        return 0;   /* the helpers cannot take it (queue full): refused, never allowed */
    c->auth_state = PD_AUTH_NONE;
    c->state = C_ACCESS;
    c->access_next = next;
    return 1;
}

static void auth_answer(void *arg, int ok)
{
    struct pd_client *c = arg;
    c->authq = NULL;
    c->auth_state = ok ? PD_AUTH_OK : PD_AUTH_FAILED;
    if (!ok)
        c->user[0] = '\0';
    if (!client_enter(c))
        return;
    c->state = C_RESOLVE;
    if (client_access(c, c->access_next))
        c->access_next(c);
    client_leave(c);
}

int client_access(struct pd_client *c, void (*next)(struct pd_client *c))
{
    /* each round decides the credentials or waits: two rounds at most */
    for (int round = 0; round < 3; round++) {
        const char *deny_acl = NULL;
        switch (client_acl_check(c, &deny_acl)) {
        case PD_ACL_ALLOW:
            return 1;
        case PD_ACL_NEED_DST:
            if (c->addrs.n) {   /* asked with the destination known: cannot decide */
                client_deny(c, deny_acl);
                return 0;
            }
            c->acl_need_dst = 1;
            return 1;
        case PD_ACL_AUTH_REQUIRED:
            challenge(c);
            return 0;
        case PD_ACL_NEED_AUTH:
            if (c->auth_state != PD_AUTH_NONE) {   /* acl.c decides these: never */
                client_deny(c, NULL);
                return 0;
            }
            if (start_auth(c, next))
                return 0;
            continue;
        case PD_ACL_DENY:
        default:
            client_deny(c, deny_acl);
            return 0;
        }
    }
    client_deny(c, NULL);
    return 0;
}

void client_access_drop(struct pd_client *c)
{
    if (c->authq) {
        pd_auth_cancel(c->authq);
        c->authq = NULL;
    }
}
