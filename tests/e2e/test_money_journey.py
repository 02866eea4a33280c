"""The money journeys in Chromium: a creator downloads the month's statement and its totals match
the page; finance approves a month with step-up and the creator then sees it approved; two
creators on the Earnings page at the same moment never see each other's rows."""

from __future__ import annotations

import calendar
import io
import time
from decimal import Decimal

import openpyxl
import pyotp
import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from data.extract.store import store_from_settings
from data.queries.earnings import creator_directory
from data.queries.filters import Scope
from security.demo import DEMO_PASSWORD
from security.service import Security
from settings import load_settings
from tests.e2e import conftest as e2e
from tests.e2e.conftest import DESKTOP, screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
OTHER_PASSWORD = "quiet harbour lamp 92"


def _open_earnings(tab: Page) -> None:
    tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Earnings").click()
    tab.get_by_role("heading", name="💰 Earnings").wait_for()
    wait_for_app(tab)


def _metric_value(tab: Page, label: str) -> str:
    card = tab.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


def _fresh_code(username: str) -> str:
    """A code from a time step this account has not used yet (each code works once)."""
    totp = pyotp.TOTP(e2e._TOTP_SECRETS[username])
    if totp.now() == e2e._LAST_CODE.get(username):
        time.sleep(30.5 - time.time() % 30)
    code = totp.now()
    e2e._LAST_CODE[username] = code
    return code


def _names(env: dict, ids) -> set[str]:
    store = store_from_settings(load_settings(env=env))
    return set(creator_directory(store.cursor(), Scope.creators(ids))["name"])


def test_creator_statement_download_matches_the_page(app_server, page):
    tab = page
    tab.goto(app_server.url)
    wait_for_app(tab, timeout=120_000)
    sign_in(tab, "creator")
    _open_earnings(tab)
    shown = _metric_value(tab, "Statement total")
    assert shown.startswith("USD "), shown
    download = None
    for _ in range(2):
        try:
            with tab.expect_download(timeout=15_000) as info:
                tab.get_by_role("button", name="⬇️ Excel").last.click()
            download = info.value
            break
        except PlaywrightTimeout:
            wait_for_app(tab)
    assert download is not None, "the statement's Excel button delivered no file"
    screenshot(tab, "earnings-creator")
    sheet = openpyxl.load_workbook(io.BytesIO(download.path().read_bytes())).active
    header = [c.value for c in sheet[1]]
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=2)]
    earnings = header.index("Earnings")
    total_row = next(r for r in rows if r[header.index("Creator")] == "Total")
    lines = [r for r in rows if r[header.index("Creator")] != "Total"]
    names = _names(app_server.env, (1, 2))
    assert {r[header.index("Creator")] for r in lines} <= names
    file_total = Decimal(str(total_row[earnings]))
    assert f"USD {file_total:,.2f}" == shown
    assert sum(Decimal(str(r[earnings])) for r in lines) == file_total


def test_finance_approves_with_step_up_and_the_creator_sees_it(app_server, browser: Browser):
    finance = browser.new_context(viewport=DESKTOP).new_page()
    finance.set_default_timeout(30_000)
    finance.goto(app_server.url)
    wait_for_app(finance, timeout=120_000)
    sign_in(finance, "finance")
    _open_earnings(finance)
    finance.get_by_text("Payout ledger").click()
    wait_for_app(finance)
    # The ledger opens on the latest month with lines waiting; choose the demo creator's line.
    [name] = _names(app_server.env, (1,))
    finance.get_by_role("combobox", name="Line", exact=True).click()
    finance.keyboard.type(name)
    finance.keyboard.press("Enter")
    wait_for_app(finance)
    step_up = finance.locator('[data-testid="stForm"]').filter(has_text="Confirm")
    step_up.get_by_role("textbox", name="Password").fill(DEMO_PASSWORD)
    step_up.get_by_label("6-digit code").fill(_fresh_code("finance"))
    step_up.get_by_role("button", name="Confirm").click()
    wait_for_app(finance)
    finance.get_by_text("Approve for payment").first.wait_for()
    finance.get_by_role("button", name="Record the decision").click()
    wait_for_app(finance)
    screenshot(finance, "payout-ledger-approved")
    security = Security(load_settings(env=app_server.env))
    [record] = security.audit.list(action="payout.approve", actor="finance", limit=1)
    assert record.details["creator_id"] == 1 and record.details["step_up"] is not None
    period = record.details["period"]
    finance.context.close()

    creator = browser.new_context(viewport=DESKTOP).new_page()
    creator.set_default_timeout(30_000)
    creator.goto(f"{app_server.url}/earnings?creator=1")
    wait_for_app(creator, timeout=60_000)
    sign_in(creator, "creator")
    creator.get_by_role("heading", name="💰 Earnings").wait_for()
    wait_for_app(creator)
    year, month, _ = (int(part) for part in period.split("-"))
    label = f"{calendar.month_name[month]} {year}: ✅ Approved for payment"
    creator.get_by_text(label).first.wait_for()
    screenshot(creator, "earnings-creator-sees-approval")
    creator.context.close()


def test_two_creators_at_once_see_only_their_own(app_server, browser: Browser):
    security = Security(load_settings(env=app_server.env))
    for name, ids in (("studio-a", [1]), ("studio-b", [2])):
        if security.users.get(name) is None:
            security.users.add(name, OTHER_PASSWORD, ["creator"], creator_ids=ids, actor="test")
    tabs = {}
    for name in ("studio-a", "studio-b"):
        tab = browser.new_context(viewport=DESKTOP).new_page()
        tab.set_default_timeout(60_000)
        tab.goto(app_server.url)
        wait_for_app(tab, timeout=120_000)
        sign_in(tab, name, OTHER_PASSWORD)
        tabs[name] = tab
    # Read once the app has built its extract (on the first visit of a fresh install).
    names = {"studio-a": _names(app_server.env, (1,)), "studio-b": _names(app_server.env, (2,))}
    # Both open Earnings at the same moment (same months, same cache), twice.
    texts: dict[str, list[str]] = {name: [] for name in tabs}
    totals: dict[str, set[str]] = {name: set() for name in tabs}
    chosen: dict[str, set[str]] = {name: set() for name in tabs}
    for _round in range(2):
        # Playwright's sync API is not thread-safe: start both navigations, then wait on each.
        for tab in tabs.values():
            tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Earnings").click(
                no_wait_after=True
            )
        for name, tab in tabs.items():
            tab.get_by_role("heading", name="💰 Earnings").wait_for()
            wait_for_app(tab)
            texts[name].append(tab.locator('[data-testid="stMain"]').inner_text())
            totals[name].add(_metric_value(tab, "Earnings in these months"))
            chosen[name].add(tab.get_by_role("combobox", name="Creator", exact=True).input_value())
            tab.locator('[data-testid="stSidebarNav"]').get_by_role(
                "link", name="My account"
            ).click()
            wait_for_app(tab)
    for name, seen in texts.items():
        other = names["studio-b" if name == "studio-a" else "studio-a"]
        for text in seen:
            assert not any(n in text for n in other), (name, other)
        [picked] = chosen[name]
        assert any(n in picked for n in names[name]) and not any(n in picked for n in other)
        assert len(totals[name]) == 1, totals
    assert totals["studio-a"] != totals["studio-b"]
    for tab in tabs.values():
        tab.context.close()
