"""Creator earnings and payouts, in exact decimals, for the creators a scope holds.

The definition (METRICS.md): a creator earns ``revenue_share`` of the net revenue of their
titles. Pay-per-view and ad revenue carry their title; subscription revenue does not, so each
month's subscription revenue (the platform's pool) is attributed to titles by their share of
the month's watch time. One line is one (month, title, stream[, country]); every figure the
Earnings page, its charts and the monthly statement show is a sum of these lines, so they agree
to the cent.

Money is ``decimal.Decimal`` from the extract to the file: DuckDB sums the DECIMAL amounts times
a conversion factor rounded to ten decimals (exact decimal arithmetic), and the attribution and
the revenue share are applied in Python's ``decimal``. Lines stay exact; each statement row
(month, creator, title, stream) is rounded once, to the reporting currency's minor unit (half
up): gross and net rounded, ``fees = gross - net``, ``earnings = net x revenue_share`` rounded. Amounts without an exchange rate on their day are
left out and counted (data/queries/money.py), never converted 1:1.

Row-level security: every function takes the caller's :class:`Scope` and narrows it with the
creators asked for (``Scope.narrow``), so a creator asking for another creator's id gets nothing;
the subscription pool is read whole (it belongs to no creator) but only in-scope titles' lines
are returned.

Payouts are the warehouse's rows (``fact_payout``) as synced; decisions taken in the app (approve,
hold, release, adjust) live in the app database (security/payout_ledger.py) and are overlaid by
the page, never written here.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd

from data.queries.filters import Scope
from data.queries.money import check_currency, minor_unit, round_money
from data.queries.revenue import STREAM_LABELS
from data.schema import BASE_CURRENCY

__all__ = [
    "DIRECT_STREAMS",
    "LINE_COLUMNS",
    "Earnings",
    "creator_directory",
    "earnings",
    "expected_pay_date",
    "minor_unit",
    "month_range",
    "payouts",
    "round_money",
    "statement",
]

# Streams paid per title (the row carries its title); subscription revenue is attributed.
DIRECT_STREAMS = ("ppv", "ad")
# A conversion factor is rounded to this many decimals before it multiplies an exact amount.
FACTOR_SCALE = 10

LINE_COLUMNS = [
    "month",
    "creator_id",
    "creator",
    "title_id",
    "title",
    "stream",
    "country",
    "gross",
    "fees",
    "net",
    "revenue_share",
    "earnings",
]


def month_range(first: date, last: date) -> list[date]:
    """First days of the months from ``first``'s to ``last``'s, inclusive."""
    out, m = [], date(first.year, first.month, 1)
    while m <= last:
        out.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return out


def _month_end(month: date) -> date:
    return date(month.year, month.month, calendar.monthrange(month.year, month.month)[1])


ROW_KEYS = ("month", "creator_id", "creator", "title_id", "title", "stream")


@dataclass(frozen=True)
class Earnings:
    """A scope's earnings over some months, and what is needed to read them.

    ``lines``: one row per (month, title, stream, country) with exact, unrounded Decimal
    ``gross``, ``fees``, ``net``, ``revenue_share`` and ``earnings`` (LINE_COLUMNS; ``country`` is
    None for ad revenue, which has no viewer, and for every line when countries were not asked
    for). ``rows``: the statement's rows, one per (month, creator, title, stream), each rounded
    once to the currency's minor unit: gross and net rounded, ``fees = gross - net``,
    ``earnings = net x revenue_share`` rounded. Every total (cards, charts, statements, the
    finance estimate) is a sum of ``rows``. ``views``: runtime-normalised views per (month,
    title_id), for RPM. ``left_out``: per month, the scope's own revenue amounts left out for
    want of an exchange rate; ``pool_gaps``: months whose platform subscription pool had amounts
    without a rate (subscription earnings there are understated; how many is the platform's
    business, not the creator's).
    """

    currency: str
    months: tuple[date, ...]
    lines: pd.DataFrame
    views: pd.DataFrame
    left_out: dict[date, int] = field(default_factory=dict)
    pool_gaps: frozenset[date] = frozenset()
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ROW_COLUMNS))

    @property
    def total(self) -> Decimal:
        return sum(self.rows["earnings"], Decimal(0)) if len(self.rows) else Decimal(0)

    def by(self, *columns: str) -> pd.DataFrame:
        """Earnings summed by ``columns``, largest first. By statement columns (month, creator,
        title, stream) the sums of the rounded rows, exact; by ``country`` the exact lines summed
        and each group rounded once (they add up to the total to within rounding)."""
        money = ["gross", "fees", "net", "earnings"]
        keys = list(columns)
        if set(keys) <= set(ROW_KEYS):
            source = self.rows
            rounded = False
        else:
            source = self.lines
            rounded = True
        if source.empty:
            return pd.DataFrame(columns=[*keys, *money])
        grouped = (
            source.groupby(keys, dropna=False, sort=False)[money]
            .agg(lambda s: sum(s, Decimal(0)))
            .reset_index()
        )
        if rounded:
            for column in money:
                grouped[column] = grouped[column].map(lambda v: round_money(v, self.currency))
        return grouped.sort_values("earnings", ascending=False, kind="stable").reset_index(
            drop=True
        )

    def rpm(self, *columns: str) -> pd.DataFrame:
        """Earnings per 1,000 views by ``columns`` (any of month, title_id): ``views``,
        ``earnings`` and ``rpm`` (float, for charts; NaN without views)."""
        keys = list(columns) or ["_all"]
        rows = self.rows.assign(_all=0)
        views = self.views.assign(_all=0)
        money = rows.groupby(keys)["earnings"].agg(lambda s: sum(s, Decimal(0)))
        seen = views.groupby(keys)["views"].sum()
        out = pd.concat([money, seen], axis=1).reset_index()
        out["earnings"] = out["earnings"].map(lambda v: v if isinstance(v, Decimal) else Decimal(0))
        out["views"] = out["views"].fillna(0.0)
        out["rpm"] = [
            float(e) / v * 1000 if v > 0 else float("nan")
            for e, v in zip(out["earnings"], out["views"], strict=True)
        ]
        return out.drop(columns=["_all"], errors="ignore")


ROW_COLUMNS = [*ROW_KEYS, "gross", "fees", "net", "revenue_share", "earnings"]


def _statement_rows(lines: pd.DataFrame, currency: str) -> pd.DataFrame:
    """The exact lines summed per (month, creator, title, stream) and rounded once."""
    if lines.empty:
        return pd.DataFrame(columns=ROW_COLUMNS)
    grouped = (
        lines.groupby([*ROW_KEYS, "revenue_share"], sort=False)[["gross", "net"]]
        .agg(lambda s: sum(s, Decimal(0)))
        .reset_index()
    )
    # Net (what the share applies to) and gross are rounded; fees are their difference, so the
    # statement reads gross - fees = net and earnings are within a minor unit of exact.
    grouped["gross"] = grouped["gross"].map(lambda v: round_money(v, currency))
    grouped["net"] = grouped["net"].map(lambda v: round_money(v, currency))
    grouped["fees"] = grouped["gross"] - grouped["net"]
    grouped["earnings"] = [
        round_money(n * r, currency)
        for n, r in zip(grouped["net"], grouped["revenue_share"], strict=True)
    ]
    return (
        grouped[ROW_COLUMNS]
        .sort_values(["month", "creator", "title", "stream"], kind="stable")
        .reset_index(drop=True)
    )


def _factor_sql(currency: str) -> tuple[str, list[Any]]:
    """dv_revenue rows of a day range with ``factor``: one unit of the row's currency in
    ``currency`` that day, rounded to FACTOR_SCALE decimals (NULL without a rate)."""
    currency = check_currency(currency)
    exact = f"DECIMAL(20, {FACTOR_SCALE})"
    if currency == BASE_CURRENCY:
        return (
            f"(SELECT r.*, CAST(r.rate_usd AS {exact}) AS factor FROM dv_revenue r "
            "WHERE r.day BETWEEN ? AND ?)",
            [],
        )
    return (
        f"(SELECT r.*, CASE WHEN r.currency = ? THEN CAST(1 AS {exact}) "
        f"ELSE CAST(r.rate_usd / x.rate_to_usd AS {exact}) END AS factor FROM dv_revenue r "
        "LEFT JOIN dv_rate_day x ON x.day = r.day AND x.currency = ? "
        "WHERE r.day BETWEEN ? AND ?)",
        [currency, currency],
    )


def creator_directory(cursor: duckdb.DuckDBPyConnection, scope: Scope) -> pd.DataFrame:
    """The creators in scope: ``creator_id``, ``name``, ``kind``, ``revenue_share`` (Decimal),
    ``country``, ``titles`` (how many titles they have), by name."""
    where, params = scope.where("c.creator_id")
    rows = cursor.execute(
        "SELECT c.creator_id, c.name, c.kind, c.revenue_share, c.country, "
        "(SELECT count(*) FROM dim_title t WHERE t.creator_id = c.creator_id) AS titles "
        f"FROM dim_creator c WHERE {where} ORDER BY lower(c.name), c.creator_id",
        params,
    ).fetchall()
    return pd.DataFrame(
        rows, columns=["creator_id", "name", "kind", "revenue_share", "country", "titles"]
    )


def earnings(
    cursor: duckdb.DuckDBPyConnection,
    scope: Scope,
    *,
    first_month: date,
    last_month: date,
    currency: str = BASE_CURRENCY,
    creators: Iterable[int] | None = None,
    by_country: bool = True,
) -> Earnings:
    """Earnings lines of the scope's creators (narrowed to ``creators`` when given) for the
    months ``first_month`` .. ``last_month`` in ``currency``.

    ``by_country`` splits lines by country: pay-per-view by the buyer's country, subscription
    shares by the country the views were played in, ads not at all (None). Without it lines are
    per (month, title, stream) — the same totals up to rounding, far fewer rows (the finance
    view of every creator).
    """
    currency = check_currency(currency)
    scope = scope.narrow(creators)
    months = tuple(month_range(first_month, last_month))
    empty = Earnings(currency, months, pd.DataFrame(columns=LINE_COLUMNS), _no_views())
    if not months or scope.creator_ids == ():
        return empty
    start, end = months[0], _month_end(months[-1])
    source, source_params = _factor_sql(currency)
    day_params = [*source_params, start, end]
    scope_sql, scope_params = scope.where("r.creator_id")
    country = "r.country" if by_country else "CAST(NULL AS VARCHAR)"

    direct = cursor.execute(
        f"SELECT CAST(date_trunc('month', r.day) AS DATE) AS month, r.creator_id, r.title_id, "
        f"r.stream, {country} AS country, sum(r.gross * r.factor), sum(r.fees * r.factor), "
        "count(*) FILTER (WHERE r.factor IS NULL) "
        f"FROM {source} AS r WHERE r.stream IN ('ppv', 'ad') AND r.title_id IS NOT NULL "
        f"AND {scope_sql} GROUP BY ALL",
        [*day_params, *scope_params],
    ).fetchall()
    pool = {
        m: (g or Decimal(0), f or Decimal(0), int(n))
        for m, g, f, n in cursor.execute(
            "SELECT CAST(date_trunc('month', r.day) AS DATE), sum(r.gross * r.factor), "
            "sum(r.fees * r.factor), count(*) FILTER (WHERE r.factor IS NULL) "
            f"FROM {source} AS r WHERE r.stream = 'subscription' GROUP BY 1",
            day_params,
        ).fetchall()
    }
    month_watch = dict(
        cursor.execute(
            "SELECT CAST(date_trunc('month', day) AS DATE), sum(watch_seconds) FROM dv_title_day "
            "WHERE day BETWEEN ? AND ? GROUP BY 1",
            [start, end],
        ).fetchall()
    )
    title_scope_sql, title_scope_params = scope.where("t.creator_id")
    if by_country:
        view_scope_sql, view_scope_params = scope.where("v.creator_id")
        watch = cursor.execute(
            "SELECT CAST(date_trunc('month', v.day) AS DATE), v.creator_id, v.title_id, "
            "v.country, sum(v.watch_seconds) FROM dv_view v WHERE v.day BETWEEN ? AND ? "
            f"AND {view_scope_sql} GROUP BY ALL",
            [start, end, *view_scope_params],
        ).fetchall()
    else:
        watch = cursor.execute(
            "SELECT CAST(date_trunc('month', d.day) AS DATE), t.creator_id, d.title_id, "
            "CAST(NULL AS VARCHAR), sum(d.watch_seconds) FROM dv_title_day d JOIN dim_title t "
            f"ON t.title_id = d.title_id WHERE d.day BETWEEN ? AND ? AND {title_scope_sql} "
            "GROUP BY ALL",
            [start, end, *title_scope_params],
        ).fetchall()
    views = cursor.execute(
        "SELECT CAST(date_trunc('month', d.day) AS DATE) AS month, d.title_id, "
        "sum(d.views) AS views FROM dv_title_day d JOIN dim_title t ON t.title_id = d.title_id "
        f"WHERE d.day BETWEEN ? AND ? AND {title_scope_sql} GROUP BY ALL",
        [start, end, *title_scope_params],
    ).df()
    directory = creator_directory(cursor, scope)
    shares = dict(zip(directory["creator_id"], directory["revenue_share"], strict=True))
    names = dict(zip(directory["creator_id"], directory["name"], strict=True))
    titles = _title_names(cursor, scope)

    lines: list[tuple] = []
    left_out: dict[date, int] = {}
    for month, creator_id, title_id, stream, where, gross, fees, missing in direct:
        if missing:
            left_out[month] = left_out.get(month, 0) + int(missing)
        lines.append((month, creator_id, title_id, stream, where, gross, fees))
    for month, creator_id, title_id, where, seconds in watch:
        total = month_watch.get(month) or 0
        gross, fees, _missing = pool.get(month, (Decimal(0), Decimal(0), 0))
        if not total or not seconds or (not gross and not fees):
            continue
        ratio = Decimal(int(seconds)) / Decimal(int(total))
        lines.append(
            (month, creator_id, title_id, "subscription", where, gross * ratio, fees * ratio)
        )
    pool_gaps = {month for month, (_g, _f, missing) in pool.items() if missing}

    records = []
    for month, creator_id, title_id, stream, where, gross, fees in lines:
        if creator_id not in shares:
            continue  # a row whose creator is not in the directory is in nobody's scope
        gross = gross or Decimal(0)
        fees = fees or Decimal(0)
        share = shares[creator_id]
        records.append(
            (
                month,
                int(creator_id),
                names[creator_id],
                int(title_id),
                titles.get(int(title_id), f"Title {title_id}"),
                stream,
                where,
                gross,
                fees,
                gross - fees,
                share,
                (gross - fees) * share,
            )
        )
    frame = pd.DataFrame(records, columns=LINE_COLUMNS)
    frame = frame.sort_values(
        ["month", "creator", "title", "stream", "country"], kind="stable", na_position="last"
    ).reset_index(drop=True)
    if len(views):
        views = views.astype({"views": "float64", "title_id": "int64"})
        views["month"] = [pd.Timestamp(m).date() for m in views["month"]]
    else:
        views = _no_views()
    return Earnings(
        currency,
        months,
        frame,
        views,
        left_out,
        frozenset(pool_gaps),
        _statement_rows(frame, currency),
    )


def _no_views() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "month": pd.Series(dtype=object),
            "title_id": pd.Series(dtype="int64"),
            "views": pd.Series(dtype="float64"),
        }
    )


def _title_names(cursor: duckdb.DuckDBPyConnection, scope: Scope) -> dict[int, str]:
    where, params = scope.where("creator_id")
    return {
        int(t): str(n)
        for t, n in cursor.execute(
            f"SELECT title_id, name FROM dim_title WHERE {where}", params
        ).fetchall()
    }


def statement(found: Earnings, month: date, status: str = "") -> pd.DataFrame:
    """The monthly statement: one row per creator, title and stream of ``month`` (the page's
    rounded rows) with gross, fees, net, revenue share and earnings (Decimal), then a total row;
    ``Month``, ``Currency`` and ``Status`` (estimated / finalised ..., when given) on every row so
    the file stands on its own."""
    columns = [
        "Month",
        "Creator",
        "Title",
        "Stream",
        "Gross",
        "Fees",
        "Net",
        "Revenue share",
        "Earnings",
        "Currency",
        "Status",
    ]
    rows = found.rows[found.rows["month"] == month] if len(found.rows) else found.rows
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.sort_values(["creator", "title", "stream"], kind="stable")
    out = pd.DataFrame(
        {
            "Month": [f"{month:%Y-%m}"] * len(rows),
            "Creator": rows["creator"].to_numpy(),
            "Title": rows["title"].to_numpy(),
            "Stream": rows["stream"].map(STREAM_LABELS).fillna(rows["stream"]).to_numpy(),
            "Gross": rows["gross"].to_numpy(),
            "Fees": rows["fees"].to_numpy(),
            "Net": rows["net"].to_numpy(),
            "Revenue share": rows["revenue_share"].to_numpy(),
            "Earnings": rows["earnings"].to_numpy(),
            "Currency": [found.currency] * len(rows),
            "Status": [status] * len(rows),
        }
    )
    total = {
        "Month": f"{month:%Y-%m}",
        "Creator": "Total",
        "Title": "",
        "Stream": "",
        "Gross": sum(out["Gross"], Decimal(0)),
        "Fees": sum(out["Fees"], Decimal(0)),
        "Net": sum(out["Net"], Decimal(0)),
        "Revenue share": None,
        "Earnings": sum(out["Earnings"], Decimal(0)),
        "Currency": found.currency,
        "Status": status,
    }
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)[columns]


PAYOUT_COLUMNS = [
    "payout_id",
    "creator_id",
    "creator",
    "period",
    "amount",
    "currency",
    "status",
    "paid_at",
]


def payouts(
    cursor: duckdb.DuckDBPyConnection,
    scope: Scope,
    *,
    first_month: date | None = None,
    last_month: date | None = None,
    creators: Iterable[int] | None = None,
) -> pd.DataFrame:
    """The warehouse's payout rows of the scope (narrowed to ``creators``), newest period
    first: PAYOUT_COLUMNS, ``amount`` as Decimal in the payout's own currency, ``status`` as
    synced (estimated | finalised | held | paid)."""
    scope = scope.narrow(creators)
    where, params = scope.where("p.creator_id")
    first = first_month or date(1900, 1, 1)
    last = last_month or date(9999, 12, 1)
    rows = cursor.execute(
        "SELECT p.payout_id, p.creator_id, coalesce(c.name, 'Creator ' || p.creator_id), "
        "p.period, p.amount, p.currency, p.status, p.paid_at FROM fact_payout p "
        "LEFT JOIN dim_creator c ON c.creator_id = p.creator_id "
        f"WHERE p.period BETWEEN ? AND ? AND {where} ORDER BY p.period DESC, 3, p.payout_id",
        [first, last, *params],
    ).fetchall()
    return pd.DataFrame(rows, columns=PAYOUT_COLUMNS)


def expected_pay_date(period: date, status: str, paid_at: datetime | None, pay_day: int) -> date:
    """When a month's payout is (or was) paid: the day it was paid, or ``pay_day`` of the
    following month (clamped to the month's length)."""
    if paid_at is not None and not pd.isna(paid_at):
        return paid_at.date() if isinstance(paid_at, datetime) else paid_at
    following = _month_end(period) + timedelta(days=1)
    last = calendar.monthrange(following.year, following.month)[1]
    return following.replace(day=min(max(pay_day, 1), last))


def payout_checks(
    cursor: duckdb.DuckDBPyConnection,
    scope: Scope,
    *,
    month: date,
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """Each payout line of ``month`` beside Spotlight's own estimate of the creator's earnings,
    for the finance team's check before approving: ``payout_id``, ``amount_converted`` (the
    payout in ``currency`` at the rate of the month's last day; NaN without one), ``estimate``
    (earnings by the definition, in ``currency``, Decimal) and ``difference_pct`` (payout vs
    estimate; NaN when either is missing or the estimate is 0)."""
    from data.queries.money import rate_factors

    lines = payouts(cursor, scope, first_month=month, last_month=month)
    columns = ["payout_id", "amount_converted", "estimate", "difference_pct"]
    if lines.empty:
        return pd.DataFrame(columns=columns)
    found = earnings(
        cursor, scope, first_month=month, last_month=month, currency=currency, by_country=False
    )
    estimates = (
        dict(zip(*(found.by("creator_id")[c] for c in ("creator_id", "earnings")), strict=True))
        if len(found.lines)
        else {}
    )
    valued_on = _month_end(month)
    factors = rate_factors(cursor, [valued_on], set(lines["currency"]), currency)
    out = []
    for row in lines.itertuples(index=False):
        factor = factors.get((valued_on, row.currency), float("nan"))
        converted = float(row.amount) * factor
        estimate = estimates.get(row.creator_id)
        diff = (
            (converted - float(estimate)) / float(estimate)
            if estimate and converted == converted
            else float("nan")
        )
        out.append((row.payout_id, converted, estimate, diff))
    return pd.DataFrame(out, columns=columns)
