"""Smoke test of bench/tunnel: one round with small sizes (a few seconds). Checks what it
reported, never how fast anything was: both modes ran both scenarios, every byte arrived, the
copy mode spliced nothing, the splice mode relayed the bulk transfers in the kernel and left
the small exchanges in user space, and nothing it started is left running. Needs nginx and
curl (skipped without them)."""

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
TUNNEL = os.path.join(SRC, "bench", "tunnel")


@unittest.skipUnless(os.access("/usr/sbin/nginx", os.X_OK) and os.access("/usr/bin/curl", os.X_OK),
                     "nginx and curl are needed (apt-get install -y nginx-light curl)")
class BenchTunnelSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="pd-tunnel-smoke-")
        md = os.path.join(cls.tmp, "tunnel.md")
        cmd = [sys.executable, TUNNEL, "--rounds", "1", "--size-mib", "4", "--repeat", "2",
               "--small", "100", "--conns", "2", "--proxyd", PROXYD, "--out", md]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        cls.rc, cls.stdout, cls.stderr = r.returncode, r.stdout, r.stderr
        sys.stderr.write(r.stderr[-3000:])
        with open(os.path.join(cls.tmp, "tunnel.json")) as f:
            cls.result = json.load(f)
        with open(md) as f:
            cls.md = f.read()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_exit_status_and_verified(self):
        self.assertEqual(self.rc, 0, self.stderr[-2000:])
        self.assertTrue(self.result["verified"])
        self.assertIn("Verified: copy spliced no byte", self.stdout)
        self.assertEqual(self.md, self.stdout)

    def test_every_run_complete(self):
        runs = {(x["mode"], x["scenario"]): x for x in self.result["runs"]}
        self.assertEqual(sorted(runs), [("copy", "bulk"), ("copy", "small"),
                                        ("splice", "bulk"), ("splice", "small")])
        for (mode, scen), x in runs.items():
            want = 2 * 2 * 4 * 1048576 if scen == "bulk" else 2 * 100 * 4096
            self.assertEqual(x["bytes"], want, (mode, scen))
            self.assertGreater(x["rate"], 0)

    def test_what_was_spliced(self):
        runs = {(x["mode"], x["scenario"]): x for x in self.result["runs"]}
        self.assertEqual(runs[("copy", "bulk")]["spliced_share"], 0)
        self.assertEqual(runs[("copy", "small")]["spliced_share"], 0)
        self.assertGreaterEqual(runs[("splice", "bulk")]["spliced_share"], 0.9)
        self.assertEqual(runs[("splice", "small")]["spliced_share"], 0,
                         "4 KiB answers are not a bulk transfer")

    def test_nothing_left_running(self):
        workdir = self.result["workdir"]
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(processes_mentioning(workdir), [])


@unittest.skipUnless(os.access("/usr/sbin/nginx", os.X_OK) and os.access("/usr/bin/curl", os.X_OK)
                     and os.access("/usr/sbin/squid", os.X_OK),
                     "nginx, curl and squid are needed")
class BenchTunnelPeers(unittest.TestCase):
    """`--peers proxyd,squid`: Squid (set up by bench/compare's code) tunnels the same
    transfers, is measured the same way, and is compared with proxyd's splice mode."""

    def test_squid_row_and_ratios(self):
        tmp = tempfile.mkdtemp(prefix="pd-tunnel-peers-")
        try:
            md = os.path.join(tmp, "tunnel.md")
            r = subprocess.run([sys.executable, TUNNEL, "--rounds", "1", "--size-mib", "4",
                                "--repeat", "2", "--small", "200", "--conns", "2",
                                "--peers", "proxyd,squid", "--proxyd", PROXYD, "--out", md],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr[-2000:])
            with open(os.path.join(tmp, "tunnel.json")) as f:
                result = json.load(f)
            runs = {(x["mode"], x["scenario"]): x for x in result["runs"]}
            self.assertEqual(runs[("squid", "bulk")]["bytes"], 2 * 2 * 4 * 1048576)
            self.assertEqual(runs[("squid", "small")]["bytes"], 2 * 200 * 4096)
            self.assertIsNone(runs[("squid", "bulk")]["spliced_share"])
            self.assertGreater(runs[("squid", "bulk")]["proxy_ms"] +
                               runs[("squid", "small")]["proxy_ms"], 0,
                               "Squid's CPU was not measured")
            self.assertRegex(r.stdout, r"\| bulk \| squid \| [0-9,]+ MiB/s")
            self.assertRegex(r.stdout, r"\| small \| squid \| [0-9.]+x \|")
            self.assertEqual(processes_mentioning(result["workdir"]), [])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
