"""Smoke test of bench/compare: `--quick --only proxyd,nginx-direct --scenarios hit4k,miss4k`.

Runs the comparison once with 2-second runs (about 10 s) and checks what it reported, never
how fast anything was: a table row per peer and scenario, proxyd verified as serving hits from
its cache (the origin saw no request during the hit run) and as going to the origin for every
request with `cache deny all`, complete bodies and no failed request, the TSV and JSON files,
and nothing it started left running. Needs nginx and wrk (skipped without them).
"""

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
COMPARE = os.path.join(SRC, "bench", "compare")


@unittest.skipUnless(os.access("/usr/sbin/nginx", os.X_OK) and os.access("/usr/bin/wrk", os.X_OK),
                     "nginx and wrk are needed (apt-get install -y nginx-light wrk)")
class BenchCompareSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pd-compare-smoke-")
        cls.md = os.path.join(cls.tmp, "compare.md")
        cmd = [sys.executable, COMPARE, "--quick", "--only", "proxyd,nginx-direct",
               "--scenarios", "hit4k,miss4k", "--proxyd", PROXYD, "--out", cls.md]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=240)
        cls.rc, cls.stdout, cls.stderr = r.returncode, r.stdout, r.stderr
        sys.stderr.write(r.stderr[-3000:])
        with open(os.path.join(cls.tmp, "compare.json")) as f:
            cls.result = json.load(f)
        cls.rows = {(x["peer"], x["scenario"]): x for x in cls.result["rows"]}

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exit_status_and_nothing_skipped(self):
        self.assertEqual(self.rc, 0, self.stderr[-2000:])
        self.assertEqual(self.result["skipped"], [])

    def test_table_has_a_row_per_peer_and_scenario(self):
        for peer in ("proxyd", "nginx-direct"):
            for scen in ("hit4k", "miss4k"):
                self.assertIn((peer, scen), self.rows)
                self.assertRegex(self.stdout, rf"\| {peer} \| {scen} \| (hit|miss|direct) \| [0-9,]+ \|")
        with open(self.md) as f:
            self.assertEqual(f.read(), self.stdout)

    def test_proxyd_served_hits_from_its_cache(self):
        r = self.rows[("proxyd", "hit4k")]
        self.assertEqual(r["verified"], "hit", r["verify_detail"])
        self.assertEqual(r["origin_requests"], 0)
        self.assertGreater(r["requests"], 0)

    def test_proxyd_with_cache_off_went_to_the_origin(self):
        r = self.rows[("proxyd", "miss4k")]
        self.assertEqual(r["verified"], "miss", r["verify_detail"])
        self.assertGreaterEqual(r["origin_requests"], r["requests"])

    def test_complete_responses_and_measurements(self):
        for key, r in self.rows.items():
            self.assertEqual(r["errors"], 0, key)
            self.assertGreaterEqual(r["bytes_per_req"], 4096, key)
            self.assertGreater(r["req_per_s"], 0, key)
            self.assertGreater(r["p99_ms"], 0, key)
            self.assertGreaterEqual(r["p99_ms"], r["p50_ms"], key)
            self.assertGreaterEqual(r["cpu_s"], 0, key)
            self.assertGreater(r["pss_kb"], 0, key)

    def test_tsv(self):
        with open(os.path.join(self.tmp, "compare.tsv")) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines[0].startswith("peer\tscenario\tverified\treq_per_s"))
        self.assertEqual(len(lines), 1 + len(self.rows))

    def test_nothing_left_running(self):
        workdir = self.result["meta"]["workdir"]
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(processes_mentioning(workdir), [])


LOADGEN = os.path.join(SRC, "build", "bench", "loadgen")


@unittest.skipUnless(os.access("/usr/sbin/nginx", os.X_OK) and os.access(LOADGEN, os.X_OK) and
                     len(os.sched_getaffinity(0)) >= 2,
                     "nginx, build/bench/loadgen and two CPUs are needed")
class BenchComparePinnedRounds(unittest.TestCase):
    """`--client loadgen --pin --rounds 2`: one row per peer and scenario with the means of
    two interleaved runs, the client on one CPU and the peer's processes on the other."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pd-compare-pinned-")
        md = os.path.join(cls.tmp, "compare.md")
        cmd = [sys.executable, COMPARE, "--quick", "--only", "proxyd,nginx-direct",
               "--scenarios", "hit4k", "--client", "loadgen", "--pin", "--rounds", "2",
               "--proxyd", PROXYD, "--out", md]
        cls.r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=240)
        sys.stderr.write(cls.r.stderr[-3000:])
        with open(os.path.join(cls.tmp, "compare.json")) as f:
            cls.result = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_means_of_two_rounds(self):
        self.assertEqual(self.r.returncode, 0, self.r.stderr[-2000:])
        rows = {(x["peer"], x["scenario"]): x for x in self.result["rows"]}
        runs = self.result["runs"]
        self.assertEqual(sorted(rows), [("nginx-direct", "hit4k"), ("proxyd", "hit4k")])
        self.assertEqual(len(runs), 4)
        for key, row in rows.items():
            mine = [x for x in runs if (x["peer"], x["scenario"]) == key]
            self.assertEqual(sorted(x["round"] for x in mine), [1, 2])
            self.assertEqual(row["rounds"], 2)
            self.assertAlmostEqual(row["req_per_s"], sum(x["req_per_s"] for x in mine) / 2)
            self.assertGreaterEqual(row["req_per_s_sd"], 0)
            self.assertEqual(row["errors"], 0)
            self.assertGreater(row["client_cpu_s_per_1k"], 0)
        self.assertEqual(rows[("proxyd", "hit4k")]["verified"], "hit")
        self.assertRegex(self.r.stdout, r"\| proxyd \| hit4k \| hit \| [0-9,]+ \(sd [0-9,]+\) \|")

    def test_client_and_peer_on_their_own_cpus(self):
        self.assertTrue(self.result["meta"]["pin"])
        self.assertEqual(self.result["meta"]["client"], "loadgen")
        second = sorted(os.sched_getaffinity(0))[1]
        for run in self.result["runs"]:
            self.assertEqual(run["peer_cpus"], [second], run["peer"])

if __name__ == "__main__":
    unittest.main(verbosity=2)
