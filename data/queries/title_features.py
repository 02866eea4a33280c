"""What the title-success model (models/success.py) learns from: each title's attributes and how
it did in its first weeks, and the audience it was released into.

Definitions (METRICS.md where it has one):

- views are runtime-normalised (watch hours / runtime hours), starts are sessions, a completed
  start reached 90% of the runtime; all from ``dv_title_day`` (the derived per-title daily sums
  of ``dv_view``), every country and device;
- a title's *window* is its first ``window_days`` days, release day included;
  ``window_complete`` is true when the whole window is in the data (released on or after the
  first day with data, and its last window day on or before the last): only those have a known
  first-28-day result. Titles released before the data began or too recently keep their
  attributes (the model may still predict them) with the window sums of the days seen;
- ``views_day_<k>``: views in the first k days since release (the "early days" a prediction in
  a title's first week may use);
- audience: the views per day of every title in the scope, the platform's size at each date.

The creator scope applies to both frames (titles of other creators are neither rows nor part of
the audience). The dimension filters are not used: the model learns from the whole catalog the
scope may see, whatever slice a page shows.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from data.queries.filters import Filters, Scope

WINDOW_DAYS = 28
EARLY_DAYS: tuple[int, ...] = (1, 3, 7)
TITLE_COLUMNS: tuple[str, ...] = (
    "title_id",
    "name",
    "kind",
    "series_name",
    "season",
    "episode",
    "genre",
    "genres",
    "release_date",
    "runtime_min",
    "language",
    "maturity",
    "creator_id",
)
MONEY_COLUMNS: tuple[str, ...] = ("budget", "licensing_cost")


def title_features(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters | None,
    scope: Scope,
    window_days: int = WINDOW_DAYS,
    early_days: tuple[int, ...] = EARLY_DAYS,
    money: bool = False,
) -> dict[str, Any]:
    """Titles with their first-window results, and the daily audience.

    Returns ``{"titles", "audience", "bounds", "window_days"}``:

    - titles: one row per title in the scope: ``TITLE_COLUMNS``, with ``money`` also budget and
      licensing_cost (floats), then window_complete, days_observed (days of the window inside
      the data), views, starts, completed (window sums; 0 when none) and ``views_day_<k>`` for
      each k of ``early_days``; sorted by release date and title id;
    - audience: day, views (every title in the scope, per day with data);
    - bounds: (first day, last day) with data, or None for an empty extract.
    """
    window = int(window_days)
    if not 1 <= window <= 365:
        raise ValueError("window_days must be 1 to 365")
    early = sorted({int(k) for k in early_days})
    if any(not 1 <= k <= window for k in early):
        raise ValueError("early_days must be within the window")
    first_day, last_day = cursor.execute("SELECT min(day), max(day) FROM dv_title_day").fetchone()
    scope_sql, scope_params = scope.where("t.creator_id")
    money_cols = "".join(f", CAST(t.{c} AS DOUBLE) AS {c}" for c in MONEY_COLUMNS) if money else ""
    # Column names come from the validated integers above; every value is bound.
    early_sql = "".join(
        f", coalesce(sum(d.views) FILTER (WHERE d.day < t.release_date + CAST(? AS INTEGER)), 0)"
        f" AS views_day_{k}"
        for k in early
    )
    columns = ", ".join(f"t.{c}" for c in TITLE_COLUMNS)
    titles = cursor.execute(
        f"SELECT {columns}{money_cols}, "
        "coalesce(t.release_date >= CAST(? AS DATE) "
        "  AND t.release_date + CAST(? AS INTEGER) - 1 <= CAST(? AS DATE), FALSE) "
        "  AS window_complete, "
        "coalesce(greatest(0, least(t.release_date + CAST(? AS INTEGER) - 1, CAST(? AS DATE)) "
        "  - greatest(t.release_date, CAST(? AS DATE)) + 1), 0) AS days_observed, "
        "coalesce(sum(d.views), 0) AS views, coalesce(sum(d.starts), 0) AS starts, "
        f"coalesce(sum(d.completed), 0) AS completed{early_sql} "
        "FROM dim_title t LEFT JOIN dv_title_day d ON d.title_id = t.title_id "
        "  AND d.day >= t.release_date AND d.day < t.release_date + CAST(? AS INTEGER) "
        f"WHERE {scope_sql} GROUP BY ALL ORDER BY t.release_date, t.title_id",
        [
            first_day,
            window,
            last_day,
            window,
            last_day,
            first_day,
            *early,
            window,
            *scope_params,
        ],
    ).df()
    titles = titles.astype(
        {
            "title_id": "int64",
            "creator_id": "int64",
            "runtime_min": "float64",
            "views": "float64",
            "starts": "int64",
            "completed": "int64",
            "days_observed": "int64",
            "window_complete": "bool",
        }
    )
    for k in early:
        titles[f"views_day_{k}"] = titles[f"views_day_{k}"].astype("float64")
    titles["release_date"] = pd.to_datetime(titles["release_date"]).dt.date
    audience = cursor.execute(
        "SELECT d.day, sum(d.views) AS views FROM dv_title_day d "
        f"JOIN dim_title t ON t.title_id = d.title_id WHERE {scope_sql} GROUP BY 1 ORDER BY 1",
        scope_params,
    ).df()
    audience["day"] = pd.to_datetime(audience["day"]).dt.date
    audience["views"] = audience["views"].astype("float64")
    return {
        "titles": titles,
        "audience": audience,
        "bounds": (first_day, last_day) if first_day is not None else None,
        "window_days": window,
    }


__all__ = ["EARLY_DAYS", "MONEY_COLUMNS", "TITLE_COLUMNS", "WINDOW_DAYS", "title_features"]
