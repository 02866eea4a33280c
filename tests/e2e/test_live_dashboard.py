"""Near-real-time (issue #20) in Chromium against a real warehouse (PostgreSQL playing Redshift):
a view committed to the warehouse reaches an open Overview without a click once a sync has run;
a failing sync turns every user's freshness line amber with the reason; an idle tab stops
refreshing itself."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from settings import PROJECT_ROOT
from tests.e2e.app_process import RunningApp, running_app, warehouse_schema, warehouse_settings
from tests.e2e.conftest import screenshot, sign_in, wait_for_app
from tests.integration.conftest import EXTRACT_KEY, PG_DSN, PgWarehouse, load_demo

pytestmark = pytest.mark.integration
VIEWER, PASSWORD = "watcher", "correct horse battery staple"
REFRESH_SECONDS = 3


def _cli(app: RunningApp, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        input=stdin,
        text=True,
        cwd=PROJECT_ROOT,
        env=app.env,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def live_app() -> Iterator[tuple[RunningApp, PgWarehouse]]:
    with warehouse_schema(PG_DSN, "e2e_live") as schema:
        warehouse = PgWarehouse(schema, PG_DSN)
        load_demo(warehouse)
        root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-live-"))
        settings = warehouse_settings(
            PG_DSN,
            schema,
            EXTRACT_KEY,
            auto_refresh_seconds=str(REFRESH_SECONDS),
            sync_retries="1",
            sync_connect_timeout_seconds="3",
        )
        with running_app(root, **settings) as app:
            made = _cli(
                app,
                "users",
                "add",
                VIEWER,
                "-r",
                "manager",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
            assert made.returncode == 0, made.stderr
            first = _cli(app, "sync", "--full", "--quiet")
            assert first.returncode == 0, first.stdout + first.stderr
            yield app, warehouse


def _freshness_line(page: Page):
    return page.get_by_text(re.compile(r"Data to .*·"))


def test_a_committed_view_reaches_the_open_overview_without_a_click(live_app, page: Page):
    app, warehouse = live_app
    page.goto(app.url)
    wait_for_app(page)
    sign_in(page, VIEWER, PASSWORD)
    expect(page.get_by_role("heading", name="Today so far")).to_be_visible()
    wait_for_app(page)
    before = _freshness_line(page).first.inner_text()
    starts_label = page.get_by_text(re.compile(r"Starts today, to \d\d:\d\d UTC"))
    label_before = starts_label.inner_text()

    # A new session, five minutes after the newest one, committed to the warehouse.
    (newest,) = warehouse.sql("SELECT max(started_at) FROM fact_view")[0]
    warehouse.sql(
        """
        INSERT INTO fact_view
        SELECT view_id + 900000000, viewer_key, title_id, started_at + interval '5 minutes',
               watch_seconds, device, country, tz_offset_min, completed, now()
        FROM fact_view WHERE started_at = %s LIMIT 1
        """,
        (newest,),
    )
    committed = time.monotonic()
    synced = _cli(app, "sync", "--quiet")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    expected = (newest.replace(tzinfo=None) if newest.tzinfo else newest).strftime("%H:%M")
    # No click: the page notices the new extract and runs again by itself.
    expect(starts_label).not_to_have_text(label_before, timeout=(REFRESH_SECONDS + 20) * 1000)
    latency = time.monotonic() - committed
    assert expected not in starts_label.inner_text()
    expect(_freshness_line(page).first).not_to_have_text(before)
    screenshot(page, "live-01-overview-updated-without-a-click")
    print(f"commit -> number changed on the open page: {latency:.1f} s")


def test_a_failing_sync_turns_the_line_amber_for_everyone(live_app, page: Page):
    app, warehouse = live_app
    page.goto(app.url)
    wait_for_app(page)
    sign_in(page, VIEWER, PASSWORD)
    expect(_freshness_line(page).first).to_be_visible()
    warehouse.sql("ALTER TABLE fact_view RENAME TO fact_view_gone")
    try:
        failed = _cli(app, "sync", "--quiet")
        assert failed.returncode == 1
        warning = page.get_by_text("Data may be out of date")
        expect(warning).to_be_visible(timeout=(REFRESH_SECONDS + 20) * 1000)
        expect(page.get_by_text(re.compile("the last sync attempt failed at"))).to_be_visible()
        # A manager sees when, not the error text (it can name hosts and tables).
        expect(page.get_by_text("fact_view_gone")).to_have_count(0)
        screenshot(page, "live-02-failed-sync-amber")
    finally:
        warehouse.sql("ALTER TABLE fact_view_gone RENAME TO fact_view")
    recovered = _cli(app, "sync", "--quiet")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    expect(page.get_by_text("Data may be out of date")).to_have_count(
        0, timeout=(REFRESH_SECONDS + 20) * 1000
    )


@pytest.fixture(scope="module")
def quick_idle_app() -> Iterator[RunningApp]:
    root = Path(tempfile.mkdtemp(prefix="spotlight-e2e-idle-"))
    settings = {
        "demo_views": "20000",
        "demo_viewers": "1500",
        "auto_refresh_seconds": "2",
        "auto_refresh_idle_minutes": "0.25",
    }
    with running_app(root, **settings) as app:
        yield app


def test_an_idle_tab_stops_refreshing_and_a_click_resumes_it(quick_idle_app, page: Page):
    page.goto(quick_idle_app.url)
    wait_for_app(page, timeout=120_000)
    sign_in(page, "manager")
    line = _freshness_line(page).first
    expect(line).to_be_visible(timeout=60_000)
    expect(line).not_to_contain_text("paused")
    # Fifteen seconds without a click: the tab stops its timer and says so.
    expect(line).to_contain_text(
        "auto-refresh paused after a while without activity", timeout=40_000
    )
    screenshot(page, "live-03-idle-tab-paused")
    page.get_by_text("Week", exact=True).first.click()
    wait_for_app(page)
    expect(_freshness_line(page).first).not_to_contain_text("paused")
    # Paused by hand from the sidebar.
    page.locator('[data-testid="stSidebar"]').get_by_text("Auto-refresh").click()
    wait_for_app(page)
    expect(_freshness_line(page).first).to_contain_text("auto-refresh paused")


def test_a_tab_signed_out_elsewhere_leaves_the_page_without_a_click(quick_idle_app, page: Page):
    page.goto(quick_idle_app.url)
    wait_for_app(page, timeout=120_000)
    sign_in(page, "analyst")
    expect(_freshness_line(page).first).to_be_visible(timeout=60_000)
    revoked = _cli(quick_idle_app, "users", "revoke-sessions", "analyst")
    assert revoked.returncode == 0, revoked.stdout + revoked.stderr
    # The next refresh tick finds the session ended: the sign-in page, no numbers left on screen.
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20_000)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(0)
