"""Administration: alerts, audit log, users and roles, sessions, data sync, erasure (admins only)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from components import auth
from components.context import AppContext
from components.data_admin import erasure_panel, sync_panel
from components.guard import require_page
from components.stepup import step_up_ok
from components.text import md_escape
from security.account_admin import AccountAdmin
from security.audit import EVENTS
from security.input import InputError, parse_creator_ids
from security.passwords import PasswordPolicyError
from security.permissions import ROLE_LABELS, ROLES, AccessDenied, Principal, RoleError
from security.users import User, UserError

ctx, principal = require_page("admin", "🛡️ Administration", needs_data=False)


def _alerts(ctx: AppContext, principal: Principal) -> None:
    show_all = st.toggle("Show acknowledged alerts too", key="alerts-all")
    alerts = ctx.security.alerts.list(open_only=not show_all)
    if not alerts:
        st.success("No open alerts." if not show_all else "No alerts yet.", icon="✅")
        return
    for alert in alerts:
        icon = {"critical": "🛑", "warning": "⚠️"}.get(alert.severity, "ℹ️")
        with st.container(border=True):
            st.markdown(
                f"{icon} **{alert.kind.replace('_', ' ').capitalize()}** · {alert.raised_at:%Y-%m-%d %H:%M} UTC"
            )
            st.text(alert.message)
            if alert.is_open:
                if st.button("Acknowledge", key=f"ack-{alert.id}"):
                    ctx.security.alerts.acknowledge(
                        alert.id, principal.username, client=auth.client_id()
                    )
                    st.rerun()
            else:
                st.caption(
                    f"Acknowledged by {alert.acknowledged_by} at {alert.acknowledged_at:%Y-%m-%d %H:%M} UTC"
                )


def _audit(ctx: AppContext) -> None:
    a, b, c, d = st.columns(4)
    actor = a.text_input("User", key="audit-actor", placeholder="any user").strip() or None
    action = b.selectbox("Event", ["(any)", *EVENTS], key="audit-action")
    outcome = c.selectbox(
        "Outcome", ["(any)", "ok", "failure", "denied", "locked"], key="audit-outcome"
    )
    today = datetime.now(UTC).date()
    days = d.date_input(
        "Between", (today - timedelta(days=7), today), key="audit-days", format="YYYY-MM-DD"
    )
    since = until = None
    if isinstance(days, tuple) and len(days) == 2:
        since = datetime.combine(days[0], time.min, tzinfo=UTC)
        until = datetime.combine(days[1], time.max, tzinfo=UTC)
    records = ctx.security.audit.list(
        actor=actor,
        action=None if action == "(any)" else action,
        outcome=None if outcome == "(any)" else outcome,
        since=since,
        until=until,
        limit=1000,
    )
    if not records:
        st.info("No audit records match these filters.", icon="🔍")
    else:
        frame = pd.DataFrame(
            [
                {
                    "id": r.id,
                    "time (UTC)": r.ts.strftime("%Y-%m-%d %H:%M:%S"),
                    "user": r.actor,
                    "event": r.action,
                    "target": r.target,
                    "outcome": r.outcome,
                    "client": r.client,
                    "details": json.dumps(r.details, sort_keys=True) if r.details else "",
                }
                for r in records
            ]
        )
        st.dataframe(frame, hide_index=True)
        st.caption(f"{len(frame):,} record(s), newest first (at most 1,000 shown).")
    if st.button("Verify the hash chain", key="audit-verify", icon="🔗"):
        ok, bad = ctx.security.audit.verify_chain()
        if ok:
            st.success(
                "The audit chain is intact: no record was changed, removed or inserted.", icon="✅"
            )
        else:
            st.error(
                f"The audit chain is broken at record {bad}: the log was tampered with.", icon="🛑"
            )


def _users(ctx: AppContext, principal: Principal) -> None:
    users = ctx.security.users.list()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "username": u.username,
                    "name": u.display_name,
                    "roles": ", ".join(sorted(u.roles)),
                    "creator scope": ", ".join(str(i) for i in sorted(u.creator_ids)),
                    "sign-in": "SSO" if u.sso else "password",
                    "2FA": "enrolled" if u.totp_enrolled else "—",
                    "status": "disabled" if u.disabled else "active",
                    "demo": "yes" if u.is_demo else "",
                }
                for u in users
            ]
        ),
        hide_index=True,
    )
    st.caption(
        "Adding users and changing roles, scopes, passwords, 2FA, sessions or whether an account "
        "is enabled grants access or resets a credential: each needs you to confirm it is you "
        "(password and a fresh code), valid for a few minutes, and the audit log cites it. "
        "SSO accounts are created at their first single sign-on; their roles and creator scope "
        "are read from the provider's groups at every sign-in (a change here lasts until then), "
        "and disabling one here refuses it even with a valid provider sign-in."
    )
    if not step_up_ok(ctx, principal, "manage_users", key="accounts"):
        return
    admin = AccountAdmin(ctx.security, principal, auth.client_id())
    left, right = st.columns(2)
    with left, st.form("add-user", clear_on_submit=True):
        st.subheader("Add a user")
        username = st.text_input("Username")
        display = st.text_input("Display name")
        roles = st.multiselect("Roles", ROLES, format_func=ROLE_LABELS.get)
        creators = st.text_input("Creator ids (creator and partner roles)", placeholder="e.g. 4, 7")
        password = st.text_input("Initial password (12+ characters)", type="password")
        if st.form_submit_button("Add user", type="primary"):
            with _account_change():
                admin.add(
                    username,
                    password,
                    roles,
                    display_name=display or None,
                    creator_ids=parse_creator_ids(creators),
                )
                st.success(f"Added {username}.", icon="✅")
    with right:
        st.subheader("Change a user")
        names = [u.username for u in users]
        target = st.selectbox("User", names, key="admin-target") if names else None
        if target:
            user = next(u for u in users if u.username == target)
            action = st.radio(
                "Change",
                [
                    "Roles",
                    "Creator scope",
                    "Enable / disable",
                    "Reset password",
                    "Reset 2FA",
                    "Sign out everywhere",
                ],
                key="admin-change",
                horizontal=True,
            )
            with _account_change():
                _change_user(admin, principal, user, action)


@contextlib.contextmanager
def _account_change() -> Iterator[None]:
    """Show why an account change was refused, in words the admin can act on."""
    try:
        yield
    except AccessDenied as denied:
        if denied.reason == "step_up_required":
            st.warning("Your confirmation has expired: confirm it is you again.", icon="🔐")
            st.button("Confirm again", key="stepup-again")
        else:
            st.error("Your role cannot change accounts.", icon="🚫")
    except (UserError, RoleError, PasswordPolicyError, InputError) as exc:
        st.error(str(exc) or "Check the values.", icon="⚠️")


def _change_user(admin: AccountAdmin, principal: Principal, user: User, action: str) -> None:
    if action == "Roles":
        new_roles = st.multiselect(
            "Roles",
            ROLES,
            default=sorted(user.roles),
            format_func=ROLE_LABELS.get,
            key="admin-roles",
        )
        if st.button("Save roles", key="save-roles"):
            admin.set_roles(user.username, new_roles)
            st.success("Roles saved; they apply from the user's next page load.", icon="✅")
    elif action == "Creator scope":
        text = st.text_input(
            "Creator ids",
            value=", ".join(str(i) for i in sorted(user.creator_ids)),
            key="admin-scope",
            help="Whole numbers separated by commas, e.g. 4, 7. Empty: the account sees no rows.",
        )
        if st.button("Save scope", key="save-scope"):
            admin.set_creator_scope(user.username, parse_creator_ids(text))
            st.success("Creator scope saved.", icon="✅")
    elif action == "Enable / disable":
        if user.disabled:
            if st.button("Enable account", key="enable"):
                admin.enable(user.username)
                st.rerun()
        elif st.button(
            "Disable account", key="disable", disabled=user.username == principal.username
        ):
            admin.disable(user.username)
            st.rerun()
    elif action == "Reset password":
        with st.form("reset-password", clear_on_submit=True):
            new_password = st.text_input("New password (12+ characters)", type="password")
            if st.form_submit_button("Reset password"):
                admin.reset_password(user.username, new_password)
                st.success("Password reset; the user's sessions were signed out.", icon="✅")
    elif action == "Reset 2FA":
        if st.button("Reset 2FA", key="reset-2fa"):
            admin.reset_2fa(user.username)
            st.success("2FA reset: the user enrols again at the next sign-in.", icon="✅")
    elif action == "Sign out everywhere" and st.button("End all sessions", key="revoke-all"):
        ended = admin.end_sessions(user.username)
        st.success(f"Ended {ended} session(s).", icon="✅")


_LOCK_KINDS = {
    "signin_user": "sign-in from unknown devices",
    "signin_device": "sign-in from one known device",
    "signin_client": "sign-in from one client (address and browser)",
    "reauth_session": "password confirmation in one session",
    "totp": "two-factor codes",
}


def _locks(ctx: AppContext, principal: Principal) -> None:
    st.caption(
        "Accounts and clients locked after repeated failures. A lock lifts by itself after "
        f"{ctx.settings.login_lock_minutes:g} minutes; lift it sooner once you know who it is."
    )
    locks = ctx.security.active_locks()
    if not locks:
        st.success("Nothing is locked.", icon="✅")
        return
    for lock in locks:
        with st.container(border=True):
            who = lock.username or "—"
            st.markdown(
                f"🔒 **{md_escape(who)}** · {_LOCK_KINDS.get(lock.kind, lock.kind)} · "
                f"{lock.failures} failure(s) · until {lock.locked_until:%Y-%m-%d %H:%M} UTC"
            )
            st.caption(f"Key: {lock.key}")
            if st.button("Lift this lock", key=f"unlock-{lock.kind}-{lock.key}"):
                ctx.security.lift_lock(
                    lock.kind, lock.key, actor=principal.username, client=auth.client_id()
                )
                st.rerun()


def _sessions(ctx: AppContext) -> None:
    sessions = ctx.security.sessions()
    if not sessions:
        st.info("No sessions yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "user": s.username,
                    "started (UTC)": f"{s.created_at:%Y-%m-%d %H:%M}",
                    "last seen (UTC)": f"{s.last_seen:%Y-%m-%d %H:%M}",
                    "2FA": "passed" if s.mfa_verified_at else "—",
                    "ended": f"{s.revoked_at:%Y-%m-%d %H:%M} ({s.revoke_reason})"
                    if s.revoked_at
                    else "live",
                    "client": s.client_id,
                }
                for s in sessions
            ]
        ),
        hide_index=True,
    )


st.title("🛡️ Administration")
alerts_tab, audit_tab, users_tab, locks_tab, sessions_tab, sync_tab, erase_tab = st.tabs(
    [
        f"🚨 Alerts ({ctx.security.alerts.open_count()})",
        "📜 Audit log",
        "👥 Users",
        "🔒 Locks",
        "🔑 Sessions",
        "🔄 Data sync",
        "🧹 Erasure",
    ]
)
with alerts_tab:
    _alerts(ctx, principal)
with audit_tab:
    _audit(ctx)
with users_tab:
    _users(ctx, principal)
with locks_tab:
    _locks(ctx, principal)
with sessions_tab:
    _sessions(ctx)
with sync_tab:
    sync_panel(ctx, principal)
with erase_tab:
    erasure_panel(ctx, principal)
