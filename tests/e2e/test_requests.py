"""Request handling as RFC 9112 and Squid do it (issue 13): an absolute-form
request's Host is made from its URL whatever the client sent (httperf), error
pages carry Date, a conditional request answered by a fresh stored object is
logged TCP_IMS_HIT / TCP_INM_HIT and counted as a hit, extension methods are
forwarded (curl) and never cached, a too-long URL is 414, PURGE is answered by
the proxy as Squid does (curl, squidclient)."""

import email.utils
import shutil
import subprocess
import time
import unittest

import pdtest
from pdtest import Client, Reply, parse_response, proxy_request, raw
from cachetest import log_codes
from test_ops import ADMIN, Admin, metric

MAX60 = ("Cache-Control", "max-age=60")


def http_date_ok(value):
    """Is value an IMF-fixdate (RFC 9110 5.6.7) within a minute of now?"""
    if value is None or not value.endswith(" GMT") or len(value) != 29:
        return False
    t = email.utils.parsedate_to_datetime(value).timestamp()
    return abs(t - time.time()) < 60


class HostTest(pdtest.ProxyTestCase):
    def test_host_regenerated_from_the_url(self):
        o = self.origin()
        p = self.proxy(workers=1)
        # RFC 9112 3.2.2: the received Host is ignored, the origin gets the URL's authority
        for host in ("other.test", "127.0.0.1", "%s" % o.authority, "localhost:1"):
            with self.subTest(host=host):
                r = proxy_request(p, "GET", o.url("/h"), [("Host", host)])
                self.assertEqual((r.status, r.body), (200, b"ok /h"), r)
        got = o.requests_for("/h")
        self.assertEqual([q.get_all("host") for q in got], [[o.authority]] * 4)
        self.assertNoOriginErrors(o)

    def test_repeated_or_malformed_host_still_refused(self):
        o = self.origin()
        p = self.proxy(workers=1)
        t, h = o.url("/bad").encode(), o.authority.encode()
        for name, fields in (("two Host lines", b"Host: %s\r\nHost: %s\r\n" % (h, h)),
                             ("userinfo", b"Host: u@%s\r\n" % h),
                             ("a path", b"Host: %s/x\r\n" % h),
                             ("bad port", b"Host: 127.0.0.1:99999\r\n")):
            with self.subTest(name):
                r = parse_response(raw(p, b"GET %s HTTP/1.1\r\n%s\r\n" % (t, fields)))
                self.assertEqual(r.status, 400, r)
        self.assertEqual(o.requests_for("/bad"), [])

    @unittest.skipUnless(shutil.which("httperf"), "httperf is not installed")
    def test_httperf(self):
        # httperf sends "GET http://origin/path" with "Host: <its --server>": the proxy's name
        o = self.origin()
        o.route("/perf", lambda q: Reply(body=b"p" * 100))
        p = self.proxy(workers=1)
        out = subprocess.run(["httperf", "--server", "127.0.0.1", "--port", str(p.port),
                              "--uri", o.url("/perf"), "--num-conns", "3", "--num-calls", "4",
                              "--timeout", "10"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("Total: connections 3 requests 12 replies 12 ", out.stdout, out.stdout)
        self.assertIn("Reply status: 1xx=0 2xx=12 3xx=0 4xx=0 5xx=0", out.stdout, out.stdout)
        got = o.requests_for("/perf")
        self.assertEqual(len(got), 12)
        self.assertEqual({q.get("host") for q in got}, {o.authority})


class ErrorPageTest(pdtest.ProxyTestCase):
    def test_error_pages_carry_date(self):
        p = self.proxy(workers=1, conf_extra="acl no dstdomain denied.test\nhttp_access deny no")
        cases = (
            ("malformed request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            ("denied", b"GET http://denied.test/ HTTP/1.1\r\nHost: denied.test\r\n\r\n", 403),
            ("connect failed", b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: x\r\n\r\n" % pdtest.closed_port(), 502),
            ("HEAD", b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        )
        for name, data, status in cases:
            with self.subTest(name):
                method = data.split(b" ", 1)[0].decode()
                # Connection: close, so that raw() has the whole answer at the close
                data = data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
                r = parse_response(raw(p, data), method)
                self.assertEqual(r.status, status, r)
                self.assertTrue(http_date_ok(r.get("date")), r.get("date"))
                self.assertEqual(len(r.get_all("date")), 1)


def curl(proxy, *args):
    """curl through the proxy: (status, body)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % proxy.port,
                          "-o", "-", "-w", "\n%{http_code}"] + list(args),
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body


class MethodTest(pdtest.ProxyTestCase):
    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_extension_methods_forwarded_with_curl(self):
        o = self.origin()
        o.route("/dav/*", lambda q: Reply(207, body=b"%s %d" % (q.method.encode(), len(q.body)),
                                          reason="Multi-Status", headers=[MAX60]))
        p = self.proxy(workers=1, conf_extra=ADMIN)
        a = Admin(p)
        cases = (("PROPFIND", ["--data-binary", "<propfind/>", "-H", "Depth: 1"], 11),
                 ("MKCOL", [], 0),
                 ("REPORT", ["--data-binary", "<report/>", "-H", "Transfer-Encoding: chunked"], 9),
                 ("LINK", ["-H", "Link: <http://a/>"], 0),
                 ("FROB-X.1", ["--data-binary", "abc"], 3))
        for method, args, blen in cases:
            with self.subTest(method):
                path = "/dav/" + method.lower()
                for _ in range(2):  # never answered from the cache
                    status, body = curl(p, "-X", method, *args, o.url(path))
                    self.assertEqual((status, body), (207, b"%s %d" % (method.encode(), blen)))
                got = o.requests_for(path)
                self.assertEqual([(q.method, len(q.body)) for q in got], [(method, blen)] * 2)
        self.assertEqual(o.requests_for("/dav/report")[0].body, b"<report/>")
        self.assertEqual(o.requests_for("/dav/report")[0].framing, "chunked")
        self.assertNoOriginErrors(o)
        lines = p.wait_access_lines(10)
        self.assertEqual([l.split()[5] for l in lines], [m for m, _, _ in cases for _ in range(2)])
        self.assertEqual({l.split()[3] for l in lines}, {"TCP_MISS/207"})
        s = a.wait_metric(10, "proxyd_requests_total", method="OTHER")
        self.assertEqual(metric(s, "proxyd_cache_hits_total"), 0)

    def test_extension_method_invalidates_the_stored_url(self):
        # an unknown method is unsafe (RFC 9111 4.4): a 2xx to it invalidates the URL
        o = self.origin()
        o.route("/inv", lambda q: Reply(body=b"v%d" % len(o.requests_for("/inv")), headers=[MAX60]))
        p = self.proxy(workers=1)
        self.assertEqual(proxy_request(p, "GET", o.url("/inv")).body, b"v1")
        self.assertEqual(proxy_request(p, "GET", o.url("/inv")).body, b"v1")
        self.assertEqual(proxy_request(p, "FROB", o.url("/inv")).status, 200)
        self.assertEqual(proxy_request(p, "GET", o.url("/inv")).body, b"v3")
        self.assertEqual([q.method for q in o.requests_for("/inv")], ["GET", "FROB", "GET"])


class UriTooLongTest(pdtest.ProxyTestCase):
    def test_414(self):
        # the limit of a request line is request_header_max_size (default 64 KB):
        # a target that does not end within it is 414, long fields are 431
        o = self.origin()
        p = self.proxy(workers=1)
        small = self.proxy(workers=1, conf_extra="request_header_max_size 2 KB")
        base = o.url("/long?")
        r = proxy_request(p, "GET", base + "q" * 12000)
        self.assertEqual(r.status, 200, r)
        r = proxy_request(small, "GET", base + "q" * 1900)
        self.assertEqual(r.status, 200, r)
        for name, proxy, url in (("over the default 64 KB", p, base + "q" * 70000),
                                 ("over request_header_max_size 2 KB", small, base + "q" * 3000)):
            with self.subTest(name):
                r = parse_response(raw(proxy, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url.encode()))
                self.assertEqual((r.status, r.reason), (414, "URI Too Long"), r)
                self.assertEqual(r.get("x-squid-error"), "ERR_TOO_BIG 0")
                self.assertEqual(r.get("connection"), "close")
        r = parse_response(raw(small, b"GET %s HTTP/1.1\r\nHost: x\r\nX: %s\r\n\r\n" % (
            o.url("/long").encode(), b"x" * 3000)))
        self.assertEqual(r.status, 431, r)
        self.assertEqual(len(o.requests_for("/long")), 2)
        self.assertEqual(p.wait_access_lines(2)[1].split()[3], "NONE_NONE/414")


PURGE_CONF = "acl purge method PURGE\nhttp_access allow purge localhost\nhttp_access deny purge"


def squidclient_purge(proxy, url):
    """squidclient -m PURGE: the status it printed."""
    out = subprocess.run(["squidclient", "-h", "127.0.0.1", "-p", str(proxy.port), "-m", "PURGE", url],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return parse_response(out.stdout, "PURGE").status


class PurgeTest(pdtest.ProxyTestCase):
    def cached_origin(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"body of " + q.path.encode(), headers=[MAX60]))
        return o

    def gets(self, o, path):
        return len([q for q in o.requests_for(path) if q.method == "GET"])

    @unittest.skipUnless(shutil.which("curl") and shutil.which("squidclient"), "needs curl and squidclient")
    def test_purge_with_curl_and_squidclient(self):
        o = self.cached_origin()
        o.route("/vary", lambda q: Reply(body=b"lang " + (q.get("accept-language") or "").encode(),
                                         headers=[MAX60, ("Vary", "Accept-Language")]))
        p = self.proxy(workers=1, conf_extra=PURGE_CONF)
        url = o.url("/p")
        for _ in range(2):
            self.assertEqual(proxy_request(p, "GET", url).body, b"body of /p")
        self.assertEqual(proxy_request(p, "HEAD", url).status, 200)
        self.assertEqual(self.gets(o, "/p"), 1, "the test needs a stored object")
        # curl: 200, then the object is gone for GET and HEAD alike
        status, body = curl(p, "-X", "PURGE", url)
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(proxy_request(p, "HEAD", url).status, 200)
        self.assertEqual(len(o.requests_for("/p")), 2, "HEAD after PURGE went to the origin")
        self.assertEqual(proxy_request(p, "GET", url).status, 200)
        # squidclient: 200 for what is stored, 404 once nothing is
        self.assertEqual(squidclient_purge(p, url), 200)
        self.assertEqual(squidclient_purge(p, url), 404)
        self.assertEqual(curl(p, "-X", "PURGE", o.url("/never-fetched"))[0], 404)
        # every Vary variant goes with the URL
        for lang in ("en", "fr"):
            for _ in range(2):
                r = proxy_request(p, "GET", o.url("/vary"), [("Accept-Language", lang)])
                self.assertEqual(r.body, b"lang " + lang.encode())
        self.assertEqual(self.gets(o, "/vary"), 2, "the test needs two stored variants")
        self.assertEqual(squidclient_purge(p, o.url("/vary")), 200)
        for lang in ("en", "fr"):
            proxy_request(p, "GET", o.url("/vary"), [("Accept-Language", lang)])
        self.assertEqual(self.gets(o, "/vary"), 4, "a variant outlived the PURGE of its URL")
        # the origin never sees a PURGE; the log has them as the proxy's answers
        self.assertEqual([q for q in o.snapshot() if q.method == "PURGE"], [])
        lines = [l.split() for l in p.access_lines() if l.split()[5] == "PURGE"]
        self.assertEqual([(f[3], f[8]) for f in lines],
                         [("NONE_NONE/200", "HIER_NONE/-"), ("NONE_NONE/200", "HIER_NONE/-"),
                          ("NONE_NONE/404", "HIER_NONE/-"), ("NONE_NONE/404", "HIER_NONE/-"),
                          ("NONE_NONE/200", "HIER_NONE/-")])

    def test_purge_needs_an_acl_and_http_access(self):
        o = self.cached_origin()
        # no acl names PURGE: refused even with "http_access allow all" (Squid)
        for conf in ("", "acl purge method PURGE\nhttp_access deny purge"):
            with self.subTest(conf=conf):
                p = self.proxy(workers=1, conf_extra=conf)
                url = o.url("/d%d" % len(conf))
                self.assertEqual(proxy_request(p, "GET", url).status, 200)
                r = proxy_request(p, "PURGE", url)
                self.assertEqual((r.status, r.get("x-squid-error")), (403, "ERR_ACCESS_DENIED 0"))
                self.assertEqual(proxy_request(p, "GET", url).status, 200)
                self.assertEqual(self.gets(o, "/d%d" % len(conf)), 1, "a refused PURGE removed the object")
                self.assertRegex(p.wait_access_lines(3)[1], r" TCP_DENIED/403 \d+ PURGE ")
        self.assertEqual([q for q in o.snapshot() if q.method == "PURGE"], [])

    def test_purge_allowed_by_a_dst_acl(self):
        # http_access decides only once the destination is resolved: still never forwarded
        o = self.cached_origin()
        p = self.proxy(workers=1, conf_extra="acl purge method PURGE\nacl here dst 127.0.0.1\n"
                                              "http_access allow purge here\nhttp_access deny purge")
        url = o.url("/dst")
        self.assertEqual(proxy_request(p, "GET", url).status, 200)
        self.assertEqual(proxy_request(p, "PURGE", url).status, 200)
        self.assertEqual(proxy_request(p, "PURGE", url).status, 404)
        self.assertEqual([q.method for q in o.snapshot()], ["GET"])


class ConditionalHitTest(pdtest.ProxyTestCase):
    def test_conditional_hit_logged_and_counted(self):
        o = self.origin()
        lm = email.utils.formatdate(time.time() - 3600, usegmt=True)
        o.route("/c", lambda q: Reply(body=b"cached body", headers=[MAX60, ("Last-Modified", lm),
                                                                    ("ETag", '"v1"')]))
        p = self.proxy(workers=1, conf_extra=ADMIN)
        a = Admin(p)
        url = o.url("/c")
        self.assertEqual(proxy_request(p, "GET", url).status, 200)
        now = email.utils.formatdate(time.time(), usegmt=True)
        r = proxy_request(p, "GET", url, [("If-Modified-Since", now)])
        self.assertEqual((r.status, r.body), (304, b""))
        r = proxy_request(p, "GET", url, [("If-None-Match", '"v1"')])
        self.assertEqual((r.status, r.body), (304, b""))
        r = proxy_request(p, "GET", url, [("If-None-Match", '"v1"'), ("If-Modified-Since", now)])
        self.assertEqual((r.status, r.body), (304, b""))
        # a condition that does not hold: the stored object, a plain hit
        r = proxy_request(p, "GET", url, [("If-None-Match", '"v0"')])
        self.assertEqual((r.status, r.body), (200, b"cached body"))
        self.assertEqual(len(o.requests_for("/c")), 1)
        self.assertEqual(log_codes(p, url, 5),
                         ["TCP_MISS", "TCP_IMS_HIT", "TCP_INM_HIT", "TCP_IMS_HIT", "TCP_MEM_HIT"])
        self.assertEqual([l.split()[3] for l in p.access_lines()][1:4], ["TCP_IMS_HIT/304", "TCP_INM_HIT/304",
                                                                         "TCP_IMS_HIT/304"])
        s = a.wait_metric(5, "proxyd_request_duration_seconds_count")
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_IMS_HIT"), 2)
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_INM_HIT"), 1)
        self.assertEqual(metric(s, "proxyd_cache_hits_total"), 4)
        self.assertEqual(metric(s, "proxyd_cache_misses_total"), 1)
        # the cache manager's counters page counts them as hits too
        status, _, counters = a.get("/squid-internal-mgr/counters")
        self.assertEqual(status, 200)
        self.assertIn("\nclient_http.hits = 4\n", counters)


if __name__ == "__main__":
    pdtest.main()
