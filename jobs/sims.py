"""`lf-bulk sims add|remove GROUP FILE`: the bulk job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobs.context import AppContext, pass_app
from jobs.driving import drive_run, endpoint_of, open_journal
from jobs.errors import JobError, JobExit
from jobs.options import (
    GROUP_ID,
    compose,
    input_file_options,
    report_dir_option,
    skip_invalid_option,
    wait_options,
)
from lf_bulk import bulk
from lf_bulk.engine import EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.journal import new_run_id
from lf_bulk.models import Operation
from lf_bulk.reports import prepare_report_dir
from lf_bulk.sources import InputTable, read_iccids

job_options = compose(
    click.argument("group", type=GROUP_ID),
    click.argument("file", metavar="FILE"),
    input_file_options,
    click.option(
        "--dry-run", is_flag=True, help="Show the plan and write it as a report; send nothing."
    ),
    skip_invalid_option,
    click.option(
        "--batch-size",
        type=click.IntRange(1, 10_000),
        default=500,
        show_default=True,
        help="ICCIDs per request; lowered automatically to the server's limit.",
    ),
    wait_options,
    report_dir_option,
)


FILE_HELP = """
FILE is a .csv, .tsv or .txt list, or an Excel workbook (.xlsx, .xlsm; --sheet picks the
sheet); - reads standard input (text, or an .xlsx workbook). The ICCID column is found by its
header (ICCID, SIM_ID, ICCID number...) in the first 100 rows, or named with --column; a
one-column list needs no header.

Every row that cannot be sent gets a reason code: empty, not_digits, bad_length, bad_prefix,
bad_checksum, numeric_cell (Excel stored the ICCID as a number and lost its last digits),
excel_error (a formula shows #N/A or another error), duplicate. Any such row stops the job
before anything is sent (exit 2) and is listed in the report, unless --skip-invalid.
"""


@click.group()
def sims() -> None:
    """Add SIMs to a group or remove them, from a list of ICCIDs in a file (or - for stdin)."""


@sims.command(help="Add the ICCIDs listed in FILE to GROUP.\n" + FILE_HELP)
@job_options
@pass_app
def add(app: AppContext, /, **options: object) -> None:
    run_job(app, Operation.ADD, **options)  # type: ignore[arg-type]


@sims.command(help="Remove the ICCIDs listed in FILE from GROUP.\n" + FILE_HELP)
@job_options
@pass_app
def remove(app: AppContext, /, **options: object) -> None:
    run_job(app, Operation.REMOVE, **options)  # type: ignore[arg-type]


def read_input(file: str, sheet: str | None, column: str | None) -> InputTable:
    if file == "-":
        return read_iccids("-", sheet=sheet, column=column, stdin=sys.stdin.buffer)
    return read_iccids(file, sheet=sheet, column=column)


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
) -> None:
    if report_dir is not None:  # before any report or run is written: nothing left behind
        prepare_report_dir(report_dir)
    table = read_input(file, sheet, column)
    counts = bulk.count_input(table)
    app.info(f"{table.source}: {table.counts.describe()}")
    run_id = new_run_id()
    target = bulk.report_dir_for(run_id, report_dir)
    if (counts.invalid or counts.duplicates) and not skip_invalid:
        prepare_report_dir(target)
        error = bulk.refuse_invalid(table, operation, group, target, run_id)
        click.echo(str(target))
        raise _bad_input(error, target) from None
    if not counts.valid:
        # `--skip-invalid` with nothing left is a broken file, not a success: cron must notice.
        prepare_report_dir(target)
        bulk.refuse_invalid(table, operation, group, target, run_id)
        click.echo(str(target))
        raise JobError(
            f"{table.source}: no valid ICCID to send ({counts.invalid} invalid, "
            f"{counts.duplicates} duplicates); nothing was sent. The rows and their reasons are "
            f"in {target / 'items.csv'}",
            ExitCode.BAD_INPUT,
        )
    # Everything that can fail before the first change is checked before the run exists.
    prepare_report_dir(target)
    bulk.require_group(app.session().client, group)
    if dry_run:
        dry_run_job(app, table, operation, group, batch_size, target, run_id)
        return
    journal = open_journal(app)
    run_id = bulk.start_run(
        journal,
        table,
        operation,
        group,
        batch_size=batch_size,
        report_dir=target,
        endpoint=endpoint_of(app),
        run_id=run_id,
    )
    drive_run(app, journal, run_id, EngineOptions(wait=not no_wait, timeout=timeout))


def _bad_input(error: Exception, report_dir: Path) -> JobError:
    return JobError(
        f"{error}\nNothing was sent. Fix the file, or pass --skip-invalid to send only the valid "
        f"rows. The rejected rows are listed in {report_dir / 'items.csv'}",
        ExitCode.BAD_INPUT,
    )


def dry_run_job(
    app: AppContext,
    table: InputTable,
    operation: Operation,
    group: str,
    batch_size: int,
    report_dir: Path,
    run_id: str,
) -> None:
    plan = bulk.dry_run_plan(app.session().client, table, operation, group, batch_size)
    target = bulk.write_dry_run_report(report_dir, run_id, table, operation, group, plan)
    verb = "add to" if operation is Operation.ADD else "remove from"
    app.info(
        f"dry run {run_id}: would {verb} {group}: {plan.counts.valid} valid ICCIDs in "
        f"{plan.batches} batch(es); {plan.goal_already_met} already meet the goal, "
        f"{plan.to_change} would change ({plan.counts.invalid} invalid, "
        f"{plan.counts.duplicates} duplicates). Nothing was sent."
    )
    click.echo(str(target))
    raise JobExit(ExitCode.OK)
