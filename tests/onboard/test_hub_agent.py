"""test_hub_agent.py — medtrustd as a service and medtrust-device as a
program, from the outside (issue 3 parts 4–6; threats B07, B08, B13, D05).

  B13  medtrustd refuses to start, exit 1 with the reason, when its CA file
       is empty or not a certificate, its TLS certificate is missing, its
       configuration is missing or names an unknown key, or its port is
       taken; it starts, answers /healthz and stops on SIGTERM (exit 0)
       otherwise.
  agent  medtrust-device run --once onboards a device from its directory
       alone (op.pem, bundle.json, hub-ca.pem; the registry says active,
       epoch 1), a second pass does nothing, --renew-now renews; the
       daemon mode (no --once) onboards and stops cleanly on SIGTERM; a
       device the hub refuses exits 2 with the hub's reason.
  B07  the agent refuses a hub whose certificate does not name the host it
       dialled (deployment made with --hub-host other.example).
  B08  the agent refuses a hub not under the CA it was given.
  D05  a manifest of a second owner claiming a device this hospital holds is
       refused whole; after decommission + release it may claim it, and only
       the new owner's birth identity enrols then.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onboard_util as U  # noqa: E402

AGENT = os.path.join(os.path.dirname(os.path.abspath(U.BIN)), "medtrust-device")
PERMISSIVE = ("est_rate 1000", "est_burst 1000")


def agent(d, dev_dir, *extra, hub_url=None, ca=None, timeout=60):
    args = [AGENT, "run", "--device", dev_dir, "--hub", hub_url or d.url(""),
            "--hub-ca", ca or d.ca] + list(extra)
    return subprocess.run(args, capture_output=True, env=U.clean_env(), timeout=timeout)


def run_daemon(conf, *extra, wait=5):
    """medtrustd that should fail: (exit status, output)."""
    p = subprocess.run([U.daemon_path(), "-c", conf, "--port", "0"] + list(extra),
                       capture_output=True, env=U.clean_env(), timeout=wait + 10)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


class B13Startup(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = U.Deployment("mt-startup-")

    @classmethod
    def tearDownClass(cls):
        cls.d.stop()
        cls.d.cleanup()

    def variant(self, name, edit):
        """A copy of medtrust.conf with one line changed."""
        with open(self.d.conf) as f:
            text = f.read()
        path = self.d.scratch(name + ".conf")
        with open(path, "w") as f:
            f.write(edit(text))
        return path

    def test_B13_starts_answers_and_stops(self):
        self.d.start()
        r = self.d.curl("/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        self.assertEqual(self.d.stop(), 0)
        self.assertIn("listening on https://127.0.0.1:", self.d.daemon_log())

    def test_B13_empty_ca_file_refused(self):
        empty = self.d.scratch("empty.pem")
        open(empty, "w").close()
        conf = self.variant("emptyca", lambda t: t.replace(
            "ca_cert %s" % self.d.ca, "ca_cert %s" % empty))
        rc, out = run_daemon(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("cannot start", out)
        self.assertIn("operator CA", out)

    def test_B13_invalid_ca_file_refused(self):
        bad = self.d.scratch("bad.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        conf = self.variant("badca", lambda t: t.replace(
            "ca_cert %s" % self.d.ca, "ca_cert %s" % bad))
        rc, out = run_daemon(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("operator CA", out)

    def test_B13_missing_tls_certificate_refused(self):
        tls = self.d.p("HUB", "pki", "hub-tls.pem")
        conf = self.variant("notls", lambda t: t.replace(tls, tls + ".missing"))
        rc, out = run_daemon(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("TLS", out)

    def test_B13_missing_or_unknown_configuration_refused(self):
        rc, out = run_daemon(self.d.p("HUB", "nothing.conf"))
        self.assertEqual(rc, 1, out)
        conf = self.variant("unknown", lambda t: t + "\nhub_listn 0.0.0.0\n")
        rc, out = run_daemon(conf)
        self.assertEqual(rc, 1, out)
        self.assertIn("unknown configuration key", out)

    def test_B13_port_taken_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        try:
            rc, out = run_daemon(self.d.conf, "--port", str(s.getsockname()[1]))
        finally:
            s.close()
        self.assertEqual(rc, 1, out)
        self.assertIn("cannot listen", out)


class Agent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = U.Deployment("mt-agent-", PERMISSIVE)
        try:
            cls.d.mfg_init("MFG", U.ACME)
            cls.serials = cls.d.mfg_make("MFG", "LOT", 4)
            cls.d.trust("MFG")
            r = cls.d.import_manifest(cls.d.p("LOT", "manifest.cose"))
            assert r.returncode == 0, r.stderr
            cls.d.start()
        except BaseException:
            cls.d.stop()
            cls.d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        rc = cls.d.stop()
        try:
            assert rc == 0, "medtrustd exit %r" % rc
            assert cls.d.audit_verify().returncode == 0
        finally:
            cls.d.cleanup()

    def test_agent_once_onboards_renews_and_rests(self):
        s = self.serials[0]
        dev = self.d.p("LOT", s)
        r = agent(self.d, dev, "--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"enrolled with the birth certificate and onboarded", r.stderr)
        for f in ("op.pem", "bundle.json", "hub-ca.pem", "ldev.key", "kx.key"):
            self.assertTrue(os.path.exists(os.path.join(dev, f)), f)
        self.assertEqual(os.stat(os.path.join(dev, "bundle.json")).st_mode & 0o777, 0o600)
        with open(os.path.join(dev, "bundle.json")) as f:
            bundle = json.load(f)
        self.assertEqual(bundle["device_id"], s)
        self.assertEqual(bundle["epoch"], 1)
        v = U.ossl(["verify", "-CAfile", self.d.ca, os.path.join(dev, "op.pem")], check=False)
        self.assertEqual(v.returncode, 0, v.stdout)
        first = U.cert_serial_int(os.path.join(dev, "op.pem"))
        rec = self.d.device(s)
        self.assertEqual((rec["status"], rec["epoch"]), ("active", 1))
        self.assertEqual(int(rec["cert_serial"], 16), first)
        # Second pass: nothing to do.
        r = agent(self.d, dev, "--once")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"certificate current", r.stderr)
        self.assertEqual(U.cert_serial_int(os.path.join(dev, "op.pem")), first)
        # Forced renewal: simplereenroll.
        seq = self.d.audit_seq()
        r = agent(self.d, dev, "--once", "--renew-now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"renewed", r.stderr)
        self.assertNotEqual(U.cert_serial_int(os.path.join(dev, "op.pem")), first)
        self.assertEqual([a["action"] for a in self.d.audit_since(seq)], ["est.reenroll"])

    def test_agent_daemon_mode_onboards_and_stops_on_sigterm(self):
        dev = self.d.p("LOT", self.serials[1])
        p = subprocess.Popen([AGENT, "run", "--device", dev, "--hub", self.d.url(""),
                              "--hub-ca", self.d.ca], stderr=subprocess.PIPE,
                             env=U.clean_env())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not os.path.exists(
                os.path.join(dev, "bundle.json")):
            time.sleep(0.05)
        self.assertTrue(os.path.exists(os.path.join(dev, "bundle.json")))
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=10), 0)
        p.stderr.close()
        self.assertEqual(self.d.device(self.serials[1])["status"], "active")

    def test_agent_refused_device_exits_2_with_reason(self):
        s = self.serials[2]
        r = self.d.mt(["device", "decommission", s, "-c", self.d.conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = agent(self.d, self.d.p("LOT", s), "--once")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"decommissioned", r.stderr)
        self.assertFalse(os.path.exists(self.d.p("LOT", s, "op.pem")))

    def test_B08_hub_not_under_the_given_ca_refused(self):
        s = self.serials[3]
        r = agent(self.d, self.d.p("LOT", s), "--once", ca=self.d.p("MFG", "root.pem"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"certificate", r.stderr.lower())
        self.assertFalse(os.path.exists(self.d.p("LOT", s, "op.pem")))

    def test_agent_usage_errors(self):
        r = subprocess.run([AGENT, "run", "--device", "x", "--hub", "http://plain",
                            "--hub-ca", "y"], capture_output=True)
        self.assertEqual(r.returncode, 64)
        r = subprocess.run([AGENT], capture_output=True)
        self.assertEqual(r.returncode, 64)


class B07WrongHost(unittest.TestCase):
    def test_B07_hub_certificate_for_another_host_refused(self):
        d = U.Deployment("mt-b07-", PERMISSIVE, ["--hub-host", "other.example"])
        try:
            d.mfg_init("MFG", U.ACME)
            serials = d.mfg_make("MFG", "LOT", 1)
            d.trust("MFG")
            self.assertEqual(d.import_manifest(d.p("LOT", "manifest.cose")).returncode, 0)
            d.start()
            # The hub's certificate names other.example; the agent dials
            # 127.0.0.1, so it must refuse before sending anything.
            seq = d.audit_seq()
            r = agent(d, d.p("LOT", serials[0]), "--once")
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(b"127.0.0.1", r.stderr)
            self.assertFalse(os.path.exists(d.p("LOT", serials[0], "op.pem")))
            self.assertEqual(d.audit_since(seq), [])  # nothing reached the hub
            self.assertEqual(d.stop(), 0)
        finally:
            d.stop()
            d.cleanup()


class D05SecondOwner(unittest.TestCase):
    def test_D05_second_owner_claim_refused_until_released(self):
        d = U.Deployment("mt-d05-", PERMISSIVE)
        try:
            d.mfg_init("MFG", U.ACME)
            d.mfg_init("TWIN", "Twin Devices")
            acme = d.mfg_make("MFG", "LOT", 2)
            twin = d.mfg_make("TWIN", "TWINLOT", 2, prefix="acme-medical-")
            self.assertEqual(acme, twin)  # the same serials, other keys
            d.trust("MFG")
            d.trust("TWIN")
            self.assertEqual(d.import_manifest(d.p("LOT", "manifest.cose")).returncode, 0)
            d.start()
            s = acme[0]
            d.enroll("LOT", s)
            # A second owner's manifest naming a device held here: refused whole.
            seq = d.audit_seq()
            r = d.import_manifest(d.p("TWINLOT", "manifest.cose"))
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(b"already registered", r.stderr)
            self.assertEqual([(a["action"], a["outcome"]) for a in d.audit_since(seq)],
                             [("manifest.import.refused", "refused")])
            # Decommissioned but not released: still refused.
            self.assertEqual(d.mt(["device", "decommission", s, "-c", d.conf]).returncode, 0)
            self.assertEqual(d.import_manifest(d.p("TWINLOT", "manifest.cose")).returncode, 2)
            # Released: the other manifest's entries may claim it now.  The
            # second Acme device is still held, so release it too.
            self.assertEqual(d.mt(["device", "decommission", acme[1], "-c", d.conf]).returncode,
                             0)
            for x in acme:
                self.assertEqual(d.mt(["device", "release", x, "-c", d.conf]).returncode, 0)
            r = d.import_manifest(d.p("TWINLOT", "manifest.cose"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"2 claimed", r.stderr)
            self.assertEqual(d.device(s)["status"], "manifested")
            # Only the new owner's birth identity enrols now.
            cert, key, pw = d.birth("LOT", s)
            ldev = U.gen_p256(d.scratch("old-ldev.key"))
            r = d.enroll_raw("LOT", s, U.b64(U.csr_der(ldev, s)))
            self.assertEqual(r.status, 403, r)
            self.assertIn(b"possible clone", r.body)
            d.enroll("TWINLOT", s)
            self.assertEqual(d.device(s)["status"], "active")
            self.assertEqual(d.stop(), 0)
            self.assertEqual(d.audit_verify().returncode, 0)
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    why = U.missing_tools() or (None if os.access(AGENT, os.X_OK) else "medtrust-device missing")
    if why:
        print("skip: %s" % why)
        sys.exit(77)
    unittest.main(verbosity=2)
