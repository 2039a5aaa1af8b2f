/*
 * http_msg: the version-independent message model. Only http_parse.c knows
 * llhttp; the rest of proxyd sees a pd_http_msg: a start line and a list of
 * headers as (pointer, length) views into the message's own copy of the head.
 */
#ifndef PROXYD_HTTP_MSG_H
#define PROXYD_HTTP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

typedef struct pd_str {
    const char *p;
    size_t len;
} pd_str;

#define PD_STR(lit) ((pd_str){ (lit), sizeof(lit) - 1 })

/* A NUL-terminated string as a view (PD_STR for literals). */
static inline pd_str pd_str_z(const char *z)
{
    return (pd_str){ z, strlen(z) };
}

typedef struct pd_header {
    pd_str name;
    pd_str value;       /* leading/trailing whitespace trimmed */
} pd_header;

enum pd_body_kind {
    PD_BODY_NONE = 0,   /* no body follows */
    PD_BODY_LENGTH,     /* exactly content_length bytes */
    PD_BODY_CHUNKED,    /* chunked transfer coding */
    PD_BODY_EOF         /* response delimited by connection close */
};

typedef struct pd_http_msg {
    int is_request;
    pd_str method;              /* request */
    int method_id;              /* PD_M_* below */
    pd_str target;              /* request-target as received */
    int status;                 /* response */
    pd_str reason;              /* response */
    int version_major, version_minor;
    pd_header *headers;
    size_t n_headers, cap_headers;
    enum pd_body_kind body;
    uint64_t content_length;    /* when body == PD_BODY_LENGTH */
    int keep_alive;             /* per version and Connection header */
    int expect_continue;        /* request carried Expect: 100-continue */
    /* storage: all views above point into this buffer (owned) */
    char *buf;
    size_t buf_len, buf_cap;
} pd_http_msg;

enum pd_method {
    PD_M_OTHER = 0, PD_M_GET, PD_M_HEAD, PD_M_POST, PD_M_PUT, PD_M_DELETE,
    PD_M_OPTIONS, PD_M_PATCH, PD_M_CONNECT, PD_M_TRACE, PD_M_PURGE
};

void pd_http_msg_init(pd_http_msg *m);
void pd_http_msg_reset(pd_http_msg *m);   /* keep the buffers for reuse */
void pd_http_msg_free(pd_http_msg *m);

/*
 * Make dst a deep copy of src (its own buffer and header array; views that
 * do not point into src's buffer, such as literals, are shared as they are).
 * Returns 0, or -1 on ENOMEM with dst empty. Free dst with pd_http_msg_free.
 */
int pd_http_msg_copy(pd_http_msg *dst, const pd_http_msg *src);

/* Append bytes to the message storage; returns the stable offset, -1 on ENOMEM. */
ssize_t pd_http_msg_store(pd_http_msg *m, const char *p, size_t len);

/* Case-insensitive lookup; returns the first match or NULL. */
const pd_header *pd_http_msg_find(const pd_http_msg *m, const char *name);
/* Next header after `prev` with the same name (NULL when none). */
const pd_header *pd_http_msg_find_next(const pd_http_msg *m, const pd_header *prev);

/* Add a header (copies name and value into the message storage). */
int pd_http_msg_add(pd_http_msg *m, const char *name, const char *value, size_t vlen);
/* Remove every header called name; returns how many. */
int pd_http_msg_remove(pd_http_msg *m, const char *name);

/* Does a comma-separated header (all instances) contain token (case-insensitive)? */
int pd_http_msg_has_token(const pd_http_msg *m, const char *name, const char *token);

/*
 * Is `name` a hop-by-hop field of m (RFC 9110 7.6.1): Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
 * Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization, or a
 * field m's Connection names?  Neither forwarded nor stored.
 */
int pd_http_msg_is_hop_by_hop(const pd_http_msg *m, pd_str name);

int pd_str_eq_ci(pd_str s, const char *lit);
int pd_method_id(pd_str method);
int pd_method_is_safe(int method_id);         /* GET, HEAD, OPTIONS, TRACE */
int pd_method_is_idempotent(int method_id);   /* safe + PUT, DELETE */

/*
 * A message head being written: gathered in the struct's own buffer and
 * added to `out` in one piece (a head written as many small evbuffer_add
 * calls, each running the buffer's callbacks, cost more than the bytes).
 * Longer heads are flushed as the buffer fills. The struct lives on the
 * writer's stack; pd_head_end returns the bytes added to out in all.
 */
typedef struct pd_head {
    struct evbuffer *out;
    size_t len, flushed;
    char buf[4096];
} pd_head;
void pd_head_begin(pd_head *h, struct evbuffer *out);
void pd_head_add(pd_head *h, const void *p, size_t n);
void pd_head_str(pd_head *h, const char *s);
void pd_head_uint(pd_head *h, uint64_t v);
void pd_head_int(pd_head *h, int64_t v);
/* "name: value\r\n" */
void pd_head_field(pd_head *h, pd_str name, pd_str value);
size_t pd_head_end(pd_head *h);

/*
 * Chunked framing (RFC 9112 7.1), for every body proxyd re-chunks (requests
 * to origins, responses to clients, hits of objects still being written).
 * Each returns the bytes it added to out, so that what is counted is what
 * goes on the wire.
 */
struct evbuffer;
size_t pd_http_chunk_head(struct evbuffer *out, size_t n);  /* "<hex n>\r\n" */
size_t pd_http_chunk_tail(struct evbuffer *out);            /* "\r\n" after the data */
/* A whole chunk of n bytes from data (nothing for n == 0: that would end the body). */
size_t pd_http_chunk_add(struct evbuffer *out, const void *data, size_t n);
size_t pd_http_chunk_last(struct evbuffer *out);            /* "0\r\n\r\n" */

#endif
