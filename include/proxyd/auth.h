/*
 * auth: HTTP Basic proxy authentication (auth_param basic) for one worker:
 * the Proxy-Authorization header decoded, the user/password pair checked by
 * the basic helper pool (helper.c; Squid's protocol: "user password" with
 * both URL-escaped, answered OK or ERR), and accepted pairs remembered for
 * credentialsttl so that a cached pair does not call the helper.
 *
 * The credentials cache is per worker, bounded (a fixed table; a newer pair
 * takes the slot of an older one) and holds only pairs the helper accepted:
 * a wrong password is asked again every time, as Squid does.
 */
#ifndef PROXYD_AUTH_H
#define PROXYD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <event2/event.h>

#include "proxyd/conf.h"
#include "proxyd/helper.h"

typedef struct pd_auth pd_auth;
typedef struct pd_auth_check pd_auth_check;

#define PD_AUTH_USER_MAX 256
#define PD_AUTH_NOTES_MAX 512    /* kv-pairs kept from an OK (as PD_EXT_NOTES_MAX) */
#define PD_AUTH_PASS_MAX 256

/* The worker's authenticator for conf->auth_basic (NULL when it has no
 * program, or on failure: check conf->auth_basic.helper.argv). Starts the
 * helper's startup children. Free with pd_auth_free. */
pd_auth *pd_auth_create(struct event_base *base, const pd_conf *conf);
void pd_auth_free(pd_auth *a);

/* The realm for Proxy-Authenticate. */
const char *pd_auth_realm(const pd_auth *a);

/*
 * Decode a Proxy-Authorization value "Basic BASE64(user:password)" into
 * user and pass (NUL-terminated; user lower-cased unless casesensitive).
 * 0, or -1 when it is not Basic, not valid base64, has no colon, or a part
 * is too long, empty (user) or holds a control character.
 */
int pd_auth_decode_basic(const pd_auth *a, const char *value, size_t len,
                         char user[PD_AUTH_USER_MAX], char pass[PD_AUTH_PASS_MAX]);

enum pd_auth_verdict { PD_AUTH_V_OK, PD_AUTH_V_FAILED, PD_AUTH_V_PENDING };

/* The helper's answer: ok 1 when it accepted the pair; notes: the kv-pairs
 * of that OK ("key=value\n"..., annotations of the request), or NULL; they
 * live until cb returns. */
typedef void (*pd_auth_cb)(void *arg, int ok, const char *notes);

/*
 * Check user/pass at now: PD_AUTH_V_OK from the cache (no helper call;
 * *notes: the kv-pairs its helper answered with, or NULL, valid until the
 * next check),
 * PD_AUTH_V_FAILED when the helper cannot be asked (queue full: fail
 * closed), or PD_AUTH_V_PENDING with *check set: cb runs later from the
 * loop, unless pd_auth_cancel(*check) first.
 */
enum pd_auth_verdict pd_auth_check_start(pd_auth *a, const char *user, const char *pass,
                                         time_t now, pd_auth_cb cb, void *arg,
                                         pd_auth_check **check, const char **notes);
void pd_auth_cancel(pd_auth_check *check);

typedef struct pd_auth_stats {
    uint64_t cache_hits, helper_calls, accepted, refused, failures;
    pd_helper_stats helper;
} pd_auth_stats;
void pd_auth_get_stats(const pd_auth *a, pd_auth_stats *out);

#endif
