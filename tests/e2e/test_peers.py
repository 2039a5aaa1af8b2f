"""cache_peer parents (issue 16): a proxyd child in front of proxyd parents
(round-robin spread counted at the parents, failover when one is stopped,
never_direct honoured when all are gone), login= and the absolute form as a
parent sees them, CONNECT through a parent, the hierarchy codes in the
access log, and a real Squid on either side (skipped without squid)."""

import base64
import shutil
import socket
import threading
import unittest

import pdtest
from pdtest import Reply, proxy_request
from squidtest import Squid

HOST = "127.0.0.1"


def parent_line(p, name, opts="round-robin"):
    return "cache_peer %s parent %d 0 no-query name=%s %s\n" % (HOST, p.port, name, opts)


class PeersTest(pdtest.ProxyTestCase):
    def parents(self, n):
        # the parents go to the origin themselves; nothing is cached on the way
        return [self.proxy("cache deny all\n", workers=1, visible_hostname="parent%d.test" % i)
                for i in range(n)]

    def test_round_robin_failover_and_never_direct(self):
        o = self.origin()
        p1, p2 = self.parents(2)
        child = self.proxy(parent_line(p1, "p1") + parent_line(p2, "p2", "round-robin connect-fail-limit=1") +
                           "never_direct allow all\ncache deny all\n", workers=1)
        # 10 requests spread 5/5 over the two parents, in turn
        for i in range(10):
            r = proxy_request(child, "GET", o.url("/rr%d" % i))
            self.assertEqual((r.status, r.body), (200, b"ok /rr%d" % i))
        self.assertEqual(len(o.requests), 10)
        p1.wait_access_lines(5)
        p2.wait_access_lines(5)
        self.assertEqual((len(p1.access_lines()), len(p2.access_lines())), (5, 5))
        # the parents saw the absolute form from the child and went direct themselves
        for line in p1.access_lines() + p2.access_lines():
            self.assertIn(" HIER_DIRECT/127.0.0.1 ", line)
        child.wait_access_lines(10)
        lines = child.access_lines()
        self.assertEqual(sum(" ROUNDROBIN_PARENT/127.0.0.1 " in l for l in lines), 10, lines)

        # one parent stopped: every request still answered, through the other
        p2.stop()
        for i in range(6):
            r = proxy_request(child, "GET", o.url("/fo%d" % i))
            self.assertEqual((r.status, r.body), (200, b"ok /fo%d" % i))
        p1.wait_access_lines(11)
        self.assertEqual(len(p1.access_lines()), 11)
        self.assertEqual(len(o.requests), 16)

        # both gone: 503 ERR_CANNOT_FORWARD, and never the origin itself
        p1.stop()
        r = proxy_request(child, "GET", o.url("/none"))
        self.assertEqual(r.status, 503)
        self.assertIn("ERR_CANNOT_FORWARD", r.get("x-squid-error") or "")
        self.assertEqual(len(o.requests), 16)
        self.assertEqual(o.requests_for("/none"), [])
        child.wait_access_lines(17)
        self.assertRegex(child.access_lines()[-1], r" TCP_MISS/503 .* HIER_NONE/- ")

    def test_weighted_round_robin_without_rtt_goes_by_weight(self):
        # no ICP (no-query): no round-trip time is measured, so a pick costs
        # 1 ms / weight= and weight=3 gets three requests for the other's one
        o = self.origin()
        p1, p2 = self.parents(2)
        child = self.proxy(parent_line(p1, "p1", "weighted-round-robin") +
                           parent_line(p2, "p2", "weighted-round-robin weight=3") +
                           "never_direct allow all\ncache deny all\n", workers=1)
        for i in range(8):
            r = proxy_request(child, "GET", o.url("/w%d" % i))
            self.assertEqual((r.status, r.body), (200, b"ok /w%d" % i))
        p1.wait_access_lines(2)
        p2.wait_access_lines(6)
        self.assertEqual((len(p1.access_lines()), len(p2.access_lines())), (2, 6))
        child.wait_access_lines(8)
        lines = child.access_lines()
        self.assertEqual(sum(" ROUNDROBIN_PARENT/127.0.0.1 " in l for l in lines), 8, lines)

    def test_max_conn_skips_a_full_parent(self):
        o = self.origin()
        release = threading.Event()
        self.addCleanup(release.set)

        def slow(q):
            release.wait(pdtest.DEFAULT_TIMEOUT)
            return Reply(body=b"slow")
        o.route("/slow", slow)
        p1, p2 = self.parents(2)
        child = self.proxy(parent_line(p1, "p1", "max-conn=1") + parent_line(p2, "p2", "") +
                           "never_direct allow all\ncache deny all\n", workers=1)
        got = []
        t = threading.Thread(target=lambda: got.append(proxy_request(child, "GET", o.url("/slow"))))
        t.start()
        o.wait_requests(1, path="/slow")  # p1's one connection is in use now
        r = proxy_request(child, "GET", o.url("/busy"))
        self.assertEqual((r.status, r.body), (200, b"ok /busy"))
        p2.wait_access_lines(1)
        self.assertIn("/busy", p2.access_lines()[-1])  # p1 was full: the next parent
        release.set()
        t.join(pdtest.DEFAULT_TIMEOUT)
        self.assertEqual(got[0].body, b"slow")
        # free again: p1 first, as before
        r = proxy_request(child, "GET", o.url("/free"))
        self.assertEqual(r.status, 200)
        p1.wait_access_lines(2)
        self.assertIn("/free", p1.access_lines()[-1])
        self.assertEqual([l for l in p1.access_lines() if "/busy" in l], [])

    def test_direct_when_allowed_after_parents_fail(self):
        o = self.origin()
        dead = pdtest.closed_port()
        child = self.proxy("cache_peer %s parent %d 0 no-query name=gone\ncache deny all\n"
                           % (HOST, dead), workers=1)
        r = proxy_request(child, "GET", o.url("/d"))
        self.assertEqual(r.status, 200)
        self.assertEqual(len(o.requests_for("/d")), 1)
        child.wait_access_lines(1)
        self.assertIn(" HIER_DIRECT/127.0.0.1 ", child.access_lines()[-1])
        # always_direct: the parent is not even tried
        child2 = self.proxy("cache_peer %s parent %d 0 no-query name=gone\n"
                            "always_direct allow all\nnever_direct allow all\ncache deny all\n"
                            % (HOST, dead), workers=1)
        r = proxy_request(child2, "GET", o.url("/a"))
        self.assertEqual(r.status, 200)
        # a POST is not hierarchical: direct (nonhierarchical_direct on)
        p1, = self.parents(1)
        child3 = self.proxy(parent_line(p1, "p1", "") + "cache deny all\n", workers=1)
        r = proxy_request(child3, "POST", o.url("/post"), body=b"x")
        self.assertEqual(r.status, 200)
        self.assertEqual(p1.access_lines(), [])
        r = proxy_request(child3, "GET", o.url("/get"))
        self.assertEqual(r.status, 200)
        p1.wait_access_lines(1)
        child3.wait_access_lines(2)
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child3.access_lines()[-1])

    def test_login_and_absolute_form_at_the_parent(self):
        # a scripted parent records what a parent gets
        parent = RecordingParent()
        self._servers.append(parent)
        child = self.proxy("cache_peer %s parent %d 0 no-query login=alice:s3cret default\n"
                           "never_direct allow all\n" % (HOST, parent.port), workers=1)
        r = proxy_request(child, "GET", "http://www.example.test:8080/p?q=1")
        self.assertEqual(r.status, 200, r.body)
        line, fields = parent.heads[-1]
        self.assertEqual(line, "GET http://www.example.test:8080/p?q=1 HTTP/1.1")
        self.assertEqual(fields.get("host"), "www.example.test:8080")
        self.assertEqual(fields.get("proxy-authorization"),
                         "Basic " + base64.b64encode(b"alice:s3cret").decode())
        child.wait_access_lines(1)
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child.access_lines()[-1])

    def test_originserver_gets_origin_form(self):
        # an accelerator's origin as a peer: it is selected as a parent, and
        # sent what an origin gets (origin-form, the request's Host, login= as
        # Authorization, nothing for a proxy)
        o = self.origin()
        child = self.proxy("cache_peer %s parent %d 0 no-query originserver login=alice:s3cret "
                           "name=web\nnever_direct allow all\ncache deny all\n"
                           % (HOST, o.port), workers=1)
        r = proxy_request(child, "GET", "http://www.site.test/path?q=1")
        self.assertEqual((r.status, r.body), (200, b"ok /path?q=1"), r.body)
        q = o.requests[-1]
        self.assertEqual((q.method, q.target), ("GET", "/path?q=1"))
        self.assertEqual(q.get("host"), "www.site.test")
        self.assertEqual(q.get("authorization"),
                         "Basic " + base64.b64encode(b"alice:s3cret").decode())
        self.assertFalse(q.has("proxy-authorization"))
        child.wait_access_lines(1)
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child.access_lines()[-1])
        # the client's own Authorization goes on in place of login=; a port in
        # the URL stays in Host
        r = proxy_request(child, "GET", "http://www.site.test:8080/two",
                          headers=[("Authorization", "Bearer abc")])
        self.assertEqual(r.status, 200, r.body)
        q = o.requests[-1]
        self.assertEqual(q.target, "/two")
        self.assertEqual(q.get("host"), "www.site.test:8080")
        self.assertEqual(q.get_all("authorization"), ["Bearer abc"])

    def tunnel_ping(self, c, connect):
        """Sends the CONNECT request connect on c, checks that it is answered 200 and sends
        "ping\\n" through the tunnel. Returns (head, got): all that was read until the head
        ended, and the bytes after the head (at least 5)."""
        c.send(connect)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = c._recv(4096)
            self.assertTrue(chunk, head)
            head += chunk
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        c.send(b"ping\n")
        got = head.split(b"\r\n\r\n", 1)[1]
        while len(got) < 5:
            chunk = c._recv(4096)
            self.assertTrue(chunk)
            got += chunk
        return head, got

    def test_connect_through_a_parent(self):
        echo = self.echo()
        p1, = self.parents(1)
        child = self.proxy(parent_line(p1, "p1", "") + "never_direct allow all\n", workers=1)
        with pdtest.Client(child) as c:
            head, got = self.tunnel_ping(c, b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                                         % (HOST.encode(), echo.port, HOST.encode(), echo.port))
            self.assertEqual(head.count(b"HTTP/1.1 200"), 1, head)  # the parent's, not two
            self.assertEqual(got[:5], b"ping\n")
        p1.wait_access_lines(1)
        self.assertIn("CONNECT", p1.access_lines()[-1])

    def test_connect_to_an_originserver_peer_is_a_plain_tunnel(self):
        # the peer is the far end: the tunnel is to it, with no CONNECT sent on
        # (the echo server would echo a CONNECT line back)
        echo = self.echo()
        child = self.proxy("cache_peer %s parent %d 0 no-query originserver name=tls\n"
                           "never_direct allow all\n" % (HOST, echo.port), workers=1)
        with pdtest.Client(child) as c:
            _, got = self.tunnel_ping(
                c, b"CONNECT www.site.test:443 HTTP/1.1\r\nHost: www.site.test:443\r\n\r\n")
            self.assertEqual(got, b"ping\n")
        child.wait_access_lines(1)
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child.access_lines()[-1])

    def test_forwarding_loop_refused(self):
        o = self.origin()
        p = self.proxy("cache deny all\n", workers=1)
        r = proxy_request(p, "GET", o.url("/first"))
        ours = [v for v in r.get_all("via") if "pdtest.local" in v]
        self.assertEqual(len(ours), 1, r.get_all("via"))
        # our own Via among others: a loop; refused, the origin sees nothing
        r = proxy_request(p, "GET", o.url("/loop"), [("Via", "1.1 other.test (squid/5.7), " + ours[0])])
        self.assertEqual(r.status, 403)
        self.assertEqual(o.requests_for("/loop"), [])
        # a super-domain of our name is not us
        r = proxy_request(p, "GET", o.url("/notloop"),
                          [("Via", ours[0].replace("pdtest.local", "x.pdtest.local"))])
        self.assertEqual(r.status, 200)

        # a proxyd whose parent leads back to itself (through a TCP relay):
        # the second pass is refused, so the loop ends at once
        relay = Relay()
        self._servers.append(relay)
        a = self.proxy(parent_line(relay, "loop", "") + "never_direct allow all\ncache deny all\n",
                       workers=1, visible_hostname="a.test")
        relay.target = a.port
        r = proxy_request(a, "GET", o.url("/ab"))
        self.assertEqual(r.status, 403)
        self.assertEqual(o.requests_for("/ab"), [])
        a.wait_access_lines(2)
        self.assertEqual(len(a.access_lines()), 2)  # one pass each way, no more
        self.assertEqual(relay.connections, 1)


    def test_unique_hostname_tells_proxies_with_one_name_apart(self):
        o = self.origin()
        # a child and its parent sharing one visible_hostname: the parent takes the
        # child's Via for its own and refuses a loop, as Squid does
        parent = self.proxy("cache deny all\n", workers=1, visible_hostname="same.test")
        child = self.proxy(parent_line(parent, "p", "") + "never_direct allow all\ncache deny all\n",
                           workers=1, visible_hostname="same.test")
        self.assertEqual(proxy_request(child, "GET", o.url("/u1")).status, 403)
        self.assertEqual(o.requests_for("/u1"), [])
        # each with its own unique_hostname: no loop; Via names the unique names
        parent = self.proxy("cache deny all\nunique_hostname p.unique.test\n", workers=1,
                            visible_hostname="same.test")
        child = self.proxy(parent_line(parent, "p", "") + "never_direct allow all\ncache deny all\n"
                           "unique_hostname c.unique.test\n", workers=1, visible_hostname="same.test")
        r = proxy_request(child, "GET", o.url("/u2"))
        self.assertEqual(r.status, 200)
        via = ", ".join(o.requests_for("/u2")[-1].get_all("via"))
        self.assertIn("c.unique.test (proxyd/", via)
        self.assertIn("p.unique.test (proxyd/", via)
        self.assertNotIn("same.test", via)


class RecordingParent:
    """A parent proxy that records each request head and answers 200 "parent"."""

    def __init__(self):
        self.heads = []
        self._lsock = socket.socket()
        self._lsock.bind((HOST, 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._lsock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(pdtest.DEFAULT_TIMEOUT)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    continue
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
                fields = {}
                for f in head[1:]:
                    k, _, v = f.partition(":")
                    fields[k.strip().lower()] = v.strip()
                self.heads.append((head[0], fields))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\n"
                             b"parent")

    def stop(self):
        self._stop.set()
        self._lsock.close()
        self._thread.join(5)

class Relay:
    """A TCP relay to 127.0.0.1:target (set after start), one thread per direction."""

    def __init__(self):
        self.target = None
        self.connections = 0
        self._lsock = socket.socket()
        self._lsock.bind((HOST, 0))
        self._lsock.listen(16)
        self.port = self._lsock.getsockname()[1]
        self._socks = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while True:
            try:
                c, _ = self._lsock.accept()
            except OSError:
                return
            self.connections += 1
            u = socket.create_connection((HOST, self.target))
            self._socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self):
        self._lsock.close()
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass
        self._thread.join(5)


@unittest.skipUnless(shutil.which("squid"), "squid is not installed")
class SquidPeersTest(pdtest.ProxyTestCase):
    def squid(self, extra=""):
        # a Squid that stores nothing: each request reaches its parent or the origin
        s = Squid("cache deny all\n" + extra)
        self.addCleanup(s.stop)
        return s

    def test_proxyd_child_squid_parent(self):
        o = self.origin()
        sq = self.squid()
        child = self.proxy("cache_peer %s parent %d 0 no-query name=squid\n"
                           "never_direct allow all\ncache deny all\n" % (HOST, sq.port), workers=1)
        r = proxy_request(child, "GET", o.url("/via-squid"))
        self.assertEqual(r.status, 200)
        q = o.requests_for("/via-squid")[-1]
        self.assertIn("squid.test", ", ".join(q.get_all("via")))
        self.assertIn("pdtest.local", ", ".join(q.get_all("via")))
        pdtest.wait_until(lambda: any("/via-squid" in l for l in sq.access_lines()),
                          what="the request in squid's access log")
        child.wait_access_lines(1)
        self.assertIn(" FIRSTUP_PARENT/127.0.0.1 ", child.access_lines()[-1])

    def test_squid_child_proxyd_parent(self):
        o = self.origin()
        parent = self.proxy("cache deny all\n", workers=1, visible_hostname="parent.test")
        sq = self.squid("cache_peer %s parent %d 0 no-query default name=pd\n"
                        "never_direct allow all\n" % (HOST, parent.port))
        r = proxy_request(sq, "GET", o.url("/via-proxyd"))
        self.assertEqual(r.status, 200)
        q = o.requests_for("/via-proxyd")[-1]
        self.assertIn("parent.test", ", ".join(q.get_all("via")))
        # (Squid also asks its parent for a cache digest, in its own time)
        pdtest.wait_until(lambda: any("/via-proxyd" in l for l in parent.access_lines()),
                          what="the request in the parent's access log")
        pdtest.wait_until(lambda: any("/via-proxyd" in l for l in sq.access_lines()),
                          what="the request in squid's access log")
        line = [l for l in sq.access_lines() if "/via-proxyd" in l][-1]
        self.assertRegex(line, r" (FIRSTUP|DEFAULT)_PARENT/")


    def test_carp_agrees_with_squid(self):
        o = self.origin()
        parents = [self.proxy("cache deny all\n", workers=1, visible_hostname="c%d.test" % i)
                   for i in range(2)]
        lines = "".join("cache_peer %s parent %d 0 no-query carp name=c%d%s\n"
                        % (HOST, p.port, i, " weight=2" if i else "")
                        for i, p in enumerate(parents)) + "never_direct allow all\n"
        sq = self.squid(lines)
        child = self.proxy(lines + "cache deny all\n", workers=1)
        urls = [o.url("/carp/%d" % i) for i in range(12)]
        for u in urls:
            self.assertEqual(proxy_request(sq, "GET", u).status, 200)
            self.assertEqual(proxy_request(child, "GET", u).status, 200)
        # (Squid also asks its parents for their cache digests: not ours to count)
        carp_lines = lambda p: [l for l in p.access_lines() if "/carp/" in l]
        pdtest.wait_until(lambda: sum(len(carp_lines(p)) for p in parents) == 24,
                          what="24 requests logged by the parents")
        for u in urls:
            where = [sum(l.split()[6] == u for l in carp_lines(p)) for p in parents]
            # both children sent it to the same parent, and only there
            self.assertIn(where, ([2, 0], [0, 2]), (u, where))
        # and the URLs were spread over both
        self.assertTrue(all(carp_lines(p) for p in parents))
        child.wait_access_lines(12)
        self.assertTrue(all(" CARP/127.0.0.1 " in l for l in child.access_lines()))

    def test_sourcehash_agrees_with_squid(self):
        o = self.origin()
        parents = [self.proxy("cache deny all\n", workers=1, visible_hostname="s%d.test" % i)
                   for i in range(2)]
        lines = "".join("cache_peer %s parent %d 0 no-query sourcehash name=s%d\n"
                        % (HOST, p.port, i) for i, p in enumerate(parents))
        lines += "never_direct allow all\n"
        sq = self.squid(lines)
        child = self.proxy(lines + "cache deny all\n", workers=1)
        clients = ["127.0.0.%d" % i for i in range(2, 18)]
        for ip in clients:
            for who, port in (("sq", sq.port), ("pd", child.port)):
                self.assertEqual(get_from(ip, port, o.url("/sh/%s/%s" % (who, ip))), 200)
        sh_lines = lambda p: [l.split()[6] for l in p.access_lines() if "/sh/" in l]
        pdtest.wait_until(lambda: sum(len(sh_lines(p)) for p in parents) == 2 * len(clients),
                          what="every request logged by a parent")
        spread = [0, 0]
        for ip in clients:
            where = [[k for k, p in enumerate(parents) if o.url("/sh/%s/%s" % (who, ip)) in sh_lines(p)]
                     for who in ("sq", "pd")]
            # Squid and proxyd sent this client's requests to the same parent
            self.assertEqual(where[0], where[1], (ip, where))
            self.assertEqual(len(where[0]), 1)
            spread[where[0][0]] += 1
        self.assertTrue(all(spread), spread)  # and the clients were spread over both
        child.wait_access_lines(len(clients))
        self.assertTrue(all(" SOURCEHASH_PARENT/127.0.0.1 " in l for l in child.access_lines()))


def get_from(src_ip, port, url):
    """GET url through the proxy at HOST:port from the address src_ip; the status."""
    with socket.create_connection((HOST, port), timeout=pdtest.DEFAULT_TIMEOUT,
                                  source_address=(src_ip, 0)) as s:
        host = url.split("/")[2]
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (url, host)).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1])


if __name__ == "__main__":
    pdtest.main()
