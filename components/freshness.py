"""Every data page's freshness line, and the open page kept up to date without a click.

The line ("Data to 12:04 UTC · synced 3 min ago") is a fragment that re-runs on its own every
``auto_refresh_seconds``: it redraws itself, and when a sync has swapped in a new extract it
re-runs the whole page once, so charts follow the data while the user's filters, selections and
scroll stay as they were (they live in widget state and the browser, not in the run).

Refreshes never count as the user's activity: they do not keep a session alive (the session
registry is read without being touched) and they stop after ``auto_refresh_idle_minutes``
without a click. A signed-out tab draws no line, so nothing refreshes there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from components import auth, context
from components.context import AppContext
from data.sync.freshness import Verdict, assess, freshness
from security.permissions import Principal

AUTO_REFRESH_KEY = "auto-refresh"
_GENERATION_KEY = "_freshness_generation"
_ACTIVITY_KEY = "_freshness_last_activity"
_AUTO_RUN_KEY = "_freshness_auto_run"


def _now() -> datetime:
    """The app's clock (tests move it) as naive UTC, like the extract's times."""
    now = context.CLOCK()
    return now.astimezone(UTC).replace(tzinfo=None) if now.tzinfo else now


def begin_run() -> bool:
    """Called at the top of every full run: True when this run is an automatic refresh (it must
    not count as activity), else records the user's activity now."""
    automatic = bool(st.session_state.pop(_AUTO_RUN_KEY, False))
    if not automatic:
        st.session_state[_ACTIVITY_KEY] = _now()
    return automatic


def _rerun_automatically() -> None:
    st.session_state[_AUTO_RUN_KEY] = True
    st.rerun(scope="app")


def _idle(ctx: AppContext) -> bool:
    last = st.session_state.get(_ACTIVITY_KEY)
    limit = timedelta(minutes=float(ctx.settings.auto_refresh_idle_minutes))
    return last is not None and _now() - last > limit


def _interval(ctx: AppContext) -> int | None:
    """Seconds between refreshes, or None when off, paused, or the user has gone idle."""
    seconds = int(ctx.settings.auto_refresh_seconds)
    if seconds <= 0 or not st.session_state.get(AUTO_REFRESH_KEY, True) or _idle(ctx):
        return None
    return max(seconds, 5)


@st.cache_data(ttl=10, show_spinner=False)
def _assessed(generation: str, stale_minutes: float, minute: str) -> Verdict:
    # ``minute`` keys the cache to the clock, so "synced 3 min ago" moves; ``generation`` to
    # the extract. The sync-state file is read once per ten seconds for every open tab.
    from components.context import app_context

    return assess(
        freshness(app_context().store),
        now=_now(),
        stale_after=timedelta(minutes=stale_minutes),
    )


def assessment(ctx: AppContext) -> Verdict:
    """How fresh the live extract is now."""
    return _assessed(
        ctx.store.generation(),
        float(ctx.settings.stale_after_minutes),
        f"{_now():%Y-%m-%dT%H:%M}",
    )


def _draw(ctx: AppContext, principal: Principal, paused_reason: str) -> None:
    state = assessment(ctx)
    now = _now()
    line = state.headline(now)
    if paused_reason:
        line += f" · {paused_reason}"
    if state.stale:
        detail = f"**Data may be out of date:** {state.reason}. {line}."
        if state.failure_detail and principal.may("run_sync"):
            error = state.failure_detail[:300].replace("`", "'")
            detail += f" Error: `{error}` — see Administration → Data sync."
        st.warning(detail, icon="⏳")
    else:
        st.caption(f"🕒 {line}")


def freshness_line(ctx: AppContext, principal: Principal) -> None:
    """The freshness line at the top of a data page; it refreshes itself and, when a new extract
    arrives, the page."""
    seen = ctx.store.generation()
    st.session_state[_GENERATION_KEY] = seen
    every = _interval(ctx)
    if int(ctx.settings.auto_refresh_seconds) <= 0:
        paused = ""
    elif not st.session_state.get(AUTO_REFRESH_KEY, True):
        paused = "auto-refresh paused"
    elif every is None:
        paused = "auto-refresh paused after a while without activity (use any control to resume)"
    else:
        paused = ""

    @st.fragment(run_every=every)
    def _watch() -> None:
        # The session is checked on every tick (without counting it as activity): a tab signed
        # out elsewhere, disabled or timed out goes to the sign-in page instead of refreshing.
        current = ctx.security.resolve(st.session_state.get(auth.TOKEN_KEY), touch=False)
        if current is None or current.username != principal.username:
            _rerun_automatically()
        assert current is not None  # st.rerun never returns
        if st.session_state.get(_GENERATION_KEY) != ctx.store.generation():
            _rerun_automatically()
        if every is not None and _idle(ctx):
            # One last automatic run draws the page without a timer: an idle tab costs nothing.
            _rerun_automatically()
        _draw(ctx, current, paused)

    _watch()


def auto_refresh_toggle(ctx: AppContext) -> None:
    """The sidebar switch that pauses auto-refresh for this tab."""
    if int(ctx.settings.auto_refresh_seconds) <= 0:
        return
    st.toggle(
        "Auto-refresh",
        value=True,
        key=AUTO_REFRESH_KEY,
        help=(
            f"Every {int(ctx.settings.auto_refresh_seconds)} s the page checks for newly synced "
            "data and updates itself, keeping your filters. Turn off to keep the numbers still."
        ),
    )
