/*
 * cache_policy: RFC 9111 decisions as pure functions (see cache_policy.h).
 * Header values are read through pd_http_msg views; nothing here allocates
 * except refresh_pattern compilation and header edits on a message the
 * caller owns.
 */
#include "proxyd/cache_policy.h"
#include "proxyd/url.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const pd_refresh_rule pd_refresh_default = {
    .pattern = NULL, .min = 0, .percent = 20, .max = 3 * 24 * 3600, .max_stale = -1,
};

/* ---- small lexing helpers ---- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static pd_str trim(pd_str s)
{
    while (s.len && is_ows(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len && is_ows(s.p[s.len - 1]))
        s.len--;
    return s;
}

static int str_eq_ci(pd_str a, pd_str b)
{
    return a.len == b.len && (a.len == 0 || strncasecmp(a.p, b.p, a.len) == 0);
}

static int str_eq(pd_str a, pd_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* delta-seconds (1.2.2): digits only; overflow clamps to 2^31; -1 if invalid */
static int64_t parse_delta(pd_str s)
{
    s = trim(s);
    if (s.len == 0)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        if (v < PD_CP_DELTA_MAX)
            v = v * 10 + (s.p[i] - '0');
    }
    return v > PD_CP_DELTA_MAX ? PD_CP_DELTA_MAX : v;
}

/* Iterate the comma-separated members of one field value, honouring quoted
 * strings. Returns 1 with the next trimmed member in *out. */
static int next_member(pd_str *rest, pd_str *out)
{
    while (rest->len) {
        const char *p = rest->p, *end = rest->p + rest->len;
        int inq = 0;
        const char *q = p;
        for (; q < end; q++) {
            if (inq && *q == '\\' && q + 1 < end)
                q++;
            else if (*q == '"')
                inq = !inq;
            else if (!inq && *q == ',')
                break;
        }
        pd_str m = trim((pd_str){ p, (size_t)(q - p) });
        size_t used = (size_t)(q - p) + (q < end ? 1 : 0);
        rest->p += used;
        rest->len -= used;
        if (m.len) {
            *out = m;
            return 1;
        }
    }
    return 0;
}

int pd_cache_policy_cc(const pd_http_msg *m, const char *name, pd_str *arg)
{
    pd_str want = { name, strlen(name) };
    for (const pd_header *h = pd_http_msg_find(m, "Cache-Control"); h; h = pd_http_msg_find_next(m, h)) {
        pd_str rest = h->value, mem;
        while (next_member(&rest, &mem)) {
            const char *eq = memchr(mem.p, '=', mem.len);
            pd_str n = trim((pd_str){ mem.p, eq ? (size_t)(eq - mem.p) : mem.len });
            if (!str_eq_ci(n, want))
                continue;
            if (arg) {
                pd_str a = eq ? trim((pd_str){ eq + 1, mem.len - (size_t)(eq + 1 - mem.p) })
                              : (pd_str){ "", 0 };
                if (a.len >= 2 && a.p[0] == '"' && a.p[a.len - 1] == '"') {
                    a.p++;
                    a.len -= 2;
                }
                *arg = a;
            }
            return 1;
        }
    }
    return 0;
}

static int64_t cc_delta(const pd_http_msg *m, const char *name, int *present)
{
    pd_str a;
    *present = pd_cache_policy_cc(m, name, &a);
    return *present ? parse_delta(a) : -1;
}

/* ---- dates (RFC 9110 5.6.7) ---- */

/*
 * HTTP-date (RFC 9110 5.6.7), by hand and exactly: the three forms of the
 * grammar and nothing else (no runs of spaces, no one-digit hours, no other
 * zones); day and month names and "GMT" in any letter case, which the RFC
 * asks recipients to accept. A value that is not a date is an invalid date
 * (for Expires: already expired, RFC 9111 5.3).
 */

static int lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* The n letters at p equal the lowercase word w, in any case. */
static int word_ci(const char *p, const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower_ascii(p[i]) != w[i])
            return 0;
    return 1;
}

/* month = "Jan" / ... / "Dec": 0..11, or -1 */
static int month_at(const char *p)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    for (int i = 0; i < 12; i++)
        if (word_ci(p, months + i * 3, 3))
            return i;
    return -1;
}

/* day-name (3 letters) or day-name-l (full, RFC 850) of exactly len letters */
static int wday_ok(const char *w, size_t len, int full)
{
    static const char *const shortd[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };
    static const char *const longd[] = { "monday", "tuesday", "wednesday", "thursday",
                                         "friday", "saturday", "sunday" };
    for (int i = 0; i < 7; i++) {
        const char *d = full ? longd[i] : shortd[i];
        if (strlen(d) == len && word_ci(w, d, len))
            return 1;
    }
    return 0;
}

/* n decimal digits at p, or -1 */
static int digits(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* time-of-day = hour ":" minute ":" second, each 2DIGIT, at p (8 bytes) */
static int time_of_day(const char *p, int *hh, int *mm, int *ss)
{
    if (p[2] != ':' || p[5] != ':')
        return -1;
    *hh = digits(p, 2);
    *mm = digits(p + 3, 2);
    *ss = digits(p + 6, 2);
    return *hh < 0 || *mm < 0 || *ss < 0 ? -1 : 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12); linear
 * in the day, so day 31 of a 30-day month is the 1st of the next, as timegm
 * normalises. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int pd_cache_policy_parse_date(pd_str s, time_t *out)
{
    int day, mo, year, hh, mm, ss;
    s = trim(s);
    const char *b = s.p;
    if (s.len == 29 && b[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", fixed columns (the
         * form every sender must use, checked first: it runs for Date,
         * Expires and Last-Modified on every hit) */
        if (!wday_ok(b, 3, 0) || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' || b[16] != ' ' ||
            b[25] != ' ' || !word_ci(b + 26, "gmt", 3))
            return -1;
        day = digits(b + 5, 2);
        mo = month_at(b + 8);
        year = digits(b + 12, 4);
        if (time_of_day(b + 17, &hh, &mm, &ss) < 0)
            return -1;
    } else if (s.len == 24 && b[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994", day is 2DIGIT or SP DIGIT */
        if (!wday_ok(b, 3, 0) || b[7] != ' ' || b[10] != ' ' || b[19] != ' ')
            return -1;
        mo = month_at(b + 4);
        day = b[8] == ' ' ? digits(b + 9, 1) : digits(b + 8, 2);
        year = digits(b + 20, 4);
        if (time_of_day(b + 11, &hh, &mm, &ss) < 0)
            return -1;
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT": day-name-l, then 24 fixed bytes */
        const char *comma = s.len > 24 ? memchr(b, ',', s.len) : NULL;
        if (!comma || (size_t)(comma - b) + 24 != s.len || !wday_ok(b, (size_t)(comma - b), 1))
            return -1;
        const char *p = comma + 1;
        if (p[0] != ' ' || p[3] != '-' || p[7] != '-' || p[10] != ' ' || p[19] != ' ' ||
            !word_ci(p + 20, "gmt", 3))
            return -1;
        day = digits(p + 1, 2);
        mo = month_at(p + 4);
        year = digits(p + 8, 2);
        if (time_of_day(p + 11, &hh, &mm, &ss) < 0)
            return -1;
        /* two-digit years: the nearest past century reading (5.6.7) */
        if (year >= 0)
            year += year < 70 ? 2000 : 1900;
    }
    if (mo < 0 || day < 1 || day > 31 || year < 1900 || hh > 23 || mm > 59 || ss > 60)
        return -1;
    *out = (time_t)(days_from_civil(year, mo + 1, day) * 86400 + hh * 3600 + mm * 60 + ss);
    return 0;
}

static int header_date(const pd_http_msg *m, const char *name, time_t *out)
{
    const pd_header *h = pd_http_msg_find(m, name);
    return h ? pd_cache_policy_parse_date(h->value, out) : -1;
}

/* ---- storing ---- */

/* Status codes cacheable by default (RFC 9110 15.1), less 206 (partial:
 * we store complete responses only). */
static int default_cacheable(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return 1;
    default:
        return 0;
    }
}

/* Status codes whose caching requirements we implement (for must-understand). */
static int understood(int status)
{
    return default_cacheable(status) || status == 302 || status == 303 || status == 307;
}

static int has_explicit_freshness(const pd_http_msg *resp)
{
    return pd_cache_policy_cc(resp, "s-maxage", NULL) || pd_cache_policy_cc(resp, "max-age", NULL) ||
           pd_http_msg_find(resp, "Expires") != NULL;
}

int pd_cache_policy_storable(const pd_http_msg *req, const pd_http_msg *resp,
                             const pd_refresh_rule *rule, const char **why)
{
    const char *w = NULL;
    int status = resp->status;
    if (req->method_id != PD_M_GET)
        w = "method";
    else if (status < 200 || status == 206 || status == 304)
        w = "status";
    else if (pd_cache_policy_cc(req, "no-store", NULL))
        w = "request no-store";
    else if (pd_cache_policy_cc(resp, "must-understand", NULL) && !understood(status))
        w = "must-understand";
    else if (pd_cache_policy_cc(resp, "no-store", NULL) &&
             !(pd_cache_policy_cc(resp, "must-understand", NULL) && understood(status)) &&
             !(rule && rule->ignore_no_store))
        w = "no-store";
    else if (pd_cache_policy_cc(resp, "private", NULL) && !(rule && rule->ignore_private))
        w = "private";
    else if (pd_http_msg_find(req, "Authorization") && !pd_cache_policy_cc(resp, "public", NULL) &&
             !pd_cache_policy_cc(resp, "must-revalidate", NULL) &&
             !pd_cache_policy_cc(resp, "s-maxage", NULL))
        w = "authorization";
    else if (pd_http_msg_has_token(resp, "Vary", "*"))
        w = "vary *";
    else if (!has_explicit_freshness(resp) && !pd_cache_policy_cc(resp, "public", NULL) &&
             !default_cacheable(status))
        w = "not cacheable status without freshness";
    if (why)
        *why = w;
    return w == NULL;
}

/* ---- freshness ---- */

int64_t pd_cache_policy_lifetime(const pd_http_msg *resp, const pd_refresh_rule *rule,
                                 time_t response_time, enum pd_cp_source *source)
{
    enum pd_cp_source src = PD_CP_SRC_NONE;
    int64_t life = 0;
    int present;
    const pd_header *eh;
    if (!rule)
        rule = &pd_refresh_default;
    time_t date;
    if (header_date(resp, "Date", &date) < 0)
        date = response_time;

    int64_t v = cc_delta(resp, "s-maxage", &present);
    if (present) {
        src = v < 0 ? PD_CP_SRC_INVALID : PD_CP_SRC_SMAXAGE;
        life = v < 0 ? 0 : v;
    } else if (v = cc_delta(resp, "max-age", &present), present) {
        src = v < 0 ? PD_CP_SRC_INVALID : PD_CP_SRC_MAXAGE;
        life = v < 0 ? 0 : v;
    } else if ((eh = pd_http_msg_find(resp, "Expires")) != NULL) {
        time_t exp;
        /* 5.3: an invalid date, or more than one line (a list is not a date
         * either), means already expired */
        if (pd_http_msg_find_next(resp, eh) || pd_cache_policy_parse_date(eh->value, &exp) < 0) {
            src = PD_CP_SRC_INVALID;
            life = 0;
        } else {
            src = PD_CP_SRC_EXPIRES;
            life = (int64_t)exp - (int64_t)date;
        }
    } else if (default_cacheable(resp->status) || pd_cache_policy_cc(resp, "public", NULL)) {
        src = PD_CP_SRC_HEURISTIC;
        time_t lm;
        if (header_date(resp, "Last-Modified", &lm) < 0) {
            life = rule->min;                   /* nothing to estimate from */
        } else if (date > lm) {
            life = ((int64_t)date - (int64_t)lm) * rule->percent / 100;
            if (rule->override_lastmod && life < rule->min)
                life = rule->min;
        } else {
            /* modified at (or, by a skewed clock, after) the response's Date:
             * a fraction of no interval is no freshness (4.2.2) */
            life = rule->override_lastmod ? rule->min : 0;
        }
        if (life > rule->max)
            life = rule->max;
    }
    if ((src == PD_CP_SRC_SMAXAGE || src == PD_CP_SRC_MAXAGE || src == PD_CP_SRC_EXPIRES) &&
        rule->override_expire && life < rule->min)
        life = rule->min;
    if (life < 0)
        life = 0;
    if (life > PD_CP_DELTA_MAX)
        life = PD_CP_DELTA_MAX;
    if (source)
        *source = src;
    return life;
}

int64_t pd_cache_policy_age(const pd_http_msg *resp, time_t request_time, time_t response_time,
                            time_t now)
{
    int64_t age_value = 0;
    const pd_header *h = pd_http_msg_find(resp, "Age");
    if (h) {
        pd_str rest = h->value, first;
        if (next_member(&rest, &first)) {
            int64_t v = parse_delta(first);
            if (v >= 0)
                age_value = v;
        }
    }
    time_t date;
    if (header_date(resp, "Date", &date) < 0)
        date = response_time;
    int64_t apparent = (int64_t)response_time - (int64_t)date;
    if (apparent < 0)
        apparent = 0;
    int64_t delay = (int64_t)response_time - (int64_t)request_time;
    if (delay < 0)
        delay = 0;
    int64_t corrected = age_value + delay;
    int64_t initial = apparent > corrected ? apparent : corrected;
    int64_t resident = (int64_t)now - (int64_t)response_time;
    if (resident < 0)
        resident = 0;
    int64_t age = initial + resident;
    return age > PD_CP_DELTA_MAX ? PD_CP_DELTA_MAX : age;
}

/* ---- serving ---- */

enum pd_cp_decision pd_cache_policy_decide(const pd_http_msg *req, const pd_http_msg *stored,
                                           int64_t lifetime, int64_t age)
{
    int only_if_cached = pd_cache_policy_cc(req, "only-if-cached", NULL);
    if (!stored)
        return only_if_cached ? PD_CP_ONLY_IF_CACHED_FAIL : PD_CP_MISS;
    enum pd_cp_decision stale = only_if_cached ? PD_CP_ONLY_IF_CACHED_FAIL : PD_CP_STALE_REVALIDATE;
    int req_cc = pd_http_msg_find(req, "Cache-Control") != NULL;
    if (pd_cache_policy_cc(req, "no-cache", NULL) ||
        (!req_cc && pd_http_msg_has_token(req, "Pragma", "no-cache")))
        return stale;
    pd_str a;
    /* an unqualified no-cache; no-cache="field" only restricts those fields */
    if (pd_cache_policy_cc(stored, "no-cache", &a) && a.len == 0)
        return stale;
    int present;
    int64_t v = cc_delta(req, "max-age", &present);
    if (present && v >= 0 && age > v)
        return stale;
    v = cc_delta(req, "min-fresh", &present);
    if (present && v >= 0 && lifetime - age < v)
        return stale;
    if (lifetime > age)
        return PD_CP_FRESH;
    if (pd_cache_policy_cc(req, "max-stale", &a) && !pd_cache_policy_cc(stored, "must-revalidate", NULL) &&
        !pd_cache_policy_cc(stored, "proxy-revalidate", NULL) &&
        !pd_cache_policy_cc(stored, "s-maxage", NULL)) {
        if (a.len == 0)
            return PD_CP_FRESH;
        v = parse_delta(a);
        if (v >= 0 && age - lifetime <= v)
            return PD_CP_FRESH;
    }
    return stale;
}

/* Directives that forbid a shared cache to serve the stored response stale (4.2.4). */
static int stale_forbidden(const pd_http_msg *stored)
{
    pd_str a;
    return pd_cache_policy_cc(stored, "must-revalidate", NULL) ||
           pd_cache_policy_cc(stored, "proxy-revalidate", NULL) ||
           pd_cache_policy_cc(stored, "s-maxage", NULL) ||
           (pd_cache_policy_cc(stored, "no-cache", &a) && a.len == 0);
}

int pd_cache_policy_stale_on_error(const pd_http_msg *req, const pd_http_msg *stored,
                                   int64_t lifetime, int64_t age, int64_t max_stale)
{
    if (stale_forbidden(stored))
        return 0;
    int present;
    int64_t req_sie = cc_delta(req, "stale-if-error", &present);
    if (!present) {
        int req_cc = pd_http_msg_find(req, "Cache-Control") != NULL;
        if (pd_cache_policy_cc(req, "no-cache", NULL) ||
            (!req_cc && pd_http_msg_has_token(req, "Pragma", "no-cache")))
            return 0;
        int64_t ma = cc_delta(req, "max-age", &present);
        if (present && ma >= 0 && age > ma)
            return 0;
    }
    int64_t allow = max_stale;
    if (req_sie > allow)
        allow = req_sie;
    int64_t resp_sie = cc_delta(stored, "stale-if-error", &present);
    if (resp_sie > allow)
        allow = resp_sie;
    return allow > 0 && age - lifetime < allow; /* 0: never */
}

int pd_cache_policy_stale_while_revalidate(const pd_http_msg *req, const pd_http_msg *stored,
                                           int64_t lifetime, int64_t age)
{
    int present;
    int64_t swr = cc_delta(stored, "stale-while-revalidate", &present);
    if (!present || swr <= 0 || age < lifetime || stale_forbidden(stored))
        return 0;
    int req_cc = pd_http_msg_find(req, "Cache-Control") != NULL;
    if (pd_cache_policy_cc(req, "no-cache", NULL) ||
        (!req_cc && pd_http_msg_has_token(req, "Pragma", "no-cache")))
        return 0;
    /* max-age without max-stale: no stale response wanted whatever N (5.2.1.1); a
     * max-stale that did not make it fresh (decide) was exceeded; min-fresh is
     * more freshness than a stale response has */
    if (pd_cache_policy_cc(req, "max-age", NULL) || pd_cache_policy_cc(req, "max-stale", NULL) ||
        pd_cache_policy_cc(req, "min-fresh", NULL))
        return 0;
    return age - lifetime <= swr; /* "up to N seconds" after it became stale */
}

/* Copy a pd_str into a NUL-terminated buffer (header names for http_msg_add). */
static int cstr(pd_str s, char *buf, size_t cap)
{
    if (s.len >= cap)
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    return 0;
}

int pd_cache_policy_conditional(pd_http_msg *req, const pd_http_msg *stored)
{
    pd_http_msg_remove(req, "If-None-Match");
    pd_http_msg_remove(req, "If-Modified-Since");
    int n = 0;
    const pd_header *et = pd_http_msg_find(stored, "ETag");
    if (et && et->value.len) {
        if (pd_http_msg_add(req, "If-None-Match", et->value.p, et->value.len) < 0)
            return -1;
        n++;
    }
    const pd_header *lm = pd_http_msg_find(stored, "Last-Modified");
    time_t t;
    if (lm && pd_cache_policy_parse_date(lm->value, &t) == 0) {
        if (pd_http_msg_add(req, "If-Modified-Since", lm->value.p, lm->value.len) < 0)
            return -1;
        n++;
    }
    return n;
}

/* entity-tag (RFC 9110 8.8.3): [W/]"opaque" */
static int parse_etag(pd_str s, pd_str *opaque, int *weak)
{
    s = trim(s);
    *weak = 0;
    if (s.len >= 2 && s.p[0] == 'W' && s.p[1] == '/') {
        *weak = 1;
        s.p += 2;
        s.len -= 2;
    }
    if (s.len < 2 || s.p[0] != '"' || s.p[s.len - 1] != '"')
        return -1;
    *opaque = (pd_str){ s.p + 1, s.len - 2 };
    return memchr(opaque->p, '"', opaque->len) ? -1 : 0;
}

int pd_cache_policy_304_selects(const pd_http_msg *stored, const pd_http_msg *resp)
{
    const pd_header *ne = pd_http_msg_find(resp, "ETag");
    pd_str no, so;
    int nw, sw;
    if (ne && parse_etag(ne->value, &no, &nw) == 0) {
        const pd_header *se = pd_http_msg_find(stored, "ETag");
        if (!se || parse_etag(se->value, &so, &sw) < 0)
            return 0;
        if (!nw)
            return !sw && str_eq(no, so);
        /* a weak validator in the 304: weak comparison (4.3.4 allows
         * selecting by it when there is one candidate) */
        return str_eq(no, so);
    }
    const pd_header *nl = pd_http_msg_find(resp, "Last-Modified");
    if (nl) {
        const pd_header *sl = pd_http_msg_find(stored, "Last-Modified");
        time_t a, b;
        return sl && pd_cache_policy_parse_date(nl->value, &a) == 0 &&
               pd_cache_policy_parse_date(sl->value, &b) == 0 && a == b;
    }
    return 1;
}

static int not_stored(const pd_http_msg *resp, pd_str name);

/* 3.2: never updated from a 304: what a cache does not store (3.1), the
 * length, and what the stored body's encoding depends on. */
static int merge_excluded(const pd_http_msg *resp, pd_str name)
{
    return pd_str_eq_ci(name, "Content-Length") || pd_str_eq_ci(name, "Content-Encoding") ||
           pd_str_eq_ci(name, "Content-Range") || not_stored(resp, name);
}

int pd_cache_policy_merge_304(pd_http_msg *stored, const pd_http_msg *resp)
{
    int updated = 0;
    char name[256];
    for (size_t i = 0; i < resp->n_headers; i++) {
        pd_str nm = resp->headers[i].name;
        if (merge_excluded(resp, nm) || cstr(nm, name, sizeof(name)) < 0)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = str_eq_ci(resp->headers[j].name, nm);
        if (seen)
            continue;   /* all lines of this name were copied with the first */
        pd_http_msg_remove(stored, name);
        for (size_t j = i; j < resp->n_headers; j++)
            if (str_eq_ci(resp->headers[j].name, nm) &&
                pd_http_msg_add(stored, name, resp->headers[j].value.p, resp->headers[j].value.len) < 0)
                return -1;
        updated++;
    }
    return updated;
}

/* Weak comparison of two entity-tags (RFC 9110 8.8.3.2). */
static int etag_weak_eq(pd_str a, pd_str b)
{
    pd_str oa, ob;
    int wa, wb;
    return parse_etag(a, &oa, &wa) == 0 && parse_etag(b, &ob, &wb) == 0 && str_eq(oa, ob);
}

int pd_cache_policy_client_cond(const pd_http_msg *req, const pd_http_msg *stored,
                                time_t response_time)
{
    if (req->method_id != PD_M_GET && req->method_id != PD_M_HEAD)
        return 200;
    const pd_header *inm = pd_http_msg_find(req, "If-None-Match");
    if (inm) {
        const pd_header *et = pd_http_msg_find(stored, "ETag");
        for (const pd_header *h = inm; h; h = pd_http_msg_find_next(req, h)) {
            pd_str rest = h->value, m;
            while (next_member(&rest, &m)) {
                if (m.len == 1 && m.p[0] == '*')
                    return 304;
                if (et && etag_weak_eq(m, et->value))
                    return 304;
            }
        }
        return 200;    /* If-Modified-Since is ignored with If-None-Match */
    }
    time_t ims, lm;
    if (header_date(req, "If-Modified-Since", &ims) < 0)
        return 200;
    /* 4.3.2: Last-Modified, else Date, else when we received it */
    if (header_date(stored, "Last-Modified", &lm) < 0 && header_date(stored, "Date", &lm) < 0)
        lm = response_time;
    return lm <= ims ? 304 : 200;
}

/* ---- Vary ---- */

static int cmp_str_ci(const void *a, const void *b)
{
    const pd_str *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = strncasecmp(x->p, y->p, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

struct sbuf {
    char *p;
    size_t len, cap;
    int over;
};

static void sb_put(struct sbuf *b, const char *p, size_t n, int lower)
{
    if (b->len + n > b->cap) {
        b->over = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        b->p[b->len + i] = lower ? (char)tolower((unsigned char)p[i]) : p[i];
    b->len += n;
}

/*
 * One member of Accept-Encoding / Accept-Language in a canonical form, into
 * out (cap bytes): lowercase, no whitespace, and the weight written as
 * "q=0.5" (trailing zeros dropped) or not at all when it is 1 (absent, "1",
 * "1.0", "1.000" are one weight, RFC 9110 12.4.2). A q that is not a qvalue
 * is kept as written (lowercased). Returns the length, or -1 if it does not
 * fit.
 */
static ssize_t weighted_member(pd_str m, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = m.p, *end = m.p + m.len;
    int first = 1, last = 0;
    while (!last) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        if (!semi) {
            semi = end;
            last = 1;
        }
        char part[128];
        size_t pl = 0;
        for (const char *q = p; q < semi; q++) {
            if (is_ows(*q))
                continue;
            if (pl == sizeof part)
                return -1;
            part[pl++] = (char)lower_ascii(*q);
        }
        if (!last)
            p = semi + 1;
        if (!first && pl == 0)
            continue;   /* "gzip;" */
        if (!first && pl >= 2 && part[0] == 'q' && part[1] == '=') {
            /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            const char *v = part + 2;
            size_t vl = pl - 2, k = 1;
            int ok = vl >= 1 && (v[0] == '0' || v[0] == '1') && (vl == 1 || (v[1] == '.' && vl <= 5));
            int milli = 0;
            for (k = 2; ok && k < vl; k++) {
                ok = v[k] >= '0' && v[k] <= '9';
                milli = milli * 10 + (v[k] - '0');
            }
            for (; k < 5; k++)
                milli *= 10;
            if (ok && v[0] == '1') {
                ok = milli == 0;    /* "1.5" is no qvalue */
                milli = 1000;
            }
            if (ok) {
                if (milli == 1000)
                    continue;   /* the default weight */
                char qb[16];
                int ql = snprintf(qb, sizeof qb, "q=0.%03d", milli);
                while (ql > 3 && qb[ql - 1] == '0')
                    ql--;
                if (ql == 4)
                    ql = 3; /* q=0 */
                memcpy(part, qb, (size_t)ql);
                pl = (size_t)ql;
            }
        }
        if (n + pl + (first ? 0 : 1) > cap)
            return -1;
        if (!first)
            out[n++] = ';';
        memcpy(out + n, part, pl);
        n += pl;
        first = 0;
    }
    return (ssize_t)n;
}

static int cmp_str(const void *a, const void *b)
{
    const pd_str *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/*
 * Accept-Encoding and Accept-Language (RFC 9110 12.5.3, 12.5.4) as a set:
 * every line's members normalised by weighted_member and sorted, so requests
 * that differ only in order, case, whitespace or the spelling of q share a
 * variant. Returns 0, or -1 when they do not fit (the key is then unusable).
 */
static int weighted_list(struct sbuf *b, const pd_http_msg *req, const pd_header *h)
{
    char store[2048];
    pd_str mem[64];
    size_t used = 0, nm = 0;
    for (; h; h = pd_http_msg_find_next(req, h)) {
        pd_str rest = h->value, m;
        while (next_member(&rest, &m)) {
            if (nm == sizeof mem / sizeof mem[0])
                return -1;
            ssize_t l = weighted_member(m, store + used, sizeof store - used);
            if (l < 0)
                return -1;
            if (l == 0)
                continue;
            mem[nm++] = (pd_str){ store + used, (size_t)l };
            used += (size_t)l;
        }
    }
    qsort(mem, nm, sizeof mem[0], cmp_str);
    for (size_t i = 0; i < nm; i++) {
        if (i > 0)
            sb_put(b, ",", 1, 0);
        sb_put(b, mem[i].p, mem[i].len, 0);
    }
    return 0;
}

ssize_t pd_cache_policy_vary_key(const pd_http_msg *resp, const pd_http_msg *req, char *buf,
                                 size_t cap)
{
    pd_str names[64];
    size_t nn = 0;
    for (const pd_header *h = pd_http_msg_find(resp, "Vary"); h; h = pd_http_msg_find_next(resp, h)) {
        pd_str rest = h->value, m;
        while (next_member(&rest, &m)) {
            if (m.len == 1 && m.p[0] == '*')
                return PD_CP_VARY_STAR;
            if (nn == sizeof(names) / sizeof(names[0]))
                return PD_CP_VARY_NOSPACE;
            names[nn++] = m;
        }
    }
    qsort(names, nn, sizeof(names[0]), cmp_str_ci);
    struct sbuf b = { buf, 0, cap, 0 };
    char cname[256];
    for (size_t i = 0; i < nn; i++) {
        if (i > 0 && cmp_str_ci(&names[i - 1], &names[i]) == 0)
            continue;
        if (cstr(names[i], cname, sizeof(cname)) < 0)
            return PD_CP_VARY_NOSPACE;
        sb_put(&b, names[i].p, names[i].len, 1);
        const pd_header *h = pd_http_msg_find(req, cname);
        if (!h) {
            sb_put(&b, "\n", 1, 0);
            continue;
        }
        int lower = strncasecmp(cname, "Accept", 6) == 0;
        sb_put(&b, ":", 1, 0);
        if (strcasecmp(cname, "Accept-Encoding") == 0 || strcasecmp(cname, "Accept-Language") == 0) {
            if (weighted_list(&b, req, h) < 0)
                return PD_CP_VARY_NOSPACE;
            sb_put(&b, "\n", 1, 0);
            continue;
        }
        int first = 1;
        for (; h; h = pd_http_msg_find_next(req, h)) {
            pd_str rest = h->value, m;
            while (next_member(&rest, &m)) {
                if (!first)
                    sb_put(&b, ",", 1, 0);
                first = 0;
                /* "gzip ;q=1" and "gzip;q=1" are one value */
                for (size_t k = 0; k < m.len; k++) {
                    if (is_ows(m.p[k]) && ((k + 1 < m.len && (m.p[k + 1] == ';' || is_ows(m.p[k + 1]))) ||
                                           (k > 0 && m.p[k - 1] == ';')))
                        continue;
                    sb_put(&b, &m.p[k], 1, lower);
                }
            }
        }
        sb_put(&b, "\n", 1, 0);
    }
    return b.over ? PD_CP_VARY_NOSPACE : (ssize_t)b.len;
}

/* ---- invalidation ---- */

struct origin {
    char scheme[8];
    char host[256];
    int port;
    const char *path;   /* into the parsed string */
};

/* Split an absolute http(s) URL. */
static int parse_origin(const char *u, size_t len, struct origin *o)
{
    const char *end = u + len, *p = memchr(u, ':', len);
    if (!p || p - u >= (ptrdiff_t)sizeof(o->scheme) || p + 3 > end || p[1] != '/' || p[2] != '/')
        return -1;
    for (size_t i = 0; i < (size_t)(p - u); i++)
        o->scheme[i] = (char)tolower((unsigned char)u[i]);
    o->scheme[p - u] = '\0';
    int defport;
    if (strcmp(o->scheme, "http") == 0)
        defport = 80;
    else if (strcmp(o->scheme, "https") == 0)
        defport = 443;
    else
        return -1;
    const char *h = p + 3, *he = h;
    while (he < end && *he != '/' && *he != '?' && *he != '#')
        he++;
    const char *at = NULL;
    for (const char *q = h; q < he; q++)
        if (*q == '@')
            at = q;
    if (at)
        h = at + 1;
    const char *colon = NULL;
    if (h < he && *h == '[') {
        const char *rb = memchr(h, ']', (size_t)(he - h));
        if (!rb)
            return -1;
        colon = rb + 1 < he && rb[1] == ':' ? rb + 1 : NULL;
    } else if (h < he) {
        colon = memchr(h, ':', (size_t)(he - h));
    }
    const char *hostend = colon ? colon : he;
    if (hostend == h || hostend - h >= (ptrdiff_t)sizeof(o->host))
        return -1;
    for (size_t i = 0; i < (size_t)(hostend - h); i++)
        o->host[i] = (char)tolower((unsigned char)h[i]);
    o->host[hostend - h] = '\0';
    o->port = defport;
    if (colon && colon + 1 < he) {
        int port = 0;
        for (const char *q = colon + 1; q < he; q++) {
            if (*q < '0' || *q > '9' || port > 65535)
                return -1;
            port = port * 10 + (*q - '0');
        }
        if (port == 0 || port > 65535)
            return -1;
        o->port = port;
    }
    o->path = he;
    return 0;
}

/* Normalise an absolute URL like a cache key (pd_url). 0, or -1 when it is
 * not an http URL proxyd could have cached. */
static int normalise(const char *abs, size_t len, pd_url *u, char *out)
{
    const char *why;
    if (pd_url_parse(abs, len, PD_URL_ABSOLUTE, u, &why) < 0)
        return -1;
    if (pd_url_format(u, out, PD_CP_URL_MAX) >= PD_CP_URL_MAX) {
        pd_url_free(u);
        return -1;
    }
    return 0;
}

/* Resolve ref against the target (RFC 3986 5.2, without dot-segment removal)
 * and keep it when it has the target's origin (4.4). */
static void add_same_origin(pd_cp_invalidation *out, const struct origin *base, const pd_url *bu,
                            pd_str ref)
{
    ref = trim(ref);
    if (ref.len == 0 || ref.len >= PD_CP_URL_MAX)
        return;
    char abs[PD_CP_URL_MAX + 300];
    int n;
    size_t i = 0;
    while (i < ref.len && (isalnum((unsigned char)ref.p[i]) || ref.p[i] == '+' || ref.p[i] == '-' ||
                           ref.p[i] == '.'))
        i++;
    if (i > 0 && i < ref.len && ref.p[i] == ':') {
        n = snprintf(abs, sizeof(abs), "%.*s", (int)ref.len, ref.p);                /* absolute */
    } else if (ref.len >= 2 && ref.p[0] == '/' && ref.p[1] == '/') {
        n = snprintf(abs, sizeof(abs), "%s:%.*s", base->scheme, (int)ref.len, ref.p); /* network-path */
    } else if (ref.p[0] == '/') {
        n = snprintf(abs, sizeof(abs), "%s://%s:%d%.*s", base->scheme, base->host, base->port,
                     (int)ref.len, ref.p);                                           /* absolute-path */
    } else {
        /* relative path: merge with the directory of the base path */
        const char *bp = base->path;
        size_t blen = strcspn(bp, "?#"), dirlen = 0;
        for (size_t k = 0; k < blen; k++)
            if (bp[k] == '/')
                dirlen = k + 1;
        n = snprintf(abs, sizeof(abs), "%s://%s:%d%s%.*s%.*s", base->scheme, base->host, base->port,
                     dirlen ? "" : "/", (int)dirlen, bp, (int)ref.len, ref.p);
    }
    if (n < 0 || (size_t)n >= sizeof(abs))
        return;
    pd_url u;
    char *dst = out->url[out->n];
    if (normalise(abs, (size_t)n, &u, dst) < 0)
        return;
    int same = strcmp(u.scheme, bu->scheme) == 0 && strcmp(u.host, bu->host) == 0 && u.port == bu->port;
    pd_url_free(&u);
    if (!same)
        return;
    for (int k = 0; k < out->n; k++)
        if (strcmp(out->url[k], dst) == 0)
            return;
    out->n++;
}

int pd_cache_policy_invalidations(const pd_http_msg *req, const pd_http_msg *resp,
                                  const char *target_url, pd_cp_invalidation *out)
{
    out->n = 0;
    if (pd_method_is_safe(req->method_id) || resp->status < 200 || resp->status >= 400)
        return 0;
    struct origin base;
    pd_url bu;
    size_t tlen = strlen(target_url);
    if (tlen >= PD_CP_URL_MAX || parse_origin(target_url, tlen, &base) < 0)
        return 0;
    if (normalise(target_url, tlen, &bu, out->url[0]) < 0)
        return 0;
    out->n = 1;
    const pd_header *h = pd_http_msg_find(resp, "Location");
    if (h)
        add_same_origin(out, &base, &bu, h->value);
    h = pd_http_msg_find(resp, "Content-Location");
    if (h)
        add_same_origin(out, &base, &bu, h->value);
    pd_url_free(&bu);
    return out->n;
}

/* ---- Range ---- */

static int parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    while (*p < end && **p >= '0' && **p <= '9') {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(**p - '0');
        (*p)++;
    }
    *v = x;
    return *p > s ? 0 : -1;
}

enum pd_range_result pd_cache_policy_range(const pd_http_msg *req, uint64_t length,
                                           pd_range *out, size_t max, size_t *n)
{
    *n = 0;
    const pd_header *h = pd_http_msg_find(req, "Range");
    if (!h || req->method_id != PD_M_GET || pd_http_msg_find_next(req, h))
        return PD_RANGE_IGNORE;
    pd_str v = trim(h->value);
    const char *eq = memchr(v.p, '=', v.len);
    if (!eq || !str_eq_ci(trim((pd_str){ v.p, (size_t)(eq - v.p) }), (pd_str){ "bytes", 5 }))
        return PD_RANGE_IGNORE;
    pd_str rest = { eq + 1, v.len - (size_t)(eq + 1 - v.p) }, m;
    size_t count = 0, specs = 0;
    while (next_member(&rest, &m)) {
        const char *p = m.p, *end = m.p + m.len;
        uint64_t first = 0, last = 0;
        int have_first = 0, have_last = 0;
        if (p < end && *p != '-') {
            if (parse_u64(&p, end, &first) < 0)
                return PD_RANGE_IGNORE;
            have_first = 1;
        }
        if (p >= end || *p != '-')
            return PD_RANGE_IGNORE;
        p++;
        if (p < end) {
            if (parse_u64(&p, end, &last) < 0)
                return PD_RANGE_IGNORE;
            have_last = 1;
        }
        if (p != end || (!have_first && !have_last))
            return PD_RANGE_IGNORE;
        if (have_first && have_last && first > last)
            return PD_RANGE_IGNORE;     /* invalid range-spec: the field is invalid */
        if (++specs > max)
            return PD_RANGE_IGNORE;
        if (!have_first) {
            /* suffix-range: the last `last` bytes */
            if (last == 0 || length == 0)
                continue;
            first = last >= length ? 0 : length - last;
            last = length - 1;
        } else {
            if (first >= length)
                continue;
            if (!have_last || last >= length)
                last = length - 1;
        }
        out[count].first = first;
        out[count].last = last;
        count++;
    }
    if (specs == 0)
        return PD_RANGE_IGNORE;
    *n = count;
    return count ? PD_RANGE_OK : PD_RANGE_UNSATISFIABLE;
}

int pd_cache_policy_if_range(const pd_http_msg *req, const pd_http_msg *stored)
{
    const pd_header *ir = pd_http_msg_find(req, "If-Range");
    if (!ir)
        return 1;
    pd_str o, so;
    int w, sw;
    if (parse_etag(ir->value, &o, &w) == 0) {
        const pd_header *et = pd_http_msg_find(stored, "ETag");
        /* strong comparison: both strong and equal */
        return !w && et && parse_etag(et->value, &so, &sw) == 0 && !sw && str_eq(o, so);
    }
    time_t t, lm;
    if (pd_cache_policy_parse_date(ir->value, &t) < 0 || header_date(stored, "Last-Modified", &lm) < 0)
        return 0;
    return t == lm;
}

/* ---- refresh_pattern ---- */

static int set_err(char *err, size_t errlen, const pd_conf_line *l, const char *msg, const char *arg)
{
    if (errlen)
        snprintf(err, errlen, "%s:%d: refresh_pattern: %s%s%s", l->file ? l->file : "?", l->line, msg,
                 arg ? " " : "", arg ? arg : "");
    return -1;
}

static int parse_minutes(const char *s, int64_t *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (e == s || *e || v < 0 || errno)
        return -1;
    /* Squid caps at a year; keep within the delta-seconds ceiling */
    if (v > PD_CP_DELTA_MAX / 60)
        v = PD_CP_DELTA_MAX / 60;
    *out = (int64_t)v * 60;
    return 0;
}

int pd_cache_policy_refresh_compile(pd_refresh_rules *out, const pd_conf_lines *lines,
                                    char *err, size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    if (!lines || lines->n == 0)
        return 0;
    pd_refresh_rule *v = calloc(lines->n, sizeof(*v));
    if (!v) {
        if (errlen)
            snprintf(err, errlen, "refresh_pattern: out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < lines->n; i++, n++) {
        const pd_conf_line *l = &lines->v[i];
        pd_refresh_rule *r = &v[n];
        int a = 0, flags = REG_EXTENDED | REG_NOSUB;
        if (a < l->argc && strcmp(l->argv[a], "-i") == 0) {
            flags |= REG_ICASE;
            a++;
        }
        if (l->argc - a < 4) {
            set_err(err, errlen, l, "expected [-i] REGEX MIN PERCENT MAX", NULL);
            goto fail;
        }
        const char *pat = l->argv[a], *pct = l->argv[a + 2];
        if (parse_minutes(l->argv[a + 1], &r->min) < 0) {
            set_err(err, errlen, l, "bad MIN", l->argv[a + 1]);
            goto fail;
        }
        if (parse_minutes(l->argv[a + 3], &r->max) < 0) {
            set_err(err, errlen, l, "bad MAX", l->argv[a + 3]);
            goto fail;
        }
        char *e;
        long p = strtol(pct, &e, 10);
        if (e == pct || (*e && strcmp(e, "%") != 0) || p < 0 || p > 1000000) {
            set_err(err, errlen, l, "bad PERCENT", pct);
            goto fail;
        }
        r->percent = (int)p;
        r->max_stale = -1;
        for (int k = a + 4; k < l->argc; k++) {
            const char *o = l->argv[k];
            if (strcmp(o, "override-expire") == 0)
                r->override_expire = 1;
            else if (strcmp(o, "override-lastmod") == 0)
                r->override_lastmod = 1;
            else if (strcmp(o, "ignore-no-store") == 0)
                r->ignore_no_store = 1;
            else if (strcmp(o, "ignore-private") == 0)
                r->ignore_private = 1;
            else if (strcmp(o, "reload-into-ims") == 0)
                r->reload_into_ims = 1;
            else if (strcmp(o, "ignore-reload") == 0)
                r->ignore_reload = 1;
            else if (strcmp(o, "refresh-ims") == 0)
                r->refresh_ims = 1;
            else if (strcmp(o, "store-stale") == 0)
                r->store_stale = 1;
            else if (strncmp(o, "max-stale=", 10) == 0) {
                char *end;
                long long ms = strtoll(o + 10, &end, 10);
                if (end == o + 10 || *end || ms < 0) {
                    set_err(err, errlen, l, "bad max-stale", o);
                    goto fail;
                }
                r->max_stale = ms;
            }
            /* others (ignore-must-revalidate...): ignored */
        }
        int rc = regcomp(&r->re, pat, flags);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &r->re, msg, sizeof(msg));
            set_err(err, errlen, l, msg, pat);
            goto fail;
        }
        r->pattern = strdup(pat);
        if (!r->pattern) {
            regfree(&r->re);
            set_err(err, errlen, l, "out of memory", NULL);
            goto fail;
        }
        r->file = l->file;
        r->line = l->line;
    }
    out->v = v;
    out->n = n;
    return 0;
fail:
    for (size_t k = 0; k < n; k++) {
        regfree(&v[k].re);
        free(v[k].pattern);
    }
    free(v);
    return -1;
}

void pd_cache_policy_refresh_free(pd_refresh_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        regfree(&r->v[i].re);
        free(r->v[i].pattern);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

const pd_refresh_rule *pd_cache_policy_refresh_match(const pd_refresh_rules *r, const char *url)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (regexec(&r->v[i].re, url, 0, NULL, 0) == 0)
            return &r->v[i];
    return &pd_refresh_default;
}

/* ---- fields a cache never stores (3.1) ---- */

static int not_stored(const pd_http_msg *resp, pd_str name)
{
    return pd_http_msg_is_hop_by_hop(resp, name);
}
