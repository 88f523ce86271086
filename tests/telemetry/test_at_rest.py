"""test_at_rest.py — a stolen database reveals nothing, and what was stored
can be re-verified (threats I06, J04, J05; issue acceptance "a stolen database").

A real deployment: readings arrive from the simulator and from a device whose
exact message bytes the test knows; a patient with a distinctive name and MRN is
stored through the CLI.  Then every file of the hub's databases (data.db,
medtrust.db and their -wal/-shm) is searched byte for byte for the name, the MRN
and the exact CBOR bytes of the readings sent — none may appear — with positive
controls proving the search would have found them.  `medtrust verify-record
--all` passes; after one ciphertext byte of one stored row is changed in the
database it fails naming that record; after two rows' ciphertexts are swapped it
fails again; restored, it passes.
"""
import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import telemetry_util as T  # noqa: E402
import mtp1ref as R  # noqa: E402

NAME = "Zebediah Quartermain-Voss"
MRN = "MRN-99817765"
HR, BPM, SPO2, PCT, TEMP, DEGC = 147842, 264864, 150456, 262688, 150364, 268192


class AtRest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        cls.d = T.Deployment("mt-atrest-")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def mt(self, *args):
        return subprocess.run([T.U.BIN] + list(args), capture_output=True, env=self.d.env(),
                              timeout=120)

    def files(self):
        hub = self.d.p("HUB")
        return [os.path.join(hub, f) for f in os.listdir(hub)
                if f.startswith(("data.db", "medtrust.db"))]

    def hits(self, needle):
        out = []
        for path in self.files():
            with open(path, "rb") as f:
                if needle in f.read():
                    out.append(os.path.basename(path))
        return out

    def verify_all(self):
        return self.mt("verify-record", "--all", "-c", self.d.conf)

    def test_J04_J05_stolen_database_and_reverification(self):
        d = self.d
        lot = d.make_lot("lot", 3)
        r = self.mt("patient", "add", "--name", NAME, "--mrn", MRN, "--ward", "Ward A",
                    "--bed", "7", "--birth-date", "1961-04-12", "-c", d.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = r.stdout.decode().strip()
        r = self.mt("patient", "assign", lot[0], pid, "-c", d.conf)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.start_hub()
        d.start_broker()
        deadline = time.monotonic() + 20
        while not d.hub_connected() and time.monotonic() < deadline:
            time.sleep(0.1)
        d.start_sim("sim", "lot", ["--batch-ms", "1000", "--rate", "120", "--scenario",
                                   "stable", "--ecg"])
        deadline = time.monotonic() + 60
        while d.count_readings() < 15 and time.monotonic() < deadline:
            time.sleep(0.2)
        d.kill("sim", 15)

        # Readings whose exact bytes the test knows, sent by device lot[1].
        ddir = d.p("lot", lot[1])
        with open(os.path.join(ddir, "bundle.json")) as f:
            epoch = json.load(f)["epoch"]
        needles = []
        now = int(time.time() * 1000)
        pkts = []
        for i, (hr, spo2, temp) in enumerate(((83, 94, 37.25), (97, 91, 38.75))):
            m = {"dev": lot[1], "ctr": 900000 + i, "ts": now + i, "typ": 1,
                 "obs": [[0, HR, hr, BPM], [0, SPO2, spo2, PCT], [0, TEMP, temp, DEGC, 2]]}
            msg_cbor = R.dumps({1: m["dev"], 2: m["ctr"], 3: m["ts"], 4: 1,
                                5: [list(o) for o in m["obs"]]})
            needles.append(msg_cbor)
            r = subprocess.run([T.U.BIN, "packet", "seal", "--ldev", "file:%s/ldev.key" % ddir,
                                "--kx", "file:%s/kx.key" % ddir, "--hub-kx",
                                d.p("HUB", "pki", "hub-kx.pub.pem"), "--epoch", str(epoch)],
                               input=json.dumps(m).encode(), capture_output=True,
                               env=d.env())
            self.assertEqual(r.returncode, 0, r.stderr)
            pkts.append(os.path.join(d.tmp, "known-%d.pkt" % i))
            with open(pkts[-1], "wb") as f:
                f.write(r.stdout)
        r = subprocess.run([T.AGENT, "inject", "--device", ddir, "--hub",
                            "https://localhost:%d" % d.hub_port, "--hub-ca",
                            d.p("HUB", "pki", "ca.pem")] + pkts, capture_output=True,
                           env=d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        stored = d.stored()
        self.assertIn(900000, stored.get(lot[1], []))
        self.assertIn(900001, stored.get(lot[1], []))
        d.stop_all()  # everything on disk, as a thief would copy it

        # -- I06: the stores are the service user's alone --
        import stat
        for path in self.files() + [d.p("HUB", "medtrust.conf"), d.p("HUB", "secrets")]:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.assertEqual(mode & 0o077, 0, "%s is mode %o" % (path, mode))
        qdir = os.path.join(d.p("lot", lot[0]), "queue")
        self.assertEqual(stat.S_IMODE(os.stat(qdir).st_mode) & 0o077, 0, qdir)
        for f in os.listdir(qdir):
            if f.endswith(".pkt"):
                self.assertEqual(stat.S_IMODE(os.stat(os.path.join(qdir, f)).st_mode) & 0o077,
                                 0, f)

        # -- J04: no plaintext in any database file --
        self.assertIn("data.db", [os.path.basename(p) for p in self.files()])
        for control in (lot[1].encode(), b"Ward A"):  # plain columns: the search works
            self.assertTrue(self.hits(control), control)
        for label, needle in [("patient name", NAME.encode()), ("MRN", MRN.encode()),
                              ("name in UTF-16", NAME.encode("utf-16-le")),
                              ("birth date", b"1961-04-12")] + \
                             [("reading %d CBOR" % i, n) for i, n in enumerate(needles)] + \
                             [("reading %d observations" % i, R.dumps([[0, HR, hr, BPM]])[1:])
                              for i, hr in enumerate((83, 97))]:
            self.assertEqual(self.hits(needle), [], label)
        # positive control: the same search finds the needles in a plaintext copy
        probe = os.path.join(d.tmp, "probe.bin")
        with open(probe, "wb") as f:
            f.write(b"x" + NAME.encode() + needles[0] + b"y")
        with open(probe, "rb") as f:
            blob = f.read()
        self.assertIn(NAME.encode(), blob)
        self.assertIn(needles[0], blob)
        print("\nJ04: %d database files searched for the patient's name, MRN, birth date and "
              "the exact bytes of 2 readings: 0 hits" % len(self.files()))

        # -- J05: re-verification, and tampering found --
        r = self.verify_all()
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        n = int(out.split("verified ")[1].split()[0])
        self.assertGreaterEqual(n, 17)
        print("J05: verify-record --all: %s" % out.strip().splitlines()[-1])
        def edit(*statements):
            """What a DBA with the file does: open, change, commit, close."""
            db = sqlite3.connect(d.data)
            try:
                for sql, args in statements:
                    db.execute(sql, args)
                db.commit()
            finally:
                db.close()

        db = sqlite3.connect("file:%s?mode=ro" % d.data, uri=True)
        (rid, ct), = db.execute("SELECT id, ct FROM readings WHERE dev = ? AND ctr = 900001",
                                (lot[1],))
        rows = db.execute("SELECT id, iv, ct FROM readings ORDER BY id LIMIT 2").fetchall()
        db.close()
        bad = bytearray(ct)
        bad[len(bad) // 2] ^= 0x04
        upd = "UPDATE readings SET ct = ? WHERE id = ?"
        edit((upd, (bytes(bad), rid)))
        r = self.verify_all()
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, out)
        self.assertIn("record %d: FAIL" % rid, out)
        self.assertIn("1 failed", out)
        edit((upd, (ct, rid)))
        r = self.verify_all()
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        # swap two rows' ciphertexts (and IVs): both fail
        (a, iva, cta), (b, ivb, ctb) = rows
        swap = "UPDATE readings SET iv = ?, ct = ? WHERE id = ?"
        edit((swap, (ivb, ctb, a)), (swap, (iva, cta, b)))
        out = self.verify_all().stdout.decode()
        self.assertIn("record %d: FAIL" % a, out)
        self.assertIn("record %d: FAIL" % b, out)
        edit((swap, (iva, cta, a)), (swap, (ivb, ctb, b)))
        r = self.verify_all()
        self.assertEqual(r.returncode, 0, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
