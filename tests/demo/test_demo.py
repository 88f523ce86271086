"""test_demo.py — `make demo`'s own script, headless: a fresh deployment in
a temporary directory on free ports, 24 devices on two wards onboarding
zero-touch, the simulator sending; the script exits 0 only if the stored
readings grew (scripts/demo.sh --seconds).  The test also checks the story
it tells: every device onboarded, both wards' patients stored, the
console it prints opens with the nurse's one-time password on the live
ward of 24 patients, and the processes it started are gone afterwards.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "onboard"))
sys.path.insert(0, os.path.join(HERE, "..", "telemetry"))
sys.path.insert(0, os.path.join(HERE, "..", "console"))
import onboard_util as U  # noqa: E402
from test_console import Browser, csrf_of  # noqa: E402

ROOT = os.environ.get("MT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("MT_BUILD_DIR") or os.path.join(ROOT, "build")


class Demo(unittest.TestCase):
    def sign_in_as_nurse(self, tmp, port, otp):
        """The console the demo prints opens: the nurse's one-time password
        signs in, a new one is chosen, and the ward shows both wards'
        patients."""
        b = Browser(port, os.path.join(tmp, "demo", "hub", "pki", "ca.pem"))
        st, _, page = b.get("/login")
        self.assertEqual(st, 200, page)
        st, h, page = b.post("/login", {"user": "nurse", "password": otp,
                                         "csrf": csrf_of(page)})
        self.assertEqual((st, h.get("Location")), (303, "/password"), page)
        st, _, page = b.get("/password")
        new = "demo-nurse-Passw0rd!"
        st, h, page = b.post("/password", {"current": otp, "new": new, "repeat": new,
                                            "csrf": csrf_of(page)})
        self.assertEqual((st, h.get("Location")), (303, "/ward"), page)
        st, _, page = b.get("/ward")
        self.assertEqual(st, 200, page)
        self.assertIn("Ward A (cardiology)", page)
        self.assertIn("Ward B (respiratory)", page)
        self.assertEqual(page.count('<article class="tile'), 24, page[-3000:])
        self.assertIn("Ada Lovelace", page)

    def test_demo_headless_readings_grow(self):
        if not os.path.exists(os.path.join(BUILD, "medtrust_mosq.so")):
            self.skipTest("the mosquitto plugin is not built")
        tmp = tempfile.mkdtemp(prefix="mt-demo-")
        try:
            env = U.clean_env({"MT_DEMO_DIR": os.path.join(tmp, "demo"),
                               "MT_BUILD_DIR": BUILD})
            env.pop("MEDTRUST_KEY_PASSPHRASE", None)
            env.update(U.asan_preload_env(BUILD))
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"), "--fresh",
                                "--seconds", "40", "--hub-port", str(U.free_port()),
                                "--broker-port", str(U.free_port())],
                               capture_output=True, env=env, timeout=600)
            out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
            print(out[-3000:])
            self.assertEqual(r.returncode, 0, out)
            self.assertIn("stored readings grew", out)
            self.assertIn("24/24 devices connected", out)
            with open(os.path.join(tmp, "demo", "logs", "simulator.log")) as f:
                log = f.read()
            self.assertEqual(log.count("enrolled and onboarded"), 24, log[-2000:])
            # the second run reuses the deployment: nobody onboards again; while it
            # runs, the nurse it prints signs in to the console and sees the ward
            p = subprocess.Popen(["bash", os.path.join(ROOT, "scripts", "demo.sh"),
                                  "--seconds", "30"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, env=env)
            lines, port, nurse = [], None, None
            for raw in p.stdout:
                line = raw.decode(errors="replace")
                lines.append(line)
                m = re.search(r"console:\s+https://localhost:(\d+)/", line)
                port = int(m.group(1)) if m else port
                m = re.match(r"\s+nurse\s+(\S+)", line)
                if m:
                    nurse = m.group(1)
                    break
            self.assertTrue(port and nurse, "".join(lines))
            self.sign_in_as_nurse(tmp, port, nurse)
            rest, _ = p.communicate(timeout=600)
            out = "".join(lines) + rest.decode(errors="replace")
            self.assertEqual(p.returncode, 0, out)
            self.assertIn("reusing the deployment", out)
            with open(os.path.join(tmp, "demo", "logs", "simulator.log")) as f:
                self.assertEqual(f.read().count("enrolled and onboarded"), 24)
            # nothing left running from the demo directory
            ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            self.assertNotIn(os.path.join(tmp, "demo"), ps)
        finally:
            if not os.environ.get("MT_KEEP_TMP"):
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
