/*
 * upool: per-worker pool of idle keep-alive connections to origins.
 *
 * Idle connections hang off a small string-keyed hash table, one bucket per
 * key with its connections oldest first; a second list holds every idle
 * connection oldest first. As all share one idle timeout, that list is also
 * the expiry order: one timer, armed for its head, expires them all, and its
 * head is the one to close when the pool is full.
 *
 * While pooled, a connection reads: the origin closing it or sending
 * anything (a response nobody asked for) makes it useless, and it is freed
 * at once. pd_upool_get hands out the most recently used connection (LIFO:
 * the warmest, and the least likely to have been timed out by the origin),
 * after a last non-blocking look at the socket for a close the event loop
 * has not seen yet.
 */
#include "proxyd/upool.h"
#include "proxyd/clock.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>

#define UPOOL_MAGIC 0x55504f4cu         /* "UPOL" */

struct bucket;

struct idle {
    pd_conn *bev;
    pd_upool *pool;
    struct bucket *b;
    int64_t since_ms;                   /* when it was put */
    TAILQ_ENTRY(idle) by_key;           /* in b->conns, oldest first */
    TAILQ_ENTRY(idle) by_age;           /* in pool->all, oldest first */
};

TAILQ_HEAD(idle_list, idle);

struct bucket {
    struct bucket *hnext;
    uint64_t hash;
    struct idle_list conns;
    int n;
    char key[];
};

struct pd_upool {
    unsigned magic;
    struct event_base *base;
    pd_upool_opts opts;
    struct bucket **tab;
    size_t tab_size, n_buckets;
    struct idle_list all;
    size_t n_idle;
    struct event *timer;
    pd_upool_stats stats;
};

enum close_reason { CLOSE_TAKEN, CLOSE_EVICTED, CLOSE_EXPIRED, CLOSE_PEER, CLOSE_FLUSH };

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;     /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

static struct bucket *bucket_find(const pd_upool *pool, const char *key, uint64_t h)
{
    struct bucket *b = pool->tab[h & (pool->tab_size - 1)];
    while (b && (b->hash != h || strcmp(b->key, key) != 0))
        b = b->hnext;
    return b;
}

static void tab_grow(pd_upool *pool)
{
    size_t nsize = pool->tab_size * 2;
    struct bucket **nt = calloc(nsize, sizeof(*nt));
    if (!nt)
        return;                         /* longer chains, still correct */
    for (size_t i = 0; i < pool->tab_size; i++) {
        struct bucket *b = pool->tab[i], *next;
        for (; b; b = next) {
            next = b->hnext;
            b->hnext = nt[b->hash & (nsize - 1)];
            nt[b->hash & (nsize - 1)] = b;
        }
    }
    free(pool->tab);
    pool->tab = nt;
    pool->tab_size = nsize;
}

static struct bucket *bucket_get(pd_upool *pool, const char *key)
{
    uint64_t h = hash_key(key);
    struct bucket *b = bucket_find(pool, key, h);
    if (b)
        return b;
    size_t len = strlen(key);
    b = calloc(1, sizeof(*b) + len + 1);
    if (!b)
        return NULL;
    memcpy(b->key, key, len + 1);
    b->hash = h;
    TAILQ_INIT(&b->conns);
    if (pool->n_buckets >= pool->tab_size)
        tab_grow(pool);
    struct bucket **head = &pool->tab[h & (pool->tab_size - 1)];
    b->hnext = *head;
    *head = b;
    pool->n_buckets++;
    return b;
}

static void bucket_free(pd_upool *pool, struct bucket *b)
{
    struct bucket **pp = &pool->tab[b->hash & (pool->tab_size - 1)];
    while (*pp != b)
        pp = &(*pp)->hnext;
    *pp = b->hnext;
    pool->n_buckets--;
    free(b);
}

/*
 * Take c out of the pool. For CLOSE_TAKEN the connection is returned,
 * silenced, to the caller; otherwise it is freed and NULL returned.
 */
static pd_conn *idle_remove(pd_upool *pool, struct idle *c, enum close_reason why)
{
    pd_conn *bev = c->bev;
    struct bucket *b = c->b;

    TAILQ_REMOVE(&b->conns, c, by_key);
    TAILQ_REMOVE(&pool->all, c, by_age);
    pool->n_idle--;
    if (--b->n == 0)
        bucket_free(pool, b);
    free(c);

    pd_conn_setcb(bev, NULL, NULL, NULL, NULL);
    pd_conn_disable(bev, EV_READ | EV_WRITE);
    switch (why) {
    case CLOSE_TAKEN:
        return bev;
    case CLOSE_EVICTED:
        pool->stats.evicted++;
        break;
    case CLOSE_EXPIRED:
        pool->stats.expired++;
        break;
    case CLOSE_PEER:
        pool->stats.closed_by_peer++;
        break;
    case CLOSE_FLUSH:
        break;
    }
    /* Safe inside bev's own callback: pd_conn defers the final free. */
    pd_conn_free(bev);
    return NULL;
}

static void arm_timer(pd_upool *pool)
{
    struct idle *oldest = TAILQ_FIRST(&pool->all);
    if (!oldest || evtimer_pending(pool->timer, NULL))
        return;
    int64_t wait = pool->opts.idle_timeout_ms - (pd_clock_ms() - oldest->since_ms);
    if (wait < 1)
        wait = 1;
    struct timeval tv = pd_clock_tv(wait);
    evtimer_add(pool->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_upool *pool = arg;
    assert(pool->magic == UPOOL_MAGIC);
    int64_t now = pd_clock_ms();
    struct idle *c;
    while ((c = TAILQ_FIRST(&pool->all)) && now - c->since_ms >= pool->opts.idle_timeout_ms)
        idle_remove(pool, c, CLOSE_EXPIRED);
    /* Fired early for the new head (the old one was taken): wait again. */
    arm_timer(pool);
}

/*
 * An idle connection has nothing to say: any byte, EOF or error ends it.
 */
static void idle_read_cb(pd_conn *bev, void *arg)
{
    struct idle *c = arg;
    if (evbuffer_get_length(pd_conn_input(bev)) > 0)
        idle_remove(c->pool, c, CLOSE_PEER);
}

static void idle_event_cb(pd_conn *bev, short what, void *arg)
{
    struct idle *c = arg;
    if (what & (PD_CONN_EOF | PD_CONN_ERROR))
        idle_remove(c->pool, c, CLOSE_PEER);
}

/*
 * 1 if the socket under bev looks reusable: nothing buffered, and a peek
 * sees neither data nor EOF (which the loop may not have delivered yet).
 */
static int idle_usable(pd_conn *bev)
{
    if (evbuffer_get_length(pd_conn_input(bev)) > 0)
        return 0;
    evutil_socket_t fd = pd_conn_fd(bev);
    if (fd < 0)
        return 1;                       /* not connected yet: trust it */
    char ch;
    ssize_t r = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r >= 0)
        return 0;                       /* data (unexpected) or EOF */
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOTSOCK;
}

pd_upool *pd_upool_new(struct event_base *base, const pd_upool_opts *opts)
{
    if (!base || !opts)
        return NULL;
    pd_upool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return NULL;
    pool->magic = UPOOL_MAGIC;
    pool->base = base;
    pool->opts = *opts;
    pool->tab_size = 64;
    pool->tab = calloc(pool->tab_size, sizeof(*pool->tab));
    pool->timer = evtimer_new(base, timer_cb, pool);
    TAILQ_INIT(&pool->all);
    if (!pool->tab || !pool->timer) {
        pd_upool_free(pool);
        return NULL;
    }
    return pool;
}

void pd_upool_flush(pd_upool *pool)
{
    if (!pool)
        return;
    assert(pool->magic == UPOOL_MAGIC);
    struct idle *c;
    while ((c = TAILQ_FIRST(&pool->all)))
        idle_remove(pool, c, CLOSE_FLUSH);
    if (pool->timer)
        evtimer_del(pool->timer);
}

void pd_upool_free(pd_upool *pool)
{
    if (!pool)
        return;
    pd_upool_flush(pool);
    if (pool->timer)
        event_free(pool->timer);
    free(pool->tab);
    pool->magic = 0;
    free(pool);
}

pd_conn *pd_upool_get(pd_upool *pool, const char *key)
{
    return pd_upool_take(pool, key, 1);
}

pd_conn *pd_upool_take(pd_upool *pool, const char *key, int peek)
{
    if (!pool || !key)
        return NULL;
    assert(pool->magic == UPOOL_MAGIC);
    struct bucket *b;
    while ((b = bucket_find(pool, key, hash_key(key)))) {
        struct idle *c = TAILQ_LAST(&b->conns, idle_list);
        if (evbuffer_get_length(pd_conn_input(c->bev)) > 0 || (peek && !idle_usable(c->bev))) {
            idle_remove(pool, c, CLOSE_PEER);   /* may free b: look it up again */
            continue;
        }
        pd_conn *bev = idle_remove(pool, c, CLOSE_TAKEN);
        pd_conn_set_timeouts(bev, 0, 0);
        pool->stats.reused++;
        return bev;
    }
    return NULL;
}

int pd_upool_put(pd_upool *pool, const char *key, pd_conn *bev)
{
    if (!bev)
        return -1;
    if (!pool || !key || pool->opts.max_idle <= 0 || pool->opts.max_per_key <= 0 ||
        pool->opts.idle_timeout_ms <= 0 ||
        evbuffer_get_length(pd_conn_input(bev)) > 0 ||
        evbuffer_get_length(pd_conn_output(bev)) > 0) {
        pd_conn_free(bev);
        return -1;
    }
    assert(pool->magic == UPOOL_MAGIC);

    /* Make room first: the oldest for this key, then the oldest of all. */
    struct bucket *b = bucket_find(pool, key, hash_key(key));
    if (b && b->n >= pool->opts.max_per_key)
        idle_remove(pool, TAILQ_FIRST(&b->conns), CLOSE_EVICTED);
    while (pool->n_idle >= (size_t)pool->opts.max_idle)
        idle_remove(pool, TAILQ_FIRST(&pool->all), CLOSE_EVICTED);

    struct idle *c = calloc(1, sizeof(*c));
    b = c ? bucket_get(pool, key) : NULL;
    if (!b) {
        free(c);
        pd_conn_free(bev);
        return -1;
    }
    c->bev = bev;
    c->pool = pool;
    c->b = b;
    c->since_ms = pd_clock_ms();
    TAILQ_INSERT_TAIL(&b->conns, c, by_key);
    TAILQ_INSERT_TAIL(&pool->all, c, by_age);
    b->n++;
    pool->n_idle++;
    pool->stats.put++;

    pd_conn_setcb(bev, idle_read_cb, NULL, idle_event_cb, c);
    pd_conn_set_read_high(bev, 0);   /* one byte must wake us */
    pd_conn_set_timeouts(bev, 0, 0);
    pd_conn_disable(bev, EV_WRITE);
    pd_conn_enable(bev, EV_READ);
    arm_timer(pool);
    return 0;
}

void pd_upool_get_stats(const pd_upool *pool, pd_upool_stats *out)
{
    if (!out)
        return;
    if (!pool) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = pool->stats;
    out->idle = pool->n_idle;
}
