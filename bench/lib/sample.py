#!/usr/bin/env python3
"""Samples the CPU and memory use of process trees from /proc (Table 1 of the study).

    sample.py --out FILE [--interval S] PID...

Every interval it finds each PID and all its descendants and reads their CPU time
(utime+stime, /proc/P/stat) and proportional set size (Pss, /proc/P/smaps_rollup; shared
pages such as proxyd's cache segment are split between the processes that map them, so the
sum over workers counts them once). After the first sample it creates FILE.ready, so that the
caller starts the load only once the baseline is taken. On SIGTERM or SIGINT it writes one JSON object to FILE:
cpu_s (CPU time used between the first and the last sample), cpu_pct (cpu_s over the
sampler's wall time, in percent of one CPU, as top and docker stats show it), cpu_pct_machine
(the same over all CPUs), mem_pct (mean Pss over MemTotal), mem_mb_mean,
mem_mb_max, samples, wall_s. Python standard library only.

    sample.py --out FILE --cgroup PID...

reads the control groups of the PIDs instead (a container's first process: its whole
container), as docker stats does: CPU from cpuacct.usage (cgroup v1) or cpu.stat's
usage_usec (v2), memory from memory.usage_in_bytes less memory.stat's total_inactive_file
(v1) or memory.current less inactive_file (v2). Same JSON, with "source": "cgroup".
"""
import argparse
import json
import os
import signal
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(roots):
    kids = children_map()
    out, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return 0
    fields = st[st.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mem_total_kb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 1


def cgroup_dirs(pid):
    """(cpu file, kind, memory dir, kind) of PID's control group: v1 if the cpuacct and
    memory controllers are mounted as v1 hierarchies, else the v2 unified hierarchy."""
    v1, v2 = {}, None
    with open("/proc/mounts") as f:
        for line in f:
            _, mnt, fstype, opts = line.split()[:4]
            if fstype == "cgroup":
                for o in opts.split(","):
                    if o in ("cpuacct", "memory"):
                        v1[o] = mnt
            elif fstype == "cgroup2" and v2 is None:
                v2 = mnt
    paths = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                paths[c] = path
    if "cpuacct" in v1 and "memory" in v1 and "cpuacct" in paths and "memory" in paths:
        return (os.path.join(v1["cpuacct"] + paths["cpuacct"], "cpuacct.usage"), "v1",
                v1["memory"] + paths["memory"], "v1")
    if v2 is None or "" not in paths:
        raise SystemExit(f"sample.py: no cgroup of pid {pid} found")
    d = v2 + paths[""]
    return os.path.join(d, "cpu.stat"), "v2", d, "v2"


def cg_cpu_ns(f, kind):
    try:
        with open(f) as fh:
            if kind == "v1":
                return int(fh.read())
            for line in fh:
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * 1000
    except OSError:
        pass
    return None


def cg_mem_kb(d, kind):
    try:
        with open(os.path.join(d, "memory.usage_in_bytes" if kind == "v1" else "memory.current")) as fh:
            usage = int(fh.read())
        key = "total_inactive_file" if kind == "v1" else "inactive_file"
        with open(os.path.join(d, "memory.stat")) as fh:
            for line in fh:
                k, v = line.split()
                if k == key and int(v) < usage:
                    usage -= int(v)
                    break
        return usage // 1024
    except OSError:
        return 0


def main_cgroup(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    groups = [cgroup_dirs(p) for p in a.pids]
    first, last, mems = {}, {}, []
    t0 = time.monotonic()
    while True:
        for i, (cf, ck, _, _) in enumerate(groups):
            v = cg_cpu_ns(cf, ck)
            if v is not None:
                first.setdefault(i, v)
                last[i] = v
        mems.append(sum(cg_mem_kb(md, mk) for _, _, md, mk in groups))
        if len(mems) == 1:
            with open(a.out + ".ready", "w") as f:
                f.write("1\n")
        if stop:
            break
        time.sleep(a.interval)
    wall = time.monotonic() - t0
    cpu_s = sum(last[i] - first[i] for i in last) / 1e9
    return cpu_s, wall, mems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--cgroup", action="store_true")
    ap.add_argument("pids", type=int, nargs="+")
    a = ap.parse_args()
    if a.cgroup:
        cpu_s, wall, mems = main_cgroup(a)
        return report(a, cpu_s, wall, mems, "cgroup")

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    # Per-process CPU ticks: the first and the last value seen, so that a process that appears
    # during the run counts from zero and one that exits keeps what it used.
    first, last = {}, {}
    mems = []
    t0 = time.monotonic()
    while True:
        pids = tree(a.pids)
        for p in pids:
            t = cpu_ticks(p)
            first.setdefault(p, t)
            last[p] = t
        mems.append(sum(pss_kb(p) for p in pids))
        if len(mems) == 1:
            # The caller starts the load once the baseline is taken.
            with open(a.out + ".ready", "w") as f:
                f.write("1\n")
        if stop:
            break
        time.sleep(a.interval)
    wall = time.monotonic() - t0
    ticks = sum(last[p] - first[p] for p in last)
    return report(a, ticks / TICKS, wall, mems, "proc")


def report(a, cpu_s, wall, mems, source):
    cpu = 100.0 * cpu_s / wall if wall > 0 else 0.0
    total = mem_total_kb()
    mean_kb = sum(mems) / len(mems)
    res = {
        "cpu_s": round(cpu_s, 3),
        "cpu_pct": round(cpu, 2),
        "cpu_pct_machine": round(cpu / (os.cpu_count() or 1), 2),
        "mem_pct": round(100.0 * mean_kb / total, 3),
        "mem_mb_mean": round(mean_kb / 1024, 1),
        "mem_mb_max": round(max(mems) / 1024, 1),
        "samples": len(mems),
        "wall_s": round(wall, 3),
        "source": source,
    }
    with open(a.out, "w") as f:
        json.dump(res, f)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
