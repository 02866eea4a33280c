"""The second factor: TOTP enrolment and sign-in codes, and step-up re-authentication for
sensitive actions. Each code works once; wrong codes count towards a 2FA lock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from security import totp
from security.audit import FAILURE, LOCKED, OK
from security.clock import to_db
from security.crypto import SecretBoxError
from security.db import Tx
from security.passwords import verify_password
from security.permissions import AccessDenied, Principal
from security.sessions import SessionsMixin
from security.throttles import ThrottlesMixin


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


class SecondFactorMixin(SessionsMixin, ThrottlesMixin):
    """TOTP enrolment and verification per session, and step-up."""

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

    def _check_code(
        self,
        conn: Tx,
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
            # A code already used adds no row (a failed INSERT would end a PostgreSQL transaction).
            inserted = conn.execute(
                "INSERT INTO used_totp (username, timestep, used_at) VALUES (?, ?, ?) "
                "ON CONFLICT (username, timestep) DO NOTHING",
                (username, step, to_db(now)),
            ).rowcount
            status = "ok" if inserted == 1 else "reused"
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
    def _reauthenticate(
        self, principal: Principal, password: str, client: str, now: datetime, *, action: str
    ) -> str:
        """Check a signed-in user's password again: ``ok``, ``invalid`` or ``locked``, audited
        under ``action`` when it fails.

        Failures count on the session's own counter (``reauth_session``), so a stolen session
        gets ``login_max_failures`` guesses, and failed sign-ins from elsewhere, which lock the
        account for unknown devices, never stop its owner from confirming an action.
        """
        s = self.settings
        name, key = principal.username, principal.session_id
        with self.db.transaction() as conn:
            reservation = self._reserve(
                conn, "reauth_session", key, s.login_max_failures, s.login_lock_minutes, now
            )
            row = conn.execute(
                "SELECT password_hash FROM users WHERE username = ?", (name,)
            ).fetchone()
        if reservation.locked or row is None:
            verify_password(password or "", self.users.dummy_hash)
            self.audit.record(
                actor=name,
                action=action,
                target=name,
                client=client,
                outcome=LOCKED,
                details={"reason": "re-authentication locked", "session": key},
                now=now,
            )
            return "locked"
        password_ok = verify_password(password or "", row["password_hash"])
        with self.db.transaction() as conn:
            if password_ok:
                self._release(conn, "reauth_session", key, reservation, reset=True)
                return "ok"
            self.audit.append(
                conn,
                actor=name,
                action=action,
                target=name,
                client=client,
                outcome=FAILURE,
                details={"reason": "wrong password", "session": key},
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
                    details={"kind": "session", "minutes": s.login_lock_minutes, "session": key},
                    now=now,
                )
            self._failed_signin_burst(conn, now)
        return "invalid"

    def check_password(self, token: str, password: str, now: datetime | None = None) -> TotpResult:
        """Check the session's user's current password (My account, before a password change):
        throttled per session and audited as a sign-in failure when wrong."""
        now = self._now(now)
        principal = self.resolve(token, now)
        if principal is None:
            return _totp("no_session")
        status = self._reauthenticate(
            principal, password, self._client_of(principal), now, action="signin.failure"
        )
        if status == "invalid":
            return TotpResult("invalid", "The current password is not right.")
        if status == "locked":
            return TotpResult(
                "locked", "Too many wrong passwords: try again later, or ask an administrator."
            )
        return TotpResult("ok", "Verified.")

    def step_up(
        self, token: str, password: str, code: str, now: datetime | None = None
    ) -> TotpResult:
        """Re-authenticate with password and a fresh code for a sensitive action (an SSO account,
        which has no password here, with the fresh code alone); valid for ``stepup_minutes`` (see :meth:`has_recent_step_up`, ``Principal.step_up_until``).

        A wrong password counts towards the session's re-authentication lock, a wrong code
        towards the 2FA lock. Audited ``stepup``.
        """
        now = self._now(now)
        principal = self.resolve(token, now)
        if principal is None:
            return _totp("no_session")
        name = principal.username
        client = self._client_of(principal)
        user = self.users.get(name)
        # A single sign-on account has no password here: its fresh proof is the code alone.
        if user is None or not user.sso:
            reauthenticated = self._reauthenticate(
                principal, password, client, now, action="stepup"
            )
            if reauthenticated != "ok":
                return _totp(reauthenticated)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT totp_secret_enc, totp_enrolled FROM users WHERE username = ?", (name,)
            ).fetchone()
            if not row["totp_enrolled"] or not row["totp_secret_enc"]:
                return _totp("not_enrolled")
            secret = self._box.decrypt(row["totp_secret_enc"], name)
            status = self._check_code(conn, name, secret, code, client, now, "step-up")
            audit_id = self.audit.append(
                conn,
                actor=name,
                action="stepup",
                target=name,
                client=client,
                outcome=OK if status == "ok" else FAILURE,
                details={} if status == "ok" else {"reason": status},
                now=now,
            )
            if status == "ok":
                # The step-up's audit id travels with the session, so each privileged change it
                # permits is audited with it (SECURITY.md #18).
                conn.execute(
                    "UPDATE sessions SET step_up_at = ?, step_up_audit_id = ?, "
                    "mfa_verified_at = COALESCE(mfa_verified_at, ?) WHERE id = ?",
                    (to_db(now), audit_id, to_db(now), principal.session_id),
                )
        return _totp(status)

    def has_recent_step_up(self, token: str, now: datetime | None = None) -> bool:
        """True when the session's last step-up is younger than ``stepup_minutes``."""
        now = self._now(now)
        principal = self.resolve(token, now)
        return bool(
            principal and principal.step_up_until is not None and now < principal.step_up_until
        )
