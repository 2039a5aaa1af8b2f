"""Header rules and the reply-side access rules of issue 13 on the real binary:
request_header_access / _add / _replace (on the way to the origin only),
reply_header_access / _add (misses and hits), http_reply_access with the reply
acls, reply_body_max_size (refused by Content-Length, cut when a body grows
past it), tcp_outgoing_address by acl (the origin sees the source address;
pooled connections are kept apart by it), follow_x_forwarded_for with `src`
acls on the forwarded address, and miss_access. curl is the client where the
check is about what a real client sends."""

import shutil
import socket
import subprocess
import unittest

import pdtest
from pdtest import Client, Reply, proxy_request


def curl(p, url, *args):
    """GET url through p with curl; returns (status, headers dict lower-case, body)."""
    r = subprocess.run(["curl", "-s", "-i", "--noproxy", "", "-x",
                        "http://%s:%d" % (pdtest.HOST, p.port), *args, url],
                       capture_output=True, timeout=pdtest.DEFAULT_TIMEOUT)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs.setdefault(k.strip().lower(), v.strip())
    return status, hdrs, body


@unittest.skipUnless(shutil.which("curl"), "curl is not installed")
class RequestHeaderTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/*", lambda q: Reply(body=b"ok", headers=[("Cache-Control", "max-age=600")]))

    def test_referer_removed(self):
        p = self.proxy(conf_extra="request_header_access Referer deny all\n", workers=1)
        st, _, body = curl(p, self.o.url("/r"), "-H", "Referer: http://secret.test/",
                           "-H", "X-Keep: 1")
        self.assertEqual((st, body), (200, b"ok"))
        q = self.o.requests[-1]
        self.assertFalse(q.has("Referer"), q.headers)
        self.assertEqual(q.get("X-Keep"), "1")
        self.assertTrue(q.has("User-Agent"))

    def test_all_deny_with_allow_list(self):
        conf = ("request_header_access Accept allow all\n"
                "request_header_access User-Agent allow all\n"
                "request_header_access All deny all\n")
        p = self.proxy(conf_extra=conf, workers=1)
        st, _, _ = curl(p, self.o.url("/a"), "-H", "Accept: text/x", "-H", "X-Secret: s",
                        "-H", "Cookie: c=1")
        self.assertEqual(st, 200)
        q = self.o.requests[-1]
        self.assertEqual(q.get("Accept"), "text/x")
        self.assertTrue(q.has("User-Agent"))
        for h in ("X-Secret", "Cookie", "Via", "X-Forwarded-For"):
            self.assertFalse(q.has(h), (h, q.headers))
        self.assertTrue(q.has("Host"))  # proxyd's own: never removed

    def test_other_covers_unknown_names_only(self):
        p = self.proxy(conf_extra="request_header_access Other deny all\n", workers=1)
        curl(p, self.o.url("/o"), "-H", "X-Custom: 1", "-H", "Referer: http://r.test/")
        q = self.o.requests[-1]
        self.assertFalse(q.has("X-Custom"))
        self.assertEqual(q.get("Referer"), "http://r.test/")  # Squid knows Referer by name

    def test_acl_decides_and_replace(self):
        conf = ("acl secret urlpath_regex ^/secret\n"
                "request_header_access User-Agent deny secret\n"
                "request_header_replace User-Agent Nutscrape/1.0\n"
                "request_header_add X-Proxy-Client \"%>a via %la:%lp to %>rd\" secret\n"
                "request_header_add X-Always \"yes %% sure\"\n")
        p = self.proxy(conf_extra=conf, workers=1)
        curl(p, self.o.url("/open"), "-A", "curl-test")
        q = self.o.requests[-1]
        self.assertEqual(q.get("User-Agent"), "curl-test")
        self.assertFalse(q.has("X-Proxy-Client"))
        self.assertEqual(q.get("X-Always"), "yes % sure")
        curl(p, self.o.url("/secret"), "-A", "curl-test")
        q = self.o.requests[-1]
        self.assertEqual(q.get_all("User-Agent"), ["Nutscrape/1.0"])
        self.assertEqual(q.get("X-Proxy-Client"),
                         "%s via %s:%d to %s" % (pdtest.HOST, pdtest.HOST, p.port, pdtest.HOST))

    def test_unknown_acl_and_percent_code_are_errors(self):
        for line, want in (("request_header_access Referer deny nosuch",
                            "unknown acl 'nosuch'"),
                           ("request_header_add X-A \"%{User-Agent}>h\"", "is not supported"),
                           ("reply_body_max_size 10 parsecs all", "unknown acl 'parsecs'"),
                           ("tcp_outgoing_address not-an-ip", "is not an IP address")):
            with self.subTest(line=line):
                p = self.proxy(start=False, workers=1)
                p.write_conf(p.make_conf() + line + "\n")
                r = subprocess.run([pdtest.proxyd_bin(), "-t", "-c", p.conf_path],
                                   capture_output=True, text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stderr, r":\d+: .*" + want, r.stderr)


class ReplyTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/page", lambda q: Reply(body=b"page", headers=[
            ("Server", "secret-httpd/1.2"), ("Cache-Control", "max-age=600"),
            ("Content-Type", "text/html")]))
        self.o.route("/exe", lambda q: Reply(body=b"MZ", headers=[
            ("Content-Type", "application/x-msdownload")]))
        self.o.route("/err", lambda q: Reply(status=503, body=b"down"))
        self.o.route("/big", lambda q: Reply(body=b"x" * 5000))
        self.o.route("/bigchunked", lambda q: Reply(chunks=[b"y" * 1000] * 5))
        self.o.route("/bigclose", lambda q: Reply(body=b"z" * 5000, close_delimited=True))
        self.o.route("/small", lambda q: Reply(chunks=[b"s" * 100] * 2))

    def test_reply_header_access_on_miss_and_hit(self):
        conf = ("reply_header_access Server deny all\n"
                "acl html rep_mime_type -i ^text/html\n"
                "reply_header_add X-Html \"yes\" html\n")
        p = self.proxy(conf_extra=conf, workers=1)
        for want in ("TCP_MISS", "TCP_MEM_HIT"):
            r = proxy_request(p, "GET", self.o.url("/page"))
            self.assertEqual((r.status, r.body), (200, b"page"))
            self.assertIsNone(r.get("server"), want)
            self.assertEqual(r.get("x-html"), "yes")
        self.assertEqual(len(self.o.requests), 1)  # the second was a hit
        p.wait_access_lines(2)
        self.assertIn(" TCP_MEM_HIT/200 ", p.access_lines()[-1])

    def test_reply_rules_on_hits(self):
        conf = ("acl html rep_mime_type text/html\n"
                "acl flagged req_header X-Deny .\n"
                "acl small req_header X-Small .\n"
                "http_reply_access deny html flagged\n"
                "http_reply_access allow all\n"
                "reply_body_max_size 2 bytes small\n")
        p = self.proxy(conf_extra=conf, workers=1)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/page")).body, b"page")
        r = proxy_request(p, "GET", self.o.url("/page"), headers=[("X-Deny", "1")])
        self.assertEqual(r.status, 403)
        self.assertIn(b"http_reply_access", r.body)  # our error page, not the stored body
        r = proxy_request(p, "GET", self.o.url("/page"), headers=[("X-Small", "1")])
        self.assertEqual((r.status, r.get("x-squid-error")), (403, "ERR_TOO_BIG 0"))
        r = proxy_request(p, "GET", self.o.url("/page"))
        self.assertEqual((r.status, r.body), (200, b"page"))
        self.assertEqual(len(self.o.requests), 1)  # all but the first were answered by the cache
        p.wait_access_lines(4)
        results = [l.split()[3] for l in p.access_lines()]
        self.assertEqual(results, ["TCP_MISS/200", "TCP_DENIED_REPLY/403", "TCP_DENIED_REPLY/403",
                                   "TCP_MEM_HIT/200"])

    def test_http_reply_access(self):
        conf = ("acl exe rep_mime_type application/x-msdownload\n"
                "acl fivexx http_status 500-599\n"
                "http_reply_access deny exe\n"
                "http_reply_access deny fivexx\n"
                "http_reply_access allow all\n")
        p = self.proxy(conf_extra=conf, workers=1)
        r = proxy_request(p, "GET", self.o.url("/exe"))
        self.assertEqual(r.status, 403)
        self.assertEqual(r.get("x-squid-error"), "ERR_ACCESS_DENIED 0")
        self.assertNotIn(b"MZ", r.body)
        r = proxy_request(p, "GET", self.o.url("/err"))
        self.assertEqual(r.status, 403)
        self.assertNotIn(b"down", r.body)
        r = proxy_request(p, "GET", self.o.url("/page"))
        self.assertEqual((r.status, r.body), (200, b"page"))
        # a 304 passes whatever http_reply_access says (Squid's alwaysAllowResponse)
        self.o.route("/nm", lambda q: Reply(status=304, headers=[("ETag", '"e"')]))
        p2 = self.proxy(conf_extra="acl s http_status 300-399\nhttp_reply_access deny s\n",
                        workers=1)
        self.assertEqual(proxy_request(p2, "GET", self.o.url("/nm"),
                                       headers=[("If-None-Match", '"e"')]).status, 304)
        self.o.route("/moved", lambda q: Reply(status=301, headers=[("Location", "/x")]))
        self.assertEqual(proxy_request(p2, "GET", self.o.url("/moved")).status, 403)
        p.wait_access_lines(3)
        lines = p.access_lines()
        self.assertEqual(sum(" TCP_DENIED_REPLY/403 " in l for l in lines), 2, lines)

    def test_reply_body_max_size_content_length(self):
        p = self.proxy(conf_extra="acl big urlpath_regex ^/big\n"
                                  "reply_body_max_size 4 KB big\n", workers=1)
        r = proxy_request(p, "GET", self.o.url("/big"))
        self.assertEqual(r.status, 403)
        self.assertEqual(r.get("x-squid-error"), "ERR_TOO_BIG 0")
        self.assertNotIn(b"xxxx", r.body)
        # the limit is the acl's: the same size elsewhere passes
        self.o.route("/other", lambda q: Reply(body=b"o" * 5000))
        r = proxy_request(p, "GET", self.o.url("/other"))
        self.assertEqual((r.status, len(r.body)), (200, 5000))
        p.wait_access_lines(2)
        self.assertIn(" TCP_DENIED_REPLY/403 ", p.access_lines()[0])

    def test_reply_body_max_size_cuts_chunked_and_close_delimited(self):
        p = self.proxy(conf_extra="reply_body_max_size 4096 bytes\n", workers=1)
        for path in ("/bigchunked", "/bigclose"):
            with self.subTest(path=path), Client(p.port) as c:
                r = c.request("GET", self.o.url(path))
                self.assertEqual(r.status, 200)
                self.assertFalse(r.complete)
                self.assertTrue(r.closed)
                self.assertLessEqual(len(r.body), 4096)
        # under the limit: whole
        r = proxy_request(p, "GET", self.o.url("/small"))
        self.assertEqual((r.status, r.body), (200, b"s" * 200))
        p.wait_access_lines(3)
        lines = p.access_lines()
        self.assertEqual(sum("_ABORTED/200 " in l for l in lines), 2, lines)


class OutgoingTest(pdtest.ProxyTestCase):
    def test_tcp_outgoing_address(self):
        o = self.origin()
        seen = []

        def record(sock, req, origin):
            seen.append((req.path, sock.getpeername()[0]))
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return True

        o.route("/*", raw=record)
        conf = ("acl two urlpath_regex ^/two\n"
                "tcp_outgoing_address ::1 two\n"   # another family: skipped
                "tcp_outgoing_address 127.0.0.2 two\n"
                "tcp_outgoing_address 127.0.0.3\n")
        p = self.proxy(conf_extra=conf, workers=1)
        for path in ("/one", "/two", "/one", "/two"):
            self.assertEqual(proxy_request(p, "GET", o.url(path)).status, 200)
        self.assertEqual(seen, [("/one", "127.0.0.3"), ("/two", "127.0.0.2"),
                                ("/one", "127.0.0.3"), ("/two", "127.0.0.2")])
        # each source address kept its own pooled connection
        self.assertEqual(o.connections, 2)


class ForwardedForTest(pdtest.ProxyTestCase):
    def test_follow_x_forwarded_for(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"ok"))
        conf = ("acl trusted src 127.0.0.1\n"
                "acl inner src 10.1.2.3\n"
                "follow_x_forwarded_for allow trusted\n")
        p = self.proxy(conf_extra=conf, http_access="deny inner\nhttp_access allow all",
                       workers=1)
        # a trusted client says it forwards for 10.1.2.3: src acls see 10.1.2.3
        r = proxy_request(p, "GET", o.url("/a"), headers=[("X-Forwarded-For", "10.1.2.3")])
        self.assertEqual(r.status, 403)
        # only the address right of the last untrusted one is believed
        r = proxy_request(p, "GET", o.url("/b"),
                          headers=[("X-Forwarded-For", "10.1.2.3, 192.0.2.7")])
        self.assertEqual(r.status, 200)
        r = proxy_request(p, "GET", o.url("/c"), headers=[("X-Forwarded-For", "unknown")])
        self.assertEqual(r.status, 200)
        self.assertEqual(o.requests[-1].get("X-Forwarded-For"), "unknown, 127.0.0.1")
        p.wait_access_lines(3)
        lines = p.access_lines()
        self.assertTrue(lines[0].split()[2] == "10.1.2.3", lines[0])   # log_uses_indirect_client
        self.assertTrue(lines[1].split()[2] == "192.0.2.7", lines[1])

    def test_untrusted_client_is_not_believed(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"ok"))
        conf = ("acl trusted src 192.0.2.1\n"
                "acl inner src 10.1.2.3\n"
                "follow_x_forwarded_for allow trusted\n")
        p = self.proxy(conf_extra=conf, http_access="deny inner\nhttp_access allow all",
                       workers=1)
        r = proxy_request(p, "GET", o.url("/a"), headers=[("X-Forwarded-For", "10.1.2.3")])
        self.assertEqual(r.status, 200)


class MissAccessTest(pdtest.ProxyTestCase):
    def test_miss_access(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"ok", headers=[("Cache-Control", "max-age=600")]))
        p = self.proxy(conf_extra="acl nofetch urlpath_regex ^/cold\n"
                                  "miss_access deny nofetch\n", workers=1)
        r = proxy_request(p, "GET", o.url("/cold"))
        self.assertEqual(r.status, 403)
        self.assertEqual(r.get("x-squid-error"), "ERR_FORWARDING_DENIED 0")
        self.assertEqual(proxy_request(p, "GET", o.url("/warm")).status, 200)
        self.assertEqual([q.path for q in o.requests], ["/warm"])


if __name__ == "__main__":
    pdtest.main()
