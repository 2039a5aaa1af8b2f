"""The proxyd command line (issue 2): -t -c FILE checks a configuration (0
good, non-zero with file:line errors), -v prints the version, -h the usage;
every shipped conf/ file and Debian's stock squid.conf pass -t."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import pdtest
from pdtest import run_proxyd

GOOD = """\
http_port 127.0.0.1:3128
workers 2
visible_hostname check.test
access_log stdout
read_timeout 2 seconds
via off
forwarded_for delete
http_access allow all
"""


class ToolsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="pdtest-tools-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_good_config(self):
        r = run_proxyd("-t", "-c", self.write("good.conf", GOOD))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_bad_config(self):
        path = self.write("bad.conf", GOOD + "\nthis_is_no_directive foo\n")
        r = run_proxyd("-t", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"bad\.conf:10:", "error must name file:line")

    def test_check_bad_value(self):
        path = self.write("badval.conf", "http_port 127.0.0.1:3128\nworkers many\n")
        r = run_proxyd("-t", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"badval\.conf:2:")

    def test_check_include_error_names_included_file(self):
        self.write("inc.conf", "via on\nbogus_word 1\n")
        path = self.write("main.conf", "http_port 127.0.0.1:3128\ninclude %s\n" % os.path.join(self.dir, "inc.conf"))
        r = run_proxyd("-t", "-c", path)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, r"inc\.conf:2:")

    def test_check_missing_file(self):
        r = run_proxyd("-t", "-c", os.path.join(self.dir, "absent.conf"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("absent.conf", r.stderr)

    def test_unsupported_squid_directive_is_warning(self):
        path = self.write("warn.conf", GOOD + "coredump_dir /var/spool/squid\n")
        r = run_proxyd("-t", "-c", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"warn\.conf:9:.*warning")

    def test_version(self):
        r = run_proxyd("-v")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout + r.stderr, r"proxyd.*\d+\.\d+\.\d+")

    def test_help(self):
        r = run_proxyd("-h")
        self.assertEqual(r.returncode, 0)
        out = r.stdout + r.stderr
        self.assertRegex(out.lower(), r"usage")
        for opt in ("-c", "-t", "-v", "-h"):
            self.assertIn(opt, out)

    def test_unknown_option(self):
        r = run_proxyd("--no-such-option")
        self.assertNotEqual(r.returncode, 0)

    def test_shipped_configs_pass(self):
        confs = sorted(glob.glob(os.path.join(pdtest.source_dir(), "conf", "*.conf")))
        if not confs:
            self.skipTest("no conf/*.conf in the source tree yet")
        for path in confs:
            with self.subTest(conf=os.path.basename(path)):
                r = run_proxyd("-t", "-c", path)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_debian_squid_conf_passes(self):
        conf = os.environ.get("PDTEST_SQUID_CONF", "/etc/squid/squid.conf")
        if not os.path.exists(conf):
            self.skipTest("%s not present (Debian's squid package installs it)" % conf)
        r = run_proxyd("-t", "-c", conf)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertFalse(re.search(r"squid\.conf:\d+: (?!warning)", r.stderr), r.stderr[-3000:])
    def test_unreadable_config_names_the_fix(self):
        # a file readable by its owner only, checked by another user (as the
        # .deb's proxyd user or the image's uid 10001 would): refused with the
        # uid/gid and what to change, for the top file and for an include
        if os.geteuid() != 0:
            self.skipTest("needs root to check as another user")
        os.chmod(self.dir, 0o755)
        inc = self.write("private.conf", "workers 1\n")
        top = self.write("top.conf", GOOD)
        main = self.write("main.conf", "http_port 127.0.0.1:3128\ninclude %s\n" % inc)
        for path in (inc, top, main):
            os.chmod(path, 0o644)
        for path in (inc, top):
            os.chmod(path, 0o600)
        for path, where in ((top, re.escape(top) + ": cannot read: "),
                            (main, re.escape(main) + ":2: include: cannot read '")):
            r = subprocess.run([pdtest.proxyd_bin(), "-t", "-c", path], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=pdtest.DEFAULT_TIMEOUT,
                               user=65534, group=65534, extra_groups=[])
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stderr, where + r".*Permission denied \(proxyd runs as uid 65534, "
                             r"gid 65534: make the file readable by that user, e\.g\. chmod 644")
        # the fix the message names works
        for path in (inc, top):
            os.chmod(path, 0o644)
        for path in (top, main):
            r = subprocess.run([pdtest.proxyd_bin(), "-t", "-c", path], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=pdtest.DEFAULT_TIMEOUT,
                               user=65534, group=65534, extra_groups=[])
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    pdtest.main()
