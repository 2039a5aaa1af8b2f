/*
 * check_url: request-target normalisation. One table of spellings (many of
 * them filter-bypass tricks) with the canonical result each must give, or a
 * refusal.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/url.h"
#include "check_run.h"

struct ucase {
    const char *in;
    enum pd_url_form form;
    int ok;
    const char *url;    /* pd_url_format output */
    const char *host;
    unsigned port;
    int host_ip;
    const char *path;   /* NULL: not checked (or CONNECT) */
};

#define A PD_URL_ABSOLUTE
#define C PD_URL_AUTHORITY
#define BAD(s, f) { s, f, 0, NULL, NULL, 0, 0, NULL }

static const struct ucase cases[] = {
    /* case and trailing dot */
    { "http://EXAMPLE.com./", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "HTTP://Example.COM/Path", A, 1, "http://example.com/Path", "example.com", 80, 0, "/Path" },
    { "http://example.com:80/", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "http://example.com:8080/x", A, 1, "http://example.com:8080/x", "example.com", 8080, 0, "/x" },
    { "http://example.com:/", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    /* userinfo dropped */
    { "http://u:p@example.com/", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "http://user@Host.EXAMPLE.:80/a%7Eb?q", A, 1, "http://host.example/a~b?q", "host.example", 80, 0, "/a~b?q" },
    { "http://good.com@evil.com/", A, 1, "http://evil.com/", "evil.com", 80, 0, "/" },
    { "http://a@b@evil.com/", A, 1, "http://evil.com/", "evil.com", 80, 0, "/" },
    /* IPv4 in every inet_aton form */
    { "http://2130706433/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://0x7f000001/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://0177.0.0.1/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://127.1/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://0x7f.1/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://0X0A.0.1/", A, 1, "http://10.0.0.1/", "10.0.0.1", 80, 4, "/" },
    { "http://10.0.0.1./", A, 1, "http://10.0.0.1/", "10.0.0.1", 80, 4, "/" },
    { "http://012.0x00.0.01/", A, 1, "http://10.0.0.1/", "10.0.0.1", 80, 4, "/" },
    { "http://192.168.65535/", A, 1, "http://192.168.255.255/", "192.168.255.255", 80, 4, "/" },
    BAD("http://1.2.3.256/", A),
    BAD("http://4294967296/", A),
    BAD("http://1.2.3.4.5/", A),
    BAD("http://0x/", A),
    BAD("http://09.1.1.1/", A),
    BAD("http://example.123/", A),
    BAD("http://example.0x1f/", A),
    BAD("http://foo.0x/", A),
    { "http://example.1e3/", A, 1, "http://example.1e3/", "example.1e3", 80, 0, "/" },
    { "http://1e100.net/", A, 1, "http://1e100.net/", "1e100.net", 80, 0, "/" },
    { "http://0xg/", A, 1, "http://0xg/", "0xg", 80, 0, "/" },
    /* IPv6 */
    /* v4-mapped literals take their IPv4 spelling */
    { "http://[::FFFF:127.0.0.1]/", A, 1, "http://127.0.0.1/", "127.0.0.1", 80, 4, "/" },
    { "http://[::ffff:7f00:1]:8080/", A, 1, "http://127.0.0.1:8080/", "127.0.0.1", 8080, 4, "/" },
    { "http://[::127.0.0.1]/", A, 1, "http://[::127.0.0.1]/", "::127.0.0.1", 80, 6, "/" },
    { "http://[2001:DB8:0:0:0:0:0:1]:8080/", A, 1, "http://[2001:db8::1]:8080/", "2001:db8::1", 8080, 6, "/" },
    { "http://[0:0:0:0:0:0:0:1]/", A, 1, "http://[::1]/", "::1", 80, 6, "/" },
    BAD("http://[fe80::1%25eth0]/", A),
    BAD("http://[fe80::1%eth0]/", A),
    BAD("http://[::1/", A),
    BAD("http://[::1]x/", A),
    BAD("http://[1.2.3.4]/", A),
    /* percent in host refused (as Squid) */
    BAD("http://ex%61mple.com/", A),
    /* path */
    { "http://example.com", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "http://example.com?q=1", A, 1, "http://example.com/?q=1", "example.com", 80, 0, "/?q=1" },
    { "http://example.com/%7euser", A, 1, "http://example.com/~user", "example.com", 80, 0, "/~user" },
    { "http://example.com/a%2fb", A, 1, "http://example.com/a%2Fb", "example.com", 80, 0, "/a%2Fb" },
    { "http://example.com/%41%2d%5F%2E%30", A, 1, "http://example.com/A-_.0", "example.com", 80, 0, "/A-_.0" },
    { "http://example.com/%3f%20", A, 1, "http://example.com/%3F%20", "example.com", 80, 0, "/%3F%20" },
    { "http://example.com/a?b=%61%26", A, 1, "http://example.com/a?b=a%26", "example.com", 80, 0, "/a?b=a%26" },
    /* dot segments, also percent-encoded */
    { "http://example.com/a/../admin/", A, 1, "http://example.com/admin/", "example.com", 80, 0, "/admin/" },
    { "http://example.com/a/%2e%2E/admin", A, 1, "http://example.com/admin", "example.com", 80, 0, "/admin" },
    { "http://example.com/./a/./b/.", A, 1, "http://example.com/a/b/", "example.com", 80, 0, "/a/b/" },
    { "http://example.com/../../x", A, 1, "http://example.com/x", "example.com", 80, 0, "/x" },
    { "http://example.com/a/b/..", A, 1, "http://example.com/a/", "example.com", 80, 0, "/a/" },
    { "http://example.com/..", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "http://example.com/a/..b/.c", A, 1, "http://example.com/a/..b/.c", "example.com", 80, 0, "/a/..b/.c" },
    { "http://example.com//a/../b", A, 1, "http://example.com//b", "example.com", 80, 0, "//b" },
    { "http://example.com/a?x=/../y", A, 1, "http://example.com/a?x=/../y", "example.com", 80, 0, "/a?x=/../y" },
    { "http://example.com/a/%2E%2E%2fb", A, 1, "http://example.com/a/..%2Fb", "example.com", 80, 0, "/a/..%2Fb" },
    { "http://example.com/a#frag", A, 1, "http://example.com/a", "example.com", 80, 0, "/a" },
    { "http://example.com#frag", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    BAD("http://example.com/%zz", A),
    BAD("http://example.com/%4", A),
    BAD("http://example.com/%", A),
    BAD("http://example.com/a b", A),
    BAD("http://example.com/a\tb", A),
    BAD("http://example.com/a\x7f", A),
    BAD("http://example.com/\xc3\xa9", A),
    BAD("http://exa\rmple.com/", A),
    /* host charset and limits */
    { "http://under_score.example/", A, 1, "http://under_score.example/", "under_score.example", 80, 0, "/" },
    BAD("http://exa!mple.com/", A),
    BAD("http://evil.com\\@good.com/", A),
    BAD("http://a..b/", A),
    BAD("http://.a/", A),
    BAD("http://a.com../", A),
    BAD("http:///path", A),
    BAD("http://:80/", A),
    BAD("http://", A),
    BAD("http://user@/", A),
    BAD("http://example.com:80:80/", A),
    { "http://@example.com/", A, 1, "http://example.com/", "example.com", 80, 0, "/" },
    { "http://[::1]:/", A, 1, "http://[::1]/", "::1", 80, 6, "/" },
    /* ports */
    BAD("http://example.com:0/", A),
    BAD("http://example.com:65536/", A),
    BAD("http://example.com:123456/", A),
    BAD("http://example.com:8o/", A),
    BAD("http://example.com:-1/", A),
    { "http://example.com:65535/", A, 1, "http://example.com:65535/", "example.com", 65535, 0, "/" },
    /* schemes */
    BAD("ftp://example.com/", A),
    BAD("https://example.com/", A),
    BAD("/relative", A),
    BAD("example.com/", A),
    BAD("http:/example.com/", A),
    BAD("verylongscheme://example.com/", A),
    /* CONNECT */
    { "Example.COM.:443", C, 1, "example.com:443", "example.com", 443, 0, NULL },
    { "[2001:db8::0:1]:443", C, 1, "[2001:db8::1]:443", "2001:db8::1", 443, 6, NULL },
    { "0x7f000001:22", C, 1, "127.0.0.1:22", "127.0.0.1", 22, 4, NULL },
    BAD("example.com", C),
    BAD("example.com:", C),
    BAD("example.com:0", C),
    BAD("example.com:99999", C),
    BAD("user@example.com:443", C),
    BAD("example.com:443/", C),
    BAD("http://example.com:443", C),
    BAD("[::1]", C),
    BAD("::1:443", C),
    BAD(":443", C),
};

START_TEST(test_table)
{
    const struct ucase *c = &cases[_i];
    pd_url u;
    const char *why = NULL;
    int rc = pd_url_parse(c->in, strlen(c->in), c->form, &u, &why);
    if (!c->ok) {
        ck_assert_msg(rc == -1, "%s: accepted, expected refusal", c->in);
        ck_assert_msg(why != NULL && why[0] != '\0', "%s: no reason", c->in);
        ck_assert_ptr_null(u.path);
        return;
    }
    ck_assert_msg(rc == 0, "%s: refused (%s)", c->in, why ? why : "?");
    char buf[512];
    size_t n = pd_url_format(&u, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen(buf));
    ck_assert_str_eq(buf, c->url);
    ck_assert_str_eq(u.host, c->host);
    ck_assert_uint_eq(u.port, c->port);
    ck_assert_int_eq(u.host_ip, c->host_ip);
    if (c->form == PD_URL_AUTHORITY) {
        ck_assert_ptr_null(u.path);
        ck_assert_str_eq(u.scheme, "");
    } else {
        ck_assert_str_eq(u.path, c->path);
        ck_assert_uint_eq(u.path_len, strlen(c->path));
    }
    pd_url_free(&u);
}
END_TEST

START_TEST(test_not_nul_terminated)
{
    /* the parser must honour len: the bytes after it are not part of the target */
    const char t[] = "http://example.com/abcJUNK";
    pd_url u;
    const char *why;
    ck_assert_int_eq(pd_url_parse(t, strlen(t) - 4, PD_URL_ABSOLUTE, &u, &why), 0);
    ck_assert_str_eq(u.path, "/abc");
    pd_url_free(&u);
    ck_assert_int_eq(pd_url_parse(t, 0, PD_URL_ABSOLUTE, &u, &why), -1);
}
END_TEST

START_TEST(test_host_length)
{
    char t[400], label[64];
    pd_url u;
    const char *why;
    /* 63-char labels are fine, 64 is not */
    memset(label, 'a', 63);
    label[63] = '\0';
    snprintf(t, sizeof(t), "http://%s.com/", label);
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), 0);
    pd_url_free(&u);
    snprintf(t, sizeof(t), "http://a%s.com/", label);
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), -1);
    /* 255-char host accepted, 256 refused */
    char host[300];
    for (size_t o = 0; o < 255; o++)
        host[o] = (o % 10 == 9) ? '.' : 'b';
    host[254] = 'c';
    host[255] = '\0';
    snprintf(t, sizeof(t), "http://%s/", host);
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), 0);
    ck_assert_uint_eq(strlen(u.host), 255);
    pd_url_free(&u);
    snprintf(t, sizeof(t), "http://%sd/", host);
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), -1);
    ck_assert_str_eq(why, "host too long");
}
END_TEST

START_TEST(test_format_small_buffer)
{
    pd_url u;
    const char *why;
    const char *t = "http://example.com:8080/long/path";
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), 0);
    char buf[8];
    size_t n = pd_url_format(&u, buf, sizeof(buf));
    ck_assert_uint_eq(n, strlen("http://example.com:8080/long/path"));
    ck_assert_str_eq(buf, "http://");
    char a[64];
    ck_assert_uint_eq(pd_url_authority(&u, a, sizeof(a)), strlen("example.com:8080"));
    ck_assert_str_eq(a, "example.com:8080");
    pd_url_free(&u);
    t = "http://[::1]/";
    ck_assert_int_eq(pd_url_parse(t, strlen(t), PD_URL_ABSOLUTE, &u, &why), 0);
    pd_url_authority(&u, a, sizeof(a));
    ck_assert_str_eq(a, "[::1]:80");
    pd_url_free(&u);
}
END_TEST

static Suite *url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_not_nul_terminated);
    tcase_add_test(tc, test_host_length);
    tcase_add_test(tc, test_format_small_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(url_suite());
}
