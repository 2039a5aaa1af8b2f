/*
 * errors: the short HTML pages proxyd answers with when it cannot forward a
 * request, named like Squid's error pages (ERR_ACCESS_DENIED, ERR_DNS_FAIL,
 * ...) and announced in an X-Squid-Error header as Squid does, so that tools
 * written for Squid keep working.
 */
#ifndef PROXYD_ERRORS_H
#define PROXYD_ERRORS_H

#include <event2/buffer.h>

/* The reason phrase for a status code ("Bad Gateway"). */
const char *pd_status_reason(int status);

/*
 * Append a complete response (head and, unless head_only, the page) to out.
 * err: Squid error name; detail: one sentence; url: the request URL or "";
 * host: visible_hostname. All text is HTML-escaped.
 */
void pd_error_page(struct evbuffer *out, int status, const char *err, const char *detail,
                   const char *url, const char *host, int keep_alive, int head_only);

#endif
