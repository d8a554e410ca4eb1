"""The operator console in a real browser: headless Chromium from the
distribution's packages, driven over WebDriver (chromedriver, Selenium).

Starts the built binary on a scratch SQLite file, prepares accounts, a KYC
submission and a disputed milestone through the API, then does what an admin
does in the console and checks what a person would see:

  log in; approve a KYC submission after its document has loaded; resolve a
  dispute with a split after the ledger-effect preview, and see the balances
  change; issue a password-reset link for a colleague admin, use it, and
  log in to the console with the new password; watch the operator view's charts fill while a load runs, without
  a reload; keyboard first stop is the skip link; no horizontal scrolling on
  a phone; and no error in the browser's console on any page.

Usage: python3 tests/browser/console.py path/to/amani [screenshot-dir]
Screenshots are written to the screenshot folder (default: console-screenshots).
"""

import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib

import requests
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

PASSWORD = "correct-horse-battery-staple"
ADMIN_PASSWORD = "console-admin-password-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(width=48, height=32):
    """A real (tiny) PNG, so the browser can decode and show it."""
    rows = b"".join(b"\x00" + bytes([(x * 5) % 256, 120, 200]) * width for x in range(height))
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class Api:
    def __init__(self, base):
        self.base = base
        self.http = requests.Session()

    def call(self, method, path, token=None, expect=200, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    def login(self, email, password):
        return self.call("POST", "/api/v1/auth/login", json={"email": email, "password": password})["access_token"]

    def user(self, role):
        email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
        created = self.call("POST", "/api/v1/auth/signup", expect=201,
                            json={"email": email, "password": PASSWORD, "full_name": f"Test {role.title()}", "role": role})
        return {"id": created["id"], "email": email, "token": self.login(email, PASSWORD)}

    def kyc(self, user, document=None):
        files = {"type": (None, "kyc"), "nin_or_passport": (None, "AB1234567890")}
        if document:
            files["document"] = ("id.png", document, "image/png")
        return self.call("POST", "/api/v1/kyc/submit", user["token"], expect=201, files=files)["id"]

    def money(self, path, user, body, expect=201):
        return self.call("POST", path, user["token"], expect=expect, json=body,
                         headers={"Idempotency-Key": str(uuid.uuid4())})

    def available(self, user):
        wallet = self.call("GET", "/api/v1/wallet", user["token"])
        return json.dumps(wallet), wallet


def ngn_available(wallet):
    for balance in wallet.get("balances", []):
        if balance.get("currency") == "NGN":
            return balance["available"]
    return 0


def main():
    binary = sys.argv[1]
    shots = sys.argv[2] if len(sys.argv) > 2 else "console-screenshots"
    os.makedirs(shots, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="amani-browser-")
    port = free_port()
    env = dict(os.environ,
               DATABASE_URL=f"sqlite://{workdir}/amani.db", PORT=str(port), CONSOLE_CHART_SECONDS="1",
               RATE_LIMIT_ENABLED="false", SCHEDULER_ENABLED="false", LOG_LEVEL="warn", BACKUP_DIR=f"{workdir}/backups")
    admin_email = "console-admin@example.com"
    subprocess.run([binary, "migrate"], env=env, check=True, capture_output=True)
    colleague_email = "colleague-admin@example.com"
    for email in (admin_email, colleague_email):
        subprocess.run([binary, "admin", "create", "--email", email], env=env, check=True,
                       input=ADMIN_PASSWORD + "\n", text=True, capture_output=True)
    log = open(os.path.join(shots, "server.log"), "w")
    server = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    api = Api(base)
    driver = None
    try:
        for _ in range(100):
            try:
                if requests.get(base + "/api/v1/readiness", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        admin_token = api.login(admin_email, ADMIN_PASSWORD)

        # Data, through the API: two verified parties with a disputed
        # milestone, a pending KYC with a document, an account to reset.
        buyer, seller = api.user("client"), api.user("freelancer")
        for party in (buyer, seller):
            api.call("POST", f"/api/v1/admin/kyc/{api.kyc(party)}/approve", admin_token)
        api.money("/api/v1/wallet/deposit", buyer, {"amount": 1_000_000, "currency": "NGN"})
        project = api.call("POST", "/api/v1/projects", buyer["token"], expect=201, json={
            "title": "Website", "seller_id": seller["id"], "currency": "NGN",
            "milestones": [{"title": "Three pages", "amount": 30_000}]})
        milestone = project["milestones"][0]["id"]
        api.call("POST", f"/api/v1/projects/{project['id']}/send", buyer["token"])
        api.call("POST", f"/api/v1/projects/{project['id']}/accept", seller["token"])
        api.money("/api/v1/escrow/hold", buyer, {"project_id": project["id"]})
        api.call("POST", f"/api/v1/milestones/{milestone}/submit", seller["token"], json={})
        api.call("POST", f"/api/v1/milestones/{milestone}/dispute", buyer["token"],
                 json={"reason": "Only one page of three was delivered", "evidence": "See the brief."})
        applicant = api.user("freelancer")
        submission = api.kyc(applicant, png())
        seller_before = ngn_available(api.available(seller)[1])
        buyer_before = ngn_available(api.available(buyer)[1])

        options = Options()
        options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
        driver = webdriver.Chrome(service=service, options=options)
        # A page being replaced makes elements stale mid-check: retry then.
        wait = WebDriverWait(driver, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))

        def el(by, value):
            """The element once the page shows it (navigation is asynchronous)."""
            return wait.until(lambda d: d.find_element(by, value))
        errors = []

        def collect_console_errors(where):
            for entry in driver.get_log("browser"):
                if entry["level"] == "SEVERE":
                    errors.append(f"{where}: {entry['message']}")

        def shot(name):
            driver.save_screenshot(os.path.join(shots, f"{name}.png"))
            collect_console_errors(name)

        def text(css):
            return el(By.CSS_SELECTOR, css).text

        # 1. Log in; the first Tab stop is the skip link.
        driver.get(base + "/console")
        assert driver.current_url.endswith("/console/login"), driver.current_url
        el(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert driver.switch_to.active_element.text == "Skip to content", driver.switch_to.active_element.text
        el(By.ID, "email").send_keys(admin_email)
        el(By.ID, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Operator view")
        shot("01-operator-view")

        # 2. The KYC queue: view the document, then approve.
        el(By.LINK_TEXT, "KYC queue").click()
        el(By.CSS_SELECTOR, f"a[href='/console/kyc/{submission}']").click()
        image = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "img.document"))
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) == 48)
        shot("02-kyc-document")
        el(By.XPATH, "//button[text()='Approve']").click()
        wait.until(lambda d: "approved" in text("p.notice"))
        status = api.call("GET", f"/api/v1/admin/kyc?status=approved", admin_token)
        assert any(s["id"] == submission for s in status["items"]), status

        # 3. The dispute: preview a split, confirm, see the balances move.
        el(By.LINK_TEXT, "Disputes").click()
        el(By.CSS_SELECTOR, f"a[href='/console/disputes/milestone/{milestone}']").click()
        assert "Only one page of three was delivered" in driver.page_source
        el(By.CSS_SELECTOR, "input[name=outcome][value=split]").click()
        el(By.ID, "seller_amount").send_keys("12000")
        el(By.XPATH, "//button[text()='Preview the ledger effect']").click()
        effect = wait.until(lambda d: d.find_element(By.ID, "ledger-effect")).text
        assert "+12,000 NGN" in effect and "+18,000 NGN" in effect, effect
        shot("03-dispute-preview")
        assert ngn_available(api.available(seller)[1]) == seller_before, "the preview moves nothing"
        el(By.XPATH, "//button[text()='Confirm: move the money']").click()
        wait.until(lambda d: "resolved" in text("p.notice"))
        balances = text("#party-balances")
        expected_seller = f"{seller_before + 12_000:,} NGN"
        assert expected_seller in balances, (expected_seller, balances)
        shot("04-dispute-resolved")
        assert ngn_available(api.available(seller)[1]) == seller_before + 12_000
        assert ngn_available(api.available(buyer)[1]) == buyer_before + 18_000

        # 4. A colleague (another admin) forgot their password: a reset
        # link, used once, then a console login with the new password.
        el(By.LINK_TEXT, "Users").click()
        el(By.ID, "q").send_keys(colleague_email + Keys.ENTER)
        el(By.LINK_TEXT, colleague_email).click()
        el(By.XPATH, "//button[text()='Issue a password-reset link']").click()
        link = wait.until(lambda d: d.find_element(By.ID, "reset-link")).get_attribute("value")
        assert "/console/password-reset?token=" in link, link
        shot("05-reset-link")
        console_tab = driver.current_window_handle
        driver.switch_to.new_window("tab")
        driver.get(link)
        el(By.ID, "new_password").send_keys("a-brand-new-passphrase" + Keys.ENTER)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Password set")
        shot("06-password-set")
        api.call("POST", "/api/v1/auth/login", expect=401,
                 json={"email": colleague_email, "password": ADMIN_PASSWORD})
        collect_console_errors("06-password-set")
        driver.get(link)
        assert "already used" in driver.page_source, "a link works once"
        # That page's 400 is the answer expected here; anything else is not.
        unexpected = [e for e in driver.get_log("browser")
                      if e["level"] == "SEVERE" and "status of 400" not in e["message"]]
        errors.extend(f"spent link: {e['message']}" for e in unexpected)
        # The colleague logs in with the new password.
        driver.delete_all_cookies()
        driver.get(base + "/console/login")
        el(By.ID, "email").send_keys(colleague_email)
        el(By.ID, "password").send_keys("a-brand-new-passphrase" + Keys.ENTER)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Operator view")
        assert colleague_email in text("header .logout"), text("header .logout")
        el(By.XPATH, "//button[text()='Log out']").click()
        wait.until(lambda d: d.current_url.endswith("/console/login"))
        driver.close()
        driver.switch_to.window(console_tab)
        # The cookie jar is shared between tabs: the first admin logs in again.
        driver.get(base + "/console/login")
        el(By.ID, "email").send_keys(admin_email)
        el(By.ID, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Operator view")

        # 5. The operator view fills while a load runs, without a reload.
        # (The login above landed on the operator view.)
        driver.execute_script("window.__notReloaded = true;")
        stop = threading.Event()

        def load():
            with requests.Session() as http:
                while not stop.is_set():
                    http.get(base + "/api/v1/ping", timeout=5)
                    time.sleep(0.01)

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        try:
            WebDriverWait(driver, 30).until(lambda d: "GET /api/v1/ping" in d.find_element(By.ID, "live").text)
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "var row = [...document.querySelectorAll('#route-charts tbody tr')]"
                ".find(r => r.textContent.includes('GET /api/v1/ping'));"
                "return row ? row.querySelectorAll('polyline').length : 0;") >= 3)
            # A few more refreshes: the line grows.
            points = lambda: driver.execute_script(
                "var row = [...document.querySelectorAll('#route-charts tbody tr')]"
                ".find(r => r.textContent.includes('GET /api/v1/ping'));"
                "return +row.querySelector('svg').getAttribute('data-points');")
            before = points()
            WebDriverWait(driver, 20).until(lambda d: points() >= before + 2)
        finally:
            stop.set()
            loader.join()
        assert driver.execute_script("return window.__notReloaded === true"), "refreshed in place"
        driver.execute_script("document.getElementById('route-charts').scrollIntoView()")
        shot("07-operator-charts")

        # 6. A phone: no sideways scrolling.
        driver.set_window_size(390, 844)
        driver.get(base + "/console")
        wide = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        shot("08-operator-phone")
        assert wide <= 0, f"the page is {wide}px wider than a phone's screen"

        collect_console_errors("end")
        assert not errors, "errors in the browser console:\n" + "\n".join(errors)
        print(f"console browser test passed; screenshots in {shots}")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()


if __name__ == "__main__":
    main()
