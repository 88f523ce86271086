"""console_util.py — what the tests that drive a whole deployment share:
the `medtrust` command line run against the deployment's conf, the
deployment's clean-up, and the hub with its broker and a streaming
simulator started the way test_console.py starts them.

A test class mixes DeploymentCli in before unittest.TestCase and keeps its
deployment (telemetry_util.Deployment) in `cls.d`.
"""
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
import telemetry_util as T  # noqa: E402


class DeploymentCli:
    """cli/cli_ok: `medtrust ARGS -c <the deployment's conf>` in its
    environment; cli_ok raises AssertionError on a non-zero exit and gives
    stdout (stripped when CLI_STRIP).  tearDownClass removes the
    deployment."""

    CLI_TIMEOUT = 120
    CLI_STRIP = False

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    @classmethod
    def cli(cls, *args):
        return subprocess.run([T.U.BIN] + list(args) + ["-c", cls.d.conf],
                              capture_output=True, env=cls.d.env(), timeout=cls.CLI_TIMEOUT)

    @classmethod
    def cli_ok(cls, *args):
        r = cls.cli(*args)
        if r.returncode != 0:
            raise AssertionError("medtrust %s: %d %s" % (" ".join(args), r.returncode,
                                                         r.stderr.decode()))
        out = r.stdout.decode()
        return out.strip() if cls.CLI_STRIP else out


def start_streaming(d, sim_args):
    """Start d's hub and broker, wait (30 s at most) for the hub to be
    connected, and start the simulator "sim" of lot "lot" with sim_args."""
    d.start_hub()
    d.start_broker()
    deadline = time.monotonic() + 30
    while not d.hub_connected() and time.monotonic() < deadline:
        time.sleep(0.1)
    d.start_sim("sim", "lot", sim_args)


def totp_code(secret_b32, t):
    """RFC 6238 (SHA-1, six digits, 30 s) with Python's own HMAC, not
    medtrust's: the code an authenticator shows for `secret_b32` at `t`."""
    import base64
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(t) // 30), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


def secret_on_page(page):
    """The base32 secret the /totp enrolment page shows."""
    import re

    m = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page)
    return m.group(1) if m else None
