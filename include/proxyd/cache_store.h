/*
 * cache_store: the object store shared by every worker of one instance. It
 * knows nothing of HTTP: an object is a key (bytes), an opaque metadata blob
 * and a body. The master creates the store before forking; every worker
 * inherits the one MAP_SHARED segment, so adding workers neither divides nor
 * multiplies the cache.
 *
 * Memory: cache_mem bytes of PD_CACHE_BLOCK_SIZE blocks (the data area) plus
 * a metadata region (object table, hash buckets, block links and free map,
 * per-slot handle tables, the policy's ghost table and heap, scratch for
 * crash recovery), see pd_cache_stats.overhead_bytes. An object is a chain of
 * blocks holding [key | meta | body], so it costs its bytes rounded up to a
 * block (512 bytes) plus one ~100-byte object record: a 2 KB body with a
 * 300-byte head takes 5 blocks. The table holds one object per 1 KB of
 * cache_mem; records and blocks are touched only when first used. Workers
 * share the blocks: measure the instance with PSS, not the sum of RSS.
 * The allocator hands a writer the block after its last one when it is free
 * (and otherwise the next free block after the last one handed out), so an
 * object written into free space is contiguous; the body is read as
 * (pointer, length) extents, each a run of adjacent blocks (up to
 * PD_CACHE_MAX_EXTENT, 16 KB), pointing straight into the segment for
 * evbuffer_add_reference (zero copy).
 *
 * Replacement (pd_cache_policy): which complete, unreferenced object goes when
 * a writer needs room. S3-FIFO (the default: a small FIFO of new objects, 10%
 * of the blocks, whose objects that were hit again move to the main FIFO,
 * and a ghost list of keys recently dropped from the small FIFO; a one-time
 * scan passes through the small FIFO without touching the main one), LRU,
 * and Squid's heap GDSF and LFUDA (greedy-dual keys: age + hits / size, age
 * + hits). See docs/internals.md for the measurements behind the default.
 *
 * Concurrency: one robust process-shared mutex guards the structures; a body
 * byte is copied outside it (the writer owns the tail of its object, readers
 * only read what is published with atomics). A worker killed at any moment
 * (even holding the mutex) leaves the store repairable: the next locker sees
 * EOWNERDEAD and rebuilds every derived structure from the ground truth, and
 * pd_cache_store_reap_slot() releases everything the dead worker held.
 *
 * Worker slots: each worker process works as one slot in [0, max_workers)
 * (pd_cache_store_attach after fork). Handles (readers and writers) are
 * recorded per slot in shared memory so that a dead slot can be reaped.
 * PD_CACHE_HANDLES_PER_SLOT bounds the handles one worker holds at once.
 *
 * ---- Integration protocol (one worker, libevent) ----
 * Hit:   lookup() == PD_CACHE_HIT -> meta() (copy of the headers blob) ->
 *        iter_init(off) -> while iter_next() == PD_CACHE_ITER_DATA:
 *        evbuffer_add_reference(out, p, len, cleanup, ctx) -> when the last
 *        extent's cleanup ran (the bytes left the evbuffer), release(ref).
 *        The ref keeps the blocks alive whatever happens to the key meanwhile.
 * Miss:  begin_write(); PD_CACHE_OK -> set_meta(headers) once, append() each
 *        body piece as it streams, commit() at the end (abort() on upstream
 *        error). If append() fails (object above max_object, no space) the
 *        store has already aborted the object and woken its readers: keep
 *        streaming to the client, then call abort(w) to drop the handle.
 * Collapsed forwarding: begin_write() == PD_CACHE_BUSY with *pending set: a
 *        reader ref on the in-progress object. meta() returns -1/EAGAIN until
 *        the writer published the meta blob; iter_next() returns
 *        PD_CACHE_ITER_AGAIN when it reached the bytes written so far. Then
 *        call wait(ref, it): 1 means something changed already (loop again,
 *        do not sleep); 0 means the slot is registered and the worker will
 *        be signalled through its notify fd. PD_CACHE_ITER_ERROR (or meta()
 *        -1/EIO): the writer aborted; answer from the origin or an error.
 * Notify fd: pd_cache_store_notify_fd(store, my_slot) is an eventfd created
 *        before fork. Put it in the event loop (EV_READ|EV_PERSIST); on
 *        readable: read() 8 bytes to reset it, then retry EVERY reader of
 *        this worker that is waiting on a cache object (the signal does not
 *        say which object; wakeups may be spurious). Registration is
 *        one-shot: a reader that gets AGAIN again calls wait() again.
 * Master: create() before fork; when a worker dies (any reason),
 *        reap_slot(slot) before restarting it; destroy() at exit. The master
 *        itself takes no handles (it is slot 0 by default, like worker 0).
 *        A restarted worker may find its eventfd readable: harmless.
 * Zero copy: evbuffer_add_reference(out, p, len, cleanup, ctx) per extent,
 *        with ctx counting the extents still in libevent's hands; release
 *        the ref when that count is 0 and the iterator returned END (or the
 *        connection closed). Never release inside iter/meta calls' loop
 *        while extents are still referenced.
 *
 * All functions are safe to call from any process that inherited the store;
 * none blocks other than on the store's mutex for short sections.
 */
#ifndef PROXYD_CACHE_STORE_H
#define PROXYD_CACHE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PD_CACHE_BLOCK_SIZE 512u        /* allocation unit of the data area */
/* longest extent iter_next returns: 16 KB sends 1 MB hits with the CPU the
 * 16 KB pages did; 256 KB extents measured up to 25% more CPU per hit */
#define PD_CACHE_MAX_EXTENT (16u * 1024)
#define PD_CACHE_MAX_KEY 8192u          /* longest key */
#define PD_CACHE_MAX_META (256u * 1024) /* largest metadata blob */
#define PD_CACHE_MAX_WORKERS 64         /* waiter masks are 64-bit */
#define PD_CACHE_HANDLES_PER_SLOT 4096  /* concurrent refs+writers per worker */

typedef struct pd_cache_store pd_cache_store;   /* process-local view */
typedef struct pd_cache_ref pd_cache_ref;       /* reader reference */
typedef struct pd_cache_writer pd_cache_writer; /* writer handle */

/* Body iterator: a plain value the caller owns (no release needed). */
typedef struct pd_cache_iter {
    uint64_t off;       /* body offset of the next byte to return */
    uint32_t page;      /* block holding the byte before off (internal) */
    uint32_t seq;       /* object progress seen at the last call (internal) */
    uint64_t limit;     /* body offset to stop at (UINT64_MAX: the end) */
} pd_cache_iter;

enum pd_cache_result {
    PD_CACHE_ERROR = -1,    /* errno says why */
    PD_CACHE_MISS = 0,
    PD_CACHE_HIT = 1,       /* complete object, *ref set */
    PD_CACHE_PENDING = 2,   /* object being written, *ref set (collapsed) */
    PD_CACHE_OK = 3,        /* begin_write: *w set */
    PD_CACHE_BUSY = 4       /* begin_write: another writer owns the key */
};

enum pd_cache_iter_result {
    PD_CACHE_ITER_ERROR = -1,   /* writer aborted: the body will never complete */
    PD_CACHE_ITER_END = 0,      /* complete and everything (up to limit) returned */
    PD_CACHE_ITER_DATA = 1,     /* *p, *len set: an extent inside the segment */
    PD_CACHE_ITER_AGAIN = 2     /* in progress: wait() and retry */
};

enum pd_cache_policy {
    PD_CACHE_POLICY_S3FIFO = 0, /* default */
    PD_CACHE_POLICY_LRU,
    PD_CACHE_POLICY_GDSF,
    PD_CACHE_POLICY_LFUDA,
    PD_CACHE_POLICY_COUNT
};

/* The policy's configuration name ("s3fifo", "lru", "heap GDSF", "heap LFUDA"). */
const char *pd_cache_policy_name(enum pd_cache_policy p);
/* Parse a memory_replacement_policy value (Squid's names, and "heap LRU" as
 * lru): 0 and *p set, or -1. */
int pd_cache_policy_parse(const char *name, enum pd_cache_policy *p);

typedef struct pd_cache_stats {
    uint64_t cache_mem;         /* data area size (blocks * block size) */
    uint64_t overhead_bytes;    /* metadata region (not in cache_mem) */
    uint64_t block_size, blocks_total, blocks_free;
    uint64_t bytes_used, bytes_free;    /* blocks in use / free, in bytes */
    uint64_t object_slots;      /* the object table's size: most objects storable */
    uint64_t stored_bytes;      /* key + meta + body bytes of indexed complete objects */
    uint64_t object_blocks;     /* blocks those objects take */
    uint64_t record_bytes;      /* index bytes per object slot (record, bucket, ghost) */
    enum pd_cache_policy policy;
    uint64_t small_objects, main_objects;   /* S3-FIFO queues (main: every object for LRU) */
    uint64_t objects;           /* complete objects in the index */
    uint64_t writing;           /* objects being written */
    uint64_t unlinked;          /* out of the index, kept alive by readers */
    uint64_t body_bytes;        /* sum of body lengths of indexed complete objects */
    uint64_t refs;              /* reader references held now */
    /* counters since create */
    uint64_t hits, misses, pending_hits, busy;
    uint64_t commits, aborts, oversize, nospace, evictions, invalidations;
    uint64_t recoveries, reaped_handles;
    uint64_t promotions;        /* S3-FIFO: small -> main */
    uint64_t ghost_hits;        /* S3-FIFO: objects that came back soon after eviction */
    uint64_t punches;           /* page runs of lent objects punched out of the file */
    uint64_t punch_failures;    /* punches refused: lending stops */
} pd_cache_stats;

/*
 * Create the store: call in the master before forking. cache_mem is the data
 * area in bytes (rounded down to blocks, at least 64 KB); max_object the
 * largest body stored (bodies above are refused; <= cache_mem);
 * max_workers the number of slots (1..PD_CACHE_MAX_WORKERS), each with its
 * notify eventfd; policy the replacement policy. Returns NULL with errno set on
 * failure. The caller (master) is slot 0 until pd_cache_store_attach. Free
 * with pd_cache_store_destroy.
 */
pd_cache_store *pd_cache_store_create(uint64_t cache_mem, uint64_t max_object, int max_workers,
                                      enum pd_cache_policy policy);

/* Unmap the segment, close the notify fds, free the view. Every process that
 * inherited the store may call it (in a worker it only drops that worker's
 * mapping); handles of this process become invalid. */
void pd_cache_store_destroy(pd_cache_store *s);

/* In a worker after fork: act as `slot` from now on. Returns 0, -1 (EINVAL). */
int pd_cache_store_attach(pd_cache_store *s, int slot);

/* The slot's eventfd (>= 0), or -1 for a bad slot. Owned by the store. */
int pd_cache_store_notify_fd(const pd_cache_store *s, int slot);

/* The master, after seeing the worker of `slot` die and before restarting it:
 * abort its writers (waking their readers), drop its references, clear its
 * waiter registrations. Returns the number of handles reclaimed. */
int pd_cache_store_reap_slot(pd_cache_store *s, int slot);

/*
 * Look up key (klen bytes, 1..PD_CACHE_MAX_KEY). A complete object wins over
 * one being written. Returns PD_CACHE_HIT or PD_CACHE_PENDING with *ref set
 * (release it with pd_cache_store_release), PD_CACHE_MISS, or PD_CACHE_ERROR
 * (bad key, or this slot's handle table is full: treat as a miss, no store).
 * A hit counts for the replacement policy.
 */
int pd_cache_store_lookup(pd_cache_store *s, const void *key, size_t klen, pd_cache_ref **ref);

/* Drop a reader reference (from lookup or begin_write's *pending). */
void pd_cache_store_release(pd_cache_store *s, pd_cache_ref *ref);

/*
 * Start writing key. PD_CACHE_OK: *w is the writer (end it with commit or
 * abort). PD_CACHE_BUSY: another writer is busy with key; when pending is not
 * NULL, *pending gets a reader reference on that in-progress object (taken
 * atomically with the check), or NULL if none could be taken. PD_CACHE_ERROR:
 * errno EINVAL (key), ENOSPC (no room even after eviction), EMFILE (this
 * slot's handle table is full). An existing complete object of key stays
 * served until commit replaces it.
 */
int pd_cache_store_begin_write(pd_cache_store *s, const void *key, size_t klen,
                               pd_cache_writer **w, pd_cache_ref **pending);

/*
 * Set the metadata blob (copied; len <= PD_CACHE_MAX_META): once, before the
 * first append. It is published to readers at once and fixed afterwards (to
 * change it on a complete object: pd_cache_store_rewrite_meta). Returns 0, or
 * -1: EBUSY (already set), EINVAL (too long), ENOSPC (no room: the object is
 * aborted), EIO (object already aborted).
 */
int pd_cache_store_set_meta(pd_cache_store *s, pd_cache_writer *w, const void *meta, size_t len);

/*
 * Append body bytes (copied into the segment) and wake readers. Returns 0, or
 * -1 once the object is aborted: EFBIG (body would pass max_object), ENOSPC
 * (no evictable space), EIO (already aborted). After -1 the only valid call on
 * w is pd_cache_store_abort. An append before set_meta publishes empty meta.
 */
int pd_cache_store_append(pd_cache_store *s, pd_cache_writer *w, const void *data, size_t len);

/* Publish the object as complete, replacing (unlinking) an older complete
 * object of the same key; wakes readers. w is released in every case.
 * Returns 0, or -1 EIO if the object had been aborted (nothing published). */
int pd_cache_store_commit(pd_cache_store *s, pd_cache_writer *w);

/* Abandon the object (readers get PD_CACHE_ITER_ERROR) and release w. */
void pd_cache_store_abort(pd_cache_store *s, pd_cache_writer *w);

/*
 * Copy the metadata blob into buf (up to cap bytes). Returns its full length
 * (call with cap 0 to size buf), or -1: EAGAIN (writer has not published it
 * yet: wait), EIO (aborted).
 */
ssize_t pd_cache_store_meta(pd_cache_store *s, pd_cache_ref *ref, void *buf, size_t cap);

/* The largest body the store accepts (max_object given to create; fixed). */
uint64_t pd_cache_store_max_object(const pd_cache_store *s);

/* Body length published so far, and whether the object is complete (1),
 * being written (0) or aborted (-1). */
uint64_t pd_cache_store_body_len(pd_cache_store *s, pd_cache_ref *ref, int *state);

/*
 * Sending by reference. The data area is a memfd shared by every process
 * attached: pd_cache_store_file returns it and sets *off to p's offset in it,
 * or returns -1 (anonymous memory, or lending stopped after a failed punch).
 * A reader that hands pages of ref's object to the kernel by reference
 * (sendfile, splice) calls pd_cache_store_lend first, while it holds ref, and
 * lends only whole pages (pd_cache_store_page_size) inside one extent: when
 * the object's blocks are freed, those pages are punched out of the file, so
 * bytes a socket still holds keep their content while the blocks are reused.
 */
int pd_cache_store_file(const pd_cache_store *s, const void *p, int64_t *off);
/* The memfd itself (-1: none), for a forked worker to keep open. */
int pd_cache_store_memfd(const pd_cache_store *s);
size_t pd_cache_store_page_size(const pd_cache_store *s);
void pd_cache_store_lend(pd_cache_store *s, pd_cache_ref *ref);

/* Start iterating the body at offset start, stopping at limit (exclusive,
 * UINT64_MAX for the end): for a Range, start=first, limit=last+1. */
void pd_cache_store_iter_init(pd_cache_store *s, pd_cache_ref *ref, pd_cache_iter *it,
                              uint64_t start, uint64_t limit);

/* Next extent: PD_CACHE_ITER_DATA with *p, *len (valid while ref is held; at
 * most PD_CACHE_MAX_EXTENT), END, AGAIN (wait then retry) or ERROR. */
int pd_cache_store_iter_next(pd_cache_store *s, pd_cache_ref *ref, pd_cache_iter *it,
                             const void **p, size_t *len);

/* Register this slot for a wakeup on the object's next progress (meta
 * published, append, commit, abort). Returns 1 if progress happened since
 * its last iter_init/iter_next (do not sleep: retry now), 0 if registered. */
int pd_cache_store_wait(pd_cache_store *s, pd_cache_ref *ref, const pd_cache_iter *it);

/*
 * Replace the metadata of the complete object ref points to (e.g. the 304
 * header merge): writes a new version (key, new meta, copy of the body) and
 * commits it in place of the old one. ref stays valid (on the old version).
 * Returns 0, or -1: EBUSY (a writer owns the key), ENOSPC, EINVAL, EIO.
 */
int pd_cache_store_rewrite_meta(pd_cache_store *s, pd_cache_ref *ref, const void *meta, size_t len);

/* Unlink key's objects (complete and in-progress) from the index: later
 * lookups miss; current readers keep their copy until release; an in-progress
 * object still completes for its readers but is not published. Returns the
 * number of objects unlinked. */
int pd_cache_store_invalidate(pd_cache_store *s, const void *key, size_t klen);

/* Fill *st with a consistent snapshot. */
void pd_cache_store_stats(pd_cache_store *s, pd_cache_stats *st);

/* Consistency check of every structure (for tests and debugging; takes the
 * lock, O(size)). Returns 0, or -1 with a reason in err (if errlen > 0). */
int pd_cache_store_check(pd_cache_store *s, char *err, size_t errlen);

/* FNV-1a 64 of the key: the hash the store indexes by (exposed for tests). */
uint64_t pd_cache_store_hash(const void *key, size_t klen);

#endif
