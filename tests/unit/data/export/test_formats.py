from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal

import openpyxl
import pandas as pd
import pytest

from data.export.formats import neutralise_text, to_csv_bytes, to_excel_bytes

HOSTILE = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
    # Leading whitespace of any kind, and full-width triggers (the hostile review's finding).
    " =1+1",
    "\u00a0=1+1",
    "\u3000=1+1",
    "\u200b=1+1",
    " \u00a0 \u200b @SUM(A1)",
    '\uff1dHYPERLINK("http://evil.example")',
    "\uff0b1",
    "  \uff20SUM(A1)",
]


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "title": [*HOSTILE, "Plain title", "<b>Bold</b> & 'quoted' 🎬"],
            "views": [1, -5, *range(3, len(HOSTILE) + 3)],
            "net": [Decimal("10.50"), Decimal("-3.25"), *(Decimal(i) for i in range(len(HOSTILE)))],
            "ratio": [0.5, -0.25, *(i / 10 for i in range(len(HOSTILE)))],
        }
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_formula_triggers_are_neutralised(text):
    assert neutralise_text(text).startswith("'")


def test_plain_text_is_unchanged():
    assert neutralise_text("Plain title") == "Plain title"
    assert neutralise_text("  leading spaces, then words") == "  leading spaces, then words"
    assert neutralise_text("\u00a0Café = good") == "\u00a0Café = good"
    assert neutralise_text("") == ""


def test_csv_read_back_by_the_csv_module_has_no_live_formula(frame):
    rows = list(csv.reader(io.StringIO(to_csv_bytes(frame).decode("utf-8-sig"), newline="")))
    assert rows[0] == ["title", "views", "net", "ratio"]
    titles = [r[0] for r in rows[1:]]
    assert all(t.startswith("'") for t in titles[: len(HOSTILE)])
    assert all(not t.startswith(("=", "+", "-", "@", "\t", "\r")) for t in titles)
    assert titles[-1] == "<b>Bold</b> & 'quoted' 🎬"
    assert len(rows) == len(frame) + 1, "a CR inside a title does not split its row"
    # Numbers, negative ones too, stay numbers.
    assert [r[1] for r in rows[1:3]] == ["1", "-5"]
    assert rows[2][2] == "-3.25"


def test_excel_read_back_by_openpyxl_keeps_text_as_text_and_numbers_as_numbers(frame):
    data = to_excel_bytes(frame, "Top titles")
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book["Top titles"]
    assert [c.value for c in sheet[1]] == ["title", "views", "net", "ratio"]
    for row_number, text in enumerate(HOSTILE, start=2):
        cell = sheet.cell(row=row_number, column=1)
        assert cell.value == text
        assert cell.data_type == "s", "a hostile title must be stored as a string, not a formula"
    assert sheet.cell(row=3, column=2).value == -5
    assert sheet.cell(row=2, column=3).value == pytest.approx(10.5)
    assert sheet.freeze_panes == "A2"
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml, "no cell in the workbook is a formula"


def test_excel_round_trips_through_pandas(frame):
    back = pd.read_excel(io.BytesIO(to_excel_bytes(frame)))
    assert back["title"].tolist() == frame["title"].tolist()
    assert back["views"].tolist() == frame["views"].tolist()


def test_sheet_names_from_warehouse_text_are_made_valid():
    """Excel refuses : \\ / ? * [ ] in a sheet name (a creator called "AC/DC Media" could not
    download a statement), and a name may not start or end with an apostrophe."""
    import io as _io

    import openpyxl as _openpyxl
    import pandas as _pd

    from data.export.formats import to_excel_bytes as _to_excel

    for title, expected in (
        ("Statement 2026-09 AC/DC Media", "Statement 2026-09 AC-DC Media"),
        ("[Why?] Studio: One*", "-Why-- Studio- One-"),
        ("=HYPERLINK(1)", "=HYPERLINK(1)"),
        ("", "Data"),
    ):
        book = _openpyxl.load_workbook(_io.BytesIO(_to_excel(_pd.DataFrame({"a": [1]}), title)))
        assert book.active.title == expected
