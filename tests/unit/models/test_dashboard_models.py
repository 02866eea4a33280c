"""models/similarity.py and models/underperformance.py on hand-made inputs, where the right answer
follows from the definitions, and on the demo extract against an independent computation."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data.queries import comparison, title_periods
from data.queries.filters import Filters, Scope
from models import similarity as S
from models import underperformance as U

END = date(2026, 10, 31)


# --- similarity ------------------------------------------------------------------------------
def test_components_follow_their_definitions():
    assert S.genre_similarity({"Drama", "Crime"}, {"Crime", "Comedy"}) == pytest.approx(1 / 3)
    assert S.genre_similarity(set(), set()) == 0.0
    assert S.runtime_similarity(90, 90) == 1.0
    assert S.runtime_similarity(40, 120) == pytest.approx(0.0)
    assert S.runtime_similarity(60, 120) == pytest.approx(1 - math.log(2) / math.log(3))
    assert S.audience_similarity(10, 100, 25) == pytest.approx(10 / 50)
    assert S.audience_similarity(5, 0, 25) == 0.0
    assert S.pattern_similarity(np.array([1.0, 0]), np.array([3.0, 0])) == pytest.approx(1.0)
    assert S.pattern_similarity(np.array([1.0, 0]), np.array([0, 2.0])) == pytest.approx(0.0)


def _toy():
    titles = pd.DataFrame(
        {
            "title_id": [1, 2, 3, 4],
            "name": ["Target", "Twin", "Stranger", "Cousin"],
            "genres": ["Drama|Crime", "Drama|Crime", "Comedy", "Drama"],
            "runtime_min": [100, 100, 30, 90],
            "viewers": [100, 100, 100, 50],
        }
    )
    overlap = pd.DataFrame({"title_id": [1, 2, 3, 4], "shared": [100, 80, 0, 10]})
    pattern = pd.DataFrame(
        {
            "title_id": [1, 2, 3, 4],
            "slot": [20, 20, 8, 21],
            "starts": [10, 5, 7, 3],
        }
    )
    return titles, overlap, pattern


def test_similar_titles_ranks_by_the_weighted_components():
    titles, overlap, pattern = _toy()
    got = S.similar_titles(1, titles, overlap, pattern, k=3)
    assert list(got["title_id"]) == [2, 4, 3]
    assert 1 not in set(got["title_id"]), "a title is not similar to itself"
    twin = got.iloc[0]
    w = S.Weights()
    expected = (w.genre * 1 + w.runtime * 1 + w.audience * 0.8 + w.pattern * 1) / sum(
        w.as_dict().values()
    )
    assert twin["score"] == pytest.approx(expected)
    assert twin["why"]
    only_audience = S.similar_titles(
        1, titles, overlap, pattern, weights=S.Weights(0, 0, 1, 0), k=1
    )
    assert only_audience["title_id"].iloc[0] == 2
    assert S.similar_titles(99, titles, overlap, pattern).empty


def test_similar_titles_on_the_demo_extract(demo_store):
    cursor = demo_store.cursor()
    filters = Filters.for_preset("last_90_days", END)
    target = int(
        cursor.execute(
            "SELECT title_id FROM dv_view WHERE day BETWEEN ? AND ? GROUP BY 1 "
            "ORDER BY count(*) DESC, 1 LIMIT 1",
            [filters.start, filters.end],
        ).fetchone()[0]
    )
    features = comparison.similarity_features(cursor, filters, Scope.everything(), target)
    got = S.similar_titles(target, **features, k=5)
    assert len(got) == 5
    assert got["score"].is_monotonic_decreasing
    for c in S.COMPONENTS:
        assert got[c].between(0, 1).all()
    # Independent check of the audience component for the best match.
    best = int(got["title_id"].iloc[0])
    fv = cursor.execute(
        "SELECT viewer_key, title_id FROM fact_view WHERE started_at >= ? AND started_at < ?",
        [filters.start, filters.end + timedelta(days=1)],
    ).df()
    a = set(fv[fv["title_id"] == target]["viewer_key"])
    b = set(fv[fv["title_id"] == best]["viewer_key"])
    assert got["audience"].iloc[0] == pytest.approx(len(a & b) / math.sqrt(len(a) * len(b)))


# --- underperformance -------------------------------------------------------------------------
def _stats(rows, countries=None, start=date(2026, 10, 4), end=END):
    titles = pd.DataFrame(
        rows,
        columns=[
            "title_id",
            "name",
            "genre",
            "release_date",
            "starts_cur",
            "starts_base",
            "views_cur",
            "views_base",
            "completed_cur",
            "completed_base",
        ],
    )
    countries = (
        countries
        if countries is not None
        else pd.DataFrame(columns=["title_id", "country", "starts_cur", "starts_base"])
    )
    return {"titles": titles, "countries": countries, "period": (start, end), "baseline": None}


OLD = date(2026, 3, 1)  # 3-12 months at END


def test_an_established_title_is_judged_by_its_peers_trend():
    # Four drama peers keep their views (ratio 1.0); "Flop" halves.
    rows = [(i, f"Peer {i}", "Drama", OLD, 100, 100, 100.0, 100.0, 50, 50) for i in range(1, 5)]
    rows.append((9, "Flop", "Drama", OLD, 60, 100, 50.0, 100.0, 20, 50))
    got = U.underperforming_titles(_stats(rows), min_peers=3)
    assert list(got["title_id"]) == [9]
    flop = got.iloc[0]
    assert flop["expected"] == pytest.approx(100.0 * np.median([1.0, 1.0, 1.0, 1.0]))
    assert flop["shortfall"] == pytest.approx(50.0 - 100.0)
    assert flop["shortfall_pct"] == pytest.approx(-0.5)
    assert "genre and age" in flop["basis"]
    # Completion 50% -> 33%: the reason says so in points.
    assert flop["reason"].startswith("completion fell 17 pts")


def test_the_reason_names_the_country_that_lost_the_starts():
    rows = [(i, f"Peer {i}", "Drama", OLD, 100, 100, 100.0, 100.0, 50, 50) for i in range(1, 5)]
    rows.append((9, "Flop", "Drama", OLD, 60, 100, 50.0, 100.0, 30, 50))
    countries = pd.DataFrame(
        {
            "title_id": [9, 9],
            "country": ["BR", "US"],
            "starts_cur": [10, 50],
            "starts_base": [50, 50],
        }
    )
    got = U.underperforming_titles(_stats(rows, countries), min_peers=3)
    assert got.iloc[0]["reason"] == "starts fell 80% in BR"


def test_a_new_title_is_judged_against_new_peers():
    new = date(2026, 10, 21)  # 11 days out at END
    rows = [(i, f"New {i}", "Horror", new, 100, 0, 110.0, 0.0, 50, 0) for i in range(1, 5)]
    rows.append((9, "Quiet launch", "Horror", new, 20, 0, 22.0, 0.0, 10, 0))
    got = U.underperforming_titles(_stats(rows), min_peers=3)
    assert list(got["title_id"]) == [9]
    assert got.iloc[0]["expected"] == pytest.approx(110.0)
    assert got.iloc[0]["reason"] == "80% below new Horror titles at the same age"


def test_nothing_below_expectation_gives_an_empty_frame():
    rows = [(i, f"Peer {i}", "Drama", OLD, 100, 100, 100.0, 100.0, 50, 50) for i in range(1, 6)]
    assert U.underperforming_titles(_stats(rows)).empty
    assert U.underperforming_titles(_stats([])).empty


def test_underperformance_on_the_demo_extract(demo_store):
    cursor = demo_store.cursor()
    filters = Filters.for_preset("last_28_days", END)
    stats = title_periods.title_period_stats(cursor, filters, Scope.everything())
    got = U.underperforming_titles(stats, k=10)
    assert not got.empty
    assert (got["shortfall_pct"] <= -0.15).all()
    assert got["shortfall"].is_monotonic_increasing
    assert got["reason"].str.len().gt(0).all()
    titles = stats["titles"].set_index("title_id")
    for row in got.itertuples():
        assert row.views == pytest.approx(titles.loc[row.title_id, "views_cur"])
        assert row.shortfall == pytest.approx(row.views - row.expected)


def test_leave_one_out_median_matches_the_plain_definition():
    rng = np.random.default_rng(1)
    for n in range(1, 12):
        for _ in range(10):
            values = pd.Series(rng.integers(0, 6, n).astype(float))
            groups = pd.Series(rng.integers(0, 2, n))
            got = U._leave_one_out_median(values, groups, min_peers=1)
            for i in values.index:
                others = values[(groups == groups[i]) & (values.index != i)]
                if len(others) < 1:
                    assert math.isnan(got[i])
                else:
                    assert got[i] == pytest.approx(float(np.median(others)))
