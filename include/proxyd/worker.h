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
#include <sys/socket.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "proxyd/conf.h"

typedef struct pd_cache_store pd_cache_store;
typedef struct pd_acl_rules pd_acl_rules;
typedef struct pd_refresh_rules pd_refresh_rules;

/* One worker process's state (worker.c). */
typedef struct pd_worker pd_worker;

/* What the master hands a new worker. */
typedef struct pd_worker_init {
    const pd_conf *conf;
    const pd_acl_rules *acl;
    const struct pd_hdr_rules *hdr; /* header rules (headers.h), NULL: none */
    struct pd_peers *peers;         /* cache_peer (peer.h), NULL: none; the worker's to update */
    const pd_refresh_rules *refresh;
    pd_cache_store *store;      /* NULL: no cache */
    int cache_slot;
    int slot, generation;
    const int *fds;             /* fds[i] serves conf->http_port[i] */
    int n_fds;
    int icp_fd;                 /* this worker's icp_port socket, -1: none */
    const struct sockaddr_storage *admin; /* the admin listener's addresses, as bound */
    int n_admin;
} pd_worker_init;

/* Run a worker until it has drained; returns the process exit status. */
int pd_worker_run(const pd_worker_init *init);


#endif
