/*
 * access_log: Squid-compatible access log lines (see include/proxyd/access_log.h).
 */
#include "proxyd/access_log.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pd_access_log {
    int fd;             /* -1: no log */
    int owned;          /* fd was opened by us (a file) */
    char *path;
    enum pd_log_format fmt;
    pd_logfmt *custom;  /* access_log PATH NAME with a logformat NAME; NULL: fmt */
};

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

pd_access_log *pd_access_log_open(const pd_conf *conf)
{
    pd_access_log *log = calloc(1, sizeof(*log));
    if (!log)
        return NULL;
    log->fd = -1;
    log->fmt = conf->access_log_format;
    for (size_t i = 0; conf->access_log_format_name && i < conf->logformat.n; i++) {
        const pd_conf_line *l = &conf->logformat.v[i];
        if (l->argc < 2 || strcmp(l->argv[0], conf->access_log_format_name) != 0)
            continue;
        char err[160];
        pd_logfmt_free(log->custom);
        log->custom = pd_logfmt_compile(l->argv[1], err, sizeof err);
        if (!log->custom) {
            pd_access_log_close(log);
            errno = EINVAL;
            return NULL;
        }
    }
    const char *p = conf->access_log;
    if (!p)
        return log;
    if (strcmp(p, "stdout") == 0 || strcmp(p, "/dev/stdout") == 0) {
        log->fd = STDOUT_FILENO;
    } else if (strcmp(p, "stderr") == 0 || strcmp(p, "/dev/stderr") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        log->path = strdup(p);
        log->fd = open_path(p);
        log->owned = 1;
        if (log->fd < 0 || !log->path) {
            int e = errno;
            pd_access_log_close(log);
            errno = e;
            return NULL;
        }
    }
    return log;
}

int pd_access_log_reopen(pd_access_log *log)
{
    if (!log->owned)
        return 0;
    int fd = open_path(log->path);
    if (fd < 0)
        return -1;
    close(log->fd);
    log->fd = fd;
    return 0;
}

void pd_access_log_close(pd_access_log *log)
{
    if (!log)
        return;
    if (log->owned && log->fd >= 0)
        close(log->fd);
    free(log->path);
    pd_logfmt_free(log->custom);
    free(log);
}

/* Appender that never overflows: keeps the length it would need. */
struct out {
    char *buf;
    size_t size, len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->size) {
        size_t room = o->size - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/*
 * A logged field never contains a byte that could end or forge a line or a
 * field: controls, space (unquoted fields), quote and backslash (quoted ones)
 * and non-ASCII are written as %XX, and so is '%' itself, except in URLs:
 * they keep their own escapes (an escaped byte means the same in a URL, and
 * the logged URL must be the one requested, not %25-mangled).
 */
#define F_QUOTED 1
#define F_URL 2
static void put_escaped(struct out *o, const char *s, size_t n, int flags)
{
    int quoted = flags & F_QUOTED;
    static const char hex[] = "0123456789ABCDEF";
    if (!s || n == 0) {
        put(o, "-", 1);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int esc = c < 0x20 || c >= 0x7f || c == '%' ? 1 : 0;
        if (quoted ? (c == '"' || c == '\\') : c == ' ')
            esc = 1;
        if (c == '%' && (flags & F_URL))
            esc = 0;
        if (esc) {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            put(o, e, 3);
        } else {
            put(o, (const char *)&c, 1);
        }
    }
}

const char *pd_notes_find(const char *notes, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *p = notes; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > kl && p[kl] == '=' && memcmp(p, key, kl) == 0) {
            *len = n - kl - 1;
            return p + kl + 1;
        }
        p += n + (end ? 1 : 0);
    }
    return NULL;
}

/* A note's value, NULL when absent or empty. */
static const char *note(const pd_log_entry *e, const char *key, size_t *len)
{
    const char *v = pd_notes_find(e->notes, key, len);
    return v && *len ? v : NULL;
}

/* %un: the authenticated user, else an external acl's user= (Squid's order
 * without TLS certificates and ident); its length in *len. */
static const char *any_user(const pd_log_entry *e, size_t *len)
{
    if (e->user) {
        *len = strlen(e->user);
        return e->user;
    }
    return note(e, "user", len);
}

/* %[un: the user, escaped, or "-". */
static void put_user(struct out *o, const pd_log_entry *e)
{
    size_t ul;
    const char *u = any_user(e, &ul);
    if (u)
        put_escaped(o, u, ul, 0);
    else
        put(o, "-", 1);
}

size_t pd_access_log_format(enum pd_log_format fmt, const pd_log_entry *e, char *buf,
                            size_t size)
{
    struct out o = { buf, size, 0 };
    const char *ip = e->client_ip ? e->client_ip : "-";
    if (fmt == PD_LOG_SQUID) {
        /* %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt */
        putf(&o, "%lld.%03d %6lld %s %s/%03d %llu ", (long long)e->start.tv_sec,
             (int)(e->start.tv_usec / 1000), (long long)e->elapsed_ms, ip, e->result, e->status,
             (unsigned long long)e->bytes);
        put_escaped(&o, e->method, e->method_len, 0);
        put(&o, " ", 1);
        put_escaped(&o, e->url, e->url_len, F_URL);
        put(&o, " ", 1);
        put_user(&o, e);
        putf(&o, " %s/%s ", e->hier, e->peer_ip ? e->peer_ip : "-");
        put_escaped(&o, e->content_type, e->content_type_len, 0);
    } else {
        /* common: %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh */
        char tbuf[64];
        struct tm tm;
        time_t t = e->start.tv_sec;
        localtime_r(&t, &tm);
        strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S %z", &tm);
        putf(&o, "%s - ", ip);
        put_user(&o, e);
        putf(&o, " [%s] \"", tbuf);
        put_escaped(&o, e->method, e->method_len, F_QUOTED);
        put(&o, " ", 1);
        put_escaped(&o, e->url, e->url_len, F_QUOTED | F_URL);
        putf(&o, " HTTP/%d.%d\" %d %llu", e->version_major, e->version_minor, e->status,
             (unsigned long long)e->bytes);
        if (fmt == PD_LOG_COMBINED) {
            /* combined: ... "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh, as Squid writes it */
            put(&o, " \"", 2);
            put_escaped(&o, e->referer, e->referer_len, F_QUOTED);
            put(&o, "\" \"", 3);
            put_escaped(&o, e->user_agent, e->user_agent_len, F_QUOTED);
            put(&o, "\"", 1);
        }
        putf(&o, " %s:%s", e->result, e->hier);
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return o.len;
}

void pd_access_log_write(pd_access_log *log, const pd_log_entry *e)
{
    if (!log || log->fd < 0)
        return;
    char line[4096];
    size_t n = log->custom ? pd_logfmt_format(log->custom, e, line, sizeof line - 1)
                           : pd_access_log_format(log->fmt, e, line, sizeof line - 1);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* one write per line: O_APPEND keeps lines from workers whole */
    ssize_t w = write(log->fd, line, n);
    (void)w;
}

/* ---- logformat ---------------------------------------------------------- */

enum lf_code {
    LF_LITERAL, LF_TS, LF_TU, LF_TL, LF_TG, LF_TR, LF_CLIENT_IP, LF_CLIENT_PORT, LF_PEER_IP,
    LF_LOCAL_PORT, LF_SS, LF_SH, LF_STATUS_OUT, LF_STATUS_IN, LF_BYTES_OUT, LF_BYTES_IN,
    LF_METHOD, LF_URL, LF_PATH, LF_VERSION, LF_USER, LF_IDENT, LF_MIME, LF_REQ_HDR, LF_RESP_HDR,
    LF_PERCENT, LF_SERVER_HOST, LF_ERR_CODE, LF_ERR_DETAIL, LF_SNI, LF_SERVER_TIME,
    LF_AUTH_USER, LF_NOTE, LF_EXT_USER, LF_EXT_TAG, LF_EXT_LOG
};

/* Longest names first: the first prefix that matches wins. */
static const struct {
    const char *name;
    enum lf_code code;
} lf_codes[] = {
    { "err_detail", LF_ERR_DETAIL }, { "err_code", LF_ERR_CODE },
    /* no TLS is inspected: the SNI is never known ("-"), as Squid logs it then */
    { "ssl::>sni", LF_SNI },
    /* no adaptation: the headers after it are the headers received */
    { ">ha", LF_REQ_HDR },
    { ">Hs", LF_STATUS_OUT }, { "<Hs", LF_STATUS_IN }, { ">st", LF_BYTES_IN },
    { "<tt", LF_SERVER_TIME }, { "<A", LF_SERVER_HOST },
    { "<st", LF_BYTES_OUT }, { "ts", LF_TS }, { "tu", LF_TU }, { "tl", LF_TL }, { "tg", LF_TG },
    { "tr", LF_TR }, { ">a", LF_CLIENT_IP }, { ">p", LF_CLIENT_PORT }, { "<a", LF_PEER_IP },
    { "lp", LF_LOCAL_PORT }, { "Ss", LF_SS }, { "Sh", LF_SH }, { "rm", LF_METHOD },
    { "ru", LF_URL }, { "rp", LF_PATH }, { "rv", LF_VERSION }, { "un", LF_USER },
    { "ui", LF_IDENT }, { "ul", LF_AUTH_USER }, { "note", LF_NOTE }, { "ue", LF_EXT_USER },
    { "et", LF_EXT_TAG }, { "ea", LF_EXT_LOG }, { "mt", LF_MIME }, { ">h", LF_REQ_HDR },
    { "<h", LF_RESP_HDR }, { "%", LF_PERCENT },
};

struct lf_tok {
    enum lf_code code;
    char *text;         /* literal text, or the {argument} */
    int width, left, zero, quote;
};

struct pd_logfmt {
    struct lf_tok *t;
    size_t n;
};

void pd_logfmt_free(pd_logfmt *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].text);
    free(f->t);
    free(f);
}

static int lf_push(pd_logfmt *f, struct lf_tok tok)
{
    struct lf_tok *nt = realloc(f->t, (f->n + 1) * sizeof *nt);
    if (!nt) {
        free(tok.text);
        return -1;
    }
    f->t = nt;
    f->t[f->n++] = tok;
    return 0;
}

/* {argument} at *p: copied into *arg, p advanced. 0, or -1 when unterminated. */
static int lf_arg(const char **p, char **arg)
{
    if (**p != '{')
        return 0;
    const char *end = strchr(*p, '}');
    if (!end)
        return -1;
    free(*arg);
    *arg = strndup(*p + 1, (size_t)(end - *p - 1));
    *p = end + 1;
    return 0;
}

pd_logfmt *pd_logfmt_compile(const char *spec, char *err, size_t errlen)
{
    pd_logfmt *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *p = spec;
    while (*p) {
        if (*p != '%') {
            size_t n = strcspn(p, "%");
            if (lf_push(f, (struct lf_tok){ .code = LF_LITERAL, .text = strndup(p, n) }) < 0)
                goto oom;
            p += n;
            continue;
        }
        const char *start = p++;
        struct lf_tok t = { 0 };
        for (;; p++) {
            if (*p == '"')
                t.quote = 1;
            else if (*p == '-')
                t.left = 1;
            else if (*p == '[' || *p == '#' || *p == '\'' || *p == '/')
                ; /* encodings: every field is escaped the same safe way */
            else
                break;
        }
        if (*p == '0')
            t.zero = 1;
        /* stop growing past the cap: a long digit run must not overflow
         * (UB; found by tests/fuzz/fuzz_conf) */
        for (; *p >= '0' && *p <= '9'; p++)
            if (t.width <= 64)
                t.width = t.width * 10 + (*p - '0');
        if (t.width > 64)
            t.width = 64;
        if (*p == '.') /* precision: accepted, not used */
            for (p++; *p >= '0' && *p <= '9'; p++)
                ;
        if (lf_arg(&p, &t.text) < 0)
            goto bad;
        size_t i;
        for (i = 0; i < sizeof lf_codes / sizeof lf_codes[0]; i++)
            if (!strncmp(p, lf_codes[i].name, strlen(lf_codes[i].name)))
                break;
        if (i == sizeof lf_codes / sizeof lf_codes[0])
            goto bad;
        t.code = lf_codes[i].code;
        p += strlen(lf_codes[i].name);
        if (lf_arg(&p, &t.text) < 0)
            goto bad;
        if (lf_push(f, t) < 0)
            goto oom;
        continue;
    bad:
        free(t.text);
        snprintf(err, errlen, "unknown or malformed logformat code at '%.12s'", start);
        pd_logfmt_free(f);
        return NULL;
    }
    return f;
oom:
    snprintf(err, errlen, "out of memory");
    pd_logfmt_free(f);
    return NULL;
}

/*
 * A header's value as the log shows it: proxy credentials never reach a log
 * file, whatever the logformat asks for; only their scheme is kept
 * ("Basic *"), enough to tell what the client tried.
 */
static void put_header_value(struct out *o, const pd_header *h, int quoted)
{
    if (!pd_str_eq_ci(h->name, "Proxy-Authorization")) {
        put_escaped(o, h->value.p, h->value.len, quoted);
        return;
    }
    size_t n = 0;
    while (n < h->value.len && h->value.p[n] != ' ' && h->value.p[n] != '\t')
        n++;
    put_escaped(o, h->value.p, n, quoted);
    put_escaped(o, " *", 2, quoted);
}

/* Headers of m: the named one (all its lines, joined by ", ") or all as "Name: value\r\n". */
static void lf_headers(struct out *o, const pd_http_msg *m, const char *name, int quoted)
{
    size_t start = o->len;
    if (m && name) {
        int first = 1;
        for (const pd_header *h = pd_http_msg_find(m, name); h; h = pd_http_msg_find_next(m, h)) {
            if (!first)
                put(o, ", ", 2);
            put_header_value(o, h, quoted);
            first = 0;
        }
    } else if (m) {
        for (size_t i = 0; i < m->n_headers; i++) {
            const pd_header *h = &m->headers[i];
            put_escaped(o, h->name.p, h->name.len, quoted);
            put(o, ":%20", 4);
            put_header_value(o, h, quoted);
            put(o, "%0D%0A", 6);
        }
    }
    if (o->len == start)
        put(o, "-", 1);
}

static void lf_time(struct out *o, const pd_log_entry *e, const char *fmt, int gmt)
{
    char tbuf[128];
    struct tm tm;
    time_t t = e->start.tv_sec;
    if (gmt)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    size_t n = strftime(tbuf, sizeof tbuf, fmt ? fmt : gmt ? "%d/%b/%Y:%H:%M:%S +0000"
                                                        : "%d/%b/%Y:%H:%M:%S %z", &tm);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)tbuf[i] < 0x20 || tbuf[i] == 0x7f)
            tbuf[i] = '?'; /* a strftime argument from the configuration: no control bytes */
    put(o, tbuf, n);
}

/* %note: every annotation as "name: value", CRLF between them (Squid's), or
 * with {name} that note's values joined by ','; escaped as every field. */
static void lf_notes(struct out *o, const char *notes, const char *name, int quote)
{
    char buf[1024];
    struct out b = { buf, sizeof buf, 0 };
    size_t nl = name ? strlen(name) : 0;
    for (const char *p = notes; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (eq && !name) {
            if (b.len)
                put(&b, "\r\n", 2);
            put(&b, p, (size_t)(eq - p));
            put(&b, ": ", 2);
            put(&b, eq + 1, n - (size_t)(eq - p) - 1);
        } else if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
            if (b.len)
                put(&b, ",", 1);
            put(&b, eq + 1, n - nl - 1);
        }
        p += n + (end ? 1 : 0);
    }
    put_escaped(o, buf, b.len < sizeof buf ? b.len : sizeof buf, quote);
}

/* One field, unpadded, into o. */
static void lf_field(struct out *o, const struct lf_tok *t, const pd_log_entry *e)
{
    const char *str = NULL;
    size_t len = 0;
    int have_num = 0;
    long long num = 0;
    switch (t->code) {
    case LF_LITERAL: put(o, t->text, strlen(t->text)); return;
    case LF_PERCENT: put(o, "%", 1); return;
    case LF_TS: have_num = 1; num = e->start.tv_sec; break;
    case LF_TU: have_num = 1; num = e->start.tv_usec / 1000; break;
    case LF_TL: lf_time(o, e, t->text, 0); return;
    case LF_TG: lf_time(o, e, t->text, 1); return;
    case LF_TR: have_num = 1; num = e->elapsed_ms; break;
    case LF_CLIENT_IP: str = e->client_ip; break;
    case LF_CLIENT_PORT: have_num = e->client_port != 0; num = e->client_port; break;
    case LF_PEER_IP: str = e->peer_ip; break;
    case LF_LOCAL_PORT: have_num = e->local_port != 0; num = e->local_port; break;
    case LF_SS: str = e->result; break;
    case LF_SH: str = e->hier; break;
    case LF_STATUS_OUT: have_num = 1; num = e->status; break;
    case LF_STATUS_IN: have_num = e->origin_status != 0; num = e->origin_status; break;
    case LF_BYTES_OUT: have_num = 1; num = (long long)e->bytes; break;
    case LF_BYTES_IN: have_num = 1; num = (long long)e->bytes_in; break;
    case LF_METHOD: str = e->method; len = e->method_len; break;
    case LF_URL: str = e->url; len = e->url_len; break;
    case LF_PATH:
        str = e->url;
        len = e->url_len;
        /* the path of an absolute URL: after "scheme://authority" */
        if (str && len > 8 && memmem(str, len, "://", 3)) {
            const char *a = (const char *)memmem(str, len, "://", 3) + 3;
            const char *sl = memchr(a, '/', len - (size_t)(a - str));
            if (sl) {
                len -= (size_t)(sl - str);
                str = sl;
            }
        }
        break;
    case LF_VERSION: {
        char v[16];
        int n = snprintf(v, sizeof v, "%d.%d", e->version_major, e->version_minor);
        put(o, v, (size_t)n);
        return;
    }
    case LF_USER: str = any_user(e, &len); break;
    case LF_AUTH_USER: str = e->user; break;
    case LF_NOTE: lf_notes(o, e->notes, t->text, t->quote); return;
    case LF_EXT_USER: str = note(e, "user", &len); break;
    case LF_EXT_TAG: str = note(e, "tag", &len); break;
    case LF_EXT_LOG: str = note(e, "log", &len); break;
    case LF_IDENT: str = NULL; break;   /* no ident lookups */
    case LF_MIME: str = e->content_type; len = e->content_type_len; break;
    case LF_REQ_HDR: lf_headers(o, e->req, t->text, t->quote); return;
    case LF_RESP_HDR: lf_headers(o, e->resp, t->text, t->quote); return;
    case LF_SERVER_HOST: str = e->server_host; break;
    case LF_ERR_CODE: str = e->err_code; break;
    case LF_ERR_DETAIL: str = e->err_detail; break;
    case LF_SNI: str = NULL; break;
    case LF_SERVER_TIME: have_num = e->server_ms >= 0; num = e->server_ms; break;
    }
    if (have_num) {
        char nb[32];
        int n = snprintf(nb, sizeof nb, "%lld", num);
        put(o, nb, (size_t)n);
        return;
    }
    if (str && !len)
        len = strlen(str);
    if (str && len == 1 && str[0] == '-')
        str = NULL;
    put_escaped(o, str, str ? len : 0, t->quote);
}

size_t pd_logfmt_format(const pd_logfmt *f, const pd_log_entry *e, char *buf, size_t size)
{
    struct out o = { buf, size, 0 };
    for (size_t i = 0; i < f->n; i++) {
        const struct lf_tok *t = &f->t[i];
        if (t->quote && t->code != LF_LITERAL)
            put(&o, "\"", 1);
        if (!t->width || t->code == LF_LITERAL) {
            lf_field(&o, t, e);
        } else {
            /* pad to the width: format into a scratch line first */
            char tmp[512];
            struct out fo = { tmp, sizeof tmp, 0 };
            lf_field(&fo, t, e);
            size_t n = fo.len < sizeof tmp ? fo.len : sizeof tmp;
            size_t pad = (size_t)t->width > n ? (size_t)t->width - n : 0;
            int zero = t->zero && !t->left && n && tmp[0] != '-';
            if (!t->left)
                for (size_t k = 0; k < pad; k++)
                    put(&o, zero ? "0" : " ", 1);
            put(&o, tmp, n);
            if (t->left)
                for (size_t k = 0; k < pad; k++)
                    put(&o, " ", 1);
        }
        if (t->quote && t->code != LF_LITERAL)
            put(&o, "\"", 1);
    }
    if (size)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return o.len;
}
