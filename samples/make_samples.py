"""Write samples/bad_rows.csv and .xlsx: one row per validation error, plus valid rows.

Run from the repository root: ``python samples/make_samples.py``. The output is byte-for-byte the
same on every run, so the files can be committed and regenerated without noise in diffs.
"""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import openpyxl

from lf_bulk.iccid import Reason, with_check_digit

HERE = Path(__file__).resolve().parent
FIXED_TIME = (2024, 1, 1, 0, 0, 0)
FIXED_ISO = "2024-01-01T00:00:00Z"
DOCUMENTED_EXAMPLE = "89852420180910340793"


@dataclass(frozen=True)
class SampleRow:
    value: str | float | None
    """None is a blank row; a float is written as a number cell, as Excel stores a typed ICCID."""
    note: str
    reason: Reason | None


VALID_2 = with_check_digit("898524201809103408")
VALID_3 = with_check_digit("8985242018091034081")

CSV_ROWS: tuple[SampleRow, ...] = (
    SampleRow(DOCUMENTED_EXAMPLE, "valid (documented Linksfield example)", None),
    SampleRow(VALID_2, "valid, 19 digits", None),
    SampleRow(
        f"{VALID_3[:4]} {VALID_3[4:8]}-{VALID_3[8:12]} {VALID_3[12:16]} {VALID_3[16:]}",
        "valid: spaces and dashes are removed",
        None,
    ),
    SampleRow(DOCUMENTED_EXAMPLE[:18], "18 digits", Reason.BAD_LENGTH),
    SampleRow(DOCUMENTED_EXAMPLE[:-1] + "2", "wrong check digit", Reason.BAD_CHECKSUM),
    SampleRow("8985242O180910340793", "letter O instead of zero", Reason.NOT_DIGITS),
    SampleRow(DOCUMENTED_EXAMPLE, "duplicate of the first row", Reason.DUPLICATE),
    SampleRow(None, "", Reason.EMPTY),
    SampleRow(with_check_digit("1234567890123456789"), "does not start with 89", Reason.BAD_PREFIX),
)
XLSX_ROWS: tuple[SampleRow, ...] = (
    *CSV_ROWS,
    SampleRow(
        float(with_check_digit("8985242018091034082")),
        "typed as a number: Excel already rounded it",
        Reason.NUMERIC_CELL,
    ),
)
HEADER = ("iccid", "note")


def main() -> None:
    write_csv(HERE / "bad_rows.csv", CSV_ROWS)
    write_xlsx(HERE / "bad_rows.xlsx", XLSX_ROWS)
    print(f"wrote {HERE / 'bad_rows.csv'} and {HERE / 'bad_rows.xlsx'}")


def write_csv(path: Path, rows: tuple[SampleRow, ...]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow([] if row.value is None else [row.value, row.note])


def write_xlsx(path: Path, rows: tuple[SampleRow, ...]) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "ICCIDs"
    sheet.append(HEADER)
    for row in rows:
        sheet.append([] if row.value is None else [row.value, row.note])
    for (cell,) in sheet.iter_rows(min_row=2, max_col=1):
        if isinstance(cell.value, str):
            cell.number_format = "@"
    sheet.column_dimensions["A"].width = 26
    sheet.column_dimensions["B"].width = 44
    workbook.save(path)
    make_zip_deterministic(path)


def make_zip_deterministic(path: Path) -> None:
    """Rewrite `path` with fixed entry times and document dates so reruns give identical bytes."""
    with zipfile.ZipFile(path) as original:
        entries = [(info.filename, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as rewritten:
        for name, data in entries:
            if name == "docProps/core.xml":
                data = _fixed_core_dates(data)
            rewritten.writestr(zipfile.ZipInfo(name, FIXED_TIME), data, zipfile.ZIP_DEFLATED)


def _fixed_core_dates(core_xml: bytes) -> bytes:
    pattern = rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)"
    return re.sub(pattern, rb"\g<1>" + FIXED_ISO.encode() + rb"\g<2>", core_xml)


if __name__ == "__main__":
    main()
