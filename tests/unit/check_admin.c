/*
 * Unit tests for admin's access decision (pd_admin_allowed): loopback only
 * while no http_access line names `manager`, http_access with Squid's
 * `manager` acl otherwise, for IPv4 and IPv6 clients. The listener itself is
 * exercised end to end by tests/e2e/test_ops.py.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/admin.h"
#include "check_run.h"

static const char *const confs[] = {
    /* 0: no manager rule at all */
    "http_access allow all\n",
    /* 1: Squid's default pair */
    "http_access allow localhost manager\nhttp_access deny manager\nhttp_access allow all\n",
    /* 2: a monitoring network, localhost refused */
    ("acl mon src 10.20.0.0/24\nhttp_access allow mon manager\nhttp_access deny manager\n"
     "http_access allow all\n"),
    /* 3: deny everything, no manager rule */
    "http_access deny all\n",
    /* 4: !manager in a rule also counts as naming it */
    "http_access deny !manager\nhttp_access allow all\n",
};

static const struct {
    int conf;
    const char *client;
    const char *url;
    int want;
} cases[] = {
    { 0, "127.0.0.1", "http://127.0.0.1:3129/squid-internal-mgr/metrics", 1 },
    { 0, "127.9.8.7", "http://127.0.0.1:3129/squid-internal-mgr/metrics", 1 },
    { 0, "::1", "http://[::1]:3129/squid-internal-mgr/info", 1 },
    { 0, "::ffff:127.0.0.1", "http://127.0.0.1:3129/squid-internal-mgr/info", 1 },
    { 0, "192.0.2.1", "http://127.0.0.1:3129/squid-internal-mgr/metrics", 0 },
    { 0, "2001:db8::1", "http://[::1]:3129/squid-internal-mgr/metrics", 0 },
    { 1, "127.0.0.1", "http://127.0.0.1:3129/squid-internal-mgr/metrics", 1 },
    { 1, "192.0.2.1", "http://10.0.0.1:3129/squid-internal-mgr/metrics", 0 },
    { 2, "10.20.0.9", "http://10.0.0.1:3129/squid-internal-mgr/info", 1 },
    { 2, "10.21.0.9", "http://10.0.0.1:3129/squid-internal-mgr/info", 0 },
    { 2, "127.0.0.1", "http://127.0.0.1:3129/squid-internal-mgr/info", 0 },
    { 3, "127.0.0.1", "http://127.0.0.1:3129/squid-internal-mgr/healthz", 1 },
    { 3, "192.0.2.1", "http://127.0.0.1:3129/squid-internal-mgr/healthz", 0 },
    { 4, "192.0.2.1", "http://127.0.0.1:3129/squid-internal-mgr/info", 1 },
    { 4, "192.0.2.1", "http://127.0.0.1:3129/not-manager", 0 },
};

static void to_sockaddr(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(40000);
        return;
    }
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(40000);
}

START_TEST(access_table)
{
    FILE *err = tmpfile();
    pd_conf *conf = pd_conf_load_string("t.conf", confs[cases[_i].conf], err);
    ck_assert_ptr_nonnull(conf);
    pd_acl_rules *acl = pd_acl_compile(conf, err);
    ck_assert_ptr_nonnull(acl);
    pd_url u;
    const char *why;
    ck_assert_int_eq(pd_url_parse(cases[_i].url, strlen(cases[_i].url), PD_URL_ABSOLUTE, &u, &why),
                     0);
    struct sockaddr_storage ss;
    to_sockaddr(cases[_i].client, &ss);
    ck_assert_msg(pd_admin_allowed(conf, acl, (struct sockaddr *)&ss, 3129, &u) == cases[_i].want,
                  "conf %d, client %s, %s: want %d", cases[_i].conf, cases[_i].client,
                  cases[_i].url, cases[_i].want);
    /* without compiled rules: loopback only */
    int loop = !strncmp(cases[_i].client, "127.", 4) || !strcmp(cases[_i].client, "::1") ||
               !strcmp(cases[_i].client, "::ffff:127.0.0.1");
    ck_assert_int_eq(pd_admin_allowed(conf, NULL, (struct sockaddr *)&ss, 3129, &u), loop);
    ck_assert_int_eq(pd_admin_allowed(conf, acl, NULL, 3129, &u), 0);
    pd_url_free(&u);
    pd_acl_rules_free(acl);
    pd_conf_free(conf);
    fclose(err);
}
END_TEST

START_TEST(admin_port_forms)
{
    static const struct {
        const char *line;
        int n;
        const char *text;
    } forms[] = {
        { "admin_port 3129\n", 1, "127.0.0.1:3129" },   /* bare port: loopback */
        { "admin_port 0.0.0.0:3129\n", 1, "0.0.0.0:3129" },
        { "admin_port [::1]:0\n", 1, NULL },
        { "admin_port none\n", 0, NULL },
        { "admin_port 127.0.0.1:1\nadmin_port none\n", 0, NULL },
        { "", 0, NULL },                                 /* off unless set */
    };
    FILE *err = tmpfile();
    pd_conf *conf = pd_conf_load_string("t.conf", forms[_i].line, err);
    ck_assert_ptr_nonnull(conf);
    ck_assert_int_eq(conf->n_admin_port, forms[_i].n);
    if (forms[_i].text)
        ck_assert_str_eq(conf->admin_port[0].text, forms[_i].text);
    if (_i == 0) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&conf->admin_port[0].ss;
        ck_assert_uint_eq(ntohl(s4->sin_addr.s_addr), INADDR_LOOPBACK);
    }
    pd_conf_free(conf);
    ck_assert_ptr_null(pd_conf_load_string("t.conf", "admin_port none 3129\n", err));
    fclose(err);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, access_table, 0, sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, admin_port_forms, 0, 6);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(admin_suite());
}
