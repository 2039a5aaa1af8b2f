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
        putf(&o, " - %s/%s ", e->hier, e->peer_ip ? e->peer_ip : "-");
        put_escaped(&o, e->content_type, e->content_type_len, 0);
    } else {
        /* %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st %Ss:%Sh */
        char tbuf[64];
        struct tm tm;
        time_t t = e->start.tv_sec;
        localtime_r(&t, &tm);
        strftime(tbuf, sizeof tbuf, "%d/%b/%Y:%H:%M:%S %z", &tm);
        putf(&o, "%s - - [%s] \"", ip, tbuf);
        put_escaped(&o, e->method, e->method_len, F_QUOTED);
        put(&o, " ", 1);
        put_escaped(&o, e->url, e->url_len, F_QUOTED | F_URL);
        putf(&o, " HTTP/%d.%d\" %d %llu %s:%s", e->version_major, e->version_minor, e->status,
             (unsigned long long)e->bytes, e->result, e->hier);
        if (fmt == PD_LOG_COMBINED) {
            put(&o, " \"", 2);
            put_escaped(&o, e->referer, e->referer_len, F_QUOTED);
            put(&o, "\" \"", 3);
            put_escaped(&o, e->user_agent, e->user_agent_len, F_QUOTED);
            put(&o, "\"", 1);
        }
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
    size_t n = pd_access_log_format(log->fmt, e, line, sizeof line - 1);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    /* one write per line: O_APPEND keeps lines from workers whole */
    ssize_t w = write(log->fd, line, n);
    (void)w;
}
