"""Smoke test of bench/cluster: 1 and 2 instances, 2 clients x 4 requests over 4 objects.
The origin fetches follow from the setup alone: one instance fetches each object once; two
independent instances each fetch each object once (every client cycles over all 4); two
instances as one proxyd_cluster fetch each object once between them. Every request
complete, the table and the JSON written, nothing left running. A few seconds; skipped
without apache2 (the bench origin)."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

SRC = os.environ.get("PROXYD_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
PROXYD = os.environ.get("PROXYD_BIN", os.path.join(SRC, "build", "proxyd"))
LOADGEN = os.path.join(os.path.dirname(PROXYD), "bench", "loadgen")


class BenchClusterTest(unittest.TestCase):
    @unittest.skipUnless(os.access("/usr/sbin/apache2", os.X_OK) and os.access(LOADGEN, os.X_OK),
                         "needs apache2 and build/bench/loadgen")
    def test_origin_fetches(self):
        out = tempfile.mkdtemp(prefix="bench-cluster-test-")
        self.addCleanup(shutil.rmtree, out, True)
        r = subprocess.run([os.path.join(SRC, "bench", "cluster"), "--instances", "1,2", "--clients", "2",
                            "--requests", "4", "--objects", "4", "--out", out, "--proxyd", PROXYD,
                            "--loadgen", LOADGEN], capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(out, "results.json")) as f:
            rows = {(x["instances"], x["mode"]): x for x in json.load(f)}
        want = {(1, "independent"): 4, (1, "cluster"): 4, (2, "independent"): 8, (2, "cluster"): 4}
        for k, fetches in want.items():
            self.assertEqual((rows[k]["requests"], rows[k]["errors"]), (8, 0), k)
            self.assertEqual(rows[k]["origin_fetches"], fetches, k)
            self.assertAlmostEqual(rows[k]["hit_ratio"], 1 - fetches / 8, 6)
        with open(os.path.join(out, "results.md")) as f:
            table = f.read()
        self.assertIn("| 2 | cluster | 8 | 4 | 0.500 | ", table)
        left = subprocess.run(["pgrep", "-f", "bench-cluster-"], capture_output=True, text=True).stdout
        self.assertEqual(left.strip(), "", "processes of the bench left running")


if __name__ == "__main__":
    unittest.main(verbosity=2)
