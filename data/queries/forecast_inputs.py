"""Inputs of the forecasts (models/forecasting.py) that the metric catalog does not give: a title's
own daily series, and premieres to use as events.

The platform's and a filter slice's daily series come from the metric catalog
(``data.queries.metrics.trend``, grain "day"), one definition per metric. A single title is not a
filter dimension, so its series is read here from ``dv_title_day`` (the derived per-title daily
sums of ``dv_view``: every country and device), with the same definitions: views are
runtime-normalised, watch hours are watch seconds / 3600, starts are sessions.

The creator scope applies (through ``dim_title``); the title filters (genre, kind, creator) pick
the premieres. Identifiers come from ``TITLE_METRICS`` only; every value is bound.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import pandas as pd

from data.queries.filters import Filters, Scope

# metric -> expression over dv_title_day (d): the catalog's definitions for one title.
TITLE_METRICS: dict[str, str] = {
    "views": "sum(d.views)",
    "starts": "sum(d.starts)",
    "watch_hours": "sum(d.watch_seconds) / 3600.0",
    "completed": "sum(d.completed)",
}
MAX_TITLES = 500
TITLE_DIMENSIONS = {"genre": "t.genre", "kind": "t.kind", "creator": "t.creator_id"}


def title_daily(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    title_ids: tuple[int, ...] = (),
    metric: str = "views",
) -> pd.DataFrame:
    """One row per (title, day) of the filters' period for each title the scope may see, zero on
    days without a start: title_id, day, value. At most ``MAX_TITLES`` titles; the dimension
    filters do not apply (a title is its own slice)."""
    if metric not in TITLE_METRICS:
        raise KeyError(f"unknown title metric {metric!r}")
    ids = sorted({int(t) for t in title_ids})[:MAX_TITLES]
    empty = pd.DataFrame(
        {
            "title_id": pd.Series(dtype="int64"),
            "day": pd.Series(dtype="object"),
            "value": pd.Series(dtype="float64"),
        }
    )
    if not ids:
        return empty
    scope_sql, scope_params = scope.where("t.creator_id")
    marks = ", ".join("?" * len(ids))
    visible = cursor.execute(
        f"SELECT t.title_id FROM dim_title t WHERE t.title_id IN ({marks}) AND {scope_sql}",
        [*ids, *scope_params],
    ).fetchall()
    ids = sorted(int(r[0]) for r in visible)
    if not ids:
        return empty
    marks = ", ".join("?" * len(ids))
    rows = cursor.execute(
        f"SELECT d.title_id, d.day, {TITLE_METRICS[metric]} AS value FROM dv_title_day d "
        f"WHERE d.title_id IN ({marks}) AND d.day BETWEEN ? AND ? GROUP BY ALL",
        [*ids, filters.start, filters.end],
    ).df()
    days = pd.date_range(filters.start, filters.end, freq="D").date
    grid = pd.MultiIndex.from_product([ids, days], names=["title_id", "day"])
    rows["title_id"] = rows["title_id"].astype("int64")
    rows["day"] = pd.to_datetime(rows["day"]).dt.date
    out = rows.set_index(["title_id", "day"])["value"].astype("float64").reindex(grid)
    return out.fillna(0.0).reset_index()


def premieres(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    ahead_days: int = 365,
) -> pd.DataFrame:
    """Releases from the filters' start to ``ahead_days`` after its end (titles announced in the
    catalog but not out yet included) that match the title filters (genre, kind, creator) and the
    scope: movies, live events and first episodes of a season. Columns: title_id, name, kind,
    genre, release_date; by date."""
    dims_sql, params = filters.where(
        TITLE_DIMENSIONS, skip=filters.active_dimensions - set(TITLE_DIMENSIONS)
    )
    scope_sql, scope_params = scope.where("t.creator_id")
    frame = cursor.execute(
        "SELECT t.title_id, t.name, t.kind, t.genre, t.release_date FROM dim_title t "
        "WHERE t.release_date BETWEEN ? AND ? AND (t.kind <> 'episode' OR t.episode = 1) "
        f"AND {dims_sql} AND {scope_sql} ORDER BY t.release_date, t.title_id",
        [filters.start, filters.end + timedelta(days=int(ahead_days)), *params, *scope_params],
    ).df()
    frame["title_id"] = frame["title_id"].astype("int64")
    frame["release_date"] = pd.to_datetime(frame["release_date"]).dt.date
    return frame


__all__ = ["MAX_TITLES", "TITLE_METRICS", "premieres", "title_daily"]
