"""models/success.py and data/queries/title_features.py: hand-made frames where the features can
be worked out on paper, the release-date split, and the demo extract against the genre-median
baseline and an independent pandas reading of the extract."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data.queries.filters import Scope
from data.queries.title_features import title_features
from models import success as S

D0 = date(2025, 1, 1)
NO_AUDIENCE = pd.DataFrame({"day": pd.Series(dtype="object"), "views": pd.Series(dtype="float")})


def _titles(rows: list[dict]) -> pd.DataFrame:
    base = {
        "name": "t",
        "kind": "movie",
        "series_name": None,
        "season": None,
        "episode": None,
        "genre": "Drama",
        "genres": "Drama",
        "runtime_min": 100.0,
        "language": "en",
        "maturity": "PG",
        "creator_id": 1,
        "window_complete": True,
        "days_observed": 28,
        "views": 10.0,
        "starts": 10,
        "completed": 5,
    }
    return pd.DataFrame([{**base, **row} for row in rows])


# --- features on paper ---------------------------------------------------------------------------
def test_track_records_use_only_results_known_before_release():
    titles = _titles(
        [
            {"title_id": 1, "release_date": D0, "views": math.e - 1},  # log1p(views) = 1
            {"title_id": 2, "release_date": D0 + timedelta(days=10), "views": math.e**3 - 1},
            {"title_id": 3, "release_date": D0 + timedelta(days=38), "views": 0.0},
            {"title_id": 4, "release_date": D0 + timedelta(days=40), "creator_id": 2},
            {"title_id": 5, "release_date": D0 + timedelta(days=29), "window_complete": False},
        ]
    )
    ref = S._reference({"titles": titles, "audience": NO_AUDIENCE})
    X = S.build_features(titles, ref)
    # Title 1's result is known on day 28 (its window is days 0-27), title 2's on day 38.
    # Title 2 (day 10): nothing known. Title 3 (day 38): titles 1 and 2, median(1, 3) = 2.
    # Title 5 (day 29): title 1 only. Title 4: another creator, nothing.
    assert X["creator_prior_titles"].tolist() == [0, 0, 2, 0, 1]
    medians = X["creator_prior_median"].tolist()
    assert np.isnan(medians[0]) and np.isnan(medians[1]) and np.isnan(medians[3])
    assert medians[2] == pytest.approx(2.0)
    assert medians[4] == pytest.approx(1.0)
    # A planned title after all of them sees titles 1, 2 and 3 (5 has no known result).
    planned = _titles([{"release_date": D0 + timedelta(days=100), "title_id": 99}])
    P = S.build_features(planned, ref)
    assert P.loc[0, "creator_prior_titles"] == 3
    assert P.loc[0, "creator_prior_median"] == pytest.approx(1.0)  # median(1, 3, 0)


def test_series_track_record_counts_earlier_episodes_only():
    titles = _titles(
        [
            {"title_id": i, "release_date": D0 + timedelta(days=7 * i), "kind": "episode"}
            | {"series_name": "Show", "season": 1, "episode": i, "views": math.e**i - 1}
            for i in range(1, 9)
        ]
    )
    X = S.build_features(titles, S._reference({"titles": titles, "audience": NO_AUDIENCE}))
    # Episode i (day 7i) knows episode j once 7j + 28 <= 7i, i.e. j <= i - 4.
    assert X["series_prior_titles"].tolist() == [0, 0, 0, 0, 1, 2, 3, 4]
    assert X["series_prior_median"].iloc[4:].tolist() == pytest.approx([1.0, 1.5, 2.0, 2.5])
    movie = S.build_features(
        _titles([{"title_id": 50, "release_date": D0}]),
        S._reference({"titles": titles, "audience": NO_AUDIENCE}),
    )
    assert np.isnan(movie.loc[0, "series_prior_titles"])


def test_audience_is_the_mean_of_the_28_days_before_release():
    days = [D0 + timedelta(days=i) for i in range(60)]
    audience = pd.DataFrame({"day": days, "views": np.arange(60, dtype="float64")})
    titles = _titles(
        [
            {"title_id": 1, "release_date": D0 + timedelta(days=40)},
            {"title_id": 2, "release_date": D0 + timedelta(days=10)},
            {"title_id": 3, "release_date": D0},
            {"title_id": 4, "release_date": D0 + timedelta(days=200)},
        ]
    )
    X = S.build_features(titles, S._reference({"titles": titles, "audience": audience}))
    expected = [
        np.log1p(np.mean(np.arange(12, 40))),  # days 12..39
        np.log1p(np.mean(np.arange(0, 10))),  # only days 0..9 are in the data
        np.nan,  # nothing before the first day
        np.log1p(np.mean(np.arange(32, 60))),  # after the data: its last 28 days
    ]
    np.testing.assert_allclose(X["audience_before"], expected)


def test_calendar_genre_and_money_features():
    titles = _titles(
        [
            {
                "title_id": 1,
                "release_date": date(2025, 6, 13),  # a Friday
                "genre": "Sci-Fi",
                "genres": "Sci-Fi|Drama",
                "budget": 1e6 - 1,
                "licensing_cost": 0.0,
            }
        ]
    )
    X = S.build_features(titles, S._reference({"titles": titles, "audience": NO_AUDIENCE}))
    row = X.iloc[0]
    assert (row["release_month"], row["release_weekday"], row["n_genres"]) == (6, 4, 2)
    assert row["has_sci_fi"] == 1.0 and row["has_drama"] == 1.0
    assert row["log_budget"] == pytest.approx(math.log(1e6))
    assert row["log_licensing_cost"] == 0.0
    no_money = titles.drop(columns=["budget", "licensing_cost"])
    X = S.build_features(no_money, S._reference({"titles": no_money, "audience": NO_AUDIENCE}))
    assert "log_budget" not in X


def test_genre_median_baseline():
    train = pd.DataFrame({"genre": ["A", "A", "A", "B"]}, index=[0, 1, 2, 3])
    target = pd.Series([1.0, 2.0, 9.0, 4.0], index=train.index)
    test = pd.DataFrame({"genre": ["A", "B", "C"]}, index=[10, 11, 12])
    base = S.genre_median_baseline(train, test, target, interval=0.8)
    assert base["pred"].tolist() == [2.0, 4.0, 3.0]  # C: the overall median of 1, 2, 4, 9
    assert base.loc[10, "low"] == pytest.approx(np.quantile([1, 2, 9], 0.1))
    assert base.loc[12, "high"] == pytest.approx(np.quantile([1, 2, 4, 9], 0.9))


def test_permutation_importance_finds_the_driver():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = 3 * X[:, 0] + 0.1 * rng.normal(size=300)
    with S._one_thread():  # a few hundred rows: OpenMP threads only wait for each other
        model = HistGradientBoostingRegressor(max_iter=50).fit(X, y)
    mean, std = S.permutation_importance(model, X, y, repeats=5, seed=0)
    assert mean[0] > 1.0 and abs(mean[1]) < 0.05 and abs(mean[2]) < 0.05
    assert (std >= 0).all()
    # The definition, for one feature and one shuffle, by hand.
    one, _ = S.permutation_importance(model, X, y, repeats=1, seed=7)
    shuffled = X.copy()
    shuffled[:, 0] = X[np.random.default_rng(7).permutation(300), 0]
    by_hand = np.mean(np.abs(model.predict(shuffled) - y)) - np.mean(np.abs(model.predict(X) - y))
    assert one[0] == pytest.approx(by_hand)


# --- the split is by release date ----------------------------------------------------------------
def test_the_split_is_by_release_date_with_a_gap_for_unknown_labels():
    rng = np.random.default_rng(5)
    releases = [D0 + timedelta(days=int(d)) for d in rng.permutation(400)[:100]]
    titles = _titles([{"title_id": i, "release_date": r} for i, r in enumerate(releases)])
    titles.loc[[3, 7], "window_complete"] = False
    train, test, cutoff = S.split_by_release(titles, test_share=0.25)
    labelled = titles[titles["window_complete"]]
    rel = pd.to_datetime(labelled["release_date"])
    assert set(test) == set(labelled.index[rel >= pd.Timestamp(cutoff)])
    assert len(test) == 98 - math.floor(98 * 0.75)
    # Every training title's 28-day result was known on the cutoff day: no later label leaks.
    assert (pd.to_datetime(titles.loc[train, "release_date"]) + pd.Timedelta(days=28)).max() <= (
        pd.Timestamp(cutoff)
    )
    assert set(train) == set(labelled.index[rel + pd.Timedelta(days=28) <= pd.Timestamp(cutoff)])
    assert not set(train) & set(test)
    assert 3 not in set(train) | set(test)
    # Shuffling the rows changes nothing: the split depends on dates, not on order or chance.
    shuffled = titles.sample(frac=1, random_state=1)
    train2, test2, cutoff2 = S.split_by_release(shuffled, test_share=0.25)
    assert (set(train2), set(test2), cutoff2) == (set(train), set(test), cutoff)


# --- the demo extract ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_features(demo_store):
    return title_features(demo_store.cursor(), None, Scope.everything(), money=True)


@pytest.fixture(scope="module")
def demo_model(demo_features):
    return S.fit_success_model(demo_features)


def test_the_model_beats_the_genre_median_on_later_titles(demo_model):
    e = demo_model.evaluation
    print("success model on the demo extract (held out by release date):", e)
    assert e["test_first_release"] >= e["cutoff"]
    assert e["train_last_release"] + timedelta(days=28) <= e["cutoff"]
    assert e["train_titles"] >= 60 and e["test_titles"] >= 20
    assert e["model_mae_log"] < e["baseline_mae_log"]
    assert e["beats_baseline"]
    assert e["model_completion_mae"] < e["baseline_completion_mae"]
    assert 0.5 <= e["model_coverage"] <= 1.0
    # The figures are those of the held-out rows, recomputed here.
    p = demo_model.test_predictions
    assert e["model_mae_log"] == pytest.approx(
        np.mean(np.abs(np.log1p(p["predicted"]) - np.log1p(p["views"])))
    )
    assert e["baseline_mae_log"] == pytest.approx(
        np.mean(np.abs(np.log1p(p["baseline"]) - np.log1p(p["views"])))
    )
    inside = (p["views"] >= p["low"]) & (p["views"] <= p["high"])
    assert e["model_coverage"] == pytest.approx(inside.mean())
    assert "beats the genre median" in S.summary(demo_model)


def test_importance_explain_and_what_if(demo_model, demo_features):
    imp = demo_model.importance
    assert set(imp["feature"]) == set(demo_model.features)
    assert imp["importance"].is_monotonic_decreasing
    titles = demo_features["titles"]
    planned = titles[titles["window_complete"]].iloc[[-1]]
    prediction = demo_model.predict(planned).iloc[0]
    assert prediction["views_low"] <= prediction["views"] <= prediction["views_high"]
    assert 0 <= prediction["completion_low"] <= prediction["completion"] <= 1
    factors = demo_model.explain(planned)
    assert not factors.empty
    sizes = np.abs(np.log(factors["views_ratio"].astype(float)))
    assert sizes.is_monotonic_decreasing
    assert set(factors["feature"]) <= set(demo_model.features)
    month = int(pd.Timestamp(planned["release_date"].iloc[0]).month)
    grid = demo_model.what_if(planned, release_month=range(1, 13), runtime_min=[30, 90, 150])
    assert len(grid) == 15
    current = grid[(grid["field"] == "release_month") & grid["is_current"]]
    assert current["value"].tolist() == [month]
    assert current["views_change"].iloc[0] == pytest.approx(0.0, abs=1e-9)
    on_31st = planned.assign(release_date=date(2026, 8, 31))
    months = demo_model.what_if(on_31st, release_month=[8, 2]).set_index("value")
    assert bool(months.loc[8, "is_current"]) and months.loc[8, "views_change"] == 0.0
    assert S._change(on_31st, "release_month", 2)["release_date"].iloc[0] == date(2026, 2, 28)
    genres = demo_model.what_if(planned, genre=["Drama", "Comedy"])
    assert genres["views"].notna().all()
    with pytest.raises(ValueError, match="what_if changes only"):
        demo_model.what_if(planned, budget=[1])


def test_too_few_titles_raise_a_clear_error(demo_features):
    titles = demo_features["titles"]
    few = dict(demo_features, titles=titles[titles["window_complete"]].head(40))
    with pytest.raises(S.SuccessDataError, match="Too few titles"):
        S.fit_success_model(few)


def test_title_features_equal_an_independent_reading_of_dv_view(demo_store):
    cursor = demo_store.cursor()
    views = cursor.execute("SELECT day, title_id, views, completed FROM dv_view").df()
    catalog = cursor.execute("SELECT title_id, creator_id, release_date FROM dim_title").df()
    views["day"] = pd.to_datetime(views["day"])
    catalog["release_date"] = pd.to_datetime(catalog["release_date"])
    first, last = views["day"].min(), views["day"].max()
    creators = sorted(catalog["creator_id"].unique())
    for scope in (Scope.everything(), Scope.creators(creators[:3]), Scope.creators([])):
        got = title_features(cursor, None, scope, early_days=(3,))
        titles = got["titles"]
        mine = catalog if scope.is_all else catalog[catalog["creator_id"].isin(scope.creator_ids)]
        assert sorted(titles["title_id"]) == sorted(mine["title_id"])
        v = views.merge(mine, on="title_id")
        age = (v["day"] - v["release_date"]).dt.days
        window = v[(age >= 0) & (age < 28)]
        expected = window.groupby("title_id").agg(
            views=("views", "sum"), starts=("views", "size"), completed=("completed", "sum")
        )
        early = window[(window["day"] - window["release_date"]).dt.days < 3]
        got_t = titles.set_index("title_id")
        exp = expected.reindex(got_t.index).fillna(0)
        np.testing.assert_allclose(got_t["views"], exp["views"], rtol=1e-9)
        assert (got_t["starts"] == exp["starts"]).all()
        assert (got_t["completed"] == exp["completed"]).all()
        early_sum = early.groupby("title_id")["views"].sum().reindex(got_t.index).fillna(0)
        np.testing.assert_allclose(got_t["views_day_3"], early_sum, rtol=1e-9)
        release = pd.to_datetime(got_t["release_date"])
        complete = (release >= first) & (release + pd.Timedelta(days=27) <= last)
        assert (got_t["window_complete"] == complete).all()
        audience = v.groupby("day")["views"].sum()
        assert len(got["audience"]) == len(audience)
        np.testing.assert_allclose(got["audience"]["views"], audience.to_numpy(), rtol=1e-9)
        assert "budget" not in titles
    assert title_features(cursor, None, Scope.creators([]))["titles"].empty
