"""A real Squid next to proxyd, for the tests that need one (test_peers, test_icp):
started in the foreground (-N) on a free 127.0.0.1 port with a generated configuration
and the test's own lines, its access log read back, stopped by pid."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile

import pdtest

HOST = "127.0.0.1"


class _PortTaken(Exception):
    """Squid could not bind a port of its configuration."""


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
        self.conf = os.path.join(self.dir, "squid.conf")
        self.cache_log = os.path.join(self.dir, "cache.log")
        self.access_log = os.path.join(self.dir, "access.log")
        self.proc = None
        # Squid goes on without a port it cannot bind (commBind logs it): a port
        # taken meanwhile by another test is tried again with new ones
        for _ in range(3):
            self.port = pdtest.unused_port()
            listen = "http_port %s:%d\n" % (HOST, self.port) + self.listen_lines()
            self.http_ports = re.findall(r"^http_port (\S+)$", listen, re.M)
            with open(self.conf, "w") as f:
                f.write(listen +
                        "pid_filename %s/squid.pid\n" % self.dir +
                        "cache_log %s\n" % self.cache_log +
                        "access_log stdio:%s\n" % self.access_log +
                        "cache_mem 8 MB\nshutdown_lifetime 0 seconds\n"
                        "visible_hostname squid.test\nhttp_access allow all\n" + extra)
            self.proc = subprocess.Popen(["squid", "-N", "-f", self.conf],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                pdtest.wait_until(self._ready, timeout=30, what="squid listening")
                return
            except _PortTaken:
                self._kill()
                os.unlink(self.cache_log)
            except BaseException:
                self.stop()
                raise
        self.stop()
        raise AssertionError("squid: its ports were taken three times in a row")

    def listen_lines(self):
        return ""

    def _log(self):
        try:
            with open(self.cache_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _ready(self):
        log = self._log()
        if "Cannot bind socket" in log:
            raise _PortTaken()
        if self.proc.poll() is not None:
            raise AssertionError("squid exited: " + log[-2000:])
        # listening on every http_port: its own line, not just a port that answers
        # (which could be another test's server)
        if not all(re.search(r"Accepting HTTP Socket connections at .* local=%s " % re.escape(a),
                             log) for a in self.http_ports):
            return False
        # Squid logs that line as its acceptor job is started; listen() comes a moment later
        try:
            for a in self.http_ports:
                host, port = a.rsplit(":", 1)
                socket.create_connection((host, int(port)), timeout=1).close()
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

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def stop(self):
        self._kill()
        shutil.rmtree(self.dir, True)
