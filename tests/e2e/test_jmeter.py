"""The study's client: Debian's JMeter runs bench/jmeter/study.jmx through proxyd (issue 17).

Debian 12's jmeter (2.13) loads no test plan with Debian 12's XStream; bench/jmeter/run-jmeter
(JMeterLauncher.java) makes it. The plan runs without the GUI, CLIENTS threads x REQUESTS GETs
of one object through proxyd to a local origin: every sample must be a 200, the origin must
have been asked (through proxyd: its Via), proxyd's access log must have a line per sample,
and bench/jmeter/summary.py (and its --loadgen form, what bench/run --client jmeter reads) must
count them. Skipped when java, jmeter or jmeter-http is missing (scripts/install-deps --test
installs them); label e2e;jmeter.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import pdtest
from pdtest import Reply

SRC = pdtest.source_dir()
RUN_JMETER = os.path.join(SRC, "bench", "jmeter", "run-jmeter")
PLAN = os.path.join(SRC, "bench", "jmeter", "study.jmx")
SUMMARY = os.path.join(SRC, "bench", "jmeter", "summary.py")
JMETER_HOME = os.environ.get("JMETER_HOME", "/usr/share/jmeter")
CLIENTS, REQUESTS = 2, 5
BODY = b"".join(b"jmeter object line %06d\n" % i for i in range(2000))  # 50 KB


def missing():
    if not shutil.which("java"):
        return "java not installed (default-jre-headless)"
    if not os.path.exists(os.path.join(JMETER_HOME, "bin", "ApacheJMeter.jar")):
        return "jmeter not installed"
    if not os.path.exists(os.path.join(JMETER_HOME, "lib", "ext", "ApacheJMeter_http.jar")):
        return "jmeter-http not installed"
    return None


@unittest.skipIf(missing(), missing())
class JMeterPlanTest(pdtest.ProxyTestCase):
    def test_study_plan_through_proxyd(self):
        o = self.origin()
        o.route("/obj", lambda req: Reply(200, BODY, headers=[("Cache-Control", "max-age=600")]))
        p = self.proxy(workers=1)
        out = tempfile.mkdtemp(prefix="pdtest-jmeter-")
        self.addCleanup(shutil.rmtree, out, True)
        jtl = os.path.join(out, "out.jtl")
        cmd = [RUN_JMETER, "-n", "-t", PLAN, "-Jclients=%d" % CLIENTS, "-Jrequests=%d" % REQUESTS,
               "-Jhost=127.0.0.1", "-Jport=%d" % o.port, "-Jpath=/obj",
               "-Jproxy_host=127.0.0.1", "-Jproxy_port=%d" % p.port,
               "-Jjmeter.save.saveservice.output_format=csv",
               "-Jjmeter.save.saveservice.print_field_names=true",
               "-l", jtl, "-j", os.path.join(out, "jmeter.log")]
        # bounded: JMeter's start-up is seconds; the 10 requests are milliseconds
        r = subprocess.run(cmd, cwd=out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=180)
        text = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, text[-3000:])
        self.assertNotIn("ForbiddenClassException", text)
        self.assertIn("Created the tree successfully", text, text[-3000:])
        self.assertTrue(os.path.exists(jtl), "no results file: " + text[-3000:])
        with open(jtl, newline="") as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), CLIENTS * REQUESTS, rows[:3])
        bad = [x for x in rows if x["success"] != "true" or x["responseCode"] != "200"]
        self.assertEqual(bad, [], "samples not 200: %s" % bad[:3])
        self.assertEqual({int(x["bytes"]) >= len(BODY) for x in rows}, {True})
        self.assertEqual(len({x["threadName"] for x in rows}), CLIENTS)

        # the origin was asked through proxyd; the rest came from its cache
        reqs = o.requests_for("/obj")
        self.assertGreaterEqual(len(reqs), 1)
        self.assertLess(len(reqs), CLIENTS * REQUESTS, "nothing was served from proxyd's cache")
        self.assertIn("pdtest.local", reqs[0].get("Via") or "", "origin request without proxyd's Via")
        lines = p.wait_access_lines(CLIENTS * REQUESTS)
        url = o.url("/obj")
        self.assertEqual(len([l for l in lines if url in l and "/200 " in l]), CLIENTS * REQUESTS, lines)
        self.assertTrue(any("TCP_MEM_HIT" in l or "TCP_HIT" in l for l in lines), lines)

        # the study's summary, and what bench/run --client jmeter hands to bench/lib/stats.py
        s = subprocess.run([sys.executable, SUMMARY, jtl, "--json"], stdout=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(s.returncode, 0)
        res = json.loads(s.stdout)
        self.assertEqual((res["samples"], res["errors"], res["threads"]),
                         (CLIENTS * REQUESTS, 0, CLIENTS))
        self.assertGreater(res["time_per_req_ms"], 0)
        prefix = os.path.join(out, "lg-0")
        s = subprocess.run([sys.executable, SUMMARY, jtl, "--loadgen", prefix, "--clients",
                            str(CLIENTS), "--requests", str(REQUESTS)], stdout=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(s.returncode, 0)
        with open(prefix + ".json") as f:
            lg = json.load(f)
        self.assertEqual((lg["clients"], lg["ok"], lg["errors"], lg["not_run"]),
                         (CLIENTS, CLIENTS * REQUESTS, 0, 0))
        self.assertGreaterEqual(lg["bytes"], CLIENTS * REQUESTS * len(BODY))
        with open(prefix + ".csv", newline="") as f:
            lgrows = list(csv.DictReader(f))
        self.assertEqual([x["result"] for x in lgrows], ["ok"] * (CLIENTS * REQUESTS))
        m = subprocess.run([sys.executable, os.path.join(SRC, "bench", "lib", "stats.py"), "merge",
                            out], stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(m.returncode, 0)
        merged = m.stdout.decode().strip().split(",")
        self.assertEqual((merged[7], merged[8]), (str(CLIENTS * REQUESTS), "0"), merged)


if __name__ == "__main__":
    pdtest.main()
