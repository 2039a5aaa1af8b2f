"""Response-side faults (issue 8): an origin that closes mid-head or
mid-body, sends garbage, sends more than its Content-Length, stalls or
resets. The client gets a 502/504 when nothing was sent yet, otherwise a
visibly truncated message (closed before the full length, or no last
chunk); a truncated object is never stored (every response here says
Cache-Control: max-age=60, and a second request must reach the origin)."""

import socket
import struct
import threading
import time

import pdtest
from pdtest import Client, Reply, proxy_request

CACHEABLE = [("Cache-Control", "max-age=60")]
BODY = bytes(range(256)) * 40   # 10240 bytes


def rst_close(sock):
    """Close with a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultTest(pdtest.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        cls.p = pdtest.Proxy(workers=1, conf_extra="""
            read_timeout 2 seconds
            cache_mem 16 MB""")
        cls.addClassCleanup(cls.p.close)

    def setUp(self):
        super().setUp()
        self.o = self.origin()

    def tearDown(self):
        self.assertIsNone(self.p.sanitizer_report(), "sanitizer report on proxyd stderr")
        self.assertTrue(self.p.alive(), "proxyd died")

    def get(self, path, timeout=10):
        return proxy_request(self.p, "GET", self.o.url(path), timeout=timeout)

    def assert_not_cached(self, path):
        """A second GET must reach the origin again (served whole this time)."""
        n_before = len(self.o.requests_for(path))
        self.o.route(path, lambda req: Reply(body=BODY, headers=CACHEABLE))
        r = self.get(path)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, BODY)
        self.assertEqual(len(self.o.requests_for(path)), n_before + 1,
                         "%s: the truncated object was served from the cache" % path)

    def assert_502(self, path, status=502):
        r = self.get(path)
        self.assertEqual(r.status, status, r)
        self.assertIn("text/html", r.get("content-type") or "")
        self.assertTrue(r.complete)
        return r

    # -- control: a whole cacheable response IS cached, so the checks below mean something
    def test_control_complete_response_is_cached(self):
        self.o.route("/whole", lambda req: Reply(body=BODY, headers=CACHEABLE))
        for _ in range(2):
            r = self.get("/whole")
            self.assertEqual((r.status, r.body), (200, BODY))
        self.assertEqual(len(self.o.requests_for("/whole")), 1, "control: cache does not store")

    # -- nothing sent to the client yet: an error page
    def test_close_mid_head(self):
        self.o.route("/midhead", lambda req: Reply(garbage=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nCache-Con"))
        self.assert_502("/midhead")
        self.assert_not_cached("/midhead")

    def test_close_before_any_byte(self):
        self.o.route("/nothing", lambda req: Reply(garbage=b""))
        self.assert_502("/nothing")

    def test_garbage_status_line(self):
        for name, junk in (("text", b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
                           ("binary", b"\x00\x01\x02\xff" * 50),
                           ("bad status", b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
                           ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
                           ("bare LF head", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
                           ("CL and TE", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
                           ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok"),
                           ("negative CL", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok"),
                           ("two CLs", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
                           ("CL overflow", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok"),
                           ("TE gzip only", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\nok"),
                           ("huge head", b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100000 + b"\r\nContent-Length: 2\r\n\r\nok"),
                           ("NUL in reason", b"HTTP/1.1 200 O\x00K\r\nContent-Length: 2\r\n\r\nok"),
                           ("HTTP/0.9 body", b"<html>hello</html>")):
            with self.subTest(name):
                path = "/garbage-" + name.replace(" ", "-")
                self.o.route(path, lambda req, junk=junk: Reply(garbage=junk))
                self.assert_502(path)

    def test_stall_before_head_504(self):
        self.o.route("/stall", lambda req: Reply(never=True))
        t0 = time.monotonic()
        self.assert_502("/stall", 504)
        took = time.monotonic() - t0
        print("stall: 504 after %.2fs (read_timeout 2 seconds)" % took)
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6)

    def test_interim_flood(self):
        # 200 interim responses before the final one: skipped, bounded
        def flood(sock, req, origin):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" * 100 + b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 100
                         + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
            return True
        self.o.route("/interim", raw=flood)
        r = self.get("/interim")
        self.assertEqual((r.status, r.body), (200, b"final"))

    def test_bad_chunk_after_head(self):
        # the head and a first chunk are good and already at the client when
        # a bad chunk size comes: the response is cut (no last chunk), and
        # it is not cached. The bad chunk waits for the client to have the
        # first one, so the proxy cannot see it before it sent the head.
        first_chunk_seen = threading.Event()

        def bad(sock, req, origin):
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n"
                         b"5\r\nhello\r\n")
            if not first_chunk_seen.wait(10):
                return False
            sock.sendall(b"zz\r\nworld\r\n0\r\n\r\n")
            return True
        self.o.route("/badchunk", raw=bad)
        with Client(self.p) as c:
            c.send(c.build("GET", self.o.url("/badchunk")))
            while b"hello\r\n" not in c.rd.buf:
                self.assertTrue(c.rd.fill(), "closed before the first chunk: %r" % bytes(c.rd.buf))
            first_chunk_seen.set()
            r = c.read_response()
        self.assertEqual((r.status, r.framing, r.body), (200, "chunked", b"hello"), r)
        self.assertFalse(r.complete, r)
        self.assertTrue(r.closed, r)
        self.assert_not_cached("/badchunk")

    # -- the head was sent: the client must see the truncation
    def test_close_mid_body_content_length(self):
        self.o.route("/cut-cl", lambda req: Reply(body=BODY, headers=CACHEABLE, die_after=3000))
        r = self.get("/cut-cl")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.framing, "length")
        self.assertFalse(r.complete, "truncated body delivered as complete: %r" % r)
        self.assertTrue(r.closed)
        self.assertEqual(r.body, BODY[:len(r.body)])
        self.assertLess(len(r.body), len(BODY))
        self.assert_not_cached("/cut-cl")

    def test_close_mid_body_chunked(self):
        self.o.route("/cut-chunked", lambda req: Reply(body=BODY, headers=CACHEABLE, chunked=True, die_after=3000))
        r = self.get("/cut-chunked")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.framing, "chunked")
        self.assertFalse(r.complete, "no last chunk expected: %r" % r)
        self.assertTrue(r.closed)
        self.assertEqual(r.body, BODY[:len(r.body)])
        self.assert_not_cached("/cut-chunked")

    def test_stall_mid_body(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def stall(sock, req, origin):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=60\r\n\r\n" % len(BODY))
            sock.sendall(BODY[:1000])
            gate.wait(10)
            return False
        self.o.route("/stall-body", raw=stall)
        t0 = time.monotonic()
        r = self.get("/stall-body")
        took = time.monotonic() - t0
        print("stall mid-body: closed after %.2fs with %d of %d bytes" % (took, len(r.body), len(BODY)))
        self.assertFalse(r.complete)
        self.assertTrue(r.closed)
        self.assertLess(took, 6)
        gate.set()
        self.assert_not_cached("/stall-body")

    def test_reset_before_head(self):
        def reset(sock, req, origin):
            rst_close(sock)
            return False
        self.o.route("/rst-head", raw=reset)
        self.assert_502("/rst-head")
        self.assert_not_cached("/rst-head")

    def test_reset_during_body(self):
        for framing in ("length", "chunked"):
            with self.subTest(framing):
                path = "/rst-body-" + framing

                def reset(sock, req, origin, framing=framing):
                    if framing == "length":
                        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=60\r\n\r\n"
                                     % len(BODY) + BODY[:2000])
                    else:
                        sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                     b"Cache-Control: max-age=60\r\n\r\n7d0\r\n" + BODY[:2000] + b"\r\n")
                    # let proxyd read what was sent before the reset
                    origin._stop.wait(0.2)
                    rst_close(sock)
                    return False
                self.o.route(path, raw=reset)
                r = self.get(path)
                self.assertEqual(r.status, 200)
                self.assertFalse(r.complete, r)
                self.assertTrue(r.closed)
                self.assertEqual(r.body, BODY[:len(r.body)])
                self.assert_not_cached(path)

    def test_more_body_than_content_length(self):
        # the origin sends 5 bytes more than it announced and keeps the
        # connection: the client gets exactly Content-Length bytes, and the
        # extra bytes are never read as the next response
        def extra(sock, req, origin):
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"
                         b"Content-Length: 8\r\n\r\nsmuggled")
            return True
        self.o.route("/extra", raw=extra)
        self.o.route("/next", lambda req: Reply(body=b"the real next"))
        with Client(self.p) as c:
            r = c.request("GET", self.o.url("/extra"))
            self.assertEqual((r.status, r.body, r.complete), (200, b"hello", True))
            r2 = c.request("GET", self.o.url("/next"))
            self.assertEqual((r2.status, r2.body), (200, b"the real next"), r2)
        first = self.o.requests_for("/extra")[0]
        nxt = self.o.requests_for("/next")
        self.assertEqual(len(nxt), 1)
        self.assertNotEqual(nxt[0].conn, first.conn, "origin connection reused after extra bytes")
        # a fresh client too
        r3 = self.get("/next")
        self.assertEqual(r3.body, b"the real next")

    def test_more_body_than_content_length_closed(self):
        # same, the origin closing afterwards
        self.o.route("/extra-close", lambda req: Reply(raw_head=b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                                                       b"Cache-Control: max-age=60\r\n\r\n",
                                                       body=b"abcdefgh", close=True))
        r = self.get("/extra-close")
        self.assertEqual((r.status, r.body, r.complete), (200, b"abc", True))


if __name__ == "__main__":
    pdtest.main()
