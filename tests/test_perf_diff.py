"""The reconcile diff, kept compact (`Findings`), against a plain reference written row by row."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lf_bulk import reconcile as rc
from lf_bulk.reconcile import Category, DesiredRow, Finding, Findings


def _reference(
    desired: list[DesiredRow], actual: dict[str, str], named: list[str]
) -> list[Finding]:
    """The diff's rules, one row at a time, every finding a tuple (as the diff once was)."""
    first_group: dict[str, str] = {}
    conflicted: dict[str, set[str]] = {}
    unreadable: dict[str, int] = {}
    for r in desired:
        if r.problem:
            unreadable.setdefault(r.iccid, r.row)
            continue
        known = first_group.setdefault(r.iccid, r.group_id)
        if known != r.group_id:
            conflicted.setdefault(r.iccid, {known}).add(r.group_id)
    findings: list[Finding] = []
    seen: set[str] = set()
    seen_in: set[tuple[str, str]] = set()
    for r in desired:
        if r.problem:
            findings.append(
                Finding(r.row, r.iccid, Category.INVALID, r.group_id, "", rc._explain(r.problem))
            )
            continue
        current = actual.get(r.iccid, "")
        if r.iccid in conflicted:
            if (r.iccid, r.group_id) in seen_in:
                findings.append(Finding(r.row, r.iccid, Category.DUPLICATE, r.group_id, current))
                continue
            seen_in.add((r.iccid, r.group_id))
            others = ", ".join(sorted(conflicted[r.iccid] - {r.group_id}))
            detail = f"also desired in {others}; never applied"
            findings.append(Finding(r.row, r.iccid, Category.CONFLICT, r.group_id, current, detail))
            continue
        if r.iccid in seen:
            findings.append(Finding(r.row, r.iccid, Category.DUPLICATE, r.group_id, current))
            continue
        seen.add(r.iccid)
        if current != r.group_id and r.iccid in unreadable:
            detail = f"row {unreadable[r.iccid]} for this ICCID is invalid; never applied"
            findings.append(Finding(r.row, r.iccid, Category.CONFLICT, r.group_id, current, detail))
        elif current == r.group_id:
            findings.append(Finding(r.row, r.iccid, Category.IN_SYNC, r.group_id, current))
        elif current:
            findings.append(Finding(r.row, r.iccid, Category.MISPLACED, r.group_id, current))
        else:
            findings.append(Finding(r.row, r.iccid, Category.MISSING, r.group_id, ""))
    for iccid, group in actual.items():
        if group in named and iccid not in first_group:
            findings.append(Finding(0, iccid, Category.UNEXPECTED, "", group))
    return findings


ICCIDS = [f"8985242{n:013d}" for n in range(12)]
GROUPS = ["G1", "G2", "G3"]
desired_rows = st.lists(
    st.tuples(
        st.sampled_from(ICCIDS),
        st.sampled_from(GROUPS),
        st.sampled_from(["", "", "", "bad_checksum", rc.NO_GROUP, rc.BAD_GROUP]),
    ),
    max_size=30,
)
memberships = st.dictionaries(st.sampled_from(ICCIDS), st.sampled_from(GROUPS), max_size=12)


@given(desired_rows, memberships, st.lists(st.sampled_from(GROUPS), min_size=1, unique=True))
def test_the_diff_agrees_with_the_row_by_row_reference(
    rows: list[tuple[str, str, str]], actual: dict[str, str], named: list[str]
) -> None:
    desired = [DesiredRow(n + 2, iccid, group, problem) for n, (iccid, group, problem) in
               enumerate(rows)]  # fmt: skip
    result = rc.diff(desired, actual, named)
    expected = _reference(desired, actual, named)
    assert list(result.findings) == expected
    assert result.findings == expected
    assert [result.findings[n] for n in range(len(expected))] == expected
    counted = {str(c): sum(1 for f in expected if f.category is c) for c in rc.CATEGORIES}
    assert result.counts == counted
    assert rc.Diff(expected, result.scope).counts == counted


def test_findings_behave_as_a_sequence() -> None:
    desired = [DesiredRow(2, "A", "G1"), DesiredRow(3, "B", "G1"), DesiredRow(4, "C", "G1")]
    result = rc.diff(desired, {"A": "G1", "C": "G2", "D": "G1"}, ["G1"])
    findings = result.findings
    assert isinstance(findings, Findings)
    expected = [
        Finding(2, "A", Category.IN_SYNC, "G1", "G1"),
        Finding(3, "B", Category.MISSING, "G1", ""),
        Finding(4, "C", Category.MISPLACED, "G1", "G2"),
        Finding(0, "D", Category.UNEXPECTED, "", "G1"),
    ]
    assert len(findings) == 4
    assert findings[-1] == expected[-1]
    assert findings[1:3] == expected[1:3]
    assert result.changes == expected[1:]
    with pytest.raises(IndexError):
        findings[4]


def test_a_large_diff_keeps_one_byte_per_common_row() -> None:
    iccids = [f"8985242{n:013d}" for n in range(20_000)]
    desired = [DesiredRow(n + 2, iccid, "G1") for n, iccid in enumerate(iccids[:19_000])]
    result = rc.diff(desired, dict.fromkeys(iccids[500:], "G1"), ["G1"])
    findings = result.findings
    assert isinstance(findings, Findings)
    assert not findings._kept  # in sync and missing rows are not kept as tuples
    assert result.counts["in_sync"] == 18_500
    assert result.counts["missing"] == 500
    assert result.counts["unexpected"] == 1_000
