"""`lf-bulk runs`: the journal of runs, and continuing them."""

from __future__ import annotations

import json

import click

from jobs.context import AppContext, pass_app
from jobs.driving import drive_run, open_journal
from jobs.errors import JobError
from jobs.options import wait_options
from jobs.render import table
from lf_bulk.engine import RETRYABLE_FAILURES, EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import FINISHED


@click.group()
def runs() -> None:
    """Runs recorded in the journal: list, inspect, resume, wait for, retry."""


@runs.command(name="list")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@pass_app
def list_runs(app: AppContext, output_format: str) -> None:
    """List runs, newest first."""
    journal = open_journal(app)
    records = [
        {
            "run_id": r.run_id,
            "operation": r.operation,
            "group_id": r.group_id,
            "status": r.status,
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
    """Show one run: settings, batches by state, outcomes, report directory."""
    journal = open_journal(app)
    record = journal.run(run)
    batches: dict[str, int] = {}
    for batch in journal.batches(run):
        batches[batch.state] = batches.get(batch.state, 0) + 1
    lines = {
        "run_id": record.run_id,
        "kind": record.kind,
        "operation": record.operation,
        "group_id": record.group_id,
        "status": record.status,
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
    is checked against the group's membership before any of it is sent again.
    """
    journal = open_journal(app)
    if run is None:
        newest = journal.newest_unfinished()
        if newest is None:
            raise JobError(
                "no unfinished run in the journal; `lf-bulk runs list` shows them all", ExitCode.OK
            )
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
    if record.status != FINISHED:
        raise JobError(
            f"run {run} is not finished; `lf-bulk runs resume {run}` first", ExitCode.BAD_INPUT
        )
    journal.verify_run(run)
    count = journal.requeue_failed(run, sorted(RETRYABLE_FAILURES), record.batch_size)
    app.info(f"run {run}: {count} retryable failure(s) to send again")
    drive_run(app, journal, run, EngineOptions(wait=not no_wait, timeout=timeout))
