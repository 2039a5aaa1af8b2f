/*
 * url: parse a request-target (absolute-form, or authority-form for CONNECT)
 * into one canonical pd_url, so that every later decision (ACLs, cache key,
 * where to connect) sees a single spelling of a resource. Anything ambiguous
 * is refused rather than guessed: a filter that can be bypassed by spelling a
 * host differently is worse than a 400.
 *
 * Decisions that are ours (documented for operators in docs):
 *  - '%' in the host is refused (as Squid does), not decoded.
 *  - A host whose last label is numeric is an IPv4 literal in inet_aton form;
 *    if it does not parse as one it is refused (WHATWG URL does the same),
 *    so "1.2.3.256" or "example.123" never reach DNS.
 *  - Bytes <= 0x20, 0x7f and >= 0x80 anywhere in the target are refused.
 *  - Only http is accepted in absolute-form: a forward proxy receives https
 *    only through CONNECT.
 *  - IPv6 zone ids ("%25eth0") are refused; an IPv4-mapped IPv6 literal
 *    (::ffff:a.b.c.d) becomes the IPv4 literal it reaches.
 *  - Dot segments ("/./", "/../", also spelled %2e) are removed from the
 *    path, as the origin would resolve them.
 */
#include "proxyd/url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX 63

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_unreserved(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/*
 * One part of an inet_aton address: 0x-prefixed hex, 0-prefixed octal or
 * decimal. Returns 0 and the value, -1 when it is not a number or exceeds max.
 */
static int ipv4_part(const char *p, size_t n, uint32_t max, uint32_t *v)
{
    int base = 10;
    uint64_t acc = 0;

    if (n == 0)
        return -1;
    if (n >= 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
        n -= 2;
        if (n == 0)
            return -1;      /* bare "0x": inet_aton rejects it, so do we */
    } else if (n >= 2 && p[0] == '0') {
        base = 8;
        p++;
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        int d = hexval((unsigned char)p[i]);
        if (d < 0 || d >= base)
            return -1;
        acc = acc * (uint64_t)base + (uint64_t)d;
        if (acc > max)
            return -1;
    }
    *v = (uint32_t)acc;
    return 0;
}

/*
 * Parse h (lowercase, no trailing dot) as an inet_aton address: a, a.b, a.b.c
 * or a.b.c.d where the last part fills the remaining bytes.
 */
static int ipv4_parse(const char *h, size_t n, uint32_t *out)
{
    uint32_t parts[4];
    int np = 0;
    size_t start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            if (np == 4)
                return -1;
            int last = (i == n);
            uint32_t max = 255;
            if (last)
                max = np == 0 ? 0xffffffffu : np == 1 ? 0xffffffu : np == 2 ? 0xffffu : 0xffu;
            if (ipv4_part(h + start, i - start, max, &parts[np]) < 0)
                return -1;
            np++;
            start = i + 1;
        }
    }
    uint32_t a = 0;
    for (int i = 0; i < np - 1; i++)
        a |= parts[i] << (24 - 8 * i);
    a |= parts[np - 1];
    *out = a;
    return 0;
}

/*
 * Does the last label look like a number (so the host must be an IPv4
 * literal)? As WHATWG's "ends in a number": all decimal digits, or 0x and
 * hex digits.
 */
static int last_label_numeric(const char *h, size_t n)
{
    size_t i = n;
    while (i > 0 && h[i - 1] != '.')
        i--;
    if (i == n)
        return 0;
    size_t k = i;
    int hex = n - i >= 2 && h[i] == '0' && h[i + 1] == 'x';
    if (hex)
        k += 2;
    for (; k < n; k++) {
        int c = (unsigned char)h[k];
        if (hex ? hexval(c) < 0 : !is_digit(c))
            return 0;
    }
    return 1;
}

/* Normalise a host given between p and p+n into out->host. */
static int parse_host(const char *p, size_t n, pd_url *out, const char **why)
{
    if (n == 0) {
        *why = "empty host";
        return -1;
    }
    if (p[0] == '[') {
        char tmp[INET6_ADDRSTRLEN + 8];
        struct in6_addr a6;
        if (p[n - 1] != ']' || n < 3) {
            *why = "bad IPv6 literal";
            return -1;
        }
        if (memchr(p, '%', n)) {
            *why = "IPv6 zone id refused";
            return -1;
        }
        if (n - 2 >= sizeof(tmp)) {
            *why = "bad IPv6 literal";
            return -1;
        }
        memcpy(tmp, p + 1, n - 2);
        tmp[n - 2] = '\0';
        if (inet_pton(AF_INET6, tmp, &a6) != 1) {
            *why = "bad IPv6 literal";
            return -1;
        }
        if (IN6_IS_ADDR_V4MAPPED(&a6)) {
            /* ::ffff:a.b.c.d reaches a.b.c.d: give it the IPv4 spelling so an
             * IPv4 rule (dstdomain 10.0.0.1, dst 10.0.0.0/8) sees one address */
            pd_ipv4_format(&a6.s6_addr[12], out->host);
            out->host_ip = 4;
            return 0;
        }
        inet_ntop(AF_INET6, &a6, out->host, sizeof(out->host));
        out->host_ip = 6;
        return 0;
    }
    if (n > PD_URL_HOST_MAX) {
        *why = "host too long";
        return -1;
    }
    char h[PD_URL_HOST_MAX + 1];
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        int c = lower((unsigned char)p[i]);
        if (c == '.') {
            /* empty labels ("a..b", ".a") would give two spellings of one name */
            if (label == 0) {
                *why = "empty label in host";
                return -1;
            }
            label = 0;
        } else if (is_alpha(c) || is_digit(c) || c == '-' || c == '_') {
            if (++label > LABEL_MAX) {
                *why = "host label too long";
                return -1;
            }
        } else {
            *why = "bad character in host";
            return -1;
        }
        h[i] = (char)c;
    }
    if (h[n - 1] == '.')
        n--;            /* one trailing dot: the root, same name */
    h[n] = '\0';
    if (n == 0) {
        *why = "empty host";
        return -1;
    }
    if (last_label_numeric(h, n)) {
        uint32_t a;
        struct in_addr in;
        if (ipv4_parse(h, n, &a) < 0) {
            *why = "bad IPv4 literal";
            return -1;
        }
        in.s_addr = htonl(a);
        pd_ipv4_format(&in, out->host);
        out->host_ip = 4;
        return 0;
    }
    memcpy(out->host, h, n + 1);
    out->host_ip = 0;
    return 0;
}

/* Port digits between p and p+n (n may be 0: "host:" means the default). */
static int parse_port(const char *p, size_t n, pd_url *out, const char **why)
{
    unsigned v = 0;
    if (n == 0 || n > 5) {
        *why = "bad port";
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)p[i])) {
            *why = "bad port";
            return -1;
        }
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535) {
        *why = "port out of range";
        return -1;
    }
    out->port = (uint16_t)v;
    out->port_explicit = 1;
    return 0;
}

/* authority = host [":" port]; require_port for CONNECT. */
static int parse_authority(const char *p, size_t n, int require_port, pd_url *out,
                           const char **why)
{
    const char *colon = NULL;
    size_t hlen;

    if (n > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb) {
            *why = "bad IPv6 literal";
            return -1;
        }
        hlen = (size_t)(rb - p) + 1;
        if (hlen < n) {
            if (p[hlen] != ':') {
                *why = "junk after IPv6 literal";
                return -1;
            }
            colon = p + hlen;
        }
    } else {
        colon = memchr(p, ':', n);
        hlen = colon ? (size_t)(colon - p) : n;
    }
    if (parse_host(p, hlen, out, why) < 0)
        return -1;
    if (colon) {
        size_t plen = n - hlen - 1;
        if (plen == 0 && !require_port)
            return 0;   /* "host:" = default port (RFC 3986 3.2.3) */
        if (parse_port(colon + 1, plen, out, why) < 0)
            return -1;
    } else if (require_port) {
        *why = "CONNECT target needs a port";
        return -1;
    }
    return 0;
}

/*
 * RFC 3986 5.2.4 on the path part (before '?'), in place; returns the new
 * length. Runs after unreserved escapes are decoded, so "%2e%2e" is ".." here,
 * as the origin will read it: "/a/../admin" must meet the rules for "/admin".
 * s starts with '/'.
 */
static size_t remove_dot_segments(char *s, size_t n)
{
    char *q = memchr(s, '?', n);
    size_t plen = q ? (size_t)(q - s) : n;
    size_t in = 0, o = 0;

    while (in < plen) {
        /* s[in] == '/' here: the start of a segment */
        size_t e = in + 1;
        while (e < plen && s[e] != '/')
            e++;
        size_t seg = e - in - 1;
        if (seg == 1 && s[in + 1] == '.') {
            if (e == plen)
                s[o++] = '/';       /* "/a/." -> "/a/" */
        } else if (seg == 2 && s[in + 1] == '.' && s[in + 2] == '.') {
            while (o > 0 && s[--o] != '/')
                ;                   /* drop the last output segment */
            if (e == plen)
                s[o++] = '/';
        } else {
            memmove(s + o, s + in, e - in);
            o += e - in;
        }
        in = e;
    }
    if (o == 0)
        s[o++] = '/';
    memmove(s + o, s + plen, n - plen);
    o += n - plen;
    s[o] = '\0';
    return o;
}

/* Normalise path+query into a malloc'd string. */
static int parse_path(const char *p, size_t n, pd_url *out, const char **why)
{
    /* worst case: "/" prepended, escapes keep their length */
    char *s = malloc(n + 2);
    size_t o = 0;

    if (!s) {
        *why = "out of memory";
        return -1;
    }
    if (n == 0 || p[0] != '/')
        s[o++] = '/';   /* empty path, or "?q" directly after the authority */
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)p[i];
        if (c == '%') {
            int h1 = i + 1 < n ? hexval((unsigned char)p[i + 1]) : -1;
            int h2 = i + 2 < n ? hexval((unsigned char)p[i + 2]) : -1;
            if (h1 < 0 || h2 < 0) {
                free(s);
                *why = "bad percent-encoding";
                return -1;
            }
            int v = h1 * 16 + h2;
            if (is_unreserved(v)) {
                s[o++] = (char)v;
            } else {
                s[o++] = '%';
                s[o++] = "0123456789ABCDEF"[h1];
                s[o++] = "0123456789ABCDEF"[h2];
            }
            i += 2;
        } else {
            s[o++] = (char)c;
        }
    }
    s[o] = '\0';
    o = remove_dot_segments(s, o);
    out->path = s;
    out->path_len = o;
    return 0;
}

int pd_url_parse(const char *target, size_t len, enum pd_url_form form, pd_url *out,
                 const char **why)
{
    const char *dummy;
    if (!why)
        why = &dummy;
    memset(out, 0, sizeof(*out));
    if (!target || len == 0) {
        *why = "empty target";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c <= 0x20 || c >= 0x7f) {
            *why = "control, space or non-ASCII character in target";
            return -1;
        }
    }

    if (form == PD_URL_AUTHORITY) {
        if (memchr(target, '/', len) || memchr(target, '@', len) || memchr(target, '?', len)
            || memchr(target, '#', len)) {
            *why = "CONNECT target is not host:port";
            return -1;
        }
        return parse_authority(target, len, 1, out, why);
    }

    /* absolute-form: scheme "://" authority path-abempty [ "?" query ] [ "#" fragment ] */
    size_t i = 0;
    while (i < len && target[i] != ':')
        i++;
    if (i == 0 || i + 2 >= len || target[i + 1] != '/' || target[i + 2] != '/') {
        *why = "not an absolute URL";
        return -1;
    }
    if (i >= sizeof(out->scheme) || !is_alpha((unsigned char)target[0])) {
        *why = "unsupported scheme";
        return -1;
    }
    for (size_t k = 0; k < i; k++) {
        int c = (unsigned char)target[k];
        if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') {
            *why = "bad scheme";
            return -1;
        }
        out->scheme[k] = (char)lower(c);
    }
    out->scheme[i] = '\0';
    if (strcmp(out->scheme, "http") != 0) {
        out->scheme[0] = '\0';
        *why = "unsupported scheme";
        return -1;
    }
    const char *end = target + len;
    const char *hash = memchr(target, '#', len);
    if (hash)
        end = hash;     /* a fragment is the client's business, never sent on */
    const char *a = target + i + 3;
    const char *ae = a;
    while (ae < end && *ae != '/' && *ae != '?')
        ae++;
    /* userinfo is dropped: the last '@' ends it (as browsers parse it) */
    const char *at = NULL;
    for (const char *q = a; q < ae; q++)
        if (*q == '@')
            at = q;
    if (at) {
        /* RFC 3986 userinfo only: a backslash here is read differently by
         * browsers (WHATWG) and we must not pick another host than they do */
        for (const char *q = a; q < at; q++) {
            int c = (unsigned char)*q;
            if (!is_unreserved(c) && !strchr("%!$&'()*+,;=:@", c)) {
                *why = "bad character in userinfo";
                return -1;
            }
        }
        a = at + 1;
    }
    if (parse_authority(a, (size_t)(ae - a), 0, out, why) < 0)
        return -1;
    if (!out->port_explicit)
        out->port = 80;
    if (parse_path(ae, (size_t)(end - ae), out, why) < 0)
        return -1;
    return 0;
}

void pd_url_free(pd_url *u)
{
    if (!u)
        return;
    free(u->path);
    u->path = NULL;
    u->path_len = 0;
}

static uint16_t default_port(const pd_url *u)
{
    if (strcmp(u->scheme, "http") == 0)
        return 80;
    if (strcmp(u->scheme, "https") == 0)
        return 443;
    return 0;
}

size_t pd_ipv4_format(const void *addr, char *out)
{
    const unsigned char *b = addr;
    char *o = out;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *o++ = (char)('0' + v / 100);
        if (v >= 10)
            *o++ = (char)('0' + v / 10 % 10);
        *o++ = (char)('0' + v % 10);
        *o++ = i < 3 ? '.' : '\0';
    }
    return (size_t)(o - out - 1);
}

/* snprintf's contract without its cost (the URL is formatted several times
 * a request): out collects what fits, n counts everything. */
struct out {
    char *buf;
    size_t size, n;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (o->n < o->size) {
        size_t room = o->size - 1 - o->n;
        memcpy(o->buf + o->n, s, len < room ? len : room);
    }
    o->n += len;
}

static void put_port(struct out *o, unsigned port)
{
    char d[8];
    size_t i = sizeof d;
    do
        d[--i] = (char)('0' + port % 10);
    while ((port /= 10) && i > 1);
    d[--i] = ':';
    put(o, d + i, sizeof d - i);
}

static size_t put_end(struct out *o)
{
    if (o->size)
        o->buf[o->n < o->size ? o->n : o->size - 1] = '\0';
    return o->n;
}

static void put_host(struct out *o, const pd_url *u)
{
    if (u->host_ip == 6)
        put(o, "[", 1);
    put(o, u->host, strlen(u->host));
    if (u->host_ip == 6)
        put(o, "]", 1);
}

size_t pd_url_authority(const pd_url *u, char *buf, size_t size)
{
    struct out o = {buf, size, 0};
    put_host(&o, u);
    put_port(&o, u->port);
    return put_end(&o);
}

size_t pd_url_format(const pd_url *u, char *buf, size_t size)
{
    if (u->scheme[0] == '\0' || !u->path)
        return pd_url_authority(u, buf, size);
    struct out o = {buf, size, 0};
    put(&o, u->scheme, strlen(u->scheme));
    put(&o, "://", 3);
    put_host(&o, u);
    if (u->port != default_port(u))
        put_port(&o, u->port);
    put(&o, u->path, u->path_len);
    return put_end(&o);
}
