"""The rules every metric keeps (METRICS.md), on an extract with what real warehouses hold.

- Implausible rows count nowhere, and a session dated 2030 does not move the date presets.
- The engagement rate's two sides are one population: viewers without a subscription and
  sessions played abroad cannot push it over 100%.
- Gross churn cannot exceed 100%.
- Every ratio whose definition bounds it stays within [0, 1] under random filters and scopes,
  with the in-memory index on and off (a seeded property test).
- The same period last year compares one day with one day across 29 February.

Numbers are compared with tests/unit/data/queries/metrics_reference.py, which applies the
definitions to the base tables independently.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta

import pytest

from data.demo import DemoConfig, build_demo_extract
from data.extract import build_cache
from data.extract.store import ExtractStore
from data.queries import metrics as M
from data.queries.filters import COMPARISONS, Filters, Scope
from tests.conftest import DEMO_TEST_EXTRACT_KEY, DEMO_TEST_PSEUDONYM_KEY
from tests.unit.data.queries import metrics_reference as R
from tests.unit.data.queries.conftest import IMPLAUSIBLE_ROWS
from tests.unit.data.queries.test_metrics import KPI_IDS, check_kpis, random_case

END = date(2026, 10, 31)


@pytest.fixture(scope="module")
def cursor(messy_store):
    return messy_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    return R.Reference.load(cursor)


@pytest.fixture(scope="module")
def options(ref):
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


# --- plausibility ---------------------------------------------------------------------------------
def test_the_messy_extract_holds_what_it_should(cursor, ref):
    """The fixture is what the other tests think it is (so their checks mean something)."""
    for table, n in IMPLAUSIBLE_ROWS.items():
        (total,) = cursor.execute(f"SELECT count(*) FROM {table}").fetchone()
        kept = {"fact_view": ref.views, "fact_subscription": ref.subs, "fact_revenue": ref.revenue}
        assert total - len(kept[table]) == n, table
    (late,) = cursor.execute("SELECT max(started_at) FROM fact_view").fetchone()
    assert late.year == 2030
    (unsubscribed,) = cursor.execute(
        "SELECT count(DISTINCT viewer_key) FROM fact_view WHERE viewer_key NOT IN "
        "(SELECT viewer_key FROM fact_subscription)"
    ).fetchone()
    assert unsubscribed >= 60


def test_implausible_rows_count_in_no_metric(engine, cursor, ref):
    """A 68-year session, negative ones, 2030 starts, a negative price, bad fees: every metric
    equals the reference computed without them, and the raw rows would have changed them."""
    filters = Filters.for_preset("last_28_days", END, comparison="same_period_last_year")
    check_kpis(cursor, ref, filters, Scope(), KPI_IDS)
    table = M.kpis(cursor, filters, Scope(), ["starts", "watch_hours"]).set_index("metric")
    (raw_starts, raw_seconds) = cursor.execute(
        "SELECT count(*), sum(watch_seconds) FROM fact_view WHERE started_at >= ? "
        "AND started_at < ?",
        [filters.start, filters.end + timedelta(days=1)],
    ).fetchone()
    assert table.at["starts", "value"] == raw_starts - 6, "six implausible sessions in the period"
    assert table.at["watch_hours", "value"] * 3600 < raw_seconds - 68 * 365 * 86_400


def test_a_session_in_2030_does_not_move_the_date_presets(engine, cursor):
    assert M.data_bounds(cursor) == (date(2024, 11, 1), END)
    filters = Filters.for_preset("last_28_days", M.data_bounds(cursor)[1])
    assert filters.end == END
    year = Filters(date(2030, 1, 1), date(2030, 12, 31), comparison="none")
    assert M.kpis(cursor, year, Scope(), ["starts"])["value"].iloc[0] == 0


# --- one population for the engagement rate --------------------------------------------------------
def test_engagement_rate_counts_subscribers_by_their_home_country(engine, cursor, ref):
    """3,000 sessions of viewers from elsewhere were played in NZ: counted by where the session
    was played, "NZ engagement" would be many times 100%. Counted by subscriber, it is not."""
    filters = Filters.for_preset("last_90_days", END, countries=["NZ"])
    rate = M.kpis(cursor, filters, Scope(), ["engagement_rate"])["value"].iloc[0]
    assert 0 < rate <= 1
    expected = R.values(ref, filters, Scope(), filters.start, filters.end)
    R.assert_close(rate, expected["engagement_rate"], "engagement NZ")
    # The old definition: viewers of sessions played in NZ / subscribers living in NZ.
    v, s = ref.views, ref.subs
    lo, hi = R._ts(filters.start), R._ts(filters.end + timedelta(days=1))
    played = v[(v["day"] >= lo) & (v["day"] < hi) & (v["country"] == "NZ")]
    active = (s["started_at"] < hi) & (s["ended_at"].isna() | (s["ended_at"] >= lo))
    living = s[active & (s["v_country"] == "NZ")]
    assert played["viewer_key"].nunique() / living["viewer_key"].nunique() > 2


def test_engagement_rate_is_not_raised_by_viewers_without_a_subscription(engine, cursor, ref):
    filters = Filters.for_preset("last_90_days", END, comparison="none")
    unsubscribed = cursor.execute(
        "SELECT DISTINCT viewer_key FROM fact_view WHERE started_at >= ? AND viewer_key NOT IN "
        "(SELECT viewer_key FROM fact_subscription)",
        [filters.start],
    ).fetchall()
    assert unsubscribed, "the fixture has viewers watching without a subscription"
    value = M.kpis(cursor, filters, Scope(), ["engagement_rate"])["value"].iloc[0]
    R.assert_close(
        value, R.values(ref, filters, Scope(), filters.start, filters.end)["engagement_rate"], "e"
    )
    assert value <= 1


def test_breakdown_of_engagement_by_country_is_by_home_country(engine, cursor, ref):
    filters = Filters.for_preset("last_28_days", END, comparison="none")
    table = M.breakdown(cursor, filters, Scope(), "country", ["engagement_rate"])
    assert (table["engagement_rate"].dropna() <= 1).all()
    for row in table.itertuples(index=False):
        if row.key is None:
            continue
        narrowed = filters.with_dimension("country", [row.key])
        exp = R.values(ref, narrowed, Scope(), filters.start, filters.end)["engagement_rate"]
        R.assert_close(row.engagement_rate, exp, f"country={row.key}")
    # Not by device: a subscriber is not a device.
    device = M.breakdown(cursor, filters, Scope(), "device", ["engagement_rate"])
    assert device["engagement_rate"].isna().all()


# --- every bounded ratio within [0, 1] --------------------------------------------------------------
def _within(value: float) -> bool:
    return math.isnan(value) or 0.0 <= value <= 1.0 + 1e-12


def test_bounded_ratios_stay_within_0_and_1_under_random_filters(engine, cursor, ref, options):
    """A seeded property test over random presets, custom ranges, comparisons, filters and
    scopes on the messy extract: KPIs (and their comparisons), weekly trends and breakdowns."""
    rng = random.Random(1111)
    bounds = (date(2024, 11, 1), END)
    checked = 0
    for i in range(140):
        filters, scope = random_case(rng, bounds, options)
        table = M.kpis(cursor, filters, scope, R.BOUNDED).set_index("metric")
        for mid in R.BOUNDED:
            for column in ("value", "comparison"):
                assert _within(table.at[mid, column]), (mid, column, filters, scope)
                checked += not math.isnan(table.at[mid, column])
        if i % 4 == 0:
            trend = M.trend(cursor, filters, scope, "week", R.BOUNDED)
            assert trend["value"].map(_within).all(), (filters, scope)
            assert trend["comparison"].map(_within).all(), (filters, scope)
        if i % 7 == 0:
            dim = rng.choice(["country", "plan", "age_band", "genre", "device"])
            frame = M.breakdown(cursor, filters, scope, dim, R.BOUNDED)
            for mid in R.BOUNDED:
                assert frame[mid].map(_within).all(), (mid, dim, filters, scope)
    assert checked > 300, "the property test must see real values, not only NaN"


def test_gross_churn_counts_subscriptions_started_in_the_period_at_risk(engine, cursor, ref):
    """Cancellations of subscriptions started inside the period count in the numerator, so
    they count in the denominator too: a long period cannot exceed 100%."""
    for preset in ("last_7_days", "year_to_date", "last_90_days"):
        filters = Filters.for_preset(preset, END, comparison="none")
        value = M.kpis(cursor, filters, Scope(), ["gross_churn"])["value"].iloc[0]
        exp = R.values(ref, filters, Scope(), filters.start, filters.end)["gross_churn"]
        R.assert_close(value, exp, preset)
        assert 0 <= value <= 1
    whole = Filters(date(2024, 11, 1), END, comparison="none")
    value = M.kpis(cursor, whole, Scope(), ["gross_churn"])["value"].iloc[0]
    # Two years: far more cancellations than subscriptions active on the first day.
    (at_start,) = cursor.execute(
        "SELECT count(*) FROM dv_subscription WHERE start_day < ? "
        "AND (end_day IS NULL OR end_day >= ?)",
        [whole.start, whole.start],
    ).fetchone()
    (ended,) = cursor.execute(
        "SELECT count(*) FROM dv_subscription WHERE end_day BETWEEN ? AND ?",
        [whole.start, whole.end],
    ).fetchone()
    assert ended > at_start, "the old definition would exceed 100% here"
    assert value <= 1


def test_every_kpi_equals_pandas_on_the_messy_extract(engine, cursor, ref, options):
    rng = random.Random(77)
    for _ in range(30):
        filters, scope = random_case(rng, (date(2024, 11, 1), END), options)
        check_kpis(cursor, ref, filters, scope, KPI_IDS)


# --- same period last year across 29 February ---------------------------------------------------
@pytest.fixture(scope="module")
def leap_stores(tmp_path_factory):
    """Small demo extracts spanning February 2024 into 2025, and 2027 into 2028."""
    stores = {}
    for end in (date(2025, 3, 31), date(2028, 3, 31)):
        store = ExtractStore(
            tmp_path_factory.mktemp(f"leap-{end.year}") / "extract.duckdb", DEMO_TEST_EXTRACT_KEY
        )
        config = DemoConfig(viewers=500, views=12_000, seed=4, end=end, days=440, titles=60)
        build_demo_extract(store, config, DEMO_TEST_PSEUDONYM_KEY)
        stores[end.year] = store
    return stores


@pytest.mark.parametrize("memory", [True, False])
def test_a_leap_day_has_no_comparison_and_each_day_compares_with_one_day(leap_stores, memory):
    build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS if memory else 0)
    try:
        cursor = leap_stores[2028].cursor()
        ref = R.Reference.load(cursor)
        filters = Filters(date(2028, 2, 20), date(2028, 3, 10), comparison="same_period_last_year")
        ids = ("starts", "watch_hours", "active_viewers")
        trend = M.trend(cursor, filters, Scope(), "day", ids)
        assert len(trend[trend["metric"] == "starts"]) == 20
        for row in trend.itertuples(index=False):
            if row.bucket == date(2028, 2, 29):
                assert math.isnan(row.comparison), "29 February 2028 has no counterpart"
                continue
            earlier = row.bucket.replace(year=2027)
            expected = R.values(ref, filters, Scope(), earlier, earlier)[row.metric]
            R.assert_close(row.comparison, expected, f"{row.bucket} {row.metric}")
        # A period made of 29 February alone has nothing to compare with.
        alone = Filters(date(2028, 2, 29), date(2028, 2, 29), comparison="same_period_last_year")
        assert alone.comparison_period is None
        assert M.kpis(cursor, alone, Scope(), ids)["comparison"].isna().all()

        cursor = leap_stores[2025].cursor()
        ref = R.Reference.load(cursor)
        filters = Filters(date(2025, 2, 20), date(2025, 3, 10), comparison="same_period_last_year")
        trend = M.trend(cursor, filters, Scope(), "day", ids)
        starts = trend[trend["metric"] == "starts"].set_index("bucket")
        for day, row in starts.iterrows():
            earlier = day.replace(year=2024)
            expected = R.values(ref, filters, Scope(), earlier, earlier)["starts"]
            R.assert_close(row["comparison"], expected, f"{day}")
        # 29 February 2024 is in no daily point: the points add up to the period without it.
        whole = R.values(ref, filters, Scope(), date(2024, 2, 20), date(2024, 3, 10))["starts"]
        leap = R.values(ref, filters, Scope(), date(2024, 2, 29), date(2024, 2, 29))["starts"]
        assert leap > 0, "the 2024 data has views on 29 February"
        assert starts["comparison"].sum() == pytest.approx(whole - leap)
        # A week spanning the end of February compares with the same dates, 29 February in.
        weekly = M.trend(cursor, filters, Scope(), "week", ("starts",)).set_index("bucket")
        spanning = weekly.loc[date(2025, 2, 24)]
        assert spanning["bucket_end"] == date(2025, 3, 2)
        expected = R.values(ref, filters, Scope(), date(2024, 2, 24), date(2024, 3, 2))["starts"]
        R.assert_close(spanning["comparison"], expected, "week across February")
        # The KPI compares the same calendar dates.
        kpi = M.kpis(cursor, filters, Scope(), ("starts",))
        R.assert_close(kpi["comparison"].iloc[0], whole, "period")
    finally:
        build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)


def test_random_comparisons_never_fail_around_leap_days(leap_stores):
    """Any period in the leap extracts, any comparison: the comparison values are those of
    the reference's own day mapping (tests/unit/data/queries/metrics_reference.py)."""
    rng = random.Random(29)
    cursor = leap_stores[2028].cursor()
    ref = R.Reference.load(cursor)
    for _ in range(25):
        start = date(2028, 1, 20) + timedelta(days=rng.randrange(60))
        end = start + timedelta(days=rng.choice([0, 1, 6, 20]))
        filters = Filters(start, end, comparison=rng.choice(COMPARISONS))
        grain = rng.choice(["day", "week", "month"])
        trend = M.trend(cursor, filters, Scope(), grain, ("starts",))
        for row in trend.itertuples(index=False):
            days = R.comparison_days(filters, row.bucket, row.bucket_end)
            if days is None:
                assert math.isnan(row.comparison), (filters, grain, row.bucket)
            else:
                exp = R.values(ref, filters, Scope(), *days)["starts"]
                R.assert_close(row.comparison, exp, f"{filters} {grain} {row.bucket}")


def test_dashboard_queries_on_the_base_facts_leave_out_implausible_sessions(cursor, ref):
    """The Engagement heatmap and the similarity pattern read fact_view (they need the time of
    day): they leave out what dv_view leaves out."""
    from data.queries import comparison, engagement

    filters = Filters.for_preset("last_7_days", END, comparison="none")
    heat = engagement.local_time_heatmap(cursor, filters, Scope())
    expected = R.values(ref, filters, Scope(), filters.start, filters.end)
    assert heat["starts"].sum() == expected["starts"]
    R.assert_close(heat["watch_hours"].sum(), expected["watch_hours"], "heatmap hours")
    (raw,) = cursor.execute(
        "SELECT count(*) FROM fact_view WHERE started_at >= ? AND started_at < ?",
        [filters.start, filters.end + timedelta(days=1)],
    ).fetchone()
    assert raw > expected["starts"], "the period holds implausible sessions"
    (title,) = cursor.execute(
        "SELECT title_id FROM fact_view WHERE view_id > 100000000 AND view_id < 300000000 LIMIT 1"
    ).fetchone()
    pattern = comparison.similarity_features(cursor, filters, Scope(), title)["pattern"]
    v = ref.views
    kept = v[(v["title_id"] == title) & (v["day"] >= R._ts(filters.start))]
    assert pattern.loc[pattern["title_id"] == title, "starts"].sum() == len(kept)
