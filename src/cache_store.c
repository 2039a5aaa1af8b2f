/*
 * cache_store: the shared-memory object store (see cache_store.h for the
 * model and the integration protocol; cache_repl.c holds the replacement
 * policies, cache_store_int.h the records both see).
 *
 * Segment layout (one MAP_SHARED mapping of a memfd, or anonymous memory where
 * memfd_create fails; offsets only inside):
 *   [data blocks: n_pages * BS][struct seg][objs][buckets][block links]
 *   [free map][handles: slots * HANDLES_PER_SLOT][slot free lists]
 *   [ghost][heap][scratch for recovery and check]
 *
 * Crash safety. A few fields are the ground truth, written in an order such
 * that every prefix of an operation is meaningful:
 *   seg.obj_hwm, obj.state, obj.first_page, block links of object chains,
 *   obj.indexed, obj.stamp, obj.q, obj.prio, obj key/meta/body lengths,
 *   handle.kind + handle.obj.
 * Everything else (free map, free object list, hash chains, the policy's
 * queues or heap, refcounts, last_page, npages) is derived and rebuilt by
 * recover() when a locker gets EOWNERDEAD. barrier() keeps the compiler from
 * reordering the ground-truth stores: a SIGKILL stops the process between two
 * instructions, and stores already executed are in the shared memory.
 *
 * One lock, not stripes: eviction walks one policy and allocates from one
 * free map, so stripes would all meet there anyway. What keeps the sections
 * short instead: hashing outside, body bytes copied outside (one lock round
 * per append, at most 128 KB of blocks linked per round), readers iterating
 * and copying meta without it, progress and wakeups through atomics. Only
 * stats/check/recovery scan.
 */
#include "proxyd/cache_store.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cache_store_int.h"

#define SEG_MAGIC 0x70644341434846ull /* "pdCACHF": the block layout */
#define ALLOC_ROUND 256u             /* blocks linked per lock round */

static void hook(pd_cache_store *s, const char *where)
{
    if (s->hook)
        s->hook(where);
}

static uint8_t *page_data(pd_cache_store *s, uint32_t p)
{
    return s->base + (size_t)p * BS;
}

/* ---- the free map: bit set = block free (derived) ---- */

static bool block_is_free(const pd_cache_store *s, uint32_t b)
{
    return (s->freemap[b >> 6] >> (b & 63)) & 1;
}

static void block_set_free(pd_cache_store *s, uint32_t b)
{
    s->freemap[b >> 6] |= 1ull << (b & 63);
}

static void block_set_used(pd_cache_store *s, uint32_t b)
{
    s->freemap[b >> 6] &= ~(1ull << (b & 63));
}

/* The first free block at or after from (wrapping), or NIL. */
static uint32_t block_find_free(const pd_cache_store *s, uint32_t from)
{
    uint32_t n = s->seg->n_pages, words = (n + 63) / 64;
    if (from >= n)
        from = 0;
    uint32_t w = from >> 6;
    uint64_t bits = s->freemap[w] & (~0ull << (from & 63));
    for (uint32_t k = 0; k <= words; k++) {
        if (bits) {
            uint32_t b = (w << 6) + (uint32_t)__builtin_ctzll(bits);
            return b < n ? b : NIL;
        }
        w = w + 1 == words ? 0 : w + 1;
        bits = s->freemap[w];
    }
    return NIL;
}

uint64_t pd_cache_store_hash(const void *key, size_t klen)
{
    const uint8_t *k = key;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < klen; i++) {
        h ^= k[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static void recover(pd_cache_store *s);
static size_t align_up(size_t v, size_t a);

static void lock(pd_cache_store *s)
{
    int rc = pthread_mutex_lock(&s->seg->lock);
    if (rc == EOWNERDEAD) {
        recover(s);
        pthread_mutex_consistent(&s->seg->lock);
    } else if (rc != 0) {
        /* ENOTRECOVERABLE cannot happen: we always make it consistent */
        abort();
    }
}

static void unlock(pd_cache_store *s)
{
    pthread_mutex_unlock(&s->seg->lock);
}

static void notify(pd_cache_store *s, uint64_t mask)
{
    for (uint32_t i = 0; mask && i < s->seg->n_slots; i++) {
        if (mask & (1ull << i)) {
            uint64_t one = 1;
            /* EAGAIN only when the counter saturates: already readable */
            ssize_t r = write(s->seg->fds[i], &one, sizeof(one));
            (void)r;
            mask &= ~(1ull << i);
        }
    }
}

/* Progress on o: bump its sequence and take the waiters to signal. */
static uint64_t progress(struct obj *o)
{
    atomic_fetch_add(&o->progress, 1);
    return atomic_exchange(&o->waiters, 0);
}

/* ---- derived structures (all under the lock) ---- */

/* A bucket holds the complement of its first object's index, so that the
 * zero pages of a fresh mapping read as empty (NIL) without being touched. */
static uint32_t bucket_head(const pd_cache_store *s, uint64_t hash)
{
    return ~s->buckets[hash & (s->seg->n_buckets - 1)];
}

static void hash_insert(pd_cache_store *s, struct obj *o)
{
    uint32_t *b = &s->buckets[o->hash & (s->seg->n_buckets - 1)];
    o->hnext = ~*b;
    *b = ~(uint32_t)(o - s->objs);
}

static void hash_remove(pd_cache_store *s, struct obj *o)
{
    uint32_t i = (uint32_t)(o - s->objs);
    uint32_t *b = &s->buckets[o->hash & (s->seg->n_buckets - 1)];
    if (~*b == i) {
        *b = ~o->hnext;
        o->hnext = NIL;
        return;
    }
    for (uint32_t j = ~*b; j != NIL; j = s->objs[j].hnext) {
        if (s->objs[j].hnext == i) {
            s->objs[j].hnext = o->hnext;
            o->hnext = NIL;
            return;
        }
    }
}

/* Take o out of the index (and the policy). It is freed once unreferenced. */
static void unindex(pd_cache_store *s, struct obj *o)
{
    if (!o->indexed)
        return;
    o->indexed = 0;
    barrier();
    hook(s, "unindex");
    hash_remove(s, o);
    pd_repl_remove(s, o);
}

/*
 * Lent pages. A reader may hand whole memory pages of a body to a socket by
 * reference (sendfile from the memfd): the kernel then sends from those pages
 * after the reader let go, while the blocks are free and maybe written by the
 * next object. So before blocks of a lent object become free, the pages wholly
 * inside them are punched out of the file: the socket keeps the old page, the
 * next writer faults in a new one. Pages shared with a neighbour's blocks are
 * never lent (readers lend only pages wholly inside one extent).
 */
static void punch(pd_cache_store *s, size_t from, size_t to)
{
    size_t a = align_up(from, s->pagesz), b = to / s->pagesz * s->pagesz;
    if (s->fd < 0 || b <= a)
        return;
    if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a, (off_t)(b - a)) == 0) {
        s->seg->c.punches++;
    } else {
        s->seg->c.punch_failures++;
        atomic_store(&s->seg->no_lend, 1);
    }
}

/* Punch every run of memory-adjacent blocks of o's chain. */
static void punch_chain(pd_cache_store *s, uint32_t first)
{
    uint32_t start = first, prev = first;
    for (uint32_t p = first; p != NIL; p = s->pnext[p]) {
        if (p != start && p != prev + 1) {
            punch(s, (size_t)start * BS, ((size_t)prev + 1) * BS);
            start = p;
        }
        prev = p;
    }
    if (first != NIL)
        punch(s, (size_t)start * BS, ((size_t)prev + 1) * BS);
}

static void obj_free(pd_cache_store *s, struct obj *o)
{
    struct seg *g = s->seg;
    uint32_t p = o->first_page;
    atomic_store(&o->state, O_FREE);
    barrier();
    if (atomic_exchange(&o->lent, 0))
        punch_chain(s, p);
    if (p != NIL)
        g->cursor = p; /* the next writer takes this run in order */
    while (p != NIL) {
        uint32_t n = s->pnext[p];
        s->pnext[p] = NIL;
        block_set_free(s, p);
        g->pages_free++;
        p = n;
        hook(s, "free:page");
    }
    o->first_page = o->last_page = NIL;
    o->npages = 0;
    o->hnext = g->free_obj_head;
    g->free_obj_head = (uint32_t)(o - s->objs);
}

static void maybe_free(pd_cache_store *s, struct obj *o)
{
    if (o->refs == 0 && !o->indexed && atomic_load(&o->state) != O_FREE)
        obj_free(s, o);
}

/* Free the object the policy picks. 0: nothing can go (all referenced). */
static int evict_one(pd_cache_store *s)
{
    struct obj *o = pd_repl_victim(s);
    if (!o)
        return 0;
    hook(s, "evict");
    unindex(s, o);
    obj_free(s, o);
    s->seg->c.evictions++;
    return 1;
}

/* A free block, prefer if it is free (a writer's next adjacent block), else
 * the next free one after the cursor; evicts when none is free. NIL: none. */
static uint32_t page_alloc(pd_cache_store *s, uint32_t prefer)
{
    struct seg *g = s->seg;
    uint32_t p;
    if (prefer < g->n_pages && block_is_free(s, prefer)) {
        p = prefer;
    } else {
        while (g->pages_free == 0)
            if (!evict_one(s))
                return NIL;
        p = block_find_free(s, g->cursor);
        if (p == NIL)
            return NIL; /* pages_free disagrees with the map: cannot happen */
    }
    block_set_used(s, p);
    g->pages_free--;
    g->cursor = p + 1;
    s->pnext[p] = NIL;
    barrier();
    return p;
}

/* A free object record: the free list, then never-used records, then
 * eviction. NULL: none. */
static struct obj *obj_alloc(pd_cache_store *s)
{
    struct seg *g = s->seg;
    for (;;) {
        if (g->free_obj_head != NIL) {
            struct obj *o = &s->objs[g->free_obj_head];
            g->free_obj_head = o->hnext;
            return o;
        }
        if (g->obj_hwm < g->n_objs) {
            struct obj *o = &s->objs[g->obj_hwm];
            o->first_page = o->last_page = NIL;
            o->qprev = o->qnext = NIL;
            barrier();
            g->obj_hwm++;
            return o;
        }
        if (!evict_one(s))
            return NULL;
    }
}

static struct pd_cache_ref *handle_alloc(pd_cache_store *s, uint32_t obj)
{
    uint32_t head = s->slotfree[s->slot];
    if (head == NIL)
        return NULL;
    struct pd_cache_ref *h = &s->handles[(size_t)s->slot * HPS + head];
    s->slotfree[s->slot] = h->next_free;
    h->obj = obj;
    barrier();
    return h;
}

/* Mark h free (ground truth first), then fix the derived counts. */
static void handle_free(pd_cache_store *s, struct pd_cache_ref *h)
{
    size_t idx = (size_t)(h - s->handles);
    uint32_t slot = (uint32_t)(idx / HPS);
    struct obj *o = &s->objs[h->obj];
    h->kind = H_FREE;
    barrier();
    hook(s, "handle:free");
    h->next_free = s->slotfree[slot];
    s->slotfree[slot] = (uint32_t)(idx % HPS);
    o->refs--;
    maybe_free(s, o);
}

/* Compare len bytes of o's stream from position 0 (the key) with data. */
static int stream_eq(pd_cache_store *s, const struct obj *o, const uint8_t *data, size_t len)
{
    uint32_t p = o->first_page;
    for (size_t done = 0; done < len; p = s->pnext[p]) {
        if (p == NIL)
            return 0;
        size_t k = len - done < BS ? len - done : BS;
        if (memcmp(page_data(s, p), data + done, k) != 0)
            return 0;
        done += k;
    }
    return 1;
}

/* Copy len bytes of o's stream from position pos into buf. */
static void stream_read(pd_cache_store *s, const struct obj *o, uint64_t pos, void *buf, size_t len)
{
    uint32_t p = o->first_page;
    for (uint64_t i = 0; i < pos / BS; i++)
        p = s->pnext[p];
    size_t done = 0;
    while (done < len) {
        size_t in = (size_t)((pos + done) % BS);
        if (in == 0 && done > 0)
            p = s->pnext[p];
        size_t k = BS - in < len - done ? BS - in : len - done;
        memcpy((uint8_t *)buf + done, page_data(s, p) + in, k);
        done += k;
    }
}

/* Do a and b have the same key? (hashes compared by the caller) */
static int same_key(pd_cache_store *s, const struct obj *a, const struct obj *b)
{
    if (a->key_len != b->key_len)
        return 0;
    uint32_t p = a->first_page, q = b->first_page;
    for (size_t done = 0; done < a->key_len; p = s->pnext[p], q = s->pnext[q]) {
        if (p == NIL || q == NIL)
            return 0;
        size_t k = a->key_len - done < BS ? a->key_len - done : BS;
        if (memcmp(page_data(s, p), page_data(s, q), k) != 0)
            return 0;
        done += k;
    }
    return 1;
}

static int key_eq(pd_cache_store *s, struct obj *o, uint64_t hash, const void *key, size_t klen)
{
    return o->hash == hash && o->key_len == klen && stream_eq(s, o, key, klen);
}

/* Indexed object of key in the given state, or NULL. */
static struct obj *find(pd_cache_store *s, uint64_t hash, const void *key, size_t klen, uint32_t state)
{
    for (uint32_t i = bucket_head(s, hash); i != NIL; i = s->objs[i].hnext) {
        struct obj *o = &s->objs[i];
        if (o->indexed && atomic_load(&o->state) == state && key_eq(s, o, hash, key, klen))
            return o;
    }
    return NULL;
}

/* The indexed object in state st with the same key as o (other than o), or NULL. */
static struct obj *find_same(pd_cache_store *s, const struct obj *o, uint32_t st)
{
    for (uint32_t i = bucket_head(s, o->hash); i != NIL; i = s->objs[i].hnext) {
        struct obj *x = &s->objs[i];
        if (x != o && x->indexed && x->hash == o->hash && atomic_load(&x->state) == st &&
            same_key(s, x, o))
            return x;
    }
    return NULL;
}

/* Writer-side abort of o (the writer handle stays until released). Returns
 * the waiters to notify; call under the lock. */
static uint64_t abort_locked(pd_cache_store *s, struct obj *o)
{
    if (atomic_load(&o->state) != O_WRITING)
        return 0;
    unindex(s, o);
    atomic_store(&o->state, O_ABORTED);
    s->seg->c.aborts++;
    return progress(o);
}

/* ---- create / destroy ---- */

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

static const char *const policy_names[PD_CACHE_POLICY_COUNT] = {
    [PD_CACHE_POLICY_S3FIFO] = "s3fifo",
    [PD_CACHE_POLICY_LRU] = "lru",
    [PD_CACHE_POLICY_GDSF] = "heap GDSF",
    [PD_CACHE_POLICY_LFUDA] = "heap LFUDA",
};

const char *pd_cache_policy_name(enum pd_cache_policy p)
{
    return (unsigned)p < PD_CACHE_POLICY_COUNT ? policy_names[p] : "?";
}

int pd_cache_policy_parse(const char *name, enum pd_cache_policy *p)
{
    for (int i = 0; i < PD_CACHE_POLICY_COUNT; i++)
        if (strcasecmp(name, policy_names[i]) == 0) {
            *p = (enum pd_cache_policy)i;
            return 0;
        }
    if (strcasecmp(name, "heap LRU") == 0) { /* Squid's heap LRU orders as lru does */
        *p = PD_CACHE_POLICY_LRU;
        return 0;
    }
    return -1;
}

pd_cache_store *pd_cache_store_create(uint64_t cache_mem, uint64_t max_object, int max_workers,
                                      enum pd_cache_policy policy)
{
    if (max_workers < 1 || max_workers > PD_CACHE_MAX_WORKERS || cache_mem < 64 * 1024 ||
        cache_mem / BS >= NIL / 2 || max_object == 0 || max_object > cache_mem ||
        (unsigned)policy >= PD_CACHE_POLICY_COUNT) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t n_pages = (uint32_t)(cache_mem / BS);
    uint32_t n_objs = n_pages / 2; /* one record per KB of cache_mem */
    uint32_t n_buckets = 1;
    while (n_buckets < n_objs)
        n_buckets <<= 1;
    uint32_t n_ghost = n_buckets; /* a power of two, >= the objects main can hold */
    uint32_t words = (n_pages + 63) / 64;
    size_t off = (size_t)n_pages * BS;
    size_t off_seg = off;
    off = align_up(off + sizeof(struct seg), 64);
    size_t off_objs = off;
    off = align_up(off + (size_t)n_objs * sizeof(struct obj), 64);
    size_t off_buckets = off;
    off = align_up(off + (size_t)n_buckets * 4, 64);
    size_t off_pnext = off;
    off = align_up(off + (size_t)n_pages * 4, 64);
    size_t off_freemap = off;
    off = align_up(off + (size_t)words * 8, 64);
    size_t off_handles = off;
    off = align_up(off + (size_t)max_workers * HPS * sizeof(struct pd_cache_ref), 64);
    size_t off_slotfree = off;
    off = align_up(off + (size_t)max_workers * 4, 64);
    size_t off_ghost = off;
    off = align_up(off + (size_t)n_ghost * 8, 64);
    size_t off_heap = off;
    off = align_up(off + (size_t)n_objs * 4, 64);
    size_t off_scratch = off;
    off += ((size_t)n_pages + n_objs) * 4;
    size_t map_len = align_up(off, (size_t)sysconf(_SC_PAGESIZE));

    pd_cache_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    /* a memfd, so that hits can be sent from it by reference (sendfile) */
    void *base = MAP_FAILED;
    int fd = memfd_create("proxyd-cache", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)map_len) == 0)
        base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        if (fd >= 0)
            close(fd);
        fd = -1;
        base = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    }
    if (base == MAP_FAILED) {
        free(s);
        return NULL;
    }
    /* a punch inside a huge page would zero in place what a socket still sends */
    if (fd >= 0 && madvise(base, map_len, MADV_NOHUGEPAGE) < 0) {
        close(fd);
        fd = -1;
    }
    s->base = base;
    s->map_len = map_len;
    s->fd = fd;
    s->pagesz = (size_t)sysconf(_SC_PAGESIZE);
    s->seg = (struct seg *)(s->base + off_seg);
    s->objs = (struct obj *)(s->base + off_objs);
    s->buckets = (uint32_t *)(s->base + off_buckets);
    s->pnext = (uint32_t *)(s->base + off_pnext);
    s->freemap = (uint64_t *)(s->base + off_freemap);
    s->handles = (struct pd_cache_ref *)(s->base + off_handles);
    s->slotfree = (uint32_t *)(s->base + off_slotfree);
    s->ghost = (uint64_t *)(s->base + off_ghost);
    s->heap = (uint32_t *)(s->base + off_heap);
    s->scratch = (uint32_t *)(s->base + off_scratch);
    s->slot = 0;

    struct seg *g = s->seg;
    g->max_object = max_object;
    g->overhead = map_len - (size_t)n_pages * BS;
    g->n_pages = n_pages;
    g->n_objs = n_objs;
    g->n_buckets = n_buckets;
    g->n_ghost = n_ghost;
    g->n_slots = (uint32_t)max_workers;
    g->policy = (uint32_t)policy;
    g->off_seg = off_seg;
    g->off_objs = off_objs;
    g->off_buckets = off_buckets;
    g->off_pnext = off_pnext;
    g->off_freemap = off_freemap;
    g->off_handles = off_handles;
    g->off_slotfree = off_slotfree;
    g->off_ghost = off_ghost;
    g->off_heap = off_heap;
    g->off_scratch = off_scratch;
    for (int i = 0; i < PD_CACHE_MAX_WORKERS; i++)
        g->fds[i] = -1;

    pthread_mutexattr_t ma;
    int ok = pthread_mutexattr_init(&ma) == 0 &&
             pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) == 0 &&
             pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(&g->lock, &ma) == 0;
    pthread_mutexattr_destroy(&ma);
    for (int i = 0; ok && i < max_workers; i++) {
        g->fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (g->fds[i] < 0)
            ok = 0;
    }
    if (!ok) {
        int e = errno ? errno : ENOMEM;
        pd_cache_store_destroy(s);
        errno = e;
        return NULL;
    }

    /* every block free (a free block's link is unused: set when allocated);
     * object records start at obj_hwm 0; buckets empty (zero pages) */
    memset(s->freemap, 0xff, (size_t)words * 8);
    if (n_pages % 64)
        s->freemap[words - 1] = (1ull << (n_pages % 64)) - 1;
    g->pages_free = n_pages;
    g->cursor = 0;
    g->free_obj_head = NIL;
    g->obj_hwm = 0;
    for (int sl = 0; sl < max_workers; sl++) {
        for (uint32_t i = 0; i < HPS; i++)
            s->handles[(size_t)sl * HPS + i].next_free = i + 1 < HPS ? i + 1 : NIL;
        s->slotfree[sl] = 0;
    }
    for (int i = 0; i < Q_COUNT; i++)
        g->q[i].head = g->q[i].tail = NIL;
    g->magic = SEG_MAGIC;
    return s;
}

void pd_cache_store_destroy(pd_cache_store *s)
{
    if (!s)
        return;
    if (s->seg) {
        for (uint32_t i = 0; i < PD_CACHE_MAX_WORKERS; i++)
            if (s->seg->fds[i] >= 0)
                close(s->seg->fds[i]);
    }
    munmap(s->base, s->map_len);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
}

int pd_cache_store_attach(pd_cache_store *s, int slot)
{
    if (slot < 0 || (uint32_t)slot >= s->seg->n_slots) {
        errno = EINVAL;
        return -1;
    }
    s->slot = slot;
    return 0;
}

int pd_cache_store_notify_fd(const pd_cache_store *s, int slot)
{
    if (slot < 0 || (uint32_t)slot >= s->seg->n_slots)
        return -1;
    return s->seg->fds[slot];
}

/* ---- readers ---- */

static struct obj *ref_obj(pd_cache_store *s, const pd_cache_ref *ref)
{
    return &s->objs[ref->obj];
}

int pd_cache_store_lookup(pd_cache_store *s, const void *key, size_t klen, pd_cache_ref **ref)
{
    *ref = NULL;
    if (klen == 0 || klen > PD_CACHE_MAX_KEY) {
        errno = EINVAL;
        return PD_CACHE_ERROR;
    }
    uint64_t h = pd_cache_store_hash(key, klen);
    int rc = PD_CACHE_MISS;
    lock(s);
    struct obj *o = find(s, h, key, klen, O_COMPLETE);
    if (o)
        rc = PD_CACHE_HIT;
    else if ((o = find(s, h, key, klen, O_WRITING)) != NULL)
        rc = PD_CACHE_PENDING;
    if (o) {
        struct pd_cache_ref *hd = handle_alloc(s, (uint32_t)(o - s->objs));
        if (!hd) {
            unlock(s);
            errno = EMFILE;
            return PD_CACHE_ERROR;
        }
        hook(s, "lookup:handle");
        hd->kind = H_READER;
        o->refs++;
        if (rc == PD_CACHE_HIT) {
            pd_repl_hit(s, o);
            s->seg->c.hits++;
        } else {
            s->seg->c.pending_hits++;
        }
        *ref = hd;
    } else {
        s->seg->c.misses++;
    }
    unlock(s);
    return rc;
}

void pd_cache_store_release(pd_cache_store *s, pd_cache_ref *ref)
{
    if (!ref)
        return;
    lock(s);
    hook(s, "release");
    handle_free(s, ref);
    unlock(s);
}

ssize_t pd_cache_store_meta(pd_cache_store *s, pd_cache_ref *ref, void *buf, size_t cap)
{
    struct obj *o = ref_obj(s, ref);
    if (atomic_load(&o->state) == O_ABORTED) {
        errno = EIO;
        return -1;
    }
    if (!atomic_load(&o->meta_ready)) {
        errno = EAGAIN;
        return -1;
    }
    size_t len = o->meta_len, n = len < cap ? len : cap;
    stream_read(s, o, o->key_len, buf, n);
    return (ssize_t)len;
}

uint64_t pd_cache_store_max_object(const pd_cache_store *s)
{
    return s->seg->max_object; /* set at create, never written again: no lock */
}

uint64_t pd_cache_store_body_len(pd_cache_store *s, pd_cache_ref *ref, int *state)
{
    struct obj *o = ref_obj(s, ref);
    uint64_t len = atomic_load(&o->body_len);
    if (state) {
        uint32_t st = atomic_load(&o->state);
        *state = st == O_COMPLETE ? 1 : st == O_WRITING ? 0 : -1;
    }
    return len;
}

void pd_cache_store_iter_init(pd_cache_store *s, pd_cache_ref *ref, pd_cache_iter *it,
                              uint64_t start, uint64_t limit)
{
    struct obj *o = ref_obj(s, ref);
    it->seq = atomic_load(&o->progress);
    it->off = start;
    it->page = NIL;
    it->limit = limit;
}

int pd_cache_store_iter_next(pd_cache_store *s, pd_cache_ref *ref, pd_cache_iter *it,
                             const void **p, size_t *len)
{
    struct obj *o = ref_obj(s, ref);
    /* the sequence first: any change after this load makes wait() return 1 */
    it->seq = atomic_load(&o->progress);
    uint32_t st = atomic_load(&o->state);
    uint64_t bl = atomic_load(&o->body_len);
    if (st == O_ABORTED)
        return PD_CACHE_ITER_ERROR;
    if (it->off >= it->limit)
        return PD_CACHE_ITER_END;
    if (it->off >= bl)
        return st == O_COMPLETE ? PD_CACHE_ITER_END : PD_CACHE_ITER_AGAIN;
    uint64_t end = bl < it->limit ? bl : it->limit;
    uint64_t pos = (uint64_t)o->key_len + o->meta_len + it->off;
    uint32_t pg = it->page;
    if (pg == NIL) {
        pg = o->first_page;
        for (uint64_t i = 0; i < pos / BS; i++)
            pg = s->pnext[pg];
    } else if (pos % BS == 0) {
        pg = s->pnext[pg];
    }
    size_t in = (size_t)(pos % BS);
    uint64_t n = BS - in;
    uint32_t first = pg;
    /* one extent over adjacent blocks: linked before their bytes were
     * published, so the links up to end are stable */
    while (n < end - it->off && n + BS <= PD_CACHE_MAX_EXTENT && s->pnext[pg] == pg + 1) {
        pg++;
        n += BS;
    }
    if (n > end - it->off)
        n = end - it->off;
    *p = page_data(s, first) + in;
    *len = (size_t)n;
    it->off += n;
    it->page = pg;
    return PD_CACHE_ITER_DATA;
}

int pd_cache_store_file(const pd_cache_store *s, const void *p, int64_t *off)
{
    if (s->fd < 0 || atomic_load(&s->seg->no_lend))
        return -1;
    *off = (int64_t)((const uint8_t *)p - s->base);
    return s->fd;
}

int pd_cache_store_memfd(const pd_cache_store *s)
{
    return s->fd;
}

size_t pd_cache_store_page_size(const pd_cache_store *s)
{
    return s->pagesz;
}

void pd_cache_store_lend(pd_cache_store *s, pd_cache_ref *ref)
{
    struct obj *o = ref_obj(s, ref);
    if (!atomic_load_explicit(&o->lent, memory_order_relaxed))
        atomic_store(&o->lent, 1);
}

int pd_cache_store_wait(pd_cache_store *s, pd_cache_ref *ref, const pd_cache_iter *it)
{
    struct obj *o = ref_obj(s, ref);
    atomic_fetch_or(&o->waiters, 1ull << s->slot);
    return atomic_load(&o->progress) != it->seq;
}

/* ---- writers ---- */

int pd_cache_store_begin_write(pd_cache_store *s, const void *key, size_t klen,
                               pd_cache_writer **w, pd_cache_ref **pending)
{
    *w = NULL;
    if (pending)
        *pending = NULL;
    if (klen == 0 || klen > PD_CACHE_MAX_KEY) {
        errno = EINVAL;
        return PD_CACHE_ERROR;
    }
    uint64_t h = pd_cache_store_hash(key, klen);
    lock(s);
    struct obj *busy = find(s, h, key, klen, O_WRITING);
    if (busy) {
        s->seg->c.busy++;
        if (pending) {
            struct pd_cache_ref *hd = handle_alloc(s, (uint32_t)(busy - s->objs));
            if (hd) {
                hd->kind = H_READER;
                busy->refs++;
                s->seg->c.pending_hits++;
                *pending = hd;
            }
        }
        unlock(s);
        return PD_CACHE_BUSY;
    }
    if (s->slotfree[s->slot] == NIL) {
        unlock(s);
        errno = EMFILE;
        return PD_CACHE_ERROR;
    }
    /* the record and the key's blocks, built while the record is still
     * O_FREE: a crash before the state store leaves nothing to repair */
    struct obj *o = obj_alloc(s);
    uint32_t nkey = (uint32_t)((klen + BS - 1) / BS), got = 0;
    if (o) {
        o->first_page = o->last_page = NIL;
        o->npages = 0;
        for (; got < nkey; got++) {
            uint32_t pg = page_alloc(s, o->last_page == NIL ? NIL : o->last_page + 1);
            if (pg == NIL)
                break;
            if (o->last_page == NIL)
                o->first_page = pg;
            else
                s->pnext[o->last_page] = pg;
            o->last_page = pg;
            o->npages++;
        }
    }
    if (!o || got < nkey) {
        if (o) {
            o->hnext = NIL;
            obj_free(s, o); /* state is O_FREE already: blocks and record back */
        }
        s->seg->c.nospace++;
        unlock(s);
        errno = ENOSPC;
        return PD_CACHE_ERROR;
    }
    uint32_t oi = (uint32_t)(o - s->objs);
    o->hash = h;
    o->stamp = ++s->seg->clock;
    o->prio = 0;
    o->freq = 0;
    o->q = Q_SMALL;
    atomic_store(&o->body_len, 0);
    atomic_store(&o->waiters, 0);
    atomic_store(&o->meta_ready, 0);
    o->key_len = (uint32_t)klen;
    o->meta_len = 0;
    o->refs = 1;
    o->queued = 0;
    o->qprev = o->qnext = NIL;
    uint32_t pg = o->first_page;
    for (size_t done = 0; done < klen; done += BS, pg = s->pnext[pg])
        memcpy(page_data(s, pg), (const uint8_t *)key + done, klen - done < BS ? klen - done : BS);
    struct pd_cache_ref *hd = handle_alloc(s, oi);
    hook(s, "begin:obj");
    hash_insert(s, o);
    o->indexed = 1;
    barrier();
    atomic_store(&o->state, O_WRITING);
    barrier();
    hook(s, "begin:state");
    hd->kind = H_WRITER;
    unlock(s);
    *w = (pd_cache_writer *)hd;
    return PD_CACHE_OK;
}

/* Append bytes at the end of o's stream (key | meta | body); pos is the
 * stream's length so far, and o holds exactly the blocks it needs. Blocks are
 * linked under the lock (up to ALLOC_ROUND per round, the block after the
 * last one first); the copy runs outside it. */
static int stream_write(pd_cache_store *s, struct obj *o, uint64_t pos, const uint8_t *d, size_t len)
{
    while (len) {
        uint32_t pg;
        if (pos % BS) {
            pg = o->last_page; /* room left in the last block */
        } else {
            uint64_t want = (len + BS - 1) / BS;
            if (want > ALLOC_ROUND)
                want = ALLOC_ROUND;
            pg = NIL;
            lock(s);
            for (uint64_t k = 0; k < want; k++) {
                uint32_t b = page_alloc(s, o->last_page + 1);
                if (b == NIL)
                    break;
                s->pnext[o->last_page] = b;
                barrier();
                o->last_page = b;
                o->npages++;
                if (pg == NIL)
                    pg = b;
                hook(s, "append:link");
            }
            unlock(s);
            if (pg == NIL)
                return -1;
        }
        /* copy into pg and the blocks linked after it */
        for (;;) {
            size_t in = (size_t)(pos % BS);
            size_t n = BS - in < len ? BS - in : len;
            memcpy(page_data(s, pg) + in, d, n);
            hook(s, "append:copy");
            pos += n;
            d += n;
            len -= n;
            if (!len || pg == o->last_page)
                break;
            pg = s->pnext[pg];
        }
    }
    return 0;
}

/* Abort w's object for reason err (counted), wake its readers. */
static int writer_fail(pd_cache_store *s, struct obj *o, int err)
{
    lock(s);
    if (err == EFBIG)
        s->seg->c.oversize++;
    else if (err == ENOSPC)
        s->seg->c.nospace++;
    uint64_t m = abort_locked(s, o);
    unlock(s);
    notify(s, m);
    errno = err;
    return -1;
}

static int publish_meta(pd_cache_store *s, struct obj *o, const void *meta, size_t len)
{
    if (len && stream_write(s, o, o->key_len, meta, len) < 0)
        return -1;
    o->meta_len = (uint32_t)len;
    atomic_store(&o->meta_ready, 1);
    notify(s, progress(o));
    return 0;
}

int pd_cache_store_set_meta(pd_cache_store *s, pd_cache_writer *w, const void *meta, size_t len)
{
    struct obj *o = ref_obj(s, &w->h);
    if (atomic_load(&o->state) != O_WRITING) {
        errno = EIO;
        return -1;
    }
    if (atomic_load(&o->meta_ready)) {
        errno = EBUSY;
        return -1;
    }
    if (len > PD_CACHE_MAX_META) {
        errno = EINVAL;
        return -1;
    }
    if (publish_meta(s, o, meta, len) < 0)
        return writer_fail(s, o, ENOSPC);
    return 0;
}

int pd_cache_store_append(pd_cache_store *s, pd_cache_writer *w, const void *data, size_t len)
{
    struct obj *o = ref_obj(s, &w->h);
    if (atomic_load(&o->state) != O_WRITING) {
        errno = EIO;
        return -1;
    }
    if (!atomic_load(&o->meta_ready))
        publish_meta(s, o, NULL, 0);
    uint64_t bl = atomic_load(&o->body_len);
    if (len > s->seg->max_object || bl + len > s->seg->max_object)
        return writer_fail(s, o, EFBIG);
    if (len == 0)
        return 0;
    if (stream_write(s, o, (uint64_t)o->key_len + o->meta_len + bl, data, len) < 0)
        return writer_fail(s, o, ENOSPC);
    atomic_store(&o->body_len, bl + len);
    notify(s, progress(o));
    return 0;
}

int pd_cache_store_commit(pd_cache_store *s, pd_cache_writer *w)
{
    struct obj *o = ref_obj(s, &w->h);
    if (atomic_load(&o->state) == O_WRITING && !atomic_load(&o->meta_ready))
        publish_meta(s, o, NULL, 0);
    lock(s);
    if (atomic_load(&o->state) != O_WRITING) {
        handle_free(s, &w->h);
        unlock(s);
        errno = EIO;
        return -1;
    }
    struct obj *old = NULL;
    if (o->indexed) {
        old = find_same(s, o, O_COMPLETE);
        if (old)
            unindex(s, old);
        barrier();
        hook(s, "commit:replaced");
    }
    o->stamp = ++s->seg->clock;
    atomic_store(&o->state, O_COMPLETE);
    barrier();
    hook(s, "commit:state");
    if (o->indexed)
        pd_repl_insert(s, o, old);
    if (old)
        maybe_free(s, old);
    s->seg->c.commits++;
    uint64_t m = progress(o);
    handle_free(s, &w->h);
    unlock(s);
    notify(s, m);
    return 0;
}

void pd_cache_store_abort(pd_cache_store *s, pd_cache_writer *w)
{
    if (!w)
        return;
    lock(s);
    uint64_t m = abort_locked(s, ref_obj(s, &w->h));
    handle_free(s, &w->h);
    unlock(s);
    notify(s, m);
}

int pd_cache_store_rewrite_meta(pd_cache_store *s, pd_cache_ref *ref, const void *meta, size_t len)
{
    struct obj *o = ref_obj(s, ref);
    if (atomic_load(&o->state) != O_COMPLETE || len > PD_CACHE_MAX_META) {
        errno = EINVAL;
        return -1;
    }
    /* the key is immutable while ref is held: copy it out of its blocks */
    uint8_t *key = malloc(o->key_len);
    if (!key)
        return -1;
    stream_read(s, o, 0, key, o->key_len);
    pd_cache_writer *w;
    int rc = pd_cache_store_begin_write(s, key, o->key_len, &w, NULL);
    free(key);
    if (rc == PD_CACHE_BUSY) {
        errno = EBUSY;
        return -1;
    }
    if (rc != PD_CACHE_OK)
        return -1;
    if (pd_cache_store_set_meta(s, w, meta, len) < 0)
        goto fail;
    pd_cache_iter it;
    pd_cache_store_iter_init(s, ref, &it, 0, UINT64_MAX);
    const void *p;
    size_t n;
    while ((rc = pd_cache_store_iter_next(s, ref, &it, &p, &n)) == PD_CACHE_ITER_DATA)
        if (pd_cache_store_append(s, w, p, n) < 0)
            goto fail;
    return pd_cache_store_commit(s, w);
fail: {
        int e = errno;
        pd_cache_store_abort(s, w);
        errno = e;
        return -1;
    }
}

int pd_cache_store_invalidate(pd_cache_store *s, const void *key, size_t klen)
{
    if (klen == 0 || klen > PD_CACHE_MAX_KEY)
        return 0;
    uint64_t h = pd_cache_store_hash(key, klen);
    int n = 0;
    lock(s);
    struct obj *o;
    while ((o = find(s, h, key, klen, O_COMPLETE)) != NULL ||
           (o = find(s, h, key, klen, O_WRITING)) != NULL) {
        unindex(s, o);
        maybe_free(s, o);
        n++;
    }
    s->seg->c.invalidations += (uint64_t)n;
    unlock(s);
    return n;
}

/* ---- dead workers ---- */

int pd_cache_store_reap_slot(pd_cache_store *s, int slot)
{
    if (slot < 0 || (uint32_t)slot >= s->seg->n_slots)
        return -1;
    uint64_t m = 0;
    int n = 0;
    lock(s);
    for (uint32_t i = 0; i < HPS; i++) {
        struct pd_cache_ref *h = &s->handles[(size_t)slot * HPS + i];
        if (h->kind == H_FREE)
            continue;
        if (h->kind == H_WRITER)
            m |= abort_locked(s, &s->objs[h->obj]);
        handle_free(s, h);
        n++;
    }
    for (uint32_t i = 0; i < s->seg->obj_hwm; i++)
        atomic_fetch_and(&s->objs[i].waiters, ~(1ull << slot));
    s->seg->c.reaped_handles += (uint64_t)n;
    unlock(s);
    notify(s, m & ~(1ull << slot));
    return n;
}

/* ---- recovery: rebuild derived state from the ground truth ---- */

static void recover(pd_cache_store *s)
{
    struct seg *g = s->seg;
    uint32_t n_objs = g->obj_hwm;
    uint32_t *owner = s->scratch;               /* per block: obj + 1, 0 free */
    uint32_t *mark = s->scratch + g->n_pages;   /* per object */
    memset(owner, 0, (size_t)g->n_pages * 4);
    g->c.recoveries++;

    /* 1. handles: drop records pointing nowhere; recount references */
    for (uint32_t i = 0; i < n_objs; i++) {
        s->objs[i].refs = 0;
        mark[i] = 0;    /* 1: has a live writer handle */
    }
    for (size_t i = 0; i < (size_t)g->n_slots * HPS; i++) {
        struct pd_cache_ref *h = &s->handles[i];
        if (h->kind == H_FREE)
            continue;
        uint32_t st = h->obj < n_objs ? atomic_load(&s->objs[h->obj].state) : O_FREE;
        if (h->kind > H_WRITER || st == O_FREE || (h->kind == H_WRITER && st == O_COMPLETE)) {
            h->kind = H_FREE;   /* half-taken, or a commit that had finished */
            continue;
        }
        s->objs[h->obj].refs++;
        if (h->kind == H_WRITER)
            mark[h->obj] = 1;
    }

    /* 2. objects: re-walk chains; a writer without a handle died: abort */
    for (uint32_t i = 0; i < n_objs; i++) {
        struct obj *o = &s->objs[i];
        uint32_t st = atomic_load(&o->state);
        o->queued = 0;
        o->qprev = o->qnext = NIL;
        o->hnext = NIL;
        if (st == O_FREE) {
            o->indexed = 0;
            continue;
        }
        uint32_t n = 0, last = NIL, prev = NIL;
        int bad = 0;
        for (uint32_t p = o->first_page; p != NIL; prev = p, p = s->pnext[p]) {
            if (p >= g->n_pages || owner[p]) {
                /* never produced by our ordering; cut the chain to stay sane */
                if (prev != NIL)
                    s->pnext[prev] = NIL;
                else
                    o->first_page = NIL;
                bad = 1;
                break;
            }
            owner[p] = i + 1;
            last = p;
            n++;
        }
        o->npages = n;
        o->last_page = last;
        uint64_t need = (uint64_t)o->key_len + (atomic_load(&o->meta_ready) ? o->meta_len : 0) +
                        atomic_load(&o->body_len);
        if (n == 0 || (uint64_t)n * BS < need)
            bad = 1;
        if (st == O_WRITING && !mark[i])
            bad = 1;
        if (bad) {
            o->indexed = 0;
            if (st != O_ABORTED) {
                atomic_store(&o->state, O_ABORTED);
                notify(s, progress(o));
                g->c.aborts++;
            }
        } else if (st == O_ABORTED) {
            o->indexed = 0;
        }
    }

    /* 3. index: keep one complete and one in-progress object per key */
    memset(s->buckets, 0, (size_t)g->n_buckets * 4);
    for (uint32_t i = 0; i < n_objs; i++) {
        struct obj *o = &s->objs[i];
        if (!o->indexed)
            continue;
        struct obj *dup = find_same(s, o, atomic_load(&o->state));
        if (dup) {
            if (dup->stamp < o->stamp) {
                dup->indexed = 0;
                hash_remove(s, dup);
            } else {
                o->indexed = 0;
                continue;
            }
        }
        hash_insert(s, o);
    }

    /* 4. free what nobody can reach; rebuild the free list and map */
    g->free_obj_head = NIL;
    for (uint32_t i = n_objs; i-- > 0;) {
        struct obj *o = &s->objs[i];
        uint32_t st = atomic_load(&o->state);
        if (st != O_FREE && o->refs == 0 && !o->indexed) {
            for (uint32_t p = o->first_page; p != NIL; p = s->pnext[p])
                owner[p] = 0;
            atomic_store(&o->state, O_FREE);
            st = O_FREE;
        }
        if (st == O_FREE) {
            o->first_page = o->last_page = NIL;
            o->npages = 0;
            o->hnext = g->free_obj_head;
            g->free_obj_head = i;
        }
    }
    g->pages_free = 0;
    for (uint32_t p = 0; p < g->n_pages; p++) {
        if (owner[p]) {
            block_set_used(s, p);
        } else {
            s->pnext[p] = NIL;
            block_set_free(s, p);
            g->pages_free++;
        }
    }
    /* the dead worker may have freed lent blocks without punching them: punch
     * every free run (recovery is rare; a punch of a hole costs little) */
    for (uint32_t p = 0; s->fd >= 0 && p < g->n_pages;) {
        if (owner[p]) {
            p++;
            continue;
        }
        uint32_t e = p;
        while (e < g->n_pages && !owner[e])
            e++;
        punch(s, (size_t)p * BS, (size_t)e * BS);
        p = e;
    }
    g->cursor = 0;
    for (uint32_t sl = 0; sl < g->n_slots; sl++) {
        s->slotfree[sl] = NIL;
        for (uint32_t i = HPS; i-- > 0;) {
            struct pd_cache_ref *h = &s->handles[(size_t)sl * HPS + i];
            if (h->kind == H_FREE) {
                h->next_free = s->slotfree[sl];
                s->slotfree[sl] = i;
            }
        }
    }

    /* 5. the policy's queues or heap, from the objects' stamps and keys */
    pd_repl_rebuild(s, mark);
}

/* ---- stats and checking ---- */

void pd_cache_store_stats(pd_cache_store *s, pd_cache_stats *st)
{
    memset(st, 0, sizeof(*st));
    lock(s);
    struct seg *g = s->seg;
    st->block_size = BS;
    st->blocks_total = g->n_pages;
    st->blocks_free = g->pages_free;
    st->cache_mem = (uint64_t)g->n_pages * BS;
    st->overhead_bytes = g->overhead;
    st->bytes_free = (uint64_t)g->pages_free * BS;
    st->bytes_used = st->cache_mem - st->bytes_free;
    st->object_slots = g->n_objs;
    st->record_bytes = sizeof(struct obj) + 4 * (uint64_t)g->n_buckets / g->n_objs +
                       8 * (uint64_t)g->n_ghost / g->n_objs + 4 /* heap */;
    st->policy = (enum pd_cache_policy)g->policy;
    st->small_objects = g->q[Q_SMALL].count;
    st->main_objects = g->policy == PD_CACHE_POLICY_GDSF || g->policy == PD_CACHE_POLICY_LFUDA
                           ? g->heap_n : g->q[Q_MAIN].count;
    for (uint32_t i = 0; i < g->obj_hwm; i++) {
        struct obj *o = &s->objs[i];
        uint32_t state = atomic_load(&o->state);
        if (state == O_FREE)
            continue;
        if (state == O_WRITING && o->indexed)
            st->writing++;
        else if (state == O_COMPLETE && o->indexed) {
            st->objects++;
            st->body_bytes += atomic_load(&o->body_len);
            st->stored_bytes += (uint64_t)o->key_len + o->meta_len + atomic_load(&o->body_len);
            st->object_blocks += o->npages;
        } else
            st->unlinked++;
        st->refs += o->refs;
    }
    const struct counters *c = &g->c;
    st->hits = c->hits;
    st->misses = c->misses;
    st->pending_hits = c->pending_hits;
    st->busy = c->busy;
    st->commits = c->commits;
    st->aborts = c->aborts;
    st->oversize = c->oversize;
    st->nospace = c->nospace;
    st->evictions = c->evictions;
    st->invalidations = c->invalidations;
    st->recoveries = c->recoveries;
    st->reaped_handles = c->reaped_handles;
    st->promotions = c->promotions;
    st->ghost_hits = c->ghost_hits;
    st->punches = c->punches;
    st->punch_failures = c->punch_failures;
    unlock(s);
}

#define FAIL(...)                                   \
    do {                                            \
        if (errlen)                                 \
            snprintf(err, errlen, __VA_ARGS__);     \
        goto out;                                   \
    } while (0)

int pd_cache_store_check(pd_cache_store *s, char *err, size_t errlen)
{
    int rc = -1;
    lock(s);
    struct seg *g = s->seg;
    uint32_t n_objs = g->obj_hwm;
    uint32_t *owner = s->scratch;
    memset(owner, 0, (size_t)g->n_pages * 4);
    if (g->magic != SEG_MAGIC)
        FAIL("bad magic");
    if (n_objs > g->n_objs)
        FAIL("obj_hwm %u above the table (%u)", n_objs, g->n_objs);
    uint32_t nfree = 0;
    for (uint32_t p = 0; p < g->n_pages; p++)
        if (block_is_free(s, p)) {
            owner[p] = NIL;
            nfree++;
        }
    if (nfree != g->pages_free)
        FAIL("pages_free %u but %u free in the map", g->pages_free, nfree);
    uint32_t nfreeobj = 0;
    for (uint32_t i = g->free_obj_head; i != NIL; i = s->objs[i].hnext) {
        if (i >= n_objs || atomic_load(&s->objs[i].state) != O_FREE || ++nfreeobj > n_objs)
            FAIL("free object list broken at %u", i);
    }
    uint32_t *refcount = s->scratch + g->n_pages;
    memset(refcount, 0, (size_t)g->n_objs * 4);
    for (size_t k = 0; k < (size_t)g->n_slots * HPS; k++) {
        const struct pd_cache_ref *h = &s->handles[k];
        if (h->kind > H_WRITER || (h->kind != H_FREE && h->obj >= n_objs))
            FAIL("handle %zu corrupt", k);
        if (h->kind != H_FREE)
            refcount[h->obj]++;
    }
    uint32_t nindexed = 0, nqueued = 0, nobjfree = 0;
    for (uint32_t i = 0; i < n_objs; i++) {
        struct obj *o = &s->objs[i];
        uint32_t st = atomic_load(&o->state);
        if (st == O_FREE) {
            nobjfree++;
            if (o->indexed || o->queued || o->refs)
                FAIL("free object %u indexed/referenced", i);
            continue;
        }
        if (st > O_ABORTED)
            FAIL("object %u bad state %u", i, st);
        uint32_t n = 0, last = NIL;
        for (uint32_t p = o->first_page; p != NIL; p = s->pnext[p]) {
            if (p >= g->n_pages || owner[p])
                FAIL("object %u chain crosses block %u", i, p);
            owner[p] = i + 1;
            last = p;
            n++;
        }
        if (n != o->npages || last != o->last_page || n == 0)
            FAIL("object %u: %u blocks walked, %u recorded", i, n, o->npages);
        uint64_t need = (uint64_t)o->key_len + o->meta_len + atomic_load(&o->body_len);
        if ((uint64_t)n * BS < need)
            FAIL("object %u: %u blocks for %llu bytes", i, n, (unsigned long long)need);
        if (st != O_ABORTED && (uint64_t)(n - 1) * BS >= need && need > 0)
            FAIL("object %u: %u blocks for %llu bytes (one too many)", i, n,
                 (unsigned long long)need);
        if (atomic_load(&o->body_len) > g->max_object)
            FAIL("object %u above max_object", i);
        if (refcount[i] != o->refs)
            FAIL("object %u: refs %u but %u handles", i, o->refs, refcount[i]);
        if (!o->indexed && o->refs == 0)
            FAIL("object %u leaked (unindexed, unreferenced)", i);
        if (st == O_ABORTED && o->indexed)
            FAIL("aborted object %u indexed", i);
        if (o->indexed) {
            nindexed++;
            if (find_same(s, o, st) != NULL)
                FAIL("object %u shares its key with another %s object", i,
                     st == O_COMPLETE ? "complete" : "in-progress");
        }
        if (o->queued != (o->indexed && st == O_COMPLETE))
            FAIL("object %u queue membership wrong", i);
        nqueued += o->queued;
    }
    if (nobjfree != nfreeobj)
        FAIL("%u free objects, %u on the list", nobjfree, nfreeobj);
    for (uint32_t p = 0; p < g->n_pages; p++)
        if (!owner[p])
            FAIL("block %u leaked", p);
    uint32_t nchain = 0;
    for (uint32_t b = 0; b < g->n_buckets; b++)
        for (uint32_t i = ~s->buckets[b]; i != NIL; i = s->objs[i].hnext) {
            if (i >= n_objs || !s->objs[i].indexed || (s->objs[i].hash & (g->n_buckets - 1)) != b ||
                ++nchain > n_objs)
                FAIL("hash chain %u broken at %u", b, i);
        }
    if (nchain != nindexed)
        FAIL("%u indexed objects, %u in the hash", nindexed, nchain);
    if (pd_repl_count(s) != nqueued)
        FAIL("%u objects queued, the policy tracks %u", nqueued, pd_repl_count(s));
    if (pd_repl_check(s, err, errlen) < 0)
        goto out;
    for (uint32_t sl = 0; sl < g->n_slots; sl++) {
        uint32_t nf = 0, nused = 0;
        for (uint32_t i = s->slotfree[sl]; i != NIL; i = s->handles[(size_t)sl * HPS + i].next_free) {
            if (i >= HPS || s->handles[(size_t)sl * HPS + i].kind != H_FREE || ++nf > HPS)
                FAIL("slot %u handle list broken", sl);
        }
        for (uint32_t i = 0; i < HPS; i++)
            if (s->handles[(size_t)sl * HPS + i].kind != H_FREE)
                nused++;
        if (nf + nused != HPS)
            FAIL("slot %u: %u free + %u used handles", sl, nf, nused);
    }
    rc = 0;
out:
    unlock(s);
    return rc;
}
