#!/usr/bin/env python3
"""Statistics, plots and the report of bench/run (Python standard library + gnuplot).

    stats.py merge RUNDIR [--sample FILE]
        One timed run = one loadgen per proxy instance (lg-J.json, lg-J.csv in RUNDIR).
        Prints one CSV fragment: time_per_req_ms,mean_ms,p50_ms,p99_ms,max_ms,req_per_s,
        mb_per_s,ok,errors,wall_s,cpu_pct,cpu_pct_machine,mem_pct,mem_mb
        time_per_req_ms is the study's time per request: each client's elapsed time / its
        requests, averaged over all clients (loadgen's per-process value weighted by its
        clients). Latency percentiles come from all the run's successful requests together.
        errors counts failed requests, requests never run, and a loadgen without a result.

    stats.py report OUT [--publish DOCSDIR]
        Reads OUT/raw.csv (one row per run), writes OUT/<experiment>.csv (one row per cell:
        n, mean of the per-run time per request, 95% confidence interval by Student's t, mean
        p99), OUT/*.png (gnuplot, if installed) and OUT/benchmarks.md. With --publish also
        DOCSDIR/benchmarks.md and DOCSDIR/benchmarks/*.png.
"""
import csv
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import sys

# Two-sided 95% quantiles of Student's t by degrees of freedom.
T975 = [None, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
        2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069,
        2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    if df < 1:
        return float("nan")
    if df < len(T975):
        return T975[df]
    if df < 40:
        return 2.042
    if df < 60:
        return 2.021
    if df < 120:
        return 2.000
    return 1.960


def mean_ci(xs):
    """Mean and half-width of the 95% confidence interval (nan for one value)."""
    xs = [x for x in xs if not math.isnan(x)]
    n = len(xs)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(xs) / n
    if n == 1:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, t975(n - 1) * math.sqrt(var / n)


def percentile(sorted_xs, q):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_xs:
        return float("nan")
    k = max(0, math.ceil(q / 100.0 * len(sorted_xs)) - 1)
    return sorted_xs[k]


def fnum(x, nd=3):
    return "nan" if x is None or math.isnan(x) else f"{x:.{nd}f}"


# ---------------------------------------------------------------- merge

def merge(rundir, sample):
    jsons = sorted(glob.glob(os.path.join(rundir, "lg-*.json")))
    lat = []
    clients = tpr_w = ok = errors = 0
    nbytes = 0
    wall = 0.0
    for jf in jsons:
        j = None
        try:
            with open(jf) as f:
                text = f.read().strip()
            j = json.loads(text.splitlines()[-1]) if text else None
        except (OSError, ValueError):
            j = None
        if j is None:
            # loadgen died without a summary: all its requests count as errors.
            errors += 1
            continue
        c = j["clients"]
        clients += c
        if j["ok"] > 0:
            tpr_w += c * j["time_per_req_ms"]
        ok += j["ok"]
        errors += j["errors"] + j["not_run"]
        nbytes += j["bytes"]
        wall = max(wall, j["total_s"])
        cf = jf[:-5] + ".csv"
        if os.path.exists(cf):
            with open(cf) as f:
                for row in csv.DictReader(f):
                    if row["result"] == "ok":
                        lat.append(int(row["latency_us"]) / 1000.0)
        else:
            lat.append(j["p99_ms"])
    if not jsons:
        errors += 1
    lat.sort()
    tpr = tpr_w / clients if clients and ok else float("nan")
    mean = sum(lat) / len(lat) if lat else float("nan")
    rps = ok / wall if wall > 0 else float("nan")
    mbps = nbytes / 1e6 / wall if wall > 0 else float("nan")
    cpu = cpum = mem = memmb = float("nan")
    if sample:
        try:
            with open(sample) as f:
                s = json.load(f)
            cpu, cpum, mem, memmb = s["cpu_pct"], s["cpu_pct_machine"], s["mem_pct"], s["mem_mb_mean"]
            # The proxy is busy only while the load runs: CPU time over the load's wall time
            # (the sampler also lives a little before and after it).
            if wall > 0 and "cpu_s" in s:
                cpu = 100.0 * s["cpu_s"] / wall
                cpum = cpu / (os.cpu_count() or 1)
        except (OSError, ValueError, KeyError):
            pass
    fields = [fnum(tpr), fnum(mean), fnum(percentile(lat, 50)), fnum(percentile(lat, 99)),
              fnum(lat[-1] if lat else float("nan")), fnum(rps, 1), fnum(mbps, 1), str(ok),
              str(errors), fnum(wall), fnum(cpu, 2), fnum(cpum, 2), fnum(mem, 3), fnum(memmb, 1)]
    print(",".join(fields))
    return 0


# ---------------------------------------------------------------- report

PLATFORM_NAMES = {
    "native": "native",
    "ns-routed": "container, routed (netns)",
    "ns-nat": "container, NAT (netns)",
    "docker-routed": "Docker, routed",
    "docker-nat": "Docker, NAT",
    "kvm-e1000": "KVM, e1000",
    "kvm-virtio": "KVM, virtio-net",
}
PLATFORM_ORDER = list(PLATFORM_NAMES)


def fl(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def load_raw(out):
    rows = []
    with open(os.path.join(out, "raw.csv")) as f:
        for r in csv.DictReader(f):
            rows.append(r)
    return rows


def aggregate(rows):
    """Cells keyed by (experiment, platform, proxy, instances, workers, stress)."""
    groups = {}
    for r in rows:
        k = (r["experiment"], r["platform"], r["proxy"], int(r["instances"]), int(r["workers"]),
             r["stress"])
        groups.setdefault(k, []).append(r)
    cells = {}
    for k, rs in groups.items():
        m, ci = mean_ci([fl(r["time_per_req_ms"]) for r in rs])
        p99, _ = mean_ci([fl(r["p99_ms"]) for r in rs])
        rps, _ = mean_ci([fl(r["req_per_s"]) for r in rs])
        cpu, cpu_ci = mean_ci([fl(r["cpu_pct"]) for r in rs])
        mem, _ = mean_ci([fl(r["mem_pct"]) for r in rs])
        memmb, _ = mean_ci([fl(r["mem_mb"]) for r in rs])
        cells[k] = {
            "n": len(rs), "mean": m, "ci": ci, "p99": p99, "rps": rps,
            "errors": sum(int(r["errors"]) for r in rs),
            "clients": rs[0]["clients"], "requests": rs[0]["requests"],
            "cpu": cpu, "cpu_ci": cpu_ci, "mem": mem, "mem_mb": memmb,
        }
    return cells


def write_csvs(out, cells):
    by_exp = {}
    for k, c in cells.items():
        by_exp.setdefault(k[0], []).append((k, c))
    for exp, items in by_exp.items():
        items.sort(key=lambda kc: (PLATFORM_ORDER.index(kc[0][1]) if kc[0][1] in PLATFORM_ORDER
                                   else 99, kc[0][5], kc[0][2], kc[0][3], kc[0][4]))
        with open(os.path.join(out, f"{exp}.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["experiment", "platform", "proxy", "instances", "workers", "stress",
                        "clients", "requests", "n", "time_per_req_ms", "ci95_ms", "p99_ms",
                        "req_per_s", "errors", "cpu_pct", "cpu_ci95", "mem_pct", "mem_mb"])
            for k, c in items:
                w.writerow(list(k[:3]) + [k[3], k[4], k[5], c["clients"], c["requests"], c["n"],
                           fnum(c["mean"]), fnum(c["ci"]), fnum(c["p99"]), fnum(c["rps"], 1),
                           c["errors"], fnum(c["cpu"], 2), fnum(c["cpu_ci"], 2),
                           fnum(c["mem"], 3), fnum(c["mem_mb"], 1)])


def ms(c):
    if c is None or math.isnan(c["mean"]):
        return "–"
    s = f"{c['mean']:.2f}"
    if not math.isnan(c["ci"]):
        s += f" ± {c['ci']:.2f}"
    return s


def p99s(c):
    return "–" if c is None or math.isnan(c["p99"]) else f"{c['p99']:.2f}"


def ratio(a, b, key="mean"):
    if a is None or b is None:
        return float("nan")
    x, y = a[key], b[key]
    if math.isnan(x) or math.isnan(y) or y == 0:
        return float("nan")
    return x / y


def rs(x):
    return "–" if math.isnan(x) else f"**{x:.2f}**"


# ---- plots (gnuplot) ----

def gnuplot(script, cwd):
    if not shutil.which("gnuplot"):
        return False
    r = subprocess.run(["gnuplot"], input=script, text=True, cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.stderr.write("gnuplot: " + r.stderr[-500:] + "\n")
    return r.returncode == 0


FIG12_SERIES = [("proxyd", 1, 1, "proxyd, 1 instance"), ("proxyd", 2, 1, "proxyd, 2 instances"),
                ("proxyd", 1, 2, "proxyd, 1 instance x 2 workers"),
                ("squid", 1, 1, "Squid, 1 instance"), ("squid", 2, 1, "Squid, 2 instances")]


def plot_fig12(out, cells, exp, stress, plats):
    series = [s for s in FIG12_SERIES
              if any((exp, p, s[0], s[1], s[2], stress) in cells for p in plats)]
    if not series:
        return None
    dat = f"{exp}-stress-{stress}.dat"
    with open(os.path.join(out, dat), "w") as f:
        f.write("# platform " + " ".join(f'"{s[3]}" ci' for s in series) + "\n")
        for p in plats:
            vals = []
            for s in series:
                c = cells.get((exp, p, s[0], s[1], s[2], stress))
                vals += ["NaN", "NaN"] if c is None else [fnum(c["mean"]), fnum(c["ci"])]
            f.write(f'"{PLATFORM_NAMES[p]}" ' + " ".join(v.replace("nan", "NaN") for v in vals) + "\n")
    png = f"{exp}-stress-{stress}.png"
    title = {"fig1": "Figure 1: cache disabled", "fig2": "Figure 2: cache enabled"}[exp]
    # Guests under TCG are 10-100x slower than the rest: a log scale keeps every bar readable.
    means = [c["mean"] for p in plats for s in series
             for c in [cells.get((exp, p, s[0], s[1], s[2], stress))]
             if c is not None and not math.isnan(c["mean"]) and c["mean"] > 0]
    if means and max(means) / min(means) > 20:
        yaxis = ("set logscale y\nset yrange [10**floor(log10(%g)):*]\n"
                 "set ylabel 'time per request (ms, log scale)'" % min(means))
    else:
        yaxis = "set yrange [0:*]\nset ylabel 'time per request (ms)'"
    plots = []
    for i, s in enumerate(series):
        col = 2 + 2 * i
        src = f"'{dat}'" if i == 0 else "''"
        xt = ":xtic(1)" if i == 0 else ""
        plots.append(f"{src} using {col}:{col + 1}{xt} title '{s[3]}'")
    script = f"""set terminal pngcairo size 1000,520 font ',10'
set output '{png}'
set title '{title}, stress {stress}: mean time per request, 95% CI'
{yaxis}
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set key top left
set grid ytics
plot {", ".join(plots)}
"""
    return png if gnuplot(script, out) else None


def plot_fig3(out, cells, stress, plats):
    lines = []
    files = []
    max_x = 1
    for p in plats:
        for proxy, kind in (("proxyd", "instances"), ("squid", "instances"), ("proxyd", "workers")):
            pts = []
            for k, c in cells.items():
                if k[0] != "fig3" or k[1] != p or k[2] != proxy or k[5] != stress:
                    continue
                if kind == "instances" and k[4] == 1:
                    pts.append((k[3], c))
                elif kind == "workers" and k[3] == 1:
                    pts.append((k[4], c))
            if len(pts) < 1:
                continue
            pts.sort(key=lambda x: x[0])
            max_x = max(max_x, pts[-1][0])
            name = f"fig3-{stress}-{p}-{proxy}-{kind}.dat"
            with open(os.path.join(out, name), "w") as f:
                for x, c in pts:
                    f.write(f"{x} {fnum(c['mean'])} {fnum(c['ci'])}\n".replace("nan", "NaN"))
            files.append(name)
            label = f"{'Squid' if proxy == 'squid' else 'proxyd'} {kind}, {PLATFORM_NAMES[p]}"
            dash = "dt 2" if kind == "workers" else "dt 1"
            lines.append(f"'{name}' using 1:2:3 with yerrorlines {dash} lw 2 title '{label}'")
    if not lines:
        return None
    png = f"fig3-stress-{stress}.png"
    script = f"""set terminal pngcairo size 1000,560 font ',10'
set output '{png}'
set title 'Figure 3: scaling out (cache on), stress {stress}: mean time per request, 95% CI'
set xlabel 'proxy instances (dashed: proxyd workers in one instance)'
set ylabel 'time per request (ms)'
set logscale x 2
set xtics (1,2,4,8,16,32)
set xrange [0.8:{max_x * 1.25}]
set yrange [0:*]
set key below
set grid
plot {", ".join(lines)}
"""
    return png if gnuplot(script, out) else None


# ---- machine ----

def machine():
    model, ncpu, mhz = "?", 0, "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    ncpu += 1
                elif line.startswith("cpu MHz"):
                    mhz = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        free = subprocess.run(["free", "-m"], stdout=subprocess.PIPE, text=True).stdout.rstrip()
    except OSError:
        free = "?"
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return model, ncpu, mhz, free, load


def read_settings(out):
    s = {}
    try:
        with open(os.path.join(out, "settings.txt")) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    s[k] = v
    except OSError:
        pass
    return s


def read_skipped(out):
    try:
        with open(os.path.join(out, "skipped.tsv")) as f:
            seen, out = set(), []
            for line in f:
                if line.strip() and line not in seen:
                    seen.add(line)
                    out.append(line.rstrip("\n").split("\t", 1))
            return out
    except OSError:
        return []


def geomean(xs):
    xs = [x for x in xs if not math.isnan(x) and x > 0]
    if not xs:
        return float("nan")
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def report(out, publish):
    rows = load_raw(out)
    cells = aggregate(rows)
    write_csvs(out, cells)
    st = read_settings(out)
    skipped = read_skipped(out)
    plats = [p for p in PLATFORM_ORDER if any(k[1] == p for k in cells)]
    stresses = [s for s in ("off", "on") if any(k[5] == s for k in cells)]
    pngs = []
    md = []
    headline = {}
    model, ncpu, mhz, free, load = machine()
    total_errors = sum(c["errors"] for c in cells.values())

    md.append("# Benchmarks: proxyd and Squid, the VNF proxy evaluation reproduced\n")
    md.append("Generated by `bench/run` (bench/lib/stats.py) from the run described below. "
              "The experiments restate those of the published evaluation (see "
              "bench/README.md and issue 7): time per request for a 1 MiB object "
              "through the proxy, mean over repetitions of each run's mean time per request, with "
              "the 95% confidence interval (Student's t) and the mean p99 latency. "
              "**ratio = proxyd / Squid**: below 1, proxyd is faster (or uses less).\n")
    if st.get("quick") == "1":
        md.append("> **This is a `--quick` smoke run**: tiny counts, 2 repetitions; the numbers "
                  "only show that the harness works, not how the proxies compare.\n")
    md.append("## Machine and run\n")
    md.append(f"- CPU: {model}, {ncpu} logical CPUs (cpu MHz {mhz}); kernel "
              f"{platform.release()}")
    if st.get("load_start"):
        md.append(f"- Load average when the run started: {st['load_start']}; when the report "
                  f"was written: {load} (the run's own `stress` raises it)")
    else:
        md.append(f"- Load average when the report was written: {load} (the run's own `stress` "
                  "raises it; other work on the machine would make the numbers noisy)")
    md.append(f"- Date: {st.get('date', '?')}; proxyd commit {st.get('proxyd_commit', '?')}; "
              f"{st.get('squid', '?')}; {st.get('apache2', '?')}")
    md.append(f"- Repetitions per cell: {st.get('reps', '?')}; stress: `stress --cpu "
              f"{st.get('stress_cpus', '?')}` ({st.get('stress', '?')}); "
              f"fig1/fig2: {st.get('fig12', '?')}; fig3: {st.get('fig3', '?')}; "
              f"table1: {st.get('table1', '?')}")
    if any(p.startswith("kvm-") for p in plats):
        accel = st.get("vm_accel", "?")
        md.append(f"- KVM platforms: accelerator **{accel}**" +
                  (" (no usable KVM here: the guests ran under TCG emulation, so their numbers "
                   "measure the emulator more than the NIC model)" if accel == "tcg" else ""))
    md.append("- Clients, origin, proxies and `stress` share this machine's CPUs (in the study "
              "they were three machines)")
    md.append(f"- Requests that failed over the whole run: {total_errors}\n")
    md.append("```\n$ free -m\n" + free + "\n```\n")
    md.append("Commands:\n")
    md.append("```\ncmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2\n"
              f"{st.get('command', 'bench/run all')}\n```\n")
    md.append("Setup: Apache 2 origin (own configuration, 1 MiB objects), the C load generator "
              "`bench/loadgen` (each client sends its requests one after the other on a "
              "keep-alive connection; clients split evenly over the instances), proxyd and Squid "
              "with the study's cache settings (cache_mem 260 MB, maximum_object_size 1024 KB, "
              "memory only; `cache deny all` when the cache is off). A proxyd *instance* runs one "
              "worker unless the row says otherwise; a Squid instance is one process. Platforms: "
              "native (instances on other ports of 127.0.0.1); container routed / NAT (netns) emulated "
              "with network namespaces, veth pairs and iptables DNAT + MASQUERADE; Docker routed / "
              "NAT: one container per instance (4 CPUs, 4 GB) on a dockerd of the bench's own in a "
              "network namespace, NAT = the default bridge with a published port (Docker's DNAT, "
              "no userland proxy), routed = a bridge network without masquerading reached through "
              "a host route to the container's address (bench/README.md); KVM guests (4 vCPUs, 4 GB, as in the study) with an emulated e1000 "
              "or a virtio-net NIC on qemu's user-mode network, from the image that "
              "`bench/vm/build-image` builds: it runs both proxyd (one worker) and Debian's Squid "
              "with the same settings, each cell loads one of them while the other idles; the "
              "guest's configuration is fixed, so the cache-off cells fetch a `no-store` copy of "
              "the object, which neither proxy stores.\n")

    def cell(exp, p, proxy, n, w, s):
        return cells.get((exp, p, proxy, n, w, s))

    for exp, title, cache in (("fig1", "Figure 1: cache disabled", "off"),
                              ("fig2", "Figure 2: cache enabled", "on")):
        if not any(k[0] == exp for k in cells):
            continue
        md.append(f"## {title}\n")
        md.append("Time per request in ms (mean ± 95% CI over the repetitions) and p99 latency "
                  "in ms.\n")
        ratios = []
        for s in stresses:
            if not any(k[0] == exp and k[5] == s for k in cells):
                continue
            md.append(f"### Stress {s}\n")
            md.append("| platform | instances | proxyd ms/req | proxyd p99 | Squid ms/req | "
                      "Squid p99 | ratio |")
            md.append("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for p in plats:
                for n, w, sq, label in ((1, 1, 1, "1"), (2, 1, 2, "2"),
                                        (1, 2, 2, "proxyd 1 x 2 workers vs Squid 2")):
                    a, b = cell(exp, p, "proxyd", n, w, s), cell(exp, p, "squid", sq, 1, s)
                    if w == 2 and a is None:
                        continue
                    if a is None and b is None:
                        continue
                    r = ratio(a, b)
                    ratios.append(r)
                    md.append(f"| {PLATFORM_NAMES[p]} | {label} | {ms(a)} | {p99s(a)} | "
                              f"{ms(b)} | {p99s(b)} | {rs(r)} |")
            md.append("")
            png = plot_fig12(out, cells, exp, s, plats)
            if png:
                pngs.append(png)
                md.append(f"![{title}, stress {s}](benchmarks/{png})\n")
        headline[exp] = ratios

    if any(k[0] == "fig3" for k in cells):
        md.append("## Figure 3: scaling out (cache enabled)\n")
        md.append("Clients split evenly over the instances. proxyd is shown both as N separate "
                  "instances (the study's method) and as one instance with N workers sharing one "
                  "cache on one port, compared with Squid at N instances.\n")
        ratios = []
        for s in stresses:
            for p in plats:
                keys = [k for k in cells if k[0] == "fig3" and k[1] == p and k[5] == s]
                if not keys:
                    continue
                md.append(f"### {PLATFORM_NAMES[p]}, stress {s}\n")
                md.append("| N | proxyd N instances | p99 | proxyd 1 x N workers | p99 | "
                          "Squid N instances | p99 | ratio (instances) | ratio (workers) |")
                md.append("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
                ns = sorted({k[3] for k in keys} | {k[4] for k in keys})
                for n in ns:
                    a = cell("fig3", p, "proxyd", n, 1, s)
                    wk = cell("fig3", p, "proxyd", 1, n, s)
                    b = cell("fig3", p, "squid", n, 1, s)
                    if a is None and wk is None and b is None:
                        continue
                    r1, r2 = ratio(a, b), ratio(wk, b)
                    ratios.append(r1)
                    md.append(f"| {n} | {ms(a)} | {p99s(a)} | {ms(wk)} | {p99s(wk)} | {ms(b)} | "
                              f"{p99s(b)} | {rs(r1)} | {rs(r2)} |")
                md.append("")
            png = plot_fig3(out, cells, s, plats)
            if png:
                pngs.append(png)
                md.append(f"![Figure 3, stress {s}](benchmarks/{png})\n")
        headline["fig3"] = ratios

    if any(k[0] == "table1" for k in cells):
        md.append("## Table 1: resource use, one client, no stress\n")
        md.append("CPU: CPU time of all the proxy's processes over the load's wall time, in % of "
                  "one CPU (as top and docker stats show it); memory: mean proportional set size "
                  "(Pss, shared pages split between the processes that map them) over MemTotal, "
                  "sampled every 0.2 s from /proc; on the Docker platforms the container's control group, as "
                  "docker stats reads it (CPU usage; memory usage less inactive file pages). The study measured containers only; a guest would be "
                  "measured as a whole VM, so the KVM platforms are not in this table.\n")
        md.append("| platform | proxyd CPU % | proxyd mem % (MB) | proxyd ms/req | Squid CPU % | "
                  "Squid mem % (MB) | Squid ms/req | ratio CPU | ratio mem |")
        md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        ratios, mem_ratios = [], []
        for p in plats:
            a, b = cell("table1", p, "proxyd", 1, 1, "off"), cell("table1", p, "squid", 1, 1, "off")
            if a is None and b is None:
                continue

            def cpu(c):
                return "–" if c is None or math.isnan(c["cpu"]) else f"{c['cpu']:.1f}"

            def mem(c):
                return ("–" if c is None or math.isnan(c["mem"])
                        else f"{c['mem']:.2f} ({c['mem_mb']:.0f})")
            r1, r2 = ratio(a, b, "cpu"), ratio(a, b, "mem")
            ratios.append(r1)
            mem_ratios.append(r2)
            md.append(f"| {PLATFORM_NAMES[p]} | {cpu(a)} | {mem(a)} | {ms(a)} | {cpu(b)} | "
                      f"{mem(b)} | {ms(b)} | {rs(r1)} | {rs(r2)} |")
        md.append("")
        headline["table1"] = ratios
        headline["table1_mem"] = mem_ratios

    if skipped:
        md.append("## Skipped\n")
        for what, why in skipped:
            md.append(f"- {what}: {why}")
        md.append("")

    md.append("## Closing note\n")
    names = {"fig1": "Figure 1 (cache off), time per request",
             "fig2": "Figure 2 (cache on), time per request",
             "fig3": "Figure 3 (scaling out), time per request at equal instance count",
             "table1": "Table 1, CPU",
             "table1_mem": "Table 1, memory (Pss)"}
    any_h = False
    for exp in ("fig1", "fig2", "fig3", "table1", "table1_mem"):
        rs_ = [x for x in headline.get(exp, []) if not math.isnan(x)]
        if not rs_:
            continue
        any_h = True
        md.append(f"- {names[exp]}: proxyd/Squid geometric mean **{geomean(rs_):.2f}** over "
                  f"{len(rs_)} cells (from {min(rs_):.2f} to {max(rs_):.2f}).")
    if not any_h:
        md.append("- No cell has both proxyd and Squid: no ratio to quote.")
    md.append("")
    md.append("Raw data: raw.csv (one row per timed run) and fig1.csv, fig2.csv, fig3.csv, "
              "table1.csv (one row per cell) next to this report in the results directory.\n")

    text = "\n".join(md)
    with open(os.path.join(out, "benchmarks.md"), "w") as f:
        f.write(text)
    os.makedirs(os.path.join(out, "benchmarks"), exist_ok=True)
    for png in pngs:
        shutil.copy(os.path.join(out, png), os.path.join(out, "benchmarks", png))
    if publish:
        os.makedirs(os.path.join(publish, "benchmarks"), exist_ok=True)
        target = os.path.join(publish, "benchmarks.md")
        with open(target, "w" if not os.path.exists(target) else "r+") as f:
            # the Docker run's, bench/compare's and bench/hitratio's sections (between their
            # markers) are kept: they come from other tools and other runs
            kept = ""
            if f.mode == "r+":
                old = f.read()
                for begin, end in KEPT_SECTIONS:
                    i, j = old.find(begin), old.find(end)
                    if 0 <= i < j:
                        kept += old[i:j + len(end)] + "\n"
                f.seek(0)
                f.truncate()
            f.write(text + "\n" + kept if kept else text)
        for png in pngs:
            shutil.copy(os.path.join(out, png), os.path.join(publish, "benchmarks", png))
    return 0


COMPARE_BEGIN = "<!-- bench/compare: begin -->"
COMPARE_END = "<!-- bench/compare: end -->"
KEPT_SECTIONS = [("<!-- bench/run docker: begin -->", "<!-- bench/run docker: end -->"),
                 (COMPARE_BEGIN, COMPARE_END),
                 ("<!-- bench/hitratio: begin -->", "<!-- bench/hitratio: end -->")]


def main(argv):
    if len(argv) >= 2 and argv[0] == "merge":
        sample = None
        if len(argv) == 4 and argv[2] == "--sample":
            sample = argv[3]
        return merge(argv[1], sample)
    if len(argv) >= 2 and argv[0] == "report":
        publish = argv[3] if len(argv) == 4 and argv[2] == "--publish" else None
        return report(argv[1], publish)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
