"""Hits sent from the shared cache with sendfile (hit_sendfile on, issue 12): long
hits, Ranges and HEADs arrive whole and are counted in
proxyd_cache_hit_sendfile_bytes_total; the access log counts what the client
received; off (the default) copies them. And the case sendfile makes dangerous: a slow client
still holds the object's pages by reference in its socket while the object is
evicted and its memory written by others, and must still receive the bytes it
asked for (the store punches lent pages out of its memfd before reuse)."""

import fcntl
import os
import socket
import struct
import termios

import pdtest
from pdtest import Client, Reply, wait_until
from cachetest import log_codes
from test_ops import ADMIN, Admin, metric

MAX60 = ("Cache-Control", "max-age=600")
SO_RCVBUFFORCE = 33


def sendfile_bytes(p):
    return metric(Admin(p).metrics(), "proxyd_cache_hit_sendfile_bytes_total") or 0


class SendfileTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.bodies = {}

    def tearDown(self):
        self.assertNoOriginErrors(self.o)

    def serve(self, path, size):
        body = os.urandom(size)
        self.bodies[path] = body
        self.o.route(path, lambda q: Reply(body=body, headers=[MAX60]))
        return body

    def get(self, p, path, headers=None, method="GET"):
        with Client(p) as c:
            r = c.request(method, self.o.url(path), headers)
            return r, c.bytes_received

    def logged_bytes(self, p, url, n):
        log_codes(p, url, n)
        return [int(line.split()[4]) for line in p.access_lines() if line.split()[6] == url]

    def test_long_hits_are_sent_by_reference(self):
        p = self.proxy(workers=1, conf_extra=ADMIN + "\nhit_sendfile on")
        body = self.serve("/big", 1 << 20)
        r, _ = self.get(p, "/big")
        self.assertEqual(r.body, body)
        self.assertEqual(sendfile_bytes(p), 0, "a miss is not sent from the cache")
        wire = []
        for _ in range(3):
            r, n = self.get(p, "/big")
            self.assertEqual((r.status, r.complete), (200, True), r)
            self.assertEqual(r.body, body)
            wire.append(n)
        after_hits = sendfile_bytes(p)
        # most of each 1 MiB hit goes by reference: not the head, not the
        # partial pages at the ends of runs of the store's blocks
        self.assertGreater(after_hits, 3 * 900 * 1024)
        self.assertLessEqual(after_hits, 3 * len(body))
        # a Range inside the object, and a HEAD (no body at all)
        r, n = self.get(p, "/big", [("Range", "bytes=1000-900999")])
        self.assertEqual((r.status, r.body), (206, body[1000:901000]))
        wire.append(n)
        r, n = self.get(p, "/big", method="HEAD")
        self.assertEqual((r.status, r.body), (200, b""))
        wire.append(n)
        self.assertGreater(sendfile_bytes(p), after_hits + 800 * 1024)
        self.assertEqual(len(self.o.requests_for("/big")), 1)
        url = self.o.url("/big")
        self.assertEqual(log_codes(p, url, 6), ["TCP_MISS"] + ["TCP_MEM_HIT"] * 5)
        self.assertEqual(self.logged_bytes(p, url, 6)[1:], wire,
                         "the access log counts the bytes the client received")

    def test_off_by_default_copies(self):
        p = self.proxy(workers=1, conf_extra=ADMIN)
        body = self.serve("/big", 1 << 20)
        for _ in range(3):
            r, _ = self.get(p, "/big")
            self.assertEqual(r.body, body)
        self.assertEqual(log_codes(p, self.o.url("/big"), 3), ["TCP_MISS", "TCP_MEM_HIT", "TCP_MEM_HIT"])
        self.assertEqual(sendfile_bytes(p), 0)

    def test_slow_client_keeps_its_bytes_while_the_object_is_replaced(self):
        p = self.proxy(workers=1, conf_extra=ADMIN + "\nhit_sendfile on\ncache_mem 2 MB\n"
                       "maximum_object_size 1 MB\nmemory_replacement_policy lru")
        size = 600 * 1024
        body = self.serve("/lent", size)
        r, _ = self.get(p, "/lent")
        self.assertEqual(r.body, body)
        # the hit, to a client that reads nothing until every byte is in its
        # socket's receive queue: proxyd let go of the object, the kernel
        # still holds its pages
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except PermissionError:
            s.close()
            self.skipTest("SO_RCVBUFFORCE needs root")
        s.settimeout(pdtest.DEFAULT_TIMEOUT)
        s.connect((pdtest.HOST, p.port))
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
                  % (self.o.url("/lent").encode(), self.o.authority.encode()))

        def queued():
            return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        wait_until(lambda: queued() > size, what="the whole hit in the client's receive queue")
        log_codes(p, self.o.url("/lent"), 2)
        lent = sendfile_bytes(p)
        self.assertGreater(lent, size // 2)
        # fill the cache three times over with other bytes: /lent is evicted (LRU:
        # S3-FIFO would keep the object asked twice and evict the fillers)
        # and every block it had is written again
        for i in range(10):
            other = self.serve("/fill%d" % i, size)
            r, _ = self.get(p, "/fill%d" % i)
            self.assertEqual(r.body, other)
        r, _ = self.get(p, "/lent")
        self.assertEqual(r.body, body)
        self.assertEqual(len(self.o.requests_for("/lent")), 2, "/lent was evicted: %s" % p.access_lines())
        try:
            r = pdtest.read_response(pdtest._Reader(s.recv), "GET", s, pdtest.DEFAULT_TIMEOUT)
        finally:
            s.close()
        self.assertEqual((r.status, r.complete, len(r.body)), (200, True, size), r)
        self.assertTrue(r.body == body, "the slow client got other bytes than it asked for")


if __name__ == "__main__":
    pdtest.main()
