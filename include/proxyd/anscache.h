/*
 * anscache.h: a table of helper answers keyed by the line the helper was
 * asked (external_acl_type's cache, url_rewrite_cache_ttl).
 *
 * A fixed number of slots, direct-mapped by a seeded hash of the line: a
 * newer line takes the slot of an older one, so the table never grows and a
 * lookup is one hash, one compare. Each slot owns copies of its line and its
 * value (a string, perhaps NULL) and an int; an entry is used only before its
 * expiry. Per worker, single-threaded. The table owns everything it holds;
 * a value returned by pd_anscache_get lives until the next put or free.
 */
#ifndef PROXYD_ANSCACHE_H
#define PROXYD_ANSCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef struct pd_anscache pd_anscache;

/* A table of slots entries (> 0); NULL when out of memory. */
pd_anscache *pd_anscache_new(size_t slots);
void pd_anscache_free(pd_anscache *t);

/* 1 and *ival, *value (NULL when none was stored) when line has an entry that
 * has not expired at now; 0 otherwise. */
int pd_anscache_get(pd_anscache *t, const char *line, time_t now, int *ival, const char **value);

/* Remember (ival, value) for line until expires; a failed copy (out of
 * memory) leaves the slot empty. */
void pd_anscache_put(pd_anscache *t, const char *line, int ival, const char *value,
                     time_t expires);

/* Lookups that found a live entry, and all lookups. */
void pd_anscache_counts(const pd_anscache *t, uint64_t *hits, uint64_t *lookups);

#endif
