/*
 * upool: per-worker pool of idle keep-alive connections to origins.
 *
 * Keyed by "host:port" (the origin as the client named it) plus the peer
 * address. An idle connection is watched: if the origin closes it or sends
 * anything, it is dropped. Idle connections expire after idle_timeout_ms, and
 * the pool keeps at most max_idle in total and max_per_key per key (the oldest
 * is closed first).
 */
#ifndef PROXYD_UPOOL_H
#define PROXYD_UPOOL_H

#include <stdint.h>
#include <event2/event.h>

#include "proxyd/conn.h"
#include "proxyd/conn.h"

typedef struct pd_upool pd_upool;

typedef struct pd_upool_opts {
    int max_idle;          /* total idle connections */
    int max_per_key;       /* idle connections per key */
    int64_t idle_timeout_ms;
} pd_upool_opts;

pd_upool *pd_upool_new(struct event_base *base, const pd_upool_opts *opts);
/* Closes every idle connection. */
void pd_upool_free(pd_upool *pool);

/*
 * Take an idle connection for key, the most recently put first. Returns a
 * connection whose callbacks are cleared, timeouts unset and which is
 * enabled for nothing, owned by the caller from now on, or NULL if none is
 * idle.
 */
pd_conn *pd_upool_get(pd_upool *pool, const char *key);
/*
 * pd_upool_get, with the last look at the socket (a recv(MSG_PEEK) for a
 * close the event loop has not delivered yet) only when peek is set: a
 * caller that can send its request again on a new connection when this one
 * turns out closed saves that system call.
 */
pd_conn *pd_upool_take(pd_upool *pool, const char *key, int peek);

/*
 * Give a connection back (the caller must have read a complete response and
 * its input buffer must be empty). The pool owns bev from now on, and frees it
 * (pd_conn_free, which closes the socket) when it expires, is
 * evicted, or the origin closes it or sends anything. A full pool (for key or
 * in total) closes its oldest connection to make room. Returns 0 if pooled,
 * -1 if bev was freed at once (input or output pending, pooling disabled by a
 * limit <= 0, no memory).
 */
int pd_upool_put(pd_upool *pool, const char *key, pd_conn *bev);

/* Close every idle connection (drain, reload). */
void pd_upool_flush(pd_upool *pool);

typedef struct pd_upool_stats {
    uint64_t idle;              /* connections in the pool now */
    uint64_t reused;            /* pd_upool_get hits */
    uint64_t put;               /* connections pooled */
    uint64_t expired;           /* closed after idle_timeout_ms */
    uint64_t closed_by_peer;    /* origin closed or sent data while idle */
    uint64_t evicted;           /* closed to respect max_idle / max_per_key */
} pd_upool_stats;
void pd_upool_get_stats(const pd_upool *pool, pd_upool_stats *out);

#endif
