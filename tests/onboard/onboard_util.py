"""onboard_util.py — the deployment, the daemon and the independent clients
that tests/onboard/test_*.py drive (protocol §1–§2, threats B and D).

Nothing here links against medtrust: the hub side is the `medtrust` CLI and
the real daemon `medtrustd`; the device side is `openssl` (keys, CSRs,
PKCS#7, verification) and `curl` (HTTPS with a client certificate), with
Python's standard library and Debian's python3-cryptography for the odd
byte surgery.

Environment: MEDTRUST_BIN (the CLI; medtrustd is looked for next to it and
in MT_BUILD_DIR).  MT_KEEP_TMP=1 keeps each class's temporary directory.
"""
import base64
import re
import socket
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

BIN = os.environ.get("MEDTRUST_BIN", "/work/main/build/medtrust")
MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PASS = "onboard-test-passphrase"
ACME = "Acme Medical"


def daemon_path():
    cands = [os.path.join(os.path.dirname(os.path.abspath(BIN)), "medtrustd")]
    if os.environ.get("MT_BUILD_DIR"):
        cands.append(os.path.join(os.environ["MT_BUILD_DIR"], "medtrustd"))
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def missing_tools():
    """A reason to skip, or None."""
    if not (os.path.isfile(BIN) and os.access(BIN, os.X_OK)):
        return "medtrust binary not found at %s" % BIN
    if daemon_path() is None:
        return "medtrustd not found next to %s" % BIN
    if not os.path.exists(MODULE):
        return "SoftHSM2 missing"
    for t in ("openssl", "curl"):
        if shutil.which(t) is None:
            return "%s missing" % t
    return None


def sanitizer_build(build):
    """The C compiler of `build` when it is a sanitizer build, else None."""
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            cache = f.read()
    except OSError:
        return None
    if not re.search(r"^MT_SANITIZE:BOOL=ON$", cache, re.M):
        return None
    cc = re.search(r"^CMAKE_C_COMPILER:[A-Z]*=(.*)$", cache, re.M)
    return cc.group(1) if cc else "gcc"


def asan_preload_env(build):
    """What mosquitto needs to load our plugin from a sanitizer build: the
    ASan runtime preloaded ({} for a normal build)."""
    cc = sanitizer_build(build)
    if not cc:
        return {}
    rt = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True,
                        text=True).stdout.strip()
    if not os.path.isabs(rt) or not os.path.exists(rt):
        raise RuntimeError("sanitizer build, but %s has no libasan.so to preload" % cc)
    return {"LD_PRELOAD": rt, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def clean_env(extra=None):
    e = dict(os.environ)
    e.pop("SOFTHSM2_CONF", None)
    e.pop("MEDTRUST_CONFIG", None)
    e["MEDTRUST_KEY_PASSPHRASE"] = PASS
    if extra:
        e.update(extra)
    return e


def sh(args, data=None, env=None, timeout=60, check=False):
    r = subprocess.run(args, input=data, capture_output=True, env=env or clean_env(),
                       timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), r.returncode,
                                                   r.stderr.decode(errors="replace")))
    return r


def ossl(args, data=None, check=True):
    return sh(["openssl"] + args, data=data, check=check)


# ---- the device side: keys, CSRs, certificates, with openssl ------------

def gen_p256(path):
    ossl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", path])
    return path


def spki_der(key_path, public=False, passin=None):
    args = ["pkey", "-in", key_path, "-outform", "DER"]
    args += ["-pubin"] if public else ["-pubout"]
    if passin:
        args += ["-passin", passin]
    return ossl(args).stdout


def csr_der(key_path, cn, passin=None):
    args = ["req", "-new", "-key", key_path, "-subj", "/CN=%s" % cn, "-outform", "DER"]
    if passin:
        args += ["-passin", passin]
    return ossl(args).stdout


def b64(data, lines=True):
    """Base64 as EST sends it (64-column lines, like `openssl base64`)."""
    s = base64.b64encode(data)
    if not lines:
        return s
    return b"\n".join(s[i:i + 64] for i in range(0, len(s), 64)) + b"\n"


def pem_to_der(pem_path):
    return ossl(["x509", "-in", pem_path, "-outform", "DER"]).stdout


def pem_text_to_der(pem_text):
    return ossl(["x509", "-outform", "DER"], data=pem_text).stdout


def p7_b64_to_pem(body):
    """certs-only PKCS#7, base64 (RFC 7030) → PEM certificates, via openssl."""
    der = ossl(["base64", "-d"], data=body).stdout
    r = ossl(["pkcs7", "-inform", "DER", "-print_certs"], data=der)
    return r.stdout


def x509(pem_path, *fields):
    return ossl(["x509", "-in", pem_path, "-noout", "-nameopt", "RFC2253"] +
                list(fields)).stdout.decode()


def cert_serial_int(pem_path):
    out = x509(pem_path, "-serial").strip()
    return int(out.split("=", 1)[1], 16)


# ---- HTTPS with curl -----------------------------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last wins)
        self.body = body

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def __repr__(self):
        return "Resp(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


# ---- the hub side: a deployment in a temporary directory ----------------

class Deployment:
    """HUB (medtrust init), manufacturers, lots, the daemon."""

    def __init__(self, prefix, conf_lines=(), init_args=()):
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.work = self.p("client")  # device-side scratch, outside HUB and the lots
        os.mkdir(self.work)
        self.hub = self.p("HUB")
        self.conf = self.p("HUB", "medtrust.conf")
        self.db = self.p("HUB", "medtrust.db")
        self.ca = self.p("HUB", "pki", "ca.pem")
        self.proc = None
        self.port = None
        self._n = 0
        try:
            self.mt_ok(["init", self.hub] + list(init_args))
        except BaseException:
            self.cleanup()
            raise
        if conf_lines:
            with open(self.conf, "a") as f:
                f.write("\n# added by tests/onboard\n")
                for line in conf_lines:
                    f.write(line + "\n")

    def p(self, *names):
        return os.path.join(self.tmp, *names)

    def scratch(self, name):
        self._n += 1
        return os.path.join(self.work, "%03d-%s" % (self._n, name))

    # -- the CLI --
    def mt(self, args, env=None):
        return sh([BIN] + args, env=clean_env(env))

    def mt_ok(self, args):
        r = self.mt(args)
        if r.returncode != 0:
            raise RuntimeError("medtrust %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                             r.stderr.decode(errors="replace")))
        return r

    def mfg_init(self, d, name):
        self.mt_ok(["mfg", "init", self.p(d), "--name", name])

    def mfg_make(self, mfg, out, count, prefix=None, cls="wearable"):
        args = ["mfg", "make", "--mfg", self.p(mfg), "--count", str(count), "--class", cls,
                "--out", self.p(out), "--soft"]
        if prefix:
            args += ["--prefix", prefix]
        self.mt_ok(args)
        return sorted(x for x in os.listdir(self.p(out)) if os.path.isdir(self.p(out, x)))

    def trust(self, mfg):
        self.mt_ok(["trust", "add-manufacturer", self.p(mfg, "root.pem"), "-c", self.conf])

    def import_manifest(self, path):
        return self.mt(["manifest", "import", path, "-c", self.conf])

    def devices(self):
        r = self.mt_ok(["device", "list", "-c", self.conf])
        return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]

    def device(self, serial):
        r = self.mt_ok(["device", "show", serial, "-c", self.conf])
        return json.loads(r.stdout)

    def audit(self, n=200):
        r = self.mt_ok(["audit", "tail", "--db", self.db, "-n", str(n)])
        return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]

    def audit_seq(self):
        recs = self.audit(1)
        return recs[-1]["seq"] if recs else 0

    def audit_since(self, seq, action=None):
        return [a for a in self.audit() if a["seq"] > seq and
                (action is None or a["action"] == action)]

    def audit_verify(self):
        return self.mt(["audit", "verify", "--db", self.db, "--hub-pub",
                        self.p("HUB", "pki", "hub-audit.pub.pem"), "--checkpoints",
                        self.p("HUB", "audit.checkpoints")])

    # -- the daemon --
    def start(self):
        pf = self.p("port")
        self.log = open(self.p("medtrustd.log"), "wb")
        self.proc = subprocess.Popen([daemon_path(), "-c", self.conf, "--port", "0",
                                      "--port-file", pf], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=clean_env())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if os.path.exists(pf):
                with open(pf) as f:
                    txt = f.read().strip()
                if txt:
                    self.port = int(txt)
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        rc = self.proc.poll()
        self.stop()
        raise RuntimeError("medtrustd did not start (exit %r): %s" % (rc, self.daemon_log()))

    def daemon_log(self):
        try:
            with open(self.p("medtrustd.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM; the exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        self.proc = None
        self.log.close()
        return rc

    def cleanup(self):
        if os.environ.get("MT_KEEP_TMP"):
            print("kept %s" % self.tmp)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- HTTPS, as a device, with curl --
    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def curl(self, path, body=None, ctype=None, cert=None, key=None, keypass=None,
             method=None):
        """One request with curl; the server is authenticated with HUB/pki/ca.pem."""
        hdr = self.scratch("headers")
        out = self.scratch("body")
        args = ["curl", "-sS", "--max-time", "20", "--cacert", self.ca, "-D", hdr, "-o", out,
                "-w", "%{http_code}"]
        if cert:
            args += ["--cert", cert, "--key", key]
            if keypass:
                args += ["--pass", keypass]
        if ctype:
            args += ["-H", "Content-Type: %s" % ctype]
        if body is not None:
            bf = self.scratch("req")
            with open(bf, "wb") as f:
                f.write(body)
            args += ["--data-binary", "@" + bf]
        if method:
            args += ["-X", method]
        args.append(self.url(path))
        r = sh(args)
        if r.returncode != 0:
            raise RuntimeError("curl failed (%d): %s" % (r.returncode, r.stderr.decode()))
        status = int(r.stdout.decode().strip())
        headers = {}
        with open(hdr, "rb") as f:
            for line in f.read().decode(errors="replace").splitlines()[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        with open(out, "rb") as f:
            data = f.read()
        return Resp(status, headers, data)

    # -- a device of a lot --
    def birth(self, lot, serial):
        return (self.p(lot, serial, "birth.pem"), self.p(lot, serial, "idev.key"), PASS)

    def enroll_raw(self, lot, serial, body, ctype="application/pkcs10",
                   path="/.well-known/est/simpleenroll"):
        cert, key, pw = self.birth(lot, serial)
        return self.curl(path, body=body, ctype=ctype, cert=cert, key=key, keypass=pw)

    def enroll(self, lot, serial):
        """A full, good enrolment: (ldev key path, operational cert PEM path, response)."""
        ldev = gen_p256(self.scratch("%s-ldev.key" % serial))
        r = self.enroll_raw(lot, serial, b64(csr_der(ldev, serial)))
        if r.status != 200:
            raise RuntimeError("enrolment of %s: %r" % (serial, r))
        op = self.scratch("%s-op.pem" % serial)
        with open(op, "wb") as f:
            f.write(p7_b64_to_pem(r.body))
        return ldev, op, r

    def onboard(self, op, ldev, kx_spki, ctype="application/json", body=None):
        if body is None:
            body = json.dumps({"kx": base64.b64encode(kx_spki).decode()}).encode()
        return self.curl("/mt/v1/onboard", body=body, ctype=ctype, cert=op, key=ldev)
