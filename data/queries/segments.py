"""Audience segments: rule definitions marketers build, validated, described and compiled to SQL.

A segment definition is a versioned JSON document (the page's builder and the viewer clusters of
models/segmentation.py both emit it)::

    {"version": 1,
     "window": {"last_days": 30},        # or {"start": "2026-01-01", "end": "2026-03-31"}
     "match": {"op": "and", "items": [CONDITION | GROUP, ...], "negate": false}}

    CONDITION = {"type": T, ...its fields, "negate": false}

``CONDITION_TYPES`` lists every type with its fields (the builder draws its forms from it).
Viewer properties (country, region, age band, current plan, acquisition channel, signup date)
are those of ``dim_viewer`` now; behaviour is counted over the window's UTC days (inclusive):

- sessions, watch hours, distinct titles, completed sessions, active days and devices from
  ``dv_view`` (the plausible view sessions), optionally of one genre, title kind, title or
  creator;
- pay-per-view purchases from ``fact_revenue`` (stream ``ppv``; the plausibility rules of
  data/extract/plausibility.py applied, as every metric does);
- interactions from ``fact_interaction`` (optionally of one kind: poll, qa, reaction);
- subscribed / churned / re-subscribed from ``dv_subscription`` (the plausible
  subscriptions): *subscribed* started a subscription in the window; *churned* had a
  subscription end in the window and none active at the end of its last day (one that started
  on or before that day and did not end on or before it); *re-subscribed* started a
  subscription in the window that is not the viewer's first.

The population is every viewer of ``dim_viewer``; a viewer with no behaviour in the window has
0 of every count, so ``watch_hours`` at most 0, or a negated condition, includes the inactive.
Numeric bounds are inclusive; a negated condition or group is its complement in the
population (a viewer with an unknown property does not match the property, so matches its
negation).

``parse_definition`` validates a document (a dict, or JSON text up to 64 KB) into a frozen,
hashable ``SegmentDefinition``; anything wrong raises ``SegmentDefinitionError`` whose message
starts with the path of the field (``match.items[1].min: must be a number ≥ 0, got "abc"``).
``to_json`` gives the canonical document back (lists sorted and de-duplicated), which parses to
an equal definition.

SQL: ``compile_segment`` renders one statement. Each source the definition needs is aggregated
once per statement, over the window only, grouped by viewer (one CTE per source holding every
aggregate its conditions need, each a ``FILTER``ed aggregate; equal aggregates are shared);
the CTEs are left-joined to ``dim_viewer``, every condition becomes one boolean column (never
NULL), and the AND/OR tree combines those columns. Distinct days are set bits of 64-day masks
(``bit_or``, an ordinary aggregate of the same pass: half the time of ``count(DISTINCT day)``);
subscription sources read only the rows that can matter (started in the window; or, for churn,
the viewers with a subscription ending in it). Every value of the document is a bound
parameter; table and column names come only from the fixed mappings below. The query functions
(size, funnel, overlap, members) add their own final SELECT to the same CTEs, so each is one
statement; the profile first lists the window's devices and genres (a small query), then counts
them per viewer as bit masks in the same one pass. Measured in bench/segments.py: at 10M views /
500k viewers a live size is about 2-3x the machine's own floor (counting the window's distinct
viewers), whatever the definition, except distinct titles (a true distinct count).

Viewers are every creator's audience: no creator scope applies to a viewer, so the query
functions refuse any scope other than all creators (``PermissionError``): the page is for
internal roles only.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import combinations
from typing import Any

import duckdb
import pandas as pd

from data.extract.derived import extract_as_of
from data.extract.plausibility import plausible_sql
from data.queries.filters import Scope

SCHEMA_VERSION = 1

# Limits of a definition (anything beyond is a SegmentDefinitionError).
MAX_DEPTH = 5  # groups nested in groups: the top-level group is depth 1
MAX_CONDITIONS = 50
MAX_LIST = 500  # values of one any_of
MAX_TEXT = 200  # characters of one text value
MAX_JSON_BYTES = 64 * 1024
MAX_LAST_DAYS = 3660
MAX_NUMBER = 1e9
MIN_DATE = date(1900, 1, 1)
MAX_DATE = date(2999, 12, 31)

DEVICES: tuple[str, ...] = ("tv", "mobile", "web", "tablet", "console")
TITLE_KINDS: tuple[str, ...] = ("movie", "episode", "live")
INTERACTION_KINDS: tuple[str, ...] = ("poll", "qa", "reaction")
OPS: tuple[str, ...] = ("and", "or")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MAX_ID = 2**63 - 1

# Filter keys a behaviour condition may narrow by: key -> (label, the value's kind).
FILTER_KEYS: dict[str, tuple[str, str]] = {
    "genre": ("Genre", "text"),
    "kind": ("Kind", "text"),
    "title_id": ("Title", "id"),
    "creator_id": ("Creator", "id"),
}


class SegmentDefinitionError(ValueError):
    """A definition that does not validate; the message starts with the field's path."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


@dataclass(frozen=True)
class ConditionSpec:
    """What a condition type holds, for building its form.

    ``input`` is how its value is given: ``list`` (``any_of``: a list of text values; from
    ``choices`` when those are given), ``range`` (a number ``min`` and/or ``max``, inclusive, ≥
    0), ``dates`` (``after`` and/or ``before``, ISO dates, inclusive) or ``flag`` (no value).
    ``filters`` are the optional keys narrowing a behaviour count (at most one per condition),
    ``filter_choices`` the fixed values of those that have them (title ``kind``; interaction
    ``kind``). ``windowed``: counted over the window (behaviour) or not (viewer properties).
    """

    type: str
    label: str
    category: str  # "viewer" | "behaviour"
    input: str  # "list" | "range" | "dates" | "flag"
    fields: tuple[str, ...]  # every key the condition may hold besides type and negate
    unit: str = ""
    filters: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    filter_choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    windowed: bool = False
    help: str = ""

    def choices_for(self, key: str) -> tuple[str, ...]:
        """The fixed values of filter ``key`` (empty: free text or an id)."""
        return dict(self.filter_choices).get(key, ())


def _viewer_list(type_: str, label: str, help_: str) -> ConditionSpec:
    return ConditionSpec(type_, label, "viewer", "list", ("any_of",), help=help_)


def _count(
    type_: str,
    label: str,
    unit: str,
    filters: tuple[str, ...],
    help_: str,
    filter_choices: tuple[tuple[str, tuple[str, ...]], ...] = (),
) -> ConditionSpec:
    return ConditionSpec(
        type_,
        label,
        "behaviour",
        "range",
        ("min", "max", *filters),
        unit=unit,
        filters=filters,
        filter_choices=filter_choices,
        windowed=True,
        help=help_,
    )


_TITLE_KIND = (("kind", TITLE_KINDS),)
CONDITION_TYPES: dict[str, ConditionSpec] = {
    s.type: s
    for s in (
        _viewer_list("country", "Country", "The viewer's home country (ISO 3166 code, e.g. US)."),
        _viewer_list("region", "Region", "The viewer's home region."),
        _viewer_list("age_band", "Age band", "The viewer's age band."),
        _viewer_list("plan", "Plan", "The viewer's current plan."),
        _viewer_list(
            "acquisition_channel", "Acquisition channel", "How the viewer first came to us."
        ),
        ConditionSpec(
            "signup_date",
            "Signup date",
            "viewer",
            "dates",
            ("after", "before"),
            help="Signed up on or after / on or before these dates.",
        ),
        _count(
            "watch_hours",
            "Hours watched",
            "hours",
            ("genre", "kind", "title_id", "creator_id"),
            "Hours watched in the window, overall or of one genre, kind, title or creator.",
            _TITLE_KIND,
        ),
        _count(
            "sessions",
            "Sessions",
            "sessions",
            ("genre", "kind", "title_id", "creator_id"),
            "View sessions started in the window.",
            _TITLE_KIND,
        ),
        _count(
            "distinct_titles",
            "Different titles",
            "titles",
            ("genre", "kind", "creator_id"),
            "Different titles started in the window.",
            _TITLE_KIND,
        ),
        _count(
            "completed",
            "Completed sessions",
            "completed sessions",
            ("genre", "kind", "title_id", "creator_id"),
            "Sessions that reached 90% of the title's runtime.",
            _TITLE_KIND,
        ),
        _count(
            "active_days",
            "Active days",
            "days",
            (),
            "Distinct days with at least one session in the window.",
        ),
        _count(
            "ppv_purchases",
            "Pay-per-view purchases",
            "purchases",
            (),
            "Pay-per-view purchases in the window.",
        ),
        _count(
            "interactions",
            "Interactions",
            "interactions",
            ("kind",),
            "Polls answered, Q&A and reactions during playback in the window.",
            (("kind", INTERACTION_KINDS),),
        ),
        ConditionSpec(
            "device",
            "Device used",
            "behaviour",
            "list",
            ("any_of",),
            choices=DEVICES,
            windowed=True,
            help="Had at least one session on one of these devices in the window.",
        ),
        ConditionSpec(
            "subscribed",
            "Subscribed",
            "behaviour",
            "flag",
            (),
            windowed=True,
            help="Started a subscription in the window.",
        ),
        ConditionSpec(
            "churned",
            "Churned",
            "behaviour",
            "flag",
            (),
            windowed=True,
            help="A subscription ended in the window and none is active at its last day.",
        ),
        ConditionSpec(
            "resubscribed",
            "Re-subscribed",
            "behaviour",
            "flag",
            (),
            windowed=True,
            help="Started a subscription in the window that is not the viewer's first.",
        ),
    )
}


# --- the definition --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The last ``last_days`` days up to the extract's last day with data, or [start, end]."""

    last_days: int | None = None
    start: date | None = None
    end: date | None = None

    def to_json(self) -> dict[str, Any]:
        if self.last_days is not None:
            return {"last_days": self.last_days}
        assert self.start is not None and self.end is not None
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True)
class Condition:
    """One condition; only the fields of its type are set (see CONDITION_TYPES)."""

    type: str
    any_of: tuple[str, ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    after: date | None = None
    before: date | None = None
    filter_key: str | None = None
    filter_value: str | int | None = None
    negate: bool = False

    @property
    def spec(self) -> ConditionSpec:
        return CONDITION_TYPES[self.type]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        spec = self.spec
        if spec.input == "list":
            out["any_of"] = list(self.any_of)
        elif spec.input == "range":
            if self.min is not None:
                out["min"] = self.min
            if self.max is not None:
                out["max"] = self.max
            if self.filter_key is not None:
                out[self.filter_key] = self.filter_value
        elif spec.input == "dates":
            if self.after is not None:
                out["after"] = self.after.isoformat()
            if self.before is not None:
                out["before"] = self.before.isoformat()
        out["negate"] = self.negate
        return out


@dataclass(frozen=True)
class Group:
    op: str
    items: tuple[Condition | Group, ...]
    negate: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "items": [item.to_json() for item in self.items],
            "negate": self.negate,
        }


@dataclass(frozen=True)
class SegmentDefinition:
    window: Window
    match: Group
    version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The canonical document: parses back to an equal definition."""
        return {
            "version": self.version,
            "window": self.window.to_json(),
            "match": self.match.to_json(),
        }

    @property
    def conditions(self) -> tuple[Condition, ...]:
        """Every condition, depth first."""
        return tuple(_leaves(self.match))

    @property
    def has_behaviour(self) -> bool:
        return any(c.spec.windowed for c in self.conditions)


def _leaves(node: Condition | Group) -> list[Condition]:
    if isinstance(node, Condition):
        return [node]
    return [leaf for item in node.items for leaf in _leaves(item)]


# --- validation ------------------------------------------------------------------------------------
def _show(value: Any) -> str:
    """A value for a message: JSON, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SegmentDefinitionError(path, f"must be an object, got {_type_name(value)}")
    for key in value:
        if not isinstance(key, str):
            raise SegmentDefinitionError(path, f"keys must be text, got {_show(key)}")
    return value


def _no_unknown(obj: Mapping[str, Any], allowed: Sequence[str], path: str, what: str) -> None:
    for key in obj:
        if key not in allowed:
            listed = ", ".join(allowed) if allowed else "none"
            raise SegmentDefinitionError(
                _join(path, key), f"unknown field for {what} (allowed: {listed})"
            )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise SegmentDefinitionError(path, f"must be text, got {_type_name(value)} {_show(value)}")
    if not value:
        raise SegmentDefinitionError(path, "must not be empty")
    if len(value) > MAX_TEXT:
        raise SegmentDefinitionError(
            path, f"must be at most {MAX_TEXT} characters, got {len(value)}"
        )
    # Format characters (bidi overrides, zero-width spaces) could make a value read as another.
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Cf") for ch in value):
        raise SegmentDefinitionError(
            path, f"must not hold control or invisible formatting characters, got {_show(value)}"
        )
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SegmentDefinitionError(path, f"must be true or false, got {_show(value)}")
    return value


def _number(value: Any, path: str) -> int | float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and isinstance(value, int) and value > MAX_NUMBER:
        # Checked before isfinite(), which overflows on a huge integer (10**400).
        raise SegmentDefinitionError(
            path, f"must be at most {MAX_NUMBER:,.0f}, got a larger number"
        )
    if not ok or not math.isfinite(value) or value < 0:
        raise SegmentDefinitionError(path, f"must be a number ≥ 0, got {_show(value)}")
    if value > MAX_NUMBER:
        raise SegmentDefinitionError(path, f"must be at most {MAX_NUMBER:,.0f}, got {_show(value)}")
    return value


def _int_id(value: Any, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_ID:
        raise SegmentDefinitionError(path, f"must be a whole number id ≥ 0, got {_show(value)}")
    return value


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str) or not _DATE_RE.match(value):
        raise SegmentDefinitionError(path, f"must be a date like 2026-01-31, got {_show(value)}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise SegmentDefinitionError(path, f"is not a real date: {_show(value)}") from None
    if not MIN_DATE <= parsed <= MAX_DATE:
        raise SegmentDefinitionError(
            path, f"must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}"
        )
    return parsed


def _window(value: Any, path: str) -> Window:
    obj = _object(value, path)
    if "last_days" in obj:
        _no_unknown(obj, ("last_days",), path, "a window of the last days")
        days = obj["last_days"]
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_LAST_DAYS:
            raise SegmentDefinitionError(
                _join(path, "last_days"),
                f"must be a whole number of days from 1 to {MAX_LAST_DAYS}, got {_show(days)}",
            )
        return Window(last_days=days)
    _no_unknown(obj, ("start", "end"), path, "a window of dates")
    for key in ("start", "end"):
        if key not in obj:
            raise SegmentDefinitionError(
                path, 'must hold either "last_days" or both "start" and "end"'
            )
    start = _date(obj["start"], _join(path, "start"))
    end = _date(obj["end"], _join(path, "end"))
    if start > end:
        raise SegmentDefinitionError(
            _join(path, "end"), f"is before the start ({start.isoformat()})"
        )
    return Window(start=start, end=end)


class _Parser:
    def __init__(self) -> None:
        self.conditions = 0

    def node(self, value: Any, path: str, depth: int) -> Condition | Group:
        obj = _object(value, path)
        if "type" in obj:
            return self.condition(obj, path)
        if "op" in obj:
            return self.group(obj, path, depth + 1)
        raise SegmentDefinitionError(
            path, 'must be a condition (with "type") or a group (with "op" and "items")'
        )

    def group(self, value: Any, path: str, depth: int) -> Group:
        obj = _object(value, path)
        if depth > MAX_DEPTH:
            raise SegmentDefinitionError(
                path, f"groups are nested too deeply (at most {MAX_DEPTH} levels)"
            )
        _no_unknown(obj, ("op", "items", "negate"), path, "a group")
        if "op" not in obj:
            raise SegmentDefinitionError(_join(path, "op"), 'is required ("and" or "or")')
        op = obj["op"]
        if op not in OPS:
            raise SegmentDefinitionError(
                _join(path, "op"), f'must be "and" or "or", got {_show(op)}'
            )
        items = obj.get("items")
        if not isinstance(items, list):
            raise SegmentDefinitionError(
                _join(path, "items"), f"must be a list, got {_type_name(items)}"
            )
        if not items:
            raise SegmentDefinitionError(
                _join(path, "items"), "must hold at least one condition or group"
            )
        negate = _bool(obj.get("negate", False), _join(path, "negate"))
        parsed = tuple(self.node(item, f"{path}.items[{i}]", depth) for i, item in enumerate(items))
        return Group(op, parsed, negate)

    def condition(self, obj: Mapping[str, Any], path: str) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise SegmentDefinitionError(path, f"too many conditions (at most {MAX_CONDITIONS})")
        type_ = obj["type"]
        if not isinstance(type_, str) or type_ not in CONDITION_TYPES:
            raise SegmentDefinitionError(
                _join(path, "type"),
                f"unknown condition type {_show(type_)} (known: {', '.join(CONDITION_TYPES)})",
            )
        spec = CONDITION_TYPES[type_]
        _no_unknown(obj, ("type", *spec.fields, "negate"), path, f'a "{type_}" condition')
        negate = _bool(obj.get("negate", False), _join(path, "negate"))
        if spec.input == "list":
            return Condition(type_, any_of=self._any_of(obj, spec, path), negate=negate)
        if spec.input == "dates":
            after = _date(obj["after"], _join(path, "after")) if "after" in obj else None
            before = _date(obj["before"], _join(path, "before")) if "before" in obj else None
            if after is None and before is None:
                raise SegmentDefinitionError(path, 'needs "after", "before" or both')
            if after is not None and before is not None and after > before:
                raise SegmentDefinitionError(
                    _join(path, "before"), f"is before after ({after.isoformat()})"
                )
            return Condition(type_, after=after, before=before, negate=negate)
        if spec.input == "range":
            low = _number(obj["min"], _join(path, "min")) if "min" in obj else None
            high = _number(obj["max"], _join(path, "max")) if "max" in obj else None
            if low is None and high is None:
                raise SegmentDefinitionError(path, 'needs "min", "max" or both')
            if low is not None and high is not None and low > high:
                raise SegmentDefinitionError(
                    _join(path, "max"), f"must not be less than min ({_show(low)})"
                )
            given = [k for k in spec.filters if k in obj]
            if len(given) > 1:
                raise SegmentDefinitionError(
                    _join(path, given[1]),
                    f"only one of {', '.join(spec.filters)} may narrow a condition",
                )
            key = given[0] if given else None
            value: str | int | None = None
            if key is not None:
                value = self._filter_value(obj[key], spec, key, _join(path, key))
            return Condition(
                type_, min=low, max=high, filter_key=key, filter_value=value, negate=negate
            )
        return Condition(type_, negate=negate)

    @staticmethod
    def _any_of(obj: Mapping[str, Any], spec: ConditionSpec, path: str) -> tuple[str, ...]:
        where = _join(path, "any_of")
        if "any_of" not in obj:
            raise SegmentDefinitionError(where, "is required (a list of values)")
        values = obj["any_of"]
        if not isinstance(values, list):
            raise SegmentDefinitionError(where, f"must be a list, got {_type_name(values)}")
        if not values:
            raise SegmentDefinitionError(where, "must hold at least one value")
        if len(values) > MAX_LIST:
            raise SegmentDefinitionError(
                where, f"must hold at most {MAX_LIST} values, got {len(values)}"
            )
        out: set[str] = set()
        for i, v in enumerate(values):
            text = _text(v, f"{where}[{i}]")
            if spec.type == "country" and not _COUNTRY_RE.match(text):
                raise SegmentDefinitionError(
                    f"{where}[{i}]", f"must be a two-letter country code like US, got {_show(v)}"
                )
            if spec.choices and text not in spec.choices:
                raise SegmentDefinitionError(
                    f"{where}[{i}]", f"must be one of {', '.join(spec.choices)}, got {_show(v)}"
                )
            out.add(text)
        return tuple(sorted(out))

    @staticmethod
    def _filter_value(value: Any, spec: ConditionSpec, key: str, path: str) -> str | int:
        if FILTER_KEYS[key][1] == "id":
            return _int_id(value, path)
        text = _text(value, path)
        choices = spec.choices_for(key)
        if choices and text not in choices:
            raise SegmentDefinitionError(
                path, f"must be one of {', '.join(choices)}, got {_show(value)}"
            )
        return text


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SegmentDefinitionError("definition", f"the field {_show(key)} appears twice")
        out[key] = value
    return out


def _no_constants(name: str) -> float:
    raise SegmentDefinitionError("definition", f"{name} is not a number JSON allows")


def parse_definition(doc: Mapping[str, Any] | str | SegmentDefinition) -> SegmentDefinition:
    """A validated definition from its JSON document (a dict, or JSON text of at most 64 KB).

    Raises ``SegmentDefinitionError`` naming the field for anything wrong: unknown fields, bad
    types, an empty group, nesting deeper than 5, more than 50 conditions, a list of more than
    500 values, text over 200 characters, an unknown type or operator, a bad date, min > max.
    """
    if isinstance(doc, SegmentDefinition):
        return doc
    if isinstance(doc, str | bytes):
        raw = doc.encode() if isinstance(doc, str) else doc
        if len(raw) > MAX_JSON_BYTES:
            raise SegmentDefinitionError(
                "definition", f"is longer than {MAX_JSON_BYTES // 1024} KB ({len(raw):,} bytes)"
            )
        try:
            doc = json.loads(
                raw, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
            )
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
            raise SegmentDefinitionError("definition", f"is not valid JSON{where}") from None
        except SegmentDefinitionError:
            raise  # a duplicate key or NaN, said by the hooks
        except ValueError:
            # Python refuses integers of more than 4,300 digits while parsing.
            raise SegmentDefinitionError("definition", "holds a number far too large") from None
        except RecursionError:
            raise SegmentDefinitionError("definition", "is nested too deeply") from None
    obj = _object(doc, "definition")
    _no_unknown(obj, ("version", "window", "match"), "", "a segment definition")
    if "version" not in obj:
        raise SegmentDefinitionError(
            "version", f"is required (this release reads {SCHEMA_VERSION})"
        )
    version = obj["version"]
    if version != SCHEMA_VERSION or isinstance(version, bool) or not isinstance(version, int):
        raise SegmentDefinitionError(
            "version", f"must be {SCHEMA_VERSION} (this release's format), got {_show(version)}"
        )
    if "window" not in obj:
        raise SegmentDefinitionError("window", 'is required ({"last_days": N} or start and end)')
    window = _window(obj["window"], "window")
    if "match" not in obj:
        raise SegmentDefinitionError("match", "is required (a group of conditions)")
    match = _object(obj["match"], "match")
    if "op" not in match:
        raise SegmentDefinitionError("match", 'must be a group (with "op" and "items")')
    return SegmentDefinition(window, _Parser().group(match, "match", 1), version)


def check_definition(doc: Any) -> str | None:
    """None when ``doc`` validates, else the message saying why (never raises)."""
    try:
        parse_definition(doc)
    except SegmentDefinitionError as exc:
        return str(exc)
    except Exception as exc:  # a document so odd that validation itself failed
        return f"definition: cannot be read ({type(exc).__name__})"
    return None


# --- plain English ---------------------------------------------------------------------------------
_DEVICE_WORDS = {
    "tv": "a TV",
    "mobile": "a mobile",
    "web": "the web",
    "tablet": "a tablet",
    "console": "a console",
}
_KIND_WORDS = {"movie": "movies", "episode": "episodes", "live": "live events"}
_INTERACTION_WORDS = {
    "poll": ("poll answer", "poll answers"),
    "qa": ("Q&A message", "Q&A messages"),
    "reaction": ("reaction", "reactions"),
}


def _num(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}"
    rounded = round(value, 2)
    return f"{rounded:,}" if rounded else f"{value:.2g}"


def _either(values: Sequence[str], word: str = "or") -> str:
    values = list(values)
    if len(values) > 6:
        values = [*values[:5], f"{len(values) - 5} more"]
    if len(values) == 1:
        return values[0]
    return f"{', '.join(values[:-1])} {word} {values[-1]}"


def _amount(c: Condition, one: str, many: str, *, mass: bool = False) -> tuple[bool, str]:
    """(whether the verb is negated, the amount): a negated one-sided bound turns into the
    opposite bound ("fewer than 5", "more than 2"), a negated range stays "not between"."""

    def unit(v: int | float) -> str:
        return one if v == 1 else many

    fewer = "less than" if mass else "fewer than"
    none = (c.max == 0 and not c.min and not c.negate) or (
        c.negate and c.min == 1 and c.max is None
    )
    if none and not mass:  # "did not buy any pay-per-views"
        return True, f"any {many}"
    if c.min is not None and c.max is not None:
        if c.min == c.max:
            return c.negate, f"exactly {_num(c.min)} {unit(c.min)}"
        return c.negate, f"between {_num(c.min)} and {_num(c.max)} {many}"
    if c.min is not None:
        if c.negate:
            return False, f"{fewer} {_num(c.min)} {unit(c.min)}"
        return False, f"at least {_num(c.min)} {unit(c.min)}"
    assert c.max is not None
    if c.negate:
        return False, f"more than {_num(c.max)} {unit(c.max)}"
    if c.max == 0:
        return False, f"0 {many}"
    return False, f"at most {_num(c.max)} {unit(c.max)}"


def _of(c: Condition) -> str:
    if c.filter_key is None:
        return ""
    if c.filter_key == "genre":
        return f" of {c.filter_value}"
    if c.filter_key == "kind":
        return f" of {_KIND_WORDS.get(str(c.filter_value), str(c.filter_value))}"
    if c.filter_key == "title_id":
        return f" of title {c.filter_value}"
    return f" of creator {c.filter_value}'s titles"


def _titles(c: Condition) -> tuple[str, str, str]:
    """(unit, units, what follows) of a distinct_titles condition."""
    if c.filter_key == "kind":
        one, many = {
            "movie": ("movie", "movies"),
            "episode": ("episode", "episodes"),
            "live": ("live event", "live events"),
        }.get(str(c.filter_value), ("title", "titles"))
        return f"different {one}", f"different {many}", ""
    if c.filter_key == "genre":
        return f"different {c.filter_value} title", f"different {c.filter_value} titles", ""
    if c.filter_key == "creator_id":
        return "different title", "different titles", f" of creator {c.filter_value}"
    return "different title", "different titles", ""


def describe_condition(c: Condition) -> str:
    """One condition in plain words, lower case, without the window ("watched at least 5
    hours of Drama")."""
    no = c.negate
    t = c.type
    if t == "country":
        return f"{'not ' if no else ''}from {_either(c.any_of)}"
    if t == "region":
        return f"{'not ' if no else ''}in the region {_either(c.any_of)}"
    if t == "age_band":
        return f"{'not ' if no else ''}aged {_either(c.any_of)}"
    if t == "plan":
        return f"{'not ' if no else ''}on the {_either(c.any_of)} plan"
    if t == "acquisition_channel":
        return f"{'not ' if no else ''}acquired through {_either(c.any_of)}"
    if t == "signup_date":
        if c.after is not None and c.before is not None:
            span = f"between {c.after.isoformat()} and {c.before.isoformat()}"
        elif c.after is not None:
            span = f"on or after {c.after.isoformat()}"
        else:
            assert c.before is not None
            span = f"on or before {c.before.isoformat()}"
        return f"{'did not sign up' if no else 'signed up'} {span}"
    if t == "device":
        words = [_DEVICE_WORDS.get(d, d) for d in c.any_of]
        return f"{'did not use' if no else 'used'} {_either(words)}"
    if t == "subscribed":
        return "did not subscribe" if no else "subscribed"
    if t == "churned":
        return "did not churn" if no else "churned"
    if t == "resubscribed":
        return "did not re-subscribe" if no else "re-subscribed"
    if t == "distinct_titles":
        one, many, tail = _titles(c)
        negated, amount = _amount(c, one, many)
        return f"{'did not watch' if negated else 'watched'} {amount}{tail}"
    if t == "interactions" and c.filter_key == "kind":
        one, many = _INTERACTION_WORDS[str(c.filter_value)]
        negated, amount = _amount(c, one, many)
        return f"{'did not send' if negated else 'sent'} {amount}"
    verbs: dict[str, tuple[str, str, str, str]] = {
        # type: (verb, negated verb, unit, units)
        "watch_hours": ("watched", "did not watch", "hour", "hours"),
        "sessions": ("started", "did not start", "session", "sessions"),
        "completed": ("completed", "did not complete", "session", "sessions"),
        "active_days": ("was active on", "was not active on", "day", "days"),
        "ppv_purchases": ("bought", "did not buy", "pay-per-view", "pay-per-views"),
        "interactions": ("had", "did not have", "interaction", "interactions"),
    }
    verb, negated_verb, one, many = verbs[t]
    negated, amount = _amount(c, one, many, mass=t == "watch_hours")
    return f"{negated_verb if negated else verb} {amount}{_of(c)}"


def describe_window(window: Window) -> str:
    if window.last_days is not None:
        if window.last_days == 1:
            return "on the last day"
        return f"in the last {window.last_days:,} days"
    assert window.start is not None and window.end is not None
    if window.start == window.end:
        return f"on {window.start.isoformat()}"
    return f"from {window.start.isoformat()} to {window.end.isoformat()}"


def describe_item(item: Condition | Group, *, nested: bool = False) -> str:
    """A condition or group in plain words, lower case, without the window."""
    if isinstance(item, Condition):
        return describe_condition(item)
    if len(item.items) == 1:
        only = item.items[0]
        if item.negate:  # "not (X)" is X negated
            only = replace(only, negate=not only.negate)
        return describe_item(only, nested=nested)
    text = f" {item.op} ".join(describe_item(i, nested=True) for i in item.items)
    if item.negate:
        return f"not ({text})"
    return f"({text})" if nested else text


def _sentence(text: str) -> str:
    """Capitalised at its first letter (after any opening parenthesis)."""
    for i, ch in enumerate(text):
        if ch.isalpha():
            return text[:i] + ch.upper() + text[i + 1 :]
    return text


def describe(defn: SegmentDefinition) -> str:
    """The whole definition in plain English ("Watched at least 5 hours of Drama and used a TV
    in the last 30 days"); the window is named when a condition is about behaviour."""
    text = _sentence(describe_item(defn.match))
    if defn.has_behaviour:
        text = f"{text} {describe_window(defn.window)}"
    return text


# --- the window ------------------------------------------------------------------------------------
def resolve_window(defn: SegmentDefinition, last_day: date) -> tuple[date, date]:
    """The window's first and last UTC day (inclusive): ``last_days`` counts back from
    ``last_day``, the extract's last day with data (so it rolls with the data)."""
    w = defn.window
    if w.last_days is not None:
        return last_day - timedelta(days=w.last_days - 1), last_day
    assert w.start is not None and w.end is not None
    return w.start, w.end


# --- SQL -------------------------------------------------------------------------------------------
# Sources of behaviour: CTE name -> (table, its viewer column); the table is aliased ``src``.
# Their WHERE clauses (the window, plausibility) are in _Compiler._source_sql.
_SOURCES: dict[str, tuple[str, str]] = {
    "sv": ("dv_view", "viewer_key"),  # sessions of the window's days
    "sp": ("fact_revenue", "viewer_key"),  # plausible pay-per-view purchases in the window
    "si": ("fact_interaction", "viewer_key"),  # interactions in the window
    "ss": ("dv_subscription", "viewer_key"),  # subscriptions started in the window
    # every subscription started by the window's end, of viewers with one ending in the window
    "sc": ("dv_subscription", "viewer_key"),
}
# Viewer properties: condition type -> column of dim_viewer (aliased d).
_VIEWER_COLUMNS: dict[str, str] = {
    "country": "d.country",
    "region": "d.region",
    "age_band": "d.age_band",
    "plan": "d.plan",
    "acquisition_channel": "d.acquisition_channel",
}
# Filter keys -> column of the source they narrow.
_FILTER_COLUMNS: dict[str, dict[str, str]] = {
    "sv": {"genre": "genre", "kind": "kind", "title_id": "title_id", "creator_id": "creator_id"},
    "si": {"kind": "kind"},
}
# Numeric behaviour: type -> (source, aggregate, the rows it counts (None: all), scale). The
# condition's own filter (genre, kind, ...) narrows the rows further.
_MEASURES: dict[str, tuple[str, str, str | None, str]] = {
    "watch_hours": ("sv", "sum(watch_seconds)", None, " / 3600.0"),
    "sessions": ("sv", "count(*)", None, ""),
    "distinct_titles": ("sv", "count(DISTINCT title_id)", None, ""),
    "completed": ("sv", "count(*)", "completed", ""),
    "active_days": ("sv", "", None, ""),  # see _Compiler.active_days
    "ppv_purchases": ("sp", "count(*)", None, ""),
    "interactions": ("si", "count(*)", None, ""),
}
# Distinct days are counted as set bits of 64-day masks (bit_or of 1 << day: an ordinary
# aggregate, about half the time of count(DISTINCT day) per viewer); windows longer than this
# many masks count distinct days instead.
_DAY_MASKS = 6
_MASK_DAYS = 64
# The profile's devices and genres per viewer: bit masks of this many values each (UBIGINT).
_MASK_BITS = 64

# The columns a members list may carry besides viewer_key (segment_members).
MEMBER_ATTRIBUTES: tuple[str, ...] = (
    "country",
    "region",
    "age_band",
    "plan",
    "acquisition_channel",
    "signup_date",
    "watch_hours_in_window",
    "sessions_in_window",
    "last_seen",
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@dataclass
class _Source:
    columns: dict[tuple[str, tuple[Any, ...]], str] = field(default_factory=dict)


class _Compiler:
    """Collects what a statement needs: per source the aggregates (shared when equal), per
    condition one boolean column, and the trees combining them."""

    def __init__(self, start: date, end: date, as_of: datetime | None, suffix: str = ""):
        self.start, self.end, self.as_of = start, end, as_of
        # Appended to every CTE and condition column name, so that several compilers (one per
        # window) can share one statement: "" or "_<n>".
        self.suffix = suffix
        self.sources: dict[str, _Source] = {}
        self.flags: list[tuple[str, list[Any]]] = []  # (boolean SQL, params) per condition
        self.extra: list[tuple[str, str, list[Any]]] = []  # (name, SQL, params)

    # aggregates ---------------------------------------------------------------------------------
    def aggregate(self, source: str, sql: str, params: Sequence[Any] = ()) -> str:
        """The aggregate's value per viewer (0 for a viewer without rows)."""
        columns = self.sources.setdefault(source, _Source()).columns
        key = (sql, tuple(tuple(p) if isinstance(p, list) else p for p in params))
        if key not in columns:
            columns[key] = f"a{len(columns)}"
        return f"coalesce({source}{self.suffix}.{columns[key]}, 0)"

    def active_days(self) -> str:
        """Distinct days with a session in the window, per viewer."""
        days = (self.end - self.start).days + 1
        if days > _DAY_MASKS * _MASK_DAYS:
            return self.aggregate("sv", "count(DISTINCT day)")
        counts = []
        for k in range(0, days, _MASK_DAYS):
            base = self.start + timedelta(days=k)
            mask = self.aggregate(
                "sv",
                # the & keeps the shift in range for the rows outside the block, which DuckDB
                # evaluates too before FILTER drops them
                "bit_or(CAST(1 AS UBIGINT) << (date_diff('day', ?, day) & 63)) "
                "FILTER (WHERE day >= ? AND day < ?)",
                [base, base, base + timedelta(days=_MASK_DAYS)],
            )
            counts.append(f"CAST(bit_count({mask}) AS INTEGER)")  # TINYINT otherwise
        return f"({' + '.join(counts)})"

    def _filter(self, source: str, c: Condition) -> tuple[str, list[Any]]:
        if c.filter_key is None:
            return "", []
        column = _FILTER_COLUMNS[source][c.filter_key]
        return f"{column} = ?", [c.filter_value]

    # conditions ---------------------------------------------------------------------------------
    def condition(self, c: Condition) -> tuple[str, list[Any]]:
        """A boolean SQL expression for the condition (never NULL), and its params."""
        t = c.type
        if t in _VIEWER_COLUMNS:
            return f"coalesce({_VIEWER_COLUMNS[t]} IN ({_marks(len(c.any_of))}), FALSE)", list(
                c.any_of
            )
        if t == "signup_date":
            parts, params = [], []
            if c.after is not None:
                parts.append("d.signup_date >= ?")
                params.append(c.after)
            if c.before is not None:
                parts.append("d.signup_date <= ?")
                params.append(c.before)
            return f"coalesce({' AND '.join(parts)}, FALSE)", params
        if t in _MEASURES:
            source, agg, rows, scale = _MEASURES[t]
            if t == "active_days":
                value = self.active_days()
            else:
                where, params = self._filter(source, c)
                conditions = [w for w in (rows, where) if w]
                if conditions:
                    agg = f"{agg} FILTER (WHERE {' AND '.join(conditions)})"
                value = self.aggregate(source, agg, params) + scale
            parts, bounds = [], []
            if c.min is not None:
                parts.append(f"{value} >= ?")
                bounds.append(c.min)
            if c.max is not None:
                parts.append(f"{value} <= ?")
                bounds.append(c.max)
            return f"({' AND '.join(parts)})", bounds
        if t == "device":
            used = self.aggregate(
                "sv", f"count(*) FILTER (WHERE device IN ({_marks(len(c.any_of))}))", c.any_of
            )
            return f"{used} > 0", []
        if t == "subscribed":
            return f"{self.aggregate('ss', 'count(*)')} > 0", []
        if t == "resubscribed":
            return f"{self.aggregate('ss', 'count(*) FILTER (WHERE NOT is_first)')} > 0", []
        if t == "churned":
            ended = self.aggregate(
                "sc", "count(*) FILTER (WHERE end_day BETWEEN ? AND ?)", [self.start, self.end]
            )
            # active at the end of the last day: started by then (the source's rows) and not
            # ended on or before it
            active = self.aggregate(
                "sc", "count(*) FILTER (WHERE end_day IS NULL OR end_day > ?)", [self.end]
            )
            return f"({ended} > 0 AND {active} = 0)", []
        raise AssertionError(f"unhandled condition type {t!r}")  # validation lists every type

    def tree(self, node: Condition | Group) -> str:
        """The AND/OR tree over the condition columns (f0, f1, ...); no parameters."""
        if isinstance(node, Condition):
            sql, params = self.condition(node)
            name = f"f{len(self.flags)}{self.suffix}"
            self.flags.append((sql, params))
            return f"(NOT {name})" if node.negate else name
        inner = f" {node.op.upper()} ".join(self.tree(item) for item in node.items)
        return f"(NOT ({inner}))" if node.negate else f"({inner})"

    def add_column(self, name: str, sql: str, params: Sequence[Any] = ()) -> None:
        """An extra column of the ``seg`` CTE (name from the caller's allowlist)."""
        self.extra.append((name, sql, list(params)))

    # the statement ------------------------------------------------------------------------------
    def _source_sql(self, alias: str) -> tuple[str, list[Any]]:
        table, viewer = _SOURCES[alias]
        cols = self.sources[alias].columns
        select = ", ".join(f"{sql} AS {name}" for (sql, _p), name in cols.items())
        params: list[Any] = [
            list(p) if isinstance(p, tuple) else p for (_s, ps) in cols for p in ps
        ]
        first = datetime.combine(self.start, time())
        after = datetime.combine(self.end + timedelta(days=1), time())
        if alias == "sv":
            where, wparams = "day BETWEEN ? AND ?", [self.start, self.end]
        elif alias == "sp":
            plausible, pparams = plausible_sql("fact_revenue", self.as_of, "src")
            where = (
                "src.stream = 'ppv' AND src.viewer_key IS NOT NULL "
                f"AND src.occurred_at >= ? AND src.occurred_at < ? AND {plausible}"
            )
            wparams = [first, after, *pparams]
        elif alias == "si":
            where, wparams = "occurred_at >= ? AND occurred_at < ?", [first, after]
        elif alias == "ss":
            where, wparams = "start_day BETWEEN ? AND ?", [self.start, self.end]
        else:  # sc: only viewers with a subscription ending in the window can have churned
            where = (
                "start_day <= ? AND viewer_key IN (SELECT viewer_key FROM dv_subscription "
                "WHERE end_day BETWEEN ? AND ?)"
            )
            wparams = [self.end, self.start, self.end]
        sql = (
            f"{alias}{self.suffix} AS (SELECT {viewer} AS viewer_key, {select} FROM {table} AS src "
            f"WHERE {where} GROUP BY ALL)"
        )
        return sql, params + wparams

    @property
    def seg(self) -> str:
        """The name of the CTE with one row per viewer and the condition columns."""
        return f"seg{self.suffix}"

    def ctes(self, *, materialized: bool = False) -> tuple[list[str], list[Any]]:
        """One CTE per source, then ``seg`` (dim_viewer, the condition columns, the extras)."""
        ctes, params = [], []
        for alias in _SOURCES:
            if alias in self.sources:
                sql, p = self._source_sql(alias)
                ctes.append(sql)
                params += p
        columns = ["d.viewer_key"]
        for i, (sql, p) in enumerate(self.flags):
            columns.append(f"{sql} AS f{i}{self.suffix}")
            params += p
        for name, sql, p in self.extra:
            columns.append(f"{sql} AS {name}")
            params += p
        joins = "".join(
            f" LEFT JOIN {alias}{self.suffix} ON {alias}{self.suffix}.viewer_key = d.viewer_key"
            for alias in _SOURCES
            if alias in self.sources
        )
        how = "MATERIALIZED " if materialized else ""
        ctes.append(f"{self.seg} AS {how}(SELECT {', '.join(columns)} FROM dim_viewer AS d{joins})")
        return ctes, params

    def with_clause(self, *, materialized: bool = False) -> tuple[str, list[Any]]:
        ctes, params = self.ctes(materialized=materialized)
        return "WITH " + ",\n".join(ctes), params


def compile_segment(
    defn: SegmentDefinition, last_day: date, *, as_of: datetime | None = None
) -> tuple[str, list[Any]]:
    """One SQL statement selecting the matching ``viewer_key``s (sorted), and its parameters.

    ``last_day`` is the extract's last day with data (``last_days`` windows end there);
    ``as_of`` the extract's clock, for the plausibility rule on future-dated revenue (None: that
    rule is left out, as ``plausible_sql`` does)."""
    start, end = resolve_window(defn, last_day)
    comp = _Compiler(start, end, as_of)
    hit = comp.tree(defn.match)
    sql, params = comp.with_clause()
    return f"{sql}\nSELECT viewer_key FROM seg WHERE {hit} ORDER BY viewer_key", params


# --- queries ---------------------------------------------------------------------------------------
def _require_all(scope: Scope) -> None:
    if not scope.is_all:
        raise PermissionError(
            "Segments describe viewers of every creator's titles: they are for internal roles "
            "(a creator's scope cannot be applied to a viewer)."
        )


def _extract_days(cursor: duckdb.DuckDBPyConnection) -> tuple[date, datetime | None]:
    """The extract's last day with data (its clock's day when it has no views) and clock."""
    as_of = extract_as_of(cursor)
    # dv_view_day holds one row per day of dv_view: its max is dv_view's, read from ~700 rows.
    (last,) = cursor.execute("SELECT max(day) FROM dv_view_day").fetchone()
    if last is None:
        last = as_of.date() if as_of is not None else datetime.now(UTC).date()
    return last, as_of


def _compiler(cursor: duckdb.DuckDBPyConnection, defn: SegmentDefinition) -> _Compiler:
    last, as_of = _extract_days(cursor)
    start, end = resolve_window(defn, last)
    return _Compiler(start, end, as_of)


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def segment_size(
    cursor: duckdb.DuckDBPyConnection, defn: SegmentDefinition, scope: Scope
) -> dict[str, Any]:
    """How many viewers the segment holds, in one statement.

    Keys: ``viewers`` (in the segment), ``all_viewers`` (every viewer of dim_viewer),
    ``active_viewers`` (viewers with at least one session in the window), ``active_in_segment``
    (those of them in the segment), ``share_of_all`` = viewers / all_viewers,
    ``share_of_active`` = active_in_segment / active_viewers (0.0 when a denominator is 0), and
    the window as ``start`` and ``end``.
    """
    _require_all(scope)
    comp = _compiler(cursor, defn)
    hit = comp.tree(defn.match)
    comp.add_column("active", f"{comp.aggregate('sv', 'count(*)')} > 0")
    sql, params = comp.with_clause()
    row = cursor.execute(
        f"{sql}\nSELECT count(*) FILTER (WHERE {hit}), count(*), count(*) FILTER (WHERE active), "
        f"count(*) FILTER (WHERE active AND {hit}) FROM seg",
        params,
    ).fetchone()
    viewers, all_viewers, active, active_in = (int(v or 0) for v in row)
    return {
        "viewers": viewers,
        "all_viewers": all_viewers,
        "active_viewers": active,
        "active_in_segment": active_in,
        "share_of_all": _share(viewers, all_viewers),
        "share_of_active": _share(active_in, active),
        "start": comp.start,
        "end": comp.end,
    }


def segment_funnel(
    cursor: duckdb.DuckDBPyConnection, defn: SegmentDefinition, scope: Scope
) -> pd.DataFrame:
    """How each condition narrows the audience. Columns ``step`` (1..n), ``label`` (the item
    in plain words, capitalised) and ``viewers``.

    For a top-level AND group (not negated): the audience after each successive item (the
    last row is the segment), so the counts never increase. Otherwise (OR, or a negated group):
    one row per item, the viewers matching it alone, then a last row, the whole segment.
    """
    _require_all(scope)
    comp = _compiler(cursor, defn)
    match = defn.match
    items = [comp.tree(item) for item in match.items]
    labels = [_sentence(describe_item(item)) for item in match.items]
    if match.op == "and" and not match.negate:
        counts = [" AND ".join(items[: k + 1]) for k in range(len(items))]
    else:
        whole = f" {match.op.upper()} ".join(items)
        counts = [*items, f"NOT ({whole})" if match.negate else f"({whole})"]
        labels.append("Whole segment")
    sql, params = comp.with_clause()
    row = cursor.execute(
        f"{sql}\nSELECT {', '.join(f'count(*) FILTER (WHERE {c})' for c in counts)} FROM seg",
        params,
    ).fetchone()
    return pd.DataFrame(
        {
            "step": list(range(1, len(counts) + 1)),
            "label": labels,
            "viewers": [int(v or 0) for v in row],
        }
    )


PROFILE_DIMENSIONS: tuple[str, ...] = ("country", "plan", "age_band", "device", "genre")
TOP_GENRES = 10
_PROFILE_COLUMNS = ["value", "segment_viewers", "segment_share", "all_share", "index"]


def segment_profile(
    cursor: duckdb.DuckDBPyConnection, defn: SegmentDefinition, scope: Scope
) -> dict[str, pd.DataFrame]:
    """The segment against all viewers, by country, plan, age band, device and genre.

    One frame per key of PROFILE_DIMENSIONS, columns ``value``, ``segment_viewers``,
    ``segment_share``, ``all_share``, ``index`` (segment_share / all_share; NaN when
    all_share is 0), sorted by segment_viewers (descending), then value:

    - country, plan, age band: the viewer's own (dim_viewer); shares of the segment's viewers
      and of all viewers (each sums to 1 over the values);
    - device and genre: from the window's sessions, the share of the segment's *active*
      viewers who used the device / watched the genre, against the share of all active viewers
      (a viewer may count for several, so these do not sum to 1; inactive viewers have no
      device or genre); genre is the top 10 of the segment.

    Shares are 0.0 when the segment (or its active part) is empty. Two statements: the
    window's devices and genres, then everything else.
    """
    _require_all(scope)
    comp = _compiler(cursor, defn)
    # The devices and genres of the window (a few each), then one statement: each viewer's
    # devices and genres as bit masks beside the condition columns (ordinary aggregates of the
    # one pass over the window's sessions), counted per bit over the active viewers.
    values: dict[str, list[str]] = {"device": [], "genre": []}
    for dim, value in cursor.execute(
        "SELECT 'device', device FROM dv_view WHERE day BETWEEN ? AND ? AND device IS NOT NULL "
        "GROUP BY ALL UNION ALL SELECT 'genre', genre FROM dv_view WHERE day BETWEEN ? AND ? "
        "AND genre IS NOT NULL GROUP BY ALL",
        [comp.start, comp.end, comp.start, comp.end],
    ).fetchall():
        values[dim].append(str(value))
    hit = comp.tree(defn.match)
    comp.add_column("hit", hit)
    comp.add_column("active", f"{comp.aggregate('sv', 'count(*)')} > 0")
    comp.add_column("country", "d.country")
    comp.add_column("plan", "d.plan")
    comp.add_column("age_band", "d.age_band")
    masks: dict[str, list[str]] = {}
    for dim in ("device", "genre"):
        values[dim].sort()
        masks[dim] = []
        for b in range(0, len(values[dim]), _MASK_BITS):
            name = f"m_{dim}_{b // _MASK_BITS}"
            # A value outside this block has no position: NULL, which bit_or skips.
            mask = comp.aggregate(
                "sv",
                f"bit_or(CAST(1 AS UBIGINT) << (list_position(?::VARCHAR[], {dim}) - 1))",
                [values[dim][b : b + _MASK_BITS]],
            )
            comp.add_column(name, mask)
            masks[dim].append(name)
    sql, params = comp.with_clause(materialized=True)
    parts = [
        f"SELECT '{dim}' AS dim, CAST({dim} AS VARCHAR) AS value, count(*) FILTER (WHERE hit) "
        f"AS seg, count(*) AS total FROM seg WHERE {dim} IS NOT NULL GROUP BY ALL"
        for dim in ("country", "plan", "age_band")
    ]
    for dim in ("device", "genre"):
        if not masks[dim]:
            continue
        # Active viewers counted per distinct mask first (few), then per value: its bit.
        cols = ", ".join(masks[dim])
        if len(masks[dim]) == 1:
            pick = masks[dim][0]
        else:
            whens = " ".join(f"WHEN {i} THEN {m}" for i, m in enumerate(masks[dim]))
            pick = f"CASE r.k // {int(_MASK_BITS)} {whens} END"
        parts.append(
            f"SELECT '{dim}', CAST(r.k AS VARCHAR), sum(ns), sum(nt) FROM (SELECT {cols}, "
            "count(*) FILTER (WHERE hit) AS ns, count(*) AS nt FROM seg WHERE active GROUP BY ALL) "
            "CROSS JOIN range(?) AS r(k) "
            f"WHERE (({pick}) >> CAST(r.k % {int(_MASK_BITS)} AS INTEGER)) & 1 = 1 GROUP BY ALL"
        )
        params.append(len(values[dim]))
    parts.append(
        "SELECT '', CASE WHEN active THEN 'active' ELSE 'inactive' END, "
        "count(*) FILTER (WHERE hit), count(*) FROM seg GROUP BY ALL"
    )
    rows = cursor.execute(f"{sql}\n" + "\nUNION ALL ".join(parts), params).fetchall()
    rows = [
        (dim, values[dim][int(value)] if dim in values else value, seg, total)
        for dim, value, seg, total in rows
    ]
    totals = {"active": (0, 0), "inactive": (0, 0)}
    by_dim: dict[str, list[tuple[str, int, int]]] = {d: [] for d in PROFILE_DIMENSIONS}
    for dim, value, seg, total in rows:
        if dim == "":
            totals[value] = (int(seg), int(total))
        else:
            by_dim[dim].append((value, int(seg), int(total)))
    seg_all = totals["active"][0] + totals["inactive"][0]
    all_all = totals["active"][1] + totals["inactive"][1]
    seg_active, all_active = totals["active"]
    out: dict[str, pd.DataFrame] = {}
    for dim in PROFILE_DIMENSIONS:
        windowed = dim in ("device", "genre")
        seg_n, all_n = (seg_active, all_active) if windowed else (seg_all, all_all)
        found = sorted(by_dim[dim], key=lambda r: (-r[1], -r[2], r[0]))
        if dim == "genre":
            found = [r for r in found if r[1] > 0][:TOP_GENRES]
        frame = pd.DataFrame(
            {
                "value": [r[0] for r in found],
                "segment_viewers": [r[1] for r in found],
                "segment_share": [_share(r[1], seg_n) for r in found],
                "all_share": [_share(r[2], all_n) for r in found],
            },
            columns=_PROFILE_COLUMNS[:4],
        )
        frame["segment_viewers"] = frame["segment_viewers"].astype("int64")
        frame["segment_share"] = frame["segment_share"].astype("float64")
        frame["all_share"] = frame["all_share"].astype("float64")
        ratio = frame["segment_share"] / frame["all_share"].where(frame["all_share"] > 0)
        frame["index"] = ratio.astype("float64")
        out[dim] = frame.reset_index(drop=True)
    return out


def _overlap_label(names: Sequence[str], chosen: Sequence[int]) -> str:
    picked = [names[i] for i in chosen]
    if len(chosen) == len(names):
        return " ∩ ".join(picked)
    return f"{' ∩ '.join(picked)} only"


def segment_overlap(
    cursor: duckdb.DuckDBPyConnection, defs: Mapping[str, SegmentDefinition], scope: Scope
) -> pd.DataFrame:
    """How two to four segments overlap, Venn-style, in one statement.

    Columns ``segments`` (tuple of names), ``label``, ``viewers``, ``kind``. Rows, in order:

    - ``kind == "region"``: one per non-empty combination of the segments (2^n - 1 rows, in
      order of size of the combination, then of the segments' order), the viewers in exactly
      those segments and in none of the others ("A only", "A ∩ B only", ..., "A ∩ B ∩ C" for
      all of them). Regions are disjoint: they add up to the union;
    - ``kind == "total"``: one per segment, its whole size ("A (all)");
    - ``kind == "union"``: one row, the viewers in at least one ("A ∪ B ∪ C").

    Every segment is evaluated over its own window. Names are only labels (never SQL).
    """
    _require_all(scope)
    names = list(defs)
    if not 2 <= len(names) <= 4:
        raise ValueError(f"overlap compares 2 to 4 segments, got {len(names)}")
    last, as_of = _extract_days(cursor)
    # One compiler per window (aggregates shared by the segments of one window), each with its
    # own CTE and column names; their seg CTEs hold every viewer, joined on viewer_key.
    comps: dict[tuple[date, date], _Compiler] = {}
    hits: list[str] = []
    for name in names:
        defn = defs[name]
        if not isinstance(defn, SegmentDefinition):
            raise TypeError(f"segment {name!r} is not a SegmentDefinition")
        window = resolve_window(defn, last)
        if window not in comps:
            comps[window] = _Compiler(*window, as_of, suffix=f"_{len(comps)}")
        hits.append(comps[window].tree(defn.match))
    ctes: list[str] = []
    params: list[Any] = []
    for comp in comps.values():
        sql, p = comp.ctes()
        ctes += sql
        params += p
    segs = [comp.seg for comp in comps.values()]
    joins = "".join(f" JOIN {s} ON {s}.viewer_key = {segs[0]}.viewer_key" for s in segs[1:])
    flags = ", ".join(f"{hit} AS h{i}" for i, hit in enumerate(hits))
    statement = (
        "WITH "
        + ",\n".join(ctes)
        + f"\nSELECT {', '.join(f'h{i}' for i in range(len(names)))}, count(*) FROM "
        f"(SELECT {flags} FROM {segs[0]}{joins}) GROUP BY ALL"
    )
    counts: dict[tuple[bool, ...], int] = {}
    for row in cursor.execute(statement, params).fetchall():
        counts[tuple(bool(v) for v in row[:-1])] = int(row[-1])
    rows: list[dict[str, Any]] = []
    n = len(names)
    for size in range(1, n + 1):
        for chosen in combinations(range(n), size):
            key = tuple(i in chosen for i in range(n))
            rows.append(
                {
                    "segments": tuple(names[i] for i in chosen),
                    "label": _overlap_label(names, chosen),
                    "viewers": counts.get(key, 0),
                    "kind": "region",
                }
            )
    for i, name in enumerate(names):
        total = sum(v for key, v in counts.items() if key[i])
        rows.append(
            {"segments": (name,), "label": f"{name} (all)", "viewers": total, "kind": "total"}
        )
    union = sum(v for key, v in counts.items() if any(key))
    rows.append(
        {"segments": tuple(names), "label": " ∪ ".join(names), "viewers": union, "kind": "union"}
    )
    frame = pd.DataFrame(rows, columns=["segments", "label", "viewers", "kind"])
    frame["viewers"] = frame["viewers"].astype("int64")
    return frame


def segment_members(
    cursor: duckdb.DuckDBPyConnection,
    defn: SegmentDefinition,
    scope: Scope,
    *,
    attributes: Sequence[str] = (),
    limit: int | None = None,
) -> pd.DataFrame:
    """The segment's viewers, sorted by ``viewer_key``, with chosen attributes (for the CRM).

    ``attributes`` from MEMBER_ATTRIBUTES (others raise ``ValueError``): the viewer's
    country, region, age_band, plan, acquisition_channel, signup_date; watch_hours_in_window
    and sessions_in_window (0 when inactive); last_seen (the last day with a session in the
    extract; None when never). ``limit``: at most that many rows (the
    first by viewer_key). Columns: ``viewer_key`` then the attributes, in the order asked.
    """
    _require_all(scope)
    wanted: list[str] = []
    for name in attributes:
        if name not in MEMBER_ATTRIBUTES:
            raise ValueError(
                f"unknown member attribute {name!r} (allowed: {', '.join(MEMBER_ATTRIBUTES)})"
            )
        if name not in wanted:
            wanted.append(name)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a whole number ≥ 0 or None, got {limit!r}")
    comp = _compiler(cursor, defn)
    hit = comp.tree(defn.match)
    for name in wanted:
        if name in _VIEWER_COLUMNS or name == "signup_date":
            comp.add_column(name, f"d.{name}")
        elif name == "watch_hours_in_window":
            comp.add_column(name, comp.aggregate("sv", "sum(watch_seconds)") + " / 3600.0")
        elif name == "sessions_in_window":
            comp.add_column(name, comp.aggregate("sv", "count(*)"))
        # last_seen is joined below (over every day, not only the window)
    sql, params = comp.with_clause()
    columns = ["viewer_key", *wanted]
    # The members first (and the limit), so last_seen reads only their sessions.
    limit_sql = ""
    if limit is not None:
        limit_sql = " LIMIT ?"
    sql += f",\nmem AS MATERIALIZED (SELECT * FROM seg WHERE {hit} ORDER BY viewer_key{limit_sql})"
    if limit is not None:
        params.append(limit)
    select = ", ".join("ls.last_seen" if c == "last_seen" else f"mem.{c}" for c in columns)
    last_seen = ""
    if "last_seen" in wanted:
        last_seen = (
            " LEFT JOIN (SELECT viewer_key, max(day) AS last_seen FROM dv_view "
            "WHERE viewer_key IN (SELECT viewer_key FROM mem) GROUP BY ALL) "
            "AS ls ON ls.viewer_key = mem.viewer_key"
        )
    statement = f"{sql}\nSELECT {select} FROM mem{last_seen} ORDER BY mem.viewer_key"
    frame = cursor.execute(statement, params).df()
    frame.columns = columns
    frame["viewer_key"] = frame["viewer_key"].astype("int64")
    for name in ("sessions_in_window",):
        if name in frame:
            frame[name] = frame[name].astype("int64")
    if "watch_hours_in_window" in frame:
        frame["watch_hours_in_window"] = frame["watch_hours_in_window"].astype("float64")
    return frame.reset_index(drop=True)


__all__ = [
    "CONDITION_TYPES",
    "MEMBER_ATTRIBUTES",
    "PROFILE_DIMENSIONS",
    "SCHEMA_VERSION",
    "Condition",
    "ConditionSpec",
    "Group",
    "SegmentDefinition",
    "SegmentDefinitionError",
    "Window",
    "check_definition",
    "compile_segment",
    "describe",
    "describe_condition",
    "describe_item",
    "parse_definition",
    "resolve_window",
    "segment_funnel",
    "segment_members",
    "segment_overlap",
    "segment_profile",
    "segment_size",
]
