"""The sync against a real server: PostgreSQL in Redshift's role (same wire protocol).

redshift_connector reaches it through tests/integration/pg_proxy.py, a test-only proxy that
accepts the driver's Redshift-only start-up parameters the way Redshift does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from data import schema
from data.sync.erasure import erase_viewer, suppressed_keys
from data.sync.extract_specs import FACT_VIEW_DAILY_SPEC
from data.sync.run import SyncOptions, run_sync, sync_status
from tests.integration.conftest import EXTRACT_KEY
from tests.unit.data.extract.test_derived_refresh import assert_derived_equal

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 12, 0, 0)


def _source_rows(wh, table: schema.Table) -> list[tuple]:
    cols = ", ".join(table.column_names)
    keys = ", ".join(table.primary_key)
    return wh.sql(f"SELECT {cols} FROM {table.name} ORDER BY {keys}")


def _extract_rows(store, table: schema.Table) -> list[tuple]:
    cols = ", ".join(table.column_names)
    keys = ", ".join(table.primary_key)
    return store.cursor().execute(f"SELECT {cols} FROM {table.name} ORDER BY {keys}").fetchall()


def assert_extract_equals_source(wh, store, tables=schema.TABLES) -> None:
    """Every row of every table, value for value (the data is small enough to compare whole)."""
    for table in tables:
        source = _source_rows(wh, table)
        extract = _extract_rows(store, table)
        assert len(extract) == len(source), table.name
        assert extract == source, f"{table.name} differs from the source"


def _sync(wh, store, make_warehouse, driver="adbc", **kwargs):
    result = run_sync(warehouse=make_warehouse(wh, driver), store=store, now=NOW, **kwargs)
    assert result.ok, result.summary_lines()
    return result


@pytest.mark.parametrize("driver", ["adbc", "redshift_connector"])
def test_full_sync_equals_the_source_with_either_driver(loaded, store, make_warehouse, driver):
    events = []
    result = run_sync(
        warehouse=make_warehouse(loaded, driver), store=store, now=NOW, progress=events.append
    )
    assert result.ok, result.summary_lines()
    assert_extract_equals_source(loaded, store)
    assert {t.mode for t in result.tables} == {"full"}
    views = result.table("fact_view")
    assert views.rows_in_extract == loaded.sql("SELECT count(*) FROM fact_view")[0][0]
    assert views.partitions_checked >= 4, "reconciled per month"
    high = loaded.sql("SELECT max(updated_at) FROM fact_view")[0][0]
    assert views.watermark_after == high.isoformat()
    meta = store.read_meta()
    assert meta["source"] == "warehouse"
    assert meta["watermark.fact_view"] == high.isoformat()
    assert {"read", "reconcile", "table_done", "swap", "done"} <= {e.phase for e in events}
    status = sync_status(store)
    assert {t.table for t in status.tables} == {t.name for t in schema.TABLES}
    assert result.audit_record()["outcome"] == "ok"


def test_incremental_sync_takes_inserts_updates_and_late_rows(loaded, store, make_warehouse):
    first = _sync(loaded, store, make_warehouse)
    watermark = datetime.fromisoformat(first.table("fact_view").watermark_after)
    # An update (newer cursor), an insert, and a late row whose cursor equals the watermark:
    # committed after the first sync read, with a timestamp the watermark already covers.
    loaded.sql(
        "UPDATE fact_view SET watch_seconds = watch_seconds + 7, updated_at = %s "
        "WHERE view_id IN (SELECT view_id FROM fact_view ORDER BY view_id LIMIT 3)",
        (watermark + timedelta(minutes=5),),
    )
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id + 10000000, viewer_key, title_id, started_at, "
        "watch_seconds, device, country, tz_offset_min, completed, %s FROM fact_view "
        "ORDER BY view_id LIMIT 2",
        (watermark + timedelta(minutes=6),),
    )
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id + 20000000, viewer_key, title_id, started_at, "
        "watch_seconds, device, country, tz_offset_min, completed, %s FROM fact_view "
        "ORDER BY view_id DESC LIMIT 1",
        (watermark,),
    )
    loaded.sql(
        "UPDATE dim_viewer SET plan = 'premium', updated_at = %s WHERE viewer_key = "
        "(SELECT min(viewer_key) FROM dim_viewer)",
        (watermark + timedelta(minutes=1),),
    )
    second = _sync(loaded, store, make_warehouse)
    views = second.table("fact_view")
    assert views.mode == "incremental"
    total = loaded.sql("SELECT count(*) FROM fact_view")[0][0]
    assert views.rows_read < total / 10, "only the overlap window is read again"
    assert views.rows_read >= 6
    assert views.watermark_after == (watermark + timedelta(minutes=6)).isoformat()
    assert_extract_equals_source(loaded, store)
    assert_derived_equal(store.cursor())


def test_incremental_sync_refreshes_derived_tables_to_equal_a_full_build(
    loaded, store, make_warehouse
):
    first = _sync(loaded, store, make_warehouse)
    later = datetime.fromisoformat(first.table("fact_view").watermark_after) + timedelta(hours=1)
    # The newest views change (some move a day earlier, one to another viewer), views arrive
    # from a viewer not yet in dim_viewer, a viewer changes plan, a title its genre.
    loaded.sql(
        "UPDATE fact_view SET watch_seconds = watch_seconds + 11, updated_at = %s, "
        "started_at = CASE WHEN view_id %% 2 = 0 THEN started_at - interval '1 day' "
        "ELSE started_at END WHERE view_id IN "
        "(SELECT view_id FROM fact_view ORDER BY view_id DESC LIMIT 20)",
        (later,),
    )
    loaded.sql(
        "UPDATE fact_view SET viewer_key = (SELECT max(viewer_key) FROM dim_viewer), "
        "updated_at = %s WHERE view_id = (SELECT max(view_id) FROM fact_view)",
        (later,),
    )
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id + 3, 4242424242, title_id, started_at, "
        "watch_seconds, device, country, tz_offset_min, completed, %s FROM fact_view "
        "ORDER BY view_id DESC LIMIT 3",
        (later,),
    )
    loaded.sql(
        "UPDATE dim_viewer SET plan = CASE WHEN plan = 'premium' THEN 'basic' ELSE 'premium' END, "
        "updated_at = %s WHERE viewer_key = (SELECT min(viewer_key) FROM dim_viewer)",
        (later,),
    )
    loaded.sql(
        "UPDATE dim_title SET genre = 'Documentary', updated_at = %s "
        "WHERE title_id = (SELECT title_id FROM fact_view ORDER BY view_id DESC LIMIT 1)",
        (later,),
    )
    second = _sync(loaded, store, make_warehouse)
    assert second.table("fact_view").mode == "incremental"
    assert second.derived["dv_viewer_index"] == "appended"
    assert second.derived["dv_view"].startswith("refreshed"), second.derived
    assert_extract_equals_source(loaded, store)
    assert_derived_equal(store.cursor())

    # Nothing changed since: every derived table is kept as it is.
    third = _sync(loaded, store, make_warehouse)
    assert set(third.derived.values()) == {"kept"}, third.derived
    assert_derived_equal(store.cursor())


def test_duplicate_keys_at_the_source_keep_the_latest_version(loaded, store, make_warehouse):
    # Redshift does not enforce primary keys: a source may hold two versions of a row.
    loaded.sql("ALTER TABLE fact_view DROP CONSTRAINT fact_view_pkey")
    view_id, updated = loaded.sql(
        "SELECT view_id, updated_at FROM fact_view ORDER BY view_id LIMIT 1"
    )[0]
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id, viewer_key, title_id, started_at, 4242, device, "
        "country, tz_offset_min, completed, %s FROM fact_view WHERE view_id = %s",
        (updated + timedelta(seconds=1), view_id),
    )
    result = _sync(loaded, store, make_warehouse)
    views = result.table("fact_view")
    assert views.duplicates_dropped == 1
    rows = (
        store.cursor()
        .execute(
            "SELECT watch_seconds, count(*) OVER () FROM fact_view WHERE view_id = ?", [view_id]
        )
        .fetchall()
    )
    assert rows == [(4242, 1)], "one row per key, the latest version"
    distinct = loaded.sql("SELECT count(DISTINCT view_id) FROM fact_view")[0][0]
    assert views.rows_in_extract == distinct

    # Incremental: the overlap window brings rows the extract already holds; no duplicates.
    again = _sync(loaded, store, make_warehouse)
    assert again.table("fact_view").rows_in_extract == distinct


def test_a_killed_sync_leaves_extract_and_watermark_and_the_next_one_succeeds(
    loaded, store, make_warehouse, tmp_path
):
    first = _sync(loaded, store, make_warehouse)
    generation = store.generation()
    meta = store.read_meta()
    # Every view changes after the watermark, so the next sync re-reads them all.
    later = datetime.fromisoformat(first.table("fact_view").watermark_after) + timedelta(hours=1)
    loaded.sql("UPDATE fact_view SET updated_at = %s", (later,))
    # A full re-read in small batches over a slow link (the runner pauses per batch), so the
    # kill lands mid-stream. (With a bound watermark ADBC reads without COPY, in one batch.)
    config = loaded.config("adbc", batch_bytes=16_384)
    args = json.dumps(
        {"warehouse": config, "extract": str(store.path), "key": EXTRACT_KEY, "full": True}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sync_runner", args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    reads = 0
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if line.startswith("read fact_view"):
            reads += 1
            if reads == 3:
                proc.send_signal(signal.SIGKILL)
                break
        assert not line.startswith("RESULT"), f"the sync finished before it could be killed: {seen}"
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert store.generation() == generation, "the live extract was not replaced"
    assert store.read_meta() == meta, "watermarks unchanged"
    leftovers = list(store.path.parent.glob(".extract.duckdb.building-*"))
    assert leftovers, "the killed build left its partial file behind (swept by the next sync)"

    second = _sync(loaded, store, make_warehouse)
    assert second.table("fact_view").watermark_after > first.table("fact_view").watermark_after
    assert not [p for p in leftovers if p.exists()], "the next sync swept the partial file"
    assert_extract_equals_source(loaded, store)


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE fact_view ADD COLUMN referrer VARCHAR(40)",
        "ALTER TABLE fact_view ALTER COLUMN watch_seconds TYPE NUMERIC(12,2)",
        "ALTER TABLE fact_view DROP COLUMN tz_offset_min",
    ],
)
def test_schema_drift_fails_loudly_and_keeps_the_extract(loaded, store, make_warehouse, change):
    _sync(loaded, store, make_warehouse)
    generation = store.generation()
    loaded.sql(change)
    result = run_sync(warehouse=make_warehouse(loaded), store=store, now=NOW)
    assert not result.ok
    assert result.error_kind == "SchemaDriftError"
    assert "fact_view" in result.error
    assert store.generation() == generation
    assert result.table("fact_view").outcome == "failed"
    assert result.table("dim_creator").outcome == "skipped", "synced, but never swapped in"


def test_an_allowed_new_column_does_not_fail(loaded, store, make_warehouse, monkeypatch):
    from dataclasses import replace

    from data.sync import extract_specs

    _sync(loaded, store, make_warehouse)
    loaded.sql("ALTER TABLE fact_view ADD COLUMN referrer VARCHAR(40)")
    spec = replace(
        extract_specs.SPECS_BY_NAME["fact_view"], allowed_new_columns=frozenset({"referrer"})
    )
    monkeypatch.setitem(extract_specs.SPECS_BY_NAME, "fact_view", spec)
    monkeypatch.setattr(
        extract_specs,
        "SPECS",
        tuple(spec if s.name == "fact_view" else s for s in extract_specs.SPECS),
    )
    result = run_sync(warehouse=make_warehouse(loaded), store=store, now=NOW)
    assert result.ok, result.summary_lines()


def test_a_mismatch_fails_the_sync_and_a_full_sync_repairs_it(loaded, store, make_warehouse):
    first = _sync(loaded, store, make_warehouse)
    generation = store.generation()
    watermark = datetime.fromisoformat(first.table("fact_view").watermark_after)
    # A source bug: a value changed without a newer cursor (so outside the overlap window), in
    # a month the next sync touches with a new row.
    view_id, started = loaded.sql(
        "SELECT view_id, started_at FROM fact_view WHERE updated_at < %s "
        "ORDER BY started_at DESC LIMIT 1",
        (watermark - timedelta(days=1),),
    )[0]
    loaded.sql(
        "UPDATE fact_view SET watch_seconds = watch_seconds + 1 WHERE view_id = %s", (view_id,)
    )
    loaded.sql(
        "INSERT INTO fact_view SELECT view_id + 30000000, viewer_key, title_id, started_at, "
        "watch_seconds, device, country, tz_offset_min, completed, %s FROM fact_view "
        "WHERE view_id = %s",
        (watermark + timedelta(hours=1), view_id),
    )
    result = run_sync(warehouse=make_warehouse(loaded), store=store, now=NOW)
    assert not result.ok
    assert result.error_kind == "ReconciliationError"
    assert started.strftime("%Y-%m") in result.error
    assert store.generation() == generation
    assert store.read_meta()["watermark.fact_view"] == first.table("fact_view").watermark_after

    repaired = _sync(loaded, store, make_warehouse, full=True)
    assert repaired.table("fact_view").mode == "full"
    assert_extract_equals_source(loaded, store)


def test_a_terminated_backend_is_retried_adbc(loaded, store, make_warehouse):
    """pg_terminate_backend mid-read: the server drops the connection; the table is retried."""
    killed = []

    def progress(event):
        if event.phase == "read" and event.table == "fact_view" and not killed:
            rows = loaded.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND query LIKE %s",
                (f"%{loaded.schema}.fact_view%",),
            )
            killed.append(len(rows))

    warehouse = make_warehouse(loaded, "adbc", batch_bytes=16_384)
    result = run_sync(warehouse=warehouse, store=store, now=NOW, progress=progress)
    assert killed and killed[0] >= 1, "a backend was terminated"
    assert result.ok, result.summary_lines()
    assert result.table("fact_view").attempts == 2
    assert_extract_equals_source(loaded, store)


def test_a_dropped_connection_is_retried_redshift_connector(loaded, store, make_warehouse, proxy):
    """The proxy cuts every connection mid-read, as a network failure would."""
    dropped = []

    def progress(event):
        if event.phase == "read" and event.table == "fact_view" and not dropped:
            dropped.append(proxy.drop_all())

    warehouse = make_warehouse(loaded, "redshift_connector", batch_rows=500)
    result = run_sync(warehouse=warehouse, store=store, now=NOW, progress=progress)
    assert dropped and dropped[0] >= 1
    assert result.ok, result.summary_lines()
    assert result.table("fact_view").attempts == 2
    assert_extract_equals_source(loaded, store)


def test_a_server_that_stays_down_fails_after_the_retries(loaded, store, make_warehouse, proxy):
    _sync(loaded, store, make_warehouse)
    generation = store.generation()
    proxy.close()
    warehouse = make_warehouse(loaded, "redshift_connector", attempts=2)
    result = run_sync(warehouse=warehouse, store=store, now=NOW)
    assert not result.ok
    # Connecting is retried once per sync, not again per table (2 attempts, never 2 x 2).
    assert result.error_kind == "WarehouseUnreachableError"
    assert "gave up after 2 attempts" in result.error
    assert "gave up on" not in result.error
    assert store.generation() == generation


def test_an_erased_viewer_is_never_brought_back(loaded, store, make_warehouse):
    _sync(loaded, store, make_warehouse)
    viewer = (
        store.cursor()
        .execute("SELECT viewer_key FROM fact_view GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        .fetchone()[0]
    )
    erased = erase_viewer(store, viewer)
    assert erased.rows_removed["fact_view"] > 0

    def held() -> int:
        cur = store.cursor()
        return sum(
            cur.execute(f"SELECT count(*) FROM {t.name} WHERE viewer_key = ?", [viewer]).fetchone()[
                0
            ]
            for t in schema.VIEWER_TABLES
        )

    assert held() == 0
    # The source still has the viewer, and their rows change: an incremental sync re-reads them.
    loaded.sql(
        "UPDATE fact_view SET updated_at = updated_at + interval '10 days' WHERE viewer_key = %s",
        (viewer,),
    )
    loaded.sql(
        "UPDATE dim_viewer SET updated_at = updated_at + interval '10 days' WHERE viewer_key = %s",
        (viewer,),
    )
    incremental = _sync(loaded, store, make_warehouse)
    assert incremental.table("fact_view").mode == "incremental"
    assert held() == 0
    full = _sync(loaded, store, make_warehouse, "redshift_connector", full=True)
    assert full.table("fact_view").mode == "full"
    assert held() == 0
    assert viewer in suppressed_keys(store.cursor())
    # Everyone else is exactly the source.
    for table in schema.VIEWER_TABLES:
        cols = ", ".join(table.column_names)
        keys = ", ".join(table.primary_key)
        source = loaded.sql(
            f"SELECT {cols} FROM {table.name} WHERE viewer_key IS DISTINCT FROM %s ORDER BY {keys}",
            (viewer,),
        )
        assert _extract_rows(store, table) == source, table.name


def test_the_warehouse_side_daily_rollup(loaded, store, make_warehouse):
    _sync(loaded, store, make_warehouse)
    tables = ["fact_view", "fact_view_daily"]
    first = _sync(loaded, store, make_warehouse, only=tables)
    assert first.table("fact_view_daily").mode == "full"
    # A changed view moves its day's cells; the incremental read recomputes that day only.
    loaded.sql(
        "UPDATE fact_view SET device = 'console', updated_at = updated_at + interval '30 days' "
        "WHERE view_id = (SELECT min(view_id) FROM fact_view)"
    )
    second = _sync(loaded, store, make_warehouse, only=tables)
    daily = second.table("fact_view_daily")
    assert daily.mode == "incremental"
    assert 0 < daily.rows_read < first.table("fact_view_daily").rows_read / 10
    cur = store.cursor()
    expected = cur.execute(
        "SELECT CAST(started_at AS DATE), title_id, country, device, count(*), "
        "count(DISTINCT viewer_key), sum(watch_seconds), sum(CASE WHEN completed THEN 1 ELSE 0 END) "
        "FROM fact_view GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    got = cur.execute(
        "SELECT view_date, title_id, country, device, views, viewers, watch_seconds, completions "
        f"FROM {FACT_VIEW_DAILY_SPEC.name} ORDER BY ALL"
    ).fetchall()
    assert got == expected


def test_sync_and_erasure_never_build_at_the_same_time(loaded, store, make_warehouse):
    from data.extract.writer_lock import writer_lock

    _sync(loaded, store, make_warehouse)
    release = threading.Event()
    held = threading.Event()

    def hold():
        with writer_lock(store.path):
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        result = run_sync(
            warehouse=make_warehouse(loaded), store=store, now=NOW, options=SyncOptions()
        )
    finally:
        release.set()
        t.join()
    assert not result.ok
    assert result.error_kind == "ExtractBusyError"


def test_cli_sync_exits_non_zero_and_says_why(loaded, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SPOTLIGHT_DATA_DIR": str(tmp_path / "data"),
        "SPOTLIGHT_KEY_DIR": str(tmp_path / "keys"),
        "SPOTLIGHT_EXTRACT_KEY": EXTRACT_KEY,
        "SPOTLIGHT_APP_KEY": "integration-app-key-0123456789abcdefgh",
        "SPOTLIGHT_AUDIT_KEY": "integration-audit-key-0123456789abcdefgh",
        "SPOTLIGHT_WAREHOUSE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
        "SPOTLIGHT_SYNC_RETRIES": "1",
    }
    proc = subprocess.run(
        [sys.executable, "cli.py", "sync", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAILED (WarehouseUnreachableError)" in proc.stdout
    assert "127.0.0.1:1/nowhere" in proc.stdout
