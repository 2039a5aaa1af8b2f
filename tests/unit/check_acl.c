/*
 * check_acl: Squid acl / http_access / cache / deny_info semantics.
 *
 * A pd_conf is built by hand (conf.c is another module): each test adds raw
 * lines as conf.c would keep them, compiles, and asks about requests made
 * from a target string through the real normaliser (url.c), so bypass
 * attempts are tested end to end from the spelling a client would send.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proxyd/acl.h"
#include "check_run.h"

/* 2023-11-14 22:13:20 UTC, a Tuesday (TZ is set to UTC in main) */
#define T_TUE_2213 ((time_t)1700000000)

/* ------------------------------------------------------------ conf helper */

static void add_line(pd_conf_lines *L, const char *file, int line, const char *text)
{
    if (L->n == L->cap) {
        L->cap = L->cap ? L->cap * 2 : 8;
        L->v = realloc(L->v, L->cap * sizeof(*L->v));
        ck_assert_ptr_nonnull(L->v);
    }
    pd_conf_line *l = &L->v[L->n++];
    memset(l, 0, sizeof(*l));
    l->file = strdup(file);
    l->line = line;
    l->argv = calloc(strlen(text) / 2 + 2, sizeof(char *));
    char *copy = strdup(text);
    for (char *t = strtok(copy, " \t"); t; t = strtok(NULL, " \t"))
        l->argv[l->argc++] = strdup(t);
    free(copy);
}

static void free_lines(pd_conf_lines *L)
{
    for (size_t i = 0; i < L->n; i++) {
        for (int k = 0; k < L->v[i].argc; k++)
            free(L->v[i].argv[k]);
        free(L->v[i].argv);
        free(L->v[i].file);
    }
    free(L->v);
    memset(L, 0, sizeof(*L));
}

static void free_conf(pd_conf *c)
{
    free_lines(&c->acl);
    free_lines(&c->http_access);
    free_lines(&c->cache_rules);
    free_lines(&c->deny_info);
    free_lines(&c->external_acl_type);
}

static char *auth_argv[] = { "/bin/true", NULL };

/*
 * Build a conf from a script of lines "directive words...", separated by
 * '\n'; line numbers count from 1 in file "test.conf".
 */
static void load_script(pd_conf *c, const char *script)
{
    memset(c, 0, sizeof(*c));
    char *s = strdup(script), *save = NULL;
    int n = 0;
    for (char *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        n++;
        while (*l == ' ')
            l++;
        char *sp = strchr(l, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        if (strcmp(l, "auth_program") == 0) {   /* stands for auth_param basic program */
            c->auth_basic.helper.argv = auth_argv;
            c->auth_basic.casesensitive = strcmp(sp + 1, "casesensitive") == 0;
            continue;
        }
        pd_conf_lines *L = strcmp(l, "acl") == 0 ? &c->acl
            : strcmp(l, "http_access") == 0 ? &c->http_access
            : strcmp(l, "cache") == 0 ? &c->cache_rules
            : strcmp(l, "deny_info") == 0 ? &c->deny_info
            : strcmp(l, "external_acl_type") == 0 ? &c->external_acl_type : NULL;
        ck_assert_msg(L != NULL, "test script: unknown directive %s", l);
        add_line(L, "test.conf", n, sp + 1);
    }
    free(s);
}

/* Compile a script; returns rules or NULL, with the error text in *errtext (caller frees). */
static pd_acl_rules *compile(const char *script, char **errtext)
{
    pd_conf c;
    char *buf = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&buf, &len);
    load_script(&c, script);
    pd_acl_rules *r = pd_acl_compile(&c, err);
    fclose(err);
    free_conf(&c);
    if (errtext)
        *errtext = buf;
    else
        free(buf);
    return r;
}

static pd_acl_rules *compile_ok(const char *script)
{
    char *e;
    pd_acl_rules *r = compile(script, &e);
    ck_assert_msg(r != NULL, "compile failed: %s", e);
    free(e);
    return r;
}

/* ------------------------------------------------------------ request helper */

struct treq {
    pd_url url;
    pd_http_msg msg;
    struct sockaddr_storage client;
    struct sockaddr_storage dst[2];
    pd_acl_req req;
};

static void set_addr(struct sockaddr_storage *ss, const char *ip)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(ip, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
}

/*
 * method "CONNECT" parses target in authority-form. headers: "Name: value\n"...
 * dst: NULL (not resolved yet), "" (resolved, no address) or an address.
 */
static void mkreq(struct treq *t, const char *method, const char *target, const char *client,
                  const char *headers, const char *dst)
{
    memset(t, 0, sizeof(*t));
    int connect = strcmp(method, "CONNECT") == 0;
    const char *why = NULL;
    int rc = pd_url_parse(target, strlen(target), connect ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE,
                          &t->url, &why);
    ck_assert_msg(rc == 0, "%s: %s", target, why);
    pd_http_msg_init(&t->msg);
    t->msg.is_request = 1;
    if (headers) {
        char *h = strdup(headers), *save = NULL;
        for (char *l = strtok_r(h, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
            char *colon = strchr(l, ':');
            ck_assert_ptr_nonnull(colon);
            *colon = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            ck_assert_int_eq(pd_http_msg_add(&t->msg, l, v, strlen(v)), 0);
        }
        free(h);
    }
    t->msg.method = (pd_str){ method, strlen(method) };
    t->msg.method_id = pd_method_id(t->msg.method);
    set_addr(&t->client, client ? client : "192.0.2.1");
    t->req.client = (const struct sockaddr *)&t->client;
    t->req.local_port = 3128;
    t->req.msg = &t->msg;
    t->req.url = &t->url;
    t->req.is_connect = connect;
    if (dst) {
        t->req.dst = t->dst;
        if (*dst) {
            set_addr(&t->dst[0], dst);
            t->req.n_dst = 1;
        }
    }
    t->req.now = T_TUE_2213;
}

static void freereq(struct treq *t)
{
    pd_url_free(&t->url);
    pd_http_msg_free(&t->msg);
}

/* ------------------------------------------------------------ per-type table */

struct tcase {
    const char *acl;        /* values after "acl t " */
    const char *method;
    const char *target;
    const char *client;
    const char *headers;
    const char *dst;
    int local_port, conns;
    time_t now;
    int match;
};

#define GET "GET"
#define U "http://www.example.com/index.html"

static const struct tcase type_cases[] = {
    /* src */
    { "src 192.0.2.0/24", GET, U, "192.0.2.77", NULL, NULL, 0, 0, 0, 1 },
    { "src 192.0.2.0/24", GET, U, "192.0.3.1", NULL, NULL, 0, 0, 0, 0 },
    { "src 10.0.0.0/255.0.0.0", GET, U, "10.200.1.1", NULL, NULL, 0, 0, 0, 1 },
    { "src 10.0.0.0/255.0.0.0", GET, U, "11.0.0.1", NULL, NULL, 0, 0, 0, 0 },
    { "src 10.0.0.5-10.0.0.9", GET, U, "10.0.0.9", NULL, NULL, 0, 0, 0, 1 },
    { "src 10.0.0.5-10.0.0.9", GET, U, "10.0.0.10", NULL, NULL, 0, 0, 0, 0 },
    { "src 192.0.2.1", GET, U, "192.0.2.1", NULL, NULL, 0, 0, 0, 1 },
    { "src 192.0.2.1", GET, U, "192.0.2.2", NULL, NULL, 0, 0, 0, 0 },
    { "src fc00::/7", GET, U, "fd12::1", NULL, NULL, 0, 0, 0, 1 },
    { "src fc00::/7", GET, U, "fe80::1", NULL, NULL, 0, 0, 0, 0 },
    { "src 127.0.0.0/8", GET, U, "::ffff:127.0.0.2", NULL, NULL, 0, 0, 0, 1 },
    { "src all", GET, U, "2001:db8::1", NULL, NULL, 0, 0, 0, 1 },
    /* dst (resolved address given) */
    { "dst 203.0.113.0/24", GET, U, NULL, NULL, "203.0.113.9", 0, 0, 0, 1 },
    { "dst 203.0.113.0/24", GET, U, NULL, NULL, "203.0.114.9", 0, 0, 0, 0 },
    { "dst 203.0.113.0/24", GET, U, NULL, NULL, "", 0, 0, 0, 0 },
    { "dst 2001:db8::/32", GET, U, NULL, NULL, "2001:db8:1::1", 0, 0, 0, 1 },
    { "dst -n 2001:db8::/32", GET, U, NULL, NULL, "2001:db9::1", 0, 0, 0, 0 },
    /* dstdomain */
    { "dstdomain .example.com", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain .example.com", GET, "http://example.com/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain .example.com", GET, "http://badexample.com/", NULL, NULL, NULL, 0, 0, 0, 0 },
    { "dstdomain example.com", GET, "http://EXAMPLE.COM/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain example.com", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "dstdomain Example.Org. .EXAMPLE.com", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain 10.0.0.1", GET, "http://012.0.0.1/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain 0x0a000001", GET, "http://10.0.0.1/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain 2001:DB8:0::1", GET, "http://[2001:db8::1]/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdomain [::ffff:10.0.0.1]", GET, "http://10.0.0.1:8080/", NULL, NULL, NULL, 0, 0, 0, 1 },
    /* dstdom_regex */
    { "dstdom_regex ^www\\.", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    /* the host is lowercased, a regex without -i is not */
    { "dstdom_regex ^WWW\\.", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "dstdom_regex -i ^WWW\\.", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "dstdom_regex \\.org$", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    /* url_regex */
    { "url_regex ^http://www\\.example\\.com/index", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "url_regex \\.HTML$", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "url_regex -i \\.HTML$", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "url_regex -i foo +i \\.HTML$", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "url_regex ^example\\.com:443$", "CONNECT", "example.com:443", NULL, NULL, NULL, 0, 0, 0, 1 },
    /* urlpath_regex */
    { "urlpath_regex \\.html$", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "urlpath_regex ^/cgi-bin/", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "urlpath_regex \\?", GET, "http://a.b/x?y", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "urlpath_regex .", "CONNECT", "a.b:443", NULL, NULL, NULL, 0, 0, 0, 0 },
    /* port */
    { "port 80 443", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "port 1025-65535", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "port 1025-65535", GET, "http://a.b:8080/", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "port 443", "CONNECT", "a.b:443", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "port 443", "CONNECT", "a.b:22", NULL, NULL, NULL, 0, 0, 0, 0 },
    /* localport (client connected to 3128, or the given port) */
    { "localport 3128", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "localport 8080", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "localport 8000-8100", GET, U, NULL, NULL, NULL, 8080, 0, 0, 1 },
    /* method */
    { "method GET POST", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "method POST", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "method CONNECT", "CONNECT", "a.b:443", NULL, NULL, NULL, 0, 0, 0, 1 },
    { "method get", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    /* proto */
    { "proto HTTP", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "proto http", GET, U, NULL, NULL, NULL, 0, 0, 0, 1 },
    { "proto FTP", GET, U, NULL, NULL, NULL, 0, 0, 0, 0 },
    { "proto HTTP", "CONNECT", "a.b:443", NULL, NULL, NULL, 0, 0, 0, 0 },
    { "proto AUTHORITY", "CONNECT", "a.b:443", NULL, NULL, NULL, 0, 0, 0, 1 },
    /* time: the request is on a Tuesday at 22:13 UTC */
    { "time T", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 1 },
    { "time MWHF", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 0 },
    { "time D", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 1 },
    { "time SA", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 0 },
    { "time 22:00-23:00", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 1 },
    { "time 08:00-17:30", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 0 },
    { "time MTWHF 22:13-22:14", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 1 },
    { "time SA 22:00-23:00", GET, U, NULL, NULL, NULL, 0, 0, T_TUE_2213, 0 },
    /* maxconn: more than N */
    { "maxconn 2", GET, U, NULL, NULL, NULL, 0, 3, 0, 1 },
    { "maxconn 2", GET, U, NULL, NULL, NULL, 0, 2, 0, 0 },
    /* req_header */
    { "req_header User-Agent ^curl/", GET, U, NULL, "User-Agent: curl/8.0\n", NULL, 0, 0, 0, 1 },
    { "req_header User-Agent ^curl/", GET, U, NULL, "User-Agent: Mozilla\n", NULL, 0, 0, 0, 0 },
    { "req_header user-agent -i ^CURL/", GET, U, NULL, "User-Agent: curl/8.0\n", NULL, 0, 0, 0, 1 },
    { "req_header X-A ^2$", GET, U, NULL, "X-A: 1\nX-A: 2\n", NULL, 0, 0, 0, 1 },
    { "req_header X-A ^1$", GET, U, NULL, "X-A: 1\nX-A: 2\n", NULL, 0, 0, 0, 1 },
    { "req_header X-A ^12$", GET, U, NULL, "X-A: 1\nX-A: 2\n", NULL, 0, 0, 0, 0 },
    { "req_header X-B .", GET, U, NULL, "X-A: 1\n", NULL, 0, 0, 0, 0 },
    { "browser Firefox", GET, U, NULL, "User-Agent: Mozilla/5.0 Firefox/1\n", NULL, 0, 0, 0, 1 },
    { "referer_regex evil", GET, U, NULL, "Referer: http://good/\n", NULL, 0, 0, 0, 0 },
};

START_TEST(test_types)
{
    const struct tcase *c = &type_cases[_i];
    char script[512];
    snprintf(script, sizeof(script), "acl t %s\nhttp_access allow t\nhttp_access deny all", c->acl);
    pd_acl_rules *r = compile_ok(script);
    struct treq t;
    mkreq(&t, c->method, c->target, c->client, c->headers, c->dst);
    if (c->local_port)
        t.req.local_port = (uint16_t)c->local_port;
    t.req.client_conns = c->conns;
    if (c->now)
        t.req.now = c->now;
    enum pd_acl_verdict v = pd_acl_check_http(r, &t.req, NULL);
    ck_assert_msg(v == (c->match ? PD_ACL_ALLOW : PD_ACL_DENY), "acl t %s / %s %s: got %d",
                  c->acl, c->method, c->target, (int)v);
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

/* ------------------------------------------------------------ http_access logic */

static enum pd_acl_verdict check(const pd_acl_rules *r, const char *method, const char *target,
                                 const char *client)
{
    struct treq t;
    mkreq(&t, method, target, client, NULL, "");
    enum pd_acl_verdict v = pd_acl_check_http(r, &t.req, NULL);
    freereq(&t);
    return v;
}

START_TEST(test_first_match_and_negation)
{
    pd_acl_rules *r = compile_ok(
        "acl lan src 10.0.0.0/8\n"
        "acl ads dstdomain .ads.example\n"
        "acl SSL_ports port 443\n"
        "http_access deny CONNECT !SSL_ports\n"
        "http_access deny lan ads\n"
        "http_access allow lan\n"
        "http_access deny all");
    ck_assert_int_eq(check(r, "GET", "http://a.example/", "10.1.1.1"), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://x.ads.example/", "10.1.1.1"), PD_ACL_DENY);
    /* AND: ads alone (not from lan) does not hit line 2; line 4 denies anyway */
    ck_assert_int_eq(check(r, "GET", "http://x.ads.example/", "192.0.2.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "CONNECT", "a.example:443", "10.1.1.1"), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "CONNECT", "a.example:25", "10.1.1.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "CONNECT", "x.ads.example:443", "10.1.1.1"), PD_ACL_DENY);
    pd_acl_rules_free(r);
}
END_TEST

START_TEST(test_implicit_last_rule)
{
    /* last line allow -> default deny */
    pd_acl_rules *r = compile_ok("acl lan src 10.0.0.0/8\nhttp_access allow lan");
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "10.0.0.1"), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "192.0.2.1"), PD_ACL_DENY);
    pd_acl_rules_free(r);
    /* last line deny -> default allow */
    r = compile_ok("acl bad dstdomain bad.example\nhttp_access deny bad");
    ck_assert_int_eq(check(r, "GET", "http://bad.example/", "10.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://good.example/", "10.0.0.1"), PD_ACL_ALLOW);
    pd_acl_rules_free(r);
    /* the implicit deny names no acl (no deny_info applies) */
    {
        struct treq t2;
        const char *name = "x";
        mkreq(&t2, "GET", "http://good.example/", "10.0.0.1", NULL, NULL);
        pd_acl_rules *r2 = compile_ok("acl lan src 192.168.0.0/16\nhttp_access allow lan");
        ck_assert_int_eq(pd_acl_check_http(r2, &t2.req, &name), PD_ACL_DENY);
        ck_assert_ptr_null(name);
        pd_acl_rules_free(r2);
        freereq(&t2);
    }
    /* mixed: only the LAST line counts */
    r = compile_ok("acl a src 10.0.0.1\nacl b src 10.0.0.2\nhttp_access deny a\nhttp_access allow b");
    ck_assert_int_eq(check(r, "GET", "http://x.y/", "10.0.0.3"), PD_ACL_DENY);
    pd_acl_rules_free(r);
    /* no http_access line at all: deny everything */
    r = compile_ok("acl lan src 10.0.0.0/8");
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "10.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "CONNECT", "a.b:443", "127.0.0.1"), PD_ACL_DENY);
    pd_acl_rules_free(r);
    /* NULL rules never open the proxy */
    struct treq t;
    mkreq(&t, "GET", "http://a.b/", NULL, NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(NULL, &t.req, NULL), PD_ACL_DENY);
    freereq(&t);
}
END_TEST

START_TEST(test_cache_rules)
{
    struct treq t;
    pd_acl_rules *r = compile_ok("http_access allow all");
    mkreq(&t, "GET", "http://a.b/x.cgi?q", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_ALLOW);    /* no lines: allow */
    pd_acl_rules_free(r);
    r = compile_ok("acl QUERY urlpath_regex cgi-bin \\?\ncache deny QUERY");
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_DENY);
    freereq(&t);
    mkreq(&t, "GET", "http://a.b/x.png", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_ALLOW);    /* opposite of deny */
    pd_acl_rules_free(r);
    r = compile_ok("acl img urlpath_regex \\.png$\ncache allow img");
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_ALLOW);
    freereq(&t);
    mkreq(&t, "GET", "http://a.b/x.html", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_DENY);     /* opposite of allow */
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

START_TEST(test_deny_info)
{
    pd_acl_rules *r = compile_ok(
        "acl Safe_ports port 80 443\n"
        "acl porn dstdomain .porn.example\n"
        "http_access deny !Safe_ports\n"
        "http_access deny all porn\n"
        "http_access allow all\n"
        "deny_info ERR_BLOCKED porn\n"
        "deny_info http://block.example/why Safe_ports");
    struct treq t;
    const char *name = "x";
    mkreq(&t, "GET", "http://a.porn.example/", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, &name), PD_ACL_DENY);
    ck_assert_str_eq(name, "porn");
    ck_assert_str_eq(pd_acl_deny_info(r, name), "ERR_BLOCKED");
    freereq(&t);
    mkreq(&t, "GET", "http://a.example:8080/", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, &name), PD_ACL_DENY);
    ck_assert_str_eq(name, "Safe_ports");
    ck_assert_str_eq(pd_acl_deny_info(r, name), "http://block.example/why");
    freereq(&t);
    mkreq(&t, "GET", "http://a.example/", NULL, NULL, "");
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, &name), PD_ACL_ALLOW);
    ck_assert_ptr_null(name);
    freereq(&t);
    ck_assert_ptr_null(pd_acl_deny_info(r, "all"));
    ck_assert_ptr_null(pd_acl_deny_info(r, NULL));
    pd_acl_rules_free(r);
    FILE *devnull = fopen("/dev/null", "w");
    ck_assert_ptr_null(pd_acl_compile(NULL, devnull));
    fclose(devnull);
}
END_TEST

/* Squid enables PURGE when a method acl names it (case-sensitive), used or not. */
START_TEST(test_names_method)
{
    static const struct { const char *script; int purge; } cases[] = {
        { "http_access allow all", 0 },
        { "acl purge method PURGE\nhttp_access allow all", 1 },
        { "acl m method GET PURGE POST", 1 },
        { "acl m method GET POST\nacl p method purge", 0 },
        { "acl p url_regex PURGE", 0 },
        { "acl m method GET\nacl m method PURGE", 1 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pd_acl_rules *r = compile_ok(cases[i].script);
        ck_assert_msg(pd_acl_names_method(r, "PURGE") == cases[i].purge, "%s", cases[i].script);
        pd_acl_rules_free(r);
    }
    ck_assert_int_eq(pd_acl_names_method(NULL, "PURGE"), 0);
}
END_TEST

START_TEST(test_predefined)
{
    pd_acl_rules *r = compile_ok(
        "http_access deny to_localhost\n"
        "http_access deny to_linklocal\n"
        "http_access allow localhost manager\n"
        "http_access deny manager\n"
        "http_access allow localhost\n"
        "http_access deny all");
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "127.0.0.1"), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "::1"), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "127.0.0.2"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://127.0.0.1/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://0/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://[::1]/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://[::]/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://[0:0::0]:8080/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://[::ffff:127.1.2.3]/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://169.254.169.254/latest/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://[fe80::1]/", "127.0.0.1"), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b/squid-internal-mgr/info", "192.0.2.1"),
                     PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b/squid-internal-mgr/info", "127.0.0.1"),
                     PD_ACL_ALLOW);
    pd_acl_rules_free(r);
}
END_TEST

/* ------------------------------------------------------------ NEED_DST */

/* proxy_auth: NEED_AUTH until the credentials are known, 407 without them,
 * the user lists and regexes after; a deny line ending in one asks again. */
START_TEST(test_proxy_auth)
{
    pd_acl_rules *r = compile_ok(
        "auth_program x\n"
        "acl open urlpath_regex ^/open\n"
        "acl auth proxy_auth REQUIRED\n"
        "acl admins proxy_auth Alice\n"
        "acl bees proxy_auth_regex ^b\n"
        "acl banned proxy_auth mallory\n"
        "http_access allow open\n"
        "http_access deny !auth\n"
        "http_access deny banned\n"
        "http_access allow admins\n"
        "http_access allow bees\n"
        "http_access deny all");
    struct treq t;
    mkreq(&t, "GET", "http://x.example/open", "192.0.2.1", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);  /* never reached */
    freereq(&t);
    mkreq(&t, "GET", "http://x.example/", "192.0.2.1", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_NEED_AUTH);
    t.req.auth_state = PD_AUTH_FAILED;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_AUTH_REQUIRED);
    t.req.auth_state = PD_AUTH_OK;
    static const struct { const char *user; int v; } cases[] = {
        { "alice", PD_ACL_ALLOW },          /* casesensitive off: Alice matches */
        { "bert", PD_ACL_ALLOW },
        { "carol", PD_ACL_DENY },
        { "mallory", PD_ACL_AUTH_REQUIRED }, /* deny line ending in an auth acl */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t.req.user = cases[i].user;
        ck_assert_msg((int)pd_acl_check_http(r, &t.req, NULL) == cases[i].v, "%s", cases[i].user);
    }
    freereq(&t);
    pd_acl_rules_free(r);
    /* casesensitive on */
    r = compile_ok("auth_program casesensitive\nacl admins proxy_auth Alice\n"
                   "http_access allow admins\nhttp_access deny all");
    mkreq(&t, "GET", "http://x.example/", "192.0.2.1", NULL, NULL);
    t.req.auth_state = PD_AUTH_OK;
    t.req.user = "alice";
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);
    t.req.user = "Alice";
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

struct extlog { char line[8192]; size_t type; int answer; int calls; };

static int ext_lookup(void *ctx, size_t type, const char *line)
{
    struct extlog *l = ctx;
    snprintf(l->line, sizeof l->line, "%s", line);
    l->type = type;
    l->calls++;
    return l->answer;
}

/* external: the line in Squid's formats, each answer's verdict; a failure denies. */
START_TEST(test_external)
{
    pd_acl_rules *r = compile_ok(
        "external_acl_type other %SRC /bin/true\n"
        "external_acl_type fmt ttl=5 concurrency=2 %SRC %DST %PORT %PATH %METHOD %>{X-Tag} "
        "%PROTO %URI /bin/helper -v\n"
        "acl e external fmt a%b c\n"
        "http_access deny e\n"
        "http_access allow all");
    ck_assert_int_eq((int)pd_acl_ext_count(r), 2);
    const pd_acl_ext_info *in = pd_acl_ext_get(r, 1);
    ck_assert_str_eq(in->name, "fmt");
    ck_assert_int_eq(in->ttl, 5);
    ck_assert_int_eq(in->negative_ttl, 5);
    ck_assert_int_eq(in->concurrency, 2);
    ck_assert_str_eq(in->argv[0], "/bin/helper");
    ck_assert_str_eq(in->argv[1], "-v");
    ck_assert_ptr_null(in->argv[2]);
    struct treq t;
    mkreq(&t, "GET", "http://Host.Example:8080/p%20q?x=<1>", "192.0.2.1",
          "X-Tag: one\nX-Tag: two words", NULL);
    struct extlog l = { .answer = PD_ACL_EXT_UNKNOWN };
    pd_acl_ext_query q;
    /* no lookup function: fail closed */
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);
    t.req.ext_lookup = ext_lookup;
    t.req.ext_ctx = &l;
    t.req.ext_pending = &q;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_NEED_EXT);
    ck_assert_int_eq((int)q.type, 1);
    /* every value escaped once, '%' too: the helper unescapes to the exact value */
    ck_assert_str_eq(q.line, "192.0.2.1 host.example 8080 /p%2520q?x=%3C1%3E GET "
                             "one,%20two%20words http "
                             "http://host.example:8080/p%2520q?x=%3C1%3E a%25b c");
    l.answer = PD_ACL_EXT_MATCH;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);
    l.answer = PD_ACL_EXT_NOMATCH;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    l.answer = PD_ACL_EXT_FAILED;
    const char *deny = NULL;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, &deny), PD_ACL_DENY);
    ck_assert_str_eq(deny, "e");
    freereq(&t);
    pd_acl_rules_free(r);
    /* %LOGIN waits for the credentials; %DATA with no values is "-" */
    r = compile_ok("auth_program x\n"
                   "external_acl_type u %LOGIN %DATA /bin/true\n"
                   "acl e external u\nhttp_access allow e\nhttp_access deny all");
    mkreq(&t, "GET", "http://x.example/", "192.0.2.1", NULL, NULL);
    t.req.ext_lookup = ext_lookup;
    t.req.ext_ctx = &l;
    t.req.ext_pending = &q;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_NEED_AUTH);
    t.req.auth_state = PD_AUTH_FAILED;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_AUTH_REQUIRED);
    t.req.auth_state = PD_AUTH_OK;
    t.req.user = "bob smith";
    l.answer = PD_ACL_EXT_MATCH;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    ck_assert_str_eq(l.line, "bob%20smith -");
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

START_TEST(test_need_dst)
{
    pd_acl_rules *r = compile_ok(
        "acl lan src 10.0.0.0/8\n"
        "acl inside dst 10.0.0.0/8\n"
        "http_access deny lan inside\n"
        "http_access allow all");
    struct treq t;
    /* from outside lan: the AND stops before dst, so no DNS is needed */
    mkreq(&t, "GET", "http://intranet.example/", "192.0.2.1", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    freereq(&t);
    /* from lan, a name: resolve first */
    mkreq(&t, "GET", "http://intranet.example/", "10.0.0.7", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_NEED_DST);
    set_addr(&t.dst[0], "10.9.9.9");
    t.req.dst = t.dst;
    t.req.n_dst = 1;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);
    set_addr(&t.dst[0], "198.51.100.1");
    set_addr(&t.dst[1], "10.1.2.3");
    t.req.n_dst = 2;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);  /* any address */
    t.req.n_dst = 1;
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    t.req.n_dst = 0;    /* resolution failed: no match, Squid's behaviour */
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    freereq(&t);
    /* an IP literal never needs DNS */
    mkreq(&t, "GET", "http://10.0.0.1/", "10.0.0.7", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_DENY);
    freereq(&t);
    mkreq(&t, "CONNECT", "192.0.2.9:443", "10.0.0.7", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    freereq(&t);
    /* cache rules may need it too */
    pd_acl_rules_free(r);
    r = compile_ok("acl inside dst 10.0.0.0/8\ncache deny inside");
    mkreq(&t, "GET", "http://intranet.example/", "10.0.0.7", NULL, NULL);
    ck_assert_int_eq(pd_acl_check_cache(r, &t.req), PD_ACL_NEED_DST);
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

/* ------------------------------------------------------------ bypass attempts */

static const struct bypass {
    const char *method, *target, *dst;
    enum pd_acl_verdict want;
} bypass_cases[] = {
    { "GET", "http://evil.com/", NULL, PD_ACL_DENY },
    { "GET", "http://EVIL.com./", NULL, PD_ACL_DENY },
    { "GET", "http://www.evil.com:80/", NULL, PD_ACL_DENY },
    { "GET", "http://user@evil.com/", NULL, PD_ACL_DENY },
    { "GET", "http://good.com:x@evil.com/", NULL, PD_ACL_DENY },
    { "GET", "http://WWW.EVIL.COM.:8080/a?b#c", NULL, PD_ACL_DENY },
    { "GET", "http://a.b.c.evil.com/", NULL, PD_ACL_DENY },
    { "CONNECT", "evil.com:443", NULL, PD_ACL_DENY },
    { "CONNECT", "Www.Evil.Com.:443", NULL, PD_ACL_DENY },
    { "GET", "http://evil.com.good.com/", NULL, PD_ACL_ALLOW },
    { "GET", "http://notevil.com/", NULL, PD_ACL_ALLOW },
    { "GET", "http://good.com/evil.com", NULL, PD_ACL_ALLOW },
    /* dst 10.0.0.0/8 under every IPv4 spelling */
    { "GET", "http://10.0.0.1/", NULL, PD_ACL_DENY },
    { "GET", "http://0x0a000001/", NULL, PD_ACL_DENY },
    { "GET", "http://167772161/", NULL, PD_ACL_DENY },
    { "GET", "http://012.0.0.1/", NULL, PD_ACL_DENY },
    { "GET", "http://10.1/", NULL, PD_ACL_DENY },
    { "GET", "http://0xa.0x0.0x0.0x1/", NULL, PD_ACL_DENY },
    { "GET", "http://[::ffff:10.0.0.1]/", NULL, PD_ACL_DENY },
    { "GET", "http://[::ffff:a00:1]/", NULL, PD_ACL_DENY },
    { "CONNECT", "0x0a000001:443", NULL, PD_ACL_DENY },
    { "GET", "http://rebind.example/", "10.0.0.5", PD_ACL_DENY },
    { "GET", "http://rebind.example/", "::ffff:10.0.0.5", PD_ACL_DENY },
    { "GET", "http://rebind.example/", "11.0.0.5", PD_ACL_ALLOW },
    /* url and path regexes see the normalised target */
    { "GET", "http://example.org/%61dmin/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/%41dmin/", NULL, PD_ACL_ALLOW },  /* /Admin: another path */
    { "GET", "http://Example.ORG:80/admin/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/~user/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/%7Euser/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/%7euser/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/x/../admin/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/x/%2e%2e/admin/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org/./admin/", NULL, PD_ACL_DENY },
    { "GET", "http://example.org:0080/", NULL, PD_ACL_ALLOW },     /* port 80 is a Safe_port */
    { "GET", "http://example.org:00025/", NULL, PD_ACL_DENY },
    { "GET", "http://wiki.example.net/", NULL, PD_ACL_DENY },
    { "GET", "http://WIKI.example.net./", NULL, PD_ACL_DENY },
};

START_TEST(test_bypass)
{
    pd_acl_rules *r = compile_ok(
            "acl Safe_ports port 80 443 1025-65535\n"
            "acl bad dstdomain .evil.com\n"
            "acl inside dst 10.0.0.0/8\n"
            "acl adminpath urlpath_regex ^/admin/ ^/~\n"
            "acl wiki url_regex ^http://wiki\\.example\\.net/\n"
            "http_access deny !Safe_ports\n"
            "http_access deny bad\n"
            "http_access deny inside\n"
            "http_access deny adminpath\n"
            "http_access deny wiki\n"
            "http_access allow all");
    const struct bypass *b = &bypass_cases[_i];
    struct treq t;
    mkreq(&t, b->method, b->target, NULL, NULL, b->dst ? b->dst : "");
    enum pd_acl_verdict v = pd_acl_check_http(r, &t.req, NULL);
    ck_assert_msg(v == b->want, "%s %s: got %d want %d", b->method, b->target, (int)v,
                  (int)b->want);
    freereq(&t);
    pd_acl_rules_free(r);
}
END_TEST

START_TEST(test_long_url_regex)
{
    /* url_regex formats URLs longer than its stack buffer on the heap */
    pd_acl_rules *r = compile_ok("acl tail url_regex /end$\nhttp_access deny tail\nhttp_access allow all");
    char target[5000];
    strcpy(target, "http://a.b/");
    memset(target + 11, 'x', 4000);
    strcpy(target + 4011, "/end");
    ck_assert_int_eq(check(r, "GET", target, NULL), PD_ACL_DENY);
    target[4011] = '\0';
    ck_assert_int_eq(check(r, "GET", target, NULL), PD_ACL_ALLOW);
    pd_acl_rules_free(r);
}
END_TEST

/* ------------------------------------------------------------ file lists */

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/check_acl_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

START_TEST(test_file_lists)
{
    char *doms = write_tmp("# blocklist\n\n  .ads.example  \nTRACKER.example # inline comment\r\n");
    char *rxs = write_tmp("# regexes\n\\.exe$\n^/download/.*\\.zip$\n");
    char script[1024];
    snprintf(script, sizeof(script),
             "acl block dstdomain \"%s\" extra.example\n"
             "acl bin urlpath_regex -i \"%s\"\n"
             "http_access deny block\nhttp_access deny bin\nhttp_access allow all",
             doms, rxs);
    pd_acl_rules *r = compile_ok(script);
    ck_assert_int_eq(check(r, "GET", "http://x.ads.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://tracker.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://www.tracker.example/", NULL), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://extra.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b/setup.EXE", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b/download/x.zip", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b/x.zip", NULL), PD_ACL_ALLOW);
    pd_acl_rules_free(r);

    /* an error inside a file is reported at the file's own line */
    char *bad = write_tmp("good.example\n# c\nbad!name.example\n");
    char *e;
    snprintf(script, sizeof(script), "acl b dstdomain \"%s\"", bad);
    ck_assert_ptr_null(compile(script, &e));
    char want[256];
    snprintf(want, sizeof(want), "%s:3: acl b: bad domain 'bad!name.example': bad character in host\n", bad);
    ck_assert_str_eq(e, want);
    free(e);

    /* a missing file */
    ck_assert_ptr_null(compile("acl b dstdomain \"/nonexistent/list.txt\"", &e));
    ck_assert_str_eq(e, "test.conf:1: acl b: cannot open \"/nonexistent/list.txt\": "
                        "No such file or directory\n");
    free(e);
    unlink(doms);
    unlink(rxs);
    unlink(bad);
    free(doms);
    free(rxs);
    free(bad);
}
END_TEST

/* ------------------------------------------------------------ errors */

static const struct ecase {
    const char *script, *err;
} error_cases[] = {
    { "acl x foo bar", "test.conf:1: acl x: unknown acl type 'foo'\n" },
    { "acl x src 10.0.0.0/8\nhttp_access allow y", "test.conf:2: http_access: unknown acl 'y'\n" },
    { "acl x src 10.0.0.0/8\nhttp_access allow x !nope", "test.conf:2: http_access: unknown acl 'nope'\n" },
    { "cache deny nope", "test.conf:1: cache: unknown acl 'nope'\n" },
    { "acl x src 10.0.0.0/33", "test.conf:1: acl x: bad prefix length in '10.0.0.0/33'\n" },
    { "acl x src 10.0.0.300/8", "test.conf:1: acl x: bad address '10.0.0.300/8'\n" },
    { "acl x src 10.0.0.0/255.0.255.0", "test.conf:1: acl x: non-contiguous netmask in '10.0.0.0/255.0.255.0'\n" },
    { "acl x dst 10.0.0.9-10.0.0.1", "test.conf:1: acl x: range '10.0.0.9-10.0.0.1' ends before it starts\n" },
    { "acl x src 10.0.0.1\nacl x dstdomain a.b", "test.conf:2: acl x: redefined as 'dstdomain', was 'src' at test.conf:1\n" },
    { "acl x port 80 70000", "test.conf:1: acl x: bad port '70000'\n" },
    { "acl x port 90-80", "test.conf:1: acl x: bad port '90-80'\n" },
    { "acl x time 17:00-08:00", "test.conf:1: acl x: h1:m1 must be less than h2:m2 in '17:00-08:00'\n" },
    { "acl x time MXF", "test.conf:1: acl x: bad day letter 'X' in 'MXF'\n" },
    { "acl x maxconn 1 2", "test.conf:1: acl x: maxconn takes one number\n" },
    { "acl x dstdomain", "test.conf:1: acl x: no values\n" },
    { "acl x port -i 80", "test.conf:1: acl x: unsupported option '-i' for type port\n" },
    { "acl x req_header", "test.conf:1: acl x: req_header needs a header name\n" },
    { "http_access permit all", "test.conf:1: http_access: expected 'allow' or 'deny'\n" },
    { "http_access allow", "test.conf:1: http_access allow: no acl name\n" },
    { "acl b@d src 10.0.0.1", "test.conf:1: acl: bad acl name 'b@d'\n" },
    { "acl Lan src 10.0.0.1\nacl LAN dstdomain a.b", "test.conf:2: acl LAN: redefined as 'dstdomain', was 'src' at test.conf:1\n" },
    { "acl d dstdomain [::1]:80", "test.conf:1: acl d: bad domain '[::1]:80': a port is not part of a domain\n" },
    { "acl d dstdomain a.b:80", "test.conf:1: acl d: bad domain 'a.b:80': bad IPv6 literal\n" },
    { "acl d dstdomain 1.2.3.256", "test.conf:1: acl d: bad domain '1.2.3.256': bad IPv4 literal\n" },
    { "acl d dstdomain a..b", "test.conf:1: acl d: bad domain 'a..b': empty label in host\n" },
    { "acl d dstdomain http://a.b/", "test.conf:1: acl d: bad domain 'http://a.b/'\n" },
};

START_TEST(test_errors)
{
    const struct ecase *c = &error_cases[_i];
    char *e;
    pd_acl_rules *r = compile(c->script, &e);
    ck_assert_msg(r == NULL, "accepted: %s", c->script);
    ck_assert_str_eq(e, c->err);
    free(e);
}
END_TEST

START_TEST(test_bad_regex)
{
    char *e;
    ck_assert_ptr_null(compile("acl x url_regex ok (unclosed", &e));
    const char *prefix = "test.conf:1: acl x: bad regex '(unclosed': ";
    ck_assert_msg(strncmp(e, prefix, strlen(prefix)) == 0, "got: %s", e);
    ck_assert_uint_gt(strlen(e), strlen(prefix) + 2);   /* regerror text follows */
    free(e);
    /* several errors are all reported, each at its line */
    ck_assert_ptr_null(compile("acl a foo x\nacl b src nope\nhttp_access allow c", &e));
    ck_assert_str_eq(e, "test.conf:1: acl a: unknown acl type 'foo'\n"
                        "test.conf:2: acl b: bad address 'nope'\n"
                        "test.conf:3: http_access: unknown acl 'c'\n");
    free(e);
}
END_TEST

START_TEST(test_warnings_and_merge)
{
    char *e;
    /* redundant dstdomain entries warn (as Squid) but compile */
    pd_acl_rules *r = compile("acl d dstdomain .example.com\nacl d dstdomain www.example.com\n"
                              "http_access deny d", &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(e, "test.conf:2: warning: acl d: 'www.example.com' is already matched by "
                        "'.example.com'\n");
    free(e);
    /* lines of one name are ORed */
    ck_assert_int_eq(check(r, "GET", "http://a.example.com/", NULL), PD_ACL_DENY);
    pd_acl_rules_free(r);
    r = compile("acl s src 10.0.0.1/8\nhttp_access allow s", &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(e, "test.conf:1: warning: acl s: '10.0.0.1/8' has host bits set; using the "
                        "network\n");
    free(e);
    ck_assert_int_eq(check(r, "GET", "http://a.b/", "10.9.9.9"), PD_ACL_ALLOW);
    pd_acl_rules_free(r);
    /* what old squid.confs say about predefined acls: ignored with a warning */
    r = compile("acl manager proto cache_object\nacl CONNECT dstdomain a.b\n"
                "acl p myport 3128\nacl connect method GET\n"
                "http_access deny manager\nhttp_access deny connect\nhttp_access allow p", &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(e, "test.conf:1: warning: acl manager is predefined as 'url_regex': line ignored\n"
                        "test.conf:2: warning: acl CONNECT is predefined as 'method': line ignored\n"
                        "test.conf:3: warning: acl p: type 'myport' is now 'localport'\n");
    free(e);
    ck_assert_int_eq(check(r, "GET", "http://a.b/squid-internal-mgr/menu", NULL), PD_ACL_DENY);
    /* acl names are case-insensitive (Squid): "connect" added GET to CONNECT */
    ck_assert_int_eq(check(r, "GET", "http://a.b/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "POST", "http://a.b/", NULL), PD_ACL_ALLOW);   /* localport 3128 */
    pd_acl_rules_free(r);
    /* unknown acl in deny_info is a warning only */
    r = compile("http_access allow all\ndeny_info ERR_X nope", &e);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(e, "test.conf:2: warning: deny_info: unknown acl 'nope'\n");
    free(e);
    pd_acl_rules_free(r);
}
END_TEST

/* ------------------------------------------------------------ 100k domains */

START_TEST(test_big_dstdomain)
{
    char *path = strdup("/tmp/check_acl_big_XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 100000; i++)
        fprintf(f, "%sd%d.blk%d.example\n", i % 2 ? "." : "", i, i % 97);
    fclose(f);
    char script[256];
    snprintf(script, sizeof(script),
             "acl big dstdomain \"%s\"\nhttp_access deny big\nhttp_access allow all", path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pd_acl_rules *r = compile_ok(script);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("check_acl: 100000 dstdomain entries compiled in %.1f ms\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    /* even: exact names; odd: leading dot (domain and subdomains) */
    ck_assert_int_eq(check(r, "GET", "http://d0.blk0.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://x.d0.blk0.example/", NULL), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://d1.blk1.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://a.b.D1.blk1.example./", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://d99999.blk89.example/", NULL), PD_ACL_DENY);
    ck_assert_int_eq(check(r, "GET", "http://d99999.blk88.example/", NULL), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://blk1.example/", NULL), PD_ACL_ALLOW);
    ck_assert_int_eq(check(r, "GET", "http://d100000.blk0.example/", NULL), PD_ACL_ALLOW);
    /* a lookup is hashing, not a scan: 100k lookups stay cheap */
    struct treq t;
    mkreq(&t, "GET", "http://a.b.c.d.e.not-listed.example/", NULL, NULL, "");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100000; i++)
        ck_assert_int_eq(pd_acl_check_http(r, &t.req, NULL), PD_ACL_ALLOW);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("check_acl: 100000 lookups in %.1f ms\n",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    freereq(&t);
    pd_acl_rules_free(r);
    unlink(path);
    free(path);
}
END_TEST

static Suite *acl_suite(void)
{
    Suite *s = suite_create("acl");
    TCase *tc = tcase_create("types");
    tcase_add_loop_test(tc, test_types, 0, (int)(sizeof(type_cases) / sizeof(type_cases[0])));
    suite_add_tcase(s, tc);
    tc = tcase_create("access");
    tcase_add_test(tc, test_first_match_and_negation);
    tcase_add_test(tc, test_proxy_auth);
    tcase_add_test(tc, test_external);
    tcase_add_test(tc, test_implicit_last_rule);
    tcase_add_test(tc, test_cache_rules);
    tcase_add_test(tc, test_deny_info);
    tcase_add_test(tc, test_predefined);
    tcase_add_test(tc, test_need_dst);
    tcase_add_test(tc, test_long_url_regex);
    tcase_add_loop_test(tc, test_bypass, 0, (int)(sizeof(bypass_cases) / sizeof(bypass_cases[0])));
    suite_add_tcase(s, tc);
    tc = tcase_create("load");
    tcase_add_test(tc, test_file_lists);
    tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    tcase_add_test(tc, test_bad_regex);
    tcase_add_test(tc, test_warnings_and_merge);
    tcase_add_test(tc, test_big_dstdomain);
    tcase_add_test(tc, test_names_method);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    return pd_check_run(acl_suite());
}
