"""A real browser through proxyd (issue 2): headless Chromium (Debian's
chromium package) loads a page with images and a script from a scripted
origin, then a form POST, all through proxyd. The origin's name exists only
in the test DNS server that proxyd uses, so the browser cannot reach it
except through the proxy; the DOM Chromium dumps and the origin's records
(each request with proxyd's Via) are checked."""

import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

import pdtest
from pdtest import Reply

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTNAME = "www.pdtest.example"


def png(width, height, rgb):
    """A valid RGB PNG of one colour (zlib + CRCs from the stdlib)."""
    def chunk(kind, data):
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


PAGE = b"""<!DOCTYPE html>
<html><head><title>proxyd e2e</title><script src="/static/app.js"></script></head>
<body>
<h1>through proxyd</h1>
<img id="red" src="/img/red.png" alt="red"><img id="blue" src="/img/blue.png?v=2" alt="blue">
<div id="status">script did not run</div>
<form id="f" method="post" action="/submit">
<input name="who" value="chromium"><input name="images" id="images" value="none">
<textarea name="text">a &amp; b = c</textarea>
</form>
</body></html>
"""

SCRIPT = b"""window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++)
    if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  var s = document.getElementById('status');
  s.textContent = 'script ran; images loaded: ' + ok + '/' + imgs.length;
  var w = document.getElementById('red');
  s.setAttribute('data-red-width', String(w.naturalWidth));
  document.getElementById('images').value = ok + '/' + imgs.length;
  if (location.hash === '#submit') document.getElementById('f').submit();
});
"""


def result_page(req):
    body = b"<!DOCTYPE html><html><body><p id='method'>" + req.method.encode() + b"</p><p id='posted'>" + \
        req.body.replace(b"&", b"&amp;").replace(b"<", b"&lt;") + b"</p></body></html>"
    return Reply(body=body, headers=[("Content-Type", "text/html; charset=utf-8")])


@unittest.skipUnless(CHROMIUM, "chromium is not installed (apt-get install -y chromium)")
class BrowserTest(pdtest.ProxyTestCase):
    def setUp(self):
        super().setUp()
        self.o = self.origin()
        self.o.route("/page", lambda q: Reply(body=PAGE, headers=[("Content-Type", "text/html; charset=utf-8")]))
        # the script and one image are chunked, the other image has a length
        self.o.route("/static/app.js", lambda q: Reply(chunks=[SCRIPT[:50], SCRIPT[50:]],
                                                       headers=[("Content-Type", "application/javascript")]))
        self.o.route("/img/red.png", lambda q: Reply(body=png(7, 5, (255, 0, 0)), headers=[("Content-Type", "image/png")]))
        self.o.route("/img/blue.png", lambda q: Reply(chunks=[png(3, 3, (0, 0, 255))], headers=[("Content-Type", "image/png")]))
        self.o.route("/submit", result_page)
        self.o.route("/favicon.ico", lambda q: Reply(404, body=b"none"))
        self.d = self.dns({HOSTNAME: ("127.0.0.1", 300)})
        self.p = self.proxy(workers=2, dns=self.d)

    def chromium(self, url):
        profile = tempfile.mkdtemp(prefix="pdtest-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--user-data-dir=" + profile,
               "--proxy-server=http://127.0.0.1:%d" % self.p.port, "--proxy-bypass-list=<-loopback>",
               "--virtual-time-budget=10000", "--dump-dom", url]
        env = dict(os.environ, HOME=profile)
        r = subprocess.run(cmd, capture_output=True, timeout=90, env=env)
        self.assertEqual(r.returncode, 0, r.stderr.decode("utf-8", "replace")[-2000:])
        return r.stdout.decode("utf-8", "replace")

    def assert_all_through_proxy(self):
        reqs = self.o.snapshot()
        self.assertTrue(reqs)
        for q in reqs:
            self.assertRegex(q.get("via") or "", r"1\.1 pdtest\.local \(proxyd/", "%r came without proxyd's Via" % q)
            self.assertEqual(q.get("host"), "%s:%d" % (HOSTNAME, self.o.port))
            self.assertEqual(q.get("x-forwarded-for"), "127.0.0.1")
        self.assertNoOriginErrors(self.o)

    def test_page_images_script(self):
        dom = self.chromium("http://%s:%d/page" % (HOSTNAME, self.o.port))
        self.assertIn("<h1>through proxyd</h1>", dom)
        self.assertIn("script ran; images loaded: 2/2", dom)
        self.assertIn('data-red-width="7"', dom)
        paths = [q.target for q in self.o.snapshot()]
        for want in ("/page", "/static/app.js", "/img/red.png", "/img/blue.png?v=2"):
            self.assertIn(want, paths)
        self.assert_all_through_proxy()
        self.assertGreaterEqual(self.d.queries(HOSTNAME), 1)

    def test_form_post(self):
        dom = self.chromium("http://%s:%d/page#submit" % (HOSTNAME, self.o.port))
        self.assertIn("<p id=\"method\">POST</p>", dom)
        self.assertIn("who=chromium&amp;images=2%2F2&amp;text=a+%26+b+%3D+c", dom)
        posts = self.o.requests_for("/submit")
        self.assertEqual(len(posts), 1)
        self.assertEqual(posts[0].method, "POST")
        self.assertEqual(posts[0].get("content-type"), "application/x-www-form-urlencoded")
        self.assertEqual(posts[0].body, b"who=chromium&images=2%2F2&text=a+%26+b+%3D+c")
        self.assert_all_through_proxy()


if __name__ == "__main__":
    pdtest.main()
