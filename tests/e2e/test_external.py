"""external_acl_type (issue 14): the `external` acl asks a helper with the
request's values in Squid's formats; answers are reused for ttl and
negative_ttl; a failing helper denies; %LOGIN after Basic authentication;
Squid's own ext_file_userip_acl. A denied request never reaches the origin."""

import os
import subprocess
import unittest

import pdtest
from pdtest import Reply, basic_credentials, proxy_request, run_proxyd

USERIP = "/usr/lib/squid/ext_file_userip_acl"
NCSA = "/usr/lib/squid/basic_ncsa_auth"


class ExternalTest(pdtest.HelperTestCase):
    TMP_PREFIX = "pdtest-ext-"

    def setUp(self):
        super().setUp()
        self.o.route("/*", lambda q: Reply(body=b"hello"))

    def group_helper(self):
        """OK when the second word (the X-Group header) is the acl's value."""
        return self.script("group.sh", """
while read -r src grp data; do
  echo "$src $grp $data" >> %s
  if [ "$grp" = "$data" ]; then echo OK; else echo ERR; fi
done
""" % self.calls)

    def test_format_ttl_and_deny(self):
        conf = """
external_acl_type groups ttl=60 negative_ttl=0 %%SRC %%>{X-Group} %s
acl staff external groups staff
http_access allow staff
""" % self.group_helper()
        p = self.proxy(conf_extra=conf, workers=1, http_access="deny all")
        url = self.o.url("/g")
        for _ in range(3):
            r = proxy_request(p, "GET", url, headers=[("X-Group", "staff")])
            self.assertEqual(r.status, 200)
        # OK reused for ttl: one question for three requests
        self.assertEqual(self.helper_calls(), ["127.0.0.1 staff staff"])
        # ERR not kept (negative_ttl=0): asked each time; absent header: "-"
        for _ in range(2):
            self.assertEqual(proxy_request(p, "GET", url, headers=[("X-Group", "guest")]).status, 403)
        self.assertEqual(proxy_request(p, "GET", url).status, 403)
        self.assertEqual(self.helper_calls()[1:], ["127.0.0.1 guest staff"] * 2 + ["127.0.0.1 - staff"])
        # an unsafe byte is URL-escaped, never a word break
        self.assertEqual(proxy_request(p, "GET", url, headers=[("X-Group", "a b%")]).status, 403)
        self.assertEqual(self.helper_calls()[-1], "127.0.0.1 a%20b%25 staff")
        self.assertEqual(len(self.o.snapshot()), 3)

    def test_data_trailing_dash_and_concurrency(self):
        """%DATA with no acl values sends "-"; concurrency prefixes a channel ID."""
        prog = self.script("conc.sh", """
while read -r ch method data; do
  echo "$method $data" >> %s
  if [ "$method" = GET ]; then echo "$ch OK"; else echo "$ch ERR"; fi
done
""" % self.calls)
        conf = """
external_acl_type m concurrency=3 children-max=1 %%METHOD %%DATA %s
acl getonly external m
http_access allow getonly
""" % prog
        p = self.proxy(conf_extra=conf, workers=1, http_access="deny all")
        self.assertEqual(proxy_request(p, "GET", self.o.url("/a")).status, 200)
        self.assertEqual(proxy_request(p, "POST", self.o.url("/a"), body=b"x").status, 403)
        self.assertEqual(self.helper_calls(), ["GET -", "POST -"])

    def test_failing_helper_denies(self):
        """BH and a helper that dies: the deny line cannot be skipped."""
        for name, text in (("bh", 'while read -r l; do echo BH; done\n'),
                           ("crash", "read -r l; exit 1\n")):
            with self.subTest(helper=name):
                prog = self.script(name + ".sh", text)
                conf = """
external_acl_type blocklist %%DST %s
acl blocked external blocklist
http_access deny blocked
""" % prog
                p = self.proxy(conf_extra=conf, workers=1)
                for _ in range(2):
                    self.assertEqual(proxy_request(p, "GET", self.o.url("/b")).status, 403)
                self.assertEqual(p.stop(), 0)
        self.assertEqual(self.o.snapshot(), [])

    @unittest.skipUnless(os.access(USERIP, os.X_OK) and os.access(NCSA, os.X_OK),
                         "squid's helpers are not installed")
    def test_login_with_squid_userip_helper(self):
        passwd = os.path.join(self.tmp, "passwd")
        with open(passwd, "w") as f:
            for u in ("alice", "bob"):
                h = subprocess.run(["openssl", "passwd", "-apr1", "pw"], check=True,
                                   capture_output=True, text=True).stdout.strip()
                f.write("%s:%s\n" % (u, h))
        userip = os.path.join(self.tmp, "userip")
        with open(userip, "w") as f:
            f.write("127.0.0.1 alice\n")
        conf = """
auth_param basic program %s %s
external_acl_type userip %%SRC %%LOGIN %s -f %s
acl from_own_ip external userip
http_access allow from_own_ip
""" % (NCSA, passwd, USERIP, userip)
        p = self.proxy(conf_extra=conf, workers=1, http_access="deny all")
        url = self.o.url("/u")
        # %LOGIN needs credentials first: 407
        self.assertEqual(proxy_request(p, "GET", url).status, 407)
        self.assertEqual(proxy_request(p, "GET", url, headers=[basic_credentials("alice", "pw")]).status, 200)
        self.assertEqual(proxy_request(p, "GET", url, headers=[basic_credentials("bob", "pw")]).status, 403)
        self.assertEqual(len(self.o.snapshot()), 1)
        self.assertEqual(p.stop(), 0)
        users = [l.split()[7] for l in p.access_lines()]
        self.assertEqual(users, ["-", "alice", "bob"])

    def test_note_and_tag_from_the_reply(self):
        """The kv-pairs of an external helper's reply annotate the request: a
        later `note` or `tag` acl reads them, also when the answer comes from
        the worker's cache; message= is not an annotation."""
        helper = self.script("who.sh", """
while read -r path; do
  echo "$path" >> %s
  case "$path" in
    /a*) echo 'OK group=admins tag=vip message="hello admin"';;
    /b*) echo 'OK group=users';;
    /c*) echo 'OK group="admins" message=x';;
    *) echo 'ERR tag=vip';;
  esac
done
""" % self.calls)
        conf = """
external_acl_type who ttl=60 negative_ttl=60 %%PATH %s
acl e external who
acl admins note group admins
acl anygroup note group
acl vip tag vip
acl said note message
http_access deny said
http_access allow e admins vip
http_access allow e anygroup !admins
http_access deny all
""" % helper
        p = self.proxy(conf_extra=conf, workers=1, http_access=None)
        want = [("/a", 200), ("/b", 200), ("/c", 403), ("/d", 403), ("/a", 200), ("/c", 403)]
        got = [(path, proxy_request(p, "GET", self.o.url(path)).status) for path, _ in want]
        self.assertEqual(got, want)
        # the second /a and /c were answered (with their notes) from the worker's cache
        self.assertEqual(self.helper_calls(), ["/a", "/b", "/c", "/d"])
        self.assertEqual([q.path for q in self.o.snapshot()], ["/a", "/b", "/a"])

    def test_kv_pairs_in_logs_and_pages(self):
        """user=, tag=, log= and message= of an external helper's reply reach the
        access log (%ue %un %et %ea %note) and the error page codes (%a %o), as
        Squid puts them; an authenticated user's kv-pairs annotate too."""
        helper = self.script("kv.sh", """
while read -r path; do
  case "$path" in
    /ok*) echo 'OK user=bob tag=vip log="seen it" group=staff';;
    *) echo 'ERR message="not on the list" tag=out';;
  esac
done
""")
        log = os.path.join(self.tmp, "kv.log")
        conf = """
external_acl_type kv ttl=60 negative_ttl=60 %%PATH %s
acl e external kv
deny_info http://portal.test/deny?who=%%a&why=%%o e
http_access allow e
http_access deny !e
logformat kv %%un|%%ue|%%et|%%ea|%%{group}note|%%note
access_log %s kv
""" % (helper, log)
        p = self.proxy(conf_extra=conf, workers=1, http_access=None)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/ok")).status, 200)
        r = proxy_request(p, "GET", self.o.url("/no"))
        self.assertEqual(r.status, 302)
        self.assertEqual(r.get("location"), "http://portal.test/deny?who=-&why=not%20on%20the%20list")
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines(log)
        self.assertEqual(lines[0], "bob|bob|vip|seen%20it|staff|user:%20bob%0D%0Atag:%20vip"
                                   "%0D%0Alog:%20seen%20it%0D%0Agroup:%20staff")
        self.assertEqual(lines[1], "-|-|out|-|-|message:%20not%20on%20the%20list%0D%0Atag:%20out")

    def test_config_errors(self):
        prog = self.group_helper()
        cases = [
            ("external_acl_type x %%SRC\n", r"t\.conf:2: external_acl_type x: expected the helper"),
            ("external_acl_type x bogus=1 %%SRC %s\n" % prog, r"t\.conf:2: .*unknown option 'bogus=1'"),
            ("external_acl_type x %%<{X} %s\n" % prog, r"t\.conf:2: .*format '%<\{X\}' is not supported"),
            ("external_acl_type x ttl=abc %%SRC %s\n" % prog, r"t\.conf:2: .*bad value in 'ttl=abc'"),
            ("acl a external nosuch\n", r"t\.conf:2: acl a: unknown external_acl_type 'nosuch'"),
            ("external_acl_type x %%LOGIN %s\nacl a external x\n" % prog,
             r"t\.conf:3: acl a: external_acl_type x sends %LOGIN"),
            ("acl n note -m group admins\n", r"t\.conf:2: acl n: unsupported option '-m'"),
            ("acl n note\n", r"t\.conf:2: acl n: no values"),
            ("acl t tag\n", r"t\.conf:2: acl t: no values"),
        ]
        for text, want in cases:
            with self.subTest(text=text):
                path = os.path.join(self.tmp, "t.conf")
                with open(path, "w") as f:
                    f.write("http_port 127.0.0.1:0\n" + text.replace("%%", "%"))
                r = run_proxyd("-t", "-c", path)
                self.assertNotEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stderr, want)


if __name__ == "__main__":
    pdtest.main()
