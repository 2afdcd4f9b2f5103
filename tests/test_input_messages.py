"""What the reader says about a file, written for whoever made it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk.errors import InputError, InvalidRowsError, RejectedRow
from lf_bulk.iccid import EXPLANATIONS, Reason, check, normalize, with_check_digit
from lf_bulk.sources import InputCounts, read_iccids

from badinput_corpus import VALID, VALID_B, write_raw_xlsx, write_text, write_xlsx

HEADER = '<row r="1"><c r="A1" t="inlineStr"><is><t>ICCID</t></is></c></row>'


def reasons(path: Path, **options: object) -> dict[int, Reason | None]:
    return {row.row: row.reason for row in read_iccids(path, **options).rows}  # type: ignore[arg-type]


# --- title rows ------------------------------------------------------------------------------


def test_a_header_below_many_title_rows_is_found(tmp_path: Path) -> None:
    titles = [[f"Order line {n}"] for n in range(12)]
    path = write_xlsx(tmp_path / "titles.xlsx", {"O": [*titles, ["No.", "ICCID"], [1, VALID]]})
    table = read_iccids(path)
    assert (table.column, reasons(path)) == ("ICCID", {14: None})


def test_a_title_row_is_not_taken_for_the_header_of_a_wider_table(tmp_path: Path) -> None:
    rows = [["SIM order June"], ["No.", "Card"], [1, VALID]]
    path = write_xlsx(tmp_path / "titles.xlsx", {"O": rows})
    with pytest.raises(InputError, match=r"no ICCID column .* in the first \d+ rows"):
        read_iccids(path)


# --- Excel errors ------------------------------------------------------------------------------


def test_an_excel_error_cell_is_named(tmp_path: Path) -> None:
    xml = (
        HEADER
        + '<row r="2"><c r="A2" t="e"><f>VLOOKUP(B2,X!A:A,1,0)</f><v>#N/A</v></c></row>'
        + f'<row r="3"><c r="A3" t="inlineStr"><is><t>{VALID}</t></is></c></row>'
    )
    path = write_raw_xlsx(tmp_path / "errors.xlsx", xml)
    rows = read_iccids(path).rows
    assert [(row.row, row.raw, row.reason) for row in rows] == [
        (2, "#N/A", Reason.EXCEL_ERROR),
        (3, VALID, None),
    ]
    assert "Excel error" in EXPLANATIONS[Reason.EXCEL_ERROR]


def test_an_excel_error_written_to_csv_is_named(tmp_path: Path) -> None:
    path = write_text(tmp_path / "errors.csv", f"iccid\n#N/A\n#REF!\n{VALID}\n")
    assert reasons(path) == {2: Reason.EXCEL_ERROR, 3: Reason.EXCEL_ERROR, 4: None}


# --- a second ICCID column ---------------------------------------------------------------------


def test_two_iccid_columns_are_ambiguous(tmp_path: Path) -> None:
    path = write_text(tmp_path / "two.csv", f"ICCID,name,iccid\n{VALID},a,{VALID_B}\n")
    with pytest.raises(InputError, match=r"columns 1 and 3 .*'ICCID'.*'iccid'") as raised:
        read_iccids(path)
    assert "--column" not in str(raised.value) or "rename" in str(raised.value)


def test_two_iccid_columns_in_a_workbook_are_named_by_letter(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "two.xlsx", {"S": [["ICCID", "x", "ICCID"], [VALID, 1, VALID]]})
    with pytest.raises(InputError, match=r"columns A and C"):
        read_iccids(path)


# --- CSV problems ------------------------------------------------------------------------------


def test_a_huge_cell_is_named_as_such_and_not_blamed_on_quotes(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "huge.csv", f'iccid,note\n{VALID},5" screen\n{VALID_B},{"x" * 200_000}\n'
    )
    with pytest.raises(InputError) as raised:
        read_iccids(path)
    message = str(raised.value)
    assert "longer than 131,072 characters" in message and "row 3" in message
    assert "quote" not in message


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_a_web_page_is_named(suffix: str, tmp_path: Path) -> None:
    page = f"<!DOCTYPE html>\n<html><body><table><tr><td>{VALID}</td></tr></table></body></html>\n"
    path = write_text(tmp_path / f"export{suffix}", page)
    with pytest.raises(InputError, match=r"web page \(HTML\)") as raised:
        read_iccids(path)
    assert "rename it .csv" not in str(raised.value)


# --- counts and grammar ------------------------------------------------------------------------


def test_counts_are_described_with_plurals() -> None:
    assert InputCounts(1, 0, 0, 1).describe() == "1 row: 0 valid, 0 invalid, 1 duplicate"
    assert InputCounts(3, 1, 2, 0).describe() == "3 rows: 1 valid, 2 invalid, 0 duplicates"


def test_refused_rows_message_counts_invalid_and_duplicate_rows_apart() -> None:
    only_duplicate = InvalidRowsError("l.csv", [RejectedRow(3, VALID, "duplicate")])
    assert "1 duplicate row" in str(only_duplicate) and "invalid" not in str(only_duplicate)
    mixed = InvalidRowsError(
        "l.csv", [RejectedRow(2, "x", "not_digits"), RejectedRow(3, "y", "empty")]
    )
    assert "2 invalid rows:" in str(mixed)


# --- Excel's text tricks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", [f"'{VALID}", f'="{VALID}"', f' = "{VALID}" ', f"'{VALID[:4]} {VALID[4:]}"]
)
def test_excel_text_tricks_are_accepted(typed: str) -> None:
    assert check(typed) == (VALID, None)


def test_excel_text_tricks_in_a_csv(tmp_path: Path) -> None:
    path = write_text(tmp_path / "tricks.csv", f'iccid\n"=""{VALID}"""\n\'{VALID_B}\n')
    assert reasons(path) == {2: None, 3: None}


@given(st.text(max_size=30))
def test_normalize_stays_idempotent(raw: str) -> None:
    assert normalize(normalize(raw)) == normalize(raw)


def test_a_lone_apostrophe_or_formula_is_still_invalid() -> None:
    assert check("'")[1] is Reason.EMPTY
    assert check('=""')[1] is Reason.EMPTY
    assert check(f"=A1+{with_check_digit('8985242018091034')}")[1] is Reason.NOT_DIGITS


def test_a_header_repeated_inside_a_list_does_not_hide_the_rows_above_it(tmp_path: Path) -> None:
    values = [with_check_digit(f"898524201809103{n:04d}") for n in range(30)]
    lines = [*values[:20], "ICCID", *values[20:]]
    path = write_text(tmp_path / "list.txt", "\n".join(lines) + "\n")
    table = read_iccids(path)
    assert len(table.rows) == 31
    assert table.rows[20].reason is Reason.NOT_DIGITS


def test_columns_and_error_cells_are_placed_when_the_sheet_starts_further_right(
    tmp_path: Path,
) -> None:
    xml = (
        '<row r="3"><c r="C3" t="inlineStr"><is><t>ICCID</t></is></c></row>'
        '<row r="4"><c r="C4" t="e"><v>#N/A</v></c><c r="D4" t="inlineStr"><is><t>n</t></is></c>'
        f'</row><row r="5"><c r="C5" t="inlineStr"><is><t>{VALID}</t></is></c></row>'
    )
    path = write_raw_xlsx(tmp_path / "offset.xlsx", xml)
    assert reasons(path) == {4: Reason.EXCEL_ERROR, 5: None}
    twins = write_xlsx(tmp_path / "twins.xlsx", {"S": [[None, None, "ICCID", "x", "ICCID"]]})
    with pytest.raises(InputError, match="columns C and E are both headed"):
        read_iccids(twins)


def test_a_headerless_list_with_a_stray_second_cell_is_still_read(tmp_path: Path) -> None:
    path = write_text(tmp_path / "list.csv", f"{VALID}\n{VALID_B},note\n")
    assert reasons(path) == {1: None, 2: None}
