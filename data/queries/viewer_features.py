"""Per-viewer behaviour over a window: what the viewer clusters (models/segmentation.py) learn from.

One row per viewer with at least one session in [start, end] (UTC days, inclusive), indexed by
``viewer_key`` (sorted). The sessions are ``dv_view``'s (the plausible rows of ``fact_view``),
read from ``fact_view`` joined to ``dim_title`` with the same plausibility rules, because only
``fact_view`` keeps the session's time zone; the period selects sessions by UTC day like every
other number of the app. Columns:

- ``hours``: watch hours (sum of watch_seconds / 3600); ``sessions``: starts; ``active_days``:
  distinct UTC days with a start; ``distinct_titles``: distinct titles started; ``completed``:
  completed starts (reached 90% of the runtime); ``completion``: completed / sessions;
- ``genre_hours_<genre>`` and ``genre_share_<genre>`` (hours of the genre / hours; 0 when the
  viewer watched no time) for the window's ``top_genres`` genres by watch hours (ties by name),
  with the time in every other genre, or in titles without a genre, in ``genre_share_other``;
- ``device_share_<device>``: share of the viewer's sessions on the device, for every device of
  the window (a share above 0 means "used the device at all", which a segment can say);
- ``weekend_share`` and ``evening_share``: share of sessions started on a Saturday or Sunday,
  and between 18:00 and 23:59, in the viewer's local time (``started_at + tz_offset_min``);
- ``tenure_days``: ``end`` minus the viewer's ``signup_date`` (NaN when the viewer has no
  ``dim_viewer`` row); ``plan``: the viewer's current plan (text; None without a row).

The genre and device values are part of the column names, verbatim (``genre_share_Sci-Fi``);
they are listed in ``frame.attrs`` (``genres``, ``devices``), with ``start``, ``end``, ``plans``
(every plan in ``dim_viewer``) and ``labels`` (a plain-English name for every column). The
segment rules of models/segmentation.py rely on the names and meanings above: each rule feature
means what the segment condition it compiles to means (data/queries/segments.py).

Viewers are everyone's: a creator's scope cannot be applied to a viewer row (a viewer watches
many creators' titles), so any scope other than all creators is refused (``PermissionError``).
Column names never come from input unchecked: the SQL uses positional aliases and binds every
genre and device value; names are given to the columns in pandas.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.extract.derived import extract_as_of
from data.extract.plausibility import plausible_sql
from data.queries.filters import Scope

TOP_GENRES = 12
MAX_DEVICES = 12
EVENING_FROM_HOUR = 18
GENRE_HOURS = "genre_hours_"
GENRE_SHARE = "genre_share_"
DEVICE_SHARE = "device_share_"
OTHER_GENRES = "genre_share_other"
COUNT_COLUMNS: tuple[str, ...] = (
    "sessions",
    "active_days",
    "distinct_titles",
    "completed",
)

FEATURE_LABELS: dict[str, str] = {
    "hours": "hours watched",
    "sessions": "sessions",
    "active_days": "active days",
    "distinct_titles": "distinct titles",
    "completed": "completed sessions",
    "completion": "completion rate",
    "weekend_share": "share of sessions at weekends",
    "evening_share": "share of sessions in the evening",
    "tenure_days": "days since signing up",
    "plan": "plan",
    OTHER_GENRES: "share of other genres",
}
DEVICE_NAMES: dict[str, str] = {
    "tv": "TV",
    "mobile": "mobile",
    "web": "the web",
    "tablet": "tablet",
    "console": "console",
}


def feature_label(column: str) -> str:
    """A plain-English name for a column of :func:`viewer_features` ("share of Drama")."""
    if column in FEATURE_LABELS:
        return FEATURE_LABELS[column]
    if column.startswith(GENRE_HOURS):
        return f"hours of {column[len(GENRE_HOURS) :]}"
    if column.startswith(GENRE_SHARE):
        return f"share of {column[len(GENRE_SHARE) :]}"
    if column.startswith(DEVICE_SHARE):
        device = column[len(DEVICE_SHARE) :]
        return f"share on {DEVICE_NAMES.get(device, device)}"
    return column.replace("_", " ")


def _columns(genres: list[str], devices: list[str]) -> list[str]:
    return [
        "hours",
        *COUNT_COLUMNS,
        "completion",
        *(GENRE_HOURS + g for g in genres),
        *(GENRE_SHARE + g for g in genres),
        OTHER_GENRES,
        *(DEVICE_SHARE + d for d in devices),
        "weekend_share",
        "evening_share",
        "tenure_days",
        "plan",
    ]


def viewer_features(
    cursor: duckdb.DuckDBPyConnection,
    *,
    start: date,
    end: date,
    scope: Scope,
    top_genres: int = TOP_GENRES,
) -> pd.DataFrame:
    """The behaviour of every viewer active in [start, end]; see the module docstring."""
    if not scope.is_all:
        raise PermissionError(
            "Viewer features cover every creator's titles: only a caller who may see all "
            "creators can read them."
        )
    if type(start) is not date or type(end) is not date:
        raise ValueError("start and end must be calendar dates")
    if start > end:
        raise ValueError("start must not be after end")
    n_genres = int(top_genres)
    if not 1 <= n_genres <= 50:
        raise ValueError("top_genres must be 1 to 50")
    genres = [
        str(g)
        for (g,) in cursor.execute(
            # A genre named "other" would collide with the catch-all column: it is counted there.
            "SELECT genre FROM dv_view WHERE day BETWEEN ? AND ? AND genre IS NOT NULL "
            "AND genre <> 'other' GROUP BY genre ORDER BY sum(watch_seconds) DESC, genre LIMIT ?",
            [start, end, n_genres],
        ).fetchall()
    ]
    devices = [
        str(d)
        for (d,) in cursor.execute(
            "SELECT device FROM dv_view WHERE day BETWEEN ? AND ? AND device IS NOT NULL "
            "GROUP BY device ORDER BY count(*) DESC, device LIMIT ?",
            [start, end, MAX_DEVICES],
        ).fetchall()
    ]
    plans = [
        str(p)
        for (p,) in cursor.execute(
            "SELECT DISTINCT plan FROM dim_viewer WHERE plan IS NOT NULL ORDER BY plan"
        ).fetchall()
    ]
    keep_sql, keep_params = plausible_sql("fact_view", extract_as_of(cursor), "v")
    # Positional aliases: genre and device values are bound, never spliced into the SQL.
    genre_sql = "".join(
        f", coalesce(sum(s.watch_seconds) FILTER (WHERE s.genre = ?), 0) / 3600.0 AS g{i}"
        for i in range(len(genres))
    )
    # Time in every other genre (or in titles without one), summed exactly rather than 1 - the rest.
    named = ", ".join("?" * len(genres))
    other_sql = (
        ", coalesce(sum(s.watch_seconds) FILTER "
        f"(WHERE s.genre IS NULL OR s.genre NOT IN ({named})), 0) / 3600.0 AS g_other"
        if genres
        else ", coalesce(sum(s.watch_seconds), 0) / 3600.0 AS g_other"
    )
    device_sql = "".join(
        f", count(*) FILTER (WHERE s.device = ?) AS d{i}" for i in range(len(devices))
    )
    rows = cursor.execute(
        "WITH s AS ("
        "  SELECT v.viewer_key, CAST(v.started_at AS DATE) AS day, v.title_id, "
        "    v.watch_seconds, v.completed, v.device, t.genre, "
        "    v.started_at + INTERVAL 1 MINUTE * v.tz_offset_min AS local_at "
        "  FROM fact_view v LEFT JOIN dim_title t ON t.title_id = v.title_id "
        f"  WHERE v.started_at >= ? AND v.started_at < ? AND {keep_sql}"
        "), a AS ("
        "  SELECT s.viewer_key, "
        "    coalesce(sum(s.watch_seconds), 0) / 3600.0 AS hours, "
        "    count(*) AS sessions, "
        "    count(DISTINCT s.day) AS active_days, "
        "    count(DISTINCT s.title_id) AS distinct_titles, "
        "    count(*) FILTER (WHERE s.completed) AS completed, "
        "    count(*) FILTER (WHERE isodow(s.local_at) >= 6) AS weekend_sessions, "
        "    count(*) FILTER (WHERE hour(s.local_at) >= ?) AS evening_sessions"
        f"    {genre_sql}{other_sql}{device_sql} "
        "  FROM s GROUP BY s.viewer_key"
        ") "
        "SELECT a.*, CAST(? AS DATE) - w.signup_date AS tenure_days, w.plan "
        "FROM a LEFT JOIN dim_viewer w ON w.viewer_key = a.viewer_key "
        "ORDER BY a.viewer_key",
        [
            start,
            end + timedelta(days=1),
            *keep_params,
            EVENING_FROM_HOUR,
            *genres,
            *genres,
            *devices,
            end,
        ],
    ).df()
    return _frame(rows, genres, devices, plans, start, end)


def _frame(
    rows: pd.DataFrame,
    genres: list[str],
    devices: list[str],
    plans: list[str],
    start: date,
    end: date,
) -> pd.DataFrame:
    index = pd.Index(rows["viewer_key"].astype("int64"), name="viewer_key")
    out: dict[str, Any] = {}
    hours = rows["hours"].astype("float64").to_numpy()
    sessions = rows["sessions"].astype("int64").to_numpy()
    out["hours"] = hours
    for c in COUNT_COLUMNS:
        out[c] = rows[c].astype("int64").to_numpy()
    # Every row has a session, so sessions >= 1; hours may be 0 (starts with no watch time).
    safe_sessions = np.maximum(sessions, 1)
    out["completion"] = out["completed"] / safe_sessions
    per_genre = {g: rows[f"g{i}"].astype("float64").to_numpy() for i, g in enumerate(genres)}
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = {g: np.where(hours > 0, h / hours, 0.0) for g, h in per_genre.items()}
    for g in genres:
        out[GENRE_HOURS + g] = per_genre[g]
    for g in genres:
        out[GENRE_SHARE + g] = shares[g]
    other = rows["g_other"].astype("float64").to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        out[OTHER_GENRES] = np.where(hours > 0, other / hours, 0.0)
    for i, d in enumerate(devices):
        out[DEVICE_SHARE + d] = rows[f"d{i}"].astype("int64").to_numpy() / safe_sessions
    out["weekend_share"] = rows["weekend_sessions"].astype("int64").to_numpy() / safe_sessions
    out["evening_share"] = rows["evening_sessions"].astype("int64").to_numpy() / safe_sessions
    out["tenure_days"] = pd.to_numeric(rows["tenure_days"], errors="coerce").to_numpy("float64")
    out["plan"] = rows["plan"].astype("object").where(rows["plan"].notna(), None).to_numpy()
    frame = pd.DataFrame(out, index=index)[_columns(genres, devices)]
    frame.attrs.update(
        {
            "start": start,
            "end": end,
            "genres": list(genres),
            "devices": list(devices),
            "plans": list(plans),
            "labels": {c: feature_label(c) for c in frame.columns},
        }
    )
    return frame


__all__ = [
    "DEVICE_SHARE",
    "FEATURE_LABELS",
    "GENRE_HOURS",
    "GENRE_SHARE",
    "OTHER_GENRES",
    "TOP_GENRES",
    "feature_label",
    "viewer_features",
]
