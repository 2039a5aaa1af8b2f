/*
 * cache_store_int.h: the shared segment's records, for cache_store.c (objects,
 * blocks, handles, crash recovery) and cache_repl.c (the replacement
 * policies). Nothing outside those two files (and their unit tests) includes it.
 */
#ifndef PROXYD_CACHE_STORE_INT_H
#define PROXYD_CACHE_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "proxyd/cache_store.h"

#define BS PD_CACHE_BLOCK_SIZE
#define HPS PD_CACHE_HANDLES_PER_SLOT
#define NIL UINT32_MAX

#define barrier() atomic_signal_fence(memory_order_seq_cst)

enum { O_FREE = 0, O_WRITING, O_COMPLETE, O_ABORTED };
enum { H_FREE = 0, H_READER, H_WRITER };

/* Replacement queues. An object's queue (obj.q) is ground truth (which queue it
 * belongs to); the links and the per-queue totals are derived. */
enum { Q_MAIN = 0, Q_SMALL = 1, Q_COUNT = 2 };

struct obj {
    uint64_t hash;
    uint64_t stamp;             /* order inside its queue: higher is newer */
    double prio;                /* heap policies: the eviction key (lowest goes) */
    _Atomic uint64_t body_len;  /* published body bytes */
    _Atomic uint64_t waiters;   /* slots to signal on progress */
    _Atomic uint32_t state;
    _Atomic uint32_t progress;  /* bumped on every visible change */
    _Atomic uint32_t meta_ready;
    uint32_t key_len, meta_len;
    uint32_t first_page, last_page, npages;   /* block chain */
    uint32_t hnext;             /* hash chain, or free-object list */
    uint32_t qprev, qnext;      /* queue links; heap policies: qprev is the heap slot */
    uint32_t refs;              /* handles pointing here (derived) */
    uint32_t freq;              /* hits since inserted (S3-FIFO: 0..3) */
    uint8_t indexed;            /* reachable by key */
    uint8_t queued;             /* linked in its queue or heap (derived) */
    uint8_t q;                  /* Q_MAIN or Q_SMALL */
    _Atomic uint8_t lent;       /* a reader gave pages of it to a socket by reference:
                                 * punch them out of the file before reuse */
};

/* A handle record: the caller's pd_cache_ref / pd_cache_writer points here. */
struct pd_cache_ref {
    uint32_t obj;
    uint32_t kind;
    uint32_t next_free;
    uint32_t pad;
};

struct pd_cache_writer {
    struct pd_cache_ref h;
};

struct counters {
    uint64_t hits, misses, pending_hits, busy;
    uint64_t commits, aborts, oversize, nospace, evictions, invalidations;
    uint64_t recoveries, reaped_handles;
    uint64_t promotions, ghost_hits;
    uint64_t punches, punch_failures;
};

struct queue {
    uint32_t head, tail;        /* head: newest */
    uint32_t count;
    uint64_t blocks;
};

struct seg {
    uint64_t magic;
    pthread_mutex_t lock;
    uint64_t max_object, overhead;
    uint32_t n_pages, n_objs, n_buckets, n_slots, n_ghost;
    uint32_t policy;
    uint64_t off_seg, off_objs, off_buckets, off_pnext, off_freemap, off_handles, off_slotfree;
    uint64_t off_ghost, off_heap, off_scratch;
    /* ground truth: objects at or above obj_hwm were never used (all zero) */
    uint32_t obj_hwm;
    /* derived */
    uint32_t pages_free, cursor;
    uint32_t free_obj_head;
    uint64_t clock;
    struct queue q[Q_COUNT];
    uint32_t heap_n;
    double heap_age;            /* GDSF/LFUDA: the key of the last object evicted */
    uint32_t ghost_clock;
    int fds[PD_CACHE_MAX_WORKERS];
    _Atomic uint32_t no_lend;   /* a punch failed: readers stop lending pages */
    struct counters c;
};

struct pd_cache_store {
    uint8_t *base;
    size_t map_len;
    int fd;                     /* the memfd behind base (shared by fork), or -1: anonymous */
    size_t pagesz;
    struct seg *seg;
    struct obj *objs;
    uint32_t *buckets;
    uint32_t *pnext;
    uint64_t *freemap;          /* bit set: block free */
    struct pd_cache_ref *handles;
    uint32_t *slotfree;         /* per slot: head of its free-handle list */
    uint64_t *ghost;            /* S3-FIFO ghost entries: fingerprint << 32 | epoch */
    uint32_t *heap;             /* GDSF/LFUDA: object indices, a binary min-heap */
    uint32_t *scratch;          /* n_pages + n_objs words */
    int slot;
    /* test hook: called at named points inside operations (NULL normally) */
    void (*hook)(const char *where);
};

/* ---- the replacement policy (cache_repl.c); all under the store lock ---- */

/* o (complete, indexed) becomes evictable; old is the version it replaces
 * (already unindexed) or NULL: a replacement keeps its standing. */
void pd_repl_insert(pd_cache_store *s, struct obj *o, const struct obj *old);
/* A hit on o (complete, indexed). */
void pd_repl_hit(pd_cache_store *s, struct obj *o);
/* o leaves the index. */
void pd_repl_remove(pd_cache_store *s, struct obj *o);
/* Choose an unreferenced object to evict (still indexed: the caller unindexes
 * and frees it), or NULL if every candidate is referenced. */
struct obj *pd_repl_victim(pd_cache_store *s);
/* Recovery: relink every indexed complete object (order from obj.stamp / prio). */
void pd_repl_rebuild(pd_cache_store *s, uint32_t *scratch);
/* Consistency of the policy's structures: 0, or -1 with a reason. */
int pd_repl_check(pd_cache_store *s, char *err, size_t errlen);
/* Number of evictable objects it tracks (for check). */
uint32_t pd_repl_count(const pd_cache_store *s);

static inline uint64_t obj_blocks(const struct obj *o)
{
    return o->npages;
}

#endif
