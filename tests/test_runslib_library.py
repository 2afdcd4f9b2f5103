"""`lf_bulk.runs` from plain Python, as a scheduler or a notebook uses it: no Click anywhere."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from lf_bulk import engine, errors, runs
from lf_bulk.engine import EngineOptions, Progress
from lf_bulk.exitcodes import ExitCode
from lf_bulk.models import Operation
from lf_bulk.reconcile import GROUP_COLUMN_ALIASES, ReconcileOptions
from lf_bulk.sandbox.seed import FLEET_GROUP, PILOT_GROUP
from lf_bulk.sandbox.server import SandboxServer
from lf_bulk.settings import SANDBOX_PARTNER_CODE, Settings, open_session
from lf_bulk.sources import read_iccids

from clihelp import write_list

# The engine's waits scaled to the test sandbox (conftest.quick_engine): these tests are about
# what a job does, not about how long it waits.
pytestmark = pytest.mark.usefixtures("quick_engine")


def settings_for(server: SandboxServer, home: Path) -> Settings:
    return Settings(
        env="uat",
        base_url=server.base_url,
        partner_code=SANDBOX_PARTNER_CODE,
        home=home,
        rate_per_second=200,
        max_in_flight=4,
    )


def test_the_library_needs_neither_the_cli_nor_click_nor_tqdm() -> None:
    # httpx itself may import click (its own CLI): what matters is that lf_bulk never does.
    code = "import sys, lf_bulk.runs; sys.exit(any(m.split('.')[0] in ('jobs', 'tqdm') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    library = Path(runs.__file__).parent
    for source in library.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not {n.split(".")[0] for n in names} & {"click", "tqdm", "jobs"}, source


def test_add_sims_from_python_reports_progress_and_changes_the_group(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    iccids = sandbox.state.ungrouped_sims(3)
    table = read_iccids(write_list(tmp_path / "s.csv", iccids))
    seen: list[str] = []
    finished: list[int] = []

    @contextmanager
    def watch(total: int) -> Iterator[Progress]:
        seen.append(f"total {total}")
        yield Progress(finished=finished.append)

    with open_session(settings) as session, runs.open_journal(settings.home) as journal:
        result = runs.start(
            journal,
            session.client,
            settings,
            table,
            Operation.ADD,
            PILOT_GROUP,
            report_dir=tmp_path / "r",
            progress=watch,
            say=seen.append,
        )
    assert result.exit_code == ExitCode.OK and result.driven
    assert result.counts.get("added") == 3
    assert result.report_dir == (tmp_path / "r").absolute()
    assert (result.report_dir / "items.csv").is_file()
    assert set(iccids) <= set(sandbox.state.members(PILOT_GROUP))
    assert "total 3" in seen and f"run {result.run_id}" in seen and sum(finished) == 3


def test_invalid_rows_raise_with_their_report_and_send_nothing(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    table = read_iccids(write_list(tmp_path / "s.csv", [*sandbox.state.ungrouped_sims(1), "12"]))
    with pytest.raises(errors.InvalidRowsError) as raised:
        runs.start(
            lambda: pytest.fail("no journal for a refused input"),
            lambda: pytest.fail("no client for a refused input"),
            settings,
            table,
            Operation.ADD,
            PILOT_GROUP,
            report_dir=tmp_path / "r",
        )
    assert raised.value.report_dir == (tmp_path / "r").absolute()
    assert "--skip-invalid" in str(raised.value)
    assert (tmp_path / "r" / "items.csv").is_file()
    assert sandbox.state.mutation_log() == []
    assert not (settings.home / runs.JOURNAL_NAME).exists()


def test_a_run_submitted_without_waiting_is_resumed_from_python(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    iccids = sandbox.state.ungrouped_sims(4)
    table = read_iccids(write_list(tmp_path / "s.csv", iccids))
    with open_session(settings) as session, runs.open_journal(settings.home) as journal:
        submitted = runs.start(
            journal,
            session.client,
            settings,
            table,
            Operation.ADD,
            FLEET_GROUP,
            EngineOptions(wait=False),
            report_dir=tmp_path / "r",
        )
        assert submitted.exit_code == ExitCode.NOT_FINISHED
        assert submitted.stopped == "no-wait"
        resumed = runs.resume(journal, session.client, settings)
        assert resumed is not None and resumed.run_id == submitted.run_id
        assert resumed.exit_code == ExitCode.OK
        said: list[str] = []
        assert runs.resume(journal, session.client, settings, say=said.append) is None
        assert said and said[0].startswith("nothing to resume")
        with pytest.raises(errors.RunRefused, match="nothing to cancel"):
            runs.cancel(journal, settings, submitted.run_id)
    assert set(iccids) <= set(sandbox.state.members(FLEET_GROUP))


def test_a_run_is_continued_only_against_the_endpoint_it_started_with(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    table = read_iccids(write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(2)))
    with open_session(settings) as session, runs.open_journal(settings.home) as journal:
        submitted = runs.start(
            journal,
            session.client,
            settings,
            table,
            Operation.ADD,
            PILOT_GROUP,
            EngineOptions(wait=False),
            report_dir=tmp_path / "r",
        )
        elsewhere = replace(settings, base_url="http://127.0.0.1:1/")
        sent = len(sandbox.state.mutation_log())
        with pytest.raises(errors.RunRefused, match="continue it with --env uat --base-url"):
            runs.drive(journal, session.client, submitted.run_id, elsewhere)
        assert len(sandbox.state.mutation_log()) == sent


def test_reconcile_from_a_scheduler_applies_and_converges(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    missing = sandbox.state.ungrouped_sims(3)
    desired = [*sandbox.state.members(PILOT_GROUP), *missing]
    path = tmp_path / "desired.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["iccid", "group_id"])
        writer.writerows([i, PILOT_GROUP] for i in desired)
    table = read_iccids(path, extra_columns={"group": list(GROUP_COLUMN_ALIASES)})
    with open_session(settings) as session:
        result = runs.reconcile(
            session.client,
            settings,
            table,
            ReconcileOptions(apply=True),
            report_dir=tmp_path / "r",
        )
    assert result.exit_code == ExitCode.OK
    assert result.planned == 3 and result.after is not None and not result.after.drift
    assert result.drive is not None and result.drive.exit_code == ExitCode.OK
    assert set(missing) <= set(sandbox.state.members(PILOT_GROUP))
    assert (tmp_path / "r" / "summary.json").is_file()


def test_run_stopped_lives_in_the_error_tree_and_keeps_its_old_name() -> None:
    assert engine.RunStopped is errors.RunStopped
    assert issubclass(errors.RunStopped, errors.LfBulkError)
    assert "RunStopped" in (errors.__doc__ or "")


def test_cancel_and_retry_from_python_refuse_what_the_run_state_forbids(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "h")
    table = read_iccids(write_list(tmp_path / "s.csv", sandbox.state.ungrouped_sims(2)))
    with open_session(settings) as session, runs.open_journal(settings.home) as journal:
        submitted = runs.start(
            journal,
            session.client,
            settings,
            table,
            Operation.ADD,
            PILOT_GROUP,
            EngineOptions(wait=False),
            report_dir=tmp_path / "r",
        )
        with pytest.raises(errors.RunRefused, match="not finished; `lf-bulk runs resume"):
            runs.retry(journal, session.client, settings, submitted.run_id)
        cancelled = runs.cancel(journal, settings, submitted.run_id)
        assert not cancelled.driven and cancelled.exit_code == ExitCode.SOME_FAILED
        assert cancelled.report_dir == submitted.report_dir
        assert (cancelled.report_dir / "summary.json").is_file()
        with pytest.raises(errors.RunRefused, match="cannot be continued") as refused:
            runs.drive(journal, session.client, submitted.run_id, settings)
        assert isinstance(refused.value, errors.InputError)  # exit 2: nothing was sent
