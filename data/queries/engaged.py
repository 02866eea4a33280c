"""Engaged subscribers: the numerator of the engagement rate, over the denominator's population.

The engagement rate is engaged subscribers / subscribers active in the period (METRICS.md), and
watch time per subscriber is their watch hours / the same subscribers. Both sides are one
population, filtered alike:

- *subscribers* of a window [a, b]: distinct viewers with a subscription active on some day of
  it (``dv_sub_spell``: a spell with first_day <= b and last_day >= a), whose own attributes
  (dim_viewer: home country, plan, age band) match the country, plan and age band filters;
- *engaged*: those of them with at least one start in [a, b] that matches the filters on what
  was watched and how (device, genre, kind, creator); ``subscriber_watch_seconds`` is the watch
  time of those starts.

So a viewer without a subscription in the window never counts, a session played abroad counts
for the viewer's home country, and the rate is at most 1 by construction. Breakdowns are by the
viewer's attributes only (country, plan, age band).

Two implementations with the same result: arrays held in memory per extract build (the view
index's rows of the windows' days; whether each row's viewer was subscribed on the row's own day,
worked out once per build and day; the other rows' viewers looked up among their spells by
binary search; then distinct viewers per window as the view index counts them), and SQL when
the in-memory indexes are off (each window's watching viewers, semi-joined to the spells).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import duckdb
import numpy as np

from data.queries import viewer_index
from data.queries.filters import Filters, Scope

AGGREGATES: tuple[str, ...] = ("engaged", "subscriber_watch_seconds")
# dimension -> column of dv_sub_spell (the viewer's attributes)
VIEWER_COLUMNS: dict[str, str] = {
    "country": "country",
    "age_band": "age_band",
    "plan": "viewer_plan",
}
# dimension -> column of dv_view (what was watched and how)
WATCH_COLUMNS: dict[str, str] = {
    "device": "device",
    "genre": "genre",
    "kind": "kind",
    "creator": "creator_id",
}
_EPOCH = date(1970, 1, 1)
# Spell keys are viewer number x _SPAN + day (+ _OFFSET so days before 1970 stay positive).
_OFFSET = 1 << 21
_SPAN = 1 << 23

# (series, bucket, data days a..b) as in data/queries/metrics.py
Window = tuple[str, date, date, date]
Records = dict[tuple[str, date, Any], dict[str, float]]


def records(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    windows: Sequence[Window],
    by: str | None,
    aggregates: Sequence[str] = AGGREGATES,
) -> Records:
    """engaged and subscriber_watch_seconds per (series, bucket, key of ``by``) with rows
    (subscriber_watch_seconds only when among ``aggregates``; 0 otherwise)."""
    if by is not None and by not in VIEWER_COLUMNS:
        raise KeyError(f"engaged subscribers cannot be broken down by {by!r}")
    index = viewer_index.index_for(cursor)
    if index is not None:
        spells = _spells_for(index, cursor)
        return _memory_records(index, spells, cursor, filters, scope, windows, by, aggregates)
    return _sql_records(cursor, filters, scope, windows, by, aggregates)


# The spell index of the build the view index is of (keyed on its build id, which the view
# index was just checked against: no second lookup of the extract's build per query).
_spells_lock = threading.Lock()
_spells: dict[str, SpellIndex] = {}


def _spells_for(index: viewer_index.ViewerIndex, cursor: duckdb.DuckDBPyConnection) -> SpellIndex:
    with _spells_lock:
        found = _spells.get(index.build_id)
        if found is None:
            found = SpellIndex(cursor)
            _spells.clear()
            _spells[index.build_id] = found
        return found


class SpellIndex:
    """The subscription spells of viewers with a dense viewer number, sorted by (viewer, first
    day), and each viewer's attribute codes (country, age band, plan)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection):
        found = cursor.execute(
            "SELECT x.viewer_idx AS v, "
            "date_diff('day', DATE '1970-01-01', p.first_day) AS f, "
            "date_diff('day', DATE '1970-01-01', p.last_day) AS l "
            "FROM dv_sub_spell p JOIN dv_viewer_index x ON x.viewer_key = p.viewer_key "
            "WHERE p.first_day IS NOT NULL AND p.last_day IS NOT NULL ORDER BY 1, 2"
        ).fetchnumpy()
        viewer = np.asarray(found["v"], dtype=np.int64)
        self.viewer = viewer
        self.key = viewer * _SPAN + np.asarray(found["f"], dtype=np.int64) + _OFFSET
        self.last = np.asarray(found["l"], dtype=np.int64)
        (count,) = cursor.execute("SELECT count(*) FROM dv_viewer_index").fetchone()
        self.viewers = max(int(count), 1)
        self._lock = threading.Lock()
        self._on_day: np.ndarray | None = None
        self.codes: dict[str, tuple[np.ndarray, dict[str, int], list[str]]] = {}
        for column in VIEWER_COLUMNS.values():
            names = [
                str(v)
                for (v,) in cursor.execute(
                    f"SELECT DISTINCT {column} FROM dv_sub_spell "
                    f"WHERE {column} IS NOT NULL ORDER BY 1"
                ).fetchall()
            ]
            rows = cursor.execute(
                f"SELECT x.viewer_idx AS v, coalesce(list_position(?::VARCHAR[], p.{column}) - 1, "
                f"-1) AS c FROM (SELECT DISTINCT ON (viewer_key) viewer_key, {column} "
                "FROM dv_sub_spell) p JOIN dv_viewer_index x ON x.viewer_key = p.viewer_key",
                [names],
            ).fetchnumpy()
            codes = np.full(self.viewers, -1, dtype=np.int64)
            codes[np.asarray(rows["v"], dtype=np.int64)] = np.asarray(rows["c"], dtype=np.int64)
            self.codes[column] = (codes, {n: i for i, n in enumerate(names)}, names)

    def subscribed(self, viewers: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """For each viewer number: whether one of its spells touches its days [lo, hi] (days
        since 1970, one pair per viewer)."""
        if not len(self.key):
            return np.zeros(len(viewers), dtype=bool)
        viewers = np.asarray(viewers, dtype=np.int64)  # the keys overflow 32 bits
        # A viewer's spells are disjoint and sorted: the last one starting on or before b ends
        # latest of those, so it touches [a, b] exactly when any of them does.
        at = np.searchsorted(self.key, viewers * _SPAN + hi + _OFFSET, side="right") - 1
        ok = at >= 0
        safe = np.where(ok, at, 0)
        return ok & (self.viewer[safe] == viewers) & (self.last[safe] >= lo)

    def subscribed_on_day(
        self, index: viewer_index.ViewerIndex, first: date, last: date
    ) -> np.ndarray:
        """For every row of the view index: whether its viewer was subscribed on its day.
        Filled for the rows of days [first, last] (and any asked before), then kept: one byte
        a view, each day computed once per build."""
        with self._lock:
            if self._on_day is None or len(self._on_day) != index.rows:
                self._on_day = np.zeros(index.rows, dtype=bool)
                self._done: set[date] = set()
            todo = [
                first + timedelta(days=k)
                for k in range((last - first).days + 1)
                if first + timedelta(days=k) not in self._done
            ]
            if todo:
                rows = index.span(min(todo), max(todo))
                positions = np.arange(rows.start, rows.stop, dtype=np.int64)
                day = index.days_of(positions)
                self._on_day[rows] = self.subscribed(index.viewer[rows], day, day)
                self._done.update(todo)
            return self._on_day

    def allowed(self, viewers: np.ndarray, conditions: Mapping[str, Sequence[str]]) -> np.ndarray:
        """Viewers whose attributes match ``conditions`` (dv_sub_spell column -> values)."""
        mask = np.ones(len(viewers), dtype=bool)
        for column, wanted in conditions.items():
            codes, lookup, _names = self.codes[column]
            mask &= viewer_index.member(codes[viewers], wanted, lookup)
        return mask


def _conditions(filters: Filters, columns: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    return {
        columns[d]: filters.values(d) for d in sorted(filters.active_dimensions) if d in columns
    }


def _memory_records(
    index: viewer_index.ViewerIndex,
    spells: SpellIndex,
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    windows: Sequence[Window],
    by: str | None,
    aggregates: Sequence[str] = AGGREGATES,
) -> Records:
    """All windows of a series at once: the rows of the series' days are read once and each
    gets its window by its day. A row whose viewer was subscribed on its own day is a
    subscriber's row for any window holding that day (known per row, once per build); only the
    others are looked up against the window's days. Distinct viewers are then counted per
    window (and group) as in the view index."""
    watch = _conditions(filters, WATCH_COLUMNS)
    viewer_conditions = _conditions(filters, VIEWER_COLUMNS)
    by_column = VIEWER_COLUMNS[by] if by is not None else None
    numbers = ("watch_seconds",) if "subscriber_watch_seconds" in aggregates else ()
    size = max(index.viewers, spells.viewers)
    groups, names, codes = 1, [None], None
    if by_column is not None:
        codes, _lookup, labels = spells.codes[by_column]
        names = [None, *labels]
        groups = len(names)
    out: Records = {}
    series: dict[str, list[tuple[int, Window]]] = {}
    for wid, w in enumerate(windows):
        if w[2] <= w[3]:
            series.setdefault(w[0], []).append((wid, w))
    for found in series.values():
        first = min(w[2] for _, w in found)
        last = max(w[3] for _, w in found)
        positions, rows, values, days = index.window_rows(
            cursor, first, last, watch, scope.creator_ids, numbers, with_days=len(found) > 1
        )
        if not len(rows):
            continue
        on_day = spells.subscribed_on_day(index, first, last)
        # Each day of the series belongs to at most one of its windows (-1: to none).
        local = np.full((last - first).days + 1, -1, dtype=np.int64)
        lo = np.zeros(len(found), dtype=np.int64)
        hi = np.zeros(len(found), dtype=np.int64)
        for k, (_wid, (_s, _b, a, b)) in enumerate(found):
            local[(a - first).days : (b - first).days + 1] = k
            lo[k], hi[k] = (a - _EPOCH).days, (b - _EPOCH).days
        if days is None:  # one window: it is the series' days
            row_window = np.zeros(len(rows), dtype=np.int64)
        else:
            row_window = local[days - (first - _EPOCH).days]
        keep = row_window >= 0
        subscribed = on_day[positions]
        check = keep & ~subscribed
        if check.any():
            subscribed[check] = spells.subscribed(
                rows[check], lo[row_window[check]], hi[row_window[check]]
            )
        keep &= subscribed
        if viewer_conditions:
            keep &= spells.allowed(rows, viewer_conditions)
        viewers = rows[keep].astype(np.int64)
        slot = row_window[keep] * groups
        if codes is not None:
            slot += codes[viewers] + 1  # NULL is 0
        engaged = viewer_index.distinct(viewers, size, slot, len(found) * groups)
        seconds = np.zeros(len(found) * groups)
        if numbers:
            seconds = np.bincount(
                slot, weights=values["watch_seconds"][keep], minlength=len(found) * groups
            )
        for at in np.flatnonzero(engaged):
            k, group = divmod(int(at), groups)
            series_name, bucket, _a, _b = found[k][1]
            out[(series_name, bucket, names[group])] = {
                "engaged": float(engaged[at]),
                "subscriber_watch_seconds": float(seconds[at]),
            }
    return out


def _sql_records(
    cursor: duckdb.DuckDBPyConnection,
    filters: Filters,
    scope: Scope,
    windows: Sequence[Window],
    by: str | None,
    aggregates: Sequence[str] = AGGREGATES,
) -> Records:
    live = [(i, w) for i, w in enumerate(windows) if w[2] <= w[3]]
    if not live:
        return {}
    watch_sql, watch_params = filters.where(
        {d: f"d.{c}" for d, c in WATCH_COLUMNS.items()},
        skip=filters.active_dimensions - set(WATCH_COLUMNS),
    )
    scope_sql, scope_params = scope.where("d.creator_id")
    # The viewer's own attributes: dim_viewer's, which dv_sub_spell copies (a viewer without a
    # dim_viewer row has NULL in both).
    viewer_sql, viewer_params = filters.where(
        {"country": "x.country", "age_band": "x.age_band", "plan": "x.plan"},
        skip=filters.active_dimensions - set(VIEWER_COLUMNS),
    )
    attributes = {"country": "x.country", "age_band": "x.age_band", "plan": "x.plan"}
    key_sql = "NULL::VARCHAR" if by is None else f"CAST({attributes[by]} AS VARCHAR)"
    # Each window's days, joined to the views by day; one part per series, bounded by its own
    # days, so a comparison a year back is not a scan of the year between.
    series: dict[str, list[tuple[int, Window]]] = {}
    for wid, w in live:
        series.setdefault(w[0], []).append((wid, w))
    seconds = "sum(d.watch_seconds)" if "subscriber_watch_seconds" in aggregates else "0"
    # dim_viewer only when its attributes filter or group.
    attributes_needed = by is not None or bool(filters.active_dimensions & set(VIEWER_COLUMNS))
    join = "LEFT JOIN dim_viewer x ON x.viewer_key = v.viewer_key" if attributes_needed else ""
    parts, view_params = [], []
    for found in series.values():
        days = [(a + timedelta(days=k), wid) for wid, (_s, _b, a, b) in found
                for k in range((b - a).days + 1)]  # fmt: skip
        parts.append(
            f"SELECT m.wid, d.viewer_key, {seconds} AS ws FROM dv_view d "
            "JOIN (SELECT unnest(?::DATE[]) AS day, unnest(?::INTEGER[]) AS wid) AS m "
            "ON m.day = d.day WHERE d.day BETWEEN ? AND ? "
            f"AND {watch_sql} AND {scope_sql} GROUP BY ALL"
        )
        view_params += [
            [d for d, _ in days],
            [wid for _, wid in days],
            min(w[2] for _, w in found),
            max(w[3] for _, w in found),
            *watch_params,
            *scope_params,
        ]
    # Only the viewers who watched are looked up among the spells (a semi-join: a viewer with
    # two spells in a window counts once).
    sql = f"""
    WITH w AS (SELECT unnest(?::INTEGER[]) AS wid, unnest(?::DATE[]) AS a, unnest(?::DATE[]) AS b),
    v AS ({" UNION ALL ".join(parts)})
    SELECT v.wid, {key_sql} AS key, count(*), coalesce(sum(v.ws), 0)
    FROM v JOIN w ON w.wid = v.wid
    {join}
    WHERE EXISTS (
        SELECT 1 FROM dv_sub_spell p WHERE p.viewer_key = v.viewer_key
        AND p.first_day <= w.b AND p.last_day >= w.a
    ) AND {viewer_sql}
    GROUP BY ALL
    """
    params = [
        [wid for wid, _ in live],
        [w[2] for _, w in live],
        [w[3] for _, w in live],
        *view_params,
        *viewer_params,
    ]
    out: Records = {}
    for wid, key, engaged, seconds in cursor.execute(sql, params).fetchall():
        series_name, bucket, _a, _b = windows[wid]
        out[(series_name, bucket, key)] = {
            "engaged": float(engaged),
            "subscriber_watch_seconds": float(seconds),
        }
    return out
