"""Administration: alerts, audit log, users and roles, sessions, data sync, erasure (admins only)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta

import pandas as pd
import streamlit as st

from components import auth
from components.context import AppContext
from components.data_admin import erasure_panel, sync_panel
from components.guard import require_page
from components.stepup import step_up_ok
from security.audit import EVENTS
from security.passwords import PasswordPolicyError
from security.permissions import ROLE_LABELS, ROLES, Principal, RoleError
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
                    "2FA": "enrolled" if u.totp_enrolled else "—",
                    "status": "disabled" if u.disabled else "active",
                    "demo": "yes" if u.is_demo else "",
                }
                for u in users
            ]
        ),
        hide_index=True,
    )
    client = auth.client_id()
    left, right = st.columns(2)
    with left, st.form("add-user", clear_on_submit=True):
        st.subheader("Add a user")
        username = st.text_input("Username")
        display = st.text_input("Display name")
        roles = st.multiselect("Roles", ROLES, format_func=ROLE_LABELS.get)
        creators = st.text_input("Creator ids (creator and partner roles)", placeholder="e.g. 4, 7")
        password = st.text_input("Initial password (12+ characters)", type="password")
        if st.form_submit_button("Add user", type="primary"):
            try:
                ids = [int(x) for x in creators.replace(" ", "").split(",") if x]
                ctx.security.users.add(
                    username,
                    password,
                    roles,
                    display_name=display or None,
                    creator_ids=ids,
                    actor=principal.username,
                    client=client,
                )
                st.success(f"Added {username}.", icon="✅")
            except ValueError as exc:  # UserError, RoleError, PasswordPolicyError, bad ids
                st.error(str(exc) or "Check the fields.", icon="⚠️")
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
            _change_user(ctx, principal, user, action, client)


def _change_user(
    ctx: AppContext, principal: Principal, user: User, action: str, client: str
) -> None:
    users = ctx.security.users
    try:
        if action == "Roles":
            new_roles = st.multiselect(
                "Roles",
                ROLES,
                default=sorted(user.roles),
                format_func=ROLE_LABELS.get,
                key="admin-roles",
            )
            if st.button("Save roles", key="save-roles") or st.session_state.get("roles-pending"):
                st.session_state["roles-pending"] = True
                if step_up_ok(ctx, principal, "change_roles", key="roles"):
                    users.set_roles(
                        user.username, new_roles, actor=principal.username, client=client
                    )
                    st.session_state.pop("roles-pending", None)
                    st.success("Roles saved; they apply from the user's next page load.", icon="✅")
        elif action == "Creator scope":
            text = st.text_input(
                "Creator ids",
                value=", ".join(str(i) for i in sorted(user.creator_ids)),
                key="admin-scope",
            )
            if st.button("Save scope", key="save-scope"):
                ids = [int(x) for x in text.replace(" ", "").split(",") if x]
                users.set_creator_scope(user.username, ids, actor=principal.username, client=client)
                st.success("Creator scope saved.", icon="✅")
        elif action == "Enable / disable":
            if user.disabled:
                if st.button("Enable account", key="enable"):
                    users.enable(user.username, actor=principal.username, client=client)
                    st.rerun()
            elif st.button(
                "Disable account", key="disable", disabled=user.username == principal.username
            ):
                users.disable(user.username, actor=principal.username, client=client)
                st.rerun()
        elif action == "Reset password":
            with st.form("reset-password", clear_on_submit=True):
                new_password = st.text_input("New password (12+ characters)", type="password")
                if st.form_submit_button("Reset password"):
                    users.reset_password(
                        user.username, new_password, actor=principal.username, client=client
                    )
                    st.success("Password reset; the user's sessions were signed out.", icon="✅")
        elif action == "Reset 2FA":
            if st.button("Reset 2FA", key="reset-2fa"):
                users.reset_2fa(user.username, actor=principal.username, client=client)
                st.success("2FA reset: the user enrols again at the next sign-in.", icon="✅")
        elif action == "Sign out everywhere" and st.button("End all sessions", key="revoke-all"):
            ended = ctx.security.revoke_all(user.username)
            st.success(f"Ended {ended} session(s).", icon="✅")
    except (UserError, RoleError, PasswordPolicyError, ValueError) as exc:
        st.error(str(exc) or "Check the values.", icon="⚠️")


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
alerts_tab, audit_tab, users_tab, sessions_tab, sync_tab, erase_tab = st.tabs(
    [
        f"🚨 Alerts ({ctx.security.alerts.open_count()})",
        "📜 Audit log",
        "👥 Users",
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
with sessions_tab:
    _sessions(ctx)
with sync_tab:
    sync_panel(ctx, principal)
with erase_tab:
    erasure_panel(ctx, principal)
