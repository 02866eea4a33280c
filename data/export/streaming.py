"""Large exports with bounded memory: CSV and Excel written batch by batch into a private temp file.

Rows arrive as an iterable of pandas DataFrame batches (``batches_from_query`` reads a query's
result in batches; ``frame_batches`` cuts a frame held already). Each batch is written and
dropped before the next is read, so memory depends on the batch size, never on the row count.
The same safety rules as data/export/formats.py apply (SECURITY.md #10), with its code:

- CSV (``write_csv``): RFC 4180 through the csv module: QUOTE_MINIMAL, CRLF line ends, UTF-8
  with an optional byte-order mark (Excel needs it to read UTF-8). Text cells and headers are
  neutralised with ``formats.neutralise_text`` (a cell a spreadsheet could run as a formula gets
  a leading ``'``; each distinct value of a column is checked once); numbers are written as
  numbers (floats in their shortest exact form, formatted by Arrow), so a negative number stays
  a number. Missing and non-finite numbers are empty fields; dates are ISO dates.
  The delimiter is ``,`` (decimal point) or ``;`` for Excel in comma-decimal locales (German,
  French, ...), where Excel's list separator is ``;`` and it reads ``1,5`` as one and a half:
  with ``;`` every decimal number is written with a decimal comma (``1234,5``; no thousands
  separator, integers unchanged), so those users get numbers, not text. Decide by the reader's
  Excel locale, not the data.
- Excel (``write_xlsx``): openpyxl in write-only mode (``Workbook(write_only=True)``): a bold,
  filled header row, a number format per column kind (``NUMBER_FORMATS``: integer ``#,##0``,
  decimal ``#,##0.00``, percent ``0.0%``, money ``#,##0.00 "USD"`` with the column's currency
  code, date ``yyyy-mm-dd``), column widths from the first batch, a frozen header, an autofilter
  over the written range, and an "About" sheet (filters, scope, metric definitions, who exported,
  the data's sync time: ``data.queries.reports.about_entries`` makes them for a report). Text is
  always an inline string cell (``t="inlineStr"``) with the text number format ``@``, never a
  formula, whatever it starts with; numbers are numeric cells. Several sheets per workbook; a
  sheet that would pass Excel's 1,048,576 rows continues on a new sheet ("Title (2)").

  Speed: openpyxl's own cell objects cost about 15-20 microseconds a cell (a million rows of
  ten columns: about three minutes; bench/exports.py measures it). The data rows are therefore
  serialised here, 20,000 rows at a time and with Arrow's string kernels (no Python code per
  row or per number), into the XML openpyxl writes for styled write-only cells
  (``<c r="B7" s="3"><v>1.5</v></c>``, text as ``t="inlineStr"``; style ids from openpyxl's own
  style table), streamed into a scratch file of the sheet's own and spliced into the sheet XML
  openpyxl wrote (with its header styles, widths, frozen pane and autofilter) before openpyxl
  zips the workbook (deflate level ``ZIP_COMPRESSLEVEL``). Every text is XML-escaped and
  characters XML cannot hold are replaced, so the XML is well-formed whatever the data.

Files go through ``export_to_temp``: a private temp folder (mode 0700, file 0600) holds the file
and openpyxl's scratch sheet XML; the caller reads the bytes, hands them over and calls
``cleanup`` (or uses ``hand_over``), which removes the folder: no plaintext is left behind. A
failed write removes its partial file.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from xml.sax.saxutils import escape
from zipfile import ZIP_DEFLATED, ZipFile

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import TYPE_STRING
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet import _writer as openpyxl_sheet_writer
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.writer.excel import ExcelWriter

from data.export.formats import _SHEET_FORBIDDEN, neutralise_text

KINDS: tuple[str, ...] = ("integer", "decimal", "percent", "money", "date", "datetime", "text")
NUMBER_FORMATS: dict[str, str] = {
    "integer": "#,##0",
    "decimal": "#,##0.00",
    "percent": "0.0%",
    "money": '#,##0.00 "{currency}"',
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "text": "@",
}
DEFAULT_BATCH_ROWS = 100_000
# Excel's limits: rows per sheet (header included), characters per cell, sheet title length.
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_CELL_CHARS = 32_767
EXCEL_MAX_TITLE = 31
# Rows formatted in memory at a time before one write (CSV).
_CSV_CHUNK_ROWS = 20_000
# zlib level for the workbook's zip (openpyxl uses the default, 6: about 4x slower, ~10% smaller).
ZIP_COMPRESSLEVEL = 1
# Rows serialised at a time inside a batch (bounds the XML text held at once).
_XML_CHUNK_ROWS = 20_000
# Characters XML 1.0 cannot hold (C0 controls but tab, LF, CR; lone surrogates; U+FFFE/FFFF):
# replaced by U+FFFD, as a spreadsheet could not store them either.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_EXCEL_EPOCH = date(1899, 12, 30)
_HEADER_FILL = "DCE6F1"


class RowLimitExceeded(ValueError):
    """More rows than the export may hold (the role's cap, checked while streaming)."""


class ColumnFormatLike(Protocol):
    name: str
    kind: str
    currency: str


@dataclass(frozen=True)
class ColumnFormat:
    """How to write one column: its frame column ``name``, its ``kind`` (KINDS), the currency
    code of money, and the header text (``label``; default: the name).
    ``data.queries.reports.ColumnMeta`` fits wherever a ColumnFormat is asked for."""

    name: str
    kind: str = "text"
    currency: str = ""
    label: str | None = None


@dataclass(frozen=True, eq=False)
class SheetSpec:
    """One sheet of a workbook: its title, its rows as DataFrame batches (read once), and its
    columns (order, kinds; None: every column of the first batch, kinds from the dtypes)."""

    title: str
    batches: Iterable[pd.DataFrame] | pd.DataFrame
    columns: Sequence[ColumnFormatLike] | None = None


# --- reading in batches ---------------------------------------------------------------------------
def batches_from_query(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    params: Sequence[Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pd.DataFrame]:
    """A query's result as DataFrames of at most ``batch_rows`` rows, through DuckDB's Arrow
    record batch reader: the whole result is never in memory. The cursor is busy until the
    iterator is exhausted (use a cursor of its own). The SQL must carry the caller's scope and
    filters like every other query (SECURITY.md #7); values are bound, never formatted in."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    result = cursor.execute(sql, list(params or []))
    reader = (
        result.to_arrow_reader(batch_rows)
        if hasattr(result, "to_arrow_reader")
        else result.fetch_record_batch(batch_rows)
    )
    for batch in reader:
        if batch.num_rows:
            yield batch.to_pandas()


def frame_batches(
    frame: pd.DataFrame, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Iterator[pd.DataFrame]:
    """A frame held already, in slices of ``batch_rows`` rows (views, not copies)."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    if frame.empty:
        yield frame
        return
    for start in range(0, len(frame), batch_rows):
        yield frame.iloc[start : start + batch_rows]


def _iter_batches(rows: Iterable[pd.DataFrame] | pd.DataFrame) -> Iterator[pd.DataFrame]:
    if isinstance(rows, pd.DataFrame):
        yield from frame_batches(rows)
        return
    for batch in rows:
        if not isinstance(batch, pd.DataFrame):
            raise TypeError(f"a batch is a pandas DataFrame, not {type(batch).__name__}")
        yield batch


def _names(columns: Sequence[Any] | None, first: pd.DataFrame) -> list[str]:
    if columns is None:
        return [str(c) for c in first.columns]
    return [c if isinstance(c, str) else c.name for c in columns]


def _headers(columns: Sequence[Any] | None, names: Sequence[str]) -> list[str]:
    """Header texts: a column's ``label`` when it has one, else its name."""
    if columns is None:
        return list(names)
    return [
        name if isinstance(c, str) else (getattr(c, "label", None) or name)
        for c, name in zip(columns, names, strict=True)
    ]


def _select(batch: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    missing = [n for n in names if n not in batch.columns]
    if missing:
        raise KeyError(f"a batch has no column {missing[0]!r}")
    return batch.loc[:, list(names)] if list(batch.columns) != list(names) else batch


# --- CSV ------------------------------------------------------------------------------------------
def write_csv(
    rows: Iterable[pd.DataFrame] | pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    bom: bool = True,
    delimiter: str = ",",
    columns: Sequence[str | ColumnFormatLike] | None = None,
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write DataFrame batches as one CSV file; the number of data rows written.

    ``columns``: the columns to write, in order (names, or ColumnFormat-like objects); default
    every column of the first batch. ``delimiter`` "," (decimal point) or ";" (decimal comma,
    for Excel in comma-decimal locales; see the module docstring). ``max_rows``: refuse with
    ``RowLimitExceeded`` (and remove the partial file) past that many rows. ``progress`` is
    called with the rows written so far after each batch. Headers are the columns' labels (or
    names), neutralised like text cells.
    """
    if delimiter not in (",", ";"):
        raise ValueError('delimiter must be "," or ";"')
    decimal_comma = delimiter == ";"
    target = Path(path)
    written = 0
    try:
        # Plain UTF-8 with the byte-order mark written by hand: the utf-8-sig codec encodes in
        # Python, call by call. Each batch is formatted in memory and written in one call.
        with open(target, "w", encoding="utf-8", newline="") as out:
            if bom:
                out.write("\ufeff")
            buffer = io.StringIO()
            writer = csv.writer(
                buffer,
                delimiter=delimiter,
                quotechar='"',
                doublequote=True,
                quoting=csv.QUOTE_MINIMAL,
                lineterminator="\r\n",
            )
            names: list[str] | None = None
            for batch in _iter_batches(rows):
                if names is None:
                    names = _names(columns, batch)
                    writer.writerow([neutralise_text(h) for h in _headers(columns, names)])
                batch = _select(batch, names)
                if max_rows is not None and written + len(batch) > max_rows:
                    raise RowLimitExceeded(f"more than {max_rows:,} rows")
                for start in range(0, len(batch), _CSV_CHUNK_ROWS):
                    chunk = batch.iloc[start : start + _CSV_CHUNK_ROWS]
                    cells = [
                        _csv_column(chunk.iloc[:, i], decimal_comma) for i in range(len(names))
                    ]
                    writer.writerows(zip(*cells, strict=True))
                    out.write(buffer.getvalue())
                    buffer.seek(0)
                    buffer.truncate()
                written += len(batch)
                if progress is not None:
                    progress(written)
            if names is None and columns is not None:  # no batch: the header alone
                names = _names(columns, pd.DataFrame())
                writer.writerow([neutralise_text(h) for h in _headers(columns, names)])
            out.write(buffer.getvalue())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return written


def _csv_column(series: pd.Series, decimal_comma: bool) -> list[Any]:
    """One column's cells as the csv module is to write them: text (None is an empty field).

    Floats are formatted by Arrow in their shortest exact form ("0.1", "1e-7"; the csv module
    would call Python's repr once per number, three times slower) and get their decimal comma
    there; text and mixed columns are prepared once per distinct value (labels and days repeat).
    """
    dtype = series.dtype
    numpy_dtype = not isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if numpy_dtype and (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
        return series.to_numpy().tolist()
    if numpy_dtype and pd.api.types.is_float_dtype(dtype):
        return _float_texts(series.to_numpy(), "," if decimal_comma else ".").to_pylist()
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    prepared = np.empty(len(uniques) + 1, dtype=object)
    for i, value in enumerate(uniques.tolist()):
        prepared[i] = _csv_value(value, decimal_comma)
    prepared[-1] = None  # code -1: missing
    return prepared[codes].tolist()


def _float_texts(values: np.ndarray, decimal: str = ".") -> pa.StringArray:
    """Floats as their shortest exact text (Arrow's formatting); null where not finite."""
    values = np.asarray(values, dtype=np.float64)
    texts = pc.cast(pa.array(values, mask=~np.isfinite(values)), pa.string())
    return pc.replace_substring(texts, ".", decimal) if decimal != "." else texts


def _csv_value(value: Any, decimal_comma: bool) -> Any:
    """A single cell of a text or mixed column: text neutralised (formats.neutralise_text),
    numbers as numbers (a decimal comma for ";"), dates as ISO dates, missing and non-finite
    numbers empty."""
    if isinstance(value, str):
        # NUL ends a line for many CSV readers (and a cell for Excel): replaced, as in Excel files.
        return neutralise_text(value).replace("\x00", "\ufffd")
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            return None
        text = repr(float(value))
        return text.replace(".", ",") if decimal_comma else text
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return str(value).replace(".", ",") if decimal_comma else str(value)
    if isinstance(value, pd.Timestamp):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return _csv_value(str(value), decimal_comma)


# --- Excel ----------------------------------------------------------------------------------------
class _StreamingSheet(WriteOnlyWorksheet):
    """openpyxl's write-only worksheet, with two changes: its scratch XML lives in the export's
    private folder (not the system temp folder), and its data rows (``append_rows``: ready
    ``<row>`` XML text) are streamed into a file of their own, which ``close`` splices into the
    sheet openpyxl wrote (with an empty sheetData) before the workbook is zipped. A sheet takes
    either ``append`` (openpyxl's rows) or ``append_rows``, not both."""

    def __init__(self, parent: Workbook, title: str, scratch: Path) -> None:
        super().__init__(parent, title)
        self._scratch = scratch
        self._rows_path = scratch.with_name(scratch.name + ".rows")
        self._rows_file: Any = None

    def _get_writer(self) -> None:
        if self._writer is None:
            out = str(self._scratch)
            # openpyxl's writer removes its scratch file after saving, from this list.
            openpyxl_sheet_writer.ALL_TEMP_FILES.append(out)
            self._writer = openpyxl_sheet_writer.WorksheetWriter(self, out=out)
            self._writer.write_top()

    def append_rows(self, xml: str | bytes | memoryview) -> None:
        """Write whole ``<row>`` elements (their XML text, or it in UTF-8, escaped by the
        caller)."""
        if self._rows is not None:
            raise RuntimeError("this sheet already has rows from append()")
        if self._rows_file is None:
            fd = os.open(self._rows_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            self._rows_file = open(fd, "wb", buffering=1 << 20)  # noqa: SIM115 (closed in close)
        self._rows_file.write(xml.encode("utf-8") if isinstance(xml, str) else xml)

    def close(self) -> None:
        super().close()
        if self._rows_file is None:
            return
        self._rows_file.close()
        sheet = self._scratch.read_bytes()
        head, found, tail = sheet.partition(b"<sheetData></sheetData>")
        if not found:
            raise RuntimeError("openpyxl wrote an unexpected worksheet (no empty sheetData)")
        spliced = self._scratch.with_name(self._scratch.name + ".new")
        fd = os.open(spliced, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with open(fd, "wb") as out, open(self._rows_path, "rb") as rows:
            out.write(head + b"<sheetData>")
            shutil.copyfileobj(rows, out, 1 << 20)
            out.write(b"</sheetData>" + tail)
        os.replace(spliced, self._scratch)
        self._rows_path.unlink()

    def discard(self) -> None:
        """Remove this sheet's scratch files (after a failure)."""
        if self._rows_file is not None and not self._rows_file.closed:
            self._rows_file.close()
        for file in (
            self._scratch,
            self._rows_path,
            self._scratch.with_name(self._scratch.name + ".new"),
        ):
            file.unlink(missing_ok=True)
        if str(self._scratch) in openpyxl_sheet_writer.ALL_TEMP_FILES:
            openpyxl_sheet_writer.ALL_TEMP_FILES.remove(str(self._scratch))


def _kind_of(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "text"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "decimal"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "text"


def _formats(columns: Sequence[Any] | None, first: pd.DataFrame) -> list[ColumnFormat]:
    if columns is None:
        return [ColumnFormat(str(c), _kind_of(first[c].dtype)) for c in first.columns]
    out = []
    for c in columns:
        if isinstance(c, str):
            out.append(ColumnFormat(c, _kind_of(first[c].dtype) if c in first else "text"))
            continue
        kind = getattr(c, "kind", "text")
        if kind not in KINDS:
            raise ValueError(f"column {c.name!r}: unknown kind {kind!r}")
        out.append(
            ColumnFormat(c.name, kind, getattr(c, "currency", "") or "", getattr(c, "label", None))
        )
    return out


def _number_format(fmt: ColumnFormat) -> str:
    if fmt.kind == "money":
        code = fmt.currency.upper() if _CURRENCY_CODE.match(fmt.currency.upper() or "") else ""
        return NUMBER_FORMATS["money"].format(currency=code) if code else "#,##0.00"
    return NUMBER_FORMATS[fmt.kind]


def _clean_text(value: str) -> str:
    if len(value) > EXCEL_MAX_CELL_CHARS:
        value = value[:EXCEL_MAX_CELL_CHARS]
    if _XML_ILLEGAL.search(value):
        value = _XML_ILLEGAL.sub("\ufffd", value)
    return value


def _text_xml(value: str) -> str:
    # A text cell: an inline string, never a formula. CR is written as a character reference,
    # or an XML parser would read it back as LF.
    text = escape(_clean_text(value)).replace("\r", "&#13;")
    return f' t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def _number_xml(value: float | int) -> str:
    return f"><v>{value!r}</v></c>"


def _serial(value: date | datetime | pd.Timestamp) -> float | int:
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        delta = value - datetime(1899, 12, 30)
        return delta.days + delta.seconds / 86400 + delta.microseconds / 86_400_000_000
    return (value - _EXCEL_EPOCH).days


def _any_xml(value: Any) -> str:
    """One cell's content (after ``<c r=".." s=".."``) for a value of any type; "/>" when empty."""
    if value is None or value is pd.NaT or value is pd.NA:
        return "/>"
    if isinstance(value, str):
        return _text_xml(value)
    if isinstance(value, bool | np.bool_):
        return f' t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | np.integer):
        return _number_xml(int(value))
    if isinstance(value, float | np.floating):
        return _number_xml(float(value)) if math.isfinite(value) else "/>"
    if isinstance(value, Decimal):
        return f"><v>{value}</v></c>" if value.is_finite() else "/>"
    if isinstance(value, date | pd.Timestamp):  # datetime too
        return _number_xml(_serial(value))
    return _text_xml(str(value))


def _column_xml(series: pd.Series) -> pa.StringArray:
    """Every cell's content of one column of a chunk (what follows ``<c r=".." s=".."``), as an
    Arrow string array without nulls: numbers formatted by Arrow in one pass (shortest exact
    form), text and mixed columns prepared once per distinct value (labels and days repeat)."""
    dtype = series.dtype
    numpy_dtype = not isinstance(dtype, pd.api.extensions.ExtensionDtype)
    if numpy_dtype and pd.api.types.is_bool_dtype(dtype):
        return pc.if_else(pa.array(series.to_numpy()), ' t="b"><v>1</v></c>', ' t="b"><v>0</v></c>')
    if numpy_dtype and (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype)):
        values = series.to_numpy()
        texts = (
            pc.cast(pa.array(values), pa.string())
            if pd.api.types.is_integer_dtype(dtype)
            else _float_texts(values)
        )
        return pc.fill_null(pc.binary_join_element_wise("><v>", texts, "</v></c>", ""), "/>")
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    prepared = [
        _any_xml(None if isinstance(value, float) and value != value else value)
        for value in uniques.tolist()
    ]
    codes = np.where(codes < 0, len(prepared), codes)  # -1 (missing): the empty cell
    return pa.array([*prepared, "/>"], type=pa.string()).take(pa.array(codes))


@dataclass
class _SheetState:
    spec: SheetSpec
    formats: list[ColumnFormat]
    header_style: int
    styles: list[int]
    widths: list[float]
    sheet: _StreamingSheet | None = None
    rows: int = 0  # data rows on the current sheet
    total: int = 0
    part: int = 1
    sheets: list[_StreamingSheet] = field(default_factory=list)


def write_xlsx(
    sheets: Sequence[SheetSpec],
    path: str | os.PathLike[str],
    *,
    about: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    about_title: str = "About",
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, ...]:
    """Write a formatted workbook, one sheet per ``SheetSpec`` (batches read once, in order),
    then an About sheet of ``about``'s (key, value) lines; the data rows written per spec.

    ``max_rows``: refuse with ``RowLimitExceeded`` (removing the partial file) past that many
    data rows in all. ``progress``: called with the rows written so far (all sheets) after each
    batch. Scratch XML goes next to ``path`` (write into a private folder: ``export_to_temp``).
    """
    if not sheets:
        raise ValueError("a workbook needs at least one sheet")
    target = Path(path)
    workbook = Workbook(write_only=True)
    # The About sheet's name and Excel's reserved "History" are never a data sheet's: a report
    # called "About" gets "About (2)", not the sheet that describes the export.
    titles: set[str] = {"history"} | ({about_title.casefold()} if about else set())
    made: list[_StreamingSheet] = []
    counts: list[int] = []
    done = 0

    def new_sheet(title: str) -> _StreamingSheet:
        name = _sheet_title(title, titles)
        file = target.with_name(f".{target.name}.sheet{len(made) + 1}.xml")
        sheet = _StreamingSheet(workbook, name, file)
        made.append(sheet)
        workbook._add_sheet(sheet)
        return sheet

    try:
        for spec in sheets:
            state: _SheetState | None = None
            for batch in _iter_batches(spec.batches):
                if state is None:
                    state = _start_sheet(workbook, spec, batch)
                batch = _select(batch, [f.name for f in state.formats])
                if max_rows is not None and done + len(batch) > max_rows:
                    raise RowLimitExceeded(f"more than {max_rows:,} rows")
                for start in range(0, len(batch), _XML_CHUNK_ROWS):
                    _write_chunk(state, batch.iloc[start : start + _XML_CHUNK_ROWS], new_sheet)
                done += len(batch)
                if progress is not None:
                    progress(done)
            if state is None:  # no rows at all: the header alone
                empty = pd.DataFrame(
                    columns=_names(spec.columns, pd.DataFrame()) if spec.columns else None
                )
                state = _start_sheet(workbook, spec, empty)
            if state.sheet is None:
                _open_part(state, new_sheet)
            _close_part(state)
            counts.append(state.total)
        if about is not None:
            titles.discard(about_title.casefold())
            _about_sheet(new_sheet(about_title), about)
        # openpyxl's save_workbook, with a faster deflate level: the sheet XML is most of the
        # work of zipping and compresses well at level 1 (ZIP_COMPRESSLEVEL).
        with ZipFile(
            target, "w", ZIP_DEFLATED, allowZip64=True, compresslevel=ZIP_COMPRESSLEVEL
        ) as archive:
            ExcelWriter(workbook, archive).save()
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        for sheet in made:
            sheet.discard()
    return tuple(counts)


def _style_id(probe_sheet: WriteOnlyWorksheet, **styles: Any) -> int:
    """openpyxl's cell-style id for a combination of styles, registered in the workbook of
    ``probe_sheet`` (a detached sheet of that workbook, never added to it or written)."""
    probe = WriteOnlyCell(probe_sheet)
    for name, value in styles.items():
        setattr(probe, name, value)
    return probe.style_id


def _start_sheet(workbook: Workbook, spec: SheetSpec, first: pd.DataFrame) -> _SheetState:
    formats = _formats(spec.columns, first)
    probe = WriteOnlyWorksheet(workbook, "probe")
    header_style = _style_id(
        probe,
        font=Font(bold=True),
        fill=PatternFill("solid", fgColor=_HEADER_FILL),
        alignment=Alignment(vertical="center"),
        number_format="@",
    )
    styles = [_style_id(probe, number_format=_number_format(f)) for f in formats]
    widths = []
    for f in formats:
        label = f.label or f.name
        sample = first[f.name].iloc[:200] if f.name in first else pd.Series([], dtype=object)
        longest = len(label)
        for v in sample.tolist():
            if f.kind in ("integer", "decimal", "money") and isinstance(v, int | float):
                text = f"{v:,.2f}" if math.isfinite(v) else ""
            elif f.kind == "percent" and isinstance(v, int | float):
                text = "100.0%"
            elif f.kind in ("date", "datetime"):
                text = "yyyy-mm-dd hh:mm" if f.kind == "datetime" else "yyyy-mm-dd"
            else:
                text = str(v)
            longest = max(longest, len(text))
        widths.append(float(min(60, max(8, longest + 2))))
    return _SheetState(spec, formats, header_style, styles, widths)


def _open_part(state: _SheetState, new_sheet: Callable[[str], _StreamingSheet]) -> None:
    title = state.spec.title if state.part == 1 else f"{state.spec.title} ({state.part})"
    sheet = new_sheet(title)
    for i, width in enumerate(state.widths):
        sheet.column_dimensions[get_column_letter(i + 1)].width = width
    sheet.freeze_panes = "A2"
    header = "".join(
        f'<c r="{get_column_letter(i + 1)}1" s="{state.header_style}"{_text_xml(f.label or f.name)}'
        for i, f in enumerate(state.formats)
    )
    sheet.append_rows(f'<row r="1">{header}</row>')
    state.sheet = sheet
    state.rows = 0
    state.sheets.append(sheet)


def _close_part(state: _SheetState) -> None:
    sheet = state.sheet
    assert sheet is not None
    last = get_column_letter(max(1, len(state.formats)))
    sheet.auto_filter.ref = f"A1:{last}{state.rows + 1}"
    sheet.close()
    state.sheet = None
    state.part += 1


def _write_chunk(
    state: _SheetState, chunk: pd.DataFrame, new_sheet: Callable[[str], _StreamingSheet]
) -> None:
    while len(chunk):
        if state.sheet is None:
            _open_part(state, new_sheet)
        room = EXCEL_MAX_ROWS - 1 - state.rows
        if room <= 0:
            _close_part(state)
            continue
        part, chunk = chunk.iloc[:room], chunk.iloc[room:]
        state.sheet.append_rows(_rows_xml(state, part, state.rows + 2))  # type: ignore[union-attr]
        state.rows += len(part)
        state.total += len(part)


def _rows_xml(state: _SheetState, part: pd.DataFrame, first: int) -> memoryview:
    """The ``<row>`` elements of a chunk whose first row is sheet row ``first``, as UTF-8:
    every row is one Arrow string joined from its row number, each cell's reference and style
    and each cell's content, so no Python code runs per row or per number. (Large strings:
    64-bit offsets, whatever the length of the texts.)"""
    big = pa.large_string()
    numbers = pc.cast(pa.array(np.arange(first, first + len(part))), big)
    pieces: list[Any] = [pa.scalar('<row r="', big), numbers, pa.scalar('">', big)]
    for i, style in enumerate(state.styles):
        pieces += [
            pa.scalar(f'<c r="{get_column_letter(i + 1)}', big),
            numbers,
            pa.scalar(f'" s="{style}"', big),
            pc.cast(_column_xml(part.iloc[:, i]), big),
        ]
    pieces.append(pa.scalar("</row>", big))
    rows = pc.binary_join_element_wise(*pieces, pa.scalar("", big))
    # The rows are back to back in the array's data buffer, between its first and last offset.
    _validity, offsets, data = rows.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[rows.offset : rows.offset + len(rows) + 1]
    return memoryview(data)[int(bounds[0]) : int(bounds[-1])] if len(rows) else memoryview(b"")


def _about_sheet(
    sheet: _StreamingSheet, about: Mapping[str, str] | Sequence[tuple[str, str]]
) -> None:
    items = list(about.items()) if isinstance(about, Mapping) else [tuple(i) for i in about]
    sheet.column_dimensions["A"].width = 30
    sheet.column_dimensions["B"].width = 100
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor=_HEADER_FILL)
    wrap = Alignment(wrap_text=True, vertical="top")

    def text(value: Any, **styles: Any) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=None)
        cell.value = _clean_text("" if value is None else str(value))
        cell.data_type = (
            TYPE_STRING  # set after the value: never a formula, whatever it starts with
        )
        for name, style in styles.items():
            setattr(cell, name, style)
        return cell

    sheet.append([text("About", font=bold, fill=fill), text("", fill=fill)])
    for key, value in items:
        sheet.append([text(key, font=bold, alignment=wrap), text(value, alignment=wrap)])
    sheet.close()


def _sheet_title(title: str, taken: set[str]) -> str:
    """A title Excel accepts (no : \\ / ? * [ ], at most 31 characters, not starting or ending
    with an apostrophe), unique in the workbook regardless of case."""
    clean = "".join("-" if ch in _SHEET_FORBIDDEN else ch for ch in _clean_text(str(title)))
    # A sheet name is never a formula; Excel refuses one that starts or ends with "'".
    clean = clean.strip("'").strip()[:EXCEL_MAX_TITLE].strip() or "Sheet"
    name, n = clean, 2
    while name.casefold() in taken:
        suffix = f" ({n})"
        name = clean[: EXCEL_MAX_TITLE - len(suffix)].rstrip() + suffix
        n += 1
    taken.add(name.casefold())
    return name


# --- private temp files ---------------------------------------------------------------------------
T = TypeVar("T")


@dataclass(eq=False)
class TempExport(Generic[T]):
    """An export written into a private temp folder: ``path`` (the file), ``result`` (what the
    writer returned, e.g. the row count), ``cleanup()`` removes the folder and everything in it
    (idempotent; also run when the object is garbage collected or the process exits)."""

    path: Path
    result: T
    directory: Path
    _finalizer: weakref.finalize | None = field(default=None, repr=False)

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def hand_over(self) -> bytes:
        """The file's bytes, and the folder removed: what a download button is given."""
        try:
            return self.read_bytes()
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        else:
            shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def removed(self) -> bool:
        return not self.directory.exists()

    def __enter__(self) -> TempExport[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def export_to_temp(
    write: Callable[[Path], T],
    *,
    suffix: str,
    name: str = "export",
    base_dir: str | os.PathLike[str] | None = None,
) -> TempExport[T]:
    """Run ``write(path)`` for a new file in a new private folder (mode 0700; the file is created
    0600 before the writer opens it) and return it as a ``TempExport``.

    The caller reads the bytes, hands them over (after the audit record: SECURITY.md #11) and
    calls ``cleanup()`` -- or ``hand_over()``, which does both -- so no plaintext export stays
    on disk. If ``write`` fails the folder is removed and the error raised. ``base_dir``: where
    the private folder is made (default: the system temp folder; a RAM-backed one such as
    /dev/shm keeps the bytes off disk if it is large enough).
    """
    if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
        raise ValueError(f"suffix must be like '.csv', not {suffix!r}")
    safe_name = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60] or "export"
    directory = Path(tempfile.mkdtemp(prefix="spotlight-export-", dir=base_dir))
    try:
        os.chmod(directory, 0o700)
        path = directory / f"{safe_name}{suffix}"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        result = write(path)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    export = TempExport(path, result, directory)
    export._finalizer = weakref.finalize(export, shutil.rmtree, str(directory), True)
    return export


__all__ = [
    "DEFAULT_BATCH_ROWS",
    "KINDS",
    "NUMBER_FORMATS",
    "ColumnFormat",
    "RowLimitExceeded",
    "SheetSpec",
    "TempExport",
    "batches_from_query",
    "export_to_temp",
    "frame_batches",
    "write_csv",
    "write_xlsx",
]
