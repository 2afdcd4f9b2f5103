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
