"""Access denial, timeouts and limits of proxyd (issue 2): 403 from
http_access (also for CONNECT to a port not allowed), the client idle and
request-head timeouts, and the request header size limit."""

import time

import pdtest
from pdtest import Client, parse_response, proxy_request, raw


class AccessTest(pdtest.ProxyTestCase):
    def test_denied_403(self):
        p = self.proxy(workers=1, http_access="deny all")
        o = self.origin()
        r = proxy_request(p, "GET", o.url("/secret"))
        self.assertEqual(r.status, 403)
        self.assertIn("text/html", r.get("content-type") or "")
        self.assertEqual(o.connections, 0)
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r" TCP_DENIED/403 \d+ GET %s " % o.url("/secret").replace(".", r"\."))

    def test_connect_port_not_allowed(self):
        e = self.echo()
        p = self.proxy(workers=1, conf_extra="""
            acl SSL_ports port 443
            acl CONNECT method CONNECT
            http_access deny CONNECT !SSL_ports""")
        with Client(p) as c:
            c.send(c.build("CONNECT", "127.0.0.1:%d" % e.port))
            r = c.read_response("CONNECT")
        self.assertEqual(r.status, 403)
        self.assertEqual(e.connections, 0)
        o = self.origin()  # plain GETs still pass the later allow rule
        self.assertEqual(proxy_request(p, "GET", o.url("/fine")).status, 200)


class TimeoutTest(pdtest.ProxyTestCase):
    def test_client_idle_timeout(self):
        p = self.proxy(workers=1, conf_extra="client_idle_pconn_timeout 1 second")
        o = self.origin()
        with Client(p) as c:
            self.assertEqual(c.request("GET", o.url("/a")).status, 200)
            t0 = time.monotonic()
            self.assertTrue(c.is_closed(wait=10), "idle client connection not closed")
            self.assertGreater(time.monotonic() - t0, 0.5)

    def test_request_head_timeout(self):
        p = self.proxy(workers=1, conf_extra="request_timeout 1 second")
        with Client(p) as c:
            c.send(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Slow: ")
            t0 = time.monotonic()
            c.sock.settimeout(10)
            data = bytearray()
            try:
                while True:
                    d = c.sock.recv(65536)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            except OSError:
                self.fail("proxyd kept a half-sent request head open for 10 s (request_timeout 1 second)")
            self.assertLess(time.monotonic() - t0, 8)
        if data:  # a 408 (Squid) or 400 before closing is fine too
            self.assertIn(parse_response(data).status, (400, 408))

    def test_request_header_max_size(self):
        p = self.proxy(workers=1, conf_extra="request_header_max_size 4 KB")
        o = self.origin()
        r = parse_response(raw(p, b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n" % (
            o.url("/big").encode(), o.authority.encode(), b"b" * 8000)))
        self.assertIn(r.status, (400, 431))
        ok = proxy_request(p, "GET", o.url("/small"), [("X-Small", "s" * 1000)])
        self.assertEqual(ok.status, 200)
        self.assertEqual([q.path for q in o.snapshot()], ["/small"])


if __name__ == "__main__":
    pdtest.main()
