"""Dashboard queries (data/queries/engagement.py, data/queries/comparison.py, data/queries/title_periods.py) against an
independent pandas computation over the base tables of the demo extract.

The reference reads fact_view, dim_title, dim_viewer, fact_interaction and fact_revenue as they
are and applies the definitions in the modules' docstrings literally; the queries read the
derived tables. No expected number is written down here.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data.queries import comparison, engagement, title_periods
from data.queries.filters import Filters, Scope
from tests.unit.data.queries.metrics_reference import VIEW_COLUMNS, Reference

END = date(2026, 10, 31)
ALL = Scope.everything()


@pytest.fixture(scope="module")
def cursor(demo_store):
    return demo_store.cursor()


@pytest.fixture(scope="module")
def ref(cursor):
    titles = cursor.execute("SELECT * FROM dim_title").df()
    titles["release_date"] = pd.to_datetime(titles["release_date"]).dt.date
    viewers = cursor.execute("SELECT viewer_key, plan, age_band FROM dim_viewer").df()
    views = cursor.execute("SELECT * FROM fact_view").df()
    views = views.merge(
        titles[["title_id", "genre", "kind", "creator_id", "runtime_min", "release_date"]],
        on="title_id",
        how="left",
    ).merge(viewers, on="viewer_key", how="left")
    views["day"] = views["started_at"].dt.date
    views["views"] = views["watch_seconds"] / (views["runtime_min"] * 60.0)
    inter = cursor.execute("SELECT * FROM fact_interaction").df()
    inter = inter.merge(titles[["title_id", "genre", "creator_id"]], on="title_id")
    inter = inter.merge(
        cursor.execute("SELECT viewer_key, country, plan, age_band FROM dim_viewer").df(),
        on="viewer_key",
        how="left",
    )
    revenue = cursor.execute("SELECT * FROM fact_revenue").df()
    # Net revenue in USD at the rate of each amount's day (the reference's own conversion).
    rates = Reference.load(cursor)
    day = revenue["occurred_at"].dt.normalize()
    revenue["net_usd"] = revenue["net"].astype("float64") * rates.factor(
        day, revenue["currency"].astype(object), "USD"
    )
    return {"titles": titles, "views": views, "inter": inter, "revenue": revenue}


def _select(frame: pd.DataFrame, filters: Filters, scope: Scope, lo=None, hi=None) -> pd.DataFrame:
    lo, hi = lo or filters.start, hi or filters.end
    out = frame[(frame["day"] >= lo) & (frame["day"] <= hi)]
    for name in filters.active_dimensions:
        wanted = set(filters.values(name))
        out = out[out[VIEW_COLUMNS[name]].astype(str).isin(wanted)]
    if not scope.is_all:
        out = out[out["creator_id"].isin(scope.creator_ids)]
    return out


CASES = [
    ("none", Filters.for_preset("last_90_days", END), ALL),
    ("country", Filters.for_preset("last_90_days", END, countries=["US", "BR"]), ALL),
    ("plan", Filters.for_preset("last_28_days", END, plans=["basic"]), ALL),
    (
        "genre+device",
        Filters.for_preset("quarter_to_date", END, genres=["Horror"], devices=["tv"]),
        ALL,
    ),
    ("creator scope", Filters.for_preset("last_90_days", END), Scope.creators([1, 2])),
    ("empty scope", Filters.for_preset("last_90_days", END), Scope.creators([])),
    ("nothing matches", Filters.for_preset("last_90_days", END, countries=["ZZ"]), ALL),
]


@pytest.mark.parametrize(("case", "filters", "scope"), CASES, ids=[c[0] for c in CASES])
def test_local_time_heatmap(cursor, ref, case, filters, scope):
    got = engagement.local_time_heatmap(cursor, filters, scope)
    sel = _select(ref["views"], filters, scope)
    local = sel["started_at"] + pd.to_timedelta(sel["tz_offset_min"], unit="m")
    expected = (
        pd.DataFrame({"weekday": local.dt.day_of_week, "hour": local.dt.hour})
        .value_counts()
        .to_dict()
    )
    assert len(got) == 7 * 24
    for row in got.itertuples():
        assert row.starts == expected.get((row.weekday, row.hour), 0)
    assert got["starts"].sum() == len(sel)
    assert got["watch_hours"].sum() == pytest.approx(sel["watch_seconds"].sum() / 3600)


@pytest.mark.parametrize(("case", "filters", "scope"), CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_release_weeks(cursor, ref, case, filters, scope):
    got = engagement.release_weeks(cursor, filters, scope, weeks=12, limit=5)
    first = filters.end - timedelta(days=83)
    sel = _select(ref["views"], filters, scope, lo=first, hi=filters.end)
    sel = sel[(sel["release_date"] >= first) & (sel["release_date"] <= filters.end)]
    sel = sel[sel["day"] >= sel["release_date"]]
    week = sel.apply(lambda r: (r["day"] - r["release_date"]).days // 7, axis=1)
    per = sel.assign(week=week).groupby(["title_id", "week"])["views"].sum()
    totals = per.groupby("title_id").sum().sort_values(ascending=False, kind="stable")
    top = list(totals[totals > 0].index[:5])
    assert sorted(got["title_id"].unique()) == sorted(top)
    release = ref["titles"].set_index("title_id")["release_date"]
    for row in got.itertuples():
        started = release[row.title_id] + timedelta(days=7 * row.week) <= filters.end
        if not started:
            assert math.isnan(row.views)
        else:
            assert row.views == pytest.approx(per.get((row.title_id, row.week), 0.0))


def test_dropoff_curve(cursor, ref):
    filters = Filters.for_preset("last_90_days", END)
    sel = _select(ref["views"], filters, ALL)
    for title_id in sel["title_id"].value_counts().index[:3]:
        got = engagement.dropoff_curve(cursor, filters, ALL, int(title_id))
        t = sel[sel["title_id"] == title_id]
        runtime_s = int(t["runtime_min"].iloc[0]) * 60
        assert got["starts"] == len(t)
        assert got["completion_rate"] == pytest.approx(t["completed"].mean())
        curve = got["curve"].set_index("pct")["still_watching"]
        for p in (0, 10, 50, 89, 90, 95, 100):
            expected = (t["watch_seconds"] * 100 >= p * runtime_s).mean()
            assert curve[p] == pytest.approx(expected), p
        assert curve[90] == pytest.approx(got["completion_rate"])
        assert (np.diff(curve.to_numpy()) <= 0).all(), "the share still watching never rises"
    out_of_scope = engagement.dropoff_curve(cursor, filters, Scope.creators([]), int(title_id))
    assert out_of_scope["starts"] == 0 and out_of_scope["curve"].empty


def test_titles_in_period(cursor, ref):
    filters = Filters.for_preset("last_28_days", END, kinds=["movie"])
    got = engagement.titles_in_period(cursor, filters, ALL, limit=20)
    sel = _select(ref["views"], filters, ALL)
    expected = sel.groupby("title_id")["views"].sum().sort_values(ascending=False)
    assert list(got["title_id"][:5]) == list(expected.index[:5])
    assert got["views"].iloc[0] == pytest.approx(expected.iloc[0])


def test_interactions_by_week(cursor, ref):
    filters = Filters.for_preset("last_90_days", END)
    top = engagement.interaction_titles(cursor, filters, ALL, limit=3)
    inter = ref["inter"]
    inter = inter[
        (inter["occurred_at"].dt.date >= filters.start)
        & (inter["occurred_at"].dt.date <= filters.end)
    ]
    counts = inter.groupby("title_id").size().sort_values(ascending=False)
    assert list(top["interactions"]) == list(counts.iloc[:3])
    ids = tuple(int(t) for t in top["title_id"])
    got = engagement.interactions_by_week(cursor, filters, ALL, ids)
    views = _select(ref["views"], filters, ALL)

    def week(d):
        return max(filters.start, d - timedelta(days=d.weekday()))

    for title_id in ids:
        mine = inter[inter["title_id"] == title_id].assign(
            week=lambda f: f["occurred_at"].dt.date.map(week)
        )
        watched = views[views["title_id"] == title_id].assign(week=lambda f: f["day"].map(week))
        for row in got[got["title_id"] == title_id].itertuples():
            w = mine[mine["week"] == row.week]
            polls = w[w["kind"] == "poll"]["viewer_key"].nunique()
            viewers = watched[watched["week"] == row.week]["viewer_key"].nunique()
            assert row.poll_viewers == polls
            assert row.viewers == viewers
            assert row.questions == (w["kind"] == "qa").sum()
            reactions = w[w["kind"] == "reaction"]["sentiment"].dropna()
            if len(reactions):
                assert row.sentiment == pytest.approx(reactions.mean())
            else:
                assert math.isnan(row.sentiment)
            if viewers:
                assert row.poll_participation == pytest.approx(polls / viewers)
    assert engagement.interactions_by_week(
        cursor, filters.with_dimension("device", ["tv"]), ALL, ids
    ).empty


@pytest.mark.parametrize(("case", "filters", "scope"), CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_compare_titles(cursor, ref, case, filters, scope):
    sel = _select(ref["views"], filters, scope)
    ids = tuple(int(t) for t in sel["title_id"].value_counts().index[:4])
    got = comparison.compare_titles(cursor, filters, scope, ids, money=True)
    summary = got["summary"].set_index("title_id")
    assert list(summary.index) == list(ids)
    titles = ref["titles"].set_index("title_id")
    available = titles[titles["release_date"] <= filters.end]
    for name, column in (("genre", "genre"), ("kind", "kind"), ("creator", "creator_id")):
        if name in filters.active_dimensions:
            available = available[available[column].astype(str).isin(filters.values(name))]
    if not scope.is_all:
        available = available[available["creator_id"].isin(scope.creator_ids)]
    mean_views = sel["views"].sum() / len(available)
    first_day = ref["views"]["day"].min()
    lifetime_all = _select(ref["views"], filters, scope, lo=date(1900, 1, 1), hi=filters.end)
    revenue = ref["revenue"]
    for title_id in ids:
        t = sel[sel["title_id"] == title_id]
        row = summary.loc[title_id]
        assert row["starts"] == len(t)
        assert row["views"] == pytest.approx(t["views"].sum())
        assert row["completion_rate"] == pytest.approx(t["completed"].mean())
        assert row["demand_multiplier"] == pytest.approx(t["views"].sum() / mean_views)
        release = titles.loc[title_id, "release_date"]
        life = lifetime_all[
            (lifetime_all["title_id"] == title_id) & (lifetime_all["day"] >= release)
        ]
        assert row["views_since_release"] == pytest.approx(life["views"].sum())
        since = life["day"].map(lambda d, release=release: (d - release).days)
        if (filters.end - release).days >= 28 and release >= first_day:
            late = life[since >= 28]["views"].sum()
            assert row["staying_power"] == pytest.approx(late / life["views"].sum())
        else:
            assert math.isnan(row["staying_power"])
        if release >= first_day:
            assert row["licensing_cost_per_view"] == pytest.approx(
                float(titles.loc[title_id, "licensing_cost"]) / life["views"].sum()
            )
            assert "licensing cost per view" not in row["note"].lower()
        else:
            # Its views before the data begins are unknown: no cost spread over too few views.
            assert math.isnan(row["licensing_cost_per_view"])
            assert "before the data begins" in row["note"]
        if row["views"] > 0 and not math.isnan(row["net_revenue"]):
            assert row["net_revenue_per_view"] == pytest.approx(row["net_revenue"] / row["views"])
        curve = got["curve"][got["curve"]["title_id"] == title_id].set_index("day")
        for day in (0, 7, 30):
            if day in curve.index and not math.isnan(curve.loc[day, "cumulative_views"]):
                expected = life[(since >= 0) & (since <= day)]["views"].sum()
                assert curve.loc[day, "cumulative_views"] == pytest.approx(expected)
        mix = got["mix"][
            (got["mix"]["title_id"] == title_id) & (got["mix"]["dimension"] == "device")
        ]
        shares = t["device"].value_counts(normalize=True)
        for m in mix.itertuples():
            assert m.share == pytest.approx(shares[m.value])
        if "device" not in filters.active_dimensions:
            r = revenue[
                (revenue["title_id"] == title_id)
                & (revenue["occurred_at"].dt.date >= filters.start)
                & (revenue["occurred_at"].dt.date <= filters.end)
            ]
            if filters.active_dimensions or not scope.is_all:
                continue  # viewer-attribute filters on revenue are covered by the metric tests
            assert row["net_revenue"] == pytest.approx(float(r["net_usd"].sum()))
        else:
            assert math.isnan(row["net_revenue"]) and got["notes"]


def test_compare_titles_without_money_has_no_money_columns(cursor):
    filters = Filters.for_preset("last_90_days", END)
    got = comparison.compare_titles(cursor, filters, ALL, (1, 2, 3), money=False)
    assert not {"net_revenue", "licensing_cost", "licensing_cost_per_view"} & set(
        got["summary"].columns
    )


def test_compare_titles_respects_the_scope(cursor, ref):
    filters = Filters.for_preset("last_90_days", END)
    titles = ref["titles"]
    mine = [int(t) for t in titles[titles["creator_id"] == 1]["title_id"][:2]]
    other = [int(t) for t in titles[titles["creator_id"] != 1]["title_id"][:2]]
    got = comparison.compare_titles(cursor, filters, Scope.creators([1]), (*mine, *other))
    assert set(got["summary"]["title_id"]) == set(mine)
    catalog = comparison.title_catalog(cursor, None, Scope.creators([1]))
    assert set(catalog["title_id"]) <= set(titles[titles["creator_id"] == 1]["title_id"])


def test_similarity_features(cursor, ref):
    filters = Filters.for_preset("last_90_days", END)
    sel = _select(ref["views"], filters, ALL)
    target = int(sel["title_id"].value_counts().index[0])
    got = comparison.similarity_features(cursor, filters, ALL, target, candidates=30)
    base = set(sel[sel["title_id"] == target]["viewer_key"])
    overlap = got["overlap"].set_index("title_id")["shared"]
    for title_id in got["titles"]["title_id"][:10]:
        shared = len(base & set(sel[sel["title_id"] == title_id]["viewer_key"]))
        assert overlap.get(title_id, 0) == shared
    viewers = got["titles"].set_index("title_id")["viewers"]
    assert viewers[target] == len(base)
    pattern = got["pattern"][got["pattern"]["title_id"] == target]
    assert pattern["starts"].sum() == (sel["title_id"] == target).sum()


def test_title_period_stats(cursor, ref):
    filters = Filters.for_preset("last_28_days", END, devices=["tv", "mobile"])
    got = title_periods.title_period_stats(cursor, filters, ALL)
    base_lo, base_hi = title_periods.baseline_period(filters)
    assert (base_hi - base_lo).days + 1 == filters.days and base_hi < filters.start
    cur = _select(ref["views"], filters, ALL)
    base = _select(ref["views"], filters, ALL, lo=base_lo, hi=base_hi)
    titles = got["titles"].set_index("title_id")
    for title_id in list(cur["title_id"].value_counts().index[:5]):
        row = titles.loc[title_id]
        c = cur[cur["title_id"] == title_id]
        b = base[base["title_id"] == title_id]
        assert row["starts_cur"] == len(c) and row["starts_base"] == len(b)
        assert row["views_cur"] == pytest.approx(c["views"].sum())
        assert row["views_base"] == pytest.approx(b["views"].sum())
        assert row["completed_cur"] == c["completed"].sum()
    assert (pd.to_datetime(titles["release_date"]).dt.date <= filters.end).all()
    countries = got["countries"]
    c = cur[cur["title_id"] == title_id]
    for r in countries[countries["title_id"] == title_id].itertuples():
        assert r.starts_cur == (c["country"] == r.country).sum()


def test_interactions_by_week_never_names_titles_outside_the_scope(cursor):
    filters = Filters.for_preset("last_90_days", END)
    top = engagement.interaction_titles(cursor, filters, ALL, limit=5)
    ids = tuple(int(t) for t in top["title_id"])
    creators = dict(cursor.execute("SELECT title_id, creator_id FROM dim_title").fetchall())
    mine = Scope.creators([creators[ids[0]]])
    got = engagement.interactions_by_week(cursor, filters, mine, ids)
    assert set(got["title_id"]) == {t for t in ids if creators[t] == creators[ids[0]]}
    assert engagement.interactions_by_week(cursor, filters, Scope.creators([]), ids).empty
