"""The cache manager as Squid's tools reach it (issue 13): the real squidclient
(`squidclient mgr:PAGE` sends `GET cache_object://HOST/PAGE`) on the http_port,
allowed and denied by the `manager` acl; the pages monitoring scripts read
carry real figures (they move with the traffic) or say plainly that a figure
is not kept."""

import re
import shutil
import subprocess
import threading
import unittest

import pdtest
from pdtest import Reply, proxy_request, wait_until

SQUIDCLIENT = shutil.which("squidclient")


def counter(text, name):
    m = re.search(r"(?m)^%s = (\d+)$" % re.escape(name), text)
    assert m, "no %s in:\n%s" % (name, text)
    return int(m.group(1))


@unittest.skipIf(not SQUIDCLIENT, "squidclient not installed (apt-get install squidclient)")
class SquidclientTest(pdtest.ProxyTestCase):
    def mgr(self, p, page):
        """(status, body) of squidclient mgr:page against p's http_port."""
        r = subprocess.run([SQUIDCLIENT, "-h", "127.0.0.1", "-p", str(p.port), "-T", "10",
                            "mgr:" + page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        head, _, body = r.stdout.partition("\n\n")  # text mode: CRLF read as LF
        m = re.match(r"HTTP/1\.[01] (\d{3})", head)
        self.assertTrue(m, "squidclient: %r %r" % (r.stdout, r.stderr))
        return int(m.group(1)), body

    def test_info_and_counters_follow_the_traffic(self):
        o = self.origin()
        p = self.proxy(workers=2, conf_extra="http_access allow localhost manager\n"
                       "http_access deny manager")
        st, before = self.mgr(p, "counters")
        self.assertEqual(st, 200)
        for i in range(3):
            self.assertEqual(proxy_request(p, "GET", o.url("/c%d" % i)).status, 200)
        st, after = self.mgr(p, "counters")
        self.assertEqual(st, 200)
        # the origin saw exactly 3; the manager pages never reach it
        self.assertEqual(counter(after, "server.all.requests") - counter(before, "server.all.requests"), 3)
        self.assertGreaterEqual(counter(after, "client_http.requests") - counter(before, "client_http.requests"), 3)
        self.assertEqual(len(o.requests), 3)
        st, info = self.mgr(p, "info")
        self.assertEqual(st, 200)
        m = re.search(r"Number of HTTP requests received:\t(\d+)", info)
        self.assertTrue(m, info)
        self.assertGreaterEqual(int(m.group(1)), 3)
        # the manager's requests are logged like any other (Squid does too)
        self.assertTrue(any("cache_object://" in l or "squid-internal-mgr" in l
                            for l in p.access_lines()))

    def test_client_list_and_active_requests(self):
        o = self.origin()
        release = threading.Event()
        o.route("/slow", lambda q: Reply(body="late", wait=release))
        p = self.proxy(workers=1)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=proxy_request(p, "GET", o.url("/slow"), timeout=20)))
        t.start()
        try:
            wait_until(lambda: len(o.partial) + len(o.requests) >= 1 or o.connections >= 1,
                       what="the slow request at the origin")
            st, body = self.mgr(p, "active_requests")
            self.assertEqual(st, 200)
            self.assertIn("uri %s" % o.url("/slow"), body)
            self.assertIn("cache_object://127.0.0.1/active_requests", body)
            self.assertEqual(len(re.findall(r"(?m)^Connection: ", body)), 2, body)
            st, body = self.mgr(p, "client_list")
            self.assertEqual(st, 200)
            m = re.search(r"Address: 127\.0\.0\.1\nName: +127\.0\.0\.1\n"
                          r"Currently established connections: (\d+)", body)
            self.assertTrue(m, body)
            self.assertEqual(int(m.group(1)), 2, "the held request's and squidclient's")
        finally:
            release.set()
            t.join(20)
        self.assertEqual(result["r"].status, 200)
        st, body = self.mgr(p, "active_requests")
        self.assertNotIn("/slow", body)

    def test_pages_are_real_or_say_not_available(self):
        o = self.origin()
        dns = self.dns({"www.test": ("127.0.0.1", 60)})
        p = self.proxy(workers=1, dns=dns)
        self.assertEqual(proxy_request(p, "GET", o.url("/d", host="www.test")).status, 200)
        # workers pass their DNS counts to the shared counters once a second
        def ipcache():
            st, body = self.mgr(p, "ipcache")
            self.assertEqual(st, 200)
            return int(re.search(r"IPcache Misses: (\d+)", body).group(1)) >= 1 and body
        body = wait_until(ipcache, what="the lookup in mgr:ipcache", interval=0.2)
        self.assertGreaterEqual(int(re.search(r"IPcache Requests: (\d+)", body).group(1)), 1)
        self.assertEqual(int(re.search(r"IPcache Misses: (\d+)", body).group(1)),
                         dns.queries("www.test", 1))
        # the master samples the counters at start and once a minute: a run shorter
        # than the window is measured from the first sample, and the page says so
        st, counters = self.mgr(p, "counters")
        total = counter(counters, "client_http.requests")
        for page, minutes in (("5min", 5), ("60min", 60)):
            st, body = self.mgr(p, page)
            self.assertEqual(st, 200)
            self.assertIn("proxyd has run for less than %d minutes: since its first sample" % minutes,
                          body)
            t0 = float(re.search(r"sample_start_time = ([\d.]+)", body).group(1))
            t1 = float(re.search(r"sample_end_time = ([\d.]+)", body).group(1))
            rate = float(re.search(r"client_http.requests = ([\d.]+)/sec", body).group(1))
            # requests in the window: all of them (the first sample is from before any),
            # the counters page's count and the manager requests made since
            n = rate * (t1 - t0)
            self.assertGreaterEqual(n, total - 0.01, body)
            self.assertLessEqual(n, total + 3.01, body)
            srv = float(re.search(r"server.all.requests = ([\d.]+)/sec", body).group(1))
            self.assertAlmostEqual(srv * (t1 - t0), 1.0, delta=0.01, msg="one request reached the origin")
            total += 1
        st, body = self.mgr(p, "utilization")
        self.assertEqual(st, 200)
        for section in ("Last 5 minutes:", "Last hour:", "Totals since cache startup:"):
            self.assertIn(section, body)
        self.assertIn("not available: proxyd keeps samples for an hour", body)
        st, body = self.mgr(p, "mem")
        self.assertEqual(st, 200)
        pids = p.worker_pids()
        self.assertTrue(any(re.search(r"(?m)^\d+\t\d+\t%d\t[1-9]\d*$" % pid, body) for pid in pids),
                        body)
        st, body = self.mgr(p, "fqdncache")
        self.assertEqual(st, 200)
        self.assertIn("not available", body)
        st, body = self.mgr(p, "menu")
        for page in ("info", "counters", "client_list", "active_requests", "mem"):
            self.assertIn(" %s " % page, body)
        self.assertEqual(self.mgr(p, "nonesuch")[0], 404)

    def test_denied_client(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="acl admins src 10.0.0.0/8\n"
                       "http_access allow admins manager\nhttp_access deny manager")
        st, body = self.mgr(p, "info")
        self.assertEqual(st, 403)
        self.assertNotIn("Number of HTTP requests", body)
        # the rest of the proxy still serves the same client
        self.assertEqual(proxy_request(p, "GET", o.url("/ok")).status, 200)
        self.assertEqual(len(o.requests), 1)


if __name__ == "__main__":
    pdtest.main()
