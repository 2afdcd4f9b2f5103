"""Second review: a resumed run's report folder is checked before anything is sent.

A run records its report folder when it starts; by the time it is resumed (days later, after a
crash) that folder may have become unusable. `runs resume` must find out before its first API
call, not after sending, and say so in one line (exit 2, nothing sent).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import InputCounts
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def unfinished_run(home: Path, sandbox: SandboxServer, report: Path) -> str:
    iccids = sandbox.state.ungrouped_sims(3)
    with Journal(home / "journal.db") as journal:
        run_id = journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=PILOT_GROUP,
            items=[PlannedItem(row, i, "ADD", PILOT_GROUP) for row, i in enumerate(iccids, 2)],
            batch_size=2,
            report_dir=str(report),
            counts=InputCounts(3, 3, 0, 0),
        )
        journal.set_run_status(run_id, "not_finished", 5)
    return run_id


def test_resume_checks_the_report_folder_before_sending(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    report = tmp_path / "reports" / "run"
    run_id = unfinished_run(home, sandbox, report)
    (tmp_path / "reports").write_text("a file now where the report folder's parent was\n")
    result = expect(invoke([*base_args(home, sandbox.base_url), "runs", "resume", run_id]), 2)
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and str(report) in lines[-1], result.stderr
    assert "Nothing was sent" in lines[-1]
    assert sandbox.state.mutation_log() == []


def test_reports_that_cannot_be_written_after_a_run_are_one_line_and_can_be_written_again(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    report = tmp_path / "reports"
    run_id = unfinished_run(home, sandbox, report)
    (report / "report.xlsx" / "in-the-way").mkdir(parents=True)  # passes the folder check
    args = [*base_args(home, sandbox.base_url), "runs"]
    result = expect(invoke([*args, "resume", run_id]), 1)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and str(report) in last, result.stderr
    assert f"lf-bulk runs wait {run_id}" in last
    assert "Traceback" not in result.stderr

    (report / "report.xlsx" / "in-the-way").rmdir()
    (report / "report.xlsx").rmdir()
    expect(invoke([*args, "wait", run_id]), 0)
    assert (report / "report.xlsx").is_file() and (report / "items.csv").is_file()
