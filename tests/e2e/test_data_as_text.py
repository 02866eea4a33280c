"""Titles synced from the warehouse may hold HTML; the browser must show it as text
(SECURITY.md #3). The demo catalog has three such titles (data/demo.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]
HOSTILE = {
    "Bold": "<b>Bold</b> & Beautiful: \"Quotes\" 'n' More 🎬",
    "Jerry": "Tom & Jerry's <script>alert('x')</script> Show 🍿",
    "Noir": 'Café <i>Noir</i> — 100% "Unfiltered" & Live 🎤🔥',
}


def test_titles_holding_html_are_shown_as_text(app_server, page):
    page.goto(app_server.url)
    wait_for_app(page)
    sign_in(page, "analyst")
    page.goto(f"{app_server.url}/compare?preset=year_to_date")
    wait_for_app(page)
    picker = page.get_by_role("combobox", name="Titles to compare", exact=False)
    for search, title in HOSTILE.items():
        picker.click()
        picker.fill(search)
        page.get_by_role("option", name=title).click()
        wait_for_app(page)
    page.keyboard.press("Escape")
    page.locator(".js-plotly-plot .main-svg").first.wait_for()
    wait_for_app(page)
    for title in HOSTILE.values():
        # The chips of the picker and the chart labels carry the literal text, tags included.
        expect(page.get_by_text(title, exact=True).first).to_be_visible()
    injected = page.evaluate(
        """() => ({
            bold: [...document.querySelectorAll('b, strong')].filter(e => e.textContent.trim() === 'Bold').length,
            italic: [...document.querySelectorAll('i, em')].filter(e => e.textContent.trim() === 'Noir').length,
            script: [...document.querySelectorAll('script')].filter(e => e.textContent.includes("alert('x')")).length,
        })"""
    )
    assert injected == {"bold": 0, "italic": 0, "script": 0}
    assert page.locator(".js-plotly-plot text", has_text="<b>Bold</b>").count() >= 1, (
        "chart labels show the tags as text"
    )
    screenshot(page, "security-titles-as-text")
