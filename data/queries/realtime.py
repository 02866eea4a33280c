"""The last hours by the hour: how today is going so far, against the same hours before.

Dashboards otherwise work in whole UTC days (dv_view keeps the day, not the time). These queries
read the view sessions of a few days straight from ``fact_view`` with the same plausibility rules
as the derived tables, so an hour here adds up to the day the other charts show.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

import duckdb
import pandas as pd

from data.extract.derived import extract_as_of
from data.extract.plausibility import plausible_sql
from data.queries.filters import Filters, Scope
from data.queries.view_filters import fact_view_source

HOURLY_METRICS: dict[str, str] = {
    "starts": "Starts",
    "watch_hours": "Watch hours",
    "viewers": "Viewers",
}
# The comparison each period choice means for hours: the same hours a day (or a year) earlier.
HOUR_SHIFTS: dict[str, timedelta | None] = {
    "previous_period": timedelta(days=1),
    "same_period_last_year": timedelta(days=364),  # the same weekday, 52 weeks earlier
    "none": None,
}
HOUR_SHIFT_LABELS: dict[str, str] = {
    "previous_period": "Same hours the day before",
    "same_period_last_year": "Same hours 52 weeks earlier",
}


def latest_view_at(cursor: duckdb.DuckDBPyConnection) -> datetime | None:
    """When the newest plausible view session started (UTC, naive): how far the data reaches."""
    sql, params = plausible_sql("fact_view", extract_as_of(cursor), "v")
    row = cursor.execute(
        f"SELECT max(v.started_at) FROM fact_view v WHERE {sql}", params
    ).fetchone()
    return None if row is None else row[0]


def _hour_totals(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    start: datetime,
    end: datetime,
) -> pd.DataFrame:
    source, where, params = fact_view_source(filters, scope, extract_as_of(cursor))
    frame = cursor.execute(
        f"""
        SELECT date_trunc('hour', v.started_at) AS hour,
               count(*) AS starts,
               sum(v.watch_seconds) / 3600.0 AS watch_hours,
               count(DISTINCT v.viewer_key) AS viewers
        FROM {source}
        WHERE v.started_at >= ? AND v.started_at < ? AND {where}
        GROUP BY 1
        """,
        [start, end, *params],
    ).df()
    return frame.set_index("hour") if not frame.empty else frame


def hourly(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    hours: int = 48,
    metric: str = "starts",
) -> pd.DataFrame:
    """One row per UTC hour over the ``hours`` up to the newest data, oldest first.

    Columns: hour (start, naive UTC), value, comparison (the same hours a day earlier for the
    previous-period choice, 52 weeks earlier for last year; NaN without one), partial (True
    for the newest hour when the data stops inside it: its count is not a whole hour's),
    minutes (how many minutes of the hour the data covers). Empty without data. The period's
    dates are ignored (these are always the latest hours); dimension filters and the scope
    apply as everywhere.
    """
    if metric not in HOURLY_METRICS:
        raise KeyError(f"unknown hourly metric {metric!r}")
    if not 1 <= hours <= 24 * 14:
        raise ValueError("hours must be between 1 and 336")
    newest = latest_view_at(cursor)
    if newest is None:
        return pd.DataFrame(columns=["hour", "value", "comparison", "partial", "minutes"])
    last_hour = newest.replace(minute=0, second=0, microsecond=0)
    first_hour = last_hour - timedelta(hours=hours - 1)
    end = last_hour + timedelta(hours=1)
    now = _hour_totals(cursor, filters, scope, first_hour, end)
    shift = HOUR_SHIFTS.get(filters.comparison)
    # The comparison stops at the same minute the data does, so a partial newest hour is set
    # against the same part of its counterpart, never against a whole hour.
    stop = newest + timedelta(microseconds=1)
    then = _hour_totals(cursor, filters, scope, first_hour - shift, stop - shift) if shift else None
    index = pd.date_range(first_hour, last_hour, freq="h")
    covered = (newest - last_hour).total_seconds() / 60
    out = pd.DataFrame({"hour": index})
    out["value"] = (
        now[metric].reindex(index).fillna(0).to_numpy(dtype="float64") if len(now) else 0.0
    )
    if then is not None:
        past = index - shift
        out["comparison"] = (
            then[metric].reindex(past).fillna(0).to_numpy(dtype="float64") if len(then) else 0.0
        )
    else:
        out["comparison"] = float("nan")
    out["minutes"] = 60
    # The newest hour is whole only when its last minute has data.
    out.loc[out.index[-1], "minutes"] = min(60, int(covered) + 1)
    out["partial"] = out["minutes"] < 60
    return out


def day_is_incomplete(day: date, newest: datetime | None) -> bool:
    """True when the data stops inside ``day`` (its last minute has no data yet)."""
    return newest is not None and newest.date() == day and newest.time() < time(23, 59)


def without_incomplete_day(filters: Filters, newest: datetime | None) -> Filters | None:
    """The filters with an incomplete last day left out (the period ends a day earlier), or
    None when the period's last day is complete or is its only day."""
    if not day_is_incomplete(filters.end, newest) or filters.start >= filters.end:
        return None
    return replace(filters, end=filters.end - timedelta(days=1))
