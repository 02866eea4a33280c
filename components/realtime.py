"""Today so far: the latest hours by the hour, and rankings that leave an unfinished day out."""

from __future__ import annotations

import math

import streamlit as st

from components import charts, queries
from components.context import AppContext
from data.queries.filters import Filters
from data.queries.realtime import HOUR_SHIFT_LABELS, HOURLY_METRICS, without_incomplete_day
from security.permissions import Principal

# Hourly metrics whose hours add up to the day (distinct viewers per hour do not).
_ADDITIVE = ("starts", "watch_hours")
_WINDOWS = {"today": "Today", "48h": "Last 48 hours"}


def ranking_filters(ctx: AppContext, filters: Filters) -> Filters:
    """The filters rankings use: an incomplete last day is left out unless the user asks for
    it, so a title is never called down because today has only just begun."""
    newest = queries.latest_view_at(ctx)
    complete = without_incomplete_day(filters, newest)
    if complete is None or newest is None:
        return filters
    include = st.checkbox(
        f"Include today (incomplete: data to {newest:%H:%M} UTC)",
        value=False,
        key="overview-include-today",
        help="Rankings compare whole days; today is only partly in the data.",
    )
    if include:
        return filters
    st.caption(
        f"Ranked on the days to {complete.end:%d %b %Y}: today has data only to {newest:%H:%M} UTC."
    )
    return complete


def today_so_far(ctx: AppContext, principal: Principal, filters: Filters) -> None:
    """The Overview's hourly section: today (or the last 48 hours) against the same hours of
    the comparison, the unfinished hour marked."""
    st.subheader("Today so far")
    newest = queries.latest_view_at(ctx)
    if newest is None:
        st.info("No view sessions in the extract yet.", icon="📭")
        return
    left, right = st.columns([3, 2])
    metric = (
        left.segmented_control(
            "Measure",
            list(HOURLY_METRICS),
            default="starts",
            format_func=HOURLY_METRICS.__getitem__,
            key="overview-hourly-metric",
        )
        or "starts"
    )
    window = (
        right.segmented_control(
            "Hours",
            list(_WINDOWS),
            default="today",
            format_func=_WINDOWS.__getitem__,
            key="overview-hourly-window",
        )
        or "today"
    )
    hours = newest.hour + 1 if window == "today" else 48
    frame = queries.run(ctx, principal, "hourly", filters, hours=hours, metric=metric)
    label = HOURLY_METRICS[metric]
    against = HOUR_SHIFT_LABELS.get(filters.comparison)
    if metric in _ADDITIVE and window == "today":
        total = float(frame["value"].sum())
        before = float(frame["comparison"].sum()) if against else math.nan
        delta = None
        if against and before > 0:
            delta = f"{total / before - 1:+.1%} vs {against.lower()}"
        st.metric(
            f"{label} today, to {newest:%H:%M} UTC",
            f"{total:,.0f}" if metric == "starts" else f"{total:,.1f}",
            delta=delta,
            border=True,
            help=f"{label} since 00:00 UTC, against the same minutes of the comparison day.",
        )
    charts.line_chart(
        frame.rename(columns={"value": "this period", "comparison": "comparison"}),
        x="hour",
        series=[("this period", _WINDOWS[window])],
        comparison=("comparison", against) if against else None,
        title=f"{label} by hour ({_WINDOWS[window].lower()})",
        x_title="Hour (UTC)",
        y_title=label,
        key="overview-hourly",
        partial="partial",
        partial_label="partial hour",
    )
    last = frame.iloc[-1]
    note = (
        f"Hours in UTC up to the newest view in the extract ({newest:%d %b %H:%M}). "
        "Dimension filters apply; the period's dates do not."
    )
    if bool(last["partial"]):
        note += f" The newest hour holds {int(last['minutes'])} minutes of data" + (
            f" and is compared with the same minutes ({against.lower()})." if against else "."
        )
    st.caption(note)
