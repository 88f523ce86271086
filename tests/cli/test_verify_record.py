#!/usr/bin/python3
"""test_verify_record.py — the readings store from the command line, the
way an operator and an auditor use it (docs/storage.md, docs/cli.md
"medtrust verify-record", "medtrust patient"; threats J04, J05).

What it proves, on a deployment made with `medtrust init` and a lot of two
devices made with `medtrust mfg`, imported with `trust`/`manifest`:
  * init writes `data_path DIR/data.db`, and `config check` reads it back;
  * `patient add` prints the new id; `patient list` prints the patients
    decrypted as JSON lines; `patient assign DEVICE ID` ties a registered
    device to a patient and 0 unassigns; each is one audit record
    (patient.add, patient.list, patient.assign) naming the patient by id,
    and no audit record holds a name or an MRN;
  * refusals: an unknown device or patient is exit 2 with a
    patient.assign.refused record; malformed input is exit 64 with no
    record;
  * data.db (and any -wal/-shm) is mode 0600 and holds neither the name,
    the MRN nor the birth date of a patient (J04);
  * `verify-record --all` on a store without readings verifies 0 records,
    exit 0, audited record.verify ok; a named record that does not exist
    fails (exit 1, "record N: FAIL ...", audited as refused with
    first_failed); a store that cannot be opened is exit 2; usage errors
    are 64; --help names the exit codes;
  * the audit chain still verifies at the end.

Readings themselves need the hub's ingest (or a cmocka test: the
re-verification logic is tests/security/test_store_verify.c).

Environment: MEDTRUST_BIN (default /work/main/build/medtrust); exits 77
when the binary, SoftHSM2 or openssl is missing.  Prints a closing
"N passed, M failed" line.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build/medtrust")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASS = "verify-record-test-passphrase"
NAME = "Zebedee Quartermain-Test"
MRN = "MRN-ZQ-55102938"
BIRTH = "1938-02-17"
STATE = {}


def env(extra=None):
    e = dict(os.environ)
    e.pop("SOFTHSM2_CONF", None)
    e.pop("MEDTRUST_CONFIG", None)
    e["MEDTRUST_KEY_PASSPHRASE"] = PASS
    if extra:
        e.update(extra)
    return e


def mt(args, extra_env=None):
    return subprocess.run([BIN] + args, capture_output=True, env=env(extra_env), timeout=120)


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


def audit_after(seq, action=None):
    return [a for a in audit() if a["seq"] > seq and (action is None or a["action"] == action)]


def last_seq():
    recs = audit()
    return recs[-1]["seq"] if recs else 0


def setUpModule():
    STATE["tmp"] = tempfile.mkdtemp(prefix="mt-verify-record-")
    mt_ok(["init", p("hub")])
    mt_ok(["mfg", "init", p("mfg"), "--name", "Record Medical"])
    mt_ok(["mfg", "make", "--mfg", p("mfg"), "--count", "2", "--class", "monitor",
           "--out", p("lot"), "--soft"])
    mt_ok(["trust", "add-manufacturer", p("mfg", "root.pem"), "-c", conf()])
    mt_ok(["manifest", "import", p("lot", "manifest.cose"), "-c", conf()])
    STATE["devices"] = sorted(x for x in os.listdir(p("lot")) if os.path.isdir(p("lot", x)))
    assert len(STATE["devices"]) == 2, STATE["devices"]


def tearDownModule():
    if STATE.get("tmp") and not os.environ.get("MT_KEEP_TMP"):
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


class Config(unittest.TestCase):
    def test_init_writes_data_path(self):
        r = mt_ok(["config", "check", conf()])
        keys = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
        self.assertEqual(keys["data_path"], p("hub", "data.db"))
        with open(conf()) as f:
            text = f.read()
        # commented, like every key init writes
        i = text.index("\ndata_path ")
        self.assertIn("# The readings store", text[max(0, i - 300):i])


class Patients(unittest.TestCase):
    def test_add_list_assign_are_audited_without_identity(self):
        seq = last_seq()
        r = mt(["patient", "add", "-c", conf(), "--name", NAME, "--mrn", MRN, "--ward", "ICU",
                "--bed", "12", "--birth-date", BIRTH])
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = int(r.stdout.decode().strip())
        self.assertGreater(pid, 0)
        r = mt(["patient", "list", "-c", conf()])
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(line) for line in r.stdout.decode().splitlines()]
        mine = [x for x in rows if x["id"] == pid]
        self.assertEqual(len(mine), 1)
        # (patient list also prints room, sex and NEWS2 settings: docs/patients.md)
        self.assertEqual({k: mine[0][k] for k in ("id", "ward", "bed", "name", "mrn",
                                                  "birth_date")},
                         {"id": pid, "ward": "ICU", "bed": "12", "name": NAME,
                          "mrn": MRN, "birth_date": BIRTH})
        dev = STATE["devices"][0]
        r = mt(["patient", "assign", dev, str(pid), "-c", conf()])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"assigned " + dev.encode(), r.stderr)
        r = mt(["patient", "assign", dev, "0", "-c", conf()])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"unassigned", r.stderr)

        recs = audit_after(seq)
        self.assertEqual([a["action"] for a in recs],
                         ["patient.add", "patient.list", "patient.assign", "patient.assign"])
        add, lst, asg, unasg = recs
        self.assertEqual(add["subject"], "patient:%d" % pid)
        self.assertEqual(add["outcome"], "ok")
        self.assertEqual(add["detail"]["patient"], pid)
        self.assertTrue(add["actor"].startswith("cli:"))
        self.assertGreaterEqual(lst["detail"]["patients"], 1)
        self.assertEqual(asg["subject"], dev)
        self.assertEqual(asg["detail"]["patient"], pid)
        self.assertEqual(unasg["detail"]["patient"], 0)
        # No record of the whole chain names the patient.
        r = mt_ok(["audit", "export", "--db", p("hub", "medtrust.db")])
        for secret in (NAME, "Quartermain", MRN, BIRTH):
            self.assertNotIn(secret.encode(), r.stdout)

    def test_store_file_private_and_without_identity(self):
        r = mt(["patient", "add", "-c", conf(), "--name", NAME + " II", "--mrn", MRN + "-2",
                "--ward", "HDU", "--birth-date", BIRTH])
        self.assertEqual(r.returncode, 0, r.stderr)
        found = False
        for suffix in ("", "-wal", "-shm"):
            path = p("hub", "data.db" + suffix)
            if not os.path.exists(path):
                continue
            found = found or suffix == ""
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
            with open(path, "rb") as f:
                data = f.read()
            for secret in (NAME, "Quartermain", MRN, BIRTH):
                self.assertNotIn(secret.encode(), data, path)
            # control: the ward is stored in the clear, so the scan sees it
            if suffix == "":
                self.assertIn(b"HDU", data)
        self.assertTrue(found)

    def test_refusals_are_audited(self):
        r = mt_ok(["patient", "add", "-c", conf(), "--name", "Refusal Test", "--mrn", "R-1",
                   "--ward", "ICU"])
        pid = int(r.stdout)
        seq = last_seq()
        r = mt(["patient", "assign", "no-such-device", str(pid), "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"no such device", r.stderr)
        r = mt(["patient", "assign", STATE["devices"][1], "987654", "-c", conf()])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"no such patient", r.stderr)
        recs = audit_after(seq)
        self.assertEqual([(a["action"], a["outcome"]) for a in recs],
                         [("patient.assign.refused", "refused")] * 2)
        self.assertEqual(recs[0]["subject"], "no-such-device")
        self.assertEqual(recs[1]["detail"]["patient"], 987654)

    def test_usage_errors_write_nothing(self):
        seq = last_seq()
        cases = [
            ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M"],  # no ward
            ["patient", "add", "-c", conf(), "--name", "", "--mrn", "M", "--ward", "W"],
            ["patient", "add", "-c", conf(), "--name", "x" * 257, "--mrn", "M", "--ward", "W"],
            ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M", "--ward", "W",
             "--birth-date", "17/02/1938"],
            ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M", "--ward", "W",
             "--birth-date", "1938-13-01"],
            ["patient", "add", "-c", conf(), "--name", "A\x01B", "--mrn", "M", "--ward", "W"],
            ["patient", "add", "-c", conf(), "--name", "A", "--mrn", "M", "--ward", "W", "x"],
            ["patient", "assign", "-c", conf(), "bad id!", "1"],
            ["patient", "assign", "-c", conf(), STATE["devices"][0], "-1"],
            ["patient", "assign", "-c", conf(), STATE["devices"][0], "one"],
            ["patient", "assign", "-c", conf(), STATE["devices"][0]],
            ["patient", "list", "-c", conf(), "extra"],
            ["patient", "bogus"],
            ["patient"],
        ]
        for args in cases:
            with self.subTest(args=args):
                self.assertEqual(mt(args).returncode, 64)
        self.assertEqual(last_seq(), seq)
        r = mt(["patient", "--help"])
        self.assertEqual(r.returncode, 0)
        for w in (b"patient add", b"patient list", b"patient assign", b"--birth-date"):
            self.assertIn(w, r.stdout)


class VerifyRecord(unittest.TestCase):
    def test_empty_store_verifies_zero_records(self):
        seq = last_seq()
        r = mt(["verify-record", "--all", "-c", conf()])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"verified 0 records: 0 ok, 0 failed\n")
        recs = audit_after(seq)
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["action"], "record.verify")
        self.assertEqual(recs[0]["outcome"], "ok")
        self.assertEqual(recs[0]["subject"], "all")
        self.assertEqual(recs[0]["detail"]["verified"], 0)
        self.assertIsNone(recs[0]["detail"]["first_failed"])
        # MEDTRUST_CONFIG works as for every lifecycle command, and a range.
        r = mt(["verify-record", "1-1000"], {"MEDTRUST_CONFIG": conf()})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"verified 0 records: 0 ok, 0 failed\n")

    def test_missing_record_fails(self):
        seq = last_seq()
        r = mt(["verify-record", "7", "-c", conf()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout.decode().splitlines(),
                         ["record 7: FAIL no such record",
                          "verified 1 records: 0 ok, 1 failed"])
        recs = audit_after(seq, "record.verify")
        self.assertEqual(len(recs), 1)
        self.assertEqual(recs[0]["outcome"], "refused")
        self.assertEqual(recs[0]["detail"]["failed"], 1)
        self.assertEqual(recs[0]["detail"]["first_failed"], 7)

    def test_unusable_store_is_exit_2(self):
        bad = p("bad.conf")
        with open(conf()) as f:
            text = f.read().replace("data_path " + p("hub", "data.db"),
                                    "data_path " + p("no-such-dir", "x", "data.db"))
        with open(bad, "w") as f:
            f.write(text)
        seq = last_seq()
        r = mt(["verify-record", "--all", "-c", bad])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"readings store", r.stderr)
        self.assertEqual(r.stdout, b"")
        recs = audit_after(seq, "record.verify")
        self.assertEqual([a["outcome"] for a in recs], ["error"])
        r = mt(["verify-record", "--all", "-c", p("missing.conf")])
        self.assertEqual(r.returncode, 2)

    def test_usage(self):
        for args in ([], ["0"], ["5-3"], ["abc"], ["1-"], ["-5"], ["--all", "3"], ["1", "2"],
                     ["--bogus"]):
            with self.subTest(args=args):
                r = mt(["verify-record", "-c", conf()] + args)
                self.assertEqual(r.returncode, 64, r.stderr)
        r = mt(["verify-record", "--help"])
        self.assertEqual(r.returncode, 0)
        for w in (b"usage: medtrust verify-record", b"FIRST-LAST", b"--all", b"Exit codes"):
            self.assertIn(w, r.stdout)
        r = mt(["--help"])
        self.assertIn(b"verify-record", r.stdout)
        self.assertIn(b"patient", r.stdout)


class Zchain(unittest.TestCase):
    """Last (unittest runs classes in name order): the chain is intact."""

    def test_audit_chain_verifies(self):
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
    runner = unittest.TextTestRunner(verbosity=2)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
