/*
 * loadgen: the HTTP load generator of bench/, with the semantics of the VNF proxy study
 * (../shared/EVALUATION.md, issue 7): C concurrent clients, each sending R GET requests one
 * after the other, either straight to the origin (origin-form request-target) or through an
 * HTTP proxy (absolute-form). Every request's latency is recorded, from the moment the client
 * starts it (including the TCP connect when a new connection is needed) to the last byte of
 * the response body. Responses are framed by llhttp (Content-Length, chunked, or EOF), so
 * a truncated or over-long body is an error, never a silent success.
 *
 * One process, one thread, one libevent loop: the clients are state machines on that loop.
 * The run is bounded in count (C x R requests, both capped) and in time (a per-request
 * timeout and a global deadline); whatever is still running at the deadline is "aborted".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <llhttp.h>

#define MAX_CLIENTS 10000
#define MAX_TOTAL_REQUESTS 10000000ULL
#define MAX_URLS 1000000
#define MAX_URL_LEN 8000
#define RECV_BUF_SIZE (256 * 1024)

/* Outcome of one request. Everything but RES_OK counts as an error. */
enum result {
    RES_NOT_RUN = 0, /* never started (deadline hit first): not counted as a request */
    RES_OK,
    RES_HTTP_STATUS, /* complete response, status outside 2xx */
    RES_SIZE,        /* complete response, body length differs from what was expected */
    RES_CONNECT,     /* socket() or connect() failed */
    RES_CLOSED,      /* connection reset or closed before the response was complete */
    RES_PARSE,       /* response that llhttp rejects, or bytes after the response */
    RES_TIMEOUT,     /* the per-request timeout fired */
    RES_ABORTED,     /* still running when the global deadline fired */
    RES__COUNT
};

static const char *const result_names[RES__COUNT] = {
    "not_run", "ok", "http_status", "size", "connect", "closed", "parse", "timeout", "aborted",
};

struct record {
    int64_t start_us;   /* since the start of the run */
    int64_t latency_us; /* start to last byte of the body */
    uint64_t bytes;     /* body bytes received (after de-chunking) */
    uint32_t client;
    uint32_t seq;
    int16_t status; /* HTTP status, 0 if none was received */
    uint8_t result; /* enum result */
};

/* One URL of the run, with everything precomputed so that starting a request costs nothing. */
struct target {
    char *url;
    struct sockaddr_storage addr; /* the origin's address */
    socklen_t addrlen;
    char *request; /* the complete request head */
    size_t request_len;
};

struct opts {
    unsigned clients;
    unsigned long requests; /* per client */
    const char *url;
    const char *urls_file;
    const char *proxy;
    const char *csv;
    double timeout_s;
    double duration_limit_s;
    long long expect_size; /* -1: only check against Content-Length */
    bool keepalive;
    bool json;
    bool quiet;
};

enum cstate { CS_IDLE, CS_CONNECTING, CS_SENDING, CS_READING, CS_DONE };

struct run;

struct client {
    struct run *run;
    unsigned id;
    unsigned long seq; /* index of the current (or next) request */
    enum cstate state;
    int fd;
    const struct sockaddr_storage *conn_addr; /* where fd is connected to */
    struct event *ev_read, *ev_write;
    struct event *ev_timeout; /* per-request timeout */
    struct event *ev_next;    /* starts the next request from the loop, never recursively */
    llhttp_t parser;
    const struct target *target;
    struct record *rec;
    int64_t t0;
    size_t sent;
    bool reused;    /* the request went out on a connection that served an earlier one */
    bool retried;   /* this request already got one fresh connection after a stale one */
    bool got_bytes; /* any response byte read for this request */
    bool msg_done;
    bool server_keepalive;
    int64_t declared_len; /* Content-Length, -1 if none */
    uint64_t body;
    int status;
    int64_t first_start_us, last_end_us;
    unsigned long finished;
};

struct run {
    struct opts *o;
    struct event_base *base;
    struct target *targets;
    size_t ntargets;
    bool via_proxy;
    struct sockaddr_storage proxy_addr;
    socklen_t proxy_addrlen;
    struct client *clients;
    struct record *recs;
    llhttp_settings_t settings;
    char *rbuf;
    unsigned active;
    bool stopping;
    int64_t t_start, t_end;
    uint64_t connects, retries;
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static struct timeval tv_of(double s)
{
    struct timeval tv;
    tv.tv_sec = (time_t)s;
    tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
    return tv;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (p == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* URLs and addresses                                                                        */

/* Splits "host:port", "[v6]:port" or "host" (default_port then) into host and port strings.
 * Returns 0, or -1 if malformed. host and port are written into the given buffers. */
static int split_hostport(const char *s, size_t len, char *host, size_t hostsz, char *port,
                          size_t portsz, const char *default_port)
{
    const char *end = s + len, *hend, *colon = NULL;
    if (len == 0)
        return -1;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL)
            return -1;
        if ((size_t)(rb - s - 1) >= hostsz || rb - s - 1 == 0)
            return -1;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        hend = rb + 1;
        if (hend < end) {
            if (*hend != ':')
                return -1;
            colon = hend;
        }
    } else {
        colon = memchr(s, ':', len);
        hend = colon != NULL ? colon : end;
        if ((size_t)(hend - s) >= hostsz || hend == s)
            return -1;
        memcpy(host, s, (size_t)(hend - s));
        host[hend - s] = '\0';
    }
    if (colon != NULL) {
        size_t plen = (size_t)(end - colon - 1);
        if (plen == 0 || plen >= portsz || plen > 5)
            return -1;
        long v = 0;
        for (size_t i = 0; i < plen; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9')
                return -1;
            v = v * 10 + (colon[1 + i] - '0');
        }
        if (v < 1 || v > 65535)
            return -1;
        snprintf(port, portsz, "%ld", v);
    } else {
        snprintf(port, portsz, "%s", default_port);
    }
    return 0;
}

static int resolve(const char *host, const char *port, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        fprintf(stderr, "loadgen: cannot resolve %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Parses an absolute http URL into target t and builds its request head. */
static int target_init(struct target *t, const char *url, bool via_proxy, bool keepalive)
{
    char host[256], port[8];
    size_t ulen = strlen(url);
    if (ulen == 0 || ulen > MAX_URL_LEN)
        goto bad;
    for (size_t i = 0; i < ulen; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            goto bad;
    if (strncasecmp(url, "http://", 7) != 0)
        goto bad;
    const char *auth = url + 7;
    const char *slash = strchr(auth, '/');
    size_t alen = slash != NULL ? (size_t)(slash - auth) : strlen(auth);
    if (memchr(auth, '@', alen) != NULL || memchr(auth, '?', alen) != NULL ||
        memchr(auth, '#', alen) != NULL)
        goto bad;
    if (split_hostport(auth, alen, host, sizeof(host), port, sizeof(port), "80") != 0)
        goto bad;
    const char *path = slash != NULL ? slash : "/";
    /* Through a proxy the origin's name is the proxy's business, not ours. */
    if (!via_proxy && resolve(host, port, &t->addr, &t->addrlen) != 0)
        return -1;

    /* The request-target: absolute-form through a proxy (RFC 9112 3.2.2), origin-form
     * otherwise. The Host header is the URL's authority as written. */
    const char *conn = keepalive ? "" : "Connection: close\r\n";
    char *req = NULL;
    int n;
    if (via_proxy)
        n = asprintf(&req,
                     "GET %s%s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: proxyd-loadgen/1\r\n"
                     "Accept: */*\r\n%s\r\n",
                     url, slash != NULL ? "" : "/", (int)alen, auth, conn);
    else
        n = asprintf(&req,
                     "GET %s HTTP/1.1\r\nHost: %.*s\r\nUser-Agent: proxyd-loadgen/1\r\n"
                     "Accept: */*\r\n%s\r\n",
                     path, (int)alen, auth, conn);
    if (n < 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    t->url = xstrdup(url);
    t->request = req;
    t->request_len = (size_t)n;
    return 0;
bad:
    fprintf(stderr, "loadgen: bad URL (want http://host[:port][/path]): %.200s\n", url);
    return -1;
}

static int load_urls(const char *file, char ***out, size_t *count)
{
    FILE *f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "loadgen: %s: %s\n", file, strerror(errno));
        return -1;
    }
    size_t cap = 16, n = 0;
    char **v = xcalloc(cap, sizeof(*v));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) != -1) {
        char *s = line, *e = line + len;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e == s || *s == '#')
            continue;
        *e = '\0';
        if (n == MAX_URLS) {
            fprintf(stderr, "loadgen: %s: more than %d URLs\n", file, MAX_URLS);
            goto fail;
        }
        if (n == cap) {
            cap *= 2;
            char **nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL) {
                fprintf(stderr, "loadgen: out of memory\n");
                goto fail;
            }
            v = nv;
        }
        v[n++] = xstrdup(s);
    }
    free(line);
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "loadgen: %s: no URL\n", file);
        free(v);
        return -1;
    }
    *out = v;
    *count = n;
    return 0;
fail:
    free(line);
    fclose(f);
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Clients                                                                                   */

static void start_request(struct client *c);
static void io_cb(evutil_socket_t fd, short what, void *arg);

static void close_conn(struct client *c)
{
    if (c->ev_read != NULL) {
        event_free(c->ev_read);
        c->ev_read = NULL;
    }
    if (c->ev_write != NULL) {
        event_free(c->ev_write);
        c->ev_write = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->conn_addr = NULL;
}

static void client_done(struct client *c)
{
    struct run *r = c->run;
    close_conn(c);
    c->state = CS_DONE;
    if (--r->active == 0) {
        r->t_end = now_us();
        event_base_loopbreak(r->base);
    }
}

/* Records the outcome of the current request and schedules the next one from the loop. */
static void finish_request(struct client *c, enum result res)
{
    int64_t t = now_us();
    struct record *rec = c->rec;
    rec->latency_us = t - c->t0;
    rec->status = (int16_t)c->status;
    rec->bytes = c->body;
    rec->result = (uint8_t)res;
    event_del(c->ev_timeout);
    c->last_end_us = t;
    c->finished++;
    c->seq++;
    c->rec = NULL;
    c->state = CS_IDLE;
    if (res != RES_OK && res != RES_HTTP_STATUS && res != RES_SIZE)
        close_conn(c); /* the connection is in an unknown state */
    event_active(c->ev_next, EV_TIMEOUT, 0);
}

static void fail(struct client *c, enum result res)
{
    close_conn(c);
    finish_request(c, res);
}

static void reset_response(struct client *c)
{
    llhttp_init(&c->parser, HTTP_RESPONSE, &c->run->settings);
    c->parser.data = c;
    c->sent = 0;
    c->got_bytes = false;
    c->msg_done = false;
    c->server_keepalive = false;
    c->declared_len = -1;
    c->body = 0;
    c->status = 0;
}

static void do_send(struct client *c)
{
    const struct target *t = c->target;
    while (c->sent < t->request_len) {
        ssize_t n = send(c->fd, t->request + c->sent, t->request_len - c->sent, MSG_NOSIGNAL);
        if (n > 0) {
            c->sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->ev_write, NULL);
            return;
        }
        /* A reused connection that the server closed while idle: one fresh try, as any
         * HTTP client does for an idempotent request that got no response byte. */
        if (c->reused && !c->retried) {
            c->retried = true;
            c->run->retries++;
            close_conn(c);
            start_request(c);
            return;
        }
        fail(c, RES_CLOSED);
        return;
    }
    event_del(c->ev_write);
    c->state = CS_READING;
    event_add(c->ev_read, NULL);
}

static void begin_send(struct client *c)
{
    reset_response(c);
    c->state = CS_SENDING;
    do_send(c);
}

static void do_connect(struct client *c)
{
    struct run *r = c->run;
    const struct sockaddr_storage *to = r->via_proxy ? &r->proxy_addr : &c->target->addr;
    socklen_t tolen = r->via_proxy ? r->proxy_addrlen : c->target->addrlen;
    int fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "loadgen: socket: %s\n", strerror(errno));
        fail(c, RES_CONNECT);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
    c->conn_addr = to;
    c->reused = false;
    r->connects++;
    c->ev_read = event_new(r->base, fd, EV_READ | EV_PERSIST, io_cb, c);
    c->ev_write = event_new(r->base, fd, EV_WRITE | EV_PERSIST, io_cb, c);
    if (c->ev_read == NULL || c->ev_write == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    if (connect(fd, (const struct sockaddr *)to, tolen) == 0) {
        begin_send(c);
        return;
    }
    if (errno != EINPROGRESS) {
        fail(c, RES_CONNECT);
        return;
    }
    c->state = CS_CONNECTING;
    event_add(c->ev_write, NULL);
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

/* Starts request c->seq, or a retry of it (c->retried set), or ends the client. */
static void start_request(struct client *c)
{
    struct run *r = c->run;
    if (c->seq >= r->o->requests || r->stopping) {
        client_done(c);
        return;
    }
    if (c->rec == NULL) {
        /* Clients walk the URL list from different offsets so that with --urls they do
         * not all ask for the same object at the same moment. */
        c->target = &r->targets[(c->id + c->seq) % r->ntargets];
        c->rec = &r->recs[(size_t)c->id * r->o->requests + c->seq];
        c->rec->client = c->id;
        c->rec->seq = (uint32_t)c->seq;
        c->t0 = now_us();
        c->rec->start_us = c->t0 - r->t_start;
        if (c->finished == 0)
            c->first_start_us = c->t0;
        c->retried = false;
        struct timeval tv = tv_of(r->o->timeout_s);
        event_add(c->ev_timeout, &tv);
    }
    const struct sockaddr_storage *to = r->via_proxy ? &r->proxy_addr : &c->target->addr;
    if (c->fd >= 0 && r->o->keepalive && same_addr(c->conn_addr, to)) {
        c->reused = true;
        begin_send(c);
        return;
    }
    close_conn(c);
    do_connect(c);
}

static void complete_response(struct client *c)
{
    const struct opts *o = c->run->o;
    enum result res = RES_OK;
    if (c->status < 200 || c->status > 299)
        res = RES_HTTP_STATUS;
    else if (c->declared_len >= 0 && c->body != (uint64_t)c->declared_len)
        res = RES_SIZE;
    else if (o->expect_size >= 0 && c->body != (uint64_t)o->expect_size)
        res = RES_SIZE;
    if (!o->keepalive || !c->server_keepalive)
        close_conn(c);
    finish_request(c, res);
}

/* EOF or a read error: the end of a response delimited by EOF, or a failure. */
static void on_eof(struct client *c, bool error)
{
    if (!c->got_bytes && c->reused && !c->retried) {
        c->retried = true;
        c->run->retries++;
        close_conn(c);
        start_request(c);
        return;
    }
    if (!error && c->got_bytes && !c->msg_done)
        (void)llhttp_finish(&c->parser); /* completes an EOF-delimited body, if that is one */
    if (c->msg_done) {
        c->server_keepalive = false;
        complete_response(c);
        return;
    }
    fail(c, RES_CLOSED);
}

static void do_read(struct client *c)
{
    struct run *r = c->run;
    ssize_t n = recv(c->fd, r->rbuf, RECV_BUF_SIZE, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        on_eof(c, true);
        return;
    }
    if (n == 0) {
        on_eof(c, false);
        return;
    }
    c->got_bytes = true;
    llhttp_errno_t err = llhttp_execute(&c->parser, r->rbuf, (size_t)n);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED && c->msg_done) {
        /* Paused right after the message: anything after it was never asked for. */
        const char *pos = llhttp_get_error_pos(&c->parser);
        if (pos != NULL && pos < r->rbuf + n) {
            fail(c, RES_PARSE);
            return;
        }
        complete_response(c);
        return;
    }
    fail(c, RES_PARSE);
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    switch (c->state) {
    case CS_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fail(c, RES_CONNECT);
            return;
        }
        event_del(c->ev_write);
        begin_send(c);
        return;
    }
    case CS_SENDING:
        do_send(c);
        return;
    case CS_READING:
        do_read(c);
        return;
    default:
        /* A stray wake-up for a connection we are not using: ignore it. */
        return;
    }
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;
    if (c->rec != NULL)
        fail(c, RES_TIMEOUT);
}

static void next_cb(evutil_socket_t fd, short what, void *arg)
{
    start_request(arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    r->stopping = true;
    for (unsigned i = 0; i < r->o->clients; i++) {
        struct client *c = &r->clients[i];
        if (c->state == CS_DONE)
            continue;
        if (c->rec != NULL)
            fail(c, RES_ABORTED); /* schedules next_cb, which ends the client */
        else
            event_active(c->ev_next, EV_TIMEOUT, 0);
    }
}

static int cb_headers_complete(llhttp_t *p)
{
    struct client *c = p->data;
    c->status = p->status_code;
    if (p->flags & F_CONTENT_LENGTH)
        c->declared_len = (int64_t)p->content_length;
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t len)
{
    struct client *c = p->data;
    c->body += len;
    return 0;
}

static int cb_message_complete(llhttp_t *p)
{
    struct client *c = p->data;
    c->msg_done = true;
    c->server_keepalive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED;
}

/* ---------------------------------------------------------------------------------------- */
/* Statistics and output                                                                     */

struct summary {
    uint64_t requests, ok, errors, not_run;
    uint64_t by_result[RES__COUNT];
    uint64_t bytes;
    double total_s, req_per_s, mb_per_s;
    double time_per_req_ms; /* the study's: per client, elapsed / requests; mean over clients */
    double mean_ms, min_ms, p50_ms, p90_ms, p99_ms, max_ms;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    return (double)v[rank - 1] / 1000.0;
}

static void summarize(const struct run *r, struct summary *s)
{
    const struct opts *o = r->o;
    size_t total = (size_t)o->clients * o->requests;
    memset(s, 0, sizeof(*s));
    int64_t *lat = xcalloc(total > 0 ? total : 1, sizeof(*lat));
    size_t nlat = 0;
    double sum = 0;
    for (size_t i = 0; i < total; i++) {
        const struct record *rec = &r->recs[i];
        s->by_result[rec->result]++;
        if (rec->result == RES_NOT_RUN)
            continue;
        s->requests++;
        s->bytes += rec->bytes;
        if (rec->result == RES_OK) {
            lat[nlat++] = rec->latency_us;
            sum += (double)rec->latency_us;
        }
    }
    s->ok = s->by_result[RES_OK];
    s->not_run = s->by_result[RES_NOT_RUN];
    s->errors = s->requests - s->ok;
    s->total_s = (double)(r->t_end - r->t_start) / 1e6;
    if (s->total_s > 0) {
        s->req_per_s = (double)s->ok / s->total_s;
        s->mb_per_s = (double)s->bytes / 1e6 / s->total_s;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_i64);
    if (nlat > 0) {
        s->mean_ms = sum / (double)nlat / 1000.0;
        s->min_ms = (double)lat[0] / 1000.0;
        s->max_ms = (double)lat[nlat - 1] / 1000.0;
    }
    s->p50_ms = pct_ms(lat, nlat, 50);
    s->p90_ms = pct_ms(lat, nlat, 90);
    s->p99_ms = pct_ms(lat, nlat, 99);
    free(lat);
    double tpr = 0;
    unsigned nc = 0;
    for (unsigned i = 0; i < o->clients; i++) {
        const struct client *c = &r->clients[i];
        if (c->finished == 0)
            continue;
        tpr += (double)(c->last_end_us - c->first_start_us) / (double)c->finished;
        nc++;
    }
    if (nc > 0)
        s->time_per_req_ms = tpr / nc / 1000.0;
}

static void print_human(const struct run *r, const struct summary *s)
{
    const struct opts *o = r->o;
    printf("target:        %s%s (%zu URL%s, %s)\n", r->targets[0].url,
           r->ntargets > 1 ? " ..." : "", r->ntargets, r->ntargets > 1 ? "s" : "",
           o->keepalive ? "keep-alive" : "no keep-alive");
    printf("via:           %s\n", r->via_proxy ? o->proxy : "direct");
    printf("clients:       %u x %lu requests\n", o->clients, o->requests);
    printf("requests:      %" PRIu64 " (ok %" PRIu64 ", errors %" PRIu64 ", not run %" PRIu64
           ")\n",
           s->requests, s->ok, s->errors, s->not_run);
    if (s->errors > 0) {
        printf("errors:       ");
        for (int i = RES_HTTP_STATUS; i < RES__COUNT; i++)
            if (s->by_result[i] > 0)
                printf(" %s=%" PRIu64, result_names[i], s->by_result[i]);
        printf("\n");
    }
    printf("connections:   %" PRIu64 " (retries on stale keep-alive: %" PRIu64 ")\n", r->connects,
           r->retries);
    printf("total time:    %.3f s\n", s->total_s);
    printf("body bytes:    %" PRIu64 "\n", s->bytes);
    printf("throughput:    %.1f req/s, %.1f MB/s\n", s->req_per_s, s->mb_per_s);
    printf("time/request:  %.3f ms (per client: elapsed / requests, mean over clients)\n",
           s->time_per_req_ms);
    printf("latency (ok):  mean %.3f  min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms\n",
           s->mean_ms, s->min_ms, s->p50_ms, s->p90_ms, s->p99_ms, s->max_ms);
}

static void print_json(const struct run *r, const struct summary *s)
{
    const struct opts *o = r->o;
    printf("{\"clients\":%u,\"requests_per_client\":%lu,\"via\":\"%s\",\"keepalive\":%s,"
           "\"urls\":%zu,\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"not_run\":%" PRIu64 ",\"errors_by_kind\":{",
           o->clients, o->requests, r->via_proxy ? "proxy" : "direct",
           o->keepalive ? "true" : "false", r->ntargets, s->requests, s->ok, s->errors,
           s->not_run);
    bool first = true;
    for (int i = RES_HTTP_STATUS; i < RES__COUNT; i++) {
        printf("%s\"%s\":%" PRIu64, first ? "" : ",", result_names[i], s->by_result[i]);
        first = false;
    }
    printf("},\"connections\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"total_s\":%.6f,\"req_per_s\":%.3f,\"mb_per_s\":%.3f,\"time_per_req_ms\":%.3f,"
           "\"mean_ms\":%.3f,\"min_ms\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"max_ms\":%.3f}\n",
           r->connects, r->retries, s->bytes, s->total_s, s->req_per_s, s->mb_per_s,
           s->time_per_req_ms, s->mean_ms, s->min_ms, s->p50_ms, s->p90_ms, s->p99_ms,
           s->max_ms);
}

static int write_csv(const struct run *r, const char *file)
{
    FILE *f = fopen(file, "w");
    if (f == NULL) {
        fprintf(stderr, "loadgen: %s: %s\n", file, strerror(errno));
        return -1;
    }
    fprintf(f, "client,seq,start_us,latency_us,status,bytes,result\n");
    size_t total = (size_t)r->o->clients * r->o->requests;
    for (size_t i = 0; i < total; i++) {
        const struct record *rec = &r->recs[i];
        if (rec->result == RES_NOT_RUN)
            continue;
        fprintf(f, "%" PRIu32 ",%" PRIu32 ",%" PRId64 ",%" PRId64 ",%d,%" PRIu64 ",%s\n",
                rec->client, rec->seq, rec->start_us, rec->latency_us, rec->status, rec->bytes,
                result_names[rec->result]);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "loadgen: %s: %s\n", file, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Command line                                                                              */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loadgen [-c CLIENTS] [-n REQUESTS] (--url URL | --urls FILE) [options]\n"
            "  -c, --clients N         concurrent clients (default 10, max %d)\n"
            "  -n, --requests N        requests per client, sent one after the other (default 100)\n"
            "  -u, --url URL           http://host[:port]/path (default http://127.0.0.1:8080/obj1m)\n"
            "      --urls FILE         one URL per line; clients cycle through them\n"
            "  -x, --proxy HOST:PORT   send absolute-form requests through this HTTP proxy\n"
            "  -k, --no-keepalive      a new connection for every request (Connection: close)\n"
            "  -t, --timeout S         per-request timeout in seconds (default 30)\n"
            "  -d, --duration-limit S  global deadline in seconds (default 600)\n"
            "  -e, --expect-size N     every body must be exactly N bytes\n"
            "      --csv FILE          one row per request: client,seq,start_us,latency_us,status,bytes,result\n"
            "      --json              print the summary as one JSON line\n"
            "  -q, --quiet             no summary (with --csv)\n"
            "Exit status: 0 all requests ok, 1 some failed or did not run, 2 usage or setup error.\n",
            MAX_CLIENTS);
}

static int parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v > 0) || v > 86400 * 7)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { OPT_URLS = 256, OPT_CSV, OPT_JSON };
    static const struct option longs[] = {
        {"clients", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'n'},
        {"url", required_argument, NULL, 'u'},
        {"urls", required_argument, NULL, OPT_URLS},
        {"proxy", required_argument, NULL, 'x'},
        {"no-keepalive", no_argument, NULL, 'k'},
        {"timeout", required_argument, NULL, 't'},
        {"duration-limit", required_argument, NULL, 'd'},
        {"expect-size", required_argument, NULL, 'e'},
        {"csv", required_argument, NULL, OPT_CSV},
        {"json", no_argument, NULL, OPT_JSON},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->clients = 10;
    o->requests = 100;
    o->url = "http://127.0.0.1:8080/obj1m";
    o->timeout_s = 30;
    o->duration_limit_s = 600;
    o->expect_size = -1;
    o->keepalive = true;
    int ch;
    unsigned long v;
    while ((ch = getopt_long(argc, argv, "c:n:u:x:kt:d:e:qh", longs, NULL)) != -1) {
        switch (ch) {
        case 'c':
            if (parse_ulong(optarg, MAX_CLIENTS, &v) != 0 || v == 0)
                goto bad;
            o->clients = (unsigned)v;
            break;
        case 'n':
            if (parse_ulong(optarg, MAX_TOTAL_REQUESTS, &v) != 0 || v == 0)
                goto bad;
            o->requests = v;
            break;
        case 'u':
            o->url = optarg;
            break;
        case OPT_URLS:
            o->urls_file = optarg;
            break;
        case 'x':
            o->proxy = optarg;
            break;
        case 'k':
            o->keepalive = false;
            break;
        case 't':
            if (parse_seconds(optarg, &o->timeout_s) != 0)
                goto bad;
            break;
        case 'd':
            if (parse_seconds(optarg, &o->duration_limit_s) != 0)
                goto bad;
            break;
        case 'e':
            if (parse_ulong(optarg, (unsigned long)INT64_MAX, &v) != 0)
                goto bad;
            o->expect_size = (long long)v;
            break;
        case OPT_CSV:
            o->csv = optarg;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "loadgen: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    if ((unsigned long long)o->clients * o->requests > MAX_TOTAL_REQUESTS) {
        fprintf(stderr, "loadgen: clients x requests is capped at %llu\n", MAX_TOTAL_REQUESTS);
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "loadgen: bad value for -%c: %s\n", ch, optarg);
    return -1;
}

static int check_fd_limit(unsigned clients)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    rlim_t need = (rlim_t)clients + 32;
    if (rl.rlim_cur >= need)
        return 0;
    if (rl.rlim_max >= need) {
        rl.rlim_cur = need;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            return 0;
    }
    fprintf(stderr, "loadgen: %u clients need %llu file descriptors, limit is %llu\n", clients,
            (unsigned long long)need, (unsigned long long)rl.rlim_cur);
    return -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    if (parse_args(argc, argv, &o) != 0)
        return 2;
    if (check_fd_limit(o.clients) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    struct run r;
    memset(&r, 0, sizeof(r));
    r.o = &o;
    if (o.proxy != NULL) {
        char host[256], port[8];
        const char *p = o.proxy;
        if (strncasecmp(p, "http://", 7) == 0)
            p += 7;
        size_t plen = strlen(p);
        if (plen > 0 && p[plen - 1] == '/')
            plen--;
        if (split_hostport(p, plen, host, sizeof(host), port, sizeof(port), "3128") != 0) {
            fprintf(stderr, "loadgen: bad proxy (want HOST:PORT): %s\n", o.proxy);
            return 2;
        }
        if (resolve(host, port, &r.proxy_addr, &r.proxy_addrlen) != 0)
            return 2;
        r.via_proxy = true;
    }
    char **urls;
    size_t nurls;
    char *single[1];
    if (o.urls_file != NULL) {
        if (load_urls(o.urls_file, &urls, &nurls) != 0)
            return 2;
    } else {
        single[0] = (char *)o.url;
        urls = single;
        nurls = 1;
    }
    r.targets = xcalloc(nurls, sizeof(*r.targets));
    r.ntargets = nurls;
    for (size_t i = 0; i < nurls; i++)
        if (target_init(&r.targets[i], urls[i], r.via_proxy, o.keepalive) != 0)
            return 2;

    r.base = event_base_new();
    if (r.base == NULL) {
        fprintf(stderr, "loadgen: event_base_new failed\n");
        return 2;
    }
    llhttp_settings_init(&r.settings);
    r.settings.on_headers_complete = cb_headers_complete;
    r.settings.on_body = cb_body;
    r.settings.on_message_complete = cb_message_complete;
    r.rbuf = xcalloc(1, RECV_BUF_SIZE);
    r.recs = xcalloc((size_t)o.clients * o.requests, sizeof(*r.recs));
    r.clients = xcalloc(o.clients, sizeof(*r.clients));
    for (unsigned i = 0; i < o.clients; i++) {
        struct client *c = &r.clients[i];
        c->run = &r;
        c->id = i;
        c->fd = -1;
        c->ev_timeout = evtimer_new(r.base, timeout_cb, c);
        c->ev_next = evtimer_new(r.base, next_cb, c);
        if (c->ev_timeout == NULL || c->ev_next == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            return 2;
        }
    }
    struct event *deadline = evtimer_new(r.base, deadline_cb, &r);
    struct timeval dl = tv_of(o.duration_limit_s);
    evtimer_add(deadline, &dl);

    r.active = o.clients;
    r.t_start = now_us();
    for (unsigned i = 0; i < o.clients; i++)
        event_active(r.clients[i].ev_next, EV_TIMEOUT, 0);
    event_base_dispatch(r.base);
    if (r.t_end == 0)
        r.t_end = now_us();

    struct summary s;
    summarize(&r, &s);
    int rc = (s.errors == 0 && s.not_run == 0) ? 0 : 1;
    if (o.csv != NULL && write_csv(&r, o.csv) != 0)
        rc = 2;
    if (!o.quiet) {
        if (o.json)
            print_json(&r, &s);
        else
            print_human(&r, &s);
    }
    fflush(stdout);

    for (unsigned i = 0; i < o.clients; i++) {
        struct client *c = &r.clients[i];
        close_conn(c);
        event_free(c->ev_timeout);
        event_free(c->ev_next);
    }
    event_free(deadline);
    event_base_free(r.base);
    for (size_t i = 0; i < r.ntargets; i++) {
        free(r.targets[i].url);
        free(r.targets[i].request);
    }
    free(r.targets);
    if (urls != single) {
        for (size_t i = 0; i < nurls; i++)
            free(urls[i]);
        free(urls);
    }
    free(r.clients);
    free(r.recs);
    free(r.rbuf);
    return rc;
}
