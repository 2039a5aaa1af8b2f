"""Unit tests of bench/lib/stats.py: the statistics, the merge of one run's loadgen outputs, and
the report built from a raw.csv. Pure Python, no server started; values checked against
hand-computed ones."""

import csv
import importlib.util
import io
import json
import math
import os
import shutil
import tempfile
import unittest
from contextlib import redirect_stdout

SRC = os.environ.get("PROXYD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
_spec = importlib.util.spec_from_file_location(
    "bench_stats", os.path.join(SRC, "bench", "lib", "stats.py"))
stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stats)

RAW_HEADER = ("experiment,platform,proxy,instances,workers,stress,clients,requests,rep,"
              "time_per_req_ms,mean_ms,p50_ms,p99_ms,max_ms,req_per_s,mb_per_s,ok,errors,wall_s,"
              "cpu_pct,cpu_pct_machine,mem_pct,mem_mb")


def loadgen_json(clients, requests, tpr, ok=None, errors=0, not_run=0, total_s=1.0, p99=9.0):
    ok = clients * requests if ok is None else ok
    return json.dumps({
        "clients": clients, "requests_per_client": requests, "via": "proxy", "keepalive": True,
        "urls": 1, "requests": clients * requests, "ok": ok, "errors": errors,
        "not_run": not_run, "errors_by_kind": {}, "connections": clients, "retries": 0,
        "bytes": ok * 1048576, "total_s": total_s, "req_per_s": ok / total_s,
        "mb_per_s": ok * 1.048576 / total_s, "time_per_req_ms": tpr, "mean_ms": tpr,
        "min_ms": 1.0, "p50_ms": tpr, "p90_ms": tpr, "p99_ms": p99, "max_ms": p99})


class Statistics(unittest.TestCase):
    def test_t_quantiles(self):
        cases = [(1, 12.706), (2, 4.303), (9, 2.262), (30, 2.042), (35, 2.042), (50, 2.021),
                 (100, 2.000), (1000, 1.960)]
        for df, t in cases:
            self.assertAlmostEqual(stats.t975(df), t, places=3, msg=df)
        self.assertTrue(math.isnan(stats.t975(0)))

    def test_mean_ci(self):
        # 10 values 1..10: mean 5.5, s = sqrt(110/12) = 3.0277, CI = 2.262 * s / sqrt(10).
        m, ci = stats.mean_ci([float(x) for x in range(1, 11)])
        self.assertAlmostEqual(m, 5.5)
        self.assertAlmostEqual(ci, 2.262 * math.sqrt(110 / 12) / math.sqrt(10), places=6)
        m, ci = stats.mean_ci([4.0, 6.0])  # s = sqrt(2), CI = 12.706 * sqrt(2) / sqrt(2)
        self.assertAlmostEqual(m, 5.0)
        self.assertAlmostEqual(ci, 12.706, places=6)
        m, ci = stats.mean_ci([3.0])
        self.assertEqual(m, 3.0)
        self.assertTrue(math.isnan(ci))
        m, ci = stats.mean_ci([2.0, float("nan"), 4.0])  # nan (a run without result) ignored
        self.assertAlmostEqual(m, 3.0)
        self.assertTrue(all(math.isnan(x) for x in stats.mean_ci([])))

    def test_percentile_nearest_rank(self):
        xs = [float(x) for x in range(1, 101)]
        self.assertEqual(stats.percentile(xs, 99), 99.0)
        self.assertEqual(stats.percentile(xs, 50), 50.0)
        self.assertEqual(stats.percentile(xs, 100), 100.0)
        self.assertEqual(stats.percentile([7.0], 99), 7.0)
        self.assertEqual(stats.percentile([1.0, 2.0], 99), 2.0)
        self.assertTrue(math.isnan(stats.percentile([], 99)))

    def test_geomean(self):
        self.assertAlmostEqual(stats.geomean([0.5, 2.0]), 1.0)
        self.assertAlmostEqual(stats.geomean([0.25, float("nan"), 1.0]), 0.5)
        self.assertTrue(math.isnan(stats.geomean([])))


class Merge(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pd-bench-stats-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def merged(self, sample=None):
        buf = io.StringIO()
        with redirect_stdout(buf):
            self.assertEqual(stats.merge(self.dir, sample), 0)
        names = ["time_per_req_ms", "mean_ms", "p50_ms", "p99_ms", "max_ms", "req_per_s",
                 "mb_per_s", "ok", "errors", "wall_s", "cpu_pct", "cpu_pct_machine", "mem_pct",
                 "mem_mb"]
        vals = buf.getvalue().strip().split(",")
        self.assertEqual(len(vals), len(names))
        return dict(zip(names, vals))

    def test_two_loadgens_weighted_by_clients_and_latencies_pooled(self):
        # loadgen 0: 3 clients at 10 ms/req; loadgen 1: 1 client at 30 ms/req -> 15 ms/req.
        self.write("lg-0.json", loadgen_json(3, 2, 10.0, total_s=2.0) + "\n")
        self.write("lg-1.json", loadgen_json(1, 2, 30.0, total_s=4.0) + "\n")
        rows0 = ["client,seq,start_us,latency_us,status,bytes,result"]
        rows0 += [f"{c},{s},0,{(c * 2 + s + 1) * 1000},200,1048576,ok"
                  for c in range(3) for s in range(2)]  # 1..6 ms
        rows1 = ["client,seq,start_us,latency_us,status,bytes,result",
                 "0,0,0,100000,200,1048576,ok",  # 100 ms
                 "0,1,0,999000,0,0,timeout"]  # not ok: not a latency
        self.write("lg-0.csv", "\n".join(rows0) + "\n")
        self.write("lg-1.csv", "\n".join(rows1) + "\n")
        r = self.merged()
        self.assertAlmostEqual(float(r["time_per_req_ms"]), 15.0)
        self.assertAlmostEqual(float(r["max_ms"]), 100.0)
        self.assertAlmostEqual(float(r["p99_ms"]), 100.0)  # 7 latencies: rank ceil(6.93) = 7
        self.assertAlmostEqual(float(r["p50_ms"]), 4.0)
        self.assertAlmostEqual(float(r["mean_ms"]), (21 + 100) / 7, places=3)
        self.assertEqual(int(r["ok"]), 8)
        self.assertEqual(int(r["errors"]), 0)
        self.assertAlmostEqual(float(r["wall_s"]), 4.0)
        self.assertAlmostEqual(float(r["req_per_s"]), 2.0, places=1)

    def test_errors_and_missing_output_count(self):
        self.write("lg-0.json", loadgen_json(2, 5, 10.0, ok=7, errors=2, not_run=1) + "\n")
        self.write("lg-1.json", "")  # a loadgen that died without a summary
        r = self.merged()
        self.assertEqual(int(r["errors"]), 4)
        self.assertEqual(int(r["ok"]), 7)

    def test_no_loadgen_at_all_is_an_error(self):
        r = self.merged()
        self.assertEqual(int(r["errors"]), 1)
        self.assertEqual(r["time_per_req_ms"], "nan")

    def test_sample_cpu_over_load_wall_time(self):
        self.write("lg-0.json", loadgen_json(1, 10, 1.0, total_s=2.0) + "\n")
        sample = os.path.join(self.dir, "sample.json")
        self.write("sample.json", json.dumps({"cpu_s": 1.0, "cpu_pct": 10.0,
                                              "cpu_pct_machine": 5.0, "mem_pct": 0.5,
                                              "mem_mb_mean": 120.0}))
        r = self.merged(sample)
        self.assertAlmostEqual(float(r["cpu_pct"]), 50.0)  # 1 s of CPU over a 2 s load
        self.assertAlmostEqual(float(r["cpu_pct_machine"]), 50.0 / (os.cpu_count() or 1),
                               places=2)
        self.assertAlmostEqual(float(r["mem_pct"]), 0.5)
        self.assertAlmostEqual(float(r["mem_mb"]), 120.0)


class Report(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="pd-bench-report-")
        rows = [RAW_HEADER]

        def add(exp, plat, proxy, n, w, stress, tprs, cpu="nan", mem="nan"):
            for i, t in enumerate(tprs, 1):
                rows.append(f"{exp},{plat},{proxy},{n},{w},{stress},10,100,{i},{t},{t},{t},"
                            f"{2 * t},{3 * t},100,100,1000,0,1.0,{cpu},{cpu},{mem},10")
        add("fig1", "native", "proxyd", 1, 1, "off", [4.0, 6.0])
        add("fig1", "native", "squid", 1, 1, "off", [9.0, 11.0])
        add("fig1", "native", "proxyd", 2, 1, "off", [3.0, 3.0])
        add("fig1", "native", "squid", 2, 1, "off", [6.0, 6.0])
        add("fig1", "native", "proxyd", 1, 2, "off", [2.0, 2.0])
        add("fig3", "ns-nat", "proxyd", 1, 1, "off", [1.0, 1.0])
        add("fig3", "ns-nat", "squid", 1, 1, "off", [4.0, 4.0])
        add("fig3", "ns-nat", "proxyd", 1, 2, "off", [0.5, 0.5])
        add("fig3", "ns-nat", "squid", 2, 1, "off", [2.0, 2.0])
        add("table1", "native", "proxyd", 1, 1, "off", [1.0, 1.0], cpu="20", mem="0.1")
        add("table1", "native", "squid", 1, 1, "off", [2.0, 2.0], cpu="40", mem="0.4")
        with open(os.path.join(self.out, "raw.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
        with open(os.path.join(self.out, "settings.txt"), "w") as f:
            f.write("command=bench/run all --reps 2\nreps=2\nquick=0\n")
        with open(os.path.join(self.out, "skipped.tsv"), "w") as f:
            f.write("platform kvm-e1000\tno image\n")
        self.assertEqual(stats.report(self.out, None), 0)
        with open(os.path.join(self.out, "benchmarks.md")) as f:
            self.md = f.read()

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def test_cell_csv(self):
        with open(os.path.join(self.out, "fig1.csv")) as f:
            rows = {(r["proxy"], r["instances"], r["workers"]): r for r in csv.DictReader(f)}
        r = rows[("proxyd", "1", "1")]
        self.assertEqual(r["n"], "2")
        self.assertAlmostEqual(float(r["time_per_req_ms"]), 5.0)
        self.assertAlmostEqual(float(r["ci95_ms"]), 12.706)  # s = sqrt(2), n = 2
        self.assertAlmostEqual(float(r["p99_ms"]), 10.0)
        self.assertEqual(r["errors"], "0")
        self.assertEqual(len(rows), 5)
        with open(os.path.join(self.out, "table1.csv")) as f:
            t1 = {r["proxy"]: r for r in csv.DictReader(f)}
        self.assertAlmostEqual(float(t1["squid"]["cpu_pct"]), 40.0)

    def test_ratios_in_tables(self):
        # fig1 native: 5/10, 3/6, and 1 instance x 2 workers against Squid x2: 2/6.
        self.assertRegex(self.md, r"\| native \| 1 \| 5\.00 ± 12\.71 \|.*\| \*\*0\.50\*\* \|")
        self.assertRegex(self.md, r"\| native \| 2 \| 3\.00 ± 0\.00 \|.*\| \*\*0\.50\*\* \|")
        self.assertRegex(self.md, r"\| native \| proxyd 1 x 2 workers vs Squid 2 \|.*\*\*0\.33\*\* \|")
        # fig3: N=1 ratio 0.25 both ways; N=2 only the workers row has a proxyd value: 0.5/2.
        self.assertRegex(self.md, r"\| 1 \| 1\.00 ± 0\.00 \|.*\| \*\*0\.25\*\* \| \*\*0\.25\*\* \|")
        self.assertRegex(self.md, r"\| 2 \| – \| – \| 0\.50 ± 0\.00 \|.*\| – \| \*\*0\.25\*\* \|")
        # table1: CPU 20/40, memory 0.1/0.4.
        self.assertRegex(self.md, r"\| native \| 20\.0 \|.*\| \*\*0\.50\*\* \| \*\*0\.25\*\* \|")

    def test_closing_note_and_skips(self):
        self.assertIn("## Closing note", self.md)
        # fig1 ratios 0.5, 0.5, 0.333: geometric mean 0.437.
        self.assertRegex(self.md, r"Figure 1 \(cache off\).*\*\*0\.44\*\* over 3 cells")
        self.assertIn("- platform kvm-e1000: no image", self.md)
        self.assertIn("bench/run all --reps 2", self.md)
        self.assertNotIn("--quick", self.md.split("## Machine")[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
