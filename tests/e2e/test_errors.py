"""Error handling of proxyd (issue 2): 400 for origin-form requests and
malformed or smuggling requests (the origin sees nothing), 503 for DNS
failure (Squid's ERR_DNS_FAIL), 502 for a refused connection and an origin closing early, 504 for an origin
that never answers, and truncated responses when the origin dies mid-body."""

import time

import pdtest
from pdtest import Client, Reply, parse_response, proxy_request, raw


def assert_error_page(tc, r, status):
    tc.assertEqual(r.status, status, r)
    tc.assertIn("text/html", r.get("content-type") or "", "error pages are HTML")
    tc.assertIn(b"<html", r.body.lower())
    tc.assertTrue(r.complete)


class BadRequestTest(pdtest.ProxyTestCase):
    maxDiff = None
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.dnsd = self.dns({"origin.test": ("127.0.0.1", 60)})
        self.p = self.proxy(workers=1, dns=self.dnsd)

    def bad(self, data, name, must_close=True):
        with Client(self.p) as c:
            c.send(data)
            try:
                r = c.read_response()
            except (pdtest.Incomplete, pdtest.ProtocolError) as e:
                self.fail("%s: no valid response: %s" % (name, e))
            self.assertEqual(r.status, 400, "%s: %r" % (name, r))
            if must_close:  # the stream can't be trusted after a framing error
                self.assertTrue(r.closed or c.is_closed(wait=5), "%s: connection should close after a 400" % name)
        return r

    def check_origin_untouched(self):
        # A good request afterwards proves proxyd moved on; the origin must
        # have received that one only.
        r = proxy_request(self.p, "GET", self.o.url("/sentinel"))
        self.assertEqual(r.status, 200)
        self.assertEqual([q.path for q in self.o.snapshot()], ["/sentinel"])
        self.assertEqual(["%s %s %r" % (q.method, q.target, q.headers) for q in self.o.partial], [],
                         "origin received the head of a rejected request")

    def test_origin_form_to_proxy(self):
        r = self.bad(b"GET /some/path HTTP/1.1\r\nHost: %s\r\n\r\n" % self.o.authority.encode(), "origin-form",
                     must_close=False)
        assert_error_page(self, r, 400)
        self.check_origin_untouched()

    def test_smuggling_and_malformed(self):
        a = self.o.url("/x").encode()
        h = self.o.authority.encode()
        cases = {
            "CL+TE": b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "TE+CL": b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            "two Content-Lengths": b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
            "Content-Length list": b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5, 6\r\n\r\nabcdef",
            "obs-fold": b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Folded: a\r\n  b\r\n\r\n",
            "space before colon": b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Bad : a\r\n\r\n",
            "negative CL": b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: -1\r\n\r\n",
            "TE not chunked": b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            "NUL in header": b"GET %s HTTP/1.1\r\nHost: %s\r\nX-A: a\x00b\r\n\r\n",
        }
        for name, tmpl in cases.items():
            with self.subTest(name):
                self.bad(tmpl % (a, h), name)
        self.check_origin_untouched()

    def test_bad_chunk_size(self):
        # the whole request, head and bad body, arrives in one segment: proxyd
        # can see it is bad before it contacts the origin
        for size in (b"zz", b"-1", b"1 2", b"fffffffffffffffffff"):
            with self.subTest(size=size):
                self.bad(b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\nabc\r\n0\r\n\r\n" % (
                    self.o.url("/x").encode(), self.o.authority.encode(), size), "bad chunk size %r" % size)
        self.check_origin_untouched()

    def test_bad_version(self):
        # a valid HTTP-version of a major version proxyd does not speak: 505 (RFC 9110 15.6.6)
        r = parse_response(raw(self.p, b"GET %s HTTP/9.9\r\nHost: x\r\n\r\n" % self.o.url("/v").encode()))
        self.assertEqual(r.status, 505, r)
        self.check_origin_untouched()

    def test_header_too_large(self):
        huge = b"X-Big: " + b"a" * (100 * 1024) + b"\r\n"
        out = raw(self.p, b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (self.o.url("/big").encode(), huge))
        r = parse_response(out)
        self.assertIn(r.status, (400, 431), r)
        self.check_origin_untouched()

    def test_garbage(self):
        out = raw(self.p, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage-not-http\r\n\r\n")
        if out:  # a 400 or a plain close are both fine; a crash is not
            self.assertEqual(parse_response(out).status, 400)
        self.check_origin_untouched()


class UpstreamErrorTest(pdtest.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dnsd = pdtest.DnsServer({"origin.test": ("127.0.0.1", 60)})
        cls.addClassCleanup(cls.dnsd.stop)
        cls.shared = pdtest.Proxy(workers=2, dns=cls.dnsd, conf_extra="read_timeout 2 seconds")
        cls.addClassCleanup(cls.shared.close)

    def setUp(self):
        super().setUp()
        self.p = self.shared
        self.o = self.origin()

    def tearDown(self):
        self.assertIsNone(self.p.sanitizer_report(), "sanitizer report on proxyd stderr")
        self.assertTrue(self.p.alive(), "proxyd master died")

    def test_503_nxdomain(self):
        r = proxy_request(self.p, "GET", "http://no-such-host.test:%d/x" % self.o.port)
        assert_error_page(self, r, 503)
        self.assertEqual(r.get("x-squid-error"), "ERR_DNS_FAIL 0")
        self.assertGreaterEqual(self.dnsd.queries("no-such-host.test"), 1)
        self.assertEqual(self.o.connections, 0)

    def test_502_connection_refused(self):
        r = proxy_request(self.p, "GET", "http://127.0.0.1:%d/x" % pdtest.closed_port())
        assert_error_page(self, r, 502)

    def test_502_origin_closes_before_responding(self):
        self.o.route("/slam", raw=lambda sock, req, origin: False)
        r = proxy_request(self.p, "GET", self.o.url("/slam"))
        assert_error_page(self, r, 502)

    def test_502_origin_sends_garbage(self):
        self.o.route("/junk", lambda q: Reply(garbage=b"SPLAT\r\n\r\n"))
        r = proxy_request(self.p, "GET", self.o.url("/junk"))
        assert_error_page(self, r, 502)

    def test_504_origin_never_answers(self):
        self.o.route("/never", lambda q: Reply(never=True))
        t0 = time.monotonic()
        r = proxy_request(self.p, "GET", self.o.url("/never"), timeout=20)
        elapsed = time.monotonic() - t0
        assert_error_page(self, r, 504)
        self.assertGreaterEqual(elapsed, 1.5, "504 before read_timeout (2 s) elapsed")
        self.assertLess(elapsed, 10, "read_timeout 2 seconds not honoured")

    def test_truncated_content_length(self):
        self.o.route("/die", lambda q: Reply(body=b"d" * 100000, die_after=30000))
        with Client(self.p) as c:
            r = c.request("GET", self.o.url("/die"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.get("content-length"), "100000")
        self.assertFalse(r.complete, "a truncated body was completed")
        self.assertTrue(r.closed)
        self.assertEqual(r.body, b"d" * 30000)

    def test_truncated_chunked(self):
        self.o.route("/die", lambda q: Reply(chunks=[b"c" * 50000], die_after=20000))
        with Client(self.p) as c:
            r = c.request("GET", self.o.url("/die"))
        self.assertEqual((r.status, r.framing), (200, "chunked"))
        self.assertFalse(r.complete, "proxyd sent the terminating chunk for a truncated body")
        self.assertTrue(r.closed)
        # the 20000 bytes the origin sent before it closed reach the client, and no more
        self.assertEqual(r.body, b"c" * 20000)

    def test_truncated_then_proxy_still_serves(self):
        self.o.route("/die", lambda q: Reply(body=b"d" * 5000, die_after=10))
        with Client(self.p) as c:
            self.assertFalse(c.request("GET", self.o.url("/die")).complete)
        self.assertEqual(proxy_request(self.p, "GET", self.o.url("/ok")).body, b"ok /ok")


if __name__ == "__main__":
    pdtest.main()
