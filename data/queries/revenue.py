"""The Revenue page's queries: where the money comes from, how it moves, what plans earn, ads.

Every function takes ``(cursor, filters, scope, *, currency=BASE_CURRENCY, ...)`` and returns a
pandas DataFrame. The rules they share (docs/METRICS.md, data/queries/money.py):

- **Period**: the UTC days ``filters.start`` .. ``filters.end``, inclusive. A comparison is
  ``filters.comparison_period`` (the equal-length period before, or the same dates a year
  earlier); without one the comparison columns are NaN.
- **Dimension filters** apply where the data can honour them: revenue rows by the viewer's
  country, plan and age band and the title's genre, kind and creator
  (``money.REVENUE_COLUMNS``); subscriptions by the viewer's country and age band and the
  subscription's own plan (as the catalog's MRR, ARPU and churn); ad delivery by the title's
  genre, kind and creator. A filter on a dimension the data cannot be split by (device for
  revenue; anything but country, plan and age band for subscriptions) gives an empty frame
  with the function's columns, never the unfiltered numbers.
- **Scope**: revenue and ad rows are the creator's when their creator (the row's own for
  revenue, the title's for ads) is in the scope. Subscription figures (MRR and its movement,
  ARPU, churn, LTV) are platform-wide and belong to no creator: under any scope that is not
  ``scope.is_all`` they are an empty frame. An empty scope (``Scope.creators(())``) gets an
  empty frame from every function, never everything.
- **Money** is in ``currency`` (ISO 4217; ``money.check_currency``), each amount converted at
  the rate of its own UTC day (a flow) or of the day it is valued on (MRR), the latest rate on
  or up to 7 days before (``dv_rate_day``). An amount in the reporting currency is not
  converted; an amount without a rate is left out of every converted figure and counted in
  ``missing``: never converted 1:1. Ad delivery revenue (``fact_ad``) is in USD.
- **Plausibility**: revenue and subscriptions are read from the derived tables
  (``dv_revenue``, ``dv_subscription``), which hold only plausible rows
  (data/extract/plausibility.py). ``fact_ad`` has no plausibility rules and is read as is.
- Identifiers in the SQL come only from the allowlists in this module; every value is bound.

Definitions per function are in their docstrings.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd

from data.queries.filters import Filters, Scope
from data.queries.metrics import GRAINS, _buckets, _series, _series_windows
from data.queries.money import REVENUE_COLUMNS, check_currency, rate_factors
from data.schema import BASE_CURRENCY

__all__ = [
    "AD_BY",
    "AD_COLUMNS",
    "FILL_RATE_NOTE",
    "FLOW_BY",
    "FLOW_COLUMNS",
    "MOVEMENT_COLUMNS",
    "OVER_TIME_COLUMNS",
    "PLAN_BY",
    "PLAN_COLUMNS",
    "STREAM_LABELS",
    "ad_performance",
    "mrr_movement",
    "plan_economics",
    "revenue_flow",
    "revenue_over_time",
]

FILL_RATE_NOTE = (
    "Fill rate (ad impressions served / ad requests) cannot be computed: the warehouse records "
    "ad deliveries (impressions, clicks and revenue per day, title and campaign) but not the ad "
    "requests that went unfilled, so there is no denominator."
)

STREAM_LABELS: dict[str, str] = {
    "subscription": "Subscriptions",
    "ppv": "Pay-per-view",
    "ad": "Advertising",
}
STREAMS: tuple[str, ...] = tuple(STREAM_LABELS)

# The page's breakdowns: ``by`` -> the dv_revenue column grouped on (an allowlist).
FLOW_BY: dict[str, str] = {
    "stream": "stream",
    "country": "country",
    "plan": "plan",
    "genre": "genre",
    "creator": "creator_id",
    "title": "title_id",
}
# dv_subscription's filterable columns (the catalog's subscription family): the viewer's country
# and age band, the subscription's own plan.
SUB_COLUMNS: dict[str, str] = {"country": "s.country", "age_band": "s.age_band", "plan": "s.plan"}
PLAN_BY: dict[str, str] = {"plan": "s.plan", "acquisition_channel": "w.acquisition_channel"}
AD_BY: dict[str, str] = {"title": "a.title_id", "campaign": "a.campaign"}

FLOW_COLUMNS: tuple[str, ...] = (
    "key",
    "label",
    "gross",
    "fees",
    "net",
    "comparison_net",
    "change_pct",
    "amounts",
    "missing",
)
OVER_TIME_COLUMNS: tuple[str, ...] = (
    "bucket",
    "bucket_end",
    "days",
    "partial",
    "stream",
    "net",
    "comparison",
    "missing",
)
MOVEMENT_COLUMNS: tuple[str, ...] = (
    "month",
    "opening_day",
    "closing_day",
    "opening",
    "new",
    "expansion",
    "contraction",
    "churned",
    "fx",
    "closing",
    "new_viewers",
    "churned_viewers",
    "missing",
)
PLAN_COLUMNS: tuple[str, ...] = (
    "key",
    "label",
    "subscribers",
    "paying",
    "mrr",
    "arpu",
    "active_at_start",
    "started",
    "cancelled",
    "resubscribed",
    "gross_churn",
    "net_churn",
    "monthly_churn",
    "ltv",
    "missing",
)
AD_COLUMNS: tuple[str, ...] = (
    "key",
    "label",
    "impressions",
    "clicks",
    "ad_revenue",
    "cpm",
    "ctr",
    "comparison_ad_revenue",
    "change_pct",
    "missing",
)

_INT_COLUMNS = frozenset(
    {
        "amounts",
        "missing",
        "days",
        "new_viewers",
        "churned_viewers",
        "subscribers",
        "paying",
        "active_at_start",
        "started",
        "cancelled",
        "resubscribed",
        "impressions",
        "clicks",
    }
)
_OBJECT_COLUMNS = frozenset(
    {"key", "label", "stream", "bucket", "bucket_end", "month", "opening_day", "closing_day"}
)


# --- shared helpers ------------------------------------------------------------------------------
def _dtype(column: str) -> str:
    if column in _INT_COLUMNS:
        return "int64"
    if column == "partial":
        return "bool"
    return "object" if column in _OBJECT_COLUMNS else "float64"


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    """A frame with no rows and the function's columns, typed as a full one would be."""
    return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in columns})


def _check_by(by: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    if by not in allowed:
        raise ValueError(f"by must be one of {allowed}, not {by!r}")
    return by


def _nothing_in_scope(scope: Scope) -> bool:
    """An explicit empty scope: a creator with no titles sees nothing (never everything)."""
    return scope.creator_ids is not None and not scope.creator_ids


def _change_pct(value: np.ndarray, comparison: np.ndarray) -> np.ndarray:
    """(value - comparison) / |comparison|; NaN where the comparison is 0 or missing."""
    value = np.asarray(value, dtype=np.float64)
    comparison = np.asarray(comparison, dtype=np.float64)
    out = np.full(value.shape, math.nan)
    ok = np.isfinite(comparison) & (comparison != 0)
    out[ok] = (value[ok] - comparison[ok]) / np.abs(comparison[ok])
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (never inf)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _converted(currency: str, groups: str, groups_params: list[Any]) -> tuple[str, list[Any]]:
    """``groups`` (a query over dv_revenue, one row per group of rows sharing a day and a
    currency, with the sums ``gross``, ``fees``, ``net``, ``net_usd`` and the day's
    ``rate_usd``) with ``gross_rep``, ``fees_rep`` and ``net_rep``: those sums in ``currency``,
    NULL (all three) when the group's currency has no rate that day.

    The conversion of ``money.revenue_source``, applied to sums that share one rate instead of
    to each row (a few hundred groups a day instead of every row): an amount in the reporting
    currency is not converted; otherwise ``amount x rate_usd / rate(reporting)`` on its day
    (``rate_usd``: US dollars per unit of the row's currency, 1 for USD, NULL without a rate;
    ``net_usd`` is ``net x rate_usd`` already)."""
    if currency == BASE_CURRENCY:
        return (
            "SELECT i.*, CAST(i.gross AS DOUBLE) * i.rate_usd AS gross_rep, "
            "CAST(i.fees AS DOUBLE) * i.rate_usd AS fees_rep, i.net_usd AS net_rep "
            f"FROM ({groups}) AS i",
            list(groups_params),
        )
    return (
        "SELECT i.*, "
        "CASE WHEN i.currency = ? THEN CAST(i.gross AS DOUBLE) "
        "ELSE CAST(i.gross AS DOUBLE) * i.rate_usd / x.rate_to_usd END AS gross_rep, "
        "CASE WHEN i.currency = ? THEN CAST(i.fees AS DOUBLE) "
        "ELSE CAST(i.fees AS DOUBLE) * i.rate_usd / x.rate_to_usd END AS fees_rep, "
        "CASE WHEN i.currency = ? THEN CAST(i.net AS DOUBLE) "
        "ELSE i.net_usd / x.rate_to_usd END AS net_rep "
        f"FROM ({groups}) AS i LEFT JOIN dv_rate_day x ON x.day = i.day AND x.currency = ?",
        [currency, currency, currency, *groups_params, currency],
    )


# The sums of a group of dv_revenue rows of one day and currency that ``_converted`` needs
# (rate_usd is the same for every row of a day and currency: the rate of that day).
_NATIVE_SUMS = (
    "f.day, f.currency, sum(f.gross) AS gross, sum(f.fees) AS fees, sum(f.net) AS net, "
    "sum(f.net_usd) AS net_usd, any_value(f.rate_usd) AS rate_usd, count(*) AS amounts"
)


def _ad_relation(currency: str) -> tuple[str, list[Any]]:
    """fact_ad with its title's genre, kind and creator and ``ad_rep``: the ad revenue (USD)
    in ``currency`` at the rate of its day (NULL without one), as ``money.ad_source``."""
    if currency == BASE_CURRENCY:
        rep, join, params = "CAST(a.ad_revenue AS DOUBLE)", "", []
    else:
        rep = "CAST(a.ad_revenue AS DOUBLE) / x.rate_to_usd"
        join = "LEFT JOIN dv_rate_day x ON x.day = a.ad_date AND x.currency = ? "
        params = [currency]
    return (
        f"(SELECT a.ad_date AS day, a.title_id, a.campaign, a.impressions, a.clicks, "
        f"t.genre, t.kind, t.creator_id, {rep} AS ad_rep "
        f"FROM fact_ad a LEFT JOIN dim_title t ON t.title_id = a.title_id {join})",
        params,
    )


def _typed(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The columns in order, integers as int64, money and ratios as float64."""
    frame = frame.reindex(columns=list(columns))
    for c in columns:
        if c in _INT_COLUMNS:
            frame[c] = frame[c].fillna(0).astype("int64")
        elif c == "partial":
            frame[c] = frame[c].astype("bool")
        elif c not in _OBJECT_COLUMNS:
            frame[c] = frame[c].astype("float64")
    return frame.reset_index(drop=True)


def _keys_as_text(values: Iterable[Any]) -> pd.Series:
    """Group keys as text (ids in decimal), None where unknown; kept as objects so pandas does
    not turn None into NaN."""
    return pd.Series([None if _is_null(v) else str(v) for v in values], dtype=object)


def _is_null(value: Any) -> bool:
    """None, NaN or pandas' NA (what a NULL becomes in a frame)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


# --- 1. revenue by stream, country, plan, genre, creator or title ------------------------------
def revenue_flow(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
    by: Literal["stream", "country", "plan", "genre", "creator", "title"] = "stream",
) -> pd.DataFrame:
    """Gross, fees and net revenue of the period per group, and the comparison period's net.

    One row per group with revenue in the period or the comparison period, sorted by net
    (descending, then key). ``by``: ``stream`` (subscription, pay-per-view, ad: the gross ->
    fees -> net waterfall per stream), ``country``, ``plan`` and the viewer's own country and
    current plan (dim_viewer), ``genre`` (the title's primary genre), ``creator`` (the row's own
    creator) or ``title``.

    Columns: ``key`` (the group's value as text, creator and title ids in decimal; None for
    rows without one), ``label`` (stream names; the creator's or title's name from
    dim_creator / dim_title, as stored, never escaped; a group without a value says why:
    "Subscriptions (not attributed to titles)" when all its rows are subscription charges,
    "Advertising (no viewer)" when all are ad revenue, else "Unknown" / "(no title)"),
    ``gross``, ``fees``, ``net`` (gross - fees, all in ``currency``, converted at each row's
    day), ``comparison_net`` (net of the comparison period for the same group; 0 when the group
    had none, NaN without a comparison period), ``change_pct`` ((net - comparison_net) /
    |comparison_net|; NaN when that is 0 or NaN), ``amounts`` (revenue rows of the period),
    ``missing`` (of those, the ones without an exchange rate, left out of gross, fees and net).

    Filters: ``money.REVENUE_COLUMNS`` (device: empty frame). Scope: the rows of the creators in
    it; subscription charges belong to no creator, so a creator scope never sees them.
    """
    currency = check_currency(currency)
    _check_by(by, FLOW_BY)
    if filters.active_dimensions - set(REVENUE_COLUMNS) or _nothing_in_scope(scope):
        return _empty(FLOW_COLUMNS)
    dims_sql, dims_params = filters.where(REVENUE_COLUMNS)
    scope_sql, scope_params = scope.where("creator_id")
    column = FLOW_BY[by]
    periods: list[tuple[int, date, date]] = [(0, filters.start, filters.end)]
    comparison = filters.comparison_period
    if comparison is not None:
        periods.append((1, comparison[0], comparison[1]))
    parts, params = [], []
    for s, lo, hi in periods:
        # The series number is a literal of this loop, never input. Each part is bounded by its
        # own days, so DuckDB reads only their row groups of the day-sorted table; rows are
        # summed per group, day and currency first, then converted.
        groups = (
            f"SELECT {s} AS s, f.{column} AS k, {_NATIVE_SUMS}, "
            "bool_and(f.stream = 'subscription') AS all_subscription, "
            "bool_and(f.stream = 'ad') AS all_ad "
            f"FROM dv_revenue AS f WHERE f.day BETWEEN ? AND ? AND {dims_sql} AND {scope_sql} "
            "GROUP BY ALL"
        )
        part, part_params = _converted(currency, groups, [lo, hi, *dims_params, *scope_params])
        parts.append(part)
        params += part_params
    name_join, name_sql = "", "NULL::VARCHAR"
    if by == "creator":
        name_join, name_sql = "LEFT JOIN dim_creator n ON n.creator_id = g.k", "n.name"
    elif by == "title":
        name_join, name_sql = "LEFT JOIN dim_title n ON n.title_id = g.k", "n.name"
    sql = f"""
    WITH g AS (
        SELECT k,
            coalesce(sum(gross_rep) FILTER (WHERE s = 0), 0) AS gross,
            coalesce(sum(fees_rep) FILTER (WHERE s = 0), 0) AS fees,
            coalesce(sum(net_rep) FILTER (WHERE s = 0), 0) AS net,
            coalesce(sum(net_rep) FILTER (WHERE s = 1), 0) AS comparison_net,
            coalesce(sum(amounts) FILTER (WHERE s = 0), 0) AS amounts,
            coalesce(sum(amounts) FILTER (WHERE s = 0 AND net_rep IS NULL), 0) AS missing,
            bool_and(all_subscription) AS all_subscription,
            bool_and(all_ad) AS all_ad
        FROM ({" UNION ALL ".join(parts)}) AS u
        GROUP BY k
    )
    SELECT g.*, CAST(g.k AS VARCHAR) AS key, {name_sql} AS name FROM g {name_join}
    ORDER BY g.net DESC, g.k NULLS LAST
    """
    frame = cursor.execute(sql, params).df()
    if frame.empty:
        return _empty(FLOW_COLUMNS)
    frame["key"] = _keys_as_text(frame["key"].tolist())
    frame["label"] = [
        _flow_label(by, k, name, bool(sub), bool(ad))
        for k, name, sub, ad in zip(
            frame["key"].tolist(),
            frame["name"].tolist(),
            frame["all_subscription"].tolist(),
            frame["all_ad"].tolist(),
            strict=True,
        )
    ]
    if comparison is None:
        frame["comparison_net"] = math.nan
    frame["change_pct"] = _change_pct(frame["net"], frame["comparison_net"])
    return _typed(frame, FLOW_COLUMNS)


def _flow_label(by: str, key: Any, name: Any, all_subscription: bool, all_ad: bool) -> str:
    """What a group is called on the page (see ``revenue_flow``); ``key`` is text or None."""
    if key is None:
        if by in ("genre", "creator", "title") and all_subscription:
            return "Subscriptions (not attributed to titles)"
        if by in ("country", "plan") and all_ad:
            return "Advertising (no viewer)"
        return "(no title)" if by == "title" else "Unknown"
    if by == "stream":
        return STREAM_LABELS.get(str(key), str(key))
    if by in ("creator", "title"):
        if isinstance(name, str):
            return name
        return f"{'Creator' if by == 'creator' else 'Title'} {key} (not in the catalog)"
    return str(key)


# --- 2. net revenue over time, by stream ---------------------------------------------------------
def revenue_over_time(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
    grain: Literal["day", "week", "month"] = "day",
) -> pd.DataFrame:
    """Net revenue per bucket and stream over the period, with the comparison overlaid.

    One row per (bucket, stream), every bucket of the period and every stream (zeros where
    nothing was earned); a creator scope has no subscription revenue (it is not the creator's),
    so its rows are only pay-per-view and ad. Buckets are days, weeks (Monday to Sunday) or
    calendar months, clipped to the period (the metric catalog's ``_buckets``).

    Columns: ``bucket`` (first day, a date), ``bucket_end`` (last day), ``days`` (days in the
    bucket), ``partial`` (the bucket is cut by the period: a week or month not whole), ``stream``,
    ``net`` (in ``currency``, each amount at its day's rate), ``comparison`` (the comparison
    period's net for the same bucket, aligned as ``metrics.trend`` aligns it: the previous period
    moves the bucket's days back by the period's length, last year takes the same calendar
    dates; NaN without a comparison, or for a bucket that has no comparison days -- only
    29 February), ``missing`` (amounts of the bucket without a rate, left out of ``net``).
    Filters and scope as ``revenue_flow``.
    """
    currency = check_currency(currency)
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, not {grain!r}")
    if filters.active_dimensions - set(REVENUE_COLUMNS) or _nothing_in_scope(scope):
        return _empty(OVER_TIME_COLUMNS)
    streams = STREAMS if scope.is_all else tuple(s for s in STREAMS if s != "subscription")
    dims_sql, dims_params = filters.where(REVENUE_COLUMNS)
    scope_sql, scope_params = scope.where("creator_id")
    buckets = _buckets(filters.start, filters.end, grain)
    series_list = _series(filters)
    parts, params = [], []
    no_days: set[tuple[str, date]] = set()
    for i, series in enumerate(series_list):
        windows = _series_windows(series, buckets)
        data_days: list[date] = []
        bucket_of_day: list[date] = []
        for (b0, _b1), (a, b) in zip(buckets, windows, strict=True):
            if a > b:
                no_days.add((series.name, b0))
                continue
            for k in range((b - a).days + 1):
                data_days.append(a + timedelta(days=k))
                bucket_of_day.append(b0)
        if not data_days:
            continue
        # A small table maps each data day to its bucket, so every mapping (the period itself,
        # a shift, the calendar a year earlier) is the one the metric catalog uses.
        groups = (
            f"SELECT f.stream, {_NATIVE_SUMS} FROM dv_revenue AS f "
            f"WHERE f.day BETWEEN ? AND ? AND {dims_sql} AND {scope_sql} GROUP BY ALL"
        )
        converted, converted_params = _converted(
            currency, groups, [min(data_days), max(data_days), *dims_params, *scope_params]
        )
        parts.append(
            f"SELECT {i} AS s, m.bucket, c.stream, sum(c.net_rep) AS net, "
            "sum(c.amounts) FILTER (WHERE c.net_rep IS NULL) AS missing "
            f"FROM ({converted}) AS c "
            "JOIN (SELECT unnest(?::DATE[]) AS day, unnest(?::DATE[]) AS bucket) AS m "
            "ON m.day = c.day GROUP BY ALL"
        )
        params += [*converted_params, data_days, bucket_of_day]
    found: dict[tuple[int, date, str], tuple[float, int]] = {}
    if parts:
        for s, bucket, stream, net, missing in cursor.execute(
            " UNION ALL ".join(parts), params
        ).fetchall():
            found[(int(s), bucket, str(stream))] = (float(net or 0.0), int(missing or 0))
    has_comparison = len(series_list) > 1
    rows = []
    for b0, b1 in buckets:
        natural_start = _bucket_start(b0, grain)
        partial = b0 != natural_start or b1 != _bucket_end(natural_start, grain)
        for stream in streams:
            net, missing = found.get((0, b0, stream), (0.0, 0))
            if not has_comparison or ("comparison", b0) in no_days:
                comp = math.nan
            else:
                comp = found.get((1, b0, stream), (0.0, 0))[0]
            rows.append(
                {
                    "bucket": b0,
                    "bucket_end": b1,
                    "days": (b1 - b0).days + 1,
                    "partial": partial,
                    "stream": stream,
                    "net": net,
                    "comparison": comp,
                    "missing": missing,
                }
            )
    if not rows:
        return _empty(OVER_TIME_COLUMNS)
    return _typed(pd.DataFrame(rows), OVER_TIME_COLUMNS)


def _bucket_start(d: date, grain: str) -> date:
    if grain == "week":
        return d - timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    return d


def _bucket_end(start: date, grain: str) -> date:
    if grain == "week":
        return start + timedelta(days=6)
    if grain == "month":
        return _month_end(start)
    return start


def _month_end(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


# --- 3. MRR movement -----------------------------------------------------------------------------
def mrr_movement(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """How MRR moved in each calendar month of the period: opening + new + expansion -
    contraction - churned + fx = closing, exactly (in cents of ``currency``).

    MRR at a day = sum of ``monthly_price`` of the subscriptions active at the end of that day
    (started on or before it, not ended on or before it), each converted at that day's rate:
    the catalog's ``mrr``. Each month of the period is valued at two days: ``opening_day``,
    the day before the month starts (the end of the previous month), and ``closing_day``, the
    month's last day; both are clipped to the period, so a month cut by the period's start
    opens on the day before the period, and one cut by its end closes on the period's last
    day. The months chain (a month's closing is the next one's opening) and the last closing
    is the ``mrr`` KPI of the same period.

    Per viewer (a viewer's subscriptions together), between the two days:

    - ``new``: no active subscription at the opening day, at least one at the closing day: the
      viewer's closing MRR;
    - ``churned``: active at the opening day, none at the closing day: the opening MRR;
    - ``expansion`` / ``contraction``: active at both days, MRR at constant exchange rates rose
      / fell: the change of the viewer's prices valued at the opening day's rates (a currency
      the viewer holds only at the closing day, at the closing day's);
    - ``fx``: for the viewers active at both days, what the rate moves alone did: their
      prices at the closing day x (closing rate - the rate of the constant-rate change). 0 when
      everything is in the reporting currency; an unchanged subscription in another currency
      moves only here. It is computed as what remains, closing - opening - new - expansion +
      contraction + churned, which is exactly that (every other viewer's change is in new,
      churned, expansion or contraction).

    Missing rates: a viewer's paid subscriptions in one currency are left out of the month --
    opening, closing and movement -- when that currency has no rate on a day they are valued
    on (the opening day if they are active then, the closing day if active then), and counted
    in ``missing`` (subscriptions); whether the viewer was or is active is judged on what is
    left. Nothing is converted 1:1 and the identity holds; with no gaps ``opening`` and
    ``closing`` are the catalog's MRR on those days. Each figure is rounded to the cent of
    ``currency``; ``fx``, the remainder, takes the rounding's (a few cents at most), so the
    identity holds exactly on the cents.

    Columns: ``month`` (first day of the calendar month), ``opening_day``, ``closing_day``,
    ``opening``, ``new``, ``expansion``, ``contraction``, ``churned``, ``fx``, ``closing``
    (money in ``currency``), ``new_viewers``, ``churned_viewers``, ``missing``.

    Filters: the viewer's country and age band and the subscription's own plan (a viewer moving
    from basic to premium is churned from a basic-only view and new in a premium-only one);
    any other filter gives an empty frame, and so does any scope but everything (MRR belongs to
    no creator). Reads ``dv_subscription`` (plausible subscriptions only).

    How: only the viewers with a subscription starting or ending inside a month are looked at
    one by one for that month; everyone else holds the same subscriptions at both ends, so
    their part (opening and closing, so fx, and nothing else) is summed per currency from per-day
    histograms of starts and ends. A month then costs about its subscription events, not its
    subscribers.
    """
    currency = check_currency(currency)
    if not scope.is_all or filters.active_dimensions - {"country", "age_band", "plan"}:
        return _empty(MOVEMENT_COLUMNS)
    months: list[tuple[date, date, date]] = []  # (month, opening day, closing day)
    m = filters.start.replace(day=1)
    while m <= filters.end:
        lo, hi = max(m, filters.start), min(_month_end(m), filters.end)
        months.append((m, lo - timedelta(days=1), hi))
        m = _month_end(m) + timedelta(days=1)
    days = [months[0][1]] + [hi for _m, _lo, hi in months]
    factor_rows = _factor_rows(cursor, days, currency)
    dims_sql, dims_params = filters.where(SUB_COLUMNS)
    # Valuation day i: 0 is the first month's opening, i the closing of month i (1-based).
    # Month i's events are the starts and ends on days (day[i - 1], day[i]]: its calendar month.
    sql = f"""
    WITH d AS (SELECT unnest(?::INTEGER[]) AS i, unnest(?::DATE[]) AS day),
    mo AS (
        SELECT unnest(?::INTEGER[]) AS m, unnest(?::DATE[]) AS o, unnest(?::DATE[]) AS c
    ),
    fx AS (
        SELECT unnest(?::INTEGER[]) AS i, unnest(?::VARCHAR[]) AS currency,
            unnest(?::DOUBLE[]) AS factor
    ),
    s AS (
        -- The subscriptions active at some valuation day (an open one ends in 9999).
        SELECT s.viewer_key, s.currency, s.price_cents, s.start_day,
            coalesce(s.end_day, DATE '9999-12-31') AS end_day
        FROM dv_subscription s
        WHERE s.start_day <= ? AND coalesce(s.end_day, DATE '9999-12-31') > ? AND {dims_sql}
    ),
    h AS (
        SELECT currency, start_day AS day, sum(price_cents) AS cents,
            count(*) FILTER (WHERE price_cents > 0) AS paid
        FROM s GROUP BY ALL
        UNION ALL
        SELECT currency, end_day, -sum(price_cents), -count(*) FILTER (WHERE price_cents > 0)
        FROM s WHERE end_day <= ? GROUP BY ALL
    ),
    active AS (
        -- Per valuation day and currency: prices and paid subscriptions active at its end.
        SELECT d.i, h.currency, sum(h.cents) AS cents, sum(h.paid) AS paid
        FROM d JOIN h ON h.day <= d.day GROUP BY ALL
    ),
    ev AS (
        -- (viewer, month) with a start or an end in the month.
        SELECT viewer_key, CAST(datediff('month', ?, start_day) + 1 AS INTEGER) AS m
        FROM s WHERE start_day > ?
        UNION
        SELECT viewer_key, CAST(datediff('month', ?, end_day) + 1 AS INTEGER)
        FROM s WHERE end_day <= ?
    ),
    sub AS (
        -- Those viewers' subscriptions active at either end of the month, with the rates of
        -- both ends. A paid one without a rate on a day it is valued is left out (excluded).
        SELECT ev.m, s.viewer_key, s.currency, s.price_cents AS p, x.ao, x.ac,
            fo.factor AS fo, fc.factor AS fc,
            s.price_cents > 0 AND ((x.ao AND fo.factor IS NULL) OR (x.ac AND fc.factor IS NULL))
                AS excluded
        FROM ev
        JOIN mo ON mo.m = ev.m
        JOIN s ON s.viewer_key = ev.viewer_key
        CROSS JOIN LATERAL (
            SELECT s.start_day <= mo.o AND s.end_day > mo.o AS ao,
                s.start_day <= mo.c AND s.end_day > mo.c AS ac
        ) AS x
        LEFT JOIN fx fo ON fo.i = ev.m - 1 AND fo.currency = s.currency
        LEFT JOIN fx fc ON fc.i = ev.m AND fc.currency = s.currency
        WHERE x.ao OR x.ac
    ),
    viewer AS (
        SELECT m, viewer_key,
            bool_or(ao AND NOT excluded) AS was_active,
            bool_or(ac AND NOT excluded) AS is_active,
            sum(CASE WHEN excluded OR NOT ao OR p = 0 THEN 0 ELSE p * fo END) AS opening,
            sum(CASE WHEN excluded OR NOT ac OR p = 0 THEN 0 ELSE p * fc END) AS closing,
            -- at constant rates: the opening day's, else (not held then) the closing day's
            sum(CASE WHEN excluded OR ao = ac OR p = 0 THEN 0
                WHEN ac THEN p * coalesce(fo, fc) ELSE -p * fo END) AS delta,
            count(*) FILTER (WHERE excluded) AS missing
        FROM sub GROUP BY m, viewer_key
    ),
    moved AS (
        SELECT m,
            sum(opening) AS opening,
            sum(closing) FILTER (WHERE NOT was_active) AS new,
            sum(greatest(delta, 0)) FILTER (WHERE was_active AND is_active) AS expansion,
            sum(greatest(-delta, 0)) FILTER (WHERE was_active AND is_active) AS contraction,
            sum(opening) FILTER (WHERE NOT is_active) AS churned,
            sum(closing) AS closing,
            count(*) FILTER (WHERE is_active AND NOT was_active) AS new_viewers,
            count(*) FILTER (WHERE was_active AND NOT is_active) AS churned_viewers,
            sum(missing) AS missing
        FROM viewer GROUP BY m
    ),
    held AS (
        -- Everyone else: the same subscriptions at both ends (active at the opening day,
        -- less the changed viewers' lines), per currency.
        SELECT mo.m, a.currency, a.cents - coalesce(x.cents, 0) AS cents,
            a.paid - coalesce(x.paid, 0) AS paid, fo.factor AS fo, fc.factor AS fc
        FROM mo
        JOIN active a ON a.i = mo.m - 1
        LEFT JOIN (
            SELECT m, currency, sum(p) AS cents, count(*) FILTER (WHERE p > 0) AS paid
            FROM sub WHERE ao GROUP BY ALL
        ) AS x ON x.m = mo.m AND x.currency = a.currency
        LEFT JOIN fx fo ON fo.i = mo.m - 1 AND fo.currency = a.currency
        LEFT JOIN fx fc ON fc.i = mo.m AND fc.currency = a.currency
    ),
    kept AS (
        SELECT m,
            sum(cents * fo) FILTER (WHERE cents <> 0 AND fo IS NOT NULL AND fc IS NOT NULL)
                AS opening,
            sum(cents * fc) FILTER (WHERE cents <> 0 AND fo IS NOT NULL AND fc IS NOT NULL)
                AS closing,
            sum(paid) FILTER (WHERE cents <> 0 AND (fo IS NULL OR fc IS NULL)) AS missing
        FROM held GROUP BY m
    )
    SELECT mo.m,
        coalesce(k.opening, 0) + coalesce(v.opening, 0),
        coalesce(v.new, 0),
        coalesce(v.expansion, 0),
        coalesce(v.contraction, 0),
        coalesce(v.churned, 0),
        coalesce(k.closing, 0) + coalesce(v.closing, 0),
        coalesce(v.new_viewers, 0),
        coalesce(v.churned_viewers, 0),
        coalesce(k.missing, 0) + coalesce(v.missing, 0)
    FROM mo LEFT JOIN kept k ON k.m = mo.m LEFT JOIN moved v ON v.m = mo.m
    """
    first_month = months[0][0]
    params = [
        list(range(len(days))),
        days,
        list(range(1, len(months) + 1)),
        [o for _m, o, _c in months],
        [c for _m, _o, c in months],
        [r[0] for r in factor_rows],
        [r[1] for r in factor_rows],
        [r[2] for r in factor_rows],
        days[-1],
        days[0],
        *dims_params,
        days[-1],
        first_month,
        days[0],
        first_month,
        days[-1],
    ]
    found = {int(row[0]): row[1:] for row in cursor.execute(sql, params).fetchall()}
    rows = []
    for j, (month, opening_day, closing_day) in enumerate(months, start=1):
        o, new, exp, con, churn, close, n_new, n_churn, missing = found[j]
        cents = {
            k: round(float(v))
            for k, v in (
                ("opening", o),
                ("new", new),
                ("expansion", exp),
                ("contraction", con),
                ("churned", churn),
                ("closing", close),
            )
        }
        cents["fx"] = (
            cents["closing"]
            - cents["opening"]
            - cents["new"]
            - cents["expansion"]
            + cents["contraction"]
            + cents["churned"]
        )
        rows.append(
            {
                "month": month,
                "opening_day": opening_day,
                "closing_day": closing_day,
                **{k: v / 100 for k, v in cents.items()},
                "new_viewers": int(n_new),
                "churned_viewers": int(n_churn),
                "missing": int(missing),
            }
        )
    return _typed(pd.DataFrame(rows), MOVEMENT_COLUMNS)


def _factor_rows(
    cursor: duckdb.DuckDBPyConnection, days: Sequence[date], currency: str
) -> list[tuple[int, str, float | None]]:
    """(index of the day in ``days``, currency, value of one unit in ``currency`` that day;
    None without a rate) for every currency that has a rate on one of the days, USD and the
    reporting currency (``money.rate_factors``: the catalog's rule). A currency not listed has
    no rate: its amounts are left out, never converted 1:1."""
    listed = [
        str(c)
        for (c,) in cursor.execute(
            "SELECT DISTINCT currency FROM dv_rate_day WHERE day IN (SELECT unnest(?::DATE[]))",
            [list(days)],
        ).fetchall()
    ]
    codes = sorted({*listed, BASE_CURRENCY, currency})
    factors = rate_factors(cursor, days, codes, currency)
    out: list[tuple[int, str, float | None]] = []
    for i, day in enumerate(days):
        for code in codes:
            value = factors[(day, code)]
            out.append((i, code, None if math.isnan(value) else float(value)))
    return out


# --- 4. plan economics ---------------------------------------------------------------------------
def plan_economics(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
    by: Literal["plan", "acquisition_channel"] = "plan",
) -> pd.DataFrame:
    """Subscribers, MRR, ARPU, churn and LTV per plan or acquisition channel, period [a, b].

    ``by``: ``plan`` (the subscription's own plan) or ``acquisition_channel`` (the viewer's,
    dim_viewer). Counts are of subscriptions, as in the catalog (a viewer holding two at once
    counts twice). One row per group with a subscription active or at risk in the period,
    sorted by MRR (descending, then key). Columns:

    - ``key`` (the group's value; None when unknown), ``label`` (the value; "Unknown");
    - ``subscribers``: subscriptions active at the end of b;
    - ``paying``: of those, the ones with a price above 0 and an exchange rate on b;
    - ``mrr``: sum of their monthly prices at b's rates, in ``currency`` (the catalog's MRR);
    - ``arpu``: mrr / paying (the catalog's ARPU; NaN with none);
    - ``active_at_start`` (active at the end of a - 1), ``started`` (started in [a, b]),
      ``cancelled`` (ended in [a, b]);
    - ``resubscribed``: cancellations of the period after which the same viewer subscribed
      again (a subscription, on any plan, starting on or after the cancellation day and by b)
      -- a viewer who had ended and starts again within the period, or changed plan by
      cancelling and subscribing again. Each cancellation counts at most once and in the group
      of the cancelled subscription, so resubscribed <= cancelled;
    - ``gross_churn``: cancelled / (active_at_start + started), the catalog's definition: a
      cancellation of a subscription started in the period is on both sides, so it is within
      [0, 1];
    - ``net_churn``: (cancelled - resubscribed) / (active_at_start + started), within
      [0, gross_churn];
    - ``monthly_churn``: gross churn over a 30-day month. When the period is one whole calendar
      month it is gross churn itself; otherwise the period's rate compounded to 30 days at a
      constant daily rate, 1 - (1 - gross_churn) ** (30 / days), so it stays within [0, 1];
    - ``ltv``: arpu / monthly_churn (expected revenue of a subscription over its life at
      today's price); NaN when monthly churn is 0 or unknown, never inf;
    - ``missing``: paying subscriptions active at b whose currency has no rate on b, left out
      of mrr, paying and ARPU (never converted 1:1).

    Filters: the viewer's country and age band and the subscription's plan; any other filter
    gives an empty frame, and so does any scope but everything (subscriptions belong to no
    creator). Reads ``dv_subscription`` (plausible subscriptions only).
    """
    currency = check_currency(currency)
    _check_by(by, PLAN_BY)
    if not scope.is_all or filters.active_dimensions - {"country", "age_band", "plan"}:
        return _empty(PLAN_COLUMNS)
    a, b = filters.start, filters.end
    dims_sql, dims_params = filters.where(SUB_COLUMNS)
    join = "LEFT JOIN dim_viewer w ON w.viewer_key = s.viewer_key" if by != "plan" else ""
    sql = f"""
    WITH base AS (
        -- Every subscription that matters for [a, b]: started by b, not ended before a.
        SELECT s.rowid AS rid, {PLAN_BY[by]} AS k, s.viewer_key, s.currency, s.price_cents,
            s.start_day, s.end_day,
            s.start_day < ? AS at_start,
            s.start_day >= ? AS started,
            coalesce(s.end_day <= ?, FALSE) AS cancelled,
            coalesce(s.end_day > ?, TRUE) AS at_end
        FROM dv_subscription s {join}
        WHERE s.start_day <= ? AND coalesce(s.end_day >= ?, TRUE) AND {dims_sql}
    ),
    back AS (
        -- Cancellations followed, within the period, by a new subscription of the viewer.
        SELECT DISTINCT c.rid
        FROM base c
        JOIN (SELECT rowid AS rid, viewer_key, start_day FROM dv_subscription
              WHERE start_day BETWEEN ? AND ?) AS r
          ON r.viewer_key = c.viewer_key AND r.start_day >= c.end_day AND r.rid <> c.rid
        WHERE c.cancelled
    ),
    counts AS (
        SELECT base.k, NULL::VARCHAR AS currency,
            count(*) FILTER (WHERE at_end) AS subscribers,
            count(*) FILTER (WHERE at_start) AS active_at_start,
            count(*) FILTER (WHERE started) AS started,
            count(*) FILTER (WHERE cancelled) AS cancelled,
            count(back.rid) AS resubscribed,
            0 AS cents, 0 AS paying
        FROM base LEFT JOIN back ON back.rid = base.rid GROUP BY base.k
    ),
    money AS (
        SELECT k, currency, 0, 0, 0, 0, 0,
            sum(price_cents) AS cents, count(*) FILTER (WHERE price_cents > 0) AS paying
        FROM base WHERE at_end GROUP BY k, currency
    )
    SELECT * FROM counts UNION ALL SELECT * FROM money
    """
    params = [a, a, b, b, b, a, *dims_params, a, b]
    rows = cursor.execute(sql, params).fetchall()
    if not rows:
        return _empty(PLAN_COLUMNS)
    currencies = {str(r[1]) for r in rows if r[1] is not None}
    factors = rate_factors(cursor, [b], currencies, currency) if currencies else {}
    groups: dict[Any, dict[str, float]] = {}
    for k, cur, subscribers, at_start, started, cancelled, resub, cents, paying in rows:
        g = groups.setdefault(
            k,
            dict.fromkeys(
                (
                    "subscribers",
                    "active_at_start",
                    "started",
                    "cancelled",
                    "resubscribed",
                    "cents",
                    "paying",
                    "missing",
                ),
                0.0,
            ),
        )
        if cur is None:
            g["subscribers"] += subscribers
            g["active_at_start"] += at_start
            g["started"] += started
            g["cancelled"] += cancelled
            g["resubscribed"] += resub
            continue
        factor = factors.get((b, str(cur)), math.nan)
        if math.isnan(factor):
            g["missing"] += paying
            continue
        g["cents"] += float(cents) * factor
        g["paying"] += paying
    keys = sorted(groups, key=lambda k: (k is None, str(k)))
    frame = pd.DataFrame(
        {
            "key": _keys_as_text(keys),
            "label": ["Unknown" if _is_null(k) else str(k) for k in keys],
            **{
                c: np.asarray([groups[k][c] for k in keys], dtype=np.float64)
                for c in (
                    "subscribers",
                    "paying",
                    "active_at_start",
                    "started",
                    "cancelled",
                    "resubscribed",
                    "missing",
                )
            },
            "mrr": np.asarray([groups[k]["cents"] / 100 for k in keys], dtype=np.float64),
        }
    )
    at_risk = frame["active_at_start"].to_numpy() + frame["started"].to_numpy()
    frame["arpu"] = _ratio(frame["mrr"], frame["paying"])
    frame["gross_churn"] = _ratio(frame["cancelled"], at_risk)
    frame["net_churn"] = _ratio(frame["cancelled"] - frame["resubscribed"], at_risk)
    frame["monthly_churn"] = _monthly(frame["gross_churn"].to_numpy(), a, b)
    monthly = frame["monthly_churn"].to_numpy()
    frame["ltv"] = np.where(monthly > 0, _ratio(frame["arpu"], monthly), math.nan)
    frame = frame.sort_values(["mrr", "label"], ascending=[False, True], kind="stable")
    return _typed(frame, PLAN_COLUMNS)


def _monthly(churn: np.ndarray, start: date, end: date) -> np.ndarray:
    """A period's churn rate as a 30-day month's (itself for one whole calendar month)."""
    churn = np.asarray(churn, dtype=np.float64)
    if start.day == 1 and end == _month_end(start):
        return churn
    days = (end - start).days + 1
    with np.errstate(invalid="ignore"):
        return 1.0 - np.power(1.0 - np.clip(churn, 0.0, 1.0), 30.0 / days)


# --- 5. ad performance ---------------------------------------------------------------------------
def ad_performance(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
    by: Literal["title", "campaign"] = "title",
) -> pd.DataFrame:
    """Ad delivery per title or campaign: impressions, clicks, revenue, CPM and CTR.

    Read from ``fact_ad`` (per day, title and campaign) joined to the title (name, genre, kind,
    creator). One row per group with delivery in the period or the comparison period, sorted by
    ad revenue (descending, then key). Columns: ``key`` (title id in decimal, or the campaign),
    ``label`` (the title's name as stored, never escaped, "Title N (not in the catalog)" when
    dim_title lacks it; the campaign), ``impressions``, ``clicks``, ``ad_revenue`` (in
    ``currency``: the USD amounts converted at each day's rate), ``cpm`` (ad_revenue /
    impressions x 1000, over the impressions of the days whose revenue has a rate: the
    catalog's CPM), ``ctr`` (clicks / impressions, within [0, 1] when the source is sane),
    ``comparison_ad_revenue`` (the comparison period's; 0 when the group had none, NaN without
    a comparison period), ``change_pct``, ``missing`` (delivery rows without a rate to
    ``currency``, left out of ad_revenue; always 0 in USD). Fill rate cannot be computed
    (``FILL_RATE_NOTE``).

    Filters: the title's genre, kind and creator (others: empty frame). Scope: the titles of
    the creators in it.
    """
    currency = check_currency(currency)
    _check_by(by, AD_BY)
    if filters.active_dimensions - {"genre", "kind", "creator"} or _nothing_in_scope(scope):
        return _empty(AD_COLUMNS)
    relation, relation_params = _ad_relation(currency)
    dims_sql, dims_params = filters.where(
        {"genre": "a.genre", "kind": "a.kind", "creator": "a.creator_id"}
    )
    scope_sql, scope_params = scope.where("a.creator_id")
    column = "title_id" if by == "title" else "campaign"
    periods: list[tuple[int, date, date]] = [(0, filters.start, filters.end)]
    comparison = filters.comparison_period
    if comparison is not None:
        periods.append((1, comparison[0], comparison[1]))
    parts, params = [], []
    for s, lo, hi in periods:
        parts.append(
            f"SELECT {s} AS s, a.{column} AS k, a.impressions, a.clicks, a.ad_rep "
            f"FROM {relation} AS a WHERE a.day BETWEEN ? AND ? AND {dims_sql} AND {scope_sql}"
        )
        params += [*relation_params, lo, hi, *dims_params, *scope_params]
    name_join, name_sql = "", "NULL::VARCHAR"
    if by == "title":
        name_join, name_sql = "LEFT JOIN dim_title n ON n.title_id = g.k", "n.name"
    sql = f"""
    WITH g AS (
        SELECT k,
            coalesce(sum(impressions) FILTER (WHERE s = 0), 0) AS impressions,
            coalesce(sum(clicks) FILTER (WHERE s = 0), 0) AS clicks,
            coalesce(sum(ad_rep) FILTER (WHERE s = 0), 0) AS ad_revenue,
            coalesce(sum(impressions) FILTER (WHERE s = 0 AND ad_rep IS NOT NULL), 0)
                AS priced_impressions,
            coalesce(sum(ad_rep) FILTER (WHERE s = 1), 0) AS comparison_ad_revenue,
            count(*) FILTER (WHERE s = 0 AND ad_rep IS NULL) AS missing
        FROM ({" UNION ALL ".join(parts)}) AS u
        GROUP BY k
    )
    SELECT g.*, CAST(g.k AS VARCHAR) AS key, {name_sql} AS name FROM g {name_join}
    ORDER BY g.ad_revenue DESC, g.k NULLS LAST
    """
    frame = cursor.execute(sql, params).df()
    if frame.empty:
        return _empty(AD_COLUMNS)
    frame["key"] = _keys_as_text(frame["key"].tolist())
    keys = frame["key"].tolist()
    if by == "title":
        frame["label"] = [
            name
            if isinstance(name, str)
            else "(no title)"
            if k is None
            else f"Title {k} (not in the catalog)"
            for k, name in zip(keys, frame["name"].tolist(), strict=True)
        ]
    else:
        frame["label"] = ["Unknown" if k is None else str(k) for k in keys]
    frame["cpm"] = _ratio(
        frame["ad_revenue"].to_numpy(dtype=np.float64) * 1000,
        frame["priced_impressions"].to_numpy(dtype=np.float64),
    )
    frame["ctr"] = _ratio(frame["clicks"], frame["impressions"])
    if comparison is None:
        frame["comparison_ad_revenue"] = math.nan
    frame["change_pct"] = _change_pct(frame["ad_revenue"], frame["comparison_ad_revenue"])
    return _typed(frame, AD_COLUMNS)
