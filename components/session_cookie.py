"""The sign-in cookie: streamlit-authenticator's signed cookie, carrying a server-side session.

streamlit-authenticator signs ``{username, exp_date}`` with HS256 and keeps nothing on the server,
so on its own a cookie stays good until it expires, even after sign-out. Here the same signed
cookie also carries the opaque token of a server-side session (security.sessions); a cookie is
accepted only when its signature verifies with our key (never a published sample), it has not
expired, and its session is still live: not signed out, not idle too long, not past its absolute
lifetime. A replayed cookie from a signed-out session, or one forged with the library's sample
key, is refused.

Cookies are read from the request headers (``st.context.cookies``) and written by the library's
cookie component, which needs to be drawn in a run of its own: the cookie is therefore set on the
run after sign-in, not in the sign-in run that ends with ``st.rerun()``.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime, timedelta
from typing import Any

import extra_streamlit_components as stx
import jwt
import streamlit as st
from streamlit_authenticator.models.cookie_model import CookieModel

# Set once this tab has asked the browser to store the cookie (it is not in this tab's request
# headers until the next page load).
ISSUED_KEY = "cookie_issued"


class SessionCookie(CookieModel):
    """One per script run (the cookie component may be drawn only once per run)."""

    def __init__(self, name: str, key: str, expiry_days: float, *, secure: bool = False):
        # Not CookieModel.__init__: it draws the cookie component on every run only to list the
        # cookies, a browser round trip that reruns the whole page once more on every fresh load.
        # Cookies are read from the request headers; the component is drawn only to write.
        self.cookie_name = name
        self.cookie_key = key
        self.cookie_expiry_days = expiry_days
        # Secure: sent over HTTPS only. Not HttpOnly: the cookie component writes it from page
        # script, so script running in the page could read it (docs/SECURITY.md, residual risks).
        self.secure = secure
        self.token = None
        self.exp_date = None
        self._manager: stx.CookieManager | None = None
        self._session_token: str | None = None
        self._username: str | None = None

    @property
    def cookie_manager(self) -> stx.CookieManager:
        """The library's cookie component, drawn on first use in this run."""
        if self._manager is None:
            self._manager = stx.CookieManager(key="spotlight-cookies")
        return self._manager

    def read(self) -> tuple[str, str] | None:
        """(username, session token) from a valid, unexpired, correctly signed cookie, else None."""
        if self.cookie_name not in st.context.cookies:
            return None
        try:
            payload: dict[str, Any] = jwt.decode(
                st.context.cookies[self.cookie_name], self.cookie_key, algorithms=["HS256"]
            )
        except jwt.PyJWTError:
            return None
        username, token, expires = (
            payload.get("username"),
            payload.get("sid"),
            payload.get("exp_date"),
        )
        if (
            not isinstance(username, str)
            or not isinstance(token, str)
            or not isinstance(expires, int | float)
        ):
            return None
        if expires <= datetime.now().timestamp():
            return None
        return username, token

    def issue(self, username: str, session_token: str) -> bool:
        """Ask the browser to store a signed cookie for this session; True once it has.

        Call it on every run until it returns True: the browser answers a run later, and a rerun
        in between would otherwise remove the component before it had written anything.
        """
        self._username = username
        self._session_token = session_token
        st.session_state[ISSUED_KEY] = True
        self.exp_date = self._set_exp_date()
        expires = datetime.now() + timedelta(days=self.cookie_expiry_days)
        # The library's set() drops the component's answer; call the component itself. The key
        # names the session, so an answer given for an earlier session never counts for this one.
        answer = self.cookie_manager.cookie_manager(
            method="set",
            cookie=self.cookie_name,
            value=self._token_encode(),
            options=self._options(expires),
            key="spotlight-cookie-set-" + hashlib.sha256(session_token.encode()).hexdigest()[:12],
            default=False,
        )
        return answer is True

    def issue_device(self, device_token: str, days: float) -> bool:
        """Ask the browser to keep the device cookie (see security.devices); True once it has.

        It outlives sign-out on purpose: it says "this browser completed a sign-in of this
        account before", which spares it from locks caused by failures elsewhere.
        """
        expires = datetime.now() + timedelta(days=days)
        answer = self.cookie_manager.cookie_manager(
            method="set",
            cookie=self.device_cookie_name,
            value=device_token,
            options=self._options(expires),
            key="spotlight-device-set-" + hashlib.sha256(device_token.encode()).hexdigest()[:12],
            default=False,
        )
        return answer is True

    @property
    def device_cookie_name(self) -> str:
        return f"{self.cookie_name}_device"

    def device_token(self) -> str | None:
        """The device cookie's token from this request, if the browser sent one."""
        value = st.context.cookies.get(self.device_cookie_name)
        return value if isinstance(value, str) and value else None

    def _options(self, expires: datetime) -> dict[str, Any]:
        options: dict[str, Any] = {
            "path": "/",
            "expires": expires.isoformat(),
            "sameSite": "strict",
        }
        if self.secure:
            options["secure"] = True
        return options

    def clear(self) -> None:
        """Ask the browser to drop the cookie (the session is revoked on the server regardless)."""
        if self.cookie_name in st.context.cookies or st.session_state.get(ISSUED_KEY):
            # The component's own list may not hold the cookie yet (it answers a run late), and
            # its delete() then fails after having sent the delete; the delete is what matters.
            with contextlib.suppress(KeyError):
                self.cookie_manager.delete(self.cookie_name, key="spotlight-cookie-delete")

    def _token_encode(self) -> str:
        return jwt.encode(
            {"username": self._username, "sid": self._session_token, "exp_date": self.exp_date},
            self.cookie_key,
            algorithm="HS256",
        )
