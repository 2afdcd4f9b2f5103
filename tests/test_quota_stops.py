"""Running out of the day's quota is a clean stop: exit 5, nothing lost, nothing sent twice."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from lf_bulk import errors, quota
from lf_bulk.client import LinksfieldClient
from lf_bulk.engine import RunDriver
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import FINISHED, NOT_FINISHED, PLANNED, SUBMITTED, Journal
from lf_bulk.models import OutcomeCode
from lf_bulk.pacing import RequestPacer
from lf_bulk.quota import QuotaLedger
from lf_bulk.sandbox.app import create_app
from lf_bulk.sandbox.faults import FaultSpec
from lf_bulk.sandbox.seed import PARTNER, PILOT_GROUP, TRACKER_GROUP
from lf_bulk.sandbox.server import SandboxServer

from clihelp import base_args, expect, invoke, read_items, write_list
from inprocess import (
    WORLD_FAULTS,
    InProcessTransport,
    World,
    accepted_counts,
    open_world,
    taken_then_sent_again,
)

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    opened = open_world(tmp_path)
    yield opened
    opened.close()


def ledger_for(world: World, path: Path, daily_quota: int) -> QuotaLedger:
    """A ledger on the world's fake clock, counting the world client's requests."""
    ledger = QuotaLedger(
        path,
        "test\nP1",
        daily_quota=daily_quota,
        reserve=0,
        clock=lambda: datetime.fromtimestamp(world.clock(), UTC),
    )
    world.client.quota = ledger.gate()
    return ledger


def test_a_run_out_of_quota_stops_cleanly_and_resumes_after_the_reset_sending_nothing_twice(
    world: World, tmp_path: Path
) -> None:
    iccids = world.state.ungrouped_sims(20)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=5)
    with ledger_for(world, tmp_path / "quota.db", daily_quota=3) as ledger:
        with pytest.raises(errors.QuotaExhausted) as raised:
            world.driver(run_id).drive()

        stop = raised.value
        assert stop.source == "ledger" and (stop.used, stop.limit) == (3, 3)
        assert f"lf-bulk runs resume {run_id}" in str(stop)
        assert "3 of 3 requests used today" in str(stop)
        run = world.journal.run(run_id)
        assert (run.status, run.exit_code) == (NOT_FINISHED, ExitCode.NOT_FINISHED)
        assert "quota" in run.details["stop_reason"]
        sent = sum(accepted_counts(world.state).values())
        assert sent == 15  # three batches went out before the quota ran out, the fourth did not
        # The refused batch is known unsent (planned again), never "answer lost" to be settled.
        states = sorted(b.state for b in world.journal.batches(run_id))
        assert states == [PLANNED, SUBMITTED, SUBMITTED, SUBMITTED]
        assert ledger.used_today() == 3

        days = 1
        while True:  # a day at a time: three requests a day
            world.clock.sleep(24 * 3600)
            days += 1
            try:
                result = world.driver(run_id).drive()
                break
            except errors.QuotaExhausted:
                assert days < 10

    assert result.exit_code == ExitCode.OK
    assert days >= 3  # one send and four polls (at least) were left after the first day
    assert world.journal.run(run_id).status == FINISHED
    assert {i.outcome for i in world.journal.items(run_id)} == {OutcomeCode.ADDED}
    assert set(accepted_counts(world.state).values()) == {1}
    assert taken_then_sent_again(world.state) == {}


def test_a_poll_refused_by_the_quota_keeps_the_batch_for_the_resume(
    world: World, tmp_path: Path
) -> None:
    iccids = world.state.ungrouped_sims(5)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=5)
    with ledger_for(world, tmp_path / "quota.db", daily_quota=1):
        with pytest.raises(errors.QuotaExhausted):
            world.driver(run_id).drive()
        assert [i.outcome for i in world.journal.items(run_id)] == [None] * 5
        world.clock.sleep(24 * 3600)
        assert world.driver(run_id).drive().exit_code == ExitCode.OK  # one poll was enough
    assert set(accepted_counts(world.state).values()) == {1}


def daily_quota_server(answers: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(request)
        return httpx.Response(
            429,
            headers={"Retry-After": "3600"},
            json={"code": "1429", "message": "daily quota", "data": {"quota": "DAILY"}},
        )

    return httpx.MockTransport(handler)


def test_the_servers_daily_answer_stops_every_later_client_without_a_request(
    tmp_path: Path,
) -> None:
    requests: list[httpx.Request] = []
    ledger = QuotaLedger(tmp_path / "quota.db", "test\nP1")

    def client(**gate: bool) -> LinksfieldClient:
        return LinksfieldClient(
            "https://api.test/topup",
            PARTNER,
            transport=daily_quota_server(requests),
            pacer=RequestPacer(1000, 3, sleep=lambda s: None),
            sleep=lambda s: None,
            quota=ledger.gate(**gate),
        )

    with ledger, client() as first, client() as second:
        with pytest.raises(errors.QuotaExhausted) as raised:
            first.list_groups()
        assert raised.value.source == "server"
        assert len(requests) == 1  # never retried
        with pytest.raises(errors.QuotaExhausted) as again:
            second.list_groups()
        assert again.value.source == "server"
        assert len(requests) == 1  # the ledger knew: nothing was sent
        spent_until = ledger.server_spent_until()
        assert spent_until is not None
        assert 3590 < (spent_until - datetime.now(UTC)).total_seconds() <= 3600
        with client(retry_server=True) as resuming, pytest.raises(errors.QuotaExhausted):
            resuming.list_groups()
        assert len(requests) == 2  # `runs resume` asks the server once more


# ---------------------------------------------------------------- from the command line


def test_sims_add_out_of_quota_exits_5_and_runs_resume_finishes_it(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    iccids = sandbox.state.ungrouped_sims(12)
    file = write_list(tmp_path / "s.csv", iccids)
    args = base_args(home, sandbox.base_url)
    tight = [*args, "--daily-quota", "3", "--quota-reserve", "0"]

    stopped = expect(
        invoke([*tight, "sims", "add", PILOT_GROUP, str(file), "--batch-size", "3"]), 5
    )

    report_dir = Path(stopped.stdout.strip().splitlines()[-1])
    assert "daily request quota is spent" in stopped.stderr
    assert "3 of 3 requests used today by our ledger" in stopped.stderr
    assert "resets at 00:00 UTC" in stopped.stderr
    assert "lf-bulk runs resume" in stopped.stderr
    outcomes = {row["iccid"]: row["outcome"] for row in read_items(report_dir)}
    assert sorted(outcomes) == sorted(iccids)
    assert "pending" in outcomes.values()
    listed = json.loads(expect(invoke([*args, "runs", "list", "--format", "json"]), 0).stdout)
    assert listed[0]["status"] == NOT_FINISHED
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["exit_code"] == ExitCode.NOT_FINISHED

    still = expect(invoke([*tight, "runs", "resume"]), 5)  # the same day: it stops again
    assert "quota" in still.stderr
    resumed = expect(invoke([*args, "--daily-quota", "1000", "runs", "resume"]), 0)
    assert Path(resumed.stdout.strip()) == report_dir
    assert {row["outcome"] for row in read_items(report_dir)} == {"added"}
    counts: dict[str, int] = {}
    for record in sandbox.state.mutation_log():
        if record.request_id:
            for iccid in record.iccids:
                counts[iccid] = counts.get(iccid, 0) + 1
    assert counts == dict.fromkeys(iccids, 1)
    with QuotaLedger(
        home / "quota.db", f"{sandbox.base_url}\n{PARTNER}", daily_quota=1000, reserve=500
    ) as ledger:
        assert ledger.used_today() >= 3 + 3  # both runs counted in the one ledger


def test_a_job_is_refused_before_a_run_exists_when_nothing_is_left_today(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    file = write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(3))
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "600"]
    expect(invoke([*args, "groups", "list"]), 0)  # 1 of the 100 left outside the reserve
    with QuotaLedger(
        home / "quota.db", f"{sandbox.base_url}\n{PARTNER}", daily_quota=600, reserve=500
    ) as ledger:
        for _ in range(99):
            ledger.gate().take()
    refused = expect(invoke([*args, "sims", "add", PILOT_GROUP, str(file)]), 5)
    assert "nothing was sent" in refused.stderr
    assert "500 more are kept for reconcile" in refused.stderr
    assert sandbox.state.mutation_log() == []
    if (home / "journal.db").exists():
        with Journal(home / "journal.db") as journal:
            assert journal.runs() == []


def test_an_order_export_that_cannot_finish_today_is_not_started(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    target = tmp_path / "o.xlsx"
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "510"]
    members = len(sandbox.state.members(TRACKER_GROUP))
    assert members > 10

    refused = expect(
        invoke([*args, "orders", "export", "--group", TRACKER_GROUP, "-o", str(target)]), 5
    )

    assert f"the order export needs {members:,} calls" in refused.stderr
    assert "left today (resets 00:00 UTC" in refused.stderr
    assert "Nothing was sent" in refused.stderr
    assert not target.exists()
    with QuotaLedger(
        home / "quota.db", f"{sandbox.base_url}\n{PARTNER}", daily_quota=510, reserve=500
    ) as ledger:
        assert ledger.used_today() == 1  # the member page, no order look-up


# ---------------------------------------------------------------- the reserve is reconcile's


def desired_file(path: Path, sandbox: SandboxServer, extra: list[str]) -> Path:
    return write_list(path, [*sandbox.state.members(PILOT_GROUP), *extra])


def spend(home: Path, sandbox: SandboxServer, count: int, daily_quota: int) -> None:
    with QuotaLedger(
        home / "quota.db", f"{sandbox.base_url}\n{PARTNER}", daily_quota=daily_quota, reserve=500
    ) as ledger:
        for _ in range(count):
            ledger.gate(spend_reserve=True).take()


def test_only_reconcile_spends_the_reserve(sandbox: SandboxServer, tmp_path: Path) -> None:
    home = tmp_path / "h"
    new = sandbox.state.ungrouped_sims(3)
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "600"]
    spend(home, sandbox, 100, daily_quota=600)  # all but the reserve

    add = write_list(tmp_path / "add.csv", new)
    expect(invoke([*args, "sims", "add", PILOT_GROUP, str(add)]), 5)
    assert sandbox.state.mutation_log() == []

    desired = desired_file(tmp_path / "desired.csv", sandbox, new)
    fixed = invoke([*args, "reconcile", str(desired), "--group", PILOT_GROUP, "--apply"])
    expect(fixed, 0)
    assert set(new) <= set(sandbox.state.members(PILOT_GROUP))


def test_a_reconcile_apply_out_of_quota_reports_the_drift_and_resumes(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    new = sandbox.state.ungrouped_sims(3)
    args = [*base_args(home, sandbox.base_url), "--daily-quota", "600"]
    spend(home, sandbox, 597, daily_quota=600)  # 3 left: groups, members, one send
    desired = desired_file(tmp_path / "desired.csv", sandbox, new)
    report_dir = tmp_path / "r"

    stopped = invoke([
        *args, "reconcile", str(desired), "--group", PILOT_GROUP, "--apply",
        "--report-dir", str(report_dir),
    ])  # fmt: skip

    expect(stopped, 5)
    assert str(report_dir) in stopped.stdout
    assert "quota is spent" in stopped.stderr and "lf-bulk runs resume" in stopped.stderr
    drift = json.loads((report_dir / "summary.json").read_text())
    assert drift["exit_code"] == ExitCode.NOT_FINISHED
    assert "missing" in (report_dir / "drift.csv").read_text()
    expect(invoke([*base_args(home, sandbox.base_url), "runs", "resume"]), 0)
    assert set(new) <= set(sandbox.state.members(PILOT_GROUP))


def test_the_embedded_sandbox_counts_in_the_ledger_under_its_own_code(tmp_path: Path) -> None:
    home = tmp_path / "h"
    expect(invoke(["--home", str(home), "groups", "list"]), 0)
    expect(invoke(["--home", str(home), "groups", "list"]), 0)
    doctor = expect(invoke(["--home", str(home), "doctor"]), 0)
    assert "quota today  2 of 5,000 requests used today (500 kept for reconcile)" in doctor.stdout
    for service in ("topup", "vshop", "payment"):
        assert re.search(rf"^{service} URL +http://127\.0\.0\.1:\d+$", doctor.stdout, re.M)
    with QuotaLedger(home / "quota.db", f"sandbox\n{PARTNER}") as ledger:
        assert ledger.used_today() == 3  # doctor's own look-up counted too


class DailyQuotaTransport(httpx.BaseTransport):
    """The sandbox app behind a server-side daily quota: past `allowed` requests, 429 DAILY."""

    def __init__(self, inner: httpx.BaseTransport, allowed: int) -> None:
        self.inner = inner
        self.allowed = allowed
        self.seen = 0
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen += 1
        if self.seen > self.allowed:
            self.refused += 1
            return httpx.Response(
                429,
                headers={"Retry-After": "3600"},
                json={"code": "1429", "message": "daily quota", "data": {"quota": "DAILY"}},
            )
        return self.inner.handle_request(request)


def test_the_servers_daily_answer_stops_a_run_that_resume_finishes_once_the_server_allows(
    world: World, tmp_path: Path
) -> None:
    server = DailyQuotaTransport(
        InProcessTransport(create_app(world.state, FaultSpec.parse(WORLD_FAULTS))), allowed=2
    )
    ledger = QuotaLedger(
        tmp_path / "quota.db",
        "test\nP1",
        clock=lambda: datetime.fromtimestamp(world.clock(), UTC),
    )
    client = LinksfieldClient(
        "http://sandbox.test",
        PARTNER,
        transport=server,
        pacer=RequestPacer(100_000, 4, clock=world.clock, sleep=world.clock.sleep),
        sleep=world.clock.sleep,
        clock=world.clock,
        quota=ledger.gate(),
    )
    iccids = world.state.ungrouped_sims(20)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=5)

    def driver() -> RunDriver:
        return RunDriver(world.journal, client, run_id, clock=world.clock, sleep=world.clock.sleep)

    with ledger, client:
        with pytest.raises(errors.QuotaExhausted) as raised:
            driver().drive()
        assert raised.value.source == "server"
        # Whichever thread saw it first: the client's error or the ledger's, both with our count.
        assert re.search(r"\d requests counted here today", str(raised.value))
        assert f"lf-bulk runs resume {run_id}" in str(raised.value)
        refused_before = server.refused
        assert refused_before >= 1
        with pytest.raises(errors.QuotaExhausted):
            driver().drive()  # the ledger knows the server's word: nothing is sent
        assert server.refused == refused_before and server.seen == 2 + refused_before

        server.allowed = 10_000  # the server's day reset before our clock's midnight
        quota.retry_server(client)  # what `runs resume` does
        assert driver().drive().exit_code == ExitCode.OK

    assert set(accepted_counts(world.state).values()) == {1}
    assert len(accepted_counts(world.state)) == 20
    assert taken_then_sent_again(world.state) == {}


class CountingTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return self.inner.handle_request(request)


def test_no_day_sends_the_server_more_than_the_quota_whatever_the_faults(
    world: World, tmp_path: Path
) -> None:
    spec = FaultSpec.parse(f"{WORLD_FAULTS},429=0.15,5xx=0.1,seed=7")
    server = CountingTransport(InProcessTransport(create_app(world.state, spec)))
    ledger = QuotaLedger(
        tmp_path / "quota.db",
        "test\nP1",
        daily_quota=25,
        reserve=0,
        clock=lambda: datetime.fromtimestamp(world.clock(), UTC),
    )
    client = LinksfieldClient(
        "http://sandbox.test",
        PARTNER,
        transport=server,
        pacer=RequestPacer(100_000, 4, clock=world.clock, sleep=world.clock.sleep),
        sleep=world.clock.sleep,
        clock=world.clock,
        quota=ledger.gate(),
    )
    iccids = world.state.ungrouped_sims(40)
    run_id = world.new_run(iccids, PILOT_GROUP, batch_size=2)
    per_day: list[int] = []
    with ledger, client:
        for _ in range(20):
            before = server.requests
            try:
                result = RunDriver(
                    world.journal, client, run_id, clock=world.clock, sleep=world.clock.sleep
                ).drive()
            except errors.QuotaExhausted:
                per_day.append(server.requests - before)
                world.clock.sleep(24 * 3600)
                continue
            per_day.append(server.requests - before)
            break
    assert result.exit_code == ExitCode.OK, per_day
    assert len(per_day) >= 3 and max(per_day) <= 25, per_day
    assert per_day[:-1] == [25] * (len(per_day) - 1)  # every stopped day used all it had
    assert set(accepted_counts(world.state).values()) == {1}
    assert taken_then_sent_again(world.state) == {}
