"""test_ingest_threats.py — threats.md group A (end to end) and H, from the
attacker's side: packets made with a real device's keys (`medtrust packet
seal`, then altered here) and published with that device's own identity
over the real broker (`medtrust-device inject`) to the real hub.  Each
refusal is checked where an operator sees it — the hub's counter for the
stage, the audit chain — and against storage: nothing refused is stored,
and good data still is.  (The verifier's own sweeps — every byte flipped,
every Wycheproof signature — are in tests/security/test_threats_packet.c;
the broker's rows C01–C11 in tests/broker/test_broker.py.)
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import telemetry_util as T  # noqa: E402
import mtp1ref as R  # noqa: E402
from test_faults import counts  # noqa: E402

HR, BPM, SPO2, PCT = 147842, 264864, 150456, 262688


def onboard(d, lot, devs):
    """Run each device of `lot` once through enrolment and onboarding."""
    for dev in devs:
        r = U_run([T.AGENT, "run", "--once", "--device", d.p(lot, dev), "--hub",
                   "https://localhost:%d" % d.hub_port, "--hub-ca",
                   d.p("HUB", "pki", "ca.pem")], d)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())


def wait_connected(d, since=0, timeout=30):
    deadline = time.monotonic() + timeout
    while not d.hub_connected(since) and time.monotonic() < deadline:
        time.sleep(0.1)


class AttackerTools:
    """Seal packets with a real device's keys and publish them as it.
    Needs self.d (a Deployment) and self.devs (device ids of lot "lot")."""

    # -- tools --
    def dev(self, i):
        return self.devs[i], self.d.p("lot", self.devs[i])

    def epoch(self, ddir):
        with open(os.path.join(ddir, "bundle.json")) as f:
            return json.load(f)["epoch"]

    def msg(self, dev, ctr, ts=None, hr=72, typ=1, **extra):
        m = {"dev": dev, "ctr": ctr, "ts": int(time.time() * 1000) if ts is None else ts,
             "typ": typ}
        if typ == 1:
            m["obs"] = [[0, HR, hr, BPM], [0, SPO2, 97, PCT]]
        m.update(extra)
        return m

    def seal(self, ddir, m, epoch=None, fast=False, device=None):
        args = [T.U.BIN, "packet", "seal", "--ldev", "file:%s/ldev.key" % ddir, "--kx",
                "file:%s/kx.key" % ddir, "--hub-kx", self.d.p("HUB", "pki", "hub-kx.pub.pem"),
                "--epoch", str(self.epoch(ddir) if epoch is None else epoch)]
        if fast:
            args.append("--fast")
        if device:
            args += ["--device", device]
        r = T.U.sh(args, data=json.dumps(m).encode(), env=self.d.env())
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout

    def inject(self, ddir, packets, leaf="vitals", repeat=1, wait=3):
        files = []
        for i, p in enumerate(packets):
            path = os.path.join(self.d.tmp, "pkt-%d-%d" % (os.getpid(), random.getrandbits(40)))
            with open(path, "wb") as f:
                f.write(p)
            files.append(path)
        r = U_run([T.AGENT, "inject", "--device", ddir, "--hub",
                   "https://localhost:%d" % self.d.hub_port, "--hub-ca",
                   self.d.p("HUB", "pki", "ca.pem"), "--leaf", leaf, "--repeat", str(repeat),
                   "--wait", str(wait)] + files, self.d, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout.decode() + r.stderr.decode())
        ranges = []
        for line in r.stdout.decode().splitlines():
            if line.startswith("rcpt "):
                a, b = line.split()[1:]
                ranges.append((int(a), int(b)))
        return ranges

    def stored(self, dev):
        return sorted(self.d.stored().get(dev, []))

    def delta(self, before, after, key):
        return after.get(key, 0) - before.get(key, 0)

    def refused_audit(self, dev):
        r = T.U.sh([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"), "-n",
                    "2000"], env=self.d.env())
        recs = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
        return [a for a in recs if a["action"] == "packet.refused" and a.get("subject") == dev]

    def covered(self, ranges, ctr):
        return any(a <= ctr <= b for a, b in ranges)



class IngestThreats(AttackerTools, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        d = cls.d = T.Deployment("mt-threats-")
        try:
            cls.devs = d.make_lot("lot", 7, prefix="atk")
            cls.good = d.make_lot("good", 4, prefix="good")
            d.start_hub()
            d.start_broker()
            wait_connected(d, timeout=20)
            onboard(d, "lot", cls.devs)  # the attackers' devices
        except BaseException:
            d.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    # -- group A --
    def test_A01_bit_flips_refused_window_unchanged(self):
        dev, ddir = self.dev(0)
        good = self.seal(ddir, self.msg(dev, 1000))
        flips = []
        for pos in (31, 40, len(good) // 2, len(good) - 17, len(good) - 1):
            b = bytearray(good)
            b[pos] ^= 0x01
            flips.append(bytes(b))
        c0 = counts(self.d)
        self.inject(ddir, flips)
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "aead"), len(flips))
        self.assertEqual(self.stored(dev), [])
        # the window did not move: the genuine packet is still new
        ranges = self.inject(ddir, [good])
        self.assertEqual(self.stored(dev), [1000])
        self.assertTrue(self.covered(ranges, 1000), ranges)
        recs = self.refused_audit(dev)
        self.assertTrue(any(a["detail"]["stage"] == "aead" for a in recs), recs)

    def test_A02_truncated_or_extended_tag_refused(self):
        dev, ddir = self.dev(1)
        good = self.seal(ddir, self.msg(dev, 10))
        bad = [good[:-1], good[:-4], good + b"\x00"]
        c0 = counts(self.d)
        self.inject(ddir, bad)
        c1 = counts(self.d)
        refused = sum(self.delta(c0, c1, k) for k in ("cbor", "header", "aead"))
        self.assertEqual(refused, len(bad), (c0, c1))
        self.assertEqual(self.stored(dev), [])

    def test_A11_A12_A13_A15_replay(self):
        dev, ddir = self.dev(2)
        p5000 = self.seal(ddir, self.msg(dev, 5000))
        c0 = counts(self.d)
        ranges = self.inject(ddir, [p5000], repeat=3)
        c1 = counts(self.d)
        # A11: exact replay is a duplicate — receipted, stored once
        self.assertEqual(self.stored(dev), [5000])
        self.assertEqual(self.delta(c0, c1, "duplicate"), 2)
        self.assertTrue(self.covered(ranges, 5000))
        # A12: below the window
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 5000 - 1024))])
        c2 = counts(self.d)
        self.assertEqual(self.delta(c1, c2, "replay"), 1)
        # inside the window, not seen: accepted (reordering is not an attack)
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 5000 - 1023))])
        self.assertEqual(self.stored(dev), [5000 - 1023, 5000])
        # A15: a jump of more than 2^20 is refused and alarmed
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 5000 + (1 << 21)))])
        c3 = counts(self.d)
        self.assertEqual(self.delta(c2, c3, "counter_jump"), 1)
        self.assertNotIn(5000 + (1 << 21), self.stored(dev))
        self.assertTrue(any("counter jump" in a["detail"].get("detail", "") for a in self.refused_audit(dev)))
        # A13: after a hub restart the window still holds
        before = self.d.log("hub").count("connected to the broker")
        self.d.kill("hub", signal.SIGKILL)
        self.d.start_hub()
        deadline = time.monotonic() + 30
        while not self.d.hub_connected(before) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.inject(ddir, [p5000])
        c4 = counts(self.d)
        self.assertEqual(c4.get("duplicate", 0), 1, c4)
        self.assertEqual(self.stored(dev), [5000 - 1023, 5000])

    def test_A18_wrong_epoch_refused_before_decryption(self):
        dev, ddir = self.dev(3)
        e = self.epoch(ddir)
        c0 = counts(self.d)
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 1), epoch=e + 1),
                           self.seal(ddir, self.msg(dev, 2), epoch=e + 7)])
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "epoch"), 2)
        self.assertEqual(self.stored(dev), [])

    def test_A19_A20_fast_packets(self):
        dev, ddir = self.dev(4)
        alert = self.msg(dev, 300, typ=2, alrt={"code": 1001, "prio": 3, "text": "SpO2 low"},
                         obs=[[0, SPO2, 82, PCT]])
        fast = self.seal(ddir, alert, fast=True)
        c0 = counts(self.d)
        # A19: a fast packet on up/vitals is refused at stage inner
        self.inject(ddir, [fast], leaf="vitals")
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "inner"), 1)
        # on up/alert it raises one alert; A20: its replay raises no second
        ranges = self.inject(ddir, [fast], leaf="alert", repeat=2)
        c2 = counts(self.d)
        self.assertEqual(self.delta(c1, c2, "alerts"), 1)
        self.assertEqual(self.delta(c1, c2, "duplicate"), 1)
        self.assertTrue(self.covered(ranges, 300))
        # observations are never stored from a fast packet
        with self.d.db() as c:
            self.assertEqual(c.execute("SELECT count(*) FROM readings WHERE dev = ?",
                                       (dev,)).fetchone()[0], 0)

    def test_A23_A25_A26_message_checks(self):
        dev, ddir = self.dev(5)
        other = self.devs[0]
        c0 = counts(self.d)
        # A23: dev in the message is another device's
        self.inject(ddir, [self.seal(ddir, self.msg(other, 40), device=dev)])
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "dev"), 1)
        # A26: implausible value; its counter is marked seen all the same
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 41, hr=10000))])
        c2 = counts(self.d)
        self.assertEqual(self.delta(c1, c2, "implausible"), 1)
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 41))])
        c3 = counts(self.d)
        self.assertEqual(self.delta(c2, c3, "duplicate"), 1)
        self.assertEqual(self.stored(dev), [])
        # A25: six minutes ahead is stored, flagged, alarmed; a year old is stored stale
        now = int(time.time() * 1000)
        self.inject(ddir, [self.seal(ddir, self.msg(dev, 50, ts=now + 6 * 60 * 1000)),
                           self.seal(ddir, self.msg(dev, 51, ts=now - 365 * 86400 * 1000))])
        with self.d.db() as c:
            flags = dict(c.execute("SELECT ctr, flags FROM readings WHERE dev = ?", (dev,)))
        self.assertEqual(flags, {50: 1, 51: 2})
        self.assertIn("TECHNICAL ALARM: %s clock ahead" % dev, self.d.log("hub"))

    def test_A16_iv_reuse_alarmed(self):
        # A device (or its thief) encrypting two messages under one IV: the
        # test holds the device's key files (encrypted PKCS#8, protocol §9)
        # and seals with the independent implementation, choosing the IV.
        from cryptography.hazmat.primitives import serialization
        dev, ddir = self.dev(6)
        pw = T.U.PASS.encode()

        def key(name):
            with open(os.path.join(ddir, name), "rb") as f:
                return serialization.load_pem_private_key(f.read(), password=pw)
        with open(self.d.p("HUB", "pki", "hub-kx.pub.pem"), "rb") as f:
            hub_kx = serialization.load_pem_public_key(f.read())
        epoch = self.epoch(ddir)
        k = R.data_key(R.ecdh_x(key("kx.key"), hub_kx), epoch, dev)
        iv = os.urandom(12)
        now = int(time.time() * 1000)
        a, b = (R.seal({1: dev, 2: c, 3: now, 4: 1, 5: [[0, HR, 70 + c % 5, BPM]]}, k, epoch,
                       dev, signer=key("ldev.key"), iv=iv) for c in (700, 701))
        c0 = counts(self.d)
        self.inject(ddir, [a, a])  # an exact replay is a duplicate, not an alarm
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "iv_reuse"), 0)
        self.inject(ddir, [b])
        c2 = counts(self.d)
        self.assertEqual(self.delta(c1, c2, "iv_reuse"), 1)
        self.assertIn("SECURITY ALARM: %s: IV reuse" % dev, self.d.log("hub"))
        self.assertTrue(any(r["detail"]["stage"] == "iv_reuse" for r in self.refused_audit(dev)))
        self.assertEqual(sorted(self.stored(dev)), [700, 701])  # both authentic: kept

    # -- group H --
    def test_H03_oversized_packet_refused(self):
        dev, ddir = self.dev(1)
        c0 = counts(self.d)
        # up to the broker's 128 KiB the hub sees it and refuses it by size
        self.inject(ddir, [os.urandom(65537), os.urandom(130000)])
        c1 = counts(self.d)
        self.assertEqual(self.delta(c0, c1, "size"), 2)
        self.assertEqual(self.stored(dev), [])
        # beyond it, MQTT 5's maximum packet size stops it at the device's side
        path = os.path.join(self.d.tmp, "huge")
        with open(path, "wb") as f:
            f.write(os.urandom(200000))
        r = U_run([T.AGENT, "inject", "--device", ddir, "--hub",
                   "https://localhost:%d" % self.d.hub_port, "--hub-ca",
                   self.d.p("HUB", "pki", "ca.pem"), "--wait", "1", path], self.d)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"published 0 of 1", r.stdout)
        self.assertEqual(self.delta(c1, counts(self.d), "received"), 0)

    def test_H04_H09_garbage_flood_does_not_delay_others(self):
        d = self.d
        d.start_sim("good", "good", ["--batch-ms", "500", "--rate", "240", "--scenario",
                                     "stable"])
        deadline = time.monotonic() + 60
        while len([x for x in d.stored() if x.startswith("good")]) < 4:
            self.assertLess(time.monotonic(), deadline, d.log("good"))
            time.sleep(0.2)
        time.sleep(2)
        d.send("hub", signal.SIGUSR2)
        time.sleep(12)
        base = counts(d)
        dev, ddir = self.dev(0)
        junk = bytes([0xd0, 0x83]) + os.urandom(300)
        d.send("hub", signal.SIGUSR2)
        t = time.monotonic()
        self.inject(ddir, [junk], repeat=3000, wait=2)
        flood_s = time.monotonic() - t
        time.sleep(max(0.0, 12 - flood_s))
        flood = counts(d)
        d.kill("good", signal.SIGTERM)
        print("\nH04: the good devices' readings, arrival at the hub to commit: baseline "
              "p50/p99 %d/%d ms; during a flood of 3000 bad packets from one device: p50/p99 "
              "%d/%d ms (device timestamp to commit: %d/%d ms, then %d/%d ms); throttled %d" %
              (base["hub_p50"], base["hub_p99"], flood["hub_p50"], flood["hub_p99"],
               base["p50"], base["p99"], flood["p50"], flood["p99"],
               self.delta(base, flood, "throttled")))
        self.assertGreater(self.delta(base, flood, "throttled"), 0)
        self.assertLessEqual(flood["hub_p99"], max(2 * base["hub_p99"], 100))
        # H09: the flood is a handful of audit records, not thousands
        recs = self.refused_audit(dev)
        self.assertLessEqual(len(recs), 20, len(recs))


def U_run(args, d, timeout=60):
    return subprocess.run(args, capture_output=True, env=d.env(), timeout=timeout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
