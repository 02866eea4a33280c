"""Warehouse events that made the extract drift from the source while every sync said
"succeeded" (SECURITY.md #14, #21), each against the real PostgreSQL playing Redshift.

A row dated in the future, a viewer and fact rows deleted at the source, a row committed later
than the overlap window in a month no sync touched, configuration mistakes, a wrong password,
a host that never answers, and duplicate keys with equal cursors.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from data import schema
from data.sync.run import run_sync
from data.sync.warehouse import RetryPolicy, Warehouse
from security.service import Security
from settings import load_settings
from tests.integration.conftest import EXTRACT_KEY, PgWarehouse, load_demo
from tests.integration.test_sync import assert_extract_equals_source

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 12, 0, 0)
FACT_VIEW_COLUMNS = ", ".join(schema.FACT_VIEW.column_names)


def _sync(wh, store, make_warehouse, driver="adbc", **kwargs):
    result = run_sync(warehouse=make_warehouse(wh, driver), store=store, now=NOW, **kwargs)
    assert result.ok, result.summary_lines()
    return result


def _warehouse_clock(wh: PgWarehouse) -> datetime:
    return wh.sql("SELECT CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP)")[0][0]


def _copy_view(wh: PgWarehouse, view_id: int, **changes: str) -> int:
    """Insert a copy of a fact_view row under a new id, with SQL expressions for some columns."""
    new_id = wh.sql("SELECT max(view_id) + 1 FROM fact_view")[0][0]
    columns = [c for c in schema.FACT_VIEW.column_names]
    values = [str(new_id) if c == "view_id" else changes.get(c, c) for c in columns]
    wh.sql(
        f"INSERT INTO fact_view ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM fact_view WHERE view_id = %s",
        (view_id,),
    )
    return new_id


def test_a_future_cursor_never_moves_the_watermark_past_the_warehouse_clock(
    loaded, store, make_warehouse
):
    _sync(loaded, store, make_warehouse)
    some_view = loaded.sql("SELECT min(view_id) FROM fact_view")[0][0]
    _copy_view(
        loaded,
        some_view,
        started_at="TIMESTAMP '2030-06-01 12:00'",
        updated_at="TIMESTAMP '2030-06-01 13:00'",
    )
    poisoned = _sync(loaded, store, make_warehouse)
    views = poisoned.table("fact_view")
    clock = _warehouse_clock(loaded)
    assert views.future_rows == 1
    assert datetime.fromisoformat(views.watermark_after) <= clock
    assert any("after the warehouse's clock" in n for n in poisoned.quality_notes())
    assert poisoned.audit_record()["tables"]["fact_view"]["future_rows"] == 1
    meta = store.read_meta()
    assert meta["data_end"] < "2030", "the date range keeps out the future row"
    assert meta["as_of"] <= clock.isoformat()

    # Changes made after the future row still arrive: a new view and an updated one.
    later = _copy_view(loaded, some_view, updated_at="CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP)")
    loaded.sql(
        "UPDATE fact_view SET watch_seconds = watch_seconds + 7, "
        "updated_at = CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP) WHERE view_id = %s",
        (some_view,),
    )
    _sync(loaded, store, make_warehouse)
    cur = store.cursor()
    assert cur.execute("SELECT count(*) FROM fact_view WHERE view_id = ?", [later]).fetchone()[0]
    assert_extract_equals_source(loaded, store)


def _heaviest_viewer(wh: PgWarehouse) -> int:
    return wh.sql(
        "SELECT viewer_key FROM fact_view GROUP BY viewer_key ORDER BY count(*) DESC LIMIT 1"
    )[0][0]


def test_a_viewer_deleted_at_the_source_leaves_the_extract(loaded, store, make_warehouse):
    _sync(loaded, store, make_warehouse)
    viewer = _heaviest_viewer(loaded)
    for table in schema.VIEWER_TABLES:
        loaded.sql(f"DELETE FROM {table.name} WHERE viewer_key = %s", (viewer,))
    healed = _sync(loaded, store, make_warehouse)
    assert healed.table("fact_view").mode == "incremental"
    assert healed.table("fact_view").partitions_healed, "found by the drift check"
    assert healed.table("dim_viewer").partitions_healed
    assert_extract_equals_source(loaded, store)
    cur = store.cursor()
    for table in schema.VIEWER_TABLES:
        left = cur.execute(
            f"SELECT count(*) FROM {table.name} WHERE viewer_key = ?", [viewer]
        ).fetchone()[0]
        assert left == 0, table.name
    # The derived tables follow (refreshed, not rebuilt): no trace of the viewer either.
    assert (
        cur.execute("SELECT count(*) FROM dv_view WHERE viewer_key = ?", [viewer]).fetchone()[0]
        == 0
    )


def test_fact_rows_deleted_at_the_source_leave_the_extract(loaded, store, make_warehouse):
    _sync(loaded, store, make_warehouse)
    oldest_month = loaded.sql("SELECT min(date_trunc('month', started_at)) FROM fact_view")[0][0]
    gone = loaded.sql(
        "DELETE FROM fact_view WHERE view_id IN (SELECT view_id FROM fact_view "
        "WHERE started_at < %s + interval '1 month' ORDER BY view_id LIMIT 5) RETURNING view_id",
        (oldest_month,),
    )
    assert len(gone) == 5
    result = _sync(loaded, store, make_warehouse)
    assert result.table("fact_view").partitions_healed == [f"{oldest_month:%Y-%m}"]
    assert_extract_equals_source(loaded, store)


def test_a_late_commit_outside_the_overlap_in_an_untouched_month(loaded, store, make_warehouse):
    first = _sync(loaded, store, make_warehouse)
    watermark = datetime.fromisoformat(first.table("fact_view").watermark_after)
    some_view = loaded.sql("SELECT min(view_id) FROM fact_view")[0][0]
    # Committed now, but stamped a week before the watermark: outside the 2-hour overlap, in an
    # old month the next incremental read does not touch.
    stamp = (watermark - timedelta(days=7)).isoformat(sep=" ")
    late = _copy_view(loaded, some_view, updated_at=f"TIMESTAMP '{stamp}'")
    result = _sync(loaded, store, make_warehouse)
    assert result.table("fact_view").partitions_healed
    assert (
        store.cursor()
        .execute("SELECT count(*) FROM fact_view WHERE view_id = ?", [late])
        .fetchone()[0]
        == 1
    )
    assert_extract_equals_source(loaded, store)


def test_an_unchanged_source_heals_nothing(loaded, store, make_warehouse):
    _sync(loaded, store, make_warehouse)
    again = _sync(loaded, store, make_warehouse)
    assert again.healed == {}
    assert again.quality_notes() == []


# --- configuration errors: one line, non-zero, audited and alerted ------------------------------
def _cli_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
        "SPOTLIGHT_EXTRACT_KEY": EXTRACT_KEY,
        "SPOTLIGHT_APP_KEY": "integration-app-key-0123456789abcdefgh",
        "SPOTLIGHT_AUDIT_KEY": "integration-audit-key-0123456789abcdefgh",
        "SPOTLIGHT_SYNC_RETRIES": "1",
    }
    env.update(values)
    return {k: v for k, v in env.items() if v is not None}


@pytest.mark.parametrize(
    ("url", "extract_key", "expected"),
    [
        ("mysql://u@127.0.0.1/db", EXTRACT_KEY, "must look like postgresql://"),
        ("just some text", EXTRACT_KEY, "must look like postgresql://"),
        ("postgresql://u@127.0.0.1:fivefour/db", EXTRACT_KEY, "port must be a whole number"),
        ("postgresql://u@127.0.0.1/db?connect_timeout=soon", EXTRACT_KEY, "connect_timeout"),
        ("postgresql://u@127.0.0.1:5432/", EXTRACT_KEY, "needs a database"),
        ("postgresql://u@127.0.0.1:5432/test", "", "SPOTLIGHT_EXTRACT_KEY is not set"),
    ],
)
def test_a_bad_setting_is_one_line_audited_and_alerted(tmp_path, url, extract_key, expected):
    env = _cli_env(tmp_path, SPOTLIGHT_WAREHOUSE_URL=url, SPOTLIGHT_EXTRACT_KEY=extract_key)
    proc = subprocess.run(
        [sys.executable, "cli.py", "sync", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode != 0
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    assert expected in output
    settings = load_settings(env=env, secrets_path=tmp_path / "none.toml")
    security = Security(settings)
    [record] = security.audit.list(action="sync")
    assert record.outcome == "failure" and expected in record.details["error"]
    assert [a.kind for a in security.alerts.list()] == ["sync_failed"]


# --- authentication and unreachable hosts -----------------------------------------------------
PASSWORD = "the-right-password-42"


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[int]:
    """A PostgreSQL cluster of its own that checks passwords (the shared one trusts everyone),
    with MD5, the method Redshift and both drivers speak."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    name = f"spotlight_auth_{uuid.uuid4().hex[:6]}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [
            "pg_createcluster",
            version,
            name,
            "-p",
            str(port),
            "--start",
            "--",
            "--auth-host=md5",
            "--auth-local=trust",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [
                "su",
                "postgres",
                "-c",
                f"psql -q -p {port} -h /var/run/postgresql -c \"SET password_encryption = 'md5'\" "
                f"-c \"ALTER ROLE postgres PASSWORD '{PASSWORD}'\"",
            ],
            check=True,
            capture_output=True,
        )
        yield port
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True)


def _warehouse(port: int, driver: str, password: str, **extra) -> Warehouse:
    return Warehouse.from_mapping(
        {
            "host": "127.0.0.1",
            "port": port,
            "database": "postgres",
            "user": "postgres",
            "password": password,
            "driver": driver,
            "sslmode": "disable",
            **extra,
        },
        RetryPolicy(attempts=4, base_delay=2.0),
    )


@pytest.mark.parametrize("driver", ["adbc", "redshift_connector"])
def test_a_wrong_password_fails_at_once(password_cluster, tmp_path, driver):
    from data.extract.store import ExtractStore

    store = ExtractStore(tmp_path / "extract.duckdb", EXTRACT_KEY)
    started = time.monotonic()
    result = run_sync(warehouse=_warehouse(password_cluster, driver, "wrong-password"), store=store)
    took = time.monotonic() - started
    assert not result.ok
    assert took < 5, f"{took:.1f} s: an authentication error is not retried like an outage"
    assert "password authentication failed" in result.error
    assert "wrong-password" not in result.error
    assert "gave up" not in result.error


def test_the_right_password_still_connects(password_cluster):
    assert "PostgreSQL" in _warehouse(password_cluster, "adbc", PASSWORD).ping()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"user": "nobody_here"}, "does not exist"),
        ({"database": "no_such_database"}, "does not exist"),
    ],
)
def test_an_unknown_role_or_database_fails_at_once(password_cluster, tmp_path, extra, expected):
    from data.extract.store import ExtractStore

    warehouse = _warehouse(password_cluster, "adbc", PASSWORD, **extra)
    started = time.monotonic()
    result = run_sync(warehouse=warehouse, store=ExtractStore(tmp_path / "x.duckdb", EXTRACT_KEY))
    assert not result.ok and time.monotonic() - started < 5
    assert expected in result.error or "authentication failed" in result.error


@pytest.fixture
def silent_host() -> Iterator[int]:
    """A port on this machine that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("driver", ["adbc", "redshift_connector"])
def test_a_host_that_never_answers_fails_within_the_connect_timeout(silent_host, tmp_path, driver):
    from data.extract.store import ExtractStore

    warehouse = Warehouse.from_mapping(
        {
            "host": "127.0.0.1",
            "port": silent_host,
            "database": "x",
            "user": "u",
            "driver": driver,
            "sslmode": "disable",
            "connect_timeout": 2,
        },
        RetryPolicy(attempts=2, base_delay=0.1),
    )
    store = ExtractStore(tmp_path / "extract.duckdb", EXTRACT_KEY)
    started = time.monotonic()
    result = run_sync(warehouse=warehouse, store=store)
    took = time.monotonic() - started
    assert not result.ok and result.error_kind == "WarehouseUnreachableError"
    # 2 attempts x 2 s, not (attempts x tables x attempts) x 2 s.
    assert took < 2 * 2 + 4, f"{took:.1f} s"
    assert not store.exists()


def test_a_statement_over_the_timeout_is_cancelled(loaded, make_warehouse):
    warehouse = make_warehouse(loaded, "adbc", statement_timeout=1)
    with warehouse.session() as session, pytest.raises(Exception, match="statement timeout"):
        session.fetch_rows("SELECT pg_sleep(3)")


# --- duplicate keys with equal cursors ----------------------------------------------------------
def test_duplicates_with_equal_cursors_keep_the_same_survivor_every_time(pg, store, make_warehouse):
    load_demo(pg)
    # Redshift does not enforce primary keys: drop the constraint to play it.
    pg.sql("ALTER TABLE fact_view DROP CONSTRAINT IF EXISTS fact_view_pkey")
    view = pg.sql("SELECT view_id, watch_seconds FROM fact_view ORDER BY view_id LIMIT 1")[0]
    pg.sql(
        f"INSERT INTO fact_view ({FACT_VIEW_COLUMNS}) SELECT {FACT_VIEW_COLUMNS.replace('watch_seconds', 'watch_seconds + 100')} "
        "FROM fact_view WHERE view_id = %s",
        (view[0],),
    )
    survivors = set()
    for _ in range(2):
        _sync(pg, store, make_warehouse, full=True)
        survivors.add(
            store.cursor()
            .execute("SELECT watch_seconds FROM fact_view WHERE view_id = ?", [view[0]])
            .fetchone()[0]
        )
    assert survivors == {view[1] + 100}, "the greater value wins a tie, every time"


def test_psycopg_is_real():
    # Guard: these tests speak to a real server, never a stub.
    assert psycopg.__version__


def test_the_drift_check_runs_when_due(loaded, store, make_warehouse):
    from data.sync.run import SyncOptions

    hourly = SyncOptions(drift_check_every=timedelta(hours=1))

    def sync_at(moment: datetime):
        result = run_sync(warehouse=make_warehouse(loaded), store=store, now=moment, options=hourly)
        assert result.ok, result.summary_lines()
        return result

    sync_at(NOW)
    assert store.read_meta()["drift_checked_at"] == NOW.isoformat(timespec="seconds")
    viewer = _heaviest_viewer(loaded)
    loaded.sql("DELETE FROM fact_view WHERE viewer_key = %s", (viewer,))
    soon = sync_at(NOW + timedelta(minutes=10))
    assert soon.healed == {}, "checked less than an hour ago: not yet"
    due = sync_at(NOW + timedelta(minutes=61))
    assert due.table("fact_view").partitions_healed
    assert_extract_equals_source(loaded, store, tables=[schema.FACT_VIEW])
