"""ICP (RFC 2186) and cache_peer siblings (issue 16), against a real Squid where
one is installed: proxyd asks a Squid sibling (an object Squid holds is fetched
from Squid, SIBLING_HIT, the origin is not contacted; one it does not hold goes
direct and the origin sees it once), a Squid parent's ICP_MISS makes it the
FIRST_PARENT_MISS, Squid asks proxyd's icp_port and fetches a hit from proxyd
(SIBLING_HIT in Squid's log), proxy-only keeps proxyd from storing what the
sibling sent; and without Squid: icp_access refusing a query (ICP_DENIED),
malformed datagrams dropped and counted while the next query is still
answered, and a silent sibling costing the ICP timeout, then normal
forwarding."""

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import unittest
from email.utils import formatdate

import pdtest
import squidtest
from pdtest import Reply, proxy_request, unused_port
from squidtest import lines_for
from test_ops import Admin, metric as sample

HOST = "127.0.0.1"
CACHED = ("Cache-Control", "max-age=600")


def cached(body):
    """An origin handler answering body, fresh for 10 minutes. With a Date:
    Squid takes max-age from Date, and a reply without one as expired."""
    return lambda q: Reply(body=body, headers=[CACHED, ("Date", formatdate(usegmt=True))])

OP_QUERY, OP_HIT, OP_MISS, OP_ERR, OP_DENIED = 1, 2, 3, 4, 22


def icp_query(url, reqnum=7):
    body = b"\0\0\0\0" + url.encode() + b"\0"
    return struct.pack("!BBHIIII", OP_QUERY, 2, 20 + len(body), reqnum, 0, 0, 0) + body


def icp_ask(port, data, timeout=5.0, host=HOST):
    """Send one datagram to host:port; (opcode, reqnum, url) of the answer."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.bind((HOST, 0))
        s.sendto(data, (host, port))
        reply, frm = s.recvfrom(65536)
    finally:
        s.close()
    op, version, length, reqnum = struct.unpack("!BBHI", reply[:8])
    assert version == 2 and length == len(reply), reply
    assert frm == (host, port), frm  # answered from the ICP port itself
    return op, reqnum, reply[20:].rstrip(b"\0").decode()


# Squid ignores ICP datagrams from its own udp address whatever their port
# (icpHandleUdp compares addresses only), so the Squid of these tests is at
# 127.0.0.2 as a peer (HTTP and ICP), and at 127.0.0.1 for the test's requests.
SQUID_HOST = "127.0.0.2"


class Squid(squidtest.Squid):
    """squidtest's Squid, also on SQUID_HOST (HTTP and ICP); ready when its ICP port answers."""

    def listen_lines(self):
        self.icp_port = unused_port(socket.SOCK_DGRAM, SQUID_HOST)
        return ("http_port %s:%d\n" % (SQUID_HOST, self.port) +
                "icp_port %d\nudp_incoming_address %s\n" % (self.icp_port, SQUID_HOST) +
                "icp_access allow all\n")

    def _ready(self):
        if not super()._ready():
            return False
        # and its ICP port answers (a miss for a URL nobody has)
        try:
            return icp_ask(self.icp_port, icp_query("http://127.0.0.1:9/ready"), 0.5,
                           SQUID_HOST)[0] == OP_MISS
        except OSError:
            return False


@unittest.skipUnless(shutil.which("squid"), "squid is not installed")
class SquidIcpTest(pdtest.ProxyTestCase):
    def squid(self, extra=""):
        s = Squid(extra)
        self.addCleanup(s.stop)
        return s

    def test_squid_sibling_hit_and_miss(self):
        o = self.origin()
        o.route("/obj", cached(b"cached in squid"))
        o.route("/other", cached(b"nobody has it"))
        sq = self.squid()
        # the object enters Squid's cache through Squid itself
        self.assertEqual(proxy_request(sq, "GET", o.url("/obj")).body, b"cached in squid")
        self.assertEqual(len(o.requests_for("/obj")), 1)
        p = self.proxy("cache_peer %s sibling %d %d name=sq\nicp_query_timeout 5000\n"
                       "admin_port 127.0.0.1:0\n" % (SQUID_HOST, sq.port, sq.icp_port), workers=1)
        # Squid says ICP_HIT: proxyd fetches it from Squid, the origin sees nothing
        r = proxy_request(p, "GET", o.url("/obj"))
        self.assertEqual((r.status, r.body), (200, b"cached in squid"))
        self.assertEqual(len(o.requests_for("/obj")), 1)
        p.wait_access_lines(1)
        self.assertRegex(lines_for(p, o.url("/obj"))[-1], r" TCP_MISS/200 .* SIBLING_HIT/127\.0\.0\.2 ")
        pdtest.wait_until(lambda: len(sq.lines_for(o.url("/obj"))) >= 3,
                          what="squid's log: the fill, the ICP query, the sibling fetch")
        codes = [l.split()[3].split("/")[0] for l in sq.lines_for(o.url("/obj"))]
        self.assertIn("UDP_HIT", codes)
        self.assertEqual(codes[-1].startswith("TCP_") and "HIT" in codes[-1], True, codes)
        # and proxyd stored it: the next request is its own hit, Squid is not asked
        r = proxy_request(p, "GET", o.url("/obj"))
        self.assertEqual(r.body, b"cached in squid")
        p.wait_access_lines(2)
        self.assertRegex(lines_for(p, o.url("/obj"))[-1], r" TCP_MEM_HIT/200 ")

        # Squid does not have it: ICP_MISS, proxyd goes to the origin itself, once
        r = proxy_request(p, "GET", o.url("/other"))
        self.assertEqual((r.status, r.body), (200, b"nobody has it"))
        self.assertEqual(len(o.requests_for("/other")), 1)
        p.wait_access_lines(3)
        self.assertRegex(lines_for(p, o.url("/other"))[-1], r" TCP_MISS/200 .* HIER_DIRECT/127\.0\.0\.1 ")
        pdtest.wait_until(lambda: any(" UDP_MISS/" in l for l in sq.lines_for(o.url("/other"))),
                          what="squid's UDP_MISS")
        # a sibling is never used for a miss: Squid saw only the ICP query
        self.assertEqual([l for l in sq.lines_for(o.url("/other")) if " UDP_" not in l], [])
        # a no-query sibling is never asked, so never used: the origin again
        nq = self.proxy("cache_peer %s sibling %d %d name=sq no-query\n"
                        % (SQUID_HOST, sq.port, sq.icp_port), workers=1)
        n_squid = len(sq.lines_for(o.url("/obj")))
        self.assertEqual(proxy_request(nq, "GET", o.url("/obj")).body, b"cached in squid")
        self.assertEqual(len(o.requests_for("/obj")), 2)
        nq.wait_access_lines(1)
        self.assertIn(" HIER_DIRECT/127.0.0.1 ", lines_for(nq, o.url("/obj"))[-1])
        self.assertEqual(len(sq.lines_for(o.url("/obj"))), n_squid)
        m = Admin(p).metrics()
        self.assertEqual(sample(m, "proxyd_icp_queries_sent_total"), 2)
        self.assertEqual(sample(m, "proxyd_icp_replies_received_total", opcode="HIT"), 1)
        self.assertEqual(sample(m, "proxyd_icp_replies_received_total", opcode="MISS"), 1)

    def test_proxy_only_sibling_is_not_stored(self):
        o = self.origin()
        o.route("/po", cached(b"from squid"))
        sq = self.squid()
        proxy_request(sq, "GET", o.url("/po"))
        p = self.proxy("cache_peer %s sibling %d %d name=sq proxy-only\nicp_query_timeout 5000\n"
                       % (SQUID_HOST, sq.port, sq.icp_port), workers=1)
        for n in (1, 2):
            r = proxy_request(p, "GET", o.url("/po"))
            self.assertEqual(r.body, b"from squid")
            p.wait_access_lines(n)
            # not kept: the second request asks the sibling again
            self.assertIn(" SIBLING_HIT/127.0.0.2 ", lines_for(p, o.url("/po"))[-1])
        self.assertEqual(len(o.requests_for("/po")), 1)

    def test_squid_parent_miss_is_first_parent_miss(self):
        o = self.origin()
        sq = self.squid()
        p = self.proxy("cache_peer %s parent %d %d name=sqp\ncache_peer %s parent %d 0 "
                       "no-query name=other\nicp_query_timeout 5000\n"
                       % (SQUID_HOST, sq.port, sq.icp_port, HOST, pdtest.closed_port()), workers=1)
        r = proxy_request(p, "GET", o.url("/fpm"))
        self.assertEqual(r.status, 200)
        p.wait_access_lines(1)
        # the parent that answered ICP_MISS first is tried first
        self.assertIn(" FIRST_PARENT_MISS/127.0.0.2 ", lines_for(p, o.url("/fpm"))[-1])
        self.assertEqual(len(o.requests_for("/fpm")), 1)
        # a parent that holds the object answers ICP_HIT: PARENT_HIT, the origin is not asked
        o.route("/ph", cached(b"in the parent"))
        self.assertEqual(proxy_request(sq, "GET", o.url("/ph")).body, b"in the parent")
        r = proxy_request(p, "GET", o.url("/ph"))
        self.assertEqual(r.body, b"in the parent")
        self.assertEqual(len(o.requests_for("/ph")), 1)
        p.wait_access_lines(2)
        self.assertIn(" PARENT_HIT/127.0.0.2 ", lines_for(p, o.url("/ph"))[-1])

    def test_squid_asks_proxyd(self):
        o = self.origin()
        o.route("/pd", cached(b"cached in proxyd"))
        icp = unused_port(socket.SOCK_DGRAM)
        p = self.proxy("icp_port %d\nudp_incoming_address %s\nacl lo src 127.0.0.0/8\n"
                       "icp_access allow lo\nicp_access deny all\n" % (icp, HOST), workers=2)
        self.assertEqual(proxy_request(p, "GET", o.url("/pd")).body, b"cached in proxyd")
        sq = self.squid("cache_peer %s sibling %d %d name=pd no-digest\nicp_query_timeout 5000\n"
                        % (HOST, p.port, icp))
        r = proxy_request(sq, "GET", o.url("/pd"))
        self.assertEqual((r.status, r.body), (200, b"cached in proxyd"))
        self.assertEqual(len(o.requests_for("/pd")), 1)
        pdtest.wait_until(lambda: sq.lines_for(o.url("/pd")), what="squid's log line")
        self.assertIn(" SIBLING_HIT/127.0.0.1 ", sq.lines_for(o.url("/pd"))[-1])
        # proxyd logged the query and served the hit
        pdtest.wait_until(lambda: len(lines_for(p, o.url("/pd"))) >= 3, what="proxyd's lines")
        codes = [l.split()[3] for l in lines_for(p, o.url("/pd"))]
        self.assertIn("UDP_HIT/000", codes)
        self.assertIn("TCP_MEM_HIT/200", codes)
        icp_line = [l for l in lines_for(p, o.url("/pd")) if " UDP_HIT/" in l][0]
        self.assertEqual(icp_line.split()[5], "ICP_QUERY")


class LyingSibling:
    """Answers every ICP query ICP_HIT, then every HTTP request 504 (what a
    sibling that lost the object answers an only-if-cached request)."""

    def __init__(self):
        self.heads = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((HOST, 0))
        self.icp_port = self.udp.getsockname()[1]
        self.tcp = socket.socket()
        self.tcp.bind((HOST, 0))
        self.tcp.listen(8)
        self.port = self.tcp.getsockname()[1]
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._icp, self._http)]
        for t in self._threads:
            t.start()

    def _icp(self):
        while True:
            try:
                d, frm = self.udp.recvfrom(65536)
            except OSError:
                return
            if len(d) < 24:
                return  # shut down
            url = d[24:]
            self.udp.sendto(struct.pack("!BBHIIII", OP_HIT, 2, 20 + len(url), struct.unpack(
                "!I", d[4:8])[0], 0, 0, 0) + url, frm)

    def _http(self):
        while True:
            try:
                c, _ = self.tcp.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1"))
                c.sendall(b"HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n"
                          b"Connection: close\r\n\r\n")

    def stop(self):
        for sk in (self.udp, self.tcp):
            try:
                sk.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
            except OSError:
                pass
            sk.close()
        for t in self._threads:
            t.join(5)


class IcpServerTest(pdtest.ProxyTestCase):
    def test_sibling_hit_then_504_goes_on(self):
        o = self.origin()
        sib = LyingSibling()
        self.addCleanup(sib.stop)
        p = self.proxy("cache_peer %s sibling %d %d name=liar\nicp_query_timeout 5000\n"
                       % (HOST, sib.port, sib.icp_port), workers=1)
        r = proxy_request(p, "GET", o.url("/gone"))
        self.assertEqual(r.status, 200)
        self.assertEqual(len(o.requests_for("/gone")), 1)
        # the sibling was asked with only-if-cached, in absolute form
        self.assertEqual(len(sib.heads), 1)
        self.assertTrue(sib.heads[0].startswith("GET %s HTTP/1.1" % o.url("/gone")), sib.heads)
        self.assertIn("\r\nCache-Control: only-if-cached", sib.heads[0])
        # then the request went on to the origin, and is logged so
        p.wait_access_lines(1)
        self.assertIn(" HIER_DIRECT/127.0.0.1 ", lines_for(p, o.url("/gone"))[-1])
        # and the origin never sees only-if-cached
        self.assertFalse(o.requests_for("/gone")[0].get("cache-control"))
        # allow-miss: the sibling may fetch, so no only-if-cached
        p2 = self.proxy("cache_peer %s sibling %d %d name=liar allow-miss\n"
                        "icp_query_timeout 5000\n" % (HOST, sib.port, sib.icp_port), workers=1)
        self.assertEqual(proxy_request(p2, "GET", o.url("/gone2")).status, 200)
        self.assertEqual(len(sib.heads), 2)
        self.assertNotIn("only-if-cached", sib.heads[1])

    def test_answers_denied_malformed(self):
        o = self.origin()
        o.route("/fresh", cached(b"x"))
        o.route("/nostore", lambda q: Reply(body=b"y", headers=[("Cache-Control", "no-store")]))
        icp = unused_port(socket.SOCK_DGRAM)
        p = self.proxy("icp_port %d\nudp_incoming_address %s\nacl lo src 127.0.0.1\n"
                       "icp_access allow lo\nadmin_port 127.0.0.1:0\n" % (icp, HOST), workers=2)
        proxy_request(p, "GET", o.url("/fresh"))
        proxy_request(p, "GET", o.url("/nostore"))
        self.assertEqual(icp_ask(icp, icp_query(o.url("/fresh"), 11)), (OP_HIT, 11, o.url("/fresh")))
        self.assertEqual(icp_ask(icp, icp_query(o.url("/nostore"), 12))[0], OP_MISS)
        self.assertEqual(icp_ask(icp, icp_query(o.url("/never"), 13))[0], OP_MISS)
        # a URL proxyd cannot read: ICP_ERR
        self.assertEqual(icp_ask(icp, icp_query("not a url", 14))[:2], (OP_ERR, 14))
        # malformed datagrams: no answer; the next query is still answered
        bad = [b"", b"\x01\x02", icp_query(o.url("/fresh"))[:-1],  # length field wrong
               b"\x01\x03" + icp_query(o.url("/fresh"))[2:],      # version 3
               struct.pack("!BBHIIII", OP_QUERY, 2, 20, 1, 0, 0, 0)]  # no requester, no URL
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        for d in bad:
            s.sendto(d, (HOST, icp))
        s.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            s.recvfrom(65536)
        s.close()
        self.assertEqual(icp_ask(icp, icp_query(o.url("/fresh"), 15))[0], OP_HIT)
        adm = Admin(p)
        pdtest.wait_until(lambda: sample(adm.metrics(), "proxyd_icp_dropped_total") == len(bad),
                          what="the malformed datagrams counted")
        m = adm.metrics()
        self.assertEqual(sample(m, "proxyd_icp_replies_sent_total", opcode="HIT"), 2)
        self.assertEqual(sample(m, "proxyd_icp_replies_sent_total", opcode="ERR"), 1)
        self.assertEqual(sample(m, "proxyd_icp_queries_received_total"), 5)
        p.wait_access_lines(4, path=None)
        self.assertTrue(any(" UDP_HIT/000 " in l and " ICP_QUERY " in l for l in p.access_lines()))
        # the manager's counters page (squidclient mgr:counters) says the same
        squidclient = shutil.which("squidclient")
        if squidclient:
            out = subprocess.run([squidclient, "-h", HOST, "-p", str(p.port), "-T", "10",
                                  "mgr:counters"], stdout=subprocess.PIPE, text=True,
                                 timeout=30).stdout
            counters = dict(re.findall(r"(?m)^(icp\.\w+) = (\d+)$", out))
            self.assertEqual(counters.get("icp.queries_recv"), "5", out)
            self.assertEqual(counters.get("icp.replies_sent"), "5", out)
            self.assertEqual(counters.get("icp.hits_sent"), "2", out)
            self.assertEqual(counters.get("icp.pkts_recv"), "5", out)

    def test_icp_hit_stale(self):
        o = self.origin()
        o.route("/old", lambda q: Reply(body=b"old", headers=[("Cache-Control", "max-age=0"),
                                                             ("Last-Modified", formatdate(0, usegmt=True))]))
        for stale_hits, want in (("off", OP_MISS), ("on", OP_HIT)):
            icp = unused_port(socket.SOCK_DGRAM)
            p = self.proxy("icp_port %d\nudp_incoming_address %s\nicp_access allow all\n"
                           "icp_hit_stale %s\n" % (icp, HOST, stale_hits), workers=1)
            proxy_request(p, "GET", o.url("/old"))  # stored (validators), stale at once
            self.assertEqual(icp_ask(icp, icp_query(o.url("/old")))[0], want, stale_hits)

    def test_icp_access_default_and_deny(self):
        icp = unused_port(socket.SOCK_DGRAM)
        # no icp_access line: every query is denied, as Squid
        p = self.proxy("icp_port %d\nudp_incoming_address %s\n" % (icp, HOST), workers=1)
        self.assertEqual(icp_ask(icp, icp_query("http://127.0.0.1:9/x", 21)), (OP_DENIED, 21, "http://127.0.0.1:9/x"))
        p.wait_access_lines(1)
        self.assertRegex(p.access_lines()[-1], r" UDP_DENIED/000 \d+ ICP_QUERY http://127\.0\.0\.1:9/x ")
        # an explicit deny for the querying address
        icp2 = unused_port(socket.SOCK_DGRAM)
        self.proxy("icp_port %d\nudp_incoming_address %s\nacl lo src 127.0.0.1\n"
                   "icp_access deny lo\nicp_access allow all\nlog_icp_queries off\n"
                   % (icp2, HOST), workers=1)
        self.assertEqual(icp_ask(icp2, icp_query("http://127.0.0.1:9/x", 22))[0], OP_DENIED)

    def test_silent_sibling_costs_the_timeout(self):
        o = self.origin()
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # receives, never answers
        silent.bind((HOST, 0))
        self.addCleanup(silent.close)
        p = self.proxy("cache_peer %s sibling %d %d name=quiet\nicp_query_timeout 300\n"
                       "admin_port 127.0.0.1:0\n"
                       % (HOST, pdtest.closed_port(), silent.getsockname()[1]), workers=1)
        r = proxy_request(p, "GET", o.url("/s"))
        self.assertEqual(r.status, 200)
        self.assertEqual(len(o.requests_for("/s")), 1)
        # the query reached the sibling
        silent.settimeout(2)
        data, _ = silent.recvfrom(65536)
        self.assertEqual(data[0], OP_QUERY)
        self.assertIn(o.url("/s").encode(), data)
        p.wait_access_lines(1)
        fields = lines_for(p, o.url("/s"))[-1].split()
        self.assertEqual(fields[8], "HIER_DIRECT/127.0.0.1")
        self.assertGreaterEqual(int(fields[1]), 300)  # elapsed ms: it waited for the timeout
        self.assertEqual(sample(Admin(p).metrics(), "proxyd_icp_query_timeouts_total"), 1)

    def test_reload_and_restart_keep_answering(self):
        icp, icp2 = unused_port(socket.SOCK_DGRAM), unused_port(socket.SOCK_DGRAM)
        conf = "icp_port %%d\nudp_incoming_address %s\nicp_access %%s all\n" % HOST
        p = self.proxy(conf % (icp, "allow"), workers=2)
        url = "http://127.0.0.1:9/r"
        # 20 queries from 20 source ports (spread over the workers), all answered
        for i in range(20):
            self.assertEqual(icp_ask(icp, icp_query(url, i))[0], OP_MISS)
        # a worker killed: its socket stays with the master, the new worker answers on it
        victim = p.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        p.wait_workers(2, exclude=(victim,))
        for i in range(20):
            self.assertEqual(icp_ask(icp, icp_query(url, i))[0], OP_MISS)
        # reload, same port: the new configuration answers on it
        before = p.worker_pids()
        p.write_conf(p.make_conf(conf % (icp, "deny")))
        p.signal(signal.SIGHUP)
        pdtest.wait_until(lambda: icp_ask(icp, icp_query(url))[0] == OP_DENIED,
                          what="the reloaded icp_access")
        # (a reload is refused while the previous one's workers drain)
        p.wait_workers(2, exclude=before)
        # reload to another port: it answers, the old one is closed once the old workers left
        p.write_conf(p.make_conf(conf % (icp2, "allow")))
        p.signal(signal.SIGHUP)

        def moved():
            try:
                icp_ask(icp, icp_query(url), 0.2)
                return False
            except OSError:
                return icp_ask(icp2, icp_query(url))[0] == OP_MISS
        pdtest.wait_until(moved, what="the ICP port moved")
        self.assertTrue(p.alive())

    def test_proxyd_sibling_of_proxyd(self):
        # both sides ours: a second proxyd fetches the first one's hit
        o = self.origin()
        o.route("/pp", cached(b"shared"))
        icp = unused_port(socket.SOCK_DGRAM)
        a = self.proxy("icp_port %d\nudp_incoming_address %s\nicp_access allow all\n"
                       % (icp, HOST), workers=2, visible_hostname="a.test")
        proxy_request(a, "GET", o.url("/pp"))
        b = self.proxy("cache_peer %s sibling %d %d name=a\nicp_query_timeout 5000\n"
                       % (HOST, a.port, icp), workers=1, visible_hostname="b.test")
        r = proxy_request(b, "GET", o.url("/pp"))
        self.assertEqual(r.body, b"shared")
        self.assertEqual(len(o.requests_for("/pp")), 1)
        b.wait_access_lines(1)
        self.assertIn(" SIBLING_HIT/127.0.0.1 ", lines_for(b, o.url("/pp"))[-1])
        # the sibling got only-if-cached, and answered from its cache
        pdtest.wait_until(lambda: any(" TCP_MEM_HIT/200 " in l for l in lines_for(a, o.url("/pp"))),
                          what="a's hit")


if __name__ == "__main__":
    pdtest.main()
