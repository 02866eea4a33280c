"""Trusted devices: browsers an account has completed a sign-in from (OWASP's device cookies).

After a complete sign-in (password, and 2FA where the role needs it) the browser receives a
device cookie holding a random token; the database keeps only its SHA-256. A later sign-in that
presents it for the same account is throttled on that device's own counter, so failed sign-ins
from elsewhere never lock the owner out of a device they have used before (SECURITY.md #17). A
stolen device cookie still needs the password, and is limited by its own counter.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from security.clock import to_db
from security.db import Tx
from security.service_base import ServiceBase
from security.sessions import token_hash
from security.users import normalise_username

# Devices remembered per account; older ones are forgotten (they sign in as unknown devices).
MAX_DEVICES_PER_USER = 20


class DevicesMixin(ServiceBase):
    """Issue device tokens and recognise them at sign-in."""

    def issue_device_token(self, username: str, now: datetime | None = None) -> str:
        """A new device token for a browser that has just completed a sign-in; returned once."""
        now = self._now(now)
        name = normalise_username(username)
        token = secrets.token_urlsafe(32)
        device_id = "device-" + secrets.token_hex(8)
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO trusted_devices (id, token_hash, username, created_at, last_used_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (device_id, token_hash(token), name, to_db(now), to_db(now)),
            )
            conn.execute(
                "DELETE FROM trusted_devices WHERE username = ? AND id NOT IN ("
                "SELECT id FROM trusted_devices WHERE username = ? AND revoked_at IS NULL "
                "ORDER BY last_used_at DESC LIMIT ?)",
                (name, name, MAX_DEVICES_PER_USER),
            )
        return token

    @staticmethod
    def trusted_device_id(conn: Tx, device_token: str | None, username: str) -> str | None:
        """The device's public id when the token was issued to this account and not revoked."""
        if not device_token or not isinstance(device_token, str) or len(device_token) > 200:
            return None
        row = conn.execute(
            "SELECT id FROM trusted_devices WHERE token_hash = ? AND username = ? "
            "AND revoked_at IS NULL",
            (token_hash(device_token), username),
        ).fetchone()
        return row["id"] if row else None
