/*
 * dns: asynchronous name resolution for one worker, on libevent's evdns.
 *
 * One pd_dns per worker event_base. A lookup goes: IP literal (answered at
 * once) -> answer table (hosts file entries, which never expire, and cached
 * answers, positive and negative) -> one shared evdns query per name, with
 * every concurrent caller waiting on it. The query asks for A records and,
 * when the name has none, for AAAA records; the A (or AAAA) TTL, capped by
 * positive_ttl_max, says how long the answer is kept.
 *
 * Like Squid (dns_defnames off), no search domain is ever appended, and
 * evdns never reads /etc/hosts itself: we load the hosts file so that its
 * entries live in the same table and follow the same rules.
 *
 * evdns delivers its answers through deferred callbacks: once a reply has
 * been parsed, the callback is queued on the event_base and neither
 * evdns_cancel_request() nor evdns_base_free() can withdraw it. A query that
 * is in flight when pd_dns_free() runs may therefore still be "answered"
 * later. So evdns never holds a pointer to our memory: its callback argument
 * is a query id, looked up in a per-thread registry of live queries; an id
 * that is no longer registered is ignored.
 */
#include "proxyd/dns.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#define DNS_MAGIC 0x444e5331u           /* "DNS1" */
#define REQ_MAGIC 0x444e5352u           /* "DNSR" */

#define DEFAULT_HOSTS_FILE "/etc/hosts"
#define DEFAULT_RESOLV_CONF "/etc/resolv.conf"
#define DEFAULT_POSITIVE_TTL_MAX (6 * 3600)
#define DEFAULT_NEGATIVE_TTL 60
#define DEFAULT_TIMEOUT 30
/* Squid retransmits every dns_retransmit_interval (5 s) until dns_timeout. */
#define RETRANSMIT_INTERVAL 5
/* Cached answers kept per worker (hosts file entries are not counted). */
#define MAX_CACHE_ENTRIES 10000
/* evdns queues queries beyond this many in flight (its default is 64). */
#define MAX_INFLIGHT "512"
#define MAX_NAME_LEN 253
#define MAX_LABEL_LEN 63

struct dns_addr {
    sa_family_t family;
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } u;
};

/* What a lookup produced: a compact pd_dns_result. */
struct answer {
    int error;
    int n;
    struct dns_addr addr[PD_DNS_MAX_ADDRS];
};

struct query;

/*
 * One name in the answer table. An entry is in exactly one of these states:
 * permanent (hosts file); cached (in the LRU list, has an answer, maybe
 * expired); in flight (q != NULL, not in the LRU list, maybe with a stale
 * answer it is refreshing).
 */
struct entry {
    struct entry *hnext;
    uint64_t hash;
    TAILQ_ENTRY(entry) lru;
    struct query *q;
    int64_t expires_ms;
    unsigned permanent : 1, in_lru : 1, has_answer : 1;
    struct answer ans;
    char name[];
};

/* One evdns lookup shared by every waiter for the same name. */
struct query {
    uintptr_t id;                       /* evdns callback argument */
    struct query *reg_next;             /* registry chain */
    pd_dns *dns;
    struct entry *e;
    int want_aaaa;                      /* A had no data: now asking AAAA */
    struct evdns_request *er;           /* the evdns lookup in flight, NULL once answered */
    struct event *deadline;             /* dns_timeout for the whole query (A, then AAAA) */
    TAILQ_ENTRY(query) link;            /* dns->queries */
    TAILQ_HEAD(, pd_dns_req) waiters;   /* called in this order */
};

struct pd_dns_req {
    unsigned magic;
    struct query *q;                    /* NULL while its callback runs */
    pd_dns_cb cb;
    void *arg;
    TAILQ_ENTRY(pd_dns_req) link;
};

TAILQ_HEAD(entry_list, entry);
TAILQ_HEAD(query_list, query);

struct pd_dns {
    unsigned magic;
    struct event_base *base;
    struct evdns_base *evdns;
    int64_t (*now_ms)(void);            /* monotonic clock; tests move it */
    int positive_ttl_max, negative_ttl;
    int timeout;                        /* seconds: dns_timeout, the budget of one query */
    size_t max_entries;
    struct entry **tab;                 /* chained hash of entries by name */
    size_t tab_size, n_entries;
    struct entry_list lru;              /* cached entries, least recently used first */
    size_t n_lru;
    struct query_list queries;
    int depth;                          /* callbacks of ours on the stack */
    int dying;                          /* pd_dns_free ran inside a callback */
    pd_dns_stats stats;
};

/* ---- registry of live queries (per thread: one event_base per thread) ---- */

static _Thread_local struct {
    struct query **b;
    size_t size, n;
    uintptr_t next_id;
    uint64_t stale;                     /* callbacks for queries no longer alive */
} reg;

static size_t reg_slot(uintptr_t id, size_t size)
{
    return (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 20) & (size - 1);
}

static int reg_add(struct query *q)
{
    if (reg.n >= reg.size) {
        size_t nsize = reg.size ? reg.size * 2 : 64;
        struct query **nb = calloc(nsize, sizeof(*nb));
        if (!nb)
            return -1;
        for (size_t i = 0; i < reg.size; i++) {
            struct query *p = reg.b[i], *next;
            for (; p; p = next) {
                next = p->reg_next;
                size_t s = reg_slot(p->id, nsize);
                p->reg_next = nb[s];
                nb[s] = p;
            }
        }
        free(reg.b);
        reg.b = nb;
        reg.size = nsize;
    }
    q->id = ++reg.next_id;
    if (q->id == 0)                     /* never hand out 0 (looks like NULL) */
        q->id = ++reg.next_id;
    size_t s = reg_slot(q->id, reg.size);
    q->reg_next = reg.b[s];
    reg.b[s] = q;
    reg.n++;
    return 0;
}

static struct query *reg_find(uintptr_t id)
{
    if (!reg.size)
        return NULL;
    struct query *q = reg.b[reg_slot(id, reg.size)];
    while (q && q->id != id)
        q = q->reg_next;
    return q;
}

static void reg_del(struct query *q)
{
    struct query **pp = &reg.b[reg_slot(q->id, reg.size)];
    while (*pp != q)
        pp = &(*pp)->reg_next;
    *pp = q->reg_next;
    q->reg_next = NULL;
    if (--reg.n == 0) {
        /* keep nothing allocated once no resolver has work in flight */
        free(reg.b);
        reg.b = NULL;
        reg.size = 0;
    }
}

/* ---- names and the answer table ---- */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t hash_name(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/*
 * Lower-case host into out (MAX_NAME_LEN + 1 bytes) without its trailing
 * dot. Returns 0, or -1 if host is not a syntactically valid DNS name.
 */
static int normalize_name(const char *host, char *out)
{
    size_t len = strlen(host);
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len > MAX_NAME_LEN)
        return -1;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c == '.') {
            if (label == 0)
                return -1;
            label = 0;
        } else {
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                return -1;
            if (++label > MAX_LABEL_LEN)
                return -1;
        }
        out[i] = (char)c;
    }
    if (label == 0)
        return -1;
    out[len] = '\0';
    return 0;
}

/* IPv4 or IPv6 literal (IPv6 optionally in brackets) into a. */
static int parse_literal(const char *host, struct dns_addr *a)
{
    if (inet_pton(AF_INET, host, &a->u.v4) == 1) {
        a->family = AF_INET;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t len = strlen(host);
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']' && len - 2 < sizeof(buf)) {
        memcpy(buf, host + 1, len - 2);
        buf[len - 2] = '\0';
        host = buf;
    }
    if (inet_pton(AF_INET6, host, &a->u.v6) == 1) {
        a->family = AF_INET6;
        return 0;
    }
    return -1;
}

static struct entry *entry_find(const pd_dns *dns, const char *name, uint64_t h)
{
    struct entry *e = dns->tab[h & (dns->tab_size - 1)];
    while (e && (e->hash != h || strcmp(e->name, name) != 0))
        e = e->hnext;
    return e;
}

static void tab_grow(pd_dns *dns)
{
    size_t nsize = dns->tab_size * 2;
    struct entry **nt = calloc(nsize, sizeof(*nt));
    if (!nt)
        return;                         /* longer chains, still correct */
    for (size_t i = 0; i < dns->tab_size; i++) {
        struct entry *e = dns->tab[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            e->hnext = nt[e->hash & (nsize - 1)];
            nt[e->hash & (nsize - 1)] = e;
        }
    }
    free(dns->tab);
    dns->tab = nt;
    dns->tab_size = nsize;
}

static struct entry *entry_new(pd_dns *dns, const char *name, uint64_t h)
{
    size_t len = strlen(name);
    struct entry *e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    memcpy(e->name, name, len + 1);
    e->hash = h;
    if (dns->n_entries >= dns->tab_size)
        tab_grow(dns);
    struct entry **head = &dns->tab[h & (dns->tab_size - 1)];
    e->hnext = *head;
    *head = e;
    dns->n_entries++;
    return e;
}

static void lru_remove(pd_dns *dns, struct entry *e)
{
    if (e->in_lru) {
        TAILQ_REMOVE(&dns->lru, e, lru);
        e->in_lru = 0;
        dns->n_lru--;
    }
}

static void lru_touch(pd_dns *dns, struct entry *e)
{
    lru_remove(dns, e);
    TAILQ_INSERT_TAIL(&dns->lru, e, lru);
    e->in_lru = 1;
    dns->n_lru++;
}

/* Unlink e from the table and free it; e must have no query in flight. */
static void entry_free(pd_dns *dns, struct entry *e)
{
    assert(!e->q);
    lru_remove(dns, e);
    struct entry **pp = &dns->tab[e->hash & (dns->tab_size - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    dns->n_entries--;
    free(e);
}

/* Drop least recently used answers beyond the bound (in-flight entries are not in the list). */
static void lru_trim(pd_dns *dns)
{
    while (dns->n_lru > dns->max_entries)
        entry_free(dns, TAILQ_FIRST(&dns->lru));
}

static void answer_add(struct answer *ans, const struct dns_addr *a)
{
    for (int i = 0; i < ans->n; i++)
        if (ans->addr[i].family == a->family &&
            memcmp(&ans->addr[i].u, &a->u, a->family == AF_INET ? 4 : 16) == 0)
            return;
    if (ans->n < PD_DNS_MAX_ADDRS)
        ans->addr[ans->n++] = *a;
}

static void to_result(const struct answer *ans, pd_dns_result *res)
{
    memset(res, 0, sizeof(*res));
    res->error = ans->error;
    res->n = ans->error ? 0 : ans->n;
    for (int i = 0; i < res->n; i++) {
        if (ans->addr[i].family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&res->addr[i];
            sin->sin_family = AF_INET;
            sin->sin_addr = ans->addr[i].u.v4;
            res->addrlen[i] = sizeof(*sin);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&res->addr[i];
            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr = ans->addr[i].u.v6;
            res->addrlen[i] = sizeof(*sin6);
        }
    }
}

/* ---- teardown ---- */

static void release(pd_dns *dns)
{
    dns->magic = 0;
    free(dns);
}

static void end_callback(pd_dns *dns)
{
    if (--dns->depth == 0 && dns->dying)
        release(dns);
}

/* Call cb now (answer known at once): the dns may be freed by cb. */
static void deliver_now(pd_dns *dns, const struct answer *ans, pd_dns_cb cb, void *arg)
{
    pd_dns_result res;
    to_result(ans, &res);
    dns->depth++;
    cb(&res, arg);
    end_callback(dns);
}

static void query_free(struct query *q)
{
    struct pd_dns_req *r;
    if (q->deadline)
        event_free(q->deadline);
    while ((r = TAILQ_FIRST(&q->waiters))) {
        TAILQ_REMOVE(&q->waiters, r, link);
        r->magic = 0;
        free(r);
    }
    free(q);
}

/* ---- queries ---- */

static void evdns_done(int result, char type, int count, int ttl, void *addresses, void *arg);

/* Detach q from the resolver, cache its answer, then call every waiter in order. */
static void query_complete(struct query *q, const struct answer *ans, int ttl)
{
    pd_dns *dns = q->dns;
    struct entry *e = q->e;

    reg_del(q);
    TAILQ_REMOVE(&dns->queries, q, link);
    e->q = NULL;
    q->e = NULL;
    if (q->deadline)
        evtimer_del(q->deadline);
    if (ans->error)
        dns->stats.failures++;

    int life;
    if (ans->error)
        life = dns->negative_ttl;
    else
        life = ttl < 0 ? 0 : (ttl < dns->positive_ttl_max ? ttl : dns->positive_ttl_max);
    if (life > 0) {
        e->ans = *ans;
        e->has_answer = 1;
        e->expires_ms = dns->now_ms() + (int64_t)life * 1000;
        lru_touch(dns, e);
        lru_trim(dns);
    } else {
        entry_free(dns, e);
    }

    /*
     * The entry is settled before any callback runs, so a callback may look
     * the name up again (cache hit or new query), cancel other waiters of q
     * (still in q->waiters) or free the resolver (dying, checked after each).
     */
    pd_dns_result res;
    to_result(ans, &res);
    dns->depth++;
    struct pd_dns_req *r;
    while (!dns->dying && (r = TAILQ_FIRST(&q->waiters))) {
        TAILQ_REMOVE(&q->waiters, r, link);
        r->q = NULL;
        r->cb(&res, r->arg);
        r->magic = 0;
        free(r);
    }
    query_free(q);
    end_callback(dns);
}

static int query_send(struct query *q)
{
    pd_dns *dns = q->dns;
    struct evdns_request *er;
    void *id = (void *)q->id;
    if (q->want_aaaa)
        er = evdns_base_resolve_ipv6(dns->evdns, q->e->name, DNS_QUERY_NO_SEARCH, evdns_done, id);
    else
        er = evdns_base_resolve_ipv4(dns->evdns, q->e->name, DNS_QUERY_NO_SEARCH, evdns_done, id);
    if (!er)
        return -1;
    q->er = er;
    dns->stats.queries++;
    return 0;
}

static int map_error(int result)
{
    switch (result) {
    case DNS_ERR_NOTEXIST:
    case DNS_ERR_NODATA:
        return PD_DNS_ENOTFOUND;
    case DNS_ERR_TIMEOUT:
        return PD_DNS_ETIMEOUT;
    default:
        return PD_DNS_EFAIL;
    }
}

static void evdns_done(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct query *q = reg_find((uintptr_t)arg);
    if (!q) {
        reg.stale++;
        return;
    }
    assert(q->dns->magic == DNS_MAGIC);
    q->er = NULL;

    struct answer ans;
    memset(&ans, 0, sizeof(ans));
    if (result == DNS_ERR_NONE && count > 0 && addresses &&
        (type == DNS_IPv4_A || type == DNS_IPv6_AAAA)) {
        for (int i = 0; i < count && ans.n < PD_DNS_MAX_ADDRS; i++) {
            struct dns_addr a;
            memset(&a, 0, sizeof(a));
            if (type == DNS_IPv4_A) {
                a.family = AF_INET;
                memcpy(&a.u.v4, (const char *)addresses + 4 * i, 4);
            } else {
                a.family = AF_INET6;
                memcpy(&a.u.v6, (const char *)addresses + 16 * i, 16);
            }
            answer_add(&ans, &a);
        }
        query_complete(q, &ans, ttl);
        return;
    }
    int nodata = result == DNS_ERR_NODATA || (result == DNS_ERR_NONE && count <= 0);
    if (nodata && !q->want_aaaa) {
        /* The name exists without an A record: it may be IPv6 only. */
        q->want_aaaa = 1;
        if (query_send(q) == 0)
            return;
        ans.error = PD_DNS_EFAIL;
    } else {
        ans.error = nodata ? PD_DNS_ENOTFOUND : map_error(result);
    }
    query_complete(q, &ans, 0);
}

/*
 * dns_timeout ran out. evdns retransmits within the budget (set_timeout), but
 * its own clock runs per attempt and per nameserver, and a nameserver it
 * marked down holds the query longer: this is the bound the caller gets. The
 * lookup is cancelled; its late callback finds no registered id.
 */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct query *q = arg;
    (void)fd;
    (void)what;
    pd_dns *dns = q->dns;
    if (q->er) {
        evdns_cancel_request(dns->evdns, q->er);
        q->er = NULL;
    }
    struct answer ans;
    memset(&ans, 0, sizeof(ans));
    ans.error = PD_DNS_ETIMEOUT;
    query_complete(q, &ans, 0);
}

/* ---- configuration ---- */

static int add_nameserver(pd_dns *dns, const char *spec)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (!spec || evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &len) != 0) {
        fprintf(stderr, "dns: bad nameserver address '%s'\n", spec ? spec : "(null)");
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (sin->sin_port == 0)
            sin->sin_port = htons(53);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (sin6->sin6_port == 0)
            sin6->sin6_port = htons(53);
    } else {
        fprintf(stderr, "dns: bad nameserver address '%s'\n", spec);
        return -1;
    }
    if (evdns_base_nameserver_sockaddr_add(dns->evdns, (struct sockaddr *)&ss,
                                           (ev_socklen_t)len, 0) != 0) {
        fprintf(stderr, "dns: cannot use nameserver '%s'\n", spec);
        return -1;
    }
    return 0;
}

static int set_timeout(pd_dns *dns, int timeout)
{
    /* timeout is the whole budget of a query; retransmit within it. */
    int per = timeout < RETRANSMIT_INTERVAL ? timeout : RETRANSMIT_INTERVAL;
    int attempts = (timeout + per - 1) / per;
    char pbuf[16], abuf[16];
    snprintf(pbuf, sizeof(pbuf), "%d", per);
    snprintf(abuf, sizeof(abuf), "%d", attempts);
    if (evdns_base_set_option(dns->evdns, "timeout", pbuf) != 0 ||
        evdns_base_set_option(dns->evdns, "attempts", abuf) != 0 ||
        evdns_base_set_option(dns->evdns, "max-inflight", MAX_INFLIGHT) != 0) {
        fprintf(stderr, "dns: cannot set resolver options\n");
        return -1;
    }
    return 0;
}

/* Add one hosts-file line ("address name [alias...]", '#' comments) to the table. */
static void hosts_line(pd_dns *dns, char *line)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r\n", &save);
    if (!tok)
        return;
    struct dns_addr a;
    memset(&a, 0, sizeof(a));
    if (parse_literal(tok, &a) != 0 || tok[0] == '[')
        return;                         /* e.g. fe80::1%eth0: not usable here */
    while ((tok = strtok_r(NULL, " \t\r\n", &save))) {
        char name[MAX_NAME_LEN + 1];
        if (normalize_name(tok, name) != 0)
            continue;
        uint64_t h = hash_name(name);
        struct entry *e = entry_find(dns, name, h);
        if (!e) {
            e = entry_new(dns, name, h);
            if (!e)
                return;
            e->permanent = 1;
            e->has_answer = 1;
        }
        answer_add(&e->ans, &a);
    }
}

static void load_hosts(pd_dns *dns, const char *path, int explicit)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (explicit)
            fprintf(stderr, "dns: cannot read hosts file %s: %s\n", path, strerror(errno));
        return;
    }
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            int c;                      /* absurdly long line: skip it */
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
            continue;
        }
        hosts_line(dns, line);
    }
    fclose(f);
}

/* ---- public API ---- */

pd_dns *pd_dns_new(struct event_base *base, const pd_dns_opts *opts)
{
    static const pd_dns_opts defaults = {
        .positive_ttl_max = DEFAULT_POSITIVE_TTL_MAX,
        .negative_ttl = DEFAULT_NEGATIVE_TTL,
        .timeout = DEFAULT_TIMEOUT,
    };
    if (!base) {
        fprintf(stderr, "dns: no event base\n");
        return NULL;
    }
    if (!opts)
        opts = &defaults;
    if (opts->n_nameservers > 0 && !opts->nameservers) {
        fprintf(stderr, "dns: nameserver list missing\n");
        return NULL;
    }

    pd_dns *dns = calloc(1, sizeof(*dns));
    if (!dns) {
        fprintf(stderr, "dns: out of memory\n");
        return NULL;
    }
    dns->magic = DNS_MAGIC;
    dns->base = base;
    dns->now_ms = monotonic_ms;
    dns->positive_ttl_max = opts->positive_ttl_max > 0 ? opts->positive_ttl_max : 0;
    dns->negative_ttl = opts->negative_ttl > 0 ? opts->negative_ttl : 0;
    dns->max_entries = MAX_CACHE_ENTRIES;
    dns->tab_size = 256;
    dns->tab = calloc(dns->tab_size, sizeof(*dns->tab));
    TAILQ_INIT(&dns->lru);
    TAILQ_INIT(&dns->queries);
    /* DISABLE_WHEN_INACTIVE: an idle resolver must not keep the loop alive. */
    dns->evdns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!dns->tab || !dns->evdns) {
        fprintf(stderr, "dns: cannot create resolver\n");
        goto fail;
    }

    if (opts->n_nameservers > 0) {
        for (int i = 0; i < opts->n_nameservers; i++)
            if (add_nameserver(dns, opts->nameservers[i]) != 0)
                goto fail;
    } else {
        /* Nameservers only: no search list, no hosts file, no options. */
        evdns_base_resolv_conf_parse(dns->evdns, DNS_OPTION_NAMESERVERS, DEFAULT_RESOLV_CONF);
        if (evdns_base_count_nameservers(dns->evdns) == 0) {
            fprintf(stderr, "dns: no nameserver in %s\n", DEFAULT_RESOLV_CONF);
            goto fail;
        }
    }
    dns->timeout = opts->timeout > 0 ? opts->timeout : DEFAULT_TIMEOUT;
    if (set_timeout(dns, dns->timeout) != 0)
        goto fail;

    if (!opts->hosts_file)
        load_hosts(dns, DEFAULT_HOSTS_FILE, 0);
    else if (strcmp(opts->hosts_file, "none") != 0)
        load_hosts(dns, opts->hosts_file, 1);
    return dns;

fail:
    pd_dns_free(dns);
    return NULL;
}

void pd_dns_free(pd_dns *dns)
{
    if (!dns || dns->dying)
        return;
    assert(dns->magic == DNS_MAGIC);
    dns->dying = 1;

    /*
     * fail_requests = 0: queries in flight are dropped without a callback.
     * One whose reply was already parsed still has its callback queued on
     * the base: its id leaves the registry below, so it will be ignored.
     */
    if (dns->evdns)
        evdns_base_free(dns->evdns, 0);
    dns->evdns = NULL;

    struct query *q;
    while ((q = TAILQ_FIRST(&dns->queries))) {
        TAILQ_REMOVE(&dns->queries, q, link);
        reg_del(q);
        q->e->q = NULL;
        query_free(q);
    }
    for (size_t i = 0; dns->tab && i < dns->tab_size; i++) {
        struct entry *e = dns->tab[i], *next;
        for (; e; e = next) {
            next = e->hnext;
            free(e);
        }
    }
    free(dns->tab);
    dns->tab = NULL;
    dns->n_entries = dns->n_lru = 0;
    TAILQ_INIT(&dns->lru);

    /* Inside one of our callbacks: the outermost one releases the struct. */
    if (dns->depth == 0)
        release(dns);
}

pd_dns_req *pd_dns_resolve(pd_dns *dns, const char *host, pd_dns_cb cb, void *arg)
{
    if (!dns || !cb || dns->dying)
        return NULL;
    assert(dns->magic == DNS_MAGIC);

    struct answer ans;
    memset(&ans, 0, sizeof(ans));
    if (!host) {
        ans.error = PD_DNS_ENOTFOUND;
        deliver_now(dns, &ans, cb, arg);
        return NULL;
    }
    if (parse_literal(host, &ans.addr[0]) == 0) {
        ans.n = 1;
        deliver_now(dns, &ans, cb, arg);
        return NULL;
    }
    char name[MAX_NAME_LEN + 1];
    if (normalize_name(host, name) != 0) {
        ans.error = PD_DNS_ENOTFOUND;
        deliver_now(dns, &ans, cb, arg);
        return NULL;
    }

    uint64_t h = hash_name(name);
    struct entry *e = entry_find(dns, name, h);
    if (e && !e->q && (e->permanent || (e->has_answer && dns->now_ms() < e->expires_ms))) {
        dns->stats.cache_hits++;
        if (!e->permanent)
            lru_touch(dns, e);
        ans = e->ans;                   /* e may go away during the callback */
        deliver_now(dns, &ans, cb, arg);
        return NULL;
    }

    pd_dns_req *r = calloc(1, sizeof(*r));
    if (!r) {
        ans.error = PD_DNS_EFAIL;
        deliver_now(dns, &ans, cb, arg);
        return NULL;
    }
    r->magic = REQ_MAGIC;
    r->cb = cb;
    r->arg = arg;

    struct query *q = e ? e->q : NULL;
    if (!q) {
        /* No answer yet, or an expired one: start a query. */
        if (!e)
            e = entry_new(dns, name, h);
        q = calloc(1, sizeof(*q));
        if (!e || !q || reg_add(q) != 0) {
            free(q);
            goto fail;
        }
        q->dns = dns;
        q->e = e;
        TAILQ_INIT(&q->waiters);
        struct timeval tv = { dns->timeout, 0 };
        q->deadline = evtimer_new(dns->base, deadline_cb, q);
        if (!q->deadline || evtimer_add(q->deadline, &tv) != 0 || query_send(q) != 0) {
            reg_del(q);
            if (q->deadline)
                event_free(q->deadline);
            free(q);
            goto fail;
        }
        lru_remove(dns, e);
        e->q = q;
        TAILQ_INSERT_TAIL(&dns->queries, q, link);
    }
    r->q = q;
    TAILQ_INSERT_TAIL(&q->waiters, r, link);
    return r;

fail:
    if (e && !e->q && !e->in_lru && !e->permanent)
        entry_free(dns, e);
    r->magic = 0;
    free(r);
    ans.error = PD_DNS_EFAIL;
    deliver_now(dns, &ans, cb, arg);
    return NULL;
}

void pd_dns_cancel(pd_dns_req *req)
{
    if (!req)
        return;
    assert(req->magic == REQ_MAGIC);
    if (!req->q)
        return;                         /* its own callback is running */
    /* The query goes on and fills the cache for the next caller. */
    TAILQ_REMOVE(&req->q->waiters, req, link);
    req->magic = 0;
    free(req);
}

struct evdns_base *pd_dns_evdns(pd_dns *dns)
{
    return dns ? dns->evdns : NULL;
}

void pd_dns_get_stats(const pd_dns *dns, pd_dns_stats *out)
{
    if (!out)
        return;
    if (!dns) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = dns->stats;
    out->cached_entries = dns->n_lru;
}
