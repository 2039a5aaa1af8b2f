/*
 * http_parse: llhttp wrapper (see include/proxyd/http_parse.h).
 *
 * llhttp is built with LLHTTP_STRICT_MODE and no lenient flag but the version
 * one (below), so it refuses CL+TE, duplicate Content-Length, bad chunk sizes
 * and invalid tokens. It knows a fixed list of methods: the method token is
 * read here (scan_method) and llhttp is given it when it knows it, "GET"
 * otherwise, so that extension methods (RFC 9110 16.1) go through the same
 * grammar as the rest; a request's framing does not depend on its method
 * but for CONNECT, which llhttp knows. The target's scheme is looked at here
 * too (scan_scheme): llhttp refuses Squid's "cache_object://" (squidclient
 * mgr:PAGE) for its '_', so it is given "cacheXobject://" and the stored
 * target gets the received bytes back. What it
 * still tolerates in 8.1 is checked here: obs-fold (a value that spans lines),
 * bare LF line ends and control bytes in the head, empty header names, an
 * HTTP/1.1 request without Host, an empty or repeated transfer coding, and in
 * chunked bodies: malformed chunk extensions (empty name or value),
 * over-long extensions and obs-fold or control bytes in trailer fields.
 */
#include "proxyd/http_parse.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS 200
#define CACHE_OBJECT "cache_object://"
/* Chunk extensions are dropped when we re-chunk: no reason to accept many. */
#define MAX_CHUNK_EXT 1024
/* A longer method token is 501: no method anyone registered comes close. */
#define MAX_METHOD 64

enum hstate { H_NONE, H_FIELD, H_VALUE };

struct pd_http_parser {
    llhttp_t ll;
    llhttp_settings_t settings;
    int is_request;
    size_t max_head;
    pd_http_msg *msg;
    int req_method;

    /* the method token, read before llhttp sees the request line */
    int in_method;
    char meth[MAX_METHOD];
    size_t meth_len;
    /* the target's first bytes while they could be "cache_object://" */
    int in_scheme;
    char sch[16];
    size_t sch_len;
    int cache_object;
    /* where the request target ends in the head (414 or 431 at the limit) */
    const char *exec_data;  /* the buffer of this pd_http_parse_head call */
    size_t exec_base;       /* head bytes before it */
    size_t url_end;
    int url_done;

    /* head accumulation (offsets into msg->buf) */
    size_t head_bytes;
    enum hstate hs;
    size_t field_off, field_len, value_off, value_len;
    size_t method_off, method_len, url_off, url_len, reason_off, reason_len;
    int prev_cr;
    int line_start;   /* at the first byte of a head line */
    int line_no;      /* 0 = start line */
    char prev_c;
    int head_done;

    /* body */
    pd_body_cb body_cb;
    void *body_arg;
    int body_done;
    int body_cb_failed;
    size_t ext_bytes;       /* extension bytes of the current chunk */
    size_t ext_name_len, ext_val_len;
    char ext_val_first, ext_val_last;
    int ext_val_bad;        /* a byte outside token / quoted-string */
    /* trailer obs-fold: llhttp gives a folded value as two spans with the
     * line break skipped between them; spans of one value must touch */
    const char *cur_data, *cur_end;   /* the buffer of this execute call */
    unsigned exec_id;
    int tv_started;
    const char *tv_end;
    unsigned tv_exec;
    int tv_at_buf_end;

    int err_status;
    const char *err_reason;
};

static int fail(pd_http_parser *p, int status, const char *reason)
{
    if (!p->err_status) {
        p->err_status = status;
        p->err_reason = reason;
    }
    return -1;
}

static int store(pd_http_parser *p, const char *at, size_t len, size_t *off, size_t *tot)
{
    ssize_t o = pd_http_msg_store(p->msg, at, len);
    if (o < 0)
        return fail(p, 500, "out of memory");
    if (*tot == 0)
        *off = (size_t)o;
    *tot += len;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    if (p->exec_data)
        p->url_end = p->exec_base + (size_t)(at + len - p->exec_data);
    return store(p, at, len, &p->url_off, &p->url_len);
}

static int on_url_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    p->url_done = 1;
    return 0;
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    return store(p, at, len, &p->reason_off, &p->reason_len);
}

static int finish_header(pd_http_parser *p)
{
    pd_http_msg *m = p->msg;
    if (p->hs == H_NONE)
        return 0;
    int bad = p->is_request ? 400 : 502;
    if (p->field_len == 0)
        return fail(p, bad, "empty header name");
    const char *v = m->buf + p->value_off;
    size_t vlen = p->value_len;
    /* llhttp hands an obs-fold continuation to on_header_value with its line break */
    for (size_t i = 0; i < vlen; i++)
        if (v[i] == '\r' || v[i] == '\n')
            return fail(p, bad, "obsolete line folding");
    while (vlen && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
        vlen--;
    if (m->n_headers == m->cap_headers) {
        if (m->n_headers >= MAX_HEADERS)
            return fail(p, p->is_request ? 431 : 502, "too many header fields");
        size_t ncap = m->cap_headers ? m->cap_headers * 2 : 32;
        pd_header *nh = realloc(m->headers, ncap * sizeof(*nh));
        if (!nh)
            return fail(p, 500, "out of memory");
        m->headers = nh;
        m->cap_headers = ncap;
    }
    pd_header *h = &m->headers[m->n_headers++];
    h->name = (pd_str){ m->buf + p->field_off, p->field_len };
    h->value = (pd_str){ vlen ? v : m->buf + p->value_off, vlen };
    p->hs = H_NONE;
    p->field_len = p->value_len = 0;
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    if (p->head_done) {
        /* trailer fields are not kept (Trailer is hop-by-hop), only checked */
        p->field_len += len;
        p->tv_started = 0;
        return 0;
    }
    if (p->hs != H_FIELD) {
        p->hs = H_FIELD;
        p->field_len = 0;
    }
    return store(p, at, len, &p->field_off, &p->field_len);
}

static int on_header_field_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    if (p->head_done) {
        if (p->field_len == 0)
            return fail(p, p->is_request ? 400 : 502, "empty trailer field name");
        p->field_len = 0;
        return 0;
    }
    p->hs = H_VALUE;
    p->value_len = 0;
    p->value_off = p->msg->buf_len;
    return 0;
}

/* A trailer line is outside check_head_bytes: the same rules apply to it. */
static int check_trailer_value(pd_http_parser *p, const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if (c == '\r' || c == '\n')
            return fail(p, p->is_request ? 400 : 502, "obsolete line folding in trailer");
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return fail(p, p->is_request ? 400 : 502, "control character in trailer");
    }
    return 0;
}

static int on_trailer_value(pd_http_parser *p, const char *at, size_t len)
{
    if (p->tv_started) {
        int touch = p->tv_exec == p->exec_id ? at == p->tv_end
                                             : p->tv_at_buf_end && at == p->cur_data;
        if (!touch)
            return fail(p, p->is_request ? 400 : 502, "obsolete line folding in trailer");
    }
    p->tv_started = 1;
    p->tv_end = at + len;
    p->tv_exec = p->exec_id;
    p->tv_at_buf_end = p->tv_end == p->cur_end;
    return check_trailer_value(p, at, len);
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    if (p->head_done)
        return on_trailer_value(p, at, len);
    return store(p, at, len, &p->value_off, &p->value_len);
}

static int on_header_value_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    if (p->head_done)
        return 0;
    return finish_header(p);
}

static int on_headers_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    pd_http_msg *m = p->msg;
    if (p->hs != H_NONE)
        return fail(p, p->is_request ? 400 : 502, "incomplete header field");

    m->version_major = ll->http_major;
    m->version_minor = ll->http_minor;
    if (m->version_major != 1)
        return fail(p, p->is_request ? 505 : 502, "unsupported HTTP version");
    m->keep_alive = llhttp_should_keep_alive(ll);

    if (p->is_request) {
        m->method = (pd_str){ m->buf + p->method_off, p->method_len };
        m->method_id = pd_method_id(m->method);
        if (p->cache_object && p->url_len >= sizeof CACHE_OBJECT - 1)
            memcpy(m->buf + p->url_off, p->sch, sizeof CACHE_OBJECT - 1);
        m->target = (pd_str){ m->buf + p->url_off, p->url_len };
        if (p->url_len == 0)
            return fail(p, 400, "empty request target");
        /* RFC 9112 3.2: a 1.1 request without Host is refused (two: client.c).
         * Not CONNECT: some clients omit it there, and its authority-form
         * target leaves nothing for a Host to contradict. */
        if (m->version_minor >= 1 && m->method_id != PD_M_CONNECT && !pd_http_msg_find(m, "Host"))
            return fail(p, 400, "no Host header in an HTTP/1.1 request");
        if (ll->flags & F_TRANSFER_ENCODING) {
            /* An empty line or member, or chunked twice (RFC 9112 6.1: chunked
             * is applied once), reads differently to other parsers. */
            int chunked = 0;
            for (const pd_header *h = pd_http_msg_find(m, "Transfer-Encoding"); h;
                 h = pd_http_msg_find_next(m, h)) {
                const char *v = h->value.p, *end = v + h->value.len;
                if (v == end)
                    return fail(p, 400, "empty Transfer-Encoding");
                while (v <= end) {
                    const char *comma = memchr(v, ',', (size_t)(end - v));
                    const char *e = comma ? comma : end;
                    const char *b = v;
                    while (b < e && (*b == ' ' || *b == '\t'))
                        b++;
                    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                        e--;
                    if (b == e)
                        return fail(p, 400, "empty transfer coding");
                    if ((size_t)(e - b) == 7 && strncasecmp(b, "chunked", 7) == 0 && chunked++)
                        return fail(p, 400, "chunked applied twice");
                    if (!comma)
                        break;
                    v = comma + 1;
                }
            }
        }
        if (ll->flags & F_CHUNKED)
            m->body = PD_BODY_CHUNKED;
        else if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > 0) {
            m->body = PD_BODY_LENGTH;
            m->content_length = ll->content_length;
        } else if (ll->flags & F_TRANSFER_ENCODING)
            return fail(p, 400, "transfer coding without chunked");
        else
            m->body = PD_BODY_NONE;
        m->expect_continue = pd_http_msg_has_token(m, "Expect", "100-continue");
    } else {
        m->status = ll->status_code;
        /* no reason phrase and no field: nothing was stored, buf may be NULL */
        m->reason = (pd_str){ p->reason_len ? m->buf + p->reason_off : "", p->reason_len };
        if (m->status < 100 || m->status > 999)
            return fail(p, 502, "invalid status code");
        if ((m->status >= 100 && m->status < 200) || m->status == 204 || m->status == 304 ||
            p->req_method == PD_M_HEAD ||
            (p->req_method == PD_M_CONNECT && m->status >= 200 && m->status < 300))
            m->body = PD_BODY_NONE;
        else if (ll->flags & F_CHUNKED)
            m->body = PD_BODY_CHUNKED;
        else if (ll->flags & F_CONTENT_LENGTH) {
            m->body = ll->content_length ? PD_BODY_LENGTH : PD_BODY_NONE;
            m->content_length = ll->content_length;
        } else
            m->body = PD_BODY_EOF;
    }
    p->head_done = 1;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    if (p->body_cb && p->body_cb(p->body_arg, at, len) < 0) {
        p->body_cb_failed = 1;
        return -1;
    }
    return 0;
}

/*
 * Chunk extensions (RFC 9112 7.1.1): name = token, value = token or
 * quoted-string. llhttp 8.1 (strict) lets an empty name (";=x") and an empty
 * value (";a=") through; they are refused, and so are long extensions. The
 * value checks repeat llhttp's so that a lenient llhttp would not matter.
 */
static int ext_count(pd_http_parser *p, size_t len)
{
    p->ext_bytes += len;
    if (p->ext_bytes > MAX_CHUNK_EXT)
        return fail(p, p->is_request ? 400 : 502, "chunk extension too long");
    return 0;
}

static int on_ext_name(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    p->ext_name_len += len;
    return ext_count(p, len);
}

static int on_ext_name_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    if (p->ext_name_len == 0)
        return fail(p, p->is_request ? 400 : 502, "empty chunk extension name");
    p->ext_name_len = 0;
    p->ext_val_len = 0;
    p->ext_val_bad = 0;
    return 0;
}

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int on_ext_value(llhttp_t *ll, const char *at, size_t len)
{
    pd_http_parser *p = ll->data;
    if (len == 0)
        return 0;
    if (p->ext_val_len == 0)
        p->ext_val_first = at[0];
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if (p->ext_val_first == '"') {
            if (c == '\r' || c == '\n' || (c < 0x20 && c != '\t') || c == 0x7f)
                p->ext_val_bad = 1;
        } else if (!is_tchar(c)) {
            p->ext_val_bad = 1;
        }
    }
    p->ext_val_len += len;
    p->ext_val_last = at[len - 1];
    return ext_count(p, len);
}

static int on_ext_value_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    int quoted = p->ext_val_len && p->ext_val_first == '"';
    if (p->ext_val_len == 0 || p->ext_val_bad ||
        (quoted && (p->ext_val_len < 2 || p->ext_val_last != '"')))
        return fail(p, p->is_request ? 400 : 502, "malformed chunk extension value");
    p->ext_val_len = 0;
    return 0;
}

static int on_chunk_header(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    p->ext_bytes = 0;
    return 0;
}

static int on_message_complete(llhttp_t *ll)
{
    pd_http_parser *p = ll->data;
    p->body_done = 1;
    return HPE_PAUSED;
}

pd_http_parser *pd_http_parser_new(int is_request, size_t max_head)
{
    pd_http_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    llhttp_settings_init(&p->settings);
    p->settings.on_url = on_url;
    p->settings.on_url_complete = on_url_complete;
    p->settings.on_status = on_status;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_value = on_header_value;
    p->settings.on_header_field_complete = on_header_field_complete;
    p->settings.on_header_value_complete = on_header_value_complete;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_message_complete = on_message_complete;
    p->settings.on_chunk_extension_name = on_ext_name;
    p->settings.on_chunk_extension_name_complete = on_ext_name_complete;
    p->settings.on_chunk_extension_value = on_ext_value;
    p->settings.on_chunk_extension_value_complete = on_ext_value_complete;
    p->settings.on_chunk_header = on_chunk_header;
    p->is_request = is_request;
    p->max_head = max_head;
    return p;
}

void pd_http_parser_free(pd_http_parser *p)
{
    free(p);
}

void pd_http_parser_next(pd_http_parser *p, pd_http_msg *msg, int request_method_id)
{
    llhttp_init(&p->ll, p->is_request ? HTTP_REQUEST : HTTP_RESPONSE, &p->settings);
    /* RFC 9110 2.5: a request of a higher HTTP/1 minor version (HTTP/1.2) is
     * processed as HTTP/1.1, not refused. Strict llhttp answers every version
     * but 0.9, 1.0, 1.1 and 2.0 with "Invalid HTTP version"; the lenient flag
     * only drops that list (HTTP/DIGIT.DIGIT is still the grammar), and
     * on_headers_complete refuses a major version other than 1 with a 505. */
    if (p->is_request)
        p->ll.lenient_flags |= LENIENT_VERSION;
    p->ll.data = p;
    p->msg = msg;
    pd_http_msg_reset(msg);
    msg->is_request = p->is_request;
    p->req_method = request_method_id;
    p->head_bytes = 0;
    p->hs = H_NONE;
    p->field_off = p->field_len = p->value_off = p->value_len = 0;
    p->method_off = p->method_len = p->url_off = p->url_len = 0;
    p->in_method = p->is_request;
    p->meth_len = 0;
    p->in_scheme = 0;
    p->sch_len = 0;
    p->cache_object = 0;
    p->exec_data = NULL;
    p->exec_base = p->url_end = 0;
    p->url_done = 0;
    p->reason_off = p->reason_len = 0;
    p->prev_cr = 0;
    p->line_start = 1;
    p->line_no = 0;
    p->prev_c = 0;
    p->head_done = p->body_done = p->body_cb_failed = 0;
    p->body_cb = NULL;
    p->ext_bytes = p->ext_name_len = p->ext_val_len = 0;
    p->ext_val_bad = 0;
    p->tv_started = 0;
    p->err_status = 0;
    p->err_reason = NULL;
}

static int map_error(pd_http_parser *p, llhttp_errno_t e)
{
    int bad = p->is_request ? 400 : 502;
    switch (e) {
    case HPE_INVALID_METHOD:
        return fail(p, p->is_request ? 501 : 502, "invalid method");
    default:
        return fail(p, bad, llhttp_get_error_reason(&p->ll) ? llhttp_get_error_reason(&p->ll)
                                                            : llhttp_errno_name(e));
    }
}

/*
 * Bare LF, bare CR, NUL and other control bytes (except HTAB) are refused in a
 * head, and so is a line that starts with whitespace (obs-fold, or whitespace
 * before the first header), and runs of spaces in the start line.
 */
/* Bytes check_head_bytes must look at one by one: SP, HTAB, CR, LF, the
 * other controls and DEL. Any other byte only ends a CR (an error) and a line
 * start, so a run of them is skipped at once. */
static const unsigned char head_special[256] = {
    [0x00 ... 0x20] = 1,
    [0x7f] = 1,
};

static int check_head_bytes(pd_http_parser *p, const char *data, size_t len)
{
    int bad = p->is_request ? 400 : 502;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (!head_special[c]) {
            if (p->prev_cr)
                return fail(p, bad, "bare CR in message head");
            size_t j = i + 1;
            while (j < len && !head_special[(unsigned char)data[j]])
                j++;
            p->line_start = 0;
            p->prev_c = data[j - 1];
            p->prev_cr = 0;
            i = j - 1;
            continue;
        }
        if (p->line_start && (c == ' ' || c == '\t'))
            return fail(p, bad, p->line_no ? "obsolete line folding" : "whitespace before start line");
        if (p->is_request && p->line_no == 0 && c == ' ' && p->prev_c == ' ')
            return fail(p, bad, "extra whitespace in start line");
        p->line_start = c == '\n';
        if (c == '\n')
            p->line_no++;
        p->prev_c = (char)c;
        if (c == '\n') {
            if (!p->prev_cr)
                return fail(p, p->is_request ? 400 : 502, "bare LF in message head");
        } else if (c == '\r') {
            if (p->prev_cr)
                return fail(p, p->is_request ? 400 : 502, "bare CR in message head");
        } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return fail(p, p->is_request ? 400 : 502, "control character in message head");
        } else if (p->prev_cr) {
            return fail(p, p->is_request ? 400 : 502, "bare CR in message head");
        }
        p->prev_cr = c == '\r';
    }
    return 0;
}

static int is_tchar(unsigned char c);

/* Is m (len bytes) one of the methods llhttp parses as HTTP (or PRI, the h2 preface)? */
static int llhttp_knows(const char *m, size_t len)
{
#define KNOWN_(num, name, string)                                                          \
    if (len == sizeof(#string) - 1 && memcmp(m, #string, len) == 0)                       \
        return 1;
    HTTP_METHOD_MAP(KNOWN_)
#undef KNOWN_
    return len == 3 && memcmp(m, "PRI", 3) == 0;
}

/*
 * Read the method token of a request (RFC 9110 9.1: a case-sensitive token)
 * and the space after it; empty lines before the request line are skipped
 * (RFC 9112 2.2), as llhttp would. *off: bytes of data taken. Returns 0 (done
 * when p->in_method is cleared), -1 when the line is malformed (400) or the
 * token too long (501). Then the method is stored, and llhttp gets the token
 * or, when it does not know it, "GET": the rest of the line and the fields
 * are llhttp's, whatever the method (the real one is the message's).
 */
static int scan_method(pd_http_parser *p, const char *data, size_t len, size_t *off)
{
    size_t i = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (is_tchar(c)) {
            if (p->meth_len == MAX_METHOD) {
                *off = i + 1;
                return fail(p, 501, "method too long");
            }
            p->meth[p->meth_len++] = (char)c;
        } else if (c == ' ' && p->meth_len) {
            break;
        } else if ((c == '\r' || c == '\n') && !p->meth_len) {
            continue;
        } else {
            *off = i + 1;
            return fail(p, 400, "malformed method");
        }
    }
    if (i == len) {
        *off = len;
        return 0;
    }
    *off = i + 1;
    p->in_method = 0;
    p->in_scheme = 1;
    if (store(p, p->meth, p->meth_len, &p->method_off, &p->method_len) < 0)
        return -1;
    int known = llhttp_knows(p->meth, p->meth_len);
    char line[MAX_METHOD + 1];
    size_t n = known ? p->meth_len : 3;
    memcpy(line, known ? p->meth : "GET", n);
    line[n++] = ' ';
    llhttp_errno_t e = llhttp_execute(&p->ll, line, n);
    if (e != HPE_OK)
        return map_error(p, e);
    return 0;
}

/*
 * The target's first bytes, while they may still be "cache_object://" (any
 * case): held until they differ (then given to llhttp as they are) or match
 * (llhttp gets "cacheXobject://", a scheme it takes). *off: bytes taken.
 */
static int scan_scheme(pd_http_parser *p, const char *data, size_t len, size_t *off)
{
    size_t i = 0;
    int match = 0;
    for (; i < len; i++) {
        char c = data[i];
        p->sch[p->sch_len++] = c;
        if ((c | 0x20) != CACHE_OBJECT[p->sch_len - 1] && c != CACHE_OBJECT[p->sch_len - 1])
            break;
        if (p->sch_len == sizeof CACHE_OBJECT - 1) {
            match = 1;
            break;
        }
    }
    if (i == len) {
        *off = len;
        return 0;
    }
    *off = i + 1;
    p->in_scheme = 0;
    p->cache_object = match;
    llhttp_errno_t e = llhttp_execute(&p->ll, match ? "cacheXobject://" : p->sch,
                                      match ? sizeof CACHE_OBJECT - 1 : p->sch_len);
    if (e != HPE_OK)
        return map_error(p, e);
    return 0;
}

/*
 * The head outgrew max_head: 414 when the request target does not end within
 * the limit (RFC 9110 15.5.15; whatever the split of the bytes: url_end is
 * where it ended, url_done whether it did), 431 otherwise.
 */
static int too_large(pd_http_parser *p)
{
    p->err_status = 0;
    if (!p->is_request)
        return fail(p, 502, "message head too large");
    if (!p->in_method && (!p->url_done || p->url_end > p->max_head))
        return fail(p, 414, "request target too long");
    return fail(p, 431, "message head too large");
}

enum pd_parse_status pd_http_parse_head(pd_http_parser *p, const char *data, size_t len,
                                        size_t *consumed)
{
    *consumed = 0;
    if (p->err_status)
        return PD_PARSE_ERROR;
    size_t off = 0;
    if (p->in_method) {
        int r = scan_method(p, data, len, &off);
        p->head_bytes += off;
        if (p->head_bytes > p->max_head)
            return too_large(p), PD_PARSE_ERROR;
        if (check_head_bytes(p, data, off) < 0 || r < 0)
            return PD_PARSE_ERROR;
        if (p->in_method) {
            *consumed = len;
            return PD_PARSE_AGAIN;
        }
        data += off;
        len -= off;
    }
    if (p->in_scheme) {
        size_t soff = 0;
        int r = scan_scheme(p, data, len, &soff);
        p->head_bytes += soff;
        off += soff;
        if (p->head_bytes > p->max_head)
            return too_large(p), PD_PARSE_ERROR;
        if (check_head_bytes(p, data, soff) < 0 || r < 0)
            return PD_PARSE_ERROR;
        if (p->in_scheme) {
            *consumed = off;
            return PD_PARSE_AGAIN;
        }
        data += soff;
        len -= soff;
    }
    /* Find how much of data belongs to the head: llhttp pauses right after it. */
    p->exec_data = data;
    p->exec_base = p->head_bytes;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    p->exec_data = NULL;
    size_t used = len;
    if (e == HPE_PAUSED) {
        used = (size_t)(llhttp_get_error_pos(&p->ll) - data);
    } else if (e != HPE_OK) {
        const char *pos = llhttp_get_error_pos(&p->ll);
        used = pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
    }
    /* too large wins over any other fault, whatever the split of the bytes */
    p->head_bytes += used;
    if (p->head_bytes > p->max_head)
        return too_large(p), PD_PARSE_ERROR;
    if (check_head_bytes(p, data, e == HPE_OK || e == HPE_PAUSED ? used : (used < len ? used + 1 : len)) < 0)
        return PD_PARSE_ERROR;
    if (e == HPE_PAUSED && p->head_done) {
        *consumed = off + used;
        return PD_PARSE_DONE;
    }
    if (e != HPE_OK) {
        if (!p->err_status)
            map_error(p, e);
        return PD_PARSE_ERROR;
    }
    *consumed = off + len;
    return PD_PARSE_AGAIN;
}

enum pd_parse_status pd_http_parse_body(pd_http_parser *p, const char *data, size_t len,
                                        size_t *consumed, pd_body_cb cb, void *arg)
{
    *consumed = 0;
    if (p->err_status)
        return PD_PARSE_ERROR;
    if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
        llhttp_resume(&p->ll);
    p->body_cb = cb;
    p->body_arg = arg;
    p->cur_data = data;
    p->cur_end = data + len;
    p->exec_id++;
    llhttp_errno_t e = llhttp_execute(&p->ll, data, len);
    if (e == HPE_PAUSED && p->body_done) {
        *consumed = (size_t)(llhttp_get_error_pos(&p->ll) - data);
        return PD_PARSE_DONE;
    }
    if (e != HPE_OK) {
        if (p->body_cb_failed)
            fail(p, 502, "body consumer failed");
        else
            map_error(p, e);
        return PD_PARSE_ERROR;
    }
    *consumed = len;
    return PD_PARSE_AGAIN;
}

int pd_http_parser_error(const pd_http_parser *p, const char **reason)
{
    if (reason)
        *reason = p->err_reason ? p->err_reason : "bad message";
    return p->err_status ? p->err_status : 400;
}
