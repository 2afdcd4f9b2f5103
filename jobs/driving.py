"""Driving a journaled run from a command: lock, progress bars, engine, reports, exit code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from jobs.context import AppContext
from jobs.errors import JobError, JobExit
from jobs.progress import progress_bar
from lf_bulk.bulk import run_lock_name, write_reports
from lf_bulk.engine import (
    RETRYABLE_FAILURES,
    DriveResult,
    EngineOptions,
    Progress,
    RunDriver,
    RunStopped,
)
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import NOT_RESUMABLE, Journal, RunRecord
from lf_bulk.locking import exclusive
from lf_bulk.reports import prepare_report_dir

JOURNAL_FILE = "journal.db"
log = logging.getLogger(__name__)


def open_journal(app: AppContext) -> Journal:
    journal = Journal(app.settings.home / JOURNAL_FILE)
    click.get_current_context().call_on_close(journal.close)
    return journal


def endpoint_of(app: AppContext) -> str:
    settings = app.settings
    return f"{settings.env} {settings.display_base_url or ''}".strip()


def check_same_endpoint(app: AppContext, run: RunRecord) -> None:
    if run.endpoint and run.endpoint != endpoint_of(app):
        env, _, url = run.endpoint.partition(" ")
        hint = f"--env {env}" + (f" --base-url {url}" if url else "")
        raise JobError(
            f"run {run.run_id} was started against {run.endpoint!r}; continue it with {hint}",
            ExitCode.BAD_INPUT,
        )


@contextmanager
def _bars(app: AppContext, total: int) -> Iterator[Progress]:
    with (
        progress_bar(app, desc="submitted", total=total, unit="sim", position=0) as sent,
        progress_bar(app, desc="finished ", total=total, unit="sim", position=1) as done,
    ):
        yield Progress(submitted=sent.update, finished=done.update)


def drive_and_report(
    app: AppContext,
    journal: Journal,
    run_id: str,
    options: EngineOptions,
    *,
    announce: bool = True,
    before: Callable[[], None] | None = None,
) -> tuple[DriveResult, Path]:
    """Drive the run to its end (or a stop) and write its reports where the run started.

    Everything that can fail before the first call is checked first: the endpoint, whether the
    run can go on at all, the report folder. `before` runs under the run's lock.
    """
    run = journal.run(run_id)
    check_same_endpoint(app, run)
    require_resumable(run)
    if announce:
        app.info(f"run {run_id}")
    with exclusive(
        app.settings.home, run_lock_name(run_id), f"run {run_id}", holder=f"run {run_id}"
    ):
        journal.verify_run(run_id)  # first: the report folder below is the journal's word
        # The folder the run started with may have gone since: find out before sending, not after.
        prepare_report_dir(Path(run.report_dir))
        if before is not None:
            before()
        client = app.session().client
        try:
            with _bars(app, run.valid) as progress:
                result = RunDriver(
                    journal, client, run_id, options=options, progress=progress
                ).drive()
        except RunStopped as error:
            report_dir = _write_reports(journal, run_id, ExitCode.FATAL)
            click.echo(str(report_dir))
            raise JobError(str(error), ExitCode.FATAL) from None
    log.info("run %s: writing reports", run_id)
    return result, _write_reports(journal, run_id, result.exit_code)


def _write_reports(journal: Journal, run_id: str, exit_code: int) -> Path:
    run = journal.run(run_id)
    try:
        return write_reports(journal, run, exit_code)
    except OSError as exc:
        raise JobError(
            f"run {run_id}: its reports could not be written to {run.report_dir} "
            f"({exc.strerror or exc}); the run itself is recorded in the journal: fix the "
            f"folder, then `lf-bulk runs wait {run_id}` writes them",
            ExitCode.FATAL,
        ) from None


def require_resumable(run: RunRecord) -> None:
    if run.status in NOT_RESUMABLE:
        why = run.details.get("stop_reason", "")
        raise JobError(
            f"run {run.run_id} is {run.status}"
            + (f" ({why})" if why else "")
            + "; it cannot be continued. Its report is in "
            + (run.report_dir or "its report folder"),
            ExitCode.BAD_INPUT,
        )


def drive_run(
    app: AppContext,
    journal: Journal,
    run_id: str,
    options: EngineOptions,
    *,
    before: Callable[[], None] | None = None,
) -> None:
    """Drive a run, print its report directory and what to do next, exit with its code."""
    result, report_dir = drive_and_report(app, journal, run_id, options, before=before)
    click.echo(str(report_dir))
    app.info(summary_line(run_id, result.counts))
    retryable = journal.failure_count(run_id, RETRYABLE_FAILURES)
    explain_result(run_id, result, report_dir, retryable=retryable)
    raise JobExit(result.exit_code)


def explain_result(
    run_id: str, result: DriveResult, report_dir: Path, *, retryable: int | None = None
) -> None:
    """What to do next, on stderr; `retryable`: how many failures `runs retry` could fix."""
    if result.exit_code == ExitCode.NOT_FINISHED:
        why = {"no-wait": "submitted without waiting", "timeout": "timed out waiting"}.get(
            result.stopped, result.stopped
        )
        click.echo(
            f"run {run_id} is not finished ({why}); continue it with `lf-bulk runs wait {run_id}`",
            err=True,
        )
    elif result.exit_code == ExitCode.SOME_FAILED:
        if retryable == 0:
            advice = "no failure is one a retry could fix"
        else:
            advice = f"`lf-bulk runs retry {run_id}` re-sends the retryable ones"
        click.echo(
            f"run {run_id}: some ICCIDs failed, see {report_dir / 'items.csv'}; {advice}",
            err=True,
        )


def summary_line(run_id: str, counts: dict[str, int]) -> str:
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    return f"run {run_id}: {parts or 'nothing to do'}"
