"""`lf-bulk runs`: the journal of runs, and continuing or cancelling them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jobs.context import AppContext, pass_app
from jobs.driving import drive_run, open_journal, require_resumable
from jobs.errors import JobError, JobExit
from jobs.options import wait_options
from jobs.render import table
from lf_bulk import bulk
from lf_bulk.engine import RETRYABLE_FAILURES, EngineOptions
from lf_bulk.errors import RunLocked
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import FINISHED, TERMINAL_STATUSES
from lf_bulk.locking import exclusive, is_held
from lf_bulk.reports import prepare_report_dir


@click.group()
def runs() -> None:
    """Runs recorded in the journal: list, inspect, resume, wait for, retry, cancel."""


@runs.command(name="list")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@pass_app
def list_runs(app: AppContext, output_format: str) -> None:
    """List runs, newest first. A run whose process is gone shows as `interrupted`."""
    journal = open_journal(app)
    records = [
        {
            "run_id": r.run_id,
            "operation": r.operation,
            "group_id": r.group_id,
            "status": bulk.shown_status(r, app.settings.home),
            "started_at": r.started_at,
            "outcomes": journal.outcome_counts(r.run_id),
        }
        for r in journal.runs()
    ]
    if output_format == "json":
        click.echo(json.dumps(records, indent=2))
        return
    rows = [
        {**r, "outcomes": ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))}  # type: ignore[attr-defined]
        for r in records
    ]
    click.echo(
        table(rows, ["run_id", "operation", "group_id", "status", "started_at", "outcomes"]),
        nl=False,
    )


@runs.command()
@click.argument("run")
@pass_app
def show(app: AppContext, run: str) -> None:
    """Show one run: settings, batches by state, outcomes, report directory, what to do next."""
    journal = open_journal(app)
    record = journal.run(run)
    status = bulk.shown_status(record, app.settings.home)
    batches: dict[str, int] = {}
    for batch in journal.batches(run):
        batches[batch.state] = batches.get(batch.state, 0) + 1
    lines = {
        "run_id": record.run_id,
        "kind": record.kind,
        "operation": record.operation,
        "group_id": record.group_id,
        "status": status,
        "stop_reason": record.details.get("stop_reason", ""),
        "next": bulk.next_step(journal, record, status),
        "source": record.source,
        "endpoint": record.endpoint,
        "input_rows": record.input_rows,
        "valid": record.valid,
        "invalid": record.invalid,
        "duplicates": record.duplicates,
        "batches": batches,
        "outcomes": journal.outcome_counts(run),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "exit_code": record.exit_code,
        "report_dir": record.report_dir,
    }
    click.echo(json.dumps(lines, indent=2))


@runs.command()
@click.argument("run", required=False)
@click.option(
    "--timeout", type=click.FloatRange(min=0), help="Stop waiting after this many seconds."
)
@pass_app
def resume(app: AppContext, run: str | None, timeout: float | None) -> None:
    """Continue RUN (default: the newest unfinished run) after a crash, kill or Ctrl-C.

    Batches with a known request id are only polled, never re-sent; a batch whose answer was lost
    is settled by the group's membership before any of it is sent again. Failed and cancelled
    runs cannot be continued.
    """
    journal = open_journal(app)
    if run is None:
        newest = journal.newest_unfinished()
        if newest is None:
            app.info(
                "nothing to resume: every run in the journal is finished, failed or cancelled "
                "(`lf-bulk runs list` shows them)"
            )
            raise JobExit(ExitCode.OK)
        run = newest.run_id
    drive_run(app, journal, run, EngineOptions(timeout=timeout))


@runs.command(name="wait")
@click.argument("run")
@click.option(
    "--timeout", type=click.FloatRange(min=0), help="Stop waiting after this many seconds."
)
@pass_app
def wait_for(app: AppContext, run: str, timeout: float | None) -> None:
    """Wait for RUN (e.g. one started with --no-wait) to finish, then write its reports."""
    drive_run(app, open_journal(app), run, EngineOptions(timeout=timeout))


@runs.command()
@click.argument("run")
@wait_options
@pass_app
def retry(app: AppContext, run: str, no_wait: bool, timeout: float | None) -> None:
    """Re-send the ICCIDs of RUN whose failure may pass on a retry (SIM_LOCKED, INTERNAL, lost)."""
    journal = open_journal(app)
    record = journal.run(run)
    require_resumable(record)
    if is_held(app.settings.home, bulk.run_lock_name(run)):
        raise RunLocked(
            f"run {run} is being driven by another lf-bulk process; wait for it to finish, "
            "then retry"
        )
    if record.status != FINISHED:
        status = bulk.shown_status(record, app.settings.home)
        raise JobError(
            f"run {run} is {status}, not finished; `lf-bulk runs resume {run}` first",
            ExitCode.BAD_INPUT,
        )
    if not journal.failure_count(run, RETRYABLE_FAILURES):
        app.info(
            f"run {run}: nothing to retry: no failure is one a retry could fix "
            f"(see {Path(record.report_dir) / 'items.csv'})"
        )
        raise JobExit(record.exit_code if record.exit_code is not None else ExitCode.OK)

    def requeue() -> None:
        # Under the run's lock: nobody else can have started driving it since the checks.
        if journal.run(run).status != FINISHED:
            raise JobError(f"run {run} changed meanwhile; `lf-bulk runs show {run}`")
        count = journal.requeue_failed(run, sorted(RETRYABLE_FAILURES), record.batch_size)
        app.info(f"run {run}: {count} retryable failure(s) to send again")

    drive_run(app, journal, run, EngineOptions(wait=not no_wait, timeout=timeout), before=requeue)


@runs.command()
@click.argument("run")
@pass_app
def cancel(app: AppContext, run: str) -> None:
    """Cancel RUN for good: nothing more is sent, and its reports are written.

    ICCIDs never sent are reported `failed` (CANCELLED); ICCIDs already sent stay `pending` (the
    server may still change them: `lf-bulk ops status REQUEST_ID` or the group tells).
    """
    journal = open_journal(app)
    record = journal.run(run)
    if record.status in TERMINAL_STATUSES:
        raise JobError(
            f"run {run} is already {record.status}; nothing to cancel", ExitCode.BAD_INPUT
        )
    with exclusive(app.settings.home, bulk.run_lock_name(run), f"run {run}", holder=f"run {run}"):
        journal.verify_run(run)  # the report folder below is the journal's word
        prepare_report_dir(Path(record.report_dir))
        journal.cancel_run(run, "cancelled with `lf-bulk runs cancel`", ExitCode.SOME_FAILED)
        report_dir = bulk.write_reports(journal, journal.run(run), ExitCode.SOME_FAILED)
    click.echo(str(report_dir))
    counts = journal.outcome_counts(run)
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
    app.info(f"run {run} cancelled: {parts}; nothing more will be sent")
