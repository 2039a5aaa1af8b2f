#!/usr/bin/env python3
"""A scripted origin for the slow (deployment) tests.

Listens on 127.0.0.1 (or argv[4]; port from argv[1], 0 = any), writes the port it got to
the file argv[2] once listening, and answers every GET with a small cacheable
body that names the path (after N seconds for /slow/N, to test draining), counting the requests it served in argv[2] + ".count".
It exits by itself after argv[3] seconds (default 900), so a killed test never
leaves it behind for long.
"""
import http.server
import os
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with Handler.lock:
            Handler.count += 1
            tmp = COUNT_FILE + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % Handler.count)
            os.replace(tmp, COUNT_FILE)
        # counted first: a test waits for the count to know the request is here
        if self.path.startswith("/slow/"):
            try:
                time.sleep(min(float(self.path[6:]), 30.0))
            except ValueError:
                pass
        body = ("origin says hello for %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=600")
        self.send_header("X-Origin", "proxyd-slow-test")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    port_file = sys.argv[2]
    COUNT_FILE = port_file + ".count"
    lifetime = float(sys.argv[3]) if len(sys.argv) > 3 else 900.0
    host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    srv.daemon_threads = True
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, port_file)
    threading.Timer(lifetime, srv.shutdown).start()
    srv.serve_forever()
