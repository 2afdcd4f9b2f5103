"""Looking inside an .xlsx before python-calamine reads it, and reading it sparsely when calamine
cannot.

python-calamine builds a sheet as one dense rectangle from the first to the last cell holding any
value, a blank text included: one blank cell at ``XFD1048576`` asks for 17 billion cells and the
process aborts. `scan_sheet` streams the sheet's XML (bounded by `MAX_SHEET_XML_BYTES`; twice when
cells lie beyond column G) and measures that rectangle; one over `DENSE_CELL_BUDGET` is read by
`read_sparse_sheet` instead, which keeps only the cells that hold something (at most
`SPARSE_CELL_BUDGET`). The scan also finds the cells holding an Excel error (``#N/A``...), which
calamine turns into empty strings. Shared strings are unpacked once to check their size before
calamine loads them; .ods and .xlsb (which calamine would read) are refused.

Everything here raises `WorkbookProblem` (a message for the file's owner) or returns; the caller
adds the path and sheet.
"""

from __future__ import annotations

import functools
import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from xml.etree import ElementTree
from xml.parsers import expat

__all__ = [
    "DENSE_CELL_BUDGET",
    "MAX_SHEET_XML_BYTES",
    "OTHER_SPREADSHEETS",
    "SPARSE_CELL_BUDGET",
    "SheetScan",
    "SparseSheet",
    "WorkbookProblem",
    "read_sparse_sheet",
    "reject_other_formats",
    "require_readable_shared_strings",
    "scan_sheet",
]

DENSE_CELL_BUDGET = 8_000_000
"""Largest rectangle (rows x columns) handed to calamine: about 300 MB while it is read."""
SPARSE_CELL_BUDGET = 8_000_000
"""Most filled cells kept when a sheet is read sparsely (about 1 GB of Python objects)."""
MAX_SHEET_XML_BYTES = 1024 * 1024 * 1024
"""Largest uncompressed sheet (or shared strings) XML read; a million rows is about 150 MB."""
_SMALL_PART_BYTES = 16 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024
_MAIN_RELS = "_rels/.rels"
_OFFICE_DOCUMENT = "/officeDocument"
_ODS_MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"

SparseCell = str | float | bool


OTHER_SPREADSHEETS = {
    ".ods": (
        "this is an OpenDocument spreadsheet (.ods), which lf-bulk does not read: open it and "
        "save it as an Excel Workbook (.xlsx), or export the sheet as CSV."
    ),
    ".xlsb": (
        "this is an Excel Binary Workbook (.xlsb), which lf-bulk does not read: save it as an "
        "Excel Workbook (.xlsx), or export the sheet as CSV."
    ),
}
"""Spreadsheet formats refused by name and by content, with what to do instead."""


class WorkbookProblem(Exception):
    """The workbook cannot be read as an .xlsx; the message is meant for whoever made it.

    `damaged` says the file is broken (rather than of a kind or size lf-bulk does not read)."""

    def __init__(self, message: str, *, damaged: bool = True) -> None:
        super().__init__(message)
        self.damaged = damaged


@dataclass(frozen=True)
class SheetScan:
    part: str
    """The sheet's part in the archive."""
    dense_cells: int
    """Cells in the rectangle calamine would build (an upper bound)."""
    regular: bool
    """Every cell carries its reference (as Excel writes them), so `dense_cells` is exact."""
    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    """Error cells by 0-based (row, column)."""

    @property
    def fits_dense(self) -> bool:
        return self.regular and self.dense_cells <= DENSE_CELL_BUDGET


@dataclass(frozen=True)
class SparseSheet:
    cells: dict[int, dict[int, SparseCell]]
    """Non-blank cells by 0-based row, then column."""


def reject_other_formats(archive: zipfile.ZipFile) -> None:
    """Refuse zip-based spreadsheets that are not .xlsx/.xlsm (calamine would read some)."""
    names = set(archive.namelist())
    if "mimetype" in names and _ODS_MIMETYPE in _read_part(archive, "mimetype", 4096):
        raise WorkbookProblem(OTHER_SPREADSHEETS[".ods"], damaged=False)
    if "xl/workbook.bin" in names:
        raise WorkbookProblem(OTHER_SPREADSHEETS[".xlsb"], damaged=False)


def require_readable_shared_strings(archive: zipfile.ZipFile) -> None:
    """Refuse shared strings too large to unpack, before calamine unpacks them all at once."""
    if "xl/sharedStrings.xml" in archive.namelist():
        for _chunk in _xml_chunks(archive, "xl/sharedStrings.xml"):
            pass


def scan_sheet(archive: zipfile.ZipFile, sheet: str) -> SheetScan:
    """Measure `sheet` without building it (see the module docstring)."""
    part = _sheet_part(archive, sheet)
    errors: dict[tuple[int, int], str] = {}
    narrow = True
    for prefix, chunk in _sheet_chunks(archive, part):
        # A sheet whose cells all sit in columns A to G and above row 1,000,000, each written with
        # its reference first (as Excel writes them), fits the budget: no need to measure it.
        narrow = narrow and _patterns(prefix).outside_narrow.search(chunk) is None
        if b't="e"' in chunk:
            errors.update(_error_cells(chunk, prefix))
    if narrow:
        return SheetScan(part, _NARROW_COLUMNS * _NARROW_ROWS, regular=True, errors=errors)
    dense, regular = _measure(archive, part)
    return SheetScan(part, dense, regular=regular, errors=errors)


def _measure(archive: zipfile.ZipFile, part: str) -> tuple[int, bool]:
    """The rectangle calamine would build, and whether every cell carries its reference."""
    min_row = min_col = 1 << 30
    max_row = max_col = -1
    references = tags = 0
    for prefix, chunk in _sheet_chunks(archive, part):
        patterns = _patterns(prefix)
        found = patterns.reference.findall(chunk)
        if found:
            references += len(found)
            rows = list(map(int, map(itemgetter(1), found)))
            columns = [_column_number(letters) for letters in set(map(itemgetter(0), found))]
            min_col, max_col = min(min_col, *columns), max(max_col, *columns)
            min_row, max_row = min(min_row, *rows), max(max_row, *rows)
        tags += sum(chunk.count(tag) for tag in patterns.tags)
    if max_row > _MAX_ROWS or max_col >= _MAX_COLUMNS:
        raise WorkbookProblem(
            f"a cell lies outside the largest sheet Excel allows (row {max_row}, "
            f"column {max_col + 1})"
        )
    dense = 0 if max_row < 0 else (max_row - min_row + 1) * (max_col - min_col + 1)
    return dense, references == tags


def _sheet_chunks(archive: zipfile.ZipFile, part: str) -> Iterator[tuple[bytes, bytes]]:
    """The chunks of the sheet's XML from the one opening <sheetData>, with the tag prefix."""
    prefix: bytes | None = None
    for chunk in _xml_chunks(archive, part):
        if prefix is None:
            prefix = _element_prefix(chunk)
            if prefix is None:
                continue  # no cells before <sheetData>
        yield prefix, chunk


def read_sparse_sheet(archive: zipfile.ZipFile, part: str) -> SparseSheet:
    """The non-blank cells of the sheet stored in `part`, in bounded memory."""
    shared = _shared_strings(archive)
    reader = _SheetReader(shared)
    parser = expat.ParserCreate()
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    try:
        for chunk in _xml_chunks(archive, part):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as error:
        raise WorkbookProblem(f"the sheet's XML is damaged ({error})") from None
    return SparseSheet(reader.cells)


# --- parts -----------------------------------------------------------------------------------


def _read_part(archive: zipfile.ZipFile, name: str, limit: int = _SMALL_PART_BYTES) -> bytes:
    try:
        with archive.open(name) as stream:
            data = stream.read(limit + 1)
    except KeyError:
        raise WorkbookProblem(f"the part {name!r} is missing") from None
    if len(data) > limit:
        raise WorkbookProblem(f"the part {name!r} is implausibly large")
    return data


def _xml_chunks(archive: zipfile.ZipFile, name: str) -> Iterator[bytes]:
    """The part's bytes in chunks that each end after a '>' (no tag is split between two)."""
    total = 0
    carry = b""
    try:
        stream = archive.open(name)
    except KeyError:
        raise WorkbookProblem(f"the part {name!r} is missing") from None
    with stream:
        while block := stream.read(_CHUNK):
            total += len(block)
            if total > MAX_SHEET_XML_BYTES:
                raise WorkbookProblem(
                    f"the workbook holds more than {MAX_SHEET_XML_BYTES // (1024 * 1024)} MB of "
                    "data once unpacked, more than lf-bulk reads: export the ICCID column as CSV.",
                    damaged=False,
                )
            block = carry + block
            # A block without any '>' is inside a long text, where a cut does no harm.
            cut = block.rfind(b">") + 1 or len(block)
            carry = block[cut:]
            yield block[:cut]
    if carry:
        yield carry


def _sheet_part(archive: zipfile.ZipFile, sheet: str) -> str:
    workbook = _target(archive, _MAIN_RELS, "", kind_suffix=_OFFICE_DOCUMENT)
    folder = posixpath.dirname(workbook)
    rels = posixpath.join(folder, "_rels", posixpath.basename(workbook) + ".rels")
    root = _parse(archive, workbook)
    ids = {
        _attribute(entry, "name"): _attribute(entry, "id")
        for entry in root.iter()
        if _local(entry.tag) == "sheet"
    }
    wanted = ids.get(sheet)
    if wanted is None:
        raise WorkbookProblem(f"the workbook does not list the sheet {sheet!r}")
    return _target(archive, rels, folder, rid=wanted)


def _target(
    archive: zipfile.ZipFile,
    rels: str,
    folder: str,
    *,
    kind_suffix: str | None = None,
    rid: str | None = None,
) -> str:
    """The part a relationship of `rels` points to, chosen by its type or by its id."""
    for entry in _parse(archive, rels).iter():
        if _local(entry.tag) != "Relationship":
            continue
        if rid is not None:
            chosen = entry.get("Id") == rid
        else:
            chosen = entry.get("Type", "").endswith(kind_suffix or "")
        if chosen:
            target = entry.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join(folder, target))
    raise WorkbookProblem(f"{rels!r} does not name the part it should")


def _parse(archive: zipfile.ZipFile, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(_read_part(archive, name))
    except ElementTree.ParseError as error:
        raise WorkbookProblem(f"the part {name!r} is damaged ({error})") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _attribute(element: ElementTree.Element, local: str) -> str:
    for key, value in element.attrib.items():
        if _local(key) == local:
            return value
    return ""


# --- the scan --------------------------------------------------------------------------------

_SHEET_DATA = re.compile(rb"<([A-Za-z_][\w.-]*:)?sheetData[\s>/]")


def _element_prefix(chunk: bytes) -> bytes | None:
    match = _SHEET_DATA.search(chunk)
    return None if match is None else (match.group(1) or b"")


_NARROW_COLUMNS = 7
_NARROW_ROWS = 999_999
_MAX_ROWS = 1_048_576
_MAX_COLUMNS = 16_384


@dataclass(frozen=True)
class _Patterns:
    reference: re.Pattern[bytes]
    """A cell reference written first, as Excel does; groups: column letters, row digits."""
    tags: tuple[bytes, ...]
    """Every way a cell element may start."""
    outside_narrow: re.Pattern[bytes]
    """A cell beyond column G or row 999,999, or one not starting with its reference."""


@functools.cache
def _patterns(prefix: bytes) -> _Patterns:
    # A cell written without its reference first makes the counts differ and the sheet is read
    # sparsely, which is always safe.
    tag = b"<" + prefix + b"c"
    name = re.escape(tag)
    return _Patterns(
        reference=re.compile(name + rb' r="([A-Z]{1,3})([0-9]{1,7})"'),
        tags=(tag + b" ", tag + b">", tag + b"/>", tag + b"\t", tag + b"\n", tag + b"\r"),
        outside_narrow=re.compile(
            name + rb'(?: r="(?:[H-Z]|[A-Z]{2}|[A-Z][0-9]{7})|(?! r="[A-Z])[\s/>])'
        ),
    )


def _error_cells(chunk: bytes, prefix: bytes) -> Iterator[tuple[tuple[int, int], str]]:
    for letters, digits, text in _error_pattern(prefix).findall(chunk):
        yield (int(digits) - 1, _column_number(letters)), text.decode("utf-8", "replace")


@functools.cache
def _error_pattern(prefix: bytes) -> re.Pattern[bytes]:
    # The value must be the cell's own: only an optional formula may stand between the cell's
    # start tag and its <v>, so a valueless error cell never takes the next cell's value.
    cell, formula, value = (re.escape(b"<" + prefix + name) for name in (b"c", b"f", b"v>"))
    closing = re.escape(b"</" + prefix + b"f>")
    return re.compile(
        cell
        + rb' r="([A-Z]{1,3})([0-9]{1,7})"[^>]*?\bt="e"[^>]*(?<!/)>'
        + rb"(?:"
        + formula
        + rb"\b[^>]*/>|"
        + formula
        + rb"\b[^>]*>[^<]*"
        + closing
        + rb")?"
        + value
        + rb"([^<]*)<"
    )


def _column_number(letters: bytes | str) -> int:
    """0-based: A -> 0, Z -> 25, AA -> 26."""
    number = 0
    for letter in letters.encode() if isinstance(letters, str) else letters:
        number = number * 26 + letter - 64
    return number - 1


_REFERENCE = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")


# --- the sparse reader -----------------------------------------------------------------------


class _SheetReader:
    """expat handlers that collect the non-blank cells of a worksheet."""

    def __init__(self, shared: list[str]) -> None:
        self.shared = shared
        self.cells: dict[int, dict[int, SparseCell]] = {}
        self.row = -1
        self.column = -1
        self.kind = ""
        self.parts: list[str] | None = None
        self.value: list[str] = []
        self.inline: list[str] = []
        self.kept = 0

    def start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "row":
            number = attributes.get("r")
            self.row = int(number) - 1 if number and number.isdigit() else self.row + 1
            self.column = -1
        elif local == "c":
            match = _REFERENCE.fullmatch(attributes.get("r", ""))
            if match:
                self.row = int(match.group(2)) - 1
                self.column = _column_number(match.group(1))
            else:
                self.column += 1
            self.kind = attributes.get("t", "n")
            self.value = []
            self.inline = []
        elif local == "v":
            self.parts = self.value
        elif local == "t":
            self.parts = self.inline

    def end(self, name: str) -> None:
        local = name.rpartition(":")[2]
        if local in ("v", "t"):
            self.parts = None
        elif local == "c":
            cell = self._cell()
            if cell is not None and not (isinstance(cell, str) and not cell.strip()):
                if not (0 <= self.row < _MAX_ROWS and 0 <= self.column < _MAX_COLUMNS):
                    raise WorkbookProblem(
                        f"a cell lies outside the largest sheet Excel allows (row {self.row + 1}, "
                        f"column {self.column + 1})"
                    )
                self.kept += 1
                if self.kept > SPARSE_CELL_BUDGET:
                    raise WorkbookProblem(
                        f"the sheet holds more than {SPARSE_CELL_BUDGET:,} filled cells, more than "
                        "lf-bulk reads: copy the ICCID column to a new workbook, or export it as "
                        "CSV.",
                        damaged=False,
                    )
                self.cells.setdefault(self.row, {})[self.column] = cell

    def text(self, data: str) -> None:
        if self.parts is not None:
            self.parts.append(data)

    def _cell(self) -> SparseCell | None:
        value = "".join(self.value)
        kind = self.kind
        if kind == "inlineStr":
            return "".join(self.inline)
        if kind == "s":
            index = int(value) if value.strip().isdigit() else -1
            return self.shared[index] if 0 <= index < len(self.shared) else ""
        if kind in ("str", "d"):
            return value
        if kind == "b":
            return value.strip() == "1"
        if kind == "e":
            return value
        try:
            return float(value) if value.strip() else None
        except ValueError:
            return value


def _shared_strings(archive: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in archive.namelist():
        return []
    strings: list[str] = []
    current: list[str] = []
    depth = {"t": 0, "rPh": 0}

    def start(name: str, _attributes: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "si":
            current.clear()
        elif local in depth:
            depth[local] += 1

    def end(name: str) -> None:
        local = name.rpartition(":")[2]
        if local == "si":
            strings.append("".join(current))
        elif local in depth:
            depth[local] -= 1

    def text(data: str) -> None:
        # Phonetic guides (rPh) are readings shown above the text, not part of it.
        if depth["t"] and not depth["rPh"]:
            current.append(data)

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        for chunk in _xml_chunks(archive, "xl/sharedStrings.xml"):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as error:
        raise WorkbookProblem(f"the workbook's shared strings are damaged ({error})") from None
    return strings
