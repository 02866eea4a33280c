"""Password sign-in: one message for every failure, throttled per account and per client,
audited, with alerts for bursts of failures and a privileged sign-in from a new client."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from security.alerts import FAILED_SIGNINS, NEW_CLIENT
from security.audit import FAILURE, LOCKED, encode_text
from security.clock import to_db
from security.passwords import verify_password
from security.permissions import MFA_ROLES, PRIVILEGED_ROLES
from security.throttles import ThrottlesMixin
from security.users import normalise_username, row_to_user

# The one message for every failed sign-in: unknown user, wrong password, disabled, locked.
SIGN_IN_FAILED = "Wrong username or password, or too many attempts. Please try again later."


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


class SignInMixin(ThrottlesMixin):
    """``authenticate``: the password check behind the sign-in form."""

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
