/*
 * errors: error responses (see include/proxyd/errors.h).
 */
#include "proxyd/errors.h"

#include <stdio.h>
#include <string.h>

const char *pd_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 508: return "Loop Detected";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

void pd_http_date(time_t t, char *out)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, PD_HTTP_DATE_SIZE, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void html_escape(char *dst, size_t size, const char *src)
{
    size_t o = 0;
    for (; src && *src && o + 7 < size; src++) {
        const char *rep = NULL;
        switch (*src) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        }
        if (rep) {
            size_t n = strlen(rep);
            memcpy(dst + o, rep, n);
            o += n;
        } else if ((unsigned char)*src >= 0x20 && *src != 0x7f) {
            dst[o++] = *src;
        }
    }
    dst[o] = '\0';
}

void pd_error_page(struct evbuffer *out, int status, const char *err, const char *detail,
                   const char *url, const char *host, int keep_alive, int head_only)
{
    pd_error_page_hdrs(out, status, err, detail, url, host, "", keep_alive, head_only);
}

void pd_error_page_hdrs(struct evbuffer *out, int status, const char *err, const char *detail,
                        const char *url, const char *host, const char *extra, int keep_alive,
                        int head_only)
{
    char e_url[2048 * 6 / 4], e_detail[512], e_host[300];
    html_escape(e_url, sizeof e_url, url);
    html_escape(e_detail, sizeof e_detail, detail);
    html_escape(e_host, sizeof e_host, host);
    const char *reason = pd_status_reason(status);
    char body[4096];
    int n = snprintf(body, sizeof body,
                     "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>\n"
                     "<body><h1>%d %s</h1>\n<p>%s</p>\n%s%s%s"
                     "<hr><address>%s (proxyd/%s)</address>\n</body></html>\n",
                     status, reason, status, reason, e_detail,
                     e_url[0] ? "<p>URL: <code>" : "", e_url, e_url[0] ? "</code></p>\n" : "",
                     e_host, PROXYD_VERSION);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof body)
        n = sizeof body - 1;
    char date[PD_HTTP_DATE_SIZE];
    pd_http_date(time(NULL), date);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Server: proxyd/%s\r\n"
                        "Date: %s\r\n"
                        "Content-Type: text/html; charset=utf-8\r\n"
                        "Content-Length: %d\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Squid-Error: %s 0\r\n"
                        "%s%s"
                        "\r\n",
                        status, reason, PROXYD_VERSION, date, n, err, extra ? extra : "",
                        keep_alive ? "" : "Connection: close\r\n");
    if (!head_only)
        evbuffer_add(out, body, (size_t)n);
}
