"""The report engine against independent computations on the small demo extract.

- Additive metrics (starts, watch hours, views, net revenue): every shown cell, subtotal, total
  and percent of total is compared with a pandas pivot (groupby sums) over the BASE tables
  (tests/unit/data/queries/metrics_reference.py loads and cleans them), over seeded random
  shelf layouts, filters and scopes.
- Non-additive metrics (active viewers, completion rate, the engagement rate, gross churn):
  every cell equals the catalog called with that cell's own filters (``kpis``; ``trend`` for a
  time bucket's comparison), and totals equal the catalog's whole-period value.
- Validation, money rights, scope, filter intersection, JSON round trip, and an export of a
  report read back.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import openpyxl
import pandas as pd
import pytest

from data.export.streaming import SheetSpec, write_csv, write_xlsx
from data.queries import metrics as M
from data.queries import reports as RP
from data.queries.filters import DIMENSIONS, Filters, Scope
from data.queries.reports import (
    NO_MATCH,
    PERIOD,
    ReportDefinitionError,
    about_entries,
    parse_report,
    run_report,
)
from tests.unit.data.queries import metrics_reference as R

ADDITIVE = ("starts", "watch_hours", "views", "net_revenue")
LAYOUT_FIELDS = ("country", "device", "genre", "kind", "creator", "plan", "age_band", PERIOD)


@pytest.fixture(scope="module")
def cursor(demo_store):
    return demo_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


@pytest.fixture(scope="module")
def bounds(cursor):
    b = M.data_bounds(cursor)
    assert b is not None
    return b


@pytest.fixture(scope="module")
def facts(ref) -> dict[str, pd.DataFrame]:
    """One flat frame per fact, with every dimension under its own name (the reference's
    meanings: a session's own country, the viewer's plan and age band; revenue by the
    viewer's country and the title's genre and kind, its own creator)."""

    def creators(series: pd.Series) -> pd.Series:
        return series.map(lambda c: None if pd.isna(c) else str(int(c))).astype(object)

    v = ref.views
    views = pd.DataFrame(
        {
            "day": v["day"].dt.date,
            "country": v["country"].astype(object),
            "device": v["device"].astype(object),
            "genre": v["genre"].astype(object),
            "kind": v["kind"].astype(object),
            "creator": creators(v["creator_id"]),
            "plan": v["plan"].astype(object),
            "age_band": v["age_band"].astype(object),
            "starts": 1.0,
            "watch_hours": v["watch_seconds"] / 3600,
            "views": v["watch_seconds"] / (v["runtime_min"] * 60.0),
        }
    )
    r = ref.revenue
    factor = ref.factor(r["day"], r["currency"], "USD", r["to_usd"].to_numpy())
    revenue = pd.DataFrame(
        {
            "day": r["day"].dt.date,
            "country": r["v_country"].astype(object),
            "device": None,
            "genre": r["genre"].astype(object),
            "kind": r["kind"].astype(object),
            "creator": creators(r["creator_id"]),
            "plan": r["plan"].astype(object),
            "age_band": r["age_band"].astype(object),
            "net_revenue": r["net"].to_numpy() * factor,
        }
    )
    return {"view": views, "revenue": revenue}


@pytest.fixture(scope="module")
def options(facts) -> dict[str, list[str]]:
    v = facts["view"]
    return {d: sorted(v[d].dropna().unique().tolist()) for d in DIMENSIONS}


# --- the independent pivot -------------------------------------------------------------------------
def _bucket(day: date, start: date, grain: str) -> date:
    if grain == "week":
        b = day - timedelta(days=day.weekday())
    elif grain == "month":
        b = day.replace(day=1)
    else:
        b = day
    return max(b, start)


class Pivot:
    """Sums of the additive metrics over the filtered facts, by any set of fields."""

    def __init__(self, facts, filters: Filters, scope: Scope, grain: str | None, metrics):
        self.filters = filters
        self.metrics = list(metrics)
        self.frames: dict[str, pd.DataFrame] = {}
        for name, frame in facts.items():
            keep = (frame["day"] >= filters.start) & (frame["day"] <= filters.end)
            for dim in filters.active_dimensions:
                keep &= frame[dim].isin(set(filters.values(dim)))
            if not scope.is_all:
                keep &= frame["creator"].isin({str(c) for c in scope.creator_ids or ()})
            part = frame[keep].copy()
            part[PERIOD] = [_bucket(d, filters.start, grain or "day") for d in part["day"]]
            self.frames[name] = part

    def family(self, mid: str) -> str:
        return "revenue" if mid == "net_revenue" else "view"

    def nan(self, mid: str, fields) -> bool:
        """Revenue has no device: empty when split or filtered by device."""
        return self.family(mid) == "revenue" and (
            "device" in fields or "device" in self.filters.active_dimensions
        )

    def cells(self, fields) -> dict[tuple, dict[str, float]]:
        fields = list(fields)
        out: dict[tuple, dict[str, float]] = {}
        for mid in self.metrics:
            if self.nan(mid, fields):
                continue
            frame = self.frames[self.family(mid)]
            if not fields:
                out.setdefault((), {})[mid] = float(frame[mid].sum())
                continue
            sums = frame.groupby(fields, dropna=True)[mid].sum()
            for key, value in sums.items():
                key = key if isinstance(key, tuple) else (key,)
                out.setdefault(key, {})[mid] = float(value)
        return out

    def value(self, fields, key, mid) -> float:
        if self.nan(mid, fields):
            return math.nan
        return self.cells(fields).get(tuple(key), {}).get(mid, 0.0)


def _close(actual: float, expected: float, what: str) -> None:
    R.assert_close(float(actual), float(expected), what)


def _row_part(result, i):
    """(fields, keys) of frame row ``i``'s row part: all row fields for a data row, the outer
    field for a subtotal, none for the grand total."""
    rows = result.definition.rows
    kind = result.row_kinds[i]
    keys = result.row_keys[i]
    if kind == "data":
        return list(rows), list(keys)
    if kind == "subtotal":
        return [rows[0]], [keys[0]]
    return [], []


def _col_part(result, meta):
    cols = result.definition.columns
    if not cols or meta.column_key is None:
        return [], []
    return [cols[0]], [meta.column_key]


def random_case(rng: random.Random, bounds, options):
    _first, last = bounds
    end = last - timedelta(days=rng.choice([0, 0, 30, 200]))
    start = end - timedelta(days=rng.choice([6, 27, 59, 120]))
    page_dims = {}
    for dim in rng.sample(list(DIMENSIONS), rng.choice([0, 0, 1, 2])):
        page_dims[DIMENSIONS[dim].field] = rng.sample(options[dim], min(len(options[dim]), 3))
    filters = Filters(start, end, "custom", "none", **page_dims)
    scope = rng.choice(
        [Scope.everything(), Scope.everything(), Scope.creators(rng.sample(options["creator"], 4))]
    )
    n_rows, n_cols = rng.choice([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1), (2, 1)])
    fields = rng.sample(LAYOUT_FIELDS, n_rows + n_cols)
    rows, cols = fields[:n_rows], fields[n_rows:]
    values = rng.sample(ADDITIVE, rng.randint(1, len(ADDITIVE)))
    report_filters = {}
    for dim in rng.sample(list(DIMENSIONS), rng.choice([0, 0, 1])):
        report_filters[dim] = rng.sample(options[dim], min(len(options[dim]), 4))
    sort = rng.choice(
        [None, {"by": rng.choice(values), "descending": rng.choice([True, False])}]
        + ([{"by": rows[0], "descending": False}] if rows else [])
    )
    doc = {
        "version": 1,
        "rows": rows,
        "columns": cols,
        "values": values,
        "filters": report_filters,
        "grain": rng.choice(["day", "week", "month"]) if PERIOD in fields else None,
        "sort": sort,
        "top_n": rng.choice([None, None, 3]),
        "totals": rng.choice([True, False]),
        "subtotals": rng.choice([True, False]),
        "percent_of_total": rng.sample(values, rng.randint(0, len(values))),
    }
    return parse_report(doc), filters, scope


@pytest.mark.parametrize("seed", range(4))
def test_additive_metrics_match_an_independent_pivot(cursor, facts, options, bounds, seed):
    rng = random.Random(seed)
    for _ in range(6):
        d, filters, scope = random_case(rng, bounds, options)
        result = run_report(cursor, d, filters, scope, can_see_money=True)
        what = f"{d.to_json()} {filters} {scope}"
        run = result.filters
        assert run.values("country") == RP.effective_filters(filters, d).values("country")
        pivot = Pivot(facts, run, scope, d.grain, d.values)
        metas = {m.name: m for m in result.columns_meta}
        truncated = d.top_n is not None or any("are shown" in n for n in result.notes)
        for i in range(len(result.frame)):
            row_fields, row_keys = _row_part(result, i)
            for name, meta in metas.items():
                if meta.role not in ("value", "percent_of_total"):
                    continue
                col_fields, col_keys = _col_part(result, meta)
                fields, keys = row_fields + col_fields, row_keys + col_keys
                expected = pivot.value(fields, keys, meta.metric)
                if meta.role == "percent_of_total":
                    total = pivot.value(col_fields, col_keys, meta.metric)
                    expected = expected / total if total else math.nan
                _close(result.frame[name].iloc[i], expected, f"{name} row {i} {keys}: {what}")
        # Every group with rows is a row of the report (unless top-N or a cap cut some); extra
        # rows (a time bucket's full grid) hold zeros.
        data_keys = {
            k for k, kind in zip(result.row_keys, result.row_kinds, strict=True) if kind == "data"
        }
        if d.rows and not truncated:
            expected_keys = set(pivot.cells(d.rows))
            assert expected_keys <= data_keys, what
        if d.rows and d.top_n is not None and d.sort is not None and d.sort.by in d.values:
            sort_mid = d.sort.by
            level = pivot.cells(d.rows[:1])
            shown = {k[0] for k in data_keys}
            values = {k[0]: v.get(sort_mid, 0.0) for k, v in level.items()}
            inside = [values.get(k, 0.0) for k in shown]
            outside = [v for k, v in values.items() if k not in shown]
            if inside and outside and not pivot.nan(sort_mid, d.rows[:1]):
                if d.sort.descending:
                    assert min(inside) >= max(outside) - 1e-9, what
                else:
                    assert max(inside) <= min(outside) + 1e-9, what


# --- non-additive metrics: each cell is the catalog's own ------------------------------------------
def _bucket_end(b0: date, grain: str, end: date) -> date:
    if grain == "day":
        b1 = b0
    elif grain == "week":
        b1 = b0 + timedelta(days=6 - b0.weekday())
    else:
        b1 = (b0.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return min(b1, end)


def _cell_filters(result, fields, keys) -> tuple[Filters, date | None]:
    f = result.filters
    bucket = None
    for field, key in zip(fields, keys, strict=True):
        if field == PERIOD:
            bucket = key
            f = replace(f, start=key, end=_bucket_end(key, result.definition.grain, f.end))
        else:
            f = f.with_dimension(field, [key])
    return replace(f, preset="custom"), bucket


def _check_cells_against_catalog(cursor, result, scope) -> int:
    checked = 0
    d = result.definition
    mids = list(result.metrics)
    for i in range(len(result.frame)):
        row_fields, row_keys = _row_part(result, i)
        for meta in result.columns_meta:
            if meta.role not in ("value", "comparison") or meta.metric != mids[0]:
                continue
            col_fields, col_keys = _col_part(result, meta)
            fields, keys = row_fields + col_fields, row_keys + col_keys
            cell, bucket = _cell_filters(result, fields, keys)
            if meta.role == "value":
                expected = M.kpis(cursor, cell, scope, mids).set_index("metric")["value"]
            elif bucket is None:
                expected = M.kpis(cursor, cell, scope, mids).set_index("metric")["comparison"]
            else:  # a bucket's comparison is the trend's, aligned on the whole period
                dims_only = replace(cell, start=result.filters.start, end=result.filters.end)
                t = M.trend(cursor, dims_only, scope, d.grain, mids)
                expected = t[t["bucket"] == bucket].set_index("metric")["comparison"]
            for mid in mids:
                if not all(RP.splittable(mid, f) for f in fields):
                    want = math.nan
                else:
                    want = float(expected[mid])
                name = meta.name.replace(RP.metric_label(mids[0]), RP.metric_label(mid), 1)
                _close(result.frame[name].iloc[i], want, f"{name} row {i} {keys}")
                checked += 1
    return checked


NON_ADDITIVE_CASES = [
    (
        {
            "rows": ["device"],
            "columns": ["kind"],
            "values": ["active_viewers", "completion_rate", "avg_view_duration"],
            "comparison": True,
        },
        Scope.everything(),
    ),
    (
        {
            "rows": ["plan", PERIOD],
            "grain": "month",
            "values": ["active_viewers", "engagement_rate", "gross_churn"],
            "subtotals": True,
            "comparison": True,
        },
        Scope.everything(),
    ),
    (
        {
            "rows": ["genre"],
            "columns": [PERIOD],
            "grain": "week",
            "values": ["active_viewers", "avg_pct_viewed", "engagement_rate"],
            "top_n": 4,
            "filters": {"country": ["US", "DE", "GB", "FR"]},
        },
        Scope.everything(),
    ),
    (
        {
            "rows": ["creator", "device"],
            "values": ["active_viewers", "completion_rate"],
            "subtotals": True,
            "sort": {"by": "completion_rate", "descending": False},
        },
        "creators",
    ),
]


@pytest.mark.parametrize("case", range(len(NON_ADDITIVE_CASES)))
def test_non_additive_cells_are_the_catalogs_value_for_the_cells_filters(
    cursor, bounds, options, case
):
    doc, scope = NON_ADDITIVE_CASES[case]
    if scope == "creators":
        scope = Scope.creators([int(c) for c in options["creator"][:3]])
    d = parse_report({"version": 1, **doc})
    filters = Filters.for_preset("last_90_days", bounds[1], comparison="same_period_last_year")
    result = run_report(cursor, d, filters, scope, can_see_money=False)
    assert _check_cells_against_catalog(cursor, result, scope) > 0
    # The grand total is the catalog's whole-period value, never a sum of rows.
    if d.totals and d.rows:
        total_row = result.row_kinds.index("total")
        whole = M.kpis(cursor, result.filters, scope, list(result.metrics)).set_index("metric")
        for meta in result.columns_meta:
            if meta.role == "value" and meta.column_key is None:
                _close(
                    result.frame[meta.name].iloc[total_row],
                    whole.loc[meta.metric, "value"],
                    f"total {meta.name}",
                )
    distinct = result.frame[RP.metric_label("active_viewers")] if not d.columns else None
    if distinct is not None and d.totals:
        data = [i for i, k in enumerate(result.row_kinds) if k == "data"]
        total = result.frame[RP.metric_label("active_viewers")].iloc[
            result.row_kinds.index("total")
        ]
        assert total <= distinct.iloc[data].sum(), "distinct viewers do not add up"


def test_unsplittable_metrics_are_empty_with_a_note(cursor, bounds):
    d = parse_report(
        {
            "version": 1,
            "rows": ["device"],
            "values": ["views", "net_revenue", "engagement_rate"],
            "totals": True,
        }
    )
    filters = Filters.for_preset("last_28_days", bounds[1])
    result = run_report(cursor, d, filters, Scope.everything(), can_see_money=True)
    data = result.frame[[k == "data" for k in result.row_kinds]]
    assert data["Views"].notna().all() and len(data) == 5
    assert data["Net revenue (USD)"].isna().all()
    assert data["Engagement rate"].isna().all()
    assert any("Net revenue" in n and "device" in n for n in result.notes)
    assert any("Engagement rate" in n and "device" in n for n in result.notes)
    total = result.frame.iloc[result.row_kinds.index("total")]
    whole = M.kpis(cursor, filters, Scope.everything(), ["net_revenue", "engagement_rate"])
    _close(total["Net revenue (USD)"], whole["value"].iloc[0], "revenue total")
    _close(total["Engagement rate"], whole["value"].iloc[1], "engagement total")


# --- rights, scope, filters -----------------------------------------------------------------------
def test_money_is_left_out_without_money_rights(cursor, bounds):
    d = parse_report(
        {
            "version": 1,
            "rows": ["country"],
            "values": ["views", "net_revenue", "mrr"],
            "sort": {"by": "net_revenue", "descending": True},
            "percent_of_total": ["net_revenue"],
        }
    )
    filters = Filters.for_preset("last_28_days", bounds[1])
    hidden = run_report(cursor, d, filters, Scope.everything(), can_see_money=False)
    assert hidden.metrics == ("views",)
    assert list(hidden.frame.columns) == ["Country", "Views"]
    assert not any(m.kind == "money" for m in hidden.columns_meta)
    assert any("Net revenue" in n and "MRR" in n and "money" in n for n in hidden.notes)
    shown = run_report(cursor, d, filters, Scope.everything(), can_see_money=True)
    assert "Net revenue (USD)" in shown.frame.columns
    assert shown.column("Net revenue (USD)").kind == "money"
    assert shown.column("Net revenue (USD)").currency == "USD"
    only_money = parse_report({"version": 1, "values": ["mrr"]})
    empty = run_report(cursor, only_money, filters, Scope.everything(), can_see_money=False)
    assert empty.frame.empty and empty.metrics == ()


def test_creator_scope_sees_only_its_own_rows(cursor, bounds, options):
    mine = int(options["creator"][0])
    d = parse_report(
        {
            "version": 1,
            "rows": ["creator", "genre"],
            "values": ["views", "engagement_rate"],
            "subtotals": True,
        }
    )
    filters = Filters.for_preset("last_90_days", bounds[1])
    scope = Scope.creators([mine])
    result = run_report(cursor, d, filters, scope, can_see_money=True)
    data_keys = [
        k for k, kind in zip(result.row_keys, result.row_kinds, strict=True) if kind == "data"
    ]
    assert data_keys and {k[0] for k in data_keys} == {str(mine)}
    name = cursor.execute("SELECT name FROM dim_creator WHERE creator_id = ?", [mine]).fetchone()[0]
    assert set(result.frame["Creator"]) <= {name, "Total"}
    total = result.frame.iloc[result.row_kinds.index("total")]
    _close(total["Views"], M.kpis(cursor, filters, scope, ["views"])["value"].iloc[0], "views")
    assert result.frame["Engagement rate"].isna().all(), "platform-wide: not for a creator"
    assert any("platform-wide" in n for n in result.notes)
    # A creator asking for another creator's rows through the report's filters gets nothing.
    other = options["creator"][1]
    sneaky = parse_report({**json.loads(d.to_json()), "filters": {"creator": [other]}})
    result = run_report(cursor, sneaky, filters, scope, can_see_money=True)
    assert [k for k in result.row_kinds if k == "data"] == []
    assert result.frame["Views"].iloc[-1] == 0
    # No titles at all: nothing, never everything.
    nothing = run_report(cursor, d, filters, Scope.creators([]), can_see_money=True)
    assert nothing.row_kinds == ("total",) and nothing.frame["Views"].iloc[0] == 0


def test_report_filters_narrow_the_filter_bar_never_widen(cursor, bounds):
    page = Filters.for_preset("last_28_days", bounds[1], countries=["US", "DE"])
    d = parse_report(
        {
            "version": 1,
            "rows": ["country"],
            "values": ["views"],
            "filters": {"country": ["DE", "FR"]},
        }
    )
    run = RP.effective_filters(page, d)
    assert run.countries == ("DE",)
    result = run_report(cursor, d, page, Scope.everything(), can_see_money=False)
    assert [
        k[0] for k, kind in zip(result.row_keys, result.row_kinds, strict=True) if kind == "data"
    ] == ["DE"]
    disjoint = parse_report({**d.to_dict(), "filters": {"country": ["FR"]}})
    assert RP.effective_filters(page, disjoint).countries == (NO_MATCH,)
    result = run_report(cursor, disjoint, page, Scope.everything(), can_see_money=False)
    assert result.row_kinds == ("total",) and result.frame["Views"].iloc[0] == 0
    # A report filter on a dimension the filter bar leaves open applies as is.
    open_bar = Filters.for_preset("last_28_days", bounds[1])
    assert RP.effective_filters(open_bar, d).countries == ("DE", "FR")
    creator = parse_report({"version": 1, "values": ["views"], "filters": {"creator": ["007", 7]}})
    assert creator.filters == (("creator", ("7",)),)


def test_comparison_columns_and_top_n_note(cursor, bounds):
    d = parse_report(
        {
            "version": 1,
            "rows": ["country"],
            "values": ["views", "completion_rate"],
            "comparison": True,
            "top_n": 5,
            "percent_of_total": ["views"],
        }
    )
    filters = Filters.for_preset("last_28_days", bounds[1], comparison="none")
    result = run_report(cursor, d, filters, Scope.everything(), can_see_money=False)
    assert result.filters.comparison == "previous_period"
    assert any("previous period" in n for n in result.notes)
    assert [m.name for m in result.columns_meta] == [
        "Country",
        "Views",
        "Views (comparison)",
        "Views change",
        "Views change %",
        "Views % of total",
        "Completion rate",
        "Completion rate (comparison)",
        "Completion rate change",
        "Completion rate change %",
    ]
    assert [m.kind for m in result.columns_meta] == [
        "text", "integer", "integer", "integer", "percent", "percent",
        "percent", "percent", "percent", "percent",
    ]  # fmt: skip
    assert result.row_kinds.count("data") == 5
    assert any(n.startswith("Top 5 by views") and 'no "other" row' in n for n in result.notes)
    f = result.frame
    np.testing.assert_allclose(f["Views change"], f["Views"] - f["Views (comparison)"])
    data = f.iloc[:5]
    assert list(data["Views"]) == sorted(data["Views"], reverse=True)
    total = f.iloc[-1]
    assert total["Country"] == "Total" and total["Views % of total"] == pytest.approx(1.0)
    whole = M.kpis(cursor, result.filters, Scope.everything(), ["views"])
    _close(total["Views (comparison)"], whole["comparison"].iloc[0], "comparison total")


def test_preview_is_fast_on_the_demo_extract(cursor, bounds):
    """Typical layouts, measured: each well under a second here (the budget of the preview)."""
    import time

    filters = Filters.for_preset("last_90_days", bounds[1])
    layouts = [
        {"rows": ["country"], "values": ["views", "active_viewers", "net_revenue"]},
        {"rows": ["country"], "columns": ["device"], "values": ["views", "completion_rate"]},
        {"rows": ["creator", PERIOD], "grain": "week", "values": ["views"], "comparison": True},
        {"rows": [PERIOD], "columns": ["plan"], "grain": "month", "values": ["views", "mrr"]},
    ]
    for layout in layouts:
        d = parse_report({"version": 1, **layout})
        run_report(cursor, d, filters, Scope.everything(), can_see_money=True)  # warm caches
        started = time.perf_counter()
        run_report(cursor, d, filters, Scope.everything(), can_see_money=True)
        assert time.perf_counter() - started < 1.0, layout


# --- definitions ----------------------------------------------------------------------------------
def test_definition_round_trips_and_is_hashable():
    doc = {
        "version": 1,
        "rows": ["creator", "period"],
        "columns": ["device"],
        "values": ["views", "active_viewers"],
        "filters": {"country": ["FR", "DE", "DE"], "plan": []},
        "grain": "week",
        "sort": {"by": "views", "descending": False},
        "top_n": 10,
        "totals": False,
        "subtotals": True,
        "percent_of_total": ["views"],
        "comparison": True,
    }
    d = parse_report(doc)
    assert d.filters == (("country", ("DE", "FR")),), "sorted, de-duplicated, empty dropped"
    assert parse_report(d.to_json()) == d
    assert parse_report(d.to_json().encode()) == d
    assert hash(d) == hash(parse_report(json.dumps(doc)))
    assert json.loads(d.to_json())["sort"] == {"by": "views", "descending": False}
    minimal = parse_report({"version": 1, "values": ["views"]})
    assert minimal.rows == () and minimal.totals is True and minimal.sort is None
    assert {d: 1}[parse_report(d.to_dict())] == 1


@pytest.mark.parametrize(
    ("doc", "path", "words"),
    [
        ({"values": ["views"]}, "version", "missing"),
        ({"version": 2, "values": ["views"]}, "version", "version"),
        ({"version": 1}, "values", "missing"),
        ({"version": 1, "values": []}, "values", "at least one"),
        ({"version": 1, "values": ["views", "starts", "x"]}, "values[2]", "unknown metric 'x'"),
        ({"version": 1, "values": ["views", "views"]}, "values[1]", "twice"),
        ({"version": 1, "values": ["demand_multiplier"]}, "values[0]", "per-title"),
        ({"version": 1, "values": ["views"] * 9}, "values", "at most 8"),
        ({"version": 1, "values": "views"}, "values", "list"),
        ({"version": 1, "values": [3]}, "values[0]", "text"),
        ({"version": 1, "values": ["views"], "rows": ["country", "device", "plan"]}, "rows", "at most 2 row fields"),
        ({"version": 1, "values": ["views"], "columns": ["country", "device"]}, "columns", "at most 1 column field"),
        ({"version": 1, "values": ["views"], "rows": ["title"]}, "rows[0]", "unknown field 'title'"),
        ({"version": 1, "values": ["views"], "rows": ["plan"], "columns": ["plan"]}, "columns[0]", "already in rows[0]"),
        ({"version": 1, "values": ["views"], "rows": ["period"]}, "grain", "needed"),
        ({"version": 1, "values": ["views"], "grain": "year"}, "grain", "not one of"),
        ({"version": 1, "values": ["views"], "filters": {"title": ["x"]}}, "filters.title", "unknown dimension"),
        ({"version": 1, "values": ["views"], "filters": {"country": [True]}}, "filters.country[0]", "text"),
        ({"version": 1, "values": ["views"], "filters": {"country": "x" * 300}}, "filters.country[0]", "at most"),
        ({"version": 1, "values": ["views"], "filters": ["country"]}, "filters", "object"),
        ({"version": 1, "values": ["views"], "sort": {"by": "starts"}}, "sort.by", "neither"),
        ({"version": 1, "values": ["views"], "sort": {"by": "views", "descending": "yes"}}, "sort.descending", "true or false"),
        ({"version": 1, "values": ["views"], "sort": {"by": "views", "asc": 1}}, "sort.asc", "unknown key"),
        ({"version": 1, "values": ["views"], "top_n": 0}, "top_n", "whole number"),
        ({"version": 1, "values": ["views"], "top_n": True}, "top_n", "whole number"),
        ({"version": 1, "values": ["views"], "totals": "yes"}, "totals", "true or false"),
        ({"version": 1, "values": ["views", "active_viewers"], "percent_of_total": ["active_viewers"]}, "percent_of_total[0]", "does not add up"),
        ({"version": 1, "values": ["views"], "percent_of_total": ["starts"]}, "percent_of_total[0]", "not one of the values"),
        ({"version": 1, "values": ["views"], "colour": "red"}, "colour", "unknown key"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_field(doc, path, words):
    with pytest.raises(ReportDefinitionError) as caught:
        parse_report(doc)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)


@pytest.mark.parametrize("text", ["", "[", "[1, 2]", '"views"', "x" * 70_000])
def test_not_a_definition(text):
    with pytest.raises(ReportDefinitionError):
        parse_report(text)


# --- a report exported ----------------------------------------------------------------------------
def test_a_report_exports_and_reads_back(cursor, bounds, tmp_path):
    d = parse_report(
        {
            "version": 1,
            "rows": ["genre", PERIOD],
            "columns": ["kind"],
            "grain": "month",
            "values": ["views", "completion_rate", "net_revenue"],
            "subtotals": True,
            "percent_of_total": ["views"],
        }
    )
    filters = Filters.for_preset("last_90_days", bounds[1])
    scope = Scope.everything()
    result = run_report(cursor, d, filters, scope, can_see_money=True)
    about = about_entries(
        result,
        scope=scope,
        exported_by="analyst",
        synced_at="2026-11-01T00:00:00+00:00",
        name="Genres by month",
    )
    keys = [k for k, _ in about]
    assert {"Period", "Scope", "Exported by", "Data synced at", "Definition (JSON)"} <= set(keys)
    assert any(k.startswith("Metric: Views") for k in keys)
    xlsx = tmp_path / "report.xlsx"
    write_xlsx([SheetSpec("Genres by month", result.frame, result.columns_meta)], xlsx, about=about)
    sheet = openpyxl.load_workbook(xlsx)["Genres by month"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(result.frame.columns)
    for got, (_, want) in zip(rows[1:], result.frame.iterrows(), strict=True):
        for value, expected, meta in zip(got, want, result.columns_meta, strict=True):
            if meta.kind == "date" and isinstance(expected, date):
                assert value.date() == expected
            elif meta.role == "field":
                assert value == expected
            elif isinstance(expected, float) and math.isnan(expected):
                assert value is None
            else:
                assert value == pytest.approx(expected, rel=1e-12)
    formats = {
        m.name: sheet.cell(row=2, column=i + 1).number_format
        for i, m in enumerate(result.columns_meta)
    }
    assert formats["Genre"] == "@" and formats["Month"] == "yyyy-mm-dd"
    money = next(m.name for m in result.columns_meta if m.kind == "money")
    assert formats[money] == '#,##0.00 "USD"'
    percent = next(m.name for m in result.columns_meta if m.role == "percent_of_total")
    assert formats[percent] == "0.0%"
    csv_path = tmp_path / "report.csv"
    assert write_csv(result.frame, csv_path, columns=result.columns_meta) == len(result.frame)
    import csv

    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        back = list(csv.reader(fh))
    assert back[0] == list(result.frame.columns) and len(back) == len(result.frame) + 1
