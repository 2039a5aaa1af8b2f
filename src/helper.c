/*
 * helper.c: pools of Squid helper processes on a worker's event loop.
 *
 * A child is spawned with a socketpair as its stdin and stdout (stderr is
 * proxyd's: helpers write their diagnostics to cache.log, as with Squid).
 * Requests go to the least loaded child with a free slot (one slot without
 * concurrency, `concurrency` slots with channel IDs otherwise), wait in a
 * bounded queue when every slot is taken, and are refused when the queue is
 * full. A child that exits is reaped on SIGCHLD; its requests are tried once
 * more on another child, then answered BH. From the second child in a row
 * that dies within a second of its start, restarts wait a doubling back-off
 * (1 s to 30 s); while no child can run, requests are answered BH at once
 * (fail closed).
 */
#include "proxyd/helper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "proxyd/log.h"
#include "proxyd/stats.h"

extern char **environ;

#define HELPER_MAGIC 0x50444850u   /* "PDHP" */
#define MAX_REPLY_LINE (64 * 1024)
#define QUICK_DEATH_MS 1000
#define BACKOFF_MAX_MS 30000

struct child;

struct pd_helper_req {
    TAILQ_ENTRY(pd_helper_req) link;    /* in the pool's queue while waiting */
    pd_helper *h;
    struct child *ch;                   /* in flight on this child, or NULL */
    int slot;
    int retries;
    pd_helper_cb cb;
    void *arg;
    int64_t submitted_us;               /* monotonic */
    struct event *timer;                /* timeout_ms */
    size_t len;
    char line[];
};

/* A slot whose request was answered (timeout) or cancelled: the child's late
 * reply is read and dropped, then the slot is free again. */
static pd_helper_req abandoned_slot;
#define ABANDONED (&abandoned_slot)

struct child {
    TAILQ_ENTRY(child) link;
    pd_helper *h;
    pid_t pid;
    struct bufferevent *bev;
    int64_t started_ms;
    int inflight;               /* slots taken (requests or abandoned) */
    pd_helper_req **slots;      /* nslots */
};

struct zombie {
    pid_t pid;
    struct zombie *next;
};

struct pd_helper {
    unsigned magic;
    struct event_base *base;
    pd_helper_cfg cfg;
    char **argv;                /* our copy */
    char *name;
    int nslots;
    TAILQ_HEAD(, child) children;
    int n_children;
    TAILQ_HEAD(, pd_helper_req) queue;
    int n_queued;
    struct zombie *zombies;     /* exited (or told to) and not yet reaped */
    struct event *sigchld;
    struct event *respawn;      /* the end of a back-off */
    int64_t no_spawn_until_ms;
    int quick_deaths;           /* in a row */
    pd_helper_stats st;
    uint64_t *shared;           /* PD_HSTAT__N counters in the worker's stats slot, or NULL */
    uint64_t queue_peak;
    int64_t overloaded_since_ms; /* 0: the queue is within queue_size */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- statistics (the worker's shared slot) ------------------------------- */

static void count(pd_helper *h, enum pd_helper_stat_id id, uint64_t n)
{
    if (h->shared)
        __atomic_fetch_add(&h->shared[id], n, __ATOMIC_RELAXED);
}

static void gauge(pd_helper *h, enum pd_helper_stat_id id, uint64_t v)
{
    if (h->shared)
        __atomic_store_n(&h->shared[id], v, __ATOMIC_RELAXED);
}

void pd_helper_reply_notes(const pd_helper_reply *r, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < r->n_kv; i++) {
        if (strchr(r->value[i], '\n') || strchr(r->key[i], '='))
            continue;
        int n = snprintf(out + o, size - o, "%s=%s\n", r->key[i], r->value[i]);
        if (n < 0 || (size_t)n >= size - o) {
            out[o] = '\0';
            continue;
        }
        o += (size_t)n;
    }
}

void pd_helper_count_cached(pd_helper *h, uint64_t n)
{
    if (h && h->magic == HELPER_MAGIC)
        count(h, PD_HSTAT_CACHED, n);
}

/* The pool's state now: children, busy, queue and its peak. */
static void publish(pd_helper *h)
{
    if (h->n_queued < h->cfg.queue_size || h->n_queued == 0)
        h->overloaded_since_ms = 0;
    if (!h->shared)
        return;
    pd_helper_stats st;
    pd_helper_get_stats(h, &st);
    if ((uint64_t)st.queued > h->queue_peak)
        h->queue_peak = (uint64_t)st.queued;
    gauge(h, PD_HSTAT_CHILDREN, (uint64_t)st.children);
    gauge(h, PD_HSTAT_BUSY, (uint64_t)st.busy);
    gauge(h, PD_HSTAT_QUEUE, (uint64_t)st.queued);
    gauge(h, PD_HSTAT_QUEUE_PEAK, h->queue_peak);
}

/* r is answered with result: counted by result, with its time. */
static void answered(pd_helper *h, const pd_helper_req *r, enum pd_helper_result result)
{
    enum pd_helper_stat_id id = result == PD_HELPER_OK    ? PD_HSTAT_REPLIES_OK
                                : result == PD_HELPER_ERR ? PD_HSTAT_REPLIES_ERR
                                : result == PD_HELPER_BH  ? PD_HSTAT_REPLIES_BH
                                                          : PD_HSTAT_REPLIES_OTHER;
    count(h, id, 1);
    int64_t us = now_us() - r->submitted_us;
    count(h, PD_HSTAT_RESPONSE_US, us > 0 ? (uint64_t)us : 0);
}

/* ---- replies ------------------------------------------------------------ */

static const struct {
    const char *word;
    enum pd_helper_result r;
} result_words[] = {
    {"OK", PD_HELPER_OK}, {"ERR", PD_HELPER_ERR}, {"BH", PD_HELPER_BH}, {"TT", PD_HELPER_TT},
    {"AF", PD_HELPER_AF}, {"NA", PD_HELPER_NA},   {"LD", PD_HELPER_LD},
};

static int is_key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

/* A kv-pair at *pp: key=value or key="quoted \"value\"". Fills key/value
 * (NUL-terminated in place), moves *pp past it; 0 when *pp is not one. */
static int parse_kv(char **pp, const char **key, const char **value)
{
    char *p = *pp, *k = p;
    while (is_key_char(*p))
        p++;
    if (p == k || *p != '=')
        return 0;
    char *eq = p++;
    char *v = p, *end;
    if (*p == '"') {
        /* find the closing quote before unescaping in place */
        char *q = p + 1;
        while (*q && *q != '"')
            q += (*q == '\\' && q[1]) ? 2 : 1;
        if (*q != '"' || (q[1] && q[1] != ' '))
            return 0;
        char *w = v;
        p++;
        while (p < q) {
            if (*p == '\\' && p + 1 < q)
                p++;
            *w++ = *p++;
        }
        p = q + 1;
        end = w;
    } else {
        while (*p && *p != ' ')
            p++;
        end = p;
    }
    char *next = p;
    while (*next == ' ')
        next++;
    *eq = '\0';
    *end = '\0';
    *key = k;
    *value = v;
    *pp = next;
    return 1;
}

void pd_helper_parse_reply(char *line, pd_helper_reply *out)
{
    memset(out, 0, sizeof *out);
    out->text = "";
    char *p = line;
    size_t n = strcspn(p, " ");
    for (size_t i = 0; i < sizeof result_words / sizeof result_words[0]; i++) {
        if (strlen(result_words[i].word) == n && memcmp(p, result_words[i].word, n) == 0) {
            out->result = result_words[i].r;
            break;
        }
    }
    if (out->result == PD_HELPER_UNKNOWN) {
        out->text = line;
        return;
    }
    p += n;
    while (*p == ' ')
        p++;
    while (*p && out->n_kv < PD_HELPER_MAX_KV) {
        char *save = p;
        const char *k, *v;
        if (!parse_kv(&p, &k, &v)) {
            p = save;
            break;
        }
        out->key[out->n_kv] = k;
        out->value[out->n_kv] = v;
        out->n_kv++;
    }
    out->text = p;
}

const char *pd_helper_reply_get(const pd_helper_reply *reply, const char *key)
{
    for (int i = reply->n_kv - 1; i >= 0; i--)
        if (strcmp(reply->key[i], key) == 0)
            return reply->value[i];
    return NULL;
}

/* ---- requests ----------------------------------------------------------- */

static void req_free(pd_helper_req *r)
{
    if (r->timer)
        event_free(r->timer);
    free(r);
}

/* The pool answers r itself (BH). */
static void req_fail(pd_helper_req *r, const char *why)
{
    pd_helper_reply rep;
    memset(&rep, 0, sizeof rep);
    rep.result = PD_HELPER_BH;
    rep.text = why;
    rep.why = why;
    answered(r->h, r, PD_HELPER_BH);
    pd_helper_cb cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(arg, &rep);
}

static void dispatch(pd_helper *h);
static void child_lost(struct child *ch, const char *why);

static void fail_queue(pd_helper *h, const char *why)
{
    /* bounded: each round takes one request off the queue; callbacks may add
     * new ones, which dispatch() handles (or fails) in their turn */
    int n = h->n_queued;
    while (n-- > 0 && !TAILQ_EMPTY(&h->queue)) {
        pd_helper_req *r = TAILQ_FIRST(&h->queue);
        TAILQ_REMOVE(&h->queue, r, link);
        h->n_queued--;
        req_fail(r, why);
    }
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pd_helper_req *r = arg;
    pd_helper *h = r->h;
    h->st.timeouts++;
    count(h, PD_HSTAT_TIMEOUTS, 1);
    if (r->ch) {
        r->ch->slots[r->slot] = ABANDONED;  /* the late reply is dropped */
        r->ch = NULL;
    } else {
        TAILQ_REMOVE(&h->queue, r, link);
        h->n_queued--;
    }
    pd_log_warn("helper %s: no reply within %d ms", h->name, h->cfg.timeout_ms);
    req_fail(r, "helper timeout");
    publish(h);
}

/* ---- children ----------------------------------------------------------- */

static void reap(pd_helper *h)
{
    struct zombie **zp = &h->zombies;
    while (*zp) {
        int status;
        pid_t got = waitpid((*zp)->pid, &status, WNOHANG);
        if (got == (*zp)->pid || (got == -1 && errno == ECHILD)) {
            struct zombie *z = *zp;
            *zp = z->next;
            free(z);
        } else {
            zp = &(*zp)->next;
        }
    }
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    pd_helper *h = arg;
    /* Only reaping: a child that exited is lost when its socket shows EOF,
     * after the replies it wrote before exiting have been read. */
    struct child *ch;
    TAILQ_FOREACH(ch, &h->children, link) {
        int status;
        if (ch->pid > 0 && waitpid(ch->pid, &status, WNOHANG) == ch->pid)
            ch->pid = -1;
    }
    reap(h);
}

static void add_zombie(pd_helper *h, pid_t pid)
{
    if (pid <= 0)
        return;
    struct zombie *z = malloc(sizeof *z);
    if (!z)
        return;   /* the worker's exit (or init) reaps it */
    z->pid = pid;
    z->next = h->zombies;
    h->zombies = z;
}

static void child_free(struct child *ch)
{
    pd_helper *h = ch->h;
    TAILQ_REMOVE(&h->children, ch, link);
    h->n_children--;
    if (ch->bev)
        bufferevent_free(ch->bev);   /* closes the socket: the child reads EOF */
    add_zombie(h, ch->pid);
    free(ch->slots);
    free(ch);
}

static void respawn_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    dispatch(arg);
}

/* ch is gone (exited, closed its output, or sent garbage): its requests are
 * tried once more elsewhere, then answered BH. */
static void child_lost(struct child *ch, const char *why)
{
    pd_helper *h = ch->h;
    int64_t lived = now_ms() - ch->started_ms;
    h->st.deaths++;
    count(h, PD_HSTAT_RESTARTS, 1);
    if (lived < QUICK_DEATH_MS)
        h->quick_deaths++;
    else
        h->quick_deaths = 0;
    if (h->quick_deaths >= 2) {
        /* the second young death in a row: hold restarts back, doubling */
        int shift = h->quick_deaths - 2 > 5 ? 5 : h->quick_deaths - 2;
        int64_t backoff = (int64_t)QUICK_DEATH_MS << shift;
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        h->no_spawn_until_ms = now_ms() + backoff;
        struct timeval tv = {(time_t)(backoff / 1000), (suseconds_t)(backoff % 1000) * 1000};
        evtimer_add(h->respawn, &tv);
        pd_log_warn("helper %s: child %ld %s %lld ms after its start; next start in %lld ms",
                    h->name, (long)ch->pid, why, (long long)lived, (long long)backoff);
    } else {
        pd_log_warn("helper %s: child %ld %s", h->name, (long)ch->pid, why);
    }
    /* take its requests before anything can run */
    pd_helper_req *retry[64];
    int nretry = 0;
    pd_helper_req *failed = NULL;
    for (int i = 0; i < h->nslots; i++) {
        pd_helper_req *r = ch->slots[i];
        ch->slots[i] = NULL;
        if (!r || r == ABANDONED)
            continue;
        r->ch = NULL;
        if (r->retries == 0 && nretry < (int)(sizeof retry / sizeof retry[0])) {
            r->retries++;
            retry[nretry++] = r;
        } else {
            r->link.tqe_next = failed;   /* reuse the link as a singly linked list */
            failed = r;
        }
    }
    child_free(ch);
    for (int i = nretry - 1; i >= 0; i--) {
        TAILQ_INSERT_HEAD(&h->queue, retry[i], link);
        h->n_queued++;
    }
    while (failed) {
        pd_helper_req *r = failed;
        failed = r->link.tqe_next;
        req_fail(r, "helper died");
    }
    publish(h);
}

static void child_reply(struct child *ch, char *line)
{
    pd_helper *h = ch->h;
    int slot = 0;
    char *p = line;
    if (h->cfg.concurrency > 0) {
        char *end;
        errno = 0;
        unsigned long id = strtoul(p, &end, 10);
        if (end == p || errno || (*end != ' ' && *end != '\0') || id >= (unsigned long)h->nslots) {
            pd_log_warn("helper %s: reply without a valid channel ID: %.80s", h->name, line);
            return;
        }
        slot = (int)id;
        p = *end ? end + 1 : end;
    }
    pd_helper_req *r = ch->slots[slot];
    if (!r) {
        pd_log_warn("helper %s: reply on idle channel %d: %.80s", h->name, slot, line);
        return;
    }
    ch->slots[slot] = NULL;
    ch->inflight--;
    h->st.replies++;
    if (r == ABANDONED)
        return;
    pd_helper_reply rep;
    pd_helper_parse_reply(p, &rep);
    answered(h, r, rep.result);
    pd_helper_cb cb = r->cb;
    void *arg = r->arg;
    req_free(r);
    cb(arg, &rep);
    publish(h);
}

static void child_read_cb(struct bufferevent *bev, void *arg)
{
    struct child *ch = arg;
    pd_helper *h = ch->h;
    struct evbuffer *in = bufferevent_get_input(bev);
    pid_t pid = ch->pid;
    /* bounded by what was read; a callback cannot free ch (only this module
     * does, and not from a reply), but it may submit work to ch: fine */
    for (;;) {
        size_t n;
        char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
        if (!line)
            break;
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        child_reply(ch, line);
        free(line);
    }
    if (evbuffer_get_length(in) > MAX_REPLY_LINE) {
        if (pid > 0)
            kill(pid, SIGTERM);
        child_lost(ch, "sent a reply line over 64 KB");
    }
    dispatch(h);
}

static void child_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct child *ch = arg;
    pd_helper *h = ch->h;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        child_lost(ch, (what & BEV_EVENT_EOF) ? "closed its output" : "connection error");
        reap(h);
        dispatch(h);
    }
}

static int spawn_child(pd_helper *h)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
        pd_log_error("helper %s: socketpair: %s", h->name, strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 1);
    /* nothing else of the worker's: listening sockets, clients, the cache's segment */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_init(&at);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawn(&pid, h->argv[0], &fa, &at, h->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (rc != 0) {
        close(sv[0]);
        pd_log_error("helper %s: cannot start %s: %s", h->name, h->argv[0], strerror(rc));
        return -1;
    }
    struct child *ch = calloc(1, sizeof *ch);
    pd_helper_req **slots = calloc((size_t)h->nslots, sizeof *slots);
    struct bufferevent *bev = NULL;
    if (ch && slots && evutil_make_socket_nonblocking(sv[0]) == 0)
        bev = bufferevent_socket_new(h->base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(sv[0]);
        free(ch);
        free(slots);
        add_zombie(h, pid);
        return -1;
    }
    ch->h = h;
    ch->pid = pid;
    ch->bev = bev;
    ch->slots = slots;
    ch->started_ms = now_ms();
    bufferevent_setcb(bev, child_read_cb, NULL, child_event_cb, ch);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    TAILQ_INSERT_TAIL(&h->children, ch, link);
    h->n_children++;
    h->st.spawns++;
    return 0;
}

static int may_spawn(pd_helper *h)
{
    return h->n_children < h->cfg.children_max && now_ms() >= h->no_spawn_until_ms;
}

static void send_to(struct child *ch, int slot, pd_helper_req *r)
{
    pd_helper *h = ch->h;
    ch->slots[slot] = r;
    ch->inflight++;
    r->ch = ch;
    r->slot = slot;
    struct evbuffer *out = bufferevent_get_output(ch->bev);
    if (h->cfg.concurrency > 0)
        evbuffer_add_printf(out, "%d ", slot);
    evbuffer_add(out, r->line, r->len);
    evbuffer_add(out, "\n", 1);
}

/* Place queued requests on free slots; start children as the queue and
 * `idle` ask, within children_max and the back-off. */
static void dispatch(pd_helper *h)
{
    int bound = h->n_queued + h->cfg.children_max + 1;
    while (!TAILQ_EMPTY(&h->queue) && bound-- > 0) {
        struct child *best = NULL, *ch;
        TAILQ_FOREACH(ch, &h->children, link)
            if (ch->inflight < h->nslots && (!best || ch->inflight < best->inflight))
                best = ch;
        if (!best) {
            if (may_spawn(h) && spawn_child(h) == 0)
                continue;
            break;
        }
        int slot = 0;
        while (best->slots[slot])
            slot++;
        pd_helper_req *r = TAILQ_FIRST(&h->queue);
        TAILQ_REMOVE(&h->queue, r, link);
        h->n_queued--;
        send_to(best, slot, r);
    }
    /* keep `idle` children without work, and `startup` children at all */
    int idle = 0;
    struct child *ch;
    TAILQ_FOREACH(ch, &h->children, link)
        if (ch->inflight == 0)
            idle++;
    int want = h->cfg.idle - idle;
    if (h->n_children + want < h->cfg.startup)
        want = h->cfg.startup - h->n_children;
    if (h->n_children == 0 && want < 1 && h->n_queued > 0)
        want = 1;
    while (want-- > 0 && may_spawn(h))
        if (spawn_child(h) != 0) {
            h->no_spawn_until_ms = now_ms() + QUICK_DEATH_MS;
            struct timeval tv = {1, 0};
            evtimer_add(h->respawn, &tv);
            break;
        }
    /* held back: come again when the back-off ends */
    int64_t wait = h->no_spawn_until_ms - now_ms();
    if (wait > 0 && h->n_children < h->cfg.startup) {
        struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
        evtimer_add(h->respawn, &tv);
    }
    if (h->n_children == 0 && h->n_queued > 0)
        fail_queue(h, "no helper running");
    publish(h);
}

/* ---- the pool ----------------------------------------------------------- */

pd_helper *pd_helper_create(struct event_base *base, const pd_helper_cfg *cfg)
{
    if (!cfg->argv || !cfg->argv[0] || cfg->children_max <= 0 || cfg->concurrency < 0 ||
        cfg->startup < 0 || cfg->startup > cfg->children_max || cfg->concurrency > 1000000)
        return NULL;
    pd_helper *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->magic = HELPER_MAGIC;
    h->base = base;
    h->cfg = *cfg;
    if (h->cfg.idle < 1)
        h->cfg.idle = 1;
    if (h->cfg.idle > h->cfg.children_max)
        h->cfg.idle = h->cfg.children_max;
    if (h->cfg.queue_size < 0)
        h->cfg.queue_size = 2 * h->cfg.children_max;
    h->nslots = cfg->concurrency > 0 ? cfg->concurrency : 1;
    h->name = strdup(cfg->name ? cfg->name : cfg->argv[0]);
    int n = 0;
    while (cfg->argv[n])
        n++;
    h->argv = calloc((size_t)n + 1, sizeof *h->argv);
    for (int i = 0; h->argv && i < n; i++)
        h->argv[i] = strdup(cfg->argv[i]);
    TAILQ_INIT(&h->children);
    TAILQ_INIT(&h->queue);
    h->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, h);
    h->respawn = evtimer_new(base, respawn_cb, h);
    int ok = h->name && h->argv && h->sigchld && h->respawn && evsignal_add(h->sigchld, NULL) == 0;
    for (int i = 0; ok && i < n; i++)
        ok = h->argv[i] != NULL;
    if (!ok) {
        pd_helper_free(h);
        return NULL;
    }
    h->cfg.argv = h->argv;
    h->cfg.name = h->name;
    h->cfg.stats_name = NULL;   /* not kept: registered now */
    if (cfg->stats_kind)
        h->shared = pd_stats_helper_register(pd_stats_my_slot(), cfg->stats_kind,
                                             cfg->stats_name ? cfg->stats_name : h->name,
                                             h->argv[0]);
    for (int i = 0; i < cfg->startup; i++)
        if (spawn_child(h) != 0)
            break;
    publish(h);
    return h;
}

void pd_helper_free(pd_helper *h)
{
    if (!h)
        return;
    while (!TAILQ_EMPTY(&h->queue)) {
        pd_helper_req *r = TAILQ_FIRST(&h->queue);
        TAILQ_REMOVE(&h->queue, r, link);
        req_free(r);
    }
    while (!TAILQ_EMPTY(&h->children)) {
        struct child *ch = TAILQ_FIRST(&h->children);
        for (int i = 0; i < h->nslots; i++)
            if (ch->slots[i] && ch->slots[i] != ABANDONED)
                req_free(ch->slots[i]);
        child_free(ch);
    }
    reap(h);   /* those that already exited; the rest see EOF and exit on their own */
    while (h->zombies) {
        struct zombie *z = h->zombies;
        h->zombies = z->next;
        free(z);
    }
    if (h->sigchld)
        event_free(h->sigchld);
    if (h->respawn)
        event_free(h->respawn);
    for (int i = 0; h->argv && h->argv[i]; i++)
        free(h->argv[i]);
    free(h->argv);
    free(h->name);
    h->magic = 0;
    free(h);
}

/* The queue is past queue_size. As Squid, the pool is then "overloaded" and
 * still queues, for overload_grace_ms from the start of the overload; a
 * persistent overload refuses new requests (Squid's on-persistent-overload=ERR:
 * proxyd never exits over it). The queue is bounded anyway by the clients
 * waiting on it, and hard-capped here. */
#define HELPER_QUEUE_HARD_MAX 65536

static int overload_ok(pd_helper *h)
{
    if (h->cfg.overload_grace_ms <= 0 || h->n_queued >= HELPER_QUEUE_HARD_MAX)
        return 0;
    int64_t now = now_ms();
    if (!h->overloaded_since_ms) {
        h->overloaded_since_ms = now;
        pd_log_warn("helper %s: all %d children busy and %d requests queued; consider more "
                    "children", h->name, h->n_children, h->n_queued);
    }
    return now - h->overloaded_since_ms < h->cfg.overload_grace_ms;
}

pd_helper_req *pd_helper_submit(pd_helper *h, const char *line, size_t len, pd_helper_cb cb,
                                void *arg)
{
    if (h->magic != HELPER_MAGIC || memchr(line, '\n', len) || memchr(line, '\0', len))
        return NULL;
    /* a free slot now, or room in the queue */
    int free_slot = 0;
    struct child *ch;
    TAILQ_FOREACH(ch, &h->children, link)
        if (ch->inflight < h->nslots)
            free_slot = 1;
    if (!free_slot && h->n_queued >= h->cfg.queue_size && !may_spawn(h) && !overload_ok(h)) {
        h->st.overflows++;
        count(h, PD_HSTAT_OVERFLOWS, 1);
        pd_log_warn("helper %s: all %d children busy and %d requests queued: refused",
                    h->name, h->n_children, h->n_queued);
        return NULL;
    }
    pd_helper_req *r = calloc(1, sizeof *r + len + 1);
    if (!r)
        return NULL;
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    r->len = len;
    r->submitted_us = now_us();
    memcpy(r->line, line, len);
    if (h->cfg.timeout_ms > 0) {
        r->timer = evtimer_new(h->base, timeout_cb, r);
        struct timeval tv = {h->cfg.timeout_ms / 1000, (h->cfg.timeout_ms % 1000) * 1000};
        if (!r->timer || evtimer_add(r->timer, &tv) != 0) {
            req_free(r);
            return NULL;
        }
    }
    h->st.requests++;
    count(h, PD_HSTAT_REQUESTS, 1);
    TAILQ_INSERT_TAIL(&h->queue, r, link);
    h->n_queued++;
    /* place it now when a child is free: no callback can run from here, since
     * a failing start (no child at all) is answered from the respawn timer */
    if (h->n_children == 0 && !may_spawn(h)) {
        /* nothing can run it: answer BH from the loop's next round */
        struct timeval zero = {0, 0};
        evtimer_add(h->respawn, &zero);
        publish(h);
        return r;
    }
    TAILQ_FOREACH(ch, &h->children, link)
        if (ch->inflight < h->nslots)
            break;
    if (!ch && h->n_children < h->cfg.children_max && spawn_child(h) != 0) {
        struct timeval zero = {0, 0};
        h->no_spawn_until_ms = now_ms() + QUICK_DEATH_MS;
        evtimer_add(h->respawn, &zero);
        publish(h);
        return r;
    }
    TAILQ_FOREACH(ch, &h->children, link)
        if (ch->inflight < h->nslots)
            break;
    if (ch) {
        int slot = 0;
        while (ch->slots[slot])
            slot++;
        TAILQ_REMOVE(&h->queue, r, link);
        h->n_queued--;
        send_to(ch, slot, r);
    }
    publish(h);
    return r;
}

void pd_helper_cancel(pd_helper_req *r)
{
    if (!r)
        return;
    pd_helper *h = r->h;
    if (r->ch) {
        r->ch->slots[r->slot] = ABANDONED;
    } else {
        TAILQ_REMOVE(&h->queue, r, link);
        h->n_queued--;
    }
    req_free(r);
    publish(h);
}

void pd_helper_get_stats(const pd_helper *h, pd_helper_stats *out)
{
    *out = h->st;
    out->children = h->n_children;
    out->queued = h->n_queued;
    out->busy = 0;
    const struct child *ch;
    TAILQ_FOREACH(ch, &h->children, link)
        if (ch->inflight > 0)
            out->busy++;
}

/* ---- configuration ------------------------------------------------------ */

static int parse_count(const char *s, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int pd_helper_parse_children(pd_helper_cfg *cfg, char *const *words, int n, char *err,
                             size_t errlen)
{
    if (n < 1 || parse_count(words[0], 1, 10000, &cfg->children_max) != 0) {
        snprintf(err, errlen, "children: expected a number of children (1-10000)");
        return -1;
    }
    for (int i = 1; i < n; i++) {
        const char *w = words[i];
        static const struct {
            const char *key;
            size_t off;
            int min, max;
        } opts[] = {
            {"startup=", offsetof(pd_helper_cfg, startup), 0, 10000},
            {"idle=", offsetof(pd_helper_cfg, idle), 1, 10000},
            {"concurrency=", offsetof(pd_helper_cfg, concurrency), 0, 100000},
            {"queue-size=", offsetof(pd_helper_cfg, queue_size), 0, 1000000},
        };
        size_t k;
        for (k = 0; k < sizeof opts / sizeof opts[0]; k++) {
            size_t kl = strlen(opts[k].key);
            if (strncmp(w, opts[k].key, kl) == 0) {
                int *dst = (int *)((char *)cfg + opts[k].off);
                if (parse_count(w + kl, opts[k].min, opts[k].max, dst) != 0) {
                    snprintf(err, errlen, "children: bad value in '%s'", w);
                    return -1;
                }
                break;
            }
        }
        if (k == sizeof opts / sizeof opts[0]) {
            snprintf(err, errlen, "children: unknown option '%s'", w);
            return -1;
        }
    }
    if (cfg->startup > cfg->children_max) {
        snprintf(err, errlen, "children: startup=%d is more than %d children", cfg->startup,
                 cfg->children_max);
        return -1;
    }
    return 0;
}
