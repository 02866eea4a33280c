"""Sign-in, 2FA, the sign-in cookie and sign-out, around security.service.Security.

State kept in ``st.session_state`` (server-side, per browser tab):
- ``session_token``: the bearer token of this tab's server-side session. Every run resolves it;
  a revoked, idle or expired session signs the tab out.
- ``restored_from_cookie``: this tab's session came from the cookie, not from a password typed
  here. Such a tab must pass 2FA again before money and personal-data pages (SECURITY.md #5),
  so its principal is treated as not 2FA-verified until a code is entered in this tab.
- ``cookie_pending``: set on sign-in; the cookie is written on the next run (see session_cookie).

A tab that has passed the password but not yet 2FA holds a session whose ``mfa_pending`` is
true, and no cookie is issued until 2FA succeeds, so a half-finished sign-in never survives a
reload. A provider sign-in likewise: another tab (or a reload) that finds its half-finished
session through Streamlit's identity cookie counts as restored and stays on the sign-in screen,
where it may enter a code but never set up the account's second factor.
"""

from __future__ import annotations

import dataclasses
import hashlib
from contextvars import ContextVar

import streamlit as st

from components import sso
from components.context import AppContext, app_context
from components.session_cookie import SessionCookie
from security.client_address import client_address, served_over_https
from security.permissions import Principal

TOKEN_KEY = "session_token"  # noqa: S105 - a session-state key name, not a secret
RESTORED_KEY = "restored_from_cookie"
TAB_MFA_KEY = "tab_mfa_verified"
COOKIE_PENDING_KEY = "cookie_pending"
DEVICE_PENDING_KEY = "device_cookie_pending"
NOTICE_KEY = "auth_notice"
SIGNED_OUT_KEY = "signed_out"

# The principal of the current script run, set by app.py before the page runs.
_CURRENT: ContextVar[Principal | None] = ContextVar("spotlight_principal", default=None)
_COOKIE: ContextVar[SessionCookie | None] = ContextVar("spotlight_cookie", default=None)


def _header(name: str) -> str | None:
    headers = st.context.headers
    return headers.get(name) if headers else None


def client_id() -> str:
    """A stable, non-reversible id of the browser client: address and user agent, hashed.

    The address is the peer's, or behind the proxies of the ``trusted_proxies`` setting the one
    they forwarded; a client cannot choose it by sending X-Forwarded-For itself.
    """
    address = client_address(
        st.context.ip_address, _header("X-Forwarded-For"), app_context().trusted_proxies
    )
    agent = _header("User-Agent") or ""
    return "client-" + hashlib.sha256(f"{address}|{agent}".encode()).hexdigest()[:16]


def _secure_cookies(ctx: AppContext) -> bool:
    mode = ctx.settings.cookie_secure
    if mode == "auto":
        return served_over_https(
            st.context.url, st.context.ip_address, _header("X-Forwarded-Proto"), ctx.trusted_proxies
        )
    return mode == "on"


def _cookie(ctx: AppContext) -> SessionCookie:
    cookie = _COOKIE.get()
    if cookie is None:
        s = ctx.settings
        cookie = SessionCookie(
            s.cookie_name,
            s.secret("cookie_key"),
            s.cookie_expiry_days,
            secure=_secure_cookies(ctx),
        )
        _COOKIE.set(cookie)
    return cookie


def tab_mfa_state() -> tuple[bool, bool]:
    """(restored from the cookie, 2FA passed in this tab): what decides this tab's 2FA state."""
    return bool(st.session_state.get(RESTORED_KEY)), bool(st.session_state.get(TAB_MFA_KEY))


def for_tab(principal: Principal, restored: bool, tab_verified: bool) -> Principal:
    """The principal as this tab may act: a tab restored from the cookie has not passed 2FA
    until a code is entered in it, whatever the session did in another tab (SECURITY.md #19).
    The one rule for pages and actions alike (exports included)."""
    if restored and not tab_verified:
        return dataclasses.replace(principal, mfa_verified=False)
    return principal


def _for_this_tab(principal: Principal) -> Principal:
    return for_tab(principal, *tab_mfa_state())


def current_principal(ctx: AppContext, *, touch: bool = True) -> Principal | None:
    """Who is signed in in this tab, or None; also remembered for this run's page. ``touch``
    False (an automatic refresh) reads the session without counting it as activity."""
    _CURRENT.set(None)
    _COOKIE.set(None)
    state = st.session_state
    cookie = _cookie(ctx)
    token = state.get(TOKEN_KEY)
    if token:
        principal = ctx.security.resolve(token, touch=touch)
        if principal is None:
            _forget_session(
                notice="Your session has ended (signed out elsewhere, or idle too long). Please sign in again."
            )
            cookie.clear()
            return None
    elif not state.get(SIGNED_OUT_KEY) and (found := cookie.read()) is not None:
        username, cookie_token = found
        principal = ctx.security.resolve(cookie_token, touch=touch)
        if principal is None or principal.username != username or principal.mfa_pending:
            # Signed out, idle, expired, or never finished 2FA: the cookie is worthless.
            cookie.clear()
            return None
        state[TOKEN_KEY] = cookie_token
        state[RESTORED_KEY] = True
        state[TAB_MFA_KEY] = False
        # A session a provider sign-in began, found through the app's own cookie: sign-out
        # must still end the provider's session (st.logout), as from the tab it began in.
        state[sso.SSO_TAB_KEY] = ctx.security.session_is_sso(principal)
    elif not state.get(SIGNED_OUT_KEY) and sso.sso_on(ctx) and sso.signed_in_at_provider():
        principal = _resume_sso(ctx, touch=touch)
        if principal is None:
            return None
    else:
        return None
    if principal.mfa_pending and (not state.get(RESTORED_KEY) or state.get(sso.SSO_TAB_KEY)):
        # Password (or provider sign-in) accepted in this tab, 2FA not yet: the sign-in screen
        # asks for the code. A tab that found such a half-finished provider sign-in through the
        # identity cookie stays there too: a half-finished sign-in never survives a reload.
        return None
    principal = _for_this_tab(principal)
    _CURRENT.set(principal)
    return principal


def _resume_sso(ctx: AppContext, *, touch: bool = True) -> Principal | None:
    """This tab's session from Streamlit's identity cookie: the one its provider sign-in
    started, started now on first sight, or None (ended, or refused: the sign-in screen says
    which). A tab that finds a session another tab (or an earlier page load) started counts as
    restored from the cookie, finished or not: it may pass 2FA with a code, but never set up
    the account's second factor (only a fresh provider sign-in may)."""
    state = st.session_state
    claims = sso.claims()
    binding = (claims.get("iss"), claims.get("sub"), claims.get("nonce"), claims.get("iat"))
    refused = state.get(sso.REFUSED_KEY)
    if refused and refused[0] == binding:
        return None  # refused once in this tab: audited once, not on every rerun
    result = ctx.security.sso_sign_in(claims, client_id())
    if result.status == "ended":
        # Signed out, idle or expired: the identity cookie stays, its session does not.
        state.setdefault(NOTICE_KEY, result.message)
        return None
    if not result.ok:
        state[sso.REFUSED_KEY] = (binding, result.status, result.message)
        return None
    state.pop(sso.REFUSED_KEY, None)
    state.pop(NOTICE_KEY, None)
    state[TOKEN_KEY] = result.token
    state[sso.SSO_TAB_KEY] = True
    if result.status == "existing":
        state[RESTORED_KEY] = True
        state[TAB_MFA_KEY] = False
    return ctx.security.resolve(result.token, touch=touch)


def may_enrol_after_provider_sign_in(ctx: AppContext, principal: Principal) -> bool:
    """True in the tab of a provider sign-in made less than ``stepup_minutes`` ago: the fresh
    provider sign-in is the proof that lets an SSO account choose the app's second factor."""
    if not st.session_state.get(sso.SSO_TAB_KEY) or st.session_state.get(RESTORED_KEY):
        return False
    started = next(
        (
            s.created_at
            for s in ctx.security.sessions(principal.username)
            if s.id == principal.session_id
        ),
        None,
    )
    now = principal.resolved_at or ctx.security.clock()
    return (
        started is not None and (now - started).total_seconds() < ctx.settings.stepup_minutes * 60
    )


def principal_for_run() -> Principal | None:
    """The principal app.py resolved for this run (None when signed out)."""
    return _CURRENT.get()


def _forget_session(notice: str | None = None) -> None:
    for key in (
        TOKEN_KEY,
        RESTORED_KEY,
        TAB_MFA_KEY,
        COOKIE_PENDING_KEY,
        DEVICE_PENDING_KEY,
        sso.SSO_TAB_KEY,
    ):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def persist_cookie_if_pending(ctx: AppContext) -> None:
    """Write the sign-in cookie after a completed sign-in, run after run until the browser has."""
    if not st.session_state.get(COOKIE_PENDING_KEY):
        return
    principal = _CURRENT.get()
    token = st.session_state.get(TOKEN_KEY)
    if principal is None or not token:
        st.session_state.pop(COOKIE_PENDING_KEY, None)
        return
    # Drawn at the foot of the sidebar: in the page body its two frames left a gap above the
    # title, and once gone they shifted every element of the page (a rerun then shows the page
    # twice while it redraws).
    with st.sidebar:
        cookie = _cookie(ctx)
        if cookie.issue(principal.username, token):
            st.session_state.pop(COOKIE_PENDING_KEY, None)
        device = st.session_state.get(DEVICE_PENDING_KEY)
        if device and cookie.issue_device(device, ctx.settings.device_cookie_days):
            st.session_state.pop(DEVICE_PENDING_KEY, None)


def _signed_in_completely(ctx: AppContext, username: str) -> None:
    """The sign-in in this tab is complete (password, and 2FA where needed): write the sign-in
    cookie, and a device cookie so that this browser is not locked out by failures elsewhere."""
    st.session_state[COOKIE_PENDING_KEY] = True
    if ctx.settings.device_cookie_days > 0:
        st.session_state[DEVICE_PENDING_KEY] = ctx.security.issue_device_token(username)


def sign_out(ctx: AppContext, principal: Principal) -> None:
    """Revoke the session on the server (every tab), drop the cookie, back to the sign-in form;
    a provider sign-in also drops Streamlit's identity cookie and signs out at the provider."""
    token = st.session_state.get(TOKEN_KEY)
    if token:
        ctx.security.revoke(token)
    provider_session = st.session_state.get(sso.SSO_TAB_KEY)
    _forget_session(notice="You have signed out.")
    if provider_session:
        # st.logout sends the browser to /auth/logout (and the provider's end-session page);
        # a rerun here would drop that redirect.
        st.logout()
        st.stop()
    st.session_state[SIGNED_OUT_KEY] = True
    st.rerun()


# --- screens ---------------------------------------------------------------------------------
def sign_in_screen(ctx: AppContext) -> None:
    """The password form, then the 2FA step for roles that need it."""
    cookie = _cookie(ctx)
    if st.session_state.get(SIGNED_OUT_KEY):
        cookie.clear()
    token = st.session_state.get(TOKEN_KEY)
    pending = ctx.security.resolve(token) if token else None
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("🎬 Spotlight Analytics")
        # Kept until the next sign-in: the cookie component's answer triggers another run.
        if notice := st.session_state.get(NOTICE_KEY):
            st.info(notice, icon="ℹ️")
        refused = st.session_state.get(sso.REFUSED_KEY)
        if refused and refused[1] == "no_access":
            sso.no_access_page(refused[2])
            return
        if refused and not (pending is not None and pending.mfa_pending):
            st.warning(refused[2], icon="🔒")
        if pending is not None and pending.mfa_pending:
            second_factor_form(ctx, pending, token)
        else:
            if sso.local_on(ctx):
                _password_form(ctx)
            if sso.sso_on(ctx):
                sso.sign_in_button(ctx)
        if ctx.settings.demo_mode:
            st.caption("Demo install: the accounts are listed in the README (Demo accounts).")


def _password_form(ctx: AppContext) -> None:
    with st.form("sign-in", enter_to_submit=True):
        st.subheader("Sign in")
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", width="stretch")
    if not submitted:
        return
    if not username.strip() or not password:
        st.error("Enter your username and password.", icon="⚠️")
        return
    client = client_id()
    result = ctx.security.authenticate(
        username, password, client, device_token=_cookie(ctx).device_token()
    )
    if not result.ok:
        st.error(result.message, icon="🚫")
        return
    st.session_state[TOKEN_KEY] = ctx.security.create_session(result.username, client)
    st.session_state.pop(SIGNED_OUT_KEY, None)
    st.session_state.pop(NOTICE_KEY, None)
    st.session_state.pop(RESTORED_KEY, None)
    if not result.needs_mfa:
        _signed_in_completely(ctx, result.username)
    st.rerun()


ENROLMENT_KEY_LABEL = "Key for typing in by hand"
# The container around the enrolment key: tests find the key by this (CSS class st-key-totp-key).
ENROLMENT_KEY_CONTAINER = "totp-key"


def second_factor_form(
    ctx: AppContext, principal: Principal, token: str, *, cancel: bool = True
) -> None:
    """Enrol in or pass TOTP for this session (after the password, or again in a restored tab).

    ``cancel`` offers "Cancel and sign out" (the sign-in screen and the 2FA page guard); an
    inline confirmation inside a page leaves it out.
    """
    enrolled = ctx.security.totp_enrolled(principal.username)
    if (
        not enrolled
        and st.session_state.get(sso.SSO_TAB_KEY)
        and not may_enrol_after_provider_sign_in(ctx, principal)
    ):
        # No app code yet, in a tab restored from the identity cookie or long after its
        # provider sign-in: a fresh provider sign-in is the proof (enrolling an authenticator
        # here would let whoever found the tab or the browser choose the account's second
        # factor, and 2FA is per session: every tab of it would count as verified).
        sso.confirm_with_provider(
            ctx, "Sign in again with your organisation's account to confirm it is you."
        )
        return
    if not enrolled:
        st.subheader("Set up two-factor authentication")
        st.write(
            "Your role sees money or personal data, so it needs a second factor. Scan the QR code "
            "with an authenticator app (or type the key in), then enter the 6-digit code it shows."
        )
        enrolment = ctx.security.begin_totp_enrolment(token)
        left, right = st.columns([1, 2])
        left.image(enrolment.qr_png, caption="Scan with your authenticator app", width=180)
        # Readable text at normal contrast with a copy button, not a light-grey disabled field.
        with right.container(key=ENROLMENT_KEY_CONTAINER):
            st.markdown(f"**{ENROLMENT_KEY_LABEL}**")
            st.code(enrolment.secret, language=None)
    else:
        st.subheader("Two-factor authentication")
        st.write("Enter the 6-digit code from your authenticator app.")
    with st.form("second-factor", enter_to_submit=True):
        code = st.text_input("6-digit code", max_chars=8, autocomplete="one-time-code")
        verify = st.form_submit_button("Verify", type="primary", width="stretch")
    if cancel and st.button("Cancel and sign out", key="cancel-2fa"):
        ctx.security.revoke(token)
        provider_session = st.session_state.get(sso.SSO_TAB_KEY)
        _forget_session()
        if provider_session:
            st.logout()
            st.stop()
        st.rerun()
    if not verify:
        return
    if not code.strip():
        st.error("Enter the code from your authenticator app.", icon="⚠️")
        return
    check = ctx.security.confirm_totp_enrolment if not enrolled else ctx.security.verify_totp
    result = check(token, code)
    if not result.ok:
        st.error(result.message, icon="🚫")
        return
    st.session_state[TAB_MFA_KEY] = True
    if not st.session_state.get(RESTORED_KEY):
        _signed_in_completely(ctx, principal.username)
    st.rerun()


def confirm_second_factor_here(ctx: AppContext, principal: Principal, *, reason: str) -> None:
    """An inline "Confirm it is you" with the 6-digit code form, where a page hides money
    because this tab has not passed 2FA (a tab restored from the cookie, SECURITY.md #5).

    Draws nothing unless ``principal`` (the page's principal, as returned by ``require_page`` or
    ``dashboard_page``) still owes 2FA in this tab. ``reason`` is one sentence saying what the
    code unlocks, e.g. "Enter a code to see revenue on this page." A valid code marks the tab
    verified and reruns the page, which then shows the money. Call it at most once per page
    (it draws the form "second-factor"), in place of a "money is hidden" note::

        if principal.may("see_money") and not sees_money:
            auth.confirm_second_factor_here(
                ctx, principal, reason="Revenue is hidden until you confirm it is you in this tab."
            )
    """
    if not principal.mfa_pending:
        return
    with st.container(border=True):
        st.markdown(f"🔐 **Confirm it is you.** {reason}")
        second_factor_form(ctx, principal, st.session_state.get(TOKEN_KEY, ""), cancel=False)
