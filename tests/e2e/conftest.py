"""End-to-end fixtures: the real app served by Streamlit, driven by Debian's Chromium.

The server starts once per test worker on a free port, in demo mode, with its own data and key
folders and a small demo extract built by ``cli.py demo`` before the first test.
Screenshots go to test-output/screenshots/ for a reviewer to look at.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from security.demo import DEMO_PASSWORD
from settings import PROJECT_ROOT
from tests.conftest import TEST_OUTPUT
from tests.e2e.app_process import CHROMIUM, CHROMIUM_FLAGS, RunningApp, running_app

SCREENSHOTS = TEST_OUTPUT / "screenshots"
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="session")
def app_server() -> Iterator[RunningApp]:
    """The app in demo mode with its (small) demo extract built before the first test, by the
    operator's command: whichever test comes first then measures the page, not the build (a
    first start building it in the page is tested by test_live_dashboard and AppTest)."""
    root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-"))
    with running_app(root, demo_viewers="2000", demo_views="40000", demo_seed="5") as running:
        built = subprocess.run(
            [sys.executable, "cli.py", "demo"],
            cwd=PROJECT_ROOT,
            env=running.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert built.returncode == 0, built.stdout + built.stderr
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()


def wait_for_app(tab: Page, timeout: float = 30_000) -> None:
    """Wait until Streamlit has finished running and stays idle, with no stale elements left.

    A run can be followed at once by another (the cookie component answering triggers one), so
    idleness must hold for a moment, not just be seen once.
    """
    tab.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    idle = """() => {
        const app = document.querySelector('[data-testid="stApp"]');
        return !!app && app.getAttribute('data-test-script-state') !== 'running'
            && document.querySelectorAll('[data-stale="true"]').length === 0;
    }"""
    deadline = time.monotonic() + timeout / 1000
    while time.monotonic() < deadline:
        tab.wait_for_function(idle, timeout=timeout)
        tab.wait_for_timeout(400)
        if tab.evaluate(idle):
            return
    raise TimeoutError("the app did not settle")


def screenshot(tab: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


SESSION_COOKIE = "spotlight_auth"  # the cookie_name setting's default
# TOTP secrets of demo accounts enrolled through the browser in this test process.
_TOTP_SECRETS: dict[str, str] = {}
_LAST_CODE: dict[str, str] = {}


def sign_in(tab: Page, username: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the form; enrol in or pass 2FA with a computed code when the role needs it."""
    tab.get_by_label("Username").fill(username)
    tab.get_by_role("textbox", name="Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    code_box = tab.get_by_label("6-digit code")
    # The enrolment key is shown as a code block (with a copy button) under its label.
    key_box = tab.locator('.st-key-totp-key [data-testid="stCode"] code')
    code_box.or_(tab.locator('[data-testid="stSidebar"]')).first.wait_for()
    if code_box.count():
        # The code field can be drawn before the enrolment key below it: let the run finish.
        wait_for_app(tab)
        if key_box.count():
            _TOTP_SECRETS[username] = key_box.inner_text().strip()
        totp = pyotp.TOTP(_TOTP_SECRETS[username])
        # Each code is accepted once: never reuse the time step of this account's last code.
        if totp.now() == _LAST_CODE.get(username):
            time.sleep(30.5 - time.time() % 30)
        code = totp.now()
        _LAST_CODE[username] = code
        code_box.fill(code)
        tab.get_by_role("button", name="Verify").click()
        tab.locator('[data-testid="stSidebar"]').wait_for()
    wait_for_app(tab)
    # The cookie component writes the session cookie a moment after the sign-in run; a test that
    # navigates (page.goto) before then would start a signed-out session.
    deadline = time.monotonic() + 30
    while not any(c["name"] == SESSION_COOKIE for c in tab.context.cookies()):
        if time.monotonic() > deadline:
            raise TimeoutError("the session cookie was not set within 30 s of signing in")
        tab.wait_for_timeout(100)
