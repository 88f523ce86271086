"""telemetry_util.py — a whole deployment for the telemetry tests: the hub
(`medtrustd`), its own broker (`medtrust broker run`: mosquitto with the
medtrust_mosq plugin), soft devices made and onboarded the way a hospital
does it, the fleet simulator, and a TCP relay that can take a device
offline or degrade its link (threats FI12, FI14).

The ledger: the simulator writes every counter it sealed (<id>.sent) and
every receipt range (<id>.rcpt) into a directory; `reconcile` compares them
with the hub's store (data.db, read-only: device ids and counters are the
plain columns) — the checker of threats.md §2: lost = receipted ∖ stored,
duplicates in storage, unexpected = stored ∖ sent.
"""
import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "onboard"))
import onboard_util as U  # noqa: E402

BUILD = os.environ.get("MT_BUILD_DIR") or os.path.dirname(os.path.abspath(U.BIN))
PLUGIN = os.path.join(BUILD, "medtrust_mosq.so")
AGENT = os.path.join(os.path.dirname(os.path.abspath(U.BIN)), "medtrust-device")


def missing_tools():
    why = U.missing_tools()
    if why:
        return why
    for path in (PLUGIN, AGENT):
        if not os.path.exists(path):
            return "%s not built" % path
    if not os.path.exists("/usr/sbin/mosquitto"):
        return "mosquitto missing"
    return None


class Relay:
    """A TCP relay 127.0.0.1:port → 127.0.0.1:target.  `offline()` drops
    every connection and refuses new ones until `online()`; `delay` (s)
    holds each chunk before forwarding; `chunk` splits writes."""

    def __init__(self, target):
        self.target = target
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.up = True
        self.delay = 0.0
        self.chunk = 0
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _pump(self, a, b):
        try:
            while not self.stopping:
                data = a.recv(65536)
                if not data:
                    break
                if self.delay:
                    time.sleep(self.delay)
                step = self.chunk or len(data)
                for i in range(0, len(data), step):
                    b.sendall(data[i:i + step])
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), 5)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def offline(self):
        self.up = False
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []

    def online(self):
        self.up = True

    def close(self):
        self.stopping = True
        self.offline()
        self.srv.close()


class Deployment:
    """HUB made by `medtrust init`, a manufacturer, lots of soft devices."""

    def __init__(self, prefix, hub_conf=()):
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        self.hub = self.p("HUB")
        self.conf = self.p("HUB", "medtrust.conf")
        self.data = self.p("HUB", "data.db")
        self.broker_port = U.free_port()
        self.hub_port = U.free_port()
        self.procs = {}
        U.sh([U.BIN, "init", self.hub, "--broker-port", str(self.broker_port),
              "--broker-plugin", PLUGIN], check=True)
        with open(self.conf, "a") as f:
            f.write("\n# added by tests/telemetry\nhub_port %d\nest_rate 1000\n"
                    "est_burst 1000\n" % self.hub_port)
            for line in hub_conf:
                f.write(line + "\n")
        U.sh([U.BIN, "mfg", "init", self.p("mfg"), "--name", "Acme Medical"], check=True)
        U.sh([U.BIN, "trust", "add-manufacturer", self.p("mfg", "root.pem"), "-c",
              self.conf], check=True)
        self.ledger = self.p("ledger")
        os.mkdir(self.ledger)

    def p(self, *names):
        return os.path.join(self.tmp, *names)

    def env(self, extra=None):
        return U.clean_env(extra)

    def make_lot(self, name, count, cls="wearable", prefix=None):
        args = [U.BIN, "mfg", "make", "--mfg", self.p("mfg"), "--count", str(count),
                "--class", cls, "--out", self.p(name), "--soft"]
        if prefix:
            args += ["--prefix", prefix]
        U.sh(args, check=True)
        U.sh([U.BIN, "manifest", "import", self.p(name, "manifest.cose"), "-c", self.conf],
             check=True)
        return sorted(x for x in os.listdir(self.p(name))
                      if os.path.isdir(self.p(name, x)))

    # -- processes --
    def _start(self, name, args, env=None, ready=None, timeout=20):
        log = open(self.p(name + ".log"), "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                env=env or self.env())
        log.close()
        self.procs[name] = proc
        deadline = time.monotonic() + timeout
        while ready is not None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("%s exited %s:\n%s" % (name, proc.returncode, self.log(name)))
            if ready():
                return proc
            time.sleep(0.05)
        if ready is not None:
            raise RuntimeError("%s not ready:\n%s" % (name, self.log(name)))
        return proc

    def log(self, name):
        try:
            with open(self.p(name + ".log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _listening(self, port):
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            return False

    def start_hub(self, env=None):
        return self._start("hub", [U.daemon_path(), "-c", self.conf],
                           env=self.env(env), ready=lambda: self._listening(self.hub_port))

    def start_broker(self):
        return self._start("broker", [U.BIN, "broker", "run", "-c", self.conf],
                           env=self.env(U.asan_preload_env(BUILD)),
                           ready=lambda: self._listening(self.broker_port))

    def hub_connected(self, since=0):
        return self.log("hub").count("connected to the broker") > since

    def start_sim(self, name, lot, extra=(), broker=None, env=None):
        args = [AGENT, "sim", "--fleet", self.p(lot), "--hub",
                "https://localhost:%d" % self.hub_port, "--hub-ca",
                self.p("HUB", "pki", "ca.pem"), "--ledger", self.ledger, "--stats-s", "5"]
        if broker:
            args += ["--broker", broker]
        return self._start(name, args + list(extra), env=self.env(env))

    def send(self, name, sig):
        p = self.procs.get(name)
        if p is not None and p.poll() is None:
            p.send_signal(sig)

    def kill(self, name, sig=signal.SIGKILL, timeout=30):
        p = self.procs.get(name)
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def stop_all(self):
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def sanitizer_reports(self):
        """Reports of ASan, LSan or UBSan in any process log (in the
        sanitizer build every medtrust process runs instrumented)."""
        found = []
        for f in sorted(os.listdir(self.tmp)):
            if f.endswith(".log"):
                text = self.log(f[:-4])
                for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                               "runtime error:"):
                    if marker in text:
                        i = text.index(marker)
                        found.append("%s: %s" % (f, text[max(0, i - 200):i + 1500]))
        return found

    def cleanup(self):
        self.stop_all()
        found = self.sanitizer_reports()
        if not os.environ.get("MT_KEEP_TMP") and not found:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)
        if found:
            raise AssertionError("sanitizer reports (kept in %s):\n%s" %
                                 (self.tmp, "\n".join(found)))

    # -- the store and the ledger --
    def db(self):
        """A read-only connection to data.db, closed at the end of `with`
        (sqlite3's own context manager only commits: an idle read-only
        connection left open upsets other processes' WAL recovery)."""
        return contextlib.closing(sqlite3.connect("file:%s?mode=ro" % self.data, uri=True,
                                                  timeout=30))

    def stored(self):
        """{device: [ctr, ...]} of stored readings (with repeats, if any)."""
        out = {}
        if not os.path.exists(self.data):
            return out
        with self.db() as c:
            for dev, ctr in c.execute("SELECT dev, ctr FROM readings"):
                out.setdefault(dev, []).append(ctr)
            for dev, ctr in c.execute("SELECT dev, ctr FROM alerts"):
                out.setdefault(dev, []).append(ctr)
        return out

    def count_readings(self):
        if not os.path.exists(self.data):
            return 0
        with self.db() as c:
            return c.execute("SELECT count(*) FROM readings").fetchone()[0]

    def ledger_sets(self):
        sent, rcpt = {}, {}
        for f in os.listdir(self.ledger):
            dev, ext = f.rsplit(".", 1)
            with open(os.path.join(self.ledger, f)) as fh:
                for line in fh:
                    parts = line.split()
                    if ext == "sent" and len(parts) == 2:
                        sent.setdefault(dev, set()).add(int(parts[0]))
                    elif ext == "rcpt" and len(parts) == 2:
                        a, b = int(parts[0]), int(parts[1])
                        rcpt.setdefault(dev, []).append((a, b))
        return sent, rcpt

    def queue_sizes(self, lots):
        out = {}
        for lot in lots:
            for dev in os.listdir(self.p(lot)):
                q = self.p(lot, dev, "queue")
                if os.path.isdir(q):
                    out[dev] = sum(1 for x in os.listdir(q) if x.endswith(".pkt"))
        return out

    def reconcile(self, title):
        """Per device: sent, receipted, stored, lost, duplicates, unexpected,
        unreceipted-but-stored; printed; returns the totals."""
        sent, rcpt = self.ledger_sets()
        stored = self.stored()
        tot = dict(sent=0, receipted=0, stored=0, lost=0, dup=0, unexpected=0,
                   unsent=0, pending=0)
        print("\n%s — ledger per device (threats.md §2)" % title)
        print("%-22s %6s %6s %6s %5s %4s %5s %6s" % ("device", "sent", "rcpt", "stored", "lost",
                                                      "dup", "unexp", "unsent"))
        for dev in sorted(set(sent) | set(stored)):
            s = sent.get(dev, set())
            st_list = stored.get(dev, [])
            st = set(st_list)
            rc = set()
            for a, b in rcpt.get(dev, []):
                rc |= {c for c in s if a <= c <= b}
            row = dict(sent=len(s), receipted=len(rc), stored=len(st),
                       lost=len(rc - st), dup=len(st_list) - len(st),
                       unexpected=len(st - s), unsent=len(s - st), pending=len(st - rc))
            for k in tot:
                tot[k] += row[k]
            print("%-22s %6d %6d %6d %5d %4d %5d %6d" % (dev, row["sent"], row["receipted"],
                                                         row["stored"], row["lost"], row["dup"],
                                                         row["unexpected"], row["unsent"]))
        print("%-22s %6d %6d %6d %5d %4d %5d %6d" % ("TOTAL", tot["sent"], tot["receipted"],
                                                     tot["stored"], tot["lost"], tot["dup"],
                                                     tot["unexpected"], tot["unsent"]))
        sys.stdout.flush()
        return tot
