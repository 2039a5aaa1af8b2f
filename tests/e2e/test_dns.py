"""Name resolution in proxyd (issue 2): names resolved through the configured
dns_nameservers, answers cached for their TTL, failures cached briefly, and a
silent DNS server turned into an error response."""

import threading

import pdtest
from pdtest import Reply, proxy_request


class DnsTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        # Connection: close on every answer: nothing is pooled, so each
        # request has to resolve the name again (from the cache or not)
        self.o.route("/*", lambda q: Reply(body=b"dns " + q.path.encode(), close=True))
        self.d = self.dns({"origin.test": ("127.0.0.1", 60), "short.test": ("127.0.0.1", 1)})

    def test_resolved_through_dns_server(self):
        p = self.proxy(workers=1, dns=self.d)
        r = proxy_request(p, "GET", "http://origin.test:%d/a" % self.o.port)
        self.assertEqual((r.status, r.body), (200, b"dns /a"))
        q = self.o.wait_requests(1)[0]
        self.assertEqual(q.get("host"), "origin.test:%d" % self.o.port)
        self.assertGreaterEqual(self.d.queries("origin.test", qtype=1), 1)

    def test_cached_within_ttl(self):
        p = self.proxy(workers=1, dns=self.d)
        self.assertEqual(proxy_request(p, "GET", "http://origin.test:%d/1" % self.o.port).status, 200)
        n = self.d.queries("origin.test")
        self.assertGreaterEqual(n, 1)
        for i in range(3):
            self.assertEqual(proxy_request(p, "GET", "http://origin.test:%d/%d" % (self.o.port, i + 2)).status, 200)
        self.assertEqual(self.o.connections, 4, "the test needs a new origin connection per request")
        self.assertEqual(self.d.queries("origin.test"), n, "a cached answer was asked again within its TTL")

    def test_expired_ttl_asks_again(self):
        p = self.proxy(workers=1, dns=self.d)
        self.assertEqual(proxy_request(p, "GET", "http://short.test:%d/1" % self.o.port).status, 200)
        n = self.d.queries("short.test", qtype=1)
        threading.Event().wait(1.6)  # the thing under test is time: let the 1 s TTL run out
        self.assertEqual(proxy_request(p, "GET", "http://short.test:%d/2" % self.o.port).status, 200)
        self.assertGreater(self.d.queries("short.test", qtype=1), n, "an expired answer was used")

    def test_failure_cached(self):
        p = self.proxy(workers=1, dns=self.d)
        r = proxy_request(p, "GET", "http://nx.test/")
        self.assertEqual((r.status, r.get("x-squid-error")), (503, "ERR_DNS_FAIL 0"))
        n = self.d.queries("nx.test")
        self.assertGreaterEqual(n, 1)
        self.assertEqual(proxy_request(p, "GET", "http://nx.test/").status, 503)
        self.assertEqual(self.d.queries("nx.test"), n, "an NXDOMAIN was asked again at once (negative cache)")

    def test_dns_timeout(self):
        # a silent server: 503 ERR_DNS_FAIL as Squid answers, once dns_timeout
        # (the whole budget of a lookup, retransmissions included) ran out;
        # the client's own timeout is the bound, nothing is timed
        self.d.drop = {"slow.test"}
        p = self.proxy(workers=1, dns=self.d, conf_extra="dns_timeout 1 second")
        r = proxy_request(p, "GET", "http://slow.test:%d/" % self.o.port)
        self.assertEqual((r.status, r.get("x-squid-error")), (503, "ERR_DNS_FAIL 0"), r)
        self.assertIn(b"DNS lookup timed out", r.body)
        self.assertGreaterEqual(self.d.queries("slow.test"), 1)
        self.assertEqual(self.o.connections, 0)
        self.assertRegex(p.wait_access_lines(1)[0], r" TCP_MISS/503 \d+ GET http://slow\.test:")


if __name__ == "__main__":
    pdtest.main()
