/*
 * check_cluster: proxyd_cluster (cluster.c) through the real loader: the
 * line's errors, the member set (order, duplicates, which member is this
 * proxy), and the owner of a key (CARP: every member agrees, shares are
 * even, a member that joins or leaves moves only its own keys, dead and
 * already tried members are passed over).
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "proxyd/cluster.h"
#include "proxyd/conf.h"
#include "check_run.h"

static pd_conf *load(const char *text, char **msgs)
{
    size_t len;
    FILE *err = open_memstream(msgs, &len);
    pd_conf *c = pd_conf_load_string("t.conf", text, err);
    fclose(err);
    return c;
}

/* the errors pd_cluster_check finds in `http_port 3128\n` + line, and its messages */
static int check_line(const char *line, char **msgs)
{
    char text[512];
    snprintf(text, sizeof text, "http_port 3128\n%s\n", line);
    char *lm = NULL;
    pd_conf *c = load(text, &lm);
    ck_assert_msg(c != NULL, "%s: %s", line, lm);
    free(lm);
    size_t len;
    FILE *err = open_memstream(msgs, &len);
    int n = pd_cluster_check(c, err);
    fclose(err);
    pd_conf_free(c);
    return n;
}

START_TEST(line_errors)
{
    static const struct {
        const char *line;
        int errors;
        const char *msg;
    } cases[] = {
        { "proxyd_cluster c.test", 0, "" },
        { "proxyd_cluster c.test 3128 self=10.0.0.1 self=fd00::1 min-ttl=2 max-ttl=30 "
          "connect-timeout=1 connect-fail-limit=3", 0, "" },
        { "proxyd_cluster 10.1.2.3", 0, "" },
        { "proxyd_cluster bad/name", 1, "t.conf:2: proxyd_cluster: 'bad/name' is not a host name" },
        { "proxyd_cluster c.test 0", 1, "'0' is not a port" },
        { "proxyd_cluster c.test 65536", 1, "is not a port" },
        { "proxyd_cluster c.test self=host", 1, "self= takes an IP address" },
        { "proxyd_cluster c.test min-ttl=0", 1, "positive number of seconds" },
        { "proxyd_cluster c.test min-ttl=20", 1, "min-ttl is above max-ttl" },
        { "proxyd_cluster c.test connect-fail-limit=x", 1, "positive number expected" },
        { "proxyd_cluster c.test carp-key=path", 1, "unknown option" },
        { "proxyd_cluster a.test\nproxyd_cluster b.test", 1, "t.conf:3: proxyd_cluster: only one" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *msgs = NULL;
        int n = check_line(cases[i].line, &msgs);
        ck_assert_msg(n == cases[i].errors, "%s: %d errors: %s", cases[i].line, n, msgs);
        ck_assert_msg(strstr(msgs, cases[i].msg), "%s: %s", cases[i].line, msgs);
        free(msgs);
    }
}
END_TEST

/* ---- a cluster made from a line, with this proxy at self_ip:3128 ---- */

struct fake {
    struct sockaddr_in self;
};

static int fake_self(void *arg, const struct sockaddr_storage *a)
{
    const struct fake *f = arg;
    const struct sockaddr_in *s = (const struct sockaddr_in *)a;
    return a->ss_family == AF_INET && s->sin_port == f->self.sin_port &&
           s->sin_addr.s_addr == f->self.sin_addr.s_addr;
}

static struct sockaddr_storage ip(const char *s, int port)
{
    struct sockaddr_storage a;
    memset(&a, 0, sizeof a);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a;
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, s, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
    }
    return a;
}

static const char *text_of(const struct sockaddr_storage *a, char *buf, size_t n)
{
    const void *raw = a->ss_family == AF_INET
                          ? (const void *)&((const struct sockaddr_in *)a)->sin_addr
                          : (const void *)&((const struct sockaddr_in6 *)a)->sin6_addr;
    inet_ntop(a->ss_family, raw, buf, (socklen_t)n);
    return buf;
}

struct view {
    pd_conf *conf;
    pd_cluster *cl;
    struct fake f;
    char self_ip[64];
};

static void view_new(struct view *v, const char *line, const char *self_ip)
{
    memset(v, 0, sizeof *v);
    char text[512], *msgs = NULL;
    snprintf(text, sizeof text, "http_port 3128\n%s\n", line);
    v->conf = load(text, &msgs);
    ck_assert_msg(v->conf != NULL, "%s", msgs);
    free(msgs);
    snprintf(v->self_ip, sizeof v->self_ip, "%s", self_ip ? self_ip : "");
    v->f.self.sin_family = AF_INET;
    v->f.self.sin_port = htons(3128);
    if (self_ip)
        inet_pton(AF_INET, self_ip, &v->f.self.sin_addr);
    v->cl = pd_cluster_new(v->conf, 3128, fake_self, &v->f);
    ck_assert_ptr_nonnull(v->cl);
}

static void view_free(struct view *v)
{
    pd_cluster_free(v->cl);
    pd_conf_free(v->conf);
}

static void members(struct view *v, const char *const *ips, int n)
{
    struct sockaddr_storage a[16];
    for (int i = 0; i < n; i++)
        a[i] = ip(ips[i], 0);
    pd_cluster_set_members(v->cl, a, n);
}

/* The owner of key as v sees it: its address text, v's own when it is v. */
static const char *owner(struct view *v, const char *key, int64_t now, char *buf, size_t n)
{
    struct sockaddr_storage o;
    if (!pd_cluster_owner(v->cl, key, strlen(key), now, NULL, 0, &o))
        return v->self_ip[0] ? v->self_ip : "-";
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&o)->sin_port), 3128);
    return text_of(&o, buf, n);
}

/* The owner by the scores alone (no dead member), for comparison. */
static const char *best(const char *const *ips, int n, const char *key)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (pd_cluster_score(key, strlen(key), ips[i]) > pd_cluster_score(key, strlen(key), ips[b]))
            b = i;
    return ips[b];
}

START_TEST(draft_hash)
{
    /* values of draft-vinod-carp-v1-03's hash functions, computed independently */
    ck_assert_double_eq(pd_cluster_score("http://example.com/", 19, "10.0.0.1"), 1020635552.0);
    ck_assert_double_eq(pd_cluster_score("http://example.com/a.png", 24, "10.0.0.2"), 144161244.0);
    ck_assert_double_eq(pd_cluster_score("x", 1, "::1"), 3105705642.0);
}
END_TEST

START_TEST(member_set)
{
    struct view v;
    view_new(&v, "proxyd_cluster c.test", "10.0.0.2");
    ck_assert_int_eq(pd_cluster_size(v.cl), 0);
    char buf[64];
    /* no members yet: everything is served here */
    ck_assert_str_eq(owner(&v, "http://a/", 0, buf, sizeof buf), "10.0.0.2");
    static const char *const ips[] = { "10.0.0.3", "10.0.0.2", "fd00::1", "10.0.0.1",
                                       "10.0.0.3", "fd00::1" };
    members(&v, ips, 6);
    ck_assert_int_eq(pd_cluster_size(v.cl), 4); /* duplicates dropped */
    ck_assert_int_eq(pd_cluster_self_member(v.cl), 1);
    /* a proxy that is not among the members still forwards to them */
    static const char *const others[] = { "10.0.0.7", "10.0.0.8" };
    members(&v, others, 2);
    ck_assert_int_eq(pd_cluster_self_member(v.cl), 0);
    for (int i = 0; i < 50; i++) {
        char key[32];
        snprintf(key, sizeof key, "http://h/%d", i);
        ck_assert_str_eq(owner(&v, key, 0, buf, sizeof buf), best(others, 2, key));
    }
    view_free(&v);

    /* self= names this proxy whatever its listeners */
    view_new(&v, "proxyd_cluster c.test self=10.0.0.9", NULL);
    static const char *const with9[] = { "10.0.0.9", "10.0.0.8" };
    members(&v, with9, 2);
    ck_assert_int_eq(pd_cluster_self_member(v.cl), 1);
    view_free(&v);

    /* the members' port: the line's, else the default */
    view_new(&v, "proxyd_cluster c.test 8080", NULL);
    members(&v, others, 2);
    struct sockaddr_storage o;
    ck_assert_int_eq(pd_cluster_owner(v.cl, "k", 1, 0, NULL, 0, &o), 1);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&o)->sin_port), 8080);
    view_free(&v);
}
END_TEST

START_TEST(every_member_agrees_and_shares_are_even)
{
    static const char *const ips[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4" };
    static const char *const shuffled[] = { "10.0.0.3", "10.0.0.1", "10.0.0.4", "10.0.0.2" };
    struct view v[4];
    for (int i = 0; i < 4; i++) {
        view_new(&v[i], "proxyd_cluster c.test", ips[i]);
        members(&v[i], i % 2 ? shuffled : ips, 4); /* the answer's order does not matter */
    }
    int share[4] = { 0 };
    const int N = 4000;
    for (int k = 0; k < N; k++) {
        char key[64], b0[64], b1[64];
        snprintf(key, sizeof key, "http://www.example.com/object/%d.jpg", k);
        const char *o = owner(&v[0], key, 0, b0, sizeof b0);
        ck_assert_str_eq(o, best(ips, 4, key));
        for (int i = 1; i < 4; i++)
            ck_assert_str_eq(owner(&v[i], key, 0, b1, sizeof b1), o);
        for (int i = 0; i < 4; i++)
            share[i] += !strcmp(o, ips[i]);
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(share[i] > N / 4 * 8 / 10 && share[i] < N / 4 * 12 / 10,
                      "member %d owns %d of %d keys", i, share[i], N);
    for (int i = 0; i < 4; i++)
        view_free(&v[i]);
}
END_TEST

START_TEST(join_and_leave_move_only_their_keys)
{
    static const char *const three[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3" };
    static const char *const four[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.0" };
    struct view v;
    view_new(&v, "proxyd_cluster c.test", "10.0.0.1");
    int moved = 0;
    const int N = 3000;
    for (int k = 0; k < N; k++) {
        char key[64], b3[64], b4[64];
        snprintf(key, sizeof key, "http://h/%d", k);
        members(&v, three, 3);
        const char *o3 = owner(&v, key, 0, b3, sizeof b3);
        members(&v, four, 4); /* sorts first; the others' scores do not change */
        const char *o4 = owner(&v, key, 0, b4, sizeof b4);
        if (strcmp(o3, o4)) {
            ck_assert_str_eq(o4, "10.0.0.0"); /* a moved key went to the new member */
            moved++;
        }
    }
    ck_assert_msg(moved > N / 4 * 8 / 10 && moved < N / 4 * 12 / 10, "%d of %d moved", moved, N);
    view_free(&v);
}
END_TEST

START_TEST(dead_and_tried_members_are_passed_over)
{
    static const char *const ips[] = { "10.0.0.1", "10.0.0.2", "10.0.0.3" };
    struct view v;
    view_new(&v, "proxyd_cluster c.test connect-fail-limit=2\ndead_peer_timeout 30 seconds",
             "10.0.0.1");
    members(&v, ips, 3);
    /* a key member .3 owns, and where it goes without .3 */
    char key[64], buf[64];
    int k = 0;
    do
        snprintf(key, sizeof key, "http://h/%d", k++);
    while (strcmp(best(ips, 3, key), "10.0.0.3"));
    const char *next = best(ips, 2, key);
    struct sockaddr_storage m3 = ip("10.0.0.3", 3128);
    ck_assert_str_eq(owner(&v, key, 100, buf, sizeof buf), "10.0.0.3");
    /* tried by this request already: the next one */
    struct sockaddr_storage o;
    int r = pd_cluster_owner(v.cl, key, strlen(key), 100, &m3, 1, &o);
    if (!strcmp(next, "10.0.0.1"))
        ck_assert_int_eq(r, 0); /* this proxy is next: served here */
    else
        ck_assert_str_eq(text_of(&o, buf, sizeof buf), next);
    /* one failure is not death with connect-fail-limit=2; a success resets it */
    pd_cluster_failed(v.cl, &m3, 100);
    ck_assert_str_eq(owner(&v, key, 100, buf, sizeof buf), "10.0.0.3");
    pd_cluster_connected(v.cl, &m3);
    pd_cluster_failed(v.cl, &m3, 100);
    ck_assert_str_eq(owner(&v, key, 100, buf, sizeof buf), "10.0.0.3");
    pd_cluster_failed(v.cl, &m3, 100);
    ck_assert_str_eq(owner(&v, key, 100, buf, sizeof buf), next);
    ck_assert_str_eq(owner(&v, key, 129, buf, sizeof buf), next);
    /* the DNS answer again: a member that stays keeps its dead state */
    members(&v, ips, 3);
    ck_assert_str_eq(owner(&v, key, 129, buf, sizeof buf), next);
    /* dead_peer_timeout later it owns its keys again (the next request probes it) */
    ck_assert_str_eq(owner(&v, key, 130, buf, sizeof buf), "10.0.0.3");
    /* all others dead: served here */
    static const char *const two[] = { "10.0.0.2", "10.0.0.3" };
    members(&v, two, 2); /* this proxy not a member any more */
    struct sockaddr_storage m2 = ip("10.0.0.2", 3128);
    for (int i = 0; i < 2; i++) {
        pd_cluster_failed(v.cl, &m2, 200);
        pd_cluster_failed(v.cl, &m3, 200);
    }
    ck_assert_int_eq(pd_cluster_owner(v.cl, key, strlen(key), 200, NULL, 0, &o), 0);
    view_free(&v);
}
END_TEST

START_TEST(literal_name_is_the_one_member)
{
    struct view v;
    view_new(&v, "proxyd_cluster 10.0.0.5", "10.0.0.1");
    struct event_base *base = event_base_new();
    ck_assert_int_eq(pd_cluster_start(v.cl, base, NULL), 0);
    ck_assert_int_eq(pd_cluster_size(v.cl), 1);
    char buf[64];
    ck_assert_str_eq(owner(&v, "http://a/", 0, buf, sizeof buf), "10.0.0.5");
    view_free(&v);
    event_base_free(base);
    /* no line: no cluster */
    char *msgs = NULL;
    pd_conf *c = load("http_port 3128\n", &msgs);
    free(msgs);
    ck_assert_ptr_null(pd_cluster_new(c, 3128, NULL, NULL));
    ck_assert_int_eq(pd_cluster_check(c, NULL), 0);
    pd_conf_free(c);
}
END_TEST

static Suite *cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, line_errors);
    tcase_add_test(tc, draft_hash);
    tcase_add_test(tc, member_set);
    tcase_add_test(tc, every_member_agrees_and_shares_are_even);
    tcase_add_test(tc, join_and_leave_move_only_their_keys);
    tcase_add_test(tc, dead_and_tried_members_are_passed_over);
    tcase_add_test(tc, literal_name_is_the_one_member);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(cluster_suite());
}
