/*
 * cluster: proxyd instances that find each other by one DNS name and act as
 * one cache (`proxyd_cluster NAME [PORT] [options]`).
 *
 * The name (in Kubernetes a headless Service, in Docker a network alias)
 * resolves to every member's address; it is resolved again when its TTL runs
 * out (within min-ttl..max-ttl). Each cacheable request's key is hashed with
 * CARP over the members to its owner: the owner answers it from its cache or
 * fetches it, once; any other member forwards the request to the owner and
 * stores nothing (so N members hold N times the distinct objects). A request
 * a member forwarded carries `Proxyd-Cluster: NAME` and is always served by
 * the member that receives it, never forwarded again.
 *
 * This module is the membership and the choice of the owner; the request
 * path's part is client_cluster.c. State is per worker: each worker resolves
 * the name and finds dead members by itself (as with cache_peer parents).
 */
#ifndef PROXYD_CLUSTER_H
#define PROXYD_CLUSTER_H

#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "proxyd/conf.h"

struct event_base;
struct evdns_base;

#define PD_CLUSTER_MAX 64       /* members taken from one answer */
#define PD_CLUSTER_HEADER "Proxyd-Cluster"

typedef struct pd_cluster pd_cluster;

/*
 * Check the proxyd_cluster line of conf: errors as "file:line: message" to
 * err (NULL = stderr). Returns the number of errors (0 also without a line).
 */
int pd_cluster_check(const pd_conf *conf, FILE *err);

/* Whether addr (with its port) is one of this proxy's own listeners. */
typedef int (*pd_cluster_self_fn)(void *arg, const struct sockaddr_storage *addr);

/*
 * The cluster of conf's proxyd_cluster line, or NULL when there is none (or
 * it does not parse: pd_cluster_check reported that at load). default_port:
 * the members' port when the line names none (the first http_port as bound).
 * is_self (may be NULL) recognises this proxy among the members besides the
 * line's self= addresses. Starts with no members. Free with pd_cluster_free.
 */
pd_cluster *pd_cluster_new(const pd_conf *conf, int default_port, pd_cluster_self_fn is_self,
                           void *self_arg);
void pd_cluster_free(pd_cluster *cl);

/*
 * Resolve the name now on base through dns (the worker's evdns base, so
 * dns_nameservers apply), and again at every TTL. An IP literal is the one
 * member at once and is never resolved. Returns 0, -1 on failure.
 */
int pd_cluster_start(pd_cluster *cl, struct event_base *base, struct evdns_base *dns);

/*
 * Make addrs[0..n-1] (ports ignored; duplicates dropped; at most
 * PD_CLUSTER_MAX) the member set. Members that stay keep their dead state.
 * Returns the number of members.
 */
int pd_cluster_set_members(pd_cluster *cl, const struct sockaddr_storage *addrs, int n);

/* Members now (this proxy included when it is one); whether it is one. */
int pd_cluster_size(const pd_cluster *cl);
int pd_cluster_self_member(const pd_cluster *cl);
const char *pd_cluster_name(const pd_cluster *cl);

/*
 * The owner of key (the request's cache key) among the members that are
 * alive and not in skip[0..n_skip-1] (addresses with port: those this request
 * tried already), by CARP. Returns 1 with the owner's address and port in
 * *owner when it is another member; 0 when it is this proxy, or when no
 * member is left (then the request is served here).
 */
int pd_cluster_owner(const pd_cluster *cl, const char *key, size_t len, int64_t now_s,
                     const struct sockaddr_storage *skip, int n_skip,
                     struct sockaddr_storage *owner);

/* A connect to member (address with port) succeeded / failed (now in seconds). */
void pd_cluster_connected(pd_cluster *cl, const struct sockaddr_storage *member);
void pd_cluster_failed(pd_cluster *cl, const struct sockaddr_storage *member, int64_t now_s);

/* connect-timeout= in ms */
int64_t pd_cluster_connect_timeout(const pd_cluster *cl);

/* The CARP score of key on member address text ip (for the unit tests and bench). */
double pd_cluster_score(const char *key, size_t len, const char *ip);

#endif
