"""Single sign-on: does the identity provider accept this app's client id and secret?

Streamlit's own ``/oauth2callback`` swallows a failed token exchange (the user just lands on
the sign-in page again), so a wrong client secret would only show in the server log. Before
the sign-in button is offered, :func:`client_problem` asks the provider's token endpoint
directly: an authorization-code request with the configured client credentials and a code
that cannot be valid. RFC 6749 §5.2: a provider answers ``invalid_client`` (usually HTTP 401)
when client authentication fails, and ``invalid_grant`` (400) when the client is fine but the
code is not, so the answer says which without any user signing in.

Answers are remembered per process and per configuration (a hash of the secret, never the
secret): an accepted client is not asked again; a rejection or an unreachable provider is
asked again after ``RETRY_SECONDS``, so a fix at the provider shows without a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Sequence

import httpx

TIMEOUT_SECONDS = 5
RETRY_SECONDS = 60.0
# What Authlib (behind Streamlit's st.login) uses unless [auth] client_kwargs names another.
DEFAULT_AUTH_METHOD = "client_secret_basic"
# OpenID Connect Discovery 1.0: a provider that lists no methods supports client_secret_basic.
DEFAULT_SUPPORTED = ("client_secret_basic",)
CHECKED_METHODS = ("client_secret_basic", "client_secret_post")

REJECTED = (
    "the provider rejected the client id or secret ({detail}). Copy client_id and "
    "client_secret in [auth] again from the app's registration at the provider (a secret may "
    "also have expired there)."
)

_lock = threading.Lock()
# config key -> (problem or None, monotonic time after which to ask again, or None: never)
_answers: dict[str, tuple[str | None, float | None]] = {}


def _key(token_endpoint: str, client_id: str, client_secret: str, redirect_uri: str, how: str):
    digest = hashlib.sha256(client_secret.encode()).hexdigest()
    return "\0".join((token_endpoint, client_id, digest, redirect_uri, how))


def _ask(
    token_endpoint: str, client_id: str, client_secret: str, redirect_uri: str, how: str
) -> str | None:
    # A code that no provider issued: only the client's authentication is being tested.
    data = {
        "grant_type": "authorization_code",
        "code": "spotlight-credential-check-" + secrets.token_urlsafe(16),
        "redirect_uri": redirect_uri,
    }
    auth = None
    if how == "client_secret_basic":
        auth = httpx.BasicAuth(client_id, client_secret)
    else:
        data |= {"client_id": client_id, "client_secret": client_secret}
    try:
        response = httpx.post(
            token_endpoint,
            data=data,
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        return f"the provider's token endpoint {token_endpoint} could not be reached ({exc})."
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    if error == "invalid_client" or response.status_code == 401:
        detail = f"HTTP {response.status_code} {error or 'without an error code'}"
        return REJECTED.format(detail=detail + f", {how}")
    if response.status_code < 300 or response.status_code == 400:
        # invalid_grant (the expected answer) or another complaint about the request: the
        # client itself was authenticated.
        return None
    return f"the provider's token endpoint {token_endpoint} answered HTTP {response.status_code}."


def client_problem(
    token_endpoint: str,
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    *,
    supported: Sequence[str] | None = None,
    method: str | None = None,
    now: Callable[[], float] = time.monotonic,
) -> str | None:
    """Why the provider would refuse this client at the token exchange, in words for the admin,
    or None. ``supported`` is the discovery document's ``token_endpoint_auth_methods_supported``;
    ``method`` the one Streamlit will use ([auth] ``client_kwargs.token_endpoint_auth_method``).
    """
    how = (method or DEFAULT_AUTH_METHOD).strip()
    offered = tuple(supported) if supported else DEFAULT_SUPPORTED
    if how not in offered:
        return (
            f"the provider does not accept {how} at its token endpoint (it offers "
            f"{', '.join(offered)}). Set client_kwargs = {{ token_endpoint_auth_method = "
            f'"{next((m for m in CHECKED_METHODS if m in offered), offered[0])}" }} in [auth].'
        )
    if how not in CHECKED_METHODS:
        # private_key_jwt and the like: no shared secret to test this way.
        return None
    key = _key(token_endpoint, client_id, client_secret, redirect_uri, how)
    with _lock:
        known = _answers.get(key)
        if known and (known[1] is None or now() < known[1]):
            return known[0]
    problem = _ask(token_endpoint, client_id, client_secret, redirect_uri, how)
    with _lock:
        _answers[key] = (problem, None if problem is None else now() + RETRY_SECONDS)
    return problem


def forget() -> None:
    """Drop every remembered answer (tests; a process that wants to ask again now)."""
    with _lock:
        _answers.clear()
