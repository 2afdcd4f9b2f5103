"""The reconcile diff's column-wise path (valid rows, each ICCID once) against the row-by-row diff.

`rc.diff` takes the column-wise path whenever it can; `rc.diff_row_by_row` is the diff as it was
before (every rule, one row at a time). Both must give the same findings, in the same order, with
the same counts, on any input.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lf_bulk import reconcile as rc
from lf_bulk.reconcile import Category, DesiredRow, Findings

ICCIDS = [f"8985242{n:013d}" for n in range(40)]
GROUPS = ["G1", "G2", "G3", ""]  # '' only reaches the diff from a caller that skips the checks

unique_rows = st.lists(
    st.tuples(st.sampled_from(ICCIDS), st.sampled_from(GROUPS)),
    unique_by=lambda row: row[0],
    max_size=40,
)
any_rows = st.lists(
    st.tuples(
        st.sampled_from(ICCIDS[:12]),
        st.sampled_from(GROUPS),
        st.sampled_from(["", "", "", "bad_checksum", rc.NO_GROUP]),
    ),
    max_size=30,
)
# Members as the API lists them: any order, groups in and out of scope, '' for an odd answer.
memberships = st.lists(
    st.tuples(st.sampled_from(ICCIDS), st.sampled_from(["G1", "G2", "G3", "G4", ""])),
    unique_by=lambda member: member[0],
    max_size=40,
).map(dict)
scopes = st.lists(st.sampled_from(["G1", "G2", "G3", "G4"]), min_size=1, unique=True)


def _same_diff(desired: list[DesiredRow], actual: dict[str, str], named: list[str]) -> rc.Diff:
    result = rc.diff(desired, actual, named)
    expected = rc.diff_row_by_row(desired, actual, named)
    assert list(result.findings) == list(expected.findings)
    assert [result.findings[n] for n in range(len(result.findings))] == list(expected.findings)
    assert result.counts == expected.counts
    assert result.scope == expected.scope
    assert [f.row for f in result.changes] == [f.row for f in expected.changes]
    return result


@given(unique_rows, memberships, scopes)
def test_unique_valid_rows_agree_with_the_row_by_row_diff(
    rows: list[tuple[str, str]], actual: dict[str, str], named: list[str]
) -> None:
    desired = [DesiredRow(n + 2, iccid, group) for n, (iccid, group) in enumerate(rows)]
    assert rc._diff_of_unique_valid_rows(desired, actual, named) is not None  # the fast path ran
    _same_diff(desired, actual, named)


@given(any_rows, memberships, scopes)
def test_any_rows_agree_with_the_row_by_row_diff(
    rows: list[tuple[str, str, str]], actual: dict[str, str], named: list[str]
) -> None:
    desired = [DesiredRow(n + 2, iccid, group, problem) for n, (iccid, group, problem) in
               enumerate(rows)]  # fmt: skip
    _same_diff(desired, actual, named)


def test_an_invalid_or_repeated_row_takes_the_row_by_row_rules() -> None:
    a, b = ICCIDS[:2]
    repeated = [DesiredRow(2, a, "G1"), DesiredRow(3, a, "G2")]
    invalid = [DesiredRow(2, a, "G1"), DesiredRow(3, b, "G1", "bad_checksum")]
    assert rc._diff_of_unique_valid_rows(repeated, {}, ["G1"]) is None
    assert rc._diff_of_unique_valid_rows(invalid, {}, ["G1"]) is None
    counts = _same_diff(repeated, {a: "G1"}, ["G1", "G2"]).counts
    assert counts["conflict"] == 2


def test_every_category_of_the_fast_path_at_once() -> None:
    a, b, c, d, e = ICCIDS[:5]
    desired = [DesiredRow(2, a, "G1"), DesiredRow(3, b, "G1"), DesiredRow(4, c, "G1")]
    result = _same_diff(desired, {a: "G1", c: "G2", d: "G1", e: "G9"}, ["G1"])
    assert isinstance(result.findings, Findings)
    assert [f.category for f in result.findings] == [
        Category.IN_SYNC, Category.MISSING, Category.MISPLACED, Category.UNEXPECTED,
    ]  # fmt: skip
    assert result.findings[2].actual_group == "G2" and result.findings[3].iccid == d
    assert len(result.findings._kept) == 1  # only the misplaced row is kept whole
