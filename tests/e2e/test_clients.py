"""Slow and abusive clients (issue 8): slowloris, a slow reader of a large
object, thousands of idle connections, max_client_connections and file
descriptor exhaustion. proxyd must keep serving well-behaved clients
(latency compared with a twin proxy's, measured in turn), keep its memory bounded
(backpressure) and pause accepting instead of spinning."""

import os
import resource
import select
import socket
import statistics
import threading
import time

import pdtest
from pdtest import Client, Reply, proxy_request

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def asan_build():
    with open(pdtest.proxyd_bin(), "rb") as f:
        return b"__asan_init" in f.read()


def proxy_rss(p):
    return sum(pdtest.rss_bytes(pid) for pid in [p.pid] + p.worker_pids())


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(max(soft, want), hard)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def latency(p, url, n=20):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = proxy_request(p, "GET", url)
        out.append(time.monotonic() - t0)
        assert r.status == 200, r
    return out


def paired_latency(p, control, url, n=20):
    """Latencies of n requests through p and n through control, taken in turn so that both
    see the same load of the machine (a baseline taken before, at another moment, does not:
    other work on the cores moved it by more than the margin). (p's, control's)."""
    mine, theirs = [], []
    for _ in range(n):
        mine += latency(p, url, 1)
        theirs += latency(control, url, 1)
    return mine, theirs


def connect_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection((pdtest.HOST, port), timeout=5)
        socks.append(s)
    return socks


class HighFds:
    """n connections kept on descriptors >= base, so that the test's own
    sockets stay below 1024 (pdtest uses select())."""

    def __init__(self, port, n, base=2048):
        self.fds = []
        for i in range(n):
            s = socket.create_connection((pdtest.HOST, port), timeout=5)
            self.fds.append(os.dup2(s.fileno(), base + i))
            s.close()

    def send_all(self, data, step=1):
        for fd in self.fds[::step]:
            os.write(fd, data)

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


class SlowlorisTest(pdtest.ProxyTestCase):
    def test_slowloris_and_latency(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="request_timeout 2 seconds")
        control = self.proxy(workers=1, conf_extra="request_timeout 2 seconds")  # no slowloris
        url = o.url("/fast")
        latency(p, url, 5)  # warm up
        latency(control, url, 5)

        n_slow = 50
        stop = threading.Event()
        closed_after = {}
        head = b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Slow: %s\r\n\r\n" % (url.encode(), o.authority.encode(), b"s" * 200)
        socks = connect_idle(p.port, n_slow)
        answers = {}
        rolling = threading.Event()   # slowloris well under way (1 s)

        def loris():
            t0 = time.monotonic()
            i = 0
            live = dict(enumerate(socks))
            while live and not stop.is_set() and i < len(head):
                for k, s in list(live.items()):
                    try:
                        s.send(head[i:i + 1])
                    except OSError:
                        closed_after[k] = time.monotonic() - t0
                        del live[k]
                        continue
                    r, _, _ = select.select([s], [], [], 0)
                    if r:
                        try:
                            d = s.recv(4096)
                        except OSError:
                            d = b""
                        if d:
                            answers[k] = answers.get(k, b"") + d
                        # a FIN after the answer, or RST
                        r2, _, _ = select.select([s], [], [], 0)
                        if not d or r2:
                            closed_after[k] = time.monotonic() - t0
                            del live[k]
                i += 1
                if i == 5:
                    rolling.set()
                stop.wait(0.2)
        t = threading.Thread(target=loris, daemon=True)
        t.start()
        self.assertTrue(rolling.wait(10))
        during, base = paired_latency(p, control, url)
        t.join(15)
        stop.set()
        for s in socks:
            s.close()
        mb, md = statistics.median(base), statistics.median(during)
        print("slowloris x%d: median latency %.2f ms without (a twin proxy), %.2f ms with it; "
              "connections closed after %.1f-%.1f s; %d answered (%s)" % (
                  n_slow, mb * 1000, md * 1000, min(closed_after.values() or [0]),
                  max(closed_after.values() or [0]), len(answers),
                  sorted({a.split(b"\r\n", 1)[0].decode("latin-1") for a in answers.values()})))
        self.assertLess(md, 2 * mb + 0.005, "well-behaved client slowed down by slowloris")
        self.assertEqual(len(closed_after), n_slow, "slowloris connections still open")
        self.assertLess(max(closed_after.values()), 6.0, "request_timeout 2 seconds not enforced")
        for a in answers.values():
            self.assertTrue(a.startswith(b"HTTP/1.1 408 "), a[:100])
        self.assertEqual([q.path for q in o.snapshot() if q.path != "/fast"], [])


class SlowReaderTest(pdtest.ProxyTestCase):
    def test_slow_reader_8mb_backpressure(self):
        o = self.origin()
        block = bytes(range(256)) * 256     # 64 KB
        count = 128                         # 8 MB
        o.route("/big", lambda req: Reply(stream=(block, count), headers=[("Cache-Control", "no-store")]))
        # Under ASan freed blocks sit in a quarantine (256 MB) and RSS grows
        # with the bytes moved, not with what is buffered: no quarantine here.
        saved = os.environ.get("ASAN_OPTIONS")
        if asan_build():
            os.environ["ASAN_OPTIONS"] = (saved + ":" if saved else "") + \
                "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
        try:
            p = self.proxy(workers=1)
        finally:
            if saved is None:
                os.environ.pop("ASAN_OPTIONS", None)
            else:
                os.environ["ASAN_OPTIONS"] = saved
        proxy_request(p, "GET", o.url("/warm"))
        rss0 = proxy_rss(p)
        with Client(p, timeout=20) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.send(c.build("GET", o.url("/big")))
            got = 0
            peak = rss0
            ahead = []
            # read 1 MB slowly: 32 KB every 20 ms
            while got < (1 << 20):
                d = c.sock.recv(32 * 1024)
                self.assertTrue(d)
                got += len(d)
                time.sleep(0.02)  # the slow reader itself, not synchronisation
            sent = pdtest.wait_stall(lambda: o.bytes_sent, quiet=0.5, timeout=10)
            ahead.append(sent - got)
            peak = max(peak, proxy_rss(p))
            # the rest quickly, checking the content
            rest = bytearray()
            while got + len(rest) < count * len(block) + 0:
                d = c.sock.recv(1 << 20)
                if not d:
                    break
                rest += d
                if len(rest) % (1 << 20) < len(d):
                    peak = max(peak, proxy_rss(p))
        print("slow reader: origin ran %d KB ahead of the client; proxyd RSS %d KB -> peak %d KB (%+d KB)" % (
            ahead[0] // 1024, rss0 // 1024, peak // 1024, (peak - rss0) // 1024))
        # the origin running ahead is not asserted: on loopback the kernel's
        # autotuned socket buffers (tcp_rmem up to 32 MB here) hold most of
        # 8 MB; the proxy's own memory is what backpressure bounds
        self.assertLess(peak - rss0, 6 << 20, "proxyd memory grew with a slow reader")
        self.assertGreater(len(rest), 0)


class LifetimeTest(pdtest.ProxyTestCase):
    def test_client_lifetime(self):
        # client_lifetime 2 seconds ends every kind of long connection: a
        # keep-alive client that never stops, a slow reader (whose response
        # is cut: never complete), an idle CONNECT tunnel
        o = self.origin()
        e = self.echo()
        block = b"z" * 65536
        o.route("/endless", lambda req: Reply(stream=(block, 1024), headers=[("Cache-Control", "no-store")]))
        p = self.proxy(workers=1, conf_extra="client_lifetime 2 seconds")
        t0 = time.monotonic()
        keep = Client(p, timeout=10)
        slow = Client(p, timeout=10)
        tun = Client(p, timeout=10)
        try:
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            slow.send(slow.build("GET", o.url("/endless")))
            tun.send(tun.build("CONNECT", "127.0.0.1:%d" % e.port))
            self.assertEqual(tun.read_response("CONNECT").status, 200)
            n = 0
            closed = {}
            while len(closed) < 3 and time.monotonic() - t0 < 8:
                if "keep" not in closed:
                    try:
                        r = keep.request("GET", o.url("/k%d" % n))
                        n += 1
                        if r.closed or r.status != 200:
                            closed["keep"] = time.monotonic() - t0
                    except (pdtest.Incomplete, OSError):
                        closed["keep"] = time.monotonic() - t0
                for name, c in (("slow", slow), ("tun", tun)):
                    if name in closed:
                        continue
                    r, _, _ = select.select([c.sock], [], [], 0.05)
                    if r:
                        try:
                            d = c.sock.recv(4096 if name == "slow" else 65536)
                        except OSError:
                            d = b""
                        if not d:
                            closed[name] = time.monotonic() - t0
        finally:
            for c in (keep, slow, tun):
                c.close()
        print("client_lifetime 2 seconds: closed after %s; keep-alive client made %d requests" % (
            ", ".join("%s %.2f s" % kv for kv in sorted(closed.items())), n))
        self.assertEqual(sorted(closed), ["keep", "slow", "tun"])
        for name, t in closed.items():
            self.assertGreater(t, 1.5, name)
            self.assertLess(t, 5, name)


class ConnectionLimitsTest(pdtest.ProxyTestCase):
    def test_2000_idle_connections(self):
        n = 2000
        limit = raise_nofile(2048 + n + 100)
        if limit < 2048 + n + 100:
            self.skipTest("RLIMIT_NOFILE hard limit %d too low" % limit)
        o = self.origin()
        p = self.proxy(workers=2)   # inherits the raised limit
        control = self.proxy(workers=2)  # without the idle connections
        idle = HighFds(p.port, n)
        try:
            # half of them even started a request head
            idle.send_all(b"GET ", step=2)
            mine, theirs = paired_latency(p, control, o.url("/a"), 10)
            during, base = statistics.median(mine), statistics.median(theirs)
            print("2000 idle connections: median latency %.2f ms without (a twin proxy), %.2f ms with them" % (
                base * 1000, during * 1000))
            self.assertLess(during, 2 * base + 0.01)
            for w in p.worker_pids():
                self.assertGreater(len(os.listdir("/proc/%d/fd" % w)), 0)
            nfds = sum(len(os.listdir("/proc/%d/fd" % w)) for w in p.worker_pids())
            self.assertGreaterEqual(nfds, n, "proxyd does not hold the idle connections")
        finally:
            idle.close()
        self.assertEqual(proxy_request(p, "GET", o.url("/after")).status, 200)

    def test_max_client_connections_pauses_accept(self):
        o = self.origin()
        p = self.proxy(workers=1, conf_extra="max_client_connections 50")
        socks = connect_idle(p.port, 50)
        try:
            p.wait_stderr(r"accept paused", what="the accept-paused warning")
            w = p.worker_pids()[0]
            cpu0 = cpu_seconds(w)
            with Client(p, timeout=10) as c51:
                c51.send(c51.build("GET", o.url("/51")))
                r, _, _ = select.select([c51.sock], [], [], 1.5)
                self.assertEqual(r, [], "connection 51 was served while 50 were open")
                cpu = cpu_seconds(w) - cpu0
                print("max_client_connections 50: worker CPU %.3f s during 1.5 s paused" % cpu)
                self.assertLess(cpu, 0.2, "busy loop while accept is paused")
                self.assertEqual(o.requests_for("/51"), [])
                for s in socks[:10]:
                    s.close()
                t0 = time.monotonic()
                resp = c51.read_response()
                print("connection 51 served %.2f s after 10 closed" % (time.monotonic() - t0))
                self.assertEqual(resp.status, 200)
        finally:
            for s in socks:
                s.close()

    def test_fd_exhaustion(self):
        o = self.origin()
        p = self.proxy(workers=1)
        w = p.worker_pids()[0]
        # a worker holds ~70 descriptors of its own (one eventfd per cache
        # slot, 64): leave it room for 40 more
        base_fds = len(os.listdir("/proc/%d/fd" % w))
        resource.prlimit(w, resource.RLIMIT_NOFILE, (base_fds + 40, base_fds + 40))
        raise_nofile(400)
        self.assertEqual(proxy_request(p, "GET", o.url("/before")).status, 200)
        socks = []
        try:
            for _ in range(150):
                socks.append(socket.create_connection((pdtest.HOST, p.port), timeout=5))
            mark = p.mark()
            p.wait_stderr(r"Too many open files", what="the EMFILE warning", start=0)
            cpu0 = cpu_seconds(w)
            t0 = time.monotonic()
            threading.Event().wait(2.0)  # measuring CPU over a wall-clock window
            cpu = cpu_seconds(w) - cpu0
            warnings = len([l for l in p.stderr_lines if l and "Too many open files" in l])
            print("fd exhaustion (limit %d): worker CPU %.3f s in %.1f s, %d warning lines" % (
                base_fds + 40, cpu, time.monotonic() - t0, warnings))
            self.assertLess(cpu, 0.3, "worker spins on EMFILE")
            # one per exhaustion episode (a descriptor freed in between starts
            # another), not one per 100 ms retry
            self.assertLessEqual(warnings, 3, "a warning on every retry")
            self.assertTrue(p.alive())
            self.assertEqual(p.worker_pids(), [w], "worker died")
        finally:
            for s in socks:
                s.close()
        # served again once descriptors are free
        r = pdtest.wait_until(lambda: (lambda x: x if x.status == 200 else None)(
            proxy_request(p, "GET", o.url("/again"))), timeout=10, what="a 200 after the flood")
        self.assertEqual(r.status, 200)
        p.wait_stderr(r"accepting again after \d+ failed attempts", start=mark)


if __name__ == "__main__":
    pdtest.main()
