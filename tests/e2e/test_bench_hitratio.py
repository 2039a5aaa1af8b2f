"""Smoke test of bench/hitratio: the simulator on tiny traces, a tiny replay through proxyd,
and the report's --publish.

Checks structure and counts that follow from the traces themselves, never a ratio that could
drift with a policy's tuning: a policy's hits never exceed the requests minus the distinct
objects (first requests always miss); N objects fetched twice in a cache that holds them all
hit exactly N times; LRU and FIFO over a cyclic pass larger than the cache hit nothing; the
simulator's LRU and FIFO equal a reference written here with an OrderedDict; the same seed
gives the same trace; through proxyd, the capacity scenario's first pass costs the origin
exactly N requests and the second none; every response complete; nothing left running. About
5-10 s.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from pdtest import processes_mentioning

SRC = os.environ.get("PROXYD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
PROXYD = os.environ.get("PROXYD_BIN", os.path.join(SRC, "build", "proxyd"))
HR = os.path.join(SRC, "bench", "hitratio")
ENGINE = os.path.join(os.path.dirname(PROXYD), "bench", "hitratio-sim")
POLICIES = ["lru", "fifo", "sieve", "s3fifo", "s3fifo2", "wtinylfu", "gdsf", "lfuda"]
BLOCK, OVERHEAD = 512, 350

sys.path.insert(0, HR)
import hrtrace  # noqa: E402


def env():
    e = dict(os.environ)
    if os.access(ENGINE, os.X_OK):
        e["HITRATIO_SIM"] = ENGINE
    return e


def run(argv, timeout=120):
    r = subprocess.run([sys.executable] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout, env=env())
    sys.stderr.write(r.stderr[-2000:])
    return r


def reference(ids, sizes, cap, move):
    """LRU (move=True) or FIFO, byte capacity, the simulator's cost model: (hits, hit bytes)."""
    od, used, hits, hbytes = collections.OrderedDict(), 0, 0, 0
    for i, s in zip(ids, sizes):
        c = (OVERHEAD + s + BLOCK - 1) // BLOCK * BLOCK
        if i in od:
            hits, hbytes = hits + 1, hbytes + s
            if move:
                od.move_to_end(i)
            continue
        if c > cap:
            continue
        while used + c > cap:
            used -= od.popitem(last=False)[1]
        od[i] = c
        used += c
    return hits, hbytes


class Sim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pd-hitratio-sim-")
        r = run([os.path.join(HR, "sim"), "--trace", "zipf,capacity,scan", "--alpha", "0.8",
                 "--objects", "3000", "--requests", "30000", "--capacity-n", "100",
                 "--cache-mb", "0.1,1,16", "--out", cls.tmp, "--quiet"])
        cls.rc, cls.stdout = r.returncode, r.stdout
        with open(os.path.join(cls.tmp, "sim.json")) as f:
            cls.res = json.load(f)
        cls.by = {t["spec"]["kind"]: t for t in cls.res["traces"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def rows(self, kind):
        return {(r["policy"], r["cache_bytes"]): r for r in self.by[kind]["rows"]}

    def test_a_row_per_policy_and_cache_size(self):
        self.assertEqual(self.rc, 0)
        caps = self.res["meta"]["caches"]
        self.assertEqual(len(caps), 3)
        for t in self.res["traces"]:
            self.assertEqual(sorted((r["policy"], r["cache_bytes"]) for r in t["rows"]),
                             sorted((p, c) for p in POLICIES for c in caps), t["name"])
        for p in POLICIES:
            self.assertIn(f"| {p} |", self.stdout)
        self.assertIn("### Ranking", self.stdout)

    def test_hits_bounded_by_compulsory_misses(self):
        for t in self.res["traces"]:
            for r in t["rows"]:
                self.assertEqual(r["requests"], t["requests"])
                self.assertLessEqual(r["hits"], t["requests"] - t["distinct"], r)
                self.assertLessEqual(r["hit_bytes"], r["bytes"], r)
                self.assertLessEqual(r["tail_hits"], r["tail_requests"], r)
                self.assertGreaterEqual(r["hits"], 0)

    def test_capacity_fits_every_policy_hits_every_object_once(self):
        t = self.by["capacity"]
        self.assertEqual((t["requests"], t["distinct"], t["tail"]), (200, 100, 100))
        for (p, cap), r in self.rows("capacity").items():
            if cap == 16 << 20:
                self.assertEqual((r["hits"], r["tail_hits"]), (100, 100), p)

    def test_cyclic_pass_larger_than_the_cache_defeats_lru_and_fifo(self):
        # 100 objects of 2,560 B each (2 KB + overhead, rounded) in a 0.1 MB cache: 40 fit
        cap = int(0.1 * 1024 * 1024)
        self.assertLess(cap // 2560, 100)
        for p in ("lru", "fifo"):
            self.assertEqual(self.rows("capacity")[(p, cap)]["hits"], 0, p)
        # the scan scenario: 20,000 one-time objects flush LRU and FIFO whatever the size here
        for p in ("lru", "fifo"):
            for cap in self.res["meta"]["caches"]:
                self.assertEqual(self.rows("scan")[(p, cap)]["tail_hits"], 0, (p, cap))
        self.assertEqual(self.by["scan"]["tail"], 300)

    def test_lru_and_fifo_equal_the_reference(self):
        spec = self.by["zipf"]["spec"]
        ids, sizes, _ = hrtrace.make(spec, self.res["meta"]["max_object"])
        for cap in self.res["meta"]["caches"]:
            for p, move in (("lru", True), ("fifo", False)):
                r = self.rows("zipf")[(p, cap)]
                self.assertEqual((r["hits"], r["hit_bytes"]), reference(ids, sizes, cap, move),
                                 (p, cap))

    def test_same_seed_same_trace(self):
        spec = self.by["zipf"]["spec"]
        a = hrtrace.make(spec, 1 << 20)
        b = hrtrace.make(spec, 1 << 20)
        self.assertEqual(a[0].tobytes(), b[0].tobytes())
        self.assertEqual(a[1].tobytes(), b[1].tobytes())
        c = hrtrace.make(dict(spec, seed=spec["seed"] + 1), 1 << 20)
        self.assertNotEqual(a[0].tobytes(), c[0].tobytes())
        self.assertLessEqual(max(a[1]), 1 << 20)

    def test_help_names_every_policy_and_bad_policy_is_refused(self):
        r = run([os.path.join(HR, "sim"), "--help"])
        self.assertEqual(r.returncode, 0)
        for p in POLICIES:
            self.assertIn(p, r.stdout)
        r = run([os.path.join(HR, "sim"), "--policies", "lru,nosuch", "--trace", "scan"])
        self.assertEqual(r.returncode, 2)


class Replay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pd-hitratio-replay-")
        r = run([os.path.join(HR, "replay"), "--proxies", "proxyd", "--proxyd", PROXYD,
                 "--policies", "lru", "--scenarios", "capacity,zipf", "--capacity-n", "100",
                 "--objects", "500", "--requests", "2000", "--clients", "4",
                 "--time-limit", "240", "--run-timeout", "120", "--out", cls.tmp], timeout=300)
        cls.rc, cls.stdout = r.returncode, r.stdout
        with open(os.path.join(cls.tmp, "replay.json")) as f:
            cls.res = json.load(f)
        cls.rows = {r["kind"]: r for r in cls.res["rows"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_run_ran_without_failure(self):
        self.assertEqual(self.rc, 0, self.stdout)
        self.assertEqual(self.res["skipped"], [])
        self.assertEqual(sorted(self.rows), ["capacity", "zipf"])
        for r in self.res["rows"]:
            self.assertEqual(r["errors"], 0, r["first_error"])
            self.assertEqual(r["received"], r["bytes"])
            self.assertEqual((r["proxy"], r["policy"], r["cache_mb"]), ("proxyd", "lru", 16))

    def test_capacity_first_pass_misses_second_pass_hits(self):
        r = self.rows["capacity"]
        self.assertEqual([p["requests"] for p in r["phases"]], [100, 100])
        self.assertEqual([p["origin_requests"] for p in r["phases"]], [100, 0])
        self.assertEqual(r["phases"][0]["origin_bytes"], 100 * 2048)
        self.assertEqual((r["measured_hits"], r["measured"]), (100, 100))
        self.assertIn("| proxyd | lru | 16 MB | capacity n=100 (2 KB x2) | 100 | 100 |",
                      self.stdout)

    def test_zipf_origin_saw_every_object_at_least_once(self):
        r = self.rows["zipf"]
        spec = {"kind": "zipf", "alpha": 0.8, "objects": 500, "requests": 2000, "seed": 1}
        ids, sizes, _ = hrtrace.make(spec, 1024 * 1024)
        self.assertEqual(r["requests"], len(ids))
        self.assertEqual(r["bytes"], sum(sizes))
        self.assertGreaterEqual(r["origin_requests"], len(set(ids)))
        self.assertLessEqual(r["origin_requests"], r["requests"])
        self.assertGreaterEqual(r["origin_bytes"], sum(sizes[ids.index(i)] for i in set(ids)))
        self.assertAlmostEqual(r["object_hit_ratio"],
                               1 - r["origin_requests"] / r["requests"])

    def test_nothing_left_running(self):
        workdir = self.res["meta"]["workdir"]
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(processes_mentioning(workdir), [])


class Report(unittest.TestCase):
    def test_publish_replaces_its_section_only(self):
        tmp = tempfile.mkdtemp(prefix="pd-hitratio-report-")
        try:
            res = os.path.join(tmp, "res")
            docs = os.path.join(tmp, "docs")
            os.makedirs(docs)
            r = run([os.path.join(HR, "sim"), "--trace", "scan", "--cache-mb", "1",
                     "--policies", "lru,s3fifo", "--out", res, "--quiet"])
            self.assertEqual(r.returncode, 0)
            with open(os.path.join(docs, "benchmarks.md"), "w") as f:
                f.write("# Benchmarks\n\nbefore\n\n<!-- bench/hitratio: begin -->\nold\n"
                        "<!-- bench/hitratio: end -->\n\nafter\n")
            for _ in range(2):
                r = run([os.path.join(HR, "report"), res, "--publish", docs])
                self.assertEqual(r.returncode, 0)
            with open(os.path.join(docs, "benchmarks.md")) as f:
                text = f.read()
            self.assertEqual(text.count("<!-- bench/hitratio: begin -->"), 1)
            self.assertEqual(text.count("<!-- bench/hitratio: end -->"), 1)
            self.assertNotIn("\nold\n", text)
            self.assertTrue(text.startswith("# Benchmarks\n\nbefore\n\n"))
            self.assertTrue(text.endswith("<!-- bench/hitratio: end -->\nafter\n"), text[-200:])
            self.assertIn("| s3fifo |", text)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
