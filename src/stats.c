/*
 * stats: the shared counter segment and the pages rendered from it (see
 * include/proxyd/stats.h). Writers are lock-free (relaxed atomics on their own
 * slot); a reader sums slots that may move while it reads, which is fine for
 * monitoring: every counter is monotonic and read whole.
 */
#include "proxyd/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "proxyd/http_msg.h"

#define STATS_MAGIC 0x50445354u /* "PDST" */

/* One sample of the summed counters (pd_stats_sample); seq is odd while it is written. */
struct sample {
    uint32_t seq;
    double t;                   /* unix time */
    double cpu;                 /* the live workers' CPU seconds */
    uint64_t v[PD_STAT__N];
};
/* one a minute: an hour back, the sample an hour old, and one being written */
#define RING (3600 / PD_STATS_SAMPLE_S + 2)

struct pd_stats {
    uint32_t magic;
    int32_t generation;         /* current configuration generation (master writes) */
    int32_t workers;            /* workers it asks for */
    double started;             /* unix time the segment was created */
    pd_stats_slot slots[PD_STATS_NSLOTS];
    uint32_t n_samples;         /* samples written (the master writes, anyone reads) */
    struct sample ring[RING];
};

#define DEF_ROW(id, type, src, name, labels, help)                                               \
    [PD_STAT_##id] = { name, labels, help, PD_STAT_##type, PD_STAT_##src },
const pd_stat_def pd_stat_defs[PD_STAT__N] = { PD_STATS_TABLE(DEF_ROW) };
#undef DEF_ROW

static const struct {
    const char *name, *help;
} hist_defs[PD_HIST__N] = {
#define HIST_ROW(id, name, help) [PD_HIST_##id] = { name, help },
    PD_STATS_HISTOGRAMS(HIST_ROW)
#undef HIST_ROW
};

static const int64_t bucket_us[PD_STATS_NBUCKETS - 1] = { PD_STATS_BUCKETS_US };

enum { H_SUM, H_MAX };
static const struct {
    const char *name, *labels, *help;
    enum pd_stat_type type;
    int agg;
} helper_defs[PD_HSTAT__N] = {
#define HELPER_ROW(id, type, agg, name, labels, help)                                            \
    [PD_HSTAT_##id] = { name, labels, help, PD_STAT_##type, H_##agg },
    PD_STATS_HELPER_TABLE(HELPER_ROW)
#undef HELPER_ROW
};

/* The segment of this process: set by create, inherited by forked workers. */
static pd_stats *self;
static pd_stats_slot *my_slot;
static pd_stats_cache_fn cache_fn;
static void *cache_arg;

static double unix_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

pd_stats *pd_stats_create(void)
{
    pd_stats *st = mmap(NULL, sizeof(pd_stats), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (st == MAP_FAILED)
        return NULL;
    st->magic = STATS_MAGIC;
    st->started = unix_now();
    self = st;
    return st;
}

void pd_stats_destroy(pd_stats *st)
{
    if (!st)
        return;
    if (self == st)
        self = NULL;
    st->magic = 0;
    munmap(st, sizeof(pd_stats));
}

pd_stats *pd_stats_self(void)
{
    return self;
}

pd_stats_slot *pd_stats_worker_slot(pd_stats *st, int generation, int worker)
{
    if (!st || worker < 0 || worker >= PD_STATS_MAX_WORKERS || generation < 0)
        return NULL;
    return &st->slots[(generation & 1) * PD_STATS_MAX_WORKERS + worker];
}

static void zero_gauges(pd_stats_slot *s)
{
    for (int i = 0; i < PD_STAT__N; i++)
        if (pd_stat_defs[i].type == PD_STAT_GAUGE && pd_stat_defs[i].source != PD_STAT_HOST)
            __atomic_store_n(&s->c[i], 0, __ATOMIC_RELAXED);
    for (int k = 0; k < PD_STATS_MAX_HELPERS; k++)
        for (int i = 0; i < PD_HSTAT__N; i++)
            if (helper_defs[i].type == PD_STAT_GAUGE)
                __atomic_store_n(&s->helper[k].c[i], 0, __ATOMIC_RELAXED);
}

void pd_stats_set_my_slot(pd_stats_slot *s)
{
    my_slot = s;
}

pd_stats_slot *pd_stats_my_slot(void)
{
    return my_slot;
}

const char *pd_stats_helper_kind_name(enum pd_helper_kind kind)
{
    switch (kind) {
    case PD_HELPER_KIND_AUTH: return "auth";
    case PD_HELPER_KIND_EXTERNAL: return "external_acl";
    case PD_HELPER_KIND_REWRITE: return "url_rewrite";
    case PD_HELPER_KIND_STOREID: return "store_id";
    }
    return "other";
}

uint64_t *pd_stats_helper_register(pd_stats_slot *s, enum pd_helper_kind kind, const char *name,
                                   const char *program)
{
    if (!s || !name)
        return NULL;
    pd_stats_helper *free_entry = NULL;
    for (int k = 0; k < PD_STATS_MAX_HELPERS; k++) {
        pd_stats_helper *e = &s->helper[k];
        int32_t ek = __atomic_load_n(&e->kind, __ATOMIC_ACQUIRE);
        if (ek == (int32_t)kind && strncmp(e->name, name, sizeof e->name - 1) == 0)
            return e->c;
        if (!ek && !free_entry)
            free_entry = e;
    }
    if (!free_entry)
        return NULL;
    memset(free_entry->c, 0, sizeof free_entry->c);
    snprintf(free_entry->name, sizeof free_entry->name, "%s", name);
    snprintf(free_entry->program, sizeof free_entry->program, "%s", program ? program : "");
    /* readers see the names complete before the entry counts */
    __atomic_store_n(&free_entry->kind, (int32_t)kind, __ATOMIC_RELEASE);
    return free_entry->c;
}

/* Add slot entry e (kind ek) into the snapshot's pools, combined by (kind, name). */
static void take_helper(pd_stats_snapshot *snap, const pd_stats_helper *e, int32_t ek, int live)
{
    pd_stats_helper *t = NULL;
    int k = 0;
    for (; k < snap->n_helpers; k++)
        if (snap->helpers[k].kind == ek && !strcmp(snap->helpers[k].name, e->name)) {
            t = &snap->helpers[k];
            break;
        }
    if (!t) {
        if (snap->n_helpers >= PD_STATS_MAX_HELPERS)
            return;
        k = snap->n_helpers++;
        t = &snap->helpers[k];
        t->kind = ek;
        memcpy(t->name, e->name, sizeof t->name);
        t->name[sizeof t->name - 1] = 0;
        memcpy(t->program, e->program, sizeof t->program);
        t->program[sizeof t->program - 1] = 0;
    }
    if (live)
        snap->helper_workers[k]++;
    for (int i = 0; i < PD_HSTAT__N; i++) {
        uint64_t v = __atomic_load_n(&e->c[i], __ATOMIC_RELAXED);
        if (helper_defs[i].agg == H_MAX)
            t->c[i] = v > t->c[i] ? v : t->c[i];
        else
            t->c[i] += v;
    }
}

void pd_stats_slot_claim(pd_stats_slot *s, pid_t pid, int generation, int worker)
{
    if (!s)
        return;
    zero_gauges(s);
    __atomic_store_n(&s->ready, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->generation, generation, __ATOMIC_RELAXED);
    __atomic_store_n(&s->worker, worker, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pid, (int32_t)pid, __ATOMIC_RELEASE);
    pd_stats_add(s, PD_STAT_WORKER_STARTS, 1);
}

void pd_stats_slot_ready(pd_stats_slot *s)
{
    if (s)
        __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
}

void pd_stats_slot_release(pd_stats_slot *s, pid_t pid)
{
    int32_t want = (int32_t)pid;
    if (!s || !__atomic_compare_exchange_n(&s->pid, &want, 0, 0, __ATOMIC_ACQ_REL,
                                           __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&s->ready, 0, __ATOMIC_RELAXED);
    zero_gauges(s);
}

void pd_stats_set_host(pd_stats *st, int generation, int workers)
{
    if (!st)
        return;
    __atomic_store_n(&st->generation, generation, __ATOMIC_RELAXED);
    __atomic_store_n(&st->workers, workers, __ATOMIC_RELAXED);
}

void pd_stats_observe(pd_stats_slot *s, enum pd_hist_id h, int64_t us)
{
    if (!s || us < 0 || (unsigned)h >= PD_HIST__N)
        return;
    int b = 0;
    while (b < PD_STATS_NBUCKETS - 1 && us > bucket_us[b])
        b++;
    __atomic_fetch_add(&s->bucket[h][b], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->sum_us[h], (uint64_t)us, __ATOMIC_RELAXED);
}

/* Label value of a table row: `code="TCP_MISS"` -> TCP_MISS (into buf). */
static const char *label_value(const char *labels, char *buf, size_t size)
{
    const char *q = strchr(labels, '"');
    if (!q || !size)
        return "";
    q++;
    size_t n = strcspn(q, "\"");
    if (n >= size)
        n = size - 1;
    memcpy(buf, q, n);
    buf[n] = '\0';
    return buf;
}

/* The row of `family` whose label value is `value`, or `other`. */
static enum pd_stat_id find_labelled(const char *family, const char *value, enum pd_stat_id other)
{
    if (!value)
        return other;
    char buf[64];
    for (int i = 0; i < PD_STAT__N; i++)
        if (!strcmp(pd_stat_defs[i].name, family) &&
            !strcmp(label_value(pd_stat_defs[i].labels, buf, sizeof buf), value))
            return (enum pd_stat_id)i;
    return other;
}

enum pd_stat_id pd_stats_result_id(enum pd_result result)
{
    if (result <= PD_R_UNSET || result >= PD_R__N)
        result = PD_R_NONE_NONE;
    /* the rows are generated from the result table, in its order */
    return (enum pd_stat_id)(PD_STAT_RES_NONE_NONE + (result - PD_R_NONE_NONE));
}

enum pd_stat_id pd_stats_error_id(const char *err)
{
    return find_labelled("proxyd_errors_total", err, PD_STAT_ERR_OTHER);
}

enum pd_stat_id pd_stats_method_id(int method_id)
{
    switch (method_id) {
    case PD_M_GET: return PD_STAT_REQ_GET;
    case PD_M_HEAD: return PD_STAT_REQ_HEAD;
    case PD_M_POST: return PD_STAT_REQ_POST;
    case PD_M_PUT: return PD_STAT_REQ_PUT;
    case PD_M_DELETE: return PD_STAT_REQ_DELETE;
    case PD_M_CONNECT: return PD_STAT_REQ_CONNECT;
    default: return PD_STAT_REQ_OTHER;
    }
}

void pd_stats_transaction(pd_stats_slot *s, const pd_stats_txn *t)
{
    if (!s || !t)
        return;
    enum pd_result r = t->result;
    pd_stats_add(s, pd_stats_method_id(t->method_id), 1);
    pd_stats_add(s, pd_stats_result_id(r), 1);
    int cls = t->status / 100;
    pd_stats_add(s, cls >= 1 && cls <= 5 ? PD_STAT_STATUS_1XX + (cls - 1) : PD_STAT_STATUS_NONE,
                 1);
    switch (pd_result_class(r)) {
    case PD_RC_REVALIDATION:
        pd_stats_add(s, PD_STAT_CACHE_REVALIDATIONS, 1);
        break;
    case PD_RC_MISS:
        pd_stats_add(s, PD_STAT_CACHE_MISSES, 1);
        break;
    case PD_RC_HIT:
        pd_stats_add(s, PD_STAT_CACHE_HITS, 1);
        break;
    case PD_RC_NONE:
        break;
    }
    if (pd_result_hit_bytes(r))
        pd_stats_add(s, PD_STAT_CLIENT_HIT_BYTES_OUT, (int64_t)t->client_out);
    pd_stats_add(s, PD_STAT_CLIENT_BYTES_IN, (int64_t)t->client_in);
    pd_stats_add(s, PD_STAT_CLIENT_BYTES_OUT, (int64_t)t->client_out);
    pd_stats_add(s, PD_STAT_ORIGIN_BYTES_IN, (int64_t)t->origin_in);
    pd_stats_add(s, PD_STAT_ORIGIN_BYTES_OUT, (int64_t)t->origin_out);
    pd_stats_observe(s, PD_HIST_REQUEST_DURATION, t->total_us);
    pd_stats_observe(s, PD_HIST_TTFB, t->ttfb_us);
}

void pd_stats_set_cache_hook(pd_stats_cache_fn fn, void *arg)
{
    cache_fn = fn;
    cache_arg = arg;
}

/* CPU seconds (utime + stime) and RSS bytes of a process; -1 when it is gone or a zombie. */
static int read_proc(pid_t pid, double *cpu, uint64_t *rss)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields start after the last ')' */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, stime = 0;
    char state = '?';
    /* fields 3..15: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &state, &ut,
               &stime) != 3)
        return -1;
    if (state == 'Z' || state == 'X')
        return -1; /* dead, not reaped yet */
    long hz = sysconf(_SC_CLK_TCK);
    *cpu = (double)(ut + stime) / (double)(hz > 0 ? hz : 100);
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    *rss = 0;
    if (fd >= 0) {
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        unsigned long long size, res;
        if (n > 0) {
            buf[n] = '\0';
            if (sscanf(buf, "%llu %llu", &size, &res) == 2)
                *rss = res * (uint64_t)sysconf(_SC_PAGESIZE);
        }
    }
    return 0;
}

void pd_stats_take(pd_stats *st, pd_stats_snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    snap->now = unix_now();
    if (!st || st->magic != STATS_MAGIC)
        return;
    int gen = __atomic_load_n(&st->generation, __ATOMIC_RELAXED);
    int up = 0;
    for (int k = 0; k < PD_STATS_NSLOTS; k++) {
        const pd_stats_slot *s = &st->slots[k];
        for (int i = 0; i < PD_STAT__N; i++)
            if (pd_stat_defs[i].source == PD_STAT_SLOT)
                snap->v[i] += __atomic_load_n(&s->c[i], __ATOMIC_RELAXED);
            else if (pd_stat_defs[i].source == PD_STAT_SLOTMAX) {
                uint64_t v = __atomic_load_n(&s->c[i], __ATOMIC_RELAXED);
                if (v > snap->v[i])
                    snap->v[i] = v;
            }
        for (int h = 0; h < PD_HIST__N; h++) {
            for (int b = 0; b < PD_STATS_NBUCKETS; b++)
                snap->bucket[h][b] += __atomic_load_n(&s->bucket[h][b], __ATOMIC_RELAXED);
            snap->sum_us[h] += __atomic_load_n(&s->sum_us[h], __ATOMIC_RELAXED);
        }
        pid_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
        for (int e = 0; e < PD_STATS_MAX_HELPERS; e++) {
            int32_t ek = __atomic_load_n(&s->helper[e].kind, __ATOMIC_ACQUIRE);
            if (ek)
                take_helper(snap, &s->helper[e], ek, pid != 0);
        }
        if (!pid)
            continue;
        pd_stats_worker *w = &snap->workers[snap->n_workers++];
        w->pid = pid;
        w->worker = s->worker;
        w->generation = s->generation;
        w->ready = __atomic_load_n(&s->ready, __ATOMIC_ACQUIRE);
        if (read_proc(pid, &w->cpu_seconds, &w->rss_bytes) < 0) {
            snap->n_workers--; /* gone, not reaped yet */
            continue;
        }
        snap->cpu_seconds += w->cpu_seconds;
        if (w->ready && w->generation == gen)
            up++;
    }
    /* cumulative buckets, as Prometheus wants them */
    for (int h = 0; h < PD_HIST__N; h++)
        for (int b = 1; b < PD_STATS_NBUCKETS; b++)
            snap->bucket[h][b] += snap->bucket[h][b - 1];
    snap->started = st->started;
    snap->v[PD_STAT_START_TIME] = (uint64_t)st->started;
    snap->v[PD_STAT_UPTIME] = (uint64_t)(snap->now - st->started);
    snap->v[PD_STAT_GENERATION] = (uint64_t)gen;
    snap->v[PD_STAT_WORKERS] = (uint64_t)__atomic_load_n(&st->workers, __ATOMIC_RELAXED);
    snap->v[PD_STAT_WORKERS_UP] = (uint64_t)up;
    pd_stats_cache c = { .attached = 1 };
    if (cache_fn)
        cache_fn(cache_arg, &c);
    snap->v[PD_STAT_CACHE_ATTACHED] = c.attached ? 1 : 0;
    snap->v[PD_STAT_CACHE_OBJECTS] = c.objects;
    snap->v[PD_STAT_CACHE_BYTES_USED] = c.bytes_used;
    snap->v[PD_STAT_CACHE_BYTES_FREE] = c.bytes_free;
    snap->v[PD_STAT_CACHE_EVICTIONS] = c.evictions;
    snap->v[PD_STAT_CACHE_STORED_BYTES] = c.stored_bytes;
    snap->v[PD_STAT_CACHE_METADATA_BYTES] = c.metadata_bytes;
    snap->v[PD_STAT_CACHE_OBJECT_OVERHEAD] = c.object_overhead;
    snap->cache_mem = c.cache_mem;
}

int pd_stats_healthy(const pd_stats_snapshot *snap, char *why, size_t whylen)
{
    if (!snap->v[PD_STAT_CACHE_ATTACHED]) {
        snprintf(why, whylen, "cache segment not attached");
        return 0;
    }
    if (snap->v[PD_STAT_WORKERS] == 0) {
        snprintf(why, whylen, "no workers configured yet");
        return 0;
    }
    if (snap->v[PD_STAT_WORKERS_UP] < snap->v[PD_STAT_WORKERS]) {
        snprintf(why, whylen, "%llu of %llu workers of generation %llu are up",
                 (unsigned long long)snap->v[PD_STAT_WORKERS_UP],
                 (unsigned long long)snap->v[PD_STAT_WORKERS],
                 (unsigned long long)snap->v[PD_STAT_GENERATION]);
        return 0;
    }
    snprintf(why, whylen, "ok");
    return 1;
}

/* ---- Prometheus text format 0.0.4 ------------------------------------- */

/* Bucket bound as Prometheus prints it: seconds, shortest exact form. */
static void bound_text(int b, char *buf, size_t size)
{
    if (b >= PD_STATS_NBUCKETS - 1) {
        snprintf(buf, size, "+Inf");
        return;
    }
    snprintf(buf, size, "%g", (double)bucket_us[b] / 1e6);
}

static void family_head(struct evbuffer *out, const char *name, const char *type,
                        const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int is_seconds(const char *name)
{
    size_t n = strlen(name), k = strlen("_seconds_total");
    return n > k && !strcmp(name + n - k, "_seconds_total");
}

/* A label value as Prometheus wants it: backslash, quote and newline escaped. */
static void add_label_value(struct evbuffer *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            evbuffer_add_printf(out, "\\%c", *v);
        else if (*v == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, v, 1);
    }
}

void pd_stats_render_prometheus(const pd_stats_snapshot *snap, struct evbuffer *out)
{
    const char *prev = NULL;
    for (int i = 0; i < PD_STAT__N; i++) {
        const pd_stat_def *d = &pd_stat_defs[i];
        if (!prev || strcmp(prev, d->name) != 0)
            family_head(out, d->name, d->type == PD_STAT_COUNTER ? "counter" : "gauge", d->help);
        prev = d->name;
        if (d->labels[0])
            evbuffer_add_printf(out, "%s{%s} %llu\n", d->name, d->labels,
                                (unsigned long long)snap->v[i]);
        else
            evbuffer_add_printf(out, "%s %llu\n", d->name, (unsigned long long)snap->v[i]);
    }
    for (int h = 0; h < PD_HIST__N; h++) {
        const char *n = hist_defs[h].name;
        family_head(out, n, "histogram", hist_defs[h].help);
        for (int b = 0; b < PD_STATS_NBUCKETS; b++) {
            char le[32];
            bound_text(b, le, sizeof le);
            evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n", n, le,
                                (unsigned long long)snap->bucket[h][b]);
        }
        evbuffer_add_printf(out, "%s_sum %.6f\n%s_count %llu\n", n, (double)snap->sum_us[h] / 1e6,
                            n, (unsigned long long)snap->bucket[h][PD_STATS_NBUCKETS - 1]);
    }
    prev = NULL;
    for (int i = 0; i < PD_HSTAT__N; i++) {
        if (!prev || strcmp(prev, helper_defs[i].name) != 0)
            family_head(out, helper_defs[i].name,
                        helper_defs[i].type == PD_STAT_COUNTER ? "counter" : "gauge",
                        helper_defs[i].help);
        prev = helper_defs[i].name;
        int seconds = is_seconds(helper_defs[i].name);
        for (int k = 0; k < snap->n_helpers; k++) {
            const pd_stats_helper *e = &snap->helpers[k];
            evbuffer_add_printf(out, "%s{helper=\"", helper_defs[i].name);
            add_label_value(out, e->name);
            evbuffer_add_printf(out, "\",kind=\"%s\"%s%s}", pd_stats_helper_kind_name(e->kind),
                                helper_defs[i].labels[0] ? "," : "", helper_defs[i].labels);
            if (seconds)
                evbuffer_add_printf(out, " %.6f\n", (double)e->c[i] / 1e6);
            else
                evbuffer_add_printf(out, " %llu\n", (unsigned long long)e->c[i]);
        }
    }
    family_head(out, "proxyd_worker_cpu_seconds_total", "counter",
                "CPU time (user + system) of each worker process.");
    for (int k = 0; k < snap->n_workers; k++)
        evbuffer_add_printf(out, "proxyd_worker_cpu_seconds_total{worker=\"%d\",generation=\"%d\"} %.2f\n",
                            snap->workers[k].worker, snap->workers[k].generation,
                            snap->workers[k].cpu_seconds);
    family_head(out, "proxyd_worker_resident_memory_bytes", "gauge",
                "Resident set size of each worker process.");
    for (int k = 0; k < snap->n_workers; k++)
        evbuffer_add_printf(out, "proxyd_worker_resident_memory_bytes{worker=\"%d\",generation=\"%d\"} %llu\n",
                            snap->workers[k].worker, snap->workers[k].generation,
                            (unsigned long long)snap->workers[k].rss_bytes);
}

/* ---- JSON ---------------------------------------------------------------- */

void pd_stats_render_json(const pd_stats_snapshot *snap, struct evbuffer *out)
{
    char why[128];
    int ok = pd_stats_healthy(snap, why, sizeof why);
    evbuffer_add_printf(out, "{\"version\":\"%s\",\"time\":%.3f,\"healthy\":%s,\"health\":\"%s\"",
                        PROXYD_VERSION, snap->now, ok ? "true" : "false", why);
    /* a family without labels is a number, with labels an object by label value */
    for (int i = 0; i < PD_STAT__N;) {
        const pd_stat_def *d = &pd_stat_defs[i];
        /* JSON keys drop the proxyd_ prefix */
        const char *key = d->name + 7;
        if (!d->labels[0]) {
            evbuffer_add_printf(out, ",\"%s\":%llu", key, (unsigned long long)snap->v[i]);
            i++;
            continue;
        }
        evbuffer_add_printf(out, ",\"%s\":{", key);
        int j = i;
        for (; j < PD_STAT__N && !strcmp(pd_stat_defs[j].name, d->name); j++) {
            char lv[64];
            evbuffer_add_printf(out, "%s\"%s\":%llu", j > i ? "," : "",
                                label_value(pd_stat_defs[j].labels, lv, sizeof lv),
                                (unsigned long long)snap->v[j]);
        }
        evbuffer_add(out, "}", 1);
        i = j;
    }
    for (int h = 0; h < PD_HIST__N; h++) {
        evbuffer_add_printf(out, ",\"%s\":{\"buckets\":{", hist_defs[h].name + 7);
        for (int b = 0; b < PD_STATS_NBUCKETS; b++) {
            char le[32];
            bound_text(b, le, sizeof le);
            evbuffer_add_printf(out, "%s\"%s\":%llu", b ? "," : "", le,
                                (unsigned long long)snap->bucket[h][b]);
        }
        evbuffer_add_printf(out, "},\"sum\":%.6f,\"count\":%llu}", (double)snap->sum_us[h] / 1e6,
                            (unsigned long long)snap->bucket[h][PD_STATS_NBUCKETS - 1]);
    }
    evbuffer_add(out, ",\"worker_processes\":[", 21);
    for (int k = 0; k < snap->n_workers; k++) {
        const pd_stats_worker *w = &snap->workers[k];
        evbuffer_add_printf(out,
                            "%s{\"worker\":%d,\"generation\":%d,\"pid\":%d,\"ready\":%s,"
                            "\"cpu_seconds\":%.2f,\"rss_bytes\":%llu}",
                            k ? "," : "", w->worker, w->generation, (int)w->pid,
                            w->ready ? "true" : "false", w->cpu_seconds,
                            (unsigned long long)w->rss_bytes);
    }
    evbuffer_add(out, "]}\n", 3);
}

/* ---- Squid cache manager pages --------------------------------------------- */

static uint64_t requests(const pd_stats_snapshot *s)
{
    uint64_t n = 0;
    for (int i = PD_STAT_REQ_GET; i <= PD_STAT_REQ_OTHER; i++)
        n += s->v[i];
    return n;
}

static uint64_t errors(const pd_stats_snapshot *s)
{
    uint64_t n = 0;
    for (int i = PD_STAT_ERR_ACCESS_DENIED; i <= PD_STAT_ERR_OTHER; i++)
        n += s->v[i];
    return n;
}

static double pct(uint64_t a, uint64_t b)
{
    return b ? 100.0 * (double)a / (double)b : 0.0;
}

static void http_date(double t, char *buf, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/*
 * Squid's mgr:info layout and key names. proxyd keeps no 5/60-minute windows:
 * both columns show the value since start.
 */
void pd_stats_render_mgr_info(const pd_stats_snapshot *s, struct evbuffer *out)
{
    char start[64], now[64];
    http_date(s->started, start, sizeof start);
    http_date(s->now, now, sizeof now);
    uint64_t req = requests(s);
    double up = s->now - s->started;
    uint64_t hits = s->v[PD_STAT_CACHE_HITS];
    uint64_t used = s->v[PD_STAT_CACHE_BYTES_USED], freeb = s->v[PD_STAT_CACHE_BYTES_FREE];
    uint64_t objs = s->v[PD_STAT_CACHE_OBJECTS];
    double hitp = pct(hits, req);
    double bytehitp = pct(s->v[PD_STAT_CLIENT_HIT_BYTES_OUT], s->v[PD_STAT_CLIENT_BYTES_OUT]);
    evbuffer_add_printf(out,
        "Squid Object Cache: Version %s (proxyd)\n"
        "Build Info: proxyd\n"
        "Service Name: proxyd\n"
        "Start Time:\t%s\n"
        "Current Time:\t%s\n"
        "Connection information for squid:\n"
        "\tNumber of clients accessing cache:\t%llu\n"
        "\tNumber of HTTP requests received:\t%llu\n"
        "\tNumber of ICP messages received:\t0\n"
        "\tNumber of ICP messages sent:\t0\n"
        "\tNumber of queued ICP replies:\t0\n"
        "\tNumber of HTCP messages received:\t0\n"
        "\tNumber of HTCP messages sent:\t0\n"
        "\tRequest failure ratio:\t%5.2f\n"
        "\tAverage HTTP requests per minute since start:\t%.1f\n"
        "\tAverage ICP messages per minute since start:\t0.0\n"
        "Cache information for squid:\n"
        "\tHits as %% of all requests:\t5min: %.1f%%, 60min: %.1f%%\n"
        "\tHits as %% of bytes sent:\t5min: %.1f%%, 60min: %.1f%%\n"
        "\tMemory hits as %% of hit requests:\t5min: %.1f%%, 60min: %.1f%%\n"
        "\tDisk hits as %% of hit requests:\t5min: 0.0%%, 60min: 0.0%%\n"
        "\tStorage Swap size:\t0 KB\n"
        "\tStorage Swap capacity:\t 0.0%% used,  0.0%% free\n"
        "\tStorage Mem size:\t%llu KB\n"
        "\tStorage Mem capacity:\t%5.1f%% used, %5.1f%% free\n"
        "\tMean Object Size:\t%.2f KB\n"
        "Resource usage for squid:\n"
        "\tUP Time:\t%.3f seconds\n"
        "\tCPU Time:\t%.3f seconds\n"
        "\tCPU Usage:\t%.2f%%\n"
        "Internal Data Structures:\n"
        "\t%6llu StoreEntries\n"
        "\t%6llu StoreEntries with MemObjects\n"
        "\t%6llu Hot Object Cache Items\n"
        "\tMemory cache index:\t%llu KB\n"
        "\tMemory overhead per cached object:\t%llu bytes\n",
        PROXYD_VERSION, start, now, (unsigned long long)s->v[PD_STAT_CLIENT_CONNS_OPEN],
        (unsigned long long)req, req ? (double)errors(s) / (double)req : 0.0,
        up > 0 ? (double)req * 60.0 / up : 0.0, hitp, hitp, bytehitp, bytehitp, hits ? 100.0 : 0.0,
        hits ? 100.0 : 0.0, (unsigned long long)(used / 1024), pct(used, used + freeb),
        used + freeb ? 100.0 - pct(used, used + freeb) : 0.0,
        objs ? (double)used / 1024.0 / (double)objs : 0.0, up, s->cpu_seconds,
        up > 0 ? 100.0 * s->cpu_seconds / up : 0.0, (unsigned long long)objs,
        (unsigned long long)objs, (unsigned long long)objs,
        (unsigned long long)(s->v[PD_STAT_CACHE_METADATA_BYTES] / 1024),
        (unsigned long long)s->v[PD_STAT_CACHE_OBJECT_OVERHEAD]);
}

/* Squid's mgr:counters layout: "name = value" lines. */
void pd_stats_render_mgr_counters(const pd_stats_snapshot *s, struct evbuffer *out)
{
    char now[64];
    http_date(s->now, now, sizeof now);
    uint64_t req = requests(s);
    uint64_t origin_req = s->v[PD_STAT_ORIGIN_REQUESTS];
    unsigned long long kin = s->v[PD_STAT_CLIENT_BYTES_IN] >> 10;
    unsigned long long kout = s->v[PD_STAT_CLIENT_BYTES_OUT] >> 10;
    unsigned long long okin = s->v[PD_STAT_ORIGIN_BYTES_IN] >> 10;
    unsigned long long okout = s->v[PD_STAT_ORIGIN_BYTES_OUT] >> 10;
    uint64_t icp_qs = s->v[PD_STAT_ICP_QUERIES_SENT], icp_qr = s->v[PD_STAT_ICP_QUERIES_RECV];
    uint64_t icp_rs = s->v[PD_STAT_ICP_REPLIES_SENT_HIT] + s->v[PD_STAT_ICP_REPLIES_SENT_MISS] +
                      s->v[PD_STAT_ICP_REPLIES_SENT_MISS_NOFETCH] +
                      s->v[PD_STAT_ICP_REPLIES_SENT_DENIED] + s->v[PD_STAT_ICP_REPLIES_SENT_ERR];
    uint64_t icp_rr = s->v[PD_STAT_ICP_REPLIES_RECV_HIT] + s->v[PD_STAT_ICP_REPLIES_RECV_MISS] +
                      s->v[PD_STAT_ICP_REPLIES_RECV_OTHER];
    evbuffer_add_printf(out,
        "sample_time = %.6f (%s)\n"
        "client_http.requests = %llu\n"
        "client_http.hits = %llu\n"
        "client_http.errors = %llu\n"
        "client_http.kbytes_in = %llu\n"
        "client_http.kbytes_out = %llu\n"
        "client_http.hit_kbytes_out = %llu\n"
        "server.all.requests = %llu\n"
        "server.all.errors = %llu\n"
        "server.all.kbytes_in = %llu\n"
        "server.all.kbytes_out = %llu\n"
        "server.http.requests = %llu\n"
        "server.http.errors = %llu\n"
        "server.http.kbytes_in = %llu\n"
        "server.http.kbytes_out = %llu\n"
        "server.ftp.requests = 0\n"
        "server.ftp.errors = 0\n"
        "server.ftp.kbytes_in = 0\n"
        "server.ftp.kbytes_out = 0\n"
        "server.other.requests = 0\n"
        "server.other.errors = 0\n"
        "server.other.kbytes_in = 0\n"
        "server.other.kbytes_out = 0\n"
        "icp.pkts_sent = %llu\n"
        "icp.pkts_recv = %llu\n"
        "icp.queries_sent = %llu\n"
        "icp.replies_sent = %llu\n"
        "icp.queries_recv = %llu\n"
        "icp.replies_recv = %llu\n"
        "icp.query_timeouts = %llu\n"
        "icp.hits_sent = %llu\n"
        "icp.hits_recv = %llu\n"
        "dns.queries = %llu\n"
        "unlink.requests = 0\n"
        "page_faults = 0\n"
        "select_loops = 0\n"
        "cpu_time = %.6f\n"
        "wall_time = %.6f\n"
        "swap.outs = 0\n"
        "swap.ins = 0\n"
        "swap.files_cleaned = 0\n"
        "aborted_requests = %llu\n",
        s->now, now, (unsigned long long)req, (unsigned long long)s->v[PD_STAT_CACHE_HITS],
        (unsigned long long)errors(s), kin, kout,
        (unsigned long long)(s->v[PD_STAT_CLIENT_HIT_BYTES_OUT] >> 10), (unsigned long long)origin_req,
        (unsigned long long)(s->v[PD_STAT_ERR_CONNECT_FAIL] + s->v[PD_STAT_ERR_READ_TIMEOUT] +
                             s->v[PD_STAT_ERR_ZERO_SIZE_OBJECT] + s->v[PD_STAT_ERR_INVALID_RESP]),
        okin, okout, (unsigned long long)origin_req,
        (unsigned long long)(s->v[PD_STAT_ERR_CONNECT_FAIL] + s->v[PD_STAT_ERR_READ_TIMEOUT] +
                             s->v[PD_STAT_ERR_ZERO_SIZE_OBJECT] + s->v[PD_STAT_ERR_INVALID_RESP]),
        okin, okout, (unsigned long long)(icp_qs + icp_rs), (unsigned long long)(icp_qr + icp_rr),
        (unsigned long long)icp_qs, (unsigned long long)icp_rs, (unsigned long long)icp_qr,
        (unsigned long long)icp_rr, (unsigned long long)s->v[PD_STAT_ICP_QUERY_TIMEOUTS],
        (unsigned long long)s->v[PD_STAT_ICP_REPLIES_SENT_HIT],
        (unsigned long long)s->v[PD_STAT_ICP_REPLIES_RECV_HIT],
        (unsigned long long)s->v[PD_STAT_DNS_QUERIES], s->cpu_seconds,
        s->now - s->started,
        (unsigned long long)(s->v[PD_STAT_RES_TCP_MISS_ABORTED] +
                             s->v[PD_STAT_RES_TCP_CF_MISS_ABORTED] +
                             s->v[PD_STAT_RES_TCP_MEM_HIT_ABORTED]));
}

void pd_stats_sample(pd_stats *st)
{
    if (!st || st->magic != STATS_MAGIC)
        return;
    pd_stats_snapshot *snap = malloc(sizeof *snap);
    if (!snap)
        return;
    pd_stats_take(st, snap);
    uint32_t n = st->n_samples;
    struct sample *e = &st->ring[n % RING];
    __atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE); /* odd: being written */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    e->t = snap->now;
    e->cpu = snap->cpu_seconds;
    memcpy(e->v, snap->v, sizeof e->v);
    __atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&st->n_samples, n + 1, __ATOMIC_RELEASE);
    free(snap);
}

/*
 * The newest sample at least `window` seconds older than now, or (proxyd has
 * run for less) the oldest one kept: copied into out. 0, or -1 when there is
 * none (a segment without samples).
 */
static int sample_before(const pd_stats *st, double now, double window, struct sample *out)
{
    if (!st || st->magic != STATS_MAGIC)
        return -1;
    uint32_t n = __atomic_load_n(&st->n_samples, __ATOMIC_ACQUIRE);
    if (!n)
        return -1;
    /* the last RING - 1 samples: the slot after them may be being rewritten */
    uint32_t first = n > RING - 1 ? n - (RING - 1) : 0;
    for (uint32_t k = n; k-- > first;) {
        const struct sample *e = &st->ring[k % RING];
        out->t = -1;
        for (int tries = 0; tries < 4; tries++) {
            uint32_t s0 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
            if (s0 & 1)
                continue;
            memcpy(out, e, sizeof *out);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) == s0)
                break;
            out->t = -1;
        }
        if (out->t >= 0 && (out->t <= now - window || k == first))
            return 0;
    }
    return -1;
}

/* Squid's 5min/60min keys: rates over [a, s]. */
static void render_rates(const struct sample *a, const pd_stats_snapshot *s, struct evbuffer *out)
{
    double d = s->now - a->t > 0.001 ? s->now - a->t : 0.001;
#define DELTA(id) ((double)(s->v[PD_STAT_##id] >= a->v[PD_STAT_##id]                            \
                                ? s->v[PD_STAT_##id] - a->v[PD_STAT_##id] : 0))
    uint64_t req_a = 0, err_a = 0;
    for (int i = PD_STAT_REQ_GET; i <= PD_STAT_REQ_OTHER; i++)
        req_a += a->v[i];
    for (int i = PD_STAT_ERR_ACCESS_DENIED; i <= PD_STAT_ERR_OTHER; i++)
        err_a += a->v[i];
    uint64_t req = requests(s), err = errors(s);
    double cpu = s->cpu_seconds > a->cpu ? s->cpu_seconds - a->cpu : 0;
    char start[64], now[64];
    http_date(a->t, start, sizeof start);
    http_date(s->now, now, sizeof now);
    evbuffer_add_printf(out,
        "sample_start_time = %.6f (%s)\n"
        "sample_end_time = %.6f (%s)\n"
        "client_http.requests = %f/sec\n"
        "client_http.hits = %f/sec\n"
        "client_http.errors = %f/sec\n"
        "client_http.kbytes_in = %f/sec\n"
        "client_http.kbytes_out = %f/sec\n"
        "server.all.requests = %f/sec\n"
        "server.all.kbytes_in = %f/sec\n"
        "server.all.kbytes_out = %f/sec\n"
        "server.http.requests = %f/sec\n"
        "server.http.kbytes_in = %f/sec\n"
        "server.http.kbytes_out = %f/sec\n"
        "dns.queries = %f/sec\n"
        "cpu_time = %f seconds\n"
        "wall_time = %f seconds\n"
        "cpu_usage = %f%%\n",
        a->t, start, s->now, now, (double)(req >= req_a ? req - req_a : 0) / d,
        DELTA(CACHE_HITS) / d, (double)(err >= err_a ? err - err_a : 0) / d,
        DELTA(CLIENT_BYTES_IN) / 1024.0 / d, DELTA(CLIENT_BYTES_OUT) / 1024.0 / d,
        DELTA(ORIGIN_REQUESTS) / d, DELTA(ORIGIN_BYTES_IN) / 1024.0 / d,
        DELTA(ORIGIN_BYTES_OUT) / 1024.0 / d, DELTA(ORIGIN_REQUESTS) / d,
        DELTA(ORIGIN_BYTES_IN) / 1024.0 / d, DELTA(ORIGIN_BYTES_OUT) / 1024.0 / d,
        DELTA(DNS_QUERIES) / d, cpu, d, 100.0 * cpu / d);
#undef DELTA
}

/*
 * mgr:5min and mgr:60min: the counters' rates since the master's sample of
 * 5 (60) minutes ago (it samples once a minute, and once at start). While
 * proxyd has run for less, the window is since its first sample, and the
 * page says so.
 */
static void render_mgr_window(const pd_stats *st, const pd_stats_snapshot *s, int minutes,
                              struct evbuffer *out)
{
    struct sample a;
    if (sample_before(st, s->now, minutes * 60.0, &a) < 0) {
        evbuffer_add_printf(out, "not available: no sample of the counters yet\n");
        return;
    }
    double w = s->now - a.t;
    if (w + PD_STATS_SAMPLE_S < minutes * 60.0)
        evbuffer_add_printf(out, "window = %.0f seconds (proxyd has run for less than %d "
                                 "minutes: since its first sample)\n", w, minutes);
    else
        evbuffer_add_printf(out, "window = %.0f seconds (samples are taken once a minute)\n", w);
    render_rates(&a, s, out);
}

/* mgr:utilization: Squid's sections, for the windows kept (5 and 60 minutes) and since start. */
static void render_mgr_utilization(const pd_stats *st, const pd_stats_snapshot *s,
                                   struct evbuffer *out)
{
    evbuffer_add_printf(out, "Cache Utilisation:\n\nLast 5 minutes:\n");
    render_mgr_window(st, s, 5, out);
    evbuffer_add_printf(out, "\nLast hour:\n");
    render_mgr_window(st, s, 60, out);
    evbuffer_add_printf(out, "\nLast 8 hours, Last day, Last 3 days:\nnot available: proxyd "
                             "keeps samples for an hour\n\nTotals since cache startup:\n");
    struct sample zero;
    memset(&zero, 0, sizeof zero);
    zero.t = s->started;
    render_rates(&zero, s, out);
}

/* mgr:mem. proxyd has no memory pools (Squid's table): the processes' and the cache's figures. */
static void render_mgr_mem(const pd_stats_snapshot *s, struct evbuffer *out)
{
    uint64_t rss = 0;
    evbuffer_add_printf(out, "proxyd has no memory pools (Squid's pool table is not available).\n"
                             "Worker processes (resident memory, from /proc):\n"
                             "worker\tgeneration\tpid\trss_KB\n");
    for (int k = 0; k < s->n_workers; k++) {
        const pd_stats_worker *w = &s->workers[k];
        rss += w->rss_bytes;
        evbuffer_add_printf(out, "%d\t%d\t%d\t%llu\n", w->worker, w->generation, (int)w->pid,
                            (unsigned long long)(w->rss_bytes >> 10));
    }
    evbuffer_add_printf(out,
        "Total resident memory of the workers:\t%llu KB\n"
        "Shared memory cache (cache_mem):\t%llu KB\n"
        "\tused:\t%llu KB\n"
        "\tfree:\t%llu KB\n"
        "\tobjects:\t%llu\n"
        "\tmetadata:\t%llu KB\n",
        (unsigned long long)(rss >> 10), (unsigned long long)(s->cache_mem >> 10),
        (unsigned long long)(s->v[PD_STAT_CACHE_BYTES_USED] >> 10),
        (unsigned long long)(s->v[PD_STAT_CACHE_BYTES_FREE] >> 10),
        (unsigned long long)s->v[PD_STAT_CACHE_OBJECTS],
        (unsigned long long)(s->v[PD_STAT_CACHE_METADATA_BYTES] >> 10));
}

/* mgr:ipcache: the lookups of all workers; the entries are each worker's own. */
static void render_mgr_ipcache(const pd_stats_snapshot *s, struct evbuffer *out)
{
    uint64_t q = s->v[PD_STAT_DNS_QUERIES], h = s->v[PD_STAT_DNS_CACHE_HITS];
    evbuffer_add_printf(out,
        "IP Cache Statistics:\n"
        "IPcache Entries: not available (each worker keeps its own cache)\n"
        "IPcache Requests: %llu\n"
        "IPcache Hits: %llu\n"
        "IPcache Misses: %llu\n"
        "IPcache Failures: %llu\n",
        (unsigned long long)(q + h), (unsigned long long)h, (unsigned long long)q,
        (unsigned long long)s->v[PD_STAT_DNS_FAILURES]);
}

/* Squid's helper pages (basicauthenticator, external_acl, url_rewriter, store_id): the
 * pools of one kind, each summed over the workers that run it. */
static void render_mgr_helpers(const pd_stats_snapshot *s, enum pd_helper_kind kind,
                               struct evbuffer *out)
{
    const char *title = kind == PD_HELPER_KIND_AUTH       ? "Basic Authenticator Statistics"
                        : kind == PD_HELPER_KIND_EXTERNAL ? "External ACL Statistics"
                        : kind == PD_HELPER_KIND_REWRITE  ? "Redirector Statistics"
                                                          : "Store ID Statistics";
    int n = 0;
    for (int k = 0; k < s->n_helpers; k++) {
        const pd_stats_helper *e = &s->helpers[k];
        if (e->kind != (int32_t)kind)
            continue;
        const uint64_t *c = e->c;
        uint64_t replies = c[PD_HSTAT_REPLIES_OK] + c[PD_HSTAT_REPLIES_ERR] +
                           c[PD_HSTAT_REPLIES_BH] + c[PD_HSTAT_REPLIES_OTHER];
        if (n++)
            evbuffer_add_printf(out, "\n");
        evbuffer_add_printf(
            out,
            "%s: %s\n"
            "program: %s\n"
            "workers running it: %d\n"
            "number active: %llu (busy %llu)\n"
            "requests sent: %llu\n"
            "replies received: %llu (OK %llu, ERR %llu, BH %llu, other %llu)\n"
            "queue length: %llu (peak %llu)\n"
            "queue overflows: %llu\n"
            "request timeouts: %llu\n"
            "restarts: %llu\n"
            "avg service time: %.3f msec\n",
            title, e->name, e->program, s->helper_workers[k],
            (unsigned long long)c[PD_HSTAT_CHILDREN], (unsigned long long)c[PD_HSTAT_BUSY],
            (unsigned long long)c[PD_HSTAT_REQUESTS], (unsigned long long)replies,
            (unsigned long long)c[PD_HSTAT_REPLIES_OK], (unsigned long long)c[PD_HSTAT_REPLIES_ERR],
            (unsigned long long)c[PD_HSTAT_REPLIES_BH],
            (unsigned long long)c[PD_HSTAT_REPLIES_OTHER], (unsigned long long)c[PD_HSTAT_QUEUE],
            (unsigned long long)c[PD_HSTAT_QUEUE_PEAK], (unsigned long long)c[PD_HSTAT_OVERFLOWS],
            (unsigned long long)c[PD_HSTAT_TIMEOUTS], (unsigned long long)c[PD_HSTAT_RESTARTS],
            replies ? (double)c[PD_HSTAT_RESPONSE_US] / 1000.0 / (double)replies : 0.0);
    }
    if (!n)
        evbuffer_add_printf(out, "%s:\nnone configured\n", title);
}

int pd_stats_mgr_page(const char *name, size_t len, struct evbuffer *out)
{
    static const char *const pages[] = { "menu", "info", "counters", "5min", "60min",
                                         "utilization", "mem", "ipcache", "fqdncache",
                                         "basicauthenticator", "external_acl", "url_rewriter",
                                         "store_id" };
    enum { P_MENU, P_INFO, P_COUNTERS, P_5MIN, P_60MIN, P_UTIL, P_MEM, P_IPCACHE, P_FQDN,
           P_AUTH, P_EXT, P_REWRITE, P_STOREID, P_N };
    int page = -1;
    for (int i = 0; i < P_N; i++)
        if (len == strlen(pages[i]) && !memcmp(name, pages[i], len))
            page = i;
    if (page < 0)
        return -1;
    if (page == P_MENU) {
        evbuffer_add_printf(out, " index                  \tCache Manager Interface\tpublic\n"
                                 " menu                   \tCache Manager Menu\tpublic\n"
                                 " info                   \tGeneral Runtime Information\tpublic\n"
                                 " counters               \tTraffic and Resource Counters\tpublic\n"
                                 " 5min                   \t5 Minute Average of Counters\tpublic\n"
                                 " 60min                  \t60 Minute Average of Counters\tpublic\n"
                                 " utilization            \tCache Utilization\tpublic\n"
                                 " mem                    \tMemory Utilization\tpublic\n"
                                 " ipcache                \tIP Cache Stats\tpublic\n"
                                 " fqdncache              \tFQDN Cache Stats (not kept)\tpublic\n"
                                 " basicauthenticator     \tBasic User Authenticator Stats\tpublic\n"
                                 " external_acl           \tExternal ACL stats\tpublic\n"
                                 " url_rewriter           \tURL Rewriter Stats\tpublic\n"
                                 " store_id               \tStoreId helper Stats\tpublic\n"
                                 " client_list            \tCache Client List (this worker)\tpublic\n"
                                 " active_requests        \tClient-side Active Requests (this worker)\tpublic\n");
        return 0;
    }
    if (page == P_FQDN) {
        evbuffer_add_printf(out, "FQDN Cache Statistics:\n"
                                 "not available: proxyd does no reverse (PTR) lookups, so it keeps "
                                 "no FQDN cache.\n");
        return 0;
    }
    pd_stats_snapshot *snap = malloc(sizeof *snap);
    if (!snap)
        return -1;
    pd_stats_take(self, snap);
    switch (page) {
    case P_INFO: pd_stats_render_mgr_info(snap, out); break;
    case P_COUNTERS: pd_stats_render_mgr_counters(snap, out); break;
    case P_MEM: render_mgr_mem(snap, out); break;
    case P_IPCACHE: render_mgr_ipcache(snap, out); break;
    case P_AUTH: render_mgr_helpers(snap, PD_HELPER_KIND_AUTH, out); break;
    case P_EXT: render_mgr_helpers(snap, PD_HELPER_KIND_EXTERNAL, out); break;
    case P_REWRITE: render_mgr_helpers(snap, PD_HELPER_KIND_REWRITE, out); break;
    case P_STOREID: render_mgr_helpers(snap, PD_HELPER_KIND_STOREID, out); break;
    case P_5MIN: render_mgr_window(self, snap, 5, out); break;
    case P_60MIN: render_mgr_window(self, snap, 60, out); break;
    default: render_mgr_utilization(self, snap, out); break;
    }
    free(snap);
    return 0;
}

void pd_stats_print_metrics(FILE *out)
{
    fprintf(out, "| metric | type | labels | help |\n| --- | --- | --- | --- |\n");
    for (int i = 0; i < PD_STAT__N;) {
        const pd_stat_def *d = &pd_stat_defs[i];
        fprintf(out, "| `%s` | %s | ", d->name, d->type == PD_STAT_COUNTER ? "counter" : "gauge");
        int j = i;
        for (; j < PD_STAT__N && !strcmp(pd_stat_defs[j].name, d->name); j++) {
            const char *labels = pd_stat_defs[j].labels;
            if (j > i)
                fputs(", ", out);
            if (labels)
                fputs(labels, out);
        }
        fputs(" | ", out);
        if (d->help)
            fputs(d->help, out);
        fputs(" |\n", out);
        i = j;
    }
    for (int h = 0; h < PD_HIST__N; h++)
        fprintf(out, "| `%s` | histogram | le | %s |\n", hist_defs[h].name, hist_defs[h].help);
    for (int i = 0; i < PD_HSTAT__N;) {
        fprintf(out, "| `%s` | %s | helper, kind", helper_defs[i].name,
                helper_defs[i].type == PD_STAT_COUNTER ? "counter" : "gauge");
        int j = i;
        for (; j < PD_HSTAT__N && !strcmp(helper_defs[j].name, helper_defs[i].name); j++)
            if (helper_defs[j].labels[0])
                fprintf(out, ", %s", helper_defs[j].labels);
        fputs(" | ", out);
        if (helper_defs[i].help)
            fputs(helper_defs[i].help, out);
        fputs(" |\n", out);
        i = j;
    }
    fprintf(out, "| `proxyd_worker_cpu_seconds_total` | counter | worker, generation | CPU time "
                 "(user + system) of each worker process. |\n"
                 "| `proxyd_worker_resident_memory_bytes` | gauge | worker, generation | "
                 "Resident set size of each worker process. |\n");
}
