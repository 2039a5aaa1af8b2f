"""A 15-second run of bench/soak (the full one lasts 10 minutes): hits, misses,
CONNECT, aborts, reloads and a worker SIGKILL, with zero failed or corrupted
requests, so that the soak harness and what it checks keep working."""

import os
import subprocess
import sys
import unittest

import pdtest


class SoakSmokeTest(unittest.TestCase):
    def test_short_soak(self):
        soak = os.path.join(pdtest.source_dir(), "bench", "soak")
        r = subprocess.run([sys.executable, soak, "--duration", "15", "--reload", "5", "--kill", "7",
                            "--clients", "4", "--proxyd", pdtest.proxyd_bin()],
                           capture_output=True, text=True, timeout=120)
        print(r.stdout)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-2000:])
        self.assertIn("failed: 0 ", r.stdout)
        self.assertIn("corrupted bodies: 0", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
