"""Run reports and the generic workbook writer, read back with openpyxl and csv."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk.reports import (
    ITEM_FIELDS,
    OUTCOMES,
    ItemOutcome,
    RunSummary,
    count_outcomes,
    write_items_csv,
    write_run_report,
    write_summary_json,
)
from lf_bulk.xlsx import (
    Column,
    Sheet,
    Summary,
    atomic_binary,
    neutralise,
    safe_sheet_name,
    write_workbook,
)

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

ICCID = "89852420180910340793"
FORMULAS = {"iccid": "=1+1", "reason": "+44", "reason_code": "-3", "request_id": "@SUM(A1)"}


def _items() -> list[ItemOutcome]:
    return [
        ItemOutcome(2, ICCID, "added", request_id="req-1"),
        ItemOutcome(3, "89852420180910340801", "failed", "SIM_LOCKED", "SIM is locked", "req-1"),
        ItemOutcome(4, "12", "invalid", "bad_length", "19 or 20 digits expected"),
        ItemOutcome(5, ICCID, "duplicate", "duplicate", "same as row 2"),
        ItemOutcome(6, FORMULAS["iccid"], "invalid", FORMULAS["reason_code"], FORMULAS["reason"],
                    FORMULAS["request_id"]),
    ]  # fmt: skip


def _summary(items: Sequence[ItemOutcome]) -> RunSummary:
    return RunSummary(
        run_id="20240601-120000-abcd",
        operation="add",
        group_id="G-42",
        input_rows=len(items),
        valid=2,
        invalid=2,
        duplicates=1,
        batches=1,
        outcomes=count_outcomes(items),
        started_at="2024-06-01T12:00:00Z",
        finished_at="2024-06-01T12:00:05Z",
        exit_code=3,
    )


@pytest.fixture
def report(tmp_path: Path) -> Path:
    items = _items()
    return write_run_report(tmp_path / "reports" / "run-1", items, _summary(items))


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


# --- the run report -------------------------------------------------------------------------


def test_run_report_writes_three_files_and_no_temporaries(tmp_path: Path, report: Path) -> None:
    assert report == tmp_path / "reports" / "run-1"
    assert sorted(p.name for p in report.iterdir()) == ["items.csv", "report.xlsx", "summary.json"]


def test_report_files_get_the_default_umask_mode(report: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for name in ("items.csv", "report.xlsx", "summary.json"):
        assert (report / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_items_csv_has_header_and_one_line_per_item(report: Path) -> None:
    rows = _csv_rows(report / "items.csv")
    assert rows[0] == list(ITEM_FIELDS)
    assert rows[1] == ["2", ICCID, "added", "", "", "req-1"]
    assert [row[0] for row in rows[1:]] == ["2", "3", "4", "5", "6"]


def test_items_csv_neutralises_formula_like_text(report: Path) -> None:
    last = dict(zip(ITEM_FIELDS, _csv_rows(report / "items.csv")[-1], strict=True))
    assert {key: last[key] for key in FORMULAS} == {k: "'" + v for k, v in FORMULAS.items()}


def test_items_csv_interrupted_leaves_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    write_items_csv(path, _items())
    before = path.read_bytes()

    def interrupted() -> Iterator[ItemOutcome]:
        yield ItemOutcome(2, ICCID, "added")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_items_csv(path, interrupted())
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_write_items_csv_returns_the_count(tmp_path: Path) -> None:
    items = (ItemOutcome(n, ICCID, "added") for n in range(2, 9))
    assert write_items_csv(tmp_path / "items.csv", items) == 7
    assert len(_csv_rows(tmp_path / "items.csv")) == 8
    assert write_items_csv(tmp_path / "empty.csv", []) == 0
    assert _csv_rows(tmp_path / "empty.csv") == [list(ITEM_FIELDS)]


def test_summary_json_has_exactly_the_design_note_keys(report: Path) -> None:
    data = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    assert list(data) == [
        "run_id", "operation", "group_id", "input_rows", "valid", "invalid", "duplicates",
        "batches", "outcomes", "started_at", "finished_at", "exit_code",
    ]  # fmt: skip
    assert list(data["outcomes"]) == list(OUTCOMES)
    assert data["outcomes"]["invalid"] == 2
    assert data["outcomes"]["removed"] == 0
    assert data["exit_code"] == 3
    assert data["finished_at"] == "2024-06-01T12:00:05Z"


def test_summary_json_keeps_an_unfinished_run_as_null(tmp_path: Path) -> None:
    summary = _summary(_items())
    summary.finished_at = None
    write_summary_json(tmp_path / "summary.json", summary)
    assert json.loads((tmp_path / "summary.json").read_text())["finished_at"] is None


def test_items_sheet_keeps_iccids_as_text_with_every_digit(report: Path) -> None:
    items = openpyxl.load_workbook(report / "report.xlsx")["Items"]
    assert [cell.value for cell in items[1]] == list(ITEM_FIELDS)
    iccid = items["B2"]
    assert iccid.value == ICCID
    assert iccid.data_type == "s"
    assert iccid.number_format == "@"
    assert items["A2"].value == 2
    assert items["A2"].data_type == "n"


def test_items_sheet_header_is_bold_frozen_and_filtered(report: Path) -> None:
    items = openpyxl.load_workbook(report / "report.xlsx")["Items"]
    assert items.freeze_panes == "A2"
    assert items.auto_filter.ref == "A1:F6"
    assert all(cell.font.b for cell in items[1])


def test_items_sheet_neutralises_formula_like_text(report: Path) -> None:
    items = openpyxl.load_workbook(report / "report.xlsx")["Items"]
    last = {cell.value: row.value for cell, row in zip(items[1], items[6], strict=True)}
    assert {key: last[key] for key in FORMULAS} == {k: "'" + v for k, v in FORMULAS.items()}
    assert all(cell.data_type == "s" for cell in items[6][1:])


def test_summary_sheet_comes_first_with_facts_counts_and_a_chart(report: Path) -> None:
    workbook = openpyxl.load_workbook(report / "report.xlsx")
    assert workbook.sheetnames == ["Summary", "Items"]
    rows = [tuple(row) for row in workbook["Summary"].iter_rows(values_only=True)]
    assert ("Run", "20240601-120000-abcd") in rows
    assert ("Exit code", 3) in rows
    start = rows.index(("Outcome", "Count")) + 1
    assert rows[start : start + len(OUTCOMES)] == [
        ("added", 1), ("removed", 0), ("already_member", 0), ("not_member", 0),
        ("failed", 1), ("invalid", 2), ("duplicate", 1), ("pending", 0),
    ]  # fmt: skip
    with zipfile.ZipFile(report / "report.xlsx") as package:
        charts = [name for name in package.namelist() if name.startswith("xl/charts/")]
        assert charts == ["xl/charts/chart1.xml"]
        chart = package.read(charts[0]).decode()
    first, last = start + 1, start + len(OUTCOMES)
    assert f"'Summary'!$B${first}:$B${last}" in chart
    assert f"'Summary'!$A${first}:$A${last}" in chart


def test_run_report_adds_extra_facts(tmp_path: Path) -> None:
    items = _items()[:1]
    summary = _summary(items)
    write_run_report(tmp_path, items, summary, extra_facts=[("Environment", "sandbox")])
    rows = list(openpyxl.load_workbook(tmp_path / "report.xlsx")["Summary"].values)
    assert ("Environment", "sandbox") in rows


def test_count_outcomes_lists_every_outcome_in_order() -> None:
    counts = count_outcomes([ItemOutcome(2, ICCID, "pending"), ItemOutcome(3, ICCID, "pending")])
    assert list(counts) == list(OUTCOMES)
    assert counts["pending"] == 2
    assert sum(counts.values()) == 2
    assert count_outcomes([]) == dict.fromkeys(OUTCOMES, 0)


def test_unknown_outcomes_are_refused() -> None:
    with pytest.raises(ValueError, match="succeeded"):
        count_outcomes([ItemOutcome(2, ICCID, "succeeded")])
    summary = _summary([])
    summary.outcomes = {"added": 1, "oops": 2}
    with pytest.raises(ValueError, match="oops"):
        summary.to_json()


# --- neutralise ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["=1+1", "+44", "-3", "@SUM(A1)", "\t=1", "\r=1"])
def test_neutralise_prefixes_formula_triggers(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["", ICCID, "SIM is locked", "a=b", " =1", "'=1"])
def test_neutralise_leaves_other_text_alone(text: str) -> None:
    assert neutralise(text) == text


@given(st.text())
def test_neutralise_is_idempotent_and_reversible(text: str) -> None:
    once = neutralise(text)
    assert neutralise(once) == once
    assert once in (text, "'" + text)
    assert not once or once[0] not in "=+-@\t\r"


# --- write_workbook -----------------------------------------------------------------------------

TYPED = [
    Column("iccid"),
    Column("n", "int"),
    Column("amount", "money"),
    Column("at", "datetime"),
]


def _one_sheet(tmp_path: Path, rows: list[tuple[object, ...]], note: str | None = None) -> Path:
    path = tmp_path / "out.xlsx"
    write_workbook(path, [Sheet("Data", TYPED, rows, note=note)])
    return path


def test_money_is_numeric_exact_and_two_decimal(tmp_path: Path) -> None:
    rows: list[tuple[object, ...]] = [
        (ICCID, 1, Decimal("12.36"), None),
        (ICCID, 2, Decimal("1234567890123.40"), None),
        (ICCID, 3, 7, None),
    ]
    path = _one_sheet(tmp_path, rows)
    sheet = openpyxl.load_workbook(path)["Data"]
    amount = sheet["C2"]
    assert amount.data_type == "n"
    assert amount.value == 12.36
    assert Decimal(str(amount.value)) == Decimal("12.36")
    assert amount.number_format == "#,##0.00"
    assert sheet["C4"].value == 7
    with zipfile.ZipFile(path) as package:
        xml = package.read("xl/worksheets/sheet1.xml").decode()
    # the digits exactly as given (15 significant, all Excel keeps): a trip through float would
    # drop the trailing zero and write 1234567890123.4
    assert "<v>12.36</v>" in xml
    assert "<v>1234567890123.40</v>" in xml


def test_datetimes_are_real_excel_datetimes(tmp_path: Path) -> None:
    when = dt.datetime(2024, 6, 1, 12, 30, 45)
    sheet = openpyxl.load_workbook(_one_sheet(tmp_path, [(ICCID, 1, None, when)]))["Data"]
    assert isinstance(sheet["D2"].value, dt.datetime)
    assert sheet["D2"].value == when
    assert sheet["D2"].number_format == "yyyy-mm-dd hh:mm:ss"


def test_tz_aware_datetime_is_rejected_and_nothing_is_written(tmp_path: Path) -> None:
    aware = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
    with pytest.raises(ValueError, match=r"row 3, column 'at'.*time zone"):
        _one_sheet(tmp_path, [(ICCID, 1, None, None), (ICCID, 2, None, aware)])
    assert list(tmp_path.iterdir()) == []


def test_float_money_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"column 'amount'.*Decimal"):
        _one_sheet(tmp_path, [(ICCID, 1, 12.36, None)])


def test_row_of_the_wrong_length_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="row 2: 3 values, 4 columns"):
        _one_sheet(tmp_path, [(ICCID, 1, None)])


def test_text_cells_stay_text_even_when_excel_would_guess_otherwise(tmp_path: Path) -> None:
    rows: list[tuple[object, ...]] = [("#N/A", 1, None, None), ("bell\x07", 2, None, None)]
    sheet = openpyxl.load_workbook(_one_sheet(tmp_path, rows))["Data"]
    assert (sheet["A2"].value, sheet["A2"].data_type) == ("#N/A", "s")
    assert sheet["A3"].value == "bell\ufffd"


def test_note_moves_the_header_down_and_keeps_freeze_and_filter(tmp_path: Path) -> None:
    rows: list[tuple[object, ...]] = [(ICCID, n, None, None) for n in range(3)]
    sheet = openpyxl.load_workbook(_one_sheet(tmp_path, rows, note="Times are in UTC"))["Data"]
    assert sheet["A1"].value == "Times are in UTC"
    assert [cell.value for cell in sheet[2]] == ["iccid", "n", "amount", "at"]
    assert sheet.freeze_panes == "A3"
    assert sheet.auto_filter.ref == "A2:D5"


def test_rows_may_be_a_generator(tmp_path: Path) -> None:
    def rows() -> Iterator[tuple[object, ...]]:
        for n in range(500):
            yield (ICCID, n, Decimal(n) / 100, None)

    path = tmp_path / "gen.xlsx"
    write_workbook(path, [Sheet("Data", TYPED, rows())])
    sheet = openpyxl.load_workbook(path, read_only=True)["Data"]
    values = list(sheet.values)
    assert len(values) == 501
    assert values[-1][:3] == (ICCID, 499, 4.99)


def test_failed_write_leaves_the_previous_file_untouched(tmp_path: Path) -> None:
    path = _one_sheet(tmp_path, [(ICCID, 1, None, None)])
    before = path.read_bytes()

    def broken() -> Iterator[tuple[object, ...]]:
        yield (ICCID, 1, None, None)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_workbook(path, [Sheet("Data", TYPED, broken())])
    with pytest.raises(TypeError):
        write_workbook(path, [Sheet("Data", TYPED, [(ICCID, "one", None, None)])])
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_atomic_binary_replaces_on_success_and_cleans_up_on_error(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_binary(target) as out:
        out.write(b"half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]

    with atomic_binary(target) as out:
        out.write(b"new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("Items", "Items"),
        ("Q1/Q2: [draft]*?\\", "Q1_Q2_ _draft____"),
        ("'quoted'", "quoted"),
        ("", "Sheet"),
        ("history", "history_"),
        ("x" * 40, "x" * 31),
    ],
)
def test_safe_sheet_name(name: str, safe: str) -> None:
    assert safe_sheet_name(name) == safe


def test_sheet_names_are_sanitised_and_made_unique(tmp_path: Path) -> None:
    path = tmp_path / "names.xlsx"
    columns = [Column("a")]
    sheets = [
        Sheet("orders/2024", columns, [("x",)]),
        Sheet("ORDERS_2024", columns, [("y",)]),
        Sheet("a" * 40, columns, [("z",)]),
        Sheet("a" * 40, columns, [("w",)]),
    ]
    summary = Summary("Orders", facts=[("Total", Decimal("1.50"))], counts=[])
    write_workbook(path, sheets, summary=summary)
    names = openpyxl.load_workbook(path).sheetnames
    assert names == ["Summary", "orders_2024", "ORDERS_2024 (2)", "a" * 31, "a" * 27 + " (2)"]
    assert all(len(name) <= 31 for name in names)


def test_summary_facts_are_typed_and_aware_datetimes_refused(tmp_path: Path) -> None:
    when = dt.datetime(2024, 6, 1, 8, 0)
    facts: list[tuple[str, object]] = [
        ("Total", Decimal("1234.50")),
        ("At", when),
        ("Orders", 3),
        ("Formula", "=HYPERLINK(1)"),
    ]
    path = tmp_path / "facts.xlsx"
    write_workbook(path, [], summary=Summary("Finance", facts=facts, counts=[("paid", 3)]))
    sheet = openpyxl.load_workbook(path)["Summary"]
    values = {row[0].value: row[1] for row in sheet.iter_rows(min_row=3, max_row=6)}
    assert values["Total"].value == 1234.5
    assert values["Total"].number_format == "#,##0.00"
    assert values["At"].value == when
    assert values["Orders"].value == 3
    assert values["Formula"].value == "'=HYPERLINK(1)"

    aware = [("At", when.replace(tzinfo=dt.UTC))]
    with pytest.raises(ValueError, match="fact 'At'"):
        write_workbook(tmp_path / "aware.xlsx", [], summary=Summary("x", aware, []))
