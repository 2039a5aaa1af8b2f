/*
 * Unit tests for dns: a small DNS server on 127.0.0.1 (UDP, port 0) runs on
 * the test's event_base and answers from a table (records with a TTL,
 * NXDOMAIN, no data, or silence for a timeout), counting the questions it
 * gets. dns.c is included so that the tests can drive its clock, its cache
 * bound and its registry of live queries.
 */
#include "dns.c"

#include <check.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include "check_run.h"

/* ---- the test's DNS server ---- */

enum rcode { RC_OK = 0, RC_NXDOMAIN = 3, RC_DROP = -1 };

struct rr {
    const char *name;
    enum rcode rcode;
    uint32_t ttl;
    const char *a[3];
    const char *aaaa[3];
    int q_a, q_aaaa;                    /* questions received, by type */
};

static struct rr table[] = {
    { "www.example.com", RC_OK, 300, { "192.0.2.10", "192.0.2.11" }, { NULL }, 0, 0 },
    { "long.example.com", RC_OK, 3600, { "192.0.2.20" }, { NULL }, 0, 0 },
    { "short.example.com", RC_OK, 10, { "192.0.2.30" }, { NULL }, 0, 0 },
    { "v6only.example.com", RC_OK, 300, { NULL }, { "2001:db8::6" }, 0, 0 },
    { "nodata.example.com", RC_OK, 300, { NULL }, { NULL }, 0, 0 },
    { "nx.example.com", RC_NXDOMAIN, 0, { NULL }, { NULL }, 0, 0 },
    { "silent.example.com", RC_DROP, 0, { NULL }, { NULL }, 0, 0 },
    { "a.example.com", RC_OK, 300, { "192.0.2.1" }, { NULL }, 0, 0 },
    { "b.example.com", RC_OK, 300, { "192.0.2.2" }, { NULL }, 0, 0 },
    { "c.example.com", RC_OK, 300, { "192.0.2.3" }, { NULL }, 0, 0 },
    { "d.example.com", RC_OK, 300, { "192.0.2.4" }, { NULL }, 0, 0 },
    { "zero.example.com", RC_OK, 0, { "192.0.2.40" }, { NULL }, 0, 0 },
};
#define N_TABLE (sizeof(table) / sizeof(table[0]))

static struct event_base *base;
static evutil_socket_t srv_fd = -1;
static struct event *srv_ev;
static int srv_port;
static int srv_questions;               /* every question, known names or not */
static int srv_notify_fd = -1;          /* if >= 0, a byte is written after each reply */
static pd_dns *dns;
static int64_t fake_ms = 100000000;

static int64_t fake_now_ms(void)
{
    return fake_ms;
}

static struct rr *rr_find(const char *name)
{
    for (size_t i = 0; i < N_TABLE; i++)
        if (strcasecmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static void srv_cb(evutil_socket_t fd, short what, void *arg)
{
    unsigned char q[512], r[1024];
    struct sockaddr_storage from;
    socklen_t fromlen = sizeof(from);
    ssize_t n = recvfrom(fd, q, sizeof(q), 0, (struct sockaddr *)&from, &fromlen);
    if (n < 12)
        return;
    /* question: labels from offset 12, then type and class */
    char name[256];
    size_t j = 12, k = 0;
    while (j < (size_t)n && q[j] != 0) {
        size_t len = q[j++];
        if (j + len > (size_t)n || k + len + 1 >= sizeof(name))
            return;
        if (k)
            name[k++] = '.';
        for (size_t i = 0; i < len; i++)
            name[k++] = (char)tolower(q[j + i]);
        j += len;
    }
    name[k] = '\0';
    j++;
    if (j + 4 > (size_t)n)
        return;
    unsigned qtype = (unsigned)(q[j] << 8 | q[j + 1]);
    size_t qend = j + 4;
    srv_questions++;

    struct rr *rr = rr_find(name);
    if (rr) {
        if (qtype == 1)
            rr->q_a++;
        else if (qtype == 28)
            rr->q_aaaa++;
        if (rr->rcode == RC_DROP)
            return;
    }
    int rcode = rr ? (int)rr->rcode : RC_NXDOMAIN;
    const char *const *addrs = NULL;
    if (rr && rr->rcode == RC_OK)
        addrs = qtype == 1 ? rr->a : qtype == 28 ? rr->aaaa : NULL;
    int an = 0;
    while (addrs && an < 3 && addrs[an])
        an++;

    memcpy(r, q, qend);                 /* id and question, as asked (0x20 case) */
    put16(r + 2, 0x8000 | 0x0400 | (unsigned)(q[2] & 0x01) << 8 | 0x0080 | (unsigned)rcode);
    put16(r + 4, 1);
    put16(r + 6, (unsigned)an);
    put16(r + 8, 0);
    put16(r + 10, 0);
    size_t o = qend;
    for (int i = 0; i < an; i++) {
        int v6 = qtype == 28;
        r[o++] = 0xc0;                  /* name: pointer to the question */
        r[o++] = 12;
        put16(r + o, qtype);
        put16(r + o + 2, 1);
        r[o + 4] = (unsigned char)(rr->ttl >> 24);
        r[o + 5] = (unsigned char)(rr->ttl >> 16);
        r[o + 6] = (unsigned char)(rr->ttl >> 8);
        r[o + 7] = (unsigned char)rr->ttl;
        put16(r + o + 8, v6 ? 16 : 4);
        o += 10;
        inet_pton(v6 ? AF_INET6 : AF_INET, addrs[i], r + o);
        o += v6 ? 16 : 4;
    }
    sendto(fd, r, o, 0, (struct sockaddr *)&from, fromlen);
    if (srv_notify_fd >= 0) {
        char b = 'x';
        ck_assert_int_eq(write(srv_notify_fd, &b, 1), 1);
    }
}

static void srv_start(void)
{
    srv_fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(srv_fd, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(srv_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    ck_assert_int_eq(getsockname(srv_fd, (struct sockaddr *)&sin, &len), 0);
    srv_port = ntohs(sin.sin_port);
    evutil_make_socket_nonblocking(srv_fd);
    srv_ev = event_new(base, srv_fd, EV_READ | EV_PERSIST, srv_cb, NULL);
    event_add(srv_ev, NULL);
}

/* ---- running the loop ---- */

static int timed_out;

static void safety_cb(evutil_socket_t fd, short what, void *arg)
{
    timed_out = 1;
    event_base_loopbreak(base);
}

/* Run the loop until cond holds; fail after `secs` seconds. */
#define RUN_UNTIL_SECS(cond, secs)                                            \
    do {                                                                      \
        struct event *safety_ = evtimer_new(base, safety_cb, NULL);           \
        struct timeval tv_ = { (secs), 0 };                                   \
        evtimer_add(safety_, &tv_);                                           \
        timed_out = 0;                                                        \
        while (!(cond) && !timed_out)                                         \
            event_base_loop(base, EVLOOP_ONCE);                               \
        event_free(safety_);                                                  \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);             \
    } while (0)
#define RUN_UNTIL(cond) RUN_UNTIL_SECS(cond, 5)

/* Run the loop for ms milliseconds (only to show that nothing happens). */
static void run_for_ms(int ms)
{
    struct event *t = evtimer_new(base, safety_cb, NULL);
    struct timeval tv = { 0, ms * 1000 };
    evtimer_add(t, &tv);
    timed_out = 0;
    while (!timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

/* ---- callbacks that record what they got ---- */

#define MAX_WAITERS 32

struct rec {
    int called;
    int order;                          /* 1-based position among all calls */
    pd_dns_result res;
};

static struct rec recs[MAX_WAITERS];
static int n_calls;

static void rec_cb(const pd_dns_result *res, void *arg)
{
    struct rec *r = arg;
    r->called++;
    r->order = ++n_calls;
    r->res = *res;
}

static pd_dns *make_dns(int positive_ttl_max, int negative_ttl, const char *hosts)
{
    char ns[64];
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", srv_port);
    const char *nss[] = { ns };
    pd_dns_opts o = {
        .nameservers = nss,
        .n_nameservers = 1,
        .hosts_file = hosts,
        .positive_ttl_max = positive_ttl_max,
        .negative_ttl = negative_ttl,
        .timeout = 1,
    };
    pd_dns *d = pd_dns_new(base, &o);
    ck_assert_ptr_nonnull(d);
    d->now_ms = fake_now_ms;
    return d;
}

static void setup(void)
{
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    srv_start();
    for (size_t i = 0; i < N_TABLE; i++)
        table[i].q_a = table[i].q_aaaa = 0;
    memset(recs, 0, sizeof(recs));
    n_calls = 0;
    srv_questions = 0;
    srv_notify_fd = -1;
    dns = make_dns(3600, 30, "none");
}

static void teardown(void)
{
    pd_dns_free(dns);
    dns = NULL;
    event_free(srv_ev);
    evutil_closesocket(srv_fd);
    event_base_free(base);
    ck_assert_uint_eq(reg.n, 0);
}

static const char *addr_str(const pd_dns_result *res, int i, char *buf, size_t size)
{
    const struct sockaddr *sa = (const struct sockaddr *)&res->addr[i];
    if (sa->sa_family == AF_INET)
        return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)size);
    if (sa->sa_family == AF_INET6)
        return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, (socklen_t)size);
    return "?";
}

#define ck_assert_addr(res, i, text)                                          \
    do {                                                                      \
        char b_[INET6_ADDRSTRLEN];                                            \
        ck_assert_str_eq(addr_str((res), (i), b_, sizeof(b_)), (text));       \
    } while (0)

/* Resolve and expect the answer before pd_dns_resolve returns. */
static void resolve_sync(const char *host, struct rec *r)
{
    int before = r->called;
    pd_dns_req *req = pd_dns_resolve(dns, host, rec_cb, r);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(r->called, before + 1);
}

/* Resolve, expect a query, and run the loop until the answer. */
static void resolve_async(const char *host, struct rec *r)
{
    int before = r->called;
    pd_dns_req *req = pd_dns_resolve(dns, host, rec_cb, r);
    ck_assert_ptr_nonnull(req);
    ck_assert_int_eq(r->called, before);
    RUN_UNTIL(r->called == before + 1);
}

/* ---- tests ---- */

START_TEST(literals_answer_at_once)
{
    static const struct {
        const char *host;
        int family;
        const char *addr;
    } cases[] = {
        { "192.0.2.7", AF_INET, "192.0.2.7" },
        { "127.0.0.1", AF_INET, "127.0.0.1" },
        { "2001:db8::1", AF_INET6, "2001:db8::1" },
        { "::1", AF_INET6, "::1" },
        { "[2001:db8::2]", AF_INET6, "2001:db8::2" },
        { "::ffff:192.0.2.1", AF_INET6, "::ffff:192.0.2.1" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&recs[0], 0, sizeof(recs[0]));
        resolve_sync(cases[i].host, &recs[0]);
        ck_assert_int_eq(recs[0].res.error, PD_DNS_OK);
        ck_assert_int_eq(recs[0].res.n, 1);
        ck_assert_int_eq(recs[0].res.addr[0].ss_family, cases[i].family);
        ck_assert_uint_eq(recs[0].res.addrlen[0], cases[i].family == AF_INET
                          ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        ck_assert_addr(&recs[0].res, 0, cases[i].addr);
    }
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.queries, 0);
    ck_assert_int_eq(srv_questions, 0);
}
END_TEST

START_TEST(bad_names_fail_at_once)
{
    char long_label[80], long_name[300];
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".com");
    memset(long_name, 0, sizeof(long_name));
    for (int i = 0; i < 64; i++)
        strcat(long_name, "abc.");      /* 256 characters */
    const char *cases[] = { "", ".", "a..b", ".lead.example", "sp ace.example",
                            "ctl\x01.example", "semi;colon", "[::1", "x/y", long_label, long_name };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&recs[0], 0, sizeof(recs[0]));
        resolve_sync(cases[i], &recs[0]);
        ck_assert_msg(recs[0].res.error == PD_DNS_ENOTFOUND, "case %zu", i);
        ck_assert_int_eq(recs[0].res.n, 0);
    }
    memset(&recs[0], 0, sizeof(recs[0]));
    resolve_sync(NULL, &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_ENOTFOUND);
    ck_assert_ptr_null(pd_dns_resolve(dns, "www.example.com", NULL, NULL));
    ck_assert_ptr_null(pd_dns_resolve(NULL, "www.example.com", rec_cb, &recs[0]));
    ck_assert_int_eq(srv_questions, 0);
}
END_TEST

START_TEST(hosts_file_entries)
{
    char path[] = "/tmp/check_dns_hostsXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text =
        "# comment line\n"
        "10.1.2.3\tfoo.example Foo2   # trailing comment\n"
        "\n"
        "2001:db8::99 v6.example\n"
        "10.1.2.4 FOO.example. \n"
        "not-an-address bar.example\n"
        "10.9.9.9\n"
        "10.1.2.5 www.example.com\n";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    pd_dns_free(dns);
    dns = make_dns(3600, 30, path);
    unlink(path);

    resolve_sync("foo.example", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_OK);
    ck_assert_int_eq(recs[0].res.n, 2);
    ck_assert_addr(&recs[0].res, 0, "10.1.2.3");
    ck_assert_addr(&recs[0].res, 1, "10.1.2.4");
    resolve_sync("FOO.EXAMPLE.", &recs[1]);
    ck_assert_int_eq(recs[1].res.n, 2);
    resolve_sync("foo2", &recs[2]);
    ck_assert_addr(&recs[2].res, 0, "10.1.2.3");
    resolve_sync("v6.example", &recs[3]);
    ck_assert_int_eq(recs[3].res.addr[0].ss_family, AF_INET6);
    ck_assert_addr(&recs[3].res, 0, "2001:db8::99");
    /* the hosts file wins over DNS, and never expires */
    fake_ms += 1000000000;
    resolve_sync("www.example.com", &recs[4]);
    ck_assert_int_eq(recs[4].res.n, 1);
    ck_assert_addr(&recs[4].res, 0, "10.1.2.5");
    /* a name only on a bad line is not there: asked to DNS (NXDOMAIN here) */
    resolve_async("bar.example", &recs[5]);
    ck_assert_int_eq(recs[5].res.error, PD_DNS_ENOTFOUND);

    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.cache_hits, 5);
    ck_assert_uint_eq(st.queries, 1);
    ck_assert_uint_eq(st.cached_entries, 1);   /* bar.example, negative */
    ck_assert_int_eq(table[0].q_a, 0);
}
END_TEST

START_TEST(missing_hosts_file_is_not_fatal)
{
    pd_dns_free(dns);
    dns = make_dns(3600, 30, "/nonexistent/hosts");
    resolve_async("www.example.com", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_OK);
}
END_TEST

START_TEST(answer_cached_for_its_ttl)
{
    resolve_async("www.example.com", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_OK);
    ck_assert_int_eq(recs[0].res.n, 2);
    ck_assert_addr(&recs[0].res, 0, "192.0.2.10");
    ck_assert_addr(&recs[0].res, 1, "192.0.2.11");
    ck_assert_int_eq(recs[0].res.addr[0].ss_family, AF_INET);
    ck_assert_int_eq(((struct sockaddr_in *)&recs[0].res.addr[0])->sin_port, 0);
    ck_assert_int_eq(table[0].q_a, 1);

    fake_ms += 299000;
    resolve_sync("WWW.Example.COM.", &recs[1]);
    ck_assert_int_eq(recs[1].res.n, 2);
    ck_assert_addr(&recs[1].res, 1, "192.0.2.11");
    ck_assert_int_eq(table[0].q_a, 1);

    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.queries, 1);
    ck_assert_uint_eq(st.cache_hits, 1);
    ck_assert_uint_eq(st.failures, 0);
    ck_assert_uint_eq(st.cached_entries, 1);
}
END_TEST

START_TEST(ttl_capped_by_positive_ttl_max)
{
    pd_dns_free(dns);
    dns = make_dns(5, 30, "none");
    resolve_async("long.example.com", &recs[0]);
    ck_assert_addr(&recs[0].res, 0, "192.0.2.20");
    fake_ms += 4000;
    resolve_sync("long.example.com", &recs[1]);
    ck_assert_int_eq(table[1].q_a, 1);
    fake_ms += 1000;                    /* 5 s: the cap, although the TTL is 3600 */
    resolve_async("long.example.com", &recs[2]);
    ck_assert_int_eq(recs[2].res.error, PD_DNS_OK);
    ck_assert_int_eq(table[1].q_a, 2);
}
END_TEST

START_TEST(expired_entry_is_refreshed)
{
    resolve_async("short.example.com", &recs[0]);
    ck_assert_addr(&recs[0].res, 0, "192.0.2.30");
    fake_ms += 9999;                    /* TTL 10 s, to the millisecond */
    resolve_sync("short.example.com", &recs[1]);
    ck_assert_addr(&recs[1].res, 0, "192.0.2.30");

    table[2].a[0] = "192.0.2.31";       /* the zone changed meanwhile */
    fake_ms += 1;
    resolve_async("short.example.com", &recs[2]);
    table[2].a[0] = "192.0.2.30";
    ck_assert_addr(&recs[2].res, 0, "192.0.2.31");
    ck_assert_int_eq(table[2].q_a, 2);
    resolve_sync("short.example.com", &recs[3]);
    ck_assert_addr(&recs[3].res, 0, "192.0.2.31");

    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.cached_entries, 1);
    ck_assert_uint_eq(st.queries, 2);
}
END_TEST

START_TEST(zero_ttl_is_not_cached)
{
    resolve_async("zero.example.com", &recs[0]);
    ck_assert_addr(&recs[0].res, 0, "192.0.2.40");
    resolve_async("zero.example.com", &recs[1]);
    ck_assert_int_eq(table[11].q_a, 2);
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.cached_entries, 0);
}
END_TEST

START_TEST(aaaa_when_no_a_record)
{
    resolve_async("v6only.example.com", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_OK);
    ck_assert_int_eq(recs[0].res.n, 1);
    ck_assert_int_eq(recs[0].res.addr[0].ss_family, AF_INET6);
    ck_assert_uint_eq(recs[0].res.addrlen[0], sizeof(struct sockaddr_in6));
    ck_assert_addr(&recs[0].res, 0, "2001:db8::6");
    ck_assert_int_eq(table[3].q_a, 1);
    ck_assert_int_eq(table[3].q_aaaa, 1);
    resolve_sync("v6only.example.com", &recs[1]);
    ck_assert_addr(&recs[1].res, 0, "2001:db8::6");
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.queries, 2);

    /* neither A nor AAAA: not found, cached negatively */
    resolve_async("nodata.example.com", &recs[2]);
    ck_assert_int_eq(recs[2].res.error, PD_DNS_ENOTFOUND);
    ck_assert_int_eq(table[4].q_a, 1);
    ck_assert_int_eq(table[4].q_aaaa, 1);
    resolve_sync("nodata.example.com", &recs[3]);
    ck_assert_int_eq(recs[3].res.error, PD_DNS_ENOTFOUND);
}
END_TEST

START_TEST(nxdomain_cached_negatively)
{
    resolve_async("nx.example.com", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_ENOTFOUND);
    ck_assert_int_eq(recs[0].res.n, 0);
    ck_assert_int_eq(table[5].q_a, 1);
    ck_assert_int_eq(table[5].q_aaaa, 0);   /* NXDOMAIN: no point asking AAAA */

    fake_ms += 29000;
    resolve_sync("nx.example.com", &recs[1]);
    ck_assert_int_eq(recs[1].res.error, PD_DNS_ENOTFOUND);
    ck_assert_int_eq(table[5].q_a, 1);

    fake_ms += 1000;                    /* negative_ttl is 30 */
    resolve_async("nx.example.com", &recs[2]);
    ck_assert_int_eq(table[5].q_a, 2);

    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.failures, 2);
    ck_assert_uint_eq(st.cache_hits, 1);
    ck_assert_uint_eq(st.queries, 2);
}
END_TEST

START_TEST(no_answer_times_out)
{
    resolve_async("silent.example.com", &recs[0]);
    ck_assert_int_eq(recs[0].res.error, PD_DNS_ETIMEOUT);
    ck_assert_int_eq(table[6].q_a, 1);  /* timeout 1 s: a single attempt */
    resolve_sync("silent.example.com", &recs[1]);
    ck_assert_int_eq(recs[1].res.error, PD_DNS_ETIMEOUT);
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.failures, 1);
}
END_TEST

START_TEST(concurrent_lookups_share_one_query)
{
    pd_dns_req *reqs[20];
    for (int i = 0; i < 20; i++) {
        reqs[i] = pd_dns_resolve(dns, i % 2 ? "www.example.com" : "WWW.EXAMPLE.COM.", rec_cb, &recs[i]);
        ck_assert_ptr_nonnull(reqs[i]);
    }
    ck_assert_int_eq(n_calls, 0);
    RUN_UNTIL(n_calls == 20);
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(recs[i].called, 1);
        ck_assert_int_eq(recs[i].order, i + 1);
        ck_assert_int_eq(recs[i].res.n, 2);
        ck_assert_addr(&recs[i].res, 0, "192.0.2.10");
    }
    ck_assert_int_eq(table[0].q_a, 1);
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.queries, 1);
}
END_TEST

START_TEST(cancel_one_waiter)
{
    pd_dns_req *reqs[20];
    for (int i = 0; i < 20; i++)
        reqs[i] = pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[i]);
    pd_dns_cancel(reqs[0]);
    pd_dns_cancel(reqs[7]);
    pd_dns_cancel(reqs[19]);
    pd_dns_cancel(NULL);
    RUN_UNTIL(n_calls == 17);
    run_for_ms(20);
    ck_assert_int_eq(n_calls, 17);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(recs[i].called, (i == 0 || i == 7 || i == 19) ? 0 : 1);
    ck_assert_int_eq(table[0].q_a, 1);

    /* all waiters cancelled: the answer still fills the cache */
    pd_dns_req *r = pd_dns_resolve(dns, "a.example.com", rec_cb, &recs[20]);
    ck_assert_ptr_nonnull(r);
    pd_dns_cancel(r);
    RUN_UNTIL(table[7].q_a == 1 && dns->n_lru == 2);
    resolve_sync("a.example.com", &recs[21]);
    ck_assert_addr(&recs[21].res, 0, "192.0.2.1");
    ck_assert_int_eq(recs[20].called, 0);
}
END_TEST

/* Waiter 0 cancels waiters 1 and 3 (and itself, a no-op) from its callback. */
static pd_dns_req *cancel_reqs[5];

static void cancelling_cb(const pd_dns_result *res, void *arg)
{
    rec_cb(res, arg);
    pd_dns_cancel(cancel_reqs[1]);
    pd_dns_cancel(cancel_reqs[3]);
    pd_dns_cancel(cancel_reqs[0]);
}

START_TEST(cancel_from_inside_a_callback)
{
    cancel_reqs[0] = pd_dns_resolve(dns, "www.example.com", cancelling_cb, &recs[0]);
    for (int i = 1; i < 5; i++)
        cancel_reqs[i] = pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[i]);
    RUN_UNTIL(n_calls == 3);
    run_for_ms(20);
    ck_assert_int_eq(n_calls, 3);
    ck_assert_int_eq(recs[0].order, 1);
    ck_assert_int_eq(recs[1].called, 0);
    ck_assert_int_eq(recs[2].order, 2);
    ck_assert_int_eq(recs[3].called, 0);
    ck_assert_int_eq(recs[4].order, 3);
}
END_TEST

/* From its callback, look up the same name (now cached) and another one. */
static pd_dns_req *inner_req;
static int inner_sync;

static void resolving_cb(const pd_dns_result *res, void *arg)
{
    rec_cb(res, arg);
    int before = recs[10].called;
    ck_assert_ptr_null(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[10]));
    inner_sync = recs[10].called == before + 1;
    inner_req = pd_dns_resolve(dns, "b.example.com", rec_cb, &recs[11]);
}

START_TEST(resolve_from_inside_a_callback)
{
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", resolving_cb, &recs[0]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[1]));
    RUN_UNTIL(recs[11].called == 1);
    ck_assert(inner_sync);
    ck_assert_ptr_nonnull(inner_req);
    ck_assert_addr(&recs[10].res, 0, "192.0.2.10");
    ck_assert_addr(&recs[11].res, 0, "192.0.2.2");
    ck_assert_int_eq(recs[1].called, 1);
    ck_assert_int_eq(recs[0].order, 1);
    ck_assert_int_eq(recs[10].order, 2);    /* nested, before the next waiter */
    ck_assert_int_eq(recs[1].order, 3);
}
END_TEST

/* A zero-TTL answer is not cached: a lookup from the callback starts a new query. */
static void requery_cb(const pd_dns_result *res, void *arg)
{
    rec_cb(res, arg);
    inner_req = pd_dns_resolve(dns, "zero.example.com", rec_cb, &recs[1]);
}

START_TEST(resolve_same_name_from_callback_without_cache)
{
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "zero.example.com", requery_cb, &recs[0]));
    RUN_UNTIL(recs[1].called == 1);
    ck_assert_ptr_nonnull(inner_req);
    ck_assert_int_eq(table[11].q_a, 2);
    ck_assert_addr(&recs[1].res, 0, "192.0.2.40");
}
END_TEST

START_TEST(free_with_query_in_flight)
{
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "silent.example.com", rec_cb, &recs[0]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "silent.example.com", rec_cb, &recs[1]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[2]));
    RUN_UNTIL(table[6].q_a == 1 && table[0].q_a == 1);
    pd_dns_free(dns);
    dns = NULL;
    ck_assert_uint_eq(reg.n, 0);
    run_for_ms(50);                     /* the www answer arrives: nobody is told */
    ck_assert_int_eq(n_calls, 0);
}
END_TEST

/*
 * The window evdns leaves open: its reply parsed, its callback queued, and
 * the resolver freed before that callback runs (here by an event queued
 * after the reply). The callback must find nothing and touch nothing.
 */
static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    char b;
    ck_assert_int_eq(read(fd, &b, 1), 1);
    pd_dns_free(dns);
    dns = NULL;
}

START_TEST(free_while_reply_callback_is_queued)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    srv_notify_fd = p[1];
    struct event *ev = event_new(base, p[0], EV_READ, notify_cb, NULL);
    event_add(ev, NULL);
    uint64_t stale = reg.stale;
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[0]));
    RUN_UNTIL(dns == NULL && reg.stale == stale + 1);
    ck_assert_int_eq(n_calls, 0);
    event_free(ev);
    close(p[0]);
    close(p[1]);
    srv_notify_fd = -1;
}
END_TEST

START_TEST(stale_evdns_callback_is_ignored)
{
    uint64_t stale = reg.stale;
    evdns_done(DNS_ERR_NONE, DNS_IPv4_A, 0, 0, NULL, (void *)(uintptr_t)123456789);
    ck_assert_uint_eq(reg.stale, stale + 1);
}
END_TEST

/* Free the resolver from inside a waiter's callback: later waiters are dropped. */
static void freeing_cb(const pd_dns_result *res, void *arg)
{
    rec_cb(res, arg);
    pd_dns_free(dns);
    dns = NULL;
}

START_TEST(free_from_inside_a_callback)
{
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[0]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", freeing_cb, &recs[1]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "www.example.com", rec_cb, &recs[2]));
    ck_assert_ptr_nonnull(pd_dns_resolve(dns, "silent.example.com", rec_cb, &recs[3]));
    RUN_UNTIL(dns == NULL);
    run_for_ms(20);
    ck_assert_int_eq(recs[0].called, 1);
    ck_assert_int_eq(recs[1].called, 1);
    ck_assert_int_eq(recs[2].called, 0);
    ck_assert_int_eq(recs[3].called, 0);
}
END_TEST

START_TEST(free_from_inside_a_sync_callback)
{
    ck_assert_ptr_null(pd_dns_resolve(dns, "192.0.2.1", freeing_cb, &recs[0]));
    ck_assert_ptr_null(dns);
    ck_assert_int_eq(recs[0].called, 1);
}
END_TEST

START_TEST(cache_is_bounded_lru)
{
    dns->max_entries = 3;
    resolve_async("a.example.com", &recs[0]);
    resolve_async("b.example.com", &recs[1]);
    resolve_async("c.example.com", &recs[2]);
    resolve_sync("a.example.com", &recs[3]);     /* a is now the most recent */
    resolve_async("d.example.com", &recs[4]);    /* evicts b, the least recent */
    pd_dns_stats st;
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.cached_entries, 3);
    resolve_sync("a.example.com", &recs[5]);
    resolve_sync("c.example.com", &recs[6]);
    resolve_sync("d.example.com", &recs[7]);
    resolve_async("b.example.com", &recs[8]);
    ck_assert_int_eq(table[8].q_a, 2);
    ck_assert_int_eq(table[7].q_a, 1);
    pd_dns_get_stats(dns, &st);
    ck_assert_uint_eq(st.cached_entries, 3);
}
END_TEST

START_TEST(nameserver_specs)
{
    static const struct {
        const char *spec;
        int ok;
    } cases[] = {
        { "127.0.0.1", 1 },
        { "127.0.0.1:5353", 1 },
        { "::1", 1 },
        { "[::1]", 1 },
        { "[::1]:53", 1 },
        { "ns.example.com", 0 },
        { "127.0.0.1:99999", 0 },
        { "", 0 },
        { "1.2.3", 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *nss[] = { cases[i].spec };
        pd_dns_opts o = { .nameservers = nss, .n_nameservers = 1, .hosts_file = "none",
                          .positive_ttl_max = 60, .negative_ttl = 10, .timeout = 5 };
        pd_dns *d = pd_dns_new(base, &o);
        ck_assert_msg((d != NULL) == cases[i].ok, "spec '%s'", cases[i].spec);
        pd_dns_free(d);
    }
    pd_dns_opts bad = { .nameservers = NULL, .n_nameservers = 2 };
    ck_assert_ptr_null(pd_dns_new(base, &bad));
    ck_assert_ptr_null(pd_dns_new(NULL, NULL));
}
END_TEST

START_TEST(resolv_conf_default)
{
    /* No nameserver given: /etc/resolv.conf, or evdns's 127.0.0.1 fallback. */
    pd_dns *d = pd_dns_new(base, &(pd_dns_opts){ .hosts_file = "none", .timeout = 5 });
    ck_assert_ptr_nonnull(d);
    ck_assert_int_ge(evdns_base_count_nameservers(d->evdns), 1);
    pd_dns_free(d);
}
END_TEST

static Suite *dns_suite(void)
{
    Suite *s = suite_create("dns");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, literals_answer_at_once);
    tcase_add_test(tc, bad_names_fail_at_once);
    tcase_add_test(tc, hosts_file_entries);
    tcase_add_test(tc, missing_hosts_file_is_not_fatal);
    tcase_add_test(tc, answer_cached_for_its_ttl);
    tcase_add_test(tc, ttl_capped_by_positive_ttl_max);
    tcase_add_test(tc, expired_entry_is_refreshed);
    tcase_add_test(tc, zero_ttl_is_not_cached);
    tcase_add_test(tc, aaaa_when_no_a_record);
    tcase_add_test(tc, nxdomain_cached_negatively);
    tcase_add_test(tc, no_answer_times_out);
    tcase_add_test(tc, concurrent_lookups_share_one_query);
    tcase_add_test(tc, cancel_one_waiter);
    tcase_add_test(tc, cancel_from_inside_a_callback);
    tcase_add_test(tc, resolve_from_inside_a_callback);
    tcase_add_test(tc, resolve_same_name_from_callback_without_cache);
    tcase_add_test(tc, free_with_query_in_flight);
    tcase_add_test(tc, free_while_reply_callback_is_queued);
    tcase_add_test(tc, stale_evdns_callback_is_ignored);
    tcase_add_test(tc, free_from_inside_a_callback);
    tcase_add_test(tc, free_from_inside_a_sync_callback);
    tcase_add_test(tc, cache_is_bounded_lru);
    tcase_add_test(tc, nameserver_specs);
    tcase_add_test(tc, resolv_conf_default);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(dns_suite());
}
