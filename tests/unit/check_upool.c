/*
 * Unit tests for upool: an origin in the test (evconnlistener on
 * 127.0.0.1:0) accepts connections and keeps its ends, so that a test can
 * close them, write to them, or see the pool close them (EOF on the origin
 * side). upool.c is included to reach its liveness check.
 */
#include "upool.c"

#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define MAX_CONNS 16

static struct event_base *base;

#include "evtest.h"
#include "check_run.h"
static struct evconnlistener *listener;
static struct sockaddr_in origin_addr;

/* Origin side of each accepted connection, in accept order. */
static struct bufferevent *origin[MAX_CONNS];
static int n_accepted;
static int origin_eof[MAX_CONNS];       /* 1 once the pool side closed it */
static int n_origin_eof;

/* Client side, in connect order (matching accept order: one at a time). */
static pd_conn *client[MAX_CONNS];
static int connected[MAX_CONNS];



static void origin_event_cb(struct bufferevent *bev, short what, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        origin_eof[i] = 1;
        n_origin_eof++;
        bufferevent_disable(bev, EV_READ);
    }
}

static void origin_read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    ck_assert_int_lt(n_accepted, MAX_CONNS);
    int i = n_accepted++;
    origin[i] = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(origin[i], origin_read_cb, NULL, origin_event_cb, (void *)(intptr_t)i);
    bufferevent_enable(origin[i], EV_READ);
}

static void client_event_cb(pd_conn *conn, short what, void *arg)
{
    int i = (int)(intptr_t)arg;
    if (what & PD_CONN_CONNECTED)
        connected[i] = 1;
}

/* Open connection i to the origin and wait until both ends exist. */
static pd_conn *connect_one(int i)
{
    client[i] = pd_conn_new(base, -1);
    ck_assert_ptr_nonnull(client[i]);
    pd_conn_setcb(client[i], NULL, NULL, client_event_cb, (void *)(intptr_t)i);
    ck_assert_int_eq(pd_conn_connect(client[i], (struct sockaddr *)&origin_addr,
                                     sizeof(origin_addr)), 0);
    RUN_UNTIL(connected[i] && n_accepted > i);
    return client[i];
}

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    memset(&origin_addr, 0, sizeof(origin_addr));
    origin_addr.sin_family = AF_INET;
    origin_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener = evconnlistener_new_bind(base, accept_cb, NULL,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
                                       (struct sockaddr *)&origin_addr, sizeof(origin_addr));
    ck_assert_ptr_nonnull(listener);
    socklen_t len = sizeof(origin_addr);
    getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&origin_addr, &len);
    n_accepted = n_origin_eof = 0;
    memset(origin, 0, sizeof(origin));
    memset(origin_eof, 0, sizeof(origin_eof));
    memset(client, 0, sizeof(client));
    memset(connected, 0, sizeof(connected));
}

static void teardown(void)
{
    for (int i = 0; i < n_accepted; i++)
        if (origin[i])
            bufferevent_free(origin[i]);
    evconnlistener_free(listener);
    event_base_free(base);
}

static pd_upool *new_pool(int max_idle, int max_per_key, int64_t timeout_ms)
{
    pd_upool_opts o = { .max_idle = max_idle, .max_per_key = max_per_key,
                        .idle_timeout_ms = timeout_ms };
    pd_upool *p = pd_upool_new(base, &o);
    ck_assert_ptr_nonnull(p);
    return p;
}

static pd_upool_stats stats(const pd_upool *p)
{
    pd_upool_stats st;
    pd_upool_get_stats(p, &st);
    return st;
}

static void dummy_read_cb(pd_conn *conn, void *arg)
{
}

/* ---- tests ---- */

START_TEST(put_get_round_trip)
{
    pd_upool *p = new_pool(10, 4, 60000);
    pd_conn *b = connect_one(0);
    pd_conn_setcb(b, dummy_read_cb, NULL, client_event_cb, NULL);
    pd_conn_set_timeouts(b, 7000, 7000);
    pd_conn_enable(b, EV_READ | EV_WRITE);

    ck_assert_int_eq(pd_upool_put(p, "origin.example:80", b), 0);
    ck_assert_uint_eq(stats(p).idle, 1);
    ck_assert_uint_eq(stats(p).put, 1);

    pd_conn *got = pd_upool_get(p, "origin.example:80");
    ck_assert_ptr_eq(got, b);
    ck_assert_int_eq(pd_conn_reading(got), 0);
    /* a connection handed out is still usable: the origin gets our bytes */
    evbuffer_add(pd_conn_output(got), "GET / HTTP/1.1\r\n\r\n", 18);
    pd_conn_enable(got, EV_WRITE);
    RUN_UNTIL(evbuffer_get_length(pd_conn_output(got)) == 0);

    ck_assert_ptr_null(pd_upool_get(p, "origin.example:80"));
    pd_upool_stats st = stats(p);
    ck_assert_uint_eq(st.idle, 0);
    ck_assert_uint_eq(st.reused, 1);
    ck_assert_uint_eq(st.closed_by_peer, 0);
    ck_assert_int_eq(n_origin_eof, 0);
    pd_conn_free(got);
    pd_upool_free(p);
}
END_TEST

START_TEST(get_is_lifo)
{
    pd_upool *p = new_pool(10, 4, 60000);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pd_upool_put(p, "k", connect_one(i)), 0);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[2]);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[1]);
    ck_assert_int_eq(pd_upool_put(p, "k", client[2]), 0);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[2]);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[0]);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    for (int i = 0; i < 3; i++)
        pd_conn_free(client[i]);
    pd_upool_free(p);
}
END_TEST

START_TEST(per_key_cap_closes_oldest)
{
    pd_upool *p = new_pool(10, 2, 60000);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pd_upool_put(p, "k", connect_one(i)), 0);
    ck_assert_int_eq(pd_upool_put(p, "other", connect_one(3)), 0);
    pd_upool_stats st = stats(p);
    ck_assert_uint_eq(st.idle, 3);
    ck_assert_uint_eq(st.evicted, 1);
    ck_assert_uint_eq(st.put, 4);
    RUN_UNTIL(n_origin_eof == 1);
    ck_assert_int_eq(origin_eof[0], 1);     /* the oldest of "k" was closed */
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[2]);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[1]);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    pd_conn_free(client[1]);
    pd_conn_free(client[2]);
    pd_upool_free(p);
}
END_TEST

START_TEST(global_cap_closes_oldest)
{
    pd_upool *p = new_pool(3, 3, 60000);
    const char *keys[] = { "a", "b", "a", "c", "b" };
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(pd_upool_put(p, keys[i], connect_one(i)), 0);
    pd_upool_stats st = stats(p);
    ck_assert_uint_eq(st.idle, 3);
    ck_assert_uint_eq(st.evicted, 2);
    RUN_UNTIL(n_origin_eof == 2);
    ck_assert(origin_eof[0] && origin_eof[1]);
    ck_assert_ptr_eq(pd_upool_get(p, "a"), client[2]);
    ck_assert_ptr_null(pd_upool_get(p, "a"));
    ck_assert_ptr_eq(pd_upool_get(p, "b"), client[4]);
    ck_assert_ptr_null(pd_upool_get(p, "b"));
    ck_assert_ptr_eq(pd_upool_get(p, "c"), client[3]);
    for (int i = 2; i < 5; i++)
        pd_conn_free(client[i]);
    pd_upool_free(p);
}
END_TEST

START_TEST(peer_close_frees_idle_connection)
{
    pd_upool *p = new_pool(10, 4, 60000);
    ck_assert_int_eq(pd_upool_put(p, "k", connect_one(0)), 0);
    ck_assert_int_eq(pd_upool_put(p, "k", connect_one(1)), 0);
    bufferevent_free(origin[0]);
    origin[0] = NULL;
    RUN_UNTIL(stats(p).idle == 1);
    pd_upool_stats st = stats(p);
    ck_assert_uint_eq(st.closed_by_peer, 1);
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[1]);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    pd_conn_free(client[1]);
    pd_upool_free(p);
}
END_TEST

START_TEST(unexpected_bytes_free_idle_connection)
{
    pd_upool *p = new_pool(10, 4, 60000);
    ck_assert_int_eq(pd_upool_put(p, "k", connect_one(0)), 0);
    bufferevent_write(origin[0], "HTTP/1.1 200 OK\r\n", 17);
    RUN_UNTIL(stats(p).idle == 0);
    ck_assert_uint_eq(stats(p).closed_by_peer, 1);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    RUN_UNTIL(origin_eof[0]);               /* and the socket was closed */
    pd_upool_free(p);
}
END_TEST

START_TEST(idle_timeout_expires)
{
    pd_upool *p = new_pool(10, 4, 50);
    ck_assert_int_eq(pd_upool_put(p, "k", connect_one(0)), 0);
    ck_assert_int_eq(pd_upool_put(p, "j", connect_one(1)), 0);
    ck_assert_int_eq(pd_upool_put(p, "k", connect_one(2)), 0);
    /* one taken back before it expires: the others still do */
    ck_assert_ptr_eq(pd_upool_get(p, "k"), client[2]);
    RUN_UNTIL(stats(p).idle == 0);
    pd_upool_stats st = stats(p);
    ck_assert_uint_eq(st.expired, 2);
    ck_assert_uint_eq(st.closed_by_peer, 0);
    RUN_UNTIL(n_origin_eof == 2);
    ck_assert(origin_eof[0] && origin_eof[1] && !origin_eof[2]);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    pd_conn_free(client[2]);
    pd_upool_free(p);
}
END_TEST

START_TEST(keys_do_not_mix)
{
    pd_upool *p = new_pool(10, 4, 60000);
    ck_assert_int_eq(pd_upool_put(p, "a.example:80", connect_one(0)), 0);
    ck_assert_int_eq(pd_upool_put(p, "a.example:8080", connect_one(1)), 0);
    ck_assert_ptr_null(pd_upool_get(p, "b.example:80"));
    ck_assert_ptr_null(pd_upool_get(p, "a.example"));
    ck_assert_ptr_null(pd_upool_get(p, ""));
    ck_assert_ptr_null(pd_upool_get(p, NULL));
    ck_assert_ptr_eq(pd_upool_get(p, "a.example:8080"), client[1]);
    ck_assert_ptr_null(pd_upool_get(p, "a.example:8080"));
    ck_assert_ptr_eq(pd_upool_get(p, "a.example:80"), client[0]);
    pd_conn_free(client[0]);
    pd_conn_free(client[1]);
    pd_upool_free(p);
}
END_TEST

START_TEST(many_keys_grow_the_table)
{
    pd_upool *p = new_pool(1000, 4, 60000);
    int sv[2];
    char key[32];
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        close(sv[1]);                   /* peer gone: only get's check sees it */
        snprintf(key, sizeof(key), "host%d:80", i);
        pd_conn *b = pd_conn_new(base, sv[0]);
        ck_assert_int_eq(pd_upool_put(p, key, b), 0);
    }
    ck_assert_uint_eq(stats(p).idle, 200);
    ck_assert_uint_ge(p->tab_size, 200);
    snprintf(key, sizeof(key), "host%d:80", 123);
    ck_assert_ptr_null(pd_upool_get(p, key));   /* EOF seen by the peek */
    ck_assert_uint_eq(stats(p).closed_by_peer, 1);
    ck_assert_uint_eq(stats(p).idle, 199);
    pd_upool_free(p);
}
END_TEST

START_TEST(flush_closes_everything)
{
    pd_upool *p = new_pool(10, 4, 60000);
    const char *keys[] = { "a", "b", "a" };
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pd_upool_put(p, keys[i], connect_one(i)), 0);
    pd_upool_flush(p);
    ck_assert_uint_eq(stats(p).idle, 0);
    ck_assert_ptr_null(pd_upool_get(p, "a"));
    ck_assert_ptr_null(pd_upool_get(p, "b"));
    RUN_UNTIL(n_origin_eof == 3);
    /* the pool is still usable after a flush */
    ck_assert_int_eq(pd_upool_put(p, "a", connect_one(3)), 0);
    ck_assert_ptr_eq(pd_upool_get(p, "a"), client[3]);
    pd_conn_free(client[3]);
    pd_upool_free(p);
}
END_TEST

START_TEST(put_refuses_connection_with_pending_input)
{
    pd_upool *p = new_pool(10, 4, 60000);
    pd_conn *b = connect_one(0);
    evbuffer_add(pd_conn_input(b), "x", 1);
    ck_assert_int_eq(pd_upool_put(p, "k", b), -1);
    RUN_UNTIL(origin_eof[0]);           /* freed at once */
    pd_conn *c = connect_one(1);
    evbuffer_add(pd_conn_output(c), "half a request", 14);
    ck_assert_int_eq(pd_upool_put(p, "k", c), -1);
    ck_assert_int_eq(pd_upool_put(p, NULL, connect_one(2)), -1);
    ck_assert_int_eq(pd_upool_put(p, "k", NULL), -1);
    ck_assert_uint_eq(stats(p).idle, 0);
    ck_assert_uint_eq(stats(p).put, 0);
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    pd_upool_free(p);
}
END_TEST

START_TEST(limits_zero_disable_pooling)
{
    static const pd_upool_opts cases[] = {
        { 0, 4, 1000 }, { 4, 0, 1000 }, { 4, 4, 0 },
    };
    for (int i = 0; i < 3; i++) {
        pd_upool *p = pd_upool_new(base, &cases[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(pd_upool_put(p, "k", connect_one(i)), -1);
        ck_assert_ptr_null(pd_upool_get(p, "k"));
        pd_upool_free(p);
    }
    RUN_UNTIL(n_origin_eof == 3);
    ck_assert_ptr_null(pd_upool_new(NULL, &cases[0]));
    ck_assert_ptr_null(pd_upool_new(base, NULL));
}
END_TEST

START_TEST(get_drops_connection_closed_before_the_loop_saw_it)
{
    /* socketpair: writes and closes reach the peer synchronously */
    pd_upool *p = new_pool(10, 4, 60000);
    int a[2], b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    evutil_make_socket_nonblocking(a[0]);
    evutil_make_socket_nonblocking(b[0]);
    pd_conn *ba = pd_conn_new(base, a[0]);
    pd_conn *bb = pd_conn_new(base, b[0]);
    ck_assert_int_eq(pd_upool_put(p, "k", ba), 0);
    ck_assert_int_eq(pd_upool_put(p, "k", bb), 0);
    ck_assert(idle_usable(bb));
    ck_assert_int_eq(write(b[1], "x", 1), 1);   /* bb: unexpected byte */
    ck_assert(!idle_usable(bb));
    ck_assert_ptr_eq(pd_upool_get(p, "k"), ba); /* bb dropped, ba next */
    ck_assert_uint_eq(stats(p).closed_by_peer, 1);
    ck_assert_int_eq(pd_upool_put(p, "k", ba), 0);
    close(a[1]);                                /* ba: EOF */
    ck_assert_ptr_null(pd_upool_get(p, "k"));
    ck_assert_uint_eq(stats(p).closed_by_peer, 2);
    ck_assert_uint_eq(stats(p).idle, 0);
    close(b[1]);
    pd_upool_free(p);
}
END_TEST

START_TEST(callbacks_queued_before_put_do_not_close)
{
    pd_upool *p = new_pool(10, 4, 60000);
    pd_conn *b = connect_one(0);
    pd_conn_setcb(b, dummy_read_cb, NULL, client_event_cb, (void *)(intptr_t)0);
    /* the caller's last wakeups, still due when it gives the connection back */
    pd_conn_disable(b, EV_READ | EV_WRITE);
    pd_conn_enable(b, EV_READ | EV_WRITE);
    ck_assert_int_eq(pd_upool_put(p, "k", b), 0);
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(stats(p).idle, 1);
    ck_assert_uint_eq(stats(p).closed_by_peer, 0);
    /* while a real byte from the origin still closes it */
    bufferevent_write(origin[0], "x", 1);
    RUN_UNTIL(stats(p).idle == 0);
    ck_assert_uint_eq(stats(p).closed_by_peer, 1);
    pd_upool_free(p);
}
END_TEST

START_TEST(free_with_idle_connections)
{
    pd_upool *p = new_pool(10, 4, 50);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pd_upool_put(p, i ? "a" : "b", connect_one(i)), 0);
    pd_upool_free(p);
    pd_upool_free(NULL);
    RUN_UNTIL(n_origin_eof == 3);
    pd_upool_stats st;
    pd_upool_get_stats(NULL, &st);
    ck_assert_uint_eq(st.idle, 0);
}
END_TEST

static Suite *upool_suite(void)
{
    Suite *s = suite_create("upool");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, put_get_round_trip);
    tcase_add_test(tc, get_is_lifo);
    tcase_add_test(tc, per_key_cap_closes_oldest);
    tcase_add_test(tc, global_cap_closes_oldest);
    tcase_add_test(tc, peer_close_frees_idle_connection);
    tcase_add_test(tc, unexpected_bytes_free_idle_connection);
    tcase_add_test(tc, idle_timeout_expires);
    tcase_add_test(tc, keys_do_not_mix);
    tcase_add_test(tc, many_keys_grow_the_table);
    tcase_add_test(tc, flush_closes_everything);
    tcase_add_test(tc, put_refuses_connection_with_pending_input);
    tcase_add_test(tc, limits_zero_disable_pooling);
    tcase_add_test(tc, get_drops_connection_closed_before_the_loop_saw_it);
    tcase_add_test(tc, callbacks_queued_before_put_do_not_close);
    tcase_add_test(tc, free_with_idle_connections);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(upool_suite());
}
