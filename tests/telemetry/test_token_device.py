"""test_token_device.py — the agent as a real device runs it: its keys in its
own SoftHSM2 token (made by `medtrust mfg make` without --soft), `medtrust-device
run` onboarding by itself, then connecting to the broker with the token-held
operational key (PKCS#11 through OpenSSL: the TLS handshake's signature is made
inside the token) and sending readings that are stored and receipted.  Then the
token is searched: its private keys are sensitive and never extractable, and no
private key file was ever written to the device directory (threat I01, I10).
"""
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import telemetry_util as T  # noqa: E402


class TokenDevice(unittest.TestCase):
    def test_token_device_runs_end_to_end(self):
        why = T.missing_tools()
        if why:
            self.skipTest(why)
        d = T.Deployment("mt-token-")
        try:
            T.U.sh([T.U.BIN, "mfg", "make", "--mfg", d.p("mfg"), "--count", "1", "--class",
                    "bedside-monitor", "--out", d.p("lot")], check=True)
            T.U.sh([T.U.BIN, "manifest", "import", d.p("lot", "manifest.cose"), "-c", d.conf],
                   check=True)
            dev = [x for x in os.listdir(d.p("lot")) if os.path.isdir(d.p("lot", x))][0]
            ddir = d.p("lot", dev)
            d.start_hub()
            d.start_broker()
            deadline = time.monotonic() + 20
            while not d.hub_connected() and time.monotonic() < deadline:
                time.sleep(0.1)
            d._start("device", [T.AGENT, "run", "--device", ddir, "--hub",
                                "https://localhost:%d" % d.hub_port, "--hub-ca",
                                d.p("HUB", "pki", "ca.pem"), "--batch-ms", "1000",
                                "--rate", "120", "--ledger", d.ledger, "--stats-s", "2"])
            deadline = time.monotonic() + 60
            while len(d.stored().get(dev, [])) < 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertEqual(d.kill("device", signal.SIGTERM), 0, d.log("device"))
            stored = d.stored().get(dev, [])
            self.assertGreaterEqual(len(stored), 5, d.log("device") + d.log("hub")[-2000:])
            sent, rcpt = d.ledger_sets()
            self.assertTrue(set(stored) <= sent[dev])
            self.assertTrue(rcpt.get(dev), "no receipt reached the token device")
            # The keys: in the token, sensitive, not extractable; no key files.
            self.assertFalse([f for f in os.listdir(ddir) if f.endswith(".key")],
                             os.listdir(ddir))
            conf = os.path.join(ddir, "softhsm2.conf")
            with open(os.path.join(ddir, "pin")) as f:
                pin = f.read().strip()
            r = subprocess.run(["pkcs11-tool", "--module", T.U.MODULE, "--login", "--pin", pin,
                                "--list-objects", "--type", "privkey"], capture_output=True,
                               text=True, env=dict(os.environ, SOFTHSM2_CONF=conf))
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout
            for label in ("idev", "ldev", "kx"):
                self.assertIn('label:      %s' % label, out)
            n = out.count("Private Key Object")
            self.assertEqual(n, 3, out)
            self.assertEqual(out.count("always sensitive"), n, out)
            self.assertEqual(out.count("never extractable"), n, out)
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
