from __future__ import annotations

import duckdb
import sqlglot
from sqlglot import exp

from data import schema


def test_redshift_ddl_parses_in_the_redshift_dialect():
    for statement in schema.warehouse_ddl("redshift", "spotlight"):
        tree = sqlglot.parse_one(statement, read="redshift")
        assert isinstance(tree, exp.Create)


def test_duckdb_ddl_creates_every_table_with_every_column():
    con = duckdb.connect()
    for statement in schema.extract_ddl():
        con.execute(statement)
    for table in schema.TABLES:
        cols = [r[0] for r in con.execute(f"DESCRIBE {table.name}").fetchall()]
        assert tuple(cols) == table.column_names


def test_every_table_has_a_primary_key_and_a_cursor_column():
    for table in schema.TABLES:
        assert set(table.primary_key) <= set(table.column_names)
        assert table.cursor in table.column_names


def test_viewer_tables_are_exactly_those_with_a_viewer_key():
    with_key = {t.name for t in schema.TABLES if "viewer_key" in t.column_names}
    assert {t.name for t in schema.VIEWER_TABLES} == with_key


def test_postgres_ddl_indexes_the_sort_key_and_the_cursor():
    statements = schema.warehouse_ddl("postgres", "wh")
    assert (
        "CREATE INDEX IF NOT EXISTS fact_view_sort_idx ON wh.fact_view (started_at)" in statements
    )
    assert (
        "CREATE INDEX IF NOT EXISTS fact_view_updated_at_idx ON wh.fact_view (updated_at)"
        in statements
    )
    assert not [s for s in schema.warehouse_ddl("redshift", "wh") if "INDEX" in s]


def test_postgres_ddl_gives_the_planner_statistics_on_the_month_the_sync_groups_by():
    from data.sync.extract_specs import SPECS_BY_NAME

    statements = schema.warehouse_ddl("postgres", "wh")
    month = schema.month_key_sql("started_at")
    assert (
        f"CREATE STATISTICS IF NOT EXISTS wh.fact_view_month_stats ON ({month}) FROM wh.fact_view"
        in statements
    )
    # The reconciliation groups by exactly that expression, or the statistics do not apply.
    stats_sql = SPECS_BY_NAME["fact_view"].source_stats_sql("wh", suppress=False)
    assert f"GROUP BY {schema.month_key_sql('src.started_at')}" in stats_sql
    assert not [s for s in schema.warehouse_ddl("redshift", "wh") if "STATISTICS" in s]


def test_exchange_rates_are_a_dated_table_the_sync_carries():
    from data.sync.extract_specs import DEFAULT_TABLES, SPECS_BY_NAME

    table = schema.TABLES_BY_NAME["fact_exchange_rate"]
    assert table.primary_key == ("rate_date", "currency")
    assert table.column("rate_date").type == "date"
    assert table.column("currency").type == "text:3"
    assert table.column("rate_to_usd").type == "real"
    assert schema.BASE_CURRENCY == "USD"
    spec = SPECS_BY_NAME["fact_exchange_rate"]
    assert spec.mode == "incremental"
    assert (spec.partition.kind, spec.partition.column) == ("month", "rate_date")
    assert "fact_exchange_rate" in DEFAULT_TABLES
    ddl = "\n".join(schema.warehouse_ddl("postgres", "wh"))
    assert "CREATE TABLE IF NOT EXISTS wh.fact_exchange_rate" in ddl
    assert "fact_exchange_rate_sort_idx ON wh.fact_exchange_rate (rate_date)" in ddl
