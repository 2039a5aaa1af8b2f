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
 * Squid directives that proxyd does not implement are errors when skipping
 * them would weaken what the operator wrote (squid_only[] says which), else
 * warnings; anything else unknown is an error. All errors of a load are
 * reported, then NULL.
 */
#include "proxyd/conf.h"
#include "proxyd/access_log.h"
#include "proxyd/cache_store.h"
#include "proxyd/helper.h"

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
    F_OURS = 8,         /* proxyd's own, not a Squid directive */
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
    if (!u && !d->unit)
        return error(ld, "%s: '%s' needs a unit", d->name, argv[0]);
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

/*
 * Squid's http_port options. proxyd implements `intercept` (and its old name
 * `transparent`, parse_port); of the others, those that change what the port
 * does with traffic (its mode, TLS, the PROXY header) are errors with what to
 * do; the rest are warnings. A name ending in '=' takes a value.
 */
#define PORT_TPROXY "proxyd does not implement TPROXY (spoofing the client's address towards the " \
                    "origin); use `intercept` with a NAT REDIRECT or DNAT rule instead"
#define PORT_ACCEL "proxyd is a forward proxy only, not an accelerator (reverse proxy)"
#define PORT_TLS "proxyd neither bumps nor terminates TLS on http_port, CONNECT is tunnelled " \
                 "unexamined; remove the option only if that is acceptable"
#define PORT_PROXY_HDR "proxyd does not read the PROXY protocol header, so the sender would be " \
                       "taken for the client; remove the option and connect clients directly"

static const struct port_option {
    const char *name;
    const char *todo;       /* NULL: a warning */
} port_options[] = {
    { "tproxy", PORT_TPROXY },
    { "accel", PORT_ACCEL }, { "vhost", PORT_ACCEL }, { "vport", PORT_ACCEL },
    { "vport=", PORT_ACCEL }, { "defaultsite=", PORT_ACCEL }, { "act-as-origin", PORT_ACCEL },
    { "allow-direct", PORT_ACCEL }, { "protocol=", PORT_ACCEL }, { "ignore-cc", PORT_ACCEL },
    { "no-vhost", PORT_ACCEL },
    { "ssl-bump", PORT_TLS }, { "generate-host-certificates", PORT_TLS },
    { "generate-host-certificates=", PORT_TLS }, { "dynamic_cert_mem_cache_size=", PORT_TLS },
    { "tls-cert=", PORT_TLS }, { "tls-key=", PORT_TLS }, { "cert=", PORT_TLS },
    { "key=", PORT_TLS }, { "cipher=", PORT_TLS }, { "options=", PORT_TLS },
    { "clientca=", PORT_TLS }, { "cafile=", PORT_TLS }, { "capath=", PORT_TLS },
    { "crlfile=", PORT_TLS }, { "dhparams=", PORT_TLS }, { "tls-dh=", PORT_TLS },
    { "sslflags=", PORT_TLS }, { "tls-cafile=", PORT_TLS }, { "tls-capath=", PORT_TLS },
    { "sslcontext=", PORT_TLS }, { "context=", PORT_TLS }, { "tls-default-ca", PORT_TLS },
    { "tls-default-ca=", PORT_TLS }, { "tls-min-version=", PORT_TLS }, { "version=", PORT_TLS },
    { "tls-crlfile=", PORT_TLS }, { "tls-clientca=", PORT_TLS }, { "tls-options=", PORT_TLS },
    { "tls-cipher=", PORT_TLS }, { "tls-flags=", PORT_TLS },
    { "require-proxy-header", PORT_PROXY_HDR },
    /* tuning and names: warnings */
    { "name=", NULL }, { "no-connection-auth", NULL }, { "connection-auth=", NULL },
    { "tcpkeepalive", NULL }, { "tcpkeepalive=", NULL }, { "worker-queues", NULL },
    { "ftp-track-dirs", NULL }, { "http11", NULL }, { "ipv4", NULL },
    { "disable-pmtu-discovery=", NULL },
};

/* The row for opt ("flag" or "key=value"), or NULL if Squid has no such option. */
static const struct port_option *squid_port_option(const char *opt)
{
    const char *eq = strchr(opt, '=');
    size_t n = eq ? (size_t)(eq - opt) + 1 : strlen(opt);
    for (size_t i = 0; i < sizeof(port_options) / sizeof(port_options[0]); i++)
        if (strlen(port_options[i].name) == n && !strncmp(opt, port_options[i].name, n))
            return &port_options[i];
    return NULL;
}

/* udp_incoming_address: an IPv4 or IPv6 literal. */
static int parse_udp_address(loader *ld, const directive *d, int argc, char **argv)
{
    if (want_args(ld, d, argc, 1) < 0)
        return -1;
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, argv[0], buf) != 1 && inet_pton(AF_INET6, argv[0], buf) != 1)
        return error(ld, "%s: '%s' is not an IPv4 or IPv6 address", d->name, argv[0]);
    return set_string(ld, (char **)field(ld, d), argv[0]);
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
    if (ld->file)
        snprintf(a.where, sizeof a.where, "%s:%d", ld->file, ld->line);
    else
        snprintf(a.where, sizeof a.where, "(default)");
    if (d->off_n == offsetof(pd_conf, n_admin_port) && !strchr(argv[0], ':')) {
        /* the admin listener is never public by accident: a bare port is loopback */
        struct sockaddr_in *s4 = (struct sockaddr_in *)&a.ss;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(a.text, sizeof a.text, "127.0.0.1:%u", (unsigned)ntohs(s4->sin_port));
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const struct port_option *o = squid_port_option(argv[i]);
        if (!strcmp(argv[i], "intercept") || !strcmp(argv[i], "transparent")) {
            if (d->off_n != offsetof(pd_conf, n_http_port))
                rc = error(ld, "%s: option '%s' is for http_port only", d->name, argv[i]);
            a.intercept = 1;
        } else if (!o)
            rc = error(ld, "%s: unknown option '%s'", d->name, argv[i]);
        else if (o->todo)
            rc = error(ld, "%s: option '%s' is not implemented by proxyd: %s", d->name, argv[i],
                       o->todo);
        else
            warn(ld, "%s: option '%s' is not supported by proxyd; ignored", d->name, argv[i]);
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

/* A helper's `program /path args...`: kept with its file:line. */
static int helper_program(loader *ld, const char *what, pd_conf_helper *h, int nv, char **v)
{
    if (nv < 1 || v[0][0] != '/')
        return error(ld, "%s: expected an absolute path and its arguments", what);
    char **copy = calloc((size_t)nv + 1, sizeof *copy);
    if (!copy)
        return error(ld, "out of memory");
    for (int i = 0; i < nv; i++)
        if (!(copy[i] = strdup(v[i]))) {
            for (int k = 0; k < i; k++)
                free(copy[k]);
            free(copy);
            return error(ld, "out of memory");
        }
    for (int i = 0; h->argv && h->argv[i]; i++)
        free(h->argv[i]);
    free(h->argv);
    h->argv = copy;
    free(h->file);
    h->file = ld->file ? strdup(ld->file) : NULL;
    h->line = ld->line;
    return 0;
}

/* Squid's `children N [startup=N] [idle=N] [concurrency=N] [queue-size=N]`: the helper
 * module's parser, its fields copied into the configuration's. */
static int helper_children(loader *ld, const char *what, pd_conf_helper *h, int nv, char **v)
{
    pd_helper_cfg hc = { .children_max = h->children_max, .startup = h->startup, .idle = h->idle,
                         .concurrency = h->concurrency, .queue_size = h->queue_size };
    char err[160];
    if (pd_helper_parse_children(&hc, v, nv, err, sizeof err) < 0)
        return error(ld, "%s: %s", what, strncmp(err, "children: ", 10) == 0 ? err + 10 : err);
    h->children_max = hc.children_max;
    h->startup = hc.startup;
    h->idle = hc.idle;
    h->concurrency = hc.concurrency;
    h->queue_size = hc.queue_size;
    return 0;
}

static int parse_rewrite_program(loader *ld, const directive *d, int argc, char **argv)
{
    return helper_program(ld, d->name, &ld->c->url_rewrite, argc, argv);
}

static int parse_rewrite_children(loader *ld, const directive *d, int argc, char **argv)
{
    return helper_children(ld, d->name, &ld->c->url_rewrite, argc, argv);
}

static int parse_store_id_program(loader *ld, const directive *d, int argc, char **argv)
{
    return helper_program(ld, d->name, &ld->c->store_id, argc, argv);
}

static int parse_store_id_children(loader *ld, const directive *d, int argc, char **argv)
{
    return helper_children(ld, d->name, &ld->c->store_id, argc, argv);
}

/* url_rewrite_timeout TIME [on_timeout=bypass|fail|retry|use_configured_response]
 * [response="REPLY"], as Squid. */
static int parse_rewrite_timeout(loader *ld, const directive *d, int argc, char **argv)
{
    pd_conf *c = ld->c;
    int n = argc;
    while (n > 1 && strchr(argv[n - 1], '='))
        n--;
    if (n < 1 || n > 2)
        return error(ld, "%s: expected TIME [on_timeout=ACTION] [response=\"REPLY\"]", d->name);
    if (parse_time_ms(ld, d, n, argv) < 0)
        return -1;
    c->url_rewrite_on_timeout = PD_RW_BYPASS;
    free(c->url_rewrite_timeout_response);
    c->url_rewrite_timeout_response = NULL;
    for (int i = n; i < argc; i++) {
        const char *v = strchr(argv[i], '=') + 1;
        if (!strncmp(argv[i], "on_timeout=", 11)) {
            if (!strcmp(v, "bypass"))
                c->url_rewrite_on_timeout = PD_RW_BYPASS;
            else if (!strcmp(v, "fail"))
                c->url_rewrite_on_timeout = PD_RW_FAIL;
            else if (!strcmp(v, "retry"))
                c->url_rewrite_on_timeout = PD_RW_RETRY;
            else if (!strcmp(v, "use_configured_response"))
                c->url_rewrite_on_timeout = PD_RW_RESPONSE;
            else
                return error(ld, "%s: unknown on_timeout action '%s' (bypass, fail, retry, "
                             "use_configured_response)", d->name, v);
        } else if (!strncmp(argv[i], "response=", 9)) {
            if (strpbrk(v, "\r\n"))
                return error(ld, "%s: response= holds a line break", d->name);
            if (!(c->url_rewrite_timeout_response = strdup(v)))
                return error(ld, "out of memory");
        } else {
            return error(ld, "%s: unknown option '%s'", d->name, argv[i]);
        }
    }
    if ((c->url_rewrite_on_timeout == PD_RW_RESPONSE) != (c->url_rewrite_timeout_response != NULL))
        return error(ld, "%s: response= goes with on_timeout=use_configured_response, and only "
                     "with it", d->name);
    return 0;
}

/*
 * auth_param SCHEME PARAMETER VALUE...: Squid's Basic scheme. The other
 * schemes (digest, negotiate, ntlm) are errors: a client they would have
 * authenticated must not be served unauthenticated.
 */
static int parse_auth_param(loader *ld, const directive *d, int argc, char **argv)
{
    pd_conf_auth_basic *b = &ld->c->auth_basic;
    if (argc < 2)
        return error(ld, "%s: expected SCHEME PARAMETER VALUE...", d->name);
    if (!streq_ci(argv[0], "basic"))
        return error(ld, "%s: scheme '%s' is refused: proxyd authenticates with basic only, "
                     "and clients it would authenticate must not pass without", d->name, argv[0]);
    if (!b->seen) {
        b->seen = 1;
        b->seen_file = ld->file ? strdup(ld->file) : NULL;
        b->seen_line = ld->line;
    }
    const char *p = argv[1];
    int nv = argc - 2;
    char **v = argv + 2;
    if (strcmp(p, "program") == 0)
        return helper_program(ld, "auth_param basic program", &b->helper, nv, v);
    if (strcmp(p, "children") == 0)
        return helper_children(ld, "auth_param basic children", &b->helper, nv, v);
    if (strcmp(p, "realm") == 0) {
        if (nv < 1)
            return error(ld, "%s basic realm: expected the realm text", d->name);
        /* the rest of the line, words joined by one space, as Squid */
        size_t n = 0;
        for (int i = 0; i < nv; i++)
            n += strlen(v[i]) + 1;
        char *r = malloc(n);
        if (!r)
            return error(ld, "out of memory");
        r[0] = '\0';
        for (int i = 0; i < nv; i++) {
            if (i)
                strcat(r, " ");
            strcat(r, v[i]);
        }
        if (strpbrk(r, "\"\\\r\n")) {
            free(r);
            return error(ld, "%s basic realm: must not contain '\"' or '\\'", d->name);
        }
        free(b->realm);
        b->realm = r;
        return 0;
    }
    if (strcmp(p, "credentialsttl") == 0) {
        uint64_t ms = 0;
        if (parse_quantity(ld, d, nv, v, time_unit, "time", &ms) < 0)
            return -1;
        if (ms / 1000 > INT_MAX)
            return error(ld, "%s basic credentialsttl: value too large", d->name);
        b->credentialsttl = (int)(ms / 1000);
        return 0;
    }
    if (strcmp(p, "casesensitive") == 0) {
        if (nv != 1 || (!streq_ci(v[0], "on") && !streq_ci(v[0], "off")))
            return error(ld, "%s basic casesensitive: expected on or off", d->name);
        b->casesensitive = streq_ci(v[0], "on");
        return 0;
    }
    if (strcmp(p, "utf8") == 0) {
        if (nv == 1 && streq_ci(v[0], "off"))
            return 0;
        return error(ld, "%s basic utf8: only off (proxyd sends the credentials' bytes as "
                     "received)", d->name);
    }
    return error(ld, "%s basic: unknown parameter '%s'", d->name, p);
}

static int parse_logformat(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 1 || !ld->logformat_rest || !*ld->logformat_rest)
        return error(ld, "%s: expected NAME FORMAT", d->name);
    char *v[2] = { argv[0], (char *)ld->logformat_rest };
    return add_line(ld, (pd_conf_lines *)field(ld, d), 2, v);
}

/* NAME TEXT, TEXT the rest of the line as written (header_replace) */
static int parse_rest(loader *ld, const directive *d, int argc, char **argv)
{
    if (argc < 1 || !ld->logformat_rest || !*ld->logformat_rest)
        return error(ld, "%s: expected NAME TEXT", d->name);
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
        /* the records would go nowhere: an audit trail lost is not a detail */
        return error(ld, "%s: module '%.*s' is not implemented by proxyd: log to a file or "
                         "stdout (stdio:PATH) and ship that with the system's log forwarder",
                     d->name, (int)strcspn(place, ":"), place);
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
    /* Both would log other requests, or to other places, than written: requests meant
     * to stay out of a log would be recorded, or one of two logs would stay empty. */
    if (acls)
        rc = error(ld, "%s: acl conditions are not implemented by proxyd: every request would "
                       "be logged; remove them, or keep Squid if some requests must not be",
                   d->name);
    if (ld->file && ++ld->n_access_log > 1)
        rc = error(ld, "%s: a second access log is not implemented by proxyd: keep one "
                       "access_log line", d->name);
    if (rc < 0)
        return rc;
    if (set_log_format(ld, fmt) < 0)
        return -1;
    if (set_string(ld, &c->access_log_file, ld->file) < 0)
        return -1;
    c->access_log_line = ld->line;
    return set_string(ld, &c->access_log, path);
}

/* ------------------------------------------------------------------------ */
/* The directive table                                                       */

static const directive directives[] = {
    /* Network */
    { .name = "http_port", .alias = "ascii_port", .set = parse_port, FIELD(http_port),
      .off_n = offsetof(pd_conf, n_http_port), .def = "3128", .flags = F_LIST,
      .squid = "Same forms. `intercept` (or its old name `transparent`) is implemented, with "
               "Squid's default Host verification (see deployment.md). Other options that "
               "change what the port does (tproxy, accel, ssl-bump and TLS options, "
               "require-proxy-header) are errors; the others (name=, tcpkeepalive, ...) are "
               "warnings and ignored.",
      .doc = "Address to accept proxy clients on: `PORT`, `IP:PORT`, `[IPv6]:PORT` or "
             "`HOST:PORT`. Repeat the line for several addresses (at most 16). A bare port "
             "listens on all IPv4 addresses. Port 0 lets the system pick one. An address "
             "another process (another proxyd) listens on stops the start. Requests through "
             "the proxy to the proxy's own addresses are refused (403). With the option "
             "`intercept` (alias `transparent`) the port takes connections that a NAT rule "
             "(iptables REDIRECT or DNAT) turned towards it: each request goes to the "
             "connection's original destination address and port, and its response is "
             "cached only when the Host header names that address (an IP literal equal to "
             "it, or a name that resolves to it)." },
    { .name = "admin_port", .set = parse_port, FIELD(admin_port),
      .off_n = offsetof(pd_conf, n_admin_port), .flags = F_LIST | F_OURS, .def_doc = "none",
      .squid = "proxyd only (Squid serves its cache manager on http_port; proxyd does too, "
               "for origin-form /squid-internal-mgr/ requests).",
      .doc = "Address of the admin listener (/metrics, /stats, /healthz, "
             "/squid-internal-mgr/info and /counters), same forms as http_port; repeat for "
             "several. Off unless set (the shipped proxy.conf sets 127.0.0.1:3129); a bare "
             "PORT listens on 127.0.0.1 only; `none` turns it off. Loopback clients only unless "
             "an http_access line names the `manager` acl. An address another process listens "
             "on stops the start; one that cannot be bound otherwise is a warning. Never "
             "reachable through the proxy, whatever http_access says." },
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
    { .name = "tunnel_splice", .set = parse_onoff, FIELD(tunnel_splice), .def = "on",
      .squid = "proxyd's own (Squid copies tunnelled bytes through its buffers).",
      .doc = "A direction of a CONNECT tunnel that carries a bulk transfer (64 KB or more "
             "in one read round) is relayed inside the kernel with splice(2) from then on, "
             "instead of being copied through proxyd; small exchanges stay copied, which costs "
             "less for them. off copies everything. proxyd_tunnel_spliced_bytes_total counts "
             "the spliced bytes." },
    { .name = "hit_sendfile", .set = parse_onoff, FIELD(hit_sendfile), .def = "off",
      .squid = "proxyd's own (Squid copies memory-cache hits into the socket).",
      .doc = "on: cache hits send the whole memory pages of long bodies (runs of 32 KB and "
             "more) straight from the shared cache with sendfile(2), without copying them into "
             "the socket; a page lent so is taken out of the cache's memory before its space is "
             "reused, so the bytes a slow client has not received yet never change. Off by "
             "default: over loopback it measured 0.6-0.75x the requests per second of copying "
             "(the kernel handles the cache's 4 KB pages one by one; docs/benchmarks.md). Try it "
             "where hits leave through a real network card." },
    { .name = "max_stale", .set = parse_time_s, FIELD(max_stale), .def = "1 week",
      .unit = "seconds",
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
      .def = "off", .flags = F_OURS,
      .squid = "proxyd only; Squid always sends X-Cache and X-Cache-Lookup.",
      .doc = "Add `X-Cache: HIT from HOST` or `X-Cache: MISS from HOST` to responses." },

    /* Raw lines */
    { .name = "acl", .set = parse_acl, FIELD(acl), .min_args = 2,
      .flags = F_LIST | F_RAW_QUOTES, .def_doc = "none",
      .squid = "Same syntax. Types: src, dst, dstdomain, dstdom_regex, url_regex, "
               "urlpath_regex, port, method, proto, proxy_auth (REQUIRED or user names; "
               "needs auth_param basic), proxy_auth_regex, external (an external_acl_type "
               "and its values), note NAME [VALUE...] and tag VALUE... (the kv-pairs of "
               "an external acl's reply, also from its cache; no -m), with values inline or in "
               "\"files\".",
      .doc = "`acl NAME TYPE VALUE...` defines an access list. A quoted value "
             "(`\"/etc/proxyd/list\"`) names a file with one value a line." },
    { .name = "http_access", .set = parse_lines, FIELD(http_access), .min_args = 1,
      .flags = F_LIST, .def_doc = "deny all",
      .squid = "Same: first match wins; with no match, the opposite of the last rule applies.",
      .doc = "`http_access allow|deny [!]ACL...` decides who may use the proxy." },
    { .name = "cache", .alias = "no_cache", .set = parse_lines, FIELD(cache_rules), .min_args = 1,
      .flags = F_LIST,
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
      .squid = "Same, with Squid's error page codes in a URL. A page name gives proxyd's "
               "built-in page (with that name in X-Squid-Error): custom templates from "
               "error_directory, and so codes in pages, are not read.",
      .doc = "`deny_info ERR_PAGE|URL|3xx:URL|TCP_RESET ACL...`: what a client denied by ACL "
             "gets. In a URL, Squid's error page codes are replaced by the denied request's "
             "values, percent-encoded: `%u`/`%U` URL, `%H` host, `%p` port, `%P` protocol, "
             "`%M` method, `%R` request head, `%i` client address, `%I` origin address "
             "(`[unknown]`), `%h` visible_hostname, `%c`/`%x` error name, `%m` message, `%d` "
             "seconds since the request began, `%t`/`%T` local/UTC time, `%s` proxyd/VERSION, "
             "`%S` signature, `%a` user (`-`), `%e` errno (0), `%E` (`[No Error]`), `%w`/`%W` "
             "webmaster / mailto:webmaster, `%o`, `%z`, `%Z`, FTP codes empty, `%%` a percent "
             "sign; anything else stays as written." },
    { .name = "http_reply_access", .set = parse_lines, FIELD(http_reply_access),
      .min_args = 1, .flags = F_LIST, .def_doc = "allow all",
      .squid = "Same: first match wins, with the reply acls rep_header, rep_mime_type and "
               "http_status; a denied reply is 403 ERR_ACCESS_DENIED, logged TCP_DENIED_REPLY.",
      .doc = "`http_reply_access allow|deny [!]ACL...` decides, once the origin's reply head "
             "is in, whether the client gets it. Applies to cache hits too; a 304 or 416 "
             "always passes, as in Squid." },
    { .name = "miss_access", .set = parse_lines, FIELD(miss_access), .min_args = 1,
      .flags = F_LIST, .def_doc = "allow all",
      .squid = "Same; a denied miss is 403 ERR_FORWARDING_DENIED.",
      .doc = "`miss_access allow|deny [!]ACL...`: who may cause a fetch from the origin "
             "(hits are served whatever it says)." },
    { .name = "cache_peer", .set = parse_lines, FIELD(cache_peer), .min_args = 4,
      .flags = F_LIST, .def_doc = "none",
      .squid = "`parent` and `sibling` peers with no-query, default, round-robin, weight=, "
               "name=, connect-timeout=, connect-fail-limit=, login=user:pass (Basic), carp "
               "(Squid's hash: a mixed tier sends a URL to the same parent), sourcehash and "
               "userhash (Squid's hashes of the client address and of the user name), proxy-only, "
               "closest-only, allow-miss, max-conn= (per worker, as per Squid kid), "
               "weighted-round-robin (by the ICP round-trip time over weight=, as Squid; "
               "until one is measured, round-robin by weight=, where Squid ignores weight=), "
               "originserver (origin-form requests, login= as Authorization), and "
               "no-digest and no-netdb-exchange (proxyd uses neither). "
               "Peers with an ICP port are asked by ICP on a miss, as Squid asks them. "
               "`multicast` peers, htcp, carp-key= "
               "and the TLS options are errors.",
      .doc = "`cache_peer HOST parent|sibling HTTP_PORT ICP_PORT [OPTION...]`: a parent or "
             "sibling proxy. On a miss the peers with an ICP port (not no-query) are asked "
             "by ICP (a sibling only for a GET it may answer from its cache) and the answers "
             "awaited up to the ICP query timeout: a peer that answers ICP_HIT is tried "
             "first (SIBLING_HIT, PARENT_HIT; a sibling gets `Cache-Control: only-if-cached` "
             "and is never used for a miss), else the parent whose ICP_MISS came first "
             "(FIRST_PARENT_MISS). Then the parents as peer selection orders them (see "
             "never_direct); a request to a peer is in absolute form over a connection pooled "
             "per peer, a CONNECT is a CONNECT to the parent. A parent that refuses "
             "connect-fail-limit (10) connects in a row is dead and skipped until "
             "dead_peer_timeout has passed; then one request probes it. proxy-only: what "
             "comes from the peer is not stored. max-conn=N: a worker uses at most N "
             "connections to the peer at once; a peer at its cap is skipped. "
             "weighted-round-robin: among these parents the one whose picks so far add up "
             "to the least goes first (ROUNDROBIN_PARENT), a pick adding its ICP round-trip "
             "time (a running mean, at least 1 ms) divided by weight=; a parent not yet "
             "measured (no-query, no answer yet) counts 1 ms, so without ICP it is a "
             "round-robin by weight=. originserver: the peer is an origin server (an "
             "accelerator's backend): it is selected as a parent but sent the request in "
             "origin-form (`GET /path`) with the request's Host, and login= goes as "
             "Authorization (unless the client sent its own); a CONNECT to it tunnels "
             "straight to it." },
    { .name = "cache_peer_access", .set = parse_lines, FIELD(cache_peer_access), .min_args = 2,
      .flags = F_LIST, .def_doc = "allow all",
      .squid = "Same.",
      .doc = "`cache_peer_access NAME allow|deny [!]ACL...`: which requests may go to the "
             "peer NAME (first match wins; none: all)." },
    { .name = "never_direct", .set = parse_lines, FIELD(never_direct), .min_args = 1,
      .flags = F_LIST, .def_doc = "none",
      .squid = "Same: a request it allows never goes to the origin itself; with no parent "
               "left it is 503 ERR_CANNOT_FORWARD.",
      .doc = "`never_direct allow|deny [!]ACL...`: requests that must go through a parent." },
    { .name = "always_direct", .set = parse_lines, FIELD(always_direct), .min_args = 1,
      .flags = F_LIST, .def_doc = "none",
      .squid = "Same; it wins over never_direct.",
      .doc = "`always_direct allow|deny [!]ACL...`: requests that go to the origin itself, "
             "never to a parent." },
    { .name = "prefer_direct", .set = parse_onoff, FIELD(prefer_direct), .def = "off",
      .squid = "Same.",
      .doc = "Try the origin before the parents (when both are allowed)." },
    { .name = "nonhierarchical_direct", .set = parse_onoff, FIELD(nonhierarchical_direct),
      .def = "on",
      .squid = "Same: non-hierarchical requests are those other than GET and those with "
               "Authorization.",
      .doc = "Send non-hierarchical requests (see the Squid column) to the origin itself "
             "unless never_direct forbids it." },
    { .name = "forward_max_tries", .set = parse_int, FIELD(forward_max_tries), .def = "25",
      .min = 1, .max = 1000,
      .squid = "Same: how many places (parents, then the origin) one request is tried at.",
      .doc = "How many candidates (parents and the origin) a request tries before it fails." },
    { .name = "dead_peer_timeout", .set = parse_time_ms, FIELD(dead_peer_timeout), .def = "10 seconds",
      .unit = "seconds",
      .squid = "Same: when a dead parent is tried again, and how long an ICP peer may leave "
               "queries unanswered before its answers are no longer waited for.",
      .doc = "How long a parent found dead is skipped before one request tries it again; an "
             "ICP peer that has not answered for this long is still asked, but not waited for "
             "until it answers again." },
    { .name = "icp_port", .alias = "udp_port", .set = parse_int, FIELD(icp_port), .def = "0",
      .min = 0, .max = 65535,
      .squid = "Same (one port; udp_incoming_address chooses the address). Every worker "
               "answers on it (SO_REUSEPORT) from the one shared cache.",
      .doc = "UDP port where ICP queries (RFC 2186) from other caches are answered; 0: none. "
             "A query gets ICP_HIT when the shared cache holds the URL fresh, ICP_MISS "
             "otherwise, ICP_DENIED when icp_access refuses it, ICP_ERR for a malformed URL." },
    { .name = "udp_incoming_address", .set = parse_udp_address, FIELD(udp_incoming_address),
      .def_doc = "any address",
      .squid = "Same, for ICP (proxyd has no HTCP, and its DNS queries do not use it).",
      .doc = "The address icp_port binds to." },
    { .name = "icp_access", .set = parse_lines, FIELD(icp_access), .min_args = 1,
      .flags = F_LIST, .def_doc = "deny all",
      .squid = "Same: fast acls on the querying address (src) and the URL asked about; "
               "no line denies every query.",
      .doc = "`icp_access allow|deny [!]ACL...`: who may ask this cache by ICP." },
    { .name = "icp_query_timeout", .set = parse_int, FIELD(icp_query_timeout), .def = "0",
      .min = 0, .max = 3600000,
      .squid = "Same (milliseconds; 0: dynamic).",
      .doc = "How long a miss waits for the ICP answers of the peers it asked, in "
             "milliseconds. 0: twice the mean ICP round-trip time of the parents asked (of "
             "the siblings when no parent was), between minimum_icp_query_timeout and "
             "maximum_icp_query_timeout, as Squid computes it." },
    { .name = "maximum_icp_query_timeout", .set = parse_int, FIELD(maximum_icp_query_timeout),
      .def = "2000", .min = 0, .max = 3600000,
      .squid = "Same (milliseconds).",
      .doc = "Upper bound of the dynamic ICP query timeout (0: none)." },
    { .name = "minimum_icp_query_timeout", .set = parse_int, FIELD(minimum_icp_query_timeout),
      .def = "5", .min = 0, .max = 3600000,
      .squid = "Same (milliseconds).",
      .doc = "Lower bound of the dynamic ICP query timeout." },
    { .name = "log_icp_queries", .set = parse_onoff, FIELD(log_icp_queries), .def = "on",
      .squid = "Same: one access log line per ICP query answered (UDP_HIT, UDP_MISS, "
               "UDP_MISS_NOFETCH, UDP_DENIED, UDP_INVALID), method ICP_QUERY.",
      .doc = "Log the ICP queries answered in the access log." },
    { .name = "icp_hit_stale", .set = parse_onoff, FIELD(icp_hit_stale), .def = "off",
      .squid = "Same.",
      .doc = "Answer ICP_HIT for stale objects too (a sibling then gets a stale copy or a "
             "revalidation; give such siblings allow-miss). Off: ICP_HIT only for fresh ones." },
    { .name = "unique_hostname", .set = parse_string, FIELD(unique_hostname),
      .def_doc = "visible_hostname",
      .squid = "Same: the name in proxyd's own Via member, so that proxies sharing one "
               "visible_hostname still see a forwarding loop.",
      .doc = "The host name in the Via member proxyd adds and looks for (forwarding loops); "
             "visible_hostname stays on error pages." },
    { .name = "proxyd_cluster", .set = parse_lines, FIELD(proxyd_cluster), .min_args = 1,
      .flags = F_LIST | F_OURS, .def_doc = "none",
      .squid = "proxyd only (Squid builds a hierarchy from cache_peer lines; this is a CARP "
               "parent array whose members are found by DNS and are each other's parents).",
      .doc = "`proxyd_cluster NAME [PORT] [self=IP] [min-ttl=S] [max-ttl=S] "
             "[connect-timeout=S] [connect-fail-limit=N]`: this proxy is one member of a "
             "cluster that acts as one cache. NAME (a headless Kubernetes Service, a Docker "
             "network alias) resolves to every member's address (A and AAAA), and is resolved "
             "again when its TTL runs out, within min-ttl (1) and max-ttl (10 seconds). A GET "
             "or HEAD the cache may answer (no Authorization) goes to the member that owns its "
             "cache key by CARP, on PORT (default: this proxy's first http_port), and is "
             "stored there only; this proxy answers and stores what it owns itself. A member is "
             "this proxy when its address is a self= address, or is one of its listeners (a "
             "wildcard listener: an address of this host). A request forwarded by a member "
             "carries `Proxyd-Cluster: NAME` and is served where it arrives, never forwarded "
             "again. A member that refuses connect-fail-limit (1) connects in a row, each "
             "given connect-timeout (2 seconds), owns nothing for dead_peer_timeout; its keys "
             "go to the next member by CARP. One line at most." },
    { .name = "follow_x_forwarded_for", .set = parse_lines, FIELD(follow_x_forwarded_for),
      .min_args = 1, .flags = F_LIST, .def_doc = "deny all",
      .squid = "Same, with acl_uses_indirect_client and log_uses_indirect_client on as "
               "Squid's defaults (not configurable).",
      .doc = "`follow_x_forwarded_for allow|deny [!]ACL...`: when the client (then each "
             "address taken from X-Forwarded-For, right to left) is allowed here, the address "
             "before it in X-Forwarded-For is taken as the client: `src` acls and the access "
             "log see that address. X-Forwarded-For towards the origin still names the "
             "direct client." },
    { .name = "reply_body_max_size", .set = parse_lines, FIELD(reply_body_max_size),
      .min_args = 1, .flags = F_LIST, .def_doc = "none (no limit)",
      .squid = "Same syntax (`SIZE UNITS [!]ACL...`, first matching line).",
      .doc = "`reply_body_max_size SIZE [bytes|KB|MB|GB] [[!]ACL...]`: the first line whose "
             "acls match sets the limit. A reply whose Content-Length is larger is refused "
             "(403 ERR_TOO_BIG, TCP_DENIED_REPLY); a body that grows past it is cut and the "
             "connection closed (logged _ABORTED). `none` is no limit." },
    { .name = "tcp_outgoing_address", .set = parse_lines, FIELD(tcp_outgoing_address),
      .min_args = 1, .flags = F_LIST, .def_doc = "none (the kernel chooses)",
      .squid = "Same; lines of the other address family than the origin's are skipped.",
      .doc = "`tcp_outgoing_address ADDRESS [[!]ACL...]`: the first line whose acls match "
             "(and whose family is the origin's) gives the source address of connections "
             "to the origin. Pooled connections are kept apart by it." },
    { .name = "request_header_access", .set = parse_lines, FIELD(request_header_access),
      .min_args = 2, .flags = F_LIST, .def_doc = "none",
      .squid = "Same: `NAME allow|deny [!]ACL...`; NAME `All` covers every header without "
               "its own lines, `Other` the headers Squid does not know by name.",
      .doc = "`request_header_access NAME allow|deny [!]ACL...`: the lines for one header "
             "name form one list (first match decides; none matching: the opposite of the "
             "last); a denied header is not sent to the origin. Applies to requests to the "
             "origin only." },
    { .name = "reply_header_access", .set = parse_lines, FIELD(reply_header_access),
      .min_args = 2, .flags = F_LIST, .def_doc = "none",
      .squid = "Same as request_header_access.",
      .doc = "`reply_header_access NAME allow|deny [!]ACL...`: the same for response headers "
             "towards the client (misses and hits; the cache stores the origin's head)." },
    { .name = "request_header_replace", .alias = "header_replace", .set = parse_rest,
      FIELD(request_header_replace), .min_args = 1, .flags = F_LIST | F_REST,
      .def_doc = "none",
      .squid = "Same: replaces headers denied by request_header_access.",
      .doc = "`request_header_replace NAME TEXT`: a header that request_header_access "
             "denies is sent with TEXT as its value instead of removed." },
    { .name = "reply_header_replace", .set = parse_rest, FIELD(reply_header_replace),
      .min_args = 1, .flags = F_LIST | F_REST, .def_doc = "none",
      .squid = "Same.",
      .doc = "`reply_header_replace NAME TEXT`: the same for reply_header_access." },
    { .name = "request_header_add", .set = parse_lines, FIELD(request_header_add),
      .min_args = 2, .flags = F_LIST, .def_doc = "none",
      .squid = "Same; the value may use %>a %>p %la %lp %>rd %>rP %ru %rm %% (others are "
               "a configuration error).",
      .doc = "`request_header_add NAME \"VALUE\" [[!]ACL...]`: add a header to requests to "
             "the origin when the acls match (after request_header_access)." },
    { .name = "reply_header_add", .set = parse_lines, FIELD(reply_header_add),
      .min_args = 2, .flags = F_LIST, .def_doc = "none",
      .squid = "Same as request_header_add.",
      .doc = "`reply_header_add NAME \"VALUE\" [[!]ACL...]`: add a header to responses to the "
             "client when the acls match (misses and hits)." },
    { .name = "logformat", .set = parse_logformat, FIELD(logformat), .min_args = 2,
      .flags = F_LIST | F_REST, .def_doc = "squid, common, combined built in",
      .squid = "Same; the format is the rest of the line, as Squid. %ssl::>sni is always `-` "
               "(no TLS is decrypted) and %>ha is %>h (no adaptation). Proxy-Authorization is "
               "logged as its scheme only (`Basic *`): proxy credentials never reach a log.",
      .doc = "`logformat NAME FORMAT` names an access log format made of Squid's % codes: "
             "%ts %tu %tl %tg %tr %>a %>p %<a %<A %lp %Ss %Sh %>Hs %<Hs %<st %>st %<tt %rm %ru "
             "%rp %rv %un %ui %ul %mt %>h %>ha %<h %err_code %err_detail %ssl::>sni %%, and "
             "the helpers' kv-pairs: %ue (an external acl's user=), %et (tag=), %ea (log=), "
             "%note (every annotation as `name: value`, CRLF between, escaped) and "
             "%{NAME}note (that annotation's values, comma-separated); %un is the "
             "authenticated user, else an external acl's user=. With Squid's modifiers "
             "(\" [ - 0 WIDTH {arg})." },

    { .name = "external_acl_type", .set = parse_lines, FIELD(external_acl_type),
      .min_args = 2, .flags = F_LIST, .def_doc = "none",
      .squid = "Same syntax: options ttl, negative_ttl, children-max, children-startup, "
               "children-idle, concurrency, queue-size, cache, grace (accepted), protocol=3.0, "
               "quote=url, ipv4/ipv6; formats %LOGIN (%un, %ul), %SRC (%>a), %SRCPORT (%>p), "
               "%DST, %MYPORT (%>lp), %URI (%>ru), %PATH (%>rp), %METHOD (%>rm), %PORT, %PROTO, "
               "%>{Header} (%>ha{Header}, %{Header}) and %DATA. Other formats and options are "
               "errors. The reply's kv-pairs but message= and log= annotate the request for later "
               "note and tag acls (tag= is what a tag acl reads); auth helpers' kv-pairs and "
               "the note directive are not used yet.",
      .doc = "`external_acl_type NAME [options] FORMAT... /path/helper [args]` defines a "
             "helper that `acl NAME external TYPE [values]` asks: the request's values in "
             "FORMAT (URL-escaped, `-` when empty) and the acl's values (%DATA, or appended "
             "when the format has no %DATA) go to the helper as one line; `OK` matches, `ERR` "
             "does not. Answers are reused for ttl (OK, default 3600 s) and negative_ttl (ERR, "
             "default ttl) seconds in each worker. A helper that fails (BH, crash, all busy "
             "with the queue full) denies the request, whatever the line says." },

    /* URL rewriting */
    { .name = "url_rewrite_program", .alias = "redirect_program", .set = parse_rewrite_program,
      .flags = F_LIST, .def_doc = "none",
      .squid = "Same, with Squid's helper protocol: squidGuard, ufdbGuard and Squid's own "
               "rewriters run unchanged. The request line is `URL client_ip/- user method "
               "myip=IP myport=PORT` (Squid's default url_rewrite_extras). Old-style replies "
               "(a bare URL, `3xx:URL`, an empty line) are understood. A helper that fails "
               "(BH, crash, all busy with the queue full) refuses the request (503) unless "
               "url_rewrite_bypass is on; Squid passes the URL on unchanged after BH.",
      .doc = "`url_rewrite_program /path args` runs a URL rewriter for requests allowed by "
             "http_access and url_rewrite_access: `OK rewrite-url=URL` fetches URL instead "
             "(the client is not told), `OK url=URL [status=30x]` redirects the client "
             "(302 unless status says another 3xx), `OK` or `ERR` leave the request as it "
             "is. Answers are not cached." },
    { .name = "url_rewrite_children", .alias = "redirect_children",
      .set = parse_rewrite_children, .flags = F_LIST,
      .def_doc = "20 startup=0 idle=1 concurrency=0",
      .squid = "Same options: startup=, idle=, concurrency=, queue-size= (default twice N; 0 "
               "with url_rewrite_bypass on); an overload queues on for 3 minutes, then refuses "
               "(on-persistent-overload=ERR).",
      .doc = "`url_rewrite_children N [startup=N] [idle=N] [concurrency=N] [queue-size=N]`: "
             "the rewriter's pool, per worker." },
    { .name = "url_rewrite_access", .alias = "redirector_access", .set = parse_lines,
      FIELD(url_rewrite_access), .min_args = 1, .flags = F_LIST, .def_doc = "allow all",
      .squid = "Same; as a fast check in Squid, dst acls, and external acls without a cached "
               "answer, do not match here.",
      .doc = "`url_rewrite_access allow|deny [!]ACL...`: which requests go to the rewriter "
             "(first match wins; with no line, all)." },
    { .name = "url_rewrite_cache_ttl", .set = parse_time_s, FIELD(url_rewrite_cache_ttl),
      .unit = "seconds",
      .def = "0",
      .squid = "proxyd's own: Squid asks the rewriter for every request.",
      .doc = "Reuse a rewriter's answer (OK with or without a new URL or a redirect, ERR, an "
             "old-style line) for this long when the very same line would be sent again: "
             "same URL, client address, user, method and listening address and port. 0 (the "
             "default) asks the rewriter every time, as Squid does. Failures (BH, a crash, a "
             "timeout) are never reused. Only for rewriters whose answer depends on that line "
             "alone: a squidGuard with `time` rules may keep answering as before a time "
             "boundary for up to this long. Per worker, emptied by a reconfiguration (the "
             "workers are replaced). Reuses are counted in "
             "proxyd_helper_cached_answers_total." },
    { .name = "url_rewrite_cache_size", .set = parse_int, FIELD(url_rewrite_cache_size),
      .def = "65536", .min = 1, .max = 16777216,
      .squid = "proxyd's own.",
      .doc = "Entries of the url_rewrite_cache_ttl table, per worker (a newer line takes the "
             "place of an older one with the same hash slot); about 100 bytes plus the line's "
             "length each, used as lines arrive." },
    { .name = "url_rewrite_timeout", .set = parse_rewrite_timeout, FIELD(url_rewrite_timeout),
      .unit = "seconds", .def_doc = "none",
      .squid = "Same, with the same actions; Squid's default action is bypass, and so is "
               "proxyd's. retry asks again at most twice, then fails.",
      .doc = "`url_rewrite_timeout TIME [on_timeout=bypass|fail|retry|use_configured_response] "
             "[response=\"REPLY\"]`: a rewriter's answer that takes longer than TIME is given "
             "up (the late answer is dropped) and the request is bypassed (goes on unchanged), "
             "failed (500 ERR_GATEWAY_FAILURE), asked again (twice at most, then failed), or "
             "answered with REPLY as if the helper had sent it (e.g. `response=\"OK "
             "url=http://portal/slow\"`). Timeouts are counted in "
             "proxyd_helper_timeouts_total." },
    { .name = "url_rewrite_bypass", .alias = "redirector_bypass", .set = parse_onoff,
      FIELD(url_rewrite_bypass), .def = "off",
      .squid = "Same.",
      .doc = "on: a request the rewriter cannot take (all busy with the queue full, no "
             "child running) goes on unchanged; off: it is refused (503)." },

    /* Store ID */
    { .name = "store_id_program", .alias = "storeurl_rewrite_program",
      .set = parse_store_id_program, .flags = F_LIST, .def_doc = "none",
      .squid = "Same, with Squid's helper protocol: storeid_file_rewrite and other Store-ID "
               "helpers run unchanged. The request line is `URL client_ip/- user method "
               "myip=IP myport=PORT` (Squid's default store_id_extras). proxyd asks only for "
               "requests the cache may answer (GET and HEAD the cache rules allow), not for "
               "every request. The refresh_pattern rules still match the URL; a PURGE and the "
               "invalidation after an unsafe method act on the URL's key, not the Store ID.",
      .doc = "`store_id_program /path args` runs a Store-ID helper for requests the cache "
             "may answer and store_id_access allows: `OK store-id=KEY` makes KEY the cache "
             "key (so that mirror URLs of one file share one cached object), `ERR` keeps the "
             "URL as the key. A helper that fails (BH, crash, timeout) leaves the URL as the "
             "key: the cache is then less shared, never wrong." },
    { .name = "store_id_children", .alias = "storeurl_rewrite_children",
      .set = parse_store_id_children, .flags = F_LIST,
      .def_doc = "20 startup=0 idle=1 concurrency=0",
      .squid = "Same options: startup=, idle=, concurrency=, queue-size= (default twice N; 0 "
               "with store_id_bypass on, the default).",
      .doc = "`store_id_children N [startup=N] [idle=N] [concurrency=N] [queue-size=N]`: "
             "the Store-ID helper's pool, per worker." },
    { .name = "store_id_access", .alias = "storeurl_rewrite_access", .set = parse_lines,
      FIELD(store_id_access), .min_args = 1, .flags = F_LIST, .def_doc = "allow all",
      .squid = "Same; as a fast check in Squid, dst acls, and external acls without a cached "
               "answer, do not match here.",
      .doc = "`store_id_access allow|deny [!]ACL...`: which requests go to the Store-ID "
             "helper (first match wins; with no line, all)." },
    { .name = "store_id_bypass", .alias = "storeurl_rewrite_bypass", .set = parse_onoff,
      FIELD(store_id_bypass), .def = "on",
      .squid = "Same.",
      .doc = "on: a request the Store-ID helper cannot take (all busy with the queue full) "
             "keeps its URL as the key; off: it is refused (503)." },

    /* Authentication */
    { .name = "auth_param", .set = parse_auth_param, .flags = F_LIST, .def_doc = "none",
      .squid = "The basic scheme with its parameters program, children (startup=, idle=, "
               "concurrency=, queue-size=), realm, credentialsttl, casesensitive and utf8 off; "
               "the helper protocol is Squid's, so Squid's helpers (basic_ncsa_auth, "
               "basic_ldap_auth, basic_pam_auth...) run unchanged. digest, negotiate, ntlm "
               "and utf8 on are errors. Each worker runs its own helpers, as Squid's SMP "
               "workers do.",
      .doc = "`auth_param basic PARAMETER VALUE...` sets up HTTP Basic proxy authentication, "
             "checked by a helper program (`program /path args`, `children N [startup=N] "
             "[idle=N] [concurrency=N] [queue-size=N]`, default 20 startup=0 idle=1 "
             "concurrency=0 queue-size=2*N); `realm TEXT` (shown by browsers); "
             "`credentialsttl TIME` (2 hours: a user/password pair the helper accepted is not "
             "asked again for this long); `casesensitive on|off` (off: user names are "
             "lower-cased). A `proxy_auth` or `proxy_auth_regex` acl reached in http_access "
             "asks for credentials: no or wrong ones get 407 with "
             "`Proxy-Authenticate: Basic realm=\"...\"`. A helper that fails (BH, crash, all "
             "busy with the queue full) refuses the request. The user is logged (%un, %ul) "
             "and Proxy-Authorization is never forwarded." },

    /* Logging */
    { .name = "access_log", .alias = "cache_access_log", .set = parse_access_log,
      FIELD(access_log), .def = "stdout squid",
      .squid = "Squid's default is daemon:/var/log/squid/access.log squid. Forms "
               "`none`, `PATH`, `stdio:PATH` and `daemon:PATH` (written by proxyd itself) with a "
               "format name or `logformat=NAME`. The syslog/udp/tcp modules, acl conditions and "
               "a second access_log line are errors: proxyd writes one log, of every request. "
               "A file that cannot be opened is an error at -t and at start.",
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
      .def = "16384", .min = 1, .max = 1 << 24, .flags = F_OURS,
      .squid = "proxyd only.",
      .doc = "Open client connections per worker; more are refused until some close." },
    { .name = "server_pconn_max_idle", .set = parse_int, FIELD(server_pconn_max_idle),
      .def = "256", .min = 0, .max = 1 << 20, .flags = F_OURS,
      .squid = "proxyd only.",
      .doc = "Idle origin connections kept per worker." },
    { .name = "server_pconn_max_per_host", .set = parse_int, FIELD(server_pconn_max_per_host),
      .def = "32", .min = 0, .max = 1 << 20, .flags = F_OURS,
      .squid = "proxyd only.",
      .doc = "Idle origin connections kept per worker for one host:port." },
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/*
 * Squid directives (and their aliases) that proxyd does not implement, each
 * in the class of what its absence does. From Squid's src/cf.data.pre (Squid
 * 5.9, plus the few names added since). This one table decides the message
 * and feeds both generated documents (configuration.md, the migration guide).
 *
 * SQ_TUNING: tuning and cosmetics; the line is a warning and skipped.
 * Every other class is an error: without it proxyd would let through, expose
 * or change traffic the operator meant to stop or shape. A row may name a
 * harmless value (`icap_enable off`) that is a warning instead, and its own
 * sentence on what to do (otherwise the class's).
 *
 * X(name, class, harmless value or NULL, what to do or NULL); sorted for
 * bsearch (C locale).
 */
/* The rows' own sentences (where the class's is not enough). */
#define T_GROUP \
    "proxyd does not change group; start it with the unprivileged group (systemd Group=) " \
    "and remove the line"
#define T_USER \
    "proxyd does not change user; start it as the unprivileged user (systemd User=, " \
    "docker USER) and remove the line"
#define T_MGR_PASSWD \
    "proxyd's manager pages are guarded by the manager acl in http_access, not by " \
    "passwords; remove the line once http_access limits manager to trusted clients"
#define T_CHROOT \
    "proxyd does not chroot; confine it with systemd (RootDirectory=, ProtectSystem=) or " \
    "a container and remove the line"
#define T_MAXCONN \
    "limit clients with `acl NAME maxconn N` and `http_access deny NAME`"
#define T_NETMASK \
    "proxyd logs full client addresses; remove the line only if the logs may hold them"
#define T_HOST_VERIFY \
    "proxyd verifies Host on intercepted requests as Squid's default does (the request goes " \
    "to the original destination and is not cached when Host does not match) but never " \
    "answers 409 Conflict; write `host_verify_strict off` or keep Squid"
#define T_VERSION \
    "proxyd names its version in Via and error pages; write " \
    "`httpd_suppress_version_string off`, or keep Squid if it must stay hidden"
#define T_INDIRECT \
    "proxyd's acls always see the address follow_x_forwarded_for believed (Squid's " \
    "default, `on`); without follow_x_forwarded_for lines that is the direct client"
#define T_SEND_HIT \
    "use `cache deny ACL` so that those requests are never served from the cache"
#define T_STORE_MISS \
    "use `cache deny ACL` to keep those responses out of the cache"
#define T_STRIP_QUERY \
    "proxyd logs URLs with their query terms; write `strip_query_terms off`, or keep " \
    "Squid if the logs must not hold them"

#define SQUID_UNIMPLEMENTED(X) \
    X("accept_filter", SQ_TUNING, NULL, NULL) \
    X("acl_uses_indirect_client", SQ_ACCESS, "on", T_INDIRECT) \
    X("adaptation_access", SQ_ADAPT, NULL, NULL) \
    X("adaptation_masterx_shared_names", SQ_ADAPT, NULL, NULL) \
    X("adaptation_meta", SQ_ADAPT, NULL, NULL) \
    X("adaptation_send_client_ip", SQ_ADAPT, NULL, NULL) \
    X("adaptation_send_username", SQ_ADAPT, NULL, NULL) \
    X("adaptation_service_chain", SQ_ADAPT, NULL, NULL) \
    X("adaptation_service_iteration_limit", SQ_ADAPT, NULL, NULL) \
    X("adaptation_service_set", SQ_ADAPT, NULL, NULL) \
    X("adaptation_uses_indirect_client", SQ_ADAPT, NULL, NULL) \
    X("adapted_http_access", SQ_ACCESS, NULL, NULL) \
    X("allow_underscore", SQ_TUNING, NULL, NULL) \
    X("announce_file", SQ_TUNING, NULL, NULL) \
    X("announce_host", SQ_TUNING, NULL, NULL) \
    X("announce_period", SQ_TUNING, NULL, NULL) \
    X("announce_port", SQ_TUNING, NULL, NULL) \
    X("append_domain", SQ_TUNING, NULL, NULL) \
    X("as_whois_server", SQ_TUNING, NULL, NULL) \
    X("auth_schemes", SQ_AUTH, NULL, NULL) \
    X("authenticate_cache_garbage_interval", SQ_TUNING, NULL, NULL) \
    X("authenticate_ip_ttl", SQ_TUNING, NULL, NULL) \
    X("authenticate_ttl", SQ_TUNING, NULL, NULL) \
    X("background_ping_rate", SQ_TUNING, NULL, NULL) \
    X("balance_on_multiple_ip", SQ_TUNING, NULL, NULL) \
    X("broken_posts", SQ_TUNING, NULL, NULL) \
    X("broken_vary_encoding", SQ_TUNING, NULL, NULL) \
    X("buffered_logs", SQ_TUNING, NULL, NULL) \
    X("cache_dir", SQ_TUNING, NULL, NULL) \
    X("cache_effective_group", SQ_PRIVACY, NULL, T_GROUP) \
    X("cache_effective_user", SQ_PRIVACY, NULL, T_USER) \
    X("cache_host_domain", SQ_PEER, NULL, NULL) \
    X("cache_log_message", SQ_TUNING, NULL, NULL) \
    X("cache_mgr", SQ_TUNING, NULL, NULL) \
    X("cache_miss_revalidate", SQ_TUNING, NULL, NULL) \
    X("cache_peer_domain", SQ_PEER, NULL, NULL) \
    X("cache_replacement_policy", SQ_TUNING, NULL, NULL) \
    X("cache_store_log", SQ_TUNING, NULL, NULL) \
    X("cache_swap_high", SQ_TUNING, NULL, NULL) \
    X("cache_swap_log", SQ_TUNING, NULL, NULL) \
    X("cache_swap_low", SQ_TUNING, NULL, NULL) \
    X("cache_swap_state", SQ_TUNING, NULL, NULL) \
    X("cache_vary", SQ_TUNING, NULL, NULL) \
    X("cachemgr_passwd", SQ_ACCESS, NULL, T_MGR_PASSWD) \
    X("check_hostnames", SQ_TUNING, NULL, NULL) \
    X("chroot", SQ_PRIVACY, NULL, T_CHROOT) \
    X("chunked_request_body_max_size", SQ_TUNING, NULL, NULL) \
    X("client_db", SQ_TUNING, NULL, NULL) \
    X("client_delay_access", SQ_POOLS, NULL, NULL) \
    X("client_delay_initial_bucket_level", SQ_POOLS, NULL, NULL) \
    X("client_delay_parameters", SQ_POOLS, NULL, NULL) \
    X("client_delay_pools", SQ_POOLS, "0", NULL) \
    X("client_dst_passthru", SQ_TUNING, NULL, NULL) \
    X("client_ip_max_connections", SQ_ACCESS, NULL, T_MAXCONN) \
    X("client_netmask", SQ_PRIVACY, "255.255.255.255", T_NETMASK) \
    X("client_request_buffer_max_size", SQ_TUNING, NULL, NULL) \
    X("clientside_mark", SQ_OUTGOING, NULL, NULL) \
    X("clientside_tos", SQ_OUTGOING, NULL, NULL) \
    X("collapsed_forwarding_access", SQ_TUNING, NULL, NULL) \
    X("collapsed_forwarding_shared_entries_limit", SQ_TUNING, NULL, NULL) \
    X("configuration_includes_quoted_values", SQ_TUNING, NULL, NULL) \
    X("connect_retries", SQ_TUNING, NULL, NULL) \
    X("coredump_dir", SQ_TUNING, NULL, NULL) \
    X("cpu_affinity_map", SQ_TUNING, NULL, NULL) \
    X("debug_options", SQ_TUNING, NULL, NULL) \
    X("delay_access", SQ_POOLS, NULL, NULL) \
    X("delay_class", SQ_POOLS, NULL, NULL) \
    X("delay_initial_bucket_level", SQ_POOLS, NULL, NULL) \
    X("delay_parameters", SQ_POOLS, NULL, NULL) \
    X("delay_pool_uses_indirect_client", SQ_TUNING, NULL, NULL) \
    X("delay_pools", SQ_POOLS, "0", NULL) \
    X("detect_broken_pconn", SQ_TUNING, NULL, NULL) \
    X("digest_bits_per_entry", SQ_TUNING, NULL, NULL) \
    X("digest_generation", SQ_TUNING, NULL, NULL) \
    X("digest_rebuild_chunk_percentage", SQ_TUNING, NULL, NULL) \
    X("digest_rebuild_period", SQ_TUNING, NULL, NULL) \
    X("digest_rewrite_period", SQ_TUNING, NULL, NULL) \
    X("digest_swapout_chunk_size", SQ_TUNING, NULL, NULL) \
    X("diskd_program", SQ_TUNING, NULL, NULL) \
    X("dns_defnames", SQ_TUNING, NULL, NULL) \
    X("dns_multicast_local", SQ_TUNING, NULL, NULL) \
    X("dns_packet_max", SQ_TUNING, NULL, NULL) \
    X("dns_retransmit_interval", SQ_TUNING, NULL, NULL) \
    X("dns_testnames", SQ_TUNING, NULL, NULL) \
    X("dns_v4_fallback", SQ_TUNING, NULL, NULL) \
    X("dns_v4_first", SQ_TUNING, NULL, NULL) \
    X("ecap_enable", SQ_ADAPT, "off", NULL) \
    X("ecap_service", SQ_ADAPT, NULL, NULL) \
    X("email_err_data", SQ_TUNING, NULL, NULL) \
    X("emulate_httpd_log", SQ_TUNING, NULL, NULL) \
    X("err_html_text", SQ_TUNING, NULL, NULL) \
    X("err_page_stylesheet", SQ_TUNING, NULL, NULL) \
    X("error_default_language", SQ_TUNING, NULL, NULL) \
    X("error_directory", SQ_TUNING, NULL, NULL) \
    X("error_log_languages", SQ_TUNING, NULL, NULL) \
    X("error_map", SQ_TUNING, NULL, NULL) \
    X("esi_parser", SQ_TUNING, NULL, NULL) \
    X("eui_lookup", SQ_TUNING, NULL, NULL) \
    X("extension_methods", SQ_TUNING, NULL, NULL) \
    X("external_refresh_check", SQ_TUNING, NULL, NULL) \
    X("force_request_body_continuation", SQ_TUNING, NULL, NULL) \
    X("forward_log", SQ_TUNING, NULL, NULL) \
    X("fqdncache_size", SQ_TUNING, NULL, NULL) \
    X("ftp_client_idle_timeout", SQ_TUNING, NULL, NULL) \
    X("ftp_eprt", SQ_TUNING, NULL, NULL) \
    X("ftp_epsv", SQ_TUNING, NULL, NULL) \
    X("ftp_epsv_all", SQ_TUNING, NULL, NULL) \
    X("ftp_list_width", SQ_TUNING, NULL, NULL) \
    X("ftp_passive", SQ_TUNING, NULL, NULL) \
    X("ftp_port", SQ_PORT, NULL, NULL) \
    X("ftp_sanitycheck", SQ_TUNING, NULL, NULL) \
    X("ftp_telnet_protocol", SQ_TUNING, NULL, NULL) \
    X("ftp_user", SQ_TUNING, NULL, NULL) \
    X("global_internal_static", SQ_TUNING, NULL, NULL) \
    X("half_closed_clients", SQ_TUNING, NULL, NULL) \
    X("happy_eyeballs_connect_gap", SQ_TUNING, NULL, NULL) \
    X("happy_eyeballs_connect_limit", SQ_TUNING, NULL, NULL) \
    X("happy_eyeballs_connect_timeout", SQ_TUNING, NULL, NULL) \
    X("header_access", SQ_HEADERS, NULL, NULL) \
    X("hierarchy_stoplist", SQ_TUNING, NULL, NULL) \
    X("high_memory_warning", SQ_TUNING, NULL, NULL) \
    X("high_page_fault_warning", SQ_TUNING, NULL, NULL) \
    X("high_response_time_warning", SQ_TUNING, NULL, NULL) \
    X("hopeless_kid_revival_delay", SQ_TUNING, NULL, NULL) \
    X("host_verify_strict", SQ_ACCESS, "off", T_HOST_VERIFY) \
    X("hostname_aliases", SQ_TUNING, NULL, NULL) \
    X("htcp_access", SQ_TUNING, NULL, NULL) \
    X("htcp_clr_access", SQ_TUNING, NULL, NULL) \
    X("htcp_port", SQ_TUNING, NULL, NULL) \
    X("http_accel_surrogate_remote", SQ_TUNING, NULL, NULL) \
    X("http_access2", SQ_ACCESS, NULL, NULL) \
    X("http_upgrade_request_protocols", SQ_TUNING, NULL, NULL) \
    X("httpd_accel_no_pmtu_disc", SQ_TUNING, NULL, NULL) \
    X("httpd_accel_surrogate_id", SQ_TUNING, NULL, NULL) \
    X("httpd_suppress_version_string", SQ_PRIVACY, "off", T_VERSION) \
    X("https_port", SQ_PORT, NULL, NULL) \
    X("icap_206_enable", SQ_ADAPT, NULL, NULL) \
    X("icap_access", SQ_ADAPT, NULL, NULL) \
    X("icap_class", SQ_ADAPT, NULL, NULL) \
    X("icap_client_username_encode", SQ_ADAPT, NULL, NULL) \
    X("icap_client_username_header", SQ_ADAPT, NULL, NULL) \
    X("icap_connect_timeout", SQ_ADAPT, NULL, NULL) \
    X("icap_default_options_ttl", SQ_ADAPT, NULL, NULL) \
    X("icap_enable", SQ_ADAPT, "off", NULL) \
    X("icap_io_timeout", SQ_ADAPT, NULL, NULL) \
    X("icap_log", SQ_TUNING, NULL, NULL) \
    X("icap_persistent_connections", SQ_ADAPT, NULL, NULL) \
    X("icap_preview_enable", SQ_ADAPT, NULL, NULL) \
    X("icap_preview_size", SQ_ADAPT, NULL, NULL) \
    X("icap_retry", SQ_ADAPT, NULL, NULL) \
    X("icap_retry_limit", SQ_ADAPT, NULL, NULL) \
    X("icap_send_client_ip", SQ_ADAPT, NULL, NULL) \
    X("icap_send_client_username", SQ_ADAPT, NULL, NULL) \
    X("icap_service", SQ_ADAPT, NULL, NULL) \
    X("icap_service_failure_limit", SQ_ADAPT, NULL, NULL) \
    X("icap_service_revival_delay", SQ_ADAPT, NULL, NULL) \
    X("icap_uses_indirect_client", SQ_ADAPT, NULL, NULL) \
    X("icon_directory", SQ_TUNING, NULL, NULL) \
    X("ident_lookup_access", SQ_TUNING, NULL, NULL) \
    X("ident_timeout", SQ_TUNING, NULL, NULL) \
    X("ie_refresh", SQ_TUNING, NULL, NULL) \
    X("ignore_expect_100", SQ_TUNING, NULL, NULL) \
    X("ignore_ims_on_miss", SQ_TUNING, NULL, NULL) \
    X("ignore_unknown_nameservers", SQ_TUNING, NULL, NULL) \
    X("incoming_dns_average", SQ_TUNING, NULL, NULL) \
    X("incoming_http_average", SQ_TUNING, NULL, NULL) \
    X("incoming_icp_average", SQ_TUNING, NULL, NULL) \
    X("incoming_rate", SQ_TUNING, NULL, NULL) \
    X("incoming_tcp_average", SQ_TUNING, NULL, NULL) \
    X("incoming_udp_average", SQ_TUNING, NULL, NULL) \
    X("ipcache_high", SQ_TUNING, NULL, NULL) \
    X("ipcache_low", SQ_TUNING, NULL, NULL) \
    X("ipcache_size", SQ_TUNING, NULL, NULL) \
    X("loadable_modules", SQ_ADAPT, NULL, NULL) \
    X("location_rewrite_access", SQ_REWRITE, NULL, NULL) \
    X("location_rewrite_children", SQ_REWRITE, NULL, NULL) \
    X("location_rewrite_concurrency", SQ_REWRITE, NULL, NULL) \
    X("location_rewrite_program", SQ_REWRITE, NULL, NULL) \
    X("log_access", SQ_TUNING, NULL, NULL) \
    X("log_fqdn", SQ_TUNING, NULL, NULL) \
    X("log_icap", SQ_TUNING, NULL, NULL) \
    X("log_ip_on_direct", SQ_TUNING, NULL, NULL) \
    X("log_mime_hdrs", SQ_TUNING, NULL, NULL) \
    X("log_uses_indirect_client", SQ_TUNING, NULL, NULL) \
    X("logfile_daemon", SQ_TUNING, NULL, NULL) \
    X("logfile_rotate", SQ_TUNING, NULL, NULL) \
    X("mail_from", SQ_TUNING, NULL, NULL) \
    X("mail_program", SQ_TUNING, NULL, NULL) \
    X("mark_client_connection", SQ_OUTGOING, NULL, NULL) \
    X("mark_client_packet", SQ_OUTGOING, NULL, NULL) \
    X("max_filedesc", SQ_TUNING, NULL, NULL) \
    X("max_filedescriptors", SQ_TUNING, NULL, NULL) \
    X("max_open_disk_fds", SQ_TUNING, NULL, NULL) \
    X("maximum_single_addr_tries", SQ_TUNING, NULL, NULL) \
    X("mcast_groups", SQ_TUNING, NULL, NULL) \
    X("mcast_icp_query_timeout", SQ_TUNING, NULL, NULL) \
    X("mcast_miss_addr", SQ_TUNING, NULL, NULL) \
    X("mcast_miss_encode_key", SQ_TUNING, NULL, NULL) \
    X("mcast_miss_port", SQ_TUNING, NULL, NULL) \
    X("mcast_miss_ttl", SQ_TUNING, NULL, NULL) \
    X("memory_cache_mode", SQ_TUNING, NULL, NULL) \
    X("memory_cache_shared", SQ_TUNING, NULL, NULL) \
    X("memory_pools", SQ_TUNING, NULL, NULL) \
    X("memory_pools_limit", SQ_TUNING, NULL, NULL) \
    X("mime_table", SQ_TUNING, NULL, NULL) \
    X("min_dns_poll_cnt", SQ_TUNING, NULL, NULL) \
    X("min_http_poll_cnt", SQ_TUNING, NULL, NULL) \
    X("min_icp_poll_cnt", SQ_TUNING, NULL, NULL) \
    X("min_tcp_poll_cnt", SQ_TUNING, NULL, NULL) \
    X("min_udp_poll_cnt", SQ_TUNING, NULL, NULL) \
    X("minimum_direct_hops", SQ_TUNING, NULL, NULL) \
    X("minimum_direct_rtt", SQ_TUNING, NULL, NULL) \
    X("minimum_expiry_time", SQ_TUNING, NULL, NULL) \
    X("minimum_object_size", SQ_TUNING, NULL, NULL) \
    X("negative_ttl", SQ_TUNING, NULL, NULL) \
    X("neighbor_type_domain", SQ_PEER, NULL, NULL) \
    X("netdb_filename", SQ_TUNING, NULL, NULL) \
    X("netdb_high", SQ_TUNING, NULL, NULL) \
    X("netdb_low", SQ_TUNING, NULL, NULL) \
    X("netdb_ping_period", SQ_TUNING, NULL, NULL) \
    X("note", SQ_TUNING, NULL, NULL) \
    X("offline_mode", SQ_TUNING, NULL, NULL) \
    X("on_unsupported_protocol", SQ_TUNING, NULL, NULL) \
    X("paranoid_hit_validation", SQ_TUNING, NULL, NULL) \
    X("pconn_lifetime", SQ_TUNING, NULL, NULL) \
    X("peer_connect_timeout", SQ_TUNING, NULL, NULL) \
    X("persistent_connection_after_error", SQ_TUNING, NULL, NULL) \
    X("pinger_enable", SQ_TUNING, NULL, NULL) \
    X("pinger_program", SQ_TUNING, NULL, NULL) \
    X("pipeline_prefetch", SQ_TUNING, NULL, NULL) \
    X("proxy_protocol_access", SQ_TUNING, NULL, NULL) \
    X("qos_flows", SQ_OUTGOING, NULL, NULL) \
    X("query_icmp", SQ_TUNING, NULL, NULL) \
    X("quick_abort_max", SQ_TUNING, NULL, NULL) \
    X("quick_abort_min", SQ_TUNING, NULL, NULL) \
    X("quick_abort_pct", SQ_TUNING, NULL, NULL) \
    X("range_offset_limit", SQ_TUNING, NULL, NULL) \
    X("read_ahead_gap", SQ_TUNING, NULL, NULL) \
    X("redirect_rewrites_host_header", SQ_REWRITE, "on", NULL) \
    X("referer_log", SQ_TUNING, NULL, NULL) \
    X("referrer_log", SQ_TUNING, NULL, NULL) \
    X("refresh_all_ims", SQ_TUNING, NULL, NULL) \
    X("refresh_stale_hit", SQ_TUNING, NULL, NULL) \
    X("relaxed_header_parser", SQ_TUNING, NULL, NULL) \
    X("reload_into_ims", SQ_TUNING, NULL, NULL) \
    X("request_entities", SQ_TUNING, NULL, NULL) \
    X("request_start_timeout", SQ_TUNING, NULL, NULL) \
    X("response_delay_pool", SQ_POOLS, NULL, NULL) \
    X("response_delay_pool_access", SQ_POOLS, NULL, NULL) \
    X("retry_on_error", SQ_TUNING, NULL, NULL) \
    X("send_hit", SQ_CACHE, NULL, T_SEND_HIT) \
    X("server_http11", SQ_TUNING, NULL, NULL) \
    X("server_pconn_for_nonretriable", SQ_TUNING, NULL, NULL) \
    X("shared_memory_locking", SQ_TUNING, NULL, NULL) \
    X("shared_transient_entries_limit", SQ_TUNING, NULL, NULL) \
    X("short_icon_urls", SQ_TUNING, NULL, NULL) \
    X("sleep_after_fork", SQ_TUNING, NULL, NULL) \
    X("snmp_access", SQ_TUNING, NULL, NULL) \
    X("snmp_incoming_address", SQ_TUNING, NULL, NULL) \
    X("snmp_outgoing_address", SQ_TUNING, NULL, NULL) \
    X("snmp_port", SQ_TUNING, NULL, NULL) \
    X("spoof_client_ip", SQ_OUTGOING, NULL, NULL) \
    X("ssl_bump", SQ_TLS, NULL, NULL) \
    X("ssl_engine", SQ_TLS, NULL, NULL) \
    X("ssl_unclean_shutdown", SQ_TLS, NULL, NULL) \
    X("sslcrtd_children", SQ_TLS, NULL, NULL) \
    X("sslcrtd_program", SQ_TLS, NULL, NULL) \
    X("sslcrtvalidator_children", SQ_TLS, NULL, NULL) \
    X("sslcrtvalidator_program", SQ_TLS, NULL, NULL) \
    X("sslpassword_program", SQ_TLS, NULL, NULL) \
    X("sslproxy_cafile", SQ_TLS, NULL, NULL) \
    X("sslproxy_capath", SQ_TLS, NULL, NULL) \
    X("sslproxy_cert_adapt", SQ_TLS, NULL, NULL) \
    X("sslproxy_cert_error", SQ_TLS, NULL, NULL) \
    X("sslproxy_cert_sign", SQ_TLS, NULL, NULL) \
    X("sslproxy_cert_sign_hash", SQ_TLS, NULL, NULL) \
    X("sslproxy_cipher", SQ_TLS, NULL, NULL) \
    X("sslproxy_client_certificate", SQ_TLS, NULL, NULL) \
    X("sslproxy_client_key", SQ_TLS, NULL, NULL) \
    X("sslproxy_flags", SQ_TLS, NULL, NULL) \
    X("sslproxy_foreign_intermediate_certs", SQ_TLS, NULL, NULL) \
    X("sslproxy_options", SQ_TLS, NULL, NULL) \
    X("sslproxy_session_cache_size", SQ_TLS, NULL, NULL) \
    X("sslproxy_session_ttl", SQ_TLS, NULL, NULL) \
    X("sslproxy_version", SQ_TLS, NULL, NULL) \
    X("stats_collection", SQ_TUNING, NULL, NULL) \
    X("store_avg_object_size", SQ_TUNING, NULL, NULL) \
    X("store_dir_select_algorithm", SQ_TUNING, NULL, NULL) \
    X("store_id_extras", SQ_REWRITE, NULL, NULL) \
    X("store_miss", SQ_CACHE, NULL, T_STORE_MISS) \
    X("store_objects_per_bucket", SQ_TUNING, NULL, NULL) \
    X("strip_query_terms", SQ_PRIVACY, "off", T_STRIP_QUERY) \
    X("tcp_outgoing_ds", SQ_OUTGOING, NULL, NULL) \
    X("tcp_outgoing_dscp", SQ_OUTGOING, NULL, NULL) \
    X("tcp_outgoing_mark", SQ_OUTGOING, NULL, NULL) \
    X("tcp_outgoing_tos", SQ_OUTGOING, NULL, NULL) \
    X("tcp_recv_bufsize", SQ_TUNING, NULL, NULL) \
    X("test_reachability", SQ_TUNING, NULL, NULL) \
    X("tls_key_log", SQ_TUNING, NULL, NULL) \
    X("tls_outgoing_options", SQ_TLS, NULL, NULL) \
    X("tproxy_uses_indirect_client", SQ_TUNING, NULL, NULL) \
    X("udp_outgoing_address", SQ_TUNING, NULL, NULL) \
    X("umask", SQ_TUNING, NULL, NULL) \
    X("unlinkd_program", SQ_TUNING, NULL, NULL) \
    X("update_headers", SQ_TUNING, NULL, NULL) \
    X("upgrade_http0.9", SQ_TUNING, NULL, NULL) \
    X("uri_whitespace", SQ_TUNING, NULL, NULL) \
    X("url_rewrite_concurrency", SQ_REWRITE, NULL, NULL) \
    X("url_rewrite_extras", SQ_REWRITE, NULL, NULL) \
    X("url_rewrite_host_header", SQ_REWRITE, "on", NULL) \
    X("useragent_log", SQ_TUNING, NULL, NULL) \
    X("vary_ignore_expire", SQ_TUNING, NULL, NULL) \
    X("wais_relay_host", SQ_TUNING, NULL, NULL) \
    X("wais_relay_port", SQ_TUNING, NULL, NULL) \
    X("wccp2_address", SQ_WCCP, NULL, NULL) \
    X("wccp2_assignment_method", SQ_WCCP, NULL, NULL) \
    X("wccp2_forwarding_method", SQ_WCCP, NULL, NULL) \
    X("wccp2_rebuild_wait", SQ_WCCP, NULL, NULL) \
    X("wccp2_return_method", SQ_WCCP, NULL, NULL) \
    X("wccp2_router", SQ_WCCP, NULL, NULL) \
    X("wccp2_service", SQ_WCCP, NULL, NULL) \
    X("wccp2_service_info", SQ_WCCP, NULL, NULL) \
    X("wccp2_weight", SQ_WCCP, NULL, NULL) \
    X("wccp_address", SQ_WCCP, NULL, NULL) \
    X("wccp_router", SQ_WCCP, NULL, NULL) \
    X("wccp_version", SQ_WCCP, NULL, NULL) \
    X("windows_ipaddrchangemonitor", SQ_TUNING, NULL, NULL) \
    X("zero_buffers", SQ_TUNING, NULL, NULL) \
    X("zph_local", SQ_OUTGOING, NULL, NULL) \
    X("zph_mode", SQ_OUTGOING, NULL, NULL) \
    X("zph_option", SQ_OUTGOING, NULL, NULL) \
    X("zph_parent", SQ_OUTGOING, NULL, NULL) \
    X("zph_sibling", SQ_OUTGOING, NULL, NULL)

enum squid_class {
    SQ_TUNING, SQ_AUTH, SQ_ACCESS, SQ_CACHE, SQ_PRIVACY, SQ_PEER, SQ_REWRITE, SQ_ADAPT,
    SQ_TLS, SQ_WCCP, SQ_POOLS, SQ_HEADERS, SQ_OUTGOING, SQ_PORT,
};

static const char *const squid_class_todo[] = {
    [SQ_TUNING] = NULL,
    [SQ_AUTH] = "proxyd implements auth_param basic and external_acl_type only; admit these "
                "clients with them or by address (acl src and http_access) and remove the "
                "line, or keep Squid for these clients",
    [SQ_ACCESS] = "proxyd does not apply this rule; express it with http_access where it can "
                  "be, or remove the line only if the rule is not needed",
    [SQ_CACHE] = "use `cache deny ACL` instead",
    [SQ_PRIVACY] = "remove the line only if that is acceptable",
    [SQ_PEER] = "proxyd peers by cache_peer (parents and siblings) and cache_peer_access "
                "only; rewrite the line as cache_peer_access ACLs",
    [SQ_REWRITE] = "proxyd runs url_rewrite_program and store_id_program with their "
                   "program, children, access and bypass lines only, and Squid's default "
                   "extras; remove the line if the helper does without it, or keep Squid",
    [SQ_ADAPT] = "proxyd has no ICAP or eCAP adaptation, so content would pass unscanned and "
                 "unchanged; remove the line only if that is acceptable",
    [SQ_TLS] = "proxyd neither bumps nor originates TLS, CONNECT is tunnelled unexamined; "
               "remove the line only if that is acceptable",
    [SQ_WCCP] = "proxyd does not speak WCCP, so the routers would send the traffic around the "
                "proxy; redirect it with policy routing or iptables instead",
    [SQ_POOLS] = "proxyd has no delay pools, so the traffic would not be slowed; shape it "
                 "outside proxyd (tc) or remove the line",
    [SQ_HEADERS] = "proxyd has no header rules yet, so the headers would pass unchanged; remove "
                   "the line only if that is acceptable",
    [SQ_OUTGOING] = "proxyd connects from the system's default source address without TOS or "
                    "netfilter marks, so routing and firewall rules keyed on them would not "
                    "match; remove the line only if that is acceptable",
    [SQ_PORT] = "proxyd listens for plain HTTP only (http_port); this port would not be opened",
};

typedef struct squid_directive {
    const char *name;
    enum squid_class cls;
    const char *harmless;   /* the value (arguments as one string) that is only a warning */
    const char *todo;       /* what to do, when the class's sentence is not enough */
} squid_directive;

static const squid_directive squid_only[] = {
#define X(name, cls, harmless, todo) { name, cls, harmless, todo },
    SQUID_UNIMPLEMENTED(X)
#undef X
};

#define N_SQUID_ONLY (sizeof(squid_only) / sizeof(squid_only[0]))

static int cmp_squid(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const squid_directive *)elem)->name);
}

static const squid_directive *find_squid_only(const char *name)
{
    return bsearch(name, squid_only, N_SQUID_ONLY, sizeof(squid_only[0]), cmp_squid);
}

static const char *squid_todo(const squid_directive *s)
{
    return s->todo ? s->todo : squid_class_todo[s->cls];
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

/* What to change when a file is not readable (EACCES), for the end of an
 * error message: a configuration mounted into a container or installed by
 * hand is often readable by root only, while proxyd runs as another user. */
static const char *access_hint(int err, char *buf, size_t n)
{
    if (err != EACCES && err != EPERM)
        return "";
    snprintf(buf, n, " (proxyd runs as uid %u, gid %u: make the file readable by that user, "
             "e.g. chmod 644, and its directories searchable, chmod 755)",
             (unsigned)geteuid(), (unsigned)getegid());
    return buf;
}

/* An error about a whole file (no line): "path: message". */
static int file_error(loader *ld, const char *path, const char *what, int err)
{
    char hint[160];
    fprintf(ld->err ? ld->err : stderr, "%s: %s: %s%s\n", path, what, strerror(err),
            access_hint(err, hint, sizeof hint));
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
        int e = errno;
        if (top)
            return file_error(ld, path, "cannot open", e);
        char hint[160];
        return error(ld, "include: cannot open '%s': %s%s", path, strerror(e),
                     access_hint(e, hint, sizeof hint));
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
        char hint[160];
        return error(ld, "include: cannot read '%s': %s%s", path, strerror(err),
                     access_hint(err, hint, sizeof hint));
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

/* The rest of the line is exactly `value` (words compared case-insensitively). */
static bool squid_value_is(loader *ld, const char **pp, const char *value)
{
    if (!value)
        return false;
    wordv wv = { 0 };
    bool same = split_words(ld, pp, &wv, -1) == 0;
    const char *v = value;
    for (int i = 0; same && i < wv.n; i++) {
        size_t n = strlen(wv.v[i].val);
        /* a match means v holds n characters: v[n] is in bounds */
        same = strncasecmp(v, wv.v[i].val, n) == 0 && (v[n] == ' ' || v[n] == '\0');
        if (same)
            v += n + (v[n] == ' ');
    }
    same = same && wv.n > 0 && *v == '\0';
    wordv_free(&wv);
    return same;
}

/*
 * Squid's configuration macros: ${service_name} is "proxyd". ${process_number}
 * and ${process_name} give each Squid kid its own lines; proxyd's workers
 * share one configuration (one cache, SO_REUSEPORT ports), so such a line
 * cannot be honoured: an error. Returns the expanded line (malloc'd), or NULL
 * after reporting the error.
 */
static char *expand_macros(loader *ld, const char *line)
{
    static const char svc[] = "${service_name}";
    if (!strstr(line, "${") || line[strspn(line, " \t")] == '#')
        return strdup(line); /* comments mention them too */
    const char *bad = strstr(line, "${process_number}");
    if (!bad)
        bad = strstr(line, "${process_name}");
    if (bad) {
        error(ld, "%.*s: proxyd's workers share one configuration, so a line cannot differ per "
                  "worker; write the line for all of them (they share the cache and the ports) "
                  "or remove it",
              (int)(strchr(bad, '}') - bad + 1), bad);
        return NULL;
    }
    size_t n = 0;
    for (const char *q = line; (q = strstr(q, svc)); q += sizeof svc - 1)
        n++;
    char *out = malloc(strlen(line) + n * 8 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *q = line;;) {
        const char *m = strstr(q, svc);
        size_t k = m ? (size_t)(m - q) : strlen(q);
        memcpy(o, q, k);
        o += k;
        if (!m)
            break;
        memcpy(o, "proxyd", 6);
        o += 6;
        q = m + sizeof svc - 1;
    }
    *o = '\0';
    return out;
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
        const squid_directive *s = find_squid_only(name.val);
        if (!s)
            error(ld, "unknown directive '%s'", name.val);
        else if (s->cls == SQ_TUNING || squid_value_is(ld, &p, s->harmless))
            warn(ld, "squid directive '%s' is not supported by proxyd; ignored", name.val);
        else
            error(ld, "%s is not implemented by proxyd: %s", name.val, squid_todo(s));
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
        char *x = expand_macros(ld, buf);
        const char *w = buf + strspn(buf, " \t");
        if (x)
            process_line(ld, x, &cs);
        else if (!strncmp(w, "if", 2) && (w[2] == ' ' || w[2] == '\t'))
            process_line(ld, "if false", &cs); /* reported; keep the if/endif nesting */
        free(x);
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

    if (c->auth_basic.seen && !c->auth_basic.helper.argv) {
        ld->file = c->auth_basic.seen_file;
        ld->line = c->auth_basic.seen_line;
        error(ld, "auth_param basic: no `auth_param basic program` line");
    }
    if (c->auth_basic.helper.argv && !c->auth_basic.realm)
        set_string(ld, &c->auth_basic.realm, "Squid proxy-caching web server");

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

long pd_conf_number(const char *s, long max)
{
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || errno || v > max)
        return -1;
    return v;
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
    free_lines(&c->http_reply_access);
    free_lines(&c->miss_access);
    free_lines(&c->follow_x_forwarded_for);
    free_lines(&c->reply_body_max_size);
    free_lines(&c->tcp_outgoing_address);
    free_lines(&c->cache_peer);
    free_lines(&c->cache_peer_access);
    free_lines(&c->icp_access);
    free(c->udp_incoming_address);
    free(c->unique_hostname);
    free_lines(&c->never_direct);
    free_lines(&c->proxyd_cluster);
    free_lines(&c->always_direct);
    free_lines(&c->request_header_access);
    free_lines(&c->reply_header_access);
    free_lines(&c->request_header_replace);
    free_lines(&c->reply_header_replace);
    free_lines(&c->request_header_add);
    free_lines(&c->reply_header_add);
    free_lines(&c->logformat);
    free_lines(&c->external_acl_type);
    free_lines(&c->url_rewrite_access);
    free_lines(&c->store_id_access);
    for (int i = 0; c->store_id.argv && c->store_id.argv[i]; i++)
        free(c->store_id.argv[i]);
    free(c->store_id.argv);
    free(c->store_id.file);
    for (int i = 0; c->url_rewrite.argv && c->url_rewrite.argv[i]; i++)
        free(c->url_rewrite.argv[i]);
    free(c->url_rewrite.argv);
    free(c->url_rewrite_timeout_response);
    free(c->url_rewrite.file);
    for (int i = 0; c->auth_basic.helper.argv && c->auth_basic.helper.argv[i]; i++)
        free(c->auth_basic.helper.argv[i]);
    free(c->auth_basic.helper.argv);
    free(c->auth_basic.helper.file);
    free(c->auth_basic.realm);
    free(c->auth_basic.seen_file);
    free(c->access_log);
    free(c->access_log_format_name);
    free(c->access_log_file);
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
static pd_conf *load(const char *name, const char *text, FILE *err_out, int *n_errors)
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
    ld.c->url_rewrite.children_max = 20;
    ld.c->url_rewrite.idle = 1;
    ld.c->url_rewrite.queue_size = -1;
    ld.c->store_id.children_max = 20;
    ld.c->store_id.idle = 1;
    ld.c->store_id.queue_size = -1;
    /* auth_param basic: Squid's defaults */
    ld.c->auth_basic.helper.children_max = 20;
    ld.c->auth_basic.helper.idle = 1;
    ld.c->auth_basic.helper.queue_size = -1;
    ld.c->auth_basic.credentialsttl = 2 * 3600;

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
    if (n_errors) {
        *n_errors = ld.n_errors;
        return c;
    }
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
    return load(path, NULL, err_out, NULL);
}

pd_conf *pd_conf_load_all(const char *path, FILE *err_out, int *n_errors)
{
    *n_errors = 0;
    if (!path)
        return NULL;
    return load(path, NULL, err_out, n_errors);
}

pd_conf *pd_conf_load_string(const char *name, const char *text, FILE *err_out)
{
    if (!name)
        name = "(string)";
    return load(name, text ? text : "", err_out, NULL);
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
          "A Squid directive that proxyd does not implement is an error when skipping it could"
          " let through, expose or change traffic, and a warning otherwise (both with file and"
          " line; see the end of this page); a word that is no directive at all is an error."
          " `proxyd -t` reports every error and warning in one pass and counts them.\n\n"
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
    fputs("\n## Squid directives proxyd does not implement\n\n"
          "Those whose absence would let through, expose or change traffic the operator meant"
          " to stop or shape are errors (`file:line: NAME is not implemented by proxyd: what to"
          " do`): the configuration is refused. The others are warnings and skipped."
          " [migrating-from-squid.md](migrating-from-squid.md) says what to do for each.\n\n"
          "Errors: ", out);
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            fputs(".\n\nWarnings: ", out);
        int n = 0;
        for (size_t i = 0; i < N_SQUID_ONLY; i++)
            if ((squid_only[i].cls == SQ_TUNING) == (pass == 1))
                fprintf(out, "%s`%s`", n++ ? ", " : "", squid_only[i].name);
    }
    fputs(".\n", out);
}

/* Row row's Squid name (which 0) or Squid alias (which 1); NULL if none or proxyd's own. */
static const char *squid_name_of_row(size_t row, int which)
{
    const directive *d = &directives[row];
    if (d->flags & F_OURS)
        return NULL;
    return which ? d->alias : d->name;
}

void pd_conf_print_squid_directives(FILE *out)
{
    /* the names of both tables in order: each round prints the smallest name above prev */
    const char *prev = "";
    for (;;) {
        const char *best = NULL;
        const directive *bd = NULL;
        const squid_directive *bs = NULL;
        for (size_t i = 0; i < N_DIRECTIVES; i++) {
            for (int w = 0; w < 2; w++) {
                const char *n = squid_name_of_row(i, w);
                if (n && strcmp(n, prev) > 0 && (!best || strcmp(n, best) < 0)) {
                    best = n;
                    bd = &directives[i];
                    bs = NULL;
                }
            }
        }
        for (size_t i = 0; i < N_SQUID_ONLY; i++) {
            const char *n = squid_only[i].name;
            if (strcmp(n, prev) > 0 && (!best || strcmp(n, best) < 0)) {
                best = n;
                bd = NULL;
                bs = &squid_only[i];
            }
            if (strcmp(n, prev) > 0)
                break;  /* sorted: the first one above prev is the only candidate */
        }
        if (!best)
            break;
        fprintf(out, "| `%s` | ", best);
        if (bd) {
            if (strcmp(best, bd->name))
                fprintf(out, "implemented, as `%s`", bd->name);
            else
                fputs("implemented", out);
        } else if (bs->cls == SQ_TUNING) {
            fputs("warning: ignored", out);
        } else {
            fputs("**error**: ", out);
            md_cell(out, squid_todo(bs));
            if (bs->harmless)
                fprintf(out, " (`%s %s` is a warning)", bs->name, bs->harmless);
        }
        fputs(" |\n", out);
        prev = best;
    }
}
