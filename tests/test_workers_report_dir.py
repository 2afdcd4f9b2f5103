"""Where a worker writes its jobs' reports: `--report-dir`, or `report_dir` in the `[worker]`
table of a config file, so that every worker of a fleet writes to the one shared folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lf_bulk.workers import app as worker_app

from clihelp import expect, invoke


@pytest.fixture
def started(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> list[worker_app.JobRunner]:
    """The runners `lf-bulk worker` starts (their worker loop left out)."""
    monkeypatch.setenv("LF_BULK_STORE", pg_url)
    runners: list[worker_app.JobRunner] = []

    async def run_worker(runner: worker_app.JobRunner, **options: Any) -> None:
        runners.append(runner)

    monkeypatch.setattr(worker_app, "run_worker", run_worker)
    return runners


def test_the_workers_report_folder_comes_from_the_config_file(
    started: list[worker_app.JobRunner], tmp_path: Path
) -> None:
    shared = tmp_path / "mnt" / "lf-bulk-reports"
    config = tmp_path / "worker.toml"
    config.write_text(f'[worker]\nreport_dir = "{shared}"\n')

    done = expect(invoke(["--config", str(config), "--home", str(tmp_path), "worker"]), 0)

    assert [runner.report_root for runner in started] == [shared]
    assert f"reports under {shared}" in done.stderr


def test_the_flag_wins_over_the_config_file(
    started: list[worker_app.JobRunner], tmp_path: Path
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(f'[worker]\nreport_dir = "{tmp_path / "configured"}"\n')

    expect(invoke(["--config", str(config), "--home", str(tmp_path), "worker",
                   "--report-dir", str(tmp_path / "typed")]), 0)  # fmt: skip

    assert [runner.report_root for runner in started] == [tmp_path / "typed"]


# ---------------------------------------------------------------- a partner's own folder


def test_a_partner_with_its_own_report_folder_gets_its_jobs_reports_there(
    pg_url: str, make_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lf_bulk.sandbox.seed import PILOT_GROUP
    from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings
    from lf_bulk.sources import read_iccids
    from lf_bulk.workers import partners
    from lf_bulk.workers.spec import JobCommand, JobSpec

    from clihelp import write_list

    monkeypatch.setenv("LF_BULK_PARTNER_CODE_ACME", SANDBOX_PARTNER_CODE)
    server = make_sandbox("rate=400,concurrency=8")
    own = tmp_path / "acme-share"
    with worker_app.connect(pg_url) as db:
        partners.save(db, partners.Partner("acme", "uat", server.base_url, report_dir=str(own)))
    settings = Settings(home=tmp_path / "home", store_url=pg_url, rate_per_second=200)
    runner = worker_app.JobRunner(settings, pg_url, tmp_path / "fleet-share", say=lambda _: None)
    table = read_iccids(write_list(tmp_path / "l.csv", server.state.ungrouped_sims(3)))
    spec = JobSpec.of(JobCommand.ADD, "acme", "own-1", table,
                      {"group": PILOT_GROUP, "batch_size": 10, "skip_invalid": False})  # fmt: skip

    assert runner.run(spec)["exit_code"] == 0

    assert (own / "own-1" / "items.csv").exists()
    assert not (tmp_path / "fleet-share").exists()


def test_partners_add_takes_an_absolute_report_folder_only(pg_url: str, tmp_path: Path) -> None:
    base = ["--store", pg_url, "--home", str(tmp_path), "partners", "add", "acme", "--env", "uat",
            "--base-url", "http://127.0.0.1:9"]  # fmt: skip

    relative = expect(invoke([*base, "--report-dir", "reports/acme"]), 2)
    expect(invoke([*base, "--report-dir", str(tmp_path / "acme")]), 0)

    assert "absolute" in relative.stderr
    listed = expect(invoke(["--store", pg_url, "--home", str(tmp_path), "partners", "list"]), 0)
    assert f'"report_dir": "{tmp_path / "acme"}"' in listed.stdout


def test_a_partners_table_of_an_older_lf_bulk_gets_the_report_folder_column(pg_url: str) -> None:
    from lf_bulk.workers import partners

    with worker_app.connect(pg_url) as db:
        db.execute(partners.SCHEMA)  # the table as the lf-bulk before this column made it
        db.execute(
            "INSERT INTO partners (name, env, daily_quota, quota_reserve)"
            " VALUES ('old', 'uat', 100, 10)"
        )
        assert partners.get(db, "old").report_dir is None
        partners.save(db, partners.Partner("old", "uat", report_dir="/mnt/old"))
        assert partners.get(db, "old").report_dir == "/mnt/old"
