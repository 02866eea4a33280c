"""A replica's pull of the published extract (data/extract/replica_copy.py), on real files."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import pytest

from data.extract.replica_copy import pull_extract
from data.extract.store import ExtractError, ExtractStore
from data.extract.writer_lock import ExtractBusyError, writer_lock
from settings import PROJECT_ROOT

KEY = "Vq3-replica-test-key-8fJ2kLm9Xz0pW4sT7uY1bN6"


def _publish(store: ExtractStore, *names: str) -> str:
    """A new build of the published extract holding these creators; its build id."""
    with store.build() as con:
        for i, name in enumerate(names, start=1):
            con.execute(
                "INSERT INTO dim_creator VALUES (?, ?, 'studio', 0.5, 'US', TIMESTAMP '2026-01-01')",
                [i, name],
            )
    return store.read_meta()["build_id"]


def _names(store: ExtractStore) -> list[str]:
    rows = store.cursor().execute("SELECT name FROM dim_creator ORDER BY creator_id").fetchall()
    return [name for (name,) in rows]


@pytest.fixture
def published(tmp_path) -> ExtractStore:
    store = ExtractStore(tmp_path / "published" / "extract.duckdb", KEY)
    _publish(store, "first")
    return store


@pytest.fixture
def replica(tmp_path) -> ExtractStore:
    return ExtractStore(tmp_path / "replica" / "extract.duckdb", KEY)


def test_a_replica_copies_the_published_build_and_a_running_reader_sees_the_next_one(
    published, replica
):
    first = pull_extract(published.path, replica)
    assert first.status == "copied"
    assert first.build_id == published.read_meta()["build_id"]
    assert first.bytes == published.path.stat().st_size
    assert _names(replica) == ["first"]
    generation = replica.generation()

    assert pull_extract(published.path, replica).status == "unchanged"
    assert replica.generation() == generation

    second_id = _publish(published, "first", "second")
    second = pull_extract(published.path, replica)
    assert (second.status, second.build_id) == ("copied", second_id)
    # The same store object (as in a running app) reopens on the new file: a new generation,
    # so every cached query is keyed anew.
    assert replica.generation() != generation
    assert _names(replica) == ["first", "second"]
    assert replica.read_meta()["build_id"] == second_id
    assert not list(replica.path.parent.glob(".extract.duckdb.building-*"))


def test_a_copy_with_another_key_never_replaces_the_live_extract(tmp_path, published, replica):
    pull_extract(published.path, replica)
    other = ExtractStore(tmp_path / "other" / "extract.duckdb", "o" * 40)
    _publish(other, "built with another key")
    with pytest.raises(ExtractError, match="extract key does not open"):
        pull_extract(other.path, replica)
    assert _names(replica) == ["first"]
    assert not list(replica.path.parent.glob(".extract.duckdb.building-*"))


def test_a_truncated_or_plaintext_file_is_refused(tmp_path, published, replica):
    pull_extract(published.path, replica)
    truncated = tmp_path / "truncated.duckdb"
    truncated.write_bytes(published.path.read_bytes()[:20_000])
    with pytest.raises(ExtractError):
        pull_extract(truncated, replica)
    plain = tmp_path / "plain.duckdb"
    con = duckdb.connect(str(plain))
    con.execute("CREATE TABLE dim_creator AS SELECT 1 AS creator_id, 'x' AS name")
    con.close()
    with pytest.raises(ExtractError, match="not an encrypted extract"):
        pull_extract(plain, replica)
    assert _names(replica) == ["first"]


def test_missing_source_and_own_file_say_what_to_do(tmp_path, replica, published):
    with pytest.raises(ExtractError, match="No published extract"):
        pull_extract(tmp_path / "nowhere.duckdb", replica)
    pull_extract(published.path, replica)
    with pytest.raises(ExtractError, match="own extract"):
        pull_extract(replica.path, replica)


def test_a_pull_waits_for_a_local_writer_and_gives_up_clearly(published, replica):
    with writer_lock(replica.path), pytest.raises(ExtractBusyError):
        pull_extract(published.path, replica, wait_seconds=0.3)
    assert not replica.exists()


def test_the_cli_pulls_and_reports(tmp_path, published):
    env_dir = tmp_path / "cli-replica"
    env = {
        "PATH": "/usr/bin:/bin",
        "SPOTLIGHT_DATA_DIR": str(env_dir),
        "SPOTLIGHT_EXTRACT_KEY": KEY,
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
    }

    def run(source) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "cli.py", "pull-extract", "--from", str(source)],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    copied = run(published.path)
    assert copied.returncode == 0, copied.stderr
    assert f"copied build {published.read_meta()['build_id']}" in copied.stdout
    assert "unchanged" in run(published.path).stdout
    missing = run(tmp_path / "nowhere.duckdb")
    assert missing.returncode == 1
    assert "No published extract" in missing.stderr
