#!/usr/bin/python3
"""test_init_cli.py — drive `medtrust init` and `medtrust config check` the
way an operator creating a hub deployment does (docs/cli.md "medtrust init",
docs/operations.md "Creating a deployment"; threats I01-I03, J01).

What it proves (the deployment part of the hub issue):
  * init makes the expected files with the expected modes: DIR, tokens/,
    secrets/ 0700; PIN files, medtrust.conf, medtrust.db, the checkpoint
    file and softhsm2.conf 0600; the public PEM files 0644;
  * `openssl verify -CAfile pki/ca.pem` accepts the hub and broker TLS
    server certificates, the hub client certificate and the command signer,
    with the SANs of --hub-host/--broker-host and the right EKUs; the CA's
    subject carries --hospital; the CRL verifies, is empty and lasts 7 days;
  * every private key is in the token, sensitive and never extractable, with
    its role's usage (pkcs11-tool -O under the deployment's SOFTHSM2_CONF,
    the PIN read from secrets/hub.pin), and each key URI of medtrust.conf
    opens (`medtrust key public`) to the public key of its certificate;
  * the KEK is an AES-256 secret key, sensitive and never extractable, used
    only to wrap and unwrap;
  * `medtrust audit verify` passes on the new database with the audit public
    key and the outside checkpoint file; the first record is
    deployment.init with the CA fingerprint;
  * `medtrust config check` reads back every key init wrote;
  * init on the same DIR is refused (with and without --force) and changes
    nothing; a non-empty DIR needs --force; usage errors are 64;
  * no file in DIR is a "PRIVATE KEY" PEM or parses as a private key
    (`openssl pkey -in` fails on each), and no PIN appears on stdout.

Environment: MEDTRUST_BIN (default /work/main/build-init/medtrust); exits 77
when the binary, SoftHSM2, pkcs11-tool or openssl is missing.  Prints a
closing "N passed, M failed" line.
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

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build-init/medtrust")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
STATE = {}


def run(args, env=None, timeout=120):
    return subprocess.run(args, capture_output=True, env=env, timeout=timeout)


def mt(args, env=None):
    return run([BIN] + args, env=env)


def d(*names):
    return os.path.join(STATE["dir"], *names)


def tree(root):
    """{relative path: (mode, sha256 of contents or None)} of everything."""
    out = {}
    for base, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(base, n)
            st = os.lstat(p)
            h = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (stat.S_IMODE(st.st_mode), h)
    return out


def setUpModule():
    STATE["tmp"] = tempfile.mkdtemp(prefix="mt-init-cli-")
    STATE["dir"] = os.path.join(STATE["tmp"], "hub")
    r = mt(["init", STATE["dir"], "--hospital", "St. Mary's, Leeds",
            "--hub-host", "hub.example.org,10.1.2.3",
            "--broker-host", "mqtt.example.org,::1"])
    STATE["init"] = r
    if r.returncode != 0:
        raise RuntimeError("medtrust init: %r" % r.stderr)
    with open(d("secrets", "hub.pin")) as f:
        STATE["pin"] = f.read().strip()
    STATE["env"] = dict(os.environ, SOFTHSM2_CONF=d("softhsm2.conf"))
    r = mt(["config", "check", d("medtrust.conf")])
    if r.returncode != 0:
        raise RuntimeError("config check: %r" % r.stderr)
    STATE["conf"] = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())


def tearDownModule():
    if STATE.get("tmp"):
        shutil.rmtree(STATE["tmp"], ignore_errors=True)


class Files(unittest.TestCase):
    def test_modes(self):
        want = {
            "": 0o700, "tokens": 0o700, "secrets": 0o700, "pki": 0o755,
            "secrets/hub.pin": 0o600, "secrets/hub.so-pin": 0o600,
            "medtrust.conf": 0o600, "medtrust.db": 0o600, "audit.checkpoints": 0o600,
            "softhsm2.conf": 0o600,
        }
        for name in ("ca", "hub-tls", "broker-tls", "hub-client", "cmd", "crl",
                     "hub-kx.pub", "hub-audit.pub"):
            want["pki/%s.pem" % name] = 0o644
        for name, mode in want.items():
            with self.subTest(name=name):
                self.assertEqual(stat.S_IMODE(os.stat(d(name)).st_mode), mode)

    def test_everything_in_tokens_and_secrets_is_private(self):
        for sub in ("tokens", "secrets"):
            for base, dirs, files in os.walk(d(sub)):
                for n in dirs + files:
                    m = stat.S_IMODE(os.stat(os.path.join(base, n)).st_mode)
                    self.assertEqual(m & 0o077, 0, os.path.join(base, n))

    def test_pins_not_printed(self):
        with open(d("secrets", "hub.so-pin")) as f:
            so = f.read().strip()
        self.assertRegex(STATE["pin"], r"^[0-9a-f]{32}$")
        self.assertNotEqual(STATE["pin"], so)
        out = STATE["init"].stdout + STATE["init"].stderr
        for secret in (STATE["pin"], so):
            self.assertNotIn(secret.encode(), out)

    def test_no_private_key_outside_the_token(self):
        """Acceptance: a scan of DIR finds no unencrypted private key."""
        count = 0
        for base, _, files in os.walk(STATE["dir"]):
            for n in files:
                p = os.path.join(base, n)
                with open(p, "rb") as f:
                    data = f.read()
                self.assertNotIn(b"PRIVATE KEY", data, p)
                for form in ("PEM", "DER"):
                    r = run(["openssl", "pkey", "-inform", form, "-in", p, "-passin",
                             "pass:", "-noout"])
                    self.assertNotEqual(r.returncode, 0, (p, form))
                count += 1
        self.assertGreater(count, 20)


class Pki(unittest.TestCase):
    def text(self, name):
        r = run(["openssl", "x509", "-in", d("pki", name), "-noout", "-text"])
        self.assertEqual(r.returncode, 0)
        return r.stdout.decode()

    def test_chain_verifies(self):
        for name in ("hub-tls", "broker-tls", "hub-client", "cmd"):
            with self.subTest(cert=name):
                r = run(["openssl", "verify", "-x509_strict", "-CAfile", d("pki", "ca.pem"),
                         d("pki", name + ".pem")])
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_ca(self):
        t = self.text("ca.pem")
        self.assertIn("St. Mary's, Leeds medtrust operator CA", t)
        self.assertIn("CA:TRUE", t)
        r = run(["openssl", "x509", "-in", d("pki", "ca.pem"), "-noout", "-startdate",
                 "-enddate"])
        years = [int(y) for y in re.findall(rb" (\d{4}) GMT", r.stdout)]
        self.assertEqual(years[1] - years[0], 10)

    def test_sans_and_ekus(self):
        cases = {
            "hub-tls.pem": ("TLS Web Server Authentication",
                            ["DNS:hub.example.org", "IP Address:10.1.2.3"]),
            "broker-tls.pem": ("TLS Web Server Authentication",
                               ["DNS:mqtt.example.org", "IP Address:0:0:0:0:0:0:0:1"]),
            "hub-client.pem": ("TLS Web Client Authentication", ["CN = hub"]),
        }
        for name, (eku, names) in cases.items():
            with self.subTest(cert=name):
                t = self.text(name)
                self.assertIn(eku, t)
                self.assertIn("CA:FALSE", t)
                for n in names:
                    self.assertIn(n, t)
        t = self.text("cmd.pem")
        self.assertIn("Digital Signature", t)
        self.assertNotIn("TLS Web", t)

    def test_crl(self):
        r = run(["openssl", "crl", "-in", d("pki", "crl.pem"), "-CAfile", d("pki", "ca.pem"),
                 "-noout", "-text"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"No Revoked Certificates", r.stdout)
        self.assertIn(b"verify OK", r.stdout + r.stderr)


class Token(unittest.TestCase):
    def objects(self):
        r = run(["pkcs11-tool", "--module", MODULE, "--token-label", "medtrust-hub", "--login",
                 "--pin", STATE["pin"], "-O"], env=STATE["env"])
        self.assertEqual(r.returncode, 0, r.stderr)
        objs, cur = [], None
        for line in r.stdout.decode().splitlines():
            if not line.startswith(" "):
                cur = {"head": line}
                objs.append(cur)
            elif ":" in line:
                k, v = line.split(":", 1)
                cur[k.strip()] = v.strip()
        return objs

    def test_private_keys_in_token(self):
        objs = self.objects()
        privs = {o["label"]: o for o in objs if o["head"].startswith("Private Key Object")}
        self.assertEqual(set(privs), {"ca", "tls", "broker-tls", "kx", "cmd", "audit"})
        for label, o in privs.items():
            with self.subTest(key=label):
                self.assertIn("never extractable", o["Access"])
                self.assertIn("always sensitive", o["Access"])
                self.assertEqual(o["Usage"], "derive" if label == "kx" else "sign")

    def test_kek(self):
        secrets = [o for o in self.objects() if o["head"].startswith("Secret Key Object")]
        self.assertEqual(len(secrets), 1)
        o = secrets[0]
        self.assertEqual(o["label"], "kek")
        self.assertIn("AES", o["head"])
        self.assertIn("length 32", o["head"])  # bytes: AES-256
        self.assertIn("never extractable", o["Access"])
        self.assertIn("sensitive", o["Access"])
        self.assertEqual(o["Usage"].replace(" ", ""), "wrap,unwrap")

    def test_config_uris_open_to_the_certified_keys(self):
        pairs = {"ca_key": "ca.pem", "hub_tls_key": "hub-tls.pem",
                 "broker_tls_key": "broker-tls.pem", "cmd_key": "cmd.pem"}
        for key, cert in pairs.items():
            with self.subTest(key=key):
                r = mt(["key", "public", STATE["conf"][key]], env=STATE["env"])
                self.assertEqual(r.returncode, 0, r.stderr)
                c = run(["openssl", "x509", "-in", d("pki", cert), "-noout", "-pubkey"])
                self.assertEqual(r.stdout.strip(), c.stdout.strip())
        for key, pub in (("kx_key", "hub-kx.pub.pem"), ("audit_key", "hub-audit.pub.pem")):
            with self.subTest(key=key):
                r = mt(["key", "public", STATE["conf"][key]], env=STATE["env"])
                self.assertEqual(r.returncode, 0, r.stderr)
                with open(d("pki", pub), "rb") as f:
                    self.assertEqual(r.stdout.strip(), f.read().strip())


class Audit(unittest.TestCase):
    def test_verify(self):
        r = mt(["audit", "verify", "--db", d("medtrust.db"), "--hub-pub",
                d("pki", "hub-audit.pub.pem"), "--checkpoints", d("audit.checkpoints")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"^ok: [1-9]\d* records, [1-9]")

    def test_first_record(self):
        r = mt(["audit", "export", "--db", d("medtrust.db"), "--from", "1", "--to", "1"])
        self.assertEqual(r.returncode, 0, r.stderr)
        rec = json.loads(r.stdout.decode().splitlines()[0])
        self.assertEqual(rec["action"], "deployment.init")
        self.assertEqual(rec["actor"], "medtrust init")
        detail = rec["detail"] if isinstance(rec["detail"], dict) else json.loads(rec["detail"])
        fp = run(["openssl", "x509", "-in", d("pki", "ca.pem"), "-noout", "-fingerprint",
                  "-sha256"]).stdout.decode().split("=", 1)[1].strip()
        self.assertEqual(detail["ca_sha256"], fp.replace(":", "").lower())


class Config(unittest.TestCase):
    def test_round_trip(self):
        conf = STATE["conf"]
        self.assertEqual(conf["hospital"], "St. Mary's, Leeds")
        self.assertEqual(conf["db_path"], d("medtrust.db"))
        self.assertEqual(conf["hub_hosts"], "hub.example.org,10.1.2.3")
        for k in ("ca_key", "hub_tls_key", "broker_tls_key", "kx_key", "cmd_key",
                  "audit_key", "kek_key"):
            self.assertTrue(conf[k].startswith("pkcs11:token=medtrust-hub;object="), k)
            self.assertIn("pin-source=" + d("secrets", "hub.pin"), conf[k])
        for k in ("ca_cert", "hub_tls_cert", "broker_tls_cert", "hub_client_cert",
                  "cmd_cert", "hub_kx_pub", "audit_pub", "crl", "softhsm2_conf",
                  "audit_checkpoints"):
            self.assertTrue(os.path.isfile(conf[k]), k)
        # Every non-comment line of the file is a key the reader printed.
        with open(d("medtrust.conf")) as f:
            lines = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
        self.assertEqual(len(lines), len(conf))

    def test_refusals_name_the_line(self):
        p = os.path.join(STATE["tmp"], "bad.conf")
        for text, word in (("db_path /x\nbogus 1\n", b"line 2: unknown"),
                           ("db_path /x\ndb_path /y\n", b"line 2: configuration key given"),
                           ("# c\nhospital\n", b"line 2: configuration line")):
            with open(p, "w") as f:
                f.write(text)
            r = mt(["config", "check", p])
            self.assertEqual(r.returncode, 2)
            self.assertIn(word, r.stderr)
        self.assertEqual(mt(["config", "check", p + ".missing"]).returncode, 1)
        self.assertEqual(mt(["config", "check"]).returncode, 64)


class Rerun(unittest.TestCase):
    def test_rerun_refused_and_nothing_changes(self):
        before = tree(STATE["dir"])
        for extra in ([], ["--force"]):
            with self.subTest(extra=extra):
                r = mt(["init", STATE["dir"]] + extra)
                self.assertEqual(r.returncode, 1)
                self.assertIn(b"already holds a deployment", r.stderr)
        self.assertEqual(tree(STATE["dir"]), before)

    def test_non_empty_dir_needs_force(self):
        p = os.path.join(STATE["tmp"], "other")
        os.mkdir(p)
        with open(os.path.join(p, "README"), "w") as f:
            f.write("notes\n")
        r = mt(["init", p])
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"not empty", r.stderr)
        self.assertEqual(os.listdir(p), ["README"])
        r = mt(["init", p, "--force"])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(p, "README")) as f:
            self.assertEqual(f.read(), "notes\n")
        self.assertTrue(os.path.isfile(os.path.join(p, "medtrust.conf")))

    def test_usage(self):
        self.assertEqual(mt(["init"]).returncode, 64)
        self.assertEqual(mt(["init", "a", "b"]).returncode, 64)
        self.assertEqual(mt(["init", "--bogus", "x"]).returncode, 64)
        # Malformed names are usage errors caught before anything is made.
        p = os.path.join(STATE["tmp"], "never")
        for extra in (["--hub-host", "bad_host!"], ["--broker-host", "a,,b"],
                      ["--hospital", " leading blank"], ["--hospital", "x" * 40],
                      ["--hospital", "a+b"]):
            with self.subTest(extra=extra):
                self.assertEqual(mt(["init", p] + extra).returncode, 64)
                self.assertFalse(os.path.exists(p))
        r = mt(["init", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"usage: medtrust init DIR", r.stdout)
        r = mt(["config", "--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"medtrust config check FILE", r.stdout)


def main():
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        print("medtrust binary not found at %s: skipped" % BIN)
        return 77
    for tool in ("openssl", "pkcs11-tool"):
        if shutil.which(tool) is None:
            print("%s not installed: skipped" % tool)
            return 77
    if not os.path.exists(MODULE):
        print("SoftHSM2 not installed: skipped")
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
