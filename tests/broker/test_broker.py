#!/usr/bin/python3
"""test_broker.py — the broker as devices and the hub meet it: a private
Eclipse Mosquitto 2.0 with the medtrust_mosq plugin, in front of a real
deployment (protocol §3, docs/broker.md; threats B01, B03, B09, B13, C01,
C02, C06–C11, D06).

The deployment is made the way an operator makes one (tests/onboard's
onboard_util): `medtrust init`, a manufacturer with five --soft devices,
`trust add-manufacturer`, `manifest import`, `medtrustd`, and every device
onboards itself with `medtrust-device run --once` (op.pem, ldev.key
encrypted under MEDTRUST_KEY_PASSPHRASE, hub-ca.pem).  medtrustd is stopped
once they have: the broker needs only the registry.

The broker's TLS key: the engine route.  `medtrust init` made the broker's
key inside the hub's SoftHSM2 token (broker_tls_key) and its certificate
HUB/pki/broker-tls.pem under the operator CA, and Mosquitto 2.0 reaches a
token key only through an OpenSSL engine: the configuration written here
says `tls_engine pkcs11`, `tls_keyform engine` and gives the key's
`pkcs11:` URI as keyfile (libengine-pkcs11-openssl; SOFTHSM2_CONF in the
broker's environment).  So the
broker runs with the very key and certificate a deployment has, and its
cafile is exactly the operator CA — no test CA to trust.  The engine is
pointed straight at SoftHSM2 by an OpenSSL configuration (OPENSSL_CONF,
MODULE_PATH) rather than through p11-kit's proxy, which loads every
registered module (engine_env says why).  (libp11 0.4.12
does not read `pin-source`, so the URI carries `pin-value`; the file is
0600, as the PIN file is.)

The hub's MQTT client.  Its real key (hub_tls_key) is in the token too, and
Python's ssl module cannot use an engine.  The test therefore makes a
client certificate CN=hub for a fresh software key, signed by the operator
CA through the same engine (`openssl x509 -engine pkcs11 -CAkeyform
engine`) — what the hub's certificate is, with a key the test can hold.
The same way it makes two certificates the registry never issued: CN of a
device that does not exist, and CN of a real device (a CA misused).  A
fourth comes from a CA of its own making (the foreign CA of B01).

Clients are paho (python3-paho-mqtt 1.6, MQTT 5, TLS through an
ssl.SSLContext).  MQTT username = certificate CN = client id (the listener
leaves use_identity_as_username off: with it Mosquitto 2.0.11 never calls
the plugin's authentication, see docs/broker.md).  paho 1.6 does not hand
PUBACK reason codes to on_publish; the Session class below reads them from
the packet.

What it asserts (each test named after its threat row):
  C01  a device's publish on its own mt/v1/<id>/up/vitals reaches the hub's
       shared subscription ($share/hub/mt/v1/+/up/#); on another device's
       up/ topic, on its own down/, on an unknown up/ leaf, one level too
       deep, with "..", under an id that is a prefix of its own, or
       retained: PUBACK 0x87 and the hub receives nothing of it.
  C02  a device subscribing to #, mt/v1/+/up/#, $SYS/#,
       $share/x/mt/v1/+/up/#, the hub's shared filter, its own up/#, or
       another device's down/#: SUBACK 0x87; its own down/# is granted and
       it receives its own commands and nobody else's.
  C07  TLS without a client certificate, plain TCP, a username and password
       without a certificate: no session.
  C08  the hub identity publishing on up/, subscribing to # or to the
       unshared up/ filter, publishing retained: refused; a device's
       certificate presented under the username "hub": refused.
  C09  a client id that is not the certificate's CN (another device's id, a
       longer id, an id beside the hub identity): refused, and the victim's
       session stays up.
  C11  a 65,000-byte topic and a 300-level topic: PUBACK 0x87, the broker
       lives on.
  B01  a certificate with the device's CN from a foreign CA: no session.
  B09  TLS 1.1, and TLS 1.2 with CBC suites: no session; TLS 1.2 with an
       ECDHE-ECDSA AES-GCM suite: accepted (the positive control).
  unknown identities  a certificate of the operator CA that the registry
       never issued — CN of no device, or CN of a real device: refused.
  B03  `medtrust device revoke ID --reason keyCompromise`: the device's live
       session is closed within 1 s of the command's return (the time is
       printed), its reconnection refused ("device revoked" in the log).
  D06  `medtrust device decommission ID`: likewise.
  C06  a device with a persistent session and QoS 1 commands queued for it
       is revoked while offline: its reconnection is refused and nothing
       queued is delivered; the broker survives dropping an offline session.
  B13/C10  the plugin refuses to load — Mosquitto exits non-zero — without
       plugin_opt_db_path, with a missing file, a file that is not SQLite, an
       SQLite database without the registry, an unknown option, a bad
       poll_ms or hub_identity.

Sanitizer build (MT_SANITIZE=ON in MT_BUILD_DIR's CMakeCache.txt): the
plugin is built with ASan and UBSan, and Mosquitto is not, so Mosquitto is
started with the compiler's ASan runtime in LD_PRELOAD and
ASAN_OPTIONS=detect_leaks=0 (Mosquitto's and OpenSSL's own allocations at
exit are not ours to judge); any ASan or UBSan report from the plugin ends
the broker and fails the test, and the broker's log is checked for
"runtime error" too.

Skipped (exit 77) only when mosquitto is not installed; a missing plugin,
paho or engine is a failure (scripts/deps.sh installs them).  MT_KEEP_TMP=1
keeps the deployment and the broker's log.
"""
import os
import pwd
import queue
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "onboard"))
import onboard_util as U  # noqa: E402

BUILD = os.environ.get("MT_BUILD_DIR") or os.path.dirname(os.path.abspath(U.BIN))
PLUGIN = os.path.join(BUILD, "medtrust_mosq.so")
AGENT = os.path.join(os.path.dirname(os.path.abspath(U.BIN)), "medtrust-device")
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
PERMISSIVE = ("est_rate 1000", "est_burst 1000")
AEAD_12 = ("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"
           "ECDHE-ECDSA-CHACHA20-POLY1305")
NOT_AUTHORIZED = 0x87
HUB_FILTER = "$share/hub/mt/v1/+/up/#"
WAIT = 5.0  # seconds for anything that should happen at once

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
except ImportError:  # reported in __main__
    mqtt = None


def engine_env(d):
    """The environment for OpenSSL's pkcs11 engine over the hub's token: an
    OpenSSL configuration that points the engine straight at SoftHSM2.
    Without it libp11 loads p11-kit's proxy, which loads every registered
    module — OpenSC's too, and OpenSC deadlocked in its glib start-up in a
    Mosquitto with the ASan runtime preloaded."""
    cnf = d.p("engine-openssl.cnf")
    if not os.path.exists(cnf):
        with open(cnf, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
                    "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\n"
                    "engine_id = pkcs11\nMODULE_PATH = %s\n" % U.MODULE)
    return U.clean_env({"SOFTHSM2_CONF": d.p("HUB", "softhsm2.conf"), "OPENSSL_CONF": cnf})


def broker_env(d):
    """The environment of mosquitto: the engine's (engine_env), and in the
    sanitizer build the ASan runtime preloaded (U.asan_preload_env)."""
    env = engine_env(d)
    env.update(U.asan_preload_env(BUILD))
    return env


# ---- certificates made by the test ------------------------------------------

def operator_cert(d, name, cn):
    """A client certificate for a fresh P-256 software key, CN=cn, signed by
    the operator CA whose key is in the hub's token (through the engine)."""
    key = d.p("client", name + ".key")
    csr = d.p("client", name + ".csr")
    crt = d.p("client", name + ".pem")
    ext = d.p("client", name + ".ext")
    U.gen_p256(key)
    os.chmod(key, 0o600)
    U.ossl(["req", "-new", "-key", key, "-subj", "/CN=%s" % cn, "-out", csr])
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n")
    serial = "0x" + os.urandom(16).hex()
    r = U.sh(["openssl", "x509", "-req", "-in", csr, "-engine", "pkcs11", "-CAkeyform",
              "engine", "-CA", d.ca, "-CAkey", "pkcs11:token=medtrust-hub;object=ca;type=private",
              "-passin", "file:" + d.p("HUB", "secrets", "hub.pin"), "-set_serial", serial,
              "-days", "2", "-extfile", ext, "-out", crt],
             env=engine_env(d))
    if r.returncode != 0:
        raise RuntimeError("signing %s with the operator CA through the engine: %s" %
                           (name, r.stderr.decode(errors="replace")))
    return crt, key


def foreign_cert(d, cn):
    """A client certificate CN=cn from a CA of the test's own making."""
    ca_key, ca = d.p("client", "foreign-ca.key"), d.p("client", "foreign-ca.pem")
    key, csr, crt = (d.p("client", "foreign-%s" % x) for x in ("leaf.key", "leaf.csr",
                                                                 "leaf.pem"))
    U.gen_p256(ca_key)
    U.ossl(["req", "-x509", "-new", "-key", ca_key, "-subj", "/CN=medtrust operator CA",
            "-days", "2", "-out", ca])
    U.gen_p256(key)
    U.ossl(["req", "-new", "-key", key, "-subj", "/CN=%s" % cn, "-out", csr])
    U.ossl(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial",
            "0x" + os.urandom(12).hex(), "-days", "2", "-out", crt])
    return crt, key


# ---- the broker ---------------------------------------------------------------

class Broker:
    """A private mosquitto with the plugin, its configuration written here."""

    def __init__(self, d, name, opts=None):
        self.d = d
        self.name = name
        self.opts = {"db_path": d.db} if opts is None else opts
        self.conf = d.p("%s.conf" % name)
        self.logpath = d.p("%s.log" % name)
        self.proc = None
        self.port = None

    def write_conf(self, port):
        with open(self.d.p("HUB", "secrets", "hub.pin")) as f:
            pin = f.read().strip()
        lines = [
            "# written by tests/broker/test_broker.py",
            "per_listener_settings false",
            "allow_anonymous false",
            "persistence false",
            "user %s" % pwd.getpwuid(os.getuid()).pw_name,
            "log_dest stderr",
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "connection_messages true",
            "set_tcp_nodelay true",
            "max_inflight_messages 0",
            "plugin %s" % PLUGIN,
        ]
        lines += ["plugin_opt_%s %s" % kv for kv in self.opts.items()]
        lines += [
            "listener %d 127.0.0.1" % port,
            "cafile %s" % self.d.ca,
            "certfile %s" % self.d.p("HUB", "pki", "broker-tls.pem"),
            "keyfile pkcs11:token=medtrust-hub;object=broker-tls;type=private?pin-value=%s"
            % pin,
            "tls_engine pkcs11",
            "tls_keyform engine",
            "require_certificate true",
            "use_identity_as_username false",
            "tls_version tlsv1.2",
            "ciphers %s" % AEAD_12,
        ]
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def start(self):
        """Start and wait until it listens; RuntimeError if it does not."""
        for _ in range(3):
            self.port = U.free_port()
            self.write_conf(self.port)
            logf = open(self.logpath, "wb")
            self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=logf,
                                         stderr=subprocess.STDOUT,
                                         env=broker_env(self.d))
            logf.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if " running" in self.log():
                    try:
                        socket.create_connection(("127.0.0.1", self.port), 1).close()
                        return
                    except OSError:
                        pass
                time.sleep(0.02)
            rc = self.stop()
            if "Address already in use" not in self.log():
                raise RuntimeError("mosquitto did not start (exit %r):\n%s" % (rc, self.log()))
        raise RuntimeError("mosquitto found no free port:\n%s" % self.log())

    def run_to_exit(self, timeout=15):
        """Start a broker that should refuse to start: (exit status, log)."""
        self.write_conf(U.free_port())
        with open(self.logpath, "wb") as logf:
            p = subprocess.run([MOSQUITTO, "-c", self.conf], stdout=logf,
                               stderr=subprocess.STDOUT, env=broker_env(self.d),
                               timeout=timeout)
        return p.returncode, self.log()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        self.proc = None
        return rc


# ---- MQTT 5 clients --------------------------------------------------------------

if mqtt is not None:
    class _Client(mqtt.Client):
        """paho 1.6's client, keeping the reason code of each PUBACK (its
        on_publish is given only the packet id)."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.puback = {}
            self.puback_cv = threading.Condition()

        def _sock_recv(self, bufsize):
            # A TLS alert after the handshake (TLS 1.3 refuses a client
            # certificate only then) is a lost connection, not a crash of
            # paho's network thread.
            try:
                return super()._sock_recv(bufsize)
            except ssl.SSLError as e:
                if isinstance(e, (ssl.SSLWantReadError, ssl.SSLWantWriteError)):
                    raise
                raise ConnectionResetError(str(e))

        def _handle_pubackcomp(self, cmd):
            pkt = self._in_packet["packet"]
            if cmd == "PUBACK" and len(pkt) >= 2:
                mid = struct.unpack("!H", pkt[:2])[0]
                with self.puback_cv:
                    self.puback[mid] = pkt[2] if len(pkt) > 2 else 0
                    self.puback_cv.notify_all()
            return super()._handle_pubackcomp(cmd)


class Refused(Exception):
    pass


class Session:
    """One MQTT 5 connection over TLS as a device or the hub."""

    def __init__(self, port, cert, key, password=None, username=None, client_id=None,
                 clean_start=True, expiry=None, ctx=None, ca=None):
        self.port = port
        self.cid = client_id if client_id is not None else username
        self.c = _Client(client_id=self.cid, protocol=mqtt.MQTTv5)
        if ctx is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_verify_locations(ca)
            if cert:
                ctx.load_cert_chain(cert, key, password=password)
        self.c.tls_set_context(ctx)
        if username is not None:
            self.c.username_pw_set(username)
        self.clean_start = clean_start
        self.expiry = expiry
        self.connack = None
        self.connected = threading.Event()
        self.gone = threading.Event()
        self.gone_at = None
        self.gone_rc = None
        self.msgs = queue.Queue()
        self.subacks = {}
        self.sub_cv = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.msgs.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = self._on_subscribe

    def _on_connect(self, c, u, flags, rc, props=None):
        self.connack = rc.value if hasattr(rc, "value") else int(rc)
        self.connected.set()

    def _on_disconnect(self, c, u, rc, props=None):
        if self.gone_at is None:
            self.gone_at = time.monotonic()
            self.gone_rc = rc
        self.gone.set()
        # No automatic reconnection: every connection here is deliberate.
        try:
            c.disconnect()
        except Exception:
            pass

    def _on_subscribe(self, c, u, mid, rcs, props=None):
        with self.sub_cv:
            self.subacks[mid] = [x.value if hasattr(x, "value") else int(x) for x in rcs]
            self.sub_cv.notify_all()

    def connect(self):
        """Connect: the CONNACK reason code (0 = accepted); Refused when no
        CONNACK came (TLS refused, connection closed)."""
        props = Properties(PacketTypes.CONNECT)
        if self.expiry:
            props.SessionExpiryInterval = self.expiry
        try:
            self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.clean_start,
                           properties=props)
        except (ssl.SSLError, OSError) as e:
            raise Refused("TLS/TCP: %s" % e)
        self.c.loop_start()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.connected.wait(0.05):
                return self.connack
            if self.gone.is_set():
                break
        self.close()
        raise Refused("no CONNACK (disconnected: %r)" % (self.gone_rc,))

    def publish(self, topic, payload, retain=False):
        """QoS 1 publish: the PUBACK reason code."""
        info = self.c.publish(topic, payload, qos=1, retain=retain)
        deadline = time.monotonic() + WAIT
        with self.c.puback_cv:
            while info.mid not in self.c.puback:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no PUBACK for %r" % topic[:80])
                self.c.puback_cv.wait(left)
            return self.c.puback.pop(info.mid)

    def subscribe(self, flt):
        """Subscribe QoS 1: the SUBACK reason code."""
        rc, mid = self.c.subscribe(flt, qos=1)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError("subscribe %r not sent: %d" % (flt, rc))
        deadline = time.monotonic() + WAIT
        with self.sub_cv:
            while mid not in self.subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no SUBACK for %r" % flt)
                self.sub_cv.wait(left)
            return self.subacks.pop(mid)[0]

    def received(self, wait=0.0):
        out = []
        deadline = time.monotonic() + wait
        while True:
            try:
                out.append(self.msgs.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


def agent_once(d, dev_dir):
    return subprocess.run([AGENT, "run", "--device", dev_dir, "--hub", d.url(""), "--hub-ca",
                           d.ca, "--once"], capture_output=True, env=U.clean_env(),
                          timeout=60)


# ---- the tests ---------------------------------------------------------------------

class BrokerCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = U.Deployment("mt-broker-", PERMISSIVE)
        cls.broker = None
        cls.hub = None
        try:
            cls._setup()
        except BaseException:
            cls._teardown()
            raise

    @classmethod
    def _setup(cls):
        d = cls.d
        d.mfg_init("MFG", U.ACME)
        cls.serials = d.mfg_make("MFG", "LOT", 5)
        d.trust("MFG")
        r = d.import_manifest(d.p("LOT", "manifest.cose"))
        assert r.returncode == 0, r.stderr
        # Certificates the test makes, before any daemon holds the token.
        cls.hub_cert = operator_cert(d, "hub-client", "hub")
        cls.ghost_cert = operator_cert(d, "ghost", "ghost-device-1")
        cls.forged_cert = operator_cert(d, "forged", cls.serials[0])
        cls.foreign_cert = foreign_cert(d, cls.serials[0])
        d.start()
        for s in cls.serials:
            r = agent_once(d, d.p("LOT", s))
            assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert d.stop() == 0, d.daemon_log()
        cls.A, cls.B, cls.C, cls.D, cls.E = cls.serials
        cls.broker = Broker(d, "mosquitto")
        cls.broker.start()
        cls.hub = cls.session_hub()
        assert cls.hub.connect() == 0, cls.broker.log()
        assert cls.hub.subscribe(HUB_FILTER) == 1, cls.broker.log()

    @classmethod
    def _teardown(cls):
        if cls.hub is not None:
            cls.hub.close()
        if cls.broker is not None:
            cls.broker.stop()
            log = cls.broker.log()
            if os.environ.get("MT_KEEP_TMP"):
                print("broker log: %s" % cls.broker.logpath)
            assert "runtime error" not in log and "AddressSanitizer" not in log, log
        cls.d.stop()
        cls.d.cleanup()

    @classmethod
    def tearDownClass(cls):
        cls._teardown()

    def setUp(self):
        self.hub.received(0)  # what earlier tests left

    def tearDown(self):
        self.assertTrue(self.broker.alive(), "the broker died:\n" + self.broker.log())

    # -- helpers --
    @classmethod
    def session_hub(cls, **kw):
        kw.setdefault("username", "hub")
        return Session(cls.broker.port, *cls.hub_cert, ca=cls.d.ca, **kw)

    def device(self, serial, connect=True, **kw):
        dev = self.d.p("LOT", serial)
        kw.setdefault("username", serial)
        s = Session(self.broker.port, os.path.join(dev, "op.pem"),
                    os.path.join(dev, "ldev.key"), password=U.PASS,
                    ca=os.path.join(dev, "hub-ca.pem"), **kw)
        if connect:
            self.assertEqual(s.connect(), 0, self.broker.log())
            self.addCleanup(s.close)
        return s

    def refused(self, s, what):
        """s must not get a session: TLS refusal, no CONNACK, or CONNACK ≥ 0x80."""
        try:
            rc = s.connect()
        except Refused:
            return
        s.close()
        self.assertGreaterEqual(rc, 0x80, "%s: accepted (CONNACK %r)" % (what, rc))

    def hub_gets(self, topic, payload, wait=WAIT):
        """Wait until the hub receives (topic, payload); what came before it."""
        seen = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for m in self.hub.received(0.05):
                if m == (topic, payload):
                    return seen
                seen.append(m)
        self.fail("the hub did not receive %r on %s; got %r" % (payload, topic, seen))

    def log_has(self, text, wait=2.0):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if text in self.broker.log():
                return True
            time.sleep(0.02)
        return False

    # -- C01: publishing --
    def test_C01_own_up_topic_reaches_the_hub(self):
        a = self.device(self.A)
        for kind in ("vitals", "alert", "status", "ack"):
            topic = "mt/v1/%s/up/%s" % (self.A, kind)
            payload = b"C01-own-" + kind.encode() + os.urandom(4).hex().encode()
            self.assertEqual(a.publish(topic, payload), 0)
            self.hub_gets(topic, payload)

    def test_C01_publish_outside_own_up_refused(self):
        a = self.device(self.A)
        bad = b"C01-forbidden-" + os.urandom(4).hex().encode()
        topics = [
            "mt/v1/%s/up/vitals" % self.B,              # another device
            "mt/v1/%s/down/cmd" % self.A,               # its own down/
            "mt/v1/%s/up/firmware" % self.A,            # no such up/ leaf
            "mt/v1/%s/up/vitals/x" % self.A,            # one level too deep
            "mt/v1/%s/up/" % self.A,                    # an empty leaf
            "mt/v1/%s/up/../../%s/up/vitals" % (self.A, self.B),
            "mt/v1/%s/up/vitals" % self.A[:-1],         # a prefix of its id
            "mt/v1/%sx/up/vitals" % self.A,             # its id as a prefix
            "mt//v1/%s/up/vitals" % self.A,             # an empty level
            "MT/v1/%s/up/vitals" % self.A,              # case
            "$SYS/broker/x",
        ]
        for t in topics:
            self.assertEqual(a.publish(t, bad), NOT_AUTHORIZED, t)
        # Retained, even on its own topic.
        self.assertEqual(a.publish("mt/v1/%s/up/status" % self.A, bad, retain=True),
                         NOT_AUTHORIZED)
        marker = b"C01-marker-" + os.urandom(4).hex().encode()
        self.assertEqual(a.publish("mt/v1/%s/up/vitals" % self.A, marker), 0)
        before = self.hub_gets("mt/v1/%s/up/vitals" % self.A, marker)
        self.assertNotIn(bad, [p for _, p in before])
        self.assertTrue(self.log_has("denied %s: publish 'mt/v1/%s/up/vitals'" % (self.A, self.B)),
                        self.broker.log())

    def test_C11_huge_and_deep_topics_refused_broker_lives(self):
        a = self.device(self.A)
        long_topic = "mt/v1/%s/up/" % self.A + "v" * 65000
        self.assertEqual(a.publish(long_topic, b"x"), NOT_AUTHORIZED)
        self.assertEqual(a.subscribe("mt/v1/%s/down/" % self.A + "c" * 65000), NOT_AUTHORIZED)
        # Over 200 levels Mosquitto itself closes the connection (a protocol
        # error) before any ACL check: refused either way.
        deep = "mt/v1/%s/up/" % self.A + "/".join(["x"] * 300)
        for act in (lambda s: s.c.publish(deep, b"x", qos=1),
                    lambda s: s.c.subscribe(deep.replace("/up/", "/down/"), qos=1)):
            s = self.device(self.A)
            act(s)
            self.assertTrue(s.gone.wait(WAIT), "a 300-level topic was not refused")
        self.assertNotIn(b"x", [p for _, p in self.hub.received(0.2)])
        a = self.device(self.A)
        ok = b"C11-after-" + os.urandom(4).hex().encode()
        self.assertEqual(a.publish("mt/v1/%s/up/vitals" % self.A, ok), 0)
        self.hub_gets("mt/v1/%s/up/vitals" % self.A, ok)

    # -- C02: subscribing and receiving --
    def test_C02_device_subscriptions_refused_but_its_own_down(self):
        a = self.device(self.A)
        b = self.device(self.B)
        for flt in ("#", "+/#", "mt/#", "mt/v1/+/up/#", "$SYS/#", "$share/x/mt/v1/+/up/#",
                    HUB_FILTER, "mt/v1/%s/up/#" % self.A, "mt/v1/%s/down/#" % self.B,
                    "mt/v1/+/down/#", "mt/v1/%s/down/#" % self.A[:-1]):
            self.assertEqual(a.subscribe(flt), NOT_AUTHORIZED, flt)
        self.assertEqual(a.subscribe("mt/v1/%s/down/#" % self.A), 1)
        self.assertEqual(b.subscribe("mt/v1/%s/down/#" % self.B), 1)
        cmd_a, cmd_b = b"C02-for-A", b"C02-for-B"
        self.assertEqual(self.hub.publish("mt/v1/%s/down/cmd" % self.B, cmd_b), 0)
        self.assertEqual(self.hub.publish("mt/v1/%s/down/cmd" % self.A, cmd_a), 0)
        got_b = b.received(1.0)
        self.assertEqual(got_b, [("mt/v1/%s/down/cmd" % self.B, cmd_b)])
        got_a = a.received(0.2)
        self.assertEqual(got_a, [("mt/v1/%s/down/cmd" % self.A, cmd_a)])
        # Nothing a device publishes on up/ comes back to a device.
        self.assertEqual(b.publish("mt/v1/%s/up/vitals" % self.B, b"C02-up"), 0)
        self.hub_gets("mt/v1/%s/up/vitals" % self.B, b"C02-up")
        self.assertEqual(a.received(0.2), [])

    # -- C07, B01, B09: who may not even connect --
    def test_C07_no_certificate_plain_tcp_password_refused(self):
        s = Session(self.broker.port, None, None, username=self.A, ca=self.d.ca)
        self.refused(s, "TLS without a client certificate")
        s = Session(self.broker.port, None, None, username=self.A, ca=self.d.ca)
        s.c.username_pw_set(self.A, "a password")
        self.refused(s, "username and password, no certificate")
        # Plain TCP: an MQTT 5 CONNECT in the clear gets no CONNACK.
        cid = self.A.encode()
        body = (b"\x00\x04MQTT\x05\x02\x00\x1e\x00" + struct.pack("!H", len(cid)) + cid)
        pkt = b"\x10" + bytes([len(body)]) + body
        with socket.create_connection(("127.0.0.1", self.broker.port), WAIT) as sock:
            sock.sendall(pkt)
            sock.settimeout(WAIT)
            try:
                data = sock.recv(64)
            except (ConnectionResetError, socket.timeout):
                data = b""
        self.assertFalse(data.startswith(b"\x20"), "CONNACK over plain TCP: %r" % data)

    def test_B01_foreign_ca_refused(self):
        s = Session(self.broker.port, *self.foreign_cert, username=self.A, ca=self.d.ca)
        self.refused(s, "certificate of a foreign CA")

    def test_B09_old_tls_and_cbc_suites_refused(self):
        dev = self.d.p("LOT", self.A)

        def ctx(maxv, ciphers=None, minv=None):
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.load_verify_locations(self.d.ca)
            c.load_cert_chain(os.path.join(dev, "op.pem"), os.path.join(dev, "ldev.key"),
                              password=U.PASS)
            if minv is not None:
                c.minimum_version = minv
            c.maximum_version = maxv
            if ciphers:
                c.set_ciphers(ciphers)
            return c

        with warnings.catch_warnings():  # asking for TLS 1.0/1.1 is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            old_tls = ctx(ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0", ssl.TLSVersion.TLSv1)
        for what, c in (
                ("TLS 1.1", old_tls),
                ("TLS 1.2 CBC", ctx(ssl.TLSVersion.TLSv1_2,
                                    "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:"
                                    "ECDHE-ECDSA-AES128-SHA"))):
            self.refused(Session(self.broker.port, None, None, username=self.A, ctx=c), what)
        ok = Session(self.broker.port, None, None, username=self.A,
                     ctx=ctx(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256",
                             ssl.TLSVersion.TLSv1_2))
        self.assertEqual(ok.connect(), 0)
        ok.close()

    # -- identities the registry does not vouch for --
    def test_unknown_identities_refused(self):
        s = Session(self.broker.port, *self.ghost_cert, username="ghost-device-1",
                    ca=self.d.ca)
        self.refused(s, "operator-CA certificate, CN of no device")
        self.assertTrue(self.log_has("unknown device"), self.broker.log())
        s = Session(self.broker.port, *self.forged_cert, username=self.A, ca=self.d.ca)
        self.refused(s, "operator-CA certificate the registry never issued")
        self.assertTrue(self.log_has("certificate not issued by this registry"),
                        self.broker.log())

    # -- C08: the hub's limits, and the hub's name --
    def test_C08_hub_may_only_read_up_and_write_down(self):
        self.assertEqual(self.hub.publish("mt/v1/%s/up/vitals" % self.A, b"C08"),
                         NOT_AUTHORIZED)
        self.assertEqual(self.hub.publish("mt/v1/%s/down/cmd" % self.A, b"C08", retain=True),
                         NOT_AUTHORIZED)
        for flt in ("#", "mt/v1/+/up/#", "$share/other/mt/v1/+/up/#", "mt/v1/+/down/#",
                    "$SYS/#"):
            self.assertEqual(self.hub.subscribe(flt), NOT_AUTHORIZED, flt)
        self.assertLess(self.hub.publish("mt/v1/%s/down/rcpt" % self.A, b"C08-ok"), 0x80)

    def test_C08_device_certificate_as_hub_refused(self):
        dev = self.d.p("LOT", self.A)
        s = Session(self.broker.port, os.path.join(dev, "op.pem"),
                    os.path.join(dev, "ldev.key"), password=U.PASS, username="hub",
                    client_id="hub", ca=self.d.ca)
        self.refused(s, "a device certificate under the hub's username")

    # -- C09: client id = certificate identity --
    def test_C09_client_id_must_be_the_certificate_cn(self):
        b = self.device(self.B)
        for cid in (self.B, self.A + "x", "hub"):
            s = self.device(self.A, connect=False, client_id=cid)
            self.refused(s, "client id %s with %s's certificate" % (cid, self.A))
        s = self.session_hub(client_id=self.B)
        self.refused(s, "the hub's certificate with a device's client id")
        self.assertTrue(self.log_has("client id is not the certificate's CN"))
        # The victim's session was never taken over.
        self.assertFalse(b.gone.is_set())
        self.assertEqual(b.publish("mt/v1/%s/up/status" % self.B, b"C09-still-here"), 0)
        self.hub_gets("mt/v1/%s/up/status" % self.B, b"C09-still-here")
        # A second hub instance: <hub>/<suffix>.
        h2 = self.session_hub(client_id="hub/2")
        self.assertEqual(h2.connect(), 0)
        h2.close()

    # -- B03, D06, C06: revocation while connected, and offline --
    def kicked_within(self, serial, args, label):
        """Run `medtrust device ...` (args, ID where the serial goes) while
        the device is connected: it must be dropped within 1 s."""
        s = self.device(serial)
        self.assertEqual(s.subscribe("mt/v1/%s/down/#" % serial), 1)
        command = ["device"] + [serial if a == "ID" else a for a in args] + ["-c", self.d.conf]
        t0 = time.monotonic()
        r = self.d.mt(command)
        t1 = time.monotonic()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(s.gone.wait(WAIT), "%s: session not closed" % label)
        after_start = (s.gone_at - t0) * 1000
        after_exit = (s.gone_at - t1) * 1000
        print("\n  %s: session closed %.0f ms after `medtrust %s` started, %.0f ms after "
              "it returned (it ran %.0f ms)" % (label, after_start, " ".join(command[:2]),
                                                after_exit, (t1 - t0) * 1000))
        self.assertLess(after_exit, 1000, label)
        self.assertLess(after_start, 5000, label)  # B03: ≤ 5 s after the revocation
        return s

    def test_B03_revoked_device_kicked_and_refused(self):
        self.kicked_within(self.C, ["revoke", "ID", "--reason", "keyCompromise"], "B03 revoke")
        self.refused(self.device(self.C, connect=False), "revoked device reconnecting")
        self.assertTrue(self.log_has("device revoked"), self.broker.log())

    def test_D06_decommissioned_device_kicked_and_refused(self):
        self.kicked_within(self.D, ["decommission", "ID"], "D06 decommission")
        self.refused(self.device(self.D, connect=False), "decommissioned device reconnecting")
        self.assertTrue(self.log_has("device decommissioned"), self.broker.log())

    def test_C06_queued_messages_of_a_revoked_persistent_session_not_delivered(self):
        e = self.device(self.E, clean_start=False, expiry=86400)
        self.assertEqual(e.subscribe("mt/v1/%s/down/#" % self.E), 1)
        e.close()
        self.assertTrue(e.gone.wait(WAIT))
        for i in range(2):
            self.assertLess(self.hub.publish("mt/v1/%s/down/cmd" % self.E, b"C06-%d" % i),
                            0x80)
        r = self.d.mt(["device", "revoke", self.E, "--reason", "keyCompromise", "-c",
                       self.d.conf])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(self.log_has("device %s is revoked" % self.E), self.broker.log())
        again = self.device(self.E, connect=False, clean_start=False, expiry=86400)
        self.refused(again, "revoked device resuming its session")
        self.assertEqual(again.received(0.3), [])


class PluginRefusesToLoad(unittest.TestCase):
    """B13/C10: the broker does not start on a plugin configuration it cannot
    trust.  A deployment without devices is enough."""

    @classmethod
    def setUpClass(cls):
        cls.d = U.Deployment("mt-broker-load-")

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def refuses(self, opts, text):
        b = Broker(self.d, "refuse", opts)
        rc, log = b.run_to_exit()
        self.assertNotEqual(rc, 0, log)
        self.assertIn("not loading (fail closed)", log)
        self.assertIn(text, log)
        self.assertNotIn("running", log)

    def test_B13_C10_no_db_option(self):
        self.refuses({}, "plugin_opt_db_path")

    def test_B13_C10_db_missing(self):
        self.refuses({"db_path": self.d.p("HUB", "no-such.db")}, "cannot open the registry")

    def test_B13_C10_db_not_sqlite(self):
        self.refuses({"db_path": self.d.ca}, "cannot open the registry")

    def test_B13_C10_db_without_registry(self):
        path = self.d.p("empty.db")
        sqlite3.connect(path).execute("CREATE TABLE t(x)").connection.close()
        self.refuses({"db_path": path}, "cannot open the registry")

    def test_B13_C10_bad_options(self):
        self.refuses({"db_path": self.d.db, "hub_identiy": "hub"}, "unknown option")
        self.refuses({"db_path": self.d.db, "poll_ms": "fast"}, "plugin_opt_poll_ms")
        self.refuses({"db_path": self.d.db, "poll_ms": "0"}, "plugin_opt_poll_ms")
        self.refuses({"db_path": self.d.db, "hub_identity": "hub/+"}, "plugin_opt_hub_identity")

    def test_B13_good_configuration_starts(self):
        # `medtrust init` makes the registry's tables with the database, so
        # a fresh deployment's broker starts (an empty registry lets only
        # the hub in).
        b = Broker(self.d, "good")
        try:
            b.start()
            self.assertIn("medtrust_mosq: registry", b.log())
        finally:
            b.stop()


class InitWrittenBroker(unittest.TestCase):
    """The broker `medtrust init` configures, run by `medtrust broker run`:
    it starts with the broker's TLS key inside the hub's token, the plugin
    loaded on the deployment's registry, mutual TLS only; the hub's
    identity gets in, a client without a certificate does not; SIGTERM
    stops it cleanly.  The configuration file holds the token PIN, so it is
    0600 in a 0700 directory."""

    def test_init_broker_configuration_runs(self):
        port = U.free_port()
        d = U.Deployment("mt-broker-init-", (), ["--broker-port", str(port),
                                                 "--broker-plugin", PLUGIN])
        proc = None
        try:
            mconf = d.p("HUB", "mosquitto", "mosquitto.conf")
            self.assertEqual(os.stat(d.p("HUB", "mosquitto")).st_mode & 0o777, 0o700)
            self.assertEqual(os.stat(mconf).st_mode & 0o777, 0o600)
            with open(d.conf) as f:
                text = f.read()
            self.assertIn("mosquitto_conf %s\n" % mconf, text)
            self.assertIn("broker_port %d\n" % port, text)
            env = broker_env(d)
            env.pop("OPENSSL_CONF", None)  # `broker run` sets its own
            log = open(d.p("init-broker.log"), "wb")
            proc = subprocess.Popen([U.BIN, "broker", "run", "-c", d.conf], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            log.close()
            deadline = time.monotonic() + 15
            up = False
            while time.monotonic() < deadline and proc.poll() is None:
                with open(d.p("init-broker.log"), "rb") as f:
                    if b" running" in f.read():
                        up = True
                        break
                time.sleep(0.05)
            with open(d.p("init-broker.log"), "rb") as f:
                out = f.read().decode(errors="replace")
            self.assertTrue(up, out)
            self.assertIn("medtrust_mosq: registry", out)
            crt, key = operator_cert(d, "init-hub", "hub")
            hub = Session(port, crt, key, username="hub", client_id="hub", ca=d.ca)
            self.assertEqual(hub.connect(), 0)
            hub.close()
            anon = Session(port, None, None, username="hub", client_id="hub", ca=d.ca)
            with self.assertRaises(Refused):
                anon.connect()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=10), 0)
            proc = None
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
            d.cleanup()

    def test_C12_C13_H02_one_plugin_one_tls_listener_bad_first_packets(self):
        """C12: the configuration loads exactly one plugin, ours (nothing that
        could rewrite topics after authorisation); C13: the running broker
        listens on the one TLS port and nothing else; H02: over TLS, a first
        packet that is not CONNECT, or random bytes, ends the connection at
        once, and the broker lives on."""
        port = U.free_port()
        d = U.Deployment("mt-broker-scan-", (), ["--broker-port", str(port),
                                                 "--broker-plugin", PLUGIN])
        proc = None
        try:
            with open(d.p("HUB", "mosquitto", "mosquitto.conf")) as f:
                lines = [ln.split() for ln in f if ln.strip() and not ln.startswith("#")]
            keys = [ln[0] for ln in lines]
            self.assertEqual([ln[1:] for ln in lines if ln[0] == "plugin"], [[PLUGIN]])
            self.assertEqual(keys.count("listener"), 1)
            for absent in ("port", "auth_plugin", "acl_file", "password_file", "bridge"):
                self.assertNotIn(absent, keys)
            env = broker_env(d)
            env.pop("OPENSSL_CONF", None)
            log = open(d.p("scan-broker.log"), "wb")
            proc = subprocess.Popen([U.BIN, "broker", "run", "-c", d.conf], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            log.close()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and proc.poll() is None:
                with open(d.p("scan-broker.log"), "rb") as f:
                    if b" running" in f.read():
                        break
                time.sleep(0.05)
            # C13: the broker's listening sockets, from /proc
            inodes = set()
            for fd in os.listdir("/proc/%d/fd" % proc.pid):
                try:
                    target = os.readlink("/proc/%d/fd/%s" % (proc.pid, fd))
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
            listening = set()
            for table in ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"):
                with open(table) as f:
                    for row in f.readlines()[1:]:
                        cols = row.split()
                        if cols[9] in inodes and (cols[3] == "0A" or "udp" in table):
                            listening.add((table.rsplit("/", 1)[1],
                                           int(cols[1].rsplit(":", 1)[1], 16)))
            self.assertTrue(listening, "the broker listens on nothing")
            self.assertEqual({p for _, p in listening}, {port}, listening)
            self.assertFalse([t for t, _ in listening if t.startswith("udp")])
            # H02: bad first packets over an authenticated TLS connection
            crt, key = operator_cert(d, "scan-hub", "hub")
            ctx = ssl.create_default_context(cafile=d.ca)
            ctx.load_cert_chain(crt, key)
            bad = [bytes([0x30, 0x07, 0x00, 0x03]) + b"a/b" + b"hi",  # PUBLISH first
                   bytes([0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00]),  # SUBSCRIBE first
                   os.urandom(64)]
            for payload in bad:
                with socket.create_connection(("127.0.0.1", port), 5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                        tls.sendall(payload)
                        tls.settimeout(5)
                        t0 = time.monotonic()
                        try:
                            got = tls.recv(16)
                        except (ConnectionError, ssl.SSLError):
                            got = b""
                        self.assertEqual(got, b"", payload)
                        self.assertLess(time.monotonic() - t0, 3)
            self.assertIsNone(proc.poll(), "the broker died")
            hub = Session(port, crt, key, username="hub", client_id="hub", ca=d.ca)
            self.assertEqual(hub.connect(), 0)
            hub.close()
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
            d.cleanup()


def setUpModule():
    # paho 1.6 leaves the socket of a refused TLS handshake to the garbage
    # collector; the warning says nothing about the broker.  (Here, not at
    # import: unittest's runner resets the warning filters before it runs.)
    warnings.simplefilter("ignore", ResourceWarning)


if __name__ == "__main__":
    if MOSQUITTO is None:
        print("skip: mosquitto is not installed (scripts/deps.sh)")
        sys.exit(77)
    problems = U.missing_tools()
    if problems is None and not os.access(AGENT, os.X_OK):
        problems = "medtrust-device not found next to %s" % U.BIN
    if problems is None and mqtt is None:
        problems = "python3-paho-mqtt is not installed (scripts/deps.sh)"
    if problems is None and not os.path.exists(PLUGIN):
        problems = "the plugin %s was not built (is mosquitto-dev installed?)" % PLUGIN
    if problems is None:
        edir = U.ossl(["version", "-e"]).stdout.decode().split('"')
        if len(edir) < 2 or not os.path.exists(os.path.join(edir[1], "pkcs11.so")):
            problems = "the OpenSSL pkcs11 engine is missing (libengine-pkcs11-openssl)"
    if problems:
        print("FAIL: %s" % problems)
        sys.exit(1)
    unittest.main(verbosity=2)
