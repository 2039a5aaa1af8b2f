"""The Grafana dashboard (docs/grafana/proxyd-dashboard.json) only uses metrics
that proxyd exports (`proxyd --print-metrics`), so it cannot silently rot."""

import json
import os
import re
import subprocess
import unittest

import pdtest


class DashboardTest(unittest.TestCase):
    def test_every_metric_exists(self):
        path = os.path.join(pdtest.source_dir(), "docs", "grafana", "proxyd-dashboard.json")
        with open(path) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        self.assertGreater(len(exprs), 10)
        used = set()
        for e in exprs:
            for m in re.findall(r"\bproxyd_[a-z_]+", e):
                used.add(re.sub(r"_(bucket|sum|count)$", "", m))
        out = subprocess.run([pdtest.proxyd_bin(), "--print-metrics"], capture_output=True,
                             text=True, check=True).stdout
        exported = set(re.findall(r"`(proxyd_[a-z_]+)`", out))
        self.assertGreater(len(exported), 20)
        self.assertEqual(sorted(used - exported), [], "dashboard uses metrics proxyd does not export")


if __name__ == "__main__":
    unittest.main(verbosity=2)
