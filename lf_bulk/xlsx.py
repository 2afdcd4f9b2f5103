"""A small, fast, generic .xlsx writer on openpyxl's write-only mode.

Used by the bulk-job run report, the reconciliation report and the finance order export:

    write_workbook(path, [Sheet("Items", columns, rows)], summary=Summary(...))

Every data sheet gets a bold header row, panes frozen below it, an autofilter over the data, and
one number format per column kind:

    text      a string cell, number format '@', neutralised against formula injection
    int       an integer cell
    money     a Decimal (or int) written as its exact decimal digits, format '#,##0.00'
    datetime  a naive datetime, format 'yyyy-mm-dd hh:mm:ss'

Excel has no time zones: convert aware datetimes to naive ones in the zone the sheet states (say so
in `Sheet.note`, e.g. "Times are in UTC"); an aware datetime raises ValueError. A float in a money
column raises TypeError, so no amount ever passes through binary floating point on our side.

Files are written atomically: a crash leaves the previous file or none, never half a workbook.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, islice
from numbers import Integral
from pathlib import Path
from typing import Literal, cast

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.worksheet import Worksheet

__all__ = [
    "DATETIME_FORMAT",
    "MAX_ROWS",
    "MONEY_FORMAT",
    "TEXT_FORMAT",
    "Column",
    "Kind",
    "Sheet",
    "Summary",
    "atomic_path",
    "neutralise",
    "safe_sheet_name",
    "write_workbook",
]

Kind = Literal["text", "int", "money", "datetime"]

TEXT_FORMAT = "@"
MONEY_FORMAT = "#,##0.00"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
DATE_FORMAT = "yyyy-mm-dd"

MAX_ROWS = 1_048_576
"""Rows in one Excel worksheet, header and note included."""

MAX_CELL_CHARS = 32_767
MAX_SHEET_NAME = 31

_FORMULA_TRIGGERS = frozenset("=+-@\t\r")
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
_SAMPLE_ROWS = 200
_MIN_WIDTH = 6.0
_MAX_WIDTH = 60.0
# Room for the autofilter drop-down button next to a header.
_FILTER_BUTTON = 3


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


def neutralise(value: str) -> str:
    """Defuse formula injection: prefix "'" to text a spreadsheet would read as a formula.

    Applies to text beginning with '=', '+', '-', '@', tab or carriage return (the OWASP list),
    for every text cell we write, in .xlsx and in CSV alike. Idempotent.
    """
    if value and value[0] in _FORMULA_TRIGGERS:
        return "'" + value
    return value


def safe_sheet_name(name: str) -> str:
    """`name` made acceptable to Excel as a sheet name.

    Characters Excel forbids ([]:*?/\\ and control characters) become '_', leading and trailing
    apostrophes are dropped, the result is cut to 31 characters; an empty name becomes "Sheet"
    and the reserved name "History" becomes "History_".
    """
    cleaned = _SHEET_NAME_FORBIDDEN.sub("_", name).strip("'")
    cleaned = cleaned[:MAX_SHEET_NAME].rstrip("'")
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
        candidate = safe_sheet_name(name)[: MAX_SHEET_NAME - len(suffix)].rstrip("'") + suffix
    taken.add(candidate.casefold())
    return candidate


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a fresh path next to `path`; on success it replaces `path`, on error it is removed.

    The temporary file already exists (so the name is ours) with the default umask applied;
    writers open it for writing, truncating. Its data is flushed to disk before the rename, so
    after a crash or power loss `path` is the old file or the complete new one.
    """
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        with open(temp, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_workbook(path: Path, sheets: Sequence[Sheet], summary: Summary | None = None) -> None:
    """Write `sheets` (after a `summary` sheet, when given) to the .xlsx file `path`, atomically.

    Raises ValueError for a tz-aware datetime, a non-finite Decimal, a row whose length differs
    from its sheet's columns, a sheet with no columns or more rows than Excel holds; TypeError for
    a value that does not fit its column kind (e.g. a float in a money column). Messages name the
    sheet, row and column.
    """
    if not sheets and summary is None:
        raise ValueError("a workbook needs at least one sheet")
    workbook = Workbook(write_only=True)
    try:
        taken: set[str] = set()
        if summary is not None:
            _write_summary(workbook, _unique_sheet_name(summary.sheet_name, taken), summary)
        for sheet in sheets:
            _write_sheet(workbook, _unique_sheet_name(sheet.name, taken), sheet)
        with atomic_path(path) as temp:
            workbook.save(temp)
    except BaseException:
        _abandon(workbook)
        raise


def _abandon(workbook: Workbook) -> None:
    # A sheet left half-written keeps a suspended row writer whose clean-up, at garbage
    # collection, would write to its already closed scratch file and warn.
    for ws in workbook.worksheets:
        if isinstance(ws, WriteOnlyWorksheet) and not ws.closed:
            with suppress(Exception):
                ws.close()


# --- cell values -------------------------------------------------------------------------------
#
# A column's encoder turns one value into what `append` takes: None (no cell is written), a plain
# int, or the column's reused, pre-styled cell holding the value. The encoders fix each cell's
# data type themselves: openpyxl's own inference would turn text such as "#N/A" into an error
# cell, and writes a Decimal through "%.16g" (i.e. via float), whereas a numeric cell holding
# decimal digits is written verbatim. Reusing one cell per column is safe because `append`
# serialises the row before it returns.

_Encoder = Callable[[object], object]


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


def _decimal_digits(value: object) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value!r} is not a finite amount")
        return format(value, "f")
    if isinstance(value, Integral) and not isinstance(value, bool):
        return str(int(value))
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


def _put_text(cell: Cell, value: object) -> Cell:
    cell.value = _text(value)
    cell.data_type = "s"
    return cell


def _put_money(cell: Cell, value: object) -> Cell:
    cell.value = _decimal_digits(value)
    cell.data_type = "n"
    return cell


def _put_datetime(cell: Cell, value: object) -> Cell:
    cell.value = _naive(value)
    return cell


def _encoder(ws: WriteOnlyWorksheet, kind: Kind) -> _Encoder:
    if kind == "int":
        return _int
    cell = Cell(ws, row=1, column=1)
    put: Callable[[Cell, object], Cell]
    if kind == "text":
        cell.number_format = TEXT_FORMAT
        put = _put_text
    elif kind == "money":
        cell.number_format = MONEY_FORMAT
        put = _put_money
    else:
        cell.number_format = DATETIME_FORMAT
        put = _put_datetime

    def encode(value: object) -> object:
        if value is None or (value.__class__ is str and not value):
            return None
        return put(cell, value)

    return encode


def _display_width(kind: Kind, value: object) -> int:
    if value is None:
        return 0
    if kind == "money" and isinstance(value, Decimal | int) and not isinstance(value, bool):
        return len(f"{value:,.2f}")
    if kind == "datetime":
        return len("yyyy-mm-dd hh:mm:ss")
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


def _layout(ws: WriteOnlyWorksheet) -> Worksheet:
    # WriteOnlyWorksheet has Worksheet's column_dimensions and auto_filter at run time, but
    # types-openpyxl does not declare them.
    return cast(Worksheet, ws)


def _styled_cell(ws: WriteOnlyWorksheet, value: object, *, font: Font | None = None) -> Cell:
    cell = _put_text(Cell(ws, row=1, column=1), value)
    if font is not None:
        cell.font = font
    return cell


_BOLD = Font(bold=True)


def _write_sheet(workbook: Workbook, title: str, sheet: Sheet) -> None:
    columns = list(sheet.columns)
    if not columns:
        raise ValueError(f"sheet {title!r} has no columns")
    ws: WriteOnlyWorksheet = workbook.create_sheet(title)
    rows = iter(sheet.rows)
    sample = list(islice(rows, _SAMPLE_ROWS))
    layout = _layout(ws)
    for index, width in enumerate(_widths(columns, sample), start=1):
        layout.column_dimensions[get_column_letter(index)].width = width

    header_row = 1 if sheet.note is None else 2
    # Panes and column widths are written with the sheet's first row, so set them before it.
    ws.freeze_panes = f"A{header_row + 1}"
    if sheet.note is not None:
        ws.append([_styled_cell(ws, sheet.note)])
    ws.append([_styled_cell(ws, column.header, font=_BOLD) for column in columns])

    encoders = [_encoder(ws, column.kind) for column in columns]
    width = len(columns)
    last_row = header_row
    for last_row, row in enumerate(chain(sample, rows), start=header_row + 1):
        if len(row) != width:
            raise ValueError(f"sheet {title!r}, row {last_row}: {len(row)} values, {width} columns")
        if last_row > MAX_ROWS:
            raise ValueError(f"sheet {title!r}: more than {MAX_ROWS} rows do not fit Excel")
        try:
            ws.append([encode(value) for encode, value in zip(encoders, row, strict=True)])
        except (TypeError, ValueError) as error:
            where = f"sheet {title!r}, row {last_row}, column {_culprit(encoders, row, columns)!r}"
            raise type(error)(f"{where}: {error}") from error

    layout.auto_filter.ref = f"A{header_row}:{get_column_letter(width)}{last_row}"


def _culprit(encoders: Sequence[_Encoder], row: Sequence[object], columns: Sequence[Column]) -> str:
    for encode, value, column in zip(encoders, row, columns, strict=True):
        try:
            encode(value)
        except (TypeError, ValueError):
            return column.header
    return "?"


def _put_fact(cell: Cell, value: object) -> Cell:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | dt.date):
        cell.number_format = TEXT_FORMAT
        return _put_text(cell, "" if value is None else value)
    if isinstance(value, Decimal):
        cell.number_format = MONEY_FORMAT
        return _put_money(cell, value)
    if isinstance(value, dt.datetime):
        cell.number_format = DATETIME_FORMAT
        return _put_datetime(cell, value)
    if isinstance(value, dt.date):
        cell.number_format = DATE_FORMAT
    cell.value = value
    return cell


def _write_summary(workbook: Workbook, title: str, summary: Summary) -> None:
    ws: WriteOnlyWorksheet = workbook.create_sheet(title)
    label_width = max([len(key) for key, _ in summary.facts] + [len(summary.counts_header[0])])
    value_width = max([_display_width("text", value) for _, value in summary.facts] + [10])
    layout = _layout(ws)
    layout.column_dimensions["A"].width = min(max(label_width + 2, 12), _MAX_WIDTH)
    layout.column_dimensions["B"].width = min(max(value_width + 2, 12), _MAX_WIDTH)

    ws.append([_styled_cell(ws, summary.title, font=Font(bold=True, size=14))])
    ws.append([])
    for key, value in summary.facts:
        try:
            cell = _put_fact(Cell(ws, row=1, column=1), value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"sheet {title!r}, fact {key!r}: {error}") from error
        ws.append([_styled_cell(ws, key, font=_BOLD), cell])
    if not summary.counts:
        return

    ws.append([])
    header_row = len(summary.facts) + 4
    ws.append([_styled_cell(ws, text, font=_BOLD) for text in summary.counts_header])
    for label, count in summary.counts:
        ws.append([_styled_cell(ws, label), _int(count)])
    last_row = header_row + len(summary.counts)

    chart = BarChart()
    chart.type = "col"
    chart.title = f"{summary.counts_header[1]} by {summary.counts_header[0].lower()}"
    chart.legend = None
    chart.x_axis.title = summary.counts_header[0]
    chart.y_axis.title = summary.counts_header[1]
    # openpyxl >= 3.1 marks axes as deleted by default, which hides their labels in Excel.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.width = 18
    chart.height = 9
    data = Reference(ws, min_col=2, min_row=header_row, max_row=last_row)
    categories = Reference(ws, min_col=1, min_row=header_row + 1, max_row=last_row)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(categories)
    layout.add_chart(chart, "D3")
