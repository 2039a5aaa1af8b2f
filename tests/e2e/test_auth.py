"""Basic proxy authentication (issue 14): auth_param basic with Squid's own
helper (basic_ncsa_auth and an htpasswd file made here) and with scripted
helpers; proxy_auth REQUIRED, user lists and proxy_auth_regex; 407 with the
challenge; the credentials cache; the user in the access log; fail closed
when the helper breaks. A refused request never reaches the origin."""

import base64
import os
import re
import shutil
import subprocess
import unittest

import pdtest
from pdtest import Client, Reply, proxy_request, run_proxyd

NCSA = "/usr/lib/squid/basic_ncsa_auth"


def basic(user, password):
    return [pdtest.basic_credentials(user, password)]


class AuthBase(pdtest.HelperTestCase):
    TMP_PREFIX = "pdtest-auth-"

    def setUp(self):
        super().setUp()
        self.o.route("/*", lambda q: Reply(body=b"hello"))

    def assert_challenge(self, r, realm):
        self.assertEqual(r.status, 407, r.body)
        self.assertEqual(r.get("proxy-authenticate"), 'Basic realm="%s"' % realm)
        self.assertEqual(r.get("x-squid-error"), "ERR_CACHE_ACCESS_DENIED 0")


@unittest.skipUnless(os.access(NCSA, os.X_OK), "squid's basic_ncsa_auth is not installed")
class NcsaTest(AuthBase):
    def setUp(self):
        super().setUp()
        self.passwd = os.path.join(self.tmp, "passwd")
        users = [("alice", "secret"), ("bob", "p@ss w:rd%20+")]
        with open(self.passwd, "w") as f:
            for u, pw in users:
                h = subprocess.run(["openssl", "passwd", "-apr1", pw], check=True,
                                   capture_output=True, text=True).stdout.strip()
                f.write("%s:%s\n" % (u, h))
        self.conf = """
auth_param basic program %s %s
auth_param basic children 2 startup=1
auth_param basic realm proxyd test
auth_param basic credentialsttl 1 hour
acl auth proxy_auth REQUIRED
http_access deny !auth
""" % (NCSA, self.passwd)

    def test_407_then_200_and_user_logged(self):
        p = self.proxy(conf_extra=self.conf, workers=1)
        url = self.o.url("/x")
        self.assert_challenge(proxy_request(p, "GET", url), "proxyd test")
        self.assert_challenge(proxy_request(p, "GET", url, headers=basic("alice", "wrong")),
                              "proxyd test")
        self.assert_challenge(proxy_request(p, "GET", url, headers=basic("nobody", "secret")),
                              "proxyd test")
        # not Basic, not base64, no colon: 407, never a crash or a pass
        for bad in ("Digest x", "Basic !!!", "Basic " + base64.b64encode(b"alice").decode()):
            self.assert_challenge(proxy_request(p, "GET", url,
                                                headers=[("Proxy-Authorization", bad)]),
                                  "proxyd test")
        self.assertEqual(self.o.snapshot(), [])
        r = proxy_request(p, "GET", url, headers=basic("alice", "secret"))
        self.assertEqual((r.status, r.body), (200, b"hello"))
        # escaped on the way to the helper: space, colon, percent, plus, at
        r = proxy_request(p, "GET", url, headers=basic("bob", "p@ss w:rd%20+"))
        self.assertEqual((r.status, r.body), (200, b"hello"))
        # casesensitive off: the user name is lower-cased before the helper sees it
        r = proxy_request(p, "GET", url, headers=basic("ALICE", "secret"))
        self.assertEqual(r.status, 200)
        reqs = self.o.snapshot()
        self.assertEqual(len(reqs), 3)
        for q in reqs:
            self.assertFalse(q.has("Proxy-Authorization"), "credentials forwarded")
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines()
        self.assertEqual(len([l for l in lines if " TCP_DENIED/407 " in l]), 6, lines)
        ok = [l.split() for l in lines if "/200 " in l]
        self.assertEqual([f[7] for f in ok], ["alice", "bob", "alice"], lines)
        denied = [l.split() for l in lines if "/407 " in l]
        self.assertTrue(all(f[7] == "-" for f in denied), lines)

    def test_keep_alive_retry_after_407(self):
        """A client answers the challenge on the same connection (as browsers do)."""
        p = self.proxy(conf_extra=self.conf, workers=1)
        with Client(p) as c:
            r = c.request("GET", self.o.url("/a"))
            self.assert_challenge(r, "proxyd test")
            self.assertFalse(r.closed)
            r = c.request("GET", self.o.url("/a"), basic("alice", "secret"))
            self.assertEqual(r.status, 200)
            r = c.request("GET", self.o.url("/b"), basic("alice", "secret"))
            self.assertEqual(r.status, 200)
        self.assertEqual([q.path for q in self.o.snapshot()], ["/a", "/b"])

    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_curl(self):
        p = self.proxy(conf_extra=self.conf, workers=2)
        proxy = "http://%s:%d" % (pdtest.HOST, p.port)
        url = self.o.url("/c")

        def curl(*extra):
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                "--noproxy", "", "-x", proxy] + list(extra) + [url],
                               capture_output=True, text=True, timeout=30)
            return r.stdout
        self.assertEqual(curl(), "407")
        self.assertEqual(curl("-U", "alice:nope"), "407")
        self.assertEqual(curl("-U", "alice:secret"), "200")
        self.assertEqual(len(self.o.snapshot()), 1)


class CredentialsNotLeakedTest(AuthBase):
    """Proxy credentials stop at proxyd: the origin never sees
    Proxy-Authorization (with auth, without auth, named in Connection), and
    no log shows them, even a logformat that logs every request header."""

    PASSWORD = "Zq9-very-secret"

    def test_never_forwarded_never_logged(self):
        helper = self.script("h.sh", """
while read -r u p; do
  if [ "$p" = %s ]; then echo OK; else echo "ERR message=\\"wrong\\""; fi
done
""" % self.PASSWORD)
        log = os.path.join(self.tmp, "all.log")
        conf = """
auth_param basic program %s
acl auth proxy_auth REQUIRED
http_access deny !auth
logformat all %%un %%>h|%%{Proxy-Authorization}>h
access_log %s all
""" % (helper, log)
        p = self.proxy(conf_extra=conf, workers=1, cache_log=True)
        good = basic("erin", self.PASSWORD)
        token = good[0][1].split()[1]
        r = proxy_request(p, "GET", self.o.url("/a"), headers=good)
        self.assertEqual(r.status, 200)
        r = proxy_request(p, "GET", self.o.url("/b"),
                          headers=good + [("Connection", "Proxy-Authorization")])
        self.assertEqual(r.status, 200)
        bad = basic("erin", self.PASSWORD + "x")
        self.assertEqual(proxy_request(p, "GET", self.o.url("/c"), headers=bad).status, 407)
        reqs = self.o.snapshot()
        self.assertEqual([q.path for q in reqs], ["/a", "/b"])
        for q in reqs:
            self.assertFalse(q.has("Proxy-Authorization"), "credentials forwarded")
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines(log)
        self.assertEqual(len(lines), 3, lines)
        text = "\n".join(lines) + p.cache_log_text()
        for secret in (self.PASSWORD, token, bad[0][1].split()[1]):
            self.assertNotIn(secret, text)
        # the header was logged, redacted to its scheme; other headers are intact
        for l in lines:
            user, rest = l.split(" ", 1)
            allh, named = rest.split("|")
            self.assertEqual(named, "Basic%20*", l)  # escaped as Squid does
            self.assertIn("Proxy-Authorization:%20Basic%20*", allh, l)
            self.assertIn("Host:%20", allh, l)
        self.assertEqual([l.split()[0] for l in lines], ["erin", "erin", "-"])

    def test_not_forwarded_without_auth(self):
        """With no auth_param the header is still the proxy's, never the origin's."""
        p = self.proxy(workers=1)
        r = proxy_request(p, "GET", self.o.url("/n"), headers=basic("frank", "pw"))
        self.assertEqual(r.status, 200)
        reqs = self.o.snapshot()
        self.assertEqual(len(reqs), 1)
        self.assertFalse(reqs[0].has("Proxy-Authorization"))


class ScriptedHelperTest(AuthBase):
    """A helper that records each question: the cache, user lists, failures."""

    def counting_helper(self):
        return self.script("helper.sh", """
while read -r u p; do
  echo "$u" >> %s
  if [ "$p" = good ]; then echo OK; else echo "ERR message=\\"wrong\\""; fi
done
""" % self.calls)

    def ncalls(self):
        return sum(len(l.split()) for l in self.helper_calls())

    def test_credentials_cached_for_ttl(self):
        conf = """
auth_param basic program %s
acl auth proxy_auth REQUIRED
http_access deny !auth
""" % self.counting_helper()
        p = self.proxy(conf_extra=conf, workers=1)
        for i in range(4):
            r = proxy_request(p, "GET", self.o.url("/%d" % i), headers=basic("carol", "good"))
            self.assertEqual(r.status, 200)
        self.assertEqual(self.ncalls(), 1)
        # a refused pair is asked again every time (only accepted pairs are cached)
        for i in range(2):
            r = proxy_request(p, "GET", self.o.url("/n"), headers=basic("carol", "bad"))
            self.assertEqual(r.status, 407)
        self.assertEqual(self.ncalls(), 3)
        # another password for the same user is not the cached pair
        r = proxy_request(p, "GET", self.o.url("/n"), headers=basic("carol", "good2"))
        self.assertEqual(r.status, 407)
        self.assertEqual(len(self.o.snapshot()), 4)

    def test_user_list_and_regex(self):
        conf = """
auth_param basic program %s
auth_param basic casesensitive on
acl admins proxy_auth alice Carol
acl bees proxy_auth_regex ^b
acl src_local src 127.0.0.0/8
http_access allow admins
http_access allow bees
http_access deny src_local
""" % self.counting_helper()
        p = self.proxy(conf_extra=conf, workers=1, http_access="deny all")
        url = self.o.url("/u")
        self.assertEqual(proxy_request(p, "GET", url, headers=basic("alice", "good")).status, 200)
        self.assertEqual(proxy_request(p, "GET", url, headers=basic("Carol", "good")).status, 200)
        self.assertEqual(proxy_request(p, "GET", url, headers=basic("bert", "good")).status, 200)
        # authenticated but in no list: the deciding line is `deny src_local`: 403
        r = proxy_request(p, "GET", url, headers=basic("carol", "good"))
        self.assertEqual(r.status, 403)
        self.assertEqual(r.get("x-squid-error"), "ERR_ACCESS_DENIED 0")
        self.assertEqual(len(self.o.snapshot()), 3)

    def test_allowed_before_auth_needs_no_credentials(self):
        """An http_access line that allows before any proxy_auth acl is reached asks
        nothing of the helper (Squid evaluates acls lazily)."""
        conf = """
auth_param basic program %s
acl open urlpath_regex ^/open
acl auth proxy_auth REQUIRED
http_access allow open
http_access allow auth
""" % self.counting_helper()
        p = self.proxy(conf_extra=conf, workers=1, http_access="deny all")
        self.assertEqual(proxy_request(p, "GET", self.o.url("/open")).status, 200)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/closed")).status, 407)
        self.assertEqual(self.ncalls(), 0)

    def test_helper_failure_refuses(self):
        """BH, a helper that dies on each request, a helper that cannot start:
        every request is refused, none reaches the origin."""
        helpers = {
            "bh": self.script("bh.sh", 'while read -r l; do echo "BH message=\\"db down\\""; done\n'),
            "crash": self.script("crash.sh", "read -r l; exit 1\n"),
            "missing": os.path.join(self.tmp, "no-such-helper"),
        }
        for name, prog in helpers.items():
            with self.subTest(helper=name):
                conf = """
auth_param basic program %s
acl auth proxy_auth REQUIRED
http_access deny !auth
""" % prog
                p = self.proxy(conf_extra=conf, workers=1)
                for i in range(3):
                    r = proxy_request(p, "GET", self.o.url("/f"), headers=basic("dave", "good"))
                    self.assertEqual(r.status, 407)
                self.assertEqual(p.stop(), 0)
        self.assertEqual(self.o.snapshot(), [])

    def test_silent_helper_bounded_by_request_timeout(self):
        """A helper that never answers holds a request for request_timeout at most: then
        503, never a pass; the connection is not left hanging."""
        prog = self.script("silent.sh", "exec cat >/dev/null\n")
        conf = """
request_timeout 1 second
auth_param basic program %s
auth_param basic children 1
acl auth proxy_auth REQUIRED
http_access deny !auth
""" % prog
        p = self.proxy(conf_extra=conf, workers=1)
        r = proxy_request(p, "GET", self.o.url("/s"), headers=basic("frank", "good"))
        self.assertEqual(r.status, 503)
        self.assertEqual(r.get("x-squid-error"), "ERR_CANNOT_FORWARD 0")
        self.assertEqual(self.o.snapshot(), [])

    def test_concurrency_channels(self):
        """concurrency=4: the request carries a channel ID, the helper answers with it."""
        prog = self.script("conc.sh", """
while read -r ch u p; do
  if [ "$p" = good ]; then echo "$ch OK"; else echo "$ch ERR"; fi
done
""")
        conf = """
auth_param basic program %s
auth_param basic children 1 concurrency=4
acl auth proxy_auth REQUIRED
http_access deny !auth
""" % prog
        p = self.proxy(conf_extra=conf, workers=1)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/1"), headers=basic("eve", "good")).status, 200)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/2"), headers=basic("eve", "bad")).status, 407)


class ConfigTest(AuthBase):
    def check(self, text):
        path = os.path.join(self.tmp, "t.conf")
        with open(path, "w") as f:
            f.write("http_port 127.0.0.1:0\n" + text)
        r = run_proxyd("-t", "-c", path)
        return r.returncode, r.stderr

    def test_errors(self):
        prog = self.script("ok.sh", "while read -r l; do echo OK; done\n")
        cases = [
            ("acl a proxy_auth REQUIRED\nhttp_access allow a\n", r"t\.conf:2: acl a: proxy_auth needs"),
            ("auth_param digest program %s\n" % prog, r"t\.conf:2: auth_param: scheme 'digest'"),
            ("auth_param negotiate program %s\n" % prog, r"t\.conf:2: auth_param: scheme 'negotiate'"),
            ("auth_param basic realm x\n", r"t\.conf:2: auth_param basic: no `auth_param basic program`"),
            ("auth_param basic program %s\nauth_param basic children 0\n" % prog, r"t\.conf:3: .*children"),
            ("auth_param basic program %s\nauth_param basic utf8 on\n" % prog, r"t\.conf:3: .*utf8"),
            ("auth_param basic program %s\nauth_param basic bogus 1\n" % prog, r"t\.conf:3: .*unknown parameter"),
            ("auth_param basic program relative/path\n", r"t\.conf:2: .*absolute path"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                rc, err = self.check(text)
                self.assertNotEqual(rc, 0, err)
                self.assertRegex(err, want)
        rc, err = self.check("auth_param basic program %s\nacl a proxy_auth REQUIRED\n"
                             "http_access allow a\n" % prog)
        self.assertEqual(rc, 0, err)



class AuthNotesTest(AuthBase):
    def test_kv_pairs_of_an_ok_annotate_the_request(self):
        """`OK group=admins` from the auth helper: a later `note` acl matches it,
        also when the credentials come from the cache (the helper is asked
        once); %note logs it."""
        calls = os.path.join(self.tmp, "calls")
        helper = self.script("h.sh", """
while read -r u p; do
  echo "$u" >> %s
  case "$u" in
    ann) echo 'OK group=admins';;
    *) echo OK;;
  esac
done
""" % calls)
        log = os.path.join(self.tmp, "n.log")
        conf = """
auth_param basic program %s
acl auth proxy_auth REQUIRED
acl admins note group admins
http_access deny !auth
http_access allow admins
http_access deny all
logformat n %%un %%{group}note
access_log %s n
""" % (helper, log)
        p = self.proxy(conf_extra=conf, workers=1, http_access=None)
        for _ in range(2):
            self.assertEqual(proxy_request(p, "GET", self.o.url("/a"),
                                           headers=basic("ann", "pw")).status, 200)
            self.assertEqual(proxy_request(p, "GET", self.o.url("/b"),
                                           headers=basic("ben", "pw")).status, 403)
        with open(calls) as f:
            self.assertEqual(f.read().split(), ["ann", "ben"])
        self.assertEqual(p.stop(), 0)
        self.assertEqual(p.access_lines(log), ["ann admins", "ben -"] * 2)

if __name__ == "__main__":
    pdtest.main()
