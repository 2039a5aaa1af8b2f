"""Byte accounting on the wire (issue 12): the access log's bytes field equals the bytes
the client really received, for Content-Length, chunked, re-chunked (close-delimited
origin bodies sent chunked to HTTP/1.1 clients), HTTP/1.0 close-delimited, hits of
chunked and Content-Length objects, and error pages. Each request goes on a raw
connection with Connection: close, so every byte the proxy sent is counted until it
closes; then the log line for that URL must carry the same number, and
proxyd_client_sent_bytes_total must have grown by the sum."""

import pdtest
from pdtest import Reply
from cachetest import body_of, log_codes
from test_ops import Admin, metric as sample

MAX60 = ("Cache-Control", "max-age=60")
NOSTORE = ("Cache-Control", "no-store")


class AccountingTest(pdtest.SharedProxyTestCase):
    SHARED_PROXY_ARGS = {"workers": 1, "conf_extra": "admin_port 127.0.0.1:0"}

    def metric(self, name):
        return sample(Admin(self.p).metrics(), name)

    def fetch(self, path, version="HTTP/1.1"):
        """Raw bytes the client received for one request to path, and the URL."""
        url = self.o.url(path)
        req = "GET %s %s\r\nHost: %s\r\nConnection: close\r\n\r\n" % (url, version, url.split("/")[2])
        data = pdtest.raw(self.p, req.encode(), timeout=10)
        self.assertTrue(data.startswith(b"HTTP/1.1 "), data[:100])
        return data, url

    def logged_bytes(self, url, n):
        """The bytes field of the n-th access log line for url (1-based)."""
        log_codes(self.p, url, n)
        lines = [l.split() for l in self.p.access_lines()]
        return [int(f[4]) for f in lines if len(f) > 6 and f[6] == url][n - 1]

    def check(self, path, n=1, version="HTTP/1.1", expect_code=None, expect_body=None):
        data, url = self.fetch(path, version)
        if expect_body is not None:
            head, _, rest = data.partition(b"\r\n\r\n")
            if b"transfer-encoding: chunked" in head.lower():
                rest = dechunk(rest)
            self.assertEqual(rest, expect_body)
        self.assertEqual(self.logged_bytes(url, n), len(data),
                         "access log bytes for %s (request %d) vs the wire" % (path, n))
        if expect_code:
            self.assertEqual(log_codes(self.p, url, n)[n - 1], expect_code)
        return len(data)

    def test_every_framing_counts_what_went_on_the_wire(self):
        before = self.metric("proxyd_client_sent_bytes_total")
        self.assertIsNotNone(before)
        cl = body_of("cl", 5000)
        self.o.route("/cl", lambda q: Reply(body=cl, headers=[NOSTORE]))
        # chunk sizes with 1 to 5 hex digits: each size line has its own length
        sizes = [1, 15, 16, 255, 256, 4095, 4096, 65535, 65536, 70000]
        chunks = [body_of("c%d" % i, n) for i, n in enumerate(sizes)]
        self.o.route("/chunked", lambda q: Reply(chunks=chunks, headers=[NOSTORE]))
        eof = body_of("eof", 300000)
        self.o.route("/eof", lambda q: Reply(body=eof, close_delimited=True, headers=[NOSTORE]))
        total = 0
        total += self.check("/cl", expect_code="TCP_MISS", expect_body=cl)
        total += self.check("/chunked", expect_code="TCP_MISS", expect_body=b"".join(chunks))
        total += self.check("/eof", expect_code="TCP_MISS", expect_body=eof)  # re-chunked for 1.1
        self.o.route("/eof10", lambda q: Reply(body=eof, close_delimited=True, headers=[NOSTORE]))
        total += self.check("/eof10", version="HTTP/1.0", expect_body=eof)  # close-delimited for 1.0
        self.o.route("/404", lambda q: Reply(status=404, body="nope", headers=[NOSTORE]))
        total += self.check("/404", expect_body=b"nope")
        pdtest.wait_until(lambda: self.metric("proxyd_client_sent_bytes_total") - before >= total,
                          what="the byte counter to include the transactions")
        self.assertEqual(self.metric("proxyd_client_sent_bytes_total") - before, total)

    def test_hits_count_what_went_on_the_wire(self):
        body = body_of("hit", 40000)
        self.o.route("/h", lambda q: Reply(body=body, headers=[MAX60]))
        sizes = [100, 5000, 70000]
        chunks = [body_of("hc%d" % i, n) for i, n in enumerate(sizes)]
        self.o.route("/hc", lambda q: Reply(chunks=chunks, headers=[MAX60]))
        hit_before = self.metric("proxyd_client_sent_hit_bytes_total")
        self.check("/h", 1, expect_code="TCP_MISS", expect_body=body)
        h = self.check("/h", 2, expect_code="TCP_MEM_HIT", expect_body=body)
        self.check("/hc", 1, expect_code="TCP_MISS", expect_body=b"".join(chunks))
        hc = self.check("/hc", 2, expect_code="TCP_MEM_HIT", expect_body=b"".join(chunks))
        pdtest.wait_until(lambda: self.metric("proxyd_client_sent_hit_bytes_total") - hit_before >= h + hc,
                          what="the hit byte counter to include both hits")
        self.assertEqual(self.metric("proxyd_client_sent_hit_bytes_total") - hit_before, h + hc)
        self.assertEqual(len(self.o.requests_for("/h")) + len(self.o.requests_for("/hc")), 2)

    def test_error_page_bytes(self):
        data = pdtest.raw(self.p, b"GET /not-absolute HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:100])
        line = pdtest.wait_until(lambda: [l for l in self.p.access_lines() if " /not-absolute " in l],
                                 what="the 400's access log line")[0]
        self.assertEqual(int(line.split()[4]), len(data))


def dechunk(b):
    out = bytearray()
    while True:
        line, _, b = b.partition(b"\r\n")
        n = int(line.split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += b[:n]
        b = b[n + 2:]


if __name__ == "__main__":
    pdtest.main()
