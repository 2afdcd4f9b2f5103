"""`lf-bulk runs`: the journal of runs, and continuing or cancelling them."""

from __future__ import annotations

import json

import click

from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, open_journal, render_run
from jobs.options import runs_timeout_option, wait_options
from jobs.render import table
from lf_bulk import run_listing

# The commands that drive a run import the run library (`lf_bulk.runs`: engine, client, reports)
# when they run: `runs list` reads the journal alone and starts in a blink.

LIST_COLUMNS = ["run_id", "operation", "group_id", "status", "started_at", "outcomes"]


@click.group()
def runs() -> None:
    """Runs recorded in the journal: list, inspect, resume, wait for, retry, cancel."""


@runs.command(name="list")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
@pass_app
def list_runs(app: AppContext, output_format: str) -> None:
    """List runs, newest first. A run whose process is gone shows as `interrupted`."""
    records = run_listing.listing(open_journal(app), app.settings.home)
    if output_format == "json":
        click.echo(json.dumps(records, indent=2))
        return
    rows = [{**r, "outcomes": run_listing.counts_text(r["outcomes"])} for r in records]  # type: ignore[arg-type]
    click.echo(table(rows, LIST_COLUMNS), nl=False)


@runs.command()
@click.argument("run")
@pass_app
def show(app: AppContext, run: str) -> None:
    """Show one run: settings, batches by state, outcomes, report directory, what to do next."""
    from lf_bulk import runs as lib

    click.echo(json.dumps(lib.details(open_journal(app), run, app.settings.home), indent=2))


@runs.command()
@click.argument("run", required=False)
@runs_timeout_option
@pass_app
def resume(app: AppContext, run: str | None, timeout: float | None) -> None:
    """Continue RUN (default: the newest unfinished run) after a crash, kill or Ctrl-C.

    Batches with a known request id are only polled, never re-sent; a batch whose answer was lost
    is settled by the group's membership before any of it is sent again. Failed and cancelled
    runs cannot be continued.
    """
    from lf_bulk import runs as lib
    from lf_bulk.engine import EngineOptions

    render_run(app, lib.resume(
        open_journal(app), client_of(app), app.settings, run, EngineOptions(timeout=timeout),
        progress=bars(app), say=app.info,
    ))  # fmt: skip


@runs.command(name="wait")
@click.argument("run")
@runs_timeout_option
@pass_app
def wait_for(app: AppContext, run: str, timeout: float | None) -> None:
    """Wait for RUN (e.g. one started with --no-wait) to finish, then write its reports."""
    from lf_bulk import runs as lib
    from lf_bulk.engine import EngineOptions

    render_run(app, lib.drive(
        open_journal(app), client_of(app), run, app.settings, EngineOptions(timeout=timeout),
        progress=bars(app), say=app.info,
    ))  # fmt: skip


@runs.command()
@click.argument("run")
@wait_options
@pass_app
def retry(app: AppContext, run: str, no_wait: bool, timeout: float | None) -> None:
    """Re-send the ICCIDs of RUN whose failure may pass on a retry (SIM_LOCKED, INTERNAL, lost)."""
    from lf_bulk import runs as lib
    from lf_bulk.engine import EngineOptions

    engine = EngineOptions(wait=not no_wait, timeout=timeout)
    render_run(app, lib.retry(
        open_journal(app), client_of(app), app.settings, run, engine, progress=bars(app),
        say=app.info,
    ))  # fmt: skip


@runs.command()
@click.argument("run")
@pass_app
def cancel(app: AppContext, run: str) -> None:
    """Cancel RUN for good: nothing more is sent, and its reports are written.

    ICCIDs never sent are reported `failed` (CANCELLED); ICCIDs already sent stay `pending` (the
    server may still change them: `lf-bulk ops status REQUEST_ID` or the group tells).
    """
    from lf_bulk import runs as lib

    result = lib.cancel(open_journal(app), app.settings, run)
    click.echo(str(result.report_dir))
    app.info(f"run {run} cancelled: {lib.counts_text(result.counts)}; nothing more will be sent")
