"""The report workbook's fast row writer against XlsxWriter's own cell writers: the same XML."""

from __future__ import annotations

import zipfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook

from lf_bulk import xlsx
from lf_bulk.xlsx import Column, Sheet, Summary, write_workbook

COLUMNS = [Column("row", "int", width=9), Column("text", "text"), Column("more", "text", width=20)]
AWKWARD = [
    "89852420180910340793",
    "",
    None,
    "  leading",
    "trailing ",
    "a & b < c > d \" '",
    "_x0041_ stays text",
    "tab\there, line\nthere, return\rhere",
    "bell\x07 and nul\x00",
    "=1+1",
    "+33 6 12",
    "-5",
    "@SUM(A1)",
    "non-characters \ufffe \uffff",
    "émoji 😀 and ＣＪＫ",
    "x" * 40_000,
    12345,
    Decimal("1.5"),
]


def _rows() -> list[tuple[object, object, object]]:
    rows: list[tuple[object, object, object]] = []
    for n, value in enumerate(AWKWARD):
        rows.append((n, value, AWKWARD[-1 - n]))
    rows.append((None, "no row number", ""))
    rows.append((10**17, "a large int", "x"))
    rows.append((-7, True, False))
    return rows


def _sheet_xml(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {
            name: archive.read(name)
            for name in archive.namelist()
            if name.startswith("xl/worksheets/") or name == "xl/styles.xml"
        }


def _write(path: Path, rows: list[tuple[object, object, object]], note: str | None) -> None:
    write_workbook(
        path,
        [Sheet("Items", COLUMNS, iter(rows), note=note), Sheet("Empty", COLUMNS, [])],
        summary=Summary("title", [("Run", "r1"), ("At", datetime(2026, 1, 2))], [("added", 3)]),
    )


@pytest.mark.parametrize("note", [None, "Times are in UTC"])
def test_fast_rows_write_the_same_xml_as_xlsxwriter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, note: str | None
) -> None:
    calls: list[str] = []
    real = xlsx._write_rows_as_xml

    def spy(*args: object, **kwargs: object) -> int:
        calls.append("fast")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(xlsx, "_write_rows_as_xml", spy)
    fast = tmp_path / "fast.xlsx"
    _write(fast, _rows(), note)
    assert calls == ["fast", "fast"]
    monkeypatch.setattr(xlsx, "_rows_as_xml_supported", lambda *_: False)
    slow = tmp_path / "slow.xlsx"
    _write(slow, _rows(), note)
    assert calls == ["fast", "fast"]
    assert _sheet_xml(fast) == _sheet_xml(slow)


def test_fast_rows_read_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "fast.xlsx"
    rows = [(1, "<r><t>not rich</t></r>", "8985"), (2, '=HYPERLINK("x")', " ")]
    write_workbook(path, [Sheet("Items", COLUMNS, rows)])
    sheet = load_workbook(path)["Items"]
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values == [
        ["row", "text", "more"],
        [1, "<r><t>not rich</t></r>", "8985"],  # XlsxWriter would write this unescaped
        [2, '\'=HYPERLINK("x")', " "],
    ]
    assert sheet["B2"].number_format == "@"
    assert sheet.auto_filter.ref == "A1:C3"
    assert sheet.freeze_panes == "A2"


def test_a_bad_value_names_its_sheet_row_and_column(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"sheet 'Items', row 3, column 'row'"):
        write_workbook(
            tmp_path / "bad.xlsx", [Sheet("Items", COLUMNS, [(1, "a", "b"), (2.5, "c", "d")])]
        )
    with pytest.raises(ValueError, match=r"sheet 'Items', row 2: 2 values, 3 columns"):
        write_workbook(tmp_path / "bad.xlsx", [Sheet("Items", COLUMNS, [(1, "a")])])
    assert not (tmp_path / "bad.xlsx").exists()
