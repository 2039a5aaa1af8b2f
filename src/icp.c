/*
 * icp: ICP version 2 (RFC 2186) as Squid speaks it (src/icp_v2.cc,
 * neighbors.cc, peer_select.cc were read for the protocol's details; the
 * code is our own). See include/proxyd/icp.h for the three parts.
 *
 * The message: a 20-byte header (opcode, version 2, total length, request
 * number, options, option data, sender address) and a NUL-terminated URL;
 * a query has a 4-byte requester address before its URL. Everything is in
 * network byte order. A datagram whose length field is not its size, or
 * whose URL is not exactly NUL-terminated at its end, is not a message.
 *
 * Server: a query is answered at once from the shared cache (a lookup and a
 * freshness check, no I/O), so a worker never keeps state for it. Answers
 * go back to the address and port the query came from, from the icp_port
 * socket (Squid matches a reply to its peer by that address and ICP port).
 *
 * Client: a query carries a request number (reqnum) unique in this worker;
 * an answer counts when it carries a pending query's number and comes from
 * one of the peers that query asked, once per peer. A peer that has been
 * asked and has not answered for dead_peer_timeout is still asked but not
 * waited for (Squid's neighborUp); its next answer makes it expected again.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxyd/access_log.h"
#include "proxyd/acl.h"
#include "proxyd/cache_meta.h"
#include "proxyd/cache_policy.h"
#include "proxyd/cache_store.h"
#include "proxyd/clock.h"
#include "proxyd/dns.h"
#include "proxyd/engine.h"
#include "proxyd/http_msg.h"
#include "proxyd/icp.h"
#include "proxyd/log.h"
#include "proxyd/peer.h"
#include "proxyd/stats.h"
#include "proxyd/url.h"

/* ---- wire format ---------------------------------------------------------- */

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static int known_opcode(int op)
{
    switch (op) {
    case PD_ICP_OP_QUERY: case PD_ICP_OP_HIT: case PD_ICP_OP_MISS: case PD_ICP_OP_ERR:
    case PD_ICP_OP_SECHO: case PD_ICP_OP_DECHO: case PD_ICP_OP_MISS_NOFETCH:
    case PD_ICP_OP_DENIED:
        return 1;
    default:
        return 0;
    }
}

enum pd_icp_decode_result pd_icp_decode(const void *buf, size_t len, pd_icp_msg *m)
{
    const unsigned char *b = buf;
    memset(m, 0, sizeof *m);
    if (!buf || len < PD_ICP_HEADER_LEN)
        return PD_ICP_ESHORT;
    m->opcode = b[0];
    m->version = b[1];
    m->length = (uint16_t)(b[2] << 8 | b[3]);
    m->reqnum = get32(b + 4);
    m->flags = get32(b + 8);
    m->pad = get32(b + 12);
    m->sender = get32(b + 16);
    if (m->version != PD_ICP_VERSION)
        return PD_ICP_EVERSION;
    if (m->length != len)
        return PD_ICP_ELENGTH;
    if (!known_opcode(m->opcode))
        return PD_ICP_EOPCODE;
    size_t off = PD_ICP_HEADER_LEN;
    if (m->opcode == PD_ICP_OP_QUERY) {
        if (len < off + 4)
            return PD_ICP_ESHORT;
        m->requester = get32(b + off);
        off += 4;
    }
    /* the URL field holds at least its NUL, ends the message, and has no other NUL */
    if (off >= len || b[len - 1] != '\0')
        return PD_ICP_EURL;
    const char *url = (const char *)b + off;
    size_t ul = strlen(url);
    if (off + ul + 1 != len)
        return PD_ICP_EURL;
    m->url = url;
    m->url_len = ul;
    return PD_ICP_OK;
}

size_t pd_icp_encode(void *buf, size_t size, int opcode, uint32_t reqnum, uint32_t flags,
                     uint32_t pad, const char *url, size_t url_len)
{
    size_t hl = PD_ICP_HEADER_LEN + (opcode == PD_ICP_OP_QUERY ? 4 : 0);
    size_t n = hl + url_len + 1;
    if (n > size || n > 65535 || (url_len && memchr(url, '\0', url_len)))
        return 0;
    unsigned char *b = buf;
    b[0] = (unsigned char)opcode;
    b[1] = PD_ICP_VERSION;
    b[2] = (unsigned char)(n >> 8);
    b[3] = (unsigned char)n;
    put32(b + 4, reqnum);
    put32(b + 8, flags);
    put32(b + 12, pad);
    put32(b + 16, 0); /* sender: 0, as Squid sends it */
    if (opcode == PD_ICP_OP_QUERY)
        put32(b + 20, 0);
    if (url_len)
        memcpy(b + hl, url, url_len);
    b[hl + url_len] = '\0';
    return n;
}

const char *pd_icp_opcode_name(int op)
{
    switch (op) {
    case PD_ICP_OP_QUERY: return "ICP_QUERY";
    case PD_ICP_OP_HIT: return "ICP_HIT";
    case PD_ICP_OP_MISS: return "ICP_MISS";
    case PD_ICP_OP_ERR: return "ICP_ERR";
    case PD_ICP_OP_SECHO: return "ICP_SECHO";
    case PD_ICP_OP_DECHO: return "ICP_DECHO";
    case PD_ICP_OP_MISS_NOFETCH: return "ICP_MISS_NOFETCH";
    case PD_ICP_OP_DENIED: return "ICP_DENIED";
    case PD_ICP_OP_HIT_OBJ: return "ICP_HIT_OBJ";
    default: return "ICP_INVALID";
    }
}

const char *pd_icp_log_code(int op)
{
    switch (op) {
    case PD_ICP_OP_HIT: return "UDP_HIT";
    case PD_ICP_OP_MISS: return "UDP_MISS";
    case PD_ICP_OP_MISS_NOFETCH: return "UDP_MISS_NOFETCH";
    case PD_ICP_OP_DENIED: return "UDP_DENIED";
    default: return "UDP_INVALID";
    }
}

/* ---- the worker's ICP ---------------------------------------------------- */

#define MAX_ASK 64              /* peers one query asks (cache_peer lines are at most 64) */
#define RESOLVE_EVERY_MS (5 * 60 * 1000)

struct icp_peer {
    struct pd_icp *icp;
    int idx;
    struct sockaddr_storage addr;   /* with the ICP port */
    socklen_t addr_len;             /* 0: no address yet */
    int64_t resolved_ms;
    pd_dns_req *dq;
    int rtt_ms;                     /* mean ICP round-trip time (Squid's, sub-ms ignored) */
    uint32_t acked;
    int64_t probe_start;            /* s: asked since then without an answer; 0: answered */
};

struct pd_icp_query {
    TAILQ_ENTRY(pd_icp_query) link;
    struct pd_icp *icp;
    uint32_t reqnum;
    char *url;
    size_t url_len;
    int peers[MAX_ASK];
    unsigned char replied[MAX_ASK];
    unsigned char expect[MAX_ASK];
    int n;
    int64_t start_ms;
    int fpm_rtt;
    pd_icp_outcome o;
    struct event *timer;
    pd_icp_done_cb cb;
    void *arg;
};

struct pd_icp {
    pd_engine *e;
    int server_fd;
    struct event *server_ev;
    int out_fd[2];                  /* IPv4, IPv6 */
    struct event *out_ev[2];
    uint32_t next_reqnum;
    TAILQ_HEAD(, pd_icp_query) queries;
    struct icp_peer *peer;
    int npeers;
};

static void stat_add(pd_icp *icp, enum pd_stat_id id)
{
    pd_stats_add(icp->e->stats, id, 1);
}

static void addr_ip(const struct sockaddr *sa, char *ip, size_t n)
{
    ip[0] = '\0';
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, (socklen_t)n);
    if (!ip[0])
        snprintf(ip, n, "-");
}

static uint16_t addr_port(const struct sockaddr *sa)
{
    return ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                           : ((const struct sockaddr_in *)sa)->sin_port);
}

/* Same address and port (an IPv4-mapped IPv6 source equals its IPv4 form). */
static int same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    struct sockaddr_in m;
    if (a->sa_family == AF_INET6 &&
        IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)a)->sin6_addr)) {
        memset(&m, 0, sizeof m);
        m.sin_family = AF_INET;
        memcpy(&m.sin_addr, ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr + 12, 4);
        m.sin_port = ((const struct sockaddr_in6 *)a)->sin6_port;
        a = (const struct sockaddr *)&m;
    }
    if (a->sa_family != b->ss_family)
        return 0;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static void send_to(pd_icp *icp, int fd, const void *msg, size_t len, const struct sockaddr *to,
                    socklen_t tolen)
{
    /* one datagram; a full socket buffer drops it, as a lost datagram would be */
    if (sendto(fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL, to, tolen) < 0)
        stat_add(icp, PD_STAT_ICP_DROPPED);
}

/* -- server -- */

/* What the shared cache says about url for an ICP query from `from`. */
static int lookup_opcode(pd_icp *icp, const pd_icp_msg *m, const struct sockaddr *from)
{
    pd_engine *e = icp->e;
    if (strpbrk(m->url, " \t\r\n"))
        return PD_ICP_OP_ERR;
    pd_url u;
    const char *why = NULL;
    if (pd_url_parse(m->url, m->url_len, PD_URL_ABSOLUTE, &u, &why) < 0)
        return PD_ICP_OP_ERR;
    pd_http_msg get;
    pd_http_msg_init(&get);
    get.is_request = 1;
    get.method = PD_STR("GET");
    get.method_id = PD_M_GET;
    get.version_major = get.version_minor = 1;
    pd_acl_req ar = { .client = from, .msg = &get, .url = &u, .now = time(NULL) };
    int op = PD_ICP_OP_MISS;
    char key[PD_URL_HOST_MAX + 8192];
    size_t kl;
    pd_cache_ref *ref = NULL;
    if (!pd_peers_icp_allowed(e->peers, &ar)) {
        op = PD_ICP_OP_DENIED;
    } else if (e->draining) {
        op = PD_ICP_OP_MISS_NOFETCH; /* about to go: a fetch through us would not start */
    } else if (!e->store || (e->acl && pd_acl_check_cache(e->acl, &ar) != PD_ACL_ALLOW) ||
               (kl = pd_url_format(&u, key, sizeof key)) >= sizeof key) {
        op = PD_ICP_OP_MISS;
    } else if (pd_cache_store_lookup(e->store, key, kl, &ref) == PD_CACHE_HIT) {
        /* a complete object, fresh now (or any, with icp_hit_stale on); a Vary
         * marker is a miss: the variant the requester wants is not known */
        ssize_t n = pd_cache_store_meta(e->store, ref, NULL, 0);
        char *blob = n > 0 ? malloc((size_t)n) : NULL;
        pd_cache_meta cm;
        if (blob && pd_cache_store_meta(e->store, ref, blob, (size_t)n) == n &&
            pd_cache_meta_parse(blob, (size_t)n, &cm) == 0) {
            if (cm.kind != PD_META_VARY) {
                const pd_refresh_rule *rule = pd_cache_policy_refresh_match(e->refresh, key);
                int64_t life = pd_cache_policy_lifetime(&cm.head, rule, cm.response_time, NULL);
                int64_t age = pd_cache_policy_age(&cm.head, cm.request_time, cm.response_time,
                                                  time(NULL));
                if (e->conf->icp_hit_stale ||
                    pd_cache_policy_decide(&get, &cm.head, life, age) == PD_CP_FRESH)
                    op = PD_ICP_OP_HIT;
            }
            pd_cache_meta_free(&cm);
        }
        free(blob);
        pd_cache_store_release(e->store, ref);
    } else if (ref) {
        pd_cache_store_release(e->store, ref); /* being written: not a hit yet */
    }
    pd_http_msg_free(&get);
    pd_url_free(&u);
    return op;
}

static void log_query(pd_icp *icp, const struct sockaddr *from, int op, size_t bytes,
                      const char *url, size_t url_len)
{
    pd_engine *e = icp->e;
    if (!e->conf->log_icp_queries || !e->alog)
        return;
    char ip[INET6_ADDRSTRLEN];
    addr_ip(from, ip, sizeof ip);
    pd_log_entry le = {
        .client_ip = ip,
        .result = pd_icp_log_code(op),
        .status = 0,
        .bytes = bytes,
        .method = "ICP_QUERY",
        .method_len = 9,
        .url = url,
        .url_len = url_len,
        .hier = "HIER_NONE",
        .peer_ip = "-",
        .client_port = addr_port(from),
        .server_ms = -1,
    };
    gettimeofday(&le.start, NULL);
    pd_access_log_write(e->alog, &le);
}

static void serve(pd_icp *icp, const unsigned char *buf, size_t len, const struct sockaddr *from,
                  socklen_t fromlen)
{
    pd_icp_msg m;
    enum pd_icp_decode_result r = pd_icp_decode(buf, len, &m);
    if (r == PD_ICP_EURL && m.opcode == PD_ICP_OP_QUERY) {
        stat_add(icp, PD_STAT_ICP_QUERIES_RECV);
        r = PD_ICP_OK; /* answered ICP_ERR below, as Squid does */
        m.url = "";
        m.url_len = 0;
    } else if (r != PD_ICP_OK || m.opcode != PD_ICP_OP_QUERY) {
        /* malformed, or an answer on the query port (ours go out from another socket) */
        stat_add(icp, PD_STAT_ICP_DROPPED);
        return;
    } else {
        stat_add(icp, PD_STAT_ICP_QUERIES_RECV);
    }
    int op = m.url_len ? lookup_opcode(icp, &m, from) : PD_ICP_OP_ERR;
    unsigned char out[PD_ICP_MAX_MSG];
    size_t n = pd_icp_encode(out, sizeof out, op, m.reqnum, 0, 0, m.url, m.url_len);
    if (!n)
        return;
    send_to(icp, icp->server_fd, out, n, from, fromlen);
    switch (op) {
    case PD_ICP_OP_HIT: stat_add(icp, PD_STAT_ICP_REPLIES_SENT_HIT); break;
    case PD_ICP_OP_MISS: stat_add(icp, PD_STAT_ICP_REPLIES_SENT_MISS); break;
    case PD_ICP_OP_MISS_NOFETCH: stat_add(icp, PD_STAT_ICP_REPLIES_SENT_MISS_NOFETCH); break;
    case PD_ICP_OP_DENIED: stat_add(icp, PD_STAT_ICP_REPLIES_SENT_DENIED); break;
    default: stat_add(icp, PD_STAT_ICP_REPLIES_SENT_ERR); break;
    }
    log_query(icp, from, op, n, m.url, m.url_len);
}

/* -- client -- */

static void finish(pd_icp_query *q)
{
    pd_icp *icp = q->icp;
    TAILQ_REMOVE(&icp->queries, q, link);
    pd_icp_done_cb cb = q->cb;
    void *arg = q->arg;
    pd_icp_outcome o = q->o;
    event_free(q->timer);
    free(q->url);
    free(q);
    cb(arg, &o); /* after the query is gone: the callback may free its transaction */
}

static void answer(pd_icp *icp, const unsigned char *buf, size_t len, const struct sockaddr *from)
{
    pd_icp_msg m;
    if (pd_icp_decode(buf, len, &m) != PD_ICP_OK || m.opcode == PD_ICP_OP_QUERY) {
        stat_add(icp, PD_STAT_ICP_DROPPED);
        return;
    }
    for (int k = 0; k < icp->npeers; k++) /* any answer says the peer is up (neighborAlive) */
        if (icp->peer[k].addr_len && same_addr(from, &icp->peer[k].addr))
            icp->peer[k].probe_start = 0;
    pd_icp_query *q;
    TAILQ_FOREACH(q, &icp->queries, link)
        if (q->reqnum == m.reqnum)
            break;
    int j = -1;
    for (int k = 0; q && k < q->n && j < 0; k++) {
        struct icp_peer *p = &icp->peer[q->peers[k]];
        if (!q->replied[k] && p->addr_len && same_addr(from, &p->addr))
            j = k;
    }
    if (j < 0 || m.url_len != q->url_len || memcmp(m.url, q->url, q->url_len)) {
        stat_add(icp, PD_STAT_ICP_DROPPED); /* late, unknown, or not from a peer asked */
        return;
    }
    int idx = q->peers[j];
    struct icp_peer *p = &icp->peer[idx];
    pd_peers *ps = icp->e->peers;
    int64_t now = pd_clock_ms();
    int rtt = (int)(now - q->start_ms);
    p->acked++;
    if (rtt >= 1 && rtt <= 10000) { /* neighborUpdateRtt: a running mean over 50 answers */
        uint32_t n = p->acked < 50 ? p->acked : 50;
        p->rtt_ms = (int)(((int64_t)p->rtt_ms * (n - 1) + rtt) / n);
        pd_peer_set_rtt(ps, idx, p->rtt_ms); /* weighted-round-robin's measure */
    }
    q->replied[j] = 1;
    q->o.replies++;
    if (m.opcode == PD_ICP_OP_HIT) {
        stat_add(icp, PD_STAT_ICP_REPLIES_RECV_HIT);
        q->o.hit = idx;
        finish(q);
        return;
    }
    if (m.opcode == PD_ICP_OP_MISS) {
        stat_add(icp, PD_STAT_ICP_REPLIES_RECV_MISS);
        if (!pd_peer_is_sibling(ps, idx) && !pd_peer_closest_only(ps, idx)) {
            /* FIRST_PARENT_MISS: the fastest answer, weighted */
            int w = pd_peer_weight(ps, idx);
            int r = rtt / (w > 0 ? w : 1);
            if (r < 1)
                r = 1;
            if (q->o.first_parent_miss < 0 || r < q->fpm_rtt) {
                q->o.first_parent_miss = idx;
                q->fpm_rtt = r;
            }
        }
    } else {
        stat_add(icp, PD_STAT_ICP_REPLIES_RECV_OTHER); /* MISS_NOFETCH, DENIED, ERR */
    }
    int waiting = 0;
    for (int k = 0; k < q->n; k++)
        waiting |= q->expect[k] && !q->replied[k];
    if (!waiting)
        finish(q);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_icp_query *q = arg;
    (void)fd;
    (void)what;
    q->o.timed_out = 1;
    stat_add(q->icp, PD_STAT_ICP_QUERY_TIMEOUTS);
    finish(q);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_icp *icp = arg;
    (void)what;
    unsigned char buf[PD_ICP_MAX_MSG];
    for (int i = 0; i < 64; i++) { /* bounded: other events get their turn */
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return; /* EAGAIN, or an ICMP error reported on the socket */
        if (fd == icp->server_fd)
            serve(icp, buf, (size_t)n, (struct sockaddr *)&from, fl);
        else
            answer(icp, buf, (size_t)n, (struct sockaddr *)&from);
    }
}

static void set_icp_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

static void resolved(const pd_dns_result *r, void *arg)
{
    struct icp_peer *p = arg;
    p->dq = NULL;
    p->resolved_ms = pd_clock_ms();
    if (r->error || r->n < 1)
        return; /* keep the address we had */
    memcpy(&p->addr, &r->addr[0], sizeof p->addr);
    p->addr_len = r->addrlen[0];
    set_icp_port(&p->addr, pd_peer_icp_port(p->icp->e->peers, p->idx));
}

static void resolve(pd_icp *icp, struct icp_peer *p)
{
    const char *host = pd_peer_host(icp->e->peers, p->idx);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&p->addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->addr;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        p->addr_len = sizeof *s4;
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        p->addr_len = sizeof *s6;
    } else {
        if (!p->dq && icp->e->dns) {
            pd_dns_req *q = pd_dns_resolve(icp->e->dns, host, resolved, p);
            if (q)
                p->dq = q;
        }
        return;
    }
    p->resolved_ms = INT64_MAX; /* a literal never changes */
    set_icp_port(&p->addr, pd_peer_icp_port(icp->e->peers, p->idx));
}

static int out_socket(pd_icp *icp, int family)
{
    int k = family == AF_INET6;
    if (icp->out_fd[k] >= 0)
        return icp->out_fd[k];
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pd_log_warn("icp: cannot open a UDP socket: %s", strerror(errno));
        return -1;
    }
    icp->out_ev[k] = event_new(icp->e->base, fd, EV_READ | EV_PERSIST, read_cb, icp);
    if (!icp->out_ev[k] || event_add(icp->out_ev[k], NULL) < 0) {
        if (icp->out_ev[k])
            event_free(icp->out_ev[k]);
        icp->out_ev[k] = NULL;
        close(fd);
        return -1;
    }
    icp->out_fd[k] = fd;
    return fd;
}

pd_icp_query *pd_icp_query_start(pd_icp *icp, const char *url, size_t url_len,
                                 const int *peers, int n, pd_icp_done_cb cb, void *arg)
{
    if (!icp || n <= 0)
        return NULL;
    unsigned char msg[PD_ICP_MAX_MSG];
    uint32_t reqnum = icp->next_reqnum++;
    if (!reqnum)
        reqnum = icp->next_reqnum++;
    size_t ml = pd_icp_encode(msg, sizeof msg, PD_ICP_OP_QUERY, reqnum, 0, 0, url, url_len);
    if (!ml)
        return NULL;
    pd_icp_query *q = calloc(1, sizeof *q);
    if (!q || !(q->url = malloc(url_len + 1))) {
        free(q);
        return NULL;
    }
    memcpy(q->url, url, url_len);
    q->url[url_len] = '\0';
    q->url_len = url_len;
    q->icp = icp;
    q->reqnum = reqnum;
    q->cb = cb;
    q->arg = arg;
    q->o.hit = q->o.first_parent_miss = -1;
    q->start_ms = pd_clock_ms();
    int64_t now_s = q->start_ms / 1000;
    int64_t dead_s = icp->e->conf->dead_peer_timeout > 0 ? icp->e->conf->dead_peer_timeout / 1000 : 10;
    int64_t parent_rtt = 0, sibling_rtt = 0;
    int parents = 0, siblings = 0;
    for (int i = 0; i < n && q->n < MAX_ASK; i++) {
        if (peers[i] < 0 || peers[i] >= icp->npeers)
            continue;
        struct icp_peer *p = &icp->peer[peers[i]];
        if (p->resolved_ms != INT64_MAX && q->start_ms - p->resolved_ms >= RESOLVE_EVERY_MS)
            resolve(icp, p); /* the address in hand is used meanwhile */
        if (!p->addr_len)
            continue;
        int fd = out_socket(icp, p->addr.ss_family);
        if (fd < 0 || sendto(fd, msg, ml, MSG_DONTWAIT | MSG_NOSIGNAL,
                             (struct sockaddr *)&p->addr, p->addr_len) < 0)
            continue;
        stat_add(icp, PD_STAT_ICP_QUERIES_SENT);
        int up = !p->probe_start || now_s - p->probe_start <= dead_s;
        if (!p->probe_start)
            p->probe_start = now_s;
        int k = q->n++;
        q->peers[k] = peers[i];
        q->expect[k] = (unsigned char)up;
        if (!up)
            continue; /* asked, not waited for */
        q->o.expected++;
        if (pd_peer_is_sibling(icp->e->peers, peers[i])) {
            siblings++;
            sibling_rtt += p->rtt_ms;
        } else {
            parents++;
            parent_rtt += p->rtt_ms;
        }
    }
    if (!q->o.expected) {
        free(q->url);
        free(q);
        return NULL;
    }
    /* neighborsUdpPing's timeout */
    const pd_conf *conf = icp->e->conf;
    int64_t ms = conf->icp_query_timeout;
    if (!ms) {
        ms = parents ? 2 * parent_rtt / parents : 2 * sibling_rtt / siblings;
        if (conf->maximum_icp_query_timeout && ms > conf->maximum_icp_query_timeout)
            ms = conf->maximum_icp_query_timeout;
        if (ms < conf->minimum_icp_query_timeout)
            ms = conf->minimum_icp_query_timeout;
    }
    q->timer = evtimer_new(icp->e->base, timeout_cb, q);
    struct timeval tv = pd_clock_tv(ms);
    if (!q->timer || evtimer_add(q->timer, &tv) < 0) {
        if (q->timer)
            event_free(q->timer);
        free(q->url);
        free(q);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&icp->queries, q, link);
    return q;
}

void pd_icp_query_cancel(pd_icp_query *q)
{
    if (!q)
        return;
    TAILQ_REMOVE(&q->icp->queries, q, link);
    event_free(q->timer);
    free(q->url);
    free(q);
}

pd_icp *pd_icp_new(pd_engine *e, int server_fd)
{
    pd_icp *icp = calloc(1, sizeof *icp);
    if (!icp)
        return NULL;
    icp->e = e;
    icp->server_fd = server_fd;
    icp->out_fd[0] = icp->out_fd[1] = -1;
    TAILQ_INIT(&icp->queries);
    /* request numbers: any start will do; a per-process one keeps a restarted
     * worker's numbers apart from its predecessor's late answers */
    icp->next_reqnum = (uint32_t)getpid() << 16 | (uint32_t)(pd_clock_ms() & 0xffff);
    if (server_fd >= 0) {
        icp->server_ev = event_new(e->base, server_fd, EV_READ | EV_PERSIST, read_cb, icp);
        if (!icp->server_ev || event_add(icp->server_ev, NULL) < 0) {
            pd_log_error("icp: cannot watch the icp_port socket");
            pd_icp_free(icp);
            return NULL;
        }
    }
    int np = pd_peers_count(e->peers);
    if (np > 0 && !(icp->peer = calloc((size_t)np, sizeof *icp->peer))) {
        pd_icp_free(icp);
        return NULL;
    }
    icp->npeers = np;
    for (int i = 0; i < np; i++) {
        icp->peer[i].icp = icp;
        icp->peer[i].idx = i;
        if (pd_peer_icp_port(e->peers, i))
            resolve(icp, &icp->peer[i]);
    }
    return icp;
}

void pd_icp_free(pd_icp *icp)
{
    if (!icp)
        return;
    while (!TAILQ_EMPTY(&icp->queries))
        pd_icp_query_cancel(TAILQ_FIRST(&icp->queries));
    for (int i = 0; i < icp->npeers; i++)
        if (icp->peer[i].dq)
            pd_dns_cancel(icp->peer[i].dq);
    free(icp->peer);
    if (icp->server_ev)
        event_free(icp->server_ev);
    for (int k = 0; k < 2; k++) {
        if (icp->out_ev[k])
            event_free(icp->out_ev[k]);
        if (icp->out_fd[k] >= 0)
            close(icp->out_fd[k]);
    }
    /* server_fd is the worker's (inherited from the master), closed at its exit */
    free(icp);
}
