"""mtp1ref -- an independent reference implementation of MTP/1 in Python.

Written from /work/shared/spec/protocol.md (sections 1, 4, 4a, 5, 9) and
clinical.md section 1 alone; it shares no code with the C implementation.
It uses only the standard library and python3-cryptography (Debian's, so run it
with /usr/bin/python3).  The CBOR codec is our own: cbor2 ignores trailing
bytes, keeps the last duplicate key, sorts canonical keys length-first and
mis-sizes some floats (FIELD-NOTES.md).

Decoded CBOR data model:
    unsigned/negative int -> int        byte string -> bytes
    text string           -> str        array       -> list
    map                   -> dict       tag         -> Tag(tag, value)
    float                 -> float      false/true/null -> False/True/None
"""

import hashlib
import json
import math
import os
import re
import struct

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# --------------------------------------------------------------------------
# Constants of the wire contract (protocol.md section 4)

MAX_PACKET = 65536
TAG_ENCRYPT0 = 16
TAG_SIGN1 = 18
ALLOWED_TAGS = frozenset({TAG_ENCRYPT0, TAG_SIGN1})  # the only tags the page names
# Which of them each object may hold.  The page does not pin where a named tag
# may stand; like the C side (docs/protocol-notes.md) we let the outer packet
# hold 16 and 18 (a misplaced one is then a `header` fault), the inner Sign1
# only 18, and messages and receipts none.
TAGS_PACKET = ALLOWED_TAGS
TAGS_SIGN1 = frozenset({TAG_SIGN1})
TAGS_NONE = frozenset()
MAX_DEPTH = 8
MAX_MAP = 16

PROT_A256GCM = bytes.fromhex("a10103")
PROT_ES256 = bytes.fromhex("a10126")
PROT_EDDSA = bytes.fromhex("a10127")
ALG_ES256 = "ES256"
ALG_EDDSA = "EdDSA"
PROT_OF_ALG = {ALG_ES256: PROT_ES256, ALG_EDDSA: PROT_EDDSA}

HDR_KID = 4   # COSE label 4; in the outer header it carries the epoch
HDR_IV = 5

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

DEVICE_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


# --------------------------------------------------------------------------
# Errors


class CborError(ValueError):
    """Input is not strict CBOR (or a value cannot be encoded deterministically)."""


class Refused(Exception):
    """A refusal of one of the stages of protocol.md section 5."""

    def __init__(self, stage, detail):
        super().__init__("%s: %s" % (stage, detail))
        self.stage = stage
        self.detail = detail


class JsonInvalid(ValueError):
    """Input is not JSON at all (CLI exit 65)."""


# --------------------------------------------------------------------------
# CBOR: the deterministic encoder


class Tag:
    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tag) and self.tag == other.tag and self.value == other.value

    def __repr__(self):
        return "Tag(%d, %r)" % (self.tag, self.value)


def _head(major, n):
    if n < 0 or n > U64:
        raise CborError("argument out of range")
    if n < 24:
        return bytes([(major << 5) | n])
    if n <= 0xFF:
        return bytes([(major << 5) | 24, n])
    if n <= 0xFFFF:
        return bytes([(major << 5) | 25]) + struct.pack(">H", n)
    if n <= 0xFFFFFFFF:
        return bytes([(major << 5) | 26]) + struct.pack(">I", n)
    return bytes([(major << 5) | 27]) + struct.pack(">Q", n)


def _fits(fmt, x):
    """True when the float x survives a round trip through struct format fmt."""
    try:
        packed = struct.pack(fmt, x)
    except (OverflowError, struct.error):
        return False
    y = struct.unpack(fmt, packed)[0]
    return y == x and math.copysign(1.0, y) == math.copysign(1.0, x)


def encode_float(x):
    """Shortest of float16/32/64 that keeps the value (RFC 8949 section 4.2.1)."""
    if math.isnan(x) or math.isinf(x):
        raise CborError("NaN and Infinity are not allowed")
    if _fits(">e", x):
        return b"\xf9" + struct.pack(">e", x)
    if _fits(">f", x):
        return b"\xfa" + struct.pack(">f", x)
    return b"\xfb" + struct.pack(">d", x)


def dumps(obj):
    """Core deterministic encoding of obj."""
    out = bytearray()
    _enc(obj, out)
    return bytes(out)


def _enc(obj, out):
    if obj is False:
        out += b"\xf4"
    elif obj is True:
        out += b"\xf5"
    elif obj is None:
        out += b"\xf6"
    elif isinstance(obj, int):
        if obj >= 0:
            out += _head(0, obj)
        else:
            out += _head(1, -1 - obj)
    elif isinstance(obj, float):
        out += encode_float(obj)
    elif isinstance(obj, (bytes, bytearray)):
        out += _head(2, len(obj))
        out += obj
    elif isinstance(obj, str):
        b = obj.encode("utf-8")  # strict: lone surrogates raise
        out += _head(3, len(b))
        out += b
    elif isinstance(obj, (list, tuple)):
        out += _head(4, len(obj))
        for item in obj:
            _enc(item, out)
    elif isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (int, str)):
                raise CborError("map keys must be int or tstr")
            items.append((dumps(k), v))
        items.sort(key=lambda kv: kv[0])
        for a, b in zip(items, items[1:]):
            if a[0] == b[0]:
                raise CborError("duplicate map key")
        out += _head(5, len(items))
        for kb, v in items:
            out += kb
            _enc(v, out)
    elif isinstance(obj, Tag):
        out += _head(6, obj.tag)
        _enc(obj.value, out)
    else:
        raise CborError("cannot encode %r" % type(obj))


# --------------------------------------------------------------------------
# CBOR: the strict decoder


class _Decoder:
    def __init__(self, data, allowed_tags, max_depth, max_map):
        self.d = bytes(data)
        self.i = 0
        self.allowed_tags = allowed_tags
        self.max_depth = max_depth
        self.max_map = max_map

    def remaining(self):
        return len(self.d) - self.i

    def take(self, n):
        if n > self.remaining():
            raise CborError("length %d exceeds the %d bytes that remain" % (n, self.remaining()))
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def head(self):
        ib = self.take(1)[0]
        major, ai = ib >> 5, ib & 31
        if ai < 24:
            return major, ai, ai
        if ai == 24:
            n = self.take(1)[0]
            if major != 7 and n < 24:
                raise CborError("head not in shortest form")
        elif ai == 25:
            n = struct.unpack(">H", self.take(2))[0]
            if major != 7 and n <= 0xFF:
                raise CborError("head not in shortest form")
        elif ai == 26:
            n = struct.unpack(">I", self.take(4))[0]
            if major != 7 and n <= 0xFFFF:
                raise CborError("head not in shortest form")
        elif ai == 27:
            n = struct.unpack(">Q", self.take(8))[0]
            if major != 7 and n <= 0xFFFFFFFF:
                raise CborError("head not in shortest form")
        elif ai == 31:
            raise CborError("indefinite length or break code")
        else:
            raise CborError("reserved additional information %d" % ai)
        return major, ai, n

    def item(self, depth):
        start = self.i
        major, ai, n = self.head()
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major == 2:
            return self.take(n)
        if major == 3:
            raw = self.take(n)
            try:
                return raw.decode("utf-8", "strict")
            except UnicodeDecodeError:
                raise CborError("invalid UTF-8") from None
        if major == 4:
            if depth + 1 > self.max_depth:
                raise CborError("nesting deeper than %d" % self.max_depth)
            if n > self.remaining():
                raise CborError("array count %d exceeds the input that remains" % n)
            return [self.item(depth + 1) for _ in range(n)]
        if major == 5:
            if depth + 1 > self.max_depth:
                raise CborError("nesting deeper than %d" % self.max_depth)
            if n > self.max_map:
                raise CborError("map of %d entries (at most %d)" % (n, self.max_map))
            if 2 * n > self.remaining():
                raise CborError("map count %d exceeds the input that remains" % n)
            out = {}
            prev = None
            for _ in range(n):
                ks = self.i
                if self.remaining() < 1:
                    raise CborError("truncated map")
                kmajor = self.d[ks] >> 5
                if kmajor not in (0, 1, 3):
                    raise CborError("map key neither int nor tstr")
                k = self.item(depth + 1)
                kenc = self.d[ks:self.i]
                if prev is not None:
                    if kenc == prev:
                        raise CborError("duplicate map key %r" % (k,))
                    if kenc < prev:
                        raise CborError("map keys not in bytewise order")
                prev = kenc
                out[k] = self.item(depth + 1)
            return out
        if major == 6:
            # Only the tags the page names, and only in the object that names
            # them (callers pass the set: packet {16, 18}, Sign1 {18}, message
            # and receipt none).  A tag counts as a nesting level.
            if n not in self.allowed_tags:
                raise CborError("tag %d not allowed here" % n)
            if depth + 1 > self.max_depth:
                raise CborError("nesting deeper than %d" % self.max_depth)
            return Tag(n, self.item(depth + 1))
        # major 7
        if ai < 24:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai == 22:
                return None
            raise CborError("simple value %d not allowed" % ai)
        if ai == 24:
            raise CborError("simple value %d not allowed" % n)
        raw = self.d[start + 1:self.i]
        if ai == 25:
            x = struct.unpack(">e", raw)[0]
        elif ai == 26:
            x = struct.unpack(">f", raw)[0]
            if not (math.isnan(x) or math.isinf(x)) and _fits(">e", x):
                raise CborError("float32 %r not in shortest form" % x)
        else:
            x = struct.unpack(">d", raw)[0]
            if not (math.isnan(x) or math.isinf(x)) and _fits(">f", x):
                raise CborError("float64 %r not in shortest form" % x)
        if math.isnan(x) or math.isinf(x):
            raise CborError("NaN or Infinity")
        return x


def loads(data, allowed_tags=ALLOWED_TAGS, max_depth=MAX_DEPTH, max_map=MAX_MAP):
    """Strictly decode exactly one CBOR item filling all of data."""
    dec = _Decoder(data, allowed_tags, max_depth, max_map)
    if dec.remaining() == 0:
        raise CborError("empty input")
    obj = dec.item(0)
    if dec.remaining():
        raise CborError("%d trailing bytes" % dec.remaining())
    return obj


# --------------------------------------------------------------------------
# Keys (protocol.md section 1, section 4)


def spki_der(public_key):
    """DER SubjectPublicKeyInfo: uncompressed point for P-256, RFC 8410 for Ed25519."""
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def kid_of(public_key):
    if not isinstance(public_key, (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        public_key = public_key.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name != "secp256r1":
        raise ValueError("only P-256")
    return hashlib.sha256(spki_der(public_key)).digest()[:8]


def alg_of(key):
    """The COSE algorithm fixed by an ldev key's type."""
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return ALG_EDDSA
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name != "secp256r1":
            raise ValueError("only P-256")
        return ALG_ES256
    raise ValueError("unsupported key type %r" % type(key))


def ecdh_x(private_key, peer_public_key):
    """x-coordinate of ECDH(private, peer) on P-256 (32 bytes)."""
    x = private_key.exchange(ec.ECDH(), peer_public_key)
    assert len(x) == 32
    return x


def _hkdf(ikm, epoch, info):
    if not 0 <= epoch <= U32:
        raise ValueError("epoch out of range")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=struct.pack(">I", epoch),
                info=info).derive(ikm)


def _dev_bytes(device_id):
    b = device_id.encode("utf-8") if isinstance(device_id, str) else bytes(device_id)
    return b


def data_key(ikm, epoch, device_id):
    return _hkdf(ikm, epoch, b"MTP/1 A256GCM " + _dev_bytes(device_id))


def receipt_key(ikm, epoch, device_id):
    return _hkdf(ikm, epoch, b"MTP/1 receipt " + _dev_bytes(device_id))


def enc_structure(device_id):
    return dumps(["Encrypt0", PROT_A256GCM, _dev_bytes(device_id)])


def receipt_enc_structure(device_id):
    return dumps(["Encrypt0", PROT_A256GCM, b"rcpt:" + _dev_bytes(device_id)])


def sig_structure(alg, message_bytes):
    return dumps(["Signature1", PROT_OF_ALG[alg], b"", bytes(message_bytes)])


# --------------------------------------------------------------------------
# Signatures


def sign(private_key, data):
    """COSE signature: ES256 as r||s (32+32 bytes), EdDSA as RFC 8032."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(public_key, sig, data):
    """Raises Refused('signature') unless sig is a valid COSE signature of data."""
    if len(sig) != 64:
        raise Refused("signature", "signature is %d bytes, not 64" % len(sig))
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        try:
            public_key.verify(sig, data)
        except InvalidSignature:
            raise Refused("signature", "EdDSA signature does not verify") from None
        return
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (1 <= r < P256_N and 1 <= s < P256_N):
        raise Refused("signature", "r or s out of range")
    try:
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("signature", "ES256 signature does not verify") from None


# --------------------------------------------------------------------------
# Waveform samples: zigzag + unsigned LEB128, shortest form (section 5)

MAX_SAMPLES = 65536
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def encode_samples(samples):
    if not 1 <= len(samples) <= MAX_SAMPLES:
        raise ValueError("1..65536 samples")
    out = bytearray()
    prev = 0
    for s in samples:
        if isinstance(s, bool) or not isinstance(s, int) or not I32_MIN <= s <= I32_MAX:
            raise ValueError("sample %r is not an int32" % (s,))
        d = s - prev
        prev = s
        z = (d << 1) if d >= 0 else ((-d) << 1) - 1   # zigzag, as (d << 1) ^ (d >> 63)
        while True:
            b = z & 0x7F
            z >>= 7
            if z:
                out.append(b | 0x80)
            else:
                out.append(b)
                break
    return bytes(out)


def decode_samples(data):
    """Inverse of encode_samples; raises ValueError on anything not canonical."""
    samples = []
    prev = 0
    i = 0
    n = len(data)
    if n == 0:
        raise ValueError("no samples")
    while i < n:
        z = 0
        shift = 0
        count = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            count += 1
            if count > 10:
                raise ValueError("varint longer than 10 bytes")
            if count == 10 and b > 0x01:
                raise ValueError("varint exceeds 64 bits")
            z |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if count > 1 and b == 0:
                    raise ValueError("varint not in shortest form")
                break
        d = (z >> 1) if not z & 1 else -((z >> 1) + 1)
        s = prev + d
        if not I32_MIN <= s <= I32_MAX:
            raise ValueError("sample outside int32")
        samples.append(s)
        prev = s
        if len(samples) > MAX_SAMPLES:
            raise ValueError("more than 65536 samples")
    return samples


# --------------------------------------------------------------------------
# The message schema (section 5) and plausibility (clinical.md section 1)

MAX_TEXT = 256
MAX_OBS = 1024

TYP_RULES = {  # typ: (must have, may have)
    1: ({1, 2, 3, 4, 5}, set()),
    2: ({1, 2, 3, 4, 8}, {5}),
    3: ({1, 2, 3, 4, 6}, set()),
    4: ({1, 2, 3, 4, 7}, set()),
}


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _is_uint(x):
    return _is_int(x) and x >= 0


def _is_num(x):
    return _is_int(x) or (isinstance(x, float) and math.isfinite(x))


def _msg(cond, detail):
    if not cond:
        raise Refused("message", detail)


def _text(x, what):
    _msg(isinstance(x, str), "%s is not a text string" % what)
    _msg(len(x.encode("utf-8")) <= MAX_TEXT, "%s longer than %d bytes" % (what, MAX_TEXT))


def valid_device_id(dev):
    return isinstance(dev, str) and DEVICE_ID_RE.match(dev) is not None and \
        len(dev.encode("utf-8")) <= 64


def is_waveform(obs):
    return isinstance(obs, list) and len(obs) == 6


def check_observation(o, idx):
    w = "obs[%d]" % idx
    _msg(isinstance(o, list), "%s is not an array" % w)
    if len(o) in (4, 5):
        t, code, value, unit = o[:4]
        _msg(_is_int(t) and t <= 0, "%s: t must be an int <= 0" % w)
        _msg(_is_uint(code) and code <= U32, "%s: code must be uint32" % w)
        _msg(_is_num(value), "%s: value must be an int or a finite float" % w)
        _msg(_is_uint(unit) and unit <= U32, "%s: unit must be uint32" % w)
        if len(o) == 5:
            _msg(_is_uint(o[4]) and o[4] <= 6, "%s: places must be 0..6" % w)
    elif len(o) == 6:
        t, code, unit, period, scale, samples = o
        _msg(_is_int(t) and t <= 0, "%s: t must be an int <= 0" % w)
        _msg(_is_uint(code) and code <= U32, "%s: code must be uint32" % w)
        _msg(_is_uint(unit) and unit <= U32, "%s: unit must be uint32" % w)
        _msg(_is_uint(period) and period > 0, "%s: period_us must be a uint > 0" % w)
        _msg(_is_num(scale) and scale != 0, "%s: scale must be finite and non-zero" % w)
        _msg(isinstance(samples, bytes), "%s: samples must be a bstr" % w)
        try:
            decode_samples(samples)
        except ValueError as e:
            raise Refused("message", "%s: samples: %s" % (w, e)) from None
    else:
        raise Refused("message", "%s has %d elements" % (w, len(o)))


def check_message(m):
    """Every schema rule of section 5; raises Refused('message', ...)."""
    _msg(isinstance(m, dict), "message is not a map")
    for k in m:
        _msg(_is_int(k) and 1 <= k <= 8, "unknown key %r" % (k,))
    _msg(4 in m and _is_uint(m[4]) and m[4] in TYP_RULES, "typ missing or unknown")
    must, may = TYP_RULES[m[4]]
    for k in must:
        _msg(k in m, "typ %d requires key %d" % (m[4], k))
    for k in m:
        _msg(k in must or k in may, "typ %d must not have key %d" % (m[4], k))
    _text(m[1], "dev")
    _msg(valid_device_id(m[1]), "dev is not a valid device id")
    _msg(_is_uint(m[2]) and m[2] < (1 << 63), "ctr must be a uint < 2^63")
    _msg(_is_uint(m[3]) and m[3] < (1 << 53), "ts must be a uint < 2^53")
    if 5 in m:
        obs = m[5]
        _msg(isinstance(obs, list) and 1 <= len(obs) <= MAX_OBS, "obs must hold 1..1024")
        for i, o in enumerate(obs):
            check_observation(o, i)
    if 6 in m:
        st = m[6]
        _msg(isinstance(st, dict) and len(st) >= 1, "st must be a non-empty map")
        for k, v in st.items():
            _msg(_is_int(k) and 1 <= k <= 5, "st: unknown key %r" % (k,))
            if k == 1:
                _msg(_is_uint(v) and v <= 100, "st.battery must be a uint <= 100")
            elif k == 2:
                _text(v, "st.fw")
            elif k in (3, 4):
                _msg(_is_uint(v), "st.%s must be a uint" % ST_NAMES[k])
            else:
                _msg(_is_int(v), "st.rssi must be an int")
    if 7 in m:
        ack = m[7]
        _msg(isinstance(ack, dict), "ack must be a map")
        for k in ack:
            _msg(_is_int(k) and 1 <= k <= 3, "ack: unknown key %r" % (k,))
        _msg(1 in ack and _is_uint(ack[1]), "ack.ctr must be a uint")
        _msg(2 in ack and _is_uint(ack[2]), "ack.result must be a uint")
        if 3 in ack:
            _text(ack[3], "ack.detail")
    if 8 in m:
        al = m[8]
        _msg(isinstance(al, dict), "alrt must be a map")
        for k in al:
            _msg(_is_int(k) and 1 <= k <= 3, "alrt: unknown key %r" % (k,))
        _msg(1 in al and _is_uint(al[1]), "alrt.code must be a uint")
        _msg(2 in al and _is_uint(al[2]) and al[2] in (1, 2, 3), "alrt.prio must be 1..3")
        if 3 in al:
            _text(al[3], "alrt.text")


# code: (unit, low, high); the ranges are clinical.md section 1's.  Where
# clinical.md is silent we follow the project's recorded decisions
# (docs/protocol-notes.md, "Plausibility bounds beyond clinical.md"): inhaler
# doses 0..100; ECG lead II only as a waveform, with no range on its samples;
# a quantity sent in the other form (scalar vs waveform) is implausible.
WAVEFORM_CODES = frozenset({131330})
CLINICAL = {
    147842: (264864, 0, 350),        # heart rate (ECG)
    149530: (264864, 0, 350),        # pulse rate (oximeter)
    150456: (262688, 0, 100),        # SpO2
    150021: (266016, 0, 400),        # NIBP systolic
    150022: (266016, 0, 400),        # NIBP diastolic
    150023: (266016, 0, 400),        # NIBP mean
    150364: (268192, 20.0, 45.0),    # body temperature
    151562: (264928, 0, 150),        # respiratory rate
    160184: (264274, 0, 2000),       # glucose
    131330: (266418, None, None),    # ECG lead II (waveform only)
    8532992: (262656, 0, 100),       # inhaler dose (derived code; project bound)
}


def check_plausible(m):
    """Stage 14: codes, units and values of clinical.md section 1."""
    for i, o in enumerate(m.get(5, [])):
        if len(o) == 6:
            code, unit, value = o[1], o[2], None
        else:
            code, value, unit = o[1], o[2], o[3]
        if code not in CLINICAL:
            raise Refused("implausible", "obs[%d]: unknown code %d" % (i, code))
        u, lo, hi = CLINICAL[code]
        if unit != u:
            raise Refused("implausible", "obs[%d]: unit %d is not %d" % (i, unit, u))
        if (len(o) == 6) != (code in WAVEFORM_CODES):
            raise Refused("implausible", "obs[%d]: scalar/waveform form not the code's" % i)
        if value is not None and lo is not None and not lo <= value <= hi:
            raise Refused("implausible", "obs[%d]: value %r outside %r..%r" % (i, value, lo, hi))


# --------------------------------------------------------------------------
# Packets (section 4)


def encode_epoch(epoch):
    return struct.pack(">I", epoch)


def encrypt0(key, epoch, iv, plaintext, aad):
    if iv is None:
        iv = os.urandom(12)
    if len(iv) != 12:
        raise ValueError("IV must be 12 bytes")
    ct = AESGCM(key).encrypt(iv, bytes(plaintext), aad)
    return dumps(Tag(TAG_ENCRYPT0, [PROT_A256GCM, {HDR_KID: encode_epoch(epoch), HDR_IV: iv}, ct]))


def sign1(private_key, message_bytes, alg=None, kid=None):
    alg = alg or alg_of(private_key)
    kid = kid if kid is not None else kid_of(private_key.public_key())
    sig = sign(private_key, sig_structure(alg, message_bytes))
    return dumps(Tag(TAG_SIGN1, [PROT_OF_ALG[alg], {HDR_KID: kid}, bytes(message_bytes), sig]))


def seal(message, key, epoch, device_id, signer=None, iv=None):
    """Seal a message (dict or its CBOR bytes).  signer=None makes a fast packet,
    else a sealed packet signed with signer (P-256 -> ES256, Ed25519 -> EdDSA)."""
    mb = message if isinstance(message, (bytes, bytearray)) else dumps(message)
    plaintext = mb if signer is None else sign1(signer, mb)
    return encrypt0(key, epoch, iv, plaintext, enc_structure(device_id))


class Opened:
    def __init__(self, kind, epoch, iv, message, message_bytes, alg=None, kid=None,
                 signature=None):
        self.kind = kind                  # "sealed" | "fast"
        self.epoch = epoch
        self.iv = iv
        self.message = message            # decoded map
        self.message_bytes = message_bytes
        self.alg = alg
        self.kid = kid
        self.signature = signature


def accepted_epochs(current):
    return {current, current - 1} if current > 0 else {current}


def parse_outer(packet):
    """Stages size, cbor, header.  Returns (epoch, iv, ciphertext)."""
    if len(packet) > MAX_PACKET:
        raise Refused("size", "packet of %d bytes (at most %d)" % (len(packet), MAX_PACKET))
    try:
        outer = loads(packet, TAGS_PACKET)
    except CborError as e:
        raise Refused("cbor", str(e)) from None
    if not isinstance(outer, Tag) or outer.tag != TAG_ENCRYPT0:
        raise Refused("header", "not a tagged COSE_Encrypt0")
    v = outer.value
    if not isinstance(v, list) or len(v) != 3:
        raise Refused("header", "COSE_Encrypt0 is not an array of 3")
    prot, unprot, ct = v
    if not isinstance(prot, bytes) or prot != PROT_A256GCM:
        raise Refused("header", "protected header is not h'a10103'")
    if not isinstance(unprot, dict) or set(unprot) != {HDR_KID, HDR_IV} or \
            any(isinstance(k, bool) for k in unprot):
        raise Refused("header", "unprotected header labels are not exactly {4, 5}")
    ep, iv = unprot[HDR_KID], unprot[HDR_IV]
    if not isinstance(ep, bytes) or len(ep) != 4:
        raise Refused("header", "epoch is not a 4-byte bstr")
    if not isinstance(iv, bytes) or len(iv) != 12:
        raise Refused("header", "IV is not a 12-byte bstr")
    if not isinstance(ct, bytes):
        raise Refused("header", "ciphertext is not a bstr")
    return struct.unpack(">I", ep)[0], iv, ct


def open_packet(packet, device_id, ldev_pub=None, *, key=None, ikm=None, hub_kx=None,
                dev_kx_pub=None, epoch=None, check_dev=True, check_implausible=True):
    """All checks of section 5 that apply without a registry, in order.

    The data key comes from key=, or is derived from ikm= (the ECDH x) or from
    hub_kx= (hub private key) and dev_kx_pub=.  ldev_pub (the registered
    operational public key) is required for sealed packets.  epoch=None skips
    the epoch check.  Returns Opened; raises Refused(stage, detail)."""
    pkt_epoch, iv, ct = parse_outer(bytes(packet))
    if epoch is not None and pkt_epoch not in accepted_epochs(epoch):
        raise Refused("epoch", "epoch %d not accepted (current %d)" % (pkt_epoch, epoch))
    if key is None:
        if ikm is None:
            ikm = ecdh_x(hub_kx, dev_kx_pub)
        key = data_key(ikm, pkt_epoch, device_id)
    if len(ct) < 16:
        raise Refused("aead", "ciphertext shorter than the tag")
    try:
        pt = AESGCM(key).decrypt(iv, ct, enc_structure(device_id))
    except InvalidTag:
        raise Refused("aead", "tag does not verify") from None

    if pt[:1] == b"\xd2":
        kind = "sealed"
        try:
            s1 = loads(pt, TAGS_SIGN1)
        except CborError as e:
            raise Refused("inner", "Sign1 not strict CBOR: %s" % e) from None
        if not isinstance(s1, Tag) or s1.tag != TAG_SIGN1 or not isinstance(s1.value, list) \
                or len(s1.value) != 4:
            raise Refused("inner", "not a tagged COSE_Sign1")
        sprot, sunprot, payload, sig = s1.value
        if not isinstance(sprot, bytes) or not isinstance(sunprot, dict) or \
                not isinstance(payload, bytes) or not isinstance(sig, bytes):
            raise Refused("inner", "COSE_Sign1 element types wrong")
        if ldev_pub is None:
            raise ValueError("a sealed packet needs the registered ldev key")
        alg = alg_of(ldev_pub)
        if sprot != PROT_OF_ALG[alg]:
            raise Refused("alg", "protected header %s is not %s's" % (sprot.hex(), alg))
        if set(sunprot) != {HDR_KID} or any(isinstance(k, bool) for k in sunprot):
            raise Refused("kid", "unprotected header is not exactly {4: kid}")
        kid = sunprot[HDR_KID]
        if kid != kid_of(ldev_pub):
            raise Refused("kid", "kid %s is not the registered key's" %
                          (kid.hex() if isinstance(kid, bytes) else repr(kid)))
        verify(ldev_pub, sig, sig_structure(alg, payload))
        try:
            m = loads(payload, TAGS_NONE)
        except CborError as e:
            raise Refused("message", "not strict CBOR: %s" % e) from None
        check_message(m)
        mb, skid, ssig = payload, kid, sig
    else:
        kind = "fast"
        alg = skid = ssig = None
        try:
            m = loads(pt, TAGS_NONE)
        except CborError as e:
            raise Refused("inner", "fast plaintext not strict CBOR: %s" % e) from None
        if not isinstance(m, dict) or type(m.get(4)) is not int or m[4] != 2:
            raise Refused("inner", "fast packet with typ other than 2")
        # "a fast packet's plaintext is decoded as the message at stage 6"
        try:
            check_message(m)
        except Refused as e:
            raise Refused("inner", "fast packet message: %s" % e.detail) from None
        mb = pt
    if check_dev and m[1] != (device_id if isinstance(device_id, str)
                              else bytes(device_id).decode("utf-8", "replace")):
        raise Refused("dev", "dev %r is not %r" % (m[1], device_id))
    if check_implausible:
        check_plausible(m)
    return Opened(kind, pkt_epoch, iv, m, mb, alg, skid, ssig)


# --------------------------------------------------------------------------
# Receipts (section 4a)

MAX_RANGES = 512


def check_receipt(r, device_id=None):
    def need(c, d):
        if not c:
            raise Refused("message", "receipt: " + d)
    need(isinstance(r, dict) and set(r) == {1, 2, 3}, "keys must be exactly 1, 2, 3")
    need(valid_device_id(r[1]), "device id")
    if device_id is not None:
        need(r[1] == device_id, "receipt for another device")
    rg = r[2]
    need(isinstance(rg, list) and len(rg) <= MAX_RANGES, "ranges: array of at most 512")
    prev_last = None
    for x in rg:
        need(isinstance(x, list) and len(x) == 2 and _is_uint(x[0]) and _is_uint(x[1])
             and x[0] <= x[1], "range must be [first, last], first <= last")
        if prev_last is not None:
            need(x[0] > prev_last + 1, "ranges not sorted, disjoint and merged")
        prev_last = x[1]
    need(_is_uint(r[3]), "ts must be a uint")


def seal_receipt(receipt, rkey, epoch, device_id, iv=None):
    rb = receipt if isinstance(receipt, (bytes, bytearray)) else dumps(receipt)
    return encrypt0(rkey, epoch, iv, rb, receipt_enc_structure(device_id))


def open_receipt(packet, device_id, *, rkey=None, ikm=None, current_epoch=None):
    """Returns (epoch, iv, receipt map, plaintext).  Keys from rkey= or ikm=."""
    pkt_epoch, iv, ct = parse_outer(bytes(packet))
    if current_epoch is not None and pkt_epoch not in accepted_epochs(current_epoch):
        raise Refused("epoch", "receipt epoch %d not accepted" % pkt_epoch)
    if rkey is None:
        rkey = receipt_key(ikm, pkt_epoch, device_id)
    try:
        pt = AESGCM(rkey).decrypt(iv, ct, receipt_enc_structure(device_id))
    except InvalidTag:
        raise Refused("aead", "tag does not verify") from None
    try:
        r = loads(pt, TAGS_NONE)
    except CborError as e:
        raise Refused("message", "receipt not strict CBOR: %s" % e) from None
    check_receipt(r, device_id)
    return pkt_epoch, iv, r, pt


# --------------------------------------------------------------------------
# The JSON form (section 9)

TOP_NAMES = {1: "dev", 2: "ctr", 3: "ts", 4: "typ", 5: "obs", 6: "st", 7: "ack", 8: "alrt"}
ST_NAMES = {1: "battery", 2: "fw", 3: "queue", 4: "uptime", 5: "rssi"}
ACK_NAMES = {1: "ctr", 2: "result", 3: "detail"}
ALRT_NAMES = {1: "code", 2: "prio", 3: "text"}
SUB_NAMES = {6: ST_NAMES, 7: ACK_NAMES, 8: ALRT_NAMES}


def _rev(d):
    return {v: k for k, v in d.items()}


def message_to_jsonobj(m):
    """Decoded message map -> Python object of its JSON form."""
    out = {}
    for k, v in m.items():
        name = TOP_NAMES[k]
        if k == 5:
            obs = []
            for o in v:
                o = list(o)
                if len(o) == 6:
                    o[5] = decode_samples(o[5])
                obs.append(o)
            v = obs
        elif k in SUB_NAMES:
            v = {SUB_NAMES[k][kk]: vv for kk, vv in v.items()}
        out[name] = v
    return out


def message_to_json(m):
    # json.dumps prints floats with repr (shortest round trip; always '.' or 'e')
    return json.dumps(message_to_jsonobj(m), allow_nan=False)


def _no_dupes(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise JsonInvalid("duplicate JSON name %r" % k)
        d[k] = v
    return d


def _bad_constant(name):
    raise JsonInvalid("%s is not JSON" % name)


def parse_json(text):
    """JSON text -> Python object; numbers with '.', 'e', 'E' are floats."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonInvalid("not UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_no_dupes, parse_constant=_bad_constant)
    except JsonInvalid:
        raise
    except ValueError as e:
        raise JsonInvalid(str(e)) from None


def message_from_jsonobj(j):
    """JSON form -> message map (int keys), validated against section 5."""
    _msg(isinstance(j, dict), "message is not an object")
    top = _rev(TOP_NAMES)
    m = {}
    for name, v in j.items():
        _msg(name in top, "unknown name %r" % name)
        k = top[name]
        if k == 5:
            _msg(isinstance(v, list), "obs is not an array")
            obs = []
            for o in v:
                _msg(isinstance(o, list), "observation is not an array")
                o = list(o)
                if len(o) == 6:
                    _msg(isinstance(o[5], list), "samples is not an array")
                    try:
                        o[5] = encode_samples(o[5])
                    except ValueError as e:
                        raise Refused("message", "samples: %s" % e) from None
                obs.append(o)
            v = obs
        elif k in SUB_NAMES:
            _msg(isinstance(v, dict), "%s is not an object" % name)
            sub = _rev(SUB_NAMES[k])
            vv = {}
            for n2, x in v.items():
                _msg(n2 in sub, "unknown name %s.%s" % (name, n2))
                vv[sub[n2]] = x
            v = vv
        m[k] = v
    check_message(m)
    return m


def message_from_json(text):
    return message_from_jsonobj(parse_json(text))


# --------------------------------------------------------------------------
# Key files (CLI key URIs file:PATH)


def write_private_pem(path, key, passphrase):
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase.encode()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def write_public_pem(path, key):
    if hasattr(key, "public_key"):
        key = key.public_key()
    with open(path, "wb") as f:
        f.write(key.public_bytes(serialization.Encoding.PEM,
                                 serialization.PublicFormat.SubjectPublicKeyInfo))


def load_public_pem(path):
    with open(path, "rb") as f:
        return serialization.load_pem_public_key(f.read())


def load_private_pem(path, passphrase):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), passphrase.encode()
                                                  if passphrase is not None else None)
