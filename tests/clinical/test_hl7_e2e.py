"""test_hl7_e2e.py — HL7 v2 out of a running hub, end to end (docs/hl7.md;
clinical.md §4; threats G05, G10).

A real deployment: medtrustd with hl7_dest pointing at `medtrust hl7
listen` (the MLLP receiver medtrust ships for tests and for sites that
pull), the fleet simulator streaming vitals for patients assigned to its
devices.  The receiver is stopped for 60 s while data flows, then started
again: every message the journal holds arrives afterwards, in journal
order, none missing, none twice (MSH-10 is derived from the journal seq,
so the receiver can de-duplicate; G10).  Messages are parsed with Debian's
python3-hl7, a parser medtrust did not write.  Then the receiver answers
AE: the messages are parked, the hub raises a technical alarm and moves
on.
"""
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
import telemetry_util as T  # noqa: E402

OUTAGE_S = int(os.environ.get("MT_HL7_OUTAGE_S", "60"))


def read_messages(path):
    """The listener's file: length, newline, message, newline."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        j = data.index(b"\n", i)
        n = int(data[i:j])
        out.append(data[j + 1:j + 1 + n].decode("utf-8"))
        i = j + 1 + n + 1
    return out


def control_id(msg):
    return msg.split("\r", 1)[0].split("|")[9]


class Hl7Export(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        try:
            import hl7  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("python3-hl7 is not installed")
        cls.port = T.U.free_port()
        d = cls.d = T.Deployment("mt-hl7-", hub_conf=[
            "hl7_dest ehr=127.0.0.1:%d" % cls.port, "hl7_ack_timeout_s 2"])
        cls.listener = None
        try:
            cls.devs = d.make_lot("lot", 4, prefix="hl7d")
            for i, dev in enumerate(cls.devs):
                r = T.U.sh([T.U.BIN, "patient", "add", "--name", "Ann|Lee^%d" % i, "--mrn",
                            "H%04d" % i, "--ward", "ICU", "--bed", str(i), "-c", d.conf],
                           env=d.env())
                assert r.returncode == 0, r.stderr
                pid = r.stdout.decode().split()[-1]
                r = T.U.sh([T.U.BIN, "patient", "assign", dev, pid, "-c", d.conf],
                           env=d.env())
                assert r.returncode == 0, r.stderr
            d.start_hub()
            d.start_broker()
        except BaseException:
            d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.listener is not None:
            cls.listener.kill()
            cls.listener.wait()
        cls.d.cleanup()

    def listen(self, answer="AA", out="received.txt"):
        path = self.d.p(out)
        with open(self.d.p("listener.log"), "ab") as log:
            p = subprocess.Popen([T.U.BIN, "hl7", "listen", "--port", str(self.port),
                                  "--out", path, "--answer", answer], stdout=log, stderr=log,
                                 env=self.d.env())
        deadline = time.monotonic() + 10
        while not self.d._listening(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        type(self).listener = p
        return path

    def stop_listener(self):
        self.listener.send_signal(signal.SIGTERM)
        self.listener.wait(timeout=10)
        type(self).listener = None

    def journal(self):
        with self.d.db() as c:
            return [r[0] for r in c.execute("SELECT seq FROM journal ORDER BY seq")]

    def wait_delivered(self, path, upto, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = [control_id(m) for m in read_messages(path)]
            if ids and int(ids[-1].rsplit("-", 1)[1]) >= upto:
                return ids
            time.sleep(0.5)
        return [control_id(m) for m in read_messages(path)]

    def test_outage_loses_nothing_then_AE_is_parked_and_alarmed(self):
        import hl7
        path = self.listen()
        self.d.start_sim("sim", "lot", extra=["--rate", "60"])
        time.sleep(15)
        before = read_messages(path)
        self.assertGreater(len(before), 0, "nothing delivered while the receiver was up")
        # the receiver goes away for OUTAGE_S while data keeps flowing
        self.stop_listener()
        t0 = time.monotonic()
        n0 = len(self.journal())
        time.sleep(OUTAGE_S)
        n1 = len(self.journal())
        self.assertGreater(n1, n0, "no data flowed during the outage")
        self.listen()
        self.d.kill("sim", signal.SIGTERM)
        time.sleep(2)
        seqs = self.journal()
        ids = self.wait_delivered(path, seqs[-1])
        got = [int(x.rsplit("-", 1)[1]) for x in ids]
        print("journal %d entries; delivered %d messages (outage %d s, %d entries queued "
              "during it); resumed in %.1f s" % (len(seqs), len(got), OUTAGE_S, n1 - n0,
                                                time.monotonic() - t0 - OUTAGE_S))
        self.assertEqual(got, sorted(got), "delivery out of order")
        self.assertEqual(len(got), len(set(got)), "a message arrived twice")
        self.assertEqual(got, seqs, "messages missing: %s" % sorted(set(seqs) - set(got))[:20])
        # an independent parser reads every one
        msgs = read_messages(path)
        pcd01 = [hl7.parse(m) for m in msgs if "ORU^R01" in m.split("\r", 1)[0]]
        self.assertGreater(len(pcd01), 0)
        for m in pcd01[:50]:
            self.assertEqual(str(m.segment("MSH")[21]),
                             "IHE_PCD_001^IHE PCD^1.3.6.1.4.1.19376.1.6.1.1.1^ISO")
            self.assertTrue(str(m.segment("PID")[3]).startswith("H0"))
            self.assertEqual(str(m.segment("PID")[3][0][4]), "MR")
        # the receiver answers AE: parked, a technical alarm, and the cursor moves on
        self.stop_listener()
        path2 = self.listen(answer="AE", out="refused.txt")
        self.d.start_sim("sim2", "lot", extra=["--rate", "60"])
        deadline = time.monotonic() + 40
        alarm = []
        while time.monotonic() < deadline and not alarm:
            with self.d.db() as c:
                alarm = c.execute("SELECT type, text FROM alarms WHERE cond = 'hl7:ehr'"
                                  ).fetchall()
            time.sleep(0.5)
        self.assertTrue(alarm, "no technical alarm for parked messages")
        self.assertEqual(alarm[0][0], "ST")
        self.assertGreater(len(read_messages(path2)), 1, "the hub stopped at the first AE")
        self.assertIn("parked", self.d.log("hub"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
