"""On a phone the page, not the menu, comes first: after signing in the sidebar is closed."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import PHONE, screenshot, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_the_sidebar_starts_closed_on_a_phone(app_server, browser):
    tab = browser.new_context(viewport=PHONE).new_page()
    tab.set_default_timeout(30_000)
    tab.goto(app_server.url)
    wait_for_app(tab, timeout=120_000)
    tab.get_by_label("Username").fill("manager")
    tab.get_by_role("textbox", name="Password").fill("spotlight-demo")
    tab.get_by_role("button", name="Sign in").click()
    tab.get_by_role("heading", name="📊 Overview").wait_for()
    wait_for_app(tab)
    sidebar = tab.locator('[data-testid="stSidebar"]')
    assert sidebar.get_attribute("data-collapsed") == "true"
    menu = sidebar.bounding_box()
    assert menu is not None and menu["x"] + menu["width"] <= 0, "the menu is off screen"
    box = tab.locator('[data-testid="stMain"]').bounding_box()
    assert box is not None and box["x"] < 20, (
        "the page starts at the left edge, not behind the menu"
    )
    # The KPI cards go two to a row, so the first chart starts within two screen heights.
    cards = tab.locator('[data-testid="stMetric"]')
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert first and second and abs(first["y"] - second["y"]) < 2, "two cards to a row"
    assert second["x"] > first["x"] + first["width"] - 1
    chart = tab.locator('[data-testid="stPlotlyChart"]').first.bounding_box()
    assert chart is not None and chart["y"] < 2 * PHONE["height"], chart
    screenshot(tab, "overview-phone-after-sign-in")
    tab.context.close()
