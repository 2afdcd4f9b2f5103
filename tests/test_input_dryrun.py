"""A dry run's report carries the plan for every row, as stderr summarises it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lf_bulk.reports import DRY_RUN_OUTCOMES
from lf_bulk.sandbox.seed import DEMO_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, read_items, read_summary, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.mark.parametrize(
    ("command", "member_outcome", "other_outcome"),
    [("add", "already_member", "would_add"), ("remove", "would_remove", "not_member")],
)
def test_dry_run_items_carry_the_plan_per_row(
    command: str,
    member_outcome: str,
    other_outcome: str,
    sandbox: SandboxServer,
    tmp_path: Path,
) -> None:
    members = sandbox.state.members(DEMO_GROUP)[:3]
    others = sandbox.state.ungrouped_sims(2)
    rows = [*members, *others, "Report line 1", members[0]]
    file = write_list(tmp_path / "s.csv", rows)
    report = tmp_path / "r"
    args = [*base_args(tmp_path / "h", sandbox.base_url), "sims", command, DEMO_GROUP, str(file)]

    result = expect(invoke([*args, "--dry-run", "--skip-invalid", "--report-dir", str(report)]), 0)

    items = read_items(report)
    assert [(item["row"], item["outcome"]) for item in items] == [
        ("2", member_outcome),
        ("3", member_outcome),
        ("4", member_outcome),
        ("5", other_outcome),
        ("6", other_outcome),
        ("7", "invalid"),
        ("8", "duplicate"),
    ]
    assert items[5]["iccid"] == "Report line 1" and items[5]["reason_code"] == "not_digits"
    outcomes = read_summary(report)["outcomes"]
    assert list(outcomes) == list(DRY_RUN_OUTCOMES)
    assert {k: v for k, v in outcomes.items() if v} == dict(
        Counter(item["outcome"] for item in items)
    )
    met = 3 if command == "add" else 2
    assert f"{met} already meet the goal, {5 - met} would change" in result.stderr
    assert sandbox.state.mutation_log() == []
