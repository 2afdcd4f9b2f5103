"""A small, fast, generic .xlsx writer on XlsxWriter's constant_memory mode.

Used by the bulk-job run report, the reconciliation report and the finance order export:

    write_workbook(path, [Sheet("Items", columns, rows)], summary=Summary(...))

Every data sheet gets a bold header row, panes frozen below it, an autofilter over the data, and
one number format per column kind:

    text      a string cell, number format '@', neutralised against formula injection
    int       an integer cell
    money     a Decimal (or int) written as its exact decimal digits, format '#,##0.00'
    datetime  a naive datetime, format 'yyyy-mm-dd hh:mm:ss'
    date      a date (not a datetime), format 'yyyy-mm-dd'

Excel has no time zones: convert aware datetimes to naive ones in the zone the sheet states (say so
in `Sheet.note`, e.g. "Times are in UTC"); an aware datetime raises ValueError. A float in a money
column raises TypeError, so no amount ever passes through binary floating point on our side: the
Decimal itself goes to the file, formatted with 16 significant digits. An amount (or int) with more
significant digits than that is rounded to 16 of them; Excel holds only 15 in any case.

Every cell is written with the writer for its column kind (never a type-guessing one), so text
such as "#N/A", "1e5" or "=1+1" stays text. Rows stream to disk as they are written, one row in
memory at a time.

Files are written atomically (`lf_bulk.files.atomic_binary`): a crash leaves the previous file or
none, never half a workbook. `atomic_file`, `make_folders` and `neutralise` live in `lf_bulk.files`
and are re-exported here for the writers that import them with the workbook pieces.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, islice
from numbers import Integral
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from lf_bulk.files import atomic_binary, atomic_file, make_folders, neutralise
from lf_bulk.lazy import lazy_module

# XlsxWriter has inline type hints but (in some releases) no py.typed marker; the protocols
# below declare the part of its API we use. Imported on first use (see lf_bulk/lazy.py).
xlsxwriter = lazy_module("xlsxwriter")
xlsxwriter_exceptions = lazy_module("xlsxwriter.exceptions")
xlsxwriter_utility = lazy_module("xlsxwriter.utility")

__all__ = [
    "DATETIME_FORMAT",
    "MAX_ROWS",
    "MONEY_FORMAT",
    "TEXT_FORMAT",
    "Column",
    "Kind",
    "Sheet",
    "Summary",
    "Table",
    "atomic_binary",
    "atomic_file",
    "make_folders",
    "neutralise",
    "safe_sheet_name",
    "write_workbook",
]

Kind = Literal["text", "int", "money", "datetime", "date"]

TEXT_FORMAT = "@"
MONEY_FORMAT = "#,##0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"

MAX_ROWS = 1_048_576
"""Rows in one Excel worksheet, header and note included."""

MAX_CELL_CHARS = 32_767
MAX_SHEET_NAME = 31
_MAX_COLUMNS = 16_384
# Excel's largest number is 9.99999999999999E+307.
_MAX_EXPONENT = 307

_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_SAMPLE_ROWS = 200
_MIN_WIDTH = 6.0
_MAX_WIDTH = 60.0
# Room for the autofilter drop-down button next to a header.
_FILTER_BUTTON = 3
# The Summary chart: 18 cm x 9 cm at 96 dpi.
_CHART_SIZE = {"width": 680, "height": 340}
_CHART_ROWS = 20

_OPTIONS = {
    "constant_memory": True,
    # Only the generic write() guesses types, and we never call it; say so anyway.
    "strings_to_numbers": False,
    "strings_to_formulas": False,
    "strings_to_urls": False,
}


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind = "text"
    width: float | None = None
    """Excel column width in characters; None sizes it from the header and the first rows."""


@dataclass(frozen=True)
class Sheet:
    name: str
    """Sanitised to Excel's rules (see `safe_sheet_name`) and made unique in the workbook."""
    columns: Sequence[Column]
    rows: Iterable[Sequence[object]]
    """One value per column, in order; may be a generator, consumed once."""
    note: str | None = None
    """A line above the header, e.g. "Times are in UTC"; the header then sits on row 2."""


@dataclass(frozen=True)
class Table:
    """A small titled table on the Summary sheet, below the counts (e.g. counts per group)."""

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[object]]


@dataclass(frozen=True)
class Summary:
    """A first sheet: a title, key/value facts, and a counts table drawn as a bar chart.

    Fact values are written by type: str as text, int as integer, Decimal as money, float as a
    number, datetime/date as date-time/date (naive only), None as an empty cell, anything else
    as its str().
    """

    title: str
    facts: Sequence[tuple[str, object]]
    counts: Sequence[tuple[str, int]]
    counts_header: tuple[str, str] = ("Outcome", "Count")
    sheet_name: str = "Summary"
    tables: Sequence[Table] = ()
    """Written below the counts and their chart, one after another."""


SUMMARY_SHEET = Summary.sheet_name
"""The name of a summary sheet given as a callable (known only at the end)."""


def _cut(text: str, limit: int) -> str:
    # Excel counts sheet-name length in UTF-16 code units; never split a surrogate pair.
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return text[:index]
    return text


def safe_sheet_name(name: str) -> str:
    """`name` made acceptable to Excel as a sheet name.

    Characters Excel forbids ([]:*?/\\ and control characters) become '_', leading and trailing
    apostrophes are dropped, the result is cut to 31 characters (UTF-16 code units, as Excel
    counts them); an empty name becomes "Sheet" and the reserved name "History" becomes "History_".
    """
    cleaned = _SHEET_NAME_FORBIDDEN.sub("_", name).strip("'")
    cleaned = _cut(cleaned, MAX_SHEET_NAME).rstrip("'")
    if not cleaned.strip():
        return "Sheet"
    if cleaned.casefold() == "history":
        return cleaned + "_"
    return cleaned


def _unique_sheet_name(name: str, taken: set[str]) -> str:
    candidate = safe_sheet_name(name)
    number = 1
    # Excel compares sheet names case-insensitively.
    while candidate.casefold() in taken:
        number += 1
        suffix = f" ({number})"
        candidate = _cut(safe_sheet_name(name), MAX_SHEET_NAME - len(suffix)).rstrip("'") + suffix
    taken.add(candidate.casefold())
    return candidate


# --- the part of XlsxWriter we use -------------------------------------------------------------


class _Format(Protocol):
    pass


class _Chart(Protocol):
    def add_series(self, options: dict[str, str]) -> None: ...
    def set_title(self, options: dict[str, str]) -> None: ...
    def set_x_axis(self, options: dict[str, str]) -> None: ...
    def set_y_axis(self, options: dict[str, str]) -> None: ...
    def set_legend(self, options: dict[str, bool]) -> None: ...
    def set_size(self, options: dict[str, int]) -> None: ...


class _Worksheet(Protocol):
    def write_string(
        self, row: int, col: int, string: str, cell_format: _Format | None = None, /
    ) -> int: ...
    def write_number(
        self,
        row: int,
        col: int,
        number: int | float | Decimal,
        cell_format: _Format | None = None,
        /,
    ) -> int: ...
    def write_datetime(
        self, row: int, col: int, date: dt.date, cell_format: _Format | None = None, /
    ) -> int: ...
    def write_blank(
        self, row: int, col: int, blank: None, cell_format: _Format | None = None, /
    ) -> int: ...
    def set_column(self, first_col: int, last_col: int, width: float, /) -> int: ...
    def freeze_panes(self, row: int, col: int, /) -> None: ...
    def autofilter(
        self, first_row: int, first_col: int, last_row: int, last_col: int, /
    ) -> None: ...
    def insert_chart(self, row: int, col: int, chart: _Chart, /) -> int: ...


class _Workbook(Protocol):
    def add_worksheet(self, name: str, /) -> _Worksheet: ...
    def add_format(self, properties: dict[str, object], /) -> _Format: ...
    def add_chart(self, options: dict[str, str], /) -> _Chart: ...
    def worksheets(self) -> list[_Worksheet]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class _Formats:
    text: _Format
    money: _Format
    datetime: _Format
    date: _Format
    bold: _Format
    title: _Format

    @classmethod
    def of(cls, workbook: _Workbook) -> _Formats:
        add = workbook.add_format
        return cls(
            text=add({"num_format": TEXT_FORMAT}),
            money=add({"num_format": MONEY_FORMAT}),
            datetime=add({"num_format": DATETIME_FORMAT}),
            date=add({"num_format": DATE_FORMAT}),
            bold=add({"bold": True}),
            title=add({"bold": True, "font_size": 14}),
        )


# --- the workbook ------------------------------------------------------------------------------


def write_workbook(
    path: Path, sheets: Sequence[Sheet], summary: Summary | Callable[[], Summary] | None = None
) -> None:
    """Write `sheets` (after a `summary` sheet, when given) to the .xlsx file `path`, atomically.

    `summary` may be a callable, called once the sheets' rows are written (their generators
    exhausted): a report streamed while a run goes on knows its counts only at the end. Its
    sheet is still the first, named `SUMMARY_SHEET`.

    Raises ValueError for a tz-aware datetime, a non-finite Decimal (or one beyond Excel's 1E+308),
    a non-finite float fact, a row whose length differs from its sheet's columns, a sheet with no
    columns or more rows or columns than Excel holds; TypeError for a value that does not fit its
    column kind (e.g. a float in a money column). Messages name the sheet, row and column.
    Scratch files go to a private temporary directory that is removed in every case.
    """
    if not sheets and summary is None:
        raise ValueError("a workbook needs at least one sheet")
    with (
        tempfile.TemporaryDirectory(prefix="lf-bulk-xlsx-", ignore_cleanup_errors=True) as scratch,
        atomic_binary(path) as out,
    ):
        workbook: _Workbook = xlsxwriter.Workbook(out, {**_OPTIONS, "tmpdir": scratch})
        try:
            formats = _Formats.of(workbook)
            taken: set[str] = set()
            # constant_memory streams each sheet's rows in order, one sheet after another; the
            # Summary is small and complete up front, so it simply goes first.
            first = None
            if summary is not None:
                wanted = SUMMARY_SHEET if callable(summary) else summary.sheet_name
                name = _unique_sheet_name(wanted, taken)
                first = name, workbook.add_worksheet(name)
            for sheet in sheets:
                _write_sheet(workbook, _unique_sheet_name(sheet.name, taken), sheet, formats)
            if first is not None and summary is not None:
                # Each sheet has a scratch file of its own: the first may be written last.
                _write_summary(
                    workbook, *first, summary() if callable(summary) else summary, formats
                )
            _close(workbook)
        except BaseException:
            _abandon(workbook)
            raise


def _close(workbook: _Workbook) -> None:
    try:
        workbook.close()
    except xlsxwriter_exceptions.FileCreateError as error:
        # XlsxWriter wraps the OSError; callers handle OSError (disk full, permissions).
        cause = error.args[0] if error.args else None
        if isinstance(cause, OSError):
            raise cause from None
        raise


def _abandon(workbook: _Workbook) -> None:
    # In constant_memory mode each worksheet holds an open scratch file of rows written so far
    # (in our scratch directory, about to be removed): close them rather than leave it to the GC.
    for ws in workbook.worksheets():
        handle = getattr(ws, "row_data_fh", None)
        if handle is not None:
            with suppress(Exception):
                handle.close()


# --- cell values -------------------------------------------------------------------------------
#
# Each column kind has a pure check-and-convert function (used again to name the culprit column of
# a bad row) and a writer that pairs it with the matching XlsxWriter method and number format.
# None, and for every kind but int an empty string, means "no cell".


def _text(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if _ILLEGAL_XML.search(text):
        text = _ILLEGAL_XML.sub("\ufffd", text)
    text = neutralise(text)
    if len(text) > MAX_CELL_CHARS:
        text = text[:MAX_CELL_CHARS]
    return text


def _int(value: object) -> int | None:
    if value is None or type(value) is int:
        return value
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected an int, got {type(value).__name__} {value!r}")


def _money(value: object) -> Decimal | int:
    # The Decimal itself is written: XlsxWriter formats it with f"{number:.16G}", which
    # Decimal.__format__ does in decimal arithmetic, so no float is involved.
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} is not a finite amount")
        if value.adjusted() > _MAX_EXPONENT:
            raise ValueError(f"{value!r} is beyond the range of Excel numbers")
        return value
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    raise TypeError(f"expected a Decimal amount, got {type(value).__name__} {value!r}")


def _naive(value: object) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__} {value!r}")
    if value.tzinfo is not None:
        raise ValueError(
            f"{value.isoformat()} has a time zone and Excel has none: convert it to a naive "
            "datetime in the zone the sheet states"
        )
    return value


def _date(value: object) -> dt.date:
    # A datetime is a date too: refuse it, or a time of day would vanish without a word.
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise TypeError(f"expected a date, got {type(value).__name__} {value!r}")
    return value


def _is_empty(value: object) -> bool:
    return value is None or (value.__class__ is str and not value)


def _encode(kind: Kind, value: object) -> object:
    """What a `kind` cell holds for `value` (None: no cell); raises as the writer would."""
    if kind == "int":
        return _int(value)
    if _is_empty(value):
        return None
    if kind == "text":
        return _text(value)
    if kind == "money":
        return _money(value)
    if kind == "date":
        return _date(value)
    return _naive(value)


_Put = Callable[[int, object], None]


def _putter(ws: _Worksheet, col: int, kind: Kind, formats: _Formats) -> _Put:
    """A function writing one `kind` value into column `col` of a given row."""
    if kind == "int":
        write_number = ws.write_number

        def put_int(row: int, value: object) -> None:
            number = _int(value)
            if number is not None:
                write_number(row, col, number)

        return put_int

    if kind == "text":
        write_string, text_format = ws.write_string, formats.text

        def put_text(row: int, value: object) -> None:
            if value is not None and (value.__class__ is not str or value):
                write_string(row, col, _text(value), text_format)

        return put_text

    if kind == "money":
        write_amount, money_format = ws.write_number, formats.money

        def put_money(row: int, value: object) -> None:
            if value is not None and (value.__class__ is not str or value):
                write_amount(row, col, _money(value), money_format)

        return put_money

    if kind == "date":
        write_date, date_format = ws.write_datetime, formats.date

        def put_date(row: int, value: object) -> None:
            if value is not None and (value.__class__ is not str or value):
                write_date(row, col, _date(value), date_format)

        return put_date

    write_datetime, datetime_format = ws.write_datetime, formats.datetime

    def put_datetime(row: int, value: object) -> None:
        if value is not None and (value.__class__ is not str or value):
            write_datetime(row, col, _naive(value), datetime_format)

    return put_datetime


def _put_string(ws: _Worksheet, row: int, col: int, value: object, fmt: _Format | None) -> None:
    # A label cell: text, neutralised; an empty one keeps only its format.
    text = _text(value)
    if text:
        ws.write_string(row, col, text, fmt)
    elif fmt is not None:
        ws.write_blank(row, col, None, fmt)


def _display_width(kind: Kind, value: object) -> int:
    if value is None:
        return 0
    if kind == "money" and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return len(f"{value:,.2f}")
    if kind == "datetime":
        return len("yyyy-mm-dd hh:mm:ss")
    if kind == "date":
        return len("yyyy-mm-dd")
    return len(str(value))


def _widths(columns: Sequence[Column], sample: Sequence[Sequence[object]]) -> list[float]:
    widths = []
    for index, column in enumerate(columns):
        if column.width is not None:
            widths.append(column.width)
            continue
        longest = len(column.header) + _FILTER_BUTTON
        for row in sample:
            if index < len(row):
                longest = max(longest, _display_width(column.kind, row[index]) + 2)
        widths.append(min(max(float(longest), _MIN_WIDTH), _MAX_WIDTH))
    return widths


# --- sheets ------------------------------------------------------------------------------------
#
# XlsxWriter counts rows and columns from 0; messages give Excel's row numbers, from 1.


def _write_sheet(workbook: _Workbook, title: str, sheet: Sheet, formats: _Formats) -> None:
    columns = list(sheet.columns)
    if not columns:
        raise ValueError(f"sheet {title!r} has no columns")
    width = len(columns)
    if width > _MAX_COLUMNS:
        raise ValueError(f"sheet {title!r}: {width} columns, more than the {_MAX_COLUMNS} of Excel")
    ws = workbook.add_worksheet(title)
    rows = iter(sheet.rows)
    sample = list(islice(rows, _SAMPLE_ROWS))
    for index, column_width in enumerate(_widths(columns, sample)):
        ws.set_column(index, index, column_width)

    header = 0 if sheet.note is None else 1
    ws.freeze_panes(header + 1, 0)
    if sheet.note is not None:
        _put_string(ws, 0, 0, sheet.note, None)
    for index, column in enumerate(columns):
        _put_string(ws, header, index, column.header, formats.bold)

    body = chain(sample, rows)
    if _rows_as_xml_supported(ws, columns):
        last = _write_rows_as_xml(ws, title, columns, body, header, formats)
    else:
        last = _write_rows_cell_by_cell(ws, title, columns, body, header, formats)
    ws.autofilter(header, 0, last, width - 1)


def _write_rows_cell_by_cell(
    ws: _Worksheet,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    header: int,
    formats: _Formats,
) -> int:
    """Write the data rows through XlsxWriter's cell writers; return the last row's index."""
    width = len(columns)
    puts = [_putter(ws, index, column.kind, formats) for index, column in enumerate(columns)]
    last = header
    for last, row in enumerate(rows, start=header + 1):
        _check_row(title, row, last, width)
        try:
            for put, value in zip(puts, row, strict=True):
                put(last, value)
        except (TypeError, ValueError) as error:
            where = f"sheet {title!r}, row {last + 1}, column {_culprit(columns, row)!r}"
            raise type(error)(f"{where}: {error}") from error
    return last


def _check_row(title: str, row: Sequence[object], index: int, width: int) -> None:
    if len(row) != width:
        raise ValueError(f"sheet {title!r}, row {index + 1}: {len(row)} values, {width} columns")
    if index >= MAX_ROWS:
        raise ValueError(f"sheet {title!r}: more than {MAX_ROWS} rows do not fit Excel")


# --- data rows as XML ----------------------------------------------------------------------
#
# XlsxWriter spends about 5 us a cell on checks and bookkeeping we do not need (our cells are
# typed, in order, one row at a time): at 100,000 report rows that is most of the report's time.
# For sheets of text and int columns the rows are rendered here, as XlsxWriter's constant_memory
# mode would write them, straight into the worksheet's row file. This uses four of XlsxWriter's
# private members (`fh`, `previous_row`, `_write_single_row`, `_check_dimensions`, pinned in
# constraints.txt); without them, or for other column kinds, the cell-by-cell path is taken.

_XML_ROW_KINDS = frozenset({"text", "int"})
_ROWS_PER_WRITE = 2_000
# Text that needs any care: XML's specials, Excel's _xHHHH_ escapes and control characters,
# non-characters, and whitespace at either end (xml:space="preserve").
_NEEDS_CARE = re.compile(r"[&<>_\x00-\x1f\ufffe\uffff]|^\s|\s$")
_CONTROL_ESCAPE = re.compile(r"(_x[0-9a-fA-F]{4}_)")
_CONTROL_CHARACTER = re.compile(r"([\x00-\x08\x0b-\x1f])")
_EDGE_SPACE = re.compile(r"^\s|\s$")


def _rows_as_xml_supported(ws: _Worksheet, columns: Sequence[Column]) -> bool:
    return (
        all(column.kind in _XML_ROW_KINDS for column in columns)
        and getattr(ws, "constant_memory", False)
        and getattr(ws, "excel_version", None) == 2007
        and not getattr(ws, "row_info", True)
        and all(
            hasattr(ws, name)
            for name in ("fh", "previous_row", "_write_single_row", "_check_dimensions")
        )
    )


def _inline_text(value: str, style: str) -> str:
    """The <c> body of a text cell after `r=...`, as XlsxWriter writes an inline string."""
    if _NEEDS_CARE.search(value) is None:
        return f'{style} t="inlineStr"><is><t>{value}</t></is></c>'
    text = _CONTROL_ESCAPE.sub(r"_x005F\1", value)
    text = _CONTROL_CHARACTER.sub(lambda match: f"_x{ord(match.group(1)):04X}_", text)
    text = text.replace("\ufffe", "_xFFFE_").replace("\uffff", "_xFFFF_")
    preserve = ' xml:space="preserve"' if _EDGE_SPACE.search(text) else ""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f'{style} t="inlineStr"><is><t{preserve}>{text}</t></is></c>'


def _write_rows_as_xml(
    ws: _Worksheet,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Sequence[object]],
    header: int,
    formats: _Formats,
) -> int:
    """Write the data rows as XML into the worksheet's row file; return the last row's index."""
    anyws: Any = ws
    width = len(columns)
    # Flush the header row (XlsxWriter holds a row until the next one starts).
    anyws._write_single_row(header + 1)
    text_style = f' s="{_format_index(formats.text)}"'
    starts = [f'<c r="{xlsxwriter_utility.xl_col_to_name(index)}' for index in range(width)]
    kinds = [column.kind for column in columns]
    out = anyws.fh
    pending: list[str] = []
    last = header
    for last, row in enumerate(rows, start=header + 1):
        _check_row(title, row, last, width)
        number = str(last + 1)
        parts = [f'<row r="{number}">']
        try:
            for start, kind, value in zip(starts, kinds, row, strict=True):
                if kind == "int":
                    integer = _int(value)
                    if integer is not None:
                        parts.append(f'{start}{number}"><v>{integer:.16G}</v></c>')
                elif value is not None and (value.__class__ is not str or value):
                    text = _text(value)
                    parts.append(f'{start}{number}"{_inline_text(text, text_style)}')
        except (TypeError, ValueError) as error:
            where = f"sheet {title!r}, row {last + 1}, column {_culprit(columns, row)!r}"
            raise type(error)(f"{where}: {error}") from error
        parts.append("</row>")
        pending.append("".join(parts))
        if len(pending) >= _ROWS_PER_WRITE:
            out.write("".join(pending))
            pending.clear()
    out.write("".join(pending))
    if last > header:
        anyws._check_dimensions(last, 0)
        anyws._check_dimensions(last, width - 1)
        anyws.previous_row = last + 1
    return last


def _format_index(cell_format: _Format) -> int:
    """The style index XlsxWriter gives `cell_format` (assigned on first use)."""
    index: int = cast(Any, cell_format)._get_xf_index()
    return index


def _culprit(columns: Sequence[Column], row: Sequence[object]) -> str:
    for column, value in zip(columns, row, strict=True):
        try:
            _encode(column.kind, value)
        except (TypeError, ValueError):
            return column.header
    return "?"


def _put_fact(ws: _Worksheet, row: int, value: object, formats: _Formats) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | dt.date):
        _put_string(ws, row, 1, "" if value is None else value, formats.text)
    elif isinstance(value, Decimal):
        ws.write_number(row, 1, _money(value), formats.money)
    elif isinstance(value, dt.datetime):
        ws.write_datetime(row, 1, _naive(value), formats.datetime)
    elif isinstance(value, dt.date):
        ws.write_datetime(row, 1, value, formats.date)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    else:
        ws.write_number(row, 1, value)


def _write_summary(
    workbook: _Workbook, title: str, ws: _Worksheet, summary: Summary, formats: _Formats
) -> None:
    label_width = max([len(key) for key, _ in summary.facts] + [len(summary.counts_header[0])])
    value_width = max([_display_width("text", value) for _, value in summary.facts] + [10])
    ws.set_column(0, 0, min(max(label_width + 2, 12), _MAX_WIDTH))
    ws.set_column(1, 1, min(max(value_width + 2, 12), _MAX_WIDTH))

    _put_string(ws, 0, 0, summary.title, formats.title)
    for row, (key, value) in enumerate(summary.facts, start=2):
        # The key first: constant_memory writes a row's cells in column order when it moves on.
        _put_string(ws, row, 0, key, formats.bold)
        try:
            _put_fact(ws, row, value, formats)
        except (TypeError, ValueError) as error:
            raise type(error)(f"sheet {title!r}, fact {key!r}: {error}") from error
    header = len(summary.facts) + 3
    if not summary.counts:
        _write_tables(ws, header, summary.tables, formats)
        return

    for col, text in enumerate(summary.counts_header):
        _put_string(ws, header, col, text, formats.bold)
    for row, (label, count) in enumerate(summary.counts, start=header + 1):
        _put_string(ws, row, 0, label, None)
        number = _int(count)
        if number is not None:
            ws.write_number(row, 1, number)
    last = header + len(summary.counts)

    # Always quoted, apostrophes doubled: valid for any sheet name.
    sheet = "'" + title.replace("'", "''") + "'"
    category, amount = (_text(text) for text in summary.counts_header)
    chart = workbook.add_chart({"type": "column"})
    chart.add_series(
        {
            "name": f"={sheet}!$B${header + 1}",
            "categories": f"={sheet}!$A${header + 2}:$A${last + 1}",
            "values": f"={sheet}!$B${header + 2}:$B${last + 1}",
        }
    )
    # A chart text starting with '=' would be read as a cell reference; _text neutralises it.
    chart.set_title({"name": _text(f"{summary.counts_header[1]} by {category.lower()}")})
    chart.set_x_axis({"name": category})
    chart.set_y_axis({"name": amount})
    chart.set_legend({"none": True})
    chart.set_size(_CHART_SIZE)
    ws.insert_chart(2, 3, chart)
    # Below both the counts and the chart, which floats over rows 3 to about 20.
    _write_tables(ws, max(last + 2, _CHART_ROWS + 2), summary.tables, formats)


def _write_tables(ws: _Worksheet, first: int, tables: Sequence[Table], formats: _Formats) -> None:
    row = first
    for table in tables:
        _put_string(ws, row, 0, table.title, formats.bold)
        row += 1
        for col, column in enumerate(table.columns):
            _put_string(ws, row, col, column.header, formats.bold)
        puts = [_putter(ws, col, c.kind, formats) for col, c in enumerate(table.columns)]
        for values in table.rows:
            row += 1
            if len(values) != len(puts):
                raise ValueError(f"table {table.title!r}: {len(values)} values per row")
            for put, value in zip(puts, values, strict=True):
                put(row, value)
        row += 2
