"""Money in one reporting currency: conversion at the rate of each amount's day, and the gaps.

Every amount is stored in its own currency (``fact_revenue.currency``,
``fact_subscription.currency``; money on rows without a currency column -- ad delivery revenue,
a title's licensing cost -- is in the base currency, USD). Rates are dated, against USD
(``fact_exchange_rate``); ``dv_rate_day`` (data/extract/derived.py) holds, for every currency
and day, the latest rate dated on that day or up to ``RATE_MAX_AGE_DAYS`` days before.

The rules (METRICS.md):

- a flow amount (a charge, a purchase, ad revenue) is converted at the rate of the UTC day it
  occurred on; a point-in-time amount (MRR: the prices of the subscriptions active at the end of
  a period) at the rate of the day it is valued on, the period's last day;
- an amount already in the reporting currency is never converted; otherwise
  ``amount x rate_to_usd(currency) / rate_to_usd(reporting)`` on that day (USD's rate is 1);
- an amount with no rate on its day (for its own currency or, when the reporting currency is not
  USD, for the reporting currency) is left out of converted totals and counted: a gap is shown,
  never a 1:1 conversion.

``revenue_by_currency`` is the finance view of that: net revenue per original currency, the
converted total and the amounts left out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import pandas as pd

from data.extract.derived import RATE_MAX_AGE_DAYS
from data.queries.filters import Filters, Scope
from data.schema import BASE_CURRENCY

__all__ = [
    "BASE_CURRENCY",
    "RATE_MAX_AGE_DAYS",
    "REVENUE_COLUMNS",
    "ad_gaps",
    "ad_source",
    "check_currency",
    "gap_notes",
    "minor_unit",
    "missing_by_currency",
    "rate_factors",
    "revenue_by_currency",
    "revenue_gaps",
    "revenue_source",
    "round_money",
]

_CODE = re.compile(r"[A-Z]{3}")
# dimension -> column of dv_revenue (the revenue family's meaning: the viewer's own country,
# plan and age band; the title's genre and kind; the row's own creator).
REVENUE_COLUMNS: dict[str, str] = {
    "country": "country",
    "genre": "genre",
    "kind": "kind",
    "creator": "creator_id",
    "plan": "plan",
    "age_band": "age_band",
}


def check_currency(code: str) -> str:
    """An ISO 4217 code (three capital letters), or ``ValueError``."""
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValueError(f"A currency is three capital letters (ISO 4217, e.g. USD), not {code!r}.")
    return code


# ISO 4217 currencies without minor units among those a platform bills or pays in; the rest
# have cents.
_NO_MINOR_UNIT = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "UGX", "PYG"})


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency``: 0.01, or 1 for JPY and the like."""
    return Decimal(1) if check_currency(currency) in _NO_MINOR_UNIT else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half up to the currency's minor unit."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)


def revenue_source(currency: str) -> tuple[str, list[Any]]:
    """dv_revenue with ``net_rep``: each net amount in ``currency`` at its day's rate (NULL
    without one). A relation to read ``FROM``, and its parameters."""
    currency = check_currency(currency)
    if currency == BASE_CURRENCY:
        # net_usd already is the converted amount (and the amount itself for USD rows).
        return "(SELECT *, net_usd AS net_rep FROM dv_revenue)", []
    return (
        "(SELECT r.*, CASE WHEN r.currency = ? THEN CAST(r.net AS DOUBLE) "
        "ELSE r.net_usd / x.rate_to_usd END AS net_rep FROM dv_revenue r "
        "LEFT JOIN dv_rate_day x ON x.day = r.day AND x.currency = ?)",
        [currency, currency],
    )


def ad_source(currency: str) -> tuple[str, list[Any]]:
    """dv_ad with ``ad_rep``: ad revenue (USD) in ``currency`` at its day's rate (NULL without
    one), and its parameters."""
    currency = check_currency(currency)
    if currency == BASE_CURRENCY:
        return "(SELECT *, ad_revenue AS ad_rep FROM dv_ad)", []
    return (
        "(SELECT a.*, CAST(a.ad_revenue AS DOUBLE) / x.rate_to_usd AS ad_rep FROM dv_ad a "
        "LEFT JOIN dv_rate_day x ON x.day = a.day AND x.currency = ?)",
        [currency],
    )


def rate_factors(
    cursor: duckdb.DuckDBPyConnection,
    days: Iterable[date],
    currencies: Iterable[str],
    reporting: str,
) -> dict[tuple[date, str], float]:
    """What one unit of each currency is worth in ``reporting`` on each day (NaN: no rate).

    Keys are every (day, currency) asked for; the currency's own factor is 1.
    """
    reporting = check_currency(reporting)
    days = sorted(set(days))
    wanted = sorted(set(currencies) | {reporting})
    rates: dict[tuple[date, str], float] = {}
    if days and any(c != BASE_CURRENCY for c in wanted):
        rows = cursor.execute(
            "SELECT day, currency, rate_to_usd FROM dv_rate_day "
            "WHERE day IN (SELECT unnest(?::DATE[])) AND currency IN (SELECT unnest(?::VARCHAR[]))",
            [days, wanted],
        ).fetchall()
        rates = {(d, str(c)): float(r) for d, c, r in rows}

    def to_usd(day: date, currency: str) -> float:
        if currency == BASE_CURRENCY:
            return 1.0
        return rates.get((day, currency), math.nan)

    out: dict[tuple[date, str], float] = {}
    for day in days:
        for currency in set(currencies):
            out[(day, currency)] = (
                1.0 if currency == reporting else to_usd(day, currency) / to_usd(day, reporting)
            )
    return out


def gap_notes(missing: Mapping[str | None, int]) -> list[str]:
    """One sentence per currency with amounts left out for want of a rate, largest first:
    "3 amounts in JPY have no exchange rate and are not included." """
    out = []
    for code, n in sorted(missing.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        if not n:
            continue
        where = f"in {code}" if code is not None else "without a currency"
        many = n != 1
        out.append(
            f"{n:,} amount{'s' if many else ''} {where} {'have' if many else 'has'} no exchange "
            f"rate and {'are' if many else 'is'} not included."
        )
    return out


def revenue_gaps(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    currency: str = BASE_CURRENCY,
) -> dict[str, dict[str | None, int]]:
    """Revenue amounts of the period without a rate to ``currency``: stream -> currency ->
    count (the net revenue metrics' filters and scope)."""
    if filters.active_dimensions - set(REVENUE_COLUMNS):
        return {}
    source, source_params = revenue_source(currency)
    dims_sql, dims_params = filters.where(REVENUE_COLUMNS)
    scope_sql, scope_params = scope.where("creator_id")
    rows = cursor.execute(
        f"SELECT stream, currency, count(*) FROM {source} AS f WHERE day BETWEEN ? AND ? "
        f"AND net_rep IS NULL AND {dims_sql} AND {scope_sql} GROUP BY ALL",
        [*source_params, filters.start, filters.end, *dims_params, *scope_params],
    ).fetchall()
    out: dict[str, dict[str | None, int]] = {}
    for stream, code, n in rows:
        out.setdefault(str(stream), {})[code] = int(n)
    return out


def ad_gaps(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    currency: str = BASE_CURRENCY,
) -> dict[str | None, int]:
    """Ad delivery rows of the period (amounts in USD) without a rate to ``currency``."""
    columns = {"genre": "genre", "kind": "kind", "creator": "creator_id"}
    if check_currency(currency) == BASE_CURRENCY or filters.active_dimensions - set(columns):
        return {}
    source, source_params = ad_source(currency)
    dims_sql, dims_params = filters.where(columns)
    scope_sql, scope_params = scope.where("creator_id")
    (n,) = cursor.execute(
        f"SELECT count(*) FROM {source} AS f WHERE day BETWEEN ? AND ? AND ad_rep IS NULL "
        f"AND {dims_sql} AND {scope_sql}",
        [*source_params, filters.start, filters.end, *dims_params, *scope_params],
    ).fetchone()
    return {BASE_CURRENCY: int(n)} if n else {}


def revenue_by_currency(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    currency: str = BASE_CURRENCY,
) -> pd.DataFrame:
    """Net revenue of the period by original currency, and converted to ``currency``.

    One row per currency with revenue in the period (the filters and scope of the net revenue
    metric apply), sorted by the converted amount: ``currency``, ``amounts`` (revenue rows),
    ``net`` (in that currency), ``net_converted`` (in ``currency``, the amounts that have a
    rate), ``missing`` (amounts without a rate, left out of ``net_converted`` and of every
    converted total) and ``missing_net`` (their sum, in the original currency). Empty when a
    filter is on a dimension revenue cannot be split by (device).
    """
    columns = ["currency", "amounts", "net", "net_converted", "missing", "missing_net"]
    if filters.active_dimensions - set(REVENUE_COLUMNS):
        return pd.DataFrame(columns=columns)
    source, source_params = revenue_source(currency)
    dims_sql, dims_params = filters.where(REVENUE_COLUMNS)
    scope_sql, scope_params = scope.where("creator_id")
    frame = cursor.execute(
        "SELECT currency, count(*) AS amounts, sum(net) AS net, "
        "coalesce(sum(net_rep), 0) AS net_converted, "
        "count(*) FILTER (WHERE net_rep IS NULL) AS missing, "
        "coalesce(sum(net) FILTER (WHERE net_rep IS NULL), 0) AS missing_net "
        f"FROM {source} AS f WHERE day BETWEEN ? AND ? AND {dims_sql} AND {scope_sql} "
        "GROUP BY currency",
        [*source_params, filters.start, filters.end, *dims_params, *scope_params],
    ).df()
    if frame.empty:
        return pd.DataFrame(columns=columns)
    for col in ("net", "net_converted", "missing_net"):
        frame[col] = frame[col].astype("float64")
    for col in ("amounts", "missing"):
        frame[col] = frame[col].astype("int64")
    frame["currency"] = frame["currency"].astype(str)
    frame = frame.sort_values(["net_converted", "currency"], ascending=[False, True])
    return frame[columns].reset_index(drop=True)


def missing_by_currency(frame: pd.DataFrame) -> dict[str, int]:
    """{currency: amounts without a rate} from a ``revenue_by_currency`` frame."""
    if frame.empty:
        return {}
    return {str(c): int(n) for c, n in zip(frame["currency"], frame["missing"], strict=True) if n}
