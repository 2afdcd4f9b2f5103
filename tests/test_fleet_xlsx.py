"""The two pieces the fleet workbooks added to lf_bulk/xlsx.py: date columns, Summary tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pytest

from lf_bulk.xlsx import Column, Sheet, Summary, Table, write_workbook


def test_a_date_column_holds_real_dates_formatted_as_dates(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    columns = [Column("iccid"), Column("expire_date", "date")]
    write_workbook(path, [Sheet("Data", columns, [["89", dt.date(2026, 12, 2)], ["90", None]])])
    sheet = openpyxl.load_workbook(path)["Data"]
    cell = sheet["B2"]
    assert cell.is_date and cell.value == dt.datetime(2026, 12, 2)
    assert cell.number_format == "yyyy-mm-dd"
    assert sheet["B3"].value is None


@pytest.mark.parametrize("value", [dt.datetime(2026, 12, 2, 13, 5), "2026-12-02", 20261202])
def test_a_date_column_refuses_anything_but_a_date(tmp_path: Path, value: object) -> None:
    columns = [Column("expire_date", "date")]
    with pytest.raises(TypeError, match="row 2, column 'expire_date'"):
        write_workbook(tmp_path / "d.xlsx", [Sheet("Data", columns, [[value]])])
    assert not (tmp_path / "d.xlsx").exists()


def test_summary_tables_go_below_the_counts_and_the_chart(tmp_path: Path) -> None:
    path = tmp_path / "s.xlsx"
    table = Table("Per group", [Column("group"), Column("SIMs", "int")], [["=G1", 3], ["G2", 4]])
    summary = Summary("t", [("Run", "R1")], [("a", 1), ("b", 2)], tables=[table])
    write_workbook(path, [], summary=summary)
    rows = [[c.value for c in r][:2] for r in openpyxl.load_workbook(path)["Summary"].iter_rows()]
    at = rows.index(["Per group", None])
    assert at >= 21  # below the chart, which floats over rows 3 to 20
    assert rows[at + 1 : at + 4] == [["group", "SIMs"], ["'=G1", 3], ["G2", 4]]


def test_summary_tables_without_counts(tmp_path: Path) -> None:
    path = tmp_path / "s.xlsx"
    table = Table("Per group", [Column("group")], [["G1"]])
    write_workbook(path, [], summary=Summary("t", [("Run", "R1")], [], tables=[table]))
    rows = [r[0] for r in openpyxl.load_workbook(path)["Summary"].values]
    assert rows[-3:] == ["Per group", "group", "G1"]
