/*
 * helper: Squid's helper processes (auth_param, external_acl_type,
 * url_rewrite_program...): a pool of child processes of one program that
 * answer one line per request, driven from a worker's event loop without ever
 * blocking it. Each worker runs its own pools, as Squid's SMP workers do.
 *
 * The protocol (Squid's): a request is one line "[channel ]text\n"; the reply
 * is "[channel ]RESULT[ key=value ...][ free text]\n" with RESULT one of OK,
 * ERR, BH (and TT, AF, NA, LD for the stateful schemes). The channel ID is
 * sent only with concurrency > 0; then a child answers up to `concurrency`
 * requests in any order. A reply without a result code (old url_rewrite
 * helpers) is PD_HELPER_UNKNOWN with the whole line as its text.
 *
 * Failure is never success: a request the pool cannot place (queue full), a
 * child that dies with requests in flight (after one retry elsewhere), a
 * reply past the timeout and a garbled reply all answer PD_HELPER_BH.
 */
#ifndef PROXYD_HELPER_H
#define PROXYD_HELPER_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

typedef struct pd_helper pd_helper;
typedef struct pd_helper_req pd_helper_req;

/* What a pool runs; Squid's `children N startup=N idle=N concurrency=N
 * queue-size=N` and `timeout=`. */
/* How long an overloaded pool keeps queueing (Squid: 3 minutes). */
#define PD_HELPER_OVERLOAD_GRACE_MS (180 * 1000)

typedef struct pd_helper_cfg {
    const char *name;           /* for log lines and statistics ("basic auth") */
    char *const *argv;          /* program and arguments; argv[0] is exec'ed (a path) */
    int children_max;           /* > 0 */
    int startup;                /* started with the pool (<= children_max) */
    int idle;                   /* started on demand to keep this many without work (>= 1) */
    int concurrency;            /* 0: one request at a time, no channel IDs */
    int queue_size;             /* requests waiting for a child; < 0: 2 * children_max */
    int overload_grace_ms;      /* past queue_size, requests still queue (Squid: the helper is
                                 * "overloaded") until the overload has lasted this long; then
                                 * new ones are refused. 0: refused at once (bypass) */
    int timeout_ms;             /* 0: none; else an unanswered request is BH after it */
    int stats_kind;             /* enum pd_helper_kind: counted in the worker's stats slot
                                 * (pd_stats_my_slot) under stats_name; 0: not counted */
    const char *stats_name;     /* the configured name ("basic", the external_acl_type...) */
} pd_helper_cfg;

enum pd_helper_result {
    PD_HELPER_UNKNOWN = 0,      /* no result code: the text is the reply (old helpers) */
    PD_HELPER_OK,
    PD_HELPER_ERR,
    PD_HELPER_BH,               /* broken helper, or the pool failed the request */
    PD_HELPER_TT,
    PD_HELPER_AF,
    PD_HELPER_NA,
    PD_HELPER_LD
};

#define PD_HELPER_MAX_KV 16

/* One parsed reply; the strings point into the reply's own storage and live
 * until the callback returns. */
typedef struct pd_helper_reply {
    enum pd_helper_result result;
    int n_kv;
    const char *key[PD_HELPER_MAX_KV];
    const char *value[PD_HELPER_MAX_KV];  /* unquoted, escapes resolved */
    const char *text;           /* what follows the kv-pairs ("" when nothing) */
    const char *why;            /* the pool's reason when it answered BH itself, else NULL */
} pd_helper_reply;

/* Answer to a request. Runs from the event loop, never from pd_helper_submit;
 * it may submit and cancel requests, but must not free the pool. */
typedef void (*pd_helper_cb)(void *arg, const pd_helper_reply *reply);

/*
 * A pool for cfg (copied), starting cfg->startup children now. NULL when cfg
 * is invalid. Free with pd_helper_free (children get EOF on stdin and are
 * reaped; pending callbacks are not called).
 */
pd_helper *pd_helper_create(struct event_base *base, const pd_helper_cfg *cfg);
void pd_helper_free(pd_helper *h);

/*
 * Ask: line (without the newline; it must not contain one) goes to a child
 * now or when one is free. Returns a handle valid until cb runs or
 * pd_helper_cancel; NULL when the request cannot be queued (queue full, a line
 * with a newline): the caller fails closed.
 */
pd_helper_req *pd_helper_submit(pd_helper *h, const char *line, size_t len, pd_helper_cb cb,
                                void *arg);
/* The asker went away: cb will not be called (a reply in flight is dropped). */
void pd_helper_cancel(pd_helper_req *r);

/* The value of key in reply, or NULL. */
const char *pd_helper_reply_get(const pd_helper_reply *reply, const char *key);

/*
 * Parse one reply line (no newline, NUL-terminated, modified in place) after
 * its channel ID. Exposed for tests and for pools' users that parse text.
 */
void pd_helper_parse_reply(char *line, pd_helper_reply *out);

/* The reply's kv-pairs as annotations, "key=value\n"... into out (size
 * bytes, NUL-terminated); a pair that does not fit or holds a newline is left
 * out. */
void pd_helper_reply_notes(const pd_helper_reply *r, char *out, size_t size);

/* n requests were answered from a table of earlier answers (the caller's)
 * without reaching the pool: counted with the pool's statistics. */
void pd_helper_count_cached(pd_helper *h, uint64_t n);

/* Counters of a pool (manager pages, tests). */
typedef struct pd_helper_stats {
    int children;               /* running now */
    int busy;                   /* with at least one request in flight */
    int queued;                 /* waiting for a child */
    uint64_t requests;          /* submitted and accepted */
    uint64_t replies;           /* answered by a child */
    uint64_t overflows;         /* refused: queue full */
    uint64_t timeouts;
    uint64_t deaths;            /* children that exited while proxyd needed them */
    uint64_t spawns;
} pd_helper_stats;

void pd_helper_get_stats(const pd_helper *h, pd_helper_stats *out);

/* Parse Squid's `children N [startup=N] [idle=N] [concurrency=N]
 * [queue-size=N]` words (the "children" word already taken) into cfg. 0, or -1
 * with a message in err. */
int pd_helper_parse_children(pd_helper_cfg *cfg, char *const *words, int n, char *err,
                             size_t errlen);

#endif
