"""Fail closed (issue 13): what proxyd does not implement never weakens a
configuration. proxyd -t reports every error and warning in one pass and
counts them; an access_log that cannot be opened stops -t and the start; a
second proxyd on a running one's address does not start; proxyd's own
listeners (admin port, http_port) are never reached through the proxy,
whatever http_access says."""

import os
import re
import shutil
import signal
import tempfile

import pdtest
from pdtest import Reply, proxy_request, run_proxyd

ADMIN_RE = re.compile(r"proxyd: admin listening on ([\d.]+):(\d+)")
SUMMARY_RE = re.compile(r"^proxyd: configuration file \S+ (is OK|test failed) "
                        r"\((\d+) errors?, (\d+) warnings?\)$")


def write(dirname, name, text):
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(text)
    return path


class CheckTest(pdtest.ProxyTestCase):
    def check(self, text):
        """proxyd -t on text: (exit code, message lines, summary match)."""
        d = self.tmpdir()
        r = run_proxyd("-t", "-c", write(d, "t.conf", text))
        lines = r.stderr.strip().splitlines()
        m = SUMMARY_RE.match(lines[-1])
        self.assertIsNotNone(m, r.stderr)
        return r.returncode, lines[:-1], m

    def tmpdir(self):
        if not getattr(self, "_tmp", None):
            self._tmp = tempfile.mkdtemp(prefix="pdtest-fc-")
            self.addCleanup(shutil.rmtree, self._tmp, True)
        return self._tmp

    def test_every_error_in_one_pass_and_counted(self):
        # a syntax error, an acl error, a security-relevant directive, a port mode,
        # an unknown acl in http_access, and two warnings (one of them from acl.c)
        rc, msgs, m = self.check(
            "workers x\n"
            "acl a src 999.1.1.1\n"
            "coredump_dir /var/spool/squid\n"
            "cache_peer_domain parent.example .example.com\n"
            "http_port 127.0.0.1:3130 tproxy\n"
            "acl net src 10.0.0.1/8\n"
            "http_access allow nosuch\n")
        self.assertEqual(rc, 1)
        self.assertEqual(m.group(1), "test failed")
        errors = [l for l in msgs if ": warning: " not in l]
        warnings = [l for l in msgs if ": warning: " in l]
        self.assertEqual(int(m.group(2)), len(errors), msgs)
        self.assertEqual(int(m.group(3)), len(warnings), msgs)
        for line in (1, 2, 4, 5, 7):
            self.assertTrue(any(l.startswith("%s/t.conf:%d: " % (self._tmp, line)) for l in errors),
                            "no error for line %d: %s" % (line, msgs))
        self.assertIn("cache_peer_domain is not implemented by proxyd: ", "\n".join(errors))
        self.assertIn("option 'tproxy' is not implemented by proxyd: ", "\n".join(errors))
        self.assertEqual(len(warnings), 2, msgs)

    def test_warnings_only_is_ok_and_counted(self):
        rc, msgs, m = self.check("http_port 127.0.0.1:0\ncoredump_dir /x\nlogfile_rotate 0\n"
                                 "icap_enable off\n")
        self.assertEqual(rc, 0, msgs)
        self.assertEqual((m.group(1), m.group(2), m.group(3)), ("is OK", "0", "3"))
        self.assertEqual(len(msgs), 3)

    def test_access_log_that_cannot_be_opened(self):
        d = self.tmpdir()
        missing = os.path.join(d, "no-such-dir", "access.log")
        text = "http_port 127.0.0.1:0\nworkers 1\naccess_log %s squid\n" % missing
        rc, msgs, m = self.check(text)
        self.assertEqual(rc, 1)
        self.assertEqual(msgs, ["%s/t.conf:3: access_log: cannot open %s: No such file or directory"
                                % (d, missing)])
        self.assertEqual(m.group(2), "1")
        # a directory is no log either
        rc, msgs, _ = self.check("access_log %s\n" % d)
        self.assertEqual(rc, 1)
        self.assertRegex(msgs[0], r"access_log: cannot open .*: Is a directory$")
        # -t of a good one creates nothing
        good = os.path.join(d, "later.log")
        rc, msgs, _ = self.check("access_log %s\n" % good)
        self.assertEqual(rc, 0, msgs)
        self.assertFalse(os.path.exists(good))
        # and the proxy does not start: no worker serves without its log
        r = run_proxyd("-c", write(d, "start.conf", text))
        self.assertEqual(r.returncode, 1)
        self.assertIn("access_log: cannot open %s" % missing, r.stderr)
        self.assertNotIn("proxyd: ready", r.stderr)


class SecondInstanceTest(pdtest.ProxyTestCase):
    def test_second_proxyd_on_a_held_address_does_not_start(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"first"))
        first = self.proxy(workers=2, conf_extra="admin_port 127.0.0.1:0")
        admin_port = int(first.wait_stderr(ADMIN_RE, what="the admin line").group(2))
        # a deny-all second instance on the same http_port
        second = self.proxy(workers=2, http_access="deny all", start=False)
        second.write_conf(second.make_conf(http_access="deny all").replace(
            "http_port 127.0.0.1:0", "http_port 127.0.0.1:%d" % first.port))
        with self.assertRaises(AssertionError):
            second.start()
        self.assertEqual(second.proc.wait(timeout=pdtest.DEFAULT_TIMEOUT), 1)
        self.assertRegex(second.stderr_text(),
                         r"proxy\.conf:\d+: http_port 127\.0\.0\.1:%d: the address is in use by "
                         r"another process" % first.port)
        # the same for the admin port alone
        third = self.proxy(workers=1, start=False)
        third.write_conf(third.make_conf("admin_port 127.0.0.1:%d" % admin_port))
        with self.assertRaises(AssertionError):
            third.start()
        self.assertEqual(third.proc.wait(timeout=pdtest.DEFAULT_TIMEOUT), 1)
        self.assertRegex(third.stderr_text(), r"admin_port 127\.0\.0\.1:%d: the address is in use"
                         % admin_port)
        # every client still reaches the first (a new connection each: the kernel
        # would spread them over both instances if the second had started)
        for i in range(20):
            r = proxy_request(first, "GET", o.url("/%d" % i))
            self.assertEqual((r.status, r.body), (200, b"first"))

    def test_reload_cannot_take_a_held_address(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"first"))
        first = self.proxy(workers=1)
        second = self.proxy(workers=1, http_access="deny all")
        mark = second.mark()
        second.write_conf(second.make_conf(
            "http_port 127.0.0.1:%d" % first.port, http_access="deny all"))
        second.signal(signal.SIGHUP)
        second.wait_stderr(r"http_port 127\.0\.0\.1:%d: the address is in use by another process"
                           % first.port, start=mark)
        second.wait_stderr(r"reload refused", start=mark)
        for i in range(20):
            r = proxy_request(first, "GET", o.url("/%d" % i))
            self.assertEqual((r.status, r.body), (200, b"first"))
        # the second keeps serving with its old configuration
        self.assertEqual(proxy_request(second, "GET", o.url("/x")).status, 403)

    def test_quick_stop_and_start_on_the_same_port(self):
        o = self.origin()
        # a port the kernel never hands out itself: no test beside this one can
        # take it between the stop and the start
        port = pdtest.unused_port()
        p = self.proxy(workers=1, start=False)
        p.write_conf(p.make_conf().replace("http_port 127.0.0.1:0", "http_port 127.0.0.1:%d" % port))
        p.start()
        self.assertEqual(p.port, port)
        self.assertEqual(proxy_request(p, "GET", o.url("/a")).status, 200)
        p.stop()
        q = self.proxy(workers=1, start=False)
        q.write_conf(q.make_conf().replace("http_port 127.0.0.1:0", "http_port 127.0.0.1:%d" % port))
        q.start()
        self.assertEqual(q.port, port)
        self.assertEqual(proxy_request(q, "GET", o.url("/b")).status, 200)


class OwnListenersTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/*", lambda q: Reply(body=b"origin"))
        self.dns = self.dns({"admin.test": ("127.0.0.1", 60), "origin.test": ("127.0.0.1", 60)})
        # allow all: the refusal does not depend on http_access
        self.p = self.proxy(workers=1, dns=self.dns, conf_extra="admin_port 127.0.0.1:0")
        self.admin = int(self.p.wait_stderr(ADMIN_RE, what="the admin line").group(2))

    def assertDenied(self, method, url):
        r = proxy_request(self.p, method, url)
        self.assertEqual(r.status, 403, r.text)
        self.assertEqual(r.get("X-Squid-Error"), "ERR_ACCESS_DENIED 0")
        self.assertIn("the destination is the proxy itself", r.text)
        return r

    def test_admin_port_and_own_port_are_refused(self):
        n = 0
        for method, url in (
                ("GET", "http://127.0.0.1:%d/stats" % self.admin),
                ("GET", "http://admin.test:%d/metrics" % self.admin),   # after DNS
                ("GET", "http://0.0.0.0:%d/stats" % self.admin),        # 0.0.0.0 is this host
                ("GET", "http://127.0.0.1:%d/" % self.p.port),          # a loop
                ("CONNECT", "127.0.0.1:%d" % self.admin)):
            self.assertDenied(method, url)
            n += 1
        lines = self.p.wait_access_lines(n)
        self.assertEqual(len([l for l in lines if " TCP_DENIED/403 " in l]), n, lines)

    def test_origins_on_loopback_still_work(self):
        for url in (self.o.url("/x"), "http://origin.test:%d/y" % self.o.port):
            r = proxy_request(self.p, "GET", url)
            self.assertEqual((r.status, r.body), (200, b"origin"))
        self.assertEqual(len(self.o.requests), 2)


if __name__ == "__main__":
    pdtest.main()
