"""Single sign-on end to end: the real app.py (``--secrets.files`` with an ``[auth]`` section)
signing in through a real OpenID Connect provider (``oidc-provider-mock``, started here as a
subprocess on localhost) in Debian's Chromium.

Claims are chosen before each sign-in with the mock's ``PUT /users/<sub>``; the provider then
puts them in the ID token that Streamlit verifies. Everything runs on ``localhost``: the login
state cookie is host-only, so the browser must open the app at the redirect URI's host.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.app_process import RunningApp, _free_port, running_app
from tests.e2e.conftest import DESKTOP, SESSION_COOKIE, screenshot, wait_for_app
from tests.oidc_mock import running_provider

LABEL = "Example IdP"
SSO_SETTINGS = {
    "sign_in_methods": "both",
    "sso_provider_label": LABEL,
    "sso_role_map": "sp-analysts=analyst, sp-finance=finance",
    "sso_mfa_amr": "mfa, otp",
    "demo_viewers": "400",
    "demo_views": "4000",
    "demo_seed": "5",
}
IDLE_HOURS = 0.003  # 10.8 s


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """Base URL of a running oidc-provider-mock (users and keys in memory: a clean slate)."""
    with running_provider() as url:
        yield url


def _sso_app(root: Path, provider: str, **settings: str):
    port = _free_port()
    secrets = root / f"secrets-{port}.toml"
    root.mkdir(parents=True, exist_ok=True)
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
        'cookie_secret = "e2e-only-cookie-secret-0123456789abcdef"\n'
        'client_id = "spotlight-e2e"\n'
        'client_secret = "e2e-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n'
    )
    return running_app(
        root,
        host="localhost",
        port=port,
        streamlit_args=("--secrets.files", str(secrets)),
        **{**SSO_SETTINGS, **settings},
    )


@pytest.fixture(scope="module")
def sso_root() -> Path:
    return Path(tempfile.mkdtemp(prefix="spotlight-e2e-sso-"))


@pytest.fixture(scope="module")
def sso_app(sso_root: Path, provider: str) -> Iterator[RunningApp]:
    with _sso_app(sso_root, provider) as running:
        yield running


@pytest.fixture
def tab(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()


def set_claims(provider: str, sub: str, claims: dict) -> None:
    """The claims the provider puts in the ID token the next time ``sub`` signs in."""
    response = httpx.put(f"{provider}/users/{quote(sub, safe='')}", json=claims)
    assert response.status_code == 204, response.text


def provider_sign_in(page: Page, app_url: str, sub: str) -> None:
    page.goto(app_url)
    page.get_by_role("button", name=f"Sign in with {LABEL}").click()
    page.wait_for_url("**/oauth2/authorize?**")
    page.get_by_placeholder("sub").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(app_url + "/**")
    wait_for_app(page)


def user(provider: str, name: str, groups: list[str], **extra) -> str:
    sub = f"{name}-{time.monotonic_ns()}@example.com"
    claims = {"email": sub, "email_verified": True, "name": name.title(), "groups": groups}
    set_claims(provider, sub, {**claims, **extra})
    return sub


def sidebar(page: Page):
    return page.locator('[data-testid="stSidebar"]')


def test_provider_sign_in_lands_with_the_mapped_role(tab: Page, sso_app, provider):
    sub = user(provider, "ana", ["everyone", "sp-analysts"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(tab.get_by_role("heading", name="Overview").first).to_be_visible()
    expect(sidebar(tab).get_by_text(f"signed in as {sub}")).to_be_visible()
    expect(sidebar(tab).get_by_text("Data analyst")).to_be_visible()
    screenshot(tab, "sso-signed-in-analyst")
    # Another tab of the same browser finds the same session through the identity cookie.
    other = tab.context.new_page()
    other.goto(sso_app.url)
    wait_for_app(other)
    expect(sidebar(other).get_by_text(f"signed in as {sub}")).to_be_visible()


def test_unmapped_groups_get_the_no_access_page_and_no_data(tab: Page, sso_app, provider):
    sub = user(provider, "eve", ["everyone", "vpn-users"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(tab.get_by_text("No access — ask your administrator.")).to_be_visible()
    assert tab.locator('[data-testid="stMetric"]').count() == 0
    assert tab.locator('[data-testid="stSidebar"]').count() == 0
    assert tab.get_by_role("heading", name="Overview").count() == 0
    screenshot(tab, "sso-no-access")


def test_money_role_without_provider_mfa_is_asked_for_the_app_code(tab: Page, sso_app, provider):
    sub = user(provider, "fin", ["sp-finance"], amr=["pwd"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(tab.get_by_label("6-digit code")).to_be_visible()
    expect(tab.get_by_text("Set up two-factor authentication")).to_be_visible()
    assert tab.get_by_role("heading", name="Overview").count() == 0
    screenshot(tab, "sso-finance-asked-for-code")


def test_money_role_with_provider_mfa_is_not_asked(tab: Page, sso_app, provider):
    sub = user(provider, "fim", ["sp-finance"], amr=["pwd", "mfa"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(tab.get_by_role("heading", name="Overview").first).to_be_visible()
    expect(sidebar(tab).get_by_text(f"signed in as {sub}")).to_be_visible()
    assert tab.get_by_label("6-digit code").count() == 0


def test_sign_out_revokes_and_the_old_identity_cookie_gets_the_sign_in_page(
    tab: Page, browser: Browser, sso_app, provider
):
    sub = user(provider, "bob", ["sp-analysts"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(sidebar(tab).get_by_text(f"signed in as {sub}")).to_be_visible()
    old_cookies = tab.context.cookies()
    assert any(c["name"].startswith("_streamlit_user") for c in old_cookies)
    sidebar(tab).get_by_role("button", name="Sign out").click()
    tab.wait_for_url("**/oauth2/end_session?**")
    tab.get_by_role("button", name="End session").click()
    tab.wait_for_url(sso_app.url + "/**")
    wait_for_app(tab)
    expect(tab.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible()
    # The identity cookie from before sign-out, replayed in a fresh browser.
    replay = browser.new_context(viewport=DESKTOP)
    try:
        replay.add_cookies(old_cookies)
        page = replay.new_page()
        page.goto(sso_app.url)
        wait_for_app(page)
        expect(page.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible()
        expect(page.get_by_text("Your session has ended")).to_be_visible()
        assert page.locator('[data-testid="stSidebar"]').count() == 0
        screenshot(page, "sso-replayed-cookie-signed-out")
    finally:
        replay.close()


def test_idle_timeout_ends_an_sso_session(tab: Page, sso_root: Path, sso_app, provider):
    # A second server on the same data with a short idle limit (the extract is already built).
    with _sso_app(sso_root, provider, session_idle_hours=str(IDLE_HOURS)) as short:
        sub = user(provider, "ida", ["sp-analysts"])
        provider_sign_in(tab, short.url, sub)
        expect(sidebar(tab).get_by_text(f"signed in as {sub}")).to_be_visible()
        tab.wait_for_timeout(IDLE_HOURS * 3600 * 1000 + 1500)
        tab.reload()
        wait_for_app(tab)
        expect(tab.get_by_text("Your session has ended")).to_be_visible()
        expect(tab.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible()
        assert tab.locator('[data-testid="stSidebar"]').count() == 0


def test_a_half_finished_sign_in_elsewhere_and_sign_out_from_a_cookie_restored_tab(
    tab: Page, sso_app, provider
):
    sub = user(provider, "fia", ["sp-finance"], amr=["pwd"])
    provider_sign_in(tab, sso_app.url, sub)
    expect(tab.get_by_text("Set up two-factor authentication")).to_be_visible()
    key_box = tab.locator('.st-key-totp-key [data-testid="stCode"] code')
    expect(key_box).to_be_visible()
    # Another tab while the set-up is owed: a fresh provider sign-in, never the set-up.
    other = tab.context.new_page()
    other.goto(sso_app.url)
    wait_for_app(other)
    expect(other.get_by_role("button", name=f"Confirm with {LABEL}")).to_be_visible()
    assert other.get_by_label("6-digit code").count() == 0
    assert other.locator(".st-key-totp-key").count() == 0
    screenshot(other, "sso-half-finished-other-tab")
    other.close()
    # The sign-in's own tab sets it up; the app's sign-in cookie follows.
    tab.get_by_label("6-digit code").fill(pyotp.TOTP(key_box.inner_text().strip()).now())
    tab.get_by_role("button", name="Verify").click()
    expect(sidebar(tab).get_by_text(f"signed in as {sub}")).to_be_visible()
    deadline = time.monotonic() + 30
    while not any(c["name"] == SESSION_COOKIE for c in tab.context.cookies()):
        assert time.monotonic() < deadline, "the app's sign-in cookie was not set"
        tab.wait_for_timeout(100)
    # A tab restored through the app's cookie signs out at the provider too.
    restored = tab.context.new_page()
    restored.goto(sso_app.url)
    wait_for_app(restored)
    expect(sidebar(restored).get_by_text(f"signed in as {sub}")).to_be_visible()
    sidebar(restored).get_by_role("button", name="Sign out").click()
    restored.wait_for_url("**/oauth2/end_session?**")
    restored.get_by_role("button", name="End session").click()
    restored.wait_for_url(sso_app.url + "/**")
    wait_for_app(restored)
    expect(restored.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible()
    assert not any(c["name"].startswith("_streamlit_user") for c in restored.context.cookies())
