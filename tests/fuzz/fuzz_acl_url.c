/*
 * libFuzzer target for URL normalisation (src/url.c) and ACL matching
 * (src/acl.c). The input is a client address, a local port and a request:
 * a head when it parses, otherwise the raw bytes as the target of a GET. The
 * target is parsed in both forms; a parsed URL must format to a string that
 * parses again to the same string (normalisation is idempotent: two
 * spellings of one resource are one key), and the rules below (every acl
 * type, compiled once from a config text) are evaluated for it, with a
 * destination address when a `dst` acl asks for one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/http_parse.h"
#include "proxyd/url.h"

static const char rules_text[] =
    "http_port 3128\n"
    "acl localnet src 10.0.0.0/8 192.168.0.0/16 fc00::/7 127.0.0.1\n"
    "acl range src 1.2.3.4-1.2.3.9/32\n"
    "acl dstnet dst 10.0.0.0/8 ::1\n"
    "acl blocked dstdomain .example.com example.org 127.0.0.1 [::1]\n"
    "acl dre dstdom_regex -i ^www\\.[a-z]+\\.net$\n"
    "acl ure url_regex -i ^http://[^/]*/admin\n"
    "acl pre urlpath_regex \\.(exe|zip)$ /cgi-bin/\n"
    "acl ports port 80 443 1025-65535\n"
    "acl lport localport 3128\n"
    "acl meth method GET HEAD CONNECT PURGE\n"
    "acl proto proto HTTP AUTHORITY\n"
    "acl work time MTWHF 08:00-18:00\n"
    "acl many maxconn 5\n"
    "acl hdr req_header X-Token -i ^secret\n"
    "acl ua browser -i curl|wget\n"
    "acl ref referer_regex ^http://evil\n"
    "http_access deny !ports\n"
    "http_access deny blocked\n"
    "http_access deny ure ua\n"
    "http_access allow dstnet\n"
    "http_access deny pre !localnet\n"
    "http_access allow localnet meth proto lport\n"
    "http_access deny many\n"
    "http_access allow dre work\n"
    "http_access deny hdr\n"
    "http_access allow range !ref\n"
    "http_access deny all\n"
    "cache deny pre\n"
    "cache allow all\n"
    "deny_info ERR_BLOCKED blocked\n";

static pd_acl_rules *rules;

static void check_idempotent(const pd_url *u, enum pd_url_form form)
{
    char a[8192], b[8192];
    size_t na = pd_url_format(u, a, sizeof(a));
    if (na >= sizeof(a))
        return;
    pd_url v;
    const char *why = NULL;
    if (pd_url_parse(a, na, form, &v, &why) != 0) {
        fprintf(stderr, "normalised URL refused: \"%s\": %s\n", a, why);
        abort();
    }
    size_t nb = pd_url_format(&v, b, sizeof(b));
    if (nb != na || memcmp(a, b, na) != 0 || v.port != u->port || v.host_ip != u->host_ip) {
        fprintf(stderr, "normalisation not idempotent: \"%s\" -> \"%s\"\n", a, b);
        abort();
    }
    pd_url_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rules) {
        pd_conf *c = pd_conf_load_string("fuzz-acl.conf", rules_text, stderr);
        if (!c)
            abort();
        rules = pd_acl_compile(c, stderr);
        if (!rules)
            abort();
        /* rules keep no pointer into the conf (it is swapped on reload) */
        pd_conf_free(c);
    }
    if (size < 20)
        return 0;
    struct sockaddr_storage ss, dst;
    memset(&ss, 0, sizeof(ss));
    memset(&dst, 0, sizeof(dst));
    if (data[0] & 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, data + 1, 16);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, data + 1, 4);
    }
    struct sockaddr_in *d4 = (struct sockaddr_in *)&dst;
    d4->sin_family = AF_INET;
    memcpy(&d4->sin_addr, data + 5, 4);
    uint16_t lport = (uint16_t)(data[17] << 8 | data[18]);
    int conns = data[19];
    time_t now = (time_t)1700000000 + (time_t)data[9] * 3600 + (time_t)data[10] * 86400;
    data += 20;
    size -= 20;

    pd_http_msg m;
    pd_http_msg_init(&m);
    pd_http_parser *p = pd_http_parser_new(1, 65536);
    if (!p)
        return 0;
    pd_http_parser_next(p, &m, 0);
    size_t used;
    const char *target = (const char *)data;
    size_t tlen = size;
    int method = PD_M_GET;
    if (pd_http_parse_head(p, (const char *)data, size, &used) == PD_PARSE_DONE) {
        target = m.target.p;
        tlen = m.target.len;
        method = m.method_id;
    } else {
        pd_http_parser_next(p, &m, 0);
        m.method = PD_STR("GET");
        m.method_id = PD_M_GET;
    }
    for (int form = 0; form < 2; form++) {
        pd_url u;
        const char *why = NULL;
        if (pd_url_parse(target, tlen, form ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE, &u, &why) != 0) {
            if (!why)
                abort();
            continue;
        }
        check_idempotent(&u, form ? PD_URL_AUTHORITY : PD_URL_ABSOLUTE);
        pd_acl_req ar = {
            .client = (const struct sockaddr *)&ss,
            .local_port = lport,
            .msg = &m,
            .url = &u,
            .is_connect = form == 1 || method == PD_M_CONNECT,
            .client_conns = conns,
            .now = now,
        };
        const char *deny_acl = NULL;
        enum pd_acl_verdict v = pd_acl_check_http(rules, &ar, &deny_acl);
        if (v == PD_ACL_NEED_DST) {
            ar.dst = &dst;
            ar.n_dst = 1;
            v = pd_acl_check_http(rules, &ar, &deny_acl);
            if (v == PD_ACL_NEED_DST)
                abort(); /* the destination was given */
        }
        if (v == PD_ACL_DENY && deny_acl)
            (void)pd_acl_deny_info(rules, deny_acl);
        (void)pd_acl_check_cache(rules, &ar);
        pd_url_free(&u);
    }
    pd_http_msg_free(&m);
    pd_http_parser_free(p);
    return 0;
}
