"""browser_util.py — headless Chromium for the console's browser tests and
bench/console: Debian's chromium and chromium-driver, driven by
python3-selenium (tests/browser/test_browser.py, bench/console.py).

Each Chrome is its own profile (its own cookies), so one test can hold a
nurse, a second nurse and a biomedical engineer side by side.  The hub's
certificate is issued by the deployment's own CA, which this throwaway
profile does not trust: certificate errors are ignored for it (the TLS
itself is tested elsewhere, tests/pki, tests/console).
"""
import os
import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def missing():
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM) or not os.path.exists(DRIVER):
        return "chromium/chromium-driver not installed (make deps)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "python3-selenium not installed (make deps)"
    return None


def chrome(width=1400, height=1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--ignore-certificate-errors", "--disable-gpu", "--no-first-run",
              "--window-size=%d,%d" % (width, height), "--lang=en-GB"):
        o.add_argument(a)
    o.binary_location = CHROMIUM
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    d.set_page_load_timeout(60)
    return d


def sign_in(drv, base, user, password, new_password=None):
    """Sign in through the form; after a one-time password choose
    new_password.  Returns the URL landed on."""
    from selenium.webdriver.common.by import By

    drv.get(base + "/login")
    drv.find_element(By.NAME, "user").send_keys(user)
    drv.find_element(By.NAME, "password").send_keys(password)
    submit(drv)
    if drv.current_url.endswith("/password") and new_password:
        drv.find_element(By.NAME, "current").send_keys(password)
        drv.find_element(By.NAME, "new").send_keys(new_password)
        drv.find_element(By.NAME, "repeat").send_keys(new_password)
        submit(drv)
    return drv.current_url


def enrol_totp(drv):
    """An administrator's first stop (/totp): read the secret off the page,
    type the code an authenticator would show; returns the secret."""
    import time

    from selenium.webdriver.common.by import By
    from console_util import totp_code

    secret = drv.find_element(By.ID, "totp-secret").text
    drv.find_element(By.NAME, "code").send_keys(totp_code(secret, time.time()))
    submit(drv)
    return secret


def submit(drv, css="form.box button[type=submit]", timeout=60):
    """Click the form's button and wait for the answer page to replace this
    one (a sign-in's argon2id takes a while, more so under ASan)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    old = drv.find_element(By.TAG_NAME, "html")
    drv.find_element(By.CSS_SELECTOR, css).click()

    def replaced(_):
        # While the page is being replaced chromedriver answers either
        # "stale element" or "node does not belong to the document": both
        # mean the old page is gone.
        try:
            old.is_enabled()
            return False
        except WebDriverException:
            return True

    WebDriverWait(drv, timeout, poll_frequency=0.1).until(replaced, "the form's answer")


def wait_for(drv, fn, timeout=20, what="condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, timeout, poll_frequency=0.1).until(lambda d: fn(d), what)


def severe_logs(drv):
    """Console errors of the page but the missing favicon (CSP refusals,
    script errors)."""
    out = []
    for e in drv.get_log("browser"):
        if e.get("level") == "SEVERE" and "favicon.ico" not in e.get("message", ""):
            out.append(e["message"])
    return out
