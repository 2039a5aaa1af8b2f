"""Operations (issue 5): counters that match a scripted run exactly, /metrics
checked by a strict Prometheus text-format parser (and promtool when it is
installed), counters that survive a worker SIGKILL, /healthz going 503 while
no worker is up, admin access through http_access and the `manager` acl,
Squid's cache manager pages on the admin and the proxy port, logformat,
access_log none/stdout, and SIGUSR1 log reopening."""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time

import pdtest
from pdtest import Client, Reply, parse_response, proxy_request, raw, wait_until

ADMIN_RE = re.compile(r"proxyd: admin listening on (\S+):(\d+)\s*$")

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
SAMPLE_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_prometheus(text):
    """Strict parser of the text format 0.0.4. Returns ({(name, labels): value},
    {family: type}); raises AssertionError on any deviation."""
    assert text.endswith("\n"), "exposition must end with a newline"
    samples, types, helps, seen_samples = {}, {}, set(), set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        assert line, "empty " + where
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert len(parts) >= 4 and parts[0] == "#" and parts[1] in ("HELP", "TYPE"), where
            name = parts[2]
            assert NAME_RE.match(name), where
            assert name not in seen_samples, "HELP/TYPE after samples: " + where
            if parts[1] == "HELP":
                assert name not in helps, "second HELP: " + where
                assert parts[3].strip(), "empty HELP: " + where
                helps.add(name)
            else:
                assert name not in types, "second TYPE: " + where
                assert parts[3] in ("counter", "gauge", "histogram", "summary", "untyped"), where
                types[name] = parts[3]
            current = name
            continue
        m = SAMPLE_RE.match(line)
        assert m, "bad sample " + where
        name, labels = m.group(1), m.group(3) or ""
        family = name
        if family not in types:
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                    family = name[:-len(suffix)]
        assert family in types and family in helps, "sample without TYPE/HELP: " + where
        assert family == current, "sample outside its family block: " + where
        seen_samples.add(family)
        pairs = []
        rest = labels
        while rest:
            lm = LABEL_RE.match(rest)
            assert lm, "bad labels " + where
            pairs.append((lm.group(1), lm.group(2)))
            rest = rest[lm.end():]
            if rest:
                assert rest.startswith(","), "bad label separator " + where
                rest = rest[1:]
        assert len({k for k, _ in pairs}) == len(pairs), "duplicate label " + where
        v = m.group(4)
        value = float(v)  # raises on garbage; +Inf/-Inf/NaN are valid
        if types[family] == "counter":
            assert value >= 0, "negative counter " + where
        key = (name, tuple(sorted(pairs)))
        assert key not in samples, "duplicate series " + where
        samples[key] = value
    # histogram rules
    for fam, t in types.items():
        if t != "histogram":
            continue
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                          if k[0] == fam + "_bucket"))
        assert buckets and buckets[-1][0] == float("inf"), fam + ": no +Inf bucket"
        for (_, a), (_, b) in zip(buckets, buckets[1:]):
            assert b >= a, fam + ": buckets not cumulative"
        assert samples[(fam + "_count", ())] == buckets[-1][1], fam + ": _count != +Inf bucket"
        assert (fam + "_sum", ()) in samples
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


class Admin:
    """HTTP access to a proxy's admin listener."""

    def __init__(self, proxy):
        m = proxy.wait_stderr(ADMIN_RE, what="the 'admin listening' line")
        self.host, self.port = m.group(1), int(m.group(2))

    def get(self, path):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.getheader("Content-Type"), r.read().decode()
        finally:
            c.close()

    def metrics(self):
        status, ctype, body = self.get("/metrics")
        assert status == 200, (status, body)
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        return parse_prometheus(body)[0]

    def wait_metric(self, value, name, **labels):
        """Poll until the metric has the value (a transaction is counted just
        after its last byte is queued); the final samples."""
        last = {}

        def ok():
            last["s"] = self.metrics()
            return metric(last["s"], name, **labels) == value
        try:
            wait_until(ok, what="%s%s == %s" % (name, labels, value))
        except AssertionError:
            raise AssertionError("%s%s is %s, want %s" % (
                name, labels, metric(last["s"], name, **labels), value))
        return last["s"]


ADMIN = "admin_port 127.0.0.1:0"


class CountersTest(pdtest.ProxyTestCase):
    def test_counters_match_a_scripted_run(self):
        o = self.origin()
        o.route("/big/*", lambda q: Reply(body=b"x" * 5000))
        p = self.proxy(workers=2, conf_extra=ADMIN + "\nacl blocked dstdomain blocked.test\n"
                       "http_access deny blocked")
        a = Admin(p)
        sent = received = 0
        # Connection: close on each, so that raw() returns exactly what the client got
        reqs = []
        for i in range(10):
            reqs.append(("GET", b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
                o.url("/big/%d" % i).encode(), o.authority.encode()), 200))
        for i in range(3):
            reqs.append(("HEAD", b"HEAD %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (
                o.url("/big/h%d" % i).encode(), o.authority.encode()), 200))
        for i in range(2):
            body = b"p" * (100 + i)
            reqs.append(("POST", b"POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (o.url("/post/%d" % i).encode(),
                                                          o.authority.encode(), len(body), body), 200))
        reqs.append(("GET", b"GET http://blocked.test/ HTTP/1.1\r\nHost: blocked.test\r\n"
                     b"Connection: close\r\n\r\n", 403))
        for method, data, status in reqs:
            out = raw(p, data)
            self.assertEqual(parse_response(out, method).status, status)
            sent += len(data)
            received += len(out)
        s = a.wait_metric(16, "proxyd_request_duration_seconds_count")
        self.assertEqual(metric(s, "proxyd_requests_total", method="GET"), 11)
        self.assertEqual(metric(s, "proxyd_requests_total", method="HEAD"), 3)
        self.assertEqual(metric(s, "proxyd_requests_total", method="POST"), 2)
        self.assertEqual(metric(s, "proxyd_requests_total", method="PUT"), 0)
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_MISS"), 15)
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_DENIED"), 1)
        self.assertEqual(metric(s, "proxyd_cache_misses_total"), 15)
        self.assertEqual(metric(s, "proxyd_cache_hits_total"), 0)
        self.assertEqual(metric(s, "proxyd_responses_total", **{"class": "2xx"}), 15)
        self.assertEqual(metric(s, "proxyd_responses_total", **{"class": "4xx"}), 1)
        self.assertEqual(metric(s, "proxyd_errors_total", kind="ERR_ACCESS_DENIED"), 1)
        self.assertEqual(metric(s, "proxyd_client_received_bytes_total"), sent)
        self.assertEqual(metric(s, "proxyd_client_sent_bytes_total"), received)
        self.assertEqual(metric(s, "proxyd_client_connections_total"), 16)
        self.assertEqual(metric(s, "proxyd_time_to_first_byte_seconds_count"), 16)
        # keep-alive to the origin: each origin connection opened once, then reused
        self.assertEqual(metric(s, "proxyd_origin_connections_opened_total"), o.connections)
        self.assertEqual(metric(s, "proxyd_origin_connections_opened_total") +
                         metric(s, "proxyd_origin_connections_reused_total"), 15)
        self.assertEqual(len(o.requests), 15)
        # the origin side: what the origin received is what we say we sent
        self.assertGreater(metric(s, "proxyd_origin_received_bytes_total"), 10 * 5000)
        self.assertEqual(metric(s, "proxyd_workers"), 2)
        a.wait_metric(2, "proxyd_workers_up")  # both may not have finished starting yet
        self.assertEqual(metric(s, "proxyd_config_generation"), 1)
        # the access log agrees byte for byte
        lines = p.wait_access_lines(16)
        self.assertEqual(sum(int(l.split()[4]) for l in lines), received)
        # /stats (JSON) and the cache manager pages show the same numbers
        status, ctype, body = a.get("/stats")
        self.assertEqual((status, ctype), (200, "application/json"))
        j = json.loads(body)
        self.assertEqual(j["requests_total"]["GET"], 11)
        self.assertEqual(j["client_sent_bytes_total"], received)
        self.assertEqual(j["request_duration_seconds"]["count"], 16)
        self.assertTrue(j["healthy"])
        status, _, info = a.get("/squid-internal-mgr/info")
        self.assertEqual(status, 200)
        self.assertIn("\tNumber of HTTP requests received:\t16\n", info)
        status, _, counters = a.get("/squid-internal-mgr/counters")
        self.assertIn("\nclient_http.requests = 16\n", counters)
        self.assertIn("\nclient_http.kbytes_out = %d\n" % (received >> 10), counters)

    def test_hits_and_misses_are_counted_exactly(self):
        o = self.origin()
        o.route("/c/*", lambda q: Reply(body=b"c" * 3000, headers=[("Cache-Control", "max-age=600")]))
        p = self.proxy(workers=2, conf_extra=ADMIN)
        a = Admin(p)
        urls = [o.url("/c/%d" % i) for i in range(3)]
        for u in urls:                      # 3 misses, stored
            self.assertEqual(proxy_request(p, "GET", u).status, 200)
        a.wait_metric(3, "proxyd_cache_objects")
        for _ in range(2):                  # 6 hits
            for u in urls:
                r = proxy_request(p, "GET", u)
                self.assertEqual((r.status, len(r.body)), (200, 3000))
        s = a.wait_metric(9, "proxyd_request_duration_seconds_count")
        self.assertEqual(len(o.requests), 3)
        self.assertEqual(metric(s, "proxyd_cache_misses_total"), 3)
        self.assertEqual(metric(s, "proxyd_cache_hits_total"), 6)
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_MEM_HIT"), 6)
        self.assertEqual(metric(s, "proxyd_results_total", code="TCP_MISS"), 3)
        self.assertEqual(metric(s, "proxyd_cache_attached"), 1)
        self.assertGreater(metric(s, "proxyd_cache_used_bytes"), 9000)
        self.assertGreater(metric(s, "proxyd_cache_free_bytes"), 0)
        hits = [l for l in p.wait_access_lines(9) if " TCP_MEM_HIT/200 " in l]
        self.assertEqual(len(hits), 6)
        _, _, info = a.get("/squid-internal-mgr/info")
        self.assertIn("\tHits as % of all requests:\t5min: 66.7%, 60min: 66.7%\n", info)

    def test_metrics_parse_strictly_and_with_promtool(self):
        o = self.origin()
        p = self.proxy(workers=2, conf_extra=ADMIN)
        a = Admin(p)
        for i in range(3):
            self.assertEqual(proxy_request(p, "GET", o.url("/m/%d" % i)).status, 200)
        a.wait_metric(3, "proxyd_requests_total", method="GET")
        status, _, body = a.get("/metrics")
        samples, types = parse_prometheus(body)
        self.assertEqual(types["proxyd_request_duration_seconds"], "histogram")
        self.assertEqual(types["proxyd_client_connections"], "gauge")
        rss = [v for (n, l), v in samples.items() if n == "proxyd_worker_resident_memory_bytes"]
        self.assertEqual(len(rss), 2)
        self.assertTrue(all(v > 0 for v in rss))
        self.assertEqual(len([k for k in samples if k[0] == "proxyd_worker_cpu_seconds_total"]), 2)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=body.encode(),
                               capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the same counters are printed by `proxyd --print-metrics` (the docs' table)
        r = pdtest.run_proxyd("--print-metrics")
        for fam in types:
            self.assertIn("`%s`" % fam, r.stdout)

    def test_counters_survive_a_worker_sigkill(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra=ADMIN)
        a = Admin(p)
        for i in range(5):
            self.assertEqual(proxy_request(p, "GET", o.url("/k/%d" % i)).status, 200)
        a.wait_metric(5, "proxyd_requests_total", method="GET")
        old = p.wait_workers(1)
        os.kill(old[0], signal.SIGKILL)
        p.wait_workers(1, exclude=old, timeout=15)
        for i in range(3):
            self.assertEqual(proxy_request(p, "GET", o.url("/k2/%d" % i), timeout=15).status, 200)
        s = a.wait_metric(8, "proxyd_requests_total", method="GET")
        self.assertEqual(metric(s, "proxyd_worker_starts_total"), 2)
        self.assertEqual(metric(s, "proxyd_client_connections_total"), 8)
        self.assertEqual(metric(s, "proxyd_request_duration_seconds_count"), 8)


class ReloadTest(pdtest.ProxyTestCase):
    def test_counters_carry_over_a_reload(self):
        o = self.origin()
        p = self.proxy(workers=2, conf_extra=ADMIN)
        a = Admin(p)
        for i in range(4):
            self.assertEqual(proxy_request(p, "GET", o.url("/r/%d" % i)).status, 200)
        a.wait_metric(4, "proxyd_requests_total", method="GET")
        old = p.wait_workers(2)
        p.write_conf(p.conf_text.replace("workers 2", "workers 3"))
        p.signal(signal.SIGHUP)
        s = a.wait_metric(2, "proxyd_config_generation")
        p.wait_workers(3, exclude=old, timeout=20)
        s = a.wait_metric(3, "proxyd_workers_up")
        self.assertEqual(metric(s, "proxyd_workers"), 3)
        self.assertEqual(metric(s, "proxyd_requests_total", method="GET"), 4)
        self.assertEqual(a.get("/healthz")[0], 200)
        # the old generation's slots are released when the master reaps its workers
        wait_until(lambda: len([k for k in a.metrics() if k[0] == "proxyd_worker_cpu_seconds_total"]) == 3,
                   what="3 worker processes in /metrics")
        for i in range(2):
            self.assertEqual(proxy_request(p, "GET", o.url("/r2/%d" % i)).status, 200)
        a.wait_metric(6, "proxyd_requests_total", method="GET")

    def test_bad_logformat_is_a_configuration_error(self):
        d = self.tmp = __import__("tempfile").mkdtemp(prefix="pdtest-ops-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "p.conf")
        with open(path, "w") as f:
            f.write("http_port 127.0.0.1:0\nlogformat mine %ts %Qq\naccess_log stdout mine\n")
        r = pdtest.run_proxyd("-t", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"p\.conf:2: logformat mine: .*%Qq")


class HealthTest(pdtest.ProxyTestCase):
    def test_healthz_is_503_while_no_worker_is_up(self):
        p = self.proxy(workers=1, conf_extra=ADMIN)
        a = Admin(p)
        wait_until(lambda: a.get("/healthz")[0] == 200, what="healthz 200")
        self.assertEqual(a.get("/healthz")[2], "ok\n")
        first = p.wait_workers(1)
        os.kill(first[0], signal.SIGKILL)
        # a worker that dies within 1 s of its start is restarted only after 1 s:
        # kill the replacement at once, and the master has no worker for a second
        second = p.wait_workers(1, exclude=first, timeout=15)
        os.kill(second[0], signal.SIGKILL)
        seen = {}

        def down():
            st, _, body = a.get("/healthz")
            seen["body"] = body
            return st == 503
        wait_until(down, timeout=5, what="healthz 503", interval=0.01)
        self.assertIn("0 of 1 workers of generation 1 are up", seen["body"])
        # the admin listener (in the master) keeps answering meanwhile
        samples = a.metrics()
        self.assertEqual(metric(samples, "proxyd_workers"), 1)
        self.assertLessEqual(metric(samples, "proxyd_workers_up"), 1)
        p.wait_workers(1, exclude=first + second, timeout=15)
        wait_until(lambda: a.get("/healthz")[0] == 200, what="healthz 200 again")


class AccessTest(pdtest.ProxyTestCase):
    def test_admin_refuses_what_http_access_denies(self):
        p = self.proxy(workers=1, conf_extra=ADMIN + "\nacl admins src 10.0.0.0/8\n"
                       "http_access allow admins manager\nhttp_access deny manager")
        a = Admin(p)
        for path in ("/metrics", "/stats", "/healthz", "/squid-internal-mgr/info"):
            self.assertEqual(a.get(path)[0], 403, path)
        # the same rule on the proxy port
        r = parse_response(raw(p, b"GET /squid-internal-mgr/info HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n"))
        self.assertEqual(r.status, 403)

    def test_squid_default_manager_rules_allow_localhost(self):
        p = self.proxy(workers=1, conf_extra=ADMIN + "\nhttp_access allow localhost manager\n"
                       "http_access deny manager", http_access="deny all")
        a = Admin(p)
        self.assertEqual(a.get("/metrics")[0], 200)
        self.assertEqual(a.get("/nothing-here")[0], 404)

    def test_loopback_only_without_manager_rules(self):
        # no http_access line names `manager`: loopback may read, even with `deny all`
        p = self.proxy(workers=1, conf_extra=ADMIN, http_access="deny all")
        self.assertEqual(Admin(p).get("/metrics")[0], 200)


class ManagerOnProxyPortTest(pdtest.ProxyTestCase):
    def test_manager_pages_on_the_proxy_port(self):
        o = self.origin()
        p = self.proxy(workers=1)
        self.assertEqual(proxy_request(p, "GET", o.url("/x")).status, 200)
        with Client(p) as c:
            c.send(b"GET /squid-internal-mgr/info HTTP/1.1\r\nHost: pdtest.local\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIn("Number of HTTP requests received:", r.text)
            self.assertFalse(r.closed, "keep-alive after a manager page")
            c.send(b"GET /squid-internal-mgr/counters HTTP/1.1\r\nHost: pdtest.local\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            m = re.search(r"\nclient_http.requests = (\d+)\n", r.text)
            self.assertTrue(m, r.text)
            self.assertGreaterEqual(int(m.group(1)), 1)
        r = proxy_request(p, "GET", "http://pdtest.local:%d/squid-internal-mgr/counters" % p.port)
        self.assertEqual(r.status, 200)
        self.assertIn("client_http.requests = ", r.text)
        r = parse_response(raw(p, b"GET /squid-internal-mgr/nope HTTP/1.1\r\nHost: x\r\n"
                                  b"Connection: close\r\n\r\n"))
        self.assertEqual(r.status, 404)
        r = parse_response(raw(p, b"GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        self.assertEqual(r.status, 400)
        self.assertEqual(len(o.requests), 1, "manager pages never reach an origin")


class LogTest(pdtest.ProxyTestCase):
    def test_logformat_and_sigusr1_reopen(self):
        o = self.origin()
        p = self.proxy(workers=2, conf_extra="logformat ops %rm %ru %>Hs %<st %Ss %{X-Tag}>h\n"
                       "access_log " + os.path.join(self.tmpdir(), "a.log") + " ops")
        path = os.path.join(self._tmp, "a.log")
        r = proxy_request(p, "GET", o.url("/one"), headers=[("X-Tag", "t1")])
        self.assertEqual(r.status, 200)
        lines = p.wait_access_lines(1, path=path)
        self.assertRegex(lines[0], r"^GET %s 200 \d+ TCP_MISS t1$" % re.escape(o.url("/one")))
        os.rename(path, path + ".1")
        p.signal(signal.SIGUSR1)
        # reopening is asynchronous: a request logged after it lands in the new file
        n = 0

        def fresh():
            nonlocal n
            n += 1
            proxy_request(p, "GET", o.url("/after/%d" % n), headers=[("X-Tag", "t2")])
            return os.path.exists(path) and p.access_lines(path)
        wait_until(fresh, what="a line in the reopened log", interval=0.05)
        self.assertRegex(p.access_lines(path)[-1], r"^GET \S+/after/\d+ 200 \d+ TCP_MISS t2$")
        self.assertGreaterEqual(len(p.access_lines(path + ".1")), 1)

    def test_logformat_server_and_error_codes(self):
        # %<A the origin's host, %<tt server time, %err_code / %err_detail of proxyd's own
        # error pages, %ssl::>sni "-" (nothing is decrypted), %>ha = %>h (no adaptation)
        o = self.origin()
        path = os.path.join(self.tmpdir(), "e.log")
        p = self.proxy(workers=1, conf_extra="logformat ex %ru|%<A|%<tt|%err_code|%err_detail|"
                       "%ssl::>sni|%{X-Tag}>ha\naccess_log " + path + " ex")
        self.assertEqual(proxy_request(p, "GET", o.url("/ok"), headers=[("X-Tag", "t3")]).status, 200)
        dead = "http://%s:%d/gone" % (pdtest.HOST, pdtest.closed_port())  # connection refused
        self.assertEqual(proxy_request(p, "GET", dead).status, 502)
        lines = p.wait_access_lines(2, path=path)
        ok = [l for l in lines if l.startswith(o.url("/ok"))][0].split("|")
        self.assertEqual(ok[1], pdtest.HOST)
        self.assertRegex(ok[2], r"^\d+$")
        self.assertEqual(ok[3:], ["-", "-", "-", "t3"])
        bad = [l for l in lines if l.startswith(dead)][0].split("|")
        self.assertEqual(bad[3], "ERR_CONNECT_FAIL")
        self.assertNotEqual(bad[4], "-")

    def test_access_log_none_and_stdout(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="access_log none")
        self.assertEqual(proxy_request(p, "GET", o.url("/none")).status, 200)
        q = self.proxy(workers=1, conf_extra="access_log stdout")
        self.assertEqual(proxy_request(q, "GET", o.url("/stdout")).status, 200)
        wait_until(lambda: any(l and "/stdout" in l for l in q.stdout_lines), what="stdout line")
        self.assertFalse(os.path.exists(p.access_log))

    def tmpdir(self):
        if not hasattr(self, "_tmp"):
            import tempfile
            self._tmp = tempfile.mkdtemp(prefix="pdtest-ops-")
            self.addCleanup(shutil.rmtree, self._tmp, True)
        return self._tmp


if __name__ == "__main__":
    pdtest.main()
