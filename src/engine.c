/*
 * engine: the request engine's context (include/proxyd/engine.h), and the
 * one check on it that is no module's: is a destination proxyd itself.
 */
#include "proxyd/engine.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

void pd_engine_init(pd_engine *e)
{
    TAILQ_INIT(&e->clients);
    TAILQ_INIT(&e->idle);
    TAILQ_INIT(&e->bg);
    e->n_clients = 0;
    e->n_bg = 0;
    e->n_cache_waiters = 0;
    memset(e->ipc, 0, sizeof e->ipc);
}

/* a (v4-mapped v6 seen as v4) and its port; 0 for another family */
static int addr_of(const struct sockaddr_storage *ss, struct sockaddr_in6 *out)
{
    memset(out, 0, sizeof *out);
    out->sin6_family = AF_INET6;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&out->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
        out->sin6_port = s4->sin_port;
        return 1;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        out->sin6_addr = s6->sin6_addr;
        out->sin6_port = s6->sin6_port;
        return 1;
    }
    return 0;
}

/* 0.0.0.0 (as v4-mapped) or :: */
static int unspecified(const struct sockaddr_in6 *a)
{
    static const uint8_t zero4[4];
    return IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && !memcmp(&a->sin6_addr.s6_addr[12], zero4, 4));
}

/* An address of this host: loopback, unspecified (0.0.0.0 reaches us too) or bindable. */
static int host_address(const struct sockaddr_in6 *a)
{
    const uint8_t *b = a->sin6_addr.s6_addr;
    int v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
    if (v4 ? b[12] == 127 || !(b[12] | b[13] | b[14] | b[15])
           : IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
        return 1;
    /* any other address: is it one of ours? Only asked for a port proxyd listens on. */
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (v4) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, &b[12], 4);
        len = sizeof *s4;
    } else {
        memcpy(&ss, a, sizeof *a);
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        len = sizeof *a;
    }
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)     /* no such family here: not ours; else cannot tell: refuse, no loop */
        return errno != EAFNOSUPPORT;
    int local = bind(fd, (struct sockaddr *)&ss, len) == 0 || errno != EADDRNOTAVAIL;
    close(fd);
    return local;
}

/*
 * Whether dst is one of proxyd's own listeners (http_port, admin_port), which
 * are never a destination whatever http_access says: the admin pages would be
 * served to anyone allowed to use the proxy, and a request to an http_port
 * would loop. Ours: the port is one of our ports and the address is that
 * listener's, or the listener is a wildcard and the address is this host's.
 */
int pd_engine_own_listener(const pd_engine *w, const struct sockaddr_storage *dst)
{
    struct sockaddr_in6 d, l;
    if (!addr_of(dst, &d))
        return 0;
    for (int i = 0; i < w->n_own; i++) {
        if (!addr_of(&w->own[i], &l) || l.sin6_port != d.sin6_port)
            continue;
        /* 0.0.0.0 and :: as a destination reach this host's listeners, whichever */
        if (!memcmp(&l.sin6_addr, &d.sin6_addr, sizeof d.sin6_addr) || unspecified(&d))
            return 1;
        if (unspecified(&l) && host_address(&d))
            return 1;
    }
    return 0;
}
