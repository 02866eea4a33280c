"""Filters and Scope: presets, comparison periods, SQL rendering, URL round trip, clear errors."""

from __future__ import annotations

import random
from datetime import date, timedelta

import duckdb
import pytest

from data.queries.filters import (
    COMPARISONS,
    DIMENSIONS,
    PRESETS,
    Filters,
    FiltersError,
    Scope,
    preset_range,
)

ANCHOR = date(2026, 10, 31)
COLUMNS = {name: name if name != "creator" else "creator_id" for name in DIMENSIONS}


@pytest.mark.parametrize(
    ("preset", "anchor", "start", "end"),
    [
        ("last_7_days", ANCHOR, date(2026, 10, 25), ANCHOR),
        ("last_28_days", ANCHOR, date(2026, 10, 4), ANCHOR),
        ("last_90_days", ANCHOR, date(2026, 8, 3), ANCHOR),
        ("month_to_date", date(2026, 10, 15), date(2026, 10, 1), date(2026, 10, 15)),
        ("quarter_to_date", date(2026, 11, 20), date(2026, 10, 1), date(2026, 11, 20)),
        ("quarter_to_date", date(2026, 3, 31), date(2026, 1, 1), date(2026, 3, 31)),
        ("year_to_date", date(2026, 2, 3), date(2026, 1, 1), date(2026, 2, 3)),
        ("month_to_date", date(2026, 10, 1), date(2026, 10, 1), date(2026, 10, 1)),
    ],
)
def test_presets_resolve_against_the_anchor(preset, anchor, start, end):
    f = Filters.for_preset(preset, anchor)
    assert (f.start, f.end) == (start, end) == preset_range(preset, anchor)
    assert f.preset == preset


def test_previous_period_is_equal_length_and_directly_before():
    rng = random.Random(5)
    for _ in range(300):
        start = date(2024, 1, 1) + timedelta(days=rng.randrange(1000))
        end = start + timedelta(days=rng.randrange(400))
        f = Filters(start, end)
        c0, c1 = f.comparison_period
        assert (c1 - c0).days + 1 == f.days
        assert c1 == start - timedelta(days=1)


def test_month_to_date_compares_with_the_days_just_before():
    f = Filters.for_preset("month_to_date", date(2026, 10, 15))
    assert f.comparison_period == (date(2026, 9, 16), date(2026, 9, 30))


def test_same_period_last_year_and_none():
    f = Filters.for_preset("last_7_days", ANCHOR, comparison="same_period_last_year")
    assert f.comparison_period == (date(2025, 10, 25), date(2025, 10, 31))
    # 29 February has no counterpart: a period starting on it compares from 1 March, one
    # ending on it up to 28 February, and a period that is only 29 February with nothing.
    leap = Filters(date(2028, 2, 29), date(2028, 3, 1), comparison="same_period_last_year")
    assert leap.comparison_period == (date(2027, 3, 1), date(2027, 3, 1))
    to_leap = Filters(date(2028, 2, 20), date(2028, 2, 29), comparison="same_period_last_year")
    assert to_leap.comparison_period == (date(2027, 2, 20), date(2027, 2, 28))
    alone = Filters(date(2028, 2, 29), date(2028, 2, 29), comparison="same_period_last_year")
    assert alone.comparison_period is None
    # A period a year after a leap year covers the earlier 29 February when it spans it.
    after = Filters(date(2025, 2, 20), date(2025, 3, 10), comparison="same_period_last_year")
    assert after.comparison_period == (date(2024, 2, 20), date(2024, 3, 10))
    assert Filters(ANCHOR, ANCHOR, comparison="none").comparison_period is None


def test_filters_are_hashable_and_canonical():
    a = Filters(ANCHOR, ANCHOR, countries=["US", "DE", "US"], creators=[3, "1"])
    b = Filters(ANCHOR, ANCHOR, countries=("DE", "US"), creators=("1", "3"))
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    with pytest.raises(AttributeError):
        a.start = date(2020, 1, 1)  # type: ignore[misc]


def test_where_binds_values_over_allowlisted_columns():
    f = Filters(ANCHOR, ANCHOR, countries=["' OR 1=1 --"], creators=["7", "x'); DROP"])
    sql, params = f.where(COLUMNS)
    assert "OR 1=1" not in sql and "DROP" not in sql
    assert sorted(params, key=str) == sorted([7, "' OR 1=1 --"], key=str)
    assert sql.count("?") == len(params)
    assert Filters(ANCHOR, ANCHOR).where(COLUMNS) == ("TRUE", [])


def test_where_refuses_unknown_dimensions_and_columns():
    f = Filters(ANCHOR, ANCHOR, devices=["tv"])
    with pytest.raises(KeyError):
        f.where({"devicez": "device"})
    with pytest.raises(KeyError):
        f.where({"country": "country"})  # an active dimension without a column
    with pytest.raises(ValueError):
        f.where({"device": "device; DROP TABLE x"})
    with pytest.raises(KeyError):
        f.values("nope")
    with pytest.raises(FiltersError):
        Filters.for_preset("last_7_days", ANCHOR, colours=["red"])


def test_non_numeric_creator_ids_select_nothing_never_everything():
    f = Filters(ANCHOR, ANCHOR, creators=["' OR 1=1 --", "١"])
    assert f.where(COLUMNS) == ("FALSE", [])


def test_scope_renders_all_some_and_none():
    assert Scope.everything().where("creator_id") == ("TRUE", [])
    assert Scope.creators([]).where("creator_id") == ("FALSE", [])
    assert Scope.creators([5, 2, 5]).where("t.creator_id") == ("t.creator_id IN (?, ?)", [2, 5])
    assert hash(Scope.creators([1, 2])) == hash(Scope.creators([2, 1]))
    assert Scope.creators([]) != Scope.everything()


def test_where_runs_in_duckdb_and_selects_exactly_the_values():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (country VARCHAR, creator_id INTEGER)")
    con.execute("INSERT INTO t VALUES ('US', 1), ('DE', 2), ('%', 3), ('_', 4)")
    for values, expected in ((["%"], 1), (["_"], 1), (["US", "DE"], 2), (["' OR 1=1 --"], 0)):
        sql, params = Filters(ANCHOR, ANCHOR, countries=values).where(COLUMNS)
        assert con.execute(f"SELECT count(*) FROM t WHERE {sql}", params).fetchone()[0] == expected
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 4


def _random_text(rng: random.Random) -> str:
    alphabet = "ab,\\'\"%_ ;-=&?#/é名☃\u202e"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))


def test_query_params_round_trip_over_random_filters():
    rng = random.Random(11)
    for _ in range(300):
        preset = rng.choice(PRESETS)
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(600))
        dims = {
            d.field: [_random_text(rng) for _ in range(rng.randrange(0, 4))]
            for d in DIMENSIONS.values()
            if rng.random() < 0.4
        }
        f = Filters.for_preset(
            preset,
            ANCHOR,
            start=start,
            end=start + timedelta(days=rng.randrange(100)),
            comparison=rng.choice(COMPARISONS),
            **dims,
        )
        params = f.to_query_params()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
        back = Filters.from_query_params(params, ANCHOR)
        assert back == f


def test_presets_stay_relative_in_the_url():
    params = Filters.for_preset("last_28_days", ANCHOR).to_query_params()
    assert params == {"preset": "last_28_days"}
    later = Filters.from_query_params(params, ANCHOR + timedelta(days=3))
    assert later.end == ANCHOR + timedelta(days=3)
    assert Filters.from_query_params({}, ANCHOR) == Filters.for_preset("last_28_days", ANCHOR)
    assert Filters.from_query_params({"page": "overview"}, ANCHOR).preset == "last_28_days"
    assert Filters.from_query_params({"country": ["US", "DE"]}, ANCHOR).countries == ("DE", "US")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": "2026-13-01", "end": "2026-10-31"}, "not a date"),
        ({"start": "yesterday", "end": "2026-10-31"}, "not a date"),
        ({"start": "2026-10-31"}, "needs a end date"),
        ({"start": "2026-10-31", "end": "2026-10-01"}, "after the end date"),
        ({"preset": "last_year_ish"}, "Unknown date preset"),
        ({"preset": "last_7_days", "compare": "yesterday"}, "Unknown comparison"),
    ],
)
def test_bad_query_params_give_clear_errors(params, message):
    with pytest.raises(FiltersError, match=message):
        Filters.from_query_params(params, ANCHOR)


def test_constructor_rejects_bad_values():
    with pytest.raises(FiltersError, match="after the end"):
        Filters(ANCHOR, ANCHOR - timedelta(days=1))
    with pytest.raises(FiltersError, match="calendar date"):
        Filters("2026-01-01", ANCHOR)  # type: ignore[arg-type]
    with pytest.raises(FiltersError, match="text values"):
        Filters(ANCHOR, ANCHOR, countries=[1.5])  # type: ignore[list-item]
    with pytest.raises(FiltersError, match="custom"):
        Filters.for_preset("custom", ANCHOR)
