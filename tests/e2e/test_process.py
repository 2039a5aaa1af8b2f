"""The process model of proxyd (issue 2): master + workers, restart of a
killed worker, SIGHUP reload (valid while requests are in flight, invalid
refused with file:line), SIGTERM drain, SIGUSR1 log reopening."""

import os
import re
import shutil
import signal
import threading
import unittest

import pdtest
from pdtest import Reply, proxy_request, wait_until


def run_in_threads(n, fn):
    """Start n threads running fn(i); returns (threads, results dict i -> value or exception)."""
    results = {}

    def run(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # reported by the test's assertions
            results[i] = e
    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results


class ProcessTest(pdtest.ProxyTestCase):
    def test_workers_and_pid_file(self):
        p = self.proxy(workers=2)
        pids = p.wait_workers(2)
        self.assertNotIn(p.pid, pids)
        with open(p.pid_file) as f:
            self.assertEqual(f.read().strip(), str(p.pid))
        o = self.origin()
        for i in range(6):
            self.assertEqual(proxy_request(p, "GET", o.url("/w%d" % i)).status, 200)

    def test_worker_restarted_after_sigkill(self):
        p = self.proxy(workers=2)
        o = self.origin()
        old = p.wait_workers(2)
        os.kill(old[0], signal.SIGKILL)
        new = p.wait_workers(2, exclude=[old[0]], timeout=15)
        self.assertIn(old[1], new, "the surviving worker should keep running")
        self.assertTrue(p.alive())
        # fresh connections spread over both workers' sockets: all served
        for i in range(12):
            r = proxy_request(p, "GET", o.url("/after-kill/%d" % i), timeout=15)
            self.assertEqual((r.status, r.body), (200, b"ok /after-kill/%d" % i))

    def test_sighup_reload_with_requests_in_flight(self):
        p = self.proxy(workers=2, visible_hostname="before.test")
        slow = self.origin()
        probe = self.origin()
        go = threading.Event()
        slow.route("/slow/*", lambda q: Reply(body=b"slow body " + q.path.encode() * 100, wait=go))
        threads, results = run_in_threads(
            20, lambda i: proxy_request(p, "GET", slow.url("/slow/%d" % i), timeout=40))
        slow.wait_requests(20, timeout=20)
        port, master = p.port, p.pid

        p.write_conf(p.make_conf(visible_hostname="after.test"))
        p.signal(signal.SIGHUP)

        probe_failures = []

        def reloaded():
            # each probe is a new client connection during the reload: none may fail
            try:
                r = proxy_request(p, "GET", probe.url("/probe"), timeout=10)
            except (OSError, pdtest.Incomplete, pdtest.ProtocolError) as e:
                probe_failures.append(repr(e))
                return False
            if r.status != 200:
                probe_failures.append(repr(r))
            return r.status == 200 and "after.test" in (probe.snapshot()[-1].get("via") or "")
        pdtest.wait_until(reloaded, timeout=20, what="the new config (Via after.test) to serve", interval=0.02)
        self.assertEqual(probe_failures, [], "new connections failed during the reload")
        self.assertEqual((p.port, p.pid), (port, master))
        self.assertTrue(p.alive())

        go.set()
        for t in threads:
            t.join(40)
        for i in range(20):
            r = results.get(i)
            self.assertIsInstance(r, pdtest.Response, "in-flight request %d failed: %r" % (i, r))
            self.assertEqual((r.status, r.complete), (200, True), "request %d" % i)
            self.assertEqual(r.body, b"slow body " + ("/slow/%d" % i).encode() * 100)
        # every slow request went out once, under the old config
        got = slow.snapshot()
        self.assertEqual(sorted(q.path for q in got), sorted("/slow/%d" % i for i in range(20)))
        self.assertEqual([q.get("via") for q in got if "before.test" not in (q.get("via") or "")], [])
        self.assertEqual(p.wait_workers(2, timeout=15).__len__(), 2)

    def test_sighup_changes_worker_count(self):
        p = self.proxy(workers=2)
        o = self.origin()
        p.wait_workers(2)
        p.write_conf(p.make_conf(workers=3))
        p.signal(signal.SIGHUP)
        new = p.wait_workers(3, timeout=20)
        self.assertEqual(len(set(new)), 3)
        for i in range(9):
            self.assertEqual(proxy_request(p, "GET", o.url("/three/%d" % i)).status, 200)

    def test_sigint_drains_like_sigterm(self):
        p = self.proxy(workers=1, shutdown_lifetime="20 seconds")
        o = self.origin()
        go = threading.Event()
        o.route("/slow", lambda q: Reply(body=b"s" * 1000, wait=go))
        threads, results = run_in_threads(1, lambda i: proxy_request(p, "GET", o.url("/slow"), timeout=30))
        o.wait_requests(1)
        p.signal(signal.SIGINT)
        go.set()
        threads[0].join(30)
        self.assertIsInstance(results.get(0), pdtest.Response, results)
        self.assertEqual((results[0].status, results[0].body), (200, b"s" * 1000))
        self.assertEqual(p.wait_exit(25), 0)

    def test_sighup_invalid_config_refused(self):
        p = self.proxy(workers=2)
        o = self.origin()
        good = p.conf_text
        bad = good + "no_such_directive_xyz 42\n"
        lineno = bad.count("\n")
        p.write_conf(bad)
        mark = p.mark()
        p.signal(signal.SIGHUP)
        p.wait_stderr(r"proxy\.conf:%d\b" % lineno, timeout=15, start=mark,
                      what="file:line error for the bad config (proxy.conf:%d)" % lineno)
        self.assertTrue(p.alive())
        for i in range(6):
            r = proxy_request(p, "GET", o.url("/still/%d" % i))
            self.assertEqual(r.status, 200)
        got = o.snapshot()
        self.assertEqual([q.path for q in got], ["/still/%d" % i for i in range(6)])
        self.assertEqual([q.get("via") for q in got if "pdtest.local" not in (q.get("via") or "")], [])
        self.assertEqual(len(p.wait_workers(2)), 2)

    def test_sigterm_drains_in_flight(self):
        p = self.proxy(workers=2, shutdown_lifetime="20 seconds")
        o = self.origin()
        go = threading.Event()
        o.route("/before-head", lambda q: Reply(body=b"h" * 50000, wait=go))
        o.route("/mid-body", lambda q: Reply(body=b"m" * 50000, body_wait=go))
        workers = p.wait_workers(2)
        threads, results = run_in_threads(2, lambda i: proxy_request(
            p, "GET", o.url(("/before-head", "/mid-body")[i]), timeout=30))
        o.wait_requests(2)
        p.signal(signal.SIGTERM)
        go.set()
        for t in threads:
            t.join(30)
        for i, body in ((0, b"h" * 50000), (1, b"m" * 50000)):
            r = results.get(i)
            self.assertIsInstance(r, pdtest.Response, "in-flight request %d failed: %r" % (i, r))
            self.assertEqual((r.status, r.complete, r.body), (200, True, body))
        self.assertEqual(p.wait_exit(25), 0, "master exit code after SIGTERM")
        for w in workers:
            st = pdtest._proc_stat(w)
            self.assertTrue(st is None or st[0] == "Z" or "proxyd" not in st[2], "worker %d outlived the master" % w)

    def test_sigterm_idle_exits_promptly(self):
        p = self.proxy(workers=2, shutdown_lifetime="20 seconds")
        o = self.origin()
        c = pdtest.Client(p)  # an idle keep-alive client must not hold the drain
        self.addCleanup(c.close)
        self.assertEqual(c.request("GET", o.url("/idle")).status, 200)
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(10), 0)

    def test_sigusr1_reopens_access_log(self):
        p = self.proxy(workers=2)
        o = self.origin()
        self.assertEqual(proxy_request(p, "GET", o.url("/before")).status, 200)
        p.wait_access_lines(1)
        rotated = p.access_log + ".0"
        os.rename(p.access_log, rotated)
        p.signal(signal.SIGUSR1)
        sent = [1]

        def new_file_used():
            sent[0] += 1
            self.assertEqual(proxy_request(p, "GET", o.url("/after/%d" % sent[0])).status, 200)
            return os.path.exists(p.access_log) and len(p.access_lines()) > 0
        pdtest.wait_until(new_file_used, timeout=15, what="a new access.log after SIGUSR1", interval=0.1)
        self.assertEqual(p.stop(), 0)
        old_lines, new_lines = p.access_lines(rotated), p.access_lines()
        self.assertEqual([l for l in old_lines if "/before" in l].__len__(), 1, old_lines)
        self.assertGreaterEqual(len(new_lines), 1)
        self.assertTrue(all("/after/" in l for l in new_lines), new_lines)
        # every request is logged exactly once, in one file or the other
        self.assertEqual(len(old_lines) + len(new_lines), sent[0], (old_lines, new_lines))

    def test_sigusr1_reopens_cache_log(self):
        # logrotate renames cache.log and sends SIGUSR1: the master and every worker
        # must write to the new file from then on, none to the renamed one.
        p = self.proxy(workers=2, cache_log=True)
        workers = set(p.wait_workers(2))
        old = p.cache_log + ".1"
        os.rename(p.cache_log, old)
        p.signal(signal.SIGUSR1)
        rx = re.compile(r"\[(\d+)\] info: worker \d+: log files reopened$", re.M)
        wait_until(lambda: workers <= {int(m) for m in rx.findall(p.cache_log_text())},
                   what="'log files reopened' from both workers in the new cache.log")
        new_text, old_text = p.cache_log_text(), p.cache_log_text(old)
        self.assertRegex(new_text, r"\[%d\] info: SIGUSR1: reopening the log files" % p.pid)
        self.assertIn("proxyd: ready", old_text)
        self.assertNotIn("reopen", old_text)
        self.assertEqual(proxy_request(p, "GET", self.origin().url("/after-rotate")).status, 200)


class WorkersZeroTest(pdtest.ProxyTestCase):
    """`workers 0`: one worker per CPU the process may use, not per CPU of the host."""

    @unittest.skipUnless(shutil.which("taskset"), "taskset is not installed")
    def test_affinity_mask_counts(self):
        o = self.origin()
        cpus = sorted(os.sched_getaffinity(0))
        for mask in ([cpus[0]], cpus[:2]):
            with self.subTest(cpus=mask):
                p = self.proxy(workers=0, prefix=["taskset", "-c", ",".join(map(str, mask))])
                self.assertEqual(p.ready_workers(), len(mask))
                self.assertEqual(len(p.wait_workers(len(mask))), len(mask))
                for pid in [p.pid] + p.worker_pids():
                    self.assertEqual(os.sched_getaffinity(pid), set(mask))
                self.assertEqual(proxy_request(p, "GET", o.url("/w")).status, 200)
                p.stop()


if __name__ == "__main__":
    pdtest.main()
