"""store_id_program (issue 14): Squid's own storeid_file_rewrite with a rules
file made here keys two mirror URLs of one file to one cached object (the
origin sees one fetch); a scripted helper for the edges: ERR and BH keep the
URL as the key (each URL still cached on its own), store_id_access keeps
requests from the helper, and only requests the cache may answer ask it."""

import os
import unittest

import pdtest
from pdtest import Reply, proxy_request
from cachetest import log_codes

STOREID = "/usr/lib/squid/storeid_file_rewrite"
MAX60 = ("Cache-Control", "max-age=60")


class StoreIdBase(pdtest.HelperTestCase):
    TMP_PREFIX = "pdtest-sid-"

    def setUp(self):
        super().setUp()
        self.o.route("/*", lambda q: Reply(body=b"file " + q.path.encode(), headers=[MAX60]))
        self.d = self.dns({n: ("127.0.0.1", 60) for n in
                           ("mirror1.test", "mirror2.test", "other.test")})

    def url(self, host, path):
        return "http://%s:%d%s" % (host, self.o.port, path)

    def get(self, p, url, method="GET", body=None):
        r = proxy_request(p, method, url, body=body)
        self.assertEqual(r.status, 200, r)
        return r


@unittest.skipUnless(os.access(STOREID, os.X_OK), "squid's storeid_file_rewrite is not installed")
class FileRewriteTest(StoreIdBase):
    def test_two_mirrors_one_object(self):
        rules = os.path.join(self.tmp, "rules")
        with open(rules, "w") as f:
            f.write("# mirrors of one file\n"
                    "^http://mirror[0-9]+\\.test:[0-9]+/(.*)\thttp://mirrors.squid.internal/$1\n")
        conf = "store_id_program %s %s\nstore_id_children 2 startup=1 concurrency=2\n" % (
            STOREID, rules)
        p = self.proxy(conf_extra=conf, workers=1, dns=self.d)
        a, b = self.url("mirror1.test", "/pool/f.deb"), self.url("mirror2.test", "/pool/f.deb")
        self.assertEqual(self.get(p, a).body, b"file /pool/f.deb")
        r = self.get(p, b)
        self.assertEqual(r.body, b"file /pool/f.deb")
        self.assertIsNotNone(r.get("age"), "the second mirror is a hit")
        self.assertEqual(len(self.o.requests_for("/pool/f.deb")), 1)
        self.assertEqual(log_codes(p, a, 1), ["TCP_MISS"])
        self.assertEqual(log_codes(p, b, 1), ["TCP_MEM_HIT"])
        # a URL no rule matches keeps its own key: another object, another fetch
        c = self.url("other.test", "/pool/f.deb")
        self.get(p, c)
        self.assertEqual(len(self.o.requests_for("/pool/f.deb")), 2)
        self.assertEqual(log_codes(p, c, 1), ["TCP_MISS"])


class ScriptedTest(StoreIdBase):
    def test_err_and_bh_keep_the_url_as_key(self):
        # mirror1: OK with a key; mirror2: ERR; other: BH
        helper = self.script("sid.sh", """
while read -r url rest; do
  echo "$url" >> %s
  case "$url" in
    http://mirror1.test*) echo "OK store-id=http://one.squid.internal/x";;
    http://mirror2.test*) echo ERR;;
    *) echo "BH message=\\"broken\\"";;
  esac
done
""" % self.calls)
        conf = "store_id_program %s\nstore_id_children 1 startup=1\n" % helper
        p = self.proxy(conf_extra=conf, workers=1, dns=self.d)
        m1a, m1b = self.url("mirror1.test", "/a"), self.url("mirror1.test", "/b")
        m2, ot = self.url("mirror2.test", "/a"), self.url("other.test", "/a")
        self.assertEqual(self.get(p, m1a).body, b"file /a")
        # another path, the same store id: the object of /a answers
        self.assertEqual(self.get(p, m1b).body, b"file /a")
        self.assertEqual(self.o.requests_for("/b"), [])
        # ERR and BH: the URL is the key; a second GET of each is a hit
        for u in (m2, ot):
            self.get(p, u)
            self.get(p, u)
        self.assertEqual(len(self.o.requests_for("/a")), 3)
        self.assertEqual(log_codes(p, m2, 2), ["TCP_MISS", "TCP_MEM_HIT"])
        self.assertEqual(log_codes(p, ot, 2), ["TCP_MISS", "TCP_MEM_HIT"])
        # a POST is not for the cache: the helper is not asked
        n = len(self.helper_calls())
        self.get(p, m2, method="POST", body=b"x")
        self.assertEqual(len(self.helper_calls()), n)
        self.assertEqual(self.helper_calls(), [m1a, m1b, m2, m2, ot, ot])
        self.assertEqual(p.stop(), 0)

    def test_store_id_access(self):
        helper = self.script("sid.sh", """
while read -r url rest; do
  echo "$url" >> %s
  echo "OK store-id=http://all.squid.internal/"
done
""" % self.calls)
        conf = ("acl m1 dstdomain mirror1.test\nstore_id_program %s\n"
                "store_id_access allow m1\nstore_id_access deny all\n" % helper)
        p = self.proxy(conf_extra=conf, workers=1, dns=self.d)
        self.get(p, self.url("mirror1.test", "/a"))
        self.assertEqual(self.get(p, self.url("mirror2.test", "/b")).body, b"file /b")
        self.assertEqual(self.helper_calls(), [self.url("mirror1.test", "/a")])
        # mirror1's key is the store id: another path on it is the same object
        self.assertEqual(self.get(p, self.url("mirror1.test", "/c")).body, b"file /a")
        self.assertEqual(self.o.requests_for("/c"), [])

    def test_silent_helper_and_stats(self):
        """A helper that never answers: the request waits for request_timeout at
        most, then 503 (as for the other helpers); the pool is in mgr:store_id."""
        helper = self.script("sid.sh", "while read -r l; do :; done\n")
        conf = ("store_id_program %s\nstore_id_children 1 startup=1\nrequest_timeout 1 second\n"
                "admin_port 127.0.0.1:0\n" % helper)
        p = self.proxy(conf_extra=conf, workers=1, dns=self.d)
        r = proxy_request(p, "GET", self.url("mirror1.test", "/s"))
        self.assertEqual(r.status, 503)
        self.assertEqual(self.o.requests_for("/s"), [])
        from test_ops import Admin, metric
        a = Admin(p)
        s = a.metrics()
        self.assertEqual(metric(s, "proxyd_helper_requests_total", helper="store_id",
                                kind="store_id"), 1)
        status, _, body = a.get("/squid-internal-mgr/store_id")
        self.assertEqual(status, 200)
        self.assertIn("Store ID Statistics: store_id\n", body)
        self.assertIn("requests sent: 1\n", body)


if __name__ == "__main__":
    pdtest.main()
