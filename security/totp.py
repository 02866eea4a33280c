"""TOTP helpers (RFC 6238 via pyotp): new secrets, provisioning URIs, QR codes, and matching a
code to the time step it belongs to (so each step can be accepted once)."""

from __future__ import annotations

import hmac
import io
from datetime import datetime

import pyotp
import qrcode

ISSUER = "Spotlight Analytics"
DIGITS = 6
INTERVAL = 30
# Accept the previous and next step too: phones drift, and a code typed at :29 lands at :31.
VALID_WINDOW = 1


def new_secret() -> str:
    """A random base32 secret (160 bits)."""
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).provisioning_uri(
        name=username, issuer_name=issuer
    )


def qr_png(uri: str) -> bytes:
    """The URI as a QR code, PNG bytes (for ``st.image``)."""
    image = qrcode.make(uri, box_size=6, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def normalise_code(code: str) -> str | None:
    """The code without spaces, or None when it is not exactly six digits."""
    clean = "".join(str(code or "").split())
    return clean if len(clean) == DIGITS and clean.isascii() and clean.isdigit() else None


def code_at(secret: str, when: datetime) -> str:
    """The code valid at ``when`` (tests and the end-to-end test use this)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL).at(when)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals ``code`` within the valid window, else None."""
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
