"""Helpers shared by the cache end-to-end tests (test_cache*.py): access log
result codes per URL, deterministic bodies, which worker owns a client
connection, the instance's proportional memory, multipart/byteranges parsing."""

import hashlib
import os
import re

import pdtest


def body_of(tag, size):
    """A deterministic, non-repeating-looking body of exactly size bytes."""
    seed = hashlib.sha256(tag.encode()).digest()
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
        i += 1
    return bytes(out[:size])


def digest(b):
    return hashlib.sha256(b).hexdigest()[:16]


def log_codes(proxy, url, n=None, timeout=pdtest.DEFAULT_TIMEOUT):
    """Result codes (e.g. 'TCP_MEM_HIT') of the access log lines for url, in
    file order. With n, waits until there are at least n of them (a line is
    written when the transaction ends, maybe just after the client saw it)."""
    def codes():
        out = []
        for line in proxy.access_lines():
            f = line.split()
            if len(f) > 6 and f[6] == url:
                out.append(f[3].split("/")[0])
        return out
    if n is None:
        return codes()
    return pdtest.wait_until(lambda: (lambda c: c if len(c) >= n else None)(codes()),
                             timeout, "%d access log lines for %s (have %r)" % (n, url, codes()))


def _hexaddr(ip, port):
    a = bytes(int(x) for x in ip.split("."))[::-1].hex().upper()
    return "%s:%04X" % (a, port)


def _socket_inode(local, remote):
    """Inode of the TCP socket local -> remote ((ip, port) pairs), or None."""
    want_l, want_r = _hexaddr(*local), _hexaddr(*remote)
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[1] == want_l and p[2] == want_r and p[9] != "0":
                return p[9]
    return None


def worker_of(proxy, client):
    """pid of the worker that accepted this Client's connection (waits for the
    accept: until then the socket has no inode / no owner)."""
    cl = client.sock.getsockname()
    srv = client.sock.getpeername()

    def find():
        ino = _socket_inode(srv, cl)
        if ino is None:
            return None
        target = "socket:[%s]" % ino
        for pid in proxy.worker_pids():
            try:
                for fd in os.listdir("/proc/%d/fd" % pid):
                    try:
                        if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                            return pid
                    except OSError:
                        pass
            except OSError:
                pass
        return None
    return pdtest.wait_until(find, what="the worker owning the connection")


def sanitized_binary():
    """True when proxyd is built with AddressSanitizer: its shadow memory and
    malloc quarantine (256 MB by default) make memory bounds meaningless."""
    try:
        with open(pdtest.proxyd_bin(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def pss_bytes(pid):
    """Proportional set size of a process (shared pages divided among their users)."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def instance_pss(proxy):
    return sum(pss_bytes(p) for p in [proxy.pid] + proxy.worker_pids())


def parse_byteranges(resp):
    """[(content-range, part bytes)] of a multipart/byteranges response."""
    ct = resp.get("content-type") or ""
    m = re.search(r'boundary="?([^";]+)"?', ct)
    if not ct.lower().startswith("multipart/byteranges") or not m:
        raise AssertionError("not multipart/byteranges: %r" % ct)
    delim = b"\r\n--" + m.group(1).encode()
    body = resp.body
    if body.startswith(delim[2:]):
        body = b"\r\n" + body
    pieces = body.split(delim)
    if len(pieces) < 3 or not pieces[-1].startswith(b"--"):
        raise AssertionError("no closing delimiter in %r" % body[-200:])
    parts = []
    for piece in pieces[1:-1]:
        if not piece.startswith(b"\r\n"):
            raise AssertionError("bad part start %r" % piece[:40])
        head, sep, data = piece[2:].partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError("part without header end %r" % piece[:200])
        fields = dict((k.strip().lower(), v.strip()) for k, _, v in
                      (l.decode("latin-1").partition(":") for l in head.split(b"\r\n")))
        parts.append((fields.get("content-range"), data))
    return parts
