/*
 * check_peer: cache_peer parsing and peer selection (peer.c) by tables of
 * configurations and requests, through the real loader (conf.c) and acls.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/peer.h"
#include "check_run.h"

struct env {
    pd_conf *conf;
    pd_acl_rules *acl;
    pd_peers *ps;
    pd_url url;
    int have_url;
    pd_http_msg req;
    struct sockaddr_in client;
    pd_acl_req q;
    char *msgs;
    size_t msgs_len;
    int errors;
};

static void env_load(struct env *e, const char *text)
{
    memset(e, 0, sizeof *e);
    pd_http_msg_init(&e->req);
    FILE *err = open_memstream(&e->msgs, &e->msgs_len);
    e->conf = pd_conf_load_string("t.conf", text, err);
    if (!e->conf) {
        e->errors = 1;
    } else {
        int ae = 0, aw = 0, pe = 0, pw = 0;
        e->acl = pd_acl_compile_counted(e->conf, err, &ae, &aw);
        if (e->acl)
            e->ps = pd_peers_compile(e->conf, e->acl, err, &pe, &pw);
        e->errors = ae + pe;
    }
    fclose(err);
}

static void env_request(struct env *e, const char *url, const char *ip)
{
    const char *why;
    if (e->have_url)
        pd_url_free(&e->url);
    e->have_url = 1;
    ck_assert_int_eq(pd_url_parse(url, strlen(url), PD_URL_ABSOLUTE, &e->url, &why), 0);
    e->client.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ip, &e->client.sin_addr), 1);
    e->req.method = PD_STR("GET");
    e->q = (pd_acl_req){ .client = (const struct sockaddr *)&e->client, .msg = &e->req,
                         .url = &e->url, .now = 1700000000 };
}

static void env_free(struct env *e)
{
    if (e->have_url)
        pd_url_free(&e->url);
    pd_peers_free(e->ps);
    pd_acl_rules_free(e->acl);
    pd_conf_free(e->conf);
    pd_http_msg_free(&e->req);
    free(e->msgs);
}

/* The selection as text: "name:HIER name:HIER DIRECT" */
static void selection(struct env *e, int hierarchical, int64_t now, char *out, size_t n)
{
    pd_peer_cand c[PD_PEER_MAX_CAND];
    int k = pd_peer_select(e->ps, &e->q, hierarchical, now, c, PD_PEER_MAX_CAND);
    out[0] = '\0';
    for (int i = 0; i < k; i++) {
        size_t l = strlen(out);
        if (c[i].peer < 0)
            snprintf(out + l, n - l, "%sDIRECT", i ? " " : "");
        else
            snprintf(out + l, n - l, "%s%s:%s", i ? " " : "", pd_peer_name(e->ps, c[i].peer),
                     c[i].hier);
    }
}

#define PEERS3                                                                                 \
    "cache_peer p1.example parent 3128 0 no-query name=a\n"                                    \
    "cache_peer p2.example parent 3128 0 no-query name=b\n"                                    \
    "cache_peer p3.example parent 3128 3130 no-query default name=c\n"

static const struct {
    const char *conf, *ip;
    int hierarchical;
    const char *want;
} sel_cases[] = {
    /* no peers: direct, as always */
    { "", "10.0.0.1", 1, "DIRECT" },
    /* parents first, the first up one, the rest, then direct */
    { PEERS3, "10.0.0.1", 1,
      "a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT DIRECT" },
    /* a non-hierarchical request goes direct with nonhierarchical_direct on */
    { PEERS3, "10.0.0.1", 0, "DIRECT" },
    { PEERS3 "nonhierarchical_direct off\n", "10.0.0.1", 0,
      "a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT DIRECT" },
    /* never_direct: parents only, even non-hierarchical */
    { PEERS3 "never_direct allow all\n", "10.0.0.1", 0,
      "a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT" },
    /* always_direct wins over never_direct */
    { PEERS3 "acl lan src 10.0.0.0/8\nalways_direct allow lan\nnever_direct allow all\n",
      "10.0.0.1", 1, "DIRECT" },
    { PEERS3 "acl lan src 10.0.0.0/8\nalways_direct allow lan\nnever_direct allow all\n",
      "192.0.2.1", 1, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT" },
    /* prefer_direct: direct first */
    { PEERS3 "prefer_direct on\n", "10.0.0.1", 1,
      "DIRECT a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT" },
    /* cache_peer_access removes a parent; a default parent is last resort */
    { PEERS3 "acl lan src 10.0.0.0/8\ncache_peer_access a deny lan\n"
             "cache_peer_access b deny all\nnever_direct allow all\n",
      "10.0.0.1", 1, "c:FIRSTUP_PARENT" },
    { PEERS3 "acl lan src 10.0.0.0/8\ncache_peer_access a deny lan\n"
             "cache_peer_access b deny all\nnever_direct allow all\n",
      "192.0.2.9", 1, "a:FIRSTUP_PARENT c:ANY_OLD_PARENT" },
    /* nothing allowed at all */
    { "cache_peer p1 parent 3128 0 name=a\ncache_peer_access a deny all\n"
      "never_direct allow all\n",
      "10.0.0.1", 1, "" },
    /* never_direct without a parent */
    { "never_direct allow all\n", "10.0.0.1", 1, "" },
    /* a sibling is never a parent: without its ICP_HIT, parents and direct only */
    { "cache_peer s1 sibling 3128 3130 name=s\n" PEERS3, "10.0.0.1", 1,
      "a:FIRSTUP_PARENT b:ANY_OLD_PARENT c:ANY_OLD_PARENT DIRECT" },
    { "cache_peer s1 sibling 3128 3130 name=s default round-robin carp\n"
      "never_direct allow all\n", "10.0.0.1", 1, "" },
    /* forward_max_tries cuts the list */
    { PEERS3 "forward_max_tries 2\n", "10.0.0.1", 1, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT" },
};

START_TEST(select_table)
{
    struct env e;
    env_load(&e, sel_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://www.example.com/x", sel_cases[_i].ip);
    char got[512];
    selection(&e, sel_cases[_i].hierarchical, 1000, got, sizeof got);
    ck_assert_str_eq(got, sel_cases[_i].want);
    env_free(&e);
}
END_TEST

START_TEST(round_robin_spreads_by_weight)
{
    struct env e;
    env_load(&e, "cache_peer a parent 3128 0 round-robin\n"
                 "cache_peer b parent 3128 0 round-robin weight=3\n"
                 "cache_peer c parent 3128 0 default\nnever_direct allow all\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://www.example.com/", "10.0.0.1");
    int first[3] = { 0, 0, 0 };
    for (int i = 0; i < 40; i++) {
        pd_peer_cand c[PD_PEER_MAX_CAND];
        int n = pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
        ck_assert_int_eq(n, 3);
        ck_assert_str_eq(c[0].hier, "ROUNDROBIN_PARENT");
        ck_assert_str_eq(c[2].hier, "ANY_OLD_PARENT");
        if (i == 0) /* a tie goes to the later parent, as in Squid */
            ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), "b");
        first[c[0].peer]++;
    }
    ck_assert_int_eq(first[0], 10);
    ck_assert_int_eq(first[1], 30);
    ck_assert_int_eq(first[2], 0);
    env_free(&e);
}
END_TEST

/*
 * weighted-round-robin: each pick costs the parent max(rtt, 1) * 1000 /
 * weight; the least total goes next (a tie: the later parent). Measured
 * RTTs 10, 20 and 40 ms share 70 picks 4:2:1; weight=2 on the 40 ms one
 * makes it cost as the 20 ms one. Without RTTs: round-robin by weight=.
 */
static const struct {
    int rtt[3], weight[3];
    int want[3];      /* of 70 picks */
    const char *first; /* the first pick */
} wrr_cases[] = {
    { { 10, 20, 40 }, { 1, 1, 1 }, { 40, 20, 10 }, "c" },
    { { 10, 20, 40 }, { 1, 1, 2 }, { 34, 18, 18 }, "c" },
    { { 0, 0, 0 }, { 1, 1, 5 }, { 10, 10, 50 }, "c" },
    { { 30, 30, 30 }, { 1, 1, 1 }, { 23, 23, 24 }, "c" },
    { { 5, 0, 0 }, { 1, 1, 1 }, { 7, 31, 32 }, "c" },
};

START_TEST(weighted_round_robin_table)
{
    struct env e;
    char text[512];
    snprintf(text, sizeof text,
             "cache_peer 10.0.0.1 parent 3128 3130 weighted-round-robin name=a weight=%d\n"
             "cache_peer 10.0.0.2 parent 3128 3130 weighted-round-robin name=b weight=%d\n"
             "cache_peer 10.0.0.3 parent 3128 3130 weighted-round-robin name=c weight=%d\n"
             "never_direct allow all\n",
             wrr_cases[_i].weight[0], wrr_cases[_i].weight[1], wrr_cases[_i].weight[2]);
    env_load(&e, text);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    for (int k = 0; k < 3; k++)
        pd_peer_set_rtt(e.ps, k, wrr_cases[_i].rtt[k]);
    env_request(&e, "http://www.example.com/", "10.0.0.1");
    int got[3] = { 0, 0, 0 };
    for (int i = 0; i < 70; i++) {
        pd_peer_cand c[PD_PEER_MAX_CAND];
        int n = pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
        ck_assert_int_eq(n, 3); /* the pick, then the other two as ANY_OLD_PARENT */
        ck_assert_str_eq(c[0].hier, "ROUNDROBIN_PARENT");
        ck_assert_str_eq(c[1].hier, "ANY_OLD_PARENT");
        if (i == 0)
            ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), wrr_cases[_i].first);
        got[c[0].peer]++;
    }
    for (int k = 0; k < 3; k++)
        ck_assert_msg(got[k] == wrr_cases[_i].want[k], "case %d peer %d: %d picks, want %d",
                      _i, k, got[k], wrr_cases[_i].want[k]);
    env_free(&e);
}
END_TEST

/* A dead or disallowed weighted-round-robin parent is passed over; plain
 * round-robin parents are asked first, as Squid's peerGetSomeParent */
START_TEST(weighted_round_robin_skips)
{
    struct env e;
    env_load(&e, "acl other dstdomain .other.test\n"
                 "cache_peer 10.0.0.1 parent 3128 0 weighted-round-robin name=a\n"
                 "cache_peer 10.0.0.2 parent 3128 0 weighted-round-robin name=b "
                 "connect-fail-limit=1\n"
                 "cache_peer 10.0.0.3 parent 3128 0 round-robin name=r\n"
                 "cache_peer_access r allow other\ncache_peer_access r deny all\n"
                 "never_direct allow all\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://www.example.com/", "10.0.0.1");
    pd_peer_failed(e.ps, 1, 1000); /* b is dead */
    for (int i = 0; i < 4; i++) {
        pd_peer_cand c[PD_PEER_MAX_CAND];
        int n = pd_peer_select(e.ps, &e.q, 1, 1001, c, PD_PEER_MAX_CAND);
        ck_assert_int_eq(n, 1);
        ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), "a");
        ck_assert_str_eq(c[0].hier, "ROUNDROBIN_PARENT");
    }
    env_request(&e, "http://www.other.test/", "10.0.0.1");
    pd_peer_cand c[PD_PEER_MAX_CAND];
    ck_assert_int_eq(pd_peer_select(e.ps, &e.q, 1, 1001, c, PD_PEER_MAX_CAND), 2);
    ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), "r");
    ck_assert_str_eq(c[0].hier, "ROUNDROBIN_PARENT");
    ck_assert_str_eq(pd_peer_name(e.ps, c[1].peer), "a");
    env_free(&e);
}
END_TEST

START_TEST(dead_peer_skipped_then_probed)
{
    struct env e;
    env_load(&e, "cache_peer a parent 3128 0 connect-fail-limit=2\n"
                 "cache_peer b parent 3128 0 default\nnever_direct allow all\n"
                 "dead_peer_timeout 30 seconds\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://www.example.com/", "10.0.0.1");
    char got[256];
    pd_peer_failed(e.ps, 0, 100);
    selection(&e, 1, 100, got, sizeof got); /* one failure: still alive */
    ck_assert_str_eq(got, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT");
    pd_peer_failed(e.ps, 0, 101);
    ck_assert(pd_peer_is_dead(e.ps, 0, 101));
    selection(&e, 1, 101, got, sizeof got);
    ck_assert_str_eq(got, "b:FIRSTUP_PARENT");
    selection(&e, 1, 130, got, sizeof got); /* 29 s later: still dead */
    ck_assert_str_eq(got, "b:FIRSTUP_PARENT");
    selection(&e, 1, 131, got, sizeof got); /* dead_peer_timeout passed: probed */
    ck_assert_str_eq(got, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT");
    pd_peer_failed(e.ps, 0, 131); /* the probe failed: dead again at once */
    selection(&e, 1, 140, got, sizeof got);
    ck_assert_str_eq(got, "b:FIRSTUP_PARENT");
    pd_peer_connected(e.ps, 0); /* a connect revives it */
    selection(&e, 1, 140, got, sizeof got);
    ck_assert_str_eq(got, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT");
    /* every parent dead: the default one is still the last resort */
    for (int k = 0; k < 10; k++) {
        pd_peer_failed(e.ps, 0, 150);
        pd_peer_failed(e.ps, 1, 150);
    }
    selection(&e, 1, 150, got, sizeof got);
    ck_assert_str_eq(got, "b:DEFAULT_PARENT");
    env_free(&e);
}
END_TEST

START_TEST(login_and_options)
{
    struct env e;
    env_load(&e, "cache_peer 127.0.0.1 parent 8080 0 name=up login=Aladdin:opensesame "
                 "connect-timeout=3\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    ck_assert_str_eq(pd_peer_auth(e.ps, 0), "Basic QWxhZGRpbjpvcGVuc2VzYW1l");
    ck_assert_str_eq(pd_peer_name(e.ps, 0), "up");
    ck_assert_str_eq(pd_peer_host(e.ps, 0), "127.0.0.1");
    ck_assert_int_eq(pd_peer_port(e.ps, 0), 8080);
    ck_assert_int_eq(pd_peer_connect_timeout(e.ps, 0), 3000);
    ck_assert_int_eq(pd_peer_origin_server(e.ps, 0), 0);
    env_free(&e);
    env_load(&e, "cache_peer www.example.com parent 80 0 no-query originserver name=o\n"
                 "never_direct allow all\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    ck_assert_int_eq(pd_peer_origin_server(e.ps, 0), 1);
    ck_assert_int_eq(pd_peer_icp_port(e.ps, 0), 0);
    /* selected as any parent */
    env_request(&e, "http://www.example.com/x", "10.0.0.1");
    pd_peer_cand c[PD_PEER_MAX_CAND];
    ck_assert_int_eq(pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND), 1);
    ck_assert_int_eq(c[0].peer, 0);
    ck_assert_str_eq(c[0].hier, "FIRSTUP_PARENT");
    env_free(&e);
}
END_TEST

/*
 * CARP: the parents Squid's algorithm (carp.cc: name hash, load multipliers
 * over the parents sorted by weight, the URL hash carried from parent to
 * parent) chooses, as computed by an independent model of it.
 */
#define CARP3                                                                                  \
    "cache_peer 10.0.0.1 parent 3128 0 carp name=p1\n"                                         \
    "cache_peer 10.0.0.2 parent 3128 0 carp name=p2\n"                                         \
    "cache_peer 10.0.0.3 parent 3128 0 carp name=p3\nnever_direct allow all\n"
#define CARPW                                                                                  \
    "cache_peer 10.0.0.1 parent 3128 0 carp name=alpha\n"                                      \
    "cache_peer 10.0.0.2 parent 3128 0 carp weight=3 name=beta\nnever_direct allow all\n"

static const struct {
    const char *conf, *url, *want;
} carp_cases[] = {
    { CARP3, "http://www.example.com/", "p3" },
    { CARP3, "http://www.example.com/a", "p2" },
    { CARP3, "http://www.example.com/b?q=1", "p1" },
    { CARP3, "http://example.org:8080/x", "p3" },
    { CARP3, "http://www.example.net/index.html", "p3" },
    { CARP3, "http://a.test/1", "p2" },
    { CARP3, "http://a.test/2", "p1" },
    { CARP3, "http://a.test/3", "p1" },
    { CARPW, "http://www.example.com/", "beta" },
    { CARPW, "http://www.example.com/a", "alpha" },
    { CARPW, "http://www.example.com/b?q=1", "beta" },
    { CARPW, "http://example.org:8080/x", "alpha" },
    { CARPW, "http://www.example.net/index.html", "beta" },
    { CARPW, "http://a.test/1", "beta" },
    { CARPW, "http://a.test/2", "beta" },
    { CARPW, "http://a.test/3", "alpha" },
};

START_TEST(carp_table)
{
    struct env e;
    env_load(&e, carp_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, carp_cases[_i].url, "10.9.9.9");
    pd_peer_cand c[PD_PEER_MAX_CAND];
    int n = pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
    ck_assert_int_ge(n, 1);
    ck_assert_str_eq(c[0].hier, "CARP");
    ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), carp_cases[_i].want);
    env_free(&e);
}
END_TEST

/* 1000 URLs: the model's counts, which follow the weights */
START_TEST(carp_spread)
{
    static const struct {
        const char *conf;
        int want[3];
    } t[] = { { CARP3, { 327, 349, 324 } }, { CARPW, { 251, 749, 0 } } };
    for (size_t k = 0; k < sizeof t / sizeof t[0]; k++) {
        struct env e;
        env_load(&e, t[k].conf);
        ck_assert_msg(e.errors == 0, "%s", e.msgs);
        int got[3] = { 0, 0, 0 };
        for (int i = 0; i < 1000; i++) {
            char url[64];
            snprintf(url, sizeof url, "http://h.test/%d", i);
            pd_http_msg_free(&e.req);
            pd_http_msg_init(&e.req);
            env_request(&e, url, "10.9.9.9");
            pd_peer_cand c[PD_PEER_MAX_CAND];
            ck_assert_int_ge(pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND), 1);
            got[c[0].peer]++;
        }
        ck_assert_int_eq(got[0], t[k].want[0]);
        ck_assert_int_eq(got[1], t[k].want[1]);
        ck_assert_int_eq(got[2], t[k].want[2]);
        /* a dead CARP parent: its URLs move to the others, the rest stay */
        if (k == 0) {
            for (int f = 0; f < 10; f++)
                pd_peer_failed(e.ps, 2, 1000);
            env_request(&e, "http://www.example.com/", "10.9.9.9");
            pd_peer_cand c[PD_PEER_MAX_CAND];
            int n = pd_peer_select(e.ps, &e.q, 1, 1001, c, PD_PEER_MAX_CAND);
            ck_assert_int_eq(n, 2);
            ck_assert_str_eq(c[0].hier, "CARP");
            ck_assert_int_ne(c[0].peer, 2);
            env_request(&e, "http://www.example.com/a", "10.9.9.9");
            pd_peer_select(e.ps, &e.q, 1, 1001, c, PD_PEER_MAX_CAND);
            ck_assert_str_eq(pd_peer_name(e.ps, c[0].peer), "p2");
        }
        env_free(&e);
    }
}
END_TEST

static const struct {
    const char *conf, *msg;
} err_cases[] = {
    { "cache_peer s multicast 3128 3130\n",
      "t.conf:1: cache_peer: 'multicast' peers are not implemented (parent and sibling are): "
      "proxyd has no multicast ICP" },
    { "cache_peer s sibling 3128 3130 htcp\n", "'htcp': option not implemented" },
    { "cache_peer s sibling 3128 3130 no-delay\n", "'no-delay': option not implemented" },
    { "cache_peer s sibling 3128 3130 multicast-siblings\n", "option not implemented" },
    { "cache_peer p parent 3128 x\n", "'x' is not an ICP port" },
    { "cache_peer p parent 3128 0 carp-key=host\n", "'carp-key=host': option not implemented" },
    { "cache_peer p parent 3128 0 max-conn=0\n", "'max-conn=0': a positive number expected" },
    { "cache_peer p parent 3128 0 ttl=5\n", "'ttl=5': option not implemented" },
    { "cache_peer p parent 3128 0 bogus\n", "'bogus': unknown option" },
    { "cache_peer p parent 3128 0 login=PASSTHRU\n", "only login=USER:PASSWORD" },
    { "cache_peer p parent x 0\n", "'x' is not a port" },
    { "cache_peer p parent 3128 0\ncache_peer p parent 3129 0\n",
      "t.conf:2: cache_peer: a peer named 'p' is configured already" },
    { "cache_peer p parent 3128 0\ncache_peer_access q allow all\n",
      "t.conf:2: cache_peer_access: no cache_peer is named 'q'" },
    { "never_direct allow nosuchacl\n", "unknown acl 'nosuchacl'" },
    { "never_direct maybe all\n", "never_direct: expected allow or deny" },
    { "cache_peer p parent 3128 0 round-robin weight=0\n", "the weight must be a positive number" },
    { "cache_peer p parent 3128 0 connect-timeout=x\n", "'connect-timeout=x': seconds expected" },
    { "cache_peer p parent 3128 0 login=:pw\n", "only login=USER:PASSWORD" },
};

START_TEST(errors_table)
{
    struct env e;
    env_load(&e, err_cases[_i].conf);
    ck_assert_int_gt(e.errors, 0);
    ck_assert_ptr_null(e.ps);
    ck_assert_msg(e.msgs && strstr(e.msgs, err_cases[_i].msg), "got: %s", e.msgs);
    env_free(&e);
}
END_TEST

/* Whom a miss asks by ICP (peerWouldBePinged). */
static const struct {
    const char *conf;
    int hierarchical, sibling_ok;
    const char *want;
} icp_cases[] = {
    { "cache_peer s1 sibling 3128 3130 name=s\ncache_peer p1 parent 3128 3130 name=p\n"
      "cache_peer p2 parent 3128 0 name=q\ncache_peer p3 parent 3128 3130 no-query name=r\n",
      1, 1, "s p" },
    /* a sibling is not asked for what it may not serve (no-cache, revalidation) */
    { "cache_peer s1 sibling 3128 3130 name=s\ncache_peer p1 parent 3128 3130 name=p\n", 1, 0,
      "p" },
    /* a non-hierarchical request: nobody, unless never_direct forces a parent */
    { "cache_peer s1 sibling 3128 3130 name=s\ncache_peer p1 parent 3128 3130 name=p\n", 0, 1,
      "" },
    { "cache_peer s1 sibling 3128 3130 name=s\ncache_peer p1 parent 3128 3130 name=p\n"
      "never_direct allow all\n", 0, 1, "p" },
    /* always_direct: nobody */
    { "cache_peer s1 sibling 3128 3130 name=s\nalways_direct allow all\n", 1, 1, "" },
    /* cache_peer_access applies */
    { "cache_peer s1 sibling 3128 3130 name=s\ncache_peer s2 sibling 3128 3130 name=t\n"
      "cache_peer_access s deny all\n", 1, 1, "t" },
};

START_TEST(icp_targets_table)
{
    struct env e;
    env_load(&e, icp_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://example.com/x", "10.0.0.1");
    int t[16];
    int n = pd_peer_icp_targets(e.ps, &e.q, icp_cases[_i].hierarchical, icp_cases[_i].sibling_ok,
                                t, 16);
    char got[128] = "";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof got - l, "%s%s", i ? " " : "", pd_peer_name(e.ps, t[i]));
    }
    ck_assert_str_eq(got, icp_cases[_i].want);
    env_free(&e);
}
END_TEST

/* icp_access: none denies all; acls on the querying address */
START_TEST(icp_access_rules)
{
    struct env e;
    env_load(&e, "cache_peer s1 sibling 3128 3130\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://example.com/x", "127.0.0.1");
    ck_assert_int_eq(pd_peers_icp_allowed(e.ps, &e.q), 0);
    env_free(&e);
    env_load(&e, "acl lo src 127.0.0.0/8\nicp_access allow lo\nicp_access deny all\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://example.com/x", "127.0.0.1");
    ck_assert_int_eq(pd_peers_icp_allowed(e.ps, &e.q), 1);
    env_request(&e, "http://example.com/x", "10.1.1.1");
    ck_assert_int_eq(pd_peers_icp_allowed(e.ps, &e.q), 0);
    env_free(&e);
}
END_TEST

START_TEST(proxy_only_and_sibling_flags)
{
    struct env e;
    env_load(&e, "cache_peer s1 sibling 3128 3130 proxy-only no-digest\n"
                 "cache_peer p1 parent 3128 3131 no-query closest-only\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    ck_assert_int_eq(pd_peers_count(e.ps), 2);
    ck_assert_int_eq(pd_peer_is_sibling(e.ps, 0), 1);
    ck_assert_int_eq(pd_peer_proxy_only(e.ps, 0), 1);
    ck_assert_int_eq(pd_peer_icp_port(e.ps, 0), 3130);
    ck_assert_int_eq(pd_peer_is_sibling(e.ps, 1), 0);
    ck_assert_int_eq(pd_peer_proxy_only(e.ps, 1), 0);
    ck_assert_int_eq(pd_peer_icp_port(e.ps, 1), 0); /* no-query */
    ck_assert_int_eq(pd_peer_closest_only(e.ps, 1), 1);
    env_free(&e);
}
END_TEST

/* sourcehash and userhash: one parent per client address / user, spread by weight, CARP's
 * multipliers; the next method (round-robin here) when there is no key */
START_TEST(source_and_user_hash)
{
    struct env e;
    env_load(&e, "cache_peer p1 parent 3128 0 no-query sourcehash userhash name=a\n"
                 "cache_peer p2 parent 3128 0 no-query sourcehash userhash name=b\n"
                 "cache_peer p3 parent 3128 0 no-query sourcehash userhash weight=2 name=c\n"
                 "cache_peer p4 parent 3128 0 no-query round-robin name=d\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    int got[4] = { 0, 0, 0, 0 };
    for (int i = 0; i < 400; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.1.%d.%d", i / 200, i % 200 + 1);
        env_request(&e, "http://h.test/x", ip);
        pd_peer_cand c[PD_PEER_MAX_CAND], c2[PD_PEER_MAX_CAND];
        ck_assert_int_ge(pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND), 1);
        ck_assert_str_eq(c[0].hier, "SOURCEHASH_PARENT");
        got[c[0].peer]++;
        /* the same client again, another URL: the same parent */
        env_request(&e, "http://other.test/y", ip);
        pd_peer_select(e.ps, &e.q, 1, 1000, c2, PD_PEER_MAX_CAND);
        ck_assert_int_eq(c2[0].peer, c[0].peer);
    }
    /* every sourcehash parent gets clients, c about twice as many; never d */
    ck_assert_int_gt(got[0], 50);
    ck_assert_int_gt(got[1], 50);
    ck_assert_int_gt(got[2], got[0]);
    ck_assert_int_gt(got[2], got[1]);
    ck_assert_int_eq(got[3], 0);
    env_free(&e);

    /* userhash: only with a user; by name */
    env_load(&e, "cache_peer p1 parent 3128 0 no-query userhash name=a\n"
                 "cache_peer p2 parent 3128 0 no-query userhash name=b\n"
                 "cache_peer p3 parent 3128 0 no-query round-robin name=d\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://h.test/x", "10.0.0.1");
    pd_peer_cand c[PD_PEER_MAX_CAND];
    pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
    ck_assert_str_eq(c[0].hier, "ROUNDROBIN_PARENT"); /* no user: no key */
    int seen[3] = { 0, 0, 0 };
    for (int i = 0; i < 60; i++) {
        char user[16];
        snprintf(user, sizeof user, "user%d", i);
        e.q.user = user;
        pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
        ck_assert_str_eq(c[0].hier, "USERHASH_PARENT");
        seen[c[0].peer]++;
        int first = c[0].peer;
        pd_peer_select(e.ps, &e.q, 1, 1000, c, PD_PEER_MAX_CAND);
        ck_assert_int_eq(c[0].peer, first);
    }
    ck_assert_int_gt(seen[0], 10);
    ck_assert_int_gt(seen[1], 10);
    ck_assert_int_eq(seen[2], 0);
    env_free(&e);
}
END_TEST

/* max-conn: a parent with its connections in use is skipped until one is released */
START_TEST(max_conn_skips_full_parent)
{
    struct env e;
    env_load(&e, "cache_peer p1 parent 3128 0 no-query max-conn=2 name=a\n"
                 "cache_peer p2 parent 3128 0 no-query name=b\nnever_direct allow all\n");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://example.com/x", "10.0.0.1");
    char got[256];
    selection(&e, 1, 1000, got, sizeof got);
    ck_assert_str_eq(got, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT");
    pd_peer_conn_opened(e.ps, 0);
    ck_assert_int_eq(pd_peer_full(e.ps, 0), 0);
    pd_peer_conn_opened(e.ps, 0);
    ck_assert_int_eq(pd_peer_full(e.ps, 0), 1);
    selection(&e, 1, 1000, got, sizeof got);
    ck_assert_str_eq(got, "b:FIRSTUP_PARENT");
    pd_peer_conn_closed(e.ps, 0);
    selection(&e, 1, 1000, got, sizeof got);
    ck_assert_str_eq(got, "a:FIRSTUP_PARENT b:ANY_OLD_PARENT");
    /* no cap without max-conn */
    for (int i = 0; i < 1000; i++)
        pd_peer_conn_opened(e.ps, 1);
    ck_assert_int_eq(pd_peer_full(e.ps, 1), 0);
    env_free(&e);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peer");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, select_table, 0, sizeof sel_cases / sizeof sel_cases[0]);
    tcase_add_test(tc, round_robin_spreads_by_weight);
    tcase_add_loop_test(tc, weighted_round_robin_table, 0,
                        sizeof wrr_cases / sizeof wrr_cases[0]);
    tcase_add_test(tc, weighted_round_robin_skips);
    tcase_add_test(tc, dead_peer_skipped_then_probed);
    tcase_add_test(tc, login_and_options);
    tcase_add_loop_test(tc, carp_table, 0, sizeof carp_cases / sizeof carp_cases[0]);
    tcase_add_test(tc, carp_spread);
    tcase_add_loop_test(tc, errors_table, 0, sizeof err_cases / sizeof err_cases[0]);
    tcase_add_loop_test(tc, icp_targets_table, 0, sizeof icp_cases / sizeof icp_cases[0]);
    tcase_add_test(tc, icp_access_rules);
    tcase_add_test(tc, proxy_only_and_sibling_flags);
    tcase_add_test(tc, max_conn_skips_full_parent);
    tcase_add_test(tc, source_and_user_hash);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
