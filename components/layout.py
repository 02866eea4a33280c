"""The frame around every page: the sidebar (who is signed in, sign-out), the demo banner, and
the screens shown when the app cannot start."""

from __future__ import annotations

import streamlit as st

from components import auth
from components.context import AppContext
from components.freshness import auto_refresh_toggle
from components.text import md_escape
from security.permissions import ROLE_LABELS, Principal


def demo_banner(ctx: AppContext) -> None:
    if ctx.settings.demo_mode:
        st.info(
            "**Demo data** — a generated streaming platform with fictional titles and viewers. "
            "Configure a warehouse to see your own.",
            icon="🎬",
        )


def sidebar(ctx: AppContext, principal: Principal) -> None:
    with st.sidebar:
        roles = ", ".join(ROLE_LABELS.get(r, r) for r in sorted(principal.roles))
        st.markdown(f"**{md_escape(principal.display_name)}**")
        st.caption(f"{md_escape(roles)} · signed in as {md_escape(principal.username)}")
        if principal.needs_mfa and not principal.mfa_verified:
            st.caption("🔐 2FA needed again for money and personal data pages")
        if principal.may("acknowledge_alerts"):
            open_alerts = ctx.security.alerts.open_count()
            if open_alerts:
                st.page_link("app_pages/admin.py", label=f"🚨 {open_alerts} open alert(s)")
        auto_refresh_toggle(ctx)
        if st.button("Sign out", key="sign-out", icon="🚪", width="stretch"):
            auth.sign_out(ctx, principal)
    demo_banner(ctx)
