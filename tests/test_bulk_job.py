"""The bulk job end to end: the CLI against a sandbox over real sockets on 127.0.0.1."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lf_bulk.journal import Journal
from lf_bulk.sandbox.seed import DEMO_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import (
    FAST_SERVER,
    base_args,
    expect,
    invoke,
    read_items,
    read_summary,
    write_list,
    write_xlsx,
)
from conftest import MakeSandbox
from inprocess import taken_then_sent_again

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def add(home: Path, server: SandboxServer, group: str, file: Path, report: Path, *extra: str):
    args = [*base_args(home, server.base_url), "sims", "add", group, str(file)]
    return invoke([*args, "--report-dir", str(report), *extra])


@pytest.mark.parametrize(
    "count", [2_000, pytest.param(20_000, marks=pytest.mark.slow)], ids=lambda n: f"{n}-sims"
)
def test_large_xlsx_add_reports_every_row_once_and_membership_is_exact(
    make_sandbox: MakeSandbox, tmp_path: Path, count: int
) -> None:
    server = make_sandbox(FAST_SERVER, sims=count * 3 // 2)
    before = set(server.state.members(PILOT_GROUP))
    wanted = server.state.ungrouped_sims(count)
    assert len(wanted) == count
    sheet = write_xlsx(tmp_path / "sims.xlsx", wanted)

    result = expect(add(tmp_path / "home", server, PILOT_GROUP, sheet, tmp_path / "r"), 0)

    assert result.stdout.strip() == str(tmp_path / "r")
    items = read_items(tmp_path / "r")
    assert [int(i["row"]) for i in items] == list(range(2, count + 2))
    assert [i["iccid"] for i in items] == wanted
    assert Counter(i["outcome"] for i in items) == {"added": count}
    summary = read_summary(tmp_path / "r")
    assert sum(summary["outcomes"].values()) == summary["input_rows"] == count
    assert summary["batches"] == count // 500
    assert set(server.state.members(PILOT_GROUP)) == before | set(wanted)


@pytest.mark.parametrize(
    ("count", "faults"),
    [
        # Fewer SIMs, so fewer waits on retries. Each lost answer costs a settling wait: the seed
        # gives one among the first requests (the adds), which the last assertion checks.
        (400, "5xx=0.2,429=0.1,drop=0.2,async=0.1-0.3s,max_iccids=100,seed=3"),
        pytest.param(
            1_500,
            "5xx=0.2,429=0.1,drop=0.1,async=0.2-1.5s,sim_locked=0.02,max_iccids=100,seed=11",
            marks=pytest.mark.slow,
        ),
    ],
    ids=["400-sims", "1500-sims"],
)
def test_faults_still_give_an_exact_report_and_no_request_is_resubmitted(
    make_sandbox: MakeSandbox, tmp_path: Path, count: int, faults: str
) -> None:
    server = make_sandbox(f"{FAST_SERVER},{faults}")
    wanted = server.state.ungrouped_sims(count)
    file = write_list(tmp_path / "sims.csv", wanted)
    home = tmp_path / "home"

    result = add(home, server, PILOT_GROUP, file, tmp_path / "r")

    expect(result, 0)
    items = read_items(tmp_path / "r")
    assert len(items) == count
    assert {i["outcome"] for i in items} == {"added"}  # none was a member before
    assert taken_then_sent_again(server.state) == {}  # the server's own log
    members = set(server.state.members(PILOT_GROUP))
    assert set(wanted) <= members
    # Every request id the server handed out and the client received is polled, never re-sent.
    with Journal(home / "journal.db") as journal:
        (run,) = journal.runs()
        batches = [b for b in journal.batches(run.run_id) if b.request_id]
    assert all(b.sends == 1 for b in batches)
    request_ids = [b.request_id for b in batches]
    assert len(request_ids) == len(set(request_ids))
    log = server.state.mutation_log()
    answered = {m.request_id for m in log if m.request_id and not m.dropped}
    assert set(request_ids) <= answered
    assert any(m.dropped for m in log), "no answer was lost: the test proved nothing"


def test_invalid_rows_stop_the_job_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    good = sandbox.state.ungrouped_sims(3)
    sheet = Path(__file__).parent.parent / "samples" / "bad_rows.xlsx"
    assert sheet.exists()
    home = tmp_path / "home"

    result = expect(add(home, sandbox, PILOT_GROUP, sheet, tmp_path / "r"), 2)

    for reason in (
        "numeric_cell",
        "bad_length",
        "bad_checksum",
        "not_digits",
        "duplicate",
        "empty",
    ):
        assert reason in result.stderr, reason
    assert "row " in result.stderr and "--skip-invalid" in result.stderr
    assert sandbox.state.mutation_log() == []
    rejected = read_items(tmp_path / "r")
    assert rejected and all(i["outcome"] in ("invalid", "duplicate") for i in rejected)
    assert good  # the sandbox had SIMs to add; the job still sent nothing


def test_skip_invalid_runs_and_reports_bad_rows(sandbox: SandboxServer, tmp_path: Path) -> None:
    wanted = sandbox.state.ungrouped_sims(5)
    rows = [*wanted, "8944500000000000001", "89445000000000000", "89ab", wanted[0], "", wanted[1]]
    file = tmp_path / "mixed.csv"
    file.write_text("iccid\n" + "\n".join(rows) + "\n")

    expect(add(tmp_path / "h", sandbox, PILOT_GROUP, file, tmp_path / "r", "--skip-invalid"), 0)

    outcomes = {i["row"]: (i["outcome"], i["reason_code"]) for i in read_items(tmp_path / "r")}
    assert outcomes["7"] == ("invalid", "bad_checksum")
    assert outcomes["8"] == ("invalid", "bad_length")
    assert outcomes["9"] == ("invalid", "not_digits")
    assert outcomes["10"] == ("duplicate", "duplicate")
    assert outcomes["11"] == ("invalid", "empty")
    assert outcomes["12"] == ("duplicate", "duplicate")
    assert [outcomes[str(r)][0] for r in range(2, 7)] == ["added"] * 5


def test_the_same_add_twice_reports_already_member(sandbox: SandboxServer, tmp_path: Path) -> None:
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(120))
    expect(add(tmp_path / "h", sandbox, PILOT_GROUP, file, tmp_path / "r1"), 0)
    expect(add(tmp_path / "h", sandbox, PILOT_GROUP, file, tmp_path / "r2"), 0)
    assert Counter(i["outcome"] for i in read_items(tmp_path / "r2")) == {"already_member": 120}


def test_no_wait_then_runs_wait_gives_the_waited_report(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("async=200-400ms")  # long enough to be pending when --no-wait exits
    file = write_list(tmp_path / "s.csv", server.state.ungrouped_sims(1_200))
    home = tmp_path / "h"

    submitted = expect(add(home, server, PILOT_GROUP, file, tmp_path / "r", "--no-wait"), 5)
    assert "runs wait" in submitted.stderr
    pending = read_summary(tmp_path / "r")
    assert pending["outcomes"]["pending"] == 1_200 and pending["exit_code"] == 5
    run_id = pending["run_id"]

    waited = expect(invoke([*base_args(home, server.base_url), "runs", "wait", run_id]), 0)

    assert waited.stdout.strip() == str(tmp_path / "r")
    final = read_summary(tmp_path / "r")
    assert final["outcomes"]["added"] == 1_200 and final["exit_code"] == 0
    assert final["run_id"] == run_id and final["batches"] == 3


def test_batch_size_above_the_server_limit_is_split_without_loss(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    wanted = sandbox.state.ungrouped_sims(1_300)
    file = write_list(tmp_path / "s.csv", wanted)
    expect(
        add(tmp_path / "h", sandbox, PILOT_GROUP, file, tmp_path / "r", "--batch-size", "1000"), 0
    )
    assert Counter(i["outcome"] for i in read_items(tmp_path / "r")) == {"added": 1_300}
    accepted = [m for m in sandbox.state.mutation_log() if m.request_id]
    assert all(m.iccid_count <= 500 for m in accepted)
    assert sum(m.iccid_count for m in accepted) == 1_300


def test_quiet_prints_only_the_report_directory(sandbox: SandboxServer, tmp_path: Path) -> None:
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(10))
    args = ["-q", *base_args(tmp_path / "h", sandbox.base_url), "sims", "remove", DEMO_GROUP]
    result = expect(invoke([*args, str(file), "--report-dir", str(tmp_path / "r")]), 0)
    assert result.stdout == f"{tmp_path / 'r'}\n"
    assert Counter(i["outcome"] for i in read_items(tmp_path / "r")) == {"not_member": 10}


def test_remove_then_membership_lacks_them(sandbox: SandboxServer, tmp_path: Path) -> None:
    leaving = sandbox.state.members(DEMO_GROUP)[:50]
    file = write_list(tmp_path / "s.csv", leaving)
    args = [*base_args(tmp_path / "h", sandbox.base_url), "sims", "remove", DEMO_GROUP, str(file)]
    expect(invoke([*args, "--report-dir", str(tmp_path / "r")]), 0)
    assert not set(leaving) & set(sandbox.state.members(DEMO_GROUP))
    assert Counter(i["outcome"] for i in read_items(tmp_path / "r")) == {"removed": 50}


def test_dry_run_counts_goal_already_met_and_sends_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    members = sandbox.state.members(DEMO_GROUP)[:30]
    others = sandbox.state.ungrouped_sims(20)
    file = write_list(tmp_path / "s.csv", members + others)
    args = [*base_args(tmp_path / "h", sandbox.base_url), "sims", "add", DEMO_GROUP, str(file)]
    result = expect(invoke([*args, "--dry-run", "--report-dir", str(tmp_path / "r")]), 0)
    assert "30 already meet the goal, 20 would change" in result.stderr
    assert sandbox.state.mutation_log() == []
    assert read_summary(tmp_path / "r")["batches"] == 1


@pytest.mark.parametrize("command", [["runs", "show", "nope"], ["runs", "wait", "nope"]])
def test_unknown_run_is_a_clear_error(command: list[str], tmp_path: Path) -> None:
    result = expect(invoke(["--home", str(tmp_path), *command]), 1)
    assert "no run 'nope'" in result.stderr
