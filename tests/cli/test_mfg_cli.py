#!/usr/bin/python3
"""test_mfg_cli.py — drive `medtrust mfg` the way a factory and a hospital do
(protocol §1, docs/cli.md "medtrust mfg", docs/operations.md; threats I01,
B01 and the onboarding whitelist of §2).

What it proves:
  * `mfg init` makes the manufacturer directory (0700) with its token store,
    DIR/pin and DIR/so-pin (0600), root.pem, manifest-signer.pem,
    firmware-signer.pem and manufacturer.conf; the three private keys are in
    the token, sensitive and never extractable (pkcs11-tool -O with the
    manufacturer's SOFTHSM2_CONF), and `medtrust key public` reaches them
    through the URIs of manufacturer.conf; a second init is refused;
  * `mfg make --count 5` (one token per device) and `--count 200 --soft`
    (encrypted file keys): every device directory 0700 with its secrets
    0600; every birth certificate verifies with `openssl verify -CAfile
    root.pem` and has subject CN=serial, O=name, serialNumber=serial and
    notAfter 9999; its public key is the device key's (`medtrust key
    public`);
  * `mfg verify-manifest` accepts each manifest and lists every serial with
    the kid `medtrust key kid` gives for the device key and the SHA-256 of
    the birth certificate DER (`openssl x509 -outform DER`);
  * a manifest with one byte flipped is refused (exit 2, "refused: "), so is
    a manifest checked against another manufacturer's root (B01);
  * serials never repeat across `make` runs; --soft without a passphrase is
    refused before anything is made;
  * no unencrypted private key anywhere under the directories.

Environment: MEDTRUST_BIN (default /work/main/build-mfg/medtrust); exits 77
when the binary is missing.  Prints a closing "N passed, M failed" line.
"""
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build-mfg/medtrust")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASS = "mfg-cli-test-passphrase"
NAME = "Acme Medical"

STATE = {"tmp": None}


def run(args, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("SOFTHSM2_CONF", None)
    if env:
        e.update(env)
    return subprocess.run([BIN] + args, capture_output=True, env=e, timeout=timeout)


def path(*names):
    return os.path.join(STATE["tmp"], *names)


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def read_conf(p):
    conf = {}
    with open(p) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            k, v = line.split(" ", 1)
            conf[k] = v
    return conf


def device_dirs(out):
    return sorted(d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d)))


def device_env(ddir):
    conf = read_conf(os.path.join(ddir, "device.conf"))
    env = {"MEDTRUST_KEY_PASSPHRASE": PASS}
    if "softhsm2-conf" in conf:
        env["SOFTHSM2_CONF"] = conf["softhsm2-conf"]
    return conf, env


def setUpModule():
    STATE["tmp"] = tempfile.mkdtemp(prefix="mt-mfg-cli-")
    r = run(["mfg", "init", path("mfg"), "--name", NAME])
    if r.returncode != 0:
        raise RuntimeError("mfg init failed: %r" % r.stderr)
    STATE["init_out"] = r.stdout
    r = run(["mfg", "init", path("other"), "--name", "Other Corp"])
    if r.returncode != 0:
        raise RuntimeError("mfg init (other) failed: %r" % r.stderr)
    r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "5", "--class", "infusion-pump",
             "--out", path("lot-tok")])
    if r.returncode != 0:
        raise RuntimeError("mfg make (tokens) failed: %r" % r.stderr)
    STATE["make_tok"] = r
    r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "200", "--class", "sim.monitor",
             "--out", path("lot-soft"), "--soft"], env={"MEDTRUST_KEY_PASSPHRASE": PASS})
    if r.returncode != 0:
        raise RuntimeError("mfg make (soft) failed: %r" % r.stderr)
    STATE["make_soft"] = r


def tearDownModule():
    if STATE["tmp"]:
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


class MfgInit(unittest.TestCase):
    def test_files_and_modes(self):
        d = path("mfg")
        self.assertEqual(mode(d), 0o700)
        for name in ("pin", "so-pin", "manufacturer.conf", "softhsm2.conf"):
            self.assertEqual(mode(os.path.join(d, name)), 0o600, name)
        self.assertEqual(mode(os.path.join(d, "tokens")), 0o700)
        for name in ("root.pem", "manifest-signer.pem", "firmware-signer.pem"):
            self.assertTrue(os.path.isfile(os.path.join(d, name)), name)
        with open(os.path.join(d, "pin"), "rb") as f:
            pin = f.read()
        self.assertGreaterEqual(len(pin), 16)
        # The PIN is never printed.
        self.assertNotIn(pin, STATE["init_out"])

    def test_conf(self):
        conf = read_conf(path("mfg", "manufacturer.conf"))
        self.assertEqual(conf["name"], NAME)
        self.assertEqual(conf["token"], "mfg-acme-medical")
        for k in ("root-key", "manifest-key", "firmware-key"):
            self.assertTrue(conf[k].startswith("pkcs11:token=mfg-acme-medical;"), k)
            self.assertIn("pin-source=" + path("mfg", "pin"), conf[k])
            self.assertNotIn("pin-value", conf[k])
        self.assertEqual(conf["serial-prefix"], "acme-medical-")

    def test_certificates(self):
        d = path("mfg")
        root = os.path.join(d, "root.pem")
        r = subprocess.run(["openssl", "x509", "-in", root, "-noout", "-subject", "-issuer",
                            "-enddate", "-ext", "basicConstraints"], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("CA:TRUE", r.stdout)
        self.assertIn("O = Acme Medical", r.stdout)
        year = int(re.search(r"notAfter=.* (\d{4}) GMT", r.stdout).group(1))
        self.assertGreaterEqual(year, 2045)
        for name in ("manifest-signer.pem", "firmware-signer.pem"):
            r = subprocess.run(["openssl", "verify", "-CAfile", root, os.path.join(d, name)],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, (name, r.stdout, r.stderr))
        r = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "firmware-signer.pem"),
                            "-noout", "-ext", "extendedKeyUsage,keyUsage"],
                           capture_output=True, text=True)
        self.assertIn("Code Signing", r.stdout)
        self.assertIn("Digital Signature", r.stdout)

    def test_keys_in_token_never_extractable(self):
        if not shutil.which("pkcs11-tool"):
            self.skipTest("pkcs11-tool not installed")
        d = path("mfg")
        with open(os.path.join(d, "pin")) as f:
            pin = f.read().strip()
        env = dict(os.environ, SOFTHSM2_CONF=os.path.join(d, "softhsm2.conf"))
        r = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label",
                            "mfg-acme-medical", "--login", "--pin", pin, "-O"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        blocks = r.stdout.split("Private Key Object")[1:]
        labels = sorted(re.search(r"label:\s+(\S+)", b).group(1) for b in blocks)
        self.assertEqual(labels, ["firmware-signer", "manifest-signer", "root-ca"])
        for b in blocks:
            self.assertIn("never extractable", b)
            self.assertIn("sensitive", b)

    def test_key_public_through_conf_uri(self):
        conf = read_conf(path("mfg", "manufacturer.conf"))
        r = run(["key", "public", conf["root-key"]],
                env={"SOFTHSM2_CONF": conf["softhsm2-conf"]})
        self.assertEqual(r.returncode, 0, r.stderr)
        cert_pub = subprocess.run(["openssl", "x509", "-in", path("mfg", "root.pem"),
                                   "-noout", "-pubkey"], capture_output=True).stdout
        self.assertEqual(r.stdout.strip(), cert_pub.strip())

    def test_refuses_existing(self):
        before = open(path("mfg", "manufacturer.conf")).read()
        r = run(["mfg", "init", path("mfg"), "--name", "Evil"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"never overwritten", r.stderr)
        self.assertEqual(open(path("mfg", "manufacturer.conf")).read(), before)

    def test_pin_source(self):
        pinf = path("my-pin")
        with open(pinf, "w") as f:
            f.write("4711-0815-pin\n")
        os.chmod(pinf, 0o600)
        r = run(["mfg", "init", path("mfg-ps"), "--name", "Pin Source Ltd",
                 "--pin-source", pinf])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(path("mfg-ps", "pin")))
        conf = read_conf(path("mfg-ps", "manufacturer.conf"))
        self.assertIn("pin-source=" + pinf, conf["root-key"])
        self.assertNotIn(b"4711", r.stdout + r.stderr)

    def test_usage(self):
        self.assertEqual(run(["mfg", "init", path("x")]).returncode, 64)
        self.assertEqual(run(["mfg", "init", "--name", "A"]).returncode, 64)
        self.assertEqual(run(["mfg", "init", path("x"), "--name", "a\nb"]).returncode, 64)
        self.assertEqual(run(["mfg", "bogus"]).returncode, 64)
        for args in (["mfg", "--help"], ["mfg", "init", "--help"], ["mfg", "make", "--help"],
                     ["mfg", "verify-manifest", "--help"]):
            r = run(args)
            self.assertEqual(r.returncode, 0, args)
            self.assertIn(b"usage: medtrust mfg", r.stdout)


class MfgMake(unittest.TestCase):
    def check_lot(self, out, count, cls, soft):
        root = path("mfg", "root.pem")
        self.assertEqual(mode(out), 0o700)
        serials = device_dirs(out)
        self.assertEqual(len(serials), count)
        r = run(["mfg", "verify-manifest", os.path.join(out, "manifest.cose"), "--root", root])
        self.assertEqual(r.returncode, 0, r.stderr)
        entries = [json.loads(l) for l in r.stdout.decode().splitlines()]
        self.assertEqual(sorted(e["serial"] for e in entries), serials)
        by_serial = {e["serial"]: e for e in entries}
        # openssl verify over all the birth certificates at once.
        certs = [os.path.join(out, s, "birth.pem") for s in serials]
        r = subprocess.run(["openssl", "verify", "-CAfile", root] + certs,
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count(": OK"), count)
        # Full per-device checks on a sample (all for small lots).
        sample = serials if count <= 10 else serials[:3] + serials[-3:]
        for s in sample:
            ddir = os.path.join(out, s)
            with self.subTest(serial=s):
                self.assertEqual(mode(ddir), 0o700)
                conf, env = device_env(ddir)
                self.assertEqual(conf["serial"], s)
                self.assertEqual(conf["class"], cls)
                if soft:
                    self.assertEqual(conf["key"], "file:" + os.path.join(ddir, "idev.key"))
                    self.assertEqual(mode(os.path.join(ddir, "idev.key")), 0o600)
                else:
                    self.assertTrue(conf["key"].startswith("pkcs11:token=%s;object=idev" % s))
                    self.assertEqual(mode(os.path.join(ddir, "pin")), 0o600)
                    self.assertEqual(mode(os.path.join(ddir, "tokens")), 0o700)
                self.assertEqual(mode(os.path.join(ddir, "device.conf")), 0o600)
                with open(os.path.join(ddir, "mfg-root.pem"), "rb") as f1, \
                        open(root, "rb") as f2:
                    self.assertEqual(f1.read(), f2.read())
                birth = os.path.join(ddir, "birth.pem")
                x = subprocess.run(["openssl", "x509", "-in", birth, "-noout", "-subject",
                                    "-enddate", "-nameopt", "RFC2253"],
                                   capture_output=True, text=True).stdout
                self.assertIn("CN=%s" % s, x)
                self.assertIn("O=%s" % NAME, x)
                self.assertIn("serialNumber=%s" % s, x)
                self.assertIn("9999", x.split("notAfter=")[1])
                der = subprocess.run(["openssl", "x509", "-in", birth, "-outform", "DER"],
                                     capture_output=True).stdout
                self.assertEqual(by_serial[s]["birth_cert_sha256"],
                                 hashlib.sha256(der).hexdigest())
                self.assertEqual(by_serial[s]["class"], cls)
                k = run(["key", "kid", conf["key"]], env=env)
                self.assertEqual(k.returncode, 0, k.stderr)
                self.assertEqual(by_serial[s]["kid"], k.stdout.decode().strip())
                pub = run(["key", "public", conf["key"]], env=env).stdout
                cert_pub = subprocess.run(["openssl", "x509", "-in", birth, "-noout",
                                           "-pubkey"], capture_output=True).stdout
                self.assertEqual(pub.strip(), cert_pub.strip())
        return serials

    def test_tokens_lot(self):
        self.check_lot(path("lot-tok"), 5, "infusion-pump", soft=False)
        self.assertIn(b"made 5 devices", STATE["make_tok"].stdout)
        self.assertIn(b"manifest.cose", STATE["make_tok"].stdout)

    def test_device_key_in_its_token(self):
        if not shutil.which("pkcs11-tool"):
            self.skipTest("pkcs11-tool not installed")
        s = device_dirs(path("lot-tok"))[0]
        ddir = path("lot-tok", s)
        with open(os.path.join(ddir, "pin")) as f:
            pin = f.read().strip()
        env = dict(os.environ, SOFTHSM2_CONF=os.path.join(ddir, "softhsm2.conf"))
        r = subprocess.run(["pkcs11-tool", "--module", MODULE, "--token-label", s, "--login",
                            "--pin", pin, "-O", "--type", "privkey"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("label:      idev", r.stdout)
        self.assertIn("never extractable", r.stdout)

    def test_soft_lot(self):
        self.check_lot(path("lot-soft"), 200, "sim.monitor", soft=True)
        self.assertIn(b"made 200 devices", STATE["make_soft"].stdout)
        # Not a terminal: a line per 10 %, no carriage returns.
        err = STATE["make_soft"].stderr
        self.assertNotIn(b"\r", err)
        self.assertIn(b"(10%)", err)
        self.assertIn(b"(100%)", err)

    def test_serials_never_repeat(self):
        a = set(device_dirs(path("lot-tok")))
        b = set(device_dirs(path("lot-soft")))
        self.assertEqual(len(a & b), 0)
        r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "2", "--class", "x",
                 "--out", path("lot-3"), "--soft"], env={"MEDTRUST_KEY_PASSPHRASE": PASS})
        self.assertEqual(r.returncode, 0, r.stderr)
        c = set(device_dirs(path("lot-3")))
        self.assertEqual(len(c), 2)
        self.assertEqual(len(c & (a | b)), 0)
        nums = sorted(int(s[-6:]) for s in a | b | c)
        self.assertEqual(len(nums), len(set(nums)))

    def test_prefix(self):
        r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "1", "--class", "x",
                 "--out", path("lot-p"), "--soft", "--prefix", "ACM-P7."],
                env={"MEDTRUST_KEY_PASSPHRASE": PASS})
        self.assertEqual(r.returncode, 0, r.stderr)
        (s,) = device_dirs(path("lot-p"))
        self.assertTrue(re.fullmatch(r"ACM-P7\.\d{6}", s), s)
        for bad in ("_x", "-x", "a_b", "x" * 27):
            r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "1", "--class", "x",
                     "--out", path("lot-bad"), "--soft", "--prefix", bad],
                    env={"MEDTRUST_KEY_PASSPHRASE": PASS})
            self.assertEqual(r.returncode, 64, bad)

    def test_soft_needs_passphrase(self):
        conf_before = open(path("mfg", "manufacturer.conf")).read()
        r = run(["mfg", "make", "--mfg", path("mfg"), "--count", "1", "--class", "x",
                 "--out", path("lot-nopass"), "--soft"])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"MEDTRUST_KEY_PASSPHRASE", r.stderr)
        self.assertFalse(os.path.exists(path("lot-nopass")))
        self.assertEqual(open(path("mfg", "manufacturer.conf")).read(), conf_before)

    def test_make_usage(self):
        base = ["mfg", "make", "--mfg", path("mfg"), "--class", "x", "--out", path("u")]
        for count in ("0", "-1", "x", "100001"):
            self.assertEqual(run(base + ["--count", count]).returncode, 64, count)
        self.assertEqual(run(["mfg", "make", "--mfg", path("mfg"), "--count", "1",
                              "--class", "bad class", "--out", path("u")]).returncode, 64)
        self.assertEqual(run(base).returncode, 64)


class VerifyManifest(unittest.TestCase):
    def test_flipped_byte_refused(self):
        src = path("lot-tok", "manifest.cose")
        with open(src, "rb") as f:
            data = bytearray(f.read())
        # A byte in the payload, one in the signature, one in the header.
        for pos in (len(data) // 2, len(data) - 5, 6):
            bad = bytearray(data)
            bad[pos] ^= 0x01
            p = path("bad-%d.cose" % pos)
            with open(p, "wb") as f:
                f.write(bad)
            r = run(["mfg", "verify-manifest", p, "--root", path("mfg", "root.pem")])
            with self.subTest(pos=pos):
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.startswith(b"refused: "), r.stderr)
                self.assertEqual(r.stdout, b"")

    def test_other_root_refused(self):
        r = run(["mfg", "verify-manifest", path("lot-tok", "manifest.cose"), "--root",
                 path("other", "root.pem")])
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith(b"refused: chain: "), r.stderr)
        self.assertEqual(r.stdout, b"")

    def test_usage_and_errors(self):
        m = path("lot-tok", "manifest.cose")
        self.assertEqual(run(["mfg", "verify-manifest", m]).returncode, 64)
        self.assertEqual(run(["mfg", "verify-manifest", "--root",
                              path("mfg", "root.pem")]).returncode, 64)
        self.assertEqual(run(["mfg", "verify-manifest", m, "--root",
                              path("nope.pem")]).returncode, 1)
        self.assertEqual(run(["mfg", "verify-manifest", path("nope.cose"), "--root",
                              path("mfg", "root.pem")]).returncode, 1)


class NoPlainKeys(unittest.TestCase):
    def test_modes_everywhere(self):
        """Directories 0700; secrets 0600; only certificates and the
        manifest readable by others."""
        public = {"root.pem", "manifest-signer.pem", "firmware-signer.pem", "birth.pem",
                  "mfg-root.pem", "manifest.cose"}
        for top in (path("mfg"), path("lot-tok"), path("lot-soft")):
            for d, dirs, files in os.walk(top):
                self.assertEqual(mode(d), 0o700, d)
                for name in files:
                    want = 0o644 if name in public else 0o600
                    self.assertEqual(mode(os.path.join(d, name)), want,
                                     os.path.join(d, name))

    def test_no_unencrypted_private_key(self):
        bad = []
        for top, _dirs, files in os.walk(STATE["tmp"]):
            for name in files:
                p = os.path.join(top, name)
                with open(p, "rb") as f:
                    data = f.read()
                if b"BEGIN PRIVATE KEY" in data or b"BEGIN EC PRIVATE KEY" in data:
                    bad.append(p)
        self.assertEqual(bad, [])
        key = path("lot-soft", device_dirs(path("lot-soft"))[0], "idev.key")
        with open(key, "rb") as f:
            self.assertIn(b"BEGIN ENCRYPTED PRIVATE KEY", f.read())


def main():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("medtrust binary not found at %s: skipped" % BIN)
        return 77
    if not (os.path.exists(MODULE) and shutil.which("openssl")):
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
