"""Spotlight Analytics: settings -> sign-in -> role navigation -> the page.

Run with ``streamlit run app.py`` (scripts/start.sh installs and starts it).
"""

from __future__ import annotations

import streamlit as st

from components import auth, bootstrap, freshness, layout
from components.context import StartupError, app_context
from components.navigation import build_navigation


def main() -> None:
    st.set_page_config(
        page_title="Spotlight Analytics",
        page_icon="🎬",
        layout="wide",
        # "auto": open on wide screens, closed on phones (it would cover the page after sign-in).
        initial_sidebar_state="auto",
    )
    try:
        ctx = app_context()
    except StartupError as exc:
        # The app stops rather than run with a weak key or unreadable data; say what to fix.
        bootstrap.startup_failure(exc)
        st.stop()
    bootstrap.ensure_extract(ctx)
    # An automatic refresh is not the user's activity: it must not keep the session alive.
    automatic = freshness.begin_run()
    principal = auth.current_principal(ctx, touch=not automatic)
    page = build_navigation(principal)
    if principal is None:
        auth.sign_in_screen(ctx)
        st.stop()
    layout.sidebar(ctx, principal)
    auth.persist_cookie_if_pending(ctx)
    page.run()


main()
