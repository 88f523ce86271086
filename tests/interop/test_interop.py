#!/usr/bin/python3
"""Interop: the C `medtrust` CLI against the independent Python MTP/1 (mtp1ref).

Contract: protocol.md section 9.
  medtrust packet seal --ldev URI --kx URI --hub-kx HUB_KX_PUB.pem --epoch N [--fast] [--device ID]
  medtrust packet open --hub-kx URI --ldev-pub LDEV_PUB.pem --kx-pub KX_PUB.pem --device ID
                       [--epoch N] [--verbose]
  exit 0 ok; 2 refusal ("refused: <stage>: <detail>" on stderr); 64 usage; 65 invalid JSON.

Groups:
  A  packets sealed by the CLI open in Python (ES256, EdDSA, fast), byte-exact payloads
  B  packets sealed in Python are accepted by the CLI; its JSON equals the message
  C  refusals through the CLI, by stage, exit 2
  D  usage errors (64) and invalid JSON (65)
  E  a spread of messages (typ 1..4, floats, big ints, places, waveforms, text)
  G  integers beyond int64 in unbounded uint/int fields
  F  differential: mutated messages, Sign1s and packets get the same verdict from both
     ($MT_INTEROP_SEED, $MT_INTEROP_FUZZ packets per category)
  K  token keys: `medtrust key generate` / `medtrust key public` with file: URIs

CLI: $MEDTRUST_BIN, else <repo>/build/medtrust; exit 77 when not found.
Run with /usr/bin/python3.
"""

import copy
import json
import math
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mtp1ref as R  # noqa: E402
from mtp1ref import Tag  # noqa: E402

from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import (  # noqa: E402
    decode_dss_signature, encode_dss_signature)
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402

REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("MEDTRUST_BIN") or os.path.join(REPO, "build", "medtrust")

DEV = "ward3-bed12.mon_A"
EPOCH = 7
TS = 1764300000000
PASS = "interop passphrase \u00e9 1"

K = None  # the key fixture, set up once in main()


# --------------------------------------------------------------------------
# Fixture: keys on disk


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mt-interop-")
        os.chmod(self.dir, 0o700)
        self.priv = {
            "p256": ec.generate_private_key(ec.SECP256R1()),
            "ed25519": ed25519.Ed25519PrivateKey.generate(),
            "dev_kx": ec.generate_private_key(ec.SECP256R1()),
            "hub_kx": ec.generate_private_key(ec.SECP256R1()),
            "other_p256": ec.generate_private_key(ec.SECP256R1()),
            "other_ed25519": ed25519.Ed25519PrivateKey.generate(),
        }
        self.key_path = {}
        self.pub_path = {}
        for name, k in self.priv.items():
            self.key_path[name] = os.path.join(self.dir, name + ".key.pem")
            self.pub_path[name] = os.path.join(self.dir, name + ".pub.pem")
            R.write_private_pem(self.key_path[name], k, PASS)
            R.write_public_pem(self.pub_path[name], k)
        self.ikm = R.ecdh_x(self.priv["dev_kx"], self.priv["hub_kx"].public_key())

    def uri(self, name):
        return "file:" + self.key_path[name]

    def pub(self, name):
        return self.priv[name].public_key()

    def data_key(self, epoch=EPOCH, device=DEV):
        return R.data_key(self.ikm, epoch, device)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# CLI helpers


def run_cli(args, stdin=b"", env_extra=None, timeout=120):
    env = dict(os.environ)
    env["MEDTRUST_KEY_PASSPHRASE"] = PASS
    if env_extra:
        env.update(env_extra)
    p = subprocess.run([BIN] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def seal_args(ldev="p256", epoch=EPOCH, fast=False, device=DEV, kx="dev_kx"):
    a = ["packet", "seal", "--ldev", K.uri(ldev), "--kx", K.uri(kx),
         "--hub-kx", K.pub_path["hub_kx"], "--epoch", str(epoch)]
    if fast:
        a.append("--fast")
    if device is not None:
        a += ["--device", device]
    return a


def open_args(ldev="p256", epoch=EPOCH, verbose=False, device=DEV):
    a = ["packet", "open", "--hub-kx", K.uri("hub_kx"), "--ldev-pub", K.pub_path[ldev],
         "--kx-pub", K.pub_path["dev_kx"], "--device", device]
    if epoch is not None:
        a += ["--epoch", str(epoch)]
    if verbose:
        a.append("--verbose")
    return a


def jdump(obj):
    return json.dumps(obj, allow_nan=False).encode("utf-8")


def withdev(j, dev=DEV):
    j = copy.deepcopy(j)
    j["dev"] = dev
    return j


# --------------------------------------------------------------------------
# Strict comparison: ints stay ints, floats stay floats, bit for bit


def same(a, b, path="$"):
    """Returns None when a and b are the same JSON value, else where they differ."""
    if type(a) is not type(b):
        return "%s: %r (%s) vs %r (%s)" % (path, a, type(a).__name__, b, type(b).__name__)
    if isinstance(a, float):
        if struct.pack(">d", a) != struct.pack(">d", b):
            return "%s: %r vs %r" % (path, a, b)
        return None
    if isinstance(a, dict):
        if set(a) != set(b):
            return "%s: names %s vs %s" % (path, sorted(a), sorted(b))
        for k in a:
            d = same(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return "%s: length %d vs %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None
    return None if a == b else "%s: %r vs %r" % (path, a, b)


# --------------------------------------------------------------------------
# The message spread (JSON form, section 9)


def pulse_series(n):
    return [[-i * 1000, 149530, 60 + (i % 40), 264864] for i in range(n)]


ECG = [int(1000 * math.sin(i / 7.0)) + (i % 3) for i in range(500)]

VITALS_MANY = {
    "dev": DEV, "ctr": 1000, "ts": TS, "typ": 1,
    "obs": [
        [0, 147842, 72, 264864],
        [0, 150456, 97.0, 262688],                 # float16 f9 5610
        [-10, 150456, 0.1, 262688, 1],             # float64
        [-20, 150364, 36.6, 268192, 1],            # float64
        [-30, 150364, 37.25, 268192, 2],           # float16
        [-40, 150364, 20.0, 268192, 0],            # range edge, float16
        [-41, 150364, 45.0, 268192, 6],            # range edge, places 6
        [-50, 160184, 1999.5, 264274, 1],          # float32
        [-60, 150021, 120, 266016],
        [-70, 150022, 80, 266016],
        [-80, 150023, 93.33333333333333, 266016, 0],
        [-90, 151562, 16, 264928],
        [-100, 149530, 350, 264864],               # range edge
        [-110, 147842, 0, 264864],                 # range edge
        [-(2 ** 53), 160184, 2000, 264274],        # large negative t
        [-1000, 131330, 266418, 4000, -1.5,        # waveform, float16 scale
         [1, 0, 64, -64, 100000, 2 ** 31 - 1, -(2 ** 31), 0]],
        [-2000, 131330, 266418, 2000, 1e300, [5]],            # float64 scale
        [-3000, 131330, 266418, 2 ** 32, 0.005, ECG],         # big period
        [-4000, 131330, 266418, 1, 3, [-7, -7, -7]],          # int scale
        [-5000, 131330, 266418, 2 ** 63 - 1, 65504.0, [0]],   # int64 max period, float16 max
    ] + pulse_series(200),
}

VITALS_SMALL = {"dev": DEV, "ctr": 0, "ts": 0, "typ": 1,
                "obs": [[0, 150364, 36.5, 268192]]}

VITALS_1024 = {"dev": DEV, "ctr": 5, "ts": TS, "typ": 1, "obs": pulse_series(1024)}

ALERT_OBS = {"dev": DEV, "ctr": 43, "ts": TS, "typ": 2,
             "alrt": {"code": 1001, "prio": 3, "text": "SpO2 low"},
             "obs": [[0, 150456, 84, 262688], [0, 149530, 131.0, 264864]]}

ALERT_BARE = {"dev": DEV, "ctr": 44, "ts": TS, "typ": 2,
              "alrt": {"code": 2 ** 32, "prio": 1}}

ALERT_TEXT = {"dev": DEV, "ctr": 45, "ts": TS, "typ": 2,
              "alrt": {"code": 7, "prio": 2,
                       "text": "q\" b\\ t\t n\n \u00e9\u20ac\U0001fac0 </script> \u007f\u0001"}}

ALERT_256 = {"dev": DEV, "ctr": 46, "ts": TS, "typ": 2,
             "alrt": {"code": 8, "prio": 2, "text": "\u00e9" * 128}}  # exactly 256 bytes

STATUS_BIG = {"dev": DEV, "ctr": 2 ** 63 - 1, "ts": 2 ** 53 - 1, "typ": 3,
              "st": {"battery": 100, "fw": "2.4.1-rc.3+\u00fc\u00f1\u00ef",
                     "queue": 2 ** 63 - 1, "uptime": 2 ** 32, "rssi": -(2 ** 63)}}

STATUS_ONE = {"dev": DEV, "ctr": 77, "ts": TS, "typ": 3, "st": {"rssi": -67}}

STATUS_ZERO = {"dev": DEV, "ctr": 78, "ts": TS, "typ": 3, "st": {"battery": 0, "rssi": 3}}

ACK_FULL = {"dev": DEV, "ctr": 90, "ts": TS, "typ": 4,
            "ack": {"ctr": 2 ** 63 - 1, "result": 0, "detail": "applied"}}

ACK_MIN = {"dev": DEV, "ctr": 91, "ts": TS, "typ": 4, "ack": {"ctr": 0, "result": 7}}

SPREAD = [("vitals_many", VITALS_MANY), ("vitals_small", VITALS_SMALL),
          ("vitals_1024", VITALS_1024), ("alert_obs", ALERT_OBS), ("alert_bare", ALERT_BARE),
          ("alert_text", ALERT_TEXT), ("alert_256", ALERT_256), ("status_big", STATUS_BIG),
          ("status_one", STATUS_ONE), ("status_zero", STATUS_ZERO), ("ack_full", ACK_FULL),
          ("ack_min", ACK_MIN)]

FAST_SPREAD = [(n, m) for n, m in SPREAD if m["typ"] == 2]

# uint fields above int64 (the protocol's uint is CBOR major type 0: up to 2^64-1);
# kept apart from SPREAD so that a limit there fails on its own
U64_SPREAD = [
    ("status_queue_u64", {"dev": DEV, "ctr": 80, "ts": TS, "typ": 3,
                          "st": {"queue": 2 ** 64 - 1, "uptime": 2 ** 63}}),
    ("ack_ctr_u64", {"dev": DEV, "ctr": 92, "ts": TS, "typ": 4,
                     "ack": {"ctr": 2 ** 64 - 1, "result": 2 ** 63}}),
    ("period_u64", {"dev": DEV, "ctr": 93, "ts": TS, "typ": 1,
                    "obs": [[0, 131330, 266418, 2 ** 64 - 1, 0.005, [1, 2]]]}),
    ("alert_code_u64", {"dev": DEV, "ctr": 94, "ts": TS, "typ": 2,
                        "alrt": {"code": 2 ** 64 - 1, "prio": 3}}),
]


# --------------------------------------------------------------------------
# Python-side sealing helpers


def cbor_of(j):
    """The message's deterministic CBOR, via the Python JSON mapping."""
    return R.dumps(R.message_from_jsonobj(copy.deepcopy(j)))


def py_seal(msg, ldev="p256", epoch=EPOCH, device=DEV, fast=False, iv=None):
    mb = msg if isinstance(msg, (bytes, bytearray)) else \
        (R.dumps(msg) if isinstance(next(iter(msg)), int) else cbor_of(msg))
    return R.seal(mb, K.data_key(epoch, device), epoch, device,
                  signer=None if fast else K.priv[ldev], iv=iv)


def py_sign1_packet(sign1_bytes, epoch=EPOCH, device=DEV):
    return R.encrypt0(K.data_key(epoch, device), epoch, None, sign1_bytes,
                      R.enc_structure(device))


def py_open(pkt, ldev="p256", epoch=EPOCH, device=DEV):
    return R.open_packet(pkt, device, K.pub(ldev), hub_kx=K.priv["hub_kx"],
                         dev_kx_pub=K.pub("dev_kx"), epoch=epoch)


def es256_rs(key, data):
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r, s


# --------------------------------------------------------------------------
# Test base


class CliCase(unittest.TestCase):
    maxDiff = 4000

    def cli_seal(self, j, **kw):
        rc, out, err = run_cli(seal_args(**kw), jdump(j))
        self.assertEqual(rc, 0, "seal failed: rc=%d stderr=%r" % (rc, err))
        self.assertTrue(out, "seal printed no packet")
        return out

    def cli_open_ok(self, pkt, **kw):
        rc, out, err = run_cli(open_args(**kw), pkt)
        self.assertEqual(rc, 0, "open refused: rc=%d stderr=%r" % (rc, err))
        try:
            return R.parse_json(out), err
        except R.JsonInvalid as e:
            self.fail("open printed invalid JSON (%s): %r" % (e, out[:300]))

    def assertSameJson(self, got, want, what=""):
        d = same(got, want)
        if d:
            self.fail("%s JSON differs at %s" % (what, d))

    def assertRefused(self, rc, out, err, stages, what=""):
        if isinstance(stages, str):
            stages = (stages,)
        self.assertEqual(rc, 2, "%s: expected exit 2 (refused: %s), got %d, stderr=%r"
                         % (what, "/".join(stages), rc, err))
        m = re.search(r"^refused: ([a-z_]+): \S", err, re.M)
        self.assertIsNotNone(m, "%s: no 'refused: <stage>: <detail>' line on stderr: %r"
                             % (what, err))
        self.assertIn(m.group(1), stages, "%s: stderr=%r" % (what, err))
        self.assertEqual(out, b"", "%s: a refusal printed something on stdout" % what)

    def open_refused(self, pkt, stages, what="", **kw):
        rc, out, err = run_cli(open_args(**kw), pkt)
        self.assertRefused(rc, out, err, stages, what)
        return err


# --------------------------------------------------------------------------
# A: CLI seal -> Python open


class A_CliSealPythonOpen(CliCase):
    def check_sealed(self, ldev, alg):
        for name, j in SPREAD:
            with self.subTest(message=name):
                pkt = self.cli_seal(j, ldev=ldev)
                o = py_open(pkt, ldev=ldev)
                self.assertEqual(o.kind, "sealed")
                self.assertEqual(o.alg, alg)
                self.assertEqual(o.kid, R.kid_of(K.pub(ldev)))
                self.assertEqual(o.epoch, EPOCH)
                self.assertEqual(len(o.signature), 64)
                # byte-exact deterministic encoding of the message
                self.assertEqual(o.message_bytes.hex(), cbor_of(j).hex(), name)
                self.assertSameJson(R.message_to_jsonobj(o.message), j, name)

    def test_sealed_es256(self):
        self.check_sealed("p256", R.ALG_ES256)

    def test_sealed_eddsa(self):
        self.check_sealed("ed25519", R.ALG_EDDSA)

    def test_fast(self):
        for name, j in FAST_SPREAD:
            with self.subTest(message=name):
                pkt = self.cli_seal(j, fast=True)
                o = py_open(pkt)
                self.assertEqual(o.kind, "fast")
                self.assertEqual(o.epoch, EPOCH)
                self.assertEqual(o.message_bytes.hex(), cbor_of(j).hex())
                self.assertSameJson(R.message_to_jsonobj(o.message), j, name)

    def test_exact_layout(self):
        """Section 4 exact bytes of the packet and the inner Sign1."""
        pkt = self.cli_seal(VITALS_SMALL, ldev="p256", epoch=0x01020304)
        self.assertEqual(pkt[:11].hex(), "d08343a10103a204440102")
        self.assertEqual(pkt[11:15].hex(), "0304054c")
        o = R.open_packet(pkt, DEV, K.pub("p256"), hub_kx=K.priv["hub_kx"],
                          dev_kx_pub=K.pub("dev_kx"), epoch=0x01020304)
        self.assertEqual(o.epoch, 0x01020304)
        key = R.data_key(K.ikm, 0x01020304, DEV)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        ct = R.loads(pkt).value[2]
        pt = AESGCM(key).decrypt(o.iv, ct, R.enc_structure(DEV))
        self.assertEqual(pt[:6].hex(), "d28443a10126")
        self.assertEqual(pt[6:9].hex(), "a10448")
        self.assertEqual(pt[9:17], R.kid_of(K.pub("p256")))
        self.assertEqual(pt[-66:-64].hex(), "5840")

    def test_random_iv(self):
        a = self.cli_seal(VITALS_SMALL)
        b = self.cli_seal(VITALS_SMALL)
        ia, ib = py_open(a).iv, py_open(b).iv
        self.assertNotEqual(ia, ib, "two seals used the same IV")
        self.assertNotEqual(ia, bytes(12))

    def test_epoch_zero_and_max(self):
        for ep in (0, 2 ** 32 - 1):
            pkt = self.cli_seal(VITALS_SMALL, epoch=ep)
            self.assertEqual(py_open(pkt, epoch=ep).epoch, ep)

    def test_device_defaults_to_message_dev(self):
        # inference: without --device the Enc_structure uses the message's dev
        pkt = self.cli_seal(VITALS_SMALL, device=None)
        self.assertEqual(py_open(pkt).message[1], DEV)

    def test_json_number_rule(self):
        """'.', 'e', 'E' make a float; 97.0 is f9 5610, 1E2 is a float, 97 an int."""
        j = {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1,
             "obs": [[0, 150456, 97, 262688], [0, 150456, 97.0, 262688],
                     [0, 150456, 1E2, 262688], [0, 150456, 9.5e1, 262688]]}
        text = (b'{"dev":"%s","ctr":1,"ts":%d,"typ":1,"obs":[[0,150456,97,262688],'
                b'[0,150456,97.0,262688],[0,150456,1E2,262688],[0,150456,9.5e1,262688]]}'
                % (DEV.encode(), TS))
        rc, pkt, err = run_cli(seal_args(), text)
        self.assertEqual(rc, 0, err)
        o = py_open(pkt)
        self.assertIn(bytes.fromhex("001a00024bb818611a00040220"), o.message_bytes)
        self.assertIn(bytes.fromhex("001a00024bb8f956101a00040220"), o.message_bytes)
        self.assertIn(bytes.fromhex("001a00024bb8f956401a00040220"), o.message_bytes)
        self.assertIn(bytes.fromhex("001a00024bb8f955f01a00040220"), o.message_bytes)
        self.assertEqual(o.message_bytes, cbor_of(j))


# --------------------------------------------------------------------------
# B: Python seal -> CLI open


class B_PythonSealCliOpen(CliCase):
    def check(self, ldev, fast=False, spread=SPREAD):
        for name, j in spread:
            with self.subTest(message=name, ldev=ldev, fast=fast):
                pkt = py_seal(j, ldev=ldev, fast=fast)
                got, _ = self.cli_open_ok(pkt, ldev=ldev)
                self.assertSameJson(got, j, name)

    def test_sealed_es256(self):
        self.check("p256")

    def test_sealed_eddsa(self):
        self.check("ed25519")

    def test_fast(self):
        self.check("p256", fast=True, spread=FAST_SPREAD)
        self.check("ed25519", fast=True, spread=FAST_SPREAD)

    def test_uint64_values(self):
        """Output prints integers exactly, any uint64 (section 9)."""
        self.check("p256", spread=U64_SPREAD)

    def test_verbose(self):
        for ldev, fast, kind in (("p256", False, "sealed"), ("ed25519", False, "sealed"),
                                 ("p256", True, "fast")):
            with self.subTest(kind=kind, ldev=ldev):
                j = ALERT_OBS
                pkt = py_seal(j, ldev=ldev, fast=fast)
                got, _ = self.cli_open_ok(pkt, ldev=ldev, verbose=True)
                self.assertIsInstance(got, dict)
                self.assertEqual(set(got), {"kind", "epoch", "message"})
                self.assertEqual(got["kind"], kind)
                self.assertIs(type(got["epoch"]), int)
                self.assertEqual(got["epoch"], EPOCH)
                self.assertSameJson(got["message"], j, "verbose message")

    def test_verbose_previous_epoch(self):
        pkt = py_seal(VITALS_SMALL, epoch=EPOCH - 1)
        got, _ = self.cli_open_ok(pkt, epoch=EPOCH, verbose=True)
        self.assertEqual(got["epoch"], EPOCH - 1)
        self.assertSameJson(got["message"], VITALS_SMALL)

    def test_without_epoch_says_so(self):
        pkt = py_seal(VITALS_SMALL, epoch=123456)
        got, err = self.cli_open_ok(pkt, epoch=None)
        self.assertSameJson(got, VITALS_SMALL)
        self.assertIn("epoch", err.lower(), "open without --epoch must say it skipped the check")

    def test_epoch_zero_only_itself(self):
        pkt = py_seal(VITALS_SMALL, epoch=0)
        got, _ = self.cli_open_ok(pkt, epoch=0)
        self.assertSameJson(got, VITALS_SMALL)

    def test_high_s_accepted(self):
        """Verifiers must not require low-s (section 4)."""
        mb = cbor_of(VITALS_SMALL)
        key = K.priv["p256"]
        for _ in range(64):
            r, s = es256_rs(key, R.sig_structure(R.ALG_ES256, mb))
            if s < R.P256_N // 2:
                break
        hi = R.P256_N - s
        self.assertGreater(hi, R.P256_N // 2)
        sig = r.to_bytes(32, "big") + hi.to_bytes(32, "big")
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: R.kid_of(K.pub("p256"))}, mb, sig]))
        got, _ = self.cli_open_ok(py_sign1_packet(s1))
        self.assertSameJson(got, VITALS_SMALL)

    def test_packet_of_exactly_65536_bytes(self):
        pkt, j = sized_packet(65536)
        self.assertEqual(len(pkt), 65536)
        got, _ = self.cli_open_ok(pkt)
        self.assertSameJson(got, j)


def sized_packet(target):
    """A valid sealed ES256 packet of exactly `target` bytes (waveform of zeros)."""
    n = 60000
    for _ in range(20):
        j = {"dev": DEV, "ctr": 9, "ts": TS, "typ": 1,
             "obs": [[0, 131330, 266418, 2000, 0.005, [0] * n]]}
        pkt = py_seal(j)
        if len(pkt) == target:
            return pkt, j
        n += target - len(pkt)
    raise AssertionError("cannot size a packet to %d" % target)


# --------------------------------------------------------------------------
# C: refusals through the CLI


class C_Refusals(CliCase):
    def test_tampered_ciphertext_is_aead(self):
        pkt = bytearray(py_seal(VITALS_SMALL))
        pkt[-5] ^= 0x40
        self.open_refused(bytes(pkt), "aead", "tampered ciphertext")
        pkt = bytearray(py_seal(ALERT_OBS, fast=True))
        pkt[-1] ^= 0x01
        self.open_refused(bytes(pkt), "aead", "tampered tag (fast)")

    def test_tampered_iv_and_epoch_and_device(self):
        pkt = bytearray(py_seal(VITALS_SMALL))
        pkt[17] ^= 1   # inside the IV (bytes 15..26)
        self.open_refused(bytes(pkt), "aead", "tampered IV")
        # epoch 8 header on a packet of epoch 7: accepted epoch, wrong key -> aead
        pkt = bytearray(py_seal(VITALS_SMALL))
        self.assertEqual(pkt[9:13], bytes([0, 0, 0, 7]))
        pkt[12] = 8
        self.open_refused(bytes(pkt), "aead", "epoch bytes changed", epoch=8)
        # the device id is in the key and the AAD
        self.open_refused(py_seal(VITALS_SMALL), "aead", "other --device",
                          device="ward3-bed13.mon_A")

    def test_wrong_epoch(self):
        pkt = py_seal(VITALS_SMALL)  # epoch 7
        self.open_refused(pkt, "epoch", "too old (current 9)", epoch=9)
        self.open_refused(pkt, "epoch", "future (current 6)", epoch=6)
        self.open_refused(pkt, "epoch", "future (current 0)", epoch=0)
        self.cli_open_ok(pkt, epoch=8)  # the one before the current is accepted

    def test_wrong_epoch_before_aead(self):
        # epoch checked before key derivation or decryption: garbage ciphertext
        pkt = R.dumps(Tag(16, [R.PROT_A256GCM, {4: bytes([0, 0, 0, 3]), 5: bytes(12)},
                               b"\x00" * 40]))
        self.open_refused(pkt, "epoch", "old epoch, garbage ciphertext")

    def test_signed_by_another_key(self):
        # another key, its own kid in the header: kid stage (section 5 #8)
        pkt = py_seal(VITALS_SMALL, ldev="other_p256")
        self.open_refused(pkt, "kid", "other P-256 key, own kid")
        pkt = py_seal(VITALS_SMALL, ldev="other_ed25519")
        self.open_refused(pkt, "kid", "other Ed25519 key, own kid", ldev="ed25519")
        # another key claiming the registered kid: signature stage (#9)
        mb = cbor_of(VITALS_SMALL)
        for other, reg, prot, alg in (("other_p256", "p256", R.PROT_ES256, R.ALG_ES256),
                                      ("other_ed25519", "ed25519", R.PROT_EDDSA, R.ALG_EDDSA)):
            sig = R.sign(K.priv[other], R.sig_structure(alg, mb))
            s1 = R.dumps(Tag(18, [prot, {4: R.kid_of(K.pub(reg))}, mb, sig]))
            self.open_refused(py_sign1_packet(s1), "signature",
                              "%s key, registered kid" % other, ldev=reg)

    def test_kid_missing_or_extra_label(self):
        mb = cbor_of(VITALS_SMALL)
        sig = R.sign(K.priv["p256"], R.sig_structure(R.ALG_ES256, mb))
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {}, mb, sig]))
        self.open_refused(py_sign1_packet(s1), "kid", "kid missing")
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: R.kid_of(K.pub("p256"))[:7]}, mb, sig]))
        self.open_refused(py_sign1_packet(s1), "kid", "kid of 7 bytes")

    def test_signature_shape(self):
        mb = cbor_of(VITALS_SMALL)
        kid = R.kid_of(K.pub("p256"))
        r, s = es256_rs(K.priv["p256"], R.sig_structure(R.ALG_ES256, mb))
        der = encode_dss_signature(r, s)
        cases = [
            ("DER signature", der),
            ("r = 0", bytes(32) + s.to_bytes(32, "big")),
            ("s = n", r.to_bytes(32, "big") + R.P256_N.to_bytes(32, "big")),
            ("63 bytes", (r.to_bytes(32, "big") + s.to_bytes(32, "big"))[:63]),
            ("flipped bit", r.to_bytes(32, "big") + (s ^ 1).to_bytes(32, "big")),
        ]
        for what, sig in cases:
            s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: kid}, mb, sig]))
            self.open_refused(py_sign1_packet(s1), "signature", what)
        # the signature covers the payload
        good = R.sign(K.priv["p256"], R.sig_structure(R.ALG_ES256, mb))
        other = cbor_of(dict(VITALS_SMALL, ctr=1))
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: kid}, other, good]))
        self.open_refused(py_sign1_packet(s1), "signature", "payload swapped")

    def test_alg(self):
        # EdDSA-signed packet for a device registered with a P-256 key
        pkt = py_seal(VITALS_SMALL, ldev="ed25519")
        self.open_refused(pkt, "alg", "EdDSA for a P-256 device", ldev="p256")
        pkt = py_seal(VITALS_SMALL, ldev="p256")
        self.open_refused(pkt, "alg", "ES256 for an Ed25519 device", ldev="ed25519")
        mb = cbor_of(VITALS_SMALL)
        sig = R.sign(K.priv["p256"], R.dumps(["Signature1", bytes.fromhex("a10126"), b"", mb]))
        for prot in ("a10126a0", "a1013822", "a0"):  # extra bytes / ES384 / empty
            s1 = R.dumps(Tag(18, [bytes.fromhex(prot), {4: R.kid_of(K.pub("p256"))}, mb, sig]))
            self.open_refused(py_sign1_packet(s1), "alg", "Sign1 protected %s" % prot)

    def test_fast_typ1_is_inner(self):
        pkt = py_seal(VITALS_SMALL, fast=True)
        self.open_refused(pkt, "inner", "fast packet with typ 1")
        pkt = py_seal(STATUS_ONE, fast=True)
        self.open_refused(pkt, "inner", "fast packet with typ 3")

    def test_inner_not_a_sign1(self):
        mb = cbor_of(VITALS_SMALL)
        sig = R.sign(K.priv["p256"], R.sig_structure(R.ALG_ES256, mb))
        kid = R.kid_of(K.pub("p256"))
        good = R.dumps(Tag(18, [R.PROT_ES256, {4: kid}, mb, sig]))
        self.open_refused(py_sign1_packet(good + b"\x00"), "inner", "Sign1 + trailing byte")
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: kid}, mb]))
        self.open_refused(py_sign1_packet(s1), "inner", "Sign1 of 3 elements")
        s1 = R.dumps(Tag(18, [R.PROT_ES256, {4: kid}, mb, sig, b""]))
        self.open_refused(py_sign1_packet(s1), "inner", "Sign1 of 5 elements")
        self.open_refused(py_sign1_packet(good[:-10]), "inner", "truncated Sign1")

    def test_oversized_is_size(self):
        pkt, _ = sized_packet(65537)
        self.assertEqual(len(pkt), 65537)
        self.open_refused(pkt, "size", "valid packet of 65537 bytes")
        self.open_refused(b"\xd0" + b"\x00" * 70000, "size", "70001 bytes of junk")

    def test_trailing_byte_is_cbor(self):
        good = py_seal(VITALS_SMALL)
        self.open_refused(good + b"\x00", "cbor", "trailing byte")
        self.open_refused(good[:-1], "cbor", "truncated packet")
        # non-shortest head for the ciphertext length
        v = R.loads(good).value
        ct = v[2]
        self.assertLess(len(ct), 256)
        body = bytes.fromhex("d08343a10103") + R.dumps(v[1]) + b"\x59" + \
            struct.pack(">H", len(ct)) + ct
        self.open_refused(body, "cbor", "non-shortest bstr head")
        self.open_refused(b"\xd0\x9f\xff", "cbor", "indefinite array")
        self.open_refused(b"", "cbor", "empty input")

    def test_header(self):
        key = K.data_key()
        aad = R.enc_structure(DEV)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        ct = AESGCM(key).encrypt(bytes(12), R.sign1(K.priv["p256"], cbor_of(VITALS_SMALL)), aad)
        ep = struct.pack(">I", EPOCH)
        cases = [
            ("protected a10101", Tag(16, [bytes.fromhex("a10101"), {4: ep, 5: bytes(12)}, ct])),
            ("protected empty", Tag(16, [b"", {4: ep, 5: bytes(12)}, ct])),
            ("untagged", [R.PROT_A256GCM, {4: ep, 5: bytes(12)}, ct]),
            ("tag 18 outside", Tag(18, [R.PROT_A256GCM, {4: ep, 5: bytes(12)}, ct])),
            ("extra label", Tag(16, [R.PROT_A256GCM, {4: ep, 5: bytes(12), 6: b""}, ct])),
            ("no epoch", Tag(16, [R.PROT_A256GCM, {5: bytes(12)}, ct])),
            ("epoch of 3 bytes", Tag(16, [R.PROT_A256GCM, {4: ep[1:], 5: bytes(12)}, ct])),
            ("epoch as uint", Tag(16, [R.PROT_A256GCM, {4: EPOCH, 5: bytes(12)}, ct])),
            ("IV of 11 bytes", Tag(16, [R.PROT_A256GCM, {4: ep, 5: bytes(11)}, ct])),
            ("array of 4", Tag(16, [R.PROT_A256GCM, {4: ep, 5: bytes(12)}, ct, b""])),
        ]
        for what, obj in cases:
            self.open_refused(R.dumps(obj), "header", what)
        # the real header opens (control)
        self.cli_open_ok(R.dumps(Tag(16, [R.PROT_A256GCM, {4: ep, 5: bytes(12)}, ct])))

    def sealed_raw(self, mb, ldev="p256"):
        return py_seal(bytes(mb), ldev=ldev)

    def test_message_schema(self):
        base = R.message_from_jsonobj(copy.deepcopy(VITALS_SMALL))

        def m(**changes):
            x = copy.deepcopy(base)
            for k, v in changes.items():
                k = int(k[1:])
                if v is None:
                    x.pop(k, None)
                else:
                    x[k] = v
            return R.dumps(x)

        cases = [
            ("unknown top-level key 9", m(k9=1)),
            ("unknown key 0", m(k0=1)),
            ("tstr key", R.dumps(dict(base, dev="x"))),
            ("typ 1 without obs", m(k5=None)),
            ("typ 1 with st", m(k6={1: 50})),
            ("typ 5", m(k4=5)),
            ("obs empty", m(k5=[])),
            ("1025 observations", m(k5=[[0, 149530, 60, 264864]] * 1025)),
            ("observation of 3", m(k5=[[0, 149530, 60]])),
            ("observation t > 0", m(k5=[[1, 149530, 60, 264864]])),
            ("places 7", m(k5=[[0, 150364, 36.5, 268192, 7]])),
            ("value a tstr", m(k5=[[0, 150364, "36.5", 268192]])),
            ("value true", m(k5=[[0, 150364, True, 268192]])),
            ("code > uint32", m(k5=[[0, 2 ** 32, 1, 268192]])),
            ("ctr = 2^63", m(k2=2 ** 63)),
            ("ts = 2^53", m(k3=2 ** 53)),
            ("ctr negative", m(k2=-1)),
            ("dev with a slash", m(k1="ward3/bed12")),
            ("dev starting with '-'", m(k1="-" + DEV)),
            ("dev of 65 bytes", m(k1="a" * 65)),
            ("waveform period 0", m(k5=[[0, 131330, 266418, 0, 0.5, b"\x02"]])),
            ("waveform scale 0", m(k5=[[0, 131330, 266418, 1000, 0, b"\x02"]])),
            ("waveform scale 0.0", m(k5=[[0, 131330, 266418, 1000, 0.0, b"\x02"]])),
            ("waveform no samples", m(k5=[[0, 131330, 266418, 1000, 0.5, b""]])),
            ("waveform non-shortest LEB128", m(k5=[[0, 131330, 266418, 1000, 0.5, b"\x82\x00"]])),
            ("waveform truncated varint", m(k5=[[0, 131330, 266418, 1000, 0.5, b"\x02\x80"]])),
            ("waveform sample > int32", m(k5=[[0, 131330, 266418, 1000, 0.5,
                                              bytes.fromhex("80808080 10".replace(" ", ""))]])),
            ("waveform samples as array", m(k5=[[0, 131330, 266418, 1000, 0.5, [1, 2]]])),
        ]
        # raw byte-level violations of strict CBOR inside the signed payload
        good = R.dumps(base)
        self.assertIn(bytes.fromhex("f95090"), good)   # 36.5 as float16
        cases += [
            ("float not shortest", good.replace(bytes.fromhex("f95090"),
                                                bytes.fromhex("fa42120000"))),
            ("trailing byte in payload", good + b"\x00"),
            ("duplicate key", bytes([good[0] + 1]) + good[1:] + bytes.fromhex("0401")),
            ("NaN value", good.replace(bytes.fromhex("f95090"), bytes.fromhex("f97e00"))),
            ("Infinity value", good.replace(bytes.fromhex("f95090"), bytes.fromhex("f97c00"))),
            ("undefined value", good.replace(bytes.fromhex("f95090"), bytes.fromhex("f7"))),
            ("tagged value", good.replace(bytes.fromhex("f95090"), bytes.fromhex("c1f95090"))),
        ]
        for what, mb in cases:
            with self.subTest(case=what):
                self.open_refused(self.sealed_raw(mb), "message", what)

    def test_message_nested_and_text(self):
        def j2cbor(j):
            x = copy.deepcopy(j)
            out = {}
            top = {v: k for k, v in R.TOP_NAMES.items()}
            for n, v in x.items():
                k = top[n]
                if k in R.SUB_NAMES:
                    sub = {vv: kk for kk, vv in R.SUB_NAMES[k].items()}
                    v = {sub.get(a, a): b for a, b in v.items()}
                out[k] = v
            return out

        cases = [
            ("unknown key in st", dict(STATUS_ONE, st={"rssi": -67, 6: 1})),
            ("empty st", dict(STATUS_ONE, st={})),
            ("battery 101", dict(STATUS_ONE, st={"battery": 101})),
            ("rssi float", dict(STATUS_ONE, st={"rssi": -67.0})),
            ("fw of 257 bytes", dict(STATUS_ONE, st={"fw": "a" * 257})),
            ("unknown key in ack", dict(ACK_MIN, ack={"ctr": 1, "result": 0, 4: 1})),
            ("ack without result", dict(ACK_MIN, ack={"ctr": 1})),
            ("ack without ctr", dict(ACK_MIN, ack={"result": 0})),
            ("detail of 257 bytes", dict(ACK_MIN, ack={"ctr": 1, "result": 0,
                                                       "detail": "\u00e9" * 128 + "x"})),
            ("prio 4", dict(ALERT_BARE, alrt={"code": 1, "prio": 4})),
            ("prio 0", dict(ALERT_BARE, alrt={"code": 1, "prio": 0})),
            ("alert without prio", dict(ALERT_BARE, alrt={"code": 1})),
            ("unknown key in alrt", dict(ALERT_BARE, alrt={"code": 1, "prio": 1, 9: 0})),
            ("alert text of 257 bytes", dict(ALERT_BARE, alrt={"code": 1, "prio": 1,
                                                               "text": "x" * 257})),
            ("alert with st", dict(ALERT_BARE, st={"rssi": -1})),
            ("ack with obs", dict(ACK_MIN, obs=[[0, 149530, 60, 264864]])),
        ]
        for what, j in cases:
            with self.subTest(case=what):
                self.open_refused(self.sealed_raw(R.dumps(j2cbor(j))), "message", what)

    def test_implausible(self):
        cases = [
            ("heart rate 10000", [[0, 147842, 10000, 264864]]),
            ("heart rate 350.5", [[0, 147842, 350.5, 264864]]),
            ("SpO2 100.5", [[0, 150456, 100.5, 262688]]),
            ("SpO2 -1", [[0, 150456, -1, 262688]]),
            ("temperature 19.9", [[0, 150364, 19.9, 268192]]),
            ("temperature 45.1", [[0, 150364, 45.1, 268192]]),
            ("glucose 2001", [[0, 160184, 2001, 264274]]),
            ("respiration 151", [[0, 151562, 151, 264928]]),
            ("systolic 401", [[0, 150021, 401, 266016]]),
            ("heart rate in %", [[0, 147842, 60, 262688]]),
            ("one bad among good", [[0, 147842, 60, 264864], [0, 150456, 101, 262688]]),
            # clinical.md lists ECG lead II as a waveform (docs/protocol-notes.md)
            ("ECG lead II as a scalar", [[0, 131330, 1, 266418]]),
            ("heart rate as a waveform", [[0, 147842, 264864, 1000, 1, [60]]]),
        ]
        for what, obs in cases:
            with self.subTest(case=what):
                j = dict(VITALS_SMALL, obs=obs)
                self.open_refused(py_seal(j), "implausible", what)
        # in a fast alert too
        j = dict(ALERT_OBS, obs=[[0, 147842, 10000, 264864]])
        self.open_refused(py_seal(j, fast=True), "implausible", "fast alert, heart rate 10000")

    def test_unknown_code_is_implausible(self):
        # reading of clinical.md section 1: "a code ... outside" the table is refused
        j = dict(VITALS_SMALL, obs=[[0, 123456, 1, 264864]])
        self.open_refused(py_seal(j), "implausible", "unknown code 123456")

    def test_dev_mismatch(self):
        # The packet is sealed for --device DEV but the signed message names another.
        # Section 5 says `packet open` skips "stages 11-12 where it has no registry":
        # either a `dev` refusal or the message unchanged (never rewritten) is allowed.
        j = withdev(VITALS_SMALL, "ward3-bed13.mon_A")
        rc, out, err = run_cli(open_args(), py_seal(j, device=DEV))
        if rc == 0:
            print("NOTE: packet open does not check dev against --device (stage 11 skipped)")
            self.assertSameJson(R.parse_json(out), j, "dev mismatch")
        else:
            self.assertRefused(rc, out, err, "dev", "message dev != --device")

    def test_order_of_stages(self):
        """A packet wrong at several stages is refused at the earliest."""
        # wrong epoch and tampered: epoch first
        pkt = bytearray(py_seal(VITALS_SMALL))
        pkt[-1] ^= 1
        self.open_refused(bytes(pkt), "epoch", "tampered + old", epoch=9)
        # other key (kid) and implausible: kid first
        j = dict(VITALS_SMALL, obs=[[0, 147842, 10000, 264864]])
        self.open_refused(py_seal(j, ldev="other_p256"), "kid", "other key + implausible")
        # alg and bad signature: alg first
        self.open_refused(py_seal(j, ldev="other_ed25519"), "alg", "EdDSA on P-256 + other kid")
        # message schema and implausible: message first
        m = R.message_from_jsonobj(copy.deepcopy(VITALS_SMALL))
        m[5] = [[0, 147842, 10000, 264864, 9]]
        self.open_refused(py_seal(R.dumps(m)), "message", "places 9 + implausible")


# --------------------------------------------------------------------------
# D: usage errors and invalid JSON


class D_UsageAndJson(CliCase):
    def test_usage_errors(self):
        pkt = py_seal(VITALS_SMALL)
        cases = [
            ("no arguments", [], b""),
            ("unknown command", ["frobnicate"], b""),
            ("packet without verb", ["packet"], b""),
            ("unknown verb", ["packet", "frobnicate"], b""),
            ("open without --device", [a for a in open_args()
                                       if a not in ("--device", DEV)], pkt),
            ("open without --ldev-pub", open_args()[:4] + open_args()[6:], pkt),
            ("open with unknown option", open_args() + ["--bogus"], pkt),
            ("open with --epoch abc", open_args(epoch="abc"), pkt),
            ("open with --epoch -1", open_args(epoch="-1"), pkt),
            ("open with --epoch 2^32", open_args(epoch=str(2 ** 32)), pkt),
            ("seal without --epoch", seal_args()[:8] + seal_args()[10:], jdump(VITALS_SMALL)),
            ("seal without --ldev", seal_args()[:2] + seal_args()[4:], jdump(VITALS_SMALL)),
            ("seal with --epoch 2^32", seal_args(epoch=2 ** 32), jdump(VITALS_SMALL)),
            ("seal with stray argument", seal_args() + ["extra"], jdump(VITALS_SMALL)),
        ]
        for what, args, stdin in cases:
            with self.subTest(case=what):
                rc, out, err = run_cli(args, stdin)
                self.assertEqual(rc, 64, "%s: %r -> rc %d, stderr %r" % (what, args, rc, err))
                self.assertEqual(out, b"", what)

    def test_invalid_json(self):
        cases = [b"", b"{", b"not json", b'{"dev": "x",}', b'{"dev": NaN}',
                 b'{"ctr": 1} trailing', b"\xff\xfe{}", b'{"dev": "\xc3"}']
        for text in cases:
            with self.subTest(text=text):
                rc, out, err = run_cli(seal_args(), text)
                self.assertEqual(rc, 65, "%r -> rc %d, stderr %r" % (text, rc, err))
                self.assertEqual(out, b"")

    def test_unknown_name_refused(self):
        # "Unknown names are refused" (section 9); exit status: 65 or a refusal (2)
        for what, j in (("top level", dict(VITALS_SMALL, extra=1)),
                        ("in st", dict(STATUS_ONE, st={"rssi": -1, "volume": 3})),
                        ("in alrt", dict(ALERT_BARE, alrt={"code": 1, "prio": 1, "txt": "a"}))):
            with self.subTest(case=what):
                rc, out, err = run_cli(seal_args(), jdump(j))
                self.assertIn(rc, (2, 65), "%s: rc %d stderr %r" % (what, rc, err))
                self.assertEqual(out, b"")

    def test_seal_refuses_invalid_messages(self):
        bad = [("typ 1 without obs", {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1}),
               ("257-byte text", dict(ALERT_BARE, alrt={"code": 1, "prio": 1, "text": "a" * 257})),
               ("ctr negative", dict(VITALS_SMALL, ctr=-1)),
               ("sample beyond int32", dict(VITALS_SMALL, obs=[[0, 131330, 266418, 1, 1.0,
                                                                  [2 ** 31]]]))]
        for what, j in bad:
            with self.subTest(case=what):
                rc, out, err = run_cli(seal_args(), jdump(j))
                self.assertIn(rc, (2, 65), "%s: rc %d stderr %r" % (what, rc, err))
                self.assertEqual(out, b"")


# --------------------------------------------------------------------------
# E: spread through both directions at once (CLI -> CLI and Python round trips)


class E_Spread(CliCase):
    def test_cli_to_cli(self):
        for ldev in ("p256", "ed25519"):
            for name, j in SPREAD:
                with self.subTest(ldev=ldev, message=name):
                    got, _ = self.cli_open_ok(self.cli_seal(j, ldev=ldev), ldev=ldev)
                    self.assertSameJson(got, j, name)

    def test_text_with_nul(self):
        j = dict(ALERT_BARE, alrt={"code": 1, "prio": 1, "text": "a\u0000b"})
        got, _ = self.cli_open_ok(py_seal(j))
        self.assertSameJson(got, j)

    def test_float_spread(self):
        vals = [97.0, 36.6, 0.1, -1.5, 1e300, 65504.0, 65505.0, 5.960464477539063e-08,
                1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                3.4028234663852886e38, 1.401298464324817e-45, 100000.0, -0.0, 0.5,
                1.0000001, 123456789.0, 2.0 ** 53, 2.0 ** 64, -(2.0 ** 70)]
        obs = [[-i, 131330, 266418, 1000, v, [i]] for i, v in enumerate(vals) if v != 0]
        obs.append([-99, 150364, 36.6, 268192, 1])
        j = {"dev": DEV, "ctr": 3, "ts": TS, "typ": 1, "obs": obs}
        # -0.0 as a value (non-zero scale required, so as a scalar value)
        j["obs"].append([-100, 150456, -0.0, 262688])
        pkt = self.cli_seal(j)
        o = py_open(pkt)
        self.assertEqual(o.message_bytes.hex(), cbor_of(j).hex())
        got, _ = self.cli_open_ok(py_seal(j))
        self.assertSameJson(got, j)

    def test_int_spread(self):
        ints = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53,
                2 ** 63 - 1]   # 2^63 .. 2^64-1: U64_SPREAD
        j = {"dev": DEV, "ctr": 4, "ts": TS, "typ": 4, "ack": {"ctr": 0, "result": 0}}
        for n in ints:
            with self.subTest(n=n):
                jj = copy.deepcopy(j)
                jj["ack"]["ctr"] = n
                jj["ack"]["result"] = n
                pkt = self.cli_seal(jj)
                self.assertEqual(py_open(pkt).message_bytes.hex(), cbor_of(jj).hex())
                got, _ = self.cli_open_ok(py_seal(jj))
                self.assertSameJson(got, jj)
        for n in (-1, -24, -25, -256, -257, -(2 ** 31), -(2 ** 32), -(2 ** 63)):
            with self.subTest(rssi=n):
                jj = dict(STATUS_ONE, st={"rssi": n})
                pkt = self.cli_seal(jj)
                self.assertEqual(py_open(pkt).message_bytes.hex(), cbor_of(jj).hex())
                got, _ = self.cli_open_ok(py_seal(jj))
                self.assertSameJson(got, jj)


# --------------------------------------------------------------------------
# G: integers beyond int64.  Section 5 types these fields `uint` / `int` with no
#    bound (CBOR major types 0/1: -2^64 .. 2^64-1) where it means a bound it says
#    so (`ctr` < 2^63, `ts` < 2^53, codes uint32); section 9 maps every JSON
#    integer to a CBOR int.


class G_IntRange(CliCase):
    def test_seal_uint64_json(self):
        """`packet seal` takes JSON integers up to 2^64-1 in unbounded uint fields."""
        for name, j in U64_SPREAD:
            with self.subTest(message=name):
                rc, pkt, err = run_cli(seal_args(), jdump(j))
                self.assertEqual(rc, 0, "%s: seal of a valid message refused: rc %d stderr %r"
                                 % (name, rc, err))
                o = py_open(pkt)
                self.assertEqual(o.message_bytes.hex(), cbor_of(j).hex(), name)

    def test_seal_signed_extremes_json(self):
        """`packet seal` takes -2^64 .. 2^64-1 in `int` fields (t, rssi, value, scale)."""
        cases = [
            ("t = -2^64", {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1,
                           "obs": [[-(2 ** 64), 147842, 60, 264864]]}),
            ("rssi = -2^64", dict(STATUS_ONE, st={"rssi": -(2 ** 64)})),
            ("rssi = 2^64-1", dict(STATUS_ONE, st={"rssi": 2 ** 64 - 1})),
            ("scale = -2^64", {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1,
                               "obs": [[0, 131330, 266418, 1, -(2 ** 64), [1]]]}),
        ]
        for what, j in cases:
            with self.subTest(case=what):
                rc, pkt, err = run_cli(seal_args(), jdump(j))
                self.assertEqual(rc, 0, "%s: rc %d stderr %r" % (what, rc, err))
                self.assertEqual(py_open(pkt).message_bytes.hex(), cbor_of(j).hex(), what)

    def test_seal_refuses_beyond_cbor(self):
        """2^64 and -2^64-1 are no CBOR integers: refused, nothing written."""
        for what, j in (("queue = 2^64", dict(STATUS_ONE, st={"queue": 2 ** 64})),
                        ("rssi = -2^64-1", dict(STATUS_ONE, st={"rssi": -(2 ** 64) - 1}))):
            with self.subTest(case=what):
                rc, out, err = run_cli(seal_args(), jdump(j))
                self.assertIn(rc, (2, 65), "%s: rc %d stderr %r" % (what, rc, err))
                self.assertEqual(out, b"")

    def test_open_int_fields_beyond_int64(self):
        """`packet open` accepts t and rssi (`int`) outside int64 and prints them exactly."""
        cases = [
            ("t = -2^64", {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1,
                           "obs": [[-(2 ** 64), 147842, 60, 264864]]}),
            ("t = -2^63-1", {"dev": DEV, "ctr": 1, "ts": TS, "typ": 1,
                             "obs": [[-(2 ** 63) - 1, 147842, 60, 264864]]}),
            ("rssi = 2^63", dict(STATUS_ONE, st={"rssi": 2 ** 63})),
            ("rssi = -2^64", dict(STATUS_ONE, st={"rssi": -(2 ** 64)})),
        ]
        for what, j in cases:
            with self.subTest(case=what):
                rc, out, err = run_cli(open_args(), py_seal(j))
                self.assertEqual(rc, 0, "%s: rc %d stderr %r" % (what, rc, err))
                self.assertSameJson(R.parse_json(out), j, what)


# --------------------------------------------------------------------------
# F: differential -- mutated packets through both implementations must get the
#    same verdict: the same refusal stage, or acceptance with the same JSON.

FUZZ_SEED = int(os.environ.get("MT_INTEROP_SEED", "20251128"))
FUZZ_N = int(os.environ.get("MT_INTEROP_FUZZ", "100"))

INTERESTING_BYTES = [0x00, 0x01, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1f, 0x20, 0x38, 0x3b,
                     0x40, 0x41, 0x58, 0x5f, 0x60, 0x61, 0x78, 0x7f, 0x80, 0x81, 0x9f, 0xa0,
                     0xa1, 0xb1, 0xbf, 0xc0, 0xc1, 0xd0, 0xd2, 0xd8, 0xf4, 0xf5, 0xf6, 0xf7,
                     0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xff]

INTERESTING_VALUES = [0, 1, -1, 2, 3, 4, 5, 6, 7, 100, 101, 255, 256, 350, 351, 2 ** 31 - 1,
                      2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63 - 1, 2 ** 63,
                      2 ** 64 - 1, -(2 ** 63), -(2 ** 64), 0.0, -0.0, 0.5, 36.6, 19.99, 45.0,
                      350.0, 350.5, 1e300, -1.5, 65504.0, True, False, None, "", "x" * 256,
                      "x" * 257, "\u00fc", "dev-1", DEV, b"", b"\x02", b"\x80", b"\x80\x00",
                      b"\xff" * 9 + b"\x01", b"\xff" * 9 + b"\x02", [], [0], {}, {1: 1},
                      [0, 150456, 97.0, 262688], [0, 131330, 266418, 1, 1, b"\x02"]]

FUZZ_BASES = [
    {1: DEV, 2: 42, 3: TS, 4: 1, 5: [[0, 150456, 97.0, 262688], [-500, 150364, 36.6, 268192, 1],
                                     [-9, 147842, 72, 264864],
                                     [-1000, 131330, 266418, 4000, 0.005, R.encode_samples([1, 0, 64])]]},
    {1: DEV, 2: 43, 3: TS, 4: 2, 5: [[0, 150456, 84, 262688]], 8: {1: 1001, 2: 3, 3: "SpO2 low"}},
    {1: DEV, 2: 44, 3: TS, 4: 3, 6: {1: 99, 2: "1.2.3", 3: 0, 4: 3600, 5: -70}},
    {1: DEV, 2: 45, 3: TS, 4: 4, 7: {1: 7, 2: 0, 3: "ok"}},
]


def mutate_bytes(rng, b):
    b = bytearray(b)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.randrange(6)
        pos = rng.randrange(len(b) + 1) if b else 0
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.choice(INTERESTING_BYTES)
        elif op == 2:
            b.insert(pos, rng.choice(INTERESTING_BYTES))
        elif op == 3 and b:
            del b[min(pos, len(b) - 1)]
        elif op == 4 and b:
            n = rng.randrange(1, 4)
            b[pos:pos] = b[pos:pos + n]
        elif op == 5 and len(b) > 1:
            del b[rng.randrange(1, len(b)):]
    return bytes(b)


def mutate_struct(rng, m):
    m = copy.deepcopy(m)
    slots = []

    def walk(node):
        if isinstance(node, dict):
            slots.append((node, None))
            for k, v in node.items():
                slots.append((node, k))
                walk(v)
        elif isinstance(node, list):
            slots.append((node, None))
            for i, v in enumerate(node):
                slots.append((node, i))
                walk(v)
    walk(m)
    for _ in range(rng.choice((1, 1, 2))):
        node, key = rng.choice(slots)
        val = copy.deepcopy(rng.choice(INTERESTING_VALUES))
        if key is None:
            if isinstance(node, dict):
                node[rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, -1, "a", "dev"])] = val
            else:
                node.append(val)
        elif rng.random() < 0.2:
            del node[key]
            slots = [(n, k) for n, k in slots if n is not node or k is None]
        else:
            node[key] = val
    return m


class F_Differential(CliCase):
    def verdict_py(self, pkt, ldev):
        try:
            o = py_open(pkt, ldev=ldev)
        except R.Refused as e:
            return ("refused", e.stage)
        return ("ok", R.message_to_jsonobj(o.message))

    def verdict_c(self, pkt, ldev):
        rc, out, err = run_cli(open_args(ldev=ldev), pkt)
        if rc == 0:
            try:
                return ("ok", R.parse_json(out))
            except R.JsonInvalid:
                return ("bad-json", out[:200])
        if rc == 2:
            m = re.search(r"^refused: ([a-z_]+): ", err, re.M)
            return ("refused", m.group(1) if m else "?" + err)
        return ("rc", rc, err.strip()[:200])

    def differ(self, category, make):
        rng = __import__("random").Random("%d-%s" % (FUZZ_SEED, category))
        bad = []
        verdicts = {}
        for i in range(FUZZ_N):
            pkt, ldev, what = make(rng)
            try:
                py = self.verdict_py(pkt, ldev)
            except Exception as e:  # a bug of ours: report it too
                py = ("python-exception", repr(e))
            c = self.verdict_c(pkt, ldev)
            key = py[1] if py[0] == "refused" else py[0]
            verdicts[key] = verdicts.get(key, 0) + 1
            same_verdict = py[0] == c[0] and (
                py[1] == c[1] if py[0] == "refused" else
                py[0] == "ok" and same(c[1], py[1]) is None)
            if not same_verdict:
                bad.append("#%d %s py=%r c=%r packet=%s" % (i, what, py, c, pkt.hex()[:400]))
        print("  %s: %d packets, Python verdicts %s" % (category, FUZZ_N, sorted(verdicts.items())))
        self.assertEqual(bad, [], "%d of %d %s packets differ (seed %d):\n%s"
                         % (len(bad), FUZZ_N, category, FUZZ_SEED, "\n".join(bad[:8])))

    def test_message_struct(self):
        def make(rng):
            m = mutate_struct(rng, rng.choice(FUZZ_BASES))
            try:
                mb = R.dumps(m)
            except R.CborError:
                mb = R.dumps(FUZZ_BASES[0])
            ldev = rng.choice(("p256", "ed25519"))
            return py_seal(mb, ldev=ldev), ldev, "message %s" % mb.hex()
        self.differ("message-struct", make)

    def test_message_bytes(self):
        def make(rng):
            mb = mutate_bytes(rng, R.dumps(rng.choice(FUZZ_BASES)))
            ldev = rng.choice(("p256", "ed25519"))
            return py_seal(mb, ldev=ldev), ldev, "message %s" % mb.hex()
        self.differ("message-bytes", make)

    def test_fast(self):
        def make(rng):
            base = FUZZ_BASES[1]
            if rng.random() < 0.5:
                m = mutate_struct(rng, base)
                try:
                    mb = R.dumps(m)
                except R.CborError:
                    mb = R.dumps(base)
            else:
                mb = mutate_bytes(rng, R.dumps(base))
            if mb[:1] == b"\xd2":
                mb = b"\xa0" + mb[1:]
            return py_seal(mb, fast=True), "p256", "fast plaintext %s" % mb.hex()
        self.differ("fast", make)

    def test_sign1_bytes(self):
        base = R.sign1(K.priv["ed25519"], R.dumps(FUZZ_BASES[0]))

        def make(rng):
            s1 = mutate_bytes(rng, base)
            return py_sign1_packet(s1), "ed25519", "sign1 %s" % s1.hex()
        self.differ("sign1-bytes", make)

    def test_outer_bytes(self):
        base = py_seal(R.dumps(FUZZ_BASES[2]), ldev="ed25519")

        def make(rng):
            # mutate mostly the header (the ciphertext only ever gives aead)
            pkt = bytearray(base)
            head, rest = pkt[:30], pkt[30:]
            if rng.random() < 0.8:
                pkt = mutate_bytes(rng, bytes(head)) + bytes(rest)
            else:
                pkt = mutate_bytes(rng, bytes(pkt))
            return pkt, "ed25519", "outer"
        self.differ("outer-bytes", make)


# --------------------------------------------------------------------------
# K: token keys through the CLI (file: URIs)


class K_TokenKeys(CliCase):
    def gen(self, name, typ, role):
        path = os.path.join(K.dir, "gen-" + name + ".pem")
        if os.path.exists(path):
            os.unlink(path)
        rc, out, err = run_cli(["key", "generate", "file:" + path, "--type", typ, "--role", role])
        self.assertEqual(rc, 0, "key generate %s: rc %d stderr %r" % (typ, rc, err))
        with open(path, "rb") as f:
            pem = f.read()
        self.assertIn(b"-----BEGIN ENCRYPTED PRIVATE KEY-----", pem)
        with self.assertRaises(Exception):
            serialization.load_pem_private_key(pem, None)
        priv = serialization.load_pem_private_key(pem, PASS.encode())
        pub_path = os.path.join(K.dir, "gen-" + name + ".pub.pem")
        rc, out, err = run_cli(["key", "public", "file:" + path, "--out", pub_path])
        self.assertEqual(rc, 0, "key public: rc %d stderr %r" % (rc, err))
        pub = R.load_public_pem(pub_path)
        self.assertEqual(R.spki_der(pub), R.spki_der(priv.public_key()))
        rc, out, err = run_cli(["key", "public", "file:" + path])
        self.assertEqual(rc, 0, err)
        self.assertEqual(R.spki_der(serialization.load_pem_public_key(out)), R.spki_der(pub))
        return path, priv, pub, pub_path

    def test_generate_and_seal(self):
        for typ, alg in (("p256", R.ALG_ES256), ("ed25519", R.ALG_EDDSA)):
            with self.subTest(type=typ):
                path, priv, pub, pub_path = self.gen("ldev-" + typ, typ, "sign")
                if typ == "p256":
                    self.assertIsInstance(priv, ec.EllipticCurvePrivateKey)
                    self.assertEqual(priv.curve.name, "secp256r1")
                else:
                    self.assertIsInstance(priv, ed25519.Ed25519PrivateKey)
                args = seal_args()
                args[args.index("--ldev") + 1] = "file:" + path
                rc, pkt, err = run_cli(args, jdump(VITALS_SMALL))
                self.assertEqual(rc, 0, err)
                o = R.open_packet(pkt, DEV, pub, hub_kx=K.priv["hub_kx"],
                                  dev_kx_pub=K.pub("dev_kx"), epoch=EPOCH)
                self.assertEqual((o.alg, o.kid), (alg, R.kid_of(pub)))

    def test_generate_kx_and_seal(self):
        path, priv, pub, pub_path = self.gen("kx", "p256", "derive")
        args = seal_args()
        args[args.index("--kx") + 1] = "file:" + path
        rc, pkt, err = run_cli(args, jdump(ALERT_OBS))
        self.assertEqual(rc, 0, err)
        o = R.open_packet(pkt, DEV, K.pub("p256"), hub_kx=K.priv["hub_kx"], dev_kx_pub=pub,
                          epoch=EPOCH)
        self.assertSameJson(R.message_to_jsonobj(o.message), ALERT_OBS)
        # and the CLI opens it with that kx public key
        oargs = open_args()
        oargs[oargs.index("--kx-pub") + 1] = pub_path
        rc, out, err = run_cli(oargs, pkt)
        self.assertEqual(rc, 0, err)
        self.assertSameJson(R.parse_json(out), ALERT_OBS)

    def test_wrong_passphrase(self):
        rc, out, err = run_cli(seal_args(), jdump(VITALS_SMALL),
                               env_extra={"MEDTRUST_KEY_PASSPHRASE": "wrong"})
        self.assertNotEqual(rc, 0)
        self.assertEqual(out, b"")


# --------------------------------------------------------------------------


def main():
    global K
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("skip: medtrust CLI not found at %s (set MEDTRUST_BIN)" % BIN)
        sys.exit(77)
    K = Keys()
    try:
        for name in ("p256", "dev_kx", "hub_kx"):
            mode = stat.S_IMODE(os.stat(K.key_path[name]).st_mode)
            assert mode == 0o600, oct(mode)
        suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
        res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    finally:
        K.cleanup()
    # a test with failing subtests counts once
    failed = len({getattr(t, "test_case", t).id() for t, _ in res.failures + res.errors})
    print("%d passed, %d failed" % (res.testsRun - failed - len(res.skipped), failed))
    sys.exit(1 if failed or res.testsRun == 0 else 0)


if __name__ == "__main__":
    main()
