"""test_fleet.py — the biomedical engineer's console views of medtrustd:
/fleet, /api/fleet, revoking and decommissioning a device, /onboarding
(docs/console-fleet.md; threats F09, F10, F05, D06).

A real deployment as tests/console/test_console.py builds it (medtrustd,
its broker, simulated bedside monitors onboarding themselves and streaming
readings and status packets), with `console_reauth_s 3` so that the
re-authentication an administrative change needs can be shown to expire
within the test.  Three devices stream: FLT-…1 measures a patient, FLT-…2
a patient named `<script>…`, FLT-…3 nobody; a second manifest's device
never starts (pending onboarding).  The browser is test_console's.

What is shown, each by a check that fails when the property is missing:
  - a biomedical engineer's /fleet lists every device with its status,
    its patient (ward, bed, name decrypted; a hostile name escaped), when
    it was last seen, its battery and firmware (from its signed status
    packet), its certificate's expiry; /api/fleet gives the same rows as
    JSON; ?status= filters, anything else in the query is 400; unknown
    sub-paths 404 without echoing the path; other methods 405;
  - F09/F10: a clinician gets 403 on /fleet and on POST
    /fleet/<id>/revoke, audited as console.forbidden, and nothing changes;
  - F05: a revoke POST without the CSRF token is 403 and nothing changes;
  - F10: a revoke whose password was given more than console_reauth_s ago
    is sent to /reauth; after the password it goes through; a wrong typed
    id is refused (400, audited) and changes nothing;
  - the revocation is the CLI's: `medtrust device show` says revoked, a
    new CRL lists the device's certificate, device.revoke is audited with
    actor user:<name> — and the hub refuses the device's packets: no new
    reading is stored for it while another device's readings still are;
  - decommissioning likewise (device.decommission, status
    decommissioned, its data stops);
  - /onboarding lists the manifests (manufacturer, devices), the devices
    pending, and a refused enrolment with its reason from the audit chain;
  - rotating a streaming device's key epoch (docs/commands.md, protocol
    §4, §6): the confirmation page says what happens, the POST needs the
    CSRF token, a recent password and the typed id; then the registry says
    N+1, device.rotate_epoch is audited with both epochs and the command
    counter, the device verified the signed command (its log, its
    bundle.json), readings stored after it carry epoch N+1 and the device's
    acknowledgement (typ 4) is stored; after a second rotation (N+2), with
    the simulator stopped, packets sealed with the device's own keys under
    N+2 and N+1 are stored while N and N+3 are refused at the epoch stage.
    The attacker's forged command is not here: the broker lets only the
    hub publish on down/cmd (tests/unit/test_mosq_acl.c, C01), and the
    device's verifier refuses forged, replayed, stale and misaddressed
    commands (tests/unit/test_command.c).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
import telemetry_util as T  # noqa: E402
from console_util import DeploymentCli, start_streaming  # noqa: E402
from test_console import Browser, csrf_of  # noqa: E402

REAUTH_S = 3
XSS = "<script>alert(7)</script>"


class Fleet(DeploymentCli, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        cls.d = d = T.Deployment("mt-fleet-", hub_conf=["console_reauth_s %d" % REAUTH_S])
        try:
            cls.lot = d.make_lot("lot", 3, cls="bedside-monitor", prefix="FLT-")
            cls.late = d.make_lot("late", 1, cls="infusion-pump", prefix="LATE-")
            cls.pid_ada = cls.cli_ok("patient", "add", "--name", "Ada Fleet", "--mrn",
                                     "MRN-771", "--ward", "Ward F", "--bed", "3").strip()
            cls.pid_xss = cls.cli_ok("patient", "add", "--name", XSS, "--mrn", "MRN-772",
                                     "--ward", "Ward F", "--bed", "4").strip()
            cls.cli_ok("patient", "assign", cls.lot[0], cls.pid_ada)
            cls.cli_ok("patient", "assign", cls.lot[1], cls.pid_xss)
            start_streaming(d, ["--batch-ms", "500", "--status-ms", "2000",
                                "--scenario", "stable"])
            cls.ca = d.p("HUB", "pki", "ca.pem")
            cls.biomed = cls.signed_in("bea", "biomed")
        except Exception:
            d.cleanup()
            raise

    # ---- helpers ------------------------------------------------------------------------

    @classmethod
    def signed_in(cls, name, role):
        """A browser signed in as a new user who has chosen a password."""
        otp = cls.cli_ok("user", "add", name, "--role", role).strip()
        b = Browser(cls.d.hub_port, cls.ca)
        st, _, page = b.get("/login")
        st, h, page = b.post("/login", {"user": name, "password": otp, "csrf": csrf_of(page)})
        assert st == 303 and h["Location"] == "/password", (st, page)
        st, _, page = b.get("/password")
        new = "chosen-" + name + "-Passw0rd!"
        st, h, page = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                           "csrf": csrf_of(page)})
        assert st == 303, (st, page)
        return b, new

    def audit(self):
        r = subprocess.run([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"),
                            "-n", "3000"], capture_output=True, env=self.d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(x) for x in r.stdout.decode().splitlines()]

    def device(self, dev):
        return json.loads(self.cli_ok("device", "show", dev))

    def stored(self, dev):
        with self.d.db() as c:
            return (c.execute("SELECT count(*) FROM readings WHERE dev = ?", (dev,)).fetchone()[0]
                    + c.execute("SELECT count(*) FROM alerts WHERE dev = ?", (dev,)).fetchone()[0])

    def row(self, page, dev):
        m = re.search(r'<tr id="dev-%s">(.*?)</tr>' % re.escape(dev), page, re.S)
        self.assertIsNotNone(m, "no row for %s:\n%s" % (dev, page))
        return m.group(1)

    def reauth(self, b, password, nxt):
        """Give the password again on /reauth and follow it back."""
        st, _, page = b.get("/reauth?next=" + urllib.parse.quote(nxt, safe="/"))
        self.assertEqual(st, 200, page)
        st, h, page = b.post("/reauth", {"password": password, "next": nxt,
                                         "csrf": csrf_of(page)})
        self.assertEqual(st, 303, page)
        self.assertEqual(h["Location"], nxt)

    def wait_data_stops(self, dev, other):
        """No new packet of `dev` is stored while `other`'s still are."""
        time.sleep(1.5)  # what was already past the hub's checks may land
        a, oa = self.stored(dev), self.stored(other)
        time.sleep(4)
        b, ob = self.stored(dev), self.stored(other)
        self.assertEqual(b, a, "%s still stores readings after its withdrawal" % dev)
        self.assertGreater(ob, oa, "the simulator stopped: the check above proves nothing")
        # the broker learnt it from the registry, as it does of the CLI's revocations
        self.assertTrue(any(dev in line and "revoked" in line
                            for line in self.d.log("broker").splitlines()),
                        "the broker never refused %s" % dev)

    # ---- the list -------------------------------------------------------------------------

    def test_a_fleet_lists_devices_status_patient_battery_firmware(self):
        b = self.biomed[0]
        deadline = time.monotonic() + 40
        while True:
            st, h, page = b.get("/fleet")
            self.assertEqual(st, 200, page)
            rows = [self.row(page, dev) for dev in self.lot]
            if all("medtrust-device" in r and " %" in r for r in rows) or \
                    time.monotonic() > deadline:
                break
            time.sleep(1)
        for r in rows:
            self.assertIn('class="st-active">active<', r)
            self.assertIn("medtrust-device", r)            # firmware, from the status packet
            self.assertRegex(r, r'<td class="battery[^"]*">\d+ %</td>')
            self.assertRegex(r, r"\d+ s ago")               # last seen, the hub's clock
            self.assertRegex(r, r"in \d+ days")              # certificate expiry
            self.assertIn("/revoke", r)
            self.assertIn("/rotate\">Rotate epoch", r)     # active and onboarded
        self.assertIn("Ward F \u00b7 bed 3", rows[0])
        self.assertIn("Ada Fleet", rows[0])
        self.assertIn("&lt;script&gt;alert(7)&lt;/script&gt;", rows[1])
        self.assertNotIn(XSS, page)
        self.assertIn("not assigned", rows[2])
        self.assertNotIn("<script", page)
        self.assertNotIn("style=", page)
        # the pending device is listed too, as manifested
        self.assertIn('class="st-manifested">manifested<', self.row(page, self.late[0]))
        self.assertNotIn("/rotate", self.row(page, self.late[0]))  # never onboarded
        # the same rows as JSON
        st, h, text = b.get("/api/fleet")
        self.assertEqual(st, 200, text)
        self.assertTrue(h["Content-Type"].startswith("application/json"))
        js = {x["id"]: x for x in json.loads(text)["devices"]}
        self.assertEqual(js[self.lot[0]]["status"], "active")
        self.assertEqual(js[self.lot[0]]["patient"]["name"], "Ada Fleet")
        self.assertEqual(js[self.lot[1]]["patient"]["name"], XSS)
        self.assertIsNone(js[self.lot[2]]["patient"])
        self.assertEqual(js[self.late[0]]["status"], "manifested")
        self.assertGreater(js[self.lot[0]]["stored"], 0)
        # a filter by status, validated
        st, _, page = b.get("/fleet?status=manifested")
        self.assertEqual(st, 200)
        self.assertIn(self.late[0], page)
        self.assertNotIn('id="dev-%s"' % self.lot[0], page)
        for q in ("status=bogus", "x=1", "status=active&status=revoked", "status=<b>"):
            st, _, page = b.get("/fleet?" + q)
            self.assertEqual(st, 400, q)
            self.assertNotIn("bogus", page)
        st, _, _ = b.get("/api/fleet?status=bogus")
        self.assertEqual(st, 400)
        # unknown sub-paths, bad ids, other methods
        st, _, page = b.get("/fleet/%3Cscript%3Ealert(8)%3C/script%3E/revoke")
        self.assertEqual(st, 404)
        self.assertNotIn("alert(8)", page)
        st, _, _ = b.get("/fleet/NO-SUCH-DEVICE/revoke")
        self.assertEqual(st, 404)
        st, _, _ = b.get("/fleet/%s/rotatex" % self.lot[0])
        self.assertEqual(st, 404)
        st, _, _ = b.get("/fleet/%s/rotate" % self.late[0])   # not onboarded: nothing to do
        self.assertEqual(st, 409)
        st, _, _ = b.get("/onboarding/x")
        self.assertEqual(st, 404)
        st, h, _ = b.post("/fleet", {"csrf": "x"})
        self.assertEqual(st, 405)
        st, _, _ = b.request("DELETE", "/fleet/%s/revoke" % self.lot[0])
        self.assertEqual(st, 405)
        # showing patients' names is audited
        self.assertTrue(any(x["action"] == "console.fleet.view" and x["actor"] == "user:bea"
                            for x in self.audit()))

    # ---- who may ---------------------------------------------------------------------------

    def test_b_F09_F10_clinician_forbidden(self):
        b, _ = self.signed_in("cleo", "clinician")
        st, _, page = b.get("/fleet")
        self.assertEqual(st, 403)
        self.assertNotIn(self.lot[0], page)
        st, _, page = b.get("/ward")
        token = csrf_of(page)
        st, _, _ = b.post("/fleet/%s/revoke" % self.lot[2],
                          {"csrf": token, "confirm": self.lot[2], "reason": "keyCompromise"})
        self.assertEqual(st, 403)
        st, _, _ = b.get("/api/fleet")
        self.assertEqual(st, 403)
        self.assertEqual(self.device(self.lot[2])["status"], "active")
        recs = [x for x in self.audit() if x["action"] == "console.forbidden"
                and x["actor"] == "user:cleo"]
        self.assertTrue(any(x["detail"]["path"] == "/fleet/%s/revoke" % self.lot[2] and
                            x["detail"]["method"] == "POST" for x in recs), recs)

    def test_c_F05_revoke_without_csrf_is_403(self):
        b = self.biomed[0]
        dev = self.lot[2]
        st, _, _ = b.post("/fleet/%s/revoke" % dev, {"confirm": dev, "reason": "keyCompromise"})
        self.assertEqual(st, 403)
        st, _, _ = b.post("/fleet/%s/revoke" % dev, {"confirm": dev, "reason": "keyCompromise",
                                                     "csrf": "A" * 43})
        self.assertEqual(st, 403)
        self.assertEqual(self.device(dev)["status"], "active")
        self.assertFalse(any(x["action"] == "device.revoke" for x in self.audit()))

    # ---- revoke -------------------------------------------------------------------------------

    def test_d_F10_revoke_needs_recent_password_then_data_stops(self):
        b, pw = self.biomed
        dev, other = self.lot[0], self.lot[2]
        path = "/fleet/%s/revoke" % dev
        st, _, page = b.get(path)
        self.assertEqual(st, 200, page)
        self.assertIn('name="confirm"', page)
        self.assertIn('value="keyCompromise"', page)
        self.assertIn("Ada Fleet", page)   # whose monitoring stops
        token = csrf_of(page)
        form = {"csrf": token, "confirm": dev, "reason": "keyCompromise"}
        time.sleep(REAUTH_S + 1)           # the sign-in's password is now too old
        st, h, _ = b.post(path, form)
        self.assertEqual(st, 303)
        self.assertEqual(h["Location"], "/reauth?next=" + path)
        self.assertEqual(self.device(dev)["status"], "active")
        self.reauth(b, pw, path)
        # a wrong typed id changes nothing
        st, _, page = b.post(path, dict(form, confirm=self.lot[1]))
        self.assertEqual(st, 400, page)
        self.assertEqual(self.device(dev)["status"], "active")
        st, _, page = b.post(path, form)
        if st == 303:                       # a slow machine outran the window: once more
            self.reauth(b, pw, path)
            st, _, page = b.post(path, form)
        self.assertEqual(st, 200, page)
        self.assertIn("revoked", page)
        shown = self.device(dev)
        self.assertEqual(shown["status"], "revoked")
        # audited, as the CLI's are, with the user as actor
        recs = self.audit()
        ok = [x for x in recs if x["action"] == "device.revoke" and x["subject"] == dev]
        self.assertEqual(len(ok), 1, ok)
        self.assertEqual(ok[0]["actor"], "user:bea")
        self.assertEqual(ok[0]["outcome"], "ok")
        self.assertEqual(ok[0]["detail"]["reason"], "keyCompromise")
        self.assertEqual(ok[0]["detail"]["crl"], "signed")
        self.assertGreaterEqual(ok[0]["detail"]["certificates_revoked"], 1)
        self.assertTrue(any(x["action"] == "device.revoke.refused" and x["subject"] == dev and
                            x["detail"].get("reason") == "confirmation_mismatch" for x in recs))
        self.assertTrue(any(x["action"] == "console.reauth" and x["outcome"] == "ok"
                            for x in recs))
        # the new CRL lists the device's certificate
        crl = T.U.ossl(["crl", "-in", self.d.p("HUB", "pki", "crl.pem"), "-noout",
                        "-text"]).stdout.decode().lower()
        self.assertIn(shown["cert_serial"].lower(), crl.replace(":", ""))
        # the fleet says so, and offers no second revocation
        st, _, page = b.get("/fleet")
        r = self.row(page, dev)
        self.assertIn('class="st-revoked">revoked<', r)
        self.assertNotIn("/revoke", r)
        self.assertNotIn("/rotate", r)
        self.assertIn("/decommission", r)
        # and the hub refuses its packets
        self.wait_data_stops(dev, other)

    # ---- decommission ---------------------------------------------------------------------------

    def test_e_decommission_then_data_stops(self):
        b, pw = self.biomed
        dev, other = self.lot[1], self.lot[2]
        path = "/fleet/%s/decommission" % dev
        st, _, page = b.get(path)
        self.assertEqual(st, 200, page)
        self.assertNotIn('name="reason"', page)
        form = {"csrf": csrf_of(page), "confirm": dev}
        self.reauth(b, pw, path)
        st, _, page = b.post(path, form)
        if st == 303:
            self.reauth(b, pw, path)
            st, _, page = b.post(path, form)
        self.assertEqual(st, 200, page)
        self.assertEqual(self.device(dev)["status"], "decommissioned")
        ok = [x for x in self.audit() if x["action"] == "device.decommission" and
              x["subject"] == dev]
        self.assertEqual(len(ok), 1, ok)
        self.assertEqual(ok[0]["actor"], "user:bea")
        self.assertEqual(ok[0]["detail"]["reason"], "cessationOfOperation")
        st, _, page = b.get("/fleet?status=decommissioned")
        self.assertEqual(st, 200)
        r = self.row(page, dev)
        self.assertIn('class="st-decommissioned">decommissioned<', r)
        self.assertNotIn("/revoke", r)
        self.assertNotIn("/decommission", r)
        # a decommissioned device cannot be decommissioned again
        st, _, _ = b.get(path)
        self.assertEqual(st, 409)
        self.wait_data_stops(dev, other)

    # ---- onboarding -------------------------------------------------------------------------------

    def test_f_onboarding_manifests_pending_and_refusals(self):
        # a refused enrolment: no client certificate at all
        import http.client
        import ssl
        conn = http.client.HTTPSConnection("localhost", self.d.hub_port, timeout=30,
                                           context=ssl.create_default_context(cafile=self.ca))
        conn.request("POST", "/.well-known/est/simpleenroll", body=b"MIIB",
                     headers={"Content-Type": "application/pkcs10"})
        r = conn.getresponse()
        r.read()
        conn.close()
        self.assertEqual(r.status, 401)
        b = self.biomed[0]
        st, _, page = b.get("/onboarding")
        self.assertEqual(st, 200, page)
        self.assertIn("Acme Medical", page)
        m = re.search(r'<table class="manifests">.*?</table>', page, re.S)
        self.assertIsNotNone(m)
        self.assertEqual(m.group(0).count("<tr><td>"), 2)   # two manifests imported
        p = re.search(r'<table class="pending">.*?</table>', page, re.S).group(0)
        self.assertIn(self.late[0], p)
        self.assertNotIn(self.lot[2], p)                     # onboarded: not pending
        a = re.search(r'<table class="attempts">.*?</table>', page, re.S).group(0)
        self.assertIn("est.enroll.refused", a)
        self.assertIn("no_client_certificate", a)
        self.assertIn("127.0.0.1", a)
        st, _, _ = b.get("/onboarding?x=1")
        self.assertEqual(st, 400)
        st, _, _ = b.post("/onboarding", {"csrf": "x"})
        self.assertEqual(st, 405)

    # ---- rotate the key epoch (last: it stops the simulator) ----------------------------------

    def rotate(self, b, pw, dev):
        """Rotate dev's epoch in the console; the result page."""
        path = "/fleet/%s/rotate" % dev
        st, _, page = b.get(path)
        self.assertEqual(st, 200, page)
        form = {"csrf": csrf_of(page), "confirm": dev}
        self.reauth(b, pw, path)
        st, _, page = b.post(path, form)
        if st == 303:                       # a slow machine outran the window: once more
            self.reauth(b, pw, path)
            st, _, page = b.post(path, form)
        self.assertEqual(st, 200, page)
        return page

    def epoch_rows(self, dev, epoch, typ=None):
        with self.d.db() as c:
            q = "SELECT count(*) FROM readings WHERE dev = ? AND epoch = ?"
            args = (dev, epoch)
            if typ is not None:
                q += " AND typ = ?"
                args += (typ,)
            return c.execute(q, args).fetchone()[0]

    def bundle_epoch(self, dev):
        with open(self.d.p("lot", dev, "bundle.json")) as f:
            return json.load(f)["epoch"]

    def wait_switched(self, dev, epoch, timeout=20):
        """The device took `epoch` (bundle.json), readings and its
        acknowledgement (typ 4) of that epoch are stored."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.bundle_epoch(dev) == epoch and self.epoch_rows(dev, epoch, 1) > 0 and \
                    self.epoch_rows(dev, epoch, 4) > 0:
                return
            time.sleep(0.3)
        self.fail("%s: bundle epoch %s, vitals of epoch %d: %d, acks: %d\n%s" % (
            dev, self.bundle_epoch(dev), epoch, self.epoch_rows(dev, epoch, 1),
            self.epoch_rows(dev, epoch, 4), self.d.log("sim")[-3000:]))

    def seal(self, dev, ctr, epoch):
        ddir = self.d.p("lot", dev)
        m = {"dev": dev, "ctr": ctr, "ts": int(time.time() * 1000), "typ": 1,
             "obs": [[0, 147842, 72, 264864]]}
        r = T.U.sh([T.U.BIN, "packet", "seal", "--ldev", "file:%s/ldev.key" % ddir, "--kx",
                    "file:%s/kx.key" % ddir, "--hub-kx", self.d.p("HUB", "pki", "hub-kx.pub.pem"),
                    "--epoch", str(epoch)], data=json.dumps(m).encode(), env=self.d.env())
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        path = self.d.p("pkt-%d-%d" % (ctr, epoch))
        with open(path, "wb") as f:
            f.write(r.stdout)
        return path

    def test_g_rotate_epoch_signed_command(self):
        b, pw = self.biomed
        dev = self.lot[2]                  # the one still streaming
        n = self.device(dev)["epoch"]
        # a revoked device's epoch is not rotated (test_d revoked lot[0])
        st, _, page = b.get("/fleet/%s/rotate" % self.lot[0])
        self.assertEqual(st, 409, page)
        st, _, page = b.get("/fleet/%s/rotate" % dev)
        token = csrf_of(page)
        self.reauth(b, pw, "/fleet/%s/rotate" % dev)
        st, _, page = b.post("/fleet/%s/rotate" % self.lot[0],
                             {"csrf": token, "confirm": self.lot[0]})
        self.assertEqual(st, 409, page)
        self.assertTrue(any(x["action"] == "device.rotate_epoch" and x["subject"] == self.lot[0]
                            and x["outcome"] == "refused" and
                            x["detail"].get("reason") == "status" for x in self.audit()))
        st, _, page = b.get("/fleet")
        self.assertIn("/fleet/%s/rotate" % dev, self.row(page, dev))
        st, _, page = b.get("/fleet/%s/rotate" % dev)
        self.assertEqual(st, 200, page)
        self.assertIn("signed with the hub's command key", page)
        self.assertIn("until the next rotation", page)
        self.assertIn('name="confirm"', page)
        # without the CSRF token, or with another id typed: nothing changes
        st, _, _ = b.post("/fleet/%s/rotate" % dev, {"confirm": dev})
        self.assertEqual(st, 403)
        self.reauth(b, pw, "/fleet/%s/rotate" % dev)
        st, _, page = b.post("/fleet/%s/rotate" % dev, {"csrf": csrf_of(page),
                                                        "confirm": self.lot[0]})
        self.assertEqual(st, 400, page)
        self.assertEqual(self.device(dev)["epoch"], n)
        # the rotation
        page = self.rotate(b, pw, dev)
        self.assertIn('<b class="epoch">%d</b>' % (n + 1), page)
        self.assertEqual(self.device(dev)["epoch"], n + 1)
        recs = [x for x in self.audit() if x["action"] == "device.rotate_epoch" and
                x["subject"] == dev]
        ok = [x for x in recs if x["outcome"] == "ok"]
        self.assertEqual(len(ok), 1, recs)
        self.assertEqual(ok[0]["actor"], "user:bea")
        self.assertEqual(ok[0]["detail"]["old_epoch"], n)
        self.assertEqual(ok[0]["detail"]["new_epoch"], n + 1)
        self.assertEqual(ok[0]["detail"]["command_counter"], 1)
        self.assertTrue(any(x["outcome"] == "refused" and
                            x["detail"].get("reason") == "confirmation_mismatch" for x in recs))
        # the device verified it, switched, saved it, answered under the new epoch
        self.wait_switched(dev, n + 1)
        self.assertIn("key epoch %d -> %d (command 1)" % (n, n + 1), self.d.log("sim"))
        self.assertNotIn("command refused", self.d.log("sim"))
        # a second rotation: N+2; then, the simulator stopped, the device's own
        # keys seal packets of each epoch and the hub takes N+2 and N+1 only
        self.rotate(b, pw, dev)
        self.assertEqual(self.device(dev)["epoch"], n + 2)
        self.wait_switched(dev, n + 2)
        self.d.kill("sim", signal.SIGTERM)
        with self.d.db() as c:
            top = max(c.execute("SELECT coalesce(max(ctr), 0) FROM readings WHERE dev = ?",
                                (dev,)).fetchone()[0],
                      c.execute("SELECT coalesce(max(ctr), 0) FROM alerts WHERE dev = ?",
                                (dev,)).fetchone()[0])
        ctrs = {n + 2: top + 5000, n + 1: top + 5001, n: top + 5002, n + 3: top + 5003}
        files = [self.seal(dev, ctr, ep) for ep, ctr in sorted(ctrs.items())]
        r = subprocess.run([T.AGENT, "inject", "--device", self.d.p("lot", dev), "--hub",
                            "https://localhost:%d" % self.d.hub_port, "--hub-ca", self.ca,
                            "--wait", "2"] + files, capture_output=True, env=self.d.env(),
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.d.db() as c:
                got = {x[0] for x in c.execute(
                    "SELECT ctr FROM readings WHERE dev = ? AND ctr > ?", (dev, top))}
            if {ctrs[n + 2], ctrs[n + 1]} <= got:
                break
            time.sleep(0.3)
        self.assertIn(ctrs[n + 2], got)
        self.assertIn(ctrs[n + 1], got)     # the previous epoch: still accepted
        self.assertNotIn(ctrs[n], got)      # two rotations back: refused
        self.assertNotIn(ctrs[n + 3], got)  # a future epoch: refused
        refused = [x for x in self.audit() if x["action"] == "packet.refused" and
                   x["subject"] == dev and x["detail"].get("stage") == "epoch"]
        self.assertTrue(refused, "no epoch refusal audited for %s" % dev)


if __name__ == "__main__":
    unittest.main(verbosity=2)
