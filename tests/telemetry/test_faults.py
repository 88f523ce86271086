"""test_faults.py — the fault-injection list of threats.md §2 that concerns
the telemetry path, short versions for every `make test`: FI01 (broker
graceful restarts), FI03 (hub SIGKILL at each fail point of the commit
path, then at random), FI04 (hub paused), FI05 (hub's disk full), FI14
(degraded and flapping link).  (FI02 and FI12 are in test_noloss.py, FI09
in tests/security/test_store_*.c.)

Each case runs its own deployment and simulator with the ledger on, stops
producing, drains the queues, and prints the per-device ledger (sent,
receipted, stored, lost, duplicates, unexpected); the invariants are lost
0, duplicates 0, unexpected 0 and, after the drain, every counter sent
stored.  The figures the list asks for (drain time, time to alarm) are
printed with it.
"""
import os
import re
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import telemetry_util as T  # noqa: E402

OPTS = ["--batch-ms", "1000", "--status-ms", "10000", "--rate", "120", "--scenario", "mixed",
        "--seed", "7"]


def counts(d, name="hub"):
    """Ask medtrustd for its counters (SIGUSR1) and parse the line."""
    before = d.log(name).count("medtrustd: ingest (")
    d.send(name, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = d.log(name)
        if log.count("medtrustd: ingest (") > before:
            line = [ln for ln in log.splitlines() if "medtrustd: ingest (" in ln][-1]
            return {k: int(v) for k, v in re.findall(r" (\w+)=(\d+)", line)}
        time.sleep(0.05)
    raise AssertionError("medtrustd printed no counters:\n" + d.log(name)[-2000:])


class Faults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)

    def setUp(self):
        self.d = None

    def tearDown(self):
        if self.d is not None:
            self.d.cleanup()

    def wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.1)
        self.fail("timed out waiting for %s\n--- hub\n%s" % (what, self.d.log("hub")[-3000:]))

    def start(self, n, hub_env=None, relay=False):
        d = self.d = T.Deployment("mt-fault-")
        d.make_lot("lot", n)
        d.start_hub(hub_env)
        d.start_broker()
        self.wait(lambda: d.hub_connected(), 20, "the hub to reach the broker")
        self.relay = T.Relay(d.broker_port) if relay else None
        broker = "mqtts://localhost:%d" % self.relay.port if relay else None
        d.start_sim("sim", "lot", OPTS, broker=broker)
        self.wait(lambda: d.count_readings() >= n, 60, "the first readings")
        return d

    def restart_hub(self, env=None):
        d = self.d
        before = d.log("hub").count("connected to the broker")
        d.start_hub(env)
        self.wait(lambda: d.hub_connected(before), 30, "the hub to reconnect")

    def finish(self, title, n):
        """Stop producing, drain, reconcile; assert the invariants."""
        d = self.d
        self.assertEqual(d.kill("sim", signal.SIGTERM, timeout=60), 0, d.log("sim")[-2000:])
        if self.relay is not None:  # the link is healed for the drain
            self.relay.delay, self.relay.chunk = 0.0, 0
            self.relay.online()
        t = time.monotonic()
        broker = "mqtts://localhost:%d" % self.relay.port if self.relay else None
        d.start_sim("drain", "lot", ["--drain", "--duration", "150"], broker=broker)
        d.procs["drain"].wait(timeout=200)
        drain = time.monotonic() - t
        self.assertIn("drained", d.log("drain"), d.log("drain")[-2000:])
        time.sleep(1.5)
        tot = d.reconcile(title)
        print("drain: %.1f s" % drain)
        self.assertEqual(len(d.ledger_sets()[0]), n)
        self.assertGreater(tot["sent"], n * 5)
        for k, what in (("lost", "receipted but not stored"), ("dup", "stored twice"),
                        ("unexpected", "stored but never sent"),
                        ("unsent", "sent but not stored after the drain")):
            self.assertEqual(tot[k], 0, what)
        if self.relay is not None:
            self.relay.close()
        return tot

    def test_FI01_broker_graceful_restarts(self):
        d = self.start(8)
        for _ in range(3):
            time.sleep(8)
            self.assertEqual(d.kill("broker", signal.SIGTERM), 0)
            d.start_broker()
        time.sleep(8)
        self.finish("FI01 broker restarted gracefully 3 times", 8)

    def test_FI03_hub_killed_at_each_fail_point(self):
        d = self.start(8, hub_env={"MEDTRUST_FAILPOINT": "before_begin:15"})
        saw = []
        for point in ("mid_txn:15", "after_commit:15", "after_receipt:15", None):
            p = d.procs["hub"]
            p.wait(timeout=60)  # the fail point SIGKILLs it
            self.assertEqual(p.returncode, -signal.SIGKILL, d.log("hub")[-2000:])
            saw.append(d.log("hub").count("fail point"))
            self.restart_hub({"MEDTRUST_FAILPOINT": point} if point else None)
        # and a random kill loop
        for pause in (5.3, 7.1):
            time.sleep(pause)
            d.kill("hub")
            self.restart_hub()
        time.sleep(5)
        self.assertEqual(d.log("hub").count("fail point"), 4, saw)
        self.finish("FI03 hub SIGKILL at before_begin, mid_txn, after_commit, after_receipt, "
                    "and twice at random", 8)
        # (iii) committed but never receipted: resent, and absorbed as
        # duplicates by the hub that runs now (which saw the drain).
        c = counts(d)
        print("FI03: last hub's counters %r" % c)
        self.assertGreater(c.get("duplicate", 0), 0, "no resend absorbed as a duplicate")

    def test_FI04_hub_paused(self):
        d = self.start(8)
        time.sleep(3)
        d.send("hub", signal.SIGSTOP)
        time.sleep(20)
        sent_before = {k: set(v) for k, v in d.ledger_sets()[0].items()}
        d.send("hub", signal.SIGCONT)
        t = time.monotonic()

        def caught_up():
            st = d.stored()
            return all(s <= set(st.get(dev, [])) for dev, s in sent_before.items())
        self.wait(caught_up, 90, "the backlog after SIGCONT")
        print("\nFI04: hub stopped 20 s; backlog stored %.1f s after SIGCONT" %
              (time.monotonic() - t))
        self.finish("FI04 hub paused (SIGSTOP) 20 s", 8)

    def test_FI05_hub_disk_full(self):
        flag = "/tmp/mt-fi05-%d" % os.getpid()
        d = self.start(6, hub_env={"MEDTRUST_FAILPOINT": "disk_full:" + flag})
        time.sleep(3)
        n0 = d.count_readings()
        open(flag, "w").close()
        t = time.monotonic()
        self.wait(lambda: "ALARM: storing" in d.log("hub"), 20, "the disk-full alarm")
        alarm = time.monotonic() - t
        time.sleep(2)
        c1 = counts(d)
        time.sleep(10)
        c2 = counts(d)
        n1 = d.count_readings()
        os.unlink(flag)
        print("\nFI05: time to alarm %.2f s; receipts while full: %d; stored while full: %d" %
              (alarm, c2.get("receipts", 0) - c1.get("receipts", 0), n1 - n0))
        self.assertEqual(c2.get("receipts", 0), c1.get("receipts", 0), "receipts while full")
        self.assertGreater(c2.get("store_failed", 0), c1.get("store_failed", 0))
        self.assertLessEqual(n1 - n0, 6 * 3, "rows committed after the disk filled")
        self.finish("FI05 disk full 12 s", 6)

    def test_FI14_degraded_and_flapping_link(self):
        d = self.start(3, relay=True)
        self.relay.delay, self.relay.chunk = 0.2, 256  # ~1.3 kB/s each way, 0.2 s a hop
        for _ in range(4):
            time.sleep(6)
            self.relay.offline()  # flapping: every connection cut
            time.sleep(1)
            self.relay.online()
        time.sleep(6)
        c = counts(d)
        bad = {k: v for k, v in c.items()
               if k not in ("received", "stored", "duplicate", "receipts", "alerts", "p50",
                            "p99", "hub_p50", "hub_p99")}
        self.assertEqual(bad, {}, "false refusals on a degraded link")
        self.finish("FI14 degraded link (0.2 s per 256 B) cut 4 times", 3)


if __name__ == "__main__":
    unittest.main(verbosity=2)
