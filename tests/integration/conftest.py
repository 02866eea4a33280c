"""PostgreSQL plays Redshift: each test gets its own warehouse schema, loaded from the demo generator.

The DSN comes from SPOTLIGHT_TEST_PG_DSN (default: the local trust-auth server). Schemas are
named per test and worker, so tests running in parallel (pytest-xdist) never collide, and are
dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pytest

from data import schema
from data.demo import DemoConfig, generate
from data.extract.store import ExtractStore
from data.sync.warehouse import RetryPolicy, Warehouse
from tests.integration.pg_proxy import RedshiftProxy

PG_DSN = os.environ.get("SPOTLIGHT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
EXTRACT_KEY = "integration-extract-key-0123456789abcdef"
PSEUDONYM_KEY = "integration-pseudonym-key-0123456789abcdef"
# Small, so that the whole integration suite stays well under three minutes.
DEMO = DemoConfig(viewers=300, views=6_000, seed=5, end=date(2026, 10, 31), days=120)


@dataclass
class PgWarehouse:
    """A warehouse schema in the test server, and how to reach it."""

    schema: str
    dsn: str

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run setup or inspection SQL (test-only) in this schema; rows if it returns any."""
        with psycopg.connect(self.dsn, autocommit=True) as con:
            con.execute(f"SET search_path TO {self.schema}")
            cur = con.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def config(self, driver: str = "adbc", **extra) -> dict:
        parts = urlsplit(self.dsn)
        return {
            "host": parts.hostname,
            "port": parts.port or 5432,
            "database": parts.path.lstrip("/"),
            "user": parts.username or "postgres",
            "password": parts.password or "",
            "schema": self.schema,
            "driver": driver,
            "sslmode": "disable",
            **extra,
        }


def load_demo(wh: PgWarehouse, config: DemoConfig = DEMO) -> dict[str, int]:
    """Create the star schema in ``wh`` and load the demo generator's tables (COPY via ADBC)."""
    counts: dict[str, int] = {}
    with psycopg.connect(wh.dsn, autocommit=True) as con:
        for statement in schema.warehouse_ddl("postgres", wh.schema):
            con.execute(statement)
    with adbc.connect(wh.dsn) as con:
        with con.cursor() as cur:
            for name, table in generate(config, PSEUDONYM_KEY):
                cur.adbc_ingest(name, table, mode="append", db_schema_name=wh.schema)
                counts[name] = counts.get(name, 0) + table.num_rows
        con.commit()
    return counts


@pytest.fixture
def pg(request) -> Iterator[PgWarehouse]:
    """An empty schema of its own in the test server, dropped after the test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"it_{worker}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_DSN, autocommit=True, connect_timeout=5) as con:
            con.execute(f"CREATE SCHEMA {name}")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"No PostgreSQL at {PG_DSN} ({exc}). Run scripts/ensure-postgres.sh, or set "
            "SPOTLIGHT_TEST_PG_DSN."
        )
    wh = PgWarehouse(name, PG_DSN)
    yield wh
    with psycopg.connect(PG_DSN, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture
def loaded(pg) -> PgWarehouse:
    """The test's schema with the small demo platform loaded."""
    load_demo(pg)
    return pg


@pytest.fixture
def proxy() -> Iterator[RedshiftProxy]:
    upstream = urlsplit(PG_DSN)
    p = RedshiftProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432))
    yield p
    p.close()


@pytest.fixture
def make_warehouse(proxy):
    """Build a Warehouse over the test schema with either driver (redshift_connector via the proxy)."""

    def make(wh: PgWarehouse, driver: str = "adbc", attempts: int = 3, **extra) -> Warehouse:
        config = wh.config(driver, **extra)
        if driver == "redshift_connector":
            config.update(host="127.0.0.1", port=proxy.port)
        return Warehouse.from_mapping(config, RetryPolicy(attempts=attempts, base_delay=0.05))

    return make


@pytest.fixture
def store(tmp_path: Path) -> ExtractStore:
    return ExtractStore(tmp_path / "extract.duckdb", EXTRACT_KEY)
