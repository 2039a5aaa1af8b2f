"""A real Squid next to proxyd, for the tests that need one (test_peers, test_icp):
started in the foreground (-N) on a free 127.0.0.1 port with a generated configuration
and the test's own lines, its access log read back, stopped by pid."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile

import pdtest

HOST = "127.0.0.1"


def free_port(kind=socket.SOCK_STREAM, host=HOST):
    """A port of host that nothing uses (bound then released)."""
    s = socket.socket(socket.AF_INET, kind)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def lines_for(log_owner, url):
    """The access log lines of log_owner (a Proxy or a Squid) for url."""
    return [l for l in log_owner.access_lines() if len(l.split()) > 6 and l.split()[6] == url]


class Squid:
    """A real Squid caching in memory (cache_mem 8 MB) on HOST:port, -N, stopped by pid.
    extra: configuration lines after the generated ones. A subclass adds its own listening
    lines (listen_lines) and readiness checks (_ready)."""

    def __init__(self, extra=""):
        self.dir = tempfile.mkdtemp(prefix="pdtest-squid-")
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.conf = os.path.join(self.dir, "squid.conf")
        self.access_log = os.path.join(self.dir, "access.log")
        with open(self.conf, "w") as f:
            f.write("http_port %s:%d\n" % (HOST, self.port) + self.listen_lines() +
                    "pid_filename %s/squid.pid\n" % self.dir +
                    "cache_log %s/cache.log\n" % self.dir +
                    "access_log stdio:%s\n" % self.access_log +
                    "cache_mem 8 MB\nshutdown_lifetime 0 seconds\n"
                    "visible_hostname squid.test\nhttp_access allow all\n" + extra)
        self.proc = subprocess.Popen(["squid", "-N", "-f", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pdtest.wait_until(self._ready, timeout=30, what="squid listening")
        except BaseException:
            self.stop()
            raise

    def listen_lines(self):
        return ""

    def _ready(self):
        if self.proc.poll() is not None:
            log = open(os.path.join(self.dir, "cache.log")).read()
            raise AssertionError("squid exited: " + log[-2000:])
        try:
            socket.create_connection((HOST, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def access_lines(self):
        try:
            with open(self.access_log) as f:
                return [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def lines_for(self, url):
        return lines_for(self, url)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, True)
