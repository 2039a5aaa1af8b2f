/*
 * cache_policy: RFC 9111 (HTTP Caching) decisions for a shared cache, as pure
 * functions of messages and of `now`: no clock, no I/O, no global state. The
 * store (cache_store) knows nothing of HTTP; the request engine asks this
 * module what to do and tells the store.
 *
 * Times are time_t seconds; durations int64_t seconds, clamped to
 * PD_CP_DELTA_MAX (2^31, RFC 9111 1.2.2). Section numbers below are RFC 9111
 * unless marked RFC 9110.
 */
#ifndef PROXYD_CACHE_POLICY_H
#define PROXYD_CACHE_POLICY_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "proxyd/conf.h"
#include "proxyd/http_msg.h"

#define PD_CP_DELTA_MAX 2147483648LL

/* ---- refresh_pattern (Squid semantics) ---- */

typedef struct pd_refresh_rule {
    char *pattern;          /* as written (owned) */
    regex_t re;             /* POSIX extended, REG_ICASE with -i */
    int64_t min;            /* seconds (written in minutes) */
    int percent;            /* of the Last-Modified age */
    int64_t max;            /* seconds (written in minutes) */
    /* Squid options; the first two are applied by pd_cache_policy_lifetime,
     * ignore_no_store/ignore_private by pd_cache_policy_storable, the others
     * are recorded for the request engine. Unknown options are ignored
     * (Squid warns about them). */
    unsigned override_expire : 1, override_lastmod : 1, ignore_no_store : 1,
             ignore_private : 1, reload_into_ims : 1, ignore_reload : 1,
             refresh_ims : 1, store_stale : 1;
    int64_t max_stale;      /* max-stale=N seconds, -1: the max_stale directive's */
    const char *file;       /* where it was written (conf-owned) */
    int line;
} pd_refresh_rule;

typedef struct pd_refresh_rules {
    pd_refresh_rule *v;     /* in configuration order: first match wins */
    size_t n;
} pd_refresh_rules;

/* Squid's built-in rule when none matches: min 0, 20%, max 3 days. */
extern const pd_refresh_rule pd_refresh_default;

/*
 * Compile `refresh_pattern [-i] REGEX MIN PERCENT MAX [options]` lines (argv
 * as split by conf). Returns 0 with *out filled (free with
 * pd_cache_policy_refresh_free), or -1 with "file:line: reason" in err and
 * nothing to free.
 */
int pd_cache_policy_refresh_compile(pd_refresh_rules *out, const pd_conf_lines *lines,
                                    char *err, size_t errlen);
void pd_cache_policy_refresh_free(pd_refresh_rules *r);

/* First rule whose regex matches url (NUL-terminated), or &pd_refresh_default. */
const pd_refresh_rule *pd_cache_policy_refresh_match(const pd_refresh_rules *r, const char *url);

/* ---- dates and directives ---- */

/* Parse an HTTP-date (IMF-fixdate, RFC 850 or asctime form, RFC 9110 5.6.7).
 * Returns 0 and *out, or -1 for anything else. */
int pd_cache_policy_parse_date(pd_str s, time_t *out);

/*
 * Cache-Control directive `name` over every Cache-Control line (RFC 9111
 * 5.2): returns 1 and its argument in *arg (quotes removed; empty when none;
 * a view into m, or into a static "" ) for the first occurrence, 0 when
 * absent. arg may be NULL.
 */
int pd_cache_policy_cc(const pd_http_msg *m, const char *name, pd_str *arg);

/* ---- storing (Section 3) ---- */

/*
 * May a shared cache store resp, the answer to req? (Section 3, 3.5, 5.2.)
 * GET only (a HEAD response has no body to serve later GETs; use it to
 * freshen a stored GET, Section 4.3.5); final status, not 206 (we store
 * complete responses only, Section 3.3) nor 304 (merged, Section 4.3.4);
 * no no-store (request or response; must-understand with an understood
 * status overrides the response's, 5.2.2.3); no private (5.2.2.7);
 * Authorization only with public, must-revalidate or s-maxage (3.5); no
 * Vary: * (4.1); and explicit freshness, public, or a status cacheable by
 * default (RFC 9110 15.1). rule may be NULL (for its ignore-* options).
 * Returns 1 or 0; *why (static string, may be NULL) says why not.
 */
int pd_cache_policy_storable(const pd_http_msg *req, const pd_http_msg *resp,
                             const pd_refresh_rule *rule, const char **why);

/* ---- freshness (Section 4.2) ---- */

enum pd_cp_source {
    PD_CP_SRC_NONE = 0,     /* no explicit freshness, heuristic not allowed */
    PD_CP_SRC_SMAXAGE,
    PD_CP_SRC_MAXAGE,
    PD_CP_SRC_EXPIRES,
    PD_CP_SRC_HEURISTIC,
    PD_CP_SRC_INVALID       /* invalid freshness information: stale (4.2.1) */
};

/*
 * Freshness lifetime of resp in seconds (4.2.1): s-maxage > max-age >
 * Expires - Date (Date absent: response_time; an invalid Expires, or more
 * than one Expires line, is already expired: 0, 5.3) > heuristic (4.2.2)
 * for statuses cacheable by default or public, with Squid's refresh_pattern
 * MIN PERCENT MAX (rule; NULL = pd_refresh_default):
 *   Last-Modified d > 0 seconds before Date: d * PERCENT / 100, however
 *     recent the modification (Squid's LM-factor; MIN does not raise it,
 *     override-lastmod does);
 *   Last-Modified equal to or after Date: 0, a fraction of no interval
 *     (Squid would give MIN; override-lastmod still does);
 *   no (valid) Last-Modified: MIN;
 *   always at most MAX.
 * override-expire raises an explicit lifetime to MIN. *source may be NULL.
 */
int64_t pd_cache_policy_lifetime(const pd_http_msg *resp, const pd_refresh_rule *rule,
                                 time_t response_time, enum pd_cp_source *source);

/*
 * current_age (4.2.3): apparent_age = max(0, response_time - Date);
 * corrected_age_value = Age + (response_time - request_time);
 * corrected_initial_age = max(apparent_age, corrected_age_value);
 * current_age = corrected_initial_age + (now - response_time).
 * A missing Date counts as response_time; an invalid Age is ignored (5.1,
 * first member of a list used).
 */
int64_t pd_cache_policy_age(const pd_http_msg *resp, time_t request_time, time_t response_time,
                            time_t now);

/* ---- serving (Section 4) ---- */

enum pd_cp_decision {
    PD_CP_MISS = 0,                 /* nothing usable: fetch (and maybe store) */
    PD_CP_FRESH,                    /* serve the stored response */
    PD_CP_STALE_REVALIDATE,         /* send a conditional request (4.3.1) */
    PD_CP_ONLY_IF_CACHED_FAIL       /* answer 504 (5.2.1.7) */
};

/*
 * What to do with request req given the stored response (NULL when the
 * lookup missed) whose lifetime and current age the caller computed:
 * only-if-cached (5.2.1.7), no-cache and Pragma: no-cache without
 * Cache-Control (5.2.1.4, 5.4), response no-cache (5.2.2.4), max-age
 * (5.2.1.1), min-fresh (5.2.1.3), max-stale (5.2.1.2, refused by
 * must-revalidate, proxy-revalidate and s-maxage, 5.2.2.2/8/10), fresh
 * when lifetime > age (4.2). A request no-store does not prevent serving a
 * stored response (5.2.1.5).
 */
enum pd_cp_decision pd_cache_policy_decide(const pd_http_msg *req, const pd_http_msg *stored,
                                           int64_t lifetime, int64_t age);

/*
 * Turn req (the request to the origin) into a validation request for stored
 * (4.3.1): any If-None-Match / If-Modified-Since of the client is replaced by
 * If-None-Match: <stored ETag> and If-Modified-Since: <stored Last-Modified>.
 * Returns the number of validators added (0: stored has none, req is then
 * unconditional), -1 on ENOMEM.
 */
int pd_cache_policy_conditional(pd_http_msg *req, const pd_http_msg *stored);

/*
 * May a stored response, lifetime seconds fresh and age seconds old, answer
 * req when its revalidation fails: the origin cannot be reached, times out
 * or answers 500/502/503/504 (RFC 9111 4.2.4, RFC 5861 4)? Not when the
 * stored response says must-revalidate, proxy-revalidate, s-maxage or an
 * unqualified no-cache; not when the request says no-cache (or Pragma:
 * no-cache without Cache-Control) or max-age=N below the age, unless the
 * request itself carries stale-if-error. The staleness allowed is the
 * largest of stale-if-error in the response, stale-if-error in the request
 * and max_stale (seconds; <= 0: none); the response must be stale by less
 * than that. Returns 1 (serve it) or 0.
 */
int pd_cache_policy_stale_on_error(const pd_http_msg *req, const pd_http_msg *stored,
                                   int64_t lifetime, int64_t age, int64_t max_stale);

/*
 * May a stored response, lifetime seconds fresh and age seconds old, answer
 * req at once, stale, while one background request revalidates it (RFC 5861
 * 3, stale-while-revalidate=N in the stored response)? Only when it is stale
 * (age >= lifetime) by at most N seconds; never when the stored response says
 * must-revalidate, proxy-revalidate, s-maxage (a shared cache must not serve
 * it stale, RFC 9111 4.2.4, 5.2.2.10) or an unqualified no-cache; never when
 * the request says no-cache (or Pragma: no-cache without Cache-Control),
 * max-age (whatever its value: without max-stale the client does not want a
 * stale response, 5.2.1.1), max-stale (the caller asks only when the
 * request's max-stale did not make the response acceptable, so it is
 * exceeded) or min-fresh. Returns 1 (serve it and revalidate in the background) or 0
 * (revalidate before answering).
 */
int pd_cache_policy_stale_while_revalidate(const pd_http_msg *req, const pd_http_msg *stored,
                                           int64_t lifetime, int64_t age);

/*
 * Does the 304 resp select stored (4.3.4)? Its strong ETag must equal the
 * stored one; else its Last-Modified must equal the stored one; a 304
 * without validators selects (we validated one stored response). 1 or 0.
 */
int pd_cache_policy_304_selects(const pd_http_msg *stored, const pd_http_msg *resp);

/*
 * Update stored's header fields from a 304 (or HEAD, 4.3.5) response (3.2):
 * every field of resp replaces all stored lines of the same name, except
 * Content-Length, the framing and hop-by-hop fields (Connection and the
 * fields it names, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade), Proxy-Authenticate/-Authentication-Info/
 * -Authorization (3.1), and Content-Encoding / Content-Range (the stored
 * body depends on them). Returns the number of fields updated, -1 ENOMEM.
 */
int pd_cache_policy_merge_304(pd_http_msg *stored, const pd_http_msg *resp);

/*
 * A client's own conditional GET/HEAD against a fresh stored response
 * (4.3.2, RFC 9110 13.1.2, 13.1.3, 13.2.2): If-None-Match (weak comparison,
 * "*" matches) decides when present; otherwise If-Modified-Since (invalid
 * date ignored) against Last-Modified, or Date when absent, or
 * response_time (when the stored response arrived) when both are. Returns
 * 304 (not modified) or 200 (send the stored response).
 */
int pd_cache_policy_client_cond(const pd_http_msg *req, const pd_http_msg *stored,
                                time_t response_time);

/* ---- Vary (Section 4.1) ---- */

#define PD_CP_VARY_STAR (-1)
#define PD_CP_VARY_NOSPACE (-2)

/*
 * The secondary key of req for a response carrying Vary: field names
 * lowercased, sorted and deduplicated; for each, "name:value\n" with all the
 * request's lines of that field joined by ',' and list members trimmed of
 * whitespace (values of Accept* fields lowercased, case-insensitive tokens);
 * an absent field gives "name\n" (absent differs from empty). Two requests
 * match a stored response when their keys are equal. Returns the length
 * written into buf (0: no Vary), PD_CP_VARY_STAR (Vary: * never matches),
 * or PD_CP_VARY_NOSPACE (cap too small).
 */
ssize_t pd_cache_policy_vary_key(const pd_http_msg *resp, const pd_http_msg *req, char *buf,
                                 size_t cap);

/* ---- invalidation (Section 4.4) ---- */

#define PD_CP_URL_MAX 4096

typedef struct pd_cp_invalidation {
    int n;
    char url[3][PD_CP_URL_MAX];     /* absolute URLs to invalidate */
} pd_cp_invalidation;

/*
 * After an unsafe request (any method but GET, HEAD, OPTIONS, TRACE) got a
 * non-error (2xx, 3xx) response, the cache invalidates the target URI
 * (target_url: the request's absolute URL, normalised by the caller) and the
 * URIs in Location and Content-Location when they have the same origin
 * (relative references resolved against target_url, without dot-segment
 * removal). Results are normalised by pd_url_parse + pd_url_format, like
 * cache keys; URLs pd_url refuses (https, malformed) are skipped. Returns
 * out->n (0..3).
 */
int pd_cache_policy_invalidations(const pd_http_msg *req, const pd_http_msg *resp,
                                  const char *target_url, pd_cp_invalidation *out);

/* ---- Range (RFC 9110 14) served from a complete stored response ---- */

typedef struct pd_range {
    uint64_t first, last;   /* inclusive, last < length */
} pd_range;

enum pd_range_result {
    PD_RANGE_IGNORE = 0,        /* no (usable) Range: send 200 with everything */
    PD_RANGE_OK,                /* *n ranges (>= 1) in out: send 206 */
    PD_RANGE_UNSATISFIABLE      /* send 416, Content-Range: bytes (asterisk)/length */
};

/*
 * Parse req's Range against a representation of `length` bytes (RFC 9110
 * 14.1.2, 14.2): only for GET, unit "bytes" only, a single Range line; a
 * syntax error (or first > last) ignores the whole field; suffix ranges
 * "-N" and open ranges "N-" are resolved; ranges starting at or after
 * length are dropped; none left: unsatisfiable. More than max ranges:
 * ignored (RFC 9110 14.2 lets a server ignore expensive range sets).
 */
enum pd_range_result pd_cache_policy_range(const pd_http_msg *req, uint64_t length,
                                           pd_range *out, size_t max, size_t *n);

/* If-Range (RFC 9110 13.1.5): 1 if the Range applies to stored (no If-Range,
 * or a strong ETag equal to stored's, or a date equal to stored's
 * Last-Modified), 0 if the whole response must be sent instead. */
int pd_cache_policy_if_range(const pd_http_msg *req, const pd_http_msg *stored);

#endif
