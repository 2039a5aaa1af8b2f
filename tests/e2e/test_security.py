"""Security defaults (issue 8): no header injection through CRLF in any
forwarded or logged field, access log lines stay one line with control and
non-ASCII bytes escaped, error pages escape what they echo. (That the
shipped conf is not an open proxy is tests/unit/check_defaults.c: a public
source address cannot be faked over loopback.)"""

import os
import re

import pdtest
from pdtest import Client, Reply, proxy_request, raw

# combined: %>a - - [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h" "%{User-Agent}>h" %Ss:%Sh
LINE_RE = re.compile(r'^\S+ - - \[[^\]]+\] "[^"\\ ]+ [^"\\ ]+ HTTP/\d\.\d" \d{3} \d+ "[^"\\]*" "[^"\\]*" \S+:\S+$')


class InjectionTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.p = self.proxy(workers=1, start=False)
        self.log = os.path.join(self.p.dir, "combined.log")
        self.p.write_conf(self.p.make_conf("access_log %s combined" % self.log))
        self.p.start()

    def log_bytes(self):
        self.p.stop()
        with open(self.log, "rb") as f:
            return f.read()

    def test_crlf_in_url_and_fields(self):
        h = self.o.authority
        sent = 0
        # percent-encoded CR LF in the path, the query and the userinfo: they
        # stay encoded on the way to the origin
        for target in ("/a%0d%0aX-Injected:%20yes", "/q?x=%0D%0ASet-Cookie:%20s=1", "/b%0a%0d%00"):
            r = proxy_request(self.p, "GET", self.o.url(target), [("User-Agent", "ua \" \\ \xe9\xff end"),
                                                                  ("Referer", "http://r/\x80\xfe")])
            sent += 1
            self.assertEqual(r.status, 200, r)
        r = proxy_request(self.p, "GET", "http://u%%0d%%0aX-Evil:1@%s/userinfo" % h, [("Host", h)])
        sent += 1
        self.assertEqual(r.status, 200, r)
        # refused requests are logged too: raw bytes that only the parser or
        # the URL code refuses
        for data in (b"GET http://%s/\xc3\xa9\xff HTTP/1.1\r\nHost: %s\r\n\r\n" % (h.encode(), h.encode()),
                     b"GET http://a%%00b.test/x HTTP/1.1\r\nHost: a%%00b.test\r\n\r\n",
                     b"GET http://%s/x HTTP/1.1\r\nHost: %s\r\nUser-Agent: a\x1b[31mred\r\n\r\n" % (
                         h.encode(), h.encode()),
                     b"GET http://%s/\x1b[2J HTTP/1.1\r\nHost: %s\r\n\r\n" % (h.encode(), h.encode())):
            out = raw(self.p, data, timeout=3)
            sent += 1
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:80])
        got = self.o.snapshot()
        self.assertEqual(len(got), 4)
        for q in got:
            names = {k.lower() for k, _ in q.headers}
            self.assertNotIn("x-injected", names)
            self.assertNotIn("set-cookie", names)
            self.assertNotIn("x-evil", names)
            self.assertFalse(re.search(r"[\x00-\x20\x7f]", q.target), q.target)
        self.assertIn("%0D%0AX-Injected", got[0].target)
        self.assertIn("%0D%0ASet-Cookie", got[1].target)
        self.assertNoOriginErrors(self.o)

        data = self.log_bytes()
        lines = data.split(b"\n")
        self.assertEqual(lines[-1], b"", "log does not end with a newline")
        lines = lines[:-1]
        self.assertEqual(len(lines), sent, "one line per request: %r" % lines)
        for l in lines:
            self.assertFalse(re.search(rb"[\x00-\x1f\x7f-\xff]", l), "raw control/non-ASCII byte in %r" % l)
            self.assertRegex(l.decode("ascii"), LINE_RE)
        text = data.decode("ascii")
        # quote and backslash of quoted fields, non-ASCII: %XX; URLs keep
        # their own escapes (not %250D)
        self.assertIn('"ua %22 %5C %E9%FF end"', text)
        self.assertIn('"http://r/%80%FE"', text)
        self.assertIn("/a%0D%0AX-Injected:%20yes HTTP/1.1", text)
        self.assertNotIn("%25", text)

    def test_error_page_escapes(self):
        port = pdtest.closed_port()
        r = proxy_request(self.p, "GET", "http://127.0.0.1:%d/%%3Cscript%%3E<b>x</b>\"'" % port)
        self.assertIn(r.status, (400, 502), r)
        self.assertNotIn(b"<script", r.body.lower())
        self.assertNotIn(b"<b>x", r.body)
        # nothing echoed into the response head
        for k, v in r.headers:
            self.assertFalse(re.search(r"[\r\n]", k + v))

    def test_response_fields_not_injected(self):
        # an origin cannot inject a field through a folded or CR-split header
        self.o.route("/fold", lambda req: Reply(raw_head=b"HTTP/1.1 200 OK\r\nX-A: a\r\n Set-Cookie: s=1\r\n"
                                                b"Content-Length: 2\r\n\r\n", body=b"ok"))
        self.o.route("/cr", lambda req: Reply(raw_head=b"HTTP/1.1 200 OK\r\nX-A: a\rSet-Cookie: s=1\r\n"
                                              b"Content-Length: 2\r\n\r\n", body=b"ok"))
        self.o.route("/reason", lambda req: Reply(raw_head=b"HTTP/1.1 200 OK\x00Set-Cookie: s=1\r\n"
                                                  b"Content-Length: 2\r\n\r\n", body=b"ok"))
        for path in ("/fold", "/cr", "/reason"):
            with self.subTest(path):
                r = proxy_request(self.p, "GET", self.o.url(path))
                self.assertEqual(r.status, 502, r)
                self.assertIsNone(r.get("set-cookie"))


if __name__ == "__main__":
    pdtest.main()
