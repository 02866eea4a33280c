"""A marketer in Chromium builds a two-condition segment, watches its size change, saves it,
reloads the page and finds it among the saved segments."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def _size(tab) -> int:
    card = tab.locator('[data-testid="stMetric"]').filter(has_text="Viewers in the segment").first
    card.wait_for()
    return int(card.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))


def _add(tab, label: str) -> None:
    box = tab.get_by_role("combobox", name="Add a condition", exact=True)
    box.click()
    box.fill(label)
    tab.get_by_role("option", name=label, exact=True).click()
    wait_for_app(tab)
    tab.get_by_role("button", name="➕ Add", exact=True).click()
    wait_for_app(tab)


def test_a_marketer_builds_saves_and_finds_a_segment(app_server, page):
    tab = page
    tab.goto(app_server.url)
    wait_for_app(tab, timeout=120_000)
    sign_in(tab, "marketer")
    tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Segments").click()
    tab.get_by_role("heading", name="🎯 Segments").wait_for()
    wait_for_app(tab)
    _add(tab, "Started a subscription")
    first = _size(tab)
    _add(tab, "Watched hours")
    second = _size(tab)
    assert 0 <= second <= first and second != first, (first, second)
    screenshot(tab, "segments-builder-marketer")
    form = tab.locator('[data-testid="stForm"]').filter(has_text="Save")
    form.get_by_role("textbox", name="Name").fill("E2E audience")
    form.get_by_role("button", name="Save the segment").click()
    wait_for_app(tab)
    tab.get_by_text("Editing", exact=False).first.wait_for()

    tab.goto(f"{app_server.url}/segments")
    wait_for_app(tab, timeout=60_000)
    tab.get_by_text("Saved segments").click()
    wait_for_app(tab)
    picked = tab.get_by_role("combobox", name="Segment", exact=True).input_value()
    assert picked.startswith("E2E audience"), picked
    assert _size_now(tab) == second
    screenshot(tab, "segments-saved-marketer")


def _size_now(tab) -> int:
    card = tab.locator('[data-testid="stMetric"]').filter(has_text="Viewers now").first
    return int(card.locator('[data-testid="stMetricValue"]').inner_text().replace(",", ""))
