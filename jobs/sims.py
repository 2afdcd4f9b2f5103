"""`lf-bulk sims add|remove GROUP FILE`: the bulk job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, open_journal, render_run
from jobs.errors import JobExit
from jobs.options import FILE_HELP, sims_job_options
from lf_bulk import runs
from lf_bulk.engine import EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.models import Operation
from lf_bulk.reports import prepare_report_dir
from lf_bulk.sources import read_iccids


@click.group()
def sims() -> None:
    """Add SIMs to a group or remove them, from a list of ICCIDs in a file (or - for stdin)."""


verify_option = click.option(
    "--verify",
    is_flag=True,
    help="Verify every card with the Vshop service first (one call per SIM, its own run); "
    "cards it rejects (not found, another partner's, not active) are never sent and are "
    "reported `rejected`.",
)


@sims.command(help="Add the ICCIDs listed in FILE to GROUP.\n" + FILE_HELP)
@sims_job_options
@verify_option
@pass_app
def add(app: AppContext, /, **options: object) -> None:
    run_job(app, Operation.ADD, **options)  # type: ignore[arg-type]


@sims.command(help="Remove the ICCIDs listed in FILE from GROUP.\n" + FILE_HELP)
@sims_job_options
@verify_option
@pass_app
def remove(app: AppContext, /, **options: object) -> None:
    run_job(app, Operation.REMOVE, **options)  # type: ignore[arg-type]


def run_job(
    app: AppContext,
    operation: Operation,
    *,
    group: str,
    file: str,
    sheet: str | None,
    column: str | None,
    dry_run: bool,
    skip_invalid: bool,
    batch_size: int,
    no_wait: bool,
    timeout: float | None,
    report_dir: Path | None,
    verify: bool = False,
) -> None:
    if verify and dry_run:
        raise click.UsageError(
            "--verify looks every card up (one call per SIM); a dry run sends nothing: "
            "leave one of them out"
        )
    if report_dir is not None:  # before any report or run is written: nothing left behind
        prepare_report_dir(report_dir)
    stdin = sys.stdin.buffer if file == "-" else None
    table = read_iccids(file, sheet=sheet, column=column, stdin=stdin)
    if dry_run:
        planned = runs.dry_run(
            client_of(app), table, operation, group, batch_size=batch_size,
            skip_invalid=skip_invalid, report_dir=report_dir, say=app.info,
        )  # fmt: skip
        plan, verb = planned.plan, "add to" if operation is Operation.ADD else "remove from"
        app.info(
            f"dry run {planned.run_id}: would {verb} {group}: {plan.counts.valid} valid ICCIDs in "
            f"{plan.batches} batch(es); {plan.goal_already_met} already meet the goal, "
            f"{plan.to_change} would change ({plan.counts.invalid} invalid, "
            f"{plan.counts.duplicates} duplicates). Nothing was sent."
        )
        click.echo(str(planned.report_dir))
        raise JobExit(ExitCode.OK)
    engine = EngineOptions(wait=not no_wait, timeout=timeout)
    journal, client = (lambda: open_journal(app)), client_of(app)
    start = runs.start_verified if verify else runs.start
    result = start(
        journal, client, app.settings, table, operation, group, engine, batch_size=batch_size,
        skip_invalid=skip_invalid, report_dir=report_dir, progress=bars(app), say=app.info,
    )  # fmt: skip
    render_run(app, result)
