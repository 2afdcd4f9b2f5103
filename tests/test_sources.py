from __future__ import annotations

import csv
import importlib.util
import io
import sys
import tempfile
import zipfile
from pathlib import Path
from types import ModuleType

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lf_bulk.errors import InputError
from lf_bulk.iccid import Reason, with_check_digit
from lf_bulk.sources import InputCounts, InputRow, InputTable, read_iccids

from badinput_corpus import BUILDERS, VALID, VALID_B, Builder, write_text, write_xlsx

ROOT = Path(__file__).resolve().parent.parent


def reasons(table: InputTable) -> dict[int, Reason | None]:
    return {row.row: row.reason for row in table.rows}


def load_make_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "samples/make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --- the bad-input corpus --------------------------------------------------------------------


def test_corpus_has_at_least_30_cases() -> None:
    assert len(BUILDERS) >= 30


@pytest.mark.parametrize("build", BUILDERS, ids=[build.__name__ for build in BUILDERS])
def test_every_corpus_file_is_refused_clearly_or_read_with_the_expected_reasons(
    build: Builder, tmp_path: Path
) -> None:
    case = build(tmp_path)
    if case.error is not None:
        with pytest.raises(InputError) as raised:
            read_iccids(case.path, **case.options)
        assert case.error in str(raised.value)
        assert raised.value.path == str(case.path)
        assert "Traceback" not in str(raised.value)
    else:
        assert reasons(read_iccids(case.path, **case.options)) == case.rows


# --- samples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bad_rows.csv", "bad_rows.xlsx"])
def test_committed_samples_hold_one_row_per_reason(name: str) -> None:
    samples = load_make_samples()
    expected = samples.XLSX_ROWS if name.endswith(".xlsx") else samples.CSV_ROWS
    table = read_iccids(ROOT / "samples" / name)
    assert reasons(table) == {number: row.reason for number, row in enumerate(expected, 2)}
    # The samples predate excel_error, which tests/test_input_messages.py covers.
    every = set(Reason) - {Reason.EXCEL_ERROR}
    wanted = every if name.endswith(".xlsx") else every - {Reason.NUMERIC_CELL}
    assert set(table.reason_counts) == wanted


def test_committed_samples_match_the_script(tmp_path: Path) -> None:
    samples = load_make_samples()
    samples.write_csv(tmp_path / "bad_rows.csv", samples.CSV_ROWS)
    samples.write_xlsx(tmp_path / "bad_rows.xlsx", samples.XLSX_ROWS)
    for name in ("bad_rows.csv", "bad_rows.xlsx"):
        assert (tmp_path / name).read_bytes() == (ROOT / "samples" / name).read_bytes(), name


# --- text files --------------------------------------------------------------------------------


def test_csv_rows_are_numbered_like_the_file_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"ICCID\n{VALID}\n\nabc\n")
    table = read_iccids(path)
    assert [(row.row, row.raw, row.iccid, row.reason) for row in table.rows] == [
        (2, VALID, VALID, None),
        (3, "", "", Reason.EMPTY),
        (4, "abc", "abc", Reason.NOT_DIGITS),
    ]
    assert (table.source, table.sheet, table.column) == (str(path), None, "ICCID")


def test_headerless_txt_rows_are_line_numbers(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.txt", f"{VALID}\r\n{VALID_B}\r\n{VALID}\r\n")
    table = read_iccids(path)
    assert reasons(table) == {1: None, 2: None, 3: Reason.DUPLICATE}
    assert table.column == ""


def test_headerless_list_may_start_with_an_invalid_iccid(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.txt", f"{VALID[:-2]}\n{VALID}\n")
    assert reasons(read_iccids(path)) == {1: Reason.BAD_LENGTH, 2: None}


def test_one_column_file_with_an_unknown_header_uses_that_column(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.txt", f"Numbers to add\n{VALID}\n")
    table = read_iccids(path)
    assert table.column == "Numbers to add"
    assert reasons(table) == {2: None}


def test_quoted_lines_in_a_plain_list_are_unquoted(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.txt", f'iccid\n"{VALID}"\n"{VALID_B}"\n')
    assert [row.iccid for row in read_iccids(path).rows] == [VALID, VALID_B]


@pytest.mark.parametrize(
    "header", ["ICCID", "iccid", "Iccid Number", "ICCID_NO", "sim_id", "SIM ID", "SimId", "SIM"]
)
def test_iccid_column_is_found_by_header(header: str, tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"Name,{header},Note\nA,{VALID},x\n")
    table = read_iccids(path)
    assert table.column == header
    assert [row.iccid for row in table.rows] == [VALID]


def test_iccid_header_is_preferred_to_a_sim_header(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"SIM,ICCID\nCard 1,{VALID}\n")
    table = read_iccids(path)
    assert table.column == "ICCID"
    assert reasons(table) == {2: None}


def test_column_option_picks_a_named_column(tmp_path: Path) -> None:
    path = write_text(tmp_path / "swap.csv", f"old_iccid,new iccid\n{VALID},{VALID_B}\n")
    table = read_iccids(path, column="New_ICCID")
    assert table.column == "new iccid"
    assert [row.iccid for row in table.rows] == [VALID_B]


def test_extra_columns_are_stripped_and_empty_when_absent(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"ICCID,Group ID\n{VALID}, G1 \n{VALID_B},\n")
    table = read_iccids(path, extra_columns={"group": ["group_id"], "order_id": ["purchase order"]})
    assert [dict(row.extra) for row in table.rows] == [
        {"group": "G1", "order_id": ""},
        {"group": "", "order_id": ""},
    ]


def test_extra_column_alias_may_be_a_bare_string(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"iccid;grp\n{VALID};G7\n")
    table = read_iccids(path, extra_columns={"group": "grp"})
    assert table.rows[0].extra == {"group": "G7"}


def test_without_extra_columns_rows_have_empty_extra(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"iccid,group\n{VALID},G1\n")
    assert read_iccids(path).rows[0].extra == {}


def test_iccid_column_is_optional_when_not_required(tmp_path: Path) -> None:
    path = write_text(tmp_path / "orders.csv", "order_id,note\nPO-1,a\nPO-2,b\n")
    table = read_iccids(path, require_column=False, extra_columns={"order_id": ["order id"]})
    assert table.column == ""
    assert [(row.row, row.iccid, row.reason, row.extra["order_id"]) for row in table.rows] == [
        (2, "", None, "PO-1"),
        (3, "", None, "PO-2"),
    ]


def test_a_lone_extra_column_is_not_taken_for_iccids(tmp_path: Path) -> None:
    path = write_text(tmp_path / "orders.txt", "Order ID\nPO-1\n")
    table = read_iccids(path, require_column=False, extra_columns={"order_id": []})
    assert [(row.iccid, row.reason, dict(row.extra)) for row in table.rows] == [
        ("", None, {"order_id": "PO-1"})
    ]


def test_iccid_column_is_still_validated_when_not_required(tmp_path: Path) -> None:
    path = write_text(tmp_path / "orders.csv", f"order_id,iccid\nPO-1,{VALID}\nPO-2,x\n")
    table = read_iccids(path, require_column=False, extra_columns={"order_id": []})
    assert reasons(table) == {2: None, 3: Reason.NOT_DIGITS}


def test_missing_column_error_names_the_file_and_the_headers(tmp_path: Path) -> None:
    path = write_text(tmp_path / "people.csv", "name,phone\nA,1\n")
    with pytest.raises(InputError) as raised:
        read_iccids(path)
    message = str(raised.value)
    assert message.startswith(str(path))
    assert "'name', 'phone'" in message and "--column" in message


def test_sheet_option_is_refused_for_text_files(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"iccid\n{VALID}\n")
    with pytest.raises(InputError, match="--sheet applies only"):
        read_iccids(path, sheet="Data")


@pytest.mark.parametrize("name", ["missing.csv", "folder.csv"])
def test_unreadable_paths_are_input_errors(name: str, tmp_path: Path) -> None:
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(InputError, match=r"not found|folder"):
        read_iccids(tmp_path / name)


def test_file_without_extension_is_refused(tmp_path: Path) -> None:
    path = write_text(tmp_path / "iccids", f"{VALID}\n")
    with pytest.raises(InputError, match="no extension"):
        read_iccids(path)


def test_upper_case_extension_is_accepted(tmp_path: Path) -> None:
    path = write_text(tmp_path / "LIST.CSV", f"ICCID\n{VALID}\n")
    assert reasons(read_iccids(path)) == {2: None}


def test_multi_line_quoted_cell_is_one_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "notes.csv", f'iccid,note\n{VALID},"two\nlines"\n{VALID_B},x\n')
    table = read_iccids(path, extra_columns={"note": []})
    assert [(row.row, row.extra["note"]) for row in table.rows] == [(2, "two\nlines"), (3, "x")]


# --- stdin -------------------------------------------------------------------------------------


def test_stdin_plain_lines() -> None:
    table = read_iccids("-", stdin=io.BytesIO(f"{VALID}\n{VALID_B}\n".encode()))
    assert table.source == "<stdin>"
    assert reasons(table) == {1: None, 2: None}


def test_stdin_csv_is_sniffed() -> None:
    table = read_iccids(
        "-", stdin=io.BytesIO(f"group;iccid\nG1;{VALID}\n".encode()), extra_columns={"group": []}
    )
    assert [(row.iccid, row.extra["group"]) for row in table.rows] == [(VALID, "G1")]


def test_stdin_workbook_is_recognised(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "list.xlsx", {"Data": [["ICCID"], [VALID]]})
    table = read_iccids("-", stdin=io.BytesIO(path.read_bytes()))
    assert (table.sheet, reasons(table)) == ("Data", {2: None})


def test_empty_stdin_is_an_input_error() -> None:
    with pytest.raises(InputError, match="<stdin>: the file is empty"):
        read_iccids("-", stdin=io.BytesIO(b""))


# --- workbooks -------------------------------------------------------------------------------


def test_workbook_rows_are_numbered_like_the_sheet(tmp_path: Path) -> None:
    path = tmp_path / "offset.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet["C4"] = "ICCID"
    sheet["C5"] = VALID
    sheet["C7"] = "bad"
    workbook.save(path)
    assert reasons(read_iccids(path)) == {5: None, 6: Reason.EMPTY, 7: Reason.NOT_DIGITS}


def test_number_cells_are_rejected_and_shown_as_excel_shows_them(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "numbers.xlsx", {"Data": [["ICCID"], [float(VALID)], [898524201809103], [VALID]]}
    )
    rows = read_iccids(path).rows
    assert [(row.raw, row.reason) for row in rows] == [
        ("8.98524201809103E+19", Reason.NUMERIC_CELL),
        ("898524201809103", Reason.NUMERIC_CELL),
        (VALID, None),
    ]


def test_first_visible_sheet_is_the_default(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {"Hidden": [["ICCID"], [VALID]], "Shown": [["ICCID"], [VALID_B]], "Later": [["x"]]},
        hidden=("Hidden",),
    )
    table = read_iccids(path)
    assert (table.sheet, [row.iccid for row in table.rows]) == ("Shown", [VALID_B])


def test_hidden_sheet_can_be_chosen_by_name_in_any_case(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx",
        {"Hidden": [["ICCID"], [VALID]], "Shown": [["ICCID"], [VALID_B]]},
        hidden=("Hidden",),
    )
    table = read_iccids(path, sheet="hidden")
    assert (table.sheet, [row.iccid for row in table.rows]) == ("Hidden", [VALID])


def test_unknown_sheet_error_lists_the_sheets(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx", {"Old": [["ICCID"], [VALID]], "New": [["ICCID"]]}, hidden=("Old",)
    )
    with pytest.raises(InputError, match=r"'Old' \(hidden\), 'New'"):
        read_iccids(path, sheet="Newest")


def test_workbook_with_only_hidden_sheets_is_refused(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx", {"A": [["ICCID"], [VALID]], "B": [["x"]]}, hidden=("A",)
    )
    hide_every_sheet(path)
    with pytest.raises(InputError, match="no visible worksheet"):
        read_iccids(path)


def hide_every_sheet(path: Path) -> None:
    """Excel refuses to save such a workbook, openpyxl too: edit workbook.xml directly."""
    with zipfile.ZipFile(path) as original:
        parts = {info.filename: original.read(info) for info in original.infolist()}
    parts["xl/workbook.xml"] = parts["xl/workbook.xml"].replace(
        b'state="visible"', b'state="hidden"'
    )
    with zipfile.ZipFile(path, "w") as rewritten:
        for name, data in parts.items():
            rewritten.writestr(name, data)


def test_missing_column_in_workbook_names_sheet_and_sheets(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "book.xlsx", {"People": [["Name", "Phone"], ["A", "1"]], "SIMs": [["x"]]}
    )
    with pytest.raises(InputError) as raised:
        read_iccids(path)
    assert raised.value.sheet == "People"
    assert "sheet 'People'" in str(raised.value)
    assert "(sheets: 'People', 'SIMs')" in str(raised.value)


def test_workbook_extra_columns_render_numbers_as_text(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "book.xlsx", {"Data": [["ICCID", "Group"], [VALID, 1234]]})
    table = read_iccids(path, extra_columns={"group": []})
    assert table.rows[0].extra == {"group": "1234"}


# --- the table ---------------------------------------------------------------------------------


def test_table_groups_rows_by_outcome() -> None:
    rows = [
        InputRow(2, VALID, VALID, None, {}),
        InputRow(3, "x", "x", Reason.NOT_DIGITS, {}),
        InputRow(4, VALID, VALID, Reason.DUPLICATE, {}),
        InputRow(5, "", "", Reason.EMPTY, {}),
    ]
    table = InputTable("list.csv", None, "iccid", rows)
    assert [row.row for row in table.valid_rows] == [2]
    assert [row.row for row in table.invalid_rows] == [3, 5]
    assert [row.row for row in table.duplicate_rows] == [4]
    assert table.counts == InputCounts(input_rows=4, valid=1, invalid=2, duplicates=1)
    assert table.reason_counts == {
        Reason.NOT_DIGITS: 1,
        Reason.DUPLICATE: 1,
        Reason.EMPTY: 1,
    }


# --- properties --------------------------------------------------------------------------------

cell_values = st.one_of(
    st.builds(with_check_digit, st.text("0123456789", min_size=18, max_size=19).map("89".__add__)),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=25),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(cell_values, min_size=1, max_size=30), st.sampled_from([",", ";", "\t"]))
def test_csv_round_trip_keeps_every_row(values: list[str], delimiter: str) -> None:
    values = [*values[:-1], VALID]  # a blank last row would be dropped as trailing blank
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "list.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file, delimiter=delimiter)
            writer.writerow(["iccid", "group"])
            writer.writerows([value, f"G{index}"] for index, value in enumerate(values))
        table = read_iccids(path, extra_columns={"group": []})
    assert [row.row for row in table.rows] == list(range(2, len(values) + 2))
    assert [row.raw for row in table.rows] == values
    assert [row.extra["group"] for row in table.rows] == [f"G{i}" for i in range(len(values))]
