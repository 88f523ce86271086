"""test_alarms.py — the clinical engine end to end (docs/alarms.md;
clinical.md §2, §3; threats A20, A25, A26, F12, F13).

A real deployment: medtrustd with its broker, devices onboarded, patients
on two wards assigned to them with the CLI, console users.  Packets are
sealed with the devices' own keys and published as them (the attacker's
tool, `medtrust-device inject`), so each case chooses exactly what the hub
receives.  What the engine did is read where a nurse and an auditor see
it: the console's live stream (Server-Sent Events), /api/alarms, the
alarms table, the audit chain.

  - a fast packet raises a device alarm at once, pushed on the stream of a
    clinician of the patient's ward and not on another ward's (F13);
  - its replay raises nothing (A20); an alert from a revoked device raises
    nothing clinical, and the revocation is a technical alarm;
  - implausible values are refused, never scored (A26); a reading from the
    future is stored, not scored, and raises a clock alarm (A25);
  - a vitals set scoring NEWS2 ≥ 7 raises one high alarm recording the
    readings that triggered it; its repeat is the same alarm;
  - acknowledge: a clinician of the ward may (audited, shown on the stream,
    acknowledged everywhere), a biomed or auditor may not (F12), nor a
    post without the CSRF token;
  - an unacknowledged medium alarm escalates after alarm_escalate_s;
  - a device that goes quiet raises "offline".
"""
import json
import os
import queue
import socket
import ssl
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
sys.path.insert(0, os.path.join(HERE, "..", "console"))
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import telemetry_util as T  # noqa: E402
from console_util import DeploymentCli  # noqa: E402
from test_console import Browser, csrf_of  # noqa: E402
from test_ingest_threats import AttackerTools, onboard, wait_connected  # noqa: E402

RR, SYS, TEMP, PR = 151562, 150021, 150364, 149530
HR, BPM, SPO2, PCT = 147842, 264864, 150456, 262688
RPM, MMHG, DEGC = 264928, 266016, 268192


class Stream:
    """An SSE client on its own thread: events into a queue."""

    def __init__(self, port, ca, cookie):
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(("localhost", port), timeout=30)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock.sendall(("GET /api/stream HTTP/1.1\r\nHost: localhost\r\nCookie: %s\r\n"
                           "Accept: text/event-stream\r\n\r\n" % cookie).encode())
        self.q = queue.Queue()
        self.seen = []  # every event read, for failure messages
        self.beats = 0  # tick events (the hub's heartbeat)
        self.head = b""
        self.status = None
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                if self.status is None and b"\r\n\r\n" in buf:
                    self.head, buf = buf.split(b"\r\n\r\n", 1)
                    self.status = int(self.head.split()[1])
                # chunked framing: strip chunk-size lines, keep event text
                text = buf
                while b"\n\n" in text:
                    block, text = text.split(b"\n\n", 1)
                    ev, dt = None, None
                    for line in block.split(b"\n"):
                        line = line.strip(b"\r")
                        if line.startswith(b"event: tick"):
                            self.beats += 1
                        if line.startswith(b"event: "):
                            ev = line[7:].decode()
                        elif line.startswith(b"data: "):
                            dt = line[6:].decode()
                    if ev:
                        self.seen.append((ev, dt))
                        self.q.put((time.monotonic(), ev, json.loads(dt) if dt else None))
                buf = text
        except OSError:
            pass
        self.q.put((time.monotonic(), "closed", None))

    def wait(self, pred, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                t, ev, data = self.q.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                break
            if pred(ev, data):
                return t, ev, data
        return None

    def close(self):
        # Shut down first and wait for the reader: closing the descriptor
        # under a thread blocked in recv() would let the next socket reuse
        # its number, and the old thread would read (and swallow) the new
        # stream's bytes.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.t.join(10)
        try:
            self.sock.close()
        except OSError:
            pass


class ClinicalAlarms(DeploymentCli, AttackerTools, unittest.TestCase):
    CLI_TIMEOUT = 60
    CLI_STRIP = True

    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        d = cls.d = T.Deployment("mt-clinical-", hub_conf=["alarm_escalate_s 4"])
        try:
            cls.devs = d.make_lot("lot", 8, prefix="clin")
            d.start_hub()
            d.start_broker()
            wait_connected(d, timeout=20)
            onboard(d, "lot", cls.devs)
            cls.ca = d.p("HUB", "pki", "ca.pem")
            cls.pid = {}
            for i, dev in enumerate(cls.devs):
                ward = "W1" if i < 6 else "W2"
                out = cls.cli_ok("patient", "add", "--name", "Patient %d" % i, "--mrn",
                                 "MRN%04d" % i, "--ward", ward, "--bed", str(i))
                pid = int(out.split()[-1]) if out.split()[-1].isdigit() else i + 1
                cls.pid[dev] = pid
                cls.cli_ok("patient", "assign", dev, str(pid))
        except BaseException:
            d.cleanup()
            raise

    # -- tools --

    def user(self, name, role, wards=()):
        otp = self.cli_ok("user", "add", name, "--role", role).split()[-1]
        if wards:
            self.cli_ok("user", "wards", name, *wards)
        b = Browser(self.d.hub_port, self.ca)
        st, h, page = b.get("/login")
        st, h, page = b.post("/login", {"user": name, "password": otp, "csrf": csrf_of(page)})
        self.assertEqual(st, 303, page)
        st, _, page = b.get("/password")
        new = "chosen-" + name + "-Passw0rd!"
        st, h, page = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                           "csrf": csrf_of(page)})
        self.assertEqual(st, 303, page)
        st, _, page = b.get("/ward")
        b.csrf = csrf_of(page)
        return b

    def stream(self, b):
        s = Stream(self.d.hub_port, self.ca, "; ".join("%s=%s" % kv for kv in b.jar.items()))
        self.assertIsNotNone(s.wait(lambda ev, _: ev == "hello", 10), "no hello on the stream")
        self.addCleanup(s.close)
        return s

    def alarms(self, where="1=1", args=()):
        with self.d.db() as c:
            c.row_factory = __import__("sqlite3").Row
            return [dict(r) for r in c.execute("SELECT * FROM alarms WHERE " + where, args)]

    def wait_alarm(self, where, args=(), timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            a = self.alarms(where, args)
            if a:
                return a
            time.sleep(0.1)
        return []

    def audit_actions(self, action):
        r = T.U.sh([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"), "-n",
                    "5000"], env=self.d.env())
        recs = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
        return [a for a in recs if a["action"] == action]

    def alert(self, dev, ctr, code=1001, prio=3, ts=None):
        m = self.msg(dev, ctr, ts=ts, typ=2, alrt={"code": code, "prio": prio,
                                                    "text": "SpO2 low"},
                     obs=[[0, SPO2, 82, PCT]])
        del m["obs"]
        m["obs"] = [[0, SPO2, 82, PCT]]
        return m

    def vitals(self, dev, ctr, rr=16, spo2=97, sys_=120, hr=72, temp=37.0, ts=None):
        m = self.msg(dev, ctr, ts=ts)
        m["obs"] = [[0, RR, rr, RPM], [0, SPO2, spo2, PCT], [0, SYS, sys_, MMHG],
                    [0, HR, hr, BPM], [0, TEMP, temp, DEGC]]
        return m

    # -- tests --
    def test_fast_alert_raises_alarm_on_the_stream_of_its_ward_only_F13(self):
        dev, ddir = self.dev(0)
        nurse1 = self.user("nurse1", "clinician", ["W1"])
        nurse2 = self.user("nurse2", "clinician", ["W2"])
        s1, s2 = self.stream(nurse1), self.stream(nurse2)
        t0 = time.monotonic()
        self.inject(ddir, [self.seal(ddir, self.alert(dev, 100), fast=True)], leaf="alert")
        got = s1.wait(lambda ev, x: ev == "alarm" and x["device"] == dev, 15)
        self.assertIsNotNone(got, "the ward's clinician saw no alarm event")
        self.assertEqual(got[2]["priority"], "high")
        self.assertEqual(got[2]["phase"], "start")
        self.assertEqual(got[2]["patient"], self.pid[dev])
        print("fast packet -> alarm on the stream: %.0f ms (inject included)"
              % ((got[0] - t0) * 1000))
        # the other ward's clinician got nothing of it (F13)
        self.assertIsNone(s2.wait(lambda ev, x: ev == "alarm" and x["device"] == dev, 2))
        rows = self.alarms("dev = ? AND cond = 'device:1001'", (dev,))
        self.assertEqual(len(rows), 1)
        self.assertTrue(rows[0]["readings"].startswith("a"), rows[0])
        # A20: the same fast packet again raises nothing
        self.inject(ddir, [self.seal(ddir, self.alert(dev, 100), fast=True)], leaf="alert")
        time.sleep(1)
        self.assertEqual(len(self.alarms("dev = ?", (dev,))), 1)

    def test_alert_from_a_revoked_device_raises_nothing_clinical(self):
        dev, ddir = self.dev(1)
        pkt = self.seal(ddir, self.alert(dev, 200), fast=True)
        self.cli_ok("device", "revoke", dev, "--reason", "keyCompromise")
        tech = self.wait_alarm("dev = ? AND cond = 'revoked'", (dev,))
        self.assertEqual(len(tech), 1, "the revocation raised no technical alarm")
        self.assertEqual(tech[0]["type"], "ST")
        try:  # the broker refuses the revoked device; if it got through, the hub would
            self.inject(ddir, [pkt], leaf="alert", wait=2)
        except AssertionError:
            pass
        time.sleep(2)
        self.assertEqual(self.alarms("dev = ? AND type = 'SP'", (dev,)), [],
                         "a revoked device raised a clinical alarm")

    def test_A26_implausible_values_refused_not_scored(self):
        dev, ddir = self.dev(2)
        bad = [self.vitals(dev, 10, hr=10000), self.vitals(dev, 11, spo2=250),
               self.vitals(dev, 12, temp=80.0)]
        self.inject(ddir, [self.seal(ddir, m) for m in bad])
        time.sleep(1)
        self.assertEqual(self.stored(dev), [])
        self.assertEqual(self.alarms("patient_id = ?", (self.pid[dev],)), [])
        with self.d.db() as c:
            n = c.execute("SELECT count(*) FROM news2 WHERE patient_id = ?",
                          (self.pid[dev],)).fetchone()[0]
        self.assertEqual(n, 0, "an implausible value was scored")

    def test_G07_extreme_values_and_unit_mismatch_refused_no_alert(self):
        # NaN and ±Inf cannot even be encoded: CBOR floats must be finite
        # (MT_ERR_CBOR_FLOAT_NONFINITE, tests/unit); here what can be sent.
        dev, ddir = self.dev(7)
        bad = [self.vitals(dev, 60, hr=1e308), self.vitals(dev, 61, spo2=-1e308)]
        wrong_unit = self.vitals(dev, 62)
        wrong_unit["obs"][1] = [0, SPO2, 85, BPM]  # SpO2 in beats per minute
        bad.append(wrong_unit)
        self.inject(ddir, [self.seal(ddir, m) for m in bad])
        time.sleep(1)
        self.assertEqual(self.stored(dev), [])
        self.assertEqual(self.alarms("patient_id = ?", (self.pid[dev],)), [])

    def test_A25_future_reading_stored_not_scored_clock_alarm(self):
        dev, ddir = self.dev(3)
        future = int(time.time() * 1000) + 6 * 60 * 1000
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, 20, rr=35, spo2=80, sys_=80,
                                                       hr=150, temp=40.0, ts=future))])
        clock = self.wait_alarm("dev = ? AND cond = 'clock'", (dev,))
        self.assertEqual(len(clock), 1)
        self.assertEqual(self.stored(dev), [20])
        self.assertEqual(self.alarms("patient_id = ? AND type = 'SP'", (self.pid[dev],)), [])
        # a fast packet a year old raises nothing either
        old = int(time.time() * 1000) - 365 * 86400 * 1000
        self.inject(ddir, [self.seal(ddir, self.alert(dev, 21, ts=old), fast=True)],
                    leaf="alert")
        time.sleep(1)
        self.assertEqual(self.alarms("dev = ? AND cond LIKE 'device:%'", (dev,)), [])

    def test_news2_high_alarm_records_its_readings_and_acknowledge_F12(self):
        dev, ddir = self.dev(4)
        pid = self.pid[dev]
        nurse = self.user("nurse4", "clinician", ["W1"])
        biomed = self.user("bio4", "biomed")
        auditor = self.user("aud4", "auditor")
        s = self.stream(nurse)
        # RR 26 (3), SpO2 90 (3), air (0), sys 95 (2), HR 120 (2), A (0), 38.5 (1) = 11
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, 30, rr=26, spo2=90, sys_=95,
                                                       hr=120, temp=38.5))])
        got = s.wait(lambda ev, x: ev == "alarm" and x["patient"] == pid and
                     x["cond"] == "news2", 15)
        self.assertIsNotNone(got, s.seen[-8:])
        self.assertEqual(got[2]["priority"], "high")
        rows = self.alarms("patient_id = ? AND cond = 'news2'", (pid,))
        self.assertEqual(len(rows), 1)
        self.assertIn("NEWS2 11", rows[0]["text"])
        with self.d.db() as c:
            rid = c.execute("SELECT id FROM readings WHERE dev = ? AND ctr = 30",
                            (dev,)).fetchone()[0]
            score = c.execute("SELECT score FROM news2 WHERE patient_id = ? ORDER BY id DESC",
                              (pid,)).fetchone()[0]
        self.assertIn("r%d" % rid, rows[0]["readings"].split(","))
        self.assertEqual(score, 11)
        # the same condition again is the same alarm
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, 31, rr=26, spo2=90, sys_=95,
                                                       hr=120, temp=38.5))])
        time.sleep(1)
        self.assertEqual(len(self.alarms("patient_id = ? AND cond = 'news2'", (pid,))), 1)
        aid = rows[0]["id"]
        # F12: no clinical rights, no acknowledgement; no CSRF token, none either
        for b in (biomed, auditor):
            st, _, body = b.post("/api/alarms/ack", {"id": str(aid), "csrf": b.csrf})
            self.assertEqual(st, 403, body)
        st, _, body = nurse.post("/api/alarms/ack", {"id": str(aid)})
        self.assertEqual(st, 403, body)
        self.assertEqual(self.alarms("id = ?", (aid,))[0]["state"], "active")
        # the biomed's refused by the alarm's type, the auditor's by the role's routes
        refused = [a for a in self.audit_actions("alarm.ack") if a["outcome"] == "refused"]
        self.assertGreaterEqual(len(refused), 1)
        self.assertTrue(any(a["actor"] == "user:aud4" and
                            a["detail"].get("path") == "/api/alarms/ack"
                            for a in self.audit_actions("console.forbidden")))
        st, _, body = nurse.post("/api/alarms/ack", {"id": str(aid), "csrf": nurse.csrf})
        self.assertEqual(st, 200, body)
        got = s.wait(lambda ev, x: ev == "alarm" and x["alarm"] == aid and x["phase"] == "ack")
        self.assertIsNotNone(got, s.seen[-8:])
        self.assertEqual(got[2]["by"], "nurse4")
        row = self.alarms("id = ?", (aid,))[0]
        self.assertEqual((row["state"], row["acked_by"]), ("acknowledged", "nurse4"))
        st, _, body = biomed.get("/api/alarms")
        self.assertEqual(st, 200)
        mine = [a for a in json.loads(body)["alarms"] if a["alarm"] == aid]
        self.assertEqual(mine[0]["state"], "acknowledged")
        trans = [a for a in self.audit_actions("alarm.transition")
                 if a["detail"].get("alarm") == aid]
        phases = [t["detail"]["phase"] for t in trans]
        self.assertEqual(phases[0], "start")
        self.assertIn("ack", phases)  # (it may have escalated before: alarm_escalate_s is 4)
        # a second acknowledgement is refused: the alarm is not active
        st, _, body = nurse.post("/api/alarms/ack", {"id": str(aid), "csrf": nurse.csrf})
        self.assertEqual(st, 409, body)
        # back to normal: resolved
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, 32))])
        self.assertTrue(self.wait_alarm("id = ? AND state = 'resolved'", (aid,)))

    def test_unacknowledged_medium_alarm_escalates(self):
        dev, ddir = self.dev(5)
        self.inject(ddir, [self.seal(ddir, self.alert(dev, 300, code=1004, prio=2),
                                     fast=True)], leaf="alert")
        rows = self.wait_alarm("dev = ? AND cond = 'device:1004'", (dev,))
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["prio"], 2)
        esc = self.wait_alarm("id = ? AND escalated_ms IS NOT NULL", (rows[0]["id"],), 15)
        self.assertTrue(esc, "no escalation after alarm_escalate_s")
        with self.d.db() as c:
            phases = [r[0] for r in c.execute(
                "SELECT phase FROM alarm_events WHERE alarm_id = ? ORDER BY id",
                (rows[0]["id"],))]
            journal = c.execute("SELECT count(*) FROM journal j JOIN alarm_events e ON "
                                "j.kind = 2 AND j.ref = e.id WHERE e.alarm_id = ?",
                                (rows[0]["id"],)).fetchone()[0]
        self.assertEqual(phases[:2], ["start", "escalate"])
        self.assertEqual(journal, len(phases), "a transition is missing from the HL7 journal")

    def test_battery_low_and_possible_attack_are_technical_alarms(self):
        dev, ddir = self.dev(7)
        status = self.msg(dev, 70, typ=3, st={"battery": 9})
        self.inject(ddir, [self.seal(ddir, status)], leaf="status")
        rows = self.wait_alarm("dev = ? AND cond = 'battery'", (dev,))
        self.assertEqual([(r["type"], r["prio"]) for r in rows], [("ST", 1)],
                         (self.stored(dev), self.d.log("hub")[-1500:]))
        # a burst of refused packets from one device: its refusal budget runs
        # out (H04) and the hub calls it a possible attack
        good = self.seal(ddir, self.vitals(dev, 71))
        bad = []
        for i in range(260):
            b = bytearray(good)
            b[len(b) // 2 + (i % 16)] ^= 0x01
            bad.append(bytes(b))
        self.inject(ddir, bad, wait=2)
        rows = self.wait_alarm("dev = ? AND cond = 'attack'", (dev,))
        self.assertEqual(len(rows), 1, "no 'possible attack' alarm after a refusal burst")
        self.assertEqual((rows[0]["type"], rows[0]["prio"]), ("ST", 2))
        self.assertIn("possible attack", rows[0]["text"])

    def test_stream_outlives_the_idle_timeout_with_heartbeats(self):
        b = self.user("watcher", "biomed")
        s = self.stream(b)
        closed = s.wait(lambda ev, _: ev == "closed", 40)
        self.assertIsNone(closed, "the hub closed the live stream (%d heartbeats)" % s.beats)
        self.assertGreaterEqual(s.beats, 2)

    def test_zz_device_offline(self):
        dev, ddir = self.dev(6)
        for i in range(3):
            self.inject(ddir, [self.seal(ddir, self.vitals(dev, 40 + i))], wait=1)
        rows = self.wait_alarm("dev = ? AND cond = 'offline'", (dev,), timeout=40)
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["type"], rows[0]["prio"]), ("ST", 2))
        self.inject(ddir, [self.seal(ddir, self.vitals(dev, 50))])
        self.assertTrue(self.wait_alarm("id = ? AND state = 'resolved'", (rows[0]["id"],)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
