/*
 * ext_acl.c: external_acl_type helpers and their answers, per worker (see
 * ext_acl.h). The cache is a pd_anscache per type, keyed by the whole
 * request line; BH is never cached.
 */
#include "proxyd/ext_acl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxyd/anscache.h"
#include "proxyd/helper.h"
#include "proxyd/stats.h"
#include "proxyd/log.h"

#define EXT_SLOTS 1024

struct ext_pool {
    const pd_acl_ext_info *info;
    pd_helper *helper;
    pd_anscache *answers;   /* ival: match; value: the notes ("key=value\n"...) or NULL */
};

struct pd_ext {
    struct ext_pool *p;
    size_t n;
};

struct pd_ext_check {
    pd_ext *x;
    size_t type;
    pd_helper_req *req;
    pd_ext_cb cb;
    void *arg;
    time_t now;
    char line[];
};

pd_ext *pd_ext_create(struct event_base *base, const pd_acl_rules *rules)
{
    size_t n = pd_acl_ext_count(rules);
    if (n == 0)
        return NULL;
    pd_ext *x = calloc(1, sizeof *x);
    if (!x || !(x->p = calloc(n, sizeof *x->p))) {
        free(x);
        return NULL;
    }
    x->n = n;
    for (size_t i = 0; i < n; i++) {
        const pd_acl_ext_info *in = pd_acl_ext_get(rules, i);
        struct ext_pool *p = &x->p[i];
        p->info = in;
        p->answers = pd_anscache_new(in->cache > 0 && in->cache < EXT_SLOTS ? (size_t)in->cache
                                                                            : EXT_SLOTS);
        char name[128];
        snprintf(name, sizeof name, "external %s", in->name);
        pd_helper_cfg hc = {
            .name = name, .argv = in->argv, .children_max = in->children_max,
            .startup = in->startup, .idle = in->idle, .concurrency = in->concurrency,
            .queue_size = in->queue_size,
            .overload_grace_ms = PD_HELPER_OVERLOAD_GRACE_MS,
            .stats_kind = PD_HELPER_KIND_EXTERNAL, .stats_name = in->name,
        };
        p->helper = p->answers ? pd_helper_create(base, &hc) : NULL;
        if (!p->helper) {
            pd_ext_free(x);
            return NULL;
        }
    }
    return x;
}

void pd_ext_free(pd_ext *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++) {
        struct ext_pool *p = &x->p[i];
        pd_helper_free(p->helper);
        pd_anscache_free(p->answers);
    }
    free(x->p);
    free(x);
}

int pd_ext_cached(pd_ext *x, size_t type, const char *line, time_t now, const char **notes)
{
    *notes = NULL;
    if (!x || type >= x->n)
        return PD_ACL_EXT_FAILED;
    int match;
    if (!pd_anscache_get(x->p[type].answers, line, now, &match, notes))
        return PD_ACL_EXT_UNKNOWN;
    pd_helper_count_cached(x->p[type].helper, 1);
    return match ? PD_ACL_EXT_MATCH : PD_ACL_EXT_NOMATCH;
}

static void remember(pd_ext *x, size_t type, const char *line, int match, const char *notes,
                     time_t now)
{
    struct ext_pool *p = &x->p[type];
    int ttl = match ? p->info->ttl : p->info->negative_ttl;
    if (ttl > 0)
        pd_anscache_put(p->answers, line, match, notes, now + ttl);
}

static void helper_done(void *arg, const pd_helper_reply *r)
{
    pd_ext_check *k = arg;
    int answer;
    char notes[PD_EXT_NOTES_MAX];
    pd_helper_reply_notes(r, notes, sizeof notes);
    if (r->result == PD_HELPER_OK || r->result == PD_HELPER_ERR) {
        answer = r->result == PD_HELPER_OK ? PD_ACL_EXT_MATCH : PD_ACL_EXT_NOMATCH;
        remember(k->x, k->type, k->line, answer == PD_ACL_EXT_MATCH, notes[0] ? notes : NULL,
                 k->now);
    } else {
        answer = PD_ACL_EXT_FAILED;
        pd_log_warn("external %s: helper answered %s: %s", k->x->p[k->type].info->name,
                    r->why ? "nothing" : "BH or an unknown result", r->text);
    }
    pd_ext_cb cb = k->cb;
    void *cbarg = k->arg;
    free(k);
    cb(cbarg, answer, answer == PD_ACL_EXT_FAILED || !notes[0] ? NULL : notes);
}

pd_ext_check *pd_ext_start(pd_ext *x, size_t type, const char *line, time_t now, pd_ext_cb cb,
                           void *arg)
{
    if (!x || type >= x->n)
        return NULL;
    size_t len = strlen(line);
    pd_ext_check *k = calloc(1, sizeof *k + len + 1);
    if (!k)
        return NULL;
    k->x = x;
    k->type = type;
    k->cb = cb;
    k->arg = arg;
    k->now = now;
    memcpy(k->line, line, len);
    k->req = pd_helper_submit(x->p[type].helper, line, len, helper_done, k);
    if (!k->req) {
        free(k);
        return NULL;
    }
    return k;
}

void pd_ext_cancel(pd_ext_check *k)
{
    if (!k)
        return;
    pd_helper_cancel(k->req);
    free(k);
}
