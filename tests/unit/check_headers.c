/*
 * check_headers: Squid's header rules (headers.c) and the acl lists of issue
 * 13 (acl.c: http_reply_access, miss_access, reply_body_max_size,
 * tcp_outgoing_address, follow_x_forwarded_for, the reply acls), by tables
 * of configurations and requests. Configurations go through the real loader
 * (conf.c) so that quoting and the rest-of-line forms are the ones operators
 * write.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/headers.h"
#include "check_run.h"

struct env {
    pd_conf *conf;
    pd_acl_rules *acl;
    pd_hdr_rules *hdr;
    pd_url url;
    int have_url;
    pd_http_msg req, rep;
    struct sockaddr_in client;
    pd_acl_req q;
    char *msgs;
    size_t msgs_len;
    int errors, warnings;
};

/* Load and compile text; env->errors counts the messages of every stage. */
static void env_load(struct env *e, const char *text)
{
    memset(e, 0, sizeof *e);
    pd_http_msg_init(&e->req);
    pd_http_msg_init(&e->rep);
    FILE *err = open_memstream(&e->msgs, &e->msgs_len);
    e->conf = pd_conf_load_string("t.conf", text, err);
    if (!e->conf) {
        e->errors = 1;
    } else {
        int ae = 0, aw = 0, he = 0, hw = 0;
        e->acl = pd_acl_compile_counted(e->conf, err, &ae, &aw);
        if (e->acl)
            e->hdr = pd_hdr_compile(e->conf, e->acl, err, &he, &hw);
        e->errors = ae + he;
        e->warnings = aw + hw;
    }
    fclose(err);
}

/* A GET of url from client ip, with "Name: value" header lines. */
static void env_request(struct env *e, const char *url, const char *ip, const char *const *hdrs)
{
    const char *why;
    ck_assert_int_eq(pd_url_parse(url, strlen(url), PD_URL_ABSOLUTE, &e->url, &why), 0);
    e->have_url = 1;
    e->client.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ip, &e->client.sin_addr), 1);
    e->req.method = PD_STR("GET");
    for (; hdrs && *hdrs; hdrs++) {
        const char *colon = strchr(*hdrs, ':');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - *hdrs), *hdrs);
        ck_assert_int_eq(pd_http_msg_add(&e->req, name, colon + 2, strlen(colon + 2)), 0);
    }
    e->q = (pd_acl_req){ .client = (const struct sockaddr *)&e->client, .msg = &e->req,
                         .url = &e->url, .now = 1700000000 };
}

static void env_reply(struct env *e, int status, const char *ctype)
{
    e->rep.status = status;
    if (ctype)
        ck_assert_int_eq(pd_http_msg_add(&e->rep, "Content-Type", ctype, strlen(ctype)), 0);
    e->q.reply = &e->rep;
}

static void env_free(struct env *e)
{
    pd_hdr_rules_free(e->hdr);
    pd_acl_rules_free(e->acl);
    pd_conf_free(e->conf);
    pd_http_msg_free(&e->req);
    pd_http_msg_free(&e->rep);
    if (e->have_url)
        pd_url_free(&e->url);
    free(e->msgs);
}

/* ------------------------------------------------------------ access */

static const char *const REQ_HDRS[] = { "Referer: http://r.test/", "X-Custom: 1",
                                        "User-Agent: ua/1", NULL };

static const struct {
    const char *conf, *url, *field;
    enum pd_hdr_action want;
    const char *replacement;
} access_cases[] = {
    { "request_header_access Referer deny all", "http://o.test/", "Referer", PD_HDR_DROP, NULL },
    { "request_header_access Referer deny all", "http://o.test/", "referer", PD_HDR_DROP, NULL },
    { "request_header_access Referer deny all", "http://o.test/", "X-Custom", PD_HDR_KEEP, NULL },
    /* the name's own lines before All; All for the rest */
    { "request_header_access Referer allow all\nrequest_header_access All deny all",
      "http://o.test/", "Referer", PD_HDR_KEEP, NULL },
    { "request_header_access Referer allow all\nrequest_header_access All deny all",
      "http://o.test/", "X-Custom", PD_HDR_DROP, NULL },
    /* Other: names Squid does not know, and only those */
    { "request_header_access Other deny all", "http://o.test/", "X-Custom", PD_HDR_DROP, NULL },
    { "request_header_access Other deny all", "http://o.test/", "Referer", PD_HDR_KEEP, NULL },
    { "request_header_access Other deny all\nrequest_header_access All allow all",
      "http://o.test/", "X-Custom", PD_HDR_DROP, NULL },
    /* first match decides; no match: the opposite of the last line */
    { "acl p urlpath_regex ^/p\nrequest_header_access Referer deny p", "http://o.test/p",
      "Referer", PD_HDR_DROP, NULL },
    { "acl p urlpath_regex ^/p\nrequest_header_access Referer deny p", "http://o.test/q",
      "Referer", PD_HDR_KEEP, NULL },
    { "acl p urlpath_regex ^/p\nrequest_header_access Referer allow p", "http://o.test/q",
      "Referer", PD_HDR_DROP, NULL },
    { "acl p urlpath_regex ^/p\nrequest_header_access Referer allow p\n"
      "request_header_access Referer deny all", "http://o.test/p", "Referer", PD_HDR_KEEP, NULL },
    /* replace: only a denied field, the text as written to the end of the line */
    { "request_header_access User-Agent deny all\nrequest_header_replace User-Agent Nutscrape/1.0 (CP/M; 8-bit)",
      "http://o.test/", "User-Agent", PD_HDR_REPLACE, "Nutscrape/1.0 (CP/M; 8-bit)" },
    { "request_header_access User-Agent allow all\nrequest_header_replace User-Agent X",
      "http://o.test/", "User-Agent", PD_HDR_KEEP, NULL },
    { "header_replace User-Agent Y\nrequest_header_access User-Agent deny all",
      "http://o.test/", "User-Agent", PD_HDR_REPLACE, "Y" },
    /* a req_header acl sees the request */
    { "acl ua req_header User-Agent ^ua/\nrequest_header_access X-Custom deny ua",
      "http://o.test/", "X-Custom", PD_HDR_DROP, NULL },
    /* request rules never touch replies */
    { "request_header_access All deny all", "http://o.test/", "reply:Server", PD_HDR_KEEP, NULL },
    { "reply_header_access Server deny all", "http://o.test/", "reply:Server", PD_HDR_DROP, NULL },
    { "reply_header_access Server deny all", "http://o.test/", "Server", PD_HDR_KEEP, NULL },
};

START_TEST(header_access)
{
    struct env e;
    env_load(&e, access_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, access_cases[_i].url, "10.0.0.1", REQ_HDRS);
    const char *f = access_cases[_i].field;
    enum pd_hdr_dir d = PD_HDR_REQUEST;
    if (!strncmp(f, "reply:", 6)) {
        d = PD_HDR_REPLY;
        f += 6;
    }
    pd_str rv = { NULL, 0 };
    enum pd_hdr_action a = pd_hdr_field(e.hdr, d, pd_str_z(f), &e.q, &rv);
    ck_assert_msg(a == access_cases[_i].want, "%s / %s: %d", access_cases[_i].conf, f, a);
    if (access_cases[_i].replacement) {
        ck_assert_uint_eq(rv.len, strlen(access_cases[_i].replacement));
        ck_assert(!memcmp(rv.p, access_cases[_i].replacement, rv.len));
    }
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ add */

static const struct {
    const char *conf, *url, *want;
} add_cases[] = {
    { "request_header_add X-A \"plain value\"", "http://o.test/", "X-A: plain value\r\n" },
    { "request_header_add X-A \"%>a:%>p %%\"", "http://o.test/", "X-A: 10.0.0.1:5555 %\r\n" },
    { "request_header_add X-A \"%la:%lp\"", "http://o.test/", "X-A: 127.0.0.9:3128\r\n" },
    { "request_header_add X-A \"%>rd %>rP %rm %ru\"", "http://o.test:8080/x?y",
      "X-A: o.test 8080 GET http://o.test:8080/x?y\r\n" },
    { "acl p urlpath_regex ^/p\nrequest_header_add X-A \"1\" p\nrequest_header_add X-B \"2\"",
      "http://o.test/p", "X-A: 1\r\nX-B: 2\r\n" },
    { "acl p urlpath_regex ^/p\nrequest_header_add X-A \"1\" p\nrequest_header_add X-B \"2\" !p",
      "http://o.test/q", "X-B: 2\r\n" },
    { "reply_header_add X-A \"1\"", "http://o.test/", "" },
};

START_TEST(header_add)
{
    struct env e;
    env_load(&e, add_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, add_cases[_i].url, "10.0.0.1", NULL);
    pd_hdr_vars v = { .client_ip = "10.0.0.1", .client_port = 5555, .local_ip = "127.0.0.9",
                      .local_port = 3128, .url = &e.url, .method = PD_STR("GET") };
    struct evbuffer *b = evbuffer_new();
    pd_head h;
    pd_head_begin(&h, b);
    pd_hdr_add_fields(e.hdr, PD_HDR_REQUEST, &e.q, &v, &h);
    ck_assert_int_eq(pd_hdr_uses_local_ip(e.hdr, PD_HDR_REQUEST),
                     strstr(add_cases[_i].conf, "%la") != NULL);
    ck_assert_int_eq(pd_hdr_uses_local_ip(e.hdr, PD_HDR_REPLY), 0);
    pd_head_end(&h);
    size_t n = evbuffer_get_length(b);
    char *s = calloc(1, n + 1);
    evbuffer_remove(b, s, n);
    ck_assert_str_eq(s, add_cases[_i].want);
    free(s);
    evbuffer_free(b);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ errors */

static const struct {
    const char *conf, *want;
} error_cases[] = {
    { "request_header_access Referer deny nosuch",
      "t.conf:1: request_header_access: unknown acl 'nosuch'\n" },
    { "request_header_access Referer maybe all",
      "t.conf:1: request_header_access: expected 'NAME allow|deny [!]ACL...'\n" },
    { "request_header_access Referer deny",
      "t.conf:1: request_header_access Referer deny: no acl name\n" },
    { "request_header_add X-A \"%{Referer}>h\"",
      "t.conf:1: request_header_add: % code at '%{Refere' is not supported (proxyd expands "
      "%>a %>p %la %lp %>rd %>rP %ru %rm and %%)\n" },
    { "reply_header_add Bad:Name \"x\"",
      "t.conf:1: reply_header_add: expected 'NAME \"VALUE\" [[!]ACL...]'\n" },
    { "request_header_replace All x",
      "t.conf:1: request_header_replace: All has no replacement (name the header)\n" },
    { "http_reply_access allow nosuch", "t.conf:1: http_reply_access: unknown acl 'nosuch'\n" },
    { "miss_access maybe all", "t.conf:1: miss_access: expected 'allow' or 'deny'\n" },
    { "reply_body_max_size ten MB", "t.conf:1: reply_body_max_size: bad size 'ten'\n" },
    { "reply_body_max_size 99999999999999999999 GB",
      "t.conf:1: reply_body_max_size: bad size '99999999999999999999'\n" },
    { "tcp_outgoing_address 1.2.3", "t.conf:1: tcp_outgoing_address: '1.2.3' is not an IP address\n" },
    { "follow_x_forwarded_for allow nosuch",
      "t.conf:1: follow_x_forwarded_for: unknown acl 'nosuch'\n" },
    { "acl st http_status 99999", "t.conf:1: acl st: bad status '99999'\n" },
};

START_TEST(errors)
{
    struct env e;
    env_load(&e, error_cases[_i].conf);
    ck_assert_int_gt(e.errors, 0);
    ck_assert_str_eq(e.msgs, error_cases[_i].want);
    env_free(&e);
}
END_TEST

START_TEST(reply_acl_in_http_access_warns)
{
    struct env e;
    env_load(&e, "acl exe rep_mime_type x\nhttp_access deny exe\nhttp_access allow all\n"
                 "cache deny exe\nmiss_access deny exe\nhttp_reply_access deny exe\n"
                 "reply_header_access Server deny exe\nrequest_header_access Referer deny exe");
    ck_assert_int_eq(e.errors, 0);
    ck_assert_int_eq(e.warnings, 4); /* not http_reply_access nor reply_header_access */
    ck_assert_ptr_nonnull(strstr(e.msgs, "t.conf:2: warning: http_access: acl exe"));
    ck_assert_ptr_nonnull(strstr(e.msgs, "t.conf:4: warning: cache: acl exe"));
    ck_assert_ptr_nonnull(strstr(e.msgs, "t.conf:5: warning: miss_access: acl exe"));
    ck_assert_ptr_nonnull(strstr(e.msgs, "t.conf:8: warning: request_header_access: acl exe"));
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ reply access */

static const struct {
    const char *conf;
    int status;
    const char *ctype;
    enum pd_acl_verdict want;
} reply_cases[] = {
    { "", 200, "text/html", PD_ACL_ALLOW },
    { "acl exe rep_mime_type -i ^application/x-msdownload$\nhttp_reply_access deny exe",
      200, "Application/X-MSDownload", PD_ACL_DENY },
    { "acl exe rep_mime_type -i ^application/x-msdownload$\nhttp_reply_access deny exe",
      200, "text/html", PD_ACL_ALLOW },
    { "acl e http_status 500-599\nhttp_reply_access deny e", 503, NULL, PD_ACL_DENY },
    { "acl e http_status 500-599\nhttp_reply_access deny e", 404, NULL, PD_ACL_ALLOW },
    { "acl ok http_status 200 304\nhttp_reply_access allow ok", 404, NULL, PD_ACL_DENY },
    { "acl ok http_status 200 304\nhttp_reply_access allow ok", 304, NULL, PD_ACL_ALLOW },
    { "acl h rep_header Server ^evil\nhttp_reply_access deny h", 200, NULL, PD_ACL_ALLOW },
};

START_TEST(reply_access)
{
    struct env e;
    env_load(&e, reply_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://o.test/", "10.0.0.1", NULL);
    env_reply(&e, reply_cases[_i].status, reply_cases[_i].ctype);
    ck_assert_int_eq(pd_acl_check_reply(e.acl, &e.q, NULL), reply_cases[_i].want);
    env_free(&e);
}
END_TEST

START_TEST(rep_header_matches_reply)
{
    struct env e;
    env_load(&e, "acl h rep_header Server ^evil\nhttp_reply_access deny h");
    env_request(&e, "http://o.test/", "10.0.0.1", NULL);
    env_reply(&e, 200, NULL);
    ck_assert_int_eq(pd_http_msg_add(&e.rep, "Server", "evil/1", 6), 0);
    const char *deny_acl = NULL;
    ck_assert_int_eq(pd_acl_check_reply(e.acl, &e.q, &deny_acl), PD_ACL_DENY);
    ck_assert_str_eq(deny_acl, "h");
    e.q.reply = NULL; /* before the reply: reply acls never match */
    ck_assert_int_eq(pd_acl_check_reply(e.acl, &e.q, NULL), PD_ACL_ALLOW);
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ values */

static const struct {
    const char *conf, *url;
    uint64_t want;
} rbms_cases[] = {
    { "", "http://o.test/", UINT64_MAX },
    { "reply_body_max_size 100", "http://o.test/", 100 },
    { "reply_body_max_size 100 bytes", "http://o.test/", 100 },
    { "reply_body_max_size 4 KB", "http://o.test/", 4096 },
    { "reply_body_max_size 2 MB all", "http://o.test/", 2u << 20 },
    { "reply_body_max_size 1 GB", "http://o.test/", 1ull << 30 },
    { "acl p urlpath_regex ^/p\nreply_body_max_size 1 KB p\nreply_body_max_size 5 KB",
      "http://o.test/p", 1024 },
    { "acl p urlpath_regex ^/p\nreply_body_max_size 1 KB p\nreply_body_max_size 5 KB",
      "http://o.test/q", 5120 },
    { "acl p urlpath_regex ^/p\nreply_body_max_size none p\nreply_body_max_size 5 KB",
      "http://o.test/p", UINT64_MAX },
    { "acl p urlpath_regex ^/p\nreply_body_max_size 1 KB p", "http://o.test/q", UINT64_MAX },
};

START_TEST(reply_body_max)
{
    struct env e;
    env_load(&e, rbms_cases[_i].conf);
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, rbms_cases[_i].url, "10.0.0.1", NULL);
    ck_assert_uint_eq(pd_acl_reply_body_max(e.acl, &e.q), rbms_cases[_i].want);
    env_free(&e);
}
END_TEST

START_TEST(outgoing_address)
{
    struct env e;
    env_load(&e, "acl p urlpath_regex ^/p\ntcp_outgoing_address 2001:db8::1 p\n"
                 "tcp_outgoing_address 10.9.9.9 p\ntcp_outgoing_address 10.8.8.8");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    ck_assert(pd_acl_has_outgoing_address(e.acl));
    env_request(&e, "http://o.test/p", "10.0.0.1", NULL);
    char ip[64];
    const struct sockaddr_storage *s = pd_acl_outgoing_address(e.acl, &e.q, AF_INET);
    ck_assert_ptr_nonnull(s);
    inet_ntop(AF_INET, &((const struct sockaddr_in *)s)->sin_addr, ip, sizeof ip);
    ck_assert_str_eq(ip, "10.9.9.9");
    s = pd_acl_outgoing_address(e.acl, &e.q, AF_INET6);
    ck_assert_ptr_nonnull(s);
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)s)->sin6_addr, ip, sizeof ip);
    ck_assert_str_eq(ip, "2001:db8::1");
    pd_url_free(&e.url);
    e.have_url = 0;
    env_request(&e, "http://o.test/q", "10.0.0.1", NULL);
    s = pd_acl_outgoing_address(e.acl, &e.q, AF_INET);
    inet_ntop(AF_INET, &((const struct sockaddr_in *)s)->sin_addr, ip, sizeof ip);
    ck_assert_str_eq(ip, "10.8.8.8");
    ck_assert_ptr_null(pd_acl_outgoing_address(e.acl, &e.q, AF_INET6));
    env_free(&e);
}
END_TEST

/* ------------------------------------------------------------ XFF */

static const struct {
    const char *client;
    const char *xff[3];
    const char *want;   /* NULL: not followed */
} xff_cases[] = {
    /* follow_x_forwarded_for allow trusted (127.0.0.1, 10.0.0.0/8) */
    { "127.0.0.1", { "X-Forwarded-For: 192.0.2.5", NULL }, "192.0.2.5" },
    { "192.0.2.1", { "X-Forwarded-For: 10.1.1.1", NULL }, NULL },
    /* walks right to left while the current address is trusted */
    { "127.0.0.1", { "X-Forwarded-For: 192.0.2.5, 10.2.2.2", NULL }, "192.0.2.5" },
    { "127.0.0.1", { "X-Forwarded-For: 198.51.100.1, 192.0.2.5, 10.2.2.2", NULL }, "192.0.2.5" },
    { "127.0.0.1", { "X-Forwarded-For: 192.0.2.5", "X-Forwarded-For: 10.2.2.2", NULL },
      "192.0.2.5" },
    { "127.0.0.1", { "X-Forwarded-For: 2001:db8::7", NULL }, "2001:db8::7" },
    /* garbage stops the walk: the last address believed stays */
    { "127.0.0.1", { "X-Forwarded-For: unknown", NULL }, NULL },
    { "127.0.0.1", { "X-Forwarded-For: 192.0.2.5, unknown", NULL }, NULL },
    { "127.0.0.1", { "X-Forwarded-For: unknown, 10.2.2.2", NULL }, "10.2.2.2" },
    { "127.0.0.1", { NULL }, NULL },
};

START_TEST(follow_xff)
{
    struct env e;
    env_load(&e, "acl trusted src 127.0.0.1 10.0.0.0/8\nfollow_x_forwarded_for allow trusted");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://o.test/", xff_cases[_i].client, xff_cases[_i].xff);
    struct sockaddr_storage out;
    int got = pd_acl_indirect_client(e.acl, &e.q, &out);
    if (!xff_cases[_i].want) {
        ck_assert_int_eq(got, 0);
    } else {
        ck_assert_int_eq(got, 1);
        char ip[64];
        if (out.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&out)->sin_addr, ip, sizeof ip);
        else
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&out)->sin6_addr, ip, sizeof ip);
        ck_assert_str_eq(ip, xff_cases[_i].want);
    }
    env_free(&e);
}
END_TEST

START_TEST(miss_access_default_and_rules)
{
    struct env e;
    env_load(&e, "acl p urlpath_regex ^/p\nmiss_access deny p");
    ck_assert_msg(e.errors == 0, "%s", e.msgs);
    env_request(&e, "http://o.test/p", "10.0.0.1", NULL);
    ck_assert_int_eq(pd_acl_check_miss(e.acl, &e.q, NULL), PD_ACL_DENY);
    pd_url_free(&e.url);
    e.have_url = 0;
    env_request(&e, "http://o.test/q", "10.0.0.1", NULL);
    ck_assert_int_eq(pd_acl_check_miss(e.acl, &e.q, NULL), PD_ACL_ALLOW);
    env_free(&e);
    env_load(&e, "");
    env_request(&e, "http://o.test/p", "10.0.0.1", NULL);
    ck_assert_int_eq(pd_acl_check_miss(e.acl, &e.q, NULL), PD_ACL_ALLOW);
    env_free(&e);
}
END_TEST

START_TEST(known_names)
{
    ck_assert(pd_hdr_known(PD_STR("Referer")));
    ck_assert(pd_hdr_known(PD_STR("referer")));
    ck_assert(pd_hdr_known(PD_STR("WWW-Authenticate")));
    ck_assert(pd_hdr_known(PD_STR("Accept")));
    ck_assert(pd_hdr_known(PD_STR("X-Squid-Error")));
    ck_assert(!pd_hdr_known(PD_STR("X-Custom")));
    ck_assert(!pd_hdr_known(PD_STR("Refere")));
    ck_assert(!pd_hdr_known(PD_STR("Referers")));
}
END_TEST

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

int main(void)
{
    Suite *s = suite_create("headers");
    TCase *t = tcase_create("core");
    tcase_add_loop_test(t, header_access, 0, N(access_cases));
    tcase_add_loop_test(t, header_add, 0, N(add_cases));
    tcase_add_loop_test(t, errors, 0, N(error_cases));
    tcase_add_test(t, reply_acl_in_http_access_warns);
    tcase_add_loop_test(t, reply_access, 0, N(reply_cases));
    tcase_add_test(t, rep_header_matches_reply);
    tcase_add_loop_test(t, reply_body_max, 0, N(rbms_cases));
    tcase_add_test(t, outgoing_address);
    tcase_add_loop_test(t, follow_xff, 0, N(xff_cases));
    tcase_add_test(t, miss_access_default_and_rules);
    tcase_add_test(t, known_names);
    suite_add_tcase(s, t);
    return pd_check_run(s);
}
