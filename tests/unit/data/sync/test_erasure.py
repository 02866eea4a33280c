from __future__ import annotations

import os
from datetime import date

import pytest

from data import schema
from data.demo import DemoConfig, build_demo_extract
from data.extract.store import ExtractStore
from data.sync.erasure import (
    SUPPRESSION_TABLE,
    erase_viewer,
    physical_rows_match,
    suppressed_keys,
)

KEY = "erasure-test-extract-key-0123456789abcdef"


@pytest.fixture
def store(tmp_path) -> ExtractStore:
    s = ExtractStore(tmp_path / "extract.duckdb", KEY)
    build_demo_extract(
        s,
        DemoConfig(viewers=200, views=3_000, seed=2, end=date(2026, 10, 31), days=60),
        "p-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    )
    return s


def _rows_of(store: ExtractStore, viewer: int) -> dict[str, int]:
    cur = store.cursor()
    tables = [
        r[0]
        for r in cur.execute(
            "SELECT DISTINCT table_name FROM duckdb_columns() WHERE database_name = "
            "current_database() AND column_name = 'viewer_key' AND table_name <> ?",
            [SUPPRESSION_TABLE],
        ).fetchall()
    ]
    return {
        t: cur.execute(f"SELECT count(*) FROM {t} WHERE viewer_key = ?", [viewer]).fetchone()[0]
        for t in tables
    }


def test_erasure_removes_the_viewer_everywhere_and_rewrites_the_file(store):
    cur = store.cursor()
    viewer = cur.execute(
        "SELECT viewer_key FROM fact_view GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    before = _rows_of(store, viewer)
    assert before["fact_view"] > 0 and before["dv_view"] > 0, "base and derived tables hold them"
    totals = {
        t.name: cur.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] for t in schema.TABLES
    }
    inode = os.stat(store.path).st_ino

    result = erase_viewer(store, viewer)

    assert set(_rows_of(store, viewer).values()) == {0}
    assert result.rows_removed["fact_view"] == before["fact_view"]
    cur = store.cursor()
    for t in schema.TABLES:
        expected = totals[t.name] - result.rows_removed.get(t.name, 0)
        assert cur.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0] == expected
    assert suppressed_keys(cur) == [viewer]
    assert os.stat(store.path).st_ino != inode, "a new file was written and swapped in"
    for t in schema.TABLES:
        assert physical_rows_match(cur, t.name), f"{t.name} keeps deleted tuples in the file"
    record = result.audit_record()
    assert record["viewer_key"] == viewer and record["rows_removed"]["fact_view"] > 0
    assert store.read_meta()["source"] == "demo", "the rest of the extract is carried over"


def test_erasing_twice_is_harmless(store):
    viewer = store.cursor().execute("SELECT min(viewer_key) FROM dim_viewer").fetchone()[0]
    erase_viewer(store, viewer)
    again = erase_viewer(store, viewer)
    assert again.already_suppressed and again.total_removed == 0
    assert suppressed_keys(store.cursor()) == [viewer]


def test_a_delete_would_have_left_the_bytes_behind(store):
    # Why erasure rewrites rather than deletes: DuckDB keeps deleted tuples in the file.
    with pytest.raises(RuntimeError, match="discard"), store.build(copy_current=True) as con:
        viewer = con.execute("SELECT min(viewer_key) FROM fact_view").fetchone()[0]
        con.execute("DELETE FROM fact_view WHERE viewer_key = ?", [viewer])
        con.execute("CHECKPOINT")
        assert not physical_rows_match(con, "fact_view")
        raise RuntimeError("discard this build")
