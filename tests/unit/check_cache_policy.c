/* Unit tests for cache_policy: tables of cases, each row citing the section
 * of RFC 9111 (or RFC 9110) that decides its expected result. Times are
 * around T0 = 1700000000 = Tue, 14 Nov 2023 22:13:20 GMT. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/cache_policy.h"
#include "check_run.h"

#define T0 1700000000
#define D0 "Tue, 14 Nov 2023 22:13:20 GMT"        /* T0 */
#define D_P1H "Tue, 14 Nov 2023 23:13:20 GMT"     /* T0 + 3600 */
#define D_M1H "Tue, 14 Nov 2023 21:13:20 GMT"     /* T0 - 3600 */
#define D_M100S "Tue, 14 Nov 2023 22:11:40 GMT"   /* T0 - 100 */
#define D_M10D "Sat, 04 Nov 2023 22:13:20 GMT"    /* T0 - 864000 */
#define D_M100D "Sun, 06 Aug 2023 22:13:20 GMT"   /* T0 - 8640000 */

/* Build a message from "Name: value\nName: value" lines. */
static void build(pd_http_msg *m, const char *method, int status, const char *hdrs)
{
    pd_http_msg_init(m);
    if (method) {
        m->is_request = 1;
        m->method = (pd_str){ method, strlen(method) };
        m->method_id = pd_method_id(m->method);
    }
    m->status = status;
    const char *p = hdrs ? hdrs : "";
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        ck_assert_ptr_nonnull(colon);
        char name[128];
        memcpy(name, p, (size_t)(colon - p));
        name[colon - p] = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        ck_assert_int_eq(pd_http_msg_add(m, name, v, (size_t)(p + len - v)), 0);
        p += len + (nl ? 1 : 0);
    }
}

/* The row's citation: RFC 9111 unless it names another RFC. */
static const char *cite(const char *sec)
{
    static char buf[256];
    snprintf(buf, sizeof(buf), "%s%s", strncmp(sec, "RFC", 3) == 0 ? "" : "RFC 9111 ", sec);
    return buf;
}

/* ---- storable (Section 3) ---- */

static pd_refresh_rule rule_ignore;

static const struct storable_case {
    const char *sec, *method, *reqh;
    int status;
    const char *resph;
    int rule; /* 1: refresh_pattern with ignore-no-store ignore-private */
    int expect;
} storable_cases[] = {
    { "3 + RFC 9110 15.1 (200 cacheable by default)", "GET", "", 200, "", 0, 1 },
    { "3 (GET only; HEAD freshens, 4.3.5)", "HEAD", "", 200, "Cache-Control: max-age=60", 0, 0 },
    { "3 (POST not cached by us)", "POST", "", 200, "Cache-Control: max-age=60", 0, 0 },
    { "3.3 (partial content not stored)", "GET", "", 206, "Cache-Control: max-age=60", 0, 0 },
    { "4.3.4 (304 is merged, not stored)", "GET", "", 304, "", 0, 0 },
    { "3 (1xx is not final)", "GET", "", 100, "", 0, 0 },
    { "3 (302 needs explicit freshness)", "GET", "", 302, "", 0, 0 },
    { "3 (302 with max-age)", "GET", "", 302, "Cache-Control: max-age=60", 0, 1 },
    { "3 (307 with Expires)", "GET", "", 307, "Expires: " D_P1H, 0, 1 },
    { "3 (500 not cacheable by default)", "GET", "", 500, "", 0, 0 },
    { "3 (201 not cacheable by default)", "GET", "", 201, "", 0, 0 },
    { "3 + RFC 9110 15.1 (404)", "GET", "", 404, "", 0, 1 },
    { "3 + RFC 9110 15.1 (410)", "GET", "", 410, "", 0, 1 },
    { "3 + RFC 9110 15.1 (301)", "GET", "", 301, "", 0, 1 },
    { "3 + RFC 9110 15.1 (204)", "GET", "", 204, "", 0, 1 },
    { "3 + RFC 9110 15.1 (501)", "GET", "", 501, "", 0, 1 },
    { "5.2.2.5 (no-store)", "GET", "", 200, "Cache-Control: no-store", 0, 0 },
    { "5.2 (directive names case-insensitive)", "GET", "", 200, "Cache-Control: max-age=60, NO-STORE", 0, 0 },
    { "5.2.1.5 (request no-store)", "GET", "Cache-Control: no-store", 200, "", 0, 0 },
    { "5.2.2.7 (private)", "GET", "", 200, "Cache-Control: private", 0, 0 },
    { "5.2.2.7 (qualified private: we do not store)", "GET", "", 200,
      "Cache-Control: private=\"Set-Cookie\", max-age=60", 0, 0 },
    { "3.5 (Authorization, plain max-age)", "GET", "Authorization: Basic eA==", 200,
      "Cache-Control: max-age=60", 0, 0 },
    { "3.5 (Authorization + s-maxage)", "GET", "Authorization: Basic eA==", 200,
      "Cache-Control: s-maxage=60", 0, 1 },
    { "3.5 (Authorization + public)", "GET", "Authorization: Basic eA==", 200, "Cache-Control: public", 0, 1 },
    { "3.5 (Authorization + must-revalidate)", "GET", "Authorization: Basic eA==", 200,
      "Cache-Control: must-revalidate, max-age=10", 0, 1 },
    { "5.2.2.3 (must-understand overrides no-store)", "GET", "", 200,
      "Cache-Control: must-understand, no-store", 0, 1 },
    { "5.2.2.3 (must-understand, status not understood)", "GET", "", 418,
      "Cache-Control: must-understand, no-store, max-age=60", 0, 0 },
    { "4.1 (Vary: * never matches)", "GET", "", 200, "Vary: *", 0, 0 },
    { "4.1 (Vary list containing *)", "GET", "", 200, "Vary: Accept-Encoding, *", 0, 0 },
    { "4.1 (Vary on a field is storable)", "GET", "", 200, "Vary: Accept-Encoding", 0, 1 },
    { "5.2.2.9 (public makes 302 storable)", "GET", "", 302, "Cache-Control: public", 0, 1 },
    { "5.2.2.4 (no-cache is storable)", "GET", "", 200, "Cache-Control: no-cache", 0, 1 },
    { "5.2.2.5 (Squid ignore-no-store)", "GET", "", 200, "Cache-Control: no-store", 1, 1 },
    { "5.2.2.7 (Squid ignore-private)", "GET", "", 200, "Cache-Control: private", 1, 1 },
};

START_TEST(test_storable)
{
    const struct storable_case *c = &storable_cases[_i];
    pd_http_msg req, resp;
    build(&req, c->method, 0, c->reqh);
    build(&resp, NULL, c->status, c->resph);
    rule_ignore.ignore_no_store = 1;
    rule_ignore.ignore_private = 1;
    const char *why = "x";
    int got = pd_cache_policy_storable(&req, &resp, c->rule ? &rule_ignore : NULL, &why);
    ck_assert_msg(got == c->expect, "%s: storable %d, want %d (%s)", cite(c->sec), got, c->expect,
                  why ? why : "");
    ck_assert(got ? why == NULL : why != NULL);
    pd_http_msg_free(&req);
    pd_http_msg_free(&resp);
}
END_TEST

/* ---- freshness lifetime (Section 4.2.1, 4.2.2) ---- */

static const pd_refresh_rule rules[] = {
    { .min = 0, .percent = 20, .max = 259200 },                         /* Squid default */
    { .min = 3600, .percent = 50, .max = 86400 },
    { .min = 600, .percent = 10, .max = 7200, .override_expire = 1 },
    { .min = 600, .percent = 10, .max = 7200, .override_lastmod = 1 },
};

static const struct lifetime_case {
    const char *sec;
    int status;
    const char *resph;
    int rule;           /* -1: NULL (built-in default) */
    time_t response_time;
    int64_t expect;
    enum pd_cp_source src;
} lifetime_cases[] = {
    { "4.2.1 (max-age)", 200, "Cache-Control: max-age=60", -1, T0, 60, PD_CP_SRC_MAXAGE },
    { "4.2.1 (s-maxage over max-age)", 200, "Cache-Control: s-maxage=120, max-age=60", -1, T0, 120,
      PD_CP_SRC_SMAXAGE },
    { "4.2.1 (max-age over Expires)", 200, "Cache-Control: max-age=60\nExpires: " D_P1H "\nDate: " D0, -1,
      T0, 60, PD_CP_SRC_MAXAGE },
    { "4.2.1 (Expires - Date)", 200, "Expires: " D_P1H "\nDate: " D0, -1, T0, 3600, PD_CP_SRC_EXPIRES },
    { "4.2.1 (Expires, no Date: time received)", 200, "Expires: " D_P1H, -1, T0, 3600, PD_CP_SRC_EXPIRES },
    { "4.2.1 (Expires, received later, no Date)", 200, "Expires: " D_P1H, -1, T0 + 600, 3000,
      PD_CP_SRC_EXPIRES },
    { "5.3 (invalid Expires is in the past)", 200, "Expires: 0\nDate: " D0, -1, T0, 0, PD_CP_SRC_INVALID },
    { "5.3 (Expires with runs of spaces is invalid)", 200, "Expires: Thu, 18  Aug  2050 02:01:18 GMT\nDate: " D0,
      -1, T0, 0, PD_CP_SRC_INVALID },
    { "5.3 (Expires with a one-digit hour is invalid)", 200, "Expires: Thu, 18 Aug 2050 2:01:18 GMT\nDate: " D0,
      -1, T0, 0, PD_CP_SRC_INVALID },
    { "5.3 (Expires in lowercase is valid)", 200, "Expires: tue, 14 nov 2023 23:13:20 gmt\nDate: " D0, -1, T0,
      3600, PD_CP_SRC_EXPIRES },
    { "5.3 (two Expires lines: invalid)", 200, "Expires: " D_P1H "\nExpires: " D_P1H "\nDate: " D0, -1, T0, 0,
      PD_CP_SRC_INVALID },
    { "5.3 (Expires list: invalid)", 200, "Expires: " D_P1H ", " D_P1H "\nDate: " D0, -1, T0, 0,
      PD_CP_SRC_INVALID },
    { "5.3 (Expires before Date)", 200, "Expires: " D_M1H "\nDate: " D0, -1, T0, 0, PD_CP_SRC_EXPIRES },
    { "1.2.2 (delta-seconds clamp to 2^31)", 200, "Cache-Control: max-age=99999999999", -1, T0,
      2147483648LL, PD_CP_SRC_MAXAGE },
    { "4.2.1 (invalid max-age: stale)", 200, "Cache-Control: max-age=abc", -1, T0, 0, PD_CP_SRC_INVALID },
    { "5.2 (quoted argument accepted)", 200, "Cache-Control: max-age=\"30\"", -1, T0, 30, PD_CP_SRC_MAXAGE },
    { "4.2.1 (first of duplicate directives)", 200, "Cache-Control: max-age=60\nCache-Control: max-age=10",
      -1, T0, 60, PD_CP_SRC_MAXAGE },
    { "4.2.1 (invalid s-maxage wins and is stale)", 200, "Cache-Control: s-maxage=-1, max-age=60", -1, T0,
      0, PD_CP_SRC_INVALID },
    { "4.2.2 (heuristic 20% of LM age)", 200, "Date: " D0 "\nLast-Modified: " D_M10D, -1, T0, 172800,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (heuristic capped by max)", 200, "Date: " D0 "\nLast-Modified: " D_M100D, -1, T0, 259200,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (no Last-Modified: min)", 200, "Date: " D0, -1, T0, 0, PD_CP_SRC_HEURISTIC },
    { "4.2.2 (no Last-Modified: rule min)", 200, "Date: " D0, 1, T0, 3600, PD_CP_SRC_HEURISTIC },
    { "4.2.2 (rule percent capped by rule max)", 200, "Date: " D0 "\nLast-Modified: " D_M10D, 1, T0, 86400,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (Squid: LM factor wins over min)", 200, "Date: " D0 "\nLast-Modified: " D_M100S, 1, T0, 50,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (override-lastmod raises to min)", 200, "Date: " D0 "\nLast-Modified: " D_M100S, 3, T0, 600,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (Last-Modified after Date: no heuristic freshness)", 200, "Date: " D0 "\nLast-Modified: " D_P1H,
      1, T0, 0, PD_CP_SRC_HEURISTIC },
    { "4.2.2 (Last-Modified equal to Date: none)", 200, "Date: " D0 "\nLast-Modified: " D0, 1, T0, 0,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (Last-Modified equal to Date, default rule)", 200, "Date: " D0 "\nLast-Modified: " D0, -1, T0, 0,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (override-lastmod: future LM gets min)", 200, "Date: " D0 "\nLast-Modified: " D_P1H, 3, T0, 600,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (recently modified: 20% of 100 s)", 200, "Date: " D0 "\nLast-Modified: " D_M100S, -1, T0, 20,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (recently modified: 20% of an hour)", 200, "Date: " D0 "\nLast-Modified: " D_M1H, -1, T0, 720,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (recently modified, no Date: from response_time)", 200, "Last-Modified: " D_M100S, -1, T0, 20,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (recently modified: percent, then max)", 200, "Date: " D0 "\nLast-Modified: " D_M1H, 2, T0, 360,
      PD_CP_SRC_HEURISTIC },
    { "4.2.2 (invalid Last-Modified: like none, min)", 200, "Date: " D0 "\nLast-Modified: yesterday", 1, T0,
      3600, PD_CP_SRC_HEURISTIC },
    { "4.2.2 (LM age from response_time without Date)", 200, "Last-Modified: " D_M10D, -1, T0, 172800,
      PD_CP_SRC_HEURISTIC },
    { "4.2.1 (override-expire raises explicit to min)", 200, "Cache-Control: max-age=60", 2, T0, 600,
      PD_CP_SRC_MAXAGE },
    { "4.2.2 (302: no heuristic)", 302, "Date: " D0 "\nLast-Modified: " D_M10D, -1, T0, 0, PD_CP_SRC_NONE },
    { "4.2.2 (public allows heuristic)", 302, "Cache-Control: public\nDate: " D0 "\nLast-Modified: " D_M10D,
      -1, T0, 172800, PD_CP_SRC_HEURISTIC },
    { "4.2.2 (404 heuristically cacheable)", 404, "Date: " D0 "\nLast-Modified: " D_M10D, -1, T0, 172800,
      PD_CP_SRC_HEURISTIC },
};

START_TEST(test_lifetime)
{
    const struct lifetime_case *c = &lifetime_cases[_i];
    pd_http_msg resp;
    build(&resp, NULL, c->status, c->resph);
    enum pd_cp_source src = 99;
    int64_t got = pd_cache_policy_lifetime(&resp, c->rule < 0 ? NULL : &rules[c->rule], c->response_time,
                                           &src);
    ck_assert_msg(got == c->expect, "%s: lifetime %lld, want %lld", cite(c->sec), (long long)got,
                  (long long)c->expect);
    ck_assert_msg(src == c->src, "%s: source %d, want %d", cite(c->sec), src, c->src);
    pd_http_msg_free(&resp);
}
END_TEST

/* ---- current age (Section 4.2.3, 5.1) ---- */

static const struct age_case {
    const char *sec, *resph;
    time_t req_t, resp_t, now;
    int64_t expect;
} age_cases[] = {
    { "4.2.3 (just received)", "Date: " D0, T0, T0, T0, 0 },
    { "4.2.3 (resident time)", "Date: " D0, T0, T0, T0 + 100, 100 },
    { "4.2.3 (apparent age)", "Date: " D_M100S, T0, T0, T0, 100 },
    { "4.2.3 (Age + resident)", "Date: " D0 "\nAge: 50", T0, T0, T0 + 10, 60 },
    { "4.2.3 (response delay)", "Date: " D0 "\nAge: 50", T0 - 5, T0, T0, 55 },
    { "4.2.3 (max of apparent and corrected)", "Date: " D_M100S "\nAge: 30", T0 - 2, T0, T0, 100 },
    { "5.1 (invalid Age ignored)", "Date: " D0 "\nAge: abc", T0, T0, T0 + 1, 1 },
    { "5.1 (negative Age ignored)", "Age: -5", T0, T0, T0, 0 },
    { "5.1 (list: first member)", "Age: 20, 30", T0, T0, T0, 20 },
    { "4.2.3 (no Date: response_time)", "Age: 7", T0, T0, T0 + 3, 10 },
    { "1.2.2 (huge Age clamps)", "Age: 99999999999", T0, T0, T0, 2147483648LL },
    { "4.2.3 (Date in the future: apparent 0)", "Date: " D_P1H, T0, T0, T0, 0 },
};

START_TEST(test_age)
{
    const struct age_case *c = &age_cases[_i];
    pd_http_msg resp;
    build(&resp, NULL, 200, c->resph);
    int64_t got = pd_cache_policy_age(&resp, c->req_t, c->resp_t, c->now);
    ck_assert_msg(got == c->expect, "%s: age %lld, want %lld", cite(c->sec), (long long)got,
                  (long long)c->expect);
    pd_http_msg_free(&resp);
}
END_TEST

/* ---- request directives and the lookup decision (4, 5.2.1, 5.4) ---- */

#define NONE ((const char *)-1)

static const struct decide_case {
    const char *sec, *reqh, *stored; /* stored NONE: lookup missed */
    int64_t life, age;
    enum pd_cp_decision expect;
} decide_cases[] = {
    { "4 (nothing stored)", "", NONE, 0, 0, PD_CP_MISS },
    { "5.2.1.7 (only-if-cached, nothing stored: 504)", "Cache-Control: only-if-cached", NONE, 0, 0,
      PD_CP_ONLY_IF_CACHED_FAIL },
    { "4.2 (fresh)", "", "", 100, 10, PD_CP_FRESH },
    { "4.2 (age == lifetime is stale)", "", "", 100, 100, PD_CP_STALE_REVALIDATE },
    { "4.2 (stale)", "", "", 100, 200, PD_CP_STALE_REVALIDATE },
    { "5.2.1.7 (only-if-cached, stale: 504)", "Cache-Control: only-if-cached", "", 100, 200,
      PD_CP_ONLY_IF_CACHED_FAIL },
    { "5.2.1.7 (only-if-cached, fresh)", "Cache-Control: only-if-cached", "", 100, 10, PD_CP_FRESH },
    { "5.2.1.4 (request no-cache)", "Cache-Control: no-cache", "", 100, 10, PD_CP_STALE_REVALIDATE },
    { "5.4 (Pragma: no-cache)", "Pragma: no-cache", "", 100, 10, PD_CP_STALE_REVALIDATE },
    { "5.4 (Pragma ignored with Cache-Control)", "Pragma: no-cache\nCache-Control: max-age=1000", "", 100, 10,
      PD_CP_FRESH },
    { "5.2.2.4 (response no-cache)", "", "Cache-Control: no-cache", 100, 10, PD_CP_STALE_REVALIDATE },
    { "5.2.2.4 (qualified no-cache only restricts fields)", "", "Cache-Control: no-cache=\"Set-Cookie\"", 100,
      10, PD_CP_FRESH },
    { "5.2.1.1 (max-age exceeded)", "Cache-Control: max-age=5", "", 100, 10, PD_CP_STALE_REVALIDATE },
    { "5.2.1.1 (max-age satisfied)", "Cache-Control: max-age=50", "", 100, 10, PD_CP_FRESH },
    { "5.2.1.1 (max-age=0)", "Cache-Control: max-age=0", "", 100, 1, PD_CP_STALE_REVALIDATE },
    { "5.2.1.3 (min-fresh not met)", "Cache-Control: min-fresh=50", "", 100, 60, PD_CP_STALE_REVALIDATE },
    { "5.2.1.3 (min-fresh met)", "Cache-Control: min-fresh=30", "", 100, 60, PD_CP_FRESH },
    { "5.2.1.2 (max-stale without value)", "Cache-Control: max-stale", "", 100, 1000, PD_CP_FRESH },
    { "5.2.1.2 (max-stale within)", "Cache-Control: max-stale=50", "", 100, 140, PD_CP_FRESH },
    { "5.2.1.2 (max-stale exceeded)", "Cache-Control: max-stale=50", "", 100, 160, PD_CP_STALE_REVALIDATE },
    { "5.2.2.2 (must-revalidate refuses max-stale)", "Cache-Control: max-stale",
      "Cache-Control: must-revalidate", 100, 1000, PD_CP_STALE_REVALIDATE },
    { "5.2.2.8 (proxy-revalidate refuses max-stale)", "Cache-Control: max-stale",
      "Cache-Control: proxy-revalidate", 100, 1000, PD_CP_STALE_REVALIDATE },
    { "5.2.2.10 (s-maxage refuses max-stale)", "Cache-Control: max-stale", "Cache-Control: s-maxage=100",
      100, 1000, PD_CP_STALE_REVALIDATE },
    { "5.2.1.5 (request no-store may be served)", "Cache-Control: no-store", "", 100, 10, PD_CP_FRESH },
    { "5.2.1.7 + 5.2.1.4 (only-if-cached, no-cache)", "Cache-Control: only-if-cached, no-cache", "", 100, 10,
      PD_CP_ONLY_IF_CACHED_FAIL },
};

START_TEST(test_decide)
{
    const struct decide_case *c = &decide_cases[_i];
    pd_http_msg req, stored;
    build(&req, "GET", 0, c->reqh);
    build(&stored, NULL, 200, c->stored == NONE ? "" : c->stored);
    enum pd_cp_decision got = pd_cache_policy_decide(&req, c->stored == NONE ? NULL : &stored, c->life, c->age);
    ck_assert_msg(got == c->expect, "%s: decision %d, want %d", cite(c->sec), got, c->expect);
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- serving stale when the revalidation fails (9111 4.2.4, 5861 4) ---- */

static const struct stale_case {
    const char *sec, *reqh, *stored;
    int64_t life, age, max_stale;
    int expect;
} stale_cases[] = {
    { "4.2.4 (within max_stale)", "", "", 10, 100, 3600, 1 },
    { "4.2.4 (beyond max_stale)", "", "", 10, 5000, 3600, 0 },
    { "4.2.4 (max_stale 0: never)", "", "", 10, 10, 0, 0 },
    { "5.2.2.2 (must-revalidate)", "", "Cache-Control: must-revalidate", 10, 20, 3600, 0 },
    { "5.2.2.8 (proxy-revalidate)", "", "Cache-Control: proxy-revalidate", 10, 20, 3600, 0 },
    { "5.2.2.10 (s-maxage)", "", "Cache-Control: s-maxage=10", 10, 20, 3600, 0 },
    { "5.2.2.4 (response no-cache)", "", "Cache-Control: no-cache", 10, 20, 3600, 0 },
    { "5.2.2.4 (qualified no-cache does not forbid)", "", "Cache-Control: no-cache=\"X\"", 10, 20, 3600, 1 },
    { "5.2.1.4 (request no-cache)", "Cache-Control: no-cache", "", 10, 20, 3600, 0 },
    { "5.4 (request Pragma: no-cache)", "Pragma: no-cache", "", 10, 20, 3600, 0 },
    { "5.2.1.1 (request max-age below the age)", "Cache-Control: max-age=5", "", 10, 20, 3600, 0 },
    { "5.2.1.1 (request max-age above the age)", "Cache-Control: max-age=50", "", 10, 20, 3600, 1 },
    { "5861 4 (response stale-if-error extends)", "", "Cache-Control: stale-if-error=600", 10, 300, 0, 1 },
    { "5861 4 (response stale-if-error exceeded)", "", "Cache-Control: stale-if-error=60", 10, 300, 0, 0 },
    { "5861 4 (request stale-if-error extends)", "Cache-Control: stale-if-error=600", "", 10, 300, 0, 1 },
    { "5861 4 (request stale-if-error beats its no-cache)", "Cache-Control: no-cache, stale-if-error=600",
      "", 10, 300, 0, 1 },
    { "5861 4 (stale-if-error under must-revalidate)", "", "Cache-Control: must-revalidate, stale-if-error=600",
      10, 300, 0, 0 },
};

START_TEST(test_stale_on_error)
{
    const struct stale_case *c = &stale_cases[_i];
    pd_http_msg req, stored;
    build(&req, "GET", 0, c->reqh);
    build(&stored, NULL, 200, c->stored);
    int got = pd_cache_policy_stale_on_error(&req, &stored, c->life, c->age, c->max_stale);
    ck_assert_msg(got == c->expect, "%s: %d, want %d", cite(c->sec), got, c->expect);
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- serving stale while revalidating in the background (5861 3) ---- */

#define SWR "Cache-Control: max-age=10, stale-while-revalidate=60"
static const struct swr_case {
    const char *sec, *reqh, *stored;
    int64_t life, age;
    int expect;
} swr_cases[] = {
    { "5861 3 (stale within the window)", "", SWR, 10, 30, 1 },
    { "5861 3 (stale by exactly N: up to N)", "", SWR, 10, 70, 1 },
    { "5861 3 (beyond the window)", "", SWR, 10, 71, 0 },
    { "5861 3 (just stale)", "", SWR, 10, 10, 1 },
    { "5861 3 (still fresh: not this)", "", SWR, 10, 9, 0 },
    { "5861 3 (no directive)", "", "Cache-Control: max-age=10", 10, 11, 0 },
    { "5861 3 (zero window)", "", "Cache-Control: max-age=10, stale-while-revalidate=0", 10, 10, 0 },
    { "5861 3 (invalid value)", "", "Cache-Control: max-age=10, stale-while-revalidate=soon", 10, 11, 0 },
    { "5861 3 (quoted value)", "", "Cache-Control: max-age=10, stale-while-revalidate=\"60\"", 10, 11, 1 },
    { "4.2.4 (heuristic lifetime counts the same)", "", "Cache-Control: stale-while-revalidate=60", 0, 5, 1 },
    { "5.2.2.2 (must-revalidate)", "", SWR ", must-revalidate", 10, 20, 0 },
    { "5.2.2.8 (proxy-revalidate)", "", SWR ", proxy-revalidate", 10, 20, 0 },
    { "5.2.2.10 (s-maxage)", "", "Cache-Control: s-maxage=10, stale-while-revalidate=60", 10, 20, 0 },
    { "5.2.2.4 (response no-cache)", "", SWR ", no-cache", 10, 20, 0 },
    { "5.2.2.4 (qualified no-cache does not forbid)", "", SWR ", no-cache=\"Set-Cookie\"", 10, 20, 1 },
    { "5.2.1.4 (request no-cache)", "Cache-Control: no-cache", SWR, 10, 20, 0 },
    { "5.4 (request Pragma: no-cache)", "Pragma: no-cache", SWR, 10, 20, 0 },
    { "5.4 (Pragma ignored beside Cache-Control)", "Pragma: no-cache\nCache-Control: no-transform", SWR,
      10, 20, 1 },
    { "5.2.1.1 (request max-age=0)", "Cache-Control: max-age=0", SWR, 10, 20, 0 },
    { "5.2.1.1 (request max-age=0 at age 0)", "Cache-Control: max-age=0",
      "Cache-Control: max-age=0, stale-while-revalidate=60", 0, 0, 0 },
    { "5.2.1.1 (request max-age below the age)", "Cache-Control: max-age=15", SWR, 10, 20, 0 },
    { "5.2.1.1 (request max-age above the age: still no stale)", "Cache-Control: max-age=50", SWR,
      10, 20, 0 },
    { "5.2.1.3 (request min-fresh)", "Cache-Control: min-fresh=0", SWR, 10, 20, 0 },
    { "5.2.1.2 (request max-stale exceeded)", "Cache-Control: max-stale=5", SWR, 10, 30, 0 },
    { "5.2.1 (other request directives do not matter)", "Cache-Control: no-transform", SWR, 10, 30, 1 },
};

START_TEST(test_stale_while_revalidate)
{
    const struct swr_case *c = &swr_cases[_i];
    pd_http_msg req, stored;
    build(&req, "GET", 0, c->reqh);
    build(&stored, NULL, 200, c->stored);
    int got = pd_cache_policy_stale_while_revalidate(&req, &stored, c->life, c->age);
    ck_assert_msg(got == c->expect, "%s: %d, want %d", cite(c->sec), got, c->expect);
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- validation request (4.3.1) ---- */

static const struct cond_case {
    const char *sec, *stored, *client;
    int expect_n;
    const char *inm, *ims;
} cond_cases[] = {
    { "4.3.1 (ETag and Last-Modified)", "ETag: \"abc\"\nLast-Modified: " D_M10D, "", 2, "\"abc\"", D_M10D },
    { "4.3.1 (weak ETag sent as is)", "ETag: W/\"abc\"", "", 1, "W/\"abc\"", NULL },
    { "4.3.1 (Last-Modified only)", "Last-Modified: " D_M10D, "", 1, NULL, D_M10D },
    { "4.3.1 (no validators)", "", "", 0, NULL, NULL },
    { "4.3.1 (client validators replaced)", "ETag: \"v2\"", "If-None-Match: \"mine\"\nIf-Modified-Since: " D0,
      1, "\"v2\"", NULL },
    { "4.3.1 (invalid Last-Modified not used)", "Last-Modified: yesterday", "", 0, NULL, NULL },
};

START_TEST(test_conditional)
{
    const struct cond_case *c = &cond_cases[_i];
    pd_http_msg req, stored;
    build(&req, "GET", 0, c->client);
    build(&stored, NULL, 200, c->stored);
    ck_assert_int_eq(pd_cache_policy_conditional(&req, &stored), c->expect_n);
    const pd_header *h = pd_http_msg_find(&req, "If-None-Match");
    if (c->inm) {
        ck_assert_msg(h && pd_str_eq_ci(h->value, c->inm), "%s: If-None-Match", cite(c->sec));
        ck_assert_ptr_null(pd_http_msg_find_next(&req, h));
    } else {
        ck_assert_msg(h == NULL, "%s: unexpected If-None-Match", cite(c->sec));
    }
    h = pd_http_msg_find(&req, "If-Modified-Since");
    if (c->ims)
        ck_assert_msg(h && pd_str_eq_ci(h->value, c->ims), "%s: If-Modified-Since", cite(c->sec));
    else
        ck_assert_msg(h == NULL, "%s: unexpected If-Modified-Since", cite(c->sec));
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- 304: selection (4.3.4) and header update (3.2) ---- */

static const struct sel_case {
    const char *sec, *stored, *resp;
    int expect;
} sel_cases[] = {
    { "4.3.4 (strong ETag equal)", "ETag: \"a\"", "ETag: \"a\"", 1 },
    { "4.3.4 (strong ETag differs)", "ETag: \"a\"", "ETag: \"b\"", 0 },
    { "4.3.4 (strong validator vs weak stored)", "ETag: W/\"a\"", "ETag: \"a\"", 0 },
    { "4.3.4 (Last-Modified equal)", "Last-Modified: " D_M10D, "Last-Modified: " D_M10D, 1 },
    { "4.3.4 (Last-Modified differs)", "Last-Modified: " D_M10D, "Last-Modified: " D0, 0 },
    { "4.3.4 (no validator in 304)", "ETag: \"a\"", "", 1 },
};

START_TEST(test_304_selects)
{
    const struct sel_case *c = &sel_cases[_i];
    pd_http_msg stored, resp;
    build(&stored, NULL, 200, c->stored);
    build(&resp, NULL, 304, c->resp);
    ck_assert_msg(pd_cache_policy_304_selects(&stored, &resp) == c->expect, "%s", cite(c->sec));
    pd_http_msg_free(&stored);
    pd_http_msg_free(&resp);
}
END_TEST

static const struct merge_case {
    const char *sec, *stored, *resp;
    const char *checks; /* "Name=v1|v2;Name=" (empty: absent) */
} merge_cases[] = {
    { "3.2 (update, never Content-Length)", "Content-Length: 100\nCache-Control: max-age=10\nETag: \"a\"",
      "Cache-Control: max-age=600\nContent-Length: 0", "Cache-Control=max-age=600;Content-Length=100;ETag=\"a\"" },
    { "3.2 (replace and add)", "Date: " D_M1H "\nX-A: 1", "Date: " D0 "\nX-B: 2", "Date=" D0 ";X-A=1;X-B=2" },
    { "3.2 (all stored lines of a name replaced)", "Link: <a>\nLink: <b>", "Link: <c>", "Link=<c>" },
    { "3.1 (hop-by-hop and Connection-named fields)", "X-K: 1",
      "Connection: X-K\nX-K: 2\nKeep-Alive: 5\nTransfer-Encoding: chunked",
      "X-K=1;Keep-Alive=;Transfer-Encoding=;Connection=" },
    { "3.2 (stored body depends on Content-Encoding)", "Content-Encoding: gzip", "Content-Encoding: br",
      "Content-Encoding=gzip" },
    { "3.2 (several lines of one name copied)", "X-Old: 1", "Set-X: a\nSet-X: b", "Set-X=a|b;X-Old=1" },
};

START_TEST(test_merge_304)
{
    const struct merge_case *c = &merge_cases[_i];
    pd_http_msg stored, resp;
    build(&stored, NULL, 200, c->stored);
    build(&resp, NULL, 304, c->resp);
    ck_assert_int_ge(pd_cache_policy_merge_304(&stored, &resp), 0);
    char checks[512];
    snprintf(checks, sizeof(checks), "%s", c->checks);
    for (char *save, *chk = strtok_r(checks, ";", &save); chk; chk = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(chk, '=');
        *eq = '\0';
        char got[256] = "";
        for (const pd_header *h = pd_http_msg_find(&stored, chk); h; h = pd_http_msg_find_next(&stored, h)) {
            if (got[0])
                strcat(got, "|");
            strncat(got, h->value.p, h->value.len);
        }
        ck_assert_msg(strcmp(got, eq + 1) == 0, "%s: %s is '%s', want '%s'", cite(c->sec), chk, got,
                      eq + 1);
    }
    pd_http_msg_free(&stored);
    pd_http_msg_free(&resp);
}
END_TEST

/* ---- the client's own conditional request (4.3.2) ---- */

static const struct ccond_case {
    const char *sec, *method, *reqh, *stored;
    int expect;
} ccond_cases[] = {
    { "4.3.2 + RFC 9110 13.1.2 (If-None-Match equal)", "GET", "If-None-Match: \"a\"", "ETag: \"a\"", 304 },
    { "RFC 9110 13.1.2 (weak comparison)", "GET", "If-None-Match: W/\"a\"", "ETag: \"a\"", 304 },
    { "RFC 9110 13.1.2 (list)", "GET", "If-None-Match: \"b\", \"a\"", "ETag: \"a\"", 304 },
    { "RFC 9110 13.1.2 (no match)", "GET", "If-None-Match: \"b\"", "ETag: \"a\"", 200 },
    { "RFC 9110 13.1.2 (star)", "GET", "If-None-Match: *", "ETag: \"a\"", 304 },
    { "RFC 9110 13.2.2 (If-None-Match wins over IMS)", "GET", "If-None-Match: \"b\"\nIf-Modified-Since: " D0,
      "ETag: \"a\"\nLast-Modified: " D_M10D, 200 },
    { "RFC 9110 13.1.3 (not modified since)", "GET", "If-Modified-Since: " D0, "Last-Modified: " D_M10D, 304 },
    { "RFC 9110 13.1.3 (modified since)", "GET", "If-Modified-Since: " D_M100D, "Last-Modified: " D_M10D, 200 },
    { "RFC 9110 13.1.3 (equal date)", "GET", "If-Modified-Since: " D_M10D, "Last-Modified: " D_M10D, 304 },
    { "RFC 9110 13.1.3 (invalid date ignored)", "GET", "If-Modified-Since: garbage", "Last-Modified: " D_M10D,
      200 },
    { "4.3.2 (Date when no Last-Modified)", "GET", "If-Modified-Since: " D0, "Date: " D_M1H, 304 },
    { "4.3.2 (no Date: time received, IMS later)", "GET", "If-Modified-Since: " D_P1H, "", 304 },
    { "4.3.2 (no Date: time received, IMS equal)", "GET", "If-Modified-Since: " D0, "", 304 },
    { "4.3.2 (no Date: time received, IMS earlier)", "GET", "If-Modified-Since: " D_M1H, "", 200 },
    { "4.3.2 (Date, IMS earlier)", "GET", "If-Modified-Since: " D_M1H, "Date: " D0, 200 },
    { "4.3.2 (Date, IMS equal)", "GET", "If-Modified-Since: " D0, "Date: " D0, 304 },
    { "4.3.2 (Last-Modified before Date decides)", "GET", "If-Modified-Since: " D_M1H,
      "Date: " D0 "\nLast-Modified: " D_M10D, 304 },
    { "RFC 9110 13.1.3 (IMS list is no date)", "GET", "If-Modified-Since: " D0 ", " D0, "Date: " D_M1H, 200 },
    { "RFC 9110 13.1.3 (IMS with runs of spaces ignored)", "GET",
      "If-Modified-Since: Tue, 14  Nov 2023 22:13:20 GMT", "Date: " D_M1H, 200 },
    { "RFC 9110 13.1.2 (HEAD)", "HEAD", "If-None-Match: \"a\"", "ETag: \"a\"", 304 },
    { "RFC 9110 13.1.2 (not for POST)", "POST", "If-None-Match: \"a\"", "ETag: \"a\"", 200 },
    { "4.3.2 (unconditional)", "GET", "", "ETag: \"a\"", 200 },
};

START_TEST(test_client_cond)
{
    const struct ccond_case *c = &ccond_cases[_i];
    pd_http_msg req, stored;
    build(&req, c->method, 0, c->reqh);
    build(&stored, NULL, 200, c->stored);
    int got = pd_cache_policy_client_cond(&req, &stored, T0);
    ck_assert_msg(got == c->expect, "%s: %d, want %d", cite(c->sec), got, c->expect);
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- Vary (4.1) ---- */

static const struct vary_case {
    const char *sec, *resp_a, *resp_b; /* resp_b NULL: same as resp_a */
    const char *req_a, *req_b;
    int expect; /* 1 same key, 0 different, -1 Vary: * */
} vary_cases[] = {
    { "4.1 (no Vary: one response for all)", "", NULL, "Accept-Encoding: gzip", "Accept-Encoding: br", 1 },
    { "4.1 (varied field differs)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip",
      "Accept-Encoding: br", 0 },
    { "4.1 (whitespace normalised)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip, br",
      "Accept-Encoding: gzip,br", 1 },
    { "4.1 (case-insensitive tokens)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: GZIP",
      "Accept-Encoding: gzip", 1 },
    { "4.1 (lines combined)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip\nAccept-Encoding: br",
      "Accept-Encoding: gzip, br", 1 },
    { "4.1 (absent differs from empty)", "Vary: X-A", NULL, "", "X-A: ", 0 },
    { "4.1 (absent in both matches)", "Vary: X-A", NULL, "", "", 1 },
    { "4.1 (Vary names: order and case)", "Vary: Accept-Encoding, X-Lang", "Vary: x-lang, accept-encoding",
      "X-Lang: en\nAccept-Encoding: gzip", "X-Lang: en\nAccept-Encoding: gzip", 1 },
    { "4.1 (Vary: *)", "Vary: *", NULL, "", "", -1 },
    { "4.1 (fields not named by Vary ignored)", "Vary: Accept-Encoding", NULL,
      "Accept-Encoding: gzip\nUser-Agent: a", "Accept-Encoding: gzip\nUser-Agent: b", 1 },
    { "4.1 (case-sensitive field keeps case)", "Vary: X-Token", NULL, "X-Token: Abc", "X-Token: abc", 0 },
    { "4.1 (parameter whitespace)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip;q=1.0",
      "Accept-Encoding: gzip ; q=1.0", 1 },
    /* Accept-Encoding / Accept-Language as sets (RFC 9110 12.5.3, 12.5.4) */
    { "4.1 + RFC 9110 12.5.3 (order of members)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip, br",
      "Accept-Encoding: br, gzip", 1 },
    { "4.1 + RFC 9110 12.5.3 (order, case, space)", "Vary: Accept-Encoding", NULL,
      "Accept-Encoding: gzip, deflate, br", "Accept-Encoding:  BR,Deflate ,  GZip", 1 },
    { "4.1 + RFC 9110 12.4.2 (q=1, q=1.0, no q)", "Vary: Accept-Encoding", NULL,
      "Accept-Encoding: gzip;q=1, br;q=1.000", "Accept-Encoding: br, gzip", 1 },
    { "4.1 + RFC 9110 12.4.2 (q=0.50 is q=0.5)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip;q=0.50",
      "Accept-Encoding: gzip;Q=0.5", 1 },
    { "4.1 + RFC 9110 12.4.2 (q=0 and q=0.000)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: br;q=0",
      "Accept-Encoding: br;q=0.000", 1 },
    { "4.1 + RFC 9110 12.4.2 (other weights differ)", "Vary: Accept-Encoding", NULL,
      "Accept-Encoding: gzip;q=0.5", "Accept-Encoding: gzip;q=0.8", 0 },
    { "4.1 + RFC 9110 12.4.2 (q=0 differs from q=1)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: br;q=0",
      "Accept-Encoding: br", 0 },
    { "4.1 (a member more differs)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip, br",
      "Accept-Encoding: gzip", 0 },
    { "4.1 (invalid q kept as written)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip;q=1.5",
      "Accept-Encoding: gzip", 0 },
    { "4.1 (empty members dropped)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: gzip,, br,",
      "Accept-Encoding: br, gzip", 1 },
    { "4.1 + RFC 9110 12.5.4 (languages: order, case, q)", "Vary: Accept-Language", NULL,
      "Accept-Language: en-US, de;q=0.50, fr;q=0.7", "Accept-Language: FR; q=0.700,de;q=0.5,en-us;q=1.0", 1 },
    { "4.1 + RFC 9110 12.5.4 (languages differ)", "Vary: Accept-Language", NULL, "Accept-Language: en",
      "Accept-Language: de", 0 },
    { "4.1 (lines joined, then sorted)", "Vary: Accept-Language", NULL, "Accept-Language: de\nAccept-Language: en",
      "Accept-Language: en, de", 1 },
    { "4.1 (empty value differs from absent)", "Vary: Accept-Encoding", NULL, "Accept-Encoding: ", "", 0 },
};

START_TEST(test_vary)
{
    const struct vary_case *c = &vary_cases[_i];
    pd_http_msg ra, rb, qa, qb;
    build(&ra, NULL, 200, c->resp_a);
    build(&rb, NULL, 200, c->resp_b ? c->resp_b : c->resp_a);
    build(&qa, "GET", 0, c->req_a);
    build(&qb, "GET", 0, c->req_b);
    char ka[512], kb[512];
    ssize_t la = pd_cache_policy_vary_key(&ra, &qa, ka, sizeof(ka));
    ssize_t lb = pd_cache_policy_vary_key(&rb, &qb, kb, sizeof(kb));
    if (c->expect < 0) {
        ck_assert_msg(la == PD_CP_VARY_STAR && lb == PD_CP_VARY_STAR, "%s", cite(c->sec));
    } else {
        ck_assert_msg(la >= 0 && lb >= 0, "%s: error", cite(c->sec));
        int same = la == lb && memcmp(ka, kb, (size_t)la) == 0;
        ck_assert_msg(same == c->expect, "%s: keys '%.*s' / '%.*s'", cite(c->sec), (int)la, ka, (int)lb, kb);
    }
    /* a buffer one byte short is reported, never overrun */
    if (la > 0) {
        char small[512];
        ck_assert_int_eq(pd_cache_policy_vary_key(&ra, &qa, small, (size_t)la - 1), PD_CP_VARY_NOSPACE);
    }
    pd_http_msg_free(&ra);
    pd_http_msg_free(&rb);
    pd_http_msg_free(&qa);
    pd_http_msg_free(&qb);
}
END_TEST

/* ---- invalidation (4.4) ---- */

static const struct inval_case {
    const char *sec, *method;
    int status;
    const char *target, *resph, *expect; /* URLs separated by spaces */
} inval_cases[] = {
    { "4.4 (unsafe method, target)", "POST", 200, "http://a.example/x", "", "http://a.example/x" },
    { "4.4 (safe method)", "GET", 200, "http://a.example/x", "", "" },
    { "4.4 (error status)", "POST", 500, "http://a.example/x", "", "" },
    { "4.4 (4xx is an error)", "DELETE", 404, "http://a.example/x", "", "" },
    { "4.4 (3xx is not)", "DELETE", 301, "http://a.example/x", "", "http://a.example/x" },
    { "4.4 (Location, same origin)", "POST", 201, "http://a.example/x", "Location: http://A.example/y",
      "http://a.example/x http://a.example/y" },
    { "4.4 (Location, other host)", "POST", 201, "http://a.example/x", "Location: http://b.example/y",
      "http://a.example/x" },
    { "4.4 (Content-Location relative path)", "PUT", 200, "http://a.example/dir/x", "Content-Location: y",
      "http://a.example/dir/x http://a.example/dir/y" },
    { "4.4 (absolute-path reference)", "PATCH", 204, "http://a.example/x", "Location: /z?q=1",
      "http://a.example/x http://a.example/z?q=1" },
    { "4.4 (other port)", "POST", 302, "http://a.example/x", "Location: http://a.example:8080/y",
      "http://a.example/x" },
    { "4.4 (explicit default port is the same origin)", "POST", 303, "http://a.example/x",
      "Location: http://a.example:80/y", "http://a.example/x http://a.example/y" },
    { "4.4 (unknown method counts as unsafe)", "PROPFIND", 207, "http://a.example/x", "", "http://a.example/x" },
    { "4.4 (other scheme)", "POST", 200, "http://a.example/x", "Content-Location: https://a.example/x",
      "http://a.example/x" },
    { "4.4 (network-path reference)", "POST", 201, "http://a.example/x", "Location: //a.example/n",
      "http://a.example/x http://a.example/n" },
    { "4.4 (both headers, duplicates once)", "PUT", 200, "http://a.example:8080/x",
      "Location: http://a.example:8080/x\nContent-Location: /c", "http://a.example:8080/x http://a.example:8080/c" },
    { "4.4 (origin compared after normalisation)", "POST", 201, "http://127.0.0.1/x",
      "Location: http://0x7f.0.0.1/y", "http://127.0.0.1/x http://127.0.0.1/y" },
    { "4.4 (host trailing dot and case)", "POST", 201, "http://a.example/x", "Location: http://A.EXAMPLE./y",
      "http://a.example/x http://a.example/y" },
};

START_TEST(test_invalidation)
{
    const struct inval_case *c = &inval_cases[_i];
    pd_http_msg req, resp;
    build(&req, c->method, 0, "");
    build(&resp, NULL, c->status, c->resph);
    static pd_cp_invalidation out;
    int n = pd_cache_policy_invalidations(&req, &resp, c->target, &out);
    char got[1024] = "";
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(got, " ");
        strcat(got, out.url[i]);
    }
    ck_assert_int_eq(n, out.n);
    ck_assert_msg(strcmp(got, c->expect) == 0, "%s: '%s', want '%s'", cite(c->sec), got, c->expect);
    pd_http_msg_free(&req);
    pd_http_msg_free(&resp);
}
END_TEST

/* ---- Range (RFC 9110 14) ---- */

static const struct range_case {
    const char *sec, *method, *range;
    uint64_t length;
    size_t max;
    enum pd_range_result expect;
    const char *ranges;
} range_cases[] = {
    { "RFC 9110 14.1.2 (first-last)", "GET", "bytes=0-99", 1000, 8, PD_RANGE_OK, "0-99" },
    { "RFC 9110 14.1.2 (open)", "GET", "bytes=900-", 1000, 8, PD_RANGE_OK, "900-999" },
    { "RFC 9110 14.1.2 (suffix)", "GET", "bytes=-100", 1000, 8, PD_RANGE_OK, "900-999" },
    { "RFC 9110 14.1.2 (suffix longer than length)", "GET", "bytes=-2000", 1000, 8, PD_RANGE_OK, "0-999" },
    { "RFC 9110 14.1.2 (last clipped)", "GET", "bytes=500-5000", 1000, 8, PD_RANGE_OK, "500-999" },
    { "RFC 9110 14.1.2 (multiple)", "GET", "bytes=0-0,-1", 1000, 8, PD_RANGE_OK, "0-0,999-999" },
    { "RFC 9110 14.1.2 (whitespace)", "GET", "bytes= 0-9 , 20-29", 100, 8, PD_RANGE_OK, "0-9,20-29" },
    { "RFC 9110 15.5.17 (unsatisfiable)", "GET", "bytes=1000-", 1000, 8, PD_RANGE_UNSATISFIABLE, "" },
    { "RFC 9110 14.1.2 (unsatisfiable member dropped)", "GET", "bytes=0-9,5000-6000", 1000, 8, PD_RANGE_OK,
      "0-9" },
    { "RFC 9110 14.1.2 (first > last: invalid)", "GET", "bytes=10-5", 1000, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.1 (unknown unit)", "GET", "items=0-5", 1000, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.2 (GET only)", "HEAD", "bytes=0-9", 1000, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.1.2 (syntax error)", "GET", "bytes=abc", 1000, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.1.2 (suffix of 0)", "GET", "bytes=-0", 1000, 8, PD_RANGE_UNSATISFIABLE, "" },
    { "RFC 9110 14.2 (too many ranges ignored)", "GET", "bytes=0-1,2-3,4-5", 1000, 2, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.2 (no Range)", "GET", NULL, 1000, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.1.2 (empty representation)", "GET", "bytes=0-", 0, 8, PD_RANGE_UNSATISFIABLE, "" },
    { "RFC 9110 14.1 (unit case-insensitive)", "GET", "Bytes=0-0", 10, 8, PD_RANGE_OK, "0-0" },
    { "RFC 9110 14.1.2 (empty set)", "GET", "bytes=", 10, 8, PD_RANGE_IGNORE, "" },
    { "RFC 9110 14.1.2 (overflowing number)", "GET", "bytes=0-99999999999999999999999", 10, 8,
      PD_RANGE_IGNORE, "" },
};

START_TEST(test_range)
{
    const struct range_case *c = &range_cases[_i];
    pd_http_msg req;
    char h[128] = "";
    if (c->range)
        snprintf(h, sizeof(h), "Range: %s", c->range);
    build(&req, c->method, 0, h);
    pd_range out[8];
    size_t n = 99;
    enum pd_range_result got = pd_cache_policy_range(&req, c->length, out, c->max, &n);
    ck_assert_msg(got == c->expect, "%s: result %d, want %d", cite(c->sec), got, c->expect);
    char s[256] = "";
    for (size_t i = 0; got == PD_RANGE_OK && i < n; i++)
        snprintf(s + strlen(s), sizeof(s) - strlen(s), "%s%llu-%llu", i ? "," : "",
                 (unsigned long long)out[i].first, (unsigned long long)out[i].last);
    ck_assert_msg(strcmp(s, c->ranges) == 0, "%s: ranges '%s', want '%s'", c->sec, s, c->ranges);
    if (got != PD_RANGE_OK)
        ck_assert_uint_eq(n, 0);
    pd_http_msg_free(&req);
}
END_TEST

static const struct ifrange_case {
    const char *sec, *reqh, *stored;
    int expect;
} ifrange_cases[] = {
    { "RFC 9110 13.1.5 (no If-Range)", "", "ETag: \"a\"", 1 },
    { "RFC 9110 13.1.5 (strong ETag equal)", "If-Range: \"a\"", "ETag: \"a\"", 1 },
    { "RFC 9110 13.1.5 (weak never matches)", "If-Range: W/\"a\"", "ETag: W/\"a\"", 0 },
    { "RFC 9110 13.1.5 (ETag differs)", "If-Range: \"b\"", "ETag: \"a\"", 0 },
    { "RFC 9110 13.1.5 (date equals Last-Modified)", "If-Range: " D_M10D, "Last-Modified: " D_M10D, 1 },
    { "RFC 9110 13.1.5 (date differs)", "If-Range: " D0, "Last-Modified: " D_M10D, 0 },
};

START_TEST(test_if_range)
{
    const struct ifrange_case *c = &ifrange_cases[_i];
    pd_http_msg req, stored;
    build(&req, "GET", 0, c->reqh);
    build(&stored, NULL, 200, c->stored);
    ck_assert_msg(pd_cache_policy_if_range(&req, &stored) == c->expect, "%s", c->sec);
    pd_http_msg_free(&req);
    pd_http_msg_free(&stored);
}
END_TEST

/* ---- HTTP-date (RFC 9110 5.6.7) ---- */

static const struct date_case {
    const char *sec, *s;
    time_t expect; /* -1: invalid */
} date_cases[] = {
    { "RFC 9110 5.6.7 (IMF-fixdate)", "Sun, 06 Nov 1994 08:49:37 GMT", 784111777 },
    { "RFC 9110 5.6.7 (RFC 850)", "Sunday, 06-Nov-94 08:49:37 GMT", 784111777 },
    { "RFC 9110 5.6.7 (asctime)", "Sun Nov  6 08:49:37 1994", 784111777 },
    { "RFC 9110 5.6.7 (T0)", D0, T0 },
    { "RFC 9110 5.6.7 (not GMT)", "Sun, 06 Nov 1994 08:49:37 UTC", -1 },
    { "5.3 (the classic Expires: 0)", "0", -1 },
    { "RFC 9110 5.6.7 (day out of range)", "Sun, 32 Nov 1994 08:49:37 GMT", -1 },
    { "RFC 9110 5.6.7 (bad month)", "Sun, 06 Foo 1994 08:49:37 GMT", -1 },
    { "RFC 9110 5.6.7 (trailing junk)", "Sun, 06 Nov 1994 08:49:37 GMTx", -1 },
    { "RFC 9110 5.6.7 (letter in the year)", "Sun, 06 Nov 19x4 08:49:37 GMT", -1 },
    { "RFC 9110 5.6.7 (wrong weekday name)", "Sux, 06 Nov 1994 08:49:37 GMT", -1 },
    { "RFC 9110 5.6.7 (leap day)", "Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 },
    /* names and GMT in any case (recipients accept it) */
    { "RFC 9110 5.6.7 (lowercase names)", "sun, 06 nov 1994 08:49:37 gmt", 784111777 },
    { "RFC 9110 5.6.7 (uppercase names)", "SUN, 06 NOV 1994 08:49:37 GMT", 784111777 },
    { "RFC 9110 5.6.7 (RFC 850, mixed case)", "SUNDAY, 06-nov-94 08:49:37 Gmt", 784111777 },
    { "RFC 9110 5.6.7 (asctime, lowercase)", "sun nov  6 08:49:37 1994", 784111777 },
    { "RFC 9110 5.6.7 (asctime, 2DIGIT day)", "Wed Nov 16 08:49:37 1994", 784975777 },
    { "RFC 9110 5.6.7 (RFC 850, year 2049)", "Wednesday, 18-Aug-49 02:01:18 GMT", 2512864878 },
    /* not in the grammar */
    { "RFC 9110 5.6.7 (runs of spaces)", "Thu, 18  Aug  2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (one-digit hour)", "Thu, 18 Aug 2050 2:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (one-digit day)", "Thu, 8 Aug 2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (two-digit year in IMF-fixdate)", "Thu, 18 Aug 50 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (no space after comma)", "Thu,18 Aug 2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (one-digit minute)", "Thu, 18 Aug 2050 02:1:18 GMT", -1 },
    { "RFC 9110 5.6.7 (hour 24)", "Thu, 18 Aug 2050 24:00:00 GMT", -1 },
    { "RFC 9110 5.6.7 (minute 60)", "Thu, 18 Aug 2050 23:60:00 GMT", -1 },
    { "RFC 9110 5.6.7 (sign in a number)", "Thu, +8 Aug 2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (full day name in IMF-fixdate)", "Thursday, 18 Aug 2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (short day name in RFC 850)", "Thu, 18-Aug-50 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (RFC 850, four-digit year)", "Thursday, 18-Aug-2050 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (RFC 850, runs of spaces)", "Thursday,  18-Aug-50 02:01:18 GMT", -1 },
    { "RFC 9110 5.6.7 (asctime, 0-padded day is fine)", "Sun Nov 06 08:49:37 1994", 784111777 },
    { "RFC 9110 5.6.7 (asctime, one space before a one-digit day)", "Sun Nov 6 08:49:37 1994", -1 },
    { "RFC 9110 5.6.7 (asctime, trailing GMT)", "Sun Nov  6 08:49:37 1994 GMT", -1 },
    { "RFC 9110 5.6.7 (asctime, two-digit year)", "Sun Nov  6 08:49:37   94", -1 },
    { "RFC 9110 5.6.7 (a list of two dates)", "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
      -1 },
    { "RFC 9110 5.6.7 (empty)", "", -1 },
    { "RFC 9110 5.6.7 (weekday only)", "Sun,", -1 },
    { "RFC 9110 5.6.7 (tab instead of space)", "Sun,\t06 Nov 1994 08:49:37 GMT", -1 },
    { "RFC 9110 5.6.7 (year before 1900 refused)", "Mon, 01 Jan 1894 00:00:00 GMT", -1 },
};

START_TEST(test_dates)
{
    const struct date_case *c = &date_cases[_i];
    time_t t = 12345;
    int rc = pd_cache_policy_parse_date((pd_str){ c->s, strlen(c->s) }, &t);
    if (c->expect < 0)
        ck_assert_msg(rc == -1 && t == 12345, "%s: accepted '%s'", c->sec, c->s);
    else
        ck_assert_msg(rc == 0 && t == c->expect, "%s: '%s' -> %lld", c->sec, c->s, (long long)t);
}
END_TEST

/* Every day from 1900 to 2400, at a varying time of day, formatted by libc
 * as IMF-fixdate, RFC 850 and asctime, parses back to the instant libc says. */
START_TEST(test_dates_round_trip)
{
    for (int64_t t = -2208988800LL; t < 13569465600LL; t += 86400 * 7 + 3671) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char b[64];
        const char *fmts[] = { "%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                               "%a %b %e %H:%M:%S %Y" };
        for (int f = 0; f < 3; f++) {
            if (f == 1 && (tm.tm_year < 70 || tm.tm_year >= 170))
                continue; /* two-digit years read as 1970..2069 */
            strftime(b, sizeof b, fmts[f], &tm);
            time_t got = 0;
            ck_assert_msg(pd_cache_policy_parse_date((pd_str){ b, strlen(b) }, &got) == 0 &&
                              got == tt, "'%s' -> %lld, not %lld", b, (long long)got, (long long)t);
        }
    }
}
END_TEST

/* ---- refresh_pattern (Squid semantics, feeding 4.2.2) ---- */

static void lines_from(pd_conf_lines *ls, const char *const *text, size_t n)
{
    ls->v = calloc(n, sizeof(pd_conf_line));
    ls->n = ls->cap = n;
    for (size_t i = 0; i < n; i++) {
        pd_conf_line *l = &ls->v[i];
        l->file = "proxy.conf";
        l->line = (int)i + 10;
        l->argv = calloc(16, sizeof(char *));
        char *copy = strdup(text[i]), *save;
        for (char *w = strtok_r(copy, " ", &save); w && l->argc < 15; w = strtok_r(NULL, " ", &save))
            l->argv[l->argc++] = strdup(w);
        free(copy);
    }
}

static void lines_free(pd_conf_lines *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        for (int k = 0; k < ls->v[i].argc; k++)
            free(ls->v[i].argv[k]);
        free(ls->v[i].argv);
    }
    free(ls->v);
}

static const char *const refresh_conf[] = {
    "-i \\.jpg$ 1440 50% 10080 override-expire",
    "^http://static\\. 60 20 1440 ignore-reload",
    "\\.gif$ 10 10% 100",
    ". 0 20% 4320",
};

static const struct refresh_case {
    const char *sec, *url;
    int rule;           /* index in refresh_conf */
    int64_t min, max;
    int percent;
} refresh_cases[] = {
    { "4.2.2 refresh_pattern -i (case-insensitive)", "http://a.example/X.JPG", 0, 86400, 604800, 50 },
    { "4.2.2 refresh_pattern (first match wins)", "http://static.example/a.jpg", 0, 86400, 604800, 50 },
    { "4.2.2 refresh_pattern (anchored regex)", "http://static.example/a.css", 1, 3600, 86400, 20 },
    { "4.2.2 refresh_pattern (case-sensitive without -i)", "http://a/x.GIF", 3, 0, 259200, 20 },
    { "4.2.2 refresh_pattern (gif)", "http://a/x.gif", 2, 600, 6000, 10 },
    { "4.2.2 refresh_pattern (catch-all)", "http://a/x.jpgg", 3, 0, 259200, 20 },
};

START_TEST(test_refresh_match)
{
    const struct refresh_case *c = &refresh_cases[_i];
    pd_conf_lines ls;
    lines_from(&ls, refresh_conf, sizeof(refresh_conf) / sizeof(refresh_conf[0]));
    pd_refresh_rules rr;
    char err[256];
    ck_assert_int_eq(pd_cache_policy_refresh_compile(&rr, &ls, err, sizeof(err)), 0);
    ck_assert_uint_eq(rr.n, 4);
    const pd_refresh_rule *r = pd_cache_policy_refresh_match(&rr, c->url);
    ck_assert_msg(r == &rr.v[c->rule], "%s: matched rule %ld", c->sec, (long)(r - rr.v));
    ck_assert_int_eq(r->min, c->min);
    ck_assert_int_eq(r->max, c->max);
    ck_assert_int_eq(r->percent, c->percent);
    ck_assert_int_eq(r->line, 10 + c->rule);
    ck_assert_int_eq(rr.v[0].override_expire, 1);
    ck_assert_int_eq(rr.v[1].ignore_reload, 1);
    ck_assert_int_eq(rr.v[2].override_expire, 0);
    pd_cache_policy_refresh_free(&rr);
    lines_free(&ls);
}
END_TEST

START_TEST(test_refresh_default_and_errors)
{
    /* no rules: Squid's built-in default */
    ck_assert_ptr_eq(pd_cache_policy_refresh_match(NULL, "http://a/"), &pd_refresh_default);
    pd_refresh_rules rr;
    char err[256];
    ck_assert_int_eq(pd_cache_policy_refresh_compile(&rr, NULL, err, sizeof(err)), 0);
    ck_assert_ptr_eq(pd_cache_policy_refresh_match(&rr, "http://a/"), &pd_refresh_default);
    static const char *const bad[] = {
        "([ 1 20% 3", "x 1 20%", "x -1 20% 30", "x 1 abc 30", "x 1 20% 3y", "-i",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *one[] = { ". 0 20% 10", bad[i] };
        pd_conf_lines ls;
        lines_from(&ls, one, 2);
        err[0] = '\0';
        ck_assert_msg(pd_cache_policy_refresh_compile(&rr, &ls, err, sizeof(err)) == -1, "accepted '%s'", bad[i]);
        ck_assert_msg(strstr(err, "proxy.conf:11:") != NULL, "error '%s' lacks file:line", err);
        ck_assert_ptr_null(rr.v);
        lines_free(&ls);
    }
}
END_TEST

START_TEST(test_lifetime_with_compiled_rule)
{
    /* the whole path: conf line -> rule -> heuristic lifetime (4.2.2) */
    const char *one[] = { "-i \\.png$ 30 50% 60" };
    pd_conf_lines ls;
    lines_from(&ls, one, 1);
    pd_refresh_rules rr;
    char err[256];
    ck_assert_int_eq(pd_cache_policy_refresh_compile(&rr, &ls, err, sizeof(err)), 0);
    pd_http_msg resp;
    build(&resp, NULL, 200, "Date: " D0 "\nLast-Modified: " D_M1H);
    const pd_refresh_rule *r = pd_cache_policy_refresh_match(&rr, "http://a/b.PNG");
    /* 50% of one hour = 1800 s, within max 3600 */
    ck_assert_int_eq(pd_cache_policy_lifetime(&resp, r, T0, NULL), 1800);
    pd_http_msg_free(&resp);
    build(&resp, NULL, 200, "Date: " D0 "\nLast-Modified: " D_M10D);
    ck_assert_int_eq(pd_cache_policy_lifetime(&resp, r, T0, NULL), 3600);
    pd_http_msg_free(&resp);
    pd_cache_policy_refresh_free(&rr);
    lines_free(&ls);
}
END_TEST

START_TEST(test_cc_parsing)
{
    pd_http_msg m;
    build(&m, NULL, 200, "Cache-Control: public, max-age=\"1,2\", x=\"a\\\"b\"\nCache-Control: no-cache=\"A, B\"");
    pd_str a;
    ck_assert_int_eq(pd_cache_policy_cc(&m, "public", &a), 1);
    ck_assert_uint_eq(a.len, 0);
    ck_assert_int_eq(pd_cache_policy_cc(&m, "max-age", &a), 1);
    ck_assert(a.len == 3 && memcmp(a.p, "1,2", 3) == 0);
    ck_assert_int_eq(pd_cache_policy_cc(&m, "no-cache", &a), 1);
    ck_assert(a.len == 4 && memcmp(a.p, "A, B", 4) == 0);
    ck_assert_int_eq(pd_cache_policy_cc(&m, "B\"", NULL), 0);
    ck_assert_int_eq(pd_cache_policy_cc(&m, "private", NULL), 0);
    pd_http_msg_free(&m);
}
END_TEST


#define NCASES(t) ((int)(sizeof(t) / sizeof((t)[0])))

START_TEST(test_refresh_max_stale)
{
    static const char *const conf[] = { "/short/ 0 20% 60 max-stale=30", ". 0 20% 4320" };
    pd_conf_lines ls;
    lines_from(&ls, conf, 2);
    pd_refresh_rules rr;
    char err[256];
    ck_assert_int_eq(pd_cache_policy_refresh_compile(&rr, &ls, err, sizeof err), 0);
    ck_assert_int_eq(rr.v[0].max_stale, 30);
    ck_assert_int_eq(rr.v[1].max_stale, -1);
    ck_assert_int_eq(pd_refresh_default.max_stale, -1);
    pd_cache_policy_refresh_free(&rr);
    lines_free(&ls);
    static const char *const bad[] = { ". 0 20% 60 max-stale=x" };
    lines_from(&ls, bad, 1);
    ck_assert_int_eq(pd_cache_policy_refresh_compile(&rr, &ls, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "max-stale") != NULL, "%s", err);
    lines_free(&ls);
}
END_TEST

static Suite *cache_policy_suite(void)
{
    Suite *s = suite_create("cache_policy");
    TCase *tc = tcase_create("tables");
    tcase_add_loop_test(tc, test_storable, 0, NCASES(storable_cases));
    tcase_add_loop_test(tc, test_lifetime, 0, NCASES(lifetime_cases));
    tcase_add_loop_test(tc, test_age, 0, NCASES(age_cases));
    tcase_add_loop_test(tc, test_decide, 0, NCASES(decide_cases));
    tcase_add_loop_test(tc, test_stale_on_error, 0, NCASES(stale_cases));
    tcase_add_test(tc, test_refresh_max_stale);
    tcase_add_loop_test(tc, test_stale_while_revalidate, 0, NCASES(swr_cases));
    tcase_add_loop_test(tc, test_conditional, 0, NCASES(cond_cases));
    tcase_add_loop_test(tc, test_304_selects, 0, NCASES(sel_cases));
    tcase_add_loop_test(tc, test_merge_304, 0, NCASES(merge_cases));
    tcase_add_loop_test(tc, test_client_cond, 0, NCASES(ccond_cases));
    tcase_add_loop_test(tc, test_vary, 0, NCASES(vary_cases));
    tcase_add_loop_test(tc, test_invalidation, 0, NCASES(inval_cases));
    tcase_add_loop_test(tc, test_range, 0, NCASES(range_cases));
    tcase_add_loop_test(tc, test_if_range, 0, NCASES(ifrange_cases));
    tcase_add_loop_test(tc, test_dates, 0, NCASES(date_cases));
    tcase_add_test(tc, test_dates_round_trip);
    tcase_add_loop_test(tc, test_refresh_match, 0, NCASES(refresh_cases));
    tcase_add_test(tc, test_refresh_default_and_errors);
    tcase_add_test(tc, test_lifetime_with_compiled_rule);
    tcase_add_test(tc, test_cc_parsing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return pd_check_run(cache_policy_suite());
}
