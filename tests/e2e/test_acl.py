"""Access control end to end (issue 4): http_access with Squid's acl types on
the real binary, deny_info, maxconn, CONNECT rules, and the shipped
conf/proxy.conf. Denied requests must never reach the origin."""

import os
import re
import unittest

import pdtest
from pdtest import Client, Reply, proxy_request

BLOCK_CONF = """
acl bad dstdomain .blocked.test
acl badpath urlpath_regex -i ^/admin/
acl SSL_ports port 443
acl CONNECT method CONNECT
http_access deny CONNECT !SSL_ports
http_access deny bad
http_access deny badpath
"""


class DenyTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/*", lambda q: Reply(body=b"hello"))
        self.d = self.dns({"www.blocked.test": ("127.0.0.1", 60), "ok.test": ("127.0.0.1", 60),
                           "blocked.test": ("127.0.0.1", 60)})

    def test_denied_domain_never_reaches_origin(self):
        p = self.proxy(conf_extra=BLOCK_CONF, dns=self.d, workers=1)
        spellings = ["www.blocked.test", "WWW.Blocked.TEST", "blocked.test", "www.blocked.test."]
        for host in spellings:
            with self.subTest(host=host):
                r = proxy_request(p, "GET", self.o.url("/x", host=host))
                self.assertEqual(r.status, 403)
                self.assertEqual(r.get("x-squid-error"), "ERR_ACCESS_DENIED 0")
        # userinfo in the URL: refused one way or the other, never forwarded
        r = proxy_request(p, "GET", self.o.url("/x", host="user@www.blocked.test"))
        self.assertIn(r.status, (400, 403))
        r = proxy_request(p, "GET", self.o.url("/x", host="ok.test"))
        self.assertEqual((r.status, r.body), (200, b"hello"))
        self.assertEqual([q.path for q in self.o.snapshot()], ["/x"])
        self.assertEqual(p.stop(), 0)
        lines = p.access_lines()
        denied = [l for l in lines if " TCP_DENIED/403 " in l]
        self.assertEqual(len(denied), len(spellings), lines)

    def test_path_rule_not_bypassed_by_encoding(self):
        p = self.proxy(conf_extra=BLOCK_CONF, dns=self.d, workers=1)
        for path in ("/admin/x", "/ADMIN/x", "/%61dmin/x", "/x/../admin/y", "/./admin/y"):
            with self.subTest(path=path):
                r = proxy_request(p, "GET", self.o.url(path, host="ok.test"))
                self.assertEqual(r.status, 403)
        self.assertEqual(self.o.snapshot(), [])

    def test_connect_to_denied_port(self):
        e = self.echo()
        p = self.proxy(conf_extra=BLOCK_CONF, dns=self.d, workers=1)
        with Client(p.port) as c:
            r = c.request("CONNECT", "127.0.0.1:%d" % e.port, host=False)
            self.assertEqual(r.status, 403)
        self.assertEqual(e.connections, 0)

    def test_deny_info_redirect(self):
        p = self.proxy(conf_extra=BLOCK_CONF + "deny_info http://portal.test/blocked bad\n",
                       dns=self.d, workers=1)
        r = proxy_request(p, "GET", self.o.url("/x", host="www.blocked.test"))
        self.assertEqual(r.status, 302)
        self.assertEqual(r.get("location"), "http://portal.test/blocked")
        r = proxy_request(p, "GET", self.o.url("/admin/", host="ok.test"))
        self.assertEqual(r.status, 403)  # another acl decided: no deny_info for it
        self.assertEqual(self.o.snapshot(), [])

    def test_maxconn(self):
        p = self.proxy(conf_extra="acl many maxconn 2\nhttp_access deny many\n", dns=self.d,
                       workers=1)
        held = [Client(p.port), Client(p.port)]
        try:
            for c in held:
                self.assertEqual(c.request("GET", self.o.url("/a")).status, 200)
            with Client(p.port) as third:
                self.assertEqual(third.request("GET", self.o.url("/b")).status, 403)
        finally:
            for c in held:
                c.close()
        # the held connections are gone: requests pass again
        pdtest.wait_until(lambda: proxy_request(p, "GET", self.o.url("/c")).status == 200,
                          what="maxconn released")

    def test_no_http_access_denies_everything(self):
        p = self.proxy(http_access=None, dns=self.d, workers=1)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/x", host="ok.test")).status, 403)
        self.assertEqual(self.o.snapshot(), [])

    def test_implicit_last_rule(self):
        # the last line denies: anything it does not match is allowed
        p = self.proxy(conf_extra="acl bad dstdomain .blocked.test\n", http_access="deny bad",
                       dns=self.d, workers=1)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/x", host="ok.test")).status, 200)
        self.assertEqual(proxy_request(p, "GET", self.o.url("/x", host="blocked.test")).status, 403)


class ShippedConfTest(pdtest.ProxyTestCase):
    """conf/proxy.conf, with only http_port and logs changed, is not an open proxy
    and lets local clients use it."""

    def shipped(self, p):
        src = open(os.path.join(pdtest.source_dir(), "conf", "proxy.conf")).read()
        src = re.sub(r"(?m)^http_port .*$", "http_port 127.0.0.1:0", src)
        src = re.sub(r"(?m)^(access_log|pid_filename|cache_log) .*$", "", src)
        return src + "\naccess_log %s\npid_filename %s\nworkers 1\n" % (p.access_log, p.pid_file)

    def test_shipped_conf_denies_the_proxy_host(self):
        # http_access deny to_localhost: services on the proxy's own host are no target
        o = self.origin()
        p = self.proxy(start=False)
        p.write_conf(self.shipped(p))
        p.start()
        self.assertEqual(proxy_request(p, "GET", o.url("/x")).status, 403)
        self.assertEqual(len(o.requests), 0)

    def test_shipped_conf(self):
        o = self.origin()
        o.route("/*", lambda q: Reply(body=b"ok"))
        e = self.echo()
        p = self.proxy(start=False)
        # the test's origins are on loopback: without the to_localhost rule (tested above)
        src = self.shipped(p)
        self.assertEqual(len(re.findall(r"(?m)^http_access deny to_localhost$", src)), 1)
        p.write_conf(re.sub(r"(?m)^http_access deny to_localhost$", "", src))
        p.start()
        self.assertEqual(proxy_request(p, "GET", o.url("/x")).status, 200)
        with Client(p.port) as c:  # CONNECT only to 443
            self.assertEqual(c.request("CONNECT", "127.0.0.1:%d" % e.port, host=False).status, 403)
        # a port outside Safe_ports is refused before any connection is tried
        self.assertEqual(proxy_request(p, "GET", "http://127.0.0.1:25/").status, 403)
        self.assertEqual(e.connections, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
