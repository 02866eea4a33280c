"""The in-memory viewer index against DuckDB's own exact COUNT(DISTINCT), on rows stored out of
day order (as an incremental refresh may leave them), with NULLs in every indexed column."""

from __future__ import annotations

import random
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest

from data.extract import build_cache
from data.queries import viewer_index
from data.queries.viewer_index import ViewerIndex

FIRST = date(2026, 1, 1)
COUNTRIES = ["US", "GB", "DE", "O'Brien", None]
DEVICES = ["tv", "mobile", None]


@pytest.fixture(scope="module")
def con():
    rng = random.Random(5)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE dv_view (day DATE, viewer_idx INTEGER, title_id INTEGER, country VARCHAR, "
        "device VARCHAR, plan VARCHAR, age_band VARCHAR, genre VARCHAR, kind VARCHAR, "
        "creator_id INTEGER, watch_seconds INTEGER, views DOUBLE, completed BOOLEAN)"
    )
    rows = []
    for _ in range(20_000):
        rows.append(
            (
                FIRST + timedelta(days=rng.randrange(60)),
                rng.randrange(700),
                rng.choice([*range(1, 40), None]),
                rng.choice(COUNTRIES),
                rng.choice(DEVICES),
                rng.choice(["basic", "premium", None]),
                rng.choice(["18-24", "25-34", None]),
                rng.choice(["drama", "comedy", None]),
                rng.choice(["film", "series", None]),
                rng.choice([1, 2, 3, None]),
                rng.randrange(7200),
                rng.choice([rng.random() * 2, None]),
                rng.random() < 0.4,
            )
        )
    frame = pd.DataFrame(
        rows,
        columns=[
            "day",
            "viewer_idx",
            "title_id",
            "country",
            "device",
            "plan",
            "age_band",
            "genre",
            "kind",
            "creator_id",
            "watch_seconds",
            "views",
            "completed",
        ],
    ).astype({"title_id": "Int32", "creator_id": "Int32"})
    con.register("frame", frame)
    # Insertion order is the generator's random order: not sorted by day.
    con.execute("INSERT INTO dv_view SELECT * FROM frame")
    con.unregister("frame")
    con.execute("CREATE TABLE dv_viewer_index AS SELECT range AS viewer_idx FROM range(700)")
    con.execute("CREATE TABLE extract_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO extract_meta VALUES ('build_id', 'test-build')")
    return con


def sql_counts(con, target, lo, hi, conditions, scope, by):
    where = ["day BETWEEN ? AND ?"]
    params: list = [lo, hi]
    for column, values in conditions.items():
        if column == "creator_id":
            values = [int(v) for v in values if v.lstrip("-").isdigit()]
        where.append(f"{column} IN ({', '.join('?' * len(values))})" if values else "FALSE")
        params += values
    if scope is not None:
        where.append(f"creator_id IN ({', '.join('?' * len(scope))})" if scope else "FALSE")
        params += list(scope)
    counted = "viewer_idx" if target == "viewer" else "coalesce(title_id, -1)"
    key = f"CAST({by} AS VARCHAR)" if by else "NULL"
    rows = con.execute(
        f"SELECT {key}, count(DISTINCT {counted}), count(*), sum(watch_seconds), sum(views), "
        f"count(*) FILTER (WHERE completed) FROM dv_view WHERE {' AND '.join(where)} "
        "GROUP BY ALL",
        params,
    ).fetchall()
    # No rows is no group (the metric code fills zeros), whatever DuckDB does for NULL keys.
    return {r[0]: tuple(float(x or 0) for x in r[1:]) for r in rows if r[2]}


def test_rows_out_of_day_order_are_sorted_and_counted_exactly(con):
    index = ViewerIndex.load(con, "test-build", 10**9)
    assert index is not None and index.rows == 20_000
    with pytest.raises(KeyError):
        index.aggregate(con, ["revenue"], [(FIRST, FIRST)], {}, None, None)
    assert index._order is not None  # the rows were not in day order
    rng = random.Random(9)
    for _ in range(150):
        lo = FIRST + timedelta(days=rng.randrange(-5, 60))
        hi = lo + timedelta(days=rng.choice([-1, 0, 1, 6, 30, 90]))
        conditions = {}
        if rng.random() < 0.5:
            conditions["country"] = rng.sample(["US", "GB", "O'Brien", "ZZ", "' OR 1=1"], 2)
        if rng.random() < 0.3:
            conditions["device"] = [rng.choice(["tv", "mobile"])]
        if rng.random() < 0.2:
            conditions["creator_id"] = rng.choice([["1"], ["2", "x"], ["nope"]])
        scope = rng.choice([None, None, (1,), (2, 3), ()])
        by = rng.choice([None, "country", "device", "genre", "creator_id", "title_id"])
        target = rng.choice(["viewer", "title_id"])
        aggs = [
            "viewers" if target == "viewer" else "titles_started",
            "starts",
            "watch_seconds",
            "views",
            "completed",
        ]
        result = index.aggregate(con, aggs, [(lo, hi)], conditions, scope, by)[0]
        want = sql_counts(con, target, lo, hi, conditions, scope, by)
        assert set(result) == set(want), (lo, hi, conditions, scope, by, target)
        for key, values in result.items():
            got = tuple(values[a] for a in aggs)
            assert got == pytest.approx(want[key], rel=1e-12), (key, conditions, scope, by)


def test_index_is_per_build_and_can_be_disabled(con):
    build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)
    first = viewer_index.index_for(con)
    assert first is not None and viewer_index.index_for(con) is first
    con.execute("UPDATE extract_meta SET value = 'another-build' WHERE key = 'build_id'")
    try:
        second = viewer_index.index_for(con)
        assert second is not None and second is not first and second.build_id == "another-build"
        build_cache.configure(max_rows=10)
        assert viewer_index.index_for(con) is None  # too many rows for the limit
        build_cache.configure(max_rows=0)
        assert viewer_index.index_for(con) is None
    finally:
        con.execute("UPDATE extract_meta SET value = 'test-build' WHERE key = 'build_id'")
        build_cache.configure(max_rows=build_cache.DEFAULT_MAX_ROWS)


def test_many_windows_at_once_equal_each_window_alone(con):
    """A trend asks for its buckets together (rows filtered once); each equals its own query."""
    index = ViewerIndex.load(con, "test-build", 10**9)
    weeks = [(FIRST + timedelta(days=d), FIRST + timedelta(days=d + 6)) for d in range(-10, 70, 7)]
    weeks.append((FIRST + timedelta(days=30), FIRST + timedelta(days=29)))  # empty
    days = [(FIRST + timedelta(days=d),) * 2 for d in range(-2, 62)]  # a daily trend
    aggs = ["viewers", "starts", "views", "titles_started"]
    for windows, conditions, scope, by in (
        (days, {}, None, None),
        (weeks, {}, None, None),
        (weeks, {"country": ["US", "GB"]}, None, "device"),
        (weeks, {"device": ["tv"]}, (1, 2), "creator_id"),
    ):
        together = index.aggregate(con, aggs, windows, conditions, scope, by)
        alone = [index.aggregate(con, aggs, [w], conditions, scope, by)[0] for w in windows]
        assert together == alone
        assert together[-1] == {} or windows is days
        assert sum(len(t) for t in together) > 0
