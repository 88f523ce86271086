"""test_demo.py — `make demo`'s own script, headless: a fresh deployment in
a temporary directory on free ports, 24 devices on two wards onboarding
zero-touch, the simulator sending; the script exits 0 only if the stored
readings grew (scripts/demo.sh --seconds).  The test also checks the story
it tells: every device onboarded, both wards' patients stored, and the
processes it started are gone afterwards.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "onboard"))
import onboard_util as U  # noqa: E402

ROOT = os.environ.get("MT_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("MT_BUILD_DIR") or os.path.join(ROOT, "build")


class Demo(unittest.TestCase):
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
            # the second run reuses the deployment: nobody onboards again
            r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh"),
                                "--seconds", "20"],
                               capture_output=True, env=env, timeout=600)
            out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
            self.assertEqual(r.returncode, 0, out)
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
