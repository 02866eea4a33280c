"""The Earnings page's creator view: earnings by month, title, stream and country, RPM, the
payout timeline and the monthly statement, for one creator or the sum of a studio's.

Whose rows: the principal's scope (components/queries.py) narrowed in data/ to the creators
chosen here. A creator's choices are only their own ids; a changed URL (``?creator=``) or
session value naming someone else's id narrows the scope to nothing, so the page says there is
nothing to show — never another creator's numbers.
"""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

import pandas as pd
import streamlit as st

from components import charts, payout_ledger, queries
from components.context import AppContext
from components.export import export_buttons
from components.text import md_escape, money_text
from data.queries.earnings import STREAM_LABELS, Earnings, month_range, statement
from data.queries.money import minor_unit
from security.input import MAX_CREATOR_ID, InputError, parse_whole_number
from security.permissions import Principal

ALL_MINE = "all"
_URL_KEY = "creator"


def _requested_creator() -> int | None:
    raw = st.query_params.get(_URL_KEY)
    if raw is None or raw == ALL_MINE:
        return None
    try:
        return parse_whole_number(raw, what="The creator in the link", maximum=MAX_CREATOR_ID)
    except InputError as exc:
        st.warning(f"{exc} Showing your default creator instead.", icon="⚠️")
        return None


def _choose_creators(
    ctx: AppContext, principal: Principal, directory: pd.DataFrame
) -> tuple[tuple[int, ...], str]:
    """The creator ids to show and a label for them."""
    names = dict(zip(directory["creator_id"].astype(int), directory["name"], strict=True))
    requested = _requested_creator()
    if requested is not None and requested not in names:
        # Someone else's id (or one that does not exist): narrowed to nothing in data/.
        return (requested,), f"creator {requested}"
    options: list[int | str] = list(names)
    if principal.is_external and len(names) > 1:
        options = [ALL_MINE, *options]
    default = options.index(requested) if requested in options else 0
    if st.session_state.get("earnings-creator", options[0]) not in options:
        # A value put there by hand (another creator's id): back to the default.
        del st.session_state["earnings-creator"]
    chosen = st.selectbox(
        "Creator",
        options,
        index=default,
        format_func=lambda c: (
            f"All my creators ({len(names)})"
            if c == ALL_MINE
            else f"{names.get(int(c), 'Creator')} (#{c})"
        ),
        key="earnings-creator",
        help="Type to search." if not principal.is_external else None,
    )
    if chosen == ALL_MINE:
        if _URL_KEY in st.query_params:
            del st.query_params[_URL_KEY]
        return tuple(names), "all your creators"
    st.query_params[_URL_KEY] = str(chosen)
    return (int(chosen),), names[int(chosen)]


def _choose_months(first_day: date, last_day: date) -> tuple[date, date]:
    months = month_range(first_day, last_day)
    start = months[max(0, len(months) - 12)]
    if len(months) == 1:
        return months[0], months[0]
    return st.select_slider(
        "Months",
        options=months,
        value=(start, months[-1]),
        format_func=lambda m: m.strftime("%b %Y"),
        key="earnings-months",
    )


def _floats(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """A copy with Decimal columns as floats, for charts and on-screen tables only."""
    out = frame.copy()
    for column in columns:
        out[column] = out[column].map(lambda v: float(v) if v is not None else float("nan"))
    return out


def creator_section(ctx: AppContext, principal: Principal, bounds: tuple[date, date]) -> None:
    first_day, last_day = bounds
    currency = queries.reporting_currency(ctx)
    directory = queries.run(ctx, principal, "creator_directory")
    if directory.empty:
        if principal.is_external:
            st.info(
                "Your account is not linked to any creator's titles yet, so there are no "
                "earnings to show. Ask the platform's finance team to link your creator id.",
                icon="🔗",
            )
        else:
            st.info("The extract has no creators yet.", icon="📭")
        return
    creators, who = _choose_creators(ctx, principal, directory)
    first_month, last_month = _choose_months(first_day, last_day)
    with st.spinner("Adding up earnings…"):
        found: Earnings = queries.run(
            ctx,
            principal,
            "earnings",
            first_month=first_month,
            last_month=last_month,
            creators=creators,
        )
        paid = queries.run(
            ctx,
            principal,
            "payouts",
            first_month=first_month,
            last_month=last_month,
            creators=creators,
        )
    if found.rows.empty and paid.empty:
        st.info(
            f"Nothing to show for {md_escape(who)} in these months: no earnings and no payouts. "
            "Choose other months, or another creator.",
            icon="🔍",
        )
        return
    if found.left_out:
        st.warning(
            f"{sum(found.left_out.values()):,} of these revenue amounts have no exchange rate on "
            "their day and are not included.",
            icon="💱",
        )
    if found.pool_gaps:
        months = ", ".join(f"{m:%b %Y}" for m in sorted(found.pool_gaps))
        st.warning(
            f"Part of the platform's subscription revenue in {months} has no exchange rate on its "
            "day, so subscription earnings there are understated until the rates arrive.",
            icon="💱",
        )
    lines = payout_ledger.effective_lines(ctx, paid)
    _headline(found, lines, currency, last_day)
    _by_month(found, currency)
    _by_title_and_country(found, currency)
    st.subheader("Payouts")
    payout_ledger.timeline(principal, lines)
    _statement(ctx, principal, found, who, currency, lines, last_day)
    with st.expander("How earnings are worked out"):
        st.markdown(
            "Earnings are your revenue share of the net revenue (gross minus payment and ad-tech "
            "fees) of your titles. Pay-per-view and ad revenue belong to the title they were "
            "earned on; each month's subscription revenue is shared between titles by their "
            "share of the month's watch time. Amounts are converted to "
            f"{currency} at the rate of the day they occurred. RPM is earnings per 1,000 views "
            "(hours viewed ÷ runtime). A month's earnings are an estimate until its payout is "
            "finalised; the payout is the amount the platform pays, in your payout currency."
        )


def _partial(month: date, last_day: date) -> bool:
    """The month is the data's last, and the data stops before its end."""
    return (month.year, month.month) == (last_day.year, last_day.month) and (
        last_day.day < calendar.monthrange(last_day.year, last_day.month)[1]
    )


def _money_format(currency: str) -> str:
    return "%.0f" if minor_unit(currency) == 1 else "%.2f"


def _headline(found: Earnings, lines: list, currency: str, last_day: date) -> None:
    monthly = found.by("month").set_index("month")["earnings"] if len(found.rows) else None
    columns = st.columns(4)
    columns[0].metric(
        "Earnings in these months",
        money_text(found.total, currency),
        help="Your share of your titles' net revenue, all streams.",
        border=True,
    )
    if monthly is not None and len(monthly):
        latest = max(monthly.index)
        previous = [m for m in monthly.index if m < latest]
        partial = _partial(latest, last_day)
        delta = None
        if previous and not partial:
            before = monthly[max(previous)]
            if before:
                delta = f"{float((monthly[latest] - before) / before):+.1%} vs the month before"
        columns[1].metric(
            f"Earnings in {latest:%B %Y}" + (f" (to {last_day:%-d %b}, so far)" if partial else ""),
            money_text(monthly[latest], currency),
            delta=delta,
            border=True,
        )
    rpm = found.rpm()
    value = rpm["rpm"].iloc[0] if len(rpm) else float("nan")
    places = 0 if minor_unit(currency) == 1 else 2
    columns[2].metric(
        "RPM",
        "—" if pd.isna(value) else f"{currency} {value:,.{places}f}",
        help="Earnings per 1,000 views (hours viewed ÷ runtime).",
        border=True,
    )
    # The next payout as the timeline shows it: decisions included, paid and held lines skipped.
    coming = sorted((e for e in lines if e.status not in ("paid", "held")), key=lambda e: e.period)
    if coming:
        nxt = coming[0]
        columns[3].metric(
            f"Next payout ({nxt.period:%b %Y})",
            money_text(nxt.amount_due, nxt.currency),
            help=f"Status: {payout_ledger.STATUS_LABELS.get(nxt.status, nxt.status)}.",
            border=True,
        )
    else:
        columns[3].metric(
            "Next payout", "—", help="No payout waiting in these months.", border=True
        )


def _by_month(found: Earnings, currency: str) -> None:
    st.subheader("Earnings by month")
    if found.lines.empty:
        st.info("No earnings in these months.")
        return
    frame = _floats(found.by("month", "stream"), ["gross", "fees", "net", "earnings"])
    frame["stream"] = frame["stream"].map(STREAM_LABELS).fillna(frame["stream"])
    frame = frame.sort_values("month")
    charts.stacked_bar_chart(
        frame[["month", "stream", "earnings", "net", "gross", "fees"]],
        x="month",
        stack="stream",
        value="earnings",
        title="Earnings by month and stream",
        x_title="Month",
        y_title=f"Earnings ({currency})",
        key="earnings-by-month",
        order=list(STREAM_LABELS.values()),
    )


def _by_title_and_country(found: Earnings, currency: str) -> None:
    if found.lines.empty:
        return
    left, right = st.columns(2)
    with left:
        st.subheader("By title")
        titles = found.by("title_id", "title")
        rpm = found.rpm("title_id")[["title_id", "views", "rpm"]]
        titles = titles.merge(rpm, on="title_id", how="left")
        shown = _floats(titles, ["earnings", "net"])
        st.dataframe(
            shown[["title", "earnings", "net", "views", "rpm"]],
            hide_index=True,
            column_config={
                "title": st.column_config.TextColumn("Title"),
                "earnings": st.column_config.NumberColumn(f"Earnings ({currency})", format="%.2f"),
                "net": st.column_config.NumberColumn(f"Net revenue ({currency})", format="%.2f"),
                "views": st.column_config.NumberColumn("Views", format="%.0f"),
                "rpm": st.column_config.NumberColumn("RPM", format="%.2f"),
            },
        )
    with right:
        st.subheader("By country")
        countries = found.by("country")
        countries["country"] = countries["country"].map(
            lambda c: "Ads (not by country)" if c is None or pd.isna(c) else c
        )
        charts.bar_chart(
            _floats(countries, ["earnings", "net", "gross", "fees"]).head(15),
            category="country",
            value="earnings",
            title="Earnings by country (top 15)",
            value_title=f"Earnings ({currency})",
            key="earnings-by-country",
        )
        st.caption(
            "Subscription earnings by the country the views were played in; pay-per-view by "
            "the buyer's country; ads are not split by country."
        )


def _statement(
    ctx: AppContext,
    principal: Principal,
    found: Earnings,
    who: str,
    currency: str,
    lines: list,
    last_day: date,
) -> None:
    st.subheader("Monthly statement")
    months = sorted(set(found.rows["month"]), reverse=True) if len(found.rows) else []
    if not months:
        st.info("No month in this range has earnings to put on a statement.")
        return
    # Open on the last whole month: the current one is still moving.
    default = next((i for i, m in enumerate(months) if not _partial(m, last_day)), 0)
    month = st.selectbox(
        "Statement for",
        months,
        index=default,
        format_func=lambda m: (
            m.strftime("%B %Y")
            + (f" (to {last_day:%-d %b}, so far)" if _partial(m, last_day) else "")
        ),
        key="statement-month",
    )
    statuses = {e.status for e in lines if e.period == month}
    status = (
        "estimated (month not over)"
        if _partial(month, last_day)
        else (statuses.pop() if len(statuses) == 1 else ("mixed" if statuses else "no payout yet"))
    )
    table = statement(found, month, status)
    total = table["Earnings"].iloc[-1] if len(table) else Decimal(0)
    st.metric(
        f"Statement total, {month:%B %Y}",
        money_text(total, currency),
        help="The sum of the statement's lines; the same lines as the charts above.",
    )
    fmt = _money_format(currency)
    st.dataframe(
        _floats(table, ["Gross", "Fees", "Net", "Earnings"]).assign(
            **{
                "Revenue share": table["Revenue share"].map(
                    lambda v: None if v is None else float(v)
                )
            }
        ),
        hide_index=True,
        column_config={
            "Gross": st.column_config.NumberColumn(f"Gross ({currency})", format=fmt),
            "Fees": st.column_config.NumberColumn(f"Fees ({currency})", format=fmt),
            "Net": st.column_config.NumberColumn(f"Net ({currency})", format=fmt),
            "Revenue share": st.column_config.NumberColumn("Revenue share", format="percent"),
            "Earnings": st.column_config.NumberColumn(f"Earnings ({currency})", format=fmt),
        },
    )
    safe_who = "".join(ch if ch.isalnum() else "-" for ch in who).strip("-")[:40] or "creator"
    export_buttons(
        ctx.security,
        principal,
        table,
        name=f"Statement {month:%Y-%m} {who}",
        key=f"statement-{month:%Y-%m}-{safe_who}",
    )
