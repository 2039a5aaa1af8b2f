"""stale-while-revalidate (RFC 5861 3, issue 15): a stored response that is stale but
inside its stale-while-revalidate=N allowance is answered at once (TCP_STALE_HIT, with
its Age), while ONE background request revalidates it (its own access log line,
TCP_ASYNC_HIT for a 304 that refreshed it, TCP_ASYNC_MISS otherwise), whatever the
number of requests and workers meanwhile. The origin here counts requests and holds
the revalidation at a gate, so that "answered before the origin answered" is read
from the origin's state, not from a clock. A 304 refreshes the object, a 200 replaces
it, a failure leaves it; a request's no-cache or max-age=0, or staleness past the
window, gets the foreground revalidation as before."""

import signal
import threading

import pdtest
from pdtest import Client, Reply, proxy_request
from cachetest import body_of, digest, log_codes, worker_of
from test_ops import Admin, metric as sample


def swr(max_age=0, window=600):
    return ("Cache-Control", "max-age=%d, stale-while-revalidate=%d" % (max_age, window))


FRESH = ("Cache-Control", "max-age=600")


class Gated:
    """An origin route: the first request gets first; every later one is counted,
    then waits for the gate (if set up) and gets later(n, req)."""

    def __init__(self, test, path, first, later, gated=True):
        self.n = 0
        self.seen = []          # requests, in arrival order
        self.answered = 0       # later requests answered
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        test.addCleanup(self.gate.set)
        self.lock = threading.Lock()

        def handler(req):
            with self.lock:
                self.n += 1
                n = self.n
                self.seen.append(req)
            if n == 1:
                return first
            test.o._wait_event(self.gate, 30)
            rep = later(n, req)
            with self.lock:
                self.answered += 1
            return rep
        test.o.route(path, handler)


class SwrTest(pdtest.SharedProxyTestCase):
    SHARED_PROXY_ARGS = {"workers": 1, "conf_extra": "admin_port 127.0.0.1:0\n"
                         "read_timeout 3 seconds"}

    def get(self, path, headers=None, method="GET"):
        return proxy_request(self.p, method, self.o.url(path), headers)

    def metrics(self):
        return Admin(self.p).metrics()

    def serving_from_cache(self, url):
        """Is a request for url in the proxy's worker waiting in the cache state?"""
        data = pdtest.raw(self.p, b"GET /squid-internal-mgr/active_requests HTTP/1.0\r\n\r\n")
        for block in data.decode(errors="replace").split("\n\n"):
            if ("uri %s\n" % url) in block + "\n" and "FD desc: serving from the cache" in block:
                return True
        return False

    def bg(self, samples, outcome=None):
        if outcome is None:
            return sample(samples, "proxyd_cache_background_revalidations_started_total") or 0
        return sample(samples, "proxyd_cache_background_revalidations_total", outcome=outcome) or 0

    def assertStaleHit(self, path, body, codes_before, headers=None):
        r = self.get(path, headers)
        self.assertEqual((r.status, digest(r.body)), (200, digest(body)), r)
        self.assertIsNotNone(r.get("age"))
        codes = log_codes(self.p, self.o.url(path), codes_before + 1)
        self.assertEqual(codes[codes_before], "TCP_STALE_HIT", codes)
        return r

    # ---- served at once, one revalidation, refreshed afterwards

    def test_304_refreshes_in_the_background(self):
        v = body_of("swr304", 5000)
        g = Gated(self, "/r304", Reply(body=v, headers=[swr(), ("ETag", '"1"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"1"')]))
        before = self.metrics()
        self.assertEqual(self.get("/r304").body, v)
        # stale at once (max-age=0): the answer comes while the origin holds the revalidation
        r = self.assertStaleHit("/r304", v, 1)
        self.assertEqual(g.answered, 0, "the client's answer did not wait for the origin")
        self.assertEqual(r.get("etag"), '"1"')
        self.o.wait_requests(2, path="/r304")
        q = g.seen[1]
        self.assertEqual(q.method, "GET")
        self.assertEqual(q.get("if-none-match"), '"1"', "the background request is conditional")
        # more requests meanwhile: all stale hits, still one revalidation at the origin
        for i in range(5):
            self.assertStaleHit("/r304", v, 2 + i)
        self.assertEqual(len(g.seen), 2)
        self.assertEqual(g.answered, 0)
        g.gate.set()
        codes = log_codes(self.p, self.o.url("/r304"), 8)
        self.assertIn("TCP_ASYNC_HIT", codes)
        # the 304 made it fresh (max-age=600): a hit, no origin request
        r = self.get("/r304")
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.assertEqual(log_codes(self.p, self.o.url("/r304"), 9)[-1], "TCP_MEM_HIT")
        self.assertEqual(len(g.seen), 2)
        after = self.metrics()
        self.assertEqual(self.bg(after) - self.bg(before), 1)
        self.assertEqual(self.bg(after, "refreshed") - self.bg(before, "refreshed"), 1)
        self.assertEqual(sample(after, "proxyd_results_total", code="TCP_STALE_HIT") -
                         (sample(before, "proxyd_results_total", code="TCP_STALE_HIT") or 0), 6)

    def test_200_replaces_in_the_background(self):
        v1, v2 = body_of("swr-a", 3000), body_of("swr-b", 4500)
        g = Gated(self, "/r200", Reply(body=v1, headers=[swr(), ("ETag", '"a"')]),
                  lambda n, q: Reply(body=v2, headers=[FRESH, ("ETag", '"b"')]))
        before = self.metrics()
        self.assertEqual(self.get("/r200").body, v1)
        self.assertStaleHit("/r200", v1, 1)
        self.assertEqual(g.answered, 0)
        g.gate.set()
        self.assertEqual(log_codes(self.p, self.o.url("/r200"), 3)[2], "TCP_ASYNC_MISS")
        r = self.get("/r200")
        self.assertEqual((r.status, digest(r.body), r.get("etag")), (200, digest(v2), '"b"'))
        self.assertEqual(log_codes(self.p, self.o.url("/r200"), 4)[-1], "TCP_MEM_HIT")
        self.assertEqual(len(g.seen), 2)
        after = self.metrics()
        self.assertEqual(self.bg(after, "replaced") - self.bg(before, "replaced"), 1)

    def test_head_and_conditional_requests(self):
        # a HEAD gets the stale head at once; the background request is a GET
        v = body_of("swr-h", 2000)
        lm = "Tue, 01 Dec 2026 10:00:00 GMT"
        g = Gated(self, "/rh", Reply(body=v, headers=[swr(), ("Last-Modified", lm)]),
                  lambda n, q: Reply(304, headers=[FRESH, ("Last-Modified", lm)]))
        self.assertEqual(self.get("/rh").body, v)
        r = self.get("/rh", method="HEAD")
        self.assertEqual((r.status, r.body, r.get("content-length")), (200, b"", str(len(v))))
        self.assertEqual(log_codes(self.p, self.o.url("/rh"), 2)[1], "TCP_STALE_HIT")
        self.o.wait_requests(2, path="/rh")
        self.assertEqual((g.seen[1].method, g.seen[1].get("if-modified-since")), ("GET", lm))
        # the client's own If-Modified-Since is answered from the stale copy, not forwarded
        r = self.get("/rh", [("If-Modified-Since", lm)])
        self.assertEqual(r.status, 304)
        self.assertEqual(log_codes(self.p, self.o.url("/rh"), 3)[2], "TCP_STALE_HIT")
        self.assertEqual(len(g.seen), 2)
        g.gate.set()
        self.assertIn("TCP_ASYNC_HIT", log_codes(self.p, self.o.url("/rh"), 4))

    def test_age_inside_and_beyond_the_window(self):
        # Age 100 from the origin: with max-age=95 stale by 5 s (inside a 30 s window);
        # with max-age=50 stale by 50 s (beyond it): revalidated before answering
        v = body_of("swr-age", 1000)
        g = Gated(self, "/in", Reply(body=v, headers=[swr(95, 30), ("Age", "100"), ("ETag", '"i"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"i"')]))
        self.assertEqual(self.get("/in").body, v)
        r = self.assertStaleHit("/in", v, 1)
        self.assertGreaterEqual(int(r.get("age")), 100)
        self.assertLess(int(r.get("age")), 100 + pdtest.DEFAULT_TIMEOUT)
        self.assertEqual(g.answered, 0)
        g.gate.set()
        log_codes(self.p, self.o.url("/in"), 3)

        w = Gated(self, "/out", Reply(body=v, headers=[swr(50, 30), ("Age", "100"), ("ETag", '"o"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"o"')]), gated=False)
        self.assertEqual(self.get("/out").body, v)
        r = self.get("/out")
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.assertEqual(w.answered, 1, "the origin answered before the client got its answer")
        self.assertEqual(log_codes(self.p, self.o.url("/out"), 2), ["TCP_MISS", "TCP_REFRESH_UNMODIFIED"])

    def test_only_if_cached_inside_and_beyond_the_window(self):
        # inside the window the stale object answers only-if-cached (and the
        # cache refreshes it on its own); beyond it, 504 and no origin request
        v = body_of("swr-oic", 1500)
        oic = [("Cache-Control", "only-if-cached")]
        g = Gated(self, "/oic-in", Reply(body=v, headers=[swr(95, 30), ("Age", "100"), ("ETag", '"i"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"i"')]))
        self.assertEqual(self.get("/oic-in").body, v)
        self.assertStaleHit("/oic-in", v, 1, oic)
        self.o.wait_requests(2, path="/oic-in")
        self.assertEqual(g.seen[1].get("if-none-match"), '"i"', "the cache's own revalidation")
        g.gate.set()
        self.assertIn("TCP_ASYNC_HIT", log_codes(self.p, self.o.url("/oic-in"), 3))

        Gated(self, "/oic-out", Reply(body=v, headers=[swr(50, 30), ("Age", "100"), ("ETag", '"o"')]),
              lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"o"')]), gated=False)
        self.assertEqual(self.get("/oic-out").body, v)
        r = self.get("/oic-out", oic)
        self.assertEqual(r.status, 504, r)
        self.assertEqual(len(self.o.requests_for("/oic-out")), 1, "only-if-cached never reaches the origin")
        self.assertEqual(log_codes(self.p, self.o.url("/oic-out"), 2), ["TCP_MISS", "TCP_MISS"])

    def test_vary_variant_replaced(self):
        # the stale variant is revalidated with the request's own Vary fields: the new
        # response replaces that variant only
        def body(tag, ae):
            return body_of("%s-%s" % (tag, ae), 1500)
        state = {"n": 0}

        def h(q):
            state["n"] += 1
            tag = "v1" if state["n"] <= 2 else "v2"
            cc = swr() if tag == "v1" else FRESH
            return Reply(body=body(tag, q.get("accept-encoding")),
                         headers=[cc, ("Vary", "Accept-Encoding"), ("ETag", '"%s"' % tag)])
        self.o.route("/var", h)
        url = self.o.url("/var")
        gz, br = [("Accept-Encoding", "gzip")], [("Accept-Encoding", "br")]
        self.assertEqual(self.get("/var", gz).body, body("v1", "gzip"))
        self.assertEqual(self.get("/var", br).body, body("v1", "br"))
        # gzip's variant: a stale hit, and a background request with Accept-Encoding: gzip
        self.assertEqual(self.get("/var", gz).body, body("v1", "gzip"))
        codes = log_codes(self.p, url, 4)
        self.assertEqual(codes[2:4], ["TCP_STALE_HIT", "TCP_ASYNC_MISS"], codes)
        q = self.o.requests_for("/var")[2]
        self.assertEqual((q.get("accept-encoding"), q.get("if-none-match")), ("gzip", '"v1"'))
        r = self.get("/var", gz)
        self.assertEqual((r.body, r.get("etag")), (body("v2", "gzip"), '"v2"'))
        self.assertEqual(log_codes(self.p, url, 5)[4], "TCP_MEM_HIT")
        # br's variant is still v1, stale: a stale hit of its own
        self.assertEqual(self.get("/var", br).body, body("v1", "br"))
        self.assertEqual(log_codes(self.p, url, 6)[5], "TCP_STALE_HIT")
        log_codes(self.p, url, 7)  # its background request ends too

    def test_no_cache_during_background_collapses_onto_it(self):
        # a request that may not have the stale answer, while the background request
        # holds the object: it waits for that revalidation (one origin request for both)
        v = body_of("swr-cf", 4000)
        g = Gated(self, "/cf", Reply(body=v, headers=[swr(), ("ETag", '"c"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"c"')]))
        self.assertEqual(self.get("/cf").body, v)
        self.assertStaleHit("/cf", v, 1)
        self.o.wait_requests(2, path="/cf")
        got = {}
        t = threading.Thread(target=lambda: got.setdefault("r", self.get("/cf", [("Cache-Control", "no-cache")])))
        t.start()
        self.addCleanup(t.join, 30)
        # it waits, collapsed onto the object the background request writes...
        pdtest.wait_until(lambda: self.serving_from_cache(self.o.url("/cf")), what="the no-cache "
                          "request waiting on the background revalidation")
        self.assertNotIn("r", got)
        # ...until the origin answers that
        g.gate.set()
        t.join(pdtest.DEFAULT_TIMEOUT)
        r = got["r"]
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.assertEqual(len(g.seen), 2, "the no-cache request shared the background revalidation")
        codes = log_codes(self.p, self.o.url("/cf"), 4)
        self.assertEqual(sorted(codes[2:]), ["TCP_ASYNC_HIT", "TCP_CF_MISS"], codes)

    # ---- what forbids the stale answer

    def test_request_no_cache_and_max_age_0_wait_for_the_origin(self):
        v = body_of("swr-nc", 1500)
        g = Gated(self, "/nc", Reply(body=v, headers=[swr(), ("ETag", '"n"')]),
                  lambda n, q: Reply(304, headers=[swr(), ("ETag", '"n"')]), gated=False)
        self.assertEqual(self.get("/nc").body, v)
        for i, h in enumerate([("Cache-Control", "no-cache"), ("Cache-Control", "max-age=0"),
                               ("Pragma", "no-cache")]):
            r = self.get("/nc", [h])
            self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
            self.assertEqual(g.answered, i + 1, "%s: answered after the origin" % (h,))
            self.assertEqual(log_codes(self.p, self.o.url("/nc"), i + 2)[-1], "TCP_REFRESH_UNMODIFIED")

    def test_must_revalidate_and_s_maxage_wait_for_the_origin(self):
        v = body_of("swr-mr", 1500)
        for path, cc in (("/mr", "max-age=0, stale-while-revalidate=600, must-revalidate"),
                         ("/sm", "s-maxage=0, stale-while-revalidate=600")):
            g = Gated(self, path, Reply(body=v, headers=[("Cache-Control", cc), ("ETag", '"m"')]),
                      lambda n, q: Reply(304, headers=[("ETag", '"m"')]), gated=False)
            self.assertEqual(self.get(path).body, v)
            r = self.get(path)
            self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
            self.assertEqual(g.answered, 1, path)
            self.assertEqual(log_codes(self.p, self.o.url(path), 2)[-1], "TCP_REFRESH_UNMODIFIED")

    # ---- the background revalidation fails: the stale object stays

    def test_origin_down_leaves_the_object(self):
        v = body_of("swr-down", 2500)
        o2 = pdtest.Origin()
        self.addCleanup(o2.stop)
        o2.route("/down", lambda q: Reply(body=v, headers=[swr(), ("ETag", '"d"')]))
        url = o2.url("/down")
        before = self.metrics()
        self.assertEqual(proxy_request(self.p, "GET", url).body, v)
        o2.stop()
        for i in range(2):
            r = proxy_request(self.p, "GET", url)
            self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
            codes = log_codes(self.p, url, 3 + 2 * i)
            self.assertEqual(codes[1 + 2 * i:3 + 2 * i], ["TCP_STALE_HIT", "TCP_ASYNC_MISS"], codes)
        after = self.metrics()
        self.assertEqual(self.bg(after, "failed") - self.bg(before, "failed"), 2)
        self.assertEqual(self.bg(after) - self.bg(before), 2)

    def test_503_leaves_the_object(self):
        v = body_of("swr-503", 2500)
        g = Gated(self, "/e503", Reply(body=v, headers=[swr(), ("ETag", '"e"')]),
                  lambda n, q: Reply(503, body=b"trouble"), gated=False)
        self.assertEqual(self.get("/e503").body, v)
        self.assertStaleHit("/e503", v, 1)
        self.assertEqual(log_codes(self.p, self.o.url("/e503"), 3)[2], "TCP_ASYNC_MISS")
        self.assertEqual(g.answered, 1)
        self.assertStaleHit("/e503", v, 3)
        self.assertEqual(log_codes(self.p, self.o.url("/e503"), 5)[4], "TCP_ASYNC_MISS")


class SwrConcurrencyTest(pdtest.ProxyTestCase):
    """N clients at once, on both workers: one revalidation reaches the origin."""

    def setUp(self):
        super().setUp()
        self.o = self.origin()

    def run_clients(self, p, path, v, clients):
        results = {}

        def fetch(i, c):
            results[i] = c.request("GET", self.o.url(path))
        threads = [threading.Thread(target=fetch, args=(i, c)) for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(pdtest.DEFAULT_TIMEOUT)
        self.assertEqual(len(results), len(clients))
        for i, r in results.items():
            self.assertEqual((r.status, digest(r.body)), (200, digest(v)), i)

    def one_revalidation(self, workers):
        p = self.proxy(workers=workers)
        v = body_of("swr-n%d" % workers, 20000)
        path = "/many%d" % workers
        g = Gated(self, path, Reply(body=v, headers=[swr(), ("ETag", '"n"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"n"')]))
        self.assertEqual(proxy_request(p, "GET", self.o.url(path)).body, v)
        clients, on = [], {}
        for _ in range(64):  # bounded: until each worker holds 4 connections
            c = Client(p)
            self.addCleanup(c.close)
            wk = worker_of(p, c)
            if len(on.get(wk, [])) < 4:
                on.setdefault(wk, []).append(c)
                clients.append(c)
            if len(on) == workers and all(len(x) == 4 for x in on.values()):
                break
        self.assertEqual(len(on), workers, "connections on every worker")
        self.run_clients(p, path, v, clients)
        self.assertEqual(g.answered, 0, "every client answered before the origin answered")
        url = self.o.url(path)
        codes = log_codes(p, url, 1 + len(clients))
        self.assertEqual(codes[1:].count("TCP_STALE_HIT"), len(clients), codes)
        self.o.wait_requests(2, path=path)
        g.gate.set()
        self.assertIn("TCP_ASYNC_HIT", log_codes(p, url, 2 + len(clients)))
        self.assertEqual(len(g.seen), 2, "one revalidation for %d clients" % len(clients))
        # the refreshed object is fresh in every worker
        self.run_clients(p, path, v, clients)
        codes = log_codes(p, url, 2 + 2 * len(clients))
        self.assertEqual(codes[-len(clients):].count("TCP_MEM_HIT"), len(clients), codes)
        self.assertEqual(len(g.seen), 2)
        self.assertIsNone(p.sanitizer_report())

    def test_exit_with_a_revalidation_running(self):
        # the background request holds no client: the worker does not wait for it when
        # it drains, frees it (its writer aborted, a TCP_ASYNC_MISS line) and exits
        # cleanly; under ASan, nothing leaks
        p = self.proxy(workers=1)
        v = body_of("swr-exit", 3000)
        g = Gated(self, "/exit", Reply(body=v, headers=[swr(), ("ETag", '"x"')]),
                  lambda n, q: Reply(304, headers=[FRESH, ("ETag", '"x"')]))
        url = self.o.url("/exit")
        self.assertEqual(proxy_request(p, "GET", url).body, v)
        r = proxy_request(p, "GET", url)
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.o.wait_requests(2, path="/exit")
        p.signal(signal.SIGTERM)
        self.assertEqual(p.wait_exit(), 0)
        self.assertEqual(g.answered, 0)
        self.assertEqual(log_codes(p, url), ["TCP_MISS", "TCP_STALE_HIT", "TCP_ASYNC_MISS"])
        self.assertIsNone(p.sanitizer_report())

    def test_one_revalidation_one_worker(self):
        self.one_revalidation(1)

    def test_one_revalidation_two_workers(self):
        self.one_revalidation(2)


if __name__ == "__main__":
    pdtest.main()
