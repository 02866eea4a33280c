"""The view family's aggregates over ``dv_view`` (sums and exact distinct viewers and titles),
computed from arrays held in process memory.

Distinct counts are the one aggregate no rollup of sums can answer: active viewers over 28 days
is not the sum of 28 daily counts. DuckDB counts them exactly as set bits of a bitmap
(data/extract/derived.py), but building a 62 KB bitmap per group per thread costs 15-90 ms per query on
10M views. This index keeps ``dv_view``'s dense viewer numbers in process memory in day order,
with the first row of every day, so a date range is a contiguous slice: marking the slice's
viewer numbers in a boolean array and counting the marks is the same exact number in a few
milliseconds, for any filter, scope and grouping; sums over the same slice are ``bincount``s
(measured in bench/README.md).

What is held: the first row of each day and the viewer numbers (4 bytes a view), and, loaded the
first time a query needs them, the columns that filter, scope or group the rows as 1-2 byte
codes and the summed columns in their smallest type (about 21 bytes a view with everything the
Overview uses: 210 MB at 10M views).

One index per extract build (``extract_meta.build_id``, written by every build; see
data/extract/build_cache.py), so a sync or an erasure is visible at the next query. Extracts with more
rows than ``build_cache.configure(max_rows=...)`` allows, or without a build id, are not
indexed: callers fall back to SQL (``index_for`` returns None).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from datetime import date

import duckdb
import numpy as np

from data.extract import build_cache

log = logging.getLogger(__name__)

_EPOCH = date(1970, 1, 1)
# Columns of dv_view the index may hold as codes: text dimensions and integer ids.
_TEXT_COLUMNS = frozenset({"country", "device", "plan", "age_band", "genre", "kind"})
_INT_COLUMNS = frozenset({"creator_id", "title_id"})
# Numeric inputs: the value SUM adds for each row (a NULL adds nothing).
_NUMBERS: dict[str, str] = {
    "watch_seconds": "CAST(coalesce(watch_seconds, 0) AS BIGINT)",
    "views": "CAST(coalesce(views, 0) AS DOUBLE)",
    "completed": "CAST(coalesce(completed, false) AS TINYINT)",
    "views_known": "CAST(views IS NOT NULL AS TINYINT)",
}
# The view family's base aggregates (data/queries/metrics.py) the index computes: counts, or the column
# summed.
AGGREGATES: dict[str, str] = {
    "starts": "",
    "watch_seconds": "watch_seconds",
    "views": "views",
    "completed": "completed",
    "views_known": "views_known",
    "viewers": "",
    "titles_started": "",
}
# Group-by marks one boolean per (group, viewer); above this many cells counting sorts instead.
_MARK_CELLS = 40_000_000
_INTEGER = re.compile(r"-?[0-9]{1,18}")
# Integer codes below this are looked up in arrays (filters, groups); larger ones are sorted.
_LOOKUP_LIMIT = 10_000_000


def index_for(cursor: duckdb.DuckDBPyConnection) -> ViewerIndex | None:
    """The index of the cursor's extract, built on first use; None when not indexed (turned
    off, too many rows for ``build_cache.configure(max_rows=...)``, or no build id)."""
    limit = build_cache.max_rows()
    return build_cache.for_build(
        cursor, "viewer_index", lambda bid: ViewerIndex.load(cursor, bid, limit)
    )


class IndexMismatch(RuntimeError):
    """A column read later did not have the rows of the first read."""


class ViewerIndex:
    """dv_view's viewer numbers in day order; see the module docstring."""

    def __init__(
        self,
        build: str,
        day: np.ndarray,
        viewer: np.ndarray,
        viewers: int,
    ):
        self._cursor_lock = threading.Lock()
        self.build_id = build
        self.rows = len(day)
        self.viewers = viewers
        # Rows are stored in day order by every build; an incremental refresh may append days
        # out of order, so the order is checked and a stable sort applied if needed.
        self._order: np.ndarray | None = None
        if self.rows and bool(np.any(day[1:] < day[:-1])):
            self._order = np.argsort(day, kind="stable")
            day = day[self._order]
        self.first_day = int(day[0]) if self.rows else 0
        last = int(day[-1]) if self.rows else -1
        self._offsets = np.searchsorted(day, np.arange(self.first_day, last + 2)).astype(np.int64)
        self.viewer = self._ordered(viewer)
        self._columns: dict[str, tuple[np.ndarray, dict[str, int], list[str]]] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self._daily: np.ndarray | None = None

    @classmethod
    def load(
        cls, cursor: duckdb.DuckDBPyConnection, build: str, max_rows: int
    ) -> ViewerIndex | None:
        (rows,) = cursor.execute("SELECT count(*) FROM dv_view").fetchone()
        if rows > max_rows:
            log.info(
                "dv_view has %s rows, more than %s: distinct counts run in SQL", rows, max_rows
            )
            return None
        (count,) = cursor.execute("SELECT count(*) FROM dv_viewer_index").fetchone()
        arrays = cursor.execute(
            "SELECT rowid AS r, CAST(date_diff('day', DATE '1970-01-01', day) AS INTEGER) AS d, "
            "viewer_idx AS v FROM dv_view"
        ).fetchnumpy()
        if any(np.ma.isMaskedArray(a) for a in arrays.values()):
            return None  # a NULL day or viewer number: leave such an extract to SQL
        return cls(
            build,
            _by_rowid(arrays["r"], arrays["d"], rows, "day").astype(np.int32),
            _by_rowid(arrays["r"], arrays["v"], rows, "viewer_idx").astype(np.int32),
            max(int(count), 1),
        )

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays loaded so far."""
        arrays = [self._offsets, self.viewer, *self._numbers.values()]
        arrays += [codes for codes, _lookup, _values in self._columns.values()]
        total = sum(a.nbytes for a in arrays)
        return total + (self._order.nbytes if self._order is not None else 0)

    def _ordered(self, values: np.ndarray) -> np.ndarray:
        out = values[self._order] if self._order is not None else values
        out.flags.writeable = False
        return out

    # --- columns ---------------------------------------------------------------------------------
    def column(
        self, name: str, cursor: duckdb.DuckDBPyConnection
    ) -> tuple[np.ndarray, dict[str, int], list[str]]:
        """(codes per row (-1 for NULL), text value -> code, code -> text value) of a column."""
        if name not in _TEXT_COLUMNS | _INT_COLUMNS:
            raise KeyError(f"dv_view column {name!r} is not indexed")
        found = self._columns.get(name)
        if found is not None:
            return found
        with self._cursor_lock:
            found = self._columns.get(name)
            if found is None:
                found = self._load_column(name, cursor)
                self._columns[name] = found
        return found

    def _load_column(
        self, name: str, cursor: duckdb.DuckDBPyConnection
    ) -> tuple[np.ndarray, dict[str, int], list[str]]:
        codes, lookup, values = load_codes(cursor, "dv_view", name, text=name in _TEXT_COLUMNS)
        if len(codes) != self.rows:
            raise IndexMismatch(f"dv_view.{name}: {len(codes)} rows, expected {self.rows}")
        return self._ordered(codes), lookup, values

    # --- counting --------------------------------------------------------------------------------
    def _day_span(self, i: int) -> slice:
        return slice(int(self._offsets[i]), int(self._offsets[i + 1]))

    def _daily_viewers(self) -> np.ndarray:
        """Distinct viewers of every day (computed once, on first use)."""
        with self._cursor_lock:
            if self._daily is None:
                counts = np.zeros(len(self._offsets) - 1, dtype=np.int64)
                seen = np.zeros(self.viewers, dtype=bool)
                for i in range(len(counts)):
                    day = self.viewer[self._day_span(i)]
                    seen[day] = True
                    counts[i] = np.count_nonzero(seen)
                    seen[day] = False
                self._daily = counts
        return self._daily

    def _slice(self, lo: date, hi: date) -> slice:
        a = max((lo - _EPOCH).days - self.first_day, 0)
        b = min((hi - _EPOCH).days - self.first_day + 1, len(self._offsets) - 1)
        if b <= a:
            return slice(0, 0)
        return slice(int(self._offsets[a]), int(self._offsets[b]))

    def _allowed(
        self, name: str, wanted: Sequence[str], cursor: duckdb.DuckDBPyConnection
    ) -> tuple[np.ndarray, np.ndarray]:
        codes, lookup, _values = self.column(name, cursor)
        if name in _TEXT_COLUMNS:
            allowed = sorted({lookup[v] for v in wanted if v in lookup})
        else:
            allowed = sorted({int(v) for v in wanted if _INTEGER.fullmatch(str(v))})
        return codes, np.asarray(allowed, dtype=np.int64)

    def aggregate(
        self,
        cursor: duckdb.DuckDBPyConnection,
        aggregates: Sequence[str],
        windows: Sequence[tuple[date, date]],
        conditions: Mapping[str, Sequence[str]],
        scope_ids: Sequence[int] | None,
        by: str | None,
    ) -> list[dict[str | None, dict[str, float]]]:
        """The view family's base aggregates per window and group of ``by``, as dicts.

        See ``aggregate_arrays`` for the arguments. A window's dict holds only groups with rows.
        """
        out: list[dict[str | None, dict[str, float]]] = []
        for found in self.aggregate_arrays(cursor, aggregates, windows, conditions, scope_ids, by):
            if found is None:
                out.append({})
                continue
            labels, columns = found
            lists = {agg: columns[agg].tolist() for agg in aggregates}
            out.append(
                {
                    label: {agg: float(lists[agg][i]) for agg in aggregates}
                    for i, label in enumerate(labels)
                }
            )
        return out

    def aggregate_arrays(
        self,
        cursor: duckdb.DuckDBPyConnection,
        aggregates: Sequence[str],
        windows: Sequence[tuple[date, date]],
        conditions: Mapping[str, Sequence[str]],
        scope_ids: Sequence[int] | None,
        by: str | None,
    ) -> list[tuple[list[str | None], dict[str, np.ndarray]] | None]:
        """The view family's base aggregates per window and group of ``by``.

        ``aggregates`` are names of AGGREGATES. ``conditions`` maps dv_view columns to allowed
        text values (as the SQL filters: equality, a NULL matches nothing, an integer column
        ignores non-numbers); ``scope_ids`` restricts creator_id (None: every creator, empty:
        nothing). Per window: None when no row falls in it, else the groups with rows (their
        value as text, None for NULL) and one array per aggregate, aligned with the groups.
        """
        unknown = set(aggregates) - set(AGGREGATES)
        if unknown:
            raise KeyError(f"not an index aggregate: {sorted(unknown)}")
        spans = [self._slice(lo, hi) for lo, hi in windows]
        filled = [s for s in spans if s.stop > s.start]
        if not filled:
            return [None for _ in windows]
        # Filter the rows of all windows at once (a trend's windows are one contiguous run).
        first, last = min(s.start for s in filled), max(s.stop for s in filled)
        whole = slice(first, last)
        checks = [self._allowed(name, wanted, cursor) for name, wanted in conditions.items()]
        if scope_ids is not None:
            creators = self.column("creator_id", cursor)[0]
            checks.append((creators, np.asarray(sorted(set(scope_ids)), dtype=np.int64)))
        mask: np.ndarray | None = None
        for codes, allowed in checks:
            part = _member(codes[whole], allowed)
            mask = part if mask is None else mask & part

        # Gathering by row numbers is several times faster than boolean indexing in numpy.
        picked = None if mask is None else np.flatnonzero(mask)

        def rows_of(array: np.ndarray) -> np.ndarray:
            part = array[whole]
            return part if picked is None else np.take(part, picked)

        inputs: dict[str, tuple[np.ndarray, int]] = {}
        for agg in aggregates:
            if agg == "viewers":
                inputs[agg] = (rows_of(self.viewer), self.viewers)
            elif agg == "titles_started":
                # Shifted by one: a NULL (-1) title counts as one title, as in SQL.
                titles = self.column("title_id", cursor)[0]
                inputs[agg] = (rows_of(titles).astype(np.int64) + 1, int(titles.max()) + 2)
            elif agg != "starts":
                inputs[agg] = (rows_of(self.numbers(AGGREGATES[agg], cursor)), 0)
        keys = rows_of(self.column(by, cursor)[0]) if by is not None else None
        names = self.column(by, cursor)[2] if by is not None else []
        position = None
        if picked is not None:
            # Where each window starts and ends among the picked rows.
            bounds = sorted({s.start - first for s in filled} | {s.stop - first for s in filled})
            position = dict(zip(bounds, np.searchsorted(picked, bounds).tolist(), strict=True))
        # Unfiltered one-day windows (a daily trend) read the exact daily count kept per day.
        daily = (
            {_key(self._day_span(i)): i for i in range(len(self._offsets) - 1)}
            if (mask is None and keys is None and "viewers" in aggregates and len(spans) > 1)
            else {}
        )
        out: list[tuple[list[str | None], dict[str, np.ndarray]] | None] = []
        for span in spans:
            if span.stop <= span.start:
                out.append(None)
                continue
            a, b = span.start - first, span.stop - first
            if position is not None:
                a, b = position[a], position[b]
            if b <= a:
                out.append(None)
                continue
            present = None
            if keys is None:
                group, labels = None, [None]
            elif not any(agg in ("viewers", "titles_started") for agg in aggregates):
                # Sums only: bin by the code itself and keep the codes seen (no renumbering).
                group, labels, present = _sparse_groups(keys[a:b], names, by in _INT_COLUMNS)
            else:
                group, labels = _groups(keys[a:b], names, by in _INT_COLUMNS)
            bins = len(labels) if present is None else len(present)
            columns: dict[str, np.ndarray] = {}
            for agg in aggregates:
                if agg == "starts":
                    columns[agg] = (
                        np.asarray([float(b - a)])
                        if group is None
                        else np.bincount(group, minlength=bins).astype(np.float64)
                    )
                elif agg == "viewers" and group is None and mask is None and _key(span) in daily:
                    columns[agg] = np.asarray([float(self._daily_viewers()[daily[_key(span)]])])
                elif agg in ("viewers", "titles_started"):
                    values, size = inputs[agg]
                    columns[agg] = distinct(values[a:b], size, group, len(labels))
                else:
                    values = inputs[agg][0][a:b]
                    if group is None:
                        kind = np.float64 if values.dtype.kind == "f" else np.int64
                        columns[agg] = np.asarray([float(values.sum(dtype=kind))])
                    else:
                        columns[agg] = np.bincount(group, weights=values, minlength=bins)
            if present is not None:
                columns = {agg: column[present] for agg, column in columns.items()}
            out.append((labels, columns))
        return out

    def window_rows(
        self,
        cursor: duckdb.DuckDBPyConnection,
        lo: date,
        hi: date,
        conditions: Mapping[str, Sequence[str]],
        scope_ids: Sequence[int] | None,
        numbers: Sequence[str] = (),
        with_days: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """The rows of days [lo, hi] that match ``conditions`` and the scope (as in
        ``aggregate_arrays``): their positions in the index, their viewer numbers, their
        ``numbers`` (names of ``_NUMBERS``) and, ``with_days``, their days (since 1970)."""
        span = self._slice(lo, hi)
        checks = [self._allowed(name, wanted, cursor) for name, wanted in conditions.items()]
        if scope_ids is not None:
            creators = self.column("creator_id", cursor)[0]
            checks.append((creators, np.asarray(sorted(set(scope_ids)), dtype=np.int64)))
        picked: np.ndarray | None = None
        for codes, allowed in checks:
            part = _member(codes[span], allowed)
            picked = part if picked is None else picked & part
        rows = None if picked is None else np.flatnonzero(picked)
        positions = np.arange(span.start, span.stop, dtype=np.int64)
        days = None
        if with_days and span.stop > span.start:
            # Rows are in day order: each day's rows are a run, as long as the day's count.
            first = int(np.searchsorted(self._offsets, span.start, side="right")) - 1
            last = int(np.searchsorted(self._offsets, span.stop - 1, side="right")) - 1
            counts = np.diff(np.clip(self._offsets[first : last + 2], span.start, span.stop))
            days = np.repeat(np.arange(first, last + 1, dtype=np.int64) + self.first_day, counts)
        elif with_days:
            days = np.zeros(0, dtype=np.int64)
        if rows is not None:
            positions = positions[rows]
            days = days[rows] if days is not None else None
        viewers = self.viewer[span] if rows is None else np.take(self.viewer[span], rows)
        values = {
            n: self.numbers(n, cursor)[span] if rows is None else self.numbers(n, cursor)[positions]
            for n in numbers
        }
        return positions, viewers, values, days

    def span(self, lo: date, hi: date) -> slice:
        """The positions of the rows of days [lo, hi] (a contiguous slice: rows are in day
        order)."""
        return self._slice(lo, hi)

    def days_of(self, positions: np.ndarray) -> np.ndarray:
        """The day (days since 1970) of rows at these positions of the index."""
        return np.searchsorted(self._offsets, positions, side="right") - 1 + self.first_day

    def numbers(self, name: str, cursor: duckdb.DuckDBPyConnection) -> np.ndarray:
        """A numeric input of dv_view (``_NUMBERS``) in index order, in the smallest type."""
        if name not in _NUMBERS:
            raise KeyError(f"dv_view number {name!r} is not indexed")
        found = self._numbers.get(name)
        if found is not None:
            return found
        with self._cursor_lock:
            found = self._numbers.get(name)
            if found is None:
                arrays = cursor.execute(
                    f"SELECT rowid AS r, {_NUMBERS[name]} AS x FROM dv_view"
                ).fetchnumpy()
                values = _by_rowid(arrays["r"], arrays["x"], self.rows, name)
                found = self._ordered(values if values.dtype.kind == "f" else _compact(values))
                self._numbers[name] = found
        return found


def _groups(
    keys: np.ndarray, names: list[str], integer: bool
) -> tuple[np.ndarray, list[str | None]]:
    """Dense group numbers for codes (-1 = NULL), and each group's key as text."""
    shifted = keys.astype(np.int64) + 1  # NULL (-1) is 0
    if int(shifted.max()) < _LOOKUP_LIMIT:
        present = np.flatnonzero(np.bincount(shifted))
        slot = np.zeros(int(present[-1]) + 1, dtype=np.int64)
        slot[present] = np.arange(len(present))
        group = slot[shifted]
    else:
        present, group = np.unique(shifted, return_inverse=True)
    labels: list[str | None] = [
        None if code == 0 else (str(code - 1) if integer else names[code - 1])
        for code in present.tolist()
    ]
    return group.astype(np.int64), labels


def _sparse_groups(
    keys: np.ndarray, names: list[str], integer: bool
) -> tuple[np.ndarray, list[str | None], np.ndarray | None]:
    """Codes shifted by one (NULL is 0) as bin numbers, the labels of the bins with rows, and
    those bins; renumbered densely (``_groups``) when the codes are too large to bin."""
    shifted = keys.astype(np.intp) + 1
    if int(shifted.max()) >= _LOOKUP_LIMIT:
        group, labels = _groups(keys, names, integer)
        return group, labels, None
    present = np.flatnonzero(np.bincount(shifted))
    labels: list[str | None] = [
        None if code == 0 else (str(code - 1) if integer else names[code - 1])
        for code in present.tolist()
    ]
    return shifted, labels, present


def distinct(values: np.ndarray, size: int, group: np.ndarray | None, groups: int) -> np.ndarray:
    """Distinct values per group: marks in a (group, value) table, or a sort when it is big."""
    if group is None or groups == 1:
        seen = np.zeros(size, dtype=bool)
        seen[values] = True
        return np.asarray([float(np.count_nonzero(seen))])
    combined = group * size + values
    if groups * size <= _MARK_CELLS:
        seen = np.zeros(groups * size, dtype=bool)
        seen[combined] = True
        return np.asarray(
            [float(np.count_nonzero(seen[i * size : (i + 1) * size])) for i in range(groups)]
        )
    return np.bincount(np.unique(combined) // size, minlength=groups).astype(np.float64)


def load_codes(
    cursor: duckdb.DuckDBPyConnection, table: str, column: str, *, text: bool
) -> tuple[np.ndarray, dict[str, int], list[str]]:
    """A column as small integer codes in rowid order: (codes, value -> code, code -> value).

    Text becomes its position among the column's sorted distinct values, integers stay as
    they are; NULL is -1. ``table`` and ``column`` come from the callers' allowlists.
    """
    ident = '"' + column + '"'
    values: list[str] = []
    params: list[object] = []
    if text:
        values = [
            str(v)
            for (v,) in cursor.execute(
                f"SELECT DISTINCT {ident} FROM {table} WHERE {ident} IS NOT NULL ORDER BY 1"
            ).fetchall()
        ]
        # The value's position in the (bound) list of distinct values.
        expr = f"list_position(?::VARCHAR[], {ident}) - 1"
        params = [values]
    else:
        expr = f"CAST({ident} AS INTEGER)"
    arrays = cursor.execute(
        f"SELECT rowid AS r, coalesce({expr}, -1) AS c FROM {table}", params
    ).fetchnumpy()
    codes = _compact(_by_rowid(arrays["r"], arrays["c"], len(arrays["r"]), column))
    return codes, {v: i for i, v in enumerate(values)}, values


def member(codes: np.ndarray, allowed_values: Sequence[str], lookup: dict[str, int]) -> np.ndarray:
    """Rows whose text code is one of ``allowed_values`` (unknown values match nothing)."""
    allowed = np.asarray(sorted({lookup[v] for v in allowed_values if v in lookup}), np.int64)
    return _member(codes, allowed)


def _key(span: slice) -> tuple[int, int]:
    return (span.start, span.stop)


def _by_rowid(rowid: np.ndarray, values: np.ndarray, rows: int, name: str) -> np.ndarray:
    """A column in rowid order, whatever order the scan returned it in.

    Every column is read by its own query; putting each in rowid order makes them line up
    row for row (a plain scan already returns rowid order, so this is normally a check).
    """
    rowid, values = np.asarray(rowid), np.asarray(values)
    if len(rowid) != rows:
        raise IndexMismatch(f"dv_view.{name}: {len(rowid)} rows, expected {rows}")
    if len(rowid) > 1 and not bool(np.all(rowid[1:] > rowid[:-1])):
        values = values[np.argsort(rowid, kind="stable")]
    return values


def _compact(values: np.ndarray) -> np.ndarray:
    """Integers in the smallest signed type that holds them (codes and counts: 1-4 bytes)."""
    if not len(values):
        return values.astype(np.int8)
    low, high = int(values.min()), int(values.max())
    for kind in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return values.astype(kind)
    return values


def _member(codes: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """codes IN allowed; a NULL (-1) is never a member."""
    if not len(allowed):
        return np.zeros(len(codes), dtype=bool)
    if codes.dtype.itemsize <= 2 and int(allowed.min()) >= 0:
        # Small codes: one lookup in a table over every value of the type, read unsigned (a
        # NULL, -1, reads as the largest, which is never allowed).
        bits = 8 * codes.dtype.itemsize
        table = np.zeros(1 << bits, dtype=bool)
        table[allowed[allowed < 1 << (bits - 1)]] = True
        return table[codes.view(np.dtype(f"uint{bits}"))]
    return np.isin(codes, allowed)
