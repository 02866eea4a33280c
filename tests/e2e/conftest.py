"""End-to-end fixtures: the real app served by Streamlit, driven by Debian's Chromium.

The server starts once per test worker on a free port, in demo mode, with its own data and key
folders, and builds its (small) demo extract on first start exactly as a new install does.
Screenshots go to test-output/screenshots/ for a reviewer to look at.
"""

from __future__ import annotations

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

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

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
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the app did not become healthy in {timeout}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def app_server() -> Iterator[RunningApp]:
    root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-"))
    port = _free_port()
    env = {
        **os.environ,
        "SPOTLIGHT_DATA_DIR": str(root / "data"),
        "SPOTLIGHT_KEY_DIR": str(root / "keys"),
        "SPOTLIGHT_DEMO_VIEWERS": "2000",
        "SPOTLIGHT_DEMO_VIEWS": "40000",
        "SPOTLIGHT_DEMO_SEED": "5",
    }
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
