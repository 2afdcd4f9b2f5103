"""ICCID normalisation and validation (design notes §2). Pure functions, no I/O.

An ICCID is valid when, after `normalize`, it is 19 or 20 ASCII digits, starts with ``89`` (the
telecom industry identifier of ITU-T E.118) and its last digit is the Luhn check digit of the rest.
Each rejected value gets one `Reason`; `EXPLANATIONS` says in plain words what is wrong and how to
fix it.

A value from a cell the spreadsheet stored as a number is `NUMERIC_CELL` whatever it looks like;
so is text in scientific notation such as ``8.98524E+19``, which is what Excel writes to a CSV for
such a cell. Either way the last digits are already lost.

`validate` checks row by row and is the reference; `validate_column` gives the same result for a
whole column, checked column-wise with numpy when it is large (the property tests hold the two
together).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "EXCEL_ERRORS",
    "EXPLANATIONS",
    "VALID_LENGTHS",
    "Reason",
    "check",
    "luhn_valid",
    "normalize",
    "validate",
    "validate_column",
    "validate_texts",
    "with_check_digit",
]

VALID_LENGTHS = (19, 20)
PREFIX = "89"


class Reason(StrEnum):
    """Why a value is not an ICCID we may send; the value is the `reason_code` of reports."""

    EMPTY = "empty"
    NOT_DIGITS = "not_digits"
    BAD_LENGTH = "bad_length"
    BAD_PREFIX = "bad_prefix"
    BAD_CHECKSUM = "bad_checksum"
    NUMERIC_CELL = "numeric_cell"
    DUPLICATE = "duplicate"
    EXCEL_ERROR = "excel_error"

    @property
    def explanation(self) -> str:
        return EXPLANATIONS[self]


EXPLANATIONS: dict[Reason, str] = {
    Reason.EMPTY: "The cell is empty.",
    Reason.NOT_DIGITS: (
        "The value contains characters other than digits (spaces and dashes are allowed)."
    ),
    Reason.BAD_LENGTH: "An ICCID has 19 or 20 digits; this value has a different number of digits.",
    Reason.BAD_PREFIX: "An ICCID starts with 89; this value does not.",
    Reason.BAD_CHECKSUM: (
        "The last digit (the check digit) does not match the others: a digit is probably mistyped."
    ),
    Reason.NUMERIC_CELL: (
        "The spreadsheet stored this ICCID as a number, so its last digits are already lost "
        "(Excel keeps only 15 significant digits). Format the column as Text in Excel and "
        "re-enter or paste the ICCIDs again, or export the file as CSV with the ICCIDs quoted."
    ),
    Reason.DUPLICATE: "This ICCID already appears on an earlier row; only the first one is used.",
    Reason.EXCEL_ERROR: (
        "The cell shows an Excel error (such as #N/A or #REF!) instead of an ICCID: a formula "
        "failed. Fix the formula, or copy the column and paste it back as values."
    ),
}

# Characters people paste inside ICCIDs that carry no meaning: ASCII and Unicode spaces, zero-width
# characters and the dashes word processors substitute for "-". Full-width digits (typed with a
# CJK input method) are mapped to ASCII ones.
_SPACES = " \t\u00a0\u2007\u2009\u202f\u3000\u200b\ufeff"
_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d"
_NORMALIZE_TABLE = str.maketrans("０１２３４５６７８９", "0123456789", _SPACES + _DASHES)

_BAD_CHECKSUM = Reason.BAD_CHECKSUM
_DOUBLED_DIGIT = bytes.maketrans(b"0123456789", b"0246813579")
_ASCII_ZERO = ord("0")


# What Excel shows, and writes to a CSV, for a formula that failed.
EXCEL_ERRORS = frozenset(
    {
        "#N/A",
        "#REF!",
        "#VALUE!",
        "#DIV/0!",
        "#NAME?",
        "#NULL!",
        "#NUM!",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#CONNECT!",
        "#BUSY!",
        "#UNKNOWN!",
        "#GETTING_DATA",
    }
)
_FORMULA_TEXT_START = '="'

ROUNDED_NUMBER = re.compile(r"[0-9](?:[.,][0-9]*)?[eE][+-]?[0-9]+")
"""Text such as "8.98524E+19" or "7.00000001E+15": how Excel shows, and writes to a CSV, a long
number it stored in a cell. The digits past the fifteenth are lost, so such an id is unusable."""


def normalize(raw: str) -> str:
    """`raw` without surrounding whitespace, inner spaces and dashes; full-width digits as ASCII.

    Excel's two ways of forcing text are unwrapped: a leading apostrophe (``'8985...``) and a
    text formula (``="8985..."``, what a CSV meant for Excel holds).
    Idempotent: ``normalize(normalize(x)) == normalize(x)``.
    """
    if raw.isascii() and raw.isdigit():
        return raw
    text = raw.translate(_NORMALIZE_TABLE).strip()
    while True:
        if text.startswith("'"):
            text = text.lstrip("'").strip()
        elif len(text) >= 3 and text.startswith(_FORMULA_TEXT_START) and text.endswith('"'):
            text = text[2:-1].strip()
        else:
            return text


def looks_rounded(text: str) -> bool:
    """Whether `text` is a number a spreadsheet rounded (see `ROUNDED_NUMBER`)."""
    return ROUNDED_NUMBER.fullmatch(text) is not None


def luhn_valid(digits: str) -> bool:
    """Whether the last digit of `digits` is the Luhn check digit of the others."""
    _require_digits(digits)
    return _luhn_sum(digits) % 10 == 0


def with_check_digit(body: str) -> str:
    """`body` followed by its Luhn check digit: ``with_check_digit("8985242018091034079")``."""
    _require_digits(body)
    return body + str(-_luhn_sum(body + "0") % 10)


def check(raw: str, *, numeric: bool = False) -> tuple[str, Reason | None]:
    """`(normalized value, reason)`; the reason is None when the value is a valid ICCID.

    `numeric` says the value came from a cell the spreadsheet stored as a number: such a value is
    rejected even when it looks valid, because the spreadsheet has already rounded it.
    """
    iccid = normalize(raw)
    if numeric:
        return iccid, Reason.NUMERIC_CELL
    return iccid, _reason(iccid)


def validate(values: Iterable[tuple[str, bool]]) -> list[tuple[str, Reason | None]]:
    """`check` each `(raw, numeric)` pair and mark repeats of a valid ICCID as DUPLICATE.

    Only values that are otherwise valid count as duplicates: a repeated typo keeps its own reason.
    """
    seen: set[str] = set()
    results: list[tuple[str, Reason | None]] = []
    append = results.append
    reason: Reason | None
    for raw, numeric in values:
        # The common case, a clean 19/20-digit ICCID, skips normalize and _reason: at a million
        # rows the saved calls are a good part of the read time.
        if not numeric and len(raw) in VALID_LENGTHS and raw.isascii() and raw.isdigit():
            iccid = raw
            if raw[:2] != PREFIX:
                reason = Reason.BAD_PREFIX
            else:
                # _luhn_sum inlined: one call less per row is worth it at a million rows.
                data = raw.encode("ascii")
                total = sum(data[-1::-2]) + sum(data[-2::-2].translate(_DOUBLED_DIGIT))
                reason = None if (total - _ASCII_ZERO * len(data)) % 10 == 0 else _BAD_CHECKSUM
        else:
            iccid = normalize(raw)
            reason = Reason.NUMERIC_CELL if numeric else _reason(iccid)
        if reason is None:
            if iccid in seen:
                reason = Reason.DUPLICATE
            else:
                seen.add(iccid)
        append((iccid, reason))
    return results


def validate_texts(raws: Iterable[str]) -> list[tuple[str, Reason | None]]:
    """`validate` for values that all came from text (no numeric cells)."""
    return validate((raw, False) for raw in raws)


# Below this many rows the row-wise loop is as fast, and a small file needs no numpy.
COLUMNWISE_MIN_ROWS = 2_000
# Rows per slab of the column-wise check: bounds its scratch arrays (about 10 MB each).
_SLAB_ROWS = 1 << 16


def validate_column(
    raws: Sequence[str], numeric: Sequence[bool] | None = None
) -> tuple[list[str], list[Reason | None]]:
    """`validate` of a whole column, as two lists: the normalized values and their reasons.

    Row for row the same result as `validate(zip(raws, numeric))` (which stays the reference):
    a large column is checked column-wise with numpy, and only the rows that are not plain 19/20
    ASCII digits (or are numeric cells) go through the row-wise `normalize` and `_reason`.
    """
    if len(raws) < COLUMNWISE_MIN_ROWS:
        pairs = zip(raws, numeric if numeric is not None else [False] * len(raws), strict=True)
        checked = validate(pairs)
        return [iccid for iccid, _ in checked], [reason for _, reason in checked]
    return validate_columnwise(raws, numeric)


def validate_columnwise(
    raws: Sequence[str], numeric: Sequence[bool] | None = None
) -> tuple[list[str], list[Reason | None]]:
    """`validate_column` without the small-input shortcut (the property tests call it)."""
    import numpy as np

    count = len(raws)
    if numeric is not None and len(numeric) != count:
        raise ValueError(f"{count} values but {len(numeric)} numeric flags")
    iccids = list(raws)
    reasons: list[Reason | None] = [None] * count
    if not count:
        return iccids, reasons
    lengths = np.fromiter(map(len, iccids), dtype=np.int64, count=count)
    codes = _code_points(iccids)
    starts = np.cumsum(lengths) - lengths
    # Every row starts out "odd" (normalized and checked one by one); plain rows are cleared.
    odd = np.ones(count, dtype=bool)
    # A valid ICCID as one number, to find repeats without hashing a million strings; -1: none.
    keys = np.full(count, -1, dtype=np.int64)
    # The rows holding any character that is not an ASCII digit, found in one pass over the text
    # (unsigned: a character below "0" wraps round to a large number): the others are plain.
    with_other = np.searchsorted(starts, np.flatnonzero(codes - _ASCII_ZERO > 9), side="right") - 1
    all_digits = np.ones(count, dtype=bool)
    all_digits[with_other] = False
    for length in VALID_LENGTHS:
        rows = np.flatnonzero((lengths == length) & all_digits)
        if not len(rows):
            continue
        windows = np.lib.stride_tricks.sliding_window_view(codes, length)
        for first in range(0, len(rows), _SLAB_ROWS):
            slab = rows[first : first + _SLAB_ROWS]
            _check_plain(windows, starts[slab], length, slab, odd, keys, reasons)
    flags: Sequence[bool] = [False] * count if numeric is None else numeric
    if numeric is not None:
        odd |= np.fromiter(numeric, dtype=bool, count=count)
    for index in np.flatnonzero(odd).tolist():
        iccid = normalize(iccids[index])
        iccids[index] = iccid
        reason = Reason.NUMERIC_CELL if flags[index] else _reason(iccid)
        reasons[index] = reason
        keys[index] = -1 if reason is not None else _key(iccid)
    valid = np.flatnonzero(keys >= 0)
    for index in valid[_repeats(keys[valid])].tolist():
        reasons[index] = Reason.DUPLICATE
    return iccids, reasons


def _key(iccid: str) -> int:
    """A valid ICCID as a number unique to it: the digits after 89, the length kept apart."""
    return int(iccid[2:]) + (_TWENTY_DIGITS_KEY if len(iccid) == 20 else 0)


_TWENTY_DIGITS_KEY = 10**18  # above every 19-digit key (< 10**17), below 2**63 with 18 digits


def _repeats(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Positions in `keys` of every value seen at an earlier position."""
    import numpy as np

    # A stable sort keeps equal keys in input order: all but the first of each run are repeats.
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    later = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    return np.sort(order[later])


def _code_points(values: list[str]) -> npt.NDArray[np.unsignedinteger[Any]]:
    """Every character of `values`, end to end, as its code point (one byte when all ASCII)."""
    import numpy as np

    text = "".join(values)
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    # UTF-32 keeps one unit per character, so row offsets stay character offsets.
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _check_plain(
    windows: npt.NDArray[np.unsignedinteger[Any]],
    starts: npt.NDArray[np.int64],
    length: int,
    rows: npt.NDArray[np.intp],
    odd: npt.NDArray[np.bool_],
    keys: npt.NDArray[np.int64],
    reasons: list[Reason | None],
) -> None:
    """Prefix and Luhn check of the `rows` of `length` characters, all of them ASCII digits.

    `windows[i]` is the `length` characters from position i of the column's text."""
    import numpy as np

    digits = (windows[starts] - _ASCII_ZERO).astype(np.uint8, copy=False)
    odd[rows] = False
    # Every second digit from the right is doubled, less 9 when that is over 9 (a digit of 5-9).
    doubled = np.zeros(length, dtype=np.int64)
    doubled[length - 2 :: -2] = 1
    # One product gives each row's Luhn sum before that correction (column 0) and its key, the
    # digits after 89 as one number (column 1): the digits are widened once, not twice.
    weights = np.zeros((length, 2), dtype=np.int64)
    weights[:, 0] = doubled + 1
    weights[2:, 1] = 10 ** np.arange(length - 3, -1, -1, dtype=np.int64)
    sums_and_keys = digits @ weights
    total = sums_and_keys[:, 0] - 9 * ((digits >= 5) @ doubled)
    bad_prefix = (digits[:, 0] != 8) | (digits[:, 1] != 9)
    bad_checksum = ~bad_prefix & (total % 10 != 0)
    for index in rows[bad_prefix].tolist():
        reasons[index] = Reason.BAD_PREFIX
    for index in rows[bad_checksum].tolist():
        reasons[index] = _BAD_CHECKSUM
    good = ~(bad_prefix | bad_checksum)
    offset = _TWENTY_DIGITS_KEY if length == 20 else 0
    if good.all():
        keys[rows] = sums_and_keys[:, 1] + offset
    else:
        keys[rows[good]] = sums_and_keys[good, 1] + offset


def _reason(iccid: str) -> Reason | None:
    if not iccid:
        return Reason.EMPTY
    if not (iccid.isascii() and iccid.isdigit()):
        if looks_rounded(iccid):
            return Reason.NUMERIC_CELL
        if iccid in EXCEL_ERRORS:
            return Reason.EXCEL_ERROR
        return Reason.NOT_DIGITS
    if len(iccid) not in VALID_LENGTHS:
        return Reason.BAD_LENGTH
    return _ordered_reason(iccid)


def _ordered_reason(iccid: str) -> Reason | None:
    """The reason of a value already known to be 19 or 20 ASCII digits."""
    if iccid[:2] != PREFIX:
        return Reason.BAD_PREFIX
    if _luhn_sum(iccid) % 10:
        return Reason.BAD_CHECKSUM
    return None


def _luhn_sum(digits: str) -> int:
    # Every second digit from the right is doubled (and 9 subtracted when that exceeds 9); doing it
    # with bytes.translate and sum keeps the loop in C, which is what makes a million checks cheap.
    data = digits.encode("ascii")
    plain = data[-1::-2]
    doubled = data[-2::-2].translate(_DOUBLED_DIGIT)
    return sum(plain) + sum(doubled) - _ASCII_ZERO * len(data)


def _require_digits(digits: str) -> None:
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"expected ASCII digits, got {digits!r}")
