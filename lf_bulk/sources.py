"""Reading ICCID lists from the files users bring: .csv, .tsv, .txt, .xlsx, .xlsm and `-` (stdin).

`read_iccids` turns a file into an `InputTable`: one `InputRow` per data row, already validated
(`lf_bulk.iccid`), numbered as the user sees the row in a spreadsheet or text editor. The rows are
kept as columns (`InputRows`) and validated column-wise (`iccid.validate_column`): a row object is
made only when it is asked for, and `InputTable.counts` and `valid_iccids()` make none.

How a file is read:

- Text (.csv, .txt, stdin): UTF-8 with or without BOM, UTF-16/UTF-32 with a BOM, otherwise
  Windows-1252. The separator (``,`` ``;`` tab ``|``) is the one on most of the first 20 non-blank
  lines; with none, each line is one cell. .tsv is always tab-separated. Every cell is read as text.
  Stdin holding an .xlsx workbook is recognised by its signature.
- Only a regular file (or a link to one) is opened, never a pipe or a device, and no input larger
  than `MAX_INPUT_BYTES` is read (stdin included).
- Workbooks (.xlsx, .xlsm): the first visible worksheet unless `sheet` names one. Formula cells give
  their cached value; an error cell its text (``#N/A``). A cell Excel stored as a number gets
  `Reason.NUMERIC_CELL` (its last digits are already lost); `raw` shows it as Excel would, e.g.
  ``8.98524201809103E+19``. python-calamine reads a sheet whose used range fits
  `workbooks.DENSE_CELL_BUDGET`; a larger one is read sparsely (`lf_bulk.workbooks`), where a
  date-formatted number is a number. .ods, .xlsb and HTML/XML "exports" are refused.
- The header row is the first of the first 100 rows holding an ICCID header (see `ICCID_HEADERS`;
  case, spaces, underscores, dashes and dots are ignored) or the `column` asked for; rows above it
  (titles) are ignored. Two columns with that header are an error. A one-column file needs no
  known header, and has no header at all when its first cell is a number or holds ten or more
  digits; a lone cell above wider rows is a title, not a header.
- Blank rows inside the data are kept and reported as `Reason.EMPTY`; blank rows at the end are
  ignored.
- `extra_columns` maps a logical name to header aliases (the name itself also matches); each row
  gets the stripped text of those cells in `InputRow.extra`, '' when the column is absent.
- `require_column=False` is for callers keyed by other columns (orders export): a file without an
  ICCID column is then accepted and its rows have ``iccid == ""`` and ``reason is None``; blank
  rows are kept as they are, so such callers look at `extra` themselves.

Every problem with the file itself (missing, empty, damaged, password-protected, unsupported, no
ICCID column, header without rows) raises `InputError` with a message meant for whoever made the
file; no library exception escapes.
"""

from __future__ import annotations

import csv
import gc
import io
import itertools
import operator
import os
import re
import stat
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Protocol, cast

from lf_bulk import workbooks
from lf_bulk.errors import InputError
from lf_bulk.iccid import Reason, looks_rounded, normalize, validate_column
from lf_bulk.lazy import BuiltOnDemand, lazy_module
from lf_bulk.models import InputCounts

if TYPE_CHECKING:
    import pandas as pd
    import python_calamine as calamine
else:
    pd = lazy_module("pandas")
    calamine = lazy_module("python_calamine")

__all__ = [
    "ICCID_HEADERS",
    "MAX_INPUT_BYTES",
    "InputCounts",
    "InputRow",
    "InputRows",
    "InputTable",
    "read_iccids",
    "visible_sheets",
]

ICCID_HEADERS: tuple[str, ...] = (
    "iccid",
    "iccid number",
    "iccid no",
    "iccid code",
    "sim iccid",
    "sim_id",
    "sim serial number",
    "sim serial",
    "sim card",
    "sim number",
    "sim no",
    "sim",
)
"""Headers recognised as the ICCID column, most specific first."""

STDIN = "-"
MAX_INPUT_BYTES = 256 * 1024 * 1024
"""The largest input read (a million ICCIDs with a few columns is about 30 MB); see `max_bytes`."""
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")

Cell = str | int | float | bool | date | datetime | time | timedelta
"""A cell as python-calamine returns it; text sources only ever hold `str`."""

_NO_EXTRAS: Mapping[str, str] = MappingProxyType({})
_NO_EXTRA_COLUMNS: Mapping[str, Sequence[str]] = MappingProxyType({})
_HEADER_SCAN_ROWS = 100
_HEADERLESS_MIN_DIGITS = 10
_ICCID_LIKE_NUMBER = 1e14
_SNIFF_CHARS = 65536
_SNIFF_LINES = 20
_DELIMITERS = (",", ";", "\t", "|")
_ZIP_MAGIC = b"PK\x03\x04"
_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
)
_HEADER_NOISE = re.compile(r"[\s_\-.#:]+")
_SUPPORTED = "use .csv, .tsv, .txt, .xlsx or .xlsm"
_SAVE_AS_XLSX = "open it in Excel and save it as an Excel Workbook (.xlsx)"
_WEB_PAGE_ADVICE = (
    "Some systems export tables this way: open it in Excel and save it as an Excel Workbook "
    "(.xlsx), or export the list as CSV."
)


@dataclass(frozen=True, slots=True)
class InputRow:
    row: int
    """Row number as the user sees it: header = 1, first data row = 2 (headerless .txt: line 1)."""
    raw: str
    """The cell as text; a number cell as Excel shows it, e.g. '8.98524201809103E+19'."""
    iccid: str
    """`raw` normalized (spaces and dashes removed)."""
    reason: Reason | None
    """None when the ICCID is valid."""
    extra: Mapping[str, str] = field(default_factory=lambda: _NO_EXTRAS)
    """Stripped values of the requested extra columns, '' when the column is absent."""


class InputRows(BuiltOnDemand[InputRow]):
    """The rows of an input kept as columns; an `InputRow` is made only when one is asked for.

    A million valid rows cost a few lists instead of a million objects; iterating makes each row
    as it goes (and lets it go). Compares equal to any sequence of the same rows.
    """

    __slots__ = ("_extras", "_first_row", "iccids", "raws", "reasons")
    item_name = "input row"

    def __init__(
        self,
        first_row: int,
        raws: Sequence[str],
        iccids: Sequence[str],
        reasons: Sequence[Reason | None],
        extras: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        if not len(raws) == len(iccids) == len(reasons):
            raise ValueError("the columns of an input differ in length")
        if extras is not None and len(extras) != len(raws):
            raise ValueError("the extra columns of an input differ in length")
        self._first_row = first_row
        self.raws = raws
        """The cells as text, row by row."""
        self.iccids = iccids
        """The normalized values."""
        self.reasons = reasons
        """Why each row is rejected; None for a valid ICCID."""
        self._extras = extras

    def __len__(self) -> int:
        return len(self.raws)

    def _item(self, position: int) -> InputRow:
        extra = _NO_EXTRAS if self._extras is None else self._extras[position]
        return InputRow(
            self._first_row + position,
            self.raws[position],
            self.iccids[position],
            self.reasons[position],
            extra,
        )

    def __iter__(self) -> Iterator[InputRow]:
        extras = itertools.repeat(_NO_EXTRAS) if self._extras is None else self._extras
        return map(
            InputRow,
            itertools.count(self._first_row),
            self.raws,
            self.iccids,
            self.reasons,
            extras,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return len(self) == len(other) and all(
            mine == theirs for mine, theirs in zip(self, other, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"InputRows({len(self)} rows from row {self._first_row})"

    def valid_iccids(self) -> list[str]:
        """The ICCIDs of the valid rows, in row order, without making a row object."""
        return list(itertools.compress(self.iccids, map(operator.not_, self.reasons)))


@dataclass(frozen=True)
class InputTable:
    source: str
    """The path as given, or '<stdin>'."""
    sheet: str | None
    """The worksheet read; None for text files."""
    column: str
    """Header of the ICCID column; '' when the file has no header or no ICCID column."""
    rows: Sequence[InputRow]
    """A list, or `InputRows` (what `read_iccids` returns for an ICCID column)."""
    headers: tuple[str, ...] = ()
    """The non-empty cells of the header row; () for a file without a header."""
    unread_sheets: tuple[str, ...] = ()
    """The workbook's other visible worksheets, which were not read."""

    @cached_property
    def valid_rows(self) -> list[InputRow]:
        return [row for row in self.rows if row.reason is None]

    @cached_property
    def invalid_rows(self) -> list[InputRow]:
        """Rejected rows other than duplicates."""
        return [row for row in self.rows if row.reason not in (None, Reason.DUPLICATE)]

    @cached_property
    def duplicate_rows(self) -> list[InputRow]:
        return [row for row in self.rows if row.reason is Reason.DUPLICATE]

    @cached_property
    def reason_counts(self) -> Counter[Reason]:
        if isinstance(self.rows, InputRows):
            # Reasons are non-empty strings and a valid row's is None: filter keeps the loop in C.
            return Counter(filter(None, self.rows.reasons))
        return Counter(row.reason for row in self.rows if row.reason is not None)

    @property
    def counts(self) -> InputCounts:
        rejected = self.reason_counts
        duplicates = rejected[Reason.DUPLICATE]
        invalid = sum(rejected.values()) - duplicates
        return InputCounts(
            input_rows=len(self.rows),
            valid=len(self.rows) - invalid - duplicates,
            invalid=invalid,
            duplicates=duplicates,
        )

    def valid_iccids(self) -> list[str]:
        """The ICCIDs of the valid rows, in row order (cheaper than `valid_rows`)."""
        if isinstance(self.rows, InputRows):
            return self.rows.valid_iccids()
        return [row.iccid for row in self.valid_rows]


def read_iccids(
    path: str | Path,
    *,
    sheet: str | None = None,
    column: str | None = None,
    extra_columns: Mapping[str, Sequence[str]] = _NO_EXTRA_COLUMNS,
    require_column: bool = True,
    stdin: IO[bytes] | None = None,
    max_bytes: int | None = None,
) -> InputTable:
    """Read and validate the ICCIDs of `path` (see the module docstring for the rules).

    Only a regular file (or a link to one) or `-` is read, and at most `max_bytes` of it
    (default `MAX_INPUT_BYTES`): a pipe, a device or a larger input is refused before it is read.
    Raises `InputError` for any problem with the file as a whole; problems with single values are
    reported per row through `InputRow.reason`.
    """
    source = "<stdin>" if str(path) == STDIN else str(path)
    aliases = {name: _as_aliases(names) for name, names in extra_columns.items()}
    wanted = _Wanted(column or None, aliases, require_column)
    limit = MAX_INPUT_BYTES if max_bytes is None else max_bytes
    with _collector_paused():
        loaded = _load(path, source, sheet, stdin, limit)
        return _tabulate(loaded, source, wanted)


@contextmanager
def _collector_paused() -> Iterator[None]:
    # A million rows allocate millions of small objects without reference cycles; the cyclic
    # collector keeps rescanning them for nothing, which costs about a third of the build time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _as_aliases(names: Sequence[str]) -> tuple[str, ...]:
    # A bare string is a Sequence[str] too; take it as one alias, not as its letters.
    return (names,) if isinstance(names, str) else tuple(names)


# --- loading: bytes to a grid of cells -------------------------------------------------------


class _Grid(Protocol):
    @property
    def height(self) -> int: ...

    def row(self, index: int) -> Sequence[Cell]: ...

    def column(self, index: int) -> Sequence[Cell]: ...


@dataclass(frozen=True)
class _RowGrid:
    rows: list[list[Cell]]

    @property
    def height(self) -> int:
        return len(self.rows)

    def row(self, index: int) -> Sequence[Cell]:
        return self.rows[index]

    def column(self, index: int) -> Sequence[Cell]:
        if min(map(len, self.rows), default=0) > index:
            return list(map(itemgetter(index), self.rows))
        return [row[index] if index < len(row) else "" for row in self.rows]


@dataclass(frozen=True)
class _ColumnGrid:
    columns: list[list[str]]

    @property
    def height(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def row(self, index: int) -> Sequence[Cell]:
        return [column[index] for column in self.columns]

    def column(self, index: int) -> Sequence[Cell]:
        return self.columns[index] if index < len(self.columns) else [""] * self.height


@dataclass(frozen=True)
class _SparseGrid:
    """Rows of a sheet too sparse to hold as a rectangle: only non-blank cells are stored."""

    cells: Mapping[int, Mapping[int, Cell]]
    rows_high: int

    @property
    def height(self) -> int:
        return self.rows_high

    def row(self, index: int) -> Sequence[Cell]:
        cells = self.cells.get(index)
        if not cells:
            return []
        return [cells.get(column, "") for column in range(max(cells) + 1)]

    def column(self, index: int) -> Sequence[Cell]:
        empty: Mapping[int, Cell] = {}
        return [self.cells.get(row, empty).get(index, "") for row in range(self.rows_high)]


@dataclass(frozen=True)
class _Loaded:
    grid: _Grid
    first_row_number: int
    """Spreadsheet row number of the grid's first row."""
    typed: bool
    """Cells may be numbers, dates... (workbooks); text sources hold only str."""
    sheet: str | None = None
    sheets: tuple[str, ...] = ()
    """The workbook's sheets for messages, hidden ones marked."""
    first_column: int = 0
    """0-based sheet column of the grid's first column (workbooks name columns by letter)."""
    unread_sheets: tuple[str, ...] = ()
    """Visible worksheets other than the one read (reconcile refuses to ignore them silently)."""


def _load(
    path: str | Path, source: str, sheet: str | None, stdin: IO[bytes] | None, limit: int
) -> _Loaded:
    if str(path) == STDIN:
        data = (stdin or sys.stdin.buffer).read(limit + 1)
        _require_within(len(data), limit, source)
        if data.startswith(_ZIP_MAGIC):
            return _load_workbook(data, source, sheet)
        return _load_text(data, source, sheet, delimiter=None)
    _require_regular_file(Path(path), source)
    suffix = Path(path).suffix.lower()
    _require_supported_suffix(suffix, source)
    data = _read_bytes(Path(path), source, limit)
    if suffix in WORKBOOK_SUFFIXES:
        return _load_workbook(data, source, sheet)
    return _load_text(data, source, sheet, delimiter="\t" if suffix == ".tsv" else None)


def _require_supported_suffix(suffix: str, source: str) -> None:
    if suffix in TEXT_SUFFIXES or suffix in WORKBOOK_SUFFIXES:
        return
    if suffix == ".xls":
        message = f"the old Excel 97-2003 format (.xls) is not supported: {_SAVE_AS_XLSX}."
    elif suffix in workbooks.OTHER_SPREADSHEETS:
        message = workbooks.OTHER_SPREADSHEETS[suffix]
    elif suffix:
        message = f"files of type {suffix!r} are not supported: {_SUPPORTED}."
    else:
        message = f"the file name has no extension, so its format is unknown: {_SUPPORTED}."
    raise InputError(message, path=source)


def _require_regular_file(path: Path, source: str) -> None:
    # stat, not open: opening a named pipe waits for a writer, and opening some devices acts.
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise InputError(_os_error_message(error), path=source) from None
    if not stat.S_ISREG(mode):
        raise InputError(_not_regular_message(mode), path=source)


def _not_regular_message(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "this is a folder, not a file."
    if stat.S_ISFIFO(mode):
        kind = "a named pipe (FIFO)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "a device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "a special file"
    return (
        f"this is {kind}, not a regular file, and lf-bulk reads only files. Save the list to a "
        "file, or pass - and send it on standard input."
    )


def _read_bytes(path: Path, source: str, limit: int) -> bytes:
    try:
        # O_NONBLOCK: should the path have become a pipe since it was checked, open must not wait.
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise InputError(_not_regular_message(mode), path=source)
            _require_within(os.fstat(file.fileno()).st_size, limit, source)
            data = file.read(limit + 1)
    except OSError as error:
        raise InputError(_os_error_message(error), path=source) from None
    _require_within(len(data), limit, source)
    return data


def _os_error_message(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "file not found."
    if isinstance(error, IsADirectoryError):
        return "this is a folder, not a file."
    if isinstance(error, PermissionError):
        return "permission denied: the file cannot be read."
    return f"the file cannot be read ({error.strerror or error})."


def _require_within(size: int, limit: int, source: str) -> None:
    if size > limit:
        raise InputError(
            f"the input is larger than {_megabytes(limit)}, the most lf-bulk reads at once: "
            "split it into smaller files and run them one after the other.",
            path=source,
        )


def _megabytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MB"
    return f"{size:,} bytes"


# --- text files ----------------------------------------------------------------------------


def _load_text(data: bytes, source: str, sheet: str | None, *, delimiter: str | None) -> _Loaded:
    if sheet is not None:
        raise InputError("--sheet applies only to Excel workbooks (.xlsx).", path=source)
    _reject_workbook_as_text(data, source)
    text, codec = _decode(data, source)
    if not text.strip():
        raise InputError("the file is empty.", path=source)
    delimiter = delimiter or _sniff_delimiter(text)
    if delimiter is None:
        return _Loaded(_split_lines(text), first_row_number=1, typed=False)
    return _Loaded(_parse_delimited(data, text, codec, delimiter, source), 1, typed=False)


def _reject_workbook_as_text(data: bytes, source: str) -> None:
    exported = _exported_page(data)
    if exported:
        raise InputError(f"this is {exported}, not a text file. {_WEB_PAGE_ADVICE}", path=source)
    if data.startswith(_ZIP_MAGIC):
        raise InputError(
            "this is an Excel workbook, not a text file: rename it to .xlsx.", path=source
        )
    if data.startswith(_CFB_MAGIC):
        raise InputError(
            f"this is an old Excel workbook (.xls), not a text file: {_SAVE_AS_XLSX}.", path=source
        )


def _decode(data: bytes, source: str) -> tuple[str, str]:
    """The text of `data` and the codec that decoded it."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError:
                raise InputError(
                    f"the file starts like {name} text but is not valid {name}; "
                    "save it again as 'CSV UTF-8'.",
                    path=source,
                ) from None
    if b"\x00" in data[:4096]:
        raise InputError(
            "this is not a plain text file: it is binary, or UTF-16 text without a byte order "
            "mark. Save it again as 'CSV UTF-8'.",
            path=source,
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Excel's plain "CSV" export is Windows-1252; ICCIDs are ASCII either way.
        return data.decode("cp1252", errors="replace"), "cp1252"


def _sniff_delimiter(text: str) -> str | None:
    """The separator found on the most of the first lines (then the most often), if any."""
    lines = [line for line in text[:_SNIFF_CHARS].splitlines() if line.strip()][:_SNIFF_LINES]

    def score(delimiter: str) -> tuple[int, int]:
        return sum(delimiter in line for line in lines), sum(
            line.count(delimiter) for line in lines
        )

    best = max(_DELIMITERS, key=score)
    return best if score(best)[0] else None


def _split_lines(text: str) -> _ColumnGrid:
    # str.splitlines would also split on form feeds and other rare separators and shift the line
    # numbers away from what an editor shows.
    if "\r" in text:  # one scan, rather than two replaces of a text that has none
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if '"' in text:
        lines = [_unquote(line) for line in lines]
    return _ColumnGrid([lines])


def _unquote(line: str) -> str:
    stripped = line.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == '"':
        return stripped[1:-1].replace('""', '"')
    return line


def _parse_delimited(data: bytes, text: str, codec: str, delimiter: str, source: str) -> _Grid:
    # pandas' C parser is about twice as fast as the csv module on a million rows and lets us
    # keep only the columns we need. But it refuses rows longer than the first one, and it reads
    # an unclosed quote silently to the end of the file; the csv module copes with the first and,
    # strict, points at the line of the second.
    if text.count('"') % 2:
        return _RowGrid(_csv_module_rows(text, delimiter, source))
    buffer: io.BytesIO | io.StringIO = (
        io.BytesIO(data) if codec.startswith("utf-8") else io.StringIO(text)
    )
    try:
        frame = pd.read_csv(
            buffer,
            sep=delimiter,
            header=None,
            dtype=object,
            na_filter=False,
            skip_blank_lines=False,
            encoding=codec if codec.startswith("utf-8") else None,
            engine="c",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        return _RowGrid(_csv_module_rows(text, delimiter, source))
    return _ColumnGrid([frame[label].tolist() for label in frame.columns])


def _csv_module_rows(text: str, delimiter: str, source: str) -> list[list[Cell]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[list[Cell]] = []
    record_start = 1
    try:
        for row in reader:
            rows.append(list(row))
            record_start = reader.line_num + 1
    except csv.Error as error:
        if "field larger than field limit" in str(error):
            message = (
                f"a cell is longer than {csv.field_size_limit():,} characters, far more than a "
                "list of ICCIDs holds: check that this is the right file, or remove that cell."
            )
        else:
            message = (
                f"the file is not valid CSV ({error}): check the quotes of the row starting here."
            )
        raise InputError(message, path=source, row=record_start) from None
    return rows


# --- workbooks -----------------------------------------------------------------------------


def _load_workbook(data: bytes, source: str, sheet: str | None) -> _Loaded:
    _require_xlsx_signature(data, source)
    with _workbook_errors(source, sheet):
        archive = zipfile.ZipFile(io.BytesIO(data))
        workbooks.reject_other_formats(archive)
        workbooks.require_readable_shared_strings(archive)
        workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        metadata = list(workbook.sheets_metadata)
    with workbook:
        chosen = _choose_sheet(metadata, sheet, source)
        with _workbook_errors(source, chosen):
            scan = workbooks.scan_sheet(archive, chosen)
            if scan.fits_dense:
                grid, first_row_number, first_column = _dense_grid(workbook, chosen, scan)
            else:
                grid, first_row_number, first_column = _sparse_grid(archive, scan)
    sheets = tuple(_describe_sheet(entry) for entry in metadata)
    unread = tuple(
        entry.name
        for entry in metadata
        if entry.name != chosen
        and entry.visible == calamine.SheetVisibleEnum.Visible
        and entry.typ == calamine.SheetTypeEnum.WorkSheet
    )
    return _Loaded(
        grid,
        first_row_number,
        True,
        chosen,
        sheets=sheets,
        first_column=first_column,
        unread_sheets=unread,
    )


def _dense_grid(
    workbook: calamine.CalamineWorkbook, sheet: str, scan: workbooks.SheetScan
) -> tuple[_Grid, int, int]:
    worksheet = workbook.get_sheet_by_name(sheet)
    rows = worksheet.to_python()
    top, left = worksheet.start or (0, 0)
    for (row, column), text in scan.errors.items():
        # calamine reads an error cell as an empty string; put back what Excel shows.
        if 0 <= row - top < len(rows) and 0 <= column - left < len(rows[row - top]):
            rows[row - top][column - left] = text
    return _RowGrid(rows), top + 1, left


def _sparse_grid(archive: zipfile.ZipFile, scan: workbooks.SheetScan) -> tuple[_Grid, int, int]:
    cells = workbooks.read_sparse_sheet(archive, scan.part).cells
    top = min(cells, default=0)
    height = max(cells, default=-1) - top + 1
    grid = _SparseGrid({row - top: values for row, values in cells.items()}, height)
    return grid, top + 1, 0


def _require_xlsx_signature(data: bytes, source: str) -> None:
    if not data:
        raise InputError("the file is empty (0 bytes).", path=source)
    if data.startswith(_CFB_MAGIC):
        raise InputError(_compound_file_message(data), path=source)
    if data.startswith(_ZIP_MAGIC):
        return
    exported = _exported_page(data)
    if exported:
        message = f"this is {exported} with an Excel name, not a workbook. {_WEB_PAGE_ADVICE}"
    elif _looks_like_text(data):
        message = "this is a text file with an .xlsx name, not an Excel workbook: rename it .csv."
    else:
        message = "this is not an Excel workbook (.xlsx): the file is damaged or of another type."
    raise InputError(message, path=source)


def _compound_file_message(data: bytes) -> str:
    # Encrypted .xlsx files and legacy .xls files are both OLE compound files; their stream
    # names (UTF-16 in the directory) tell them apart when the directory is intact.
    if "EncryptedPackage".encode("utf-16-le") in data:
        return (
            "the workbook is password-protected. Open it in Excel, remove the password "
            "(File > Info > Protect Workbook > Encrypt with Password) and save it again as .xlsx."
        )
    if "Workbook".encode("utf-16-le") in data or "Book".encode("utf-16-le") in data:
        return f"this is an old Excel 97-2003 workbook (.xls) with an .xlsx name: {_SAVE_AS_XLSX}."
    return (
        "this is an old .xls or a password-protected workbook; save it as .xlsx without a password."
    )


def _exported_page(data: bytes) -> str | None:
    """What an "export to Excel" that is no workbook is (an HTML table, an XML spreadsheet)."""
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"urn:schemas-microsoft-com:office:spreadsheet" in head:
        return "an Excel 2003 XML spreadsheet"
    if head.startswith((b"<!doctype html", b"<html", b"<table")) or (
        head.startswith(b"<?xml") and b"<html" in head
    ):
        return "a web page (HTML)"
    return None


def _looks_like_text(data: bytes) -> bool:
    head = data[:1024]
    return not any(byte < 9 or 13 < byte < 32 for byte in head)


def visible_sheets(path: str | Path, *, max_bytes: int | None = None) -> tuple[str, ...]:
    """The visible worksheets of the workbook at `path`, in workbook order (what `sheet` may
    name); () for a text file. Checked and refused as `read_iccids` checks the file."""
    source = str(path)
    suffix = Path(path).suffix.lower()
    _require_supported_suffix(suffix, source)
    if suffix not in WORKBOOK_SUFFIXES:
        return ()
    path = Path(path)
    _require_regular_file(path, source)
    data = _read_bytes(path, source, MAX_INPUT_BYTES if max_bytes is None else max_bytes)
    _require_xlsx_signature(data, source)
    with _workbook_errors(source, None):
        workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
        with workbook:
            return tuple(
                entry.name
                for entry in workbook.sheets_metadata
                if entry.visible == calamine.SheetVisibleEnum.Visible
                and entry.typ == calamine.SheetTypeEnum.WorkSheet
            )


@contextmanager
def _workbook_errors(source: str, sheet: str | None) -> Iterator[None]:
    """Turn whatever python-calamine raises for a damaged workbook into an InputError."""
    try:
        yield
    except calamine.PasswordError:
        raise InputError(
            "the workbook is password-protected; remove the password and save it again.",
            path=source,
            sheet=sheet,
        ) from None
    except workbooks.WorkbookProblem as problem:
        message = str(problem)
        if problem.damaged:
            message = (
                f"the workbook is damaged and cannot be read ({problem}). Open it in Excel and "
                "save it again as an Excel Workbook (.xlsx), or export the sheet as CSV."
            )
        raise InputError(message, path=source, sheet=sheet) from None
    except InputError:
        raise
    except Exception as error:
        raise InputError(
            f"the workbook is damaged and cannot be read ({error}). Open it in Excel and save "
            "it again as an Excel Workbook (.xlsx), or export the sheet as CSV.",
            path=source,
            sheet=sheet,
        ) from error
    except BaseException as error:
        # A panic in the Rust reader arrives as pyo3's PanicException, a BaseException so that
        # `except Exception` does not hide it; it says the file broke the reader, nothing more.
        if type(error).__name__ != "PanicException":
            raise
        raise InputError(
            "lf-bulk could not read this workbook (the Excel reader failed on it). Open it in "
            "Excel and save it again as an Excel Workbook (.xlsx), or export the sheet as CSV.",
            path=source,
            sheet=sheet,
        ) from None


def _choose_sheet(metadata: list[calamine.SheetMetadata], wanted: str | None, source: str) -> str:
    listing = ", ".join(_describe_sheet(entry) for entry in metadata) or "none"
    if wanted is not None:
        return _sheet_named(metadata, wanted, listing, source)
    for entry in metadata:
        if (
            entry.visible == calamine.SheetVisibleEnum.Visible
            and entry.typ == calamine.SheetTypeEnum.WorkSheet
        ):
            return entry.name
    raise InputError(
        f"the workbook has no visible worksheet (sheets: {listing}); choose one with --sheet NAME.",
        path=source,
    )


def _sheet_named(
    metadata: list[calamine.SheetMetadata], wanted: str, listing: str, source: str
) -> str:
    names = [entry.name for entry in metadata]
    if wanted in names:
        return wanted
    folded = [name for name in names if name.strip().casefold() == wanted.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise InputError(
        f"there is no sheet named {wanted!r}; the workbook's sheets are: {listing}.", path=source
    )


def _describe_sheet(entry: calamine.SheetMetadata) -> str:
    hidden = "" if entry.visible == calamine.SheetVisibleEnum.Visible else " (hidden)"
    return f"{entry.name!r}{hidden}"


# --- cells -----------------------------------------------------------------------------------


def _cell_text(cell: Cell) -> str:
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float):
        return _number_text(cell)
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, date | time):
        return cell.isoformat()
    return str(cell)


def _number_text(value: float) -> str:
    """`value` as Excel shows it in the formula bar: integers up to 15 digits, else 15 digits E."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15G}"


def _is_number(cell: Cell) -> bool:
    return isinstance(cell, int | float) and not isinstance(cell, bool)


def _is_blank(cell: Cell) -> bool:
    return isinstance(cell, str) and not cell.strip()


def _is_blank_row(cells: Sequence[Cell]) -> bool:
    return all(_is_blank(cell) for cell in cells)


def header_key(text: str) -> str:
    """`text` as headers are compared: case, spaces, underscores, dashes, dots, '#' and ':'
    ignored ("SIM_ID", "sim id" and "Sim-Id" are one header)."""
    return _HEADER_NOISE.sub("", text.casefold())


_ICCID_KEYS = [header_key(header) for header in ICCID_HEADERS]
_ICCID_KEY_SET = frozenset(_ICCID_KEYS)


def is_iccid_header(text: str) -> bool:
    """Whether `text` is one of `ICCID_HEADERS`, compared as `header_key` does."""
    return header_key(text) in _ICCID_KEY_SET


# --- from a grid to rows -------------------------------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    column: str | None
    extra_columns: dict[str, tuple[str, ...]]
    require_column: bool


@dataclass(frozen=True)
class _Layout:
    data_start: int
    """Grid index of the first data row."""
    iccid_index: int | None
    column_name: str
    extra_indexes: dict[str, int | None]
    headers: tuple[str, ...] = ()


def _tabulate(loaded: _Loaded, source: str, wanted: _Wanted) -> InputTable:
    height = _content_height(loaded.grid)
    if height == 0:
        raise InputError(_empty_message(loaded), path=source, sheet=loaded.sheet)
    layout = _find_layout(loaded, height, wanted, source)
    rows = _input_rows(loaded, layout, height)
    if not rows:
        raise InputError(
            f"there is a header row ({layout.column_name!r}) but no data rows below it.",
            path=source,
            sheet=loaded.sheet,
        )
    return InputTable(
        source=source,
        sheet=loaded.sheet,
        column=layout.column_name,
        rows=rows,
        headers=layout.headers,
        unread_sheets=loaded.unread_sheets,
    )


def _content_height(grid: _Grid) -> int:
    height = grid.height
    while height and _is_blank_row(grid.row(height - 1)):
        height -= 1
    return height


def _empty_message(loaded: _Loaded) -> str:
    if loaded.sheet is None:
        return "the file is empty."
    return f"the sheet is empty; choose another with --sheet NAME (sheets: {_sheets(loaded)})."


def _sheets(loaded: _Loaded) -> str:
    return ", ".join(loaded.sheets)


def _find_layout(loaded: _Loaded, height: int, wanted: _Wanted, source: str) -> _Layout:
    grid = loaded.grid
    first = next(index for index in range(height) if not _is_blank_row(grid.row(index)))
    candidates = [
        index
        for index in range(first, min(height, first + _HEADER_SCAN_ROWS))
        if not _is_blank_row(grid.row(index))
    ]
    keys = [header_key(wanted.column)] if wanted.column else _ICCID_KEYS
    for index in candidates:
        headers = _row_texts(grid, index)
        found = _find_column(headers, keys)
        if found is not None:
            _require_single_column(loaded, index, headers, found, source)
            return _header_layout(index, found, headers, wanted)
        if any(_holds_iccid(cell) for cell in grid.row(index)):
            # The data has begun: a header-like cell further down is data too (say a header
            # pasted twice), and taking it for the header would drop every row above it.
            break
    return _fallback_layout(loaded, candidates, wanted, source)


def _holds_iccid(cell: Cell) -> bool:
    if _is_number(cell):
        return abs(cast(float, cell)) >= _ICCID_LIKE_NUMBER
    return sum(character.isdigit() for character in normalize(_cell_text(cell))) >= 15


def _require_single_column(
    loaded: _Loaded, index: int, headers: list[str], found: int, source: str
) -> None:
    key = header_key(headers[found])
    twins = [column for column, header in enumerate(headers) if header_key(header) == key]
    if len(twins) < 2:
        return
    labels = [_column_label(loaded, column) for column in twins]
    named = " and ".join(repr(headers[column].strip()) for column in twins)
    both = "both" if len(twins) == 2 else "all"
    raise InputError(
        f"columns {', '.join(labels[:-1])} and {labels[-1]} are {both} headed as the ICCID "
        f"column ({named}), and lf-bulk will not guess which one holds the ICCIDs: delete one "
        "of them or rename its header.",
        path=source,
        sheet=loaded.sheet,
        row=loaded.first_row_number + index,
    )


def _column_label(loaded: _Loaded, index: int) -> str:
    """How the user finds a column: by letter in a workbook, by position in a text file."""
    if loaded.sheet is None:
        return str(index + 1)
    number = loaded.first_column + index + 1
    letters = ""
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _fallback_layout(
    loaded: _Loaded, candidates: list[int], wanted: _Wanted, source: str
) -> _Layout:
    """Layout of a file without a recognised ICCID header in its first rows."""
    grid = loaded.grid
    first = candidates[0]
    first_cells = grid.row(first)
    headers = [_cell_text(cell) for cell in first_cells]
    filled = [index for index, cell in enumerate(first_cells) if not _is_blank(cell)]
    # A lone cell on the first row heads a one-column list, unless rows below are wider: then
    # it is a title above a table whose header we did not recognise.
    wider = next((index for index in candidates if _filled_count(grid.row(index)) > 1), None)
    if wanted.column is None and len(filled) == 1:
        only = filled[0]
        if _looks_like_value(first_cells[only]):
            return _Layout(first, only, "", dict.fromkeys(wanted.extra_columns))
        is_title = wider is not None and wanted.require_column
        if not is_title and (wanted.require_column or not _is_extra_header(headers[only], wanted)):
            return _header_layout(first, only, headers, wanted)
    if wanted.require_column or wanted.column is not None:
        shown = wider if len(filled) == 1 and wider is not None else first
        raise InputError(
            _missing_column_message(
                loaded,
                _row_texts(grid, shown),
                wanted.column,
                scanned=len(candidates),
                header_row=loaded.first_row_number + shown,
            ),
            path=source,
            sheet=loaded.sheet,
        )
    return _header_layout(first, None, headers, wanted)


def _filled_count(cells: Sequence[Cell]) -> int:
    return sum(1 for cell in cells if not _is_blank(cell))


def _header_layout(
    header_index: int, iccid_index: int | None, headers: list[str], wanted: _Wanted
) -> _Layout:
    extra_indexes = {
        name: _find_column(headers, [header_key(alias) for alias in (*aliases, name)])
        for name, aliases in wanted.extra_columns.items()
    }
    column_name = headers[iccid_index].strip() if iccid_index is not None else ""
    seen = tuple(header.strip() for header in headers if header.strip())
    return _Layout(header_index + 1, iccid_index, column_name, extra_indexes, seen)


def _row_texts(grid: _Grid, index: int) -> list[str]:
    return [_cell_text(cell) for cell in grid.row(index)]


def _find_column(headers: list[str], keys: list[str]) -> int | None:
    """Index of the header matching the earliest of `keys`, None when none does."""
    positions: dict[str, int] = {}
    for index, header in enumerate(headers):
        positions.setdefault(header_key(header), index)
    return next((positions[key] for key in keys if key and key in positions), None)


def _is_extra_header(header: str, wanted: _Wanted) -> bool:
    key = header_key(header)
    return any(
        key == header_key(alias)
        for name, aliases in wanted.extra_columns.items()
        for alias in (*aliases, name)
    )


def _looks_like_value(cell: Cell) -> bool:
    """Whether the first cell of a one-column file is data rather than a header."""
    if _is_number(cell):
        return True
    text = normalize(_cell_text(cell))
    digits = sum(character.isdigit() for character in text)
    return digits >= _HEADERLESS_MIN_DIGITS or text.isdigit() or looks_rounded(text)


def _missing_column_message(
    loaded: _Loaded,
    headers: list[str],
    column: str | None,
    *,
    scanned: int,
    header_row: int,
) -> str:
    seen = ", ".join(repr(header.strip()) for header in headers if header.strip()) or "none"
    if column:
        wanted = f"no column named {column!r}"
    else:
        wanted = "no ICCID column (a header such as 'ICCID', 'SIM_ID' or 'ICCID number')"
    hint = "Name the column with --column NAME"
    if loaded.sheets:
        hint += f", or choose another sheet with --sheet NAME (sheets: {_sheets(loaded)})"
    rows = "row" if scanned == 1 else f"{scanned} rows"
    return f"found {wanted} in the first {rows}. Headers seen: {seen} (row {header_row}). {hint}."


def _input_rows(loaded: _Loaded, layout: _Layout, height: int) -> Sequence[InputRow]:
    start = layout.data_start
    first_number = loaded.first_row_number + start
    extras = _extra_values(loaded, layout, height)
    if layout.iccid_index is None:
        return [
            InputRow(first_number + offset, "", "", None, extra)
            for offset, extra in zip(
                range(height - start), extras or itertools.repeat(_NO_EXTRAS), strict=False
            )
        ]
    cells = loaded.grid.column(layout.iccid_index)[start:height]
    raws = _texts(cells, typed=loaded.typed)
    numeric = [type(cell) is float or type(cell) is int for cell in cells] if loaded.typed else None
    iccids, reasons = validate_column(raws, numeric)
    # Columns, not a million row objects: InputRows makes a row when one is asked for.
    return InputRows(first_number, raws, iccids, reasons, extras)


def _texts(cells: Sequence[Cell], *, typed: bool) -> Sequence[str]:
    if not typed:
        # Text sources hold only str; skipping the per-cell conversion matters at a million rows.
        return cast(Sequence[str], cells)
    return [cell if type(cell) is str else _cell_text(cell) for cell in cells]


def _extra_values(loaded: _Loaded, layout: _Layout, height: int) -> list[Mapping[str, str]] | None:
    """Each row's extra cells by name; None when no extra column was asked for."""
    if not layout.extra_indexes:
        return None
    start = layout.data_start
    names = list(layout.extra_indexes)
    columns = [
        _stripped_texts(loaded, index, start, height) for index in layout.extra_indexes.values()
    ]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _stripped_texts(loaded: _Loaded, index: int | None, start: int, height: int) -> list[str]:
    if index is None:
        return [""] * (height - start)
    cells = loaded.grid.column(index)[start:height]
    return [text.strip() for text in _texts(cells, typed=loaded.typed)]
