/*
 * client_idle: a client connection between requests (and before its first
 * one). It holds only the socket (pd_conn), the peer and its deadlines: the
 * transaction object, its parsers and header buffers exist only while a
 * request is being served (client.c). When the first byte of a request
 * arrives the connection is handed to a new transaction; when the time allowed
 * for it runs out, or the client closes, it is closed without a log line
 * (no request was started).
 *
 * Memory: a pd_idle owns its pd_conn until it hands it over
 * (client_begin) or frees both (idle_close). Its list is the worker's
 * w->idle, for drain and exit.
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "proxyd/clock.h"
#include "proxyd/conn.h"
#include "proxyd/stats.h"

#include "proxyd/url.h"

#include "client_int.h"

#define IDLE_MAGIC 0x50444931u /* "PDI1" */

struct pd_idle {
    unsigned magic;
    TAILQ_ENTRY(pd_idle) link;
    pd_engine *w;
    pd_conn *conn;
    struct event timer;         /* request_timeout / client_idle_pconn_timeout / lifetime */
    int64_t life_at_ms;         /* client_lifetime deadline (monotonic) */
    unsigned nreq;              /* requests served on this connection so far */
    int ready;                  /* a pipelined request is buffered: begin it next round */
    int closing;                /* draining: closed once the last response is flushed */
    uint16_t local_port;
    struct sockaddr_storage peer;
};

void client_peer_ip(const struct sockaddr *sa, char *ip, size_t len)
{
    if (sa->sa_family == AF_INET && len >= INET_ADDRSTRLEN) {
        pd_ipv4_format(&((const struct sockaddr_in *)sa)->sin_addr, ip);
        return;
    }
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, ip, (socklen_t)len))
        ip[0] = '\0';
}

static void idle_close(struct pd_idle *d)
{
    pd_engine *w = d->w;
    char ip[INET6_ADDRSTRLEN];
    TAILQ_REMOVE(&w->idle, d, link);
    event_del(&d->timer);
    pd_conn_free(d->conn);
    client_peer_ip((const struct sockaddr *)&d->peer, ip, sizeof ip);
    d->magic = 0;
    free(d);
    client_conn_closed(w, ip);
}

static void arm(struct pd_idle *d, int64_t ms)
{
    int64_t left = d->life_at_ms - pd_clock_ms();
    struct timeval tv = pd_clock_tv(ms < left ? ms : left);
    evtimer_add(&d->timer, &tv);
}

static void idle_read_cb(pd_conn *conn, void *arg);

static void idle_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pd_idle *d = arg;
    if (d->ready)
        idle_read_cb(d->conn, d);
    else
        idle_close(d);
}

/* The first bytes of a request: a transaction takes the connection over. */
static void idle_read_cb(pd_conn *conn, void *arg)
{
    struct pd_idle *d = arg;
    pd_engine *w = d->w;
    TAILQ_REMOVE(&w->idle, d, link);
    event_del(&d->timer);
    struct pd_idle copy = *d;
    d->magic = 0;
    free(d);
    client_begin(w, copy.conn, &copy.peer, copy.local_port, copy.nreq, copy.life_at_ms);
}

static void idle_event_cb(pd_conn *conn, short what, void *arg)
{
    idle_close(arg);
}

/* How long a connection waits for its next request: its first, or one after. */
static int64_t wait_ms(const pd_engine *w, unsigned nreq)
{
    return nreq ? w->conf->client_idle_pconn_timeout : w->conf->request_timeout;
}

/* The last response's bytes are out: the wait for the next request starts now. */
static void idle_written_cb(pd_conn *conn, void *arg)
{
    struct pd_idle *d = arg;
    if (evbuffer_get_length(pd_conn_output(conn)))
        return;
    pd_conn_setcb(conn, idle_read_cb, NULL, idle_event_cb, d);
    arm(d, wait_ms(d->w, d->nreq));
}

void client_idle_wait(pd_engine *w, pd_conn *conn, const struct sockaddr_storage *peer,
                      uint16_t local_port, unsigned nreq, int64_t life_at_ms)
{
    struct pd_idle *d = calloc(1, sizeof *d);
    if (!d) {
        char ip[INET6_ADDRSTRLEN];
        pd_conn_free(conn);
        client_peer_ip((const struct sockaddr *)peer, ip, sizeof ip);
        client_conn_closed(w, ip);
        return;
    }
    d->magic = IDLE_MAGIC;
    d->w = w;
    d->conn = conn;
    d->peer = *peer;
    d->local_port = local_port;
    d->nreq = nreq;
    d->life_at_ms = life_at_ms;
    evtimer_assign(&d->timer, w->base, idle_timer_cb, d);
    TAILQ_INSERT_TAIL(&w->idle, d, link);
    pd_conn_setcb(conn, idle_read_cb, NULL, idle_event_cb, d);
    pd_conn_set_write_low(conn, 0);
    pd_conn_set_read_high(conn, 0);
    pd_conn_enable(conn, EV_READ | EV_WRITE);
    if (evbuffer_get_length(pd_conn_input(conn))) {
        /* pipelined: the next request is here already; from the loop, not
         * from this stack (a long pipeline must not recurse) */
        d->ready = 1;
        arm(d, 0);
        return;
    }
    if (evbuffer_get_length(pd_conn_output(conn))) {
        /* a slow reader still has the last response queued: as in Squid, the
         * idle timeout starts when it is written (the write timeout and
         * client_lifetime still hold meanwhile) */
        pd_conn_setcb(conn, idle_read_cb, idle_written_cb, idle_event_cb, d);
        arm(d, INT64_MAX);
        return;
    }
    arm(d, wait_ms(w, nreq));
}

/* Draining: the last response's bytes are out; now the connection goes. */
static void idle_flushed_cb(pd_conn *conn, void *arg)
{
    if (evbuffer_get_length(pd_conn_output(conn)) == 0)
        idle_close(arg);
}

void client_idle_drain(pd_engine *w)
{
    struct pd_idle *d, *next;
    for (d = TAILQ_FIRST(&w->idle); d; d = next) {
        next = TAILQ_NEXT(d, link);
        if (d->closing)
            continue;
        if (d->nreq == 0 && !d->ready) {
            arm(d, 1000); /* just accepted: its request may be on the way, give it 1 s */
        } else if (evbuffer_get_length(pd_conn_output(d->conn))) {
            /* a keep-alive connection whose last response is still being
             * written: no new request, close it once the bytes are out
             * (shutdown_lifetime bounds the wait) */
            d->closing = 1;
            d->ready = 0;
            event_del(&d->timer);
            pd_conn_disable(d->conn, EV_READ);
            pd_conn_setcb(d->conn, NULL, idle_flushed_cb, idle_event_cb, d);
            pd_conn_enable(d->conn, EV_WRITE);
        } else {
            idle_close(d); /* idle keep-alive connection */
        }
    }
}

void client_idle_close_all(pd_engine *w)
{
    struct pd_idle *d;
    while ((d = TAILQ_FIRST(&w->idle)))
        idle_close(d);
}

size_t client_idle_pending(const pd_engine *w)
{
    size_t n = 0;
    const struct pd_idle *d;
    TAILQ_FOREACH(d, &w->idle, link)
        n += evbuffer_get_length(pd_conn_output(d->conn));
    return n;
}

int client_idle_count(const pd_engine *w)
{
    int n = 0;
    const struct pd_idle *d;
    TAILQ_FOREACH(d, &w->idle, link)
        n++;
    return n;
}
