#!/usr/bin/python3
"""test_patient_cli.py — patients, their NEWS2 settings, rules and device
assignments, and clinicians' wards, from the command line the way an
operator uses them (docs/patients.md, docs/cli.md "medtrust patient",
"medtrust user wards"; threats J04, J05).

What it proves, on a deployment made with `medtrust init` and a lot of two
devices imported with `trust`/`manifest`:
  * `patient add` with every option, `show` (devices and rules too), `list
    --ward`, `edit` changing only the fields given; unknown NEWS2 settings
    are printed as "unknown";
  * refusals: a duplicate MRN (add and edit), an unknown patient, device or
    rule are exit 2 with a `.refused` audit record; malformed input (bad
    dates — 30 February, the future —, sex, SpO2 scale, ACVPU, control
    characters, an MRN over 64 bytes, a rule that does not parse) is exit
    64 and writes nothing;
  * assignments with times: assign at t0, reassign at t1, unassign at t2,
    listed per device and per patient with those ranges; an assignment
    before the open one is refused;
  * rules are stored in their canonical text and listed, deleted;
  * every change is one audit record, and no audit record holds a name,
    MRN, birth date or sex;
  * an attacker with the data.db file but not the key who edits a
    patient's NEWS2 setting gets the row reported as tampered, not read;
  * `user wards` sets, shows (in `user list`), clears, and refuses an
    unknown user; audited.

Environment: MEDTRUST_BIN; exits 77 when the binary, SoftHSM2 or openssl is
missing.  Prints a closing "N passed, M failed" line.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build/medtrust")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASS = "patient-cli-test-passphrase"
NAME = "Philippa Quintrell-Test"
MRN = "MRN-PQ-77123"
BIRTH = "1952-02-29"
STATE = {}


def env():
    e = dict(os.environ)
    e.pop("SOFTHSM2_CONF", None)
    e.pop("MEDTRUST_CONFIG", None)
    e["MEDTRUST_KEY_PASSPHRASE"] = PASS
    return e


def mt(args):
    return subprocess.run([BIN] + args, capture_output=True, env=env(), timeout=120)


def mt_ok(args):
    r = mt(args)
    if r.returncode != 0:
        raise RuntimeError("medtrust %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                         r.stderr.decode(errors="replace")))
    return r


def p(*names):
    return os.path.join(STATE["tmp"], *names)


def conf():
    return p("hub", "medtrust.conf")


def audit():
    r = mt_ok(["audit", "export", "--db", p("hub", "medtrust.db")])
    return [json.loads(line) for line in r.stdout.decode().splitlines() if line.strip()]


def last_seq():
    recs = audit()
    return recs[-1]["seq"] if recs else 0


def audit_after(seq):
    return [a for a in audit() if a["seq"] > seq]


def add(*extra):
    r = mt_ok(["patient", "add", "-c", conf()] + list(extra))
    return int(r.stdout.decode().strip())


def show(pid):
    r = mt_ok(["patient", "show", str(pid), "-c", conf()])
    return json.loads(r.stdout.decode())


def setUpModule():
    STATE["tmp"] = tempfile.mkdtemp(prefix="mt-patient-cli-")
    mt_ok(["init", p("hub")])
    mt_ok(["mfg", "init", p("mfg"), "--name", "Patient Medical"])
    mt_ok(["mfg", "make", "--mfg", p("mfg"), "--count", "2", "--class", "monitor",
           "--out", p("lot"), "--soft"])
    mt_ok(["trust", "add-manufacturer", p("mfg", "root.pem"), "-c", conf()])
    mt_ok(["manifest", "import", p("lot", "manifest.cose"), "-c", conf()])
    STATE["devices"] = sorted(x for x in os.listdir(p("lot")) if os.path.isdir(p("lot", x)))


def tearDownModule():
    if STATE.get("tmp") and not os.environ.get("MT_KEEP_TMP"):
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


class A_Record(unittest.TestCase):
    def test_add_show_edit_list(self):
        seq = last_seq()
        pid = add("--name", NAME, "--mrn", MRN, "--birth", BIRTH, "--sex", "female",
                  "--ward", "Ward B (respiratory)", "--room", "B2", "--bed", "4",
                  "--spo2-scale", "2", "--oxygen", "oxygen", "--acvpu", "C", "--news2", "on")
        rec = show(pid)
        for k, v in {"id": pid, "name": NAME, "mrn": MRN, "birth_date": BIRTH, "sex": "female",
                     "ward": "Ward B (respiratory)", "room": "B2", "bed": "4", "spo2_scale": 2,
                     "oxygen": "oxygen", "acvpu": "C", "news2": "on", "devices": [],
                     "rules": []}.items():
            self.assertEqual(rec[k], v, k)
        # Defaults: unknown oxygen and ACVPU stay unknown (scored as air/alert).
        pid2 = add("--name", "Other Person", "--mrn", "MRN-OTHER-1", "--ward", "ICU")
        rec2 = show(pid2)
        self.assertEqual((rec2["oxygen"], rec2["acvpu"], rec2["spo2_scale"], rec2["news2"],
                          rec2["sex"], rec2["room"]),
                         ("unknown", "unknown", 1, "on", "unknown", ""))
        # edit changes only what is given.
        r = mt(["patient", "edit", str(pid), "--oxygen", "air", "--room", "B3", "-c", conf()])
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = show(pid)
        self.assertEqual((rec["oxygen"], rec["room"], rec["acvpu"], rec["spo2_scale"],
                          rec["name"], rec["mrn"], rec["bed"]),
                         ("air", "B3", "C", 2, NAME, MRN, "4"))
        r = mt_ok(["patient", "edit", str(pid2), "--news2", "off", "--acvpu", "U", "-c", conf()])
        rec2 = show(pid2)
        self.assertEqual((rec2["news2"], rec2["acvpu"]), ("off", "U"))
        # list --ward shows that ward only.
        r = mt_ok(["patient", "list", "--ward", "ICU", "-c", conf()])
        rows = [json.loads(x) for x in r.stdout.decode().splitlines()]
        self.assertEqual([x["id"] for x in rows], [pid2])
        r = mt_ok(["patient", "list", "-c", conf()])
        self.assertEqual(len(r.stdout.decode().splitlines()), 2)

        recs = audit_after(seq)
        self.assertEqual([a["action"] for a in recs],
                         ["patient.add", "patient.show", "patient.add", "patient.show",
                          "patient.edit", "patient.show", "patient.edit", "patient.show",
                          "patient.list", "patient.list"])
        edit = recs[4]
        self.assertEqual(edit["subject"], "patient:%d" % pid)
        self.assertEqual(sorted(edit["detail"]["changed"]), ["oxygen", "room"])
        self.assertEqual(edit["detail"]["oxygen"], "air")
        STATE["pid"], STATE["pid2"] = pid, pid2

    def test_duplicate_mrn_refused(self):
        pid = add("--name", "Dup One", "--mrn", "MRN-DUP", "--ward", "HDU")
        other = add("--name", "Dup Two", "--mrn", "MRN-DUP-2", "--ward", "HDU")
        seq = last_seq()
        r = mt(["patient", "add", "--name", "Dup Again", "--mrn", "MRN-DUP", "--ward", "HDU",
                "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"MRN exists", r.stderr)
        r = mt(["patient", "edit", str(other), "--mrn", "MRN-DUP", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"another patient has this MRN", r.stderr)
        r = mt(["patient", "edit", "987654", "--ward", "X", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"no such patient", r.stderr)
        r = mt(["patient", "show", "987654", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        recs = audit_after(seq)
        self.assertEqual([(a["action"], a["outcome"]) for a in recs],
                         [("patient.add.refused", "refused"), ("patient.edit.refused", "refused"),
                          ("patient.edit.refused", "refused"),
                          ("patient.show.refused", "refused")])
        self.assertEqual(recs[0]["subject"], "patient:%d" % pid)
        self.assertEqual(show(other)["mrn"], "MRN-DUP-2")

    def test_usage_errors_write_nothing(self):
        base = ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M-U", "--ward", "W"]
        seq = last_seq()
        cases = [
            base + ["--birth", "1951-02-29"],       # not a leap year
            base + ["--birth", "2023-02-30"],
            base + ["--birth", "2999-01-01"],       # the future
            base + ["--birth", "1950-01-01", "--birth-date", "1950-01-01"],
            base + ["--sex", "F"],
            base + ["--spo2-scale", "3"],
            base + ["--oxygen", "nasal"],
            base + ["--acvpu", "X"],
            base + ["--news2", "yes"],
            base + ["--room", "r\x07"],
            base + ["--room", "r" * 33],
            ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M" * 65, "--ward", "W"],
            ["patient", "edit", "-c", conf(), "1"],                        # nothing to change
            ["patient", "edit", "-c", conf(), "0", "--ward", "X"],
            ["patient", "edit", "-c", conf(), "x", "--ward", "X"],
            ["patient", "show", "-c", conf()],
            ["patient", "assign", "-c", conf(), STATE["devices"][0], "1", "--since", "yesterday"],
            ["patient", "assign", "-c", conf(), STATE["devices"][0], "1", "--since",
             "2024-12-03T10:00:00"],                                          # no zone
            ["patient", "unassign", "-c", conf(), "bad id!"],
            ["patient", "assignments", "-c", conf(), "--device", STATE["devices"][0],
             "--patient", "1"],
            ["patient", "rule", "add", "-c", conf(), "1", "SpO2 below 90"],
            ["patient", "rule", "add", "-c", conf(), "1", "150456 < 90"],  # no prio
            ["patient", "rule", "del", "-c", conf(), "zero"],
            ["patient", "list", "-c", conf(), "--ward", ""],
            ["user", "wards", "-c", conf(), "nobody"],
            ["user", "wards", "-c", conf(), "nobody", "ICU", "--none"],
            ["user", "wards", "-c", conf(), "nobody", "bad\tward"],
        ]
        for args in cases:
            with self.subTest(args=args):
                r = mt(args)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertTrue(r.stderr.strip())
        self.assertEqual(last_seq(), seq)
        r = mt(["patient", "--help"])
        self.assertEqual(r.returncode, 0)
        for w in (b"patient edit", b"patient show", b"patient unassign", b"patient assignments",
                  b"patient rule add", b"--spo2-scale", b"--acvpu", b"--birth-date"):
            self.assertIn(w, r.stdout)


class B_Assignments(unittest.TestCase):
    def test_time_ranges(self):
        a = add("--name", "Range One", "--mrn", "MRN-RANGE-1", "--ward", "ICU")
        b = add("--name", "Range Two", "--mrn", "MRN-RANGE-2", "--ward", "ICU")
        dev = STATE["devices"][1]
        seq = last_seq()
        mt_ok(["patient", "assign", dev, str(a), "--since", "2024-12-03T10:00:00Z", "-c", conf()])
        mt_ok(["patient", "assign", dev, str(b), "--since", "2024-12-03T12:30:00+01:00",
               "-c", conf()])
        r = mt(["patient", "assign", dev, str(a), "--since", "2024-12-03T11:00:00Z", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)        # before the open assignment
        self.assertIn(b"starts later", r.stderr)
        mt_ok(["patient", "unassign", dev, "--at", "2024-12-03T14:00:00.250Z", "-c", conf()])
        r = mt(["patient", "unassign", "no-such-device", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        rows = [json.loads(x) for x in mt_ok(["patient", "assignments", "--device", dev,
                                              "-c", conf()]).stdout.decode().splitlines()]
        self.assertEqual([(x["patient"], x["since"], x["until"]) for x in rows],
                         [(a, "2024-12-03T10:00:00.000Z", "2024-12-03T11:30:00.000Z"),
                          (b, "2024-12-03T11:30:00.000Z", "2024-12-03T14:00:00.250Z")])
        self.assertEqual(rows[0]["since_ms"], 1733220000000)
        rows = [json.loads(x) for x in mt_ok(["patient", "assignments", "--patient", str(b),
                                              "-c", conf()]).stdout.decode().splitlines()]
        self.assertEqual([x["dev"] for x in rows], [dev])
        # An open assignment shows in `show`.
        mt_ok(["patient", "assign", dev, str(a), "-c", conf()])
        self.assertEqual([d["dev"] for d in show(a)["devices"]], [dev])
        self.assertEqual(show(b)["devices"], [])
        recs = audit_after(seq)
        self.assertEqual([(x["action"], x["outcome"]) for x in recs][:5],
                         [("patient.assign", "ok"), ("patient.assign", "ok"),
                          ("patient.assign.refused", "refused"), ("patient.assign", "ok"),
                          ("patient.assign.refused", "refused")])
        self.assertEqual(recs[3]["detail"]["patient"], 0)
        self.assertEqual(recs[3]["detail"]["since_ms"], 1733234400250)


class C_Rules(unittest.TestCase):
    def test_add_list_del(self):
        pid = add("--name", "Rule Person", "--mrn", "MRN-RULE-1", "--ward", "ICU")
        seq = last_seq()
        r = mt_ok(["patient", "rule", "add", str(pid), "150456 < 88 for 30s hyst 2 prio high",
                   "-c", conf()])
        rid = int(r.stdout.decode().strip())
        r = mt_ok(["patient", "rule", "add", str(pid), "147842>130 for 1min prio medium",
                   "-c", conf()])
        rid2 = int(r.stdout.decode().strip())
        r = mt(["patient", "rule", "add", "987654", "150456 < 88 prio high", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        rows = [json.loads(x) for x in mt_ok(["patient", "rule", "list", str(pid), "-c",
                                              conf()]).stdout.decode().splitlines()]
        self.assertEqual([x["id"] for x in rows], [rid, rid2])
        # Canonical text: reads back through mt_rule_parse to the same rule.
        self.assertTrue(rows[0]["rule"].startswith("150456<88"), rows[0]["rule"])
        self.assertIn("prio high", rows[0]["rule"])
        self.assertEqual([x["id"] for x in show(pid)["rules"]], [rid, rid2])
        mt_ok(["patient", "rule", "del", str(rid), "-c", conf()])
        r = mt(["patient", "rule", "del", str(rid), "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"no such rule", r.stderr)
        rows = mt_ok(["patient", "rule", "list", str(pid), "-c", conf()]).stdout.splitlines()
        self.assertEqual(len(rows), 1)
        recs = audit_after(seq)
        self.assertEqual([(x["action"], x["outcome"]) for x in recs],
                         [("patient.rule.add", "ok"), ("patient.rule.add", "ok"),
                          ("patient.rule.add.refused", "refused"), ("patient.show", "ok"),
                          ("patient.rule.del", "ok"), ("patient.rule.del.refused", "refused")])
        self.assertEqual(recs[0]["detail"]["rule_id"], rid)
        self.assertEqual(recs[4]["subject"], "patient:%d" % pid)


class D_Users(unittest.TestCase):
    def test_wards(self):
        mt_ok(["user", "add", "dr.ward", "--role", "clinician", "-c", conf()])
        seq = last_seq()
        mt_ok(["user", "wards", "dr.ward", "ICU", "Ward B (respiratory)", "ICU", "-c", conf()])
        users = {u["name"]: u for u in (json.loads(x) for x in mt_ok(
            ["user", "list", "-c", conf()]).stdout.decode().splitlines())}
        self.assertEqual(users["dr.ward"]["wards"], ["ICU", "Ward B (respiratory)"])
        mt_ok(["user", "wards", "dr.ward", "HDU", "-c", conf()])
        users = {u["name"]: u for u in (json.loads(x) for x in mt_ok(
            ["user", "list", "-c", conf()]).stdout.decode().splitlines())}
        self.assertEqual(users["dr.ward"]["wards"], ["HDU"])
        mt_ok(["user", "wards", "dr.ward", "--none", "-c", conf()])
        r = mt(["user", "wards", "nobody", "ICU", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"no user named", r.stderr)
        users = {u["name"]: u for u in (json.loads(x) for x in mt_ok(
            ["user", "list", "-c", conf()]).stdout.decode().splitlines())}
        self.assertEqual(users["dr.ward"]["wards"], [])
        recs = audit_after(seq)
        self.assertEqual([(x["action"], x["outcome"]) for x in recs],
                         [("user.wards", "ok"), ("user.wards", "ok"), ("user.wards", "ok"),
                          ("user.wards.refused", "refused")])
        self.assertEqual(recs[1]["detail"], {"before": ["ICU", "Ward B (respiratory)"],
                                             "after": ["HDU"]})


class E_Attacker(unittest.TestCase):
    def test_edited_setting_reads_as_tampered(self):
        pid = add("--name", "Tamper Target", "--mrn", "MRN-TAMPER", "--ward", "ICU",
                  "--spo2-scale", "2", "--oxygen", "oxygen")
        db = sqlite3.connect(p("hub", "data.db"))
        db.execute("UPDATE patients SET spo2_scale2 = 0 WHERE id = ?", (pid,))
        db.commit()
        db.close()
        r = mt(["patient", "show", str(pid), "-c", conf()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"tamper", r.stderr.lower())
        self.assertEqual(r.stdout, b"")
        db = sqlite3.connect(p("hub", "data.db"))
        db.execute("UPDATE patients SET spo2_scale2 = 1 WHERE id = ?", (pid,))
        db.commit()
        db.close()
        self.assertEqual(show(pid)["spo2_scale"], 2)


class Z_NoIdentity(unittest.TestCase):
    def test_audit_holds_no_identity_and_chain_verifies(self):
        r = mt_ok(["audit", "export", "--db", p("hub", "medtrust.db")])
        for secret in (NAME, "Quintrell", MRN, BIRTH, "female", "Range One", "MRN-DUP"):
            self.assertNotIn(secret.encode(), r.stdout, secret)
        r = mt(["audit", "verify", "--db", p("hub", "medtrust.db"), "--hub-pub",
                p("hub", "pki", "hub-audit.pub.pem"), "--checkpoints",
                p("hub", "audit.checkpoints")])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


def main():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("medtrust binary not found at %s: skipped" % BIN)
        return 77
    if not os.path.exists(MODULE) or shutil.which("openssl") is None:
        print("SoftHSM2 or openssl missing: skipped")
        return 77
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
