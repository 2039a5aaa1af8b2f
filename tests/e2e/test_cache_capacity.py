"""Cache capacity (issue 20), through the real binary with curl as the client:
with cache_mem 16 MB, 5,000 distinct 2 KB objects fetched twice are (nearly) all
hits on the second pass, where 16 KB pages held ~1,000; and under the default
policy a hot set of 300 objects asked four times survives a one-pass scan of
20,000 others. Hits are counted at the origin (requests it did not get) and
checked against proxyd's own counters and its memory overhead gauges."""

import subprocess

import pdtest
from pdtest import Reply
from test_ops import Admin, metric

SIZE = 2048


class CapacityTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/c/*", lambda q: Reply(body=b"x" * SIZE,
                                              headers=[("Cache-Control", "max-age=600")]))

    def tearDown(self):
        self.assertNoOriginErrors(self.o)

    def fetch(self, p, paths):
        """GET every path through the proxy with one curl (keep-alive, in order);
        asserts every body arrived whole."""
        cfg = "".join('url = "%s"\n' % self.o.url(x) for x in paths)
        r = subprocess.run(["curl", "-s", "-f", "--noproxy", "", "-x", "http://%s:%d" % (pdtest.HOST, p.port),
                            "-K", "-"], input=cfg.encode(), capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr[-500:])
        self.assertEqual(len(r.stdout), SIZE * len(paths), "short bodies")

    def origin_count(self, prefix):
        return len([q for q in self.o.snapshot() if q.path.startswith(prefix)])

    def test_5000_small_objects_in_16_mb(self):
        p = self.proxy(workers=1, conf_extra="cache_mem 16 MB\nadmin_port 127.0.0.1:0")
        paths = ["/c/cap/%d" % i for i in range(5000)]
        self.fetch(p, paths)
        self.assertEqual(self.origin_count("/c/cap/"), 5000)
        self.fetch(p, paths)
        misses = self.origin_count("/c/cap/") - 5000
        print("capacity: %d of 5000 hit on the second pass" % (5000 - misses))
        self.assertLessEqual(misses, 500, "second pass: %d of 5000 hit" % (5000 - misses))
        m = Admin(p).wait_metric(5000 - misses, "proxyd_cache_hits_total")
        objects = metric(m, "proxyd_cache_objects")
        self.assertGreaterEqual(objects, 4500)
        # an object costs its bytes plus a record and rounding: ~2.3 KB stored
        # (key, head, body), well under a 512-byte block and a record more
        stored = metric(m, "proxyd_cache_stored_bytes")
        self.assertGreater(stored, objects * SIZE)
        overhead = metric(m, "proxyd_cache_object_overhead_bytes")
        self.assertGreater(overhead, 0)
        self.assertLess(overhead, 512 + 256)
        print("objects %d, stored %d bytes, overhead per object %d bytes" % (objects, stored, overhead))

    def test_hot_set_survives_a_scan(self):
        p = self.proxy(workers=1, conf_extra="cache_mem 16 MB")
        hot = ["/c/hot/%d" % i for i in range(300)]
        for _ in range(4):
            self.fetch(p, hot)
        self.assertEqual(self.origin_count("/c/hot/"), 300)
        self.fetch(p, ["/c/scan/%d" % i for i in range(20000)])
        self.assertEqual(self.origin_count("/c/scan/"), 20000)
        self.fetch(p, hot)
        refetched = self.origin_count("/c/hot/") - 300
        print("scan: %d of the 300 hot objects hit after the scan" % (300 - refetched))
        self.assertLessEqual(refetched, 30, "only %d of the 300 survived the scan" % (300 - refetched))


if __name__ == "__main__":
    pdtest.main()
