"""An administrator brings the data in: the app installed against a warehouse (PostgreSQL
playing Redshift), no extract yet, an admin account made with the CLI, the first sync run from
the Administration page in Chromium, then the dashboards show the synced data."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from data.extract.store import ExtractStore
from settings import PROJECT_ROOT
from tests.e2e.app_process import RunningApp, running_app, warehouse_schema, warehouse_settings
from tests.e2e.conftest import screenshot, sign_in, wait_for_app
from tests.integration.conftest import EXTRACT_KEY, PG_DSN, PgWarehouse, load_demo

pytestmark = pytest.mark.integration
ADMIN, PASSWORD = "ops", "correct horse battery staple"


@pytest.fixture(scope="module")
def warehouse_app() -> Iterator[tuple[RunningApp, PgWarehouse]]:
    with warehouse_schema(PG_DSN, "e2e") as schema:
        warehouse = PgWarehouse(schema, PG_DSN)
        load_demo(warehouse)
        root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-sync-"))
        with running_app(root, **warehouse_settings(PG_DSN, schema, EXTRACT_KEY)) as app:
            subprocess.run(
                [
                    sys.executable,
                    "cli.py",
                    "users",
                    "add",
                    ADMIN,
                    "-r",
                    "admin",
                    "--password-stdin",
                ],
                input=PASSWORD + "\n",
                text=True,
                cwd=PROJECT_ROOT,
                env=app.env,
                check=True,
                capture_output=True,
            )
            yield app, warehouse


def test_an_admin_runs_the_first_sync_and_sees_the_data(warehouse_app, page: Page):
    app, warehouse = warehouse_app
    page.goto(app.url)
    wait_for_app(page)
    sign_in(page, ADMIN, PASSWORD)
    expect(page.get_by_text("There is no data yet")).to_be_visible()

    page.get_by_role("link", name="Administration").click()
    wait_for_app(page)
    page.get_by_role("tab", name="Data sync").click()
    expect(page.get_by_text("There is no extract yet")).to_be_visible()
    page.get_by_role("button", name="Run sync").click()
    expect(page.get_by_text("Sync succeeded").first).to_be_visible(timeout=120_000)
    wait_for_app(page)
    # The status above the button now describes the new extract: a table per synced table.
    expect(page.get_by_text("There is no extract yet")).to_have_count(0)
    expect(page.get_by_text("Last successful sync")).to_be_visible()
    expect(page.get_by_text("(full)")).to_be_visible()
    panel = page.get_by_role("tabpanel", name="Data sync")
    expect(panel.locator(".stDataFrame")).to_be_visible()
    screenshot(page, "sync-01-first-sync-done")
    store = ExtractStore(app.data_dir / "extract.duckdb", EXTRACT_KEY)
    with store.peek() as extract:
        synced = extract.execute("SELECT count(*) FROM fact_view").fetchone()[0]
    assert synced == warehouse.sql("SELECT count(*) FROM fact_view")[0][0] > 0

    page.get_by_role("link", name="Overview").click()
    wait_for_app(page)
    expect(page.get_by_text("There is no data yet")).to_have_count(0)
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()
    screenshot(page, "sync-02-overview-after-sync")
