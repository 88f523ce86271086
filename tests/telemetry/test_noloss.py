"""test_noloss.py — nothing genuine is lost (protocol §4a; threats FI02,
FI03, FI12).

50 soft devices for two minutes: 49 in one simulator connected straight to
the broker, one in another simulator behind a relay that takes it offline
for 60 s.  Meanwhile mosquitto is SIGKILLed and restarted, and medtrustd is
SIGKILLed twice and restarted.  Then the simulators stop (sealing what they
hold), and a drain run sends whatever is still queued until every queue is
empty.  The ledger (what each device sealed, what receipts confirmed)
against the store, per device: lost = receipted ∖ stored must be 0,
duplicates 0, unexpected 0 — and, after the drain, every counter sent is
stored (unsent 0).  The table is printed.

MT_NOLOSS_SECONDS shortens or lengthens the run (default 120 — in the
sanitizer build 60, where the point is memory safety under the same faults;
the fault times scale with it).
"""
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import telemetry_util as T  # noqa: E402

SECONDS = float(os.environ.get("MT_NOLOSS_SECONDS",
                               "60" if T.U.sanitizer_build(T.BUILD) else "120"))


class NoLoss(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        cls.d = T.Deployment("mt-noloss-")
        cls.lots = ["lotA", "lotB"]
        cls.a = cls.d.make_lot("lotA", 49)
        cls.b = cls.d.make_lot("lotB", 1, prefix="offline")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.2)
        self.fail("timed out waiting for %s\n--- hub\n%s\n--- broker\n%s" %
                  (what, self.d.log("hub")[-3000:], self.d.log("broker")[-2000:]))

    def test_FI02_FI03_FI12_no_loss_50_devices(self):
        d = self.d
        d.start_hub()
        d.start_broker()
        self.wait(lambda: d.hub_connected(), 20, "the hub to reach the broker")
        relay = T.Relay(d.broker_port)
        opts = ["--batch-ms", "2000", "--status-ms", "15000", "--rate", "60",
                "--scenario", "mixed", "--seed", "4242"]
        d.start_sim("simA", "lotA", opts)
        d.start_sim("simB", "lotB", opts, broker="mqtts://localhost:%d" % relay.port)
        self.wait(lambda: d.count_readings() > 50, 60, "the first readings")

        s = SECONDS / 120.0
        plan = [(20 * s, "broker SIGKILL"), (40 * s, "hub SIGKILL 1"),
                (50 * s, "device offline"), (75 * s, "hub SIGKILL 2"),
                (110 * s, "device online")]
        t0 = time.monotonic()
        log = []
        for at, what in plan:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            n = d.count_readings()
            if what == "broker SIGKILL":
                d.kill("broker")
                time.sleep(2)
                d.start_broker()
            elif what.startswith("hub SIGKILL"):
                before = d.log("hub").count("connected to the broker")
                d.kill("hub")
                d.start_hub()
                self.wait(lambda: d.hub_connected(before), 30, "the hub to reconnect")
            elif what == "device offline":
                relay.offline()
            elif what == "device online":
                relay.online()
            log.append("t=%5.1fs %-16s (stored so far: %d)" % (time.monotonic() - t0, what, n))
        time.sleep(max(0.0, t0 + SECONDS - time.monotonic()))
        print("\nfault schedule:\n  " + "\n  ".join(log))

        # Stop producing: SIGTERM seals what each device holds.
        for name in ("simA", "simB"):
            self.assertEqual(d.kill(name, signal.SIGTERM, timeout=60), 0, d.log(name)[-2000:])
        # Drain: nothing new, send what is queued until every queue is empty.
        t1 = time.monotonic()
        for name, lot, broker in (("drainA", "lotA", None),
                                  ("drainB", "lotB", "mqtts://localhost:%d" % relay.port)):
            d.start_sim(name, lot, ["--drain", "--duration", "120"], broker=broker)
        for name in ("drainA", "drainB"):
            p = d.procs[name]
            p.wait(timeout=180)
            self.assertIn("drained", d.log(name), d.log(name)[-2000:])
        drain_s = time.monotonic() - t1
        time.sleep(1.5)  # the last commit's receipt is already out; let the ledger settle
        queued = d.queue_sizes(self.lots)
        self.assertEqual(sum(queued.values()), 0, queued)

        tot = d.reconcile("no-loss, 50 devices, %.0f s" % SECONDS)
        print("drain after the faults: %.1f s" % drain_s)
        self.assertEqual(len(d.ledger_sets()[0]), 50, "every device sent")
        self.assertGreater(tot["sent"], 50 * SECONDS / 4)
        self.assertEqual(tot["lost"], 0, "receipted but not stored")
        self.assertEqual(tot["dup"], 0, "stored twice")
        self.assertEqual(tot["unexpected"], 0, "stored but never sent")
        self.assertEqual(tot["unsent"], 0, "sent but never stored after the drain")
        # The hub really went down twice and the device really was offline.
        self.assertGreaterEqual(d.log("hub").count("listening on"), 3)
        self.assertIn("lost the broker", d.log("simB"))
        relay.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
