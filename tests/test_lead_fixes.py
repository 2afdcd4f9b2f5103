"""Regressions found while merging the safety and security work (issue 9 items 1 and 16, 10.5)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from jobs.render import table
from lf_bulk.journal import Journal
from lf_bulk.locking import exclusive
from lf_bulk.sandbox.seed import FLEET_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")

G1, G2 = PILOT_GROUP, FLEET_GROUP


def _desired(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "group_id"])
        writer.writerows(rows)
    return path


def test_reconcile_all_groups_locks_the_groups_its_moves_take_sims_from(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    # A move out of G2 must not race a reconcile of G2: with --all-groups every group is locked.
    moving = sandbox.state.members(G2)[:1]
    desired = _desired(tmp_path / "d.csv", [(i, G1) for i in moving])
    home = tmp_path / "h"
    args = [*base_args(home, sandbox.base_url), "reconcile", str(desired)]
    with exclusive(home, f"group-{G2}", f"reconcile of {G2}", holder="reconcile run other"):
        locked = invoke([*args, "--all-groups", "--report-dir", str(tmp_path / "a")])
        expect(locked, 1)
        assert "reconcile run other" in locked.stderr
        # Without --all-groups, G2 is not in scope and nothing is moved out of it.
        expect(invoke([*args, "--report-dir", str(tmp_path / "b")]), 4)
    assert sandbox.state.mutation_log() == []


def test_unknown_group_is_a_usage_error_everywhere(sandbox: SandboxServer, tmp_path: Path) -> None:
    args = base_args(tmp_path / "h", sandbox.base_url)
    result = expect(invoke([*args, "groups", "members", "G404"]), 2)
    assert "API error 1004" in result.stderr  # the code itself, not digits of a time or path
    assert sandbox.state.mutation_log() == []


def test_tables_for_the_terminal_never_carry_control_characters() -> None:
    shown = table([{"group_id": "G1\x1b[2J\x07", "status": "running"}], ["group_id", "status"])
    assert "\x1b" not in shown and "\x07" not in shown
    assert "G1" in shown and "running" in shown


def test_runs_list_shows_journal_text_harmless(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = tmp_path / "h"
    sims = tmp_path / "s.csv"
    sims.write_text("iccid\n" + "\n".join(sandbox.state.ungrouped_sims(2)) + "\n")
    args = base_args(home, sandbox.base_url)
    expect(invoke([*args, "sims", "add", G1, str(sims), "--report-dir", str(tmp_path / "r")]), 0)
    with Journal(home / "journal.db") as journal:
        (run,) = journal.runs()
        journal._db.execute(
            "UPDATE runs SET group_id = ? WHERE run_id = ?", ("G1\x1b]0;x\x07", run.run_id)
        )
        journal._db.commit()
    listed = expect(invoke([*args, "runs", "list"]), 0)
    assert "\x1b" not in listed.stdout and run.run_id in listed.stdout
