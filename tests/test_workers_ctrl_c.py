"""Ctrl-C between the moment a run is recorded and the moment its engine takes over (opening the
store's pacer, ledger and cache takes a while on PostgreSQL): a stop like the engine's, exit 5
with the way on, not `Aborted!` over a run left `running`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lf_bulk import runs
from lf_bulk.journal import NOT_FINISHED, Journal
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, read_items, write_list


def test_ctrl_c_before_the_engine_takes_over_stops_with_exit_5_and_the_way_on(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wanted = sandbox.state.ungrouped_sims(4)
    file = write_list(tmp_path / "s.csv", wanted)
    home, report = tmp_path / "home", tmp_path / "r"
    args = base_args(home, sandbox.base_url)

    def ctrl_c(run_id: str) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(runs, "announce_run", ctrl_c)
        stopped = expect(
            invoke([*args, "sims", "add", PILOT_GROUP, str(file), "--report-dir", str(report)]), 5
        )

    assert "interrupted" in stopped.stderr and "runs wait" in stopped.stderr
    assert stopped.stdout.strip() == str(report)
    assert sandbox.state.mutation_log() == []
    with Journal(home / "journal.db") as journal:
        (run,) = journal.runs()
    assert run.status == NOT_FINISHED
    expect(invoke([*args, "runs", "resume", run.run_id]), 0)
    assert Counter(i["outcome"] for i in read_items(report)) == {"added": 4}
