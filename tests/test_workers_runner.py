"""What a worker does with one job, in-process (no worker process): the run it starts, the run
it resumes instead of starting another, reconcile jobs, the day's quota (issue #16)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lf_bulk import runs
from lf_bulk.errors import QuotaExhausted
from lf_bulk.sandbox.seed import EMPTY_GROUP, PILOT_GROUP, STAFF_GROUP
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings
from lf_bulk.sources import InputTable, read_iccids
from lf_bulk.workers import partners
from lf_bulk.workers.app import JobRunner, connect
from lf_bulk.workers.spec import JobCommand, JobSpec

from clihelp import write_list
from conftest import MakeSandbox
from inprocess import accepted_counts

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


@pytest.fixture
def runner(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobRunner:
    monkeypatch.setenv("LF_BULK_PARTNER_CODE_ACME", SANDBOX_PARTNER_CODE)
    settings = Settings(home=tmp_path / "home", store_url=pg_url, rate_per_second=200)
    return JobRunner(settings, pg_url, tmp_path / "reports", say=lambda line: None)


def add_partner(runner: JobRunner, base_url: str, **limits: int) -> None:
    with connect(runner.store_url) as db:
        partners.save(db, partners.Partner("acme", "uat", base_url, **limits))


def test_a_job_starts_its_run_under_the_id_chosen_when_it_was_enqueued(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    add_partner(runner, server.base_url)
    wanted = server.state.ungrouped_sims(30)
    table = read_iccids(write_list(tmp_path / "l.csv", wanted))
    spec = JobSpec.of(JobCommand.ADD, "acme", "job-run-1", table,
                      {"group": PILOT_GROUP, "batch_size": 10, "skip_invalid": False})  # fmt: skip

    assert runner.run(spec) == {"run_id": "job-run-1", "exit_code": 0}
    # Tried again (its worker died after the end): the finished run is found, nothing is sent.
    assert runner.run(spec) == {"run_id": "job-run-1", "exit_code": 0}

    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))
    with runs.open_journal(runner.settings.home, runner.store_url) as journal:
        assert [run.run_id for run in journal.runs()] == ["job-run-1"]
    assert (tmp_path / "reports" / "job-run-1" / "items.csv").exists()


def test_a_job_stopped_by_the_quota_resumes_its_run_the_next_day(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8,daily_quota=4")
    add_partner(runner, server.base_url)
    wanted = server.state.ungrouped_sims(60)
    table = read_iccids(write_list(tmp_path / "l.csv", wanted))
    spec = JobSpec.of(JobCommand.ADD, "acme", "job-run-2", table,
                      {"group": PILOT_GROUP, "batch_size": 10, "skip_invalid": False})  # fmt: skip

    with pytest.raises(QuotaExhausted):
        runner.run(spec)
    assert server.state.quota_used() == 4

    server.state.new_day()
    for _ in range(20):  # each day's four requests carry the run on; it is never restarted
        try:
            assert runner.run(spec)["exit_code"] == 0
            break
        except QuotaExhausted:
            server.state.new_day()
    else:
        raise AssertionError("the run never finished")
    assert accepted_counts(server.state) == Counter(dict.fromkeys(wanted, 1))
    with runs.open_journal(runner.settings.home, runner.store_url) as journal:
        assert [run.run_id for run in journal.runs()] == ["job-run-2"]


def test_a_reconcile_job_reports_drift_and_applies_only_when_asked(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    add_partner(runner, server.base_url)
    wanted = server.state.ungrouped_sims(12)
    desired = tmp_path / "desired.csv"
    desired.write_text("iccid,group\n" + "".join(f"{i},{EMPTY_GROUP}\n" for i in wanted))
    table = runs.read_desired(desired)
    options = {"group": None, "sheet_named": False, "skip_invalid": False, "apply": False,
               "all_groups": False, "max_changes": 1000, "max_removal_ratio": 0.1}  # fmt: skip

    report = runner.run(JobSpec.of(JobCommand.RECONCILE, "acme", "rc-1", table, options))
    assert report == {"run_id": "rc-1", "exit_code": 4}
    assert server.state.members(EMPTY_GROUP) == []

    applied = JobSpec.of(JobCommand.RECONCILE, "acme", "rc-2", table, {**options, "apply": True})
    assert runner.run(applied) == {"run_id": "rc-2", "exit_code": 0}
    assert sorted(server.state.members(EMPTY_GROUP)) == sorted(wanted)


def test_a_status_job_writes_the_fleet_workbook_of_a_group_read_when_it_runs(
    runner: JobRunner, make_sandbox: MakeSandbox
) -> None:
    server = make_sandbox("rate=400,concurrency=8")
    add_partner(runner, server.base_url)
    members = server.state.members(STAFF_GROUP)
    options = {"groups": [STAFF_GROUP], "all_groups": False, "from_file": False,
               "skip_invalid": False, "expiring_within": 7, "max_age": 0.0}  # fmt: skip
    empty = InputTable("", None, "", [])

    done = runner.run(JobSpec.of(JobCommand.STATUS, "acme", "st-1", empty, options))

    assert done["run_id"] == "st-1" and done["exit_code"] in (0, 4)
    report = runner.report_root / "st-1"
    assert (report / "fleet.xlsx").exists()
    with (report / "items.csv").open() as handle:
        assert len(handle.readlines()) == len(members) + 1


def test_a_second_attempt_of_a_job_still_running_waits_even_before_its_run_exists(
    runner: JobRunner, make_sandbox: MakeSandbox, tmp_path: Path
) -> None:
    from lf_bulk.errors import RunLocked
    from lf_bulk.store import opened_store

    server = make_sandbox("rate=400,concurrency=8")
    add_partner(runner, server.base_url)
    table = read_iccids(write_list(tmp_path / "l.csv", server.state.ungrouped_sims(5)))
    spec = JobSpec.of(JobCommand.ADD, "acme", "job-run-3", table,
                      {"group": PILOT_GROUP, "batch_size": 10, "skip_invalid": False})  # fmt: skip
    # The first attempt, on a worker passed for dead, holds its job (from another process).
    with (
        opened_store(runner.store_url, runner.settings.home) as other,
        other.lock("job-job-run-3", "the first attempt"),
        pytest.raises(RunLocked),
    ):
        runner.run(spec)
    assert server.state.mutation_log() == []
    with runs.open_journal(runner.settings.home, runner.store_url) as journal:
        assert journal.runs() == []
