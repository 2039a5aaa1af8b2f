/*
 * ext_acl: the worker's side of external_acl_type: one helper pool per type
 * (helper.c) and a cache of its answers (OK for ttl, ERR for negative_ttl),
 * asked by the `external` acls through client_access.c. The types are
 * compiled by acl.c; this module holds what changes at run time.
 */
#ifndef PROXYD_EXT_ACL_H
#define PROXYD_EXT_ACL_H

#include <stddef.h>
#include <time.h>
#include <event2/event.h>

#include "proxyd/acl.h"

typedef struct pd_ext pd_ext;
typedef struct pd_ext_check pd_ext_check;

/* Pools for every external_acl_type of rules (startup children started now).
 * NULL on failure (or with no types). Free with pd_ext_free. */
pd_ext *pd_ext_create(struct event_base *base, const pd_acl_rules *rules);
void pd_ext_free(pd_ext *x);

/* The cached answer for line at now: PD_ACL_EXT_MATCH, _NOMATCH or _UNKNOWN. */
int pd_ext_cached(pd_ext *x, size_t type, const char *line, time_t now, const char **notes);

/* The helper's answer: PD_ACL_EXT_MATCH, _NOMATCH, or _FAILED (BH, crash, timeout). */
/* The most bytes of notes an answer keeps. */
#define PD_EXT_NOTES_MAX 512

typedef void (*pd_ext_cb)(void *arg, int answer, const char *notes);

/* Ask type's helper about line; cb runs later from the loop (never from here)
 * unless pd_ext_cancel first. NULL when it cannot be asked (queue full). */
pd_ext_check *pd_ext_start(pd_ext *x, size_t type, const char *line, time_t now, pd_ext_cb cb,
                           void *arg);
void pd_ext_cancel(pd_ext_check *k);

#endif
