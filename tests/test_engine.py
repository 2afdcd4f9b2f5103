"""The engine against a sandbox, with journal states set up as a crash would leave them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from storehelp import journal_at

from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import EngineOptions, RunDriver
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import SUBMITTED, Journal, PlannedItem
from lf_bulk.models import Operation
from lf_bulk.pacing import RequestPacer
from lf_bulk.sandbox.seed import PARTNER, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer

from conftest import MakeSandbox

FAST = "rate=400,concurrency=8"


# Every test here runs on both stores (SQLite files, PostgreSQL).
# The PostgreSQL half runs in `make chaos`; the default suite drives runs on PostgreSQL through
# tests/test_engine_lost_answers.py, test_store_postgres.py and the workers' tests.
pytestmark = [
    # The engine's waits scaled to the test sandbox (conftest.quick_engine): what is sent and
    # settled is the point here, not how long the engine waits.
    pytest.mark.usefixtures("each_store", "quick_engine"),
    pytest.mark.parametrize(
        "each_store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
    ),
]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with journal_at(tmp_path / "journal.db") as opened:
        yield opened


def client_for(server: SandboxServer) -> LinksfieldClient:
    return LinksfieldClient(server.base_url, PARTNER, pacer=RequestPacer(200, 4))


def new_run(journal: Journal, iccids: list[str], batch_size: int = 5) -> str:
    items = [PlannedItem(n + 2, i, Operation.ADD, PILOT_GROUP) for n, i in enumerate(iccids)]
    return journal.create_run(
        kind="sims", operation="ADD", group_id=PILOT_GROUP, items=items, batch_size=batch_size
    )


def sends_of(server: SandboxServer, iccid: str) -> int:
    return sum(1 for m in server.state.mutation_log() if iccid in m.iccids and m.request_id)


def test_a_lost_send_is_checked_against_membership_before_anything_is_resent(
    make_sandbox: MakeSandbox, journal: Journal
) -> None:
    server = make_sandbox(FAST)
    iccids = server.state.ungrouped_sims(10)
    run_id = new_run(journal, iccids)
    first, _second = journal.batches(run_id)
    lost = list(journal.batch_attempts(run_id, first.batch_id))
    journal.mark_sending(run_id, first.batch_id)
    with client_for(server) as client:
        client.add_sims(PILOT_GROUP, lost)  # the server took it; the answer "was lost"
        time.sleep(0.5)
        result = RunDriver(journal, client, run_id).drive()

    assert result.exit_code == ExitCode.OK
    outcomes = {i.iccid: (i.outcome, i.reason_code) for i in journal.items(run_id)}
    assert all(outcomes[i] == ("added", "LOST") for i in lost)
    assert all(outcomes[i][0] == "added" for i in iccids if i not in lost)
    assert all(sends_of(server, i) == 1 for i in iccids)
    assert set(iccids) <= set(server.state.members(PILOT_GROUP))


def test_a_submitted_batch_is_only_polled(make_sandbox: MakeSandbox, journal: Journal) -> None:
    server = make_sandbox(FAST)
    iccids = server.state.ungrouped_sims(5)
    run_id = new_run(journal, iccids)
    (batch,) = journal.batches(run_id)
    journal.mark_sending(run_id, batch.batch_id)
    with client_for(server) as client:
        request_id = client.add_sims(PILOT_GROUP, iccids).request_id
        journal.mark_submitted(run_id, batch.batch_id, request_id, submitted_at=0, first_poll=0)
        assert [b.state for b in journal.batches(run_id)] == [SUBMITTED]
        result = RunDriver(journal, client, run_id).drive()

    assert result.exit_code == ExitCode.OK
    assert {(i.outcome, i.request_id) for i in journal.items(run_id)} == {("added", request_id)}
    assert all(sends_of(server, i) == 1 for i in iccids)


def test_sim_locked_is_retried_within_the_run(make_sandbox: MakeSandbox, journal: Journal) -> None:
    server = make_sandbox(f"{FAST},sim_locked=0.3,seed=4")
    iccids = server.state.ungrouped_sims(40)
    run_id = new_run(journal, iccids, batch_size=20)
    options = EngineOptions(retry_delay=0.1, max_attempts=12)
    with client_for(server) as client:
        result = RunDriver(journal, client, run_id, options=options).drive()

    assert result.exit_code == ExitCode.OK
    items = journal.items(run_id)
    assert {i.outcome for i in items} == {"added"}
    assert max(i.attempts for i in items) > 1
    assert set(iccids) <= set(server.state.members(PILOT_GROUP))


def test_a_timeout_leaves_a_run_that_finishes_later(
    make_sandbox: MakeSandbox, journal: Journal
) -> None:
    server = make_sandbox(f"{FAST},async=2s")
    iccids = server.state.ungrouped_sims(12)
    run_id = new_run(journal, iccids)
    with client_for(server) as client:
        stopped = RunDriver(journal, client, run_id, options=EngineOptions(timeout=0.5)).drive()
        assert stopped.exit_code == ExitCode.NOT_FINISHED and stopped.stopped == "timeout"
        assert stopped.counts == {"pending": 12}
        finished = RunDriver(journal, client, run_id).drive()

    assert finished.exit_code == ExitCode.OK and finished.counts == {"added": 12}
    assert all(sends_of(server, i) == 1 for i in iccids)


def test_failures_that_retrying_cannot_fix_are_reported(
    sandbox: SandboxServer, journal: Journal
) -> None:
    from lf_bulk.sandbox.seed import FLEET_GROUP, unseeded_iccid

    elsewhere = sandbox.state.members(FLEET_GROUP)[:2]
    unknown = [unseeded_iccid(1)]
    fine = sandbox.state.ungrouped_sims(2)
    run_id = new_run(journal, elsewhere + unknown + fine)
    with client_for(sandbox) as client:
        result = RunDriver(journal, client, run_id).drive()

    assert result.exit_code == ExitCode.SOME_FAILED
    reasons = {i.iccid: (i.outcome, i.reason_code) for i in journal.items(run_id)}
    assert [reasons[i] for i in elsewhere] == [("failed", "IN_OTHER_GROUP")] * 2
    assert reasons[unknown[0]] == ("failed", "SIM_NOT_FOUND")
    assert [reasons[i][0] for i in fine] == ["added", "added"]


def test_runs_retry_resends_only_retryable_failures(
    make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    from clihelp import base_args, expect, invoke, read_items

    server = make_sandbox(f"{FAST},sim_locked=0.2,seed=8")
    iccids = server.state.ungrouped_sims(30)
    home = tmp_path / "home"
    with journal_at(home / "journal.db") as journal:
        items = [PlannedItem(n + 2, i, Operation.ADD, PILOT_GROUP) for n, i in enumerate(iccids)]
        run_id = journal.create_run(
            kind="sims", operation="ADD", group_id=PILOT_GROUP, items=items, batch_size=30,
            report_dir=str(tmp_path / "r"),
        )  # fmt: skip
        with client_for(server) as client:
            first = RunDriver(
                journal, client, run_id, options=EngineOptions(max_attempts=1)
            ).drive()
    assert first.exit_code == ExitCode.SOME_FAILED
    locked = {
        i.iccid for i in journal_at(home / "journal.db").items(run_id) if i.outcome == "failed"
    }
    assert locked
    before = {i: sends_of(server, i) for i in iccids}

    expect(invoke([*base_args(home, server.base_url), "runs", "retry", run_id]), 0)

    assert {i["outcome"] for i in read_items(tmp_path / "r")} == {"added"}
    for iccid in iccids:
        assert (
            sends_of(server, iccid) > before[iccid]
            if iccid in locked
            else sends_of(server, iccid) == 1
        )
