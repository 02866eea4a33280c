"""Sync throughput: rows per second from PostgreSQL into the encrypted extract, per driver.

``python -m bench.sync [--rows 1000000 --rows 10000000] [--repeat 2] [--drivers adbc,redshift_connector]``

For each size it loads ``fact_view`` in a PostgreSQL schema of its own (server-side
``INSERT ... SELECT generate_series``; the other tables stay empty), then, per driver:

* **full**: a full sync into a new encrypted extract (read, de-duplicate, reconcile, swap);
* **incremental 1%**: 1% of the views change (new ``updated_at`` and ``watch_seconds``), spread
  over every month (worst case) or among the newest views (typical), then an incremental sync
  reads only those (plus the overlap window) into a copy of the extract.

Rows/s is view rows divided by the whole sync's wall time, reconciliation and the encrypted
write included. Before the syncs, ``raw_read`` times the driver reading every view with nothing
done with the rows, and the machine's busy CPU-seconds meanwhile (server and client share it):
no sync through that driver can be faster here. Each sync records the machine's busy
CPU-seconds too (near twice its seconds: both cores were saturated). Phase times come from the sync's own clock (``SyncResult.phases``, the view
table's ``TableResult.phases``, and what the incremental refresh did to each derived table);
each result records the load average when it started (the machine is shared). The warehouse
tables are created from data/schema.py, loaded, then indexed (the PostgreSQL DDL's indexes on
the sort key and the cursor). redshift_connector reaches the server through the integration
tests' proxy (it sends Redshift-only start-up parameters). Results go to
bench/results/sync-<rows>[-<tag>].json. The DSN is SPOTLIGHT_TEST_PG_DSN (default: the local
server).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg

from data import schema
from data.extract.store import ExtractStore
from data.sync.extract_specs import SPECS_BY_NAME
from data.sync.run import run_sync
from data.sync.warehouse import RetryPolicy, Warehouse
from tests.integration.pg_proxy import RedshiftProxy

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DSN = os.environ.get("SPOTLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-sync-extract-key-0123456789abcdefgh"
SCHEMA = "bench_sync"


def load(rows: int) -> float:
    """(Re)create the schema with ``rows`` views; seconds taken."""
    started = time.perf_counter()
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        con.execute(f"CREATE SCHEMA {SCHEMA}")
        indexes = schema.warehouse_index_ddl(SCHEMA)
        for statement in schema.warehouse_ddl("postgres", SCHEMA):
            if statement not in indexes:
                con.execute(statement)
        # Two years of views, 200k viewers, 5k titles, deterministic.
        con.execute(
            f"""INSERT INTO {SCHEMA}.fact_view
            SELECT g, (CAST(g AS BIGINT) * 7919) %% 200000 + 1, g %% 5000 + 1,
                   TIMESTAMP '2024-11-01' + (CAST(g AS BIGINT) * 63072000 / %s) * INTERVAL '1 second',
                   g %% 7200, (ARRAY['tv','mobile','web','tablet','console'])[1 + g %% 5],
                   (ARRAY['US','DE','GB','FR','BR','IN'])[1 + g %% 6], 0, g %% 3 = 0,
                   TIMESTAMP '2024-11-01' + (CAST(g AS BIGINT) * 63072000 / %s) * INTERVAL '1 second'
                       + (g %% 7200) * INTERVAL '1 second'
            FROM generate_series(1, %s) g""",
            (rows, rows, rows),
        )
        # Indexes after the load (faster than maintaining them row by row).
        for statement in indexes:
            con.execute(statement)
        con.execute(f"ANALYZE {SCHEMA}.fact_view")
    return time.perf_counter() - started


def bump_cursor(step: int, rows: int, pattern: str) -> None:
    """1% of the views change: a value, and a cursor past every earlier run's watermark.

    ``spread``: every hundredth view, so every month changes (the worst case for reconciliation).
    ``recent``: the newest 1% of views (the last week or so), as late completions and corrections
    arrive in practice.
    """
    where = "view_id %% 100 = %s" if pattern == "spread" else "view_id > %s"
    value = step % 100 if pattern == "spread" else rows - rows // 100
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(
            f"UPDATE {SCHEMA}.fact_view SET watch_seconds = watch_seconds + 1, "
            f"updated_at = TIMESTAMP '2026-11-05' + %s * INTERVAL '1 day' WHERE {where}",
            (step, value),
        )


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages (the machine is shared; results say how busy)."""
    return [round(x, 2) for x in os.getloadavg()]


def busy_cpu_seconds() -> tuple[float, float]:
    """(busy, elapsed) CPU-seconds of the whole machine so far, from /proc/stat: the server
    and the client share it, so this is what a read costs both of them."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def raw_read(warehouse: Warehouse) -> dict[str, Any]:
    """The driver's read of every view with nothing done with the rows: the ceiling of any sync
    through that driver on this machine, and how many of its cores it keeps busy."""
    spec = SPECS_BY_NAME["fact_view"]
    sql = spec.select_sql(SCHEMA, incremental=False, suppress=False)
    with warehouse.session() as session:
        busy0, all0 = busy_cpu_seconds()
        start = time.perf_counter()
        rows = sum(batch.num_rows for batch in session.stream(sql))
        seconds = time.perf_counter() - start
        busy1, all1 = busy_cpu_seconds()
    return {
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds),
        "busy_cpu_seconds": round(busy1 - busy0, 1),
        "cpu_seconds_available": round(all1 - all0, 1),
    }


def timed_sync(warehouse: Warehouse, store: ExtractStore, full: bool) -> dict[str, Any]:
    """One sync, with the time of each of its steps.

    ``fact_view_s`` breaks the view table down (schema check, read, merge, the DuckDB side of
    the statistics, waiting for the warehouse's statistics, commit); ``other_tables_s`` is the
    rest of the tables; ``copy_s`` (incremental: the byte copy of the live extract),
    ``derived_s``, ``meta_s`` and ``swap_s`` (checkpoint, encryption check, fsync, rename) come
    from the sync's own clock.
    """
    load_before = load_average()
    busy_before, _ = busy_cpu_seconds()
    start = time.perf_counter()
    result = run_sync(warehouse=warehouse, store=store, full=full)
    total = time.perf_counter() - start
    busy_after, _ = busy_cpu_seconds()
    if not result.ok:
        raise RuntimeError(result.error)
    views = result.table("fact_view")
    phases = {f"{k}_s": v for k, v in result.phases.items()}
    phases["other_tables_s"] = round(
        sum(t.seconds for t in result.tables if t.table != "fact_view"), 3
    )
    return {
        "seconds": round(total, 3),
        "rows_read": views.rows_read,
        "rows_in_extract": views.rows_in_extract,
        "rows_per_second": round(views.rows_in_extract / total) if full else None,
        # The machine's, server included: near 2 x seconds means both cores were saturated.
        "busy_cpu_seconds": round(busy_after - busy_before, 1),
        "partitions_checked": views.partitions_checked,
        **phases,
        "fact_view_s": dict(views.phases),
        "derived": {
            name: f"{what} ({result.derived_seconds.get(name, 0):.3f} s)"
            for name, what in result.derived.items()
        },
        "load_average": load_before,
    }


def bench(rows: int, drivers: list[str], repeat: int) -> dict[str, Any]:
    load_s = load(rows)
    print(f"loaded {rows:,} views in {load_s:.1f}s", flush=True)
    upstream = urlsplit(DSN)
    proxy = RedshiftProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432))
    out: dict[str, Any] = {
        "rows": rows,
        "load_seconds": round(load_s, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "note": "2 cores shared with other engineers' work; numbers are noisy",
            "load_average_at_start": load_average(),
        },
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "drivers": {},
    }
    step = 0
    try:
        for driver in drivers:
            config = {
                "host": upstream.hostname,
                "port": upstream.port or 5432,
                "database": upstream.path.lstrip("/"),
                "user": upstream.username or "postgres",
                "schema": SCHEMA,
                "driver": driver,
                "sslmode": "disable",
            }
            if driver == "redshift_connector":
                config.update(host="127.0.0.1", port=proxy.port)
            warehouse = Warehouse.from_mapping(config, RetryPolicy(attempts=2))
            fulls, incs = [], []
            ceiling = raw_read(warehouse)
            print(driver, "raw read", ceiling, flush=True)
            with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
                store = ExtractStore(Path(tmp) / "extract.duckdb", KEY)
                for _ in range(repeat):
                    fulls.append(timed_sync(warehouse, store, full=True))
                    print(driver, "full", fulls[-1], flush=True)
                # The newest 1% first: a sync right after a spread change re-reads the spread
                # rows too (they are inside the overlap window), so it would not be typical.
                for pattern in ("recent", "spread"):
                    for _ in range(repeat):
                        step += 1
                        bump_cursor(step, rows, pattern)
                        incs.append(
                            {"pattern": pattern, **timed_sync(warehouse, store, full=False)}
                        )
                        print(driver, "incremental", incs[-1], flush=True)
            best_full = min(fulls, key=lambda r: r["seconds"])
            best = {
                pattern: min(
                    (r for r in incs if r["pattern"] == pattern), key=lambda r: r["seconds"]
                )
                for pattern in ("spread", "recent")
            }
            out["drivers"][driver] = {
                "raw_read": ceiling,
                "full": fulls,
                "incremental_1pct": incs,
                "best_full_rows_per_second": best_full["rows_per_second"],
                "best_full_seconds": best_full["seconds"],
                "median_full_seconds": round(statistics.median(r["seconds"] for r in fulls), 3),
                "best_incremental_seconds": {p: r["seconds"] for p, r in best.items()},
                "incremental_over_full": {
                    p: round(r["seconds"] / best_full["seconds"], 3) for p, r in best.items()
                },
            }
    finally:
        proxy.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--drivers", default="adbc,redshift_connector")
    parser.add_argument("--tag", default="", help="suffix for the results file, e.g. before")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for rows in args.rows or [1_000_000]:
        result = bench(rows, args.drivers.split(","), args.repeat)
        name = f"sync-{rows}{'-' + args.tag if args.tag else ''}.json"
        (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote bench/results/{name}")
    with psycopg.connect(DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


if __name__ == "__main__":
    main()
