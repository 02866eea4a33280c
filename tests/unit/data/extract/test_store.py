from __future__ import annotations

import os
import threading

import duckdb
import pytest

from data.extract.store import ExtractError, ExtractStore, is_encrypted, write_meta

KEY = "k" * 40


def _creator(con: duckdb.DuckDBPyConnection, creator_id: int, name: str = "Studio") -> None:
    con.execute(
        "INSERT INTO dim_creator VALUES (?, ?, 'studio', 0.5, 'US', TIMESTAMP '2026-01-01')",
        [creator_id, name],
    )


def _count(store: ExtractStore) -> int:
    return store.cursor().execute("SELECT count(*) FROM dim_creator").fetchone()[0]


@pytest.fixture
def store(tmp_path) -> ExtractStore:
    s = ExtractStore(tmp_path / "extract.duckdb", KEY)
    with s.build() as con:
        _creator(con, 1, "plaintext-marker-studio")
        write_meta(con, {"source": "test"})
    return s


def test_the_extract_is_encrypted_on_disk(store):
    assert is_encrypted(store.path)
    assert b"plaintext-marker-studio" not in store.path.read_bytes()
    meta = store.read_meta()
    assert meta.pop("build_id")
    assert meta == {"source": "test"}


def test_every_build_gets_its_own_id(store):
    """In-memory indexes are keyed on it (data/extract/build_cache.py): a copy that changed is new."""
    first = store.read_meta()["build_id"]
    with store.build(copy_current=True) as con:
        _creator(con, 2, "second")
    second = store.read_meta()["build_id"]
    with store.build() as con:
        _creator(con, 3, "third")
    third = store.read_meta()["build_id"]
    assert len({first, second, third}) == 3


def test_wrong_key_gives_a_clear_error(store):
    with pytest.raises(ExtractError, match="extract key does not open"):
        ExtractStore(store.path, "w" * 40).cursor()


def test_missing_key_is_refused(tmp_path):
    with pytest.raises(ExtractError, match="No extract key"):
        ExtractStore(tmp_path / "x.duckdb", "")


def test_missing_extract_says_how_to_build_one(tmp_path):
    with pytest.raises(ExtractError, match=r"cli\.py demo"):
        ExtractStore(tmp_path / "absent.duckdb", KEY).cursor()


def test_a_peek_reads_the_live_extract_and_can_change_nothing(store):
    with store.peek() as con:
        assert con.execute("SELECT name FROM dim_creator").fetchall() == [
            ("plaintext-marker-studio",)
        ]
        with pytest.raises(duckdb.Error):
            con.execute("DELETE FROM dim_creator")
        with pytest.raises(duckdb.Error):
            con.execute("SELECT * FROM read_csv('/etc/passwd')")
    assert _count(store) == 1
    wrong_key = ExtractStore(store.path, "w" * 40)
    with pytest.raises(ExtractError, match="extract key does not open"), wrong_key.peek():
        pass
    absent = ExtractStore(store.path.with_name("absent.duckdb"), KEY)
    with pytest.raises(ExtractError, match=r"cli\.py demo"), absent.peek():
        pass


def test_a_failed_build_leaves_the_live_extract_and_no_partial_file(store):
    with pytest.raises(RuntimeError), store.build(copy_current=True) as con:
        _creator(con, 2)
        raise RuntimeError("killed mid-way")
    assert _count(store) == 1
    assert sorted(p.name for p in store.path.parent.iterdir() if p.is_file()) == ["extract.duckdb"]


def test_an_orphan_from_a_dead_process_is_swept(store):
    orphan = store.path.parent / f".{store.path.name}.building-999999-deadbeef"
    orphan.write_bytes(b"partial")
    with store.build(copy_current=True):
        pass
    assert not orphan.exists()


def test_a_swap_is_seen_by_every_thread(store):
    assert _count(store) == 1
    with store.build(copy_current=True) as con:
        _creator(con, 2)
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(_count(store)))
    worker.start()
    worker.join()
    assert seen == [2]
    assert _count(store) == 2


def test_a_reader_that_was_open_keeps_working_through_a_swap(store):
    cursor = store.cursor()
    with store.build(copy_current=True) as con:
        _creator(con, 2)
    assert cursor.execute("SELECT count(*) FROM dim_creator").fetchone()[0] == 1
    assert _count(store) == 2


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY dim_creator TO '/tmp/spotlight-leak.csv'",
        "ATTACH '/tmp/spotlight-other.duckdb' AS other",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "INSERT INTO dim_creator VALUES (9, 'x', 'studio', 0.5, 'US', now())",
        "DROP TABLE dim_creator",
        "INSTALL httpfs",
    ],
)
def test_query_cursors_cannot_touch_files_settings_or_data(store, statement):
    with pytest.raises(duckdb.Error):
        store.cursor().execute(statement)
    assert not os.path.exists("/tmp/spotlight-leak.csv")
    assert _count(store) == 1
