"""The reconciliation diff, pure: categories, plan order, and its scale."""

from __future__ import annotations

import pytest

from lf_bulk import reconcile as rc
from lf_bulk.models import Operation


def rows(*spec: tuple[str, str]) -> list[rc.DesiredRow]:
    return [rc.DesiredRow(n + 2, iccid, group) for n, (iccid, group) in enumerate(spec)]


def categories(diff: rc.Diff) -> dict[str, str]:
    return {f"{f.iccid}@{f.desired_group or f.actual_group}": f.category for f in diff.findings}


def test_every_category() -> None:
    desired = rows(
        ("a", "G1"),  # in sync
        ("b", "G1"),  # missing
        ("c", "G1"),  # misplaced from G2
        ("a", "G1"),  # duplicate
        ("d", "G1"),  # conflict ...
        ("d", "G2"),  # ... with this
    )
    desired.append(rc.DesiredRow(9, "x", "G1", problem="bad_checksum"))
    actual = {"a": "G1", "c": "G2", "e": "G1", "d": "G2", "f": "G2"}
    diff = rc.diff(desired, actual, ["G1", "G2"])
    assert diff.counts == {
        "in_sync": 1,
        "missing": 1,
        "unexpected": 2,  # e in G1 and f in G2; d is a conflict, never touched
        "misplaced": 1,
        "duplicate": 1,
        "conflict": 2,
        "invalid": 1,
    }
    found = {(f.iccid, f.category) for f in diff.findings}
    assert ("e", "unexpected") in found and ("f", "unexpected") in found
    assert ("d", "unexpected") not in found
    assert diff.change_count() == 1 + 2 + 2


def test_members_of_groups_outside_the_named_ones_are_not_unexpected() -> None:
    desired = rows(("c", "G1"))
    actual = {"c": "G7", "z": "G7"}
    diff = rc.diff(desired, actual, ["G1"])
    assert categories(diff) == {"c@G1": "misplaced"}


def test_plan_removes_before_it_adds_and_moves_in_two_steps() -> None:
    desired = rows(("b", "G1"), ("c", "G1"))
    diff = rc.diff(desired, {"c": "G2", "e": "G1"}, ["G1"])
    items = rc.plan_items(diff.changes)
    steps = [(i.phase, i.operation, i.group_id, i.iccid) for i in items]
    assert steps == [
        (0, Operation.REMOVE, "G2", "c"),
        (0, Operation.REMOVE, "G1", "e"),
        (1, Operation.ADD, "G1", "b"),
        (1, Operation.ADD, "G1", "c"),
    ]


def test_conflicts_are_never_planned() -> None:
    desired = rows(("d", "G1"), ("d", "G2"))
    diff = rc.diff(desired, {}, ["G1", "G2"])
    assert rc.plan_items(diff.changes) == []
    assert diff.drift == 2


@pytest.mark.parametrize("n", [20_000, pytest.param(1_000_000, marks=pytest.mark.slow)])
def test_a_million_rows_diff_linearly(n: int) -> None:
    desired = [rc.DesiredRow(i + 2, f"{i:020d}", "G1") for i in range(n)]
    actual = {f"{i:020d}": "G1" for i in range(100, n + 100)}
    diff = rc.diff(desired, actual, ["G1"])
    assert diff.counts["in_sync"] == n - 100
    assert diff.counts["missing"] == 100
    assert diff.counts["unexpected"] == 100
