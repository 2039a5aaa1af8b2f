/*
 * anscache.c: helper answers keyed by the line asked (see anscache.h).
 */
#include "proxyd/anscache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct slot {
    char *line;             /* NULL: empty */
    char *value;
    int ival;
    time_t expires;
};

struct pd_anscache {
    size_t n;
    uint64_t seed;
    uint64_t hits, lookups;
    struct slot *s;
};

static struct slot *slot_of(pd_anscache *t, const char *line)
{
    uint64_t h = 1469598103934665603ull ^ t->seed;   /* FNV-1a, seeded */
    for (const char *p = line; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return &t->s[(h ^ (h >> 31)) % t->n];
}

pd_anscache *pd_anscache_new(size_t slots)
{
    if (slots == 0)
        return NULL;
    pd_anscache *t = calloc(1, sizeof *t);
    if (!t || !(t->s = calloc(slots, sizeof *t->s))) {
        free(t);
        return NULL;
    }
    t->n = slots;
    if (getrandom(&t->seed, sizeof t->seed, GRND_NONBLOCK) != (ssize_t)sizeof t->seed)
        t->seed = (uint64_t)(uintptr_t)t ^ (uint64_t)time(NULL);
    return t;
}

static void clear(struct slot *s)
{
    free(s->line);
    free(s->value);
    memset(s, 0, sizeof *s);
}

void pd_anscache_free(pd_anscache *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        clear(&t->s[i]);
    free(t->s);
    free(t);
}

int pd_anscache_get(pd_anscache *t, const char *line, time_t now, int *ival, const char **value)
{
    t->lookups++;
    struct slot *s = slot_of(t, line);
    if (!s->line || s->expires <= now || strcmp(s->line, line) != 0)
        return 0;
    t->hits++;
    *ival = s->ival;
    *value = s->value;
    return 1;
}

void pd_anscache_put(pd_anscache *t, const char *line, int ival, const char *value,
                     time_t expires)
{
    struct slot *s = slot_of(t, line);
    clear(s);
    s->line = strdup(line);
    s->value = value ? strdup(value) : NULL;
    if (!s->line || (value && !s->value)) {
        clear(s);
        return;
    }
    s->ival = ival;
    s->expires = expires;
}

void pd_anscache_counts(const pd_anscache *t, uint64_t *hits, uint64_t *lookups)
{
    *hits = t->hits;
    *lookups = t->lookups;
}
