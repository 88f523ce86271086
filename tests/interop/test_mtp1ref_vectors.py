#!/usr/bin/python3
"""The Python reference implementation (mtp1ref.py) against the MTP/1 vectors.

Reproduces /work/shared/vectors/mtp1/vectors.json byte for byte, and checks
that the strict CBOR decoder and the refusal stages of mtp1ref behave as
protocol.md says (test_interop.py relies on them).

Vectors dir: $MT_VECTORS_DIR (default <repo>/../shared/vectors); exit 77 when
absent.  Run with /usr/bin/python3 (Debian's python3-cryptography).
"""

import json
import os
import struct
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mtp1ref as R  # noqa: E402
from mtp1ref import Refused, Tag  # noqa: E402

from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402
from cryptography.hazmat.primitives.serialization import load_der_public_key  # noqa: E402

VECTORS_DIR = os.environ.get("MT_VECTORS_DIR") or os.path.join(
    HERE, "..", "..", "..", "shared", "vectors")
VECTORS_FILE = os.path.join(VECTORS_DIR, "mtp1", "vectors.json")

V = None


def h(name):
    return bytes.fromhex(V[name])


def p256_priv(name):
    return ec.derive_private_key(int(V[name], 16), ec.SECP256R1())


class Keys(unittest.TestCase):
    def test_spki_of_private_keys(self):
        for d, spki in (("hub_kx_d", "hub_kx_spki"), ("dev_kx_d", "dev_kx_spki"),
                        ("ldev_p256_d", "ldev_p256_spki")):
            self.assertEqual(R.spki_der(p256_priv(d).public_key()).hex(), V[spki], d)
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(h("ldev_ed25519_seed"))
        self.assertEqual(R.spki_der(ed.public_key()).hex(), V["ldev_ed25519_spki"])

    def test_kids(self):
        self.assertEqual(R.kid_of(load_der_public_key(h("ldev_p256_spki"))).hex(),
                         V["ldev_p256_kid"])
        self.assertEqual(R.kid_of(load_der_public_key(h("ldev_ed25519_spki"))).hex(),
                         V["ldev_ed25519_kid"])
        # from the private keys too (normalised to the SPKI forms of section 1)
        self.assertEqual(R.kid_of(p256_priv("ldev_p256_d")).hex(), V["ldev_p256_kid"])
        ed = ed25519.Ed25519PrivateKey.from_private_bytes(h("ldev_ed25519_seed"))
        self.assertEqual(R.kid_of(ed).hex(), V["ldev_ed25519_kid"])

    def test_ecdh_x_both_ways(self):
        hub, dev = p256_priv("hub_kx_d"), p256_priv("dev_kx_d")
        self.assertEqual(R.ecdh_x(dev, load_der_public_key(h("hub_kx_spki"))).hex(), V["ecdh_x"])
        self.assertEqual(R.ecdh_x(hub, load_der_public_key(h("dev_kx_spki"))).hex(), V["ecdh_x"])

    def test_hkdf_info_and_keys(self):
        self.assertEqual((b"MTP/1 A256GCM " + V["device_id"].encode()).hex(),
                         V["hkdf_info_data"])
        self.assertEqual(R.data_key(h("ecdh_x"), V["epoch"], V["device_id"]).hex(),
                         V["data_key"])
        self.assertEqual(R.receipt_key(h("ecdh_x"), V["epoch"], V["device_id"]).hex(),
                         V["receipt_key"])
        # the epoch is the salt: another epoch gives another key
        self.assertNotEqual(R.data_key(h("ecdh_x"), V["epoch"] + 1, V["device_id"]).hex(),
                            V["data_key"])


class Structures(unittest.TestCase):
    def test_enc_structures(self):
        self.assertEqual(R.enc_structure(V["device_id"]).hex(), V["enc_structure"])
        self.assertEqual(R.receipt_enc_structure(V["device_id"]).hex(),
                         V["receipt_enc_structure"])

    def test_message_decode_reencode(self):
        m = R.loads(h("message"))
        self.assertEqual(R.dumps(m), h("message"))
        R.check_message(m)
        R.check_plausible(m)

    def test_message_from_meaning(self):
        # the meaning given in the README: typ 1, three observations with an
        # int, a float64 and a float16 value
        m = {1: "dev-1", 2: 42, 3: 1764300000000, 4: 1,
             5: [[0, 150456, 97, 262688], [-500, 150364, 36.6, 268192],
                 [-500, 150364, 36.5, 268192]]}
        self.assertEqual(R.dumps(m), h("message"))
        self.assertEqual(R.loads(h("message")), m)
        self.assertIs(type(R.loads(h("message"))[5][0][2]), int)
        self.assertIs(type(R.loads(h("message"))[5][2][2]), float)

    def test_message_json_round_trip(self):
        m = R.loads(h("message"))
        text = R.message_to_json(m)
        self.assertIn("36.6", text)
        self.assertIn("36.5", text)
        self.assertEqual(R.dumps(R.message_from_json(text)), h("message"))

    def test_sig_structure(self):
        self.assertEqual(R.sig_structure(R.ALG_EDDSA, h("message")).hex(),
                         V["sig_structure_eddsa"])

    def test_waveform(self):
        self.assertEqual(R.encode_samples(V["waveform_samples"]).hex(), V["waveform_bstr"])
        self.assertEqual(R.decode_samples(h("waveform_bstr")), V["waveform_samples"])


class Packets(unittest.TestCase):
    def ed(self):
        return ed25519.Ed25519PrivateKey.from_private_bytes(h("ldev_ed25519_seed"))

    def test_sealed_eddsa_packet_byte_exact(self):
        pkt = R.seal(h("message"), h("data_key"), V["epoch"], V["device_id"],
                     signer=self.ed(), iv=h("iv"))
        self.assertEqual(pkt.hex(), V["sealed_eddsa_packet"])

    def test_sealed_eddsa_packet_opens(self):
        o = R.open_packet(h("sealed_eddsa_packet"), V["device_id"],
                          load_der_public_key(h("ldev_ed25519_spki")),
                          hub_kx=p256_priv("hub_kx_d"),
                          dev_kx_pub=load_der_public_key(h("dev_kx_spki")), epoch=V["epoch"])
        self.assertEqual(o.kind, "sealed")
        self.assertEqual(o.alg, R.ALG_EDDSA)
        self.assertEqual(o.kid.hex(), V["ldev_ed25519_kid"])
        self.assertEqual(o.epoch, V["epoch"])
        self.assertEqual(o.iv, h("iv"))
        self.assertEqual(o.message_bytes, h("message"))
        self.assertEqual(o.message, R.loads(h("message")))

    def test_fast_packet_byte_exact_and_opens(self):
        pkt = R.seal(h("alert_message"), h("data_key"), V["epoch"], V["device_id"], iv=h("iv"))
        self.assertEqual(pkt.hex(), V["fast_packet"])
        o = R.open_packet(h("fast_packet"), V["device_id"], key=h("data_key"), epoch=V["epoch"])
        self.assertEqual(o.kind, "fast")
        self.assertEqual(o.message_bytes, h("alert_message"))
        self.assertEqual(o.message[4], 2)
        self.assertEqual(R.dumps(o.message), h("alert_message"))

    def test_receipt_packet_decrypt_and_reseal(self):
        ep, iv, r, pt = R.open_receipt(h("receipt_packet"), V["device_id"],
                                       ikm=h("ecdh_x"), current_epoch=V["epoch"])
        self.assertEqual(ep, V["epoch"])
        self.assertEqual(r[1], V["device_id"])
        self.assertEqual(R.dumps(r), pt)
        again = R.seal_receipt(r, h("receipt_key"), ep, V["device_id"], iv=iv)
        self.assertEqual(again.hex(), V["receipt_packet"])
        # a receipt is not a data packet: under the data key it fails the AEAD
        with self.assertRaises(Refused) as cm:
            R.open_packet(h("receipt_packet"), V["device_id"], key=h("data_key"))
        self.assertEqual(cm.exception.stage, "aead")

    def test_es256_sealed_round_trip(self):
        k = p256_priv("ldev_p256_d")
        pkt = R.seal(h("message"), h("data_key"), V["epoch"], V["device_id"], signer=k)
        o = R.open_packet(pkt, V["device_id"], load_der_public_key(h("ldev_p256_spki")),
                          key=h("data_key"), epoch=V["epoch"])
        self.assertEqual((o.kind, o.alg, o.kid.hex()), ("sealed", R.ALG_ES256, V["ldev_p256_kid"]))
        self.assertEqual(len(o.signature), 64)
        self.assertEqual(o.message_bytes, h("message"))


class OpenStages(unittest.TestCase):
    """mtp1ref.open_packet refuses with the right stage (interop relies on it)."""

    def opn(self, pkt, pub=None, **kw):
        kw.setdefault("key", h("data_key"))
        return R.open_packet(pkt, V["device_id"], pub or load_der_public_key(
            h("ldev_ed25519_spki")), **kw)

    def stage(self, pkt, **kw):
        with self.assertRaises(Refused) as cm:
            self.opn(pkt, **kw)
        return cm.exception.stage

    def test_stages(self):
        good = h("sealed_eddsa_packet")
        self.assertEqual(self.opn(good).kind, "sealed")
        self.assertEqual(self.stage(b"\x00" * 65537), "size")
        self.assertEqual(self.stage(good + b"\x00"), "cbor")
        self.assertEqual(self.stage(good.replace(bytes.fromhex("43a10103"),
                                                 bytes.fromhex("43a10101"), 1)), "header")
        self.assertEqual(self.stage(good, epoch=9), "epoch")
        self.assertEqual(self.stage(good, epoch=6), "epoch")
        self.assertEqual(self.opn(good, epoch=8).epoch, 7)
        bad = bytearray(good)
        bad[-1] ^= 1
        self.assertEqual(self.stage(bytes(bad)), "aead")
        self.assertEqual(self.stage(good, pub=load_der_public_key(h("ldev_p256_spki"))), "alg")
        self.assertEqual(self.opn(h("fast_packet"), epoch=7).kind, "fast")

    def test_fast_typ1_is_inner(self):
        pkt = R.seal(h("message"), h("data_key"), V["epoch"], V["device_id"])
        self.assertEqual(self.stage(pkt), "inner")

    def test_kid_and_signature(self):
        other = ed25519.Ed25519PrivateKey.generate()
        pkt = R.seal(h("message"), h("data_key"), 7, V["device_id"], signer=other)
        self.assertEqual(self.stage(pkt), "kid")
        # signed by another key but claiming the registered kid
        s1 = R.dumps(Tag(18, [R.PROT_EDDSA, {4: h("ldev_ed25519_kid")}, h("message"),
                              other.sign(R.sig_structure(R.ALG_EDDSA, h("message")))]))
        pkt = R.encrypt0(h("data_key"), 7, None, s1, R.enc_structure(V["device_id"]))
        self.assertEqual(self.stage(pkt), "signature")

    def test_message_and_implausible(self):
        ed = ed25519.Ed25519PrivateKey.generate()
        pub = ed.public_key()
        base = R.loads(h("message"))
        m = dict(base)
        m[9] = 1
        pkt = R.seal(m, h("data_key"), 7, V["device_id"], signer=ed)
        self.assertEqual(self.stage(pkt, pub=pub), "message")
        m = dict(base)
        m[5] = [[0, 147842, 10000, 264864]]
        pkt = R.seal(m, h("data_key"), 7, V["device_id"], signer=ed)
        self.assertEqual(self.stage(pkt, pub=pub), "implausible")
        m = dict(base)
        m[1] = "dev-2"
        pkt = R.seal(m, h("data_key"), 7, V["device_id"], signer=ed)
        self.assertEqual(self.stage(pkt, pub=pub), "dev")


class StrictCbor(unittest.TestCase):
    BAD = [
        "",                      # empty
        "0000",                  # trailing byte
        "1817",                  # 23 in a 1-byte head
        "190017",                # non-shortest
        "1a0000ffff",            # non-shortest
        "1b00000000ffffffff",    # non-shortest
        "5f41ff",                # indefinite bstr
        "9fff",                  # indefinite array
        "ff",                    # break
        "a20100",                # truncated map
        "a201000100",            # duplicate key
        "a202000100",            # keys out of order
        "a2613101613001",        # tstr keys out of order
        "a20a002001",            # 10 then -1: -1 (0x20) sorts after 10 (0x0a)? valid
        "a1f400",                # key false
        "a14100",                # key bstr
        "f97e00",                # NaN
        "f97c00",                # +Inf
        "fa7f800000",            # +Inf float32
        "fa42c20000",            # 97.0 as float32 (fits float16)
        "fb4058400000000000",    # 97.0 as float64
        "fa477fe000",            # 65504.0 as float32 (a float16)
        "f7",                    # undefined
        "f0",                    # simple 16
        "f820",                  # simple value 32
        "c1 00",                 # tag 1 (epoch time)
        "d818 40",               # tag 24
        "62c328",                # invalid UTF-8
        "63eda080",              # UTF-8 surrogate
        "5a00010000",            # length beyond input
        "9a00010000",            # count beyond input
        "8181818181818181818100",  # depth 10
        "1c",                    # reserved ai
    ]

    def test_refused(self):
        for hx in self.BAD:
            hx = hx.replace(" ", "")
            if hx == "a20a002001":
                self.assertEqual(R.loads(bytes.fromhex(hx)), {10: 0, -1: 1})
                continue
            with self.assertRaises(R.CborError, msg=hx):
                R.loads(bytes.fromhex(hx))

    def test_map_limit(self):
        ok = {i: 0 for i in range(16)}
        self.assertEqual(R.loads(R.dumps(ok)), ok)
        with self.assertRaises(R.CborError):
            R.loads(R.dumps({i: 0 for i in range(17)}))

    def test_depth_limit(self):
        x = 0
        for _ in range(8):
            x = [x]
        self.assertEqual(R.loads(R.dumps(x)), x)
        with self.assertRaises(R.CborError):
            R.loads(R.dumps([x]))

    def test_tags_per_object(self):
        self.assertEqual(R.loads(bytes.fromhex("d280")), Tag(18, []))
        self.assertEqual(R.loads(bytes.fromhex("d080")), Tag(16, []))
        self.assertEqual(R.loads(bytes.fromhex("81d280"), R.TAGS_SIGN1), [Tag(18, [])])
        for hx, tags in (("d3 80", R.TAGS_PACKET), ("d81080", R.TAGS_PACKET),
                         ("d080", R.TAGS_SIGN1), ("81d080", R.TAGS_SIGN1),
                         ("d280", R.TAGS_NONE), ("a101d280", R.TAGS_NONE)):
            with self.assertRaises(R.CborError, msg=hx):
                R.loads(bytes.fromhex(hx.replace(" ", "")), tags)

    def test_tag_counts_as_a_level(self):
        x = 0
        for _ in range(7):
            x = [x]
        self.assertEqual(R.loads(R.dumps(Tag(18, x))), Tag(18, x))
        with self.assertRaises(R.CborError):
            R.loads(R.dumps(Tag(18, [x])))

    def test_float_encoding(self):
        cases = [(97.0, "f95610"), (65504.0, "f97bff"), (0.0, "f90000"), (-0.0, "f98000"),
                 (-1.5, "f9be00"), (5.960464477539063e-08, "f90001"),
                 (100000.0, "fa47c35000"), (0.1, "fb3fb999999999999a"),
                 (1e300, "fb7e37e43c8800759c"), (36.6, "fb40424ccccccccccd")]
        for x, hx in cases:
            self.assertEqual(R.dumps(x).hex(), hx, repr(x))
            y = R.loads(bytes.fromhex(hx))
            self.assertIs(type(y), float)
            self.assertEqual(struct.pack(">d", y), struct.pack(">d", x))
        with self.assertRaises(R.CborError):
            R.dumps(float("nan"))

    def test_ints_and_keys(self):
        for n, hx in ((0, "00"), (23, "17"), (24, "1818"), (255, "18ff"), (256, "190100"),
                      (65536, "1a00010000"), (2**32, "1b0000000100000000"),
                      (2**64 - 1, "1bffffffffffffffff"), (-1, "20"),
                      (-2**64, "3bffffffffffffffff")):
            self.assertEqual(R.dumps(n).hex(), hx)
            self.assertEqual(R.loads(bytes.fromhex(hx)), n)
        # bytewise order of encodings, not length-first
        self.assertEqual(R.dumps({"b": 1, "aa": 2, 100: 3, -1: 4}).hex(),
                         "a41864032004616201626161" + "02")

    def test_samples_strict(self):
        for hx in ("", "80", "8000", "0280", "ffffffffffffffffff7f",
                   "ffffffffffffffffff02", "feffffff1f"):
            with self.assertRaises(ValueError, msg=hx):
                R.decode_samples(bytes.fromhex(hx))
        self.assertEqual(R.decode_samples(bytes.fromhex("feffffff0f")), [2**31 - 1])
        self.assertEqual(R.decode_samples(bytes.fromhex("ffffffff0f")), [-2**31])


def main():
    global V
    if not os.path.isfile(VECTORS_FILE):
        print("skip: MTP/1 vectors not found at %s" % VECTORS_FILE)
        sys.exit(77)
    with open(VECTORS_FILE) as f:
        V = json.load(f)
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    # a test with failing subtests counts once
    failed = len({getattr(t, "test_case", t).id() for t, _ in res.failures + res.errors})
    print("%d passed, %d failed" % (res.testsRun - failed - len(res.skipped), failed))
    sys.exit(1 if failed or res.testsRun == 0 else 0)


if __name__ == "__main__":
    main()
