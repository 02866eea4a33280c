"""Engagement queries: when people watch, how titles hold up week by week and minute by minute,
and how viewers interact (polls, Q&A, reactions).

Every function takes ``(cursor, filters, scope, ...)``, applies the dimension filters and the
creator scope (data/queries/view_filters.py) and returns plain pandas frames or dicts of them, so the
query layer can cache them. Definitions:

- *local time* is the session's start in the viewer's device time zone:
  ``started_at + tz_offset_min`` (fact_view); the period still selects sessions by UTC day, like
  every other number of the app, so the heatmap and the KPI cards count the same sessions;
- *views* are runtime-normalised (METRICS.md), *starts* are sessions;
- the *drop-off curve* is, for each whole percent p of the runtime, the share of the title's
  starts whose watch time reached p% (exact integer arithmetic, so the value at 90% equals the
  completion rate of the catalog);
- *poll participation* is the distinct viewers who answered a poll of the title in a week /
  the distinct viewers who started the title that week; *Q&A volume* counts questions;
  *sentiment* is the mean of reaction sentiments (-1 .. 1).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.extract.derived import extract_as_of
from data.queries.filters import DIMENSIONS, Filters, Scope
from data.queries.view_filters import dv_view_where, fact_view_source, utc_bounds

WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HOURS: tuple[int, ...] = tuple(range(24))
RELEASE_WEEKS = 12
# Interactions carry the viewer and the title, not the device: a device filter cannot apply.
INTERACTION_DIMS = frozenset(DIMENSIONS) - {"device"}


def local_time_heatmap(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, scope: Scope
) -> pd.DataFrame:
    """Starts and watch hours by weekday (Mon..Sun) and hour (0..23) of the viewer's local time.

    Always 168 rows (every weekday x hour, zero where nothing was watched), columns
    ``weekday`` (0 = Monday), ``weekday_name``, ``hour``, ``starts``, ``watch_hours``.
    """
    source, where, params = fact_view_source(filters, scope, extract_as_of(cursor))
    rows = cursor.execute(
        "SELECT isodow(local_at) - 1 AS weekday, hour(local_at) AS hour, count(*) AS starts, "
        "sum(watch_seconds) / 3600.0 AS watch_hours FROM ("
        "  SELECT v.started_at + INTERVAL 1 MINUTE * v.tz_offset_min AS local_at, v.watch_seconds"
        f"  FROM {source} WHERE v.started_at >= ? AND v.started_at < ? AND {where}"
        ") GROUP BY ALL",
        [*utc_bounds(filters.start, filters.end), *params],
    ).df()
    grid = pd.MultiIndex.from_product([range(7), HOURS], names=["weekday", "hour"])
    out = (
        rows.astype({"weekday": "int64", "hour": "int64"})
        .set_index(["weekday", "hour"])
        .reindex(grid, fill_value=0)
        .reset_index()
    )
    out["starts"] = out["starts"].astype("int64")
    out["watch_hours"] = out["watch_hours"].astype("float64")
    out.insert(1, "weekday_name", [WEEKDAYS[d] for d in out["weekday"]])
    return out


def release_weeks(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    weeks: int = RELEASE_WEEKS,
    limit: int = 15,
) -> pd.DataFrame:
    """Views by week since release of the titles released in the ``weeks`` weeks to the end.

    The ``limit`` titles with the most views since release (up to ``filters.end``) are kept.
    Columns: ``title_id``, ``name``, ``release_date``, ``week`` (0 = the release day and the six
    days after it), ``views``. A week that had not started by ``filters.end`` is NaN (not yet
    happened, not zero); the last, partly elapsed week holds the views so far.
    """
    weeks, limit = int(weeks), int(limit)
    first_release = filters.end - timedelta(days=7 * weeks - 1)
    where, params = dv_view_where(filters, scope, "d.")
    frame = cursor.execute(
        "SELECT d.title_id, (d.day - t.release_date) // 7 AS week, sum(d.views) AS views "
        "FROM dv_view d JOIN dim_title t ON t.title_id = d.title_id "
        "WHERE d.day BETWEEN ? AND ? AND t.release_date BETWEEN ? AND ? "
        f"AND d.day >= t.release_date AND {where} GROUP BY ALL",
        [first_release, filters.end, first_release, filters.end, *params],
    ).df()
    columns = ["title_id", "name", "release_date", "week", "views"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    totals = frame.groupby("title_id")["views"].sum()
    top = totals.sort_values(ascending=False, kind="stable")
    top = top[top > 0].head(limit)
    ids = [int(t) for t in top.index]
    if not ids:
        return pd.DataFrame(columns=columns)
    info = _title_info(cursor, ids, scope)
    grid = pd.MultiIndex.from_product([ids, range(weeks)], names=["title_id", "week"])
    out = (
        frame.astype({"title_id": "int64", "week": "int64"})
        .set_index(["title_id", "week"])["views"]
        .reindex(grid)
        .reset_index()
        .merge(info[["title_id", "name", "release_date"]], on="title_id", how="left")
    )
    week_start = pd.to_datetime(out["release_date"]) + pd.to_timedelta(7 * out["week"], unit="D")
    elapsed = week_start.dt.date <= filters.end
    out["views"] = np.where(elapsed, out["views"].fillna(0.0), np.nan)
    order = {t: i for i, t in enumerate(ids)}
    out = out.sort_values(
        ["title_id", "week"], key=lambda s: s.map(order) if s.name == "title_id" else s
    )
    return out[columns].reset_index(drop=True)


def title_runtime(cursor: duckdb.DuckDBPyConnection, title_id: int, scope: Scope) -> int | None:
    """The runtime in minutes of a title the scope may see (None: unknown or out of scope)."""
    scope_sql, params = scope.where("creator_id")
    row = cursor.execute(
        f"SELECT runtime_min FROM dim_title WHERE title_id = ? AND {scope_sql}",
        [int(title_id), *params],
    ).fetchone()
    return int(row[0]) if row and row[0] else None


def dropoff_curve(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, scope: Scope, title_id: int
) -> dict[str, Any]:
    """The share of a title's starts still watching at each whole percent of its runtime.

    Returns ``{"curve": frame(pct 0..100, still_watching), "starts", "completed",
    "completion_rate", "runtime_min"}``; the curve is empty when the title had no starts in
    the period (or is outside the scope). ``still_watching`` at p is the share of starts with
    ``watch_seconds * 100 >= p * runtime_seconds``, so at 90 it is the completion rate.
    """
    runtime = title_runtime(cursor, title_id, scope)
    empty = {
        "curve": pd.DataFrame(columns=["pct", "still_watching"]),
        "starts": 0,
        "completed": 0,
        "completion_rate": math.nan,
        "runtime_min": runtime,
    }
    if runtime is None:
        return empty
    where, params = dv_view_where(filters, scope)
    hist = cursor.execute(
        # Integer division: a session's whole percent of the runtime, capped at 100.
        "SELECT least(100, (CAST(watch_seconds AS BIGINT) * 100) // ?) AS pct, count(*) AS n, "
        "count(*) FILTER (WHERE completed) AS completed "
        f"FROM dv_view WHERE day BETWEEN ? AND ? AND title_id = ? AND {where} GROUP BY ALL",
        [runtime * 60, filters.start, filters.end, int(title_id), *params],
    ).df()
    starts = int(hist["n"].sum()) if not hist.empty else 0
    if starts == 0:
        return empty
    counts = np.zeros(101, dtype="int64")
    np.add.at(counts, hist["pct"].clip(0, 100).astype("int64").to_numpy(), hist["n"].to_numpy())
    # reached[p] = sessions whose whole percent is >= p (a reverse cumulative sum).
    reached = np.cumsum(counts[::-1])[::-1]
    completed = int(hist["completed"].sum())
    return {
        "curve": pd.DataFrame({"pct": np.arange(101), "still_watching": reached / starts}),
        "starts": starts,
        "completed": completed,
        "completion_rate": completed / starts,
        "runtime_min": runtime,
    }


def titles_in_period(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, scope: Scope, limit: int = 500
) -> pd.DataFrame:
    """Titles with starts in the period, most viewed first: title_id, name, kind, views, starts."""
    where, params = dv_view_where(filters, scope)
    frame = cursor.execute(
        "SELECT title_id, sum(views) AS views, count(*) AS starts FROM dv_view "
        f"WHERE day BETWEEN ? AND ? AND {where} GROUP BY title_id "
        "ORDER BY views DESC NULLS LAST, title_id LIMIT ?",
        [filters.start, filters.end, *params, int(limit)],
    ).df()
    if frame.empty:
        return pd.DataFrame(columns=["title_id", "name", "kind", "views", "starts"])
    info = _title_info(cursor, [int(t) for t in frame["title_id"]], scope)
    out = frame.astype({"title_id": "int64"}).merge(
        info[["title_id", "name", "kind"]], on="title_id", how="left"
    )
    return out[["title_id", "name", "kind", "views", "starts"]]


def _interaction_source(filters: Filters, scope: Scope) -> tuple[str, str, list[Any]]:
    columns = {
        "country": "w.country",
        "genre": "t.genre",
        "kind": "t.kind",
        "creator": "t.creator_id",
        "plan": "w.plan",
        "age_band": "w.age_band",
    }
    source = (
        "fact_interaction i LEFT JOIN dim_title t ON t.title_id = i.title_id "
        "LEFT JOIN dim_viewer w ON w.viewer_key = i.viewer_key"
    )
    dims_sql, params = filters.where(columns)
    scope_sql, scope_params = scope.where("t.creator_id")
    return source, f"{dims_sql} AND {scope_sql}", params + scope_params


def interaction_note(filters: Filters) -> str:
    """Why interactions are not shown for these filters, or "" when they are."""
    outside = filters.active_dimensions - INTERACTION_DIMS
    if outside:
        names = ", ".join(DIMENSIONS[d].label.lower() for d in sorted(outside))
        return f"Interactions are not recorded by {names}: remove that filter to see them."
    return ""


def interaction_titles(
    cursor: duckdb.DuckDBPyConnection, filters: Filters, scope: Scope, limit: int = 10
) -> pd.DataFrame:
    """Titles with the most interactions in the period: title_id, name, interactions."""
    columns = ["title_id", "name", "interactions"]
    if interaction_note(filters):
        return pd.DataFrame(columns=columns)
    source, where, params = _interaction_source(filters, scope)
    frame = cursor.execute(
        f"SELECT i.title_id, count(*) AS interactions FROM {source} "
        f"WHERE i.occurred_at >= ? AND i.occurred_at < ? AND {where} "
        "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?",
        [*utc_bounds(filters.start, filters.end), *params, int(limit)],
    ).df()
    if frame.empty:
        return pd.DataFrame(columns=columns)
    info = _title_info(cursor, [int(t) for t in frame["title_id"]], scope)
    out = frame.astype({"title_id": "int64"}).merge(info[["title_id", "name"]], on="title_id")
    return out[columns]


def interactions_by_week(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    title_ids: tuple[int, ...] = (),
) -> pd.DataFrame:
    """Per title and week (Monday, clipped to the period): polls, Q&A and reaction sentiment.

    Columns: ``title_id``, ``name``, ``week`` (first day, never before ``filters.start``),
    ``viewers`` (distinct viewers with a start), ``poll_viewers``, ``poll_participation``,
    ``questions``, ``reactions``, ``sentiment`` (mean reaction sentiment; NaN without
    reactions). Empty when the filters include a dimension interactions do not carry.
    """
    columns = [
        "title_id",
        "name",
        "week",
        "viewers",
        "poll_viewers",
        "poll_participation",
        "questions",
        "reactions",
        "sentiment",
    ]
    ids = [int(t) for t in title_ids][:10]
    if not ids or interaction_note(filters):
        return pd.DataFrame(columns=columns)
    # Titles come from the caller: keep only those the scope may see, before any row is built.
    visible = set(_title_info(cursor, ids, scope)["title_id"])
    ids = [t for t in ids if t in visible]
    if not ids:
        return pd.DataFrame(columns=columns)
    marks = ", ".join("?" * len(ids))
    week_sql = "greatest(CAST(date_trunc('week', {col}) AS DATE), CAST(? AS DATE))"
    source, where, params = _interaction_source(filters, scope)
    acts = cursor.execute(
        f"SELECT i.title_id, {week_sql.format(col='i.occurred_at')} AS week, "
        "count(DISTINCT i.viewer_key) FILTER (WHERE i.kind = 'poll') AS poll_viewers, "
        "count(*) FILTER (WHERE i.kind = 'qa') AS questions, "
        "count(*) FILTER (WHERE i.kind = 'reaction' AND i.sentiment IS NOT NULL) AS reactions, "
        "avg(i.sentiment) FILTER (WHERE i.kind = 'reaction') AS sentiment "
        f"FROM {source} WHERE i.occurred_at >= ? AND i.occurred_at < ? "
        f"AND i.title_id IN ({marks}) AND {where} GROUP BY ALL",
        [filters.start, *utc_bounds(filters.start, filters.end), *ids, *params],
    ).df()
    vwhere, vparams = dv_view_where(filters, scope)
    viewers = cursor.execute(
        f"SELECT title_id, {week_sql.format(col='day')} AS week, "
        "count(DISTINCT viewer_key) AS viewers FROM dv_view "
        f"WHERE day BETWEEN ? AND ? AND title_id IN ({marks}) AND {vwhere} GROUP BY ALL",
        [filters.start, filters.start, filters.end, *ids, *vparams],
    ).df()
    weeks = sorted({max(filters.start, d - timedelta(days=d.weekday())) for d in _days(filters)})
    grid = pd.MultiIndex.from_product([ids, weeks], names=["title_id", "week"])

    def indexed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["title_id"] = frame["title_id"].astype("int64")
        frame["week"] = pd.to_datetime(frame["week"]).dt.date
        return frame.set_index(["title_id", "week"])

    out = pd.DataFrame(index=grid).join(indexed(viewers)).join(indexed(acts))
    for col in ("viewers", "poll_viewers", "questions", "reactions"):
        out[col] = out[col].fillna(0).astype("int64")
    out["sentiment"] = out["sentiment"].astype("float64")
    out["poll_participation"] = out["poll_viewers"] / out["viewers"].where(out["viewers"] > 0)
    out = out.reset_index()
    info = _title_info(cursor, ids, scope)
    out = out.merge(info[["title_id", "name"]], on="title_id", how="inner")
    return out[columns]


def _days(filters: Filters) -> list[date]:
    return [filters.start + timedelta(days=i) for i in range(filters.days)]


def _title_info(cursor: duckdb.DuckDBPyConnection, ids: list[int], scope: Scope) -> pd.DataFrame:
    """Names and attributes of those of ``ids`` the scope may see (never other creators')."""
    marks = ", ".join("?" * len(ids))
    scope_sql, scope_params = scope.where("creator_id")
    return (
        cursor.execute(
            "SELECT title_id, name, kind, genre, release_date, runtime_min, creator_id "
            f"FROM dim_title WHERE title_id IN ({marks}) AND {scope_sql}",
            [*ids, *scope_params],
        )
        .df()
        .astype({"title_id": "int64"})
    )
