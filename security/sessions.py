"""Server-side sessions: the bearer token's hash, idle and absolute limits, revocation.

Every page run resolves the cookie's token to a principal here; an ended session ends in every
tab that holds its token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from security.audit import encode_text
from security.clock import from_db, to_db
from security.db import Row
from security.permissions import AccessDenied, Principal
from security.service_base import ServiceBase
from security.users import normalise_username, row_to_user

# last_seen is written at most this often per session (every page run resolves the session).
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SessionInfo:
    """A session as the admin page sees it (never the token)."""

    id: str
    username: str
    client_id: str
    created_at: datetime
    last_seen: datetime
    mfa_verified_at: datetime | None
    step_up_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None


def token_hash(token: str) -> str:
    """SHA-256 hex of a session token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class SessionsMixin(ServiceBase):
    """Create, resolve, list and revoke sessions."""

    def create_session(self, username: str, client_id: str, now: datetime | None = None) -> str:
        """A new session for a user who has just passed :meth:`authenticate`; its bearer token.

        The token (256 random bits, URL-safe) is returned once and never stored: the database
        keeps only its SHA-256. The session starts without 2FA.
        """
        now = self._now(now)
        name = normalise_username(username)
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(8)
        client = encode_text(client_id or "unknown", 200)
        with self.db.transaction() as conn:
            if not conn.execute(
                "SELECT 1 FROM users WHERE username = ? AND disabled = 0", (name,)
            ).fetchone():
                raise AccessDenied("session", "not_permitted", name)
            conn.execute(
                "INSERT INTO sessions (id, token_hash, username, client_id, created_at, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, token_hash(token), name, client, to_db(now), to_db(now)),
            )
            self.audit.append(
                conn,
                actor=name,
                action="session.create",
                target=f"session:{session_id}",
                client=client,
                now=now,
            )
        return token

    def _session_row(self, token: str | None) -> Row | None:
        if not token or not isinstance(token, str):
            return None
        rows = self.db.query("SELECT * FROM sessions WHERE token_hash = ?", (token_hash(token),))
        return rows[0] if rows else None

    def resolve(
        self, token: str | None, now: datetime | None = None, *, touch: bool = True
    ) -> Principal | None:
        """The principal of a live session, or None (unknown, revoked, idle longer than
        ``session_idle_hours``, older than ``session_max_hours``, or the user disabled).

        An expired session is revoked, so every tab holding the token is signed out. A live one
        has ``last_seen`` moved to ``now`` (written at most once a minute) unless ``touch`` is
        False: a page refreshing itself is not the user's activity. Roles, scope and
        display name are read fresh from the user record every time.
        """
        now = self._now(now)
        row = self._session_row(token)
        if row is None or row["revoked_at"] is not None:
            return None
        created = from_db(row["created_at"])
        last_seen = from_db(row["last_seen"])
        assert created is not None and last_seen is not None
        reason = None
        if now - last_seen > timedelta(hours=self.settings.session_idle_hours):
            reason = "idle"
        elif now - created > timedelta(hours=self.settings.session_max_hours):
            reason = "expired"
        user_row = self.db.query("SELECT * FROM users WHERE username = ?", (row["username"],))
        if reason is None and (not user_row or user_row[0]["disabled"]):
            reason = "disabled"
        if reason is not None:
            self._revoke_row(row["id"], row["username"], row["client_id"], reason, now)
            return None
        if touch and (now - last_seen).total_seconds() >= TOUCH_SECONDS:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE sessions SET last_seen = ? WHERE id = ? AND revoked_at IS NULL "
                    "AND last_seen < ?",
                    (to_db(now), row["id"], to_db(now)),
                )
        user = row_to_user(user_row[0])
        step_up_at = from_db(row["step_up_at"])
        return Principal(
            username=user.username,
            display_name=user.display_name,
            roles=user.roles,
            creator_ids=user.creator_ids,
            mfa_verified=row["mfa_verified_at"] is not None,
            session_id=row["id"],
            step_up_id=row["step_up_audit_id"] if step_up_at else None,
            step_up_until=(
                step_up_at + timedelta(minutes=self.settings.stepup_minutes) if step_up_at else None
            ),
            resolved_at=now,
        )

    def _revoke_row(
        self, session_id: str, username: str, client: str, reason: str, now: datetime
    ) -> bool:
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE sessions SET revoked_at = ?, revoke_reason = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (to_db(now), reason, session_id),
            )
            if cursor.rowcount:
                self.audit.append(
                    conn,
                    actor=username if reason == "sign-out" else "system",
                    action="signout",
                    target=f"session:{session_id}",
                    client=client,
                    details={"username": username, "reason": reason},
                    now=now,
                )
        return bool(cursor.rowcount)

    def revoke(
        self, token: str | None, *, reason: str = "sign-out", now: datetime | None = None
    ) -> bool:
        """End the session of this token in every tab (audited ``signout``); False when it was
        unknown or already ended."""
        row = self._session_row(token)
        if row is None:
            return False
        return self._revoke_row(
            row["id"], row["username"], row["client_id"], reason, self._now(now)
        )

    def revoke_all(
        self,
        username: str,
        *,
        actor: str = "system",
        reason: str = "revoked by admin",
        client: str = "",
        step_up: int | None = None,
        now: datetime | None = None,
    ) -> int:
        """End every session of the user (audited ``session.revoke_all``); how many ended."""
        now = self._now(now)
        name = normalise_username(username)
        with self.db.transaction() as conn:
            count = conn.execute(
                "UPDATE sessions SET revoked_at = ?, revoke_reason = ? "
                "WHERE username = ? AND revoked_at IS NULL",
                (to_db(now), reason, name),
            ).rowcount
            self.audit.append(
                conn,
                actor=actor,
                action="session.revoke_all",
                target=name,
                client=client,
                details={
                    "sessions": count,
                    "reason": reason,
                    **({"step_up": step_up} if step_up is not None else {}),
                },
                now=now,
            )
        return count

    def sessions(
        self, username: str | None = None, *, active_only: bool = True
    ) -> list[SessionInfo]:
        """Sessions, newest first (for the admin page); never the token or its hash."""
        clauses, params = [], []
        if username:
            clauses.append("username = ?")
            params.append(normalise_username(username))
        if active_only:
            clauses.append("revoked_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.query(
            f"SELECT * FROM sessions {where} ORDER BY created_at DESC LIMIT 500", tuple(params)
        )
        result = []
        for r in rows:
            created, seen = from_db(r["created_at"]), from_db(r["last_seen"])
            assert created is not None and seen is not None
            result.append(
                SessionInfo(
                    id=r["id"],
                    username=r["username"],
                    client_id=r["client_id"],
                    created_at=created,
                    last_seen=seen,
                    mfa_verified_at=from_db(r["mfa_verified_at"]),
                    step_up_at=from_db(r["step_up_at"]),
                    revoked_at=from_db(r["revoked_at"]),
                    revoke_reason=r["revoke_reason"],
                )
            )
        return result

    def _client_of(self, principal: Principal) -> str:
        rows = self.db.query("SELECT client_id FROM sessions WHERE id = ?", (principal.session_id,))
        return rows[0]["client_id"] if rows else ""
