/*
 * conn: a non-blocking socket with input and output buffers (see conn.h for
 * the contract). One edge-triggered event per socket, added once; the flags
 * can_read / can_write remember what the last edge said until a read or a
 * write returns short or EAGAIN. Pausing and resuming reading therefore costs
 * no epoll_ctl: resuming only schedules a read from the event loop.
 */
#include "proxyd/conn.h"
#include "proxyd/clock.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event_struct.h>

#define CONN_MAGIC 0x50444e43u /* "PDNC" */

/* Bytes read per event before the loop serves others (fairness). */
#define READ_BUDGET (2 * PD_CONN_MAX_READ)
/* writev(2) takes at most this many chunks in one call (libevent's limit). */
#define WRITE_IOVECS 128
/* The splice relay's pipe: what may wait in the kernel for a slow destination. */
#define SPLICE_PIPE (256 * 1024)

struct pd_conn {
    unsigned magic;
    evutil_socket_t fd;
    struct event_base *base;
    struct event ev;            /* EV_READ|EV_WRITE|EV_ET|EV_PERSIST, added once */
    struct event *rtimer, *wtimer; /* made on first use */
    /*
     * Lazy timers: progress only moves the deadline (0: none wanted); an
     * armed event that fires early re-arms itself for what is left, so a
     * busy connection costs no timer operation per read or write.
     */
    int64_t rdl, wdl;           /* deadlines, monotonic ms */
    int64_t r_at, w_at;         /* when the armed events fire (0: not armed) */
    struct evbuffer *in, *out;
    pd_conn_data_cb read_cb, write_cb;
    pd_conn_event_cb event_cb;
    void *arg;
    size_t read_high, write_low;
    size_t rsize;               /* next read's size */
    int64_t rto_ms, wto_ms;
    unsigned depth;             /* callbacks of this conn on the stack */
    unsigned registered : 1;
    unsigned can_read : 1, can_write : 1;
    unsigned read_on : 1, write_on : 1;
    unsigned connecting : 1, eof : 1, failed : 1;
    unsigned rdhup : 1;         /* the peer half-closed: read on to the EOF */
    unsigned hup_told : 1;      /* PD_CONN_HUP delivered */
    unsigned shut_pending : 1, shut_done : 1;
    unsigned dead : 1;
    unsigned files : 1;         /* the output may hold file segments (sendfile) */
    struct sockaddr_in6 peer;   /* the address connected to (pd_conn_connect) */
    socklen_t peer_len;
    /* splice relay (pd_conn_splice): on the source, its partner, the pipe
     * (owned) and what it holds; on the destination, its source */
    pd_conn *sdst, *ssrc;
    int pipe_r, pipe_w;
    size_t piped, pipe_cap;
    uint64_t spliced;           /* bytes moved into sdst since pd_conn_take_spliced */
};

static pd_conn_counters counters;

void pd_conn_get_counters(pd_conn_counters *out)
{
    *out = counters;
}

static void rtimeout_cb(evutil_socket_t fd, short what, void *arg);
static void wtimeout_cb(evutil_socket_t fd, short what, void *arg);

/* Make sure *t fires no later than deadline (and not before, unless already armed earlier). */
static void timer_arm(pd_conn *c, struct event **t, event_callback_fn fn, int64_t *at,
                      int64_t deadline, int64_t now)
{
    if (*at && *at <= deadline)
        return; /* fires in time; it re-arms itself for the rest */
    if (!*t && !(*t = evtimer_new(c->base, fn, c)))
        return;
    struct timeval tv = pd_clock_tv(deadline - now);
    evtimer_add(*t, &tv);
    *at = deadline;
}

/* One timer's side of update_timers. */
static void timer_want(pd_conn *c, struct event **t, event_callback_fn fn, int64_t *dl,
                       int64_t *at, int64_t ms, int want, int restart, int64_t now)
{
    if (!want || ms <= 0) {
        *dl = 0; /* an armed event finds nothing due and stops */
        return;
    }
    if (restart || !*dl)
        *dl = now + ms;
    timer_arm(c, t, fn, at, *dl, now);
}

static int read_paused_by_high(const pd_conn *c)
{
    if (c->sdst)
        return c->piped >= c->pipe_cap; /* splicing: paused while the pipe is full */
    return c->read_high && evbuffer_get_length(c->in) >= c->read_high;
}

/* Arm or disarm the timers for the conn's state; restart them after progress. */
static void update_timers(pd_conn *c, int restart_r, int restart_w)
{
    if (!c->rto_ms && !c->wto_ms)
        return;
    int live = !c->dead && !c->failed;
    int64_t now = pd_clock_ms();
    timer_want(c, &c->rtimer, rtimeout_cb, &c->rdl, &c->r_at, c->rto_ms,
               live && c->read_on && !c->eof && !read_paused_by_high(c), restart_r, now);
    timer_want(c, &c->wtimer, wtimeout_cb, &c->wdl, &c->w_at, c->wto_ms,
               live && (c->connecting || (c->write_on && pd_conn_pending(c) > 0)), restart_w, now);
}

static void schedule(pd_conn *c, short what)
{
    if (c->registered && !c->dead)
        event_active(&c->ev, what, 1);
}

/* ---- buffers' callbacks: the owner drained the input, or queued output ---- */

static void in_changed(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    pd_conn *c = arg;
    if (!info->n_deleted || !c->read_on || c->eof || c->failed)
        return;
    if (c->read_high && info->orig_size >= c->read_high &&
        evbuffer_get_length(b) < c->read_high) {
        /* out of the pause: the read timeout runs again, and so does reading */
        update_timers(c, 1, 0);
        if (c->can_read)
            schedule(c, EV_READ);
    }
}

static void out_changed(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
    pd_conn *c = arg;
    if (!info->n_added || c->failed || c->connecting)
        return;
    if (c->write_on && c->can_write && info->orig_size == 0)
        schedule(c, EV_WRITE);
    if (c->wto_ms > 0 && c->write_on && !c->wdl)
        update_timers(c, 0, 0);
}

/* ---- creation and destruction ------------------------------------------- */

static void io_cb(evutil_socket_t fd, short what, void *arg);

static int add_event(pd_conn *c)
{
    if (event_assign(&c->ev, c->base, c->fd, EV_READ | EV_WRITE | EV_CLOSED | EV_ET | EV_PERSIST, io_cb, c) < 0 ||
        event_add(&c->ev, NULL) < 0)
        return -1;
    c->registered = 1;
    return 0;
}

pd_conn *pd_conn_new(struct event_base *base, evutil_socket_t fd)
{
    pd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    c->magic = CONN_MAGIC;
    c->fd = fd;
    c->pipe_r = c->pipe_w = -1;
    c->base = base;
    c->read_on = c->write_on = 1;
    c->rsize = PD_CONN_MIN_READ;
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    if (!c->in || !c->out || !evbuffer_add_cb(c->in, in_changed, c) ||
        !evbuffer_add_cb(c->out, out_changed, c) ||
        evbuffer_set_flags(c->out, EVBUFFER_FLAG_DRAINS_TO_FD) < 0) {
        pd_conn_free(c);
        return NULL;
    }
    if (fd >= 0) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || add_event(c) < 0) {
            pd_conn_free(c);
            return NULL;
        }
    }
    return c;
}

/* End c's part in a splice relay: partners forget it; a source closes its pipe. */
static void splice_unlink(pd_conn *c)
{
    if (c->sdst) {
        c->sdst->ssrc = NULL;
        c->sdst = NULL;
    }
    if (c->ssrc) {
        c->ssrc->sdst = NULL;
        c->ssrc->read_on = 0; /* nowhere to put what it reads */
        c->ssrc = NULL;
    }
    if (c->pipe_r >= 0) {
        close(c->pipe_r);
        close(c->pipe_w);
        c->pipe_r = c->pipe_w = -1;
    }
}

static void really_free(pd_conn *c)
{
    splice_unlink(c);
    if (c->registered)
        event_del(&c->ev);
    if (c->rtimer)
        event_free(c->rtimer);
    if (c->wtimer)
        event_free(c->wtimer);
    /* the buffers first: their reference cleanups (cached pages) run now */
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    if (c->fd >= 0)
        close(c->fd);
    c->magic = 0;
    free(c);
}

void pd_conn_free(pd_conn *c)
{
    if (!c)
        return;
    assert(c->magic == CONN_MAGIC);
    if (c->depth) {
        /* inside one of its callbacks: silence it now, free on the way out */
        c->dead = 1;
        c->read_cb = c->write_cb = NULL;
        c->event_cb = NULL;
        splice_unlink(c);
        if (c->registered)
            event_del(&c->ev);
        c->registered = 0;
        update_timers(c, 0, 0);
        return;
    }
    really_free(c);
}

int pd_conn_connect(pd_conn *c, const struct sockaddr *sa, socklen_t len)
{
    return pd_conn_connect_from(c, sa, len, NULL);
}

int pd_conn_connect_from(pd_conn *c, const struct sockaddr *sa, socklen_t len,
                         const struct sockaddr_storage *src)
{
    assert(c->magic == CONN_MAGIC && c->fd < 0);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src) {
        /* the port is chosen at connect, by the 4-tuple: no ephemeral port
         * is held per source address (IP_BIND_ADDRESS_NO_PORT) */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        socklen_t sl = src->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        if (bind(fd, (const struct sockaddr *)src, sl) < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    c->fd = fd;
    c->connecting = 1;
    c->peer_len = len <= sizeof c->peer ? len : 0;
    memcpy(&c->peer, sa, c->peer_len);
    if (add_event(c) < 0) {
        c->fd = -1;
        close(fd);
        c->connecting = 0;
        return -1;
    }
    update_timers(c, 0, 1);
    return 0;
}

/* ---- the event loop's side -------------------------------------------- */

static void fire_event(pd_conn *c, short what)
{
    if (c->event_cb)
        c->event_cb(c, what, c->arg);
}

/* The connect finished (writable): tell the owner how. */
static void connect_done(pd_conn *c)
{
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    c->connecting = 0;
    if (err) {
        c->failed = 1;
        update_timers(c, 0, 0);
        errno = err;
        fire_event(c, PD_CONN_ERROR | PD_CONN_WRITING);
        return;
    }
    c->can_write = 1;
    update_timers(c, 1, 1);
    fire_event(c, PD_CONN_CONNECTED);
}

static void do_write(pd_conn *c)
{
    size_t wrote = 0;
    while (c->write_on && c->can_write && !c->failed) {
        size_t len = evbuffer_get_length(c->out);
        if (!len)
            break;
        int chunks = evbuffer_peek(c->out, -1, NULL, NULL, 0);
        int n = evbuffer_write_atmost(c->out, c->fd, -1);
        counters.writes++;
        if (n > 0) {
            wrote += (size_t)n;
            counters.write_bytes += (uint64_t)n;
            /* the socket took less than all: it is full (a write stops short
             * of a file segment, so with those, write on to EAGAIN) */
            if ((size_t)n < len && chunks <= WRITE_IOVECS && !c->files)
                c->can_write = 0;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            c->can_write = 0;
            break;
        }
        c->failed = 1;
        c->read_on = 0;
        update_timers(c, 0, 0);
        fire_event(c, PD_CONN_ERROR | PD_CONN_WRITING);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    if (!left)
        c->files = 0;
    if (!left && c->shut_pending && !c->shut_done) {
        shutdown(c->fd, SHUT_WR);
        c->shut_done = 1;
    }
    if (!wrote)
        return;
    update_timers(c, 0, 1);
    if (left <= c->write_low && c->write_cb)
        c->write_cb(c, c->arg);
}

/*
 * The end of a read round (buffered or spliced): the owner hears of the new
 * bytes (progress), then of the EOF or error; a round stopped by the budget
 * with bytes left in the socket continues at the next loop iteration.
 */
static void read_round_end(pd_conn *c, size_t total, int progress, int eof, int err)
{
    if (total)
        update_timers(c, 1, 0);
    if (progress && c->read_cb) {
        c->read_cb(c, c->arg);
        if (c->dead)
            return;
    }
    if (eof || err) {
        if (eof)
            c->eof = 1;
        else
            c->failed = 1;
        c->read_on = 0;
        update_timers(c, 0, 0);
        errno = err;
        fire_event(c, (eof ? PD_CONN_EOF : PD_CONN_ERROR) | PD_CONN_READING);
        return;
    }
    if (total >= READ_BUDGET && c->can_read && c->read_on && !read_paused_by_high(c))
        schedule(c, EV_READ);
}

/* Move what the source's pipe holds into the destination's socket. Returns
 * the bytes moved; a write error marks d failed (the caller tells d's owner). */
static size_t splice_drain(pd_conn *c)
{
    pd_conn *d = c->sdst;
    size_t moved = 0;
    while (d && c->piped && d->can_write && d->write_on && !d->failed && !d->dead) {
        ssize_t n = splice(c->pipe_r, NULL, d->fd, NULL, c->piped, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        counters.writes++;
        if (n > 0) {
            c->piped -= (size_t)n;
            c->spliced += (uint64_t)n;
            moved += (size_t)n;
            counters.write_bytes += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            d->can_write = 0;
            break;
        }
        d->failed = 1;
        d->read_on = 0;
        break;
    }
    if (moved && d)
        update_timers(d, 0, 1);
    return moved;
}

/* d (a splice destination) failed writing: tell its owner from d's side. */
static void splice_dst_failed(pd_conn *d)
{
    d->depth++;
    update_timers(d, 0, 0);
    fire_event(d, PD_CONN_ERROR | PD_CONN_WRITING);
    if (--d->depth == 0 && d->dead)
        really_free(d);
}

/* do_read for a splice source: socket -> pipe -> destination socket. */
static void splice_read(pd_conn *c)
{
    size_t total = 0;
    int eof = 0, err = 0;
    uint64_t before = c->spliced;
    splice_drain(c);
    while (c->sdst && c->read_on && c->can_read && !c->eof && !c->failed && total < READ_BUDGET) {
        if (c->piped >= c->pipe_cap)
            break; /* the destination is slow: its writability resumes us */
        ssize_t n = splice(c->fd, NULL, c->pipe_w, NULL, c->pipe_cap - c->piped,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        counters.reads++;
        if (n > 0) {
            c->piped += (size_t)n;
            total += (size_t)n;
            counters.read_bytes += (uint64_t)n;
            splice_drain(c);
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* with bytes in the pipe this may be the pipe's slots that are
             * full, not the socket that is empty: then keep can_read and let
             * the destination's drain bring us back */
            if (c->piped == 0)
                c->can_read = 0;
            break;
        }
        err = errno;
        break;
    }
    pd_conn *d = c->sdst;
    if (d && d->failed && !d->dead) {
        splice_dst_failed(d);
        if (c->dead)
            return;
    }
    read_round_end(c, total, c->spliced != before, eof, err);
}

static void do_read(pd_conn *c)
{
    if (c->sdst) {
        splice_read(c);
        return;
    }
    size_t total = 0;
    int eof = 0, err = 0;
    while (c->read_on && c->can_read && !c->eof && !c->failed && total < READ_BUDGET) {
        size_t have = evbuffer_get_length(c->in);
        if (c->read_high && have >= c->read_high)
            break;
        size_t want = c->rsize;
        if (c->read_high && want > c->read_high - have)
            want = c->read_high - have;
        struct evbuffer_iovec v[2];
        int nv = evbuffer_reserve_space(c->in, (ev_ssize_t)want, v, 2);
        if (nv < 1) {
            err = ENOMEM;
            break;
        }
        size_t space = 0;
        struct iovec iov[2];
        for (int i = 0; i < nv; i++) {
            /* the buffer may offer more room than asked: take only want */
            if (v[i].iov_len > want - space)
                v[i].iov_len = want - space;
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
            space += v[i].iov_len;
        }
        ssize_t n = readv(c->fd, iov, nv);
        counters.reads++;
        if (n > 0) {
            size_t rest = (size_t)n;
            int used = 0;
            for (int i = 0; i < nv && rest; i++, used++) {
                if (v[i].iov_len > rest)
                    v[i].iov_len = rest;
                rest -= v[i].iov_len;
            }
            evbuffer_commit_space(c->in, v, used);
            total += (size_t)n;
            counters.read_bytes += (uint64_t)n;
            if ((size_t)n < space && !c->rdhup) {
                /* the socket is empty now; the next edge says when not (an
                 * EOF that came with these bytes came with EV_CLOSED) */
                c->can_read = 0;
            } else if (c->rsize < PD_CONN_MAX_READ) {
                c->rsize *= 2;
            }
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->can_read = 0;
            break;
        }
        err = errno;
        break;
    }
    read_round_end(c, total, total > 0, eof, err);
}

/* c (a splice destination) can be written: drain its source's pipe; the
 * source reads again when it was waiting for room, and its owner hears of the
 * progress through c's write_cb (a drained pipe may let it pass a half-close on). */
static void splice_resume(pd_conn *c)
{
    pd_conn *s = c->ssrc;
    uint64_t before = s->spliced;
    splice_drain(s);
    if (c->failed) {
        splice_dst_failed(c);
        return;
    }
    if (s->spliced == before)
        return;
    if (s->can_read && s->read_on && !s->eof && !read_paused_by_high(s))
        schedule(s, EV_READ);
    if (s->piped <= c->write_low && c->write_cb)
        c->write_cb(c, c->arg);
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_conn *c = arg;
    assert(c->magic == CONN_MAGIC);
    c->depth++;
    if (what & (EV_READ | EV_CLOSED))
        c->can_read = 1;
    if (what & EV_CLOSED)
        c->rdhup = 1;
    if (c->connecting) {
        if (what & EV_WRITE)
            connect_done(c);
        if (c->dead || c->connecting || c->failed)
            goto out;
    } else if (what & EV_WRITE) {
        c->can_write = 1;
    }
    if (!c->failed)
        do_write(c);
    if (!c->dead && !c->failed && c->ssrc && (what & EV_WRITE))
        splice_resume(c);
    if (!c->dead && !c->failed)
        do_read(c);
    if (!c->dead && c->rdhup && !c->read_on && !c->eof && !c->failed && !c->hup_told) {
        c->hup_told = 1;
        fire_event(c, PD_CONN_HUP);
    }
out:
    if (--c->depth == 0 && c->dead)
        really_free(c);
}

/* An armed timer fired: 1 when its deadline has really passed. */
static int timer_due(pd_conn *c, struct event **t, event_callback_fn fn, int64_t *dl, int64_t *at)
{
    *at = 0;
    if (!*dl || c->dead)
        return 0;
    int64_t now = pd_clock_ms();
    if (now < *dl) {
        timer_arm(c, t, fn, at, *dl, now);
        return 0;
    }
    *dl = 0;
    return 1;
}

/* A read (PD_CONN_READING) or write (PD_CONN_WRITING) timeout ran out: that
 * direction stops and the owner hears of it. */
static void timed_out(pd_conn *c, short which)
{
    c->depth++;
    if (which == PD_CONN_READING)
        c->read_on = 0;
    else
        c->write_on = 0;
    fire_event(c, PD_CONN_TIMEOUT | which);
    if (--c->depth == 0 && c->dead)
        really_free(c);
}

static void rtimeout_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_conn *c = arg;
    if (timer_due(c, &c->rtimer, rtimeout_cb, &c->rdl, &c->r_at))
        timed_out(c, PD_CONN_READING);
}

static void wtimeout_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_conn *c = arg;
    if (timer_due(c, &c->wtimer, wtimeout_cb, &c->wdl, &c->w_at))
        timed_out(c, PD_CONN_WRITING);
}

/* ---- the owner's side ------------------------------------------------- */

void pd_conn_setcb(pd_conn *c, pd_conn_data_cb read_cb, pd_conn_data_cb write_cb,
                   pd_conn_event_cb event_cb, void *arg)
{
    assert(c->magic == CONN_MAGIC);
    if (c->dead)
        return;
    c->read_cb = read_cb;
    c->write_cb = write_cb;
    c->event_cb = event_cb;
    c->arg = arg;
}

struct evbuffer *pd_conn_input(pd_conn *c)
{
    return c->in;
}

struct evbuffer *pd_conn_output(pd_conn *c)
{
    return c->out;
}

int pd_conn_add_file(pd_conn *c, int fd, int64_t off, size_t len,
                     evbuffer_file_segment_cleanup_cb done, void *arg)
{
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(fd, (ev_off_t)off, (ev_off_t)len, EVBUF_FS_DISABLE_LOCKING);
    if (!seg) {
        done(NULL, 0, arg);
        return -1;
    }
    evbuffer_file_segment_add_cleanup_cb(seg, done, arg);
    int rc = evbuffer_add_file_segment(c->out, seg, 0, (ev_off_t)len);
    evbuffer_file_segment_free(seg); /* the buffer holds it now, or done runs */
    if (rc < 0)
        return -1;
    c->files = 1;
    return 0;
}

evutil_socket_t pd_conn_fd(const pd_conn *c)
{
    return c->fd;
}

const struct sockaddr *pd_conn_peer(const pd_conn *c)
{
    return c->peer_len ? (const struct sockaddr *)&c->peer : NULL;
}

int pd_conn_reading(const pd_conn *c)
{
    return c->read_on;
}

void pd_conn_enable(pd_conn *c, short what)
{
    assert(c->magic == CONN_MAGIC);
    if (c->dead || c->failed)
        return;
    if ((what & EV_READ) && !c->read_on && !c->eof) {
        c->read_on = 1;
        if (c->can_read && !read_paused_by_high(c))
            schedule(c, EV_READ);
    }
    if ((what & EV_WRITE) && !c->write_on) {
        c->write_on = 1;
        if (c->can_write && !c->connecting && evbuffer_get_length(c->out))
            schedule(c, EV_WRITE);
    }
    update_timers(c, 0, 0);
}

void pd_conn_disable(pd_conn *c, short what)
{
    assert(c->magic == CONN_MAGIC);
    if (what & EV_READ)
        c->read_on = 0;
    if (what & EV_WRITE)
        c->write_on = 0;
    update_timers(c, 0, 0);
}

void pd_conn_set_read_high(pd_conn *c, size_t high)
{
    size_t old = c->read_high;
    c->read_high = high;
    if (old && (!high || high > old) && c->read_on && c->can_read && !read_paused_by_high(c))
        schedule(c, EV_READ);
    update_timers(c, 0, 0);
}

void pd_conn_set_write_low(pd_conn *c, size_t low)
{
    c->write_low = low;
}

void pd_conn_set_timeouts(pd_conn *c, int64_t read_ms, int64_t write_ms)
{
    c->rto_ms = read_ms > 0 ? read_ms : 0;
    c->wto_ms = write_ms > 0 ? write_ms : 0;
    c->rdl = c->wdl = 0;
    update_timers(c, 1, 1);
}

void pd_conn_shutdown_write(pd_conn *c)
{
    if (c->shut_done || c->failed)
        return;
    if (evbuffer_get_length(c->out) == 0 && !c->connecting) {
        shutdown(c->fd, SHUT_WR);
        c->shut_done = 1;
        return;
    }
    c->shut_pending = 1;
}

/* ---- the splice relay --------------------------------------------------- */

int pd_conn_splice(pd_conn *src, pd_conn *dst)
{
    assert(src->magic == CONN_MAGIC && dst->magic == CONN_MAGIC);
    if (src->sdst || dst->ssrc || src->dead || dst->dead || src->failed ||
        dst->failed || src->connecting || dst->connecting || evbuffer_get_length(src->in) ||
        evbuffer_get_length(dst->out)) {
        errno = EINVAL;
        return -1;
    }
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    int cap = fcntl(p[1], F_SETPIPE_SZ, SPLICE_PIPE);
    if (cap <= 0)
        cap = fcntl(p[1], F_GETPIPE_SZ);
    if (cap <= 0) {
        close(p[0]);
        close(p[1]);
        errno = EINVAL;
        return -1;
    }
    src->pipe_r = p[0];
    src->pipe_w = p[1];
    src->pipe_cap = (size_t)cap;
    src->piped = 0;
    src->sdst = dst;
    dst->ssrc = src;
    if (src->read_on && src->can_read)
        schedule(src, EV_READ);
    return 0;
}

uint64_t pd_conn_take_spliced(pd_conn *c)
{
    uint64_t n = c->spliced;
    c->spliced = 0;
    return n;
}

size_t pd_conn_pending(const pd_conn *c)
{
    return evbuffer_get_length(c->out) + (c->ssrc ? c->ssrc->piped : 0);
}
