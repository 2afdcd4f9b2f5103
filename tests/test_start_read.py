"""The column-wise validator's fast cases (a slab of digits only, every row good) and the text
reader's line endings, against the row-wise reference (`iccid.validate`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_bulk.iccid import COLUMNWISE_MIN_ROWS, validate, validate_columnwise, with_check_digit
from lf_bulk.sources import read_iccids

ROWS = COLUMNWISE_MIN_ROWS + 500


def _valid(n: int, length: int = 20) -> list[str]:
    return [with_check_digit(f"8985242{i:0{length - 8}d}") for i in range(n)]


def _agrees(raws: list[str]) -> list[object]:
    iccids, reasons = validate_columnwise(raws)
    assert list(zip(iccids, reasons, strict=True)) == validate((raw, False) for raw in raws)
    return list(reasons)


def test_a_column_of_good_rows_only_is_all_valid() -> None:
    assert _agrees(_valid(ROWS) + _valid(ROWS, 19)) == [None] * (2 * ROWS)


@pytest.mark.parametrize("character", ["\u0130", "\u0140", "\u2030", "\U0001f630"])
def test_a_character_whose_code_point_wraps_round_to_a_digit_is_no_digit(character: str) -> None:
    # U+0130 less "0" is 256: one byte of it is 0. A slab of digits but for that one character
    # must still send the row to the row-wise check (not_digits), not read it as a 0.
    raws = _valid(ROWS)
    good = raws[7]
    raws[7] = good[:5] + character + good[6:]
    raws[9] = character * 20
    reasons = _agrees(raws)
    assert reasons[7] is not None and reasons[9] is not None
    assert reasons.count(None) == ROWS - 2


def test_bad_prefixes_checksums_and_repeats_in_an_otherwise_good_column() -> None:
    raws = _valid(ROWS)
    raws[3] = "79" + raws[3][2:]
    raws[4] = raws[4][:-1] + str((int(raws[4][-1]) + 1) % 10)
    raws[5] = raws[6]
    raws[ROWS - 1] = raws[0]
    reasons = _agrees(raws)
    assert [str(r) for r in reasons[3:7]] == ["bad_prefix", "bad_checksum", "None", "duplicate"]
    assert str(reasons[-1]) == "duplicate"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_text_list_reads_the_same_rows_whatever_its_line_ends(
    tmp_path: Path, newline: str
) -> None:
    iccids = _valid(ROWS)
    iccids[10] = "8988"  # an invalid row keeps its line number
    listed = tmp_path / "list.txt"
    listed.write_bytes(newline.join(["iccid", *iccids, ""]).encode())
    table = read_iccids(str(listed))
    assert table.counts.valid == ROWS - 1 and table.counts.invalid == 1
    assert [row.row for row in table.invalid_rows] == [12]
    assert table.rows[0].iccid == iccids[0] and table.rows[-1].row == ROWS + 1


def test_a_character_at_the_edge_of_a_row_after_empty_rows_is_found_in_its_own_row() -> None:
    # Empty rows start where the next row starts: the character belongs to the next one.
    raws = _valid(ROWS)
    good = raws[20]
    raws[18:21] = ["", "", "X" + good[1:]]
    raws[30] = good[:-1] + "X"
    raws[-1] = "-" + raws[-1][1:]
    reasons = _agrees(raws)
    assert [str(reasons[n]) for n in (18, 19, 20, 30)] == [
        "empty",
        "empty",
        "not_digits",
        "not_digits",
    ]
    assert reasons[-1] is not None
