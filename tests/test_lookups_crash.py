"""kill -9 during a look-up run (`sims status`), then `runs resume`: the workbook is complete and
no call is made twice for a SIM, beyond the calls that were in flight when the process died."""

from __future__ import annotations

import csv
import random
import signal
import time
from pathlib import Path

import pytest

from tests.clihelp import base_args, invoke, subprocess_cli, wait_for_run
from tests.conftest import MakeSandbox
from tests.storehelp import journal_at

# Every test here runs on both stores (the journal, the answer cache and the locks in SQLite
# files, or in PostgreSQL); the PostgreSQL half of the kill trials runs in `make chaos`.
pytestmark = pytest.mark.usefixtures("each_store")
LONG_ON_POSTGRESQL = pytest.mark.parametrize(
    "each_store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
)

IN_FLIGHT = 4  # --max-in-flight of tests.clihelp.FAST_CLIENT


def answered_calls(home: Path, run_id: str) -> int:
    with journal_at(home / "journal.db") as journal:
        calls = journal.calls(run_id)
    return sum(1 for cs in calls.values() for c in cs if c.state != "sending")


def kill_trial(make_sandbox: MakeSandbox, tmp_path: Path, trial: int, sims: int = 40) -> None:
    rng = random.Random(trial)
    server = make_sandbox("latency=20ms,rate=60,concurrency=8", sims=400)
    wanted = server.state.iccids_with(limit=sims)
    assert len(wanted) == sims
    source = tmp_path / "sims.csv"
    source.write_text("iccid\n" + "\n".join(wanted) + "\n")
    home, fleet = tmp_path / "home", tmp_path / "fleet.csv"
    args = base_args(home, server.base_url)
    job = subprocess_cli(
        [
            *args,
            "sims",
            "status",
            str(source),
            "-o",
            str(fleet),
            "--report-dir",
            str(tmp_path / "r"),
        ]
    )
    run_id = wait_for_run(home)
    goal = rng.randint(5, 3 * sims // 2)  # kill after some answers, at a random point
    deadline = time.time() + 30
    while answered_calls(home, run_id) < goal and time.time() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    with journal_at(home / "journal.db") as journal:
        assert journal.run(run_id).status != "finished", "the kill came after the end"

    resumed = invoke([*args, "runs", "resume", run_id])
    assert resumed.exit_code in (0, 4), resumed.stderr  # 4: some SIMs are flagged

    with fleet.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["iccid"] for r in rows] == wanted  # every SIM once, in input order
    # Calls the server answered (a call it throttled, and the client sent again, did nothing).
    counts = server.state.vshop_call_counts(acted_only=True)
    ours = {key: n for key, n in counts.items() if key[1] in set(wanted)}
    twice = {key: n for key, n in ours.items() if n > 1}
    # Only a call in flight when the process died may have been asked again.
    assert len(twice) <= IN_FLIGHT and all(n == 2 for n in twice.values()), twice
    again = invoke([*args, "runs", "resume", run_id])  # a finished run: its reports, no call
    assert again.exit_code == resumed.exit_code, again.stderr
    assert server.state.vshop_call_counts(acted_only=True) == counts


@LONG_ON_POSTGRESQL
def test_a_killed_status_run_resumes_to_a_complete_workbook_asking_nothing_twice(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    kill_trial(make_sandbox, tmp_path, trial=1)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2, 12))
def test_killed_status_runs_resume_asking_nothing_twice(
    make_sandbox: MakeSandbox, tmp_path: Path, trial: int
) -> None:
    kill_trial(make_sandbox, tmp_path, trial, sims=60)
