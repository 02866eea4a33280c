"""The metric catalog: every metric of METRICS.md defined once, and the queries that compute them.

Pages, exports and tests all read numbers through this module. Each ``Metric`` carries its id,
label, unit, display format, a one-line definition (tooltips), whether it is money (shown only to
roles allowed to see money), its direction, which filter dimensions it honours and whether it
means anything inside a creator scope.

Query functions take ``(cursor, filters, scope)`` and return pandas DataFrames:

- ``kpis``: each metric for the period and the comparison period, with the change;
- ``trend``: by day / week (Monday-Sunday) / month, the comparison period aligned on the same
  buckets for overlay;
- ``breakdown``: by one allowlisted dimension;
- ``top_titles``: titles ranked by runtime-normalised views over the last 28 or 91 days;
- ``data_bounds``: the first and last day with views (the anchor for date presets).

How numbers are computed. Flow metrics (views, revenue, ads) are aggregated in DuckDB over the
day-sorted denormalised tables built with the extract (data/extract/derived.py), so a date range reads
only its row groups. Subscription metrics are point-in-time or "active at any time in a range";
they are computed exactly from per-day histograms (starts and ends by day, cumulated), which
keeps them fast for any number of buckets. Every distinct count is exact: nothing here is an
approximation.

Rules a caller can rely on:

- ``scope`` is applied to every query that reads creator-attributable rows; a metric that cannot
  be attributed to creators (platform subscriptions, MRR, churn, engagement rate) is NaN under a
  restricted scope, never the platform's number (SECURITY.md #7). An empty scope gives zeros.
- A filter on a dimension a metric cannot be split by (e.g. device for revenue) makes that
  metric NaN with a note, rather than silently ignoring the filter.
- A fact row whose dimension value is unknown (ad revenue has no viewer, subscription revenue
  no title) matches no filter on that dimension.

- Implausible source rows (data/extract/plausibility.py) are not in the derived tables, so no
  metric counts them.
- Money is converted to the reporting currency (``currency``, default USD) at the rate of each
  amount's day; an amount without a rate is left out and counted, never converted 1:1
  (data/queries/money.py). ``kpis`` says so in its ``gap`` column.

Dimension meaning by fact: ``country`` is where a session was played for views, and the
viewer's country for subscriptions, revenue and the engagement rate (whose two sides are one
population of subscribers, data/queries/engaged.py); ``plan`` is the viewer's current plan for
views, revenue and engagement, and the subscription's own plan for new subscribers, MRR, ARPU
and churn; ``creator`` is the title's creator (revenue rows carry their own creator).

Comparison periods: the previous period is the same number of days directly before; the same
period last year compares each bucket with the same calendar dates a year earlier. 29 February
has no counterpart: a day (or bucket) that is only 29 February has no comparison value, and the
earlier year's 29 February belongs to a bucket only when that bucket runs from 28 February to
1 March or across them (``_series_windows``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from data.extract.derived import max_viewer_idx
from data.queries import engaged as engaged_subscribers
from data.queries import money, subscription_days, viewer_index
from data.queries.filters import DIMENSIONS, Filters, Scope, year_earlier
from data.queries.view_filters import DV_VIEW_COLUMNS
from data.schema import BASE_CURRENCY

Grain = Literal["day", "week", "month"]
GRAINS: tuple[str, ...] = ("day", "week", "month")
BREAKDOWN_DIMENSIONS: tuple[str, ...] = tuple(DIMENSIONS)
TOP_TITLE_WINDOWS: tuple[int, ...] = (28, 91)
ALL_DIMS = frozenset(DIMENSIONS)
_VIEWER_DIMS = frozenset({"country", "age_band", "plan"})
_TITLE_DIMS = frozenset({"genre", "kind", "creator"})


# --- the catalog ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric: how to show it, what it means, and which base aggregates it is computed from."""

    id: str
    label: str
    unit: str  # appended to the formatted number: "", "h", "min", "%"
    fmt: str  # a str.format pattern for the value ("%" metrics are ratios shown x 100)
    definition: str
    needs: tuple[str, ...]
    formula: Callable[[Columns], np.ndarray]
    dims: frozenset[str] = ALL_DIMS
    money: bool = False
    higher_is_better: bool | None = True
    scoped: bool = True  # meaningful for a creator-restricted scope
    approximate: bool = False
    per_title: bool = False  # only meaningful per title (top titles, comparison)

    def format(self, value: float | None, currency: str | None = None) -> str:
        """The value as shown on a card: thousands separators, unit, and for money the
        currency code first ("USD 1,234"); "—" when missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "—"
        shown = value * 100 if self.unit == "%" else value
        text = self.fmt.format(shown)
        if self.money and self.unit != "%":
            return f"{currency or BASE_CURRENCY} {text}"
        return f"{text}{self.unit}" if self.unit in ("%", "") else f"{text} {self.unit}"


# Formulas run on plain float arrays keyed by base aggregate: pandas Series arithmetic costs
# milliseconds per KPI call on frames of a few rows.
Columns = Mapping[str, np.ndarray]


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _col(name: str, scale: float = 1.0) -> Callable[[Columns], np.ndarray]:
    return lambda f: np.asarray(f[name], dtype=np.float64) * scale


_METRICS: tuple[Metric, ...] = (
    Metric(
        "starts", "Starts", "", "{:,.0f}", "View sessions started.", ("starts",), _col("starts")
    ),
    Metric(
        "watch_hours",
        "Watch hours",
        "h",
        "{:,.0f}",
        "Hours watched: sum of watch time / 3600.",
        ("watch_seconds",),
        _col("watch_seconds", 1 / 3600),
    ),
    Metric(
        "views",
        "Views",
        "",
        "{:,.0f}",
        "Runtime-normalised views: hours viewed / runtime in hours (Netflix Top 10 convention).",
        ("views",),
        _col("views"),
    ),
    Metric(
        "avg_view_duration",
        "Avg view duration",
        "min",
        "{:,.1f}",
        "Average watch time per start, in minutes.",
        ("watch_seconds", "starts"),
        lambda f: _div(f["watch_seconds"] / 60, f["starts"]),
    ),
    Metric(
        "avg_pct_viewed",
        "Avg % viewed",
        "%",
        "{:.1f}",
        "Average share of the runtime watched per start (views / starts).",
        ("views", "starts"),
        lambda f: _div(f["views"], f["starts"]),
    ),
    Metric(
        "completion_rate",
        "Completion rate",
        "%",
        "{:.1f}",
        "Share of starts that reached at least 90% of the runtime.",
        ("completed", "starts"),
        lambda f: _div(f["completed"], f["starts"]),
    ),
    Metric(
        "active_viewers",
        "Active viewers",
        "",
        "{:,.0f}",
        "Distinct viewers with at least one start in the period (per day/week/month in a trend: "
        "DAU/WAU/MAU). Exact.",
        ("viewers",),
        _col("viewers"),
    ),
    Metric(
        "engagement_rate",
        "Engagement rate",
        "%",
        "{:.1f}",
        "Subscribers with at least one start in the period / subscribers active at any time in "
        "the period: one population (country, plan and age band are the subscriber's own; "
        "device, genre, kind and creator filter the starts), so at most 100%.",
        ("engaged", "subscribers"),
        lambda f: _div(f["engaged"], f["subscribers"]),
        scoped=False,
    ),
    Metric(
        "watch_time_per_subscriber",
        "Watch time per subscriber",
        "h",
        "{:,.2f}",
        "Watch hours of the subscribers active in the period / those subscribers (the "
        "engagement rate's population).",
        ("subscriber_watch_seconds", "subscribers"),
        lambda f: _div(f["subscriber_watch_seconds"] / 3600, f["subscribers"]),
        scoped=False,
    ),
    Metric(
        "library_utilisation",
        "Library utilisation",
        "%",
        "{:.1f}",
        "Titles with at least one start / titles released by the end of the period.",
        ("titles_started", "titles_available"),
        lambda f: _div(f["titles_started"], f["titles_available"]),
    ),
    Metric(
        "demand_multiplier",
        "Demand multiplier",
        "x",
        "{:,.2f}",
        "A title's views / mean views of the titles available in the same period and scope.",
        ("views", "titles_available"),
        lambda f: _div(f["views"], f["mean_views"]),
        per_title=True,
    ),
    Metric(
        "new_subscribers",
        "New subscribers",
        "",
        "{:,.0f}",
        "Viewers whose first subscription started in the period.",
        ("new_subscribers",),
        _col("new_subscribers"),
        dims=_VIEWER_DIMS,
        scoped=False,
    ),
    Metric(
        "net_revenue",
        "Net revenue",
        "",
        "{:,.0f}",
        "Net revenue (gross - fees) of all streams, each amount converted to the reporting "
        "currency at the rate of its day; in a creator scope, that creator's pay-per-view and "
        "ad revenue.",
        ("net", "net_missing"),
        _col("net"),
        dims=ALL_DIMS - {"device"},
        money=True,
    ),
    Metric(
        "net_revenue_subscription",
        "Subscription revenue",
        "",
        "{:,.0f}",
        "Net revenue from subscription charges.",
        ("net_subscription", "net_missing"),
        _col("net_subscription"),
        dims=ALL_DIMS - {"device"},
        money=True,
        scoped=False,
    ),
    Metric(
        "net_revenue_ppv",
        "Pay-per-view revenue",
        "",
        "{:,.0f}",
        "Net revenue from pay-per-view purchases.",
        ("net_ppv", "net_missing"),
        _col("net_ppv"),
        dims=ALL_DIMS - {"device"},
        money=True,
    ),
    Metric(
        "net_revenue_ad",
        "Ad revenue (net)",
        "",
        "{:,.0f}",
        "Net revenue from advertising.",
        ("net_ad", "net_missing"),
        _col("net_ad"),
        dims=ALL_DIMS - {"device"},
        money=True,
    ),
    Metric(
        "mrr",
        "MRR",
        "",
        "{:,.0f}",
        "Monthly recurring revenue: sum of monthly prices of subscriptions active at the end "
        "of the period, converted at that day's rates.",
        ("mrr_cents",),
        _col("mrr_cents", 0.01),
        dims=_VIEWER_DIMS,
        money=True,
        scoped=False,
    ),
    Metric(
        "arpu",
        "ARPU",
        "",
        "{:,.2f}",
        "MRR / paying subscriptions active at the end of the period (those with a rate).",
        ("mrr_cents", "paying"),
        lambda f: _div(f["mrr_cents"] / 100, f["paying"]),
        dims=_VIEWER_DIMS,
        money=True,
        scoped=False,
    ),
    Metric(
        "gross_churn",
        "Gross churn",
        "%",
        "{:.2f}",
        "Subscriptions cancelled in the period / subscriptions at risk in it (active at its "
        "start, or started during it), so at most 100%.",
        ("cancelled", "active_at_start", "started"),
        lambda f: _div(f["cancelled"], f["active_at_start"] + f["started"]),
        dims=_VIEWER_DIMS,
        higher_is_better=False,
        scoped=False,
    ),
    Metric(
        "cpm",
        "CPM",
        "",
        "{:,.2f}",
        "Ad revenue / impressions x 1000 (impressions of the days with a rate).",
        ("ad_revenue", "priced_impressions"),
        lambda f: _div(f["ad_revenue"] * 1000, f["priced_impressions"]),
        dims=_TITLE_DIMS,
        money=True,
    ),
    Metric(
        "ctr",
        "CTR",
        "%",
        "{:.2f}",
        "Ad clicks / impressions.",
        ("clicks", "impressions"),
        lambda f: _div(f["clicks"], f["impressions"]),
        dims=_TITLE_DIMS,
    ),
)
METRICS: dict[str, Metric] = {m.id: m for m in _METRICS}
# What the Overview shows by default; money metrics are added only for roles allowed to see money.
OVERVIEW_KPIS: tuple[str, ...] = (
    "views",
    "watch_hours",
    "avg_view_duration",
    "completion_rate",
    "active_viewers",
    "engagement_rate",
    "new_subscribers",
)
OVERVIEW_MONEY_KPIS: tuple[str, ...] = ("net_revenue",)


def metric(metric_id: str) -> Metric:
    """The catalog entry for an id; unknown ids raise ``KeyError``."""
    if metric_id not in METRICS:
        raise KeyError(f"unknown metric {metric_id!r}")
    return METRICS[metric_id]


def visible_metrics(can_see_money: bool) -> tuple[str, ...]:
    """Ids of the metrics a role may see (money metrics only when it may see money)."""
    return tuple(m.id for m in _METRICS if can_see_money or not m.money)


# --- families: where base aggregates come from ---------------------------------------------------
@dataclass(frozen=True)
class _Family:
    name: str
    table: str
    columns: dict[str, str]  # dimension -> column in ``table``
    scope_column: str | None  # None: not attributable to creators
    aggregates: dict[str, str]  # base aggregate -> SQL over the table (flow families)
    day_column: str = "day"
    # Money families: the relation to read for a reporting currency, instead of ``table``.
    source: Callable[[str], tuple[str, list[Any]]] | None = None


_FLOW_FAMILIES: dict[str, _Family] = {
    f.name: f
    for f in (
        _Family(
            "view",
            "dv_view",
            dict(DV_VIEW_COLUMNS),
            "creator_id",
            {
                "starts": "count(*)",
                "watch_seconds": "sum(watch_seconds)",
                "views": "sum(views)",
                "completed": "count(*) FILTER (WHERE completed)",
                # Exact: set bits of a bitmap over dense viewer numbers (data/extract/derived.py).
                "viewers": "bit_count(bitstring_agg(viewer_idx, 0, {max_viewer_idx}))",
                "titles_started": "count(DISTINCT title_id)",
            },
        ),
        _Family(
            "revenue",
            "dv_revenue",
            dict(money.REVENUE_COLUMNS),
            "creator_id",
            {
                # In the reporting currency; SUM leaves out the amounts without a rate (NULL).
                "net": "sum(net_rep)",
                "net_subscription": "sum(net_rep) FILTER (WHERE stream = 'subscription')",
                "net_ppv": "sum(net_rep) FILTER (WHERE stream = 'ppv')",
                "net_ad": "sum(net_rep) FILTER (WHERE stream = 'ad')",
                # Amounts left out for want of a rate (which ones: money.revenue_gaps).
                "net_missing": "count(*) FILTER (WHERE net_rep IS NULL)",
            },
            source=money.revenue_source,
        ),
        _Family(
            "ad",
            "dv_ad",
            {"genre": "genre", "kind": "kind", "creator": "creator_id"},
            "creator_id",
            {
                "impressions": "sum(impressions)",
                "clicks": "sum(clicks)",
                "ad_revenue": "sum(ad_rep)",
                "priced_impressions": "sum(impressions) FILTER (WHERE ad_rep IS NOT NULL)",
            },
            source=money.ad_source,
        ),
    )
}
_SUB = _Family(
    "sub",
    "dv_subscription",
    {"country": "country", "age_band": "age_band", "plan": "plan"},
    None,
    {},
)
_SPELL = _Family(
    "spell",
    "dv_sub_spell",
    {"country": "country", "age_band": "age_band", "plan": "viewer_plan"},
    None,
    {},
)
# Engaged subscribers (data/queries/engaged.py): grouped by the viewer's own attributes.
_ENGAGED = _Family(
    "engaged",
    "dv_sub_spell",
    dict(engaged_subscribers.VIEWER_COLUMNS),
    None,
    {},
)
_CATALOG = _Family(
    "catalog",
    "dim_title",
    {"genre": "genre", "kind": "kind", "creator": "creator_id"},
    "creator_id",
    {},
)
_BASE_FAMILY: dict[str, str] = {
    **{agg: fam.name for fam in _FLOW_FAMILIES.values() for agg in fam.aggregates},
    "new_subscribers": "sub",
    "mrr_cents": "sub",
    "paying": "sub",
    "cancelled": "sub",
    "active_at_start": "sub",
    "started": "sub",
    "subscribers": "spell",
    "engaged": "engaged",
    "subscriber_watch_seconds": "engaged",
    "titles_available": "catalog",
}
_FAMILIES: dict[str, _Family] = {
    **_FLOW_FAMILIES,
    "sub": _SUB,
    "spell": _SPELL,
    "engaged": _ENGAGED,
    "catalog": _CATALOG,
}


def _family_where(
    family: _Family, filters: Filters, scope: Scope, prefix: str = ""
) -> tuple[str, list[Any]]:
    """The family's dimension filters (dimensions it cannot filter are skipped) and scope."""
    columns = {d: prefix + c for d, c in family.columns.items()}
    dims_sql, params = filters.where(columns, skip=filters.active_dimensions - set(columns))
    if family.scope_column is None:
        return dims_sql, params
    scope_sql, scope_params = scope.where(prefix + family.scope_column)
    return f"{dims_sql} AND {scope_sql}", params + scope_params


# --- periods and buckets -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Series:
    name: str  # "current" | "comparison"
    lo: date  # first day of data read
    hi: date  # last day of data read
    # How a bucket's days map to this series' days: "same" (the current period), "shift" (the
    # previous period: ``shift`` days earlier), "year" (the same calendar dates a year earlier).
    mapping: str = "same"
    shift: int = 0


def _series(filters: Filters, with_comparison: bool = True) -> list[_Series]:
    out = [_Series("current", filters.start, filters.end)]
    comp = filters.comparison_period if with_comparison else None
    if comp is not None:
        if filters.comparison == "same_period_last_year":
            out.append(_Series("comparison", comp[0], comp[1], "year"))
        else:
            out.append(
                _Series("comparison", comp[0], comp[1], "shift", (filters.start - comp[0]).days)
            )
    return out


def _bucket_start(d: date, grain: str) -> date:
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    return d


def _buckets(start: date, end: date, grain: str) -> list[tuple[date, date]]:
    """Calendar buckets (weeks Monday-Sunday) clipped to [start, end]; one bucket for "period"."""
    if grain == "period":
        return [(start, end)]
    out: list[tuple[date, date]] = []
    d = start
    while d <= end:
        if grain == "day":
            nxt = d + timedelta(days=1)
        elif grain == "week":
            nxt = _bucket_start(d, "week") + timedelta(days=7)
        else:
            nxt = (d.replace(day=28) + timedelta(days=4)).replace(day=1)
        out.append((d, min(nxt - timedelta(days=1), end)))
        d = nxt
    return out


def full_bucket_days(first_day: date, grain: str) -> int:
    """Days in the whole calendar bucket that starts on or contains ``first_day``."""
    if grain == "week":
        return 7
    if grain == "month":
        start = first_day.replace(day=1)
        return ((start.replace(day=28) + timedelta(days=4)).replace(day=1) - start).days
    return 1


def _series_windows(series: _Series, buckets: list[tuple[date, date]]) -> list[tuple[date, date]]:
    """The data days [lo, hi] of each bucket for one series; lo > hi when it has none.

    The previous period moves every bucket back by the period's length. The same period last
    year takes the same calendar dates a year earlier (``filters.year_earlier``): 29 February
    has no counterpart, so a bucket that is only 29 February has no days, and the earlier
    year's 29 February is in a bucket only when the bucket spans the end of February.
    """
    if series.mapping == "same":
        return list(buckets)
    if series.mapping == "shift":
        step = timedelta(days=series.shift)
        return [(b0 - step, b1 - step) for b0, b1 in buckets]
    return [(year_earlier(b0, first=True), year_earlier(b1, first=False)) for b0, b1 in buckets]


# --- computing base aggregates -------------------------------------------------------------------
# A window is (series, bucket, a, b): the data days [a, b] of one series that land in one bucket.
_Window = tuple[str, date, date, date]
_Records = dict[tuple[str, date, Any], dict[str, float]]


_VIEW_DAY_AGGREGATES = {
    "starts": "sum(starts)",
    "watch_seconds": "sum(watch_seconds)",
    "views": "sum(views)",
    "completed": "sum(completed)",
}


def _key_sql(family: _Family, by: str | None) -> str:
    if by is None:
        return "NULL::VARCHAR"
    if by == "title":
        return "CAST(title_id AS VARCHAR)"
    return f"CAST({family.columns[by]} AS VARCHAR)"


def _flow_records(
    cursor: duckdb.DuckDBPyConnection,
    family: _Family,
    aggregates: list[str],
    filters: Filters,
    scope: Scope,
    grain: str,
    by: str | None,
    series_list: list[_Series],
    currency: str = BASE_CURRENCY,
) -> _Records:
    """Sums and exact distinct counts per (series, bucket, key), one query for all series.

    The view family is computed from the in-memory index of ``dv_view`` when the extract has
    one (data/queries/viewer_index.py: day-ordered arrays, so a date range is a slice), else in SQL.
    Both are exact and tested against the same pandas reference.
    """
    if family.name == "view" and set(aggregates) <= set(viewer_index.AGGREGATES):
        index = viewer_index.index_for(cursor)
        if index is not None:
            return _index_flow_records(
                index, cursor, family, aggregates, filters, scope, grain, by, series_list
            )
    return _sql_flow_records(
        cursor, family, aggregates, filters, scope, grain, by, series_list, currency
    )


def _family_conditions(family: _Family, filters: Filters) -> dict[str, tuple[str, ...]]:
    """The family's filtered columns and their allowed values (dimensions it lacks skipped),
    for the in-memory indexes; the same meaning as ``_family_where`` gives in SQL."""
    return {
        family.columns[d]: filters.values(d)
        for d in sorted(filters.active_dimensions)
        if d in family.columns
    }


def _index_flow_records(
    index: viewer_index.ViewerIndex,
    cursor: duckdb.DuckDBPyConnection,
    family: _Family,
    aggregates: list[str],
    filters: Filters,
    scope: Scope,
    grain: str,
    by: str | None,
    series_list: list[_Series],
) -> _Records:
    conditions = _family_conditions(family, filters)
    by_column = None if by is None else ("title_id" if by == "title" else family.columns[by])
    buckets = _buckets(filters.start, filters.end, grain)
    out: _Records = {}
    for series in series_list:
        per_window = index.aggregate(
            cursor,
            aggregates,
            _series_windows(series, buckets),
            conditions,
            scope.creator_ids,
            by_column,
        )
        for (b0, _b1), groups in zip(buckets, per_window, strict=True):
            for key, values in groups.items():
                out[(series.name, b0, key)] = values
    return out


def _sql_flow_records(
    cursor: duckdb.DuckDBPyConnection,
    family: _Family,
    aggregates: list[str],
    filters: Filters,
    scope: Scope,
    grain: str,
    by: str | None,
    series_list: list[_Series],
    currency: str = BASE_CURRENCY,
) -> _Records:
    """The flow family's aggregates in SQL: one part per series, each bounded by its own days
    (so DuckDB reads only their row groups); a part groups its rows into buckets by joining a
    small table of (data day, bucket) made from ``_series_windows``, so any mapping of days to
    buckets (a shift, the calendar a year earlier) is the same one the other paths use."""
    where, where_params = _family_where(family, filters, scope)
    key_sql = _key_sql(family, by)
    select_aggs = ", ".join(f"{family.aggregates[a]} AS {a}" for a in aggregates)
    table, table_params = family.table, []
    if family.source is not None:
        table, table_params = family.source(currency)
    if (
        family.name == "view"
        and by is None
        and scope.is_all
        and not filters.active_dimensions
        and set(aggregates) <= set(_VIEW_DAY_AGGREGATES)
    ):
        # Nothing filtered: the per-day rollup holds the same sums and viewer bitmaps.
        table = "dv_view_day"
        select_aggs = ", ".join(f"{_VIEW_DAY_AGGREGATES[a]} AS {a}" for a in aggregates)
    elif "{max_viewer_idx}" in select_aggs:
        # bitstring_agg needs its range as constants: an integer read from the extract itself.
        select_aggs = select_aggs.replace("{max_viewer_idx}", str(max_viewer_idx(cursor)))
    buckets = _buckets(filters.start, filters.end, grain)
    day = family.day_column
    parts: list[str] = []
    params: list[Any] = []
    for i, series in enumerate(series_list):
        windows = [
            (b0, a, b)
            for (b0, _b1), (a, b) in zip(buckets, _series_windows(series, buckets), strict=True)
            if a <= b
        ]
        if not windows:
            continue
        lo, hi = min(w[1] for w in windows), max(w[2] for w in windows)
        # The series index is a literal from this loop, never input.
        if len(windows) == 1:
            bucket_sql, join, bucket_params = "CAST(? AS DATE)", "", [windows[0][0]]
        else:
            days = [
                (a + timedelta(days=k), b0) for b0, a, b in windows for k in range((b - a).days + 1)
            ]
            bucket_sql = "m.bucket"
            join = (
                "JOIN (SELECT unnest(?::DATE[]) AS day, unnest(?::DATE[]) AS bucket) AS m "
                f"ON m.day = f.{day} "
            )
            bucket_params = [[d for d, _ in days], [b for _, b in days]]
        if join:
            parts.append(
                f"SELECT {i} AS s, {bucket_sql} AS bucket, {key_sql} AS key, {select_aggs} "
                f"FROM {table} AS f {join}WHERE f.{day} BETWEEN ? AND ? AND {where} GROUP BY ALL"
            )
            params += [*table_params, *bucket_params, lo, hi, *where_params]
        else:
            parts.append(
                f"SELECT {i} AS s, {bucket_sql} AS bucket, {key_sql} AS key, {select_aggs} "
                f"FROM {table} AS f WHERE f.{day} BETWEEN ? AND ? AND {where} GROUP BY ALL"
            )
            params += [*bucket_params, *table_params, lo, hi, *where_params]
    if not parts:
        return {}
    out: _Records = {}
    for row in cursor.execute(" UNION ALL ".join(parts), params).fetchall():
        values = {
            a: float(v) if v is not None else 0.0 for a, v in zip(aggregates, row[3:], strict=True)
        }
        out[(series_list[row[0]].name, row[1], row[2])] = values
    return out


def _windows_cte(windows: list[_Window]) -> tuple[str, list[Any]]:
    return (
        "w AS (SELECT unnest(?::INTEGER[]) AS wid, unnest(?::DATE[]) AS a, unnest(?::DATE[]) AS b)",
        [list(range(len(windows))), [w[2] for w in windows], [w[3] for w in windows]],
    )


def _hist_records(
    cursor: duckdb.DuckDBPyConnection,
    family: _Family,
    aggregates: list[str],
    filters: Filters,
    scope: Scope,
    by: str | None,
    windows: list[_Window],
    currency: str = BASE_CURRENCY,
    gaps: dict[tuple[str, date, Any], dict[str | None, int]] | None = None,
) -> _Records:
    """Point-in-time and range aggregates for every window, exactly, from per-day histograms.

    The histograms (starts and ends per day, for the filtered rows) have one row per day and
    key, so evaluating hundreds of windows against them is cheap whatever the table size.
    Subscription money is kept per currency and converted at the rate of each window's last
    day; subscriptions in a currency without a rate that day are left out of MRR and paying
    and counted in ``gaps`` (per record key). Every window must have a <= b.
    """
    where, params = _family_where(family, filters, scope)
    if family is _SUB:
        by_currency = bool({"mrr_cents", "paying"} & set(aggregates))
        subs = _sub_windows(cursor, filters, by, windows, where, params, by_currency)
        return _sub_records(cursor, subs, windows, aggregates, currency, gaps)
    rollup = None
    if family is _SPELL and by is None and where == "TRUE" and not params:
        rollup = subscription_days.for_cursor(cursor)
    elif family is _SPELL and by is None:
        rows_index = subscription_days.rows_for_cursor(cursor)
        if rows_index is not None:
            rollup = rows_index.filtered(family.name, _family_conditions(family, filters))
    if rollup is not None:
        rows = [(wid, None, rollup.subscribers(a, b)) for wid, (_s, _b, a, b) in enumerate(windows)]
        return _hist_output(rows, ["subscribers"], windows, aggregates)
    key_sql = _key_sql(family, by)
    w_sql, w_params = _windows_cte(windows)
    max_day = max(w[3] for w in windows)
    if family is _SPELL:
        sql = f"""
        WITH {w_sql},
        h AS (
            SELECT {key_sql} AS key, first_day AS day, count(*) AS n_first, 0 AS n_last
            FROM dv_sub_spell WHERE first_day <= ? AND {where} GROUP BY ALL
            UNION ALL
            SELECT {key_sql}, last_day, 0, count(*)
            FROM dv_sub_spell WHERE last_day <= ? AND {where} GROUP BY ALL
        ),
        g AS (
            SELECT w.wid, {key_sql} AS key, count(*) AS n
            FROM dv_sub_spell JOIN w ON last_day >= w.a AND next_first_day <= w.b
            -- only gaps inside the overall range can matter: a small join whatever the size
            WHERE next_first_day <= ? AND last_day >= ? AND {where} GROUP BY ALL
        ),
        c AS (
            SELECT w.wid, h.key,
                coalesce(sum(n_first) FILTER (WHERE day <= w.b), 0)
                - coalesce(sum(n_last) FILTER (WHERE day < w.a), 0) AS n
            FROM w CROSS JOIN h GROUP BY ALL
        )
        SELECT c.wid, c.key, c.n - coalesce(g.n, 0)
        FROM c LEFT JOIN g ON g.wid = c.wid AND g.key IS NOT DISTINCT FROM c.key
        """
        names = ["subscribers"]
        min_day = min(w[2] for w in windows)
        all_params = [*w_params, max_day, *params, max_day, *params, max_day, min_day, *params]
    else:
        sql = f"""
        WITH {w_sql},
        h AS (
            SELECT {key_sql} AS key, release_date AS day, count(*) AS n
            FROM dim_title WHERE release_date <= ? AND {where} GROUP BY ALL
        )
        SELECT w.wid, h.key, coalesce(sum(n) FILTER (WHERE day <= w.b), 0)
        FROM w CROSS JOIN h GROUP BY ALL
        """
        names = ["titles_available"]
        all_params = [*w_params, max_day, *params]
    return _hist_output(cursor.execute(sql, all_params).fetchall(), names, windows, aggregates)


def _sub_windows(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    by: str | None,
    windows: list[_Window],
    where: str,
    params: list[Any],
    by_currency: bool = True,
) -> dict[tuple[int, Any], subscription_days.SubscriptionWindow]:
    """The subscription family's aggregates per (window id, key), money per currency: from the
    in-memory histograms when they can answer, else in SQL (split by currency only when the
    money is asked for: the split multiplies the histogram rows every window is summed over)."""
    rollup = None
    if by is None and where == "TRUE" and not params:
        rollup = subscription_days.for_cursor(cursor)
    elif by is None:
        rows_index = subscription_days.rows_for_cursor(cursor)
        if rows_index is not None:
            rollup = rows_index.filtered("sub", _family_conditions(_SUB, filters))
    if rollup is not None:
        return {
            (wid, None): rollup.subscription_window(a, b)
            for wid, (_s, _b, a, b) in enumerate(windows)
        }
    key_sql = _key_sql(_SUB, by)
    w_sql, w_params = _windows_cte(windows)
    max_day = max(w[3] for w in windows)
    currency = "currency" if by_currency else "NULL::VARCHAR"
    sql = f"""
    WITH {w_sql},
    h AS (
        SELECT {key_sql} AS key, {currency} AS currency, start_day AS day, count(*) AS n_start,
            sum(price_cents) AS cents_start,
            count(*) FILTER (WHERE price_cents > 0) AS paying_start,
            count(*) FILTER (WHERE is_first) AS first_start,
            0 AS n_end, 0 AS cents_end, 0 AS paying_end
        FROM dv_subscription WHERE start_day <= ? AND {where} GROUP BY ALL
        UNION ALL
        SELECT {key_sql}, {currency}, end_day, 0, 0, 0, 0, count(*), sum(price_cents),
            count(*) FILTER (WHERE price_cents > 0)
        FROM dv_subscription WHERE end_day <= ? AND {where} GROUP BY ALL
    )
    SELECT w.wid, h.key, h.currency,
        coalesce(sum(first_start) FILTER (WHERE day BETWEEN w.a AND w.b), 0),
        coalesce(sum(n_start) FILTER (WHERE day BETWEEN w.a AND w.b), 0),
        coalesce(sum(n_end) FILTER (WHERE day BETWEEN w.a AND w.b), 0),
        coalesce(sum(n_start - n_end) FILTER (WHERE day < w.a), 0),
        coalesce(sum(cents_start - cents_end) FILTER (WHERE day <= w.b), 0),
        coalesce(sum(paying_start - paying_end) FILTER (WHERE day <= w.b), 0)
    FROM w CROSS JOIN h GROUP BY ALL
    """
    rows = cursor.execute(sql, [*w_params, max_day, *params, max_day, *params]).fetchall()
    parts: dict[tuple[int, Any], list[tuple[Any, ...]]] = {}
    for row in rows:
        parts.setdefault((row[0], row[1]), []).append(row[2:])
    return {
        key: subscription_days.SubscriptionWindow(
            new_subscribers=float(sum(r[1] for r in found)),
            started=float(sum(r[2] for r in found)),
            cancelled=float(sum(r[3] for r in found)),
            active_at_start=float(sum(r[4] for r in found)),
            money={r[0]: (float(r[5]), float(r[6])) for r in found},
        )
        for key, found in parts.items()
    }


def _sub_records(
    cursor: duckdb.DuckDBPyConnection,
    subs: Mapping[tuple[int, Any], subscription_days.SubscriptionWindow],
    windows: list[_Window],
    aggregates: list[str],
    currency: str,
    gaps: dict[tuple[str, date, Any], dict[str | None, int]] | None,
) -> _Records:
    """Subscription records, MRR converted at the rate of each window's last day."""
    factors: dict[tuple[date, str], float] = {}
    if {"mrr_cents", "paying"} & set(aggregates):
        currencies = {c for sw in subs.values() for c in sw.money if c is not None}
        factors = money.rate_factors(cursor, {w[3] for w in windows}, currencies, currency)
    out: _Records = {}
    for (wid, key), sw in subs.items():
        series, bucket, _a, b = windows[wid]
        cents = paying = 0.0
        missing: dict[str | None, int] = {}
        for cur, (amount, count) in sw.money.items():
            factor = factors.get((b, cur), math.nan) if cur is not None else math.nan
            if math.isnan(factor):
                if count:
                    missing[cur] = missing.get(cur, 0) + int(count)
                continue
            cents += amount * factor
            paying += count
        values = {
            "new_subscribers": sw.new_subscribers,
            "started": sw.started,
            "cancelled": sw.cancelled,
            "active_at_start": sw.active_at_start,
            "mrr_cents": cents,
            "paying": paying,
        }
        out[(series, bucket, key)] = {n: values[n] for n in aggregates}
        if gaps is not None and missing and {"mrr_cents", "paying"} & set(aggregates):
            gaps[(series, bucket, key)] = missing
    return out


def _hist_output(
    rows: Sequence[Sequence[Any]], names: list[str], windows: list[_Window], aggregates: list[str]
) -> _Records:
    """Records from (window id, key, values in ``names`` order) rows."""
    out: _Records = {}
    for row in rows:
        series, bucket, _a, _b = windows[row[0]]
        values = {n: float(v) for n, v in zip(names, row[2:], strict=True)}
        out[(series, bucket, row[1])] = {n: values[n] for n in aggregates}
    return out


def _needed(metric_ids: Sequence[str]) -> dict[str, list[str]]:
    """Base aggregates to compute, grouped by family."""
    out: dict[str, list[str]] = {}
    for mid in metric_ids:
        for agg in metric(mid).needs:
            fam = _BASE_FAMILY[agg]
            if agg not in out.setdefault(fam, []):
                out[fam].append(agg)
    return out


def _notes(
    filters: Filters, scope: Scope, metric_ids: Sequence[str], by: str | None
) -> dict[str, str]:
    notes: dict[str, str] = {}
    for mid in metric_ids:
        m = metric(mid)
        outside = filters.active_dimensions - m.dims
        if m.per_title and by != "title":
            notes[mid] = f"{m.label} is a per-title metric (see top titles)."
        elif outside:
            names = ", ".join(DIMENSIONS[d].label.lower() for d in sorted(outside))
            notes[mid] = f"{m.label} cannot be split by {names}."
        elif not m.scoped and not scope.is_all:
            notes[mid] = f"{m.label} is a platform-wide number, not shown for a creator scope."
        elif by is not None and by != "title" and by not in m.dims:
            notes[mid] = f"{m.label} cannot be broken down by {DIMENSIONS[by].label.lower()}."
    return notes


def _compute(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    metric_ids: Sequence[str],
    *,
    grain: str = "period",
    by: str | None = None,
    with_comparison: bool = True,
    currency: str = BASE_CURRENCY,
    gaps: dict[tuple[str, date, Any], dict[str | None, int]] | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Metric values per (series, bucket, key), and a note per metric that is not available.

    A bucket whose comparison has no days (only 29 February, compared with a year without
    one) has NaN for every metric of that series. ``gaps`` collects, per record, the
    subscriptions left out of MRR for want of a rate."""
    money.check_currency(currency)
    notes = _notes(filters, scope, metric_ids, by)
    series_list = _series(filters, with_comparison)
    buckets = _buckets(filters.start, filters.end, grain)
    windows: list[_Window] = [
        (s.name, b[0], w[0], w[1])
        for s in series_list
        for b, w in zip(buckets, _series_windows(s, buckets), strict=True)
    ]
    live = [w for w in windows if w[2] <= w[3]]
    empty = {(w[0], w[1]) for w in windows if w[2] > w[3]}
    wanted = [mid for mid in metric_ids if mid not in notes]
    needed = _needed(wanted)
    found: list[tuple[_Records, list[str], bool]] = []
    for fam_name, aggs in needed.items():
        family = _FAMILIES[fam_name]
        # A family that cannot be grouped by the dimension leaves its aggregates missing (NaN).
        groupable = by is None or (by == "title" and fam_name == "view") or by in family.columns
        if not groupable:
            continue
        if fam_name in _FLOW_FAMILIES:
            records = _flow_records(
                cursor, family, aggs, filters, scope, grain, by, series_list, currency
            )
        elif not live:
            records = {}
        elif family is _ENGAGED:
            records = engaged_subscribers.records(cursor, filters, scope, live, by, aggs)
        else:
            records = _hist_records(cursor, family, aggs, filters, scope, by, live, currency, gaps)
        found.append((records, aggs, True))
    # The full grid: every series and bucket is present even when no row fell into it, and sums
    # over no rows are zero, not missing.
    keys: list[Any] = [None]
    if by is not None:
        seen = {k[2] for records, _, _ in found for k in records}
        keys = sorted(seen, key=lambda k: (k is None, str(k)))
    all_aggs = sorted({a for aggs in needed.values() for a in aggs})
    rows = []
    for s in series_list:
        for b0, _b1 in buckets:
            for key in keys:
                row: dict[str, Any] = {"series": s.name, "bucket": b0, "key": key}
                row.update(dict.fromkeys(all_aggs, math.nan))
                if (s.name, b0) not in empty:
                    for records, aggs, _ in found:
                        values = records.get((s.name, b0, key))
                        row.update(values if values is not None else dict.fromkeys(aggs, 0.0))
                rows.append(row)
    aggregates = {a: np.asarray([r[a] for r in rows], dtype=np.float64) for a in all_aggs}
    aggregates["mean_views"] = np.full(len(rows), math.nan)
    metrics = {
        mid: np.full(len(rows), math.nan)
        if mid in notes
        else np.asarray(METRICS[mid].formula(aggregates), dtype=np.float64)
        for mid in metric_ids
    }
    out = pd.DataFrame(
        {
            "series": [r["series"] for r in rows],
            "bucket": [r["bucket"] for r in rows],
            # Built as objects: pandas would otherwise turn an unknown (None) key into NaN.
            "key": pd.Series([r["key"] for r in rows], dtype=object),
            **aggregates,
            **metrics,
        }
    )
    return out, notes


# --- public queries ------------------------------------------------------------------------------
def data_bounds(cursor: duckdb.DuckDBPyConnection) -> tuple[date, date] | None:
    """The first and last UTC day with a view session, or None for an extract without views.

    Only plausible sessions count (dv_view leaves out the rest): a session dated more than a
    day after the extract's clock (``as_of``) never moves the anchor of the date presets."""
    row = cursor.execute("SELECT min(day), max(day) FROM dv_view").fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


_REVENUE_STREAMS: dict[str, str | None] = {
    "net_revenue": None,
    "net_revenue_subscription": "subscription",
    "net_revenue_ppv": "ppv",
    "net_revenue_ad": "ad",
}


def kpis(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    metrics: Sequence[str] = OVERVIEW_KPIS,
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """One row per requested metric, in the order asked.

    Columns: metric, label, unit, value, comparison (NaN without a comparison period), change
    (value - comparison), change_pct (change / |comparison|, NaN when comparison is 0),
    higher_is_better, money, currency (the reporting currency of a money metric, else ""),
    definition, note (why a value is missing, else ""), gap (for a money metric: the amounts
    of the period left out for want of an exchange rate, else "").
    Money metrics are computed only when asked for: the caller passes what the role may see.
    """
    gaps: dict[tuple[str, date, Any], dict[str | None, int]] = {}
    values, notes = _compute(
        cursor, filters, scope, metrics, grain="period", currency=currency, gaps=gaps
    )
    current = values[values["series"] == "current"]
    revenue_missing = float(current["net_missing"].iloc[0]) if "net_missing" in current else 0.0
    gap_text = _gap_texts(
        cursor, filters, scope, metrics, notes, currency, gaps, revenue_missing > 0
    )
    comparison = values[values["series"] == "comparison"]
    rows = []
    for mid in metrics:
        m = METRICS[mid]
        v = float(current[mid].iloc[0])
        c = float(comparison[mid].iloc[0]) if not comparison.empty else math.nan
        change = v - c
        rows.append(
            {
                "metric": mid,
                "label": m.label,
                "unit": m.unit,
                "value": v,
                "comparison": c,
                "change": change,
                "change_pct": change / abs(c) if c and not math.isnan(c) else math.nan,
                "higher_is_better": m.higher_is_better,
                "money": m.money,
                "currency": currency if m.money and m.unit != "%" else "",
                "definition": m.definition,
                "note": notes.get(mid, ""),
                "gap": gap_text.get(mid, ""),
            }
        )
    return pd.DataFrame(rows)


def _gap_texts(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    metric_ids: Sequence[str],
    notes: Mapping[str, str],
    currency: str,
    sub_gaps: Mapping[tuple[str, date, Any], Mapping[str | None, int]],
    revenue_missing: bool,
) -> dict[str, str]:
    """For each money metric of the period with amounts left out for want of a rate, the
    sentences that say so (data/queries/money.py ``gap_notes``). Which revenue amounts are
    asked only when the metric query counted some (``revenue_missing``)."""
    shown = [mid for mid in metric_ids if mid not in notes]
    out: dict[str, str] = {}
    if revenue_missing and any(mid in _REVENUE_STREAMS for mid in shown):
        by_stream = money.revenue_gaps(cursor, filters, scope, currency)
        for mid in shown:
            if mid not in _REVENUE_STREAMS:
                continue
            stream = _REVENUE_STREAMS[mid]
            missing: dict[str | None, int] = {}
            for name, per_currency in by_stream.items():
                if stream is None or name == stream:
                    for code, n in per_currency.items():
                        missing[code] = missing.get(code, 0) + n
            out[mid] = " ".join(money.gap_notes(missing))
    if "cpm" in shown:
        out["cpm"] = " ".join(money.gap_notes(money.ad_gaps(cursor, filters, scope, currency)))
    period = sub_gaps.get(("current", filters.start, None), {})
    for mid in ("mrr", "arpu"):
        if mid in shown:
            out[mid] = " ".join(money.gap_notes(period))
    return {mid: text for mid, text in out.items() if text}


def trend(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    grain: Grain = "day",
    metrics: Sequence[str] = ("views",),
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """Long table: one row per (bucket, metric) over the filtered period.

    Columns: bucket (first day of the bucket, clipped to the period), bucket_end, days, metric,
    value, comparison, partial. Weeks run Monday-Sunday and months are calendar months, clipped
    at the period's ends; ``partial`` is True for a bucket the period cuts (fewer ``days`` than
    the calendar week or month holds), whose totals are not comparable with whole ones. ``comparison`` is the comparison period's value for the same bucket (previous
    period: the bucket's days moved back by the period's length; last year: the same calendar
    dates a year earlier, so one day compares with one day, and 29 February with nothing), so
    the two lines overlay; NaN without a comparison. Money in ``currency``.
    """
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, not {grain!r}")
    values, _notes = _compute(cursor, filters, scope, metrics, grain=grain, currency=currency)
    buckets = _buckets(filters.start, filters.end, grain)
    # Plain dicts per metric: pandas' scalar lookups cost ~10 ms per 100-bucket trend.
    cur = values[values["series"] == "current"]
    comp = values[values["series"] == "comparison"]
    rows = []
    for mid in metrics:
        now = dict(zip(cur["bucket"], cur[mid].astype("float64"), strict=True))
        then = dict(zip(comp["bucket"], comp[mid].astype("float64"), strict=True))
        for b0, b1 in buckets:
            rows.append(
                {
                    "bucket": b0,
                    "bucket_end": b1,
                    "days": (b1 - b0).days + 1,
                    "metric": mid,
                    "value": float(now[b0]),
                    "comparison": float(then[b0]) if then else math.nan,
                    "partial": (b1 - b0).days + 1 < full_bucket_days(b0, grain),
                }
            )
    return pd.DataFrame(rows)


def breakdown(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    dimension: str,
    metrics: Sequence[str] = ("views", "watch_hours", "active_viewers"),
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """One row per value of an allowlisted dimension in the period, sorted by the first metric.

    Columns: key (the dimension value as text; None where unknown), label (creator names for
    ``creator``, else the value), then one column per metric. A metric that cannot be split by
    the dimension is NaN. Rows come only from data the filters and scope select. Money in
    ``currency``.
    """
    if dimension not in BREAKDOWN_DIMENSIONS:
        raise KeyError(f"unknown dimension {dimension!r}")
    values, _notes = _compute(
        cursor,
        filters,
        scope,
        metrics,
        grain="period",
        by=dimension,
        with_comparison=False,
        currency=currency,
    )
    out = values[["key", *metrics]].copy()
    out["label"] = out["key"]
    if dimension == "creator" and not out.empty:
        ids = [int(k) for k in out["key"] if k is not None and k == k]
        names: dict[str, str] = {}
        if ids:
            names = {
                str(cid): name
                for cid, name in cursor.execute(
                    f"SELECT creator_id, name FROM dim_creator WHERE creator_id IN "
                    f"({', '.join('?' * len(ids))})",
                    ids,
                ).fetchall()
            }
        out["label"] = [names.get(k, k) if isinstance(k, str) else k for k in out["key"]]
    out = out[["key", "label", *metrics]]
    return out.sort_values(
        metrics[0], ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def top_titles(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    window_days: int = 28,
    limit: int = 10,
) -> pd.DataFrame:
    """Titles ranked by runtime-normalised views over the ``window_days`` ending at filters.end.

    Views = hours viewed / runtime in hours, the convention of Netflix's public Top 10 lists
    (https://top10.netflix.com/about: "views" are hours viewed divided by runtime; the
    most-popular lists use the first 91 days). Dimension filters and the scope apply; the date
    range of ``filters`` is replaced by the window. Columns: rank, title_id, name, kind, genre,
    creator_id, creator, runtime_min, release_date, views, watch_hours, starts,
    completion_rate, demand_multiplier (views / mean views of the titles available to this
    scope and filters in the window). Only titles with views in the window are ranked: one with
    none (or only sessions of unknown runtime) is never listed, so a small scope may list fewer
    than ``limit`` titles.
    """
    if window_days not in TOP_TITLE_WINDOWS:
        raise ValueError(f"window_days must be one of {TOP_TITLE_WINDOWS}")
    limit = int(limit)
    if limit < 1:
        raise ValueError("limit must be at least 1")
    window = Filters(
        filters.end - timedelta(days=window_days - 1),
        filters.end,
        "custom",
        "none",
        **{f: getattr(filters, f) for f in Filters.DIMENSION_FIELDS},
    )
    cat_where, cat_params = _family_where(_CATALOG, window, scope)
    # Unfiltered, the per-day title rollup (data/extract/derived.py) is the fastest source; with filters
    # the index is about twice as fast as scanning dv_view.
    index = None
    if window.active_dimensions or not scope.is_all:
        index = viewer_index.index_for(cursor)
    total_sql, total_params = "SELECT sum(views) AS views FROM per", []
    if index is not None:
        per_sql, per_params, total_sql, total_params = _top_titles_from_index(
            index, cursor, window, scope, limit
        )
    elif not window.active_dimensions and scope.is_all and _has_table(cursor, "dv_title_day"):
        per_sql = """
        SELECT title_id, sum(views) AS views, sum(watch_seconds) AS ws,
            sum(starts) AS starts, sum(completed) AS completed
        FROM dv_title_day WHERE day BETWEEN ? AND ? GROUP BY title_id
        """
        per_params = [window.start, window.end]
    else:
        where, params = _family_where(_FLOW_FAMILIES["view"], window, scope, prefix="v.")
        per_sql = f"""
        SELECT v.title_id, sum(v.views) AS views, sum(v.watch_seconds) AS ws,
            count(*) AS starts, count(*) FILTER (WHERE v.completed) AS completed
        FROM dv_view v WHERE v.day BETWEEN ? AND ? AND {where} GROUP BY v.title_id
        """
        per_params = [window.start, window.end, *params]
    # One statement: per-title sums over the window, the total over all titles and the number of
    # titles available (for the demand multiplier), ranked and joined to their names.
    sql = f"""
    WITH per AS ({per_sql}),
    total AS ({total_sql}),
    available AS (
        SELECT count(*) AS n FROM dim_title WHERE release_date <= ? AND {cat_where}
    ),
    top AS (SELECT * FROM per WHERE views > 0 ORDER BY views DESC, title_id LIMIT ?)
    SELECT t.title_id, d.name, d.kind, d.genre, d.creator_id, c.name AS creator,
        d.runtime_min, d.release_date,
        t.views, t.ws / 3600.0 AS watch_hours, t.starts,
        t.completed / t.starts AS completion_rate,
        t.views / (total.views / nullif(available.n, 0)) AS demand_multiplier
    FROM top t
    CROSS JOIN total CROSS JOIN available
    LEFT JOIN dim_title d ON d.title_id = t.title_id
    LEFT JOIN dim_creator c ON c.creator_id = d.creator_id
    ORDER BY t.views DESC NULLS LAST, t.title_id
    """
    top = cursor.execute(sql, [*per_params, *total_params, window.end, *cat_params, limit]).df()
    top.insert(0, "rank", range(1, len(top) + 1))
    for col in ("views", "watch_hours", "starts", "completion_rate", "demand_multiplier"):
        top[col] = top[col].astype("float64")
    return top.reset_index(drop=True)


def _top_titles_from_index(
    index: viewer_index.ViewerIndex,
    cursor: duckdb.DuckDBPyConnection,
    window: Filters,
    scope: Scope,
    limit: int,
) -> tuple[str, list[Any], str, list[Any]]:
    """``top_titles``' per-title relation and total, from the in-memory index.

    The titles are ranked here exactly as the SQL ranks them (views descending, then title id,
    NULL id last), among titles with views in the window (a title with zero views, or whose
    sessions all lack a runtime, is never ranked); only the top ``limit`` rows are bound into
    the statement, with the total views of every title for the demand multiplier.
    """
    family = _FLOW_FAMILIES["view"]
    conditions = _family_conditions(family, window)
    aggs = ["views", "views_known", "watch_seconds", "starts", "completed"]
    (found,) = index.aggregate_arrays(
        cursor, aggs, [(window.start, window.end)], conditions, scope.creator_ids, "title_id"
    )
    empty: list[Any] = []
    if found is None:
        top, columns = [], {a: np.zeros(0) for a in aggs}
    else:
        labels, columns = found
        known = columns["views_known"] > 0
        ids = np.asarray([np.inf if k is None else float(k) for k in labels])
        order = np.lexsort((ids, -np.where(known, columns["views"], 0.0), ~known))
        watched = known & (columns["views"] > 0)
        top = [int(i) for i in order if watched[i]][:limit]
    # SUM over the per-title rows: NULL when no title has known views.
    known_any = bool((columns["views_known"] > 0).any())
    total = float(columns["views"].sum()) if known_any else None
    per_sql = """
        SELECT unnest(?::INTEGER[]) AS title_id, unnest(?::DOUBLE[]) AS views,
            unnest(?::HUGEINT[]) AS ws, unnest(?::BIGINT[]) AS starts,
            unnest(?::BIGINT[]) AS completed
    """
    per_params: list[Any] = [
        [None if labels[i] is None else int(labels[i]) for i in top] if top else empty,
        [float(columns["views"][i]) if columns["views_known"][i] else None for i in top],
        [int(columns["watch_seconds"][i]) for i in top],
        [int(columns["starts"][i]) for i in top],
        [int(columns["completed"][i]) for i in top],
    ]
    return per_sql, per_params, "SELECT CAST(? AS DOUBLE) AS views", [total]


def _has_table(cursor: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the extract has a table (one built by an older release may lack a rollup)."""
    (found,) = cursor.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND table_name = ?",
        [name],
    ).fetchone()
    return bool(found)
