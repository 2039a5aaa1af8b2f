"""deny_info codes (issue 13): Squid's error page codes (%u %U %H %a %o %e %E
%W %i %M %R %c %h %p %P %s %% ...) in a deny_info redirect URL are replaced by
the denied request's values, percent-encoded, as Squid does; what is not a
code stays as written."""

import re
import urllib.parse

import pdtest
from pdtest import Client, Reply, proxy_request

CODES = ["u", "U", "H", "a", "o", "e", "E", "W", "i", "M", "c", "h", "p", "P", "s", "w", "I",
         "x", "R"]


class DenyInfoCodesTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/*", lambda q: Reply(body=b"hello"))
        self.d = self.dns({"www.blocked.test": ("127.0.0.1", 60)})

    def proxy_with(self, deny_info):
        return self.proxy(conf_extra="acl bad dstdomain .blocked.test\n"
                          "deny_info %s bad\nhttp_access deny bad\n" % deny_info,
                          dns=self.d, workers=1, visible_hostname="gw.pdtest")

    def test_codes_in_a_redirect_url_are_replaced_and_encoded(self):
        query = "&".join("%s=%%%s" % (c, c) for c in CODES)
        p = self.proxy_with("http://portal.test/blocked?%s&pct=100%%%%&keep=%%Q&esc=%%41" % query)
        url = self.o.url("/x y?a=1&b=<2>", host="www.blocked.test").replace(" ", "%20")
        with Client(p) as c:
            c.send(("GET %s HTTP/1.1\r\nHost: www.blocked.test:%d\r\nX-Tag: t1\r\n\r\n"
                    % (url, self.o.port)).encode())
            r = c.read_response()
        self.assertEqual(r.status, 302)
        loc = r.get("location")
        self.assertTrue(loc.startswith("http://portal.test/blocked?"), loc)
        # every value is one query parameter: nothing it holds breaks the URL apart
        q = loc.split("?", 1)[1]
        self.assertRegex(q, r"^[A-Za-z0-9_.~%=&-]+$")
        self.assertNotIn(" ", loc)
        v = dict(urllib.parse.parse_qsl(q, keep_blank_values=True))
        want_url = "http://www.blocked.test:%d/x%%20y?a=1&b=<2>" % self.o.port
        self.assertEqual(v["u"], want_url)
        self.assertEqual(v["U"], want_url)
        self.assertEqual(v["H"], "www.blocked.test")
        self.assertEqual(v["a"], "-")
        self.assertEqual(v["o"], "")
        self.assertEqual(v["e"], "0")
        self.assertEqual(v["E"], "[No Error]")
        self.assertEqual(v["W"], "mailto:webmaster")
        self.assertEqual(v["w"], "webmaster")
        self.assertEqual(v["i"], "127.0.0.1")
        self.assertEqual(v["M"], "GET")
        self.assertEqual(v["c"], "ERR_ACCESS_DENIED")
        self.assertEqual(v["x"], "ERR_ACCESS_DENIED")
        self.assertEqual(v["h"], "gw.pdtest")
        self.assertEqual(v["p"], str(self.o.port))
        self.assertEqual(v["P"], "HTTP")
        self.assertTrue(v["s"].startswith("proxyd/"), v["s"])
        self.assertEqual(v["I"], "[unknown]")  # denied before any origin was chosen
        self.assertTrue(v["R"].startswith("GET %s HTTP/1.1\r\n" % url), v["R"])
        self.assertIn("\r\nX-Tag: t1\r\n", v["R"])
        # %% is a percent sign; what is not a code stays as written
        self.assertEqual(v["pct"], "100%")
        self.assertIn("&keep=%Q&", loc)
        self.assertIn("&esc=%41", loc)
        self.assertEqual(self.o.snapshot(), [])

    def test_codes_with_a_status_and_the_method(self):
        p = self.proxy_with("307:https://portal.test/deny/%M/%H%%3F")
        r = proxy_request(p, "POST", self.o.url("/p", host="www.blocked.test"), body=b"x=1")
        self.assertEqual(r.status, 307)
        self.assertEqual(r.get("location"), "https://portal.test/deny/POST/www.blocked.test%3F")

    def test_a_url_without_codes_is_unchanged(self):
        p = self.proxy_with("http://portal.test/blocked.html")
        r = proxy_request(p, "GET", self.o.url("/x", host="www.blocked.test"))
        self.assertEqual((r.status, r.get("location")), (302, "http://portal.test/blocked.html"))
        self.assertTrue(re.match(r"^ERR_ACCESS_DENIED", r.get("x-squid-error")))


if __name__ == "__main__":
    pdtest.main()
