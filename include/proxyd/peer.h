/*
 * peer: cache_peer parents and where a miss goes (Squid's peer selection).
 *
 * pd_peers_compile reads the cache_peer, cache_peer_access, never_direct,
 * always_direct, prefer_direct and nonhierarchical_direct lines once per
 * configuration generation. pd_peer_select turns one request into the
 * ordered list of places to try: parents (with the hierarchy code Squid logs
 * for each) and DIRECT, as Squid's peer_select.cc orders them. upstream.c
 * walks the list, reporting each connect's outcome with pd_peer_connected /
 * pd_peer_failed, which keep the round-robin counters and the dead-peer state.
 *
 * Siblings are never candidates of pd_peer_select: upstream.c puts one first
 * when it answered ICP_HIT (icp.c), as Squid's SIBLING_HIT.
 *
 * State: the compiled object is made in the master and inherited by each
 * worker at fork; the counters and dead flags are then each worker's own
 * (a worker finds a dead parent by itself, as each Squid kid does).
 */
#ifndef PROXYD_PEER_H
#define PROXYD_PEER_H

#include <stdint.h>
#include <stdio.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"

typedef struct pd_peers pd_peers;

/*
 * Compile the peering directives of conf against acl. Errors are written as
 * "file:line: message" to err (NULL = stderr) and counted in *n_errors.
 * Returns NULL on errors; an object with no peers when none are configured.
 * Free with pd_peers_free.
 */
pd_peers *pd_peers_compile(const pd_conf *conf, const pd_acl_rules *acl, FILE *err,
                           int *n_errors, int *n_warnings);
void pd_peers_free(pd_peers *ps);

/* Is anything configured that changes "always go direct"? (NULL: no) */
int pd_peers_active(const pd_peers *ps);

/* Where to try, in order. peer -1 is DIRECT. */
#define PD_PEER_MAX_CAND 16
typedef struct pd_peer_cand {
    int peer;           /* index into the cache_peer lines, or -1: direct */
    const char *hier;   /* Squid's hierarchy code: "ROUNDROBIN_PARENT", "HIER_DIRECT", ... */
} pd_peer_cand;

/*
 * The candidates for one request (req: the acl view of it; hierarchical: 0
 * for what Squid never sends to a parent unless it must, see peer.c), now in
 * seconds. Fills out[0..max-1]; returns how many (0: nowhere is allowed).
 */
int pd_peer_select(pd_peers *ps, const pd_acl_req *req, int hierarchical, int64_t now,
                   pd_peer_cand *out, int max);

/* The connect to peer i succeeded / failed (now in seconds). */
void pd_peer_connected(pd_peers *ps, int i);
void pd_peer_failed(pd_peers *ps, int i, int64_t now);

/* About peer i: its name= (or host), host, HTTP port, connect timeout in ms
 * (0: connect_timeout), and the credentials value for login= (or NULL;
 * sent as Proxy-Authorization, as Authorization to an originserver peer).
 * Strings belong to ps. */
const char *pd_peer_name(const pd_peers *ps, int i);
const char *pd_peer_host(const pd_peers *ps, int i);
int pd_peer_port(const pd_peers *ps, int i);
int64_t pd_peer_connect_timeout(const pd_peers *ps, int i);
const char *pd_peer_auth(const pd_peers *ps, int i);
int pd_peer_is_dead(const pd_peers *ps, int i, int64_t now);
/* originserver: requests to it in origin-form, as to the origin (upstream.c) */
int pd_peer_origin_server(const pd_peers *ps, int i);
/* The ICP round-trip time icp.c measured to peer i (ms, its running mean);
 * weighted-round-robin divides it by weight= */
void pd_peer_set_rtt(pd_peers *ps, int i, int rtt_ms);

/*
 * ICP. The peers to ask about this miss (Squid's peerWouldBePinged, in
 * configuration order): parents and siblings with an ICP port and without
 * no-query, allowed by cache_peer_access; siblings only when hierarchical and
 * sibling_ok (the request is not no-cache, a reload or a revalidation). None
 * when always_direct allows the request, or when it is not hierarchical and
 * never_direct does not force a parent. Fills out[0..max-1], returns how many.
 */
int pd_peer_icp_targets(pd_peers *ps, const pd_acl_req *req, int hierarchical, int sibling_ok,
                        int *out, int max);
/* icp_access for a query (req: its source and URL); no line: denied. 1 allowed. */
int pd_peers_icp_allowed(const pd_peers *ps, const pd_acl_req *req);
int pd_peers_count(const pd_peers *ps);
int pd_peer_is_sibling(const pd_peers *ps, int i);
int pd_peer_icp_port(const pd_peers *ps, int i);   /* 0: not asked by ICP */
int pd_peer_weight(const pd_peers *ps, int i);
int pd_peer_proxy_only(const pd_peers *ps, int i); /* what came from it is not stored */
int pd_peer_closest_only(const pd_peers *ps, int i); /* never FIRST_PARENT_MISS */
int pd_peer_allow_miss(const pd_peers *ps, int i);   /* a sibling without only-if-cached */

/*
 * max-conn=N: a transaction holding a connection to peer i (connecting,
 * sending, reading; not idle in the pool) counts once, from
 * pd_peer_conn_opened to pd_peer_conn_closed. A peer with N such connections
 * in this worker is full: selection skips it. Idle pooled connections are
 * reused before a new one is opened, so a worker never has more than N open.
 */
int pd_peer_full(const pd_peers *ps, int i);
void pd_peer_conn_opened(pd_peers *ps, int i);
void pd_peer_conn_closed(pd_peers *ps, int i);

/* forward_max_tries */
int pd_peers_max_tries(const pd_peers *ps);

#endif
