/*
 * worker: a worker process's event loop (see include/proxyd/worker.h).
 */
#include "proxyd/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "proxyd/access_log.h"
#include "proxyd/cache_store.h"
#include "proxyd/clock.h"
#include "proxyd/cluster.h"
#include "proxyd/client.h"
#include "proxyd/dns.h"
#include "proxyd/auth.h"
#include "proxyd/engine.h"
#include "proxyd/ext_acl.h"
#include "proxyd/anscache.h"
#include "proxyd/helper.h"
#include "proxyd/icp.h"
#include "proxyd/log.h"
#include "proxyd/peer.h"
#include "proxyd/stats.h"
#include "proxyd/upool.h"

struct pd_worker {
    pd_engine eng;              /* what the request engine works with (engine.h) */
    int cache_slot;             /* this process's slot in the store */
    struct event *cache_ev;     /* the store's notify eventfd for cache_slot */
    int slot;                   /* worker number, 0..workers-1 */
    int generation;             /* config generation (reloads) */

    struct evconnlistener *listeners[PD_CONF_MAX_PORTS];
    uint16_t listen_port[PD_CONF_MAX_PORTS];
    int n_listeners;
    int accept_paused;          /* listeners disabled: connection cap or EMFILE */
    struct event *accept_retry; /* re-enables accept after EMFILE */
    unsigned accept_errors;     /* failed accepts since the last one that worked */

    struct event *drain_deadline;
    struct event *sig_term, *sig_int, *sig_usr1;

    struct event *stats_timer;  /* folds DNS and pool figures into stats */
    uint64_t dns_seen[3];       /* DNS queries, cache hits, failures already counted */
};

static void set_accepting(pd_worker *w, int on)
{
    for (int i = 0; i < w->n_listeners; i++) {
        if (!w->listeners[i])
            continue;
        if (on)
            evconnlistener_enable(w->listeners[i]);
        else
            evconnlistener_disable(w->listeners[i]);
    }
    w->accept_paused = !on;
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    pd_worker *w = arg;
    uint16_t port = 0;
    for (int i = 0; i < w->n_listeners; i++)
        if (w->listeners[i] == l)
            port = w->listen_port[i];
    if (w->accept_errors) {
        pd_log_warn("worker %d: accepting again after %u failed attempts", w->slot,
                    w->accept_errors);
        w->accept_errors = 0;
    }
    pd_client_accept(&w->eng, fd, sa, salen, port);
    if (w->eng.n_clients >= w->eng.conf->max_client_connections && !w->accept_paused) {
        pd_log_warn("worker %d: %d client connections (max_client_connections): accept paused",
                    w->slot, w->eng.n_clients);
        set_accepting(w, 0);
    }
}

static void accept_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_worker *w = arg;
    if (!w->eng.draining && w->eng.n_clients < w->eng.conf->max_client_connections)
        set_accepting(w, 1);
}

/* accept() failed: out of descriptors or memory. Pause instead of spinning. */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    pd_worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        /* once per episode: while descriptors stay exhausted this runs 10 times a second */
        if (w->accept_errors++ == 0)
            pd_log_warn("worker %d: accept: %s: paused, retried every 100 ms", w->slot,
                        strerror(err));
        set_accepting(w, 0);
        struct timeval tv = { 0, 100 * 1000 };
        evtimer_add(w->accept_retry, &tv);
    }
}

/* The engine says a client connection closed. */
static void client_closed(void *arg)
{
    pd_worker *w = arg;
    if (w->eng.draining) {
        if (w->eng.n_clients == 0)
            event_base_loopexit(w->eng.base, NULL);
        return;
    }
    if (w->accept_paused && w->eng.n_clients < w->eng.conf->max_client_connections &&
        !evtimer_pending(w->accept_retry, NULL))
        set_accepting(w, 1);
}

/*
 * dns.c and upool.c keep their own per-process counters: fold what changed
 * since the last call into the shared slot, so that a restart loses at most
 * one second of them.
 */
static void stats_sync(pd_worker *w)
{
    pd_dns_stats d;
    pd_upool_stats u;
    pd_dns_get_stats(w->eng.dns, &d);
    pd_upool_get_stats(w->eng.upool, &u);
    uint64_t now[3] = { d.queries, d.cache_hits, d.failures };
    static const enum pd_stat_id ids[3] = { PD_STAT_DNS_QUERIES, PD_STAT_DNS_CACHE_HITS,
                                            PD_STAT_DNS_FAILURES };
    for (int i = 0; i < 3; i++) {
        pd_stats_add(w->eng.stats, ids[i], (int64_t)(now[i] - w->dns_seen[i]));
        w->dns_seen[i] = now[i];
    }
    pd_stats_set(w->eng.stats, PD_STAT_ORIGIN_CONNS_IDLE, u.idle);
}

static void stats_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    stats_sync(arg);
}

static void drain_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_worker *w = arg;
    pd_log_warn("worker %d: shutdown_lifetime reached with %d clients: closing them", w->slot,
                w->eng.n_clients);
    event_base_loopexit(w->eng.base, NULL);
}

static void start_drain(pd_worker *w)
{
    if (w->eng.draining)
        return;
    w->eng.draining = 1;
    for (int i = 0; i < w->n_listeners; i++) {
        if (w->listeners[i])
            evconnlistener_free(w->listeners[i]);
        w->listeners[i] = NULL;
    }
    pd_upool_flush(w->eng.upool);
    pd_client_drain_all(&w->eng);
    if (w->eng.n_clients == 0) {
        event_base_loopexit(w->eng.base, NULL);
        return;
    }
    struct timeval tv = pd_clock_tv(w->eng.conf->shutdown_lifetime);
    evtimer_add(w->drain_deadline, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    pd_worker *w = arg;
    if (sig == SIGTERM || sig == SIGINT) {
        start_drain(w);
    } else if (sig == SIGUSR1) {
        if (pd_log_reopen(w->eng.conf->cache_log) < 0)
            pd_log_error("worker %d: cannot reopen cache_log %s: %s", w->slot, w->eng.conf->cache_log,
                         strerror(errno));
        if (w->eng.alog && pd_access_log_reopen(w->eng.alog) < 0)
            pd_log_error("worker %d: cannot reopen access_log: %s", w->slot, strerror(errno));
        pd_log_info("worker %d: log files reopened", w->slot);
    }
}

static void cache_notify_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_worker *w = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v); /* resets the eventfd */
    (void)r;
    pd_client_cache_wakeup(&w->eng);
}

/* proxyd_cluster: is this member address one of our listeners */
static int cluster_self(void *arg, const struct sockaddr_storage *addr)
{
    pd_worker *w = arg;
    return pd_engine_own_listener(&w->eng, addr);
}

int pd_worker_run(const pd_worker_init *init)
{
    const pd_conf *conf = init->conf;
    int slot = init->slot;
    const int *fds = init->fds;
    int n_fds = init->n_fds;
    pd_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return 1;
    w->eng.conf = conf;
    w->eng.acl = init->acl;
    w->eng.hdr = init->hdr;
    w->eng.peers = init->peers;
    w->eng.refresh = init->refresh;
    w->eng.store = init->store;
    w->cache_slot = init->cache_slot;
    w->slot = slot;
    w->generation = init->generation;
    w->eng.stats = pd_stats_worker_slot(pd_stats_self(), w->generation, slot);
    pd_stats_slot_claim(w->eng.stats, getpid(), w->generation, slot);
    pd_stats_set_my_slot(w->eng.stats);
    pd_engine_init(&w->eng);
    w->eng.conn_closed = client_closed;
    w->eng.conn_closed_arg = w;
    w->eng.base = event_base_new();
    if (!w->eng.base) {
        pd_log_error("worker %d: cannot create event base", slot);
        return 1;
    }
    if (conf->visible_hostname)
        snprintf(w->eng.hostname, sizeof w->eng.hostname, "%s", conf->visible_hostname);
    else if (gethostname(w->eng.hostname, sizeof w->eng.hostname - 1) < 0)
        snprintf(w->eng.hostname, sizeof w->eng.hostname, "localhost");
    /* Squid's ThisCache: Via names unique_hostname, which loop detection looks for */
    snprintf(w->eng.via, sizeof w->eng.via, "%s (proxyd/%s)",
             conf->unique_hostname ? conf->unique_hostname : w->eng.hostname, PROXYD_VERSION);

    pd_dns_opts dopts = {
        .nameservers = (const char *const *)conf->dns_nameservers,
        .n_nameservers = conf->n_dns_nameservers,
        .hosts_file = conf->hosts_file,
        .positive_ttl_max = conf->positive_dns_ttl,
        .negative_ttl = conf->negative_dns_ttl,
        .timeout = conf->dns_timeout,
    };
    w->eng.dns = pd_dns_new(w->eng.base, &dopts);
    pd_upool_opts uopts = {
        .max_idle = conf->server_pconn_max_idle,
        .max_per_key = conf->server_pconn_max_per_host,
        .idle_timeout_ms = conf->pconn_timeout,
    };
    w->eng.upool = pd_upool_new(w->eng.base, &uopts);
    w->eng.alog = pd_access_log_open(conf);
    if (!w->eng.alog) {
        /* the master opened it a moment ago; a worker that cannot log does not serve */
        pd_log_error("worker %d: cannot open access_log %s: %s; not serving", slot,
                     conf->access_log, strerror(errno));
        return 1;
    }
    if (!w->eng.dns || !w->eng.upool) {
        pd_log_error("worker %d: cannot initialise DNS or the connection pool", slot);
        return 1;
    }
    /* each worker runs its own authentication helpers, as Squid's SMP workers do */
    if (conf->auth_basic.helper.argv && !(w->eng.auth = pd_auth_create(w->eng.base, conf))) {
        pd_log_error("worker %d: cannot start the auth_param basic helpers; not serving", slot);
        return 1;
    }
    if (conf->url_rewrite.argv) {
        pd_helper_cfg hc = {
            .name = "url_rewrite", .argv = conf->url_rewrite.argv,
            .children_max = conf->url_rewrite.children_max, .startup = conf->url_rewrite.startup,
            .idle = conf->url_rewrite.idle, .concurrency = conf->url_rewrite.concurrency,
            /* as Squid: with url_rewrite_bypass the queue is 0 by default and a full
             * queue bypasses; without, an overload queues on for 3 minutes */
            .queue_size = conf->url_rewrite.queue_size < 0 && conf->url_rewrite_bypass
                              ? 0 : conf->url_rewrite.queue_size,
            .overload_grace_ms = conf->url_rewrite_bypass ? 0 : PD_HELPER_OVERLOAD_GRACE_MS,
            .timeout_ms = conf->url_rewrite_timeout > INT32_MAX ? INT32_MAX
                                                                : (int)conf->url_rewrite_timeout,
            .stats_kind = PD_HELPER_KIND_REWRITE, .stats_name = "url_rewrite",
        };
        if (!(w->eng.rewrite = pd_helper_create(w->eng.base, &hc))) {
            pd_log_error("worker %d: cannot start the url_rewrite_program helpers; not serving",
                         slot);
            return 1;
        }
        if (conf->url_rewrite_cache_ttl > 0 &&
            !(w->eng.rewrite_answers =
                  pd_anscache_new((size_t)conf->url_rewrite_cache_size))) {
            pd_log_error("worker %d: no memory for url_rewrite_cache_size; not serving", slot);
            return 1;
        }
    }
    if (conf->store_id.argv) {
        pd_helper_cfg hc = {
            .name = "store_id", .argv = conf->store_id.argv,
            .children_max = conf->store_id.children_max, .startup = conf->store_id.startup,
            .idle = conf->store_id.idle, .concurrency = conf->store_id.concurrency,
            .queue_size = conf->store_id.queue_size < 0 && conf->store_id_bypass
                              ? 0 : conf->store_id.queue_size,
            .overload_grace_ms = conf->store_id_bypass ? 0 : PD_HELPER_OVERLOAD_GRACE_MS,
            .stats_kind = PD_HELPER_KIND_STOREID, .stats_name = "store_id",
        };
        if (!(w->eng.store_id = pd_helper_create(w->eng.base, &hc))) {
            pd_log_error("worker %d: cannot start the store_id_program helpers; not serving",
                         slot);
            return 1;
        }
    }
    if (pd_acl_ext_count(w->eng.acl) && !(w->eng.ext = pd_ext_create(w->eng.base, w->eng.acl))) {
        pd_log_error("worker %d: cannot start the external_acl_type helpers; not serving", slot);
        return 1;
    }
    if (w->eng.store) {
        if (pd_cache_store_attach(w->eng.store, w->cache_slot) < 0) {
            pd_log_error("worker %d: cannot attach cache slot %d", slot, w->cache_slot);
            return 1;
        }
        w->cache_ev = event_new(w->eng.base, pd_cache_store_notify_fd(w->eng.store, w->cache_slot),
                                EV_READ | EV_PERSIST, cache_notify_cb, w);
        event_add(w->cache_ev, NULL);
    }
    int icp_peers = 0;
    for (int i = 0; i < pd_peers_count(w->eng.peers); i++)
        icp_peers |= pd_peer_icp_port(w->eng.peers, i) != 0;
    if ((init->icp_fd >= 0 || icp_peers) && !(w->eng.icp = pd_icp_new(&w->eng, init->icp_fd))) {
        pd_log_error("worker %d: cannot set up ICP; not serving", slot);
        return 1;
    }
    w->accept_retry = evtimer_new(w->eng.base, accept_retry_cb, w);
    w->drain_deadline = evtimer_new(w->eng.base, drain_deadline_cb, w);
    for (int i = 0; i < n_fds && i < PD_CONF_MAX_PORTS; i++) {
        w->listeners[i] = evconnlistener_new(w->eng.base, accept_cb, w, LEV_OPT_CLOSE_ON_FREE, 0,
                                             fds[i]);
        if (!w->listeners[i]) {
            pd_log_error("worker %d: cannot listen on fd %d", slot, fds[i]);
            return 1;
        }
        evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
        const struct sockaddr_storage *ss = &conf->http_port[i].ss;
        struct sockaddr_storage bound;
        socklen_t bl = sizeof bound;
        if (getsockname(fds[i], (struct sockaddr *)&bound, &bl) == 0)
            ss = &bound;
        w->listen_port[i] = ntohs(ss->ss_family == AF_INET6
                                      ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                      : ((const struct sockaddr_in *)ss)->sin_port);
    }
    w->n_listeners = n_fds;
    /* proxyd's own listeners are never a destination (pd_engine_own_listener) */
    for (int i = 0; i < n_fds && i < PD_CONF_MAX_PORTS; i++) {
        socklen_t bl = sizeof w->eng.own[0];
        if (getsockname(fds[i], (struct sockaddr *)&w->eng.own[w->eng.n_own], &bl) == 0)
            w->eng.own_intercept[w->eng.n_own++] = (unsigned char)conf->http_port[i].intercept;
    }
    for (int i = 0; i < init->n_admin && i < PD_CONF_MAX_PORTS; i++) {
        w->eng.own_intercept[w->eng.n_own] = 0;
        w->eng.own[w->eng.n_own++] = init->admin[i];
    }
    /* proxyd_cluster: each worker resolves the members and keeps its own view of them */
    w->eng.cluster = pd_cluster_new(conf, w->n_listeners ? w->listen_port[0] : 0, cluster_self, w);
    if (w->eng.cluster &&
        pd_cluster_start(w->eng.cluster, w->eng.base, pd_dns_evdns(w->eng.dns)) < 0) {
        pd_log_error("worker %d: cannot start resolving the proxyd_cluster name", slot);
        return 1;
    }
    w->sig_term = evsignal_new(w->eng.base, SIGTERM, signal_cb, w);
    w->sig_int = evsignal_new(w->eng.base, SIGINT, signal_cb, w);
    w->sig_usr1 = evsignal_new(w->eng.base, SIGUSR1, signal_cb, w);
    evsignal_add(w->sig_term, NULL);
    evsignal_add(w->sig_int, NULL);
    evsignal_add(w->sig_usr1, NULL);
    /* the master forked us with these blocked: what came meanwhile is handled now */
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &handled, NULL);
    w->stats_timer = event_new(w->eng.base, -1, EV_PERSIST, stats_timer_cb, w);
    struct timeval one_s = { 1, 0 };
    evtimer_add(w->stats_timer, &one_s);
    pd_stats_slot_ready(w->eng.stats);

    event_base_dispatch(w->eng.base);

    pd_client_close_all(&w->eng);
    pd_icp_free(w->eng.icp); /* after the clients: they cancel their queries */
    w->eng.icp = NULL;
    for (int i = 0; i < w->n_listeners; i++)
        if (w->listeners[i])
            evconnlistener_free(w->listeners[i]);
    event_free(w->sig_term);
    event_free(w->sig_int);
    event_free(w->sig_usr1);
    if (w->cache_ev)
        event_free(w->cache_ev);
    event_free(w->accept_retry);
    event_free(w->drain_deadline);
    stats_sync(w);
    event_free(w->stats_timer);
    pd_auth_free(w->eng.auth);
    pd_ext_free(w->eng.ext);
    pd_helper_free(w->eng.rewrite);
    pd_anscache_free(w->eng.rewrite_answers);
    pd_helper_free(w->eng.store_id);
    pd_upool_free(w->eng.upool);
    pd_cluster_free(w->eng.cluster);
    pd_dns_free(w->eng.dns);
    pd_access_log_close(w->eng.alog);
    event_base_free(w->eng.base);
    free(w);
    return 0;
}
