/*
 * Unit tests for stats: slots summed over worker processes (real forks
 * writing the shared segment), slot claim/release, histogram buckets, the
 * transaction mapping, health, the cache manager pages, and the Prometheus
 * text output checked line by line by a strict parser of format 0.0.4.
 */
#include <check.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "proxyd/http_msg.h"
#include "proxyd/stats.h"
#include "check_run.h"

static pd_stats *st;
static pd_stats_snapshot *snap;

static void setup(void)
{
    st = pd_stats_create();
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_eq(pd_stats_self(), st);
    snap = calloc(1, sizeof *snap);
    ck_assert_ptr_nonnull(snap);
}

static void teardown(void)
{
    pd_stats_set_cache_hook(NULL, NULL);
    pd_stats_destroy(st);
    free(snap);
}

/* evbuffer contents as a NUL-terminated string (caller frees) */
static char *text_of(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

START_TEST(forked_workers_sum_over_slots)
{
    enum { WORKERS = 4, ADDS = 1000 };
    pid_t kids[WORKERS];
    for (int k = 0; k < WORKERS; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            /* generation 1 and 2 use different slots for the same worker number */
            pd_stats_slot *s = pd_stats_worker_slot(pd_stats_self(), 1 + (k & 1), k / 2);
            for (int i = 0; i < ADDS; i++) {
                pd_stats_add(s, PD_STAT_REQ_GET, 1);
                pd_stats_add(s, PD_STAT_CLIENT_BYTES_OUT, k + 1);
            }
            _exit(0);
        }
    }
    for (int k = 0; k < WORKERS; k++) {
        int status;
        ck_assert_int_eq(waitpid(kids[k], &status, 0), kids[k]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_REQ_GET], WORKERS * ADDS);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_BYTES_OUT], ADDS * (1 + 2 + 3 + 4));
    ck_assert_uint_eq(snap->v[PD_STAT_REQ_POST], 0);
}
END_TEST

START_TEST(slot_index_bounds)
{
    ck_assert_ptr_null(pd_stats_worker_slot(st, 1, -1));
    ck_assert_ptr_null(pd_stats_worker_slot(st, 1, PD_STATS_MAX_WORKERS));
    ck_assert_ptr_null(pd_stats_worker_slot(NULL, 1, 0));
    ck_assert_ptr_nonnull(pd_stats_worker_slot(st, 1, PD_STATS_MAX_WORKERS - 1));
    ck_assert_ptr_ne(pd_stats_worker_slot(st, 1, 0), pd_stats_worker_slot(st, 2, 0));
    ck_assert_ptr_eq(pd_stats_worker_slot(st, 1, 3), pd_stats_worker_slot(st, 3, 3));
    pd_stats_add(NULL, PD_STAT_REQ_GET, 1); /* no slot: no-op, no crash */
    pd_stats_observe(NULL, PD_HIST_TTFB, 5);
}
END_TEST

START_TEST(claim_and_release_keep_counters_zero_gauges)
{
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, 0);
    pd_stats_set_host(st, 1, 1);
    pd_stats_slot_claim(s, getpid(), 1, 0);
    pd_stats_add(s, PD_STAT_CLIENT_CONNS_TOTAL, 5);
    pd_stats_add(s, PD_STAT_CLIENT_CONNS_OPEN, 3);
    pd_stats_slot_ready(s);
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_WORKERS_UP], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_OPEN], 3);
    ck_assert_int_eq(snap->n_workers, 1);
    ck_assert_int_eq(snap->workers[0].pid, getpid());
    ck_assert(snap->workers[0].rss_bytes > 0);
    /* another pid does not own the slot: nothing changes */
    pd_stats_slot_release(s, getpid() + 100000);
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_OPEN], 3);
    pd_stats_slot_release(s, getpid());
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_OPEN], 0);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_TOTAL], 5);
    ck_assert_uint_eq(snap->v[PD_STAT_WORKERS_UP], 0);
    ck_assert_int_eq(snap->n_workers, 0);
    /* a restarted worker claims the slot again: gauges from zero, counters go on */
    pd_stats_add(s, PD_STAT_CLIENT_CONNS_OPEN, 7); /* stale gauge of a dead process */
    pd_stats_slot_claim(s, getpid(), 1, 0);
    pd_stats_add(s, PD_STAT_CLIENT_CONNS_TOTAL, 1);
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_OPEN], 0);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_CONNS_TOTAL], 6);
    ck_assert_uint_eq(snap->v[PD_STAT_WORKER_STARTS], 2);
}
END_TEST

/* An observation lands in the first bucket whose bound is >= it. */
static const struct {
    int64_t us;
    int bucket; /* index of the first (cumulative) bucket that counts it */
} hist_cases[] = {
    { 0, 0 },        { 1, 0 },         { 500, 0 },       { 501, 1 },
    { 1000, 1 },     { 1001, 2 },      { 99999, 7 },     { 100000, 7 },
    { 100001, 8 },   { 1000000, 10 },  { 59999999, 15 }, { 60000000, 15 },
    { 60000001, 16 }, { INT64_MAX / 4, 16 },
};

START_TEST(histogram_bucket_boundaries)
{
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, _i % 3);
    pd_stats_observe(s, PD_HIST_REQUEST_DURATION, hist_cases[_i].us);
    pd_stats_observe(s, PD_HIST_REQUEST_DURATION, -1); /* ignored */
    pd_stats_take(st, snap);
    for (int b = 0; b < PD_STATS_NBUCKETS; b++)
        ck_assert_msg(snap->bucket[PD_HIST_REQUEST_DURATION][b] == (b >= hist_cases[_i].bucket),
                      "us=%lld bucket %d = %llu", (long long)hist_cases[_i].us, b,
                      (unsigned long long)snap->bucket[PD_HIST_REQUEST_DURATION][b]);
    ck_assert_uint_eq(snap->sum_us[PD_HIST_REQUEST_DURATION], (uint64_t)hist_cases[_i].us);
    ck_assert_uint_eq(snap->bucket[PD_HIST_TTFB][PD_STATS_NBUCKETS - 1], 0);
}
END_TEST

START_TEST(histogram_is_cumulative_over_slots)
{
    int64_t obs[] = { 100, 700, 700, 3000, 2000000, 90000000 };
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        pd_stats_observe(pd_stats_worker_slot(st, (int)i, (int)i), PD_HIST_TTFB, obs[i]);
        sum += (uint64_t)obs[i];
    }
    pd_stats_take(st, snap);
    uint64_t *b = snap->bucket[PD_HIST_TTFB];
    ck_assert_uint_eq(b[0], 1);  /* <= 0.5 ms */
    ck_assert_uint_eq(b[1], 3);  /* <= 1 ms */
    ck_assert_uint_eq(b[3], 4);  /* <= 5 ms */
    ck_assert_uint_eq(b[11], 5); /* <= 2.5 s */
    ck_assert_uint_eq(b[15], 5); /* <= 60 s */
    ck_assert_uint_eq(b[16], 6); /* +Inf */
    for (int i = 1; i < PD_STATS_NBUCKETS; i++)
        ck_assert_uint_ge(b[i], b[i - 1]);
    ck_assert_uint_eq(snap->sum_us[PD_HIST_TTFB], sum);
}
END_TEST

static const struct {
    enum pd_result result;
    enum pd_stat_id res, kind; /* kind: CACHE_HITS/MISSES/REVALIDATIONS or PD_STAT__N */
    int hit_bytes;             /* the bytes sent count as hit bytes */
} result_cases[] = {
    { PD_R_TCP_MISS, PD_STAT_RES_TCP_MISS, PD_STAT_CACHE_MISSES, 0 },
    { PD_R_TCP_MISS_ABORTED, PD_STAT_RES_TCP_MISS_ABORTED, PD_STAT_CACHE_MISSES, 0 },
    { PD_R_TCP_MEM_HIT, PD_STAT_RES_TCP_MEM_HIT, PD_STAT_CACHE_HITS, 1 },
    { PD_R_TCP_MEM_HIT_ABORTED, PD_STAT_RES_TCP_MEM_HIT_ABORTED, PD_STAT_CACHE_HITS, 1 },
    { PD_R_TCP_IMS_HIT, PD_STAT_RES_TCP_IMS_HIT, PD_STAT_CACHE_HITS, 1 },
    { PD_R_TCP_INM_HIT, PD_STAT_RES_TCP_INM_HIT, PD_STAT_CACHE_HITS, 1 },
    { PD_R_TCP_CF_MISS, PD_STAT_RES_TCP_CF_MISS, PD_STAT_CACHE_MISSES, 0 },
    { PD_R_TCP_CF_MISS_ABORTED, PD_STAT_RES_TCP_CF_MISS_ABORTED, PD_STAT_CACHE_MISSES, 0 },
    { PD_R_TCP_REFRESH_UNMODIFIED, PD_STAT_RES_TCP_REFRESH_UNMODIFIED,
      PD_STAT_CACHE_REVALIDATIONS, 1 },
    { PD_R_TCP_REFRESH_MODIFIED, PD_STAT_RES_TCP_REFRESH_MODIFIED, PD_STAT_CACHE_REVALIDATIONS,
      0 },
    { PD_R_TCP_DENIED, PD_STAT_RES_TCP_DENIED, PD_STAT__N, 0 },
    { PD_R_TCP_TUNNEL, PD_STAT_RES_TCP_TUNNEL, PD_STAT__N, 0 },
    { PD_R_TCP_REDIRECT, PD_STAT_RES_TCP_REDIRECT, PD_STAT__N, 0 },
    { PD_R_NONE_NONE, PD_STAT_RES_NONE_NONE, PD_STAT__N, 0 },
    { PD_R_UNSET, PD_STAT_RES_NONE_NONE, PD_STAT__N, 0 },
};

START_TEST(transaction_counts_every_dimension)
{
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, 1);
    pd_stats_txn t = {
        .method_id = PD_M_POST, .result = result_cases[_i].result, .status = 404,
        .client_in = 11, .client_out = 22, .origin_in = 33, .origin_out = 44,
        .total_us = 2000, .ttfb_us = -1,
    };
    pd_stats_transaction(s, &t);
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_REQ_POST], 1);
    ck_assert_uint_eq(snap->v[result_cases[_i].res], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_4XX], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_BYTES_IN], 11);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_BYTES_OUT], 22);
    ck_assert_uint_eq(snap->v[PD_STAT_CLIENT_HIT_BYTES_OUT], result_cases[_i].hit_bytes ? 22 : 0);
    ck_assert_uint_eq(snap->v[PD_STAT_ORIGIN_BYTES_IN], 33);
    ck_assert_uint_eq(snap->v[PD_STAT_ORIGIN_BYTES_OUT], 44);
    enum pd_stat_id kinds[] = { PD_STAT_CACHE_HITS, PD_STAT_CACHE_MISSES,
                                PD_STAT_CACHE_REVALIDATIONS };
    for (int k = 0; k < 3; k++)
        ck_assert_uint_eq(snap->v[kinds[k]], kinds[k] == result_cases[_i].kind);
    ck_assert_uint_eq(snap->bucket[PD_HIST_REQUEST_DURATION][PD_STATS_NBUCKETS - 1], 1);
    ck_assert_uint_eq(snap->bucket[PD_HIST_TTFB][PD_STATS_NBUCKETS - 1], 0); /* no first byte */
}
END_TEST

START_TEST(status_classes_and_methods)
{
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, 0);
    int statuses[] = { 0, 100, 199, 200, 304, 403, 502, 599, 600, 99 };
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        pd_stats_transaction(s, &(pd_stats_txn){ .method_id = (int)i, .status = statuses[i],
                                                 .ttfb_us = -1 });
    pd_stats_take(st, snap);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_NONE], 3); /* 0, 600, 99 */
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_1XX], 2);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_2XX], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_3XX], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_4XX], 1);
    ck_assert_uint_eq(snap->v[PD_STAT_STATUS_5XX], 2);
    ck_assert_int_eq(pd_stats_method_id(PD_M_GET), PD_STAT_REQ_GET);
    ck_assert_int_eq(pd_stats_method_id(PD_M_CONNECT), PD_STAT_REQ_CONNECT);
    ck_assert_int_eq(pd_stats_method_id(PD_M_OPTIONS), PD_STAT_REQ_OTHER);
    ck_assert_int_eq(pd_stats_method_id(-5), PD_STAT_REQ_OTHER);
}
END_TEST

START_TEST(label_tables_round_trip)
{
    /* every labelled row of the result and error families maps back to itself */
    for (int i = 0; i < PD_STAT__N; i++) {
        const pd_stat_def *d = &pd_stat_defs[i];
        char v[64];
        const char *q = strchr(d->labels, '"');
        if (!q)
            continue;
        snprintf(v, sizeof v, "%.*s", (int)strcspn(q + 1, "\""), q + 1);
        if (!strcmp(d->name, "proxyd_results_total")) {
            /* generated from the result table: the row of a code is labelled with its text */
            int found = 0;
            for (int r = PD_R_UNSET + 1; r < PD_R__N; r++)
                if (pd_stats_result_id((enum pd_result)r) == (enum pd_stat_id)i) {
                    ck_assert_str_eq(pd_result_text((enum pd_result)r), v);
                    found++;
                }
            ck_assert_int_eq(found, 1);
        }
        if (!strcmp(d->name, "proxyd_errors_total"))
            ck_assert_int_eq(pd_stats_error_id(v), i);
    }
    ck_assert_int_eq(pd_stats_error_id("ERR_NO_SUCH_THING"), PD_STAT_ERR_OTHER);
    ck_assert_int_eq(pd_stats_error_id(NULL), PD_STAT_ERR_OTHER);
    ck_assert_int_eq(pd_stats_error_id("ERR_DNS_FAIL"), PD_STAT_ERR_DNS_FAIL);
}
END_TEST

static void cache_down(void *arg, pd_stats_cache *out)
{
    out->configured = 1;
    out->attached = *(int *)arg;
    out->objects = 3;
    out->bytes_used = 4096;
    out->bytes_free = 1024;
    out->evictions = 9;
}

START_TEST(health_needs_workers_and_cache)
{
    char why[160];
    pd_stats_set_host(st, 2, 2);
    pd_stats_slot *a = pd_stats_worker_slot(st, 2, 0), *b = pd_stats_worker_slot(st, 2, 1);
    pd_stats_slot_claim(a, getpid(), 2, 0);
    pd_stats_slot_ready(a);
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 0);
    ck_assert_str_eq(why, "1 of 2 workers of generation 2 are up");
    pd_stats_slot_claim(b, getpid(), 2, 1);
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 0); /* claimed, not ready */
    pd_stats_slot_ready(b);
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 1);
    ck_assert_str_eq(why, "ok");
    /* a worker of the previous generation does not count */
    pd_stats_set_host(st, 3, 2);
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 0);
    pd_stats_set_host(st, 2, 2);
    int attached = 0;
    pd_stats_set_cache_hook(cache_down, &attached);
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 0);
    ck_assert_str_eq(why, "cache segment not attached");
    ck_assert_uint_eq(snap->v[PD_STAT_CACHE_OBJECTS], 3);
    ck_assert_uint_eq(snap->v[PD_STAT_CACHE_EVICTIONS], 9);
    attached = 1;
    pd_stats_take(st, snap);
    ck_assert_int_eq(pd_stats_healthy(snap, why, sizeof why), 1);
}
END_TEST

/* ---- a strict parser of the Prometheus text format 0.0.4 ---------------- */

struct series {
    char name[128];
    char labels[256];
    double value;
};

struct family {
    char name[128];
    char type[16];
    int help, samples;
};

struct prom {
    struct series s[1024];
    int n;
    struct family f[256];
    int nf;
};

static int metric_name_ok(const char *p, size_t n)
{
    if (!n || !(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':'))
            return 0;
    return 1;
}

static struct family *family_of(struct prom *pr, const char *name)
{
    for (int i = 0; i < pr->nf; i++)
        if (!strcmp(pr->f[i].name, name))
            return &pr->f[i];
    return NULL;
}

/* Family a sample name belongs to: itself, or a histogram's base name. */
static struct family *sample_family(struct prom *pr, const char *name)
{
    struct family *f = family_of(pr, name);
    if (f)
        return f;
    static const char *const suffix[] = { "_bucket", "_sum", "_count" };
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(name), k = strlen(suffix[i]);
        if (n > k && !strcmp(name + n - k, suffix[i])) {
            char base[128];
            snprintf(base, sizeof base, "%.*s", (int)(n - k), name);
            f = family_of(pr, base);
            if (f && !strcmp(f->type, "histogram"))
                return f;
        }
    }
    return NULL;
}

/* Parse text; fails the test with the line on the first violation. */
static void prom_parse(const char *text, struct prom *pr)
{
    memset(pr, 0, sizeof *pr);
    const char *p = text;
    int lineno = 0;
    struct family *cur = NULL;
    ck_assert_msg(*text && text[strlen(text) - 1] == '\n', "output must end with a newline");
    while (*p) {
        const char *eol = strchr(p, '\n');
        ck_assert_ptr_nonnull(eol);
        char line[512];
        size_t len = (size_t)(eol - p);
        ck_assert_msg(len > 0 && len < sizeof line, "line %d: empty or too long", lineno + 1);
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;
        lineno++;
        for (size_t i = 0; i < len; i++)
            ck_assert_msg((unsigned char)line[i] >= 0x20 && line[i] != 0x7f, "line %d: control byte",
                          lineno);
        if (line[0] == '#') {
            char kw[8], name[128];
            int off = 0;
            ck_assert_msg(sscanf(line, "# %7s %127s %n", kw, name, &off) == 2,
                          "line %d: bad comment '%s'", lineno, line);
            ck_assert_msg(metric_name_ok(name, strlen(name)), "line %d: bad name", lineno);
            struct family *f = family_of(pr, name);
            if (!f) {
                ck_assert_int_lt(pr->nf, 256);
                f = &pr->f[pr->nf++];
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            ck_assert_msg(f->samples == 0, "line %d: %s after samples of %s", lineno, kw, name);
            if (!strcmp(kw, "HELP")) {
                ck_assert_msg(!f->help, "line %d: second HELP for %s", lineno, name);
                ck_assert_msg(line[off] != '\0', "line %d: empty HELP", lineno);
                f->help = 1;
            } else {
                ck_assert_msg(!strcmp(kw, "TYPE"), "line %d: unknown keyword %s", lineno, kw);
                ck_assert_msg(!f->type[0], "line %d: second TYPE for %s", lineno, name);
                const char *t = line + off;
                ck_assert_msg(!strcmp(t, "counter") || !strcmp(t, "gauge") ||
                                  !strcmp(t, "histogram"),
                              "line %d: bad type '%s'", lineno, t);
                snprintf(f->type, sizeof f->type, "%s", t);
            }
            cur = f;
            continue;
        }
        /* sample: name[{labels}] value */
        size_t nl = strcspn(line, "{ ");
        ck_assert_msg(metric_name_ok(line, nl), "line %d: bad metric name", lineno);
        ck_assert_int_lt(pr->n, 1024);
        struct series *s = &pr->s[pr->n++];
        snprintf(s->name, sizeof s->name, "%.*s", (int)nl, line);
        const char *q = line + nl;
        if (*q == '{') {
            const char *ls = ++q;
            for (;;) {
                size_t kn = strcspn(q, "=");
                ck_assert_msg(metric_name_ok(q, kn) && strncmp(q, "__", 2),
                              "line %d: bad label name", lineno);
                q += kn;
                ck_assert_msg(q[0] == '=' && q[1] == '"', "line %d: label needs =\"", lineno);
                q += 2;
                while (*q && *q != '"') {
                    if (*q == '\\') {
                        ck_assert_msg(q[1] == '\\' || q[1] == '"' || q[1] == 'n',
                                      "line %d: bad escape", lineno);
                        q++;
                    }
                    q++;
                }
                ck_assert_msg(*q == '"', "line %d: unterminated label value", lineno);
                q++;
                if (*q == ',') {
                    q++;
                    continue;
                }
                ck_assert_msg(*q == '}', "line %d: expected , or }", lineno);
                snprintf(s->labels, sizeof s->labels, "%.*s", (int)(q - ls), ls);
                q++;
                break;
            }
        }
        ck_assert_msg(*q == ' ', "line %d: one space before the value", lineno);
        q++;
        char *end;
        s->value = strtod(q, &end);
        ck_assert_msg(end != q && *end == '\0', "line %d: bad value '%s'", lineno, q);
        struct family *f = sample_family(pr, s->name);
        ck_assert_msg(f && f == cur, "line %d: sample %s outside its family's block", lineno,
                      s->name);
        ck_assert_msg(f->type[0] && f->help, "line %d: family %s lacks TYPE or HELP", lineno,
                      f->name);
        if (!strcmp(f->type, "counter"))
            ck_assert_msg(s->value >= 0, "line %d: negative counter", lineno);
        f->samples++;
        for (int i = 0; i < pr->n - 1; i++)
            ck_assert_msg(strcmp(pr->s[i].name, s->name) || strcmp(pr->s[i].labels, s->labels),
                          "line %d: duplicate series %s{%s}", lineno, s->name, s->labels);
    }
}

static double prom_value(const struct prom *pr, const char *name, const char *labels)
{
    for (int i = 0; i < pr->n; i++)
        if (!strcmp(pr->s[i].name, name) && !strcmp(pr->s[i].labels, labels))
            return pr->s[i].value;
    ck_abort_msg("no series %s{%s}", name, labels);
    return -1;
}

/* Histogram rules: le increasing, +Inf last, cumulative, _count == +Inf. */
static void check_histogram(const struct prom *pr, const char *base)
{
    char bn[160], cn[160], sn[160];
    snprintf(bn, sizeof bn, "%s_bucket", base);
    snprintf(cn, sizeof cn, "%s_count", base);
    snprintf(sn, sizeof sn, "%s_sum", base);
    double last_le = -1, last_v = 0;
    int n = 0, inf = 0;
    for (int i = 0; i < pr->n; i++) {
        if (strcmp(pr->s[i].name, bn))
            continue;
        ck_assert_msg(!inf, "bucket after +Inf");
        ck_assert(!strncmp(pr->s[i].labels, "le=\"", 4));
        double le = strtod(pr->s[i].labels + 4, NULL);
        if (!strcmp(pr->s[i].labels, "le=\"+Inf\""))
            inf = 1;
        ck_assert_msg(le > last_le, "le not increasing in %s", base);
        ck_assert_msg(pr->s[i].value >= last_v, "buckets of %s not cumulative", base);
        last_le = le;
        last_v = pr->s[i].value;
        n++;
    }
    ck_assert_int_eq(n, PD_STATS_NBUCKETS);
    ck_assert(inf);
    ck_assert(prom_value(pr, cn, "") == last_v);
    ck_assert(prom_value(pr, sn, "") >= 0);
}

START_TEST(prometheus_output_is_strict_text_format)
{
    pd_stats_set_host(st, 4, 1);
    pd_stats_slot *s = pd_stats_worker_slot(st, 4, 0);
    pd_stats_slot_claim(s, getpid(), 4, 0);
    pd_stats_slot_ready(s);
    for (int i = 0; i < 5; i++)
        pd_stats_transaction(s, &(pd_stats_txn){ .method_id = PD_M_GET, .result = PD_R_TCP_MISS,
                                                 .status = 200, .client_out = 100,
                                                 .total_us = 1500 * (i + 1), .ttfb_us = 700 });
    pd_stats_add(s, PD_STAT_ERR_DNS_FAIL, 2);
    pd_stats_take(st, snap);
    struct evbuffer *b = evbuffer_new();
    pd_stats_render_prometheus(snap, b);
    char *text = text_of(b);
    struct prom *pr = malloc(sizeof *pr);
    prom_parse(text, pr);
    ck_assert(prom_value(pr, "proxyd_requests_total", "method=\"GET\"") == 5);
    ck_assert(prom_value(pr, "proxyd_requests_total", "method=\"HEAD\"") == 0);
    ck_assert(prom_value(pr, "proxyd_results_total", "code=\"TCP_MISS\"") == 5);
    ck_assert(prom_value(pr, "proxyd_errors_total", "kind=\"ERR_DNS_FAIL\"") == 2);
    ck_assert(prom_value(pr, "proxyd_client_sent_bytes_total", "") == 500);
    ck_assert(prom_value(pr, "proxyd_config_generation", "") == 4);
    ck_assert(prom_value(pr, "proxyd_workers_up", "") == 1);
    ck_assert(prom_value(pr, "proxyd_request_duration_seconds_count", "") == 5);
    ck_assert(fabs(prom_value(pr, "proxyd_request_duration_seconds_sum", "") - 0.0225) < 1e-9);
    ck_assert(prom_value(pr, "proxyd_request_duration_seconds_bucket", "le=\"0.0025\"") == 1);
    ck_assert(prom_value(pr, "proxyd_request_duration_seconds_bucket", "le=\"0.005\"") == 3);
    ck_assert(prom_value(pr, "proxyd_time_to_first_byte_seconds_bucket", "le=\"0.001\"") == 5);
    ck_assert(prom_value(pr, "proxyd_worker_resident_memory_bytes",
                         "worker=\"0\",generation=\"4\"") > 0);
    check_histogram(pr, "proxyd_request_duration_seconds");
    check_histogram(pr, "proxyd_time_to_first_byte_seconds");
    /* every table row is exported exactly once, with its type */
    for (int i = 0; i < PD_STAT__N; i++) {
        struct family *f = family_of(pr, pd_stat_defs[i].name);
        ck_assert_ptr_nonnull(f);
        ck_assert_str_eq(f->type, pd_stat_defs[i].type == PD_STAT_COUNTER ? "counter" : "gauge");
        if (pd_stat_defs[i].type == PD_STAT_COUNTER)
            ck_assert_msg(strstr(f->name, "_total") == f->name + strlen(f->name) - 6,
                          "counter %s must end in _total", f->name);
    }
    free(pr);
    free(text);
    evbuffer_free(b);
}
END_TEST

START_TEST(json_and_manager_pages_show_the_numbers)
{
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, 0);
    for (int i = 0; i < 7; i++)
        pd_stats_transaction(s, &(pd_stats_txn){ .method_id = PD_M_GET, .result = PD_R_TCP_MEM_HIT,
                                                 .status = 200, .client_in = 1024,
                                                 .client_out = 2048, .ttfb_us = -1 });
    pd_stats_take(st, snap);
    struct evbuffer *b = evbuffer_new();
    pd_stats_render_json(snap, b);
    char *j = text_of(b);
    ck_assert_ptr_nonnull(strstr(j, "\"requests_total\":{\"GET\":7,"));
    ck_assert_ptr_nonnull(strstr(j, "\"cache_hits_total\":7,"));
    int depth = 0, in_str = 0;
    for (const char *p = j; *p; p++) {
        if (*p == '"' && p[-1] != '\\')
            in_str = !in_str;
        if (!in_str && (*p == '{' || *p == '['))
            depth++;
        if (!in_str && (*p == '}' || *p == ']'))
            ck_assert_int_ge(--depth, 0);
    }
    ck_assert_int_eq(depth, 0);
    ck_assert(!in_str);
    free(j);

    ck_assert_int_eq(pd_stats_mgr_page("info", 4, b), 0);
    char *info = text_of(b);
    ck_assert_ptr_nonnull(strstr(info, "\n\tNumber of HTTP requests received:\t7\n"));
    ck_assert_ptr_nonnull(strstr(info, "\n\tHits as % of all requests:\t5min: 100.0%, 60min: 100.0%\n"));
    ck_assert_ptr_nonnull(strstr(info, "\n\tHits as % of bytes sent:\t5min: 100.0%, 60min: 100.0%\n"));
    ck_assert_ptr_nonnull(strstr(info, "\n\tUP Time:\t"));
    free(info);
    ck_assert_int_eq(pd_stats_mgr_page("counters", 8, b), 0);
    char *cnt = text_of(b);
    ck_assert_ptr_nonnull(strstr(cnt, "\nclient_http.requests = 7\n"));
    ck_assert_ptr_nonnull(strstr(cnt, "\nclient_http.hits = 7\n"));
    ck_assert_ptr_nonnull(strstr(cnt, "\nclient_http.kbytes_in = 7\n"));
    ck_assert_ptr_nonnull(strstr(cnt, "\nclient_http.kbytes_out = 14\n"));
    ck_assert_ptr_nonnull(strstr(cnt, "\nclient_http.hit_kbytes_out = 14\n")); /* all hits */
    free(cnt);
    ck_assert_int_eq(pd_stats_mgr_page("info2", 5, b), -1);
    ck_assert_int_eq(pd_stats_mgr_page("inf", 3, b), -1);
    ck_assert_int_eq(pd_stats_mgr_page("", 0, b), -1);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}
END_TEST

/* requests counted by a 5min page: its rate times its own sample times */
static double window_requests(const char *page)
{
    struct evbuffer *b = evbuffer_new();
    ck_assert_int_eq(pd_stats_mgr_page(page, strlen(page), b), 0);
    char *t = text_of(b);
    evbuffer_free(b);
    double t0, t1, rate;
    const char *a = strstr(t, "sample_start_time = "), *z = strstr(t, "sample_end_time = "),
               *r = strstr(t, "client_http.requests = ");
    ck_assert_msg(a && z && r, "%s", t);
    ck_assert_ptr_nonnull(strstr(t, "since its first sample)\n"));
    ck_assert_int_eq(sscanf(a, "sample_start_time = %lf", &t0), 1);
    ck_assert_int_eq(sscanf(z, "sample_end_time = %lf", &t1), 1);
    ck_assert_int_eq(sscanf(r, "client_http.requests = %lf/sec", &rate), 1);
    free(t);
    ck_assert(t1 >= t0);
    return rate * (t1 - t0 > 0.001 ? t1 - t0 : 0.001);
}

/* 5min/60min: the rates since a sample; after the ring wrapped, since the oldest kept */
START_TEST(rate_windows_from_the_samples)
{
    pd_stats_sample(st);
    pd_stats_slot *s = pd_stats_worker_slot(st, 1, 0);
    for (int i = 0; i < 7; i++)
        pd_stats_transaction(s, &(pd_stats_txn){ .method_id = PD_M_GET, .result = PD_R_TCP_MISS,
                                                 .status = 200, .ttfb_us = -1 });
    ck_assert(fabs(window_requests("5min") - 7.0) < 0.01);
    ck_assert(fabs(window_requests("60min") - 7.0) < 0.01);
    for (int i = 0; i < 200; i++) /* wraps the ring more than twice */
        pd_stats_sample(st);
    ck_assert(fabs(window_requests("5min")) < 0.01);
    pd_stats_transaction(s, &(pd_stats_txn){ .method_id = PD_M_GET, .result = PD_R_TCP_MISS,
                                             .status = 200, .ttfb_us = -1 });
    ck_assert(fabs(window_requests("60min") - 1.0) < 0.01);
    struct evbuffer *b = evbuffer_new();
    ck_assert_int_eq(pd_stats_mgr_page("utilization", 11, b), 0);
    char *u = text_of(b);
    ck_assert_ptr_nonnull(strstr(u, "Last 5 minutes:\nwindow = "));
    ck_assert_ptr_nonnull(strstr(u, "\nTotals since cache startup:\n"));
    free(u);
    evbuffer_free(b);
}
END_TEST

/*
 * Every Squid error name that src/client.c uses has its own counter (not
 * OTHER): the table follows the request engine. (Result codes are an enum
 * generated from one table: the compiler checks those.)
 */
START_TEST(client_c_names_are_in_the_table)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC not set (run through ctest)");
    char path[1024];
    snprintf(path, sizeof path, "%s/src/client.c", src);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    int found_err = 0;
    for (const char *p = text; (p = strchr(p, '"')); p++) {
        const char *q = p + 1;
        size_t len = strspn(q, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
        if (q[len] != '"' || len < 5)
            continue;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, q);
        if (!strncmp(name, "ERR_", 4)) {
            ck_assert_msg(pd_stats_error_id(name) != PD_STAT_ERR_OTHER, "%s has no counter", name);
            found_err++;
        }
    }
    ck_assert_int_gt(found_err, 5);
}
END_TEST

/* Helper pools: one entry per (kind, name) in a slot, summed over the workers
 * (the queue peak: the largest), gauges zeroed when the worker goes, a name
 * with a quote escaped in /metrics, and a full slot refuses a new pool. */
START_TEST(helper_pools_sum_over_workers)
{
    pd_stats_set_host(st, 1, 2);
    pd_stats_slot *w0 = pd_stats_worker_slot(st, 1, 0), *w1 = pd_stats_worker_slot(st, 1, 1);
    pd_stats_slot_claim(w0, getpid(), 1, 0);
    pd_stats_slot_claim(w1, getpid(), 1, 1);
    uint64_t *a0 = pd_stats_helper_register(w0, PD_HELPER_KIND_EXTERNAL, "g\"rp", "/bin/ext");
    uint64_t *a1 = pd_stats_helper_register(w1, PD_HELPER_KIND_EXTERNAL, "g\"rp", "/bin/ext");
    uint64_t *r0 = pd_stats_helper_register(w0, PD_HELPER_KIND_REWRITE, "g\"rp", "/bin/rw");
    ck_assert_ptr_nonnull(a0);
    ck_assert_ptr_nonnull(a1);
    ck_assert_ptr_nonnull(r0);
    ck_assert_ptr_ne(a0, r0); /* same name, other kind: another pool */
    ck_assert_ptr_eq(pd_stats_helper_register(w0, PD_HELPER_KIND_EXTERNAL, "g\"rp", "x"), a0);
    a0[PD_HSTAT_REQUESTS] = 3;
    a1[PD_HSTAT_REQUESTS] = 4;
    a0[PD_HSTAT_QUEUE_PEAK] = 5;
    a1[PD_HSTAT_QUEUE_PEAK] = 2;
    a0[PD_HSTAT_CHILDREN] = 1;
    a1[PD_HSTAT_CHILDREN] = 2;
    a0[PD_HSTAT_RESPONSE_US] = 1500000;
    r0[PD_HSTAT_REPLIES_ERR] = 9;
    pd_stats_take(st, snap);
    ck_assert_int_eq(snap->n_helpers, 2);
    const pd_stats_helper *e = &snap->helpers[0], *r = &snap->helpers[1];
    if (e->kind != PD_HELPER_KIND_EXTERNAL) {
        const pd_stats_helper *t = e;
        e = r;
        r = t;
    }
    ck_assert_uint_eq(e->c[PD_HSTAT_REQUESTS], 7);
    ck_assert_uint_eq(e->c[PD_HSTAT_QUEUE_PEAK], 5);
    ck_assert_uint_eq(e->c[PD_HSTAT_CHILDREN], 3);
    ck_assert_uint_eq(r->c[PD_HSTAT_REPLIES_ERR], 9);
    ck_assert_str_eq(e->program, "/bin/ext");
    struct evbuffer *b = evbuffer_new();
    pd_stats_render_prometheus(snap, b);
    char *t = text_of(b);
    ck_assert_ptr_nonnull(strstr(t, "\nproxyd_helper_requests_total{helper=\"g\\\"rp\","
                                    "kind=\"external_acl\"} 7\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nproxyd_helper_replies_total{helper=\"g\\\"rp\","
                                    "kind=\"url_rewrite\",result=\"ERR\"} 9\n"));
    ck_assert_ptr_nonnull(strstr(t, "\nproxyd_helper_response_seconds_total{helper=\"g\\\"rp\","
                                    "kind=\"external_acl\"} 1.500000\n"));
    free(t);
    ck_assert_int_eq(pd_stats_mgr_page("external_acl", 12, b), 0);
    t = text_of(b);
    ck_assert_ptr_nonnull(strstr(t, "External ACL Statistics: g\"rp\n"));
    ck_assert_ptr_nonnull(strstr(t, "requests sent: 7\n"));
    ck_assert_ptr_nonnull(strstr(t, "workers running it: 2\n"));
    free(t);
    evbuffer_free(b);
    /* worker 1 goes: its gauges go, its counters stay */
    pd_stats_slot_release(w1, getpid());
    pd_stats_take(st, snap);
    e = snap->helpers[0].kind == PD_HELPER_KIND_EXTERNAL ? &snap->helpers[0] : &snap->helpers[1];
    ck_assert_uint_eq(e->c[PD_HSTAT_CHILDREN], 1);
    ck_assert_uint_eq(e->c[PD_HSTAT_REQUESTS], 7);
    /* a slot holds PD_STATS_MAX_HELPERS pools */
    for (int i = 2; i < PD_STATS_MAX_HELPERS; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        ck_assert_ptr_nonnull(pd_stats_helper_register(w0, PD_HELPER_KIND_EXTERNAL, name, "p"));
    }
    ck_assert_ptr_null(pd_stats_helper_register(w0, PD_HELPER_KIND_EXTERNAL, "one more", "p"));
    ck_assert_ptr_null(pd_stats_helper_register(NULL, PD_HELPER_KIND_AUTH, "basic", "p"));
}
END_TEST

/* docs/operations.md holds the table that `proxyd --print-metrics` prints. */
START_TEST(docs_operations_md_lists_every_metric)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC not set (run through ctest)");
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/operations.md", src);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char doc[1 << 17];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    char *table = NULL;
    size_t tlen = 0;
    FILE *m = open_memstream(&table, &tlen);
    pd_stats_print_metrics(m);
    fclose(m);
    ck_assert_msg(strstr(doc, table) != NULL,
                  "docs/operations.md is stale: paste the output of proxyd --print-metrics");
    free(table);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, forked_workers_sum_over_slots);
    tcase_add_test(tc, slot_index_bounds);
    tcase_add_test(tc, claim_and_release_keep_counters_zero_gauges);
    tcase_add_loop_test(tc, histogram_bucket_boundaries, 0,
                        sizeof hist_cases / sizeof hist_cases[0]);
    tcase_add_test(tc, histogram_is_cumulative_over_slots);
    tcase_add_loop_test(tc, transaction_counts_every_dimension, 0,
                        sizeof result_cases / sizeof result_cases[0]);
    tcase_add_test(tc, status_classes_and_methods);
    tcase_add_test(tc, label_tables_round_trip);
    tcase_add_test(tc, health_needs_workers_and_cache);
    tcase_add_test(tc, prometheus_output_is_strict_text_format);
    tcase_add_test(tc, json_and_manager_pages_show_the_numbers);
    tcase_add_test(tc, rate_windows_from_the_samples);
    tcase_add_test(tc, docs_operations_md_lists_every_metric);
    tcase_add_test(tc, helper_pools_sum_over_workers);
    tcase_add_test(tc, client_c_names_are_in_the_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(stats_suite());
}
