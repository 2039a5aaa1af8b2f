/*
 * acl: Squid's access control, compiled once per configuration.
 *
 * conf.c keeps `acl`, `http_access`, `cache` and `deny_info` as raw words;
 * here they become an immutable pd_acl_rules: address lists as 128-bit ranges
 * (IPv4 stored v4-mapped, so ::ffff:a.b.c.d and a.b.c.d are one address),
 * regexes compiled with regcomp, dstdomain lists in an open-addressing hash
 * set probed with the host and each parent suffix (O(labels), whatever the
 * list size). Matching only ever sees the normalised pd_url, so the encoding
 * tricks handled by url.c cannot bypass a rule.
 *
 * Semantics follow squid.conf.documented (Squid 5):
 *  - lines of one acl name add values (ORed); another type is an error;
 *  - an http_access line ANDs its acls, the first matching line wins, and
 *    when none matches the answer is the opposite of the last line; with no
 *    http_access line at all everything is denied. `cache` is the same but
 *    allows when it has no line.
 *  - a quoted word "path" reads values from a file, one per line, # comments.
 *  - `proto` of a CONNECT request is "AUTHORITY" (Squid 5), else the scheme.
 */
#include "proxyd/acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RULES_MAGIC 0x41434c52u /* "ACLR" */
#define MAX_DOMAIN_WARNINGS 10

enum acl_type {
    T_SRC, T_DST, T_DSTDOMAIN, T_DSTDOM_REGEX, T_URL_REGEX, T_URLPATH_REGEX,
    T_PORT, T_LOCALPORT, T_METHOD, T_PROTO, T_TIME, T_MAXCONN, T_REQ_HEADER,
    T_BROWSER, T_REFERER_REGEX, T_REP_HEADER, T_REP_MIME_TYPE, T_HTTP_STATUS,
    T_PROXY_AUTH, T_PROXY_AUTH_REGEX, T_EXTERNAL, T_NOTE, T_TAG
};

static const struct {
    const char *name;
    enum acl_type type;
} type_table[] = {
    { "src", T_SRC }, { "dst", T_DST }, { "dstdomain", T_DSTDOMAIN },
    { "dstdom_regex", T_DSTDOM_REGEX }, { "url_regex", T_URL_REGEX },
    { "urlpath_regex", T_URLPATH_REGEX }, { "port", T_PORT }, { "localport", T_LOCALPORT },
    { "method", T_METHOD }, { "proto", T_PROTO }, { "time", T_TIME },
    { "maxconn", T_MAXCONN }, { "req_header", T_REQ_HEADER }, { "browser", T_BROWSER },
    { "referer_regex", T_REFERER_REGEX }, { "rep_header", T_REP_HEADER },
    { "rep_mime_type", T_REP_MIME_TYPE }, { "http_status", T_HTTP_STATUS },
    { "proxy_auth", T_PROXY_AUTH },
    { "proxy_auth_regex", T_PROXY_AUTH_REGEX }, { "external", T_EXTERNAL },
    { "note", T_NOTE }, { "tag", T_TAG },
};

static int is_regex_type(enum acl_type t)
{
    return t == T_DSTDOM_REGEX || t == T_URL_REGEX || t == T_URLPATH_REGEX
        || t == T_REQ_HEADER || t == T_BROWSER || t == T_REFERER_REGEX || t == T_REP_HEADER
        || t == T_REP_MIME_TYPE || t == T_PROXY_AUTH_REGEX;
}

/* Types that look at the reply: never true before one is known (Squid warns, we too). */
static int is_reply_type(enum acl_type t)
{
    return t == T_REP_HEADER || t == T_REP_MIME_TYPE || t == T_HTTP_STATUS;
}

static int is_auth_type(enum acl_type t)
{
    return t == T_PROXY_AUTH || t == T_PROXY_AUTH_REGEX;
}

struct iprange { uint8_t lo[16], hi[16]; };
struct portrange { unsigned lo, hi; };
struct rx { regex_t re; const char *header; /* req_header: points into acl->headers */ };
struct tspec { unsigned days; int from, to; /* minutes of the day, inclusive */ };

struct dentry {
    char *name;         /* NULL = empty slot */
    uint64_t hash;
    uint8_t exact, wild;    /* "a.b" and ".a.b" seen */
    const char *file;
    int line;
};

struct domset { struct dentry *slot; size_t cap, n; };

struct acl {
    char *name;
    enum acl_type type;
    const char *file;       /* first definition */
    int line;
    int any;                /* src/dst "all" */
    int predefined;
    struct iprange *ips; size_t n_ips, cap_ips;
    struct portrange *ports; size_t n_ports, cap_ports;
    struct rx *rxs; size_t n_rxs, cap_rxs;
    char **strs; size_t n_strs, cap_strs;      /* method, proto; req_header names */
    struct tspec *times; size_t n_times, cap_times;
    int maxconn;
    int user_icase;         /* proxy_auth: auth_param basic casesensitive off */
    size_t ext;             /* external: index of its external_acl_type */
    struct domset dom;
};

struct term { const struct acl *acl; int neg; };
struct rule {
    int allow;
    struct term *terms; size_t n;
    uint64_t size;                  /* reply_body_max_size (UINT64_MAX: none) */
    struct sockaddr_storage addr;   /* tcp_outgoing_address */
};
struct rulelist { struct rule *v; size_t n, cap; };
struct dinfo { char *page; char *acl; };

/* external_acl_type: what a line sent to its helper is made of */
enum ext_code {
    X_LOGIN, X_SRC, X_SRCPORT, X_DST, X_MYPORT, X_URI, X_PATH, X_METHOD, X_PORT, X_PROTO,
    X_HEADER, X_DATA
};
struct ext_fmt { enum ext_code code; char *header; };
struct ext_type {
    pd_acl_ext_info info;
    struct ext_fmt *f;
    size_t nf, cap_f;
    int data_used;          /* %DATA in the format; else the acl's values are appended */
    int needs_login;
    char *name;
    char **argv;
};

struct pd_acl_rules {
    uint32_t magic;
    struct ext_type *ext; size_t n_ext, cap_ext;
    struct acl **acls; size_t n_acls, cap_acls;
    struct rulelist http, cache, rewrite, storeid;
    struct rulelist reply, miss, fxff;      /* http_reply_access, miss_access, follow_x_f_f */
    struct rulelist rbms, toa;              /* reply_body_max_size, tcp_outgoing_address */
    struct dinfo *di; size_t n_di, cap_di;
    char **files; size_t n_files, cap_files;    /* file names kept for dentry->file */
};

struct ctx {
    pd_acl_rules *r;
    FILE *err;
    int errors;
    int warnings;
};

/* ---------------------------------------------------------------- helpers */

static int grow(void *vp, size_t *cap, size_t n, size_t elsize)
{
    void **v = vp;
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    void *p = realloc(*v, nc * elsize);
    if (!p)
        return -1;
    *v = p;
    *cap = nc;
    return 0;
}

static void report(struct ctx *c, const char *file, int line, int warning, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void report(struct ctx *c, const char *file, int line, int warning, const char *fmt, ...)
{
    va_list ap;
    FILE *out = c->err ? c->err : stderr;
    fprintf(out, "%s:%d: %s", file ? file : "?", line, warning ? "warning: " : "");
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    if (!warning)
        c->errors++;
    else
        c->warnings++;
}

static const char *keep_file(struct ctx *c, const char *name)
{
    pd_acl_rules *r = c->r;
    for (size_t i = 0; i < r->n_files; i++)
        if (strcmp(r->files[i], name) == 0)
            return r->files[i];
    if (grow(&r->files, &r->cap_files, r->n_files, sizeof(char *)) < 0)
        return "?";
    char *s = strdup(name);
    if (!s)
        return "?";
    r->files[r->n_files++] = s;
    return s;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ------------------------------------------------------------- domain set */

static struct dentry *dom_find(const struct domset *d, const char *s, size_t n, uint64_t h)
{
    if (d->cap == 0)
        return NULL;
    size_t mask = d->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct dentry *e = &d->slot[i];
        if (!e->name)
            return NULL;
        if (e->hash == h && strncmp(e->name, s, n) == 0 && e->name[n] == '\0')
            return e;
    }
}

static int dom_grow(struct domset *d)
{
    size_t nc = d->cap ? d->cap * 2 : 64;
    struct dentry *ns = calloc(nc, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < d->cap; i++) {
        struct dentry *e = &d->slot[i];
        if (!e->name)
            continue;
        size_t k = (size_t)e->hash & (nc - 1);
        while (ns[k].name)
            k = (k + 1) & (nc - 1);
        ns[k] = *e;
    }
    free(d->slot);
    d->slot = ns;
    d->cap = nc;
    return 0;
}

/* Insert or flag a normalised name (no leading dot). */
static int dom_add(struct domset *d, const char *s, int wild, const char *file, int line)
{
    size_t n = strlen(s);
    uint64_t h = fnv1a(s, n);
    struct dentry *e = dom_find(d, s, n, h);
    if (!e) {
        if ((d->n + 1) * 2 > d->cap && dom_grow(d) < 0)
            return -1;
        size_t k = (size_t)h & (d->cap - 1);
        while (d->slot[k].name)
            k = (k + 1) & (d->cap - 1);
        e = &d->slot[k];
        e->name = strdup(s);
        if (!e->name)
            return -1;
        e->hash = h;
        e->file = file;
        e->line = line;
        d->n++;
    }
    if (wild)
        e->wild = 1;
    else
        e->exact = 1;
    return 0;
}

static int dom_match(const struct domset *d, const char *host)
{
    size_t n = strlen(host);
    const struct dentry *e = dom_find(d, host, n, fnv1a(host, n));
    if (e)
        return 1;   /* "a.b" matches both "a.b" and ".a.b" */
    for (size_t i = 0; i < n; i++) {
        if (host[i] != '.')
            continue;
        const char *p = host + i + 1;
        size_t m = n - i - 1;
        e = dom_find(d, p, m, fnv1a(p, m));
        if (e && e->wild)
            return 1;
    }
    return 0;
}

/* Squid warns when one entry makes another useless; so do we. */
static void dom_warn_redundant(struct ctx *c, const struct acl *a)
{
    const struct domset *d = &a->dom;
    int shown = 0, more = 0;
    for (size_t i = 0; i < d->cap; i++) {
        const struct dentry *e = &d->slot[i];
        if (!e->name)
            continue;
        const char *cover = NULL;
        if (e->exact && e->wild)
            cover = e->name;
        for (const char *p = strchr(e->name, '.'); !cover && p; p = strchr(p + 1, '.')) {
            size_t m = strlen(p + 1);
            const struct dentry *pe = dom_find(d, p + 1, m, fnv1a(p + 1, m));
            if (pe && pe->wild)
                cover = pe->name;
        }
        if (!cover)
            continue;
        if (shown < MAX_DOMAIN_WARNINGS) {
            report(c, e->file, e->line, 1, "acl %s: '%s%s' is already matched by '.%s'",
                   a->name, e->wild && cover != e->name ? "." : "", e->name, cover);
            shown++;
        } else {
            more++;
        }
    }
    if (more)
        report(c, a->file, a->line, 1, "acl %s: %d more redundant dstdomain entries", a->name,
               more);
}

/* --------------------------------------------------------- value parsing */

static void to16_v4(const struct in_addr *a, uint8_t out[16])
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &a->s_addr, 4);
}

/* Parse a strict address; returns 4 or 6 (and out in the 128-bit space), 0 if none. */
static int parse_addr(const char *s, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        to16_v4(&a4, out);
        return 4;
    }
    if (inet_pton(AF_INET6, s, &a6) == 1) {
        memcpy(out, a6.s6_addr, 16);
        return 6;
    }
    return 0;
}

static void prefix_range(const uint8_t a[16], int bits, uint8_t lo[16], uint8_t hi[16])
{
    for (int i = 0; i < 16; i++) {
        int b = bits - i * 8;
        uint8_t m = b >= 8 ? 0xff : b <= 0 ? 0 : (uint8_t)(0xff << (8 - b));
        lo[i] = a[i] & m;
        hi[i] = a[i] | (uint8_t)~m;
    }
}

static int add_ip(struct ctx *c, struct acl *a, const char *v, const char *file, int line)
{
    struct iprange r;
    char buf[128];

    if (strcmp(v, "all") == 0) {
        a->any = 1;
        return 0;
    }
    if (strlen(v) >= sizeof(buf)) {
        report(c, file, line, 0, "acl %s: bad address '%s'", a->name, v);
        return -1;
    }
    strcpy(buf, v);
    char *slash = strchr(buf, '/');
    char *dash = strchr(buf, '-');
    if (slash)
        *slash++ = '\0';
    if (dash)
        *dash++ = '\0';
    uint8_t x[16], y[16];
    int fam = parse_addr(buf, x);
    if (!fam) {
        report(c, file, line, 0, "acl %s: bad address '%s'", a->name, v);
        return -1;
    }
    int bits = 128;
    if (slash) {
        uint8_t m[16];
        char *end;
        long n = strtol(slash, &end, 10);
        if (*slash && *end == '\0' && end - slash <= 3) {
            if (n < 0 || n > (fam == 4 ? 32 : 128)) {
                report(c, file, line, 0, "acl %s: bad prefix length in '%s'", a->name, v);
                return -1;
            }
            bits = (int)n + (fam == 4 ? 96 : 0);
        } else if (fam == 4 && parse_addr(slash, m) == 4) {
            /* netmask form: must be contiguous ones */
            uint32_t mm = ((uint32_t)m[12] << 24) | ((uint32_t)m[13] << 16)
                | ((uint32_t)m[14] << 8) | m[15];
            uint32_t inv = ~mm;
            if ((inv & (inv + 1)) != 0) {
                report(c, file, line, 0, "acl %s: non-contiguous netmask in '%s'", a->name, v);
                return -1;
            }
            bits = 96 + __builtin_popcount(mm);
        } else {
            report(c, file, line, 0, "acl %s: bad netmask in '%s'", a->name, v);
            return -1;
        }
    }
    if (dash) {
        int fam2 = parse_addr(dash, y);
        if (fam2 != fam) {
            report(c, file, line, 0, "acl %s: bad address range '%s'", a->name, v);
            return -1;
        }
        if (bits != 128) {
            report(c, file, line, 0, "acl %s: a netmask on a range is not supported: '%s'",
                   a->name, v);
            return -1;
        }
        if (memcmp(x, y, 16) > 0) {
            report(c, file, line, 0, "acl %s: range '%s' ends before it starts", a->name, v);
            return -1;
        }
        memcpy(r.lo, x, 16);
        memcpy(r.hi, y, 16);
    } else {
        prefix_range(x, bits, r.lo, r.hi);
        if (memcmp(r.lo, x, 16) != 0)
            report(c, file, line, 1, "acl %s: '%s' has host bits set; using the network",
                   a->name, v);
    }
    if (grow(&a->ips, &a->cap_ips, a->n_ips, sizeof(r)) < 0)
        return -1;
    a->ips[a->n_ips++] = r;
    return 0;
}

static int add_port(struct ctx *c, struct acl *a, const char *v, const char *file, int line)
{
    unsigned lo, hi;
    int n = 0;
    char tail;
    if (sscanf(v, "%5u-%5u%c", &lo, &hi, &tail) == 2)
        n = 2;
    else if (sscanf(v, "%5u%c", &lo, &tail) == 1)
        n = 1, hi = lo;
    if (n == 0 || v[0] < '0' || v[0] > '9' || lo > 65535 || hi > 65535 || lo > hi) {
        report(c, file, line, 0, "acl %s: bad %s '%s'", a->name,
               a->type == T_HTTP_STATUS ? "status" : "port", v);
        return -1;
    }
    if (grow(&a->ports, &a->cap_ports, a->n_ports, sizeof(struct portrange)) < 0)
        return -1;
    a->ports[a->n_ports++] = (struct portrange){ lo, hi };
    return 0;
}

static int add_str(struct acl *a, const char *v, int upper)
{
    if (grow(&a->strs, &a->cap_strs, a->n_strs, sizeof(char *)) < 0)
        return -1;
    char *s = strdup(v);
    if (!s)
        return -1;
    if (upper)
        for (char *p = s; *p; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 32);
    a->strs[a->n_strs++] = s;
    return 0;
}

/*
 * A dstdomain value goes through the same normaliser as request hosts
 * (case, trailing dot, IPv4 in any inet_aton form, IPv6 canonical), so the
 * two sides of the comparison can only meet in one spelling.
 */
static int add_domain(struct ctx *c, struct acl *a, const char *v, const char *file, int line)
{
    char buf[PD_URL_HOST_MAX + 16];
    const char *d = v, *why = "bad domain";
    int wild = 0;
    pd_url u;

    if (d[0] == '.') {
        wild = 1;
        d++;
    }
    size_t n = strlen(d);
    if (n == 0 || n > PD_URL_HOST_MAX || strpbrk(d, "/?#@%")) {
        report(c, file, line, 0, "acl %s: bad domain '%s'", a->name, v);
        return -1;
    }
    snprintf(buf, sizeof(buf), strchr(d, ':') && d[0] != '[' ? "http://[%s]/" : "http://%s/", d);
    if (pd_url_parse(buf, strlen(buf), PD_URL_ABSOLUTE, &u, &why) < 0) {
        report(c, file, line, 0, "acl %s: bad domain '%s': %s", a->name, v, why);
        return -1;
    }
    pd_url_free(&u);
    if (u.port_explicit) {
        report(c, file, line, 0, "acl %s: bad domain '%s': a port is not part of a domain",
               a->name, v);
        return -1;
    }
    if (dom_add(&a->dom, u.host, wild, file, line) < 0) {
        report(c, file, line, 0, "out of memory");
        return -1;
    }
    return 0;
}

static int add_regex(struct ctx *c, struct acl *a, const char *v, int icase, const char *header,
                     const char *file, int line)
{
    if (grow(&a->rxs, &a->cap_rxs, a->n_rxs, sizeof(struct rx)) < 0)
        return -1;
    struct rx *x = &a->rxs[a->n_rxs];
    int rc = regcomp(&x->re, v, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
    if (rc != 0) {
        char msg[256];
        regerror(rc, &x->re, msg, sizeof(msg));
        report(c, file, line, 0, "acl %s: bad regex '%s': %s", a->name, v, msg);
        return -1;
    }
    x->header = header;
    a->n_rxs++;
    return 0;
}

static int parse_hhmm(const char *s, int *min)
{
    int h, m, used = 0;
    if (sscanf(s, "%2d:%2d%n", &h, &m, &used) != 2 || h < 0 || h > 24 || m < 0 || m > 59
        || (h == 24 && m != 0))
        return -1;
    *min = h * 60 + m;
    return used;
}

/* time [days] [h1:m1-h2:m2]: all the words of one line make one spec. */
static int add_time(struct ctx *c, struct acl *a, char **w, int n, const char *file, int line)
{
    struct tspec t = { 0x7f, 0, 24 * 60 };
    int have_days = 0, have_range = 0;
    for (int i = 0; i < n; i++) {
        const char *v = w[i];
        if (v[0] >= '0' && v[0] <= '9') {
            int k = have_range ? -1 : parse_hhmm(v, &t.from);
            int k2 = (k > 0 && v[k] == '-') ? parse_hhmm(v + k + 1, &t.to) : -1;
            if (k2 < 0 || v[k + 1 + k2] != '\0') {
                report(c, file, line, 0, "acl %s: bad time range '%s'", a->name, v);
                return -1;
            }
            if (t.from >= t.to) {
                report(c, file, line, 0, "acl %s: h1:m1 must be less than h2:m2 in '%s'",
                       a->name, v);
                return -1;
            }
            have_range = 1;
            continue;
        }
        if (have_days) {
            report(c, file, line, 0, "acl %s: bad time spec '%s'", a->name, v);
            return -1;
        }
        t.days = 0;
        for (const char *p = v; *p; p++) {
            const char *days = "SMTWHFA";
            const char *d = strchr(days, *p);
            if (*p == 'D')
                t.days |= 0x3e;     /* weekdays, as Squid */
            else if (d)
                t.days |= 1u << (d - days);
            else {
                report(c, file, line, 0, "acl %s: bad day letter '%c' in '%s'", a->name, *p, v);
                return -1;
            }
        }
        have_days = 1;
    }
    if (grow(&a->times, &a->cap_times, a->n_times, sizeof(t)) < 0)
        return -1;
    a->times[a->n_times++] = t;
    return 0;
}

/* One value for the acl (from the line or from a file). */
static int add_value(struct ctx *c, struct acl *a, const char *v, int icase, const char *header,
                     const char *file, int line)
{
    switch (a->type) {
    case T_SRC:
    case T_DST:
        return add_ip(c, a, v, file, line);
    case T_DSTDOMAIN:
        return add_domain(c, a, v, file, line);
    case T_DSTDOM_REGEX:
    case T_URL_REGEX:
    case T_URLPATH_REGEX:
    case T_REQ_HEADER:
    case T_BROWSER:
    case T_REFERER_REGEX:
    case T_REP_HEADER:
    case T_REP_MIME_TYPE:
    case T_PROXY_AUTH_REGEX:
        return add_regex(c, a, v, icase, header, file, line);
    case T_EXTERNAL:
        return -1;  /* acl_line takes its values */
    case T_PROXY_AUTH:
        if (strcmp(v, "REQUIRED") == 0) {
            a->any = 1;     /* any user the helper accepted */
            return 0;
        }
        return add_str(a, v, 0) < 0 ? (report(c, file, line, 0, "out of memory"), -1) : 0;
    case T_PORT:
    case T_LOCALPORT:
    case T_HTTP_STATUS:
        return add_port(c, a, v, file, line);
    case T_METHOD:
    case T_NOTE:
    case T_TAG:
        return add_str(a, v, 0) < 0 ? (report(c, file, line, 0, "out of memory"), -1) : 0;
    case T_PROTO:
        return add_str(a, v, 1) < 0 ? (report(c, file, line, 0, "out of memory"), -1) : 0;
    case T_MAXCONN: {
        char *end;
        long n = strtol(v, &end, 10);
        if (*v < '0' || *v > '9' || *end || n > 1000000000L) {
            report(c, file, line, 0, "acl %s: bad maxconn '%s'", a->name, v);
            return -1;
        }
        a->maxconn = (int)n;
        return 0;
    }
    case T_TIME: {
        char *w[1] = { (char *)v };
        return add_time(c, a, w, 1, file, line);
    }
    }
    return -1;
}

/* Values from a file: one per line, blank lines and # comments skipped. */
static int add_file(struct ctx *c, struct acl *a, const char *path, int icase, const char *header,
                    const char *file, int line)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        report(c, file, line, 0, "acl %s: cannot open \"%s\": %s", a->name, path,
               strerror(errno));
        return -1;
    }
    const char *fname = keep_file(c, path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        char *p = buf, *e = buf + len;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        if (p == e || *p == '#')
            continue;
        if (!is_regex_type(a->type)) {
            /* "value   # comment": values of these types hold no blanks */
            char *sp = p + strcspn(p, " \t");
            if (*sp) {
                char *q = sp + strspn(sp, " \t");
                if (*q && *q != '#') {
                    report(c, fname, lineno, 0, "acl %s: one value per line expected", a->name);
                    rc = -1;
                    continue;
                }
                *sp = '\0';
            }
        }
        if (add_value(c, a, p, icase, header, fname, lineno) < 0)
            rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}

static int is_quoted(const char *w)
{
    size_t n = strlen(w);
    return n >= 2 && w[0] == '"' && w[n - 1] == '"';
}

/* ------------------------------------------------------------ acl lines */

static struct acl *find_acl(const pd_acl_rules *r, const char *name)
{
    for (size_t i = 0; i < r->n_acls; i++)
        if (strcasecmp(r->acls[i]->name, name) == 0)   /* as Squid's FindByName */
            return r->acls[i];
    return NULL;
}

static const char *type_name(enum acl_type t)
{
    for (size_t i = 0; i < sizeof(type_table) / sizeof(type_table[0]); i++)
        if (type_table[i].type == t)
            return type_table[i].name;
    return "?";
}

static int valid_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
              || *s == '-' || *s == '_' || *s == '.'))
            return 0;
    return 1;
}

static void acl_line(struct ctx *c, const char *file, int line, int argc, char **argv)
{
    pd_acl_rules *r = c->r;
    if (argc < 2) {
        report(c, file, line, 0, "acl: expected 'acl NAME TYPE VALUE...'");
        return;
    }
    const char *name = argv[0], *tname = argv[1];
    if (!valid_name(name)) {
        report(c, file, line, 0, "acl: bad acl name '%s'", name);
        return;
    }
    if (strcmp(tname, "myport") == 0) {
        report(c, file, line, 1, "acl %s: type 'myport' is now 'localport'", name);
        tname = "localport";
    }
    int t = -1;
    for (size_t i = 0; i < sizeof(type_table) / sizeof(type_table[0]); i++)
        if (strcmp(type_table[i].name, tname) == 0)
            t = (int)type_table[i].type;
    if (t < 0) {
        report(c, file, line, 0, "acl %s: unknown acl type '%s'", name, tname);
        return;
    }
    struct acl *a = find_acl(r, name);
    if (a && a->predefined && a->type != (enum acl_type)t) {
        /* old squid.confs define "acl manager proto cache_object" and the
         * like: Squid ignores such lines, and so do we, loudly */
        report(c, file, line, 1, "acl %s is predefined as '%s': line ignored", a->name,
               type_name(a->type));
        return;
    }
    if (a && a->type != (enum acl_type)t) {
        report(c, file, line, 0, "acl %s: redefined as '%s', was '%s' at %s:%d", name, tname,
               type_name(a->type), a->file, a->line);
        return;
    }
    if (!a) {
        if (grow(&r->acls, &r->cap_acls, r->n_acls, sizeof(*r->acls)) < 0
            || !(a = calloc(1, sizeof(*a))) || !(a->name = strdup(name))) {
            if (a)
                free(a);
            report(c, file, line, 0, "out of memory");
            return;
        }
        a->type = (enum acl_type)t;
        a->file = file;
        a->line = line;
        a->maxconn = -1;
        a->predefined = line == 0;
        r->acls[r->n_acls++] = a;
    }

    if (a->type == T_EXTERNAL) {
        /* acl NAME external TYPE [values]: the values are sent as %DATA */
        size_t k = 0;
        while (argc >= 3 && k < r->n_ext && strcmp(r->ext[k].name, argv[2]) != 0)
            k++;
        if (argc < 3 || k == r->n_ext) {
            report(c, file, line, 0, "acl %s: unknown external_acl_type '%s'", name,
                   argc < 3 ? "" : argv[2]);
            return;
        }
        if (a->line != line || a->file != file) {
            report(c, file, line, 0, "acl %s: an external acl is defined on one line", name);
            return;
        }
        a->ext = k;
        for (int j = 3; j < argc; j++)
            if (add_str(a, argv[j], 0) < 0) {
                report(c, file, line, 0, "out of memory");
                return;
            }
        return;
    }
    int i = 2, icase = 0;
    const char *header = NULL;
    if (a->type == T_BROWSER)
        header = "User-Agent";
    else if (a->type == T_REFERER_REGEX)
        header = "Referer";
    else if (a->type == T_REP_MIME_TYPE)
        header = "Content-Type";
    else if (a->type == T_REQ_HEADER || a->type == T_REP_HEADER) {
        if (argc < 3) {
            report(c, file, line, 0, "acl %s: %s needs a header name", name, tname);
            return;
        }
        if (add_str(a, argv[2], 0) < 0) {
            report(c, file, line, 0, "out of memory");
            return;
        }
        header = a->strs[a->n_strs - 1];
        i = 3;
    }
    /* leading options */
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(o, "-i") == 0 && is_regex_type(a->type))
            icase = 1;
        else if (strcmp(o, "-n") == 0
                 && (a->type == T_DST || a->type == T_DSTDOMAIN || a->type == T_DSTDOM_REGEX))
            ;   /* we never look names up for these: -n is our behaviour already */
        else {
            report(c, file, line, 0, "acl %s: unsupported option '%s' for type %s", name, o,
                   tname);
            return;
        }
    }
    if (i >= argc) {
        report(c, file, line, 0, "acl %s: no values", name);
        return;
    }
    if (a->type == T_TIME) {
        add_time(c, a, argv + i, argc - i, file, line);
        return;
    }
    if (a->type == T_MAXCONN && argc - i != 1) {
        report(c, file, line, 0, "acl %s: maxconn takes one number", name);
        return;
    }
    for (; i < argc; i++) {
        const char *v = argv[i];
        if (is_regex_type(a->type) && (strcmp(v, "-i") == 0 || strcmp(v, "+i") == 0)) {
            icase = v[0] == '-';
            continue;
        }
        if (is_quoted(v)) {
            char path[4096];
            size_t n = strlen(v) - 2;
            if (n >= sizeof(path)) {
                report(c, file, line, 0, "acl %s: file name too long", name);
                continue;
            }
            memcpy(path, v + 1, n);
            path[n] = '\0';
            add_file(c, a, path, icase, header, file, line);
            continue;
        }
        add_value(c, a, v, icase, header, file, line);
    }
}

/* --------------------------------------------------------- access lines */

/*
 * The acl words of a line (ANDed, "!" negates) into ru->terms. reply: whether
 * a reply is known where the line is evaluated; a reply acl elsewhere is
 * never true, which Squid only warns about, and so do we. -1 on error.
 */
static int parse_terms(struct ctx *c, struct rule *ru, const char *dir, const char *file,
                       int line, int argc, char **argv, int reply)
{
    ru->terms = calloc((size_t)argc + 1, sizeof(struct term));
    ru->n = 0;
    if (!ru->terms) {
        report(c, file, line, 0, "out of memory");
        return -1;
    }
    int bad = 0;
    for (int i = 0; i < argc; i++) {
        const char *n = argv[i];
        int neg = 0;
        if (n[0] == '!') {
            neg = 1;
            n++;
        }
        const struct acl *a = find_acl(c->r, n);
        if (!a) {
            report(c, file, line, 0, "%s: unknown acl '%s'", dir, n);
            bad = 1;
            continue;
        }
        if (!reply && is_reply_type(a->type))
            report(c, file, line, 1, "%s: acl %s (%s) needs a reply, which %s has not: "
                   "it never matches here", dir, n, type_name(a->type), dir);
        ru->terms[ru->n++] = (struct term){ a, neg };
    }
    if (bad) {
        free(ru->terms);
        ru->terms = NULL;
        return -1;
    }
    return 0;
}

static int rule_push(struct ctx *c, struct rulelist *rl, struct rule *ru, const char *file,
                     int line)
{
    if (grow(&rl->v, &rl->cap, rl->n, sizeof(struct rule)) < 0) {
        free(ru->terms);
        report(c, file, line, 0, "out of memory");
        return -1;
    }
    rl->v[rl->n++] = *ru;
    return 0;
}

static void access_line(struct ctx *c, struct rulelist *rl, const char *dir, const char *file,
                        int line, int argc, char **argv, int reply)
{
    if (argc < 1 || (strcmp(argv[0], "allow") != 0 && strcmp(argv[0], "deny") != 0)) {
        report(c, file, line, 0, "%s: expected 'allow' or 'deny'", dir);
        return;
    }
    if (argc < 2) {
        report(c, file, line, 0, "%s %s: no acl name", dir, argv[0]);
        return;
    }
    struct rule ru = { .allow = strcmp(argv[0], "allow") == 0 };
    if (parse_terms(c, &ru, dir, file, line, argc - 1, argv + 1, reply) == 0)
        rule_push(c, rl, &ru, file, line);
}

/* Squid's byte units for reply_body_max_size (a number without one is bytes). */
static int size_unit(const char *u, uint64_t *mult)
{
    static const struct { const char *n; uint64_t m; } units[] = {
        { "bytes", 1 }, { "byte", 1 }, { "B", 1 }, { "KB", 1024 }, { "MB", 1024 * 1024 },
        { "GB", 1024ull * 1024 * 1024 },
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(u, units[i].n) == 0) {
            *mult = units[i].m;
            return 0;
        }
    return -1;
}

/* reply_body_max_size SIZE [UNIT] [!]ACL... | none [!]ACL... */
static void rbms_line(struct ctx *c, const char *file, int line, int argc, char **argv)
{
    const char *dir = "reply_body_max_size";
    struct rule ru = { .allow = 1, .size = UINT64_MAX };
    int i = 1;
    if (strcmp(argv[0], "none") != 0) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(argv[0], &end, 10);
        uint64_t mult = 1;
        if (argv[0][0] < '0' || argv[0][0] > '9' || errno || *end) {
            report(c, file, line, 0, "%s: bad size '%s'", dir, argv[0]);
            return;
        }
        if (argc > 1 && size_unit(argv[1], &mult) == 0)
            i = 2;
        if (mult > 1 && n > UINT64_MAX / mult) {
            report(c, file, line, 0, "%s: size too large", dir);
            return;
        }
        ru.size = (uint64_t)n * mult;
    }
    if (parse_terms(c, &ru, dir, file, line, argc - i, argv + i, 0) == 0)
        rule_push(c, &c->r->rbms, &ru, file, line);
}

/* tcp_outgoing_address ADDRESS [!]ACL... */
static void toa_line(struct ctx *c, const char *file, int line, int argc, char **argv)
{
    const char *dir = "tcp_outgoing_address";
    struct rule ru = { .allow = 1 };
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ru.addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ru.addr;
    if (inet_pton(AF_INET, argv[0], &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, argv[0], &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
    } else {
        report(c, file, line, 0, "%s: '%s' is not an IP address", dir, argv[0]);
        return;
    }
    if (parse_terms(c, &ru, dir, file, line, argc - 1, argv + 1, 0) == 0)
        rule_push(c, &c->r->toa, &ru, file, line);
}

static void deny_info_line(struct ctx *c, const char *file, int line, int argc, char **argv)
{
    pd_acl_rules *r = c->r;
    if (argc < 2) {
        report(c, file, line, 0, "deny_info: expected 'deny_info PAGE|URL ACL...'");
        return;
    }
    for (int i = 1; i < argc; i++) {
        if (!find_acl(r, argv[i]))
            report(c, file, line, 1, "deny_info: unknown acl '%s'", argv[i]);
        if (grow(&r->di, &r->cap_di, r->n_di, sizeof(struct dinfo)) < 0) {
            report(c, file, line, 0, "out of memory");
            return;
        }
        struct dinfo d = { strdup(argv[0]), strdup(argv[i]) };
        if (!d.page || !d.acl) {
            free(d.page);
            free(d.acl);
            report(c, file, line, 0, "out of memory");
            return;
        }
        r->di[r->n_di++] = d;
    }
}

/* ------------------------------------------------- external_acl_type */

static const struct {
    const char *name;
    enum ext_code code;
} ext_codes[] = {
    { "%LOGIN", X_LOGIN }, { "%un", X_LOGIN }, { "%ul", X_LOGIN }, { "%SRC", X_SRC },
    { "%>a", X_SRC }, { "%SRCPORT", X_SRCPORT }, { "%>p", X_SRCPORT }, { "%DST", X_DST },
    { "%>rd", X_DST }, { "%MYPORT", X_MYPORT }, { "%>lp", X_MYPORT }, { "%URI", X_URI },
    { "%>ru", X_URI }, { "%PATH", X_PATH }, { "%>rp", X_PATH }, { "%METHOD", X_METHOD },
    { "%>rm", X_METHOD }, { "%PORT", X_PORT }, { "%>rP", X_PORT }, { "%PROTO", X_PROTO },
    { "%>rs", X_PROTO }, { "%DATA", X_DATA },
};

static int ext_int(const char *v, int min, int max, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < min || n > max)
        return -1;
    *out = (int)n;
    return 0;
}

static void ext_type_free(struct ext_type *t)
{
    for (size_t i = 0; i < t->nf; i++)
        free(t->f[i].header);
    free(t->f);
    for (size_t i = 0; t->argv && t->argv[i]; i++)
        free(t->argv[i]);
    free(t->argv);
    free(t->name);
}

/* external_acl_type NAME [options] FORMAT... /path/to/helper [args] */
static void ext_type_line(struct ctx *c, const char *file, int line, int argc, char **argv)
{
    pd_acl_rules *r = c->r;
    if (argc < 2 || !valid_name(argv[0])) {
        report(c, file, line, 0, "external_acl_type: expected NAME [options] FORMAT... /helper");
        return;
    }
    for (size_t i = 0; i < r->n_ext; i++)
        if (strcmp(r->ext[i].name, argv[0]) == 0) {
            report(c, file, line, 0, "external_acl_type %s: defined twice", argv[0]);
            return;
        }
    struct ext_type t = { .info = { .ttl = 3600, .negative_ttl = -1, .children_max = 5,
                                    .startup = 0, .idle = 1, .queue_size = -1 } };
    int i = 1, bad = 0;
    for (; i < argc && argv[i][0] != '%' && argv[i][0] != '/'; i++) {
        const char *o = argv[i], *eq = strchr(o, '=');
        const char *v = eq ? eq + 1 : "";
        size_t kl = eq ? (size_t)(eq - o) : strlen(o);
#define OPT(s) (kl == strlen(s) && strncmp(o, s, kl) == 0)
        int rc = 0;
        if (OPT("ttl"))
            rc = ext_int(v, 0, 100000000, &t.info.ttl);
        else if (OPT("negative_ttl"))
            rc = ext_int(v, 0, 100000000, &t.info.negative_ttl);
        else if (OPT("children-max") || OPT("children"))
            rc = ext_int(v, 1, 10000, &t.info.children_max);
        else if (OPT("children-startup"))
            rc = ext_int(v, 0, 10000, &t.info.startup);
        else if (OPT("children-idle"))
            rc = ext_int(v, 1, 10000, &t.info.idle);
        else if (OPT("concurrency"))
            rc = ext_int(v, 0, 100000, &t.info.concurrency);
        else if (OPT("queue-size"))
            rc = ext_int(v, 0, 1000000, &t.info.queue_size);
        else if (OPT("cache"))
            rc = ext_int(v, 0, 100000000, &t.info.cache);
        else if (OPT("grace"))
            rc = ext_int(v, 0, 100, &t.info.grace);   /* accepted: answers are never stale */
        else if (OPT("ipv4") || OPT("ipv6"))
            rc = eq ? -1 : 0;
        else if (OPT("protocol"))
            rc = strcmp(v, "3.0") == 0 ? 0 : -1;
        else if (OPT("quote"))
            rc = strcmp(v, "url") == 0 ? 0 : -1;
        else {
            report(c, file, line, 0, "external_acl_type %s: unknown option '%s'", argv[0], o);
            bad = 1;
            continue;
        }
#undef OPT
        if (rc) {
            report(c, file, line, 0, "external_acl_type %s: bad value in '%s'", argv[0], o);
            bad = 1;
        }
    }
    for (; i < argc && argv[i][0] == '%'; i++) {
        const char *w = argv[i];
        struct ext_fmt f = { 0 };
        size_t k;
        for (k = 0; k < sizeof ext_codes / sizeof ext_codes[0]; k++)
            if (strcmp(w, ext_codes[k].name) == 0)
                break;
        if (k < sizeof ext_codes / sizeof ext_codes[0]) {
            f.code = ext_codes[k].code;
        } else {
            /* a request header: %>{Name}, %>ha{Name} or the old %{Name} */
            const char *h = !strncmp(w, "%>{", 3) ? w + 3 : !strncmp(w, "%>ha{", 5) ? w + 5
                          : !strncmp(w, "%{", 2) ? w + 2 : NULL;
            size_t n = h ? strlen(h) : 0;
            if (!h || n < 2 || h[n - 1] != '}' || memchr(h, ':', n)) {
                report(c, file, line, 0, "external_acl_type %s: format '%s' is not supported",
                       argv[0], w);
                bad = 1;
                continue;
            }
            f.code = X_HEADER;
            f.header = strndup(h, n - 1);
        }
        if (f.code == X_DATA)
            t.data_used = 1;
        if (f.code == X_LOGIN)
            t.needs_login = 1;
        if (grow(&t.f, &t.cap_f, t.nf, sizeof *t.f) < 0) {
            free(f.header);
            bad = 1;
            break;
        }
        t.f[t.nf++] = f;
    }
    if (i >= argc || argv[i][0] != '/') {
        report(c, file, line, 0, "external_acl_type %s: expected the helper's absolute path "
               "after the format", argv[0]);
        bad = 1;
    } else if (t.nf == 0) {
        report(c, file, line, 0, "external_acl_type %s: no format", argv[0]);
        bad = 1;
    }
    if (!bad && t.info.startup > t.info.children_max) {
        report(c, file, line, 0, "external_acl_type %s: children-startup above children-max",
               argv[0]);
        bad = 1;
    }
    if (!bad) {
        t.argv = calloc((size_t)(argc - i) + 1, sizeof *t.argv);
        for (int k = 0; t.argv && k < argc - i; k++)
            if (!(t.argv[k] = strdup(argv[i + k])))
                bad = 1;
        t.name = strdup(argv[0]);
        if (!t.argv || !t.name || grow(&r->ext, &r->cap_ext, r->n_ext, sizeof *r->ext) < 0)
            bad = 1;
    }
    if (bad) {
        ext_type_free(&t);
        return;
    }
    if (t.info.negative_ttl < 0)
        t.info.negative_ttl = t.info.ttl;
    t.info.name = t.name;
    t.info.argv = t.argv;
    t.info.needs_login = t.needs_login;
    r->ext[r->n_ext++] = t;
}

size_t pd_acl_ext_count(const pd_acl_rules *rules)
{
    return rules ? rules->n_ext : 0;
}

const pd_acl_ext_info *pd_acl_ext_get(const pd_acl_rules *rules, size_t i)
{
    return rules && i < rules->n_ext ? &rules->ext[i].info : NULL;
}

/* ----------------------------------------------------------- compile */

static const char *const predefined[] = {
    "all src all",
    "localhost src 127.0.0.1/32 ::1",
    /* "::" and 0.0.0.0 connect to the local host on Linux */
    "to_localhost dst 127.0.0.0/8 0.0.0.0/32 ::1 ::/128",
    "to_linklocal dst 169.254.0.0/16 fe80::/10",
    "CONNECT method CONNECT",
    "manager url_regex -i ^cache_object:// +i ^https?://[^/]+/squid-internal-mgr/",
};

static void add_predefined(struct ctx *c)
{
    for (size_t k = 0; k < sizeof(predefined) / sizeof(predefined[0]); k++) {
        char buf[256], *argv[16];
        int argc = 0;
        snprintf(buf, sizeof(buf), "%s", predefined[k]);
        for (char *t = strtok(buf, " "); t && argc < 15; t = strtok(NULL, " "))
            argv[argc++] = t;
        argv[argc] = NULL;
        acl_line(c, "(predefined)", 0, argc, argv);
    }
}

static pd_acl_rules *compile(struct ctx *cp, const pd_conf *conf);

pd_acl_rules *pd_acl_compile(const pd_conf *conf, FILE *err)
{
    return pd_acl_compile_counted(conf, err, NULL, NULL);
}

pd_acl_rules *pd_acl_compile_counted(const pd_conf *conf, FILE *err, int *n_errors,
                                     int *n_warnings)
{
    struct ctx c = { .err = err };
    pd_acl_rules *r = compile(&c, conf);
    if (n_errors)
        *n_errors = c.errors;
    if (n_warnings)
        *n_warnings = c.warnings;
    return r;
}

static pd_acl_rules *compile(struct ctx *cp, const pd_conf *conf)
{
    struct ctx c = *cp;
    if (!conf) {
        report(&c, "?", 0, 0, "no configuration");
        *cp = c;
        return NULL;
    }
    pd_acl_rules *r = calloc(1, sizeof(*r));
    if (!r) {
        *cp = c;
        return NULL;
    }
    r->magic = RULES_MAGIC;
    c.r = r;
    add_predefined(&c);

    const pd_conf_lines *L = &conf->external_acl_type;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        ext_type_line(&c, keep_file(&c, l->file ? l->file : "?"), l->line, l->argc, l->argv);
    }
    L = &conf->acl;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        acl_line(&c, keep_file(&c, l->file ? l->file : "?"), l->line, l->argc, l->argv);
    }
    for (size_t i = 0; i < r->n_acls; i++) {
        struct acl *a = r->acls[i];
        if (a->type == T_DSTDOMAIN)
            dom_warn_redundant(&c, a);
        if (a->type == T_EXTERNAL && r->ext[a->ext].needs_login && !conf->auth_basic.helper.argv)
            report(&c, a->file, a->line, 0,
                   "acl %s: external_acl_type %s sends %%LOGIN: it needs auth_param basic",
                   a->name, r->ext[a->ext].name);
        if (is_auth_type(a->type)) {
            a->user_icase = !conf->auth_basic.casesensitive;
            if (!conf->auth_basic.helper.argv)
                report(&c, a->file, a->line, 0,
                       "acl %s: %s needs an authentication helper (auth_param basic program)",
                       a->name, type_name(a->type));
            if (a->type == T_PROXY_AUTH && a->any && a->n_strs)
                report(&c, a->file, a->line, 0,
                       "acl %s: REQUIRED cannot be mixed with user names", a->name);
        }
    }

    L = &conf->http_access;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        access_line(&c, &r->http, "http_access", l->file ? l->file : "?", l->line, l->argc,
                    l->argv, 0);
    }
    L = &conf->cache_rules;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        /* checked on the request, before any reply: reply acls never match there */
        access_line(&c, &r->cache, "cache", l->file ? l->file : "?", l->line, l->argc, l->argv,
                    0);
    }
    static const struct {
        const char *dir;
        size_t conf_off, rules_off;
        int reply;
    } lists[] = {
        { "http_reply_access", offsetof(pd_conf, http_reply_access),
          offsetof(pd_acl_rules, reply), 1 },
        { "miss_access", offsetof(pd_conf, miss_access), offsetof(pd_acl_rules, miss), 0 },
        { "follow_x_forwarded_for", offsetof(pd_conf, follow_x_forwarded_for),
          offsetof(pd_acl_rules, fxff), 0 },
    };
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        L = (const pd_conf_lines *)((const char *)conf + lists[k].conf_off);
        struct rulelist *rl = (struct rulelist *)((char *)r + lists[k].rules_off);
        for (size_t i = 0; i < L->n; i++) {
            const pd_conf_line *l = &L->v[i];
            access_line(&c, rl, lists[k].dir, l->file ? l->file : "?", l->line, l->argc,
                        l->argv, lists[k].reply);
        }
    }
    L = &conf->reply_body_max_size;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        rbms_line(&c, l->file ? l->file : "?", l->line, l->argc, l->argv);
    }
    L = &conf->tcp_outgoing_address;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        toa_line(&c, l->file ? l->file : "?", l->line, l->argc, l->argv);
    }
    L = &conf->url_rewrite_access;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        access_line(&c, &r->rewrite, "url_rewrite_access", l->file ? l->file : "?", l->line,
                    l->argc, l->argv, 0);
    }
    L = &conf->store_id_access;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        access_line(&c, &r->storeid, "store_id_access", l->file ? l->file : "?", l->line,
                    l->argc, l->argv, 0);
    }
    L = &conf->deny_info;
    for (size_t i = 0; i < L->n; i++) {
        const pd_conf_line *l = &L->v[i];
        deny_info_line(&c, l->file ? l->file : "?", l->line, l->argc, l->argv);
    }
    *cp = c;
    if (c.errors) {
        pd_acl_rules_free(r);
        return NULL;
    }
    return r;
}

static void acl_free(struct acl *a)
{
    free(a->name);
    free(a->ips);
    free(a->ports);
    for (size_t i = 0; i < a->n_rxs; i++)
        regfree(&a->rxs[i].re);
    free(a->rxs);
    for (size_t i = 0; i < a->n_strs; i++)
        free(a->strs[i]);
    free(a->strs);
    free(a->times);
    for (size_t i = 0; i < a->dom.cap; i++)
        free(a->dom.slot[i].name);
    free(a->dom.slot);
    free(a);
}

void pd_acl_rules_free(pd_acl_rules *r)
{
    if (!r)
        return;
    if (r->magic != RULES_MAGIC)
        abort();    /* our invariant: a double free or a stray pointer */
    for (size_t i = 0; i < r->n_acls; i++)
        acl_free(r->acls[i]);
    free(r->acls);
    for (size_t i = 0; i < r->http.n; i++)
        free(r->http.v[i].terms);
    free(r->http.v);
    for (size_t i = 0; i < r->cache.n; i++)
        free(r->cache.v[i].terms);
    free(r->cache.v);
    struct rulelist *more[] = { &r->reply, &r->miss, &r->fxff, &r->rbms, &r->toa, &r->rewrite,
                                &r->storeid };
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
        for (size_t i = 0; i < more[k]->n; i++)
            free(more[k]->v[i].terms);
        free(more[k]->v);
    }
    for (size_t i = 0; i < r->n_di; i++) {
        free(r->di[i].page);
        free(r->di[i].acl);
    }
    free(r->di);
    for (size_t i = 0; i < r->n_ext; i++)
        ext_type_free(&r->ext[i]);
    free(r->ext);
    for (size_t i = 0; i < r->n_files; i++)
        free(r->files[i]);
    free(r->files);
    r->magic = 0;
    free(r);
}

/* -------------------------------------------------------------- match */

enum { NO = 0, YES = 1, NEED = 2, NEED_AUTH = 3, AUTH_FAILED = 4, NEED_EXT = 5, EXT_FAILED = 6 };

/* Squid's quote=url: unsafe bytes as %XX, an empty value as "-". */
static void ext_put(char *buf, size_t size, size_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (*o && *o < size)
        buf[(*o)++] = ' ';
    if (!s || n == 0) {
        s = "-";
        n = 1;
    }
    for (size_t i = 0; i < n && *o + 3 < size; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 0x20 || ch >= 0x7f || strchr("\"#%<>{}|\\^~[]`'", ch)) {
            buf[(*o)++] = '%';
            buf[(*o)++] = hex[ch >> 4];
            buf[(*o)++] = hex[ch & 15];
        } else {
            buf[(*o)++] = (char)ch;
        }
    }
    if (*o >= size)
        *o = size - 1;
    buf[*o] = '\0';
}

static void ext_put_data(const struct acl *a, char *buf, size_t size, size_t *o)
{
    if (a->n_strs == 0)
        ext_put(buf, size, o, "-", 1);
    for (size_t i = 0; i < a->n_strs; i++)
        ext_put(buf, size, o, a->strs[i], strlen(a->strs[i]));
}

/* The line for the helper (without channel ID and newline). -1 when too long. */
static int ext_format(const struct ext_type *t, const struct acl *a, const pd_acl_req *q,
                      char *buf, size_t size)
{
    size_t o = 0;
    char tmp[64];
    buf[0] = '\0';
    const pd_url *u = q->url;
    for (size_t i = 0; i < t->nf; i++) {
        const struct ext_fmt *f = &t->f[i];
        switch (f->code) {
        case X_LOGIN:
            ext_put(buf, size, &o, q->user, q->user ? strlen(q->user) : 0);
            break;
        case X_SRC:
        case X_SRCPORT: {
            char ip[INET6_ADDRSTRLEN] = "";
            unsigned port = 0;
            const struct sockaddr *sa = q->client;
            if (sa && sa->sa_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
                inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
                port = ntohs(s4->sin_port);
            } else if (sa && sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
                inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
                port = ntohs(s6->sin6_port);
            }
            if (f->code == X_SRC) {
                ext_put(buf, size, &o, ip, strlen(ip));
            } else {
                snprintf(tmp, sizeof tmp, "%u", port);
                ext_put(buf, size, &o, tmp, port ? strlen(tmp) : 0);
            }
            break;
        }
        case X_DST:
            ext_put(buf, size, &o, u ? u->host : NULL, u ? strlen(u->host) : 0);
            break;
        case X_MYPORT:
            snprintf(tmp, sizeof tmp, "%u", (unsigned)q->local_port);
            ext_put(buf, size, &o, tmp, strlen(tmp));
            break;
        case X_URI: {
            char url[PD_URL_HOST_MAX + 4096];
            size_t n = u ? pd_url_format(u, url, sizeof url) : 0;
            if (n >= sizeof url)
                return -1;
            ext_put(buf, size, &o, url, n);
            break;
        }
        case X_PATH:
            ext_put(buf, size, &o, u ? u->path : NULL, u && u->path ? u->path_len : 0);
            break;
        case X_METHOD:
            ext_put(buf, size, &o, q->msg ? q->msg->method.p : NULL,
                    q->msg ? q->msg->method.len : 0);
            break;
        case X_PORT:
            snprintf(tmp, sizeof tmp, "%u", u ? (unsigned)u->port : 0u);
            ext_put(buf, size, &o, tmp, u ? strlen(tmp) : 0);
            break;
        case X_PROTO:
            ext_put(buf, size, &o, u ? u->scheme : NULL, u ? strlen(u->scheme) : 0);
            break;
        case X_HEADER: {
            /* every field of that name, joined by ", " as one value (Squid) */
            char v[4096];
            size_t n = 0;
            for (const pd_header *h = q->msg ? pd_http_msg_find(q->msg, f->header) : NULL; h;
                 h = pd_http_msg_find_next(q->msg, h)) {
                if (n + h->value.len + 2 >= sizeof v)
                    return -1;
                if (n) {
                    v[n++] = ',';
                    v[n++] = ' ';
                }
                memcpy(v + n, h->value.p, h->value.len);
                n += h->value.len;
            }
            ext_put(buf, size, &o, v, n);
            break;
        }
        case X_DATA:
            ext_put_data(a, buf, size, &o);
            break;
        }
    }
    if (!t->data_used && a->n_strs)
        ext_put_data(a, buf, size, &o);
    return o + 8 < size ? 0 : -1;
}

/* notes ("key=value\n"...) hold key, with one of values (any value when n is 0).
 * A helper's message= and log= are texts for people (error pages, the access
 * log), never matched. */
static int match_note(const char *notes, const char *key, const char *const *values, size_t n)
{
    if (!strcmp(key, "message") || !strcmp(key, "log"))
        return 0;
    size_t kl = strlen(key);
    for (const char *p = notes; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > kl && p[kl] == '=' && !memcmp(p, key, kl)) {
            const char *v = p + kl + 1;
            size_t vl = len - kl - 1;
            if (n == 0)
                return 1;
            for (size_t i = 0; i < n; i++)
                if (strlen(values[i]) == vl && !memcmp(values[i], v, vl))
                    return 1;
        }
        p = end ? end + 1 : p + len;
    }
    return 0;
}

/* external: the worker's answer for this line, or NEED_EXT with the line
 * left in q->ext_pending for the caller to ask the helper. */
static int match_external(const pd_acl_rules *r, const struct acl *a, const pd_acl_req *q)
{
    const struct ext_type *t = &r->ext[a->ext];
    if (t->needs_login) {
        if (q->auth_state == PD_AUTH_NONE)
            return NEED_AUTH;
        if (q->auth_state != PD_AUTH_OK)
            return AUTH_FAILED;
    }
    if (!q->ext_lookup || !q->ext_pending)
        return EXT_FAILED;
    pd_acl_ext_query *pq = q->ext_pending;
    if (ext_format(t, a, q, pq->line, sizeof pq->line) < 0)
        return EXT_FAILED;
    pq->type = a->ext;
    switch (q->ext_lookup(q->ext_ctx, a->ext, pq->line)) {
    case PD_ACL_EXT_MATCH:
        return YES;
    case PD_ACL_EXT_NOMATCH:
        return NO;
    case PD_ACL_EXT_UNKNOWN:
        return NEED_EXT;
    default:
        return EXT_FAILED;
    }
}


static int sa_to16(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        to16_v4(&((const struct sockaddr_in *)sa)->sin_addr, out);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(out, ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, 16);
        return 0;
    }
    return -1;
}

static int ip_in(const struct acl *a, const uint8_t x[16])
{
    for (size_t i = 0; i < a->n_ips; i++)
        if (memcmp(x, a->ips[i].lo, 16) >= 0 && memcmp(x, a->ips[i].hi, 16) <= 0)
            return 1;
    return 0;
}

static int match_dst(const struct acl *a, const pd_acl_req *q)
{
    uint8_t x[16];
    if (a->any)
        return YES;
    if (!q->url)
        return NO;
    if (q->url->host_ip) {
        /* an IP literal is its own destination: no DNS needed */
        return parse_addr(q->url->host, x) && ip_in(a, x) ? YES : NO;
    }
    if (!q->dst)
        return NEED;
    for (int i = 0; i < q->n_dst; i++)
        if (sa_to16((const struct sockaddr *)&q->dst[i], x) == 0 && ip_in(a, x))
            return YES;
    return NO;
}

static int rx_any(const struct acl *a, const char *s)
{
    for (size_t i = 0; i < a->n_rxs; i++)
        if (regexec(&a->rxs[i].re, s, 0, NULL, 0) == 0)
            return 1;
    return 0;
}

static int match_url_regex(const struct acl *a, const pd_url *u)
{
    char small[1024];
    size_t n = pd_url_format(u, small, sizeof(small));
    if (n < sizeof(small))
        return rx_any(a, small);
    char *big = malloc(n + 1);
    if (!big)
        return 0;
    pd_url_format(u, big, n + 1);
    int m = rx_any(a, big);
    free(big);
    return m;
}

/* Each header instance is tried alone (Squid joins them with ", "). */
static int match_header(const struct acl *a, const pd_http_msg *msg)
{
    if (!msg)
        return 0;
    for (size_t i = 0; i < a->n_rxs; i++) {
        const struct rx *x = &a->rxs[i];
        for (const pd_header *h = pd_http_msg_find(msg, x->header); h;
             h = pd_http_msg_find_next(msg, h)) {
            /* the view is not NUL-terminated: REG_STARTEND bounds it */
            regmatch_t pm = { 0, (regoff_t)h->value.len };
            if (regexec(&x->re, h->value.p ? h->value.p : "", 1, &pm, REG_STARTEND) == 0)
                return 1;
        }
    }
    return 0;
}

static int match_method(const struct acl *a, const pd_acl_req *q)
{
    pd_str m = { NULL, 0 };
    if (q->msg && q->msg->method.p)
        m = q->msg->method;
    else if (q->is_connect)
        m = PD_STR("CONNECT");
    for (size_t i = 0; i < a->n_strs; i++)
        if (m.p && strlen(a->strs[i]) == m.len && memcmp(a->strs[i], m.p, m.len) == 0)
            return 1;
    return 0;
}

static int match_proto(const struct acl *a, const pd_acl_req *q)
{
    const char *p = q->is_connect ? "AUTHORITY" : q->url ? q->url->scheme : "";
    for (size_t i = 0; i < a->n_strs; i++)
        if (strcasecmp(a->strs[i], p) == 0)
            return 1;
    return 0;
}

static int match_time(const struct acl *a, time_t now)
{
    struct tm tm;
    if (!localtime_r(&now, &tm))
        return 0;
    int m = tm.tm_hour * 60 + tm.tm_min;
    for (size_t i = 0; i < a->n_times; i++) {
        const struct tspec *t = &a->times[i];
        if ((t->days & (1u << tm.tm_wday)) && m >= t->from && m <= t->to)
            return 1;
    }
    return 0;
}

static int ports_in(const struct acl *a, unsigned p)
{
    for (size_t i = 0; i < a->n_ports; i++)
        if (p >= a->ports[i].lo && p <= a->ports[i].hi)
            return 1;
    return 0;
}

/* proxy_auth, proxy_auth_regex: the credentials must be checked first (a
 * helper), and without valid ones the answer is 407 whatever the line says. */
static int match_user(const struct acl *a, const pd_acl_req *q)
{
    if (q->auth_state == PD_AUTH_NONE)
        return NEED_AUTH;
    if (q->auth_state != PD_AUTH_OK || !q->user)
        return AUTH_FAILED;
    if (a->type == T_PROXY_AUTH_REGEX)
        return rx_any(a, q->user);
    if (a->any)
        return YES;
    for (size_t i = 0; i < a->n_strs; i++)
        if (a->user_icase ? strcasecmp(a->strs[i], q->user) == 0
                          : strcmp(a->strs[i], q->user) == 0)
            return YES;
    return NO;
}

static int acl_match(const pd_acl_rules *r, const struct acl *a, const pd_acl_req *q)
{
    const pd_url *u = q->url;
    uint8_t x[16];
    switch (a->type) {
    case T_SRC:
        if (a->any)
            return YES;
        return sa_to16(q->client, x) == 0 && ip_in(a, x);
    case T_DST:
        return match_dst(a, q);
    case T_DSTDOMAIN:
        return u && dom_match(&a->dom, u->host);
    case T_DSTDOM_REGEX:
        return u && rx_any(a, u->host);
    case T_URL_REGEX:
        return u && match_url_regex(a, u);
    case T_URLPATH_REGEX:
        return u && u->path && rx_any(a, u->path);
    case T_PORT:
        return u && ports_in(a, u->port);
    case T_LOCALPORT:
        return ports_in(a, q->local_port);
    case T_METHOD:
        return match_method(a, q);
    case T_PROTO:
        return match_proto(a, q);
    case T_TIME:
        return match_time(a, q->now);
    case T_MAXCONN:
        return a->maxconn >= 0 && q->client_conns > a->maxconn;
    case T_REQ_HEADER:
    case T_BROWSER:
    case T_REFERER_REGEX:
        return match_header(a, q->msg);
    case T_REP_HEADER:
    case T_REP_MIME_TYPE:
        return match_header(a, q->reply);
    case T_HTTP_STATUS:
        return q->reply && ports_in(a, (unsigned)q->reply->status);
    case T_PROXY_AUTH:
    case T_PROXY_AUTH_REGEX:
        return match_user(a, q);
    case T_EXTERNAL:
        return match_external(r, a, q);
    case T_NOTE:
        /* note NAME [VALUE...]: the annotation, with one of the values if any */
        return a->n_strs > 0 && match_note(q->notes, a->strs[0],
                                           (const char *const *)a->strs + 1, a->n_strs - 1);
    case T_TAG:
        return match_note(q->notes, "tag", (const char *const *)a->strs, a->n_strs);
    }
    return NO;
}

/* The first line of rl whose acls all match: its index, -1 for none; an acl
 * that cannot decide now (DNS, a helper) does not match. */
static long first_match(const pd_acl_rules *r, const struct rulelist *rl, const pd_acl_req *q)
{
    for (size_t i = 0; i < rl->n; i++) {
        const struct rule *ru = &rl->v[i];
        int all = 1;
        for (size_t k = 0; k < ru->n && all; k++) {
            int m = acl_match(r, ru->terms[k].acl, q);
            if ((m == YES) == ru->terms[k].neg)
                all = 0;
        }
        if (all)
            return (long)i;
    }
    return -1;
}

static enum pd_acl_verdict eval(const pd_acl_rules *r, const struct rulelist *rl,
                                const pd_acl_req *q,
                                enum pd_acl_verdict when_empty, const char **deny_acl)
{
    if (deny_acl)
        *deny_acl = NULL;
    for (size_t i = 0; i < rl->n; i++) {
        const struct rule *ru = &rl->v[i];
        const char *last = NULL;
        int all = 1;
        for (size_t k = 0; k < ru->n && all; k++) {
            const struct term *t = &ru->terms[k];
            last = t->acl->name;
            int m = acl_match(r, t->acl, q);
            if (m == NEED)
                return PD_ACL_NEED_DST;     /* lazily, as Squid's slow acls */
            if (m == NEED_AUTH)
                return PD_ACL_NEED_AUTH;
            if (m == AUTH_FAILED)
                return PD_ACL_AUTH_REQUIRED;
            if (m == NEED_EXT)
                return PD_ACL_NEED_EXT;
            if (m == EXT_FAILED) {      /* a helper that failed never lets a request through */
                if (deny_acl)
                    *deny_acl = t->acl->name;
                return PD_ACL_DENY;
            }
            if ((m == YES) == t->neg)
                all = 0;
        }
        if (all) {
            if (!ru->allow && deny_acl)
                *deny_acl = last;
            /* Squid: a deny line ending in an auth acl asks for other credentials */
            if (!ru->allow && ru->n && is_auth_type(ru->terms[ru->n - 1].acl->type))
                return PD_ACL_AUTH_REQUIRED;
            return ru->allow ? PD_ACL_ALLOW : PD_ACL_DENY;
        }
    }
    if (rl->n == 0)
        return when_empty;
    return rl->v[rl->n - 1].allow ? PD_ACL_DENY : PD_ACL_ALLOW;
}

enum pd_acl_verdict pd_acl_check_http(const pd_acl_rules *rules, const pd_acl_req *req,
                                      const char **deny_acl)
{
    if (!rules || rules->magic != RULES_MAGIC || !req) {
        if (deny_acl)
            *deny_acl = NULL;
        return PD_ACL_DENY;     /* no rules is never an open proxy */
    }
    return eval(rules, &rules->http, req, PD_ACL_DENY, deny_acl);
}

enum pd_acl_verdict pd_acl_check_cache(const pd_acl_rules *rules, const pd_acl_req *req)
{
    if (!rules || rules->magic != RULES_MAGIC || !req)
        return PD_ACL_ALLOW;
    return eval(rules, &rules->cache, req, PD_ACL_ALLOW, NULL);
}

enum pd_acl_verdict pd_acl_check_rewrite(const pd_acl_rules *rules, const pd_acl_req *req)
{
    if (!rules || rules->magic != RULES_MAGIC || !req)
        return PD_ACL_ALLOW;
    enum pd_acl_verdict v = eval(rules, &rules->rewrite, req, PD_ACL_ALLOW, NULL);
    /* a fast check: what it cannot decide now does not match (Squid) */
    return v == PD_ACL_ALLOW ? PD_ACL_ALLOW : PD_ACL_DENY;
}

enum pd_acl_verdict pd_acl_check_store_id(const pd_acl_rules *rules, const pd_acl_req *req)
{
    if (!rules || rules->magic != RULES_MAGIC || !req)
        return PD_ACL_ALLOW;
    enum pd_acl_verdict v = eval(rules, &rules->storeid, req, PD_ACL_ALLOW, NULL);
    /* a fast check, as url_rewrite_access */
    return v == PD_ACL_ALLOW ? PD_ACL_ALLOW : PD_ACL_DENY;
}

int pd_acl_names_method(const pd_acl_rules *rules, const char *method)
{
    if (!rules || !method)
        return 0;
    for (size_t i = 0; i < rules->n_acls; i++) {
        const struct acl *a = rules->acls[i];
        if (a->type != T_METHOD)
            continue;
        for (size_t j = 0; j < a->n_strs; j++)
            if (strcmp(a->strs[j], method) == 0)
                return 1;
    }
    return 0;
}

const char *pd_acl_deny_info(const pd_acl_rules *rules, const char *acl_name)
{
    if (!rules || !acl_name)
        return NULL;
    /* Squid: the first deny_info naming the acl wins */
    for (size_t i = 0; i < rules->n_di; i++)
        if (strcmp(rules->di[i].acl, acl_name) == 0)
            return rules->di[i].page;
    return NULL;
}

enum pd_acl_verdict pd_acl_check_reply(const pd_acl_rules *rules, const pd_acl_req *req,
                                       const char **deny_acl)
{
    if (deny_acl)
        *deny_acl = NULL;
    if (!rules || rules->magic != RULES_MAGIC || !req || rules->reply.n == 0)
        return PD_ACL_ALLOW;
    long i = first_match(rules, &rules->reply, req);
    if (i < 0)
        return rules->reply.v[rules->reply.n - 1].allow ? PD_ACL_DENY : PD_ACL_ALLOW;
    const struct rule *ru = &rules->reply.v[i];
    if (!ru->allow && deny_acl && ru->n)
        *deny_acl = ru->terms[ru->n - 1].acl->name;
    return ru->allow ? PD_ACL_ALLOW : PD_ACL_DENY;
}

enum pd_acl_verdict pd_acl_check_miss(const pd_acl_rules *rules, const pd_acl_req *req,
                                      const char **deny_acl)
{
    if (!rules || rules->magic != RULES_MAGIC || !req) {
        if (deny_acl)
            *deny_acl = NULL;
        return PD_ACL_ALLOW;
    }
    return eval(rules, &rules->miss, req, PD_ACL_ALLOW, deny_acl);
}

uint64_t pd_acl_reply_body_max(const pd_acl_rules *rules, const pd_acl_req *req)
{
    if (!rules || rules->magic != RULES_MAGIC || !req)
        return UINT64_MAX;
    long i = first_match(rules, &rules->rbms, req);
    return i < 0 ? UINT64_MAX : rules->rbms.v[i].size;
}

int pd_acl_has_outgoing_address(const pd_acl_rules *rules)
{
    return rules && rules->magic == RULES_MAGIC && rules->toa.n > 0;
}

const struct sockaddr_storage *pd_acl_outgoing_address(const pd_acl_rules *rules,
                                                       const pd_acl_req *req, int family)
{
    if (!rules || rules->magic != RULES_MAGIC || !req)
        return NULL;
    /* first_match over the lines of this family only */
    for (size_t i = 0; i < rules->toa.n; i++) {
        const struct rule *ru = &rules->toa.v[i];
        if (ru->addr.ss_family != family)
            continue;
        struct rulelist one = { (struct rule *)ru, 1, 1 };
        if (first_match(rules, &one, req) == 0)
            return &ru->addr;
    }
    return NULL;
}

/* Parse one X-Forwarded-For element (spaces trimmed) into ss. */
static int xff_addr(const char *p, size_t n, struct sockaddr_storage *ss)
{
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    char buf[INET6_ADDRSTRLEN + 2];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, buf, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        return 0;
    }
    return -1;
}

#define XFF_MAX_HOPS 64

int pd_acl_indirect_client(const pd_acl_rules *rules, const pd_acl_req *req,
                           struct sockaddr_storage *out)
{
    if (!rules || rules->magic != RULES_MAGIC || !req || !req->msg || rules->fxff.n == 0)
        return 0;
    /* the elements of every X-Forwarded-For line, in order, as (ptr, len) */
    struct { const char *p; size_t n; } el[XFF_MAX_HOPS];
    int n_el = 0;
    for (const pd_header *h = pd_http_msg_find(req->msg, "X-Forwarded-For"); h;
         h = pd_http_msg_find_next(req->msg, h)) {
        const char *p = h->value.p, *end = p + h->value.len;
        while (p && p <= end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *e = comma ? comma : end;
            if (n_el == XFF_MAX_HOPS)
                memmove(el, el + 1, sizeof el[0] * (XFF_MAX_HOPS - 1)), n_el--;
            el[n_el].p = p;
            el[n_el].n = (size_t)(e - p);
            n_el++;
            p = comma ? comma + 1 : NULL;
        }
    }
    pd_acl_req q = *req;
    struct sockaddr_storage cur;
    int taken = 0;
    for (int i = n_el - 1; i >= 0; i--) {
        /* the current client (the direct one first) must be trusted to believe what it says */
        if (eval(rules, &rules->fxff, &q, PD_ACL_DENY, NULL) != PD_ACL_ALLOW)
            break;
        if (xff_addr(el[i].p, el[i].n, &cur) < 0)
            break;  /* "unknown" or garbage: the last address believed stays */
        *out = cur;
        taken = 1;
        q.client = (const struct sockaddr *)out;
    }
    return taken;
}

/* ------------------------------------------------- lists for other modules */

struct pd_acl_list {
    struct rulelist rl;
    const pd_acl_rules *rules;  /* the acls its lines name (set by the first line) */
};

pd_acl_list *pd_acl_list_new(void)
{
    return calloc(1, sizeof(pd_acl_list));
}

void pd_acl_list_free(pd_acl_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->rl.n; i++)
        free(l->rl.v[i].terms);
    free(l->rl.v);
    free(l);
}

int pd_acl_list_add(pd_acl_list *l, const pd_acl_rules *rules, const char *dir,
                    const char *file, int line, int allow, int argc, char **argv, int reply,
                    FILE *err, int *n_warnings)
{
    /* find_acl only reads the rules: the cast lends them to the line parser */
    struct ctx c = { .r = (pd_acl_rules *)rules, .err = err };
    struct rule ru = { .allow = allow };
    int rc = -1;
    if (rules && rules->magic == RULES_MAGIC &&
        parse_terms(&c, &ru, dir, file, line, argc, argv, reply) == 0) {
        l->rules = rules;
        rc = rule_push(&c, &l->rl, &ru, file, line);
    }
    if (n_warnings)
        *n_warnings += c.warnings;
    return c.errors ? -1 : rc;
}

size_t pd_acl_list_len(const pd_acl_list *l)
{
    return l ? l->rl.n : 0;
}

long pd_acl_list_first(const pd_acl_list *l, const pd_acl_req *req)
{
    return l && req ? first_match(l->rules, &l->rl, req) : -1;
}

enum pd_acl_verdict pd_acl_list_check(const pd_acl_list *l, const pd_acl_req *req,
                                      enum pd_acl_verdict when_empty)
{
    if (!l || l->rl.n == 0 || !req)
        return when_empty;
    long i = first_match(l->rules, &l->rl, req);
    if (i < 0)
        return l->rl.v[l->rl.n - 1].allow ? PD_ACL_DENY : PD_ACL_ALLOW;
    return l->rl.v[i].allow ? PD_ACL_ALLOW : PD_ACL_DENY;
}
