"""Forwarding through proxyd (issue 2): every method with and without bodies,
request rewriting (origin-form, Host, Via, X-Forwarded-For, hop-by-hop
removal), body framings both ways, HTTP/1.0 clients, keep-alive and the
upstream pool, `via off` / `forwarded_for delete`, the access log, and a real
curl through the proxy."""

import re
import shutil
import subprocess
import threading
import time
import unittest

import pdtest
from pdtest import Client, Reply, proxy_request

VIA_RE = re.compile(r"^1\.1 pdtest\.local \(proxyd/[^)\s]+\)$")
HOP_BY_HOP = ("connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
              "proxy-authorization", "x-hop", "x-hop2")


def echo_handler(req):
    """Answers with what it got, so the client side can check the body too."""
    return Reply(body=req.method.encode() + b" " + req.body, headers=[("X-Method", req.method)])


class ForwardTest(pdtest.SharedProxyTestCase):
    def test_methods_without_body(self):
        self.o.route("/m", echo_handler)
        # POST/PUT/PATCH with neither Content-Length nor Transfer-Encoding have
        # an empty body (RFC 9112 6.3)
        for method in ("GET", "HEAD", "DELETE", "OPTIONS", "POST", "PUT", "PATCH"):
            with self.subTest(method=method):
                # one URL per method: a cached GET must not answer the HEAD
                r = proxy_request(self.p, method, self.o.url("/m?x=" + method))
                self.assertEqual(r.status, 200)
                self.assertEqual(r.get("x-method"), method)
                self.assertEqual(r.body, b"" if method == "HEAD" else method.encode() + b" ")
                q = self.o.requests_for("/m")[-1]
                self.assertEqual((q.method, q.target, q.body), (method, "/m?x=" + method, b""))

    def test_methods_with_body(self):
        self.o.route("/m", echo_handler)
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            with self.subTest(method=method):
                body = ("%s body " % method).encode() * 100
                r = proxy_request(self.p, method, self.o.url("/m"), [("Content-Type", "text/plain")], body)
                self.assertEqual((r.status, r.body), (200, method.encode() + b" " + body))
                q = self.o.requests_for("/m")[-1]
                self.assertEqual((q.method, q.body, q.get("content-type")), (method, body, "text/plain"))
                self.assertEqual(q.get("content-length"), str(len(body)))

    def test_post_empty_body(self):
        self.o.route("/e", echo_handler)
        r = proxy_request(self.p, "POST", self.o.url("/e"), body=b"")
        self.assertEqual((r.status, r.body), (200, b"POST "))
        self.assertEqual(self.o.requests_for("/e")[0].body, b"")

    def test_request_rewrite(self):
        r = proxy_request(self.p, "GET", self.o.url("/path/a%20b?q=1&r=%2F"),
                          [("User-Agent", "pdtest"), ("Accept", "*/*"), ("X-Custom", "v1"), ("X-Custom", "v2")])
        self.assertEqual(r.status, 200)
        q = self.o.wait_requests(1)[0]
        self.assertEqual(q.target, "/path/a%20b?q=1&r=%2F")
        self.assertEqual(q.version, "HTTP/1.1")
        self.assertEqual(q.get_all("host"), [self.o.authority])
        self.assertRegex(q.get("via") or "", VIA_RE)
        self.assertEqual(q.get("x-forwarded-for"), "127.0.0.1")
        self.assertEqual((q.get("user-agent"), q.get("accept")), ("pdtest", "*/*"))
        self.assertEqual(q.get_all("x-custom"), ["v1", "v2"])

    def test_response_via(self):
        # the response to the client carries proxyd's Via too (RFC 9110 7.6.3), as Squid's does
        r = proxy_request(self.p, "GET", self.o.url("/rv"))
        self.assertEqual(r.status, 200)
        self.assertRegex(", ".join(r.get_all("via")), VIA_RE)

    def test_existing_via_and_xff_appended(self):
        proxy_request(self.p, "GET", self.o.url("/v"), [("Via", "1.0 upstream"), ("X-Forwarded-For", "10.1.2.3")])
        q = self.o.wait_requests(1)[0]
        via = ", ".join(q.get_all("via"))
        self.assertTrue(via.startswith("1.0 upstream, "), via)
        self.assertRegex(via.split(", ", 1)[1], VIA_RE)
        self.assertEqual(", ".join(q.get_all("x-forwarded-for")), "10.1.2.3, 127.0.0.1")

    def test_hop_by_hop_removed(self):
        self.o.route("/h", lambda q: Reply(body=b"hop", headers=[
            ("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "1"), ("Keep-Alive", "timeout=5"),
            ("X-Resp-End", "kept")]))
        r = proxy_request(self.p, "GET", self.o.url("/h"), [
            ("Connection", "keep-alive, X-Hop, x-hop2"), ("X-Hop", "1"), ("X-Hop2", "2"),
            ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"),
            ("Trailer", "X-T"), ("Upgrade", "websocket"), ("Proxy-Authorization", "Basic dTpw"),
            ("X-End", "kept")])
        self.assertEqual((r.status, r.body), (200, b"hop"))
        q = self.o.wait_requests(1)[0]
        self.assertEqual(q.get("x-end"), "kept")
        for name in HOP_BY_HOP:
            if name == "connection":
                # proxyd may send its own Connection: keep-alive/close
                for tok in ",".join(q.get_all("connection")).lower().split(","):
                    if tok.strip():
                        self.assertIn(tok.strip(), ("keep-alive", "close"),
                                      "Connection to origin: %r" % q.get_all("connection"))
                continue
            self.assertIsNone(q.get(name), "%s forwarded to the origin" % name)
        self.assertEqual(r.get("x-resp-end"), "kept")
        self.assertIsNone(r.get("x-resp-hop"), "a header listed in the origin's Connection reached the client")
        self.assertIsNone(r.get("keep-alive"), "origin's Keep-Alive reached the client")

    def test_chunked_request_body(self):
        self.o.route("/c", echo_handler)
        chunks = [b"first-", b"x" * 70000, b"-last"]
        r = proxy_request(self.p, "POST", self.o.url("/c"), body=chunks, chunked=True)
        self.assertEqual((r.status, r.body), (200, b"POST " + b"".join(chunks)))
        q = self.o.requests_for("/c")[0]
        self.assertEqual(q.body, b"".join(chunks))
        self.assertEqual(q.framing, "chunked", "a chunked request body should stay streamed (chunked) to the origin")

    def test_chunked_response(self):
        chunks = [b"a" * 10, b"b" * 100000, b"c"]
        self.o.route("/c", lambda q: Reply(chunks=chunks))
        r = proxy_request(self.p, "GET", self.o.url("/c"))
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertEqual(r.body, b"".join(chunks))
        self.assertEqual(r.framing, "chunked")
        self.assertFalse(r.closed, "a complete chunked response should keep the client connection")

    def test_content_length_both_ways(self):
        big = bytes(range(256)) * 4096  # 1 MiB
        self.o.route("/big", lambda q: Reply(body=big[::-1] if q.body == big else b"mismatch"))
        r = proxy_request(self.p, "PUT", self.o.url("/big"), body=big, timeout=30)
        self.assertEqual((r.status, r.framing, r.get("content-length")), (200, "length", str(len(big))))
        self.assertEqual(r.body, big[::-1])

    def test_close_delimited_response(self):
        body = b"z" * 200000
        self.o.route("/cd", lambda q: Reply(body=body, close_delimited=True))
        r = proxy_request(self.p, "GET", self.o.url("/cd"))
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        self.assertTrue(r.complete)

    def test_head_keeps_length(self):
        self.o.route("/hd", lambda q: Reply(body=b"12345678"))
        with Client(self.p) as c:
            r = c.request("HEAD", self.o.url("/hd"))
            self.assertEqual((r.status, r.body, r.get("content-length")), (200, b"", "8"))
            r = c.request("GET", self.o.url("/hd"))  # the HEAD left no stray bytes behind
            self.assertEqual(r.body, b"12345678")

    def test_http10_client(self):
        self.o.route("/c", lambda q: Reply(chunks=[b"chunk1", b"chunk2"]))
        r = proxy_request(self.p, "GET", self.o.url("/c"), version="HTTP/1.0", host=False)
        self.assertEqual(r.status, 200)
        self.assertNotEqual(r.framing, "chunked", "chunked sent to an HTTP/1.0 client")
        self.assertEqual(r.body, b"chunk1chunk2")
        self.assertTrue(r.closed, "HTTP/1.0 client without keep-alive: connection should close")
        q = self.o.wait_requests(1)[0]
        self.assertEqual(q.get("host"), self.o.authority)
        self.assertEqual(q.target, "/c")

    def test_http10_post(self):
        self.o.route("/p", echo_handler)
        r = proxy_request(self.p, "POST", self.o.url("/p"), body=b"data10", version="HTTP/1.0")
        self.assertEqual((r.status, r.body), (200, b"POST data10"))

    def test_keepalive_one_client_connection(self):
        with Client(self.p) as c:
            for i in range(5):
                r = c.request("GET", self.o.url("/k%d" % i))
                self.assertEqual((r.status, r.body, r.closed), (200, b"ok /k%d" % i, False))
        self.assertEqual(len(self.o.wait_requests(5)), 5)
        self.assertEqual(self.o.connections, 1, "5 requests on one client connection should reuse one origin connection")

    def test_client_connection_close(self):
        with Client(self.p) as c:
            r = c.request("GET", self.o.url("/cc"), [("Connection", "close")])
            self.assertEqual(r.status, 200)
            self.assertTrue(r.closed, "proxyd kept the connection after Connection: close")

    def test_pipelined_requests(self):
        with Client(self.p) as c:
            c.send(b"".join(c.build("GET", self.o.url("/pl%d" % i)) for i in range(3)))
            bodies = [c.read_response().body for _ in range(3)]
        self.assertEqual(bodies, [b"ok /pl0", b"ok /pl1", b"ok /pl2"])

    def test_origin_error_statuses_pass_through(self):
        self.o.route("/404", lambda q: Reply(404, body=b"nope"))
        self.o.route("/500", lambda q: Reply(500, body=b"boom"))
        self.o.route("/204", lambda q: Reply(204))
        self.o.route("/304", lambda q: Reply(304, headers=[("ETag", '"x"')]))
        with Client(self.p) as c:
            for path, status, body in (("/404", 404, b"nope"), ("/500", 500, b"boom"),
                                       ("/204", 204, b""), ("/304", 304, b"")):
                r = c.request("GET", self.o.url(path))
                self.assertEqual((r.status, r.body), (status, body), path)

    def test_expect_100_continue(self):
        self.o.route("/x", echo_handler)
        with Client(self.p) as c:
            c.send(c.build("POST", self.o.url("/x"), [("Expect", "100-continue"), ("Content-Length", "4")]))
            c.send(b"body")
            r = c.read_response("POST")
        self.assertEqual((r.status, r.body), (200, b"POST body"))


class PoolTest(pdtest.ProxyTestCase):
    def test_pool_across_client_connections(self):
        # one worker: the pool is per worker, and SO_REUSEPORT could spread
        # five connections over two workers
        p = self.proxy(workers=1)
        o = self.origin()
        for i in range(5):
            r = proxy_request(p, "GET", o.url("/s%d" % i))
            self.assertEqual(r.status, 200)
        self.assertEqual(len(o.wait_requests(5)), 5)
        self.assertEqual(o.connections, 1, "5 clients one after another should share one pooled origin connection")

    def test_idle_origin_connection_timeout(self):
        p = self.proxy(workers=1, conf_extra="pconn_timeout 1 second")
        o = self.origin()
        self.assertEqual(proxy_request(p, "GET", o.url("/i1")).status, 200)
        t0 = time.monotonic()
        # proxyd closes the idle pooled connection after pconn_timeout
        o.wait_for(lambda org: org.closed_connections >= 1, timeout=10, what="proxyd to close its idle origin connection")
        self.assertGreater(time.monotonic() - t0, 0.5)
        self.assertEqual(proxy_request(p, "GET", o.url("/i2")).status, 200)
        self.assertEqual(o.connections, 2)

    def test_pooled_connection_closed_by_origin(self):
        # the origin answers keep-alive, then closes the idle connection (as
        # servers do on their own idle timeout): the next request must not fail
        p = self.proxy(workers=1)
        o = self.origin()

        def answer_then_close(sock, req, origin):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce")
            return False
        o.route("/once", raw=answer_then_close)
        self.assertEqual(proxy_request(p, "GET", o.url("/once")).body, b"once")
        o.wait_for(lambda org: org.closed_connections >= 1, what="the origin to close")
        for i in range(3):
            r = proxy_request(p, "GET", o.url("/next%d" % i))
            self.assertEqual((r.status, r.body), (200, b"ok /next%d" % i))

    def test_reused_connection_dies_idempotent_retried(self):
        # the race every pool meets: the origin drops a kept-alive connection
        # just as proxyd sends the next request on it. A GET may be retried on a
        # new connection (RFC 9110 9.2.2) and must not become a 502.
        p = self.proxy(workers=1)
        o = self.origin()

        def answer_then_drop_next(sock, req, origin):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            req.reader.readline()  # the next request's first line arrives ...
            return False           # ... and the connection is closed unanswered
        o.route("/first", raw=answer_then_drop_next, before_body=True)
        with Client(p) as c:
            self.assertEqual(c.request("GET", o.url("/first")).body, b"first")
            r = c.request("GET", o.url("/second"))
        self.assertEqual((r.status, r.body), (200, b"ok /second"))
        self.assertEqual(o.connections, 2)

    def test_origin_close_not_reused(self):
        p = self.proxy(workers=1)
        o = self.origin()
        o.route("/close", lambda q: Reply(body=b"bye", close=True))
        with Client(p) as c:
            for i in range(3):
                r = c.request("GET", o.url("/close"))
                self.assertEqual((r.status, r.body), (200, b"bye"))
        self.assertEqual(o.connections, 3)

    def test_via_off_forwarded_for_delete(self):
        p = self.proxy(workers=1, conf_extra="via off\nforwarded_for delete")
        o = self.origin()
        r = proxy_request(p, "GET", o.url("/n"), [("X-Forwarded-For", "10.9.9.9")])
        self.assertEqual(r.status, 200)
        q = o.wait_requests(1)[0]
        self.assertIsNone(q.get("via"), "via off: no Via to the origin")
        self.assertIsNone(q.get("x-forwarded-for"), "forwarded_for delete: no X-Forwarded-For")

    def test_forwarded_for_off_and_truncate(self):
        for mode, want in (("off", "10.9.9.9, unknown"), ("truncate", "127.0.0.1"), ("transparent", "10.9.9.9")):
            with self.subTest(mode=mode):
                p = self.proxy(workers=1, conf_extra="forwarded_for %s" % mode)
                o = self.origin()
                proxy_request(p, "GET", o.url("/f"), [("X-Forwarded-For", "10.9.9.9")])
                q = o.wait_requests(1)[0]
                self.assertEqual(", ".join(q.get_all("x-forwarded-for")), want)

    def test_access_log_squid_format(self):
        p = self.proxy(workers=1)
        o = self.origin()
        o.route("/log", lambda q: Reply(body=b"x" * 1234, headers=[("Content-Type", "text/plain")]))
        proxy_request(p, "GET", o.url("/log?a=1"))
        proxy_request(p, "POST", o.url("/log"), body=b"abc")
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines()
        self.assertEqual(len(lines), 2, lines)
        # %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
        rx = re.compile(r"^\d{10}\.\d{3} +\d+ 127\.0\.0\.1 TCP_MISS/200 (\d+) (GET|POST) (\S+) - "
                        r"HIER_DIRECT/127\.0\.0\.1 text/plain$")
        m0, m1 = rx.match(lines[0]), rx.match(lines[1])
        self.assertTrue(m0 and m1, lines)
        self.assertEqual((m0.group(2), m0.group(3)), ("GET", o.url("/log?a=1")))
        self.assertGreater(int(m0.group(1)), 1234)  # headers + body bytes sent to the client
        self.assertEqual(m1.group(2), "POST")


class ConcurrencyTest(pdtest.ProxyTestCase):
    def test_concurrent_keepalive_clients(self):
        p = self.proxy(workers=2)
        o = self.origin()
        o.route("/c/*", echo_handler)
        errors = []

        def client(i):
            try:
                with Client(p, timeout=20) as c:
                    for j in range(5):
                        body = b"%d-%d " % (i, j) * (1 + 50 * j)
                        r = c.request("POST", o.url("/c/%d/%d" % (i, j)), body=body)
                        if (r.status, r.body) != (200, b"POST " + body):
                            errors.append((i, j, r))
            except Exception as e:  # collected and asserted below
                errors.append((i, repr(e)))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(o.wait_requests(200)), 200)
        self.assertLessEqual(o.connections, 80, "the pool should reuse origin connections")


class BackpressureTest(pdtest.ProxyTestCase):
    """A large response to a client that stops reading must stall the origin,
    not pile up in proxyd's memory (issue 2: a 1 GB response through a slow
    client must not grow proxyd's memory)."""

    BLOCK = bytes(range(256)) * 256  # 64 KiB
    COUNT = 1536                     # 96 MiB

    def check(self, chunked):
        p = self.proxy(workers=1)
        o = self.origin()
        o.route("/huge", lambda q: Reply(stream=(self.BLOCK, self.COUNT), chunked=chunked))
        self.assertEqual(proxy_request(p, "GET", o.url("/warm")).status, 200)
        worker = p.wait_workers(1)[0]
        rss0 = pdtest.rss_bytes(worker)
        total = len(self.BLOCK) * self.COUNT
        with Client(p, timeout=30) as c:
            c.send(c.build("GET", o.url("/huge")))
            self.assertRegex(c.rd.readline(), rb"^HTTP/1\.1 200 ")
            headers = pdtest.parse_fields(c.rd)
            # the client reads nothing more: the origin must be held back
            sent = pdtest.wait_stall(lambda: o.bytes_sent, quiet=0.7, timeout=20)
            rss = pdtest.rss_bytes(worker)
            self.assertLess(sent, total // 2, "origin sent %d of %d bytes to a client that reads nothing" % (sent, total))
            self.assertLess(rss - rss0, 32 << 20, "worker RSS grew by %d bytes" % (rss - rss0))
            # then the client drains it all, intact
            if chunked:
                self.assertEqual(pdtest._get(headers, "transfer-encoding"), "chunked")
                body, _, _ = pdtest.read_chunked(c.rd)
            else:
                self.assertEqual(pdtest._get(headers, "content-length"), str(total))
                body = c.rd.read(total)
        self.assertEqual(len(body), total)
        self.assertEqual(body[:len(self.BLOCK)], self.BLOCK)
        self.assertEqual(body[-len(self.BLOCK):], self.BLOCK)
        self.assertEqual(o.bytes_sent, total)

    def test_slow_origin_upload(self):
        p = self.proxy(workers=1)
        o = self.origin()
        total = len(self.BLOCK) * self.COUNT
        release = threading.Event()
        got = []

        def sink(sock, req, origin):
            # read nothing until told, then the whole body, then answer
            origin._wait_event(release, 60)
            got.append(len(req.reader.read(req.content_length)))
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True
        o.route("/upload", raw=sink, before_body=True)
        self.assertEqual(proxy_request(p, "GET", o.url("/warm")).status, 200)
        worker = p.wait_workers(1)[0]
        rss0 = pdtest.rss_bytes(worker)
        sent = [0]
        with Client(p, timeout=30) as c:
            c.send(c.build("POST", o.url("/upload"), [("Content-Length", str(total))]))

            def upload():
                try:
                    for _ in range(self.COUNT):
                        c.send(self.BLOCK)
                        sent[0] += len(self.BLOCK)
                except OSError:
                    pass
            t = threading.Thread(target=upload, daemon=True)
            t.start()
            o.wait_requests(1, path="/upload")
            stalled = pdtest.wait_stall(lambda: sent[0], quiet=0.7, timeout=20)
            rss = pdtest.rss_bytes(worker)
            self.assertLess(stalled, total // 2, "client could push %d of %d bytes to an origin that reads nothing" % (stalled, total))
            self.assertLess(rss - rss0, 32 << 20, "worker RSS grew by %d bytes" % (rss - rss0))
            release.set()
            t.join(60)
            r = c.read_response("POST")
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(got, [total])

    def test_slow_client_content_length(self):
        self.check(chunked=False)

    def test_slow_client_chunked(self):
        self.check(chunked=True)


class AccessLogFormatTest(pdtest.ProxyTestCase):
    """common and combined as Squid writes them (log/FormatHttpdCommon.cc and
    FormatHttpdCombined.cc): Apache's fields first, Squid's result code last."""

    CLF = r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET %s HTTP/1\.1" 200 (\d+)'

    def one_line(self, fmt):
        p = self.proxy(workers=1, access_log_format=fmt)
        o = self.origin()
        o.route("/f", lambda q: Reply(body=b"x" * 100))
        r = proxy_request(p, "GET", o.url("/f"), [("Referer", "http://ref.test/a"), ("User-Agent", "pdtest/1.0 (e2e)")])
        self.assertEqual(r.status, 200)
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines()
        self.assertEqual(len(lines), 1, lines)
        return lines[0], self.CLF % re.escape(o.url("/f"))

    def test_common(self):
        line, clf = self.one_line("common")
        self.assertRegex(line, clf + r" TCP_MISS:HIER_DIRECT$")

    def test_combined(self):
        line, clf = self.one_line("combined")
        self.assertRegex(line, clf + r' "http://ref\.test/a" "pdtest/1\.0 \(e2e\)" TCP_MISS:HIER_DIRECT$')


class CurlTest(pdtest.ProxyTestCase):
    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_curl_through_proxy(self):
        p = self.proxy(workers=2)
        o = self.origin()
        o.route("/x", lambda q: Reply(body=b"hello curl", headers=[("Content-Type", "text/plain")]))
        o.route("/post", echo_handler)
        proxy = "http://127.0.0.1:%d" % p.port
        out = subprocess.run(["curl", "-sS", "--fail", "--max-time", "20", "-x", proxy, o.url("/x"),
                              "--next", "-sS", "--fail", "--max-time", "20", "-x", proxy,
                              "-d", "field=value", o.url("/post")],
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, b"hello curlPOST field=value")
        reqs = o.wait_requests(2)
        for q in reqs:
            self.assertTrue((q.get("user-agent") or "").startswith("curl/"))
            self.assertRegex(q.get("via") or "", VIA_RE)
        self.assertEqual([q.method for q in reqs], ["GET", "POST"])


if __name__ == "__main__":
    pdtest.main()
