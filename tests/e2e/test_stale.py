"""Serving stale when the origin fails (issue 15): a stored response that needs
revalidation is served (TCP_REFRESH_FAIL_OLD) when the origin answers 500/502/503/504,
closes without an answer, refuses the connection or does not answer in time, if the
staleness is within max_stale (Squid's default 1 week), refresh_pattern max-stale= or
stale-if-error (RFC 5861) of the response or the request; the error goes through
(TCP_REFRESH_FAIL_ERR) when must-revalidate, s-maxage or the request's no-cache forbid
it or the allowance is exceeded. Each test checks the wire, the origin's request count
and the access log."""

import threading

import pdtest
from pdtest import Reply, proxy_request
from cachetest import body_of, digest, log_codes

STALE = ("Cache-Control", "max-age=0")   # stored, and stale at once


class StaleTest(pdtest.SharedProxyTestCase):
    SHARED_PROXY_ARGS = {"workers": 1, "conf_extra": "read_timeout 2 seconds\n"
                         "refresh_pattern /short/ 0 20% 60 max-stale=0"}

    def get(self, path, headers=None):
        return proxy_request(self.p, "GET", self.o.url(path), headers)

    def flaky(self, path, body, headers, failure):
        """Route path: the first request gets body with headers, every later one fails
        as failure says ('503', '500', 'close', 'hang')."""
        state = {"n": 0}

        def raw(sock, req, o):
            state["n"] += 1
            if state["n"] == 1:
                head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)
                head += "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
                sock.sendall(head.encode() + body)
                return True
            if failure in ("503", "500", "502", "504"):
                msg = b"origin trouble"
                sock.sendall(("HTTP/1.1 %s Trouble\r\nContent-Length: %d\r\n\r\n" % (failure, len(msg))).encode() + msg)
                return True
            if failure == "hang":
                o._wait_event(self.release, 30)
            return False  # close without an answer
        self.o.route(path, raw=raw)
        return state

    def setUp(self):
        super().setUp()
        self.release = threading.Event()
        self.addCleanup(self.release.set)

    def assertServedStale(self, path, body, n_before=1):
        r = self.get(path)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((len(r.body), digest(r.body)), (len(body), digest(body)))
        codes = log_codes(self.p, self.o.url(path), n_before + 1)
        self.assertEqual(codes[-1], "TCP_REFRESH_FAIL_OLD")
        return r

    def assertErrorPassed(self, path, status_in=(500, 502, 503, 504), n_before=1):
        r = self.get(path)
        self.assertIn(r.status, status_in, r)
        codes = log_codes(self.p, self.o.url(path), n_before + 1)
        self.assertEqual(codes[-1], "TCP_REFRESH_FAIL_ERR")
        return r

    # ---- the origin fails in each way: the stale copy answers

    def test_503_serves_stale(self):
        v = body_of("s503", 4000)
        st = self.flaky("/s503", v, [STALE, ("ETag", '"a"')], "503")
        self.assertEqual(self.get("/s503").body, v)
        self.assertServedStale("/s503", v)
        self.assertEqual(st["n"], 2, "the revalidation reached the origin")
        # and again: still stale, still served, still asked first
        self.assertServedStale("/s503", v, 2)
        self.assertEqual(st["n"], 3)

    def test_500_without_validators_serves_stale(self):
        # no ETag / Last-Modified: the request goes unconditional, the copy is kept
        v = body_of("s500", 3000)
        self.flaky("/s500", v, [STALE], "500")
        self.assertEqual(self.get("/s500").body, v)
        self.assertServedStale("/s500", v)

    def test_origin_closes_serves_stale(self):
        v = body_of("sclose", 2000)
        self.flaky("/sclose", v, [STALE, ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")], "close")
        self.assertEqual(self.get("/sclose").body, v)
        self.assertServedStale("/sclose", v)

    def test_origin_silent_serves_stale(self):
        # read_timeout 2 s in this proxy's configuration: the hang ends in a timeout
        v = body_of("shang", 2000)
        self.flaky("/shang", v, [STALE, ("ETag", '"h"')], "hang")
        self.assertEqual(self.get("/shang").body, v)
        self.assertServedStale("/shang", v)

    def test_origin_gone_serves_stale(self):
        # an origin of its own, stopped after the object is stored: connection refused
        v = body_of("sgone", 2500)
        o2 = pdtest.Origin()
        self.addCleanup(o2.stop)
        o2.route("/gone", lambda q: Reply(body=v, headers=[STALE, ("ETag", '"g"')]))
        url = o2.url("/gone")
        self.assertEqual(proxy_request(self.p, "GET", url).body, v)
        o2.stop()
        r = proxy_request(self.p, "GET", url)
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.assertEqual(log_codes(self.p, url, 2)[-1], "TCP_REFRESH_FAIL_OLD")

    def test_collapsed_onto_failing_refresh_serves_stale(self):
        # B comes while A's revalidation waits at the origin and collapses onto it,
        # its stale copy kept aside; A's revalidation then fails: both get the copy
        v = body_of("scf", 6000)
        gate = threading.Event()
        self.addCleanup(gate.set)
        state = {"n": 0}

        def raw(sock, req, o):
            state["n"] += 1
            if state["n"] == 1:
                head = "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nCache-Control: max-age=0\r\nETag: \"c\"\r\n\r\n" % len(v)
                sock.sendall(head.encode() + v)
                return True
            if state["n"] == 2:
                o._wait_event(gate, 20)
            return False
        self.o.route("/scf", raw=raw)
        self.assertEqual(self.get("/scf").body, v)
        results = {}

        def fetch(name):
            results[name] = self.get("/scf")
        a = threading.Thread(target=fetch, args=("a",))
        a.start()
        self.o.wait_requests(2, path="/scf")
        b = threading.Thread(target=fetch, args=("b",))
        b.start()
        # B collapses onto A's refresh if it gets there first, or revalidates itself
        # after: either way its answer must be the stale copy
        gate.set()
        a.join(30)
        b.join(30)
        for name in ("a", "b"):
            r = results[name]
            self.assertEqual((r.status, digest(r.body)), (200, digest(v)), name)
        codes = log_codes(self.p, self.o.url("/scf"), 3)
        self.assertEqual(codes.count("TCP_REFRESH_FAIL_OLD"), 2, codes)

    # ---- what forbids it

    def test_must_revalidate_passes_the_error(self):
        v = body_of("smr", 2000)
        self.flaky("/smr", v, [("Cache-Control", "max-age=0, must-revalidate"), ("ETag", '"m"')], "503")
        self.assertEqual(self.get("/smr").body, v)
        r = self.assertErrorPassed("/smr", (503,))
        self.assertEqual(r.body, b"origin trouble")

    def test_s_maxage_passes_the_error(self):
        v = body_of("ssm", 2000)
        self.flaky("/ssm", v, [("Cache-Control", "s-maxage=0"), ("ETag", '"s"')], "close")
        self.assertEqual(self.get("/ssm").body, v)
        self.assertErrorPassed("/ssm", (502,))

    def test_request_no_cache_passes_the_error(self):
        v = body_of("snc", 2000)
        self.flaky("/snc", v, [STALE, ("ETag", '"n"')], "503")
        self.assertEqual(self.get("/snc").body, v)
        r = self.get("/snc", [("Cache-Control", "no-cache")])
        self.assertEqual(r.status, 503)
        self.assertEqual(log_codes(self.p, self.o.url("/snc"), 2)[-1], "TCP_REFRESH_FAIL_ERR")

    def test_max_stale_zero_in_refresh_pattern(self):
        # refresh_pattern /short/ ... max-stale=0: a stale copy is never served on error...
        v = body_of("short", 2000)
        self.flaky("/short/a", v, [STALE, ("ETag", '"x"')], "503")
        self.assertEqual(self.get("/short/a").body, v)
        self.assertErrorPassed("/short/a", (503,))

    def test_stale_if_error_extends_max_stale_zero(self):
        # ... unless the response's stale-if-error allows it (RFC 5861 4)
        v = body_of("short-sie", 2000)
        self.flaky("/short/sie", v, [("Cache-Control", "max-age=0, stale-if-error=600"), ("ETag", '"y"')], "503")
        self.assertEqual(self.get("/short/sie").body, v)
        self.assertServedStale("/short/sie", v)

    def test_request_stale_if_error(self):
        # or the request's
        v = body_of("short-rq", 2000)
        self.flaky("/short/rq", v, [STALE, ("ETag", '"z"')], "504")
        self.assertEqual(self.get("/short/rq").body, v)
        r = self.get("/short/rq", [("Cache-Control", "stale-if-error=600")])
        self.assertEqual((r.status, digest(r.body)), (200, digest(v)))
        self.assertEqual(log_codes(self.p, self.o.url("/short/rq"), 2)[-1], "TCP_REFRESH_FAIL_OLD")

    def test_success_still_refreshes(self):
        # the origin answering normally is not affected: 304 refreshes, 200 replaces
        state = {"n": 0}
        v1, v2 = body_of("ok1", 1000), body_of("ok2", 1200)

        def h(q):
            state["n"] += 1
            if state["n"] == 1:
                return Reply(body=v1, headers=[STALE, ("ETag", '"1"')])
            if state["n"] == 2:
                return Reply(304, headers=[STALE, ("ETag", '"1"')])
            return Reply(body=v2, headers=[STALE, ("ETag", '"2"')])
        self.o.route("/ok", h)
        self.assertEqual(self.get("/ok").body, v1)
        self.assertEqual(self.get("/ok").body, v1)
        self.assertEqual(self.get("/ok").body, v2)
        self.assertEqual(log_codes(self.p, self.o.url("/ok"), 3),
                         ["TCP_MISS", "TCP_REFRESH_UNMODIFIED", "TCP_REFRESH_MODIFIED"])


if __name__ == "__main__":
    pdtest.main()
