/*
 * cache_repl: which complete object the store gives up when a writer needs
 * room. Everything here runs under the store's lock and touches only derived
 * structures plus three ground-truth fields per object (obj.q, obj.stamp,
 * obj.prio), from which pd_repl_rebuild() restores the queues after a crash.
 *
 * S3-FIFO (the default; Yang et al., "FIFO queues are all you need for cache
 * eviction", SOSP 2023): new objects enter a small FIFO holding 10% of the
 * blocks; an object hit while there moves to the main FIFO when it reaches
 * the small FIFO's tail, the others leave and their key hash is remembered in
 * a ghost table, so that one that comes back soon goes straight to main. The
 * main FIFO gives an object that was hit one more round (its 2-bit counter
 * goes down by one) before it leaves. A hit costs a counter increment, no
 * list move; a one-time scan passes through the small FIFO and leaves the
 * main one alone.
 * LRU: one list, a hit moves the object to the head.
 * GDSF and LFUDA (Squid's heap policies): a binary min-heap on a key
 * age + hits / size (GDSF, size in blocks) or age + hits (LFUDA), where age
 * is the key of the last object evicted; ties go to the least recent.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache_store_int.h"

#define S3_FREQ_MAX 3u
#define S3_PROMOTE 1u           /* hits in the small FIFO that earn main */
#define SMALL_SHARE 10u         /* percent of the blocks for the small FIFO */
#define HEAP_SEARCH 128u        /* heap entries examined for an unreferenced victim */

static bool is_heap(const struct seg *g)
{
    return g->policy == PD_CACHE_POLICY_GDSF || g->policy == PD_CACHE_POLICY_LFUDA;
}

/* ---- FIFO / LRU queues ---- */

/* Link o at the head of queue o->q (its stamp already set). */
static void q_link_head(pd_cache_store *s, struct obj *o)
{
    struct queue *q = &s->seg->q[o->q];
    uint32_t i = (uint32_t)(o - s->objs);
    o->qprev = NIL;
    o->qnext = q->head;
    if (q->head != NIL)
        s->objs[q->head].qprev = i;
    else
        q->tail = i;
    q->head = i;
    q->count++;
    q->blocks += obj_blocks(o);
    o->queued = 1;
}

static void q_unlink(pd_cache_store *s, struct obj *o)
{
    struct queue *q = &s->seg->q[o->q];
    if (o->qprev != NIL)
        s->objs[o->qprev].qnext = o->qnext;
    else
        q->head = o->qnext;
    if (o->qnext != NIL)
        s->objs[o->qnext].qprev = o->qprev;
    else
        q->tail = o->qprev;
    o->qprev = o->qnext = NIL;
    q->count--;
    q->blocks -= obj_blocks(o);
    o->queued = 0;
}

/* (Re)insert o at the head of queue qi: ground truth (q, stamp) first. */
static void q_push(pd_cache_store *s, struct obj *o, uint8_t qi)
{
    o->q = qi;
    o->stamp = ++s->seg->clock;
    barrier();
    q_link_head(s, o);
}

static void q_move_head(pd_cache_store *s, struct obj *o, uint8_t qi)
{
    q_unlink(s, o);
    q_push(s, o, qi);
}

/* ---- the S3-FIFO ghost table: recently dropped keys, by hash ---- */

static uint32_t ghost_window(const struct seg *g)
{
    uint32_t n = g->q[Q_MAIN].count + g->q[Q_SMALL].count;
    return n ? n : 1;
}

static void ghost_put(pd_cache_store *s, uint64_t hash)
{
    struct seg *g = s->seg;
    uint32_t fp = (uint32_t)(hash >> 32) | 1u, i = (uint32_t)hash & (g->n_ghost - 1);
    uint32_t now = ++g->ghost_clock;
    uint64_t *a = &s->ghost[i], *b = &s->ghost[i ^ 1u];
    /* the empty or the older of the two */
    uint32_t age_a = *a ? now - (uint32_t)*a : UINT32_MAX, age_b = *b ? now - (uint32_t)*b : UINT32_MAX;
    uint64_t *t = age_a >= age_b ? a : b;
    *t = (uint64_t)fp << 32 | now;
}

static bool ghost_take(pd_cache_store *s, uint64_t hash)
{
    struct seg *g = s->seg;
    uint32_t fp = (uint32_t)(hash >> 32) | 1u, i = (uint32_t)hash & (g->n_ghost - 1);
    uint64_t *slots[2] = { &s->ghost[i], &s->ghost[i ^ 1u] };
    for (int k = 0; k < 2; k++) {
        uint64_t e = *slots[k];
        if (e && (uint32_t)(e >> 32) == fp && g->ghost_clock - (uint32_t)e < ghost_window(g)) {
            *slots[k] = 0;
            return true;
        }
    }
    return false;
}

/* ---- the heap (GDSF, LFUDA): obj.qprev is the object's heap slot ---- */

static double heap_key(const struct seg *g, const struct obj *o)
{
    if (g->policy == PD_CACHE_POLICY_GDSF)
        return g->heap_age + (double)o->freq / (double)(obj_blocks(o) ? obj_blocks(o) : 1);
    return g->heap_age + (double)o->freq;
}

static bool heap_less(const pd_cache_store *s, uint32_t a, uint32_t b)
{
    const struct obj *x = &s->objs[a], *y = &s->objs[b];
    return x->prio < y->prio || (x->prio == y->prio && x->stamp < y->stamp);
}

static void heap_set(pd_cache_store *s, uint32_t slot, uint32_t oi)
{
    s->heap[slot] = oi;
    s->objs[oi].qprev = slot;
}

static void heap_up(pd_cache_store *s, uint32_t i)
{
    uint32_t oi = s->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(s, oi, s->heap[p]))
            break;
        heap_set(s, i, s->heap[p]);
        i = p;
    }
    heap_set(s, i, oi);
}

static void heap_down(pd_cache_store *s, uint32_t i)
{
    uint32_t n = s->seg->heap_n, oi = s->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(s, s->heap[c + 1], s->heap[c]))
            c++;
        if (!heap_less(s, s->heap[c], oi))
            break;
        heap_set(s, i, s->heap[c]);
        i = c;
    }
    heap_set(s, i, oi);
}

static void heap_push(pd_cache_store *s, struct obj *o)
{
    uint32_t i = s->seg->heap_n++;
    heap_set(s, i, (uint32_t)(o - s->objs));
    heap_up(s, i);
    o->queued = 1;
}

static void heap_remove(pd_cache_store *s, struct obj *o)
{
    uint32_t i = o->qprev, last = s->heap[--s->seg->heap_n];
    if (i != s->seg->heap_n) {
        heap_set(s, i, last);
        heap_down(s, i);
        heap_up(s, s->objs[last].qprev);
    }
    o->qprev = NIL;
    o->queued = 0;
}

/* Least key among unreferenced objects: best-first from the root, since the
 * few referenced ones (being sent right now) block only their own entry. */
static struct obj *heap_victim(pd_cache_store *s)
{
    uint32_t front[HEAP_SEARCH * 2 + 1], nf = 0, n = s->seg->heap_n;
    if (n == 0)
        return NULL;
    front[nf++] = 0;
    for (uint32_t step = 0; step < HEAP_SEARCH && nf > 0; step++) {
        uint32_t best = 0;
        for (uint32_t k = 1; k < nf; k++)
            if (heap_less(s, s->heap[front[k]], s->heap[front[best]]))
                best = k;
        uint32_t i = front[best];
        front[best] = front[--nf];
        struct obj *o = &s->objs[s->heap[i]];
        if (o->refs == 0)
            return o;
        for (uint32_t c = 2 * i + 1; c <= 2 * i + 2 && c < n; c++)
            front[nf++] = c;
    }
    return NULL;
}

/* ---- the policy interface ---- */

void pd_repl_insert(pd_cache_store *s, struct obj *o, const struct obj *old)
{
    struct seg *g = s->seg;
    if (is_heap(g)) {
        o->freq = old ? old->freq : 1;
        o->prio = heap_key(g, o);
        heap_push(s, o);
        return;
    }
    if (g->policy == PD_CACHE_POLICY_LRU) {
        q_push(s, o, Q_MAIN);
        return;
    }
    if (old) {
        o->freq = old->freq;
        q_push(s, o, old->q);
    } else if (ghost_take(s, o->hash)) {
        g->c.ghost_hits++;
        o->freq = 0;
        q_push(s, o, Q_MAIN);
    } else {
        o->freq = 0;
        q_push(s, o, Q_SMALL);
    }
}

void pd_repl_hit(pd_cache_store *s, struct obj *o)
{
    struct seg *g = s->seg;
    if (!o->queued)
        return;
    if (is_heap(g)) {
        o->freq++;
        o->stamp = ++g->clock; /* ties: the least recent goes first */
        o->prio = heap_key(g, o);
        heap_down(s, o->qprev);
        heap_up(s, o->qprev);
    } else if (g->policy == PD_CACHE_POLICY_LRU) {
        q_move_head(s, o, Q_MAIN);
    } else if (o->freq < S3_FREQ_MAX) {
        o->freq++;
    }
}

void pd_repl_remove(pd_cache_store *s, struct obj *o)
{
    if (!o->queued)
        return;
    if (is_heap(s->seg))
        heap_remove(s, o);
    else
        q_unlink(s, o);
}

/* S3-FIFO: tail of the small FIFO (promote or drop) or of the main one
 * (another round or drop), until one object can go. */
static struct obj *s3fifo_victim(pd_cache_store *s)
{
    struct seg *g = s->seg;
    struct queue *S = &g->q[Q_SMALL], *M = &g->q[Q_MAIN];
    uint64_t small_target = (uint64_t)g->n_pages * SMALL_SHARE / 100;
    /* bounds: every small object is looked at once, every main one at most
     * S3_FREQ_MAX + 1 times, before we conclude all are referenced */
    uint64_t left_s = S->count, left_m = (uint64_t)(M->count + S->count) * (S3_FREQ_MAX + 1);
    while (left_s || left_m) {
        bool small = left_s && S->count && (S->blocks > small_target || !M->count || !left_m);
        if (!small && (!left_m || !M->count))
            break;
        if (small) {
            left_s--;
            struct obj *t = &s->objs[S->tail];
            if (t->refs) {
                q_move_head(s, t, Q_SMALL);
            } else if (t->freq >= S3_PROMOTE) {
                t->freq = 0;
                q_move_head(s, t, Q_MAIN);
                g->c.promotions++;
            } else {
                ghost_put(s, t->hash);
                return t;
            }
        } else {
            left_m--;
            struct obj *t = &s->objs[M->tail];
            if (t->refs) {
                q_move_head(s, t, Q_MAIN);
            } else if (t->freq) {
                t->freq--;
                q_move_head(s, t, Q_MAIN);
            } else {
                return t;
            }
        }
    }
    return NULL;
}

struct obj *pd_repl_victim(pd_cache_store *s)
{
    struct seg *g = s->seg;
    if (is_heap(g)) {
        struct obj *o = heap_victim(s);
        if (o && o->prio > g->heap_age)
            g->heap_age = o->prio;
        return o;
    }
    if (g->policy == PD_CACHE_POLICY_LRU) {
        for (uint32_t i = g->q[Q_MAIN].tail; i != NIL; i = s->objs[i].qprev)
            if (s->objs[i].refs == 0)
                return &s->objs[i];
        return NULL;
    }
    return s3fifo_victim(s);
}

uint32_t pd_repl_count(const pd_cache_store *s)
{
    const struct seg *g = s->seg;
    return is_heap(g) ? g->heap_n : g->q[Q_MAIN].count + g->q[Q_SMALL].count;
}

static int cmp_stamp_asc(const void *a, const void *b, void *arg)
{
    const struct obj *objs = arg;
    uint64_t x = objs[*(const uint32_t *)a].stamp, y = objs[*(const uint32_t *)b].stamp;
    return x < y ? -1 : x > y ? 1 : 0;
}

void pd_repl_rebuild(pd_cache_store *s, uint32_t *scratch)
{
    struct seg *g = s->seg;
    uint32_t n = 0;
    for (uint32_t i = 0; i < g->obj_hwm; i++) {
        struct obj *o = &s->objs[i];
        o->queued = 0;
        o->qprev = o->qnext = NIL;
        if (o->indexed && atomic_load(&o->state) == O_COMPLETE)
            scratch[n++] = i;
    }
    for (int k = 0; k < Q_COUNT; k++) {
        g->q[k].head = g->q[k].tail = NIL;
        g->q[k].count = 0;
        g->q[k].blocks = 0;
    }
    g->heap_n = 0;
    /* oldest first, each linked at the head: the newest ends at the head */
    qsort_r(scratch, n, sizeof(uint32_t), cmp_stamp_asc, s->objs);
    for (uint32_t k = 0; k < n; k++) {
        struct obj *o = &s->objs[scratch[k]];
        if (is_heap(g)) {
            heap_push(s, o);
        } else {
            if (o->q >= Q_COUNT || g->policy == PD_CACHE_POLICY_LRU)
                o->q = Q_MAIN;
            q_link_head(s, o);
        }
    }
}

#define RFAIL(...)                                   \
    do {                                            \
        if (errlen)                                 \
            snprintf(err, errlen, __VA_ARGS__);     \
        return -1;                                  \
    } while (0)

int pd_repl_check(pd_cache_store *s, char *err, size_t errlen)
{
    struct seg *g = s->seg;
    if (is_heap(g)) {
        for (uint32_t i = 0; i < g->heap_n; i++) {
            const struct obj *o = &s->objs[s->heap[i]];
            if (o->qprev != i || !o->queued)
                RFAIL("heap slot %u: object %u says slot %u", i, s->heap[i], o->qprev);
            if (i > 0 && heap_less(s, s->heap[i], s->heap[(i - 1) / 2]))
                RFAIL("heap order broken at slot %u", i);
        }
        if (g->q[Q_MAIN].count || g->q[Q_SMALL].count)
            RFAIL("queues used by a heap policy");
        return 0;
    }
    if (g->heap_n)
        RFAIL("heap used by a queue policy");
    for (int k = 0; k < Q_COUNT; k++) {
        const struct queue *q = &g->q[k];
        uint32_t n = 0, prev = NIL;
        uint64_t blocks = 0, prev_stamp = UINT64_MAX;
        for (uint32_t i = q->head; i != NIL; prev = i, i = s->objs[i].qnext) {
            const struct obj *o = &s->objs[i];
            if (++n > g->obj_hwm || !o->queued || o->q != k || o->qprev != prev || o->stamp > prev_stamp)
                RFAIL("queue %d broken at %u", k, i);
            if (g->policy == PD_CACHE_POLICY_S3FIFO ? o->freq > S3_FREQ_MAX : k != Q_MAIN)
                RFAIL("object %u: queue %d, freq %u under %s", i, k, o->freq,
                     pd_cache_policy_name((enum pd_cache_policy)g->policy));
            prev_stamp = o->stamp;
            blocks += obj_blocks(o);
        }
        if (prev != q->tail || n != q->count || blocks != q->blocks)
            RFAIL("queue %d: tail/count/blocks wrong (%u objects walked, %u counted)", k, n, q->count);
    }
    return 0;
}
