"""The check at the top of every page, before any query runs (SECURITY.md #6)."""

from __future__ import annotations

import streamlit as st

from components import auth
from components.context import AppContext, app_context
from components.freshness import freshness_line
from components.text import md_escape
from security.permissions import AccessDenied, Principal, require


def require_page(
    page_id: str, title: str, *, needs_data: bool = True
) -> tuple[AppContext, Principal]:
    """The context and principal if this page may be shown; otherwise draw why not and stop.

    A principal without the grant gets a "no access" page (audited); one whose 2FA is still
    owed in this tab gets the code form, then the page. A page that ``needs_data`` says so when
    no extract exists yet. Nothing after this call runs for them.
    """
    ctx = app_context()
    principal = auth.principal_for_run()
    try:
        require(principal, page_id)
    except AccessDenied as denied:
        st.title(title)
        if denied.reason == "mfa_required" and principal is not None:
            st.info("This page shows money or personal data: confirm it is you first.", icon="🔐")
            auth.second_factor_form(ctx, principal, st.session_state.get(auth.TOKEN_KEY, ""))
        else:
            no_access(ctx, principal, page_id)
        st.stop()
    assert principal is not None  # require() lets no signed-out principal through
    if needs_data and not ctx.store.exists():
        st.title(title)
        st.info(
            "There is no data yet: the first sync from the warehouse has not run. An administrator "
            "starts it under Administration → Data sync, or with `python cli.py sync --full`.",
            icon="⏳",
        )
        st.stop()
    if needs_data:
        freshness_line(ctx, principal)
    return ctx, principal


def no_access(ctx: AppContext, principal: Principal | None, page_id: str) -> None:
    if principal is not None:
        ctx.security.record_event(
            principal, "access.denied", target=page_id, client=auth.client_id(), outcome="denied"
        )
    st.error(
        f"**No access.** Your account ({md_escape(principal.username if principal else 'signed out')}) "
        "cannot open this page. Ask an administrator if you need it.",
        icon="🚫",
    )
    st.page_link("app_pages/overview.py", label="Go to the Overview", icon="📊")
