"""CONNECT tunnelling through proxyd (issue 2): the 200, byte relay both ways
(also a large transfer, which needs backpressure), half-close, and a tunnel
to a closed port."""

import select
import socket
import threading

import pdtest
from pdtest import Client
from test_ops import ADMIN, Admin, metric


def connect(proxy, port, timeout=10):
    """Open a tunnel to 127.0.0.1:port; (client, response)."""
    c = Client(proxy, timeout=timeout)
    target = "127.0.0.1:%d" % port
    c.send(c.build("CONNECT", target))
    return c, c.read_response("CONNECT")


def recv_exactly(c, n):
    """n tunnelled bytes (bytes already buffered by the response reader first)."""
    out = bytearray(c.rd.buf[:n])
    del c.rd.buf[:n]
    while len(out) < n:
        d = c.sock.recv(min(65536, n - len(out)))
        if not d:
            break
        out += d
    return bytes(out)


def recv_until_eof(c):
    out = bytearray(c.rd.buf)
    c.rd.buf.clear()
    while True:
        d = c.sock.recv(65536)
        if not d:
            return bytes(out)
        out += d


class ConnectTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.e = self.echo()
        self.p = self.proxy(workers=2)

    def test_tunnel_relays_both_ways(self):
        c, r = connect(self.p, self.e.port)
        with c:
            self.assertEqual(r.status, 200)
            for msg in (b"hello", b"\x00\xff binary \r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"):
                c.send(msg)
                self.assertEqual(recv_exactly(c, len(msg)), msg)
        self.assertEqual(self.e.connections, 1)

    def test_half_close(self):
        c, r = connect(self.p, self.e.port)
        with c:
            self.assertEqual(r.status, 200)
            c.send(b"last words")
            self.assertEqual(recv_exactly(c, 10), b"last words")
            c.shutdown_write()
            self.e.wait_eof(1)  # our FIN reached the echo server through proxyd
            # ... and the server's reply after that still comes back, then its FIN
            self.assertEqual(recv_until_eof(c), b"BYE\n")

    def test_half_close_with_data_in_flight(self):
        c, r = connect(self.p, self.e.port)
        with c:
            self.assertEqual(r.status, 200)
            c.send(b"q" * 100000)
            c.shutdown_write()
            self.assertEqual(recv_until_eof(c), b"q" * 100000 + b"BYE\n")
        self.assertEqual(bytes(self.e.received[1]), b"q" * 100000)

    def transfer(self, p, size):
        """size bytes through a tunnel to the echo server, which sends them back and then
        BYE; checks what came back."""
        block = bytes(range(256)) * 256
        c, r = connect(p, self.e.port, timeout=60)
        with c:
            self.assertEqual(r.status, 200)
            got = bytearray()

            def reader():
                got.extend(recv_until_eof(c))
            t = threading.Thread(target=reader)
            t.start()
            sent = 0
            while sent < size:
                c.send(block)
                sent += len(block)
            c.shutdown_write()
            t.join(60)
            self.assertFalse(t.is_alive())
        self.assertEqual(len(got), size + 4)
        self.assertEqual(bytes(got[:len(block)]), block)
        self.assertTrue(bytes(got).endswith(block + b"BYE\n"))

    def test_large_transfer(self):
        self.transfer(self.p, 8 << 20)

    def test_splice_counted_and_switchable(self):
        """tunnel_splice on (the default): small exchanges stay in user space; a bulk
        transfer is relayed in the kernel, most of the bytes of both directions counted in
        proxyd_tunnel_spliced_bytes_total; off: none is."""
        size = 4 << 20
        for on in (True, False):
            p = self.proxy(workers=1, conf_extra=ADMIN + ("" if on else "\ntunnel_splice off"))
            c, r = connect(p, self.e.port)
            with c:
                self.assertEqual(r.status, 200)
                for i in range(20):
                    msg = b"%d small message\n" % i * 50
                    c.send(msg)
                    self.assertEqual(recv_exactly(c, len(msg)), msg)
            self.assertEqual(metric(Admin(p).metrics(), "proxyd_tunnel_spliced_bytes_total") or 0, 0,
                             "a small exchange was spliced")
            self.transfer(p, size)
            spliced = metric(Admin(p).metrics(), "proxyd_tunnel_spliced_bytes_total") or 0
            if on:
                self.assertGreater(spliced, size, "less than one direction was spliced")
                self.assertLessEqual(spliced, 2 * size + 4)
            else:
                self.assertEqual(spliced, 0)
            self.assertEqual(p.stop(), 0)
            lines = [ln.split() for ln in p.access_lines()]
            bulk = [ln for ln in lines if int(ln[4]) > size]
            self.assertEqual(len(lines), 2, lines)
            self.assertEqual(len(bulk), 1, lines)
            self.assertEqual((bulk[0][3], int(bulk[0][4])), ("TCP_TUNNEL/200", size + 4 + 39))

    def test_server_closes_first(self):
        c, r = connect(self.p, self.e.port)
        with c:
            self.assertEqual(r.status, 200)
            self.e.wait_connections(1)
            self.e.stop()  # the server side drops the connection
            rd, _, _ = select.select([c.sock], [], [], 10)
            self.assertTrue(rd, "client saw nothing after the server closed")
            try:
                self.assertEqual(c.sock.recv(100), b"")
            except ConnectionResetError:
                pass

    def test_connect_closed_port(self):
        port = pdtest.closed_port()
        c, r = connect(self.p, port)
        with c:
            self.assertIn(r.status, (502, 503), r)
        # the error page is a small HTML page naming the problem
        data = pdtest.raw(self.p, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
        resp = pdtest.parse_response(data)
        self.assertIn(resp.status, (502, 503))
        self.assertIn("text/html", resp.get("content-type") or "")
        self.assertRegex(resp.text.lower(), r"refused|connect|unreachable|gateway")

    def test_two_tunnels_independent(self):
        c1, r1 = connect(self.p, self.e.port)
        c2, r2 = connect(self.p, self.e.port)
        with c1, c2:
            self.assertEqual((r1.status, r2.status), (200, 200))
            c1.send(b"one")
            c2.send(b"two")
            self.assertEqual(recv_exactly(c2, 3), b"two")
            self.assertEqual(recv_exactly(c1, 3), b"one")
        self.assertEqual(self.e.connections, 2)

    def test_access_log_tunnel(self):
        c, r = connect(self.p, self.e.port)
        with c:
            c.send(b"abc")
            recv_exactly(c, 3)
            c.shutdown_write()
            recv_until_eof(c)
        self.assertEqual(self.p.stop(), 0)
        lines = self.p.access_lines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r" TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d - HIER_DIRECT/127\.0\.0\.1 " % self.e.port)


if __name__ == "__main__":
    pdtest.main()
