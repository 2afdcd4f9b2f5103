"""Plans say what a job costs against what is left of the day's quota."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

PLAN = re.compile(
    r"quota: the (run|apply) needs ([\d,]+) calls?; ([\d,]+) left today "
    r"\(resets 00:00 UTC, in (?:\d+ h )?\d+ min\)"  # "in 57 min" in the last hour of a UTC day
)


def test_a_dry_run_shows_the_calls_the_run_needs_and_what_is_left(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(7))
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "1000"]
    expect(invoke([*args, "groups", "list"]), 0)

    result = expect(
        invoke([*args, "sims", "add", PILOT_GROUP, str(file), "--dry-run", "--batch-size", "3"]),
        0,
    )

    found = PLAN.search(result.stderr)
    assert found, result.stderr
    assert found.group(2) == "10"  # the group check, then 3 batches: a send and two polls each
    assert found.group(3) == "499"  # 1,000 less the reserve of 500, less the groups list
    assert sandbox.state.mutation_log() == []


def test_a_run_that_needs_more_than_is_left_says_so_before_it_starts(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(6))
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "5", "--quota-reserve", "0"]
    result = expect(invoke([*args, "sims", "add", PILOT_GROUP, str(file), "--batch-size", "2"]), 5)
    found = PLAN.search(result.stderr)
    assert found and found.groups()[1:] == ("10", "5"), result.stderr
    assert "the run then stops (exit 5), and `lf-bulk runs resume` continues it" in result.stderr
    assert result.stderr.index("quota: the run") < result.stderr.index("Error:")


def test_reconcile_shows_the_apply_plan_with_the_reserve(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    new = sandbox.state.ungrouped_sims(2)
    desired = write_list(tmp_path / "d.csv", [*sandbox.state.members(PILOT_GROUP), *new])
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "1000"]
    result = expect(
        invoke([*args, "reconcile", str(desired), "--group", PILOT_GROUP, "--apply"]), 0
    )
    found = PLAN.search(result.stderr)
    assert found and found.group(1) == "apply", result.stderr
    assert found.group(2) == "4"  # one send, two polls, one read of the members after
    assert int(found.group(3).replace(",", "")) > 500  # reconcile may spend the reserve
