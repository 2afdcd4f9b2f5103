"""A corpus of bad input files, each with what `read_iccids` must make of it.

Every case is either refused as a whole (`error`: a substring of the `InputError` message) or read
with a known reason for every row (`rows`: row number -> reason, None meaning valid).

    python tests/badinput_corpus.py OUT_DIR [--large]

writes the corpus to OUT_DIR for trying the CLI by hand; `--large` adds a 50 MB CSV.
"""

from __future__ import annotations

import argparse
import codecs
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openpyxl

from lf_bulk.iccid import Reason, with_check_digit

VALID = "89852420180910340793"
VALID_B = with_check_digit("898524201809103408")
VALID_C = with_check_digit("8985242018091034081")
LARGE_FILE_BYTES = 50_000_000

E = Reason.EMPTY
ND = Reason.NOT_DIGITS
BL = Reason.BAD_LENGTH
BP = Reason.BAD_PREFIX
BC = Reason.BAD_CHECKSUM
NC = Reason.NUMERIC_CELL
DUP = Reason.DUPLICATE
XE = Reason.EXCEL_ERROR


@dataclass(frozen=True)
class CorpusCase:
    path: Path
    problem: str
    """What is wrong with the file, in words."""
    error: str | None = None
    """A substring of the InputError message when the whole file must be refused."""
    rows: Mapping[int, Reason | None] | None = None
    """Every row read, by row number, with its reason (None = valid)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments for read_iccids."""
    row_count: int | None = None
    """For cases too large to list: the number of rows expected (all valid)."""


Builder = Callable[[Path], CorpusCase]
BUILDERS: list[Builder] = []


def case(builder: Builder) -> Builder:
    BUILDERS.append(builder)
    return builder


def build_corpus(directory: Path, *, large: bool = False) -> list[CorpusCase]:
    """Write every corpus file into `directory` and describe what each must produce."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = [build(directory) for build in BUILDERS]
    if large:
        cases.append(large_csv(directory))
    return cases


# --- writers ----------------------------------------------------------------------------------


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(
    path: Path, sheets: Mapping[str, list[list[Any]]], hidden: tuple[str, ...] = ()
) -> Path:
    workbook = openpyxl.Workbook()
    default = workbook.active
    assert default is not None
    workbook.remove(default)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
        if name in hidden:
            sheet.sheet_state = "hidden"
    workbook.save(path)
    return path


def write_raw_xlsx(path: Path, sheet_data_xml: str) -> Path:
    """A minimal one-sheet workbook written part by part, for cells openpyxl cannot produce
    (formulas with cached values)."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rels = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" '
            'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{rels}"><Relationship Id="rId1" '
            f'Type="{office}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{office}"><sheets>'
            '<sheet name="Formulas" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{rels}"><Relationship Id="rId1" '
            f'Type="{office}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{main}"><sheetData>{sheet_data_xml}</sheetData></worksheet>'
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>' + xml)
    return path


def compound_file(*stream_names: str) -> bytes:
    """Bytes starting like an OLE compound file (.xls or encrypted .xlsx), naming `stream_names`
    the way its directory does (UTF-16)."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    names = b"".join(name.encode("utf-16-le").ljust(128, b"\0") for name in stream_names)
    return header + names + bytes(1024)


def iccid_lines(*values: str, header: str | None = "iccid") -> str:
    lines = values if header is None else (header, *values)
    return "\n".join(lines) + "\n"


# --- the cases --------------------------------------------------------------------------------


@case
def numeric_excel_cells(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "numeric_cells.xlsx",
        {"ICCIDs": [["ICCID"], [float(VALID)], [VALID_B], [int(VALID_C[:15])], [1.5]]},
    )
    return CorpusCase(
        path,
        "ICCIDs typed as numbers in Excel: rounded to 15 digits",
        rows={2: NC, 3: None, 4: NC, 5: NC},
    )


@case
def scientific_notation_text(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "scientific.csv",
        iccid_lines("8.98524E+19", '"8,98524201809103E+19"', "8.98524201809103e19", VALID),
    )
    return CorpusCase(
        path,
        "ICCIDs Excel had rounded and then saved as text in scientific notation",
        rows={2: NC, 3: NC, 4: NC, 5: None},
    )


@case
def eighteen_digits(directory: Path) -> CorpusCase:
    path = write_text(directory / "digits18.csv", iccid_lines(VALID[:18], VALID))
    return CorpusCase(path, "an 18-digit value", rows={2: BL, 3: None})


@case
def twenty_one_digits(directory: Path) -> CorpusCase:
    path = write_text(directory / "digits21.csv", iccid_lines(with_check_digit(VALID), VALID_B))
    return CorpusCase(path, "a 21-digit value", rows={2: BL, 3: None})


@case
def twenty_two_digits(directory: Path) -> CorpusCase:
    path = write_text(directory / "digits22.txt", iccid_lines(VALID + "00", VALID, header=None))
    return CorpusCase(path, "a 22-digit value in a headerless list", rows={1: BL, 2: None})


@case
def letters(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "letters.csv",
        iccid_lines("8985242O180910340793", "ICCID89852420180910340793", "89852420180910340793F"),
    )
    return CorpusCase(path, "letters in the value", rows={2: ND, 3: ND, 4: ND})


@case
def check_digit(directory: Path) -> CorpusCase:
    swapped = VALID[:2] + VALID[3] + VALID[2] + VALID[4:]
    path = write_text(directory / "check_digit.csv", iccid_lines(VALID[:-1] + "0", swapped))
    return CorpusCase(path, "wrong check digit; two digits swapped", rows={2: BC, 3: BC})


@case
def duplicates(directory: Path) -> CorpusCase:
    spaced = " ".join(VALID[i : i + 4] for i in range(0, 20, 4))
    path = write_text(
        directory / "duplicates.csv", iccid_lines(VALID, VALID_B, spaced, VALID, "123", "123")
    )
    return CorpusCase(
        path,
        "the same ICCID three times (once with spaces); a repeated typo stays a typo",
        rows={2: None, 3: None, 4: DUP, 5: DUP, 6: BL, 7: BL},
    )


@case
def blank_rows(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "blank_rows.csv", f"iccid,group\n{VALID},G1\n\n,G2\n{VALID_B},G3\n\n\n"
    )
    return CorpusCase(
        path,
        "a blank line and a row without ICCID inside the data; blank lines at the end",
        rows={2: None, 3: E, 4: E, 5: None},
    )


@case
def whitespace_rows(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "whitespace.txt", f"{VALID}\n   \n\t\n\u00a0\u00a0\n{VALID_B}\n  \n"
    )
    return CorpusCase(
        path,
        "rows of spaces, tabs and non-breaking spaces",
        rows={1: None, 2: E, 3: E, 4: E, 5: None},
    )


@case
def utf8_bom(directory: Path) -> CorpusCase:
    path = write_text(directory / "bom.csv", "\ufeffICCID,Group\n" + f"{VALID},G1\n", "utf-8")
    return CorpusCase(
        path,
        "a UTF-8 byte order mark before the header",
        rows={2: None},
        options={"extra_columns": {"group": ["group"]}},
    )


@case
def semicolons(directory: Path) -> CorpusCase:
    path = write_text(directory / "semicolon.csv", f"Gruppe;ICCID\nG1;{VALID}\nG2;{VALID[:-2]}\n")
    return CorpusCase(
        path, "semicolon-separated, ICCID in the second column", rows={2: None, 3: BL}
    )


@case
def tabs_in_csv(directory: Path) -> CorpusCase:
    path = write_text(directory / "tabs.csv", f"SIM_ID\tnote\n{VALID}\ta, b\n{VALID_B}\t\n")
    return CorpusCase(path, "tab-separated although named .csv", rows={2: None, 3: None})


@case
def tsv(directory: Path) -> CorpusCase:
    path = write_text(directory / "list.tsv", f"ICCID number\n{VALID}\n{VALID}\n")
    return CorpusCase(path, "a .tsv with one column and a duplicate", rows={2: None, 3: DUP})


@case
def utf16_with_bom(directory: Path) -> CorpusCase:
    path = directory / "utf16.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + f"iccid\r\n{VALID}\r\nx\r\n".encode("utf-16-le"))
    return CorpusCase(path, "UTF-16 text (Excel 'Unicode text')", rows={2: None, 3: ND})


@case
def utf16_without_bom(directory: Path) -> CorpusCase:
    path = directory / "utf16_nobom.csv"
    path.write_bytes(f"iccid\n{VALID}\n".encode("utf-16-le"))
    return CorpusCase(path, "UTF-16 text without a byte order mark", error="UTF-16")


@case
def windows_1252(directory: Path) -> CorpusCase:
    path = write_text(directory / "cp1252.csv", f"Gerät;ICCID\nÄ;{VALID}\n", "cp1252")
    return CorpusCase(path, "Windows-1252 text (Excel's plain CSV)", rows={2: None})


@case
def formulas(directory: Path) -> CorpusCase:
    path = write_raw_xlsx(
        directory / "formulas.xlsx",
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ICCID</t></is></c></row>'
        f'<row r="2"><c r="A2" t="str"><f>"{VALID[:10]}"&amp;"{VALID[10:]}"</f>'
        f"<v>{VALID}</v></c></row>"
        '<row r="3"><c r="A3"><f>A2&amp;""</f></c></row>'
        f'<row r="4"><c r="A4"><f>VALUE(A2)</f><v>{float(VALID)!r}</v></c></row>',
    )
    return CorpusCase(
        path,
        "formulas: text result, no cached result, numeric result",
        rows={2: None, 3: E, 4: NC},
    )


@case
def merged_cells(directory: Path) -> CorpusCase:
    path = directory / "merged.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in (["ICCID", "Group"], [VALID, "G1"], [None, "G1"], [None, "G1"], [VALID_B, "G2"]):
        sheet.append(row)
    sheet.merge_cells("A2:A4")
    workbook.save(path)
    return CorpusCase(path, "an ICCID merged over three rows", rows={2: None, 3: E, 4: E, 5: None})


@case
def hidden_sheet_first(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "hidden_first.xlsx",
        {"Old": [["iccid"], ["junk"]], "Current": [["ICCID"], [VALID]]},
        hidden=("Old",),
    )
    return CorpusCase(path, "a hidden sheet before the visible one", rows={2: None})


@case
def several_sheets(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "several_sheets.xlsx",
        {"First": [["ICCID"], [VALID]], "Second": [["ICCID"], ["x"], [VALID_B]]},
    )
    return CorpusCase(
        path,
        "several visible sheets; --sheet picks the second",
        rows={2: ND, 3: None},
        options={"sheet": "second"},
    )


@case
def unknown_sheet(directory: Path) -> CorpusCase:
    path = write_xlsx(directory / "unknown_sheet.xlsx", {"Data": [["ICCID"], [VALID]]})
    return CorpusCase(
        path,
        "--sheet names a sheet that does not exist",
        error="no sheet named 'Nope'",
        options={"sheet": "Nope"},
    )


@case
def missing_column_csv(directory: Path) -> CorpusCase:
    path = write_text(directory / "missing_column.csv", f"name,phone\nA,{VALID}\n")
    return CorpusCase(
        path, "no ICCID header among several columns", error="Headers seen: 'name', 'phone'"
    )


@case
def missing_column_xlsx(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "missing_column.xlsx",
        {"Contacts": [["Name", "MSISDN"], ["A", "852"]], "SIMs": [["ICCID"], [VALID]]},
    )
    return CorpusCase(
        path,
        "the first sheet has no ICCID column",
        error="--sheet NAME (sheets: 'Contacts', 'SIMs')",
    )


@case
def named_column_missing(directory: Path) -> CorpusCase:
    path = write_text(directory / "named_missing.csv", iccid_lines(VALID))
    return CorpusCase(
        path,
        "--column names a header that is not there",
        error="no column named 'SIM'",
        options={"column": "SIM"},
    )


@case
def empty_file(directory: Path) -> CorpusCase:
    path = write_text(directory / "empty.csv", "")
    return CorpusCase(path, "a 0-byte CSV", error="empty")


@case
def blank_lines_only(directory: Path) -> CorpusCase:
    path = write_text(directory / "blank.txt", "\n  \n\r\n")
    return CorpusCase(path, "only blank lines", error="empty")


@case
def empty_workbook_file(directory: Path) -> CorpusCase:
    path = write_text(directory / "empty.xlsx", "")
    return CorpusCase(path, "a 0-byte .xlsx", error="empty")


@case
def empty_sheet(directory: Path) -> CorpusCase:
    path = write_xlsx(directory / "empty_sheet.xlsx", {"Blank": [], "Data": [["ICCID"], [VALID]]})
    return CorpusCase(path, "the first sheet is empty", error="the sheet is empty")


@case
def header_only(directory: Path) -> CorpusCase:
    path = write_text(directory / "header_only.csv", "ICCID,Group\n")
    return CorpusCase(path, "a header and no rows", error="no data rows")


@case
def password_protected(directory: Path) -> CorpusCase:
    path = directory / "password.xlsx"
    path.write_bytes(compound_file("EncryptionInfo", "EncryptedPackage"))
    return CorpusCase(path, "a password-protected workbook", error="password-protected")


@case
def bare_compound_file(directory: Path) -> CorpusCase:
    path = directory / "ole_header_only.xlsx"
    path.write_bytes(compound_file())
    return CorpusCase(path, "only an OLE header", error="old .xls or a password-protected workbook")


@case
def xls_renamed(directory: Path) -> CorpusCase:
    path = directory / "legacy_renamed.xlsx"
    path.write_bytes(compound_file("Workbook", "\x05SummaryInformation"))
    return CorpusCase(path, "an old .xls renamed .xlsx", error="old Excel 97-2003 workbook (.xls)")


@case
def xls_extension(directory: Path) -> CorpusCase:
    path = directory / "legacy.xls"
    path.write_bytes(compound_file("Workbook"))
    return CorpusCase(path, "an .xls file", error="(.xls) is not supported")


@case
def corrupt_workbook(directory: Path) -> CorpusCase:
    path = directory / "corrupt.xlsx"
    path.write_bytes(bytes(range(256)) * 8)
    return CorpusCase(path, "random bytes named .xlsx", error="not an Excel workbook")


@case
def truncated_workbook(directory: Path) -> CorpusCase:
    whole = write_xlsx(directory / "whole.xlsx", {"Data": [["ICCID"], [VALID]]}).read_bytes()
    path = directory / "truncated.xlsx"
    path.write_bytes(whole[: len(whole) // 2])
    (directory / "whole.xlsx").unlink()
    return CorpusCase(path, "a workbook cut off half way", error="damaged")


@case
def zip_that_is_not_a_workbook(directory: Path) -> CorpusCase:
    path = directory / "not_a_workbook.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    return CorpusCase(path, "a zip archive without a workbook inside", error="damaged")


@case
def csv_named_xlsx(directory: Path) -> CorpusCase:
    path = write_text(directory / "really_csv.xlsx", iccid_lines(VALID))
    return CorpusCase(path, "a CSV renamed .xlsx", error="rename it .csv")


@case
def xlsx_named_csv(directory: Path) -> CorpusCase:
    workbook = write_xlsx(directory / "tmp.xlsx", {"Data": [["ICCID"], [VALID]]})
    path = directory / "really_xlsx.csv"
    workbook.rename(path)
    return CorpusCase(path, "a workbook renamed .csv", error="rename it to .xlsx")


@case
def unknown_extension(directory: Path) -> CorpusCase:
    path = write_text(directory / "list.pdf", iccid_lines(VALID))
    return CorpusCase(path, "an unsupported file type", error="'.pdf' are not supported")


@case
def unterminated_quote(directory: Path) -> CorpusCase:
    path = write_text(directory / "quote.csv", f'iccid,group\n"{VALID},G1\n{VALID_B},G2\n')
    return CorpusCase(path, "an opening quote never closed", error="not valid CSV")


@case
def ragged_rows(directory: Path) -> CorpusCase:
    path = write_text(directory / "ragged.csv", f"iccid\n{VALID},extra,cells\n{VALID_B}\n")
    return CorpusCase(path, "rows longer than the one-column header", rows={2: None, 3: None})


@case
def stray_quote_in_cell(directory: Path) -> CorpusCase:
    path = write_text(directory / "stray_quote.csv", f'iccid,note\n{VALID},5" screen\n')
    return CorpusCase(path, "a lone quote inside an unquoted cell", rows={2: None})


@case
def bad_prefix(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "prefix.csv", iccid_lines(with_check_digit("4" + VALID[1:-1]), VALID)
    )
    return CorpusCase(path, "a Luhn-valid number not starting with 89", rows={2: BP, 3: None})


@case
def spaces_dashes_fullwidth(directory: Path) -> CorpusCase:
    fullwidth = VALID.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    path = write_text(
        directory / "formatted.csv",
        iccid_lines(
            f" {VALID[:4]}-{VALID[4:12]}\u00a0{VALID[12:]} ", fullwidth, f"{VALID_B}\u2013"
        ),
    )
    return CorpusCase(
        path,
        "spaces, dashes, non-breaking spaces, full-width digits (all accepted)",
        rows={2: None, 3: DUP, 4: None},
    )


@case
def title_rows_above_header(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "title_rows.xlsx",
        {"Order": [["SIM order 2024-06"], [], ["No.", "ICCID"], [1, VALID], [2, VALID[:-2]]]},
    )
    return CorpusCase(path, "title rows above the header", rows={4: None, 5: BL})


@case
def booleans_and_dates(directory: Path) -> CorpusCase:
    from datetime import date

    path = write_xlsx(
        directory / "typed.xlsx", {"Data": [["ICCID"], [True], [date(2024, 1, 2)], [VALID]]}
    )
    return CorpusCase(
        path, "a boolean and a date where ICCIDs belong", rows={2: ND, 3: BL, 4: None}
    )


@case
def headerless_numeric_first_cell(directory: Path) -> CorpusCase:
    path = write_xlsx(directory / "headerless.xlsx", {"Data": [[float(VALID)], [VALID_B]]})
    return CorpusCase(path, "no header, first ICCID typed as a number", rows={1: NC, 2: None})


@case
def named_pipe(directory: Path) -> CorpusCase:
    path = directory / "pipe.csv"
    os.mkfifo(path)
    return CorpusCase(path, "a named pipe (FIFO) nobody writes to", error="named pipe")


@case
def link_to_dev_zero(directory: Path) -> CorpusCase:
    path = directory / "zero.xlsx"
    path.symlink_to("/dev/zero")
    return CorpusCase(path, "a link to /dev/zero named .xlsx", error="not a regular file")


@case
def blank_cell_at_the_last_cell(directory: Path) -> CorpusCase:
    path = write_raw_xlsx(
        directory / "far_blank.xlsx",
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ICCID</t></is></c></row>'
        f'<row r="2"><c r="A2" t="inlineStr"><is><t>{VALID}</t></is></c></row>'
        '<row r="1048576"><c r="XFD1048576" t="inlineStr"><is><t></t></is></c></row>',
    )
    return CorpusCase(
        path, "a blank text cell at XFD1048576 (a used range of 17 billion cells)", rows={2: None}
    )


@case
def opendocument_spreadsheet(directory: Path) -> CorpusCase:
    path = directory / "list.ods"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
    return CorpusCase(path, "an OpenDocument spreadsheet", error="OpenDocument spreadsheet (.ods)")


@case
def binary_workbook_named_xlsx(directory: Path) -> CorpusCase:
    path = directory / "binary.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("xl/workbook.bin", b"\x00")
    return CorpusCase(path, "an .xlsb workbook named .xlsx", error="Excel Binary Workbook (.xlsb)")


@case
def many_title_rows(directory: Path) -> CorpusCase:
    titles = [[f"Delivery note line {n}"] for n in range(1, 13)]
    path = write_xlsx(
        directory / "many_titles.xlsx",
        {"Note": [*titles, ["No.", "ICCID"], [1, VALID], [2, VALID[:-2]]]},
    )
    return CorpusCase(path, "twelve title rows above the header", rows={14: None, 15: BL})


@case
def title_row_over_an_unknown_header(directory: Path) -> CorpusCase:
    path = write_text(directory / "title_table.csv", f"SIM order June\nNo.,Card\n1,{VALID}\n")
    return CorpusCase(
        path,
        "a title row above a table whose header names no ICCID column",
        error="no ICCID column (a header such as 'ICCID', 'SIM_ID' or 'ICCID number') in the first",
    )


@case
def excel_error_cells(directory: Path) -> CorpusCase:
    path = write_raw_xlsx(
        directory / "na.xlsx",
        '<row r="1"><c r="A1" t="inlineStr"><is><t>ICCID</t></is></c></row>'
        '<row r="2"><c r="A2" t="e"><f>VLOOKUP(B2,X!A:A,1,0)</f><v>#N/A</v></c></row>'
        f'<row r="3"><c r="A3" t="inlineStr"><is><t>{VALID}</t></is></c></row>'
        '<row r="4"><c r="A4" t="e"><v>#REF!</v></c></row>',
    )
    return CorpusCase(path, "formulas that failed: #N/A, #REF!", rows={2: XE, 3: None, 4: XE})


@case
def excel_error_text_in_csv(directory: Path) -> CorpusCase:
    path = write_text(directory / "na.csv", iccid_lines("#N/A", VALID, "#VALUE!"))
    return CorpusCase(path, "Excel errors saved to a CSV", rows={2: XE, 3: None, 4: XE})


@case
def two_iccid_columns(directory: Path) -> CorpusCase:
    path = write_xlsx(
        directory / "two_iccid.xlsx", {"S": [["ICCID", "Name", "iccid"], [VALID, "a", VALID_B]]}
    )
    return CorpusCase(path, "two columns headed ICCID", error="columns A and C are both headed")


@case
def huge_cell_and_stray_quote(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "huge_cell.csv",
        f'iccid,note\n{VALID},5" screen\n{VALID_B},{"x" * 200_000}\n',
    )
    return CorpusCase(
        path, "a 200,000-character cell and a stray quote", error="a cell is longer than"
    )


@case
def web_page_named_xlsx(directory: Path) -> CorpusCase:
    path = write_text(
        directory / "export.xlsx",
        f"<html><body><table><tr><th>ICCID</th></tr><tr><td>{VALID}</td></tr></table></html>",
    )
    return CorpusCase(path, "an HTML table saved as .xlsx", error="web page (HTML)")


@case
def excel_text_tricks(directory: Path) -> CorpusCase:
    path = write_text(directory / "tricks.csv", f'iccid\n"=""{VALID}"""\n\'{VALID_B}\n')
    return CorpusCase(
        path, 'ICCIDs written as ="..." and with a leading apostrophe', rows={2: None, 3: None}
    )


@case
def typed_text_kept_in_reports(directory: Path) -> CorpusCase:
    path = write_text(directory / "typed.csv", iccid_lines("Report line 1", VALID))
    return CorpusCase(path, "a line of text among the ICCIDs", rows={2: ND, 3: None})


def large_csv(directory: Path) -> CorpusCase:
    """About 50 MB of valid ICCIDs with a group column (only with --large: slow to build)."""
    path = directory / "large.csv"
    line_length = len(f"{VALID},G0001\n")
    count = LARGE_FILE_BYTES // line_length
    with path.open("w", encoding="ascii", newline="\n") as file:
        file.write("iccid,group\n")
        for number in range(count):
            body = f"8985{number:015d}"
            file.write(f"{with_check_digit(body)},G{number % 10000:04d}\n")
    return CorpusCase(path, f"{count} rows, about 50 MB", row_count=count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--large", action="store_true", help="also write a 50 MB CSV")
    arguments = parser.parse_args()
    for built in build_corpus(arguments.directory, large=arguments.large):
        expected = built.error or f"{len(built.rows or {}) or built.row_count} rows"
        print(f"{built.path.name:28} {built.problem}  ->  {expected}")


if __name__ == "__main__":
    main()
