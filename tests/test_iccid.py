from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk.iccid import (
    EXPLANATIONS,
    Reason,
    check,
    luhn_valid,
    normalize,
    validate,
    validate_texts,
    with_check_digit,
)

DOCUMENTED = "89852420180910340793"

bodies = st.text(alphabet="0123456789", min_size=1, max_size=30)
iccid_bodies = st.text(alphabet="0123456789", min_size=16, max_size=17).map(lambda d: "89" + d)


def test_documented_linksfield_example_is_valid() -> None:
    assert check(DOCUMENTED) == (DOCUMENTED, None)
    assert luhn_valid(DOCUMENTED)
    assert with_check_digit(DOCUMENTED[:-1]) == DOCUMENTED


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", Reason.EMPTY),
        (" \u00a0 - ", Reason.EMPTY),
        ("8985242O180910340793", Reason.NOT_DIGITS),
        ("89852420180910340793x", Reason.NOT_DIGITS),
        ("٨٩٨٥٢٤٢٠١٨٠٩١٠٣٤٠٧٩٣", Reason.NOT_DIGITS),
        ("898524201809103407", Reason.BAD_LENGTH),
        ("8985242018091034079300", Reason.BAD_LENGTH),
        (with_check_digit("1" * 19), Reason.BAD_PREFIX),
        ("89852420180910340792", Reason.BAD_CHECKSUM),
        ("8.98524E+19", Reason.NUMERIC_CELL),
        ("8,98524201809103E+19", Reason.NUMERIC_CELL),
    ],
)
def test_check_gives_the_reason(raw: str, reason: Reason) -> None:
    assert check(raw)[1] is reason


def test_numeric_cell_is_rejected_even_when_it_looks_valid() -> None:
    assert check(DOCUMENTED, numeric=True) == (DOCUMENTED, Reason.NUMERIC_CELL)


def test_nineteen_digit_iccids_are_valid() -> None:
    nineteen = with_check_digit("898524201809103408")
    assert len(nineteen) == 19
    assert check(nineteen) == (nineteen, None)


@pytest.mark.parametrize(
    "raw",
    [
        " 8985 2420 1809 1034 0793 ",
        "8985-2420-1809-1034-0793",
        "8985\u00a02420\u202f1809\u20131034\u20110793",
        "\ufeff89852420180910340793\t",
        "８９８５２４２０１８０９１０３４０７９３",
    ],
)
def test_normalize_removes_spaces_dashes_and_maps_full_width_digits(raw: str) -> None:
    assert normalize(raw) == DOCUMENTED
    assert check(raw) == (DOCUMENTED, None)


def test_reason_values_are_the_documented_codes() -> None:
    assert [reason.value for reason in Reason] == [
        "empty",
        "not_digits",
        "bad_length",
        "bad_prefix",
        "bad_checksum",
        "numeric_cell",
        "duplicate",
        "excel_error",
    ]


def test_every_reason_is_explained() -> None:
    assert set(EXPLANATIONS) == set(Reason)
    assert all(reason.explanation == EXPLANATIONS[reason] for reason in Reason)


def test_numeric_cell_explanation_says_how_to_fix_the_file() -> None:
    text = Reason.NUMERIC_CELL.explanation
    assert "as Text" in text
    assert "CSV" in text and "quoted" in text
    assert "lost" in text


def test_validate_marks_second_and_later_occurrences_as_duplicate() -> None:
    other = with_check_digit("898524201809103408")
    results = validate(
        [
            (DOCUMENTED, False),
            (other, False),
            ("8985 2420 1809 1034 0793", False),
            (DOCUMENTED, False),
        ]
    )
    assert [reason for _, reason in results] == [None, None, Reason.DUPLICATE, Reason.DUPLICATE]
    assert results[2][0] == DOCUMENTED


def test_validate_counts_duplicates_only_among_valid_iccids() -> None:
    results = validate([("123", False), ("123", False), (DOCUMENTED, True), (DOCUMENTED, False)])
    assert [reason for _, reason in results] == [
        Reason.BAD_LENGTH,
        Reason.BAD_LENGTH,
        Reason.NUMERIC_CELL,
        None,
    ]


def test_validate_texts_matches_validate() -> None:
    raws = [DOCUMENTED, "x", DOCUMENTED, ""]
    assert validate_texts(raws) == validate((raw, False) for raw in raws)


@pytest.mark.parametrize("bad", ["", "12a", "１２", "-1"])
def test_luhn_helpers_refuse_non_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="expected ASCII digits"):
        luhn_valid(bad)
    with pytest.raises(ValueError, match="expected ASCII digits"):
        with_check_digit(bad)


@given(bodies)
def test_with_check_digit_always_passes_luhn(body: str) -> None:
    completed = with_check_digit(body)
    assert completed[:-1] == body
    assert luhn_valid(completed)


@given(bodies, st.data())
def test_changing_any_one_digit_breaks_luhn(body: str, data: st.DataObject) -> None:
    completed = with_check_digit(body)
    position = data.draw(st.integers(0, len(completed) - 1))
    replacement = data.draw(
        st.sampled_from("0123456789").filter(lambda d: d != completed[position])
    )
    changed = completed[:position] + replacement + completed[position + 1 :]
    assert not luhn_valid(changed)


@given(iccid_bodies)
def test_generated_iccids_are_valid(body: str) -> None:
    iccid = with_check_digit(body)
    assert check(iccid) == (iccid, None)


@given(st.text())
def test_normalize_is_idempotent(raw: str) -> None:
    once = normalize(raw)
    assert normalize(once) == once


@given(iccid_bodies, st.lists(st.sampled_from([" ", "-", "\u00a0", "\u2013"]), max_size=25))
def test_separators_anywhere_do_not_change_the_iccid(body: str, separators: list[str]) -> None:
    iccid = with_check_digit(body)
    characters = list(iccid)
    for index, separator in enumerate(separators):
        characters.insert(index % (len(characters) + 1), separator)
    assert check("".join(characters)) == (iccid, None)


@given(st.text(), st.booleans())
def test_check_accepts_any_text(raw: str, numeric: bool) -> None:
    iccid, reason = check(raw, numeric=numeric)
    assert iccid == normalize(raw)
    assert reason is None or isinstance(reason, Reason)
    if reason is None:
        assert iccid.isdigit() and len(iccid) in (19, 20) and luhn_valid(iccid)
