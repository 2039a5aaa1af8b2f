"""pdtest: the end-to-end test library for proxyd.

It starts the real proxyd binary with a generated configuration, next to
scripted servers that run in threads of the test process, all on 127.0.0.1
with ports chosen by the kernel:

  Proxy       proxyd itself (master + workers), its stderr drained in a thread
  Origin      an HTTP/1.1 origin server scripted per path, recording every request
  DnsServer   a UDP DNS server answering A queries from a dict, counting queries
  EchoServer  a TCP echo server with half-close support (CONNECT target)
  Client      a strict raw-socket HTTP/1.1 client (proxy_request, raw)
  HelperTestCase  a temp directory with scripted helper programs (auth, acl, rewrite)

Parsing is strict on both sides (CRLF line ends, token header names, no
obs-fold, one framing) so that whatever proxyd sends is checked too: an origin
that receives a malformed request records it in Origin.errors.

Synchronisation is by events and conditions with deadlines, never by sleeping
for a guessed time. Python 3 standard library only.
"""

import atexit
import base64
import faulthandler
import os
import random
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HOST = "127.0.0.1"
DEFAULT_TIMEOUT = float(os.environ.get("PDTEST_TIMEOUT", "10"))
# Whole-file watchdog: a hung test kills its proxies and exits instead of
# waiting for CTest's timeout.
WATCHDOG_SECONDS = float(os.environ.get("PDTEST_WATCHDOG", "240"))

TOKEN_RE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
REQUEST_LINE_RE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \x00-\x20\x7f]+) HTTP/(\d)\.(\d)")
STATUS_LINE_RE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3}) ([^\r\n]*)")
CHUNK_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\r\n]*)?")


class ProtocolError(Exception):
    """The peer sent something that is not valid HTTP/1.1."""


class Incomplete(Exception):
    """The peer closed the connection in the middle of a message."""

    def __init__(self, msg, partial=b""):
        super().__init__(msg)
        self.partial = partial


def _wait_cond(cond, pred, timeout, what):
    """Wait on a held Condition until pred() is true; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while not pred():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        cond.wait(left)


def wait_until(pred, timeout=DEFAULT_TIMEOUT, what="condition", interval=0.02):
    """Poll pred() until true or raise AssertionError. Only for state that has no
    event to wait on (files written by another process, /proc)."""
    deadline = time.monotonic() + timeout
    ev = threading.Event()
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        ev.wait(interval)


# --------------------------------------------------------------------------
# Strict HTTP/1.1 reading, shared by the origin (requests) and client (responses)

class _Reader:
    """Buffered reader over a recv function."""

    def __init__(self, recv):
        self.recv = recv
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        if self.eof:
            return False
        data = self.recv(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def readline(self, limit=1 << 17):
        """A line with its LF, or what is left (maybe b"") at EOF."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            if not self.fill():
                line = bytes(self.buf)
                self.buf.clear()
                return line

    def read(self, n):
        """Exactly n bytes, or fewer at EOF."""
        while len(self.buf) < n and self.fill():
            pass
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_all(self):
        while self.fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data


def _strict_line(line, what):
    if not line.endswith(b"\r\n"):
        if not line or not line.endswith(b"\n"):
            raise Incomplete("connection closed inside %s" % what)
        raise ProtocolError("%s ends with bare LF: %r" % (what, line))
    body = line[:-2]
    if b"\r" in body or b"\n" in body:
        raise ProtocolError("stray CR/LF in %s: %r" % (what, line))
    return body


def parse_fields(rd):
    """Header (or trailer) fields up to the empty line, as [(name, value)]."""
    fields = []
    while True:
        line = _strict_line(rd.readline(), "header section")
        if line == b"":
            return fields
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("obs-fold line: %r" % line)
        name, sep, value = line.partition(b":")
        if not sep or not TOKEN_RE.fullmatch(name):
            raise ProtocolError("bad header field: %r" % line)
        value = value.strip(b" \t")
        for c in value:
            if (c < 0x20 and c != 0x09) or c == 0x7f:
                raise ProtocolError("control character in field value: %r" % line)
        fields.append((name.decode("latin-1"), value.decode("latin-1")))


def read_chunked(rd):
    """A chunked body: (body, trailers, [chunk sizes]). Incomplete at early EOF."""
    body = bytearray()
    sizes = []
    while True:
        raw = rd.readline(4096)
        try:
            line = _strict_line(raw, "chunk size line")
        except Incomplete as e:
            raise Incomplete(str(e), bytes(body))
        m = CHUNK_SIZE_RE.fullmatch(line)
        if not m:
            raise ProtocolError("bad chunk size line: %r" % line)
        size = int(m.group(1), 16)
        sizes.append(size)
        if size == 0:
            try:
                trailers = parse_fields(rd)
            except Incomplete as e:
                raise Incomplete(str(e), bytes(body))
            return bytes(body), trailers, sizes
        data = rd.read(size)
        body += data
        if len(data) < size:
            raise Incomplete("connection closed inside a chunk", bytes(body))
        crlf = rd.read(2)
        if len(crlf) < 2:
            raise Incomplete("connection closed after chunk data", bytes(body))
        if crlf != b"\r\n":
            raise ProtocolError("chunk data not followed by CRLF: %r" % crlf)


def _get(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _get_all(headers, name):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


def _tokens(headers, name):
    out = []
    for v in _get_all(headers, name):
        out += [t.strip().lower() for t in v.split(",") if t.strip()]
    return out


def _body_framing(headers):
    """('chunked'|'length'|'none'|'close', length) for a message; ProtocolError
    on conflicting framing (RFC 9112 section 6)."""
    te = _tokens(headers, "transfer-encoding")
    cls = _get_all(headers, "content-length")
    if te:
        if cls:
            raise ProtocolError("both Transfer-Encoding and Content-Length")
        if te[-1] != "chunked":
            return "close", None
        return "chunked", None
    if cls:
        values = set()
        for v in cls:
            for part in v.split(","):
                part = part.strip()
                if not re.fullmatch(r"[0-9]{1,18}", part):
                    raise ProtocolError("bad Content-Length %r" % v)
                values.add(int(part))
        if len(values) != 1:
            raise ProtocolError("conflicting Content-Length values %r" % cls)
        return "length", values.pop()
    return "none", None


def encode_chunked(chunks, trailers=()):
    out = bytearray()
    for c in chunks:
        if c:
            out += b"%x\r\n" % len(c) + c + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


# --------------------------------------------------------------------------
# Origin

class Request:
    """One request as an Origin received it."""

    def __init__(self, method, target, version, headers, body, conn, framing, trailers=()):
        self.method = method
        self.target = target
        self.version = version          # "HTTP/1.1"
        self.headers = headers          # [(name, value)] in wire order
        self.body = body
        self.conn = conn                # index of the origin connection (1-based)
        self.framing = framing          # 'chunked', 'length' or 'none'
        self.chunked = framing == "chunked"
        self.trailers = list(trailers)

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def get(self, name):
        return _get(self.headers, name)

    def get_all(self, name):
        return _get_all(self.headers, name)

    def has(self, name):
        return _get(self.headers, name) is not None

    def __repr__(self):
        return "<Request %s %s conn=%d %d body bytes>" % (self.method, self.target, self.conn, len(self.body))


class Reply:
    """What an Origin handler answers; every field scripts one behaviour.

    status, reason, headers, body   the response (body: bytes or str)
    chunked / chunks / trailers      send chunked (chunks: explicit chunk list)
    close_delimited                  no Content-Length, end by closing
    close                            send Connection: close and close after
    delay                            seconds to wait before answering
    wait                             threading.Event to wait for before answering
    body_wait                        Event to wait for between head and body
    die_after                        send the head and N body bytes, then close
    never                            never answer (hold the connection until the
                                     peer closes it or the origin stops)
    garbage                          send these raw bytes instead, then close
    raw_head                         raw bytes replacing the generated head
    stream                           (block, count): a body of count copies of
                                     block, generated while sending (large bodies);
                                     Origin.bytes_sent counts what went out
    """

    def __init__(self, status=200, body=b"", headers=(), reason=None, chunked=False,
                 chunks=None, trailers=(), close_delimited=False, close=False, delay=0,
                 wait=None, body_wait=None, die_after=None, never=False, garbage=None,
                 raw_head=None, wait_timeout=30, stream=None):
        self.status = status
        self.reason = reason
        self.headers = list(headers)
        self.body = body.encode() if isinstance(body, str) else bytes(body)
        self.chunked = chunked or chunks is not None
        self.chunks = [c.encode() if isinstance(c, str) else c for c in chunks] if chunks is not None else None
        self.trailers = list(trailers)
        self.close_delimited = close_delimited
        self.close = close
        self.delay = delay
        self.wait = wait
        self.body_wait = body_wait
        self.die_after = die_after
        self.never = never
        self.garbage = garbage
        self.raw_head = raw_head
        self.wait_timeout = wait_timeout
        self.stream = stream


REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
           301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request",
           403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}


class _Stoppable:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _TcpServer(_Stoppable):
    """A listening socket on host:0 (self.port) and a thread per accepted connection,
    numbered from 1 (self.connections counts them), which runs the subclass's
    _serve(sock, cid). A subclass sets its own state before calling __init__ (the
    acceptor starts there) and may extend _accepted(cid), called under _cond.
    stop() closes the listener, shuts every open connection down and joins the threads."""

    def __init__(self, host, backlog, name):
        self._name = name
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.connections = 0    # accepted connections
        self._socks = set()
        self._threads = []
        self._lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._lsock.bind((host, 0))
        self._lsock.listen(backlog)
        self.port = self._lsock.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name=name + "-accept", daemon=True)
        self._acceptor.start()

    def stop(self):
        with self._cond:
            if self._stop.is_set():
                return
            self._stop.set()
            socks = list(self._socks)
            threads = list(self._threads)   # started ones only: see _accept_loop
        try:
            self._lsock.close()
        except OSError:
            pass
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads + [self._acceptor]:
            t.join(5)

    def _accepted(self, cid):
        pass

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._lsock], [], [], 0.2)
                if not r:
                    continue
                sock, _ = self._lsock.accept()
            except OSError:
                return
            with self._cond:
                if self._stop.is_set():  # stop() already shut the others down
                    sock.close()
                    return
                self.connections += 1
                cid = self.connections
                self._socks.add(sock)
                self._accepted(cid)
                self._cond.notify_all()
                # started before it is listed, both under the lock: stop() never
                # joins a thread that has not started
                t = threading.Thread(target=self._serve, args=(sock, cid),
                                     name="%s-conn-%d" % (self._name, cid), daemon=True)
                t.start()
                self._threads.append(t)


class Origin(_TcpServer):
    """A scripted HTTP/1.1 origin server on 127.0.0.1:0 (one thread per connection;
    host: another local address, e.g. one of a test's own network namespace links).

    route(path, handler): handler(req) returns a Reply, bytes/str (200 body) or
    an int (status). route(path, raw=fn): fn(sock, req, origin) owns the socket
    after the request was read and returns True to keep the connection.
    A path ending in '*' matches as a prefix. Unrouted paths get 200 "ok <target>".
    """

    def __init__(self, host=HOST):
        self._routes = {}
        self._prefix_routes = []
        self.requests = []      # complete requests, in arrival order
        self.partial = []       # heads whose body never fully arrived
        self.errors = []        # protocol errors seen (strings)
        self.closed_connections = 0
        self.bytes_sent = 0     # body bytes of streamed (Reply.stream) responses
        super().__init__(host, 256, "origin")

    # -- scripting
    def route(self, path, handler=None, raw=None, before_body=False):
        """before_body=True (with raw): fn is called right after the head, the
        body still unread: req.reader (a _Reader), req.framing and
        req.content_length let it read the body itself, or not."""
        if raw is not None:
            entry = ("raw_head" if before_body else "raw", raw)
        else:
            entry = ("fn", handler)
        if path.endswith("*"):
            self._prefix_routes.append((path[:-1], entry))
        else:
            self._routes[path] = entry
        return self

    def url(self, path="/", host=None):
        return "http://%s:%d%s" % (host or HOST, self.port, path)

    @property
    def authority(self):
        return "%s:%d" % (HOST, self.port)

    # -- observing
    def snapshot(self):
        with self._cond:
            return list(self.requests)

    def requests_for(self, path):
        return [r for r in self.snapshot() if r.path == path]

    def wait_requests(self, n, timeout=DEFAULT_TIMEOUT, path=None):
        """Wait until n requests (for path, if given) were fully received."""
        def count():
            return len([r for r in self.requests if path is None or r.path == path])
        with self._cond:
            _wait_cond(self._cond, lambda: count() >= n, timeout,
                       "%d origin requests%s (have %d)" % (n, " for " + path if path else "", count()))
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, pred, timeout=DEFAULT_TIMEOUT, what="origin state"):
        with self._cond:
            _wait_cond(self._cond, lambda: pred(self), timeout, what)

    # -- serving
    def _error(self, msg):
        with self._cond:
            self.errors.append(msg)
            self._cond.notify_all()

    def _serve(self, sock, cid):
        rd = _Reader(sock.recv)
        try:
            while not self._stop.is_set():
                if not self._serve_one(sock, rd, cid):
                    break
        except OSError:
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass
            with self._cond:
                self._socks.discard(sock)
                self.closed_connections += 1
                self._cond.notify_all()

    def _bad_request(self, sock, cid, err):
        """Records a malformed request and answers 400; False: the connection ends."""
        self._error("conn %d: %s" % (cid, err))
        try:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        except OSError:
            pass
        return False

    def _serve_one(self, sock, rd, cid):
        line = rd.readline()
        if line == b"":
            return False
        try:
            m = REQUEST_LINE_RE.fullmatch(_strict_line(line, "request line"))
            if not m:
                raise ProtocolError("bad request line %r" % line)
            method = m.group(1).decode()
            target = m.group(2).decode("latin-1")
            version = "HTTP/%s.%s" % (m.group(3).decode(), m.group(4).decode())
            headers = parse_fields(rd)
            framing, length = _body_framing(headers)
            if version == "HTTP/1.1" and len(_get_all(headers, "host")) != 1:
                raise ProtocolError("HTTP/1.1 request with %d Host fields" % len(_get_all(headers, "host")))
            if not target.startswith("/") and not (method == "OPTIONS" and target == "*"):
                raise ProtocolError("origin got a non origin-form target %r" % target)
        except (ProtocolError, Incomplete) as e:
            return self._bad_request(sock, cid, e)
        kind, fn = self._lookup(target.split("?", 1)[0])
        if kind == "raw_head":
            req = Request(method, target, version, headers, b"", cid, framing)
            req.reader, req.content_length = rd, length
            with self._cond:
                self.requests.append(req)
                self._cond.notify_all()
            return bool(fn(sock, req, self))
        trailers = ()
        try:
            if framing == "chunked":
                body, trailers, _ = read_chunked(rd)
            elif framing == "length":
                body = rd.read(length)
                if len(body) < length:
                    raise Incomplete("closed inside body (%d of %d)" % (len(body), length), body)
            elif framing == "close":
                raise ProtocolError("request with a non-chunked Transfer-Encoding")
            else:
                body = b""
        except Incomplete as e:
            with self._cond:
                self.partial.append(Request(method, target, version, headers, e.partial, cid, framing))
                self._cond.notify_all()
            return False
        except ProtocolError as e:
            return self._bad_request(sock, cid, e)
        req = Request(method, target, version, headers, body, cid, framing, trailers)
        with self._cond:
            self.requests.append(req)
            self._cond.notify_all()

        if kind == "raw":
            return bool(fn(sock, req, self))
        try:
            rep = fn(req) if fn else Reply(body="ok " + target)
        except Exception as e:  # a broken handler is a test bug: say so loudly
            self._error("handler for %s raised %r" % (target, e))
            rep = Reply(500, close=True)
        if isinstance(rep, (bytes, str)):
            rep = Reply(body=rep)
        elif isinstance(rep, int):
            rep = Reply(rep)
        conn_tokens = _tokens(headers, "connection")
        client_close = "close" in conn_tokens or (version == "HTTP/1.0" and "keep-alive" not in conn_tokens)
        return self._send(sock, req, rep, client_close)

    def _lookup(self, path):
        if path in self._routes:
            return self._routes[path]
        best = None
        for prefix, entry in self._prefix_routes:
            if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, entry)
        return best[1] if best else ("fn", None)

    def _wait_event(self, ev, timeout):
        deadline = time.monotonic() + timeout
        while not ev.wait(0.1):
            if self._stop.is_set() or time.monotonic() > deadline:
                return False
        return True

    def _hold(self, sock):
        """Never answer: keep the connection until the peer closes or we stop."""
        while not self._stop.is_set():
            r, _, _ = select.select([sock], [], [], 0.1)
            if r and not sock.recv(65536):
                return

    def _send(self, sock, req, rep, client_close):
        if rep.never:
            self._hold(sock)
            return False
        if rep.wait is not None and not self._wait_event(rep.wait, rep.wait_timeout):
            return False
        if rep.delay and self._stop.wait(rep.delay):
            return False
        if rep.garbage is not None:
            sock.sendall(rep.garbage)
            return False
        status = rep.status
        no_body = req.method == "HEAD" or status in (204, 304) or 100 <= status < 200
        hdrs = list(rep.headers)
        names = {k.lower() for k, _ in hdrs}
        close = rep.close or rep.close_delimited or client_close
        if rep.chunked:
            if "transfer-encoding" not in names:
                hdrs.append(("Transfer-Encoding", "chunked"))
        elif not rep.close_delimited and "content-length" not in names and status not in (204, 304) \
                and not 100 <= status < 200:
            if rep.stream is not None:
                length = len(rep.stream[0]) * rep.stream[1]
            else:
                length = len(rep.body if rep.chunks is None else b"".join(rep.chunks))
            hdrs.append(("Content-Length", str(length)))
        if close and "connection" not in names:
            hdrs.append(("Connection", "close"))
        if rep.raw_head is not None:
            head = rep.raw_head
        else:
            head = ("HTTP/1.1 %d %s\r\n" % (status, rep.reason or REASONS.get(status, "Status"))).encode()
            head += b"".join(("%s: %s\r\n" % (k, v)).encode("latin-1") for k, v in hdrs) + b"\r\n"
        if rep.stream is not None:
            sock.sendall(head)
            if not no_body:
                block, count = rep.stream
                wire = encode_chunked([block])[:-5] if rep.chunked else block
                for _ in range(count):
                    if self._stop.is_set():
                        return False
                    sock.sendall(wire)
                    with self._cond:
                        self.bytes_sent += len(block)
                if rep.chunked:
                    sock.sendall(b"0\r\n\r\n")
            return not close
        chunks = rep.chunks if rep.chunks is not None else ([rep.body] if rep.body else [])
        body = b"".join(chunks)
        if rep.die_after is not None:
            part = body[:rep.die_after]
            if no_body:
                wire = b""
            elif rep.chunked:
                wire = encode_chunked([part])[:-len(b"0\r\n\r\n")]
            else:
                wire = part
            sock.sendall(head)
            if rep.body_wait is not None:
                self._wait_event(rep.body_wait, rep.wait_timeout)
            if wire:
                sock.sendall(wire)
            return False
        if no_body:
            wire = b""
        elif rep.chunked:
            wire = encode_chunked(chunks, rep.trailers)
        else:
            wire = body
        if rep.body_wait is not None:
            sock.sendall(head)
            if not self._wait_event(rep.body_wait, rep.wait_timeout):
                return False
            sock.sendall(wire)
        else:
            sock.sendall(head + wire)
        return not close


# --------------------------------------------------------------------------
# DNS

class DnsServer(_Stoppable):
    """UDP DNS server on 127.0.0.1:0.

    records: {name: (ip, ttl)} (ip may be a list). A queries for a known name
    get the address(es); other types for a known name get an empty NOERROR;
    unknown names get NXDOMAIN. drop=True (or a set of names) makes it silent.
    The question is echoed byte for byte (resolvers randomise the case).
    """

    def __init__(self, records=None, drop=False):
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.drop = drop
        self._cond = threading.Condition()
        self.log = []           # [(name, qtype)] in arrival order
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((HOST, 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._loop, name="dns", daemon=True)
        self._thread.start()

    def add(self, name, ip, ttl=60):
        with self._cond:
            self.records[name.lower().rstrip(".")] = (ip, ttl)

    def queries(self, name=None, qtype=None):
        """How many queries arrived (for name / type, if given; qtype 1 = A)."""
        with self._cond:
            return len([1 for n, t in self.log
                        if (name is None or n == name.lower()) and (qtype is None or t == qtype)])

    def wait_queries(self, n, name=None, timeout=DEFAULT_TIMEOUT):
        with self._cond:
            _wait_cond(self._cond, lambda: len([1 for q, _ in self.log if name is None or q == name]) >= n,
                       timeout, "%d DNS queries for %s" % (n, name))

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self._sock], [], [], 0.2)
            if not r:
                continue
            try:
                data, addr = self._sock.recvfrom(4096)
            except OSError:
                return
            resp = self._answer(data)
            if resp is not None:
                self._sock.sendto(resp, addr)

    def _answer(self, data):
        if len(data) < 12:
            return None
        qid, flags, qdcount = struct.unpack("!HHH", data[:6])
        if flags & 0x8000 or qdcount != 1:
            return None
        i = 12
        labels = []
        try:
            while True:
                n = data[i]
                i += 1
                if n == 0:
                    break
                if n & 0xC0:
                    return None
                labels.append(data[i:i + n])
                i += n
            qtype, qclass = struct.unpack("!HH", data[i:i + 4])
        except (IndexError, struct.error):
            return None
        i += 4
        question = data[12:i]
        name = b".".join(labels).decode("ascii", "replace").lower()
        with self._cond:
            self.log.append((name, qtype))
            self._cond.notify_all()
            rec = self.records.get(name)
            drop = self.drop is True or (isinstance(self.drop, (set, list, tuple)) and name in self.drop)
        if drop:
            return None
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080
        answers = b""
        ancount = 0
        if rec is None:
            rflags |= 3  # NXDOMAIN
        elif qtype == 1 and qclass == 1:
            ips, ttl = rec
            for ip in ([ips] if isinstance(ips, str) else ips):
                answers += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, ttl, 4) + socket.inet_aton(ip)
                ancount += 1
        return struct.pack("!HHHHHH", qid, rflags, 1, ancount, 0, 0) + question + answers


def dns_query(port, name, qtype=1, timeout=2.0):
    """A tiny stub resolver for testing DnsServer: (rcode, [(ip, ttl)]) or None on timeout."""
    qid = os.getpid() & 0xFFFF
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(q, (HOST, port))
        try:
            data = s.recv(4096)
        except socket.timeout:
            return None
    rid, flags, qd, an = struct.unpack("!HHHH", data[:8])
    assert rid == qid and flags & 0x8000
    i = len(q)  # answers follow the echoed question
    out = []
    for _ in range(an):
        i += 2  # compressed name pointer
        t, c, ttl, rdlen = struct.unpack("!HHIH", data[i:i + 10])
        i += 10
        if t == 1:
            out.append((socket.inet_ntoa(data[i:i + rdlen]), ttl))
        i += rdlen
    return flags & 0xF, out


# --------------------------------------------------------------------------
# Echo

class EchoServer(_TcpServer):
    """TCP echo on 127.0.0.1:0. When a client half-closes, it sends `bye`
    after the echoed bytes, then closes its side too. eof_seen counts the
    EOFs it read; received holds the bytes of each connection."""

    def __init__(self, bye=b"BYE\n"):
        self.bye = bye
        self.eof_seen = 0
        self.received = {}
        super().__init__(HOST, 64, "echo")

    def wait_connections(self, n, timeout=DEFAULT_TIMEOUT):
        with self._cond:
            _wait_cond(self._cond, lambda: self.connections >= n, timeout, "%d echo connections" % n)

    def wait_eof(self, n=1, timeout=DEFAULT_TIMEOUT):
        with self._cond:
            _wait_cond(self._cond, lambda: self.eof_seen >= n, timeout, "echo server to see EOF")

    def _accepted(self, cid):
        self.received[cid] = bytearray()

    def _serve(self, sock, cid):
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    with self._cond:
                        self.eof_seen += 1
                        self._cond.notify_all()
                    if self.bye:
                        sock.sendall(self.bye)
                    sock.shutdown(socket.SHUT_WR)
                    break
                with self._cond:
                    self.received[cid] += data
                sock.sendall(data)
        except OSError:
            pass
        finally:
            sock.close()
            with self._cond:
                self._socks.discard(sock)


def _ephemeral_low():
    """The first port of the kernel's ephemeral range (bind to port 0, connect)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def unused_port(kind=socket.SOCK_STREAM, host=HOST):
    """A port of host that nothing uses now and that the kernel never hands out on
    its own: below its ephemeral range, so no bind to port 0 and no outgoing
    connection of a test running beside this one can take it before the caller
    binds it (a port bound then released at 0 could go to the next such bind,
    another test's proxyd, say). Random, so two tests rarely pick the same one."""
    low = _ephemeral_low()
    if low <= 20000 + 1000:
        raise AssertionError("ephemeral range starts at %d: no room below it for test ports" % low)
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, low)
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise AssertionError("no unused port below %d on %s" % (low, host))


def closed_port():
    """A 127.0.0.1 port with nothing listening (see unused_port)."""
    return unused_port()


# --------------------------------------------------------------------------
# Client

class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []
        self.body = b""
        self.trailers = []
        self.framing = None     # 'chunked', 'length', 'close' or 'none'
        self.chunk_sizes = []
        self.complete = False   # the body arrived whole by its framing
        self.closed = False     # the server closed the connection after it
        self.interim = []       # 1xx responses before this one (status codes)

    def get(self, name):
        return _get(self.headers, name)

    def get_all(self, name):
        return _get_all(self.headers, name)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %s framing=%s complete=%s closed=%s %d body bytes>" % (
            self.status, self.reason, self.framing, self.complete, self.closed, len(self.body))


def _target_host(url):
    m = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]+)", url)
    return m.group(1) if m else None


class Client:
    """One client connection, speaking HTTP/1.1 byte for byte as told."""

    def __init__(self, port, host=HOST, timeout=DEFAULT_TIMEOUT):
        if hasattr(port, "port"):
            port = port.port
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rd = _Reader(self._recv)
        self.bytes_received = 0     # every byte read from the proxy (heads, bodies, framing)

    def _recv(self, n):
        try:
            data = self.sock.recv(n)
        except ConnectionResetError:
            return b""
        self.bytes_received += len(data)
        return data

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def build(self, method, target, headers=None, body=None, version="HTTP/1.1", chunked=False,
              host=True):
        """The request bytes. Host is added from an absolute target when host=True
        and none is given; Content-Length/Transfer-Encoding from the body."""
        headers = list(headers or [])
        names = {k.lower() for k, _ in headers}
        if host and "host" not in names:
            h = _target_host(target)
            if h is None and method == "CONNECT":
                h = target
            if h is not None:
                headers.insert(0, ("Host", h))
        if isinstance(body, str):
            body = body.encode()
        wire = b""
        if chunked:
            chunks = body if isinstance(body, (list, tuple)) else [body or b""]
            if "transfer-encoding" not in names:
                headers.append(("Transfer-Encoding", "chunked"))
            wire = encode_chunked([c.encode() if isinstance(c, str) else c for c in chunks])
        elif body is not None:
            if "content-length" not in names:
                headers.append(("Content-Length", str(len(body))))
            wire = body
        head = "%s %s %s\r\n" % (method, target, version)
        head += "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
        return head.encode("latin-1") + wire

    def request(self, method, target, headers=None, body=None, version="HTTP/1.1", chunked=False,
                host=True):
        self.send(self.build(method, target, headers, body, version, chunked, host))
        return self.read_response(method, version)

    def read_response(self, method="GET", version="HTTP/1.1"):
        return read_response(self.rd, method, self.sock, self.timeout)

    def read_all(self):
        try:
            return self.rd.read_all()
        except socket.timeout:
            return bytes(self.rd.buf)

    def is_closed(self, wait=0.0):
        """True if the peer closed (EOF within `wait` seconds and no data pending)."""
        if self.rd.buf:
            return False
        r, _, _ = select.select([self.sock], [], [], wait)
        if not r:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_response(rd, method="GET", sock=None, timeout=DEFAULT_TIMEOUT):
    """Read one response strictly from a _Reader. Early EOF inside the body
    yields complete=False; inside the head it raises Incomplete."""
    resp = Response()
    while True:
        line = rd.readline()
        if line == b"":
            raise Incomplete("connection closed before a status line")
        m = STATUS_LINE_RE.fullmatch(_strict_line(line, "status line"))
        if not m:
            raise ProtocolError("bad status line %r" % line)
        resp.version = "HTTP/%s.%s" % (m.group(1).decode(), m.group(2).decode())
        resp.status = int(m.group(3))
        resp.reason = m.group(4).decode("latin-1")
        resp.headers = parse_fields(rd)
        if 100 <= resp.status < 200 and resp.status != 101:
            resp.interim.append(resp.status)
            continue
        break
    if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200 or \
            (method == "CONNECT" and 200 <= resp.status < 300):
        resp.framing = "none"
        resp.complete = True
    else:
        framing, length = _body_framing(resp.headers)
        if framing == "none":
            framing = "close"
        resp.framing = framing
        if framing == "chunked":
            try:
                resp.body, resp.trailers, resp.chunk_sizes = read_chunked(rd)
                resp.complete = True
            except Incomplete as e:
                resp.body = e.partial
                resp.closed = True
        elif framing == "length":
            resp.body = rd.read(length)
            resp.complete = len(resp.body) == length
            resp.closed = not resp.complete
        else:
            resp.body = rd.read_all()
            resp.complete = True
            resp.closed = True
    if not resp.closed and sock is not None and method != "CONNECT":
        conn = _tokens(resp.headers, "connection")
        expect_close = "close" in conn or (resp.version == "HTTP/1.0" and "keep-alive" not in conn)
        if not rd.buf:
            r, _, _ = select.select([sock], [], [], timeout if expect_close else 0)
            if r:
                try:
                    resp.closed = sock.recv(1, socket.MSG_PEEK) == b""
                except ConnectionResetError:
                    resp.closed = True
    return resp


def parse_response(data, method="GET"):
    """Parse response bytes (e.g. from raw()) into a Response."""
    chunks = [data]

    def recv(_n):
        return chunks.pop() if chunks else b""
    return read_response(_Reader(recv), method)


def proxy_request(proxy, method, url, headers=None, body=None, version="HTTP/1.1", chunked=False,
                  host=True, timeout=DEFAULT_TIMEOUT):
    """One request on a fresh connection to the proxy; the Response."""
    with Client(proxy, timeout=timeout) as c:
        return c.request(method, url, headers, body, version, chunked, host)


def raw(proxy, data, timeout=5.0):
    """Send raw bytes on a fresh connection, return all bytes read until the
    server closes or `timeout` passes without it doing so."""
    with Client(proxy, timeout=timeout) as c:
        c.send(data)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r, _, _ = select.select([c.sock], [], [], deadline - time.monotonic())
            if not r:
                break
            try:
                d = c.sock.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return bytes(out)


# --------------------------------------------------------------------------
# Proxy

_LIVE_PROXIES = set()


def proxyd_bin():
    """PROXYD_BIN (absolute: proxyd runs in its temp dir), or build/proxyd of the tree."""
    b = os.environ.get("PROXYD_BIN")
    if not b:
        b = os.path.join(source_dir(), "build", "proxyd")
    return os.path.abspath(b)


def source_dir():
    return os.environ.get("PROXYD_SRC") or os.path.abspath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def _proc_stat(pid):
    """(state, ppid, comm) of a process, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    lpar, rpar = data.find("("), data.rfind(")")
    rest = data[rpar + 2:].split()
    return rest[0], int(rest[1]), data[lpar + 1:rpar]


def children_of(pid):
    """Live (non-zombie) children of pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = _proc_stat(int(d))
        if st and st[1] == pid and st[0] != "Z":
            out.append(int(d))
    return sorted(out)


def processes_mentioning(text):
    """(pid, command line) of the live (non-zombie) processes but this one whose command
    line contains text, e.g. the work directory of a tool that must leave nothing running."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        st = _proc_stat(int(d))
        if text in cmd and st and st[0] != "Z":
            out.append((int(d), cmd))
    return out


def rss_bytes(pid):
    """Resident set size of a process in bytes (0 if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_stall(read_counter, quiet=0.5, timeout=DEFAULT_TIMEOUT):
    """Wait until read_counter() stops changing for `quiet` seconds (a sender
    blocked by backpressure); returns the value. AssertionError if it still
    moves after `timeout`."""
    ev = threading.Event()
    deadline = time.monotonic() + timeout
    last, since = read_counter(), time.monotonic()
    while True:
        ev.wait(0.05)
        now = time.monotonic()
        v = read_counter()
        if v != last:
            last, since = v, now
        elif now - since >= quiet:
            return v
        if now > deadline:
            raise AssertionError("counter still moving after %.0fs (at %d)" % (timeout, v))


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ERROR: UndefinedBehaviorSanitizer")


class Proxy:
    """proxyd started with a generated configuration in a fresh temp dir.

    The config holds http_port 127.0.0.1:0, workers, visible_hostname,
    access_log, pid_filename, hosts_file none, dns_nameservers (if dns is a
    DnsServer), shutdown_lifetime, then conf_extra, then `http_access <http_access>`
    (None to leave it out). Start-up waits for `proxyd: listening on ADDR:PORT`
    and `proxyd: ready (N workers)` on stderr. With cache_log=True the config
    also has `cache_log DIR/cache.log` (self.cache_log): the master points its
    stderr there once listening, so the ready line and everything after it
    (sanitizer reports included) are read from that file. prefix: a command
    that execs proxyd (e.g. ["taskset", "-c", "0"]): the pid stays proxyd's.
    """

    LISTEN_RE = re.compile(r"proxyd: listening on (\S+):(\d+)\s*$")
    READY_RE = re.compile(r"proxyd: ready \((\d+) workers?\)")

    def ready_workers(self):
        """N of the last `proxyd: ready (N workers)` line."""
        m = [self.READY_RE.search(l) for l in self.stderr_lines if l]
        return int([x for x in m if x][-1].group(1))

    def __init__(self, conf_extra="", workers=2, dns=None, http_access="allow all",
                 visible_hostname="pdtest.local", shutdown_lifetime="3 seconds", start=True,
                 ready_timeout=30.0, args=(), conf=None, bin=None, access_log_format=None,
                 cache_log=False, prefix=()):
        self.bin = bin or proxyd_bin()
        if not os.access(self.bin, os.X_OK):
            raise AssertionError("proxyd binary not found or not executable: %s (set PROXYD_BIN)" % self.bin)
        self.dir = tempfile.mkdtemp(prefix="pdtest-")
        self.conf_path = os.path.join(self.dir, "proxy.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        self.pid_file = os.path.join(self.dir, "proxyd.pid")
        self.cache_log = os.path.join(self.dir, "cache.log") if cache_log else None
        self.workers = workers
        self.dns = dns
        self.args = list(args)
        self.prefix = list(prefix)
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self.ports = []
        self.stderr_lines = []
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._readers = []
        self.returncode = None
        self._known_workers = set()
        self.access_log_format = access_log_format
        self.write_conf(conf if conf is not None else self.make_conf(
            conf_extra, workers, dns, http_access, visible_hostname, shutdown_lifetime))
        if start:
            self.start()

    def make_conf(self, conf_extra="", workers=None, dns=None, http_access="allow all",
                  visible_hostname="pdtest.local", shutdown_lifetime="3 seconds"):
        workers = self.workers if workers is None else workers
        lines = ["# generated by tests/e2e/pdtest.py",
                 "http_port %s:0" % HOST,
                 "workers %d" % workers]
        if visible_hostname:
            lines.append("visible_hostname %s" % visible_hostname)
        # proxyd writes one access log: a test's own access_log line replaces ours
        if not re.search(r"(?m)^\s*access_log\s", conf_extra or ""):
            lines.append("access_log %s%s" % (self.access_log, " " + self.access_log_format
                                              if self.access_log_format else ""))
        lines += ["pid_filename %s" % self.pid_file,
                  "hosts_file none"]
        if self.cache_log:
            lines.append("cache_log %s" % self.cache_log)
        if dns is not None:
            lines.append("dns_nameservers %s:%d" % (HOST, dns.port))
        if shutdown_lifetime:
            lines.append("shutdown_lifetime %s" % shutdown_lifetime)
        if conf_extra:
            lines += [l.strip() for l in conf_extra.strip().splitlines()]
        if http_access:
            lines.append("http_access %s" % http_access)
        return "\n".join(lines) + "\n"

    def write_conf(self, text):
        tmp = self.conf_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf_path)
        self.conf_text = text

    # -- lifecycle
    def start(self):
        self.proc = subprocess.Popen(self.prefix + [self.bin, "-c", self.conf_path] + self.args,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, cwd=self.dir)
        _LIVE_PROXIES.add(self)
        for stream, sink in ((self.proc.stderr, self.stderr_lines), (self.proc.stdout, self.stdout_lines)):
            t = threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)
        try:
            m = self.wait_stderr(self.LISTEN_RE, self.ready_timeout, "the 'listening on' line")
            self.ports = [int(mm.group(2)) for mm in
                          (self.LISTEN_RE.search(l) for l in self.stderr_lines if l) if mm]
            self.port = int(m.group(2))
            if self.cache_log:
                def ready():
                    if self.proc.poll() is not None:
                        raise AssertionError("proxyd exited (%r) before it was ready; cache_log:\n%s"
                                             % (self.proc.returncode, self.cache_log_text()))
                    return self.READY_RE.search(self.cache_log_text())
                wait_until(ready, self.ready_timeout, "the 'ready' line in " + self.cache_log)
            else:
                self.wait_stderr(self.READY_RE, self.ready_timeout, "the 'ready' line")
        except AssertionError:
            self.stop()
            raise
        self._known_workers = set(self.worker_pids())
        return self

    def _drain(self, stream, sink):
        for line in iter(stream.readline, b""):
            with self._cond:
                sink.append(line.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        stream.close()
        with self._cond:
            sink.append(None)  # EOF mark
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        with self._cond:
            text = "\n".join(l for l in self.stderr_lines if l is not None)
        return text + ("\n" + self.cache_log_text() if self.cache_log else "")

    def cache_log_text(self, path=None):
        """The cache_log file (or `path`, e.g. a rotated one); "" while it does not exist."""
        try:
            with open(path or self.cache_log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_stderr(self, pattern, timeout=DEFAULT_TIMEOUT, what=None, start=0):
        """Wait for a stderr line (from index `start` on) matching pattern; the match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        found = []

        def pred():
            for l in self.stderr_lines[start:]:
                if l is None:
                    raise AssertionError("proxyd closed stderr (exit %r) before %s; stderr:\n%s" % (
                        self.proc.poll(), what or rx.pattern, self.stderr_text()))
                m = rx.search(l)
                if m:
                    found.append(m)
                    return True
            return False
        with self._cond:
            try:
                _wait_cond(self._cond, pred, timeout, what or rx.pattern)
            except AssertionError as e:
                if "closed stderr" in str(e):
                    raise
                raise AssertionError("%s; stderr so far:\n%s" % (e, "\n".join(
                    l for l in self.stderr_lines if l is not None)))
        return found[0]

    def mark(self):
        """Index to pass as wait_stderr(start=) to match only later lines."""
        with self._cond:
            return len(self.stderr_lines)

    def worker_pids(self):
        return children_of(self.proc.pid) if self.alive() else []

    def wait_workers(self, n, timeout=DEFAULT_TIMEOUT, exclude=()):
        return wait_until(lambda: (lambda p: p if len(p) == n and not set(p) & set(exclude) else None)(
            self.worker_pids()), timeout, "%d worker processes (not %s)" % (n, list(exclude)))

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout=DEFAULT_TIMEOUT):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("proxyd (pid %d) did not exit within %.0fs" % (self.proc.pid, timeout))
        self._join_readers()
        return self.returncode

    def _join_readers(self):
        for t in self._readers:
            t.join(5)

    def stop(self, timeout=15.0):
        """SIGTERM, wait, SIGKILL as a fallback (workers too, by pid). Exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            workers = set(self.worker_pids()) | self._known_workers
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.returncode = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                sys.stderr.write("pdtest: proxyd pid %d ignored SIGTERM for %.0fs, killing\n" % (
                    self.proc.pid, timeout))
                for w in children_of(self.proc.pid):
                    _kill_if_proxyd(w)
                self.proc.kill()
                self.returncode = self.proc.wait()
            # Workers must not outlive their master.
            for w in workers:
                st = _proc_stat(w)
                if st and st[0] != "Z" and st[1] != self.proc.pid:
                    _kill_if_proxyd(w)
        else:
            self.returncode = self.proc.returncode
        self._join_readers()
        _LIVE_PROXIES.discard(self)
        return self.returncode

    def close(self):
        """stop(), then remove the temp dir (kept when PDTEST_KEEP is set)."""
        rc = self.stop()
        if not os.environ.get("PDTEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return rc

    def sanitizer_report(self):
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            i = text.find(mark)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    # -- access log
    def access_lines(self, path=None):
        try:
            with open(path or self.access_log) as f:
                return [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def wait_access_lines(self, n, timeout=DEFAULT_TIMEOUT, path=None):
        return wait_until(lambda: (lambda l: l if len(l) >= n else None)(self.access_lines(path)),
                          timeout, "%d access log lines in %s" % (n, path or self.access_log))


def _kill_if_proxyd(pid):
    st = _proc_stat(pid)
    if st and "proxyd" in st[2]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _cleanup_all():
    for p in list(_LIVE_PROXIES):
        try:
            p.stop(timeout=5)
            shutil.rmtree(p.dir, ignore_errors=True)
        except Exception:
            pass


atexit.register(_cleanup_all)


def run_proxyd(*args, timeout=DEFAULT_TIMEOUT):
    """Run the proxyd binary with args (e.g. -t -c FILE): CompletedProcess."""
    return subprocess.run([proxyd_bin()] + list(args), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


# --------------------------------------------------------------------------
# Test case base and runner

class ProxyTestCase(unittest.TestCase):
    """Starts servers and proxies for one test and stops them afterwards:
    servers first (so that nothing holds the proxy's drain), then proxies.
    A sanitizer report on a proxy's stderr fails the test."""

    def setUp(self):
        self._servers = []
        self._proxies = []
        self.addCleanup(self._teardown_all)

    def _teardown_all(self):
        for s in reversed(self._servers):
            s.stop()
        reports = []
        for p in reversed(self._proxies):
            p.close()
            r = p.sanitizer_report()
            if r:
                reports.append(r)
        if reports:
            raise AssertionError("sanitizer report on proxyd stderr:\n" + "\n----\n".join(reports))

    def origin(self, host=HOST):
        o = Origin(host)
        self._servers.append(o)
        return o

    def dns(self, records=None, **kw):
        d = DnsServer(records, **kw)
        self._servers.append(d)
        return d

    def echo(self, **kw):
        e = EchoServer(**kw)
        self._servers.append(e)
        return e

    def proxy(self, *a, **kw):
        p = Proxy(*a, **kw)
        self._proxies.append(p)
        return p

    def assertNoOriginErrors(self, origin):
        self.assertEqual(origin.errors, [], "origin saw malformed input from proxyd")


class SharedProxyTestCase(ProxyTestCase):
    """One proxy for the whole class (self.p, started with SHARED_PROXY_ARGS) and a fresh
    origin per test (self.o). After each test: no sanitizer report so far and no malformed
    input seen by the origin."""

    SHARED_PROXY_ARGS = {"workers": 2}

    @classmethod
    def setUpClass(cls):
        cls.shared_proxy = Proxy(**cls.SHARED_PROXY_ARGS)
        cls.addClassCleanup(cls.shared_proxy.close)

    def setUp(self):
        super().setUp()
        self.p = self.shared_proxy
        self.o = self.origin()

    def tearDown(self):
        self.assertIsNone(self.p.sanitizer_report(), "sanitizer report on proxyd stderr")
        self.assertNoOriginErrors(self.o)


def basic_credentials(user, password):
    """The Proxy-Authorization header (name, value) of Basic user:password."""
    tok = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    return ("Proxy-Authorization", "Basic " + tok)


class HelperTestCase(ProxyTestCase):
    """For tests of helper programs (auth_param, external_acl_type, url_rewrite_program,
    store_id_program): self.o, an origin whose routes the test sets; self.tmp, a directory
    removed after the test (named TMP_PREFIX...); script(name, text) writes an executable
    /bin/sh script there and returns its path; self.calls, a file the scripts may append
    their questions to, read back by helper_calls() (its lines, [] while it does not exist)."""

    TMP_PREFIX = "pdtest-helper-"

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix=self.TMP_PREFIX)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.calls = os.path.join(self.tmp, "calls")
        self.o = self.origin()

    def script(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + text)
        os.chmod(path, stat.S_IRWXU)
        return path

    def helper_calls(self):
        try:
            with open(self.calls) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []


def _watchdog():
    sys.stderr.write("\npdtest: watchdog: test file still running after %.0fs; stacks:\n" % WATCHDOG_SECONDS)
    faulthandler.dump_traceback(sys.stderr, all_threads=True)
    for p in list(_LIVE_PROXIES):
        sys.stderr.write("pdtest: proxyd stderr:\n%s\n" % p.stderr_text()[-4000:])
    _cleanup_all()
    os._exit(3)


def main():
    """Run the calling module's tests; exit non-zero when one fails."""
    t = threading.Timer(WATCHDOG_SECONDS, _watchdog)
    t.daemon = True
    t.start()
    unittest.main(module="__main__", verbosity=2)
