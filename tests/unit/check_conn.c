/*
 * Unit tests for conn: a pd_conn on one end of a socketpair (or a loopback
 * TCP connection for connect), the test driving the other end by hand. Every
 * wait is on a condition with a deadline (RUN_UNTIL), never a sleep.
 */
#include "proxyd/conn.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

static struct event_base *base;

#include "evtest.h"
#include "check_run.h"


/* What the callbacks saw. */
struct seen {
    int reads, writes, events;
    short last_event;
    int last_errno;
    int free_in_read;           /* pd_conn_free from inside read_cb */
    int drain_in_read;          /* consume the input in read_cb */
    size_t consumed;
};

static void on_read(pd_conn *c, void *arg)
{
    struct seen *s = arg;
    s->reads++;
    if (s->drain_in_read) {
        size_t n = evbuffer_get_length(pd_conn_input(c));
        s->consumed += n;
        evbuffer_drain(pd_conn_input(c), n);
    }
    if (s->free_in_read)
        pd_conn_free(c);
}

static void on_write(pd_conn *c, void *arg)
{
    ((struct seen *)arg)->writes++;
}

static void on_event(pd_conn *c, short what, void *arg)
{
    struct seen *s = arg;
    s->events++;
    s->last_event = what;
    s->last_errno = errno;
}

static int peer; /* the test's end of the socketpair */

static pd_conn *pair_conn(struct seen *s)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    peer = sv[1];
    fcntl(peer, F_SETFL, fcntl(peer, F_GETFL) | O_NONBLOCK);
    pd_conn *c = pd_conn_new(base, sv[0]);
    ck_assert_ptr_nonnull(c);
    memset(s, 0, sizeof *s);
    pd_conn_setcb(c, on_read, on_write, on_event, s);
    return c;
}

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
}

static void teardown(void)
{
    if (peer >= 0)
        close(peer);
    peer = -1;
    event_base_free(base);
}

/* Write up to n bytes of a pattern from the peer; returns what the socket took. */
static size_t peer_write(size_t off, size_t n)
{
    static unsigned char buf[64 * 1024];
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < sizeof buf ? n - done : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (unsigned char)((off + done + i) * 7);
        ssize_t w = write(peer, buf, k);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    return done;
}

START_TEST(big_body_read_in_large_chunks)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    const size_t total = 1024 * 1024;
    pd_conn_counters before, after;
    pd_conn_get_counters(&before);
    size_t sent = 0;
    unsigned char *got = malloc(total);
    size_t have = 0;
    while (have < total) {
        if (sent < total)
            sent += peer_write(sent, total - sent);
        size_t len0 = have;
        RUN_UNTIL(evbuffer_get_length(pd_conn_input(c)) > 0 || have < len0);
        size_t n = evbuffer_get_length(pd_conn_input(c));
        ck_assert_int_eq(evbuffer_remove(pd_conn_input(c), got + have, n), (int)n);
        have += n;
    }
    pd_conn_get_counters(&after);
    for (size_t i = 0; i < total; i++)
        ck_assert_uint_eq(got[i], (unsigned char)(i * 7));
    ck_assert_uint_eq(after.read_bytes - before.read_bytes, total);
    /* libevent 2.1's bufferevents read 4096 bytes per call: we must do much better */
    uint64_t reads = after.reads - before.reads;
    ck_assert_msg(total / reads > 4 * 4096, "%llu reads for 1 MiB", (unsigned long long)reads);
    free(got);
    pd_conn_free(c);
}
END_TEST

START_TEST(read_high_pauses_and_draining_resumes)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    pd_conn_set_read_high(c, 20000);
    size_t sent = peer_write(0, 100000);
    ck_assert_uint_gt(sent, 40000);
    RUN_UNTIL(evbuffer_get_length(pd_conn_input(c)) >= 20000);
    /* a few more rounds of the loop: the input must stay at the mark */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(evbuffer_get_length(pd_conn_input(c)), 20000);
    s.drain_in_read = 1;
    size_t n = evbuffer_get_length(pd_conn_input(c));
    evbuffer_drain(pd_conn_input(c), n);
    s.consumed = n;
    RUN_UNTIL(s.consumed == sent);
    pd_conn_free(c);
}
END_TEST

START_TEST(disabled_reading_keeps_the_edge)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    pd_conn_disable(c, EV_READ);
    ck_assert_int_eq(pd_conn_reading(c), 0);
    ck_assert_uint_eq(peer_write(0, 1000), 1000);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(s.reads, 0);
    ck_assert_uint_eq(evbuffer_get_length(pd_conn_input(c)), 0);
    /* the edge came while reading was off: enabling must read without a new one */
    pd_conn_enable(c, EV_READ);
    RUN_UNTIL(evbuffer_get_length(pd_conn_input(c)) == 1000);
    ck_assert_int_eq(s.reads, 1);
    pd_conn_free(c);
}
END_TEST

START_TEST(eof_after_the_data)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    ck_assert_uint_eq(peer_write(0, 500), 500);
    close(peer);
    peer = -1;
    RUN_UNTIL(s.events == 1);
    ck_assert_int_eq(s.last_event, PD_CONN_EOF | PD_CONN_READING);
    ck_assert_int_eq(s.reads, 1);
    ck_assert_uint_eq(evbuffer_get_length(pd_conn_input(c)), 500);
    ck_assert_int_eq(pd_conn_reading(c), 0);
    pd_conn_free(c);
}
END_TEST

START_TEST(hup_while_not_reading_then_data_and_eof)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    pd_conn_disable(c, EV_READ);
    ck_assert_uint_eq(peer_write(0, 300), 300);
    close(peer); /* the peer is gone while its bytes wait unread */
    peer = -1;
    RUN_UNTIL(s.events == 1);
    ck_assert_int_eq(s.last_event, PD_CONN_HUP);
    ck_assert_int_eq(s.reads, 0);
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(s.events, 1); /* told once */
    pd_conn_enable(c, EV_READ);
    RUN_UNTIL(s.events == 2);
    ck_assert_int_eq(s.last_event, PD_CONN_EOF | PD_CONN_READING);
    ck_assert_uint_eq(evbuffer_get_length(pd_conn_input(c)), 300);
    pd_conn_free(c);
}
END_TEST

START_TEST(output_written_and_write_cb_at_low_mark)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    const size_t total = 600000;
    char *data = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (char)(i * 13);
    pd_conn_set_write_low(c, 0);
    evbuffer_add(pd_conn_output(c), data, total);
    char *got = malloc(total);
    size_t have = 0;
    while (have < total) {
        RUN_UNTIL(s.writes > 0 || evbuffer_get_length(pd_conn_output(c)) < total - have);
        ssize_t r;
        while ((r = read(peer, got + have, total - have)) > 0)
            have += (size_t)r;
    }
    ck_assert_int_eq(memcmp(got, data, total), 0);
    RUN_UNTIL(s.writes >= 1);
    ck_assert_uint_eq(evbuffer_get_length(pd_conn_output(c)), 0);
    ck_assert_int_eq(s.events, 0);
    free(data);
    free(got);
    pd_conn_free(c);
}
END_TEST

START_TEST(free_inside_own_read_callback)
{
    struct seen s;
    pair_conn(&s); /* freed by its own read callback */
    s.free_in_read = 1;
    ck_assert_uint_eq(peer_write(0, 10), 10);
    close(peer); /* an EOF right behind the data: must not reach a freed conn */
    peer = -1;
    RUN_UNTIL(s.reads == 1);
    for (int i = 0; i < 3; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(s.reads, 1);
    ck_assert_int_eq(s.events, 0);
}
END_TEST

START_TEST(shutdown_write_after_the_output)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    evbuffer_add(pd_conn_output(c), "last words", 10);
    pd_conn_shutdown_write(c);
    char buf[32];
    size_t have = 0;
    ssize_t r = -1;
    while (r != 0) {
        RUN_UNTIL(evbuffer_get_length(pd_conn_output(c)) == 0);
        r = read(peer, buf + have, sizeof buf - have);
        if (r > 0)
            have += (size_t)r;
        else if (r < 0)
            ck_assert_int_eq(errno, EAGAIN);
    }
    ck_assert_uint_eq(have, 10);
    ck_assert_int_eq(memcmp(buf, "last words", 10), 0);
    pd_conn_free(c);
}
END_TEST

START_TEST(read_timeout_fires_while_reading)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    pd_conn_set_timeouts(c, 30, 0);
    RUN_UNTIL(s.events == 1);
    ck_assert_int_eq(s.last_event, PD_CONN_TIMEOUT | PD_CONN_READING);
    ck_assert_int_eq(pd_conn_reading(c), 0);
    pd_conn_free(c);
}
END_TEST

static int listen_any(struct sockaddr_in *sin)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(l, 0);
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(l, (struct sockaddr *)sin, sizeof *sin), 0);
    socklen_t sl = sizeof *sin;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)sin, &sl), 0);
    return l;
}

START_TEST(connect_then_send)
{
    struct sockaddr_in sin;
    int l = listen_any(&sin);
    ck_assert_int_eq(listen(l, 4), 0);
    struct seen s;
    memset(&s, 0, sizeof s);
    pd_conn *c = pd_conn_new(base, -1);
    pd_conn_setcb(c, on_read, on_write, on_event, &s);
    ck_assert_int_eq(pd_conn_connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    RUN_UNTIL(s.events == 1);
    ck_assert_int_eq(s.last_event, PD_CONN_CONNECTED);
    evbuffer_add(pd_conn_output(c), "ping", 4);
    int a = accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    RUN_UNTIL(evbuffer_get_length(pd_conn_output(c)) == 0);
    char buf[8];
    ck_assert_int_eq(read(a, buf, sizeof buf), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    ck_assert_int_eq(write(a, "pong", 4), 4);
    RUN_UNTIL(evbuffer_get_length(pd_conn_input(c)) == 4);
    close(a);
    close(l);
    pd_conn_free(c);
}
END_TEST

START_TEST(connect_refused)
{
    struct sockaddr_in sin;
    int l = listen_any(&sin);
    close(l); /* nobody listens there now */
    struct seen s;
    memset(&s, 0, sizeof s);
    pd_conn *c = pd_conn_new(base, -1);
    pd_conn_setcb(c, on_read, on_write, on_event, &s);
    if (pd_conn_connect(c, (struct sockaddr *)&sin, sizeof sin) < 0) {
        ck_assert_int_eq(errno, ECONNREFUSED);
    } else {
        RUN_UNTIL(s.events == 1);
        ck_assert(s.last_event & PD_CONN_ERROR);
        ck_assert_int_eq(s.last_errno, ECONNREFUSED);
    }
    ck_assert_int_eq(s.reads, 0);
    pd_conn_free(c);
}
END_TEST


/* ---- the splice relay ---- */

struct relay_seen {
    uint64_t moved;             /* pd_conn_take_spliced of the source */
    int src_eof, dst_writes;
};

static void relay_read(pd_conn *c, void *arg)
{
    ((struct relay_seen *)arg)->moved += pd_conn_take_spliced(c);
}

static void relay_write(pd_conn *c, void *arg)
{
    ((struct relay_seen *)arg)->dst_writes++;
}

static void relay_event(pd_conn *c, short what, void *arg)
{
    if (what & PD_CONN_EOF)
        ((struct relay_seen *)arg)->src_eof = 1;
}

/* Two socketpairs: conns on a[0] and b[0]; the test's ends a[1], b[1], non-blocking. */
static void two_pairs(int a[2], int b[2], pd_conn **ca, pd_conn **cb)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    fcntl(a[1], F_SETFL, fcntl(a[1], F_GETFL) | O_NONBLOCK);
    fcntl(b[1], F_SETFL, fcntl(b[1], F_GETFL) | O_NONBLOCK);
    *ca = pd_conn_new(base, a[0]);
    *cb = pd_conn_new(base, b[0]);
}

/* Bytes from a socketpair end through src -> dst to another pair's end, read
 * by the test in small sips (a slow reader: the pipe fills, reading pauses
 * and resumes), then the EOF, then the half-close passed on once the pipe is
 * empty. Everything arrives, in order, and pd_conn_take_spliced counts it. */
START_TEST(splice_relay_moves_everything_in_order)
{
    int a[2], b[2];
    pd_conn *src, *dst;
    two_pairs(a, b, &src, &dst);
    struct relay_seen rs = { 0 };
    pd_conn_setcb(src, relay_read, NULL, relay_event, &rs);
    pd_conn_setcb(dst, NULL, relay_write, NULL, &rs);
    ck_assert_int_eq(pd_conn_splice(src, dst), 0);
    ck_assert_int_eq(pd_conn_splice(src, dst), -1); /* once */

    const size_t total = 3u << 20;
    uint8_t *out = malloc(total), *in = malloc(total);
    for (size_t i = 0; i < total; i++)
        out[i] = (uint8_t)(i * 131 + (i >> 12));
    size_t sent = 0, got = 0;
    int closed = 0;
    for (int rounds = 0; got < total && rounds < 200000; rounds++) {
        if (sent < total) {
            ssize_t n = write(a[1], out + sent, total - sent < 65536 ? total - sent : 65536);
            if (n > 0)
                sent += (size_t)n;
        } else if (!closed) {
            close(a[1]);
            closed = 1;
        }
        event_base_loop(base, EVLOOP_NONBLOCK);
        ssize_t n = read(b[1], in + got, total - got < 7000 ? total - got : 7000);
        if (n > 0)
            got += (size_t)n;
    }
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(in, out, total) == 0);
    if (!closed) {
        close(a[1]);
        closed = 1;
    }
    RUN_UNTIL(rs.src_eof && pd_conn_pending(dst) == 0);
    ck_assert_uint_eq(rs.moved + pd_conn_take_spliced(src), total);
    ck_assert_int_gt(rs.dst_writes, 0); /* the slow reader made the pipe drain later */
    pd_conn_free(src);
    pd_conn_free(dst);
    char c;
    ck_assert_int_eq(read(b[1], &c, 1), 0); /* dst's socket closed: EOF for the reader */
    close(b[1]);
    free(out);
    free(in);
}
END_TEST

/* A tunnel's two directions: x -> y and y -> x spliced at once, bytes
 * flowing both ways at the same time; each side gets the other's bytes in
 * order, each relay counts its own, and each EOF is told by its source. */
START_TEST(splice_relay_both_directions_at_once)
{
    int a[2], b[2];
    pd_conn *x, *y;
    two_pairs(a, b, &x, &y);
    struct relay_seen sx = { 0 }, sy = { 0 };
    pd_conn_setcb(x, relay_read, relay_write, relay_event, &sx);
    pd_conn_setcb(y, relay_read, relay_write, relay_event, &sy);
    ck_assert_int_eq(pd_conn_splice(x, y), 0);
    ck_assert_int_eq(pd_conn_splice(y, x), 0);
    ck_assert_int_eq(pd_conn_splice(y, x), -1); /* once per direction */

    const size_t total = 2u << 20;
    uint8_t *ox = malloc(total), *oy = malloc(total), *ix = malloc(total), *iy = malloc(total);
    for (size_t i = 0; i < total; i++) {
        ox[i] = (uint8_t)(i * 131 + (i >> 12));
        oy[i] = (uint8_t)(i * 7 + 3 + (i >> 9));
    }
    size_t sx_n = 0, sy_n = 0, gx = 0, gy = 0; /* sent into x's and y's sockets; got out */
    for (int rounds = 0; (gx < total || gy < total) && rounds < 200000; rounds++) {
        ssize_t n;
        size_t want = total - sx_n < 65536 ? total - sx_n : 65536;
        if (want && (n = write(a[1], ox + sx_n, want)) > 0)
            sx_n += (size_t)n;
        want = total - sy_n < 65536 ? total - sy_n : 65536;
        if (want && (n = write(b[1], oy + sy_n, want)) > 0)
            sy_n += (size_t)n;
        event_base_loop(base, EVLOOP_NONBLOCK);
        if (gy < total && (n = read(b[1], iy + gy, total - gy < 9000 ? total - gy : 9000)) > 0)
            gy += (size_t)n;
        if (gx < total && (n = read(a[1], ix + gx, total - gx < 9000 ? total - gx : 9000)) > 0)
            gx += (size_t)n;
    }
    ck_assert_uint_eq(gx, total);
    ck_assert_uint_eq(gy, total);
    ck_assert(memcmp(iy, ox, total) == 0); /* x's bytes came out at y */
    ck_assert(memcmp(ix, oy, total) == 0);
    shutdown(a[1], SHUT_WR);
    shutdown(b[1], SHUT_WR);
    RUN_UNTIL(sx.src_eof && sy.src_eof);
    ck_assert_uint_eq(sx.moved + pd_conn_take_spliced(x), total);
    ck_assert_uint_eq(sy.moved + pd_conn_take_spliced(y), total);
    pd_conn_free(x);
    pd_conn_free(y);
    close(a[1]);
    close(b[1]);
    free(ox);
    free(oy);
    free(ix);
    free(iy);
}
END_TEST

/* The relay refuses to start while bytes wait in the buffers. */
START_TEST(splice_needs_empty_buffers)
{
    struct seen s;
    pd_conn *c = pair_conn(&s);
    int b[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    pd_conn *d = pd_conn_new(base, b[0]);
    evbuffer_add(pd_conn_output(d), "x", 1);
    ck_assert_int_eq(pd_conn_splice(c, d), -1);
    RUN_UNTIL(pd_conn_pending(d) == 0);
    ck_assert_int_eq(pd_conn_splice(c, d), 0);
    pd_conn_free(c);
    pd_conn_free(d);
    close(peer);
    close(b[1]);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, big_body_read_in_large_chunks);
    tcase_add_test(tc, read_high_pauses_and_draining_resumes);
    tcase_add_test(tc, disabled_reading_keeps_the_edge);
    tcase_add_test(tc, eof_after_the_data);
    tcase_add_test(tc, hup_while_not_reading_then_data_and_eof);
    tcase_add_test(tc, output_written_and_write_cb_at_low_mark);
    tcase_add_test(tc, free_inside_own_read_callback);
    tcase_add_test(tc, shutdown_write_after_the_output);
    tcase_add_test(tc, read_timeout_fires_while_reading);
    tcase_add_test(tc, connect_then_send);
    tcase_add_test(tc, connect_refused);
    tcase_add_test(tc, splice_relay_moves_everything_in_order);
    tcase_add_test(tc, splice_relay_both_directions_at_once);
    tcase_add_test(tc, splice_needs_empty_buffers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(conn_suite());
}
