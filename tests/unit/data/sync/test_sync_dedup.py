"""The full sync's duplicate-key check: the fast path for dense integer keys counts exactly
what the hash aggregate counts, and declines keys it cannot handle."""

from __future__ import annotations

import duckdb
import pytest

from data.sync import extract_specs
from data.sync.run import _dedup_in_place, _dense_key_duplicates

VIEWS = extract_specs.SPECS_BY_NAME["fact_view"]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute(VIEWS.table.ddl("duckdb"))
    return con


def _insert(con, ids, updated=None):
    con.execute(
        "INSERT INTO fact_view (view_id, viewer_key, title_id, started_at, watch_seconds, "
        "device, country, tz_offset_min, completed, updated_at) "
        "SELECT id, 1, 1, TIMESTAMP '2026-01-01', 60, 'tv', 'US', 0, false, "
        "TIMESTAMP '2026-01-01' + to_seconds(u) FROM (SELECT unnest(?) AS id, unnest(?) AS u)",
        [ids, updated or [0] * len(ids)],
    )


@pytest.mark.parametrize(
    "ids, extra",
    [([1, 2, 3], 0), ([5, 5, 6, 7, 7, 7], 3), ([10**6 + 3, 10**6 + 3], 1), ([], 0)],
)
def test_dense_keys_count_duplicates_exactly(con, ids, extra):
    _insert(con, ids)
    assert _dense_key_duplicates(con, VIEWS, "fact_view") == extra


def test_sparse_keys_are_left_to_the_hash_aggregate(con):
    _insert(con, [1, 10**15, 10**15])
    assert _dense_key_duplicates(con, VIEWS, "fact_view") is None
    assert _dedup_in_place(con, VIEWS, "fact_view") == 1


def test_the_latest_version_of_a_duplicated_key_is_kept(con):
    _insert(con, [1, 2, 2, 3], updated=[0, 5, 9, 0])
    assert _dedup_in_place(con, VIEWS, "fact_view") == 1
    rows = con.execute(
        "SELECT view_id, second(updated_at) FROM fact_view ORDER BY view_id"
    ).fetchall()
    assert rows == [(1, 0), (2, 9), (3, 0)]
