/*
 * admin: the admin listener, served by the master with libevent's evhttp so
 * that it keeps answering while workers come and go: /metrics (Prometheus
 * text 0.0.4), /stats (JSON), /healthz, and Squid's cache manager pages under
 * /squid-internal-mgr/. Access: http_access evaluated on the URL
 * http://HOST/squid-internal-mgr/PAGE (so Squid's `manager` acl applies);
 * when no http_access line names `manager`, loopback clients only.
 */
#ifndef PROXYD_ADMIN_H
#define PROXYD_ADMIN_H

#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "proxyd/acl.h"
#include "proxyd/conf.h"
#include "proxyd/stats.h"

typedef struct pd_admin pd_admin;

/*
 * Listen on conf->admin_port (each address; "proxyd: admin listening on
 * ADDR:PORT" is printed on stderr for each) and serve from st. An address that
 * cannot be bound is logged and skipped: the proxy runs without it. Returns
 * NULL when no address is configured or none could be bound. conf and acl are
 * borrowed until pd_admin_set_conf or pd_admin_free.
 */
pd_admin *pd_admin_start(struct event_base *base, const pd_conf *conf, const pd_acl_rules *acl,
                         pd_stats *st);

/* A reload: the new configuration's access rules apply from now on. */
void pd_admin_set_conf(pd_admin *a, const pd_conf *conf, const pd_acl_rules *acl);

/* Is this admin_port list the one the listener was started with? */
int pd_admin_same_ports(const pd_admin *a, const pd_conf *conf);

/* Copy the addresses the admin listener is bound to (at most max) into out; returns how
 * many (0 for a NULL a). */
int pd_admin_bound(const pd_admin *a, struct sockaddr_storage *out, int max);

/* Stop listening and free (master exit, or a forked worker dropping the master's copy). */
void pd_admin_free(pd_admin *a);

/*
 * May this client read the manager page at url (an http://.../squid-internal-mgr/
 * URL)? 1 yes, 0 no. acl NULL: no http_access compiled (loopback only).
 */
int pd_admin_allowed(const pd_conf *conf, const pd_acl_rules *acl, const struct sockaddr *client,
                     uint16_t local_port, const pd_url *url);

#endif
