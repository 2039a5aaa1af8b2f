/*
 * auth.c: Basic proxy authentication for one worker (see auth.h).
 */
#include "proxyd/auth.h"
#include "proxyd/stats.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "proxyd/helper.h"
#include "proxyd/log.h"

#define AUTH_MAGIC 0x50444155u   /* "PDAU" */
#define CACHE_SLOTS 4096         /* pairs remembered per worker */

struct cred {
    char *user, *pass;          /* NULL: empty slot */
    char *notes;                /* the OK's kv-pairs, or NULL */
    time_t expires;
};

struct pd_auth {
    unsigned magic;
    pd_helper *helper;
    char *realm;
    int ttl;
    int casesensitive;
    uint64_t seed;              /* keys the slot hash: pairs cannot be aimed at one slot */
    struct cred cache[CACHE_SLOTS];
    pd_auth_stats st;
};

struct pd_auth_check {
    pd_auth *a;
    pd_helper_req *req;
    pd_auth_cb cb;
    void *arg;
    time_t now;
    char *user, *pass;
};

static uint64_t slot_hash(const pd_auth *a, const char *user, const char *pass)
{
    uint64_t h = 1469598103934665603ull ^ a->seed;
    for (const char *p = user; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = pass; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* Compare without an early exit on the first difference. */
static int same_secret(const char *x, const char *y)
{
    size_t nx = strlen(x), ny = strlen(y);
    unsigned char d = nx != ny;
    for (size_t i = 0; i < nx && i < ny; i++)
        d |= (unsigned char)(x[i] ^ y[i]);
    return d == 0;
}

pd_auth *pd_auth_create(struct event_base *base, const pd_conf *conf)
{
    const pd_conf_auth_basic *b = &conf->auth_basic;
    if (!b->helper.argv)
        return NULL;
    pd_auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->magic = AUTH_MAGIC;
    a->ttl = b->credentialsttl;
    a->casesensitive = b->casesensitive;
    a->realm = strdup(b->realm ? b->realm : "Squid proxy-caching web server");
    if (getrandom(&a->seed, sizeof a->seed, GRND_NONBLOCK) != (ssize_t)sizeof a->seed)
        a->seed = (uint64_t)(uintptr_t)a ^ (uint64_t)time(NULL);
    pd_helper_cfg hc = {
        .name = "basic auth",
        .stats_kind = PD_HELPER_KIND_AUTH,
        .stats_name = "basic",
        .argv = b->helper.argv,
        .children_max = b->helper.children_max,
        .startup = b->helper.startup,
        .idle = b->helper.idle,
        .concurrency = b->helper.concurrency,
        .queue_size = b->helper.queue_size,
        .overload_grace_ms = PD_HELPER_OVERLOAD_GRACE_MS,
    };
    a->helper = a->realm ? pd_helper_create(base, &hc) : NULL;
    if (!a->helper) {
        pd_auth_free(a);
        return NULL;
    }
    return a;
}

void pd_auth_free(pd_auth *a)
{
    if (!a)
        return;
    pd_helper_free(a->helper);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(a->cache[i].user);
        free(a->cache[i].notes);
        if (a->cache[i].pass) {
            explicit_bzero(a->cache[i].pass, strlen(a->cache[i].pass));
            free(a->cache[i].pass);
        }
    }
    free(a->realm);
    a->magic = 0;
    free(a);
}

const char *pd_auth_realm(const pd_auth *a)
{
    return a->realm;
}

static int b64val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

int pd_auth_decode_basic(const pd_auth *a, const char *value, size_t len,
                         char user[PD_AUTH_USER_MAX], char pass[PD_AUTH_PASS_MAX])
{
    if (len < 6 || strncasecmp(value, "Basic", 5) != 0 || (value[5] != ' ' && value[5] != '\t'))
        return -1;
    const char *p = value + 6, *end = value + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    char dec[PD_AUTH_USER_MAX + PD_AUTH_PASS_MAX + 4];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (; p < end; p++) {
        if (*p == '=') {
            pad++;
            continue;
        }
        int v = b64val((unsigned char)*p);
        if (v < 0 || pad)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= sizeof dec - 1)
                return -1;
            dec[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (pad > 2)
        return -1;
    dec[n] = '\0';
    char *colon = memchr(dec, ':', n);
    if (!colon)
        return -1;
    size_t ul = (size_t)(colon - dec), pl = n - ul - 1;
    if (ul == 0 || ul >= PD_AUTH_USER_MAX || pl >= PD_AUTH_PASS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)dec[i] < 0x20 || dec[i] == 0x7f)
            return -1;
    memcpy(user, dec, ul);
    user[ul] = '\0';
    memcpy(pass, colon + 1, pl);
    pass[pl] = '\0';
    explicit_bzero(dec, sizeof dec);
    if (!a->casesensitive)
        for (char *u = user; *u; u++)
            *u = (char)tolower((unsigned char)*u);
    return 0;
}

/* %XX for everything but letters and digits: the helper unescapes (Squid
 * sends rfc1738-escaped user and password to basic helpers). */
static size_t escape_into(char *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '.' || ch == '_' || ch == '-') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    return o;
}

static void check_free(pd_auth_check *k)
{
    free(k->user);
    if (k->pass) {
        explicit_bzero(k->pass, strlen(k->pass));
        free(k->pass);
    }
    free(k);
}

static void remember(pd_auth *a, const char *user, const char *pass, const char *notes,
                     time_t now)
{
    if (a->ttl <= 0)
        return;
    struct cred *e = &a->cache[slot_hash(a, user, pass) % CACHE_SLOTS];
    char *u = strdup(user), *p = strdup(pass), *n = notes ? strdup(notes) : NULL;
    if (!u || !p || (notes && !n)) {
        free(u);
        free(p);
        free(n);
        return;
    }
    free(e->notes);
    e->notes = n;
    free(e->user);
    if (e->pass) {
        explicit_bzero(e->pass, strlen(e->pass));
        free(e->pass);
    }
    e->user = u;
    e->pass = p;
    e->expires = now + a->ttl;
}

static void helper_done(void *arg, const pd_helper_reply *r)
{
    pd_auth_check *k = arg;
    pd_auth *a = k->a;
    int ok = r->result == PD_HELPER_OK;
    char notes[PD_AUTH_NOTES_MAX];
    notes[0] = '\0';
    if (ok) {
        a->st.accepted++;
        pd_helper_reply_notes(r, notes, sizeof notes);
        remember(a, k->user, k->pass, notes[0] ? notes : NULL, k->now);
    } else if (r->result == PD_HELPER_ERR) {
        a->st.refused++;
    } else {
        a->st.failures++;
        pd_log_warn("basic auth: helper answered %s for user %s: %s",
                    r->why ? "nothing" : "BH", k->user, r->text);
    }
    pd_auth_cb cb = k->cb;
    void *cbarg = k->arg;
    check_free(k);
    cb(cbarg, ok, notes[0] ? notes : NULL);
}

enum pd_auth_verdict pd_auth_check_start(pd_auth *a, const char *user, const char *pass,
                                         time_t now, pd_auth_cb cb, void *arg,
                                         pd_auth_check **check, const char **notes)
{
    *check = NULL;
    *notes = NULL;
    struct cred *e = &a->cache[slot_hash(a, user, pass) % CACHE_SLOTS];
    if (e->user && e->expires > now && strcmp(e->user, user) == 0 && same_secret(e->pass, pass)) {
        a->st.cache_hits++;
        *notes = e->notes;
        return PD_AUTH_V_OK;
    }
    char line[3 * (PD_AUTH_USER_MAX + PD_AUTH_PASS_MAX) + 2];
    size_t n = escape_into(line, user);
    line[n++] = ' ';
    n += escape_into(line + n, pass);
    pd_auth_check *k = calloc(1, sizeof *k);
    if (!k || !(k->user = strdup(user)) || !(k->pass = strdup(pass))) {
        if (k)
            check_free(k);
        explicit_bzero(line, sizeof line);
        a->st.failures++;
        return PD_AUTH_V_FAILED;
    }
    k->a = a;
    k->cb = cb;
    k->arg = arg;
    k->now = now;
    k->req = pd_helper_submit(a->helper, line, n, helper_done, k);
    explicit_bzero(line, sizeof line);
    if (!k->req) {
        check_free(k);
        a->st.failures++;
        return PD_AUTH_V_FAILED;
    }
    a->st.helper_calls++;
    *check = k;
    return PD_AUTH_V_PENDING;
}

void pd_auth_cancel(pd_auth_check *check)
{
    if (!check)
        return;
    pd_helper_cancel(check->req);
    check_free(check);
}

void pd_auth_get_stats(const pd_auth *a, pd_auth_stats *out)
{
    *out = a->st;
    pd_helper_get_stats(a->helper, &out->helper);
}
