/*
 * client_int.h: what the parts of the client module share (client.c: the
 * connection, the transaction and the origin side; client_cache.c: answering
 * from the cache and filling it). Not a public interface: only src/client*.c
 * include it.
 */
#ifndef PROXYD_CLIENT_INT_H
#define PROXYD_CLIENT_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include "proxyd/conn.h"
#include <event2/event.h>

#include "proxyd/acl.h"
#include "proxyd/auth.h"
#include "proxyd/cache_meta.h"
#include "proxyd/cache_policy.h"
#include "proxyd/cache_store.h"
#include "proxyd/peer.h"
#include "proxyd/ext_acl.h"
#include "proxyd/helper.h"
#include "proxyd/client.h"
#include "proxyd/acl.h"
#include "proxyd/dns.h"
#include "proxyd/headers.h"
#include "proxyd/http_msg.h"
#include "proxyd/http_parse.h"
#include "proxyd/icp.h"
#include "proxyd/result.h"
#include "proxyd/url.h"

/* Per-direction buffering cap: the producer pauses above HIGH, resumes below LOW. */
#define HIGH_WM (256 * 1024)
#define LOW_WM (64 * 1024)
/* Stored bytes queued for a client at once: they are references into the store (no copy,
 * no memory of their own but the chain), so a 1 MiB hit is queued whole and the socket
 * refills from its write readiness alone, without a round through the transaction per
 * 256 KB (measured: 1 MiB hits 17% faster, bench/compare --pin --client loadgen). With
 * hit_sendfile the lent pages stay in their HIGH_WM rounds. */
#define HIT_QUEUE_MAX (2 * 1024 * 1024)
/* Stored bytes are lent to the kernel (sendfile) only in runs of whole pages
 * this long: below, a copy costs less than the extra system call. */
#define LEND_MIN (32 * 1024)

#define CLIENT_MAGIC 0x50444331u /* "PDC1" */

/* C_ACCESS: http_access waits for a helper's answer (client_access.c) */
enum cstate { C_HEAD, C_RESOLVE, C_ACCESS, C_CONNECT, C_FORWARD, C_TUNNEL, C_CACHE, C_CLOSING };

/* How a transaction ends once the driver is done with it (client_drive.c). */
enum client_closing { CLOSE_NOT = 0, CLOSE_IDLE, CLOSE_FREE };
/* C_CACHE: serving a stored response, or waiting for one another fetch is writing */

#define MAX_RANGES 16

/*
 * What can happen to a transaction (client_drive.c). A callback from the
 * event loop, the resolver, a helper or the cache only records its event,
 * and what the event carries into the transaction's ev_* fields, with
 * client_post. The driver runs the handlers one at a time, in the order the
 * events came (each once, however often it was posted meanwhile), until none
 * is pending or the transaction ends: no handler ever runs inside another,
 * so none can free what a caller up the stack still uses.
 *   X(event, handler): the handler is in the file of the step it belongs to.
 */
#define PD_CLIENT_EVENTS(X)                                                                    \
    X(START, client_on_start)           /* client.c: a request's first bytes came */          \
    X(CL_READ, client_on_read)          /* client.c: bytes from the client */                 \
    X(CL_WRITE, client_on_write)        /* client.c: its output drained to the low mark */    \
    X(CL_CONN, client_on_conn)          /* client.c: EOF or error (ev_cl_what) */             \
    X(TIMER, client_on_timer)           /* client.c: request_timeout, a helper's wait */      \
    X(LIFETIME, client_on_lifetime)     /* client.c: client_lifetime */                       \
    X(UP_READ, client_on_up_read)       /* upstream.c: bytes from the origin */               \
    X(UP_WRITE, client_on_up_write)     /* upstream.c: its output drained */                  \
    X(UP_CONN, client_on_up_conn)       /* upstream.c: connected, EOF, error (ev_up_what) */  \
    X(DNS, client_on_dns)               /* upstream.c: looked up (ev_dns_error, addrs) */     \
    X(ICP, client_on_icp)               /* upstream.c: the peers' ICP answers (ev_icp) */     \
    X(VERIFY, client_on_verify)         /* client_intercept.c: Host looked up (ev_verified) */ \
    X(ACCESS, client_on_access)         /* client_access.c: an auth or external acl answer */ \
    X(REWRITE, client_on_rewrite)       /* client_rewrite.c: the URL rewriter's (ev_rw_*) */  \
    X(STORE_ID, client_on_store_id)     /* client_rewrite.c: the Store-ID helper's answer */  \
    X(CACHE, client_on_cache)           /* client_cache.c: the object waited for moved */     \
    X(BG_START, client_go_upstream)     /* client_bg.c: a background revalidation begins */

enum client_event {
#define PD_CLIENT_EVENT_ENUM(e, h) CEV_##e,
    PD_CLIENT_EVENTS(PD_CLIENT_EVENT_ENUM)
#undef PD_CLIENT_EVENT_ENUM
    CEV_COUNT
};

/* Background revalidations one worker runs at once; past it, stale objects
 * are revalidated in the foreground (client_cache.c). */
#define CLIENT_BG_MAX 256

/*
 * The stored object's pages handed to the client's output buffer with
 * evbuffer_add_reference: the store reference is released when the last of
 * them has left the buffer, whatever happened to the client meanwhile.
 */
struct hitref {
    pd_cache_store *store;
    pd_cache_ref *ref;
    unsigned outstanding;   /* extents still in an evbuffer */
    int owner_done;         /* the client will add no more */
};
enum rstate { R_HEAD, R_BODY, R_DONE };

struct pd_client {
    unsigned magic;
    TAILQ_ENTRY(pd_client) link;
    pd_engine *w;
    pd_conn *bev;
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    /* the client as acls and the log see it: peer, or the address that
     * follow_x_forwarded_for believed (Squid's indirect client) */
    struct sockaddr_storage src;
    char src_ip[INET6_ADDRSTRLEN];
    uint16_t local_port;
    enum cstate state;
    int driving;                /* client_drive is on the stack */
    enum client_closing closing; /* ending: done when the driver returns */
    /* events posted and not handled yet (client_drive.c), and what they carry */
    uint32_t ev_pending;        /* a bit per enum client_event */
    uint8_t ev_queue[CEV_COUNT]; /* their order: ev_n from ev_head, round */
    uint8_t ev_head, ev_n;
    short ev_cl_what, ev_up_what; /* CL_CONN, UP_CONN: PD_CONN_* flags */
    pd_conn *ev_up;             /* the origin connection the UP_* events came from */
    int ev_dns_error;           /* DNS: 0 (addrs set), or a PD_DNS_E* code */
    int ev_verified;            /* VERIFY: Host names the original destination */
    pd_icp_outcome ev_icp;      /* ICP */
    int ev_rw_verdict, ev_rw_status; /* REWRITE: the rewriter's answer (client_rewrite.c) */
    char *ev_rw_url;            /* its URL (owned; freed by the handler or txn_free) */
    char ev_rw_why[96];         /* why it failed, for the log */
    unsigned nreq;              /* requests started on this connection */
    struct event *timer;        /* head / idle timer */
    struct event *life;         /* client_lifetime */
    int64_t life_at_ms;         /* its deadline (monotonic), kept across transactions */

    /* the request */
    pd_http_parser *reqp;
    pd_http_msg req;
    pd_url url;
    int have_url;
    int keep_alive;             /* keep the client connection after this response */
    uint64_t rb_left;           /* request body bytes still to move (PD_BODY_LENGTH) */
    struct evbuffer *rbuf;      /* body read (and validated) before the origin is connected */
    int rb_done;                /* request body completely read from the client */

    /* the origin */
    pd_conn *up;
    int up_from_pool;
    int up_connected;
    pd_dns_req *dnsq;
    pd_dns_result addrs;
    int addr_i;
    char key[PD_URL_HOST_MAX + 16 + 64]; /* pool key: authority [" from " source] */
    char origin_ip[INET6_ADDRSTRLEN];
    int retried;
    int acl_need_dst;           /* http_access could not decide before DNS */
    /* cache_peer (peer.c): where this miss may go, in order */
    pd_peer_cand cands[PD_PEER_MAX_CAND];
    int n_cands, cand_i;        /* n_cands 0: not selected (direct, as without peers) */
    int via_peer;               /* 1 + the cache_peer tried now, 0: the origin itself */
    const char *hier;           /* its hierarchy code for the log, NULL: HIER_DIRECT */
    struct pd_icp_query *icpq;  /* ICP: the peers' answers awaited (icp.c) */
    int icp_asked;              /* ICP was considered for this miss (at most once) */
    int peer_held;              /* 1 + the peer whose max-conn count c->up takes, 0: none */
    const struct sockaddr_storage *out_src; /* tcp_outgoing_address for this origin, or NULL */
    /* proxyd_cluster (client_cluster.c) */
    int via_member;             /* going to the member that owns the key: member_addr */
    int from_cluster;           /* a member forwarded it here: served here, never forwarded */
    struct sockaddr_storage member_addr;
    struct sockaddr_storage members_tried[4]; /* members this request failed to reach */
    int n_members_tried;

    /* interception (client_intercept.c) */
    int intercepted;            /* NAT-redirected: the origin is orig_dst, whatever Host says */
    int host_verified;          /* Host names orig_dst: the cache may answer and store */
    struct sockaddr_storage orig_dst;
    socklen_t orig_dst_len;

    /* authentication (client_access.c) */
    enum pd_auth_state auth_state; /* the credentials: not looked at, accepted, refused */
    char user[PD_AUTH_USER_MAX];   /* PD_AUTH_OK: who (logged as %un) */
    pd_auth_check *authq;          /* C_ACCESS: the helper's answer awaited */
    void (*access_next)(struct pd_client *c); /* where the request goes on once allowed */
    pd_ext_check *extq;            /* C_ACCESS: an external acl's helper answer awaited */
    struct { size_t type; uint64_t hash; int answer; } ext_memo[8]; /* this request's answers */
    int n_ext_memo;
    char notes[PD_EXT_NOTES_MAX];  /* annotations from helper replies, "key=value\n"... */
    pd_helper_req *rwq;            /* C_ACCESS: the URL rewriter's answer awaited */
    struct rw_wait *rw_wait;       /* with rwq: its callback's argument (owned; freed by the
                                    * answer or by client_access_drop) */
    int rewritten;                 /* the rewriter was consulted (or skipped) */
    pd_helper_req *sidq;           /* C_ACCESS: the Store-ID helper's answer awaited */
    int store_id_done;             /* the Store-ID helper was consulted (or skipped) */
    char *store_id;                /* its answer: the cache key instead of the URL */

    /* the response */
    pd_http_parser *respp;
    pd_http_msg resp;
    enum rstate rstate;
    enum pd_body_kind out_kind; /* framing towards the client */
    uint64_t in_left;           /* response body bytes still expected (LENGTH) */
    int head_sent;              /* response head written to the client */
    uint64_t resp_bytes_in;     /* response bytes read from the origin */
    uint64_t body_max;          /* reply_body_max_size for this reply (UINT64_MAX: none) */
    uint64_t body_out;          /* response body bytes passed on (against body_max) */

    /* tunnel */
    int cl_eof, up_eof;

    /* cache */
    int use_cache;              /* GET/HEAD the cache may answer or store */
    const pd_refresh_rule *rule;
    char *ckey;                 /* key of the lookup / the object being written */
    size_t ckey_len;
    pd_cache_ref *cref;         /* stored (or in-progress) object we read */
    pd_cache_writer *cw;        /* object we fill from the origin */
    struct hitref *hr;          /* owns cref once serving started */
    int collapsed;              /* cref is being written by another fetch */
    int cf_hold;                /* collapsed on an object of unknown length: wait for its end */
    int detached;               /* the client left (or a background one never had one):
                                 * still filling cw for collapsed readers */
    /* a background revalidation (client_bg.c): no client connection (bev
     * NULL), what would go to a client goes to sink and is dropped */
    int bg;
    enum { BG_FAILED = 0, BG_REFRESHED, BG_REPLACED } bg_outcome; /* what it did to the object */
    struct evbuffer *sink;
    int revalidating;           /* the origin request is conditional on cref */
    int spl_cu, spl_uc;         /* CONNECT: client->origin, origin->client spliced */
    int bulk_cu, bulk_uc;       /* CONNECT: that direction carried a bulk round */
    int spl_failed;             /* CONNECT: a splice could not start; copy from now on */
    int stale_ok;               /* cref may answer if the revalidation fails (max_stale...) */
    int cwaiting;               /* registered for the store's wakeup */
    pd_cache_meta cm;           /* cref's stored head */
    int have_cm;
    /* a stale copy kept while collapsed onto another request's refresh of it:
     * if that refresh fails, this request revalidates it itself (stale_ok) */
    pd_cache_ref *stale_ref;
    pd_cache_meta stale_cm;
    int have_stale;
    pd_cache_iter it;
    int hit_chunked;            /* serving an in-progress object to an HTTP/1.1 client */
    pd_range ranges[MAX_RANGES];
    size_t nranges, range_i;
    int multipart;
    uint64_t blen;
    enum pd_result miss_result; /* TCP_MISS or TCP_REFRESH_MODIFIED */

    /* log */
    struct timeval t0;
    enum pd_result result;      /* PD_R_UNSET: nothing to log */
    int status;
    uint64_t out_bytes;         /* bytes queued to the client for this transaction */
    uint64_t in_bytes;          /* bytes read from the client for this transaction (stats) */
    uint64_t up_out_bytes;      /* bytes queued to the origin (stats) */
    int64_t ttfb_us;            /* t0 to the response head, -1 before (stats) */
    int64_t up_t0, up_t1;       /* %<tt: first connect to the origin, last I/O with it (ms, 0: none) */
    const char *err_code;       /* %err_code: the error page answered (static), or NULL */
    char err_detail[128];       /* %err_detail */
};

/* Where the response to the client goes (a background transaction's sink). */
static inline struct evbuffer *cout(struct pd_client *c)
{
    return c->bev ? pd_conn_output(c->bev) : c->sink;
}

/* Open connections of one client address (engine's ipc[], client.c; acl maxconn, mgr:client_list). */
struct pd_ipcount {
    struct pd_ipcount *next;
    int n;
    char ip[INET6_ADDRSTRLEN];
};

/* ---- client.c ---------------------------------------------------------- */

/* The transaction's response is queued: the connection waits for the next
 * request, or closes once flushed (no keep-alive, body not read whole,
 * draining). May free c. */
void client_txn_done(struct pd_client *c);
/* Answer with an error page; keep the connection when keep allows it. May free c. */
void client_fail_request(struct pd_client *c, int status, const char *err, const char *detail,
                         int keep);
/* The same with extra header lines (CRLF-terminated), e.g. Proxy-Authenticate. */
void client_fail_request_hdrs(struct pd_client *c, int status, const char *err,
                              const char *detail, int keep, const char *extra);
/* Log the transaction, flush what is queued, then close. May free c. */
void client_close_after_flush(struct pd_client *c);
/* Resolve and connect to the origin (a miss, or a revalidation). May free c. */
void client_go_upstream(struct pd_client *c);
/* Give the origin connection back to the pool (reusable) or close it. */
void client_up_release(struct pd_client *c, int reusable);
/* The response head is queued: the transaction's time to first byte. */
void client_head_queued(struct pd_client *c);
void client_log_transaction(struct pd_client *c);
/* The client's output drained to its low mark (pd_conn write callback). */
void client_write_cb(pd_conn *bev, void *arg);

/* The first bytes of a request on a waiting connection: a transaction takes
 * conn over (and frees it with itself). */
void client_begin(pd_engine *w, pd_conn *conn, const struct sockaddr_storage *peer,
                  uint16_t local_port, unsigned nreq, int64_t life_at_ms);
/* A client connection closed: counters, per-address count, the worker's cap. */
void client_conn_closed(pd_engine *w, const char *peer_ip);

/*
 * Free the transaction and close its connection: now, or once the driver
 * returns when it is on the stack (so after it, c is still valid but
 * closing: return).
 */
void client_free(struct pd_client *c);
/* The ending that was asked for while the driver ran (client.c). */
void client_finish(struct pd_client *c);

/* ---- client_drive.c ---------------------------------------------------- */

/* Record that e happened to c (what it carries is in c's ev_* fields) and,
 * unless the driver is on the stack already, run the handlers. Nothing
 * happens to a transaction that is ending. */
void client_post(struct pd_client *c, enum client_event e);
/* The same for the client's (CL_CONN) or the origin's (UP_CONN) connection
 * events: what accumulates until the handler runs. */
void client_post_conn(struct pd_client *c, enum client_event e, short what);
/* An origin connection's event (UP_READ, UP_WRITE, UP_CONN): dropped, with
 * those still pending from another connection, once c->up is not conn. */
void client_post_up(struct pd_client *c, pd_conn *conn, enum client_event e, short what);
/* Run what is pending (when not running already); then end the transaction
 * if a handler asked for it. */
void client_drive(struct pd_client *c);

/* The handlers, one per event (PD_CLIENT_EVENTS). */
#define PD_CLIENT_EVENT_HANDLER(e, h) void h(struct pd_client *c);
PD_CLIENT_EVENTS(PD_CLIENT_EVENT_HANDLER)
#undef PD_CLIENT_EVENT_HANDLER
/* (Re)arm the transaction's head/idle timer; 0 ms fires from the next loop round. */
void client_arm_timer(struct pd_client *c, int64_t ms);
/* http_access for the transaction: PD_ACL_ALLOW, _DENY (deny_acl set) or _NEED_DST. */
int client_acl_check(struct pd_client *c, const char **deny_acl);
/* Answer with a bodiless `status` redirect to loc (no CR/LF in it), extra (NULL or
 * whole header lines) added, and end the transaction (c->result set by the caller).
 * May free c. */
void client_redirect(struct pd_client *c, int status, const char *loc, const char *extra);
/* What the acls know of the transaction (reply: the reply head, or NULL). */
void client_acl_req(struct pd_client *c, pd_acl_req *ar, const pd_http_msg *reply);
/* http_reply_access and reply_body_max_size (against length, UINT64_MAX when
 * unknown yet) for the reply head r: 0 to go on (c->body_max set), -1 when the reply was refused
 * with an error page (c may be freed). */
int client_reply_check(struct pd_client *c, const pd_http_msg *r, uint64_t length);
/* The *_header_add % code values of the transaction. */
void client_hdr_vars(struct pd_client *c, enum pd_hdr_dir d, pd_hdr_vars *v, char *local_ip,
                     size_t n);
/* After the request's URL and framing checks: http_access, PURGE, the cache,
 * then the origin. May free c. */
void client_route(struct pd_client *c);
/* The same, able to return PD_ACL_NEED_EXT with the question in pending
 * (client_access.c; without pending an external acl not yet answered denies). */
int client_acl_check_ext(struct pd_client *c, const char **deny_acl, pd_acl_ext_query *pending);
/* ext_lookup for the acl module: this request's answers, then the worker's cache. */
int client_ext_lookup(void *ctx, size_t type, const char *line);
/* Move buffered request body bytes towards the origin (c->rbuf until it is
 * connected). -1 when the request was refused (c may be freed). */
int client_forward_request_body(struct pd_client *c);

/* ---- client_access.c --------------------------------------------------- */

/*
 * http_access for the transaction, asynchronously where a helper must answer
 * (proxy_auth). Returns 1 when the request may go on now (allowed, or
 * acl_need_dst set for a check after DNS); 0 when it was answered (403, 407:
 * c may be freed) or waits in C_ACCESS: then next(c) runs once the helper
 * allowed it, inside the transaction's callback bracket.
 */
int client_access(struct pd_client *c, void (*next)(struct pd_client *c));
/* Let go of a pending helper check (the transaction ends). */
void client_access_drop(struct pd_client *c);
/* C_ACCESS: wait for a helper's answer (at most request_timeout), then next(c). */
void client_access_wait(struct pd_client *c, void (*next)(struct pd_client *c));
/* The answer came: back to C_RESOLVE, the wait's timer off. */
void client_access_resume(struct pd_client *c);
/* No answer within request_timeout: 503, the helper check dropped. May free c. */
void client_access_timeout(struct pd_client *c);

/* ---- client_rewrite.c -------------------------------------------------- */

/*
 * url_rewrite_program for an allowed request: 1 when it goes on now
 * (unchanged, or not for the rewriter); 0 when it was answered (a redirect,
 * a refusal: c may be freed) or waits in C_ACCESS, then next(c) runs with the
 * URL rewritten or not.
 */
int client_rewrite(struct pd_client *c, void (*next)(struct pd_client *c));

/*
 * store_id_program for a request the cache may answer: 1 when it goes on now
 * (c->store_id set or not); 0 when it waits in C_ACCESS (next(c) runs with the
 * answer) or was refused (c may be freed).
 */
int client_store_id(struct pd_client *c, void (*next)(struct pd_client *c));

/* ---- upstream.c -------------------------------------------------------- */
/* (client_go_upstream, client_up_release: above) */

/* The client left in the middle of a body we store: keep filling the cache
 * for collapsed readers, with nobody to send to. */
void client_detach(struct pd_client *c);

/* proxyd_cluster: connect to the member in c->member_addr (pooled per member). May free c. */
void client_go_member(struct pd_client *c);

/* ---- client_cluster.c -------------------------------------------------- */

/*
 * proxyd_cluster, for a request the cache may answer (c->ckey set): 1 when
 * another member owns its key and the request went to it (c may be freed);
 * 0 when it is served here (this proxy owns it, a member forwarded it, or it
 * is not for the cluster).
 */
int client_cluster_forward(struct pd_client *c);
/* The member in c->member_addr could not be reached: the next owner, or here. May free c. */
void client_cluster_failed(struct pd_client *c);

/* ---- client_bg.c ------------------------------------------------------- */

/*
 * stale-while-revalidate: start the background revalidation of the object c
 * found stale at c->ckey, with cw, the writer on that key that the caller
 * just won (begin_write: no other revalidation of it runs, in any worker).
 * The background transaction takes cw over in every case: on -1 (out of
 * memory, or the object went meanwhile) it has been aborted. c is not
 * touched beyond reading its request; the two share nothing afterwards.
 */
int client_bg_revalidate(struct pd_client *c, pd_cache_writer *cw);
/* A background transaction's access log line and counters (client_log_transaction). */
void client_bg_account(struct pd_client *c);

/* ---- tunnel.c ---------------------------------------------------------- */

/* The origin accepted a CONNECT: answer 200 and relay. May free c. */
/* CONNECT through a parent: send it our CONNECT and relay its answer and what
 * follows as the tunnel (the parent's 200 or error reaches the client). */
void client_tunnel_via_peer(struct pd_client *c);
void client_tunnel_start(struct pd_client *c);
/* Move what each side sent to the other; end when both are done. May free c. */
void client_tunnel_pump(struct pd_client *c);

/* ---- client_mgr.c ------------------------------------------------------ */

/* 403, or what deny_info says for acl_name. May free c. */
void client_deny(struct pd_client *c, const char *acl_name);
/* A cache manager page asked of the proxy itself. May free c. */
void client_serve_manager(struct pd_client *c);
/* Is the request target a cache_object:// URL (squidclient mgr:PAGE)? */
int client_is_cache_object(const char *p, size_t len);
/* Is p (a path) one of the cache manager's? */
int client_is_mgr_path(const char *p, size_t len);
/* Does the request URL name this proxy (visible_hostname or the address reached)? */
int client_is_self(struct pd_client *c);

/* ---- client_intercept.c ---------------------------------------------- */

/* On an intercept port: set the original destination and make c->url from
 * the request (Host, or that destination). 1 when done (c->intercepted set),
 * 0 when the request is not intercepted (not an intercept port, or a manager
 * page asked of the port directly), -1 when it was refused (c may be freed). */
int client_intercept_url(struct pd_client *c);
/* Verify Host against the original destination (a lookup for a name), then
 * client_route. May free c. */
void client_intercept_verify(struct pd_client *c);
/* The one address an intercepted request goes to, and its pool key. */
void client_intercept_dst(struct pd_client *c, pd_dns_result *r);

/* ---- client_idle.c ----------------------------------------------------- */

/* Wait for the next request (the first when nreq is 0) on conn, owning it:
 * request_timeout (first) or client_idle_pconn_timeout, and the lifetime. */
void client_idle_wait(pd_engine *w, pd_conn *conn, const struct sockaddr_storage *peer,
                      uint16_t local_port, unsigned nreq, int64_t life_at_ms);
/* Drain: waiting keep-alive connections close now (once their last response
 * is flushed), new ones get a second. */
void client_idle_drain(pd_engine *w);
void client_idle_close_all(pd_engine *w);
/* How many connections wait for a request now. */
int client_idle_count(const pd_engine *w);
/* Response bytes the waiting connections still have to write (tests). */
size_t client_idle_pending(const pd_engine *w);
/* The address of sa (IPv4 or IPv6) as text; "" when it has none. */
void client_peer_ip(const struct sockaddr *sa, char *ip, size_t len);

/* ---- client_cache.c ---------------------------------------------------- */

/* May the cache answer or store this request (GET or HEAD, the cache rules,
 * a URL that fits a key)? Sets the key and the refresh rule when it may. */
int client_cache_usable(struct pd_client *c);
/* Look the request up: 1 when the cache took the request over (c may be
 * freed), 0 to fetch it from the origin. */
int client_cache_lookup(struct pd_client *c);
/* Let go of everything the transaction holds in the cache. */
void client_cache_drop(struct pd_client *c);
/* Read c->cref's stored head into c->cm (have_cm set): 0, or -1 (errno EAGAIN: not
 * published yet). */
int client_cache_load_meta(struct pd_client *c);
/* Hand stored extents to the client while its buffer has room. May free c. */
void client_pump_cached(struct pd_client *c);
/* The one response-head writer (client_cache.c): the status line into h, on
 * the client's output; then the fields; then end: Connection, the blank
 * line, one add to the output, byte and first-byte accounting. */
void client_begin_response_head(struct pd_client *c, pd_head *h, int status, pd_str reason);
void client_end_response_head(struct pd_client *c, pd_head *h, int status);
/* A 304 answered our revalidation: merge it into the stored head, store the
 * refreshed object and serve it. 1 when handled. */
int client_revalidated(struct pd_client *c);
/* The revalidation of cref failed (no origin, a timeout, a 5xx): when stale_ok,
 * drop the origin side and answer from cref (TCP_REFRESH_FAIL_OLD); returns 1
 * then (c may be freed), 0 when the failure must go to the client. */
int client_cache_serve_stale(struct pd_client *c);
/* The final response head arrived for a request we may store: start storing
 * it when policy allows. */
void client_store_start(struct pd_client *c);
void client_store_bytes(struct pd_client *c, const void *data, size_t len);
void client_store_evbuffer(struct pd_client *c, struct evbuffer *in, size_t n);
/* PURGE, allowed by http_access: unlink the stored responses for the URL (GET
 * and HEAD share them; its Vary variants become unreachable with it). 200
 * when something was stored, 404 when nothing; never forwarded. May free c. */
void client_purge(struct pd_client *c);
/* Invalidate what an unsafe method's response names (RFC 9111 4.4). */
void client_invalidate_after(struct pd_client *c);

#endif
