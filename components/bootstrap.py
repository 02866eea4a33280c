"""The embedded default: on a first start with no warehouse, build the demo extract, with progress."""

from __future__ import annotations

import streamlit as st

from components.context import AppContext
from data.extract.store import ExtractError


def startup_failure(exc: Exception) -> None:
    """Say why the app cannot run and what to fix; nothing is written."""
    st.title("🎬 Spotlight Analytics")
    st.error(f"**The app cannot start safely.** {exc}", icon="🛑")
    st.caption("See the Settings section of the README. Nothing was written.")


def ensure_extract(ctx: AppContext) -> None:
    """Make sure there is an extract to read; build the demo one on a demo install's first start."""
    outdated = False
    if ctx.store.exists():
        try:
            ctx.store.cursor()  # opens the file once per process and thread; then a stat per run
        except ExtractError as exc:
            startup_failure(exc)
            st.stop()
        outdated = ctx.settings.demo_mode and _demo_outdated(ctx.store.generation())
        if not outdated:
            return
    if not ctx.settings.demo_mode:
        # Sign-in and the admin page work without data, so an admin can run the first sync;
        # the data pages say there is nothing to show yet (components.guard).
        return
    from data.demo import ensure_demo_extract

    label = (
        "Updating the demo data to this release…"
        if outdated
        else "Preparing the demo data (first start only)…"
    )
    with st.status(label, expanded=True) as status:
        bar = st.progress(0.0, text="Generating a fictional streaming platform…")

        def progress(fraction: float, message: str) -> None:
            bar.progress(min(max(fraction, 0.0), 1.0), text=message)

        ensure_demo_extract(ctx.settings, progress=progress, replace_outdated=outdated)
        status.update(label="Demo data ready", state="complete", expanded=False)


@st.cache_data(show_spinner=False)
def _demo_outdated(generation: str) -> bool:
    """Whether the live extract (this generation of it) is a demo extract built by an earlier
    release, whose tables this release's queries cannot read; asked once per extract file."""
    from components.context import app_context
    from data.demo import demo_outdated

    return demo_outdated(app_context().store)
