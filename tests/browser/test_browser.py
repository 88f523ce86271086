"""test_browser.py — the web console in a real browser: headless Chromium
(Debian's chromium and chromium-driver, driven by python3-selenium)
against a real deployment (docs/console.md; threats F01, F04, F05, F06,
F09, F10, F12).

The deployment: medtrustd, its broker, four onboarded devices whose
packets the test seals and publishes itself (so it knows each value it
waits for), two more streaming through the simulator, five patients — four
on "Ward A", one on "Ward B", one named with markup — and console users of
each role.  Every page is loaded by Chromium with the hub's own CSP in
force; the test fails on any CSP refusal or script error in the page's
console.

What is shown, each by an assertion that could fail:
  - a clinician signs in and sees the tiles of their ward's patients and
    not the other ward's, not even by typing the patient's URL (F09); a
    value changes on the tile while the page stays loaded (the live
    stream); an alarm appears flashing on the ward of one nurse and on the
    patient page of another; one acknowledges it and both show it
    acknowledged, without a reload (F12);
  - the broken-stream marker: the stream is cut (the hub stopped with
    SIGSTOP) and the page says so within 20 s, then recovers by itself;
  - a biomedical engineer revokes a device from the fleet page (confirmed,
    re-authenticated when the password is old) and sees it marked revoked;
    its readings stop;
  - an auditor sees the revocation, the acknowledgement and the refusals in
    the audit chain, verified;
  - attacks: a patient name with markup renders as text and runs nothing
    (F06); a cross-site form post and a same-site post without the CSRF
    token are refused, nothing changes (F05); a clinician calling a biomed
    or admin endpoint gets 403 (F10); the sixth wrong password locks the
    account, even against the right one (F01); a session cookie copied
    before sign-out is refused after it (F04).
Screenshots of every view are kept in <build>/test-artefacts/browser/.
"""
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
sys.path.insert(0, os.path.join(HERE, "..", "console"))
sys.path.insert(0, os.path.join(HERE, "..", "clinical"))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import browser_util as B  # noqa: E402
import telemetry_util as T  # noqa: E402
from console_util import DeploymentCli  # noqa: E402
import test_alarms  # noqa: E402  (its packet builders; not its tests)
from test_ingest_threats import AttackerTools, onboard, wait_connected  # noqa: E402

MARKUP = '<img src=x onerror="window.__pwned=1">Eve'
PW = "browser-test-Passw0rd!"


class BrowserConsole(DeploymentCli, AttackerTools, unittest.TestCase):
    CLI_TIMEOUT = 60
    CLI_STRIP = True

    vitals = test_alarms.ClinicalAlarms.vitals
    alert = test_alarms.ClinicalAlarms.alert

    @classmethod
    def setUpClass(cls):
        why = T.missing_tools() or B.missing()
        if why:
            raise unittest.SkipTest(why)
        d = cls.d = T.Deployment("mt-browser-")
        cls.drivers = []
        try:
            cls.devs = d.make_lot("lot", 4, prefix="brw")
            cls.simdevs = d.make_lot("simlot", 2, cls="bedside-monitor", prefix="brs")
            d.start_hub()
            d.start_broker()
            wait_connected(d, timeout=20)
            onboard(d, "lot", cls.devs)
            cls.pid = {}
            plan = [("Ada Browser", "Ward A", cls.devs[0]), (MARKUP, "Ward A", cls.devs[1]),
                    ("Bob Otherward", "Ward B", cls.devs[2]),
                    ("Cy Streaming", "Ward A", cls.simdevs[0]),
                    ("Di Streaming", "Ward A", cls.simdevs[1])]
            for i, (name, ward, dev) in enumerate(plan):
                pid = cls.cli_ok("patient", "add", "--name", name, "--mrn", "MRN-B%d" % i,
                                 "--ward", ward, "--bed", str(i + 1))
                cls.pid[dev] = int(pid)
                cls.cli_ok("patient", "assign", dev, pid)
            d.start_sim("sim", "simlot", ["--batch-ms", "1000", "--scenario", "stable"])
            cls.otp = {}
            for name, role, wards in (("nurse", "clinician", ["Ward A"]),
                                      ("nurse2", "clinician", ["Ward A"]),
                                      ("locknurse", "clinician", ["Ward A"]),
                                      ("biomed", "biomed", []), ("auditor", "auditor", []),
                                      ("admin", "admin", [])):
                cls.otp[name] = cls.cli_ok("user", "add", name, "--role", role).split()[-1]
                if wards:
                    cls.cli_ok("user", "wards", name, *wards)
        except BaseException:
            d.cleanup()
            raise
        cls.base = "https://localhost:%d" % d.hub_port
        cls.shots = os.path.join(os.path.dirname(T.U.BIN), "test-artefacts", "browser")
        os.makedirs(cls.shots, exist_ok=True)
        cls.signed = {}

    @classmethod
    def tearDownClass(cls):
        for drv in cls.drivers:
            try:
                drv.quit()
            except Exception:
                pass
        cls.d.cleanup()

    # -- tools --

    def browser(self):
        drv = B.chrome()
        self.drivers.append(drv)
        return drv

    def as_user(self, name):
        """A Chrome signed in as `name` (the first time through the forced
        password change)."""
        drv = self.browser()
        if name not in self.signed:
            url = B.sign_in(drv, self.base, name, self.otp[name], PW)
            self.signed[name] = True
        else:
            url = B.sign_in(drv, self.base, name, PW)
        self.assertNotIn("/login", url, drv.page_source[-2000:])
        return drv

    def shot(self, drv, name):
        path = os.path.join(self.shots, name + ".png")
        drv.save_screenshot(path)
        print("screenshot: %s" % path)

    def clean(self, drv):
        """No CSP refusal, no script error on the page so far."""
        self.assertEqual(B.severe_logs(drv), [])

    def audit(self):
        r = T.U.sh([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"), "-n",
                    "5000"], env=self.d.env())
        return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]

    def tile(self, drv, dev):
        from selenium.webdriver.common.by import By
        return drv.find_element(By.ID, "p%d" % self.pid[dev])

    def hr_of(self, drv, dev):
        from selenium.webdriver.common.by import By
        return self.tile(drv, dev).find_element(By.CSS_SELECTOR, '[data-c~="147842"]').text

    # -- the clinician ------------------------------------------------------------------
    def test_1_clinician_ward_live_values_and_acknowledge_everywhere_F09_F12(self):
        from selenium.webdriver.common.by import By
        dev, ddir = self.dev(0)
        nurse = self.as_user("nurse")
        self.assertTrue(nurse.current_url.endswith("/ward"), nurse.current_url)
        tiles = {int(t.get_attribute("data-patient"))
                 for t in nurse.find_elements(By.CSS_SELECTOR, "article.tile")}
        ward_a = {self.pid[x] for x in (self.devs[0], self.devs[1]) + tuple(self.simdevs)}
        self.assertEqual(tiles, ward_a)  # Ward B's patient is not there (F09)
        self.assertNotIn("Bob Otherward", nurse.page_source)
        B.wait_for(nurse, lambda d: d.find_element(By.ID, "live").text == "Live", 15,
                   "the live marker")
        self.shot(nurse, "clinician-ward")
        # by direct URL: the other ward's patient is not found
        other = self.browser()
        B.sign_in(other, self.base, "nurse", PW)
        other.get(self.base + "/patient/%d" % self.pid[self.devs[2]])
        self.assertIn("Not found", other.title)
        self.assertNotIn("Bob Otherward", other.page_source)
        self.shot(other, "clinician-other-ward-by-url")
        other.quit()
        # a value changes live: the page is not reloaded
        nurse.execute_script("window.__same_page = 42;")
        ctr = 10
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, ctr, hr=77))])
        B.wait_for(nurse, lambda d: self.hr_of(d, dev) == "77", 20, "HR 77 on the tile")
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, ctr + 1, hr=93))])
        B.wait_for(nurse, lambda d: self.hr_of(d, dev) == "93", 20, "HR 93 on the tile")
        self.assertEqual(nurse.execute_script("return window.__same_page;"), 42)
        # an alarm: the ward of one nurse, the patient page of another
        nurse2 = self.as_user("nurse2")
        nurse2.get(self.base + "/patient/%d" % self.pid[dev])
        B.wait_for(nurse2, lambda d: d.find_element(By.ID, "live").text == "Live", 15)
        B.wait_for(nurse2, lambda d: d.find_elements(By.CSS_SELECTOR, ".chart canvas"), 20,
                   "the charts")
        self.inject(ddir, [self.seal(ddir, self.alert(dev, ctr + 2), fast=True)], leaf="alert")
        sel = ".alarm.p-high:not(.acked)"
        B.wait_for(nurse, lambda d: self.tile(d, dev).find_elements(By.CSS_SELECTOR, sel), 20,
                   "a flashing alarm on the ward")
        B.wait_for(nurse2, lambda d: d.find_elements(By.CSS_SELECTOR, sel), 20,
                   "a flashing alarm on the patient page")
        anim = nurse.execute_script(
            "return getComputedStyle(arguments[0]).animationName;",
            self.tile(nurse, dev).find_element(By.CSS_SELECTOR, sel))
        self.assertEqual(anim, "flash-high")  # IEC 60601-1-8: high priority flashes
        self.shot(nurse, "clinician-ward-alarm")
        self.shot(nurse2, "clinician-patient-alarm")
        self.tile(nurse, dev).find_element(By.CSS_SELECTOR, sel + " button.ack").click()
        for drv in (nurse, nurse2):
            B.wait_for(drv, lambda d: d.find_elements(By.CSS_SELECTOR, ".alarm.p-high.acked"), 20,
                       "acknowledged on every screen")
        self.assertIn("acknowledged by nurse", nurse2.find_element(
            By.CSS_SELECTOR, ".alarm.p-high.acked").text)
        anim = nurse2.execute_script(
            "return getComputedStyle(arguments[0]).animationName;",
            nurse2.find_element(By.CSS_SELECTOR, ".alarm.p-high.acked"))
        self.assertEqual(anim, "none")  # acknowledged: lit, not flashing
        self.shot(nurse, "clinician-ward-acknowledged")
        self.shot(nurse2, "clinician-patient-acknowledged")
        with self.d.db() as c:
            st = c.execute("SELECT state, acked_by FROM alarms WHERE dev = ? AND "
                           "cond = 'device:1001'", (dev,)).fetchall()
        self.assertEqual(st, [("acknowledged", "nurse")])
        self.clean(nurse)
        self.clean(nurse2)

    def test_2_broken_stream_is_shown_and_recovers(self):
        from selenium.webdriver.common.by import By
        nurse = self.as_user("nurse")
        B.wait_for(nurse, lambda d: d.find_element(By.ID, "live").text == "Live", 15)
        self.d.send("hub", signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            B.wait_for(nurse, lambda d: d.find_element(By.ID, "broken").is_displayed(), 25,
                       "the broken-stream warning")
            took = time.monotonic() - t0
            self.shot(nurse, "clinician-stream-broken")
        finally:
            self.d.send("hub", signal.SIGCONT)
        print("stream stalled -> warning shown after %.1f s" % took)
        self.assertLessEqual(took, 20)
        self.assertEqual(nurse.find_element(By.ID, "live").text, "Live updates lost")
        B.wait_for(nurse, lambda d: not d.find_element(By.ID, "broken").is_displayed(), 30,
                   "the stream back")
        self.assertEqual(nurse.find_element(By.ID, "live").text, "Live")

    # -- attacks ----------------------------------------------------------------------------
    def test_3a_F06_markup_in_a_name_is_text(self):
        from selenium.webdriver.common.by import By
        nurse = self.as_user("nurse")
        tile = self.tile(nurse, self.devs[1])
        self.assertEqual(tile.find_element(By.CSS_SELECTOR, ".name").text, MARKUP)
        self.assertEqual(tile.find_elements(By.CSS_SELECTOR, "img"), [])
        nurse.get(self.base + "/patient/%d" % self.pid[self.devs[1]])
        self.assertEqual(nurse.find_element(By.TAG_NAME, "h1").text, MARKUP)
        time.sleep(1)
        self.assertIsNone(nurse.execute_script("return window.__pwned;"))
        self.shot(nurse, "attack-markup-as-text")

    def test_3b_F05_cross_site_and_tokenless_posts_are_refused(self):
        from selenium.webdriver.common.by import By
        dev, ddir = self.dev(3)
        # dev 3 belongs to nobody: give it Ward A's bed 9 for this test
        pid = int(self.cli_ok("patient", "add", "--name", "Fay Csrf", "--mrn", "MRN-B9",
                              "--ward", "Ward A", "--bed", "9"))
        self.cli_ok("patient", "assign", dev, str(pid))
        self.inject(ddir, [self.seal(ddir, self.alert(dev, 500), fast=True)], leaf="alert")
        deadline = time.monotonic() + 20
        while True:
            with self.d.db() as c:
                row = c.execute("SELECT id, state FROM alarms WHERE dev = ?", (dev,)).fetchone()
            if row or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertIsNotNone(row, "no alarm raised")
        aid = row[0]
        nurse = self.as_user("nurse")
        # an attacker's page on another origin posts the acknowledgement form
        page = ('<html><body><form id="f" method="post" action="%s/api/alarms/ack">'
                '<input name="id" value="%d"></form><script>document.getElementById("f")'
                '.submit();</script></body></html>' % (self.base, aid)).encode()

        class Evil(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass

        srv = socketserver.TCPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            nurse.get("http://127.0.0.1:%d/" % srv.server_address[1])
            B.wait_for(nurse, lambda d: "/api/alarms/ack" in d.current_url, 15)
            body = nurse.find_element(By.TAG_NAME, "body").text
            self.shot(nurse, "attack-cross-site-post")
        finally:
            srv.shutdown()
            srv.server_close()
        self.assertIn("error", body)  # refused: no session cookie cross-site, and no token
        # the same post from the console's own origin, without the token
        nurse.get(self.base + "/ward")
        st = nurse.execute_script(
            "return fetch('/api/alarms/ack', {method: 'POST', headers: {'Content-Type': "
            "'application/x-www-form-urlencoded'}, body: 'id=%d'}).then(r => r.status);" % aid)
        self.assertEqual(st, 403)
        with self.d.db() as c:
            self.assertEqual(c.execute("SELECT state FROM alarms WHERE id = ?",
                                       (aid,)).fetchone()[0], "active")
        self.assertTrue(any(a["action"] == "console.csrf.refused" and a["actor"] == "user:nurse"
                            for a in self.audit()))

    def test_3c_F10_clinician_calling_biomed_and_admin_endpoints_gets_403(self):
        nurse = self.as_user("nurse")
        csrf = nurse.execute_script("return document.getElementById('board').dataset.csrf;")
        calls = [("GET", "/fleet", None), ("GET", "/admin/users", None),
                 ("GET", "/audit", None), ("GET", "/onboarding", None),
                 ("POST", "/fleet/%s/revoke" % self.devs[0], "csrf=%s&confirm=%s&reason="
                  "keyCompromise" % (csrf, self.devs[0])),
                 ("POST", "/admin/users", "csrf=%s&op=add&name=mallory&role=admin" % csrf)]
        for method, path, body in calls:
            st = nurse.execute_script(
                "return fetch(arguments[0], {method: arguments[1], headers: {'Content-Type': "
                "'application/x-www-form-urlencoded'}, body: arguments[2]}).then(r => r.status);",
                path, method, body)
            self.assertEqual(st, 403, path)
        nurse.get(self.base + "/fleet")
        self.assertIn("Not allowed", nurse.title)
        self.shot(nurse, "attack-clinician-on-fleet")
        r = self.cli("user", "list")
        self.assertNotIn("mallory", r.stdout.decode())
        r = self.cli("device", "show", self.devs[0])
        self.assertNotIn('"revoked"', r.stdout.decode())

    def test_3d_F01_sixth_wrong_password_locks(self):
        from selenium.webdriver.common.by import By
        drv = self.browser()
        for i in range(4):
            B.sign_in(drv, self.base, "locknurse", "wrong-password-%d" % i)
            self.assertIn("The user name, password or code is wrong.",
                          drv.find_element(By.CSS_SELECTOR, ".msg").text)
        # the fifth failure locks; the sixth attempt, and the right password, are refused
        for pw in ("wrong-password-4", "wrong-password-5", self.otp["locknurse"]):
            B.sign_in(drv, self.base, "locknurse", pw)
            self.assertIn("Too many failed sign-ins",
                          drv.find_element(By.CSS_SELECTOR, ".msg").text)
        self.assertTrue(drv.current_url.endswith("/login"))
        self.shot(drv, "attack-lockout")
        self.assertTrue(any(a["action"] == "console.lockout" and a["subject"] == "locknurse"
                            for a in self.audit()))

    def test_3e_F04_a_copied_cookie_dies_with_sign_out(self):
        from selenium.webdriver.common.by import By
        nurse = self.as_user("nurse2")
        stolen = nurse.get_cookie("mt_session")
        self.assertTrue(stolen["httpOnly"] and stolen["secure"])
        self.assertIsNone(nurse.execute_script("return document.cookie.match(/mt_session/);"))
        thief = self.browser()
        thief.get(self.base + "/login")
        thief.add_cookie({"name": "mt_session", "value": stolen["value"], "path": "/",
                          "secure": True})
        thief.get(self.base + "/ward")
        self.assertTrue(thief.current_url.endswith("/ward"))  # the copy works while signed in
        nurse.find_element(By.CSS_SELECTOR, "header form button").click()
        B.wait_for(nurse, lambda d: d.current_url.endswith("/login"), 10)
        thief.get(self.base + "/ward")
        self.assertTrue(thief.current_url.endswith("/login"), thief.current_url)
        self.shot(thief, "attack-stolen-cookie-after-logout")

    # -- the biomedical engineer and the auditor ---------------------------------------------
    def test_4_biomed_revokes_a_device_and_its_data_stops(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        dev = self.simdevs[1]
        bio = self.as_user("biomed")
        self.assertTrue(bio.current_url.endswith("/fleet"), bio.current_url)
        self.assertIn(dev, bio.page_source)
        self.shot(bio, "biomed-fleet")
        deadline = time.monotonic() + 30
        while len(self.stored(dev)) < 3 and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertGreaterEqual(len(self.stored(dev)), 3, "the simulator's device sends nothing")
        bio.get(self.base + "/fleet/%s/revoke" % dev)
        self.shot(bio, "biomed-revoke-confirm")
        Select(bio.find_element(By.NAME, "reason")).select_by_value("keyCompromise")
        bio.find_element(By.NAME, "confirm").send_keys(dev)
        B.submit(bio)
        self.shot(bio, "biomed-revoke-done")
        bio.get(self.base + "/fleet")
        row = bio.find_element(By.ID, "dev-" + dev)
        self.assertIn("revoked", row.text)
        self.shot(bio, "biomed-fleet-revoked")
        time.sleep(3)  # what was in flight lands
        before = len(self.stored(dev))
        time.sleep(6)
        self.assertEqual(len(self.stored(dev)), before, "readings still stored after the revoke")
        self.assertEqual(json.loads(self.cli_ok("device", "show", dev))["status"], "revoked")
        self.clean(bio)

    def test_5_auditor_sees_the_events_in_the_verified_chain(self):
        from selenium.webdriver.common.by import By
        aud = self.as_user("auditor")
        self.assertTrue(aud.current_url.endswith("/audit"), aud.current_url)
        self.assertIn("Verified", aud.find_element(By.CSS_SELECTOR, ".chain").text)
        self.shot(aud, "auditor-chain")
        text = aud.find_element(By.TAG_NAME, "main").text
        for action in ("device.revoke", "console.login", "console.forbidden"):
            self.assertIn(action, text)
        # the acknowledgement: the alarm's transition, by the nurse
        aud.get(self.base + "/audit?action=alarm.transition")
        text = aud.find_element(By.TAG_NAME, "main").text
        self.assertRegex(text, r'"phase":"ack","state":"acknowledged".*"by":"nurse"')
        aud.get(self.base + "/audit?action=device.revoke")
        rows = aud.find_elements(By.CSS_SELECTOR, "table.audit tbody tr")
        self.assertGreaterEqual(len(rows), 1)
        self.assertTrue(all("device.revoke" in r.text for r in rows))
        self.assertIn("user:biomed", rows[0].text)
        self.shot(aud, "auditor-filtered")
        aud.get(self.base + "/audit/security")
        text = aud.find_element(By.TAG_NAME, "main").text
        for action in ("console.lockout", "console.forbidden", "console.csrf.refused"):
            self.assertIn(action, text)
        self.shot(aud, "auditor-security")
        self.clean(aud)

    def test_6_admin_views(self):
        from selenium.webdriver.common.by import By
        adm = self.as_user("admin")
        # an administrator sets up a second factor before anything else (F15)
        self.assertTrue(adm.current_url.endswith("/totp"), adm.current_url)
        self.assertTrue(adm.find_element(By.ID, "totp-uri").text.startswith("otpauth://totp/"))
        self.shot(adm, "admin-second-factor")
        B.enrol_totp(adm)
        self.assertTrue(adm.current_url.endswith("/admin"), adm.current_url)
        for page in ("users", "wards", "patients", "manufacturers", "integrations"):
            adm.get(self.base + "/admin/" + page)
            self.assertNotIn("Not found", adm.title, page)
            self.shot(adm, "admin-" + page)
        self.clean(adm)


if __name__ == "__main__":
    unittest.main(verbosity=2)
