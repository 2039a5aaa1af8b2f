"""Self-tests of pdtest: the scripted origin, DNS and echo servers and the
strict client, checked against each other (no proxyd involved), so that a
failure in the proxy tests is a proxyd failure and not a harness one."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

import pdtest
from pdtest import Client, Reply, parse_response, raw


class OriginTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()

    def test_keepalive_and_records(self):
        self.o.route("/a", lambda req: Reply(body=b"hello", headers=[("X-A", "1")]))
        with Client(self.o.port) as c:
            for i in range(3):
                r = c.request("GET", "/a?i=%d" % i, [("Host", self.o.authority)])
                self.assertEqual((r.status, r.body, r.get("x-a")), (200, b"hello", "1"))
                self.assertFalse(r.closed)
        reqs = self.o.wait_requests(3)
        self.assertEqual(self.o.connections, 1)
        self.assertEqual([q.target for q in reqs], ["/a?i=0", "/a?i=1", "/a?i=2"])
        self.assertEqual(reqs[0].get("host"), self.o.authority)
        self.assertEqual({q.conn for q in reqs}, {1})

    def test_pipelined(self):
        with Client(self.o.port) as c:
            c.send(b"".join(c.build("GET", "/p%d" % i, [("Host", "x")]) for i in range(3)))
            bodies = [c.read_response().body for _ in range(3)]
        self.assertEqual(bodies, [b"ok /p0", b"ok /p1", b"ok /p2"])

    def test_request_bodies(self):
        with Client(self.o.port) as c:
            r1 = c.request("POST", "/cl", [("Host", "x")], body=b"x" * 1000)
            r2 = c.request("PUT", "/ch", [("Host", "x")], body=[b"ab", b"cde", b"f" * 5000], chunked=True)
        self.assertEqual((r1.status, r2.status), (200, 200))
        q1, q2 = self.o.wait_requests(2)
        self.assertEqual((q1.framing, q1.body), ("length", b"x" * 1000))
        self.assertEqual((q2.framing, q2.body), ("chunked", b"abcde" + b"f" * 5000))

    def test_response_framings(self):
        self.o.route("/chunked", lambda q: Reply(chunks=[b"one", b"two"], trailers=[("X-T", "1")]))
        self.o.route("/close", lambda q: Reply(body=b"until close", close_delimited=True))
        self.o.route("/head", lambda q: Reply(body=b"12345"))
        with Client(self.o.port) as c:
            r = c.request("GET", "/chunked", [("Host", "x")])
            self.assertEqual((r.framing, r.body, r.chunk_sizes, r.trailers), ("chunked", b"onetwo", [3, 3, 0], [("X-T", "1")]))
            r = c.request("HEAD", "/head", [("Host", "x")])
            self.assertEqual((r.body, r.get("content-length"), r.complete), (b"", "5", True))
            r = c.request("GET", "/close", [("Host", "x")])
            self.assertEqual((r.framing, r.body, r.closed), ("close", b"until close", True))

    def test_truncations(self):
        self.o.route("/cl", lambda q: Reply(body=b"z" * 10000, die_after=100))
        self.o.route("/ch", lambda q: Reply(chunks=[b"z" * 10000], die_after=100))
        for path in ("/cl", "/ch"):
            with Client(self.o.port) as c:
                r = c.request("GET", path, [("Host", "x")])
                self.assertEqual((r.status, r.complete, r.closed, len(r.body)), (200, False, True, 100), path)

    def test_strict_origin_rejects(self):
        cases = {
            "cl+te": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            "two cl": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "obs-fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            "bare lf": b"GET / HTTP/1.1\nHost: x\r\n\r\n",
            "absolute-form": b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "no host": b"GET / HTTP/1.1\r\n\r\n",
            "bad chunk": b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        }
        for name, data in cases.items():
            before = len(self.o.errors)
            out = raw(self.o, data)
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), name)
            self.assertEqual(len(self.o.errors), before + 1, name)
        self.assertEqual(self.o.snapshot(), [])

    def test_wait_and_never(self):
        go = threading.Event()
        self.o.route("/gated", lambda q: Reply(body=b"late", wait=go))
        self.o.route("/never", lambda q: Reply(never=True))
        res = []
        t = threading.Thread(target=lambda: res.append(pdtest.proxy_request(self.o, "GET", "/gated", [("Host", "x")])))
        t.start()
        self.o.wait_requests(1, path="/gated")
        self.assertEqual(res, [])
        go.set()
        t.join(5)
        self.assertEqual(res[0].body, b"late")
        with Client(self.o.port, timeout=0.5) as c:
            c.send(c.build("GET", "/never", [("Host", "x")]))
            with self.assertRaises(socket.timeout):
                c.read_response()

    def test_raw_route_and_garbage(self):
        self.o.route("/slam", raw=lambda sock, req, origin: False)
        self.o.route("/junk", lambda q: Reply(garbage=b"NOT HTTP\r\n\r\n"))
        with Client(self.o.port) as c:
            c.send(c.build("GET", "/slam", [("Host", "x")]))
            with self.assertRaises(pdtest.Incomplete):
                c.read_response()
        with Client(self.o.port) as c:
            with self.assertRaises(pdtest.ProtocolError):
                c.request("GET", "/junk", [("Host", "x")])

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_direct(self):
        self.o.route("/c", lambda q: Reply(body=b"from origin"))
        out = subprocess.run(["curl", "-sS", "--max-time", "10", self.o.url("/c")],
                             capture_output=True, timeout=20)
        self.assertEqual(out.stdout, b"from origin")
        self.assertEqual(self.o.wait_requests(1)[0].get("user-agent")[:5], "curl/")


class ParserTest(unittest.TestCase):
    def test_strict_response_parsing(self):
        r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        self.assertEqual((r.status, r.body, r.complete), (200, b"hi", True))
        for bad in (b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                    b"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
                    b"HTTP/1.1 2000 OK\r\n\r\n"):
            with self.assertRaises(pdtest.ProtocolError, msg=bad):
                parse_response(bad)
        r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        self.assertEqual((r.complete, r.body), (False, b"ab"))


class DnsTest(pdtest.ProxyTestCase):
    def test_answers_and_counts(self):
        d = self.dns({"a.test": ("10.0.0.1", 42), "multi.test": (["127.0.0.2", "127.0.0.3"], 5)})
        self.assertEqual(pdtest.dns_query(d.port, "a.test"), (0, [("10.0.0.1", 42)]))
        self.assertEqual(pdtest.dns_query(d.port, "A.Test"), (0, [("10.0.0.1", 42)]))
        self.assertEqual(pdtest.dns_query(d.port, "multi.test"), (0, [("127.0.0.2", 5), ("127.0.0.3", 5)]))
        self.assertEqual(pdtest.dns_query(d.port, "a.test", qtype=28), (0, []))
        self.assertEqual(pdtest.dns_query(d.port, "nx.test"), (3, []))
        self.assertEqual((d.queries("a.test"), d.queries("a.test", 1), d.queries("nx.test")), (3, 2, 1))
        d.drop = {"a.test"}
        self.assertIsNone(pdtest.dns_query(d.port, "a.test", timeout=0.3))
        self.assertEqual(pdtest.dns_query(d.port, "multi.test")[0], 0)


class EchoTest(pdtest.ProxyTestCase):
    def test_echo_half_close(self):
        e = self.echo()
        with socket.create_connection(("127.0.0.1", e.port), timeout=5) as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(4), b"ping")
            s.shutdown(socket.SHUT_WR)
            e.wait_eof(1)
            data = b""
            while True:
                d = s.recv(100)
                if not d:
                    break
                data += d
        self.assertEqual(data, b"BYE\n")

    def test_closed_port_refuses(self):
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", pdtest.closed_port()), timeout=2)


FAKE_PROXYD = """#!/bin/sh
# stands in for proxyd: the stderr contract, two children, a sanitizer report
echo "proxyd: listening on 127.0.0.1:4242" >&2
sleep 300 & A=$!
sleep 300 & B=$!
trap 'kill $A $B; exit 0' TERM
echo "proxyd: ready (2 workers)" >&2
echo "==1==ERROR: AddressSanitizer: heap-use-after-free on address 0x1" >&2
wait
"""


class FakeProxyTest(unittest.TestCase):
    """The Proxy runner against a stand-in binary: start-up contract,
    children, stop by SIGTERM, and the sanitizer check."""

    def test_runner(self):
        d = tempfile.mkdtemp(prefix="pdtest-fake-")
        self.addCleanup(shutil.rmtree, d, True)
        fake = os.path.join(d, "fake-proxyd")
        with open(fake, "w") as f:
            f.write(FAKE_PROXYD)
        os.chmod(fake, 0o755)
        p = pdtest.Proxy(bin=fake, conf_extra="via off")
        self.addCleanup(p.close)
        self.assertEqual(p.port, 4242)
        self.assertIn("via off\nhttp_access allow all\n", p.conf_text)
        kids = p.wait_workers(2)
        self.assertEqual(len(kids), 2)
        self.assertIn("heap-use-after-free", p.sanitizer_report())
        self.assertEqual(p.stop(), 0)
        # The fake's TERM trap only sends SIGTERM to its children and exits:
        # they die (and are reaped by init) after stop() returned, later still
        # on a busy machine. Wait for it; a child left running fails here.
        for k in kids:
            pdtest.wait_until(lambda k=k: (lambda st: st is None or st[0] == "Z")(pdtest._proc_stat(k)),
                              what="child %d of the stopped fake to exit" % k)

    def test_start_timeout_fails(self):
        d = tempfile.mkdtemp(prefix="pdtest-fake-")
        self.addCleanup(shutil.rmtree, d, True)
        fake = os.path.join(d, "silent")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\necho 'proxyd: oops' >&2\nexit 3\n")
        os.chmod(fake, 0o755)
        with self.assertRaisesRegex(AssertionError, "(?s)closed stderr.*oops"):
            pdtest.Proxy(bin=fake, ready_timeout=5)


if __name__ == "__main__":
    pdtest.main()
