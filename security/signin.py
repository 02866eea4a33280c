"""Password sign-in: one message for every failure, throttled per account and per client,
audited, with alerts for bursts of failures and a privileged sign-in from a new client."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from security.alerts import NEW_CLIENT
from security.audit import FAILURE, LOCKED, encode_text
from security.clock import to_db
from security.db import Tx
from security.devices import DevicesMixin
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


class SignInMixin(DevicesMixin, ThrottlesMixin):
    """``authenticate``: the password check behind the sign-in form."""

    def authenticate(
        self,
        username: str,
        password: str,
        client_id: str,
        now: datetime | None = None,
        *,
        device_token: str | None = None,
    ) -> SignInResult:
        """Check a username and password, throttled so that attackers are slowed and the account's
        owner is not locked out by them (SECURITY.md #4, #17).

        From a *trusted device* (``device_token`` from a device cookie that a completed sign-in of
        this account left, see :meth:`issue_device_token`) only that device's own counter applies.
        From anywhere else the account's counter for unknown devices and the client's counter
        apply: five wrong passwords sent from elsewhere lock the account for unknown devices, never
        for a device it has signed in from before.

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
            device = self.trusted_device_id(conn, device_token, name)
            throttles = (
                [("device", "signin_device", device, s.login_max_failures)]
                if device is not None
                else [
                    ("account", "signin_user", name, s.login_max_failures),
                    ("client", "signin_client", client, s.login_client_max_failures),
                ]
            )
            locked_by = next(
                (
                    label
                    for label, kind, key, most in throttles
                    if self._reserve(
                        conn, kind, key, most, s.login_lock_minutes, now, check_only=True
                    ).locked
                ),
                None,
            )
            if locked_by is not None:
                self.audit.append(
                    conn,
                    actor=name or "-",
                    action="signin.failure",
                    target=name,
                    client=client,
                    outcome=LOCKED,
                    details={
                        "reason": f"{locked_by} locked",
                        **({"device": device} if device else {}),
                    },
                    now=now,
                )
                self._failed_signin_burst(conn, now)
            else:
                reservations = [
                    (
                        label,
                        kind,
                        key,
                        self._reserve(conn, kind, key, most, s.login_lock_minutes, now),
                    )
                    for label, kind, key, most in throttles
                ]
                row = conn.execute(
                    "SELECT password_hash, disabled FROM users WHERE username = ?", (name,)
                ).fetchone()
        if locked_by is not None:
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

        device_detail = {"device": device} if device else {}
        with self.db.transaction() as conn:
            if not matches:
                self.audit.append(
                    conn,
                    actor=name or "-",
                    action="signin.failure",
                    target=name,
                    client=client,
                    outcome=FAILURE,
                    details={"reason": reason, **device_detail},
                    now=now,
                )
                for label, _kind, key, res in reservations:
                    if res.set_lock:
                        self.audit.append(
                            conn,
                            actor="system",
                            action="signin.lock",
                            target=name if label == "account" else key,
                            client=client,
                            outcome=LOCKED,
                            details={"kind": label, "minutes": s.login_lock_minutes},
                            now=now,
                        )
                self._failed_signin_burst(conn, now)
                return SignInResult("invalid", SIGN_IN_FAILED)
            for label, kind, key, res in reservations:
                # The client's counter gives back this attempt only: others behind the same
                # address may be failing.
                self._release(conn, kind, key, res, reset=label != "client")
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
                details={"roles": sorted(user.roles), **device_detail},
            )
        return SignInResult(
            "ok",
            "Signed in.",
            username=user.username,
            needs_mfa=bool(user.roles & MFA_ROLES),
            mfa_enrolled=user.totp_enrolled,
        )

    def _note_client(
        self,
        conn: Tx,
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
