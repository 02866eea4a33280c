"""The security service the app shell and the CLI call: sign-in with throttling, server-side
sessions, TOTP and step-up, export checks, and access to users, audit and alerts.

Flow (see the README's "Access control" section)::

    sec = Security(load_settings())
    result = sec.authenticate(username, password, client_id)      # same message for every failure
    if result.ok:
        token = sec.create_session(result.username, client_id)     # keep the token in the cookie
    principal = sec.resolve(token)                                  # every run; None = signed out
    if principal.mfa_pending:
        if not sec.totp_enrolled(principal.username):
            enrolment = sec.begin_totp_enrolment(token)             # show enrolment.qr_png / .secret
            sec.confirm_totp_enrolment(token, code)
        else:
            sec.verify_totp(token, code)
    require(sec.resolve(token), "revenue")                          # AccessDenied otherwise

Every method takes an optional ``now``; the default comes from the injected ``clock``.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from security import totp
from security.alerts import FAILED_SIGNINS, LARGE_EXPORT, MANY_EXPORTS, NEW_CLIENT, Alerts
from security.audit import FAILURE, LOCKED, OK, AuditLog, encode_text
from security.clock import Clock, from_db, to_db, utcnow
from security.crypto import SecretBox, SecretBoxError
from security.db import AppDB
from security.passwords import DEFAULT_ROUNDS, verify_password
from security.permissions import (
    MFA_ROLES,
    PRIVILEGED_ROLES,
    AccessDenied,
    Principal,
    require,
)
from security.users import UserStore, normalise_username, row_to_user
from settings import Settings

# The one message for every failed sign-in: unknown user, wrong password, disabled, locked.
SIGN_IN_FAILED = "Wrong username or password, or too many attempts. Please try again later."
# last_seen is written at most this often per session (every page run resolves the session).
TOUCH_SECONDS = 60


@dataclass(frozen=True)
class SignInResult:
    """Outcome of :meth:`Security.authenticate`.

    ``status`` is ``ok``, ``invalid`` or ``locked`` (for audit and tests); the UI shows
    ``message``, which is the same for every failure so that it does not reveal which usernames
    exist or are locked. ``username`` is the canonical name, set only when ``ok``.
    """

    status: str
    message: str
    username: str | None = None
    needs_mfa: bool = False
    mfa_enrolled: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TotpResult:
    """Outcome of a 2FA or step-up check: ``status`` is ``ok``, ``invalid``, ``reused``,
    ``locked``, ``not_enrolled`` or ``no_session``; ``message`` is for the user."""

    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class TotpEnrolment:
    """What the enrolment screen shows: the QR code, and the secret for typing in by hand."""

    secret: str
    uri: str
    qr_png: bytes


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


class ExportRefused(AccessDenied):
    """An export was refused: no permission, or more rows than the role's cap."""


_TOTP_MESSAGES = {
    "ok": "Verified.",
    "invalid": "That code is not right. Check the time on your phone and try the newest code.",
    "reused": "That code has already been used. Wait for the next one.",
    "locked": "Too many wrong codes: two-factor sign-in is locked for a while. Try again later.",
    "not_enrolled": "Two-factor authentication is not set up for this account yet.",
    "no_session": "Your session has ended. Please sign in again.",
}


def _totp(status: str) -> TotpResult:
    return TotpResult(status, _TOTP_MESSAGES[status])


def token_hash(token: str) -> str:
    """SHA-256 hex of a session token: what the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class _Reservation:
    locked: bool
    set_lock: bool = False


class Security:
    """Sign-in, sessions, 2FA, exports, users, audit and alerts over one app database.

    Thread-safe and multi-process-safe: each thread opens its own SQLite connection and every
    read-modify-write runs in ``BEGIN IMMEDIATE``. Cache one instance per process (e.g. with
    ``st.cache_resource`` in the app shell).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utcnow,
        bcrypt_rounds: int = DEFAULT_ROUNDS,
        db_path: Path | str | None = None,
    ):
        self.settings = settings
        self.clock = clock
        self.db = AppDB(db_path or settings.app_db_path)
        self.audit = AuditLog(self.db, clock)
        self.alerts = Alerts(self.db, self.audit, clock)
        self.users = UserStore(self.db, self.audit, clock, bcrypt_rounds)
        self._box = SecretBox(settings.secret("app_key"))

    def _now(self, now: datetime | None) -> datetime:
        return now or self.clock()

    # --- throttles ---------------------------------------------------------------------------
    def _reserve(
        self,
        conn: sqlite3.Connection,
        kind: str,
        key: str,
        max_failures: int,
        lock_minutes: float,
        now: datetime,
        *,
        check_only: bool = False,
    ) -> _Reservation:
        """Check a throttle and (unless ``check_only``) count one attempt as a failure now.

        Counting before the slow password check, inside the write lock, keeps the counter exact
        under concurrent attempts: the (max+1)-th concurrent attempt sees the lock. A successful
        attempt undoes its reservation afterwards. A lock lifts at ``locked_until``; failures
        older than one lock period are forgotten.
        """
        row = conn.execute(
            "SELECT failures, window_start, locked_until FROM throttles WHERE kind = ? AND key = ?",
            (kind, key),
        ).fetchone()
        failures, window_start, locked_until = (0, None, None)
        if row is not None:
            failures = row["failures"]
            window_start = from_db(row["window_start"])
            locked_until = from_db(row["locked_until"])
        period = timedelta(minutes=lock_minutes)
        if locked_until is not None:
            if now < locked_until:
                return _Reservation(locked=True)
            failures, window_start, locked_until = 0, None, None
        if window_start is not None and now - window_start >= period:
            failures, window_start = 0, None
        if check_only:
            return _Reservation(locked=False)
        failures += 1
        window_start = window_start or now
        set_lock = failures >= max_failures
        if set_lock:
            locked_until = now + period
        conn.execute(
            "INSERT INTO throttles (kind, key, failures, window_start, locked_until) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, key) DO UPDATE SET "
            "failures = excluded.failures, window_start = excluded.window_start, "
            "locked_until = excluded.locked_until",
            (
                kind,
                key,
                failures,
                to_db(window_start),
                to_db(locked_until) if locked_until else None,
            ),
        )
        return _Reservation(locked=False, set_lock=set_lock)

    @staticmethod
    def _release(
        conn: sqlite3.Connection, kind: str, key: str, reservation: _Reservation, *, reset: bool
    ) -> None:
        """Undo a reservation after a success: ``reset`` clears the counter (the account's own
        counter), otherwise only this attempt is taken back (the client's counter)."""
        if reset:
            conn.execute(
                "UPDATE throttles SET failures = 0, window_start = NULL, locked_until = NULL "
                "WHERE kind = ? AND key = ?",
                (kind, key),
            )
            return
        conn.execute(
            "UPDATE throttles SET failures = MAX(failures - 1, 0)"
            + (", locked_until = NULL" if reservation.set_lock else "")
            + " WHERE kind = ? AND key = ?",
            (kind, key),
        )

    def failure_count(self, kind: str, key: str) -> int:
        """Current failure counter of a throttle (``signin_user``, ``signin_client``, ``totp``)."""
        rows = self.db.query(
            "SELECT failures FROM throttles WHERE kind = ? AND key = ?", (kind, key)
        )
        return int(rows[0]["failures"]) if rows else 0

    def is_locked(self, kind: str, key: str, now: datetime | None = None) -> bool:
        """True while a throttle's lock holds."""
        rows = self.db.query(
            "SELECT locked_until FROM throttles WHERE kind = ? AND key = ?", (kind, key)
        )
        until = from_db(rows[0]["locked_until"]) if rows else None
        return until is not None and self._now(now) < until

    # --- sign-in -----------------------------------------------------------------------------
    def authenticate(
        self, username: str, password: str, client_id: str, now: datetime | None = None
    ) -> SignInResult:
        """Check a username and password, throttled per account and per client.

        Returns ``ok``, ``invalid`` or ``locked`` with the same message for every failure. An
        unknown username costs a bcrypt check like a known one and is throttled like one, so
        neither message, timing nor lock behaviour tells which usernames exist. Audited
        (``signin.ok`` / ``signin.failure`` / ``signin.lock``); bursts of failures and a
        privileged sign-in from a new client raise alerts.
        """
        now = self._now(now)
        s = self.settings
        name = normalise_username(username)[:200]
        client = encode_text(client_id or "unknown", 200)
        password = password if isinstance(password, str) else ""
        with self.db.transaction() as conn:
            user_check = self._reserve(
                conn,
                "signin_user",
                name,
                s.login_max_failures,
                s.login_lock_minutes,
                now,
                check_only=True,
            )
            client_check = self._reserve(
                conn,
                "signin_client",
                client,
                s.login_client_max_failures,
                s.login_lock_minutes,
                now,
                check_only=True,
            )
            if user_check.locked or client_check.locked:
                which = "account" if user_check.locked else "client"
                self.audit.append(
                    conn,
                    actor=name or "-",
                    action="signin.failure",
                    target=name,
                    client=client,
                    outcome=LOCKED,
                    details={"reason": f"{which} locked"},
                    now=now,
                )
                self._failed_signin_burst(conn, now)
                locked = True
            else:
                user_res = self._reserve(
                    conn, "signin_user", name, s.login_max_failures, s.login_lock_minutes, now
                )
                client_res = self._reserve(
                    conn,
                    "signin_client",
                    client,
                    s.login_client_max_failures,
                    s.login_lock_minutes,
                    now,
                )
                row = conn.execute(
                    "SELECT password_hash, disabled FROM users WHERE username = ?", (name,)
                ).fetchone()
                locked = False
        if locked:
            # Same cost as a real check, so a locked account answers as slowly as any other.
            verify_password(password, self.users.dummy_hash)
            return SignInResult("locked", SIGN_IN_FAILED)

        # The slow bcrypt check runs outside the write lock so sign-ins do not queue behind it.
        if row is None:
            verify_password(password, self.users.dummy_hash)
            matches, reason = False, "unknown user"
        else:
            matches = verify_password(password, row["password_hash"])
            reason = "wrong password"
            if matches and row["disabled"]:
                matches, reason = False, "account disabled"

        with self.db.transaction() as conn:
            if not matches:
                self.audit.append(
                    conn,
                    actor=name or "-",
                    action="signin.failure",
                    target=name,
                    client=client,
                    outcome=FAILURE,
                    details={"reason": reason},
                    now=now,
                )
                for kind, res, minutes in (
                    ("account", user_res, s.login_lock_minutes),
                    ("client", client_res, s.login_lock_minutes),
                ):
                    if res.set_lock:
                        self.audit.append(
                            conn,
                            actor="system",
                            action="signin.lock",
                            target=name if kind == "account" else client,
                            client=client,
                            outcome=LOCKED,
                            details={"kind": kind, "minutes": minutes},
                            now=now,
                        )
                self._failed_signin_burst(conn, now)
                return SignInResult("invalid", SIGN_IN_FAILED)
            self._release(conn, "signin_user", name, user_res, reset=True)
            self._release(conn, "signin_client", client, client_res, reset=False)
            user = row_to_user(
                conn.execute("SELECT * FROM users WHERE username = ?", (name,)).fetchone()
            )
            self._note_client(conn, user.username, user.roles, client, now)
            self.audit.append(
                conn,
                actor=name,
                action="signin.ok",
                target=name,
                client=client,
                now=now,
                details={"roles": sorted(user.roles)},
            )
        return SignInResult(
            "ok",
            "Signed in.",
            username=user.username,
            needs_mfa=bool(user.roles & MFA_ROLES),
            mfa_enrolled=user.totp_enrolled,
        )

    def _failed_signin_burst(self, conn: sqlite3.Connection, now: datetime) -> None:
        window = timedelta(minutes=self.settings.alert_failed_signins_window_minutes)
        count = conn.execute(
            "SELECT COUNT(*) FROM audit WHERE action = 'signin.failure' AND ts >= ?",
            (to_db(now - window),),
        ).fetchone()[0]
        if count >= self.settings.alert_failed_signins:
            self.alerts.raise_in(
                conn,
                FAILED_SIGNINS,
                f"{count} failed sign-ins in the last "
                f"{self.settings.alert_failed_signins_window_minutes:g} minutes",
                severity="critical",
                details={"failures": count},
                dedupe_key=FAILED_SIGNINS,
                dedupe_minutes=self.settings.alert_failed_signins_window_minutes,
                now=now,
            )

    def _note_client(
        self,
        conn: sqlite3.Connection,
        username: str,
        roles: frozenset[str],
        client: str,
        now: datetime,
    ) -> None:
        """Remember the client; alert when a privileged account signs in from a client it has
        never used before (its very first sign-in sets the baseline and does not alert)."""
        known = conn.execute(
            "SELECT client_id FROM known_clients WHERE username = ?", (username,)
        ).fetchall()
        known_ids = {r["client_id"] for r in known}
        if known_ids and client not in known_ids and roles & PRIVILEGED_ROLES:
            self.alerts.raise_in(
                conn,
                NEW_CLIENT,
                f"{username} ({', '.join(sorted(roles & PRIVILEGED_ROLES))}) signed in from a "
                "new client",
                details={"username": username, "client": client},
                now=now,
            )
        conn.execute(
            "INSERT INTO known_clients (username, client_id, first_seen, last_seen) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(username, client_id) DO UPDATE SET "
            "last_seen = excluded.last_seen",
            (username, client, to_db(now), to_db(now)),
        )

    # --- sessions ----------------------------------------------------------------------------
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

    def _session_row(self, token: str | None) -> sqlite3.Row | None:
        if not token or not isinstance(token, str):
            return None
        rows = self.db.query("SELECT * FROM sessions WHERE token_hash = ?", (token_hash(token),))
        return rows[0] if rows else None

    def resolve(self, token: str | None, now: datetime | None = None) -> Principal | None:
        """The principal of a live session, or None (unknown, revoked, idle longer than
        ``session_idle_hours``, older than ``session_max_hours``, or the user disabled).

        An expired session is revoked, so every tab holding the token is signed out. A live one
        has ``last_seen`` moved to ``now`` (written at most once a minute). Roles, scope and
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
        if (now - last_seen).total_seconds() >= TOUCH_SECONDS:
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
                details={"sessions": count, "reason": reason},
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

    # --- TOTP --------------------------------------------------------------------------------
    def totp_enrolled(self, username: str) -> bool:
        """True when the account has confirmed a TOTP enrolment."""
        user = self.users.get(username)
        return bool(user and user.totp_enrolled)

    def begin_totp_enrolment(self, token: str, now: datetime | None = None) -> TotpEnrolment:
        """Start (or continue) enrolment for the session's user: the secret, URI and QR code.

        The pending secret is kept encrypted, so a rerun shows the same QR code. Refused
        (AccessDenied) without a live session or when the account is already enrolled — an
        enrolled account changes its authenticator only through an admin's 2FA reset.
        """
        now = self._now(now)
        principal = self.resolve(token, now)
        if principal is None:
            raise AccessDenied("2fa enrolment", "signed_out")
        name = principal.username
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT totp_secret_enc, totp_enrolled FROM users WHERE username = ?", (name,)
            ).fetchone()
            if row["totp_enrolled"]:
                raise AccessDenied("2fa enrolment", "not_permitted", name)
            secret = None
            if row["totp_secret_enc"]:
                try:
                    secret = self._box.decrypt(row["totp_secret_enc"], name)
                except SecretBoxError:
                    secret = None
            if secret is None:
                secret = totp.new_secret()
                conn.execute(
                    "UPDATE users SET totp_secret_enc = ?, updated_at = ? WHERE username = ?",
                    (self._box.encrypt(secret, name), to_db(now), name),
                )
                self.audit.append(
                    conn,
                    actor=name,
                    action="2fa.enrol_start",
                    target=name,
                    client=self._client_of(principal),
                    now=now,
                )
        uri = totp.provisioning_uri(secret, name)
        return TotpEnrolment(secret=secret, uri=uri, qr_png=totp.qr_png(uri))

    def _client_of(self, principal: Principal) -> str:
        rows = self.db.query("SELECT client_id FROM sessions WHERE id = ?", (principal.session_id,))
        return rows[0]["client_id"] if rows else ""

    def _check_code(
        self,
        conn: sqlite3.Connection,
        username: str,
        secret: str,
        code: str,
        client: str,
        now: datetime,
        purpose: str,
    ) -> str:
        """Check one code inside a write transaction; a TotpResult status. Each (user, time
        step) is accepted once; wrong or reused codes count towards the 2FA lock."""
        s = self.settings
        reservation = self._reserve(
            conn, "totp", username, s.totp_max_failures, s.totp_lock_minutes, now
        )
        if reservation.locked:
            self.audit.append(
                conn,
                actor=username,
                action="2fa.failure",
                target=username,
                client=client,
                outcome=LOCKED,
                details={"purpose": purpose, "reason": "locked"},
                now=now,
            )
            return "locked"
        clean = totp.normalise_code(code)
        step = totp.matching_step(secret, clean, now) if clean else None
        status = "invalid"
        if step is not None:
            try:
                conn.execute(
                    "INSERT INTO used_totp (username, timestep, used_at) VALUES (?, ?, ?)",
                    (username, step, to_db(now)),
                )
                status = "ok"
            except sqlite3.IntegrityError:
                status = "reused"
        if status == "ok":
            self._release(conn, "totp", username, reservation, reset=True)
            # Steps older than the window can never match again; forget them.
            conn.execute(
                "DELETE FROM used_totp WHERE username = ? AND timestep < ?",
                (username, step - 2 * totp.VALID_WINDOW - 1),
            )
            return status
        self.audit.append(
            conn,
            actor=username,
            action="2fa.failure",
            target=username,
            client=client,
            outcome=FAILURE,
            details={"purpose": purpose, "reason": status},
            now=now,
        )
        if reservation.set_lock:
            self.audit.append(
                conn,
                actor="system",
                action="2fa.lock",
                target=username,
                client=client,
                outcome=LOCKED,
                details={"minutes": s.totp_lock_minutes},
                now=now,
            )
            return "locked"
        return status

    def _totp_flow(self, token: str, code: str, now: datetime, *, enrol: bool) -> TotpResult:
        principal = self.resolve(token, now)
        if principal is None:
            return _totp("no_session")
        name = principal.username
        client = self._client_of(principal)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT totp_secret_enc, totp_enrolled FROM users WHERE username = ?", (name,)
            ).fetchone()
            if not row["totp_secret_enc"] or bool(row["totp_enrolled"]) == enrol:
                return _totp("not_enrolled")
            secret = self._box.decrypt(row["totp_secret_enc"], name)
            status = self._check_code(
                conn, name, secret, code, client, now, "enrol" if enrol else "sign-in"
            )
            if status == "ok":
                if enrol:
                    conn.execute(
                        "UPDATE users SET totp_enrolled = 1, updated_at = ? WHERE username = ?",
                        (to_db(now), name),
                    )
                conn.execute(
                    "UPDATE sessions SET mfa_verified_at = ? WHERE id = ?",
                    (to_db(now), principal.session_id),
                )
                self.audit.append(
                    conn,
                    actor=name,
                    action="2fa.enrol" if enrol else "2fa.ok",
                    target=name,
                    client=client,
                    details={"session": principal.session_id},
                    now=now,
                )
        return _totp(status)

    def confirm_totp_enrolment(
        self, token: str, code: str, now: datetime | None = None
    ) -> TotpResult:
        """Finish enrolment with the first code from the authenticator; on success the account
        is enrolled and this session has passed 2FA (audited ``2fa.enrol``)."""
        return self._totp_flow(token, code, self._now(now), enrol=True)

    def verify_totp(self, token: str, code: str, now: datetime | None = None) -> TotpResult:
        """Check a code for the session's enrolled user; on success the session has passed
        2FA (audited ``2fa.ok``). Each code works once; repeated failures lock 2FA for
        ``totp_lock_minutes``."""
        return self._totp_flow(token, code, self._now(now), enrol=False)

    # --- step-up -----------------------------------------------------------------------------
    def step_up(
        self, token: str, password: str, code: str, now: datetime | None = None
    ) -> TotpResult:
        """Re-authenticate with password and a fresh code for a sensitive action; valid for
        ``stepup_minutes`` (see :meth:`has_recent_step_up`, ``Principal.step_up_until``).

        A wrong password counts towards the account's sign-in lock, a wrong code towards the 2FA
        lock. Audited ``stepup``.
        """
        now = self._now(now)
        principal = self.resolve(token, now)
        if principal is None:
            return _totp("no_session")
        name = principal.username
        client = self._client_of(principal)
        s = self.settings
        with self.db.transaction() as conn:
            reservation = self._reserve(
                conn, "signin_user", name, s.login_max_failures, s.login_lock_minutes, now
            )
            row = conn.execute(
                "SELECT password_hash, totp_secret_enc, totp_enrolled FROM users "
                "WHERE username = ?",
                (name,),
            ).fetchone()
        if reservation.locked:
            verify_password(password or "", self.users.dummy_hash)
            self.audit.record(
                actor=name,
                action="stepup",
                target=name,
                client=client,
                outcome=LOCKED,
                details={"reason": "account locked"},
                now=now,
            )
            return _totp("locked")
        password_ok = verify_password(password or "", row["password_hash"])
        with self.db.transaction() as conn:
            if not password_ok:
                self.audit.append(
                    conn,
                    actor=name,
                    action="stepup",
                    target=name,
                    client=client,
                    outcome=FAILURE,
                    details={"reason": "wrong password"},
                    now=now,
                )
                if reservation.set_lock:
                    self.audit.append(
                        conn,
                        actor="system",
                        action="signin.lock",
                        target=name,
                        client=client,
                        outcome=LOCKED,
                        details={"kind": "account"},
                        now=now,
                    )
                return _totp("invalid")
            self._release(conn, "signin_user", name, reservation, reset=True)
            if not row["totp_enrolled"] or not row["totp_secret_enc"]:
                return _totp("not_enrolled")
            secret = self._box.decrypt(row["totp_secret_enc"], name)
            status = self._check_code(conn, name, secret, code, client, now, "step-up")
            if status == "ok":
                conn.execute(
                    "UPDATE sessions SET step_up_at = ?, "
                    "mfa_verified_at = COALESCE(mfa_verified_at, ?) WHERE id = ?",
                    (to_db(now), to_db(now), principal.session_id),
                )
            self.audit.append(
                conn,
                actor=name,
                action="stepup",
                target=name,
                client=client,
                outcome=OK if status == "ok" else FAILURE,
                details={} if status == "ok" else {"reason": status},
                now=now,
            )
        return _totp(status)

    def has_recent_step_up(self, token: str, now: datetime | None = None) -> bool:
        """True when the session's last step-up is younger than ``stepup_minutes``."""
        now = self._now(now)
        principal = self.resolve(token, now)
        return bool(
            principal and principal.step_up_until is not None and now < principal.step_up_until
        )

    # --- exports -----------------------------------------------------------------------------
    def record_export(
        self,
        principal: Principal | None,
        *,
        fmt: str,
        target: str,
        rows: int,
        client: str = "",
        personal_data: bool = False,
        now: datetime | None = None,
    ) -> int:
        """Check and audit an export before the file is handed over; the audit record's id.

        Raises ExportRefused when the principal may not export in ``fmt`` (``csv``/``excel``),
        may not export personal data (step-up needed), or asks for more rows than the role's
        cap. A large export, and many exports by one user in the window, raise alerts.
        """
        now = self._now(now)
        action = {"csv": "export_csv", "excel": "export_excel"}.get(fmt)
        checks = [action or f"export_{fmt}"]
        if personal_data:
            checks.append("export_personal_data")
        try:
            for check in checks:
                require(principal, check, now)
        except AccessDenied as exc:
            self.audit.record(
                actor=principal.username if principal else "-",
                action="export",
                target=target,
                client=client,
                outcome="denied",
                details={"format": fmt, "rows": rows, "reason": exc.reason},
                now=now,
            )
            raise ExportRefused(exc.target, exc.reason, exc.username) from exc
        assert principal is not None
        cap = principal.export_row_cap
        if rows > cap:
            self.audit.record(
                actor=principal.username,
                action="export",
                target=target,
                client=client,
                outcome="denied",
                details={"format": fmt, "rows": rows, "cap": cap},
                now=now,
            )
            raise ExportRefused(target, "row_cap", principal.username)
        s = self.settings
        with self.db.transaction() as conn:
            audit_id = self.audit.append(
                conn,
                actor=principal.username,
                action="export",
                target=target,
                client=client,
                details={
                    "format": fmt,
                    "rows": rows,
                    "personal_data": personal_data,
                    "scope": principal.scope_key,
                },
                now=now,
            )
            if rows >= s.alert_export_rows:
                self.alerts.raise_in(
                    conn,
                    LARGE_EXPORT,
                    f"{principal.username} exported {rows:,} rows of {target}",
                    details={"username": principal.username, "rows": rows, "target": target},
                    now=now,
                )
            window = timedelta(minutes=s.alert_exports_window_minutes)
            recent = conn.execute(
                "SELECT COUNT(*) FROM audit WHERE action = 'export' AND outcome = 'ok' "
                "AND actor = ? AND ts >= ?",
                (principal.username, to_db(now - window)),
            ).fetchone()[0]
            if recent >= s.alert_exports_count:
                self.alerts.raise_in(
                    conn,
                    MANY_EXPORTS,
                    f"{principal.username} made {recent} exports in "
                    f"{s.alert_exports_window_minutes:g} minutes",
                    details={"username": principal.username, "exports": recent},
                    dedupe_key=f"{MANY_EXPORTS}:{principal.username}",
                    dedupe_minutes=s.alert_exports_window_minutes,
                    now=now,
                )
        return audit_id

    # --- convenience -------------------------------------------------------------------------
    def record_event(
        self,
        principal: Principal | str | None,
        action: str,
        *,
        target: str = "",
        client: str = "",
        outcome: str = OK,
        details: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> int:
        """Audit an event on behalf of a principal (or a named actor such as ``cli``), e.g.
        ``payout.approve``, ``viewer.erase``, ``sync``, ``model.change``; the record id."""
        actor = principal.username if isinstance(principal, Principal) else principal or "system"
        return self.audit.record(
            actor=actor,
            action=action,
            target=target,
            client=client,
            outcome=outcome,
            details=details,
            now=self._now(now),
        )


def open_security(settings: Settings | None = None, **kwargs: Any) -> Security:
    """A :class:`Security` for these settings (loaded from the environment when omitted)."""
    if settings is None:
        from settings import load_settings

        settings = load_settings()
    return Security(settings, **kwargs)
