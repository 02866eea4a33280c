"""The operator's own warehouse, against the real PostgreSQL: a warehouse whose tables and
columns have other names syncs through the mapping equal to the source, and ``warehouse check``
names each kind of defect (and exits non-zero when one blocks a sync).

The source's rows are read back here with hand-written SQL in the source's own names, not
through the mapping code under test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from data import schema
from data.sync.erasure import erase_viewer
from data.sync.run import run_sync
from data.sync.source_map import WarehouseMapping
from data.sync.warehouse import RetryPolicy, Warehouse
from data.sync.warehouse_check import check_warehouse
from tests.integration.conftest import PG_DSN, PgWarehouse, load_demo
from tests.integration.test_sync import assert_extract_equals_source

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 12, 0, 0)

# How the operator's warehouse names what the model calls (table, column).
VIEW_RENAMES = {"view_id": "session_id", "viewer_key": "viewer_pseudonym", "updated_at": "modified"}
TITLE_RENAMES = {"title_id": "id"}
REVENUE_RENAMES = {"revenue_id": "rev_id", "occurred_at": "booked_at"}


def _rows(wh: PgWarehouse, relation: str, table: schema.Table, renames: dict) -> list[tuple]:
    cols = ", ".join(renames.get(c, c) for c in table.column_names)
    keys = ", ".join(renames.get(c, c) for c in table.primary_key)
    return wh.sql(f"SELECT {cols} FROM {relation} ORDER BY {keys}")


def _extract(store, table: schema.Table) -> list[tuple]:
    cols = ", ".join(table.column_names)
    keys = ", ".join(table.primary_key)
    return store.cursor().execute(f"SELECT {cols} FROM {table.name} ORDER BY {keys}").fetchall()


def _drop_schema(name: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def theirs(loaded, request):
    """The demo platform as an operator's warehouse holds it: views in a table of another
    name with other column names, titles in another schema, revenue behind a view."""
    other = f"{loaded.schema}_cat"
    loaded.sql(f"CREATE SCHEMA {other}")
    request.addfinalizer(lambda: _drop_schema(other))
    loaded.sql("ALTER TABLE fact_view RENAME TO playback_sessions")
    for model, theirs_ in VIEW_RENAMES.items():
        loaded.sql(f"ALTER TABLE playback_sessions RENAME COLUMN {model} TO {theirs_}")
    loaded.sql(f"ALTER TABLE dim_title SET SCHEMA {other}")
    loaded.sql(f"ALTER TABLE {other}.dim_title RENAME TO titles")
    loaded.sql(f"ALTER TABLE {other}.titles RENAME COLUMN title_id TO id")
    loaded.sql("ALTER TABLE fact_revenue RENAME TO revenue_raw")
    loaded.sql(
        f"CREATE VIEW {other}.revenue AS SELECT revenue_id AS rev_id, occurred_at AS booked_at, "
        "viewer_key, title_id, creator_id, stream, gross, fees, net, currency, updated_at, "
        f"'web' AS channel FROM {loaded.schema}.revenue_raw"
    )
    mapping = {
        "fact_view": {"source": "playback_sessions", "columns": VIEW_RENAMES},
        "dim_title": {"source": f"{other}.titles", "columns": TITLE_RENAMES},
        "fact_revenue": {
            "source": f"{other}.revenue",
            "columns": REVENUE_RENAMES,
            "allow_extra_columns": True,
        },
    }
    return loaded, other, mapping


def _assert_mapped_extract_equals_source(wh, other, store, erased=None) -> None:
    keep = "" if erased is None else f" WHERE viewer_pseudonym <> {int(erased)}"
    views = _rows(wh, f"playback_sessions{keep}", schema.FACT_VIEW, VIEW_RENAMES)
    assert len(views) > 1000
    assert _extract(store, schema.FACT_VIEW) == views
    assert _extract(store, schema.DIM_TITLE) == _rows(
        wh, f"{other}.titles", schema.DIM_TITLE, TITLE_RENAMES
    )
    keep = "" if erased is None else f" WHERE viewer_key IS DISTINCT FROM {int(erased)}"
    assert _extract(store, schema.FACT_REVENUE) == _rows(
        wh, f"{other}.revenue{keep}", schema.FACT_REVENUE, REVENUE_RENAMES
    )


@pytest.mark.parametrize("driver", ["adbc", "redshift_connector"])
def test_a_warehouse_with_its_own_names_syncs_equal_to_the_source(
    theirs, store, make_warehouse, driver
):
    wh, other, raw = theirs
    mapping = WarehouseMapping.from_config(raw, "test")
    warehouse = make_warehouse(wh, driver)
    # Without the mapping the sync finds no dim_title (the first table), and says what to do.
    refused = run_sync(warehouse=warehouse, store=store, now=NOW)
    assert not refused.ok and "source table dim_title not found" in refused.error
    assert "Map dim_title to the table or view that holds its rows" in refused.error

    report = check_warehouse(warehouse, mapping)
    assert not report.blocked and report.session == []
    assert {t.table: t.status for t in report.tables} == {t.name: "ready" for t in schema.TABLES}
    assert report.table("fact_view").rows == wh.sql("SELECT count(*) FROM playback_sessions")[0][0]
    assert (
        report.table("fact_revenue").rows == wh.sql(f"SELECT count(*) FROM {other}.revenue")[0][0]
    )

    result = run_sync(warehouse=warehouse, store=store, now=NOW, mapping=mapping)
    assert result.ok, result.summary_lines()
    _assert_mapped_extract_equals_source(wh, other, store)
    unmapped = [t for t in schema.TABLES if t.name not in raw]
    assert_extract_equals_source(wh, store, unmapped)
    high = wh.sql("SELECT max(modified) FROM playback_sessions")[0][0]
    assert result.table("fact_view").watermark_after == high.isoformat()

    # The daily rollup runs in the warehouse over fact_view's source, through the same mapping.
    daily = run_sync(
        warehouse=warehouse, store=store, now=NOW, mapping=mapping, only=["fact_view_daily"]
    )
    assert daily.ok, daily.summary_lines()
    expected = wh.sql(
        "SELECT CAST(started_at AS DATE), title_id, country, device, COUNT(*), "
        "COUNT(DISTINCT viewer_pseudonym), SUM(watch_seconds), "
        "SUM(CASE WHEN completed THEN 1 ELSE 0 END), MAX(modified) FROM playback_sessions "
        "GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    )
    got = (
        store.cursor()
        .execute(
            "SELECT view_date, title_id, country, device, views, viewers, watch_seconds, "
            "completions, updated_at FROM fact_view_daily ORDER BY 1, 2, 3, 4"
        )
        .fetchall()
    )
    plain = [tuple(int(v) if isinstance(v, Decimal) else v for v in row) for row in expected]
    assert got == plain


def test_incremental_syncs_and_erasure_follow_the_mapping(theirs, store, make_warehouse):
    wh, other, raw = theirs
    mapping = WarehouseMapping.from_config(raw, "test")
    warehouse = make_warehouse(wh)
    first = run_sync(warehouse=warehouse, store=store, now=NOW, mapping=mapping)
    assert first.ok, first.summary_lines()
    watermark = datetime.fromisoformat(first.table("fact_view").watermark_after)
    later = watermark + timedelta(minutes=5)
    wh.sql(
        "UPDATE playback_sessions SET watch_seconds = watch_seconds + 7, modified = %s "
        "WHERE session_id IN (SELECT session_id FROM playback_sessions ORDER BY session_id "
        "LIMIT 3)",
        (later,),
    )
    wh.sql(
        f"UPDATE {other}.titles SET genre = 'Drama', updated_at = %s "
        f"WHERE id = (SELECT min(id) FROM {other}.titles)",
        (later,),
    )
    # The erased viewer: one with views and revenue. The erasure rewrites the extract; the next
    # syncs filter the viewer out in the warehouse, through the renamed viewer column.
    erased = wh.sql(
        "SELECT min(viewer_pseudonym) FROM playback_sessions WHERE viewer_pseudonym IN "
        "(SELECT viewer_key FROM revenue_raw)"
    )[0][0]
    erase_viewer(store, int(erased), now=NOW)
    second = run_sync(warehouse=warehouse, store=store, now=NOW, mapping=mapping)
    assert second.ok, second.summary_lines()
    assert second.table("fact_view").mode == "incremental"
    assert second.table("fact_view").watermark_after == later.isoformat()
    full = run_sync(warehouse=warehouse, store=store, now=NOW, mapping=mapping, full=True)
    assert full.ok, full.summary_lines()
    assert full.table("fact_view").rows_suppressed == 0, "filtered in the warehouse already"
    _assert_mapped_extract_equals_source(wh, other, store, erased=erased)


# --- warehouse check: one warehouse with a defect per table --------------------------------------
@pytest.fixture(scope="module")
def messy():
    """The demo platform with one defect per table, read by a role that lacks one grant."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"it_{worker}_{uuid.uuid4().hex[:10]}"
    role = f"{name}_ro"
    stage = f"{name}_stage"
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {name}")
        con.execute(f"CREATE SCHEMA {stage}")
        con.execute(f"CREATE ROLE {role} LOGIN")
    wh = PgWarehouse(name, PG_DSN)
    try:
        load_demo(wh)
        counts = {t.name: wh.sql(f"SELECT count(*) FROM {t.name}")[0][0] for t in schema.TABLES}
        wh.sql("ALTER TABLE dim_creator ADD COLUMN agent TEXT")  # extra column
        wh.sql("ALTER TABLE dim_title ALTER COLUMN genre DROP NOT NULL")  # NULLs
        wh.sql(
            "UPDATE dim_title SET genre = NULL WHERE title_id IN "
            "(SELECT title_id FROM dim_title ORDER BY title_id LIMIT 2)"
        )
        wh.sql("ALTER TABLE dim_viewer DROP CONSTRAINT dim_viewer_pkey")  # duplicate keys
        wh.sql("INSERT INTO dim_viewer SELECT * FROM dim_viewer ORDER BY viewer_key LIMIT 3")
        # A view that hands money over as text (the messy warehouse).
        wh.sql(
            "CREATE VIEW subscriptions_v AS SELECT subscription_id, viewer_key, plan, started_at, "
            "ended_at, CAST(monthly_price AS TEXT) AS monthly_price, currency, updated_at "
            "FROM fact_subscription"
        )
        wh.sql("ALTER TABLE fact_interaction DROP COLUMN sentiment")  # missing column
        wh.sql("DELETE FROM fact_ad")  # empty
        wh.sql("ALTER TABLE fact_payout RENAME COLUMN updated_at TO changed_at")  # no cursor
        wh.sql(f"ALTER TABLE fact_exchange_rate SET SCHEMA {stage}")  # not where it is looked for
        wh.sql(f"GRANT USAGE ON SCHEMA {name}, {stage} TO {role}")
        wh.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {name} TO {role}")
        wh.sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {stage} TO {role}")
        wh.sql(f"REVOKE SELECT ON fact_revenue FROM {role}")  # no grant
        mapping = {"fact_subscription": {"source": "subscriptions_v"}}
        config = {**wh.config(), "user": role}
        warehouse = Warehouse.from_mapping(config, RetryPolicy(attempts=1))
        report = check_warehouse(
            warehouse, WarehouseMapping.from_config(mapping, "test"), sample_rows=50_000
        )
        yield wh, role, mapping, report, counts
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            con.execute(f"DROP SCHEMA IF EXISTS {stage} CASCADE")
            con.execute(f"DROP ROLE IF EXISTS {role}")


def _findings(report, table: str) -> dict[str, str]:
    return {f.kind: f"{f.status}: {f.message}" for f in report.table(table).findings}


def test_check_passes_a_source_that_matches_and_counts_its_rows(messy):
    _wh, _role, _mapping, report, counts = messy
    views = report.table("fact_view")
    assert views.status == "ready" and views.findings == []
    assert views.rows == counts["fact_view"]
    assert report.table("dim_viewer").rows == counts["dim_viewer"] + 3
    assert report.session == [], "the role may create the sync's temporary table"


def test_check_finds_a_missing_table_and_where_it_is(messy):
    wh, *_rest, report, _counts = messy
    found = _findings(report, "fact_exchange_rate")
    assert found["missing_table"].startswith("blocked: ")
    assert f"Found {wh.schema}_stage.fact_exchange_rate" in found["missing_table"]
    assert report.table("fact_exchange_rate").status == "blocked"


def test_check_finds_a_missing_column(messy):
    report = messy[3]
    found = _findings(report, "fact_interaction")
    assert found["missing_column"].startswith("blocked: column sentiment is missing")
    assert '[fact_interaction.columns] sentiment = "..."' in found["missing_column"]


def test_check_finds_an_extra_column(messy):
    found = _findings(messy[3], "dim_creator")
    assert found["extra_column"].startswith("blocked: new column agent (text)")
    assert "allow_extra_columns = true" in found["extra_column"]


def test_check_finds_a_retyped_column_behind_a_view(messy):
    wh, _role, _mapping, report, _counts = messy
    subscriptions = report.table("fact_subscription")
    assert subscriptions.source == f"{wh.schema}.subscriptions_v"
    found = _findings(report, "fact_subscription")
    assert found["retyped_column"] == (
        "blocked: column monthly_price is text, expected numeric(14,2): expose it through a "
        "view with CAST(monthly_price AS NUMERIC(14,2)) AS monthly_price (python cli.py "
        "warehouse ddl prints a template) and map the view"
    )


def test_check_finds_a_missing_cursor(messy):
    found = _findings(messy[3], "fact_payout")
    assert found["cursor"].startswith("blocked: cursor column updated_at is missing")
    # The one timestamp the model does not read is offered as the likely cursor.
    assert found["cursor"].endswith('([fact_payout.columns] updated_at = "changed_at")')
    # The renamed column is one the model does not read: an extra column too.
    assert found["extra_column"].startswith("blocked: new column changed_at")


def test_check_warns_of_duplicate_keys_in_the_sample(messy):
    viewers = messy[3].table("dim_viewer")
    assert viewers.status == "warning"
    assert _findings(messy[3], "dim_viewer")["duplicate_keys"].startswith(
        "warning: 3 key(s) (viewer_key) appear more than once in 50,000 rows read"
    )


def test_check_finds_nulls_where_the_extract_needs_values(messy):
    found = _findings(messy[3], "dim_title")
    assert found["nulls"].startswith(
        "blocked: NULL where the extract needs a value, in genre (2 rows)"
    )


def test_check_warns_of_an_empty_source(messy):
    ads = messy[3].table("fact_ad")
    assert (ads.status, ads.rows) == ("warning", 0)
    assert "empty" in _findings(messy[3], "fact_ad")


def test_check_finds_a_source_the_sync_user_may_not_read(messy):
    wh, role, *_rest = messy
    found = _findings(messy[3], "fact_revenue")
    assert found["access"].startswith(
        f"blocked: the sync user may not read {wh.schema}.fact_revenue"
    )
    assert f"GRANT SELECT ON {wh.schema}.fact_revenue TO {role}" in found["access"]


def test_check_finds_a_user_without_the_temp_grant():
    """The sync needs TEMP for the erased viewers' keys; a database that withholds it."""
    name = f"it_temp_{uuid.uuid4().hex[:10]}"
    role = f"{name}_ro"
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"CREATE DATABASE {name}")
        con.execute(f"CREATE ROLE {role} LOGIN")
    try:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC")
        config = {**PgWarehouse("public", PG_DSN).config(), "database": name, "user": role}
        warehouse = Warehouse.from_mapping(config, RetryPolicy(attempts=1))
        report = check_warehouse(warehouse, tables=["dim_creator"])
        (temp,) = report.session
        assert (temp.kind, temp.status) == ("temp", "blocked")
        assert f"GRANT TEMP ON DATABASE {name} TO {role}" in temp.message
        assert report.blocked
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            con.execute(f"DROP ROLE IF EXISTS {role}")


def _cli(*args: str, env: dict, command: str = "warehouse") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", command, *args],
        cwd=ROOT,
        env={**os.environ, "SPOTLIGHT_SYNC_RETRIES": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_command_exits_non_zero_when_something_blocks_a_sync(messy, tmp_path):
    wh, role, *_rest = messy
    file = tmp_path / "mapping.toml"
    file.write_text('[fact_subscription]\nsource = "subscriptions_v"\n')
    url = f"postgresql://{role}@127.0.0.1:5432/test?schema={wh.schema}&sslmode=disable"
    env = {"SPOTLIGHT_WAREHOUSE_URL": url, "SPOTLIGHT_WAREHOUSE_MAPPING_FILE": str(file)}
    blocked = _cli("check", "--sample", "50000", env=env)
    assert blocked.returncode == 1, blocked.stderr
    lines = blocked.stdout.splitlines()
    for table in ("dim_creator", "dim_title", "fact_subscription", "fact_payout"):
        assert any(line.startswith("FIX") and f" {table} " in line for line in lines), table
    assert any(line.startswith("ready") and " fact_view " in line for line in lines)
    assert lines[-1].startswith("NOT READY: fix dim_creator, dim_title")
    # Only the sources that are ready: exit 0.
    ready = _cli("check", "--only", "fact_view", "--only", "fact_ad", env=env)
    assert ready.returncode == 0, ready.stdout + ready.stderr
    assert ready.stdout.splitlines()[-1].startswith("READY")
    # A mapping that names a column the model does not have: exit 2, saying what to fix.
    file.write_text('[fact_view.columns]\nsession_id = "view_id"\n')
    wrong = _cli("check", env=env)
    assert wrong.returncode == 2
    assert "fact_view has no column 'session_id'" in wrong.stderr
    refused = _cli(env=env, command="sync")
    assert refused.returncode == 2
    assert "fact_view has no column 'session_id'" in refused.stderr
    ddl = _cli("ddl", "--dialect", "postgres", env={})
    assert ddl.returncode == 0 and "CREATE TABLE IF NOT EXISTS fact_view (" in ddl.stdout


def test_fixing_what_the_check_says_makes_the_messy_warehouse_sync(loaded, store, make_warehouse):
    wh = loaded
    wh.sql(
        "CREATE VIEW revenue_v AS SELECT revenue_id, occurred_at, viewer_key, title_id, "
        "creator_id, stream, gross, fees, CAST(net AS TEXT) AS net, currency, updated_at "
        "FROM fact_revenue"
    )
    wh.sql("ALTER TABLE dim_creator ADD COLUMN agent TEXT")
    wh.sql("ALTER TABLE fact_payout RENAME COLUMN updated_at TO changed_at")
    raw = {"fact_revenue": {"source": "revenue_v"}}
    warehouse = make_warehouse(wh)
    report = check_warehouse(warehouse, WarehouseMapping.from_config(raw))
    assert {t.table for t in report.tables if t.status == "blocked"} == {
        "fact_revenue",
        "dim_creator",
        "fact_payout",
    }
    refused = run_sync(
        warehouse=warehouse, store=store, now=NOW, mapping=WarehouseMapping.from_config(raw)
    )
    assert not refused.ok and refused.error_kind == "SchemaDriftError"
    assert "dim_creator" in refused.error and "new column agent" in refused.error

    # What the check said: cast in the view, allow the extra column, map the cursor.
    wh.sql("DROP VIEW revenue_v")
    wh.sql(
        "CREATE VIEW revenue_v AS SELECT revenue_id, occurred_at, viewer_key, title_id, "
        "creator_id, stream, gross, fees, CAST(CAST(net AS TEXT) AS NUMERIC(14,2)) AS net, "
        "currency, updated_at FROM fact_revenue"
    )
    raw = {
        "fact_revenue": {"source": "revenue_v"},
        "dim_creator": {"allow_extra_columns": True},
        "fact_payout": {"columns": {"updated_at": "changed_at"}},
    }
    mapping = WarehouseMapping.from_config(raw)
    report = check_warehouse(warehouse, mapping)
    assert not report.blocked, [(t.table, t.findings) for t in report.tables]
    assert report.table("dim_creator").status == "ready"
    assert [(f.kind, f.status) for f in report.table("dim_creator").findings] == [
        ("extra_column", "ready")
    ]
    result = run_sync(warehouse=warehouse, store=store, now=NOW, mapping=mapping)
    assert result.ok, result.summary_lines()
    assert _extract(store, schema.FACT_REVENUE) == _rows(wh, "revenue_v", schema.FACT_REVENUE, {})
    assert _extract(store, schema.FACT_PAYOUT) == _rows(
        wh, "fact_payout", schema.FACT_PAYOUT, {"updated_at": "changed_at"}
    )
