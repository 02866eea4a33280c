"""Analysts' own reports: a definition saved as validated JSON, and a pivot engine that runs it on
the metric catalog (data/queries/metrics.py), so every number is the dashboards' number.

A definition (``parse_report``; ``ReportDefinition.to_json`` writes it back)::

    {"version": 1,
     "rows": ["creator", "period"],         # 0-2 fields
     "columns": ["device"],                  # 0-1 field
     "values": ["views", "active_viewers"],  # 1-8 metric ids of METRICS
     "filters": {"country": ["DE", "FR"]},   # dimension -> values; narrows the filter bar
     "grain": "week",                        # day | week | month; needed when "period" is used
     "sort": {"by": "views", "descending": true},   # a value metric or a row field; or null
     "top_n": 10,                            # rows kept per row field after sorting; or null
     "totals": true, "subtotals": false,
     "percent_of_total": ["views"],          # additive value metrics only (ADDITIVE_METRICS)
     "comparison": false}

Fields are the catalog's breakdown dimensions (``DIMENSIONS``) and ``"period"``: the time bucket
at ``grain`` (weeks Monday-Sunday, calendar months, clipped to the filter bar's dates, as in
``metrics.trend``). Keys missing from a document take the defaults above (no rows, no columns,
no filters, no grain, default sort, no top-N, totals on, subtotals off, no percent of total, no
comparison); ``version`` and ``values`` are required and unknown keys are refused.

How a report is computed (``run_report``). Every cell, subtotal and total is the catalog's own
value for that cell's filters: a cell (country=DE, device=tv, week of 5 Oct) is the catalog's
number for the filter bar's filters narrowed to country DE and device tv, in that week. The engine
asks the catalog (``metrics._compute``, the function behind ``kpis``, ``trend`` and
``breakdown``) for one field's values at a time, by dimension and time bucket in one call, and
for the other fields it iterates their shown values with ``Filters.with_dimension``. So:

- totals and subtotals are the catalog's value for the whole (never a sum of rows: distinct
  viewers and ratios do not add up; for additive metrics the two agree);
- percent of total is a cell / its column's total, for additive metrics only
  (``ADDITIVE_METRICS``: counts and sums that add up over any split of rows);
- a metric that cannot be split by a field of the report (revenue by device, the engagement rate
  by genre) is empty (NaN) in every split cell, with a note; its totals are still shown when the
  filters allow;
- money metrics are left out, with a note, for a role that may not see money;
- the report's own filters are applied on top of the filter bar's: for a dimension both filter,
  the report keeps only values the filter bar also selects (it narrows, never widens; nothing in
  common selects nothing); the scope (a creator's titles) applies to every query;
- rows whose dimension value is unknown (subscription revenue has no genre, ad revenue no
  viewer) are not shown as rows or columns (the catalog cannot filter on "unknown"); the totals
  include them, and a note says so;
- ``top_n`` keeps the first N values of each row field after sorting (the outer field's values,
  then the inner field's within each); there is no "other" row, and a note says how many were
  left out. The outer of two row fields, and a column field, are capped (``MAX_OUTER_VALUES``,
  ``MAX_COLUMN_VALUES``) because each of their values costs a query.

Sorting: by a metric (``sort.by`` a value metric), each row field's values are ordered by that
metric's value for the row (across all columns), missing values last; by a row field, by its
label (periods chronologically). Without ``sort``: dimension values by the first value metric,
descending; periods chronologically. A column field's values: by the sort metric (or the first
value metric), descending; periods chronologically.

Preview speed (bench/exports.py, "Preview"): typical layouts take 10-60 ms warm on the default
demo extract (400k views) and 0.06-0.3 s on a 10M-view extract; a two-row-field layout with a
column field makes one catalog call per combination of the iterated fields' values (98 for
genre x country x device: 0.16 s and 1.2 s).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from data.queries import metrics as M
from data.queries.filters import DIMENSIONS, Filters, Scope
from data.schema import BASE_CURRENCY

REPORT_VERSION = 1
PERIOD = "period"
FIELDS: tuple[str, ...] = (*M.BREAKDOWN_DIMENSIONS, PERIOD)
MAX_ROW_FIELDS = 2
MAX_COLUMN_FIELDS = 1
MAX_VALUES = 8
MAX_TOP_N = 10_000
MAX_FILTER_VALUES = 500
MAX_FILTER_TEXT = 200
MAX_DOCUMENT_CHARS = 64_000
# Values of the outer of two row fields, and of a column field, each cost a catalog query.
MAX_OUTER_VALUES = 50
MAX_COLUMN_VALUES = 50
# Metrics whose value for a set of rows is the sum of their values for any split of those rows
# (by a dimension or by time): counts of events and sums of amounts. Distinct counts (active
# viewers), ratios and point-in-time levels (MRR at the period's end) are not.
ADDITIVE_METRICS: frozenset[str] = frozenset(
    {
        "starts",
        "watch_hours",
        "views",
        "new_subscribers",
        "net_revenue",
        "net_revenue_subscription",
        "net_revenue_ppv",
        "net_revenue_ad",
    }
)
FORMAT_KINDS: tuple[str, ...] = ("integer", "decimal", "percent", "money", "date", "text")
TOTAL_LABEL = "Total"
_DEFAULTS: dict[str, Any] = {
    "rows": [],
    "columns": [],
    "filters": {},
    "grain": None,
    "sort": None,
    "top_n": None,
    "totals": True,
    "subtotals": False,
    "percent_of_total": [],
    "comparison": False,
}
_KEYS = ("version", "rows", "columns", "values", *list(_DEFAULTS)[2:])
# A filter value no dimension holds: what an empty intersection of two filters selects. The
# catalog binds it as a parameter (text matches nothing; not a creator number, so FALSE).
NO_MATCH = "\x00"
_GRAIN_LABELS = {"day": "Day", "week": "Week", "month": "Month"}


class ReportDefinitionError(ValueError):
    """A report definition that cannot be used. ``path`` names the field ("values[2]",
    "filters.country[0]", "sort.by"); the message starts with it, fit to show a user."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


@dataclass(frozen=True)
class ReportSort:
    by: str
    descending: bool = True


@dataclass(frozen=True)
class ReportDefinition:
    """A validated report definition: frozen and hashable (a cache key), JSON via ``to_json``."""

    rows: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    # (dimension, sorted values) pairs, dimensions sorted: equal filters compare equal.
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    grain: str | None = None
    sort: ReportSort | None = None
    top_n: int | None = None
    totals: bool = True
    subtotals: bool = False
    percent_of_total: tuple[str, ...] = ()
    comparison: bool = False
    version: int = REPORT_VERSION

    @property
    def fields(self) -> tuple[str, ...]:
        return self.rows + self.columns

    @property
    def filter_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.filters)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "values": list(self.values),
            "filters": {d: list(v) for d, v in self.filters},
            "grain": self.grain,
            "sort": None
            if self.sort is None
            else {"by": self.sort.by, "descending": self.sort.descending},
            "top_n": self.top_n,
            "totals": self.totals,
            "subtotals": self.subtotals,
            "percent_of_total": list(self.percent_of_total),
            "comparison": self.comparison,
        }

    def to_json(self) -> str:
        """The definition as JSON text; ``parse_report(d.to_json()) == d``."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(", ", ": "))


# --- parsing --------------------------------------------------------------------------------------
def parse_report(doc: str | bytes | Mapping[str, Any]) -> ReportDefinition:
    """Validate a report definition (JSON text or the decoded mapping); ``ReportDefinitionError``
    naming the field path for anything wrong."""
    if isinstance(doc, bytes | bytearray):
        try:
            doc = doc.decode("utf-8")
        except UnicodeDecodeError:
            raise ReportDefinitionError("", "the definition is not UTF-8 text") from None
    if isinstance(doc, str):
        if len(doc) > MAX_DOCUMENT_CHARS:
            raise ReportDefinitionError(
                "", f"the definition is longer than {MAX_DOCUMENT_CHARS:,} characters"
            )
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise ReportDefinitionError(
                "", f"not valid JSON ({exc.msg} at line {exc.lineno})"
            ) from None
    if not isinstance(doc, Mapping):
        raise ReportDefinitionError("", "a report definition is a JSON object")
    for key in doc:
        if key not in _KEYS:
            raise ReportDefinitionError(
                str(key)[:40], f"unknown key; a definition has: {', '.join(_KEYS)}"
            )
    if "version" not in doc:
        raise ReportDefinitionError("version", "missing (this release reads version 1)")
    version = doc["version"]
    if version != REPORT_VERSION or isinstance(version, bool):
        raise ReportDefinitionError(
            "version", f"{version!r} is not a version this release reads (1)"
        )
    if "values" not in doc:
        raise ReportDefinitionError("values", "missing: a report shows at least one metric")
    get = {**_DEFAULTS, **doc}

    rows = _names(get["rows"], "rows")
    columns = _names(get["columns"], "columns")
    if len(rows) > MAX_ROW_FIELDS:
        raise ReportDefinitionError("rows", f"at most {MAX_ROW_FIELDS} row fields, not {len(rows)}")
    if len(columns) > MAX_COLUMN_FIELDS:
        raise ReportDefinitionError(
            "columns", f"at most {MAX_COLUMN_FIELDS} column field, not {len(columns)}"
        )
    seen: dict[str, str] = {}
    for where, names in (("rows", rows), ("columns", columns)):
        for i, name in enumerate(names):
            path = f"{where}[{i}]"
            if name not in FIELDS:
                raise ReportDefinitionError(
                    path, f"unknown field {name[:40]!r}; fields are: {', '.join(FIELDS)}"
                )
            if name in seen:
                raise ReportDefinitionError(path, f"{name!r} is already in {seen[name]}")
            seen[name] = path

    values = _names(get["values"], "values")
    if not values:
        raise ReportDefinitionError("values", "at least one metric")
    if len(values) > MAX_VALUES:
        raise ReportDefinitionError("values", f"at most {MAX_VALUES} metrics, not {len(values)}")
    for i, mid in enumerate(values):
        if mid not in M.METRICS:
            raise ReportDefinitionError(f"values[{i}]", f"unknown metric {mid[:40]!r}")
        if M.METRICS[mid].per_title:
            raise ReportDefinitionError(
                f"values[{i}]", f"{M.METRICS[mid].label} is a per-title metric (see top titles)"
            )
        if mid in values[:i]:
            raise ReportDefinitionError(f"values[{i}]", f"{mid!r} is listed twice")

    filters = _filters(get["filters"])

    grain = get["grain"]
    if grain is not None and grain not in M.GRAINS:
        raise ReportDefinitionError(
            "grain", f"{str(grain)[:40]!r} is not one of {', '.join(M.GRAINS)}"
        )
    if PERIOD in seen and grain is None:
        raise ReportDefinitionError("grain", "needed when 'period' is a row or column field")

    sort = None
    if get["sort"] is not None:
        raw = get["sort"]
        if not isinstance(raw, Mapping):
            raise ReportDefinitionError(
                "sort", 'an object like {"by": "views", "descending": true}'
            )
        for key in raw:
            if key not in ("by", "descending"):
                raise ReportDefinitionError(f"sort.{str(key)[:40]}", "unknown key (by, descending)")
        by = raw.get("by")
        if not isinstance(by, str):
            raise ReportDefinitionError("sort.by", "a value metric or a row field")
        if by not in values and by not in rows:
            raise ReportDefinitionError(
                "sort.by", f"{by[:40]!r} is neither one of the values nor a row field"
            )
        descending = raw.get("descending", True)
        if not isinstance(descending, bool):
            raise ReportDefinitionError("sort.descending", "true or false")
        sort = ReportSort(by, descending)

    top_n = get["top_n"]
    if top_n is not None and (
        isinstance(top_n, bool) or not isinstance(top_n, int) or not 1 <= top_n <= MAX_TOP_N
    ):
        raise ReportDefinitionError("top_n", f"a whole number from 1 to {MAX_TOP_N:,}, or null")

    flags = {}
    for name in ("totals", "subtotals", "comparison"):
        if not isinstance(get[name], bool):
            raise ReportDefinitionError(name, "true or false")
        flags[name] = get[name]

    percent = _names(get["percent_of_total"], "percent_of_total")
    for i, mid in enumerate(percent):
        path = f"percent_of_total[{i}]"
        if mid not in values:
            raise ReportDefinitionError(path, f"{mid[:40]!r} is not one of the values")
        if mid not in ADDITIVE_METRICS:
            label = M.METRICS[mid].label
            raise ReportDefinitionError(
                path,
                f"{label} does not add up over rows (a distinct count, a ratio or a level), so it "
                f"has no percent of total; it is for: {', '.join(sorted(ADDITIVE_METRICS))}",
            )
        if mid in percent[:i]:
            raise ReportDefinitionError(path, f"{mid!r} is listed twice")

    return ReportDefinition(
        rows=rows,
        columns=columns,
        values=values,
        filters=filters,
        grain=grain,
        sort=sort,
        top_n=top_n,
        percent_of_total=percent,
        **flags,
    )


def _names(raw: Any, path: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise ReportDefinitionError(path, "a list of names")
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise ReportDefinitionError(f"{path}[{i}]", "a name (text)")
    return tuple(raw)


def _filters(raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ReportDefinitionError("filters", 'an object like {"country": ["DE", "FR"]}')
    out: dict[str, tuple[str, ...]] = {}
    for dim, values in raw.items():
        path = f"filters.{str(dim)[:40]}"
        if dim not in DIMENSIONS:
            raise ReportDefinitionError(
                path, f"unknown dimension; filters are on: {', '.join(DIMENSIONS)}"
            )
        if isinstance(values, str | int) and not isinstance(values, bool):
            values = [values]
        if not isinstance(values, list | tuple):
            raise ReportDefinitionError(path, "a list of values")
        if len(values) > MAX_FILTER_VALUES:
            raise ReportDefinitionError(path, f"at most {MAX_FILTER_VALUES} values")
        clean: set[str] = set()
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise ReportDefinitionError(f"{path}[{i}]", "a value is text (or a creator number)")
            text = str(value)
            if len(text) > MAX_FILTER_TEXT or NO_MATCH in text:
                raise ReportDefinitionError(
                    f"{path}[{i}]", f"a value is at most {MAX_FILTER_TEXT} characters of text"
                )
            if DIMENSIONS[dim].integer and re.fullmatch(r"-?[0-9]{1,18}", text):
                text = str(int(text))  # "012" and 12 are creator 12, as the catalog reads them
            clean.add(text)
        if clean:  # an empty list is no filter (a field taken off the filter shelf)
            out[dim] = tuple(sorted(clean))
    return tuple(sorted(out.items()))


def effective_filters(filters: Filters, definition: ReportDefinition) -> Filters:
    """The filter bar's filters narrowed by the report's own: for a dimension both filter, the
    values both select (none in common: nothing); a report filter never widens."""
    out = filters
    for dim, wanted in definition.filters:
        current = set(filters.values(dim))
        keep = tuple(v for v in wanted if not current or v in current)
        out = out.with_dimension(dim, keep or (NO_MATCH,))
    return out


# --- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnMeta:
    """How to show one column of ``ReportResult.frame``.

    ``kind``: integer | decimal | percent (a ratio, 0.25 = 25%) | money (in ``currency``) | date |
    text. ``role``: field (a row field's labels) | value | comparison | change (value -
    comparison) | change_pct (change / |comparison|) | percent_of_total. ``column_value`` is the
    column field's value label this column belongs to ("Total" for the totals group), None
    without a column field; ``column_key`` its raw key (a dimension value, a bucket's first day).
    """

    name: str
    kind: str
    role: str
    metric: str | None = None
    field: str | None = None
    column_value: str | None = None
    column_key: Any = None
    currency: str = ""
    unit: str = ""
    definition: str = ""


@dataclass(frozen=True)
class ReportResult:
    """A report as shown.

    ``frame``: one row per row-field combination (plus subtotal and total rows), the row fields'
    labels first, then one column per (column value x metric [x comparison, change, change %,
    percent of total]). ``row_kinds``: "data" | "subtotal" | "total" per frame row;
    ``row_keys``: the raw keys of the row fields per frame row (None in a total's place).
    ``notes``: what is missing and why. ``filters``: the filters the report ran with (the
    filter bar's narrowed by the report's). ``metrics``: the value metrics shown (money ones
    left out for a role that may not see money)."""

    definition: ReportDefinition
    frame: pd.DataFrame
    columns_meta: tuple[ColumnMeta, ...]
    notes: tuple[str, ...]
    row_kinds: tuple[str, ...]
    row_keys: tuple[tuple[Any, ...], ...]
    filters: Filters
    metrics: tuple[str, ...]
    currency: str = BASE_CURRENCY
    queries: int = 0  # catalog calls made (for the preview's budget)

    def column(self, name: str) -> ColumnMeta:
        for meta in self.columns_meta:
            if meta.name == name:
                return meta
        raise KeyError(name)


def metric_kind(mid: str) -> str:
    """The format kind of a metric's values."""
    m = M.METRICS[mid]
    if m.unit == "%":
        return "percent"
    if m.money:
        return "money"
    return "integer" if m.fmt.endswith(".0f}") else "decimal"


def metric_label(mid: str, currency: str = BASE_CURRENCY) -> str:
    """A column header for a metric: its label, with the currency of money and a unit the label
    does not say already ("Avg view duration (min)", "Net revenue (USD)")."""
    m = M.METRICS[mid]
    if m.money and m.unit != "%":
        return f"{m.label} ({currency})"
    if m.unit in ("min", "x") or (m.unit == "h" and "hour" not in m.label.lower()):
        return f"{m.label} ({m.unit})"
    return m.label


def splittable(mid: str, name: str) -> bool:
    """Whether the catalog's breakdown splits a metric by a field (as the dashboards do): the
    field is a dimension the metric honours and every base aggregate it needs can be grouped by
    it (the engagement rate honours a device filter, but its subscribers have no device, so the
    dashboards' breakdown by device leaves it empty; so does a report). Time always splits."""
    if name == PERIOD:
        return True
    m = M.METRICS[mid]
    if name not in m.dims:
        return False
    return all(name in M._FAMILIES[M._BASE_FAMILY[agg]].columns for agg in m.needs)


def field_label(name: str, grain: str | None = None) -> str:
    if name == PERIOD:
        return _GRAIN_LABELS.get(grain or "", "Period")
    return DIMENSIONS[name].label


# --- the engine -----------------------------------------------------------------------------------
# One catalog answer: (bucket, key) -> metric -> (value, comparison)
_Cells = dict[tuple[Any, ...], dict[str, tuple[float, float]]]


class _Engine:
    """The catalog calls of one report run (its filters, scope, metrics and currency)."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        definition: ReportDefinition,
        filters: Filters,
        scope: Scope,
        metric_ids: tuple[str, ...],
        currency: str,
    ) -> None:
        self.cursor = cursor
        self.d = definition
        self.filters = filters
        self.scope = scope
        self.metrics = metric_ids
        self.currency = currency
        self.queries = 0
        self.unknown: set[str] = set()
        self.zero = {mid: _empty_value(mid) for mid in metric_ids}
        self.comparison = definition.comparison and filters.comparison_period is not None

    def call(self, filters: Filters, by: str | None, grain: str) -> tuple[_Cells, set[str]]:
        """The catalog's values per (bucket, key) for ``filters``; the metrics it left empty."""
        self.queries += 1
        values, notes = M._compute(
            self.cursor,
            filters,
            self.scope,
            list(self.metrics),
            grain=grain,
            by=by,
            with_comparison=self.comparison,
            currency=self.currency,
        )
        series = values["series"].to_numpy()
        buckets = values["bucket"].tolist()
        keys = values["key"].tolist()
        columns = {mid: values[mid].to_numpy(dtype=np.float64) for mid in self.metrics}
        out: _Cells = {}
        for i, (s, b, k) in enumerate(zip(series, buckets, keys, strict=True)):
            cell = out.setdefault((b, k), {mid: (self.zero[mid], math.nan) for mid in self.metrics})
            for mid in self.metrics:
                v = float(columns[mid][i])
                now, then = cell[mid]
                cell[mid] = (v, then) if s == "current" else (now, v)
        return out, set(notes)

    def evaluate(self, fields: Sequence[str], shown: Mapping[str, Sequence[Any]]) -> _Cells:
        """Values for every combination of ``fields``' values, keyed by a tuple of keys in
        ``fields`` order. Fields in ``shown`` are iterated over those values (one catalog call
        each combination); at most one dimension may be missing from ``shown``: it is the
        catalog's ``by``, and all its known values come back."""
        grain = self.d.grain if PERIOD in fields else "period"
        dims = [f for f in fields if f != PERIOD]
        if not dims:
            by = None
        else:
            unknown = [f for f in dims if f not in shown]
            if len(unknown) > 1:
                raise RuntimeError(f"more than one field without values: {unknown}")
            by = unknown[0] if unknown else max(dims, key=lambda f: len(shown[f]))
        iterated = [f for f in dims if f != by]
        # Metrics the catalog's breakdown cannot split by one of these fields: empty, whether the
        # field is the catalog's ``by`` or iterated with a filter (the same rule both ways).
        unsplit = {mid for mid in self.metrics if not all(splittable(mid, f) for f in dims)}
        out: _Cells = {}
        for combo in itertools.product(*(shown[f] for f in iterated)):
            narrowed = self.filters
            for f, key in zip(iterated, combo, strict=True):
                narrowed = narrowed.with_dimension(f, (key,))
            cells, empty = self.call(narrowed, by, grain)
            empty |= unsplit
            fixed = dict(zip(iterated, combo, strict=True))
            for (bucket, key), values in cells.items():
                if by is not None and key is None:
                    self.unknown.add(by)
                    continue
                if empty:
                    values = {
                        mid: ((math.nan, math.nan) if mid in empty else v)
                        for mid, v in values.items()
                    }
                parts = {**fixed, PERIOD: bucket}
                if by is not None:
                    parts[by] = key
                out[tuple(parts[f] for f in fields)] = values
        return out

    def missing(self) -> dict[str, tuple[float, float]]:
        """A cell with no rows: sums are zero, ratios empty."""
        return {
            mid: (self.zero[mid], self.zero[mid] if self.comparison else math.nan)
            for mid in self.metrics
        }


def _empty_value(mid: str) -> float:
    """The metric over no rows (0 for sums and counts, NaN for ratios)."""
    m = M.METRICS[mid]
    zeros = {agg: np.zeros(1) for agg in m.needs}
    zeros["mean_views"] = np.full(1, math.nan)
    with np.errstate(all="ignore"):
        return float(np.asarray(m.formula(zeros), dtype=np.float64)[0])


def run_report(
    cursor: duckdb.DuckDBPyConnection,
    definition: ReportDefinition,
    filters: Filters,
    scope: Scope,
    *,
    currency: str = BASE_CURRENCY,
    can_see_money: bool,
) -> ReportResult:
    """Run a report for the filter bar's ``filters`` and the viewer's ``scope`` and money rights
    (a shared report runs with the viewer's, never the author's). See the module docstring."""
    notes: list[str] = []
    metric_ids = tuple(definition.values)
    if not can_see_money:
        hidden = [mid for mid in metric_ids if M.METRICS[mid].money]
        if hidden:
            labels = ", ".join(M.METRICS[mid].label for mid in hidden)
            notes.append(f"{labels}: money, not shown for your role.")
            metric_ids = tuple(mid for mid in metric_ids if mid not in hidden)
    run_filters = effective_filters(filters, definition)
    if definition.comparison and run_filters.comparison == "none":
        run_filters = replace(run_filters, comparison="previous_period")
        notes.append(
            "No comparison period is chosen in the filter bar: compared with the previous period."
        )
    if not metric_ids:
        notes.append("Nothing to show: every value of this report is hidden for your role.")
        return ReportResult(definition, pd.DataFrame(), (), tuple(notes), (), (), run_filters, ())
    # The catalog's own notes for what it cannot answer under these filters and scope.
    notes.extend(M._notes(run_filters, scope, metric_ids, None).values())
    for f in definition.fields:
        if f == PERIOD:
            continue
        cannot = [mid for mid in metric_ids if not splittable(mid, f)]
        if cannot:
            labels = ", ".join(M.METRICS[mid].label for mid in cannot)
            notes.append(
                f"{labels} cannot be split by {DIMENSIONS[f].label.lower()}: empty in the "
                "split cells; the totals show the whole."
            )
    if definition.comparison and run_filters.comparison_period is None:
        notes.append("This period has no comparison period (29 February a year earlier).")
    engine = _Engine(cursor, definition, run_filters, scope, metric_ids, currency)
    return _build(engine, definition, notes, currency)


def _sort_metric(definition: ReportDefinition, metric_ids: Sequence[str]) -> tuple[str, bool]:
    if definition.sort is not None and definition.sort.by in metric_ids:
        return definition.sort.by, definition.sort.descending
    return metric_ids[0], True


def _order_level(
    f: str,
    keys: Iterable[Any],
    value_of: Mapping[Any, float],
    definition: ReportDefinition,
    metric_ids: Sequence[str],
    labels: Mapping[Any, str],
) -> list[Any]:
    """A row field's keys in display order (before top-N)."""
    keys = list(keys)
    sort = definition.sort
    by_metric = sort is not None and sort.by in metric_ids
    if sort is not None and sort.by == f:
        return sorted(
            keys, key=lambda k: k if f == PERIOD else labels.get(k, str(k)), reverse=sort.descending
        )
    if f == PERIOD and not by_metric:
        return sorted(keys)
    _mid, descending = _sort_metric(definition, metric_ids)

    def rank(k: Any) -> tuple[bool, float, str]:
        v = value_of.get(k, math.nan)
        missing = v is None or math.isnan(v)
        label = k.isoformat() if isinstance(k, date) else labels.get(k, str(k))
        return (missing, 0.0 if missing else (-v if descending else v), label)

    return sorted(keys, key=rank)


def _build(engine: _Engine, d: ReportDefinition, notes: list[str], currency: str) -> ReportResult:
    metric_ids = engine.metrics
    rows, cols = d.rows, d.columns
    sort_mid, _ = _sort_metric(d, metric_ids)
    labels: dict[str, dict[Any, str]] = {}

    def label_of(f: str, key: Any) -> str:
        if f == PERIOD:
            return key.strftime("%Y-%m") if d.grain == "month" else key.isoformat()
        return labels.get(f, {}).get(key, str(key))

    # Grand total, and the column field's values with their totals.
    grand = engine.evaluate((), {}).get((), engine.missing())
    shown: dict[str, list[Any]] = {}
    col_totals: _Cells = {}
    if cols:
        c = cols[0]
        col_totals = engine.evaluate((c,), {})
        _load_labels(engine.cursor, c, [k[0] for k in col_totals], labels)
        keys = [k[0] for k in col_totals]
        value_of = {k[0]: v[sort_mid][0] for k, v in col_totals.items()}
        if c == PERIOD:
            ordered = sorted(keys)
        else:
            ordered = sorted(
                keys,
                key=lambda k: (
                    math.isnan(value_of[k]),
                    -value_of[k] if not math.isnan(value_of[k]) else 0,
                    label_of(c, k),
                ),
            )
        if len(ordered) > MAX_COLUMN_VALUES:
            what = "first" if c == PERIOD else "top"
            notes.append(
                f"Columns: the {what} {MAX_COLUMN_VALUES} of {len(ordered)} "
                f"{field_label(c, d.grain).lower()} values are shown; the totals include the rest."
            )
            ordered = ordered[:MAX_COLUMN_VALUES]
        shown[c] = ordered

    # Row levels: the outer field's values (ranked), then the inner field's within each.
    row_totals: _Cells = {}  # row keys -> values across all columns
    level1: _Cells = {}
    order: list[tuple[Any, ...]] = []
    hidden: dict[str, int] = {}  # row field -> values left out by top-N
    if rows:
        r1 = rows[0]
        level1 = engine.evaluate((r1,), {})
        _load_labels(engine.cursor, r1, [k[0] for k in level1], labels)
        ordered1 = _order_level(
            r1,
            (k[0] for k in level1),
            {k[0]: v[sort_mid][0] for k, v in level1.items()},
            d,
            metric_ids,
            labels.get(r1, {}),
        )
        total1 = len(ordered1)
        if d.top_n is not None:
            ordered1 = ordered1[: d.top_n]
        if len(rows) == 2 and len(ordered1) > MAX_OUTER_VALUES:
            ordered1 = ordered1[:MAX_OUTER_VALUES]
            notes.append(
                f"Rows: the first {MAX_OUTER_VALUES} of {total1} {field_label(r1, d.grain).lower()} "
                "values are shown; the totals include the rest."
            )
        elif len(ordered1) < total1:
            hidden[r1] = total1 - len(ordered1)
        shown[r1] = ordered1
        if len(rows) == 1:
            order = [(k,) for k in ordered1]
            row_totals = {k: level1[k] for k in order}
        else:
            r2 = rows[1]
            level2 = engine.evaluate((r1, r2), {r1: ordered1})
            _load_labels(engine.cursor, r2, [k[1] for k in level2], labels)
            inner: dict[Any, list[Any]] = {}
            for k1, k2 in level2:
                inner.setdefault(k1, []).append(k2)
            all_inner: list[Any] = []
            for k1 in ordered1:
                ordered2 = _order_level(
                    r2,
                    inner.get(k1, []),
                    {k2: level2[(k1, k2)][sort_mid][0] for k2 in inner.get(k1, [])},
                    d,
                    metric_ids,
                    labels.get(r2, {}),
                )
                if d.top_n is not None and len(ordered2) > d.top_n:
                    hidden[r2] = hidden.get(r2, 0) + len(ordered2) - d.top_n
                    ordered2 = ordered2[: d.top_n]
                order.extend((k1, k2) for k2 in ordered2)
                all_inner.extend(k2 for k2 in ordered2 if k2 not in all_inner)
            shown[r2] = all_inner
            row_totals = {k: level2[k] for k in order}
        if hidden:
            by_field = d.sort is not None and d.sort.by in rows
            order_text = field_label(d.sort.by, d.grain) if by_field else M.METRICS[sort_mid].label  # type: ignore[union-attr]
            left = ", ".join(
                f"{n:,} {field_label(f, d.grain).lower()} values" for f, n in hidden.items()
            )
            notes.append(
                f"Top {d.top_n} by {order_text.lower()}: {left} are not shown (there is no "
                '"other" row); the totals include them.'
            )

    # The body: every shown row x shown column value.
    body: _Cells = {}
    if cols and rows:
        body = engine.evaluate((*rows, cols[0]), shown)
    subtotal_cols: _Cells = {}
    if d.subtotals and len(rows) == 2 and cols:
        subtotal_cols = engine.evaluate(
            (rows[0], cols[0]), {rows[0]: shown[rows[0]], cols[0]: shown[cols[0]]}
        )

    for f in sorted(engine.unknown):
        notes.append(
            f"Rows or columns whose {DIMENSIONS[f].label.lower()} is unknown (e.g. subscription "
            "revenue has no title, ad revenue no viewer) are not shown; the totals include them."
        )

    # Columns of the frame.
    groups: list[tuple[str | None, Any]] = []  # (column value label, column key); key None: total
    if cols:
        groups = [(label_of(cols[0], k), k) for k in shown[cols[0]]]
        if d.totals:
            groups.append((TOTAL_LABEL, None))
    else:
        groups = [(None, None)]
    metas: list[ColumnMeta] = []
    used: set[str] = set()

    def unique(name: str) -> str:
        base, n = name, 2
        while name in used:
            name = f"{base} ({n})"
            n += 1
        used.add(name)
        return name

    for f in rows:
        metas.append(
            ColumnMeta(
                unique(field_label(f, d.grain)),
                "date" if f == PERIOD else "text",
                "field",
                field=f,
            )
        )
    value_specs: list[tuple[ColumnMeta, str, Any]] = []  # (meta, derived role, column key)
    for group_label, key in groups:
        prefix = "" if group_label is None else f"{group_label} · "
        for mid in metric_ids:
            m = M.METRICS[mid]
            kind = metric_kind(mid)
            base = prefix + metric_label(mid, currency)
            common = {
                "metric": mid,
                "column_value": group_label,
                "column_key": key,
                "currency": currency if kind == "money" else "",
                "unit": m.unit,
                "definition": m.definition,
            }
            roles = [("value", base, kind)]
            if engine.comparison:
                roles += [
                    ("comparison", f"{base} (comparison)", kind),
                    ("change", f"{base} change", kind),
                    ("change_pct", f"{base} change %", "percent"),
                ]
            if mid in d.percent_of_total:
                roles.append(("percent_of_total", f"{base} % of total", "percent"))
            for role, name, k in roles:
                meta = ColumnMeta(
                    unique(name),
                    k,
                    role,
                    **{**common, "currency": common["currency"] if k == "money" else ""},
                )
                metas.append(meta)
                value_specs.append((meta, role, key))

    def values_for(
        row_key: tuple[Any, ...] | None, col_key: Any, is_total_col: bool
    ) -> dict[str, tuple[float, float]]:
        """metric -> (value, comparison) for a row (None: the grand total row) and a column."""
        if not cols or is_total_col:
            if row_key is None:
                return grand
            if len(row_key) == 1 and len(rows) == 2:  # a subtotal across columns
                return level1.get(row_key, engine.missing())
            return row_totals.get(row_key, engine.missing())
        if row_key is None:
            return col_totals.get((col_key,), engine.missing())
        if len(row_key) == 1 and len(rows) == 2:
            return subtotal_cols.get((*row_key, col_key), engine.missing())
        return body.get((*row_key, col_key), engine.missing())

    def column_total(col_key: Any, is_total_col: bool) -> dict[str, tuple[float, float]]:
        return values_for(None, col_key, is_total_col)

    frame_rows: list[list[Any]] = []
    kinds: list[str] = []
    keys_out: list[tuple[Any, ...]] = []

    def emit(
        row_key: tuple[Any, ...] | None, label_cells: list[Any], kind: str, keys: tuple[Any, ...]
    ) -> None:
        out: list[Any] = list(label_cells)
        for meta, role, key in value_specs:
            is_total_col = bool(cols) and key is None
            now, then = values_for(row_key, key, is_total_col)[meta.metric]  # type: ignore[index]
            if role == "value":
                out.append(now)
            elif role == "comparison":
                out.append(then)
            elif role == "change":
                out.append(now - then)
            elif role == "change_pct":
                change = now - then
                out.append(change / abs(then) if then and not math.isnan(then) else math.nan)
            else:
                total = column_total(key, is_total_col)[meta.metric][0]  # type: ignore[index]
                out.append(now / total if total and not math.isnan(total) else math.nan)
        frame_rows.append(out)
        kinds.append(kind)
        keys_out.append(keys)

    def cell_label(f: str, key: Any) -> Any:
        return key if f == PERIOD else label_of(f, key)

    if not rows:
        emit(None, [], "total", ())
    else:
        if len(rows) == 1:
            for (k1,) in order:
                emit((k1,), [cell_label(rows[0], k1)], "data", (k1,))
        else:
            groups_seen: list[Any] = []
            for k1, k2 in order:
                if groups_seen and groups_seen[-1] != k1 and d.subtotals:
                    prev = groups_seen[-1]
                    emit(
                        (prev,), [cell_label(rows[0], prev), TOTAL_LABEL], "subtotal", (prev, None)
                    )
                if not groups_seen or groups_seen[-1] != k1:
                    groups_seen.append(k1)
                emit((k1, k2), [cell_label(rows[0], k1), cell_label(rows[1], k2)], "data", (k1, k2))
            if groups_seen and d.subtotals:
                prev = groups_seen[-1]
                emit((prev,), [cell_label(rows[0], prev), TOTAL_LABEL], "subtotal", (prev, None))
        if d.totals:
            emit(None, [TOTAL_LABEL, *[""] * (len(rows) - 1)], "total", tuple(None for _ in rows))

    names = [m.name for m in metas]
    frame = pd.DataFrame(frame_rows, columns=names) if frame_rows else pd.DataFrame(columns=names)
    for meta in metas:
        if meta.role != "field":
            frame[meta.name] = frame[meta.name].astype("float64")
        else:
            frame[meta.name] = frame[meta.name].astype(object)
    return ReportResult(
        definition=d,
        frame=frame,
        columns_meta=tuple(metas),
        notes=tuple(dict.fromkeys(notes)),
        row_kinds=tuple(kinds),
        row_keys=tuple(keys_out),
        filters=engine.filters,
        metrics=metric_ids,
        currency=currency,
        queries=engine.queries,
    )


def _load_labels(
    cursor: duckdb.DuckDBPyConnection,
    f: str,
    keys: Sequence[Any],
    labels: dict[str, dict[Any, str]],
) -> None:
    """Readable labels for a field's keys: creator names (a name two creators share gets the
    creator's number), else the value itself."""
    found = labels.setdefault(f, {})
    if f != "creator":
        for k in keys:
            found.setdefault(k, str(k))
        return
    wanted = [
        int(k) for k in keys if isinstance(k, str) and k.lstrip("-").isdigit() and k not in found
    ]
    names: dict[str, str] = {}
    if wanted:
        names = {
            str(cid): str(name)
            for cid, name in cursor.execute(
                f"SELECT creator_id, name FROM dim_creator WHERE creator_id IN ({', '.join('?' * len(wanted))})",
                wanted,
            ).fetchall()
        }
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    for k in keys:
        if k in found:
            continue
        name = names.get(k)
        if name is None:
            found[k] = f"Creator {k}"
        elif counts[name] > 1:
            found[k] = f"{name} (#{k})"
        else:
            found[k] = name


# --- the About sheet ------------------------------------------------------------------------------
def about_entries(
    result: ReportResult,
    *,
    scope: Scope,
    exported_by: str,
    synced_at: datetime | date | str | None,
    name: str = "",
    exported_at: datetime | None = None,
) -> list[tuple[str, str]]:
    """(key, value) lines describing a report's export for an "About" sheet: the report, its
    filters and scope, each metric's definition, who exported it and when, the data's sync time."""
    f = result.filters
    out: list[tuple[str, str]] = []
    if name:
        out.append(("Report", name))
    out.append(("Period", f"{f.start.isoformat()} to {f.end.isoformat()}"))
    comp = f.comparison_period if result.definition.comparison else None
    if comp is not None:
        out.append(("Comparison period", f"{comp[0].isoformat()} to {comp[1].isoformat()}"))
    for dim in DIMENSIONS.values():
        values = f.values(dim.name)
        if values:
            shown = [
                "(nothing: the report's and the filter bar's filters share no value)"
                if v == NO_MATCH
                else v
                for v in values
            ]
            out.append((f"Filter: {dim.label}", ", ".join(shown)))
    if scope.is_all:
        out.append(("Scope", "All creators"))
    else:
        ids = ", ".join(str(c) for c in scope.creator_ids or ()) or "none"
        out.append(("Scope", f"Creators {ids}"))
    d = result.definition
    out.append(("Rows", ", ".join(field_label(r, d.grain) for r in d.rows) or "—"))
    out.append(("Columns", ", ".join(field_label(c, d.grain) for c in d.columns) or "—"))
    for mid in result.metrics:
        out.append((f"Metric: {metric_label(mid, result.currency)}", M.METRICS[mid].definition))
    for note in result.notes:
        out.append(("Note", note))
    out.append(("Definition (JSON)", d.to_json()))
    out.append(("Exported by", exported_by))
    when = exported_at or datetime.now().astimezone()
    out.append(("Exported at", when.isoformat(timespec="seconds")))
    if synced_at is None:
        out.append(("Data synced at", "unknown"))
    else:
        out.append(
            ("Data synced at", synced_at if isinstance(synced_at, str) else synced_at.isoformat())
        )
    return out


__all__ = [
    "ADDITIVE_METRICS",
    "FIELDS",
    "PERIOD",
    "ColumnMeta",
    "ReportDefinition",
    "ReportDefinitionError",
    "ReportResult",
    "ReportSort",
    "about_entries",
    "effective_filters",
    "field_label",
    "metric_kind",
    "metric_label",
    "parse_report",
    "run_report",
    "splittable",
]
