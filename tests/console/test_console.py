"""test_console.py — the web console of medtrustd, driven like a browser
(docs/console.md; threats F01–F07, F16).

A real deployment: medtrustd, its broker, two bedside monitors onboarding
themselves and streaming readings through the simulator, two patients
(one of them named `<script>alert(1)</script>`) assigned to them with the
CLI, and console users made with `medtrust user add`.  The client is
Python's http.client over TLS, trusting only the deployment's CA; it keeps
cookies the way a browser does (Set-Cookie in, Cookie out, Max-Age=0
deletes).

What is shown, each by a check that fails when the property is missing:
  - `user add` prints a one-time password (and only that) on stdout;
    `user list` never prints a hash; the audit record never holds the
    password;
  - sign-in with it is forced through a password change (F02: short or
    unchanged refused) before /ward, which then shows the patient's name
    and MRN, decrypted, and a heart-rate value from the simulator;
  - the session cookie is HttpOnly, Secure, SameSite=Strict, Path=/ (F04);
    a new session id at sign-in and at a password change (F03); after
    sign-out the old cookie is refused (F04);
  - wrong credentials: 401 and one generic sentence, the same for an
    unknown name; an audit record console.login refused naming the user,
    without the password (F01);
  - 5 failures lock the account: refused even with the right password,
    audited as console.lockout; an unknown name locks alike; `user reset`
    unlocks (F01);
  - POST without or with a wrong CSRF token: 403, nothing changes (F05);
  - every console answer carries the CSP, nosniff, no-referrer, no-store,
    X-Frame-Options DENY and HSTS (F06, F16);
  - the patient named <script> appears escaped, never as markup (F06);
    nothing from the URL is reflected (F07);
  - without a session /ward and / redirect to /login;
  - form bodies are bounded (413), strictly parsed (400), of one type (415).
"""
import base64
import http.client
import json
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
import telemetry_util as T  # noqa: E402
from console_util import secret_on_page, totp_code  # noqa: E402
from console_util import DeploymentCli, start_streaming  # noqa: E402

CSP = ("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
       "img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
XSS = "<script>alert(1)</script>"
WARDS = ("Ward A", "Ward <b>B</b>")
OTP_ALPHABET = set("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789")
GENERIC = "The user name, password or code is wrong."


class Browser:
    """Cookies in, cookies out; one TLS connection per request."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.jar = {}

    def request(self, method, path, form=None, body=None, ctype=None, cookies=None):
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx,
                                           timeout=60)
        headers = {}
        jar = self.jar if cookies is None else cookies
        if jar:
            headers["Cookie"] = "; ".join("%s=%s" % kv for kv in jar.items())
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            ctype = ctype or "application/x-www-form-urlencoded"
        if ctype:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        conn.close()
        for sc in r.headers.get_all("Set-Cookie") or []:
            name, _, rest = sc.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in sc:
                self.jar.pop(name, None)
            else:
                self.jar[name] = value
        return r.status, r.headers, text

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form, **kw):
        return self.request("POST", path, form=form, **kw)


def csrf_of(page):
    m = re.search(r'name="csrf" value="([A-Za-z0-9_-]+)"', page)
    return m.group(1) if m else None


def set_cookie(headers, name):
    for sc in headers.get_all("Set-Cookie") or []:
        if sc.startswith(name + "="):
            return sc
    return None


class Console(DeploymentCli, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        cls.d = d = T.Deployment("mt-console-")
        try:
            cls.lot = d.make_lot("lot", 2, cls="bedside-monitor")
            cls.pid_ada = cls.cli_ok("patient", "add", "--name", "Ada Console", "--mrn",
                                     "MRN-4471", "--ward", "Ward A", "--bed", "1").strip()
            cls.pid_xss = cls.cli_ok("patient", "add", "--name", XSS, "--mrn", "MRN-<i>9</i>",
                                     "--ward", "Ward <b>B</b>", "--bed", "2").strip()
            cls.cli_ok("patient", "assign", cls.lot[0], cls.pid_ada)
            cls.cli_ok("patient", "assign", cls.lot[1], cls.pid_xss)
            start_streaming(d, ["--batch-ms", "1000", "--scenario", "stable"])
        except Exception:
            d.cleanup()
            raise
        cls.ca = d.p("HUB", "pki", "ca.pem")

    def browser(self):
        return Browser(self.d.hub_port, self.ca)

    def audit(self):
        r = subprocess.run([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"),
                            "-n", "2000"], capture_output=True, env=self.d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode(), [json.loads(x) for x in r.stdout.decode().splitlines()]

    def add_user(self, name, role="clinician"):
        return self.cli_ok("user", "add", name, "--role", role).strip()

    def login(self, b, user, password, expect=None, code=None):
        st, h, page = b.get("/login")
        self.assertEqual(st, 200, page)
        form = {"user": user, "password": password, "csrf": csrf_of(page)}
        if code is not None:
            form["code"] = code
        st, h, page = b.post("/login", form)
        if expect is not None:
            self.assertEqual(st, expect, page)
        return st, h, page

    def signed_in(self, name, role="clinician"):
        """A browser signed in as a new user who has chosen a password; a
        clinician is given both wards of the deployment."""
        otp = self.add_user(name, role)
        if role == "clinician":
            self.cli_ok("user", "wards", name, *WARDS)
        b = self.browser()
        st, h, _ = self.login(b, name, otp, 303)
        self.assertEqual(h["Location"], "/password")
        st, _, page = b.get("/password")
        new = "chosen-" + name + "-Passw0rd!"
        st, h, page = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                           "csrf": csrf_of(page)})
        self.assertEqual(st, 303, page)
        return b, new

    # ---- users from the CLI ----------------------------------------------------------

    def test_user_add_prints_one_time_password_only(self):
        r = self.cli("user", "add", "carol", "--role", "biomed")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertEqual(out.count("\n"), 1, out)
        pw = out.strip()
        self.assertGreaterEqual(len(pw), 20)
        self.assertTrue(set(pw) <= OTP_ALPHABET, pw)
        # taken name: refused, exit 2, nothing on stdout
        r = self.cli("user", "add", "carol", "--role", "admin")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, b"")
        r = self.cli("user", "add", "Carol!", "--role", "admin")
        self.assertEqual(r.returncode, 64)
        r = self.cli("user", "add", "dave", "--role", "superuser")
        self.assertEqual(r.returncode, 64)
        r = self.cli("user", "reset", "nobody-here")
        self.assertEqual(r.returncode, 2)
        listing = self.cli_ok("user", "list")
        users = {u["name"]: u for u in map(json.loads, listing.splitlines())}
        self.assertEqual(users["carol"], {"name": "carol", "role": "biomed",
                                          "must_change": True, "locked": False, "totp": False,
                                          "wards": []})
        self.assertNotIn("argon2", listing)
        self.assertNotIn(pw, listing)
        text, recs = self.audit()
        self.assertTrue(any(x["action"] == "user.add" and x["subject"] == "carol" and
                            x["actor"].startswith("cli:") for x in recs))
        self.assertTrue(any(x["action"] == "user.add.refused" and x["subject"] == "carol"
                            for x in recs))
        self.assertNotIn(pw, text)
        # the hash is argon2id with the interactive parameters
        with sqlite3.connect("file:%s?mode=ro" % self.d.p("HUB", "medtrust.db"),
                             uri=True) as c:
            h = c.execute("SELECT hash FROM users WHERE name = 'carol'").fetchone()[0]
        self.assertTrue(h.startswith("$argon2id$v=19$m=65536,t=2,p=1$"), h)

    # ---- sign-in, forced change, the ward ------------------------------------------------

    def test_F02_F03_F04_signin_forced_change_and_ward(self):
        otp = self.add_user("ward-nurse", "clinician")
        self.cli_ok("user", "wards", "ward-nurse", *WARDS)
        b = self.browser()
        attacker = "A" * 43
        b.jar["mt_session"] = attacker  # a session id planted before sign-in (F03)
        st, h, page = self.login(b, "ward-nurse", otp, 303)
        self.assertEqual(h["Location"], "/password")
        sc = set_cookie(h, "mt_session")
        self.assertIsNotNone(sc)
        for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            self.assertIn(flag, sc)
        first = b.jar["mt_session"]
        self.assertNotEqual(first, attacker)
        self.assertTrue(re.fullmatch(r"[A-Za-z0-9_-]{43}", first), first)
        # the planted id is nobody's session
        st, h, _ = self.browser().get("/ward", cookies={"mt_session": attacker})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        # nothing but the password page before the change
        st, h, _ = b.get("/ward")
        self.assertEqual((st, h["Location"]), (303, "/password"))
        st, h, page = b.get("/password")
        self.assertEqual(st, 200)
        self.assertIn("one-time password", page)
        token = csrf_of(page)
        # F02: too short, and unchanged
        st, _, page = b.post("/password", {"current": otp, "new": "short-pw", "repeat":
                                           "short-pw", "csrf": token})
        self.assertEqual(st, 400)
        self.assertIn("at least 12 characters", page)
        st, _, page = b.post("/password", {"current": otp, "new": otp, "repeat": otp,
                                           "csrf": token})
        self.assertEqual(st, 400)
        self.assertIn("differ from the current", page)
        st, _, page = b.post("/password", {"current": otp, "new": "password1234",
                                           "repeat": "password1234", "csrf": token})
        self.assertEqual(st, 400)
        st, _, page = b.post("/password", {"current": "not-the-otp-at-all", "new":
                                           "a-good-passphrase-1", "repeat":
                                           "a-good-passphrase-1", "csrf": token})
        self.assertEqual(st, 401)
        new = "a-good-passphrase-1"
        st, h, page = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                           "csrf": token})
        self.assertEqual((st, h["Location"]), (303, "/ward"), page)
        second = b.jar["mt_session"]
        self.assertNotEqual(second, first)  # a new id for the new password
        st, h, _ = self.browser().get("/ward", cookies={"mt_session": first})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        # the one-time password is spent; the new one works
        st, _, _ = self.login(self.browser(), "ward-nurse", otp, 401)
        st, h, _ = self.login(self.browser(), "ward-nurse", new, 303)
        self.assertEqual(h["Location"], "/ward")
        # the ward: names and MRNs decrypted, devices, a heart rate from the simulator
        deadline = time.monotonic() + 120
        hr = None
        while time.monotonic() < deadline:
            st, h, page = b.get("/ward")
            self.assertEqual(st, 200, page)
            tile = re.search(r'<article class="tile[^"]*" id="p%s".*?</article>' % self.pid_ada,
                             page)
            self.assertIsNotNone(tile, page)
            tile = tile.group(0)
            self.assertIn('<span class="bed">1</span> <span class="name">Ada Console</span> '
                          '<span class="mrn">MRN-4471</span>', tile)
            m = re.search(r'<span data-c="147842 149530" data-p="0">(\d+)</span>', tile)
            if m:
                hr = int(m.group(1))
                break
            time.sleep(2)
        self.assertIsNotNone(hr, "no heart rate on the ward page:\n" + page)
        self.assertTrue(25 <= hr <= 250, hr)
        # kept current by the live stream (a script of the hub's own, no inline code)
        self.assertIn('<script src="/static/ward.js" defer></script>', page)
        # temperature with its one decimal (clinical.md §1)
        self.assertRegex(tile, r'<span data-c="150364" data-p="1">\d\d\.\d</span>')
        # the patient page lists the device
        st, _, ppage = b.get("/patient/%s" % self.pid_ada)
        self.assertEqual(st, 200, ppage)
        self.assertIn(self.lot[0], ppage)
        text, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.login" and x["outcome"] == "ok" and
                            x["subject"] == "ward-nurse" and
                            x["detail"].get("source") == "127.0.0.1" for x in recs))
        self.assertTrue(any(x["action"] == "console.password" and x["outcome"] == "ok" and
                            x["subject"] == "ward-nurse" for x in recs))
        self.assertTrue(any(x["action"] == "console.ward.view" and
                            x["actor"] == "user:ward-nurse" for x in recs))
        for secret in (otp, new):
            self.assertNotIn(secret, text)

    def test_F04_logout_ends_the_session(self):
        b, _ = self.signed_in("leaver")
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200)
        old = b.jar["mt_session"]
        st, h, _ = b.post("/logout", {"csrf": csrf_of(page)})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        self.assertIn("Max-Age=0", set_cookie(h, "mt_session"))
        self.assertNotIn("mt_session", b.jar)
        st, h, _ = self.browser().get("/ward", cookies={"mt_session": old})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        st, h, _ = self.browser().get("/password", cookies={"mt_session": old})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.logout" and x["subject"] == "leaver"
                            for x in recs))

    def test_without_a_session_redirects_to_login(self):
        b = self.browser()
        for path in ("/ward", "/", "/password"):
            st, h, _ = b.get(path)
            self.assertEqual((st, h["Location"]), (303, "/login"), path)
        st, h, _ = b.post("/logout", {"csrf": "x"})
        self.assertEqual((st, h["Location"]), (303, "/login"))
        st, h, _ = b.get("/ward", cookies={"mt_session": "not-a-token"})
        self.assertEqual((st, h["Location"]), (303, "/login"))

    # ---- brute force ------------------------------------------------------------------------

    def test_F01_wrong_password_is_401_generic_and_audited(self):
        self.add_user("nurse1")
        st, _, page = self.login(self.browser(), "nurse1", "Wrong-Password-123", 401)
        self.assertIn(GENERIC, page)
        st, _, page2 = self.login(self.browser(), "no-such-user", "Wrong-Password-123", 401)
        self.assertIn(GENERIC, page2)
        text, recs = self.audit()
        refused = [x for x in recs if x["action"] == "console.login" and
                   x["outcome"] == "refused" and x["subject"] == "nurse1"]
        self.assertTrue(refused, text[-2000:])
        self.assertEqual(refused[-1]["detail"]["reason"], "bad_credentials")
        self.assertEqual(refused[-1]["detail"]["source"], "127.0.0.1")
        self.assertEqual(refused[-1]["detail"]["user"], "nurse1")
        self.assertNotIn("Wrong-Password-123", text)

    def test_F01_five_failures_lock_even_the_right_password(self):
        otp = self.add_user("lockme")
        codes = [self.login(self.browser(), "lockme", "bad-guess-%d-xxxx" % i)[0]
                 for i in range(5)]
        self.assertEqual(codes, [401, 401, 401, 401, 429])
        st, _, page = self.login(self.browser(), "lockme", otp)
        self.assertEqual(st, 429, page)
        self.assertIn("Too many failed sign-ins", page)
        users = {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}
        self.assertTrue(users["lockme"]["locked"])
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.lockout" and x["subject"] == "lockme"
                            for x in recs))
        self.assertTrue(any(x["action"] == "console.login" and x["subject"] == "lockme" and
                            x["detail"].get("reason") == "locked" for x in recs))
        # an unknown name locks the same way: the lockout tells no names
        codes = [self.login(self.browser(), "ghost-user", "bad-guess-%d-xxxx" % i)[0]
                 for i in range(6)]
        self.assertEqual(codes, [401, 401, 401, 401, 429, 429])
        # an administrator's reset unlocks
        fresh = self.cli_ok("user", "reset", "lockme").strip()
        self.assertNotEqual(fresh, otp)
        st, h, _ = self.login(self.browser(), "lockme", fresh, 303)
        self.assertEqual(h["Location"], "/password")
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "user.reset" and x["subject"] == "lockme" and
                            x["detail"].get("unlocked") is True for x in recs))

    # ---- second factor (TOTP) -----------------------------------------------------------------

    def test_totp_second_factor_required_counted_and_not_replayable(self):
        _, pw = self.signed_in("twofa")
        out = self.cli_ok("user", "totp", "twofa")
        uri, secret_line = out.splitlines()[:2]
        self.assertTrue(uri.startswith("otpauth://totp/medtrust:twofa?secret="), uri)
        self.assertIn("&issuer=medtrust&algorithm=SHA1&digits=6&period=30", uri)
        secret = secret_line.split(": ", 1)[1]
        self.assertEqual(uri.split("secret=", 1)[1].split("&", 1)[0], secret)
        key = base64.b32decode(secret + "=" * (-len(secret) % 8))
        self.assertEqual(len(key), 32)

        def code(t):  # RFC 6238 with Python's own HMAC, not medtrust's
            return totp_code(secret, t)

        users = {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}
        self.assertTrue(users["twofa"]["totp"])
        # the password alone no longer signs in; neither does a wrong code
        st, _, page = self.login(self.browser(), "twofa", pw, 401)
        self.assertIn(GENERIC, page)
        now = time.time()
        wrong = "%06d" % ((int(code(now)) + 1) % 1000000)
        st, _, page = self.login(self.browser(), "twofa", pw, 401, code=wrong)
        self.assertIn(GENERIC, page)
        # two steps away (a minute old) is refused
        self.login(self.browser(), "twofa", pw, 401, code=code(now - 65))
        # the right code signs in ...
        good = code(time.time())
        st, h, _ = self.login(self.browser(), "twofa", pw, 303, code=good)
        self.assertEqual(h["Location"], "/ward")
        # ... once: the same code again is a replay
        self.login(self.browser(), "twofa", pw, 401, code=good)
        # failures count like wrong passwords: the replay was the first after
        # the success cleared the count, four more make five and lock
        codes = [self.login(self.browser(), "twofa", pw, code=wrong)[0] for _ in range(4)]
        self.assertEqual(codes, [401, 401, 401, 429])
        st, _, page = self.login(self.browser(), "twofa", pw, code=code(time.time() + 30))
        self.assertEqual(st, 429, page)
        text, recs = self.audit()
        self.assertTrue(any(x["action"] == "user.totp" and x["subject"] == "twofa" and
                            x["detail"].get("second_factor") is True for x in recs))
        self.assertTrue(any(x["action"] == "console.lockout" and x["subject"] == "twofa"
                            for x in recs))
        self.assertNotIn(secret, text)
        self.assertNotIn(good, text)
        # --off: the password alone again, after an administrator's unlock
        self.cli_ok("user", "totp", "twofa", "--off")
        fresh = self.cli_ok("user", "reset", "twofa").strip()
        st, h, _ = self.login(self.browser(), "twofa", fresh, 303)
        self.assertEqual(h["Location"], "/password")
        r = self.cli("user", "totp", "no-such-user")
        self.assertEqual(r.returncode, 2, r.stderr)

    # ---- CSRF --------------------------------------------------------------------------------

    def test_F05_post_without_or_with_a_wrong_csrf_token_is_403(self):
        b, _ = self.signed_in("csrf-user")
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200)
        good = csrf_of(page)
        st, _, _ = b.post("/logout", {})
        self.assertEqual(st, 403)
        st, _, _ = b.post("/logout", {"csrf": "B" * 43})
        self.assertEqual(st, 403)
        st, _, _ = b.post("/password", {"current": "x", "new": "y" * 12, "repeat": "y" * 12})
        self.assertEqual(st, 403)
        st, _, _ = b.get("/ward")
        self.assertEqual(st, 200)  # the session survived: nothing was done
        # sign-in: the double-submit pair must match
        b2 = self.browser()
        st, _, page = b2.get("/login")
        token = csrf_of(page)
        st, _, _ = b2.post("/login", {"user": "csrf-user", "password": "whatever-123456"})
        self.assertEqual(st, 403)
        st, _, _ = b2.post("/login", {"user": "csrf-user", "password": "whatever-123456",
                                      "csrf": token}, cookies={})
        self.assertEqual(st, 403)  # no cookie half
        st, _, _ = b2.post("/login", {"user": "csrf-user", "password": "whatever-123456",
                                      "csrf": good})
        self.assertEqual(st, 403)  # a token of another kind
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.csrf.refused" for x in recs))

    # ---- who sees what (F09, F10) ------------------------------------------------------------

    def test_F09_clinician_sees_only_their_wards_patients_also_by_url(self):
        otp = self.add_user("ward-a-only", "clinician")
        self.cli_ok("user", "wards", "ward-a-only", "Ward A")
        b = self.browser()
        self.login(b, "ward-a-only", otp, 303)
        st, _, page = b.get("/password")
        new = "ward-a-only-Passw0rd!"
        st, h, _ = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                        "csrf": csrf_of(page)})
        self.assertEqual((st, h["Location"]), (303, "/ward"))
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200)
        self.assertIn('id="p%s"' % self.pid_ada, page)
        self.assertNotIn('id="p%s"' % self.pid_xss, page)
        self.assertNotIn("MRN-&lt;i&gt;9", page)
        # the other ward's patient by direct URL: the answer of a patient that does not exist
        st, _, other = b.get("/patient/%s" % self.pid_xss)
        st2, _, none = b.get("/patient/999999")
        self.assertEqual((st, st2), (404, 404))
        self.assertNotIn("MRN-&lt;i&gt;9", other)
        self.assertEqual(other.split("<main>")[1], none.split("<main>")[1])
        st, _, j = b.get("/api/patient/%s/series?window=900" % self.pid_xss)
        self.assertEqual(st, 404, j)
        # their own patient: the page and its series (readings from the simulator)
        st, _, page = b.get("/patient/%s" % self.pid_ada)
        self.assertEqual(st, 200)
        self.assertIn("<h1>Ada Console</h1>", page)
        self.assertIn('<script src="/static/uPlot.min.js" defer></script>', page)
        deadline = time.monotonic() + 60
        while True:
            st, h, j = b.get("/api/patient/%s/series?window=900" % self.pid_ada)
            self.assertEqual((st, h["Content-Type"]), (200, "application/json"), j)
            series = json.loads(j)
            if "147842" in series["obs"] or "149530" in series["obs"]:
                break
            self.assertLess(time.monotonic(), deadline, j)
            time.sleep(2)
        hr = series["obs"].get("147842") or series["obs"]["149530"]
        self.assertEqual(len(hr[0]), len(hr[1]))
        self.assertTrue(all(25 <= v <= 250 for v in hr[1]), hr[1])
        self.assertEqual(hr[0], sorted(hr[0]))
        for bad in ("window=60", "window=900&x=1", "", "window=%3Cscript%3E"):
            st, _, j = b.get("/api/patient/%s/series?%s" % (self.pid_ada, bad))
            self.assertEqual(st, 400, bad)
            self.assertNotIn("<script", j)
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.forbidden" and
                            x["actor"] == "user:ward-a-only" and
                            x["detail"].get("patient") == int(self.pid_xss) for x in recs))

    def test_F10_each_role_only_its_own_pages(self):
        pages = {"clinician": "/ward", "biomed": "/fleet", "admin": "/admin",
                 "auditor": "/audit"}
        for role, home in pages.items():
            b, _ = self.signed_in("role-" + role, role)
            if role == "admin":  # an administrator sets up a second factor first (F15)
                self.enrol_totp(b)
            st, h, _ = b.get("/")
            self.assertEqual((st, h["Location"]), (303, home), role)
            for other_role, other in pages.items():
                if other_role == role or (role == "admin" and other == "/audit"):
                    continue
                st, _, page = b.get(other)
                self.assertEqual(st, 403, "%s on %s" % (role, other))
                self.assertIn("Your role may not open this page.", page)
            if role not in ("clinician",):
                st, _, _ = b.get("/patient/%s" % self.pid_ada)
                self.assertEqual(st, 403, role)
            if role in ("admin", "auditor"):
                st, _, _ = b.get("/api/stream")
                self.assertEqual(st, 403, role)
        # a clinician posting to a biomed or admin action: 403, audited
        b, _ = self.signed_in("role-clin2")
        st, _, page = b.get("/ward")
        for path in ("/fleet/%s/revoke" % self.lot[0], "/admin/users"):
            st, _, _ = b.post(path, {"csrf": csrf_of(page)})
            self.assertEqual(st, 403, path)
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.forbidden" and x["actor"] ==
                            "user:role-clin2" and x["detail"].get("method") == "POST"
                            for x in recs))

    def enrol_totp(self, b):
        """An administrator's first stop: /totp, confirmed with a code."""
        st, h, _ = b.get("/")
        self.assertEqual((st, h["Location"]), (303, "/totp"))
        st, _, page = b.get("/totp")
        self.assertEqual(st, 200, page)
        secret = secret_on_page(page)
        st, h, page = b.post("/totp", {"code": totp_code(secret, time.time()),
                                       "csrf": csrf_of(page)})
        self.assertEqual((st, h.get("Location")), (303, "/admin"), page)
        return secret

    def test_F15_admin_second_factor_enforced_and_not_skippable(self):
        b, pw = self.signed_in("mfa-admin", "admin")
        # nothing but the enrolment page until it is done, also by direct URL
        for path in ("/admin", "/admin/users", "/audit", "/"):
            st, h, _ = b.get(path)
            self.assertEqual((st, h["Location"]), (303, "/totp"), path)
        st, _, j = b.get("/api/audit")
        self.assertEqual(st, 403, j)
        st, _, page = b.get("/totp")
        secret = secret_on_page(page)
        self.assertIsNotNone(secret, page)
        self.assertIn("otpauth://totp/medtrust:mfa-admin?secret=" + secret, page)
        # the same key on a reload (kept in the session until confirmed)
        self.assertEqual(secret_on_page(b.get("/totp")[2]), secret)
        wrong = "%06d" % ((int(totp_code(secret, time.time())) + 1) % 1000000)
        st, _, page = b.post("/totp", {"code": wrong, "csrf": csrf_of(page)})
        self.assertEqual(st, 400, page)
        st, _, page = b.post("/totp", {"code": totp_code(secret, time.time())})
        self.assertEqual(st, 403, page)  # no CSRF token, nothing stored
        users = {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}
        self.assertFalse(users["mfa-admin"]["totp"])
        st, _, page = b.get("/totp")
        st, h, page = b.post("/totp", {"code": totp_code(secret, time.time()),
                                       "csrf": csrf_of(page)})
        self.assertEqual((st, h.get("Location")), (303, "/admin"), page)
        users = {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}
        self.assertTrue(users["mfa-admin"]["totp"])
        # the step is not skippable: the password alone makes no session at all
        nb = self.browser()
        st, h, page = self.login(nb, "mfa-admin", pw, 401)
        self.assertNotIn("mt_session", nb.jar)
        st, h, _ = nb.get("/admin")
        self.assertEqual((st, h["Location"]), (303, "/login"))
        time.sleep(31 - time.time() % 30)  # the enrolment's step is spent
        st, h, _ = self.login(nb, "mfa-admin", pw, 303, code=totp_code(secret, time.time()))
        self.assertEqual(h["Location"], "/admin")
        text, recs = self.audit()
        self.assertTrue(any(x["action"] == "user.totp" and x["subject"] == "mfa-admin" and
                            x["detail"].get("via") == "console" for x in recs))
        self.assertTrue(any(x["action"] == "user.totp.refused" and
                            x["subject"] == "mfa-admin" for x in recs))
        self.assertNotIn(secret, text)

    def test_F15_one_time_password_expires_and_is_single_use(self):
        otp = self.add_user("late-starter")
        # made 73 hours ago (the store's clock moved back: no waiting three days)
        with sqlite3.connect(self.d.p("HUB", "medtrust.db")) as db:
            db.execute("UPDATE users SET updated_at = updated_at - 73 * 3600 WHERE name = ?",
                       ("late-starter",))
        st, _, page = self.login(self.browser(), "late-starter", otp, 401)
        self.assertIn("This one-time password has expired.", page)
        users = {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}
        self.assertFalse(users["late-starter"]["locked"])
        _, recs = self.audit()
        self.assertTrue(any(x["action"] == "console.login" and x["subject"] == "late-starter"
                            and x["detail"].get("reason") == "one_time_expired" for x in recs))
        # a reset gives a fresh one, which signs in once
        otp2 = self.cli_ok("user", "reset", "late-starter").strip()
        b = self.browser()
        st, h, _ = self.login(b, "late-starter", otp2, 303)
        self.assertEqual(h["Location"], "/password")
        st, _, page = b.get("/password")
        new = "late-starter-Passw0rd!"
        st, h, _ = b.post("/password", {"current": otp2, "new": new, "repeat": new,
                                        "csrf": csrf_of(page)})
        self.assertEqual(st, 303)
        self.login(self.browser(), "late-starter", otp2, 401)
        self.login(self.browser(), "late-starter", otp, 401)

    def test_static_files_are_the_hubs_own(self):
        b = self.browser()
        for name, ctype in (("console.js", "text/javascript"), ("ward.js", "text/javascript"),
                            ("patient.js", "text/javascript"), ("uPlot.min.js", "text/javascript"),
                            ("uPlot.min.css", "text/css"), ("console.css", "text/css")):
            st, h, body = b.get("/static/" + name)
            self.assertEqual(st, 200, name)
            self.assertEqual(h["Content-Type"], ctype + "; charset=utf-8")
            self.assertGreater(len(body), 100)
        st, _, body = b.get("/static/uPlot.min.js")
        self.assertIn("uPlot", body)
        for bad in ("/static/../medtrust.conf", "/static/nothing.js", "/static/"):
            st, _, _ = b.get(bad)
            self.assertEqual(st, 404, bad)
        st, _, _ = b.post("/static/console.js", {"a": "b"})
        self.assertEqual(st, 405)

    # ---- headers and escaping -------------------------------------------------------------------

    def test_F06_F16_security_headers_on_every_answer(self):
        b, _ = self.signed_in("headers-user")
        answers = [b.get("/ward"), b.get("/login"), b.get("/static/console.css"),
                   b.get("/no-such-page"), self.browser().get("/ward"),
                   b.post("/logout", {"csrf": "wrong"})]
        for st, h, _ in answers:
            self.assertEqual(h["Content-Security-Policy"], CSP)
            self.assertEqual(h["X-Content-Type-Options"], "nosniff")
            self.assertEqual(h["Referrer-Policy"], "no-referrer")
            self.assertEqual(h["Cache-Control"], "no-store")
            self.assertEqual(h["X-Frame-Options"], "DENY")
            self.assertTrue(h["Strict-Transport-Security"].startswith("max-age="))
        self.assertEqual(answers[2][1]["Content-Type"], "text/css; charset=utf-8")
        self.assertEqual(answers[3][0], 404)
        # no inline script, event handler or style anywhere: only the hub's own files
        for _, _, page in answers:
            self.assertIsNone(re.search(r"<script(?![^>]*\bsrc=\"/static/[a-zA-Z.]+\")", page),
                              page)
            self.assertIsNone(re.search(r"\son[a-z]+=", page), page)
            self.assertNotIn("style=", page)

    def test_F06_F07_data_and_urls_are_inert(self):
        b, _ = self.signed_in("xss-user")
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", page)
        self.assertIn("Ward &lt;b&gt;B&lt;/b&gt;", page)
        self.assertIn("MRN-&lt;i&gt;9&lt;/i&gt;", page)
        self.assertNotIn(XSS, page)
        self.assertNotIn("<b>B</b>", page)
        # nothing from the URL comes back (F07)
        st, _, page = b.get("/ward?q=%3Cscript%3Ealert(2)%3C/script%3E")
        self.assertEqual(st, 400)
        self.assertNotIn("alert(2)", page)
        st, _, page = b.get("/%3Cscript%3Ealert(3)%3C/script%3E")
        self.assertEqual(st, 404)
        self.assertNotIn("alert(3)", page)

    # ---- bounded, strict input -----------------------------------------------------------------------

    def test_form_bodies_bounded_strict_and_typed(self):
        b = self.browser()
        st, _, page = b.get("/login")
        token = csrf_of(page)
        big = "user=a&password=" + "x" * 5000 + "&csrf=" + token
        st, _, _ = b.request("POST", "/login", body=big.encode(),
                             ctype="application/x-www-form-urlencoded")
        self.assertEqual(st, 413)
        for bad in ("user=a&&csrf=" + token, "user=%zz&csrf=" + token,
                    "user=a&user=b&csrf=" + token, "user=a%00b&csrf=" + token,
                    "user=<x>&csrf=" + token):
            st, _, _ = b.request("POST", "/login", body=bad.encode(),
                                 ctype="application/x-www-form-urlencoded")
            self.assertEqual(st, 400, bad)
        st, _, _ = b.request("POST", "/login", body=b'{"user":"a"}', ctype="application/json")
        self.assertEqual(st, 415)
        st, _, _ = b.request("PUT", "/login", body=b"")
        self.assertEqual(st, 405)

    # ---- last: the device-offline hint (clinical.md §3) -----------------------------------------

    def test_zz_device_offline_marker(self):
        b, _ = self.signed_in("night-nurse")
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200)
        self.assertNotIn("no data for", page)
        self.d.kill("sim")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(5)
            st, _, page = b.get("/ward")
            self.assertEqual(st, 200)
            m = re.search(r'<p class="fresh" data-fresh>no data for (\d+) s</p>', page)
            if m:
                self.assertGreaterEqual(int(m.group(1)), 60)
                break
        else:
            self.fail("no 'no data' marker 120 s after the simulator stopped:\n" + page)
        # the last values stay on the page, with their times
        self.assertRegex(page, r'<span data-c="147842 149530" data-p="0">\d+</span>')
        self.assertRegex(page, r'<article class="tile stale"')


if __name__ == "__main__":
    unittest.main(verbosity=2)
