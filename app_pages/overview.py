"""Overview: the period's KPIs against the comparison period, trends, breakdowns, top titles."""

from __future__ import annotations

import streamlit as st

from components import charts, queries
from components.filter_bar import filter_bar
from components.guard import require_page
from components.kpi import kpi_cards
from data.metrics import METRICS, OVERVIEW_KPIS, OVERVIEW_MONEY_KPIS, visible_metrics

ctx, principal = require_page("overview", "📊 Overview")

st.title("📊 Overview")
bounds = queries.data_bounds(ctx)
if bounds is None:
    st.info("The extract has no view sessions yet. Run a sync, or build the demo data.", icon="📭")
    st.stop()
first_day, last_day = bounds
options = queries.run(ctx, principal, "dimension_options")
filters = filter_bar(last_day, first_day, options)

sees_money = principal.can("see_money")
kpi_ids = OVERVIEW_KPIS + (OVERVIEW_MONEY_KPIS if sees_money else ())
with st.spinner("Computing the period's numbers…"):
    kpis = queries.run(ctx, principal, "kpis", filters, metrics=kpi_ids)
    daily = queries.run(ctx, principal, "trend", filters, grain="day", metrics=kpi_ids)

if not kpis["value"].fillna(0).any():
    st.info(
        "No views match these filters in this period. Widen the period or remove a filter.",
        icon="🔍",
    )
    st.stop()

sparklines = {
    m: frame["value"].fillna(0).tolist() for m, frame in daily.groupby("metric", sort=False)
}
kpi_cards(kpis, sparklines)
if principal.may("see_money") and not sees_money:
    st.caption(
        "🔐 Revenue is hidden until you confirm 2FA in this tab (open a money page to do so)."
    )

st.subheader("Trend")
choices = [m for m in visible_metrics(sees_money) if m in kpi_ids]
left, right = st.columns([3, 2])
metric_id = left.selectbox(
    "Metric", choices, format_func=lambda m: METRICS[m].label, key="overview-trend-metric"
)
grain = (
    right.segmented_control(
        "Granularity",
        ["day", "week", "month"],
        default="day",
        key="overview-grain",
        format_func=str.capitalize,
    )
    or "day"
)
trend = queries.run(ctx, principal, "trend", filters, grain=grain, metrics=(metric_id,))
metric = METRICS[metric_id]
unit = f" ({metric.unit})" if metric.unit else ""
charts.line_chart(
    trend.rename(columns={"value": "this period", "comparison": "comparison period"}),
    x="bucket",
    series=[("this period", "This period")],
    comparison=("comparison period", "Comparison period") if filters.comparison_period else None,
    title=f"{metric.label} by {grain}",
    x_title=f"{grain.capitalize()} (UTC)",
    y_title=f"{metric.label}{unit}",
    key="overview-trend",
)

st.subheader("Breakdown")
tabs = st.tabs(["By country", "By device", "By genre"])
for tab, dimension in zip(tabs, ("country", "device", "genre"), strict=True):
    with tab:
        frame = queries.run(
            ctx,
            principal,
            "breakdown",
            filters,
            dimension=dimension,
            metrics=("views", "watch_hours"),
        )
        if frame.empty:
            st.info("Nothing to break down for these filters.")
            continue
        charts.bar_chart(
            frame.head(15),
            category="label",
            value="views",
            title=f"Views by {dimension} (top 15)",
            value_title="Views (hours viewed ÷ runtime)",
            key=f"overview-by-{dimension}",
        )

st.subheader("Top titles")
window = (
    st.segmented_control(
        "Window", [28, 91], default=28, key="overview-top-window", format_func=lambda d: f"{d} days"
    )
    or 28
)
top = queries.run(ctx, principal, "top_titles", filters, window_days=window, limit=10)
if top.empty:
    st.info("No titles were watched in this window.")
else:
    st.dataframe(top, hide_index=True)
