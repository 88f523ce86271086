#!/usr/bin/python3
"""test_cli.py — drive the `medtrust` binary the way operators and other
implementations do (protocol §9, the command-line contract).

What it proves:
  * seal → open round trips for every typ (vitals, alert, status, ack),
    sealed (P-256 and Ed25519) and fast, give back the same JSON — with types:
    97.0 stays a float, 72 stays an integer (§9 number rule);
  * every exit code of the contract: 0, 1 (key store / file), 2 (refusal,
    `refused: <stage>: <detail>`), 64 (usage), 65 (invalid JSON);
  * refusals at each stage the CLI can reach: size, cbor, header, epoch, aead,
    inner, alg, kid, signature, message, dev, replay, implausible, duplicate
    (threats A01, A09, A10, A11, A12, A18, A20, A26; I09 for epochs);
  * epoch semantics: --epoch N accepts N and N−1, refuses N−2 and N+1;
  * --state keeps the replay window: the same packet twice is a duplicate;
  * number fidelity over the whole CBOR range (uint64, −2^64) using packets
    built independently here with python3-cryptography and cbor2;
  * interop with the shared vectors (../shared/vectors/mtp1/vectors.json);
  * the key commands and --help/--version.

Environment: MEDTRUST_BIN (default /work/main/build-cli/medtrust); exits 77
when the binary is missing.  Prints a closing "N passed, M failed" line.
"""
import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build-cli/medtrust")
VECTORS = os.environ.get(
    "MT_VECTORS_DIR",
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                 "shared", "vectors"))
PASS = "cli-test-passphrase"
TS = 1733222400000

try:
    import cbor2
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAVE_PYCRYPTO = True
except ImportError:  # pragma: no cover - the tests that need them skip
    HAVE_PYCRYPTO = False

VITALS = {"dev": "dev-1", "ctr": 42, "ts": TS, "typ": 1,
          "obs": [[0, 150456, 97.0, 262688],
                  [-1000, 147842, 72, 264864],
                  [0, 150364, 36.6, 268192, 1]]}
WAVE = {"dev": "dev-1", "ctr": 50, "ts": TS, "typ": 1,
        "obs": [[-500, 131330, 266418, 2000, 0.005, [1, 0, 64, -64, 100000]],
                [0, 150456, 98, 262688]]}
STATUS = {"dev": "dev-1", "ctr": 43, "ts": TS, "typ": 3,
          "st": {"battery": 80, "fw": "1.2.3", "queue": 0, "uptime": 3600,
                 "rssi": -61}}
ACK = {"dev": "dev-1", "ctr": 44, "ts": TS, "typ": 4,
       "ack": {"ctr": 7, "result": 0, "detail": "config applied"}}
ALERT = {"dev": "dev-1", "ctr": 45, "ts": TS, "typ": 2,
         "obs": [[0, 150456, 84, 262688]],
         "alrt": {"code": 1001, "prio": 3,
                  "text": "SpO2 low \"84\" \\ caf\u00e9\ttab\u0001"}}


def typed_json(text):
    """Parse JSON keeping the int/float distinction of §9."""
    return json.loads(text, parse_int=lambda s: ("int", int(s)),
                      parse_float=lambda s: ("float", float(s)))


def typed_py(obj):
    """The same typed form for a Python value (ints vs floats)."""
    if isinstance(obj, bool):
        raise TypeError("no booleans in messages")
    if isinstance(obj, int):
        return ("int", obj)
    if isinstance(obj, float):
        return ("float", obj)
    if isinstance(obj, list):
        return [typed_py(v) for v in obj]
    if isinstance(obj, dict):
        return {k: typed_py(v) for k, v in obj.items()}
    return obj


def run(args, data=b"", env=None):
    return subprocess.run([BIN] + args, input=data, capture_output=True,
                          env=env, timeout=60)


KEYS = {"tmp": None, "env": None}


def setUpModule():
    """Keys shared by every test, made once with `medtrust key generate`."""
    KEYS["tmp"] = tempfile.mkdtemp(prefix="mt-cli-")
    KEYS["env"] = dict(os.environ, MEDTRUST_KEY_PASSPHRASE=PASS)
    keys = [("hub-kx", "p256", "derive"), ("dev-kx", "p256", "derive"),
            ("ldev", "p256", "sign"), ("ldev-ed", "ed25519", "sign"),
            ("ldev2", "p256", "sign")]
    for name, typ, role in keys:
        r = run(["key", "generate", "file:" + os.path.join(KEYS["tmp"], name + ".key"),
                 "--type", typ, "--role", role,
                 "--pub", os.path.join(KEYS["tmp"], name + ".pem")], env=KEYS["env"])
        if r.returncode != 0:
            raise RuntimeError("key generate %s: %r" % (name, r.stderr))


def tearDownModule():
    if KEYS["tmp"]:
        shutil.rmtree(KEYS["tmp"], ignore_errors=True)


class Base(unittest.TestCase):
    """Helpers over the module's keys."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = KEYS["tmp"]
        cls.env = KEYS["env"]

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp, name)

    @classmethod
    def uri(cls, name):
        return "file:" + cls.path(name + ".key")

    def seal(self, msg, epoch=7, fast=False, ldev="ldev", device=None, extra=(),
             kx="dev-kx"):
        data = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        args = ["packet", "seal", "--kx", self.uri(kx),
                "--hub-kx", self.path("hub-kx.pem"), "--epoch", str(epoch)]
        if ldev:
            args += ["--ldev", self.uri(ldev)]
        if fast:
            args.append("--fast")
        if device:
            args += ["--device", device]
        return run(args + list(extra), data, self.env)

    def seal_ok(self, msg, **kw):
        r = self.seal(msg, **kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b"")
        return r.stdout

    def open(self, pkt, epoch=7, ldev_pub="ldev", device="dev-1", verbose=False,
             state=None, extra=()):
        args = ["packet", "open", "--hub-kx", self.uri("hub-kx"),
                "--ldev-pub", self.path(ldev_pub + ".pem"),
                "--kx-pub", self.path("dev-kx.pem"), "--device", device]
        if epoch is not None:
            args += ["--epoch", str(epoch)]
        if verbose:
            args.append("--verbose")
        if state:
            args += ["--state", state]
        return run(args + list(extra), pkt, self.env)

    def assertRefused(self, r, stage):
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.startswith(("refused: %s: " % stage).encode()),
                        r.stderr)
        self.assertEqual(r.stdout, b"")

    def assertRoundTrip(self, msg, **kw):
        open_kw = {k: kw.pop(k) for k in ("ldev_pub",) if k in kw}
        pkt = self.seal_ok(msg, **kw)
        r = self.open(pkt, **open_kw)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.endswith(b"}\n"))
        self.assertEqual(r.stdout.count(b"\n"), 1, "one line")
        self.assertEqual(typed_json(r.stdout), typed_py(msg))
        return r.stdout


class TestRoundTrip(Base):
    """seal → open gives back the same message (protocol §9)."""

    def test_vitals_p256(self):
        self.assertRoundTrip(VITALS)

    def test_vitals_ed25519(self):
        self.assertRoundTrip(VITALS, ldev="ldev-ed", ldev_pub="ldev-ed")

    def test_waveform(self):
        self.assertRoundTrip(WAVE)

    def test_status(self):
        self.assertRoundTrip(STATUS)

    def test_ack(self):
        self.assertRoundTrip(ACK)

    def test_alert_sealed(self):
        self.assertRoundTrip(ALERT)

    def test_alert_fast(self):
        out = self.assertRoundTrip(ALERT, fast=True, ldev=None)
        self.assertIn(b'\\"84\\" \\\\ caf\xc3\xa9\\u0009tab\\u0001', out)

    def test_fast_accepts_ldev(self):
        """--ldev is accepted (and not needed) with --fast."""
        self.assertRoundTrip(ALERT, fast=True)

    def test_alert_without_obs(self):
        msg = {"dev": "dev-1", "ctr": 46, "ts": TS, "typ": 2,
               "alrt": {"code": 7, "prio": 1}}
        self.assertRoundTrip(msg, fast=True, ldev=None)

    def test_ack_without_detail(self):
        msg = {"dev": "dev-1", "ctr": 47, "ts": TS, "typ": 4,
               "ack": {"ctr": 0, "result": 3}}
        self.assertRoundTrip(msg)

    def test_verbose_sealed(self):
        pkt = self.seal_ok(VITALS)
        r = self.open(pkt, verbose=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["kind"], "sealed")
        self.assertEqual(out["epoch"], 7)
        self.assertEqual(typed_json(json.dumps(out["message"])), typed_py(VITALS))
        self.assertEqual(sorted(out), ["epoch", "kind", "message"])
        self.assertIn(b'"message": {"dev": "dev-1"', r.stdout)

    def test_verbose_fast(self):
        pkt = self.seal_ok(ALERT, fast=True, ldev=None, epoch=3)
        r = self.open(pkt, verbose=True, epoch=3)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual((out["kind"], out["epoch"]), ("fast", 3))

    def test_device_defaults_to_dev(self):
        """--device given equal to dev seals the same way as the default."""
        pkt = self.seal_ok(VITALS, device="dev-1")
        self.assertEqual(self.open(pkt).returncode, 0)

    def test_packets_differ(self):
        """Random IVs: the same message never seals to the same bytes."""
        self.assertNotEqual(self.seal_ok(VITALS), self.seal_ok(VITALS))


class TestFidelity(Base):
    """§9: floats print as floats that read back exactly; integers exactly."""

    def test_float_int_text(self):
        out = self.assertRoundTrip(VITALS)
        self.assertIn(b"[0, 150456, 97.0, 262688]", out)
        self.assertIn(b"[-1000, 147842, 72, 264864]", out)
        self.assertIn(b"[0, 150364, 36.6, 268192, 1]", out)

    def test_float_forms(self):
        for text, want in [("97.0", b"97.0"), ("97.00", b"97.0"), ("9.7e1", b"97.0"),
                           ("0.1", b"0.1"), ("-0.0", b"-0.0"), ("1E0", b"1.0"),
                           ("99.99999999999999", b"99.99999999999999"),
                           ("36.6", b"36.6"), ("0.000001", b"1e-06")]:
            msg = ('{"dev": "dev-1", "ctr": 1, "ts": %d, "typ": 1, '
                   '"obs": [[0, 150456, %s, 262688]]}' % (TS, text)).encode()
            pkt = self.seal_ok(msg)
            r = self.open(pkt)
            self.assertEqual(r.returncode, 0, (text, r.stderr))
            self.assertIn(b"[0, 150456, " + want + b", 262688]", r.stdout, text)
            got = typed_json(r.stdout)["obs"][0][2]
            self.assertEqual(got, ("float", float(text)), text)

    def test_large_float_scale(self):
        msg = dict(WAVE, obs=[[0, 131330, 266418, 1, 1e300, [5]]])
        out = self.assertRoundTrip(msg)
        self.assertIn(b"1e+300, [5]]", out)

    def test_extreme_ints(self):
        msg = {"dev": "dev-1", "ctr": 2 ** 63 - 1, "ts": 2 ** 53 - 1, "typ": 3,
               "st": {"queue": 2 ** 63 - 1, "uptime": 0,
                      "rssi": -(2 ** 63)}}
        out = self.assertRoundTrip(msg)
        self.assertIn(b'"ctr": 9223372036854775807', out)
        self.assertIn(b'"rssi": -9223372036854775808', out)

    def test_int32_samples(self):
        msg = dict(WAVE, obs=[[0, 131330, 266418, 1, 2,
                               [2 ** 31 - 1, -(2 ** 31), 0, 2 ** 31 - 1]]])
        self.assertRoundTrip(msg)

    def test_cbor_int_range(self):
        """§5 `uint`/`int` without a bound: seal takes −2^64 .. 2^64 − 1."""
        for msg in [
                {"dev": "dev-1", "ctr": 1, "ts": TS, "typ": 3,
                 "st": {"queue": 2 ** 64 - 1, "uptime": 2 ** 63,
                        "rssi": -(2 ** 64)}},
                {"dev": "dev-1", "ctr": 2, "ts": TS, "typ": 3,
                 "st": {"rssi": 2 ** 64 - 1}},
                {"dev": "dev-1", "ctr": 3, "ts": TS, "typ": 4,
                 "ack": {"ctr": 2 ** 64 - 1, "result": 2 ** 63}},
                {"dev": "dev-1", "ctr": 4, "ts": TS, "typ": 2,
                 "alrt": {"code": 2 ** 64 - 1, "prio": 1}},
                dict(WAVE, obs=[[-(2 ** 64), 131330, 266418, 2 ** 64 - 1,
                                 -(2 ** 64), [1]],
                                [-(2 ** 63) - 1, 131330, 266418, 1, 2 ** 64 - 1, [1]]])]:
            with self.subTest(msg=msg):
                self.assertRoundTrip(msg)


class TestEpoch(Base):
    """--epoch N is the hub's current epoch: N and N−1 pass (§4, threats
    A18, I09)."""

    def test_window(self):
        pkt = self.seal_ok(VITALS, epoch=7)
        for n in (7, 8):
            r = self.open(pkt, epoch=n)
            self.assertEqual(r.returncode, 0, (n, r.stderr))
            self.assertEqual(r.stderr, b"")
        for n in (9, 6, 0, 4294967295):
            self.assertRefused(self.open(pkt, epoch=n), "epoch")

    def test_epoch_zero(self):
        pkt = self.seal_ok(VITALS, epoch=0)
        self.assertEqual(self.open(pkt, epoch=0).returncode, 0)
        self.assertEqual(self.open(pkt, epoch=1).returncode, 0)
        self.assertRefused(self.open(pkt, epoch=2), "epoch")

    def test_max_epoch(self):
        pkt = self.seal_ok(VITALS, epoch=4294967295)
        self.assertEqual(self.open(pkt, epoch=4294967295).returncode, 0)

    def test_no_epoch_note(self):
        pkt = self.seal_ok(VITALS, epoch=12345)
        r = self.open(pkt, epoch=None)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"note: no --epoch given: epoch check skipped", r.stderr)
        self.assertEqual(typed_json(r.stdout), typed_py(VITALS))

    def test_epoch_binds_key(self):
        """A packet relabelled to another epoch fails: K depends on it."""
        pkt = bytearray(self.seal_ok(VITALS, epoch=7))
        self.assertEqual(pkt[9:13], b"\x00\x00\x00\x07")
        pkt[12] = 8
        self.assertRefused(self.open(bytes(pkt), epoch=8), "aead")


class TestState(Base):
    """--state: the replay window survives between runs (A11, A12, A20)."""

    def setUp(self):
        self.state = os.path.join(self.tmp, "win-%s" % self._testMethodName)

    def test_duplicate(self):
        pkt = self.seal_ok(VITALS)
        r = self.open(pkt, state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(self.state), 136)
        before = open(self.state, "rb").read()
        r = self.open(pkt, state=self.state)
        self.assertRefused(r, "duplicate")
        self.assertIn(b"42", r.stderr)
        self.assertEqual(open(self.state, "rb").read(), before)
        # without the state the packet still opens: the window is the file
        self.assertEqual(self.open(pkt).returncode, 0)

    def test_fast_duplicate(self):
        pkt = self.seal_ok(ALERT, fast=True, ldev=None)
        self.assertEqual(self.open(pkt, state=self.state).returncode, 0)
        self.assertRefused(self.open(pkt, state=self.state), "duplicate")

    def test_same_ctr_new_packet(self):
        """A second packet with a seen counter is a duplicate too."""
        self.assertEqual(self.open(self.seal_ok(VITALS), state=self.state).returncode, 0)
        self.assertRefused(self.open(self.seal_ok(VITALS), state=self.state),
                           "duplicate")

    def test_window_order_and_too_old(self):
        def at(ctr):
            return self.open(self.seal_ok(dict(VITALS, ctr=ctr)), state=self.state)

        self.assertEqual(at(5000).returncode, 0)
        self.assertEqual(at(4990).returncode, 0)    # inside the window, unseen
        self.assertEqual(at(5001).returncode, 0)
        self.assertRefused(at(5001 - 1024), "replay")  # ≤ T − 1024
        self.assertEqual(at(5001 - 1023).returncode, 0)
        self.assertRefused(at(5001 + 2 ** 20 + 1), "replay")  # counter jump

    def test_implausible_marks(self):
        """Implausible still marks the counter seen (§5), so it is kept."""
        bad = dict(VITALS, ctr=77, obs=[[0, 150456, 150, 262688]])
        pkt = self.seal_ok(bad)
        self.assertRefused(self.open(pkt, state=self.state), "implausible")
        self.assertRefused(self.open(pkt, state=self.state), "duplicate")

    def test_refused_does_not_mark(self):
        pkt = bytearray(self.seal_ok(VITALS))
        pkt[-1] ^= 1
        self.assertRefused(self.open(bytes(pkt), state=self.state), "aead")
        self.assertFalse(os.path.exists(self.state))

    def test_bad_state_file(self):
        with open(self.state, "wb") as f:
            f.write(b"\x00" * 10)
        r = self.open(self.seal_ok(VITALS), state=self.state)
        self.assertEqual(r.returncode, 1)
        self.assertTrue(r.stderr.startswith(b"error: "), r.stderr)
        with open(self.state, "wb") as f:  # empty top with bits set
            f.write(b"\xff" * 8 + b"\x01" + b"\x00" * 127)
        r = self.open(self.seal_ok(VITALS), state=self.state)
        self.assertEqual(r.returncode, 1)


class TestRefusals(Base):
    """Exit 2 and `refused: <stage>: <detail>` (§5 stages, §9)."""

    def test_size(self):
        r = self.open(b"\xd0" * 65537)
        self.assertRefused(r, "size")
        r = self.open(b"\x00" * (1 << 20))
        self.assertRefused(r, "size")

    def test_cbor(self):
        pkt = self.seal_ok(VITALS)
        self.assertRefused(self.open(pkt + b"\x00"), "cbor")    # trailing byte
        self.assertRefused(self.open(pkt[:-1]), "cbor")         # truncated
        self.assertRefused(self.open(b""), "cbor")
        self.assertRefused(self.open(b"\xff"), "cbor")

    def test_header(self):
        pkt = bytearray(self.seal_ok(VITALS))
        self.assertEqual(bytes(pkt[2:6]), b"\x43\xa1\x01\x03")
        pkt[5] = 0x01  # A128GCM instead of A256GCM
        self.assertRefused(self.open(bytes(pkt)), "header")

    def test_aead_every_byte(self):
        """Threat A01: a flipped bit in the ciphertext or tag is refused."""
        pkt = self.seal_ok(ALERT, fast=True, ldev=None)
        self.assertEqual(pkt[27], 0x58)  # bstr head after header and IV
        for i in list(range(29, len(pkt), 5)) + [len(pkt) - 1]:
            bad = bytearray(pkt)
            bad[i] ^= 0x80
            self.assertRefused(self.open(bytes(bad)), "aead")

    def test_aead_wrong_device(self):
        pkt = self.seal_ok(VITALS)
        self.assertRefused(self.open(pkt, device="dev-2"), "aead")

    def test_alg(self):
        pkt = self.seal_ok(VITALS)
        self.assertRefused(self.open(pkt, ldev_pub="ldev-ed"), "alg")
        pkt = self.seal_ok(VITALS, ldev="ldev-ed")
        self.assertRefused(self.open(pkt, ldev_pub="ldev"), "alg")

    def test_kid(self):
        """Threat A10: the kid of another key is refused."""
        pkt = self.seal_ok(VITALS)
        self.assertRefused(self.open(pkt, ldev_pub="ldev2"), "kid")

    def test_dev(self):
        pkt = self.seal_ok(VITALS, device="dev-2")
        self.assertRefused(self.open(pkt, device="dev-2"), "dev")

    def test_implausible(self):
        """Threat A26: SpO2 150 % is refused at the last stage."""
        pkt = self.seal_ok(dict(VITALS, obs=[[0, 150456, 150, 262688]]))
        self.assertRefused(self.open(pkt), "implausible")


class TestUsage(Base):
    """Exit 64 for usage errors, with the usage line."""

    def check64(self, args, data=b""):
        r = run(args, data, self.env)
        self.assertEqual(r.returncode, 64, (args, r.stderr))
        self.assertEqual(r.stdout, b"")
        return r

    def test_usage_errors(self):
        seal = ["packet", "seal", "--ldev", self.uri("ldev"), "--kx", self.uri("dev-kx"),
                "--hub-kx", self.path("hub-kx.pem")]
        opn = ["packet", "open", "--hub-kx", self.uri("hub-kx"),
               "--ldev-pub", self.path("ldev.pem"), "--kx-pub", self.path("dev-kx.pem")]
        msg = json.dumps(VITALS).encode()
        r = self.check64(seal, msg)                       # missing --epoch
        self.assertIn(b"--epoch", r.stderr)
        self.assertIn(b"usage: medtrust packet seal", r.stderr)
        for bad in ("-1", "+1", "", " 7", "7x", "0x7", "4294967296",
                    "99999999999999999999999"):
            self.check64(seal + ["--epoch", bad], msg)
        self.check64(seal + ["--epoch", "7", "--bogus"], msg)
        self.check64(seal + ["--epoch", "7", "-x"], msg)
        self.check64(seal + ["--epoch", "7", "extra"], msg)
        self.check64(seal + ["--epoch", "7", "--epoch", "8"], msg)
        self.check64(seal + ["--epoch", "7", "--device", "bad id"], msg)
        self.check64(seal + ["--epoch", "7", "--device", "-dev"], msg)
        self.check64(seal + ["--epoch", "7", "--device", "x" * 65], msg)
        self.check64(seal[:-2] + ["--epoch", "7"], msg)    # no --hub-kx
        self.check64(["packet", "seal", "--kx", self.uri("dev-kx"), "--hub-kx",
                      self.path("hub-kx.pem"), "--epoch", "7"], msg)  # no --ldev
        self.check64(seal + ["--epoch"], msg)              # no value
        self.check64(opn)                                  # no --device
        self.check64(opn + ["--device", "dev-1", "--epoch", "x"])
        self.check64(opn + ["--device", "dev/1"])
        self.check64(opn + ["--device", "dev-1", "--state"])
        self.check64(opn[:2] + ["--device", "dev-1"])
        self.check64([])
        self.check64(["frobnicate"])
        self.check64(["packet"])
        self.check64(["packet", "close"])
        self.check64(["key"])
        self.check64(["key", "generate", self.uri("x"), "--type", "rsa"])
        self.check64(["key", "generate", self.uri("x")])
        self.check64(["key", "generate", "--type", "p256"])
        self.check64(["key", "generate", self.uri("x"), "--type", "ed25519",
                      "--role", "derive"])
        self.check64(["key", "generate", self.uri("x"), "--type", "p256",
                      "--role", "encrypt"])
        self.check64(["key", "kid"])
        self.check64(["key", "kid", self.uri("ldev"), "--pub", self.path("ldev.pem")])
        self.check64(["key", "public"])


class TestInvalidJson(Base):
    """Exit 65 and `invalid JSON: <reason>` for bad input to seal."""

    def check65(self, data, fast=False):
        if not isinstance(data, bytes):
            data = json.dumps(data).encode()
        r = self.seal(data, fast=fast)
        self.assertEqual(r.returncode, 65, (data[:200], r.stderr))
        self.assertTrue(r.stderr.startswith(b"invalid JSON: "), r.stderr)
        self.assertEqual(r.stdout, b"")
        return r

    def test_syntax(self):
        self.check65(b"")
        self.check65(b"{")
        self.check65(b"{\"dev\": \"dev-1\",}")
        self.check65(b"[1, 2]")
        self.check65(b"{\"dev\": \"dev-1\", \"dev\": \"dev-1\", \"ctr\": 1, \"ts\": 1,"
                     b" \"typ\": 3, \"st\": {\"queue\": 1}}")   # duplicate name
        self.check65(json.dumps(VITALS).encode() + b" {}")
        self.check65(b'{"dev": "dev-1", "ctr": 9223372036854775808, "ts": 1, "typ": 3,'
                     b' "st": {"queue": 1}}')                     # ctr not below 2^63
        self.check65(b'{"dev": "dev-1", "ctr": 1, "ts": 1, "typ": 3,'
                     b' "st": {"queue": 18446744073709551616}}')  # no CBOR int holds 2^64
        self.check65(b'{"dev": "dev-1", "ctr": 1, "ts": 1, "typ": 3,'
                     b' "st": {"rssi": -18446744073709551617}}')  # nor -2^64 - 1
        self.check65(b'{"dev": "dev-1", "ctr": 1, "ts": 1, "typ": 2,'
                     b' "alrt": {"code": 1, "prio": 1, "text": "\\ud83d"}}')  # lone surrogate
        self.check65(b'{"dev": "dev-1", "ctr": 1, "ts": 1, "typ": 1,'
                     b' "obs": [[0, 150456, 1e400, 262688]]}')    # not a double

    def test_unknown_names(self):
        r = self.check65(dict(VITALS, extra=1))
        self.assertIn(b"extra", r.stderr)
        self.check65(dict(STATUS, st={"battery": 1, "temp": 3}))
        self.check65(dict(ACK, ack={"ctr": 1, "result": 0, "why": "x"}))
        self.check65(dict(ALERT, alrt={"code": 1, "prio": 1, "colour": "red"}))

    def test_schema(self):
        self.check65({k: v for k, v in VITALS.items() if k != "ctr"})
        self.check65({k: v for k, v in VITALS.items() if k != "obs"})  # typ 1 needs obs
        self.check65(dict(VITALS, ctr=42.0))
        self.check65(dict(VITALS, ctr=-1))
        self.check65(dict(VITALS, ctr="42"))
        self.check65(dict(VITALS, ts=2 ** 53))
        self.check65(dict(VITALS, ctr=2 ** 63))
        self.check65(dict(VITALS, typ=5))
        self.check65(dict(VITALS, dev="bad dev"))
        self.check65(dict(VITALS, dev=None))
        self.check65(dict(VITALS, obs=[]))
        self.check65(dict(VITALS, obs=[[0, 150456, 97.0]]))
        self.check65(dict(VITALS, obs=[[1, 150456, 97.0, 262688]]))   # t > 0
        self.check65(dict(VITALS, obs=[[0, 150456, 97.0, 262688, 7]]))  # places
        self.check65(dict(VITALS, obs=[[0, 150456, "97", 262688]]))
        self.check65(dict(VITALS, obs=[[0, 2 ** 32, 97, 262688]]))
        self.check65(dict(VITALS, obs=[[0, 131330, 266418, 0, 1, [1]]]))   # period 0
        self.check65(dict(VITALS, obs=[[0, 131330, 266418, 1, 0, [1]]]))   # scale 0
        self.check65(dict(VITALS, obs=[[0, 131330, 266418, 1, 1, []]]))
        self.check65(dict(VITALS, obs=[[0, 131330, 266418, 1, 1, [2 ** 31]]]))
        self.check65(dict(VITALS, obs=[[0, 131330, 266418, 1, 1, [1.5]]]))
        self.check65(dict(VITALS, obs=[[0, 150456, 97, 262688]] * 1025))
        self.check65(dict(VITALS, st={"battery": 1}))            # st on vitals
        self.check65(dict(STATUS, st={}))
        self.check65(dict(STATUS, st={"battery": 101}))
        self.check65(dict(STATUS, st={"fw": "x" * 257}))
        self.check65(dict(ACK, ack={"ctr": 1}))
        self.check65(dict(ALERT, alrt={"code": 1, "prio": 4}))
        self.check65(dict(ALERT, alrt={"code": 1}))

    def test_fast_needs_alert(self):
        r = self.check65(VITALS, fast=True)
        self.assertIn(b"typ 2", r.stderr)

    def test_too_large_for_a_packet(self):
        msg = dict(WAVE, obs=[[0, 131330, 266418, 1, 1,
                               [(-1) ** i * 2 ** 30 for i in range(20000)]]])
        self.check65(msg)


class TestKeyErrors(Base):
    """Exit 1 and `error: <what>: <reason>`: a key that cannot be opened is
    not a refusal."""

    def check1(self, r):
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(r.stderr.startswith(b"error: "), r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_missing_keys(self):
        pkt = self.seal_ok(VITALS)
        self.check1(self.seal(VITALS, ldev="nope"))
        self.check1(run(["packet", "seal", "--ldev", self.uri("ldev"), "--kx",
                         self.uri("dev-kx"), "--hub-kx", self.path("nope.pem"),
                         "--epoch", "7"], json.dumps(VITALS).encode(), self.env))
        self.check1(self.open(pkt, ldev_pub="nope"))
        self.check1(run(["packet", "open", "--hub-kx", self.uri("nope"), "--ldev-pub",
                         self.path("ldev.pem"), "--kx-pub", self.path("dev-kx.pem"),
                         "--device", "dev-1"], pkt, self.env))

    def test_passphrase(self):
        pkt = self.seal_ok(VITALS)
        env = dict(self.env, MEDTRUST_KEY_PASSPHRASE="wrong")
        args = ["packet", "open", "--hub-kx", self.uri("hub-kx"), "--ldev-pub",
                self.path("ldev.pem"), "--kx-pub", self.path("dev-kx.pem"),
                "--device", "dev-1", "--epoch", "7"]
        self.check1(run(args, pkt, env))
        env = dict(self.env)
        del env["MEDTRUST_KEY_PASSPHRASE"]
        self.check1(run(args, pkt, env))

    def test_ed25519_cannot_derive(self):
        self.check1(self.seal(VITALS, kx="ldev-ed"))

    def test_unsafe_key_file(self):
        src = self.path("ldev.key")
        dst = self.path("ldev-open.key")
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)
        self.check1(self.seal(VITALS, ldev="ldev-open"))


class TestKeys(Base):
    """key generate / public / kid (protocol §1 kid)."""

    def der_of_pem(self, text):
        lines = [l for l in text.strip().splitlines() if not l.startswith("-----")]
        return base64.b64decode("".join(lines))

    def test_kid(self):
        for name in ("ldev", "ldev-ed", "dev-kx"):
            a = run(["key", "kid", self.uri(name)], env=self.env)
            b = run(["key", "kid", "--pub", self.path(name + ".pem")], env=self.env)
            self.assertEqual(a.returncode, 0, a.stderr)
            self.assertEqual(a.stdout, b.stdout)
            der = self.der_of_pem(open(self.path(name + ".pem")).read())
            want = hashlib.sha256(der).hexdigest()[:16]
            self.assertEqual(a.stdout.decode(), want + "\n")

    def test_public(self):
        r = run(["key", "public", self.uri("ldev-ed")], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout.decode()
        self.assertTrue(text.startswith("-----BEGIN PUBLIC KEY-----\n"))
        self.assertTrue(text.endswith("-----END PUBLIC KEY-----\n"))
        self.assertEqual(self.der_of_pem(text),
                         self.der_of_pem(open(self.path("ldev-ed.pem")).read()))
        out = self.path("pub-out.pem")
        r = run(["key", "public", self.uri("ldev"), "--out", out], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.der_of_pem(open(out).read()),
                         self.der_of_pem(open(self.path("ldev.pem")).read()))
        r = run(["key", "public", self.uri("ldev")], env=self.env)
        self.assertEqual(self.der_of_pem(r.stdout.decode()),
                         self.der_of_pem(open(self.path("ldev.pem")).read()))

    def test_generate(self):
        uri = "file:" + self.path("gen.key")
        r = run(["key", "generate", uri, "--type", "p256"], env=self.env)
        self.assertEqual((r.returncode, r.stdout), (0, b""), r.stderr)
        mode = stat.S_IMODE(os.stat(self.path("gen.key")).st_mode)
        self.assertEqual(mode & 0o077, 0)
        kid = run(["key", "kid", uri], env=self.env)
        self.assertRegex(kid.stdout.decode(), r"^[0-9a-f]{16}\n$")
        r = run(["key", "generate", uri, "--type", "p256"], env=self.env)
        self.assertEqual(r.returncode, 1)             # never overwritten
        self.assertTrue(r.stderr.startswith(b"error: "))
        self.assertEqual(run(["key", "kid", uri], env=self.env).stdout, kid.stdout)


class TestHelp(Base):
    def test_version(self):
        r = run(["--version"])
        self.assertEqual((r.returncode, r.stdout), (0, b"medtrust 0.1.0\n"))

    def test_help_documents_flags(self):
        cases = {
            ("--help",): [b"packet seal", b"packet open", b"key generate", b"64", b"65",
                          b"--version", b"MEDTRUST_KEY_PASSPHRASE"],
            ("packet", "--help"): [b"\"obs\"", b"waveform", b"64", b"65"],
            ("packet", "seal", "--help"): [b"--ldev", b"--kx", b"--hub-kx", b"--epoch",
                                           b"--fast", b"--device", b"65", b"64",
                                           b"alrt:", b"period_us"],
            ("packet", "open", "--help"): [b"--hub-kx", b"--ldev-pub", b"--kx-pub",
                                           b"--device", b"--epoch", b"--verbose",
                                           b"--state", b"refused:", b"N-1",
                                           b"duplicate"],
            ("key", "--help"): [b"generate", b"public", b"kid"],
            ("key", "generate", "--help"): [b"--type", b"--role", b"--pub"],
            ("key", "public", "--help"): [b"--out"],
            ("key", "kid", "--help"): [b"--pub"],
        }
        for args, words in cases.items():
            r = run(list(args))
            self.assertEqual(r.returncode, 0, args)
            for w in words:
                self.assertIn(w, r.stdout, (args, w))

    def test_help_wins_over_missing_flags(self):
        r = run(["packet", "seal", "--epoch", "7", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: medtrust packet seal", r.stdout)


@unittest.skipUnless(HAVE_PYCRYPTO, "python3-cryptography and cbor2 needed")
class TestIndependent(Base):
    """Packets built here from the protocol text alone (§4), opened by the
    CLI, and the CLI's packets taken apart here."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()

        def priv(name):
            with open(cls.path(name + ".key"), "rb") as f:
                return serialization.load_pem_private_key(f.read(), PASS.encode())

        def pub(name):
            with open(cls.path(name + ".pem"), "rb") as f:
                return serialization.load_pem_public_key(f.read())

        cls.dev_kx = priv("dev-kx")
        cls.hub_kx = priv("hub-kx")
        cls.ldev_ed = priv("ldev-ed")
        cls.ldev_p256 = priv("ldev")
        cls.hub_pub = pub("hub-kx")
        cls.x = cls.dev_kx.exchange(ec.ECDH(), cls.hub_pub)

    def key(self, epoch, dev="dev-1"):
        return HKDF(algorithm=hashes.SHA256(), length=32,
                    salt=epoch.to_bytes(4, "big"),
                    info=b"MTP/1 A256GCM " + dev.encode()).derive(self.x)

    def kid(self, pubkey):
        der = pubkey.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).digest()[:8]

    def sign1(self, msg, bad_sig=False):
        prot = b"\xa1\x01\x27"
        tbs = cbor2.dumps(["Signature1", prot, b"", msg])
        sig = self.ldev_ed.sign(tbs)
        if bad_sig:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        return (b"\xd2\x84\x43" + prot + b"\xa1\x04\x48" + self.kid(self.ldev_ed.public_key())
                + cbor2.dumps(msg) + b"\x58\x40" + sig)

    def encrypt0(self, pt, epoch=7, dev="dev-1"):
        iv = os.urandom(12)
        aad = cbor2.dumps(["Encrypt0", b"\xa1\x01\x03", dev.encode()])
        ct = AESGCM(self.key(epoch, dev)).encrypt(iv, pt, aad)
        return (b"\xd0\x83\x43\xa1\x01\x03\xa2\x04\x44" + epoch.to_bytes(4, "big")
                + b"\x05\x4c" + iv + cbor2.dumps(ct))

    def open_ed(self, pkt, **kw):
        return self.open(pkt, ldev_pub="ldev-ed", **kw)

    def test_uint64_output(self):
        msg = cbor2.dumps({1: "dev-1", 2: 9, 3: TS, 4: 3,
                           6: {3: 2 ** 64 - 1, 4: 2 ** 63}}, canonical=True)
        r = self.open_ed(self.encrypt0(self.sign1(msg)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'"queue": 18446744073709551615', r.stdout)
        self.assertIn(b'"uptime": 9223372036854775808', r.stdout)
        self.assertEqual(json.loads(r.stdout)["st"]["queue"], 2 ** 64 - 1)

    def test_negint_output(self):
        msg = cbor2.dumps({1: "dev-1", 2: 9, 3: TS, 4: 1,
                           5: [[0, 131330, 266418, 4000, -(2 ** 64), b"\x02"],
                               [0, 131330, 266418, 4000, -(2 ** 63) - 1, b"\x02"]]},
                          canonical=True)
        r = self.open_ed(self.encrypt0(self.sign1(msg)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"4000, -18446744073709551616, [1]]", r.stdout)
        self.assertIn(b"4000, -9223372036854775809, [1]]", r.stdout)

    def test_float16_and_float64(self):
        # 97.0 as float16 (f9 5610) and 36.6 as float64: both print as floats
        msg = (b"\xa5\x01\x65dev-1\x02\x01\x03" + cbor2.dumps(TS) + b"\x04\x01\x05\x82"
               b"\x84\x00\x1a\x00\x02\x4b\xb8\xf9\x56\x10\x1a\x00\x04\x02\x20"
               b"\x84\x00\x1a\x00\x02\x4b\x5c\xfb" + bytes.fromhex("40424ccccccccccd")
               + b"\x1a\x00\x04\x17\xa0")
        r = self.open_ed(self.encrypt0(self.sign1(msg)))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"[0, 150456, 97.0, 262688], [0, 150364, 36.6, 268192]", r.stdout)

    def test_inner_fast_not_alert(self):
        msg = cbor2.dumps({1: "dev-1", 2: 9, 3: TS, 4: 3, 6: {1: 5}}, canonical=True)
        self.assertRefused(self.open_ed(self.encrypt0(msg)), "inner")

    def test_inner_not_sign1(self):
        # a plaintext starting with 0xd2 that is not a strict Sign1
        self.assertRefused(self.open_ed(self.encrypt0(b"\xd2\x84\x40")), "inner")

    def test_signature(self):
        msg = cbor2.dumps(STATUS_CBOR, canonical=True)
        self.assertRefused(self.open_ed(self.encrypt0(self.sign1(msg, bad_sig=True))),
                           "signature")

    def test_message(self):
        bad = dict(STATUS_CBOR)
        bad[9] = 1
        msg = cbor2.dumps(bad, canonical=True)
        self.assertRefused(self.open_ed(self.encrypt0(self.sign1(msg))), "message")

    def test_size_boundary(self):
        """A message whose sealed packet is exactly 65,536 bytes seals and
        opens; one byte more is refused at seal (65)."""
        def msg(n):
            return {"dev": "dev-1", "ctr": 3, "ts": TS, "typ": 1,
                    "obs": [[0, 131330, 266418, 1, 1, [0] * n]]}

        def cbor_len(n):
            return len(cbor2.dumps({1: "dev-1", 2: 3, 3: TS, 4: 1,
                                    5: [[0, 131330, 266418, 1, 1, bytes(n)]]}))

        # sealed: 27 header + 3 bstr head + 17 Sign1 prefix + 3 payload head
        #         + message + 66 signature + 16 tag
        n = 65536 - 132 - (cbor_len(300) - 300)   # 3-byte bstr head for samples
        self.assertEqual(cbor_len(n) + 132, 65536)
        pkt = self.seal_ok(msg(n))
        self.assertEqual(len(pkt), 65536)
        r = self.open(pkt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["obs"][0][5]), n)
        r = self.seal(msg(n + 1))
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"too large", r.stderr)

    def test_cli_packet_taken_apart(self):
        """The CLI's sealed packet decrypts and verifies here; 97.0 went out
        as a float and the waveform as the zigzag-LEB128 of §5."""
        pkt = self.seal_ok(dict(WAVE, obs=WAVE["obs"] + [[0, 150456, 97.0, 262688]]),
                           ldev="ldev", epoch=5)
        self.assertEqual(pkt[:9], b"\xd0\x83\x43\xa1\x01\x03\xa2\x04\x44")
        self.assertEqual(pkt[9:13], (5).to_bytes(4, "big"))
        self.assertEqual(pkt[13:15], b"\x05\x4c")
        iv = pkt[15:27]
        ct = cbor2.loads(pkt[27:])
        aad = cbor2.dumps(["Encrypt0", b"\xa1\x01\x03", b"dev-1"])
        pt = AESGCM(self.key(5)).decrypt(iv, ct, aad)
        tag = cbor2.loads(pt)
        self.assertEqual(tag.tag, 18)
        prot, unprot, msg, sig = tag.value
        self.assertEqual(prot, b"\xa1\x01\x26")
        self.assertEqual(unprot, {4: self.kid(self.ldev_p256.public_key())})
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
        self.ldev_p256.public_key().verify(
            encode_dss_signature(r, s), cbor2.dumps(["Signature1", prot, b"", msg]),
            ec.ECDSA(hashes.SHA256()))
        m = cbor2.loads(msg)
        self.assertEqual(m[5][0][5], bytes.fromhex("02018001ff01c09b0c"))
        self.assertIsInstance(m[5][2][2], float)
        self.assertIsInstance(m[5][1][2], int)
        self.assertIn(b"\xf9\x56\x10", msg)   # 97.0 as the shortest float


STATUS_CBOR = {1: "dev-1", 2: 9, 3: TS, 4: 3, 6: {1: 50}}


@unittest.skipUnless(HAVE_PYCRYPTO and os.path.exists(
    os.path.join(VECTORS, "mtp1", "vectors.json")), "shared vectors needed")
class TestVectors(Base):
    """The CLI opens the worked packets of ../shared/vectors/mtp1."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(os.path.join(VECTORS, "mtp1", "vectors.json")) as f:
            cls.v = json.load(f)
        v = cls.v
        hub = ec.derive_private_key(int(v["hub_kx_d"], 16), ec.SECP256R1())
        data = hub.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(PASS.encode()))
        fd = os.open(cls.path("vec-hub-kx.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        for name in ("dev_kx", "ldev_ed25519", "ldev_p256"):
            der = bytes.fromhex(v[name + "_spki"])
            pem = serialization.load_der_public_key(der).public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            with open(cls.path("vec-%s.pem" % name), "wb") as f:
                f.write(pem)

    def vopen(self, pkt, ldev="ldev_ed25519", verbose=True):
        args = ["packet", "open", "--hub-kx", self.uri("vec-hub-kx"),
                "--ldev-pub", self.path("vec-%s.pem" % ldev),
                "--kx-pub", self.path("vec-dev_kx.pem"),
                "--device", self.v["device_id"], "--epoch", str(self.v["epoch"])]
        if verbose:
            args.append("--verbose")
        return run(args, bytes.fromhex(pkt), self.env)

    def expected(self, hexmsg):
        m = cbor2.loads(bytes.fromhex(hexmsg))
        names = {1: "dev", 2: "ctr", 3: "ts", 4: "typ", 5: "obs", 6: "st", 7: "ack",
                 8: "alrt"}
        sub = {6: {1: "battery", 2: "fw", 3: "queue", 4: "uptime", 5: "rssi"},
               7: {1: "ctr", 2: "result", 3: "detail"}, 8: {1: "code", 2: "prio", 3: "text"}}
        out = {}
        for k, val in m.items():
            if k in sub:
                val = {sub[k][kk]: vv for kk, vv in val.items()}
            out[names[k]] = val
        return typed_py(out)

    def test_sealed_eddsa(self):
        r = self.vopen(self.v["sealed_eddsa_packet"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = typed_json(r.stdout)
        self.assertEqual(out["kind"], "sealed")
        self.assertEqual(out["epoch"], ("int", self.v["epoch"]))
        self.assertEqual(out["message"], self.expected(self.v["message"]))

    def test_fast(self):
        r = self.vopen(self.v["fast_packet"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = typed_json(r.stdout)
        self.assertEqual(out["kind"], "fast")
        self.assertEqual(out["message"], self.expected(self.v["alert_message"]))

    def test_wrong_registered_key(self):
        self.assertRefused(self.vopen(self.v["sealed_eddsa_packet"], ldev="ldev_p256"),
                           "alg")


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
