/*
 * Unit tests for access_log's logformat: Squid's own definitions of the
 * squid and common formats, compiled from their % codes, print exactly what
 * the builtin formats print; modifiers, header arguments, escaping and
 * unknown codes; and a log file reopened after a rename (SIGUSR1 rotation).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxyd/access_log.h"
#include "proxyd/http_msg.h"
#include "check_run.h"

static pd_http_msg req, resp;

static void add_hdr(pd_http_msg *m, const char *name, const char *value)
{
    /* views into string literals, as the parser gives views into its buffer */
    size_t n = m->n_headers;
    pd_header *h = realloc(m->headers, (n + 1) * sizeof *h);
    ck_assert_ptr_nonnull(h);
    m->headers = h;
    h[n].name = (pd_str){ name, strlen(name) };
    h[n].value = (pd_str){ value, strlen(value) };
    m->n_headers = n + 1;
}

static pd_log_entry sample(int which)
{
    static const char *const urls[] = { "http://example.com/a/b?c=d", "example.com:443",
                                        "http://h/with space\x01" };
    pd_log_entry e = {
        .start = { 1700000000 + which, 45678 * (which + 1) },
        .elapsed_ms = 12 * which + 3,
        .client_ip = "192.0.2.7",
        .result = which == 1 ? "TCP_TUNNEL" : "TCP_MISS",
        .status = which == 2 ? 0 : 200,
        .bytes = 1234u * (unsigned)which,
        .method = which == 1 ? "CONNECT" : "GET",
        .method_len = which == 1 ? 7 : 3,
        .url = urls[which],
        .url_len = strlen(urls[which]),
        .hier = which == 2 ? "HIER_NONE" : "HIER_DIRECT",
        .peer_ip = which == 2 ? "-" : "198.51.100.1",
        .content_type = which == 0 ? "text/html" : NULL,
        .content_type_len = which == 0 ? 9 : 0,
        .version_major = 1,
        .version_minor = which == 2 ? 0 : 1,
        .client_port = 40000,
        .local_port = 3128,
        .bytes_in = 77,
        .origin_status = which == 0 ? 203 : 0,
        .req = &req,
        .resp = &resp,
        .server_host = which == 2 ? NULL : "example.com",
        .err_code = which == 2 ? "ERR_CONNECT_FAIL" : NULL,
        .err_detail = which == 2 ? "the origin refused the connection" : NULL,
        .server_ms = which == 2 ? -1 : 9,
    };
    return e;
}

static void setup(void)
{
    pd_http_msg_init(&req);
    pd_http_msg_init(&resp);
    req.headers = NULL;
    resp.headers = NULL;
    req.n_headers = resp.n_headers = 0;
    add_hdr(&req, "User-Agent", "curl/8 \"x\"");
    add_hdr(&req, "Accept", "a");
    add_hdr(&req, "accept", "b");
    add_hdr(&resp, "Content-Type", "text/html");
}

static void teardown(void)
{
    free(req.headers);
    free(resp.headers);
}

static char *fmt_custom(const char *spec, const pd_log_entry *e)
{
    char err[160];
    pd_logfmt *f = pd_logfmt_compile(spec, err, sizeof err);
    ck_assert_msg(f != NULL, "%s: %s", spec, err);
    static char out[4096];
    size_t n = pd_logfmt_format(f, e, out, sizeof out);
    ck_assert_uint_lt(n, sizeof out);
    pd_logfmt_free(f);
    return out;
}

START_TEST(squid_definitions_match_builtin_formats)
{
    static const struct {
        enum pd_log_format fmt;
        const char *spec;
    } defs[] = {
        { PD_LOG_SQUID, "%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt" },
        { PD_LOG_COMMON, "%>a %[ui %[un [%tl] \"%rm %ru HTTP/%rv\" %>Hs %<st %Ss:%Sh" },
    };
    for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
        pd_log_entry e = sample(_i);
        char builtin[4096];
        pd_access_log_format(defs[d].fmt, &e, builtin, sizeof builtin);
        if (defs[d].fmt == PD_LOG_COMMON && _i == 2)
            continue; /* inside quotes the builtin keeps spaces, a code field escapes them */
        ck_assert_str_eq(fmt_custom(defs[d].spec, &e), builtin);
    }
}
END_TEST

static const struct {
    const char *spec, *want;
} cases[] = {
    { "%tr|%5tr|%-5tr|%05tr", "3|    3|3    |00003" },
    { "%>a:%>p -> %lp %<a", "192.0.2.7:40000 -> 3128 198.51.100.1" },
    { "%>Hs %<Hs %<st %>st", "200 203 0 77" },
    { "%rm %rp HTTP/%rv", "GET /a/b?c=d HTTP/1.1" },
    { "%{User-Agent}>h", "curl/8%20\"x\"" },
    { "\"%{User-Agent}>h\"", "\"curl/8%20\"x\"\"" },
    { "%\"{User-Agent}>h", "\"curl/8 %22x%22\"" },
    { "%>h{Accept}", "a, b" },
    { "%{X-None}>h %<h{Content-Type} %{Content-Type}<h", "- text/html text/html" },
    { "%un %ui %ul %mt", "- - - text/html" },
    { "100%% %Ss", "100% TCP_MISS" },
    { "%{%Y}tg|%tg", "2023|14/Nov/2023:22:13:20 +0000" },
    { "%<A %err_code %err_detail %<tt", "example.com - - 9" },
    { "%ssl::>sni|%{Accept}>ha", "-|a, b" },
    { "literal only", "literal only" },
    { "", "" },
    /* a width past the cap (64) is clamped; 10+ digits overflowed an int (fuzz_conf) */
    { "%-99999999999999999999tr|", "3                                                               |" },
};

START_TEST(codes_and_modifiers)
{
    pd_log_entry e = sample(0);
    ck_assert_str_eq(fmt_custom(cases[_i].spec, &e), cases[_i].want);
}
END_TEST

/* An error answered by proxyd: its page name and why; no origin, no server time. */
START_TEST(error_codes)
{
    pd_log_entry e = sample(2);
    ck_assert_str_eq(fmt_custom("%err_code|%err_detail|%<A|%<tt", &e),
                     "ERR_CONNECT_FAIL|the%20origin%20refused%20the%20connection|-|-");
}
END_TEST

START_TEST(fields_cannot_forge_lines)
{
    pd_log_entry e = sample(2);
    const char *line = fmt_custom("%ru %rm %<Hs %<a %mt", &e);
    ck_assert_str_eq(line, "http://h/with%20space%01 GET - - -");
    ck_assert_ptr_null(strpbrk(line, "\r\n"));
    pd_http_msg evil;
    pd_http_msg_init(&evil);
    evil.headers = NULL;
    evil.n_headers = 0;
    add_hdr(&evil, "X", "a\r\nforged 1 2 3");
    e.req = &evil;
    line = fmt_custom("%{X}>h|%>h", &e);
    ck_assert_str_eq(line, "a%0D%0Aforged%201%202%203|X:%20a%0D%0Aforged%201%202%203%0D%0A");
    free(evil.headers);
    e.req = NULL;
    ck_assert_str_eq(fmt_custom("%{X}>h", &e), "-");
}
END_TEST

/* Helper kv-pairs: %note (all, or one name's values), %ue %et %ea, and %un
 * falling back to an external acl's user= when nobody authenticated. */
START_TEST(notes_and_helper_codes)
{
    pd_log_entry e = sample(0);
    ck_assert_str_eq(fmt_custom("%un|%ue|%et|%ea|%note", &e), "-|-|-|-|-");
    e.notes = "group=admins\nuser=bob\ntag=vip\nlog=seen it\ngroup=ops\nmessage=\n";
    ck_assert_str_eq(fmt_custom("%un|%ul|%ue|%et|%ea", &e), "bob|-|bob|vip|seen%20it");
    ck_assert_str_eq(fmt_custom("%{group}note|%{nosuch}note|%{message}note", &e),
                     "admins,ops|-|-");
    ck_assert_str_eq(fmt_custom("%note", &e),
                     "group:%20admins%0D%0Auser:%20bob%0D%0Atag:%20vip%0D%0Alog:%20seen%20it"
                     "%0D%0Agroup:%20ops%0D%0Amessage:%20");
    e.user = "alice";
    ck_assert_str_eq(fmt_custom("%un|%ul|%ue", &e), "alice|alice|bob");
    char line[512];
    pd_access_log_format(PD_LOG_SQUID, &e, line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, " alice HIER_DIRECT/"));
    e.user = NULL;
    pd_access_log_format(PD_LOG_SQUID, &e, line, sizeof line);
    ck_assert_ptr_nonnull(strstr(line, " bob HIER_DIRECT/"));
    size_t n;
    const char *v = pd_notes_find(e.notes, "group", &n);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq((int)n, 6);
    ck_assert_ptr_null(pd_notes_find(e.notes, "grou", &n));
    ck_assert_ptr_null(pd_notes_find(NULL, "group", &n));
}
END_TEST

START_TEST(unknown_codes_are_refused)
{
    static const char *const bad[] = { "%Zz", "%", "%{unterminated>h", "%>q", "ok %tr %" };
    char err[160];
    pd_logfmt *f = pd_logfmt_compile(bad[_i], err, sizeof err);
    ck_assert_ptr_null(f);
    ck_assert_ptr_nonnull(strstr(err, "logformat code"));
}
END_TEST

START_TEST(small_buffer_is_truncated_not_overrun)
{
    pd_log_entry e = sample(0);
    char err[64];
    pd_logfmt *f = pd_logfmt_compile("%ru %ru %ru", err, sizeof err);
    ck_assert_ptr_nonnull(f);
    char buf[16];
    memset(buf, 'Z', sizeof buf);
    size_t need = pd_logfmt_format(f, &e, buf, 10);
    ck_assert_uint_eq(need, 3 * e.url_len + 2);
    ck_assert_int_eq(buf[9], '\0');
    ck_assert_int_eq(buf[10], 'Z');
    pd_logfmt_free(f);
}
END_TEST

START_TEST(reopen_follows_a_renamed_file)
{
    char dir[] = "/tmp/check_access_log.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], rotated[256], line[512];
    snprintf(path, sizeof path, "%s/access.log", dir);
    snprintf(rotated, sizeof rotated, "%s/access.log.1", dir);
    pd_conf *conf = pd_conf_load_string("t.conf", "logformat short %rm %>Hs\n", NULL);
    ck_assert_ptr_nonnull(conf);
    free(conf->access_log);
    conf->access_log = strdup(path);
    conf->access_log_format_name = strdup("short");
    pd_access_log *log = pd_access_log_open(conf);
    ck_assert_ptr_nonnull(log);
    pd_log_entry e = sample(0);
    pd_access_log_write(log, &e);
    ck_assert_int_eq(rename(path, rotated), 0);
    pd_access_log_write(log, &e); /* still the old file until reopened */
    ck_assert_int_eq(pd_access_log_reopen(log), 0);
    e.status = 404;
    pd_access_log_write(log, &e);
    pd_access_log_close(log);
    FILE *f = fopen(rotated, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "GET 200\n");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_ptr_null(fgets(line, sizeof line, f));
    fclose(f);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    ck_assert_str_eq(line, "GET 404\n");
    fclose(f);
    unlink(path);
    unlink(rotated);
    rmdir(dir);
    pd_conf_free(conf);
}
END_TEST

static Suite *access_log_suite(void)
{
    Suite *s = suite_create("access_log");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, squid_definitions_match_builtin_formats, 0, 3);
    tcase_add_test(tc, notes_and_helper_codes);
    tcase_add_loop_test(tc, codes_and_modifiers, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, error_codes);
    tcase_add_test(tc, fields_cannot_forge_lines);
    tcase_add_loop_test(tc, unknown_codes_are_refused, 0, 5);
    tcase_add_test(tc, small_buffer_is_truncated_not_overrun);
    tcase_add_test(tc, reopen_follows_a_renamed_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(access_log_suite());
}
