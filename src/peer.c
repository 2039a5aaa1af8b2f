/*
 * peer: cache_peer parents and siblings, and the order a miss tries them in.
 *
 * The order follows Squid's peer_select.cc (selectMore, peerGetSomeParent,
 * peerGetAllParents); the peer ICP chose comes first (upstream.c):
 *   - always_direct allows the request: DIRECT only;
 *   - never_direct allows it: parents only;
 *   - otherwise DIRECT first when prefer_direct is on, then (for a
 *     hierarchical request, or any when nonhierarchical_direct is off) the
 *     parents, then DIRECT when prefer_direct is off.
 * "The parents" is: one chosen parent (sourcehash / userhash: the client
 * address's / user's highest-scoring parent of that set, SOURCEHASH_PARENT,
 * USERHASH_PARENT; CARP: the URL's highest-scoring live
 * allowed CARP parent, CARP; round-robin: the live allowed
 * round-robin parent with the least requests per weight, ROUNDROBIN_PARENT;
 * weighted-round-robin: the one with the least sum of ICP RTT/weight picks,
 * ROUNDROBIN_PARENT (wrr_pick);
 * else the first live allowed parent, FIRSTUP_PARENT; else the first live
 * allowed `default` parent, DEFAULT_PARENT), then every other live allowed
 * parent in configuration order (ANY_OLD_PARENT), then the `default` parent
 * even if dead (DEFAULT_PARENT), each once.
 *
 * Dead parents: connect-fail-limit consecutive failed connects mark a parent
 * dead; it is skipped for dead_peer_timeout, after which the next request
 * that selects it is the probe: a connect revives it, a failure keeps it
 * dead for another dead_peer_timeout. Squid probes with its own TCP
 * connects; proxyd lets a request do it (the request fails over to the next
 * candidate if the probe fails, so no client sees the probe's failure).
 *
 * Siblings are never among the parents: a sibling is tried only when it
 * answered ICP_HIT (SIBLING_HIT). Whom ICP asks is pd_peer_icp_targets
 * (Squid's peerWouldBePinged); max-conn= makes a parent at its cap count as
 * not there (Squid's peerHTTPOkay).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxyd/peer.h"
#include "proxyd/url.h"

#define PEERS_MAGIC 0x50454552u
#define PD_PEER_MAX 64         /* cache_peer lines (more is a configuration error) */

struct peer {
    char *host, *name, *auth;  /* auth: "Basic base64(user:pass)" or NULL */
    int http_port;
    int icp_port;              /* 0: never asked by ICP (port 0 or no-query) */
    int sibling;               /* a sibling: used only when it answered ICP_HIT */
    int proxy_only, closest_only, allow_miss;
    int max_conn;              /* max-conn=: connections of a worker in use at once, 0: no cap */
    int is_default, round_robin, carp, sourcehash, userhash;
    int weighted_rr;           /* weighted-round-robin */
    int origin_server;         /* originserver: origin-form requests, no proxy credentials */
    int weight;
    uint32_t carp_hash;        /* of the name, as Squid's carpInit (sourcehash, userhash too) */
    double carp_mult;          /* CARP load multiplier (0: not a CARP parent) */
    int connect_fail_limit;
    int64_t connect_timeout_ms;
    pd_acl_list *access;       /* cache_peer_access; NULL: all */
    /* per-worker state (see peer.h) */
    uint64_t rr_count;
    uint64_t wrr_count;        /* weighted-round-robin: the sum of its picks' costs */
    int rtt_ms;                /* the ICP round-trip time icp.c measured, 0: none yet */
    int fails;                 /* consecutive failed connects */
    int conn_open;             /* connections this worker has in use to it now */
    int64_t dead_since;        /* seconds; 0: alive */
};

/* The parents of sourcehash or userhash (Squid's peer_sourcehash.cc,
 * peer_userhash.cc): CARP's arithmetic over their own set, by weight. */
struct hash_set {
    int order[PD_PEER_MAX];
    double mult[PD_PEER_MAX];
    int n;
};

struct pd_peers {
    uint32_t magic;
    struct peer *v;
    int n, cap;
    pd_acl_list *never_direct, *always_direct;
    pd_acl_list *icp_access;   /* NULL: every ICP query is denied, as Squid */
    int prefer_direct, nonhierarchical_direct, max_tries;
    int carp_order[PD_PEER_MAX]; /* CARP parents by weight, as Squid sorts them */
    int n_carp;
    struct hash_set by_source, by_user; /* sourcehash, userhash parents */
    int64_t dead_timeout;      /* seconds */
};

struct pctx {
    FILE *err;
    int errors, warnings;
};

static void perr(struct pctx *c, const pd_conf_line *l, const char *fmt, const char *a,
                 const char *b)
{
    fprintf(c->err, "%s:%d: ", l->file ? l->file : "?", l->line);
    fprintf(c->err, fmt, a, b);
    fputc('\n', c->err);
    c->errors++;
}

static char *base64(const char *s)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *o = malloc(6 + 4 * ((n + 2) / 3) + 1);
    if (!o)
        return NULL;
    memcpy(o, "Basic ", 6);
    char *p = o + 6;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        *p++ = tab[(v >> 18) & 63];
        *p++ = tab[(v >> 12) & 63];
        *p++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *p++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *p = '\0';
    return o;
}


static const char *const unsupported_opts[] = {
    "no-delay", "multicast-responder", "multicast-siblings", "htcp",
    "carp-key",
    "monitorurl", "monitorinterval", "monitortimeout", "monitorsize", "background-ping",
    "ttl", "standby", "forceddomain", "tls", "ssl", "connection-auth", "auth-no-keytab",
    "basetime", "mcast-responder", "no-tproxy", "front-end-https", "login=PASS",
};

static void peer_line(struct pctx *c, pd_peers *ps, const pd_conf_line *l)
{
    struct peer *p = &ps->v[ps->n];
    free(p->host); /* what a line that failed half-way left here */
    free(p->name);
    free(p->auth);
    memset(p, 0, sizeof *p);
    p->weight = 1;
    p->connect_fail_limit = 10;
    if (!strcasecmp(l->argv[1], "sibling")) {
        p->sibling = 1;
    } else if (strcasecmp(l->argv[1], "parent") != 0) {
        perr(c, l, "cache_peer: '%s' peers are not implemented (parent and sibling are)%s",
             l->argv[1], strcasecmp(l->argv[1], "multicast") ? "" : ": proxyd has no multicast ICP");
        return;
    }
    long port = pd_conf_number(l->argv[2], 65535), icp = pd_conf_number(l->argv[3], 65535);
    if (port <= 0) {
        perr(c, l, "cache_peer: '%s' is not a port%s", l->argv[2], "");
        return;
    }
    if (icp < 0) {
        perr(c, l, "cache_peer: '%s' is not an ICP port%s", l->argv[3], "");
        return;
    }
    int no_query = 0;
    p->http_port = (int)port;
    p->host = strdup(l->argv[0]);
    for (int i = 4; i < l->argc; i++) {
        const char *o = l->argv[i];
        long v;
        if (!strcmp(o, "no-query")) {
            no_query = 1;
        } else if (!strcmp(o, "default")) {
            p->is_default = 1;
        } else if (!strcmp(o, "round-robin")) {
            p->round_robin = 1;
        } else if (!strcmp(o, "weighted-round-robin")) {
            p->weighted_rr = 1;
        } else if (!strcmp(o, "originserver")) {
            p->origin_server = 1;
        } else if (!strcmp(o, "carp")) {
            p->carp = 1;
        } else if (!strcmp(o, "sourcehash")) {
            p->sourcehash = 1;
        } else if (!strcmp(o, "userhash")) {
            p->userhash = 1;
        } else if (!strcmp(o, "allow-miss")) {
            p->allow_miss = 1; /* no only-if-cached to this sibling */
        } else if (!strcmp(o, "proxy-only")) {
            p->proxy_only = 1;
        } else if (!strcmp(o, "closest-only")) {
            p->closest_only = 1; /* no FIRST_PARENT_MISS; proxyd has no ICMP for CLOSEST */
        } else if (!strcmp(o, "no-digest") || !strcmp(o, "no-netdb-exchange")) {
            /* proxyd uses neither cache digests nor netdb: what these turn off */
        } else if (!strncmp(o, "name=", 5) && o[5]) {
            free(p->name);
            p->name = strdup(o + 5);
        } else if (!strncmp(o, "weight=", 7)) {
            if ((v = pd_conf_number(o + 7, 1000000)) <= 0) {
                perr(c, l, "cache_peer: '%s': the weight must be a positive number%s", o, "");
                return;
            }
            p->weight = (int)v;
        } else if (!strncmp(o, "connect-timeout=", 16)) {
            if ((v = pd_conf_number(o + 16, 86400)) <= 0) {
                perr(c, l, "cache_peer: '%s': seconds expected%s", o, "");
                return;
            }
            p->connect_timeout_ms = (int64_t)v * 1000;
        } else if (!strncmp(o, "max-conn=", 9)) {
            if ((v = pd_conf_number(o + 9, 1000000)) <= 0) {
                perr(c, l, "cache_peer: '%s': a positive number expected%s", o, "");
                return;
            }
            p->max_conn = (int)v;
        } else if (!strncmp(o, "connect-fail-limit=", 19)) {
            if ((v = pd_conf_number(o + 19, 1000000)) <= 0) {
                perr(c, l, "cache_peer: '%s': a positive number expected%s", o, "");
                return;
            }
            p->connect_fail_limit = (int)v;
        } else if (!strncmp(o, "login=", 6)) {
            const char *up = o + 6;
            const char *colon = strchr(up, ':');
            if (!colon || colon == up || !strcmp(up, "PASS") || !strcmp(up, "PASSTHRU") ||
                !strcmp(up, "PROXYPASS") || !strcmp(up, "NEGOTIATE") || up[0] == '*') {
                perr(c, l, "cache_peer: '%s': only login=USER:PASSWORD is implemented%s", o,
                     "");
                return;
            }
            free(p->auth);
            p->auth = base64(up);
        } else {
            const char *why = "unknown option";
            for (size_t k = 0; k < sizeof unsupported_opts / sizeof *unsupported_opts; k++) {
                size_t kl = strlen(unsupported_opts[k]);
                if (!strncmp(o, unsupported_opts[k], kl) && (o[kl] == '\0' || o[kl] == '='))
                    why = "option not implemented by proxyd";
            }
            perr(c, l, "cache_peer: '%s': %s", o, why);
            return;
        }
    }
    p->icp_port = no_query ? 0 : (int)icp;
    if (!p->name)
        p->name = strdup(p->host);
    for (int k = 0; k < ps->n; k++)
        if (!strcasecmp(ps->v[k].name, p->name)) {
            perr(c, l, "cache_peer: a peer named '%s' is configured already%s", p->name, "");
            return;
        }
    ps->n++;
}

static int alive(const struct peer *p, int64_t now, int64_t timeout)
{
    return !p->dead_since || now - p->dead_since >= timeout;
}

static uint32_t rotl(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* One round of CARP's string hash over s (chars taken signed, as Squid's char). */
static uint32_t carp_str(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h += rotl(h, 19) + (uint32_t)(int)(signed char)s[i];
    return h;
}

static uint32_t carp_mix(uint32_t h)
{
    h += h * 0x62531965u;
    return rotl(h, 21);
}

/*
 * CARP (draft-vinod-carp-v1-03 as Squid's carp.cc computes it, so that a
 * tier of Squid and proxyd children sends each URL to the same parent): each
 * parent's hash of its name, its share weight/W, and the load multipliers
 * X_k over the parents sorted by weight:
 *   X_k = ((K-k+1)(P_k - P_{k-1}) / (X_1...X_{k-1}) + X_{k-1}^(K-k+1))^(1/(K-k+1)).
 */
static void load_multipliers(const pd_peers *ps, const int *order, int K, double *mult)
{
    int W = 0;
    for (int k = 0; k < K; k++)
        W += ps->v[order[k]].weight;
    double p_last = 0.0, xn = 1.0, x_last = 0.0;
    for (int k = 1; k <= K; k++) {
        const struct peer *p = &ps->v[order[k - 1]];
        double lf = (double)p->weight / (double)W;
        if (floor(lf * 1000.0) == 0.0)
            lf = 0.0;
        double kk1 = (double)(K - k + 1);
        double m = kk1 * (lf - p_last) / xn + pow(x_last, kk1);
        m = pow(m, 1.0 / kk1);
        mult[k - 1] = m;
        xn *= m;
        x_last = m;
        p_last = lf;
    }
}

/* Insert peer k into order[0..*n] by weight, stable (equal weights get equal multipliers). */
static void insert_by_weight(const pd_peers *ps, int *order, int *n, int k)
{
    int j = (*n)++;
    while (j > 0 && ps->v[order[j - 1]].weight > ps->v[k].weight) {
        order[j] = order[j - 1];
        j--;
    }
    order[j] = k;
}

static void carp_init(pd_peers *ps)
{
    ps->n_carp = 0;
    for (int k = 0; k < ps->n && ps->n_carp < (int)(sizeof ps->carp_order / sizeof *ps->carp_order); k++) {
        struct peer *p = &ps->v[k];
        p->carp_hash = carp_mix(carp_str(0, p->name, strlen(p->name)));
        if (p->carp && !p->sibling)
            insert_by_weight(ps, ps->carp_order, &ps->n_carp, k);
    }
    double mult[PD_PEER_MAX];
    load_multipliers(ps, ps->carp_order, ps->n_carp, mult);
    for (int j = 0; j < ps->n_carp; j++)
        ps->v[ps->carp_order[j]].carp_mult = mult[j];
    /* sourcehash, userhash: the same, each over its own parents */
    ps->by_source.n = ps->by_user.n = 0;
    for (int k = 0; k < ps->n && k < PD_PEER_MAX; k++) {
        if (ps->v[k].sibling)
            continue;
        if (ps->v[k].sourcehash)
            insert_by_weight(ps, ps->by_source.order, &ps->by_source.n, k);
        if (ps->v[k].userhash)
            insert_by_weight(ps, ps->by_user.order, &ps->by_user.n, k);
    }
    load_multipliers(ps, ps->by_source.order, ps->by_source.n, ps->by_source.mult);
    load_multipliers(ps, ps->by_user.order, ps->by_user.n, ps->by_user.mult);
}

/*
 * The sourcehash (key: the client address) or userhash (key: the user name)
 * parent, or -1. Unlike CARP's, the key's hash is computed once, as Squid's
 * peerSourceHashSelectParent does.
 */
static int hash_set_pick(const pd_peers *ps, const struct hash_set *hs, const char *key,
                         const int *ok, int64_t now)
{
    uint32_t kh = carp_str(0, key, strlen(key));
    double high = 0;
    int best = -1;
    for (int j = 0; j < hs->n; j++) {
        int k = hs->order[j];
        const struct peer *p = &ps->v[k];
        double score = (double)carp_mix(kh ^ p->carp_hash) * hs->mult[j];
        if (score > high && ok[k] && alive(p, now, ps->dead_timeout)) {
            best = k;
            high = score;
        }
    }
    return best;
}

/*
 * The CARP parent for key (the request's URL), or -1. Squid's loop carries
 * the URL hash over from one parent to the next (it is not reset per
 * parent); so does this one, or the tiers would not agree.
 */
static int carp_pick(const pd_peers *ps, const char *key, size_t key_len, const int *ok,
                     int64_t now)
{
    uint32_t uh = 0;
    double high = 0;
    int best = -1;
    for (int j = 0; j < ps->n_carp; j++) {
        int k = ps->carp_order[j];
        const struct peer *p = &ps->v[k];
        uh = carp_str(uh, key, key_len);
        double score = (double)carp_mix(uh ^ p->carp_hash) * p->carp_mult;
        if (score > high && ok[k] && alive(p, now, ps->dead_timeout)) {
            best = k;
            high = score;
        }
    }
    return best;
}

static pd_acl_list *rule_lines(struct pctx *c, const pd_acl_rules *acl, const char *dir,
                               const pd_conf_lines *L, int skip_name, const char *name)
{
    pd_acl_list *list = NULL;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        if (skip_name && strcasecmp(l->argv[0], name) != 0)
            continue;
        const char *verb = l->argv[skip_name];
        if (!verb || (strcmp(verb, "allow") && strcmp(verb, "deny"))) {
            perr(c, l, "%s: expected allow or deny, not '%s'", dir, verb ? verb : "");
            continue;
        }
        if (!list && !(list = pd_acl_list_new())) {
            perr(c, l, "%s: out of memory%s", dir, "");
            return NULL;
        }
        if (pd_acl_list_add(list, acl, dir, l->file ? l->file : "?", l->line,
                            !strcmp(verb, "allow"), l->argc - skip_name - 1,
                            l->argv + skip_name + 1, 0, c->err, &c->warnings) < 0)
            c->errors++;
    }
    return list;
}

pd_peers *pd_peers_compile(const pd_conf *conf, const pd_acl_rules *acl, FILE *err,
                           int *n_errors, int *n_warnings)
{
    struct pctx c = { .err = err ? err : stderr };
    pd_peers *ps = calloc(1, sizeof *ps);
    if (!ps || !conf) {
        free(ps);
        if (n_errors)
            *n_errors = 1;
        return NULL;
    }
    ps->magic = PEERS_MAGIC;
    ps->prefer_direct = conf->prefer_direct;
    ps->nonhierarchical_direct = conf->nonhierarchical_direct;
    ps->max_tries = conf->forward_max_tries > 0 ? conf->forward_max_tries : 25;
    ps->dead_timeout = conf->dead_peer_timeout > 0 ? (conf->dead_peer_timeout + 999) / 1000 : 10;
    if (conf->cache_peer.n && !(ps->v = calloc(conf->cache_peer.n, sizeof *ps->v)))
        c.errors++;
    ps->cap = ps->v ? (int)conf->cache_peer.n : 0;
    for (size_t i = 0; i < conf->cache_peer.n && ps->v; i++) {
        if (i >= PD_PEER_MAX) {
            perr(&c, &conf->cache_peer.v[i], "cache_peer: more than %s peers%s", "64", "");
            break;
        }
        peer_line(&c, ps, &conf->cache_peer.v[i]);
    }
    for (size_t i = 0; i < conf->cache_peer_access.n; i++) {
        const pd_conf_line *l = &conf->cache_peer_access.v[i];
        int found = 0;
        for (int k = 0; k < ps->n; k++)
            found |= !strcasecmp(ps->v[k].name, l->argv[0]);
        if (!found)
            perr(&c, l, "cache_peer_access: no cache_peer is named '%s'%s", l->argv[0], "");
    }
    for (int k = 0; k < ps->n; k++)
        ps->v[k].access = rule_lines(&c, acl, "cache_peer_access", &conf->cache_peer_access, 1,
                                     ps->v[k].name);
    carp_init(ps);
    ps->never_direct = rule_lines(&c, acl, "never_direct", &conf->never_direct, 0, NULL);
    ps->always_direct = rule_lines(&c, acl, "always_direct", &conf->always_direct, 0, NULL);
    ps->icp_access = rule_lines(&c, acl, "icp_access", &conf->icp_access, 0, NULL);
    if (n_errors)
        *n_errors = c.errors;
    if (n_warnings)
        *n_warnings = c.warnings;
    if (c.errors) {
        pd_peers_free(ps);
        return NULL;
    }
    return ps;
}

void pd_peers_free(pd_peers *ps)
{
    if (!ps)
        return;
    for (int k = 0; k < ps->n; k++) {
        free(ps->v[k].host);
        free(ps->v[k].name);
        free(ps->v[k].auth);
        pd_acl_list_free(ps->v[k].access);
    }
    if (ps->n < ps->cap) { /* a line that failed half-way */
        free(ps->v[ps->n].host);
        free(ps->v[ps->n].name);
        free(ps->v[ps->n].auth);
    }
    free(ps->v);
    pd_acl_list_free(ps->never_direct);
    pd_acl_list_free(ps->always_direct);
    pd_acl_list_free(ps->icp_access);
    ps->magic = 0;
    free(ps);
}

int pd_peers_active(const pd_peers *ps)
{
    return ps && (ps->n > 0 || ps->never_direct || ps->always_direct);
}

int pd_peers_max_tries(const pd_peers *ps)
{
    return ps ? ps->max_tries : 25;
}


int pd_peer_is_dead(const pd_peers *ps, int i, int64_t now)
{
    return !alive(&ps->v[i], now, ps->dead_timeout);
}

static int allowed(const struct peer *p, const pd_acl_req *req)
{
    return !p->access || pd_acl_list_check(p->access, req, PD_ACL_ALLOW) == PD_ACL_ALLOW;
}

static int add(pd_peer_cand *out, int n, int max, int peer, const char *hier)
{
    for (int k = 0; k < n; k++)
        if (out[k].peer == peer)
            return n;
    if (n < max)
        out[n++] = (pd_peer_cand){ .peer = peer, .hier = hier };
    return n;
}

/*
 * weighted-round-robin (the rule of Squid's getWeightedRoundRobinParent):
 * the live allowed weighted-round-robin parent whose counter is least (on a
 * tie the later one); the pick adds its cost to its counter, the cost being
 * its ICP round-trip time over its weight, so a parent twice as fast (or
 * twice as heavy) is picked twice as often. Squid's cost is the whole
 * milliseconds rtt/weight, at least 1, which with no RTT measured makes
 * every parent cost 1 and ignores weight=; proxyd's is
 * max(rtt, 1) * 1000 / weight, the same proportions with measured RTTs, and
 * with none (no ICP, no-query, no answer yet) a round-robin by weight=.
 * Squid logs the pick ROUNDROBIN_PARENT, so does proxyd.
 */
static int wrr_pick(pd_peers *ps, const int *ok, int np, int64_t now)
{
    int best = -1;
    for (int k = 0; k < np; k++) {
        const struct peer *p = &ps->v[k];
        if (!p->weighted_rr || !ok[k] || !alive(p, now, ps->dead_timeout))
            continue;
        if (best < 0 || p->wrr_count <= ps->v[best].wrr_count)
            best = k;
    }
    if (best < 0)
        return -1;
    struct peer *q = &ps->v[best];
    uint64_t cost = (uint64_t)(q->rtt_ms > 1 ? q->rtt_ms : 1) * 1000u / (uint64_t)q->weight;
    q->wrr_count += cost ? cost : 1;
    if (q->wrr_count > ((uint64_t)1 << 62)) /* never in practice; keeps the sums apart from wrap */
        for (int k = 0; k < ps->n; k++)
            ps->v[k].wrr_count = 0;
    return best;
}

static int parents(pd_peers *ps, const pd_acl_req *req, int64_t now, pd_peer_cand *out, int n,
                   int max)
{
    int ok[PD_PEER_MAX];
    int np = ps->n < (int)(sizeof ok / sizeof *ok) ? ps->n : (int)(sizeof ok / sizeof *ok);
    /* a sibling is never a parent (it is used on ICP_HIT only); a parent at its
     * max-conn is skipped, as Squid's peerHTTPOkay */
    for (int k = 0; k < np; k++)
        ok[k] = !ps->v[k].sibling && !pd_peer_full(ps, k) && allowed(&ps->v[k], req);
    /* peerGetSomeParent: sourcehash, userhash, CARP, else round-robin, else first up */
    int best = -1;
    const char *hier = NULL;
    if (ps->by_source.n && req && req->client &&
        (req->client->sa_family == AF_INET || req->client->sa_family == AF_INET6)) {
        char ip[INET6_ADDRSTRLEN] = "";
        const void *a = req->client->sa_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)req->client)->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)req->client)->sin6_addr;
        inet_ntop(req->client->sa_family, a, ip, sizeof ip);
        if ((best = hash_set_pick(ps, &ps->by_source, ip, ok, now)) >= 0)
            hier = "SOURCEHASH_PARENT";
    }
    if (!hier && ps->by_user.n && req && req->user && req->user[0] &&
        (best = hash_set_pick(ps, &ps->by_user, req->user, ok, now)) >= 0)
        hier = "USERHASH_PARENT";
    if (!hier && ps->n_carp && req && req->url) {
        /* the key: the URL as Squid's effectiveRequestUri writes it (pd_url_format) */
        char key[PD_URL_HOST_MAX + 8192];
        size_t kl = pd_url_format(req->url, key, sizeof key);
        if (kl >= sizeof key)
            kl = sizeof key - 1;
        if ((best = carp_pick(ps, key, kl, ok, now)) >= 0)
            hier = "CARP";
    }
    for (int k = 0; k < np && !hier; k++) {
        const struct peer *p = &ps->v[k];
        if (!p->round_robin || !ok[k] || !alive(p, now, ps->dead_timeout))
            continue;
        /* least rr_count/weight, compared without division; on a tie the later
         * one, as Squid's getRoundRobinParent */
        if (best < 0 || p->rr_count * (uint64_t)ps->v[best].weight <=
                            ps->v[best].rr_count * (uint64_t)p->weight)
            best = k;
    }
    if (!hier && best >= 0) {
        ps->v[best].rr_count++;
        hier = "ROUNDROBIN_PARENT";
    }
    if (!hier && (best = wrr_pick(ps, ok, np, now)) >= 0)
        hier = "ROUNDROBIN_PARENT";
    if (!hier) {
        hier = "FIRSTUP_PARENT";
        for (int k = 0; k < np && best < 0; k++)
            if (ok[k] && alive(&ps->v[k], now, ps->dead_timeout))
                best = k;
    }
    if (best >= 0)
        n = add(out, n, max, best, hier);
    /* peerGetAllParents: the rest that are up, then the default one even if dead */
    for (int k = 0; k < np; k++)
        if (ok[k] && alive(&ps->v[k], now, ps->dead_timeout))
            n = add(out, n, max, k, "ANY_OLD_PARENT");
    for (int k = 0; k < np; k++)
        if (ok[k] && ps->v[k].is_default) {
            n = add(out, n, max, k, "DEFAULT_PARENT");
            break;
        }
    return n;
}

int pd_peer_select(pd_peers *ps, const pd_acl_req *req, int hierarchical, int64_t now,
                   pd_peer_cand *out, int max)
{
    if (!ps || ps->magic != PEERS_MAGIC) {
        if (max < 1)
            return 0;
        out[0] = (pd_peer_cand){ .peer = -1, .hier = "HIER_DIRECT" };
        return 1;
    }
    if (max > ps->max_tries)
        max = ps->max_tries;
    int n = 0;
    if (ps->always_direct && pd_acl_list_check(ps->always_direct, req, PD_ACL_DENY) == PD_ACL_ALLOW)
        return add(out, 0, max, -1, "HIER_DIRECT");
    if (ps->never_direct && pd_acl_list_check(ps->never_direct, req, PD_ACL_DENY) == PD_ACL_ALLOW)
        return parents(ps, req, now, out, 0, max);
    if (ps->prefer_direct)
        n = add(out, n, max, -1, "HIER_DIRECT");
    if (hierarchical || !ps->nonhierarchical_direct)
        n = parents(ps, req, now, out, n, max);
    return add(out, n, max, -1, "HIER_DIRECT");
}

void pd_peer_connected(pd_peers *ps, int i)
{
    if (!ps || i < 0 || i >= ps->n)
        return;
    ps->v[i].fails = 0;
    ps->v[i].dead_since = 0;
}

void pd_peer_failed(pd_peers *ps, int i, int64_t now)
{
    if (!ps || i < 0 || i >= ps->n)
        return;
    struct peer *p = &ps->v[i];
    if (p->fails < p->connect_fail_limit)
        p->fails++;
    if (p->fails >= p->connect_fail_limit)
        p->dead_since = now > 0 ? now : 1; /* dead (again): skipped for dead_peer_timeout */
}

const char *pd_peer_name(const pd_peers *ps, int i) { return ps->v[i].name; }
const char *pd_peer_host(const pd_peers *ps, int i) { return ps->v[i].host; }
int pd_peer_port(const pd_peers *ps, int i) { return ps->v[i].http_port; }
int64_t pd_peer_connect_timeout(const pd_peers *ps, int i) { return ps->v[i].connect_timeout_ms; }
const char *pd_peer_auth(const pd_peers *ps, int i) { return ps->v[i].auth; }
int pd_peer_origin_server(const pd_peers *ps, int i) { return ps->v[i].origin_server; }

void pd_peer_set_rtt(pd_peers *ps, int i, int rtt_ms)
{
    if (ps && i >= 0 && i < ps->n && rtt_ms >= 0)
        ps->v[i].rtt_ms = rtt_ms;
}

/* ---- max-conn ------------------------------------------------------------ */

int pd_peer_full(const pd_peers *ps, int i)
{
    const struct peer *p = &ps->v[i];
    return p->max_conn > 0 && p->conn_open >= p->max_conn;
}

void pd_peer_conn_opened(pd_peers *ps, int i)
{
    if (ps && i >= 0 && i < ps->n)
        ps->v[i].conn_open++;
}

void pd_peer_conn_closed(pd_peers *ps, int i)
{
    if (ps && i >= 0 && i < ps->n && ps->v[i].conn_open > 0)
        ps->v[i].conn_open--;
}

/* ---- ICP (icp.c asks; this file says whom) -------------------------------- */

int pd_peers_count(const pd_peers *ps) { return ps ? ps->n : 0; }
int pd_peer_is_sibling(const pd_peers *ps, int i) { return ps->v[i].sibling; }
int pd_peer_icp_port(const pd_peers *ps, int i) { return ps->v[i].icp_port; }
int pd_peer_weight(const pd_peers *ps, int i) { return ps->v[i].weight; }
int pd_peer_proxy_only(const pd_peers *ps, int i) { return ps->v[i].proxy_only; }
int pd_peer_closest_only(const pd_peers *ps, int i) { return ps->v[i].closest_only; }
int pd_peer_allow_miss(const pd_peers *ps, int i) { return ps->v[i].allow_miss; }

int pd_peers_icp_allowed(const pd_peers *ps, const pd_acl_req *req)
{
    /* no icp_access line: deny all, as Squid; what cannot be decided now denies */
    return ps && ps->icp_access &&
           pd_acl_list_check(ps->icp_access, req, PD_ACL_DENY) == PD_ACL_ALLOW;
}

int pd_peer_icp_targets(pd_peers *ps, const pd_acl_req *req, int hierarchical, int sibling_ok,
                        int *out, int max)
{
    if (!ps || ps->magic != PEERS_MAGIC)
        return 0;
    /* peerSelectIcpPing: never when always_direct allows the request; a
     * non-hierarchical request only when never_direct leaves no other way */
    if (ps->always_direct && pd_acl_list_check(ps->always_direct, req, PD_ACL_DENY) == PD_ACL_ALLOW)
        return 0;
    int no_direct = ps->never_direct &&
                    pd_acl_list_check(ps->never_direct, req, PD_ACL_DENY) == PD_ACL_ALLOW;
    if (!hierarchical && !no_direct)
        return 0;
    int n = 0;
    for (int k = 0; k < ps->n && n < max; k++) {
        const struct peer *p = &ps->v[k];
        /* peerWouldBePinged: an ICP port, not no-query, a sibling only for a
         * hierarchical request it may serve, allowed by cache_peer_access */
        if (!p->icp_port || (p->sibling && (!hierarchical || !sibling_ok)) || !allowed(p, req))
            continue;
        out[n++] = k;
    }
    return n;
}
