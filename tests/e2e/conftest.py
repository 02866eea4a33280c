"""End-to-end fixtures: the real app served by Streamlit, driven by Debian's Chromium.

The server starts once per test worker on a free port, in demo mode, with its own data and key
folders, and builds its (small) demo extract on first start exactly as a new install does.
Screenshots go to test-output/screenshots/ for a reviewer to look at.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from security.demo import DEMO_PASSWORD
from settings import PROJECT_ROOT
from tests.conftest import TEST_OUTPUT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = TEST_OUTPUT / "screenshots"
DESKTOP = {"width": 1440, "height": 1000}
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningApp:
    url: str
    data_dir: Path
    key_dir: Path
    env: dict[str, str]
    log: Path


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the app did not become healthy in {timeout}s:\n{log.read_text()[-4000:]}")


@contextlib.contextmanager
def running_app(root: Path, **settings: str) -> Iterator[RunningApp]:
    """The app served by Streamlit on a free port, with its data and keys under ``root`` and
    ``settings`` as SPOTLIGHT_* environment variables; stopped on exit."""
    port = _free_port()
    env = {
        **os.environ,
        "SPOTLIGHT_DATA_DIR": str(root / "data"),
        "SPOTLIGHT_KEY_DIR": str(root / "keys"),
        **{f"SPOTLIGHT_{name.upper()}": value for name, value in settings.items()},
    }
    if "warehouse_url" not in settings:
        env.pop("SPOTLIGHT_WAREHOUSE_URL", None)
    log = root / "streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                "app.py",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
                "--server.headless",
                "true",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield RunningApp(url=url, data_dir=root / "data", key_dir=root / "keys", env=env, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def app_server() -> Iterator[RunningApp]:
    """The app in demo mode, building its (small) demo extract on first start."""
    root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-"))
    with running_app(root, demo_viewers="2000", demo_views="40000", demo_seed="5") as running:
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
    key_box = tab.get_by_label("Key for typing in by hand")
    code_box.or_(tab.locator('[data-testid="stSidebar"]')).first.wait_for()
    if code_box.count():
        if key_box.count():
            _TOTP_SECRETS[username] = key_box.input_value()
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
