#!/usr/bin/python3
"""test_audit_cli.py — drive `medtrust audit` the way operators and SIEMs do
(docs/audit.md, docs/cli.md "medtrust audit"; threats J01, J02, J03).

What it proves (the acceptance test of the audit-chain part of the device
lifecycle issue):
  * a chain of 2,500 events appended through the CLI (checkpoints every
    1,000 records: records 1001 and 2002, both in the outside file)
    verifies, exit 0, with the summary line;
  * on copies of that database, tampered with plain SQL after dropping the
    append-only triggers (as an attacker who can write the file would):
      - a field of record k edited          -> exit 2, "bad: record k: edited"
      - record k deleted                    -> exit 2, "bad: record k: missing"
      - the contents of records k < j swapped (seq kept)
                                            -> exit 2, "bad: record k: order"
      - the tail cut off past a checkpoint  -> exit 2, "bad: record k: truncated",
        seen through the outside checkpoint file only (J03);
      - a verifier given another hub key    -> "checkpoint-signature" at 1001;
      - an altered line of the outside file -> "bad: checkpoint file: ...";
  * tail -n 5 gives 5 valid JSON lines with the last 5 seqs; export
    --from/--to gives exactly that range; each line's prev_hash is the hash
    of the line before;
  * append/checkpoint print seqs; exit codes 1, 2, 64, 65; --help at every
    level.

Environment: MEDTRUST_BIN (default /work/main/build-acli/medtrust); exits 77
when the binary is missing.  Prints a closing "N passed, M failed" line.
"""
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build-acli/medtrust")
PASS = "audit-cli-test-passphrase"
EVENTS = 2500
# With the library's default of a checkpoint every 1,000 records, 2,500
# events make records 1..1000, checkpoint 1001, 1002..2001, checkpoint 2002,
# 2003..2502.
RECORDS = 2502
CHECKPOINTS = (1001, 2002)

STATE = {"tmp": None, "env": None}


def run(args, env=None):
    return subprocess.run([BIN] + args, capture_output=True, env=env, timeout=120)


def path(name):
    return os.path.join(STATE["tmp"], name)


def setUpModule():
    """One hub key, one chain of 2,500 events, made once."""
    STATE["tmp"] = tempfile.mkdtemp(prefix="mt-audit-cli-")
    STATE["env"] = dict(os.environ, MEDTRUST_KEY_PASSPHRASE=PASS)
    for name in ("hub", "other"):
        r = run(["key", "generate", "file:" + path(name + ".key"), "--type", "p256",
                 "--role", "sign", "--pub", path(name + ".pem")], env=STATE["env"])
        if r.returncode != 0:
            raise RuntimeError("key generate %s: %r" % (name, r.stderr))
    r = run(["audit", "append", "--db", path("chain.db"), "--key", "file:" + path("hub.key"),
             "--checkpoints", path("chain.cp"), "--actor", "alice",
             "--action", "device.onboard", "--subject", "icu-7",
             "--detail", '{"ip":"10.0.0.9"}', "--count", str(EVENTS)], env=STATE["env"])
    if r.returncode != 0:
        raise RuntimeError("audit append --count: %r" % r.stderr)
    seqs = [int(x) for x in r.stdout.split()]
    expect = [s for s in range(1, RECORDS + 1) if s not in CHECKPOINTS]
    if seqs != expect:
        raise RuntimeError("append printed %d seqs, not the %d expected" %
                           (len(seqs), len(expect)))


def tearDownModule():
    if STATE["tmp"]:
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


class Base(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="case-", dir=STATE["tmp"])
        self.env = STATE["env"]

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy(self):
        """A private copy of the chain and its outside checkpoint file."""
        db, cp = os.path.join(self.dir, "chain.db"), os.path.join(self.dir, "chain.cp")
        shutil.copyfile(path("chain.db"), db)
        shutil.copyfile(path("chain.cp"), cp)
        return db, cp

    def tamper(self, db, *statements):
        """Act as an attacker with write access: drop the triggers, run SQL."""
        con = sqlite3.connect(db)
        try:
            con.execute("DROP TRIGGER IF EXISTS audit_no_update")
            con.execute("DROP TRIGGER IF EXISTS audit_no_delete")
            for st in statements:
                if isinstance(st, tuple):
                    con.execute(*st)
                else:
                    con.execute(st)
            con.commit()
        finally:
            con.close()

    def verify(self, db, cp=None, hub="hub"):
        args = ["audit", "verify", "--db", db, "--hub-pub", path(hub + ".pem")]
        if cp is not None:
            args += ["--checkpoints", cp]
        return run(args)

    def assertBad(self, r, seq, reason):
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, b"")
        want = ("bad: record %d: %s: " % (seq, reason)).encode()
        self.assertTrue(r.stderr.startswith(want), (want, r.stderr))
        self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)

    def lines(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertTrue(out == "" or out.endswith("\n"))
        return [json.loads(line) for line in out.splitlines()]


class TestVerify(Base):
    def test_intact(self):
        r = self.verify(path("chain.db"), path("chain.cp"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(
            r.stdout,
            b"ok: 2502 records, 2 checkpoints (2 in the outside file), last seq 2502, "
            b"last checkpoint seq 2002, 500 records after it not yet signed\n")
        self.assertEqual(r.stderr, b"")

    def test_intact_without_checkpoint_file(self):
        db, _ = self.copy()
        r = self.verify(db)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"(0 in the outside file)", r.stdout)
        self.assertIn(b"note: no --checkpoints given", r.stderr)

    def test_edit_field(self):
        for k in (1, 1234, 2002, RECORDS):
            with self.subTest(k=k):
                db, cp = self.copy()
                self.tamper(db, ("UPDATE audit SET actor = 'mallory' WHERE seq = ?", (k,)))
                self.assertBad(self.verify(db, cp), k, "edited")

    def test_verify_leaves_evidence_untouched(self):
        # Checking a tampered database must not change it: no triggers put
        # back, no journal switch, not a byte of the file rewritten.
        db, cp = self.copy()
        self.tamper(db, ("UPDATE audit SET actor = 'mallory' WHERE seq = ?", (7,)))
        with open(db, "rb") as f:
            before = hashlib.sha256(f.read()).hexdigest()
        self.assertBad(self.verify(db, cp), 7, "edited")
        for args in (["audit", "tail", "--db", db], ["audit", "export", "--db", db]):
            self.assertEqual(run(args).returncode, 0)
        with open(db, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), before)
        con = sqlite3.connect(db)
        try:
            triggers = con.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
        finally:
            con.close()
        self.assertEqual(triggers, 0)

    def test_edit_detail(self):
        db, cp = self.copy()
        self.tamper(db, "UPDATE audit SET detail = '{\"ip\":\"10.0.0.66\"}' WHERE seq = 777")
        self.assertBad(self.verify(db, cp), 777, "edited")

    def test_delete(self):
        for k in (1, 1234, 1001):
            with self.subTest(k=k):
                db, cp = self.copy()
                self.tamper(db, ("DELETE FROM audit WHERE seq = ?", (k,)))
                self.assertBad(self.verify(db, cp), k, "missing")

    def test_swap(self):
        cols = ("time_ms, kind, actor, action, subject, outcome, detail, checkpoint, "
                "prev_hash, hash")
        for k, j in ((10, 20), (1500, 1501), (999, 2400)):
            with self.subTest(k=k, j=j):
                db, cp = self.copy()
                con = sqlite3.connect(db)
                rk = con.execute("SELECT %s FROM audit WHERE seq = ?" % cols, (k,)).fetchone()
                rj = con.execute("SELECT %s FROM audit WHERE seq = ?" % cols, (j,)).fetchone()
                con.close()
                sets = ", ".join("%s = ?" % c.strip() for c in cols.split(","))
                self.tamper(db, ("UPDATE audit SET %s WHERE seq = ?" % sets, rj + (k,)),
                            ("UPDATE audit SET %s WHERE seq = ?" % sets, rk + (j,)))
                self.assertBad(self.verify(db, cp), k, "order")

    def test_truncate(self):
        db, cp = self.copy()
        self.tamper(db, "DELETE FROM audit WHERE seq >= 1500")
        # The chain alone cannot see a cut tail ...
        self.assertEqual(self.verify(db).returncode, 0)
        # ... the outside checkpoint file (checkpoint 2002) can.
        self.assertBad(self.verify(db, cp), 1500, "truncated")

    def test_truncate_to_last_checkpoint_record(self):
        db, cp = self.copy()
        self.tamper(db, "DELETE FROM audit WHERE seq >= 2002")
        self.assertBad(self.verify(db, cp), 2002, "truncated")

    def test_other_hub_key(self):
        self.assertBad(self.verify(path("chain.db"), path("chain.cp"), hub="other"),
                       1001, "checkpoint-signature")

    def test_outside_file_line_altered(self):
        db, cp = self.copy()
        with open(cp) as f:
            lines = f.read().splitlines()
        last = lines[1]
        lines[1] = last[:-2] + ("00" if last[-2:] != "00" else "11")
        with open(cp, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = self.verify(db, cp)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.startswith(b"bad: checkpoint file: checkpoint-signature: "),
                        r.stderr)
        self.assertIn(b"line 2", r.stderr)

    def test_missing_outside_file_is_empty(self):
        db, _ = self.copy()
        r = self.verify(db, os.path.join(self.dir, "absent.cp"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"does not exist: counted as empty", r.stderr)

    def test_io_errors(self):
        r = self.verify(os.path.join(self.dir, "absent.db"), path("chain.cp"))
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(b"error: opening --db "), r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "absent.db")))
        r = run(["audit", "verify", "--db", path("chain.db"),
                 "--hub-pub", os.path.join(self.dir, "absent.pem")])
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(b"error: reading --hub-pub "), r.stderr)


class TestRead(Base):
    def test_tail(self):
        recs = self.lines(run(["audit", "tail", "--db", path("chain.db"), "-n", "5"]))
        self.assertEqual([x["seq"] for x in recs], list(range(RECORDS - 4, RECORDS + 1)))
        for a, b in zip(recs, recs[1:]):
            self.assertEqual(b["prev_hash"], a["hash"])
        self.assertEqual(recs[-1]["actor"], "alice")
        self.assertEqual(recs[-1]["detail"], {"ip": "10.0.0.9"})
        self.assertEqual(recs[-1]["kind"], "event")

    def test_tail_default_and_bounds(self):
        recs = self.lines(run(["audit", "tail", "--db", path("chain.db")]))
        self.assertEqual([x["seq"] for x in recs], list(range(RECORDS - 19, RECORDS + 1)))
        recs = self.lines(run(["audit", "tail", "--db", path("chain.db"), "--lines", "0"]))
        self.assertEqual(recs, [])
        recs = self.lines(run(["audit", "tail", "--db", path("chain.db"), "-n", "99999"]))
        self.assertEqual(len(recs), RECORDS)

    def test_export_range(self):
        recs = self.lines(run(["audit", "export", "--db", path("chain.db"),
                               "--from", "995", "--to", "1005"]))
        self.assertEqual([x["seq"] for x in recs], list(range(995, 1006)))
        cp = recs[1001 - 995]
        self.assertEqual(cp["kind"], "checkpoint")
        self.assertEqual(cp["action"], "audit.checkpoint")
        self.assertEqual(cp["detail"], {"seq": 1000, "hash": recs[1000 - 995]["hash"]})
        with open(path("chain.cp")) as f:
            self.assertEqual(cp["checkpoint"], f.readline().strip())

    def test_export_open_ranges(self):
        recs = self.lines(run(["audit", "export", "--db", path("chain.db"), "--from", "2500"]))
        self.assertEqual([x["seq"] for x in recs], [2500, 2501, 2502])
        recs = self.lines(run(["audit", "export", "--db", path("chain.db"), "--to", "3"]))
        self.assertEqual([x["seq"] for x in recs], [1, 2, 3])
        self.assertEqual(recs[0]["prev_hash"], "0" * 64)
        recs = self.lines(run(["audit", "export", "--db", path("chain.db")]))
        self.assertEqual(len(recs), RECORDS)
        recs = self.lines(run(["audit", "export", "--db", path("chain.db"),
                               "--from", "9000", "--to", "9001"]))
        self.assertEqual(recs, [])

    def test_usage(self):
        db = path("chain.db")
        for args in (["tail"], ["tail", "--db", db, "-n", "-1"],
                     ["tail", "--db", db, "-n", "x"], ["tail", "--db", db, "extra"],
                     ["export", "--db", db, "--from", "0"],
                     ["export", "--db", db, "--from", "5", "--to", "4"],
                     ["export", "--db", db, "--to", "1x"],
                     ["export", "--db", db, "--db", db],
                     ["verify", "--db", db], ["verify", "--hub-pub", path("hub.pem")],
                     ["verify", "--db", db, "--hub-pub", path("hub.pem"), "--bogus"],
                     ["frobnicate"], []):
            with self.subTest(args=args):
                r = run(["audit"] + args)
                self.assertEqual(r.returncode, 64, r.stderr)
                self.assertIn(b"Try 'medtrust audit", r.stderr)

    def test_missing_db_not_created(self):
        absent = os.path.join(self.dir, "absent.db")
        for sub in (["tail"], ["export"]):
            r = run(["audit"] + sub + ["--db", absent])
            self.assertEqual(r.returncode, 1)
            self.assertTrue(r.stderr.startswith(b"error: opening --db "), r.stderr)
        self.assertFalse(os.path.exists(absent))


class TestWrite(Base):
    def writer(self, db, cp):
        return ["--db", db, "--key", "file:" + path("hub.key"), "--checkpoints", cp]

    def test_append_checkpoint_verify(self):
        db, cp = os.path.join(self.dir, "w.db"), os.path.join(self.dir, "w.cp")
        r = run(["audit", "append"] + self.writer(db, cp) +
                ["--actor", "bob", "--action", "user.login", "--outcome", "refused",
                 "--detail", '{"why": "bad \\"password\\""}'], env=self.env)
        self.assertEqual((r.returncode, r.stdout), (0, b"1\n"), r.stderr)
        r = run(["audit", "append"] + self.writer(db, cp) +
                ["--actor", "hub", "--action", "audit.test", "--outcome", "error"],
                env=self.env)
        self.assertEqual((r.returncode, r.stdout), (0, b"2\n"), r.stderr)
        r = run(["audit", "checkpoint"] + self.writer(db, cp), env=self.env)
        self.assertEqual((r.returncode, r.stdout), (0, b"3\n"), r.stderr)
        r = run(["audit", "checkpoint"] + self.writer(db, cp), env=self.env)
        self.assertEqual((r.returncode, r.stdout), (0, b""), r.stderr)
        self.assertIn(b"note: nothing to checkpoint", r.stderr)
        r = self.verify(db, cp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"3 records, 1 checkpoints (1 in the outside file), last seq 3, "
                      b"last checkpoint seq 3, 0 records", r.stdout)
        recs = self.lines(run(["audit", "export", "--db", db]))
        self.assertEqual([(x["actor"], x["action"], x["subject"], x["outcome"]) for x in recs],
                         [("bob", "user.login", "", "refused"),
                          ("hub", "audit.test", "", "error"),
                          ("hub", "audit.checkpoint", "", "ok")])
        self.assertEqual(recs[0]["detail"], {"why": "bad \"password\""})
        self.assertEqual(recs[1]["detail"], {})
        # Cutting the checkpoint record off is truncation, seen via the file.
        self.tamper(db, "DELETE FROM audit WHERE seq = 3")
        self.assertBad(self.verify(db, cp), 3, "truncated")

    def test_refused_events_write_nothing(self):
        db, cp = os.path.join(self.dir, "w.db"), os.path.join(self.dir, "w.cp")
        w = self.writer(db, cp)
        cases = [
            (["--actor", "a", "--action", "Bad.Name"], 64),
            (["--actor", "", "--action", "x"], 64),
            (["--actor", "a\tb", "--action", "x"], 64),
            (["--actor", "a", "--action", "x", "--subject", "s" * 257], 64),
            (["--actor", "a", "--action", "x", "--detail", "[1]"], 65),
            (["--actor", "a", "--action", "x", "--detail", "{\"a\":1,\"a\":2}"], 65),
            (["--actor", "a", "--action", "x", "--detail", "{"], 65),
            (["--actor", "a", "--action", "x", "--outcome", "maybe"], 64),
            (["--actor", "a", "--action", "x", "--count", "0"], 64),
            (["--actor", "a", "--action", "x", "--count", "1000001"], 64),
            (["--actor", "a"], 64),
            (["--action", "x"], 64),
        ]
        for extra, code in cases:
            with self.subTest(extra=extra):
                r = run(["audit", "append"] + w + extra, env=self.env)
                self.assertEqual(r.returncode, code, r.stderr)
                self.assertEqual(r.stdout, b"")
                if code == 65:
                    self.assertTrue(r.stderr.startswith(b"invalid JSON: "), r.stderr)
        for missing in ("--db", "--key", "--checkpoints"):
            i = w.index(missing)
            r = run(["audit", "append"] + w[:i] + w[i + 2:] + ["--actor", "a", "--action", "x"],
                    env=self.env)
            self.assertEqual(r.returncode, 64, (missing, r.stderr))
        if os.path.exists(db):
            recs = self.lines(run(["audit", "export", "--db", db]))
            self.assertEqual(recs, [])

    def test_key_errors(self):
        db, cp = os.path.join(self.dir, "w.db"), os.path.join(self.dir, "w.cp")
        args = ["audit", "append", "--db", db, "--key", "file:" + path("hub.key"),
                "--checkpoints", cp, "--actor", "a", "--action", "x"]
        env = dict(self.env, MEDTRUST_KEY_PASSPHRASE="wrong")
        r = run(args, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(b"error: opening --key: "), r.stderr)
        args[5] = "file:" + os.path.join(self.dir, "absent.key")
        r = run(args, env=self.env)
        self.assertEqual(r.returncode, 1)
        r = run(["audit", "checkpoint", "--db", db, "--key", args[5], "--checkpoints", cp],
                env=self.env)
        self.assertEqual(r.returncode, 1)


class TestHelp(Base):
    def test_help_documents_flags(self):
        cases = {
            ("--help",): [b"audit verify", b"audit tail", b"audit export", b"audit append",
                          b"audit checkpoint", b"bad: record"],
            ("audit", "--help"): [b"verify", b"tail", b"export", b"append", b"checkpoint",
                                  b"64", b"65"],
            ("audit", "verify", "--help"): [b"--db", b"--hub-pub", b"--checkpoints",
                                            b"bad: record <seq>", b"edited", b"missing",
                                            b"order", b"link", b"checkpoint-signature",
                                            b"truncated", b"malformed", b"64"],
            ("audit", "tail", "--help"): [b"--db", b"-n", b"20"],
            ("audit", "export", "--help"): [b"--db", b"--from", b"--to"],
            ("audit", "append", "--help"): [b"--db", b"--key", b"--checkpoints", b"--actor",
                                            b"--action", b"--subject", b"--outcome",
                                            b"--detail", b"--count", b"65"],
            ("audit", "checkpoint", "--help"): [b"--db", b"--key", b"--checkpoints"],
        }
        for args, words in cases.items():
            with self.subTest(args=args):
                r = run(list(args))
                self.assertEqual(r.returncode, 0, args)
                for w in words:
                    self.assertIn(w, r.stdout, (args, w))

    def test_help_wins_over_missing_flags(self):
        r = run(["audit", "append", "--count", "3", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: medtrust audit append", r.stdout)


def main():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("medtrust binary not found at %s: skipped" % BIN)
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
