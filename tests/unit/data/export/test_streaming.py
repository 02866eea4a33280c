"""Streamed CSV and Excel exports: every file is read back (csv module, openpyxl, the sheet XML)
and compared with the frames it was written from; formulas are neutralised, numbers stay
numbers, memory stays bounded and temp files are removed."""

from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
import tempfile
import tracemalloc
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import pandas as pd
import pytest

from data.export import streaming as S
from data.export.formats import neutralise_text
from data.export.streaming import (
    ColumnFormat,
    RowLimitExceeded,
    SheetSpec,
    batches_from_query,
    export_to_temp,
    frame_batches,
    write_csv,
    write_xlsx,
)

HOSTILE = [
    '=HYPERLINK("x")',
    '=HYPERLINK("http://evil.example","click")',
    "@SUM(1)",
    "\t=1+1",
    "\r=1+1",
    "-2+3",
    "+1+1",
    "\uff1d1+1",  # full-width ＝
    " =1+1",
    "\u00a0@SUM(A1)",
    "\u200b=1+1",
]
PLAIN = [
    "Plain title",
    "<b>Bold</b> & 'quoted' \"twice\" 🎬",
    "line one\nline two",
    "semi;colon, comma",
    "v1.2 release.",
    "",
]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@pytest.fixture
def frame() -> pd.DataFrame:
    texts = HOSTILE + PLAIN
    n = len(texts)
    return pd.DataFrame(
        {
            "Title": pd.Series(texts, dtype=object),
            "Day": [date(2026, 1, 1 + i) for i in range(n)],
            "Views": [1, -5, *range(3, n + 1)],
            "Watch hours": [0.5, -2.25, math.nan, *(i / 7 for i in range(3, n))],
            "Completion rate": [0.125, *(i / n for i in range(1, n))],
            "Net revenue (USD)": [1234.5, -3.25, *(i * 10.01 for i in range(2, n))],
        }
    )


COLUMNS = [
    ColumnFormat("Title", "text"),
    ColumnFormat("Day", "date"),
    ColumnFormat("Views", "integer"),
    ColumnFormat("Watch hours", "decimal"),
    ColumnFormat("Completion rate", "percent"),
    ColumnFormat("Net revenue (USD)", "money", "USD"),
]


def _read_csv(path, delimiter=",") -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh, delimiter=delimiter))


def _number(text: str, decimal: str = ".") -> float:
    return math.nan if text == "" else float(text.replace(decimal, "."))


# --- CSV ------------------------------------------------------------------------------------------
def test_csv_read_back_equals_the_frames(tmp_path, frame):
    path = tmp_path / "out.csv"
    # Three batches of different sizes, one empty: the file is the frame, in order.
    batches = [frame.iloc[:4], frame.iloc[4:4], frame.iloc[4:11], frame.iloc[11:]]
    assert write_csv(batches, path) == len(frame)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "a byte-order mark, so Excel reads UTF-8"
    rows = _read_csv(path)
    assert rows[0] == list(frame.columns)
    assert len(rows) == len(frame) + 1, "a CR or LF inside a text never splits a record"
    for row, (_, source) in zip(rows[1:], frame.iterrows(), strict=True):
        assert row[0] == neutralise_text(source["Title"])
        assert row[1] == source["Day"].isoformat()
        assert int(row[2]) == source["Views"]
        for col in (3, 4, 5):
            expected = source.iloc[col]
            got = _number(row[col])
            assert (math.isnan(got) and math.isnan(expected)) or got == expected
    # RFC 4180: CRLF after every record; the quoted LF inside a field is the only bare LF.
    assert raw.count(b"\r\n") == len(frame) + 1
    assert raw.endswith(b"\r\n")


def test_csv_neutralises_formulas_and_keeps_negative_numbers(tmp_path, frame):
    path = tmp_path / "out.csv"
    write_csv(frame, path, bom=False)
    assert not path.read_bytes().startswith(b"\xef\xbb\xbf")
    rows = _read_csv(path)
    titles = [r[0] for r in rows[1:]]
    for text in titles[: len(HOSTILE)]:
        assert text.startswith("'"), text
    assert all(not t.startswith(FORMULA_START) for t in titles)
    assert titles[len(HOSTILE) :] == PLAIN, "plain text is unchanged"
    # Real negative numbers stay numbers (no quote prefix), and "-2+3" as text is neutralised.
    assert rows[2][2] == "-5"
    assert rows[2][3] == "-2.25"
    assert rows[2][5] == "-3.25"
    assert "'-2+3" in titles
    # Missing numbers are empty fields, never "nan".
    assert rows[3][3] == ""
    assert "nan" not in path.read_text(encoding="utf-8").lower().split(",")


def test_csv_headers_are_neutralised_too(tmp_path):
    path = tmp_path / "h.csv"
    write_csv(pd.DataFrame({"=cmd()": [1], "ok": ["x"]}), path)
    assert _read_csv(path)[0] == ["'=cmd()", "ok"]


def test_csv_semicolon_writes_decimal_commas(tmp_path, frame):
    path = tmp_path / "de.csv"
    extra = frame.assign(
        Money=[Decimal("10.50"), Decimal("-3.25"), *(Decimal(i) / 4 for i in range(2, len(frame)))],
        Note="a.b;c",
    )
    write_csv(frame_batches(extra, 5), path, delimiter=";")
    text = path.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
    assert rows[0] == [*frame.columns, "Money", "Note"]
    first, second = rows[1], rows[2]
    assert first[3] == "0,5" and first[4] == "0,125" and first[5] == "1234,5"
    assert second[2] == "-5" and second[3] == "-2,25" and second[5] == "-3,25"
    assert first[6] == "10,50" and second[6] == "-3,25"
    # Dots in text stay dots; a ';' in text is quoted; dates keep their dashes.
    assert all(r[7] == "a.b;c" for r in rows[1:])
    assert '"a.b;c"' in text
    assert "v1.2 release." in [r[0] for r in rows[1:]]
    assert first[1] == "2026-01-01"
    for row, (_, source) in zip(rows[1:], extra.iterrows(), strict=True):
        for col in (3, 4, 5):
            got, expected = _number(row[col], ","), source.iloc[col]
            assert (math.isnan(got) and math.isnan(expected)) or got == expected
            assert "." not in row[col]


def test_csv_columns_select_and_order(tmp_path, frame):
    path = tmp_path / "sel.csv"
    write_csv(frame, path, columns=["Views", "Title"])
    rows = _read_csv(path)
    assert rows[0] == ["Views", "Title"]
    assert rows[2] == ["-5", neutralise_text(HOSTILE[1])]
    empty = tmp_path / "empty.csv"
    assert write_csv([], empty, columns=COLUMNS) == 0
    assert _read_csv(empty) == [[c.name for c in COLUMNS]]


def test_csv_non_finite_numbers_and_odd_types(tmp_path):
    path = tmp_path / "odd.csv"
    odd = pd.DataFrame(
        {
            "f": [math.inf, -math.inf, math.nan, 1.5],
            "i": pd.array([1, None, -3, 4], dtype="Int64"),
            "s": pd.array(["x", None, "=1", "y"], dtype="string"),
            "c": pd.Categorical(["@a", "b", "@a", None]),
            "t": pd.to_datetime(["2026-01-01 10:30", None, "2026-02-01 00:00", "2026-03-01 00:00"]),
            "b": [True, False, True, False],
            "nul": ["a\x00b", "ok", "x.y", None],
        }
    )
    write_csv(odd, path)
    rows = _read_csv(path)
    assert [r[0] for r in rows[1:]] == ["", "", "", "1.5"]
    assert [r[1] for r in rows[1:]] == ["1", "", "-3", "4"]
    assert [r[2] for r in rows[1:]] == ["x", "", "'=1", "y"]
    assert [r[3] for r in rows[1:]] == ["'@a", "b", "'@a", ""]
    assert rows[1][4].startswith("2026-01-01 10:30") and rows[2][4] == ""
    assert [r[5] for r in rows[1:]] == ["True", "False", "True", "False"]
    assert rows[1][6] == "a\ufffdb"


def test_csv_row_cap_refuses_and_removes_the_partial_file(tmp_path, frame):
    path = tmp_path / "cap.csv"
    seen: list[int] = []
    with pytest.raises(RowLimitExceeded):
        write_csv(frame_batches(frame, 5), path, max_rows=9, progress=seen.append)
    assert not path.exists()
    assert seen == [5]
    assert write_csv(frame_batches(frame, 5), path, max_rows=len(frame), progress=seen.append)
    assert seen[-1] == len(frame)


def test_csv_bounded_memory_for_a_million_rows(tmp_path):
    """1M rows streamed in 50k-row batches: the peak traced memory is a few batches, not the
    file (which is tens of megabytes)."""
    path = tmp_path / "big.csv"
    labels = np.array([f"Creator {i}" for i in range(200)], dtype=object)

    def batches():
        rng = np.random.default_rng(3)
        for start in range(0, 1_000_000, 50_000):
            # Two columns keep the run short: tracemalloc slows every allocation about 5x.
            yield pd.DataFrame(
                {
                    "Row": np.arange(start, start + 50_000),
                    "Creator": labels[rng.integers(0, 200, 50_000)],
                }
            )

    tracemalloc.start()
    try:
        written = write_csv(batches(), path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == 1_000_000
    size = path.stat().st_size
    assert size > 15_000_000
    assert peak < 25_000_000, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"
    print(f"csv: peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file")
    # Every record, counted by its line end (no text here holds a line break), and the last.
    with open(path, "rb") as fh:
        records = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
        fh.seek(-200, os.SEEK_END)
        last = fh.read().rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1].decode()
    assert records == 1_000_001
    assert last.split(",")[0] == "999999"


# --- Excel ----------------------------------------------------------------------------------------
def _sheet_xml(path, number: int = 1) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(f"xl/worksheets/sheet{number}.xml").decode("utf-8")


def _no_formula(xml: str) -> None:
    assert "<f>" not in xml and not re.search(r"<f[\s>/]", xml), "a formula element in the sheet"


def test_xlsx_read_back_equals_the_frames(tmp_path, frame):
    path = tmp_path / "out.xlsx"
    about = [("Exported by", "=alice"), ("Filter: Country", "DE, FR"), ("Data synced at", "x")]
    counts = write_xlsx([SheetSpec("Report", frame_batches(frame, 4), COLUMNS)], path, about=about)
    assert counts == (len(frame),)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Report", "About"]
    sheet = book["Report"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == [c.name for c in COLUMNS]
    assert len(rows) == len(frame) + 1
    for got, (_, source) in zip(rows[1:], frame.iterrows(), strict=True):
        assert got[0] == source["Title"], "text comes back exactly (an empty text too)"
        assert got[1] == datetime.combine(source["Day"], datetime.min.time())
        assert got[2] == source["Views"]
        for col in (3, 4, 5):
            expected = source.iloc[col]
            if math.isnan(expected):
                assert got[col] is None
            else:
                assert got[col] == expected
    # Text is stored as text -- hostile or not -- and numbers as numbers.
    for r, text in enumerate(HOSTILE, start=2):
        cell = sheet.cell(row=r, column=1)
        assert cell.data_type == "s" and cell.value == text
    assert sheet.cell(row=3, column=3).value == -5
    assert sheet.cell(row=3, column=3).data_type == "n"
    # Formats, header, panes, filter, widths.
    assert [sheet.cell(row=2, column=i).number_format for i in range(1, 7)] == [
        "@",
        "yyyy-mm-dd",
        "#,##0",
        "#,##0.00",
        "0.0%",
        '#,##0.00 "USD"',
    ]
    header = sheet.cell(row=1, column=1)
    assert header.font.bold and header.fill.fgColor.rgb.endswith("DCE6F1")
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:F{len(frame) + 1}"
    assert sheet.column_dimensions["A"].width >= len('=HYPERLINK("http://evil.example","click")')
    assert 8 <= sheet.column_dimensions["C"].width <= 60
    info = book["About"]
    lines = [tuple(r) for r in info.iter_rows(values_only=True)]
    assert lines[0][0] == "About"
    assert lines[1:] == about
    assert info.cell(row=2, column=2).data_type == "s"
    for number in (1, 2):
        _no_formula(_sheet_xml(path, number))


def test_xlsx_sheet_xml_holds_strings_not_formulas(tmp_path):
    path = tmp_path / "x.xlsx"
    hostile = pd.DataFrame({"t": [*HOSTILE, "#N/A", "#REF!"], "n": range(len(HOSTILE) + 2)})
    write_xlsx([SheetSpec("Data", hostile)], path)
    xml = _sheet_xml(path)
    _no_formula(xml)
    assert xml.count('t="inlineStr"') == len(hostile) + 2  # + the two headers
    assert 't="e"' not in xml, "an error code as text is still text"
    book = openpyxl.load_workbook(path)
    values = [r[0] for r in book["Data"].iter_rows(min_row=2, values_only=True)]
    assert values == [*HOSTILE, "#N/A", "#REF!"], "leading tab and CR survive"


def test_xlsx_several_sheets_default_columns_and_odd_values(tmp_path, frame):
    path = tmp_path / "multi.xlsx"
    odd = pd.DataFrame(
        {
            "f": [math.inf, math.nan, 2.5],
            "i": pd.array([1, None, 3], dtype="Int64"),
            "s": pd.array(["a\x01b", None, "x" * 40_000], dtype="string"),
            "t": pd.to_datetime(["2026-01-01 12:00", None, "2026-02-01 00:00"]),
            "b": [True, False, True],
            "d": [Decimal("1.10"), None, Decimal("-2")],
        }
    )
    counts = write_xlsx(
        [
            SheetSpec("Top titles: [all]", frame),
            SheetSpec("top titles: [all]", odd),
            SheetSpec("Empty", [], COLUMNS),
        ],
        path,
    )
    assert counts == (len(frame), 3, 0)
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Top titles- -all-", "top titles- -all- (2)", "Empty"]
    rows = list(book.worksheets[1].iter_rows(min_row=2, values_only=True))
    assert rows[0][0] is None and rows[1][0] is None and rows[2][0] == 2.5
    assert [r[1] for r in rows] == [1, None, 3]
    assert rows[0][2] == "a\ufffdb" and rows[1][2] is None
    assert len(rows[2][2]) == S.EXCEL_MAX_CELL_CHARS
    assert rows[0][3] == datetime(2026, 1, 1, 12, 0) and rows[1][3] is None
    assert [r[4] for r in rows] == [True, False, True]
    assert rows[0][5] == pytest.approx(1.1) and rows[2][5] == -2
    # Inferred kinds: floats decimal, ints integer, datetimes with a time.
    sheet = book.worksheets[1]
    assert sheet.cell(row=4, column=1).number_format == "#,##0.00"
    assert sheet.cell(row=2, column=4).number_format == "yyyy-mm-dd hh:mm"
    assert [c.value for c in book["Empty"][1]] == [c.name for c in COLUMNS]
    assert book["Empty"].max_row == 1
    for number in (1, 2, 3):
        _no_formula(_sheet_xml(path, number))


def test_xlsx_continues_on_a_new_sheet_past_the_row_limit(tmp_path, frame, monkeypatch):
    monkeypatch.setattr(S, "EXCEL_MAX_ROWS", 6)  # 5 data rows a sheet
    path = tmp_path / "long.xlsx"
    assert write_xlsx([SheetSpec("Data", frame_batches(frame, 3), COLUMNS)], path) == (len(frame),)
    book = openpyxl.load_workbook(path)
    parts = math.ceil(len(frame) / 5)
    assert book.sheetnames == ["Data", *[f"Data ({n})" for n in range(2, parts + 1)]]
    titles = [
        r[0] for sheet in book.worksheets for r in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert titles == list(frame["Title"])
    assert all(s.cell(row=1, column=1).value == "Title" for s in book.worksheets)
    assert book.worksheets[0].auto_filter.ref == "A1:F6"


def test_xlsx_row_cap_refuses_and_leaves_nothing(tmp_path, frame):
    path = tmp_path / "cap.xlsx"
    with pytest.raises(RowLimitExceeded):
        write_xlsx([SheetSpec("Data", frame_batches(frame, 4))], path, max_rows=7)
    assert list(tmp_path.iterdir()) == [], "no partial workbook, no scratch XML"


def test_xlsx_bounded_memory(tmp_path):
    """100k rows in 10k-row batches: the traced peak is a few batches, far below the data."""
    path = tmp_path / "big.xlsx"
    labels = np.array([f"Country {i}" for i in range(50)], dtype=object)

    def batches():
        rng = np.random.default_rng(5)
        for start in range(0, 100_000, 10_000):
            yield pd.DataFrame(
                {
                    "Row": np.arange(start, start + 10_000),
                    "Country": labels[rng.integers(0, 50, 10_000)],
                    "Views": rng.random(10_000),
                }
            )

    tracemalloc.start()
    try:
        assert write_xlsx([SheetSpec("Data", batches())], path) == (100_000,)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with zipfile.ZipFile(path) as z:
        size = z.getinfo("xl/worksheets/sheet1.xml").file_size
    assert size > 8_000_000
    assert peak < 20_000_000, f"peak {peak / 1e6:.1f} MB for {size / 1e6:.0f} MB of sheet XML"
    print(f"xlsx: peak {peak / 1e6:.1f} MB for {size / 1e6:.0f} MB of sheet XML")
    book = openpyxl.load_workbook(path, read_only=True)
    last = None
    for last in book["Data"].iter_rows(min_row=100_001, values_only=True):  # noqa: B007
        pass
    assert last is not None and last[0] == 99_999


# --- temp files and batches -----------------------------------------------------------------------
def test_export_to_temp_is_private_and_removed_after_hand_over(tmp_path, frame):
    export = export_to_temp(
        lambda p: write_xlsx([SheetSpec("Data", frame)], p), suffix=".xlsx", base_dir=tmp_path
    )
    folder = export.directory
    assert folder.parent == tmp_path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(export.path.stat().st_mode) == 0o600
    assert export.result == (len(frame),)
    assert sorted(p.name for p in folder.iterdir()) == ["export.xlsx"], "no scratch left"
    data = export.hand_over()
    assert data.startswith(b"PK")
    assert export.removed and not folder.exists()
    export.cleanup()  # idempotent


def test_export_to_temp_removes_everything_when_the_writer_fails(tmp_path):
    def failing(path):
        path.write_text("half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        export_to_temp(failing, suffix=".csv", base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with export_to_temp(lambda p: write_csv(pd.DataFrame({"a": [1]}), p), suffix=".csv") as e:
        assert e.read_bytes().endswith(b"a\r\n1\r\n")
        folder = e.directory
    assert not folder.exists(), "the context manager removes it too"
    with pytest.raises(ValueError):
        export_to_temp(lambda p: 0, suffix="../x")


def test_export_to_temp_is_removed_when_forgotten(tmp_path):
    export = export_to_temp(lambda p: p.write_bytes(b"x"), suffix=".csv", base_dir=tmp_path)
    folder = export.directory
    del export
    import gc

    gc.collect()
    assert not folder.exists()


def test_batches_from_query_reads_in_batches():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT range AS id, 'n' || range AS name, range / 4 AS x FROM range(250)"
    )
    batches = list(
        batches_from_query(con, "SELECT * FROM t WHERE id >= ? ORDER BY id", [10], batch_rows=100)
    )
    assert [len(b) for b in batches] == [100, 100, 40]
    whole = pd.concat(batches, ignore_index=True)
    expected = con.execute("SELECT * FROM t WHERE id >= 10 ORDER BY id").df()
    pd.testing.assert_frame_equal(whole, expected, check_dtype=False)
    with pytest.raises(ValueError):
        next(batches_from_query(con, "SELECT 1", batch_rows=0))


def test_export_folder_default_is_the_system_temp(frame):
    export = export_to_temp(lambda p: write_csv(frame, p), suffix=".csv", name="top titles")
    try:
        assert export.directory.parent == Path(tempfile.gettempdir())
        assert export.path.name == "top-titles.csv"
        assert export.result == len(frame)
    finally:
        export.cleanup()
    assert export.removed
