"""An analyst in Chromium drags two fields onto the report's shelves, sees the table follow, and
downloads the formatted Excel workbook, read back with openpyxl."""

from __future__ import annotations

import io

import openpyxl
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import screenshot, sign_in, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def _drag(tab, board, label: str, shelf: str) -> None:
    """Drag a field onto a shelf with the mouse, in small steps (the component's pointer sensor
    starts a drag only after the pointer has moved)."""
    item = board.get_by_text(label, exact=True).first
    target = board.get_by_text(shelf, exact=True).first
    start = item.bounding_box()
    end = target.bounding_box()
    assert start and end
    tab.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    tab.mouse.down()
    for step in range(1, 16):
        tab.mouse.move(
            start["x"] + (end["x"] + 40 - start["x"]) * step / 15,
            start["y"] + (end["y"] + end["height"] + 12 - start["y"]) * step / 15,
        )
        tab.wait_for_timeout(30)
    tab.mouse.up()
    wait_for_app(tab)


def test_an_analyst_drags_fields_onto_shelves_and_downloads_excel(app_server, page):
    tab = page
    tab.goto(app_server.url)
    wait_for_app(tab, timeout=120_000)
    sign_in(tab, "analyst")
    tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Reports").click()
    tab.get_by_role("heading", name="📑 Reports").wait_for()
    wait_for_app(tab)
    frame_element = tab.locator('iframe[title*="sortable"]').first
    frame_element.wait_for()
    board = tab.frame_locator('iframe[title*="sortable"]').first
    board.get_by_text("Country", exact=True).first.wait_for()
    # The default report: Genre on rows; drag Country onto Rows and Device onto Columns.
    _drag(tab, board, "Device", "Columns")
    header = tab.locator('[data-testid="stDataFrame"]').last
    header.wait_for()
    screenshot(tab, "reports-builder-analyst")
    download = None
    for _ in range(2):
        try:
            with tab.expect_download(timeout=20_000) as info:
                tab.get_by_role("button", name="⬇️ Excel").first.click()
            download = info.value
            break
        except PlaywrightTimeout:
            wait_for_app(tab)
    assert download is not None, "the Excel button delivered no file"
    book = openpyxl.load_workbook(io.BytesIO(download.path().read_bytes()))
    assert "About" in book.sheetnames
    sheet = book[book.sheetnames[0]]
    header = [c.value for c in sheet[1]]
    assert header[0] == "Genre", header
    assert any("Views" in str(h) and "tv" in str(h).lower() for h in header), header
    assert sheet.freeze_panes == "A2" or sheet.freeze_panes is not None
    numbers = [c.value for c in sheet[2][1:]]
    assert all(isinstance(v, int | float) or v is None for v in numbers), numbers
