/*
 * cluster: the member set of a proxyd_cluster and the owner of a key.
 *
 * Members. The name's A and AAAA records, asked together, are the members
 * (a name without a final dot through resolv.conf's search domains);
 * each answer's TTL (the lower of the two, within min-ttl..max-ttl) says when
 * to ask again. A family whose query failed (timeout, SERVFAIL) keeps the
 * addresses it had; NXDOMAIN and "no records" are answers (no members of that
 * family). Until the first answer there are no members: requests are served
 * where they arrive. Members are kept sorted by address so that every member
 * sees the same list.
 *
 * Self. A member is this proxy when its address is a self= address of the
 * line, or when address and port are one of our listeners (the listener's own
 * address, or a wildcard listener and an address of this host: in Kubernetes
 * the pod IP). A proxy that is not among the members still forwards to them.
 *
 * Owner. CARP as draft-vinod-carp-v1-03 computes it with equal load factors:
 * the key's hash is combined with each member's hash (of its address as
 * text) and the highest score owns the key. Unlike peer.c's CARP, which
 * carries the URL hash from one parent to the next to agree with Squid, the
 * key is hashed once: a member that joins or leaves then moves only the keys
 * it gains or loses, whatever its place in the sorted list.
 *
 * Dead members. connect-fail-limit failed connects in a row make a member
 * dead: it owns nothing (its keys go to the next best member) until
 * dead_peer_timeout has passed; then the next request that picks it probes
 * it, as for cache_peer parents. Each worker keeps its own view.
 *
 * evdns answers through deferred callbacks that cannot be withdrawn; so its
 * callback argument is an id looked up in a small registry of live clusters
 * (as dns.c does), and a late answer for a freed cluster is dropped.
 */
#include "proxyd/cluster.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "proxyd/log.h"
#include "proxyd/stats.h"

#define CLUSTER_MAGIC 0x434c5354u /* "CLST" */
#define MAX_SELF 8

struct member {
    struct sockaddr_storage addr;   /* with the cluster port */
    char ip[INET6_ADDRSTRLEN];
    uint32_t hash;
    int self;
    int fails;
    int64_t dead_since;             /* seconds; 0: alive */
};

struct cfg {
    char name[256];
    int port;                       /* 0: the default port */
    int min_ttl, max_ttl;           /* seconds */
    int64_t connect_timeout_ms;
    int fail_limit;
    int64_t dead_timeout;           /* seconds */
    struct sockaddr_storage self[MAX_SELF];
    int n_self;
};

struct pd_cluster {
    uint32_t magic;
    struct cfg cfg;
    int port;
    pd_cluster_self_fn is_self;
    void *self_arg;
    struct member m[PD_CLUSTER_MAX];
    int n;
    int self_member;
    /* resolution */
    uintptr_t id;                   /* registry id, 0: not registered */
    struct event_base *base;
    struct evdns_base *dns;
    struct event *timer;
    struct evdns_request *rq[2];    /* A, AAAA in flight */
    int pending;                    /* queries not answered yet */
    int flags;                      /* DNS_QUERY_NO_SEARCH for a name ending in a dot */
    int ok[2];                      /* this round: the family answered (maybe with nothing) */
    int ttl;                        /* this round: the lowest TTL of the answers, -1: none */
    struct sockaddr_storage got[PD_CLUSTER_MAX];
    int n_got;
};

/* ---- CARP --------------------------------------------------------------- */

static uint32_t rotl(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static uint32_t carp_str(const char *s, size_t n)
{
    uint32_t h = 0;
    for (size_t i = 0; i < n; i++)
        h += rotl(h, 19) + (uint32_t)(unsigned char)s[i];
    return h;
}

static uint32_t carp_mix(uint32_t h)
{
    h += h * 0x62531965u;
    return rotl(h, 21);
}

static double score(uint32_t key_hash, uint32_t member_hash)
{
    return (double)carp_mix(key_hash ^ member_hash);
}

double pd_cluster_score(const char *key, size_t len, const char *ip)
{
    return score(carp_str(key, len), carp_mix(carp_str(ip, strlen(ip))));
}

/* ---- addresses ---------------------------------------------------------- */

static int same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                       &((const struct sockaddr_in *)b)->sin_addr, 4);
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
    return 0;
}

static int port_of(const struct sockaddr_storage *a)
{
    return ntohs(a->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)a)->sin6_port
                                          : ((const struct sockaddr_in *)a)->sin_port);
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return same_ip(a, b) && port_of(a) == port_of(b);
}

/* Order: IPv4 before IPv6, then the address bytes. */
static int addr_cmp(const void *x, const void *y)
{
    const struct sockaddr_storage *a = x, *b = y;
    if (a->ss_family != b->ss_family)
        return a->ss_family == AF_INET ? -1 : 1;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4);
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

static void set_port(struct sockaddr_storage *a, int port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)port);
}

/* An IPv4 or IPv6 literal (no brackets) into *a, port 0. */
static int parse_ip(const char *s, struct sockaddr_storage *a)
{
    memset(a, 0, sizeof *a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)a;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)a;
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

/* ---- the configuration line --------------------------------------------- */


static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    struct sockaddr_storage a;
    if (parse_ip(s, &a) == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
            return 0;
    return 1;
}

static int lerr(FILE *err, const pd_conf_line *l, const char *msg, const char *arg)
{
    fprintf(err, "%s:%d: proxyd_cluster: ", l->file ? l->file : "?", l->line);
    fprintf(err, msg, arg);
    fputc('\n', err);
    return 1;
}

/* The line into *c. Returns the number of errors written to err. */
static int parse_line(const pd_conf *conf, const pd_conf_line *l, struct cfg *c, FILE *err)
{
    memset(c, 0, sizeof *c);
    c->min_ttl = 1;
    c->max_ttl = 10;
    c->connect_timeout_ms = 2000;
    c->fail_limit = 1;
    c->dead_timeout = conf->dead_peer_timeout > 0 ? (conf->dead_peer_timeout + 999) / 1000 : 10;
    if (!valid_name(l->argv[0]))
        return lerr(err, l, "'%s' is not a host name or an IP address", l->argv[0]);
    snprintf(c->name, sizeof c->name, "%s", l->argv[0]);
    int i = 1;
    if (i < l->argc && l->argv[i][0] >= '0' && l->argv[i][0] <= '9') {
        long p = pd_conf_number(l->argv[i], 65535);
        if (p <= 0)
            return lerr(err, l, "'%s' is not a port", l->argv[i]);
        c->port = (int)p;
        i++;
    }
    for (; i < l->argc; i++) {
        const char *o = l->argv[i];
        long v;
        if (!strncmp(o, "self=", 5)) {
            if (c->n_self >= MAX_SELF)
                return lerr(err, l, "more than 8 self= addresses%s", "");
            if (parse_ip(o + 5, &c->self[c->n_self]) < 0)
                return lerr(err, l, "'%s': self= takes an IP address", o);
            c->n_self++;
        } else if (!strncmp(o, "min-ttl=", 8) || !strncmp(o, "max-ttl=", 8)) {
            if ((v = pd_conf_number(o + 8, 86400)) <= 0)
                return lerr(err, l, "'%s': a positive number of seconds expected", o);
            if (o[1] == 'i')
                c->min_ttl = (int)v;
            else
                c->max_ttl = (int)v;
        } else if (!strncmp(o, "connect-timeout=", 16)) {
            if ((v = pd_conf_number(o + 16, 86400)) <= 0)
                return lerr(err, l, "'%s': a positive number of seconds expected", o);
            c->connect_timeout_ms = (int64_t)v * 1000;
        } else if (!strncmp(o, "connect-fail-limit=", 19)) {
            if ((v = pd_conf_number(o + 19, 1000000)) <= 0)
                return lerr(err, l, "'%s': a positive number expected", o);
            c->fail_limit = (int)v;
        } else {
            return lerr(err, l, "'%s': unknown option (self=, min-ttl=, max-ttl=, "
                                "connect-timeout=, connect-fail-limit=)", o);
        }
    }
    if (c->min_ttl > c->max_ttl)
        return lerr(err, l, "min-ttl is above max-ttl%s", "");
    return 0;
}

int pd_cluster_check(const pd_conf *conf, FILE *err)
{
    if (!err)
        err = stderr;
    if (!conf || conf->proxyd_cluster.n == 0)
        return 0;
    int errors = 0;
    struct cfg c;
    for (size_t i = 0; i < conf->proxyd_cluster.n; i++) {
        const pd_conf_line *l = &conf->proxyd_cluster.v[i];
        if (i > 0)
            errors += lerr(err, l, "only one proxyd_cluster line may be given (the first is "
                                   "in effect%s)", "");
        else
            errors += parse_line(conf, l, &c, err);
    }
    if (!errors && conf->n_http_port == 0 && c.port == 0)
        errors += lerr(err, &conf->proxyd_cluster.v[0],
                       "no http_port: give the members' port%s", "");
    return errors;
}

/* ---- the cluster --------------------------------------------------------- */

/* live clusters by id, for evdns's late callbacks */
#define REG_MAX 16
static struct {
    uintptr_t id;
    pd_cluster *cl;
} reg[REG_MAX];
static uintptr_t next_id = 1;

static pd_cluster *reg_find(uintptr_t id)
{
    for (int i = 0; i < REG_MAX; i++)
        if (reg[i].id == id)
            return reg[i].cl;
    return NULL;
}

pd_cluster *pd_cluster_new(const pd_conf *conf, int default_port, pd_cluster_self_fn is_self,
                           void *self_arg)
{
    if (!conf || conf->proxyd_cluster.n == 0)
        return NULL;
    pd_cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return NULL;
    FILE *null = fopen("/dev/null", "w");
    int errors = parse_line(conf, &conf->proxyd_cluster.v[0], &cl->cfg, null ? null : stderr);
    if (null)
        fclose(null);
    if (errors) {
        free(cl);
        return NULL;
    }
    cl->magic = CLUSTER_MAGIC;
    cl->port = cl->cfg.port ? cl->cfg.port : default_port;
    cl->is_self = is_self;
    cl->self_arg = self_arg;
    return cl;
}

void pd_cluster_free(pd_cluster *cl)
{
    if (!cl)
        return;
    for (int k = 0; k < 2; k++)
        if (cl->rq[k] && cl->dns)
            evdns_cancel_request(cl->dns, cl->rq[k]); /* its late callback finds no id */
    for (int i = 0; i < REG_MAX; i++)
        if (reg[i].cl == cl)
            reg[i].id = 0, reg[i].cl = NULL;
    if (cl->timer)
        event_free(cl->timer);
    cl->magic = 0;
    free(cl);
}

int pd_cluster_size(const pd_cluster *cl)
{
    return cl ? cl->n : 0;
}

int pd_cluster_self_member(const pd_cluster *cl)
{
    return cl && cl->self_member;
}

const char *pd_cluster_name(const pd_cluster *cl)
{
    return cl->cfg.name;
}

int64_t pd_cluster_connect_timeout(const pd_cluster *cl)
{
    return cl->cfg.connect_timeout_ms;
}

static int is_self(const pd_cluster *cl, const struct sockaddr_storage *a)
{
    for (int k = 0; k < cl->cfg.n_self; k++)
        if (same_ip(&cl->cfg.self[k], a))
            return 1;
    return cl->is_self && cl->is_self(cl->self_arg, a);
}

int pd_cluster_set_members(pd_cluster *cl, const struct sockaddr_storage *addrs, int n)
{
    struct sockaddr_storage v[PD_CLUSTER_MAX];
    int nv = 0;
    for (int i = 0; i < n && nv < PD_CLUSTER_MAX; i++) {
        if (addrs[i].ss_family != AF_INET && addrs[i].ss_family != AF_INET6)
            continue;
        int dup = 0;
        for (int k = 0; k < nv && !dup; k++)
            dup = same_ip(&v[k], &addrs[i]);
        if (!dup) {
            v[nv] = addrs[i];
            set_port(&v[nv], cl->port);
            nv++;
        }
    }
    qsort(v, (size_t)nv, sizeof *v, addr_cmp);
    struct member m[PD_CLUSTER_MAX];
    int self_member = 0;
    for (int i = 0; i < nv; i++) {
        struct member *p = &m[i];
        memset(p, 0, sizeof *p);
        p->addr = v[i];
        const void *raw = v[i].ss_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&v[i])->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&v[i])->sin6_addr;
        inet_ntop(v[i].ss_family, raw, p->ip, sizeof p->ip);
        p->hash = carp_mix(carp_str(p->ip, strlen(p->ip)));
        p->self = is_self(cl, &v[i]);
        self_member |= p->self;
        for (int k = 0; k < cl->n; k++)
            if (same_ip(&cl->m[k].addr, &v[i])) {
                p->fails = cl->m[k].fails;
                p->dead_since = cl->m[k].dead_since;
            }
    }
    int changed = nv != cl->n || self_member != cl->self_member;
    for (int i = 0; i < nv && !changed; i++)
        changed = !same_ip(&m[i].addr, &cl->m[i].addr);
    memcpy(cl->m, m, sizeof m[0] * (size_t)nv);
    cl->n = nv;
    cl->self_member = self_member;
    if (changed) {
        pd_stats_set(pd_stats_my_slot(), PD_STAT_CLUSTER_MEMBERS, (uint64_t)nv);
        pd_log_info("proxyd_cluster %s: %d member%s%s", cl->cfg.name, nv, nv == 1 ? "" : "s",
                    self_member ? ", this proxy one of them" : ", this proxy not among them");
    }
    return nv;
}

static int alive(const pd_cluster *cl, const struct member *p, int64_t now)
{
    return !p->dead_since || now - p->dead_since >= cl->cfg.dead_timeout;
}

int pd_cluster_owner(const pd_cluster *cl, const char *key, size_t len, int64_t now_s,
                     const struct sockaddr_storage *skip, int n_skip,
                     struct sockaddr_storage *owner)
{
    if (!cl || cl->n == 0)
        return 0;
    uint32_t kh = carp_str(key, len);
    double high = -1;
    int best = -1;
    for (int i = 0; i < cl->n; i++) {
        const struct member *p = &cl->m[i];
        if (!p->self) {
            if (!alive(cl, p, now_s))
                continue;
            int tried = 0;
            for (int k = 0; k < n_skip && !tried; k++)
                tried = same_addr(&skip[k], &p->addr);
            if (tried)
                continue;
        }
        double s = score(kh, p->hash);
        if (s > high) {
            high = s;
            best = i;
        }
    }
    if (best < 0 || cl->m[best].self)
        return 0;
    *owner = cl->m[best].addr;
    return 1;
}

static struct member *find(pd_cluster *cl, const struct sockaddr_storage *a)
{
    for (int i = 0; i < cl->n; i++)
        if (same_addr(&cl->m[i].addr, a))
            return &cl->m[i];
    return NULL;
}

void pd_cluster_connected(pd_cluster *cl, const struct sockaddr_storage *member)
{
    struct member *p = cl ? find(cl, member) : NULL;
    if (p) {
        p->fails = 0;
        p->dead_since = 0;
    }
}

void pd_cluster_failed(pd_cluster *cl, const struct sockaddr_storage *member, int64_t now_s)
{
    if (!cl)
        return;
    pd_stats_add(pd_stats_my_slot(), PD_STAT_CLUSTER_MEMBER_FAILURES, 1);
    struct member *p = find(cl, member);
    if (!p)
        return;
    if (p->fails < cl->cfg.fail_limit)
        p->fails++;
    if (p->fails >= cl->cfg.fail_limit) {
        if (!p->dead_since || now_s - p->dead_since >= cl->cfg.dead_timeout)
            pd_log_warn("proxyd_cluster %s: member %s is dead for %lld s", cl->cfg.name, p->ip,
                        (long long)cl->cfg.dead_timeout);
        p->dead_since = now_s > 0 ? now_s : 1;
    }
}

/* ---- resolution ---------------------------------------------------------- */

static void resolve(pd_cluster *cl);

static void schedule(pd_cluster *cl, int seconds)
{
    if (seconds < cl->cfg.min_ttl)
        seconds = cl->cfg.min_ttl;
    if (seconds > cl->cfg.max_ttl)
        seconds = cl->cfg.max_ttl;
    struct timeval tv = { seconds, 0 };
    evtimer_add(cl->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolve(arg);
}

/* Both queries of a round are in: apply what they said, ask again later. */
static void round_done(pd_cluster *cl)
{
    if (!cl->ok[0] && !cl->ok[1]) {
        pd_log_warn("proxyd_cluster %s: the name could not be resolved; keeping %d member%s",
                    cl->cfg.name, cl->n, cl->n == 1 ? "" : "s");
        schedule(cl, cl->cfg.min_ttl);
        return;
    }
    /* a family whose query failed keeps the addresses it had */
    for (int i = 0; i < cl->n && cl->n_got < PD_CLUSTER_MAX; i++) {
        int fam = cl->m[i].addr.ss_family == AF_INET ? 0 : 1;
        if (!cl->ok[fam])
            cl->got[cl->n_got++] = cl->m[i].addr;
    }
    pd_cluster_set_members(cl, cl->got, cl->n_got);
    schedule(cl, cl->ttl >= 0 ? cl->ttl : cl->cfg.max_ttl);
}

static void answer_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    pd_cluster *cl = reg_find(v >> 1);
    if (!cl || cl->magic != CLUSTER_MAGIC)
        return; /* an answer for a cluster that is gone (or a cancelled query) */
    int fam = (int)(v & 1);
    cl->rq[fam] = NULL;
    if (result == DNS_ERR_NONE) {
        cl->ok[fam] = 1;
        for (int i = 0; i < count && cl->n_got < PD_CLUSTER_MAX; i++) {
            struct sockaddr_storage *a = &cl->got[cl->n_got];
            memset(a, 0, sizeof *a);
            if (type == DNS_IPv4_A && !fam) {
                ((struct sockaddr_in *)a)->sin_family = AF_INET;
                memcpy(&((struct sockaddr_in *)a)->sin_addr, (char *)addresses + 4 * i, 4);
            } else if (type == DNS_IPv6_AAAA && fam) {
                ((struct sockaddr_in6 *)a)->sin6_family = AF_INET6;
                memcpy(&((struct sockaddr_in6 *)a)->sin6_addr, (char *)addresses + 16 * i, 16);
            } else {
                continue;
            }
            cl->n_got++;
        }
        if (count > 0 && (cl->ttl < 0 || ttl < cl->ttl))
            cl->ttl = ttl < 0 ? 0 : ttl;
    } else if (result == DNS_ERR_NOTEXIST || result == DNS_ERR_NODATA) {
        cl->ok[fam] = 1; /* an answer: no members of this family */
    }
    if (--cl->pending == 0)
        round_done(cl);
}

static void resolve(pd_cluster *cl)
{
    cl->ok[0] = cl->ok[1] = 0;
    cl->ttl = -1;
    cl->n_got = 0;
    cl->pending = 2;
    for (int fam = 0; fam < 2; fam++) {
        void *arg = (void *)((cl->id << 1) | (uintptr_t)fam);
        struct evdns_request *r =
            fam ? evdns_base_resolve_ipv6(cl->dns, cl->cfg.name, cl->flags, answer_cb, arg)
                : evdns_base_resolve_ipv4(cl->dns, cl->cfg.name, cl->flags, answer_cb, arg);
        if (r)
            cl->rq[fam] = r;
        else if (--cl->pending == 0) /* not even asked: as a failed query */
            round_done(cl);
    }
}

int pd_cluster_start(pd_cluster *cl, struct event_base *base, struct evdns_base *dns)
{
    struct sockaddr_storage lit;
    if (parse_ip(cl->cfg.name, &lit) == 0) {
        pd_cluster_set_members(cl, &lit, 1); /* one member, never resolved */
        return 0;
    }
    int slot = -1;
    for (int i = 0; i < REG_MAX && slot < 0; i++)
        if (!reg[i].id)
            slot = i;
    if (slot < 0 || !dns)
        return -1;
    cl->id = next_id++;
    reg[slot].id = cl->id;
    reg[slot].cl = cl;
    cl->base = base;
    cl->dns = dns;
    /*
     * A name without a final dot goes through the search domains of
     * /etc/resolv.conf as the system resolver would take it (ndots), so that
     * a Kubernetes Service's short name finds the pod's namespace. Only these
     * queries search: dns.c asks every one of its own with NO_SEARCH.
     */
    size_t nl = strlen(cl->cfg.name);
    cl->flags = DNS_QUERY_NO_SEARCH;
    if (nl && cl->cfg.name[nl - 1] != '.' &&
        evdns_base_resolv_conf_parse(dns, DNS_OPTION_SEARCH, "/etc/resolv.conf") == 0)
        cl->flags = 0;
    cl->timer = evtimer_new(base, timer_cb, cl);
    if (!cl->timer)
        return -1;
    pd_stats_set(pd_stats_my_slot(), PD_STAT_CLUSTER_MEMBERS, 0);
    resolve(cl);
    return 0;
}
