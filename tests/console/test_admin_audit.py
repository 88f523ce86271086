"""test_admin_audit.py — the administrator's and the auditor's views of the
console (docs/console-admin.md; threats F05, F06, F07, F10, F17).

A real deployment (medtrustd without broker or devices: these pages read
the registry, the users, the store and the audit chain), one manifest
imported, two patients — one on a ward named with a <script> — one of them
assigned a device, and console users made with `medtrust user add`.  The
deployment's conf sets `console_reauth_s 2`, so that a change made three
seconds after the password was last given must go through /reauth.

What is shown, each by a check that fails when the property is missing:
  - an admin adds a user in the console; the one-time password on the
    answer page signs in; the audit chain has user.add (actor user:<admin>)
    and nowhere the password; reset and wards work and are audited (F10);
  - a clinician and an auditor get 403 on /admin and on POST /admin/users,
    audited as console.forbidden, and nothing is added (F10);
  - a POST without or with a wrong CSRF token is 403 and adds nothing (F05);
  - an admin change 3 s after the password redirects to /reauth and adds
    nothing; a wrong password there is 401, audited and counted; the right
    one returns to /admin/users and the change then goes through (F10);
  - the auditor's /audit verifies the chain ("verified"), lists those
    records newest first, filters narrow it (action, outcome, days), bad
    filters are 400 without echoing them (F07); /audit/security lists
    console.forbidden and console.lockout; POST /audit is 405 and the
    chain neither shrinks nor breaks (F17);
  - a ward and a patient named with <script> render escaped (F06).
"""
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
import telemetry_util as T  # noqa: E402
from console_util import DeploymentCli  # noqa: E402
from test_console import Browser, csrf_of  # noqa: E402

XSS_WARD = "Ward <script>alert(1)</script>"
XSS_NAME = "<script>alert(2)</script>"
REAUTH_S = 2


class AdminAudit(DeploymentCli, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        # Administrators here sign in with the password alone: the second
        # factor they need by default is test_console.py's subject (F15).
        cls.d = d = T.Deployment("mt-admin-", hub_conf=["console_reauth_s %d" % REAUTH_S,
                                                         "console_admin_mfa optional"])
        try:
            cls.lot = d.make_lot("lot", 1, cls="bedside-monitor")
            cls.pid_ada = cls.cli_ok("patient", "add", "--name", "Ada Admin", "--mrn",
                                     "MRN-1001", "--ward", "Ward A", "--bed", "1").strip()
            cls.pid_xss = cls.cli_ok("patient", "add", "--name", XSS_NAME, "--mrn",
                                     "MRN-<b>2</b>", "--ward", XSS_WARD, "--bed",
                                     "2").strip()
            cls.cli_ok("patient", "assign", cls.lot[0], cls.pid_ada)
            cls.passwords = {}
            for name, role in (("boss", "admin"), ("boss2", "admin"), ("eve", "auditor"),
                               ("cara", "clinician"), ("victim", "biomed")):
                cls.passwords[name] = cls.cli_ok("user", "add", name, "--role", role).strip()
            d.start_hub()
        except Exception:
            d.cleanup()
            raise
        cls.ca = d.p("HUB", "pki", "ca.pem")
        cls.db = d.p("HUB", "medtrust.db")

    # ---- helpers ------------------------------------------------------------------------

    def browser(self):
        return Browser(self.d.hub_port, self.ca)

    def audit(self):
        r = subprocess.run([T.U.BIN, "audit", "tail", "--db", self.db, "-n", "5000"],
                           capture_output=True, env=self.d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        return text, [json.loads(x) for x in text.splitlines()]

    def users(self):
        return {u["name"]: u for u in map(json.loads, self.cli_ok("user", "list").splitlines())}

    def login(self, b, user, password):
        st, _, page = b.get("/login")
        self.assertEqual(st, 200, page)
        return b.post("/login", {"user": user, "password": password, "csrf": csrf_of(page)})

    def signed_in(self, name):
        """A browser of `name` (made by setUpClass) past the forced change;
        the chosen password is remembered for /reauth."""
        b = self.browser()
        pw = self.passwords[name]
        st, h, page = self.login(b, name, pw)
        self.assertEqual(st, 303, page)
        if h["Location"] == "/password":
            st, _, page = b.get("/password")
            new = "chosen-%s-Passw0rd!" % name
            st, h, page = b.post("/password", {"current": pw, "new": new, "repeat": new,
                                               "csrf": csrf_of(page)})
            self.assertEqual(st, 303, page)
            self.passwords[name] = new
        return b

    def reauth(self, b, name, password=None, expect=303):
        st, _, page = b.get("/reauth?next=/admin/users")
        self.assertEqual(st, 200, page)
        st, h, page = b.post("/reauth", {"password": password or self.passwords[name],
                                         "csrf": csrf_of(page), "next": "/admin/users"})
        self.assertEqual(st, expect, page)
        return st, h, page

    def admin_post(self, b, name, form):
        """POST /admin/users as admin `name`, re-authenticating when asked
        (console_reauth_s is 2 s here)."""
        for _ in range(4):
            st, _, page = b.get("/admin/users")
            self.assertEqual(st, 200, page)
            st, h, page = b.post("/admin/users", dict(form, csrf=csrf_of(page)))
            if st == 303 and h["Location"].startswith("/reauth"):
                self.reauth(b, name)
                continue
            return st, h, page
        self.fail("re-authentication did not stick")

    def rows(self, page):
        """(seq, actor, action, subject, outcome) of the audit table's rows."""
        out = []
        for m in re.finditer(r'<tr class="o-[a-z]+[^"]*" id="r(\d+)">(.*?)</tr>', page, re.S):
            cells = re.findall(r"<td>(.*?)</td>", m.group(2), re.S)
            strip = [re.sub(r"<[^>]+>", "", c) for c in cells]
            out.append((int(m.group(1)), strip[2], strip[3].replace("checkpoint ", ""),
                        strip[4], strip[5]))
        return out

    def forbidden_by(self, user, method):
        _, recs = self.audit()
        return [r for r in recs if r["action"] == "console.forbidden" and
                r["actor"] == "user:" + user and r["detail"].get("method") == method]

    # ---- F10: the administrator's changes -----------------------------------------------

    def test_F10_admin_adds_user_whose_one_time_password_signs_in(self):
        b = self.signed_in("boss")
        st, _, page = self.admin_post(b, "boss", {"op": "add", "name": "newbie",
                                                  "role": "clinician"})
        self.assertEqual(st, 200, page)
        m = re.search(r'<p class="otp"><code>([A-Za-z0-9]+)</code>', page)
        self.assertIsNotNone(m, page)
        otp = m.group(1)
        self.assertEqual(len(otp), 24)
        self.assertEqual(self.users()["newbie"]["role"], "clinician")
        # the one-time password signs in, forced to change it
        st, h, page = self.login(self.browser(), "newbie", otp)
        self.assertEqual(st, 303, page)
        self.assertEqual(h["Location"], "/password")
        text, recs = self.audit()
        self.assertTrue(any(r["action"] == "user.add" and r["subject"] == "newbie" and
                            r["actor"] == "user:boss" and r["outcome"] == "ok" and
                            r["detail"].get("role") == "clinician" for r in recs), text[-3000:])
        self.assertNotIn(otp, text)
        # the same name again: refused, audited as the CLI does
        st, _, page = self.admin_post(b, "boss", {"op": "add", "name": "newbie",
                                                  "role": "admin"})
        self.assertEqual(st, 409, page)
        _, recs = self.audit()
        self.assertTrue(any(r["action"] == "user.add.refused" and r["subject"] == "newbie" and
                            r["detail"].get("reason") == "exists" for r in recs))
        # a bad name: refused, nothing added
        st, _, page = self.admin_post(b, "boss", {"op": "add", "name": "Bad Name!",
                                                  "role": "admin"})
        self.assertEqual(st, 400, page)
        self.assertNotIn("Bad Name!", json.dumps(self.users()))
        # reset: a new one-time password that signs in, the old one no more
        st, _, page = self.admin_post(b, "boss", {"op": "reset", "name": "newbie"})
        self.assertEqual(st, 200, page)
        otp2 = re.search(r'<p class="otp"><code>([A-Za-z0-9]+)</code>', page).group(1)
        self.assertNotEqual(otp, otp2)
        self.assertEqual(self.login(self.browser(), "newbie", otp)[0], 401)
        self.assertEqual(self.login(self.browser(), "newbie", otp2)[0], 303)
        # wards, comma-separated, shown escaped
        st, h, page = self.admin_post(b, "boss", {"op": "wards", "name": "newbie",
                                                  "wards": " Ward A, " + XSS_WARD + ",,"})
        self.assertEqual(st, 303, page)
        self.assertEqual(sorted(self.users()["newbie"]["wards"]), sorted(["Ward A", XSS_WARD]))
        st, _, page = b.get("/admin/users")
        self.assertEqual(st, 200)
        self.assertIn("Ward &lt;script&gt;alert(1)&lt;/script&gt;", page)
        self.assertNotIn("<script>alert", page)
        text, recs = self.audit()
        self.assertTrue(any(r["action"] == "user.reset" and r["subject"] == "newbie" and
                            r["actor"] == "user:boss" for r in recs))
        self.assertTrue(any(r["action"] == "user.wards" and r["subject"] == "newbie" and
                            XSS_WARD in r["detail"].get("after", []) for r in recs))
        self.assertNotIn(otp2, text)

    def test_F10_clinician_and_auditor_are_forbidden(self):
        for name in ("cara", "eve"):
            b = self.signed_in(name)
            before = len(self.forbidden_by(name, "POST"))
            st, _, page = b.get("/admin")
            self.assertEqual(st, 403, page)
            st, _, page = b.get("/admin/users")
            self.assertEqual(st, 403, page)
            # their own session's token: still 403, nothing added
            st, _, home = b.get("/audit" if name == "eve" else "/ward")
            st, _, page = b.post("/admin/users", {"op": "add", "name": "sneaky-" + name,
                                                  "role": "admin", "csrf": csrf_of(home)})
            self.assertEqual(st, 403, page)
            self.assertNotIn("sneaky-" + name, self.users())
            self.assertEqual(len(self.forbidden_by(name, "POST")), before + 1)
            self.assertTrue(self.forbidden_by(name, "GET"))

    def test_F05_admin_post_without_or_with_a_wrong_csrf_is_403(self):
        b = self.signed_in("boss")
        self.reauth(b, "boss")  # so that only the token can be what refuses
        st, _, page = b.post("/admin/users", {"op": "add", "name": "nocsrf", "role": "admin"})
        self.assertEqual(st, 403, page)
        st, _, page = b.post("/admin/users", {"op": "add", "name": "nocsrf", "role": "admin",
                                              "csrf": "A" * 43})
        self.assertEqual(st, 403, page)
        self.assertNotIn("nocsrf", self.users())
        _, recs = self.audit()
        self.assertGreaterEqual(sum(1 for r in recs if r["action"] == "console.csrf.refused" and
                                    r["actor"] == "user:boss"), 2)
        self.assertFalse(any(r["subject"] == "nocsrf" for r in recs))

    def test_F10_admin_change_needs_recent_password(self):
        b = self.signed_in("boss2")
        st, _, page = b.get("/admin/users")
        token = csrf_of(page)
        time.sleep(REAUTH_S + 1)
        form = {"op": "add", "name": "late-add", "role": "biomed", "csrf": token}
        st, h, page = b.post("/admin/users", form)
        self.assertEqual(st, 303, page)
        self.assertEqual(h["Location"], "/reauth?next=/admin/users")
        self.assertNotIn("late-add", self.users())
        # a wrong password: refused, audited and counted toward the lockout
        st, _, page = self.reauth(b, "boss2", password="not-the-password", expect=401)
        with sqlite3.connect("file:%s?mode=ro" % self.db, uri=True) as c:
            failed = c.execute("SELECT failed FROM users WHERE name = 'boss2'").fetchone()[0]
        self.assertEqual(failed, 1)
        _, recs = self.audit()
        self.assertTrue(any(r["action"] == "console.reauth" and r["actor"] == "user:boss2" and
                            r["outcome"] == "refused" for r in recs))
        # the right one: back to the page, and the change goes through
        st, h, page = self.reauth(b, "boss2")
        self.assertEqual(h["Location"], "/admin/users")
        st, h, page = b.post("/admin/users", form)
        self.assertEqual(st, 200, page)
        self.assertIn("late-add", self.users())

    # ---- F17: the auditor ----------------------------------------------------------------

    def test_F17_auditor_reads_verifies_and_filters(self):
        # something to find: an admin's change, a forbidden page, a lockout
        admin = self.signed_in("boss")
        st, _, page = self.admin_post(admin, "boss", {"op": "add", "name": "audited-one",
                                                      "role": "auditor"})
        self.assertEqual(st, 200, page)
        self.assertEqual(self.signed_in("cara").get("/admin")[0], 403)
        for _ in range(5):
            self.assertIn(self.login(self.browser(), "victim", "wrong-password-x")[0],
                          (401, 429))
        b = self.signed_in("eve")
        st, _, page = b.get("/audit")
        self.assertEqual(st, 200, page)
        self.assertIn('class="chain verified"', page)
        self.assertIn("Verified,", page)
        self.assertIn("append-only", page)
        rows = self.rows(page)
        self.assertGreater(len(rows), 10)
        seqs = [r[0] for r in rows]
        self.assertEqual(seqs, sorted(seqs, reverse=True))
        self.assertTrue(any(r[2] == "user.add" and r[3] == "audited-one" for r in rows))
        # the action filter: only that action (a prefix)
        st, _, page = b.get("/audit?action=user.add")
        self.assertEqual(st, 200, page)
        rows = self.rows(page)
        self.assertTrue(rows)
        self.assertTrue(all(r[2].startswith("user.add") for r in rows), rows)
        self.assertTrue(any(r[3] == "audited-one" for r in rows))
        # actor and outcome
        st, _, page = b.get("/audit?actor=user%3Aboss&outcome=ok")
        self.assertEqual(st, 200, page)
        rows = self.rows(page)
        self.assertTrue(rows)
        self.assertTrue(all(r[1] == "user:boss" and r[4] == "ok" for r in rows), rows)
        # days (UTC): today has records, a day in 2000 none
        today = time.strftime("%Y-%m-%d", time.gmtime())
        st, _, page = b.get("/audit?from=%s&to=%s" % (today, today))
        self.assertEqual(st, 200, page)
        self.assertTrue(self.rows(page))
        st, _, page = b.get("/audit?from=2000-01-01&to=2000-01-02")
        self.assertEqual(st, 200, page)
        self.assertEqual(self.rows(page), [])
        # paging: before=<seq> shows older records only
        top = seqs[0]
        st, _, page = b.get("/audit?before=%d" % top)
        self.assertTrue(all(r[0] < top for r in self.rows(page)))
        # strict: bad filters are 400 and not echoed (F07)
        for q in ("action=%3Cscript%3Ex", "from=2025-02-30", "outcome=maybe", "bogus=1",
                  "bogus=", "actor=a&actor=b", "before=-1", "from=2025-01-02&to=2025-01-01"):
            st, _, page = b.get("/audit?" + q)
            self.assertEqual(st, 400, q)
            self.assertNotIn("script>x", page)
            self.assertNotIn("maybe", page)
        # the JSON form says the same
        st, _, body = b.get("/api/audit?action=user.add")
        self.assertEqual(st, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["verification"]["status"], "verified")
        self.assertTrue(doc["records"])
        self.assertTrue(all(r["action"].startswith("user.add") for r in doc["records"]))
        # the security events
        st, _, page = b.get("/audit/security")
        self.assertEqual(st, 200, page)
        actions = {r[2] for r in self.rows(page)}
        self.assertIn("console.forbidden", actions)
        self.assertIn("console.lockout", actions)
        self.assertNotIn("console.ward.view", actions)
        self.assertTrue(all(r[4] != "ok" or r[2].startswith(("console.", "user.", "device.",
                                                              "trust.", "client.", "crl.",
                                                              "manifest.", "deployment."))
                            for r in self.rows(page)))

    def test_F17_audit_has_no_write_route(self):
        b = self.signed_in("eve")
        _, before = self.audit()
        st, _, page = b.get("/audit")
        token = csrf_of(page)
        for path in ("/audit", "/audit/security", "/api/audit"):
            st, h, page = b.post(path, {"csrf": token, "delete": str(before[0]["seq"])})
            self.assertEqual(st, 405, path)
        _, after = self.audit()
        self.assertGreaterEqual(len(after), len(before))
        self.assertEqual(after[0], before[0])
        st, _, page = b.get("/audit")
        self.assertIn('class="chain verified"', page)
        r = subprocess.run([T.U.BIN, "audit", "verify", "--db", self.db, "--hub-pub",
                            self.d.p("HUB", "pki", "hub-audit.pub.pem"), "--checkpoints",
                            self.d.p("HUB", "audit.checkpoints")],
                           capture_output=True, env=self.d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- F08: SQL in the filters ------------------------------------------------------------

    def test_F08_sql_in_filters_is_data(self):
        """Every filter is a bound parameter: SQL in them matches nothing (or is
        refused as malformed), no database error text leaks, the chain is whole."""
        b = self.signed_in("eve")
        _, before = self.audit()
        payloads = ["' OR '1'='1", "x'; DROP TABLE audit; --", "\" OR 1=1 --",
                    "user.add%' OR 1=1 --", "') UNION SELECT * FROM users --"]
        for field in ("actor", "action"):
            for sql in payloads:
                q = urllib.parse.urlencode({field: sql})
                st, _, page = b.get("/audit?" + q)
                self.assertIn(st, (200, 400), (field, sql))
                if st == 200:
                    self.assertEqual(self.rows(page), [], (field, sql))
                for leak in ("SQLITE", "sqlite", "syntax error", "no such column"):
                    self.assertNotIn(leak, page)
                st, _, j = b.get("/api/audit?" + q)
                self.assertIn(st, (200, 400), (field, sql))
                if st == 200:
                    self.assertEqual(json.loads(j).get("records", []), [], j[:300])
        _, after = self.audit()
        self.assertGreaterEqual(len(after), len(before))
        self.assertEqual(after[0], before[0])
        st, _, page = b.get("/audit")
        self.assertIn('class="chain verified"', page)

    # ---- F06 and the read-only pages -----------------------------------------------------

    def test_F06_admin_pages_show_data_escaped(self):
        b = self.signed_in("boss")
        for path in ("/admin", "/admin/users", "/admin/wards", "/admin/patients",
                     "/admin/manufacturers", "/admin/integrations"):
            st, _, page = b.get(path)
            self.assertEqual(st, 200, path)
            self.assertNotIn("<script>alert", page, path)
        st, _, page = b.get("/admin/patients")
        self.assertIn("Ada Admin", page)
        self.assertIn("MRN-1001", page)
        self.assertIn(self.lot[0], page)
        self.assertIn("&lt;script&gt;alert(2)&lt;/script&gt;", page)
        self.assertIn("MRN-&lt;b&gt;2&lt;/b&gt;", page)
        self.assertIn("Ward &lt;script&gt;alert(1)&lt;/script&gt;", page)
        _, recs = self.audit()
        self.assertTrue(any(r["action"] == "console.patients.view" and
                            r["actor"] == "user:boss" for r in recs))
        st, _, page = b.get("/admin/wards")
        self.assertIn("Ward &lt;script&gt;alert(1)&lt;/script&gt;", page)
        self.assertIn("Ward A", page)
        st, _, page = b.get("/admin/manufacturers")
        self.assertIn("Acme Medical", page)
        self.assertRegex(page, r"<td>1</td><td>Acme Medical[^<]*</td>")
        st, _, page = b.get("/admin/integrations")
        self.assertIn("HL7", page)
        self.assertIn("Clients", page)
        # unknown pages, queries and methods
        self.assertEqual(b.get("/admin/nope")[0], 404)
        self.assertEqual(b.get("/admin/users?x=%3Cb%3E")[0], 400)
        self.assertEqual(b.post("/admin/wards", {"csrf": "x"})[0], 405)


if __name__ == "__main__":
    unittest.main(verbosity=2)
