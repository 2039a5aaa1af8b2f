"""url_rewrite_program (issue 14): squidGuard with a domain list built by
`squidGuard -C` (redirect of a blocked domain, rewrite of a mirror), and a
scripted helper for the protocol's edges: rewrite-url, url= with status=,
ERR, the old `3xx:URL` form, channel IDs, url_rewrite_access, and a helper
that fails (503 unless url_rewrite_bypass is on). A request redirected or
refused never reaches the origin."""

import os
import shutil
import subprocess
import unittest

import pdtest
from pdtest import Reply, proxy_request

SQUIDGUARD = shutil.which("squidGuard")


class RewriteBase(pdtest.HelperTestCase):
    TMP_PREFIX = "pdtest-rw-"

    def setUp(self):
        super().setUp()
        self.o.route("/*", lambda q: Reply(body=b"from " + q.get("Host").encode()))
        self.d = self.dns({n: ("127.0.0.1", 60) for n in
                           ("bad.test", "www.bad.test", "old.test", "new.test", "fine.test")})


@unittest.skipUnless(SQUIDGUARD, "squidGuard is not installed (apt-get install squidguard)")
class SquidGuardTest(RewriteBase):
    def test_blocklist_redirect_and_rewrite(self):
        db = os.path.join(self.tmp, "db")
        os.makedirs(os.path.join(db, "blocked"))
        os.makedirs(os.path.join(self.tmp, "log"))
        with open(os.path.join(db, "blocked", "domains"), "w") as f:
            f.write("bad.test\n")
        conf = os.path.join(self.tmp, "squidGuard.conf")
        with open(conf, "w") as f:
            f.write("""dbhome %s
logdir %s/log
dest blocked {
    domainlist blocked/domains
}
rewrite mirror {
    s@//old\\.test:@//new.test:@
}
acl {
    default {
        pass !blocked all
        rewrite mirror
        redirect 302:http://blockpage.test/denied?url=%%u
    }
}
""" % (db, self.tmp))
        subprocess.run([SQUIDGUARD, "-c", conf, "-C", "all"], check=True, capture_output=True,
                       timeout=60)
        self.assertTrue(os.path.exists(os.path.join(db, "blocked", "domains.db")))
        p = self.proxy(conf_extra="url_rewrite_program %s -c %s\nurl_rewrite_children 2\n"
                       % (SQUIDGUARD, conf), dns=self.d, workers=1)
        for host in ("bad.test", "www.bad.test"):
            r = proxy_request(p, "GET", self.o.url("/x", host=host))
            self.assertEqual(r.status, 302, r.body)
            self.assertEqual(r.get("location"),
                             "http://blockpage.test/denied?url=" + self.o.url("/x", host=host))
        r = proxy_request(p, "GET", self.o.url("/y", host="old.test"))
        self.assertEqual((r.status, r.body), (200, ("from new.test:%d" % self.o.port).encode()))
        r = proxy_request(p, "GET", self.o.url("/z", host="fine.test"))
        self.assertEqual((r.status, r.body), (200, ("from fine.test:%d" % self.o.port).encode()))
        self.assertEqual([q.path for q in self.o.snapshot()], ["/y", "/z"])
        self.assertEqual(p.stop(), 0)
        results = [l.split()[3] for l in p.access_lines()]
        self.assertEqual(results, ["TCP_REDIRECT/302"] * 2 + ["TCP_MISS/200"] * 2)


class ScriptedRewriterTest(RewriteBase):
    def rewriter(self, concurrency=False):
        """Answers by the URL's path; records each request line."""
        ch = '"$ch "' if concurrency else '""'
        read = "read -r ch url rest" if concurrency else "read -r url rest"
        return self.script("rw.sh", """
while %s; do
  echo "$url $rest" >> %s
  p=$(printf %%s "$url" | sed 's@^http://[^/]*@@')
  c=%s
  case "$p" in
    /rewrite) echo "${c}OK rewrite-url=\\"http://new.test:%d/target\\"";;
    /redirect) echo "${c}OK status=301 url=\\"http://elsewhere.test/\\"";;
    /old) echo "${c}307:http://old-style.test/";;
    /bh) echo "${c}BH message=\\"db down\\"";;
    *) echo "${c}ERR";;
  esac
done
""" % (read, self.calls, ch, self.o.port))

    def test_protocol(self):
        for concurrency in (False, True):
            with self.subTest(concurrency=concurrency):
                if os.path.exists(self.calls):
                    os.unlink(self.calls)
                conf = "url_rewrite_program %s\nurl_rewrite_children 1 concurrency=%d\n" % (
                    self.rewriter(concurrency), 4 if concurrency else 0)
                p = self.proxy(conf_extra=conf, dns=self.d, workers=1)
                before = len(self.o.snapshot())
                r = proxy_request(p, "GET", self.o.url("/rewrite", host="fine.test"))
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, ("from new.test:%d" % self.o.port).encode())
                r = proxy_request(p, "GET", self.o.url("/redirect", host="fine.test"))
                self.assertEqual((r.status, r.get("location")), (301, "http://elsewhere.test/"))
                r = proxy_request(p, "GET", self.o.url("/old", host="fine.test"))
                self.assertEqual((r.status, r.get("location")), (307, "http://old-style.test/"))
                r = proxy_request(p, "GET", self.o.url("/plain", host="fine.test"))
                self.assertEqual(r.status, 200)
                r = proxy_request(p, "GET", self.o.url("/bh", host="fine.test"))
                self.assertEqual(r.status, 503)
                self.assertEqual([q.path for q in self.o.snapshot()[before:]], ["/target", "/plain"])
                first = self.helper_calls()[0].split()
                self.assertEqual(first[0], self.o.url("/rewrite", host="fine.test"))
                self.assertEqual(first[1:4], ["127.0.0.1/-", "-", "GET"])
                self.assertEqual(first[4], "myip=127.0.0.1")
                self.assertEqual(first[5], "myport=%d" % p.port)
                self.assertEqual(p.stop(), 0)

    def test_access_and_bypass(self):
        prog = self.script("bh.sh", 'while read -r l; do echo "$l" >> %s; echo BH; done\n'
                           % self.calls)
        conf = """
url_rewrite_program %s
acl skip urlpath_regex ^/skip
url_rewrite_access deny skip
url_rewrite_access allow all
""" % prog
        p = self.proxy(conf_extra=conf, dns=self.d, workers=1)
        # not sent to the rewriter at all
        self.assertEqual(proxy_request(p, "GET", self.o.url("/skip", host="fine.test")).status, 200)
        self.assertEqual(self.helper_calls(), [])
        # sent, fails: refused (fail closed)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/other", host="fine.test")).status, 503)
        self.assertEqual(len(self.helper_calls()), 1)
        self.assertEqual(p.stop(), 0)
        p = self.proxy(conf_extra=conf + "url_rewrite_bypass on\n", dns=self.d, workers=1)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/other", host="fine.test")).status, 200)
        self.assertEqual([q.path for q in self.o.snapshot()], ["/skip", "/other"])

    def test_answer_cache(self):
        """url_rewrite_cache_ttl: the same line again is answered from the table
        (rewrites, redirects and "leave it" alike), another line asks the helper,
        a BH is never kept; counted in proxyd_helper_cached_answers_total."""
        from test_ops import Admin, metric
        conf = ("admin_port 127.0.0.1:0\nurl_rewrite_program %s\nurl_rewrite_children 1\n"
                "url_rewrite_cache_ttl 1 hour\n" % self.rewriter())
        p = self.proxy(conf_extra=conf, dns=self.d, workers=1)
        a = Admin(p)
        for _ in range(3):
            r = proxy_request(p, "GET", self.o.url("/rewrite", host="fine.test"))
            self.assertEqual(r.body, ("from new.test:%d" % self.o.port).encode())
            r = proxy_request(p, "GET", self.o.url("/redirect", host="fine.test"))
            self.assertEqual((r.status, r.get("location")), (301, "http://elsewhere.test/"))
            r = proxy_request(p, "GET", self.o.url("/old", host="fine.test"))
            self.assertEqual((r.status, r.get("location")), (307, "http://old-style.test/"))
            self.assertEqual(proxy_request(p, "GET", self.o.url("/plain", host="fine.test")).status,
                             200)
            self.assertEqual(proxy_request(p, "GET", self.o.url("/bh", host="fine.test")).status,
                             503)
        paths = [l.split()[0].split("/", 3)[3] for l in self.helper_calls()]
        self.assertEqual(sorted(paths), ["bh", "bh", "bh", "old", "plain", "redirect", "rewrite"])
        # the same path from another method is another line
        self.assertEqual(proxy_request(p, "HEAD", self.o.url("/plain", host="fine.test")).status,
                         200)
        self.assertEqual(len(self.helper_calls()), 8)
        rew = dict(helper="url_rewrite", kind="url_rewrite")
        s = a.wait_metric(8, "proxyd_helper_cached_answers_total", **rew)
        self.assertEqual(metric(s, "proxyd_helper_requests_total", **rew), 8)
        # the origin saw the rewritten and the plain requests each time
        self.assertEqual([q.path for q in self.o.snapshot()].count("/target"), 3)
        self.assertEqual(p.stop(), 0)

    def test_timeout_actions(self):
        """url_rewrite_timeout: a rewriter that does not answer /slow in time;
        the request is bypassed (Squid's default), failed, asked again twice
        then failed, or answered with the configured response."""
        prog = self.script("slow.sh", """
while read -r url rest; do
  echo "$url" >> %s
  case "$url" in
    */slow*) ;;
    *) echo ERR;;
  esac
done
""" % self.calls)
        cases = [
            ("", 200, 1, ["/slow"]),
            (" on_timeout=bypass", 200, 1, ["/slow"]),
            (" on_timeout=fail", 500, 1, []),
            (" on_timeout=retry", 500, 3, []),
            (' on_timeout=use_configured_response response="OK status=307 '
             'url=http://portal.test/slow"', 307, 1, []),
        ]
        for opt, status, asked, paths in cases:
            with self.subTest(opt=opt):
                if os.path.exists(self.calls):
                    os.unlink(self.calls)
                before = len(self.o.snapshot())
                p = self.proxy(conf_extra="url_rewrite_program %s\nurl_rewrite_timeout 300 "
                               "milliseconds%s\n" % (prog, opt), dns=self.d, workers=1)
                r = proxy_request(p, "GET", self.o.url("/slow", host="fine.test"))
                self.assertEqual(r.status, status, r.body)
                if status == 307:
                    self.assertEqual(r.get("location"), "http://portal.test/slow")
                if status == 500:
                    self.assertEqual(r.get("x-squid-error"), "ERR_GATEWAY_FAILURE 0")
                self.assertEqual(len(self.helper_calls()), asked)
                self.assertEqual([q.path for q in self.o.snapshot()[before:]], paths)
                # an answer in time is used as always
                self.assertEqual(proxy_request(p, "GET", self.o.url("/fast", host="fine.test"))
                                 .status, 200)
                self.assertEqual(p.stop(), 0)

    def test_timeout_config_errors(self):
        for line, err in [
                ("url_rewrite_timeout 1 second on_timeout=drop",
                 r"t\.conf:\d+: url_rewrite_timeout: unknown on_timeout action 'drop'"),
                ('url_rewrite_timeout 1 second response="OK"',
                 r"t\.conf:\d+: url_rewrite_timeout: response= goes with"),
                ("url_rewrite_timeout 1 second on_timeout=use_configured_response",
                 r"t\.conf:\d+: url_rewrite_timeout: response= goes with"),
                ("url_rewrite_timeout soon", r"t\.conf:\d+: url_rewrite_timeout: 'soon' is not"),
        ]:
            with self.subTest(line=line):
                path = os.path.join(self.tmp, "t.conf")
                with open(path, "w") as f:
                    f.write("http_port 127.0.0.1:0\n" + line + "\n")
                r = pdtest.run_proxyd("-t", "-c", path)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stderr, err)

    def test_no_answer_cache_by_default(self):
        p = self.proxy(conf_extra="url_rewrite_program %s\n" % self.rewriter(), dns=self.d,
                       workers=1)
        for _ in range(2):
            self.assertEqual(proxy_request(p, "GET", self.o.url("/plain", host="fine.test")).status,
                             200)
        self.assertEqual(len(self.helper_calls()), 2)
        self.assertEqual(p.stop(), 0)


if __name__ == "__main__":
    pdtest.main()
