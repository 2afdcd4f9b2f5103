"""A run that stops for good, from Python and from the command line: its reports are written and
their folder travels with the error (`report_dir`), printed on stdout by the one error mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from lf_bulk import errors, runs
from lf_bulk.journal import Journal, PlannedItem
from lf_bulk.models import Operation
from lf_bulk.sandbox.seed import FOREIGN_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings, open_session

from clihelp import base_args, expect, invoke


def foreign_run(home: Path, iccids: list[str], report_dir: Path) -> str:
    """A run to a group of another partner: the server refuses it, so it stops for good."""
    with Journal(home / runs.JOURNAL_NAME) as journal:
        items = [PlannedItem(n + 2, i, Operation.ADD, FOREIGN_GROUP) for n, i in enumerate(iccids)]
        return journal.create_run(
            kind="sims",
            operation="ADD",
            group_id=FOREIGN_GROUP,
            items=items,
            batch_size=5,
            report_dir=str(report_dir),
        )


def test_a_stopped_run_raises_with_the_folder_of_its_reports(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    run_id = foreign_run(home, sandbox.state.ungrouped_sims(2), tmp_path / "r")
    settings = Settings(
        env="uat", base_url=sandbox.base_url, partner_code=SANDBOX_PARTNER_CODE, home=home
    )
    with (
        open_session(settings) as session,
        runs.open_journal(home) as journal,
        pytest.raises(errors.RunStopped) as stopped,
    ):
        runs.drive(journal, session.client, run_id, settings)
    assert stopped.value.permanent
    assert stopped.value.report_dir == (tmp_path / "r").absolute()
    assert (tmp_path / "r" / "summary.json").is_file()


def test_the_command_prints_a_stopped_runs_report_folder_on_stdout(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    run_id = foreign_run(home, sandbox.state.ungrouped_sims(2), tmp_path / "r")
    stopped = expect(invoke([*base_args(home, sandbox.base_url), "runs", "wait", run_id]), 1)
    assert stopped.stdout.strip() == str((tmp_path / "r").absolute())
    assert stopped.stderr.startswith(f"run {run_id}\n")
    assert "Error:" in stopped.stderr
