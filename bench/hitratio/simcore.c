/* bench/hitratio/simcore.c: the engine of bench/hitratio/sim, a trace-driven cache simulator.
 *
 *   hitratio-sim TRACE --cache BYTES[,BYTES...] --policies NAME[,NAME...]
 *                [--block B] [--overhead H] [--tail K]
 *
 * TRACE is a file of requests, each two little-endian uint32: object id, body size in bytes
 * (the same id always has the same size). Every policy runs over the whole trace once per
 * cache size, from an empty cache, counting capacity as a store would: an object costs
 * ceil((H + size) / B) * B bytes, H being the key and the stored headers. An object costing
 * more than the cache is never admitted (a miss each time).
 *
 * Prints one tab-separated line per policy and cache size:
 *   policy cache_bytes requests hits bytes hit_bytes tail_requests tail_hits seconds
 * tail_* count the last K requests only (the scenarios' second pass or hot set after a scan).
 *
 * Policies (all byte-capacity based):
 *   lru, fifo           one list; LRU moves a hit to the head, FIFO does not
 *   sieve               Zhang et al., NSDI 2024: FIFO + visited bit + a hand that sweeps from
 *                       the tail and spares (and clears) visited objects
 *   s3fifo, s3fifo2     Yang et al., SOSP 2023: small FIFO (10% of the bytes), main FIFO (90%),
 *                       ghost FIFO of ids (as many bytes as main), 2-bit frequency; an object
 *                       leaves small for main when its frequency is >= 1 (s3fifo) or >= 2
 *                       (s3fifo2, the paper's "freq > 1"), else goes to the ghost; a miss on a
 *                       ghost id enters main; main reinserts objects with frequency > 0 and
 *                       decrements it. As in the paper's Algorithm 1, an object keeps its
 *                       frequency when it moves to main, and a new object starts at 0.
 *   wtinylfu            Einziger et al. (Caffeine): window LRU (1% of the bytes), main SLRU
 *                       (probation 20% / protected 80%), a count-min sketch of 4-bit counters
 *                       halved every 10 x (expected objects) accesses; a window victim enters
 *                       main only if its estimated frequency beats each main victim it displaces
 *   gdsf, lfuda         Squid's heap policies (src/repl/heap/store_heap_replacement.cc): a
 *                       min-heap on key = L + refcount / size (GDSF) or L + refcount (LFUDA),
 *                       L = key of the last evicted object (the dynamic age); a hit recomputes
 *                       the key. Squid's recency tie-breaker (< 1) is left out: with logical
 *                       time it would only reorder equal keys. size is the object's cost here
 *                       (Squid's key takes the entry's stored size, swap_file_sz).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NIL UINT32_MAX

typedef struct {
    uint32_t id, size;
} req;

/* A doubly linked list threaded through the per-object prev/next arrays: an object is in at
 * most one list at a time, so one pair of arrays serves all the lists of a policy. */
typedef struct {
    uint32_t head, tail;
    uint64_t bytes, count;
} list;

typedef struct {
    const char *name;
    uint64_t cap;
    uint32_t n_ids;
    uint32_t *prev, *next;
    uint8_t *where;   /* 0 = not cached; else the list (or 1 = in the heap) */
    uint8_t *freq;
    uint32_t *cost;   /* cost of the object when it entered */
    list l[4];        /* indexed by where (l[0] unused) */
    uint64_t used;    /* bytes of cached objects (ghost entries excluded) */
    /* sieve */
    uint32_t hand;
    /* s3fifo */
    uint64_t cap_s, cap_m;
    int threshold;
    /* wtinylfu */
    uint64_t cap_w, cap_main, cap_prot;
    uint8_t *sketch;
    uint64_t sk_mask, sk_added, sk_sample;
    /* heap policies */
    int lfuda;
    double age;
    double *key;
    uint32_t *refs, *hpos, *heap;
    uint32_t hn;
} cache;

static uint64_t cost_of(uint32_t size, uint64_t block, uint64_t overhead)
{
    uint64_t b = overhead + size;
    return (b + block - 1) / block * block;
}

/* ---------------------------------------------------------------- lists */

static void l_push(cache *c, int w, uint32_t id)
{
    list *l = &c->l[w];
    c->prev[id] = NIL;
    c->next[id] = l->head;
    if (l->head != NIL)
        c->prev[l->head] = id;
    l->head = id;
    if (l->tail == NIL)
        l->tail = id;
    l->bytes += c->cost[id];
    l->count++;
    c->where[id] = (uint8_t)w;
}

static void l_remove(cache *c, uint32_t id)
{
    list *l = &c->l[c->where[id]];
    uint32_t p = c->prev[id], n = c->next[id];
    if (p != NIL)
        c->next[p] = n;
    else
        l->head = n;
    if (n != NIL)
        c->prev[n] = p;
    else
        l->tail = p;
    l->bytes -= c->cost[id];
    l->count--;
    c->where[id] = 0;
}

/* Removes id from the cache (not into a ghost). */
static void drop(cache *c, uint32_t id)
{
    l_remove(c, id);
    c->used -= c->cost[id];
}

/* ---------------------------------------------------------------- lru, fifo */

static int lru_access(cache *c, uint32_t id, uint64_t cost, int move)
{
    if (c->where[id]) {
        if (move && c->l[1].head != id) {
            l_remove(c, id);
            l_push(c, 1, id);
        }
        return 1;
    }
    if (cost > c->cap)
        return 0;
    while (c->used + cost > c->cap)
        drop(c, c->l[1].tail);
    c->cost[id] = (uint32_t)cost;
    l_push(c, 1, id);
    c->used += cost;
    return 0;
}

/* ---------------------------------------------------------------- sieve */

static int sieve_access(cache *c, uint32_t id, uint64_t cost)
{
    if (c->where[id]) {
        c->freq[id] = 1;
        return 1;
    }
    if (cost > c->cap)
        return 0;
    while (c->used + cost > c->cap) {
        uint32_t o = c->hand != NIL ? c->hand : c->l[1].tail;
        while (c->freq[o]) {
            c->freq[o] = 0;
            o = c->prev[o] != NIL ? c->prev[o] : c->l[1].tail;
        }
        c->hand = c->prev[o];
        drop(c, o);
    }
    c->cost[id] = (uint32_t)cost;
    c->freq[id] = 0;
    l_push(c, 1, id);
    c->used += cost;
    return 0;
}

/* ---------------------------------------------------------------- s3fifo */

enum { S3_S = 1, S3_M = 2, S3_G = 3 };

static void s3_evict_m(cache *c)
{
    while (c->l[S3_M].count) {
        uint32_t t = c->l[S3_M].tail;
        if (c->freq[t] > 0) {
            c->freq[t]--;
            l_remove(c, t);
            l_push(c, S3_M, t);
        } else {
            drop(c, t);
            return;
        }
    }
}

static void s3_evict_s(cache *c)
{
    while (c->l[S3_S].count) {
        uint32_t t = c->l[S3_S].tail;
        l_remove(c, t);
        if (c->freq[t] >= c->threshold) {
            l_push(c, S3_M, t);
            if (c->l[S3_M].bytes > c->cap_m)
                s3_evict_m(c);
        } else {
            c->used -= c->cost[t];
            l_push(c, S3_G, t);
            while (c->l[S3_G].bytes > c->cap_m)
                l_remove(c, c->l[S3_G].tail);
            return;
        }
    }
}

static int s3_access(cache *c, uint32_t id, uint64_t cost)
{
    int w = c->where[id];
    if (w == S3_S || w == S3_M) {
        if (c->freq[id] < 3)
            c->freq[id]++;
        return 1;
    }
    if (cost > c->cap)
        return 0;
    if (w == S3_G)   /* before evicting: trimming the ghost must not meet it */
        l_remove(c, id);
    while (c->used + cost > c->cap) {
        if (c->l[S3_S].bytes >= c->cap_s || c->l[S3_M].count == 0)
            s3_evict_s(c);
        else
            s3_evict_m(c);
    }
    c->cost[id] = (uint32_t)cost;
    c->freq[id] = 0;
    l_push(c, w == S3_G ? S3_M : S3_S, id);
    c->used += cost;
    return 0;
}

/* ---------------------------------------------------------------- w-tinylfu */

enum { W_WIN = 1, W_PROB = 2, W_PROT = 3 };

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static void sk_add(cache *c, uint32_t id)
{
    uint64_t h = mix64(id + 1);
    for (int r = 0; r < 4; r++) {
        uint8_t *ctr = &c->sketch[(uint64_t)r * (c->sk_mask + 1) + ((h >> (16 * r)) & c->sk_mask)];
        if (*ctr < 15)
            (*ctr)++;
    }
    if (++c->sk_added >= c->sk_sample) {
        for (uint64_t i = 0; i < 4 * (c->sk_mask + 1); i++)
            c->sketch[i] >>= 1;
        c->sk_added /= 2;
    }
}

static unsigned sk_est(const cache *c, uint32_t id)
{
    uint64_t h = mix64(id + 1);
    unsigned m = 15;
    for (int r = 0; r < 4; r++) {
        unsigned v = c->sketch[(uint64_t)r * (c->sk_mask + 1) + ((h >> (16 * r)) & c->sk_mask)];
        if (v < m)
            m = v;
    }
    return m;
}

static void w_admit(cache *c, uint32_t cand)
{
    uint64_t need = c->cost[cand];
    unsigned fc = sk_est(c, cand);
    while (c->l[W_PROB].bytes + c->l[W_PROT].bytes + need > c->cap_main) {
        uint32_t v = c->l[W_PROB].count ? c->l[W_PROB].tail : c->l[W_PROT].tail;
        if (fc > sk_est(c, v)) {
            drop(c, v);
        } else {
            c->used -= need;   /* rejected: it leaves the cache */
            return;
        }
    }
    l_push(c, W_PROB, cand);
}

static int w_access(cache *c, uint32_t id, uint64_t cost)
{
    sk_add(c, id);
    int w = c->where[id];
    if (w) {
        l_remove(c, id);
        if (w == W_WIN) {
            l_push(c, W_WIN, id);
        } else {
            l_push(c, W_PROT, id);
            while (c->l[W_PROT].bytes > c->cap_prot) {
                uint32_t t = c->l[W_PROT].tail;
                l_remove(c, t);
                l_push(c, W_PROB, t);
            }
        }
        return 1;
    }
    if (cost > c->cap_main)
        return 0;
    c->cost[id] = (uint32_t)cost;
    l_push(c, W_WIN, id);
    c->used += cost;
    while (c->l[W_WIN].bytes > c->cap_w) {
        uint32_t t = c->l[W_WIN].tail;
        l_remove(c, t);
        w_admit(c, t);
    }
    return 0;
}

/* ---------------------------------------------------------------- gdsf, lfuda */

static void h_swap(cache *c, uint32_t a, uint32_t b)
{
    uint32_t x = c->heap[a];
    c->heap[a] = c->heap[b];
    c->heap[b] = x;
    c->hpos[c->heap[a]] = a;
    c->hpos[c->heap[b]] = b;
}

static void h_up(cache *c, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (c->key[c->heap[p]] <= c->key[c->heap[i]])
            break;
        h_swap(c, i, p);
        i = p;
    }
}

static void h_down(cache *c, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->hn && c->key[c->heap[l]] < c->key[c->heap[m]])
            m = l;
        if (r < c->hn && c->key[c->heap[r]] < c->key[c->heap[m]])
            m = r;
        if (m == i)
            return;
        h_swap(c, i, m);
        i = m;
    }
}

static double h_key(const cache *c, uint32_t id)
{
    return c->age + (c->lfuda ? (double)c->refs[id] : (double)c->refs[id] / c->cost[id]);
}

static int heap_access(cache *c, uint32_t id, uint64_t cost)
{
    if (c->where[id]) {
        c->refs[id]++;
        c->key[id] = h_key(c, id);
        h_down(c, c->hpos[id]);
        return 1;
    }
    if (cost > c->cap)
        return 0;
    while (c->used + cost > c->cap) {
        uint32_t v = c->heap[0];
        c->age = c->key[v];
        h_swap(c, 0, --c->hn);
        if (c->hn)
            h_down(c, 0);
        c->where[v] = 0;
        c->used -= c->cost[v];
    }
    c->cost[id] = (uint32_t)cost;
    c->refs[id] = 1;
    c->key[id] = h_key(c, id);
    c->where[id] = 1;
    c->heap[c->hn] = id;
    c->hpos[id] = c->hn;
    h_up(c, c->hn++);
    c->used += cost;
    return 0;
}

/* ---------------------------------------------------------------- driver */

static const char *const POLICIES[] = {"lru", "fifo", "sieve", "s3fifo", "s3fifo2",
                                       "wtinylfu", "gdsf", "lfuda", NULL};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "hitratio-sim: out of memory\n");
        exit(1);
    }
    return p;
}

static void run(const char *policy, uint64_t cap, const req *t, uint64_t n, uint32_t n_ids,
                uint64_t block, uint64_t overhead, uint64_t tail, double mean_cost)
{
    cache c;
    memset(&c, 0, sizeof c);
    c.name = policy;
    c.cap = cap;
    c.n_ids = n_ids;
    c.prev = xcalloc(n_ids, sizeof *c.prev);
    c.next = xcalloc(n_ids, sizeof *c.next);
    c.where = xcalloc(n_ids, 1);
    c.freq = xcalloc(n_ids, 1);
    c.cost = xcalloc(n_ids, sizeof *c.cost);
    for (int i = 0; i < 4; i++)
        c.l[i].head = c.l[i].tail = NIL;
    c.hand = NIL;
    c.cap_s = cap / 10;
    c.cap_m = cap - c.cap_s;
    c.threshold = strcmp(policy, "s3fifo2") == 0 ? 2 : 1;
    c.cap_w = cap / 100;
    c.cap_main = cap - c.cap_w;
    c.cap_prot = c.cap_main / 10 * 8;
    int kind = 0;
    for (int i = 0; POLICIES[i]; i++)
        if (strcmp(policy, POLICIES[i]) == 0)
            kind = i + 1;
    if (kind == 6) {
        double expect = (double)cap / (mean_cost > 0 ? mean_cost : 1);
        uint64_t w = 1024;
        while (w < 2 * expect && w < (1ULL << 26))
            w <<= 1;
        c.sk_mask = w - 1;
        c.sketch = xcalloc(4 * w, 1);
        c.sk_sample = (uint64_t)(10 * expect) + 100;
    }
    if (kind == 7 || kind == 8) {
        c.lfuda = kind == 8;
        c.key = xcalloc(n_ids, sizeof *c.key);
        c.refs = xcalloc(n_ids, sizeof *c.refs);
        c.hpos = xcalloc(n_ids, sizeof *c.hpos);
        c.heap = xcalloc(n_ids, sizeof *c.heap);
    }
    uint64_t hits = 0, bytes = 0, hit_bytes = 0, tail_hits = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t id = t[i].id;
        uint64_t cost = cost_of(t[i].size, block, overhead);
        int hit = 0;
        switch (kind) {
        case 1: hit = lru_access(&c, id, cost, 1); break;
        case 2: hit = lru_access(&c, id, cost, 0); break;
        case 3: hit = sieve_access(&c, id, cost); break;
        case 4:
        case 5: hit = s3_access(&c, id, cost); break;
        case 6: hit = w_access(&c, id, cost); break;
        default: hit = heap_access(&c, id, cost); break;
        }
        bytes += t[i].size;
        if (hit) {
            hits++;
            hit_bytes += t[i].size;
            if (i >= n - tail)
                tail_hits++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%.3f\n", policy,
           (unsigned long long)cap, (unsigned long long)n, (unsigned long long)hits,
           (unsigned long long)bytes, (unsigned long long)hit_bytes, (unsigned long long)tail,
           (unsigned long long)tail_hits,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    fflush(stdout);
    free(c.prev);
    free(c.next);
    free(c.where);
    free(c.freq);
    free(c.cost);
    free(c.sketch);
    free(c.key);
    free(c.refs);
    free(c.hpos);
    free(c.heap);
}

static int usage(void)
{
    fprintf(stderr, "usage: hitratio-sim TRACE --cache BYTES[,BYTES...] --policies "
                    "NAME[,NAME...] [--block B] [--overhead H] [--tail K]\npolicies:");
    for (int i = 0; POLICIES[i]; i++)
        fprintf(stderr, " %s", POLICIES[i]);
    fprintf(stderr, "\n");
    return 2;
}

static int known(const char *p)
{
    for (int i = 0; POLICIES[i]; i++)
        if (strcmp(p, POLICIES[i]) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    char *caches = NULL, *policies = NULL;
    uint64_t block = 512, overhead = 350, tail = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 < argc && strcmp(a, "--cache") == 0)
            caches = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--policies") == 0)
            policies = argv[++i];
        else if (i + 1 < argc && strcmp(a, "--block") == 0)
            block = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(a, "--overhead") == 0)
            overhead = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(a, "--tail") == 0)
            tail = strtoull(argv[++i], NULL, 10);
        else if (a[0] != '-' && !path)
            path = a;
        else
            return usage();
    }
    if (!path || !caches || !policies || block == 0)
        return usage();
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hitratio-sim: %s: %s\n", path, strerror(errno));
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len % (long)sizeof(req) != 0) {
        fprintf(stderr, "hitratio-sim: %s: not a trace (length %ld)\n", path, len);
        return 1;
    }
    uint64_t n = (uint64_t)len / sizeof(req);
    req *t = xcalloc(n, sizeof *t);
    if (fread(t, sizeof *t, n, f) != n) {
        fprintf(stderr, "hitratio-sim: %s: short read\n", path);
        return 1;
    }
    fclose(f);
    if (tail > n)
        tail = n;
    uint32_t n_ids = 0;
    double cost_sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (t[i].id == NIL) {
            fprintf(stderr, "hitratio-sim: %s: bad id at request %llu\n", path,
                    (unsigned long long)i);
            return 1;
        }
        if (t[i].id + 1 > n_ids)
            n_ids = t[i].id + 1;
        cost_sum += (double)cost_of(t[i].size, block, overhead);
    }
    double mean_cost = n ? cost_sum / (double)n : 1;
    const char *pol[64];
    int npol = 0;
    for (char *p = strtok(policies, ","); p; p = strtok(NULL, ",")) {
        if (!known(p) || npol == 64) {
            fprintf(stderr, "hitratio-sim: unknown policy %s\n", p);
            return usage();
        }
        pol[npol++] = p;
    }
    uint64_t caps[64];
    int ncap = 0;
    for (char *p = strtok(caches, ","); p; p = strtok(NULL, ",")) {
        char *end;
        caps[ncap] = strtoull(p, &end, 10);
        if (*end || caps[ncap] == 0 || ncap == 63) {
            fprintf(stderr, "hitratio-sim: bad cache size %s\n", p);
            return usage();
        }
        ncap++;
    }
    for (int j = 0; j < ncap; j++)
        for (int i = 0; i < npol; i++)
            run(pol[i], caps[j], t, n, n_ids, block, overhead, tail, mean_cost);
    free(t);
    return 0;
}
