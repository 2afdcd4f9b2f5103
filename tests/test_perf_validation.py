"""The column-wise validator against the row-wise reference (`iccid.validate`): both must agree on
every row, for random and adversarial inputs, and `read_iccids` must give the same rows either way.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

from lf_bulk import iccid, sources
from lf_bulk.iccid import Reason, validate, validate_column, validate_columnwise, with_check_digit
from lf_bulk.sources import InputRow, InputRows, read_iccids

valid_iccids = st.builds(
    lambda body: with_check_digit("89" + body),
    st.text(alphabet="0123456789", min_size=16, max_size=17),
)


def _corrupted(value: str, position: int, digit: str) -> str:
    index = position % len(value)
    return value[:index] + digit + value[index + 1 :]


nearly_valid = st.builds(
    _corrupted, valid_iccids, st.integers(0, 19), st.sampled_from("0123456789")
)
other_prefix = st.builds(
    lambda body: with_check_digit(body),
    st.text(alphabet="0123456789", min_size=18, max_size=19),
)
SPACES_AND_DASHES = [" ", "-", "\u00a0", "\u2013", "\u3000", "\u200b", "\t", "\ufeff"]
ODD_CHARACTERS = [
    "\uff18",  # full-width 8
    "\u0668",  # Arabic-Indic 8
    "\u00b2",  # superscript two: isdigit() but not a digit we take
    "\ud800",  # a lone surrogate
    "O",
    "'",
    '"',
    "=",
    "é",
    "\U0001f600",
]


def _decorated(value: str, cuts: list[int], fillers: list[str]) -> str:
    for cut, filler in zip(cuts, fillers, strict=False):
        index = cut % (len(value) + 1)
        value = value[:index] + filler + value[index:]
    return value


decorated = st.builds(
    _decorated,
    st.one_of(valid_iccids, nearly_valid),
    st.lists(st.integers(0, 25), max_size=3),
    st.lists(st.sampled_from(SPACES_AND_DASHES + ODD_CHARACTERS), max_size=3),
)
full_width = valid_iccids.map(
    lambda v: v.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
)
excel_forms = st.one_of(
    valid_iccids.map(lambda v: "'" + v),
    valid_iccids.map(lambda v: f'="{v}"'),
    st.sampled_from(sorted(iccid.EXCEL_ERRORS)),
    st.sampled_from(["8.98524E+19", "8,98524201809103E+19", "8.9852420180910E19", "1e5"]),
)
digit_runs = st.text(alphabet="0123456789", min_size=0, max_size=24)
anything = st.text(max_size=24)
values = st.one_of(
    valid_iccids,
    nearly_valid,
    other_prefix,
    decorated,
    full_width,
    excel_forms,
    digit_runs,
    anything,
    st.just(""),
)


@st.composite
def columns(draw: st.DrawFn) -> tuple[list[str], list[bool] | None]:
    pool = draw(st.lists(values, min_size=1, max_size=40))
    # Picking from a small pool repeats values: duplicates, and repeated typos.
    raws = draw(st.lists(st.sampled_from(pool), max_size=120))
    numeric = draw(
        st.one_of(st.none(), st.lists(st.booleans(), min_size=len(raws), max_size=len(raws)))
    )
    return raws, numeric


def _reference(
    raws: list[str], numeric: list[bool] | None
) -> tuple[list[str], list[Reason | None]]:
    flags = numeric if numeric is not None else [False] * len(raws)
    checked = validate(zip(raws, flags, strict=True))
    return [value for value, _ in checked], [reason for _, reason in checked]


@given(columns())
def test_columnwise_agrees_with_the_row_wise_validator_on_every_row(
    column: tuple[list[str], list[bool] | None],
) -> None:
    raws, numeric = column
    assert validate_columnwise(raws, numeric) == _reference(raws, numeric)


@given(st.lists(st.one_of(valid_iccids, nearly_valid, other_prefix), min_size=1, max_size=200))
def test_columnwise_agrees_on_digit_only_columns(raws: list[str]) -> None:
    # The vectorised prefix, Luhn and repeat checks alone (no value takes the row-wise path).
    assert validate_columnwise(raws) == _reference(raws, None)


def test_columnwise_agrees_on_adversarial_rows() -> None:
    good = with_check_digit("898524201809103407")
    twenty = with_check_digit("8985242018091034079")
    # Same digits after "89" in a 19- and a 20-digit ICCID: not repeats of each other.
    short = with_check_digit("89" + "0" * 16)
    long = with_check_digit("89" + "0" * 17)
    raws = [
        good,
        good,  # duplicate
        f" {good} ",  # normalises to a repeat of a valid one: duplicate too
        good[:4] + "-" + good[4:],
        good[:-1] + str((int(good[-1]) + 1) % 10),  # bad checksum
        good[:-1] + str((int(good[-1]) + 1) % 10),  # a repeated typo keeps its reason
        with_check_digit("1" * 19),  # bad prefix
        "",
        "   ",
        "#N/A",
        "8.98524E+19",
        twenty,
        twenty.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
        "٨٩" + twenty[2:],
        short,
        long,
        twenty + "0",
        twenty[:-1],
        "89" + "\ud800" + twenty[3:],
        twenty,
    ]
    numeric = [False] * len(raws)
    numeric[-1] = True  # a numeric cell is rejected even when its text is valid
    expected = _reference(raws, numeric)
    assert validate_columnwise(raws, numeric) == expected
    reasons = expected[1]
    assert reasons[:3] == [None, Reason.DUPLICATE, Reason.DUPLICATE]
    assert reasons[14:16] == [None, None]
    assert reasons[-1] is Reason.NUMERIC_CELL


def test_columnwise_agrees_at_scale_with_repeats_and_typos() -> None:
    iccids = [with_check_digit(f"8985242{n:012d}") for n in range(30_000)]
    raws = iccids + iccids[::7] + [value[:-1] + "0" for value in iccids[::11]]
    raws[5] = "89 85 24 20 00 00 00 00 05" + raws[5][-1:]
    raws[6] = ""
    assert validate_columnwise(raws) == _reference(raws, None)
    assert validate_column(raws) == _reference(raws, None)


def test_validate_column_below_the_threshold_uses_the_row_wise_loop() -> None:
    raws = ["", with_check_digit("898524201809103407"), "x"]
    assert validate_column(raws, [False, True, False]) == _reference(raws, [False, True, False])


def test_numeric_flags_must_match_the_values() -> None:
    with pytest.raises(ValueError, match="numeric flags"):
        validate_columnwise(["1", "2"], [False])


# --- read_iccids: the same rows, row numbers and reasons either way ----------------------------


def _rows(path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int) -> list[InputRow]:
    monkeypatch.setattr(iccid, "COLUMNWISE_MIN_ROWS", threshold)
    return list(read_iccids(path).rows)


def _adversarial_column(count: int) -> list[str]:
    good = [with_check_digit(f"8985242{n:012d}") for n in range(count)]
    good[3] = good[2]
    good[10] = "8.98524E+19"
    good[11] = ""
    good[12] = f"{good[13][:6]} {good[13][6:]}"
    good[20] = good[20][:-1] + str((int(good[20][-1]) + 1) % 10)
    good[21] = "#REF!"
    good[22] = "１２３"
    return good


def test_read_csv_gives_the_same_rows_column_wise_and_row_wise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    column = _adversarial_column(3_000)
    path = tmp_path / "list.csv"
    path.write_text(
        "title line\niccid,site\n" + "".join(f"{v},s{n}\n" for n, v in enumerate(column))
    )
    rowwise = _rows(path, monkeypatch, threshold=10**9)
    columnwise = _rows(path, monkeypatch, threshold=0)
    assert columnwise == rowwise
    assert [row.row for row in columnwise[:3]] == [3, 4, 5]
    assert columnwise[3].reason is Reason.DUPLICATE
    assert columnwise[12].reason is None
    assert columnwise[13].reason is Reason.DUPLICATE  # row 12 had it with a space
    assert columnwise[22].reason is Reason.BAD_LENGTH  # full-width "123"


def test_read_xlsx_gives_the_same_rows_column_wise_and_row_wise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    column: list[object] = list(_adversarial_column(2_500))
    column[30] = 89852420000000000000  # a number cell: numeric_cell
    column[31] = 8.98524200000001e19
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["ICCID"])
    for value in column:
        sheet.append([value])
    path = tmp_path / "list.xlsx"
    book.save(path)
    rowwise = _rows(path, monkeypatch, threshold=10**9)
    columnwise = _rows(path, monkeypatch, threshold=0)
    assert columnwise == rowwise
    assert columnwise[30].reason is Reason.NUMERIC_CELL
    assert columnwise[31].reason is Reason.NUMERIC_CELL


# --- InputRows: rows kept as columns -------------------------------------------------------------


def test_input_rows_behave_as_a_sequence_of_rows() -> None:
    a, b = with_check_digit("898524201809103407"), with_check_digit("898524201809103408")
    rows = InputRows(2, [a, "x", b], [a, "x", b], [None, Reason.NOT_DIGITS, None])
    expected = [
        InputRow(2, a, a, None),
        InputRow(3, "x", "x", Reason.NOT_DIGITS),
        InputRow(4, b, b, None),
    ]
    assert len(rows) == 3
    assert list(rows) == expected
    assert rows == expected
    assert rows != expected[:2]
    assert rows[-1] == expected[-1]
    assert rows[1:] == expected[1:]
    assert rows.valid_iccids() == [a, b]
    with pytest.raises(IndexError):
        rows[3]


def test_a_large_read_counts_without_making_row_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    column = _adversarial_column(5_000)
    path = tmp_path / "list.txt"
    path.write_text("\n".join(column) + "\n")
    made = 0
    real = sources.InputRow

    def counting(*args: object) -> InputRow:
        nonlocal made
        made += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sources, "InputRow", counting)
    table = read_iccids(path)
    counts = table.counts
    assert made == 0
    assert (counts.input_rows, counts.duplicates) == (5_000, 2)
    assert counts.invalid == 5  # rounded, empty, bad checksum, #REF!, full-width "123"
    assert counts.valid == 5_000 - 7
    assert len(table.valid_iccids()) == counts.valid
    assert made == 0
