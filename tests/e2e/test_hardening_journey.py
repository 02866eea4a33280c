"""The hostile review's browser findings (SECURITY.md #17, #20), in a real Chromium.

- Lockout abuse: wrong passwords sent for an account from many User-Agents lock it for unknown
  browsers, yet its owner, in the browser they signed in from before (which holds the device
  cookie), still signs in.
- Nothing before sign-in: the websocket of a signed-out browser carries no page's title.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import Browser, Page, expect

from security.service import SIGN_IN_FAILED
from settings import PROJECT_ROOT
from tests.e2e.conftest import DESKTOP, screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PASSWORD = "correct horse battery staple"
DEVICE_COOKIE = "spotlight_auth_device"  # the cookie_name setting's default + "_device"


def _add_user(app_server, username: str) -> None:
    subprocess.run(
        [sys.executable, "cli.py", "users", "add", username, "-r", "analyst", "--password-stdin"],
        input=f"{PASSWORD}\n",
        text=True,
        cwd=PROJECT_ROOT,
        env=app_server.env,
        check=True,
        capture_output=True,
    )


def _tab(browser: Browser, user_agent: str | None = None) -> Page:
    context = browser.new_context(viewport=DESKTOP, user_agent=user_agent)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    return tab


def _try_password(tab: Page, url: str, username: str, password: str) -> None:
    tab.goto(url)
    wait_for_app(tab)
    tab.get_by_label("Username").fill(username)
    tab.get_by_role("textbox", name="Password").fill(password)
    tab.get_by_role("button", name="Sign in").click()
    wait_for_app(tab)


def test_failures_from_rotating_user_agents_do_not_lock_out_a_known_browser(app_server, browser):
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    _add_user(app_server, victim)

    # The owner signs in once in their browser, which keeps the device cookie, and signs out.
    own = _tab(browser)
    own.goto(app_server.url)
    wait_for_app(own)
    sign_in(own, victim, PASSWORD)
    own.wait_for_function(f"() => document.cookie.includes('{DEVICE_COOKIE}=')", timeout=30_000)
    own.get_by_role("button", name="Sign out").click()
    wait_for_app(own)
    expect(own.get_by_label("Username")).to_be_visible()

    # An attacker sends wrong passwords, each from another User-Agent (another client).
    for attempt in range(6):
        attacker = _tab(browser, user_agent=f"Mozilla/5.0 (attacker {attempt})")
        _try_password(attacker, app_server.url, victim, f"guess number {attempt}")
        expect(attacker.get_by_text(SIGN_IN_FAILED)).to_be_visible()
        attacker.context.close()

    # Now even the right password is refused from an unknown browser ...
    stranger = _tab(browser, user_agent="Mozilla/5.0 (a new laptop)")
    _try_password(stranger, app_server.url, victim, PASSWORD)
    expect(stranger.get_by_text(SIGN_IN_FAILED)).to_be_visible()
    expect(stranger.locator('[data-testid="stSidebar"]')).to_have_count(0)
    screenshot(stranger, "hardening-01-unknown-browser-locked")
    stranger.context.close()

    # ... while the owner's browser signs in.
    _try_password(own, app_server.url, victim, PASSWORD)
    expect(own.get_by_role("heading", name="Overview")).to_be_visible()
    screenshot(own, "hardening-02-known-browser-signs-in")
    own.context.close()


def test_a_signed_out_browser_receives_no_page_names(app_server, browser):
    tab = _tab(browser)
    frames: list[bytes] = []

    def on_socket(socket) -> None:
        socket.on(
            "framereceived",
            lambda payload: frames.append(
                payload if isinstance(payload, bytes) else payload.encode()
            ),
        )

    tab.on("websocket", on_socket)
    tab.goto(f"{app_server.url}/admin")
    wait_for_app(tab)
    expect(tab.get_by_label("Username")).to_be_visible()
    assert frames, "the page talked to the server over its websocket"
    received = b"".join(frames)
    assert b"Sign in" in received, "the frames were captured (the sign-in page's own title)"
    for name in (b"Administration", b"Engagement", b"Compare titles", b"My account", b"Overview"):
        assert name not in received, name
    assert "/admin" in tab.url, "the asked-for path stays in the address bar"
    tab.context.close()
