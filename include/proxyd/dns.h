/*
 * dns: asynchronous name resolution with a per-worker answer cache.
 *
 * Wraps libevent's evdns. Answers are cached for their TTL (capped by
 * positive_dns_ttl), failures for negative_dns_ttl. IP literals resolve
 * immediately without a query. /etc/hosts (hosts_file) entries are loaded at
 * creation and never expire. Concurrent lookups of the same name share one
 * query.
 */
#ifndef PROXYD_DNS_H
#define PROXYD_DNS_H

#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>

#define PD_DNS_MAX_ADDRS 8

typedef struct pd_dns pd_dns;
typedef struct pd_dns_req pd_dns_req;

typedef struct pd_dns_result {
    int error;                      /* 0 ok, else a PD_DNS_E* code */
    int n;                          /* number of addresses (port 0) */
    struct sockaddr_storage addr[PD_DNS_MAX_ADDRS];
    socklen_t addrlen[PD_DNS_MAX_ADDRS];
} pd_dns_result;

enum { PD_DNS_OK = 0, PD_DNS_ENOTFOUND = 1, PD_DNS_ETIMEOUT = 2, PD_DNS_EFAIL = 3 };

typedef struct pd_dns_opts {
    const char *const *nameservers; /* "ip" or "ip:port"; NULL/0 = /etc/resolv.conf */
    int n_nameservers;
    const char *hosts_file;         /* NULL = /etc/hosts, "none" = no hosts file */
    int positive_ttl_max;           /* seconds */
    int negative_ttl;               /* seconds */
    int timeout;                    /* seconds per query */
} pd_dns_opts;

/* Callback: result is valid only during the call. */
typedef void (*pd_dns_cb)(const pd_dns_result *result, void *arg);

/* Create a resolver on base. Returns NULL on failure (message to stderr). */
pd_dns *pd_dns_new(struct event_base *base, const pd_dns_opts *opts);
void pd_dns_free(pd_dns *dns);

/*
 * Resolve host (a name or an IPv4/IPv6 literal, without brackets). If the
 * answer is known (literal, hosts file or fresh cache entry), cb is called
 * before pd_dns_resolve returns and NULL is returned. Otherwise returns a
 * handle that can be cancelled with pd_dns_cancel (cb is then never called);
 * the handle is invalid after cb ran.
 */
pd_dns_req *pd_dns_resolve(pd_dns *dns, const char *host, pd_dns_cb cb, void *arg);
void pd_dns_cancel(pd_dns_req *req);

/*
 * The evdns base the resolver asks through (its name servers and timeouts),
 * for a module that needs what pd_dns_resolve does not give: every record of
 * both families and their TTL (cluster.c). Owned by dns.
 */
struct evdns_base *pd_dns_evdns(pd_dns *dns);

/* Counters for stats. */
typedef struct pd_dns_stats {
    uint64_t queries;           /* DNS questions sent (A, and AAAA when no A) */
    uint64_t cache_hits;        /* answered from the cache or the hosts file */
    uint64_t failures;          /* lookups that ended in an error */
    uint64_t cached_entries;    /* answers in the cache now (hosts excluded) */
} pd_dns_stats;
void pd_dns_get_stats(const pd_dns *dns, pd_dns_stats *out);

#endif
