"""Helper statistics (issue 14): per pool (auth_param basic, each
external_acl_type, url_rewrite_program) requests, replies by result, queue
length and its peak, children running and busy, restarts and the service
time, summed over the workers through the shared stats segment, in /metrics
(label helper = the configured name) and on Squid's manager pages
(squidclient mgr:basicauthenticator, mgr:external_acl, mgr:url_rewriter)."""

import os
import re
import shutil
import subprocess
import threading
import unittest

import pdtest
from pdtest import Reply, proxy_request, wait_until
from test_ops import Admin, metric

SQUIDCLIENT = shutil.which("squidclient")
MANAGER = "http_access allow localhost manager\nhttp_access deny manager\n"


def basic(user, password):
    return [pdtest.basic_credentials(user, password)]


def page_field(text, title, name, field):
    """The value of `field:` in the block `title: name` of a helper page."""
    block = text.split("%s: %s\n" % (title, name), 1)
    assert len(block) == 2, "no %s: %s in:\n%s" % (title, name, text)
    m = re.search(r"(?m)^%s: (.*)$" % re.escape(field), block[1])
    assert m, "no %s in:\n%s" % (field, block[1])
    return m.group(1)


class HelperStatsBase(pdtest.HelperTestCase):
    TMP_PREFIX = "pdtest-hst-"

    def setUp(self):
        super().setUp()
        self.o.route("/*", lambda q: Reply(body=b"ok"))

    def mgr(self, p, page):
        r = subprocess.run([SQUIDCLIENT, "-h", "127.0.0.1", "-p", str(p.port), "-T", "10",
                            "mgr:" + page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        head, _, body = r.stdout.partition("\n\n")
        self.assertRegex(head, r"^HTTP/1\.[01] 200", r.stderr)
        return body


class CountersTest(HelperStatsBase):
    def test_pools_counted_over_workers(self):
        auth = self.script("auth.sh", """
while read -r u p; do
  case "$u" in
    crash) exit 1;;
    bh) echo "BH message=\\"down\\"";;
    *) if [ "$p" = good ]; then echo OK; else echo ERR; fi;;
  esac
done
""")
        ext = self.script("ext.sh", 'while read -r l; do echo OK; done\n')
        rw = self.script("rw.sh", 'while read -r l; do echo ERR; done\n')
        conf = MANAGER + """admin_port 127.0.0.1:0
auth_param basic program %s
auth_param basic children 3 startup=1
external_acl_type grp ttl=0 negative_ttl=0 children-startup=1 %%URI %s
acl auth proxy_auth REQUIRED
acl e external grp
http_access deny !auth
http_access allow e
http_access deny all
url_rewrite_program %s
url_rewrite_children 2 startup=1
""" % (auth, ext, rw)
        p = self.proxy(conf_extra=conf, workers=2, http_access=None)
        a = Admin(p)
        for i in range(4):
            r = proxy_request(p, "GET", self.o.url("/u%d" % i), headers=basic("u%d" % i, "good"))
            self.assertEqual(r.status, 200)
        for user in ("x", "bh", "crash"):
            r = proxy_request(p, "GET", self.o.url("/" + user), headers=basic(user, "bad"))
            self.assertEqual(r.status, 407)
        self.assertEqual(len(self.o.snapshot()), 4)

        s = a.wait_metric(0, "proxyd_helper_children_busy", helper="basic", kind="auth")
        m = lambda name, **kw: metric(s, name, **kw)  # noqa: E731
        basic_ = dict(helper="basic", kind="auth")
        grp = dict(helper="grp", kind="external_acl")
        rew = dict(helper="url_rewrite", kind="url_rewrite")
        self.assertEqual(m("proxyd_helper_requests_total", **basic_), 7)
        self.assertEqual(m("proxyd_helper_replies_total", result="OK", **basic_), 4)
        self.assertEqual(m("proxyd_helper_replies_total", result="ERR", **basic_), 1)
        # BH: the helper's own, and the crash (once retried, then the pool's answer)
        self.assertEqual(m("proxyd_helper_replies_total", result="BH", **basic_), 2)
        self.assertEqual(m("proxyd_helper_restarts_total", **basic_), 2)
        self.assertEqual(m("proxyd_helper_requests_total", **grp), 4)
        self.assertEqual(m("proxyd_helper_replies_total", result="OK", **grp), 4)
        self.assertEqual(m("proxyd_helper_replies_total", result="ERR", **grp), 0)
        self.assertEqual(m("proxyd_helper_requests_total", **rew), 4)
        self.assertEqual(m("proxyd_helper_replies_total", result="ERR", **rew), 4)
        self.assertEqual(m("proxyd_helper_restarts_total", **rew), 0)
        for labels in (grp, rew):
            # startup=1 in each of the 2 workers (a worker that served none of the
            # requests may still be starting its pools on a loaded machine), nothing
            # waiting now
            wait_until(lambda labels=labels: (metric(a.metrics(), "proxyd_helper_children",
                                                     **labels) or 0) >= 2,
                       what="a started child in each worker's %s pool" % labels["helper"])
            self.assertEqual(m("proxyd_helper_queue_length", **labels), 0)
            self.assertGreater(m("proxyd_helper_response_seconds_total", **labels), 0)
        self.assertEqual(m("proxyd_helper_overflows_total", **basic_), 0)
        self.assertEqual(m("proxyd_helper_timeouts_total", **basic_), 0)
        # bounded: one series per configured pool, no store_id pool configured
        pools = {dict(k[1])["helper"] for k in s if k[0] == "proxyd_helper_requests_total"}
        self.assertEqual(pools, {"basic", "grp", "url_rewrite"})

        if not SQUIDCLIENT:
            return
        text = self.mgr(p, "basicauthenticator")
        t = "Basic Authenticator Statistics"
        self.assertEqual(page_field(text, t, "basic", "program"), auth)
        self.assertEqual(page_field(text, t, "basic", "requests sent"), "7")
        self.assertEqual(page_field(text, t, "basic", "replies received"),
                         "7 (OK 4, ERR 1, BH 2, other 0)")
        self.assertEqual(page_field(text, t, "basic", "restarts"), "2")
        self.assertEqual(page_field(text, t, "basic", "workers running it"), "2")
        text = self.mgr(p, "external_acl")
        self.assertEqual(page_field(text, "External ACL Statistics", "grp", "requests sent"), "4")
        text = self.mgr(p, "url_rewriter")
        self.assertEqual(page_field(text, "Redirector Statistics", "url_rewrite",
                                    "replies received"), "4 (OK 0, ERR 4, BH 0, other 0)")
        self.assertIn("none configured", self.mgr(p, "store_id"))
        self.assertIn("url_rewriter", self.mgr(p, "menu"))


class QueueTest(HelperStatsBase):
    def test_queue_length_peak_and_busy(self):
        """One rewriter child that answers only when the test says so: three
        requests make one busy child and two queued; the peak stays."""
        fifo = os.path.join(self.tmp, "go")
        os.mkfifo(fifo)
        rw = self.script("rw.sh", 'exec 3<>%s\nwhile read -r l; do read -r x <&3; echo ERR; done\n'
                         % fifo)
        conf = MANAGER + """admin_port 127.0.0.1:0
url_rewrite_program %s
url_rewrite_children 1 startup=1
""" % rw
        p = self.proxy(conf_extra=conf, workers=1)
        a = Admin(p)
        rew = dict(helper="url_rewrite", kind="url_rewrite")
        results = []
        threads = [threading.Thread(target=lambda i=i: results.append(
            proxy_request(p, "GET", self.o.url("/q%d" % i)).status)) for i in range(3)]
        for t in threads:
            t.start()
        a.wait_metric(2, "proxyd_helper_queue_length", **rew)
        s = a.wait_metric(1, "proxyd_helper_children_busy", **rew)
        self.assertEqual(metric(s, "proxyd_helper_queue_peak", **rew), 2)
        self.assertEqual(metric(s, "proxyd_helper_children", **rew), 1)
        self.assertEqual(metric(s, "proxyd_helper_requests_total", **rew), 3)
        if SQUIDCLIENT:
            text = self.mgr(p, "url_rewriter")
            self.assertEqual(page_field(text, "Redirector Statistics", "url_rewrite",
                                        "queue length"), "2 (peak 2)")
            self.assertEqual(page_field(text, "Redirector Statistics", "url_rewrite",
                                        "number active"), "1 (busy 1)")

        # the helper holds the FIFO open (read-write) from its start: each "go" is one answer
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, fd)
        for i in range(3):
            os.write(fd, b"go\n")
            wait_until(lambda: metric(a.metrics(), "proxyd_helper_replies_total", result="ERR",
                                      **rew) == i + 1, what="reply %d" % (i + 1))
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(results), [200, 200, 200])
        s = a.wait_metric(0, "proxyd_helper_queue_length", **rew)
        self.assertEqual(metric(s, "proxyd_helper_queue_peak", **rew), 2)
        self.assertEqual(metric(s, "proxyd_helper_children_busy", **rew), 0)


if __name__ == "__main__":
    pdtest.main()
