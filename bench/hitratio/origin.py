#!/usr/bin/python3
"""The origin of bench/hitratio/replay: serves any object of a trace on 127.0.0.1.

    origin.py [--max-size BYTES] [--workdir DIR]

Binds 127.0.0.1 on a port the kernel picks and prints it on the first line of stdout.
GET /o/<id>/<size> answers 200 with <size> bytes (a fixed pattern) and
`Cache-Control: max-age=86400`, keep-alive; sizes above --max-size are refused with 400.
GET /stats answers the counters as JSON: requests and body bytes of /o/ requests since start.
Runs until SIGTERM or SIGINT. asyncio protocol-level (no streams) for speed, Python standard
library only.
"""
import argparse
import asyncio
import email.utils
import json
import os
import signal
import socket
import sys
import time

# Date matters: without it Squid takes every stored response as stale (TCP_REFRESH_MODIFIED).
HEAD = (b"HTTP/1.1 200 OK\r\nDate: %s\r\nContent-Type: application/octet-stream\r\n"
        b"Cache-Control: max-age=86400\r\nLast-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
        b"Content-Length: %d\r\n\r\n")


class Clock:
    """The Date header's value, formatted once per second."""
    sec, text = -1, b""

    @classmethod
    def now(cls):
        t = int(time.time())
        if t != cls.sec:
            cls.sec, cls.text = t, email.utils.formatdate(t, usegmt=True).encode()
        return cls.text


class Counters:
    requests = 0
    bytes = 0


class Origin(asyncio.Protocol):
    def __init__(self, body, max_size):
        self.body, self.max_size, self.buf, self.t = body, max_size, b"", None

    def connection_made(self, transport):
        self.t = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.t.close()
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1] if len(line) == 3 else b""
            if path.startswith(b"http://"):
                path = b"/" + path.split(b"/", 3)[3]
            self.respond(line[0], path)

    def respond(self, method, path):
        parts = path.split(b"/")
        if path == b"/stats":
            body = json.dumps({"requests": Counters.requests, "bytes": Counters.bytes}).encode()
            self.t.write(b"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            return
        if len(parts) == 4 and parts[1] == b"o" and parts[2].isdigit() and parts[3].isdigit():
            size = int(parts[3])
            if size <= self.max_size:
                Counters.requests += 1
                Counters.bytes += size
                self.t.write(HEAD % (Clock.now(), size))
                if method != b"HEAD":
                    self.t.write(self.body[:size])
                return
        self.t.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                     b"Cache-Control: no-store\r\n\r\n")


async def serve(max_size):
    loop = asyncio.get_running_loop()
    body = memoryview(bytes(i * 7 % 251 for i in range(max_size)))
    server = await loop.create_server(lambda: Origin(body, max_size), "127.0.0.1", 0,
                                      backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-size", type=int, default=4 * 1024 * 1024)
    ap.add_argument("--workdir", help="directory to run in (names the run in ps)")
    args = ap.parse_args()
    if args.workdir:
        os.chdir(args.workdir)
    asyncio.run(serve(args.max_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
