"""CSV and Excel files made safe to open in a spreadsheet (SECURITY.md #10).

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in some, a tab or
carriage return) as a formula, so a title named ``=HYPERLINK(...)`` synced from the warehouse
could run in an analyst's Excel. Following OWASP's CSV-injection guidance, such text cells are
prefixed with a single quote in CSV; in Excel every text cell is written with the string data
type, so it is never parsed as a formula. Numbers stay numbers in both (a negative number is not
text and is left alone).
"""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Full-width and small forms a spreadsheet may fold to their ASCII trigger (CJK input, imports
# with width conversion): ＝ ＋ － ＠ and ﹢ ﹣ ﹦.
_WIDE_TRIGGERS = ("\uff1d", "\uff0b", "\uff0d", "\uff20", "\ufe62", "\ufe63", "\ufe66")
# Characters a spreadsheet may skip before reading a formula: every Unicode space (NBSP, the
# ideographic space ...) plus the zero-width ones, which str.isspace() does not count.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_SHEET_FORBIDDEN = frozenset(":\\/?*[]")


def _looks_like_formula(value: str) -> bool:
    if value.startswith(FORMULA_TRIGGERS):
        return True
    stripped = value.lstrip()
    while stripped and stripped[0] in _INVISIBLE:
        stripped = stripped[1:].lstrip()
    return stripped.startswith(FORMULA_TRIGGERS + _WIDE_TRIGGERS)


def neutralise_text(value: str) -> str:
    """The text, prefixed with ``'`` when a spreadsheet could read it as a formula: it starts
    with a trigger, after any leading whitespace of any kind (a space, NBSP, a zero-width
    space ...), or with a full-width trigger such as ``＝``."""
    return "'" + value if _looks_like_formula(value) else value


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(
                lambda v: neutralise_text(v) if isinstance(v, str) else v
            )
    safe.columns = [neutralise_text(str(c)) for c in safe.columns]
    return safe


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """RFC 4180 CSV in UTF-8 (with a byte-order mark, so Excel detects it) with text neutralised.

    CRLF line ends make the writer quote any field holding a lone CR or LF, so such text cannot
    split a row.
    """
    return _safe_frame(frame).to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")


def to_excel_bytes(frame: pd.DataFrame, sheet_title: str = "Data") -> bytes:
    """A formatted .xlsx: bold frozen header, sized columns, numbers as numbers, text as text."""
    workbook = Workbook()
    sheet = workbook.active
    # Excel refuses : \ / ? * [ ] in a sheet's name; titles can hold warehouse names.
    safe_title = "".join("-" if ch in _SHEET_FORBIDDEN else ch for ch in sheet_title)
    sheet.title = neutralise_text(safe_title).strip("'")[:31].strip() or "Data"
    header_fill = PatternFill("solid", fgColor="DCE6F1")
    for col_index, name in enumerate(frame.columns, start=1):
        cell = sheet.cell(row=1, column=col_index)
        cell.value = str(name)
        cell.data_type = TYPE_STRING
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(vertical="center")
    for row_index, row in enumerate(frame.itertuples(index=False), start=2):
        for col_index, value in enumerate(row, start=1):
            cell = sheet.cell(row=row_index, column=col_index)
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                continue
            if isinstance(value, str):
                # Set the value and then force the type: openpyxl would otherwise store a leading
                # "=" as a formula.
                cell.value = value
                cell.data_type = TYPE_STRING
            elif isinstance(value, pd.Timestamp):
                cell.value = value.to_pydatetime()
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(value, datetime | date):
                cell.value = value
                cell.number_format = "yyyy-mm-dd"
            elif hasattr(value, "item"):
                cell.value = value.item()
            else:
                cell.value = value
            if isinstance(cell.value, Decimal):
                # Exact money stays exact: openpyxl writes the Decimal's own digits.
                cell.number_format = "#,##0.00" if cell.value.as_tuple().exponent < 0 else "#,##0"
            elif isinstance(cell.value, float):
                cell.number_format = "#,##0.00"
            elif isinstance(cell.value, int) and not isinstance(cell.value, bool):
                cell.number_format = "#,##0"
    for col_index, name in enumerate(frame.columns, start=1):
        values = [str(name), *(str(v) for v in frame.iloc[:200, col_index - 1].tolist())]
        sheet.column_dimensions[get_column_letter(col_index)].width = min(
            60, max(10, max(map(len, values)) + 2)
        )
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
