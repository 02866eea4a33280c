"""The sign-in journey in a real browser (SECURITY.md #1, #2, #5, #6).

One executive (a 2FA role) signs in with a computed TOTP code, sees the Overview drawn, reloads
and stays signed in, signs out and stays out after a reload; the cookie captured while signed in
is then replayed and refused. A deep link while signed out lands on the asked-for page after
sign-in, and a cookie signed with streamlit-authenticator's published sample key is refused.
Screenshots of each step go to test-output/screenshots/.
"""

from __future__ import annotations

import time

import jwt
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import DESKTOP, SESSION_COOKIE, screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SAMPLE_KEY = "some_signature_key"  # the key in streamlit-authenticator's published example config


def _session_cookie(context: BrowserContext, timeout: float = 15) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for cookie in context.cookies():
            if cookie["name"] == SESSION_COOKIE:
                return cookie
        time.sleep(0.2)
    return None


def _expect_sign_in_form(tab: Page) -> None:
    expect(tab.get_by_label("Username")).to_be_visible()
    expect(tab.get_by_role("heading", name="Overview")).to_have_count(0)


def test_sign_in_reload_sign_out_and_replay(app_server, browser):
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(app_server.url)
    wait_for_app(tab)
    screenshot(tab, "auth-01-sign-in")
    sign_in(tab, "executive")
    expect(tab.get_by_role("heading", name="Overview")).to_be_visible()
    expect(tab.locator('[data-testid="stMetric"]').first).to_be_visible()
    tab.locator(".js-plotly-plot .main-svg").first.wait_for()
    assert tab.locator(".js-plotly-plot").count() >= 2, "the trend and breakdown charts are drawn"
    expect(tab.get_by_text("Net revenue", exact=True)).to_be_visible()
    screenshot(tab, "auth-02-overview-executive")

    cookie = _session_cookie(context)
    assert cookie is not None, "signing in sets the session cookie"
    tab.reload()
    wait_for_app(tab)
    expect(tab.get_by_role("heading", name="Overview")).to_be_visible()
    expect(tab.locator('[data-testid="stMetric"]').first).to_be_visible()
    # Restored from the cookie: money waits for a fresh 2FA code in this tab.
    expect(tab.get_by_text("Net revenue", exact=True)).to_have_count(0)
    expect(tab.get_by_text("Net revenue by currency")).to_have_count(0)
    screenshot(tab, "auth-03-after-reload")

    tab.get_by_role("button", name="Sign out").click()
    wait_for_app(tab)
    _expect_sign_in_form(tab)
    expect(tab.get_by_text("You have signed out.")).to_be_visible()
    tab.reload()
    wait_for_app(tab)
    _expect_sign_in_form(tab)
    screenshot(tab, "auth-04-signed-out-after-reload")
    context.close()

    replay = browser.new_context(viewport=DESKTOP)
    replay.add_cookies([cookie])
    replayed = replay.new_page()
    replayed.goto(app_server.url)
    wait_for_app(replayed)
    _expect_sign_in_form(replayed)
    screenshot(replayed, "auth-05-replayed-cookie-refused")
    replay.close()


def test_deep_link_while_signed_out_lands_on_the_page_aftersign_in(app_server, page):
    page.goto(f"{app_server.url}/admin")
    wait_for_app(page)
    _expect_sign_in_form(page)
    sign_in(page, "admin")
    expect(page.get_by_role("heading", name="Administration")).to_be_visible()
    assert page.url.rstrip("/").endswith("/admin")
    # The cookie component is drawn at the foot of the sidebar, never in the page body: there it
    # left two empty frames above the title, and shifted every element of the page once gone.
    main = page.locator('[data-testid="stMainBlockContainer"]')
    expect(main.locator('iframe[data-testid="stCustomComponentV1"]')).to_have_count(0)
    expect(main.locator("h1")).to_have_count(1)
    screenshot(page, "auth-06-deep-link-admin")


# The sample key is short on purpose: that is what an attacker would sign with.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_a_cookie_forged_with_the_sample_key_is_refused(app_server, browser):
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()
    tab.goto(app_server.url)
    wait_for_app(tab)
    sign_in(tab, "analyst")
    genuine = _session_cookie(context)
    assert genuine is not None
    claims = jwt.decode(genuine["value"], options={"verify_signature": False})
    assert set(claims) == {"username", "sid", "exp_date"}
    context.close()

    # Same live session id, but signed with the published sample key instead of ours.
    forged = {
        **genuine,
        "value": jwt.encode({**claims, "username": "admin"}, SAMPLE_KEY, algorithm="HS256"),
    }
    attacker = browser.new_context(viewport=DESKTOP)
    attacker.add_cookies([forged])
    tab = attacker.new_page()
    tab.goto(app_server.url)
    wait_for_app(tab)
    _expect_sign_in_form(tab)
    screenshot(tab, "auth-07-forged-cookie-refused")
    attacker.close()
