/*
 * conf: loads proxy.conf (squid.conf syntax and semantics) into a pd_conf.
 *
 * One table (directives[]) is the single source of truth: each row names a
 * directive, its setter, where it lands in pd_conf, its default as text (the
 * default is applied by running the setter on that text), its Squid notes and
 * its documentation. pd_conf_print_reference prints the same table.
 *
 * Syntax, as Squid: `#` starts a comment at the start of a word, words are
 * split on whitespace, "double quoted" words may hold spaces, a trailing
 * backslash continues a line, `include PATTERN...` reads files (glob,
 * relative to the including file, nested up to 16 levels, loops refused),
 * and `if true|false|N = N` / `else` / `endif` select lines.
 * Squid directives that proxyd does not implement are warnings; anything
 * else unknown is an error. All errors of a load are reported, then NULL.
 */
#include "proxyd/conf.h"
#include "proxyd/access_log.h"
#include "proxyd/cache_store.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_INCLUDE_DEPTH 16
#define MAX_FILE_SIZE (64u << 20)   /* a configuration file larger than this is a mistake */

/* ------------------------------------------------------------------------ */
/* Loader state                                                              */

struct directive;

typedef struct loader {
    pd_conf *c;
    FILE *err;
    int n_errors;
    const char *file;           /* current file name, for messages */
    int line;                   /* current logical line's first line */
    int depth;
    char *stack[MAX_INCLUDE_DEPTH + 1]; /* real paths of the files being read */
    int n_stack;
    int *seen;                  /* explicit lines per directive row */
    int n_access_log;           /* access_log lines read */
    char *mosim_file;           /* last maximum_object_size_in_memory line */
    int mosim_line;
    char *alog_fmt;             /* access_log format name to resolve at the end */
    char *alog_file;
    int alog_line;
    const char *logformat_rest; /* rest of the line after the logformat name */
} loader;

static void vreport(loader *ld, int warning, const char *fmt, va_list ap)
{
    FILE *out = ld->err ? ld->err : stderr;
    fprintf(out, "%s:%d: %s", ld->file ? ld->file : "(default)", ld->line,
            warning ? "warning: " : "");
    vfprintf(out, fmt, ap);
    fputc('\n', out);
}

__attribute__((format(printf, 2, 3)))
static int error(loader *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ld, 0, fmt, ap);
    va_end(ap);
    ld->n_errors++;
    return -1;
}

__attribute__((format(printf, 2, 3)))
static void warn(loader *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(ld, 1, fmt, ap);
    va_end(ap);
    ld->c->n_warnings++;
}

/* ------------------------------------------------------------------------ */
/* Directive table types                                                     */

typedef int (*setter_fn)(loader *ld, const struct directive *d, int argc, char **argv);

enum {
    F_LIST = 1,         /* repeatable; the default applies only if none is given */
    F_RAW_QUOTES = 2,   /* argv keeps quoted words as written (acl) */
    F_REST = 4,         /* argv[1] is the rest of the line as written (logformat) */
};

typedef struct directive {
    const char *name;
    const char *alias;      /* Squid's other name for it, or NULL */
    setter_fn set;
    size_t off, size;       /* field in pd_conf */
    size_t off_n;           /* count field, for arrays */
    const char *def;        /* default as text run through set, or NULL */
    const char *def_doc;    /* default as shown in the reference when def is not enough */
    const char *unit;       /* default unit (sizes, times) */
    long long min, max;     /* bounds for integers */
    int min_args;           /* for raw lines */
    int flags;
    const char *squid;      /* Squid equivalent and differences */
    const char *doc;
} directive;

#define FIELD(m) offsetof(pd_conf, m), sizeof(((pd_conf *)0)->m)

static void *field(loader *ld, const directive *d)
{
    return (char *)ld->c + d->off;
}

/* ------------------------------------------------------------------------ */
/* Value parsers                                                             */

static bool streq_ci(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

/* "unit" or "units", case-insensitive. */
static bool unit_is(const char *word, const char *unit)
{
    size_t n = strlen(unit);
    if (strncasecmp(word, unit, n) != 0)
        return false;
    return word[n] == '\0' || ((word[n] == 's' || word[n] == 'S') && word[n + 1] == '\0');
}

/*
 * A non-negative decimal number ("260", "0.5") followed optionally by a unit
 * glued to it ("260MB"). Returns the integer part and the fraction as
 * num/den; *rest points after the number. -1 if no number or overflow.
 */
static int parse_decimal(const char *s, uint64_t *ip, uint64_t *fnum, uint64_t *fden,
                         const char **rest)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
            return -1;
        s++;
    }
    uint64_t num = 0, den = 1;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return -1;
        while (isdigit((unsigned char)*s)) {
            if (den < 1000000000ULL) { /* precision beyond 1e-9 is dropped */
                num = num * 10 + (uint64_t)(*s - '0');
                den *= 10;
            }
            s++;
        }
    }
    *ip = v;
    *fnum = num;
    *fden = den;
    *rest = s;
    return 0;
}

/* v = (ip + fnum/fden) * mult, rounded down; -1 on overflow. */
static int scale(uint64_t ip, uint64_t fnum, uint64_t fden, uint64_t mult, uint64_t *out)
{
    uint64_t a, b;
    if (__builtin_mul_overflow(ip, mult, &a))
        return -1;
    /* fnum < fden <= 1e9: the product fits in 128 bits */
    unsigned __int128 f = (unsigned __int128)fnum * mult / fden;
    b = (uint64_t)f;
    if (__builtin_add_overflow(a, b, out))
        return -1;
    return 0;
}

static uint64_t size_unit(const char *u)
{
    if (streq_ci(u, "bytes") || streq_ci(u, "byte"))
        return 1;
    if (streq_ci(u, "KB"))
        return 1ULL << 10;
    if (streq_ci(u, "MB"))
        return 1ULL << 20;
    if (streq_ci(u, "GB"))
        return 1ULL << 30;
    return 0;
}

/* milliseconds per unit (Squid's time-units), 0 if unknown */
static uint64_t time_unit(const char *u)
{
    static const struct { const char *name; uint64_t ms; } units[] = {
        { "millisecond", 1 },
        { "second", 1000 },
        { "minute", 60ULL * 1000 },
        { "hour", 3600ULL * 1000 },
        { "day", 86400ULL * 1000 },
        { "week", 7ULL * 86400 * 1000 },
        { "fortnight", 14ULL * 86400 * 1000 },
        { "month", 30ULL * 86400 * 1000 },
        { "year", 31557790080ULL },     /* 365.2522 days, as Squid */
        { "decade", 315577900800ULL },
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (unit_is(u, units[i].name))
            return units[i].ms;
    return 0;
}

/*
 * "N [unit]" where the unit may also be glued to the number. unit_fn maps a
 * unit word to its multiplier; def_unit is used for a bare number.
 */
static int parse_quantity(loader *ld, const directive *d, int argc, char **argv,
                          uint64_t (*unit_fn)(const char *), const char *what, uint64_t *out)
{
    if (argc < 1)
        return error(ld, "%s: missing value", d->name);
    uint64_t ip, fn, fd;
    const char *rest;
    if (parse_decimal(argv[0], &ip, &fn, &fd, &rest) < 0)
        return error(ld, "%s: '%s' is not a %s", d->name, argv[0], what);
    const char *u = NULL;
    if (*rest) {
        u = rest;
        if (argc > 1)
            return error(ld, "%s: too many arguments", d->name);
    } else if (argc > 1) {
        u = argv[1];
        if (argc > 2)
            return error(ld, "%s: too many arguments", d->name);
    }
    uint64_t mult = unit_fn(u ? u : d->unit);
    if (mult == 0)
        return error(ld, "%s: unknown unit '%s'", d->name, u ? u : d->unit);
    if (scale(ip, fn, fd, mult, out) < 0)
        return error(ld, "%s: value too large", d->name);
    return 0;
}

static int store_uint(loader *ld, const directive *d, uint64_t v)
{
    void *p = field(ld, d);
    if (d->max > 0 && v > (uint64_t)d->max)
        return error(ld, "%s: value too large (at most %lld)", d->name, d->max);
    if ((uint64_t)d->min > v)
        return error(ld, "%s: value too small (at least %lld)", d->name, d->min);
    if (d->size == sizeof(uint64_t)) {
        memcpy(p, &v, sizeof(v));
    } else if (d->size == sizeof(uint32_t)) {
        if (v > UINT32_MAX)
            return error(ld, "%s: value too large", d->name);
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
    } else {
        return error(ld, "%s: internal error: bad field size", d->name);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Setters                                                                   */

static int want_args(loader *ld, const directive *d, int argc, int n)
{
    if (argc < n)
        return error(ld, "%s: missing value", d->name);
    if (argc > n)
        return error(ld, "%s: too many arguments", d->name);
    return 0;
}

static int parse_onoff(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    int v;
    if (streq_ci(argv[0], "on") || streq_ci(argv[0], "enable"))
        v = 1;
    else if (streq_ci(argv[0], "off") || streq_ci(argv[0], "disable"))
        v = 0;
    else
        return error(ld, "%s: expected on or off, not '%s'", d->name, argv[0]);
    *(int *)field(ld, d) = v;
    return 0;
}

static int parse_int(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    const char *s = argv[0];
    if (!isdigit((unsigned char)s[0]))
        return error(ld, "%s: '%s' is not a non-negative integer", d->name, s);
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end)
        return error(ld, "%s: '%s' is not a non-negative integer", d->name, s);
    if (errno == ERANGE || v > (unsigned long long)d->max)
        return error(ld, "%s: value too large (at most %lld)", d->name, d->max);
    if (v < (unsigned long long)d->min)
        return error(ld, "%s: value too small (at least %lld)", d->name, d->min);
    *(int *)field(ld, d) = (int)v;
    return 0;
}

static int parse_bytes(loader *ld, const directive *d, int argc, char **argv)
{
    uint64_t v = 0;
    if (parse_quantity(ld, d, argc, argv, size_unit, "size", &v) < 0)
        return -1;
    return store_uint(ld, d, v);
}

/* maximum_object_size_in_memory: remembers where it was set for the clamp warning. */
static int parse_bytes_mosim(loader *ld, const directive *d, int argc, char **argv)
{
    if (parse_bytes(ld, d, argc, argv) < 0)
        return -1;
    if (ld->file) {
        free(ld->mosim_file);
        ld->mosim_file = strdup(ld->file);
        ld->mosim_line = ld->line;
    }
    return 0;
}

static int parse_time_ms(loader *ld, const directive *d, int argc, char **argv)
{
    uint64_t v = 0;
    if (parse_quantity(ld, d, argc, argv, time_unit, "time", &v) < 0)
        return -1;
    if (v > INT64_MAX)
        return error(ld, "%s: value too large", d->name);
    *(int64_t *)field(ld, d) = (int64_t)v;
    return 0;
}

/* A time kept in whole seconds (DNS settings). */
static int parse_time_s(loader *ld, const directive *d, int argc, char **argv)
{
    uint64_t v = 0;
    if (parse_quantity(ld, d, argc, argv, time_unit, "time", &v) < 0)
        return -1;
    if (v % 1000)
        return error(ld, "%s: must be a whole number of seconds", d->name);
    v /= 1000;
    if (v > INT_MAX)
        return error(ld, "%s: value too large", d->name);
    *(int *)field(ld, d) = (int)v;
    return 0;
}

static int set_string(loader *ld, char **slot, const char *v)
{
    char *copy = NULL;
    if (v && !(copy = strdup(v)))
        return error(ld, "out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

static int parse_string(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    return set_string(ld, (char **)field(ld, d), argv[0]);
}

/* A path where "none" means not set. */
static int parse_path_none(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    return set_string(ld, (char **)field(ld, d), strcmp(argv[0], "none") ? argv[0] : NULL);
}

/* cache_log: a path; stderr (the default) is kept as NULL. */
static int parse_cache_log(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    const char *p = argv[0];
    if (!strncmp(p, "stdio:", 6))
        p += 6;
    if (!*p)
        return error(ld, "%s: empty path", d->name);
    if (!strcmp(p, "stderr") || !strcmp(p, "/dev/stderr"))
        p = NULL;
    return set_string(ld, (char **)field(ld, d), p);
}

static int parse_forwarded_for(loader *ld, const directive *d, int argc, char **argv)
{
    static const char *const names[] = {
        [PD_FWD_ON] = "on", [PD_FWD_OFF] = "off", [PD_FWD_TRANSPARENT] = "transparent",
        [PD_FWD_DELETE] = "delete", [PD_FWD_TRUNCATE] = "truncate",
    };
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (streq_ci(argv[0], names[i])) {
            *(enum pd_forwarded_for *)field(ld, d) = (enum pd_forwarded_for)i;
            return 0;
        }
    }
    return error(ld, "%s: expected on, off, transparent, delete or truncate, not '%s'",
                 d->name, argv[0]);
}

static int parse_repl_policy(loader *ld, const directive *d, int argc, char **argv)
{
    char name[64] = "";
    for (int i = 0; i < argc; i++) {
        if (strlen(name) + strlen(argv[i]) + 2 > sizeof name)
            break;
        if (i)
            strcat(name, " ");
        strcat(name, argv[i]);
    }
    enum pd_cache_policy p;
    if (argc < 1 || argc > 2 || pd_cache_policy_parse(name, &p) < 0)
        return error(ld, "%s: expected s3fifo, lru, heap GDSF, heap LFUDA or heap LRU, not '%s'",
                     d->name, name);
    *(int *)field(ld, d) = (int)p;
    return 0;
}

/* Squid's http_port options: accepted, with a warning, since proxyd has none. */
static bool squid_port_option(const char *opt)
{
    static const char *const flags[] = {
        "intercept", "transparent", "tproxy", "accel", "ssl-bump", "no-vhost", "vhost",
        "vport", "act-as-origin", "ignore-cc", "allow-direct", "no-connection-auth",
        "generate-host-certificates", "tcpkeepalive", "require-proxy-header",
        "worker-queues", "ftp-track-dirs", "tls-default-ca", "http11", "ipv4",
    };
    static const char *const keyed[] = {
        "name", "defaultsite", "protocol", "vport", "connection-auth", "tls-cert", "tls-key",
        "cert", "key", "cipher", "options", "clientca", "cafile", "capath", "crlfile",
        "dhparams", "tls-dh", "sslflags", "tls-cafile", "tls-capath", "sslcontext", "context",
        "generate-host-certificates", "dynamic_cert_mem_cache_size", "tls-default-ca",
        "tls-min-version", "version", "tcpkeepalive", "disable-pmtu-discovery", "tls-crlfile",
        "tls-clientca", "tls-options", "tls-cipher", "tls-flags",
    };
    const char *eq = strchr(opt, '=');
    if (!eq) {
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
            if (!strcmp(opt, flags[i]))
                return true;
        return false;
    }
    size_t n = (size_t)(eq - opt);
    for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++)
        if (strlen(keyed[i]) == n && !strncmp(opt, keyed[i], n))
            return true;
    return false;
}

static int parse_port_number(const char *s, uint16_t *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* "PORT", "IPv4:PORT", "[IPv6]:PORT" or "HOST:PORT" into a, normalised text. */
static int parse_listen(loader *ld, const directive *d, const char *spec, pd_listen_addr *a)
{
    char host[256];
    const char *ps;
    memset(a, 0, sizeof(*a));
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof(host))
            return error(ld, "%s: bad address '%s' (expected [IPv6]:port)", d->name, spec);
        memcpy(host, spec + 1, (size_t)(close - spec - 1));
        host[close - spec - 1] = '\0';
        ps = close + 2;
    } else {
        const char *colon = strrchr(spec, ':');
        if (!colon) {
            host[0] = '\0';
            ps = spec;
        } else {
            if (memchr(spec, ':', (size_t)(colon - spec)))
                return error(ld, "%s: bad address '%s' (write IPv6 as [addr]:port)", d->name, spec);
            if ((size_t)(colon - spec) >= sizeof(host) || colon == spec)
                return error(ld, "%s: bad address '%s'", d->name, spec);
            memcpy(host, spec, (size_t)(colon - spec));
            host[colon - spec] = '\0';
            ps = colon + 1;
        }
    }
    uint16_t port;
    if (parse_port_number(ps, &port) < 0)
        return error(ld, "%s: bad port '%s'", d->name, ps);

    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
    if (!host[0]) {
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        s4->sin_port = htons(port);
        a->len = sizeof(*s4);
    } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1 && spec[0] != '[') {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        a->len = sizeof(*s4);
    } else if (spec[0] == '[') {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return error(ld, "%s: bad IPv6 address '%s'", d->name, host);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        a->len = sizeof(*s6);
    } else {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC }, *res;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc != 0)
            return error(ld, "%s: cannot resolve '%s': %s", d->name, host, gai_strerror(rc));
        memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
        a->len = res->ai_addrlen;
        freeaddrinfo(res);
        if (a->ss.ss_family == AF_INET)
            s4->sin_port = htons(port);
        else
            s6->sin6_port = htons(port);
    }
    char buf[INET6_ADDRSTRLEN];
    if (a->ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
        snprintf(a->text, sizeof(a->text), "%s:%u", buf, (unsigned)port);
    } else {
        inet_ntop(AF_INET6, &s6->sin6_addr, buf, sizeof(buf));
        snprintf(a->text, sizeof(a->text), "[%s]:%u", buf, (unsigned)port);
    }
    return 0;
}

static int parse_port(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 1)
        return error(ld, "%s: missing address", d->name);
    pd_listen_addr *arr = field(ld, d);
    int *n = (int *)((char *)ld->c + d->off_n);
    if (d->off_n == offsetof(pd_conf, n_admin_port) && !strcmp(argv[0], "none")) {
        *n = 0; /* no admin listener */
        return argc > 1 ? error(ld, "%s: nothing may follow 'none'", d->name) : 0;
    }
    if (*n >= PD_CONF_MAX_PORTS)
        return error(ld, "%s: too many ports (at most %d)", d->name, PD_CONF_MAX_PORTS);
    pd_listen_addr a;
    if (parse_listen(ld, d, argv[0], &a) < 0)
        return -1;
    if (d->off_n == offsetof(pd_conf, n_admin_port) && !strchr(argv[0], ':')) {
        /* the admin listener is never public by accident: a bare port is loopback */
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(a.text, sizeof a.text, "127.0.0.1:%u", (unsigned)ntohs(s4->sin_port));
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (squid_port_option(argv[i]))
            warn(ld, "%s: option '%s' is not supported by proxyd; ignored", d->name, argv[i]);
        else
            rc = error(ld, "%s: unknown option '%s'", d->name, argv[i]);
    }
    /* port 0 twice is fine: each listener gets its own port */
    bool port0 = a.ss.ss_family == AF_INET ? ((struct sockaddr_in *)&a.ss)->sin_port == 0
                                           : ((struct sockaddr_in6 *)&a.ss)->sin6_port == 0;
    for (int i = 0; i < *n && !port0; i++) {
        if (strcmp(arr[i].text, a.text) == 0)
            return error(ld, "%s: %s is already configured", d->name, a.text);
    }
    if (rc < 0)
        return rc;
    arr[(*n)++] = a;
    return 0;
}

static int parse_nameservers(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 1)
        return error(ld, "%s: missing address", d->name);
    char **arr = field(ld, d);
    int *n = (int *)((char *)ld->c + d->off_n);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        char host[INET6_ADDRSTRLEN + 1];
        const char *port = NULL;
        unsigned char buf[sizeof(struct in6_addr)];
        bool ok;
        if (s[0] == '[') {
            const char *close = strchr(s, ']');
            size_t hl = close ? (size_t)(close - s - 1) : 0;
            ok = close && hl < sizeof(host) && (close[1] == '\0' || close[1] == ':');
            if (ok) {
                memcpy(host, s + 1, hl);
                host[hl] = '\0';
                port = close[1] == ':' ? close + 2 : NULL;
                ok = inet_pton(AF_INET6, host, buf) == 1;
            }
        } else if (inet_pton(AF_INET6, s, buf) == 1) {
            ok = true;
        } else {
            const char *colon = strchr(s, ':');
            size_t hl = colon ? (size_t)(colon - s) : strlen(s);
            ok = hl < sizeof(host);
            if (ok) {
                memcpy(host, s, hl);
                host[hl] = '\0';
                port = colon ? colon + 1 : NULL;
                ok = inet_pton(AF_INET, host, buf) == 1;
            }
        }
        uint16_t pn;
        if (!ok) {
            error(ld, "%s: '%s' is not an IP address", d->name, s);
            continue;
        }
        if (port && (parse_port_number(port, &pn) < 0 || pn == 0)) {
            error(ld, "%s: bad port in '%s'", d->name, s);
            continue;
        }
        if (*n >= PD_CONF_MAX_NS) {
            error(ld, "%s: too many name servers (at most %d)", d->name, PD_CONF_MAX_NS);
            return -1;
        }
        if (set_string(ld, &arr[*n], s) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

static int add_line(loader *ld, pd_conf_lines *l, int argc, char **argv)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        pd_conf_line *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return error(ld, "out of memory");
        l->v = v;
        l->cap = cap;
    }
    pd_conf_line *ln = &l->v[l->n];
    memset(ln, 0, sizeof(*ln));
    ln->file = strdup(ld->file ? ld->file : "(default)");
    ln->line = ld->line;
    ln->argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!ln->file || !ln->argv)
        goto oom;
    for (int i = 0; i < argc; i++) {
        if (!(ln->argv[i] = strdup(argv[i])))
            goto oom;
        ln->argc = i + 1;
    }
    l->n++;
    return 0;
oom:
    for (int i = 0; i < ln->argc; i++)
        free(ln->argv[i]);
    free(ln->argv);
    free(ln->file);
    return error(ld, "out of memory");
}

static int parse_lines(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < d->min_args)
        return error(ld, "%s: expected at least %d argument%s", d->name, d->min_args,
                     d->min_args == 1 ? "" : "s");
    return add_line(ld, (pd_conf_lines *)field(ld, d), argc, argv);
}

static int parse_acl(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 2)
        return error(ld, "%s: expected NAME TYPE [values...]", d->name);
    return add_line(ld, (pd_conf_lines *)field(ld, d), argc, argv);
}

static int parse_logformat(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 1 || !ld->logformat_rest || !*ld->logformat_rest)
        return error(ld, "%s: expected NAME FORMAT", d->name);
    char *v[2] = { argv[0], (char *)ld->logformat_rest };
    return add_line(ld, (pd_conf_lines *)field(ld, d), 2, v);
}

static const char *const builtin_formats[] = {
    [PD_LOG_SQUID] = "squid", [PD_LOG_COMMON] = "common", [PD_LOG_COMBINED] = "combined",
};

static int set_log_format(loader *ld, const char *name)
{
    pd_conf *c = ld->c;
    free(c->access_log_format_name);
    c->access_log_format_name = NULL;
    free(ld->alog_fmt);
    ld->alog_fmt = NULL;
    for (size_t i = 0; i < sizeof(builtin_formats) / sizeof(builtin_formats[0]); i++) {
        if (!strcmp(name, builtin_formats[i])) {
            c->access_log_format = (enum pd_log_format)i;
            return 0;
        }
    }
    if (!strcmp(name, "referrer") || !strcmp(name, "useragent") || !strcmp(name, "icap_squid")) {
        warn(ld, "access_log: format '%s' is not supported by proxyd; using squid", name);
        c->access_log_format = PD_LOG_SQUID;
        return 0;
    }
    /* a logformat name: checked once the whole configuration is read */
    c->access_log_format = PD_LOG_SQUID;
    free(ld->alog_file);
    ld->alog_fmt = strdup(name);
    ld->alog_file = strdup(ld->file ? ld->file : "(default)");
    ld->alog_line = ld->line;
    if (!ld->alog_fmt || !ld->alog_file)
        return error(ld, "out of memory");
    return 0;
}

static int parse_access_log(loader *ld, const directive *d, int argc, char **argv)
{
    pd_conf *c = ld->c;
    if (argc < 1)
        return error(ld, "%s: missing destination", d->name);
    const char *place = argv[0];
    const char *path;
    if (!strcmp(place, "none")) {
        path = NULL;
    } else if (!strncmp(place, "stdio:", 6)) {
        path = place + 6;
    } else if (!strncmp(place, "daemon:", 7)) {
        warn(ld, "%s: daemon: logging is done by proxyd itself, as stdio:", d->name);
        path = place + 7;
    } else if (!strncmp(place, "syslog", 6) || !strncmp(place, "udp:", 4) ||
               !strncmp(place, "tcp:", 4)) {
        warn(ld, "%s: module '%.*s' is not supported by proxyd; line ignored", d->name,
             (int)strcspn(place, ":"), place);
        return 0;
    } else if (place[0] != '/' && strchr(place, ':')) {
        return error(ld, "%s: unknown logging module in '%s'", d->name, place);
    } else {
        path = place;
    }
    if (path && !*path)
        return error(ld, "%s: empty path in '%s'", d->name, place);
    if (path && !strcmp(path, "/dev/stdout"))
        path = "stdout";
    if (path && !strcmp(path, "/dev/stderr"))
        path = "stderr";

    int rc = 0, have_format = 0, acls = 0;
    const char *fmt = "squid";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *eq = strchr(a, '=');
        if (eq) {
            if (!strncmp(a, "logformat=", 10) || !strncmp(a, "format=", 7)) {
                if (!eq[1])
                    rc = error(ld, "%s: empty format in '%s'", d->name, a);
                fmt = eq + 1;
                have_format = 1;
            } else if (!strncmp(a, "buffer-size=", 12) || !strncmp(a, "rotate=", 7) ||
                       !strncmp(a, "on-error=", 9)) {
                warn(ld, "%s: option '%.*s' is not supported by proxyd; ignored", d->name,
                     (int)(eq - a), a);
            } else {
                rc = error(ld, "%s: unknown option '%s'", d->name, a);
            }
        } else if (!have_format && i == 1) {
            fmt = a;        /* legacy form: the first word after the place is a format */
            have_format = 1;
        } else {
            acls++;
        }
    }
    if (rc < 0)
        return rc;
    if (acls)
        warn(ld, "%s: acl conditions are not supported by proxyd; every request is logged",
             d->name);
    if (ld->file && ++ld->n_access_log > 1)
        warn(ld, "%s: proxyd writes one access log; this line replaces the earlier one",
             d->name);
    if (set_log_format(ld, fmt) < 0)
        return -1;
    return set_string(ld, &c->access_log, path);
}

/* ------------------------------------------------------------------------ */
/* The directive table                                                       */

static const directive directives[] = {
    /* Network */
    { .name = "http_port", .alias = "ascii_port", .set = parse_port, FIELD(http_port),
      .off_n = offsetof(pd_conf, n_http_port), .def = "3128", .flags = F_LIST,
      .squid = "Same forms. Squid's modes and options (intercept, tproxy, accel, ssl-bump, "
               "name=, ...) are accepted with a warning and ignored.",
      .doc = "Address to accept proxy clients on: `PORT`, `IP:PORT`, `[IPv6]:PORT` or "
             "`HOST:PORT`. Repeat the line for several addresses (at most 16). A bare port "
             "listens on all IPv4 addresses. Port 0 lets the system pick one." },
    { .name = "admin_port", .set = parse_port, FIELD(admin_port),
      .off_n = offsetof(pd_conf, n_admin_port), .flags = F_LIST, .def_doc = "none",
      .squid = "proxyd only (Squid serves its cache manager on http_port; proxyd does too, "
               "for origin-form /squid-internal-mgr/ requests).",
      .doc = "Address of the admin listener (/metrics, /stats, /healthz, "
             "/squid-internal-mgr/info and /counters), same forms as http_port; repeat for "
             "several. Off unless set (the shipped proxy.conf sets 127.0.0.1:3129); a bare "
             "PORT listens on 127.0.0.1 only; `none` turns it off. Loopback clients only unless "
             "an http_access line names the `manager` acl. An address that cannot be bound is "
             "a warning." },
    { .name = "workers", .set = parse_int, FIELD(workers), .def = "0", .min = 0, .max = PD_CONF_MAX_WORKERS,
      .squid = "Squid's default is 1 (no SMP); proxyd's 0 means one worker per CPU.",
      .doc = "Number of worker processes; 0 starts one per CPU the process may use "
             "(affinity mask, cgroup CPU quota)." },

    /* Cache */
    { .name = "cache_mem", .set = parse_bytes, FIELD(cache_mem), .def = "260 MB",
      .unit = "bytes",
      .squid = "Squid's default is 256 MB. proxyd holds the whole cache in this one shared "
               "segment; there is no cache_dir.",
      .doc = "Size of the shared memory cache, shared by all workers." },
    { .name = "maximum_object_size", .set = parse_bytes, FIELD(maximum_object_size),
      .def = "1024 KB", .unit = "bytes",
      .squid = "Squid's default is 4 MB.",
      .doc = "Responses larger than this are never stored." },
    { .name = "maximum_object_size_in_memory", .set = parse_bytes_mosim,
      FIELD(maximum_object_size_in_memory), .unit = "bytes",
      .def_doc = "maximum_object_size",
      .squid = "Squid's default is 512 KB. As proxyd's cache is in memory only, it defaults "
               "to maximum_object_size and is clamped to it.",
      .doc = "Largest object kept in the memory cache. A value above maximum_object_size is "
             "lowered to it with a warning." },
    { .name = "memory_replacement_policy", .set = parse_repl_policy,
      FIELD(memory_replacement_policy), .def = "s3fifo",
      .squid = "Squid's default is lru; its heap GDSF and heap LFUDA are implemented, heap LRU "
               "is lru. s3fifo is proxyd's own and its default: measured in "
               "docs/benchmarks.md (bench/hitratio), it keeps more hits than the others and "
               "keeps a hot set through a one-pass scan.",
      .doc = "Which object the memory cache gives up when it needs room: s3fifo (a small FIFO "
             "for new objects, a main FIFO for objects asked again), lru, heap GDSF (keeps "
             "small popular objects), heap LFUDA (keeps popular objects whatever their size)." },
    { .name = "max_stale", .set = parse_time_s, FIELD(max_stale), .def = "1 week",
      .squid = "As Squid: the default is 1 week; refresh_pattern's max-stale=N (seconds) "
               "overrides it for the URLs it matches.",
      .doc = "When the origin cannot be reached, times out or answers 500, 502, 503 or 504 "
             "while a stale cached object is being revalidated, the object is served instead "
             "(logged TCP_REFRESH_FAIL_OLD) if it is stale by at most this much, unless the "
             "response forbids it (must-revalidate, proxy-revalidate, s-maxage, no-cache) or "
             "the request does (no-cache). stale-if-error=N in the response or the request "
             "(RFC 5861) can extend it. 0 turns stale serving off except where "
             "stale-if-error asks for it." },
    { .name = "collapsed_forwarding", .set = parse_onoff, FIELD(collapsed_forwarding),
      .def = "on",
      .squid = "Squid's default is off.",
      .doc = "Concurrent misses for the same URL share one origin fetch." },
    { .name = "x_cache_header", .set = parse_onoff, FIELD(x_cache_header),
      .def = "off",
      .squid = "proxyd only; Squid always sends X-Cache and X-Cache-Lookup.",
      .doc = "Add `X-Cache: HIT from HOST` or `X-Cache: MISS from HOST` to responses." },

    /* Raw lines */
    { .name = "acl", .set = parse_acl, FIELD(acl), .min_args = 2,
      .flags = F_LIST | F_RAW_QUOTES, .def_doc = "none",
      .squid = "Same syntax. Types: src, dst, dstdomain, dstdom_regex, url_regex, "
               "urlpath_regex, port, method, proto, with values inline or in \"files\".",
      .doc = "`acl NAME TYPE VALUE...` defines an access list. A quoted value "
             "(`\"/etc/proxyd/list\"`) names a file with one value a line." },
    { .name = "http_access", .set = parse_lines, FIELD(http_access), .min_args = 1,
      .flags = F_LIST, .def_doc = "deny all",
      .squid = "Same: first match wins; with no match, the opposite of the last rule applies.",
      .doc = "`http_access allow|deny [!]ACL...` decides who may use the proxy." },
    { .name = "cache", .set = parse_lines, FIELD(cache_rules), .min_args = 1, .flags = F_LIST,
      .def_doc = "allow all",
      .squid = "Same.",
      .doc = "`cache allow|deny [!]ACL...`: responses to matching requests are not stored "
             "or served from the cache when denied." },
    { .name = "refresh_pattern", .set = parse_lines, FIELD(refresh_pattern), .min_args = 4,
      .flags = F_LIST, .def_doc = "none",
      .squid = "Same syntax.",
      .doc = "`refresh_pattern [-i] REGEX MIN PERCENT MAX [options]`: heuristic freshness "
             "for responses without explicit expiry (MIN and MAX in minutes)." },
    { .name = "deny_info", .set = parse_lines, FIELD(deny_info), .min_args = 2,
      .flags = F_LIST, .def_doc = "none",
      .squid = "Same.",
      .doc = "`deny_info ERR_PAGE|URL ACL`: what a client denied by ACL gets." },
    { .name = "logformat", .set = parse_logformat, FIELD(logformat), .min_args = 2,
      .flags = F_LIST | F_REST, .def_doc = "squid, common, combined built in",
      .squid = "Same; the format is the rest of the line, as Squid.",
      .doc = "`logformat NAME FORMAT` names an access log format made of Squid's % codes." },

    /* Logging */
    { .name = "access_log", .set = parse_access_log, FIELD(access_log), .def = "stdout squid",
      .squid = "Squid's default is daemon:/var/log/squid/access.log squid. Forms "
               "`none`, `PATH`, `stdio:PATH` and `daemon:PATH` (written by proxyd itself) with a "
               "format name or `logformat=NAME`; syslog/udp/tcp modules and acl conditions "
               "are ignored with a warning. One log only.",
      .doc = "Where each request is logged: `none`, `stdout`, `stderr` or a file, followed "
             "by the format: squid (default), common, combined or a logformat name." },
    { .name = "cache_log", .set = parse_cache_log, FIELD(cache_log), .def_doc = "stderr",
      .squid = "Squid's default is a file under /var/log/squid.",
      .doc = "Where proxyd's own messages go: a file (reopened on SIGUSR1), or stderr." },
    { .name = "pid_filename", .set = parse_path_none, FIELD(pid_filename), .def = "none",
      .squid = "Squid's default is /run/squid.pid; proxyd runs in the foreground and writes "
               "none unless asked.",
      .doc = "File the master process writes its pid to, or `none`." },

    /* DNS */
    { .name = "dns_nameservers", .set = parse_nameservers, FIELD(dns_nameservers),
      .off_n = offsetof(pd_conf, n_dns_nameservers), .flags = F_LIST,
      .def_doc = "from /etc/resolv.conf",
      .squid = "Same; proxyd also accepts IP:PORT and [IPv6]:PORT.",
      .doc = "Name servers to query instead of those in /etc/resolv.conf (at most 8)." },
    { .name = "hosts_file", .set = parse_string, FIELD(hosts_file), .def = "/etc/hosts",
      .squid = "Same.",
      .doc = "Hosts file read at start; `none` disables it." },
    { .name = "positive_dns_ttl", .set = parse_time_s, FIELD(positive_dns_ttl),
      .def = "6 hours", .unit = "seconds",
      .squid = "Same.",
      .doc = "Upper bound on how long an answer is cached (its own TTL applies below that)." },
    { .name = "negative_dns_ttl", .set = parse_time_s, FIELD(negative_dns_ttl),
      .def = "1 minute", .unit = "seconds",
      .squid = "Same.",
      .doc = "How long a failed lookup is cached." },
    { .name = "dns_timeout", .set = parse_time_s, FIELD(dns_timeout), .def = "30 seconds",
      .unit = "seconds",
      .squid = "Same.",
      .doc = "How long a name lookup may take in all (retransmissions included); then "
             "503 ERR_DNS_FAIL." },

    /* Headers */
    { .name = "visible_hostname", .set = parse_string, FIELD(visible_hostname),
      .def_doc = "the host name",
      .squid = "Same.",
      .doc = "Host name shown in Via headers and error pages." },
    { .name = "via", .set = parse_onoff, FIELD(via), .def = "on",
      .squid = "Same.",
      .doc = "Add a Via header to requests and responses." },
    { .name = "forwarded_for", .set = parse_forwarded_for, FIELD(forwarded_for), .def = "on",
      .squid = "Same values.",
      .doc = "X-Forwarded-For: `on` appends the client address, `off` appends `unknown`, "
             "`transparent` leaves it, `delete` removes it, `truncate` replaces it." },
    { .name = "request_header_max_size", .set = parse_bytes, FIELD(request_header_max_size),
      .def = "64 KB", .unit = "bytes", .min = 1024, .max = 16 << 20,
      .squid = "Same.",
      .doc = "Largest request head accepted; larger ones get 431, or 414 when the request "
             "line does not fit." },
    { .name = "reply_header_max_size", .set = parse_bytes, FIELD(reply_header_max_size),
      .def = "64 KB", .unit = "bytes", .min = 1024, .max = 16 << 20,
      .squid = "Same.",
      .doc = "Largest response head accepted from an origin; larger ones give 502." },
    { .name = "request_body_max_size", .set = parse_bytes, FIELD(request_body_max_size),
      .def = "0", .unit = "bytes",
      .squid = "Same.",
      .doc = "Largest request body accepted (413 above it); 0 means no limit." },

    /* Timeouts */
    { .name = "connect_timeout", .set = parse_time_ms, FIELD(connect_timeout),
      .def = "1 minute", .unit = "seconds", .squid = "Same.",
      .doc = "Time allowed to open a connection to an origin server." },
    { .name = "read_timeout", .set = parse_time_ms, FIELD(read_timeout),
      .def = "15 minutes", .unit = "seconds", .squid = "Same.",
      .doc = "Longest wait for data from an origin server." },
    { .name = "write_timeout", .set = parse_time_ms, FIELD(write_timeout),
      .def = "15 minutes", .unit = "seconds", .squid = "Same.",
      .doc = "Longest wait for a write to make progress." },
    { .name = "request_timeout", .set = parse_time_ms, FIELD(request_timeout),
      .def = "5 minutes", .unit = "seconds", .squid = "Same.",
      .doc = "Time allowed to receive a request head once a connection is open." },
    { .name = "client_idle_pconn_timeout", .alias = "persistent_request_timeout",
      .set = parse_time_ms, FIELD(client_idle_pconn_timeout), .def = "2 minutes",
      .unit = "seconds", .squid = "Same.",
      .doc = "How long an idle client keep-alive connection is kept." },
    { .name = "pconn_timeout", .alias = "server_idle_pconn_timeout", .set = parse_time_ms,
      FIELD(pconn_timeout), .def = "1 minute", .unit = "seconds",
      .squid = "Squid's server_idle_pconn_timeout (also accepted).",
      .doc = "How long an idle origin connection is kept for reuse." },
    { .name = "client_lifetime", .set = parse_time_ms, FIELD(client_lifetime),
      .def = "1 day", .unit = "seconds", .squid = "Same.",
      .doc = "Longest a client connection may live." },
    { .name = "shutdown_lifetime", .set = parse_time_ms, FIELD(shutdown_lifetime),
      .def = "30 seconds", .unit = "seconds", .squid = "Same.",
      .doc = "On SIGTERM/SIGINT, how long in-flight requests may finish before exit." },
    { .name = "forward_timeout", .set = parse_time_ms, FIELD(forward_timeout),
      .def = "4 minutes", .unit = "seconds", .squid = "Same.",
      .doc = "Time allowed to find and connect to a server for a request." },

    /* Limits and persistence */
    { .name = "client_persistent_connections", .set = parse_onoff,
      FIELD(client_persistent_connections), .def = "on", .squid = "Same.",
      .doc = "Keep client connections open between requests." },
    { .name = "server_persistent_connections", .set = parse_onoff,
      FIELD(server_persistent_connections), .def = "on", .squid = "Same.",
      .doc = "Reuse origin server connections." },
    { .name = "max_client_connections", .set = parse_int, FIELD(max_client_connections),
      .def = "16384", .min = 1, .max = 1 << 24,
      .squid = "proxyd only.",
      .doc = "Open client connections per worker; more are refused until some close." },
    { .name = "server_pconn_max_idle", .set = parse_int, FIELD(server_pconn_max_idle),
      .def = "256", .min = 0, .max = 1 << 20,
      .squid = "proxyd only.",
      .doc = "Idle origin connections kept per worker." },
    { .name = "server_pconn_max_per_host", .set = parse_int, FIELD(server_pconn_max_per_host),
      .def = "32", .min = 0, .max = 1 << 20,
      .squid = "proxyd only.",
      .doc = "Idle origin connections kept per worker for one host:port." },
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/*
 * Squid directives (and their aliases) that proxyd does not implement:
 * accepted with a warning. From Squid's src/cf.data.pre (Squid 5.7 as
 * shipped by Debian, plus the few added since). Sorted for bsearch (C locale).
 */
static const char *const squid_only[] = {

    "accept_filter", "acl_uses_indirect_client", "adaptation_access", "adaptation_masterx_shared_names",
    "adaptation_meta", "adaptation_send_client_ip", "adaptation_send_username", "adaptation_service_chain",
    "adaptation_service_iteration_limit", "adaptation_service_set", "adaptation_uses_indirect_client", "adapted_http_access",
    "allow_underscore", "always_direct", "announce_file", "announce_host",
    "announce_period", "announce_port", "append_domain", "as_whois_server",
    "auth_param", "auth_schemes", "authenticate_cache_garbage_interval", "authenticate_ip_ttl",
    "authenticate_ttl", "background_ping_rate", "balance_on_multiple_ip", "broken_posts",
    "broken_vary_encoding", "buffered_logs", "cache_access_log", "cache_dir",
    "cache_effective_group", "cache_effective_user", "cache_host_domain", "cache_log_message",
    "cache_mgr", "cache_miss_revalidate", "cache_peer", "cache_peer_access",
    "cache_peer_domain", "cache_replacement_policy", "cache_store_log", "cache_swap_high",
    "cache_swap_log", "cache_swap_low", "cache_swap_state", "cache_vary",
    "cachemgr_passwd", "check_hostnames", "chroot", "chunked_request_body_max_size",
    "client_db", "client_delay_access", "client_delay_initial_bucket_level", "client_delay_parameters",
    "client_delay_pools", "client_dst_passthru", "client_ip_max_connections", "client_netmask",
    "client_request_buffer_max_size", "clientside_tos", "collapsed_forwarding_access", "configuration_includes_quoted_values",
    "connect_retries", "coredump_dir", "cpu_affinity_map", "dead_peer_timeout",
    "debug_options", "delay_access", "delay_class", "delay_initial_bucket_level",
    "delay_parameters", "delay_pool_uses_indirect_client", "delay_pools", "detect_broken_pconn",
    "digest_bits_per_entry", "digest_generation", "digest_rebuild_chunk_percentage", "digest_rebuild_period",
    "digest_rewrite_period", "digest_swapout_chunk_size", "diskd_program", "dns_defnames",
    "dns_multicast_local", "dns_packet_max", "dns_retransmit_interval", "dns_testnames",
    "dns_v4_fallback", "dns_v4_first", "ecap_enable", "ecap_service",
    "email_err_data", "emulate_httpd_log", "err_html_text", "err_page_stylesheet",
    "error_default_language", "error_directory", "error_log_languages", "error_map",
    "esi_parser", "eui_lookup", "extension_methods", "external_acl_type",
    "external_refresh_check", "follow_x_forwarded_for", "force_request_body_continuation", "forward_log",
    "forward_max_tries", "fqdncache_size", "ftp_client_idle_timeout", "ftp_eprt",
    "ftp_epsv", "ftp_epsv_all", "ftp_list_width", "ftp_passive",
    "ftp_port", "ftp_sanitycheck", "ftp_telnet_protocol", "ftp_user",
    "global_internal_static", "half_closed_clients", "happy_eyeballs_connect_gap", "happy_eyeballs_connect_limit",
    "happy_eyeballs_connect_timeout", "header_access", "hierarchy_stoplist", "high_memory_warning",
    "high_page_fault_warning", "high_response_time_warning", "hopeless_kid_revival_delay", "host_verify_strict",
    "hostname_aliases", "htcp_access", "htcp_clr_access", "htcp_port",
    "http_accel_surrogate_remote", "http_access2", "http_reply_access", "http_upgrade_request_protocols",
    "httpd_accel_no_pmtu_disc", "httpd_accel_surrogate_id", "httpd_suppress_version_string", "https_port",
    "icap_206_enable", "icap_access", "icap_class", "icap_client_username_encode",
    "icap_client_username_header", "icap_connect_timeout", "icap_default_options_ttl", "icap_enable",
    "icap_io_timeout", "icap_log", "icap_persistent_connections", "icap_preview_enable",
    "icap_preview_size", "icap_retry", "icap_retry_limit", "icap_send_client_ip",
    "icap_send_client_username", "icap_service", "icap_service_failure_limit", "icap_service_revival_delay",
    "icap_uses_indirect_client", "icon_directory", "icp_access", "icp_hit_stale",
    "icp_port", "icp_query_timeout", "ident_lookup_access", "ident_timeout",
    "ie_refresh", "ignore_expect_100", "ignore_ims_on_miss", "ignore_unknown_nameservers",
    "incoming_dns_average", "incoming_http_average", "incoming_icp_average", "incoming_rate",
    "incoming_tcp_average", "incoming_udp_average", "ipcache_high", "ipcache_low",
    "ipcache_size", "loadable_modules", "location_rewrite_access", "location_rewrite_children",
    "location_rewrite_concurrency", "location_rewrite_program", "log_access", "log_fqdn",
    "log_icap", "log_icp_queries", "log_ip_on_direct", "log_mime_hdrs",
    "log_uses_indirect_client", "logfile_daemon", "logfile_rotate", "mail_from",
    "mail_program", "mark_client_connection", "mark_client_packet", "max_filedesc",
    "max_filedescriptors", "max_open_disk_fds", "maximum_icp_query_timeout",
    "maximum_single_addr_tries", "mcast_groups", "mcast_icp_query_timeout", "mcast_miss_addr",
    "mcast_miss_encode_key", "mcast_miss_port", "mcast_miss_ttl", "memory_cache_mode",
    "memory_cache_shared", "memory_pools", "memory_pools_limit",
    "mime_table", "min_dns_poll_cnt", "min_http_poll_cnt", "min_icp_poll_cnt",
    "min_tcp_poll_cnt", "min_udp_poll_cnt", "minimum_direct_hops", "minimum_direct_rtt",
    "minimum_expiry_time", "minimum_icp_query_timeout", "minimum_object_size", "miss_access",
    "negative_ttl", "neighbor_type_domain", "netdb_filename", "netdb_high",
    "netdb_low", "netdb_ping_period", "never_direct", "no_cache",
    "nonhierarchical_direct", "note", "offline_mode", "on_unsupported_protocol",
    "pconn_lifetime", "peer_connect_timeout", "persistent_connection_after_error", "pinger_enable",
    "pinger_program", "pipeline_prefetch", "prefer_direct", "proxy_protocol_access",
    "qos_flows", "query_icmp", "quick_abort_max", "quick_abort_min",
    "quick_abort_pct", "range_offset_limit", "read_ahead_gap", "redirect_children",
    "redirect_program", "redirect_rewrites_host_header", "redirector_access", "redirector_bypass",
    "referer_log", "referrer_log", "refresh_all_ims", "refresh_stale_hit",
    "relaxed_header_parser", "reload_into_ims", "reply_body_max_size", "reply_header_access",
    "reply_header_add", "reply_header_replace", "request_entities", "request_header_access",
    "request_header_add", "request_header_replace", "request_start_timeout", "response_delay_pool",
    "response_delay_pool_access", "retry_on_error", "send_hit", "server_http11",
    "server_pconn_for_nonretriable", "shared_memory_locking", "shared_transient_entries_limit", "short_icon_urls",
    "sleep_after_fork", "snmp_access", "snmp_incoming_address", "snmp_outgoing_address",
    "snmp_port", "spoof_client_ip", "ssl_bump", "ssl_engine",
    "ssl_unclean_shutdown", "sslcrtd_children", "sslcrtd_program", "sslcrtvalidator_children",
    "sslcrtvalidator_program", "sslpassword_program", "sslproxy_cafile", "sslproxy_capath",
    "sslproxy_cert_adapt", "sslproxy_cert_error", "sslproxy_cert_sign", "sslproxy_cert_sign_hash",
    "sslproxy_cipher", "sslproxy_client_certificate", "sslproxy_client_key", "sslproxy_flags",
    "sslproxy_foreign_intermediate_certs", "sslproxy_options", "sslproxy_session_cache_size", "sslproxy_session_ttl",
    "sslproxy_version", "stats_collection", "store_avg_object_size", "store_dir_select_algorithm",
    "store_id_access", "store_id_bypass", "store_id_children", "store_id_extras",
    "store_id_program", "store_miss", "store_objects_per_bucket", "storeurl_rewrite_access",
    "storeurl_rewrite_bypass", "storeurl_rewrite_children", "storeurl_rewrite_program", "strip_query_terms",
    "tcp_outgoing_address", "tcp_outgoing_ds", "tcp_outgoing_dscp", "tcp_outgoing_mark",
    "tcp_outgoing_tos", "tcp_recv_bufsize", "test_reachability", "tls_key_log",
    "tls_outgoing_options", "tproxy_uses_indirect_client", "udp_incoming_address", "udp_outgoing_address",
    "udp_port", "umask", "unique_hostname", "unlinkd_program",
    "update_headers", "upgrade_http0.9", "uri_whitespace", "url_rewrite_access",
    "url_rewrite_bypass", "url_rewrite_children", "url_rewrite_concurrency", "url_rewrite_extras",
    "url_rewrite_host_header", "url_rewrite_program", "url_rewrite_timeout", "useragent_log",
    "vary_ignore_expire", "wais_relay_host", "wais_relay_port", "wccp2_address",
    "wccp2_assignment_method", "wccp2_forwarding_method", "wccp2_rebuild_wait", "wccp2_return_method",
    "wccp2_router", "wccp2_service", "wccp2_service_info", "wccp2_weight",
    "wccp_address", "wccp_router", "wccp_version", "windows_ipaddrchangemonitor",
    "zero_buffers", "zph_local", "zph_mode", "zph_option",
    "zph_parent", "zph_sibling",
};

#define N_SQUID_ONLY (sizeof(squid_only) / sizeof(squid_only[0]))

static int cmp_name(const void *key, const void *elem)
{
    return strcmp((const char *)key, *(const char *const *)elem);
}

static bool is_squid_only(const char *name)
{
    return bsearch(name, squid_only, N_SQUID_ONLY, sizeof(squid_only[0]), cmp_name) != NULL;
}

static const directive *find_directive(const char *name)
{
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if (!strcmp(directives[i].name, name) ||
            (directives[i].alias && !strcmp(directives[i].alias, name)))
            return &directives[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Lexing                                                                    */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v' || ch == '\n';
}

typedef struct word {
    char *val;          /* quotes removed */
    char *raw;          /* as written */
    const char *end;    /* just after the word in the line */
} word;

/*
 * Next word of *pp. Returns 1 with w filled (caller frees val and raw), 0 at
 * the end of the line or at a comment, -1 on a syntax error (reported).
 */
static int next_word(loader *ld, const char **pp, word *w)
{
    const char *p = *pp;
    while (is_space(*p))
        p++;
    if (!*p || *p == '#') {
        *pp = p;
        return 0;
    }
    const char *start = p;
    size_t cap = strlen(p) + 1, n = 0;
    char *val = malloc(cap);
    if (!val)
        return error(ld, "out of memory");
    while (*p && !is_space(*p)) {
        if (*p != '"') {
            val[n++] = *p++;
            continue;
        }
        p++;
        for (;;) {
            if (!*p) {
                free(val);
                return error(ld, "unterminated quoted string");
            }
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            val[n++] = *p++;
        }
    }
    val[n] = '\0';
    w->val = val;
    w->raw = strndup(start, (size_t)(p - start));
    w->end = p;
    *pp = p;
    if (!w->raw) {
        free(val);
        return error(ld, "out of memory");
    }
    return 1;
}

typedef struct wordv {
    word *v;
    int n, cap;
} wordv;

static void wordv_free(wordv *wv)
{
    for (int i = 0; i < wv->n; i++) {
        free(wv->v[i].val);
        free(wv->v[i].raw);
    }
    free(wv->v);
    memset(wv, 0, sizeof(*wv));
}

/* All remaining words of *pp into wv; -1 on error. */
static int split_words(loader *ld, const char **pp, wordv *wv, int max)
{
    for (;;) {
        if (max >= 0 && wv->n >= max)
            return 0;
        word w;
        int rc = next_word(ld, pp, &w);
        if (rc <= 0)
            return rc;
        if (wv->n == wv->cap) {
            int cap = wv->cap ? wv->cap * 2 : 8;
            word *v = realloc(wv->v, (size_t)cap * sizeof(*v));
            if (!v) {
                free(w.val);
                free(w.raw);
                return error(ld, "out of memory");
            }
            wv->v = v;
            wv->cap = cap;
        }
        wv->v[wv->n++] = w;
    }
}

/* ------------------------------------------------------------------------ */
/* Lines, files, includes                                                    */

static void parse_text(loader *ld, const char *text);

static bool has_glob_magic(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

static char *read_file(const char *path, size_t *len_out, int *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = errno;
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len > MAX_FILE_SIZE) {
            free(buf);
            fclose(f);
            *err = EFBIG;
            return NULL;
        }
    }
    if (buf && ferror(f)) {
        *err = errno ? errno : EIO;
        free(buf);
        buf = NULL;
    } else if (!buf) {
        *err = ENOMEM;
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
        *len_out = len;
    }
    return buf;
}

/* An error about a whole file (no line): "path: message". */
static int file_error(loader *ld, const char *path, const char *what, int err)
{
    fprintf(ld->err ? ld->err : stderr, "%s: %s: %s\n", path, what, strerror(err));
    ld->n_errors++;
    return -1;
}

/* Read and parse one file (top level or included); -1 if it could not be read. */
static int load_file(loader *ld, const char *path, bool top)
{
    if (ld->depth >= MAX_INCLUDE_DEPTH)
        return error(ld, "include: '%s': nested deeper than %d levels", path, MAX_INCLUDE_DEPTH);
    char *real = realpath(path, NULL);
    if (!real) {
        if (top)
            return file_error(ld, path, "cannot open", errno);
        return error(ld, "include: cannot open '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (stat(real, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(real);
        if (top)
            return file_error(ld, path, "cannot read", EISDIR);
        return error(ld, "include: '%s' is a directory", path);
    }
    /* an included device (/dev/zero, a tty) would never end */
    if (!top && (stat(real, &st) != 0 || !S_ISREG(st.st_mode))) {
        free(real);
        return error(ld, "include: '%s' is not a regular file", path);
    }
    for (int i = 0; i < ld->n_stack; i++) {
        if (!strcmp(ld->stack[i], real)) {
            free(real);
            return error(ld, "include: '%s' includes itself (include loop)", path);
        }
    }
    size_t len;
    int err = 0;
    char *text = read_file(real, &len, &err);
    if (!text) {
        free(real);
        if (top)
            return file_error(ld, path, "cannot read", err);
        return error(ld, "include: cannot read '%s': %s", path, strerror(err));
    }
    if (memchr(text, '\0', len)) {
        free(text);
        free(real);
        if (top)
            return file_error(ld, path, "not a text file", EINVAL);
        return error(ld, "include: '%s' is not a text file (NUL byte)", path);
    }
    const char *saved_file = ld->file;
    int saved_line = ld->line;
    ld->stack[ld->n_stack++] = real;
    ld->depth++;
    ld->file = path;
    parse_text(ld, text);
    ld->file = saved_file;
    ld->line = saved_line;
    ld->depth--;
    ld->n_stack--;
    free(real);
    free(text);
    return 0;
}

static void do_include(loader *ld, int argc, char **argv)
{
    if (argc < 1) {
        error(ld, "include: missing file name");
        return;
    }
    const char *cur = ld->file ? ld->file : "";
    const char *slash = strrchr(cur, '/');
    for (int i = 0; i < argc; i++) {
        char *full;
        int rc;
        if (argv[i][0] == '/' || !slash)
            rc = asprintf(&full, "%s", argv[i]);
        else
            rc = asprintf(&full, "%.*s/%s", (int)(slash - cur), cur, argv[i]);
        if (rc < 0) {
            error(ld, "out of memory");
            return;
        }
        if (!has_glob_magic(argv[i])) {
            load_file(ld, full, false);
            free(full);
            continue;
        }
        /* an empty wildcard (conf.d/ with nothing in it) is fine, as in Squid */
        glob_t g = { 0 };
        rc = glob(full, 0, NULL, &g);
        if (rc != 0 && rc != GLOB_NOMATCH)
            error(ld, "include: cannot expand '%s'", full);
        for (size_t k = 0; rc == 0 && k < g.gl_pathc; k++)
            load_file(ld, g.gl_pathv[k], false);
        globfree(&g);
        free(full);
    }
}

/* Squid's if/else/endif, per file. */
#define MAX_COND_DEPTH 16
typedef struct cond_state {
    int depth;
    bool taken[MAX_COND_DEPTH];     /* this level's condition was true */
    bool in_else[MAX_COND_DEPTH];
} cond_state;

static bool cond_active(const cond_state *cs)
{
    for (int i = 0; i < cs->depth; i++)
        if (cs->taken[i] == cs->in_else[i])
            return false;
    return true;
}

/* Squid's conditions: true, false, or INTEGER = INTEGER. */
static int eval_condition(loader *ld, const wordv *wv, bool *out)
{
    if (wv->n == 1 && !strcmp(wv->v[0].val, "true")) {
        *out = true;
        return 0;
    }
    if (wv->n == 1 && !strcmp(wv->v[0].val, "false")) {
        *out = false;
        return 0;
    }
    if (wv->n == 3 && !strcmp(wv->v[1].val, "=")) {
        char *e1, *e2;
        long long a = strtoll(wv->v[0].val, &e1, 10), b = strtoll(wv->v[2].val, &e2, 10);
        if (wv->v[0].val[0] && !*e1 && wv->v[2].val[0] && !*e2) {
            *out = a == b;
            return 0;
        }
    }
    return error(ld, "if: expected true, false or INTEGER = INTEGER");
}

/* if/else/endif: returns true when the line was one of them. */
static bool conditional(loader *ld, const char *name, const char **pp, cond_state *cs)
{
    if (!strcmp(name, "if")) {
        wordv wv = { 0 };
        bool v = false;
        if (split_words(ld, pp, &wv, -1) < 0 || eval_condition(ld, &wv, &v) < 0)
            v = false;
        wordv_free(&wv);
        if (cs->depth >= MAX_COND_DEPTH) {
            error(ld, "if: nested deeper than %d levels", MAX_COND_DEPTH);
            return true;
        }
        cs->taken[cs->depth] = v;
        cs->in_else[cs->depth] = false;
        cs->depth++;
        return true;
    }
    if (!strcmp(name, "else") || !strcmp(name, "endif")) {
        word extra;
        if (next_word(ld, pp, &extra) > 0) {
            free(extra.val);
            free(extra.raw);
            error(ld, "%s: unexpected argument", name);
        }
        if (cs->depth == 0) {
            error(ld, "'%s' without 'if'", name);
        } else if (name[1] == 'l') {
            if (cs->in_else[cs->depth - 1])
                error(ld, "'else' after 'else'");
            cs->in_else[cs->depth - 1] = true;
        } else {
            cs->depth--;
        }
        return true;
    }
    return false;
}

/* One logical line (continuations joined). */
static void process_line(loader *ld, const char *line, cond_state *cs)
{
    const char *p = line;
    word name;
    int rc = next_word(ld, &p, &name);
    if (rc <= 0)
        return;
    wordv wv = { 0 };
    char **argv = NULL;
    if (cs) {
        if (conditional(ld, name.val, &p, cs) || !cond_active(cs))
            goto out;
    }
    if (!strcmp(name.val, "include")) {
        if (split_words(ld, &p, &wv, -1) == 0) {
            argv = calloc((size_t)wv.n + 1, sizeof(char *));
            if (!argv) {
                error(ld, "out of memory");
                goto out;
            }
            for (int i = 0; i < wv.n; i++)
                argv[i] = wv.v[i].val;
            do_include(ld, wv.n, argv);
        }
        goto out;
    }
    const directive *d = find_directive(name.val);
    if (!d) {
        if (is_squid_only(name.val))
            warn(ld, "squid directive '%s' is not supported by proxyd; ignored", name.val);
        else
            error(ld, "unknown directive '%s'", name.val);
        goto out;
    }
    ld->logformat_rest = NULL;
    if (split_words(ld, &p, &wv, (d->flags & F_REST) ? 1 : -1) < 0)
        goto out;
    char *rest = NULL;
    if (d->flags & F_REST) {
        /* Squid takes the format to the end of the line, as written */
        const char *r = wv.n ? wv.v[0].end : p;
        while (is_space(*r))
            r++;
        size_t n = strlen(r);
        while (n && is_space(r[n - 1]))
            n--;
        rest = strndup(r, n);
        if (!rest) {
            error(ld, "out of memory");
            goto out;
        }
        ld->logformat_rest = rest;
    }
    argv = calloc((size_t)wv.n + 1, sizeof(char *));
    if (!argv) {
        free(rest);
        error(ld, "out of memory");
        goto out;
    }
    for (int i = 0; i < wv.n; i++)
        argv[i] = (d->flags & F_RAW_QUOTES) ? wv.v[i].raw : wv.v[i].val;
    if (d->set(ld, d, wv.n, argv) == 0 && ld->file)
        ld->seen[d - directives]++;
    ld->logformat_rest = NULL;
    free(rest);
out:
    free(argv);
    wordv_free(&wv);
    free(name.val);
    free(name.raw);
}

static void parse_text(loader *ld, const char *text)
{
    const char *p = text;
    int lineno = 0;
    cond_state cs = { 0 };
    int if_line[MAX_COND_DEPTH];
    char *buf = NULL;
    size_t cap = 0;
    while (*p) {
        size_t len = 0;
        int first = lineno + 1;
        /* join physical lines ending in a backslash, as Squid */
        for (;;) {
            const char *nl = strchr(p, '\n');
            size_t n = nl ? (size_t)(nl - p) : strlen(p);
            lineno++;
            if (len + n + 1 > cap) {
                size_t ncap = (len + n + 1) * 2;
                char *nb = realloc(buf, ncap);
                if (!nb) {
                    free(buf);
                    ld->line = lineno;
                    error(ld, "out of memory");
                    return;
                }
                buf = nb;
                cap = ncap;
            }
            memcpy(buf + len, p, n);
            len += n;
            while (len && buf[len - 1] == '\r')
                len--;
            p = nl ? nl + 1 : p + n;
            if (len && buf[len - 1] == '\\' && *p) {
                len--;
                continue;
            }
            if (len && buf[len - 1] == '\\')
                len--;
            break;
        }
        buf[len] = '\0';
        ld->line = first;
        int depth = cs.depth;
        process_line(ld, buf, &cs);
        if (cs.depth > depth)
            if_line[depth] = first;
    }
    free(buf);
    if (cs.depth > 0) {
        ld->line = if_line[cs.depth - 1];
        error(ld, "'if' without 'endif'");
    }
}

/* ------------------------------------------------------------------------ */
/* Load, finish, free                                                        */

static void apply_default(loader *ld, const directive *d)
{
    char *line;
    if (asprintf(&line, "%s %s", d->name, d->def) < 0) {
        error(ld, "out of memory");
        return;
    }
    process_line(ld, line, NULL);
    free(line);
}

static const directive *row(const char *name)
{
    return find_directive(name);
}

static void finish(loader *ld)
{
    pd_conf *c = ld->c;
    ld->file = NULL;
    ld->line = 0;
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if ((directives[i].flags & F_LIST) && directives[i].def && ld->seen[i] == 0)
            apply_default(ld, &directives[i]);

    if (ld->seen[row("maximum_object_size_in_memory") - directives] == 0) {
        c->maximum_object_size_in_memory = c->maximum_object_size;
    } else if (c->maximum_object_size_in_memory > c->maximum_object_size) {
        ld->file = ld->mosim_file;
        ld->line = ld->mosim_line;
        warn(ld, "maximum_object_size_in_memory: larger than maximum_object_size "
                 "(%llu bytes); lowered to it", (unsigned long long)c->maximum_object_size);
        c->maximum_object_size_in_memory = c->maximum_object_size;
    }

    if (!c->visible_hostname) {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0 || !host[0])
            strcpy(host, "localhost");
        host[sizeof(host) - 1] = '\0';
        set_string(ld, &c->visible_hostname, host);
    }

    if (ld->alog_fmt) {
        bool found = false;
        for (size_t i = 0; i < c->logformat.n && !found; i++)
            found = !strcmp(c->logformat.v[i].argv[0], ld->alog_fmt);
        ld->file = ld->alog_file;
        ld->line = ld->alog_line;
        if (found)
            set_string(ld, &c->access_log_format_name, ld->alog_fmt);
        else
            error(ld, "access_log: unknown logformat '%s'", ld->alog_fmt);
    }
    for (size_t i = 0; i < c->logformat.n; i++) {
        /* the % codes are compiled by access_log.c: refuse what it cannot print */
        const pd_conf_line *l = &c->logformat.v[i];
        char err[160];
        pd_logfmt *f = l->argc >= 2 ? pd_logfmt_compile(l->argv[1], err, sizeof err) : NULL;
        ld->file = l->file;
        ld->line = l->line;
        if (!f)
            error(ld, "logformat %s: %s", l->argv[0], l->argc >= 2 ? err : "missing format");
        pd_logfmt_free(f);
    }
    ld->file = NULL;
}

static void free_lines(pd_conf_lines *l)
{
    for (size_t i = 0; i < l->n; i++) {
        for (int k = 0; k < l->v[i].argc; k++)
            free(l->v[i].argv[k]);
        free(l->v[i].argv);
        free(l->v[i].file);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

void pd_conf_free(pd_conf *c)
{
    if (!c)
        return;
    free_lines(&c->acl);
    free_lines(&c->http_access);
    free_lines(&c->cache_rules);
    free_lines(&c->refresh_pattern);
    free_lines(&c->deny_info);
    free_lines(&c->logformat);
    free(c->access_log);
    free(c->access_log_format_name);
    free(c->cache_log);
    free(c->pid_filename);
    for (int i = 0; i < c->n_dns_nameservers; i++)
        free(c->dns_nameservers[i]);
    free(c->hosts_file);
    free(c->visible_hostname);
    free(c->path);
    free(c);
}

/*
 * Shared by both entry points: text is the top file's content (or NULL to
 * read path from disk), name the name used in messages and for includes.
 */
static pd_conf *load(const char *name, const char *text, FILE *err_out)
{
    loader ld = { .err = err_out };
    ld.c = calloc(1, sizeof(pd_conf));
    ld.seen = calloc(N_DIRECTIVES, sizeof(int));
    if (!ld.c || !ld.seen) {
        free(ld.c);
        free(ld.seen);
        fprintf(err_out ? err_out : stderr, "%s: out of memory\n", name);
        return NULL;
    }
    for (size_t i = 0; i < N_DIRECTIVES; i++)
        if (!(directives[i].flags & F_LIST) && directives[i].def)
            apply_default(&ld, &directives[i]);
    ld.c->path = strdup(name);

    if (text) {
        ld.file = name;
        parse_text(&ld, text);
    } else {
        load_file(&ld, name, true);
    }
    finish(&ld);

    pd_conf *c = ld.c;
    if (!c->path)
        error(&ld, "out of memory");
    free(ld.seen);
    free(ld.alog_fmt);
    free(ld.alog_file);
    free(ld.mosim_file);
    if (ld.n_errors) {
        pd_conf_free(c);
        return NULL;
    }
    return c;
}

pd_conf *pd_conf_load(const char *path, FILE *err_out)
{
    if (!path)
        return NULL;
    return load(path, NULL, err_out);
}

pd_conf *pd_conf_load_string(const char *name, const char *text, FILE *err_out)
{
    if (!name)
        name = "(string)";
    return load(name, text ? text : "", err_out);
}

/* ------------------------------------------------------------------------ */
/* Reference                                                                 */

/* Table cells: a `|` would end the cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s, out);
    }
}

void pd_conf_print_reference(FILE *out)
{
    fputs("# proxyd configuration reference\n\n"
          "<!-- Generated from the directive table in src/conf.c by pd_conf_print_reference();"
          " do not edit by hand. -->\n\n"
          "proxy.conf uses squid.conf syntax and semantics. One directive per line; `#` starts a"
          " comment (at the start of a word); a line ending in `\\` continues on the next one;"
          " words are separated by blanks and a \"double quoted\" word may contain blanks."
          " `include PATTERN...` reads more files (shell wildcards, relative to the including"
          " file, nested up to 16 levels). Squid's `if true|false|N = N`, `else` and `endif`"
          " select lines.\n\n"
          "Sizes are a number and a unit: `bytes`, `KB`, `MB` or `GB` (`260 MB`); a bare"
          " number is in bytes. Times are a number and a unit: `milliseconds`, `seconds`,"
          " `minutes`, `hours`, `days`, `weeks`, `fortnights`, `months`, `years` or `decades`"
          " (singular or plural, `1 minute`, `30 seconds`); a bare number is in seconds."
          " Booleans are `on` or `off`.\n\n"
          "A Squid directive that proxyd does not implement is reported as a warning with its"
          " file and line and ignored; a word that is no directive at all is an error.\n\n"
          "| Directive | Default | Description | Squid |\n"
          "| --- | --- | --- | --- |\n", out);
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const directive *d = &directives[i];
        fprintf(out, "| `%s`", d->name);
        if (d->alias)
            fprintf(out, " (or `%s`)", d->alias);
        fputs(" | ", out);
        if (d->def_doc)
            md_cell(out, d->def_doc);
        else if (d->def) {
            fputc('`', out);
            md_cell(out, d->def);
            fputc('`', out);
        } else {
            fputs("none", out);
        }
        fputs(" | ", out);
        md_cell(out, d->doc);
        fputs(" | ", out);
        md_cell(out, d->squid);
        fputs(" |\n", out);
    }
    fputs("\n## Squid directives accepted and ignored\n\n"
          "These are valid in squid.conf but have no effect in proxyd (each one is a"
          " warning):\n\n", out);
    for (size_t i = 0; i < N_SQUID_ONLY; i++)
        fprintf(out, "%s`%s`", i ? ", " : "", squid_only[i]);
    fputs(".\n", out);
}
