"""Request smuggling and desync (issue 8): every ambiguous or malformed
request is refused with a 4xx and the client connection closed, and the
origin, which records every byte it receives, never sees the rejected
request nor a second request smuggled behind it. Valid pipelined requests
are answered in order.

Each case is sent in one segment followed by a well-formed smuggled
request (GET /smuggled): a proxy that misjudged where the first message ends
would forward it."""

import time

import pdtest
from pdtest import Client, parse_response, raw

SMUGGLED = "/smuggled"


class SmugglingTest(pdtest.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.o = pdtest.Origin()
        cls.addClassCleanup(cls.o.stop)
        cls.p = pdtest.Proxy(workers=1, conf_extra="request_header_max_size 4 KB")
        cls.addClassCleanup(cls.p.close)
        cls.cases_run = 0

    def tearDown(self):
        self.assertIsNone(self.p.sanitizer_report(), "sanitizer report on proxyd stderr")
        self.assertTrue(self.p.alive(), "proxyd died")

    # -- helpers
    def head(self, method="POST", path="/x", version="HTTP/1.1", host=True):
        line = "%s %s %s\r\n" % (method, self.o.url(path), version)
        return line.encode() + (("Host: %s\r\n" % self.o.authority).encode() if host else b"")

    def smuggled(self):
        return b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url(SMUGGLED).encode(),
                                                          self.o.authority.encode())

    def assert_refused(self, name, data, statuses=(400,), forwarded_ok=False):
        """Send data + a smuggled request; expect one refusal and a close."""
        before = len(self.o.snapshot())
        before_conns = self.o.connections
        before_partial = len(self.o.partial)
        with Client(self.p, timeout=5) as c:
            c.send(data + self.smuggled())
            try:
                r = c.read_response()
            except (pdtest.Incomplete, pdtest.ProtocolError) as e:
                self.fail("%s: no valid response: %s" % (name, e))
            self.assertIn(r.status, statuses, "%s: %r %s" % (name, r, r.body[:200]))
            self.assertTrue(r.closed or c.is_closed(wait=5),
                            "%s: client connection left open after %d" % (name, r.status))
            rest = c.read_all()
            self.assertEqual(rest, b"", "%s: bytes after the error response" % name)
        got = self.o.snapshot()[before:]
        self.assertEqual([q.path for q in got if q.path == SMUGGLED], [],
                         "%s: the smuggled request reached the origin" % name)
        if not forwarded_ok:
            self.assertEqual(got, [], "%s: the origin received a refused request" % name)
            self.assertEqual(self.o.partial[before_partial:], [],
                             "%s: the origin received a partial request" % name)
            self.assertEqual(self.o.connections, before_conns,
                             "%s: proxyd connected to the origin for a refused request" % name)
        type(self).cases_run += 1
        return r

    def run_cases(self, cases, statuses=(400,)):
        for name, data in cases:
            with self.subTest(name):
                self.assert_refused(name, data, statuses)

    # -- Transfer-Encoding / Content-Length ambiguity
    def test_cl_te_and_te_cl(self):
        body = b"0\r\n\r\n"
        cases = [
            ("CL.TE", self.head() + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + body),
            ("TE.CL", self.head() + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + body),
            ("CL.TE body hides a request", self.head() + b"Content-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n"
             + body + b"GET /inner HTTP/1.1\r\nX: "),
            ("TE.CL zero length", self.head() + b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"
             + b"5\r\nhello\r\n0\r\n\r\n"),
        ]
        self.run_cases(cases)

    def test_te_obfuscation(self):
        cl = b"Content-Length: 5\r\n"
        te_values = [
            ("xchunked", b"Transfer-Encoding: xchunked\r\n"),
            ("chunkedx", b"Transfer-Encoding: chunkedx\r\n"),
            ("space before colon", b"Transfer-Encoding : chunked\r\n"),
            ("leading space (fold)", b"X-A: 1\r\n Transfer-Encoding: chunked\r\n"),
            ("tab before value", b"Transfer-Encoding:\tchunked\r\n"),
            ("uppercase", b"Transfer-Encoding: CHUNKED\r\n"),
            ("chunked, identity", b"Transfer-Encoding: chunked, identity\r\n"),
            ("identity", b"Transfer-Encoding: identity\r\n"),
            ("two TE lines", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"),
            ("chunked twice", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            ("chunked, chunked", b"Transfer-Encoding: chunked, chunked\r\n"),
            ("leading empty member", b"Transfer-Encoding: , chunked\r\n"),
            ("TE line then empty TE", b"Transfer-Encoding: chunked\r\nTransfer-Encoding:\r\n"),
            ("vertical tab", b"Transfer-Encoding: \x0bchunked\r\n"),
            ("form feed", b"Transfer-Encoding: chunked\x0c\r\n"),
            ("quoted", b"Transfer-Encoding: \"chunked\"\r\n"),
            ("folded value", b"Transfer-Encoding:\r\n chunked\r\n"),
            ("NUL in name", b"Transfer-Encoding\x00: chunked\r\n"),
            ("bare CR before", b"X-A: 1\rTransfer-Encoding: chunked\r\n"),
        ]
        chunked_body = b"5\r\nhello\r\n0\r\n\r\n"
        # with a Content-Length the message is ambiguous; without one a coding
        # that is not exactly one final "chunked" cannot be framed
        cases = [("%s + CL" % n, self.head() + te + cl + b"\r\n" + chunked_body) for n, te in te_values]
        cases += [("%s alone" % n, self.head() + te + b"\r\n" + chunked_body) for n, te in te_values
                  if n not in ("tab before value", "uppercase")]
        self.run_cases(cases, statuses=(400, 501))

    def test_te_variants_that_are_valid(self):
        # the same spellings without a Content-Length are valid chunked
        # framing (RFC 9112 6.1: case-insensitive, OWS): forwarded de-ambiguated
        for name, te in (("tab", b"Transfer-Encoding:\tchunked\r\n"), ("upper", b"Transfer-Encoding: CHUNKED\r\n")):
            with self.subTest(name):
                path = "/valid-te-" + name
                data = self.head(path=path) + te + b"\r\n5\r\nhello\r\n0\r\n\r\n"
                r = parse_response(raw(self.p, data, timeout=2))
                self.assertEqual(r.status, 200, r)
                got = self.o.requests_for(path)
                self.assertEqual(len(got), 1)
                self.assertEqual(got[0].body, b"hello")
                self.assertIsNone(got[0].get("content-length"))

    def test_invalid_content_length(self):
        cases = [("CL %r" % v, self.head() + b"Content-Length: " + v + b"\r\n\r\nhello")
                 for v in (b"+5", b"0x5", b"5 5", b"", b"-5", b"5.0", b"5a", b" ", b"1e1", b"\x005",
                           b"99999999999999999999999")]
        cases += [
            ("two CL lines, different", self.head() + b"Content-Length: 5\r\nContent-Length: 4\r\n\r\nhello"),
            ("two CL lines, same", self.head() + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
            ("CL list", self.head() + b"Content-Length: 5,5\r\n\r\nhello"),
            ("CL space before colon", self.head() + b"Content-Length : 5\r\n\r\nhello"),
        ]
        self.run_cases(cases, statuses=(400, 413))

    def test_chunk_sizes_and_extensions(self):
        te = b"Transfer-Encoding: chunked\r\n\r\n"
        bodies = [
            ("size overflow", b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
            ("negative size", b"-5\r\nhello\r\n0\r\n\r\n"),
            ("hex prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
            ("junk after size", b"5g\r\nhello\r\n0\r\n\r\n"),
            ("space in size", b"5 5\r\nhello\r\n0\r\n\r\n"),
            ("empty size", b"\r\nhello\r\n0\r\n\r\n"),
            ("size plus sign", b"+5\r\nhello\r\n0\r\n\r\n"),
            ("data longer than size", b"3\r\nhello\r\n0\r\n\r\n"),
            ("data shorter than size", b"7\r\nhello\r\n0\r\n\r\n"),
            ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
            ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
            ("bare CR after size", b"5\rhello\r\n0\r\n\r\n"),
            ("NUL in extension", b"5;a\x00b\r\nhello\r\n0\r\n\r\n"),
            ("LF in extension", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
            ("bad extension name", b"5;=x\r\nhello\r\n0\r\n\r\n"),
            ("unterminated quoted ext", b"5;a=\"b\r\nhello\r\n0\r\n\r\n"),
            ("quote in token ext value", b"5;a=b\"\r\nhello\r\n0\r\n\r\n"),
            ("extension without value", b"5;a=\r\nhello\r\n0\r\n\r\n"),
            ("2 KB extension", b"5;a=" + b"x" * 2048 + b"\r\nhello\r\n0\r\n\r\n"),
            ("last chunk without CRLF then request", b"0\r\nGET /x HTTP/1.1\r\n\r\n"),
            ("trailer with bare LF", b"5\r\nhello\r\n0\r\nX: y\n\r\n"),
            ("trailer obs-fold", b"5\r\nhello\r\n0\r\nX: y\r\n z\r\n\r\n"),
        ]
        cases = [(n, self.head() + te + b) for n, b in bodies]
        self.run_cases(cases)

    def test_long_chunk_extension(self):
        # a chunk extension is not data: 1 MB of it is refused early, not
        # buffered; the origin never sees the request.
        ext = b";" + b"a" * (1 << 20)
        data = self.head(path="/long-ext") + b"Transfer-Encoding: chunked\r\n\r\n5" + ext + b"\r\nhello\r\n0\r\n\r\n"
        before = pdtest.rss_bytes(pdtest.children_of(self.p.pid)[0])
        with Client(self.p, timeout=10) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.read_response()
        print("long chunk extension: %d, worker RSS %+d KB" % (
            r.status, (pdtest.rss_bytes(pdtest.children_of(self.p.pid)[0]) - before) // 1024))
        self.assertEqual(r.status, 400, r)
        self.assertEqual(self.o.requests_for("/long-ext"), [])

    # -- line ends, folding, control bytes
    def test_line_ends_and_control_bytes(self):
        t = self.o.url("/x").encode()
        h = self.o.authority.encode()
        cases = [
            ("bare LF request line", b"GET %s HTTP/1.1\nHost: %s\r\n\r\n" % (t, h)),
            ("bare LF header", b"GET %s HTTP/1.1\r\nHost: %s\nX: y\r\n\r\n" % (t, h)),
            ("bare LF end of head", b"GET %s HTTP/1.1\r\nHost: %s\r\n\n" % (t, h)),
            ("bare CR request line", b"GET %s HTTP/1.1\rHost: %s\r\n\r\n" % (t, h)),
            ("bare CR in value", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\rb\r\n\r\n" % (t, h)),
            ("obs-fold", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\r\n b\r\n\r\n" % (t, h)),
            ("obs-fold tab", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\r\n\tb\r\n\r\n" % (t, h)),
            ("space before first header", b"GET %s HTTP/1.1\r\n Host: %s\r\n\r\n" % (t, h)),
            ("NUL in name", b"GET %s HTTP/1.1\r\nHost: %s\r\nX\x00Y: a\r\n\r\n" % (t, h)),
            ("NUL in value", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\x00b\r\n\r\n" % (t, h)),
            ("ESC in value", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\x1b[2Jb\r\n\r\n" % (t, h)),
            ("DEL in value", b"GET %s HTTP/1.1\r\nHost: %s\r\nX: a\x7fb\r\n\r\n" % (t, h)),
            ("control in name", b"GET %s HTTP/1.1\r\nHost: %s\r\nX\x01: a\r\n\r\n" % (t, h)),
            ("space in name", b"GET %s HTTP/1.1\r\nHost: %s\r\nX Y: a\r\n\r\n" % (t, h)),
            ("empty name", b"GET %s HTTP/1.1\r\nHost: %s\r\n: a\r\n\r\n" % (t, h)),
            ("no colon", b"GET %s HTTP/1.1\r\nHost: %s\r\nJustAName\r\n\r\n" % (t, h)),
            ("non-ASCII name", b"GET %s HTTP/1.1\r\nHost: %s\r\nX\xc3\xa9: a\r\n\r\n" % (t, h)),
            ("NUL in request line", b"GET %s\x00 HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, h)),
        ]
        self.run_cases(cases)

    # -- Host, target, method, version
    def test_host_and_target(self):
        t = self.o.url("/x").encode()
        h = self.o.authority.encode()
        # RFC 9112 3.2.2: with an absolute-form target the received Host is
        # ignored; the origin gets the URL's authority, never the client's Host
        for name, host in (("Host disagrees with absolute-form", b"evil.example"),
                           ("Host other port", b"127.0.0.1:1")):
            with self.subTest(name):
                path = "/host-" + host.decode()
                data = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url(path).encode(), host)
                with Client(self.p, timeout=5) as c:
                    c.send(data)
                    self.assertEqual(c.read_response().status, 200)
                self.assertEqual([q.get_all("host") for q in self.o.requests_for(path)],
                                 [[self.o.authority]])
        cases = [
            ("two Host lines", b"GET %s HTTP/1.1\r\nHost: %s\r\nHost: %s\r\n\r\n" % (t, h, h)),
            ("two Host lines, second evil", b"GET %s HTTP/1.1\r\nHost: %s\r\nHost: evil\r\n\r\n" % (t, h)),
            ("Host list", b"GET %s HTTP/1.1\r\nHost: %s, evil\r\n\r\n" % (t, h)),
            ("no Host in HTTP/1.1", b"GET %s HTTP/1.1\r\nX: y\r\n\r\n" % t),
            ("space in target", b"GET %s/a b HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, h)),
            ("two spaces after method", b"GET  %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, h)),
            ("target with raw DEL", b"GET %s\x7f HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, h)),
            ("origin-form through a proxy", b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % h),
            ("asterisk-form GET", b"GET * HTTP/1.1\r\nHost: %s\r\n\r\n" % h),
            ("https absolute-form", b"GET https://%s/x HTTP/1.1\r\nHost: %s\r\n\r\n" % (h, h)),
        ]
        for name, data in cases:
            with self.subTest(name):
                self.assert_refused(name, data)

    def test_methods(self):
        t = self.o.url("/x").encode()
        h = self.o.authority.encode()
        self.run_cases([("method %r" % m, b"%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (m, t, h))
                        for m in (b"G@T", b"GE(T", b"GET\x00", b"\x00GET", b"G\xc3\xa9T", b"[GET]",
                                  b"GET:", b"GET\t")])
        # a well-formed token that is no method we know is an extension
        # method (RFC 9110 16.1): forwarded as it came, framed like any other,
        # and nothing smuggled behind it
        for m in (b"FOO", b"get", b"SMUGGLE"):
            with self.subTest(method=m):
                path = "/ext-" + m.decode()
                data = b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % (
                    m, self.o.url(path).encode(), h)
                with Client(self.p, timeout=5) as c:
                    c.send(data + self.smuggled())
                    r1 = c.read_response(m.decode())
                    r2 = c.read_response()
                self.assertEqual((r1.status, r1.body), (200, ("ok " + path).encode()))
                self.assertEqual((r2.status, r2.body), (200, b"ok " + SMUGGLED.encode()))
                got = self.o.requests_for(path)
                self.assertEqual([(q.method, q.body) for q in got], [(m.decode(), b"hello")])
        # a token over 64 bytes is no method anyone registered: 501
        self.run_cases([("long method", b"%s %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (b"M" * 65, t, h))],
                       statuses=(501,))

    def test_versions(self):
        t = self.o.url("/x").encode()
        h = self.o.authority.encode()
        # 505 for a request of another version: another major (RFC 9110 15.6.6)
        # or HTTP/0.9 (a request line without one); anything else that is not
        # HTTP/DIGIT.DIGIT is a malformed request line, and so is the h2
        # preface on an HTTP/1.1 port: 400
        cases = [
            ("HTTP/0.9 (no version)", b"GET %s\r\nHost: %s\r\n\r\n" % (t, h), 505),
            ("HTTP/2.0", b"GET %s HTTP/2.0\r\nHost: %s\r\n\r\n" % (t, h), 505),
            ("HTTP/3.0", b"GET %s HTTP/3.0\r\nHost: %s\r\n\r\n" % (t, h), 505),
            ("HTTP/1.1.1", b"GET %s HTTP/1.1.1\r\nHost: %s\r\n\r\n" % (t, h), 400),
            ("http/1.1 lowercase", b"GET %s http/1.1\r\nHost: %s\r\n\r\n" % (t, h), 400),
            ("HTTP/01.1", b"GET %s HTTP/01.1\r\nHost: %s\r\n\r\n" % (t, h), 400),
            ("HTTP/1", b"GET %s HTTP/1\r\nHost: %s\r\n\r\n" % (t, h), 400),
            ("HTTP/1.1 trailing space", b"GET %s HTTP/1.1 \r\nHost: %s\r\n\r\n" % (t, h), 400),
            ("PRI (h2 preface)", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        ]
        for name, data, status in cases:
            with self.subTest(name):
                self.assert_refused(name, data, (status,))

    def test_http_1_2(self):
        # RFC 9110 2.5: a request of a higher minor version than the recipient
        # implements is processed as HTTP/1.1 (SHOULD). Its syntax is valid
        # (RFC 9112 2.3: HTTP/DIGIT.DIGIT), so no 400, and 505 is for a major
        # version (RFC 9110 15.6.6). proxyd answers 200 and forwards HTTP/1.1.
        t = self.o.url("/v12").encode()
        h = self.o.authority.encode()
        with Client(self.p) as c:
            c.send(b"GET %s HTTP/1.2\r\nHost: %s\r\n\r\n" % (t, h))
            r = c.read_response()
        self.assertEqual((r.status, r.version, r.body), (200, "HTTP/1.1", b"ok /v12"), r)
        self.assertEqual([q.version for q in self.o.requests_for("/v12")], ["HTTP/1.1"])

    def test_overlong_request_line_and_head(self):
        # request_header_max_size 4 KB: an over-long target, an over-long
        # header and too many headers all get the same answer, whether the
        # bytes arrive at once or in pieces.
        h = self.o.authority.encode()
        long_target = b"GET %s?%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/long").encode(), b"q" * 8000, h)
        long_header = self.head("GET", "/long") + b"X-Big: " + b"b" * 8000 + b"\r\n\r\n"
        many = self.head("GET", "/long") + b"".join(b"X-%d: v\r\n" % i for i in range(600)) + b"\r\n"
        seen = {}
        for name, data in (("long target", long_target), ("long header", long_header),
                           ("many headers", many)):
            for split in (False, True):
                with self.subTest(name, split=split):
                    with Client(self.p, timeout=5) as c:
                        try:
                            if split:
                                for i in range(0, len(data), 1000):
                                    c.send(data[i:i + 1000])
                            else:
                                c.send(data)
                        except (BrokenPipeError, ConnectionResetError):
                            pass
                        r = c.read_response()
                        self.assertTrue(r.closed or c.is_closed(wait=5), "%s: not closed" % name)
                    seen[(name, split)] = r.status
        print("over-long heads answered with: %s" % seen)
        # 414 when the target is what is long (RFC 9110 15.5.15), 431 for the
        # fields, whatever the split
        self.assertEqual(seen, {(n, split): 414 if n == "long target" else 431
                                for n in ("long target", "long header", "many headers")
                                for split in (False, True)})
        self.assertEqual(self.o.requests_for("/long"), [])
        self.assertEqual([q for q in self.o.partial if q.path == "/long"], [])

    # -- desync after a valid request
    def test_bad_request_after_valid_one(self):
        good = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/first").encode(), self.o.authority.encode())
        bad = self.head() + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        with Client(self.p) as c:
            c.send(good + bad + self.smuggled())
            r1 = c.read_response()
            self.assertEqual(r1.status, 200)
            self.assertEqual(r1.body, b"ok /first")
            r2 = c.read_response()
            self.assertEqual(r2.status, 400)
            self.assertTrue(r2.closed or c.is_closed(wait=5))
        self.assertEqual([q.path for q in self.o.snapshot() if q.path in ("/first", SMUGGLED, "/x")], ["/first"])

    def test_pipelined_valid_requests_in_order(self):
        h = self.o.authority.encode()
        reqs = [
            b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/p1").encode(), h),
            b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 5\r\n\r\nhello" % (self.o.url("/p2").encode(), h),
            b"PUT %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n" % (
                self.o.url("/p3").encode(), h),
            b"HEAD %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (self.o.url("/p4").encode(), h),
            b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (self.o.url("/p5").encode(), h),
        ]
        methods = ["GET", "POST", "PUT", "HEAD", "GET"]
        with Client(self.p) as c:
            c.send(b"".join(reqs))
            rs = [c.read_response(m) for m in methods]
            self.assertTrue(c.is_closed(wait=5), "Connection: close not honoured")
        self.assertEqual([r.status for r in rs], [200] * 5)
        for i, r in enumerate(rs):
            if methods[i] != "HEAD":
                self.assertTrue(r.body.startswith(b"ok ") and r.body.endswith(b"/p%d" % (i + 1)), (i, r.body))
        got = [q for q in self.o.snapshot() if q.path in ("/p1", "/p2", "/p3", "/p4", "/p5")]
        self.assertEqual([q.path for q in got], ["/p1", "/p2", "/p3", "/p4", "/p5"])
        self.assertEqual(got[1].body, b"hello")
        self.assertEqual(got[2].body, b"abcde")
        self.assertEqual(self.o.errors, [])

    @classmethod
    def tearDownClass(cls):
        print("\nsmuggling: %d refused cases checked" % cls.cases_run)


if __name__ == "__main__":
    pdtest.main()
