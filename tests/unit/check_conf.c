/* Unit tests for conf: squid.conf syntax, units, defaults, http_port forms,
 * includes, exact "file:line: message" errors and warnings, the shipped
 * conf/ files, Debian's stock squid.conf and the generated reference. */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxyd/conf.h"
#include "check_run.h"

/* Load text as "t.conf"; *msgs receives everything written to err_out. */
static pd_conf *load_msgs(const char *name, const char *text, char **msgs)
{
    size_t len;
    FILE *f = open_memstream(msgs, &len);
    ck_assert_ptr_nonnull(f);
    pd_conf *c = pd_conf_load_string(name, text, f);
    fclose(f);
    return c;
}

static pd_conf *load_ok(const char *text)
{
    char *msgs;
    pd_conf *c = load_msgs("t.conf", text, &msgs);
    ck_assert_msg(c != NULL, "load failed for <%s>: %s", text, msgs);
    ck_assert_msg(msgs[0] == '\0', "unexpected output for <%s>: %s", text, msgs);
    free(msgs);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Defaults */

START_TEST(defaults_match_header)
{
    pd_conf *c = load_ok("");
    ck_assert_int_eq(c->n_http_port, 1);
    ck_assert_str_eq(c->http_port[0].text, "0.0.0.0:3128");
    ck_assert_int_eq(c->http_port[0].ss.ss_family, AF_INET);
    ck_assert_int_eq(c->http_port[0].len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&c->http_port[0].ss)->sin_port), 3128);
    ck_assert_int_eq(c->n_admin_port, 0);
    ck_assert_int_eq(c->workers, 0);
    ck_assert_uint_eq(c->cache_mem, 260ULL << 20);
    ck_assert_uint_eq(c->maximum_object_size, 1024ULL << 10);
    ck_assert_uint_eq(c->maximum_object_size_in_memory, 1024ULL << 10);
    ck_assert_int_eq(c->collapsed_forwarding, 1);
    ck_assert_uint_eq(c->acl.n + c->http_access.n + c->cache_rules.n + c->refresh_pattern.n +
                      c->deny_info.n + c->logformat.n, 0);
    ck_assert_str_eq(c->access_log, "stdout");
    ck_assert_int_eq(c->access_log_format, PD_LOG_SQUID);
    ck_assert_ptr_null(c->access_log_format_name);
    ck_assert_ptr_null(c->cache_log);
    ck_assert_ptr_null(c->pid_filename);
    ck_assert_int_eq(c->n_dns_nameservers, 0);
    ck_assert_str_eq(c->hosts_file, "/etc/hosts");
    ck_assert_int_eq(c->positive_dns_ttl, 6 * 3600);
    ck_assert_int_eq(c->negative_dns_ttl, 60);
    ck_assert_int_eq(c->dns_timeout, 30);
    ck_assert_ptr_nonnull(c->visible_hostname);
    ck_assert_int_gt(strlen(c->visible_hostname), 0);
    ck_assert_int_eq(c->via, 1);
    ck_assert_int_eq(c->forwarded_for, PD_FWD_ON);
    ck_assert_uint_eq(c->request_header_max_size, 64 * 1024);
    ck_assert_uint_eq(c->reply_header_max_size, 64 * 1024);
    ck_assert_uint_eq(c->request_body_max_size, 0);
    ck_assert_int_eq(c->connect_timeout, 60000);
    ck_assert_int_eq(c->read_timeout, 15 * 60000);
    ck_assert_int_eq(c->write_timeout, 15 * 60000);
    ck_assert_int_eq(c->request_timeout, 5 * 60000);
    ck_assert_int_eq(c->client_idle_pconn_timeout, 2 * 60000);
    ck_assert_int_eq(c->pconn_timeout, 60000);
    ck_assert_int_eq(c->client_lifetime, 86400000);
    ck_assert_int_eq(c->shutdown_lifetime, 30000);
    ck_assert_int_eq(c->forward_timeout, 4 * 60000);
    ck_assert_int_eq(c->client_persistent_connections, 1);
    ck_assert_int_eq(c->server_persistent_connections, 1);
    ck_assert_int_eq(c->max_client_connections, 16384);
    ck_assert_int_eq(c->server_pconn_max_idle, 256);
    ck_assert_int_eq(c->server_pconn_max_per_host, 32);
    ck_assert_str_eq(c->path, "t.conf");
    ck_assert_int_eq(c->n_warnings, 0);
    pd_conf_free(c);
}
END_TEST

START_TEST(free_null_is_harmless)
{
    pd_conf_free(NULL);
    ck_assert_ptr_null(pd_conf_load(NULL, NULL));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Scalar values, table driven */

enum vtype { U64, SZ, INT, I64 };

struct value_case {
    const char *text;
    size_t off;
    enum vtype type;
    int64_t want;
};

#define OFF(m) offsetof(pd_conf, m)

static const struct value_case value_cases[] = {
    /* sizes: Squid units, bare number = bytes */
    { "cache_mem 260 MB", OFF(cache_mem), U64, 260LL << 20 },
    { "cache_mem 1 GB", OFF(cache_mem), U64, 1LL << 30 },
    { "cache_mem 1024 KB", OFF(cache_mem), U64, 1LL << 20 },
    { "cache_mem 512 bytes", OFF(cache_mem), U64, 512 },
    { "cache_mem 1 byte", OFF(cache_mem), U64, 1 },
    { "cache_mem 4096", OFF(cache_mem), U64, 4096 },
    { "cache_mem 0.5 MB", OFF(cache_mem), U64, 512 << 10 },
    { "cache_mem 2 mb", OFF(cache_mem), U64, 2 << 20 },
    { "cache_mem 64MB", OFF(cache_mem), U64, 64 << 20 },
    { "maximum_object_size 4 MB", OFF(maximum_object_size), U64, 4 << 20 },
    { "maximum_object_size 100", OFF(maximum_object_size), U64, 100 },
    { "request_header_max_size 32 KB", OFF(request_header_max_size), SZ, 32 << 10 },
    { "reply_header_max_size 128 KB", OFF(reply_header_max_size), SZ, 128 << 10 },
    { "request_body_max_size 10 MB", OFF(request_body_max_size), U64, 10 << 20 },
    { "request_body_max_size 0 KB", OFF(request_body_max_size), U64, 0 },
    /* times: Squid units, bare number = seconds, kept in ms */
    { "connect_timeout 30 seconds", OFF(connect_timeout), I64, 30000 },
    { "connect_timeout 1 second", OFF(connect_timeout), I64, 1000 },
    { "connect_timeout 500 milliseconds", OFF(connect_timeout), I64, 500 },
    { "connect_timeout 2 minutes", OFF(connect_timeout), I64, 120000 },
    { "connect_timeout 45", OFF(connect_timeout), I64, 45000 },
    { "connect_timeout 0", OFF(connect_timeout), I64, 0 },
    { "connect_timeout 1.5 minutes", OFF(connect_timeout), I64, 90000 },
    { "read_timeout 2 hours", OFF(read_timeout), I64, 7200000 },
    { "read_timeout 1 HOUR", OFF(read_timeout), I64, 3600000 },
    { "client_lifetime 1 day", OFF(client_lifetime), I64, 86400000 },
    { "client_lifetime 2 days", OFF(client_lifetime), I64, 2 * 86400000LL },
    { "client_lifetime 1 week", OFF(client_lifetime), I64, 7 * 86400000LL },
    { "client_lifetime 1 fortnight", OFF(client_lifetime), I64, 14 * 86400000LL },
    { "client_lifetime 1 month", OFF(client_lifetime), I64, 30 * 86400000LL },
    { "client_lifetime 1 year", OFF(client_lifetime), I64, 31557790080LL },
    { "client_lifetime 1 decade", OFF(client_lifetime), I64, 315577900800LL },
    { "write_timeout 10 seconds", OFF(write_timeout), I64, 10000 },
    { "request_timeout 1 minute", OFF(request_timeout), I64, 60000 },
    { "client_idle_pconn_timeout 5 seconds", OFF(client_idle_pconn_timeout), I64, 5000 },
    { "persistent_request_timeout 7 seconds", OFF(client_idle_pconn_timeout), I64, 7000 },
    { "pconn_timeout 3 seconds", OFF(pconn_timeout), I64, 3000 },
    { "server_idle_pconn_timeout 4 seconds", OFF(pconn_timeout), I64, 4000 },
    { "shutdown_lifetime 1 second", OFF(shutdown_lifetime), I64, 1000 },
    { "forward_timeout 1 minute", OFF(forward_timeout), I64, 60000 },
    { "positive_dns_ttl 1 hour", OFF(positive_dns_ttl), INT, 3600 },
    { "negative_dns_ttl 5", OFF(negative_dns_ttl), INT, 5 },
    /* a bare number is in the directive's unit (these two once had none: a crash) */
    { "max_stale 5", OFF(max_stale), INT, 5 },
    { "url_rewrite_cache_ttl 90", OFF(url_rewrite_cache_ttl), INT, 90 },
    { "url_rewrite_cache_ttl 2 minutes", OFF(url_rewrite_cache_ttl), INT, 120 },
    { "dead_peer_timeout 5", OFF(dead_peer_timeout), I64, 5000 },
    { "dns_timeout 2 minutes", OFF(dns_timeout), INT, 120 },
    /* booleans and integers */
    { "via off", OFF(via), INT, 0 },
    { "via on", OFF(via), INT, 1 },
    { "collapsed_forwarding off", OFF(collapsed_forwarding), INT, 0 },
    { "client_persistent_connections off", OFF(client_persistent_connections), INT, 0 },
    { "server_persistent_connections disable", OFF(server_persistent_connections), INT, 0 },
    { "workers 4", OFF(workers), INT, 4 },
    { "workers 0", OFF(workers), INT, 0 },
    { "max_client_connections 100", OFF(max_client_connections), INT, 100 },
    { "server_pconn_max_idle 0", OFF(server_pconn_max_idle), INT, 0 },
    { "server_pconn_max_per_host 4", OFF(server_pconn_max_per_host), INT, 4 },
    { "forwarded_for off", OFF(forwarded_for), INT, PD_FWD_OFF },
    { "forwarded_for transparent", OFF(forwarded_for), INT, PD_FWD_TRANSPARENT },
    { "forwarded_for delete", OFF(forwarded_for), INT, PD_FWD_DELETE },
    { "forwarded_for truncate", OFF(forwarded_for), INT, PD_FWD_TRUNCATE },
    /* the last line wins, as Squid */
    { "workers 2\nworkers 3", OFF(workers), INT, 3 },
    /* continuation line */
    { "cache_mem 12 \\\n MB", OFF(cache_mem), U64, 12 << 20 },
    { "# comment\n\n   \t\ncache_mem 3 MB # trailing comment", OFF(cache_mem), U64, 3 << 20 },
    { "cache_mem 5 MB\r\n", OFF(cache_mem), U64, 5 << 20 },
    /* Squid's conditionals */
    { "if true\nworkers 3\nelse\nworkers 4\nendif", OFF(workers), INT, 3 },
    { "if false\nworkers 3\nelse\nworkers 4\nendif", OFF(workers), INT, 4 },
    { "if 2 = 2\nworkers 6\nendif", OFF(workers), INT, 6 },
    { "if 1 = 2\nworkers 6\nendif\nworkers 5", OFF(workers), INT, 5 },
    { "if false\nbogus_directive\nif true\nworkers 9\nendif\nendif", OFF(workers), INT, 0 },
    { "if true\nif false\nworkers 1\nelse\nworkers 2\nendif\nendif", OFF(workers), INT, 2 },
};

START_TEST(values)
{
    const struct value_case *vc = &value_cases[_i];
    pd_conf *c = load_ok(vc->text);
    const char *p = (const char *)c + vc->off;
    int64_t got;
    switch (vc->type) {
    case U64: got = (int64_t)*(const uint64_t *)p; break;
    case SZ: got = (int64_t)*(const size_t *)p; break;
    case INT: got = *(const int *)p; break;
    default: got = *(const int64_t *)p; break;
    }
    ck_assert_msg(got == vc->want, "<%s>: got %lld, want %lld", vc->text, (long long)got,
                  (long long)vc->want);
    pd_conf_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Errors and warnings: exact output */

struct msg_case {
    const char *text;
    int ok;                 /* 1: loads (warnings only) */
    const char *want;       /* exact messages */
};

/* The sentences of src/conf.c's classes, as the messages must carry them. */
#define SQ_PEER_TODO "proxyd peers by cache_peer (parents and siblings) and cache_peer_access " \
    "only; rewrite the line as cache_peer_access ACLs"
#define SQ_REWRITE_TODO "proxyd runs url_rewrite_program and store_id_program with their " \
    "program, children, access and bypass lines only, and Squid's default extras; remove the " \
    "line if the helper does without it, or keep Squid"
#define SQ_HEADERS_TODO "proxyd has no header rules yet, so the headers would pass unchanged; " \
    "remove the line only if that is acceptable"
#define SQ_OUTGOING_TODO "proxyd connects from the system's default source address without TOS or " \
    "netfilter marks, so routing and firewall rules keyed on them would not match; remove the " \
    "line only if that is acceptable"
#define SQ_POOLS_TODO "proxyd has no delay pools, so the traffic would not be slowed; shape it " \
    "outside proxyd (tc) or remove the line"
#define SQ_ADAPT_TODO "proxyd has no ICAP or eCAP adaptation, so content would pass unscanned and " \
    "unchanged; remove the line only if that is acceptable"
#define SQ_TLS_TODO "proxyd neither bumps nor originates TLS, CONNECT is tunnelled unexamined; " \
    "remove the line only if that is acceptable"
#define PORT_TPROXY_TODO "proxyd does not implement TPROXY (spoofing the client's address " \
    "towards the origin); use `intercept` with a NAT REDIRECT or DNAT rule instead"
#define PORT_ACCEL_TODO "proxyd is a forward proxy only, not an accelerator (reverse proxy)"
#define PORT_TLS_TODO "proxyd neither bumps nor terminates TLS on http_port, CONNECT is " \
    "tunnelled unexamined; remove the option only if that is acceptable"
#define PORT_PROXY_TODO "proxyd does not read the PROXY protocol header, so the sender would be " \
    "taken for the client; remove the option and connect clients directly"

static const struct msg_case msg_cases[] = {
    { "foo_bar 1", 0, "t.conf:1: unknown directive 'foo_bar'\n" },
    /* Squid's macros: per-worker lines cannot be honoured (one shared configuration) */
    { "if ${process_number} = 1\nworkers 2\nendif\nhttp_port 3128", 0,
      "t.conf:1: ${process_number}: proxyd's workers share one configuration, so a line cannot "
      "differ per worker; write the line for all of them (they share the cache and the ports) "
      "or remove it\n" },
    { "access_log /var/log/${process_name}.log", 0,
      "t.conf:1: ${process_name}: proxyd's workers share one configuration, so a line cannot "
      "differ per worker; write the line for all of them (they share the cache and the ports) "
      "or remove it\n" },
    { "\n\n# x\nHTTP_PORT 3128", 0, "t.conf:4: unknown directive 'HTTP_PORT'\n" },
    { "coredump_dir /var/spool/squid", 1,
      "t.conf:1: warning: squid directive 'coredump_dir' is not supported by proxyd; ignored\n" },
    { "cache_dir ufs /var/spool/squid 100 16 256\nrefresh_all_ims on\nhierarchy_stoplist cgi-bin ?\n"
      "dns_v4_first on\nhttpd_suppress_version_string off", 1,
      "t.conf:1: warning: squid directive 'cache_dir' is not supported by proxyd; ignored\n"
      "t.conf:2: warning: squid directive 'refresh_all_ims' is not supported by proxyd; ignored\n"
      "t.conf:3: warning: squid directive 'hierarchy_stoplist' is not supported by proxyd; ignored\n"
      "t.conf:4: warning: squid directive 'dns_v4_first' is not supported by proxyd; ignored\n"
      "t.conf:5: warning: squid directive 'httpd_suppress_version_string' is not supported by proxyd; ignored\n" },
    /* what the issue measured: each of these weakened the configuration silently */
    { "cache_peer p parent 3128 0\nnever_direct allow all", 1, "" },
    { "cache_peer_domain p .example.com", 0,
      "t.conf:1: cache_peer_domain is not implemented by proxyd: " SQ_PEER_TODO "\n" },
    { "url_rewrite_program /usr/bin/squidGuard\nurl_rewrite_children 5", 1, "" },
    { "url_rewrite_program squidGuard\nurl_rewrite_children 5 bogus=1\nstore_id_extras %>a", 0,
      "t.conf:1: url_rewrite_program: expected an absolute path and its arguments\n"
      "t.conf:2: url_rewrite_children: unknown option 'bogus=1'\n"
      "t.conf:3: store_id_extras is not implemented by proxyd: " SQ_REWRITE_TODO "\n" },
    { "store_id_program /usr/lib/squid/storeid_file_rewrite /etc/r\nstore_id_children 5 "
      "startup=1 concurrency=4\nstore_id_access deny all\nstore_id_bypass off", 1, "" },
    { "store_id_program storeid\nstore_id_children 0", 0,
      "t.conf:1: store_id_program: expected an absolute path and its arguments\n"
      "t.conf:2: store_id_children: expected a number of children (1-10000)\n" },
    { "header_access Referer deny all", 0,
      "t.conf:1: header_access is not implemented by proxyd: " SQ_HEADERS_TODO "\n" },
    { "tcp_outgoing_tos 0x20", 0,
      "t.conf:1: tcp_outgoing_tos is not implemented by proxyd: " SQ_OUTGOING_TODO "\n" },
    { "delay_pools 1", 0, "t.conf:1: delay_pools is not implemented by proxyd: " SQ_POOLS_TODO "\n" },
    { "reply_body_max_size", 0,
      "t.conf:1: reply_body_max_size: expected at least 1 argument\n" },
    { "request_header_replace User-Agent", 0,
      "t.conf:1: request_header_replace: expected NAME TEXT\n" },
    { "client_ip_max_connections 10", 0,
      "t.conf:1: client_ip_max_connections is not implemented by proxyd: limit clients with "
      "`acl NAME maxconn N` and `http_access deny NAME`\n" },
    /* a harmless value is a warning; words compared case-insensitively */
    { "delay_pools 0\nicap_enable OFF\nclient_netmask 255.255.255.255", 1,
      "t.conf:1: warning: squid directive 'delay_pools' is not supported by proxyd; ignored\n"
      "t.conf:2: warning: squid directive 'icap_enable' is not supported by proxyd; ignored\n"
      "t.conf:3: warning: squid directive 'client_netmask' is not supported by proxyd; ignored\n" },
    { "icap_enable on", 0, "t.conf:1: icap_enable is not implemented by proxyd: " SQ_ADAPT_TODO "\n" },
    { "icap_enable off extra", 0,
      "t.conf:1: icap_enable is not implemented by proxyd: " SQ_ADAPT_TODO "\n" },
    /* Squid's old names of implemented directives are those directives */
    { "no_cache deny all\ncache_access_log none", 1, "" },
    /* every error is reported, warnings among them, in file order */
    { "coredump_dir /x\nauth_param digest program /x\nworkers x\nssl_bump peek all\nlogfile_rotate 0", 0,
      "t.conf:1: warning: squid directive 'coredump_dir' is not supported by proxyd; ignored\n"
      "t.conf:2: auth_param: scheme 'digest' is refused: proxyd authenticates with basic "
      "only, and clients it would authenticate must not pass without\n"
      "t.conf:3: workers: 'x' is not a non-negative integer\n"
      "t.conf:4: ssl_bump is not implemented by proxyd: " SQ_TLS_TODO "\n"
      "t.conf:5: warning: squid directive 'logfile_rotate' is not supported by proxyd; ignored\n" },
    /* all errors of a file are reported, with their own line numbers */
    { "cache_mem lots\nvia maybe\nworkers -1\nbogus\nworkers 2000", 0,
      "t.conf:1: cache_mem: 'lots' is not a size\n"
      "t.conf:2: via: expected on or off, not 'maybe'\n"
      "t.conf:3: workers: '-1' is not a non-negative integer\n"
      "t.conf:4: unknown directive 'bogus'\n"
      "t.conf:5: workers: value too large (at most 32)\n" },
    /* a continued line is reported at its first line; the next line counts on */
    { "acl a src \\\n 10.0.0.0/8\nnope", 0, "t.conf:3: unknown directive 'nope'\n" },
    { "cache_mem 10 TB", 0, "t.conf:1: cache_mem: unknown unit 'TB'\n" },
    { "cache_mem 10 MB extra", 0, "t.conf:1: cache_mem: too many arguments\n" },
    { "cache_mem", 0, "t.conf:1: cache_mem: missing value\n" },
    { "cache_mem 99999999999999999999", 0, "t.conf:1: cache_mem: '99999999999999999999' is not a size\n" },
    { "cache_mem 17179869184 GB", 0, "t.conf:1: cache_mem: value too large\n" },
    { "connect_timeout 5 parsecs", 0, "t.conf:1: connect_timeout: unknown unit 'parsecs'\n" },
    { "connect_timeout 5 sec", 0, "t.conf:1: connect_timeout: unknown unit 'sec'\n" },
    { "connect_timeout soon", 0, "t.conf:1: connect_timeout: 'soon' is not a time\n" },
    { "dns_timeout 1500 milliseconds", 0, "t.conf:1: dns_timeout: must be a whole number of seconds\n" },
    { "request_header_max_size 100 bytes", 0,
      "t.conf:1: request_header_max_size: value too small (at least 1024)\n" },
    { "via", 0, "t.conf:1: via: missing value\n" },
    { "via on off", 0, "t.conf:1: via: too many arguments\n" },
    { "forwarded_for sometimes", 0,
      "t.conf:1: forwarded_for: expected on, off, transparent, delete or truncate, not 'sometimes'\n" },
    { "visible_hostname", 0, "t.conf:1: visible_hostname: missing value\n" },
    { "max_client_connections 0", 0, "t.conf:1: max_client_connections: value too small (at least 1)\n" },
    { "acl onlyname", 0, "t.conf:1: acl: expected NAME TYPE [values...]\n" },
    { "http_access", 0, "t.conf:1: http_access: expected at least 1 argument\n" },
    { "refresh_pattern . 0 20%", 0, "t.conf:1: refresh_pattern: expected at least 4 arguments\n" },
    { "deny_info ERR_X", 0, "t.conf:1: deny_info: expected at least 2 arguments\n" },
    { "logformat onlyname", 0, "t.conf:1: logformat: expected NAME FORMAT\n" },
    { "acl x src \"unterminated", 0, "t.conf:1: unterminated quoted string\n" },
    { "http_port", 0, "t.conf:1: http_port: missing address\n" },
    { "http_port 70000", 0, "t.conf:1: http_port: bad port '70000'\n" },
    { "http_port 1.2.3.4:", 0, "t.conf:1: http_port: bad port ''\n" },
    { "http_port ::1:3128", 0, "t.conf:1: http_port: bad address '::1:3128' (write IPv6 as [addr]:port)\n" },
    { "http_port [::1]3128", 0, "t.conf:1: http_port: bad address '[::1]3128' (expected [IPv6]:port)\n" },
    { "http_port [zz::1]:3128", 0, "t.conf:1: http_port: bad IPv6 address 'zz::1'\n" },
    { "http_port 3128 frobnicate", 0, "t.conf:1: http_port: unknown option 'frobnicate'\n" },
    { "http_port 3128\nhttp_port 0.0.0.0:3128", 0,
      "t.conf:2: http_port: 0.0.0.0:3128 is already configured\n" },
    { "http_port 3128 name=x tcpkeepalive=60,30,3", 1,
      "t.conf:1: warning: http_port: option 'name=x' is not supported by proxyd; ignored\n"
      "t.conf:1: warning: http_port: option 'tcpkeepalive=60,30,3' is not supported by proxyd; ignored\n" },
    /* intercept (and its old name transparent) is implemented, on http_port only */
    { "http_port 3130 intercept", 1, "" },
    { "http_port 3128 transparent name=x", 1,
      "t.conf:1: warning: http_port: option 'name=x' is not supported by proxyd; ignored\n" },
    { "admin_port 127.0.0.1:3131 intercept", 0,
      "t.conf:1: admin_port: option 'intercept' is for http_port only\n" },
    /* a port mode changes what the port does with traffic: errors */
    { "http_port 3129 tproxy", 0,
      "t.conf:1: http_port: option 'tproxy' is not implemented by proxyd: " PORT_TPROXY_TODO "\n" },
    { "http_port 80 accel defaultsite=www.example.com", 0,
      "t.conf:1: http_port: option 'accel' is not implemented by proxyd: " PORT_ACCEL_TODO "\n"
      "t.conf:1: http_port: option 'defaultsite=www.example.com' is not implemented by proxyd: "
      PORT_ACCEL_TODO "\n" },
    { "http_port 3128 ssl-bump tls-cert=/etc/c.pem", 0,
      "t.conf:1: http_port: option 'ssl-bump' is not implemented by proxyd: " PORT_TLS_TODO "\n"
      "t.conf:1: http_port: option 'tls-cert=/etc/c.pem' is not implemented by proxyd: "
      PORT_TLS_TODO "\n" },
    { "http_port 3128 require-proxy-header", 0,
      "t.conf:1: http_port: option 'require-proxy-header' is not implemented by proxyd: "
      PORT_PROXY_TODO "\n" },
    { "dns_nameservers 1.2.3.4 dns.example", 0,
      "t.conf:1: dns_nameservers: 'dns.example' is not an IP address\n" },
    { "dns_nameservers 1.2.3.4:99999", 0, "t.conf:1: dns_nameservers: bad port in '1.2.3.4:99999'\n" },
    { "dns_nameservers 1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9", 0,
      "t.conf:1: dns_nameservers: too many name servers (at most 8)\n" },
    { "access_log", 0, "t.conf:1: access_log: missing destination\n" },
    { "access_log stdio:", 0, "t.conf:1: access_log: empty path in 'stdio:'\n" },
    { "access_log /var/log/a.log nosuchformat", 0,
      "t.conf:1: access_log: unknown logformat 'nosuchformat'\n" },
    { "access_log foo:bar", 0, "t.conf:1: access_log: unknown logging module in 'foo:bar'\n" },
    { "access_log pipe:/usr/bin/x", 0,
      "t.conf:1: access_log: unknown logging module in 'pipe:/usr/bin/x'\n" },
    { "access_log /var/log/a.log bogus=1", 0, "t.conf:1: access_log: unknown option 'bogus=1'\n" },
    { "access_log daemon:/var/log/a.log squid", 1,
      "t.conf:1: warning: access_log: daemon: logging is done by proxyd itself, as stdio:\n" },
    /* logs that would silently hold other requests, or none: errors */
    { "access_log syslog:daemon.info", 0,
      "t.conf:1: access_log: module 'syslog' is not implemented by proxyd: log to a file or "
      "stdout (stdio:PATH) and ship that with the system's log forwarder\n" },
    { "access_log udp://10.0.0.1:514", 0,
      "t.conf:1: access_log: module 'udp' is not implemented by proxyd: log to a file or "
      "stdout (stdio:PATH) and ship that with the system's log forwarder\n" },
    { "access_log /var/log/a.log squid localnet", 0,
      "t.conf:1: access_log: acl conditions are not implemented by proxyd: every request would "
      "be logged; remove them, or keep Squid if some requests must not be\n" },
    { "access_log /a.log\naccess_log /b.log", 0,
      "t.conf:2: access_log: a second access log is not implemented by proxyd: keep one "
      "access_log line\n" },
    { "access_log /a.log referrer", 1,
      "t.conf:1: warning: access_log: format 'referrer' is not supported by proxyd; using squid\n" },
    { "access_log /a.log buffer-size=64KB", 1,
      "t.conf:1: warning: access_log: option 'buffer-size' is not supported by proxyd; ignored\n" },
    { "maximum_object_size 1 MB\nmaximum_object_size_in_memory 2 MB", 1,
      "t.conf:2: warning: maximum_object_size_in_memory: larger than maximum_object_size "
      "(1048576 bytes); lowered to it\n" },
    { "endif", 0, "t.conf:1: 'endif' without 'if'\n" },
    { "workers 1\nelse", 0, "t.conf:2: 'else' without 'if'\n" },
    { "if true\nworkers 1\nif false\nendif", 0, "t.conf:1: 'if' without 'endif'\n" },
    { "if maybe\nendif", 0, "t.conf:1: if: expected true, false or INTEGER = INTEGER\n" },
    { "if true\nelse\nelse\nendif", 0, "t.conf:3: 'else' after 'else'\n" },
    { "include", 0, "t.conf:1: include: missing file name\n" },
    { "include /nonexistent/proxyd-test.conf", 0,
      "t.conf:1: include: cannot open '/nonexistent/proxyd-test.conf': No such file or directory\n" },
    { "include /dev/null", 0, "t.conf:1: include: '/dev/null' is not a regular file\n" },
    { "include /", 0, "t.conf:1: include: '/' is a directory\n" },
    /* an empty wildcard is not an error (like an empty conf.d/) */
    { "include /nonexistent-dir-proxyd/*.conf", 1, "" },
};

/* ${service_name} is proxyd, wherever it appears in a line. */
START_TEST(service_name_macro)
{
    pd_conf *c = load_ok("pid_filename /run/${service_name}/${service_name}.pid");
    ck_assert_str_eq(c->pid_filename, "/run/proxyd/proxyd.pid");
    pd_conf_free(c);
}
END_TEST

START_TEST(messages)
{
    const struct msg_case *mc = &msg_cases[_i];
    char *msgs;
    pd_conf *c = load_msgs("t.conf", mc->text, &msgs);
    ck_assert_msg((c != NULL) == mc->ok, "<%s>: load %s; output: %s", mc->text,
                  c ? "succeeded" : "failed", msgs);
    ck_assert_str_eq(msgs, mc->want);
    if (c) {
        int lines = 0;
        for (const char *p = msgs; *p; p++)
            lines += *p == '\n';
        ck_assert_int_eq(c->n_warnings, lines);
    }
    pd_conf_free(c);
    free(msgs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* http_port forms */

struct port_case {
    const char *text;
    int family;
    const char *want_text;
    int port;
};

static const struct port_case port_cases[] = {
    { "http_port 3128", AF_INET, "0.0.0.0:3128", 3128 },
    { "http_port 127.0.0.1:3128", AF_INET, "127.0.0.1:3128", 3128 },
    { "http_port [::1]:3128", AF_INET6, "[::1]:3128", 3128 },
    { "http_port [::]:8080", AF_INET6, "[::]:8080", 8080 },
    { "http_port 0", AF_INET, "0.0.0.0:0", 0 },
    { "http_port 127.0.0.1:0", AF_INET, "127.0.0.1:0", 0 },
    { "http_port localhost:3130", 0, NULL, 3130 },
    { "ascii_port 3131", AF_INET, "0.0.0.0:3131", 3131 },
    { "admin_port 127.0.0.1:9000", AF_INET, "127.0.0.1:9000", 9000 },
};

START_TEST(port_forms)
{
    const struct port_case *pc = &port_cases[_i];
    pd_conf *c = load_ok(pc->text);
    int admin = strncmp(pc->text, "admin_port", 10) == 0;
    const pd_listen_addr *a = admin ? &c->admin_port[0] : &c->http_port[0];
    ck_assert_int_eq(admin ? c->n_admin_port : c->n_http_port, 1);
    if (admin)
        ck_assert_str_eq(c->http_port[0].text, "0.0.0.0:3128"); /* default still there */
    if (pc->family)
        ck_assert_int_eq(a->ss.ss_family, pc->family);
    if (pc->want_text)
        ck_assert_str_eq(a->text, pc->want_text);
    if (a->ss.ss_family == AF_INET) {
        ck_assert_int_eq(a->len, sizeof(struct sockaddr_in));
        ck_assert_int_eq(ntohs(((const struct sockaddr_in *)&a->ss)->sin_port), pc->port);
    } else {
        ck_assert_int_eq(a->ss.ss_family, AF_INET6);
        ck_assert_int_eq(a->len, sizeof(struct sockaddr_in6));
        ck_assert_int_eq(ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port), pc->port);
    }
    pd_conf_free(c);
}
END_TEST

START_TEST(several_ports_replace_default)
{
    pd_conf *c = load_ok("http_port 127.0.0.1:0\nhttp_port 127.0.0.1:0\nhttp_port [::1]:3128\n");
    ck_assert_int_eq(c->n_http_port, 3);
    ck_assert_str_eq(c->http_port[0].text, "127.0.0.1:0");
    ck_assert_str_eq(c->http_port[1].text, "127.0.0.1:0");
    ck_assert_str_eq(c->http_port[2].text, "[::1]:3128");
    pd_conf_free(c);

    /* at most PD_CONF_MAX_PORTS */
    char text[2048] = "";
    for (int i = 0; i <= PD_CONF_MAX_PORTS; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "http_port %d\n", 4000 + i);
    char *msgs;
    c = load_msgs("t.conf", text, &msgs);
    ck_assert_ptr_null(c);
    char want[128];
    snprintf(want, sizeof(want), "t.conf:%d: http_port: too many ports (at most %d)\n",
             PD_CONF_MAX_PORTS + 1, PD_CONF_MAX_PORTS);
    ck_assert_str_eq(msgs, want);
    free(msgs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Raw lines */

START_TEST(raw_lines_keep_words_and_positions)
{
    pd_conf *c = load_ok(
        "acl localnet src 10.0.0.0/8 # comment\n"
        "acl files dstdomain \"/etc/proxyd/blocked domains\"\n"
        "acl Safe_ports port 80 \\\n"
        "   443\n"
        "http_access deny !Safe_ports\n"
        "http_access allow localnet\n"
        "cache deny all\n"
        "refresh_pattern -i \\.gif$ 1440 20% 10080 ignore-reload\n"
        "deny_info ERR_ACCESS_DENIED files\n"
        "logformat mine  %ts.%03tu %>a \"%{User-Agent}>h\"   # not a comment\n"
        "access_log stdio:/var/log/p.log logformat=mine\n");
    ck_assert_uint_eq(c->acl.n, 3);
    const pd_conf_line *l = &c->acl.v[0];
    ck_assert_str_eq(l->file, "t.conf");
    ck_assert_int_eq(l->line, 1);
    ck_assert_int_eq(l->argc, 3);
    ck_assert_str_eq(l->argv[0], "localnet");
    ck_assert_str_eq(l->argv[2], "10.0.0.0/8");
    ck_assert_ptr_null(l->argv[3]);
    /* acl: a quoted word stays quoted so acl.c knows it names a file */
    l = &c->acl.v[1];
    ck_assert_int_eq(l->line, 2);
    ck_assert_int_eq(l->argc, 3);
    ck_assert_str_eq(l->argv[2], "\"/etc/proxyd/blocked domains\"");
    l = &c->acl.v[2];
    ck_assert_int_eq(l->line, 3);
    ck_assert_int_eq(l->argc, 4);
    ck_assert_str_eq(l->argv[3], "443");

    ck_assert_uint_eq(c->http_access.n, 2);
    ck_assert_int_eq(c->http_access.v[0].line, 5);
    ck_assert_str_eq(c->http_access.v[0].argv[0], "deny");
    ck_assert_str_eq(c->http_access.v[0].argv[1], "!Safe_ports");
    ck_assert_uint_eq(c->cache_rules.n, 1);
    ck_assert_str_eq(c->cache_rules.v[0].argv[1], "all");
    ck_assert_uint_eq(c->refresh_pattern.n, 1);
    ck_assert_int_eq(c->refresh_pattern.v[0].argc, 6);
    ck_assert_str_eq(c->refresh_pattern.v[0].argv[1], "\\.gif$");
    ck_assert_uint_eq(c->deny_info.n, 1);
    ck_assert_str_eq(c->deny_info.v[0].argv[0], "ERR_ACCESS_DENIED");

    /* logformat: name, then the rest of the line as written (trimmed) */
    ck_assert_uint_eq(c->logformat.n, 1);
    ck_assert_int_eq(c->logformat.v[0].argc, 2);
    ck_assert_str_eq(c->logformat.v[0].argv[0], "mine");
    ck_assert_str_eq(c->logformat.v[0].argv[1],
                     "%ts.%03tu %>a \"%{User-Agent}>h\"   # not a comment");
    ck_assert_str_eq(c->access_log, "/var/log/p.log");
    ck_assert_str_eq(c->access_log_format_name, "mine");
    pd_conf_free(c);
}
END_TEST

START_TEST(quoted_words_elsewhere_lose_quotes)
{
    pd_conf *c = load_ok("visible_hostname \"proxy one\"\nhosts_file \"/etc/my \\\"hosts\\\"\"\n");
    ck_assert_str_eq(c->visible_hostname, "proxy one");
    ck_assert_str_eq(c->hosts_file, "/etc/my \"hosts\"");
    pd_conf_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* access_log forms */

struct alog_case {
    const char *text;
    const char *path;       /* NULL = none */
    enum pd_log_format fmt;
    const char *fmt_name;
};

static const struct alog_case alog_cases[] = {
    { "access_log none", NULL, PD_LOG_SQUID, NULL },
    { "access_log /var/log/proxyd/access.log", "/var/log/proxyd/access.log", PD_LOG_SQUID, NULL },
    { "access_log /var/log/a.log common", "/var/log/a.log", PD_LOG_COMMON, NULL },
    { "access_log stdio:/var/log/a.log combined", "/var/log/a.log", PD_LOG_COMBINED, NULL },
    { "access_log stdio:/dev/stdout", "stdout", PD_LOG_SQUID, NULL },
    { "access_log /dev/stderr squid", "stderr", PD_LOG_SQUID, NULL },
    { "access_log stdout", "stdout", PD_LOG_SQUID, NULL },
    { "access_log stderr common", "stderr", PD_LOG_COMMON, NULL },
    { "access_log stdio:/l.log logformat=combined", "/l.log", PD_LOG_COMBINED, NULL },
    { "logformat short %ts %>a\naccess_log /l.log short", "/l.log", PD_LOG_SQUID, "short" },
    /* the logformat may come after the access_log line */
    { "access_log /l.log logformat=late\nlogformat late %ts", "/l.log", PD_LOG_SQUID, "late" },
};

START_TEST(access_log_forms)
{
    const struct alog_case *ac = &alog_cases[_i];
    pd_conf *c = load_ok(ac->text);
    if (ac->path)
        ck_assert_str_eq(c->access_log, ac->path);
    else
        ck_assert_ptr_null(c->access_log);
    ck_assert_int_eq(c->access_log_format, ac->fmt);
    if (ac->fmt_name)
        ck_assert_str_eq(c->access_log_format_name, ac->fmt_name);
    else
        ck_assert_ptr_null(c->access_log_format_name);
    pd_conf_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Strings, paths, name servers, the memory object size */

START_TEST(strings_and_paths)
{
    pd_conf *c = load_ok("cache_log /var/log/proxyd/cache.log\npid_filename /run/proxyd.pid\n"
                         "visible_hostname proxy.example.net\nhosts_file none\n");
    ck_assert_str_eq(c->cache_log, "/var/log/proxyd/cache.log");
    ck_assert_str_eq(c->pid_filename, "/run/proxyd.pid");
    ck_assert_str_eq(c->visible_hostname, "proxy.example.net");
    ck_assert_str_eq(c->hosts_file, "none");
    pd_conf_free(c);

    c = load_ok("pid_filename /run/x.pid\npid_filename none\ncache_log /dev/stderr\n");
    ck_assert_ptr_null(c->pid_filename);
    ck_assert_ptr_null(c->cache_log);
    pd_conf_free(c);
}
END_TEST

START_TEST(nameservers)
{
    pd_conf *c = load_ok("dns_nameservers 127.0.0.1:5353 10.0.0.1\ndns_nameservers ::1 [::1]:5353\n");
    ck_assert_int_eq(c->n_dns_nameservers, 4);
    ck_assert_str_eq(c->dns_nameservers[0], "127.0.0.1:5353");
    ck_assert_str_eq(c->dns_nameservers[1], "10.0.0.1");
    ck_assert_str_eq(c->dns_nameservers[2], "::1");
    ck_assert_str_eq(c->dns_nameservers[3], "[::1]:5353");
    pd_conf_free(c);
}
END_TEST

START_TEST(memory_object_size_follows_maximum)
{
    pd_conf *c = load_ok("maximum_object_size 8 MB\n");
    ck_assert_uint_eq(c->maximum_object_size_in_memory, 8 << 20);
    pd_conf_free(c);
    /* set below the maximum: kept, in either order */
    c = load_ok("maximum_object_size_in_memory 100 KB\nmaximum_object_size 8 MB\n");
    ck_assert_uint_eq(c->maximum_object_size_in_memory, 100 << 10);
    pd_conf_free(c);
    /* set above: clamped with a warning */
    char *msgs;
    c = load_msgs("t.conf", "maximum_object_size_in_memory 4 MB\nmaximum_object_size 2 MB\n", &msgs);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->maximum_object_size_in_memory, 2 << 20);
    ck_assert_int_eq(c->n_warnings, 1);
    ck_assert_str_eq(msgs, "t.conf:1: warning: maximum_object_size_in_memory: larger than "
                           "maximum_object_size (2097152 bytes); lowered to it\n");
    pd_conf_free(c);
    free(msgs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Includes (files in a private temporary directory) */

static char tmpdir[PATH_MAX];

static void write_file(const char *rel, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void make_tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/check_conf.XXXXXX", t && *t ? t : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[PATH_MAX + 300];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static pd_conf *load_file_msgs(const char *rel, char **msgs)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
    size_t len;
    FILE *f = open_memstream(msgs, &len);
    pd_conf *c = pd_conf_load(path, f);
    fclose(f);
    return c;
}

/* Replace every tmpdir prefix in s by "D" so expected messages are fixed text. */
static char *relativise(const char *s)
{
    size_t n = strlen(tmpdir);
    char *out = malloc(strlen(s) + 1), *o = out;
    while (*s) {
        if (!strncmp(s, tmpdir, n)) {
            *o++ = 'D';
            s += n;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

START_TEST(include_glob_relative_nested)
{
    make_tmpdir();
    char sub[PATH_MAX + 16];
    snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    write_file("main.conf", "http_port 127.0.0.1:0\ninclude conf.d/*.conf\nworkers 7\n");
    write_file("conf.d/10-acl.conf", "acl a src 10.0.0.0/8\ninclude ../more/*.conf\n");
    write_file("conf.d/20-cache.conf", "cache_mem 1 MB\ncoredump_dir /tmp\n");
    write_file("conf.d/ignored.txt", "bogus directive\n");
    snprintf(sub, sizeof(sub), "%s/more", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    write_file("more/x.conf", "acl b src 192.168.0.0/16\n");

    char *msgs;
    pd_conf *c = load_file_msgs("main.conf", &msgs);
    ck_assert_msg(c != NULL, "%s", msgs);
    char *rel = relativise(msgs);
    ck_assert_str_eq(rel, "D/conf.d/20-cache.conf:2: warning: squid directive 'coredump_dir' "
                          "is not supported by proxyd; ignored\n");
    free(rel);
    ck_assert_int_eq(c->workers, 7);
    ck_assert_uint_eq(c->cache_mem, 1 << 20);
    ck_assert_uint_eq(c->acl.n, 2);
    ck_assert_str_eq(c->acl.v[0].argv[0], "a");
    ck_assert_int_eq(c->acl.v[0].line, 1);
    rel = relativise(c->acl.v[0].file);
    ck_assert_str_eq(rel, "D/conf.d/10-acl.conf");
    free(rel);
    ck_assert_str_eq(c->acl.v[1].argv[0], "b");
    rel = relativise(c->acl.v[1].file);
    ck_assert_str_eq(rel, "D/conf.d/../more/x.conf");
    free(rel);
    pd_conf_free(c);
    free(msgs);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(include_errors_keep_going)
{
    make_tmpdir();
    write_file("main.conf", "include inc.conf\nworkers x\n");
    write_file("inc.conf", "via on\n\nbad_one\ncache_mem 1 XB\n");
    char *msgs;
    pd_conf *c = load_file_msgs("main.conf", &msgs);
    ck_assert_ptr_null(c);
    char *rel = relativise(msgs);
    ck_assert_str_eq(rel, "D/inc.conf:3: unknown directive 'bad_one'\n"
                          "D/inc.conf:4: cache_mem: unknown unit 'XB'\n"
                          "D/main.conf:2: workers: 'x' is not a non-negative integer\n");
    free(rel);
    free(msgs);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(include_loop_detected)
{
    make_tmpdir();
    write_file("a.conf", "include b.conf\n");
    write_file("b.conf", "workers 1\ninclude a.conf\n");
    char *msgs;
    pd_conf *c = load_file_msgs("a.conf", &msgs);
    ck_assert_ptr_null(c);
    char *rel = relativise(msgs);
    ck_assert_str_eq(rel, "D/b.conf:2: include: 'D/a.conf' includes itself (include loop)\n");
    free(rel);
    free(msgs);
    /* a file including itself */
    write_file("self.conf", "include self.conf\n");
    c = load_file_msgs("self.conf", &msgs);
    ck_assert_ptr_null(c);
    rel = relativise(msgs);
    ck_assert_str_eq(rel, "D/self.conf:1: include: 'D/self.conf' includes itself (include loop)\n");
    free(rel);
    free(msgs);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(include_depth_limited)
{
    make_tmpdir();
    /* 20 distinct files in a chain: no loop, but deeper than 16 */
    for (int i = 0; i < 20; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "f%02d.conf", i);
        snprintf(text, sizeof(text), "include f%02d.conf\n", i + 1);
        write_file(name, i == 19 ? "workers 1\n" : text);
    }
    char *msgs;
    pd_conf *c = load_file_msgs("f00.conf", &msgs);
    ck_assert_ptr_null(c);
    char *rel = relativise(msgs);
    ck_assert_str_eq(rel, "D/f15.conf:1: include: 'D/f16.conf': nested deeper than 16 levels\n");
    free(rel);
    free(msgs);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(include_from_string_is_relative_to_name)
{
    make_tmpdir();
    write_file("part.conf", "workers 5\n");
    char name[PATH_MAX + 32];
    snprintf(name, sizeof(name), "%s/virtual.conf", tmpdir);
    pd_conf *c = pd_conf_load_string(name, "include part.conf\n", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->workers, 5);
    pd_conf_free(c);
    remove_tree(tmpdir);
}
END_TEST

START_TEST(load_missing_file)
{
    char *msgs;
    size_t len;
    FILE *f = open_memstream(&msgs, &len);
    pd_conf *c = pd_conf_load("/nonexistent/proxyd.conf", f);
    fclose(f);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(msgs, "/nonexistent/proxyd.conf: cannot open: No such file or directory\n");
    free(msgs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Shipped and foreign configurations */

START_TEST(every_shipped_conf_loads_cleanly)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC is not set (run through ctest)");
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/conf", src);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot open %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".conf"))
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *msgs;
        size_t len;
        FILE *f = open_memstream(&msgs, &len);
        pd_conf *c = pd_conf_load(path, f);
        fclose(f);
        ck_assert_msg(c != NULL, "%s: %s", path, msgs);
        ck_assert_msg(msgs[0] == '\0', "%s: unexpected output: %s", path, msgs);
        ck_assert_int_eq(c->n_warnings, 0);
        if (!strcmp(e->d_name, "proxy.conf")) {
            /* safe by default: ends with deny all, CONNECT only to SSL_ports */
            ck_assert_uint_ge(c->http_access.n, 3);
            const pd_conf_line *last = &c->http_access.v[c->http_access.n - 1];
            ck_assert_int_eq(last->argc, 2);
            ck_assert_str_eq(last->argv[0], "deny");
            ck_assert_str_eq(last->argv[1], "all");
            ck_assert_int_eq(c->n_http_port, 1);
            ck_assert_str_eq(c->http_port[0].text, "0.0.0.0:3128");
            ck_assert_int_eq(c->workers, 0);
            ck_assert_uint_eq(c->cache_mem, 260 << 20);
            ck_assert_uint_eq(c->maximum_object_size, 1024 << 10);
        }
        pd_conf_free(c);
        free(msgs);
        n++;
    }
    closedir(d);
    ck_assert_int_ge(n, 1);
}
END_TEST

START_TEST(debian_stock_squid_conf_loads_with_warnings_only)
{
    const char *path = "/etc/squid/squid.conf";
    if (access(path, R_OK) != 0) {
        printf("check_conf: SKIP debian_stock_squid_conf: %s not found "
               "(apt-get install squid to run this test)\n", path);
        return;
    }
    char *msgs;
    size_t len;
    FILE *f = open_memstream(&msgs, &len);
    pd_conf *c = pd_conf_load(path, f);
    fclose(f);
    ck_assert_msg(c != NULL, "stock squid.conf failed: %s", msgs);
    /* every line of output is a warning */
    int lines = 0;
    for (char *p = msgs, *nl; *p; p = nl + 1) {
        nl = strchr(p, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        ck_assert_msg(strstr(p, ": warning: ") != NULL, "not a warning: %s", p);
        lines++;
    }
    ck_assert_int_eq(c->n_warnings, lines);
    ck_assert_int_ge(c->n_warnings, 1); /* coredump_dir at least */
    ck_assert_int_eq(c->n_http_port, 1);
    ck_assert_str_eq(c->http_port[0].text, "0.0.0.0:3128");
    ck_assert_uint_ge(c->acl.n, 10);
    ck_assert_uint_ge(c->http_access.n, 4);
    ck_assert_uint_ge(c->refresh_pattern.n, 1);
    pd_conf_free(c);
    free(msgs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The reference */

/* noinline: gcc -O2 otherwise takes the memstream buffer for a local (-Wdangling-pointer) */
__attribute__((noinline)) static char *reference(void)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    pd_conf_print_reference(f);
    fclose(f);
    return buf;
}

START_TEST(reference_lists_every_directive)
{
    char *ref = reference();
    static const char *const names[] = {
        "http_port", "admin_port", "workers", "cache_mem", "maximum_object_size",
        "maximum_object_size_in_memory", "memory_replacement_policy", "tunnel_splice", "hit_sendfile",
        "max_stale",
        "collapsed_forwarding",
        "x_cache_header", "acl",
        "http_access", "cache",
        "refresh_pattern", "deny_info", "logformat", "external_acl_type", "url_rewrite_program",
        "url_rewrite_children", "url_rewrite_access", "url_rewrite_cache_ttl", "url_rewrite_timeout",
        "url_rewrite_cache_size", "url_rewrite_bypass", "store_id_program",
        "store_id_children", "store_id_access", "store_id_bypass", "auth_param",
        "access_log", "cache_log", "pid_filename",
        "dns_nameservers", "hosts_file", "positive_dns_ttl", "negative_dns_ttl", "dns_timeout",
        "visible_hostname", "via", "forwarded_for", "request_header_max_size",
        "reply_header_max_size", "request_body_max_size", "connect_timeout", "read_timeout",
        "write_timeout", "request_timeout", "client_idle_pconn_timeout", "pconn_timeout",
        "client_lifetime", "shutdown_lifetime", "forward_timeout",
        "client_persistent_connections", "server_persistent_connections",
        "max_client_connections", "server_pconn_max_idle", "server_pconn_max_per_host",
        "http_reply_access", "miss_access", "follow_x_forwarded_for", "reply_body_max_size",
        "tcp_outgoing_address", "cache_peer", "cache_peer_access", "never_direct",
        "always_direct", "prefer_direct", "nonhierarchical_direct", "forward_max_tries",
        "dead_peer_timeout", "icp_port", "udp_incoming_address", "icp_access",
        "icp_query_timeout", "maximum_icp_query_timeout", "minimum_icp_query_timeout",
        "log_icp_queries", "icp_hit_stale", "unique_hostname", "proxyd_cluster",
        "request_header_access", "reply_header_access",
        "request_header_replace", "reply_header_replace", "request_header_add",
        "reply_header_add",
    };
    int rows = 0;
    for (const char *p = ref; (p = strstr(p, "\n| `")); p++)
        rows++;
    ck_assert_int_eq(rows, (int)(sizeof(names) / sizeof(names[0])));
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char cell[96];
        snprintf(cell, sizeof(cell), "\n| `%s`", names[i]);
        ck_assert_msg(strstr(ref, cell) != NULL, "%s missing from the reference", names[i]);
    }
    ck_assert_ptr_nonnull(strstr(ref, "| `cache_mem` | `260 MB` |"));
    ck_assert_ptr_nonnull(strstr(ref, "| `workers` | `0` |"));
    free(ref);
}
END_TEST

__attribute__((noinline)) static char *squid_list(void)
{
    char *buf;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    pd_conf_print_squid_directives(f);
    fclose(f);
    return buf;
}

/*
 * Every Squid directive, sorted, with its status, and each status true: an
 * implemented one loads, an error is refused with its sentence, a warning
 * loads with the warning; a harmless value named in the row is a warning.
 */
START_TEST(squid_directives_each_as_listed)
{
    char *list = squid_list();
    char prev[64] = "";
    int n = 0, n_err = 0, n_warn = 0, n_impl = 0;
    for (char *line = list, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        *nl = '\0';
        char name[64];
        ck_assert_msg(sscanf(line, "| `%63[^`]` | ", name) == 1, "bad row: %s", line);
        ck_assert_msg(strcmp(prev, name) < 0, "not sorted: %s then %s", prev, name);
        strcpy(prev, name);
        const char *status = strstr(line, "` | ") + 4;
        char text[128], *msgs;
        snprintf(text, sizeof(text), "%s some value", name);
        pd_conf *c = load_msgs("t.conf", text, &msgs);
        if (!strncmp(status, "implemented", 11)) {
            ck_assert_ptr_null(strstr(msgs, "unknown directive"));
            ck_assert_ptr_null(strstr(msgs, "not implemented"));
            ck_assert_ptr_null(strstr(msgs, "not supported"));
            n_impl++;
        } else if (!strncmp(status, "**error**: ", 11)) {
            char want[160];
            snprintf(want, sizeof want, "t.conf:1: %s is not implemented by proxyd: ", name);
            ck_assert_msg(c == NULL, "%s loaded", name);
            ck_assert_msg(!strncmp(msgs, want, strlen(want)), "%s: %s", name, msgs);
            /* the sentence of the list is the message's */
            const char *todo = status + 11, *end = strstr(todo, " (`");
            size_t tl = end ? (size_t)(end - todo) : strlen(todo) - 2;
            ck_assert_msg(!strncmp(msgs + strlen(want), todo, tl), "%s: %s", name, msgs);
            ck_assert_str_eq(msgs + strlen(want) + tl, "\n");
            if (end) {      /* (`name value` is a warning) */
                char harmless[128];
                ck_assert_int_eq(sscanf(end, " (`%127[^`]", harmless), 1);
                pd_conf_free(c);
                free(msgs);
                c = load_msgs("t.conf", harmless, &msgs);
                ck_assert_msg(c != NULL, "%s: %s", harmless, msgs);
                ck_assert_int_eq(c->n_warnings, 1);
            }
            n_err++;
        } else {
            ck_assert_str_eq(status, "warning: ignored |");
            char want[200];
            snprintf(want, sizeof want,
                     "t.conf:1: warning: squid directive '%s' is not supported by proxyd; ignored\n",
                     name);
            ck_assert_ptr_nonnull(c);
            ck_assert_str_eq(msgs, want);
            ck_assert_int_eq(c->n_warnings, 1);
            n_warn++;
        }
        pd_conf_free(c);
        free(msgs);
        n++;
    }
    /* Squid 5's cf.data.pre has 423 names (aliases included) */
    ck_assert_int_ge(n, 423);
    ck_assert_int_ge(n_impl, 40);
    ck_assert_int_ge(n_err, 100);
    ck_assert_int_ge(n_warn, 200);
    free(list);
}
END_TEST

/* The list: each must be an error, never a warning. */
static const char *const must_be_errors[] = {
    "auth_schemes", "cache_peer_domain", "neighbor_type_domain", "url_rewrite_host_header",
    "store_id_extras",
    "icap_service", "adaptation_access", "ecap_service", "ssl_bump", "sslproxy_cert_error",
    "tls_outgoing_options", "tcp_outgoing_tos", "tcp_outgoing_mark", "delay_pools", "delay_access", "client_delay_pools",
    "https_port", "wccp2_router",
};

START_TEST(security_relevant_directives_are_errors)
{
    char text[128], *msgs, want[160];
    snprintf(text, sizeof text, "%s 1", must_be_errors[_i]);
    pd_conf *c = load_msgs("t.conf", text, &msgs);
    snprintf(want, sizeof want, "t.conf:1: %s is not implemented by proxyd: ", must_be_errors[_i]);
    ck_assert_msg(c == NULL, "%s loaded: %s", must_be_errors[_i], msgs);
    ck_assert_msg(!strncmp(msgs, want, strlen(want)), "%s", msgs);
    free(msgs);
}
END_TEST

/* A generated section of a document, between its markers, must be what the table prints. */
static void check_generated(const char *rel, const char *begin, const char *end, const char *gen)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC is not set (run through ctest)");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", src, rel);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing", path);
    char *doc = NULL;
    size_t cap = 0;
    ck_assert_int_gt(getdelim(&doc, &cap, '\0', f), 0);
    fclose(f);
    char *b = strstr(doc, begin), *e = b ? strstr(b, end) : NULL;
    ck_assert_msg(b && e, "%s: markers %s and %s missing", path, begin, end);
    b += strlen(begin);
    const char *regen = getenv("PROXYD_REGEN_DOCS");
    if (regen && !strcmp(regen, "1")) {
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "%.*s%s%s", (int)(b - doc), doc, gen, e);
        fclose(f);
    } else {
        ck_assert_msg(strlen(gen) == (size_t)(e - b) && !strncmp(b, gen, strlen(gen)),
                      "%s is stale: regenerate with PROXYD_REGEN_DOCS=1 ctest -R check_conf", path);
    }
    free(doc);
}

START_TEST(docs_migration_guide_lists_every_directive)
{
    char *list = squid_list();
    char *gen;
    ck_assert_int_ge(asprintf(&gen, "\n| Squid directive | In proxyd |\n| --- | --- |\n%s\n", list), 0);
    check_generated("docs/migrating-from-squid.md", 
                    "<!-- BEGIN squid directives: generated from src/conf.c, "
                    "PROXYD_REGEN_DOCS=1 ctest -R check_conf -->\n",
                    "<!-- END squid directives -->", gen);
    free(gen);
    free(list);
}
END_TEST

/* docs/configuration.md is the reference as generated; PROXYD_REGEN_DOCS=1 rewrites it. */
START_TEST(docs_configuration_md_up_to_date)
{
    const char *src = getenv("PROXYD_SRC");
    ck_assert_msg(src != NULL, "PROXYD_SRC is not set (run through ctest)");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/docs/configuration.md", src);
    char *ref = reference();
    const char *regen = getenv("PROXYD_REGEN_DOCS");
    if (regen && !strcmp(regen, "1")) {
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(ref, f);
        fclose(f);
    }
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "%s missing: run PROXYD_REGEN_DOCS=1 ctest -R check_conf", path);
    char *doc = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&doc, &cap, '\0', f);
    fclose(f);
    ck_assert_int_gt(n, 0);
    ck_assert_msg(strcmp(doc, ref) == 0,
                  "%s is stale: regenerate with PROXYD_REGEN_DOCS=1 ctest -R check_conf", path);
    free(doc);
    free(ref);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults_match_header);
    tcase_add_test(tc, free_null_is_harmless);
    tcase_add_loop_test(tc, values, 0, sizeof(value_cases) / sizeof(value_cases[0]));
    tcase_add_loop_test(tc, messages, 0, sizeof(msg_cases) / sizeof(msg_cases[0]));
    tcase_add_test(tc, service_name_macro);
    tcase_add_loop_test(tc, port_forms, 0, sizeof(port_cases) / sizeof(port_cases[0]));
    tcase_add_test(tc, several_ports_replace_default);
    tcase_add_test(tc, raw_lines_keep_words_and_positions);
    tcase_add_test(tc, quoted_words_elsewhere_lose_quotes);
    tcase_add_loop_test(tc, access_log_forms, 0, sizeof(alog_cases) / sizeof(alog_cases[0]));
    tcase_add_test(tc, strings_and_paths);
    tcase_add_test(tc, nameservers);
    tcase_add_test(tc, memory_object_size_follows_maximum);
    suite_add_tcase(s, tc);

    TCase *inc = tcase_create("include");
    tcase_add_test(inc, include_glob_relative_nested);
    tcase_add_test(inc, include_errors_keep_going);
    tcase_add_test(inc, include_loop_detected);
    tcase_add_test(inc, include_depth_limited);
    tcase_add_test(inc, include_from_string_is_relative_to_name);
    tcase_add_test(inc, load_missing_file);
    suite_add_tcase(s, inc);

    TCase *files = tcase_create("files");
    tcase_set_timeout(files, 30);
    tcase_add_test(files, every_shipped_conf_loads_cleanly);
    tcase_add_test(files, debian_stock_squid_conf_loads_with_warnings_only);
    tcase_add_test(files, reference_lists_every_directive);
    tcase_add_test(files, squid_directives_each_as_listed);
    tcase_add_loop_test(files, security_relevant_directives_are_errors, 0,
                        sizeof(must_be_errors) / sizeof(must_be_errors[0]));
    tcase_add_test(files, docs_migration_guide_lists_every_directive);
    tcase_add_test(files, docs_configuration_md_up_to_date);
    suite_add_tcase(s, files);
    return s;
}

int main(void)
{
    return pd_check_run(conf_suite());
}
