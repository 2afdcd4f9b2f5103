"""Runs from the command line: checks before anything exists, stops, interrupted, retry, cancel."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from lf_bulk.journal import CANCELLED, FAILED, FINISHED, Journal, PlannedItem
from lf_bulk.locking import exclusive
from lf_bulk.models import Operation
from lf_bulk.sandbox.seed import FLEET_GROUP, FOREIGN_GROUP, PILOT_GROUP, unseeded_iccid
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, read_items, read_summary, write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def journaled_runs(home: Path) -> list[str]:
    if not (home / "journal.db").exists():
        return []
    with Journal(home / "journal.db") as journal:
        return [r.run_id for r in journal.runs()]


def make_run(home: Path, iccids: list[str], group: str, report_dir: Path, size: int = 5) -> str:
    with Journal(home / "journal.db") as journal:
        items = [PlannedItem(n + 2, i, Operation.ADD, group) for n, i in enumerate(iccids)]
        return journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=group,
            items=items,
            batch_size=size,
            report_dir=str(report_dir),
        )


def test_an_unknown_group_is_refused_before_a_run_exists(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(3))
    args = base_args(home, sandbox.base_url)

    result = expect(invoke([*args, "sims", "add", "G9999999", str(file)]), 2)

    assert "G9999999 does not exist" in result.stderr
    assert "runs resume" not in result.stderr
    assert journaled_runs(home) == []
    assert sandbox.state.mutation_log() == []
    resumed = expect(invoke([*args, "runs", "resume"]), 0)
    assert "nothing to resume" in resumed.stderr and "Error" not in resumed.stderr


def test_an_unwritable_report_dir_is_refused_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(3))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    args = base_args(home, sandbox.base_url)

    result = expect(
        invoke([*args, "sims", "add", PILOT_GROUP, str(file), "--report-dir", str(blocker / "r")]),
        2,
    )

    assert str(blocker / "r") in result.stderr
    assert journaled_runs(home) == []
    assert sandbox.state.mutation_log() == []


def test_resume_with_an_unwritable_report_dir_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run_id = make_run(home, sandbox.state.ungrouped_sims(3), PILOT_GROUP, blocker / "r")
    args = base_args(home, sandbox.base_url)

    for command in (["runs", "resume", run_id], ["runs", "wait", run_id]):
        result = expect(invoke([*args, *command]), 2)
        assert str(blocker / "r") in result.stderr
    assert sandbox.state.mutation_log() == []


def test_skip_invalid_with_no_valid_row_is_not_a_success(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", ["12345", "8912"])
    args = base_args(home, sandbox.base_url)
    report = tmp_path / "r"

    result = expect(
        invoke(
            [
                *args,
                "sims",
                "remove",
                PILOT_GROUP,
                str(file),
                "--skip-invalid",
                "--report-dir",
                str(report),
            ]
        ),
        2,
    )

    assert "no valid ICCID" in result.stderr
    assert {i["outcome"] for i in read_items(report)} == {"invalid"}
    assert journaled_runs(home) == []
    assert sandbox.state.mutation_log() == []


def test_a_run_whose_process_is_gone_is_listed_as_interrupted(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    run_id = make_run(home, sandbox.state.ungrouped_sims(3), PILOT_GROUP, tmp_path / "r")
    args = base_args(home, sandbox.base_url)

    listed = json.loads(expect(invoke([*args, "runs", "list", "--format", "json"]), 0).stdout)
    shown = json.loads(expect(invoke([*args, "runs", "show", run_id]), 0).stdout)
    assert [r["status"] for r in listed] == ["interrupted"]
    assert shown["status"] == "interrupted"
    assert shown["next"] == f"lf-bulk runs resume {run_id}"

    with exclusive(home, f"run-{run_id}", "a test holding the run"):
        listed = json.loads(expect(invoke([*args, "runs", "list", "--format", "json"]), 0).stdout)
        assert [r["status"] for r in listed] == ["running"]
        retried = expect(invoke([*args, "runs", "retry", run_id]), 1)
        assert "being driven by another lf-bulk process" in retried.stderr
        assert "resume" not in retried.stderr


def test_a_run_stopped_for_good_is_failed_and_skipped_by_resume(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    run_id = make_run(home, sandbox.state.ungrouped_sims(3), FOREIGN_GROUP, tmp_path / "r")
    args = base_args(home, sandbox.base_url)

    stopped = expect(invoke([*args, "runs", "resume", run_id]), 1)

    assert "cannot fix" in stopped.stderr and "runs resume" not in stopped.stderr
    assert read_summary(tmp_path / "r")["outcomes"]["pending"] == 3
    with Journal(home / "journal.db") as journal:
        assert journal.run(run_id).status == FAILED
    expect(invoke([*args, "runs", "resume"]), 0)
    again = expect(invoke([*args, "runs", "resume", run_id]), 2)
    assert f"run {run_id} is failed" in again.stderr
    assert [m.request_id for m in sandbox.state.mutation_log()] == [""]


def test_retry_with_nothing_retryable_sends_nothing_and_does_not_suggest_itself(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    elsewhere = sandbox.state.members(FLEET_GROUP)[:2]
    run_id = make_run(home, [*elsewhere, unseeded_iccid(1)], PILOT_GROUP, tmp_path / "r")
    args = base_args(home, sandbox.base_url)
    first = expect(invoke([*args, "runs", "resume", run_id]), 3)
    assert "runs retry" not in first.stderr
    sent = len(sandbox.state.mutation_log())

    retried = expect(invoke([*args, "runs", "retry", run_id]), 3)

    assert "nothing to retry" in retried.stderr and "runs retry" not in retried.stderr
    assert len(sandbox.state.mutation_log()) == sent


def test_cancel_sends_nothing_more_and_writes_the_reports(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    iccids = sandbox.state.ungrouped_sims(10)
    run_id = make_run(home, iccids, PILOT_GROUP, tmp_path / "r")
    with Journal(home / "journal.db") as journal:
        journal.mark_sending(run_id, 1)  # one batch was on its way when the run was abandoned
    args = base_args(home, sandbox.base_url)

    cancelled = expect(invoke([*args, "runs", "cancel", run_id]), 0)

    assert cancelled.stdout.strip() == str(tmp_path / "r")
    items = {i["iccid"]: (i["outcome"], i["reason_code"]) for i in read_items(tmp_path / "r")}
    assert Counter(items.values()) == {("failed", "CANCELLED"): 5, ("pending", "CANCELLED"): 5}
    with Journal(home / "journal.db") as journal:
        assert journal.run(run_id).status == CANCELLED
    assert "nothing to resume" in expect(invoke([*args, "runs", "resume"]), 0).stderr
    expect(invoke([*args, "runs", "resume", run_id]), 2)
    expect(invoke([*args, "runs", "retry", run_id]), 2)
    expect(invoke([*args, "runs", "cancel", run_id]), 2)
    assert sandbox.state.mutation_log() == []


def test_finished_runs_are_listed_as_finished(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = tmp_path / "h"
    run_id = make_run(home, sandbox.state.ungrouped_sims(3), PILOT_GROUP, tmp_path / "r")
    args = base_args(home, sandbox.base_url)
    expect(invoke([*args, "runs", "resume", run_id]), 0)
    shown = json.loads(expect(invoke([*args, "runs", "show", run_id]), 0).stdout)
    assert (shown["status"], shown["next"]) == (FINISHED, "")


def test_a_dry_run_on_an_unknown_group_is_a_usage_error(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(3))
    args = base_args(tmp_path / "h", sandbox.base_url)
    result = expect(invoke([*args, "sims", "add", "G9999999", str(file), "--dry-run"]), 2)
    assert "G9999999 does not exist" in result.stderr
