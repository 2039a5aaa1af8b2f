/* Unit tests for cache_store: LRU, eviction, references, size limits,
 * collapsed writers and their notification, crash of a holder at named points
 * inside operations (forked child SIGKILLed, synchronised with pipes), slot
 * reaping and the consistency checker. The .c is included to reach the test
 * hook and the lock. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cache_store.c"
#include "cache_repl.c"
#include "check_run.h"

#define KB 1024u
#define MB (1024u * 1024u)
#define PG (16u * KB) /* a size unit of these tests (the store's old page) */

/* The policy the generic tests run under: each runs once per policy (one
 * TCase per policy, its fixture sets this). */
static enum pd_cache_policy test_policy = PD_CACHE_POLICY_S3FIFO;

static pd_cache_store *mk(uint64_t mem, uint64_t max_object, int workers)
{
    return pd_cache_store_create(mem, max_object, workers, test_policy);
}

/* blocks an object of key + meta + body bytes takes */
static uint64_t blocks_for(size_t klen, size_t mlen, size_t blen)
{
    return (klen + mlen + blen + PD_CACHE_BLOCK_SIZE - 1) / PD_CACHE_BLOCK_SIZE;
}

static void assert_consistent(pd_cache_store *s)
{
    char err[256] = "";
    int rc = pd_cache_store_check(s, err, sizeof(err));
    ck_assert_msg(rc == 0, "store inconsistent: %s", err);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 9));
}

/* Write and commit key with meta and a body of n pattern bytes. */
static int put(pd_cache_store *s, const char *key, const char *meta, size_t n, unsigned seed)
{
    pd_cache_writer *w;
    if (pd_cache_store_begin_write(s, key, strlen(key), &w, NULL) != PD_CACHE_OK)
        return -1;
    if (pd_cache_store_set_meta(s, w, meta, strlen(meta)) < 0) {
        pd_cache_store_abort(s, w);
        return -1;
    }
    uint8_t *b = malloc(n ? n : 1);
    fill(b, n, seed);
    size_t off = 0;
    while (off < n) {
        size_t k = n - off < 5000 ? n - off : 5000; /* odd pieces cross pages */
        if (pd_cache_store_append(s, w, b + off, k) < 0) {
            free(b);
            pd_cache_store_abort(s, w);
            return -1;
        }
        off += k;
    }
    free(b);
    return pd_cache_store_commit(s, w);
}

/* Read the whole body of ref into a malloc'd buffer; returns length. *last is
 * the iterator's last answer (-2: an extent longer than PD_CACHE_MAX_EXTENT). */
static size_t read_body(pd_cache_store *s, pd_cache_ref *ref, uint8_t **out, int *last)
{
    pd_cache_iter it;
    pd_cache_store_iter_init(s, ref, &it, 0, UINT64_MAX);
    size_t cap = 1024, len = 0;
    uint8_t *b = malloc(cap);
    const void *p;
    size_t n;
    int rc;
    while ((rc = pd_cache_store_iter_next(s, ref, &it, &p, &n)) == PD_CACHE_ITER_DATA) {
        /* no ck_assert here: forked workers call this, and a passing ck_assert
         * writes to Check's pipe (mark_point), racing the test's own process */
        if (n > PD_CACHE_MAX_EXTENT) {
            rc = -2; /* the caller's check on *last fails */
            break;
        }
        while (len + n > cap)
            cap *= 2;
        b = realloc(b, cap);
        memcpy(b + len, p, n);
        len += n;
    }
    *last = rc;
    *out = b;
    return len;
}

static void assert_body(pd_cache_store *s, pd_cache_ref *ref, size_t n, unsigned seed)
{
    uint8_t *got, *want = malloc(n ? n : 1);
    int last;
    size_t len = read_body(s, ref, &got, &last);
    ck_assert_int_eq(last, PD_CACHE_ITER_END);
    ck_assert_uint_eq(len, n);
    fill(want, n, seed);
    ck_assert(memcmp(got, want, n) == 0);
    free(got);
    free(want);
}

static int present(pd_cache_store *s, const char *key)
{
    pd_cache_ref *r;
    int rc = pd_cache_store_lookup(s, key, strlen(key), &r);
    if (r)
        pd_cache_store_release(s, r);
    return rc == PD_CACHE_HIT;
}

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
}

START_TEST(test_basic_roundtrip)
{
    pd_cache_store *s = mk(64 * PG, MB, 2);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(present(s, "http://a/"), 0);
    ck_assert_int_eq(put(s, "http://a/", "HTTP/1.1 200 OK\r\n", 40000, 1), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "http://a/", 9, &r), PD_CACHE_HIT);
    char meta[64];
    ck_assert_int_eq(pd_cache_store_meta(s, r, NULL, 0), 17);
    ck_assert_int_eq(pd_cache_store_meta(s, r, meta, sizeof(meta)), 17);
    ck_assert(memcmp(meta, "HTTP/1.1 200 OK\r\n", 17) == 0);
    int st;
    ck_assert_uint_eq(pd_cache_store_body_len(s, r, &st), 40000);
    ck_assert_int_eq(st, 1);
    assert_body(s, r, 40000, 1);
    /* a range: bytes 16000..20999 in extents that never cross a page */
    pd_cache_iter it;
    pd_cache_store_iter_init(s, r, &it, 16000, 21000);
    uint8_t want[40000];
    fill(want, sizeof(want), 1);
    size_t got = 0;
    const void *p;
    size_t n;
    while (pd_cache_store_iter_next(s, r, &it, &p, &n) == PD_CACHE_ITER_DATA) {
        ck_assert(memcmp(p, want + 16000 + got, n) == 0);
        got += n;
    }
    ck_assert_uint_eq(got, 5000);
    pd_cache_store_release(s, r);
    pd_cache_stats stt;
    pd_cache_store_stats(s, &stt);
    ck_assert_uint_eq(stt.objects, 1);
    ck_assert_uint_eq(stt.hits, 1);
    ck_assert_uint_eq(stt.misses, 1);
    ck_assert_uint_eq(stt.refs, 0);
    /* key + meta + body = 40026 bytes, rounded up to a block */
    ck_assert_uint_eq(stt.bytes_used, blocks_for(9, 17, 40000) * PD_CACHE_BLOCK_SIZE);
    ck_assert_uint_eq(stt.stored_bytes, 40026);
    ck_assert_uint_eq(stt.object_blocks, blocks_for(9, 17, 40000));
    ck_assert_uint_eq(stt.body_bytes, 40000);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_bad_args)
{
    ck_assert_ptr_null(mk(2 * PG, KB, 1));
    ck_assert_ptr_null(mk(64 * PG, KB, 0));
    ck_assert_ptr_null(mk(64 * PG, KB, PD_CACHE_MAX_WORKERS + 1));
    ck_assert_ptr_null(mk(4 * MB, 5 * MB, 1));
    pd_cache_store *s = mk(64 * PG, KB, 1);
    pd_cache_ref *r;
    pd_cache_writer *w;
    ck_assert_int_eq(pd_cache_store_lookup(s, "", 0, &r), PD_CACHE_ERROR);
    static char big[PD_CACHE_MAX_KEY + 1];
    memset(big, 'k', sizeof(big));
    ck_assert_int_eq(pd_cache_store_begin_write(s, big, sizeof(big), &w, NULL), PD_CACHE_ERROR);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(pd_cache_store_attach(s, 1), -1);
    ck_assert_int_eq(pd_cache_store_notify_fd(s, 1), -1);
    ck_assert_int_ge(pd_cache_store_notify_fd(s, 0), 0);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "k", 1, &w, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_set_meta(s, w, "m", 1), 0);
    ck_assert_int_eq(pd_cache_store_set_meta(s, w, "m", 1), -1);
    ck_assert_int_eq(errno, EBUSY);
    pd_cache_store_abort(s, w);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_lru_order)
{
    /* 64 KB: 8 objects of 8 KB (16 blocks each: "kN" + "m" + 8189) fill it */
    const size_t body = 8 * KB - 3;
    test_policy = PD_CACHE_POLICY_LRU;
    pd_cache_store *s = mk(64 * KB, 32 * KB, 1);
    char key[16];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(put(s, key, "m", body, (unsigned)i), 0);
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, 0);
    ck_assert_uint_eq(st.evictions, 0);
    /* touch k0 and k2: the least recently used are now k1, k3, k4 ... */
    ck_assert(present(s, "k0"));
    ck_assert(present(s, "k2"));
    ck_assert_int_eq(put(s, "n1", "m", body, 100), 0);
    ck_assert(!present(s, "k1"));
    ck_assert(present(s, "k0"));
    ck_assert_int_eq(put(s, "n2", "m", body, 101), 0);
    ck_assert(!present(s, "k3"));
    ck_assert(present(s, "k2"));
    /* a 33-block object evicts the next three in LRU order: k4 k5 k6 */
    ck_assert_int_eq(put(s, "big", "m", 16 * KB + 10, 102), 0);
    ck_assert(!present(s, "k4"));
    ck_assert(!present(s, "k5"));
    ck_assert(!present(s, "k6"));
    ck_assert(present(s, "k7"));
    ck_assert(present(s, "big"));
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 5);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_fill_three_times)
{
    const uint64_t mem = 64 * PG;
    pd_cache_store *s = mk(mem, 8 * PG, 1);
    uint64_t written = 0;
    char key[32];
    for (unsigned i = 0; written < 3 * mem; i++) {
        size_t n = 1000 + (i * 7919) % (5 * PG);
        snprintf(key, sizeof(key), "obj%u", i);
        ck_assert_int_eq(put(s, key, "meta", n, i), 0);
        written += n;
        pd_cache_stats st;
        pd_cache_store_stats(s, &st);
        ck_assert_uint_le(st.bytes_used, mem);
        ck_assert_uint_eq(st.bytes_used + st.bytes_free, mem);
        ck_assert_uint_le(st.body_bytes, st.bytes_used);
        ck_assert(present(s, key));
        if (i % 16 == 0)
            assert_consistent(s);
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_gt(st.evictions, 0);
    ck_assert_uint_eq(st.cache_mem, mem);
    ck_assert_uint_gt(st.overhead_bytes, 0);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_referenced_survive)
{
    pd_cache_store *s = mk(16 * PG, 4 * PG, 1);
    ck_assert_int_eq(put(s, "held", "m", 3 * PG, 7), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "held", 4, &r), PD_CACHE_HIT);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        ck_assert_int_eq(put(s, key, "m", 2 * PG, (unsigned)i), 0);
    }
    /* held is the least recently used but referenced: never evicted */
    ck_assert(present(s, "held"));
    assert_body(s, r, 3 * PG, 7);
    /* invalidation unlinks it; the reader keeps reading */
    ck_assert_int_eq(pd_cache_store_invalidate(s, "held", 4), 1);
    ck_assert(!present(s, "held"));
    for (int i = 40; i < 60; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        ck_assert_int_eq(put(s, key, "m", 2 * PG, (unsigned)i), 0);
    }
    assert_body(s, r, 3 * PG, 7);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.unlinked, 1);
    assert_consistent(s);
    uint64_t free_before = st.blocks_free;
    pd_cache_store_release(s, r);
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.unlinked, 0);
    ck_assert_uint_eq(st.blocks_free, free_before + blocks_for(4, 1, 3 * PG));
    /* replacing: a reader of the old version keeps it */
    ck_assert_int_eq(put(s, "k", "old", 100, 1), 0);
    ck_assert_int_eq(pd_cache_store_lookup(s, "k", 1, &r), PD_CACHE_HIT);
    ck_assert_int_eq(put(s, "k", "new", 200, 2), 0);
    assert_body(s, r, 100, 1);
    pd_cache_ref *r2;
    ck_assert_int_eq(pd_cache_store_lookup(s, "k", 1, &r2), PD_CACHE_HIT);
    assert_body(s, r2, 200, 2);
    pd_cache_store_release(s, r);
    pd_cache_store_release(s, r2);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_max_object)
{
    pd_cache_store *s = mk(4 * MB, MB, 1);
    ck_assert_int_eq(put(s, "exact", "m", 1048576, 3), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "exact", 5, &r), PD_CACHE_HIT);
    assert_body(s, r, 1048576, 3);
    pd_cache_store_release(s, r);

    pd_cache_writer *w;
    ck_assert_int_eq(pd_cache_store_begin_write(s, "over", 4, &w, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_lookup(s, "over", 4, &r), PD_CACHE_PENDING);
    static uint8_t buf[64 * 1024];
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(pd_cache_store_append(s, w, buf, sizeof(buf)), 0);
    ck_assert_int_eq(pd_cache_store_append(s, w, buf, 1), -1);
    ck_assert_int_eq(errno, EFBIG);
    /* the reader learns it at once */
    const void *p;
    size_t n;
    pd_cache_iter it;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_ERROR);
    ck_assert_int_eq(pd_cache_store_append(s, w, buf, 1), -1);
    ck_assert_int_eq(errno, EIO);
    ck_assert_int_eq(pd_cache_store_commit(s, w), -1);
    pd_cache_store_release(s, r);
    ck_assert(!present(s, "over"));
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.oversize, 1);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.bytes_used, blocks_for(5, 1, MB) * PD_CACHE_BLOCK_SIZE);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_collapsed_same_process)
{
    pd_cache_store *s = mk(64 * PG, MB, 1);
    int fd = pd_cache_store_notify_fd(s, 0);
    pd_cache_writer *w, *w2;
    pd_cache_ref *r, *r2;
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w2, &r), PD_CACHE_BUSY);
    ck_assert_ptr_null(w2);
    ck_assert_ptr_nonnull(r);
    char m[8];
    ck_assert_int_eq(pd_cache_store_meta(s, r, m, sizeof(m)), -1);
    ck_assert_int_eq(errno, EAGAIN);
    pd_cache_iter it;
    const void *p;
    size_t n;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    ck_assert(!fd_readable(fd, 0));
    ck_assert_int_eq(pd_cache_store_set_meta(s, w, "hdrs", 4), 0);
    ck_assert(fd_readable(fd, 0));
    drain(fd);
    ck_assert_int_eq(pd_cache_store_meta(s, r, m, sizeof(m)), 4);
    /* progress since the iterator's last look: wait says do not sleep */
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 1);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    drain(fd); /* the wait above left the bit set: a spurious wakeup is allowed */
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    ck_assert(!fd_readable(fd, 0));
    ck_assert_int_eq(pd_cache_store_append(s, w, "hello", 5), 0);
    ck_assert(fd_readable(fd, 0));
    drain(fd);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_DATA);
    ck_assert_uint_eq(n, 5);
    ck_assert(memcmp(p, "hello", 5) == 0);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    /* a lookup sees the in-progress object too */
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r2), PD_CACHE_PENDING);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    ck_assert_int_eq(pd_cache_store_commit(s, w), 0);
    ck_assert(fd_readable(fd, 0));
    drain(fd);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_END);
    uint8_t *b;
    int last;
    ck_assert_uint_eq(read_body(s, r2, &b, &last), 5);
    ck_assert_int_eq(last, PD_CACHE_ITER_END);
    ck_assert(memcmp(b, "hello", 5) == 0);
    free(b);
    ck_assert(present(s, "u"));
    pd_cache_store_release(s, r);
    pd_cache_store_release(s, r2);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_abort_wakes_with_error)
{
    pd_cache_store *s = mk(64 * PG, MB, 1);
    int fd = pd_cache_store_notify_fd(s, 0);
    pd_cache_writer *w, *w2;
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w, "abc", 3), 0);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w2, &r), PD_CACHE_BUSY);
    pd_cache_iter it;
    const void *p;
    size_t n;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_DATA);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    pd_cache_store_abort(s, w);
    ck_assert(fd_readable(fd, 0));
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_ERROR);
    char m[4];
    ck_assert_int_eq(pd_cache_store_meta(s, r, m, sizeof(m)), -1);
    ck_assert_int_eq(errno, EIO);
    /* the key is free for a new writer at once */
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w, NULL), PD_CACHE_OK);
    pd_cache_store_abort(s, w);
    pd_cache_store_release(s, r);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.aborts, 2);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_invalidate_in_progress)
{
    pd_cache_store *s = mk(64 * PG, MB, 1);
    ck_assert_int_eq(put(s, "u", "v1", 10, 1), 0);
    pd_cache_writer *w;
    ck_assert_int_eq(pd_cache_store_begin_write(s, "u", 1, &w, NULL), PD_CACHE_OK);
    ck_assert(present(s, "u")); /* the complete one is served meanwhile */
    ck_assert_int_eq(pd_cache_store_invalidate(s, "u", 1), 2);
    ck_assert_int_eq(pd_cache_store_append(s, w, "x", 1), 0);
    ck_assert_int_eq(pd_cache_store_commit(s, w), 0);
    ck_assert(!present(s, "u"));
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_rewrite_meta)
{
    pd_cache_store *s = mk(64 * PG, MB, 1);
    ck_assert_int_eq(put(s, "u", "old-meta", 30000, 5), 0);
    pd_cache_ref *r, *r2;
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r), PD_CACHE_HIT);
    ck_assert_int_eq(pd_cache_store_rewrite_meta(s, r, "new", 3), 0);
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r2), PD_CACHE_HIT);
    char m[16];
    ck_assert_int_eq(pd_cache_store_meta(s, r2, m, sizeof(m)), 3);
    ck_assert(memcmp(m, "new", 3) == 0);
    assert_body(s, r2, 30000, 5);
    ck_assert_int_eq(pd_cache_store_meta(s, r, m, sizeof(m)), 8);
    ck_assert(memcmp(m, "old-meta", 8) == 0);
    pd_cache_store_release(s, r);
    pd_cache_store_release(s, r2);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.objects, 1);
    ck_assert_uint_eq(st.unlinked, 0);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* ---- cross-process ---- */

/* Pipe helpers used by forked children too: no ck_assert inside (a passing
 * one writes to Check's pipe and races the test's process); a failed read
 * returns 0, which the caller's comparison catches, a failed write aborts. */
static void xwrite(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        abort();
}

static char xread(int fd)
{
    char c = 0;
    if (read(fd, &c, 1) != 1)
        return 0;
    return c;
}

START_TEST(test_collapsed_cross_process)
{
    pd_cache_store *s = mk(256 * PG, MB, 2);
    int to_child[2], to_parent[2];
    ck_assert_int_eq(pipe(to_child), 0);
    ck_assert_int_eq(pipe(to_parent), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pd_cache_store_attach(s, 1);
        pd_cache_writer *w;
        if (pd_cache_store_begin_write(s, "u", 1, &w, NULL) != PD_CACHE_OK)
            _exit(1);
        xwrite(to_parent[1], 'r');
        xread(to_child[0]);
        uint8_t b[300000];
        fill(b, sizeof(b), 9);
        pd_cache_store_set_meta(s, w, "M", 1);
        for (size_t off = 0; off < sizeof(b); off += 30000)
            if (pd_cache_store_append(s, w, b + off, 30000) < 0)
                _exit(2);
        _exit(pd_cache_store_commit(s, w) == 0 ? 0 : 3);
    }
    ck_assert_int_eq(xread(to_parent[0]), 'r');
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r), PD_CACHE_PENDING);
    pd_cache_iter it;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    const void *p;
    size_t n, got = 0;
    int fd = pd_cache_store_notify_fd(s, 0), rc, wakeups = 0;
    uint8_t want[300000];
    fill(want, sizeof(want), 9);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    xwrite(to_child[1], 'g');
    for (;;) {
        rc = pd_cache_store_iter_next(s, r, &it, &p, &n);
        if (rc == PD_CACHE_ITER_DATA) {
            ck_assert(memcmp(p, want + got, n) == 0);
            got += n;
            continue;
        }
        if (rc != PD_CACHE_ITER_AGAIN)
            break;
        if (pd_cache_store_wait(s, r, &it))
            continue;
        /* only the writer in the other process can wake us: a lost wakeup
         * would time out here */
        ck_assert_msg(fd_readable(fd, 10000), "reader not woken");
        drain(fd);
        wakeups++;
    }
    ck_assert_int_eq(rc, PD_CACHE_ITER_END);
    ck_assert_uint_eq(got, sizeof(want));
    /* registered before the writer started: its first progress signalled us,
     * whether or not the loop above ever had to sleep */
    ck_assert(wakeups >= 1 || fd_readable(fd, 0));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pd_cache_store_release(s, r);
    ck_assert(present(s, "u"));
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* Crash points: the child stops at the named hook (telling the parent through
 * a pipe) and is SIGKILLed there. */
static const char *crash_at;
static int crash_fd;

static void crash_hook(const char *where)
{
    if (crash_at && where && strcmp(where, crash_at) == 0) {
        char c = 'x';
        ssize_t r = write(crash_fd, &c, 1);
        (void)r;
        for (;;)
            pause();
    }
}

enum crash_op { OP_WRITE, OP_READ_RELEASE, OP_LOCK, OP_HOLD };

static const struct crash_case {
    const char *hook;
    enum crash_op op;
    int in_lock;        /* killed holding the mutex: next locker recovers */
} crash_cases[] = {
    { "begin:obj", OP_WRITE, 1 },       /* object taken, not yet WRITING */
    { "begin:state", OP_WRITE, 1 },     /* WRITING, handle not yet recorded */
    { "append:link", OP_WRITE, 1 },     /* page linked, lock still held */
    { "append:copy", OP_WRITE, 0 },     /* mid-body, outside the lock */
    { "commit:state", OP_WRITE, 1 },    /* COMPLETE, handle not yet freed */
    { "evict", OP_WRITE, 1 },           /* inside eviction for a new page */
    { "release", OP_READ_RELEASE, 1 },  /* releasing a read reference */
    { NULL, OP_LOCK, 1 },               /* plain lock holder */
    { NULL, OP_HOLD, 0 },               /* holds a writer and a read ref */
};

START_TEST(test_crash_holder)
{
    const struct crash_case *cc = &crash_cases[_i];
    const uint64_t mem = 32 * PG;
    pd_cache_store *s = mk(mem, 8 * PG, 2);
    /* the parent's own objects, filling the cache so that writes evict */
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        ck_assert_int_eq(put(s, key, "m", 3 * PG - 100, (unsigned)i), 0);
    }
    pd_cache_ref *mine;
    ck_assert_int_eq(pd_cache_store_lookup(s, "p9", 2, &mine), PD_CACHE_HIT);
    int sync[2];
    ck_assert_int_eq(pipe(sync), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pd_cache_store_attach(s, 1);
        crash_at = cc->hook;
        crash_fd = sync[1];
        s->hook = crash_hook;
        pd_cache_writer *w;
        pd_cache_ref *r;
        uint8_t b[100000];
        fill(b, sizeof(b), 77);
        switch (cc->op) {
        case OP_WRITE:
            if (pd_cache_store_begin_write(s, "c", 1, &w, NULL) == PD_CACHE_OK) {
                pd_cache_store_set_meta(s, w, "meta", 4);
                pd_cache_store_append(s, w, b, sizeof(b));
                pd_cache_store_commit(s, w);
            }
            break;
        case OP_READ_RELEASE:
            if (pd_cache_store_lookup(s, "p5", 2, &r) == PD_CACHE_HIT)
                pd_cache_store_release(s, r);
            break;
        case OP_LOCK:
            lock(s);
            crash_hook(NULL);
            break;
        case OP_HOLD:
            pd_cache_store_lookup(s, "p4", 2, &r);
            pd_cache_store_lookup(s, "p9", 2, &r);
            pd_cache_store_begin_write(s, "c", 1, &w, NULL);
            pd_cache_store_append(s, w, b, sizeof(b));
            break;
        }
        /* OP_LOCK/OP_HOLD, or a hook never reached: say so and wait */
        char c = cc->op == OP_LOCK || cc->op == OP_HOLD ? 'x' : 'n';
        ssize_t wr = write(sync[1], &c, 1);
        (void)wr;
        for (;;)
            pause();
    }
    if (cc->op == OP_LOCK)
        crash_at = NULL;
    ck_assert_int_eq(xread(sync[0]), 'x');
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));

    int reaped = pd_cache_store_reap_slot(s, 1);
    ck_assert_int_ge(reaped, cc->op == OP_HOLD ? 3 : 0);
    assert_consistent(s);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.recoveries, cc->in_lock ? 1 : 0);
    ck_assert_uint_eq(st.writing, 0);
    ck_assert_uint_eq(st.refs, 1); /* only the parent's */
    /* the parent's reference survived whatever happened */
    assert_body(s, mine, 3 * PG - 100, 9);
    pd_cache_store_release(s, mine);
    /* usable: write, read, and after invalidating everything all space is free */
    ck_assert_int_eq(put(s, "after", "m", 50000, 3), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "after", 5, &r), PD_CACHE_HIT);
    assert_body(s, r, 50000, 3);
    pd_cache_store_release(s, r);
    pd_cache_store_invalidate(s, "after", 5);
    pd_cache_store_invalidate(s, "c", 1);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        pd_cache_store_invalidate(s, key, strlen(key));
    }
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    ck_assert_uint_eq(st.bytes_used, 0);
    assert_consistent(s);
    close(sync[0]);
    close(sync[1]);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_reap_wakes_readers)
{
    /* a writer in slot 1 dies holding no lock; a reader in slot 0 waits */
    pd_cache_store *s = mk(64 * PG, MB, 2);
    int sync[2];
    ck_assert_int_eq(pipe(sync), 0);
    pid_t pid = fork();
    if (pid == 0) {
        pd_cache_writer *w;
        pd_cache_store_attach(s, 1);
        if (pd_cache_store_begin_write(s, "u", 1, &w, NULL) == PD_CACHE_OK)
            pd_cache_store_append(s, w, "part", 4);
        xwrite(sync[1], 'x');
        for (;;)
            pause();
    }
    ck_assert_int_eq(xread(sync[0]), 'x');
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r), PD_CACHE_PENDING);
    pd_cache_iter it;
    const void *p;
    size_t n;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_DATA);
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_AGAIN);
    ck_assert_int_eq(pd_cache_store_wait(s, r, &it), 0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert(!fd_readable(pd_cache_store_notify_fd(s, 0), 0));
    ck_assert_int_eq(pd_cache_store_reap_slot(s, 1), 1);
    ck_assert(fd_readable(pd_cache_store_notify_fd(s, 0), 0));
    ck_assert_int_eq(pd_cache_store_iter_next(s, r, &it, &p, &n), PD_CACHE_ITER_ERROR);
    pd_cache_store_release(s, r);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_handles_exhausted)
{
    pd_cache_store *s = mk(16 * PG, KB, 1);
    ck_assert_int_eq(put(s, "u", "m", 10, 1), 0);
    static pd_cache_ref *refs[PD_CACHE_HANDLES_PER_SLOT];
    for (int i = 0; i < PD_CACHE_HANDLES_PER_SLOT; i++)
        ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &refs[i]), PD_CACHE_HIT);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "u", 1, &r), PD_CACHE_ERROR);
    ck_assert_int_eq(errno, EMFILE);
    pd_cache_writer *w;
    ck_assert_int_eq(pd_cache_store_begin_write(s, "v", 1, &w, NULL), PD_CACHE_ERROR);
    assert_consistent(s);
    for (int i = 0; i < PD_CACHE_HANDLES_PER_SLOT; i++)
        pd_cache_store_release(s, refs[i]);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "v", 1, &w, NULL), PD_CACHE_OK);
    pd_cache_store_abort(s, w);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_no_space_for_writers)
{
    /* every page held by readers or writers: a writer gets ENOSPC, not a hang */
    pd_cache_store *s = mk(4 * PG, 2 * PG, 1);
    pd_cache_writer *w1, *w2;
    static uint8_t b[2 * PG];
    ck_assert_int_eq(pd_cache_store_begin_write(s, "a", 1, &w1, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w1, b, PG * 2 - 100), 0);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "b", 1, &w2, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w2, b, PG * 2), -1);
    ck_assert_int_eq(errno, ENOSPC);
    pd_cache_store_abort(s, w2);
    ck_assert_int_eq(pd_cache_store_commit(s, w1), 0);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.nospace, 1);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* Several workers hammer the store (writes, reads verified against the
 * seed recorded in the meta, invalidations, references held across
 * operations) and are SIGKILLed at whatever instant they have reached; the
 * master reaps their slots and restarts them. The store must stay consistent
 * and, at the end, give all its space back. */
static void worker_loop(pd_cache_store *s, int slot, int progress_fd, unsigned seed)
{
    pd_cache_store_attach(s, slot);
    pd_cache_ref *held[4] = { 0 };
    static uint8_t body[5 * PG];
    for (unsigned op = 0;; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        char key[8];
        snprintf(key, sizeof(key), "k%u", r % 16);
        switch (r % 5) {
        case 0:
        case 1: {
            pd_cache_writer *w;
            if (pd_cache_store_begin_write(s, key, strlen(key), &w, NULL) != PD_CACHE_OK)
                break;
            char meta[32];
            unsigned bseed = r / 7;
            size_t n = (r / 16) % sizeof(body);
            snprintf(meta, sizeof(meta), "%u %zu", bseed, n);
            fill(body, n, bseed);
            if (pd_cache_store_set_meta(s, w, meta, strlen(meta)) < 0 ||
                pd_cache_store_append(s, w, body, n / 2) < 0 ||
                pd_cache_store_append(s, w, body + n / 2, n - n / 2) < 0 || (r & 64)) {
                pd_cache_store_abort(s, w);
                break;
            }
            pd_cache_store_commit(s, w);
            break;
        }
        case 2:
        case 3: {
            pd_cache_ref *ref;
            if (pd_cache_store_lookup(s, key, strlen(key), &ref) != PD_CACHE_HIT)
                break;
            char meta[32] = "";
            unsigned bseed;
            size_t n;
            if (pd_cache_store_meta(s, ref, meta, sizeof(meta) - 1) < 0 || sscanf(meta, "%u %zu", &bseed, &n) != 2)
                _exit(9);
            uint8_t *got;
            int last;
            size_t len = read_body(s, ref, &got, &last);
            fill(body, n, bseed);
            if (last != PD_CACHE_ITER_END || len != n || memcmp(got, body, n) != 0)
                _exit(10);
            free(got);
            unsigned h = r % 4;
            if (held[h])
                pd_cache_store_release(s, held[h]);
            held[h] = (r & 1) ? ref : NULL;
            if (!held[h])
                pd_cache_store_release(s, ref);
            break;
        }
        case 4:
            pd_cache_store_invalidate(s, key, strlen(key));
            break;
        }
        if (op % 16 == 15) {
            char c = 'p';
            if (write(progress_fd, &c, 1) != 1)
                _exit(11);
        }
    }
}

START_TEST(test_random_kills)
{
    enum { NW = 3, ROUNDS = 12 };
    pd_cache_store *s = mk(48 * PG, 5 * PG, NW + 1);
    int pipes[NW][2];
    pid_t pids[NW];
    for (int i = 0; i < NW; i++)
        ck_assert_int_eq(pipe(pipes[i]), 0);
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < NW; i++) {
            pids[i] = fork();
            ck_assert_int_ge(pids[i], 0);
            if (pids[i] == 0)
                worker_loop(s, i + 1, pipes[i][1], (unsigned)(round * 7919 + i * 104729 + 1));
        }
        /* each worker has done at least (round % 4 + 1) * 16 operations */
        for (int i = 0; i < NW; i++)
            for (int k = 0; k <= round % 4; k++)
                ck_assert_int_eq(xread(pipes[i][0]), 'p');
        for (int i = 0; i < NW; i++) {
            int status;
            ck_assert_int_eq(kill(pids[i], SIGKILL), 0);
            ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
            ck_assert_msg(WIFSIGNALED(status), "worker %d exited by itself (%d): corrupt data seen", i,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            pd_cache_store_reap_slot(s, i + 1);
        }
        /* drain the progress bytes the killed workers left */
        for (int i = 0; i < NW; i++) {
            struct pollfd pfd = { .fd = pipes[i][0], .events = POLLIN };
            char buf[4096];
            while (poll(&pfd, 1, 0) == 1 && read(pipes[i][0], buf, sizeof(buf)) > 0)
                ;
        }
        assert_consistent(s);
        pd_cache_stats st;
        pd_cache_store_stats(s, &st);
        ck_assert_uint_eq(st.refs, 0);
        ck_assert_uint_eq(st.writing, 0);
        ck_assert_uint_eq(st.unlinked, 0);
        ck_assert_uint_le(st.bytes_used, st.cache_mem);
    }
    char key[8];
    for (int k = 0; k < 16; k++) {
        snprintf(key, sizeof(key), "k%d", k);
        pd_cache_store_invalidate(s, key, strlen(key));
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    ck_assert_uint_gt(st.commits, 0);
    ck_assert_uint_gt(st.hits, 0);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* Kill a worker at its K-th hook point, for every K along a fixed sequence
 * of operations, on one store that accumulates whatever each death left:
 * deaths inside and outside the lock, in every operation, in turn. */
static int hook_countdown;

static void countdown_hook(const char *where)
{
    (void)where;
    if (--hook_countdown == 0) {
        char c = 'x';
        ssize_t r = write(crash_fd, &c, 1);
        (void)r;
        for (;;)
            pause();
    }
}

static void scripted_ops(pd_cache_store *s)
{
    static uint8_t b[3 * PG];
    pd_cache_ref *r1 = NULL, *r2 = NULL;
    pd_cache_writer *w;
    char key[8];
    for (int i = 0; i < 6; i++) {
        snprintf(key, sizeof(key), "s%d", i % 4);
        if (pd_cache_store_begin_write(s, key, strlen(key), &w, NULL) == PD_CACHE_OK) {
            char meta[16];
            snprintf(meta, sizeof(meta), "%d", i);
            fill(b, sizeof(b), (unsigned)i);
            if (pd_cache_store_set_meta(s, w, meta, strlen(meta)) == 0 &&
                pd_cache_store_append(s, w, b, sizeof(b) - 1000 * (size_t)i) == 0)
                pd_cache_store_commit(s, w);
            else
                pd_cache_store_abort(s, w);
        }
        if (pd_cache_store_lookup(s, key, strlen(key), i % 2 ? &r1 : &r2) == PD_CACHE_HIT && i == 3)
            pd_cache_store_release(s, r2), r2 = NULL;
        if (i == 4)
            pd_cache_store_invalidate(s, "s1", 2);
    }
    pd_cache_store_release(s, r1);
}

START_TEST(test_kill_at_each_step)
{
    pd_cache_store *s = mk(16 * PG, 4 * PG, 2);
    int sync[2];
    ck_assert_int_eq(pipe(sync), 0);
    int k, iters, reached_end = 0;
    uint64_t recoveries_seen = 0;
    /* every hook point at first, then a growing stride: the ~2,000 points
     * (a hook per block linked, copied, freed) in a bounded number of kills */
    for (k = 1, iters = 0; !reached_end && iters < 600; k += 1 + (k > 200 ? k / 32 : 0), iters++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            pd_cache_store_attach(s, 1);
            crash_fd = sync[1];
            hook_countdown = k;
            s->hook = countdown_hook;
            scripted_ops(s);
            char c = 'e';   /* finished before the K-th hook */
            ssize_t wr = write(sync[1], &c, 1);
            (void)wr;
            for (;;)
                pause();
        }
        reached_end = xread(sync[0]) == 'e';
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        pd_cache_store_reap_slot(s, 1);
        assert_consistent(s);
        pd_cache_stats st;
        pd_cache_store_stats(s, &st);
        ck_assert_uint_eq(st.refs, 0);
        ck_assert_uint_eq(st.writing, 0);
        recoveries_seen = st.recoveries;
        /* survivors are intact */
        for (int i = 0; i < 4; i++) {
            char key[8];
            snprintf(key, sizeof(key), "s%d", i);
            pd_cache_ref *r;
            if (pd_cache_store_lookup(s, key, strlen(key), &r) != PD_CACHE_HIT)
                continue;
            char meta[16] = "";
            ck_assert_int_gt(pd_cache_store_meta(s, r, meta, sizeof(meta) - 1), 0);
            int v = atoi(meta);
            assert_body(s, r, 3 * PG - 1000 * (size_t)v, (unsigned)v);
            pd_cache_store_release(s, r);
        }
    }
    ck_assert_msg(reached_end, "the script never finished");
    ck_assert_int_gt(iters, 20);             /* many distinct death points */
    ck_assert_uint_gt(recoveries_seen, 5);  /* several of them inside the lock */
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "s%d", i);
        pd_cache_store_invalidate(s, key, strlen(key));
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.blocks_free, st.blocks_total);
    assert_consistent(s);
    close(sync[0]);
    close(sync[1]);
    pd_cache_store_destroy(s);
}
END_TEST


START_TEST(test_policy_names)
{
    enum pd_cache_policy p;
    ck_assert_int_eq(pd_cache_policy_parse("lru", &p), 0);
    ck_assert_int_eq(p, PD_CACHE_POLICY_LRU);
    ck_assert_int_eq(pd_cache_policy_parse("heap LRU", &p), 0);
    ck_assert_int_eq(p, PD_CACHE_POLICY_LRU);
    ck_assert_int_eq(pd_cache_policy_parse("heap GDSF", &p), 0);
    ck_assert_int_eq(p, PD_CACHE_POLICY_GDSF);
    ck_assert_int_eq(pd_cache_policy_parse("heap lfuda", &p), 0);
    ck_assert_int_eq(p, PD_CACHE_POLICY_LFUDA);
    ck_assert_int_eq(pd_cache_policy_parse("s3fifo", &p), 0);
    ck_assert_int_eq(p, PD_CACHE_POLICY_S3FIFO);
    ck_assert_int_eq(pd_cache_policy_parse("heap", &p), -1);
    ck_assert_int_eq(pd_cache_policy_parse("lfu", &p), -1);
    for (int i = 0; i < PD_CACHE_POLICY_COUNT; i++) {
        ck_assert_int_eq(pd_cache_policy_parse(pd_cache_policy_name((enum pd_cache_policy)i), &p), 0);
        ck_assert_int_eq(p, i);
    }
}
END_TEST

/* The measure, on the store itself: 16 MB holds 5,000 objects of a
 * 2 KB body with a 300-byte head (5 blocks each), and hands every one back. */
START_TEST(test_small_objects_fit)
{
    pd_cache_store *s = mk(16 * MB, MB, 1);
    static char meta[300];
    memset(meta, 'h', sizeof(meta) - 1);
    char key[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "http://origin.test/small/%d", i);
        ck_assert_int_eq(put(s, key, meta, 2048, (unsigned)i), 0);
    }
    int hits = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "http://origin.test/small/%d", i);
        hits += present(s, key);
    }
    ck_assert_int_eq(hits, 5000);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.evictions, 0);
    ck_assert_uint_eq(st.objects, 5000);
    /* rounding: under one block per object */
    ck_assert_uint_lt(st.object_blocks * PD_CACHE_BLOCK_SIZE - st.stored_bytes,
                      5000u * PD_CACHE_BLOCK_SIZE);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* A body written into free space comes back in few long extents. */
START_TEST(test_contiguous_extents)
{
    pd_cache_store *s = mk(8 * MB, 2 * MB, 1);
    ck_assert_int_eq(put(s, "small", "m", 700, 1), 0);
    ck_assert_int_eq(put(s, "big", "m", MB, 2), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "big", 3, &r), PD_CACHE_HIT);
    pd_cache_iter it;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    const void *p;
    size_t n;
    int extents = 0;
    while (pd_cache_store_iter_next(s, r, &it, &p, &n) == PD_CACHE_ITER_DATA)
        extents++;
    /* 1 MB in extents as long as allowed: the first one shortened by the
     * block where the key and meta end, so one more than the minimum */
    ck_assert_int_le(extents, MB / PD_CACHE_MAX_EXTENT + 1);
    assert_body(s, r, MB, 2);
    /* a range inside the object, across extents */
    pd_cache_store_iter_init(s, r, &it, 300000, 700001);
    uint8_t *want = malloc(MB);
    fill(want, MB, 2);
    size_t got = 0;
    while (pd_cache_store_iter_next(s, r, &it, &p, &n) == PD_CACHE_ITER_DATA) {
        ck_assert(memcmp(p, want + 300000 + got, n) == 0);
        got += n;
    }
    ck_assert_uint_eq(got, 400001);
    free(want);
    pd_cache_store_release(s, r);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/*
 * Pages lent to the kernel by reference (splice from the memfd, as sendfile
 * does for hits) keep their bytes after the object is freed and its blocks
 * are written by others: freeing a lent object punches its pages out of the
 * file. The control shows what the punch prevents: the same pages spliced
 * without pd_cache_store_lend show the new object's bytes.
 */
static size_t lend_into_pipe(pd_cache_store *s, const char *key, int pipe_w, int lend,
                             uint8_t *copy)
{
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, key, strlen(key), &r), PD_CACHE_HIT);
    if (lend)
        pd_cache_store_lend(s, r);
    pd_cache_iter it;
    pd_cache_store_iter_init(s, r, &it, 0, UINT64_MAX);
    const void *p;
    size_t n, total = 0, pg = pd_cache_store_page_size(s);
    while (pd_cache_store_iter_next(s, r, &it, &p, &n) == PD_CACHE_ITER_DATA) {
        uintptr_t a = ((uintptr_t)p + pg - 1) / pg * pg, b = ((uintptr_t)p + n) / pg * pg;
        if (b <= a)
            continue;
        int64_t off;
        int fd = pd_cache_store_file(s, (const void *)a, &off);
        ck_assert_int_ge(fd, 0);
        loff_t lo = off;
        ssize_t k = splice(fd, &lo, pipe_w, NULL, b - a, SPLICE_F_NONBLOCK);
        ck_assert_int_eq(k, (ssize_t)(b - a));
        memcpy(copy + total, (const void *)a, b - a);
        total += b - a;
    }
    pd_cache_store_release(s, r);
    return total;
}

static void reuse_all_blocks(pd_cache_store *s, const char *victim)
{
    ck_assert_int_eq(pd_cache_store_invalidate(s, victim, strlen(victim)), 1);
    char key[32];
    for (unsigned i = 0; i < 12; i++) {
        snprintf(key, sizeof key, "filler%u", i);
        ck_assert_int_eq(put(s, key, "m", 200 * KB, 100 + i), 0);
    }
}

START_TEST(test_lent_pages_survive_reuse)
{
    pd_cache_store *s = mk(MB, 512 * KB, 1);
    int64_t off0;
    if (pd_cache_store_file(s, s->base, &off0) < 0) {
        pd_cache_store_destroy(s);
        return; /* no memfd here: nothing is ever lent */
    }
    uint8_t *copy = malloc(MB), *got = malloc(MB);
    for (int lend = 1; lend >= 0; lend--) {
        int pfd[2];
        ck_assert_int_eq(pipe(pfd), 0);
        ck_assert_int_ge(fcntl(pfd[1], F_SETPIPE_SZ, 512 * KB), 512 * KB);
        ck_assert_int_eq(put(s, "lent", "meta", 300 * KB, 7), 0);
        size_t total = lend_into_pipe(s, "lent", pfd[1], lend, copy);
        ck_assert_uint_ge(total, 128 * KB);
        pd_cache_stats st0, st1;
        pd_cache_store_stats(s, &st0);
        reuse_all_blocks(s, "lent");
        pd_cache_store_stats(s, &st1);
        size_t k = 0;
        while (k < total) {
            ssize_t r = read(pfd[0], got + k, total - k);
            ck_assert_int_gt(r, 0);
            k += (size_t)r;
        }
        if (lend) {
            ck_assert_msg(memcmp(got, copy, total) == 0, "lent pages changed under the pipe");
            ck_assert_uint_gt(st1.punches, st0.punches);
        } else {
            ck_assert_uint_eq(st1.punches, st0.punches);
            ck_assert_msg(memcmp(got, copy, total) != 0,
                          "control: pages not lent should show the reused blocks' bytes");
        }
        close(pfd[0]);
        close(pfd[1]);
    }
    free(copy);
    free(got);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* Keys longer than a block: found, distinguished, rewritten. */
START_TEST(test_long_keys)
{
    pd_cache_store *s = mk(4 * MB, MB, 1);
    static char k1[PD_CACHE_MAX_KEY], k2[PD_CACHE_MAX_KEY];
    memset(k1, 'a', sizeof(k1));
    memset(k2, 'a', sizeof(k2));
    k2[sizeof(k2) - 1] = 'b'; /* differs in the last byte only */
    pd_cache_writer *w;
    ck_assert_int_eq(pd_cache_store_begin_write(s, k1, sizeof(k1), &w, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w, "one", 3), 0);
    ck_assert_int_eq(pd_cache_store_commit(s, w), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, k2, sizeof(k2), &r), PD_CACHE_MISS);
    ck_assert_int_eq(pd_cache_store_lookup(s, k1, sizeof(k1), &r), PD_CACHE_HIT);
    ck_assert_int_eq(pd_cache_store_rewrite_meta(s, r, "new", 3), 0);
    pd_cache_store_release(s, r);
    ck_assert_int_eq(pd_cache_store_lookup(s, k1, sizeof(k1), &r), PD_CACHE_HIT);
    char meta[8];
    ck_assert_int_eq(pd_cache_store_meta(s, r, meta, sizeof(meta)), 3);
    ck_assert(memcmp(meta, "new", 3) == 0);
    pd_cache_store_release(s, r);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* The scan: a hot set of 300 asked four times, then 20,000 other
 * objects once, then the 300 again: returns the number of the 300 still
 * cached (a 16 MB store of 2 KB objects holds ~6,500). */
static int hot_set_after_scan(enum pd_cache_policy pol)
{
    test_policy = pol;
    pd_cache_store *s = mk(16 * MB, MB, 1);
    static char meta[300];
    memset(meta, 'h', sizeof(meta) - 1);
    char key[64];
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 300; i++) {
            snprintf(key, sizeof(key), "http://origin.test/hot/%d", i);
            if (!present(s, key))
                ck_assert_int_eq(put(s, key, meta, 2048, (unsigned)i), 0);
        }
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "http://origin.test/scan/%d", i);
        if (!present(s, key))
            ck_assert_int_eq(put(s, key, meta, 2048, (unsigned)i), 0);
    }
    int hits = 0;
    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "http://origin.test/hot/%d", i);
        hits += present(s, key);
    }
    assert_consistent(s);
    pd_cache_store_destroy(s);
    return hits;
}

START_TEST(test_s3fifo_scan_resistant)
{
    ck_assert_int_ge(hot_set_after_scan(PD_CACHE_POLICY_S3FIFO), 270);
}
END_TEST

START_TEST(test_lru_not_scan_resistant)
{
    /* the contrast that makes the test above mean something */
    ck_assert_int_eq(hot_set_after_scan(PD_CACHE_POLICY_LRU), 0);
}
END_TEST

/* S3-FIFO: an object dropped from the small FIFO and fetched again soon
 * goes to the main FIFO (counted as a ghost hit). */
START_TEST(test_s3fifo_ghost)
{
    test_policy = PD_CACHE_POLICY_S3FIFO;
    pd_cache_store *s = mk(MB, 64 * KB, 1);
    char key[32];
    /* 1 MB of 8 KB objects: the 200 writes overflow it; g0 was dropped */
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "g%d", i);
        ck_assert_int_eq(put(s, key, "m", 8 * KB - 200, (unsigned)i), 0);
    }
    ck_assert(!present(s, "g0"));
    ck_assert_int_eq(put(s, "g0", "m", 8 * KB - 200, 0), 0);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_ge(st.ghost_hits, 1);
    ck_assert_uint_ge(st.main_objects, 1);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* GDSF: among objects asked as often, the big one goes first. */
START_TEST(test_gdsf_prefers_small)
{
    test_policy = PD_CACHE_POLICY_GDSF;
    pd_cache_store *s = mk(256 * KB, 128 * KB, 1);
    ck_assert_int_eq(put(s, "big", "m", 100 * KB, 1), 0);
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert_int_eq(put(s, key, "m", 4 * KB, (unsigned)i), 0);
    }
    /* 100 KB + 80 KB used; another 100 KB needs room: big goes, small stay */
    ck_assert_int_eq(put(s, "new", "m", 100 * KB, 2), 0);
    ck_assert(!present(s, "big"));
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        ck_assert(present(s, key));
    }
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

/* LFUDA: the object asked most stays, whatever its age and size. */
START_TEST(test_lfuda_prefers_frequent)
{
    test_policy = PD_CACHE_POLICY_LFUDA;
    pd_cache_store *s = mk(256 * KB, 128 * KB, 1);
    ck_assert_int_eq(put(s, "popular", "m", 60 * KB, 1), 0);
    /* 20 hits: ahead of the others' key until the age passes 20, which
     * takes far more than the 40 objects below (about 1 per cache turnover) */
    for (int i = 0; i < 20; i++)
        ck_assert(present(s, "popular"));
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "o%d", i);
        ck_assert_int_eq(put(s, key, "m", 30 * KB, (unsigned)i), 0);
    }
    ck_assert(present(s, "popular"));
    ck_assert(!present(s, "o0"));
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

static void use_s3fifo(void)
{
    test_policy = PD_CACHE_POLICY_S3FIFO;
}

static void use_lru(void)
{
    test_policy = PD_CACHE_POLICY_LRU;
}

static void use_gdsf(void)
{
    test_policy = PD_CACHE_POLICY_GDSF;
}

static void use_lfuda(void)
{
    test_policy = PD_CACHE_POLICY_LFUDA;
}

/* The store's contract, under one policy. */
static TCase *generic_tcase(const char *name, void (*setup)(void), int crashes)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_basic_roundtrip);
    tcase_add_test(tc, test_fill_three_times);
    tcase_add_test(tc, test_referenced_survive);
    tcase_add_test(tc, test_max_object);
    tcase_add_test(tc, test_rewrite_meta);
    tcase_add_test(tc, test_no_space_for_writers);
    tcase_add_test(tc, test_small_objects_fit);
    if (crashes) {
        tcase_add_loop_test(tc, test_crash_holder, 0, sizeof(crash_cases) / sizeof(crash_cases[0]));
        tcase_add_test(tc, test_random_kills);
        tcase_add_test(tc, test_kill_at_each_step);
    }
    return tc;
}

static Suite *cache_store_suite(void)
{
    Suite *s = suite_create("cache_store");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_policy_names);
    tcase_add_test(tc, test_lru_order);
    tcase_add_test(tc, test_contiguous_extents);
    tcase_add_test(tc, test_lent_pages_survive_reuse);
    tcase_add_test(tc, test_long_keys);
    tcase_add_test(tc, test_s3fifo_scan_resistant);
    tcase_add_test(tc, test_lru_not_scan_resistant);
    tcase_add_test(tc, test_s3fifo_ghost);
    tcase_add_test(tc, test_gdsf_prefers_small);
    tcase_add_test(tc, test_lfuda_prefers_frequent);
    tcase_add_test(tc, test_collapsed_same_process);
    tcase_add_test(tc, test_abort_wakes_with_error);
    tcase_add_test(tc, test_invalidate_in_progress);
    tcase_add_test(tc, test_collapsed_cross_process);
    tcase_add_test(tc, test_reap_wakes_readers);
    tcase_add_test(tc, test_handles_exhausted);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, generic_tcase("s3fifo", use_s3fifo, 1));
    suite_add_tcase(s, generic_tcase("lru", use_lru, 0));
    suite_add_tcase(s, generic_tcase("gdsf", use_gdsf, 1));
    suite_add_tcase(s, generic_tcase("lfuda", use_lfuda, 0));
    return s;
}

int main(void)
{
    return pd_check_run(cache_store_suite());
}
