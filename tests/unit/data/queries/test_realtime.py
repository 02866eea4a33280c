"""Hourly numbers against a pandas recomputation from the messy extract's base tables."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from data.extract.derived import extract_as_of
from data.extract.plausibility import MAX_SESSION_SECONDS
from data.queries.filters import Filters, Scope
from data.queries.realtime import (
    day_is_incomplete,
    hourly,
    latest_view_at,
    without_incomplete_day,
)


@pytest.fixture(scope="module")
def cursor(messy_store):
    return messy_store.cursor()


@pytest.fixture(scope="module")
def views(cursor) -> pd.DataFrame:
    frame = cursor.execute(
        "SELECT v.*, t.creator_id, t.genre FROM fact_view v LEFT JOIN dim_title t USING (title_id)"
    ).df()
    as_of = extract_as_of(cursor)
    keep = (
        (frame["watch_seconds"] >= 0)
        & (frame["watch_seconds"] <= MAX_SESSION_SECONDS)
        & (frame["started_at"] <= pd.Timestamp(as_of) + pd.Timedelta(days=1))
    )
    return frame[keep]


def _by_hour(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    window = frame[(frame["started_at"] >= start) & (frame["started_at"] < end)]
    return window.groupby(window["started_at"].dt.floor("h")).agg(
        starts=("view_id", "size"),
        watch_hours=("watch_seconds", lambda s: s.sum() / 3600),
        viewers=("viewer_key", "nunique"),
    )


def test_the_newest_view_leaves_out_implausible_rows(cursor, views):
    # The messy extract has sessions dated 2030: they never count as the data's reach.
    assert latest_view_at(cursor) == views["started_at"].max().to_pydatetime()
    assert latest_view_at(cursor).year == 2026


@pytest.mark.parametrize("metric", ["starts", "watch_hours", "viewers"])
@pytest.mark.parametrize("comparison", ["previous_period", "same_period_last_year", "none"])
def test_hours_and_their_comparison_equal_pandas(cursor, views, metric, comparison):
    newest = views["started_at"].max().to_pydatetime()
    filters = Filters(start=date(2026, 10, 1), end=date(2026, 10, 31), comparison=comparison)
    table = hourly(cursor, filters, Scope.everything(), hours=30, metric=metric)
    last_hour = newest.replace(minute=0, second=0, microsecond=0)
    assert list(table["hour"]) == list(
        pd.date_range(last_hour - timedelta(hours=29), last_hour, freq="h")
    )
    ref = _by_hour(views, last_hour - timedelta(hours=29), newest + timedelta(microseconds=1))
    for row in table.itertuples():
        want = ref[metric].get(row.hour, 0)
        assert row.value == pytest.approx(want), row.hour
    shift = {"previous_period": timedelta(days=1), "same_period_last_year": timedelta(days=364)}
    if comparison == "none":
        assert table["comparison"].isna().all()
        return
    s = shift[comparison]
    # The comparison stops at the same minute as the data: the partial hour against the same part.
    past = _by_hour(
        views, last_hour - timedelta(hours=29) - s, newest + timedelta(microseconds=1) - s
    )
    for row in table.itertuples():
        assert row.comparison == pytest.approx(past[metric].get(row.hour - s, 0)), row.hour


def test_only_an_unfinished_newest_hour_is_partial(cursor, views):
    newest = views["started_at"].max().to_pydatetime()
    table = hourly(
        cursor,
        Filters(start=date(2026, 10, 1), end=date(2026, 10, 31)),
        Scope.everything(),
        hours=5,
    )
    assert not table["partial"].iloc[:-1].any()
    assert bool(table["partial"].iloc[-1]) == (newest.minute < 59)
    assert table["minutes"].iloc[-1] == min(60, newest.minute + 1)


def test_filters_and_scope_apply_to_hours(cursor, views):
    newest = views["started_at"].max().to_pydatetime()
    creator = int(views.loc[views["started_at"] == newest, "creator_id"].iloc[0])
    filters = Filters(
        start=date(2026, 10, 1), end=date(2026, 10, 31), devices=("tv",), comparison="none"
    )
    table = hourly(cursor, filters, Scope.creators([creator]), hours=48)
    last_hour = newest.replace(minute=0, second=0, microsecond=0)
    mine = views[(views["creator_id"] == creator) & (views["device"] == "tv")]
    ref = _by_hour(mine, last_hour - timedelta(hours=47), newest + timedelta(seconds=1))
    assert table["value"].sum() == ref["starts"].sum()
    assert hourly(cursor, filters, Scope.creators([]), hours=48)["value"].sum() == 0


def test_bad_arguments_are_refused(cursor):
    filters = Filters(start=date(2026, 10, 1), end=date(2026, 10, 31))
    with pytest.raises(KeyError):
        hourly(cursor, filters, Scope.everything(), metric="net_revenue; DROP TABLE x")
    with pytest.raises(ValueError):
        hourly(cursor, filters, Scope.everything(), hours=0)


def test_an_unfinished_last_day_is_left_out_of_rankings():
    filters = Filters(start=date(2026, 10, 4), end=date(2026, 10, 31))
    assert without_incomplete_day(filters, datetime(2026, 10, 31, 14, 5)).end == date(2026, 10, 30)
    assert without_incomplete_day(filters, datetime(2026, 10, 31, 23, 59, 30)) is None
    assert without_incomplete_day(filters, datetime(2026, 11, 2, 9, 0)) is None, (
        "data beyond the period"
    )
    one_day = Filters(start=date(2026, 10, 31), end=date(2026, 10, 31))
    assert without_incomplete_day(one_day, datetime(2026, 10, 31, 9, 0)) is None
    assert not day_is_incomplete(date(2026, 10, 31), None)
