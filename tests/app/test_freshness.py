"""Freshness on every data page, today by the hour, and partial periods marked (issues #17, #20)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from components.context import app_context
from components.freshness import AUTO_REFRESH_KEY
from components.navigation import PAGE_SPECS
from data.queries import metrics
from data.queries.filters import Filters, Scope
from data.queries.realtime import latest_view_at
from security.permissions import PAGE_ROLES
from tests.app.conftest import signed_in_app, texts

OVERVIEW = "app_pages/overview.py"


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _freshness_lines(at: AppTest) -> list[str]:
    return [c for c in texts(at, "caption") if c.startswith("🕒 Data to")]


@pytest.fixture(scope="module")
def overview() -> AppTest:
    at = signed_in_app("manager")
    at.switch_page(OVERVIEW).run()
    _no_exception(at)
    return at


def test_the_overview_says_how_far_the_data_reaches(overview):
    newest = latest_view_at(app_context().store.cursor())
    lines = _freshness_lines(overview)
    assert len(lines) == 1, texts(overview, "caption")
    assert f"{newest:%H:%M} UTC" in lines[0] and "demo data" in lines[0]
    assert overview.sidebar.toggle(key=AUTO_REFRESH_KEY).value is True


@pytest.mark.parametrize(
    "page_id",
    [s.id for s in PAGE_SPECS if s.id not in {"account", "admin"}],
)
def test_every_data_page_has_the_freshness_line(page_id):
    role = "admin" if "admin" in PAGE_ROLES[page_id] else sorted(PAGE_ROLES[page_id])[0]
    spec = next(s for s in PAGE_SPECS if s.id == page_id)
    at = signed_in_app(role)
    at.switch_page(spec.path).run()
    _no_exception(at)
    assert _freshness_lines(at), (page_id, role, texts(at, "caption")[:5])


def test_pausing_auto_refresh_is_said_on_the_line(overview):
    overview.sidebar.toggle(key=AUTO_REFRESH_KEY).set_value(False).run()
    _no_exception(overview)
    assert "auto-refresh paused" in _freshness_lines(overview)[0]
    overview.sidebar.toggle(key=AUTO_REFRESH_KEY).set_value(True).run()
    assert "paused" not in _freshness_lines(overview)[0]


def test_today_so_far_adds_up_to_the_day_in_the_daily_numbers(overview):
    assert "Today so far" in texts(overview, "subheader")
    cursor = app_context().store.cursor()
    newest = latest_view_at(cursor)
    label = f"Starts today, to {newest:%H:%M} UTC"
    shown = next(m for m in overview.metric if m.label == label)
    # The same day through the daily catalog (dv_view), not the hourly query (fact_view).
    day = Filters(start=newest.date(), end=newest.date())
    daily = metrics.kpis(cursor, day, Scope.everything(), metrics=("starts",))
    assert shown.value == f"{daily['value'].iloc[0]:,.0f}"


def test_a_cut_week_is_marked_partial(overview):
    overview.segmented_control(key="overview-grain").set_value("week").run()
    _no_exception(overview)
    notes = [c for c in texts(overview, "caption") if c.startswith("Dotted: the weeks")]
    assert notes, texts(overview, "caption")
    overview.segmented_control(key="overview-grain").set_value("day").run()


def test_rankings_leave_out_the_unfinished_day_unless_asked(overview):
    newest = latest_view_at(app_context().store.cursor())
    if newest.time().hour == 23 and newest.minute == 59:
        pytest.skip("the demo's last day is complete at this hour")
    box = overview.checkbox(key="overview-include-today")
    assert box.value is False
    yesterday = newest.date() - timedelta(days=1)
    assert any(
        f"Ranked on the days to {yesterday:%d %b %Y}" in c for c in texts(overview, "caption")
    )
    top_note = next(c for c in texts(overview, "caption") if c.startswith("Runtime-normalised"))
    assert f"to {yesterday:%d %b %Y}" in top_note
    box.check().run()
    top_note = next(c for c in texts(overview, "caption") if c.startswith("Runtime-normalised"))
    assert f"to {newest:%d %b %Y}" in top_note
