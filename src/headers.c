/*
 * headers: Squid's header rules (request_header_access, reply_header_access,
 * *_header_replace, *_header_add), compiled once per configuration.
 *
 * Semantics (squid.conf.documented, Squid 5/6):
 *  - all the *_header_access lines naming one header form one access list:
 *    the first line whose acls match decides; when none matches, the
 *    opposite of the last line's action; a field it denies is removed, or
 *    given the *_header_replace text for that name when there is one;
 *  - a field whose name has no lines of its own takes the `Other` list when
 *    Squid does not know the name (a custom header), then the `All` list;
 *  - *_header_add NAME VALUE [acls]: every line whose acls match adds a
 *    field, after the access rules (added fields are never removed by them).
 *    VALUE may hold %>a %>p %la %lp %>rd %>rP %ru %rm and %%; any other %
 *    code is a configuration error rather than a literal sent on.
 * Header names are matched case-insensitively, as HTTP does.
 */
#include "proxyd/headers.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HDR_MAGIC 0x48445252u /* "HDRR" */

struct named {
    char *name;
    pd_acl_list *list;      /* NULL: only a replacement was given */
    char *replace;          /* *_header_replace text, or NULL */
};

enum seg_kind { S_LIT, S_CLIENT_IP, S_CLIENT_PORT, S_LOCAL_IP, S_LOCAL_PORT, S_HOST,
                S_URL_PORT, S_URL, S_METHOD };

struct seg { enum seg_kind kind; char *lit; };

struct add {
    char *name;
    struct seg *segs; size_t n_segs;
    pd_acl_list *list;
};

struct side {
    struct named *named; size_t n_named, cap_named;
    pd_acl_list *all, *other;
    struct add *adds; size_t n_adds, cap_adds;
    int uses_local_ip;      /* an add value has %la */
};

struct pd_hdr_rules {
    unsigned magic;
    struct side side[2];
};

struct hctx {
    FILE *err;
    int errors, warnings;
};

static void herr(struct hctx *c, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void herr(struct hctx *c, const char *file, int line, const char *fmt, ...)
{
    FILE *out = c->err ? c->err : stderr;
    va_list ap;
    fprintf(out, "%s:%d: ", file ? file : "?", line);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    c->errors++;
}

/* Squid's registered header names (RegisteredHeadersHash.gperf): `Other`
 * covers every other name. Sorted case-insensitively for bsearch. */
static const char *const known[] = {
    "Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Age",
    "Allow", "Alternate-Protocol", "Authentication-Info", "Authorization", "Cache-Control",
    "CDN-Loop", "Connection", "Content-Base", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Location", "Content-MD5",
    "Content-Range", "Content-Type", "Cookie", "Cookie2", "Date", "ETag", "Expect",
    "Expires", "Forwarded", "From", "Front-End-Https", "FTP-Arguments", "FTP-Command",
    "FTP-Pre", "FTP-Reason", "FTP-Status", "Host", "HTTP2-Settings", "If-Match",
    "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Keep-Alive",
    "Key", "Last-Modified", "Link", "Location", "Max-Forwards", "Mime-Version", "Negotiate",
    "Origin", "Pragma", "Proxy-Authenticate", "Proxy-Authentication-Info",
    "Proxy-Authorization", "Proxy-Connection", "Proxy-support", "Public", "Range", "Referer",
    "Request-Range", "Retry-After", "Server", "Set-Cookie", "Set-Cookie2",
    "Surrogate-Capability", "Surrogate-Control", "TE", "Title", "Trailer",
    "Transfer-Encoding", "Translate", "Unless-Modified-Since", "Upgrade", "User-Agent",
    "Vary", "Via", "Warning", "WWW-Authenticate", "X-Cache", "X-Cache-Lookup",
    "X-Forwarded-For", "X-Next-Services", "X-Request-URI", "X-Squid-Error",
};

int pd_hdr_known(pd_str name)
{
    size_t lo = 0, hi = sizeof known / sizeof known[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *k = known[mid];
        size_t kl = strlen(k);
        int c = strncasecmp(name.p, k, name.len < kl ? name.len : kl);
        if (c == 0)
            c = name.len < kl ? -1 : name.len > kl ? 1 : 0;
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static int name_eq(pd_str a, const char *b)
{
    return strlen(b) == a.len && strncasecmp(a.p, b, a.len) == 0;
}

static int valid_field_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return 0;
    return 1;
}

static struct named *find_named(struct side *sd, const char *name, int create)
{
    for (size_t i = 0; i < sd->n_named; i++)
        if (strcasecmp(sd->named[i].name, name) == 0)
            return &sd->named[i];
    if (!create)
        return NULL;
    if (sd->n_named == sd->cap_named) {
        size_t nc = sd->cap_named ? sd->cap_named * 2 : 8;
        struct named *v = realloc(sd->named, nc * sizeof *v);
        if (!v)
            return NULL;
        sd->named = v;
        sd->cap_named = nc;
    }
    struct named *n = &sd->named[sd->n_named];
    memset(n, 0, sizeof *n);
    if (!(n->name = strdup(name)))
        return NULL;
    sd->n_named++;
    return n;
}

static void access_line(struct hctx *c, struct side *sd, const pd_acl_rules *acl,
                        const char *dir, const pd_conf_line *l, int reply)
{
    const char *file = l->file ? l->file : "?";
    if (l->argc < 2 || (strcmp(l->argv[1], "allow") != 0 && strcmp(l->argv[1], "deny") != 0)) {
        herr(c, file, l->line, "%s: expected 'NAME allow|deny [!]ACL...'", dir);
        return;
    }
    if (l->argc < 3) {
        herr(c, file, l->line, "%s %s %s: no acl name", dir, l->argv[0], l->argv[1]);
        return;
    }
    const char *name = l->argv[0];
    if (!valid_field_name(name)) {
        herr(c, file, l->line, "%s: '%s' is not a header name", dir, name);
        return;
    }
    pd_acl_list **lp;
    struct named *n = NULL;
    if (strcmp(name, "All") == 0) {
        lp = &sd->all;
    } else if (strcmp(name, "Other") == 0) {
        lp = &sd->other;
    } else {
        if (!(n = find_named(sd, name, 1))) {
            herr(c, file, l->line, "out of memory");
            return;
        }
        lp = &n->list;
    }
    if (!*lp && !(*lp = pd_acl_list_new())) {
        herr(c, file, l->line, "out of memory");
        return;
    }
    if (pd_acl_list_add(*lp, acl, dir, file, l->line, strcmp(l->argv[1], "allow") == 0,
                        l->argc - 2, l->argv + 2, reply, c->err, &c->warnings) < 0)
        c->errors++;
}

static void replace_line(struct hctx *c, struct side *sd, const char *dir,
                         const pd_conf_line *l)
{
    const char *file = l->file ? l->file : "?";
    if (l->argc != 2 || !valid_field_name(l->argv[0])) {
        herr(c, file, l->line, "%s: expected 'NAME TEXT'", dir);
        return;
    }
    if (strcmp(l->argv[0], "All") == 0 || strcmp(l->argv[0], "Other") == 0) {
        herr(c, file, l->line, "%s: %s has no replacement (name the header)", dir, l->argv[0]);
        return;
    }
    if (strpbrk(l->argv[1], "\r\n")) {
        herr(c, file, l->line, "%s: the text holds a line break", dir);
        return;
    }
    struct named *n = find_named(sd, l->argv[0], 1);
    if (!n) {
        herr(c, file, l->line, "out of memory");
        return;
    }
    free(n->replace);
    if (!(n->replace = strdup(l->argv[1])))
        herr(c, file, l->line, "out of memory");
}

static int seg_push(struct add *a, enum seg_kind k, const char *lit, size_t n)
{
    struct seg *v = realloc(a->segs, (a->n_segs + 1) * sizeof *v);
    if (!v)
        return -1;
    a->segs = v;
    v[a->n_segs].kind = k;
    v[a->n_segs].lit = NULL;
    if (k == S_LIT && !(v[a->n_segs].lit = strndup(lit, n)))
        return -1;
    a->n_segs++;
    return 0;
}

/* Split VALUE into literals and the % codes we expand. */
static int parse_value(struct hctx *c, struct side *sd, struct add *a, const char *v,
                       const char *dir, const char *file, int line)
{
    static const struct { const char *code; enum seg_kind k; } codes[] = {
        /* longest first: %>rd before %>a... */
        { ">rd", S_HOST }, { ">rP", S_URL_PORT }, { ">a", S_CLIENT_IP },
        { ">p", S_CLIENT_PORT }, { "la", S_LOCAL_IP }, { "lp", S_LOCAL_PORT },
        { "ru", S_URL }, { "rm", S_METHOD },
    };
    const char *lit = v;
    for (const char *p = v; *p;) {
        if (*p != '%') {
            p++;
            continue;
        }
        if (p > lit && seg_push(a, S_LIT, lit, (size_t)(p - lit)) < 0)
            return -1;
        if (p[1] == '%') {
            if (seg_push(a, S_LIT, "%", 1) < 0)
                return -1;
            p += 2;
            lit = p;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof codes / sizeof codes[0]; k++)
            if (strncmp(p + 1, codes[k].code, strlen(codes[k].code)) == 0)
                break;
        if (k == sizeof codes / sizeof codes[0]) {
            herr(c, file, line, "%s: %% code at '%.8s' is not supported (proxyd expands %%>a "
                 "%%>p %%la %%lp %%>rd %%>rP %%ru %%rm and %%%%)", dir, p);
            return -1;
        }
        if (seg_push(a, codes[k].k, "", 0) < 0)
            return -1;
        if (codes[k].k == S_LOCAL_IP)
            sd->uses_local_ip = 1;
        p += 1 + strlen(codes[k].code);
        lit = p;
    }
    if (*lit && seg_push(a, S_LIT, lit, strlen(lit)) < 0)
        return -1;
    return 0;
}

static void add_line(struct hctx *c, struct side *sd, const pd_acl_rules *acl, const char *dir,
                     const pd_conf_line *l, int reply)
{
    const char *file = l->file ? l->file : "?";
    if (l->argc < 2 || !valid_field_name(l->argv[0])) {
        herr(c, file, l->line, "%s: expected 'NAME \"VALUE\" [[!]ACL...]'", dir);
        return;
    }
    if (strpbrk(l->argv[1], "\r\n")) {
        herr(c, file, l->line, "%s: the value holds a line break", dir);
        return;
    }
    if (sd->n_adds == sd->cap_adds) {
        size_t nc = sd->cap_adds ? sd->cap_adds * 2 : 4;
        struct add *v = realloc(sd->adds, nc * sizeof *v);
        if (!v) {
            herr(c, file, l->line, "out of memory");
            return;
        }
        sd->adds = v;
        sd->cap_adds = nc;
    }
    struct add *a = &sd->adds[sd->n_adds++];
    memset(a, 0, sizeof *a);
    if (!(a->name = strdup(l->argv[0])) || !(a->list = pd_acl_list_new())) {
        herr(c, file, l->line, "out of memory");
        return;
    }
    if (parse_value(c, sd, a, l->argv[1], dir, file, l->line) < 0)
        return;
    if (pd_acl_list_add(a->list, acl, dir, file, l->line, 1, l->argc - 2, l->argv + 2, reply,
                        c->err, &c->warnings) < 0)
        c->errors++;
}

pd_hdr_rules *pd_hdr_compile(const pd_conf *conf, const pd_acl_rules *acl, FILE *err,
                             int *n_errors, int *n_warnings)
{
    struct hctx c = { .err = err };
    pd_hdr_rules *r = calloc(1, sizeof *r);
    if (!r || !conf) {
        free(r);
        if (n_errors)
            *n_errors = 1;
        return NULL;
    }
    r->magic = HDR_MAGIC;
    static const struct {
        enum pd_hdr_dir d;
        const char *access, *replace, *add;
    } names[] = {
        { PD_HDR_REQUEST, "request_header_access", "request_header_replace",
          "request_header_add" },
        { PD_HDR_REPLY, "reply_header_access", "reply_header_replace", "reply_header_add" },
    };
    const pd_conf_lines *acc[2] = { &conf->request_header_access, &conf->reply_header_access };
    const pd_conf_lines *rep[2] = { &conf->request_header_replace, &conf->reply_header_replace };
    const pd_conf_lines *add[2] = { &conf->request_header_add, &conf->reply_header_add };
    for (int k = 0; k < 2; k++) {
        struct side *sd = &r->side[names[k].d];
        int reply = names[k].d == PD_HDR_REPLY;
        for (size_t i = 0; i < acc[k]->n; i++)
            access_line(&c, sd, acl, names[k].access, &acc[k]->v[i], reply);
        for (size_t i = 0; i < rep[k]->n; i++)
            replace_line(&c, sd, names[k].replace, &rep[k]->v[i]);
        for (size_t i = 0; i < add[k]->n; i++)
            add_line(&c, sd, acl, names[k].add, &add[k]->v[i], reply);
    }
    if (n_errors)
        *n_errors = c.errors;
    if (n_warnings)
        *n_warnings = c.warnings;
    if (c.errors) {
        pd_hdr_rules_free(r);
        return NULL;
    }
    return r;
}

void pd_hdr_rules_free(pd_hdr_rules *r)
{
    if (!r)
        return;
    for (int k = 0; k < 2; k++) {
        struct side *sd = &r->side[k];
        for (size_t i = 0; i < sd->n_named; i++) {
            free(sd->named[i].name);
            free(sd->named[i].replace);
            pd_acl_list_free(sd->named[i].list);
        }
        free(sd->named);
        pd_acl_list_free(sd->all);
        pd_acl_list_free(sd->other);
        for (size_t i = 0; i < sd->n_adds; i++) {
            struct add *a = &sd->adds[i];
            free(a->name);
            for (size_t j = 0; j < a->n_segs; j++)
                free(a->segs[j].lit);
            free(a->segs);
            pd_acl_list_free(a->list);
        }
        free(sd->adds);
    }
    r->magic = 0;
    free(r);
}

int pd_hdr_active(const pd_hdr_rules *r, enum pd_hdr_dir d)
{
    if (!r || r->magic != HDR_MAGIC)
        return 0;
    const struct side *sd = &r->side[d];
    return sd->n_named || sd->all || sd->other || sd->n_adds;
}

int pd_hdr_uses_local_ip(const pd_hdr_rules *r, enum pd_hdr_dir d)
{
    return r && r->magic == HDR_MAGIC && r->side[d].uses_local_ip;
}

enum pd_hdr_action pd_hdr_field(const pd_hdr_rules *r, enum pd_hdr_dir d, pd_str name,
                                const pd_acl_req *q, pd_str *replacement)
{
    if (!r || r->magic != HDR_MAGIC)
        return PD_HDR_KEEP;
    const struct side *sd = &r->side[d];
    const struct named *n = NULL;
    for (size_t i = 0; i < sd->n_named; i++)
        if (sd->named[i].list && name_eq(name, sd->named[i].name)) {
            n = &sd->named[i];
            break;
        }
    const pd_acl_list *l = n ? n->list
                         : sd->other && !pd_hdr_known(name) ? sd->other
                                                            : sd->all;
    if (!l || pd_acl_list_check(l, q, PD_ACL_ALLOW) == PD_ACL_ALLOW)
        return PD_HDR_KEEP;
    if (n && n->replace) {
        *replacement = pd_str_z(n->replace);
        return PD_HDR_REPLACE;
    }
    return PD_HDR_DROP;
}

void pd_hdr_add_fields(const pd_hdr_rules *r, enum pd_hdr_dir d, const pd_acl_req *q,
                       const pd_hdr_vars *v, pd_head *h)
{
    if (!r || r->magic != HDR_MAGIC)
        return;
    const struct side *sd = &r->side[d];
    for (size_t i = 0; i < sd->n_adds; i++) {
        const struct add *a = &sd->adds[i];
        if (pd_acl_list_first(a->list, q) != 0)
            continue;
        pd_head_str(h, a->name);
        pd_head_add(h, ": ", 2);
        for (size_t j = 0; j < a->n_segs; j++) {
            const struct seg *s = &a->segs[j];
            char buf[PD_URL_HOST_MAX + 16];
            switch (s->kind) {
            case S_LIT:
                pd_head_str(h, s->lit);
                break;
            case S_CLIENT_IP:
                pd_head_str(h, v && v->client_ip ? v->client_ip : "-");
                break;
            case S_CLIENT_PORT:
                pd_head_uint(h, v ? v->client_port : 0);
                break;
            case S_LOCAL_IP:
                pd_head_str(h, v && v->local_ip ? v->local_ip : "-");
                break;
            case S_LOCAL_PORT:
                pd_head_uint(h, v ? v->local_port : 0);
                break;
            case S_HOST:
                pd_head_str(h, v && v->url ? v->url->host : "-");
                break;
            case S_URL_PORT:
                pd_head_uint(h, v && v->url ? v->url->port : 0);
                break;
            case S_URL:
                if (v && v->url) {
                    size_t n = pd_url_format(v->url, buf, sizeof buf);
                    if (n < sizeof buf) {
                        pd_head_add(h, buf, n);
                        break;
                    }
                    char *big = malloc(n + 1);
                    if (big) {
                        pd_url_format(v->url, big, n + 1);
                        pd_head_add(h, big, n);
                        free(big);
                    }
                } else {
                    pd_head_str(h, "-");
                }
                break;
            case S_METHOD:
                if (v && v->method.p)
                    pd_head_add(h, v->method.p, v->method.len);
                else
                    pd_head_str(h, "-");
                break;
            }
        }
        pd_head_add(h, "\r\n", 2);
    }
}
