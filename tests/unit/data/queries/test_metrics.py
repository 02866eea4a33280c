"""The metric catalog against an independent pandas computation on a small generated extract.

Every number is compared with tests/unit/data/queries/metrics_reference.py, which reads the base tables and
applies METRICS.md literally, over many seeded random filter and scope combinations.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pandas as pd
import pytest

from data.queries import metrics as M
from data.queries.filters import COMPARISONS, DIMENSIONS, PRESETS, Filters, Scope
from tests.unit.data.queries import metrics_reference as R

INJECTIONS = (
    "' OR 1=1 --",
    '"; DROP TABLE fact_view; --',
    "%",
    "_",
    "*",
    "1 OR 1=1",
    "1); DROP TABLE dim_title; --",
    "Ünïcödé ☃ 名前 \u202e",
    "x" * 5000,
    "\\",
    "NULL",
)


@pytest.fixture(scope="module")
def store(demo_store):
    return demo_store


@pytest.fixture(scope="module")
def cursor(store):
    return store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


@pytest.fixture(scope="module")
def bounds(cursor):
    b = M.data_bounds(cursor)
    assert b is not None
    return b


@pytest.fixture(scope="module")
def options(ref):
    """Values present in the data for every dimension (for random filters)."""
    v = ref.views
    return {
        "country": sorted(v["country"].dropna().unique()),
        "device": sorted(v["device"].dropna().unique()),
        "genre": sorted(ref.titles["genre"].unique()),
        "kind": sorted(ref.titles["kind"].unique()),
        "creator": sorted(str(c) for c in ref.titles["creator_id"].unique()),
        "plan": sorted(ref.subs["plan"].dropna().unique()),
        "age_band": sorted(ref.subs["age_band"].dropna().unique()),
    }


def random_case(rng: random.Random, bounds, options) -> tuple[Filters, Scope]:
    first, last = bounds
    preset = rng.choice(PRESETS)
    anchor = last - timedelta(days=rng.choice([0, 0, 3, 40, 200]))
    if preset == "custom":
        start = first + timedelta(days=rng.randrange((last - first).days))
        end = min(last, start + timedelta(days=rng.choice([0, 1, 6, 30, 95, 400])))
    else:
        start = end = None
    dims = {}
    for name in rng.sample(list(DIMENSIONS), k=rng.choice([0, 0, 1, 1, 2, 3])):
        values = rng.sample(options[name], k=min(len(options[name]), rng.choice([1, 1, 2, 3])))
        if rng.random() < 0.15:
            values.append("no-such-value")
        dims[DIMENSIONS[name].field] = values
    filters = Filters.for_preset(
        preset, anchor, start=start, end=end, comparison=rng.choice(COMPARISONS), **dims
    )
    roll = rng.random()
    if roll < 0.6:
        scope = Scope.everything()
    elif roll < 0.92:
        scope = Scope.creators(int(c) for c in rng.sample(options["creator"], k=rng.choice([1, 2])))
    else:
        scope = Scope.creators([])
    return filters, scope


def check_kpis(cursor, ref, filters: Filters, scope: Scope, ids) -> None:
    table = M.kpis(cursor, filters, scope, ids).set_index("metric")
    expected = R.values(ref, filters, scope, filters.start, filters.end)
    for mid in ids:
        R.assert_close(table.at[mid, "value"], expected[mid], f"{mid} {filters} {scope}")
    comp = R.comparison_days(filters, filters.start, filters.end)
    assert filters.comparison_period == comp
    if comp is None:
        assert table["comparison"].isna().all()
        return
    expected_c = R.values(ref, filters, scope, *comp)
    for mid in ids:
        R.assert_close(table.at[mid, "comparison"], expected_c[mid], f"{mid} comparison {filters}")
        v, c = table.at[mid, "value"], table.at[mid, "comparison"]
        if not (math.isnan(v) or math.isnan(c)):
            assert table.at[mid, "change"] == pytest.approx(v - c)


KPI_IDS = tuple(m for m in M.METRICS if not M.METRICS[m].per_title)


def test_every_kpi_equals_pandas_over_random_filters(engine, cursor, ref, bounds, options):
    rng = random.Random(20261031)
    for _ in range(120):
        filters, scope = random_case(rng, bounds, options)
        check_kpis(cursor, ref, filters, scope, KPI_IDS)


def test_default_overview_kpis_exclude_money():
    assert not any(M.METRICS[m].money for m in M.OVERVIEW_KPIS)
    assert all(M.METRICS[m].money for m in M.OVERVIEW_MONEY_KPIS)
    assert set(M.visible_metrics(False)) == {m for m in M.METRICS if not M.METRICS[m].money}


def _reference_buckets(filters: Filters, grain: str):
    """Calendar buckets clipped to the period, computed independently of data.metrics."""
    days = pd.date_range(filters.start, filters.end, freq="D")
    if grain == "day":
        keys = days
    elif grain == "week":
        keys = days - pd.to_timedelta(days.day_of_week, unit="D")
    else:
        keys = days.to_period("M").to_timestamp()
    frame = pd.DataFrame({"day": days.date, "key": keys})
    return [(g["day"].min(), g["day"].max()) for _, g in frame.groupby("key", sort=True)]


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_trend_buckets_and_aligned_comparison_equal_pandas(
    engine, cursor, ref, bounds, options, grain
):
    rng = random.Random(hash(grain) % 1000)
    ids = ("views", "active_viewers", "engagement_rate", "mrr", "gross_churn", "new_subscribers")
    for _ in range(8 if grain == "day" else 12):
        filters, scope = random_case(rng, bounds, options)
        if grain == "day" and filters.days > 60:
            continue
        table = M.trend(cursor, filters, scope, grain, ids)
        buckets = _reference_buckets(filters, grain)
        assert sorted(set(table["bucket"])) == [b[0] for b in buckets]
        for b0, b1 in buckets:
            exp = R.values(ref, filters, scope, b0, b1)
            days = R.comparison_days(filters, b0, b1)
            exp_c = R.values(ref, filters, scope, *days) if days else None
            rows = table[table["bucket"] == b0].set_index("metric")
            whole = {"day": 1, "week": 7, "month": pd.Timestamp(b0).days_in_month}[grain]
            for mid in ids:
                assert rows.at[mid, "bucket_end"] == b1
                assert rows.at[mid, "partial"] == ((b1 - b0).days + 1 < whole)
                R.assert_close(rows.at[mid, "value"], exp[mid], f"{grain} {b0} {mid}")
                if exp_c is not None:
                    R.assert_close(rows.at[mid, "comparison"], exp_c[mid], f"{grain} {b0} {mid} c")
                else:
                    assert math.isnan(rows.at[mid, "comparison"]), f"{grain} {b0} {mid} c"


def test_trend_marks_the_weeks_and_months_the_period_cuts(cursor, bounds):
    # Wednesday 4 November to Wednesday 2 December 2026: the first week starts mid-week and the
    # last one has three days; November is whole, December has two of its 31 days.
    filters = Filters(start=date(2026, 11, 4), end=date(2026, 12, 2))
    weeks = M.trend(cursor, filters, Scope.everything(), "week", ("views",))
    assert weeks["partial"].tolist() == [True, False, False, False, True]
    assert weeks["days"].tolist() == [5, 7, 7, 7, 3]
    months = M.trend(cursor, filters, Scope.everything(), "month", ("views",))
    assert months["partial"].tolist() == [True, True]
    whole_month = Filters(start=date(2026, 11, 1), end=date(2026, 11, 30))
    assert not M.trend(cursor, whole_month, Scope.everything(), "month", ("views",))[
        "partial"
    ].any()


@pytest.mark.parametrize("dimension", list(DIMENSIONS))
def test_breakdown_rows_equal_pandas_with_that_value_filtered(
    engine, cursor, ref, bounds, options, dimension
):
    rng = random.Random(len(dimension))
    ids = ("starts", "views", "active_viewers", "completion_rate", "net_revenue", "mrr", "ctr")
    for _ in range(3):
        filters, scope = random_case(rng, bounds, options)
        table = M.breakdown(cursor, filters, scope, dimension, ids)
        assert list(table.columns) == ["key", "label", *ids]
        total = R.values(ref, filters, scope, filters.start, filters.end)["starts"]
        assert table["starts"].fillna(0).sum() == pytest.approx(total)
        for row in table.itertuples(index=False):
            if row.key is None:
                continue
            narrowed = filters.with_dimension(dimension, [row.key])
            if set(narrowed.values(dimension)) != {row.key}:
                continue
            exp = R.values(ref, narrowed, scope, filters.start, filters.end)
            for mid in ids:
                dims, _ = R.APPLICABILITY[mid]
                want = exp[mid] if dimension in dims else math.nan
                R.assert_close(getattr(row, mid), want, f"{dimension}={row.key} {mid}")
        if dimension == "creator" and not scope.is_all:
            assert {int(k) for k in table["key"]} <= set(scope.creator_ids)


@pytest.mark.parametrize("window", [28, 91])
def test_top_titles_rank_by_runtime_normalised_views(engine, cursor, ref, bounds, options, window):
    rng = random.Random(window)
    for _ in range(6):
        filters, scope = random_case(rng, bounds, options)
        table = M.top_titles(cursor, filters, scope, window_days=window, limit=10)
        lo = filters.end - timedelta(days=window - 1)
        v = ref.views
        m = (
            (v["day"] >= pd.Timestamp(lo))
            & (v["day"] <= pd.Timestamp(filters.end))
            & R._mask(
                v,
                filters,
                R.VIEW_COLUMNS,
            )
            & R._scope_mask(v, scope)
        )
        sv = v[m].assign(nv=lambda d: d["watch_seconds"] / (d["runtime_min"] * 60.0))
        per_title = sv.groupby("title_id")["nv"].sum().sort_values(ascending=False, kind="stable")
        assert len(table) == min(10, len(per_title))
        assert list(table["rank"]) == list(range(1, len(table) + 1))
        assert table["views"].tolist() == pytest.approx(per_title.head(len(table)).tolist())
        if len(table):
            t = ref.titles
            available = (
                (t["release_date"] <= pd.Timestamp(filters.end))
                & R._mask(t, filters, {"genre": "genre", "kind": "kind", "creator": "creator_id"})
                & R._scope_mask(t, scope)
            ).sum()
            mean = per_title.sum() / available
            for row in table.itertuples():
                assert row.views == pytest.approx(per_title[row.title_id])
                assert row.demand_multiplier == pytest.approx(per_title[row.title_id] / mean)
                if not scope.is_all:
                    assert row.creator_id in scope.creator_ids


def test_a_creator_scope_sees_only_its_numbers(engine, cursor, ref, bounds, options):
    anchor = bounds[1]
    filters = Filters.for_preset("last_90_days", anchor)
    creator = int(options["creator"][0])
    table = M.kpis(cursor, filters, Scope.creators([creator]), KPI_IDS).set_index("metric")
    exp = R.values(
        ref, filters.with_dimension("creator", [creator]), Scope(), filters.start, filters.end
    )
    for mid in ("starts", "views", "watch_hours", "active_viewers", "net_revenue_ppv", "cpm"):
        R.assert_close(table.at[mid, "value"], exp[mid], mid)
    # Platform-wide numbers are never shown inside a creator scope.
    for mid in ("engagement_rate", "new_subscribers", "mrr", "gross_churn"):
        assert math.isnan(table.at[mid, "value"])
    everything = M.kpis(cursor, filters, Scope(), ["starts"]).set_index("metric")
    assert table.at["starts", "value"] < everything.at["starts", "value"]


def test_an_empty_scope_returns_nothing_never_everything(engine, cursor, bounds):
    filters = Filters.for_preset("year_to_date", bounds[1])
    empty = Scope.creators([])
    table = M.kpis(cursor, filters, empty, KPI_IDS).set_index("metric")
    for mid in ("starts", "views", "watch_hours", "active_viewers", "net_revenue"):
        assert table.at[mid, "value"] == 0
    assert table["value"].fillna(0).eq(0).all()
    for dim in DIMENSIONS:
        assert M.breakdown(cursor, filters, empty, dim, ["starts"])["starts"].fillna(0).sum() == 0
    assert M.top_titles(cursor, filters, empty).empty
    trend = M.trend(cursor, filters, empty, "week", ["views", "active_viewers"])
    assert trend["value"].eq(0).all() and len(trend) > 0


@pytest.mark.parametrize("field", Filters.DIMENSION_FIELDS)
def test_injection_strings_are_values(engine, cursor, store, bounds, field):
    before = cursor.execute("SELECT count(*) FROM fact_view").fetchone()[0]
    for text in INJECTIONS:
        filters = Filters.for_preset("last_90_days", bounds[1], **{field: [text]})
        assert filters.values(next(d for d in DIMENSIONS if DIMENSIONS[d].field == field)) == (
            text,
        )
        ids = ["starts", "views", "active_viewers", "net_revenue", "ctr"]
        table = M.kpis(cursor, filters, Scope(), ids).set_index("metric")
        assert table.at["starts", "value"] == 0
        assert table.at["active_viewers", "value"] == 0
        dim = next(d for d in DIMENSIONS if DIMENSIONS[d].field == field)
        assert M.breakdown(cursor, filters, Scope(), dim, ["starts"])["starts"].fillna(0).sum() == 0
        assert M.top_titles(cursor, filters, Scope()).empty
        # The same text as a URL parameter round-trips and stays a value.
        assert Filters.from_query_params(filters.to_query_params(), bounds[1]) == filters
    assert store.cursor().execute("SELECT count(*) FROM fact_view").fetchone()[0] == before
    assert cursor.execute("SELECT count(*) FROM dim_title").fetchone()[0] > 0


def test_unknown_metric_grain_dimension_and_window_raise(cursor, bounds):
    filters = Filters.for_preset("last_7_days", bounds[1])
    with pytest.raises(KeyError):
        M.kpis(cursor, filters, Scope(), ["views; DROP TABLE fact_view"])
    with pytest.raises(ValueError):
        M.trend(cursor, filters, Scope(), "hour", ["views"])  # type: ignore[arg-type]
    with pytest.raises(KeyError):
        M.breakdown(cursor, filters, Scope(), "country; --", ["views"])
    with pytest.raises(ValueError):
        M.top_titles(cursor, filters, Scope(), window_days=30)


def test_not_applicable_filters_give_nan_with_a_note(cursor, bounds):
    filters = Filters.for_preset("last_28_days", bounds[1], devices=["tv"])
    table = M.kpis(cursor, filters, Scope(), ["views", "net_revenue", "mrr"]).set_index("metric")
    assert table.at["views", "note"] == ""
    assert (
        math.isnan(table.at["net_revenue", "value"]) and "device" in table.at["net_revenue", "note"]
    )
    assert math.isnan(table.at["mrr", "value"])


def test_catalog_entries_are_complete():
    for m in M.METRICS.values():
        assert m.label and m.definition and m.fmt and m.needs
        assert isinstance(m.format(1234.5), str)
        assert m.format(float("nan")) == "—"
    assert M.METRICS["completion_rate"].format(0.5) == "50.0%"


def test_an_extract_without_the_title_rollup_ranks_titles_the_same(store, tmp_path, bounds):
    """An extract built by an earlier release has no dv_title_day: top titles scan dv_view."""
    import shutil

    from data.extract.store import ExtractStore
    from tests.conftest import DEMO_TEST_EXTRACT_KEY

    older = ExtractStore(tmp_path / "older.duckdb", DEMO_TEST_EXTRACT_KEY)
    shutil.copyfile(store.path, older.path)
    with older.build(copy_current=True) as con:
        con.execute("DROP TABLE dv_title_day")
    filters = Filters.for_preset("last_90_days", bounds[1])
    for window in M.TOP_TITLE_WINDOWS:
        expected = M.top_titles(store.cursor(), filters, Scope(), window)
        found = M.top_titles(older.cursor(), filters, Scope(), window)
        assert not expected.empty
        pd.testing.assert_frame_equal(found, expected, check_exact=False, rtol=1e-9)
