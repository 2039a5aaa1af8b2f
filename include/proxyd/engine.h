/*
 * engine: what a worker's request engine (client*.c, upstream.c, tunnel.c)
 * works with: the event loop, the configuration, the per-process services,
 * and its own connections. The worker fills in the first part and owns those
 * services; the engine owns its connections (the lists). The engine knows
 * nothing else of the worker: when a client connection closes it calls
 * conn_closed (connection caps, the end of a drain).
 */
#ifndef PROXYD_ENGINE_H
#define PROXYD_ENGINE_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "proxyd/conf.h"

typedef struct pd_dns pd_dns;
typedef struct pd_upool pd_upool;
typedef struct pd_access_log pd_access_log;
typedef struct pd_acl_rules pd_acl_rules;
typedef struct pd_cache_store pd_cache_store;
typedef struct pd_refresh_rules pd_refresh_rules;
typedef struct pd_auth pd_auth;
typedef struct pd_ext pd_ext;
typedef struct pd_helper pd_helper;
struct pd_client;
struct pd_idle;
struct pd_ipcount;
struct pd_stats_slot;
#define PD_IPCOUNT_BUCKETS 256

typedef struct pd_engine {
    /* set up by the worker */
    struct event_base *base;
    const pd_conf *conf;
    const pd_acl_rules *acl;    /* NULL: http_access not compiled (allow) */
    const pd_refresh_rules *refresh;
    const struct pd_hdr_rules *hdr; /* header rules (headers.h), NULL: none */
    struct pd_peers *peers;         /* cache_peer and peer state (peer.h), NULL: none */
    struct pd_icp *icp;             /* ICP server and queries (icp.h), NULL: none */
    struct pd_cluster *cluster;     /* proxyd_cluster membership (cluster.h), NULL: none */
    pd_dns *dns;
    pd_upool *upool;
    pd_access_log *alog;
    pd_cache_store *store;      /* shared object cache, NULL when disabled */
    pd_auth *auth;              /* auth_param basic (its helpers), NULL when not configured */
    pd_ext *ext;                /* external_acl_type helpers, NULL when none */
    pd_helper *rewrite;         /* url_rewrite_program's pool, NULL when none */
    struct pd_anscache *rewrite_answers; /* url_rewrite_cache_ttl's answers, NULL: off */
    pd_helper *store_id;        /* store_id_program's pool, NULL when none */
    struct pd_stats_slot *stats; /* this worker's counters; may be NULL */
    char via[320];              /* "<unique_hostname or visible_hostname> (proxyd/VERSION)" */
    char hostname[256];         /* visible_hostname */
    int draining;               /* no keep-alive; waiting connections close */
    void (*conn_closed)(void *arg); /* a client connection closed */
    void *conn_closed_arg;
    /* proxyd's own listeners (http_port and admin_port, as bound): never a destination */
    struct sockaddr_storage own[2 * PD_CONF_MAX_PORTS];
    unsigned char own_intercept[2 * PD_CONF_MAX_PORTS]; /* own[i] is an intercept http_port */
    int n_own;

    /* the engine's own */
    TAILQ_HEAD(, pd_client) clients; /* connections serving a request */
    TAILQ_HEAD(, pd_idle) idle;      /* connections waiting for one (client_idle.c) */
    int n_clients;                   /* both */
    /* background revalidations (client_bg.c): transactions without a client
     * connection, not counted in n_clients (a drain does not wait for them) */
    TAILQ_HEAD(, pd_client) bg;
    int n_bg;
    int n_cache_waiters;             /* clients waiting on an object being written */
    struct pd_ipcount *ipc[PD_IPCOUNT_BUCKETS]; /* open connections per client address */
} pd_engine;

/* Empty lists and counts; the caller fills in the first part. */
void pd_engine_init(pd_engine *e);

/*
 * Whether dst (a resolved destination with its port) is one of e->own, or
 * reaches one: its port is that listener's and its address is the listener's
 * or, for a wildcard listener, one of this host's. Such a destination is never
 * forwarded to, whatever http_access says.
 */
int pd_engine_own_listener(const pd_engine *e, const struct sockaddr_storage *dst);

#endif
