#!/usr/bin/python3
"""test_est_openssl.py — acceptance tests of onboarding (protocol §1–§2,
docs/onboarding.md; threats B03, B11, D01, D02, D04, D06, D10, I01, J01)
against the real daemon, driven only by independent clients: `openssl`
(keys, CSRs, PKCS#7, verification, CRLs) and `curl` (HTTPS with the birth
or operational certificate as TLS client certificate), plus Python's
standard library and python3-cryptography for byte surgery.

Every class has its own deployment in a temporary directory (setUpClass):
`medtrust init HUB`, manufacturer "Acme Medical" (trusted) with a --soft lot
of 12 devices whose manifest is imported, medtrust.conf made permissive
(est_rate/est_burst 1000) except in RateLimit, and `medtrustd --port 0`.
tearDownClass stops the daemon with SIGTERM (must exit 0) and runs
`medtrust audit verify` over the chain (must exit 0).

What it proves:
  Acceptance
    * P1 simpleenroll with an openssl CSR (fresh P-256 ldev key, CN=serial)
      and curl with the birth certificate: 200, certs-only PKCS#7 (base64)
      holding one certificate that `openssl verify -CAfile ca.pem` accepts,
      subject CN=<serial> only, EKU clientAuth only, keyUsage
      digitalSignature only, ~30 days, the CSR's public key; audit
      est.enroll ok first_enrolment with the certificate's serial;
    * P1 /cacerts parses with `openssl pkcs7 -print_certs` and holds ca.pem;
    * P2 /mt/v1/onboard: every bundle field (device_id, broker, broker_ca =
      ca.pem, hub_kx = hub-kx.pub.pem's DER, command_cert, epoch ≥ 1,
      config); the same kx keeps the epoch, a new kx increments it; audit;
    * P2 simplereenroll with the operational certificate: a new certificate
      for the new key; `medtrust device show` says active;
    * I01 no unencrypted private key anywhere in HUB, MFG or LOT after
      onboarding (PEM markers; DER PKCS#8 via load_der_private_key on small
      binary files outside token stores); HUB/secrets/* and medtrust.conf
      are 0600.
  EnrolmentRefusals — each with HTTP status, "refused: " body and the audit
  record (action, outcome "refused", detail.reason):
    * D01 no client certificate (401 no_client_certificate); a birth
      certificate of an untrusted manufacturer (403 unknown_manufacturer); a
      serial in no imported manifest (403 not_in_manifest);
    * D01 manifest with a flipped signature byte, and a manifest of an
      untrusted manufacturer: `manifest import` exit 2 "refused",
      manifest.import.refused, none of their devices in the registry;
    * D02 a second trusted manufacturer whose lot re-uses a manifested
      serial (--prefix): its manifest is refused whole, and its device (a
      trusted birth certificate, same serial, other key) is refused 403
      "possible clone", reason clone;
    * B11 a CSR naming another device (403 csr_subject, nothing issued);
    * D04 a CSR whose signature does not verify (flipped byte; another
      public key spliced in): 400 csr_pop/csr_invalid; a CSR for the birth
      key (400 csr_birth_key);
    * H a 100 KB body (413), a 40 KB one (413 csr_too_large), garbage (400),
      the wrong content type (415);
    * simplereenroll with the birth certificate (403 birth_certificate);
      simpleenroll with the operational certificate (403
      operational_certificate); onboard without a certificate, with the
      wrong content type or a bad kx key;
    * D10 per identity: 12 quick enrolments of one device → 429 with
      Retry-After after the burst of 10, audit est.rate_limited.
  Revocation (with a revoke_hook)
    * B03 after `device revoke --reason keyCompromise`: crl.pem verifies
      against ca.pem, lists the certificate's serial, nextUpdate in the
      future, a higher CRL number; `openssl verify -crl_check` fails for the
      revoked certificate and passes for another device's; the hook ran
      with the device id and the reason; onboard and simplereenroll with
      the revoked certificate are refused 403 revoked;
    * D06 a revoked device enrolling again (403 revoked) and a
      decommissioned one (403 decommissioned, old certificate refused too,
      hook run with cessationOfOperation).
  RateLimit (est_rate 1, est_burst 5)
    * D10 20 quick requests from one source: ≥ 10 answered 429 with
      Retry-After and "refused: ", one http.rate_limited audit record;
      /healthz is never limited; the bucket refills.

Environment: MEDTRUST_BIN (medtrustd is taken from the same directory),
MT_BUILD_DIR; exits 77 when a binary, SoftHSM2, openssl or curl is missing.
Prints a closing "N passed, M failed" line.
"""
import base64
import calendar
import http.client
import json
import os
import re
import shutil
import ssl
import stat
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onboard_util as U  # noqa: E402

PERMISSIVE = ("est_rate 1000", "est_burst 1000")
ENROLL = "/.well-known/est/simpleenroll"
REENROLL = "/.well-known/est/simplereenroll"
ONBOARD = "/mt/v1/onboard"
P7_CT = "application/pkcs7-mime; smime-type=certs-only"


def serial(n):
    return "acme-medical-%06d" % n


def openssl_time(s):
    """'Nov 28 08:41:14 2026 GMT' → Unix time."""
    return calendar.timegm(time.strptime(s.strip(), "%b %d %H:%M:%S %Y %Z"))


class HubCase(unittest.TestCase):
    """A deployment with Acme's lot LOT (12 devices) imported and medtrustd up."""
    CONF = PERMISSIVE
    PREFIX = "mt-onboard-"

    @classmethod
    def setUpClass(cls):
        cls.d = U.Deployment(cls.PREFIX, cls.conf_lines())
        try:
            cls.d.mfg_init("MFG", U.ACME)
            cls.serials = cls.d.mfg_make("MFG", "LOT", 12)
            cls.d.trust("MFG")
            r = cls.d.import_manifest(cls.d.p("LOT", "manifest.cose"))
            if r.returncode != 0:
                raise RuntimeError("manifest import: %r" % r.stderr)
            cls.prepare()
            cls.d.start()
        except BaseException:
            cls.d.stop()
            cls.d.cleanup()
            raise

    @classmethod
    def conf_lines(cls):
        return cls.CONF

    @classmethod
    def prepare(cls):
        """More set-up before the daemon starts."""

    @classmethod
    def tearDownClass(cls):
        try:
            rc = cls.d.stop()
            if rc != 0:
                raise AssertionError("medtrustd exited %r on SIGTERM:\n%s" %
                                     (rc, cls.d.daemon_log()))
            # J01: the audit chain of the whole run verifies.
            v = cls.d.audit_verify()
            if v.returncode != 0:
                raise AssertionError("medtrust audit verify: exit %d: %s %s" %
                                     (v.returncode, v.stdout, v.stderr))
        finally:
            cls.d.cleanup()

    # -- assertions shared by the classes --
    def assertRefused(self, r, status, words=None):
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.body.startswith(b"refused: "), r)
        self.assertTrue(r.headers.get("content-type", "").startswith("text/plain"), r)
        for w in words or ():
            self.assertIn(w, r.text)

    def assertAudited(self, since, action, reasons, subject=None, outcome="refused"):
        """Exactly one record of `action` since `since`; returns it."""
        if isinstance(reasons, str):
            reasons = (reasons,)
        recs = self.d.audit_since(since, action)
        self.assertEqual(len(recs), 1, "want one %s record after seq %d, got %r (all: %r)" %
                         (action, since, recs, self.d.audit_since(since)))
        a = recs[0]
        self.assertEqual(a["outcome"], outcome, a)
        self.assertIn(a["detail"].get("reason"), reasons, a)
        if subject is not None:
            self.assertEqual(a["subject"], subject, a)
            self.assertEqual(a["actor"], "device:%s" % subject, a)
        return a

    def assertEnrolRefused(self, lot, s, body, status, reason, words=(), ctype=None):
        seq = self.d.audit_seq()
        kw = {} if ctype is None else {"ctype": ctype}
        r = self.d.enroll_raw(lot, s, body, **kw)
        self.assertRefused(r, status, words)
        return r, self.assertAudited(seq, "est.enroll.refused", reason, subject=s)


# ---------------------------------------------------------------------------

class Acceptance(HubCase):
    PREFIX = "mt-onboard-acc-"

    def test_P1_simpleenroll_with_openssl_csr(self):
        s = serial(1)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        csr = U.csr_der(ldev, s)
        csr_b64 = self.d.scratch("csr.b64")
        with open(csr_b64, "wb") as f:
            f.write(U.ossl(["base64"], data=csr).stdout)  # openssl's own base64
        with open(csr_b64, "rb") as f:
            body = f.read()
        seq = self.d.audit_seq()
        t0 = int(time.time())
        r = self.d.enroll_raw("LOT", s, body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), P7_CT)
        # RFC 7030 §4.1.3: a certs-only PKCS#7, base64.
        der = U.ossl(["base64", "-d"], data=r.body).stdout
        p7 = U.ossl(["pkcs7", "-inform", "DER", "-print"], data=der).stdout.decode()
        self.assertIn("pkcs7-signedData", p7)
        self.assertRegex(p7, r"signer_info:\s*<EMPTY>")  # certs-only: no signers
        pem = U.ossl(["pkcs7", "-inform", "DER", "-print_certs"], data=der).stdout
        self.assertEqual(pem.count(b"BEGIN CERTIFICATE"), 1, pem)
        op = self.d.scratch("op.pem")
        with open(op, "wb") as f:
            f.write(pem)
        v = U.ossl(["verify", "-CAfile", self.d.ca, "-purpose", "sslclient", op], check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(b": OK", v.stdout)
        self.assertEqual(U.x509(op, "-subject").strip(), "subject=CN=%s" % s)
        ext = U.x509(op, "-ext", "extendedKeyUsage,keyUsage,basicConstraints")
        self.assertRegex(ext, r"X509v3 Key Usage: critical\n\s+Digital Signature\n")
        self.assertRegex(ext, r"X509v3 Extended Key Usage: ?(critical)?\n"
                              r"\s+TLS Web Client Authentication\n")
        self.assertNotIn("CA:TRUE", ext)
        dates = dict(l.split("=", 1) for l in U.x509(op, "-dates").splitlines())
        nb, na = openssl_time(dates["notBefore"]), openssl_time(dates["notAfter"])
        self.assertLessEqual(nb, t0 + 1)
        self.assertLess(abs((na - t0) - 30 * 86400), 3600, dates)
        self.assertEqual(U.ossl(["x509", "-in", op, "-noout", "-pubkey"]).stdout,
                         U.ossl(["pkey", "-in", ldev, "-pubout"]).stdout)
        a = self.assertAudited(seq, "est.enroll", "first_enrolment", subject=s, outcome="ok")
        self.assertEqual(int(a["detail"]["cert_serial"], 16), U.cert_serial_int(op))
        self.assertEqual(a["detail"]["not_after"], na)

    def test_P1_cacerts(self):
        r = self.d.curl("/.well-known/est/cacerts")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/pkcs7-mime"))
        pem = U.p7_b64_to_pem(r.body)
        self.assertEqual(pem.count(b"BEGIN CERTIFICATE"), 1, pem)
        self.assertEqual(U.pem_text_to_der(pem), U.pem_to_der(self.d.ca))

    def test_P2_onboard_bundle_and_epochs(self):
        s = serial(2)
        ldev, op, _ = self.d.enroll("LOT", s)
        kx1 = U.spki_der(U.gen_p256(self.d.scratch("kx1.key")))
        seq = self.d.audit_seq()
        r = self.d.onboard(op, ldev, kx1)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))
        b = json.loads(r.body)
        self.assertEqual(b["device_id"], s)
        self.assertRegex(b["broker"], r"^mqtts://[^/:]+:\d+$")
        self.assertEqual(U.pem_text_to_der(b["broker_ca"].encode()), U.pem_to_der(self.d.ca))
        self.assertEqual(base64.b64decode(b["hub_kx"], validate=True),
                         U.spki_der(self.d.p("HUB", "pki", "hub-kx.pub.pem"), public=True))
        cmd = self.d.scratch("cmd.pem")
        with open(cmd, "w") as f:
            f.write(b["command_cert"])
        self.assertEqual(U.pem_to_der(cmd), U.pem_to_der(self.d.p("HUB", "pki", "cmd.pem")))
        v = U.ossl(["verify", "-CAfile", self.d.ca, cmd], check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIsInstance(b["epoch"], int)
        self.assertNotIsInstance(b["epoch"], bool)
        self.assertGreaterEqual(b["epoch"], 1)
        self.assertIsInstance(b["config"], dict)
        a = self.assertAudited(seq, "onboard", "bundle", subject=s, outcome="ok")
        self.assertEqual(a["detail"]["epoch"], b["epoch"])
        # The same kx again keeps the epoch; a new kx moves it on by one.
        r2 = self.d.onboard(op, ldev, kx1)
        self.assertEqual(r2.status, 200, r2)
        self.assertEqual(json.loads(r2.body)["epoch"], b["epoch"])
        kx2 = U.spki_der(U.gen_p256(self.d.scratch("kx2.key")))
        r3 = self.d.onboard(op, ldev, kx2)
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(json.loads(r3.body)["epoch"], b["epoch"] + 1)
        dev = self.d.device(s)
        self.assertEqual(dev["status"], "active")
        self.assertEqual(dev["epoch"], b["epoch"] + 1)

    def test_P2_simplereenroll_and_device_active(self):
        s = serial(3)
        ldev, op, _ = self.d.enroll("LOT", s)
        ldev2 = U.gen_p256(self.d.scratch("ldev2.key"))
        seq = self.d.audit_seq()
        r = self.d.curl(REENROLL, body=U.b64(U.csr_der(ldev2, s)), ctype="application/pkcs10",
                        cert=op, key=ldev)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), P7_CT)
        op2 = self.d.scratch("op2.pem")
        with open(op2, "wb") as f:
            f.write(U.p7_b64_to_pem(r.body))
        v = U.ossl(["verify", "-CAfile", self.d.ca, op2], check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertNotEqual(U.cert_serial_int(op2), U.cert_serial_int(op))
        self.assertEqual(U.x509(op2, "-subject").strip(), "subject=CN=%s" % s)
        self.assertEqual(U.ossl(["x509", "-in", op2, "-noout", "-pubkey"]).stdout,
                         U.ossl(["pkey", "-in", ldev2, "-pubout"]).stdout)
        a = self.assertAudited(seq, "est.reenroll", "renewal", subject=s, outcome="ok")
        self.assertEqual(int(a["detail"]["cert_serial"], 16), U.cert_serial_int(op2))
        dev = self.d.device(s)
        self.assertEqual(dev["status"], "active")
        self.assertTrue(dev["enrolled"])
        # The renewed certificate works for onboarding.
        kx = U.spki_der(U.gen_p256(self.d.scratch("kx.key")))
        r = self.d.onboard(op2, ldev2, kx)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.d.device(s)["status"], "active")

    def test_B11_subject_forced_from_birth_identity(self):
        s = serial(6)
        key = U.gen_p256(self.d.scratch("ldev.key"))

        def csr(subj, *ext):
            args = ["req", "-new", "-key", key, "-subj", subj, "-outform", "DER"]
            for e in ext:
                args += ["-addext", e]
            return U.ossl(args).stdout

        # Two CNs (one of them another device's): refused.
        for subj in ("/CN=%s/CN=%s" % (s, serial(7)), "/CN=%s/CN=%s" % (serial(7), s)):
            with self.subTest(subj):
                self.assertEnrolRefusedHere(s, csr(subj), 400, "csr_invalid")
        # Requested extensions (CA, a server name, serverAuth): refused.
        self.assertEnrolRefusedHere(s, csr("/CN=%s" % s, "basicConstraints=critical,CA:TRUE",
                                           "subjectAltName=DNS:evil.example",
                                           "extendedKeyUsage=serverAuth"),
                                    400, "csr_request")
        # Other subject attributes are not copied: the certificate is CN=<serial>.
        r = self.d.enroll_raw("LOT", s, U.b64(csr("/O=Evil Corp/OU=x/CN=%s" % s)))
        self.assertEqual(r.status, 200, r)
        op = self.d.scratch("op.pem")
        with open(op, "wb") as f:
            f.write(U.p7_b64_to_pem(r.body))
        self.assertEqual(U.x509(op, "-subject").strip(), "subject=CN=%s" % s)
        self.assertNotIn("Subject Alternative Name", U.x509(op, "-text"))

    def assertEnrolRefusedHere(self, s, der, status, reason):
        seq = self.d.audit_seq()
        r = self.d.enroll_raw("LOT", s, U.b64(der))
        self.assertRefused(r, status, ["CSR refused"])
        self.assertAudited(seq, "est.enroll.refused", reason, subject=s)

    def test_D02_fresh_enrolment_supersedes_old_certificate(self):
        """Enrolling again with the birth certificate revokes the earlier
        operational certificate (one live identity), at the hub at once and
        in crl.pem within B03's 5 s."""
        s = serial(5)
        ldev1, op1, _ = self.d.enroll("LOT", s)
        seq = self.d.audit_seq()
        ldev2, op2, _ = self.d.enroll("LOT", s)
        a = self.assertAudited(seq, "est.enroll", "re-enrolment", subject=s, outcome="ok")
        self.assertEqual(a["detail"]["superseded"], 1)
        self.assertNotEqual(U.cert_serial_int(op1), U.cert_serial_int(op2))
        kx = U.spki_der(U.gen_p256(self.d.scratch("kx.key")))
        seq = self.d.audit_seq()
        r = self.d.onboard(op1, ldev1, kx)
        self.assertRefused(r, 403, ["revoked"])
        self.assertAudited(seq, "onboard.refused", "revoked", subject=s)
        self.assertEqual(self.d.onboard(op2, ldev2, kx).status, 200)
        # The superseded certificate must reach crl.pem too (the broker
        # reads it): the superseding enrolment signs a new CRL at once.
        crl = self.d.p("HUB", "pki", "crl.pem")
        deadline = time.monotonic() + 6
        while True:
            v = U.ossl(["verify", "-crl_check", "-CRLfile", crl, "-CAfile", self.d.ca, op1],
                       check=False)
            if v.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertNotEqual(v.returncode, 0, "superseded certificate %x still passes "
                            "openssl verify -crl_check after 6 s" % U.cert_serial_int(op1))
        self.assertIn(b"revoked", v.stdout + v.stderr)

    def test_I01_no_unencrypted_private_key_in_deployment(self):
        from cryptography.hazmat.primitives.serialization import load_der_private_key
        # After init and an onboarding.
        s = serial(4)
        ldev, op, _ = self.d.enroll("LOT", s)
        r = self.d.onboard(op, ldev, U.spki_der(U.gen_p256(self.d.scratch("kx.key"))))
        self.assertEqual(r.status, 200, r)
        plain = (b"BEGIN PRIVATE KEY", b"BEGIN EC PRIVATE KEY", b"BEGIN RSA PRIVATE KEY")
        bad, checked, encrypted = [], 0, 0
        for top in (self.d.p("HUB"), self.d.p("MFG"), self.d.p("LOT")):
            for base, _dirs, files in os.walk(top):
                in_tokens = "/tokens" in base[len(self.d.tmp):] + "/"
                for name in files:
                    p = os.path.join(base, name)
                    if not stat.S_ISREG(os.lstat(p).st_mode):
                        continue
                    with open(p, "rb") as f:
                        data = f.read()
                    checked += 1
                    for m in plain:
                        if m in data:
                            bad.append((p, m))
                    if b"BEGIN ENCRYPTED PRIVATE KEY" in data:
                        encrypted += 1
                    # DER PKCS#8 / SEC1 without a password?  (SoftHSM's
                    # token files hold its own encrypted objects: skipped.)
                    if in_tokens or len(data) > 65536 or not data.startswith(b"\x30"):
                        continue
                    try:
                        load_der_private_key(data, password=None)
                        bad.append((p, "DER private key"))
                    except Exception:
                        pass
        self.assertEqual(bad, [])
        self.assertGreater(checked, 20)
        self.assertEqual(encrypted, 12)  # the --soft lot's idev.key files
        for name in os.listdir(self.d.p("HUB", "secrets")):
            p = self.d.p("HUB", "secrets", name)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, p)
        self.assertEqual(stat.S_IMODE(os.stat(self.d.conf).st_mode), 0o600)


# ---------------------------------------------------------------------------

class EnrolmentRefusals(HubCase):
    PREFIX = "mt-onboard-ref-"

    @classmethod
    def prepare(cls):
        d = cls.d
        # Untrusted manufacturer and its lot.
        d.mfg_init("OTHER", "Other Corp")
        cls.other = d.mfg_make("OTHER", "OLOT", 2)
        # Acme lots whose manifests are not imported: LOT2 (never), LOT3
        # (only a badly signed copy is offered).
        cls.lot2 = d.mfg_make("MFG", "LOT2", 2)
        cls.lot3 = d.mfg_make("MFG", "LOT3", 2)
        with open(d.p("LOT3", "manifest.cose"), "rb") as f:
            m = bytearray(f.read())
        m[-3] ^= 0x01  # inside the 64-byte signature that ends the COSE_Sign1
        with open(d.p("LOT3", "manifest-bad.cose"), "wb") as f:
            f.write(m)
        # A second TRUSTED manufacturer whose lot re-uses Acme's serial 000001.
        d.mfg_init("TWIN", "Twin Devices")
        cls.twin = d.mfg_make("TWIN", "TLOT", 1, prefix="acme-medical-")
        assert cls.twin == [serial(1)], cls.twin
        d.trust("TWIN")

    # -- D01 --------------------------------------------------------------
    def test_D01_no_birth_cert(self):
        seq = self.d.audit_seq()
        r = self.d.curl(ENROLL, body=b"AAAA", ctype="application/pkcs10")
        self.assertRefused(r, 401, ["birth certificate"])
        a = self.assertAudited(seq, "est.enroll.refused", "no_client_certificate")
        self.assertEqual(a["actor"], "ip:127.0.0.1")
        self.assertEqual(a["detail"]["path"], ENROLL)

    def test_D01_unknown_manufacturer(self):
        s = self.other[0]
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        self.assertEnrolRefused("OLOT", s, U.b64(U.csr_der(ldev, s)), 403,
                                "unknown_manufacturer", ["trusted manufacturer"])
        self.assertNotIn(s, [x["id"] for x in self.d.devices()])

    def test_D01_serial_not_in_manifest(self):
        s = self.lot2[0]
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        self.assertEnrolRefused("LOT2", s, U.b64(U.csr_der(ldev, s)), 403, "not_in_manifest",
                                ["no imported manifest"])

    def test_D01_manifest_bad_signature_refused(self):
        seq = self.d.audit_seq()
        r = self.d.import_manifest(self.d.p("LOT3", "manifest-bad.cose"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"refused", r.stderr)
        a = self.assertAudited(seq, "manifest.import.refused",
                               self._any_reason(seq, "manifest.import.refused"))
        self.assertIn("manifest-bad.cose", a["subject"])
        ids = [x["id"] for x in self.d.devices()]
        for s in self.lot3:
            self.assertNotIn(s, ids)
        # ... and so its devices cannot enrol.
        s = self.lot3[0]
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        self.assertEnrolRefused("LOT3", s, U.b64(U.csr_der(ldev, s)), 403, "not_in_manifest")

    def _any_reason(self, seq, action):
        """The reason word(s) of the one `action` record since seq (manifest
        refusals carry a sentence, not a word)."""
        recs = self.d.audit_since(seq, action)
        return tuple(x["detail"].get("reason") for x in recs) or ("<none>",)

    def test_D01_manifest_untrusted_manufacturer_refused(self):
        seq = self.d.audit_seq()
        before = self.d.devices()
        r = self.d.import_manifest(self.d.p("OLOT", "manifest.cose"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.startswith(b"refused: "), r.stderr)
        self.assertAudited(seq, "manifest.import.refused",
                           self._any_reason(seq, "manifest.import.refused"))
        after = self.d.devices()
        self.assertEqual(len(after), len(before))
        for s in self.other:
            self.assertNotIn(s, [x["id"] for x in after])

    # -- D02 --------------------------------------------------------------
    def test_D02_clone_manifest_conflict_refused_whole(self):
        s = serial(1)
        before = self.d.device(s)
        seq = self.d.audit_seq()
        r = self.d.import_manifest(self.d.p("TLOT", "manifest.cose"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertTrue(r.stderr.startswith(b"refused: "), r.stderr)
        self.assertAudited(seq, "manifest.import.refused",
                           self._any_reason(seq, "manifest.import.refused"))
        after = self.d.device(s)
        for k in ("manufacturer", "manifest", "birth_kid", "status"):
            self.assertEqual(after[k], before[k], k)

    def test_D02_clone_same_serial_other_key(self):
        s = serial(1)
        # A birth certificate from a trusted root, for a manifested serial,
        # but another key than the manifest's.
        v = U.ossl(["verify", "-CAfile", self.d.p("TWIN", "root.pem"),
                    self.d.p("TLOT", s, "birth.pem")], check=False)
        self.assertEqual(v.returncode, 0)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        _r, a = self.assertEnrolRefused("TLOT", s, U.b64(U.csr_der(ldev, s)), 403, "clone",
                                        ["possible clone", s])
        self.assertIn("birth_kid", a["detail"])
        self.assertNotEqual(a["detail"]["birth_kid"], self.d.device(s)["birth_kid"])
        dev = self.d.device(s)
        self.assertFalse(dev["enrolled"])
        self.assertEqual(dev["cert_serial"], "")

    # -- B11 / D04: the CSR -------------------------------------------------
    def test_B11_csr_subject_names_another_device(self):
        s, other = serial(2), serial(3)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        self.assertEnrolRefused("LOT", s, U.b64(U.csr_der(ldev, other)), 403, "csr_subject",
                                [other, s])
        self.assertEqual(self.d.device(s)["status"], "manifested")
        self.assertEqual(self.d.device(other)["status"], "manifested")

    def test_D04_csr_signed_by_another_key(self):
        s = serial(3)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        good = U.csr_der(ldev, s)
        # (a) one byte of the signature flipped (its last byte: DER stays valid)
        flipped = bytearray(good)
        flipped[-1] ^= 0x01
        # (b) another key's SubjectPublicKeyInfo spliced into the request
        spki = U.spki_der(ldev)
        other = U.spki_der(U.gen_p256(self.d.scratch("other.key")))
        self.assertEqual(good.count(spki), 1)
        spliced = good.replace(spki, other)
        for name, der in (("flipped", bytes(flipped)), ("spliced", spliced)):
            with self.subTest(name):
                self.assertEnrolRefused("LOT", s, U.b64(der), 400, ("csr_pop", "csr_invalid"),
                                        ["CSR refused"])
        self.assertEqual(self.d.device(s)["status"], "manifested")

    def test_D04_csr_key_is_birth_key(self):
        s = serial(4)
        _cert, key, pw = self.d.birth("LOT", s)
        der = U.csr_der(key, s, passin="pass:" + pw)
        self.assertEnrolRefused("LOT", s, U.b64(der), 400, "csr_birth_key", ["birth key"])

    def test_H_csr_oversized_100k_413(self):
        # A body over the transport's body_max (64 KiB) is refused by the
        # HTTP layer before the handler; its refusal callback
        # (mt_hub_refused) audits it like any other refusal.
        s = serial(5)
        body = U.b64(os.urandom(75 * 1024))  # 100 KB of base64
        self.assertGreater(len(body), 100 * 1024)
        seq = self.d.audit_seq()
        r = self.d.enroll_raw("LOT", s, body)
        self.assertEqual(r.status, 413, r)
        recs = self.d.audit_since(seq)
        self.assertEqual([(a["action"], a["outcome"], a["detail"].get("reason"))
                          for a in recs],
                         [("est.enroll.refused", "refused", "csr_too_large")],
                         "a 100 KB enrolment body left no audit record: %r" % (r,))
        self.assertTrue(r.body.startswith(b"refused: "), r)

    def test_H_csr_oversized_40k_413(self):
        s = serial(5)
        body = U.b64(os.urandom(30 * 1024))  # 40 KB: under the transport's limit
        self.assertEnrolRefused("LOT", s, body, 413, "csr_too_large", ["CSR over"])

    def test_H_csr_garbage_400(self):
        s = serial(5)
        self.assertEnrolRefused("LOT", s, b"this is not base64 at all!\n", 400,
                                "csr_not_base64", ["base64"])
        self.assertEnrolRefused("LOT", s, U.b64(os.urandom(300)), 400,
                                ("csr_invalid", "csr_request"), ["CSR refused"])

    def test_H_csr_wrong_content_type_415(self):
        s = serial(6)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        for ct in ("application/json", "text/plain"):
            with self.subTest(ct):
                self.assertEnrolRefused("LOT", s, U.b64(U.csr_der(ldev, s)), 415,
                                        "content_type", ["application/pkcs10"], ctype=ct)

    def test_B11_reenroll_csr_subject_names_another_device(self):
        s, other = serial(12), serial(11)
        ldev, op, _ = self.d.enroll("LOT", s)
        ldev2 = U.gen_p256(self.d.scratch("ldev2.key"))
        seq = self.d.audit_seq()
        r = self.d.curl(REENROLL, body=U.b64(U.csr_der(ldev2, other)),
                        ctype="application/pkcs10", cert=op, key=ldev)
        self.assertRefused(r, 403, [other])
        self.assertAudited(seq, "est.reenroll.refused", "csr_subject", subject=s)

    def test_D04_reenroll_csr_key_is_birth_key(self):
        """Renewal may change the ldev key, but never to the birth key."""
        s = serial(8)
        ldev, op, _ = self.d.enroll("LOT", s)
        _cert, bkey, pw = self.d.birth("LOT", s)
        seq = self.d.audit_seq()
        r = self.d.curl(REENROLL, body=U.b64(U.csr_der(bkey, s, passin="pass:" + pw)),
                        ctype="application/pkcs10", cert=op, key=ldev)
        self.assertRefused(r, 400, ["birth key"])
        self.assertAudited(seq, "est.reenroll.refused", "csr_birth_key", subject=s)

    def test_D01_self_made_birth_certificate(self):
        """A self-signed certificate naming a manifested serial (the clone an
        outsider can make) is an unknown manufacturer; one whose CN is no
        device id is unusable."""
        s = serial(6)
        key = U.gen_p256(self.d.scratch("fake.key"))
        for cn, status, reason in ((s, 403, "unknown_manufacturer"),
                                   ("not a device id", 401, "bad_certificate")):
            with self.subTest(cn):
                cert = self.d.scratch("fake.pem")
                U.ossl(["req", "-x509", "-new", "-key", key, "-subj",
                        "/CN=%s/serialNumber=%s" % (cn, cn), "-days", "2",
                        "-addext", "extendedKeyUsage=clientAuth", "-out", cert])
                seq = self.d.audit_seq()
                r = self.d.curl(ENROLL, body=U.b64(U.csr_der(key, cn)),
                                ctype="application/pkcs10", cert=cert, key=key)
                self.assertRefused(r, status)
                self.assertAudited(seq, "est.enroll.refused", reason,
                                   subject=s if status == 403 else None)
        self.assertEqual(self.d.device(s)["status"], "manifested")

    # -- the wrong certificate for the endpoint ------------------------------
    def test_reenroll_with_birth_certificate(self):
        s = serial(7)
        cert, key, pw = self.d.birth("LOT", s)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        seq = self.d.audit_seq()
        r = self.d.curl(REENROLL, body=U.b64(U.csr_der(ldev, s)), ctype="application/pkcs10",
                        cert=cert, key=key, keypass=pw)
        self.assertRefused(r, 403, ["operational certificate"])
        self.assertAudited(seq, "est.reenroll.refused", "birth_certificate", subject=s)
        self.assertEqual(self.d.device(s)["status"], "manifested")

    def test_enroll_with_operational_certificate(self):
        s = serial(8)
        ldev, op, _ = self.d.enroll("LOT", s)
        seq = self.d.audit_seq()
        r = self.d.curl(ENROLL, body=U.b64(U.csr_der(ldev, s)), ctype="application/pkcs10",
                        cert=op, key=ldev)
        self.assertRefused(r, 403, ["simplereenroll"])
        self.assertAudited(seq, "est.enroll.refused", "operational_certificate", subject=s)

    def test_onboard_refusals(self):
        s = serial(9)
        ldev, op, _ = self.d.enroll("LOT", s)
        kx = U.spki_der(U.gen_p256(self.d.scratch("kx.key")))
        body = json.dumps({"kx": base64.b64encode(kx).decode()}).encode()
        cases = [
            ("no certificate", dict(body=body, ctype="application/json"), 401,
             "no_client_certificate", None),
            ("birth certificate", dict(body=body, ctype="application/json",
                                       cert=self.d.birth("LOT", s)[0],
                                       key=self.d.birth("LOT", s)[1], keypass=U.PASS),
             403, "birth_certificate", s),
            ("content type", dict(body=body, ctype="application/pkcs10", cert=op, key=ldev),
             415, "content_type", s),
            ("not json", dict(body=b"{kx:", ctype="application/json", cert=op, key=ldev),
             400, "body", s),
            ("extra member", dict(body=json.dumps({"kx": base64.b64encode(kx).decode(),
                                                   "x": 1}).encode(),
                                  ctype="application/json", cert=op, key=ldev),
             400, "body", s),
            ("bad kx", dict(body=b'{"kx":"AAAA"}', ctype="application/json", cert=op,
                            key=ldev), 400, "kx_key", s),
        ]
        for name, kw, status, reason, subj in cases:
            with self.subTest(name):
                seq = self.d.audit_seq()
                r = self.d.curl(ONBOARD, **kw)
                self.assertRefused(r, status)
                self.assertAudited(seq, "onboard.refused", reason, subject=subj)
        self.assertEqual(self.d.device(s)["epoch"], 0)

    # -- D10 per identity ------------------------------------------------------
    def test_D10_rate_limit_per_identity(self):
        # 12 quick, valid enrolments of one device: the burst of 10 passes
        # (each one supersedes the last), then 429.
        s = serial(10)
        body = U.b64(U.csr_der(U.gen_p256(self.d.scratch("ldev.key")), s))
        seq = self.d.audit_seq()
        got = []
        for _ in range(12):
            got.append(self.d.enroll_raw("LOT", s, body))
        codes = [r.status for r in got]
        self.assertEqual(codes[:10], [200] * 10, codes)
        self.assertEqual(codes[10:], [429, 429], codes)
        for r in got[10:]:
            self.assertTrue(r.body.startswith(b"refused: "), r)
            self.assertRegex(r.headers.get("retry-after", ""), r"^\d+$", r)
        recs = self.d.audit_since(seq, "est.rate_limited")
        self.assertEqual(len(recs), 1, recs)  # the first of a run, not every one
        self.assertEqual(recs[0]["outcome"], "refused")
        self.assertEqual(recs[0]["subject"], s)
        self.assertEqual(recs[0]["detail"]["reason"], "identity")
        self.assertEqual(recs[0]["detail"]["refused_in_a_row"], 1)
        # Another device is not affected.
        r = self.d.enroll_raw("LOT", serial(11), b"!", ctype="application/pkcs10")
        self.assertEqual(r.status, 400, r)

    def test_D10_identity_budget_not_spendable_by_a_stranger(self):
        # Anyone can make a self-signed certificate naming a device; such
        # certificates must not spend that device's enrolment budget (10,
        # then one per 6 s) and lock the genuine device out: the identity
        # bucket counts only birth certificates of trusted manufacturers.
        victim = serial(12)
        key = U.gen_p256(self.d.scratch("stranger.key"))
        cert = self.d.scratch("stranger.pem")
        U.ossl(["req", "-x509", "-new", "-key", key, "-subj", "/CN=%s" % victim, "-days", "2",
                "-out", cert])
        codes = [self.d.curl(ENROLL, body=b"!", ctype="application/pkcs10", cert=cert,
                             key=key).status for _ in range(12)]
        self.assertTrue(set(codes) <= {403, 429}, codes)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        r = self.d.enroll_raw("LOT", victim, U.b64(U.csr_der(ldev, victim)))
        self.assertEqual(r.status, 200, "the genuine %s was locked out by a stranger's "
                         "self-signed certificate: %r (stranger got %r)" % (victim, r, codes))


# ---------------------------------------------------------------------------

class Revocation(HubCase):
    PREFIX = "mt-onboard-rev-"

    @classmethod
    def conf_lines(cls):
        # The hook (made in setUpClass) appends "<device> <reason>" to hook.out.
        cls.hook_out = os.path.join(cls.hook_dir, "hook.out")
        return PERMISSIVE + ("revoke_hook %s" % cls.hook,)

    @classmethod
    def setUpClass(cls):
        cls.hook_dir = tempfile.mkdtemp(prefix="mt-onboard-hook-")
        cls.hook = os.path.join(cls.hook_dir, "revoke-hook.sh")
        with open(cls.hook, "w") as f:
            f.write('#!/bin/sh\nprintf "%%s %%s\\n" "$1" "$2" >> %s\n'
                    % os.path.join(cls.hook_dir, "hook.out"))
        os.chmod(cls.hook, 0o755)
        try:
            super().setUpClass()
        except BaseException:
            shutil.rmtree(cls.hook_dir, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls.hook_dir, ignore_errors=True)

    def hook_lines(self):
        try:
            with open(self.hook_out) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def crl_number(self):
        out = U.ossl(["crl", "-in", self.d.p("HUB", "pki", "crl.pem"), "-noout",
                      "-crlnumber"]).stdout.decode()
        return int(out.strip().split("=", 1)[1], 16)

    def revoke(self, s, reason="keyCompromise"):
        seq = self.d.audit_seq()
        r = self.d.mt(["device", "revoke", s, "--reason", reason, "-c", self.d.conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        a = self.assertAudited(seq, "device.revoke", reason, outcome="ok")
        self.assertEqual(a["subject"], s)
        self.assertEqual(a["detail"]["crl"], "signed")
        self.assertEqual(a["detail"]["hook"], "ok")
        self.assertIn("%s %s" % (s, reason), self.hook_lines())

    def test_B03_crl_after_revoke(self):
        s, keep = serial(1), serial(2)
        _ldev, op, _ = self.d.enroll("LOT", s)
        _ldev2, op2, _ = self.d.enroll("LOT", keep)
        crl = self.d.p("HUB", "pki", "crl.pem")
        n0 = self.crl_number()
        for c in (op, op2):
            v = U.ossl(["verify", "-crl_check", "-CRLfile", crl, "-CAfile", self.d.ca, c],
                       check=False)
            self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.revoke(s)
        v = U.ossl(["crl", "-in", crl, "-CAfile", self.d.ca, "-noout", "-verify"], check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(b"verify OK", v.stdout + v.stderr)
        self.assertGreater(self.crl_number(), n0)
        nu = U.ossl(["crl", "-in", crl, "-noout", "-nextupdate"]).stdout.decode()
        self.assertGreater(openssl_time(nu.split("=", 1)[1]), time.time())
        text = U.ossl(["crl", "-in", crl, "-noout", "-text"]).stdout.decode()
        listed = [int(x, 16) for x in re.findall(r"Serial Number: ([0-9A-Fa-f]+)", text)]
        self.assertIn(U.cert_serial_int(op), listed)
        self.assertNotIn(U.cert_serial_int(op2), listed)
        self.assertIn("Key Compromise", text)
        v = U.ossl(["verify", "-crl_check", "-CRLfile", crl, "-CAfile", self.d.ca, op],
                   check=False)
        self.assertNotEqual(v.returncode, 0, v.stdout)
        self.assertIn(b"revoked", v.stdout + v.stderr)
        v = U.ossl(["verify", "-crl_check", "-CRLfile", crl, "-CAfile", self.d.ca, op2],
                   check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertEqual(self.d.device(s)["status"], "revoked")
        self.assertEqual(self.d.device(keep)["status"], "active")

    def test_B03_revoked_operational_certificate_refused(self):
        s = serial(3)
        ldev, op, _ = self.d.enroll("LOT", s)
        kx = U.spki_der(U.gen_p256(self.d.scratch("kx.key")))
        r = self.d.onboard(op, ldev, kx)
        self.assertEqual(r.status, 200, r)
        self.revoke(s)
        seq = self.d.audit_seq()
        r = self.d.onboard(op, ldev, kx)
        self.assertRefused(r, 403, ["revoked"])
        self.assertAudited(seq, "onboard.refused", "revoked", subject=s)
        seq = self.d.audit_seq()
        ldev2 = U.gen_p256(self.d.scratch("ldev2.key"))
        r = self.d.curl(REENROLL, body=U.b64(U.csr_der(ldev2, s)), ctype="application/pkcs10",
                        cert=op, key=ldev)
        self.assertRefused(r, 403, ["revoked"])
        self.assertAudited(seq, "est.reenroll.refused", "revoked", subject=s)

    def test_D06_revoked_device_reenrol_refused(self):
        s = serial(4)
        self.d.enroll("LOT", s)
        self.revoke(s)
        ldev = U.gen_p256(self.d.scratch("ldev.key"))
        self.assertEnrolRefused("LOT", s, U.b64(U.csr_der(ldev, s)), 403, "revoked",
                                ["revoked"])
        self.assertEqual(self.d.device(s)["status"], "revoked")

    def test_D06_decommissioned_reenrol_refused(self):
        s = serial(5)
        ldev, op, _ = self.d.enroll("LOT", s)
        kx = U.spki_der(U.gen_p256(self.d.scratch("kx.key")))
        self.assertEqual(self.d.onboard(op, ldev, kx).status, 200)
        seq = self.d.audit_seq()
        r = self.d.mt(["device", "decommission", s, "-c", self.d.conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        a = self.assertAudited(seq, "device.decommission", "cessationOfOperation",
                               outcome="ok")
        self.assertEqual(a["detail"]["hook"], "ok")
        self.assertIn("%s cessationOfOperation" % s, self.hook_lines())
        self.assertEqual(self.d.device(s)["status"], "decommissioned")
        # Re-enrolment with the birth certificate...
        ldev2 = U.gen_p256(self.d.scratch("ldev2.key"))
        self.assertEnrolRefused("LOT", s, U.b64(U.csr_der(ldev2, s)), 403, "decommissioned",
                                ["decommissioned"])
        # ... and the old operational credentials are refused too.
        seq = self.d.audit_seq()
        r = self.d.onboard(op, ldev, kx)
        self.assertRefused(r, 403)
        self.assertAudited(seq, "onboard.refused", ("revoked", "decommissioned"), subject=s)
        crl = self.d.p("HUB", "pki", "crl.pem")
        v = U.ossl(["verify", "-crl_check", "-CRLfile", crl, "-CAfile", self.d.ca, op],
                   check=False)
        self.assertNotEqual(v.returncode, 0, v.stdout)


# ---------------------------------------------------------------------------

class RateLimit(HubCase):
    PREFIX = "mt-onboard-rl-"
    CONF = ("est_rate 1", "est_burst 5")

    def get(self, path):
        ctx = ssl.create_default_context(cafile=self.d.ca)
        c = http.client.HTTPSConnection("127.0.0.1", self.d.port, context=ctx, timeout=20)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def test_D10_rate_limit_burst(self):
        seq = self.d.audit_seq()
        got = [self.get("/.well-known/est/cacerts") for _ in range(20)]
        codes = [g[0] for g in got]
        limited = [g for g in got if g[0] == 429]
        self.assertGreaterEqual(len(limited), 10, codes)
        self.assertEqual(set(codes), {200, 429}, codes)
        self.assertEqual(codes[:5], [200] * 5, codes)  # the burst
        for status, headers, body in limited:
            self.assertRegex(headers.get("retry-after", ""), r"^\d+$", headers)
            self.assertTrue(body.startswith(b"refused: "), body)
        recs = self.d.audit_since(seq, "http.rate_limited")
        self.assertEqual(len(recs), 1, recs)
        a = recs[0]
        self.assertEqual(a["outcome"], "refused")
        self.assertEqual(a["actor"], "ip:127.0.0.1")
        self.assertEqual(a["detail"]["reason"], "source")
        self.assertEqual(a["detail"]["refused_in_a_row"], 1)
        # /healthz is never limited; the bucket refills at est_rate.
        self.assertEqual(self.get("/healthz")[0], 200)
        time.sleep(1.2)
        self.assertEqual(self.get("/.well-known/est/cacerts")[0], 200)


def main():
    why = U.missing_tools()
    if why:
        print("%s: skipped" % why)
        return 77
    t0 = time.monotonic()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(verbosity=2)
    res = runner.run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - len(res.failures) - len(res.errors) - len(res.skipped)
    print("%d passed, %d failed (%.1f s)" % (passed, failed, time.monotonic() - t0))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
