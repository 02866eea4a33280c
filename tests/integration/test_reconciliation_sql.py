"""The reconciliation's statistics: the warehouse (PostgreSQL playing Redshift) and DuckDB
compute the same numbers for every way a table can be partitioned, and PostgreSQL's planner
knows how few months there are."""

from __future__ import annotations

import dataclasses
import json

import pytest

from data.sync.extract_specs import SPECS_BY_NAME, Partition
from data.sync.run import _stats, run_sync
from tests.integration.conftest import PgWarehouse

pytestmark = pytest.mark.integration


def _warehouse_stats(wh: PgWarehouse, sql: str, params: list[str]) -> dict:
    # psycopg speaks %s; the rendered statement speaks $n (as the ADBC driver does).
    for i in range(len(params), 0, -1):
        sql = sql.replace(f"${i}", "%s")
    return _stats(wh.sql(sql, tuple(params)))


@pytest.mark.parametrize(
    "partition",
    [Partition("month", "started_at"), Partition("bucket", "view_id", 7), Partition("whole")],
    ids=["month", "bucket", "whole"],
)
def test_both_sides_compute_the_same_statistics(loaded, store, make_warehouse, partition):
    result = run_sync(warehouse=make_warehouse(loaded), store=store)
    assert result.ok, result.summary_lines()
    spec = dataclasses.replace(SPECS_BY_NAME["fact_view"], partition=partition)
    theirs = _warehouse_stats(loaded, spec.source_stats_sql(loaded.schema, suppress=False), [])
    ours = _stats(store.cursor().execute(spec.extract_stats_sql()).fetchall())
    assert theirs == ours
    assert (
        sum(int(v[0]) for v in ours.values()) == loaded.sql("SELECT count(*) FROM fact_view")[0][0]
    )
    if partition.kind == "month":
        assert len(ours) >= 4
        # A subset by ranges: the same numbers for those months, nothing else.
        wanted = sorted(ours)[1:3]
        ranges, params = spec.stats_params(wanted)
        assert ranges == 1
        bounded = _warehouse_stats(
            loaded,
            spec.source_stats_sql(
                loaded.schema, suppress=False, partitions=len(wanted), ranges=ranges
            ),
            params,
        )
        assert bounded == {p: ours[p] for p in wanted}


def test_the_planner_expects_a_few_months_not_a_group_per_timestamp(loaded):
    loaded.sql("ANALYZE fact_view")
    sql = SPECS_BY_NAME["fact_view"].source_stats_sql(loaded.schema, suppress=False)
    (plan,) = loaded.sql("EXPLAIN (FORMAT JSON) " + sql)[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    views = loaded.sql("SELECT count(DISTINCT started_at) FROM fact_view")[0][0]
    estimated = plan[0]["Plan"]["Plan Rows"]
    assert views > 1000
    assert estimated < 50, f"planner expects {estimated} groups (statistics not used?)"
