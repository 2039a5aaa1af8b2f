"""proxyd_cluster (issue 16): three proxyd instances on 127.0.0.11/12/13, same
port, find each other through a name our DNS server resolves to the three, and
CARP-hash each URL to its owner. Asserted: a URL fetched through any member
reaches the origin once, and the other members' requests for it are forwarded
to the owner (counted on both sides, logged CARP/<owner>); POST goes direct; a
stopped member's URLs are served by the next owner (one origin fetch each, then
hits); a member added to the DNS answer is picked up when the TTL runs out;
miss_access is checked before a request is forwarded; proxy_auth is checked by
the owner too (the member passes the credentials on)."""

import base64
import os
import re
import shutil
import tempfile

import pdtest
from pdtest import Client, Reply, wait_until
from test_ops import Admin, metric

IPS = ["127.0.0.11", "127.0.0.12", "127.0.0.13"]
NAME = "cluster.test"


def proxy_request(p, method, url, body=None, headers=None):
    """One request on a fresh connection to the member's own address."""
    with Client(p.port, host=p.ip) as c:
        return c.request(method, url, headers, body=body)


class ClusterTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/*", lambda q: Reply(body=b"obj " + q.path.encode(),
                                           headers=[("Cache-Control", "max-age=300")]))
        self.port = 0
        self.o_dir = tempfile.mkdtemp(prefix="pdtest-cluster-")
        self.addCleanup(shutil.rmtree, self.o_dir, True)

    def member(self, ip, dns, extra="", workers=1):
        """A member listening on ip and the cluster's port (the first one picks it).
        Every member has the same visible_hostname, as pods of one Deployment may."""
        p = self.proxy(workers=workers, dns=dns, start=False, visible_hostname="member.test",
                       conf_extra="admin_port %s:0\nproxyd_cluster %s min-ttl=1 max-ttl=2\n%s"
                       % (ip, NAME, extra))
        p.ip = ip
        p.write_conf(p.conf_text.replace("http_port 127.0.0.1:0", "http_port %s:%d" % (ip, self.port)))
        p.start()
        self.port = p.port
        p.admin = Admin(p)
        return p

    def m(self, p, name):
        return metric(p.admin.metrics(), name) or 0

    def wait_members(self, p, n):
        """Until every worker of p has logged n members (the gauge is the largest over them)."""
        line = "proxyd_cluster %s: %d members" % (NAME, n)
        wait_until(lambda: sum(1 for l in p.stderr_lines if l and line in l) >= p.workers and
                   self.m(p, "proxyd_cluster_members") == n,
                   what="every worker of %s sees %d cluster members" % (p.ip, n))

    def fetch(self, p, path):
        r = proxy_request(p, "GET", self.o.url(path))
        self.assertEqual((r.status, r.body), (200, b"obj " + path.encode()), r)
        return r

    def owner_lines(self, p):
        """The paths p fetched from the origin itself."""
        return {l.split()[6].split(":%d" % self.o.port, 1)[1] for l in p.access_lines()
                if " HIER_DIRECT/" in l and " TCP_MISS/200 " in l}

    def test_each_url_reaches_the_origin_once(self):
        d = self.dns({NAME: (IPS, 1)})
        # two workers each: every worker resolves the name and finds dead members itself
        ms = [self.member(ip, d, workers=2) for ip in IPS]
        for p in ms:
            self.wait_members(p, 3)
        paths = ["/u%d" % i for i in range(30)]
        for i, path in enumerate(paths):
            # first through one member, then through the other two
            for k in range(3):
                self.fetch(ms[(i + k) % 3], path)
        for path in paths:
            self.assertEqual(len(self.o.requests_for(path)), 1, path)
        # per URL: the two requests that arrived at non-owners were forwarded
        fwd = sum(self.m(p, "proxyd_cluster_forwarded_total") for p in ms)
        served = sum(self.m(p, "proxyd_cluster_served_total") for p in ms)
        self.assertEqual((fwd, served), (60, 60))
        # every member owns some of the 30 (each misses all with p = (2/3)^30)
        # each member logs its 30 client requests and those it served as the owner
        for p in ms:
            p.wait_access_lines(30 + self.m(p, "proxyd_cluster_served_total"))
        owned = [self.owner_lines(p) for p in ms]
        self.assertEqual(sorted(set().union(*owned)), sorted(paths))
        self.assertEqual(sum(len(x) for x in owned), 30, owned)
        for p, mine in zip(ms, owned):
            self.assertTrue(mine, "%s owns none of the URLs" % p.ip)
        # a non-owner logs where it went: CARP/<the owner's address>
        carp = [l for l in ms[0].access_lines() if " CARP/" in l]
        self.assertEqual(len(carp), 30 - len(owned[0]))
        for l in carp:
            m = re.search(r" CARP/(\S+) ", l)
            self.assertIn(m.group(1), IPS[1:], l)
            path = l.split()[6].split(":%d" % self.o.port, 1)[1]
            self.assertIn(path, owned[IPS.index(m.group(1))], l)

        # not for the cluster: a POST goes to the origin from where it arrived
        before = fwd
        r = proxy_request(ms[0], "POST", self.o.url("/post"), body=b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(self.o.requests_for("/post")), 1)
        self.assertEqual(sum(self.m(p, "proxyd_cluster_forwarded_total") for p in ms), before)

        # a member stops: its URLs go to the next owner by CARP, fetched once more there
        gone = ms[2]
        gone_paths = owned[2]
        gone.stop()
        for path in sorted(gone_paths):
            self.fetch(ms[0], path)
            self.fetch(ms[1], path)
        for path in paths:
            self.assertEqual(len(self.o.requests_for(path)), 2 if path in gone_paths else 1, path)
        for p in ms[:2]:
            self.assertGreaterEqual(self.m(p, "proxyd_cluster_member_failures_total"), 1)
        # the survivors' own URLs are still hits at their owner
        for path in sorted(owned[0] | owned[1])[:6]:
            self.fetch(ms[0], path)
            self.fetch(ms[1], path)
            self.assertEqual(len(self.o.requests_for(path)), 1, path)

    def test_member_added_to_the_name(self):
        d = self.dns({NAME: (IPS[:2], 1)})
        a, b = self.member(IPS[0], d), self.member(IPS[1], d)
        for p in (a, b):
            self.wait_members(p, 2)
        c = self.member(IPS[2], d)
        d.add(NAME, IPS, 1)
        for p in (a, b, c):
            self.wait_members(p, 3)
        # the new member owns its share now: some of 30 URLs asked at a go to it
        for i in range(30):
            self.fetch(a, "/n%d" % i)
        self.assertGreater(self.m(c, "proxyd_cluster_served_total"), 0)
        self.assertEqual(self.m(c, "proxyd_cluster_served_total") +
                         self.m(b, "proxyd_cluster_served_total"),
                         self.m(a, "proxyd_cluster_forwarded_total"))
        for i in range(30):
            self.assertEqual(len(self.o.requests_for("/n%d" % i)), 1)

    def test_miss_access_holds_before_forwarding(self):
        # the owner sees the forwarding member as the client: the member's own
        # miss_access must decide before it forwards (Squid checks it before a parent)
        d = self.dns({NAME: (IPS, 1)})
        a = self.member(IPS[0], d, "acl nomiss urlpath_regex ^/denied\nmiss_access deny nomiss")
        b, c = self.member(IPS[1], d), self.member(IPS[2], d)
        for p in (a, b, c):
            self.wait_members(p, 3)
        for i in range(12):
            r = proxy_request(a, "GET", self.o.url("/denied%d" % i))
            self.assertEqual(r.status, 403, r)
            self.assertIn("ERR_FORWARDING_DENIED", r.get("x-squid-error") or "")
        self.assertEqual(self.o.requests, [])
        self.assertEqual(self.m(a, "proxyd_cluster_forwarded_total"), 0)
        self.assertEqual(self.m(b, "proxyd_cluster_served_total") + self.m(c, "proxyd_cluster_served_total"), 0)
        # what it allows still goes to the owners
        for i in range(12):
            self.fetch(a, "/allowed%d" % i)
        self.assertGreater(self.m(a, "proxyd_cluster_forwarded_total"), 0)
        self.assertEqual(len(self.o.requests), 12)

    def test_proxy_auth_checked_by_the_owner_too(self):
        # the owner sees the member as the client: the member passes the client's
        # credentials on (Proxy-Authorization is hop-by-hop otherwise), so a cluster
        # whose http_access needs proxy_auth works, and refuses without them
        helper = os.path.join(self.o_dir, "auth.sh")
        with open(helper, "w") as f:
            f.write('#!/bin/sh\nwhile read -r u p; do if [ "$u $p" = "alice secret" ]; '
                    'then echo OK; else echo ERR; fi; done\n')
        os.chmod(helper, 0o755)
        extra = ("auth_param basic program %s\nacl users proxy_auth REQUIRED\n"
                 "http_access allow users\nhttp_access deny all" % helper)
        d = self.dns({NAME: (IPS, 1)})
        ms = [self.member(ip, d, extra) for ip in IPS]
        for p in ms:
            self.wait_members(p, 3)
        cred = [("Proxy-Authorization", "Basic " + base64.b64encode(b"alice:secret").decode())]
        for i in range(12):
            r = proxy_request(ms[0], "GET", self.o.url("/a%d" % i), headers=cred)
            self.assertEqual((r.status, r.body), (200, b"obj /a%d" % i), r)
        self.assertGreater(self.m(ms[0], "proxyd_cluster_forwarded_total"), 0)
        self.assertEqual(len(self.o.requests), 12)
        for path in ("/a0", "/other"):
            r = proxy_request(ms[0], "GET", self.o.url(path))
            self.assertEqual(r.status, 407)
        self.assertEqual(len(self.o.requests), 12)

    def test_configuration_errors(self):
        for line, msg in (("proxyd_cluster", "proxyd_cluster"),
                          ("proxyd_cluster bad/name", "not a host name"),
                          ("proxyd_cluster c.test 70000", "not a port"),
                          ("proxyd_cluster c.test self=nothere", "self= takes an IP"),
                          ("proxyd_cluster c.test min-ttl=9 max-ttl=3", "min-ttl is above"),
                          ("proxyd_cluster c.test weight=2", "unknown option"),
                          ("proxyd_cluster a.test\nproxyd_cluster b.test", "only one")):
            p = self.proxy(workers=1, start=False, conf_extra=line)
            r = pdtest.run_proxyd("-t", "-c", p.conf_path)
            self.assertNotEqual(r.returncode, 0, line)
            self.assertIn(msg, r.stderr, line)
            self.assertRegex(r.stderr, r"proxy\.conf:\d+: ", line)


if __name__ == "__main__":
    pdtest.main()
