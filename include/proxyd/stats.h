/*
 * stats: counters aggregated over all workers, and the pages that show them
 * (Prometheus text, JSON, Squid's cache manager info and counters).
 *
 * The counters live in ONE anonymous MAP_SHARED segment that the master maps
 * before it forks, cut into one slot per worker. A worker writes only its own
 * slot (relaxed atomic adds, no lock); readers sum the slots. A slot belongs
 * to the worker's place (generation parity, worker number), not to its
 * process, so a worker that is killed and restarted loses nothing.
 *
 * PD_STATS_TABLE is the single source of truth for every metric: its C name,
 * type, Prometheus name, labels and help. Rows of one family are adjacent.
 * Source SLOT rows are summed over the worker slots; HOST rows are filled by
 * whoever takes the snapshot (uptime, generation, cache gauges, ...).
 */
#ifndef PROXYD_STATS_H
#define PROXYD_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "proxyd/conf.h"
#include "proxyd/result.h"

struct evbuffer;

#define PD_STATS_MAX_WORKERS PD_CONF_MAX_WORKERS
/* two generations live at once during a reload: one set of slots for each parity */
#define PD_STATS_NSLOTS (2 * PD_STATS_MAX_WORKERS)

/* X(ID, TYPE, SOURCE, NAME, LABELS, HELP) */
#define PD_STATS_METHOD_HELP "Requests received, by method."
#define PD_STATS_RESULT_HELP "Transactions by Squid result code (as in the access log)."
#define PD_STATS_STATUS_HELP "Responses sent to clients, by status class (none: no response)."
#define PD_STATS_ERROR_HELP "Error responses, by Squid error page name."
#define PD_STATS_ICP_SENT_HELP "ICP answers sent to queries received on icp_port, by opcode."
#define PD_STATS_ICP_RECV_HELP                                                                   \
    "ICP answers received from peers to this proxy's queries, by opcode (other: MISS_NOFETCH, "  \
    "DENIED, ERR)."
#define PD_STATS_BG_HELP                                                                         \
    "Background revalidations finished: the origin's 304 refreshed the object, a new response " \
    "replaced it, or it failed and the stale object stays."
/* one proxyd_results_total row per result code, RES_<code>, in the table's order */
#define PD_STATS_RESULT_ROW_(X, id, text, cls, hitb, ab)                                         \
    X(RES_##id, COUNTER, SLOT, "proxyd_results_total", "code=\"" text "\"", PD_STATS_RESULT_HELP)
#define PD_STATS_TABLE(X)                                                                        \
    X(REQ_GET, COUNTER, SLOT, "proxyd_requests_total", "method=\"GET\"", PD_STATS_METHOD_HELP)    \
    X(REQ_HEAD, COUNTER, SLOT, "proxyd_requests_total", "method=\"HEAD\"", PD_STATS_METHOD_HELP)  \
    X(REQ_POST, COUNTER, SLOT, "proxyd_requests_total", "method=\"POST\"", PD_STATS_METHOD_HELP)  \
    X(REQ_PUT, COUNTER, SLOT, "proxyd_requests_total", "method=\"PUT\"", PD_STATS_METHOD_HELP)    \
    X(REQ_DELETE, COUNTER, SLOT, "proxyd_requests_total", "method=\"DELETE\"",                   \
      PD_STATS_METHOD_HELP)                                                                      \
    X(REQ_CONNECT, COUNTER, SLOT, "proxyd_requests_total", "method=\"CONNECT\"",                 \
      PD_STATS_METHOD_HELP)                                                                      \
    X(REQ_OTHER, COUNTER, SLOT, "proxyd_requests_total", "method=\"OTHER\"", PD_STATS_METHOD_HELP) \
    PD_RESULT_TABLE(PD_STATS_RESULT_ROW_, X)                                                    \
    X(STATUS_NONE, COUNTER, SLOT, "proxyd_responses_total", "class=\"none\"",                    \
      PD_STATS_STATUS_HELP)                                                                      \
    X(STATUS_1XX, COUNTER, SLOT, "proxyd_responses_total", "class=\"1xx\"", PD_STATS_STATUS_HELP) \
    X(STATUS_2XX, COUNTER, SLOT, "proxyd_responses_total", "class=\"2xx\"", PD_STATS_STATUS_HELP) \
    X(STATUS_3XX, COUNTER, SLOT, "proxyd_responses_total", "class=\"3xx\"", PD_STATS_STATUS_HELP) \
    X(STATUS_4XX, COUNTER, SLOT, "proxyd_responses_total", "class=\"4xx\"", PD_STATS_STATUS_HELP) \
    X(STATUS_5XX, COUNTER, SLOT, "proxyd_responses_total", "class=\"5xx\"", PD_STATS_STATUS_HELP) \
    X(CACHE_HITS, COUNTER, SLOT, "proxyd_cache_hits_total", "",                                  \
      "Requests answered from the cache without contacting the origin.")                        \
    X(CACHE_MISSES, COUNTER, SLOT, "proxyd_cache_misses_total", "",                              \
      "Cache misses (TCP_MISS*, TCP_CF_MISS*: collapsed onto another request's fetch).")                                           \
    X(HIT_SENDFILE_BYTES, COUNTER, SLOT, "proxyd_cache_hit_sendfile_bytes_total", "",            \
      "Bytes of cache hits sent from the shared cache with sendfile(2), without a copy "          \
      "(hit_sendfile).")                                                                         \
    X(CACHE_REVALIDATIONS, COUNTER, SLOT, "proxyd_cache_revalidations_total", "",                \
      "Cached objects revalidated with the origin (TCP_REFRESH_*).")                             \
    X(CACHE_BG_STARTED, COUNTER, SLOT, "proxyd_cache_background_revalidations_started_total", "", \
      "Background revalidations started for stale-while-revalidate (one per object at a time, "  \
      "across workers).")                                                                        \
    X(CACHE_BG_REFRESHED, COUNTER, SLOT, "proxyd_cache_background_revalidations_total",           \
      "outcome=\"refreshed\"", PD_STATS_BG_HELP)                                                 \
    X(CACHE_BG_REPLACED, COUNTER, SLOT, "proxyd_cache_background_revalidations_total",            \
      "outcome=\"replaced\"", PD_STATS_BG_HELP)                                                  \
    X(CACHE_BG_FAILED, COUNTER, SLOT, "proxyd_cache_background_revalidations_total",              \
      "outcome=\"failed\"", PD_STATS_BG_HELP)                                                    \
    X(CLIENT_BYTES_IN, COUNTER, SLOT, "proxyd_client_received_bytes_total", "",                  \
      "Bytes received from clients (request heads and bodies, tunnelled bytes).")               \
    X(CLIENT_BYTES_OUT, COUNTER, SLOT, "proxyd_client_sent_bytes_total", "",                     \
      "Bytes sent to clients (response heads and bodies, tunnelled bytes).")                    \
    X(CLIENT_HIT_BYTES_OUT, COUNTER, SLOT, "proxyd_client_sent_hit_bytes_total", "",             \
      "Bytes sent to clients in answers from the cache (hits, revalidated hits).")              \
    X(TUNNEL_SPLICED_BYTES, COUNTER, SLOT, "proxyd_tunnel_spliced_bytes_total", "",              \
      "Bytes of CONNECT tunnels relayed inside the kernel with splice(2), both directions "       \
      "(tunnel_splice).")                                                                        \
    X(ORIGIN_BYTES_IN, COUNTER, SLOT, "proxyd_origin_received_bytes_total", "",                  \
      "Bytes received from origin servers.")                                                     \
    X(ORIGIN_BYTES_OUT, COUNTER, SLOT, "proxyd_origin_sent_bytes_total", "",                     \
      "Bytes sent to origin servers.")                                                           \
    X(CLIENT_CONNS_OPEN, GAUGE, SLOT, "proxyd_client_connections", "",                           \
      "Client connections open now.")                                                            \
    X(CLIENT_CONNS_TOTAL, COUNTER, SLOT, "proxyd_client_connections_total", "",                  \
      "Client connections accepted.")                                                            \
    X(ORIGIN_CONNS_OPENED, COUNTER, SLOT, "proxyd_origin_connections_opened_total", "",          \
      "New connections opened to origin servers.")                                               \
    X(ORIGIN_CONNS_REUSED, COUNTER, SLOT, "proxyd_origin_connections_reused_total", "",          \
      "Requests sent on a pooled keep-alive origin connection.")                                 \
    X(ORIGIN_REQUESTS, COUNTER, SLOT, "proxyd_origin_requests_total", "",                        \
      "Requests sent to origins (a retry on a new connection counts again).")                    \
    X(ORIGIN_CONNS_IDLE, GAUGE, SLOT, "proxyd_origin_connections_idle", "",                      \
      "Idle keep-alive origin connections in the pools now.")                                    \
    X(DNS_QUERIES, COUNTER, SLOT, "proxyd_dns_queries_total", "",                                \
      "DNS questions sent to the name servers.")                                                 \
    X(DNS_CACHE_HITS, COUNTER, SLOT, "proxyd_dns_cache_hits_total", "",                          \
      "Name lookups answered from the DNS cache or the hosts file.")                             \
    X(DNS_FAILURES, COUNTER, SLOT, "proxyd_dns_failures_total", "",                              \
      "Name lookups that ended in an error.")                                                    \
    X(CLUSTER_MEMBERS, GAUGE, SLOTMAX, "proxyd_cluster_members", "",                            \
      "Members the proxyd_cluster name resolves to now, this proxy included when it is one "      \
      "(the largest over the workers).")                                                         \
    X(CLUSTER_FORWARDED, COUNTER, SLOT, "proxyd_cluster_forwarded_total", "",                    \
      "Requests forwarded to the cluster member that owns their URL.")                           \
    X(CLUSTER_SERVED, COUNTER, SLOT, "proxyd_cluster_served_total", "",                          \
      "Requests a cluster member forwarded here, served as their owner.")                        \
    X(CLUSTER_MEMBER_FAILURES, COUNTER, SLOT, "proxyd_cluster_member_failures_total", "",        \
      "Connects to a cluster member that failed (its URLs then go to the next member).")        \
    X(ERR_ACCESS_DENIED, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_ACCESS_DENIED\"",     \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_INVALID_REQ, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_INVALID_REQ\"",         \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_INVALID_URL, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_INVALID_URL\"",         \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_TOO_BIG, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_TOO_BIG\"",                 \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_LIFETIME_EXP, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_LIFETIME_EXP\"",       \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_DNS_FAIL, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_DNS_FAIL\"",               \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_CONNECT_FAIL, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_CONNECT_FAIL\"",       \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_READ_TIMEOUT, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_READ_TIMEOUT\"",       \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_ZERO_SIZE_OBJECT, COUNTER, SLOT, "proxyd_errors_total",                                \
      "kind=\"ERR_ZERO_SIZE_OBJECT\"", PD_STATS_ERROR_HELP)                                      \
    X(ERR_INVALID_RESP, COUNTER, SLOT, "proxyd_errors_total", "kind=\"ERR_INVALID_RESP\"",       \
      PD_STATS_ERROR_HELP)                                                                       \
    X(ERR_ONLY_IF_CACHED_MISS, COUNTER, SLOT, "proxyd_errors_total",                             \
      "kind=\"ERR_ONLY_IF_CACHED_MISS\"", PD_STATS_ERROR_HELP)                                    \
    X(ERR_OTHER, COUNTER, SLOT, "proxyd_errors_total", "kind=\"OTHER\"", PD_STATS_ERROR_HELP)     \
    X(ICP_QUERIES_RECV, COUNTER, SLOT, "proxyd_icp_queries_received_total", "",                 \
      "ICP queries received on icp_port (malformed ones are counted as dropped).")              \
    X(ICP_REPLIES_SENT_HIT, COUNTER, SLOT, "proxyd_icp_replies_sent_total", "opcode=\"HIT\"",    \
      PD_STATS_ICP_SENT_HELP)                                                                    \
    X(ICP_REPLIES_SENT_MISS, COUNTER, SLOT, "proxyd_icp_replies_sent_total", "opcode=\"MISS\"",  \
      PD_STATS_ICP_SENT_HELP)                                                                    \
    X(ICP_REPLIES_SENT_MISS_NOFETCH, COUNTER, SLOT, "proxyd_icp_replies_sent_total",             \
      "opcode=\"MISS_NOFETCH\"", PD_STATS_ICP_SENT_HELP)                                         \
    X(ICP_REPLIES_SENT_DENIED, COUNTER, SLOT, "proxyd_icp_replies_sent_total",                   \
      "opcode=\"DENIED\"", PD_STATS_ICP_SENT_HELP)                                               \
    X(ICP_REPLIES_SENT_ERR, COUNTER, SLOT, "proxyd_icp_replies_sent_total", "opcode=\"ERR\"",    \
      PD_STATS_ICP_SENT_HELP)                                                                    \
    X(ICP_QUERIES_SENT, COUNTER, SLOT, "proxyd_icp_queries_sent_total", "",                      \
      "ICP queries sent to cache_peer siblings and parents (one per peer asked).")               \
    X(ICP_REPLIES_RECV_HIT, COUNTER, SLOT, "proxyd_icp_replies_received_total",                  \
      "opcode=\"HIT\"", PD_STATS_ICP_RECV_HELP)                                                  \
    X(ICP_REPLIES_RECV_MISS, COUNTER, SLOT, "proxyd_icp_replies_received_total",                 \
      "opcode=\"MISS\"", PD_STATS_ICP_RECV_HELP)                                                 \
    X(ICP_REPLIES_RECV_OTHER, COUNTER, SLOT, "proxyd_icp_replies_received_total",                \
      "opcode=\"other\"", PD_STATS_ICP_RECV_HELP)                                                \
    X(ICP_QUERY_TIMEOUTS, COUNTER, SLOT, "proxyd_icp_query_timeouts_total", "",                  \
      "Misses that stopped waiting for ICP answers at the ICP query timeout.")                   \
    X(ICP_DROPPED, COUNTER, SLOT, "proxyd_icp_dropped_total", "",                                \
      "ICP datagrams dropped: malformed (short, not version 2, bad length), late, from no "      \
      "peer asked, or not sent (socket buffer full).")                                           \
    X(WORKER_STARTS, COUNTER, SLOT, "proxyd_worker_starts_total", "",                            \
      "Worker processes started (a restart after a crash counts too).")                          \
    X(UPTIME, GAUGE, HOST, "proxyd_uptime_seconds", "", "Seconds since the master started.")     \
    X(START_TIME, GAUGE, HOST, "proxyd_start_time_seconds", "",                                  \
      "Unix time at which the master started.")                                                  \
    X(GENERATION, GAUGE, HOST, "proxyd_config_generation", "",                                   \
      "Configuration generation: 1 at start, one more per successful reload.")                   \
    X(WORKERS, GAUGE, HOST, "proxyd_workers", "", "Workers the current configuration asks for.") \
    X(WORKERS_UP, GAUGE, HOST, "proxyd_workers_up", "",                                          \
      "Workers of the current generation that are running and initialised.")                     \
    X(CACHE_ATTACHED, GAUGE, HOST, "proxyd_cache_attached", "",                                  \
      "1 when the shared cache segment is attached (no cache configured counts as 1).")          \
    X(CACHE_OBJECTS, GAUGE, HOST, "proxyd_cache_objects", "", "Complete objects in the cache.")  \
    X(CACHE_BYTES_USED, GAUGE, HOST, "proxyd_cache_used_bytes", "",                              \
      "Bytes of the cache segment in use.")                                                      \
    X(CACHE_BYTES_FREE, GAUGE, HOST, "proxyd_cache_free_bytes", "",                              \
      "Bytes of the cache segment free.")                                                        \
    X(CACHE_EVICTIONS, COUNTER, HOST, "proxyd_cache_evictions_total", "",                        \
      "Objects evicted from the cache to make room.")                                            \
    X(CACHE_STORED_BYTES, GAUGE, HOST, "proxyd_cache_stored_bytes", "",                          \
      "Bytes of the cached objects themselves (key, stored head, body).")                        \
    X(CACHE_METADATA_BYTES, GAUGE, HOST, "proxyd_cache_metadata_bytes", "",                      \
      "The cache's index region beside cache_mem (object records, hash, block map, handles).")  \
    X(CACHE_OBJECT_OVERHEAD, GAUGE, HOST, "proxyd_cache_object_overhead_bytes", "",              \
      "Mean memory a cached object costs beyond its own bytes: index record + block rounding.")

/*
 * Helper pools (auth_param basic, each external_acl_type, url_rewrite_program,
 * store_id_program), one set of rows per configured pool:
 * X(ID, TYPE, AGG, NAME, LABELS, HELP). Every row also carries the labels
 * helper="<configured name>" and kind="auth|external_acl|url_rewrite|store_id"
 * (bounded: one pool per configured helper). AGG says how workers combine:
 * SUM, or MAX (a peak). Rows whose name ends in _seconds_total are kept in
 * microseconds and shown in seconds.
 */
#define PD_STATS_HELPER_REPLY_HELP                                                               \
    "Answers a helper pool gave, by result (BH also when the pool failed the request itself: "   \
    "timeout, crash, no child)."
#define PD_STATS_HELPER_TABLE(X)                                                                 \
    X(REQUESTS, COUNTER, SUM, "proxyd_helper_requests_total", "",                                \
      "Requests a helper pool accepted (to a child or its queue).")                              \
    X(REPLIES_OK, COUNTER, SUM, "proxyd_helper_replies_total", "result=\"OK\"",                  \
      PD_STATS_HELPER_REPLY_HELP)                                                                \
    X(REPLIES_ERR, COUNTER, SUM, "proxyd_helper_replies_total", "result=\"ERR\"",                \
      PD_STATS_HELPER_REPLY_HELP)                                                                \
    X(REPLIES_BH, COUNTER, SUM, "proxyd_helper_replies_total", "result=\"BH\"",                  \
      PD_STATS_HELPER_REPLY_HELP)                                                                \
    X(REPLIES_OTHER, COUNTER, SUM, "proxyd_helper_replies_total", "result=\"other\"",            \
      PD_STATS_HELPER_REPLY_HELP)                                                                \
    X(RESPONSE_US, COUNTER, SUM, "proxyd_helper_response_seconds_total", "",                     \
      "Time from submission to answer, summed over the answers (divide by the replies for "      \
      "the mean).")                                                                              \
    X(OVERFLOWS, COUNTER, SUM, "proxyd_helper_overflows_total", "",                              \
      "Requests refused: every child busy and the queue full (at once where the caller "         \
      "bypasses the helper, else once the overload has lasted 3 minutes).")                      \
    X(CACHED, COUNTER, SUM, "proxyd_helper_cached_answers_total", "",                            \
      "Requests answered from the table of earlier answers without asking a child "              \
      "(external_acl_type's cache, url_rewrite_cache_ttl).")                                     \
    X(TIMEOUTS, COUNTER, SUM, "proxyd_helper_timeouts_total", "",                                \
      "Requests answered BH because the helper did not reply in time.")                          \
    X(RESTARTS, COUNTER, SUM, "proxyd_helper_restarts_total", "",                                \
      "Helper children that exited while proxyd needed them (each is replaced).")                \
    X(QUEUE, GAUGE, SUM, "proxyd_helper_queue_length", "",                                       \
      "Requests waiting for a free helper child now.")                                           \
    X(QUEUE_PEAK, GAUGE, MAX, "proxyd_helper_queue_peak", "",                                    \
      "The longest queue a worker's pool has had (the largest over workers).")                   \
    X(CHILDREN, GAUGE, SUM, "proxyd_helper_children", "", "Helper children running now.")      \
    X(BUSY, GAUGE, SUM, "proxyd_helper_children_busy", "",                                       \
      "Helper children with at least one request in flight now.")

#define PD_STATS_HID_(id, ...) PD_HSTAT_##id,
enum pd_helper_stat_id { PD_STATS_HELPER_TABLE(PD_STATS_HID_) PD_HSTAT__N };
#undef PD_STATS_HID_

/* Pools a worker's slot keeps counters for; a pool past this has none. */
#define PD_STATS_MAX_HELPERS 16
#define PD_STATS_HELPER_NAME 48

enum pd_helper_kind { PD_HELPER_KIND_AUTH = 1, PD_HELPER_KIND_EXTERNAL, PD_HELPER_KIND_REWRITE,
                      PD_HELPER_KIND_STOREID };

/* One pool's counters in a worker's slot (kind 0: unused). */
typedef struct pd_stats_helper {
    int32_t kind;
    char name[PD_STATS_HELPER_NAME];
    char program[PD_STATS_HELPER_NAME * 2];   /* argv[0], for the manager pages */
    uint64_t c[PD_HSTAT__N];
} pd_stats_helper;

#define PD_STATS_ID(id, ...) PD_STAT_##id,
enum pd_stat_id { PD_STATS_TABLE(PD_STATS_ID) PD_STAT__N };
#undef PD_STATS_ID

/* Histograms: X(ID, NAME, HELP); bucket bounds are PD_STATS_BUCKETS_US. */
#define PD_STATS_HISTOGRAMS(X)                                                                   \
    X(REQUEST_DURATION, "proxyd_request_duration_seconds",                                       \
      "Time from a complete request head to the end of the transaction.")                       \
    X(TTFB, "proxyd_time_to_first_byte_seconds",                                                 \
      "Time from a complete request head to the first response byte queued to the client.")

#define PD_STATS_HID(id, ...) PD_HIST_##id,
enum pd_hist_id { PD_STATS_HISTOGRAMS(PD_STATS_HID) PD_HIST__N };
#undef PD_STATS_HID

/* Upper bounds of the finite buckets, in microseconds; +Inf follows. */
#define PD_STATS_BUCKETS_US                                                                      \
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,       \
        5000000, 10000000, 30000000, 60000000
#define PD_STATS_NBUCKETS 17 /* 16 finite + +Inf */

enum pd_stat_type { PD_STAT_COUNTER, PD_STAT_GAUGE };
/* SLOT: summed over the worker slots; SLOTMAX: the largest of them; HOST: see above */
enum pd_stat_source { PD_STAT_SLOT, PD_STAT_SLOTMAX, PD_STAT_HOST };

typedef struct pd_stat_def {
    const char *name, *labels, *help;
    enum pd_stat_type type;
    enum pd_stat_source source;
} pd_stat_def;

/* The table as data: pd_stat_defs[id], PD_STAT__N rows. */
extern const pd_stat_def pd_stat_defs[PD_STAT__N];

/* One worker's counters. Written only by that worker; 64-byte aligned. */
typedef struct pd_stats_slot {
    uint64_t c[PD_STAT__N];
    uint64_t bucket[PD_HIST__N][PD_STATS_NBUCKETS]; /* not cumulative */
    uint64_t sum_us[PD_HIST__N];
    pd_stats_helper helper[PD_STATS_MAX_HELPERS];
    int32_t pid;        /* the worker process using the slot now, 0: none */
    int32_t ready;      /* the worker finished its initialisation */
    int32_t generation;
    int32_t worker;     /* worker number */
} __attribute__((aligned(64))) pd_stats_slot;

typedef struct pd_stats pd_stats;

/*
 * Map a new segment (anonymous, MAP_SHARED, zeroed) and make it the process's
 * segment (pd_stats_self), inherited by children forked afterwards. Returns
 * NULL on error (errno set). Release with pd_stats_destroy.
 */
pd_stats *pd_stats_create(void);
void pd_stats_destroy(pd_stats *st);

/* The segment created in this process or inherited from the master; may be NULL. */
pd_stats *pd_stats_self(void);

/* Slot of worker number `worker` in configuration generation `generation`; NULL if out of range. */
pd_stats_slot *pd_stats_worker_slot(pd_stats *st, int generation, int worker);

/*
 * Worker side, first thing: take the slot (its previous process is dead: gauges
 * are zeroed, counters kept). Then pd_stats_slot_ready once it serves.
 * Master side, when it reaps pid: release the slot if pid still holds it.
 */
void pd_stats_slot_claim(pd_stats_slot *s, pid_t pid, int generation, int worker);
void pd_stats_slot_ready(pd_stats_slot *s);
void pd_stats_slot_release(pd_stats_slot *s, pid_t pid);

/* Master side: facts kept in the segment so that any process can render the pages. */
void pd_stats_set_host(pd_stats *st, int generation, int workers);

/*
 * Master side, once at start and then every PD_STATS_SAMPLE_S seconds: keep a
 * sample of the summed counters in the segment's ring (the last hour), from
 * which any process renders Squid's 5min, 60min and utilization pages.
 */
#define PD_STATS_SAMPLE_S 60
void pd_stats_sample(pd_stats *st);

/* Worker side: add n to a counter or gauge (n may be negative for gauges). s may be NULL. */
static inline void pd_stats_add(pd_stats_slot *s, enum pd_stat_id id, int64_t n)
{
    if (s)
        __atomic_fetch_add(&s->c[id], (uint64_t)n, __ATOMIC_RELAXED);
}

/* Worker side: set a gauge of this slot. */
static inline void pd_stats_set(pd_stats_slot *s, enum pd_stat_id id, uint64_t v)
{
    if (s)
        __atomic_store_n(&s->c[id], v, __ATOMIC_RELAXED);
}

/*
 * Worker side: the slot this process writes (set once claimed; NULL in other
 * processes), so that modules created deep inside a worker find it.
 */
void pd_stats_set_my_slot(pd_stats_slot *s);
pd_stats_slot *pd_stats_my_slot(void);

/*
 * Worker side: the counters of the helper pool (kind, name) in slot s: the
 * entry it had before (a restarted worker keeps its counters) or a new one
 * (zeroed). NULL when s is NULL or every entry is taken.
 */
uint64_t *pd_stats_helper_register(pd_stats_slot *s, enum pd_helper_kind kind, const char *name,
                                   const char *program);

/* "auth", "external_acl", "url_rewrite", "store_id" */
const char *pd_stats_helper_kind_name(enum pd_helper_kind kind);

/* Record one observation (microseconds, < 0 ignored) in a histogram. s may be NULL. */
void pd_stats_observe(pd_stats_slot *s, enum pd_hist_id h, int64_t us);

/* Counter id for an access-log result code / a Squid error name / a PD_M_* method. */
enum pd_stat_id pd_stats_result_id(enum pd_result result);
enum pd_stat_id pd_stats_error_id(const char *err);
enum pd_stat_id pd_stats_method_id(int method_id);

/* Everything a transaction adds, in one call at its end (the access-log line). */
typedef struct pd_stats_txn {
    int method_id;              /* PD_M_* */
    enum pd_result result;      /* Squid result code */
    int status;                 /* status sent to the client, 0 = none */
    uint64_t client_in;         /* bytes read from the client */
    uint64_t client_out;        /* bytes queued to the client */
    uint64_t origin_in;         /* bytes read from the origin */
    uint64_t origin_out;        /* bytes queued to the origin */
    int64_t total_us;           /* head complete -> end */
    int64_t ttfb_us;            /* head complete -> first response byte; < 0: none */
} pd_stats_txn;
void pd_stats_transaction(pd_stats_slot *s, const pd_stats_txn *t);

/* Cache gauges, filled by the hook of the module that owns the cache. */
typedef struct pd_stats_cache {
    int configured;             /* a cache exists in this process */
    int attached;               /* its segment is mapped and consistent */
    uint64_t objects, bytes_used, bytes_free, evictions, cache_mem;
    uint64_t stored_bytes;      /* objects' own bytes */
    uint64_t metadata_bytes;    /* the index region */
    uint64_t object_overhead;   /* mean bytes per object beyond its own */
} pd_stats_cache;
typedef void (*pd_stats_cache_fn)(void *arg, pd_stats_cache *out);

/* Register the cache hook in this process (inherited across fork); fn NULL removes it. */
void pd_stats_set_cache_hook(pd_stats_cache_fn fn, void *arg);

/* Per-worker process figures read from /proc at snapshot time. */
typedef struct pd_stats_worker {
    int worker, generation;
    pid_t pid;
    int ready;
    double cpu_seconds;         /* user + system */
    uint64_t rss_bytes;
} pd_stats_worker;

/* A consistent-enough view: slots summed, host facts filled. */
typedef struct pd_stats_snapshot {
    uint64_t v[PD_STAT__N];
    uint64_t bucket[PD_HIST__N][PD_STATS_NBUCKETS]; /* cumulative after pd_stats_take */
    uint64_t sum_us[PD_HIST__N];
    double now;                 /* unix time of the snapshot */
    double started;             /* unix time the master started */
    double cpu_seconds;         /* all workers, from /proc */
    uint64_t cache_mem;
    int n_workers;
    pd_stats_worker workers[PD_STATS_NSLOTS];
    int n_helpers;              /* pools, combined over the workers by (kind, name) */
    pd_stats_helper helpers[PD_STATS_MAX_HELPERS];
    int helper_workers[PD_STATS_MAX_HELPERS];   /* live workers that run the pool */
} pd_stats_snapshot;

/* Sum the slots of st and fill the host facts (reads /proc for CPU and RSS). */
void pd_stats_take(pd_stats *st, pd_stats_snapshot *snap);

/* Health: 1 when every worker of the current generation is up and the cache is
 * attached; otherwise 0 and why[] says what is wrong. */
int pd_stats_healthy(const pd_stats_snapshot *snap, char *why, size_t whylen);

/* Renderers: append the page to out. */
void pd_stats_render_prometheus(const pd_stats_snapshot *snap, struct evbuffer *out);
void pd_stats_render_json(const pd_stats_snapshot *snap, struct evbuffer *out);
void pd_stats_render_mgr_info(const pd_stats_snapshot *snap, struct evbuffer *out);
void pd_stats_render_mgr_counters(const pd_stats_snapshot *snap, struct evbuffer *out);

/*
 * A cache manager page by name ("info", "counters", "menu"): appends it to
 * out and returns 0, or -1 for an unknown page. Snapshots pd_stats_self().
 */
int pd_stats_mgr_page(const char *name, size_t len, struct evbuffer *out);

/* Print the metric table as Markdown (docs/operations.md, proxyd --print-metrics). */
void pd_stats_print_metrics(FILE *out);

#endif
