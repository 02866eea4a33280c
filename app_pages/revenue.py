"""Revenue: net revenue by stream and over time, gross -> fees -> net, MRR and its movement,
subscription economics by plan and channel, and ad delivery. Every figure in the reporting
currency, each amount at its own day's rate (data/queries/money.py)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from components import charts, queries
from components.dashboard import dashboard_page
from components.kpi import kpi_cards
from data.queries.metrics import METRICS
from data.queries.money import gap_notes, missing_by_currency
from data.queries.revenue import FILL_RATE_NOTE, STREAM_LABELS

REVENUE_KPIS = (
    "net_revenue",
    "net_revenue_subscription",
    "net_revenue_ppv",
    "net_revenue_ad",
    "mrr",
    "arpu",
    "gross_churn",
    "cpm",
    "ctr",
)

ctx, principal, filters = dashboard_page("revenue", "💵 Revenue")
currency = queries.reporting_currency(ctx)
money_column = lambda label: st.column_config.NumberColumn(  # noqa: E731
    f"{label} ({currency})", format="%.2f"
)

with st.spinner("Adding up the period's revenue…"):
    kpis = queries.run(ctx, principal, "kpis", filters, metrics=REVENUE_KPIS)
    daily = queries.run(ctx, principal, "trend", filters, grain="day", metrics=REVENUE_KPIS)
    by_currency = queries.run(ctx, principal, "revenue_by_currency", filters)

if not kpis["value"].fillna(0).any():
    st.info(
        "No revenue matches these filters in this period. Widen the period or remove a filter "
        "(revenue cannot be split by device).",
        icon="🔍",
    )
    st.stop()
for text in gap_notes(missing_by_currency(by_currency)):
    st.warning(text, icon="💱")
sparklines = {
    m: frame["value"].fillna(0).tolist() for m, frame in daily.groupby("metric", sort=False)
}
kpi_cards(kpis, sparklines)

# --- over time --------------------------------------------------------------------------------
st.subheader("Net revenue by stream")
grain = (
    st.segmented_control(
        "Granularity",
        ["day", "week", "month"],
        default="week" if filters.days > 31 else "day",
        key="revenue-grain",
        format_func=str.capitalize,
    )
    or "day"
)
over_time = queries.run(ctx, principal, "revenue_over_time", filters, grain=grain)
if over_time.empty:
    st.info("No revenue in this period.")
else:
    shown = over_time.assign(
        stream=over_time["stream"].map(STREAM_LABELS).fillna(over_time["stream"]),
        bucket=pd.to_datetime(over_time["bucket"]),
    )
    charts.stacked_bar_chart(
        shown[["bucket", "stream", "net", "comparison", "partial"]],
        x="bucket",
        stack="stream",
        value="net",
        title=f"Net revenue by {grain} and stream",
        x_title=f"{grain.capitalize()} (UTC)",
        y_title=f"Net revenue ({currency})",
        key="revenue-over-time",
        order=list(STREAM_LABELS.values()),
    )
    if shown["partial"].any():
        st.caption(
            f"The first or last {grain} is cut by the period: it holds fewer days than the others "
            "(marked partial in the data table)."
        )
    if filters.comparison_period:
        now_total, then_total = shown["net"].sum(), shown["comparison"].sum()
        change = f"{(now_total - then_total) / then_total:+.1%}" if then_total else "—"
        st.caption(
            f"This period {currency} {now_total:,.0f} against {currency} {then_total:,.0f} in the "
            f"comparison period ({change})."
        )

# --- gross -> fees -> net ------------------------------------------------------------------------
st.subheader("From gross to net")
flow = queries.run(ctx, principal, "revenue_flow", filters, by="stream")
if not flow.empty:
    totals = flow[["gross", "fees", "net", "comparison_net"]].sum()
    total_row = pd.DataFrame(
        [{"label": "All streams", **totals.to_dict(), "change_pct": float("nan")}]
    )
    table = pd.concat([flow, total_row], ignore_index=True)
    st.dataframe(
        table[["label", "gross", "fees", "net", "comparison_net", "change_pct"]],
        hide_index=True,
        column_config={
            "label": st.column_config.TextColumn("Stream"),
            "gross": money_column("Gross (after refunds)"),
            "fees": money_column("Fees"),
            "net": money_column("Net"),
            "comparison_net": money_column("Net, comparison period"),
            "change_pct": st.column_config.NumberColumn("Change", format="percent"),
        },
    )
    st.caption(
        "Gross is what viewers and advertisers paid, refunds (negative amounts) already "
        "deducted; fees are card, app-store and ad-tech fees; net = gross − fees."
    )

# --- breakdown ------------------------------------------------------------------------------------
st.subheader("Where it comes from")
by = (
    st.segmented_control(
        "Break down by",
        ["country", "plan", "genre", "creator", "title"],
        default="country",
        format_func=str.capitalize,
        key="revenue-breakdown",
    )
    or "country"
)
parts = queries.run(ctx, principal, "revenue_flow", filters, by=by)
if parts.empty:
    st.info("Nothing to break down for these filters.")
else:
    charts.bar_chart(
        parts.head(15)[["label", "net", "gross", "fees", "comparison_net", "change_pct"]],
        category="label",
        value="net",
        title=f"Net revenue by {by} (top 15)",
        value_title=f"Net revenue ({currency})",
        key=f"revenue-by-{by}",
    )
    if by in ("creator", "title"):
        st.caption(
            "Subscription charges belong to no title or creator: they are one line of their own."
        )

# --- subscriptions --------------------------------------------------------------------------------
st.subheader("MRR and its movement")
movement = queries.run(ctx, principal, "mrr_movement", filters)
if movement.empty:
    st.info("No subscription months in this period.")
else:
    parts_long = movement.melt(
        id_vars=["month"],
        value_vars=["new", "expansion", "contraction", "churned", "fx"],
        var_name="movement",
        value_name="amount",
    )
    signs = {"contraction": -1, "churned": -1}
    parts_long["amount"] = parts_long["amount"] * parts_long["movement"].map(signs).fillna(1)
    labels = {
        "new": "New",
        "expansion": "Expansion",
        "contraction": "Contraction",
        "churned": "Churned",
        "fx": "Exchange rates",
    }
    parts_long["movement"] = parts_long["movement"].map(labels)
    parts_long["month"] = pd.to_datetime(parts_long["month"])
    charts.stacked_bar_chart(
        parts_long,
        x="month",
        stack="movement",
        value="amount",
        title="MRR movement by month",
        x_title="Month",
        y_title=f"Change in MRR ({currency})",
        key="revenue-mrr-movement",
        order=list(labels.values()),
    )
    st.dataframe(
        movement[
            ["month", "opening", "new", "expansion", "contraction", "churned", "fx", "closing"]
        ],
        hide_index=True,
        column_config={
            "month": st.column_config.DateColumn("Month", format="MMM YYYY"),
            **{
                c: money_column(c.capitalize() if c != "fx" else "Exchange rates")
                for c in ("opening", "new", "expansion", "contraction", "churned", "fx", "closing")
            },
        },
    )
    st.caption(
        "Opening + new + expansion − contraction − churned + exchange-rate movement = closing. "
        "MRR is the monthly price of the subscriptions active at the end of a day, valued at "
        "that day's rate; a month cut by the period is measured over the part inside it."
    )
    left_out = int(movement["missing"].sum())
    if left_out:
        st.warning(
            f"{left_out:,} subscription valuations have no exchange rate on their day and are left "
            "out of these months.",
            icon="💱",
        )

st.subheader("Subscription economics")
plan_by = (
    st.segmented_control(
        "By",
        ["plan", "acquisition_channel"],
        default="plan",
        format_func=lambda b: "Plan" if b == "plan" else "Acquisition channel",
        key="revenue-plan-by",
    )
    or "plan"
)
economics = queries.run(ctx, principal, "plan_economics", filters, by=plan_by)
if economics.empty:
    st.info("No subscribers for these filters.")
else:
    st.dataframe(
        economics[
            [
                "label",
                "subscribers",
                "mrr",
                "arpu",
                "gross_churn",
                "net_churn",
                "monthly_churn",
                "ltv",
            ]
        ],
        hide_index=True,
        column_config={
            "label": st.column_config.TextColumn("Plan" if plan_by == "plan" else "Channel"),
            "subscribers": st.column_config.NumberColumn("Subscribers at the end", format="%d"),
            "mrr": money_column("MRR"),
            "arpu": money_column("ARPU"),
            "gross_churn": st.column_config.NumberColumn("Gross churn", format="percent"),
            "net_churn": st.column_config.NumberColumn("Net churn", format="percent"),
            "monthly_churn": st.column_config.NumberColumn(
                "Monthly churn",
                format="percent",
                help="Gross churn over a 30-day month: 1 − (1 − churn)^(30 ÷ days in the period).",
            ),
            "ltv": st.column_config.NumberColumn(
                f"LTV ({currency})",
                format="%.2f",
                help="ARPU ÷ monthly gross churn: what a subscriber brings over their expected "
                "lifetime. Blank when nobody churned.",
            ),
        },
    )

# --- ads -------------------------------------------------------------------------------------------
st.subheader("Advertising")
ad_by = (
    st.segmented_control(
        "By",
        ["title", "campaign"],
        default="campaign",
        format_func=str.capitalize,
        key="revenue-ad-by",
    )
    or "campaign"
)
ads = queries.run(ctx, principal, "ad_performance", filters, by=ad_by)
if ads.empty:
    st.info("No ad deliveries for these filters.")
else:
    st.dataframe(
        ads[["label", "impressions", "clicks", "ad_revenue", "cpm", "ctr", "change_pct"]].head(200),
        hide_index=True,
        column_config={
            "label": st.column_config.TextColumn(ad_by.capitalize()),
            "impressions": st.column_config.NumberColumn("Impressions", format="%d"),
            "clicks": st.column_config.NumberColumn("Clicks", format="%d"),
            "ad_revenue": money_column("Ad revenue"),
            "cpm": money_column("CPM"),
            "ctr": st.column_config.NumberColumn("CTR", format="percent"),
            "change_pct": st.column_config.NumberColumn("Revenue change", format="percent"),
        },
    )
st.caption(FILL_RATE_NOTE)

with st.expander("📖 What every figure means"):
    for metric_id in REVENUE_KPIS:
        metric = METRICS[metric_id]
        st.markdown(f"**{metric.label}** — {metric.definition}")
    st.markdown(
        "**MRR movement** — per viewer, MRR at this month's end against last month's: new "
        "(none before), expansion and contraction (more or less), churned (none now); "
        "exchange-rate movement is the change in value of unchanged subscriptions.\n\n"
        "**Gross churn** (in the table) — subscriptions cancelled in the period ÷ (active at "
        "its start + started in it).\n\n"
        "**Net churn** — (cancelled − cancellations won back: the same viewer subscribing "
        "again later in the period) ÷ the same denominator.\n\n"
        "**LTV** — ARPU ÷ monthly gross churn; blank when nobody churned."
    )
