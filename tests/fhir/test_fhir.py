"""test_fhir.py — the FHIR R4 read API of medtrustd with SMART backend-services
authorization, driven over TLS like a hospital's integration engine would
(docs/fhir.md; clinical.md §1, §5; threats G01–G10).

A real deployment: medtrustd, its broker, two bedside monitors streaming
readings (and ECG waveforms, --ecg) through the simulator, two patients
assigned to them with the CLI, FHIR clients registered with
`medtrust client add` (an EC P-384 key, an RSA key, a client with only
Patient scopes).  Assertions are minted here with python3-cryptography.

Every resource the server returns (Patient, Observation — scalar, blood
pressure panel, waveform —, Device, Provenance, Bundle, CapabilityStatement,
OperationOutcome) is validated by an independent FHIR R4 validator, the npm
`fhir` package (installed from tests/fhir/package.json into the build tree at
test time): zero errors, no unexpected property.

Shown, each by a check that can fail:
  - token: ES384 and RS384 assertions give bearer tokens of the scopes
    registered ∩ asked; from the attacker's side an expired assertion, one
    signed with another key, alg none, HS384 keyed with the public key, a
    replayed jti, a wrong aud, jku in the header are refused (400/401) and
    audited as fhir.token.refused; the token never appears in the audit;
  - resources: no token 401 with WWW-Authenticate, unknown token 401, a
    token without the scope 403, an expired token 401;
  - search and paging: following `next` to the end yields every observation
    exactly once, `total` matches, code/date/patient filters agree with the
    unfiltered set;
  - G01 XML asked for → 406, never parsed; G02 deep JSON / huge array / 100 MB
    body to /auth/token → 400/413, hub alive; G03 wrong types and unknown
    params → OperationOutcome 400; G06 overlong UTF-8, lone surrogate, NUL
    in a search parameter → 400 alike; G08 references to other servers
    refused; G09 _count clamped to 100 with an outcome entry; G10 the same
    ids after a hub restart.
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import unittest
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
sys.path.insert(0, os.path.join(HERE, "..", "console"))
import telemetry_util as T  # noqa: E402
from console_util import DeploymentCli  # noqa: E402

try:
    from cryptography.hazmat.primitives import hashes, hmac, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:  # pragma: no cover
    ec = None

VALIDATOR_JS = r"""
const {Fhir} = require('fhir');
const fhir = new Fhir();
const input = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const out = input.map(r => {
  const v = fhir.validate(r);
  return v.messages.filter(m => m.severity === 'error' ||
                                (m.severity === 'warning' && /Unexpected property/.test(m.message)));
});
process.stdout.write(JSON.stringify(out));
"""


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def setup_validator():
    """node + the npm `fhir` package in the build tree; None when unavailable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return None
    build = os.environ.get("MT_BUILD_DIR") or os.path.dirname(os.path.abspath(T.U.BIN))
    d = os.path.join(build, "fhir-validator")
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(HERE, "package.json"), os.path.join(d, "package.json"))
    if not os.path.isdir(os.path.join(d, "node_modules", "fhir")):
        r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=d,
                           capture_output=True, timeout=300)
        if r.returncode != 0:
            return None
    with open(os.path.join(d, "validate.js"), "w") as f:
        f.write(VALIDATOR_JS)
    return d


class Fhir(DeploymentCli, unittest.TestCase):
    validated = {}

    @classmethod
    def setUpClass(cls):
        why = T.missing_tools()
        if why:
            raise unittest.SkipTest(why)
        if ec is None:
            raise unittest.SkipTest("python3-cryptography missing")
        cls.vdir = setup_validator()
        if cls.vdir is None:
            raise unittest.SkipTest("node/npm or the npm fhir package unavailable")
        cls.d = d = T.Deployment("mt-fhir-")
        try:
            cls.lot = d.make_lot("lot", 2, cls="bedside-monitor")
            cls.pid = [cls.cli_ok("patient", "add", "--name", "Ada FHIR", "--mrn", "MRN-7001",
                                  "--ward", "ICU", "--bed", "1", "--birth-date", "1970-03-04",
                                  "--sex", "female").strip(),
                       cls.cli_ok("patient", "add", "--name", "Bob \"Quote\" FHIR", "--mrn",
                                  "MRN-7002", "--ward", "ICU", "--bed", "2").strip()]
            cls.cli_ok("patient", "assign", cls.lot[0], cls.pid[0])
            cls.cli_ok("patient", "assign", cls.lot[1], cls.pid[1])
            # clients: EC P-384 (all read scopes), RSA (Observation only), patient-only
            cls.ec_key = ec.generate_private_key(ec.SECP384R1())
            cls.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            cls.other_key = ec.generate_private_key(ec.SECP384R1())
            cls.register("ehr", cls.ec_key, "system/*.read")
            cls.register("lab", cls.rsa_key, "system/Observation.rs")
            cls.register("pat", cls.ec_key, "system/Patient.r")
            d.start_hub()
            d.start_broker()
            deadline = time.monotonic() + 30
            while not d.hub_connected() and time.monotonic() < deadline:
                time.sleep(0.1)
            d.start_sim("sim", "lot", ["--batch-ms", "1000", "--scenario", "stable", "--ecg"])
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and d.count_readings() < 12:
                time.sleep(0.5)
            d.kill("sim", sig=2)  # stop the flow: totals are then stable
            time.sleep(1)
        except Exception:
            d.cleanup()
            raise
        cls.ca = d.p("HUB", "pki", "ca.pem")
        cls.aud = "https://localhost:%d/auth/token" % d.hub_port

    # -- helpers --
    @classmethod
    def register(cls, name, key, scopes):
        pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        path = cls.d.p(name + ".pub.pem")
        with open(path, "wb") as f:
            f.write(pem)
        cls.cli_ok("client", "add", name, "--key", path, "--scopes", scopes)

    def request(self, method, path, body=None, headers=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        conn = http.client.HTTPSConnection("localhost", self.d.hub_port, context=ctx, timeout=120)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, r.headers, data

    def assertion(self, name="ehr", key=None, alg="ES384", aud=None, exp=None, jti=None,
                  header=None, claims=None, sig=None):
        key = key or self.ec_key
        now = int(time.time())
        h = header or {"alg": alg, "typ": "JWT"}
        c = {"iss": name, "sub": name, "aud": aud or self.aud, "exp": exp or now + 240,
             "jti": jti or uuid.uuid4().hex}
        if claims:
            c.update(claims)
        si = (b64u(json.dumps(h).encode()) + "." + b64u(json.dumps(c).encode())).encode()
        if sig is not None:
            s = sig
        elif alg == "ES384":
            der = key.sign(si, ec.ECDSA(hashes.SHA384()))
            r, s_ = decode_dss_signature(der)
            s = r.to_bytes(48, "big") + s_.to_bytes(48, "big")
        elif alg == "RS384":
            s = key.sign(si, padding.PKCS1v15(), hashes.SHA384())
        else:
            s = b""
        return si.decode() + "." + b64u(s)

    def token_req(self, assertion, scope="system/*.read", extra=None):
        form = {"grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion, "scope": scope}
        if extra:
            form.update(extra)
        st, hd, body = self.request("POST", "/auth/token", urllib.parse.urlencode(form),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        try:
            return st, json.loads(body)
        except ValueError:
            return st, {"error": "(not JSON) " + body[:200].decode(errors="replace")}

    def token(self, name="ehr", key=None, alg="ES384", scope="system/*.read"):
        st, j = self.token_req(self.assertion(name, key, alg), scope)
        self.assertEqual(st, 200, j)
        return j["access_token"]

    def get(self, path, tok=None, headers=None):
        h = dict(headers or {})
        if tok:
            h["Authorization"] = "Bearer " + tok
        st, hd, body = self.request("GET", path, None, h)
        j = json.loads(body) if body else None
        return st, hd, j

    def validate(self, *resources):
        path = self.d.p("validate-%d.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump(list(resources), f)
        r = subprocess.run(["node", os.path.join(self.vdir, "validate.js"), path],
                           capture_output=True, timeout=120, cwd=self.vdir)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        for res, msgs in zip(resources, out):
            self.assertEqual(msgs, [], "FHIR validator: %s\n%s" % (
                msgs, json.dumps(res)[:2000]))
            Fhir.validated[res["resourceType"]] = Fhir.validated.get(res["resourceType"], 0) + 1

    def audit(self):
        r = subprocess.run([T.U.BIN, "audit", "tail", "--db", self.d.p("HUB", "medtrust.db"),
                            "-n", "5000"], capture_output=True, env=self.d.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.decode()

    def all_observations(self, tok, query, count=7):
        """Follow next links to the end: (entries, totals)."""
        st, _, b = self.get("/fhir/Observation?%s&_count=%d" % (query, count), tok)
        self.assertEqual(st, 200, b)
        entries, totals, pages = [], set(), 0
        while True:
            self.validate(b)
            pages += 1
            totals.add(b["total"])
            entries += [e for e in b.get("entry", []) if e["search"]["mode"] == "match"]
            nxt = [l["url"] for l in b["link"] if l["relation"] == "next"]
            if not nxt:
                break
            u = urllib.parse.urlparse(nxt[0])
            st, _, b = self.get(u.path + "?" + u.query, tok)
            self.assertEqual(st, 200, b)
            self.assertLess(pages, 10000)
        return entries, totals

    # -- tests --
    def test_00_discovery(self):
        st, hd, cap = self.get("/fhir/metadata")
        self.assertEqual(st, 200)
        self.assertEqual(hd["Content-Type"], "application/fhir+json")
        self.assertEqual(cap["fhirVersion"], "4.0.1")
        self.assertEqual(cap["kind"], "instance")
        self.assertEqual(cap["format"], ["json"])
        self.assertEqual(cap["rest"][0]["security"]["service"][0]["coding"][0]["code"],
                         "SMART-on-FHIR")
        self.assertEqual({r["type"] for r in cap["rest"][0]["resource"]},
                         {"Patient", "Observation", "Device", "Provenance"})
        self.validate(cap)
        st, _, sc = self.get("/.well-known/smart-configuration")
        self.assertEqual(st, 200)
        self.assertEqual(sc["token_endpoint"], self.aud)
        self.assertEqual(sc["token_endpoint_auth_methods_supported"], ["private_key_jwt"])
        self.assertEqual(sc["token_endpoint_auth_signing_alg_values_supported"],
                         ["ES384", "RS384"])
        self.assertEqual(sc["grant_types_supported"], ["client_credentials"])
        self.assertIn("system/Observation.rs", sc["scopes_supported"])

    def test_01_token_and_scopes(self):
        st, j = self.token_req(self.assertion(), "system/Patient.rs system/Observation.read "
                               "system/Device.r")
        self.assertEqual(st, 200, j)
        self.assertEqual(j["token_type"], "bearer")
        self.assertEqual(j["expires_in"], 300)
        self.assertEqual(set(j["scope"].split()),
                         {"system/Patient.rs", "system/Observation.read", "system/Device.r"})
        # RS384 client: only what it registered
        st, j = self.token_req(self.assertion("lab", self.rsa_key, "RS384"),
                               "system/Observation.rs system/Patient.read")
        self.assertEqual(st, 200, j)
        self.assertEqual(j["scope"], "system/Observation.rs")
        # nothing in common → invalid_scope
        st, j = self.token_req(self.assertion("lab", self.rsa_key, "RS384"), "system/Device.read")
        self.assertEqual((st, j["error"]), (400, "invalid_scope"))
        st, j = self.token_req(self.assertion(), "patient/*.read")
        self.assertEqual((st, j["error"]), (400, "invalid_scope"))
        self.assertNotIn(j.get("access_token", "x-none"), self.audit())

    def test_02_token_attacks(self):
        now = int(time.time())
        pub_pem = self.ec_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        hs = hmac.HMAC(pub_pem, hashes.SHA384())
        hdr = {"alg": "HS384", "typ": "JWT"}
        claims = {"iss": "ehr", "sub": "ehr", "aud": self.aud, "exp": now + 200,
                  "jti": uuid.uuid4().hex}
        si = b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(claims).encode())
        hs.update(si.encode())
        hs384 = si + "." + b64u(hs.finalize())
        replay = self.assertion()
        self.assertEqual(self.token_req(replay)[0], 200)
        cases = {
            "expired": (self.assertion(exp=now - 5), 400),
            "too_long": (self.assertion(exp=now + 3600), 400),
            "other_key": (self.assertion(key=self.other_key), 401),
            "alg_none": (self.assertion(alg="none", header={"alg": "none"}), 401),
            "hs384_public_key": (hs384, 401),
            "replayed_jti": (replay, 400),
            "wrong_aud": (self.assertion(aud="https://evil.example/auth/token"), 401),
            "jku_header": (self.assertion(header={"alg": "ES384", "jku": "https://evil/k"}), 401),
            "rs_for_ec": (self.assertion(alg="RS384", key=self.rsa_key), 401),
            "unknown_client": (self.assertion(name="mallory"), 401),
            "iss_not_sub": (self.assertion(claims={"sub": "lab"}), 401),
            "no_jti": (self.assertion(claims={"jti": None}), 401),
            "garbage": ("a.b.c", 401),
        }
        for what, (a, want) in cases.items():
            st, j = self.token_req(a)
            self.assertEqual(st, want, "%s: %s" % (what, j))
            self.assertIn(j["error"], ("invalid_client", "invalid_grant", "invalid_request"),
                          what)
            self.assertNotIn("access_token", j, what)
        log = self.audit()
        self.assertGreaterEqual(log.count("fhir.token.refused"), len(cases))
        for reason in ("replay", "signature", "audience", "expiry", "alg", "jwt_key_header"):
            self.assertIn('"reason":"%s"' % reason, log.replace(" ", ""))
        self.assertNotIn(replay, log)

    def test_03_F14_resource_auth_and_scope_without_rights_403(self):
        st, hd, b = self.get("/fhir/Patient/%s" % self.pid[0])
        self.assertEqual(st, 401)
        self.assertTrue(hd["WWW-Authenticate"].startswith("Bearer"))
        self.assertEqual(b["resourceType"], "OperationOutcome")
        self.validate(b)
        st, _, b = self.get("/fhir/Patient/%s" % self.pid[0], "A" * 43)
        self.assertEqual(st, 401)
        pat = self.token("pat", scope="system/Patient.r")
        st, _, b = self.get("/fhir/Patient/%s" % self.pid[0], pat)
        self.assertEqual(st, 200, b)
        st, _, b = self.get("/fhir/Patient?identifier=MRN-7001", pat)   # search needs .s
        self.assertEqual(st, 403, b)
        st, _, b = self.get("/fhir/Observation?patient=%s" % self.pid[0], pat)
        self.assertEqual(st, 403, b)
        self.validate(b)
        self.assertIn("fhir.refused", self.audit())

    def test_04_patient(self):
        tok = self.token()
        st, _, p = self.get("/fhir/Patient/%s" % self.pid[0], tok)
        self.assertEqual(st, 200, p)
        self.assertEqual(p["identifier"][0]["value"], "MRN-7001")
        self.assertEqual(p["identifier"][0]["system"], "urn:medtrust:mrn")
        self.assertEqual(p["gender"], "female")
        self.assertEqual(p["birthDate"], "1970-03-04")
        self.assertEqual(p["name"][0]["text"], "Ada FHIR")
        self.validate(p)
        st, _, b = self.get("/fhir/Patient?identifier=urn:medtrust:mrn|MRN-7002", tok)
        self.assertEqual(st, 200, b)
        self.assertEqual(b["total"], 1)
        self.assertEqual(b["entry"][0]["resource"]["name"][0]["text"], 'Bob "Quote" FHIR')
        self.validate(b, b["entry"][0]["resource"])
        st, _, b = self.get("/fhir/Patient?identifier=urn:other|MRN-7002", tok)
        self.assertEqual((st, b["total"]), (200, 0))
        st, _, b = self.get("/fhir/Patient/999999", tok)
        self.assertEqual(st, 404)
        self.validate(b)

    def test_05_observations_and_paging(self):
        tok = self.token()
        entries, totals = self.all_observations(tok, "patient=%s" % self.pid[0])
        ids = [e["resource"]["id"] for e in entries]
        self.assertEqual(len(totals), 1, totals)
        self.assertEqual(len(ids), totals.pop())
        self.assertEqual(len(ids), len(set(ids)), "an observation was returned twice")
        self.assertGreater(len(ids), 10)
        codes = {}
        for e in entries:
            r = e["resource"]
            self.assertEqual(e["fullUrl"], "https://localhost:%d/fhir/Observation/%s" %
                             (self.d.hub_port, r["id"]))
            self.assertEqual(r["status"], "final")
            self.assertEqual(r["subject"]["reference"], "Patient/%s" % self.pid[0])
            self.assertTrue(r["device"]["reference"].startswith("Device/"))
            loinc = [c["code"] for c in r["code"]["coding"] if c["system"] == "http://loinc.org"]
            codes.setdefault(loinc[0] if loinc else r["code"]["coding"][0]["code"], r)
        # BP panel: one Observation, components systolic + diastolic, no value
        self.assertIn("85354-9", codes, "no blood-pressure panel (NIBP is due at start)")
        if "85354-9" in codes:
            bp = codes["85354-9"]
            self.assertNotIn("valueQuantity", bp)
            self.assertEqual([c["code"]["coding"][0]["code"] for c in bp["component"]],
                             ["8480-6", "8462-4"])
            self.assertIn("http://hl7.org/fhir/StructureDefinition/bp", bp["meta"]["profile"])
        if "2708-6" in codes:
            c = [x["code"] for x in codes["2708-6"]["code"]["coding"]]
            self.assertIn("59408-5", c)
            self.assertIn("150456", c)
        if "8310-5" in codes:  # temperature: one decimal at least
            self.assertRegex(json.dumps(codes["8310-5"]["valueQuantity"]), r'"value": \d+\.\d')
        self.assertIn("131330", codes, "no ECG waveform observation")
        sd = codes["131330"]["valueSampledData"]
        self.assertGreater(len(sd["data"].split()), 10)
        self.assertIn("8867-4", codes)
        self.validate(*[e["resource"] for e in entries[:60]])
        # filters agree with the unfiltered set
        hr = [e for e in entries if any(c.get("code") == "8867-4"
                                        for c in e["resource"]["code"]["coding"])]
        got, t = self.all_observations(tok, "patient=Patient/%s&code=http://loinc.org|8867-4" %
                                       self.pid[0], count=100)
        self.assertEqual(sorted(e["resource"]["id"] for e in got),
                         sorted(e["resource"]["id"] for e in hr))
        times = sorted(e["resource"]["effectiveDateTime"] for e in entries)
        mid = times[len(times) // 2]
        q = "patient=%s&date=ge%s" % (self.pid[0], urllib.parse.quote(mid))
        got, _ = self.all_observations(tok, q, count=100)
        self.assertEqual(len(got), len([t for t in times if t >= mid]))
        q = "patient=%s&date=ge%s&date=lt%s" % (self.pid[0], times[0][:10], "2999-01-01")
        got, _ = self.all_observations(tok, q, count=100)
        self.assertEqual(len(got), len(times))
        # read by id
        one = entries[0]["resource"]
        st, _, r = self.get("/fhir/Observation/%s" % one["id"], tok)
        self.assertEqual((st, r), (200, one))
        Fhir.obs_ids = sorted(ids)
        Fhir.codes = set(codes)
        Fhir.sample_obs = one

    def test_06_device_and_provenance(self):
        tok = self.token()
        st, _, dv = self.get("/fhir/Device/%s" % self.lot[0], tok)
        self.assertEqual(st, 200, dv)
        self.assertEqual(dv["serialNumber"], self.lot[0])
        self.assertEqual(dv["status"], "active")
        self.assertTrue(dv["manufacturer"].startswith("Acme Medical"), dv)  # the root's CN
        self.assertEqual(dv["patient"]["reference"], "Patient/%s" % self.pid[0])
        self.validate(dv)
        st, _, b = self.get("/fhir/Device?patient=%s" % self.pid[1], tok)
        self.assertEqual((st, b["total"]), (200, 1))
        self.assertEqual(b["entry"][0]["resource"]["id"], self.lot[1])
        self.validate(b)
        st, _, b = self.get("/fhir/Observation?patient=%s&_count=1" % self.pid[0], tok)
        oid = b["entry"][0]["resource"]["id"]
        st, _, b = self.get("/fhir/Provenance?target=Observation/%s" % oid, tok)
        self.assertEqual((st, b["total"]), (200, 1), b)
        pv = b["entry"][0]["resource"]
        self.assertIn({"reference": "Observation/%s" % oid}, pv["target"])
        self.assertEqual(pv["agent"][0]["who"]["reference"], b["entry"][0]["resource"]
                         ["signature"][0]["who"]["reference"])
        sig = pv["signature"][0]
        cose = base64.b64decode(sig["data"])
        ext = {e["url"].rsplit(":", 1)[1]: e["valueString"] for e in sig["extension"]}
        self.assertEqual(ext["cose-sign1-sha256"], hashlib.sha256(cose).hexdigest())
        self.assertEqual(cose[0], 0xd2)  # COSE_Sign1 tag 18
        self.assertRegex(ext["operational-certificate-serial"], r"^[0-9a-f]+$")
        self.validate(b, pv)
        st, _, p2 = self.get("/fhir/Provenance/%s" % pv["id"], tok)
        self.assertEqual((st, p2), (200, pv))

    def test_07_expired_access_token(self):
        tok = self.token()
        self.assertEqual(self.get("/fhir/Device/%s" % self.lot[0], tok)[0], 200)
        # a restart forgets tokens: the old one is refused like an expired one
        self.d.kill("hub", sig=15)
        self.d.start_hub()
        st, hd, b = self.get("/fhir/Device/%s" % self.lot[0], tok)
        self.assertEqual(st, 401, b)
        self.assertIn("invalid_token", hd["WWW-Authenticate"])

    def test_08_cli_clients(self):
        rows = [json.loads(x) for x in self.cli_ok("client", "list").splitlines()]
        by = {r["name"]: r for r in rows}
        self.assertEqual(by["ehr"]["alg"], "ES384")
        self.assertEqual(by["lab"]["alg"], "RS384")
        self.assertEqual(by["lab"]["scopes"], "system/Observation.rs")
        self.assertNotIn("BEGIN PUBLIC KEY", json.dumps(rows))
        # refused: a taken name, an unknown scope, a P-256 key
        p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with open(self.d.p("p256.pem"), "wb") as f:
            f.write(p256)
        for args in (["ehr", "--key", self.d.p("ehr.pub.pem"), "--scopes", "system/*.read"],
                     ["x1", "--key", self.d.p("ehr.pub.pem"), "--scopes", "user/*.read"],
                     ["x2", "--key", self.d.p("p256.pem"), "--scopes", "system/*.read"]):
            self.assertEqual(self.cli("client", "add", *args).returncode, 2, args)
        # disable: no more tokens for it, audited
        self.assertEqual(self.token_req(self.assertion("pat"), "system/Patient.r")[0], 200)
        self.cli_ok("client", "disable", "pat")
        st, j = self.token_req(self.assertion("pat"), "system/Patient.r")
        self.assertEqual((st, j["error"]), (401, "invalid_client"))
        log = self.audit()
        for action in ("client.add", "client.add.refused", "client.disable"):
            self.assertIn('"%s"' % action, log)
        self.assertIn('"disabled"', log)

    def test_G01_xml_refused(self):
        tok = self.token()
        xxe = ('<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               '<Patient xmlns="http://hl7.org/fhir"><id value="&x;"/></Patient>')
        st, _, b = self.get("/fhir/Patient/%s?_format=xml" % self.pid[0], tok)
        self.assertEqual(st, 406, b)
        self.validate(b)
        st, _, b = self.get("/fhir/Patient/%s" % self.pid[0], tok,
                            {"Accept": "application/fhir+xml"})
        self.assertEqual(st, 406)
        st, _, body = self.request("POST", "/fhir/Patient", xxe,
                                   {"Content-Type": "application/fhir+xml",
                                    "Authorization": "Bearer " + tok})
        self.assertEqual(st, 405)
        self.assertNotIn(b"root:", body)

    def test_G02_token_endpoint_bounds(self):
        deep = "[" * 10000 + "]" * 10000
        big = "[" + ",".join(["1"] * 1000000) + "]"
        for body in (b64u(deep.encode()) + ".e30.AA", "e30." + b64u(big.encode()) + ".AA"):
            try:
                st, j = self.token_req(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                st, j = 413, None  # answered 413 and closed while the body was still coming
            self.assertIn(st, (400, 401, 413), j)
        try:
            st, _, _ = self.request("POST", "/auth/token", b"a=" + b"x" * (100 << 20),
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            st = 413  # the hub answered 413 and closed before the 100 MB were sent
        self.assertEqual(st, 413)
        st, _, _ = self.request("POST", "/auth/token", "a=" + "x" * 20000,
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(st, 413)
        self.assertEqual(self.get("/fhir/metadata")[0], 200)   # alive
        with open("/proc/%d/status" % self.d.procs["hub"].pid) as f:
            rss = [int(x.split()[1]) for x in f if x.startswith("VmRSS")][0]
        self.assertLess(rss, 1 << 20, "hub RSS %d KiB" % rss)

    def test_G03_wrong_types_unknown_params(self):
        tok = self.token()
        for q in ("_include=Observation:patient", "_revinclude=Provenance:target",
                  "subject.name=Ada", "_has=Observation:patient:code=1", "foo=bar",
                  "code:text=heart", "_count=ten", "date=yesterday", "patient=1&patient=2",
                  "_summary=true"):
            st, _, b = self.get("/fhir/Observation?" + q, tok)
            self.assertEqual(st, 400, q)
            self.assertEqual(b["resourceType"], "OperationOutcome", q)
        self.validate(b)
        st, j = self.token_req(self.assertion(claims={"exp": "soon"}))
        self.assertIn(st, (400, 401))
        st, j = self.token_req(self.assertion(claims={"aud": 17}))
        self.assertEqual(st, 401)
        st, j = self.token_req(self.assertion(), extra={"evil": "1"})
        self.assertEqual((st, j["error"]), (400, "invalid_request"))
        self.assertEqual(self.get("/fhir/metadata")[0], 200)

    def test_G06_bad_text(self):
        tok = self.token()
        outcomes = set()
        for v in ("%C0%AF", "%ED%A0%80", "%00", "MRN%0A7001", "%FF"):
            st, _, b = self.get("/fhir/Patient?identifier=" + v, tok)
            self.assertEqual(st, 400, v)
            outcomes.add(b["issue"][0]["diagnostics"])
        self.assertEqual(len(outcomes), 1, outcomes)  # refused the same way

    def test_G08_no_foreign_references(self):
        tok = self.token()
        for q in ("patient=http://evil/Patient/1", "subject=https://evil.example/fhir/Patient/1"):
            st, _, b = self.get("/fhir/Observation?" + q, tok)
            self.assertEqual(st, 400, q)
        st, _, b = self.get("/fhir/Provenance?target=http://evil/Observation/r1-0", tok)
        self.assertEqual(st, 400)
        st, _, b = self.get("/fhir/Device?patient=http://evil/Patient/1", tok)
        self.assertEqual(st, 400)

    def test_G09_count_bounds(self):
        tok = self.token()
        st, _, b = self.get("/fhir/Observation?_count=100000", tok)
        self.assertEqual(st, 200, b)
        match = [e for e in b["entry"] if e["search"]["mode"] == "match"]
        self.assertLessEqual(len(match), 100)
        self.assertTrue(any(e["search"]["mode"] == "outcome" for e in b["entry"]))
        self.assertIn("_count=100&", [l["url"] for l in b["link"] if l["relation"] == "self"][0])
        self.validate(b)
        st, _, b = self.get("/fhir/Observation", tok)
        self.assertLessEqual(len(b.get("entry", [])), 20)

    def test_G10_stable_ids_after_restart(self):
        tok = self.token()
        st, _, before = self.get("/fhir/Observation?patient=%s&_count=5" % self.pid[0], tok)
        st, _, pb = self.get("/fhir/Patient/%s" % self.pid[0], tok)
        self.d.kill("hub", sig=15)
        self.d.start_hub()
        tok = self.token()
        st, _, after = self.get("/fhir/Observation?patient=%s&_count=5&_snapshot=%s" % (
            self.pid[0], before["link"][0]["url"].rsplit("_snapshot=", 1)[1]), tok)
        self.assertEqual(st, 200, after)
        self.assertEqual([e["resource"] for e in before["entry"]],
                         [e["resource"] for e in after["entry"]])
        st, _, pa = self.get("/fhir/Patient/%s" % self.pid[0], tok)
        self.assertEqual(pa, pb)
        self.assertEqual(pa["identifier"], pb["identifier"])

    def test_zz_report(self):
        print("\nFHIR resources validated by the npm fhir package: %s" %
              json.dumps(Fhir.validated, sort_keys=True))
        print("observation codes seen: %s" % " ".join(sorted(getattr(Fhir, "codes", []))))
        print("observations of patient %s paged: %d" % (self.pid[0],
                                                         len(getattr(Fhir, "obs_ids", []))))
        for t in ("Patient", "Observation", "Device", "Provenance", "Bundle",
                  "CapabilityStatement", "OperationOutcome"):
            self.assertIn(t, Fhir.validated)


if __name__ == "__main__":
    unittest.main(verbosity=2)
