/*
 * Unit tests for cpus: `workers 0` counts the CPUs the process may use. The
 * count from an affinity mask and a quota, the cgroup v2 and v1 quota texts,
 * and a fake cgroup tree (v2, v1, hybrid, nested limits) as tables of cases.
 */
#include "proxyd/cpus.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check_run.h"

static const struct {
    int n_mask;         /* CPUs 0..n-1 in the mask; -1: no mask */
    int online, quota, want;
} from_cases[] = {
    { 4, 8, 0, 4 },     /* taskset -c 0-3 on 8 CPUs */
    { 1, 64, 0, 1 },    /* taskset -c 0 */
    { -1, 8, 0, 8 },    /* no mask: the online CPUs */
    { 0, 8, 0, 8 },     /* an empty mask is no mask */
    { 8, 8, 2, 2 },     /* quota below the mask */
    { 2, 8, 6, 2 },     /* mask below the quota */
    { -1, 0, 0, 1 },    /* nothing known: one */
    { -1, 0, 3, 3 },
    { 16, 16, 1, 1 },   /* a container limited to one CPU */
};

START_TEST(count_from_mask_and_quota)
{
    cpu_set_t m;
    CPU_ZERO(&m);
    for (int i = 0; i < from_cases[_i].n_mask; i++)
        CPU_SET(i, &m);
    int got = pd_cpus_from(from_cases[_i].n_mask < 0 ? NULL : &m, from_cases[_i].online,
                           from_cases[_i].quota);
    ck_assert_int_eq(got, from_cases[_i].want);
}
END_TEST

START_TEST(mask_need_not_start_at_zero)
{
    cpu_set_t m;
    CPU_ZERO(&m);
    CPU_SET(5, &m);
    CPU_SET(9, &m);
    ck_assert_int_eq(pd_cpus_from(&m, 16, 0), 2);
}
END_TEST

static const struct {
    const char *text;
    int want;
} v2_cases[] = {
    { "max 100000\n", 0 },
    { "100000 100000\n", 1 },
    { "150000 100000\n", 2 },     /* 1.5 CPUs: rounded up */
    { "50000 100000\n", 1 },      /* half a CPU: still one */
    { "1 100000", 1 },
    { "400000 100000", 4 },
    { "200000 50000\n", 4 },
    { "", 0 },
    { "garbage", 0 },
    { "100000", 0 },              /* no period */
    { "100000 0", 0 },
    { "-1 100000", 0 },
    { "100000 100000 7", 0 },
    { NULL, 0 },
};

START_TEST(cgroup_v2_cpu_max)
{
    ck_assert_int_eq(pd_cpus_quota_v2(v2_cases[_i].text), v2_cases[_i].want);
}
END_TEST

static const struct {
    const char *quota, *period;
    int want;
} v1_cases[] = {
    { "-1\n", "100000\n", 0 },
    { "100000\n", "100000\n", 1 },
    { "250000\n", "100000\n", 3 },
    { "50000", "100000", 1 },
    { "x", "100000", 0 },
    { "100000", "", 0 },
    { NULL, "100000", 0 },
};

START_TEST(cgroup_v1_cfs_quota)
{
    ck_assert_int_eq(pd_cpus_quota_v1(v1_cases[_i].quota, v1_cases[_i].period), v1_cases[_i].want);
}
END_TEST

/* ---- a fake /sys/fs/cgroup ---- */

static char root[PATH_MAX];

static void put(const char *rel, const char *text)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* mkdir -p of the directories on the way */
    for (char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/check_cpus.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(cgroup_v2_in_a_container)
{
    /* cgroup namespace: the process sees its own cgroup as "/" */
    put("cpu.max", "100000 100000\n");
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/\n"), 1);
}
END_TEST

START_TEST(cgroup_v2_tightest_ancestor)
{
    put("system.slice/cpu.max", "max 100000\n");
    put("system.slice/proxyd.service/cpu.max", "300000 100000\n");
    put("kubepods/cpu.max", "200000 100000\n");
    put("kubepods/pod1/cpu.max", "max 100000\n");
    put("kubepods/pod1/c1/cpu.max", "max 100000\n");
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/system.slice/proxyd.service\n"), 3);
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/kubepods/pod1/c1\n"), 2);
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/system.slice\n"), 0);
    /* a cgroup path that is not under the mount (no cgroupns): the mount's own files */
    put("cpu.max", "100000 100000\n");
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/docker/abc\n"), 1);
}
END_TEST

START_TEST(cgroup_v1_and_hybrid)
{
    put("cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
    put("cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    put("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    put("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    const char *text = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/docker/abc\n";
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, text), 2);
    /* no cpu controller named: nothing read */
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "12:memory:/docker/abc\n"), 0);
    /* the unified hierarchy of a hybrid host limits too */
    put("unified/docker/abc/cpu.max", "100000 100000\n");
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, text), 1);
}
END_TEST

START_TEST(cgroup_text_malformed)
{
    put("cpu.max", "100000 100000\n");
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, ""), 0);
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "garbage\nno:colon\n0::relative\n"), 0);
    ck_assert_int_eq(pd_cpus_cgroup_quota(root, "0::/"), 1); /* no final newline */
}
END_TEST

START_TEST(this_process)
{
    cpu_set_t m;
    CPU_ZERO(&m);
    ck_assert_int_eq(sched_getaffinity(0, sizeof m, &m), 0);
    int n = pd_cpus_usable();
    ck_assert_int_ge(n, 1);
    ck_assert_int_le(n, CPU_COUNT(&m));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cpus");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, count_from_mask_and_quota, 0, sizeof from_cases / sizeof from_cases[0]);
    tcase_add_test(tc, mask_need_not_start_at_zero);
    tcase_add_loop_test(tc, cgroup_v2_cpu_max, 0, sizeof v2_cases / sizeof v2_cases[0]);
    tcase_add_loop_test(tc, cgroup_v1_cfs_quota, 0, sizeof v1_cases / sizeof v1_cases[0]);
    tcase_add_test(tc, this_process);
    suite_add_tcase(s, tc);
    TCase *fs = tcase_create("cgroup tree");
    tcase_add_checked_fixture(fs, setup, teardown);
    tcase_add_test(fs, cgroup_v2_in_a_container);
    tcase_add_test(fs, cgroup_v2_tightest_ancestor);
    tcase_add_test(fs, cgroup_v1_and_hybrid);
    tcase_add_test(fs, cgroup_text_malformed);
    suite_add_tcase(s, fs);
    return pd_check_run(s);
}
