/*
 * check_defaults: the shipped conf/proxy.conf is not an open proxy (issue 8).
 *
 * The file is loaded with the real parser and its http_access rules compiled
 * and evaluated for requests from public and from local/private client
 * addresses: only the latter are allowed, and even they may not CONNECT to
 * a port other than 443 nor reach an unsafe port. Spoofing a public source
 * address over loopback is not possible in an end-to-end test; the decision
 * is made by these rules alone.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/http_parse.h"
#include "proxyd/url.h"
#include "check_run.h"

static pd_conf *conf;
static pd_acl_rules *rules;

static void load_shipped(void)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC is not set (run through ctest)");
    char path[4096];
    snprintf(path, sizeof path, "%s/conf/proxy.conf", src);
    conf = pd_conf_load(path, stderr);
    ck_assert_msg(conf != NULL, "conf/proxy.conf does not load");
    rules = pd_acl_compile(conf, stderr);
    ck_assert_msg(rules != NULL, "conf/proxy.conf ACLs do not compile");
}

static void unload(void)
{
    pd_acl_rules_free(rules);
    pd_conf_free(conf);
}

static void make_addr(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else {
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
        s6->sin6_family = AF_INET6;
    }
}

/* The verdict for `method target` (a real request head through the parser). */
static enum pd_acl_verdict verdict(const char *client_ip, const char *method, const char *target)
{
    char raw[1024];
    int is_connect = strcmp(method, "CONNECT") == 0;
    const char *host = target;
    char hbuf[512];
    if (!is_connect) {
        const char *h = strstr(target, "://");
        h = h ? h + 3 : target;
        size_t n = strcspn(h, "/");
        snprintf(hbuf, sizeof hbuf, "%.*s", (int)n, h);
        host = hbuf;
    }
    snprintf(raw, sizeof raw, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: t\r\n\r\n", method, target,
             host);
    pd_http_parser *p = pd_http_parser_new(1, 65536);
    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser_next(p, &m, 0);
    size_t used;
    ck_assert_int_eq(pd_http_parse_head(p, raw, strlen(raw), &used), PD_PARSE_DONE);
    pd_url u;
    const char *why;
    ck_assert_int_eq(pd_url_parse(m.target.p, m.target.len,
                                  is_connect ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE, &u, &why), 0);
    struct sockaddr_storage client, dst;
    make_addr(client_ip, &client);
    make_addr("93.184.216.34", &dst);
    pd_acl_req r = {
        .client = (const struct sockaddr *)&client,
        .local_port = 3128,
        .msg = &m,
        .url = &u,
        .is_connect = is_connect,
        .now = time(NULL),
    };
    enum pd_acl_verdict v = pd_acl_check_http(rules, &r, NULL);
    if (v == PD_ACL_NEED_DST) {
        r.dst = &dst;
        r.n_dst = 1;
        v = pd_acl_check_http(rules, &r, NULL);
    }
    pd_url_free(&u);
    pd_http_msg_free(&m);
    pd_http_parser_free(p);
    return v;
}

static const struct {
    const char *client, *method, *target;
    enum pd_acl_verdict want;
    const char *why;
} cases[] = {
    /* not an open proxy: public sources are denied */
    { "8.8.8.8", "GET", "http://example.com/", PD_ACL_DENY, "public IPv4" },
    { "203.0.113.5", "GET", "http://example.com:8080/x", PD_ACL_DENY, "public IPv4, high port" },
    { "1.1.1.1", "CONNECT", "example.com:443", PD_ACL_DENY, "public IPv4 CONNECT 443" },
    { "2001:db8::1", "GET", "http://example.com/", PD_ACL_DENY, "public IPv6" },
    { "2a00:1450::1", "CONNECT", "example.com:443", PD_ACL_DENY, "public IPv6 CONNECT" },
    { "::ffff:8.8.8.8", "GET", "http://example.com/", PD_ACL_DENY, "v4-mapped public" },
    { "100.128.0.1", "GET", "http://example.com/", PD_ACL_DENY, "just outside 100.64/10" },
    { "172.32.0.1", "GET", "http://example.com/", PD_ACL_DENY, "just outside 172.16/12" },
    { "11.0.0.1", "GET", "http://example.com/", PD_ACL_DENY, "just outside 10/8" },
    { "fe00::1", "GET", "http://example.com/", PD_ACL_DENY, "outside fc00::/7 and fe80::/10" },
    /* local and private sources are allowed */
    { "127.0.0.1", "GET", "http://example.com/", PD_ACL_ALLOW, "localhost" },
    { "::1", "GET", "http://example.com/", PD_ACL_ALLOW, "localhost IPv6" },
    { "::ffff:127.0.0.1", "GET", "http://example.com/", PD_ACL_ALLOW, "v4-mapped localhost" },
    { "10.1.2.3", "GET", "http://example.com/", PD_ACL_ALLOW, "10/8" },
    { "172.16.0.1", "GET", "http://example.com/", PD_ACL_ALLOW, "172.16/12" },
    { "192.168.1.20", "GET", "http://example.com/", PD_ACL_ALLOW, "192.168/16" },
    { "100.64.0.1", "GET", "http://example.com/", PD_ACL_ALLOW, "CGN" },
    { "fd00::5", "GET", "http://example.com/", PD_ACL_ALLOW, "ULA" },
    { "fe80::1", "GET", "http://example.com/", PD_ACL_ALLOW, "link-local" },
    { "127.0.0.1", "CONNECT", "example.com:443", PD_ACL_ALLOW, "local CONNECT 443" },
    /* even local clients: CONNECT only to 443, no unsafe ports */
    { "127.0.0.1", "CONNECT", "example.com:25", PD_ACL_DENY, "CONNECT to SMTP" },
    { "10.0.0.1", "CONNECT", "example.com:8080", PD_ACL_DENY, "CONNECT to a high port" },
    { "127.0.0.1", "GET", "http://example.com:25/", PD_ACL_DENY, "GET to SMTP (unsafe port)" },
    { "192.168.0.1", "GET", "http://example.com:22/", PD_ACL_DENY, "GET to SSH (unsafe port)" },
    { "127.0.0.1", "GET", "http://example.com:8080/", PD_ACL_ALLOW, "GET to a high port" },
};

START_TEST(test_shipped_conf_access)
{
    load_shipped();
    enum pd_acl_verdict v = verdict(cases[_i].client, cases[_i].method, cases[_i].target);
    ck_assert_msg(v == cases[_i].want, "%s: %s %s from %s: verdict %d, want %d", cases[_i].why,
                  cases[_i].method, cases[_i].target, cases[_i].client, v, cases[_i].want);
    unload();
}
END_TEST

/* The cache manager URL is denied to all but localhost; the admin port is local. */
START_TEST(test_shipped_conf_manager)
{
    load_shipped();
    ck_assert_int_eq(verdict("10.0.0.1", "GET", "http://example.com/squid-internal-mgr/info"),
                     PD_ACL_DENY);
    ck_assert_int_eq(verdict("8.8.8.8", "GET", "http://example.com/squid-internal-mgr/info"),
                     PD_ACL_DENY);
    ck_assert_int_eq(verdict("127.0.0.1", "GET", "http://example.com/squid-internal-mgr/info"),
                     PD_ACL_ALLOW);
    /* the admin port, if the shipped conf opens one, listens on loopback only */
    for (int i = 0; i < conf->n_admin_port; i++) {
        const struct sockaddr_storage *ss = &conf->admin_port[i].ss;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
            ck_assert_msg((ntohl(s4->sin_addr.s_addr) >> 24) == 127, "admin_port %s is not loopback",
                          conf->admin_port[i].text);
        } else {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
            ck_assert_msg(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr), "admin_port %s is not loopback",
                          conf->admin_port[i].text);
        }
    }
    unload();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("defaults");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_shipped_conf_access, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, test_shipped_conf_manager);
    suite_add_tcase(s, tc);
    return pd_check_run(s);
}
