from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot.errors import ParseError

from data import schema
from data.sync import extract_specs
from data.sync.extract_specs import SPECS, SPECS_BY_NAME, describe_drift, warehouse_statements


def test_every_extract_table_has_one_spec_and_the_defaults_are_the_base_tables():
    assert {s.name for s in extract_specs.resolve()} == {t.name for t in schema.TABLES}
    assert len(SPECS_BY_NAME) == len(SPECS)
    assert any(s.is_aggregate for s in SPECS), "at least one rollup runs in the warehouse"
    for spec in SPECS:
        assert set(spec.primary_key) <= set(spec.table.column_names)
        assert spec.cursor in spec.table.column_names


def test_unknown_tables_are_refused():
    with pytest.raises(KeyError, match="unknown extract table"):
        extract_specs.resolve(["fact_view", "users; drop table x"])


def test_every_warehouse_statement_parses_as_redshift_sql():
    statements = warehouse_statements("analytics")
    assert len(statements) > 40
    for sql in statements:
        # sqlglot spells Redshift's $n parameters as placeholders; ParseError fails the test.
        try:
            parsed = sqlglot.parse_one(sql, read="redshift")
        except ParseError as exc:
            pytest.fail(f"not valid Redshift SQL: {exc}\n{sql}")
        assert parsed is not None


def test_reads_are_filtered_by_watermark_and_suppression_in_the_warehouse():
    spec = SPECS_BY_NAME["fact_view"]
    sql = spec.select_sql("analytics", incremental=True, suppress=True)
    tree = sqlglot.parse_one(sql, read="redshift")
    assert tree.find(sqlglot.exp.Exists) is not None
    assert "src.updated_at >= $1" in sql
    assert "FROM analytics.fact_view" in sql
    assert "$1" not in spec.select_sql("analytics", incremental=False, suppress=False)


def _drift(spec, changes):
    found = [(c.name, *extract_specs.expected_source_type(c)) for c in spec.checked_source_columns]
    found = [changes.get(row[0], row) for row in found]
    return describe_drift(spec, [r for r in found if r is not None] + changes.get("+", []))


def test_drift_new_changed_and_missing_columns_are_named():
    spec = SPECS_BY_NAME["fact_view"]
    assert _drift(spec, {}) == []
    assert _drift(spec, {"+": [("referrer", "character varying", None, None)]}) == [
        "new column referrer (character varying)"
    ]
    assert _drift(spec, {"watch_seconds": ("watch_seconds", "bigint", None, None)}) == [
        "column watch_seconds is bigint, expected integer"
    ]
    assert _drift(spec, {"device": None}) == ["column device is missing"]
    # A longer VARCHAR is not drift: the extract's text has no length.
    assert _drift(spec, {"device": ("device", "character varying", None, None)}) == []
    money = SPECS_BY_NAME["fact_revenue"]
    assert _drift(money, {"net": ("net", "numeric", 18, 4)}) == [
        "column net is numeric(18,4), expected numeric(14,2)"
    ]


def test_allowed_drift_is_tolerated():
    from dataclasses import replace

    spec = replace(SPECS_BY_NAME["fact_view"], allowed_new_columns=frozenset({"referrer"}))
    assert _drift(spec, {"+": [("referrer", "character varying", None, None)]}) == []
    assert _drift(spec, {"+": [("other", "integer", None, None)]}) == ["new column other (integer)"]


def test_extract_statistics_run_in_duckdb_for_every_spec():
    con = duckdb.connect()
    for spec in SPECS:
        con.execute(spec.table.ddl("duckdb"))
        assert con.execute(spec.extract_stats_sql()).fetchall() == []
        assert con.execute(spec.extract_stats_sql(2), ["2026-01", "2026-02"]).fetchall() == []


def test_statistics_count_and_total_per_month_in_duckdb():
    con = duckdb.connect()
    spec = SPECS_BY_NAME["fact_payout"]
    con.execute(spec.table.ddl("duckdb"))
    con.execute(
        "INSERT INTO fact_payout VALUES "
        "(1, 7, DATE '2026-01-01', 10.50, 'USD', 'paid', TIMESTAMP '2026-02-01 10:00:00', TIMESTAMP '2026-02-01'),"
        "(2, 7, DATE '2026-01-01', 4.25, 'USD', 'held', NULL, TIMESTAMP '2026-02-01'),"
        "(3, 8, DATE '2026-02-01', 1.00, 'EUR', 'estimated', NULL, TIMESTAMP '2026-03-01')"
    )
    rows = {r[0]: r for r in con.execute(spec.extract_stats_sql()).fetchall()}
    assert sorted(rows) == ["2026-01", "2026-02"]
    january = rows["2026-01"]
    assert january[1] == 2  # rows
    assert january[2] == 3  # sum of payout_id
    assert str(january[5]) == "14.75"  # sum of amount, exact


def test_month_ranges_cover_exactly_the_partitions_in_runs():
    part = SPECS_BY_NAME["fact_view"].partition
    assert part.ranges(["2025-11", "2025-12", "2026-01", "2026-03"]) == [
        ("2025-11-01", "2026-02-01"),
        ("2026-03-01", "2026-04-01"),
    ]
    assert part.ranges([]) == []
    assert part.ranges(["2026-13"]) == [], "anything but months: no ranges, the IN alone"
    assert SPECS_BY_NAME["dim_viewer"].partition.ranges(["3"]) == []


def test_range_bounded_statistics_equal_the_unbounded_ones_in_duckdb():
    con = duckdb.connect()
    spec = SPECS_BY_NAME["fact_view"]
    con.execute(spec.table.ddl("duckdb"))
    con.execute(
        "INSERT INTO fact_view SELECT g, g % 7, g % 5, TIMESTAMP '2025-10-15' + g * INTERVAL 6 HOUR, "
        "g, 'tv', 'US', 0, g % 2 = 0, TIMESTAMP '2026-06-01' FROM range(1, 2000) t(g)"
    )
    wanted = ["2025-10", "2025-11", "2026-01", "2026-03"]
    plain = con.execute(spec.extract_stats_sql(len(wanted)), wanted).fetchall()
    ranges, params = spec.stats_params(wanted)
    assert ranges == 3
    bounded = con.execute(spec.extract_stats_sql(len(wanted), ranges), params).fetchall()
    assert bounded == plain and len(plain) == 4
    sql = spec.source_stats_sql("analytics", suppress=True, partitions=len(wanted), ranges=ranges)
    assert "src.started_at >= CAST($1 AS TIMESTAMP)" in sql
    assert "src.started_at < CAST($6 AS TIMESTAMP)" in sql
    assert "TO_CHAR(src.started_at" not in sql, "no row formatted: months grouped by DATE_TRUNC"
