/*
 * worker: one worker process's state and its event loop. A worker accepts on
 * its own SO_REUSEPORT sockets (opened by the master before fork), serves
 * clients until told to drain, and exits when its last client is gone or the
 * drain deadline passes. Its configuration is fixed for its whole life: a
 * reload replaces workers, it never mutates one.
 */
#ifndef PROXYD_WORKER_H
#define PROXYD_WORKER_H

#include <stdint.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proxyd/conf.h"

typedef struct pd_dns pd_dns;
typedef struct pd_upool pd_upool;
typedef struct pd_access_log pd_access_log;
typedef struct pd_acl_rules pd_acl_rules;
typedef struct pd_cache_store pd_cache_store;
typedef struct pd_refresh_rules pd_refresh_rules;
struct pd_client;
struct pd_idle;
struct pd_ipcount;
#define PD_IPCOUNT_BUCKETS 256

typedef struct pd_worker {
    struct event_base *base;
    const pd_conf *conf;
    const pd_acl_rules *acl;    /* NULL: http_access not compiled (allow) */
    pd_dns *dns;
    pd_upool *upool;
    pd_access_log *alog;
    pd_cache_store *store;      /* shared object cache, NULL when disabled */
    const pd_refresh_rules *refresh;
    int cache_slot;             /* this process's slot in the store */
    struct event *cache_ev;     /* the store's notify eventfd for cache_slot */
    int n_cache_waiters;        /* clients waiting on an object being written */
    int slot;                   /* worker number, 0..workers-1 */
    int generation;             /* config generation (reloads) */

    struct evconnlistener *listeners[PD_CONF_MAX_PORTS];
    uint16_t listen_port[PD_CONF_MAX_PORTS];
    int n_listeners;
    int accept_paused;          /* listeners disabled: connection cap or EMFILE */
    struct event *accept_retry; /* re-enables accept after EMFILE */
    unsigned accept_errors;     /* failed accepts since the last one that worked */

    TAILQ_HEAD(, pd_client) clients; /* connections serving a request */
    TAILQ_HEAD(, pd_idle) idle;      /* connections waiting for one (client_idle.c) */
    int n_clients;                   /* both */
    int draining;
    struct event *drain_deadline;
    struct event *sig_term, *sig_int, *sig_usr1;

    struct pd_ipcount *ipc[PD_IPCOUNT_BUCKETS]; /* open connections per client address */
    struct pd_stats_slot *stats; /* this worker's counters in the shared segment; may be NULL */
    struct event *stats_timer;  /* folds DNS and pool figures into stats */
    uint64_t dns_seen[3];       /* DNS queries, cache hits, failures already counted */

    char via[320];              /* "1.1 <visible_hostname> (proxyd/VERSION)" */
    char hostname[256];         /* visible_hostname */
} pd_worker;

/* What the master hands a new worker. */
typedef struct pd_worker_init {
    const pd_conf *conf;
    const pd_acl_rules *acl;
    const pd_refresh_rules *refresh;
    pd_cache_store *store;      /* NULL: no cache */
    int cache_slot;
    int slot, generation;
    const int *fds;             /* fds[i] serves conf->http_port[i] */
    int n_fds;
} pd_worker_init;

/* Run a worker until it has drained; returns the process exit status. */
int pd_worker_run(const pd_worker_init *init);

/* Called by client.c when a client is gone (for connection caps and drain). */
void pd_worker_client_closed(pd_worker *w);

#endif
