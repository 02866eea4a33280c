"""A real spreadsheet program reads the exports: LibreOffice Calc (headless) opens an exported
workbook and CSV files and writes them back out as CSV, and the values survive -- text as the
same text (never run as a formula), numbers as the same numbers, dates as dates.

Needs ``soffice`` (Debian's libreoffice-calc-nogui, which scripts/test.sh installs). Without it
the tests are skipped with the reason -- except in CI (``CI=true``), where they fail instead,
so a missing program cannot pass unnoticed. Each test run uses a private LibreOffice profile.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from data.export.formats import neutralise_text
from data.export.streaming import ColumnFormat, SheetSpec, frame_batches, write_csv, write_xlsx
from data.queries.filters import Filters, Scope
from data.queries.metrics import data_bounds
from data.queries.reports import about_entries, parse_report, run_report

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
if SOFFICE is None:
    if IN_CI:
        pytest.fail(
            "LibreOffice (soffice) is missing in CI: scripts/test.sh installs "
            "libreoffice-calc-nogui; the spreadsheet tests must run there.",
            pytrace=False,
        )
    pytest.skip(
        "LibreOffice (soffice) is not installed: `apt-get install libreoffice-calc-nogui` "
        "(scripts/test.sh does) to run the spreadsheet round trips.",
        allow_module_level=True,
    )

# Calc's CSV filter options: separator, quote (34 = "), charset (76 = UTF-8), first line, column
# formats, language (1033 en-US, 1031 de-DE: decimal comma), then for export: quote all text
# (no), detect special numbers, cell contents as shown (no: raw values), formulas (no), trim
# (no), sheet (-1: every sheet, one file each).
EXPORT = "csv:Text - txt - csv (StarCalc):44,34,76,1,,1033,false,true,false,false,false,-1"
IMPORT_COMMA = "CSV:44,34,76,1,,1033"
IMPORT_SEMICOLON = "CSV:59,34,76,1,,1031"

HOSTILE = [
    '=HYPERLINK("http://evil.example","x")',
    "=1+1",
    "@SUM(1)",
    "-2+3",
    "+1+1",
    "\uff1d1+1",
    "\t=1+1",
]
PLAIN = ["Plain, with a comma", "Ünïcödé ☃ 名前", 'say "hi"', "line\nbreak", "v1.2 release."]


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lo-profile")


def convert(profile: Path, source: Path, out: Path, infilter: str | None = None) -> dict[str, list]:
    """Open ``source`` in LibreOffice and save every sheet as CSV; rows per sheet name."""
    out.mkdir()
    command = [
        SOFFICE,
        f"-env:UserInstallation={profile.as_uri()}",
        "--headless",
        "--norestore",
        *([f"--infilter={infilter}"] if infilter else []),
        "--convert-to",
        EXPORT,
        "--outdir",
        str(out),
        str(source),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    files = sorted(out.glob("*.csv"))
    assert done.returncode == 0 and files, f"soffice failed: {done.stdout}\n{done.stderr}"
    sheets = {}
    for file in files:
        name = file.stem.split("-", 1)[1] if "-" in file.stem else file.stem
        with open(file, encoding="utf-8", newline="") as fh:
            sheets[name] = list(csv.reader(fh))
    return sheets


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    texts = HOSTILE + PLAIN
    n = len(texts)
    return pd.DataFrame(
        {
            "Title": pd.Series(texts, dtype=object),
            "Day": [date(2026, 2, 1 + i) for i in range(n)],
            "Views": [1, -5, 1_234_567, *range(4, n + 1)],
            "Watch hours": [0.5, -2.25, math.nan, 1 / 3, 1e-5, *(i * 1.125 for i in range(5, n))],
            "Completion rate": [0.125, 1 / 7, *(i / n for i in range(2, n))],
            "Net revenue (USD)": [1234.5, -3.25, 0.1, *(i * 10.01 for i in range(3, n))],
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


def number(text: str) -> float:
    if text == "":
        return math.nan
    if text.endswith("%"):
        return float(text[:-1]) / 100
    return float(text)


def assert_values(rows: list[list[str]], frame: pd.DataFrame, text_of) -> None:
    assert rows[0] == list(frame.columns)
    assert len(rows) == len(frame) + 1
    for got, (_, want) in zip(rows[1:], frame.iterrows(), strict=True):
        assert got[0] == text_of(want["Title"]), "text survives as the same text, not run"
        assert got[1] == want["Day"].isoformat()
        assert number(got[2]) == want["Views"]
        for i in (3, 4, 5):
            expected = want.iloc[i]
            if math.isnan(expected):
                assert got[i] == ""
            else:
                # Calc writes 15 significant digits.
                assert number(got[i]) == pytest.approx(expected, rel=1e-13, abs=1e-15)


def test_libreoffice_reads_the_workbook(profile, frame, tmp_path):
    path = tmp_path / "report.xlsx"
    about = [("Exported by", "=analyst"), ("Filter: Country", "DE, FR")]
    write_xlsx(
        [
            SheetSpec("Report", frame_batches(frame, 5), COLUMNS),
            SheetSpec("Second", frame.iloc[:3]),
        ],
        path,
        about=about,
    )
    sheets = convert(profile, path, tmp_path / "out")
    assert set(sheets) == {"Report", "Second", "About"}
    # Text cells are text in Calc: "=1+1" comes back as "=1+1", not 2.
    assert_values(sheets["Report"], frame, lambda text: text)
    assert sheets["Second"][1][0] == HOSTILE[0] and number(sheets["Second"][2][2]) == -5
    assert sheets["About"][1:] == [list(line) for line in about]


@pytest.mark.parametrize(
    ("delimiter", "infilter"),
    [(",", IMPORT_COMMA), (";", IMPORT_SEMICOLON)],
    ids=["comma", "semicolon-de"],
)
def test_libreoffice_reads_the_csv(profile, frame, tmp_path, delimiter, infilter):
    """The ';' file is opened as Excel and Calc open it in a comma-decimal locale (German):
    its decimal commas are read as numbers."""
    path = tmp_path / "report.csv"
    write_csv(frame_batches(frame, 4), path, delimiter=delimiter)
    (rows,) = convert(profile, path, tmp_path / "out", infilter).values()
    # The neutralising quote keeps every formula-looking text as text.
    assert_values(rows, frame, neutralise_text)


def test_libreoffice_reads_a_report_export(profile, demo_store, tmp_path):
    cursor = demo_store.cursor()
    filters = Filters.for_preset("last_90_days", data_bounds(cursor)[1])
    d = parse_report(
        {
            "version": 1,
            "rows": ["country", "period"],
            "grain": "month",
            "values": ["views", "completion_rate", "net_revenue"],
            "top_n": 3,
            "subtotals": True,
        }
    )
    scope = Scope.everything()
    result = run_report(cursor, d, filters, scope, can_see_money=True)
    path = tmp_path / "countries.xlsx"
    about = about_entries(result, scope=scope, exported_by="analyst", synced_at=None)
    write_xlsx([SheetSpec("Countries", result.frame, result.columns_meta)], path, about=about)
    sheets = convert(profile, path, tmp_path / "out")
    rows = sheets["Countries"]
    assert rows[0] == list(result.frame.columns)
    for got, (_, want) in zip(rows[1:], result.frame.iterrows(), strict=True):
        assert got[0] == want["Country"]
        month = want["Month"]
        assert got[1] == (month.isoformat() if isinstance(month, date) else month)
        for text, meta in zip(got[2:], result.columns_meta[2:], strict=True):
            expected = want[meta.name]
            if math.isnan(expected):
                assert text == ""
            else:
                assert number(text) == pytest.approx(expected, rel=1e-13, abs=1e-12)
    assert any(line[0] == "Definition (JSON)" for line in sheets["About"])
