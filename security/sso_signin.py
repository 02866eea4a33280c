"""Single sign-on into the server-side session registry.

Streamlit's ``st.login`` leaves an identity cookie that lasts 30 days and cannot be shortened or
revoked. Here each provider sign-in (one ID token: issuer, subject, nonce, issue time) is bound
to a registry session (:func:`security.sso.session_token`), so sign-out, "sign out everywhere",
a disabled account and the idle and absolute limits end an SSO session exactly as they end a
password session: the identity cookie replayed afterwards finds its session ended.

At a new provider sign-in the account is provisioned on first sight (marked SSO, no password)
and its roles, creator scope and display name are re-read from the claims, so a group removed
at the provider takes effect at the next sign-in. Audited: ``user.provision``,
``user.sso_update``, ``signin.ok`` / ``signin.failure`` (method ``sso``) and ``sso.no_access``
for a user whose claims map to no role; the failed-sign-in burst and new-client alerts apply.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from security.audit import FAILURE, encode_text
from security.clock import to_db
from security.permissions import Principal
from security.sessions import SessionsMixin, token_hash
from security.signin import SignInMixin
from security.sso import NO_ACCESS, SsoIdentity, SsoRefused, identity_from_claims, session_token
from security.sso import sso_config as _sso_config
from security.users import SELECT_USERS, normalise_username, revoke_user_sessions, row_to_user

# What a user refused for reasons other than their groups is told (the reason is audited).
SSO_REFUSED = (
    "Single sign-on did not let you in. Sign in again; if this keeps happening, ask your "
    "administrator."
)
# The one refusal the user can act on: their provider has not verified the address.
SSO_UNVERIFIED = (
    "Single sign-on did not let you in: your organisation's account has no verified email "
    "address. Verify it with your organisation's sign-in service, or ask your administrator."
)
SSO_ENDED = "Your session has ended (signed out, or idle too long). Please sign in again."


@dataclass(frozen=True)
class SsoSignIn:
    """Outcome of :meth:`SsoSignInMixin.sso_sign_in`.

    ``status``: ``new`` (this identity cookie has just started a session: ``token``),
    ``existing`` (the cookie's session is live: ``token``; a tab restored from the cookie),
    ``ended`` (its session was signed out or timed out: the sign-in page), ``no_access`` (claims
    map to no role: the no-access page) or ``refused`` (disabled, a local account's name, a
    stale or unbindable sign-in). ``message`` is for the user; ``reason`` for the admin.
    """

    status: str
    message: str = ""
    token: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("new", "existing")


class SsoSignInMixin(SessionsMixin, SignInMixin):
    """``sso_sign_in``: an ID token's claims to a registry session."""

    def sso_sign_in(
        self, claims: Mapping[str, Any], client_id: str, now: datetime | None = None
    ) -> SsoSignIn:
        """The registry session of the provider sign-in these claims come from, creating it
        (and provisioning or updating the account) the first time they are seen."""
        now = self._now(now)
        client = encode_text(client_id or "unknown", 200)
        token = session_token(claims, self.settings.secret("cookie_key"))
        if token is None:
            return self._refuse_claims(
                claims, client, now, "unbindable", "no nonce or iat in ID token"
            )
        rows = self.db.query(
            "SELECT revoked_at FROM sessions WHERE token_hash = ?", (token_hash(token),)
        )
        if rows:
            principal = self.resolve(token, now)
            if principal is None:
                return SsoSignIn("ended", SSO_ENDED, reason="session ended")
            return SsoSignIn("existing", token=token)
        issued = claims.get("iat")
        max_age = timedelta(minutes=self.settings.sso_signin_max_age_minutes)
        if not isinstance(issued, int | float) or isinstance(issued, bool):
            return self._refuse_claims(claims, client, now, "stale_sign_in", "ID token without iat")
        issued_at = datetime.fromtimestamp(issued, UTC)
        # A little slack for the provider's clock running ahead of ours.
        if now - issued_at > max_age or issued_at - now > timedelta(minutes=5):
            return self._refuse_claims(
                claims,
                client,
                now,
                "stale_sign_in",
                f"ID token issued at {issued_at.isoformat()}, more than "
                f"{self.settings.sso_signin_max_age_minutes:g} minutes from now: sign in again",
            )
        try:
            identity = identity_from_claims(claims, _sso_config(self.settings))
        except SsoRefused as refused:
            return self._refuse_claims(claims, client, now, refused.reason, refused.detail)
        return self._start_sso_session(identity, token, client, now)

    def _refuse_claims(
        self, claims: Mapping[str, Any], client: str, now: datetime, reason: str, detail: str
    ) -> SsoSignIn:
        raw = claims.get(self.settings.sso_username_claim)
        name = normalise_username(raw)[:200] if isinstance(raw, str) else "-"
        return self._refuse(
            name,
            str(claims.get("iss") or ""),
            str(claims.get("sub") or ""),
            client,
            now,
            reason,
            detail,
        )

    def _refuse(
        self,
        name: str,
        issuer: str,
        subject: str,
        client: str,
        now: datetime,
        reason: str,
        detail: str,
    ) -> SsoSignIn:
        """Audit a refused provider sign-in. The SSO account bound to this very provider
        identity (issuer and subject), whose claims now map to no role, also loses its live
        sessions: its groups were taken away at the provider. Another identity claiming the
        same username ends nobody's sessions."""
        no_access = reason in ("unmapped", "conflicting_roles", "bad_creator_scope")
        name = encode_text(name or "-", 200)
        with self.db.transaction() as conn:
            ended = 0
            if no_access:
                row = conn.execute(
                    "SELECT 1 FROM sso_accounts WHERE username = ? AND issuer = ? AND subject = ?",
                    (name, issuer, subject),
                ).fetchone()
                if row is not None:
                    ended = revoke_user_sessions(conn, name, "sso: no mapped role", now)
            self.audit.append(
                conn,
                actor=name,
                action="sso.no_access" if no_access else "signin.failure",
                target=name,
                client=client,
                outcome=FAILURE,
                details={
                    "method": "sso",
                    "reason": reason,
                    "detail": detail[:300],
                    "issuer": issuer[:200],
                    **({"sessions_revoked": ended} if ended else {}),
                },
                now=now,
            )
            self._failed_signin_burst(conn, now)
        if no_access:
            return SsoSignIn("no_access", NO_ACCESS, reason=detail)
        message = SSO_UNVERIFIED if reason == "unverified_email" else SSO_REFUSED
        return SsoSignIn("refused", message, reason=detail)

    def _start_sso_session(
        self, identity: SsoIdentity, token: str, client: str, now: datetime
    ) -> SsoSignIn:
        name = identity.username
        roles = json.dumps(sorted(identity.roles))
        scope = json.dumps(sorted(identity.creator_ids))
        with self.db.transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM sessions WHERE token_hash = ?", (token_hash(token),)
            ).fetchone():
                # Another tab of the same browser started it a moment ago (writes are serial).
                return SsoSignIn("existing", token=token)
            row = conn.execute(f"{SELECT_USERS} WHERE username = ?", (name,)).fetchone()
            bound = conn.execute(
                "SELECT issuer, subject FROM sso_accounts WHERE username = ?", (name,)
            ).fetchone()
            # One app account per provider identity: a changed username claim (a renamed
            # address) must not open a second account beside the first.
            owner = conn.execute(
                "SELECT username FROM sso_accounts WHERE issuer = ? AND subject = ? "
                "AND username <> ?",
                (identity.issuer, identity.subject, name),
            ).fetchone()
            if owner is not None:
                refusal = (
                    "identity_has_account",
                    f"this provider identity (issuer {identity.issuer!r}, subject "
                    f"{identity.subject!r}) already has the account {owner['username']!r}, "
                    f"not {name!r}: its username claim changed at the provider",
                )
            elif row is not None and bound is None:
                refusal = ("local_account", f"{name!r} is a local account (password sign-in)")
            elif bound is not None and (bound["issuer"], bound["subject"]) != (
                identity.issuer,
                identity.subject,
            ):
                refusal = (
                    "subject_changed",
                    f"{name!r} belongs to another identity at the provider (issuer "
                    f"{bound['issuer']!r}, subject {bound['subject']!r}); the address may have "
                    "been reassigned",
                )
            elif row is not None and row["disabled"]:
                refusal = ("disabled", f"{name!r} is disabled in the app")
            else:
                refusal = None
            if refusal is None:
                if row is None:
                    conn.execute(
                        "INSERT INTO users (username, display_name, password_hash, roles, "
                        "creator_ids, created_at, updated_at) VALUES (?, ?, '', ?, ?, ?, ?)",
                        (name, identity.display_name, roles, scope, to_db(now), to_db(now)),
                    )
                    conn.execute(
                        "INSERT INTO sso_accounts (username, issuer, subject, created_at) "
                        "VALUES (?, ?, ?, ?)",
                        (name, identity.issuer, identity.subject, to_db(now)),
                    )
                    self.audit.append(
                        conn,
                        actor="system",
                        action="user.provision",
                        target=name,
                        client=client,
                        details={
                            "method": "sso",
                            "roles": sorted(identity.roles),
                            "creator_ids": sorted(identity.creator_ids),
                            "groups": list(identity.groups[:20]),
                            "issuer": identity.issuer[:200],
                        },
                        now=now,
                    )
                else:
                    before = row_to_user(row)
                    if (
                        before.roles != identity.roles
                        or before.creator_ids != identity.creator_ids
                        or before.display_name != identity.display_name
                    ):
                        conn.execute(
                            "UPDATE users SET roles = ?, creator_ids = ?, display_name = ?, "
                            "updated_at = ? WHERE username = ?",
                            (roles, scope, identity.display_name, to_db(now), name),
                        )
                        self.audit.append(
                            conn,
                            actor="system",
                            action="user.sso_update",
                            target=name,
                            client=client,
                            details={
                                "roles_before": sorted(before.roles),
                                "roles_after": sorted(identity.roles),
                                "creator_ids_before": sorted(before.creator_ids),
                                "creator_ids_after": sorted(identity.creator_ids),
                            },
                            now=now,
                        )
                session_id = secrets.token_hex(8)
                # The provider's second factor counts where the settings accept its amr values;
                # otherwise a money role passes the app's own TOTP, as a password sign-in does.
                mfa_at = to_db(now) if identity.provider_mfa else None
                conn.execute(
                    "INSERT INTO sessions (id, token_hash, username, client_id, created_at, "
                    "last_seen, mfa_verified_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (session_id, token_hash(token), name, client, to_db(now), to_db(now), mfa_at),
                )
                conn.execute("INSERT INTO sso_sessions (session_id) VALUES (?)", (session_id,))
                self._note_client(conn, name, identity.roles, client, now)
                self.audit.append(
                    conn,
                    actor=name,
                    action="signin.ok",
                    target=name,
                    client=client,
                    details={
                        "method": "sso",
                        "roles": sorted(identity.roles),
                        "provider_mfa": identity.provider_mfa,
                        "session": session_id,
                    },
                    now=now,
                )
        if refusal is not None:
            return self._refuse(name, identity.issuer, identity.subject, client, now, *refusal)
        return SsoSignIn("new", token=token)

    def session_is_sso(self, principal: Principal) -> bool:
        """True when the principal's session began with a provider sign-in."""
        rows = self.db.query(
            "SELECT 1 FROM sso_sessions WHERE session_id = ?", (principal.session_id,)
        )
        return bool(rows)
