"""The cookies' attributes: SameSite=Strict always, Secure when the app is served over HTTPS."""

from __future__ import annotations

from datetime import datetime

from components.session_cookie import SessionCookie

KEY = "cookie-key-for-tests-0123456789abcdefghij"


def test_cookies_are_secure_when_asked_and_always_strict():
    expires = datetime(2027, 1, 1)
    secure = SessionCookie("spotlight_auth", KEY, 1.0, secure=True)._options(expires)
    plain = SessionCookie("spotlight_auth", KEY, 1.0)._options(expires)
    assert secure == {
        "path": "/",
        "expires": expires.isoformat(),
        "sameSite": "strict",
        "secure": True,
    }
    assert "secure" not in plain and plain["sameSite"] == "strict"


def test_the_device_cookie_is_named_after_the_sign_in_cookie():
    assert SessionCookie("acme", KEY, 1.0).device_cookie_name == "acme_device"
