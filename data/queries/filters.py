"""What the user asked to see: a date range with a comparison period, and dimension filters.

``Filters`` is a frozen, hashable value: it is part of every query cache key, it round-trips
through URL query parameters (``to_query_params`` / ``from_query_params``) and it renders itself
to SQL only as a WHERE fragment over allowlisted columns with every value bound as a parameter.

Dates are UTC calendar days and ranges are inclusive at both ends. Presets are resolved against
an *anchor*: the last day with data in the extract (``data.queries.metrics.data_bounds``), not the wall
clock, because a synced extract may lag the calendar.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, ClassVar

PRESETS: tuple[str, ...] = (
    "last_7_days",
    "last_28_days",
    "last_90_days",
    "month_to_date",
    "quarter_to_date",
    "year_to_date",
    "custom",
)
PRESET_LABELS: dict[str, str] = {
    "last_7_days": "Last 7 days",
    "last_28_days": "Last 28 days",
    "last_90_days": "Last 90 days",
    "month_to_date": "Month to date",
    "quarter_to_date": "Quarter to date",
    "year_to_date": "Year to date",
    "custom": "Custom range",
}
COMPARISONS: tuple[str, ...] = ("previous_period", "same_period_last_year", "none")
COMPARISON_LABELS: dict[str, str] = {
    "previous_period": "Previous period",
    "same_period_last_year": "Same period last year",
    "none": "No comparison",
}
DEFAULT_PRESET = "last_28_days"
DEFAULT_COMPARISON = "previous_period"


class FiltersError(ValueError):
    """Filters that cannot be used; the message says which field and why, fit to show a user."""


@dataclass(frozen=True)
class Dimension:
    """A dimension users may filter and break down by. ``field`` is the Filters attribute."""

    name: str
    field: str
    label: str
    integer: bool = False


# The allowlist: the only dimension names a filter, a breakdown or a query parameter may use.
DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension("country", "countries", "Country"),
        Dimension("device", "devices", "Device"),
        Dimension("genre", "genres", "Genre"),
        Dimension("kind", "kinds", "Title kind"),
        Dimension("creator", "creators", "Creator", integer=True),
        Dimension("plan", "plans", "Plan"),
        Dimension("age_band", "age_bands", "Age band"),
    )
}
_FIELD_TO_DIMENSION = {d.field: d for d in DIMENSIONS.values()}
# A column expression a query may filter on: a plain or table-qualified identifier, nothing else.
_COLUMN_RE = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def _check_column(column: str) -> str:
    if not _COLUMN_RE.match(column):
        raise ValueError(f"{column!r} is not an allowlisted column identifier")
    return column


def preset_range(preset: str, anchor: date) -> tuple[date, date]:
    """The inclusive (start, end) a preset means when the last day with data is ``anchor``."""
    if preset == "last_7_days":
        return anchor - timedelta(days=6), anchor
    if preset == "last_28_days":
        return anchor - timedelta(days=27), anchor
    if preset == "last_90_days":
        return anchor - timedelta(days=89), anchor
    if preset == "month_to_date":
        return anchor.replace(day=1), anchor
    if preset == "quarter_to_date":
        return anchor.replace(month=(anchor.month - 1) // 3 * 3 + 1, day=1), anchor
    if preset == "year_to_date":
        return anchor.replace(month=1, day=1), anchor
    if preset == "custom":
        raise FiltersError("A custom range needs its own start and end dates.")
    raise FiltersError(
        f"Unknown date preset {preset!r}; choose one of: {', '.join(PRESET_LABELS.values())}."
    )


def year_earlier(d: date, *, first: bool) -> date:
    """The same calendar date a year earlier, for the first (``first``) or last day of a range.

    29 February has no counterpart in a year without one: a range starting on it starts on
    1 March a year earlier, a range ending on it ends on 28 February, so that no earlier day
    is counted in two consecutive ranges, and a range that is only 29 February maps to none.
    """
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return date(d.year - 1, 3, 1) if first else date(d.year - 1, 2, 28)


def _canonical_values(name: str, values: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str | int):
        values = (values,)
    out: set[str] = set()
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int):
            raise FiltersError(f"Filter {name!r} takes text values, not {type(v).__name__}.")
        out.add(str(v))
    # Sorted and de-duplicated, so equal selections are equal (and hash equal) cache keys.
    return tuple(sorted(out))


@dataclass(frozen=True)
class Filters:
    """A resolved date range, its comparison period and dimension filters (empty = no filter).

    Dimension values are always text (creator ids as decimal strings); an empty tuple means the
    dimension is not filtered. Values that match nothing simply select no rows.
    """

    start: date
    end: date
    preset: str = "custom"
    comparison: str = DEFAULT_COMPARISON
    countries: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    genres: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    creators: tuple[str, ...] = ()
    plans: tuple[str, ...] = ()
    age_bands: tuple[str, ...] = ()

    DIMENSION_FIELDS: ClassVar[tuple[str, ...]] = tuple(_FIELD_TO_DIMENSION)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            # datetime is a date subclass; a time of day would silently shift UTC day bounds.
            if not isinstance(value, date) or type(value) is not date:
                raise FiltersError(f"{name} must be a calendar date, got {value!r}.")
        if self.start > self.end:
            raise FiltersError(
                f"The start date {self.start.isoformat()} is after the end date {self.end.isoformat()}."
            )
        if self.preset not in PRESETS:
            raise FiltersError(
                f"Unknown date preset {self.preset!r}; choose one of: {', '.join(PRESET_LABELS.values())}."
            )
        if self.comparison not in COMPARISONS:
            raise FiltersError(
                f"Unknown comparison {self.comparison!r}; choose one of: {', '.join(COMPARISON_LABELS.values())}."
            )
        for name in self.DIMENSION_FIELDS:
            object.__setattr__(self, name, _canonical_values(name, getattr(self, name)))

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def for_preset(
        cls,
        preset: str = DEFAULT_PRESET,
        anchor: date | None = None,
        *,
        start: date | None = None,
        end: date | None = None,
        comparison: str = DEFAULT_COMPARISON,
        **dimensions: Iterable[str | int],
    ) -> Filters:
        """Filters for a preset resolved against ``anchor`` (or a custom start/end)."""
        unknown = set(dimensions) - set(cls.DIMENSION_FIELDS)
        if unknown:
            raise FiltersError(f"Unknown filter {sorted(unknown)[0]!r}.")
        if preset == "custom":
            if start is None or end is None:
                raise FiltersError("A custom range needs both a start and an end date.")
            lo, hi = start, end
        else:
            if anchor is None:
                raise FiltersError("A preset needs the anchor date (the last day with data).")
            lo, hi = preset_range(preset, anchor)
        return cls(lo, hi, preset, comparison, **dimensions)  # type: ignore[arg-type]

    def with_dimension(self, dimension: str, values: Iterable[str | int]) -> Filters:
        """A copy with one dimension's values replaced (an empty iterable removes the filter)."""
        return replace(self, **{dimension_field(dimension): tuple(values)})

    def within_data(self, first_day: date, last_day: date) -> Filters | None:
        """A custom range clamped to the days that have data; None when it holds none of them.

        Presets are resolved against the data already; a custom range from a link or a saved
        view may reach outside it, and a date picker cannot show dates outside its bounds.
        """
        if self.preset != "custom" or (first_day <= self.start and self.end <= last_day):
            return self
        if self.end < first_day or self.start > last_day:
            return None
        return replace(self, start=max(self.start, first_day), end=min(self.end, last_day))

    # --- periods ---------------------------------------------------------------------------------
    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def period(self) -> tuple[date, date]:
        return self.start, self.end

    @property
    def comparison_period(self) -> tuple[date, date] | None:
        """The comparison range: the equal-length period directly before, or the same calendar
        dates a year earlier (``year_earlier``); None without one, or when the period is only
        29 February (last year has no such day)."""
        if self.comparison == "none":
            return None
        if self.comparison == "previous_period":
            return self.start - timedelta(days=self.days), self.start - timedelta(days=1)
        lo, hi = year_earlier(self.start, first=True), year_earlier(self.end, first=False)
        return (lo, hi) if lo <= hi else None

    # --- dimensions ------------------------------------------------------------------------------
    def values(self, dimension: str) -> tuple[str, ...]:
        return getattr(self, dimension_field(dimension))

    @property
    def active_dimensions(self) -> frozenset[str]:
        """Names of the dimensions that are filtered."""
        return frozenset(d.name for d in DIMENSIONS.values() if getattr(self, d.field))

    def where(
        self,
        columns: Mapping[str, str],
        *,
        skip: Collection[str] = (),
    ) -> tuple[str, list[Any]]:
        """A WHERE fragment (never empty: ``TRUE`` when nothing is filtered) and its parameters.

        ``columns`` maps dimension names to the allowlisted column each is stored in for the
        table being queried. Every active dimension not in ``skip`` must be in ``columns``;
        unknown dimension names raise. Values are bound (``?``), never written into the SQL.
        """
        for name in list(columns) + list(skip):
            if name not in DIMENSIONS:
                raise KeyError(f"unknown dimension {name!r}")
        parts: list[str] = []
        params: list[Any] = []
        for name in sorted(self.active_dimensions - set(skip)):
            if name not in columns:
                raise KeyError(f"dimension {name!r} has no column in this table")
            column = _check_column(columns[name])
            values: list[Any] = list(self.values(name))
            if DIMENSIONS[name].integer:
                # Text that is not a whole number can match no integer id: drop it, and if
                # nothing is left the filter selects nothing (never everything).
                values = [int(v) for v in values if re.fullmatch(r"-?[0-9]{1,18}", v)]
            if not values:
                parts.append("FALSE")
                continue
            parts.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
        return (" AND ".join(parts) or "TRUE"), params

    # --- URL query parameters --------------------------------------------------------------------
    def to_query_params(self) -> dict[str, str]:
        """Plain strings for the URL. A preset is kept relative (it rolls with the data)."""
        out: dict[str, str] = {}
        if self.preset == "custom":
            out["start"] = self.start.isoformat()
            out["end"] = self.end.isoformat()
        else:
            out["preset"] = self.preset
        if self.comparison != DEFAULT_COMPARISON:
            out["compare"] = self.comparison
        for d in DIMENSIONS.values():
            values = getattr(self, d.field)
            if values:
                out[d.name] = _join(values)
        return out

    @classmethod
    def from_query_params(cls, params: Mapping[str, str | Sequence[str]], anchor: date) -> Filters:
        """Parse URL query parameters; keys this object does not own are ignored.

        Raises ``FiltersError`` with a message fit for the user for a bad date, a start after
        the end, an unknown preset or comparison. Unknown dimension *values* are just values.
        """

        def one(key: str) -> str | None:
            value = params.get(key)
            if value is None:
                return None
            if not isinstance(value, str):
                value = value[-1] if len(value) else ""
            return value

        preset = one("preset")
        start_text, end_text = one("start"), one("end")
        if preset is None:
            preset = "custom" if (start_text or end_text) else DEFAULT_PRESET
        if preset not in PRESETS:
            raise FiltersError(
                f"Unknown date preset {preset!r}; choose one of: {', '.join(PRESET_LABELS.values())}."
            )
        start = _parse_date("start", start_text) if preset == "custom" else None
        end = _parse_date("end", end_text) if preset == "custom" else None
        comparison = one("compare") or DEFAULT_COMPARISON
        dims: dict[str, tuple[str, ...]] = {}
        for d in DIMENSIONS.values():
            raw = params.get(d.name)
            if raw is None:
                continue
            # A present parameter is always a filter, even "country=" (the empty value): reading
            # it as "no filter" would widen what the bookmarked view shows.
            if isinstance(raw, str):
                dims[d.field] = tuple(_split(raw))
            else:
                dims[d.field] = tuple(v for item in raw for v in _split(item))
        return cls.for_preset(preset, anchor, start=start, end=end, comparison=comparison, **dims)


def dimension_field(dimension: str) -> str:
    """The Filters attribute holding a dimension's values; unknown names raise KeyError."""
    if dimension not in DIMENSIONS:
        raise KeyError(f"unknown dimension {dimension!r}")
    return DIMENSIONS[dimension].field


def _parse_date(name: str, text: str | None) -> date:
    if not text:
        raise FiltersError(f"A custom range needs a {name} date (YYYY-MM-DD).")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FiltersError(
            f"The {name} date {text[:40]!r} is not a date like 2026-10-31."
        ) from None


# Several values share one query parameter, comma separated; a comma or backslash inside a value
# is escaped with a backslash so any text round-trips.
def _join(values: Iterable[str]) -> str:
    return ",".join(v.replace("\\", "\\\\").replace(",", "\\,") for v in values)


def _split(text: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ",":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return out


@dataclass(frozen=True)
class Scope:
    """Which creators' rows a caller may see: all (``creator_ids is None``) or an explicit list.

    An explicit empty tuple is a creator with no titles: every scoped query returns nothing for
    it, never everything (SECURITY.md #7). Hashable, so it is part of every cache key (#8).
    """

    creator_ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.creator_ids is not None:
            ids = tuple(sorted({int(c) for c in self.creator_ids}))
            object.__setattr__(self, "creator_ids", ids)

    @classmethod
    def everything(cls) -> Scope:
        return cls(None)

    @classmethod
    def creators(cls, creator_ids: Iterable[int]) -> Scope:
        return cls(tuple(creator_ids))

    @property
    def is_all(self) -> bool:
        return self.creator_ids is None

    def narrow(self, creator_ids: Iterable[int] | None) -> Scope:
        """The part of this scope that is also in ``creator_ids`` (None: no narrowing).

        Never widens: a creator asking for another creator's id (a changed URL, widget or session
        value) gets an empty scope, and so sees nothing of theirs.
        """
        if creator_ids is None:
            return self
        wanted = {int(c) for c in creator_ids}
        if self.creator_ids is None:
            return Scope(tuple(wanted))
        return Scope(tuple(c for c in self.creator_ids if c in wanted))

    def where(self, column: str) -> tuple[str, list[Any]]:
        """A WHERE fragment restricting ``column`` (a creator id column) to this scope."""
        column = _check_column(column)
        if self.creator_ids is None:
            return "TRUE", []
        if not self.creator_ids:
            return "FALSE", []
        return f"{column} IN ({', '.join('?' * len(self.creator_ids))})", list(self.creator_ids)


ALL_CREATORS = Scope.everything()

__all__ = [
    "ALL_CREATORS",
    "COMPARISONS",
    "COMPARISON_LABELS",
    "DIMENSIONS",
    "PRESETS",
    "PRESET_LABELS",
    "Dimension",
    "Filters",
    "FiltersError",
    "Scope",
    "dimension_field",
    "preset_range",
    "year_earlier",
]
