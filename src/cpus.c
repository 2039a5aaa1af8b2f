/*
 * cpus: the CPUs this process may use (see include/proxyd/cpus.h).
 */
#include "proxyd/cpus.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A cgroup path is walked up at most this many levels. */
#define MAX_DEPTH 64

int pd_cpus_from(const cpu_set_t *mask, int n_online, int quota_cpus)
{
    int n = mask ? CPU_COUNT(mask) : 0;
    if (n <= 0)
        n = n_online;
    if (quota_cpus > 0 && (n <= 0 || quota_cpus < n))
        n = quota_cpus;
    return n > 0 ? n : 1;
}

/* A whole decimal number (blanks around it allowed); -1 when s is not one. */
static long long number(const char *s, const char **end)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *e;
    long long v = strtoll(s, &e, 10);
    if (errno)
        return -1;
    *end = e;
    return v;
}

static int only_space(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

static int quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > INT_MAX ? INT_MAX : (int)n;
}

int pd_cpus_quota_v2(const char *cpu_max)
{
    if (!cpu_max)
        return 0;
    const char *e;
    long long quota = number(cpu_max, &e); /* "max" is no number: no limit */
    if (quota < 0)
        return 0;
    long long period = number(e, &e);
    if (period < 0 || !only_space(e))
        return 0;
    return quota_cpus(quota, period);
}

int pd_cpus_quota_v1(const char *quota_us, const char *period_us)
{
    if (!quota_us || !period_us)
        return 0;
    const char *e;
    long long quota = number(quota_us, &e); /* "-1" is no number here: no limit */
    if (quota < 0 || !only_space(e))
        return 0;
    long long period = number(period_us, &e);
    if (period < 0 || !only_space(e))
        return 0;
    return quota_cpus(quota, period);
}

static int read_small(const char *dir, const char *name, char *buf, size_t size)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return 0;
}

static int tighter(int a, int b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

/* The tightest quota in mount/path and the directories above it, up to mount. */
static int walk(const char *mount, const char *path, int v2)
{
    char dir[PATH_MAX];
    size_t mlen = strlen(mount);
    if ((size_t)snprintf(dir, sizeof dir, "%s%s", mount, path) >= sizeof dir)
        return 0;
    int best = 0;
    for (int depth = 0; depth < MAX_DEPTH; depth++) {
        char a[64], b[64];
        if (v2) {
            if (read_small(dir, "cpu.max", a, sizeof a) == 0)
                best = tighter(best, pd_cpus_quota_v2(a));
        } else if (read_small(dir, "cpu.cfs_quota_us", a, sizeof a) == 0 &&
                   read_small(dir, "cpu.cfs_period_us", b, sizeof b) == 0) {
            best = tighter(best, pd_cpus_quota_v1(a, b));
        }
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= mlen || !slash || slash < dir + mlen)
            break;
        *slash = '\0'; /* the parent (a trailing '/' first: the mount itself) */
    }
    return best;
}

/* Is "cpu" one of the comma-separated controllers in [s, e)? */
static int has_cpu(const char *s, const char *e)
{
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *t = c ? c : e;
        if (t - s == 3 && memcmp(s, "cpu", 3) == 0)
            return 1;
        s = t + 1;
    }
    return 0;
}

int pd_cpus_cgroup_quota(const char *root, const char *cgroup_text)
{
    int best = 0;
    const char *line = cgroup_text;
    for (int lines = 0; line && *line && lines < 256; lines++) {
        const char *nl = strchr(line, '\n');
        const char *end = nl ? nl : line + strlen(line);
        const char *c1 = memchr(line, ':', (size_t)(end - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
        char path[PATH_MAX / 2], mount[PATH_MAX / 4];
        if (c2 && c2[1] == '/' && (size_t)(end - c2 - 1) < sizeof path) {
            memcpy(path, c2 + 1, (size_t)(end - c2 - 1));
            path[end - c2 - 1] = '\0';
            if (c2 == c1 + 1) {
                /* v2: the unified hierarchy, alone or beside v1 (hybrid) */
                snprintf(mount, sizeof mount, "%s", root);
                best = tighter(best, walk(mount, path, 1));
                snprintf(mount, sizeof mount, "%s/unified", root);
                best = tighter(best, walk(mount, path, 1));
            } else if (has_cpu(c1 + 1, c2)) {
                snprintf(mount, sizeof mount, "%s/%.*s", root, (int)(c2 - c1 - 1), c1 + 1);
                best = tighter(best, walk(mount, path, 0));
                snprintf(mount, sizeof mount, "%s/cpu", root);
                best = tighter(best, walk(mount, path, 0));
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return best;
}

int pd_cpus_usable(void)
{
    cpu_set_t mask;
    CPU_ZERO(&mask);
    int have_mask = sched_getaffinity(0, sizeof mask, &mask) == 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    char text[8192];
    int quota = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        quota = pd_cpus_cgroup_quota("/sys/fs/cgroup", text);
    }
    return pd_cpus_from(have_mask ? &mask : NULL, online > 0 && online < INT_MAX ? (int)online : 1,
                        quota);
}
