"""Per-title numbers for the underperformance model (models/underperformance.py).

The period of the filters and its *baseline*, the period of equal length directly before it,
whatever comparison the user picked: the model compares each title with its own recent past and
with peers, so the baseline must sit right before the period (a year-earlier baseline would
compare a title with itself before its release). Dimension filters and the scope apply.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import pandas as pd

from data.queries.filters import Filters, Scope
from data.queries.view_filters import dv_view_where


def baseline_period(filters: Filters) -> tuple[date, date]:
    """The equal-length period directly before the filters' period."""
    return filters.start - timedelta(days=filters.days), filters.start - timedelta(days=1)


def title_period_stats(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, scope: Scope
) -> dict[str, Any]:
    """Per title and per (title, country): starts, views, completed in the period and baseline.

    Returns ``{"titles", "countries", "period", "baseline"}``. ``titles`` columns: title_id,
    name, genre, release_date, then ``<measure>_cur`` and ``<measure>_base`` for starts, views
    and completed (zero where none); only titles released by the end of the period with a start
    in either period. ``countries``: title_id, country, starts_cur, starts_base.
    """
    base_lo, base_hi = baseline_period(filters)
    where, params = dv_view_where(filters, scope, "d.")
    series = "CASE WHEN d.day >= ? THEN 'cur' ELSE 'base' END"
    titles = cursor.execute(
        f"SELECT d.title_id, {series} AS series, count(*) AS starts, "
        "coalesce(sum(d.views), 0) AS views, count(*) FILTER (WHERE d.completed) AS completed "
        "FROM dv_view d WHERE d.day BETWEEN ? AND ? "
        f"AND {where} GROUP BY ALL",
        [filters.start, base_lo, filters.end, *params],
    ).df()
    countries = cursor.execute(
        f"SELECT d.title_id, d.country, {series} AS series, count(*) AS starts "
        "FROM dv_view d WHERE d.day BETWEEN ? AND ? "
        f"AND {where} GROUP BY ALL",
        [filters.start, base_lo, filters.end, *params],
    ).df()
    wide = _wide(titles, ["title_id"], ["starts", "views", "completed"])
    if not wide.empty:
        ids = [int(t) for t in wide["title_id"]]
        info = cursor.execute(
            "SELECT title_id, name, genre, release_date FROM dim_title "
            "WHERE release_date <= ? AND title_id IN (SELECT unnest(?::BIGINT[]))",
            [filters.end, ids],
        ).df()
        wide = info.astype({"title_id": "int64"}).merge(wide, on="title_id", how="inner")
    else:
        wide = pd.DataFrame(
            columns=["title_id", "name", "genre", "release_date"]
            + [f"{m}_{s}" for m in ("starts", "views", "completed") for s in ("cur", "base")]
        )
    return {
        "titles": wide,
        "countries": _wide(countries, ["title_id", "country"], ["starts"]),
        "period": (filters.start, filters.end),
        "baseline": (base_lo, base_hi),
    }


def _wide(frame: pd.DataFrame, keys: list[str], measures: list[str]) -> pd.DataFrame:
    columns = keys + [f"{m}_{s}" for m in measures for s in ("cur", "base")]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    wide = frame.pivot_table(index=keys, columns="series", values=measures, aggfunc="sum")
    wide.columns = [f"{m}_{s}" for m, s in wide.columns]
    for column in columns[len(keys) :]:
        if column not in wide:
            wide[column] = 0
    wide = wide.fillna(0).reset_index()
    wide["title_id"] = wide["title_id"].astype("int64")
    return wide[columns]
