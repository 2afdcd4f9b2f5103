"""Kill -9 at random moments, Ctrl-C, and two processes on one run: nothing lost, nothing doubled."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from storehelp import journal_at

from lf_bulk.sandbox.seed import PILOT_GROUP

from clihelp import (
    FAST_SERVER,
    base_args,
    expect,
    invoke,
    read_items,
    subprocess_cli,
    wait_for_run,
    write_list,
)
from conftest import MakeSandbox
from inprocess import accepted_counts, taken_then_sent_again

# Every wanted SIM starts outside any group: each must end `added` (with reason LOST when the
# kill took its answer), never `already_member`.
FINAL = {"added"}

# Every test here runs on both stores (the journal and the locks in SQLite files, or in
# PostgreSQL); the kill -9 trials' PostgreSQL half runs in `make chaos`.
pytestmark = pytest.mark.usefixtures("each_store")
LONG_ON_POSTGRESQL = pytest.mark.parametrize(
    "each_store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
)


def newest_run(home: Path) -> str:
    with journal_at(home / "journal.db") as journal:
        runs = journal.runs()
    assert runs, "the job recorded no run"
    return runs[0].run_id


def crash_trial(
    make_sandbox: MakeSandbox, tmp_path: Path, seed: int, *, sims: tuple[int, int] = (600, 1_400)
) -> None:
    rng = random.Random(seed)
    server = make_sandbox(f"{FAST_SERVER},async=0.3-1s,rate=30", sims=3_000)
    wanted = server.state.ungrouped_sims(rng.randint(*sims))
    before = set(server.state.members(PILOT_GROUP))
    file = write_list(tmp_path / "s.csv", wanted)
    home = tmp_path / "home"
    report = tmp_path / "report"
    args = [*base_args(home, server.base_url), "--rate", "6", "sims", "add", PILOT_GROUP]
    job = subprocess_cli([*args, str(file), "--batch-size", "100", "--report-dir", str(report)])
    run_id = wait_for_run(home)
    time.sleep(rng.uniform(0.0, 4.0))
    job.send_signal(signal.SIGKILL)
    job.wait()

    resumed = expect(invoke([*base_args(home, server.base_url), "runs", "resume", run_id]), 0)

    assert resumed.stdout.strip() == str(report)
    items = read_items(report)
    assert [i["iccid"] for i in items] == wanted
    assert set(Counter(i["outcome"] for i in items)) <= FINAL
    assert set(server.state.members(PILOT_GROUP)) == before | set(wanted)
    with journal_at(home / "journal.db") as journal:
        batches = [b for b in journal.batches(run_id) if b.request_id]
    assert all(b.sends == 1 for b in batches)
    assert len({b.request_id for b in batches}) == len(batches)
    # The server's own log: nothing it took was sent to it again, kill or no kill.
    assert taken_then_sent_again(server.state) == {}
    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))


@LONG_ON_POSTGRESQL
# One in make test; the second and 50 more (test_kill_nine_chaos_scale) in make chaos.
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
# The resume (in this process) on quick_engine: its 3 s lost-send window is still three times
# the longest operation here; the chaos-scale trials keep the engine's real waits.
@pytest.mark.usefixtures("quick_engine")
def test_kill_nine_then_resume_loses_nothing(
    make_sandbox: MakeSandbox, tmp_path: Path, seed: int
) -> None:
    crash_trial(make_sandbox, tmp_path, seed, sims=(200, 500))


@pytest.mark.slow
@LONG_ON_POSTGRESQL
def test_kill_while_the_server_holds_the_answer_then_resume_sends_nothing_twice(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    # `hold`: the server has done the work and keeps the answer back, so the kill lands exactly
    # between "the server took the batch" and "the journal knows it".
    server = make_sandbox(f"{FAST_SERVER},async=0.3s,hold=5s")
    wanted = server.state.ungrouped_sims(30)
    file = write_list(tmp_path / "s.csv", wanted)
    home, report = tmp_path / "home", tmp_path / "report"
    args = base_args(home, server.base_url)
    job = subprocess_cli(
        [*args, "sims", "add", PILOT_GROUP, str(file), "--report-dir", str(report)]
    )
    run_id = wait_for_run(home)
    deadline = time.time() + 20
    while (
        not any(b.state == "sending" for b in journal_at(home / "journal.db").batches(run_id))
        and time.time() < deadline
    ):
        time.sleep(0.05)
    time.sleep(0.5)
    job.send_signal(signal.SIGKILL)
    job.wait()

    expect(invoke([*args, "runs", "resume", run_id]), 0)

    assert {(i["outcome"], i["reason_code"]) for i in read_items(report)} == {("added", "LOST")}
    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 150))
def test_kill_nine_chaos_scale(make_sandbox: MakeSandbox, tmp_path: Path, seed: int) -> None:
    crash_trial(make_sandbox, tmp_path, seed)


@pytest.fixture
def started_in_the_background() -> Iterator[None]:
    """This process ignores SIGINT, as a shell's background job does (`make chaos &`): its
    children start with SIGINT ignored, and Python keeps a signal ignored that it inherited."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@LONG_ON_POSTGRESQL
def test_ctrl_c_stops_cleanly_with_exit_5_and_says_how_to_resume(
    make_sandbox: MakeSandbox, tmp_path: Path, started_in_the_background: None
) -> None:
    # The job is started as from a terminal (clihelp.subprocess_cli) however the tests run:
    # in a background `make chaos` it ignored the Ctrl-C and drove the run to its end (exit 0).
    server = make_sandbox(f"{FAST_SERVER},async=4-6s")
    file = write_list(tmp_path / "s.csv", server.state.ungrouped_sims(800))
    home = tmp_path / "home"
    args = [*base_args(home, server.base_url), "sims", "add", PILOT_GROUP, str(file)]
    job = subprocess_cli([*args, "--report-dir", str(tmp_path / "r")])
    wait_for_run(home)  # Ctrl-C before the run exists is a plain abort: nothing was sent
    time.sleep(1.0)
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=60)

    assert job.returncode == 5, err
    assert "Traceback" not in err
    assert "runs wait" in err or "runs resume" in err
    assert out.strip() == str(tmp_path / "r")
    expect(invoke([*base_args(home, server.base_url), "runs", "resume"]), 0)
    assert Counter(i["outcome"] for i in read_items(tmp_path / "r")) == {"added": 800}


def test_two_processes_cannot_drive_one_run(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    server = make_sandbox(f"{FAST_SERVER},async=3-4s")
    file = write_list(tmp_path / "s.csv", server.state.ungrouped_sims(300))
    home = tmp_path / "home"
    args = [*base_args(home, server.base_url), "sims", "add", PILOT_GROUP, str(file)]
    job = subprocess_cli([*args, "--report-dir", str(tmp_path / "r")])
    try:
        run_id = wait_for_run(home)
        time.sleep(0.5)
        second = expect(invoke([*base_args(home, server.base_url), "runs", "wait", run_id]), 1)
        assert f"run {run_id} is being driven by another lf-bulk process" in second.stderr
        assert f"pid {job.pid}" in second.stderr
    finally:
        job.wait(timeout=60)
    assert job.returncode == 0
