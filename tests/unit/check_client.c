/*
 * Unit tests for the request engine (client.c, client_idle.c, upstream.c,
 * tunnel.c) without a network: a worker is set up by hand (no master, no
 * cache), a client is one end of a socketpair handed to pd_client_accept,
 * and the origin is a listener on 127.0.0.1:0 that the test answers itself.
 * The test's sockets are events in the same loop, so every wait is a
 * condition with a deadline (RUN_UNTIL), never a sleep.
 *
 * One table row per transition of a transaction, with the client or the
 * origin going away at each step; then keep-alive, pipelining, the request
 * timeout, a refused origin and a CONNECT tunnel; and, with a store, the
 * background revalidation of stale-while-revalidate after its client left.
 */
#include "client_int.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxyd/conf.h"
#include "proxyd/dns.h"
#include "proxyd/upool.h"
#include "proxyd/engine.h"

static struct event_base *base;

#include "evtest.h"
#include "check_run.h"
static pd_engine W;
static int n_closed; /* conn_closed calls */
static pd_conf *conf;

/* a peer end the test plays: what it read, and whether it saw EOF */
struct peer {
    int fd;
    struct event *ev;
    char *buf;
    size_t len, cap;
    int eof;
};
static struct peer cl, org;
static int lsock = -1;
static struct event *lev;
static int n_accepted;
static struct sockaddr_in origin_addr;


static void peer_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct peer *p = arg;
    for (;;) {
        if (p->cap - p->len < 65536) {
            p->cap = p->cap ? p->cap * 2 : 131072;
            p->buf = realloc(p->buf, p->cap + 1);
        }
        ssize_t n = read(fd, p->buf + p->len, p->cap - p->len);
        if (n > 0) {
            p->len += (size_t)n;
            p->buf[p->len] = '\0';
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            p->eof = 1;
            event_del(p->ev);
        }
        return;
    }
}

static void peer_open(struct peer *p, int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    p->fd = fd;
    p->ev = event_new(base, fd, EV_READ | EV_PERSIST, peer_read_cb, p);
    event_add(p->ev, NULL);
}

static void peer_close(struct peer *p)
{
    if (p->ev)
        event_free(p->ev);
    if (p->fd >= 0)
        close(p->fd);
    free(p->buf);
    memset(p, 0, sizeof *p);
    p->fd = -1;
}

static void peer_send(struct peer *p, const char *s)
{
    size_t n = strlen(s);
    ck_assert_int_eq(write(p->fd, s, n), (ssize_t)n);
}

/* forget what was read so far */
static void peer_clear(struct peer *p)
{
    p->len = 0;
    if (p->buf)
        p->buf[0] = '\0';
}

static void accept_cb(evutil_socket_t fd, short what, void *arg)
{
    int a = accept(fd, NULL, NULL);
    if (a < 0)
        return;
    n_accepted++;
    if (org.fd >= 0)
        peer_close(&org); /* the test looks at the newest origin connection */
    peer_open(&org, a);
}

static void count_closed(void *arg)
{
    n_closed++;
}

static const char *conf_text =
    "http_port 127.0.0.1:0\n"
    "http_access allow all\n"
    "visible_hostname unit.test\n"
    "request_timeout 1 seconds\n"
    "cache deny all\n";

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    conf = pd_conf_load_string("t.conf", conf_text, stderr);
    ck_assert_ptr_nonnull(conf);
    memset(&W, 0, sizeof W);
    pd_engine_init(&W);
    W.base = base;
    W.conf = conf;
    W.conn_closed = count_closed;
    n_closed = 0;
    snprintf(W.hostname, sizeof W.hostname, "unit.test");
    snprintf(W.via, sizeof W.via, "unit.test (proxyd/test)");
    pd_dns_opts d = { .hosts_file = "none", .positive_ttl_max = 60, .negative_ttl = 5,
                      .timeout = 5 };
    W.dns = pd_dns_new(base, &d);
    pd_upool_opts u = { .max_idle = 8, .max_per_key = 8, .idle_timeout_ms = 60000 };
    W.upool = pd_upool_new(base, &u);
    ck_assert_ptr_nonnull(W.dns);
    ck_assert_ptr_nonnull(W.upool);

    lsock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    memset(&origin_addr, 0, sizeof origin_addr);
    origin_addr.sin_family = AF_INET;
    origin_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lsock, (struct sockaddr *)&origin_addr, sizeof origin_addr), 0);
    socklen_t sl = sizeof origin_addr;
    getsockname(lsock, (struct sockaddr *)&origin_addr, &sl);
    ck_assert_int_eq(listen(lsock, 16), 0);
    lev = event_new(base, lsock, EV_READ | EV_PERSIST, accept_cb, NULL);
    event_add(lev, NULL);
    n_accepted = 0;
    memset(&cl, 0, sizeof cl);
    memset(&org, 0, sizeof org);
    cl.fd = org.fd = -1;

    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    /* a small kernel buffer towards the client: a client that stops reading
     * leaves a response's bytes queued in proxyd, which some tests need */
    int sndbuf = 16384;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(pd_client_accept(&W, sv[0], (struct sockaddr *)&peer, sizeof peer, 3128), 0);
    peer_open(&cl, sv[1]);
}

static void teardown(void)
{
    pd_client_close_all(&W);
    if (W.store)
        pd_cache_store_destroy(W.store);
    pd_upool_free(W.upool);
    pd_dns_free(W.dns);
    peer_close(&cl);
    peer_close(&org);
    event_free(lev);
    close(lsock);
    pd_conf_free(conf);
    event_base_free(base);
}

/* ---- what the engine holds ---------------------------------------------- */

static int n_busy(void)
{
    int n = 0;
    struct pd_client *c;
    TAILQ_FOREACH(c, &W.clients, link)
        n++;
    return n;
}

static int n_idle(void)
{
    return client_idle_count(&W);
}

/* Bytes proxyd holds for the client: the idle connection's output. */
static size_t pending_to_client(void)
{
    return client_idle_pending(&W);
}

static enum cstate busy_state(void)
{
    struct pd_client *c = TAILQ_FIRST(&W.clients);
    ck_assert_ptr_nonnull(c);
    return c->state;
}

static char req_buf[512];
static const char *request(const char *path)
{
    snprintf(req_buf, sizeof req_buf,
             "GET http://127.0.0.1:%d%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
             ntohs(origin_addr.sin_port), path, ntohs(origin_addr.sin_port));
    return req_buf;
}

static int has(const struct peer *p, const char *s)
{
    return p->buf && strstr(p->buf, s) != NULL;
}

/* ---- one transaction, ended at each step by either side ---------------- */

enum step { S_HEAD_PART, S_SENT, S_RESP_HEAD, S_RESP_BODY, S_DONE };
enum who { NOBODY, CLIENT, ORIGIN };

static const struct tcase {
    const char *name;
    enum step at;
    enum who leaves;
    enum cstate state_at;       /* the transaction's state once the origin has the request */
} cases[] = {
    { "client leaves during the head", S_HEAD_PART, CLIENT, C_HEAD },
    { "client leaves while the origin thinks", S_SENT, CLIENT, C_FORWARD },
    { "client leaves after the response head", S_RESP_HEAD, CLIENT, C_FORWARD },
    { "client leaves during the body", S_RESP_BODY, CLIENT, C_FORWARD },
    { "origin closes before answering", S_SENT, ORIGIN, C_FORWARD },
    { "origin closes after the head", S_RESP_HEAD, ORIGIN, C_FORWARD },
    { "origin closes during the body", S_RESP_BODY, ORIGIN, C_FORWARD },
    { "complete: keep-alive, both sides", S_DONE, NOBODY, C_FORWARD },
};

/* The client goes away: the origin connection is dropped (not pooled), and
 * the worker holds nothing of the connection any more. */
static void client_leaves(void)
{
    peer_close(&cl);
    RUN_UNTIL(org.eof);
    RUN_UNTIL(n_busy() == 0 && n_idle() == 0 && W.n_clients == 0);
    ck_assert_int_eq(n_closed, 1); /* the owner is told once */
}

START_TEST(transaction_table)
{
    const struct tcase *t = &cases[_i];
    char body[2001];
    memset(body, 'b', 2000);
    body[2000] = '\0';
    const char *r = request("/x");
    size_t rl = strlen(r);

    /* C_HEAD: part of the head */
    char part[256];
    snprintf(part, sizeof part, "%.*s", (int)(rl / 2), r);
    peer_send(&cl, part);
    RUN_UNTIL(n_busy() == 1);
    ck_assert_int_eq(busy_state(), C_HEAD);
    if (t->at == S_HEAD_PART) {
        peer_close(&cl);
        RUN_UNTIL(n_busy() == 0);
        ck_assert_int_eq(n_accepted, 0); /* the origin never heard of it */
        ck_assert_int_eq(W.n_clients, 0);
        return;
    }
    /* the rest of the head: the origin is connected and gets the request */
    peer_send(&cl, r + rl / 2);
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    ck_assert(has(&org, "GET /x HTTP/1.1\r\n"));
    ck_assert(has(&org, "Via: 1.1 unit.test"));
    ck_assert_int_eq(busy_state(), t->state_at);
    if (t->at == S_SENT) {
        if (t->leaves == CLIENT) {
            client_leaves();
        } else {
            peer_close(&org);
            RUN_UNTIL(has(&cl, "\r\n\r\n"));
            ck_assert(!strncmp(cl.buf, "HTTP/1.1 502 ", 13));
        }
        return;
    }
    /* the response head (Content-Length 2000) */
    peer_send(&org, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n");
    RUN_UNTIL(has(&cl, "\r\n\r\n"));
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 200 OK\r\n", 17));
    ck_assert(has(&cl, "Content-Length: 2000\r\n"));
    ck_assert_int_eq(busy_state(), C_FORWARD);
    if (t->at == S_RESP_HEAD) {
        if (t->leaves == CLIENT) {
            client_leaves();
        } else {
            peer_close(&org);
            RUN_UNTIL(cl.eof); /* truncated: the client sees the connection end */
            ck_assert_int_eq(n_busy() + n_idle(), 0);
        }
        return;
    }
    /* half of the body */
    char half[1001];
    memcpy(half, body, 1000);
    half[1000] = '\0';
    peer_send(&org, half);
    size_t head_len = (size_t)(strstr(cl.buf, "\r\n\r\n") + 4 - cl.buf);
    RUN_UNTIL(cl.len == head_len + 1000);
    if (t->at == S_RESP_BODY) {
        if (t->leaves == CLIENT) {
            client_leaves();
        } else {
            peer_close(&org);
            RUN_UNTIL(cl.eof);
            ck_assert_uint_eq(cl.len, head_len + 1000); /* never completed */
            ck_assert_int_eq(n_busy() + n_idle(), 0);
        }
        return;
    }
    /* the rest: the transaction ends, the connection waits, the origin is pooled */
    peer_send(&org, body + 1000);
    RUN_UNTIL(cl.len == head_len + 2000);
    RUN_UNTIL(n_idle() == 1 && n_busy() == 0);
    pd_upool_stats st;
    pd_upool_get_stats(W.upool, &st);
    ck_assert_uint_eq(st.idle, 1);
    ck_assert_int_eq(W.n_clients, 1);
    ck_assert(!cl.eof && !org.eof);
}
END_TEST

/* ---- the driver (client_drive.c) ----------------------------------------- */

/* The transaction with the request at the origin, waiting for its answer. */
static struct pd_client *forwarding(void)
{
    peer_send(&cl, request("/d"));
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    struct pd_client *c = TAILQ_FIRST(&W.clients);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->state, C_FORWARD);
    return c;
}

START_TEST(driver_defers_dedups_and_withdraws)
{
    struct pd_client *c = forwarding();
    static int gone; /* stands for an origin connection the transaction let go */
    c->driving = 1;  /* as inside a handler */
    client_post_up(c, (pd_conn *)&gone, CEV_UP_CONN, PD_CONN_ERROR);
    ck_assert_int_eq(c->ev_n, 1);
    /* the transaction's own origin connection: the other's error is moot */
    client_post_up(c, c->up, CEV_UP_READ, 0);
    ck_assert_int_eq(c->ev_n, 1);
    ck_assert_int_eq(c->ev_queue[c->ev_head], CEV_UP_READ);
    client_post(c, CEV_CL_WRITE);
    client_post(c, CEV_CL_WRITE); /* once, however often */
    ck_assert_int_eq(c->ev_n, 2);
    ck_assert_int_eq(c->state, C_FORWARD); /* nothing ran inside the "handler" */
    c->driving = 0;
    client_drive(c);
    ck_assert_int_eq(c->ev_n, 0);
    ck_assert_uint_eq(c->ev_pending, 0);
    ck_assert_int_eq(c->state, C_FORWARD);
    /* the withdrawn error never ran: the transaction completes */
    peer_send(&org, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    RUN_UNTIL(has(&cl, "\r\n\r\nok"));
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 200 OK\r\n", 17));
    RUN_UNTIL(n_idle() == 1 && n_busy() == 0);
}
END_TEST

START_TEST(driver_drops_events_after_the_end)
{
    struct pd_client *c = forwarding();
    c->driving = 1;
    client_post_conn(c, CEV_CL_CONN, PD_CONN_EOF); /* the client left: ends it */
    client_post(c, CEV_CL_READ);
    client_post(c, CEV_TIMER);
    ck_assert_int_eq(c->ev_n, 3);
    ck_assert_int_eq(n_busy(), 1); /* not freed while a handler runs */
    c->driving = 0;
    client_drive(c); /* frees c after the first: the others must not run (ASan) */
    ck_assert_int_eq(n_busy(), 0);
    RUN_UNTIL(org.eof);
    ck_assert_int_eq(n_closed, 1);
    ck_assert_int_eq(W.n_clients, 0);
}
END_TEST

/* ---- a hit is queued whole ----------------------------------------------- */

/* Send n bytes of c to the origin's end, turning the loop while its socket is full. */
static void org_send_fill(char ch, size_t n)
{
    char chunk[65536];
    memset(chunk, ch, sizeof chunk);
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < sizeof chunk ? n - off : sizeof chunk;
        ssize_t w = write(org.fd, chunk, k);
        if (w > 0)
            off += (size_t)w;
        else
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

/* The stored bytes of a hit are references into the store: the transaction queues
 * the whole 1 MiB (HIT_QUEUE_MAX) and ends, though the client has read nothing;
 * the connection then flushes it as the client reads. */
START_TEST(hit_is_queued_whole)
{
    const size_t n = 1u << 20;
    W.store = pd_cache_store_create(8u << 20, 2u << 20, 1, PD_CACHE_POLICY_S3FIFO);
    ck_assert_ptr_nonnull(W.store);
    ck_assert_int_eq(pd_cache_store_attach(W.store, 0), 0);
    peer_send(&cl, request("/big"));
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    peer_send(&org, "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                    "Content-Length: 1048576\r\n\r\n");
    org_send_fill('h', n);
    RUN_UNTIL(cl.len > n && n_idle() == 1);
    ck_assert_int_eq(n_accepted, 1);
    peer_clear(&cl);
    event_del(cl.ev); /* the client stops reading */
    peer_send(&cl, request("/big"));
    /* over, and most of it queued, not yet taken */
    RUN_UNTIL(n_busy() == 0 && n_idle() == 1 && pending_to_client() > n / 2);
    event_add(cl.ev, NULL);
    RUN_UNTIL(has(&cl, "\r\n\r\n") &&
              cl.len == (size_t)(strstr(cl.buf, "\r\n\r\n") + 4 - cl.buf) + n);
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 200 OK\r\n", 17));
    ck_assert(has(&cl, "\r\nAge: "));   /* from the cache */
    ck_assert_int_eq(n_accepted, 1);     /* the origin saw one request */
    ck_assert_int_eq(cl.buf[cl.len - 1], 'h');
    ck_assert_uint_eq(pending_to_client(), 0);
}
END_TEST

/* ---- keep-alive and pipelining ------------------------------------------ */

START_TEST(keepalive_reuses_the_origin_connection)
{
    for (int i = 0; i < 3; i++) {
        peer_clear(&cl);
        peer_send(&cl, request("/k"));
        RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
        peer_clear(&org);
        peer_send(&org, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        RUN_UNTIL(has(&cl, "\r\n\r\nok"));
        RUN_UNTIL(n_idle() == 1);
    }
    ck_assert_int_eq(n_accepted, 1);
    pd_upool_stats st;
    pd_upool_get_stats(W.upool, &st);
    ck_assert_uint_eq(st.reused, 2);
}
END_TEST

START_TEST(pipelined_requests_answered_in_order)
{
    char two[1024];
    snprintf(two, sizeof two, "%s", request("/p1"));
    strncat(two, request("/p2"), sizeof two - strlen(two) - 1);
    peer_send(&cl, two);
    RUN_UNTIL(org.fd >= 0 && has(&org, "GET /p1 "));
    ck_assert(!has(&org, "GET /p2 ")); /* one at a time */
    peer_clear(&org);
    peer_send(&org, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr1");
    RUN_UNTIL(has(&org, "GET /p2 "));
    peer_send(&org, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nr2");
    RUN_UNTIL(has(&cl, "\r\n\r\nr2"));
    ck_assert(strstr(cl.buf, "\r\n\r\nr1") < strstr(cl.buf, "\r\n\r\nr2"));
    RUN_UNTIL(n_idle() == 1);
}
END_TEST

START_TEST(request_timeout_answers_408)
{
    peer_send(&cl, "GET http://127.0.0.1/ HTTP/1.1\r\n");
    RUN_UNTIL(cl.eof);
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 408 ", 13));
    ck_assert_int_eq(n_busy() + n_idle(), 0);
    ck_assert_int_eq(W.n_clients, 0);
}
END_TEST

START_TEST(idle_connection_closed_by_client)
{
    peer_send(&cl, request("/i"));
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    peer_send(&org, "HTTP/1.1 204 No Content\r\n\r\n");
    RUN_UNTIL(n_idle() == 1);
    peer_close(&cl);
    RUN_UNTIL(n_idle() == 0);
    ck_assert_int_eq(W.n_clients, 0);
}
END_TEST

/* A response of body_len bytes for a client that stopped reading: returns
 * once the transaction is over (the connection idle), its bytes maybe queued. */
static void slow_reader_gets(int body_len)
{
    peer_send(&cl, request("/slowreader"));
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    event_del(cl.ev); /* the client stops reading */
    char head[128];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", body_len);
    peer_send(&org, head);
    char *body = malloc((size_t)body_len + 1);
    memset(body, 'b', (size_t)body_len);
    body[body_len] = '\0';
    peer_send(&org, body);
    free(body);
    RUN_UNTIL(n_idle() == 1);
}

/* Draining (SIGTERM) while a keep-alive connection is idle with its last
 * response still queued (the client reads slowly): the bytes all go out,
 * then the connection closes. (Once the idle connection was closed at once
 * and the queued bytes lost.) */
START_TEST(drain_flushes_an_idle_connection)
{
    enum { BODY = 200 * 1024 };
    slow_reader_gets(BODY); /* the transaction is over ... */
    ck_assert_uint_gt(pending_to_client(), 0); /* ... its bytes still queued */
    W.draining = 1;
    pd_client_drain_all(&W);
    event_add(cl.ev, NULL); /* the client reads again */
    RUN_UNTIL(cl.eof);
    char *b = strstr(cl.buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(cl.len - (size_t)(b + 4 - cl.buf), BODY);
    ck_assert_int_eq(n_idle(), 0);
    ck_assert_int_eq(W.n_clients, 0);
}
END_TEST

/* client_idle_pconn_timeout runs out while the last response is still queued
 * for a slow reader: the bytes all go out first (the idle wait starts when
 * they are written, as in Squid), then the timeout closes the connection.
 * (Once the idle timer closed it at once and the queued bytes were lost.) */
START_TEST(idle_timeout_waits_for_the_last_response)
{
    enum { BODY = 200 * 1024 };
    conf->client_idle_pconn_timeout = 20; /* ms */
    slow_reader_gets(BODY);
    ck_assert_uint_gt(pending_to_client(), 0);
    /* ten idle timeouts pass with the client not reading */
    struct timeval ten = { 0, 200 * 1000 };
    event_base_loopexit(base, &ten);
    event_base_dispatch(base);
    ck_assert_int_eq(n_idle(), 1);
    event_add(cl.ev, NULL); /* the client reads again */
    RUN_UNTIL(cl.eof);
    char *b = strstr(cl.buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(cl.len - (size_t)(b + 4 - cl.buf), BODY);
    RUN_UNTIL(n_idle() == 0 && W.n_clients == 0);
}
END_TEST

START_TEST(refused_origin_is_502)
{
    close(lsock); /* nobody listens there any more */
    event_del(lev);
    lsock = socket(AF_INET, SOCK_STREAM, 0);
    peer_send(&cl, request("/r"));
    RUN_UNTIL(has(&cl, "\r\n\r\n"));
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 502 ", 13));
    ck_assert(has(&cl, "ERR_CONNECT_FAIL"));
}
END_TEST

START_TEST(connect_tunnel_relays_and_half_closes)
{
    char req[256];
    snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
             ntohs(origin_addr.sin_port), ntohs(origin_addr.sin_port));
    peer_send(&cl, req);
    RUN_UNTIL(has(&cl, "\r\n\r\n"));
    ck_assert(!strncmp(cl.buf, "HTTP/1.1 200 ", 13));
    RUN_UNTIL(org.fd >= 0);
    ck_assert_int_eq(busy_state(), C_TUNNEL);
    peer_clear(&cl);
    peer_send(&cl, "ping");
    RUN_UNTIL(has(&org, "ping"));
    peer_send(&org, "pong");
    RUN_UNTIL(has(&cl, "pong"));
    /* the client half-closes: the origin sees EOF, and may still answer */
    shutdown(cl.fd, SHUT_WR);
    RUN_UNTIL(org.eof);
    peer_send(&org, "last");
    RUN_UNTIL(has(&cl, "last"));
    peer_close(&org);
    RUN_UNTIL(cl.eof);
    RUN_UNTIL(n_busy() == 0 && W.n_clients == 0);
}
END_TEST

/* ---- stale-while-revalidate: the background transaction (client_bg.c) ---- */

/* What the store holds for path: its Cache-Control and ETag, and the body's length. */
static void stored(const char *path, char *cc, char *etag, size_t cap, uint64_t *blen)
{
    char key[256];
    int n = snprintf(key, sizeof key, "http://127.0.0.1:%d%s", ntohs(origin_addr.sin_port), path);
    pd_cache_ref *ref = NULL;
    ck_assert_int_eq(pd_cache_store_lookup(W.store, key, (size_t)n, &ref), PD_CACHE_HIT);
    char buf[4096];
    ssize_t m = pd_cache_store_meta(W.store, ref, buf, sizeof buf);
    ck_assert(m > 0 && (size_t)m <= sizeof buf);
    pd_cache_meta cm;
    ck_assert_int_eq(pd_cache_meta_parse(buf, (size_t)m, &cm), 0);
    const pd_header *h = pd_http_msg_find(&cm.head, "Cache-Control");
    snprintf(cc, cap, "%.*s", h ? (int)h->value.len : 0, h ? h->value.p : "");
    h = pd_http_msg_find(&cm.head, "ETag");
    snprintf(etag, cap, "%.*s", h ? (int)h->value.len : 0, h ? h->value.p : "");
    int state = 0;
    *blen = pd_cache_store_body_len(W.store, ref, &state);
    ck_assert_int_eq(state, 1);
    pd_cache_meta_free(&cm);
    pd_cache_store_release(W.store, ref);
}

static const struct bgcase {
    const char *name;
    const char *answer;         /* the origin's answer to the revalidation; NULL: it closes */
    const char *cc, *etag;      /* what the store holds afterwards */
    uint64_t blen;
} bgcases[] = {
    { "304 refreshes", "HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=60\r\nETag: \"1\"\r\n\r\n",
      "max-age=60", "\"1\"", 2 },
    { "200 replaces", "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nETag: \"2\"\r\n"
      "Content-Length: 5\r\n\r\nnewer", "max-age=60", "\"2\"", 5 },
    { "503 leaves it", "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
      "max-age=0, stale-while-revalidate=60", "\"1\"", 2 },
    { "origin gone leaves it (closed, then refused)", NULL, "max-age=0, stale-while-revalidate=60", "\"1\"", 2 },
};

/* The client is answered from the stale object and goes; the background
 * revalidation goes on without it, and ends by itself whatever the origin does. */
START_TEST(background_revalidation_outlives_the_client)
{
    const struct bgcase *t = &bgcases[_i];
    W.store = pd_cache_store_create(4u << 20, 1u << 20, 1, PD_CACHE_POLICY_S3FIFO);
    ck_assert_ptr_nonnull(W.store);
    ck_assert_int_eq(pd_cache_store_attach(W.store, 0), 0);
    peer_send(&cl, request("/s"));
    RUN_UNTIL(org.fd >= 0 && has(&org, "\r\n\r\n"));
    peer_clear(&org);
    peer_send(&org, "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=60\r\n"
                    "ETag: \"1\"\r\nContent-Length: 2\r\n\r\nv1");
    RUN_UNTIL(has(&cl, "\r\n\r\nv1") && n_idle() == 1);
    peer_clear(&cl);
    /* stale at once: the answer, and the conditional request to the origin */
    peer_send(&cl, request("/s"));
    RUN_UNTIL(has(&cl, "\r\n\r\nv1") && org.fd >= 0 && has(&org, "\r\n\r\n"));
    ck_assert(has(&cl, "\r\nAge: "));
    ck_assert(has(&org, "GET /s HTTP/1.1\r\n"));
    ck_assert(has(&org, "If-None-Match: \"1\"\r\n"));
    ck_assert_int_eq(W.n_bg, 1);
    ck_assert_ptr_nonnull(TAILQ_FIRST(&W.bg));
    /* the client goes; the background transaction is no connection of the worker's */
    peer_close(&cl);
    RUN_UNTIL(W.n_clients == 0 && n_busy() == 0);
    ck_assert_int_eq(n_closed, 1);
    ck_assert_int_eq(W.n_bg, 1);
    if (t->answer) {
        peer_send(&org, t->answer);
    } else {
        /* nobody listens any more, and the pooled connection closes: the retry on a
         * new connection is refused */
        event_del(lev);
        close(lsock);
        lsock = socket(AF_INET, SOCK_STREAM, 0);
        peer_close(&org);
    }
    RUN_UNTIL(W.n_bg == 0);
    char cc[128], etag[128];
    uint64_t blen;
    stored("/s", cc, etag, sizeof cc, &blen);
    ck_assert_str_eq(cc, t->cc);
    ck_assert_str_eq(etag, t->etag);
    ck_assert_uint_eq(blen, t->blen);
    char err[256];
    ck_assert_msg(pd_cache_store_check(W.store, err, sizeof err) == 0, "%s", err);
}
END_TEST

static Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, transaction_table, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, driver_defers_dedups_and_withdraws);
    tcase_add_test(tc, driver_drops_events_after_the_end);
    tcase_add_test(tc, hit_is_queued_whole);
    tcase_add_test(tc, keepalive_reuses_the_origin_connection);
    tcase_add_test(tc, pipelined_requests_answered_in_order);
    tcase_add_test(tc, request_timeout_answers_408);
    tcase_add_test(tc, idle_connection_closed_by_client);
    tcase_add_test(tc, drain_flushes_an_idle_connection);
    tcase_add_test(tc, idle_timeout_waits_for_the_last_response);
    tcase_add_test(tc, refused_origin_is_502);
    tcase_add_test(tc, connect_tunnel_relays_and_half_closes);
    tcase_add_loop_test(tc, background_revalidation_outlives_the_client, 0,
                        sizeof bgcases / sizeof bgcases[0]);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(client_suite());
}
