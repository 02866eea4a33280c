"""Overview: the period's KPIs against the comparison period, trends, breakdowns, top titles."""

from __future__ import annotations

import streamlit as st

from components import auth, charts, queries
from components.dashboard import dashboard_page
from components.kpi import kpi_cards
from components.realtime import ranking_filters, today_so_far
from components.table_export import table_export_buttons
from data.queries.metrics import METRICS, OVERVIEW_KPIS, OVERVIEW_MONEY_KPIS, visible_metrics
from data.queries.money import RATE_MAX_AGE_DAYS, gap_notes, missing_by_currency
from models.underperformance import MINIMUM_VOLUME_RULE

ctx, principal, filters = dashboard_page("overview", "📊 Overview")

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
currency = queries.reporting_currency(ctx)
if sees_money:
    by_currency = queries.run(ctx, principal, "revenue_by_currency", filters)
    missing = missing_by_currency(by_currency)
    for text in gap_notes(missing):
        st.warning(text, icon="💱")
    if not by_currency.empty:
        with st.expander(f"Net revenue by currency, and in {currency}", expanded=bool(missing)):
            st.dataframe(
                by_currency,
                hide_index=True,
                column_config={
                    "currency": st.column_config.TextColumn("Currency"),
                    "amounts": st.column_config.NumberColumn("Amounts", format="%d"),
                    "net": st.column_config.NumberColumn("Net, in that currency", format="%.2f"),
                    "net_converted": st.column_config.NumberColumn(
                        f"Net in {currency}", format="%.2f"
                    ),
                    "missing": st.column_config.NumberColumn("Without a rate", format="%d"),
                    "missing_net": st.column_config.NumberColumn(
                        "Left out, in that currency", format="%.2f"
                    ),
                },
            )
            st.caption(
                f"Each amount is converted to {currency} at the rate of its day: the latest rate "
                f"on or up to {RATE_MAX_AGE_DAYS} days before it. Amounts without one are left "
                "out of every total, never converted 1:1."
            )
if principal.may("see_money") and not sees_money:
    auth.confirm_second_factor_here(
        ctx, principal, reason="Revenue is hidden until you confirm it is you in this tab."
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
unit = f" ({currency})" if metric.money and metric.unit != "%" else ""
unit = unit or (f" ({metric.unit})" if metric.unit else "")
charts.line_chart(
    trend.rename(columns={"value": "this period", "comparison": "comparison period"}),
    x="bucket",
    series=[("this period", "This period")],
    comparison=("comparison period", "Comparison period") if filters.comparison_period else None,
    title=f"{metric.label} by {grain}",
    x_title=f"{grain.capitalize()} (UTC)",
    y_title=f"{metric.label}{unit}",
    key="overview-trend",
    partial="partial",
    partial_label=f"partial {grain}",
)
cut = trend[trend["partial"]]
if not cut.empty:
    spans = ", ".join(
        f"{row.bucket:%d %b} ({row.days} day{'' if row.days == 1 else 's'})"
        for row in cut.itertuples()
    )
    st.caption(
        f"Dotted: the {grain}s the period cuts — {spans}. Their totals cover fewer days than a "
        f"whole {grain}, so a drop there is not a fall."
    )

today_so_far(ctx, principal, filters)

st.subheader("Breakdown")
# One breakdown at a time (not tabs): tabs would draw all three charts on every run.
dimension = (
    st.segmented_control(
        "Break down by",
        ["country", "device", "genre"],
        default="country",
        format_func=str.capitalize,
        key="overview-breakdown",
    )
    or "country"
)
frame = queries.run(
    ctx, principal, "breakdown", filters, dimension=dimension, metrics=("views", "watch_hours")
)
if frame.empty:
    st.info("Nothing to break down for these filters.")
else:
    charts.bar_chart(
        frame.head(15),
        category="label",
        value="views",
        title=f"Views by {dimension} (top 15)",
        value_title="Views (hours viewed ÷ runtime)",
        key=f"overview-by-{dimension}",
    )

st.subheader("Underperforming titles")
ranked = ranking_filters(ctx, filters)
with st.spinner("Comparing titles with their expected views…"):
    under = queries.run(ctx, principal, "underperforming_titles", ranked, k=10)
if under.empty:
    st.info("No title is clearly below its expected views in this period.", icon="✅")
else:
    # The free-text reason last and sized to its content: every figure stays in view at
    # desktop widths, and a long reason scrolls rather than squeezing the columns.
    under_shown = under[
        ["name", "shortfall_pct", "views", "expected", "genre", "age_band", "reason"]
    ]
    under_columns = {
        "name": st.column_config.TextColumn("Title"),
        "genre": st.column_config.TextColumn("Genre"),
        "age_band": st.column_config.TextColumn("Age since release"),
        "views": st.column_config.NumberColumn("Views", format="%.0f"),
        "expected": st.column_config.NumberColumn("Expected views", format="%.0f"),
        "shortfall_pct": st.column_config.NumberColumn("vs expected", format="percent"),
        "reason": st.column_config.TextColumn("Why"),
    }
    st.dataframe(under_shown, hide_index=True, column_config=under_columns)
    table_export_buttons(
        under_shown, under_columns, name="Underperforming titles", key="overview-underperforming"
    )
st.caption(
    "Expected views: a title out before this period is expected to move like titles of its "
    "genre and age since release did (their median change from the previous period of equal "
    "length); a title released in the period, to earn what new titles of its genre earn per "
    "day. Ranked by views short of the expectation. " + MINIMUM_VOLUME_RULE
)

st.subheader("Top titles")
window = (
    st.segmented_control(
        "Window", [28, 91], default=28, key="overview-top-window", format_func=lambda d: f"{d} days"
    )
    or 28
)
top = queries.run(ctx, principal, "top_titles", ranked, window_days=window, limit=10)
if top.empty:
    st.info("No titles were watched in this window.")
else:
    top_columns = {
        "rank": st.column_config.NumberColumn("#", format="%d"),
        "name": st.column_config.TextColumn("Title"),
        "kind": st.column_config.TextColumn("Kind"),
        "genre": st.column_config.TextColumn("Genre"),
        "views": st.column_config.NumberColumn("Views", format="%.0f"),
        "watch_hours": st.column_config.NumberColumn("Watch hours", format="%.0f"),
        "completion_rate": st.column_config.NumberColumn("Completion", format="percent"),
        "demand_multiplier": st.column_config.NumberColumn("Demand multiplier", format="%.2fx"),
    }
    top_shown = top[list(top_columns)]
    st.dataframe(top_shown, hide_index=True, column_config=top_columns)
    table_export_buttons(
        top_shown, top_columns, name=f"Top titles ({window} days)", key="overview-top-titles"
    )
    st.caption(
        f"Runtime-normalised views (hours viewed ÷ runtime) in the {window} days to "
        f"{ranked.end:%d %b %Y}, as in public streaming top-10 lists."
    )
