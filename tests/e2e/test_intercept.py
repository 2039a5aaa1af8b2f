"""Interception (issue 13): `http_port ... intercept` behind an iptables REDIRECT
or DNAT rule, with a real client (curl) in a network namespace of the test's
own.

The client lives in namespace pdtest-cli-<pid>, joined to this (the root)
namespace by a veth pair on 10.201.X.0/24 (X picked so that no host address or
route uses it). The origin listens on 10.201.X.5 (an address of the root side
of the link), proxyd's intercept port on 10.201.X.1. The client asks the
origin directly (curl http://10.201.X.5:PORT/...); a nat PREROUTING rule on
the veth turns the connection towards proxyd, which must send the request to
the original destination and verify Host against it (cache only when it
matches). Everything the test creates carries its PID and is deleted by name,
even after a failure. Without root, ip netns or iptables the tests are skipped
with the reason.
"""

import os
import shutil
import subprocess
import unittest

import pdtest
from pdtest import Reply

TAG = os.getpid()
NS = "pdtest-cli-%d" % TAG
VETH_H = "pdi%dh" % TAG
VETH_N = "pdi%dn" % TAG


def run(*cmd, check=True):
    return subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=check, timeout=30)


def unusable():
    """Why the namespace tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (ip netns, veth, iptables)"
    for tool in ("ip", "iptables", "curl"):
        if not shutil.which(tool):
            return "%s not installed (apt-get install iproute2 iptables curl)" % tool
    probe = "pdtest-probe-%d" % TAG
    if run("ip", "netns", "add", probe, check=False).returncode != 0:
        return "ip netns add is not permitted here"
    run("ip", "netns", "del", probe, check=False)
    if run("iptables", "-t", "nat", "-S", "PREROUTING", check=False).returncode != 0:
        return "the iptables nat table is not usable"
    return None


def pick_net():
    """10.201.X with no address or route of this host in it."""
    used = run("ip", "-4", "addr").stdout + run("ip", "-4", "route").stdout
    for i in range(256):
        x = (TAG + i) % 250 + 2
        if "10.201.%d." % x not in used:
            return "10.201.%d" % x
    raise unittest.SkipTest("no free 10.201.X.0/24")


SKIP = unusable()


def teardown_net():
    run("ip", "netns", "del", NS, check=False)
    run("ip", "link", "del", VETH_H, check=False)


@unittest.skipIf(SKIP, SKIP or "")
class InterceptTest(pdtest.ProxyTestCase):
    @classmethod
    def setUpClass(cls):
        teardown_net()
        cls.addClassCleanup(teardown_net)
        net = cls.net = pick_net()
        for cmd in (["ip", "netns", "add", NS],
                    ["ip", "link", "add", VETH_H, "type", "veth", "peer", "name", VETH_N],
                    ["ip", "link", "set", VETH_N, "netns", NS],
                    ["ip", "addr", "add", net + ".1/24", "dev", VETH_H],
                    ["ip", "addr", "add", net + ".5/24", "dev", VETH_H],
                    ["ip", "link", "set", VETH_H, "up"],
                    ["ip", "netns", "exec", NS, "ip", "addr", "add", net + ".2/24", "dev", VETH_N],
                    ["ip", "netns", "exec", NS, "ip", "link", "set", VETH_N, "up"],
                    ["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"]):
            run(*cmd)

    def setUp(self):
        super().setUp()
        net = self.net
        self.o = self.origin(host=net + ".5")
        self.d = self.dns({"www.test": (net + ".5", 60), "evil.test": (net + ".77", 60)})
        self.p = self.proxy("http_port %s.1:0 intercept\ncache_mem 8 MB" % net, dns=self.d)
        # the ready line comes after every listening line
        ports = [int(m.group(2)) for m in map(pdtest.Proxy.LISTEN_RE.search,
                                               self.p.stderr_text().splitlines()) if m]
        self.assertEqual(len(ports), 2, self.p.stderr_text())
        self.iport = ports[1]

    def nat(self, *rule):
        """Append a nat PREROUTING rule on our veth; deleted (by its text) at cleanup."""
        spec = ["PREROUTING", "-i", VETH_H, "-p", "tcp"] + list(rule)
        run("iptables", "-t", "nat", "-A", *spec)
        self.addCleanup(run, "iptables", "-t", "nat", "-D", *spec, check=False)

    def curl(self, url, *extra):
        """(status, body) of curl run in the client namespace."""
        noproxy = [] if "-x" in extra else ["--noproxy", "*"]
        r = run("ip", "netns", "exec", NS, "curl", "-sS", *noproxy, "--max-time", "10",
                "-o", "-", "-w", "\n%{http_code}", *extra, url, check=False)
        body, _, status = r.stdout.rpartition("\n")
        self.assertTrue(status.isdigit(), "curl failed: %s %s" % (r.stdout, r.stderr))
        return int(status), body

    def redirect(self):
        self.nat("-d", self.net + ".5", "--dport", str(self.o.port), "-j", "REDIRECT",
                 "--to-ports", str(self.iport))

    def test_redirect_to_the_original_destination(self):
        self.redirect()
        self.o.route("/r", lambda q: Reply(body="from origin"))
        url = "http://%s.5:%d/r" % (self.net, self.o.port)
        self.assertEqual(self.curl(url), (200, "from origin"))
        self.assertEqual(len(self.o.requests), 1)
        req = self.o.requests[0]
        self.assertEqual(req.target, "/r")
        self.assertEqual(req.get("Host"), "%s.5:%d" % (self.net, self.o.port))
        self.assertIn("pdtest.local", req.get("Via") or "")
        # logged as the URL the client meant
        lines = self.p.wait_access_lines(1)
        self.assertIn(url, lines[-1])
        self.assertIn(" ORIGINAL_DST/%s.5 " % self.net, lines[-1])
        self.assertNoOriginErrors(self.o)

    def test_dnat_and_a_verified_host_is_cached(self):
        self.nat("-d", self.net + ".5", "--dport", str(self.o.port), "-j", "DNAT",
                 "--to-destination", "%s.1:%d" % (self.net, self.iport))
        self.o.route("/c", lambda q: Reply(body="cached body", headers=[("Cache-Control", "max-age=60")]))
        url = "http://%s.5:%d/c" % (self.net, self.o.port)
        host = ["-H", "Host: www.test:%d" % self.o.port]
        self.assertEqual(self.curl(url, *host), (200, "cached body"))
        self.assertEqual(self.curl(url, *host), (200, "cached body"))
        self.assertEqual(len(self.o.requests), 1, "a verified Host shares the cache")
        self.assertEqual(self.o.requests[0].get("Host"), "www.test:%d" % self.o.port)
        lines = self.p.wait_access_lines(2)
        self.assertIn("HIT", lines[-1])
        self.assertIn("http://www.test:%d/c" % self.o.port, lines[-1])

    def test_forged_host_goes_to_the_original_destination_uncached(self):
        self.redirect()
        self.o.route("/f", lambda q: Reply(body="real", headers=[("Cache-Control", "max-age=60")]))
        url = "http://%s.5:%d/f" % (self.net, self.o.port)
        # evil.test resolves elsewhere (10.201.X.77, nobody): Host is not the destination
        forged = ["-H", "Host: evil.test:%d" % self.o.port]
        for _ in range(2):
            self.assertEqual(self.curl(url, *forged), (200, "real"))
        self.assertEqual(len(self.o.requests), 2, "an unverified Host is never cached")
        self.assertGreaterEqual(self.d.queries("evil.test"), 1)
        # and it was not stored under evil.test either: a forward request misses
        self.assertEqual(self.curl(url, *forged)[0], 200)
        self.assertEqual(len(self.o.requests), 3)
        # a Host without the port the client connected to: unverified too
        self.assertEqual(self.curl(url, "-H", "Host: www.test"), (200, "real"))
        self.assertEqual(self.curl(url, "-H", "Host: www.test"), (200, "real"))
        self.assertEqual(len(self.o.requests), 5)
        # Squid's security warning, rate-limited
        self.p.wait_stderr(r"Host evil\.test:%d does not name the original destination" % self.o.port)

    def test_parent_for_a_verified_host_only(self):
        # an intercepting child with a parent and never_direct: a verified Host goes
        # through the parent; a forged one to the original destination only
        parent = self.proxy("cache deny all\n", dns=self.d, workers=1, visible_hostname="parent.test")
        child = self.proxy("http_port %s.1:0 intercept\ncache deny all\n"
                           "cache_peer 127.0.0.1 parent %d 0 no-query name=up\n"
                           "never_direct allow all\n" % (self.net, parent.port),
                           dns=self.d, workers=1)
        ports = [int(m.group(2)) for m in map(pdtest.Proxy.LISTEN_RE.search,
                                               child.stderr_text().splitlines()) if m]
        self.nat("-d", self.net + ".5", "--dport", str(self.o.port), "-j", "DNAT",
                 "--to-destination", "%s.1:%d" % (self.net, ports[1]))
        url = "http://%s.5:%d/pp" % (self.net, self.o.port)
        self.assertEqual(self.curl(url, "-H", "Host: www.test:%d" % self.o.port)[0], 200)
        lines = parent.wait_access_lines(1)
        self.assertIn("http://www.test:%d/pp" % self.o.port, lines[-1])
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child.wait_access_lines(1)[-1])
        self.assertEqual(self.curl(url, "-H", "Host: evil.test:%d" % self.o.port)[0], 200)
        self.assertIn(" ORIGINAL_DST/", child.wait_access_lines(2)[-1])
        self.assertEqual(len(parent.access_lines()), 1)
        self.assertEqual(len(self.o.requests), 2)

    def test_absolute_form_goes_to_the_original_destination(self):
        # Squid takes absolute-form on an intercept port too; the destination stays the
        # connection's, so the port is no open proxy to elsewhere
        self.redirect()
        self.o.route("/a", lambda q: Reply(body="here"))
        r = run("ip", "netns", "exec", NS, "curl", "-sS", "--max-time", "10", "-o", "-",
                "-x", "http://%s.5:%d" % (self.net, self.o.port),
                "http://evil.test:%d/a" % self.o.port, check=False)
        self.assertEqual(r.stdout, "here", r.stderr)
        self.assertEqual(len(self.o.requests), 1)
        self.assertEqual(self.o.requests[0].get("Host"), "evil.test:%d" % self.o.port)

    def test_direct_connection_to_the_intercept_port_is_refused(self):
        # no NAT: the original destination is proxyd itself (a loop)
        status, body = self.curl("http://%s.1:%d/x" % (self.net, self.iport))
        self.assertEqual(status, 403, body + "\n".join(self.p.access_lines()))
        status, _ = self.curl("http://%s.5:%d/x" % (self.net, self.o.port),
                              "-x", "http://%s.1:%d" % (self.net, self.iport))
        self.assertEqual(status, 403)
        self.assertEqual(len(self.o.requests), 0)


if __name__ == "__main__":
    pdtest.main()
