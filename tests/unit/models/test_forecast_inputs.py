"""data/queries/forecast_inputs.py (the forecasts' inputs beside the metric catalog) against an
independent pandas reading of dv_view and dim_title, under several scopes."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from data.queries import forecast_inputs as Q
from data.queries.filters import Filters, Scope

START, END = date(2026, 8, 1), date(2026, 10, 31)


@pytest.fixture(scope="module")
def frames(demo_store):
    cursor = demo_store.cursor()
    views = cursor.execute(
        "SELECT day, title_id, views, watch_seconds, completed FROM dv_view"
    ).df()
    views["day"] = pd.to_datetime(views["day"]).dt.date
    catalog = cursor.execute(
        "SELECT title_id, name, kind, genre, release_date, episode, creator_id FROM dim_title"
    ).df()
    catalog["release_date"] = pd.to_datetime(catalog["release_date"]).dt.date
    return cursor, views, catalog


def _scopes(catalog: pd.DataFrame) -> list[Scope]:
    creators = sorted(catalog["creator_id"].unique())
    return [Scope.everything(), Scope.creators(creators[:4]), Scope.creators([])]


def test_title_daily_equals_dv_view_with_zeros_on_quiet_days(frames):
    cursor, views, catalog = frames
    period = Filters(START, END)
    in_period = views[(views["day"] >= START) & (views["day"] <= END)]
    busiest = in_period.groupby("title_id")["views"].sum().nlargest(6).index.tolist()
    for scope in _scopes(catalog):
        allowed = (
            set(catalog["title_id"])
            if scope.is_all
            else set(catalog.loc[catalog["creator_id"].isin(scope.creator_ids), "title_id"])
        )
        for metric, column, factor in (
            ("views", "views", 1.0),
            ("watch_hours", "watch_seconds", 1 / 3600),
            ("starts", None, 1.0),
        ):
            got = Q.title_daily(cursor, period, scope, (*busiest, 10**9), metric)
            expected_ids = sorted(set(busiest) & allowed)
            assert sorted(got["title_id"].unique()) == expected_ids
            assert len(got) == len(expected_ids) * ((END - START).days + 1)
            mine = in_period[in_period["title_id"].isin(expected_ids)]
            if column is None:
                ref = mine.groupby(["title_id", "day"]).size().astype("float64")
            else:
                ref = mine.groupby(["title_id", "day"])[column].sum() * factor
            got_s = got.set_index(["title_id", "day"])["value"]
            np.testing.assert_allclose(got_s, ref.reindex(got_s.index).fillna(0.0), rtol=1e-9)
    with pytest.raises(KeyError):
        Q.title_daily(cursor, period, Scope.everything(), (1,), "revenue")
    assert Q.title_daily(cursor, period, Scope.everything(), ()).empty


def test_premieres_follow_the_title_filters_and_the_scope(frames):
    cursor, _views, catalog = frames
    genre = catalog["genre"].mode().iloc[0]
    for scope in _scopes(catalog):
        for filters in (Filters(START, END), Filters(START, END, genres=(genre,))):
            got = Q.premieres(cursor, filters, scope, ahead_days=60)
            c = catalog
            if not scope.is_all:
                c = c[c["creator_id"].isin(scope.creator_ids)]
            if filters.genres:
                c = c[c["genre"] == genre]
            c = c[(c["release_date"] >= START) & (c["release_date"] <= END + timedelta(days=60))]
            c = c[(c["kind"] != "episode") | (c["episode"] == 1)]
            assert sorted(got["title_id"]) == sorted(c["title_id"])
            assert list(got["release_date"]) == sorted(got["release_date"])
    nothing = Filters(START, END, genres=("' OR 1=1 --",))
    assert Q.premieres(cursor, nothing, Scope.everything()).empty
