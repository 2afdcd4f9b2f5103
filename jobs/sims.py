"""`lf-bulk sims add|remove GROUP FILE`: the bulk job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from jobs import lookup_options as lk
from jobs.context import AppContext, pass_app
from jobs.driving import bars, client_of, open_journal, render_run
from jobs.errors import JobExit
from jobs.options import FILE_HELP, report_dir_option, sims_job_options, verify_option
from lf_bulk import catalogue as _registers_the_plans_reporter  # noqa: F401
from lf_bulk import fleet, lookups, runs
from lf_bulk.engine import EngineOptions
from lf_bulk.exitcodes import ExitCode
from lf_bulk.models import Operation
from lf_bulk.reports import prepare_report_dir
from lf_bulk.sources import read_iccids


@click.group()
def sims() -> None:
    """Add SIMs to a group or remove them; verify cards, their plans and status (Vshop)."""


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


# ---------------------------------------------------------------- per-SIM look-ups (Vshop)


@sims.command(help="Verify every card listed in FILE with Linksfield (one call per SIM).\n"
              + lk.LOOKUP_FILE_HELP + """
Outcomes per row: verified, rejected (reason_code CARD_NOT_FOUND, CARD_NOT_OWNED, or
CARD_INACTIVE for a card whose status is not ACTIVE), failed, invalid, duplicate, pending.
The report folder is printed on stdout. Exit 0 when every valid row verified, 3 when some were
rejected or failed, 5 when not finished.""")  # fmt: skip
@lk.single_file_options
@lk.lookup_timeout_option
@pass_app
def verify(
    app: AppContext, file: str, sheet: str | None, column: str | None, skip_invalid: bool,
    report_dir: Path | None, timeout: float | None,
) -> None:  # fmt: skip
    if report_dir is not None:
        prepare_report_dir(report_dir)
    rows = lk.lookup_rows(app, file, (), False, sheet, column)
    result = lk.start(
        app, rows, lookups.LookupKind.VERIFY, options={}, report_dir=report_dir,
        skip_invalid=skip_invalid, timeout=timeout,
    )  # fmt: skip
    lk.render(app, result, result.report_dir)


@sims.command(help="""Write the fleet workbook: each SIM's card, plans in use and pending,
auto-renewal and flags, from FILE or the members of --group GROUP or --all-groups.

Flags: no_plan (nothing in use or pending), pending_only (bought, not started), expiring (the
plan in use ends within --expiring-within days), card_inactive, not_found (unknown, or another
partner's card). Sheets: Summary (counts per flag, with a chart, and per group), Fleet (one row
per SIM; expire_date a date, ICCIDs text), Not found (with invalid and duplicate input rows);
a .csv output is the Fleet sheet alone. The output path is printed on stdout.
Exit 0 when no SIM is flagged, 4 when some are (for alerts), 3 when some look-ups failed,
5 when not finished (`runs resume RUN` continues).
""" + lk.LOOKUP_FILE_HELP)  # fmt: skip
@lk.lookup_input_options
@lk.expiring_within_option
@lk.max_age_option
@lk.output_option("fleet-<date>.xlsx")
@lk.lookup_timeout_option
@report_dir_option
@pass_app
def status(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, expiring_within: int,
    max_age: float, output: Path | None, timeout: float | None, report_dir: Path | None,
) -> None:  # fmt: skip
    target = lk.prepare_output(output, "fleet")
    if report_dir is not None:
        prepare_report_dir(report_dir)
    rows = lk.lookup_rows(app, file, groups, all_groups, sheet, column)
    options = {fleet.OPTION_OUTPUT: str(target), fleet.OPTION_EXPIRING_WITHIN: expiring_within}
    result = lk.start(
        app, rows, lookups.LookupKind.STATUS, options=options, max_age=max_age,
        report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
    )  # fmt: skip
    lk.render(app, result, target, fleet.summary_line_in(result.report_dir))


@sims.command(help="""Write the plans the SIMs can buy: sheet Plans (one row per plan with
its exact price, currency, auto-renewal, and how many of the SIMs can buy it) and By SIM, from
FILE or the members of --group GROUP. A .csv output is the Plans sheet alone. The output path is
printed on stdout. Exit 0; 3 when some look-ups failed or a card is not found; 5 when not
finished.
""" + lk.LOOKUP_FILE_HELP)  # fmt: skip
@lk.lookup_input_options
@lk.area_option
@lk.max_age_option
@lk.output_option("plans-<date>.xlsx")
@lk.lookup_timeout_option
@report_dir_option
@pass_app
def plans(
    app: AppContext, file: str | None, groups: tuple[str, ...], all_groups: bool,
    sheet: str | None, column: str | None, skip_invalid: bool, area: str | None,
    max_age: float, output: Path | None, timeout: float | None, report_dir: Path | None,
) -> None:  # fmt: skip
    target = lk.prepare_output(output, "plans")
    if report_dir is not None:
        prepare_report_dir(report_dir)
    rows = lk.lookup_rows(app, file, groups, all_groups, sheet, column)
    options: dict[str, object] = {fleet.OPTION_OUTPUT: str(target)}
    if area:
        options[lookups.OPTION_AREA] = area
    result = lk.start(
        app, rows, lookups.LookupKind.PLANS, options=options, max_age=max_age,
        report_dir=report_dir, skip_invalid=skip_invalid, timeout=timeout,
    )  # fmt: skip
    lk.render(app, result, target)
