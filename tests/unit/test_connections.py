from __future__ import annotations

from datetime import date

from components.connections import ExtractConnection, WarehouseConnection
from data.demo import DemoConfig, build_demo_extract
from data.extract.store import ExtractStore
from settings import load_settings

KEY = "connection-test-extract-key-0123456789abc"


def test_warehouse_connection_is_configured_from_its_section(tmp_path):
    conn = WarehouseConnection(
        "warehouse",
        settings=load_settings(env={}, secrets_path=tmp_path / "none.toml"),
        url="postgresql://sync:topsecret-pw@wh.example.com:5439/analytics",
        schema="events",
    )
    assert conn.warehouse.config.host == "wh.example.com"
    assert conn.warehouse.config.schema == "events"
    assert "topsecret" not in conn.describe()


def test_extract_connection_reads_the_extract(tmp_path):
    path = tmp_path / "extract.duckdb"
    build_demo_extract(
        ExtractStore(path, KEY),
        DemoConfig(viewers=50, views=500, seed=1, end=date(2026, 10, 31), days=30),
        "p-test-key-0123456789-ABCDEFGHIJ-klmnopqrst",
    )
    conn = ExtractConnection("extract", path=str(path), key=KEY)
    assert conn.cursor().execute("SELECT count(*) FROM fact_view").fetchone()[0] == 500
    assert conn.generation() == conn.store.generation()
    status = conn.sync_status()
    assert status.source == "demo" and status.tables == ()
