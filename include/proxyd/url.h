/*
 * url: request-target parsing and normalisation.
 *
 * Every decision about a request (ACL matching, cache key, where to connect)
 * is taken on the normalised form produced here, so that two spellings of one
 * resource are one resource: scheme and host lowercased, trailing dot of the
 * host removed, IPv4 literals in any inet_aton form (decimal, octal, hex,
 * shortened) rewritten as dotted quads, IPv6 literals in canonical form,
 * userinfo dropped, default port made explicit in `port`, percent-encoded
 * unreserved characters decoded in the path, and hex digits of remaining
 * escapes uppercased. Also: IPv4-mapped IPv6 literals become IPv4 (host_ip 4),
 * dot segments are removed from the path (RFC 3986 5.2.4), a fragment is
 * dropped. Refused: schemes other than http in absolute-form, '%' in a host,
 * IPv6 zone ids, bad escapes, controls/spaces/non-ASCII anywhere.
 */
#ifndef PROXYD_URL_H
#define PROXYD_URL_H

#include <stddef.h>
#include <stdint.h>

#define PD_URL_HOST_MAX 255

typedef struct pd_url {
    char scheme[8];             /* "http", "https" (CONNECT: "") */
    char host[PD_URL_HOST_MAX + 1]; /* normalised; IPv6 without brackets */
    int host_ip;                /* 0 name, 4 IPv4 literal, 6 IPv6 literal */
    uint16_t port;              /* explicit or the scheme's default */
    int port_explicit;
    char *path;                 /* origin-form: "/path?query", malloc'd; NULL for CONNECT */
    size_t path_len;
} pd_url;

enum pd_url_form { PD_URL_ABSOLUTE, PD_URL_AUTHORITY /* CONNECT host:port */ };

/*
 * Parse target (not NUL-terminated, len bytes) in the given form. Returns 0 and
 * fills out (release with pd_url_free), or -1 with a short reason in *why
 * (static string) for a target that is malformed or not an http URL.
 */
int pd_url_parse(const char *target, size_t len, enum pd_url_form form, pd_url *out,
                 const char **why);
void pd_url_free(pd_url *u);

/*
 * Write the normalised absolute URL ("http://host[:port]/path", port only when
 * not the default; IPv6 in brackets) or, for CONNECT, "host:port", into buf.
 * Returns the length it needs (like snprintf).
 */
size_t pd_url_format(const pd_url *u, char *buf, size_t size);

/* An IPv4 address (4 bytes, network order) as inet_ntop writes it, into out
 * (at least 16 bytes); its length. */
size_t pd_ipv4_format(const void *addr, char *out);

/* "host:port" with IPv6 in brackets, used as the origin key. */
size_t pd_url_authority(const pd_url *u, char *buf, size_t size);

#endif
