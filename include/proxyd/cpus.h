/*
 * cpus: how many CPUs this process may use, for `workers 0`: the CPUs of its
 * affinity mask (taskset, cpuset), capped by the CPU quota of its cgroup and
 * of every ancestor (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us over
 * cpu.cfs_period_us), rounded up, at least 1. A container limited to one CPU
 * runs one worker, whatever the host has.
 */
#ifndef PROXYD_CPUS_H
#define PROXYD_CPUS_H

#include <sched.h>

/*
 * The count from its parts: CPUs in mask (NULL or empty: n_online), capped
 * by quota_cpus when it is > 0; at least 1.
 */
int pd_cpus_from(const cpu_set_t *mask, int n_online, int quota_cpus);

/* CPUs granted by a cgroup v2 cpu.max text ("QUOTA PERIOD" or "max PERIOD"),
 * rounded up; 0 for no limit or text that is not one. */
int pd_cpus_quota_v2(const char *cpu_max);

/* The same for cgroup v1: cpu.cfs_quota_us ("-1": no limit) and cpu.cfs_period_us. */
int pd_cpus_quota_v1(const char *quota_us, const char *period_us);

/*
 * The tightest quota of the cgroups in cgroup_text (/proc/self/cgroup's
 * format) and their ancestors, read under root (the cgroup mount's parent,
 * "/sys/fs/cgroup"); 0 when none limits.
 */
int pd_cpus_cgroup_quota(const char *root, const char *cgroup_text);

/* pd_cpus_from with this process's affinity, the online CPUs and its cgroups. */
int pd_cpus_usable(void);

#endif
