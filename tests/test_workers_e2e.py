"""Three `lf-bulk worker` processes, one served sandbox, one PostgreSQL store (issue #16).

Real parts: the session's throwaway PostgreSQL cluster (the store: journal, quota ledger, pacer,
locks, and Procrastinate's jobs), worker subprocesses, the sandbox on 127.0.0.1 with the
contract's limits (`rate=10,concurrency=3`).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from workershelp import (
    ThrottleCount,
    start_worker,
    stop,
    wait_until,
)

from lf_bulk import runs
from lf_bulk.journal import Journal
from lf_bulk.sandbox.seed import PILOT_GROUP
from lf_bulk.settings import SANDBOX_PARTNER_CODE

from clihelp import expect, invoke, write_list
from conftest import MakeSandbox
from inprocess import accepted_counts, taken_then_sent_again

CONTRACT_LIMITS = "rate=10,concurrency=3"
PARTNER = "acme"


class Fleet:
    """One store, one home, one report folder, the partner set up: enqueue jobs, run workers."""

    def __init__(self, store: str, tmp_path: Path, base_url: str, *partner: str) -> None:
        self.store = store
        self.home = tmp_path / "home"
        self.reports = tmp_path / "reports"
        self.logs = tmp_path
        self.env = {
            **os.environ,
            "LF_BULK_STORE": store,
            f"LF_BULK_PARTNER_CODE_{PARTNER.upper()}": SANDBOX_PARTNER_CODE,
            "PYTHONUNBUFFERED": "1",
        }
        self.base = ["--home", str(self.home), "--no-progress"]
        self.workers: list[subprocess.Popen[bytes]] = []
        expect(invoke([*self.base, "partners", "add", PARTNER, "--env", "uat",
                       "--base-url", base_url, *partner]), 0)  # fmt: skip

    def enqueue(self, file: Path, *args: str) -> int:
        done = expect(invoke([*self.base, "enqueue", "--partner", PARTNER, "sims", "add",
                              PILOT_GROUP, str(file), *args]), 0)  # fmt: skip
        return int(done.stdout.strip())

    def journal(self) -> Journal:
        return runs.open_journal(self.home, self.store)

    def start(self, count: int) -> None:
        for _number in range(count):
            log = self.logs / f"worker-{len(self.workers)}.log"
            self.workers.append(start_worker(self.base, self.reports, self.env, log))

    def jobs(self) -> dict[int, tuple[str, int]]:
        with psycopg.connect(self.store) as db:
            rows = db.execute("SELECT id, status::text, attempts FROM procrastinate_jobs")
            return {job: (status, attempts) for job, status, attempts in rows}

    def all_done(self) -> bool:
        return all(status == "succeeded" for status, _ in self.jobs().values())

    def job_intervals(self) -> list[tuple[int, object, object]]:
        """(job, started, ended) of every attempt, from Procrastinate's own event log."""
        with psycopg.connect(self.store) as db:
            rows = db.execute(
                "SELECT job_id, type::text, at FROM procrastinate_events ORDER BY at, id"
            ).fetchall()
        started: dict[int, object] = {}
        intervals = []
        for job, kind, at in rows:
            if kind == "started":
                started[job] = at
            elif kind in ("succeeded", "failed", "retried") and job in started:
                intervals.append((job, started.pop(job), at))
        return intervals

    def logs_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))

    def stop_all(self) -> None:
        for process in self.workers:
            stop(process)


@pytest.fixture
def store(pg_url: str) -> str:
    return pg_url


@pytest.fixture
def fleet_of(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Fleet]]:
    made: list[Fleet] = []
    monkeypatch.setenv("LF_BULK_STORE", store)
    yield made
    for fleet in made:
        fleet.stop_all()


def check_nothing_doubled(fleet: Fleet, server_state: object) -> None:
    """Each run created once, each batch sent once, nothing the server took sent again; no two
    attempts of jobs of the one partner overlapped in time (the lock held across workers)."""
    with fleet.journal() as journal:
        for run in journal.runs():
            batches = [b for b in journal.batches(run.run_id) if b.request_id]
            assert all(b.sends == 1 for b in batches), run.run_id
    assert taken_then_sent_again(server_state) == {}  # type: ignore[arg-type]
    intervals = sorted(fleet.job_intervals(), key=lambda i: i[1])  # type: ignore[arg-type,return-value]
    for (job_a, _, end_a), (job_b, start_b, _) in itertools.pairwise(intervals):
        assert start_b >= end_a, f"jobs {job_a} and {job_b} of one partner ran at once"  # type: ignore[operator]


def three_workers_trial(
    make_sandbox: MakeSandbox, tmp_path: Path, fleets: list[Fleet],
    monkeypatch: pytest.MonkeyPatch, *, jobs: int, sims: int,
) -> None:  # fmt: skip
    throttled = ThrottleCount().install(monkeypatch)
    # A quota far above the trial's needs: the sandbox then counts every request it served.
    server = make_sandbox(f"{CONTRACT_LIMITS},daily_quota=1000000", sims=3_000)
    fleet = Fleet(os.environ["LF_BULK_STORE"], tmp_path, server.base_url)
    fleets.append(fleet)
    wanted = server.state.ungrouped_sims(jobs * sims)
    lists = [wanted[i * sims : (i + 1) * sims] for i in range(jobs)]
    fleet.start(3)  # they start up while the jobs are enqueued
    for number, iccids in enumerate(lists):
        fleet.enqueue(write_list(tmp_path / f"list-{number}.csv", iccids), "--batch-size", "10")
    wait_until(fleet.all_done, 120, f"the jobs to succeed\n{fleet.logs_text()}")
    fleet.stop_all()

    assert throttled.count == 0, fleet.logs_text()
    intervals = fleet.job_intervals()
    span = max(end for _, _, end in intervals) - min(start for _, start, _ in intervals)  # type: ignore[operator]
    requests = server.state.quota_used()
    print(f"\n{jobs} jobs, {requests} requests in {span.total_seconds():.1f} s: "  # type: ignore[attr-defined]
          f"{requests / span.total_seconds():.2f} requests/s, {throttled.count} 429s")  # type: ignore[attr-defined]  # fmt: skip
    assert set(wanted) <= set(server.state.members(PILOT_GROUP))
    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))
    check_nothing_doubled(fleet, server.state)
    with fleet.journal() as journal:
        assert len(journal.runs()) == jobs  # one run per job, none created twice


def test_three_workers_one_partner_no_429_no_run_twice(
    make_sandbox: MakeSandbox, tmp_path: Path, fleet_of: list[Fleet],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    three_workers_trial(make_sandbox, tmp_path, fleet_of, monkeypatch, jobs=3, sims=20)


@pytest.mark.slow
def test_three_workers_many_jobs(
    make_sandbox: MakeSandbox, tmp_path: Path, fleet_of: list[Fleet],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    three_workers_trial(make_sandbox, tmp_path, fleet_of, monkeypatch, jobs=12, sims=150)


def test_daily_quota_stops_exactly_and_the_job_waits_for_tomorrow(
    make_sandbox: MakeSandbox, tmp_path: Path, fleet_of: list[Fleet],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    quota = 6
    refused = ThrottleCount().install(monkeypatch, "_quota_spent")
    server = make_sandbox(f"{CONTRACT_LIMITS},daily_quota={quota}", sims=3_000)
    # The partner's quota as the server's: the shared ledger stops the run before the server has
    # to refuse anything.
    limits = ("--quota", str(quota), "--reserve", "0")
    fleet = Fleet(os.environ["LF_BULK_STORE"], tmp_path, server.base_url, *limits)
    fleet_of.append(fleet)
    wanted = server.state.ungrouped_sims(100)
    fleet.start(1)
    job = fleet.enqueue(write_list(tmp_path / "list.csv", wanted), "--batch-size", "10")

    def deferred() -> bool:
        status, attempts = fleet.jobs()[job]
        return status == "todo" and attempts == 1

    wait_until(deferred, 60, f"the job to be deferred\n{fleet.logs_text()}")
    fleet.stop_all()
    assert server.state.quota_used() == quota
    assert refused.count == 0  # exactly `quota` requests arrived: none was refused for quota
    with fleet.journal() as journal:
        (run,) = journal.runs()
    assert run.status == "not_finished"
    with psycopg.connect(fleet.store) as db:
        (scheduled,) = db.execute(
            "SELECT scheduled_at FROM procrastinate_jobs WHERE id = %s", (job,)
        ).fetchone()  # type: ignore[misc]
    assert scheduled is not None
    assert (scheduled.hour, scheduled.minute) == (0, 1)  # the next 00:00 UTC, plus a minute


def kill_trial(
    make_sandbox: MakeSandbox, tmp_path: Path, fleets: list[Fleet], *, kills: int, sims: int,
    seed: int = 0,
) -> None:  # fmt: skip
    """Kill -9 the worker driving the job `kills` times, each at a later batch; a worker started
    while it worked takes over each time and resumes the run."""
    rng = random.Random(seed)
    server = make_sandbox(CONTRACT_LIMITS, sims=3_000)
    fleet = Fleet(os.environ["LF_BULK_STORE"], tmp_path, server.base_url)
    fleets.append(fleet)
    wanted = server.state.ungrouped_sims(sims)
    before = set(server.state.members(PILOT_GROUP))
    fleet.start(1)
    job = fleet.enqueue(write_list(tmp_path / "list.csv", wanted), "--batch-size", "10")
    batches = -(-sims // 10)
    for kill in range(kills):
        # Taken by the only worker alive (after `kill` kills, its attempt number `kill`).
        wait_until(lambda: fleet.jobs()[job] == ("doing", kill), 60, "a worker to take the job")  # noqa: B023
        driver = fleet.workers[-1]
        fleet.start(1)  # the one to take over, started while the other works
        at = len(server.state.mutation_log()) + rng.randint(1, max(1, batches // (kills + 1)))
        wait_until(lambda: len(server.state.mutation_log()) >= at, 60, f"batch {at}")  # noqa: B023
        driver.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        driver.wait()
    wait_until(fleet.all_done, 120, f"another worker to finish the job\n{fleet.logs_text()}")
    fleet.stop_all()

    assert fleet.jobs()[job] == ("succeeded", kills + 1)  # killed, then finished
    restarted = max(start for _, start, _ in fleet.job_intervals())
    print(f"\nresumed {(restarted - killed_at).total_seconds():.2f} s after the last kill")  # type: ignore[operator]
    assert fleet.logs_text().count("resuming run") == kills
    assert set(server.state.members(PILOT_GROUP)) == before | set(wanted)
    # The server's own log: nothing it took was sent to it again, kill or no kill.
    assert taken_then_sent_again(server.state) == {}
    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))
    with fleet.journal() as journal:
        assert len(journal.runs()) == 1  # resumed, never started again


@pytest.mark.slow  # a long multi-worker trial: `make chaos`
def test_kill_nine_of_a_worker_another_resumes_the_run(
    make_sandbox: MakeSandbox, tmp_path: Path, fleet_of: list[Fleet]
) -> None:
    kill_trial(make_sandbox, tmp_path, fleet_of, kills=1, sims=100)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_kill_nine_again_and_again(
    make_sandbox: MakeSandbox, tmp_path: Path, fleet_of: list[Fleet], seed: int
) -> None:
    kill_trial(make_sandbox, tmp_path, fleet_of, kills=3, sims=400, seed=seed)
