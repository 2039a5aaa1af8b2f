/*
 * cache_meta: what proxyd keeps beside a cached body in the store's opaque
 * metadata blob: the response head as it will be served (hop-by-hop fields
 * already removed), the request and response times for the Age calculation
 * (RFC 9111 4.2.3), and whether the object is a Vary marker (an entry at the
 * URL's key that names the Vary fields; the variants live at secondary keys).
 */
#ifndef PROXYD_CACHE_META_H
#define PROXYD_CACHE_META_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>

#include "proxyd/http_msg.h"

enum pd_meta_kind { PD_META_RESPONSE = 0, PD_META_VARY = 1 };

typedef struct pd_cache_meta {
    enum pd_meta_kind kind;
    time_t request_time, response_time;
    int64_t body_len;           /* the Content-Length the origin announced, -1 if unknown
                                   (lets a collapsed reader frame an object still being written) */
    uint64_t vary_gen;          /* a Vary marker's generation, random at build: its variants'
                                   keys include it, so a new marker (after an invalidation)
                                   never leads to the variants of an old one */
    pd_http_msg head;           /* the stored response head (status, headers) */
} pd_cache_meta;

/* Is this header stored with a response? (not hop-by-hop nor framing) */
int pd_cache_meta_keeps(const pd_http_msg *resp, pd_str name);

/*
 * Serialise: returns a malloc'd blob and its length in *len, or NULL (ENOMEM).
 * The head's framing fields (Content-Length, Transfer-Encoding) are left out:
 * the store knows the body length; the announced length (resp->content_length
 * when resp->body is PD_BODY_LENGTH, else -1) is kept apart as body_len.
 * A PD_META_VARY blob gets a fresh random vary_gen (parse it back to learn it).
 */
void *pd_cache_meta_build(enum pd_meta_kind kind, const pd_http_msg *resp, time_t request_time,
                          time_t response_time, size_t *len);

/* Parse a blob into m (pd_cache_meta_free it). Returns 0, or -1 for a bad blob. */
int pd_cache_meta_parse(const void *blob, size_t len, pd_cache_meta *m);
/* The same; strict: always with the general (llhttp) parser, for tests that
 * compare the two readings. */
int pd_cache_meta_parse_how(const void *blob, size_t len, pd_cache_meta *m, int strict);
void pd_cache_meta_free(pd_cache_meta *m);

#endif
