/*
 * client_cluster.c: a request's way through a proxyd_cluster (cluster.h).
 *
 * After http_access, the rewriter and Store-ID, a request the cache may
 * answer is either this proxy's (it owns the cache key, a member forwarded
 * it, or it is not for the cluster: then the cache and the origin as usual)
 * or another member's: it goes to that member, in absolute form with
 * `Proxyd-Cluster: NAME` (named in Connection, so the owner never passes it
 * on), and nothing is looked up or stored here. Only GET and HEAD without
 * Authorization go to an owner (what a cache shares); an intercepted request,
 * one whose http_access waits for the origin's address, and one miss_access
 * does not allow at once stay here (the owner would see the member as the
 * client, so this proxy's miss_access is the one that must hold).
 *
 * A member that cannot be reached is reported to cluster.c and the next owner
 * by CARP is tried, at most four members per request; when the next owner is
 * this proxy (or none is left) the request is served here, from the cache
 * first.
 */
#include <string.h>
#include <strings.h>

#include "proxyd/clock.h"
#include "proxyd/cluster.h"
#include "proxyd/stats.h"

#include "client_int.h"

#define MAX_TRIED ((int)(sizeof ((struct pd_client *)0)->members_tried / \
                         sizeof ((struct pd_client *)0)->members_tried[0]))

/* Did a member of our cluster forward this request? */
static int forwarded_by_member(const struct pd_client *c, const pd_cluster *cl)
{
    const char *name = pd_cluster_name(cl);
    size_t n = strlen(name);
    for (const pd_header *f = pd_http_msg_find(&c->req, PD_CLUSTER_HEADER); f;
         f = pd_http_msg_find_next(&c->req, f))
        if (f->value.len == n && !strncasecmp(f->value.p, name, n))
            return 1;
    return 0;
}

static int owner_of(struct pd_client *c)
{
    return pd_cluster_owner(c->w->cluster, c->ckey, c->ckey_len, pd_clock_ms() / 1000,
                            c->members_tried, c->n_members_tried, &c->member_addr);
}

int client_cluster_forward(struct pd_client *c)
{
    pd_cluster *cl = c->w->cluster;
    if (!cl || !c->ckey)
        return 0;
    if (c->from_cluster || forwarded_by_member(c, cl)) {
        if (!c->from_cluster)
            pd_stats_add(c->w->stats, PD_STAT_CLUSTER_SERVED, 1);
        c->from_cluster = 1;
        return 0;
    }
    if (pd_cluster_size(cl) == 0 || c->intercepted || c->acl_need_dst ||
        (c->req.method_id != PD_M_GET && c->req.method_id != PD_M_HEAD) ||
        pd_http_msg_find(&c->req, "Authorization"))
        return 0;
    if (c->w->acl) {
        /* a miss here, as Squid checks it before a parent: miss_access must allow it
         * (the owner sees the member, not the client); if it cannot tell yet, the
         * request takes the usual way, where the check runs after DNS */
        pd_acl_req ar;
        const char *deny_acl = NULL;
        client_acl_req(c, &ar, NULL);
        if (pd_acl_check_miss(c->w->acl, &ar, &deny_acl) != PD_ACL_ALLOW)
            return 0;
    }
    if (!owner_of(c))
        return 0;
    pd_stats_add(c->w->stats, PD_STAT_CLUSTER_FORWARDED, 1);
    c->use_cache = 0; /* the owner's cache answers; nothing is stored here */
    c->via_member = 1;
    client_go_upstream(c);
    return 1;
}

void client_cluster_failed(struct pd_client *c)
{
    pd_cluster *cl = c->w->cluster;
    pd_cluster_failed(cl, &c->member_addr, pd_clock_ms() / 1000);
    if (c->n_members_tried < MAX_TRIED)
        c->members_tried[c->n_members_tried++] = c->member_addr;
    client_up_release(c, 0);
    if (c->n_members_tried < MAX_TRIED && owner_of(c)) {
        client_go_member(c);
        return;
    }
    /* this proxy owns it now (or nobody is left): the cache, then the origin */
    c->via_member = 0;
    c->hier = NULL;
    c->origin_ip[0] = '\0';
    c->addrs.n = 0;
    c->addr_i = 0;
    c->use_cache = 1;
    if (client_cache_lookup(c))
        return;
    client_go_upstream(c);
}
