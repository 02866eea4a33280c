"""The security service the app shell and the CLI call: sign-in with throttling, server-side
sessions, TOTP and step-up, export checks, and access to users, audit and alerts.

Flow (see docs/architecture.md, "Access control")::

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

from datetime import datetime
from pathlib import Path
from typing import Any

from security.alerts import Alerts
from security.audit import OK, AuditLog
from security.clock import Clock, utcnow
from security.crypto import SecretBox
from security.db import AppDB, app_db_target
from security.export_checks import ExportChecksMixin, ExportRefused
from security.passwords import DEFAULT_ROUNDS
from security.payout_ledger import PayoutLedger
from security.permissions import Principal
from security.report_store import ReportStore
from security.second_factor import SecondFactorMixin, TotpEnrolment, TotpResult
from security.segment_store import SegmentStore
from security.sessions import TOUCH_SECONDS, SessionInfo, SessionsMixin, token_hash
from security.signin import SIGN_IN_FAILED, SignInResult
from security.sso_signin import SsoSignIn, SsoSignInMixin
from security.users import UserStore
from settings import Settings

__all__ = [
    "SIGN_IN_FAILED",
    "TOUCH_SECONDS",
    "ExportRefused",
    "Security",
    "SessionInfo",
    "SignInResult",
    "SsoSignIn",
    "TotpEnrolment",
    "TotpResult",
    "open_security",
    "token_hash",
]


class Security(SsoSignInMixin, SecondFactorMixin, SessionsMixin, ExportChecksMixin):
    """Sign-in, sessions, 2FA, exports, users, audit and alerts over one app database.

    Each concern lives in its own module (security/signin.py, sso_signin.py, sessions.py,
    second_factor.py, export_checks.py, throttles.py); this class puts them together over the shared stores.

    Thread-safe and multi-process-safe: connections come from a pool, and every read-modify-write
    runs in a write transaction that the database serialises (``BEGIN IMMEDIATE`` on SQLite, an
    advisory lock on PostgreSQL; security/db.py). Cache one instance per process (e.g. with
    ``st.cache_resource`` in the app shell).

    ``db_path``: a SQLite file or a ``postgresql://`` URL instead of the ``app_db`` setting.
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
        self.db = AppDB(db_path or app_db_target(settings))
        self.audit = AuditLog(self.db, clock, key=settings.secret("audit_key"))
        self.alerts = Alerts(self.db, self.audit, clock)
        self.users = UserStore(self.db, self.audit, clock, bcrypt_rounds)
        self.payouts = PayoutLedger(self.db, self.audit, clock)
        self.segments = SegmentStore(self.db, self.audit, clock)
        self.reports = ReportStore(self.db, self.audit, clock)
        self._box = SecretBox(settings.secret("app_key"))

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
