"""The shared cache end to end (issue 3, "End to end"), HTTP semantics: hits,
the object size limit, what must never be stored, 304 revalidation, clients'
own conditionals, Vary, HEAD from a cached GET, Range, invalidation by unsafe
methods. Each test checks the wire (status, body checksum, Age on hits), the
scripted origin's request count and the access log's result codes.
Concurrency, workers sharing hits, the memory bound and worker crashes are in
test_cache_shared.py."""

import email.utils
import threading
import time

import pdtest
from pdtest import Client, Reply, proxy_request
from cachetest import body_of, digest, log_codes, parse_byteranges

MAX60 = ("Cache-Control", "max-age=60")


class CacheTest(pdtest.SharedProxyTestCase):
    def get(self, path, headers=None, method="GET"):
        return proxy_request(self.p, method, self.o.url(path), headers)

    def count(self, path):
        return len(self.o.requests_for(path))

    def assertBody(self, r, body, status=200):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.complete, r)
        self.assertEqual((len(r.body), digest(r.body)), (len(body), digest(body)))

    def assertHit(self, r, body):
        self.assertBody(r, body)
        self.assertIsNotNone(r.get("age"), "a hit carries Age (RFC 9111 5.1)")
        self.assertRegex(r.get("age"), r"^\d+$")

    # ---- basic hit and the size limit

    def get_counted(self, path):
        """GET on a fresh connection: (Response, bytes the client received)."""
        with Client(self.p) as c:
            r = c.request("GET", self.o.url(path))
            return r, c.bytes_received

    def test_second_get_is_hit(self):
        body = body_of("hit", 50000)
        self.o.route("/hit", lambda q: Reply(body=body, headers=[MAX60, ("Content-Type", "application/x-t")]))
        r1, n1 = self.get_counted("/hit")
        self.assertBody(r1, body)
        self.assertIsNone(r1.get("age"), "the origin's response has no Age")
        wire = [("TCP_MISS/200", n1)]
        for _ in range(3):
            r, n = self.get_counted("/hit")
            self.assertHit(r, body)
            self.assertEqual(r.get("content-type"), "application/x-t")
            self.assertEqual(r.get("content-length"), str(len(body)))
            wire.append(("TCP_MEM_HIT/200", n))
        self.assertEqual(self.count("/hit"), 1)
        self.assertEqual(log_codes(self.p, self.o.url("/hit"), 4),
                         ["TCP_MISS", "TCP_MEM_HIT", "TCP_MEM_HIT", "TCP_MEM_HIT"])
        # bytes sent (%<st) is exactly what the client received: head and body
        logged = [(f[3], int(f[4])) for f in (line.split() for line in self.p.access_lines())
                  if f[6] == self.o.url("/hit")]
        self.assertEqual(sorted(logged), sorted(wire))

    def test_hit_on_keepalive_connection(self):
        body = body_of("ka", 3000)
        self.o.route("/ka", lambda q: Reply(body=body, headers=[MAX60]))
        with Client(self.p) as c:
            for _ in range(3):
                self.assertBody(c.request("GET", self.o.url("/ka")), body)
        self.assertEqual(self.count("/ka"), 1)
        self.assertEqual(log_codes(self.p, self.o.url("/ka"), 3), ["TCP_MISS", "TCP_MEM_HIT", "TCP_MEM_HIT"])

    def test_chunked_origin_response_cached(self):
        body = body_of("chunked", 70000)
        self.o.route("/ch", lambda q: Reply(chunks=[body[:1000], body[1000:40000], body[40000:]], headers=[MAX60]))
        self.assertBody(self.get("/ch"), body)
        r = self.get("/ch")
        self.assertHit(r, body)
        self.assertEqual(self.count("/ch"), 1)

    def test_maximum_object_size_is_inclusive(self):
        at = body_of("at", 1048576)
        over = body_of("over", 1048577)
        self.o.route("/at", lambda q: Reply(body=at, headers=[MAX60]))
        self.o.route("/over", lambda q: Reply(body=over, headers=[MAX60]))
        for _ in range(3):
            self.assertBody(self.get("/at"), at)
            self.assertBody(self.get("/over"), over)
        self.assertEqual(self.count("/at"), 1, "a 1,048,576-byte body is stored under the 1024 KB default")
        self.assertEqual(self.count("/over"), 3, "one byte more is never stored")
        self.assertEqual(log_codes(self.p, self.o.url("/at"), 3), ["TCP_MISS", "TCP_MEM_HIT", "TCP_MEM_HIT"])
        self.assertEqual(log_codes(self.p, self.o.url("/over"), 3), ["TCP_MISS"] * 3)

    def test_over_limit_without_length_delivered_whole(self):
        over = body_of("overchunked", 1048576 + 5000)
        self.o.route("/oc", lambda q: Reply(chunks=[over[i:i + 65536] for i in range(0, len(over), 65536)],
                                            headers=[MAX60]))
        for _ in range(2):
            self.assertBody(self.get("/oc"), over)
        self.assertEqual(self.count("/oc"), 2)

    # ---- never stored

    def test_no_store_and_private_never_cached(self):
        for path, cc in (("/ns", "no-store, max-age=60"), ("/pv", "private, max-age=60"),
                         ("/pvf", 'max-age=60, private="Set-Cookie"'), ("/nsp", "public, no-store")):
            with self.subTest(cc=cc):
                body = body_of(path, 2000)
                self.o.route(path, lambda q, body=body, cc=cc: Reply(body=body, headers=[("Cache-Control", cc)]))
                for _ in range(3):
                    self.assertBody(self.get(path), body)
                if path == "/pvf":
                    # private with a field list only forbids storing those fields
                    self.assertLessEqual(self.count(path), 3)
                    continue
                self.assertEqual(self.count(path), 3)
                self.assertEqual(log_codes(self.p, self.o.url(path), 3), ["TCP_MISS"] * 3)

    def test_request_no_store_not_stored(self):
        body = body_of("rns", 4000)
        self.o.route("/rns", lambda q: Reply(body=body, headers=[MAX60]))
        self.assertBody(self.get("/rns", [("Cache-Control", "no-store")]), body)
        self.assertBody(self.get("/rns"), body)
        self.assertEqual(self.count("/rns"), 2, "a request's no-store kept the response out of the cache")
        self.assertHit(self.get("/rns"), body)
        self.assertEqual(self.count("/rns"), 2)
        self.assertEqual(log_codes(self.p, self.o.url("/rns"), 3), ["TCP_MISS", "TCP_MISS", "TCP_MEM_HIT"])

    def test_authorization_not_stored_unless_public(self):
        auth = [("Authorization", "Basic dXNlcjpwYXNz")]
        for path, cc, stored in (("/a-plain", "max-age=60", False), ("/a-public", "public, max-age=60", True),
                                 ("/a-smax", "s-maxage=60", True), ("/a-mr", "must-revalidate, max-age=60", True)):
            with self.subTest(cc=cc):
                body = body_of(path, 1500)
                self.o.route(path, lambda q, body=body, cc=cc: Reply(body=body, headers=[("Cache-Control", cc)]))
                self.assertBody(self.get(path, auth), body)
                r = self.get(path, auth)
                self.assertBody(r, body)
                self.assertEqual(self.count(path), 1 if stored else 2)
                self.assertEqual(log_codes(self.p, self.o.url(path), 2),
                                 ["TCP_MISS", "TCP_MEM_HIT" if stored else "TCP_MISS"])
                if stored:
                    self.assertIsNotNone(r.get("age"))

    def test_uncacheable_status_and_method(self):
        self.o.route("/post", lambda q: Reply(body=b"posted", headers=[MAX60]))
        self.o.route("/e500", lambda q: Reply(500, body=b"oops", headers=[MAX60]))
        for _ in range(2):
            r = proxy_request(self.p, "POST", self.o.url("/post"), body=b"x")
            self.assertEqual((r.status, r.body), (200, b"posted"))
            self.assertEqual(self.get("/e500").status, 500)
        self.assertEqual(self.count("/post"), 2)
        # 500 is not cacheable by default, but explicit freshness makes it storable (RFC 9111 3)
        self.assertLessEqual(self.count("/e500"), 2)

    def test_404_cached_by_default_with_freshness(self):
        self.o.route("/nf", lambda q: Reply(404, body=b"not here", headers=[MAX60]))
        for _ in range(2):
            r = self.get("/nf")
            self.assertEqual((r.status, r.body), (404, b"not here"))
        self.assertEqual(self.count("/nf"), 1)
        self.assertEqual(log_codes(self.p, self.o.url("/nf"), 2), ["TCP_MISS", "TCP_MEM_HIT"])

    # ---- revalidation

    def _validating_origin(self, path, versions, max_age=0):
        """An origin that serves versions[i] (etag, body) and answers 304 when
        If-None-Match names the current ETag; .current selects the version."""
        state = {"current": 0}
        lm = email.utils.formatdate(time.time() - 3600, usegmt=True)

        def handler(q):
            etag, body = versions[state["current"]]
            hdrs = [("Cache-Control", "max-age=%d" % max_age), ("ETag", etag), ("Last-Modified", lm),
                    ("X-Version", str(state["current"]))]
            if q.get("if-none-match") == etag:
                return Reply(304, headers=hdrs)
            return Reply(body=body, headers=hdrs + [("Content-Type", "text/x-v")])
        self.o.route(path, handler)
        return state, lm

    def test_304_revalidation_unmodified(self):
        v1 = body_of("rv1", 30000)
        state, lm = self._validating_origin("/rv", [('"v1"', v1)])
        self.assertBody(self.get("/rv"), v1)
        r = self.get("/rv")
        self.assertBody(r, v1)
        self.assertEqual(r.get("etag"), '"v1"')
        self.assertEqual(r.get("content-type"), "text/x-v")
        self.assertEqual(r.get("content-length"), str(len(v1)))
        reqs = self.o.requests_for("/rv")
        self.assertEqual(len(reqs), 2)
        self.assertIsNone(reqs[0].get("if-none-match"))
        self.assertEqual(reqs[1].get("if-none-match"), '"v1"')
        self.assertEqual(reqs[1].get("if-modified-since"), lm)
        self.assertEqual(log_codes(self.p, self.o.url("/rv"), 2), ["TCP_MISS", "TCP_REFRESH_UNMODIFIED"])

    def test_304_revalidation_modified_replaces(self):
        v1, v2 = body_of("mv1", 20000), body_of("mv2", 25000)
        versions = [('"m1"', v1), ('"m2"', v2)]
        state = {"current": 0}

        def handler(q):
            etag, body = versions[state["current"]]
            # the first version is stale at once, the second one fresh for a minute
            hdrs = [("Cache-Control", "max-age=%d" % (0 if state["current"] == 0 else 60)), ("ETag", etag)]
            if q.get("if-none-match") == etag:
                return Reply(304, headers=hdrs)
            return Reply(body=body, headers=hdrs)
        self.o.route("/mv", handler)
        self.assertBody(self.get("/mv"), v1)
        state["current"] = 1
        r = self.get("/mv")
        self.assertBody(r, v2)
        self.assertEqual(r.get("etag"), '"m2"')
        self.assertEqual(self.o.requests_for("/mv")[1].get("if-none-match"), '"m1"')
        r = self.get("/mv")
        self.assertHit(r, v2)
        self.assertEqual(self.count("/mv"), 2)
        self.assertEqual(log_codes(self.p, self.o.url("/mv"), 3),
                         ["TCP_MISS", "TCP_REFRESH_MODIFIED", "TCP_MEM_HIT"])

    def test_304_refreshes_freshness(self):
        # a stale entry whose 304 brings max-age=60 becomes fresh again: the next GET is a hit
        v = body_of("rf", 5000)
        state = {"n": 0}

        def handler(q):
            state["n"] += 1
            if state["n"] == 1:
                return Reply(body=v, headers=[("Cache-Control", "max-age=0"), ("ETag", '"rf"')])
            self.assertEqual(q.get("if-none-match"), '"rf"')
            return Reply(304, headers=[("Cache-Control", "max-age=60"), ("ETag", '"rf"'), ("X-New", "1")])
        self.o.route("/rf", handler)
        self.assertBody(self.get("/rf"), v)
        r = self.get("/rf")
        self.assertBody(r, v)
        self.assertEqual(r.get("x-new"), "1", "304 fields merged into the served response")
        r = self.get("/rf")
        self.assertHit(r, v)
        self.assertEqual(r.get("x-new"), "1", "304 fields merged into the stored response")
        self.assertEqual(self.count("/rf"), 2)
        self.assertEqual(log_codes(self.p, self.o.url("/rf"), 3),
                         ["TCP_MISS", "TCP_REFRESH_UNMODIFIED", "TCP_MEM_HIT"])

    def test_expired_entry_revalidated(self):
        # Expires in the past relative to Date: stale, validated with Last-Modified only
        v = body_of("exp", 3000)
        lm = email.utils.formatdate(time.time() - 7200, usegmt=True)

        def handler(q):
            hdrs = [("Date", email.utils.formatdate(time.time(), usegmt=True)),
                    ("Expires", email.utils.formatdate(time.time() - 10, usegmt=True)), ("Last-Modified", lm)]
            if q.get("if-modified-since") == lm:
                return Reply(304, headers=hdrs)
            return Reply(body=v, headers=hdrs)
        self.o.route("/exp", handler)
        self.assertBody(self.get("/exp"), v)
        self.assertBody(self.get("/exp"), v)
        self.assertEqual(self.o.requests_for("/exp")[1].get("if-modified-since"), lm)
        self.assertEqual(log_codes(self.p, self.o.url("/exp"), 2), ["TCP_MISS", "TCP_REFRESH_UNMODIFIED"])

    def test_client_conditional_answered_from_cache(self):
        body = body_of("cond", 8000)
        self.o.route("/cond", lambda q: Reply(body=body, headers=[MAX60, ("ETag", '"c1"')]))
        self.assertBody(self.get("/cond"), body)
        r = self.get("/cond", [("If-None-Match", '"c1"')])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.get("etag"), '"c1"')
        r = self.get("/cond", [("If-None-Match", '"other", W/"c1"')])
        self.assertEqual(r.status, 304, "weak comparison for If-None-Match (RFC 9110 13.1.2)")
        r = self.get("/cond", [("If-None-Match", '"nope"')])
        self.assertHit(r, body)
        self.assertEqual(self.count("/cond"), 1, "the origin was never asked again")

    # ---- Vary

    def test_vary_variants(self):
        def handler(q):
            ae = q.get("accept-encoding") or "none"
            return Reply(body=body_of("vary-" + ae, 3000), headers=[MAX60, ("Vary", "Accept-Encoding"),
                                                                    ("X-AE", ae)])
        self.o.route("/vary", handler)
        url = self.o.url("/vary")
        gz, br = [("Accept-Encoding", "gzip")], [("Accept-Encoding", "br")]
        self.assertBody(self.get("/vary", gz), body_of("vary-gzip", 3000))
        self.assertBody(self.get("/vary", br), body_of("vary-br", 3000))
        self.assertEqual(self.count("/vary"), 2)
        r = self.get("/vary", gz)
        self.assertHit(r, body_of("vary-gzip", 3000))
        self.assertEqual(r.get("x-ae"), "gzip")
        r = self.get("/vary", br)
        self.assertHit(r, body_of("vary-br", 3000))
        self.assertEqual(r.get("x-ae"), "br")
        self.assertEqual(self.count("/vary"), 2)
        self.assertBody(self.get("/vary", [("Accept-Encoding", "identity")]), body_of("vary-identity", 3000))
        self.assertEqual(self.count("/vary"), 3, "another Accept-Encoding value is a miss")
        self.assertBody(self.get("/vary"), body_of("vary-none", 3000))
        self.assertEqual(self.count("/vary"), 4, "no Accept-Encoding is another variant")
        self.assertEqual(log_codes(self.p, url, 6),
                         ["TCP_MISS", "TCP_MISS", "TCP_MEM_HIT", "TCP_MEM_HIT", "TCP_MISS", "TCP_MISS"])

    def test_vary_accept_encoding_normalised(self):
        # RFC 9110 12.5.3: members in another order, case, spacing or q
        # spelling ask for the same thing: one variant, one origin fetch
        def handler(q):
            return Reply(body=body_of("norm-" + (q.get("accept-encoding") or ""), 2000),
                         headers=[MAX60, ("Vary", "Accept-Encoding, Accept-Language")])
        self.o.route("/vnorm", handler)
        first = [("Accept-Encoding", "gzip, deflate;q=0.50, br"), ("Accept-Language", "en-US, de;q=0.5")]
        body = body_of("norm-gzip, deflate;q=0.50, br", 2000)
        self.assertBody(self.get("/vnorm", first), body)
        for same in ([("Accept-Encoding", "BR,GZip ,  deflate; q=0.5"), ("Accept-Language", "DE;q=0.50,en-us")],
                     [("Accept-Encoding", "br;q=1.0, gzip;q=1, deflate;Q=0.500"),
                      ("Accept-Language", "de; q=0.5, en-US;q=1")]):
            with self.subTest(same=same):
                self.assertHit(self.get("/vnorm", same), body)
        self.assertEqual(self.count("/vnorm"), 1)
        self.assertBody(self.get("/vnorm", [("Accept-Encoding", "gzip, deflate;q=0.6, br"),
                                            ("Accept-Language", "en-US, de;q=0.5")]),
                        body_of("norm-gzip, deflate;q=0.6, br", 2000))
        self.assertEqual(self.count("/vnorm"), 2, "another weight is another variant")

    def test_vary_star_never_cached(self):
        self.o.route("/vstar", lambda q: Reply(body=b"star", headers=[MAX60, ("Vary", "*")]))
        for _ in range(3):
            self.assertBody(self.get("/vstar"), b"star")
        self.assertEqual(self.count("/vstar"), 3)
        self.assertEqual(log_codes(self.p, self.o.url("/vstar"), 3), ["TCP_MISS"] * 3)

    # ---- HEAD

    def test_head_from_cached_get(self):
        body = body_of("head", 12345)
        self.o.route("/head", lambda q: Reply(body=body, headers=[MAX60, ("ETag", '"h"'), ("X-Custom", "k")]))
        g = self.get("/head")
        self.assertBody(g, body)
        h = self.get("/head", method="HEAD")
        self.assertEqual(h.status, 200)
        self.assertEqual(h.body, b"")
        self.assertIsNotNone(h.get("age"))
        for name in ("content-length", "etag", "x-custom", "cache-control"):
            self.assertEqual(h.get(name), g.get(name), name)
        # the connection stays usable: no body bytes were sent after the HEAD's head
        with Client(self.p) as c:
            h = c.request("HEAD", self.o.url("/head"))
            self.assertEqual((h.status, h.get("content-length")), (200, str(len(body))))
            self.assertHit(c.request("GET", self.o.url("/head")), body)
        self.assertEqual(self.count("/head"), 1)
        self.assertEqual(log_codes(self.p, self.o.url("/head"), 4), ["TCP_MISS"] + ["TCP_MEM_HIT"] * 3)

    # ---- Range

    def test_single_range(self):
        body = body_of("range", 100000)
        self.o.route("/rg", lambda q: Reply(body=body, headers=[MAX60, ("Content-Type", "application/x-r")]))
        self.assertBody(self.get("/rg"), body)
        for spec, first, last in (("bytes=0-0", 0, 0), ("bytes=100-199", 100, 199), ("bytes=99990-", 99990, 99999),
                                  ("bytes=-10", 99990, 99999), ("bytes=50000-999999", 50000, 99999)):
            with self.subTest(spec=spec):
                r = self.get("/rg", [("Range", spec)])
                self.assertEqual(r.status, 206)
                self.assertEqual(r.get("content-range"), "bytes %d-%d/100000" % (first, last))
                self.assertEqual(r.get("content-length"), str(last - first + 1))
                self.assertEqual(r.body, body[first:last + 1])
        self.assertEqual(self.count("/rg"), 1)

    def test_multiple_ranges(self):
        body = body_of("mrange", 65536)
        self.o.route("/mr", lambda q: Reply(body=body, headers=[MAX60, ("Content-Type", "text/x-m")]))
        self.assertBody(self.get("/mr"), body)
        r = self.get("/mr", [("Range", "bytes=0-9,1000-1999,-5")])
        self.assertEqual(r.status, 206)
        self.assertTrue(r.complete)
        self.assertEqual(int(r.get("content-length")), len(r.body))
        parts = parse_byteranges(r)
        self.assertEqual([cr for cr, _ in parts], ["bytes 0-9/65536", "bytes 1000-1999/65536",
                                                   "bytes 65531-65535/65536"])
        self.assertEqual([d for _, d in parts], [body[0:10], body[1000:2000], body[65531:]])
        self.assertEqual(self.count("/mr"), 1)

    def test_if_range(self):
        body = body_of("ifr", 5000)
        lm = email.utils.formatdate(time.time() - 3600, usegmt=True)
        self.o.route("/ifr", lambda q: Reply(body=body, headers=[MAX60, ("ETag", '"ir"'), ("Last-Modified", lm)]))
        self.assertBody(self.get("/ifr"), body)
        r = self.get("/ifr", [("Range", "bytes=10-19"), ("If-Range", '"ir"')])
        self.assertEqual((r.status, r.body), (206, body[10:20]))
        r = self.get("/ifr", [("Range", "bytes=10-19"), ("If-Range", '"other"')])
        self.assertHit(r, body)
        r = self.get("/ifr", [("Range", "bytes=10-19"), ("If-Range", lm)])
        self.assertEqual((r.status, r.body), (206, body[10:20]))
        self.assertEqual(self.count("/ifr"), 1)

    def test_unsatisfiable_range(self):
        body = body_of("urange", 1000)
        self.o.route("/ur", lambda q: Reply(body=body, headers=[MAX60]))
        self.assertBody(self.get("/ur"), body)
        r = self.get("/ur", [("Range", "bytes=5000-6000")])
        self.assertEqual(r.status, 416)
        self.assertEqual(r.get("content-range"), "bytes */1000")
        self.assertEqual(self.count("/ur"), 1)
        # the entry is still there and whole
        self.assertHit(self.get("/ur"), body)

    # ---- invalidation

    def test_post_invalidates(self):
        body = body_of("inv", 2000)
        self.o.route("/inv", lambda q: Reply(body=body, headers=[MAX60]) if q.method == "GET" else Reply(204))
        self.assertBody(self.get("/inv"), body)
        self.assertHit(self.get("/inv"), body)
        r = proxy_request(self.p, "POST", self.o.url("/inv"), body=b"change")
        self.assertEqual(r.status, 204)
        self.assertBody(self.get("/inv"), body)
        self.assertEqual(len([q for q in self.o.requests_for("/inv") if q.method == "GET"]), 2)
        self.assertEqual(log_codes(self.p, self.o.url("/inv"), 4), ["TCP_MISS", "TCP_MEM_HIT", "TCP_MISS", "TCP_MISS"])

    def test_failed_post_does_not_invalidate(self):
        body = body_of("noinv", 2000)
        self.o.route("/noinv", lambda q: Reply(body=body, headers=[MAX60]) if q.method == "GET" else Reply(500))
        self.assertBody(self.get("/noinv"), body)
        self.assertEqual(proxy_request(self.p, "POST", self.o.url("/noinv"), body=b"x").status, 500)
        self.assertHit(self.get("/noinv"), body)
        self.assertEqual(len([q for q in self.o.requests_for("/noinv") if q.method == "GET"]), 1)

    def test_unsafe_methods_invalidate_location_and_content_location(self):
        for method in ("PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                base = "/il-%s" % method
                tgt, loc, cloc, other = base + "/t", base + "/loc", base + "/cloc", base + "/other"
                for path in (loc, cloc, other):
                    self.o.route(path, lambda q, path=path: Reply(body=path, headers=[MAX60]))
                self.o.route(tgt, lambda q: Reply(201, headers=[
                    ("Location", self.o.url(loc)), ("Content-Location", cloc),
                    ("Content-Length", "0")]))
                for path in (loc, cloc, other):
                    self.assertBody(self.get(path), path.encode())
                    self.assertHit(self.get(path), path.encode())
                r = proxy_request(self.p, method, self.o.url(tgt), body=b"x")
                self.assertEqual(r.status, 201)
                for path in (loc, cloc):
                    self.assertBody(self.get(path), path.encode())
                    self.assertEqual(self.count(path), 2, "%s was invalidated by %s" % (path, method))
                self.assertHit(self.get(other), other.encode())
                self.assertEqual(self.count(other), 1)

    # ---- requests whose answer is not the full object must not fill the cache with it

    def _ranged_origin(self, path, body, etag='"rg"'):
        """An origin that honours single ranges and If-None-Match."""
        def handler(q):
            hdrs = [MAX60, ("ETag", etag)]
            if q.get("if-none-match") == etag:
                return Reply(304, headers=hdrs)
            rg = q.get("range")
            if rg and rg.startswith("bytes=") and "," not in rg:
                a, _, b = rg[6:].partition("-")
                a = int(a)
                b = min(int(b), len(body) - 1) if b else len(body) - 1
                return Reply(206, body=body[a:b + 1], headers=hdrs + [
                    ("Content-Range", "bytes %d-%d/%d" % (a, b, len(body)))])
            return Reply(body=body, headers=hdrs)
        self.o.route(path, handler)

    def test_range_miss_does_not_store_partial(self):
        body = body_of("rmiss", 10000)
        self._ranged_origin("/rmiss", body)
        r = self.get("/rmiss", [("Range", "bytes=10-19")])
        self.assertEqual((r.status, r.body), (206, body[10:20]))
        r = self.get("/rmiss")
        self.assertBody(r, body)
        r = self.get("/rmiss", [("Range", "bytes=100-109")])
        self.assertEqual((r.status, r.body), (206, body[100:110]))
        self.assertEqual(r.get("content-range"), "bytes 100-109/10000")

    def test_conditional_miss_does_not_store_304(self):
        body = body_of("cmiss", 5000)
        self._ranged_origin("/cmiss", body, etag='"cm"')
        r = self.get("/cmiss", [("If-None-Match", '"cm"')])
        self.assertEqual((r.status, r.body), (304, b""))
        self.assertBody(self.get("/cmiss"), body)
        self.assertHit(self.get("/cmiss"), body)
        self.assertEqual(self.count("/cmiss"), 2)

    def test_head_miss_then_get(self):
        body = body_of("hmiss", 6000)
        self.o.route("/hmiss", lambda q: Reply(body=body, headers=[MAX60]))
        h = self.get("/hmiss", method="HEAD")
        self.assertEqual((h.status, h.get("content-length"), h.body), (200, "6000", b""))
        self.assertBody(self.get("/hmiss"), body)
        self.assertHit(self.get("/hmiss"), body)
        h = self.get("/hmiss", method="HEAD")
        self.assertEqual((h.status, h.get("content-length"), h.body), (200, "6000", b""))
        self.assertEqual(len([q for q in self.o.requests_for("/hmiss") if q.method == "GET"]), 1)

    def test_client_if_modified_since(self):
        body = body_of("ims", 3000)
        lm = email.utils.formatdate(time.time() - 3600, usegmt=True)
        self.o.route("/ims", lambda q: Reply(body=body, headers=[MAX60, ("Last-Modified", lm)]))
        self.assertBody(self.get("/ims"), body)
        r = self.get("/ims", [("If-Modified-Since", email.utils.formatdate(time.time(), usegmt=True))])
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.get("/ims", [("If-Modified-Since", email.utils.formatdate(time.time() - 7200, usegmt=True))])
        self.assertHit(r, body)
        self.assertEqual(self.count("/ims"), 1)

    def test_ims_against_date_without_last_modified(self):
        # RFC 9111 4.3.2: with no Last-Modified the stored Date decides
        body = body_of("imsdate", 2000)
        date_t = time.time() - 100
        date = email.utils.formatdate(date_t, usegmt=True)
        self.o.route("/imsdate", lambda q: Reply(body=body, headers=[("Cache-Control", "max-age=3600"),
                                                                 ("Date", date)]))
        self.assertBody(self.get("/imsdate"), body)
        for ims, want in ((date, 304), (email.utils.formatdate(date_t + 50, usegmt=True), 304),
                          (email.utils.formatdate(date_t - 3600, usegmt=True), 200)):
            with self.subTest(ims=ims):
                r = self.get("/imsdate", [("If-Modified-Since", ims)])
                self.assertEqual(r.status, want, r)
                if want == 200:
                    self.assertHit(r, body)
                else:
                    self.assertEqual(r.body, b"")
        self.assertEqual(self.count("/imsdate"), 1, "all answered from the cache")
        self.assertEqual(log_codes(self.p, self.o.url("/imsdate"), 4),
                         ["TCP_MISS", "TCP_IMS_HIT", "TCP_IMS_HIT", "TCP_MEM_HIT"])
        # no Date either: the time the cache received it
        self.o.route("/imsnodate", lambda q: Reply(body=body, headers=[("Cache-Control", "max-age=3600")]))
        self.assertBody(self.get("/imsnodate"), body)
        r = self.get("/imsnodate", [("If-Modified-Since", email.utils.formatdate(time.time() + 3600, usegmt=True))])
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.get("/imsnodate", [("If-Modified-Since", email.utils.formatdate(time.time() - 3600, usegmt=True))])
        self.assertHit(r, body)
        self.assertEqual(self.count("/imsnodate"), 1)

    def test_invalid_expires_not_reused(self):
        # RFC 9111 5.3: an Expires that is not an HTTP-date exactly, or more
        # than one of them, means already expired: the next request goes out
        later = time.time() + 3600
        good = email.utils.formatdate(later, usegmt=True)           # "Thu, 18 Aug 2050 02:01:18 GMT"
        day, mon, year, hms = good[5:7], good[8:11], good[12:16], good[17:25]
        cases = {
            "/exp-spaces": [("Expires", "%s %s  %s  %s %s GMT" % (good[:4], day, mon, year, hms))],
            "/exp-1digit-hour": [("Expires", good[:17] + str(int(hms[:2])) + hms[2:] + " GMT")
                                 if hms[0] == "0" else ("Expires", good[:17] + "7" + hms[2:] + " GMT")],
            "/exp-two-lines": [("Expires", good), ("Expires", good)],
            "/exp-list": [("Expires", good + ", " + good)],
            "/exp-zero": [("Expires", "0")],
        }
        for path, hdrs in cases.items():
            self.o.route(path, lambda q, hdrs=hdrs: Reply(body=b"e", headers=hdrs))
        # the same date in another letter case is valid: reused
        self.o.route("/exp-lower", lambda q: Reply(body=b"e", headers=[("Expires", good.lower())]))
        for path in list(cases) + ["/exp-lower"]:
            for _ in range(2):
                self.assertBody(self.get(path), b"e")
        self.assertEqual({p: self.count(p) for p in cases}, {p: 2 for p in cases})
        self.assertEqual(self.count("/exp-lower"), 1)
        self.assertEqual(log_codes(self.p, self.o.url("/exp-spaces"), 2)[1], "TCP_MISS")

    def test_early_hints_forwarded_not_cached(self):
        # RFC 9110 15.2: a 103 goes to an HTTP/1.1 client with its fields
        # (less the hop-by-hop ones), to an HTTP/1.0 client not at all, and
        # is never stored
        def hints(sock, req, origin):
            sock.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n"
                         b"Link: </script.js>; rel=preload; as=script\r\nConnection: X-Hop\r\n"
                         b"X-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nfinal")
            return True
        self.o.route("/hints", raw=hints)
        self.o.route("/hints10", raw=hints)
        wire = pdtest.raw(self.p, ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                   % (self.o.url("/hints"), self.o.url("/").split("/")[2])).encode())
        head103, sep, rest = wire.partition(b"\r\n\r\n")
        self.assertTrue(sep, wire)
        lines = head103.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 103 Early Hints", wire)
        fields = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines[1:]]
        self.assertEqual([v for k, v in fields if k.lower() == b"link"],
                         [b"</style.css>; rel=preload; as=style", b"</script.js>; rel=preload; as=script"])
        names = {k.lower() for k, _ in fields}
        self.assertFalse(names & {b"connection", b"x-hop", b"keep-alive"}, fields)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), wire)
        self.assertTrue(rest.endswith(b"\r\n\r\nfinal"), wire)
        # the hit has no interim response: the 103 was not stored
        r = self.get("/hints")
        self.assertEqual((r.status, r.body, r.interim), (200, b"final", []))
        self.assertEqual(self.count("/hints"), 1)
        # HTTP/1.0 client: no 1xx at all
        wire = pdtest.raw(self.p, ("GET %s HTTP/1.0\r\n\r\n" % self.o.url("/hints10")).encode())
        self.assertTrue(wire.startswith(b"HTTP/1.1 200 "), wire)
        self.assertNotIn(b"103", wire.partition(b"\r\n\r\n")[0])
        self.assertTrue(wire.endswith(b"final"), wire)

    def test_empty_body_cached(self):
        self.o.route("/empty", lambda q: Reply(body=b"", headers=[MAX60]))
        for _ in range(3):
            r = self.get("/empty")
            self.assertEqual((r.status, r.body, r.get("content-length")), (200, b"", "0"))
        self.assertEqual(self.count("/empty"), 1)

    def test_http10_client_hit(self):
        body = body_of("h10", 7000)
        self.o.route("/h10", lambda q: Reply(body=body, headers=[MAX60]))
        self.assertBody(self.get("/h10"), body)
        r = proxy_request(self.p, "GET", self.o.url("/h10"), version="HTTP/1.0")
        self.assertHit(r, body)
        self.assertEqual(self.count("/h10"), 1)

    def test_request_no_cache_revalidates(self):
        body = body_of("rnc", 3000)
        self.o.route("/rnc", lambda q: Reply(304, headers=[MAX60, ("ETag", '"n"')])
                     if q.get("if-none-match") == '"n"' else Reply(body=body, headers=[MAX60, ("ETag", '"n"')]))
        self.assertBody(self.get("/rnc"), body)
        self.assertBody(self.get("/rnc", [("Cache-Control", "no-cache")]), body)
        self.assertBody(self.get("/rnc", [("Pragma", "no-cache")]), body)
        reqs = self.o.requests_for("/rnc")
        self.assertEqual(len(reqs), 3)
        self.assertEqual([q.get("if-none-match") for q in reqs[1:]], ['"n"', '"n"'])
        self.assertEqual(log_codes(self.p, self.o.url("/rnc"), 3),
                         ["TCP_MISS", "TCP_REFRESH_UNMODIFIED", "TCP_REFRESH_UNMODIFIED"])

    def test_only_if_cached(self):
        body = body_of("oic", 1000)
        self.o.route("/oic", lambda q: Reply(body=body, headers=[MAX60]))
        r = self.get("/oic", [("Cache-Control", "only-if-cached")])
        self.assertEqual(r.status, 504)
        self.assertEqual(self.count("/oic"), 0)
        self.assertBody(self.get("/oic"), body)
        self.assertHit(self.get("/oic", [("Cache-Control", "only-if-cached")]), body)
        self.assertEqual(self.count("/oic"), 1)

    # ---- more freshness and validation cases

    def test_vary_invalidation_covers_variants(self):
        ver = {"v": 1}

        def handler(q):
            if q.method != "GET":
                ver["v"] += 1
                return Reply(204)
            ae = q.get("accept-encoding") or "none"
            return Reply(body="%s v%d" % (ae, ver["v"]), headers=[MAX60, ("Vary", "Accept-Encoding")])
        self.o.route("/vinv", handler)
        gz, br = [("Accept-Encoding", "gzip")], [("Accept-Encoding", "br")]
        self.assertBody(self.get("/vinv", gz), b"gzip v1")
        self.assertBody(self.get("/vinv", br), b"br v1")
        self.assertHit(self.get("/vinv", br), b"br v1")
        self.assertEqual(proxy_request(self.p, "POST", self.o.url("/vinv"), body=b"x").status, 204)
        self.assertBody(self.get("/vinv", gz), b"gzip v2")
        r = self.get("/vinv", br)
        self.assertBody(r, b"br v2", 200)

    def test_vary_changed_by_origin(self):
        vary = {"on": "Accept-Encoding"}

        def handler(q):
            key = "%s/%s" % (q.get("accept-encoding"), q.get("accept-language"))
            return Reply(body="v " + key, headers=[MAX60, ("Vary", vary["on"])])
        self.o.route("/vch", handler)
        gz, br = [("Accept-Encoding", "gzip")], [("Accept-Encoding", "br"), ("Accept-Language", "en")]
        self.assertBody(self.get("/vch", gz), b"v gzip/None")
        self.assertHit(self.get("/vch", gz), b"v gzip/None")
        vary["on"] = "Accept-Language"
        self.assertBody(self.get("/vch", br), b"v br/en")
        self.assertHit(self.get("/vch", br), b"v br/en")
        self.assertEqual(self.count("/vch"), 2, "the new Vary replaced the marker")

    def test_vary_variant_revalidated(self):
        def handler(q):
            ae = q.get("accept-encoding") or "none"
            hdrs = [("Cache-Control", "max-age=0"), ("Vary", "Accept-Encoding"), ("ETag", '"%s"' % ae)]
            if q.get("if-none-match") == '"%s"' % ae:
                return Reply(304, headers=hdrs)
            return Reply(body="body " + ae, headers=hdrs)
        self.o.route("/vrv", handler)
        gz, br = [("Accept-Encoding", "gzip")], [("Accept-Encoding", "br")]
        self.assertBody(self.get("/vrv", gz), b"body gzip")
        self.assertBody(self.get("/vrv", br), b"body br")
        self.assertBody(self.get("/vrv", gz), b"body gzip")
        self.assertBody(self.get("/vrv", br), b"body br")
        reqs = self.o.requests_for("/vrv")
        self.assertEqual([q.get("if-none-match") for q in reqs], [None, None, '"gzip"', '"br"'])
        self.assertEqual(log_codes(self.p, self.o.url("/vrv"), 4),
                         ["TCP_MISS", "TCP_MISS", "TCP_REFRESH_UNMODIFIED", "TCP_REFRESH_UNMODIFIED"])

    def test_304_with_other_validator_not_passed_to_client(self):
        # a 304 that does not select the stored response (other ETag) must not reach a
        # client that sent no condition (RFC 9111 4.3.4)
        state = {"n": 0}

        def handler(q):
            state["n"] += 1
            if state["n"] == 1:
                return Reply(body=b"first", headers=[("Cache-Control", "max-age=0"), ("ETag", '"a"')])
            if q.get("if-none-match"):
                return Reply(304, headers=[("Cache-Control", "max-age=0"), ("ETag", '"b"')])
            return Reply(body=b"second", headers=[("Cache-Control", "max-age=0"), ("ETag", '"b"')])
        self.o.route("/o304", handler)
        self.assertBody(self.get("/o304"), b"first")
        r = self.get("/o304")
        self.assertNotEqual(r.status, 304, "a 304 reached a client that sent no conditional")
        self.assertBody(r, b"second")
        reqs = self.o.requests_for("/o304")
        self.assertEqual([q.get("if-none-match") for q in reqs], [None, '"a"', None],
                         "asked again without conditions")
        self.assertEqual(log_codes(self.p, self.o.url("/o304"), 2), ["TCP_MISS", "TCP_REFRESH_MODIFIED"])
        # and the client's own condition still reaches the origin on that second try
        state["n"] = 0
        self.assertBody(self.get("/o304"), b"first")
        r = self.get("/o304", [("If-None-Match", '"b"')])
        self.assertEqual((r.status, r.body), (304, b""))
        # a GET with a body cannot be sent again: an error, not a 304 out of nowhere
        state["n"] = 0
        self.assertBody(self.get("/o304"), b"first")
        r = proxy_request(self.p, "GET", self.o.url("/o304"), body=b"payload")
        self.assertEqual(r.status, 502)

    def test_client_conditional_on_stale_entry(self):
        body = body_of("cstale", 4000)
        self.o.route("/cst", lambda q: Reply(304, headers=[("Cache-Control", "max-age=0"), ("ETag", '"s"')])
                     if q.get("if-none-match") == '"s"' else
                     Reply(body=body, headers=[("Cache-Control", "max-age=0"), ("ETag", '"s"')]))
        self.assertBody(self.get("/cst"), body)
        r = self.get("/cst", [("If-None-Match", '"s"')])
        self.assertEqual((r.status, r.body), (304, b""))
        r = self.get("/cst", [("Range", "bytes=0-9")])
        self.assertEqual((r.status, r.body), (206, body[:10]))
        r = self.get("/cst", [("If-None-Match", '"zz"')])
        self.assertBody(r, body)
        self.assertEqual(self.count("/cst"), 4)
        self.assertTrue(all(q.get("if-none-match") == '"s"' for q in self.o.requests_for("/cst")[1:]))
        self.assertIsNone(self.o.requests_for("/cst")[2].get("range"),
                          "the revalidation of the stored object asks for all of it")

    def test_age_from_origin_counts(self):
        self.o.route("/aged", lambda q: Reply(body=b"aged", headers=[("Cache-Control", "max-age=600"), ("Age", "100")]))
        self.o.route("/old", lambda q: Reply(body=b"old", headers=[("Cache-Control", "max-age=60"), ("Age", "100")]))
        self.assertBody(self.get("/aged"), b"aged")
        r = self.get("/aged")
        self.assertHit(r, b"aged")
        self.assertGreaterEqual(int(r.get("age")), 100)
        self.assertLess(int(r.get("age")), 110)
        self.assertBody(self.get("/old"), b"old")
        self.assertBody(self.get("/old"), b"old")
        self.assertEqual(self.count("/old"), 2, "max-age 60 with Age 100 is stale on arrival")

    def test_s_maxage_and_expires(self):
        now = time.time()
        self.o.route("/smax", lambda q: Reply(body=b"smax", headers=[("Cache-Control", "max-age=0, s-maxage=60")]))
        self.o.route("/expf", lambda q: Reply(body=b"expf", headers=[
            ("Date", email.utils.formatdate(time.time(), usegmt=True)),
            ("Expires", email.utils.formatdate(time.time() + 60, usegmt=True))]))
        self.o.route("/expbad", lambda q: Reply(body=b"expbad", headers=[("Expires", "0")]))
        self.o.route("/nocache", lambda q: Reply(body=b"nc", headers=[("Cache-Control", "no-cache, max-age=60")]))
        for path in ("/smax", "/expf", "/expbad", "/nocache"):
            self.assertBody(self.get(path), path.encode()[1:] if path != "/nocache" else b"nc")
            self.get(path)
        self.assertEqual((self.count("/smax"), self.count("/expf")), (1, 1))
        self.assertEqual(self.count("/expbad"), 2, "an invalid Expires means already stale")
        self.assertEqual(self.count("/nocache"), 2, "no-cache: revalidated (here refetched) every time")
        del now

    def test_pipelined_hits_and_misses_in_order(self):
        for name in ("p1", "p2", "p3"):
            self.o.route("/" + name, lambda q, name=name: Reply(body=body_of(name, 20000), headers=[MAX60]))
        self.assertBody(self.get("/p1"), body_of("p1", 20000))
        self.assertBody(self.get("/p3"), body_of("p3", 20000))
        with Client(self.p) as c:
            c.send(b"".join(c.build("GET", self.o.url(p)) for p in ("/p1", "/p2", "/p3", "/p2", "/p1")))
            for name in ("p1", "p2", "p3", "p2", "p1"):
                r = c.read_response()
                self.assertBody(r, body_of(name, 20000))
        self.assertEqual([self.count(p) for p in ("/p1", "/p2", "/p3")], [1, 1, 1])

    def test_must_revalidate_origin_down(self):
        o2 = self.origin()
        o2.route("/mr", lambda q: Reply(body=b"mr", headers=[("Cache-Control", "max-age=0, must-revalidate"),
                                                             ("ETag", '"m"')]))
        self.assertBody(proxy_request(self.p, "GET", o2.url("/mr")), b"mr")
        url = o2.url("/mr")
        o2.stop()
        r = proxy_request(self.p, "GET", url)
        self.assertIn(r.status, (502, 503, 504), "stale must-revalidate served while the origin is down")

    def test_request_max_age_min_fresh_max_stale(self):
        self.o.route("/rq", lambda q: Reply(body=b"rq", headers=[("Cache-Control", "max-age=30"), ("Age", "20"),
                                                                 ("ETag", '"q"')]))
        self.assertBody(self.get("/rq"), b"rq")
        self.assertHit(self.get("/rq", [("Cache-Control", "max-age=25")]), b"rq")
        self.assertEqual(self.count("/rq"), 1)
        self.assertBody(self.get("/rq", [("Cache-Control", "max-age=5")]), b"rq")
        self.assertEqual(self.count("/rq"), 2, "older than the client's max-age: revalidated")
        self.assertBody(self.get("/rq", [("Cache-Control", "min-fresh=20")]), b"rq")
        self.assertEqual(self.count("/rq"), 3, "not fresh for 20 more seconds: revalidated")
        self.o.route("/ms", lambda q: Reply(body=b"ms", headers=[("Cache-Control", "max-age=10"), ("Age", "20")]))
        self.assertBody(self.get("/ms"), b"ms")
        self.assertHit(self.get("/ms", [("Cache-Control", "max-stale=60")]), b"ms")
        self.assertEqual(self.count("/ms"), 1, "max-stale accepts a stale entry")

    def test_query_and_long_urls(self):
        self.o.route("/q", lambda q: Reply(body=q.target, headers=[MAX60]))
        for t in ("/q?a=1", "/q?a=2", "/q?a=1", "/q?a=2", "/q"):
            self.assertBody(self.get(t), t.encode())
        self.assertEqual(self.count("/q"), 3)
        for n in (3000, 12000):
            t = "/q?" + "x" * n
            with self.subTest(n=n):
                for _ in range(2):
                    self.assertBody(self.get(t), t.encode())
        self.assertEqual(self.count("/q"), 3 + 1 + 2, "3000 bytes of URL cached, 12000 (over PD_CP_URL_MAX) not")



class CacheConfigTest(pdtest.ProxyTestCase):
    """cache deny/allow and refresh_pattern, each with its own proxy."""

    def test_cache_deny(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="""
            acl nocache urlpath_regex ^/private/
            cache deny nocache
            cache allow all""")
        o.route("/private/x", lambda q: Reply(body=b"px", headers=[MAX60]))
        o.route("/public/x", lambda q: Reply(body=b"pub", headers=[MAX60]))
        for _ in range(3):
            self.assertEqual(proxy_request(p, "GET", o.url("/private/x")).body, b"px")
            self.assertEqual(proxy_request(p, "GET", o.url("/public/x")).body, b"pub")
        self.assertEqual(len(o.requests_for("/private/x")), 3)
        self.assertEqual(len(o.requests_for("/public/x")), 1)

    def test_refresh_pattern(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="""
            refresh_pattern -i \\.jpg$ 60 50% 120
            refresh_pattern -i (/cgi-bin/|\\?) 0 0% 0
            refresh_pattern . 0 20% 4320""")
        lm = email.utils.formatdate(time.time() - 86400, usegmt=True)
        o.route("/a.JPG", lambda q: Reply(body=b"jpg"))                                   # min 60 min
        o.route("/heur", lambda q: Reply(body=b"heur", headers=[("Last-Modified", lm)]))  # 20% of a day
        o.route("/none", lambda q: Reply(body=b"none"))                                  # no info, min 0
        o.route("/cgi", lambda q: Reply(body=b"cgi", headers=[("Last-Modified", lm)]))
        for _ in range(2):
            for path in ("/a.JPG", "/heur", "/none", "/cgi?x=1"):
                self.assertEqual(proxy_request(p, "GET", o.url(path)).status, 200)
        self.assertEqual([len(o.requests_for(x)) for x in ("/a.JPG", "/heur", "/none", "/cgi")], [1, 1, 2, 2])


if __name__ == "__main__":
    pdtest.main()
