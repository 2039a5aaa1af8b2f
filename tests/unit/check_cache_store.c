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
#include <sys/wait.h>
#include <unistd.h>

#include "cache_store.c"

#define KB 1024u
#define MB (1024u * 1024u)

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

/* Read the whole body of ref into a malloc'd buffer; returns length. */
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
        ck_assert_uint_le(n, PD_CACHE_PAGE_SIZE);
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
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 2);
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
    /* key + meta + body = 40026 bytes -> 3 pages */
    ck_assert_uint_eq(stt.bytes_used, 3 * PD_CACHE_PAGE_SIZE);
    ck_assert_uint_eq(stt.body_bytes, 40000);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_bad_args)
{
    ck_assert_ptr_null(pd_cache_store_create(2 * PD_CACHE_PAGE_SIZE, KB, 1));
    ck_assert_ptr_null(pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, KB, 0));
    ck_assert_ptr_null(pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, KB, PD_CACHE_MAX_WORKERS + 1));
    ck_assert_ptr_null(pd_cache_store_create(4 * MB, 5 * MB, 1));
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, KB, 1);
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
    /* 8 pages, one page per object: 8 objects fill the cache */
    pd_cache_store *s = pd_cache_store_create(8 * PD_CACHE_PAGE_SIZE, 4 * PD_CACHE_PAGE_SIZE, 1);
    char key[16];
    for (int i = 0; i < 8; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(put(s, key, "m", 1000, (unsigned)i), 0);
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.pages_free, 0);
    ck_assert_uint_eq(st.evictions, 0);
    /* touch k0 and k2: the least recently used are now k1, k3, k4 ... */
    ck_assert(present(s, "k0"));
    ck_assert(present(s, "k2"));
    ck_assert_int_eq(put(s, "n1", "m", 1000, 100), 0);
    ck_assert(!present(s, "k1"));
    ck_assert(present(s, "k0"));
    ck_assert_int_eq(put(s, "n2", "m", 1000, 101), 0);
    ck_assert(!present(s, "k3"));
    ck_assert(present(s, "k2"));
    /* a 3-page object evicts the next three in LRU order: k4 k5 k6 */
    ck_assert_int_eq(put(s, "big", "m", 2 * PD_CACHE_PAGE_SIZE + 10, 102), 0);
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
    const uint64_t mem = 64 * PD_CACHE_PAGE_SIZE;
    pd_cache_store *s = pd_cache_store_create(mem, 8 * PD_CACHE_PAGE_SIZE, 1);
    uint64_t written = 0;
    char key[32];
    for (unsigned i = 0; written < 3 * mem; i++) {
        size_t n = 1000 + (i * 7919) % (5 * PD_CACHE_PAGE_SIZE);
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
    pd_cache_store *s = pd_cache_store_create(16 * PD_CACHE_PAGE_SIZE, 4 * PD_CACHE_PAGE_SIZE, 1);
    ck_assert_int_eq(put(s, "held", "m", 3 * PD_CACHE_PAGE_SIZE, 7), 0);
    pd_cache_ref *r;
    ck_assert_int_eq(pd_cache_store_lookup(s, "held", 4, &r), PD_CACHE_HIT);
    char key[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        ck_assert_int_eq(put(s, key, "m", 2 * PD_CACHE_PAGE_SIZE, (unsigned)i), 0);
    }
    /* held is the least recently used but referenced: never evicted */
    ck_assert(present(s, "held"));
    assert_body(s, r, 3 * PD_CACHE_PAGE_SIZE, 7);
    /* invalidation unlinks it; the reader keeps reading */
    ck_assert_int_eq(pd_cache_store_invalidate(s, "held", 4), 1);
    ck_assert(!present(s, "held"));
    for (int i = 40; i < 60; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        ck_assert_int_eq(put(s, key, "m", 2 * PD_CACHE_PAGE_SIZE, (unsigned)i), 0);
    }
    assert_body(s, r, 3 * PD_CACHE_PAGE_SIZE, 7);
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.unlinked, 1);
    assert_consistent(s);
    uint64_t free_before = st.pages_free;
    pd_cache_store_release(s, r);
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.unlinked, 0);
    ck_assert_uint_eq(st.pages_free, free_before + 4);
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
    pd_cache_store *s = pd_cache_store_create(4 * MB, MB, 1);
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
    ck_assert_uint_eq(st.bytes_used, 65 * PD_CACHE_PAGE_SIZE);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_collapsed_same_process)
{
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 1);
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
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 1);
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
    ck_assert_uint_eq(st.pages_free, st.pages_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_invalidate_in_progress)
{
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 1);
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
    ck_assert_uint_eq(st.pages_free, st.pages_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_rewrite_meta)
{
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 1);
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

static void xwrite(int fd, char c)
{
    ck_assert_int_eq(write(fd, &c, 1), 1);
}

static char xread(int fd)
{
    char c = 0;
    ck_assert_int_eq(read(fd, &c, 1), 1);
    return c;
}

START_TEST(test_collapsed_cross_process)
{
    pd_cache_store *s = pd_cache_store_create(256 * PD_CACHE_PAGE_SIZE, MB, 2);
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
    const uint64_t mem = 32 * PD_CACHE_PAGE_SIZE;
    pd_cache_store *s = pd_cache_store_create(mem, 8 * PD_CACHE_PAGE_SIZE, 2);
    /* the parent's own objects, filling the cache so that writes evict */
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        ck_assert_int_eq(put(s, key, "m", 3 * PD_CACHE_PAGE_SIZE - 100, (unsigned)i), 0);
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
    assert_body(s, mine, 3 * PD_CACHE_PAGE_SIZE - 100, 9);
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
    ck_assert_uint_eq(st.pages_free, st.pages_total);
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
    pd_cache_store *s = pd_cache_store_create(64 * PD_CACHE_PAGE_SIZE, MB, 2);
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
    ck_assert_uint_eq(st.pages_free, st.pages_total);
    assert_consistent(s);
    pd_cache_store_destroy(s);
}
END_TEST

START_TEST(test_handles_exhausted)
{
    pd_cache_store *s = pd_cache_store_create(16 * PD_CACHE_PAGE_SIZE, KB, 1);
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
    pd_cache_store *s = pd_cache_store_create(4 * PD_CACHE_PAGE_SIZE, 2 * PD_CACHE_PAGE_SIZE, 1);
    pd_cache_writer *w1, *w2;
    static uint8_t b[2 * PD_CACHE_PAGE_SIZE];
    ck_assert_int_eq(pd_cache_store_begin_write(s, "a", 1, &w1, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w1, b, PD_CACHE_PAGE_SIZE * 2 - 100), 0);
    ck_assert_int_eq(pd_cache_store_begin_write(s, "b", 1, &w2, NULL), PD_CACHE_OK);
    ck_assert_int_eq(pd_cache_store_append(s, w2, b, PD_CACHE_PAGE_SIZE * 2), -1);
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
    static uint8_t body[5 * PD_CACHE_PAGE_SIZE];
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
    pd_cache_store *s = pd_cache_store_create(48 * PD_CACHE_PAGE_SIZE, 5 * PD_CACHE_PAGE_SIZE, NW + 1);
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
    ck_assert_uint_eq(st.pages_free, st.pages_total);
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
    static uint8_t b[3 * PD_CACHE_PAGE_SIZE];
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
    pd_cache_store *s = pd_cache_store_create(16 * PD_CACHE_PAGE_SIZE, 4 * PD_CACHE_PAGE_SIZE, 2);
    int sync[2];
    ck_assert_int_eq(pipe(sync), 0);
    int k, reached_end = 0;
    uint64_t recoveries_seen = 0;
    for (k = 1; !reached_end && k < 500; k++) {
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
            assert_body(s, r, 3 * PD_CACHE_PAGE_SIZE - 1000 * (size_t)v, (unsigned)v);
            pd_cache_store_release(s, r);
        }
    }
    ck_assert_msg(reached_end, "the script never finished");
    ck_assert_int_gt(k, 20);                 /* many distinct death points */
    ck_assert_uint_gt(recoveries_seen, 5);  /* several of them inside the lock */
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof(key), "s%d", i);
        pd_cache_store_invalidate(s, key, strlen(key));
    }
    pd_cache_stats st;
    pd_cache_store_stats(s, &st);
    ck_assert_uint_eq(st.pages_free, st.pages_total);
    assert_consistent(s);
    close(sync[0]);
    close(sync[1]);
    pd_cache_store_destroy(s);
}
END_TEST

static Suite *cache_store_suite(void)
{
    Suite *s = suite_create("cache_store");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_basic_roundtrip);
    tcase_add_test(tc, test_bad_args);
    tcase_add_test(tc, test_lru_order);
    tcase_add_test(tc, test_fill_three_times);
    tcase_add_test(tc, test_referenced_survive);
    tcase_add_test(tc, test_max_object);
    tcase_add_test(tc, test_collapsed_same_process);
    tcase_add_test(tc, test_abort_wakes_with_error);
    tcase_add_test(tc, test_invalidate_in_progress);
    tcase_add_test(tc, test_rewrite_meta);
    tcase_add_test(tc, test_collapsed_cross_process);
    tcase_add_loop_test(tc, test_crash_holder, 0, sizeof(crash_cases) / sizeof(crash_cases[0]));
    tcase_add_test(tc, test_reap_wakes_readers);
    tcase_add_test(tc, test_handles_exhausted);
    tcase_add_test(tc, test_no_space_for_writers);
    tcase_add_test(tc, test_random_kills);
    tcase_add_test(tc, test_kill_at_each_step);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cache_store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
