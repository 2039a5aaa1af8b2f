/*
 * errors: the short HTML pages proxyd answers with when it cannot forward a
 * request, named like Squid's error pages (ERR_ACCESS_DENIED, ERR_DNS_FAIL,
 * ...) and announced in an X-Squid-Error header as Squid does, so that tools
 * written for Squid keep working.
 */
#ifndef PROXYD_ERRORS_H
#define PROXYD_ERRORS_H

#include <event2/buffer.h>

#include <time.h>

/* The reason phrase for a status code ("Bad Gateway"). */
const char *pd_status_reason(int status);

/* t as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", RFC 9110 5.6.7),
 * whatever the locale; out holds PD_HTTP_DATE_SIZE bytes. */
#define PD_HTTP_DATE_SIZE 64
void pd_http_date(time_t t, char *out);

/*
 * Append a complete response (head and, unless head_only, the page) to out.
 * err: Squid error name; detail: one sentence; url: the request URL or "";
 * host: visible_hostname. All text is HTML-escaped. The head carries a Date
 * (RFC 9110 6.6.1: an origin-like answer with a clock has one).
 */
void pd_error_page(struct evbuffer *out, int status, const char *err, const char *detail,
                   const char *url, const char *host, int keep_alive, int head_only);
/* The same with extra header lines (each ending in CRLF; "" for none), e.g.
 * Proxy-Authenticate on a 407. */
void pd_error_page_hdrs(struct evbuffer *out, int status, const char *err, const char *detail,
                        const char *url, const char *host, const char *extra, int keep_alive,
                        int head_only);

#endif
