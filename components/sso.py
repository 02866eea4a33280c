"""Single sign-on in the app shell: Streamlit's ``st.login`` / ``st.user`` / ``st.logout`` with
the OpenID Connect provider of ``[auth]`` in secrets.toml, around security.sso_signin.

``st.user`` says only that the browser holds Streamlit's identity cookie (30 days, not
revocable). Who may do what, and for how long, comes from the server-side session that the
provider sign-in is bound to (``Security.sso_sign_in``): each run of a tab without a session
looks it up from the cookie's claims, so sign-out, idle and absolute limits and "sign out
everywhere" end an SSO session exactly as they end a password one.

The provider's configuration is checked before the sign-in button is offered: a missing key,
a redirect URI that is not this app's ``/oauth2callback``, a discovery URL that does not
answer, or a client id or secret the provider's token endpoint rejects
(security.sso_provider) gives the admin a message saying what to fix, never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlparse

import streamlit as st

from components.context import AppContext
from components.text import md_escape
from security.sso_provider import client_problem

# This tab's session began with a provider sign-in (sign-out then also calls st.logout).
SSO_TAB_KEY = "sso_tab"
# The refusal of this tab's provider sign-in: (session binding, status, message).
REFUSED_KEY = "sso_refused"
DISCOVERY_TIMEOUT_SECONDS = 5
# The default provider's keys (Streamlit reads them straight from [auth]).
REQUIRED_KEYS = (
    "redirect_uri",
    "cookie_secret",
    "client_id",
    "client_secret",
    "server_metadata_url",
)


def method(ctx: AppContext) -> str:
    return str(ctx.settings.sign_in_methods).strip().lower()


def sso_on(ctx: AppContext) -> bool:
    return method(ctx) in ("sso", "both")


def local_on(ctx: AppContext) -> bool:
    return method(ctx) in ("local", "both")


def _auth_section() -> dict:
    try:
        section = st.secrets.get("auth")
    except FileNotFoundError:
        return {}
    return dict(section) if section else {}


def signed_in_at_provider() -> bool:
    """True when this browser holds Streamlit's identity cookie (or AppTest's ``at.user``)."""
    # Without an [auth] section st.user has no is_logged_in at all.
    return st.user.to_dict().get("is_logged_in") is True


def claims() -> dict:
    return dict(st.user.to_dict())


@st.cache_data(ttl=60, show_spinner=False)
def _discovery(url: str) -> tuple[dict, str | None]:
    """The provider's discovery document, and why it cannot be used (or None)."""
    if urlparse(url).scheme not in ("http", "https"):
        return {}, f"server_metadata_url {url!r} is not an http(s) URL."
    try:
        with urllib.request.urlopen(url, timeout=DISCOVERY_TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked above
            document = json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as exc:
        return {}, f"the provider's discovery URL {url} answered HTTP {exc.code}."
    except (OSError, ValueError) as exc:
        return {}, f"the provider's discovery URL {url} could not be reached or read ({exc})."
    if not isinstance(document, dict):
        return {}, f"the provider's discovery document at {url} is not a JSON object."
    missing = [
        k
        for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
        if k not in document
    ]
    if missing:
        return document, f"the provider's discovery document at {url} lacks {', '.join(missing)}."
    return document, None


def provider_problem() -> str | None:
    """What is wrong with the ``[auth]`` configuration, in words for the admin, or None."""
    section = _auth_section()
    if not section:
        return (
            "there is no [auth] section in secrets.toml. Add redirect_uri, cookie_secret, "
            "client_id, client_secret and server_metadata_url (README, Single sign-on)."
        )
    missing = [k for k in REQUIRED_KEYS if not str(section.get(k, "")).strip()]
    if missing:
        return f"[auth] in secrets.toml lacks {', '.join(missing)}."
    redirect = str(section.get("redirect_uri", ""))
    parsed = urlparse(redirect)
    if parsed.scheme not in ("http", "https") or not parsed.path.endswith("/oauth2callback"):
        return (
            f"redirect_uri {redirect!r} must be this app's absolute address ending in "
            "/oauth2callback, e.g. https://analytics.example.com/oauth2callback, and be "
            "registered with the provider."
        )
    here = urlparse(st.context.url or "")
    if here.netloc and here.netloc != parsed.netloc:
        return (
            f"redirect_uri {redirect!r} is not this app's address ({here.scheme}://"
            f"{here.netloc}): the provider would send users elsewhere after signing in. Use "
            "the address people open the app at, and register it with the provider."
        )
    document, problem = _discovery(str(section.get("server_metadata_url", "")))
    if problem:
        return problem
    kwargs = section.get("client_kwargs")
    supported = document.get("token_endpoint_auth_methods_supported")
    return client_problem(
        str(document["token_endpoint"]),
        str(section["client_id"]),
        str(section["client_secret"]),
        redirect,
        supported=[str(m) for m in supported] if isinstance(supported, list) else None,
        method=kwargs.get("token_endpoint_auth_method") if hasattr(kwargs, "get") else None,
    )


def sign_in_button(ctx: AppContext) -> None:
    """The "Sign in with ..." button, or the admin's message when the provider is unusable."""
    problem = provider_problem()
    if problem:
        st.error(
            "Single sign-on is not available: " + md_escape(problem) + " Administrator: fix "
            "[auth] in secrets.toml and restart the app.",
            icon="🛑",
        )
        return
    label = ctx.settings.sso_provider_label
    st.button(
        f"Sign in with {label}",
        key="sso-sign-in",
        type="primary" if not local_on(ctx) else "secondary",
        width="stretch",
        on_click=st.login,
    )


def no_access_page(message: str) -> None:
    """What a provider-signed-in user whose claims map to no role sees: no page, no data."""
    st.error(f"**{md_escape(message)}**", icon="🚫")
    st.write(
        "Your administrator decides who may use this app through the groups of your "
        "organisation's account. Once you have been given access, sign in again."
    )
    st.button("Sign out", key="sso-no-access-sign-out", on_click=st.logout)


def confirm_with_provider(ctx: AppContext, reason: str) -> None:
    """A tab restored from the identity cookie whose account uses the provider's second
    factor (no app code to type): a fresh provider sign-in is its proof."""
    st.write(reason)
    st.button(
        f"Confirm with {ctx.settings.sso_provider_label}",
        key="sso-confirm",
        type="primary",
        on_click=st.login,
    )
