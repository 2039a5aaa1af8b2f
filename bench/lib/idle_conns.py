#!/usr/bin/env python3
"""Holds many idle keep-alive client connections open on a proxy (bench/compare's "idle10k").

    idle_conns.py --port PROXY_PORT --url http://127.0.0.1:ORIGIN/obj --count N [--deadline S]

Opens N connections to 127.0.0.1:PROXY_PORT one after the other; on each it sends one GET for
URL (absolute form, as a proxy client does; or a path, for a server) and reads the whole
response, so that every connection is a client connection in keep-alive state, as a browser's
after its first request. Then it prints one line

    open N failed F seconds S

and waits for commands on stdin, one a line: `check` prints `alive K` (how many of the
connections the server has not closed: a socket that polls readable was closed or sent
something unasked); `quit` (or end of input) closes them all with RST (SO_LINGER 0, so that
10,000 closes leave no TIME_WAIT on the loopback ports) and exits.

Bounded: it stops opening after --deadline seconds or after 100 failures and reports what it
has. Needs an open-file limit above N (bench/compare raises it). Python standard library only.
"""
import argparse
import http.client
import select
import socket
import struct
import sys
import time
from urllib.parse import urlsplit


def open_one(port, url, host, timeout):
    """One connection with one finished request on it, or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", url, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        if r.status != 200 or r.will_close or conn.sock is None:
            conn.close()
            return None
        conn.sock.settimeout(None)
        return conn
    except (OSError, http.client.HTTPException):
        conn.close()
        return None


def alive(conns):
    p = select.poll()
    for c in conns:
        p.register(c.sock.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    gone = {fd for fd, _ in p.poll(0)}
    return sum(1 for c in conns if c.sock.fileno() not in gone)


def close_all(conns):
    linger = struct.pack("ii", 1, 0)
    for c in conns:
        try:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        except OSError:
            pass
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--host", help="Host header (default: the URL's host:port)")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--deadline", type=float, default=120.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    host = a.host or urlsplit(a.url).netloc

    conns, failed = [], 0
    t0 = time.monotonic()
    while len(conns) < a.count and failed < 100 and time.monotonic() - t0 < a.deadline:
        c = open_one(a.port, a.url, host, a.timeout)
        if c is None:
            failed += 1
        else:
            conns.append(c)
    print(f"open {len(conns)} failed {failed} seconds {time.monotonic() - t0:.1f}", flush=True)
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "check":
                print(f"alive {alive(conns)}", flush=True)
            elif cmd == "quit":
                break
    finally:
        close_all(conns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
