/*
 * master: the supervising process. It opens the listening sockets (one
 * SO_REUSEPORT socket per http_port per worker, before fork, so that no
 * connection is ever refused while workers come and go), forks the workers,
 * restarts a worker that dies, reloads on SIGHUP (new config checked first;
 * new workers start before the old ones drain), drains on SIGTERM/SIGINT and
 * passes SIGUSR1 on so that logs are reopened. It serves no request itself.
 */
#include "proxyd/master.h"
#include "proxyd/peer.h"
#include "proxyd/cluster.h"
#include "proxyd/clock.h"
#include "proxyd/sdnotify.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxyd/acl.h"
#include "proxyd/headers.h"
#include "proxyd/admin.h"
#include "proxyd/cache_policy.h"
#include "proxyd/cache_store.h"
#include "proxyd/cpus.h"
#include "proxyd/log.h"
#include "proxyd/stats.h"
#include "proxyd/worker.h"

/* two generations (during a reload) must fit in the cache's slots */
#define MAX_WORKERS PD_CONF_MAX_WORKERS
_Static_assert(2 * PD_CONF_MAX_WORKERS <= PD_CACHE_MAX_WORKERS,
               "a reload's two generations must fit the cache's slots");
_Static_assert(PD_CONF_MAX_WORKERS <= PD_STATS_MAX_WORKERS, "one counter slot per worker");
#define MAX_KIDS (MAX_WORKERS * 4)

struct kid {
    pid_t pid;
    int slot;
    int generation;
    int retiring;           /* told to drain: not restarted */
    int cache_slot;         /* its slot in the cache store */
    struct timespec started;
};

struct gen {
    pd_conf *conf;
    pd_acl_rules *acl;
    pd_hdr_rules *hdr;      /* refers to acl */
    pd_peers *peers;        /* refers to acl; each worker's copy keeps its own peer state */
    pd_refresh_rules refresh;
    int nworkers;
    int nports;
    int fds[PD_CONF_MAX_PORTS][MAX_WORKERS];
    int icp_fds[MAX_WORKERS];       /* icp_port: one SO_REUSEPORT UDP socket per worker, or -1 */
    struct sockaddr_storage icp_ss; /* its address as configured (port 0: none) */
    int id;
};

static struct {
    const char *conf_path;
    struct event_base *base;
    struct gen cur;
    struct gen old;         /* previous generation, kept until its workers exit */
    int have_old;
    struct kid kids[MAX_KIDS];
    pd_cache_store *store;
    uint64_t cache_slots_used;  /* bit i: cache slot i belongs to a live worker */
    int nkids;
    int stopping;
    struct event *restart_timer;
    struct event *stop_deadline;
    pd_stats *stats;        /* shared counters, mapped before the first fork */
    pd_admin *admin;        /* admin listener (NULL: none) */
} M;

static int addr_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

/*
 * One worker's socket on a shared address (ss, len bytes), non-blocking and
 * close-on-exec: SO_REUSEPORT, so that every worker has its own socket on the
 * address and the kernel spreads the connections (SOCK_STREAM, which also
 * listens) or the datagrams (SOCK_DGRAM) over them; SO_REUSEADDR; an IPv6
 * address takes IPv6 only. Returns the fd, or -1 with err set.
 */
static int open_shared(const struct sockaddr_storage *ss, socklen_t len, int type, char *err,
                       size_t errlen)
{
    int fd = socket(ss->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        snprintf(err, errlen, "SO_REUSEPORT: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
        (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
        snprintf(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Whether another process listens on ss. proxyd's own listeners share their
 * address with SO_REUSEPORT (so that no connection is refused while workers
 * come and go), and so would a second proxyd of the same user: the kernel
 * would split the clients between two configurations. A socket bound without
 * SO_REUSEPORT cannot share: EADDRINUSE means the address is held. With
 * SO_REUSEADDR, the connections a stopped proxyd left in TIME_WAIT do not
 * count, so a quick stop and start still works. On a reload only the
 * addresses the running configuration does not have are asked (the others are
 * our own). 1 held, 0 free or unknown.
 */
static int address_held(const struct sockaddr_storage *ss, socklen_t len)
{
    if (addr_port(ss) == 0)
        return 0;   /* the kernel picks a free port */
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int held = bind(fd, (const struct sockaddr *)ss, len) < 0 && errno == EADDRINUSE;
    close(fd);
    return held;
}

/* Whether a (len bytes) is among v[0..n-1]. */
static int listed(const pd_listen_addr *v, int n, const pd_listen_addr *a)
{
    for (int i = 0; i < n; i++)
        if (v[i].len == a->len && !memcmp(&v[i].ss, &a->ss, a->len))
            return 1;
    return 0;
}

/*
 * Refuse an address another process (another proxyd, say) listens on. At
 * start every address is asked; on a reload (prev: the running
 * configuration) only the new ones, the others being our own.
 */
static int check_addresses_free(const pd_conf *conf, const pd_conf *prev)
{
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        const pd_listen_addr *v = k ? conf->admin_port : conf->http_port;
        int n = k ? conf->n_admin_port : conf->n_http_port;
        for (int i = 0; i < n; i++) {
            if (prev && listed(k ? prev->admin_port : prev->http_port,
                               k ? prev->n_admin_port : prev->n_http_port, &v[i]))
                continue;
            if (!address_held(&v[i].ss, v[i].len))
                continue;
            pd_log_error("%s: %s %s: the address is in use by another process (another "
                         "proxyd?)", v[i].where, k ? "admin_port" : "http_port", v[i].text);
            rc = -1;
        }
    }
    return rc;
}

static void addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];
    const void *a = ss->ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    inet_ntop(ss->ss_family, a, ip, sizeof ip);
    snprintf(buf, size, ss->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, addr_port(ss));
}

/*
 * After binding, at start: does another process listen on one of g's
 * http_port addresses too? address_held asked before binding; two proxyds
 * started at the same moment could both have passed it and then shared the
 * port with SO_REUSEPORT. The kernel's table of listening sockets
 * (/proc/net/tcp, tcp6) tells: a listener on the same port and address (or a
 * wildcard of the same family) whose socket is not one of ours. Of two
 * instances in that race both stop, which is the safe side. 0 when alone or
 * when the table cannot be read.
 */
static int listeners_shared(const struct gen *g)
{
    unsigned long own[PD_CONF_MAX_PORTS * MAX_WORKERS];
    int n_own = 0;
    for (int p = 0; p < g->nports; p++)
        for (int j = 0; j < g->nworkers; j++) {
            struct stat st;
            if (g->fds[p][j] >= 0 && fstat(g->fds[p][j], &st) == 0)
                own[n_own++] = (unsigned long)st.st_ino;
        }
    int shared = 0;
    for (int v6 = 0; v6 < 2; v6++) {
        FILE *f = fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "r");
        if (!f)
            continue;
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char addr[33];
            unsigned port, state;
            unsigned long inode;
            /* "sl: ADDR:PORT REM:PORT ST TX:RX TR:WHEN RETR UID TIMEOUT INODE" */
            if (sscanf(line, " %*d: %32[0-9A-F]:%X %*s %X %*s %*s %*s %*s %*s %lu", addr, &port,
                       &state, &inode) != 4 || state != 0x0A)
                continue;
            uint32_t a[4] = { 0 };
            for (int k = 0; k < (v6 ? 4 : 1); k++)
                sscanf(addr + 8 * k, "%8" SCNx32, &a[k]);
            int mine = 0;
            for (int i = 0; i < n_own && !mine; i++)
                mine = own[i] == inode;
            for (int p = 0; p < g->nports && !mine; p++) {
                struct sockaddr_storage b;
                socklen_t bl = sizeof b;
                if (g->fds[p][0] < 0 ||
                    getsockname(g->fds[p][0], (struct sockaddr *)&b, &bl) != 0 ||
                    (b.ss_family == AF_INET6) != v6 || (unsigned)addr_port(&b) != port)
                    continue;
                uint32_t w[4] = { 0 };
                if (v6)
                    memcpy(w, &((struct sockaddr_in6 *)&b)->sin6_addr, 16);
                else
                    memcpy(w, &((struct sockaddr_in *)&b)->sin_addr, 4);
                int any_a = !(a[0] | a[1] | a[2] | a[3]), any_w = !(w[0] | w[1] | w[2] | w[3]);
                if (memcmp(a, w, sizeof a) && !any_a && !any_w)
                    continue;
                pd_log_error("%s: http_port %s: another process listens there too (another "
                             "proxyd started at the same time?); not started",
                             g->conf->http_port[p].where, g->conf->http_port[p].text);
                shared = 1;
            }
        }
        fclose(f);
    }
    return shared;
}

static void close_gen_fds(struct gen *g, int from_worker)
{
    for (int p = 0; p < g->nports; p++)
        for (int j = from_worker; j < g->nworkers; j++)
            if (g->fds[p][j] >= 0) {
                close(g->fds[p][j]);
                g->fds[p][j] = -1;
            }
    for (int j = from_worker; j < g->nworkers; j++)
        if (g->icp_fds[j] >= 0) {
            close(g->icp_fds[j]);
            g->icp_fds[j] = -1;
        }
}

/*
 * icp_port: one UDP socket per worker, all bound to the port with
 * SO_REUSEPORT, so that the kernel spreads the queries over the workers
 * (each answers from the one shared cache). Sockets of prev for the same
 * address are kept across a reload. Returns 0 or -1 (logged).
 */
static int open_icp_fds(struct gen *g, struct gen *prev)
{
    const pd_conf *conf = g->conf;
    memset(&g->icp_ss, 0, sizeof g->icp_ss);
    if (conf->icp_port <= 0)
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    const char *a = conf->udp_incoming_address;
    if (a && inet_pton(AF_INET6, a, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
    } else {
        s4->sin_family = AF_INET;
        if (!a || inet_pton(AF_INET, a, &s4->sin_addr) != 1)
            s4->sin_addr.s_addr = htonl(INADDR_ANY);
    }
    set_port(&ss, conf->icp_port);
    g->icp_ss = ss;
    socklen_t len = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
    int reuse = prev && !memcmp(&prev->icp_ss, &ss, sizeof ss);
    for (int j = 0; j < g->nworkers; j++) {
        if (reuse && j < prev->nworkers && prev->icp_fds[j] >= 0) {
            g->icp_fds[j] = prev->icp_fds[j];
            prev->icp_fds[j] = -1; /* moved */
            continue;
        }
        char err[256], at[80];
        int fd = open_shared(&ss, len, SOCK_DGRAM, err, sizeof err);
        if (fd < 0) {
            addr_text(&ss, at, sizeof at);
            pd_log_error("cannot open the ICP port %s (icp_port): %s", at, err);
            return -1;
        }
        g->icp_fds[j] = fd;
    }
    char at[80];
    addr_text(&ss, at, sizeof at);
    fprintf(stderr, "proxyd: ICP on %s\n", at);
    return 0;
}

/* Port 0 in ss: ss takes the port the kernel picked for fd. */
static void take_bound_port(struct sockaddr_storage *ss, int fd)
{
    struct sockaddr_storage b;
    socklen_t bl = sizeof b;
    if (getsockname(fd, (struct sockaddr *)&b, &bl) == 0)
        set_port(ss, addr_port(&b));
}

/*
 * Open the sockets of g (nworkers per port). Sockets of prev for the same
 * address are reused (the same kernel socket keeps its queue across a reload).
 * Port 0 picks one free port for all workers. Returns 0 or -1 (message logged).
 */
static int open_gen_fds(struct gen *g, struct gen *prev)
{
    const pd_conf *conf = g->conf;
    g->nports = conf->n_http_port;
    for (int j = 0; j < MAX_WORKERS; j++)
        g->icp_fds[j] = -1;
    for (int p = 0; p < PD_CONF_MAX_PORTS; p++)
        for (int j = 0; j < MAX_WORKERS; j++)
            g->fds[p][j] = -1;
    for (int p = 0; p < g->nports; p++) {
        struct sockaddr_storage ss = conf->http_port[p].ss;
        socklen_t len = conf->http_port[p].len;
        int reuse_p = -1;
        if (prev) {
            for (int q = 0; q < prev->nports; q++)
                if (prev->conf->http_port[q].len == len &&
                    memcmp(&prev->conf->http_port[q].ss, &ss, len) == 0)
                    reuse_p = q;
        }
        for (int j = 0; j < g->nworkers; j++) {
            if (reuse_p >= 0 && j < prev->nworkers && prev->fds[reuse_p][j] >= 0) {
                g->fds[p][j] = prev->fds[reuse_p][j];
                prev->fds[reuse_p][j] = -1; /* moved */
                if (j == 0 && addr_port(&ss) == 0)
                    take_bound_port(&ss, g->fds[p][j]);
                continue;
            }
            if (j > 0 && addr_port(&ss) == 0)
                take_bound_port(&ss, g->fds[p][0]);
            char err[256], at[80];
            int fd = open_shared(&ss, len, SOCK_STREAM, err, sizeof err);
            if (fd < 0) {
                addr_text(&ss, at, sizeof at);
                pd_log_error("cannot listen on %s (http_port, %s): %s", at,
                             conf->http_port[p].where, err);
                close_gen_fds(g, 0);
                return -1;
            }
            g->fds[p][j] = fd;
            if (j == 0 && addr_port(&ss) == 0)
                take_bound_port(&ss, fd);
        }
        char at[80];
        addr_text(&ss, at, sizeof at);
        /* the test harness and scripts wait for this exact line */
        fprintf(stderr, "proxyd: listening on %s\n", at);
    }
    if (open_icp_fds(g, prev) < 0) {
        close_gen_fds(g, 0);
        return -1;
    }
    fflush(stderr);
    return 0;
}

static int take_cache_slot(void)
{
    for (int i = 0; i < PD_CACHE_MAX_WORKERS; i++)
        if (!(M.cache_slots_used & (1ull << i))) {
            M.cache_slots_used |= 1ull << i;
            return i;
        }
    return -1;
}

static void free_gen(struct gen *g)
{
    pd_cache_policy_refresh_free(&g->refresh);
    pd_hdr_rules_free(g->hdr);
    g->hdr = NULL;
    pd_peers_free(g->peers);
    g->peers = NULL;
    pd_acl_rules_free(g->acl);
    pd_conf_free(g->conf);
    g->acl = NULL;
    g->conf = NULL;
}

/*
 * In a new worker: close every descriptor inherited from the master (admin
 * listener and its connections, other workers' sockets, ...) except stdio,
 * the worker's own listening sockets and the cache's notify eventfds.
 */
static void close_inherited_fds(const int *keep, int nkeep)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int dfd = dirfd(d);
    int victims[4096], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < (int)(sizeof victims / sizeof victims[0])) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= STDERR_FILENO || fd == dfd)
            continue;
        int kept = 0;
        for (int i = 0; i < nkeep && !kept; i++)
            kept = keep[i] == fd;
        for (int i = 0; M.store && i < PD_CACHE_MAX_WORKERS && !kept; i++)
            kept = pd_cache_store_notify_fd(M.store, i) == fd;
        if (M.store && !kept)
            kept = pd_cache_store_memfd(M.store) == fd;
        if (!kept)
            victims[n++] = fd;
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        close(victims[i]);
}

static pid_t spawn(int slot)
{
    struct gen *g = &M.cur;
    /* the worker keeps requests away from the admin listener: read it before the fork,
     * the child forgets the admin at once */
    struct sockaddr_storage admin[PD_CONF_MAX_PORTS];
    int n_admin = pd_admin_bound(M.admin, admin, PD_CONF_MAX_PORTS);
    int cslot = take_cache_slot();
    if (cslot < 0) {
        pd_log_error("no free cache slot for worker %d", slot);
        return -1;
    }
    /* The signals the master passes on to its kids are blocked across fork and
     * stay blocked in the child until the worker's own handlers are in place
     * (pd_worker_run): one sent to a kid still starting up is delivered then,
     * not lost (SIGUSR1 was ignored there, so a log rotation just after a
     * start or restart left that worker writing to the rotated file). */
    sigset_t passed_on, old_mask;
    sigemptyset(&passed_on);
    sigaddset(&passed_on, SIGTERM);
    sigaddset(&passed_on, SIGINT);
    sigaddset(&passed_on, SIGUSR1);
    sigprocmask(SIG_BLOCK, &passed_on, &old_mask);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
    if (pid < 0) {
        pd_log_error("fork: %s", strerror(errno));
        M.cache_slots_used &= ~(1ull << cslot);
        return -1;
    }
    if (pid > 0) {
        if (M.nkids < MAX_KIDS) {
            struct kid *k = &M.kids[M.nkids++];
            k->pid = pid;
            k->slot = slot;
            k->generation = g->id;
            k->retiring = 0;
            k->cache_slot = cslot;
            clock_gettime(CLOCK_MONOTONIC, &k->started);
        }
        return pid;
    }
    /* child: leave the master's event loop, signal handling and sockets behind */
    /* the epoll instance is shared with the master until event_reinit gives us our own */
    event_reinit(M.base);
    /*
     * Not pd_admin_free: freeing an evhttp shuts down its connections, and
     * those sockets are the master's too. The admin's memory is left as it
     * is (never used here) and its descriptors are closed with the others
     * in close_inherited_fds.
     */
    M.admin = NULL;
    event_base_free(M.base);
    M.base = NULL;
    signal(SIGHUP, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    sigprocmask(SIG_SETMASK, &passed_on, NULL);
    char role[32];
    snprintf(role, sizeof role, "worker %d", slot);
    pd_log_set_role(role);
    int fds[PD_CONF_MAX_PORTS + 1];
    for (int p = 0; p < g->nports; p++) {
        fds[p] = g->fds[p][slot];
        g->fds[p][slot] = -1;
    }
    int icp_fd = g->icp_fds[slot];
    g->icp_fds[slot] = -1;
    fds[g->nports] = icp_fd;
    close_gen_fds(g, 0);
    if (M.have_old)
        close_gen_fds(&M.old, 0);
    close_inherited_fds(fds, g->nports + 1);
    pd_worker_init wi = {
        .conf = g->conf, .acl = g->acl, .hdr = g->hdr, .peers = g->peers, .refresh = &g->refresh, .store = M.store,
        .cache_slot = cslot, .slot = slot, .generation = g->id, .fds = fds, .n_fds = g->nports,
        .icp_fd = icp_fd,
        .admin = admin, .n_admin = n_admin,
    };
    _exit(pd_worker_run(&wi));
}

static struct kid *find_kid(pid_t pid)
{
    for (int i = 0; i < M.nkids; i++)
        if (M.kids[i].pid == pid)
            return &M.kids[i];
    return NULL;
}

static int slot_alive(int gen, int slot)
{
    for (int i = 0; i < M.nkids; i++)
        if (M.kids[i].generation == gen && M.kids[i].slot == slot && !M.kids[i].retiring)
            return 1;
    return 0;
}

/* Start every missing worker of the current generation. */
static void fill_slots(void)
{
    if (M.stopping)
        return;
    for (int s = 0; s < M.cur.nworkers; s++)
        if (!slot_alive(M.cur.id, s))
            spawn(s);
}

static void restart_cb(evutil_socket_t fd, short what, void *arg)
{
    fill_slots();
}

static void maybe_exit(void)
{
    if (M.stopping && M.nkids == 0)
        event_base_loopexit(M.base, NULL);
}

static void reap(void)
{
    int status;
    pid_t pid;
    int fast_death = 0;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct kid *k = find_kid(pid);
        if (!k)
            continue;
        struct kid dead = *k;
        *k = M.kids[--M.nkids];
        pd_stats_slot_release(pd_stats_worker_slot(M.stats, dead.generation, dead.slot), pid);
        /* whatever it held in the cache (locks, references, half-written objects) is freed */
        if (M.store) {
            int n = pd_cache_store_reap_slot(M.store, dead.cache_slot);
            if (n > 0)
                pd_log_info("worker %d: reclaimed %d cache handles", dead.slot, n);
        }
        M.cache_slots_used &= ~(1ull << dead.cache_slot);
        if (dead.retiring || M.stopping) {
            continue;
        }
        if (WIFSIGNALED(status))
            pd_log_warn("worker %d (pid %d) killed by signal %d: restarting", dead.slot, (int)pid,
                        WTERMSIG(status));
        else
            pd_log_warn("worker %d (pid %d) exited with status %d: restarting", dead.slot,
                        (int)pid, WEXITSTATUS(status));
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - dead.started.tv_sec < 1)
            fast_death = 1;
    }
    /* old generation gone: its configuration can go too */
    if (M.have_old) {
        int left = 0;
        for (int i = 0; i < M.nkids; i++)
            if (M.kids[i].generation == M.old.id)
                left++;
        if (!left) {
            close_gen_fds(&M.old, 0);
            free_gen(&M.old);
            M.have_old = 0;
        }
    }
    if (M.stopping) {
        maybe_exit();
        return;
    }
    if (fast_death) {
        /* a worker that dies at once would otherwise be forked in a loop */
        struct timeval tv = { 1, 0 };
        evtimer_add(M.restart_timer, &tv);
    } else {
        fill_slots();
    }
}

static void signal_kids(int sig, int only_gen)
{
    for (int i = 0; i < M.nkids; i++)
        if (only_gen < 0 || M.kids[i].generation == only_gen)
            kill(M.kids[i].pid, sig);
}

/*
 * The access log must be writable before anything is served with conf (Squid
 * stops too): a worker that cannot log does not serve. With create the file is
 * opened, and created, as the workers will open it; without (proxyd -t) it is
 * only checked, so that a check leaves no file behind. -1 after a
 * "file:line: message" on stderr.
 */
static int check_access_log(const pd_conf *c, int create)
{
    const char *p = c->access_log;
    if (!p || !strcmp(p, "stdout") || !strcmp(p, "stderr"))
        return 0;
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | (create ? O_CREAT : 0), 0644);
    int e = fd < 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    if (e == ENOENT && !create) {
        /* not there yet: its directory must let the workers create it */
        char dir[PATH_MAX];
        const char *slash = strrchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : 0;
        if (n >= sizeof dir)
            n = sizeof dir - 1;
        memcpy(dir, slash ? p : ".", slash ? n : 1);
        dir[slash ? (n ? n : 1) : 1] = '\0';
        e = access(dir, W_OK | X_OK) == 0 ? 0 : errno;
    }
    if (!e)
        return 0;
    fprintf(stderr, "%s:%d: access_log: cannot open %s: %s\n",
            c->access_log_file ? c->access_log_file : c->path, c->access_log_line, p,
            strerror(e));
    return -1;
}

/*
 * Load and compile a configuration, reporting every error of every stage in
 * one pass. create: open the access log for real (start, reload) rather than
 * only check it (proxyd -t). Returns 0 or -1; *n_errors and *n_warnings count
 * the messages written.
 */
static int load_gen(struct gen *g, const char *path, int create, int *n_errors,
                    int *n_warnings)
{
    memset(g, 0, sizeof *g);
    int errors = 0, acl_errors = 0, acl_warnings = 0;
    *n_errors = 0;
    *n_warnings = 0;
    g->conf = pd_conf_load_all(path, stderr, &errors);
    if (!g->conf) {
        *n_errors = 1;
        return -1;
    }
    g->acl = pd_acl_compile_counted(g->conf, stderr, &acl_errors, &acl_warnings);
    g->conf->n_warnings += acl_warnings;
    errors += acl_errors;
    if (g->acl) {
        int hdr_errors = 0, hdr_warnings = 0;
        g->hdr = pd_hdr_compile(g->conf, g->acl, stderr, &hdr_errors, &hdr_warnings);
        g->conf->n_warnings += hdr_warnings;
        errors += hdr_errors;
        int peer_errors = 0, peer_warnings = 0;
        g->peers = pd_peers_compile(g->conf, g->acl, stderr, &peer_errors, &peer_warnings);
        g->conf->n_warnings += peer_warnings;
        errors += peer_errors;
    }
    errors += pd_cluster_check(g->conf, stderr);
    char err[512];
    if (pd_cache_policy_refresh_compile(&g->refresh, &g->conf->refresh_pattern, err,
                                        sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        errors++;
    }
    if (check_access_log(g->conf, create) < 0)
        errors++;
    *n_warnings = g->conf->n_warnings;
    if (errors) {
        *n_errors = errors;
        free_gen(g);
        return -1;
    }
    /* workers 0: the CPUs this process may use (affinity, cgroup quota), not the host's */
    g->nworkers = g->conf->workers > 0 ? g->conf->workers : pd_cpus_usable();
    if (g->nworkers > MAX_WORKERS) {
        /* only `workers 0` on a machine with more CPUs gets here: conf refuses more */
        pd_log_info("%d CPUs: starting %d workers, the most one proxyd runs", g->nworkers,
                    MAX_WORKERS);
        g->nworkers = MAX_WORKERS;
    }
    return 0;
}

static void reload(void)
{
    if (M.have_old) {
        pd_log_warn("reload refused: the previous reload is still draining");
        return;
    }
    struct gen g;
    int n_errors, n_warnings;
    pd_log_info("SIGHUP: reloading %s", M.conf_path);
    if (load_gen(&g, M.conf_path, 1, &n_errors, &n_warnings) < 0) {
        pd_log_error("reload refused: %s has errors (above); still serving with the old "
                     "configuration", M.conf_path);
        return;
    }
    g.id = M.cur.id + 1;
    if (g.conf->cache_mem != M.cur.conf->cache_mem ||
        g.conf->maximum_object_size != M.cur.conf->maximum_object_size ||
        g.conf->maximum_object_size_in_memory != M.cur.conf->maximum_object_size_in_memory)
        pd_log_warn("cache_mem and maximum_object_size changes take effect at the next restart");
    if (check_addresses_free(g.conf, M.cur.conf) < 0 || open_gen_fds(&g, &M.cur) < 0) {
        pd_log_error("reload refused: cannot open the listening sockets");
        free_gen(&g);
        return;
    }
    M.old = M.cur;
    M.have_old = 1;
    M.cur = g;
    pd_stats_set_host(M.stats, M.cur.id, M.cur.nworkers);
    if (pd_admin_same_ports(M.admin, M.cur.conf)) {
        pd_admin_set_conf(M.admin, M.cur.conf, M.cur.acl);
    } else {
        pd_admin_free(M.admin);
        M.admin = pd_admin_start(M.base, M.cur.conf, M.cur.acl, M.stats);
    }
    /* new workers first, then the old ones drain: no gap in service */
    for (int i = 0; i < M.nkids; i++)
        if (M.kids[i].generation == M.old.id)
            M.kids[i].retiring = 1;
    fill_slots();
    signal_kids(SIGTERM, M.old.id);
    /* sockets the new generation did not take over are closed now */
    close_gen_fds(&M.old, 0);
    pd_log_info("reloaded: generation %d, %d workers", M.cur.id, M.cur.nworkers);
}

static void sample_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_stats_sample(M.stats);
}

static void stop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    pd_log_warn("workers did not exit in time: killing them");
    signal_kids(SIGKILL, -1);
}

static void master_signal_cb(evutil_socket_t sig, short what, void *arg)
{
    switch (sig) {
    case SIGCHLD:
        reap();
        break;
    case SIGHUP:
        if (!M.stopping)
            reload();
        break;
    case SIGUSR1:
        /* logrotate moved the files: the master's cache_log, then each kid's logs */
        if (pd_log_reopen(M.cur.conf->cache_log) < 0)
            pd_log_error("cannot reopen cache_log %s: %s", M.cur.conf->cache_log, strerror(errno));
        pd_log_info("SIGUSR1: reopening the log files");
        signal_kids(SIGUSR1, -1);
        break;
    case SIGTERM:
    case SIGINT:
        if (M.stopping) {
            signal_kids(SIGKILL, -1);
            break;
        }
        pd_log_info("%s: draining %d workers", sig == SIGTERM ? "SIGTERM" : "SIGINT", M.nkids);
        M.stopping = 1;
        signal_kids(SIGTERM, -1);
        close_gen_fds(&M.cur, 0);
        {
            struct timeval tv = pd_clock_tv(M.cur.conf->shutdown_lifetime + 5000);
            evtimer_add(M.stop_deadline, &tv);
        }
        maybe_exit();
        break;
    }
}

/* The cache gauges of the stats pages (any process: the store is shared). */
static void cache_stats_hook(void *arg, pd_stats_cache *out)
{
    pd_cache_stats cs;
    pd_cache_store_stats(arg, &cs);
    out->configured = 1;
    out->attached = cs.blocks_total > 0;
    out->objects = cs.objects;
    out->bytes_used = cs.bytes_used;
    out->bytes_free = cs.bytes_free;
    out->evictions = cs.evictions;
    out->cache_mem = cs.cache_mem;
    out->stored_bytes = cs.stored_bytes;
    out->metadata_bytes = cs.overhead_bytes;
    /* beyond its own bytes, an object costs its index record and the rest
     * of its last block */
    out->object_overhead = cs.objects ? cs.record_bytes + (cs.object_blocks * cs.block_size -
                                                           cs.stored_bytes) / cs.objects : 0;
}

static void write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        pd_log_error("cannot write pid_filename %s: %s", path, strerror(errno));
        return;
    }
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
}

int pd_master_run(const char *conf_path)
{
    memset(&M, 0, sizeof M);
    M.conf_path = conf_path;
    pd_log_set_role("master");
    signal(SIGPIPE, SIG_IGN);
    int n_errors, n_warnings;
    if (load_gen(&M.cur, conf_path, 1, &n_errors, &n_warnings) < 0) {
        fprintf(stderr, "proxyd: %s: configuration has %d error%s; not started\n", conf_path,
                n_errors, n_errors == 1 ? "" : "s");
        return 1;
    }
    M.cur.id = 1;
    if (check_addresses_free(M.cur.conf, NULL) < 0 || open_gen_fds(&M.cur, NULL) < 0) {
        fprintf(stderr, "proxyd: %s: cannot listen; not started\n", conf_path);
        return 1;
    }
    if (listeners_shared(&M.cur)) {
        close_gen_fds(&M.cur, 0);
        return 1;
    }
    M.stats = pd_stats_create();
    if (!M.stats) {
        pd_log_error("cannot map the shared counters: %s", strerror(errno));
        return 1;
    }
    pd_stats_set_host(M.stats, M.cur.id, M.cur.nworkers);
    if (pd_log_reopen(M.cur.conf->cache_log) < 0)
        pd_log_error("cannot open cache_log %s: %s", M.cur.conf->cache_log, strerror(errno));
    char *pid_file = M.cur.conf->pid_filename ? strdup(M.cur.conf->pid_filename) : NULL;
    if (pid_file)
        write_pid_file(pid_file);
    const pd_conf *cf = M.cur.conf;
    uint64_t max_obj = cf->maximum_object_size_in_memory < cf->maximum_object_size
                           ? cf->maximum_object_size_in_memory : cf->maximum_object_size;
    if (cf->cache_mem > 0 && max_obj > 0) {
        if (max_obj > cf->cache_mem)
            max_obj = cf->cache_mem;
        M.store = pd_cache_store_create(cf->cache_mem, max_obj, PD_CACHE_MAX_WORKERS, cf->memory_replacement_policy);
        if (!M.store) {
            pd_log_error("cannot create the cache (cache_mem %llu bytes): %s",
                         (unsigned long long)cf->cache_mem, strerror(errno));
            return 1;
        }
        pd_stats_set_cache_hook(cache_stats_hook, M.store);
    }

    M.base = event_base_new();
    if (!M.base)
        return 1;
    int sigs[] = { SIGCHLD, SIGHUP, SIGUSR1, SIGTERM, SIGINT };
    struct event *sev[5];
    for (int i = 0; i < 5; i++) {
        sev[i] = evsignal_new(M.base, sigs[i], master_signal_cb, NULL);
        evsignal_add(sev[i], NULL);
    }
    M.restart_timer = evtimer_new(M.base, restart_cb, NULL);
    M.stop_deadline = evtimer_new(M.base, stop_deadline_cb, NULL);
    M.admin = pd_admin_start(M.base, M.cur.conf, M.cur.acl, M.stats);
    /* the counters' samples for mgr:5min and 60min: one now, then one a minute */
    pd_stats_sample(M.stats);
    struct event *sample_ev = event_new(M.base, -1, EV_PERSIST, sample_cb, NULL);
    struct timeval every = { PD_STATS_SAMPLE_S, 0 };
    if (sample_ev)
        event_add(sample_ev, &every);

    fill_slots();
    fprintf(stderr, "proxyd: ready (%d workers)\n", M.cur.nworkers);
    fflush(stderr);
    /* systemd Type=notify: the unit is started once the sockets are open and
     * the workers forked; without $NOTIFY_SOCKET this does nothing */
    char ready[64];
    snprintf(ready, sizeof ready, "READY=1\nMAINPID=%d", (int)getpid());
    if (pd_sdnotify_send(ready) < 0)
        pd_log_warn("sd_notify READY failed: %s", strerror(errno));
    pd_log_info("proxyd %s started: %d workers, configuration %s", PROXYD_VERSION,
                M.cur.nworkers, conf_path);

    event_base_dispatch(M.base);

    pd_log_info("all workers exited; master exits");
    for (int i = 0; i < 5; i++)
        event_free(sev[i]);
    event_free(M.restart_timer);
    event_free(M.stop_deadline);
    if (sample_ev)
        event_free(sample_ev);
    pd_admin_free(M.admin);
    event_base_free(M.base);
    pd_stats_destroy(M.stats);
    close_gen_fds(&M.cur, 0);
    free_gen(&M.cur);
    if (M.store)
        pd_cache_store_destroy(M.store);
    if (pid_file) {
        unlink(pid_file);
        free(pid_file);
    }
    return 0;
}

int pd_master_check(const char *conf_path)
{
    struct gen g;
    int n_errors, n_warnings;
    int rc = load_gen(&g, conf_path, 0, &n_errors, &n_warnings);
    if (rc < 0)
        fprintf(stderr, "proxyd: configuration file %s test failed", conf_path);
    else
        fprintf(stderr, "proxyd: configuration file %s is OK", conf_path);
    fprintf(stderr, " (%d error%s, %d warning%s)\n", n_errors, n_errors == 1 ? "" : "s",
            n_warnings, n_warnings == 1 ? "" : "s");
    if (rc < 0)
        return 1;
    free_gen(&g);
    return 0;
}
