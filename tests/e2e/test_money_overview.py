"""The Overview as a money role in Chromium: money with its currency code, net revenue by
original currency beneath the KPIs; screenshots at desktop and phone width, and axe-core."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.e2e.conftest import DESKTOP, PHONE, screenshot, sign_in, wait_for_app

pytestmark = pytest.mark.e2e


def test_money_is_shown_with_its_currency_and_by_original_currency(app_server, page):
    tab = page
    tab.goto(app_server.url)
    wait_for_app(tab, timeout=120_000)
    sign_in(tab, "finance")
    card = tab.locator('[data-testid="stMetric"]').filter(has_text="Net revenue")
    value = card.locator('[data-testid="stMetricValue"]').first.inner_text()
    assert value.startswith("USD ") and "$" not in value, value
    expander = tab.get_by_text("Net revenue by currency, and in USD")
    expander.click()
    table = tab.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    for size, name in ((DESKTOP, "desktop"), (PHONE, "phone")):
        tab.set_viewport_size(size)
        wait_for_app(tab)
        screenshot(tab, f"overview-money-finance-{name}")
    tab.set_viewport_size(DESKTOP)
    results = Axe().run(tab)
    serious = [
        (v["id"], [n["html"][:120] for n in v["nodes"][:3]])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
        # st.metric's empty sparkline hover group (see tests/e2e/test_dashboards.py).
        and not all("highlighted_points_marks" in n.get("html", "") for n in v["nodes"])
    ]
    assert not serious, serious
