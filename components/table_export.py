"""Export a displayed table with the labels and precision shown on screen.

A table drawn with ``st.dataframe(frame, column_config=...)`` shows labels ("Watch hours") and
rounded numbers; its export should say the same, not the internal ids (``watch_hours``). The CSV
holds the values rounded to the shown precision; the Excel file keeps full precision in its cells
with a number format that shows them as the screen does. Both go through
``components.export.export_buttons``: checked, row-capped and audited like every download.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd
from openpyxl import load_workbook

from components import auth
from components.context import app_context
from components.export import export_buttons
from data.export.formats import to_csv_bytes, to_excel_bytes

# printf-style formats Streamlit accepts: "%d", "%.2f", "%.2fx", "%.0f%%" ...
_PRINTF = re.compile(
    r"^(?P<prefix>[^%]*)%(?P<comma>,)?(?:\.(?P<digits>\d+))?(?P<kind>[dfi])(?P<suffix>.*)$"
)


def _spec(config: Any) -> tuple[str, str | None, str | None]:
    """(label, column type, format) of a ``st.column_config`` entry, a label or a
    ``(label, format)`` pair."""
    if isinstance(config, str):
        return config, None, None
    if isinstance(config, tuple):
        label, fmt = config
        return label, "number" if fmt else None, fmt
    type_config = config.get("type_config") or {}
    return str(config.get("label") or ""), type_config.get("type"), type_config.get("format")


def precision(fmt: str | None) -> tuple[int | None, str | None]:
    """(decimals to round to in CSV, Excel number format) for a Streamlit number format;
    ``(None, None)`` when it leaves the number as it is."""
    if not fmt:
        return None, None
    if fmt == "percent":
        # Streamlit shows a fraction as a percentage with two decimals: 0.4523 -> 45.23%.
        return 4, "0.00%"
    if fmt in ("plain", "localized"):
        return None, None
    if fmt in ("dollar", "euro", "accounting"):
        return 2, "#,##0.00"
    match = _PRINTF.match(fmt.replace("%%", "\0"))
    if match is None:
        return None, None
    digits = 0 if match["kind"] in "di" else int(match["digits"] or 6)
    number = "#,##0" + ("." + "0" * digits if digits else "")
    prefix, suffix = (match["prefix"] or "").replace("\0", "%"), match["suffix"].replace("\0", "%")
    if prefix:
        number = f'"{prefix}"{number}'
    if suffix:
        number = f'{number}"{suffix}"'
    return digits, number


def _round(series: pd.Series, digits: int) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        rounded = series.round(digits)
        if digits == 0:
            return rounded.astype("Int64")
        return rounded

    def one(value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, Decimal):
            return round(value, digits) if value.is_finite() else value
        if isinstance(value, int | float) and not pd.isna(value):
            return round(value) if digits == 0 else round(float(value), digits)
        return value

    return series.map(one)


def _labels(columns: list[str], config: Mapping[str, Any]) -> list[str]:
    labels = [(_spec(config[c])[0] if c in config else "") or str(c) for c in columns]
    seen: dict[str, int] = {}
    unique = []
    for column, label in zip(columns, labels, strict=True):
        # Two columns sharing a label would be ambiguous: keep the id on the later one.
        unique.append(label if label not in seen else f"{label} ({column})")
        seen[label] = 1
    return unique


def export_frames(
    frame: pd.DataFrame, config: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The displayed ``frame`` as (CSV frame, Excel frame, Excel number format by label).

    ``config`` maps a column id to its ``st.column_config`` entry (or a label, or a
    ``(label, format)`` pair); columns without one keep their id as the header. Both frames have
    the labels as headers; the CSV frame is rounded to the shown precision, the Excel frame keeps
    full precision."""
    columns = [str(c) for c in frame.columns]
    labels = _labels(columns, config)
    csv_frame = frame.copy()
    formats: dict[str, str] = {}
    for column, label in zip(columns, labels, strict=True):
        if column not in config:
            continue
        _label, kind, fmt = _spec(config[column])
        if kind != "number":
            continue
        digits, number_format = precision(fmt)
        if digits is not None:
            csv_frame[column] = _round(csv_frame[column], digits)
        if number_format is not None:
            formats[label] = number_format
    csv_frame.columns = labels
    excel_frame = frame.copy()
    excel_frame.columns = labels
    return csv_frame, excel_frame, formats


def excel_bytes(frame: pd.DataFrame, formats: Mapping[str, str], sheet_title: str) -> bytes:
    """``to_excel_bytes`` with a number format per column (by header) on its number cells."""
    data = to_excel_bytes(frame, sheet_title)
    if not formats:
        return data
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.active
    for index, name in enumerate(frame.columns, start=1):
        number_format = formats.get(str(name))
        if number_format is None:
            continue
        for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
            if isinstance(cell.value, int | float | Decimal) and not isinstance(cell.value, bool):
                cell.number_format = number_format
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def builder(
    frame: pd.DataFrame, config: Mapping[str, Any], name: str
) -> tuple[pd.DataFrame, Callable[[str], bytes]]:
    """The CSV frame (what is counted and capped) and a ``build(fmt)`` for ``export_buttons``."""
    csv_frame, excel_frame, formats = export_frames(frame, config)

    def build(fmt: str) -> bytes:
        if fmt == "csv":
            return to_csv_bytes(csv_frame)
        return excel_bytes(excel_frame, formats, name)

    return csv_frame, build


def table_export_buttons(
    frame: pd.DataFrame, config: Mapping[str, Any], *, name: str, key: str
) -> None:
    """Audited CSV/Excel downloads of a displayed table, for the signed-in principal."""
    principal = auth.principal_for_run()
    if principal is None:
        return
    csv_frame, build = builder(frame, config, name)
    export_buttons(app_context().security, principal, csv_frame, name=name, key=key, build=build)
